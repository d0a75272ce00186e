//! Message shortcuts and the Explain button, after the interaction's ack.
//!
//! Slack offers message shortcuts only on messages people can see in the channel, so:
//! - *Explain with Slipway* (`slipway_explain`) on any message that quotes a Slipway command
//!   opens a modal with the policy's decision for the clicker (the trigger id lasts 3 s: the
//!   explanation is local, so the modal opens well within it);
//! - *Run again* (`slipway_run_again`) on a Slipway result runs the command it shows again, as
//!   the clicker, decided for them;
//! - denials and errors are ephemeral, so they carry an **Explain** button instead
//!   ([`super::commands::EXPLAIN_BUTTON`]), answered to the clicker through the `response_url`.
//!
//! Every path goes through the slash-command pipeline (`commands::handle`) as the clicker:
//! an explanation is `/slipway explain <command>`, a run again is the command itself.

use serde_json::{Value, json};

use super::AppState;
use crate::slack::client::Message;
use crate::slack::events::{BlockAction, SlashCommand};
use crate::slack::surface::{EXPLAIN_SHORTCUT, RUN_AGAIN_SHORTCUT, Shortcut, quoted_command};

/// Act on one of Slipway's shortcuts (spawned after the ack).
pub(super) async fn on_shortcut(state: &AppState, s: Shortcut) {
    match s.callback_id.as_str() {
        EXPLAIN_SHORTCUT => explain_modal(state, &s).await,
        RUN_AGAIN_SHORTCUT => run_again(state, &s).await,
        _ => tracing::debug!(callback = %s.callback_id, "ignoring a shortcut"),
    }
}

/// `/slipway explain <line>` through the pipeline, as `user`: the answer's text.
async fn explain_for(
    state: &AppState,
    user: &slipway_core::policy::SlackUser,
    channel: &str,
    line: &str,
) -> String {
    let cmd = SlashCommand {
        command: "/slipway".into(),
        text: format!("explain {line}"),
        user: user.clone(),
        user_name: String::new(),
        channel_id: channel.to_string(),
        response_url: String::new(),
        trigger_id: String::new(),
        thread_ts: None,
    };
    super::commands::pipeline(state, cmd).await.text
}

async fn explain_modal(state: &AppState, s: &Shortcut) {
    let channel = s.channel_id.as_deref().unwrap_or_default();
    let text = match quoted_command(&s.message_text) {
        Some(line) => explain_for(state, &s.user, channel, &line).await,
        None => "This message quotes no Slipway command. *Explain with Slipway* works on messages that show one, such as `/kubectl get pods -n web`.".into(),
    };
    if let Err(e) = state
        .slack
        .open_view(&s.trigger_id, info_modal("Slipway explains", &text))
        .await
    {
        tracing::warn!(error = %e, "opening the explanation failed");
    }
}

/// A modal that only shows text.
pub(super) fn info_modal(title: &str, text: &str) -> Value {
    let text: String = text.chars().take(super::commands::SECTION).collect();
    json!({
        "type": "modal",
        "callback_id": "slipway_info",
        "title": {"type": "plain_text", "text": title},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    })
}

/// The Explain button on a denial: the explanation, to the clicker alone.
pub(super) async fn explain_clicked(state: &AppState, action: &BlockAction) {
    let channel = action.channel_id.as_deref().unwrap_or_default();
    let text = explain_for(state, &action.user, channel, &action.value).await;
    super::commands::reply(state, action.response_url.as_deref(), Message::text(text)).await;
}

/// *Run again*: the command a Slipway result shows, as the clicker, through the pipeline; the
/// ack's answer goes to them alone.
async fn run_again(state: &AppState, s: &Shortcut) {
    let Some(line) = quoted_command(&s.message_text) else {
        let msg = Message::text("This message shows no Slipway command to run again.");
        return super::commands::reply(state, s.response_url.as_deref(), msg).await;
    };
    let (command, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    let cmd = SlashCommand {
        command: command.to_string(),
        text: text.to_string(),
        user: s.user.clone(),
        user_name: String::new(),
        channel_id: s.channel_id.clone().unwrap_or_default(),
        response_url: s.response_url.clone().unwrap_or_default(),
        trigger_id: s.trigger_id.clone(),
        thread_ts: None,
    };
    let msg = super::commands::pipeline(state, cmd).await;
    super::commands::reply(state, s.response_url.as_deref(), msg).await;
}
