//! Acceptance of the HL7 v2 adapter against a real MLLP receiver from PyPI (`hl7` for the transport,
//! `hl7apy` to parse and validate): ORU^R01 v2.6 per IHE PCD-01 with the expected OBX codes; an AE
//! reply sends the event to dead-letter with the receiver's ERR text; an AR without an error code is
//! a busy receiver (retried, then delivered); one that keeps answering AR pauses delivery with a
//! mode and the message stays queued.

use std::time::Duration;

use vigil_tests::{BrokerKind, MllpPeer, Site, mode_active, with_status};

fn hl7_site(peer: &MllpPeer) -> anyhow::Result<Site> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"hl7v2\"\nmllp_address = \"127.0.0.1:{}\"\ntimeout_secs = 3\nmax_backoff_secs = 1\n\
         sending_application = \"VIGIL\"\nsending_facility = \"WARD7\"\nreceiving_application = \"EHR\"\nreceiving_facility = \"HOSP\"\n",
        peer.port
    ))?;
    Ok(site)
}

fn event(site: &Site, args: &[&str]) -> anyhow::Result<String> {
    site.for_patient("event", "MX-00A0", "MRN-100000", args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oru_r01_reaches_a_real_mllp_receiver_and_parses_as_pcd01() -> anyhow::Result<()> {
    let peer = MllpPeer::start(&[])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=88"])?;
    event(&site, &["--bp", "128/82/97"])?;
    event(&site, &["--obs", "147842=118", "--obs", "151562=22", "--obs", "150364=38.2", "--report", "Spot check"])?;
    // What the device said of its values: PCD-01 measurement status in OBX-8, result status in OBX-11.
    event(&site, &["--obs", "149530=131", "--validity", "questionable"])?;
    event(&site, &["--obs", "149530=0", "--validity", "invalid"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 5).await?;

    let received = peer.received()?;
    assert_eq!(received.len(), 5, "one message per event, none twice: {received:#?}");
    let all_obx: Vec<&serde_json::Value> = received.iter().flat_map(|m| m["obx"].as_array().unwrap()).collect();
    let pulse = |flag: &str| all_obx.iter().find(|o| o["code"] == "149530" && o["abnormal_flags"] == flag).copied();
    let questionable = pulse("QUES").expect("a QUES pulse");
    assert_eq!((questionable["value"].as_str(), questionable["status"].as_str()), (Some("131"), Some("R")));
    let invalid = pulse("INV").expect("an INV pulse");
    assert_eq!((invalid["value"].as_str(), invalid["status"].as_str()), (Some(""), Some("X")), "no number for INV");
    let mut codes = Vec::new();
    for m in &received {
        assert_eq!(m["valid"], true, "hl7apy validation: {m:#}");
        // The peer records the block between <VT> and <FS>, each <CR> as a newline.
        assert!(m["raw"].as_str().unwrap().ends_with('\n'), "the last byte before <FS> is <CR>: {m:#}");
        assert_eq!(m["message_type"], "ORU^R01^ORU_R01");
        assert_eq!(m["version"], "2.6");
        assert!(m["profile"].as_str().unwrap().contains("1.3.6.1.4.1.19376.1.6.1.1.1"), "IHE PCD-01 in MSH-21");
        assert!(m["pid3"].as_str().unwrap().contains("MRN-100000"));
        for obx in m["obx"].as_array().unwrap().iter().filter(|o| o["code"] != "149530") {
            assert_eq!((obx["status"].as_str(), obx["abnormal_flags"].as_str()), (Some("R"), Some("")), "{obx}");
            assert_eq!(obx["system"], "MDC");
            assert!(obx["equipment"].as_str().unwrap().starts_with("MX-00A0"), "OBX-18: {obx}");
            codes.push((obx["code"].as_str().unwrap().to_string(), obx["value"].as_str().unwrap().to_string()));
        }
    }
    codes.sort();
    let expected: Vec<(String, String)> = [
        ("147842", "118"),
        ("150021", "128"),
        ("150022", "82"),
        ("150023", "97"),
        ("150364", "38.2"),
        ("150456", "88"),
        ("151562", "22"),
    ]
    .iter()
    .map(|(c, v)| (c.to_string(), v.to_string()))
    .collect();
    assert_eq!(codes, expected);
    let spo2 = received.iter().flat_map(|m| m["obx"].as_array().unwrap()).find(|o| o["code"] == "150456").unwrap();
    assert!(spo2["unit"].as_str().unwrap().starts_with("262688^MDC_DIM_PERCENT"), "{spo2}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ae_reply_dead_letters_with_the_err_text() -> anyhow::Result<()> {
    let peer = MllpPeer::start(&["--reply", "AE", "--error-text", "Unknown patient in PID-3"])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=91"])?;
    let vigil = site.run()?;
    let outbox = site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "dead") == 1).await?;
    let reason = outbox[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("AE") && reason.contains("Unknown patient in PID-3"), "{reason}");
    assert_eq!(peer.received()?.len(), 1, "AE is not retried blindly");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried_with_the_same_control_id() -> anyhow::Result<()> {
    let peer = MllpPeer::start(&["--delay-first", "1", "--duplicates"])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=93"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(60), |o| with_status(o, "delivered") == 1).await?;
    let received = peer.received()?;
    assert_eq!(received.len(), 2, "the unanswered message was sent again: {received:#?}");
    assert_eq!(received[0]["control_id"], received[1]["control_id"], "same MSH-10 on the retry");
    assert_eq!(received[1]["duplicate"], true, "so the receiver could recognise it");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ar_without_an_error_code_is_retried_and_then_delivered() -> anyhow::Result<()> {
    let peer = MllpPeer::start(&["--busy-first", "2", "--duplicates"])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=94"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(60), |o| with_status(o, "delivered") == 1).await?;
    let received = peer.received()?;
    let codes: Vec<&str> = received.iter().filter_map(|m| m["ack_code"].as_str()).collect();
    assert_eq!(codes, ["AR", "AR", "AA"], "{received:#?}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_answering_ar_pauses_delivery_and_the_message_stays_queued() -> anyhow::Result<()> {
    // 207, application internal error: a passing fault, retried, never dead-lettered.
    let peer = MllpPeer::start(&["--reply", "AR", "--error-code", "207"])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=95"])?;
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(60), |s| mode_active(s, "ehr_sync_paused")).await?;
    let outbox = site.outbox()?;
    assert_eq!(with_status(&outbox, "pending"), 1, "still queued: {outbox:#?}");
    assert_eq!(with_status(&outbox, "dead"), 0);
    assert!(peer.received()?.len() >= 2, "retried");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ar_for_an_unsupported_version_is_a_configuration_mode_not_a_dead_letter() -> anyhow::Result<()> {
    let peer = MllpPeer::start(&["--reply", "AR", "--error-code", "203"])?;
    let site = hl7_site(&peer)?;
    event(&site, &["--obs", "150456=96"])?;
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(30), |s| mode_active(s, "ehr_configuration_fault")).await?;
    let outbox = site.outbox()?;
    assert_eq!((with_status(&outbox, "pending"), with_status(&outbox, "dead")), (1, 0), "{outbox:#?}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_over_tls_reaches_a_receiver_whose_certificate_checks_out_and_no_other() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    vigil_tests::certificates(certs.path(), "vigil")?;
    let file = |name: &str| certs.path().join(name).to_string_lossy().into_owned();
    // Mutual TLS: the receiver also asks for Vigil's certificate.
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let peer = MllpPeer::start(&["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca])?;
    let site = hl7_site(&peer)?;
    let (client_cert, client_key) = (file("client.pem"), file("client.key"));
    site.set_in(
        "ehr",
        &format!(
            "mllp_tls = true\nmllp_ca_file = {ca:?}\nmllp_client_cert_file = {client_cert:?}\nmllp_client_key_file = {client_key:?}"
        ),
    )?;
    event(&site, &["--obs", "150456=91"])?;
    let vigil = site.run()?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    assert_eq!(peer.received()?.len(), 1);
    assert!(vigil.terminate().await?.success());

    // The same receiver, but Vigil trusts another CA: no message leaves, and it stays queued.
    let other = tempfile::tempdir()?;
    vigil_tests::certificates(other.path(), "unused-client")?;
    let config =
        std::fs::read_to_string(&site.config)?.replace(&file("ca.pem"), &other.path().join("ca.pem").to_string_lossy());
    std::fs::write(&site.config, config)?;
    event(&site, &["--obs", "150456=90"])?;
    let vigil = site.run()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outbox = site.outbox()?;
    assert_eq!((with_status(&outbox, "delivered"), with_status(&outbox, "pending")), (1, 1), "{outbox:#?}");
    assert_eq!(peer.received()?.len(), 1, "nothing reached a receiver Vigil could not verify");
    assert!(vigil.terminate().await?.success());

    // The right CA again, but no client certificate: the receiver refuses Vigil.
    let config = std::fs::read_to_string(&site.config)?
        .replace(&other.path().join("ca.pem").to_string_lossy().into_owned(), &file("ca.pem"));
    let config: Vec<&str> = config.lines().filter(|l| !l.starts_with("mllp_client_")).collect();
    std::fs::write(&site.config, config.join("\n"))?;
    let vigil = site.run()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(with_status(&site.outbox()?, "pending"), 1, "still queued");
    assert_eq!(peer.received()?.len(), 1, "a receiver that requires a client certificate got nothing without one");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
