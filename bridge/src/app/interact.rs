//! `POST /slack/interactivity` (buttons, modals) and `POST /slack/events` (Events API).
//! Both ack at once; any reply goes out through `response_url` afterwards.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use slipway_core::audit::{Actor, AuditRecord, EventKind};

use super::AppState;
use super::ingress::Signed;
use crate::change::Submitted;
use crate::exec::queue::CancelError;
use crate::shared::{Refused, Ticket};
use crate::slack::client::Message;
use crate::slack::events::{
    BlockAction, EventsBody, Interaction, ViewSubmission, parse_events, parse_interaction,
};

/// The role that may cancel anyone's run.
const OWNER_ROLE: &str = "owner";

pub async fn interactivity(State(state): State<AppState>, signed: Signed) -> Response {
    if !signed.fresh {
        // The same trigger delivered again (to this or another replica): handled once.
        state.metrics.request("interactivity", "duplicate");
        return StatusCode::OK.into_response();
    }
    let interaction = match parse_interaction(&signed.body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "malformed interaction");
            state.metrics.request("interactivity", "malformed");
            return (StatusCode::BAD_REQUEST, "malformed interaction").into_response();
        }
    };
    if let Interaction::Other(kind) = &interaction {
        // Legacy message buttons, other apps' shortcuts, view_closed…: acknowledged, nothing done.
        tracing::debug!(%kind, "ignoring interaction");
        state.metrics.request("interactivity", "ignored");
        return StatusCode::OK.into_response();
    }
    match handle(&state, interaction, signed.ticket).await {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) | Err(Refused::Duplicate) => StatusCode::OK.into_response(),
        Err(Refused::Replayed) => StatusCode::UNAUTHORIZED.into_response(),
        Err(Refused::Unavailable) => super::ingress::unavailable_response("interactivity"),
    }
}

/// Act on an interaction after the ack (shared by HTTP and Socket Mode). A modal submission
/// may answer with validation errors, which Slack shows on the input. `ticket` is the gate's
/// deferred check: the destructive confirmation settles it in its own script (its ack's one
/// round trip); everything else settles it first.
pub async fn handle(
    state: &AppState,
    interaction: Interaction,
    ticket: Option<Ticket>,
) -> Result<Option<serde_json::Value>, Refused> {
    let destructive = matches!(&interaction, Interaction::ViewSubmission(v) if v.callback_id == "slipway_destructive");
    if !destructive || state.change.is_none() {
        super::ingress::settle(state, "interactivity", ticket.as_ref()).await?;
    }
    state.metrics.request("interactivity", "ok");
    Ok(match interaction {
        Interaction::Actions(actions) => {
            for action in actions {
                let state = state.clone();
                tokio::spawn(async move { on_action(&state, action).await });
            }
            None
        }
        Interaction::ViewSubmission(view) if view.callback_id == "slipway_destructive" => {
            submit_destructive(state, &view, ticket.as_ref()).await?
        }
        Interaction::ViewSubmission(view)
            if view.callback_id == "slipway_reject" || view.callback_id == "slipway_approve" =>
        {
            submit_review(state, view)
        }
        Interaction::ViewSubmission(view)
            if view.callback_id == crate::slack::surface::CHANGE_SHORTCUT =>
        {
            super::change_modal::submit(state, &view)
        }
        Interaction::Shortcut(shortcut) => {
            let state = state.clone();
            tokio::spawn(async move {
                if shortcut.callback_id == crate::slack::surface::CHANGE_SHORTCUT {
                    super::change_modal::open(&state, &shortcut).await;
                } else {
                    super::shortcuts::on_shortcut(&state, *shortcut).await;
                }
            });
            None
        }
        Interaction::ViewSubmission(_) | Interaction::Other(_) => None,
    })
}

/// The typed-confirmation modal for a destructive change. Answered inline: a wrong phrase must
/// show on the input before the modal closes.
async fn submit_destructive(
    state: &AppState,
    view: &ViewSubmission,
    gate: Option<&Ticket>,
) -> Result<Option<serde_json::Value>, Refused> {
    let Some(svc) = state.change.as_ref() else {
        return Ok(None);
    };
    let typed = view
        .values
        .get("confirm_text")
        .map(String::as_str)
        .unwrap_or_default();
    match svc
        .submit_confirmation(
            state,
            &view.private_metadata,
            &view.user.user_id,
            typed,
            gate,
        )
        .await
    {
        Submitted::Done => Ok(None),
        Submitted::Invalid(msg) => Ok(Some(
            serde_json::json!({"response_action": "errors", "errors": {"confirm": msg}}),
        )),
        Submitted::Refused(r) => Err(super::ingress::refused(state, "interactivity", r)),
    }
}

/// The Approve/Reject modal. Only a malformed dialog is answered inline; the review itself goes
/// to GitHub after the ack, so its outcome is posted through `response_url`.
fn submit_review(state: &AppState, view: ViewSubmission) -> Option<serde_json::Value> {
    let svc = state.change.clone()?;
    let approve = view.callback_id == "slipway_approve";
    let (block, input, button) = if approve {
        ("comment", "approve_comment", "Approve")
    } else {
        ("reason", "reject_reason", "Reject")
    };
    let Ok(ctx) = serde_json::from_str::<crate::change::ReviewContext>(&view.private_metadata)
    else {
        return Some(
            serde_json::json!({"response_action": "errors", "errors": {block: format!("This dialog is malformed; click {button} again.")}}),
        );
    };
    let text = view.values.get(input).cloned().unwrap_or_default();
    let state = state.clone();
    tokio::spawn(async move {
        let reply = match svc
            .review_from_slack(
                &state,
                &view.user,
                ctx.pr,
                approve,
                &text,
                ctx.head_sha.as_deref(),
            )
            .await
        {
            Ok(done) => done,
            Err(why) => format!(":no_entry: {why}"),
        };
        respond(&state, Some(&ctx.response_url), reply).await;
    });
    None
}

async fn on_action(state: &AppState, action: BlockAction) {
    match (action.action_id.as_str(), &state.change) {
        ("slipway_cancel", _) => cancel_run(state, &action).await,
        (super::commands::EXPLAIN_BUTTON, _) => {
            super::shortcuts::explain_clicked(state, &action).await;
        }
        (super::home::WITHDRAW, _) => super::home::withdraw_clicked(state, &action).await,
        (crate::reads::share::ACTION, _) => {
            let reply = match crate::reads::share::share(state, &action).await {
                Ok(done) => format!(":white_check_mark: {done}"),
                Err(why) => format!(":no_entry: {why}"),
            };
            respond(state, action.response_url.as_deref(), reply).await;
        }
        ("slipway_confirm", Some(svc)) => {
            svc.confirm(
                state,
                &action.value,
                &action.user.user_id,
                &action.trigger_id,
                action.response_url.as_deref(),
            )
            .await;
        }
        // Approve and Reject open a modal first; its submission makes the review.
        (id @ ("slipway_approve" | "slipway_reject"), Some(svc)) => {
            let refused = match crate::change::parse_review_value(&action.value) {
                Some((n, shown_head)) => svc
                    .open_review_modal(state, &action, n, id == "slipway_approve", shown_head)
                    .await
                    .err(),
                None => Some("That button is malformed.".to_string()),
            };
            if let Some(why) = refused {
                respond(
                    state,
                    action.response_url.as_deref(),
                    format!(":no_entry: {why}"),
                )
                .await;
            }
        }
        (super::rollback::ACTION, Some(svc)) => {
            let reply = super::rollback::clicked(state, svc, &action).await;
            respond(state, action.response_url.as_deref(), reply).await;
        }
        _ => tracing::debug!(action = %action.action_id, "ignoring action"),
    }
}

/// The Cancel button on a running command. Only the runner of the command or an owner may stop
/// it; every click is audited, refused or not.
async fn cancel_run(state: &AppState, action: &BlockAction) {
    let who = state.who(&action.user).await;
    let identity = who.identity();
    let policy = state.policy();
    let role = identity.and_then(|i| policy.primary_role(i));
    let is_owner = role == Some(OWNER_ROLE);
    let result = state
        .runs
        .cancel(&action.value, &action.user.user_id, is_owner)
        .await;
    let reply = match &result {
        Ok(()) => "Cancelling: the command's whole process group is being stopped.".to_string(),
        Err(CancelError::NotAllowed) => {
            "Only the person who ran this command, or an owner, can cancel it.".to_string()
        }
        Err(CancelError::NotRunning) => "That command is no longer running.".to_string(),
        Err(CancelError::Unavailable) => crate::shared::UNAVAILABLE_MESSAGE.to_string(),
    };
    let record = AuditRecord::new(EventKind::Cancellation, state.ids.next(), state.clock.now())
        .with_actor(Actor::slack(&action.user, identity, role))
        .with_details(serde_json::json!({
            "run_id": action.value,
            "result": match result { Ok(()) => "cancelled", Err(CancelError::NotAllowed) => "refused", Err(CancelError::NotRunning) => "not_running", Err(CancelError::Unavailable) => "shared_state_unavailable" },
        }));
    let _ = state.record(record, "a cancel click").await;
    if let Some(url) = action.response_url.as_deref().filter(|u| !u.is_empty()) {
        let mut msg = Message::text(reply);
        msg.blocks.clear();
        if let Err(e) = state.slack.respond(url, &msg, false).await {
            tracing::warn!(error = %e, "response_url failed");
        }
    }
}

/// An ephemeral reply through a `response_url`, if there is one.
async fn respond(state: &AppState, url: Option<&str>, text: String) {
    if let Some(url) = url.filter(|u| !u.is_empty())
        && let Err(e) = state.slack.respond(url, &Message::text(text), false).await
    {
        tracing::warn!(error = %e, "response_url failed");
    }
}

pub async fn events(State(state): State<AppState>, signed: Signed) -> Response {
    match parse_events(&signed.body) {
        Ok(EventsBody::UrlVerification { challenge }) => {
            state.metrics.request("events", "url_verification");
            Json(serde_json::json!({ "challenge": challenge })).into_response()
        }
        Ok(EventsBody::Callback {
            event_id,
            event_type,
            event,
        }) => {
            let fresh = signed.fresh;
            state
                .metrics
                .request("events", if fresh { "ok" } else { "duplicate" });
            if fresh {
                tracing::debug!(%event_id, %event_type, "event received");
                super::slack_events::on_event(&state, &event).await;
            }
            StatusCode::OK.into_response()
        }
        Ok(EventsBody::Other(kind)) => {
            tracing::debug!(%kind, "ignoring event envelope");
            state.metrics.request("events", "ignored");
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "malformed event");
            state.metrics.request("events", "malformed");
            (StatusCode::BAD_REQUEST, "malformed event").into_response()
        }
    }
}
