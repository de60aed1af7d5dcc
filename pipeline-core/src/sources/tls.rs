//! TLS for Vigil's listeners (rustls): the server certificate, and client certificates that
//! are verified against a CA and may be required. A verified client certificate's common name is
//! the credential it stands for.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// The endpoint's TLS, ready to accept.
#[derive(Clone)]
pub struct ServerTls {
    /// Wraps accepted sockets.
    pub acceptor: TlsAcceptor,
    /// When the server certificate expires (the board warns 30 days before).
    pub expires: DateTime<Utc>,
}

/// Loads the server certificate chain and key, and the CA that client certificates must chain to.
/// Every problem is named with its file.
pub fn server(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
    require_client_cert: bool,
) -> Result<ServerTls, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_file.display()))?;
    let first = certs.first().ok_or_else(|| format!("{}: holds no certificate", cert_file.display()))?;
    let expires = not_after(first).ok_or_else(|| format!("{}: the certificate does not parse", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = match client_ca_file {
        None if require_client_cert => {
            return Err(
                "require_client_cert needs tls_client_ca_file: the CA that signs the devices' certificates".into()
            );
        }
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
                let cert = cert.map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
                roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if require_client_cert { builder } else { builder.allow_unauthenticated() };
            builder.build().map_err(|e| format!("{}: {e}", ca.display()))?
        }
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))?;
    Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(config)), expires })
}

/// The common name of the client certificate a connection presented (rustls has verified it).
pub fn peer_name(connection: &rustls::ServerConnection) -> Option<String> {
    let der = connection.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(name)
}

/// When a certificate expires.
fn not_after(der: &CertificateDer<'_>) -> Option<DateTime<Utc>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}
