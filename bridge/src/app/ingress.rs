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
use crate::slack::signature::{Rejection, verify};

/// Largest request body accepted (Slack's payloads are far smaller).
pub const MAX_BODY: usize = 64 * 1024;

/// A request body whose Slack signature checked out (or an unsigned `ssl_check` probe, which
/// carries no data and triggers nothing).
#[derive(Debug)]
pub struct Signed {
    pub body: Bytes,
    pub ssl_check: bool,
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
            });
        }
        let now = state.clock.unix();
        let secret = state.config.slack.signing_secret.expose().as_bytes();
        let result = verify(secret, ts, sig, &body, now).and_then(|seen| {
            if state.replay.first_time(&seen, now) {
                Ok(())
            } else {
                Err(Rejection::Replayed)
            }
        });
        match result {
            Ok(()) => Ok(Signed {
                body,
                ssl_check: false,
            }),
            Err(r) => {
                reject(state, ep, r);
                Err(StatusCode::UNAUTHORIZED.into_response())
            }
        }
    }
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
