//! The alert circuit against real peers: with the EHR down (its server stopped, the outbox growing),
//! a desaturation still pages through an HTTP webhook and the MQTT alert topic on a real Mosquitto;
//! "EHR sync paused" is the active mode; the condition repeated 100 times gives one alarm, which
//! escalates once when nobody acknowledges it; when the EHR returns, the mode clears and the event
//! is delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use chrono::Utc;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::Value;
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Mosquitto, Site, fixture, mode_active, oximeter_spo2, publish_tracked,
    with_status,
};

type Received = Arc<Mutex<Vec<Value>>>;

/// A nurse-call webhook that records what it is sent.
async fn webhook() -> anyhow::Result<(String, Received)> {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/page",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/page", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

/// A subscriber to the alert topic that records what it receives.
async fn subscriber(port: u16) -> anyhow::Result<Received> {
    let received: Received = Arc::default();
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("alert-listener", "127.0.0.1", port), 100);
    client.subscribe("vigil/alarms/#", QoS::AtLeastOnce).await?;
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Incoming::Publish(p)) = event {
                let mut v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                v["topic"] = Value::String(p.topic.clone());
                sink.lock().unwrap().push(v);
            }
        }
    });
    Ok(received)
}

async fn until(what: &str, within: Duration, check: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desaturation_pages_while_the_ehr_is_down_once_and_escalates_once() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    fhir.create(
        serde_json::json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}),
    )
    .await?;
    let broker = Mosquitto::start()?;
    let (hook, paged) = webhook().await?;
    let listened = subscriber(broker.port).await?;

    let site = Site::new(BrokerKind::Embedded)?;
    // The default rules, with escalation after 2 s instead of 2 min.
    let rules = site.dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        std::fs::read_to_string(fixture("rules/adult-vitals.toml"))?
            .replace("escalate_after_secs = 120", "escalate_after_secs = 2"),
    )?;
    let config = std::fs::read_to_string(&site.config)?
        .replace(&fixture("rules/adult-vitals.toml").display().to_string(), &rules.display().to_string());
    std::fs::write(&site.config, config)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 1\nmax_backoff_secs = 1\n\
         [alerts]\nwebhook_url = \"{hook}\"\nmqtt_url = \"mqtt://127.0.0.1:{}\"\n",
        fhir.base, broker.port
    ))?;
    site.for_patient("pair", "OX-1000", "MRN-100000", &[])?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    vigil
        .wait_status(Duration::from_secs(15), |s| {
            ["alerts", "alert-webhook", "alert-mqtt", "ehr"]
                .iter()
                .all(|c| s["components"].as_array().unwrap().iter().any(|x| x["name"] == *c && x["state"] == "up"))
        })
        .await?;

    fhir.pause();
    // The same condition, 100 readings long, ending now.
    let messages = oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(100), 100);
    publish_tracked(port, messages, 100, Duration::from_secs(30), |_| {}).await?;

    until("the webhook page", Duration::from_secs(10), || !paged.lock().unwrap().is_empty()).await?;
    until("the MQTT alert", Duration::from_secs(10), || !listened.lock().unwrap().is_empty()).await?;
    let page = paged.lock().unwrap()[0].clone();
    assert_eq!(
        (page["rule_id"].as_str(), page["priority"].as_str(), page["escalated"].as_bool()),
        (Some("spo2-low"), Some("high"), Some(false))
    );
    assert_eq!(listened.lock().unwrap()[0]["topic"], "vigil/alarms/high");
    assert!(
        page.get("patient_identifier").is_none() && !page.to_string().contains("MRN"),
        "no PHI on the paging path: {page}"
    );
    let status = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "ehr_sync_paused")).await?;
    assert!(mode_active(&status, "ehr_sync_paused"));

    // Unacknowledged: escalated once, after 2 s, and only once.
    until("the escalation", Duration::from_secs(10), || paged.lock().unwrap().len() >= 2).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pages = paged.lock().unwrap().clone();
    assert_eq!(pages.len(), 2, "one alarm and one escalation for 100 readings of one condition: {pages:#?}");
    assert_eq!(pages[1]["escalated"], true);
    let alarms: Value = serde_json::from_str(&site.vigil(&["alarms", "--config", &site.config_str()])?)?;
    assert_eq!(alarms.as_array().unwrap().len(), 1);

    fhir.resume();
    vigil.wait_status(Duration::from_secs(30), |s| !mode_active(s, "ehr_sync_paused")).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1)?;
    assert!(vigil.terminate()?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_shows_its_mode() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    // Nothing listens there: every page fails.
    site.append_config(&format!(
        "[alerts]\nwebhook_url = \"http://127.0.0.1:{}/page\"\nretries = 1\n",
        vigil_tests::free_port()
    ))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let messages = oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(70), 70);
    publish_tracked(port, messages, 100, Duration::from_secs(30), |_| {}).await?;
    let status = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "alert_webhook_down")).await?;
    let mode = status["modes"].as_array().unwrap().iter().find(|m| m["id"] == "alert_webhook_down").unwrap().clone();
    assert_eq!(mode["severity"], "critical");
    assert!(vigil.terminate()?.success());
    Ok(())
}
