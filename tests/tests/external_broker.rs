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
    // Mosquitto drops root privileges to its own user, which must be able to read its files; Vigil's
    // own key stays its owner's alone (Vigil refuses a key others can read).
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = if path.ends_with("client.key") { 0o600 } else { 0o644 };
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
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

/// A publish larger than Vigil's payload limit is no poison message: it is acknowledged and kept in
/// `rejected`, truncated, with its size; the readings published after it are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mb_publish_is_kept_truncated_in_rejected_and_the_readings_after_it_are_stored() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let vigil = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(15)).await?;
    let mut messages = vec![("vigil/devices/OX-1000/oximeter".to_string(), vec![b'x'; 1 << 20])];
    messages.extend(oximeter_burst(20, 0));
    let publisher = vigil_tests::publish_large(broker.port, messages);
    publisher.await??;
    let counts = site
        .wait_counts(Duration::from_secs(30), |c| {
            c["readings"].as_i64() == Some(40) && c["rejected"].as_i64() == Some(1)
        })
        .await?;
    assert_eq!(counts["payloads"].as_i64(), Some(21), "{counts}");
    let rejected = site.show("rejected")?;
    let entry = &rejected.as_array().unwrap()[0];
    assert_eq!(entry["reason"], "too_large", "{entry:#}");
    assert!(entry["detail"].as_str().unwrap().contains("a payload of 1048576 bytes"), "{entry:#}");
    assert_eq!(entry["payload"].as_str().map(str::len), Some(64 * 1024), "its first 64 KiB kept");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// A broker whose ACL refuses Vigil's subscription leaves it connected but deaf: the board says so.
/// Mosquitto's dynamic-security plugin (in Debian's package) refuses subscriptions by default to a
/// client with no role, as Vigil's anonymous one is here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_shows_mqtt_down() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dynsec = dir.path().join("dynsec.json");
    let init = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init", &dynsec.to_string_lossy(), "admin", "admin-password"])
        .output()?;
    anyhow::ensure!(init.status.success(), "mosquitto_ctrl dynsec init: {}", String::from_utf8_lossy(&init.stderr));
    let plugin = glob_one("/usr/lib", "mosquitto_dynamic_security.so")?;
    let extra = format!("plugin {}\nplugin_opt_config_file {}\n", plugin.display(), dynsec.display());
    let broker = Mosquitto::start_on(free_port(), &extra).await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let vigil = site.run()?;
    let status = vigil
        .wait_status(Duration::from_secs(15), |s| {
            component(s, "mqtt")["reason"].as_str().is_some_and(|r| r.starts_with("subscription refused"))
        })
        .await?;
    assert_eq!(component(&status, "mqtt")["state"], "down", "{status:#}");
    assert!(vigil_tests::mode_active(&status, "mqtt_ingest_down"));
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// The file named `name` somewhere under `root` (the plugin's directory is the architecture's).
fn glob_one(root: &str, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let out = Command::new("find").args([root, "-name", name]).output()?;
    let found = String::from_utf8_lossy(&out.stdout).lines().next().map(std::path::PathBuf::from);
    found.ok_or_else(|| anyhow::anyhow!("{name} not found under {root} (Debian's mosquitto package has it)"))
}
