//! The MLLP source against PyPI `hl7`'s MLLP client (tests/peers/mllp-peer/send_oru.py), whose
//! ACKs are read back with python-hl7's own parser: IHE PCD-01 messages from device gateways land
//! as readings, quarantine or rejections, and nothing is acknowledged before it is stored.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sqlx::Connection;
use vigil_tests::{BrokerKind, Site, eventually, fixture, workspace};

const DEVICE_1: &str = "001BC50C00000001";
const DEVICE_2: &str = "001BC50C00000002";

/// The site's `[sources.mllp]`: the listener on an ephemeral port, loopback allowed, local times in
/// Berlin.
fn mllp_site(extra: &str) -> anyhow::Result<Site> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "\n[sources.mllp]\nlisten = \"127.0.0.1:0\"\nallow = [\"127.0.0.1\"]\ntimezone = \"Europe/Berlin\"\n{extra}\n"
    ))?;
    let config = site.config_str();
    // One id dashed as a label would have it: registration keeps the EUI-64 in one form.
    for device in ["00-1B-C5-0C-00-00-00-01", DEVICE_2] {
        site.vigil(&["devices", "--config", &config, "--register", device, "--profile", "pcd-01"])?;
    }
    // The messages were measured on 24 November: the pairings start before. The first is paired by
    // its id as a label writes it.
    for device in ["00-1b-c5-0c-00-00-00-01", DEVICE_2] {
        site.for_patient("pair", device, "MRN-100001", &["--from", "2026-11-24T00:00:00Z", "--reason", "test data"])?;
    }
    Ok(site)
}

fn python() -> PathBuf {
    workspace().join("tests/peers/.venv/bin/python")
}

fn client() -> PathBuf {
    workspace().join("tests/peers/mllp-peer/send_oru.py")
}

/// Sends message files over one connection with the `hl7` package's client; one JSON ACK each.
fn send(port: u16, files: &[&Path]) -> anyhow::Result<Vec<Value>> {
    let out = Command::new(python())
        .arg(client())
        .args(["--json", "--port", &port.to_string(), "--timeout", "20"])
        .args(files)
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    anyhow::ensure!(
        out.status.code().is_some_and(|c| c <= 1),
        "send_oru failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
}

/// A message file in the site's directory, from segments (joined with `\r`).
fn message(site: &Site, name: &str, segments: &[&str]) -> anyhow::Result<PathBuf> {
    let path = site.dir.path().join(name);
    std::fs::write(&path, format!("{}\r", segments.join("\r")))?;
    Ok(path)
}

const MSH: &str =
    "MSH|^~\\&|GATEWAY^0A1B2C3D4E5F6071^EUI-64|WARD7|VIGIL|CLINIC|20261124100002+0000||ORU^R01^ORU_R01|CONTROL|P|2.6";
const PID: &str = "PID|||MRN-100001^^^&2.16.840.1.113883.19.5.99999.2&ISO^MR";

fn obx(value: &str, device: &str) -> String {
    format!(
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.150456|{value}|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500+0000||||{device}"
    )
}

fn readings(site: &Site, device: &str) -> anyhow::Result<Vec<Value>> {
    let out =
        site.vigil(&["show", "readings", "--config", &site.config_str(), "--device", device, "--limit", "1000"])?;
    Ok(serde_json::from_str::<Value>(&out)?.as_array().cloned().unwrap_or_default())
}

fn reasons(rows: &Value) -> Vec<String> {
    rows.as_array().into_iter().flatten().map(|r| r["reason"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn gateway_messages_land_as_readings_quarantine_or_rejections_each_acknowledged_once_stored() -> anyhow::Result<()>
{
    let site = mllp_site("")?;
    let vigil = site.run()?;
    let port = vigil.mllp_addr.context("the MLLP listener runs")?.port();

    // A gateway with two bedside devices, a v2.3 device in local time, and the published example.
    let acks = send(
        port,
        &[
            &fixture("hl7/pcd01-gateway-two-devices.hl7"),
            &fixture("hl7/pcd01-v23-local-time.hl7"),
            &fixture("hl7/ipf-valid-oximeter-continua-wan.hl7"),
        ],
    )?;
    let codes: Vec<&str> = acks.iter().map(|a| a["msa1"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["AA", "AA", "AA"], "{acks:#?}");
    assert_eq!(acks[0]["msa2"], "GW-1001");
    assert_eq!(
        (&acks[0]["msh3"], &acks[0]["msh5"], &acks[0]["msh12"]),
        (&"VIGIL".into(), &"GATEWAY^0A1B2C3D4E5F6071^EUI-64".into(), &"2.6".into())
    );
    assert_eq!((&acks[1]["msa2"], &acks[1]["msh12"]), (&"LEGACY-7".into(), &"2.3".into()), "the ACK echoes v2.3");

    // Two devices behind one gateway are two devices, each with its own readings and units.
    let first = readings(&site, DEVICE_1)?;
    let second = readings(&site, DEVICE_2)?;
    let values = |rows: &[Value]| -> Vec<(i64, f64, String, String)> {
        let mut v: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r["mdc_code"].as_i64().unwrap_or_default(),
                    r["value"].as_f64().unwrap_or_default(),
                    r["unit"].as_str().unwrap_or_default().to_string(),
                    r["validity"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        v
    };
    assert_eq!(
        values(&first),
        [
            (149530, 72.0, "/min".into(), "valid".into()),
            (150456, 95.0, "%".into(), "valid".into()),
            (150456, 97.0, "%".into(), "valid".into()),
        ],
        "{first:#?}"
    );
    assert_eq!(
        values(&second),
        [(150021, 121.0, "mm[Hg]".into(), "invalid".into()), (150364, 37.28, "Cel".into(), "valid".into())],
        "99.1 degF arrives as 37.28 Cel; OBX-8 INV is stored invalid: {second:#?}"
    );
    let legacy = first.iter().find(|r| r["value"] == 95.0).context("the v2.3 reading")?;
    assert!(
        legacy["observed_at"].as_str().is_some_and(|t| t.starts_with("2026-11-24T10:00:00")),
        "11:00 in Berlin is 10:00 UTC: {legacy}"
    );
    assert!(first.iter().all(|r| r["patient_id"] == second[0]["patient_id"]), "both paired to MRN-100001");

    // The published example's device is not registered: quarantined, never charted.
    let quarantine = site.show("quarantine")?;
    assert!(reasons(&quarantine).contains(&"unknown_device".to_string()), "{quarantine:#}");

    // A malformed OBX-5: AE naming OBX-5, kept in `rejected` with the reason, nothing stored.
    let bad = message(&site, "bad.hl7", &[&MSH.replace("CONTROL", "BAD-1"), PID, &obx("ninety", DEVICE_1)])?;
    // A PID-3 that disagrees with the pairing, and a message without a PID.
    let other = message(
        &site,
        "other.hl7",
        &[&MSH.replace("CONTROL", "OTHER-1"), &PID.replace("MRN-100001", "MRN-100002"), &obx("91", DEVICE_1)],
    )?;
    let anonymous = message(&site, "anonymous.hl7", &[&MSH.replace("CONTROL", "NOPID-1"), &obx("92", DEVICE_1)])?;
    // An alarm (PCD-04), which Vigil does not take yet.
    let alarm = message(
        &site,
        "alarm.hl7",
        &[&MSH.replace("CONTROL", "ALARM-1").replace("ORU^R01^ORU_R01", "ORU^R40^ORU_R40"), PID],
    )?;
    let acks = send(port, &[&bad, &other, &anonymous, &alarm])?;
    let codes: Vec<&str> = acks.iter().map(|a| a["msa1"].as_str().unwrap_or_default()).collect();
    assert_eq!(codes, ["AE", "AA", "AA", "AR"], "{acks:#?}");
    let error = &acks[0]["errors"][0];
    assert_eq!(
        (&error["err2"], &error["err3"]),
        (&"OBX^1^5".into(), &"102^Data type error^HL70357".into()),
        "{acks:#?}"
    );
    assert_eq!(acks[3]["errors"][0]["err3"], "201^Unsupported event code^HL70357");
    let rejected = site.show("rejected")?;
    let rejected_reasons = reasons(&rejected);
    assert!(rejected_reasons.contains(&"bad_value".to_string()), "{rejected:#}");
    assert!(rejected_reasons.contains(&"unsupported_message".to_string()), "{rejected:#}");
    let quarantine = reasons(&site.show("quarantine")?);
    for reason in ["patient_mismatch", "no_patient_identity"] {
        assert!(quarantine.contains(&reason.to_string()), "{reason}: {quarantine:?}");
    }
    let charted: Vec<f64> = readings(&site, DEVICE_1)?.iter().filter_map(|r| r["value"].as_f64()).collect();
    assert!(!charted.iter().any(|v| [91.0, 92.0].contains(v)), "neither is charted: {charted:?}");

    // A resend stores nothing new; a reused control id with new content is stored and counted.
    let before = site.count("readings")?;
    let resend = send(port, &[&fixture("hl7/pcd01-gateway-two-devices.hl7")])?;
    assert_eq!(resend[0]["msa1"], "AA");
    assert_eq!(site.count("readings")?, before, "a resend stores nothing new");
    let reused = message(&site, "reused.hl7", &[&MSH.replace("CONTROL", "GW-1001"), PID, &obx("96", DEVICE_1)])?;
    assert_eq!(send(port, &[&reused])?[0]["msa1"], "AA");
    assert_eq!(site.count("readings")?, before + 1, "new content under a reused control id is stored");
    vigil
        .wait_status(Duration::from_secs(10), |s| {
            vigil_tests::component(s, "mllp")["reason"].as_str().is_some_and(|r| r.contains("control_id_reused 1"))
        })
        .await?;
    // The perfusion index no code maps is counted on the board (the gateway's message and its
    // resend), as is the published example's waveform, so a new field is noticed.
    vigil
        .wait_status(Duration::from_secs(10), |s| {
            vigil_tests::component(s, "profiles")["reason"]
                .as_str()
                .is_some_and(|r| r.contains("pcd-01: OBX-3 150452^MDC_PULS_OXIM_PLETH (in 1 payload), OBX-3 150488^MDC_BLD_PERF_INDEX (in 2 payloads)"))
        })
        .await?;
    // No patient identifier reaches the log.
    assert!(!site.log().contains("MRN-1000"), "PHI in the log");
    Ok(())
}

#[tokio::test]
async fn a_full_pipeline_withholds_the_ack_and_a_message_it_cannot_queue_is_answered_busy() -> anyhow::Result<()> {
    let site = mllp_site("ack_timeout_ms = 1500")?;
    site.append_config("\n[ingest]\nqueue_capacity = 1\nbatch_max = 1\nunstored_max = 1\n")?;
    let vigil = site.run()?;
    let port = vigil.mllp_addr.context("the MLLP listener runs")?.port();
    let db = site.dir.path().join("vigil.db");
    // Another process holds SQLite's write lock: nothing can be stored.
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await?;

    let files: Vec<PathBuf> = (1..=3)
        .map(|n| {
            message(
                &site,
                &format!("m{n}.hl7"),
                &[&MSH.replace("CONTROL", &format!("FULL-{n}")), PID, &obx(&format!("9{n}"), DEVICE_1)],
            )
        })
        .collect::<anyhow::Result<_>>()?;
    // The first is taken by the writer, the second waits in its queue: neither is acknowledged.
    let mut held = Vec::new();
    for file in &files[..2] {
        let mut child = Command::new(python())
            .arg(client())
            .args(["--json", "--port", &port.to_string(), "--timeout", "30", "--silence", "3"])
            .arg(file)
            .stdout(Stdio::piped())
            .spawn()?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        held.push((child, lines));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The third cannot be queued within ack_timeout: AR 207, busy, and nothing of it is stored.
    let busy = send(port, &[&files[2]])?;
    assert_eq!(busy[0]["msa1"], "AR", "{busy:#?}");
    assert!(busy[0]["errors"][0]["err3"].as_str().is_some_and(|e| e.starts_with("207^")), "{busy:#?}");
    assert!(busy[0]["errors"][0]["err8"].as_str().is_some_and(|e| e.starts_with("busy, resend")), "{busy:#?}");
    for (_, lines) in &mut held {
        let first: Value = serde_json::from_str(&lines.next().context("a line")??)?;
        assert_eq!(first["silent"], 3.0, "no ACK while the pipeline is full: {first}");
    }
    sqlx::query("ROLLBACK").execute(&mut blocker).await?;
    for (mut child, mut lines) in held {
        let ack: Value = serde_json::from_str(&lines.next().context("an ACK after the release")??)?;
        assert_eq!(ack["msa1"], "AA", "{ack}");
        assert!(child.wait()?.success());
    }
    let stored = eventually("both held messages stored", Duration::from_secs(10), async || {
        let values: Vec<f64> = readings(&site, DEVICE_1)?.iter().filter_map(|r| r["value"].as_f64()).collect();
        Ok::<_, anyhow::Error>((values.contains(&91.0) && values.contains(&92.0)).then_some(values))
    })
    .await?;
    assert!(!stored.contains(&93.0), "the busy message was not stored: {stored:?}");
    Ok(())
}

#[tokio::test]
async fn a_peer_not_in_allow_is_refused_and_check_config_requires_allow() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config("\n[sources.mllp]\nlisten = \"127.0.0.1:0\"\n")?;
    let out = Command::new(vigil_tests::vigil_bin()).args(["check-config", &site.config_str()]).output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("sources.mllp.allow"), "{text}");

    site.set_in("sources.mllp", "allow = [\"10.99.0.0/16\"]")?;
    let vigil = site.run()?;
    let port = vigil.mllp_addr.context("the MLLP listener runs")?.port();
    let refused = Command::new(python())
        .arg(client())
        .args(["--json", "--port", &port.to_string(), "--timeout", "5"])
        .arg(fixture("hl7/pcd01-gateway-two-devices.hl7"))
        .output()?;
    assert_eq!(refused.status.code(), Some(2), "no ACK for a peer not in allow");
    vigil
        .wait_status(Duration::from_secs(10), |s| {
            vigil_tests::component(s, "mllp")["reason"].as_str().is_some_and(|r| r.contains("1 refused (not in allow)"))
        })
        .await?;
    assert_eq!(site.count("payloads")?, 0, "nothing from it is stored");
    Ok(())
}

#[tokio::test]
async fn gateways_connect_over_tls_and_a_required_client_certificate_is_enforced() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    vigil_tests::certificates(certs.path(), "gateway-icu")?;
    let pem = |name: &str| certs.path().join(name).to_string_lossy().into_owned();
    let site = mllp_site(&format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_client_ca_file = \"{}\"\nrequire_client_cert = true",
        pem("server.pem"),
        pem("server.key"),
        pem("ca.pem")
    ))?;
    let vigil = site.run()?;
    let port = vigil.mllp_addr.context("the MLLP listener runs")?.port();
    let message = fixture("hl7/pcd01-gateway-two-devices.hl7");
    let send_tls = |identity: &[&str]| {
        Command::new(python())
            .arg(client())
            .args(["--json", "--port", &port.to_string(), "--timeout", "10", "--tls-ca", &pem("ca.pem")])
            .args(identity)
            .arg(&message)
            .output()
    };
    let with = send_tls(&["--tls-cert", &pem("client.pem"), "--tls-key", &pem("client.key")])?;
    let ack: Value =
        serde_json::from_slice(&with.stdout).with_context(|| String::from_utf8_lossy(&with.stderr).to_string())?;
    assert_eq!(ack["msa1"], "AA", "{ack}");
    let without = send_tls(&[])?;
    assert_eq!(
        without.status.code(),
        Some(2),
        "no ACK without a client certificate: {}{}",
        String::from_utf8_lossy(&without.stdout),
        String::from_utf8_lossy(&without.stderr)
    );
    let plain = send(port, &[&message]);
    assert!(plain.is_err(), "plain text is not spoken on a TLS listener: {plain:?}");
    assert_eq!(readings(&site, DEVICE_1)?.len(), 2, "only the message over TLS with a certificate is stored");
    Ok(())
}
