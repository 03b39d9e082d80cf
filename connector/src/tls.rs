//! TLS for `wss://` and `https://`: rustls with the ring provider and the system's CA store
//! (Debian's ca-certificates, or SSL_CERT_FILE/SSL_CERT_DIR), so a corporate CA added to the
//! system bundle is trusted.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, crypto::CryptoProvider, pki_types::CertificateDer};
use thiserror::Error;
use tracing::{info, warn};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// One root store shared by the WebSocket and the REST client.
#[derive(Clone)]
pub struct Tls {
    pub client_config: Arc<ClientConfig>,
    pub provider: Arc<CryptoProvider>,
    pub roots: Arc<Vec<CertificateDer<'static>>>,
}

impl Tls {
    pub fn from_system_store() -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = rustls_native_certs::load_native_certs();
        for error in loaded.errors.iter().take(5) {
            warn!(%error, "while loading system CA certificates");
        }
        let mut store = RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(loaded.certs.iter().cloned());
        if added == 0 {
            warn!(
                "no system CA certificates found: wss:// and https:// will fail (install ca-certificates)"
            );
        } else {
            info!(added, ignored, "system CA certificates loaded");
        }
        let client_config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Self {
            client_config: Arc::new(client_config),
            provider,
            roots: Arc::new(loaded.certs),
        })
    }

    pub fn has_roots(&self) -> bool {
        !self.roots.is_empty()
    }
}
