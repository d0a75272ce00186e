//! *Open a change request…* (the global shortcut `slipway_change`): a modal that builds a
//! `/deploy` or a `/kubectl scale` line, then hands it to the slash-command pipeline as the
//! person who submitted it, so it is parsed, decided and audited exactly like the typed command
//! (a dry run first, with its Confirm). The channel picker's `response_url` is where the answer
//! and the dry run go, to that person alone.

use serde_json::{Value, json};
use slipway_core::command::parse;

use super::AppState;
use crate::slack::events::{SlashCommand, ViewSubmission};
use crate::slack::surface::{CHANGE_SHORTCUT, Shortcut};

/// Open the modal (within the trigger's 3 s).
pub(super) async fn open(state: &AppState, s: &Shortcut) {
    if let Err(e) = state.slack.open_view(&s.trigger_id, modal()).await {
        tracing::warn!(error = %e, "opening the change request modal failed");
    }
}

fn input(block: &str, label: &str, element: &Value, optional: bool) -> Value {
    json!({"type": "input", "block_id": block, "optional": optional,
        "label": {"type": "plain_text", "text": label}, "element": element})
}

fn text_input(action: &str, placeholder: &str) -> Value {
    json!({"type": "plain_text_input", "action_id": action, "max_length": 200,
        "placeholder": {"type": "plain_text", "text": placeholder}})
}

/// The modal: what kind of change, its fields, and where to answer.
pub fn modal() -> Value {
    let option = |text: &str, value: &str| json!({"text": {"type": "plain_text", "text": text}, "value": value});
    let kind = json!({"type": "static_select", "action_id": "change_kind",
        "initial_option": option("Deploy a service (/deploy)", "deploy"),
        "options": [option("Deploy a service (/deploy)", "deploy"), option("Scale a deployment (/kubectl scale)", "scale")]});
    let channel = json!({"type": "conversations_select", "action_id": "change_channel",
        "response_url_enabled": true, "default_to_current_conversation": true,
        "filter": {"include": ["public", "private"], "exclude_bot_users": true}});
    json!({
        "type": "modal",
        "callback_id": CHANGE_SHORTCUT,
        "title": {"type": "plain_text", "text": "Change request"},
        "submit": {"type": "plain_text", "text": "Dry run"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "Slipway builds the command, decides it under policy as you and shows you its dry run with a *Confirm* button, as if you had typed it."}},
            input("kind", "Change", &kind, false),
            input("name", "Service (deploy) or deployment (scale)", &text_input("change_name", "api"), false),
            input("where", "Environment (deploy) or namespace (scale)", &text_input("change_where", "staging"), false),
            input("amount", "Version (deploy, optional) or replicas (scale)", &text_input("change_amount", "v2.0.0 or 3"), true),
            input("cluster", "Cluster alias (scale, optional)", &text_input("change_cluster", "staging"), true),
            input("channel", "Answer me in", &channel, false),
        ]
    })
}

/// The command line the form describes, or the field to flag and why.
pub fn command_line(
    values: &std::collections::BTreeMap<String, String>,
) -> Result<(String, String), (&'static str, String)> {
    let get = |k: &str| {
        values
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (kind, name, place, amount, cluster) = (
        get("change_kind"),
        get("change_name"),
        get("change_where"),
        get("change_amount"),
        get("change_cluster"),
    );
    for (block, v) in [
        ("name", &name),
        ("where", &place),
        ("amount", &amount),
        ("cluster", &cluster),
    ] {
        if v.contains(char::is_whitespace) {
            return Err((block, "One word, please: no spaces.".into()));
        }
    }
    let (command, text) = match kind.as_str() {
        "deploy" => (
            "/deploy",
            format!("{name} {place} {amount}").trim().to_string(),
        ),
        "scale" if amount.is_empty() => return Err(("amount", "How many replicas?".into())),
        "scale" => {
            let at = if cluster.is_empty() {
                String::new()
            } else {
                format!("@{cluster} ")
            };
            (
                "/kubectl",
                format!("{at}scale deployment/{name} --replicas={amount} -n {place}"),
            )
        }
        _ => return Err(("kind", "Choose a kind of change.".into())),
    };
    if let Err(e) = parse(command, &text) {
        return Err(("name", e.to_string().chars().take(150).collect()));
    }
    Ok((command.to_string(), text))
}

/// The submission: errors shown on the form, or the command handed to the pipeline after the
/// ack (its answer and dry run go through the picked channel's `response_url`).
pub(super) fn submit(state: &AppState, view: &ViewSubmission) -> Option<Value> {
    let (command, text) = match command_line(&view.values) {
        Ok(line) => line,
        Err((block, why)) => {
            return Some(json!({"response_action": "errors", "errors": {block: why}}));
        }
    };
    let Some((channel, response_url)) = view.response_urls.first().cloned() else {
        return Some(
            json!({"response_action": "errors", "errors": {"channel": "Pick a conversation to answer in."}}),
        );
    };
    let cmd = SlashCommand {
        command,
        text,
        user: view.user.clone(),
        user_name: String::new(),
        channel_id: channel,
        response_url: response_url.clone(),
        trigger_id: String::new(),
        thread_ts: None,
    };
    let state = state.clone();
    tokio::spawn(async move {
        let msg = super::commands::pipeline(&state, cmd).await;
        super::commands::reply(&state, Some(&response_url), msg).await;
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn builds_the_typed_commands() {
        let deploy = form(&[
            ("change_kind", "deploy"),
            ("change_name", "api"),
            ("change_where", "staging"),
            ("change_amount", "v2.0.0"),
        ]);
        assert_eq!(
            command_line(&deploy).unwrap(),
            ("/deploy".into(), "api staging v2.0.0".into())
        );
        let scale = form(&[
            ("change_kind", "scale"),
            ("change_name", "api"),
            ("change_where", "web"),
            ("change_amount", "3"),
            ("change_cluster", "staging"),
        ]);
        assert_eq!(
            command_line(&scale).unwrap(),
            (
                "/kubectl".into(),
                "@staging scale deployment/api --replicas=3 -n web".into()
            )
        );
        let spaced = form(&[
            ("change_kind", "deploy"),
            ("change_name", "api; rm"),
            ("change_where", "staging"),
        ]);
        assert_eq!(command_line(&spaced).unwrap_err().0, "name");
        let no_replicas = form(&[
            ("change_kind", "scale"),
            ("change_name", "api"),
            ("change_where", "web"),
        ]);
        assert_eq!(command_line(&no_replicas).unwrap_err().0, "amount");
    }
}
