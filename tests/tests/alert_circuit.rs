//! The alert circuit against real peers: with the EHR down (its server stopped, the outbox growing),
//! a desaturation still pages through an HTTP webhook and the MQTT alert topic on a real Mosquitto;
//! "EHR sync paused" is the active mode; the condition repeated 100 times gives one alarm, which
//! escalates once when nobody acknowledges it; when the EHR returns, the mode clears and the event
//! is delivered.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Mosquitto, Received, Site, eventually, mode_active, of_kind, oximeter_spo2,
    publish_tracked, subscriber, webhook, with_status,
};

fn physiological(received: &Received) -> Vec<Value> {
    of_kind(&received.lock().unwrap(), "physiological")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desaturation_pages_while_the_ehr_is_down_once_and_escalates_once() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    fhir.create(
        serde_json::json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}),
    )
    .await?;
    let broker = Mosquitto::start().await?;
    let (hook, paged) = webhook().await?;
    let listened = subscriber(broker.port).await?;

    let site = Site::new(BrokerKind::Embedded)?;
    // The default rules, with escalation after 2 s instead of 2 min.
    site.edit_rules(|r| r.replace("escalate_after_secs = 120", "escalate_after_secs = 2"))?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 1\nmax_backoff_secs = 1\n\
         [alerts]\nwebhook_url = \"{hook}\"\nmqtt_url = \"mqtt://127.0.0.1:{}\"\n",
        fhir.base, broker.port
    ))?;
    site.pair_anew("OX-1000", "MRN-100000")?;
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

    eventually("the webhook page", Duration::from_secs(10), async || !physiological(&paged).is_empty()).await?;
    eventually("the MQTT alert", Duration::from_secs(10), async || !physiological(&listened).is_empty()).await?;
    let page = physiological(&paged)[0].clone();
    assert_eq!(
        (page["rule_id"].as_str(), page["priority"].as_str(), page["escalated"].as_bool()),
        (Some("spo2-low"), Some("high"), Some(false))
    );
    assert_eq!(physiological(&listened)[0]["topic"], "vigil/alarms/high");
    assert!(
        page.get("patient_identifier").is_none() && !page.to_string().contains("MRN"),
        "no PHI on the paging path: {page}"
    );
    let status = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "ehr_sync_paused")).await?;
    assert!(mode_active(&status, "ehr_sync_paused"));

    // Unacknowledged: escalated once, after 2 s, and only once.
    eventually("the escalation", Duration::from_secs(10), async || physiological(&paged).len() >= 2).await?;
    // A negative check, so a bounded wait: an alarm re-armed after escalating would escalate again
    // one window (2 s) later, on the circuit's next look (every 0.5 s); a second alarm for the same
    // condition would have paged before the first escalation. 3 s shows either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pages = physiological(&paged);
    assert_eq!(pages.len(), 2, "one alarm and one escalation for 100 readings of one condition: {pages:#?}");
    assert_eq!(pages[1]["escalated"], true);
    assert_eq!(of_kind(&site.alarms()?, "physiological").len(), 1);

    // The EHR adapter being down is a technical alarm of its own, paged apart from the patient's.
    eventually("the adapter's technical alarm", Duration::from_secs(15), async || {
        of_kind(&paged.lock().unwrap(), "technical").iter().any(|p| p["rule_id"] == "ehr_sync_paused")
    })
    .await?;
    let technical = of_kind(&site.alarms()?, "technical");
    let ehr = technical.iter().find(|a| a["rule_id"] == "ehr_sync_paused").expect("the EHR's technical alarm");
    assert_eq!((ehr["device_id"].as_str(), ehr["priority"].as_str()), (Some("ehr"), Some("low")));
    assert!(ehr["patient_id"].is_null() && ehr["cleared_at"].is_null());

    fhir.resume();
    vigil.wait_status(Duration::from_secs(30), |s| !mode_active(s, "ehr_sync_paused")).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    // The supervisor clears the adapter's alarm on its next look.
    eventually("the clearing of the adapter's alarm", Duration::from_secs(5), async || {
        let technical = of_kind(&site.alarms()?, "technical");
        anyhow::Ok(technical.iter().any(|a| a["rule_id"] == "ehr_sync_paused" && !a["cleared_at"].is_null()))
    })
    .await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_alarm_does_not_escalate_and_the_silence_is_audited() -> anyhow::Result<()> {
    let (hook, paged) = webhook().await?;
    // The escalation falls due this long after the alarm: ample time for the silence to land first.
    const ESCALATE_AFTER: Duration = Duration::from_secs(8);
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| {
        r.replace("escalate_after_secs = 120", &format!("escalate_after_secs = {}", ESCALATE_AFTER.as_secs()))
    })?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\n"))?;
    let nurse = site.account("nurse-bo", &["clinician"])?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let messages = oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(70), 70);
    // The alarm is raised after this instant and paged before the next, so its escalation falls
    // due between `published + ESCALATE_AFTER` and `paged_at + ESCALATE_AFTER`.
    let published = Instant::now();
    publish_tracked(port, messages, 100, Duration::from_secs(30), |_| {}).await?;
    eventually("the page", Duration::from_secs(10), async || !physiological(&paged).is_empty()).await?;
    let paged_at = Instant::now();

    let id = of_kind(&site.alarms()?, "physiological")[0]["id"].to_string();
    let config = site.config_str();
    let silence = ["silence", "--config", &config, &id, "--minutes", "1", "--reason", "at the bedside"];
    let (code, out) = site.vigil_as(&nurse, &silence)?;
    anyhow::ensure!(code == 0, "{out}");
    let silenced_after = published.elapsed();
    anyhow::ensure!(
        silenced_after < ESCALATE_AFTER,
        "the silence landed {silenced_after:?} after publishing, when the escalation may already be due"
    );
    // A negative check, so a bounded wait: past the escalation's latest due time, plus the circuit's
    // look (every 0.5 s) and the page's trip to the webhook (well under a second).
    tokio::time::sleep_until((paged_at + ESCALATE_AFTER + Duration::from_secs(2)).into()).await;
    assert_eq!(physiological(&paged).len(), 1, "silenced: no escalation while the silence lasts");
    let alarm = &of_kind(&site.alarms()?, "physiological")[0];
    assert_eq!(
        (alarm["silenced_by"].as_str(), alarm["silence_reason"].as_str()),
        (Some("nurse-bo"), Some("at the bedside"))
    );
    assert!(alarm["acked_at"].is_null(), "silencing is not acknowledging");
    let audit = site.vigil(&["audit", "list", "--config", &config])?;
    assert!(audit.contains("alarm.silence") && audit.contains("nurse-bo"), "{audit}");

    // Silences of one alarm stop at 120 minutes in all (and at 4), whoever asks: it then escalates.
    for minutes in ["60", "59"] {
        let (code, out) =
            site.vigil_as(&nurse, &[&silence[..4], &["--minutes", minutes, "--reason", "still busy"]].concat())?;
        assert_eq!(code, 0, "{out}");
    }
    let (code, out) =
        site.vigil_as(&site.token, &[&silence[..4], &["--minutes", "1", "--reason", "once more"]].concat())?;
    assert_eq!(code, 6, "the admin is refused too: {out}");
    assert!(out.contains("120 minutes allowed in all"), "{out}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_webhook_is_not_delivered_shows_its_mode_and_raises_its_alarm() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Every page is answered 302 to a path that would accept it: a redirect is no delivery (a
    // followed POST becomes a GET, and its 2xx would say nothing about the page).
    let followed = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let app = axum::Router::new()
        .route("/page", axum::routing::post(|| async { (axum::http::StatusCode::FOUND, [("location", "/elsewhere")]) }))
        .route(
            "/elsewhere",
            axum::routing::any(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/page", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\nretries = 1\n"))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let messages = oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(70), 70);
    publish_tracked(port, messages, 100, Duration::from_secs(30), |_| {}).await?;
    let status = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "alert_webhook_down")).await?;
    let mode = status["modes"].as_array().unwrap().iter().find(|m| m["id"] == "alert_webhook_down").unwrap().clone();
    assert_eq!(mode["severity"], "critical");
    let reason = vigil_tests::component(&status, "alert-webhook")["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("302"), "{reason}");
    // Past the retry budget: the page is given up, and the supervisor's technical alarm names the
    // sink and the alarm its desk never heard of.
    eventually("the webhook's technical alarm", Duration::from_secs(20), async || {
        anyhow::Ok(of_kind(&site.alarms()?, "technical").iter().any(|a| a["rule_id"] == "alert_webhook_down"))
    })
    .await?;
    let alarms = site.alarms()?;
    let unheard = of_kind(&alarms, "physiological");
    let unheard = unheard.first().expect("the desaturation's alarm");
    let technical = of_kind(&alarms, "technical");
    let technical = technical.iter().find(|a| a["rule_id"] == "alert_webhook_down").unwrap();
    let description = technical["description"].as_str().unwrap_or_default();
    let rule = unheard["rule_id"].as_str().unwrap();
    assert!(description.contains("NOT REACHED") && description.contains(rule), "{description}");
    assert_eq!(followed.load(Ordering::SeqCst), 0, "the redirect was followed");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alarm_pages_its_audience_the_ward_or_biomed() -> anyhow::Result<()> {
    let (ward_url, ward) = webhook().await?;
    let (biomed_url, biomed) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| r.replace("after_secs = 30\n", "after_secs = 3\n"))?;
    // An EHR nobody answers: a configuration fault for biomed/IT, not for the ward.
    let nowhere = format!("http://127.0.0.1:{}/fhir", vigil_tests::free_port());
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{nowhere}\"\ntimeout_secs = 1\nmax_backoff_secs = 1\n\
         [alerts]\nwebhook_url = \"{ward_url}\"\ntechnical_webhook_url = \"{biomed_url}\"\n"
    ))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // OX-1000's probe comes off: "no valid signal" leaves one patient unmonitored, for the ward.
    for _ in 0..6 {
        let mut messages = oximeter_spo2(85.0, Utc::now(), 1);
        let mut payload: Value = serde_json::from_slice(&messages[0].1)?;
        payload["status"] = "sensor_off".into();
        messages[0].1 = payload.to_string().into_bytes();
        publish_tracked(port, messages, 10, Duration::from_secs(10), |_| {}).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rule = |r: &Received, id: &str| r.lock().unwrap().iter().any(|p| p["rule_id"] == id);
    eventually("the ward's probe-off page and biomed's EHR page", Duration::from_secs(30), async || {
        rule(&ward, "no-valid-signal") && rule(&biomed, "ehr_sync_paused")
    })
    .await?;
    assert!(!rule(&ward, "ehr_sync_paused"), "the EHR fault paged the ward: {:#?}", ward.lock().unwrap());
    assert!(!rule(&biomed, "no-valid-signal"), "the probe-off paged biomed: {:#?}", biomed.lock().unwrap());
    assert!(ward.lock().unwrap().iter().all(|p| p["audience"] != "technical"));
    assert!(vigil.terminate().await?.success());
    Ok(())
}
