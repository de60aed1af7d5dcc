//! EHR answers Vigil must not trust: a 401 (or a 403/404 without an OperationOutcome, as a proxy or a
//! wrong base URL gives) is a configuration fault, shown as its own mode, with nothing dead-lettered;
//! a 50 MB answer is refused at its bound without the memory to hold it. The peers are small HTTP
//! servers on loopback that answer as such EHRs do.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use vigil_tests::{BrokerKind, Site, mode_active, with_status};

/// An "EHR" that knows the demo patient (so pairing verifies it) and answers everything else with
/// `answer`.
async fn ehr(answer: fn() -> axum::response::Response) -> anyhow::Result<String> {
    let patient = serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
        "resourceType": "Patient", "id": "p-1",
        "identifier": [{"system": vigil_tests::DEMO_SYSTEM, "value": "MRN-100000"}]}}]});
    let app = axum::Router::new()
        .route("/fhir/Patient", axum::routing::get(move || async move { axum::Json(patient) }))
        .fallback(move || async move { answer() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn site(base: &str) -> anyhow::Result<Site> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{base}\"\ntimeout_secs = 5\nmax_backoff_secs = 2\n"
    ))?;
    site.pair_anew("MX-00A0", "MRN-100000")?;
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "150456=91"])?;
    Ok(site)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_without_an_operation_outcome_pauses_delivery_as_a_mode_and_dead_letters_nothing() -> anyhow::Result<()> {
    let base = ehr(|| (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()).await?;
    let site = site(&base)?;
    let vigil = site.run()?;
    let status = vigil.wait_status(Duration::from_secs(30), |s| mode_active(s, "ehr_configuration_fault")).await?;
    assert!(!mode_active(&status, "ehr_sync_paused"), "one mode, the one that says whom to call");
    // It lasts: the technical alarm is raised, for biomed/IT.
    vigil_tests::eventually("the configuration fault's technical alarm", Duration::from_secs(15), async || {
        anyhow::Ok(site.alarms()?.iter().any(|a| a["rule_id"] == "ehr_configuration_fault"))
    })
    .await?;
    let outbox = site.outbox()?;
    assert_eq!((with_status(&outbox, "pending"), with_status(&outbox, "dead")), (1, 0), "{outbox:#?}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_answer_is_refused_at_its_bound_without_the_memory_to_hold_it() -> anyhow::Result<()> {
    let base = ehr(|| {
        let body = vec![b' '; 50 << 20];
        (StatusCode::OK, [("content-type", "application/fhir+json")], body).into_response()
    })
    .await?;
    let site = site(&base)?;
    let vigil = site.run()?;
    let outbox = site
        .wait_outbox(Duration::from_secs(30), |o| {
            o.iter().any(|e| e["reason"].as_str().unwrap_or_default().contains("byte bound"))
        })
        .await?;
    assert_eq!(with_status(&outbox, "pending"), 1, "retried later, not delivered and not dead: {outbox:#?}");
    let peak_kib = vigil.peak_memory_kib()?;
    // Vigil itself peaks near 30 MiB here; holding the body would add 50 MiB to that.
    assert!(peak_kib < 60 << 10, "peak memory {peak_kib} KiB: the 50 MB body was held");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
