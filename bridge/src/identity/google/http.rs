//! One HTTP exchange with Google, over the bridge's one hyper/rustls client: a time limit, a
//! capped body, and errors that name the call, never what was sent (an assertion or a bearer
//! token).

use std::time::Duration;

use axum::http::{Method, Request, header};
use bytes::Bytes;

use super::GoogleError;
use crate::config::Secret;

/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The biggest answer read (a page of 500 users with custom schemas is a few hundred KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request's body.
pub(super) enum Body {
    None,
    Form(String),
    Json(String),
}

/// `method url` with an optional bearer token; the status and the body.
pub(super) async fn send(
    what: &'static str,
    method: Method,
    url: &str,
    bearer: Option<&Secret>,
    body: Body,
) -> Result<(u16, Bytes), GoogleError> {
    let unreachable = |detail: String| GoogleError::Unreachable { what, detail };
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "slipway-bridge");
    if let Some(t) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", &*t.expose()));
    }
    let body = match body {
        Body::None => String::new(),
        Body::Form(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            f
        }
        Body::Json(j) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            j
        }
    };
    let req = req
        .body(body)
        .map_err(|_| unreachable(format!("bad URL {url}")))?;
    let client = crate::https::client().map_err(unreachable)?;
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_BODY)
        .await
        .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
    Ok((status, bytes))
}

/// The `message` of a Google API error body (`{"error": {"message": …}}`), or the status.
pub(super) fn api_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .map_or_else(
            || "no error message".into(),
            |m| m.chars().take(300).collect(),
        )
}
