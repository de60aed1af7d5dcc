//! Vigil's own MQTT 3.1.1 ingest endpoint, the embedded default.
//!
//! Invariant: a PUBACK (QoS 1) or PUBREC (QoS 2) leaves only after the ingest writer's receipt says
//! the PUBLISH is durable. An off-the-shelf broker inside the process would acknowledge on receipt
//! and lose what a crash caught in between (see docs/decisions.md). This endpoint is ingest only:
//! devices publish; subscriptions are refused (SUBACK failure), there is nothing to route.
//!
//! Pushback: each connection has a bounded window of unacknowledged PUBLISHes and the writer's queue
//! is bounded; when either is full the connection stops reading its socket, so TCP flow control
//! slows the device down. Nothing is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::Error as MqttError;
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, QoS, SubAck, SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::gate::{Admitted, Gate, Refusal};
use crate::access::Publisher;
use crate::clock::SharedClock;
use crate::ingest::{Envelope, Format, IngestHandle, Receipt, SourceTerms};
use crate::normalise::PayloadLimits;
use crate::sources::tls::{self, ServerTls};
use crate::sources::{ConnectionState, StatusReporter};

/// Where the largest payload processed is set, for the rejection of a larger one.
pub const MAX_PACKET_SETTING: &str = "[sources.mqtt] max_packet_bytes";
/// Why a socket that had not logged in was closed: a newer one needed its place.
const EVICTED: &str = "closed before CONNECT: newer sockets needed the place (max_unauthenticated_connections)";

/// A write to a device that does not read for this long closes its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a device connection ended abnormally (logged at debug: devices come and go).
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed MQTT packet: {0:?}")]
    Protocol(MqttError),
    #[error("protocol violation: {0}")]
    Violation(&'static str),
    #[error("no packet within the keep-alive interval")]
    KeepAliveExpired,
    #[error("the ingest writer stopped")]
    IngestClosed,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("CONNECT refused: {0:?}")]
    Refused(Refusal),
    #[error("CONNECT refused: keep-alive {0} s is not within 1..={1} s ([sources.mqtt] max_keepalive_secs)")]
    KeepAliveRefused(u16, u16),
}

/// Everything a connection needs besides its socket.
pub struct Endpoint {
    /// Where payloads go.
    pub ingest: IngestHandle,
    /// Its bounds.
    pub limits: Limits,
    /// Who gets in.
    pub gate: Arc<Gate>,
    /// TLS, when configured.
    pub tls: Option<ServerTls>,
}

/// Accepts device connections until `shutdown`, then waits for open connections to finish their
/// acknowledgements and close. Connections past the caps (in all, and per address) are closed at
/// accept, before they cost more than a moment.
pub async fn serve(listener: TcpListener, endpoint: Endpoint, status: StatusReporter, shutdown: CancellationToken) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    status.set(ConnectionState::Listening { addr });
    let endpoint = Arc::new(endpoint);
    let occupancy = Arc::new(Occupancy::default());
    let tracker = tokio_util::task::TaskTracker::new();
    let mut heartbeat = tokio::time::interval(crate::sources::HEARTBEAT);
    let mut refused_at_cap = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => {
                if refused_at_cap > 0 {
                    tracing::warn!(refused = refused_at_cap, open = occupancy.open(), "connections refused at the cap");
                    refused_at_cap = 0;
                }
                status.tick();
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(mut slot) = occupancy.take(peer.ip(), &endpoint.limits) else {
                        refused_at_cap += 1;
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let endpoint = endpoint.clone();
                    let shutdown = shutdown.clone();
                    let clock = status.clock().clone();
                    tracker.spawn(async move {
                        if let Err(e) = accept(stream, peer, &mut slot, &endpoint, clock, shutdown).await {
                            tracing::debug!(%peer, error = %e, "device connection ended");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    // The port is free at once, even while a connection lingers: a Settings restart binds it again.
    drop(listener);
    tracker.close();
    tracker.wait().await;
    status.set(ConnectionState::Stopped);
}

/// Open connections, in all and per address, and those not admitted yet (no CONNECT checked),
/// oldest first.
#[derive(Default)]
struct Occupancy {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    unadmitted: std::collections::VecDeque<(u64, CancellationToken)>,
    next_id: u64,
}

/// One connection's place, given back when it closes.
struct Slot {
    occupancy: Arc<Occupancy>,
    ip: IpAddr,
    id: u64,
    /// Cancelled when a newer socket needs its place before it passed CONNECT.
    evicted: CancellationToken,
    admitted: bool,
}

impl Occupancy {
    /// A place for a new socket, if the caps in all and per address leave one. Sockets that have
    /// not passed CONNECT have a cap of their own: past it, the oldest of them is closed to make
    /// room, so a flood of silent sockets cannot keep a device from logging in (a device sends its
    /// CONNECT within moments of connecting; a silent socket never does).
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = counts.by_address.values().sum();
        let here = counts.by_address.get(&ip).copied().unwrap_or(0);
        if total >= limits.max_connections || here >= limits.max_connections_per_address {
            return None;
        }
        if counts.unadmitted.len() >= limits.max_unauthenticated
            && let Some((_, oldest)) = counts.unadmitted.pop_front()
        {
            oldest.cancel();
        }
        *counts.by_address.entry(ip).or_default() += 1;
        counts.next_id += 1;
        let (id, evicted) = (counts.next_id, CancellationToken::new());
        counts.unadmitted.push_back((id, evicted.clone()));
        Some(Slot { occupancy: self.clone(), ip, id, evicted, admitted: false })
    }

    fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).by_address.values().sum()
    }
}

impl Slot {
    /// The connection passed CONNECT: it no longer counts against the unauthenticated cap.
    fn admit(&mut self) {
        if !self.admitted {
            self.admitted = true;
            self.occupancy.counts.lock().unwrap_or_else(|e| e.into_inner()).unadmitted.retain(|(id, _)| *id != self.id);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.occupancy.counts.lock().unwrap_or_else(|e| e.into_inner());
        if !self.admitted {
            counts.unadmitted.retain(|(id, _)| *id != self.id);
        }
        if let Some(n) = counts.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.ip);
            }
        }
    }
}

/// What one connection may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest packet read at all, in bytes; a larger one closes the connection.
    pub max_packet_bytes: usize,
    /// Largest payload processed; a larger one is kept truncated and rejected (`too_large`).
    pub payload_limit: usize,
    /// What one payload may carry.
    pub payload: PayloadLimits,
    /// PUBLISHes it may have unacknowledged at once; then it is not read until acknowledgements free
    /// the window.
    pub unacked_window: usize,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// Connections open at once that have not passed CONNECT yet.
    pub max_unauthenticated: usize,
    /// The longest keep-alive a CONNECT may ask for; 0 (none) is refused too.
    pub max_keepalive_secs: u16,
    /// How long a new socket has for its TLS handshake and its CONNECT.
    pub connect_timeout: Duration,
}

/// What the write half must send, in order.
enum Outgoing {
    /// Acknowledge once the receipt resolves.
    AfterStored { receipt: Receipt, ack: Packet },
    /// Send now (PINGRESP, SUBACK, PUBCOMP...).
    Now(Packet),
}

/// Where a connection's payloads go, the clock that stamps their arrival, and who sent them.
struct Inlet<'a> {
    endpoint: &'a Endpoint,
    clock: SharedClock,
    publisher: Publisher,
}

/// The TLS handshake when configured, then the MQTT session.
async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    slot: &mut Slot,
    endpoint: &Endpoint,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), ConnectionError> {
    let Some(tls) = &endpoint.tls else {
        return connection(stream, peer, None, slot, endpoint, clock, shutdown).await;
    };
    let handshake = tokio::time::timeout(endpoint.limits.connect_timeout, tls.acceptor.accept(stream));
    let stream = match tokio::select! {
        done = handshake => done,
        _ = slot.evicted.cancelled() => return Err(ConnectionError::Violation(EVICTED)),
    } {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ConnectionError::Tls(e.to_string())),
        Err(_) => return Err(ConnectionError::Violation("no TLS handshake within the connect timeout")),
    };
    let name = tls::peer_name(stream.get_ref().1);
    connection(stream, peer, name, slot, endpoint, clock, shutdown).await
}

async fn connection<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    certificate_name: Option<String>,
    slot: &mut Slot,
    endpoint: &Endpoint,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Result<(), ConnectionError> {
    let limits = endpoint.limits;
    let max_packet = limits.max_packet_bytes;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let first = async {
        // An MQTT 5 (or 3.1) CONNECT is answered in 3.1.1 terms rather than misparsed.
        if announced_level(&mut rd, &mut buf).await? != Some(4) {
            return Ok(None);
        }
        read_packet(&mut rd, &mut buf, max_packet).await
    };
    let first = tokio::time::timeout(limits.connect_timeout, first);
    let connect = match tokio::select! {
        done = first => done,
        _ = slot.evicted.cancelled() => return Err(ConnectionError::Violation(EVICTED)),
    } {
        Ok(Ok(Some(Packet::Connect(c)))) => c,
        Ok(Ok(None)) => {
            refuse(&mut wr, ConnectReturnCode::RefusedProtocolVersion, max_packet).await;
            return Err(ConnectionError::Violation("CONNECT of a protocol other than MQTT 3.1.1"));
        }
        Ok(Ok(Some(_))) => return Err(ConnectionError::Violation("first packet was not CONNECT")),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ConnectionError::Violation("no CONNECT within the connect timeout")),
    };
    if connect.keep_alive == 0 || connect.keep_alive > limits.max_keepalive_secs {
        refuse(&mut wr, ConnectReturnCode::ServiceUnavailable, max_packet).await;
        return Err(ConnectionError::KeepAliveRefused(connect.keep_alive, limits.max_keepalive_secs));
    }
    let login = connect.login.as_ref().map(|l| (l.username.as_str(), l.password.as_str()));
    let admitted = match endpoint.gate.admit(peer.ip(), login, certificate_name.as_deref()) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            refuse(&mut wr, refusal.return_code(), max_packet).await;
            return Err(ConnectionError::Refused(refusal));
        }
    };
    slot.admit();
    // A persistent-session client re-sends its unacknowledged PUBLISHes; the inbox recognises them.
    write_packet(
        &mut wr,
        &Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, !connect.clean_session)),
        max_packet,
    )
    .await?;
    tracing::debug!(%peer, client_id = ?connect.client_id, "device connected");
    let keep_alive = Duration::from_millis(u64::from(connect.keep_alive) * 1500);
    let inlet = Inlet { endpoint, clock, publisher: admitted.publisher.clone() };

    let (out_tx, out_rx) = mpsc::channel(limits.unacked_window.max(1));
    let mut writer = tokio::spawn(write_half(wr, out_rx, max_packet));
    let session = Session { admitted, changes: endpoint.gate.changes() };
    let read_result = read_half(&mut rd, &mut buf, &inlet, session, &out_tx, keep_alive, &shutdown).await;
    drop(out_tx);
    // Let the write half acknowledge what is already stored before the socket closes; at shutdown
    // it has a second for that, whatever the client does.
    let write_result = tokio::select! {
        done = &mut writer => done.unwrap_or(Ok(())),
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {
            writer.abort();
            Ok(())
        }
    };
    read_result.and(write_result)
}

/// A live session's credential, re-checked whenever the credentials change.
struct Session {
    admitted: Admitted,
    changes: watch::Receiver<i64>,
}

/// Answers a CONNECT with a refusal (best effort: the connection closes either way).
async fn refuse<W: AsyncWrite + Unpin>(wr: &mut W, code: ConnectReturnCode, max_packet: usize) {
    let _ = write_packet(wr, &Packet::ConnAck(ConnAck::new(code, false)), max_packet).await;
    let _ = bounded(wr.flush()).await;
}

/// The protocol level the first packet announces, once enough of it is in: `Some(4)` for MQTT
/// 3.1.1, `None` when it is not an MQTT CONNECT at all (the parser then says why).
async fn announced_level<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> Result<Option<u8>, ConnectionError> {
    loop {
        // Fixed header (type, 1-4 length bytes), then 00 04 "MQTT" and the level.
        if buf.first().is_some_and(|b| b >> 4 != 1) {
            return Ok(Some(4));
        }
        if let Some(len_bytes) = buf.iter().skip(1).take(4).position(|b| b & 0x80 == 0) {
            let at = 2 + len_bytes;
            match buf.get(at..at + 7) {
                Some(head) if &head[..6] == b"\x00\x04MQTT" => return Ok(Some(head[6])),
                Some(_) => return Ok(Some(4)),
                None => {}
            }
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(Some(4));
        }
    }
}

/// What the protocol does with one packet after CONNECT, apart from any I/O (so it can be fuzzed
/// through the codec: `crate::fuzz::mqtt_endpoint`).
#[derive(Debug)]
pub enum Action {
    /// Store the payload; send `ack` (PUBACK or PUBREC) once it is durable (none for QoS 0).
    Store {
        /// The PUBLISH topic.
        topic: String,
        /// Its payload.
        payload: bytes::Bytes,
        /// The acknowledgement owed once stored.
        ack: Option<Packet>,
    },
    /// Answer at once.
    Reply(Packet),
    /// Nothing to do.
    Ignore,
    /// The client ended the session (DISCONNECT, or end of stream).
    End,
    /// A protocol violation: close the connection.
    Close(&'static str),
}

/// The endpoint's answer to a packet (`None`: the stream ended).
pub fn respond(packet: Option<Packet>) -> Action {
    match packet {
        None | Some(Packet::Disconnect) => Action::End,
        Some(Packet::Publish(publish)) => {
            if publish.topic.contains(['+', '#']) || publish.topic.is_empty() {
                return Action::Close("PUBLISH topic is empty or has a wildcard");
            }
            let ack = match publish.qos {
                QoS::AtMostOnce => None,
                QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
                QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(publish.pkid))),
            };
            Action::Store { topic: publish.topic, payload: publish.payload, ack }
        }
        Some(Packet::PubRel(rel)) => Action::Reply(Packet::PubComp(PubComp::new(rel.pkid))),
        Some(Packet::PingReq) => Action::Reply(Packet::PingResp),
        // Ingest only: every subscription is refused.
        Some(Packet::Subscribe(sub)) => Action::Reply(Packet::SubAck(SubAck::new(
            sub.pkid,
            sub.filters.iter().map(|_| SubscribeReasonCode::Failure).collect(),
        ))),
        Some(Packet::Unsubscribe(unsub)) => Action::Reply(Packet::UnsubAck(UnsubAck::new(unsub.pkid))),
        Some(Packet::PubAck(_) | Packet::PubComp(_) | Packet::PubRec(_)) => Action::Ignore,
        Some(_) => Action::Close("unexpected packet from a client"),
    }
}

async fn read_half<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    inlet: &Inlet<'_>,
    mut session: Session,
    out: &mpsc::Sender<Outgoing>,
    keep_alive: Duration,
    shutdown: &CancellationToken,
) -> Result<(), ConnectionError> {
    let limits = inlet.endpoint.limits;
    let terms = SourceTerms {
        source: "mqtt",
        publisher: inlet.publisher.clone(),
        max_bytes: limits.payload_limit,
        max_bytes_setting: MAX_PACKET_SETTING,
        limits: limits.payload,
        format: Format::Profiles,
    };
    loop {
        let packet = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            // A revoked or rotated credential ends its sessions.
            Ok(()) = session.changes.changed() => {
                if inlet.endpoint.gate.still_admits(&session.admitted) {
                    continue;
                }
                return Err(ConnectionError::Violation("its credential was revoked or rotated"));
            }
            read = tokio::time::timeout(keep_alive, read_packet(rd, buf, limits.max_packet_bytes)) => match read {
                Err(_) => return Err(ConnectionError::KeepAliveExpired),
                Ok(r) => r?,
            },
        };
        let outgoing = match respond(packet) {
            Action::End => return Ok(()),
            Action::Close(why) => return Err(ConnectionError::Violation(why)),
            Action::Ignore => continue,
            Action::Reply(packet) => Outgoing::Now(packet),
            Action::Store { topic, payload, ack } => {
                let envelope = Envelope::received(&terms, topic, inlet.clock.now(), payload);
                let receipt =
                    inlet.endpoint.ingest.submit(envelope).await.map_err(|_| ConnectionError::IngestClosed)?;
                // QoS 0 promises nothing and gets no acknowledgement; it is stored all the same.
                let Some(ack) = ack else { continue };
                Outgoing::AfterStored { receipt, ack }
            }
        };
        // A client that stops reading fills the write half's queue; shutdown still ends the wait.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            sent = out.send(outgoing) => if sent.is_err() {
                return Err(ConnectionError::IngestClosed);
            },
        }
    }
}

async fn write_half<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Outgoing>,
    max_packet: usize,
) -> Result<(), ConnectionError> {
    // Buffered: a batch commit releases many PUBACKs, which then leave in one write.
    let mut wr = BufWriter::new(wr);
    loop {
        if rx.is_empty() {
            bounded(wr.flush()).await?;
        }
        let Some(next) = rx.recv().await else { break };
        let packet = match next {
            Outgoing::Now(p) => p,
            Outgoing::AfterStored { mut receipt, ack } => {
                let stored = match receipt.try_stored() {
                    Some(result) => result,
                    None => {
                        bounded(wr.flush()).await?;
                        receipt.stored().await
                    }
                };
                // Not stored means not acknowledged: close, and the device sends it again.
                stored.map_err(|_| ConnectionError::IngestClosed)?;
                ack
            }
        };
        let mut out = BytesMut::with_capacity(packet.size() + 8);
        packet.write(&mut out, max_packet).map_err(ConnectionError::Protocol)?;
        bounded(wr.write_all(&out)).await?;
    }
    bounded(wr.flush()).await?;
    let _ = bounded(wr.shutdown()).await;
    Ok(())
}

/// A socket write that a client which stops reading cannot hold up for more than [`WRITE_TIMEOUT`].
async fn bounded(write: impl Future<Output = std::io::Result<()>>) -> Result<(), ConnectionError> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectionError::Violation("the client stopped reading its acknowledgements")),
    }
}

/// Reads one packet; `None` on a clean end of stream.
async fn read_packet<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Packet>, ConnectionError> {
    loop {
        match Packet::read(buf, max) {
            Ok(p) => return Ok(Some(p)),
            Err(MqttError::InsufficientBytes(n)) => buf.reserve(n),
            Err(e) => return Err(ConnectionError::Protocol(e)),
        }
        if rd.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ConnectionError::Violation("connection closed mid-packet"))
            };
        }
    }
}

async fn write_packet<W: AsyncWrite + Unpin>(wr: &mut W, packet: &Packet, max: usize) -> Result<(), ConnectionError> {
    let mut out = BytesMut::with_capacity(packet.size() + 8);
    packet.write(&mut out, max).map_err(ConnectionError::Protocol)?;
    bounded(wr.write_all(&out)).await
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn limits(total: usize, per_address: usize, unauthenticated: usize) -> Limits {
        Limits {
            max_packet_bytes: 1024,
            payload_limit: 1024,
            payload: PayloadLimits::default(),
            unacked_window: 1,
            max_connections: total,
            max_connections_per_address: per_address,
            max_unauthenticated: unauthenticated,
            max_keepalive_secs: 60,
            connect_timeout: Duration::from_secs(1),
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    #[test]
    fn the_caps_hold_and_the_oldest_silent_socket_makes_room_for_a_new_one() {
        let occupancy = Arc::new(Occupancy::default());
        let limits = limits(4, 2, 2);
        let mut first = occupancy.take(ip(1), &limits).unwrap();
        first.admit();
        let second = occupancy.take(ip(1), &limits).unwrap();
        assert!(occupancy.take(ip(1), &limits).is_none(), "two per address");
        let third = occupancy.take(ip(2), &limits).unwrap();
        // Two not yet admitted (second, third): the next evicts the older, second.
        let fourth = occupancy.take(ip(3), &limits).unwrap();
        assert!(second.evicted.is_cancelled() && !third.evicted.is_cancelled());
        assert!(occupancy.take(ip(4), &limits).is_none(), "four in all, evicted or not, until they close");
        drop(second);
        assert_eq!(occupancy.open(), 3);
        assert!(!first.evicted.is_cancelled(), "an admitted session is never evicted");
        drop((first, third, fourth));
        assert_eq!(occupancy.open(), 0);
        assert!(occupancy.counts.lock().unwrap().unadmitted.is_empty());
    }
}
