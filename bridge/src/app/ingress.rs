//! The signature check, as an extractor: a handler taking [`Signed`] only ever runs for a
//! verified request. Rejections are a bare 401 (no detail for an attacker), counted in metrics,
//! and tallied into a periodic audit record.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use slipway_core::audit::{AuditRecord, EventKind};

use super::AppState;
use crate::shared::{Pass, Refused, Ticket};
use crate::slack::signature::{Rejection, verify};

/// Largest request body accepted (Slack's payloads are far smaller).
pub const MAX_BODY: usize = 64 * 1024;

/// A request body whose Slack signature checked out (or an unsigned `ssl_check` probe, which
/// carries no data and triggers nothing).
#[derive(Debug)]
pub struct Signed {
    pub body: Bytes,
    pub ssl_check: bool,
    /// The request's event or trigger id was not seen before, on any replica: `false` for a
    /// Slack retry of something already handled, which is acknowledged and dropped.
    pub fresh: bool,
    /// On Redis, a command's or an interaction's gate check is deferred to the one round trip
    /// its ack makes: the handler must settle it ([`settle`], or inside the queue's script)
    /// before it acts. `fresh` is then `true` until settled.
    pub ticket: Option<Ticket>,
}

/// Settle a deferred gate check on its own (one pipelined round trip); `Ok` to go on.
pub async fn settle(
    state: &AppState,
    ep: &'static str,
    ticket: Option<&Ticket>,
) -> Result<(), Refused> {
    state
        .gate
        .check(ticket)
        .await
        .map_err(|r| refused(state, ep, r))
}

/// Count a refusal found by the ack's script or by [`settle`].
pub fn refused(state: &AppState, ep: &'static str, r: Refused) -> Refused {
    match r {
        Refused::Replayed => reject(state, ep, Rejection::Replayed),
        Refused::Duplicate => state.metrics.request(ep, "duplicate"),
        Refused::Unavailable => state.metrics.request(ep, "unavailable"),
    }
    r
}

fn endpoint(path: &str) -> &'static str {
    match path {
        "/slack/commands" => "commands",
        "/slack/interactivity" => "interactivity",
        "/slack/events" => "events",
        _ => "other",
    }
}

fn is_ssl_check(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<BTreeMap<String, String>>(body)
        .is_ok_and(|f| f.get("ssl_check").map(String::as_str) == Some("1"))
}

impl FromRequest<AppState> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let ep = endpoint(req.uri().path());
        let headers = req.headers().clone();
        let body = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rejection) => {
                state.metrics.request(ep, "too_large");
                return Err(rejection.into_response());
            }
        };
        let ts = headers
            .get("x-slack-request-timestamp")
            .and_then(|v| v.to_str().ok());
        let sig = headers
            .get("x-slack-signature")
            .and_then(|v| v.to_str().ok());
        if ep == "commands" && sig.is_none() && is_ssl_check(&body) {
            return Ok(Signed {
                body,
                ssl_check: true,
                fresh: true,
                ticket: None,
            });
        }
        let now = state.clock.unix();
        let seen = match verify_rotated(&state.config.slack.signing_secret, ts, sig, &body, now) {
            Ok(seen) => seen,
            Err(r) => {
                reject(state, ep, r);
                return Err(StatusCode::UNAUTHORIZED.into_response());
            }
        };
        pass_gate(state, ep, &seen, body, now).await
    }
}

/// Checks against the signing secret in force and, while a rotation's grace lasts, the one it
/// replaced: Slack may sign with either until the app's new secret reaches every request.
fn verify_rotated(
    secret: &crate::config::Secret,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<crate::slack::signature::Verified, Rejection> {
    let (current, previous) = secret.accepted(now);
    match (verify(current.as_bytes(), ts, sig, body, now), previous) {
        (Err(Rejection::BadSignature), Some(old)) => verify(old.as_bytes(), ts, sig, body, now),
        (result, _) => result,
    }
}

/// The gate for a verified request: events are settled here (their work comes after the
/// ack), commands and interactions get a ticket their handler settles in its one round trip.
async fn pass_gate(
    state: &AppState,
    ep: &'static str,
    seen: &crate::slack::signature::Verified,
    body: Bytes,
    now: i64,
) -> Result<Signed, Response> {
    let dedupe = dedupe_key(ep, &body);
    let pass = if ep == "events" {
        state
            .gate
            .admit(seen, dedupe.as_deref(), now)
            .await
            .map(Pass::Settled)
    } else {
        Ok(state.gate.defer(seen, dedupe.as_deref(), now))
    };
    let (fresh, ticket) = match pass {
        Ok(Pass::Settled(a)) if a.replayed => {
            reject(state, ep, Rejection::Replayed);
            return Err(StatusCode::UNAUTHORIZED.into_response());
        }
        Ok(Pass::Settled(a)) => (a.fresh, None),
        Ok(Pass::Deferred(t)) => (true, Some(t)),
        Err(e) => return Err(unavailable(state, ep, &e)),
    };
    Ok(Signed {
        body,
        ssl_check: false,
        fresh,
        ticket,
    })
}

/// What identifies a Slack delivery across retries: the Events API `event_id`, or the
/// `trigger_id` of a command or an interaction. A body without one has no dedupe key.
fn dedupe_key(ep: &str, body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ids {
        event_id: Option<String>,
        trigger_id: Option<String>,
        payload: Option<String>,
    }
    let ids: Ids = match ep {
        "events" => serde_json::from_slice(body).ok()?,
        _ => serde_urlencoded::from_bytes(body).ok()?,
    };
    if let Some(e) = ids.event_id.filter(|e| !e.is_empty()) {
        return Some(format!("event:{e}"));
    }
    let trigger = match ids.payload {
        Some(p) => serde_json::from_str::<Ids>(&p).ok()?.trigger_id,
        None => ids.trigger_id,
    };
    trigger
        .filter(|t| !t.is_empty())
        .map(|t| format!("trigger:{t}"))
}

/// The shared state is unreachable: nothing is done, and the user hears why. A command gets
/// an ephemeral answer (Slack shows nothing for a bare error); an event or an interaction gets
/// 503, which Slack retries or shows as a failed click.
fn unavailable(state: &AppState, ep: &'static str, e: &crate::shared::Unavailable) -> Response {
    state.metrics.request(ep, "unavailable");
    tracing::error!(error = %e, endpoint = ep, "request refused: shared state unreachable");
    unavailable_response(ep)
}

/// The answer to a request refused because the shared state is down (see [`unavailable`]).
pub fn unavailable_response(ep: &str) -> Response {
    if ep == "commands" {
        let text = crate::shared::UNAVAILABLE_MESSAGE;
        return axum::Json(serde_json::json!({ "response_type": "ephemeral", "text": text }))
            .into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, "shared state unavailable").into_response()
}

/// Count a rejection everywhere it is counted.
pub fn reject(state: &AppState, ep: &'static str, r: Rejection) {
    state.metrics.request(ep, "unauthorized");
    state
        .metrics
        .signature_rejections
        .get_or_create(&crate::metrics::ReasonLabels { reason: r.as_str() })
        .inc();
    let now = state.clock.now();
    let mut tally = slipway_infra::sync::lock(&state.rejections);
    *tally
        .counts
        .entry(format!("{ep}:{}", r.as_str()))
        .or_default() += 1;
    tally.first.get_or_insert(now);
    tally.last = Some(now);
}

/// Rejections since the last audit record.
#[derive(Debug, Default)]
pub struct RejectionTally {
    counts: BTreeMap<String, u64>,
    first: Option<chrono::DateTime<chrono::Utc>>,
    last: Option<chrono::DateTime<chrono::Utc>>,
}

/// Write one aggregated `signature_rejected` record per interval in which anything was rejected,
/// so a flood of forged requests can't flood the audit trail.
pub fn start_rejection_flusher(state: &AppState, every: Duration) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            flush_rejections(&state).await;
        }
    });
}

/// Write the pending tally, if any.
pub async fn flush_rejections(state: &AppState) {
    let tally = std::mem::take(&mut *slipway_infra::sync::lock(&state.rejections));
    if tally.counts.is_empty() {
        return;
    }
    let total: u64 = tally.counts.values().sum();
    let record = AuditRecord::new(
        EventKind::SignatureRejected,
        state.ids.next(),
        state.clock.now(),
    )
    .with_details(serde_json::json!({
        "total": total,
        "by_endpoint_and_reason": tally.counts,
        "first": tally.first,
        "last": tally.last,
    }));
    let _ = state.record(record, "signature rejections").await;
}
