//! The console facade over a real demo site in a temp dir: the embedded endpoint, SQLite and the
//! simulated ward, as the desktop console runs it.

use std::path::Path;
use std::time::Duration;

use super::dto::{ConnectionTarget, PairRequest, ReleaseResult};
use super::*;
use crate::accounts::Role;
use crate::config::{Config, EhrKind};

const SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.2";

async fn demo_console(dir: &Path) -> Console {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let options = ConsoleOptions {
        config_path: dir.join("vigil.toml"),
        demo: Some(DemoFiles::in_fixtures(&fixtures)),
        demo_listen: ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
        clock: system_clock(),
    };
    Console::start(options).await.unwrap()
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..100 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_site_streams_values_and_an_unpaired_reading_is_released_after_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let console = demo_console(dir.path()).await;
    assert!(console.settings().demo);
    assert_eq!(console.settings().ehr.kind, EhrKind::Sandbox);

    let live = eventually("live values", async || {
        let v = console.live_values().await.unwrap();
        v.iter().any(|v| v.device_id == "OX-1000").then_some(v)
    })
    .await;
    let spo2 = live.iter().find(|v| v.device_id == "OX-1000" && v.mdc_code == 150456).unwrap();
    assert_eq!((spo2.unit.as_str(), spo2.metric.as_str()), ("%", "SpO2"));
    assert_eq!(spo2.patient_label.as_deref(), Some("Demo Patient Alpha"));
    assert!(!spo2.stale && live.iter().all(|v| v.device_id != "MX-00A1"), "unpaired data is never shown");
    let svg = console.chart("OX-1000", 150456, 15).await.unwrap();
    assert!(svg.contains("<polyline"), "{svg}");
    assert!(svg.contains("spo2-low: below"), "the active rule's alarm limit is drawn: {svg}");

    // The unpaired monitor's readings are quarantined; releasing before pairing leaves them there.
    let item = eventually("a quarantined reading", async || {
        console.quarantine().await.unwrap().into_iter().find(|q| q.device_id == "MX-00A1")
    })
    .await;
    // While the spare monitor's alarm is active and unacknowledged a silence is offered; once it is
    // acknowledged, a silence would change nothing and none is.
    let active = eventually("the unpaired monitor's active alarm", async || {
        console.alarms(true).await.unwrap().into_iter().find(|a| a.alarm.rule_id == "device-unpaired")
    })
    .await;
    assert_eq!(active.silence_minutes_left, MAX_SILENCE_MINUTES);
    let clinician = Actor::for_tests("cleo", &[Role::Clinician]);
    console.admin().ack_alarm(&clinician, active.alarm.id, "pairing it").await.unwrap();
    let bo = Actor::for_tests("biomed-bo", &[Role::Biomed]);
    let early = console.admin().release_quarantine(&bo, item.id, "checking").await.unwrap();
    assert_eq!(early.outcome, ReleaseResult::Quarantined, "{early:?}");
    assert_eq!(
        console.admin().release_quarantine(&bo, item.id, " ").await.unwrap_err().code,
        ErrorCode::InvalidInput,
        "every action gives a reason"
    );

    // Pair it from before the reading, through the verified lookup, then release: stored.
    let patient = console.admin().lookup_patient(&bo, SYSTEM, "MRN-100001").await.unwrap();
    assert_eq!(patient.display, "Demo Patient Bravo");
    let from = item.observed_at - chrono::Duration::minutes(1);
    let request = PairRequest {
        device_id: "MX-00A1".into(),
        system: SYSTEM.into(),
        value: "MRN-100001".into(),
        from: Some(from),
        reason: Some("spare monitor sent before it was paired".into()),
        ..PairRequest::default()
    };
    console.admin().pair_device(&bo, &request).await.unwrap();
    let released = console.admin().release_quarantine(&bo, item.id, "pairing fixed").await.unwrap();
    assert_eq!(released.outcome, ReleaseResult::Stored, "{released:?}");
    assert!(console.quarantine().await.unwrap().iter().all(|q| q.id != item.id));
    let unpaired = console.alarms(false).await.unwrap().into_iter().find(|a| a.alarm.rule_id == "device-unpaired");
    let unpaired = unpaired.expect("the unpaired monitor's alarm");
    assert!(unpaired.unit.is_none() && unpaired.patient_label.is_none(), "a technical alarm, about no patient");
    assert_eq!(unpaired.silence_minutes_left, 0, "acknowledged before the pairing: no silence to offer");
    let devices = console.devices().await.unwrap();
    let mx = devices.iter().find(|d| d.device.device_id == "MX-00A1").unwrap();
    assert_eq!(mx.patient_label.as_deref(), Some("Demo Patient Bravo"));
    let audit = console.admin().audit_entries(&bo, 50).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "quarantine.released" && a.actor == "biomed-bo"));
    assert_eq!(
        console.admin().lookup_patient(&bo, SYSTEM, "MRN-999").await.unwrap_err().code,
        ErrorCode::PatientNotFound
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_pointing_at_an_unreachable_ehr_restart_the_pipeline_and_show_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let console = demo_console(dir.path()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut settings = console.settings();
    settings.ehr.kind = EhrKind::Fhir;
    settings.ehr.base_url = Some(format!("http://{closed}/fhir"));
    let (console, applied) = console.apply_settings(&settings, "the EHR moved").await.unwrap();
    applied.unwrap();
    assert_eq!(console.settings().ehr.kind, EhrKind::Fhir);
    let saved = Config::load(&dir.path().join("vigil.toml")).unwrap();
    assert_eq!(saved.ehr.base_url, settings.ehr.base_url, "saved to the site's file");
    let test = console.test_connection(ConnectionTarget::Ehr).await;
    assert!(!test.ok && test.message.contains(&closed.to_string()), "{test:?}");
    eventually("the EHR mode", async || {
        console.board().await.modes.iter().any(|m| m.id == "ehr_sync_paused").then_some(())
    })
    .await;

    // Settings that cannot start leave the previous ones running.
    let mut broken = console.settings();
    broken.broker.listen = Some("256.0.0.1:1".into());
    let (console, refused) = console.apply_settings(&broken, "a typo").await.unwrap();
    assert!(refused.is_err());
    assert_eq!(console.settings().ehr.base_url, settings.ehr.base_url);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_restart_takes_at_most_5_s_beside_a_client_that_stops_reading() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let options = ConsoleOptions {
        config_path: dir.path().join("vigil.toml"),
        demo: Some(DemoFiles::in_fixtures(&fixtures)),
        demo_listen: (format!("127.0.0.1:{port}"), "127.0.0.1:0".into()),
        clock: system_clock(),
    };
    let console = Console::start(options).await.unwrap();
    // A device that connects, then sends PINGREQs without end and never reads the answers: the
    // endpoint's writes to it block once the socket's buffers are full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    let secret = std::fs::read_to_string(dir.path().join("demo-gateway.secret")).unwrap();
    let mut connect = rumqttc::mqttbytes::v4::Connect::new("mute");
    connect.set_login(crate::demo::GATEWAY, secret.trim());
    let mut bytes = bytes::BytesMut::new();
    rumqttc::Packet::Connect(connect).write(&mut bytes, 1024).unwrap();
    stalled.write_all(&bytes).await.unwrap();
    let flood = tokio::spawn(async move {
        let pings = [0xC0u8, 0x00].repeat(64 * 1024);
        while stalled.write_all(&pings).await.is_ok() {}
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!flood.is_finished(), "the endpoint closed the connection instead of being stalled by it");

    let mut settings = console.settings();
    settings.ehr.kind = EhrKind::Fhir;
    settings.ehr.base_url = Some("http://127.0.0.1:9/fhir".into());
    let asked = std::time::Instant::now();
    let (console, applied) = console.apply_settings(&settings, "the EHR moved").await.unwrap();
    let took = asked.elapsed();
    applied.unwrap();
    assert!(took <= Duration::from_secs(5), "the Settings restart took {took:?}");
    assert_eq!(console.settings().ehr.kind, EhrKind::Fhir);
    flood.abort();
    console.stop().await;
}

/// A site with no account yet: the console asks for the first administrator, once; the password
/// must be long enough; then the administrator is signed in, and a lock needs the password back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_site_makes_its_first_administrator_at_the_console_once() {
    let dir = tempfile::tempdir().unwrap();
    demo_console(dir.path()).await.stop().await;
    // The demo's files, as a site of its own: not the demo, and a store with no account.
    let config = std::fs::read_to_string(dir.path().join("vigil.toml")).unwrap();
    let site = config.replace("demo = true", "demo = false").replace("vigil.db", "site.db");
    assert_ne!(site, config);
    std::fs::write(dir.path().join("site.toml"), site).unwrap();
    let options = ConsoleOptions {
        config_path: dir.path().join("site.toml"),
        demo: None,
        demo_listen: ("127.0.0.1:0".into(), "127.0.0.1:0".into()),
        clock: system_clock(),
    };
    let console = Console::start(options).await.unwrap();
    let session = console.session().await.unwrap();
    assert!(session.needs_first_admin && session.account.is_none() && !session.demo, "{session:?}");
    assert_eq!(console.actor().unwrap_err().code, ErrorCode::Unauthenticated);

    assert_eq!(console.create_first_admin("ana", "short").await.unwrap_err().code, ErrorCode::InvalidInput);
    let session = console.create_first_admin("ana", "a long enough password").await.unwrap();
    assert_eq!((session.account.as_deref(), session.roles.as_slice()), (Some("ana"), &[Role::Admin][..]));
    let again = console.create_first_admin("eve", "a long enough password").await.unwrap_err();
    assert_eq!(again.code, ErrorCode::Refused, "only the first");

    console.lock().await.unwrap();
    assert_eq!(console.devices().await.unwrap_err().code, ErrorCode::Unauthenticated);
    assert_eq!(console.unlock("wrong password!").await.unwrap_err().code, ErrorCode::SignInFailed);
    assert!(!console.unlock("a long enough password").await.unwrap().locked);
    assert!(console.devices().await.is_ok());
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_shows_each_device_and_a_spare_monitor_is_paired_and_its_quarantine_released_in_one_action() {
    let dir = tempfile::tempdir().unwrap();
    let console = demo_console(dir.path()).await;
    let fleet = eventually("the ward on the fleet", async || {
        let fleet = console.fleet().await.unwrap();
        let heard = |id: &str| fleet.iter().any(|d| d.device_id == id && d.state == dto::DeviceState::Online);
        (heard("OX-1000") && heard("MX-00A1") && fleet.iter().any(|d| d.quarantined > 0)).then_some(fleet)
    })
    .await;
    let ox = fleet.iter().find(|d| d.device_id == "OX-1000").unwrap();
    assert_eq!((ox.firmware.as_deref(), ox.patient_label.as_deref()), (Some("2.4.1"), Some("Demo Patient Alpha")));
    assert!(ox.battery_pct.is_some_and(|b| (60.0..=100.0).contains(&b)) && ox.registered, "{ox:?}");
    assert_eq!((ox.expected_interval_secs, ox.stale_after_secs, ox.offline_after_secs), (2, 6, 60));
    let spare = fleet.iter().find(|d| d.device_id == "MX-00A1").unwrap();
    assert!(spare.patient_id.is_none() && spare.quarantined > 0, "{spare:?}");

    // Infrastructure alarms go in bulk; a patient's alarm is refused in bulk.
    let alarms = eventually("the spare monitor's alarm", async || {
        let a = console.alarms(true).await.unwrap();
        a.iter().any(|a| a.bulk_ack).then_some(a)
    })
    .await;
    let actor = console.actor().unwrap();
    let bulk: Vec<i64> = alarms.iter().filter(|a| a.bulk_ack).map(|a| a.alarm.id).collect();
    assert_eq!(console.admin().ack_alarms(&actor, &bulk, "biomed on it").await.unwrap(), bulk.len() as u32);
    if let Some(patient_alarm) = alarms.iter().find(|a| a.alarm.patient_id.is_some() && a.alarm.acked_at.is_none()) {
        let refused = console.admin().ack_alarms(&actor, &[patient_alarm.alarm.id], "x").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::Refused, "{refused}");
    }
    // The spare monitor's group: paired from its first reading and released as one action.
    let groups = console.admin().quarantine_groups(&console.actor().unwrap()).await.unwrap();
    let group = groups.iter().find(|g| g.device_id == "MX-00A1" && g.reason == "no_active_pairing").unwrap();
    assert!(group.registered && group.profile_id.as_deref() == Some("medi-mx700"), "{group:?}");
    let request = PairRequest {
        device_id: "MX-00A1".into(),
        system: SYSTEM.into(),
        value: "MRN-100001".into(),
        from: Some(group.first_observed),
        reason: Some("the spare monitor was moved to Bravo's bed at the start of the shift".into()),
        ..PairRequest::default()
    };
    let outcome = console.admin().pair_and_release(&actor, &request, "pairing fixed").await.unwrap();
    assert!(outcome.stored >= group.count && outcome.still_quarantined == 0, "{outcome:?}");
    let left = console.admin().quarantine_groups(&actor).await.unwrap();
    assert!(left.iter().all(|g| g.device_id != "MX-00A1"), "{left:?}");
    let history = console.pairing_history("MX-00A1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].patient_label.as_deref(), Some("Demo Patient Bravo"));

    // Every parameter of a bed on one time axis.
    let bed = console.bed_chart(ox.patient_id.unwrap(), 15).await.unwrap();
    for metric in ["SpO2 OX-1000", "SpO2 MX-00A0", "Heart rate MX-00A0"] {
        assert!(bed.contains(metric), "{metric} in {bed}");
    }

    console.stop().await;
}
