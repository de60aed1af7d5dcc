//! Rules over live telemetry: a sustained desaturation published over MQTT raises one high-priority
//! alarm and one clinical event; repeats of the same condition raise nothing more; late data is
//! stored but raises nothing; acknowledgement is an audited operator action.

use std::time::Duration;

use chrono::Utc;
use vigil_tests::{BrokerKind, Site, oximeter_spo2, publish_tracked, with_status};

fn alarms(site: &Site) -> anyhow::Result<Vec<serde_json::Value>> {
    Ok(serde_json::from_str(&site.vigil(&["alarms", "--config", &site.config_str()])?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_desaturation_raises_one_alarm_and_one_event() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // An hour-old desaturation (a late upload): stored, never alarmed.
    let late = oximeter_spo2(84.0, Utc::now() - chrono::Duration::hours(1), 90);
    publish_tracked(port, late, 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 180)?;

    // 100 s below 90 % ending now: the condition holds from the 60th second on.
    let now = Utc::now() - chrono::Duration::seconds(100);
    publish_tracked(port, oximeter_spo2(86.0, now, 100), 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 380)?;
    let outbox = site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1)?;
    assert_eq!(outbox[0]["event"]["origin"].as_str().unwrap().split('@').next(), Some("rule:spo2-low"));

    let raised = alarms(&site)?;
    assert_eq!(raised.len(), 1, "one alarm for one condition, none for the late data: {raised:#?}");
    let alarm = &raised[0];
    assert_eq!((alarm["rule_id"].as_str(), alarm["priority"].as_str()), (Some("spo2-low"), Some("high")));
    assert!(alarm["cleared_at"].is_null());

    // The operator acknowledges; the action is audited with the name and the reason.
    let id = alarm["id"].to_string();
    site.vigil(&["ack", "--config", &site.config_str(), &id, "--reason", "probe reseated", "--operator", "nurse ann"])?;
    let acked = &alarms(&site)?[0];
    assert_eq!((acked["acked_by"].as_str(), acked["ack_reason"].as_str()), (Some("nurse ann"), Some("probe reseated")));
    let audit = site.vigil(&["audit", "list", "--config", &site.config_str()])?;
    assert!(audit.contains("alarm.ack") && audit.contains("nurse ann"), "{audit}");

    // Recovery past the hysteresis clears the condition.
    publish_tracked(port, oximeter_spo2(95.0, Utc::now(), 3), 10, Duration::from_secs(30), |_| {}).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while alarms(&site)?[0]["cleared_at"].is_null() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the alarm did not clear");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(alarms(&site)?.len(), 1, "clearing raises nothing new");
    assert!(vigil.terminate()?.success());
    Ok(())
}
