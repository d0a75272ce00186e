//! `POST /google/notify`: Google's push notifications for the `users.watch` channels the sync
//! opened (`identity::google`). Mounted only when push is configured (a public URL and a channel
//! token); otherwise the path answers 404.
//!
//! The `X-Goog-Channel-Token` header must be the configured token (compared in constant time);
//! anything else is a bare 401 and starts nothing. A good one is acknowledged at once with 200
//! and only pokes the sync, which runs after a short debounce: a notification never carries
//! what changed into the directory, it only makes Slipway read Google again. The channel's
//! first message (`X-Goog-Resource-State: sync`) needs no run.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::AppState;
use super::scim::token_matches;

/// Notifications carry a user's id and email: a small body. It is never read.
const MAX_NOTIFY_BODY: usize = 64 * 1024;

/// The route, when the sync runs with push configured.
pub fn routes(state: &AppState) -> Option<Router<AppState>> {
    let push = state.config.google.as_ref()?.push.as_ref()?;
    if push.channel_token.is_empty() || state.google.is_none() {
        return None;
    }
    Some(Router::new().route(
        "/google/notify",
        post(notify).layer(DefaultBodyLimit::max(MAX_NOTIFY_BODY)),
    ))
}

async fn notify(State(state): State<AppState>, headers: HeaderMap) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = state
        .config
        .google
        .as_ref()
        .and_then(|g| g.push.as_ref())
        .map(|p| p.channel_token.expose());
    let presented = header("x-goog-channel-token").unwrap_or_default();
    if !token_matches(expected.as_deref().unwrap_or_default(), presented) {
        state.metrics.request("google_notify", "unauthorized");
        return StatusCode::UNAUTHORIZED;
    }
    if header("x-goog-resource-state") != Some("sync")
        && let Some(sync) = &state.google
    {
        sync.trigger();
    }
    state.metrics.request("google_notify", "ok");
    StatusCode::OK
}
