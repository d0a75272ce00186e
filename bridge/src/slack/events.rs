//! Domain events parsed from verified Slack payloads. Handlers see these, never raw bodies.
//! Parsing is defensive: a malformed payload is an error value, never a panic.

use std::collections::BTreeMap;

use serde::Deserialize;
use slipway_core::policy::SlackUser;

use super::surface::{RawIdObj, RawUser};

/// A slash command invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub command: String,
    pub text: String,
    pub user: SlackUser,
    pub user_name: String,
    pub channel_id: String,
    pub response_url: String,
    pub trigger_id: String,
    /// The thread to answer in, for a command that came from an `@slipway` mention (which has
    /// no `response_url`); `None` for a slash command.
    pub thread_ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    command: String,
    #[serde(default)]
    text: String,
    user_id: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    enterprise_id: Option<String>,
    channel_id: String,
    #[serde(default)]
    response_url: String,
    #[serde(default)]
    trigger_id: String,
}

/// What a verified body on `/slack/commands` turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    Command(Box<SlashCommand>),
    /// Slack's `ssl_check=1` probe.
    SslCheck,
}

fn empty_none(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.is_empty())
}

/// Parse a slash-command form body.
pub fn parse_command(body: &[u8]) -> Result<CommandBody, String> {
    let form: BTreeMap<String, String> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("not a form body: {e}"))?;
    if form.get("ssl_check").map(String::as_str) == Some("1") {
        return Ok(CommandBody::SslCheck);
    }
    let f: CommandForm =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("slash command form: {e}"))?;
    Ok(CommandBody::Command(Box::new(SlashCommand {
        command: f.command,
        text: f.text,
        user: SlackUser {
            user_id: f.user_id,
            team_id: empty_none(f.team_id),
            enterprise_id: empty_none(f.enterprise_id),
        },
        user_name: f.user_name,
        channel_id: f.channel_id,
        response_url: f.response_url,
        trigger_id: f.trigger_id,
        thread_ts: None,
    })))
}

/// A button click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAction {
    pub user: SlackUser,
    pub action_id: String,
    pub value: String,
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
    pub response_url: Option<String>,
    pub trigger_id: String,
}

/// A modal submission: the callback id, the private metadata, and each input's value by
/// action id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSubmission {
    pub user: SlackUser,
    pub callback_id: String,
    pub private_metadata: String,
    pub values: BTreeMap<String, String>,
    /// (channel, `response_url`) per conversation picker with `response_url_enabled`.
    pub response_urls: Vec<(String, String)>,
}

/// What arrived on `/slack/interactivity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    Actions(Vec<BlockAction>),
    ViewSubmission(ViewSubmission),
    /// One of Slipway's message or global shortcuts.
    Shortcut(Box<super::surface::Shortcut>),
    /// Anything else (view_closed, shortcuts…): acknowledged and ignored.
    Other(String),
}

#[derive(Debug, Deserialize)]
struct RawAction {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContainer {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawView {
    #[serde(default)]
    callback_id: String,
    #[serde(default)]
    private_metadata: String,
    #[serde(default)]
    state: Option<RawState>,
}

#[derive(Debug, Deserialize)]
struct RawState {
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The fields of the two interaction types Slipway acts on (`block_actions`,
/// `view_submission`). Other types are never deserialized into this, so their shapes (legacy
/// `interactive_message` attachments, shortcuts…) can't make a payload malformed.
#[derive(Debug, Deserialize)]
struct RawInteraction {
    user: RawUser,
    #[serde(default)]
    enterprise: Option<RawIdObj>,
    #[serde(default)]
    team: Option<RawIdObj>,
    #[serde(default)]
    actions: Vec<RawAction>,
    #[serde(default)]
    channel: Option<RawIdObj>,
    #[serde(default)]
    container: Option<RawContainer>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    trigger_id: String,
    #[serde(default)]
    view: Option<RawView>,
    #[serde(default)]
    response_urls: Vec<RawResponseUrl>,
}

#[derive(Debug, Deserialize)]
struct RawResponseUrl {
    channel_id: String,
    response_url: String,
}

/// Parse an interactivity body (`payload=<json>`).
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, String> {
    let form: BTreeMap<String, String> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("not a form body: {e}"))?;
    let payload = form.get("payload").ok_or("no payload field")?;
    let value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| format!("interaction payload: {e}"))?;
    parse_interaction_json(value)
}

/// Parse an interaction payload that is already JSON (HTTP `payload` field, or a Socket Mode
/// envelope's payload). The `type` is read first: only the types Slipway acts on must have
/// their shape, and anything else (including a payload with no type) is
/// [`Interaction::Other`], acknowledged and ignored.
pub fn parse_interaction_json(value: serde_json::Value) -> Result<Interaction, String> {
    let kind = match value.get("type") {
        Some(serde_json::Value::String(kind)) => kind.clone(),
        _ => return Ok(Interaction::Other(String::new())),
    };
    if matches!(kind.as_str(), "message_action" | "shortcut") {
        let ours = value
            .get("callback_id")
            .and_then(|c| c.as_str())
            .is_some_and(super::surface::is_ours);
        if !ours {
            return Ok(Interaction::Other(kind));
        }
        return super::surface::shortcut(value).map(|s| Interaction::Shortcut(Box::new(s)));
    }
    if !matches!(kind.as_str(), "block_actions" | "view_submission") {
        return Ok(Interaction::Other(kind));
    }
    let raw: RawInteraction =
        serde_json::from_value(value).map_err(|e| format!("{kind} payload: {e}"))?;
    let user = raw.slack_user();
    match kind.as_str() {
        "block_actions" => Ok(block_actions(raw, &user)),
        "view_submission" => view_submission(raw, user),
        other => Ok(Interaction::Other(other.to_string())),
    }
}

impl RawInteraction {
    /// Who acted. The team is the user's own, or the payload's top-level `team` when the user
    /// carries none, so a policy keyed on the team sees it either way.
    fn slack_user(&self) -> SlackUser {
        SlackUser {
            user_id: self.user.id.clone(),
            team_id: self
                .user
                .team_id
                .clone()
                .or_else(|| self.team.as_ref().and_then(|t| t.id.clone())),
            enterprise_id: self.enterprise.as_ref().and_then(|e| e.id.clone()),
        }
    }
}

/// One [`BlockAction`] per clicked element. The message and channel come from the container,
/// or from the top-level `message`/`channel` when the container lacks them, so the bridge can
/// always answer in the right place.
fn block_actions(raw: RawInteraction, user: &SlackUser) -> Interaction {
    let container = raw.container.unwrap_or(RawContainer {
        message_ts: None,
        channel_id: None,
    });
    let message_ts = container.message_ts.or_else(|| {
        raw.message
            .as_ref()
            .and_then(|m| m.get("ts"))
            .and_then(|t| t.as_str())
            .map(String::from)
    });
    let channel_id = container
        .channel_id
        .or_else(|| raw.channel.and_then(|c| c.id));
    Interaction::Actions(
        raw.actions
            .into_iter()
            .map(|a| BlockAction {
                user: user.clone(),
                action_id: a.action_id,
                value: a.value.unwrap_or_default(),
                channel_id: channel_id.clone(),
                message_ts: message_ts.clone(),
                response_url: raw.response_url.clone(),
                trigger_id: raw.trigger_id.clone(),
            })
            .collect(),
    )
}

/// A modal submission; a `view_submission` without its view is malformed.
fn view_submission(raw: RawInteraction, user: SlackUser) -> Result<Interaction, String> {
    let view = raw.view.ok_or("view_submission without view")?;
    Ok(Interaction::ViewSubmission(ViewSubmission {
        user,
        callback_id: view.callback_id,
        private_metadata: view.private_metadata,
        values: input_values(view.state),
        response_urls: raw
            .response_urls
            .into_iter()
            .map(|r| (r.channel_id, r.response_url))
            .collect(),
    }))
}

/// Each input's value by action id, flattened across blocks: a text input's `value`, or a
/// select's `selected_option.value` (empty when neither is set).
fn input_values(state: Option<RawState>) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for block in state.map(|s| s.values).unwrap_or_default().into_values() {
        for (action_id, v) in block {
            let text = v
                .get("value")
                .and_then(|x| x.as_str())
                .or_else(|| {
                    v.get("selected_option")
                        .and_then(|o| o.get("value"))
                        .and_then(|x| x.as_str())
                })
                .or_else(|| v.get("selected_conversation").and_then(|x| x.as_str()))
                .unwrap_or_default();
            values.insert(action_id, text.to_string());
        }
    }
    values
}

/// What arrived on `/slack/events`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventsBody {
    UrlVerification {
        challenge: String,
    },
    Callback {
        event_id: String,
        event_type: String,
        event: serde_json::Value,
    },
    Other(String),
}

/// Slack's `user_change`: a profile edit, or an admin deactivating (`deleted: true`) someone.
/// Parsed with slack-morphism's own event types, so the shape is Slack's, not ours.
pub fn user_change(event: &serde_json::Value) -> Option<crate::slack::users::SlackPerson> {
    use slack_morphism::prelude::SlackEventCallbackBody;
    match serde_json::from_value::<SlackEventCallbackBody>(event.clone()) {
        Ok(SlackEventCallbackBody::UserChange(e)) => Some(e.user.into()),
        _ => None,
    }
}

/// Parse an Events API body (JSON).
pub fn parse_events(body: &[u8]) -> Result<EventsBody, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("events body: {e}"))?;
    match v.get("type").and_then(|t| t.as_str()) {
        Some("url_verification") => Ok(EventsBody::UrlVerification {
            challenge: v
                .get("challenge")
                .and_then(|c| c.as_str())
                .ok_or("url_verification without challenge")?
                .to_string(),
        }),
        Some("event_callback") => {
            let event_id = v
                .get("event_id")
                .and_then(|c| c.as_str())
                .ok_or("event_callback without event_id")?
                .to_string();
            let event = v.get("event").cloned().unwrap_or_default();
            let event_type = event
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_string();
            Ok(EventsBody::Callback {
                event_id,
                event_type,
                event,
            })
        }
        Some(other) => Ok(EventsBody::Other(other.to_string())),
        None => Err("events body has no type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented `user_change` example, with the account deactivated.
    #[test]
    fn user_change_from_slacks_example() {
        let event = serde_json::json!({
            "type": "user_change",
            "user": {
                "id": "U0DANA", "team_id": "T1", "name": "dana", "deleted": true,
                "profile": {"email": "dana@example.com", "real_name": "Dana"},
                "is_bot": false, "updated": 1_700_000_000
            },
            "cache_ts": 1_700_000_000,
            "event_ts": "1700000000.000100"
        });
        let p = user_change(&event).unwrap();
        assert_eq!(
            (p.id.as_str(), p.deleted, p.email.as_deref()),
            ("U0DANA", true, Some("dana@example.com"))
        );
        assert_eq!(
            user_change(&serde_json::json!({"type": "app_mention"})),
            None
        );
        assert_eq!(
            user_change(&serde_json::json!({"type": "user_change"})),
            None
        );
    }

    #[test]
    fn slash_command() {
        let body = b"command=%2Fkubectl&text=get+pods+-n+web&user_id=U0VIEWER&user_name=vera&team_id=T1&enterprise_id=&channel_id=C1&response_url=http%3A%2F%2Fx%2Fr&trigger_id=t.1";
        let CommandBody::Command(c) = parse_command(body).unwrap() else {
            panic!()
        };
        assert_eq!(c.text, "get pods -n web");
        assert_eq!(c.user.user_id, "U0VIEWER");
        assert_eq!(c.user.enterprise_id, None);
        assert_eq!(
            parse_command(b"ssl_check=1&token=x").unwrap(),
            CommandBody::SslCheck
        );
        assert!(parse_command(b"text=only").is_err());
        assert!(parse_command(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn interactions() {
        let payload = serde_json::json!({
            "type": "block_actions", "user": {"id": "U1", "team_id": "T1"}, "trigger_id": "tr",
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
            "response_url": "http://x", "actions": [{"action_id": "slipway_cancel", "value": "run-1"}]
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let Interaction::Actions(a) = parse_interaction(body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(a[0].value, "run-1");
        assert_eq!(a[0].message_ts.as_deref(), Some("1.2"));
        assert!(parse_interaction(b"payload=%7Bnot+json").is_err());
        assert!(parse_interaction(b"x=1").is_err());
    }

    /// A legacy message-button click: attachment actions carry `name`, not `action_id`.
    #[test]
    fn legacy_and_unknown_interactions_are_other_not_malformed() {
        let legacy = serde_json::json!({
            "type": "interactive_message",
            "actions": [{"name": "approve", "type": "button", "value": "yes"}],
            "callback_id": "deploy_approval",
            "team": {"id": "T1", "domain": "acme"},
            "channel": {"id": "C1", "name": "ops"},
            "user": {"id": "U1", "name": "omar"},
            "action_ts": "1531420618.1",
            "message_ts": "1531420600.000100",
            "attachment_id": "1",
            "token": "deprecated",
            "original_message": {"text": "Deploy?", "attachments": []},
            "response_url": "https://hooks.slack.com/actions/T1/1/abc",
            "trigger_id": "1.2.abc"
        });
        assert_eq!(
            parse_interaction_json(legacy).unwrap(),
            Interaction::Other("interactive_message".into())
        );
        assert_eq!(
            parse_interaction_json(serde_json::json!({"type": "shortcut", "callback_id": "x"}))
                .unwrap(),
            Interaction::Other("shortcut".into())
        );
        assert_eq!(
            parse_interaction_json(serde_json::json!({"user": {"id": "U1"}})).unwrap(),
            Interaction::Other(String::new())
        );
        // The types Slipway acts on must still have their shape.
        assert!(
            parse_interaction_json(serde_json::json!({"type": "block_actions", "actions": []}))
                .is_err()
        );
    }

    #[test]
    fn events() {
        assert_eq!(
            parse_events(br#"{"type":"url_verification","challenge":"abc"}"#).unwrap(),
            EventsBody::UrlVerification {
                challenge: "abc".into()
            }
        );
        assert!(matches!(
            parse_events(
                br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}"#
            )
            .unwrap(),
            EventsBody::Callback { .. }
        ));
        assert!(parse_events(b"{").is_err());
    }
}
