//! Clinical safety end to end, over MQTT, against the real FHIR server: a probe off (through each of
//! the three shipped profiles) raises no physiological alarm, raises the technical "no valid signal"
//! alarm and clears it, sends nothing to the EHR, and stays out of the charted median; a doubtful
//! desaturation still alarms; implausible values are refused with a hint while the rest of their
//! payload goes on; a real 0 heart rate alarms; and a patient without consent to store is still
//! alarmed for, and the held data follows once consent is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Site, eventually, fixture, of_kind, publish_tracked, validate_fhir,
    with_status,
};

/// One MQTT message: topic and payload.
type Message = (String, Vec<u8>);

const OXIMETER: &str = "OX-1000";
const MONITOR: &str = "MX-00A0";
const WEARABLE: &str = "00-1B-C5-0C-00-00-00-00";

fn payload(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("payloads/{rel}"))).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// The acme-ox100 fixture, from `device` at `at`, with this SpO2 and status flag.
fn oximeter(device: &str, at: DateTime<Utc>, spo2: f64, status: &str) -> Message {
    let mut p = payload("acme-ox100/sensor-off-values-that-would-alarm.json");
    p["sn"] = json!(device);
    p["ts"] = json!(at.to_rfc3339());
    p["spo2"] = json!(spo2);
    p["pr"] = json!(72);
    p["status"] = json!(status);
    (format!("vigil/devices/{device}/oximeter"), p.to_string().into_bytes())
}

/// The medi-mx700 probe-off fixture (SpO2 with its own status, HR valid), for MRN-100000.
fn monitor(at: DateTime<Utc>, spo2: f64, spo2_status: &str) -> Message {
    let mut p = payload("medi-mx700/spo2-probe-off.json");
    p["monitor"]["id"] = json!(MONITOR);
    p["monitor"]["patient"]["mrn"] = json!("MRN-100000");
    p["obs"]["time"] = json!(at.to_rfc3339());
    p["obs"]["params"][1]["v"] = json!(spo2);
    p["obs"]["params"][1]["status"] = json!(spo2_status);
    p["obs"]["params"][2]["status"] = json!("ok");
    (format!("vigil/devices/{MONITOR}/monitor"), p.to_string().into_bytes())
}

/// The vitaband-2 off-wrist fixture reduced to one sample at `at`.
fn wearable(at: DateTime<Utc>, spo2: f64, q: &str) -> Message {
    let mut p = payload("vitaband-2/off-wrist.json");
    p["device"]["eui64"] = json!(WEARABLE);
    p["batch"] = json!([{"t": at.timestamp_millis(), "hr": 72, "spo2": spo2, "q": q}]);
    (format!("vigil/devices/{WEARABLE}/wearable"), p.to_string().into_bytes())
}

/// Short rule timings: SpO2 low after 5 s, no valid signal after 3 s; with `charting`, one-minute
/// charting periods closed 5 s after they end (else the 15-minute ones never close in a test).
fn short_rules(site: &Site, charting: bool) -> anyhow::Result<()> {
    site.edit_rules(|r| {
        let r = r
            .replace("for_secs = 60", "for_secs = 5")
            .replace("for_secs = 30", "for_secs = 5")
            .replace("after_secs = 30\n", "after_secs = 3\n");
        if charting {
            r.replace("every_secs = 900", "every_secs = 60").replace("late_after_secs = 300", "late_after_secs = 5")
        } else {
            r
        }
    })
}

async fn ehr_with_patients(mrns: &[&str]) -> anyhow::Result<FhirServer> {
    let fhir = FhirServer::start(&[])?;
    for mrn in mrns {
        fhir.create(json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": mrn}]})).await?;
    }
    Ok(fhir)
}

/// Every resource of a search, following no paging (the test server returns them all).
async fn search(fhir: &FhirServer, query: &str) -> anyhow::Result<Vec<Value>> {
    let bundle = fhir.get(query).await?;
    Ok(bundle["entry"].as_array().into_iter().flatten().map(|e| e["resource"].clone()).collect())
}

/// The Observations the EHR holds that reference this device.
async fn observations_of(fhir: &FhirServer, device_id: &str) -> anyhow::Result<Vec<Value>> {
    let devices = search(fhir, "Device").await?;
    let ids: Vec<String> = devices
        .iter()
        .filter(|d| d["identifier"].as_array().into_iter().flatten().any(|i| i["value"] == device_id))
        .map(|d| format!("Device/{}", d["id"].as_str().unwrap_or_default()))
        .collect();
    let all = search(fhir, "Observation?_count=1000").await?;
    Ok(all
        .into_iter()
        .filter(|o| o["device"]["reference"].as_str().is_some_and(|r| ids.iter().any(|i| i == r)))
        .collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn instant(o: &Value) -> Option<DateTime<Utc>> {
    o["effectiveDateTime"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
}

fn period_start(o: &Value) -> Option<DateTime<Utc>> {
    o["effectivePeriod"]["start"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
}

/// Publishes one message per device each second, the value and flag given by `step(i, at)`.
async fn send_each_second(
    port: u16,
    seconds: usize,
    step: impl Fn(usize, DateTime<Utc>) -> Vec<Message>,
) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let mut times = Vec::new();
    for i in 0..seconds {
        let at = Utc::now();
        publish_tracked(port, step(i, at), 10, Duration::from_secs(10), |_| {}).await?;
        times.push(at);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    Ok(times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_off_through_each_profile_alarms_technically_and_never_reaches_the_chart() -> anyhow::Result<()> {
    let fhir = ehr_with_patients(&["MRN-100000", "MRN-100001"]).await?;
    let site = Site::new(BrokerKind::Embedded)?;
    short_rules(&site, true)?;
    site.append_config(&format!("[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\n", fhir.base))?;
    site.pair_anew(OXIMETER, "MRN-100000")?;
    site.pair_anew(MONITOR, "MRN-100000")?;
    site.pair_anew(WEARABLE, "MRN-100001")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // 3 s valid, 8 s probe off with SpO2 85 (below the 90 % limit for longer than its 5 s), 4 s valid.
    let valid = |i: usize| [96.0, 97.0, 98.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 95.0, 96.0, 97.0, 99.0][i];
    let off = |i: usize| (3..11).contains(&i);
    let times = send_each_second(port, 15, |i, at| {
        if off(i) {
            vec![oximeter(OXIMETER, at, 85.0, "sensor_off"), monitor(at, 85.0, "off"), wearable(at, 85.0, "off_wrist")]
        } else {
            let v = valid(i);
            vec![oximeter(OXIMETER, at, v, "ok"), monitor(at, v, "ok"), wearable(at, v, "ok")]
        }
    })
    .await?;
    let (off_from, off_to) = (times[3], times[10]);

    // Each device's SpO2 raised "no valid signal", and valid data cleared it.
    let devices = [OXIMETER, MONITOR, WEARABLE];
    let mut last = Vec::new();
    eventually("each probe-off alarm raised and cleared", Duration::from_secs(20), async || {
        last = of_kind(&site.alarms()?, "technical");
        let done = devices.iter().all(|d| {
            last.iter().any(|a| {
                a["rule_id"] == "no-valid-signal"
                    && a["device_id"] == *d
                    && a["mdc_code"] == 150456
                    && !a["cleared_at"].is_null()
            })
        });
        anyhow::Ok(done)
    })
    .await
    .with_context(|| format!("technical alarms: {last:#?}"))?;
    let physiological = of_kind(&site.alarms()?, "physiological");
    assert!(physiological.is_empty(), "SpO2 85 flagged invalid alarmed: {physiological:#?}");

    // Each minute's SpO2 median, per device, of the valid values only.
    let mut expected: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (i, at) in times.iter().enumerate().filter(|(i, _)| !off(*i)) {
        expected.entry(at.timestamp().div_euclid(60) * 60).or_default().push(valid(i));
    }
    for device in devices {
        let mut held = Vec::new();
        let summaries = eventually("the charting summaries", Duration::from_secs(90), async || {
            held = observations_of(&fhir, device).await?;
            let spo2: Vec<Value> = held
                .iter()
                .filter(|o| o["code"]["coding"].as_array().into_iter().flatten().any(|c| c["code"] == "59408-5"))
                .filter(|o| o.get("effectivePeriod").is_some())
                .cloned()
                .collect();
            anyhow::Ok((spo2.len() >= expected.len()).then_some(spo2))
        })
        .await
        .with_context(|| format!("{device}: the EHR holds {held:#?}; log: {}", site.log()))?;
        for (minute, values) in &expected {
            let start = DateTime::from_timestamp(*minute, 0).unwrap();
            let s = summaries
                .iter()
                .find(|s| period_start(s) == Some(start))
                .with_context(|| format!("{device}: no summary for the minute from {start}: {summaries:#?}"))?;
            // Charted at SpO2's precision, whole percent (an even count's median may end in .5).
            assert_eq!(s["valueQuantity"]["value"].as_f64(), Some(median(values.clone()).round()), "{device}: {s:#}");
            let readings = format!("1-minute median of {} valid reading", values.len());
            assert!(s["method"]["text"].as_str().is_some_and(|t| t.starts_with(&readings)), "{device}: {s:#}");
        }
        validate_fhir(&summaries)?;
        let during: Vec<&Value> =
            held.iter().filter(|o| instant(o).is_some_and(|t| t >= off_from && t <= off_to)).collect();
        assert_eq!(during.len(), 0, "{device}: the EHR holds Observations from the probe-off span: {during:#?}");
    }
    assert_eq!(with_status(&site.outbox()?, "held"), 0);
    // The wearable's EUI-64 is its Device's SYSID identifier, dashed (HL7 PHD IG).
    let band = search(&fhir, "Device").await?.into_iter().find(|d| d["identifier"][0]["value"] == WEARABLE);
    let band = band.context("no Device for the wearable")?;
    assert_eq!(band["identifier"][0]["type"]["coding"][0]["code"], "SYSID", "{band:#}");
    validate_fhir(&[band])?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doubtful_desaturations_alarm_implausible_values_are_refused_and_a_zero_heart_rate_alarms() -> anyhow::Result<()>
{
    let site = Site::new(BrokerKind::Embedded)?;
    short_rules(&site, false)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // A low-perfusion desaturation (SpO2 84, questionable) for 7 s still raises the SpO2 alarm, and an
    // ECG heart rate of 0 (asystole), flagged valid, raises the high-priority heart-rate alarm.
    let asystole = |at: DateTime<Utc>| {
        let mut p = payload("medi-mx700/spo2-probe-off.json");
        p["monitor"]["id"] = json!(MONITOR);
        p["monitor"]["patient"]["mrn"] = json!("MRN-100000");
        p["obs"]["time"] = json!(at.to_rfc3339());
        p["obs"]["params"] = json!([{"label": "HR", "v": 0, "uom": "bpm", "status": "ok"}]);
        (format!("vigil/devices/{MONITOR}/monitor"), p.to_string().into_bytes())
    };
    send_each_second(port, 7, |_, at| vec![oximeter(OXIMETER, at, 84.0, "low_perfusion"), asystole(at)]).await?;
    let mut last = Vec::new();
    eventually("the SpO2 and heart-rate alarms", Duration::from_secs(20), async || {
        last = of_kind(&site.alarms()?, "physiological");
        anyhow::Ok(last.len() >= 2)
    })
    .await
    .with_context(|| format!("alarms: {last:#?}"))?;
    let rule = |id: &str| last.iter().find(|a| a["rule_id"] == id).cloned().unwrap_or_default();
    let spo2 = rule("spo2-low");
    assert_eq!(spo2["priority"], "high");
    assert!(spo2["description"].as_str().unwrap_or_default().ends_with("(questionable signal)"), "{spo2:#}");
    let hr = rule("heart-rate-low");
    assert_eq!((hr["priority"].as_str(), hr["value"].as_f64()), (Some("high"), Some(0.0)), "{last:#?}");

    // 98.6 labelled degC and SpO2 0.97 % are refused with their hints; the rest of each payload is stored.
    let before =
        site.wait_counts(Duration::from_secs(20), |c| c["readings"] == 21).await?["readings"].as_i64().unwrap();
    let now = Utc::now();
    let mut fever = payload("medi-mx700/full-panel.json");
    fever["monitor"] = json!({"id": MONITOR, "patient": {"mrn": "MRN-100000"}});
    fever["obs"]["time"] = json!(now.to_rfc3339());
    fever["obs"]["params"] =
        json!([{"label": "TEMP", "v": 98.6, "uom": "degC"}, {"label": "HR", "v": 72, "uom": "bpm"}]);
    let fraction = oximeter(OXIMETER, now, 0.97, "ok");
    let zero = {
        let (topic, _) = oximeter(OXIMETER, now, 0.0, "ok");
        let mut p = payload("acme-ox100/spo2-zero-flagged-valid.json");
        p["sn"] = json!(OXIMETER);
        p["ts"] = json!((now + chrono::Duration::seconds(1)).to_rfc3339());
        (topic, p.to_string().into_bytes())
    };
    let messages = vec![(format!("vigil/devices/{MONITOR}/monitor"), fever.to_string().into_bytes()), fraction, zero];
    publish_tracked(port, messages, 10, Duration::from_secs(10), |_| {}).await?;
    // Kept: the heart rate of the first payload and the pulse rate of the other two.
    site.wait_counts(Duration::from_secs(20), |c| c["readings"] == before + 3).await?;
    let quarantine = site.show("quarantine")?;
    let implausible: Vec<String> = quarantine
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["reason"] == "implausible")
        .map(|q| q["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(implausible.len(), 3, "{quarantine:#}");
    assert!(implausible.iter().any(|d| d.contains("98.6 Cel") && d.ends_with("a Fahrenheit value labelled Celsius?")));
    assert!(implausible.iter().any(|d| d.contains("0.97 %") && d.ends_with("a fraction labelled percent?")));
    assert!(implausible.iter().any(|d| d.contains(" 0 %")), "SpO2 0 flagged valid: {implausible:#?}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_without_store_consent_is_still_alarmed_for_and_the_held_data_follows_consent() -> anyhow::Result<()>
{
    // MRN-100002 (OX-1001) has consented to nothing.
    let fhir = ehr_with_patients(&["MRN-100002"]).await?;
    let site = Site::new(BrokerKind::Embedded)?;
    short_rules(&site, false)?;
    site.append_config(&format!("[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\n", fhir.base))?;
    site.pair_anew("OX-1001", "MRN-100002")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    send_each_second(port, 7, |_, at| vec![oximeter("OX-1001", at, 85.0, "ok")]).await?;
    let mut last = Vec::new();
    eventually("the desaturation alarm", Duration::from_secs(20), async || {
        last = of_kind(&site.alarms()?, "physiological");
        anyhow::Ok(last.iter().any(|a| a["rule_id"] == "spo2-low" && a["device_id"] == "OX-1001"))
    })
    .await
    .with_context(|| format!("alarms: {last:#?}"))?;
    let counts = site.show("counts")?;
    let held_readings = site.show("held")?.as_array().map_or(0, Vec::len) as i64;
    assert_eq!(held_readings, 14, "7 payloads of SpO2 and pulse, held: {counts:#}");
    let outbox = site.wait_outbox(Duration::from_secs(10), |o| with_status(o, "held") == 1).await?;
    let held_event = outbox.iter().find(|o| o["status"] == "held").unwrap();
    assert!(held_event["reason"].as_str().unwrap_or_default().contains("consent"), "{held_event:#}");

    // Releasing before consent is refused; after it, exactly the held readings and event follow.
    let (config, patient) = (site.config_str(), ["--patient-system", DEMO_SYSTEM, "--patient", "MRN-100002"]);
    let release = [&["release-held", "--config", &config][..], &patient, &["--reason", "consent signed"]].concat();
    let refused = site.command().args(&release).output()?;
    assert_eq!(refused.status.code(), Some(6), "{}", String::from_utf8_lossy(&refused.stderr));
    for flow in ["store", "ehr-write"] {
        site.vigil(&[&["consent", "--config", &config][..], &patient, &["--flow", flow]].concat())?;
    }
    let before = site.count("readings")?;
    let before_ehr = observations_of(&fhir, "OX-1001").await?.len();
    let out = site.vigil(&release)?;
    assert_eq!(out.trim(), "14 held readings stored");
    assert_eq!(site.count("readings")? - before, held_readings);
    assert_eq!(site.show("held")?.as_array().map_or(0, Vec::len), 0);
    let id = held_event["id"].to_string();
    site.vigil(&["requeue", "--config", &config, &id])?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1 && with_status(o, "held") == 0)
        .await?;
    assert_eq!(observations_of(&fhir, "OX-1001").await?.len(), before_ehr + 1, "the held event, once");
    let audit = site.vigil(&["audit", "list", "--config", &config])?;
    assert!(audit.contains("held.release"), "{audit}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_sites_data_never_reaches_a_production_ehr_and_reaches_a_test_one_marked_test() -> anyhow::Result<()> {
    let fhir = ehr_with_patients(&["MRN-100000"]).await?;
    let peer = vigil_tests::MllpPeer::start(&[])?;
    let demo_site = |ehr: &str| -> anyhow::Result<Site> {
        let site = Site::new(BrokerKind::Embedded)?;
        short_rules(&site, false)?;
        site.append_config(&format!("[site]\ndemo = true\n[ehr]\n{ehr}\nmax_backoff_secs = 1\n"))?;
        Ok(site)
    };
    let fhir_ehr = format!("kind = \"fhir\"\nbase_url = \"{}\"", fhir.base);
    let mllp_ehr = format!("kind = \"hl7v2\"\nmllp_address = \"127.0.0.1:{}\"", peer.port);
    let event = |site: &Site| site.for_patient("event", MONITOR, "MRN-100000", &["--obs", "150456=88"]);

    // Production EHRs: a rule's event and an operator's event are both held, over FHIR and MLLP.
    let production = demo_site(&fhir_ehr)?;
    production.pair_anew(OXIMETER, "MRN-100000")?;
    let held = event(&production).unwrap_err().to_string();
    assert!(held.contains("demo or test data never goes to a production EHR"), "{held}");
    let vigil = production.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    send_each_second(port, 7, |_, at| vec![oximeter(OXIMETER, at, 85.0, "ok")]).await?;
    let outbox = production.wait_outbox(Duration::from_secs(20), |o| with_status(o, "held") == 2).await?;
    assert!(outbox.iter().all(|o| o["status"] == "held"), "{outbox:#?}");
    let stored = production.show("readings")?;
    assert!(stored.as_array().unwrap().iter().all(|r| r["validity"] == "demo"), "stamped at ingest: {stored:#}");
    // A quarantined reading released into a demo site's telemetry is demo data too.
    let spare = "MX-00A1";
    let (topic, payload) = monitor(Utc::now(), 96.0, "ok");
    let mut p: Value = serde_json::from_slice(&payload)?;
    p["monitor"]["id"] = json!(spare);
    publish_tracked(
        port,
        vec![(topic.replace(MONITOR, spare), p.to_string().into_bytes())],
        10,
        Duration::from_secs(10),
        |_| {},
    )
    .await?;
    let quarantined = eventually("the spare monitor's readings in quarantine", Duration::from_secs(10), async || {
        let q = production.show("quarantine")?;
        anyhow::Ok(q.as_array().and_then(|q| q.iter().find(|e| e["device_id"] == spare).cloned()))
    })
    .await?;
    assert!(vigil.terminate().await?.success());
    let config = production.config_str();
    let from = (Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    production.for_patient("pair", spare, "MRN-100000", &["--from", &from, "--reason", "late pairing"])?;
    production.vigil(&["release", "--config", &config, &quarantined["id"].to_string(), "--reason", "paired late"])?;
    let released = production.show("readings")?;
    let spare_readings: Vec<&Value> = released.as_array().unwrap().iter().filter(|r| r["device_id"] == spare).collect();
    assert!(!spare_readings.is_empty() && spare_readings.iter().all(|r| r["validity"] == "demo"), "{released:#}");
    assert_eq!(search(&fhir, "Observation").await?.len(), 0, "nothing reached the production FHIR server");

    let mllp_production = demo_site(&mllp_ehr)?;
    assert!(event(&mllp_production).unwrap_err().to_string().contains("never goes to a production EHR"));

    // Test EHRs take it, marked as test data: HTEST in FHIR, MSH-11 T and OBX-8 DEMO in HL7 v2.
    let to_test = |ehr: &str| demo_site(&format!("{ehr}\nenvironment = \"test\""));
    let fhir_test = to_test(&fhir_ehr)?;
    fhir_test.pair_anew(MONITOR, "MRN-100000")?;
    event(&fhir_test)?;
    let mllp_test = to_test(&mllp_ehr)?;
    event(&mllp_test)?;
    let (a, b) = (fhir_test.run()?, mllp_test.run()?);
    fhir_test.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    mllp_test.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    let observations = search(&fhir, "Observation").await?;
    assert_eq!(observations.len(), 1, "{observations:#?}");
    let labels = &observations[0]["meta"]["security"];
    assert!(labels.as_array().unwrap().iter().any(|l| l["code"] == "HTEST"), "{labels}");
    let received = peer.received()?;
    assert_eq!(received.len(), 1, "{received:#?}");
    let msh: Vec<&str> = received[0]["raw"].as_str().unwrap().lines().next().unwrap().split('|').collect();
    assert_eq!(msh[10], "T", "MSH-11: {msh:?}");
    assert_eq!(received[0]["obx"][0]["abnormal_flags"], "DEMO");
    assert_eq!(received[0]["valid"], true, "hl7apy: {:#}", received[0]);
    assert!(a.terminate().await?.success() && b.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_systolic_low_event_reaches_the_ehr_as_a_blood_pressure_panel() -> anyhow::Result<()> {
    let fhir = ehr_with_patients(&["MRN-100000"]).await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!("[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\n", fhir.base))?;
    site.pair_anew(MONITOR, "MRN-100000")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let mut p = payload("medi-mx700/nibp-mmhg.json");
    p["monitor"] = json!({"id": MONITOR, "patient": {"mrn": "MRN-100000"}});
    p["obs"]["time"] = json!(Utc::now().to_rfc3339());
    p["obs"]["params"] = json!([
        {"label": "NIBP_SYS", "v": 85, "uom": "mmHg"},
        {"label": "NIBP_DIA", "v": 50, "uom": "mmHg"},
        {"label": "NIBP_MEAN", "v": 62, "uom": "mmHg"}
    ]);
    let message = (format!("vigil/devices/{MONITOR}/monitor"), p.to_string().into_bytes());
    publish_tracked(port, vec![message], 10, Duration::from_secs(10), |_| {}).await?;
    site.wait_outbox(Duration::from_secs(20), |o| with_status(o, "delivered") == 1).await?;
    let panels = search(&fhir, "Observation?code=http://loinc.org|85354-9").await?;
    assert_eq!(panels.len(), 1, "{panels:#?}");
    let components: Vec<(String, f64)> = panels[0]["component"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"]["coding"][0]["code"].as_str().unwrap().to_string(),
                c["valueQuantity"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [("8480-6", 85.0), ("8462-4", 50.0), ("8478-0", 62.0)].map(|(c, v)| (c.to_string(), v));
    assert_eq!(components, expected);
    assert_eq!(search(&fhir, "Observation").await?.len(), 1, "no lone systolic Observation beside it");
    validate_fhir(&panels)?;
    assert_eq!(of_kind(&site.alarms()?, "physiological")[0]["rule_id"], "systolic-low");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
