//! The off-machine copy of each audit checkpoint: one RFC 5424 line over UDP to the site's syslog.
//!
//! Someone who holds the service account's files can rewrite the chain, the key and the checkpoint
//! together; only a copy they cannot reach (this one) shows what the head was.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

/// Facility 13 (log audit), severity 6 (informational).
const PRIORITY: u8 = 13 * 8 + 6;

/// A syslog receiver.
#[derive(Debug)]
pub struct Syslog {
    socket: UdpSocket,
    target: SocketAddr,
    host: String,
}

impl Syslog {
    /// The sender `[audit] syslog` names, if it names one.
    pub fn of_site(address: Option<&str>) -> std::io::Result<Option<std::sync::Arc<Syslog>>> {
        address.map(|a| Syslog::to(a).map(std::sync::Arc::new)).transpose()
    }

    /// A sender to `address` (`host:port`).
    pub fn to(address: &str) -> std::io::Result<Syslog> {
        let target = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{address} names no address")))?;
        let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
        Ok(Syslog { socket: UdpSocket::bind(bind)?, target, host })
    }

    /// Sends one line; a lost datagram is logged, never an error for the action behind it.
    pub fn send(&self, message: &str) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = format!("<{PRIORITY}>1 {at} {} vigil {} audit - {message}", self.host, std::process::id());
        if let Err(e) = self.socket.send_to(line.as_bytes(), self.target) {
            tracing::warn!(error = %e, "could not send the audit checkpoint to syslog");
        }
    }
}
