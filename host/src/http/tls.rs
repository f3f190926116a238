//! TLS for the edge listener: sessions ride on cookies, so they must never
//! cross the network in the clear.
//!
//! rustls (memory-safe) with the ring provider (no C toolchain beyond cc),
//! TLS 1.2 and 1.3, HTTP/1.1 over ALPN. Certificate chain and key come from
//! PEM files named in the config. (Connections to a session backend get
//! theirs from [`crate::store`].)

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which file a TLS setting problem is about.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

/// A server TLS config from a PEM certificate chain (leaf first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, (TlsFile, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            (
                TlsFile::Cert,
                format!("cannot read {}: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err((
            TlsFile::Cert,
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            TlsFile::Key,
            format!("cannot read a PEM private key from {}: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            (
                TlsFile::Key,
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
