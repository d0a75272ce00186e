//! The Roll back button under a runner report of a failed rollout. A click becomes an ordinary
//! `/deploy <service> <env> <previous version> --apply --rollback-of <PR>` made by the clicker:
//! the same policy and audit as a typed command (with the rules' `rollback_approvers`), so the
//! button grants nobody anything. What it checks is in `change::rollback`.

use std::sync::Arc;

use slipway_core::audit::{Actor, AuditRecord, EventKind, PullRequest};

use super::AppState;
use crate::change::ChangeService;
use crate::change::rollback::Target;
use crate::slack::events::{BlockAction, SlashCommand};

/// The button's action id.
pub const ACTION: &str = "slipway_rollback";

pub use crate::change::rollback::FAILED_MARKER;

/// The Roll back button for PR `number`'s failed rollout.
pub fn button(number: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "action_id": ACTION,
            "style": "danger",
            "text": { "type": "plain_text", "text": "Roll back" },
            "value": number.to_string(),
        }],
    })
}

/// A click: checks, the rollback record, then the `/deploy` as the clicker. The reply goes to
/// the clicker only.
pub async fn clicked(state: &AppState, svc: &Arc<ChangeService>, action: &BlockAction) -> String {
    let Ok(number) = action.value.parse::<u64>() else {
        return ":no_entry: That Roll back button is malformed.".into();
    };
    let target = match svc.rollback_target(number).await {
        Ok(t) => t,
        Err(why) => return format!(":no_entry: {why}"),
    };
    if state
        .record(record(state, svc, action, number, &target), "the roll back")
        .await
        .is_err()
    {
        return format!(
            "Slipway can't write its audit trail right now, so nothing was rolled back. Please \
             tell {}.",
            state.policy().support()
        );
    }
    let d = &target.deploy;
    let version = d.version.clone().unwrap_or_default();
    let cmd = SlashCommand {
        command: "/deploy".into(),
        text: format!(
            "{} {} {version} --apply --rollback-of {number}",
            d.service, d.env
        ),
        user: action.user.clone(),
        user_name: String::new(),
        channel_id: action.channel_id.clone().unwrap_or_default(),
        response_url: action.response_url.clone().unwrap_or_default(),
        trigger_id: action.trigger_id.clone(),
        thread_ts: None,
    };
    match super::commands::handle(state, cmd, None).await {
        Ok(reply) => reply
            .0
            .get("text")
            .and_then(serde_json::Value::as_str)
            .map_or_else(
                || "The roll back was asked for.".to_string(),
                |t| format!("Rolling {} in {} back to {version}: {t}", d.service, d.env),
            ),
        Err(_) => "That click was already handled.".into(),
    }
}

fn record(
    state: &AppState,
    svc: &ChangeService,
    action: &BlockAction,
    number: u64,
    t: &Target,
) -> AuditRecord {
    AuditRecord::new(EventKind::Rollback, state.ids.next(), state.clock.now())
        .with_actor(Actor {
            slack_user_id: Some(action.user.user_id.clone()),
            ..Actor::default()
        })
        .with_change_id(t.failed.clone())
        .with_pr(PullRequest {
            repo: svc.cfg.repo.to_string(),
            number,
            head_sha: None,
            merge_sha: Some(t.merge_sha.clone()),
        })
        .with_details(serde_json::json!({
            "service": t.deploy.service,
            "env": t.deploy.env,
            "to_version": t.deploy.version,
        }))
}
