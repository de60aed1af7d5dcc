//! The device edge: who may connect to the embedded endpoint and publish for which device, over
//! plain TCP or TLS with client certificates; its bounds on connections and payloads; and floods of
//! made-up devices. The peers are real: Mosquitto's own `mosquitto_pub`, openssl-made certificates,
//! and hundreds of sockets from 20 loopback addresses.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use rumqttc::{AsyncClient, Event, Incoming};
use serde_json::json;
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Site, eventually, of_kind, oximeter_spo2, publish_large, publish_tracked,
    publisher_options, webhook, with_status,
};

/// One oximeter payload from `device`, observed now.
fn oximeter(device: &str) -> (String, String) {
    let d = SimDevice::new(device, DeviceKind::Oximeter, None, 1);
    (d.kind.topic(device), d.payload(Utc::now() - chrono::Duration::seconds(1)).to_string())
}

/// `mosquitto_pub` once at QoS 1; its exit status and what it said.
fn mosquitto_pub(port: u16, topic: &str, payload: &str, extra: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-m", payload, "-i", "edge-test"])
        .args(extra)
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), said))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_open_the_endpoint_and_bind_each_device_id() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let ox = site.credential("ox-1000", &["OX-1000"])?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let (topic, payload) = oximeter("OX-1000");

    let (ok, said) = mosquitto_pub(port, &topic, &payload, &[])?;
    assert!(!ok && said.contains("not authorised"), "anonymous, loopback included: {said}");
    let (ok, said) = mosquitto_pub(port, &topic, &payload, &["-u", "ox-1000", "-P", "not-the-secret"])?;
    assert!(!ok && said.contains("bad user name or password"), "{said}");
    let (ok, said) = mosquitto_pub(port, &topic, &payload, &["-u", "ox-1000", "-P", &ox.secret])?;
    assert!(ok, "{said}");
    site.wait_counts(Duration::from_secs(15), |c| c["readings"].as_i64() >= Some(2)).await?;

    // The credential of OX-1000 speaking for OX-1001: rejected, and the payload kept.
    let (other_topic, other) = oximeter("OX-1001");
    let (ok, said) = mosquitto_pub(port, &other_topic, &other, &["-u", "ox-1000", "-P", &ox.secret])?;
    assert!(ok, "acknowledged once kept: {said}");
    let rejected = eventually("the not_authorised rejection", Duration::from_secs(15), async || {
        let r = site.show("rejected")?;
        anyhow::Ok(r.as_array().and_then(|r| r.iter().find(|r| r["reason"] == "not_authorised").cloned()))
    })
    .await?;
    let detail = rejected["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("\"ox-1000\"") && detail.contains("OX-1001"), "{rejected}");
    assert!(rejected["payload"].as_str().unwrap_or_default().contains("OX-1001"), "the payload is kept: {rejected}");

    // A gateway may publish for any id; an unregistered one is quarantined as before.
    let gateway = std::fs::read_to_string(site.gateway_secret_file())?;
    let (stranger_topic, stranger) = oximeter("OX-7777");
    let (ok, said) =
        mosquitto_pub(port, &stranger_topic, &stranger, &["-u", vigil_tests::GATEWAY, "-P", gateway.trim()])?;
    assert!(ok, "{said}");
    eventually("the unknown device's quarantine", Duration::from_secs(15), async || {
        let q = site.show("quarantine")?;
        anyhow::Ok(
            q.as_array()
                .is_some_and(|q| q.iter().any(|q| q["device_id"] == "OX-7777" && q["reason"] == "unknown_device")),
        )
    })
    .await?;

    // Revoking closes the credential's live session, and its secret opens nothing more.
    let mut opts = publisher_options("ox-live".into(), port);
    opts.set_credentials("ox-1000", ox.secret.clone()).set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    loop {
        if let Event::Incoming(Incoming::ConnAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    site.vigil(&["credentials", "--config", &site.config_str(), "revoke", "ox-1000"])?;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the revoked credential's session was not closed");
    drop(client);
    let (ok, said) = mosquitto_pub(port, &topic, &payload, &["-u", "ox-1000", "-P", &ox.secret])?;
    assert!(!ok && said.contains("bad user name or password"), "{said}");
    let audit = site.vigil(&["audit", "list", "--config", &site.config_str()])?;
    assert!(
        audit.contains("credential.add") && audit.contains("credential.revoke") && audit.contains(vigil_tests::ADMIN.0)
    );
    assert!(!audit.contains(&ox.secret), "a secret is never kept in the clear");
    let listed = site.vigil(&["credentials", "--config", &site.config_str(), "list"])?;
    assert!(listed.contains("ox-1000") && !listed.contains(&ox.secret), "{listed}");

    // Guessing: past 10 refusals a minute the address is refused outright, and the board says so.
    for _ in 0..10 {
        mosquitto_pub(port, &topic, &payload, &["-u", "guess", "-P", "guess"])?;
    }
    let (ok, said) =
        mosquitto_pub(port, &stranger_topic, &stranger, &["-u", vigil_tests::GATEWAY, "-P", gateway.trim()])?;
    assert!(!ok && said.contains("not authorised"), "even a good secret waits out the minute: {said}");
    let status =
        vigil.wait_status(Duration::from_secs(10), |s| vigil_tests::mode_active(s, "device_auth_failures")).await?;
    let reason = vigil_tests::component(&status, "mqtt-auth")["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("127.0.0.1"), "{reason}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connects_over_tls_with_its_client_certificate_and_not_without() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let dir = site.dir.path();
    vigil_tests::certificates(dir, "ox-tls")?;
    site.credential("ox-tls", &["OX-1000"])?;
    site.set_in(
        "broker",
        "tls_cert_file = \"server.pem\"\ntls_key_file = \"server.key\"\ntls_client_ca_file = \"ca.pem\"\nrequire_client_cert = true",
    )?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let (topic, payload) = oximeter("OX-1000");
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let (cert, key) =
        (dir.join("client.pem").to_string_lossy().into_owned(), dir.join("client.key").to_string_lossy().into_owned());
    // --insecure skips only the host name check (the chain is still verified).
    let (ok, said) =
        mosquitto_pub(port, &topic, &payload, &["--cafile", &ca, "--cert", &cert, "--key", &key, "--insecure"])?;
    assert!(ok, "{said}");
    site.wait_counts(Duration::from_secs(15), |c| c["readings"].as_i64() >= Some(2)).await?;
    let (ok, said) = mosquitto_pub(port, &topic, &payload, &["--cafile", &ca, "--insecure"])?;
    assert!(!ok, "no client certificate, no connection: {said}");
    let (ok, said) = mosquitto_pub(port, &topic, &payload, &[])?;
    assert!(!ok, "no plain text on a TLS port: {said}");
    // The server certificate expires in 20 days: the board warns.
    let status = vigil
        .wait_status(Duration::from_secs(10), |s| vigil_tests::mode_active(s, "mqtt_certificate_expiring"))
        .await?;
    let reason = vigil_tests::component(&status, "mqtt-certificate")["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("expires"), "{reason}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// Vigil's open file descriptors.
fn open_fds(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_while_alarms_page_and_the_ehr_is_served() -> anyhow::Result<()> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard.min(8192).max(soft), hard)?;
    let fhir = FhirServer::start(&[])?;
    fhir.create(json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}))
        .await?;
    let (hook, pages) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.set_in("sources.mqtt", "connect_timeout_secs = 60")?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 5\nmax_backoff_secs = 1\n[alerts]\nwebhook_url = \"{hook}\"\n",
        fhir.base
    ))?;
    site.pair_anew("MX-00A0", "MRN-100000")?;
    let vigil = site.run()?;
    let pid = vigil.pid();
    let port = vigil.mqtt_addr.unwrap().port();
    let (cap, unauthenticated) = (256, 64);

    // Silent sockets from 127.0.0.1 to 127.0.0.20: the cap's worth, and 200 more.
    let mut idle = Vec::new();
    for n in 0..cap + 200 {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("127.0.0.{}:0", 1 + n % 20).parse()?)?;
        idle.push(socket.connect(format!("127.0.0.1:{port}").parse()?).await?);
    }
    // Sockets that have not passed CONNECT have their own cap: past it the oldest is closed, so all
    // but the newest 64 read the end of the stream at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut refused = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut byte)).await {
            refused += 1;
        }
    }
    assert_eq!(refused, cap + 200 - unauthenticated, "only the newest silent sockets are kept");
    let fds = open_fds(pid)?;
    assert!(fds < cap + 64, "Vigil holds {fds} descriptors with the cap at {cap}");

    // During the flood, an oximeter connects and desaturates: paged. An event goes to the EHR: delivered.
    let desaturation = oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(70), 70);
    let published = publish_tracked(port, desaturation, 100, Duration::from_secs(30), |_| {}).await?;
    assert_eq!(published.acked.len(), 70, "a device connecting during the flood is served");
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "150456=91"])?;
    eventually("the desaturation's page", Duration::from_secs(30), async || {
        anyhow::Ok(pages.lock().unwrap().iter().any(|p| p["rule_id"] == "spo2-low"))
    })
    .await?;
    // The event submitted, and the desaturation's own: both delivered.
    site.wait_outbox(Duration::from_secs(30), |o| !o.is_empty() && with_status(o, "delivered") == o.len()).await?;
    assert!(open_fds(pid)? < cap + 64);
    drop(idle);
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_past_their_bounds_are_rejected_with_the_limit_named_in_bounded_memory() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.set_in("sources.mqtt", "max_packet_bytes = 4194304\nhard_max_packet_bytes = 4194304")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let wearable = SimDevice::new("00-1B-C5-0C-00-00-00-00", DeviceKind::Wearable, None, 3);
    let mut batch = wearable.payload(Utc::now() - chrono::Duration::minutes(1));
    // 100,000 small elements: about 3 MB, within the raised 4 MiB packet limit.
    let element = json!({"t": batch["batch"][0]["t"], "hr": 72});
    batch["batch"] = serde_json::Value::Array(vec![element; 100_000]);
    let (oximeter_topic, oximeter) = oximeter("OX-1000");
    let long_id = oximeter.replace("OX-1000", &"X".repeat(32 * 1024));
    let messages = vec![
        (wearable.kind.topic(&wearable.id), batch.to_string().into_bytes()),
        (oximeter_topic, long_id.into_bytes()),
    ];
    publish_large(port, messages).await??;
    let rejected = eventually("both rejections", Duration::from_secs(30), async || {
        let r = site.show("rejected")?;
        let r: Vec<serde_json::Value> = r.as_array().cloned().unwrap_or_default();
        anyhow::Ok((r.iter().filter(|r| r["reason"] == "over_limit").count() == 2).then_some(r))
    })
    .await?;
    let details: Vec<&str> = rejected.iter().filter_map(|r| r["detail"].as_str()).collect();
    assert!(details.iter().any(|d| d.contains("100000 elements") && d.contains("max_batch_elements")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("32768 bytes") && d.contains("max_device_id_bytes")), "{details:?}");
    let peak = vigil.peak_memory_kib()?;
    eprintln!("device_edge: VmHWM {peak} KiB after a 100,000-element batch and a 32 KB device id");
    // Measured on the CI machine: see docs/benchmarks.md ("Payload bounds").
    assert!(peak < 3 * PEAK_MEASURED_KIB, "VmHWM {peak} KiB, over 3x the {PEAK_MEASURED_KIB} KiB measured");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// VmHWM of `vigil run` after the bounds test, as measured on this machine (docs/benchmarks.md).
const PEAK_MEASURED_KIB: u64 = 117_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_made_up_device_ids_raise_one_aggregated_alarm() -> anyhow::Result<()> {
    let (hook, pages) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\n"))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let messages: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|n| {
            let (topic, payload) = oximeter(&format!("FAKE-{n:04}"));
            (topic, payload.into_bytes())
        })
        .collect();
    let published = publish_tracked(port, messages, 100, Duration::from_secs(60), |_| {}).await?;
    assert_eq!(published.acked.len(), 1000);
    site.wait_counts(Duration::from_secs(30), |c| c["quarantined"].as_i64() >= Some(2000)).await?;
    let alarm = eventually("the aggregated alarm", Duration::from_secs(15), async || {
        anyhow::Ok(of_kind(&site.alarms()?, "technical").into_iter().find(|a| a["device_id"] == "unknown-devices"))
    })
    .await?;
    let description = alarm["description"].as_str().unwrap_or_default();
    assert!(description.contains("unknown devices in the last 10 minutes"), "{description}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let technical = of_kind(&site.alarms()?, "technical");
    let about_fakes: Vec<_> =
        technical.iter().filter(|a| a["device_id"].as_str().is_some_and(|d| d.starts_with("FAKE-"))).collect();
    assert!(about_fakes.is_empty(), "no alarm per made-up id: {about_fakes:?}");
    let pages = pages.lock().unwrap().clone();
    assert_eq!(pages.iter().filter(|p| p["device_id"] == "unknown-devices").count(), 1, "one page for the flood");
    assert!(!pages.iter().any(|p| p["device_id"].as_str().is_some_and(|d| d.starts_with("FAKE-"))));
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forensic_records_past_their_bounds_are_summarised_audited_and_purged() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.set_in("retention", "purge_every_secs = 1\nmax_rejected = 5\nmax_unknown_quarantine = 4")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let mut messages: Vec<(String, Vec<u8>)> =
        (0..10).map(|n| (format!("vigil/devices/T-{n}/toaster"), b"{}".to_vec())).collect();
    for n in 0..5 {
        let (topic, payload) = oximeter(&format!("FAKE-{n}"));
        messages.push((topic, payload.into_bytes()));
    }
    // A known device's faults are evidence about that device: the bound does not take them.
    let (topic, _) = oximeter("OX-1000");
    for n in 0..3 {
        messages.push((
            topic.clone(),
            format!(r#"{{"sn":"OX-1000","ts":"yesterday-{n}","spo2":97,"pr":70}}"#).into_bytes(),
        ));
    }
    publish_tracked(port, messages, 100, Duration::from_secs(30), |_| {}).await?;
    let counts = site.wait_counts(Duration::from_secs(30), |c| c["rejected"] == 5 && c["quarantined"] == 4).await?;
    let rejected = site.show("rejected")?;
    let reasons: Vec<&str> = rejected.as_array().unwrap().iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "bad_time").count(), 3, "{reasons:?} {counts}");
    let purged = site.show("purged")?;
    let rows = |what: &str, reason: &str| -> u64 {
        purged
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["what"] == what && p["reason"] == reason)
            .filter_map(|p| p["rows"].as_u64())
            .sum()
    };
    assert_eq!((rows("rejected", "no_profile"), rows("quarantine", "unknown_device")), (8, 6), "{purged:#}");
    assert!(purged.as_array().unwrap().iter().all(|p| p["digest"].as_str().is_some_and(|d| d.len() == 64)));
    let audit = site.vigil(&["audit", "list", "--config", &site.config_str()])?;
    assert!(audit.contains("retention.purge"), "{audit}");
    let status = vigil.status().await?;
    let reason = vigil_tests::component(&status, "retention")["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("rejected 5 of 5") && reason.contains("unknown-device quarantine 4 of 4"), "{reason}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
