//! The third session: the fleet, the alarms in sight and the quarantine at scale, on a site whose
//! workstation runs in New York time. A simulated ward (one bed, 28 senders nobody registered)
//! publishes through the console's own endpoint; one of its devices is switched off; a sender
//! nobody registered is registered and paired from the fleet; a spare monitor's 2,009 quarantined
//! readings are paged through (none twice while more arrive), paired and released as one action and
//! counted in the store.

use chrono::{DateTime, Utc};
use chrono_tz::America::New_York;
use vigil_tests::{GATEWAY, Mosquitto, fixture, oximeter_spo2_from, vigil_bin};

use super::*;

/// The bed whose oximeter the simulator switches off, and the spare monitor nobody paired.
const DROPPED: &str = "OX-1000";
const SPARE: &str = "MX-00A1";
/// Registered spares that send while paired with nobody.
const SPARES: [&str; 2] = ["OX-SPARE-1", "OX-SPARE-2"];
/// A sender nobody registered, registered and paired from the fleet.
const NEWCOMER: &str = "OX-NEW-7";

/// `t` as the console shows it in New York: "09:05:12 EST".
fn new_york(t: DateTime<Utc>) -> String {
    t.with_timezone(&New_York).format("%H:%M:%S %Z").to_string()
}

/// Whether `text` shows `t` (or the second after it: the arrival stamps the time) in New York time.
fn shows(text: &str, t: DateTime<Utc>) -> bool {
    [t, t + chrono::Duration::seconds(1)].iter().any(|t| text.contains(&new_york(*t)))
}

/// The simulator as its own process, stopped on drop.
struct Simulator(Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_the_alarms_in_sight_and_the_quarantine_at_scale_in_new_york_time() -> anyhow::Result<()> {
    let (site, port) = site_on_a_known_port()?;
    // Shortened rule timing: a bedside device is offline after 10 s without data.
    let rules = std::fs::read_to_string(fixture("rules/adult-vitals.toml"))?;
    let at = rules.find("id = \"device-offline\"").context("the no-data rule")?;
    let shortened = rules[at..].replacen("for 60 s", "for 10 s", 1).replacen("after_secs = 60", "after_secs = 10", 1);
    let rules = format!("{}{shortened}", &rules[..at]);
    let rules_file = site.dir.path().join("rules.toml");
    std::fs::write(&rules_file, rules)?;
    let config = std::fs::read_to_string(&site.config)?;
    std::fs::write(
        &site.config,
        config.replace(&fixture("rules/adult-vitals.toml").display().to_string(), &rules_file.display().to_string()),
    )?;
    // The ward's webhook, and the alert topic on a real Mosquitto.
    let (hook, _pages) = vigil_tests::webhook().await?;
    let alert_broker = Mosquitto::start().await?;
    let alert_topic = format!("mqtt://127.0.0.1:{}", alert_broker.port);
    site.set_in("alerts", &format!("webhook_url = \"{hook}\"\nmqtt_url = \"{alert_topic}\""))?;
    publish_as_gateway(&site, port)?;
    let config = site.config_str();
    // Two spare oximeters, registered and paired with nobody: what they send raises infrastructure
    // alarms (technical, about no patient).
    for spare in SPARES {
        site.vigil(&["devices", "--config", &config, "--register", spare, "--profile", "acme-ox100"])?;
    }
    with_console(site.dir.path(), &[("VIGIL_CONFIG", &config), ("TZ", "America/New_York")], async |page| {
        page.client.set_window_size(1440, 900).await?;
        page.type_into(&by_id("signin-name"), ADMIN.0).await?;
        page.type_into(&by_id("signin-password"), ADMIN.1).await?;
        page.click(&by_id("signin-submit")).await?;
        page.wait_text(&by_id("account-current"), Duration::from_secs(10), |t| t.contains(ADMIN.0)).await?;

        let _ward = Simulator(
            Command::new(vigil_bin())
                .args(["simulate", "--broker", &format!("mqtt://127.0.0.1:{port}")])
                .args(["--profile", "oximeter", "--profile", "monitor", "--devices", "1", "--unpaired", "28"])
                .args(["--drop", DROPPED, "--after", "15s", "--episodes", "0"])
                .args(["--username", GATEWAY, "--password-file"])
                .arg(site.gateway_secret_file())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );

        // The fleet: the bed online, then 30 rows and more, every one in sight at 1440x900.
        page.view("fleet").await?;
        let dropped = format!("[data-testid=\"fleet-row-{DROPPED}\"]");
        eventually("the bed's oximeter online", Duration::from_secs(30), async || {
            anyhow::Ok(page.attr(&dropped, "data-state").await?.as_deref() == Some("online"))
        })
        .await?;
        let rows = "[data-testid^=\"fleet-row-\"]";
        let in_sight = format!(
            "return Array.from(document.querySelectorAll('{rows}'))\
             .filter(r => {{ const b = r.getBoundingClientRect(); return b.top >= 0 && b.bottom <= window.innerHeight; }}).length;"
        );
        eventually("30 fleet rows in sight", Duration::from_secs(30), async || {
            anyhow::Ok(page.client.execute(&in_sight, vec![]).await?.as_u64().unwrap_or(0) >= 30)
        })
        .await?;
        page.screenshot("fleet").await?;

        // A sender nobody registered: listed as unknown, last heard in New York time.
        let heard_at = Utc::now();
        publish_tracked(port, oximeter_spo2_from(NEWCOMER, 97.0, heard_at, 1), 10, Duration::from_secs(10), |_| {})
            .await?;
        let newcomer = format!("[data-testid=\"fleet-row-{NEWCOMER}\"]");
        eventually("the newcomer on the fleet", Duration::from_secs(20), async || {
            anyhow::Ok(page.attr(&newcomer, "data-state").await?.as_deref() == Some("unknown"))
        })
        .await?;
        let last_heard = page.text_of(&by_id(&format!("fleet-last-heard-{NEWCOMER}"))).await?;
        assert!(shows(&last_heard, heard_at), "{last_heard} shows {heard_at} in New York time");

        // Registered from the fleet, prefilled; then paired with a verified patient.
        page.click(&by_id(&format!("fleet-register-{NEWCOMER}"))).await?;
        let id = page.read(&by_id("register-id"), "e.value").await?;
        assert_eq!(id.as_str(), Some(NEWCOMER));
        // The profile its topic suggests, once the loaded profiles are listed.
        eventually("the suggested profile", Duration::from_secs(10), async || {
            let profile = page.read(&by_id("register-profile"), "e.value").await?;
            anyhow::Ok(profile.as_str() == Some("acme-ox100"))
        })
        .await?;
        page.type_into(&by_id("register-label"), "Bed 4 oximeter").await?;
        page.click(&by_id("register-submit")).await?;
        page.type_into(&by_id("pair-value"), "MRN-100003").await?;
        page.click(&by_id("pair-lookup")).await?;
        page.wait_text(&by_id("pair-verified"), Duration::from_secs(10), |t| t.contains("Demo Patient Delta")).await?;
        page.click(&by_id("pair-confirm")).await?;
        page.wait_text(&by_id("pair-result"), Duration::from_secs(10), |t| t.contains("paired with Demo Patient Delta"))
            .await?;
        // The row's cells cut long names short on screen; their whole text is in the DOM.
        eventually("the newcomer registered and paired on the fleet", Duration::from_secs(20), async || {
            let row = page.read(&newcomer, "e.textContent").await?;
            let row = row.as_str().unwrap_or_default();
            anyhow::Ok(row.contains("Bed 4 oximeter") && row.contains("Demo Patient Delta"))
        })
        .await?;

        // Switched off after 15 s: offline on the fleet within its 10 s no-data bound.
        eventually("the bed's oximeter offline", Duration::from_secs(60), async || {
            anyhow::Ok(page.attr(&dropped, "data-state").await?.as_deref() == Some("offline"))
        })
        .await?;
        // Its no-data alarm: in the alarm list, in New York time, paged to the ward's webhook, and
        // in the top-bar count on every view.
        page.view("alarms").await?;
        let offline = eventually("the no-data alarm", Duration::from_secs(30), async || {
            let out = site.vigil(&["alarms", "--config", &config, "--active"])?;
            let alarms: serde_json::Value = serde_json::from_str(&out)?;
            anyhow::Ok(alarms.as_array().and_then(|a| {
                a.iter().find(|a| a["rule_id"] == "device-offline" && a["device_id"] == DROPPED).cloned()
            }))
        })
        .await?;
        let id = offline["id"].as_i64().context("alarm id")?;
        let raised: DateTime<Utc> = serde_json::from_value(offline["raised_at"].clone())?;
        let row = format!("[data-testid=\"alarm-row\"][data-id=\"{id}\"]");
        let text = page.text_of(&row).await?;
        assert!(text.contains(&new_york(raised)), "{text} shows {raised} in New York time");
        // Delivered: the webhook answered, and the broker acknowledged the alert topic's publish.
        page.wait_text(&by_id(&format!("alarm-pages-{id}")), Duration::from_secs(15), |t| {
            t.contains("ward webhook ✓") && t.contains("alert topic ✓")
        })
        .await?;
        for view in ["fleet", "quarantine", "live", "alarms"] {
            page.view(view).await?;
            let technical = page.text_of(&by_id("alarm-count-technical")).await?;
            assert!(technical.trim().parse::<u32>()? >= 1, "{view}: {technical}");
        }
        // The spares send: their infrastructure alarms go with one reason.
        let now = Utc::now();
        let spares = SPARES.iter().flat_map(|s| oximeter_spo2_from(s, 97.0, now, 1)).collect();
        publish_tracked(port, spares, 10, Duration::from_secs(10), |_| {}).await?;
        page.view("alarms").await?;
        let bulk = eventually("the spares' alarms", Duration::from_secs(20), async || {
            let ids = page.read_all("[data-testid^=\"alarm-select-\"]", "e.dataset.testid").await?;
            let mut ids: Vec<String> = ids.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
            ids.retain(|i| i != "alarm-select-all");
            anyhow::Ok((ids.len() >= 2).then_some(ids))
        })
        .await?;
        assert!(!bulk.contains(&format!("alarm-select-{id}")), "a bed's alarm is acknowledged at the bed");
        for b in &bulk[..2] {
            page.click(&by_id(b)).await?;
        }
        page.click(&by_id("alarm-bulk-ack")).await?;
        page.type_into(&by_id("bulk-ack-reason"), "biomed registering the new oximeters").await?;
        page.click(&by_id("bulk-ack-confirm")).await?;
        page.wait_text(&by_id("alarm-bulk-result"), Duration::from_secs(10), |t| t.contains('2')).await?;
        page.find(&by_id("secondary-display-note")).await?;
        page.screenshot("alarms-topbar").await?;

        // The trend, in New York time: the newcomer's reading measured at a known instant.
        let measured = DateTime::from_timestamp(Utc::now().timestamp(), 0).context("a whole second")?;
        publish_tracked(port, oximeter_spo2_from(NEWCOMER, 95.0, measured, 1), 10, Duration::from_secs(10), |_| {})
            .await?;
        page.view("live").await?;
        let spo2 = format!("[data-testid=\"live-row\"][data-device=\"{NEWCOMER}\"][data-mdc=\"150456\"]");
        page.click(&spo2).await?;
        let expected = new_york(measured);
        eventually("the trend in New York time", Duration::from_secs(20), async || {
            anyhow::Ok(page.html(&by_id("chart")).await?.contains(&expected))
        })
        .await?;

        // Every parameter of the bed on one time axis.
        let devices: serde_json::Value = serde_json::from_str(&site.vigil(&["devices", "--config", &config])?)?;
        let alpha = devices
            .as_array()
            .and_then(|d| d.iter().find(|d| d["device_id"] == "MX-00A0"))
            .and_then(|d| d["patient_id"].as_i64())
            .context("the bed's patient")?;
        page.click(&by_id(&format!("bed-view-{alpha}"))).await?;
        eventually("the bed's parameters", Duration::from_secs(20), async || {
            let svg = page.html(&by_id("bed-chart")).await?;
            anyhow::Ok(["Heart rate MX-00A0", "SpO2 MX-00A0", "Systolic"].iter().all(|m| svg.contains(m)))
        })
        .await?;
        page.screenshot("trend-bed").await?;

        // A spare monitor nobody paired sent for 48 minutes: 2,002 readings in quarantine, one group.
        let monitor = SimDevice::new(SPARE, DeviceKind::Monitor, Some("MRN-100001"), 11);
        let first = Utc::now() - chrono::Duration::minutes(48);
        let messages: Vec<(String, Vec<u8>)> = (0..286)
            .map(|i| {
                let at = first + chrono::Duration::seconds(i * 10);
                (monitor.kind.topic(SPARE), monitor.payload(at).to_string().into_bytes())
            })
            .collect();
        publish_tracked(port, messages, 50, Duration::from_secs(60), |_| {}).await?;
        // A reading of a patient without consent is held; a payload no profile can read is rejected.
        let charlie = oximeter_spo2_from("OX-1001", 96.0, Utc::now(), 1);
        let broken = vec![("vigil/devices/OX-1000/oximeter".to_string(), b"{\"sn\":\"OX-1000\",\"ts\":".to_vec())];
        publish_tracked(port, [charlie, broken].concat(), 10, Duration::from_secs(10), |_| {}).await?;
        page.view("quarantine").await?;
        let group = format!("{SPARE}-no_active_pairing");
        page.wait_text(&by_id(&format!("qgroup-count-{group}")), Duration::from_secs(30), |t| {
            t.replace(',', "").trim() == "2002"
        })
        .await?;
        page.screenshot("quarantine-groups").await?;
        // Paged after the last row seen: a reading arriving meanwhile shifts no row onto the next page.
        page.click(&by_id(&format!("qgroup-rows-{group}"))).await?;
        page.wait_text(&by_id("qpage-range"), Duration::from_secs(10), |t| t == "rows 1–100 of 2,002").await?;
        let rows = "[data-testid=\"quarantine-row\"]";
        let newest: Vec<serde_json::Value> = page.read_all(rows, "e.dataset.id").await?;
        let late = first + chrono::Duration::seconds(286 * 10);
        publish_tracked(port, vec![(monitor.kind.topic(SPARE), monitor.payload(late).to_string().into_bytes())], 10,
            Duration::from_secs(10), |_| {})
        .await?;
        page.click(&by_id("qpage-next")).await?;
        // Its 7 readings are the newest now: the second page is the 108th row on, and none repeats.
        page.wait_text(&by_id("qpage-range"), Duration::from_secs(10), |t| t == "rows 108–207 of 2,009").await?;
        let older = page.read_all(rows, "e.dataset.id").await?;
        assert!(older.iter().all(|id| !newest.contains(id)), "no row twice: {newest:?} then {older:?}");
        page.click(&by_id(&format!("qgroup-pair-{group}"))).await?;
        page.type_into(&by_id("qgroup-pair-value"), "MRN-100001").await?;
        page.click(&by_id("qgroup-pair-lookup")).await?;
        page.wait_text(&by_id("qgroup-pair-verified"), Duration::from_secs(10), |t| t.contains("Demo Patient Bravo"))
            .await?;
        page.type_into(&by_id("qgroup-pair-backdate"), "the spare monitor went to Bravo's bed at 08:00").await?;
        page.type_into(&by_id("qgroup-pair-reason"), "paired late: recover the shift's readings").await?;
        page.click(&by_id("qgroup-pair-submit")).await?;
        let outcome = page.wait_text(&by_id("qgroup-outcome"), Duration::from_secs(60), |t| !t.is_empty()).await?;
        assert!(outcome.contains("2,009"), "{outcome}");
        // Counted in the store: all of them are telemetry of Bravo now.
        let devices: serde_json::Value = serde_json::from_str(&site.vigil(&["devices", "--config", &config])?)?;
        let bravo = devices.as_array().and_then(|d| d.iter().find(|d| d["device_id"] == SPARE)).map(|d| d["patient_id"].clone());
        let readings = site.show("readings")?;
        let stored = readings.as_array().map_or(0, |rs| {
            rs.iter().filter(|r| r["device_id"] == SPARE && Some(&r["patient_id"]) == bravo.as_ref()).count()
        });
        assert_eq!(stored, 2009, "{outcome}");

        // Held and rejected payloads have views of their own, with the raw payload.
        page.click(&by_id("qtab-held")).await?;
        page.wait_text(&by_id("held-table"), Duration::from_secs(10), |t| t.contains("OX-1001")).await?;
        page.click(&by_id("qtab-rejected")).await?;
        page.wait_text(&by_id("rejected-table"), Duration::from_secs(10), |t| t.contains("not JSON")).await?;
        Ok(())
    })
    .await
}
