//! The resolver against a directory in memory and the Slack emulator: who wins, who is refused,
//! and what a link survives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slipway_core::policy::model::ProviderKind;
use slipway_core::policy::{Policy, SlackUser};
use slipway_emulators::slack::SlackEmulator;

use super::links::{LinkHow, LinkStore, MemoryLinks};
use super::{Directory, Origin, People, Person, Resolved};
use crate::clock::SystemClock;
use crate::config::{Secret, SlackConfig};
use crate::slack::client::Slack;
use crate::store::StoreError;

const EXAMPLE: &str = include_str!("../../../policy/slipway.yaml");
const BOT: &str = "xoxb-identity-tests";

#[derive(Debug, Default)]
struct Memory(Mutex<HashMap<String, Person>>);

impl Memory {
    fn put(&self, p: Person) {
        slipway_infra::sync::lock(&self.0).insert(p.id.clone(), p);
    }
    fn find(&self, f: impl Fn(&Person) -> bool) -> Option<Person> {
        slipway_infra::sync::lock(&self.0)
            .values()
            .find(|p| f(p))
            .cloned()
    }
}

impl Directory for Memory {
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        Ok(slipway_infra::sync::lock(&self.0).get(id).cloned())
    }
    fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(|p| {
            p.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }
    fn person_by_github(&self, login: &str) -> Result<Option<Person>, StoreError> {
        Ok(self.find(|p| {
            p.github
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(login))
        }))
    }
}

pub(super) fn dana(active: bool) -> Person {
    Person {
        id: "p-dana".into(),
        subject: "dana@example.com".into(),
        email: Some("dana@example.com".into()),
        name: Some("Dana".into()),
        github: Some("dana-gh".into()),
        active,
        groups: vec!["sre".into()],
        source: ProviderKind::Scim,
        synced_at: 1_700_000_000,
    }
}

fn policy(edit: &str) -> Policy {
    Policy::from_yaml(&EXAMPLE.replacen("provider: static", edit, 1)).unwrap()
}

struct World {
    slack: SlackEmulator,
    dir: Arc<Memory>,
    links: Arc<MemoryLinks>,
    people: People,
}

/// The Slack emulator with a bot token, and a client for it.
pub(super) async fn slack(bot: &str) -> (SlackEmulator, Slack) {
    let slack = SlackEmulator::start(bot).await;
    let client = Slack::new(&SlackConfig {
        signing_secret: Secret::new(""),
        bot_token: Secret::new(bot),
        app_token: Secret::new(""),
        api_url: slack.api_url(),
        socket_mode: false,
    })
    .unwrap();
    (slack, client)
}

async fn world() -> World {
    let (slack, client) = slack(BOT).await;
    let dir = Arc::new(Memory::default());
    let links = Arc::new(MemoryLinks::default());
    let people = People::new(
        Some(dir.clone() as Arc<dyn Directory>),
        links.clone() as Arc<dyn LinkStore>,
        client,
        Arc::new(SystemClock),
    );
    World {
        slack,
        dir,
        links,
        people,
    }
}

fn refused(r: &Resolved) -> &str {
    match r {
        Resolved::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_email_match_links_once_and_a_deactivation_refuses_the_next_request() {
    let w = world().await;
    let scim = policy("provider: scim");
    w.dir.put(dana(true));
    w.slack.add_user("U0DANA", "dana", Some("Dana@Example.com"));
    let user = SlackUser::new("U0DANA");
    let Resolved::Known(k) = w.people.resolve(&scim, &user).await else {
        panic!("dana should be known")
    };
    assert_eq!(k.identity.subject, "dana@example.com");
    assert_eq!(k.identity.groups, ["sre"]);
    assert_eq!(k.source, Origin::Directory(ProviderKind::Scim));
    assert_eq!(k.new_link.as_ref().map(|l| l.how), Some(LinkHow::Email));
    // The link is remembered: the second request asks Slack nothing and makes no new link.
    let Resolved::Known(again) = w.people.resolve(&scim, &user).await else {
        panic!()
    };
    assert_eq!(again.new_link, None);
    w.dir.put(dana(false));
    assert!(
        refused(&w.people.resolve(&scim, &user).await)
            .contains("deactivated in the company directory")
    );
    assert_eq!(
        w.people.by_github(&scim, "DANA-gh"),
        None,
        "an inactive person's reviews don't count"
    );
    slipway_infra::sync::lock(&w.dir.0).clear();
    assert!(
        refused(&w.people.resolve(&scim, &user).await)
            .contains("removed from the company directory")
    );
}

#[tokio::test]
async fn static_entries_win_and_a_static_policy_ignores_the_directory() {
    let w = world().await;
    // A directory person claiming the owner's Slack email can't become the owner.
    let mut impostor = dana(true);
    impostor.email = Some("olga.owner@example.com".into());
    w.dir.put(impostor);
    w.slack
        .add_user("U0OWNER", "olga", Some("olga.owner@example.com"));
    let owner = SlackUser::new("U0OWNER");
    let Resolved::Known(k) = w.people.resolve(&policy("provider: scim"), &owner).await else {
        panic!()
    };
    assert_eq!(k.source, Origin::Static);
    assert_ne!(k.identity.subject, "dana@example.com");
    // With `provider: static`, a directory person is nobody.
    w.dir.put(dana(true));
    w.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    let r = w
        .people
        .resolve(&policy("provider: static"), &SlackUser::new("U0DANA"))
        .await;
    assert_eq!(r, Resolved::Unknown(None));
    assert_eq!(
        w.people.by_github(&policy("provider: static"), "dana-gh"),
        None
    );
}

#[tokio::test]
async fn slack_deactivation_and_a_changed_email_undo_what_a_link_proved() {
    let w = world().await;
    let scim = policy("provider: scim");
    w.dir.put(dana(true));
    w.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    let user = SlackUser::new("U0DANA");
    assert!(w.people.resolve(&scim, &user).await.identity().is_some());
    // Someone changes their Slack email to another person's: the old link goes, no new one
    // is made for an address the directory doesn't know.
    w.slack
        .add_user("U0DANA", "dana", Some("mallory@example.com"));
    w.people
        .slack_user_changed("U0DANA", false, Some("mallory@example.com"));
    assert_eq!(w.links.link("U0DANA").unwrap(), None);
    assert_eq!(
        w.people.resolve(&scim, &user).await,
        Resolved::Unknown(None)
    );
    // A Slack admin deactivates the account: refused, even for a static entry, and the
    // person's GitHub reviews stop counting.
    w.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    assert!(w.people.resolve(&scim, &user).await.identity().is_some());
    w.people
        .slack_user_changed("U0DANA", true, Some("dana@example.com"));
    assert!(refused(&w.people.resolve(&scim, &user).await).contains("deactivated"));
    assert_eq!(w.people.by_github(&scim, "dana-gh"), None);
    w.people.slack_user_changed("U0OWNER", true, None);
    assert!(
        refused(&w.people.resolve(&scim, &SlackUser::new("U0OWNER")).await).contains("Slack says")
    );
}

#[tokio::test]
async fn sso_matching_never_links_by_email_and_a_deactivated_slack_profile_is_refused() {
    let w = world().await;
    w.dir.put(dana(true));
    w.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    let user = SlackUser::new("U0DANA");
    let sso = policy("provider: scim\n  slack_match: sso");
    let Resolved::Unknown(Some(hint)) = w.people.resolve(&sso, &user).await else {
        panic!()
    };
    assert!(hint.contains("/slipway link sso"), "{hint}");
    w.slack.set_user_deleted("U0DANA", true);
    let scim = policy("provider: scim");
    assert!(refused(&w.people.resolve(&scim, &user).await).contains("deactivated"));
    assert_eq!(w.links.link("U0DANA").unwrap(), None);
}

#[tokio::test]
async fn a_provisioned_person_is_linked_to_the_slack_account_with_their_email() {
    let w = world().await;
    let scim = policy("provider: scim");
    w.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    let (slack_id, link) = w.people.link_provisioned(&scim, &dana(true)).await.unwrap();
    assert_eq!(
        (slack_id.as_str(), link.person.as_str()),
        ("U0DANA", "p-dana")
    );
    assert_eq!(
        w.people.link_provisioned(&scim, &dana(true)).await,
        None,
        "already linked"
    );
    assert_eq!(w.people.link_provisioned(&scim, &dana(false)).await, None);
}
