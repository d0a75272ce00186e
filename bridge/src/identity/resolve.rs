//! Slack user → identity, through the static list, a checked link, or an email match made on
//! the spot. Anything that can't be proven is unknown; anything the IdP or Slack switched off is
//! refused with a reason, so a leaver is denied on their very next command or click.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::policy::model::{ProviderKind, SlackMatch};
use slipway_core::policy::{Identity, IdentityProvider, Policy, SlackUser};

use super::links::{Link, LinkHow, LinkStore};
use super::sso::{ClaimStore, SsoPeople};
use super::{Directory, Person};
use crate::clock::Clock;
use crate::slack::client::Slack;
use crate::store::StoreError;

/// How long the first command of a new user may wait on Slack for their profile email: the
/// lookup happens inside the 3-second ack.
const LOOKUP_BUDGET: Duration = Duration::from_millis(1500);

/// Where an identity came from, for `/slipway whoami` and `policy explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Static,
    Directory(ProviderKind),
    /// The claims of an SSO login, without a directory (`provider: static`).
    Sso,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Directory(k) => k.as_str(),
            Self::Sso => "oidc",
        }
    }
}

/// A proven identity and its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub identity: Identity,
    pub source: Origin,
    /// When the directory last heard about them (unix seconds); `None` for static entries.
    pub synced_at: Option<i64>,
    pub link: Option<LinkHow>,
    /// A link this resolution made (to be audited by the caller).
    pub new_link: Option<Link>,
}

/// The answer for one Slack user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Known(Box<Known>),
    /// Known, but switched off: the reason says by whom.
    Refused(String),
    /// Nobody Slipway can tie this Slack user to; the hint says how to become someone.
    Unknown(Option<String>),
}

impl Resolved {
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Known(k) => Some(&k.identity),
            _ => None,
        }
    }
}

/// The people service: directory, links and Slack lookups.
#[derive(Debug, Clone)]
pub struct People {
    directory: Option<Arc<dyn Directory>>,
    pub(super) links: Arc<dyn LinkStore>,
    pub(super) slack: Slack,
    pub(super) clock: Arc<dyn Clock>,
    /// Woken whenever who someone is changes (a link, a deactivation, a directory write).
    changed: Arc<tokio::sync::Notify>,
    /// SSO logins, when `/slipway link sso` is configured.
    pub(super) sso: Option<SsoPeople>,
}

impl People {
    pub fn new(
        directory: Option<Arc<dyn Directory>>,
        links: Arc<dyn LinkStore>,
        slack: Slack,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            directory,
            links,
            slack,
            clock,
            changed: Arc::default(),
            sso: None,
        }
    }

    /// Say that who someone is changed (the identity snapshot follows).
    pub fn touch(&self) {
        self.changed.notify_one();
    }

    /// What [`People::touch`] wakes.
    pub fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// With `/slipway link sso`: each Slack user's last login, and how long its groups count
    /// without a directory.
    #[must_use]
    pub fn with_sso(mut self, claims: Arc<dyn ClaimStore>, max_age: Duration) -> Self {
        self.sso = Some(SsoPeople { claims, max_age });
        self
    }

    pub fn links(&self) -> &Arc<dyn LinkStore> {
        &self.links
    }

    /// The directory the policy names, if this bridge has one: only its people count.
    pub(super) fn directory<'a>(&'a self, policy: &Policy) -> Option<Named<'a>> {
        let kind = policy.provider();
        let directory = self.directory.as_deref()?;
        (kind != ProviderKind::Static).then_some(Named { directory, kind })
    }

    /// Who `user` is. Static entries win for their own Slack IDs; a Slack account an admin
    /// deactivated is nobody, whatever list names it.
    pub async fn resolve(&self, policy: &Policy, user: &SlackUser) -> Resolved {
        match self.links.slack_deactivated(&user.user_id) {
            Ok(false) => {}
            Ok(true) => return Resolved::Refused(SLACK_DEACTIVATED.to_string()),
            Err(e) => return unavailable(&e),
        }
        if let Some(identity) = policy.identities().resolve(user) {
            return Resolved::Known(Box::new(Known {
                identity: identity.clone(),
                source: Origin::Static,
                synced_at: None,
                link: None,
                new_link: None,
            }));
        }
        let link = match self.links.link(&user.user_id) {
            Ok(link) => link,
            Err(e) => return unavailable(&e),
        };
        // An SSO link counts only while the policy links by SSO.
        if let Some(link) = link.as_ref().filter(|l| l.how == LinkHow::Sso)
            && policy.slack_match() == SlackMatch::Sso
        {
            return self.resolve_sso(policy, &user.user_id, link);
        }
        let Some(directory) = self.directory(policy) else {
            return Resolved::Unknown(self.sso_hint(policy));
        };
        if let Some(link) = link.filter(|l| l.how != LinkHow::Sso) {
            return linked(&directory, &link);
        }
        match policy.slack_match() {
            SlackMatch::Sso => Resolved::Unknown(Some(LINK_SSO.into())),
            SlackMatch::Email => self.match_email(&directory, user).await,
        }
    }

    /// First contact: Slack's profile email must be an active person's primary email.
    async fn match_email(&self, directory: &Named<'_>, user: &SlackUser) -> Resolved {
        let looked_up = tokio::time::timeout(LOOKUP_BUDGET, self.slack.user_info(&user.user_id));
        let slack_person = match looked_up.await {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return Resolved::Unknown(None),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, user = %user.user_id, "looking up a Slack profile");
                return Resolved::Refused(LOOKUP_FAILED.to_string());
            }
            Err(_) => return Resolved::Refused(LOOKUP_FAILED.to_string()),
        };
        if slack_person.deleted {
            return Resolved::Refused(SLACK_DEACTIVATED.to_string());
        }
        let Some(email) = slack_person.email else {
            return Resolved::Unknown(Some(NO_EMAIL.to_string()));
        };
        match directory.person_by_email(&email) {
            Ok(Some(person)) if person.active => {
                let link = Link {
                    person: person.id.clone(),
                    how: LinkHow::Email,
                    email: Some(email),
                    at: self.clock.unix(),
                    github: None,
                };
                if let Err(e) = self.links.set_link(&user.user_id, &link) {
                    return unavailable(&e);
                }
                self.touch();
                known(&person, LinkHow::Email, Some(link))
            }
            Ok(Some(person)) => Resolved::Refused(deactivated(&person)),
            Ok(None) => Resolved::Unknown(None),
            Err(e) => unavailable(&e),
        }
    }

    /// When the IdP provisions (or changes) someone: tie them to the Slack account Slack finds
    /// for their primary email, so their first command needs no lookup. `Some` is a new link.
    pub async fn link_provisioned(
        &self,
        policy: &Policy,
        person: &Person,
    ) -> Option<(String, Link)> {
        if self.directory(policy).is_none() || policy.slack_match() != SlackMatch::Email {
            return None;
        }
        let email = person.email.as_deref().filter(|_| person.active)?;
        let found = match self.slack.lookup_by_email(email).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "looking up a provisioned person in Slack");
                return None;
            }
        };
        if found.deleted
            || policy
                .identities()
                .resolve(&SlackUser::new(&found.id))
                .is_some()
        {
            return None;
        }
        if let Ok(Some(existing)) = self.links.link(&found.id)
            && existing.person == person.id
        {
            return None;
        }
        let link = Link {
            person: person.id.clone(),
            how: LinkHow::Email,
            email: Some(email.to_string()),
            at: self.clock.unix(),
            github: None,
        };
        match self.links.set_link(&found.id, &link) {
            Ok(()) => {
                self.touch();
                Some((found.id, link))
            }
            Err(e) => {
                tracing::error!(error = %e, "recording an identity link");
                None
            }
        }
    }

    /// Slack's `user_change`: a deactivation is remembered; a changed email drops the link, so
    /// the next command proves it again.
    pub fn slack_user_changed(&self, slack_user: &str, deleted: bool, email: Option<&str>) {
        self.touch();
        if let Err(e) = self.links.set_slack_deactivated(slack_user, deleted) {
            tracing::error!(error = %e, "recording a Slack deactivation");
        }
        let stale = match self.links.link(slack_user) {
            Ok(Some(l)) => {
                l.how == LinkHow::Email
                    && !l
                        .email
                        .as_deref()
                        .zip(email)
                        .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            }
            _ => false,
        };
        if stale && let Err(e) = self.links.remove_link(slack_user) {
            tracing::error!(error = %e, "dropping a stale identity link");
        }
    }

    /// The identity behind a GitHub login, for reviews: a static entry, or an active directory
    /// person none of whose linked Slack accounts Slack has deactivated.
    pub fn by_github(&self, policy: &Policy, login: &str) -> Option<Identity> {
        if let Some(i) = policy.identities().by_github(login) {
            return Some(i.clone());
        }
        let directory = self.directory(policy)?;
        let person = match directory.person_by_github(login).ok()? {
            Some(p) => p,
            None => self.linked_github(&directory, login)?,
        };
        if !person.active || self.any_slack_deactivated(&person.id) {
            return None;
        }
        Some(person.identity())
    }

    /// The person whose link carries this GitHub login (from `/slipway link github`).
    fn linked_github(&self, directory: &Named<'_>, login: &str) -> Option<Person> {
        let links = self.links.links().ok()?;
        let (_, link) = links.iter().find(|(_, l)| {
            l.github
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(login))
        })?;
        let mut person = directory.person(&link.person).ok()??;
        person.github.clone_from(&link.github);
        Some(person)
    }

    fn any_slack_deactivated(&self, person: &str) -> bool {
        let Ok(links) = self.links.links() else {
            return true;
        };
        links
            .iter()
            .filter(|(_, l)| l.person == person)
            .any(|(slack, _)| self.links.slack_deactivated(slack).unwrap_or(true))
    }
}

/// The directory, seen through the provider the policy names: people from another source are
/// nobody (a Google sync left behind after moving to SCIM can't vouch for anyone).
pub(super) struct Named<'a> {
    directory: &'a dyn Directory,
    pub(super) kind: ProviderKind,
}

impl Named<'_> {
    fn ours(&self, p: Option<Person>) -> Option<Person> {
        p.filter(|p| p.source == self.kind)
    }
    pub(super) fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.directory.person(id).map(|p| self.ours(p))
    }
    pub(super) fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError> {
        self.directory.person_by_email(email).map(|p| self.ours(p))
    }
    pub(super) fn person_by_github(&self, login: &str) -> Result<Option<Person>, StoreError> {
        self.directory.person_by_github(login).map(|p| self.ours(p))
    }
    pub(super) fn person_by_external_id(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.directory
            .person_by_external_id(id)
            .map(|p| self.ours(p))
    }
}

/// How someone unknown becomes known when the policy links by SSO.
pub(super) const LINK_SSO: &str =
    "link your Slack account to your company login with `/slipway link sso`";

const SLACK_DEACTIVATED: &str = "Slack says this account is deactivated, so it can't act \
                                 through Slipway";
const LOOKUP_FAILED: &str = "Slipway couldn't check your Slack profile with Slack just now; \
                             try again in a minute";
const NO_EMAIL: &str = "your Slack profile has no email Slipway may read, so it can't match \
                        you to the company directory";

fn linked(directory: &Named<'_>, link: &Link) -> Resolved {
    match directory.person(&link.person) {
        Ok(Some(mut person)) if person.active => {
            if person.github.is_none() {
                person.github.clone_from(&link.github);
            }
            known(&person, link.how, None)
        }
        Ok(Some(person)) => Resolved::Refused(deactivated(&person)),
        Ok(None) => Resolved::Refused(format!(
            "your account was removed from the company directory ({}), so Slipway no longer \
             knows who you are",
            directory.kind.as_str()
        )),
        Err(e) => unavailable(&e),
    }
}

pub(super) fn known(person: &Person, how: LinkHow, new_link: Option<Link>) -> Resolved {
    Resolved::Known(Box::new(Known {
        identity: person.identity(),
        source: Origin::Directory(person.source),
        synced_at: Some(person.synced_at),
        link: Some(how),
        new_link,
    }))
}

pub(super) fn deactivated(person: &Person) -> String {
    let at = chrono::DateTime::from_timestamp(person.synced_at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    format!(
        "your account `{}` is deactivated in the company directory ({}, as of {at}), so it \
         can't act through Slipway",
        person.subject,
        person.source.as_str()
    )
}

/// Fail closed when the state can't be read.
pub(super) fn unavailable(e: &crate::store::StoreError) -> Resolved {
    tracing::error!(error = %e, "reading identity state");
    Resolved::Refused(
        "Slipway can't read its identity records right now, so it can't tell who you are; \
         try again shortly"
            .to_string(),
    )
}
