//! A restart in the middle of a desaturation (a crash: SIGKILL) neither duplicates nor loses the
//! alarm. The rule state is rebuilt from the stored readings, so the alarm is still active after the
//! restart and further low readings raise no second one; the page that could not be delivered before
//! the crash (the paging system was down) is delivered once after it, late, with its original start.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::Value;
use vigil_tests::{BrokerKind, Site, eventually, of_kind, oximeter_spo2, publish_tracked};

/// A nurse-call webhook that can be down (HTTP 503); it records what it accepted and counts every
/// attempt.
struct Pager {
    url: String,
    down: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<Value>>>,
}

async fn pager() -> anyhow::Result<Pager> {
    let down = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (d, a, acc) = (down.clone(), attempts.clone(), accepted.clone());
    let app = Router::new().route(
        "/page",
        post(move |Json(body): Json<Value>| {
            let (d, a, acc) = (d.clone(), a.clone(), acc.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                acc.lock().unwrap().push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/page", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Pager { url, down, attempts, accepted })
}

fn spo2_pages(pager: &Pager) -> Vec<Value> {
    pager.accepted.lock().unwrap().iter().filter(|p| p["rule_id"] == "spo2-low").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_desaturation_keeps_one_alarm_and_delivers_its_page_once_after() -> anyhow::Result<()> {
    let pager = pager().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| {
        r.replace("below = 90.0\nclear_at = 92.0\nfor_secs = 60", "below = 90.0\nclear_at = 92.0\nfor_secs = 5")
    })?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{}\"\nretries = 8\n", pager.url))?;
    site.pair_anew("OX-1000", "MRN-100000")?;

    pager.down.store(true, Ordering::SeqCst);
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let start = Utc::now() - chrono::Duration::seconds(20);
    publish_tracked(port, oximeter_spo2(84.0, start, 10), 100, Duration::from_secs(30), |_| {}).await?;
    let alarm = eventually("the alarm's row", Duration::from_secs(10), async || {
        anyhow::Ok(of_kind(&site.alarms()?, "physiological").first().cloned())
    })
    .await?;
    eventually("a failed page", Duration::from_secs(10), async || pager.attempts.load(Ordering::SeqCst) > 0).await?;
    vigil.kill9()?;
    assert!(spo2_pages(&pager).is_empty(), "the paging system was down");

    pager.down.store(false, Ordering::SeqCst);
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    eventually("the page owed, after the restart", Duration::from_secs(15), async || !spo2_pages(&pager).is_empty())
        .await?;
    let page = spo2_pages(&pager)[0].clone();
    assert_eq!(page["alarm_key"], alarm["key"], "{page:#}");
    assert_eq!((page["late"].as_bool(), page["escalated"].as_bool()), (Some(true), Some(false)), "{page:#}");
    let since = |v: &Value| v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    assert_eq!(since(&page["since"]), since(&alarm["since"]), "the page says when the condition began");

    // The desaturation goes on after the restart: the same alarm, still active, no second one.
    let readings = site.count("readings")?;
    publish_tracked(
        port,
        oximeter_spo2(83.0, start + chrono::Duration::seconds(10), 10),
        100,
        Duration::from_secs(30),
        |_| {},
    )
    .await?;
    site.wait_counts(Duration::from_secs(10), |c| c["readings"].as_i64() >= Some(readings + 20)).await?;
    // A negative check, so a bounded wait: a second alarm would page within a second of its reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let physiological = of_kind(&site.alarms()?, "physiological");
    assert_eq!(physiological.len(), 1, "{physiological:#?}");
    assert!(physiological[0]["cleared_at"].is_null(), "still active after the restart");
    let pages = spo2_pages(&pager);
    assert_eq!(pages.len(), 1, "delivered once: {pages:#?}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_whose_condition_no_longer_holds_at_restart_is_cleared_and_audited() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| {
        r.replace("below = 90.0\nclear_at = 92.0\nfor_secs = 60", "below = 90.0\nclear_at = 92.0\nfor_secs = 5")
    })?;
    site.pair_anew("OX-1000", "MRN-100000")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    publish_tracked(
        port,
        oximeter_spo2(84.0, Utc::now() - chrono::Duration::seconds(20), 10),
        100,
        Duration::from_secs(30),
        |_| {},
    )
    .await?;
    let alarm = eventually("the alarm's row", Duration::from_secs(10), async || {
        anyhow::Ok(of_kind(&site.alarms()?, "physiological").first().cloned())
    })
    .await?;
    vigil.kill9()?;
    // While Vigil was down, the ward lowered the SpO2 limit: 84 % no longer holds the condition.
    site.edit_rules(|r| {
        r.replace("below = 90.0\nclear_at = 92.0\nfor_secs = 60", "below = 80.0\nclear_at = 82.0\nfor_secs = 5")
    })?;
    let vigil = site.run()?;
    eventually("the alarm cleared at the restart", Duration::from_secs(10), async || {
        anyhow::Ok(of_kind(&site.alarms()?, "physiological").iter().all(|a| !a["cleared_at"].is_null()))
    })
    .await?;
    let audit: Value = serde_json::from_str(&site.vigil(&["audit", "list", "--config", &site.config_str()])?)?;
    let entry = audit.as_array().into_iter().flatten().find(|e| e["action"] == "alarm.cleared_at_restart");
    let entry = entry.cloned().unwrap_or_default();
    assert_eq!(entry["subject"], format!("alarm {}", alarm["id"]), "audited: {audit:#}");
    assert_eq!(entry["actor"], "vigil");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
