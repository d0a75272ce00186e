//! `/slipway` itself: help, whoami, explain and account linking.

use std::fmt::Write as _;

use slipway_core::catalog::help_text;
use slipway_core::command::meta::Meta;
use slipway_core::policy::{Decision, explain_json_as};

use super::AppState;
use crate::identity::links::LinkHow;
use crate::identity::{Origin, Resolved};
use crate::slack::events::SlashCommand;

pub(super) fn reply(
    state: &AppState,
    cmd: &SlashCommand,
    meta: &Meta,
    decision: &Decision<'_>,
    who: &Resolved,
) -> String {
    match meta {
        Meta::Help { topic } => help_text(topic.as_deref()),
        Meta::Whoami => match decision.identity {
            None => decision.reason.clone(),
            Some(i) => format!(
                "You are *{}*{} (Slack {}).\nGroups: {}{}\nRole: {}",
                i.subject,
                i.email
                    .as_deref()
                    .map(|e| format!(" <{e}>"))
                    .unwrap_or_default(),
                cmd.user.user_id,
                if i.groups.is_empty() {
                    "none".to_string()
                } else {
                    i.groups.join(", ")
                },
                provenance(who),
                state
                    .policy()
                    .primary_role(i)
                    .unwrap_or("none (ask for access)")
            ),
        },
        Meta::Explain { text } => explain(state, cmd, text, decision, who),
        // Linking runs the device flow in a task (no network I/O here); it needs the GitOps side.
        Meta::LinkGithub => {
            if let Some(svc) = &state.change {
                return svc.link_github(state, cmd, decision.identity);
            }
            let linked = decision.identity.and_then(|i| i.github.clone());
            format!(
                "GitHub account linking needs a GitOps repository, and this bridge has none configured.{}",
                linked
                    .map(|l| format!(" Policy maps you to GitHub user `{l}`."))
                    .unwrap_or_default()
            )
        }
        Meta::LinkSso => super::sso::link_reply(state, cmd, who),
    }
}

/// `/slipway explain <command>`: the decision as the person, typed where they typed it.
fn explain(
    state: &AppState,
    cmd: &SlashCommand,
    text: &str,
    decision: &Decision<'_>,
    who: &Resolved,
) -> String {
    let v = explain_json_as(
        &state.policy(),
        &cmd.user,
        decision.identity,
        text,
        Some(&cmd.channel_id),
    );
    let mut out = format!(
        "`{}` → *{}* (rule `{}`)\n{}",
        text,
        v["decision"].as_str().unwrap_or("deny"),
        v["rule"].as_str().unwrap_or(""),
        v["reason"].as_str().unwrap_or("")
    );
    if let Some(tier) = v["tier"].as_str() {
        let _ = write!(out, "\nTier: {tier}");
    }
    if let Some(argv) = v["argv"].as_array() {
        let argv: Vec<&str> = argv.iter().filter_map(|a| a.as_str()).collect();
        let _ = write!(out, "\nWould run: `{}`", argv.join(" "));
    }
    if decision.identity.is_some() {
        let _ = write!(out, "\nGroups{}", provenance(who));
    }
    out
}

/// Where someone's groups came from, and how fresh they are: ` (from SCIM, synced …; linked
/// by email)` or ` (from the policy file)`.
fn provenance(who: &Resolved) -> String {
    let Resolved::Known(k) = who else {
        return String::new();
    };
    match k.source {
        Origin::Static => " (from the policy file)".to_string(),
        Origin::Sso => format!(
            " (from the group claim of your SSO login of {}; linked by your SSO login)",
            k.synced_at
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        ),
        Origin::Directory(kind) => {
            let synced = k
                .synced_at
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| format!(", last synced {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            let linked = match k.link {
                Some(LinkHow::Email) => "; linked by your Slack email",
                Some(LinkHow::Sso) => "; linked by your SSO login",
                None => "",
            };
            format!(" (from {}{synced}{linked})", directory_name(kind))
        }
    }
}

fn directory_name(kind: slipway_core::policy::model::ProviderKind) -> &'static str {
    use slipway_core::policy::model::ProviderKind;
    match kind {
        ProviderKind::Scim => "the identity provider over SCIM",
        ProviderKind::Google => "Google Workspace",
        ProviderKind::Static => "the policy file",
    }
}
