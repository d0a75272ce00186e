//! Who a Slack user is, as Slack says: their profile email and whether an admin deactivated
//! them. Identity links by email rest on these two facts (`users:read.email`).

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::client::{Slack, SlackError};

/// A Slack account, as `users.info` or `users.lookupByEmail` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPerson {
    pub id: String,
    pub email: Option<String>,
    /// Deactivated by a workspace admin: they can't be anyone's identity any more.
    pub deleted: bool,
}

impl From<SlackUser> for SlackPerson {
    fn from(u: SlackUser) -> Self {
        Self {
            id: u.id.0,
            email: u.profile.and_then(|p| p.email).map(|e| e.0),
            deleted: u.deleted.unwrap_or(false),
        }
    }
}

/// Slack's "nobody has that" answers, which are facts rather than failures.
fn not_found(e: &SlackClientError) -> bool {
    matches!(e, SlackClientError::ApiError(a) if a.code == "users_not_found" || a.code == "user_not_found")
}

impl Slack {
    /// `users.info`: `None` when Slack has no such user.
    pub async fn user_info(&self, user_id: &str) -> Result<Option<SlackPerson>, SlackError> {
        let req = SlackApiUsersInfoRequest::new(user_id.into());
        match self.session(&self.token()).users_info(&req).await {
            Ok(resp) => Ok(Some(resp.user.into())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(SlackError {
                method: "users.info",
                message: e.to_string(),
            }),
        }
    }

    /// `users.lookupByEmail`: `None` when no account has that registered email.
    pub async fn lookup_by_email(&self, email: &str) -> Result<Option<SlackPerson>, SlackError> {
        let req = SlackApiUsersLookupByEmailRequest::new(EmailAddress(email.to_string()));
        match self
            .session(&self.token())
            .users_lookup_by_email(&req)
            .await
        {
            Ok(resp) => Ok(Some(resp.user.into())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(SlackError {
                method: "users.lookupByEmail",
                message: e.to_string(),
            }),
        }
    }
}
