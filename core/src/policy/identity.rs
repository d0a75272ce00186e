//! Slack user → enterprise identity. The static provider reads the policy file; other providers
//! (an IdP group export, the Slack profile email) implement [`IdentityProvider`].

use std::collections::HashMap;

use serde::Serialize;

use super::compile::PolicyError;
use super::model::{Name, UserEntry};

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

    /// Whether a GitHub login (compared without case, as GitHub does) is already someone's.
    pub(crate) fn has_github_login(&self, login: &str) -> bool {
        self.by_github.contains_key(&login.to_ascii_lowercase())
    }

    /// The policy's users. Each Slack ID and each GitHub login belongs to one person: a login
    /// listed twice would let one person's GitHub review count as another's.
    pub(crate) fn from_users(
        users: &[UserEntry],
        known_cluster: &dyn Fn(&Name) -> Result<(), PolicyError>,
    ) -> Result<Self, PolicyError> {
        let mut provider = StaticProvider::default();
        for u in users {
            if u.slack.is_empty() {
                return Err(PolicyError {
                    line: 0,
                    column: 0,
                    message: format!("user `{}` has no Slack IDs", u.subject),
                });
            }
            if let Some(id) = u.slack.iter().find(|id| provider.has_slack_id(&id.value)) {
                return Err(PolicyError::at(
                    id,
                    format!("Slack ID `{}` belongs to two users", id.value),
                ));
            }
            if let Some(login) = u
                .github
                .as_ref()
                .filter(|l| provider.has_github_login(&l.value))
            {
                return Err(PolicyError::at(
                    login,
                    format!(
                        "GitHub login `{}` belongs to two users (logins are case-insensitive); \
                         give each person their own",
                        login.value
                    ),
                ));
            }
            if let Some(c) = &u.default_cluster {
                known_cluster(c)?;
            }
            provider.push(
                Identity {
                    subject: u.subject.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    github: u.github.as_ref().map(|g| g.value.clone()),
                    groups: u.groups.iter().map(|g| g.value.clone()).collect(),
                    default_cluster: u.default_cluster.as_ref().map(|c| c.value.clone()),
                },
                u.slack.iter().map(|s| s.value.clone()),
            );
        }
        Ok(provider)
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

#[cfg(test)]
mod tests {
    use crate::policy::Policy;

    const EXAMPLE: &str = include_str!("../../../policy/slipway.yaml");

    #[test]
    fn a_github_login_listed_twice_is_an_error_at_its_line() {
        // Bo's login made Ada's in another case: GitHub logins are case-insensitive.
        let bad = EXAMPLE.replacen("github: bo-approver", "github: ADA-Approver", 1);
        let line = bad
            .lines()
            .position(|l| l.contains("github: ADA-Approver"))
            .unwrap()
            + 1;
        let e = Policy::from_yaml(&bad).unwrap_err();
        assert_eq!(usize::try_from(e.line).unwrap(), line, "{e}");
        assert!(e.column > 1, "{e}");
        assert!(
            e.message
                .contains("GitHub login `ADA-Approver` belongs to two users"),
            "{e}"
        );
        Policy::from_yaml(EXAMPLE).unwrap();
    }
}
