//! The one pooled HTTP client for the bridge's own small JSON calls (Alertmanager, GitHub's
//! device flow): hyper over rustls with aws-lc-rs, the one TLS stack, and the system's roots.
//! Plain `http://` works too; the config allows it only for loopback addresses.

use std::sync::OnceLock;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use slipway_infra::tls::Https;

/// The shared client, built on first use; the error says why the TLS roots could not load.
pub fn client() -> Result<&'static Client<Https, String>, String> {
    static CLIENT: OnceLock<Result<Client<Https, String>, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let https = slipway_infra::tls::connector(slipway_infra::tls::Connect::default())?;
            Ok(Client::builder(TokioExecutor::new()).build(https))
        })
        .as_ref()
        .map_err(Clone::clone)
}
