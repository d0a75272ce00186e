//! The one pooled HTTP client for the bridge's own small JSON calls (Alertmanager, GitHub's
//! device flow): hyper over rustls with aws-lc-rs, the one TLS stack, and the system's roots.
//! Plain `http://` works too; the config allows it only for loopback addresses.

use std::sync::OnceLock;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The shared client, built on first use; the error says why the TLS roots could not load.
pub fn client() -> Result<&'static Client<Https, String>, String> {
    static CLIENT: OnceLock<Result<Client<Https, String>, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("loading TLS roots: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(https))
        })
        .as_ref()
        .map_err(Clone::clone)
}
