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

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::Error as MqttError;
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, QoS, SubAck, SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::ingest::{Envelope, IngestHandle, Receipt};
use crate::sources::{ConnectionState, StatusReporter};

/// A write to a device that does not read for this long closes its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send CONNECT this soon after opening the socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Accepts device connections until `shutdown`, then waits for open connections to finish their
/// acknowledgements and close.
pub async fn serve(
    listener: TcpListener,
    ingest: IngestHandle,
    limits: Limits,
    status: StatusReporter,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    status.set(ConnectionState::Listening { addr });
    let tracker = tokio_util::task::TaskTracker::new();
    let mut heartbeat = tokio::time::interval(crate::sources::HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = heartbeat.tick() => status.tick(),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let inlet =
                        Inlet { ingest: ingest.clone(), clock: status.clock().clone(), payload_limit: limits.payload_limit };
                    let shutdown = shutdown.clone();
                    tracker.spawn(async move {
                        if let Err(e) = connection(stream, peer, inlet, limits, shutdown).await {
                            tracing::debug!(%peer, error = %e, "device connection ended");
                        }
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

/// What one connection may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest packet read at all, in bytes; a larger one closes the connection.
    pub max_packet_bytes: usize,
    /// Largest payload processed; a larger one is kept truncated and rejected (`too_large`).
    pub payload_limit: usize,
    /// PUBLISHes it may have unacknowledged at once; then it is not read until acknowledgements free
    /// the window.
    pub unacked_window: usize,
}

/// What the write half must send, in order.
enum Outgoing {
    /// Acknowledge once the receipt resolves.
    AfterStored { receipt: Receipt, ack: Packet },
    /// Send now (PINGRESP, SUBACK, PUBCOMP...).
    Now(Packet),
}

/// Where a connection's payloads go, and the clock that stamps their arrival.
struct Inlet {
    ingest: IngestHandle,
    clock: SharedClock,
    payload_limit: usize,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    inlet: Inlet,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), ConnectionError> {
    let max_packet = limits.max_packet_bytes;
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut rd, &mut buf, max_packet)).await {
        Ok(Ok(Some(Packet::Connect(c)))) => c,
        Ok(Ok(_)) => return Err(ConnectionError::Violation("first packet was not CONNECT")),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(ConnectionError::KeepAliveExpired),
    };
    // A persistent-session client re-sends its unacknowledged PUBLISHes; the inbox recognises them.
    write_packet(
        &mut wr,
        &Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, !connect.clean_session)),
        max_packet,
    )
    .await?;
    tracing::debug!(%peer, client_id = %connect.client_id, "device connected");
    let keep_alive = match connect.keep_alive {
        0 => Duration::from_secs(24 * 3600),
        s => Duration::from_millis(u64::from(s) * 1500),
    };

    let (out_tx, out_rx) = mpsc::channel(limits.unacked_window.max(1));
    let mut writer = tokio::spawn(write_half(wr, out_rx, max_packet));
    let read_result = read_half(&mut rd, &mut buf, &inlet, &out_tx, max_packet, keep_alive, &shutdown).await;
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

async fn read_half(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    inlet: &Inlet,
    out: &mpsc::Sender<Outgoing>,
    max_packet: usize,
    keep_alive: Duration,
    shutdown: &CancellationToken,
) -> Result<(), ConnectionError> {
    loop {
        let packet = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            read = tokio::time::timeout(keep_alive, read_packet(rd, buf, max_packet)) => match read {
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
                let envelope = Envelope::received("mqtt", topic, inlet.clock.now(), payload, inlet.payload_limit);
                let receipt = inlet.ingest.submit(envelope).await.map_err(|_| ConnectionError::IngestClosed)?;
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

async fn write_half(
    wr: OwnedWriteHalf,
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
async fn read_packet(
    rd: &mut OwnedReadHalf,
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

async fn write_packet(wr: &mut OwnedWriteHalf, packet: &Packet, max: usize) -> Result<(), ConnectionError> {
    let mut out = BytesMut::with_capacity(packet.size() + 8);
    packet.write(&mut out, max).map_err(ConnectionError::Protocol)?;
    bounded(wr.write_all(&out)).await
}
