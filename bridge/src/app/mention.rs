//! `@slipway …` in a channel, answered in the mention's thread after the event's ack.
//!
//! `help`, `whoami`, `status <PR or change id>`, `explain <command>` and the read commands
//! themselves (`/kubectl get pods -n web`, or without the slash). Everything but `status` goes
//! through the slash-command pipeline (`commands::handle`: parse, the clicker's identity, the
//! policy decision, the audit record, the read queue) as the person who mentioned Slipway.
//! Visibility is the slash commands': what a slash command answers ephemerally (whoami, an
//! explanation, a denial, a private read) is posted with `chat.postEphemeral` in the thread,
//! and a public line there says so; help, status and public runs are posted in the thread.
//! Changes are refused: their dry run and Confirm need a private channel back that a mention
//! doesn't have, so they stay with `/deploy …` and the *Open a change request…* shortcut.

use slipway_core::command::meta::Meta;
use slipway_core::command::{Command, Tier, parse};

use super::AppState;
use crate::slack::client::Message;
use crate::slack::events::SlashCommand;
use crate::slack::surface::Mention;

/// What a mention asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// A command line for the pipeline (`/slipway help`, `/kubectl get pods`…).
    Command {
        command: String,
        text: String,
    },
    Status(String),
    /// Words Slipway doesn't know.
    Unknown(String),
}

/// The families a mention may name without the slash.
const BARE: &[&str] = &[
    "kubectl", "aws", "gcloud", "tf", "silence", "deploy", "slipway",
];

fn ask(text: &str) -> Ask {
    let text = match text.trim() {
        "" => "help",
        t => t,
    };
    let first = text.split_whitespace().next().unwrap_or("help");
    let rest = text.strip_prefix(first).unwrap_or("").trim();
    let command = |c: &str, t: &str| Ask::Command {
        command: c.to_string(),
        text: t.to_string(),
    };
    match first {
        "help" | "whoami" | "explain" => command("/slipway", text),
        "status" if !rest.is_empty() => Ask::Status(rest.to_string()),
        slash if slash.starts_with('/') => command(slash, rest),
        bare if BARE.contains(&bare) => command(&format!("/{bare}"), rest),
        other => Ask::Unknown(other.chars().take(40).collect()),
    }
}

/// Answer one mention (spawned after the ack).
pub(super) async fn on_mention(state: &AppState, m: Mention) {
    let answer = match ask(&m.text) {
        Ask::Status(key) => Answer::Public(Message::text(status(state, &key).await)),
        Ask::Unknown(word) => Answer::Public(Message::text(format!(
            "I don't know `{word}`. Ask me `help`, `whoami`, `status <PR or change id>`, `explain <command>`, or a read command such as `/kubectl get pods -n web`."
        ))),
        Ask::Command { command, text } => run(state, &m, command, text).await,
    };
    deliver(state, &m, answer).await;
}

enum Answer {
    /// Posted in the thread for everyone.
    Public(Message),
    /// Shown to the person alone, with a public line in the thread saying so.
    Private(Message),
}

/// A command through the slash-command pipeline, as the person who mentioned Slipway.
async fn run(state: &AppState, m: &Mention, command: String, text: String) -> Answer {
    let parsed = parse(&command, &text);
    if let Ok(p) = &parsed
        && matches!(p.tier(), Some(Tier::Change | Tier::Destructive))
    {
        return Answer::Private(Message::text(format!(
            ":memo: `{}` is a change. Changes start from `{command}` as a slash command or the *Open a change request…* shortcut, where the dry run and its Confirm reach only you.",
            p.text
        )));
    }
    if let Ok(p) = &parsed
        && matches!(
            p.command,
            Command::Slipway(Meta::LinkGithub | Meta::LinkSso)
        )
    {
        return Answer::Private(Message::text(
            "Linking an account starts from `/slipway link github` or `/slipway link sso`: its steps reach only you there.",
        ));
    }
    let help = matches!(&parsed, Ok(p) if matches!(p.command, Command::Slipway(Meta::Help { .. })));
    let cmd = SlashCommand {
        command,
        text,
        user: m.user.clone(),
        user_name: String::new(),
        channel_id: m.channel.clone(),
        response_url: String::new(),
        trigger_id: String::new(),
        thread_ts: Some(m.thread_ts.clone()),
    };
    // The event was admitted (signature, replay, event id) before its ack.
    let reply = super::commands::pipeline(state, cmd).await;
    if help {
        Answer::Public(reply)
    } else {
        Answer::Private(reply)
    }
}

/// `status <PR or change id>`: the request's state, approvals and deadline.
async fn status(state: &AppState, key: &str) -> String {
    let Some(svc) = &state.change else {
        return "This bridge has no GitOps repository configured, so there are no change requests."
            .into();
    };
    match svc.find_request(state, key).await {
        Ok(r) => r.status_line(),
        Err(why) => format!(":grey_question: {why}"),
    }
}

async fn deliver(state: &AppState, m: &Mention, answer: Answer) {
    let thread = Some(m.thread_ts.as_str());
    let public = match answer {
        Answer::Public(msg) => msg,
        Answer::Private(msg) => {
            let user = &m.user.user_id;
            if let Err(e) = state
                .slack
                .post_ephemeral(&m.channel, user, thread, &msg)
                .await
            {
                tracing::warn!(error = %e, "an ephemeral answer to a mention failed");
            }
            Message::text(format!(
                ":lock: I answered <@{user}> in this thread where only they can see it."
            ))
        }
    };
    if let Err(e) = state.slack.post(&m.channel, thread, &public).await {
        tracing::warn!(error = %e, "answering a mention failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_mention_asks() {
        let cmd = |c: &str, t: &str| Ask::Command {
            command: c.into(),
            text: t.into(),
        };
        assert_eq!(ask(""), cmd("/slipway", "help"));
        assert_eq!(ask("whoami"), cmd("/slipway", "whoami"));
        assert_eq!(
            ask("explain /kubectl get pods"),
            cmd("/slipway", "explain /kubectl get pods")
        );
        assert_eq!(ask("status #12"), Ask::Status("#12".into()));
        assert_eq!(
            ask("/kubectl get pods -n web"),
            cmd("/kubectl", "get pods -n web")
        );
        assert_eq!(ask("kubectl get pods"), cmd("/kubectl", "get pods"));
        assert_eq!(ask("make coffee"), Ask::Unknown("make".into()));
        assert_eq!(ask("status"), Ask::Unknown("status".into()));
    }
}
