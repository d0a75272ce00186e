//! The HTTP client `openidconnect` talks through: the bridge's one hyper/rustls client (aws-lc-rs,
//! the system's roots), with a time limit and a size limit on every answer. Redirects are not
//! followed (a provider that redirects discovery or the token endpoint is refused), and nothing
//! of a request or an answer body is ever logged or put in an error: the token endpoint's body
//! carries the code and the verifier, its answer the tokens.

use std::time::Duration;

use openidconnect::{HttpRequest, HttpResponse};

/// Biggest answer read from the provider (discovery documents and JWKS are a few kB).
const MAX_BODY: usize = 512 * 1024;
/// One request's time limit.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the provider failed: the URL's scheme, host and path, and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// `scheme://host/path` of a request, without its query.
fn shown(uri: &axum::http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("?", |a| a.as_str()),
        uri.path()
    )
}

/// One exchange with the provider. `openidconnect` accepts this function as its async client.
pub async fn send(request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let target = shown(&parts.uri);
    let body = String::from_utf8(body)
        .map_err(|_| HttpError(format!("{target}: a request body that is not UTF-8")))?;
    let client = crate::https::client().map_err(HttpError)?;
    let answer = tokio::time::timeout(
        TIMEOUT,
        client.request(axum::http::Request::from_parts(parts, body)),
    )
    .await
    .map_err(|_| HttpError(format!("{target} did not answer within {TIMEOUT:?}")))?
    .map_err(|e| HttpError(format!("{target}: {e}")))?;
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(axum::body::Body::new(body), MAX_BODY)
        .await
        .map_err(|_| {
            HttpError(format!(
                "{target}: the answer was cut off or longer than {MAX_BODY} bytes"
            ))
        })?;
    Ok(axum::http::Response::from_parts(parts, bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_endpoint_without_its_query() {
        let uri: axum::http::Uri = "https://idp.example.com/token?code=secret-code"
            .parse()
            .unwrap();
        assert_eq!(shown(&uri), "https://idp.example.com/token");
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let req = axum::http::Request::get(format!("http://127.0.0.1:{port}/jwks?x=1"))
            .body(Vec::new())
            .unwrap();
        let e = send(req).await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("http://127.0.0.1:{port}/jwks")),
            "{e}"
        );
        assert!(!e.contains("x=1"), "{e}");
    }
}
