//! The App Home: `app_home_opened` → `views.publish`, for the person looking.
//!
//! It shows who they are (identity, groups, role) and what their roles grant; the change
//! requests waiting for *their* approval, with Approve and Reject; their own open requests, with
//! status, approvals, expiry and Withdraw; the locks open requests hold on resources they can
//! change; and their last runs. Requests are read from GitHub and verified, as everywhere else.
//! It is republished when something they care about changes (a run of theirs ends, a change
//! request moves), for people who opened it within the hour, at most one publish per 700 ms
//! (`views.publish` is Tier 4, 100+ a minute); opened again within 5 s with nothing changed, it
//! is not read and published again.

use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::command::parse_line;
use slipway_core::policy::{Identity, Outcome, SlackUser, decide_as};

use super::AppState;
use crate::change::OpenRequest;
use crate::identity::Resolved;

/// The Withdraw button's action id (its value is the PR number).
pub const WITHDRAW: &str = "slipway_withdraw";
/// Requests shown per list (each takes two blocks of the view's hundred).
const PER_LIST: usize = 10;
/// Slack's section text limit, less room for a note.
const SECTION: usize = 2900;
/// Spacing between publishes when many App Homes are out of date.
const PUBLISH_GAP: Duration = Duration::from_millis(700);

/// Publish `user_id`'s App Home now, with `notice` (the outcome of a click there) on top.
pub(super) async fn publish(state: &AppState, user_id: &str, notice: Option<&str>) {
    let mut view = build(state, user_id).await;
    if let (Some(notice), Some(blocks)) = (notice, view["blocks"].as_array_mut()) {
        blocks.insert(1, section(notice));
    }
    match state.slack.publish_home(user_id, view).await {
        Ok(()) => state.recent.published(user_id),
        Err(e) => {
            state.recent.unpublished(user_id);
            tracing::warn!(error = %e, "publishing an App Home failed");
        }
    }
}

/// Republish the App Homes that went out of date, one at a time, for as long as the bridge runs.
pub(super) fn start_refresher(state: &AppState) {
    let weak = std::sync::Arc::downgrade(&state.inner);
    let changes = state.recent.changes();
    tokio::spawn(async move {
        loop {
            changes.notified().await;
            let Some(inner) = weak.upgrade() else { break };
            let state = AppState { inner };
            for user in state.recent.take_stale() {
                publish(&state, &user, None).await;
                tokio::time::sleep(PUBLISH_GAP).await;
            }
        }
    });
}

async fn build(state: &AppState, user_id: &str) -> Value {
    let user = SlackUser::new(user_id);
    let who = state.who(&user).await;
    let mut blocks =
        vec![json!({"type": "header", "text": {"type": "plain_text", "text": "Slipway"}})];
    blocks.push(section(&who_text(state, &who, user_id)));
    if let Some(identity) = who.identity() {
        blocks.extend(requests(state, &user, identity).await);
    }
    blocks.push(json!({"type": "divider"}));
    blocks.push(section(&runs_text(state, user_id)));
    json!({"type": "home", "blocks": blocks})
}

fn section(text: &str) -> Value {
    let mut text: String = text.chars().take(SECTION).collect();
    if text.is_empty() {
        text.push(' ');
    }
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Who they are and what their roles grant (policy's rules, as `slipway policy explain`
/// judges them).
fn who_text(state: &AppState, who: &Resolved, user_id: &str) -> String {
    let policy = state.policy();
    let Some(i) = who.identity() else {
        let why = match who {
            Resolved::Refused(reason) => reason.clone(),
            Resolved::Unknown(Some(hint)) => format!("Slipway doesn't know you yet: {hint}"),
            _ => "Slipway doesn't know you yet.".into(),
        };
        return format!(
            "*You* (Slack <@{user_id}>): {why}. Ask {}.",
            policy.support()
        );
    };
    let groups = if i.groups.is_empty() {
        "none".to_string()
    } else {
        i.groups.join(", ")
    };
    let role = policy.primary_role(i).unwrap_or("none (ask for access)");
    let grants = policy.grants(i);
    let grants = if grants.is_empty() {
        "nothing yet".to_string()
    } else {
        grants
            .iter()
            .map(|g| format!("• {g}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "*You are {}* (Slack <@{user_id}>) · groups: {groups} · role: *{role}*\n*What your roles grant* (rule: commands · tiers · resources; ACLs and protected resources may narrow them, so check one with `/slipway explain <command>`):\n{grants}",
        i.subject
    )
}

fn runs_text(state: &AppState, user_id: &str) -> String {
    let runs = state.recent.runs(user_id);
    if runs.is_empty() {
        return "*Your recent runs*\nNone since Slipway last started.".into();
    }
    let lines: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "• `{}` on {} {} ({})",
                r.text,
                r.target,
                r.outcome,
                r.at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    format!("*Your recent runs*\n{}", lines.join("\n"))
}

/// The change-request lists, or a line saying why there are none.
async fn requests(state: &AppState, user: &SlackUser, identity: &Identity) -> Vec<Value> {
    let Some(svc) = &state.change else {
        return Vec::new();
    };
    let open = match svc.open_requests(state).await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(error = %e, "reading change requests for an App Home");
            return vec![section(
                "Slipway couldn't read the change requests from GitHub just now; open this tab again in a minute.",
            )];
        }
    };
    let now = state.clock.now();
    let mut blocks = vec![json!({"type": "divider"})];
    let waiting: Vec<&OpenRequest> = open.iter().filter(|r| r.awaits(identity, now)).collect();
    blocks.push(section(&format!(
        "*Waiting for your approval* ({})",
        waiting.len()
    )));
    for r in waiting.iter().take(PER_LIST) {
        blocks.push(section(&r.status_line()));
        let value = crate::change::approve_value(r.pr.number, &r.pr.head_sha);
        blocks.push(buttons(&[
            ("Approve", "slipway_approve", &value, Some("primary")),
            ("Reject", "slipway_reject", &value, None),
        ]));
    }
    let mine: Vec<&OpenRequest> = open
        .iter()
        .filter(|r| r.cr.requester.subject == identity.subject)
        .collect();
    blocks.push(section(&format!("*Your open requests* ({})", mine.len())));
    for r in mine.iter().take(PER_LIST) {
        blocks.push(section(&r.status_line()));
        let n = r.pr.number.to_string();
        blocks.push(buttons(&[("Withdraw", WITHDRAW, &n, Some("danger"))]));
    }
    blocks.push(section(&locks_text(state, user, identity, &open)));
    blocks
}

fn buttons(list: &[(&str, &str, &str, Option<&str>)]) -> Value {
    let elements: Vec<Value> = list
        .iter()
        .map(|(text, action, value, style)| {
            let mut b = json!({"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action, "value": value});
            if let Some(s) = style {
                b["style"] = json!(s);
            }
            b
        })
        .collect();
    json!({"type": "actions", "elements": elements})
}

/// The locks open requests hold on resources this person could change too (their request's
/// command would not be denied to them).
fn locks_text(
    state: &AppState,
    user: &SlackUser,
    identity: &Identity,
    open: &[OpenRequest],
) -> String {
    let policy = state.policy();
    let lines: Vec<String> = open
        .iter()
        .filter(|r| {
            let parsed = parse_line(&r.cr.command.text);
            let scopes = slipway_core::command::kubectl::KindScopes::builtin();
            decide_as(&policy, user, Some(identity), &parsed, scopes).outcome != Outcome::Deny
        })
        .take(PER_LIST)
        .map(|r| {
            format!(
                "• `{}` locked by <{}|PR #{}> (<@{}>) until it merges, closes or expires at {}",
                r.cr.resource,
                r.pr.html_url,
                r.pr.number,
                r.cr.requester.slack_user_id,
                r.cr.expires_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect();
    if lines.is_empty() {
        "*Locks on resources you can change*\nNone.".into()
    } else {
        format!("*Locks on resources you can change*\n{}", lines.join("\n"))
    }
}

/// Withdraw clicked on an App Home: the request withdrawn as the clicker (requester or owner
/// only, `ChangeService::withdraw`), and their App Home republished with the outcome on top.
pub(super) async fn withdraw_clicked(state: &AppState, action: &crate::slack::events::BlockAction) {
    let outcome = match (&state.change, action.value.parse::<u64>()) {
        (None, _) => Err("This bridge has no GitOps repository configured.".to_string()),
        (_, Err(_)) => Err("That button is malformed.".to_string()),
        (Some(svc), Ok(n)) => svc.withdraw(state, &action.user, n).await,
    };
    let notice = match outcome {
        Ok(done) => format!(":white_check_mark: {done}"),
        Err(why) => format!(":no_entry: {why}"),
    };
    let msg = crate::slack::client::Message::text(notice.clone());
    super::commands::reply(state, action.response_url.as_deref(), msg).await;
    publish(state, &action.user.user_id, Some(&notice)).await;
    state.recent.mark_all();
}
