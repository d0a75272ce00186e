//! HTTPS for libgit2 without a second TLS stack. libgit2 is built without its HTTPS transport
//! (that would pull in OpenSSL beside rustls, and a custom transport needs `unsafe`), so the
//! mirror talks plain HTTP to this relay on 127.0.0.1, which forwards each smart-HTTP request to
//! the real remote over rustls (aws-lc-rs). The relay's URL carries a random secret path, so
//! other local users can't use it as an open relay; it forwards only to its one upstream.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Headers a git smart-HTTP exchange needs, both ways.
const FORWARDED: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "accept-encoding",
    "content-encoding",
    "git-protocol",
    "user-agent",
    "www-authenticate",
    "cache-control",
    "pragma",
    "expires",
];

type HttpsClient = Client<crate::tls::Https, Body>;

#[derive(Clone)]
struct Relay {
    upstream: String,
    secret: String,
    client: HttpsClient,
}

/// A running relay. Its secret path never prints.
pub struct GitRelay {
    addr: SocketAddr,
    secret: String,
    upstream: String,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GitRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRelay")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for GitRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GitRelay {
    /// Start a relay to `upstream` (an `https://host[:port]` origin). `extra_root_pem` adds a
    /// trusted CA (for a private Git server or a test server); the system roots are always used.
    /// Must be called within a tokio runtime.
    pub fn start(upstream: &str, extra_root_pem: Option<&str>) -> Result<GitRelay, String> {
        let upstream = upstream.trim_end_matches('/').to_string();
        if !upstream.starts_with("https://") || upstream["https://".len()..].contains('/') {
            return Err(format!(
                "git relay upstream must be an https:// origin without a path: {upstream}"
            ));
        }
        let https = crate::tls::connector(crate::tls::Connect {
            extra_roots_pem: extra_root_pem,
            https_only: true,
            http2: false,
        })?;
        let client: HttpsClient = Client::builder(TokioExecutor::new()).build(https);
        let secret = random_secret();
        let relay = Relay {
            upstream: upstream.clone(),
            secret: secret.clone(),
            client,
        };
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("git relay: {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("git relay: {e}"))?;
        let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| format!("git relay: {e}"))?;
        let app = axum::Router::new().fallback(forward).with_state(relay);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitRelay {
            addr,
            secret,
            upstream,
            task,
        })
    }

    /// The local URL libgit2 should use for `remote_url` (which must be on the relay's upstream).
    pub fn local_url(&self, remote_url: &str) -> Result<String, String> {
        let _ = &self.task;
        let rest = remote_url
            .strip_prefix(&self.upstream)
            .filter(|r| r.starts_with('/'))
            .ok_or_else(|| {
                format!(
                    "{remote_url} is not on the relay's upstream {}",
                    self.upstream
                )
            })?;
        Ok(format!("http://{}/{}{rest}", self.addr, self.secret))
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable in any useful way; a time-derived value still
        // keeps the path unguessable enough for a loopback relay that forwards to one host.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&t.to_le_bytes());
    }
    hex::encode(bytes)
}

async fn forward(State(relay): State<Relay>, req: Request) -> Response {
    let Some(uri) = upstream_uri(&relay, req.uri()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (parts, body) = req.into_parts();
    let mut out = hyper::Request::builder().method(parts.method).uri(uri);
    copy_headers(&parts.headers, out.headers_mut());
    let Ok(out) = out.body(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match relay.client.request(out).await {
        Ok(upstream) => {
            let (parts, incoming) = upstream.into_parts();
            let mut response = Response::builder().status(parts.status);
            copy_headers(&parts.headers, response.headers_mut());
            response
                .body(Body::new(incoming))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            tracing::warn!(error = %e, "git relay: upstream request failed");
            (StatusCode::BAD_GATEWAY, "upstream unavailable").into_response()
        }
    }
}

/// The upstream URI for a request to the relay: its path must be the secret followed by `/` (or
/// nothing), and the result must be on the upstream's own host: `/<secret>.evil.example/x`
/// would otherwise make `https://github.com.evil.example/x`.
fn upstream_uri(relay: &Relay, uri: &Uri) -> Option<Uri> {
    let rest = uri.path().strip_prefix(&format!("/{}", relay.secret))?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let out: Uri = format!("{}{rest}{query}", relay.upstream).parse().ok()?;
    let pinned: Uri = relay.upstream.parse().ok()?;
    (out.scheme() == pinned.scheme() && out.authority() == pinned.authority()).then_some(out)
}

fn copy_headers(from: &HeaderMap, to: Option<&mut HeaderMap>) {
    let Some(to) = to else { return };
    for name in FORWARDED {
        let name = HeaderName::from_static(name);
        for v in from.get_all(&name) {
            to.append(name.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_its_upstream_and_secret_path() {
        let relay = GitRelay::start("https://git.example.com", None).unwrap();
        let local = relay
            .local_url("https://git.example.com/acme/gitops.git")
            .unwrap();
        assert!(local.starts_with("http://127.0.0.1:") && local.ends_with("/acme/gitops.git"));
        assert!(relay.local_url("https://evil.example.com/x.git").is_err());
        assert!(GitRelay::start("http://plain.example.com", None).is_err());
        assert!(GitRelay::start("https://x.example.com/path", None).is_err());
        // The secret must be a whole path segment, and the host is pinned.
        let r = Relay {
            upstream: "https://github.com".into(),
            secret: "s3cr3t".into(),
            client: Client::builder(TokioExecutor::new()).build(
                crate::tls::connector(crate::tls::Connect {
                    https_only: true,
                    ..Default::default()
                })
                .unwrap(),
            ),
        };
        let up = |p: &str| upstream_uri(&r, &p.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            up("/s3cr3t/acme/gitops.git/info/refs?service=git-upload-pack").as_deref(),
            Some("https://github.com/acme/gitops.git/info/refs?service=git-upload-pack")
        );
        assert_eq!(up("/s3cr3t.evil.example/x"), None, "host injection");
        assert_eq!(up("/s3cr3t@evil.example/x"), None);
        assert_eq!(up("/s3cr3tx/y"), None);
        assert_eq!(up("/other/x"), None);
        // Without the secret path, nothing is forwarded.
        let port = relay.addr.port();
        let resp = Client::builder(TokioExecutor::new())
            .build_http::<Body>()
            .request(
                hyper::Request::get(format!("http://127.0.0.1:{port}/acme/gitops.git/info/refs"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
