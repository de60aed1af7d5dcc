//! Accountable operators, end to end: the keyed audit chain and its checkpoint against tampering,
//! a backup taken while Vigil runs, the AuditEvent export under the independent FHIR validator,
//! break-glass, and secrets that never sit in `vigil.toml` or in files others can read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;
use sqlx::Row;
use vigil_tests::{BrokerKind, Site, validate_fhir};

/// `vigil audit verify` on the site (or a backup): its exit code and what it said.
fn verify(site: &Site, backup: Option<&Path>) -> anyhow::Result<(i32, String)> {
    let config = site.config_str();
    let mut args = vec!["audit".to_string(), "verify".into(), "--config".into(), config];
    if let Some(b) = backup {
        args.extend(["--backup".into(), b.display().to_string()]);
    }
    site.vigil_as(&site.token, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The SQLite database at `path`, as any SQLite client (not Vigil) opens it.
async fn database(path: &Path) -> anyhow::Result<sqlx::SqlitePool> {
    Ok(sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?)
}

/// Drops the triggers that keep the audit table append-only, as someone tampering would.
async fn drop_triggers(db: &sqlx::SqlitePool) -> anyhow::Result<()> {
    for t in ["audit_log_no_update", "audit_log_no_delete"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {t}"))).execute(db).await?;
    }
    Ok(())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_backup_verifies_and_a_cut_removed_or_rewritten_chain_is_named() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let config = site.config_str();
    let vigil = site.run()?;
    site.vigil(&["device-demo", "--config", &config, "OX-1000"])?;
    site.vigil(&["device-demo", "--config", &config, "OX-1000", "--off"])?;
    let dir = site.dir.path();

    // A backup taken while the pipeline runs carries its own sealed checkpoint and verifies.
    let copies: Vec<_> = ["cut", "middle", "rewritten"].iter().map(|n| dir.join(format!("{n}.db"))).collect();
    for copy in &copies {
        site.vigil(&["backup", "--config", &config, &copy.to_string_lossy()])?;
        let (code, out) = verify(&site, Some(copy))?;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("intact"), "{out}");
    }
    assert!(vigil.terminate().await?.success());
    let (code, out) = verify(&site, None)?;
    assert_eq!(code, 0, "{out}");

    // What Vigil made is readable by its owner only.
    for file in ["vigil.db", "audit.key", "audit.checkpoint", "status.token", "cut.db", "cut.db.checkpoint"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }

    // The live chain's tail cut off (the delete trigger dropped first): named by the checkpoint.
    let live = database(&dir.join("vigil.db")).await?;
    let head: i64 = sqlx::query_scalar("SELECT MAX(id) FROM audit_log").fetch_one(&live).await?;
    let refused = sqlx::query("DELETE FROM audit_log WHERE id = ?").bind(head).execute(&live).await;
    assert!(refused.is_err(), "the table itself refuses removal");
    drop_triggers(&live).await?;
    sqlx::query("DELETE FROM audit_log WHERE id >= ?").bind(head - 1).execute(&live).await?;
    live.close().await;
    let (code, out) = verify(&site, None)?;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains(&format!("BROKEN at entry {}", head - 1)), "{out}");

    // A middle entry removed from a copy.
    let middle = database(&copies[1]).await?;
    drop_triggers(&middle).await?;
    sqlx::query("DELETE FROM audit_log WHERE id = 3").execute(&middle).await?;
    middle.close().await;
    let (code, out) = verify(&site, Some(&copies[1]))?;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("BROKEN at entry 3"), "{out}");

    // The whole chain of a copy rewritten by someone who knows the algorithm but not the site's key.
    let rewritten = database(&copies[2]).await?;
    drop_triggers(&rewritten).await?;
    let rows = sqlx::query("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id")
        .fetch_all(&rewritten)
        .await?;
    let mut prev = vec![0u8; 32];
    for r in rows {
        let mut h = blake3::Hasher::new();
        h.update(&prev);
        h.update(&r.get::<i64, _>(1).to_be_bytes());
        for i in 2..6 {
            let part: String = r.get(i);
            h.update(&(part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let hash = h.finalize().as_bytes().to_vec();
        sqlx::query(
            "UPDATE audit_log SET prev_hash = ?, hash = ?, actor = REPLACE(actor, 'test-admin', 'nobody') WHERE id = ?",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(r.get::<i64, _>(0))
        .execute(&rewritten)
        .await?;
        prev = hash;
    }
    rewritten.close().await;
    let (code, out) = verify(&site, Some(&copies[2]))?;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("BROKEN at entry 1") && out.contains("without the site's audit key"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_export_is_a_valid_fhir_bundle_of_audit_events_for_admins_only() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let config = site.config_str();
    // Every checkpoint also goes to the site's syslog.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0")?;
    syslog.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    site.set_in("audit", &format!("syslog = \"{}\"", syslog.local_addr()?))?;
    let biomed = site.account("bea", &["biomed"])?;
    let pair = ["pair", "--config", &config, "--device", "MX-00A1", "--patient-system", vigil_tests::DEMO_SYSTEM];
    let (code, out) = site.vigil_as(&biomed, &[&pair[..], &["--patient", "MRN-100001"]].concat())?;
    assert_eq!(code, 0, "{out}");
    let (code, out) = site.vigil_as(&biomed, &["audit", "export", "--config", &config])?;
    assert_eq!(code, 6, "a biomed may not export the audit trail: {out}");
    assert!(out.contains("needs the admin role"), "{out}");

    let bundle: Value = serde_json::from_str(&site.vigil(&["audit", "export", "--config", &config])?)?;
    validate_fhir(std::slice::from_ref(&bundle))?;
    assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str()), (Some("Bundle"), Some("collection")));
    let entries = bundle["entry"].as_array().unwrap();
    let observer = entries.iter().find(|e| e["resource"]["resourceType"] == "Device").expect("the observer Device");
    let events: Vec<&Value> =
        entries.iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == "AuditEvent").collect();
    assert!(events.iter().all(|e| e["source"]["observer"]["reference"] == observer["fullUrl"]), "references resolve");
    assert!(events.iter().all(|e| e["agent"][0]["requestor"] == true && e["recorded"].is_string()));
    let paired = events.iter().rev().find(|e| e["subtype"][0]["code"] == "pairing.open").expect("the pairing");
    assert_eq!(paired["agent"][0]["who"]["display"], "bea");
    assert_eq!(paired["entity"][0]["what"]["identifier"]["value"], "MX-00A1");
    let refused = events.iter().find(|e| e["subtype"][0]["code"] == "access.refused").expect("the refusal");
    assert_eq!((refused["outcome"].as_str(), refused["type"]["code"].as_str()), (Some("4"), Some("110113")));
    // Exporting is itself audited, and the checkpoint after it reached the syslog.
    let audit: Value = serde_json::from_str(&site.vigil(&["audit", "list", "--config", &config, "--limit", "5"])?)?;
    let exported = audit.as_array().unwrap().iter().find(|e| e["action"] == "audit.export").expect("audited");
    let head = format!("head_id={}", exported["id"]);
    let mut buf = [0u8; 2048];
    let line = loop {
        let n = syslog.recv(&mut buf)?;
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if line.contains(&head) {
            break line;
        }
    };
    assert!(line.starts_with("<110>1 ") && line.contains("vigil audit checkpoint") && line.contains("seal="), "{line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_opens_an_hour_of_admin_raises_its_alarm_and_is_audited() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let config = site.config_str();
    let out = site
        .command()
        .env_remove("VIGIL_TOKEN")
        .args(["accounts", "break-glass", "--config", &config, "--reason", "every admin locked out"])
        .output()?;
    let (stdout, stderr) = (String::from_utf8(out.stdout)?, String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{stderr}");
    let token = stdout.trim();
    let until = stderr.split("session until ").nth(1).and_then(|s| s.split(';').next()).expect("its end");
    let until: chrono::DateTime<chrono::Utc> = until.trim().parse()?;
    let hour = until - chrono::Utc::now();
    assert!(hour > chrono::Duration::minutes(59) && hour <= chrono::Duration::minutes(60), "{hour}");

    // An admin session: it may list accounts; the alarm and the audit entry say who and why.
    let (code, out) = site.vigil_as(token, &["accounts", "list", "--config", &config])?;
    assert_eq!(code, 0, "{out}");
    let alarms = site.alarms()?;
    let alarm = alarms.iter().find(|a| a["rule_id"] == "break_glass").expect("the break-glass alarm");
    assert_eq!(alarm["kind"], "technical");
    assert!(alarm["description"].as_str().unwrap().contains("every admin locked out"), "{alarm}");
    let audit = site.vigil(&["audit", "list", "--config", &config])?;
    assert!(audit.contains("account.break_glass"), "{audit}");

    // Only the owner of the data directory may break the glass: given to another user, it is refused.
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(site.dir.path())?);
    std::os::unix::fs::chown(site.dir.path(), Some(owner + 1), None)?;
    let (code, out) = site.vigil_as("", &["accounts", "break-glass", "--config", &config, "--reason", "again"])?;
    std::os::unix::fs::chown(site.dir.path(), Some(owner), None)?;
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("owns"), "{out}");
    Ok(())
}

#[test]
fn secrets_never_sit_in_the_config_or_in_a_file_others_can_read() {
    let site = Site::new(BrokerKind::Embedded).unwrap();
    let config = site.config_str();
    let token_file = site.dir.path().join("ehr.token");
    std::fs::write(&token_file, "s3cr3t-bearer-value\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    site.set_in("ehr", &format!("auth = \"bearer\"\nbearer_token = \"file:{}\"", token_file.display())).unwrap();
    let (code, out) = site.vigil_as(&site.token, &["check-config", &config]).unwrap();
    assert_eq!(code, 2, "a group-readable token file is refused: {out}");
    assert!(out.contains("chmod 600") && !out.contains("s3cr3t"), "{out}");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = site.vigil_as(&site.token, &["check-config", &config]).unwrap();
    assert_eq!(code, 0, "{out}");

    // A password written into a URL is refused, and not repeated in the error.
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!("{text}\n[alerts]\nwebhook_url = \"https://pager:hunter22@nursecall.example/vigil\"\n"),
    )
    .unwrap();
    let (code, out) = site.vigil_as(&site.token, &["check-config", &config]).unwrap();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("must not sit in vigil.toml") && !out.contains("hunter22"), "{out}");
}
