//! The Slack surfaces beyond slash commands, parsed from verified payloads: `app_mention` and
//! `app_home_opened` events, message and global shortcuts. Parsing is defensive (an error value,
//! never a panic) and keeps only what the bridge acts on.

use serde::Deserialize;
use slipway_core::policy::SlackUser;

/// The message shortcut that explains a quoted Slipway command to the clicker.
pub const EXPLAIN_SHORTCUT: &str = "slipway_explain";
/// The message shortcut that runs a Slipway result's command again, as the clicker.
pub const RUN_AGAIN_SHORTCUT: &str = "slipway_run_again";
/// The global shortcut whose modal builds a change request.
pub const CHANGE_SHORTCUT: &str = "slipway_change";

/// `@slipway …` in a channel: who, where, and the words after the mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub user: SlackUser,
    pub channel: String,
    /// The thread to answer in: the mention's `thread_ts` when it is in a thread, else its `ts`.
    pub thread_ts: String,
    /// The text with every `<@…>` mention taken out, trimmed.
    pub text: String,
}

#[derive(Debug, Deserialize)]
struct RawMention {
    user: String,
    #[serde(default)]
    team: Option<String>,
    channel: String,
    ts: String,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    bot_id: Option<String>,
}

/// An `app_mention` event, or `None` for any other event (or one a bot sent: the bridge never
/// answers bots, itself included).
pub fn mention(event: &serde_json::Value) -> Option<Mention> {
    if event.get("type").and_then(|t| t.as_str()) != Some("app_mention") {
        return None;
    }
    let raw: RawMention = serde_json::from_value(event.clone()).ok()?;
    if raw.bot_id.is_some() || raw.user.is_empty() || raw.channel.is_empty() {
        return None;
    }
    Some(Mention {
        user: SlackUser {
            user_id: raw.user,
            team_id: raw.team.filter(|t| !t.is_empty()),
            enterprise_id: None,
        },
        channel: raw.channel,
        thread_ts: raw.thread_ts.filter(|t| !t.is_empty()).unwrap_or(raw.ts),
        text: strip_mentions(&raw.text),
    })
}

/// The words of a message with `<@U…>` (and `<@U…|name>`) mentions removed.
fn strip_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `app_home_opened` on the Home tab: whose App Home to publish.
pub fn home_opened(event: &serde_json::Value) -> Option<String> {
    if event.get("type").and_then(|t| t.as_str()) != Some("app_home_opened") {
        return None;
    }
    // The Messages tab opens the same event; only the Home tab shows a published view.
    if event.get("tab").and_then(|t| t.as_str()) == Some("messages") {
        return None;
    }
    let user = event.get("user").and_then(|u| u.as_str())?;
    (!user.is_empty()).then(|| user.to_string())
}

/// A message shortcut (`message_action`) or a global one (`shortcut`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortcut {
    pub callback_id: String,
    pub user: SlackUser,
    pub trigger_id: String,
    /// The channel of the message (message shortcuts only).
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
    /// The message's text and its blocks' texts, for finding the command it quotes.
    pub message_text: String,
    pub response_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawUser {
    pub(super) id: String,
    #[serde(default)]
    pub(super) team_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawIdObj {
    pub(super) id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawShortcut {
    callback_id: String,
    trigger_id: String,
    user: RawUser,
    #[serde(default)]
    team: Option<RawIdObj>,
    #[serde(default)]
    enterprise: Option<RawIdObj>,
    #[serde(default)]
    channel: Option<RawIdObj>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    response_url: Option<String>,
}

/// Whether `callback_id` is one of Slipway's shortcuts (anything else is ignored, not
/// malformed).
pub fn is_ours(callback_id: &str) -> bool {
    matches!(
        callback_id,
        EXPLAIN_SHORTCUT | RUN_AGAIN_SHORTCUT | CHANGE_SHORTCUT
    )
}

/// Parse a `message_action` or `shortcut` payload whose callback id is Slipway's.
pub fn shortcut(value: serde_json::Value) -> Result<Shortcut, String> {
    let raw: RawShortcut =
        serde_json::from_value(value).map_err(|e| format!("shortcut payload: {e}"))?;
    let message_text = raw.message.as_ref().map(message_text).unwrap_or_default();
    let message_ts = raw.message_ts.or_else(|| {
        raw.message
            .as_ref()
            .and_then(|m| m.get("ts"))
            .and_then(|t| t.as_str())
            .map(String::from)
    });
    Ok(Shortcut {
        callback_id: raw.callback_id,
        user: SlackUser {
            user_id: raw.user.id,
            team_id: raw
                .user
                .team_id
                .or_else(|| raw.team.and_then(|t| t.id))
                .filter(|t| !t.is_empty()),
            enterprise_id: raw.enterprise.and_then(|e| e.id).filter(|e| !e.is_empty()),
        },
        trigger_id: raw.trigger_id,
        channel_id: raw.channel.and_then(|c| c.id),
        message_ts,
        message_text,
        response_url: raw.response_url.filter(|u| !u.is_empty()),
    })
}

/// A message's `text` and every `text` string inside its blocks, one per line.
fn message_text(message: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("text", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(t) = message.get("text").and_then(|t| t.as_str()) {
        out.push(t.to_string());
    }
    if let Some(blocks) = message.get("blocks") {
        walk(blocks, &mut out);
    }
    out.join("\n")
}

/// The tool names Slipway's run messages show (their argv), by slash command.
const TOOLS: &[(&str, &str)] = &[
    ("kubectl", "/kubectl"),
    ("aws", "/aws"),
    ("gcloud", "/gcloud"),
    ("terraform", "/tf"),
];

/// The first Slipway command a message quotes, as a command line (`/kubectl get pods -n web`):
/// a `/family …` line or code span, or a run message's `kubectl …` code span with the target
/// alias it names (`on *staging (namespace web)*` → `@staging`). `None` when it quotes none.
pub fn quoted_command(text: &str) -> Option<String> {
    let families = slipway_core::command::Family::ALL.map(slipway_core::command::Family::slash);
    let spans = code_spans(text);
    for span in spans.iter().map(String::as_str).chain(text.lines()) {
        let line = span.trim().trim_start_matches("> ").trim();
        let first = line.split_whitespace().next().unwrap_or_default();
        if families.iter().any(|f| f == first) {
            return Some(line.to_string());
        }
    }
    let span = spans.first()?;
    let (tool, rest) = span.trim().split_once(' ')?;
    let (_, slash) = TOOLS.iter().find(|(t, _)| *t == tool)?;
    let alias = text
        .split_once("` on *")
        .and_then(|(_, after)| after.split([' ', '*']).next())
        .filter(|a| !a.is_empty());
    Some(match alias {
        Some(a) if *slash == "/kubectl" => format!("{slash} @{a} {rest}"),
        _ => format!("{slash} {rest}"),
    })
}

/// The contents of the `code spans` in `text`, in order (fenced blocks left out).
fn code_spans(text: &str) -> Vec<String> {
    let unfenced = text.replace("```", "\u{0}");
    unfenced
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.contains('\u{0}') && !s.contains('\n') && !s.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_answer_in_the_thread() {
        let top = serde_json::json!({"type": "app_mention", "user": "U1", "team": "T1",
            "channel": "C1", "ts": "1.1", "text": "<@U0SLIPBOT> whoami", "event_ts": "1.1"});
        let m = mention(&top).unwrap();
        assert_eq!((m.thread_ts.as_str(), m.text.as_str()), ("1.1", "whoami"));
        let threaded = serde_json::json!({"type": "app_mention", "user": "U1", "channel": "C1",
            "ts": "1.2", "thread_ts": "1.0", "text": "hey <@U0SLIPBOT|slipway>  status 12"});
        let m = mention(&threaded).unwrap();
        assert_eq!(
            (m.thread_ts.as_str(), m.text.as_str()),
            ("1.0", "hey status 12")
        );
        let bot = serde_json::json!({"type": "app_mention", "user": "U1", "bot_id": "B1",
            "channel": "C1", "ts": "1.3", "text": "<@U0SLIPBOT> help"});
        assert_eq!(mention(&bot), None);
        assert_eq!(mention(&serde_json::json!({"type": "app_mention"})), None);
        assert_eq!(strip_mentions("<@U1 unterminated"), "");
    }

    #[test]
    fn home_tab_only() {
        let ev = serde_json::json!({"type": "app_home_opened", "user": "U1", "tab": "home"});
        assert_eq!(home_opened(&ev).as_deref(), Some("U1"));
        let msgs = serde_json::json!({"type": "app_home_opened", "user": "U1", "tab": "messages"});
        assert_eq!(home_opened(&msgs), None);
    }

    #[test]
    fn quoted_commands() {
        assert_eq!(
            quoted_command("try `/kubectl get pods -n web` please").as_deref(),
            Some("/kubectl get pods -n web")
        );
        assert_eq!(
            quoted_command("/aws @prod ec2 describe-instances").as_deref(),
            Some("/aws @prod ec2 describe-instances")
        );
        assert_eq!(
            quoted_command(
                ":white_check_mark: `kubectl get pods --namespace=web` on *staging (namespace web)* finished"
            )
            .as_deref(),
            Some("/kubectl @staging get pods --namespace=web")
        );
        assert_eq!(quoted_command("lunch at `noon`?"), None);
        assert_eq!(
            quoted_command("```\n/kubectl get pods\n```"),
            Some("/kubectl get pods".into())
        );
    }

    #[test]
    fn shortcuts() {
        let payload = serde_json::json!({
            "type": "message_action", "callback_id": EXPLAIN_SHORTCUT, "trigger_id": "t.1",
            "user": {"id": "U1", "team_id": "T1"}, "channel": {"id": "C1"},
            "message_ts": "1.5", "response_url": "https://hooks.slack.com/app/x",
            "message": {"ts": "1.5", "text": "run `/kubectl get pods`",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "more"}}]}
        });
        let s = shortcut(payload).unwrap();
        assert_eq!(s.message_text, "run `/kubectl get pods`\nmore");
        assert_eq!(s.channel_id.as_deref(), Some("C1"));
        assert!(shortcut(serde_json::json!({"callback_id": EXPLAIN_SHORTCUT})).is_err());
        assert!(is_ours(CHANGE_SHORTCUT) && !is_ours("other"));
    }
}
