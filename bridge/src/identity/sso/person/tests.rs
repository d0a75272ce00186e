//! SSO-linked people, with and without a directory: whose groups count, for how long, what a
//! static entry keeps for itself, and what a login passed to a colleague can't do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_core::policy::model::ProviderKind;
use slipway_core::policy::{Policy, SlackUser};
use slipway_emulators::slack::SlackEmulator;

use super::*;
use crate::clock::SystemClock;
use crate::identity::Directory;
use crate::identity::links::{LinkStore, MemoryLinks};
use crate::identity::sso::MemoryClaims;
use crate::identity::tests::dana;

const EXAMPLE: &str = include_str!("../../../../../policy/slipway.yaml");
const BOT: &str = "xoxb-sso-person-tests";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A directory that knows people by SCIM `externalId` too.
#[derive(Debug, Default)]
struct Scim(Mutex<HashMap<String, (String, Person)>>);

impl Scim {
    fn put(&self, external_id: &str, p: Person) {
        slipway_infra::sync::lock(&self.0).insert(p.id.clone(), (external_id.into(), p));
    }
    fn find(&self, f: impl Fn(&(String, Person)) -> bool) -> Option<Person> {
        slipway_infra::sync::lock(&self.0)
            .values()
            .find(|e| f(e))
            .map(|e| e.1.clone())
    }
}

impl Directory for Scim {
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(|(_, p)| p.id == id))
    }
    fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(|(_, p)| p.email.as_deref() == Some(email)))
    }
    fn person_by_github(&self, _: &str) -> Result<Option<Person>, StoreError> {
        Ok(None)
    }
    fn person_by_external_id(&self, external_id: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(|(x, _)| x == external_id))
    }
}

fn login(sub: &str, email: Option<&str>, at: i64) -> SsoClaims {
    SsoClaims {
        sub: sub.into(),
        email: email.map(String::from),
        name: Some("Dana".into()),
        groups: vec!["engineering".into(), "operators".into()],
        at,
    }
}

fn policy(provider: &str, slack_match: &str) -> Policy {
    Policy::from_yaml(&EXAMPLE.replacen(
        "provider: static",
        &format!("provider: {provider}\n  slack_match: {slack_match}"),
        1,
    ))
    .unwrap()
}

struct World {
    slack: SlackEmulator,
    scim: Arc<Scim>,
    links: Arc<MemoryLinks>,
    people: People,
}

async fn world(with_directory: bool) -> World {
    let (slack, client) = crate::identity::tests::slack(BOT).await;
    let scim = Arc::new(Scim::default());
    let links = Arc::new(MemoryLinks::default());
    let people = People::new(
        with_directory.then(|| scim.clone() as Arc<dyn Directory>),
        links.clone() as Arc<dyn LinkStore>,
        client,
        Arc::new(SystemClock),
    )
    .with_sso(Arc::new(MemoryClaims::default()), DAY);
    World {
        slack,
        scim,
        links,
        people,
    }
}

impl World {
    /// A successful login of `sub` by `slack_user`.
    async fn link(&self, slack_user: &str, sub: &str, email: Option<&str>, at: i64) {
        self.people
            .link_sso(slack_user, &login(sub, email, at))
            .await
            .unwrap();
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn known(r: &Resolved) -> &Known {
    match r {
        Resolved::Known(k) => k,
        other => panic!("expected someone known, got {other:?}"),
    }
}

#[tokio::test]
async fn without_a_directory_the_login_is_the_person_for_max_age() {
    let w = world(false).await;
    let sso = policy("static", "sso");
    let user = SlackUser::new("U0DANA");
    let Resolved::Unknown(Some(hint)) = w.people.resolve(&sso, &user).await else {
        panic!("nobody yet")
    };
    assert!(hint.contains("/slipway link sso"), "{hint}");
    w.link("U0DANA", "00u-dana", Some("dana@example.com"), now())
        .await;
    let r = w.people.resolve(&sso, &user).await;
    let k = known(&r);
    assert_eq!(k.identity.subject, "dana@example.com");
    assert_eq!(k.identity.groups, ["engineering", "operators"]);
    assert_eq!((k.source, k.link), (Origin::Sso, Some(LinkHow::Sso)));
    // Without a verified email, the subject is the `sub`.
    w.link("U0DANA", "00u-dana", None, now()).await;
    assert_eq!(
        known(&w.people.resolve(&sso, &user).await).identity.subject,
        "00u-dana"
    );
    // A day later the groups no longer count: sign in again.
    w.link("U0DANA", "00u-dana", None, now() - 2 * 86_400).await;
    let Resolved::Unknown(Some(hint)) = w.people.resolve(&sso, &user).await else {
        panic!("a stale login proves nothing")
    };
    assert!(hint.contains("older than"), "{hint}");
    // The policy links by email: an SSO link counts for nothing.
    assert_eq!(
        w.people.resolve(&policy("static", "email"), &user).await,
        Resolved::Unknown(None)
    );
}

#[tokio::test]
async fn a_login_cant_become_a_static_entry_and_static_slack_ids_win() {
    let w = world(false).await;
    let sso = policy("static", "sso");
    w.link("U0MALLORY", "00u-m", Some("olga.owner@example.com"), now())
        .await;
    let Resolved::Refused(why) = w.people.resolve(&sso, &SlackUser::new("U0MALLORY")).await else {
        panic!("the owner's subject is the policy file's")
    };
    assert!(why.contains("olga.owner@example.com"), "{why}");
    // An SSO link on a static entry's Slack ID changes nothing.
    w.link("U0VIEWER", "00u-v", None, now()).await;
    let r = w.people.resolve(&sso, &SlackUser::new("U0VIEWER")).await;
    assert_eq!(known(&r).source, Origin::Static);
}

#[tokio::test]
async fn with_a_directory_the_directory_is_the_person_and_its_groups_count() {
    let w = world(true).await;
    let sso = policy("scim", "sso");
    let user = SlackUser::new("U0DANA");
    w.scim.put("00u-dana", dana(true));
    w.link("U0DANA", "00u-dana", None, now()).await;
    let r = w.people.resolve(&sso, &user).await;
    let k = known(&r);
    assert_eq!(
        k.identity.groups,
        ["sre"],
        "the directory's groups, not the claim's"
    );
    assert_eq!(k.source, Origin::Directory(ProviderKind::Scim));
    // No `externalId` match: the verified email finds them.
    slipway_infra::sync::lock(&w.scim.0).clear();
    w.scim.put("other-id", dana(true));
    w.link("U0DANA", "00u-dana", Some("dana@example.com"), now())
        .await;
    assert_eq!(
        known(&w.people.resolve(&sso, &user).await).identity.subject,
        "dana@example.com"
    );
    w.scim.put("other-id", dana(false));
    let Resolved::Refused(why) = w.people.resolve(&sso, &user).await else {
        panic!()
    };
    assert!(why.contains("deactivated"), "{why}");
    slipway_infra::sync::lock(&w.scim.0).clear();
    let Resolved::Refused(why) = w.people.resolve(&sso, &user).await else {
        panic!()
    };
    assert!(why.contains("has nobody with your SSO login"), "{why}");
}

#[tokio::test]
async fn a_login_passed_to_a_colleague_links_nobody() {
    let w = world(false).await;
    w.slack.add_user("U0BOB", "bob", Some("bob@example.com"));
    w.slack.add_user("U0ADA", "ada", Some("ada@example.com"));
    // Ada asked; Bob signed in with her link.
    let e = w
        .people
        .link_sso("U0ADA", &login("00u-bob", Some("bob@example.com"), now()))
        .await
        .unwrap_err();
    assert!(e.contains("another Slack account"), "{e}");
    assert_eq!(w.links.link("U0ADA").unwrap(), None);
    assert_eq!(w.links.link("U0BOB").unwrap(), None);
    // Her own login links her, and an undo puts the earlier state back.
    let (link, replaced) = w
        .people
        .link_sso("U0ADA", &login("00u-ada", Some("ada@example.com"), now()))
        .await
        .unwrap();
    assert_eq!((link.person.as_str(), link.how), ("00u-ada", LinkHow::Sso));
    w.people.undo_sso("U0ADA", replaced);
    assert_eq!(w.links.link("U0ADA").unwrap(), None);
}
