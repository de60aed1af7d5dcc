//! The MLLP client: one TCP connection, reused while it behaves, carrying one framed message and its
//! one framed ACK at a time.
//!
//! Any error drops the connection. A reply that arrives after its timeout then lands on a closed
//! socket instead of being read as the ACK of the next message; the MSA-2 check catches any stale
//! reply that would slip through anyway.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::ack::{Ack, AckError, parse_ack};
use crate::hl7::{Frame, FrameReader, frame};

/// An ACK is a few hundred bytes; a receiver streaming more without ending the frame is broken, and
/// the limit keeps it from filling memory before the reply timeout fires.
const MAX_REPLY: usize = 1 << 20;

/// Why a message was not acknowledged.
#[derive(Debug, Error)]
pub enum MllpError {
    /// The outgoing text has no MSH-10 to match the ACK against.
    #[error("the message has no MSH-10 control id")]
    NoControlId,
    /// The receiver could not be reached (refused, unreachable, name not resolved).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The receiver's address.
        address: String,
        /// The cause.
        source: io::Error,
    },
    /// The connection was not established within the connect timeout.
    #[error("connecting to {address} took longer than {timeout:?}")]
    ConnectTimeout {
        /// The receiver's address.
        address: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Writing or reading failed on an established connection.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// No complete reply within the reply timeout; the receiver may still have stored the message, so
    /// it must be sent again with the same MSH-10.
    #[error("no reply within {0:?}")]
    ReplyTimeout(Duration),
    /// The receiver closed the connection before a complete reply.
    #[error("the receiver closed the connection before replying")]
    ConnectionClosed,
    /// The reply acknowledges another message: a late reply to an earlier one, or a receiver bug. The
    /// message is not confirmed; sending it again (same MSH-10) is safe.
    #[error("the ACK is for control id {received}, not {expected}")]
    ControlIdMismatch {
        /// The MSH-10 sent.
        expected: String,
        /// The MSA-2 received.
        received: String,
    },
    /// The reply is framed but is not an ACK.
    #[error("the reply is not an ACK: {0}")]
    NotAnAck(#[source] AckError),
    /// The reply grew past the size limit without an end of frame.
    #[error("the reply exceeds {MAX_REPLY} bytes without an end of frame")]
    ReplyTooLarge,
}

impl MllpError {
    /// Whether sending the same message again may succeed: true for connection trouble, timeouts and
    /// mismatched replies; false when the message or the receiver's replies are broken, which needs
    /// an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            MllpError::Connect { .. }
            | MllpError::ConnectTimeout { .. }
            | MllpError::Io(_)
            | MllpError::ReplyTimeout(_)
            | MllpError::ConnectionClosed
            | MllpError::ControlIdMismatch { .. } => true,
            MllpError::NoControlId | MllpError::NotAnAck(_) | MllpError::ReplyTooLarge => false,
        }
    }
}

/// A connection to the receiver, plain or TLS.
trait Link: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> Link for T {}

/// TLS to the receiver (rustls): the CA its certificate must chain to, and the name it must carry.
#[derive(Clone)]
pub struct MllpTls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for MllpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl MllpTls {
    /// TLS to the receiver at `address` (`host:port`; the host is the name its certificate must
    /// carry), trusting the CAs in `ca_file`, or the system's roots; with `client` (a PEM certificate
    /// chain and its key), Vigil proves who it is to a receiver that asks.
    pub fn new(
        address: &str,
        ca_file: Option<&std::path::Path>,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<MllpTls, String> {
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host).trim_matches(['[', ']']);
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(file) => {
                for cert in CertificateDer::pem_file_iter(file).map_err(|e| format!("{}: {e}", file.display()))? {
                    let cert = cert.map_err(|e| format!("{}: not a PEM certificate: {e}", file.display()))?;
                    roots.add(cert).map_err(|e| format!("{}: {e}", file.display()))?;
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                    .and_then(|c| c.collect::<Result<_, _>>())
                    .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert.display()))?;
                let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
            }
        };
        Ok(MllpTls { connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)), server_name })
    }
}

/// A client for one MLLP receiver.
#[derive(Debug)]
pub struct MllpClient {
    address: String,
    connect_timeout: Duration,
    reply_timeout: Duration,
    tls: Option<MllpTls>,
    stream: Option<Box<dyn Link>>,
    /// Bytes read but not yet consumed; a reply may arrive in several reads.
    buffer: BytesMut,
}

impl MllpClient {
    /// A client for `address` (`host:port`); it connects on the first send.
    pub fn new(address: impl Into<String>, connect_timeout: Duration, reply_timeout: Duration) -> Self {
        MllpClient {
            address: address.into(),
            connect_timeout,
            reply_timeout,
            tls: None,
            stream: None,
            buffer: BytesMut::new(),
        }
    }

    /// The same client over TLS.
    pub fn with_tls(self, tls: Option<MllpTls>) -> Self {
        MllpClient { tls, ..self }
    }

    /// Sends one encoded message (segments separated by `\r`, no framing) and returns the receiver's
    /// ACK, whatever its code: AE and AR are answers for the caller to act on, not transport errors.
    /// The reply timeout covers writing the message and reading the whole reply.
    pub async fn send(&mut self, message: &str) -> Result<Ack, MllpError> {
        let control_id = control_id(message).ok_or(MllpError::NoControlId)?;
        let result = self.exchange(message, control_id).await;
        if let Err(error) = &result {
            tracing::warn!(control_id, retryable = error.is_retryable(), %error, "MLLP send failed; dropping the connection");
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, message: &str, control_id: &str) -> Result<Ack, MllpError> {
        // Nothing read before this message was sent can be its reply.
        self.buffer.clear();
        if self.stream.is_none() {
            self.stream = Some(self.connect().await?);
        }
        let reply = timeout(self.reply_timeout, self.write_and_read(message))
            .await
            .map_err(|_| MllpError::ReplyTimeout(self.reply_timeout))??;
        let ack = parse_ack(&String::from_utf8_lossy(&reply)).map_err(MllpError::NotAnAck)?;
        if ack.control_id != control_id {
            return Err(MllpError::ControlIdMismatch { expected: control_id.to_string(), received: ack.control_id });
        }
        tracing::debug!(control_id, code = %ack.code, "MLLP message acknowledged");
        Ok(ack)
    }

    async fn connect(&self) -> Result<Box<dyn Link>, MllpError> {
        let timed_out = || MllpError::ConnectTimeout { address: self.address.clone(), timeout: self.connect_timeout };
        let connect =
            timeout(self.connect_timeout, TcpStream::connect(&self.address)).await.map_err(|_| timed_out())?;
        let stream = connect.map_err(|source| MllpError::Connect { address: self.address.clone(), source })?;
        // One small message, then wait for its reply: Nagle's delay would only add latency.
        stream.set_nodelay(true)?;
        tracing::debug!(address = %self.address, tls = self.tls.is_some(), "MLLP connected");
        let Some(tls) = &self.tls else { return Ok(Box::new(stream)) };
        let handshake = tls.connector.connect(tls.server_name.clone(), stream);
        let secured = timeout(self.connect_timeout, handshake).await.map_err(|_| timed_out())?;
        Ok(Box::new(secured.map_err(|source| MllpError::Connect { address: self.address.clone(), source })?))
    }

    async fn write_and_read(&mut self, message: &str) -> Result<Vec<u8>, MllpError> {
        let stream = self.stream.as_mut().ok_or(MllpError::ConnectionClosed)?;
        stream.write_all(&frame(message.as_bytes())).await?;
        stream.flush().await?;

        let mut reader = FrameReader::new(MAX_REPLY, 0);
        loop {
            match reader.take(&mut self.buffer) {
                Some(Frame::Message(reply)) => return Ok(reply.to_vec()),
                Some(Frame::Oversized { .. }) => return Err(MllpError::ReplyTooLarge),
                // An ACK is small: no need to read to the end of a huge one.
                None if reader.pending(&self.buffer) > MAX_REPLY => return Err(MllpError::ReplyTooLarge),
                None => {}
            }
            if stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(MllpError::ConnectionClosed);
            }
        }
    }
}

/// MSH-10 of an encoded message, read with the field separator it declares in MSH-1.
fn control_id(message: &str) -> Option<&str> {
    let header = message.split(['\r', '\n']).next()?.strip_prefix("MSH")?;
    let separator = header.chars().next()?;
    // After "MSH", splitting on the separator yields "", MSH-2, MSH-3, ...: MSH-10 is the tenth.
    header.split(separator).nth(9).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::time::sleep;

    use super::super::AckCode;
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn message(control_id: &str) -> String {
        format!(
            "MSH|^~\\&|VIGIL|W|EHR|H|20240601120000+0000||ORU^R01^ORU_R01|{control_id}|P|2.6\rPID|||1^^^&1.2.3&ISO||^^^^^^U"
        )
    }

    fn ack(code: &str, control_id: &str) -> Vec<u8> {
        format!("\x0bMSH|^~\\&|EHR|H|VIGIL|W|20240601120001+0000||ACK^R01^ACK|R-{control_id}|P|2.6\rMSA|{code}|{control_id}\r\x1c\x0d")
            .into_bytes()
    }

    /// Reads one frame as a receiver would; `None` when the client closed the connection.
    async fn read_frame(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = buffer.windows(2).position(|w| w == [0x1C, 0x0D]) {
                return Some(buffer.split_to(end + 2).to_vec());
            }
            if stream.read_buf(buffer).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// A receiver that answers every message of every connection with `reply(n, control_id)`, `n`
    /// counting messages across connections, the chunks 50 ms apart; returns its address, its count
    /// of accepted connections, and a signal that fires once the reply to the first message has
    /// been written (or could not be, the client having gone).
    async fn receiver<F>(reply: F) -> (String, Arc<AtomicUsize>, oneshot::Receiver<()>)
    where
        F: Fn(usize, &str) -> Vec<Vec<u8>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepts = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(reply);
        let (first_replied, first_reply_written) = oneshot::channel();
        let first_replied = Arc::new(Mutex::new(Some(first_replied)));
        let counter = accepts.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let (reply, messages, first_replied) = (reply.clone(), messages.clone(), first_replied.clone());
                tokio::spawn(async move {
                    let mut buffer = BytesMut::new();
                    while let Some(frame) = read_frame(&mut stream, &mut buffer).await {
                        assert_eq!((frame[0], &frame[frame.len() - 2..]), (0x0B, &[0x1C, 0x0D][..]), "framing");
                        let text = String::from_utf8(frame[1..frame.len() - 2].to_vec()).unwrap();
                        let id = control_id(&text).unwrap().to_string();
                        let n = messages.fetch_add(1, Ordering::SeqCst);
                        let mut written = true;
                        for (i, chunk) in reply(n, &id).into_iter().enumerate() {
                            if i > 0 {
                                sleep(Duration::from_millis(50)).await;
                            }
                            if stream.write_all(&chunk).await.is_err() {
                                written = false;
                                break;
                            }
                        }
                        if n == 0
                            && let Some(signal) = first_replied.lock().unwrap().take()
                        {
                            let _ = signal.send(());
                        }
                        if !written {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepts, first_reply_written)
    }

    #[tokio::test]
    async fn reply_split_across_writes_with_noise_outside_frames() {
        let (address, _, _) = receiver(|_, id| {
            let reply = ack("AA", id);
            let (head, tail) = reply.split_at(20);
            vec![[b"\r\n".as_slice(), head].concat(), tail.to_vec()]
        })
        .await;
        let mut client = MllpClient::new(address, TIMEOUT, TIMEOUT);
        let ack = client.send(&message("M-1")).await.unwrap();
        assert_eq!((ack.code, ack.control_id.as_str()), (AckCode::AA, "M-1"));
    }

    #[tokio::test]
    async fn application_error_is_an_answer_not_a_transport_error() {
        let (address, _, _) = receiver(|_, id| vec![ack("AE", id)]).await;
        let mut client = MllpClient::new(address, TIMEOUT, TIMEOUT);
        let ack = client.send(&message("M-1")).await.unwrap();
        assert_eq!(ack.code, AckCode::AE);
    }

    #[tokio::test]
    async fn connection_is_reused_across_sends() {
        let (address, accepts, _) = receiver(|_, id| vec![ack("AA", id)]).await;
        let mut client = MllpClient::new(address, TIMEOUT, TIMEOUT);
        for i in 0..3 {
            let id = format!("M-{i}");
            assert_eq!(client.send(&message(&id)).await.unwrap().control_id, id);
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn ack_for_another_message_is_rejected_and_the_connection_dropped() {
        let (address, accepts, _) =
            receiver(|n, id| if n == 0 { vec![ack("AA", "EARLIER")] } else { vec![ack("AA", id)] }).await;
        let mut client = MllpClient::new(address, TIMEOUT, TIMEOUT);
        let error = client.send(&message("M-1")).await.unwrap_err();
        assert!(
            matches!(&error, MllpError::ControlIdMismatch { expected, received } if expected == "M-1" && received == "EARLIER"),
            "{error:?}"
        );
        assert!(error.is_retryable());
        assert_eq!(client.send(&message("M-1")).await.unwrap().control_id, "M-1");
        assert_eq!(accepts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn reply_timeout_is_retryable_and_a_late_reply_is_never_matched() {
        // The first message is answered late; by then the client has given up on that connection.
        let (address, accepts, first_reply_written) = receiver(|n, id| {
            if n == 0 {
                vec![Vec::new(), Vec::new(), Vec::new(), Vec::new(), ack("AA", id)]
            } else {
                vec![ack("AA", id)]
            }
        })
        .await;
        let mut client = MllpClient::new(address, TIMEOUT, Duration::from_millis(100));
        let error = client.send(&message("M-1")).await.unwrap_err();
        assert!(matches!(error, MllpError::ReplyTimeout(_)), "{error:?}");
        assert!(error.is_retryable());

        // The late reply to M-1 has been written (to the connection the client gave up on) before M-2.
        first_reply_written.await.unwrap();
        let ack = client.send(&message("M-2")).await.unwrap();
        assert_eq!(ack.control_id, "M-2");
        assert_eq!(accepts.load(Ordering::SeqCst), 2, "the second send reconnected");
    }

    #[tokio::test]
    async fn reply_that_is_not_an_ack_is_permanent() {
        let (address, _, _) =
            receiver(|_, _| vec![b"\x0bMSH|^~\\&|X|Y|||||ADT^A01|1|P|2.6\rEVN|A01\r\x1c\x0d".to_vec()]).await;
        let mut client = MllpClient::new(address, TIMEOUT, TIMEOUT);
        let error = client.send(&message("M-1")).await.unwrap_err();
        assert!(
            matches!(error, MllpError::NotAnAck(AckError::InvalidField { segment: "MSH", field: 9, .. })),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn closed_connection_and_refused_connect_are_retryable() {
        // A receiver that reads one message, then closes the connection and stops listening.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = MllpClient::new(listener.local_addr().unwrap().to_string(), TIMEOUT, TIMEOUT);
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = BytesMut::new();
            read_frame(&mut stream, &mut buffer).await;
        });
        let error = client.send(&message("M-1")).await.unwrap_err();
        assert!(matches!(error, MllpError::ConnectionClosed), "{error:?}");
        assert!(error.is_retryable());

        let error = client.send(&message("M-1")).await.unwrap_err();
        assert!(matches!(error, MllpError::Connect { .. }), "listener gone: {error:?}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn message_without_control_id_is_refused_before_connecting() {
        let mut client = MllpClient::new("127.0.0.1:1", TIMEOUT, TIMEOUT);
        let error = client.send("MSH|^~\\&|A|B|C|D|20240601||ORU^R01^ORU_R01||P|2.6").await.unwrap_err();
        assert!(matches!(error, MllpError::NoControlId), "{error:?}");
        assert!(!error.is_retryable());
    }

    #[test]
    fn control_id_is_msh_10() {
        assert_eq!(control_id(&message("ABC-1")), Some("ABC-1"));
        assert_eq!(control_id("PID|1"), None);
        assert_eq!(control_id("MSH|^~\\&|A"), None);
    }
}
