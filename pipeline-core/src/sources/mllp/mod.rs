//! The MLLP source: device gateways sending HL7 v2 ORU^R01 (IHE PCD-01) over MLLP
//! (`[sources.mllp]`, off unless configured).
//!
//! Invariant: an acknowledgement is sent only after the message is durably stored, whatever it
//! says: AA for a message read, AE for a malformed one (kept in `rejected` with every problem),
//! AR for one Vigil does not take (kept too). A message that cannot be queued within
//! `ack_timeout` is answered AR 207 "busy, resend" and nothing of it is stored. One message at a
//! time per connection: while the pipeline is full, Vigil stops reading the socket, so TCP pushes
//! back on the gateway.
//!
//! Only peers in `allow` (addresses or CIDRs) may connect; others are closed at accept, counted on
//! the board and audited once a minute per address.

mod ack;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use ack::{Answer, BUSY, acks, answer, busy};

use crate::clock::SharedClock;
use crate::hl7::{Frame, FrameReader, frame};
use crate::ingest::{Envelope, Format, IngestHandle, IngestTally, KEPT_OF_OVERSIZED, SourceTerms};
use crate::normalise::pcd01::{self, Decoded};
use crate::sources::tls::ServerTls;
use crate::sources::{ConnectionState, StatusReporter};
use crate::store::AuditLog;

/// The source's name on the board and in the store.
pub const SOURCE: &str = "mllp";

/// Where the largest message is set, for the rejection of a larger one.
pub const MAX_MESSAGE_SETTING: &str = "[sources.mllp] max_message_bytes";

/// A write to a gateway that does not read for this long closes its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Refused connections are audited per address once per this window.
const AUDIT_WINDOW: Duration = Duration::from_secs(60);

/// Everything the listener needs.
pub struct Listener {
    /// Where messages go.
    pub ingest: IngestHandle,
    /// How messages are read (PCD-01 terms, limits).
    pub terms: SourceTerms,
    /// Peers that may connect.
    pub allow: Vec<IpNet>,
    /// TLS, when configured.
    pub tls: Option<ServerTls>,
    /// A connection with nothing to read for this long is closed.
    pub idle_timeout: Duration,
    /// How long a message read may wait for room in the pipeline before AR 207.
    pub ack_timeout: Duration,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// The writer's totals, for the reused control ids on the board.
    pub tally: IngestTally,
    /// Where refused peers are audited.
    pub audit: Arc<dyn AuditLog>,
}

impl Listener {
    fn allows(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Accepts gateways until shutdown, then waits for their connections to end (each ends at once:
/// a connection waiting on the pipeline sends nothing it has not stored).
pub async fn serve(listener: TcpListener, mllp: Listener, status: StatusReporter, shutdown: CancellationToken) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    status.set(ConnectionState::Listening { addr });
    let mllp = Arc::new(mllp);
    let places = Arc::new(Semaphore::new(mllp.max_connections));
    let tracker = tokio_util::task::TaskTracker::new();
    let control_ids = Arc::new(AtomicU64::new(0));
    let mut heartbeat = tokio::time::interval(crate::sources::HEARTBEAT);
    let mut audit_window = tokio::time::interval(AUDIT_WINDOW);
    let mut refused: HashMap<IpAddr, u32> = HashMap::new();
    let mut refused_total = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => status.tick_noting(&note(&mllp, refused_total, mllp.max_connections - places.available_permits())),
            _ = audit_window.tick() => audit_refused(&mllp, std::mem::take(&mut refused)),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if !mllp.allows(peer.ip()) {
                        *refused.entry(peer.ip()).or_default() += 1;
                        refused_total += 1;
                        continue;
                    }
                    let Ok(place) = places.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = mllp.max_connections, "MLLP connection refused: max_connections reached");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (mllp, shutdown, clock) = (mllp.clone(), shutdown.clone(), status.clock().clone());
                    let control_ids = control_ids.clone();
                    tracker.spawn(async move {
                        if let Err(e) = accept(stream, peer, &mllp, clock, control_ids, shutdown).await {
                            tracing::debug!(%peer, error = %e, "MLLP connection ended");
                        }
                        drop(place);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    audit_refused(&mllp, refused);
    tracker.close();
    tracker.wait().await;
    status.set(ConnectionState::Stopped);
}

/// What the board adds to the listener's state: open connections, refusals, reused control ids.
fn note(mllp: &Listener, refused: u64, open: usize) -> String {
    let reused = mllp.tally.lock().unwrap_or_else(|e| e.into_inner()).control_id_reused;
    let mut parts = vec![format!("{open} connection{}", if open == 1 { "" } else { "s" })];
    if refused > 0 {
        parts.push(format!("{refused} refused (not in allow)"));
    }
    if reused > 0 {
        parts.push(format!("control_id_reused {reused} (a gateway reset its message counter?)"));
    }
    parts.join("; ")
}

/// Audits, per address, the connections refused in the last window (without waiting for it).
fn audit_refused(mllp: &Arc<Listener>, refused: HashMap<IpAddr, u32>) {
    for (ip, count) in refused {
        tracing::warn!(%ip, count, "MLLP connections refused: the address is not in [sources.mllp] allow");
        let audit = mllp.audit.clone();
        tokio::spawn(async move {
            let detail = format!("{count} connection(s) from an address not in [sources.mllp] allow");
            if let Err(e) = audit.audit("mllp-listener", "mllp.peer_refused", &ip.to_string(), &detail).await {
                tracing::warn!(error = %e, "refused MLLP connections not audited");
            }
        });
    }
}

/// One connection: TLS if configured, then messages until the peer goes, idles or shutdown.
async fn accept(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mllp: &Listener,
    clock: SharedClock,
    control_ids: Arc<AtomicU64>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(tls) = &mllp.tls else {
        return connection(stream, peer, mllp, clock, control_ids, shutdown).await;
    };
    let handshake = tokio::time::timeout(mllp.idle_timeout, tls.acceptor.accept(stream)).await;
    let stream = handshake.map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    connection(stream, peer, mllp, clock, control_ids, shutdown).await
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    mllp: &Listener,
    clock: SharedClock,
    control_ids: Arc<AtomicU64>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let terms = &mllp.terms;
    let Format::Pcd01(pcd01_terms) = &terms.format else {
        return Err(std::io::Error::other("the MLLP source reads PCD-01 only"));
    };
    let mut reader = FrameReader::new(terms.max_bytes, KEPT_OF_OVERSIZED);
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    let mut next_control_id = || {
        let n = control_ids.fetch_add(1, Ordering::Relaxed);
        format!("V{}{:04}", clock.now().timestamp_millis(), n % 10_000)
    };
    loop {
        let received = loop {
            if let Some(received) = reader.take(&mut buffer) {
                break received;
            }
            let read = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                read = tokio::time::timeout(mllp.idle_timeout, stream.read_buf(&mut buffer)) => read,
            };
            match read {
                Err(_) => return Err(std::io::Error::other("idle timeout")),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        };
        let received_at = clock.now();
        let (envelope, decoded) = match received {
            Frame::Message(bytes) => {
                let decoded = pcd01::decode(&bytes, pcd01_terms);
                (Envelope::received(terms, origin(&decoded, peer), received_at, bytes), decoded)
            }
            Frame::Oversized { head, bytes, blake3 } => {
                // The head is enough for MSH, so the AE can still answer the message's control id.
                let decoded = pcd01::decode(&head, pcd01_terms);
                let origin = origin(&decoded, peer);
                (Envelope::oversized(terms, origin, received_at, head, bytes, blake3), decoded)
            }
        };
        let answer = answer(&decoded, envelope.oversized.as_ref());
        let answer = match tokio::time::timeout(mllp.ack_timeout, mllp.ingest.submit(envelope)).await {
            Err(_) => {
                tracing::warn!(%peer, "MLLP message not taken within ack_timeout: answered AR 207 busy");
                busy()
            }
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(receipt)) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    stored = receipt.stored() => if stored.is_err() { return Ok(()) },
                }
                answer
            }
        };
        for ack in acks(decoded.header.as_ref(), &answer, &mut next_control_id, clock.now()) {
            tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame(ack.as_bytes())))
                .await
                .map_err(|_| std::io::Error::other("the gateway does not read its ACKs"))??;
        }
        tokio::time::timeout(WRITE_TIMEOUT, stream.flush())
            .await
            .map_err(|_| std::io::Error::other("the gateway does not read its ACKs"))??;
    }
}

/// Where a message came from: its sender and control id (MSH-3, MSH-4, MSH-10), so a resend is
/// recognised; the peer's address when it has no readable header.
fn origin(decoded: &Decoded, peer: SocketAddr) -> String {
    match &decoded.header {
        Some(header) => header.message_key(),
        None => format!("peer {}", peer.ip()),
    }
}
