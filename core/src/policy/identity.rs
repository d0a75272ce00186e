//! Slack user → enterprise identity. The static provider reads the policy file; other providers
//! (an IdP group export, the Slack profile email) implement [`IdentityProvider`].

use std::collections::HashMap;

use serde::Serialize;

/// Who sent a Slack request, as Slack says. Only the user ID is trusted for identity: it is
/// immutable, and org-wide on Enterprise Grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlackUser {
    pub user_id: String,
    pub team_id: Option<String>,
    pub enterprise_id: Option<String>,
}

impl SlackUser {
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            team_id: None,
            enterprise_id: None,
        }
    }
}

/// A resolved enterprise identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The SSO subject: the stable name audit records and `createdBy` fields use.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub github: Option<String>,
    pub groups: Vec<String>,
    #[serde(skip)]
    pub default_cluster: Option<String>,
}

impl Identity {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Resolves Slack users (and GitHub logins, for reviews) to identities.
pub trait IdentityProvider {
    fn resolve(&self, user: &SlackUser) -> Option<&Identity>;
    fn by_github(&self, login: &str) -> Option<&Identity>;
}

/// Identities listed in the policy file.
#[derive(Debug, Default)]
pub struct StaticProvider {
    identities: Vec<Identity>,
    by_slack: HashMap<String, usize>,
    by_github: HashMap<String, usize>,
}

impl StaticProvider {
    pub(crate) fn push(&mut self, identity: Identity, slack_ids: impl IntoIterator<Item = String>) {
        let idx = self.identities.len();
        for id in slack_ids {
            self.by_slack.insert(id, idx);
        }
        if let Some(login) = &identity.github {
            self.by_github.insert(login.to_ascii_lowercase(), idx);
        }
        self.identities.push(identity);
    }

    pub(crate) fn has_slack_id(&self, id: &str) -> bool {
        self.by_slack.contains_key(id)
    }

    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// Slack IDs known to this provider, sorted.
    pub fn slack_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.by_slack.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }
}

impl IdentityProvider for StaticProvider {
    fn resolve(&self, user: &SlackUser) -> Option<&Identity> {
        self.by_slack
            .get(&user.user_id)
            .map(|i| &self.identities[*i])
    }

    fn by_github(&self, login: &str) -> Option<&Identity> {
        self.by_github
            .get(&login.to_ascii_lowercase())
            .map(|i| &self.identities[*i])
    }
}
