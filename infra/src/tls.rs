//! The one way Slipway's own HTTP clients reach TLS: hyper over rustls with the aws-lc-rs
//! provider (the one TLS stack; no OpenSSL), the system's roots plus any a caller adds.

use std::sync::Arc;

use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The connector every hyper client of the bridge and the runner is built on.
pub type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// How a client connects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connect<'a> {
    /// A PEM bundle of CAs trusted beside the system's (a private Git server, a test server).
    pub extra_roots_pem: Option<&'a str>,
    /// Refuse plain `http://`. Otherwise it is allowed; callers allow it for loopback URLs only.
    pub https_only: bool,
    /// Offer HTTP/2 by ALPN as well as HTTP/1.1.
    pub http2: bool,
}

/// A connector as `c` asks. The error says why no roots could be loaded or a PEM didn't parse.
pub fn connector(c: Connect<'_>) -> Result<Https, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("configuring TLS: {e}"))?
        .with_root_certificates(roots(c.extra_roots_pem)?)
        .with_no_client_auth();
    let builder = HttpsConnectorBuilder::new().with_tls_config(tls);
    let builder = if c.https_only {
        builder.https_only()
    } else {
        builder.https_or_http()
    }
    .enable_http1();
    Ok(if c.http2 {
        builder.enable_http2().build()
    } else {
        builder.build()
    })
}

/// The system's roots (those that parse) and `extra_pem`'s, which must all parse.
fn roots(extra_pem: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = extra_pem {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("extra CA is not PEM: {e}"))?;
        for cert in certs {
            roots.add(cert).map_err(|e| format!("extra CA: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "the system has no usable TLS root certificates: install its CA certificates package (ca-certificates)"
                .into(),
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_roots_must_be_pem() {
        let e = connector(Connect {
            extra_roots_pem: Some(
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            ),
            ..Connect::default()
        })
        .map(|_| ())
        .unwrap_err();
        assert!(e.contains("extra CA"), "{e}");
    }
}
