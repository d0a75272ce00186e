//! Everyone Slipway knows, for operators (`slipway identities list|show`): static entries and
//! the directory's people, each with where they came from, whether they are active, and which
//! Slack accounts are linked to them.

use serde::{Deserialize, Serialize};
use slipway_core::policy::Policy;

use super::links::{LinkHow, LinkStore};
use super::{DirectoryStore, DirectoryUser, Source};
use crate::store::StoreError;

/// One person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub subject: String,
    /// `static`, `scim` or `google`.
    pub source: String,
    pub active: bool,
    /// Slack user IDs: listed in the policy, or linked (and how).
    pub slack: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkHow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    pub groups: Vec<String>,
    /// When the directory last changed this person (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<i64>,
    /// Slack accounts of theirs that Slack says are deactivated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_deactivated: Vec<String>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Static entries first (in the policy's order), then directory people by subject.
pub fn list(
    policy: &Policy,
    directory: Option<&dyn DirectoryStore>,
    links: &dyn LinkStore,
) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for slack_id in policy.identities().slack_ids() {
        let user = slipway_core::policy::SlackUser::new(slack_id);
        let Some(i) = slipway_core::policy::IdentityProvider::resolve(policy.identities(), &user)
        else {
            continue;
        };
        if let Some(e) = out.iter_mut().find(|e: &&mut Entry| e.subject == i.subject) {
            e.slack.push(slack_id.to_string());
            continue;
        }
        out.push(Entry {
            subject: i.subject.clone(),
            source: "static".into(),
            active: true,
            slack: vec![slack_id.to_string()],
            link: None,
            email: i.email.clone(),
            github: i.github.clone(),
            groups: i.groups.clone(),
            synced_at: None,
            slack_deactivated: Vec::new(),
        });
    }
    if let Some(d) = directory {
        let all_links = links.links()?;
        let mut people: Vec<DirectoryUser> = d.users().map_err(err)?;
        people.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        for u in people {
            out.push(person_entry(d, &all_links, &u)?);
        }
    }
    for e in &mut out {
        for id in &e.slack {
            if links.slack_deactivated(id)? {
                e.slack_deactivated.push(id.clone());
            }
        }
    }
    Ok(out)
}

fn person_entry(
    d: &dyn DirectoryStore,
    links: &[(String, super::links::Link)],
    u: &DirectoryUser,
) -> Result<Entry, StoreError> {
    let linked: Vec<_> = links.iter().filter(|(_, l)| l.person == u.id).collect();
    Ok(Entry {
        subject: u.user_name.clone(),
        source: match u.source {
            Source::Scim => "scim",
            Source::Google => "google",
        }
        .into(),
        active: u.active,
        slack: linked.iter().map(|(s, _)| s.clone()).collect(),
        link: linked.first().map(|(_, l)| l.how),
        email: u.primary_email().map(str::to_string),
        github: u
            .github_login
            .clone()
            .or_else(|| linked.iter().find_map(|(_, l)| l.github.clone())),
        groups: d
            .groups_of(&u.id)
            .map_err(err)?
            .into_iter()
            .map(|g| g.display_name)
            .collect(),
        synced_at: Some(u.updated),
        slack_deactivated: Vec::new(),
    })
}

/// The entries `who` names: a Slack ID, a subject or an email (without case).
pub fn find<'a>(entries: &'a [Entry], who: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| {
            e.slack.iter().any(|s| s == who)
                || e.subject.eq_ignore_ascii_case(who)
                || e.email
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(who))
        })
        .collect()
}
