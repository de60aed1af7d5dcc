//! The desktop console end to end: the real Tauri app (its WebKitGTK window under Xvfb) driven over
//! WebDriver (tauri-driver with Debian's WebKitWebDriver, fantoccini as the client). It starts in
//! demo mode; live values appear and change; an alarm is acknowledged; a device is paired through
//! the UI; a quarantined reading is released after pairing; the degradation banner appears when the
//! EHR endpoint is made unreachable. Each view is saved to docs/screenshots/. A second session, on
//! a site with accounts, signs in and locks when idle, the alarm count still live. A third ([`fleet`])
//! works the fleet, the alarms and the quarantine at scale in New York time.

#[path = "console_e2e/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use pipeline_core::simulate::{DeviceKind, SimDevice};
use serde_json::json;
use vigil_tests::{ADMIN, BrokerKind, Site, eventually, free_port, publish_as_gateway, publish_tracked, workspace};

/// Xvfb on a display of its own; stopped on drop.
struct Display {
    child: Child,
    number: u32,
}

impl Display {
    async fn start() -> anyhow::Result<Display> {
        let number = (90..200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .context("no free X display number")?;
        let child = Command::new("Xvfb")
            .args([
                format!(":{number}"),
                "-screen".into(),
                "0".into(),
                "1600x1000x24".into(),
                "-nolisten".into(),
                "tcp".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("Xvfb (Debian package xvfb) must be installed: make test-deps")?;
        let display = Display { child, number };
        let socket = format!("/tmp/.X11-unix/X{number}");
        eventually(&format!("Xvfb's socket {socket}"), Duration::from_secs(5), async || Path::new(&socket).exists())
            .await?;
        Ok(display)
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tauri-driver, which starts WebKitWebDriver, which starts the app. Stopped with SIGTERM on drop
/// (SIGKILL would leave WebKitWebDriver holding the pipes).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start(display: &Display, data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Driver> {
        let port = free_port();
        let native_port = std::iter::repeat_with(free_port).find(|p| *p != port).unwrap_or_default();
        let child = Command::new(tauri_driver())
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .env("DISPLAY", format!(":{}", display.number))
            .env("VIGIL_DATA_DIR", data_dir)
            .env("VIGIL_DEMO_MQTT_LISTEN", "127.0.0.1:0")
            .env("VIGIL_DEMO_CLOCK_SYNC_CHECK", "off")
            .env("VIGIL_DEMO_STATUS_LISTEN", "127.0.0.1:0")
            .env("VIGIL_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data_dir.join("console.log"))?)
            .spawn()
            .context("tauri-driver must be installed: make test-deps")?;
        let driver = Driver { child, port };
        // tauri-driver listens before the WebKitWebDriver it starts does; a session requested in
        // between fails, so both must answer.
        for (what, port) in [("tauri-driver", port), ("WebKitWebDriver", native_port)] {
            eventually(&format!("{what} listening on {port}"), Duration::from_secs(10), async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
            })
            .await?;
        }
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn tauri_driver() -> PathBuf {
    std::env::var_os("TAURI_DRIVER").map(PathBuf::from).unwrap_or_else(|| {
        let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tauri-driver"));
        cargo_bin.filter(|p| p.exists()).unwrap_or_else(|| "tauri-driver".into())
    })
}

/// The console binary, built like the tests' `vigil` (the UI in ui/dist must exist: make test builds it).
fn console_bin() -> anyhow::Result<PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-q", "-p", "vigil-console"])
        .current_dir(workspace())
        .status()?;
    anyhow::ensure!(status.success(), "building vigil-console failed");
    Ok(target.join("debug").join("vigil-console"))
}

fn by_id(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// The page, with waits that poll the DOM (what the operator sees), not timers.
struct Page {
    client: Client,
    shots: PathBuf,
}

impl Page {
    async fn find(&self, css: &str) -> anyhow::Result<Element> {
        eventually(&format!("{css} appearing"), Duration::from_secs(30), async || {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Evaluates `expr` on the element matching `css` (named `e` there) in one step inside the page,
    /// waiting until there is one. The live views re-render every second, so an element found in
    /// one WebDriver call can be gone by the next; reading it in the same step cannot lose it.
    async fn read(&self, css: &str, expr: &str) -> anyhow::Result<serde_json::Value> {
        let script = format!("const e = document.querySelector(arguments[0]); return e ? [{expr}] : null;");
        eventually(&format!("{css} appearing"), Duration::from_secs(30), async || {
            let found = self.client.execute(&script, vec![json!(css)]).await?;
            anyhow::Ok(found.as_array().and_then(|v| v.first().cloned()))
        })
        .await
    }

    /// `expr` evaluated on every element matching `css` (named `e`), in one step inside the page.
    async fn read_all(&self, css: &str, expr: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let script = format!("return Array.from(document.querySelectorAll(arguments[0]), e => {expr});");
        let found = self.client.execute(&script, vec![json!(css)]).await?;
        Ok(found.as_array().cloned().unwrap_or_default())
    }

    /// The element's text as shown.
    async fn text_of(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.read(css, "e.innerText").await?.as_str().unwrap_or_default().to_string())
    }

    async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.read(css, &format!("e.getAttribute({})", json!(name))).await?;
        Ok(value.as_str().map(str::to_string))
    }

    /// The element's markup (a chart's SVG).
    async fn html(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.read(css, "e.innerHTML").await?.as_str().unwrap_or_default().to_string())
    }

    /// Waits until the element's text satisfies `done`; returns it.
    async fn wait_text(&self, css: &str, within: Duration, done: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let mut last = String::new();
        let text = eventually(&format!("the expected text in {css}"), within, async || {
            let shown = self.client.execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                vec![json!(css)],
            );
            last = shown.await?.as_str().unwrap_or_default().to_string();
            anyhow::Ok(done(&last).then(|| last.clone()))
        })
        .await;
        text.with_context(|| format!("the last text of {css}: {last:?}"))
    }

    /// Clicks like a user; a live table re-renders every second, so when WebKitWebDriver loses the
    /// element between finding and clicking it, the click is made from the page instead.
    async fn click(&self, css: &str) -> anyhow::Result<()> {
        if self.find(css).await?.click().await.is_err() {
            self.client
                .execute("document.querySelector(arguments[0]).click();", vec![json!(css)])
                .await
                .with_context(|| format!("clicking {css}"))?;
        }
        Ok(())
    }

    /// Types like a user; if the form re-renders under the keys, it finds the field again and
    /// types the whole text afresh.
    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        eventually(&format!("typing into {css}"), Duration::from_secs(30), async || {
            let input = self.find(css).await?;
            anyhow::Ok(input.clear().await.is_ok() && input.send_keys(text).await.is_ok())
        })
        .await
    }

    /// Sets a select or a datetime-local input the way a user's choice does (value, then the event
    /// Preact listens to): WebKitWebDriver cannot type into those controls.
    async fn set_value(&self, css: &str, value: &str, event: &str) -> anyhow::Result<()> {
        self.find(css).await?;
        self.client
            .execute(
                "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                 e.dispatchEvent(new Event(arguments[2], { bubbles: true }));",
                vec![json!(css), json!(value), json!(event)],
            )
            .await?;
        Ok(())
    }

    async fn view(&self, name: &str) -> anyhow::Result<()> {
        self.click(&by_id(&format!("nav-{name}"))).await
    }

    /// Saves the window; waits a moment first, as the first WebDriver screenshot can be stale.
    async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let png = self.client.screenshot().await?;
        std::fs::write(self.shots.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_the_demo_and_an_operator_works_every_view() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    with_console(data.path(), &[], async |page| operate(page).await).await
}

/// Runs `scenario` against the console app started with `env`, in a display of its own; on failure
/// saves the window and prints the console's log.
async fn with_console(
    data: &Path,
    env: &[(&str, &str)],
    scenario: impl AsyncFnOnce(&Page) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let app = console_bin()?;
    let display = Display::start().await?;
    let driver = Driver::start(&display, data, env).await?;
    let mut caps = serde_json::Map::new();
    caps.insert("tauri:options".into(), json!({ "application": app }));
    caps.insert("browserName".into(), json!("wry"));
    let client =
        ClientBuilder::rustls()?.capabilities(caps).connect(&format!("http://127.0.0.1:{}", driver.port)).await?;
    let shots = workspace().join("docs/screenshots");
    std::fs::create_dir_all(&shots)?;
    let page = Page { client, shots };
    let result = scenario(&page).await;
    if result.is_err() {
        let _ = page.screenshot("failure").await;
        eprintln!("console log:\n{}", std::fs::read_to_string(data.join("console.log")).unwrap_or_default());
    }
    page.client.close().await?;
    drop(driver);
    drop(display);
    result
}

/// A site with accounts: the window asks who signs in, then locks when idle. Locked, it keeps the
/// alarm count by priority live and shows no patient data; unlocking takes the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_then_locks_when_idle_with_the_alarm_count_live() -> anyhow::Result<()> {
    let (site, port) = site_on_a_known_port()?;
    site.set_in("console", "lock_after_secs = 5")?;
    publish_as_gateway(&site, port)?;
    let config = site.config_str();
    with_console(site.dir.path(), &[("VIGIL_CONFIG", &config)], async |page| {
        page.find(&by_id("signin-name")).await?;
        page.screenshot("signin").await?;
        page.type_into(&by_id("signin-name"), ADMIN.0).await?;
        page.type_into(&by_id("signin-password"), "not the password").await?;
        page.click(&by_id("signin-submit")).await?;
        let error = page.wait_text(&by_id("signin-error"), Duration::from_secs(10), |t| !t.is_empty()).await?;
        assert!(error.contains("do not match"), "{error}");
        page.type_into(&by_id("signin-password"), ADMIN.1).await?;
        page.click(&by_id("signin-submit")).await?;
        page.wait_text(&by_id("account-current"), Duration::from_secs(10), |t| t.contains(ADMIN.0)).await?;

        // No input for 5 s: locked, with the count and the banner still there.
        page.find(&by_id("lock-screen")).await?;
        let count = async || -> anyhow::Result<u64> {
            let mut sum = 0;
            for p in ["high", "medium", "low"] {
                sum += page.text_of(&by_id(&format!("locked-alarm-{p}"))).await?.trim().parse::<u64>()?;
            }
            Ok(sum)
        };
        let before = count().await?;
        // The spare monitor, registered but paired with nobody, starts sending: its technical alarm
        // appears in the locked window's count.
        let monitor = SimDevice::new("MX-00A1", DeviceKind::Monitor, None, 7);
        let now = chrono::Utc::now();
        let messages = (0..3)
            .map(|i| {
                (
                    monitor.kind.topic(&monitor.id),
                    monitor.payload(now + chrono::Duration::seconds(i)).to_string().into_bytes(),
                )
            })
            .collect();
        publish_tracked(port, messages, 10, Duration::from_secs(20), |_| {}).await?;
        eventually("the new alarm in the locked window's count", Duration::from_secs(30), async || {
            anyhow::Ok(count().await? > before)
        })
        .await?;
        page.find(&by_id("mode-banner")).await?;
        let shown = page.text_of(&by_id("lock-screen")).await?;
        assert!(!shown.contains("Demo Patient") && !shown.contains("MRN-"), "no patient data while locked: {shown}");
        page.screenshot("locked").await?;

        page.type_into(&by_id("unlock-password"), "not the password").await?;
        page.click(&by_id("unlock-submit")).await?;
        page.wait_text(&by_id("unlock-error"), Duration::from_secs(10), |t| !t.is_empty()).await?;
        page.type_into(&by_id("unlock-password"), ADMIN.1).await?;
        page.click(&by_id("unlock-submit")).await?;
        page.find(&by_id("nav-alarms")).await?;
        Ok(())
    })
    .await
}

/// A site with accounts whose MQTT endpoint listens on a port chosen here, so the test can publish
/// as a device while the console runs the pipeline.
fn site_on_a_known_port() -> anyhow::Result<(Site, u16)> {
    let site = Site::new(BrokerKind::Embedded)?;
    let port = free_port();
    let config = std::fs::read_to_string(&site.config)?;
    std::fs::write(
        &site.config,
        config.replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""), 1),
    )?;
    Ok((site, port))
}

async fn operate(page: &Page) -> anyhow::Result<()> {
    // The demo signs its built-in administrator in, and says DEMO.
    page.wait_text(&by_id("account-current"), Duration::from_secs(30), |t| t.contains("demo")).await?;
    page.find(&by_id("demo-badge")).await?;

    // Board: every component beats; the ingest store is up.
    page.view("board").await?;
    page.wait_text(&by_id("component-store"), Duration::from_secs(30), |t| t.contains("store")).await?;
    let state = page.attr(&by_id("component-store"), "data-state").await?;
    assert_eq!(state.as_deref(), Some("up"));
    // The demo pages nobody (no alert sink is configured), and the banner says so.
    let banner = page
        .wait_text(&by_id("mode-banner"), Duration::from_secs(10), |t| t.contains("No alert sink configured"))
        .await?;
    assert!(!banner.contains("Storage failing") && !banner.contains("EHR sync paused"), "{banner}");
    page.screenshot("board").await?;

    // Keyboard: from the Board button, Tab reaches the next view's button and Enter opens it.
    page.client.execute("document.querySelector(arguments[0]).focus();", vec![json!(by_id("nav-board"))]).await?;
    page.client.active_element().await?.send_keys("\u{E004}").await?;
    let focused = page.client.active_element().await?.attr("data-testid").await?;
    assert_eq!(focused.as_deref(), Some("nav-live"), "Tab moves from Board to Live streams");
    page.client.active_element().await?.send_keys("\u{E007}").await?;
    let current = page.attr(&by_id("nav-live"), "aria-current").await?;
    assert_eq!(current.as_deref(), Some("page"), "Enter opens the view");

    // Live streams: the demo oximeter's SpO2 appears, then changes.
    let spo2 = "[data-testid=\"live-row\"][data-device=\"OX-1000\"][data-mdc=\"150456\"]";
    page.find(spo2).await?;
    let values = "[data-testid=\"live-row\"] [data-testid=\"live-value\"]";
    let first = all_texts(page, values).await?;
    assert!(!first.is_empty());
    eventually("a change of the live values", Duration::from_secs(30), async || {
        anyhow::Ok(all_texts(page, values).await? != first)
    })
    .await
    .with_context(|| format!("the live values stayed {first:?}"))?;
    page.click(spo2).await?;
    eventually("the trend chart's drawing", Duration::from_secs(15), async || {
        anyhow::Ok(page.html(&by_id("chart")).await?.contains("polyline"))
    })
    .await?;
    page.screenshot("live").await?;

    // Alarms: the unpaired monitor raised a technical alarm; acknowledge it with a reason.
    page.view("alarms").await?;
    let alarm = "[data-testid=\"alarm-row\"][data-acked=\"false\"]";
    page.find(alarm).await?;
    page.click(&format!("{alarm} {}", by_id("alarm-ack"))).await?;
    page.type_into(&by_id("ack-reason"), "biomed informed, checking the monitor").await?;
    page.click(&by_id("ack-confirm")).await?;
    page.find("[data-testid=\"alarm-row\"][data-acked=\"true\"]").await?;
    page.screenshot("alarms").await?;

    // Quarantine holds the unpaired monitor's readings, with the reason.
    page.view("quarantine").await?;
    let held = "[data-testid=\"quarantine-row\"][data-device=\"MX-00A1\"]";
    page.find(held).await?;
    page.screenshot("quarantine").await?;

    // Devices: look the patient up, see who it is, then pair from an hour ago, saying why.
    page.view("devices").await?;
    page.set_value(&by_id("pair-device"), "MX-00A1", "change").await?;
    page.type_into(&by_id("pair-value"), "MRN-100001").await?;
    page.click(&by_id("pair-lookup")).await?;
    page.wait_text(&by_id("pair-verified"), Duration::from_secs(10), |t| t.contains("Demo Patient Bravo")).await?;
    let an_hour_ago = (chrono::Local::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string();
    page.set_value(&by_id("pair-from"), &an_hour_ago, "input").await?;
    page.type_into(&by_id("pair-reason"), "spare monitor sent before it was paired").await?;
    page.click(&by_id("pair-confirm")).await?;
    page.find("[data-testid=\"device-row\"][data-device=\"MX-00A1\"][data-paired=\"true\"]").await?;
    page.screenshot("devices").await?;

    // The quarantined reading is released now that the pairing covers it.
    page.view("quarantine").await?;
    page.click(&format!("{held} {}", by_id("quarantine-release"))).await?;
    page.type_into(&by_id("quarantine-reason"), "pairing fixed at the bedside").await?;
    page.click(&by_id("quarantine-confirm")).await?;
    let released = page.wait_text(&by_id("quarantine-result"), Duration::from_secs(10), |t| !t.is_empty()).await?;
    assert!(released.contains("released"), "{released}");

    // Outbox: the sandbox EHR's queue by status.
    page.view("outbox").await?;
    page.find(&by_id("outbox-tab-delivered")).await?;
    page.screenshot("outbox").await?;

    // Settings: point the EHR at an address nobody answers; the banner says so in plain words.
    page.view("settings").await?;
    page.set_value(&by_id("settings-ehr-kind"), "fhir", "change").await?;
    let nowhere = format!("http://127.0.0.1:{}/fhir", free_port());
    page.type_into(&by_id("settings-ehr-url"), &nowhere).await?;
    page.click(&by_id("settings-save")).await?;
    page.type_into(&by_id("settings-reason"), "testing the EHR outage banner").await?;
    page.click(&by_id("settings-save-confirm")).await?;
    page.find(&by_id("settings-save-result")).await?;
    page.click(&by_id("settings-test-ehr")).await?;
    let test = page.wait_text(&by_id("settings-test-result"), Duration::from_secs(20), |t| !t.is_empty()).await?;
    assert!(test.contains(&nowhere.replace("/fhir", "")), "the failed test names the address: {test}");
    page.screenshot("settings").await?;
    let banner =
        page.wait_text(&by_id("mode-banner"), Duration::from_secs(30), |t| t.contains("EHR sync paused")).await?;
    assert!(banner.contains("Clinical engineering on call"), "whom to call is shown: {banner}");
    page.view("board").await?;
    page.screenshot("board-ehr-down").await?;
    Ok(())
}

async fn all_texts(page: &Page, css: &str) -> anyhow::Result<Vec<String>> {
    let texts = page.read_all(css, "e.innerText").await?;
    Ok(texts.iter().map(|t| t.as_str().unwrap_or_default().to_string()).collect())
}
