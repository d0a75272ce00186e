//! The Google Workspace sync through the real router, against the Google emulator (the Admin
//! SDK Directory API and the OAuth token endpoint, at the HTTP level): a person synced from
//! Google runs their group's role's commands from the Slack account with their email, until
//! Google suspends them (a push notification) or takes them out of the group (the interval);
//! and an attacker's pushes, a refused key, and a SCIM user beside the sync.

use std::time::Duration;

use serde_json::Value;
use slipway_core::audit::EventKind;
use slipway_emulators::google::{GoogleEmulator, ServiceAccountKey};
use slipway_tests::harness::{Options, TestApp, free_port};

const ADMIN: &str = "admin@example.com";
const DANA: &str = "dana@example.com";
const ENGINEERING: &str = "engineering@example.com";
const CHANNEL_TOKEN: &str = "google-channel-token-0123456789";
const LINE: &str = "/kubectl get pods -n web";
const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
];

/// `example.com`: the admin, Dana in `engineering` (bound to viewer in the example policy), and
/// a service account delegated the two read-only scopes.
async fn google() -> (GoogleEmulator, ServiceAccountKey) {
    let g = GoogleEmulator::start("example.com").await;
    g.add_admin(ADMIN, "Ada", "Admin");
    g.add_user(DANA, "Dana", "Ng");
    g.add_group(ENGINEERING, "engineering");
    g.add_member(ENGINEERING, DANA);
    let key = g.add_service_account("slipway-sync");
    g.grant_delegation(&key.client_id, &SCOPES);
    (g, key)
}

/// The bridge syncing `g` every `interval`, with push to its own `/google/notify` if `push`.
async fn bridge(
    g: &GoogleEmulator,
    key: &ServiceAccountKey,
    interval: &str,
    push: bool,
) -> TestApp {
    bridge_with(g, key, interval, push, &[]).await
}

/// [`bridge`] with more environment (a SCIM token, say).
async fn bridge_with(
    g: &GoogleEmulator,
    key: &ServiceAccountKey,
    interval: &str,
    push: bool,
    more: &[(&'static str, &str)],
) -> TestApp {
    let port = free_port();
    let mut env = vec![
        ("SLIPWAY_GOOGLE_SERVICE_ACCOUNT", key.json.clone()),
        ("SLIPWAY_GOOGLE_ADMIN_EMAIL", ADMIN.to_string()),
        ("SLIPWAY_GOOGLE_API_URL", g.base_url()),
        ("SLIPWAY_GOOGLE_SYNC_INTERVAL", interval.to_string()),
    ];
    if push {
        env.push((
            "SLIPWAY_GOOGLE_PUSH_URL",
            format!("http://127.0.0.1:{port}/google/notify"),
        ));
        env.push(("SLIPWAY_GOOGLE_CHANNEL_TOKEN", CHANNEL_TOKEN.to_string()));
    }
    env.extend(more.iter().map(|(k, v)| (*k, (*v).to_string())));
    let app = TestApp::start_with(Options {
        env,
        port,
        policy_edits: vec![(
            "identities:\n  provider: static",
            "identities:\n  provider: google\n  slack_match: email".to_string(),
        )],
        ..Options::default()
    })
    .await;
    app.slack.add_user("U0DANA", "dana", Some(DANA));
    app
}

fn details(r: &slipway_core::audit::AuditRecord) -> &Value {
    r.details.as_ref().unwrap_or(&Value::Null)
}

/// The Google `provisioning` records with this `action` so far.
fn google_records(app: &TestApp, action: &str) -> Vec<Value> {
    app.audit()
        .iter()
        .filter(|r| r.kind == EventKind::Provisioning)
        .map(details)
        .filter(|d| d["source"] == "google" && d["action"] == action)
        .cloned()
        .collect()
}

/// Wait until more than `after` sync runs are audited.
async fn synced(app: &TestApp, after: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while google_records(app, "sync").len() <= after {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Google sync after {after}: {}",
            app.get("/metrics").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A counter's value on `/metrics` (the line that starts with `series`), or 0.
async fn metric(app: &TestApp, series: &str) -> u64 {
    app.get("/metrics")
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn notify(app: &TestApp, token: Option<&str>) -> u16 {
    let mut headers = vec![
        ("x-goog-channel-id", "slipway-forged".to_string()),
        ("x-goog-resource-state", "update".to_string()),
        ("x-goog-message-number", "7".to_string()),
        ("x-goog-resource-id", "r1".to_string()),
    ];
    if let Some(t) = token {
        headers.push(("x-goog-channel-token", t.to_string()));
    }
    app.post_raw("/google/notify", b"{}".to_vec(), &headers)
        .await
        .0
}

/// The contract for Google: a synced person with primary email E, in a Google group bound to
/// a role, runs that role's commands from the Slack user `users.lookupByEmail(E)` finds; when
/// an admin suspends them, Google's push notification starts a sync and their next command is
/// denied with the reason, and the trail has the deactivation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_user_runs_their_roles_commands_until_suspended_and_push_ends_it() {
    let (g, key) = google().await;
    let app = bridge(&g, &key, "1h", true).await;
    synced(&app, 0).await;
    assert!(
        g.wait_until(Duration::from_secs(10), |g| g.channels().len() == 3)
            .await,
        "a channel for add, update and delete: {:?}",
        g.channels()
    );
    let ack = app.ack("U0DANA", LINE).await;
    assert!(
        ack.starts_with("Running") && ack.contains("as viewer"),
        "{ack}"
    );
    let who = app.ack("U0DANA", "/slipway whoami").await;
    assert!(
        who.contains(DANA) && who.contains("from Google Workspace, last synced"),
        "{who}"
    );

    let before = google_records(&app, "sync").len();
    g.suspend_user(DANA, true);
    synced(&app, before).await;
    let denied = app.ack("U0DANA", LINE).await;
    assert!(
        denied.contains("deactivated in the company directory (google"),
        "{denied}"
    );
    let cut = google_records(&app, "deactivate");
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0]["user_name"], DANA);
    let last = &google_records(&app, "sync")[before];
    assert_eq!(last["users"]["updated"], 1, "{last}");
    let delivered = g.deliveries();
    assert!(
        delivered
            .iter()
            .any(|d| d.state == "update" && d.status == Some(200)),
        "{delivered:?}"
    );
    let sync = app
        .state
        .directory
        .as_ref()
        .unwrap()
        .sync_state(slipway_bridge::identity::Source::Google)
        .unwrap();
    assert!(sync.last_sync.is_some() && sync.changes >= 3, "{sync:?}");
}

/// Google has no push for group membership: the interval sync takes a removed member's role
/// away, and their next command says they have none. Deleting them in Google removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_removal_takes_the_role_away_at_the_next_interval_sync() {
    let (g, key) = google().await;
    let app = bridge(&g, &key, "1s", false).await;
    synced(&app, 0).await;
    assert!(app.ack("U0DANA", LINE).await.starts_with("Running"));
    g.remove_member(ENGINEERING, DANA);
    let before = google_records(&app, "sync").len();
    synced(&app, before).await;
    let denied = app.ack("U0DANA", LINE).await;
    assert!(denied.contains("has no role"), "{denied}");
    g.delete_user(DANA);
    let before = google_records(&app, "sync").len();
    synced(&app, before).await;
    let gone = app.ack("U0DANA", LINE).await;
    assert!(
        gone.contains("removed from the company directory (google)"),
        "{gone}"
    );
    assert_eq!(google_records(&app, "delete").len(), 1);
}

/// Attacker: a push without the channel token, or with another, is a bare 401 and starts no
/// sync; the configured one is acknowledged with 200 and starts one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_with_a_wrong_or_missing_channel_token_is_401_and_starts_no_sync() {
    let (g, key) = google().await;
    let app = bridge(&g, &key, "1h", true).await;
    synced(&app, 0).await;
    let before = google_records(&app, "sync").len();
    assert_eq!(notify(&app, None).await, 401);
    assert_eq!(
        notify(&app, Some("google-channel-token-0123456788")).await,
        401
    );
    assert_eq!(notify(&app, Some("")).await, 401);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(google_records(&app, "sync").len(), before, "no sync");
    assert_eq!(
        metric(
            &app,
            "slipway_requests_total{endpoint=\"google_notify\",outcome=\"unauthorized\"}"
        )
        .await,
        3
    );
    assert_eq!(notify(&app, Some(CHANNEL_TOKEN)).await, 200);
    synced(&app, before).await;
}

/// Without push configured (or without Google at all), `/google/notify` doesn't exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_notify_is_404_without_push_configured() {
    let (g, key) = google().await;
    let app = bridge(&g, &key, "1h", false).await;
    assert_eq!(notify(&app, Some(CHANNEL_TOKEN)).await, 404);
    let plain = TestApp::start().await;
    assert_eq!(notify(&plain, Some(CHANNEL_TOKEN)).await, 404);
}

/// Attacker (or an accident): the service account's key is deleted, so Google's token endpoint
/// refuses the assertion. The sync fails, is counted, and the last good directory stays: a
/// broken sync wipes nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_the_sync_counts_it_and_keeps_the_directory() {
    let (g, key) = google().await;
    g.set_token_ttl(30); // shorter than the bridge's early refresh: a token per sync
    let app = bridge(&g, &key, "1s", false).await;
    synced(&app, 0).await;
    assert!(app.ack("U0DANA", LINE).await.starts_with("Running"));
    g.delete_key(&key.client_email);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&app, "slipway_google_sync_failures_total{reason=\"token\"}").await < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no failure counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metric(&app, "slipway_google_syncs_total{outcome=\"failed\"}").await >= 1);
    let directory = app.state.directory.as_ref().unwrap();
    assert_eq!(directory.users().unwrap().len(), 2, "admin and Dana stay");
    assert!(app.ack("U0DANA", LINE).await.starts_with("Running"));
}

/// A SCIM-provisioned user beside the Google sync is never touched by it: several syncs later
/// they are still there, as SCIM wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_sync_never_deletes_a_scim_user() {
    let (g, key) = google().await;
    let scim = [("SLIPWAY_SCIM_TOKEN", crate::scim::TOKEN)];
    let app = bridge_with(&g, &key, "1s", false, &scim).await;
    let (status, user) = crate::scim::scim(
        &app.addr.to_string(),
        "POST",
        "/Users",
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "sam@example.com",
            "emails": [{"value": "sam@example.com", "primary": true}],
        })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    let before = google_records(&app, "sync").len();
    synced(&app, before + 1).await;
    let directory = app.state.directory.as_ref().unwrap();
    let sam = directory.user(id).unwrap().expect("the SCIM user stays");
    assert_eq!(sam.source, slipway_bridge::identity::Source::Scim);
    assert_eq!(sam.version, 1, "and is never rewritten");
    assert!(google_records(&app, "delete").is_empty());
}

/// With push on, the bridge keeps its channels open: each is replaced before it expires, and
/// the one it replaces is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_channels_are_renewed_before_they_expire() {
    let (g, key) = google().await;
    g.set_channel_ttl(Duration::from_secs(3));
    let app = bridge(&g, &key, "1h", true).await;
    assert!(
        g.wait_until(Duration::from_secs(10), |g| g.channels().len() == 3)
            .await
    );
    let first: Vec<String> = g.channels().into_iter().map(|c| c.id).collect();
    let renewed = g
        .wait_until(Duration::from_secs(10), |g| {
            let now: Vec<String> = g.channels().into_iter().map(|c| c.id).collect();
            now.len() == 3 && now.iter().all(|id| !first.contains(id))
        })
        .await;
    assert!(renewed, "{:?} → {:?}", first, g.channels());
    let stops = g
        .requests()
        .iter()
        .filter(|r| r.contains("channels/stop"))
        .count();
    assert!(stops >= 3, "the replaced channels were stopped");
    drop(app);
}

/// The SCIM client (Okta, Entra ID) neither sees nor changes what the Google sync wrote, and a
/// SCIM group can't hand a Google person a role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_can_neither_see_nor_change_google_records() {
    let (g, key) = google().await;
    let scim = [("SLIPWAY_SCIM_TOKEN", crate::scim::TOKEN)];
    let app = bridge_with(&g, &key, "1h", false, &scim).await;
    synced(&app, 0).await;
    let directory = app.state.directory.as_ref().unwrap();
    let dana = directory.user_by_email(DANA).unwrap().unwrap();
    let addr = app.addr.to_string();
    let (status, list) = crate::scim::scim(&addr, "GET", "/Users", None).await;
    assert_eq!(
        (status, list["totalResults"].as_u64()),
        (200, Some(0)),
        "{list}"
    );
    for method in ["GET", "DELETE"] {
        let (status, _) =
            crate::scim::scim(&addr, method, &format!("/Users/{}", dana.id), None).await;
        assert_eq!(status, 404, "{method}");
    }
    let (status, group) = crate::scim::scim(
        &addr,
        "POST",
        "/Groups",
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "platform-owners",
            "members": [{"value": dana.id}],
        })),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let who = app.ack("U0DANA", "/slipway whoami").await;
    assert!(
        who.contains("engineering") && !who.contains("platform-owners"),
        "{who}"
    );
    assert!(directory.user(&dana.id).unwrap().is_some());
}

/// With replicas on Redis only the leader syncs, but Google's push may reach any replica: a
/// push to a follower is passed on, and the leader syncs at once instead of at its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_reaches_a_follower_starts_a_sync_on_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let redis = slipway_tests::redis_server::RedisServer::start(dir.path());
    let url = redis.url();
    let (g, key) = google().await;
    let a = bridge_with(
        &g,
        &key,
        "1h",
        true,
        &[("SLIPWAY_REDIS_URL", &url), ("SLIPWAY_AUDIT_WRITER", "a")],
    )
    .await;
    synced(&a, 0).await;
    let b = bridge_with(
        &g,
        &key,
        "1h",
        true,
        &[("SLIPWAY_REDIS_URL", &url), ("SLIPWAY_AUDIT_WRITER", "b")],
    )
    .await;
    // Both replicas listen for pokes before one is sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("slipway:google-push")
            .query(&mut redis.client())
            .unwrap();
        if n >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = google_records(&a, "sync").len();
    assert_eq!(notify(&b, Some(CHANNEL_TOKEN)).await, 200);
    synced(&a, before).await;
    assert!(
        google_records(&b, "sync").is_empty(),
        "only the leader syncs"
    );
}
