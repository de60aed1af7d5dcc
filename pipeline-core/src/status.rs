//! The loopback status endpoint: `GET /status` (the board as JSON, for `vigil status` and the
//! console) and `GET /metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use crate::health::modes::{DegradationMode, active};
use crate::health::{ComponentHealth, Drills, HealthRegistry, HealthState};
use crate::ingest::{IngestHandle, IngestTally};
use crate::rules::clock::{DeviceClock, DeviceClocksBoard};
use crate::store::{BatchTally, Store};

/// What the endpoint reads from.
pub struct StatusSources {
    /// The heartbeats.
    pub health: HealthRegistry,
    /// The store (outbox depths).
    pub store: Arc<dyn Store>,
    /// The ingest queue.
    pub ingest: IngestHandle,
    /// What ingest did since start.
    pub tally: IngestTally,
    /// Failure drills, when `[status] drills` allows them.
    pub drills: Option<Drills>,
    /// The last sample the rates were measured from.
    pub rates: std::sync::Mutex<RateMeter>,
    /// Latency histograms.
    pub latencies: Arc<crate::health::latency::Latencies>,
    /// Each live device's clock offset, as the rules last estimated it.
    pub device_clocks: DeviceClocksBoard,
}

/// Payloads and readings per second, measured between two looks at least a second apart.
#[derive(Debug, Default)]
pub struct RateMeter {
    last: Option<(std::time::Instant, u64, u64)>,
    rates: Rates,
}

/// Ingest rates.
#[derive(Debug, Clone, Copy, Default, Serialize, TS)]
#[ts(export)]
pub struct Rates {
    /// Payloads written to the inbox per second.
    pub payloads_per_sec: f64,
    /// Readings stored per second.
    pub readings_per_sec: f64,
}

impl RateMeter {
    fn sample(&mut self, t: &BatchTally) -> Rates {
        let now = std::time::Instant::now();
        match self.last {
            Some((at, payloads, stored)) if now.duration_since(at).as_secs_f64() >= 1.0 => {
                let secs = now.duration_since(at).as_secs_f64();
                self.rates = Rates {
                    payloads_per_sec: (t.payloads - payloads) as f64 / secs,
                    readings_per_sec: (t.stored - stored) as f64 / secs,
                };
                self.last = Some((now, t.payloads, t.stored));
            }
            Some(_) => {}
            None => self.last = Some((now, t.payloads, t.stored)),
        }
        self.rates
    }
}

/// The board, as `GET /status` returns it.
#[derive(Debug, Serialize, TS)]
#[ts(export)]
pub struct Status {
    /// When it was read.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Ingest rates.
    pub rates: Rates,
    /// Every component.
    pub components: Vec<ComponentHealth>,
    /// Active degradation modes, most severe first, with their clinician text.
    pub modes: Vec<&'static DegradationMode>,
    /// Payloads waiting for the ingest writer.
    pub ingest_queue: usize,
    /// Payloads taken in and evaluated, waiting for the store: acknowledgements withheld.
    pub ingest_unstored: usize,
    /// Outbox events per status.
    pub outbox: Vec<(String, i64)>,
    /// Ingest totals since start.
    pub ingest: BatchTally,
    /// Each live device's clock offset, largest first.
    pub device_clocks: Vec<DeviceClock>,
    /// Active alarms not yet acknowledged, by priority: the console keeps them in sight, locked too.
    pub alarms: AlarmCounts,
}

/// Active alarms: the unacknowledged by priority, how many of those are technical, and the
/// acknowledged apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct AlarmCounts {
    /// Unacknowledged, high priority.
    pub high: u32,
    /// Unacknowledged, medium priority.
    pub medium: u32,
    /// Unacknowledged, low priority.
    pub low: u32,
    /// Of the unacknowledged, how many are technical (about the monitoring, not the patient).
    pub technical: u32,
    /// Active and acknowledged: someone owns them.
    pub acknowledged: u32,
}

impl AlarmCounts {
    fn of(alarms: &[crate::store::AlarmEntry]) -> AlarmCounts {
        use crate::model::alarm::{AlarmKind, Priority};
        let mut counts = AlarmCounts::default();
        for a in alarms.iter().filter(|a| a.cleared_at.is_none()) {
            if a.acked_at.is_some() {
                counts.acknowledged += 1;
                continue;
            }
            match a.priority {
                Priority::High => counts.high += 1,
                Priority::Medium => counts.medium += 1,
                Priority::Low => counts.low += 1,
            }
            if a.kind == AlarmKind::Technical {
                counts.technical += 1;
            }
        }
        counts
    }
}

/// The board now: components, modes, queues, totals and rates.
pub async fn status(sources: &StatusSources) -> Status {
    let at = sources.health.clock().now();
    let components = sources.health.board();
    let ingest = *sources.tally.lock().unwrap_or_else(|e| e.into_inner());
    let rates = sources.rates.lock().unwrap_or_else(|e| e.into_inner()).sample(&ingest);
    // The board answers even while the store does not.
    let outbox = tokio::time::timeout(std::time::Duration::from_millis(500), sources.store.outbox_counts())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let alarms = tokio::time::timeout(std::time::Duration::from_millis(500), sources.store.alarms(true, 10_000))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|a| AlarmCounts::of(&a))
        .unwrap_or_default();
    Status {
        alarms,
        at,
        rates,
        modes: active(&components),
        components,
        ingest_queue: sources.ingest.queue_depth(),
        ingest_unstored: sources.ingest.unstored(),
        outbox,
        ingest,
        device_clocks: sources.device_clocks.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    }
}

async fn status_json(State(sources): State<Arc<StatusSources>>) -> Json<Status> {
    Json(status(&sources).await)
}

async fn metrics(State(sources): State<Arc<StatusSources>>) -> impl IntoResponse {
    let s = status(&sources).await;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let t = &s.ingest;
    metric(
        "vigil_ingest_queue_depth",
        "gauge",
        "Payloads waiting for the ingest writer.",
        vec![(String::new(), s.ingest_queue as f64)],
    );
    metric(
        "vigil_ingest_unstored",
        "gauge",
        "Payloads evaluated by the rules but not yet stored (acknowledgements withheld).",
        vec![(String::new(), s.ingest_unstored as f64)],
    );
    for (name, help, value) in [
        ("vigil_payloads_total", "Payloads written to the inbox.", t.payloads),
        ("vigil_readings_stored_total", "Readings stored as telemetry.", t.stored),
        (
            "vigil_duplicates_suppressed_total",
            "Repeated payloads and readings suppressed.",
            t.duplicate_payloads + t.duplicate_readings,
        ),
        ("vigil_rejected_total", "Payloads rejected by the device profiles.", t.rejected),
        ("vigil_quarantined_total", "Readings quarantined.", t.quarantined),
        ("vigil_held_total", "Readings held for want of consent.", t.held),
    ] {
        metric(name, "counter", help, vec![(String::new(), value as f64)]);
    }
    metric(
        "vigil_outbox_events",
        "gauge",
        "Clinical events in the outbox, by status.",
        s.outbox.iter().map(|(status, n)| (format!("{{status=\"{status}\"}}"), *n as f64)).collect(),
    );
    metric(
        "vigil_component_up",
        "gauge",
        "1 when the component is up, 0 when degraded, down or stale.",
        s.components
            .iter()
            .map(|c| (format!("{{component=\"{}\"}}", c.name), f64::from(u8::from(c.state == HealthState::Up))))
            .collect(),
    );
    metric(
        "vigil_degradation_mode_active",
        "gauge",
        "1 while the degradation mode is active.",
        crate::health::modes::MODES
            .iter()
            .map(|m| (format!("{{mode=\"{}\"}}", m.id), f64::from(u8::from(s.modes.iter().any(|a| a.id == m.id)))))
            .collect(),
    );
    sources.latencies.ingest.render(
        "vigil_ingest_latency_seconds",
        "From a payload's arrival to its durable commit (its acknowledgement waits for this).",
        &mut out,
    );
    sources.latencies.ehr.render("vigil_ehr_delivery_seconds", "One delivery round trip to the EHR.", &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// `POST /drill/{component}/stop`: stops the alert circuit or the supervisor as a crash would, or
/// blocks the rules task as if it were stuck.
async fn drill(State(sources): State<Arc<StatusSources>>, Path(component): Path<String>) -> (StatusCode, String) {
    let Some(drills) = &sources.drills else {
        return (StatusCode::FORBIDDEN, "drills are off: set [status] drills = true to allow them\n".into());
    };
    let token = match component.as_str() {
        "alerts" => &drills.alerts,
        "supervisor" => &drills.supervisor,
        "rules" => &drills.rules,
        other => return (StatusCode::NOT_FOUND, format!("no drill for {other:?}: use alerts, supervisor or rules\n")),
    };
    tracing::warn!(component, "failure drill started");
    token.cancel();
    (StatusCode::OK, format!("{component} stopped for the drill; restart Vigil to end it\n"))
}

/// `POST /drill/store/space`: lifts the store's test-only page ceiling, as freeing disk space would.
async fn space(State(sources): State<Arc<StatusSources>>) -> (StatusCode, String) {
    let Some(drills) = &sources.drills else {
        return (StatusCode::FORBIDDEN, "drills are off: set [status] drills = true to allow them\n".into());
    };
    if drills.page_limit.get() == 0 {
        return (StatusCode::CONFLICT, "no page ceiling is set ([store] test_max_pages)\n".into());
    }
    drills.page_limit.lift();
    tracing::warn!("drill: the store's page ceiling is lifted");
    (StatusCode::OK, "the store has room again\n".into())
}

/// Who may ask what of the endpoint. On loopback, a request must name a loopback Host (DNS
/// rebinding cannot read the board) and may carry no foreign Origin (no web page can POST a drill);
/// drills need the bearer token. Off loopback every request needs the token (and the endpoint serves
/// TLS only: `check-config` refuses it otherwise).
#[derive(Debug, Clone)]
pub struct Guard {
    /// The bearer token, from `[status] token_file`.
    pub token: String,
    /// Whether the endpoint listens on loopback only.
    pub loopback: bool,
    /// Its port, for the Host and Origin checks.
    pub port: u16,
}

impl Guard {
    /// Why a request is refused, if it is.
    fn refuses(&self, headers: &axum::http::HeaderMap, path: &str) -> Option<(StatusCode, &'static str)> {
        let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let local = |authority: &str| {
            authority.rsplit_once(':').is_some_and(|(host, port)| {
                matches!(host, "127.0.0.1" | "localhost" | "[::1]") && port.parse() == Ok(self.port)
            })
        };
        if self.loopback && header(header::HOST).is_some_and(|host| !local(host)) {
            return Some((StatusCode::FORBIDDEN, "refused: the Host header does not name this loopback endpoint\n"));
        }
        if let Some(origin) = header(header::ORIGIN)
            && !origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).is_some_and(local)
        {
            return Some((StatusCode::FORBIDDEN, "refused: requests from web pages are not served\n"));
        }
        if !self.loopback || path.starts_with("/drill") {
            let presented = header(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
            if blake3::hash(presented.as_bytes()) != blake3::hash(self.token.as_bytes()) {
                return Some((
                    StatusCode::UNAUTHORIZED,
                    "refused: give the bearer token of [status] token_file (Authorization: Bearer ...)\n",
                ));
            }
        }
        None
    }
}

async fn guarded(
    State(guard): State<Arc<Guard>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match guard.refuses(request.headers(), request.uri().path()) {
        Some(refusal) => refusal.into_response(),
        None => next.run(request).await,
    }
}

/// Makes the status token file (0600) when it does not exist yet; returns the token.
pub fn token(file: &std::path::Path) -> std::io::Result<String> {
    if let Ok(token) = std::fs::read_to_string(file) {
        return Ok(token.trim().to_string());
    }
    let token = crate::access::new_secret();
    crate::secrets::write_private(file, &token)?;
    Ok(token)
}

/// Serves until `shutdown`, over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    sources: Arc<StatusSources>,
    guard: Guard,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/drill/{component}/stop", post(drill))
        .route("/drill/store/space", post(space))
        .with_state(sources)
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guarded));
    let served = match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await,
        Some(acceptor) => {
            let listener = TlsListener { listener, acceptor };
            axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
        }
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "status endpoint failed");
    }
}

/// The status endpoint's sockets, each through a TLS handshake (at most 5 s; a failed one is
/// dropped and the next socket taken).
struct TlsListener {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = axum::serve::Listener::accept(&mut self.listener).await;
            let handshake = self.acceptor.accept(stream);
            match tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, peer),
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "status endpoint: TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "status endpoint: no TLS handshake within 5 s"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::component_alarm;
    use crate::model::alarm::{AlarmKind, Priority};
    use crate::store::AlarmStore;
    use crate::store::fake::FakeStore;

    #[tokio::test]
    async fn the_alarm_counts_keep_the_technical_and_the_acknowledged_apart() {
        let store = FakeStore::new(crate::clock::system());
        let now = chrono::Utc::now();
        let down = store.raise_alarm(&component_alarm("mqtt-down", "mqtt", "down", Priority::High, now)).await;
        store.raise_alarm(&component_alarm("ehr-down", "ehr", "down", Priority::Low, now)).await.unwrap();
        let mut spo2 = component_alarm("spo2-low", "OX-1", "SpO2 low", Priority::Medium, now);
        spo2.kind = AlarmKind::Physiological;
        store.raise_alarm(&spo2).await.unwrap();
        store.ack_alarm(down.unwrap().unwrap(), "ana", "seen").await.unwrap();
        let counts = AlarmCounts::of(&store.alarms(true, 100).await.unwrap());
        assert_eq!(counts, AlarmCounts { high: 0, medium: 1, low: 1, technical: 1, acknowledged: 1 });
    }
}
