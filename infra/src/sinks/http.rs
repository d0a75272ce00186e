//! The small HTTP client the Jira and webhook sinks share: hyper over rustls (aws-lc-rs, the
//! one TLS stack), native roots, a timeout per request, bodies capped when read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::SinkError;

/// Response bodies are only read for error messages and small JSON answers.
const MAX_RESPONSE: usize = 1 << 20;

/// A pooled HTTPS (or loopback HTTP) client.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client<crate::tls::Https, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A response: status and (capped) body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Response {
    pub(crate) fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(500).collect()
    }
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Result<Http, String> {
        let https = crate::tls::connector(crate::tls::Connect::default())?;
        Ok(Http {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// Sends one request. Network errors and timeouts are [`SinkError::Transient`]; any HTTP
    /// status is returned for the caller to judge.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, SinkError> {
        let mut req = hyper::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| SinkError::Config(format!("cannot build a request to {url}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                SinkError::Transient(format!("{method} {url}: {}", crate::with_causes(&e)))
            })?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(|e| {
                    SinkError::Transient(format!("{method} {url}: reading the response: {e}"))
                })?;
            Ok(Response { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::Transient(format!(
                "{method} {url}: no response within {:?}",
                self.timeout
            ))),
        }
    }
}

/// Classifies a non-2xx status: throttling and server errors pass, the rest need an operator.
pub(crate) fn status_error(what: &str, resp: &Response) -> SinkError {
    let message = format!("{what}: HTTP {}: {}", resp.status, resp.text());
    match resp.status {
        408 | 425 | 429 | 500..=599 => SinkError::Transient(message),
        _ => SinkError::Config(message),
    }
}
