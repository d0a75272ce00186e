//! A self-signed certificate for `127.0.0.1`/`localhost`, made at start-up. kubectl (client-go)
//! only sends credentials over TLS, so kubeconfigs point at the HTTPS side of the port with this
//! certificate as their certificate authority.

use std::sync::Arc;

pub(crate) struct Tls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) ca_pem: String,
}

pub(crate) fn self_signed() -> Tls {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).expect("generating the emulator's certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key.into())
        .expect("TLS server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Tls {
        config: Arc::new(config),
        ca_pem: cert.pem(),
    }
}
