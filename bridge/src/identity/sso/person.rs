//! Who an SSO-linked Slack user is, and how a login becomes a link.
//!
//! - With the directory the policy names (`provider: scim | google`), the directory is the
//!   person: the one whose `externalId` is the token's `sub`, else the one whose primary email
//!   is the token's verified email. Their groups are the directory's, never the claim's (a
//!   login's groups are a snapshot, and a removal in the IdP must count on the next command).
//!   Nobody found, or someone deactivated, is refused.
//! - With `provider: static` there is no directory, and the login is the person: the subject is
//!   the verified email (else the `sub`), the groups are the claim's, and they count for
//!   `sso.max_age` after the login, after which the person signs in again. A login whose
//!   subject or email is a static entry's is refused: the policy file's people are bound to
//!   their own Slack IDs.
//! - Static entries win for their own Slack IDs either way (checked before any link).

use std::sync::Arc;
use std::time::Duration;

use slipway_core::policy::model::ProviderKind;
use slipway_core::policy::{Identity, Policy};

use super::claims::{ClaimStore, SsoClaims};
use crate::identity::links::{Link, LinkHow};
use crate::identity::resolve::{LINK_SSO, deactivated, known, unavailable};
use crate::identity::resolve::{Named, Origin};
use crate::identity::{Known, People, Person, Resolved};
use crate::store::StoreError;

/// How long the Slack lookup that guards a new link may take.
const LOOKUP_BUDGET: Duration = Duration::from_secs(5);

/// The SSO side of the people service: each Slack user's last login, and how long its groups
/// count without a directory.
#[derive(Debug, Clone)]
pub struct SsoPeople {
    pub claims: Arc<dyn ClaimStore>,
    pub max_age: Duration,
}

/// What [`People::link_sso`] replaced, to put back if the link can't be audited.
#[derive(Debug)]
pub struct Replaced {
    link: Option<Link>,
    claims: Option<SsoClaims>,
}

fn find(
    directory: &Named<'_>,
    sub: &str,
    claims: Option<&SsoClaims>,
) -> Result<Option<Person>, StoreError> {
    if let Some(p) = directory.person_by_external_id(sub)? {
        return Ok(Some(p));
    }
    match claims.and_then(|c| c.email.as_deref()) {
        Some(email) => directory.person_by_email(email),
        None => Ok(None),
    }
}

fn in_directory(directory: &Named<'_>, link: &Link, claims: Option<&SsoClaims>) -> Resolved {
    match find(directory, &link.person, claims) {
        Ok(Some(p)) if p.active => known(&p, LinkHow::Sso, None),
        Ok(Some(p)) => Resolved::Refused(deactivated(&p)),
        Ok(None) => Resolved::Refused(format!(
            "the company directory ({}) has nobody with your SSO login, so Slipway can't tell \
             who you are (it may have removed you, or not provisioned you yet)",
            directory.kind.as_str()
        )),
        Err(e) => unavailable(&e),
    }
}

fn from_claims(
    policy: &Policy,
    claims: Option<SsoClaims>,
    max_age: Duration,
    now: i64,
) -> Resolved {
    let Some(c) = claims else {
        return Resolved::Unknown(Some(LINK_SSO.into()));
    };
    let age = u64::try_from(now - c.at).unwrap_or(0);
    if age > max_age.as_secs() {
        return Resolved::Unknown(Some(format!(
            "your SSO login of {} is older than {}; sign in again with `/slipway link sso`",
            when(c.at),
            humantime::format_duration(max_age)
        )));
    }
    let subject = c.email.clone().unwrap_or_else(|| c.sub.clone());
    let same = |a: &str, b: Option<&str>| b.is_some_and(|b| a.eq_ignore_ascii_case(b));
    if let Some(entry) = policy.identities().identities().iter().find(|i| {
        same(&i.subject, Some(&subject))
            || same(&i.subject, Some(&c.sub))
            || i.email
                .as_deref()
                .is_some_and(|e| same(e, c.email.as_deref()))
    }) {
        return Resolved::Refused(format!(
            "your company login `{subject}` is the policy file's entry `{}`, which belongs to \
             other Slack accounts; Slipway won't let an SSO login become it",
            entry.subject
        ));
    }
    Resolved::Known(Box::new(Known {
        identity: Identity {
            subject,
            email: c.email,
            name: c.name,
            github: None,
            groups: c.groups,
            default_cluster: None,
        },
        source: Origin::Sso,
        synced_at: Some(c.at),
        link: Some(LinkHow::Sso),
        new_link: None,
    }))
}

fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

impl People {
    /// Who the Slack user behind an SSO `link` is.
    pub(in crate::identity) fn resolve_sso(
        &self,
        policy: &Policy,
        slack_user: &str,
        link: &Link,
    ) -> Resolved {
        let claims = match self.sso.as_ref().map(|s| s.claims.claims(slack_user)) {
            Some(Ok(c)) => c.filter(|c| c.sub == link.person),
            Some(Err(e)) => return unavailable(&e),
            None => None,
        };
        if let Some(directory) = self.directory(policy) {
            return in_directory(&directory, link, claims.as_ref());
        }
        if policy.provider() != ProviderKind::Static {
            // The policy names a directory this bridge doesn't have: nobody can be proven.
            return Resolved::Unknown(None);
        }
        let Some(sso) = &self.sso else {
            return Resolved::Unknown(None);
        };
        from_claims(policy, claims, sso.max_age, self.clock.unix())
    }

    /// The hint for someone nobody knows, when they could link themselves with SSO.
    pub(in crate::identity) fn sso_hint(&self, policy: &Policy) -> Option<String> {
        (self.sso.is_some() && policy.slack_match() == slipway_core::policy::model::SlackMatch::Sso)
            .then(|| LINK_SSO.to_string())
    }

    /// Record a verified login as `slack_user`'s link. Refused (with a sentence for the person)
    /// when Slack says the login's verified email is another Slack account's: a login link
    /// passed to a colleague must not tie the asker's Slack account to the colleague.
    pub async fn link_sso(
        &self,
        slack_user: &str,
        claims: &SsoClaims,
    ) -> Result<(Link, Replaced), String> {
        let sso = self
            .sso
            .as_ref()
            .ok_or("SSO linking is off on this bridge")?;
        if let Some(email) = &claims.email {
            match tokio::time::timeout(LOOKUP_BUDGET, self.slack.lookup_by_email(email)).await {
                Ok(Ok(Some(p))) if p.id != slack_user => {
                    tracing::warn!(slack_user, other = %p.id, "an SSO login of another Slack account's email was refused");
                    return Err(
                        "this company login belongs to another Slack account, so it can't \
                                be linked to the one that asked. Run `/slipway link sso` from your \
                                own Slack account, and don't pass the link on"
                            .into(),
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "checking an SSO login's email with Slack");
                    return Err(SLACK_DOWN.into());
                }
                Err(_) => return Err(SLACK_DOWN.into()),
            }
        }
        let stored = |e: StoreError| {
            tracing::error!(error = %e, "recording an SSO link");
            "Slipway couldn't record the link; try again shortly".to_string()
        };
        let replaced = Replaced {
            link: self.links.link(slack_user).map_err(stored)?,
            claims: sso.claims.claims(slack_user).map_err(stored)?,
        };
        let link = Link {
            person: claims.sub.clone(),
            how: LinkHow::Sso,
            email: claims.email.clone(),
            at: claims.at,
            github: None,
        };
        sso.claims.set_claims(slack_user, claims).map_err(stored)?;
        self.links.set_link(slack_user, &link).map_err(stored)?;
        self.touch();
        Ok((link, replaced))
    }

    /// Put back what [`People::link_sso`] replaced.
    pub fn undo_sso(&self, slack_user: &str, replaced: Replaced) {
        let Some(sso) = &self.sso else { return };
        let Replaced { link, claims } = replaced;
        let restored = match link {
            Some(l) => self.links.set_link(slack_user, &l),
            None => self.links.remove_link(slack_user),
        }
        .and_then(|()| match claims {
            Some(c) => sso.claims.set_claims(slack_user, &c),
            None => sso.claims.remove_claims(slack_user),
        });
        if let Err(e) = restored {
            tracing::error!(error = %e, slack_user, "undoing an SSO link that couldn't be audited");
        }
    }
}

const SLACK_DOWN: &str = "Slipway couldn't check this login with Slack just now, so nothing was \
                          linked; run `/slipway link sso` again in a minute";

#[cfg(test)]
mod tests;
