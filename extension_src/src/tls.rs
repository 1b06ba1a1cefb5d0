//! TLS for the one peer that is not on loopback: AWS's S3 endpoints (the export). rustls with
//! graviola's cryptography: pure Rust with assembly for x86_64 and aarch64, so the static musl
//! build needs no C compiler for either target (ring and aws-lc-rs do).
//!
//! graviola requires a few CPU features and asserts them on first use; the extension is built
//! with `panic = "abort"`, so a missing one would end the process. `Tls::new` checks them first
//! and says which is missing instead: the export is then off and the function runs on.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;

/// What every connection of one client shares: roots, protocol versions, the cryptography.
#[derive(Clone)]
pub struct Tls {
    pub(crate) config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// A client that trusts Mozilla's roots (built in: Lambda's OS-only runtimes and container
    /// images do not all carry a CA bundle), or only the PEM certificates in `cert_file` when one
    /// is named (`SSL_CERT_FILE`, as OpenSSL reads it: a private CA, the tests' server).
    pub fn new(cert_file: Option<&str>) -> Result<Self, String> {
        if let Some(missing) = missing_cpu_feature() {
            return Err(format!("this CPU lacks {missing}, which the extension's TLS (graviola) requires"));
        }
        let roots = match cert_file {
            Some(path) => roots_from_pem_file(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { config: Arc::new(config) })
    }
}

/// graviola's provider with what a client of S3 uses: AES-GCM suites (the CPU has AES, checked
/// above), X25519 and P-256 key exchange, and no private keys (no client certificates): what is
/// not referenced is left out of the binary.
fn provider() -> CryptoProvider {
    use rustls_graviola::{kx, suites};
    let mut provider = rustls_graviola::default_provider();
    provider.cipher_suites = vec![
        suites::TLS13_AES_128_GCM_SHA256,
        suites::TLS13_AES_256_GCM_SHA384,
        suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    provider.kx_groups = vec![&kx::X25519, &kx::P256];
    provider.key_provider = &NoPrivateKeys;
    provider
}

/// A client without certificates of its own loads no private key.
#[derive(Debug)]
struct NoPrivateKeys;

impl KeyProvider for NoPrivateKeys {
    fn load_private_key(&self, _key: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General("the extension loads no private key".to_owned()))
    }
}

fn roots_from_pem_file(path: &str) -> Result<RootCertStore, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("cannot read certificates from {path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("{path} holds no usable CA certificate"));
    }
    Ok(roots)
}

/// The first CPU feature graviola needs that this CPU does not have (the list its
/// `verify_cpu_features` asserts, in graviola 0.3).
#[must_use]
pub fn missing_cpu_feature() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        let have = [
            ("aes", std::arch::is_x86_feature_detected!("aes")),
            ("pclmulqdq", std::arch::is_x86_feature_detected!("pclmulqdq")),
            ("bmi1", std::arch::is_x86_feature_detected!("bmi1")),
            ("adx", std::arch::is_x86_feature_detected!("adx")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ];
        have.iter().find(|(_, present)| !present).map(|(name, _)| *name)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let have = [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("aes", std::arch::is_aarch64_feature_detected!("aes")),
            ("pmull", std::arch::is_aarch64_feature_detected!("pmull")),
            ("sha2", std::arch::is_aarch64_feature_detected!("sha2")),
        ];
        have.iter().find(|(_, present)| !present).map(|(name, _)| *name)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Some("an x86_64 or aarch64 CPU")
    }
}

#[cfg(test)]
mod tests;
