//! The external-broker source: mutual TLS to Mosquitto, and reconnection with backoff after the
//! broker goes away, with the connection state visible in the log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use vigil_tests::{BrokerKind, Mosquitto, Site, component, eventually, free_port, publish_tracked};

fn oximeter_burst(n: usize, offset_ms: i64) -> Vec<(String, Vec<u8>)> {
    let device = SimDevice::new("OX-1000", DeviceKind::Oximeter, None, 1);
    let t0 = Utc::now() - chrono::Duration::minutes(10) + chrono::Duration::milliseconds(offset_ms);
    (0..n as i64)
        .map(|i| {
            (
                device.kind.topic(&device.id),
                device.payload(t0 + chrono::Duration::milliseconds(i)).to_string().into_bytes(),
            )
        })
        .collect()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Vigil Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    for (name, san) in [("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN=vigil-{name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), san).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
    // Mosquitto drops root privileges to its own user, which must be able to read these.
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_to_mosquitto() -> anyhow::Result<()> {
    let pki = tempfile::tempdir()?;
    make_pki(pki.path());
    let tls_port = free_port();
    let p = |f: &str| pki.path().join(f).display().to_string();
    // Devices publish on the plain listener; Vigil must come in over TLS with its client certificate.
    let broker = Mosquitto::start_on(
        free_port(),
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            p("ca.pem"),
            p("server.pem"),
            p("server.key")
        ),
    )
    .await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let config = std::fs::read_to_string(&site.config)?.replace(
        &format!("url = \"mqtt://127.0.0.1:{}\"", broker.port),
        &format!(
            "url = \"mqtts://127.0.0.1:{tls_port}\"\nca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
            p("ca.pem"),
            p("client.pem"),
            p("client.key")
        ),
    );
    std::fs::write(&site.config, config)?;
    site.vigil(&["check-config", &site.config_str()])?;
    let vigil = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(20)).await?;
    publish_tracked(broker.port, oximeter_burst(100, 0), 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 200).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_broker_returns() -> anyhow::Result<()> {
    let port = free_port();
    let broker = Mosquitto::start_on(port, "").await?;
    let site = Site::new(BrokerKind::External(port))?;
    let vigil = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(20)).await?;
    publish_tracked(port, oximeter_burst(50, 0), 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 100).await?;

    drop(broker);
    // Vigil notices: the board shows the source down and retrying, and the log says so; a second
    // attempt has failed too, so the reconnection below is one that the backoff scheduled.
    vigil
        .wait_status(Duration::from_secs(20), |s| {
            let mqtt = component(s, "mqtt");
            mqtt["state"] == "down" && mqtt["reason"].as_str().is_some_and(|r| r.starts_with("reconnecting"))
        })
        .await?;
    wait_for_log(&site, "state=Reconnecting", 2, Duration::from_secs(20)).await?;
    let _broker = Mosquitto::start_on(port, "").await?;
    // The broker lost its sessions (no persistence): Vigil must subscribe again on reconnect. The
    // board showed the source down above, so "subscribed" now is the new connection's.
    vigil.wait_subscribed(Duration::from_secs(60)).await?;
    publish_tracked(port, oximeter_burst(50, 100_000), 100, Duration::from_secs(30), |_| {}).await?;
    site.wait_counts(Duration::from_secs(30), |c| c["readings"] == 200).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// Waits until `needle` appears `times` times in the site's log.
async fn wait_for_log(site: &Site, needle: &str, times: usize, within: Duration) -> anyhow::Result<()> {
    eventually(&format!("{needle:?} logged {times} time(s)"), within, async || {
        site.log().matches(needle).count() >= times
    })
    .await
}
