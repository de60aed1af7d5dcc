//! Rules over live telemetry: a sustained desaturation published over MQTT raises one high-priority
//! alarm and one clinical event; repeats of the same condition raise nothing more; late data is
//! stored but raises nothing; acknowledgement is an audited operator action.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Site, eventually, of_kind, oximeter_spo2, publish_tracked, validate_fhir,
    with_status,
};

/// The patient alarms (technical ones, e.g. a paired device that stays quiet, are tested apart).
fn alarms(site: &Site) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(of_kind(&site.alarms()?, "physiological"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_desaturation_raises_one_alarm_and_one_event() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // An hour-old desaturation (a late upload): stored, never alarmed.
    let late = oximeter_spo2(84.0, Utc::now() - chrono::Duration::hours(1), 90);
    publish_tracked(port, late, 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 180).await?;

    // 100 s below 90 % ending now: the condition holds from the 60th second on.
    let now = Utc::now() - chrono::Duration::seconds(100);
    publish_tracked(port, oximeter_spo2(86.0, now, 100), 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 380).await?;
    let outbox = site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    assert_eq!(outbox[0]["event"]["origin"].as_str().unwrap().split('@').next(), Some("rule:spo2-low"));

    let raised = alarms(&site)?;
    assert_eq!(raised.len(), 1, "one alarm for one condition, none for the late data: {raised:#?}");
    let alarm = &raised[0];
    assert_eq!((alarm["rule_id"].as_str(), alarm["priority"].as_str()), (Some("spo2-low"), Some("high")));
    assert!(alarm["cleared_at"].is_null());

    // The operator acknowledges; the action is audited with the name and the reason.
    let id = alarm["id"].to_string();
    let nurse = site.account("nurse-ann", &["clinician"])?;
    let (code, out) =
        site.vigil_as(&nurse, &["ack", "--config", &site.config_str(), &id, "--reason", "probe reseated"])?;
    assert_eq!(code, 0, "{out}");
    let acked = &alarms(&site)?[0];
    assert_eq!((acked["acked_by"].as_str(), acked["ack_reason"].as_str()), (Some("nurse-ann"), Some("probe reseated")));
    let audit = site.vigil(&["audit", "list", "--config", &site.config_str()])?;
    assert!(audit.contains("alarm.ack") && audit.contains("nurse-ann"), "{audit}");

    // Recovery past the hysteresis clears the condition.
    publish_tracked(port, oximeter_spo2(95.0, Utc::now(), 3), 10, Duration::from_secs(30), |_| {}).await?;
    eventually("the alarm's clearing", Duration::from_secs(20), async || {
        anyhow::Ok(!alarms(&site)?[0]["cleared_at"].is_null())
    })
    .await?;
    assert_eq!(alarms(&site)?.len(), 1, "clearing raises nothing new");
    // Every payload's wait from arrival to durable commit is in the ingest latency histogram.
    let metrics = reqwest::get(format!("{}/metrics", vigil.status_url)).await?.text().await?;
    let count = metrics.lines().find_map(|l| l.strip_prefix("vigil_ingest_latency_seconds_count "));
    assert_eq!(count, Some("193"), "90 + 100 + 3 payloads: {metrics}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charting_period_becomes_one_median_observation_at_the_ehr() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    fhir.create(
        serde_json::json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}),
    )
    .await?;
    let site = Site::new(BrokerKind::Embedded)?;
    // One-minute periods, closed 5 s after they end, instead of 15 and 5 minutes.
    site.edit_rules(|r| {
        r.replace("every_secs = 900", "every_secs = 60").replace("late_after_secs = 300", "late_after_secs = 5")
    })?;
    site.append_config(&format!("[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\n", fhir.base))?;
    site.pair_anew("OX-1000", "MRN-100000")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    let start = Utc::now();
    let values = [96.0, 94.0, 99.0];
    let mut messages = Vec::new();
    let mut periods: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for (i, v) in values.into_iter().enumerate() {
        let at = start + chrono::Duration::seconds(i as i64);
        messages.extend(oximeter_spo2(v, at, 1));
        periods.entry(at.timestamp().div_euclid(60) * 60).or_default().push(v);
    }
    publish_tracked(port, messages, 10, Duration::from_secs(30), |_| {}).await?;

    // Each minute the readings fell in gives one SpO2 Observation over that minute, valued at its median.
    let mut found = serde_json::Value::Null;
    let summaries = eventually("a charting summary at the EHR", Duration::from_secs(90), async || {
        found = fhir.get("Observation?code=http://loinc.org|59408-5").await?;
        let summaries: Vec<serde_json::Value> = found["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"].clone())
            .filter(|r| r.get("effectivePeriod").is_some())
            .collect();
        anyhow::Ok((summaries.len() >= periods.len()).then_some(summaries))
    })
    .await;
    let summaries = summaries.with_context(|| {
        let outbox = site.outbox().map_or_else(|e| e.to_string(), |o| format!("{o:#?}"));
        format!("the EHR last held: {found:#}; outbox: {outbox}; log: {}", site.log())
    })?;
    assert_eq!(summaries.len(), periods.len(), "{summaries:#?}");
    for (minute, mut in_period) in periods {
        in_period.sort_by(f64::total_cmp);
        let n = in_period.len();
        let median = if n % 2 == 1 { in_period[n / 2] } else { (in_period[n / 2 - 1] + in_period[n / 2]) / 2.0 };
        let begins = chrono::DateTime::from_timestamp(minute, 0).unwrap();
        let summary = summaries
            .iter()
            .find(|s| {
                s["effectivePeriod"]["start"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    == Some(begins.into())
            })
            .unwrap_or_else(|| panic!("no summary for the minute from {begins}: {summaries:#?}"));
        // Charted at SpO2's precision, whole percent: a minute with 94 and 99 charts 97, not 96.5.
        assert_eq!(summary["valueQuantity"]["value"].as_f64(), Some(median.round()));
        assert_eq!(summary["valueQuantity"]["code"], "%");
    }
    validate_fhir(&summaries)?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}
