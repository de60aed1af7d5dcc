//! Acceptance of the clinical-events plane against a real FHIR R4 server (medplum's FHIR router with
//! R4 and vital-signs profile validation on every write): read-back, independent validation, an
//! outage of the server during delivery, a permanent rejection, SMART Backend Services, and pairing
//! verification at provisioning.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use pipeline_core::clinical::{self, Admission};
use pipeline_core::config::{EhrEnvironment, EhrKind, EhrTarget};

/// A production FHIR EHR, as the checks before the outbox see it.
const FHIR: EhrTarget = EhrTarget { kind: EhrKind::Fhir, environment: EhrEnvironment::Production };
use pipeline_core::fhir::{CONTENT_HASH_SYSTEM, LOINC_SYSTEM, MDC_SYSTEM, MEASUREMENT_STATUS_SYSTEM, UCUM_SYSTEM};
use pipeline_core::model::Validity;
use pipeline_core::model::codes::metric_by_code;
use pipeline_core::model::event::{ClinicalEvent, Effective, EventContent, Observation};
use serde_json::{Value, json};
use vigil_tests::{BrokerKind, DEMO_SYSTEM, FhirServer, Site, eventually, validate_fhir, with_status};

async fn ehr_patient(fhir: &FhirServer, mrn: &str) -> anyhow::Result<String> {
    let p = fhir
        .create(json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": mrn}],
        "name": [{"family": "Test", "given": [mrn]}]}))
        .await?;
    Ok(p["id"].as_str().unwrap().to_string())
}

fn fhir_site(fhir: &FhirServer, extra: &str) -> anyhow::Result<Site> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 2\nmax_backoff_secs = 2\nbatch_events = 20\n{extra}",
        fhir.base
    ))?;
    Ok(site)
}

fn pair(site: &Site, device: &str, mrn: &str) -> anyhow::Result<String> {
    site.pair_anew(device, mrn)
}

fn event(site: &Site, device: &str, mrn: &str, args: &[&str]) -> anyhow::Result<String> {
    site.for_patient("event", device, mrn, args)
}

fn codes(concept: &Value) -> Vec<(String, String)> {
    concept["coding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["system"].as_str().unwrap().to_string(), c["code"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_real_fhir_server_valid_and_once() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    let alpha = ehr_patient(&fhir, "MRN-100000").await?;
    let site = fhir_site(&fhir, "")?;

    // Provisioning: the pairing is verified at the EHR, or refused.
    pair(&site, "MX-00A0", "MRN-100000")?;
    let refused = pair(&site, "OX-1001", "MRN-404").unwrap_err().to_string();
    assert!(refused.contains("knows no patient"), "{refused}");
    assert!(!refused.contains("MRN-404"), "no PHI in the refusal: {refused}");
    ehr_patient(&fhir, "MRN-100002").await?;
    ehr_patient(&fhir, "MRN-100002").await?;
    let ambiguous = pair(&site, "OX-1001", "MRN-100002").unwrap_err().to_string();
    assert!(ambiguous.contains("knows 2 patients"), "{ambiguous}");

    let at = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    event(&site, "MX-00A0", "MRN-100000", &["--obs", "150456=88", "--at", &at])?;
    event(&site, "MX-00A0", "MRN-100000", &["--bp", "128/82/97", "--at", &at])?;
    event(
        &site,
        "MX-00A0",
        "MRN-100000",
        &["--obs", "147842=118", "--obs", "151562=22", "--obs", "150364=38.2", "--report", "Spot check", "--at", &at],
    )?;
    event(&site, "MX-00A0", "MRN-100000", &["--obs", "150456=0", "--validity", "invalid", "--at", &at])?;
    event(&site, "MX-00A0", "MRN-100000", &["--obs", "149530=131", "--validity", "questionable", "--at", &at])?;
    // Bravo was never verified at this EHR: held with the reason, never sent.
    let held = event(&site, "00-1B-C5-0C-00-00-00-00", "MRN-100001", &["--obs", "149530=70"]).unwrap_err().to_string();
    assert!(held.contains("not verified at the EHR"), "{held}");

    let vigil = site.run()?;
    let outbox = site.wait_outbox(Duration::from_secs(60), |o| with_status(o, "delivered") == 5).await?;
    assert_eq!(with_status(&outbox, "held"), 1);

    // Read back by identifier: each event exactly once, with both codings, UCUM units, the subject.
    let by_hash: HashMap<String, Value> =
        outbox.iter().map(|o| (o["hash"].as_str().unwrap().to_string(), o.clone())).collect();
    let mut spo2_seen = false;
    for (hash, entry) in &by_hash {
        if entry["status"] != "delivered" {
            continue;
        }
        let kind = if entry["event"]["content"]["kind"] == "report" { "DiagnosticReport" } else { "Observation" };
        let found = fhir.get(&format!("{kind}?identifier={CONTENT_HASH_SYSTEM}|{hash}")).await?;
        assert_eq!(found["entry"].as_array().map(Vec::len), Some(1), "{kind} {hash}: {found:#}");
        let r = &found["entry"][0]["resource"];
        assert_eq!(r["subject"]["reference"], format!("Patient/{alpha}"));
        if kind == "Observation" && r["code"]["coding"].as_array().unwrap().iter().any(|c| c["code"] == "150456") {
            let c = codes(&r["code"]);
            if r["valueQuantity"].is_object() {
                spo2_seen = true;
                assert!(
                    c.contains(&(LOINC_SYSTEM.into(), "2708-6".into()))
                        && c.contains(&(LOINC_SYSTEM.into(), "59408-5".into()))
                );
                assert!(c.contains(&(MDC_SYSTEM.into(), "150456".into())));
                let q = &r["valueQuantity"];
                assert_eq!(
                    (q["value"].as_f64(), &q["unit"], &q["system"], &q["code"]),
                    (Some(88.0), &json!("%"), &json!(UCUM_SYSTEM), &json!("%"))
                );
            } else {
                assert_eq!(r["dataAbsentReason"]["coding"][0]["code"], "error", "invalid measurement: {r:#}");
            }
        }
        if kind == "DiagnosticReport" {
            assert_eq!(r["result"].as_array().unwrap().len(), 3);
            for result in r["result"].as_array().unwrap() {
                let reference = result["reference"].as_str().unwrap();
                let obs = fhir.get(reference).await?;
                assert_eq!(obs["resourceType"], "Observation", "{reference} resolves");
            }
        }
    }
    assert!(spo2_seen);
    let bp = fhir.get("Observation?code=http://loinc.org|85354-9").await?;
    let bp = &bp["entry"][0]["resource"];
    let components: Vec<_> =
        bp["component"].as_array().unwrap().iter().map(|c| codes(&c["code"])[0].1.clone()).collect();
    assert_eq!(components, ["8480-6", "8462-4", "8478-0"]);
    assert!(bp.get("valueQuantity").is_none());
    // A questionable value says so where a reader must consider it (PoCD measurement status).
    let pulse = fhir.get("Observation?code=urn:iso:std:iso:11073:10101|149530").await?;
    let status = &pulse["entry"][0]["resource"]["interpretation"][0]["coding"][0];
    assert_eq!(
        (status["system"].as_str(), status["code"].as_str()),
        (Some(MEASUREMENT_STATUS_SYSTEM), Some("questionable")),
        "{pulse:#}"
    );

    // Every resource the pipeline created passes the independent R4 + vital-signs validator.
    let all = fhir.control(reqwest::Method::GET, "resources", None).await?;
    let mut emitted = Vec::new();
    for kind in ["Observation", "DiagnosticReport", "Device"] {
        emitted.extend(all[kind].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(
        emitted.len(),
        5 + 3 + 1,
        "1 SpO2 + 1 BP + 1 invalid + 1 questionable + 3 report observations, 1 report, 1 device"
    );
    let report = validate_fhir(&emitted)?;
    assert_eq!(report.matches("OK").count(), emitted.len(), "{report}");

    // Every delivery crossed a PHI boundary: each is in the audit log, and the chain is intact.
    let audit: Value =
        serde_json::from_str(&site.vigil(&["audit", "list", "--config", &site.config_str(), "--limit", "1000"])?)?;
    let deliveries = audit.as_array().unwrap().iter().filter(|a| a["action"] == "ehr.deliver").count();
    assert_eq!(deliveries, 5);
    assert!(
        audit.as_array().unwrap().iter().any(|a| a["action"] == "pairing.open" && a["actor"] == vigil_tests::ADMIN.0)
    );
    let verify = site.vigil(&["audit", "verify", "--config", &site.config_str()])?;
    assert!(verify.contains("intact"), "{verify}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// Queues `n` single SpO2 events spread over the given patients, straight into the site's store.
async fn queue_events(site: &Site, patients: &[(i64, &str)], n: usize) -> anyhow::Result<Vec<String>> {
    let url = format!("sqlite://{}", site.dir.path().join("vigil.db").display());
    let store = pipeline_core::store::open(&url, pipeline_core::clock::system()).await?;
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let mut hashes = Vec::new();
    for i in 0..n {
        let (patient_id, device) = patients[i % patients.len()];
        let event = ClinicalEvent {
            patient_id,
            device_id: device.into(),
            origin: "test".into(),
            content: EventContent::Single {
                observation: Observation::Vital {
                    metric: metric_by_code(150456).unwrap(),
                    value: 85.0 + (i % 10) as f64,
                    effective: Effective::At { at: t0 + chrono::Duration::seconds(i as i64) },
                    validity: Validity::Valid,
                    method: None,
                },
            },
        };
        match clinical::submit(store.as_ref(), &event, FHIR, None, Utc::now()).await? {
            Admission::Queued(_) => hashes.push(event.content_hash().to_hex()),
            other => anyhow::bail!("event {i} not queued: {other:?}"),
        }
    }
    Ok(hashes)
}

fn patient_key(site: &Site, device: &str) -> anyhow::Result<i64> {
    let devices: Value = serde_json::from_str(&site.vigil(&["devices", "--config", &site.config_str()])?)?;
    let d = devices.as_array().unwrap().iter().find(|d| d["device_id"] == device).unwrap();
    Ok(d["patient_id"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_outage_delays_but_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    for mrn in ["MRN-100000", "MRN-100001", "MRN-100003"] {
        ehr_patient(&fhir, mrn).await?;
    }
    let site = fhir_site(&fhir, "")?;
    let devices = [
        ("MX-00A0", "MRN-100000"),
        ("00-1B-C5-0C-00-00-00-00", "MRN-100001"),
        ("00-1B-C5-0C-00-00-00-01", "MRN-100003"),
    ];
    let mut patients = Vec::new();
    for (device, mrn) in devices {
        pair(&site, device, mrn)?;
        patients.push((patient_key(&site, device)?, device));
    }
    let hashes = queue_events(&site, &patients, 3000).await?;

    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(120), |o| with_status(o, "delivered") >= 300).await?;
    // The server stops answering mid-delivery: requests in flight time out, some after the server
    // already took them (a lost response); the outbox retries with the same identifiers.
    fhir.pause();
    // The outage catches events in flight, and the pending ones say why they wait.
    site.wait_outbox(Duration::from_secs(30), |o| {
        o.iter()
            .any(|o| o["status"] == "pending" && o["reason"].as_str().is_some_and(|r| r.contains("EHR unreachable")))
    })
    .await
    .context("the outage must catch events in flight, and pending events say why they wait")?;
    fhir.resume();
    let outbox = site.wait_outbox(Duration::from_secs(180), |o| with_status(o, "delivered") == 3000).await?;
    assert_eq!(with_status(&outbox, "dead"), 0);

    // Exactly once at the server: every event's identifier appears on exactly one Observation.
    let all = fhir.control(reqwest::Method::GET, "resources", None).await?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for obs in all["Observation"].as_array().unwrap() {
        *seen.entry(obs["identifier"][0]["value"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), 3000, "every event arrived");
    assert!(seen.values().all(|&n| n == 1), "no event arrived twice");
    for h in &hashes {
        assert_eq!(seen.get(h), Some(&1), "event {h}");
    }
    assert_eq!(all["Device"].as_array().unwrap().len(), 3, "devices are created once too");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_rejection_is_dead_lettered_without_blocking_others() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    let alpha = ehr_patient(&fhir, "MRN-100000").await?;
    ehr_patient(&fhir, "MRN-100001").await?;
    let site = fhir_site(&fhir, "")?;
    pair(&site, "MX-00A0", "MRN-100000")?;
    pair(&site, "00-1B-C5-0C-00-00-00-00", "MRN-100001")?;
    fhir.control(
        reqwest::Method::POST,
        "reject",
        Some(json!({"subjectReference": format!("Patient/{alpha}"), "status": 422, "text": "Patient record merged; use the surviving record"})),
    )
    .await?;
    let patients = [
        (patient_key(&site, "MX-00A0")?, "MX-00A0"),
        (patient_key(&site, "00-1B-C5-0C-00-00-00-00")?, "00-1B-C5-0C-00-00-00-00"),
    ];
    queue_events(&site, &patients, 10).await?;

    let vigil = site.run()?;
    let outbox = site
        .wait_outbox(Duration::from_secs(60), |o| with_status(o, "delivered") == 5 && with_status(o, "dead") == 5)
        .await?;
    for o in &outbox {
        let alpha_event = o["patient_id"] == patients[0].0;
        assert_eq!(o["status"], if alpha_event { "dead" } else { "delivered" }, "{o}");
        if alpha_event {
            let reason = o["reason"].as_str().unwrap();
            assert!(
                reason.contains("422") && reason.contains("Patient record merged"),
                "the EHR's outcome text: {reason}"
            );
        }
    }

    // An operator fixes the cause and resends.
    fhir.control(reqwest::Method::DELETE, "reject", None).await?;
    for o in outbox.iter().filter(|o| o["status"] == "dead") {
        site.vigil(&["requeue", "--config", &site.config_str(), &o["id"].to_string()])?;
    }
    site.wait_outbox(Duration::from_secs(60), |o| with_status(o, "delivered") == 10).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The SMART server's token lifetime: short, so that the test sees a renewal (due a fifth of the
/// lifetime early, at 8 s), and long enough that the reuse check, a second or two, ends well before.
const TOKEN_TTL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_backend_services_token_is_checked_and_reused() -> anyhow::Result<()> {
    let keys = tempfile::tempdir()?;
    for name in ["vigil", "stranger"] {
        openssl(
            keys.path(),
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &format!("{name}.key")],
        );
        openssl(keys.path(), &["pkey", "-in", &format!("{name}.key"), "-pubout", "-out", &format!("{name}.pub")]);
    }
    let public = keys.path().join("vigil.pub");
    let fhir = FhirServer::start(&[
        "--smart",
        "--client-id",
        "vigil-test",
        "--public-key-file",
        public.to_str().unwrap(),
        "--token-ttl",
        &TOKEN_TTL.as_secs().to_string(),
    ])?;
    let smart = |key: &str| {
        format!(
            "auth = \"smart\"\ntoken_url = \"{}/auth/token\"\nclient_id = \"vigil-test\"\nprivate_key_file = {:?}\nalgorithm = \"RS384\"\n",
            fhir.root,
            keys.path().join(key)
        )
    };
    let anonymous = reqwest::Client::new().get(format!("{}/Patient", fhir.base)).send().await?;
    assert_eq!(anonymous.status(), 401, "the server demands a token");

    // A client whose key the server does not know is refused at the token endpoint.
    let stranger = fhir_site(&fhir, &smart("stranger.key"))?;
    let refused = pair(&stranger, "MX-00A0", "MRN-100000").unwrap_err().to_string();
    assert!(refused.contains("refused the client"), "{refused}");

    let site = fhir_site(&fhir, &smart("vigil.key"))?;
    seed_patient_with_token(&fhir, &keys.path().join("vigil.key")).await?;
    pair(&site, "MX-00A0", "MRN-100000")?;
    let tokens = |stats: &Value| stats["tokens_issued"].as_u64().unwrap();
    let before = tokens(&fhir.control(reqwest::Method::GET, "stats", None).await?);

    let started = Instant::now();
    let vigil = site.run()?;
    let patients = [(patient_key(&site, "MX-00A0")?, "MX-00A0")];
    queue_events(&site, &patients, 3).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 3).await?;
    let after_first = tokens(&fhir.control(reqwest::Method::GET, "stats", None).await?);
    assert_eq!(after_first, before + 1, "the running pipeline asked for one token");
    // Within its lifetime the token is reused...
    let more = queue_more(&site, patients[0], 100, 3).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 3 + more).await?;
    assert_eq!(tokens(&fhir.control(reqwest::Method::GET, "stats", None).await?), after_first, "token reused");
    // ...and renewed shortly before it expires (a fifth of its lifetime early). Vigil renews when it
    // sends, so it sends one event after another until the server has issued the next token; none
    // of those requests may be refused, i.e. the first token was never used past its lifetime.
    let auth_failures = |stats: &Value| stats["auth_failures"].as_u64().unwrap();
    let failures_before = auth_failures(&fhir.control(reqwest::Method::GET, "stats", None).await?);
    let (mut delivered, mut offset) = (3 + more, 200);
    eventually("the token's renewal", TOKEN_TTL * 3, async || -> anyhow::Result<_> {
        delivered += queue_more(&site, patients[0], offset, 1).await?;
        offset += 1;
        site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == delivered).await?;
        Ok(tokens(&fhir.control(reqwest::Method::GET, "stats", None).await?) > after_first)
    })
    .await?;
    let renewed_after = started.elapsed();
    assert!(renewed_after >= TOKEN_TTL * 4 / 5, "renewed {renewed_after:?} after start: too early");
    let stats = fhir.control(reqwest::Method::GET, "stats", None).await?;
    assert_eq!(tokens(&stats), after_first + 1, "token renewed once");
    assert_eq!(auth_failures(&stats), failures_before, "no request carried an expired token");

    // ES384 keys work as well as RS384.
    openssl(keys.path(), &["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "ec.sec1"]);
    openssl(keys.path(), &["pkcs8", "-topk8", "-nocrypt", "-in", "ec.sec1", "-out", "ec.key"]);
    openssl(keys.path(), &["pkey", "-in", "ec.key", "-pubout", "-out", "ec.pub"]);
    let ec_public = std::fs::read_to_string(keys.path().join("ec.pub"))?;
    fhir.control(reqwest::Method::POST, "clients", Some(json!({"client_id": "vigil-ec", "public_key_pem": ec_public})))
        .await?;
    let ec = pipeline_core::sinks::smart::SmartClient::new(
        &format!("{}/auth/token", fhir.root),
        "vigil-ec",
        "system/Observation.write",
        "ES384",
        &keys.path().join("ec.key"),
        pipeline_core::clock::system(),
    )?;
    assert!(!ec.token(&reqwest::Client::new()).await?.is_empty());

    let stats = fhir.control(reqwest::Method::GET, "stats", None).await?;
    let jtis: Vec<&str> = stats["assertion_jtis"].as_array().unwrap().iter().map(|j| j.as_str().unwrap()).collect();
    let unique: std::collections::HashSet<_> = jtis.iter().collect();
    assert_eq!(unique.len(), jtis.len(), "every assertion has a fresh jti");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// Creates the patient at the SMART-protected server with a token of our own client, as an EHR's
/// registration desk would have.
async fn seed_patient_with_token(fhir: &FhirServer, key: &std::path::Path) -> anyhow::Result<()> {
    let client = pipeline_core::sinks::smart::SmartClient::new(
        &format!("{}/auth/token", fhir.root),
        "vigil-test",
        "system/Patient.write",
        "RS384",
        key,
        pipeline_core::clock::system(),
    )?;
    let http = reqwest::Client::new();
    let token = client.token(&http).await?;
    let response = http
        .post(format!("{}/Patient", fhir.base))
        .bearer_auth(token)
        .json(&json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "seeding the patient: {}", response.status());
    Ok(())
}

/// Queues `n` more events with times offset by `offset` minutes; returns `n`.
async fn queue_more(site: &Site, patient: (i64, &str), offset: i64, n: usize) -> anyhow::Result<usize> {
    let url = format!("sqlite://{}", site.dir.path().join("vigil.db").display());
    let store = pipeline_core::store::open(&url, pipeline_core::clock::system()).await?;
    for i in 0..n {
        let event = ClinicalEvent {
            patient_id: patient.0,
            device_id: patient.1.into(),
            origin: "test".into(),
            content: EventContent::Single {
                observation: Observation::Vital {
                    metric: metric_by_code(149530).unwrap(),
                    value: 70.0 + i as f64,
                    effective: Effective::At { at: Utc::now() - chrono::Duration::minutes(offset) },
                    validity: Validity::Valid,
                    method: None,
                },
            },
        };
        anyhow::ensure!(matches!(
            clinical::submit(store.as_ref(), &event, FHIR, None, Utc::now()).await?,
            Admission::Queued(_)
        ));
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ehr_the_sandbox_keeps_what_would_have_been_sent() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "150456=95"])?;
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--bp", "121/79"])?;
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "151708=38"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 3).await?;
    let kept: Value = serde_json::from_str(&site.vigil(&["show", "sandbox", "--config", &site.config_str()])?)?;
    let bundles = kept.as_array().unwrap();
    assert_eq!(bundles.len(), 3);
    let resources: Vec<Value> = bundles
        .iter()
        .flat_map(|b| b["bundle"]["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()))
        .collect();
    assert_eq!(resources.iter().filter(|r| r["resourceType"] == "Observation").count(), 3);
    // End-tidal CO2 as a partial pressure: LOINC 19891-1 in mm[Hg].
    let etco2 = resources
        .iter()
        .find(|r| r["code"]["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "151708")));
    let codes: Vec<&str> =
        etco2.unwrap()["code"]["coding"].as_array().unwrap().iter().filter_map(|c| c["code"].as_str()).collect();
    assert!(codes.contains(&"19891-1") && !codes.contains(&"19889-5"), "{codes:?}");
    validate_fhir(&resources)?;

    // A held event goes back in the queue only once what held it is fixed (fail-closed).
    let held = site.for_patient("event", "OX-1001", "MRN-100002", &["--obs", "150456=96"]).unwrap_err().to_string();
    assert!(held.contains("no recorded consent") && held.contains("ehr-write"), "{held}");
    let id = site.outbox()?.iter().find(|o| o["status"] == "held").unwrap()["id"].to_string();
    let still = site.vigil(&["requeue", "--config", &site.config_str(), &id]).unwrap_err().to_string();
    assert!(still.contains("still held"), "{still}");
    let config = site.config_str();
    // The event is built from telemetry: it needs consent to keep that, and to write to the EHR.
    for flow in ["store", "ehr-write"] {
        let patient = ["--patient-system", DEMO_SYSTEM, "--patient", "MRN-100002", "--flow", flow];
        site.vigil(&[&["consent", "--config", &config][..], &patient].concat())?;
    }
    site.vigil(&["requeue", "--config", &config, &id])?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 4).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_comes_from_the_environment() -> anyhow::Result<()> {
    let keys = tempfile::tempdir()?;
    openssl(keys.path(), &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "k.key"]);
    openssl(keys.path(), &["pkey", "-in", "k.key", "-pubout", "-out", "k.pub"]);
    let public = keys.path().join("k.pub");
    let fhir =
        FhirServer::start(&["--smart", "--client-id", "vigil-test", "--public-key-file", public.to_str().unwrap()])?;
    seed_patient_with_token(&fhir, &keys.path().join("k.key")).await?;
    // A token issued out of band (as a site's integration engine would hand one over).
    let smart = pipeline_core::sinks::smart::SmartClient::new(
        &format!("{}/auth/token", fhir.root),
        "vigil-test",
        "system/*.*",
        "RS384",
        &keys.path().join("k.key"),
        pipeline_core::clock::system(),
    )?;
    let token = smart.token(&reqwest::Client::new()).await?;
    let site = fhir_site(&fhir, "auth = \"bearer\"\nbearer_token = \"env:TEST_EHR_TOKEN\"\n")?;
    // `vigil pair` without the token cannot reach the EHR, and says which variable is missing.
    let missing = pair(&site, "MX-00A0", "MRN-100000").unwrap_err().to_string();
    assert!(missing.contains("TEST_EHR_TOKEN"), "{missing}");
    let vigil = site.run_with_env(&[("TEST_EHR_TOKEN", &token)])?;
    let out = site
        .command()
        .args([
            "pair",
            "--config",
            &site.config_str(),
            "--device",
            "MX-00A0",
            "--patient-system",
            DEMO_SYSTEM,
            "--patient",
            "MRN-100000",
        ])
        .env("TEST_EHR_TOKEN", &token)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let patients = [(patient_key(&site, "MX-00A0")?, "MX-00A0")];
    queue_events(&site, &patients, 2).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 2).await?;
    assert!(vigil.terminate().await?.success());
    // The token is used, and never written down: not in vigil.toml, not in the log.
    assert!(!std::fs::read_to_string(&site.config)?.contains(&token));
    assert!(!site.log().contains(&token), "the bearer token is in the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mrn_with_a_comma_matches_exactly_that_patient() -> anyhow::Result<()> {
    // Unescaped, `identifier=S|MRN-7,8` is an OR (S|MRN-7, or 8 in any system): it would find MRN-7.
    let fhir = FhirServer::start(&[])?;
    let both = ehr_patient(&fhir, "MRN-7,8").await?;
    ehr_patient(&fhir, "MRN-7").await?;
    ehr_patient(&fhir, "8").await?;
    let site = fhir_site(&fhir, "")?;
    pair(&site, "MX-00A1", "MRN-7,8")?;
    let config = site.config_str();
    for flow in ["store", "ehr-write"] {
        let patient = ["--patient-system", DEMO_SYSTEM, "--patient", "MRN-7,8", "--flow", flow];
        site.vigil(&[&["consent", "--config", &config][..], &patient].concat())?;
    }
    event(&site, "MX-00A1", "MRN-7,8", &["--obs", "150456=95"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    let found = fhir.get("Observation").await?;
    assert_eq!(found["entry"][0]["resource"]["subject"]["reference"], format!("Patient/{both}"), "{found:#}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vendors_serial_sn_1_become_two_devices_at_the_ehr() -> anyhow::Result<()> {
    // Two wards (two Vigil sites) feed one EHR; each has a device whose serial is "SN-1", one an
    // Acme oximeter, one a Medi monitor. Scoped by their profiles, they are two Devices, not one.
    let fhir = FhirServer::start(&[])?;
    ehr_patient(&fhir, "MRN-100000").await?;
    for profile in ["acme-ox100", "medi-mx700"] {
        let site = fhir_site(&fhir, "")?;
        let config = site.config_str();
        site.vigil(&["devices", "--config", &config, "--register", "SN-1", "--profile", profile])?;
        pair(&site, "SN-1", "MRN-100000")?;
        event(&site, "SN-1", "MRN-100000", &["--obs", "150456=95"])?;
        let vigil = site.run()?;
        site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
        assert!(vigil.terminate().await?.success());
    }
    let devices = fhir.get("Device").await?;
    let serials: Vec<&Value> = devices["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
    assert_eq!(serials.len(), 2, "{devices:#}");
    let makers: Vec<&str> = serials.iter().filter_map(|d| d["manufacturer"].as_str()).collect();
    assert_eq!(makers, ["Acme Medical", "Medi Systems"], "{devices:#}");
    assert!(serials.iter().all(|d| d["serialNumber"] == "SN-1"));
    validate_fhir(&serials.into_iter().cloned().collect::<Vec<_>>())?;
    Ok(())
}
