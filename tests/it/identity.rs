//! Identity: who a Slack user is, and how quickly that stops being true.

use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_tests::harness::TestApp;

/// A signed Events API `user_change`, shaped like Slack's example.
fn user_change(event_id: &str, user: &str, deleted: bool) -> Vec<u8> {
    serde_json::json!({
        "type": "event_callback",
        "team_id": "T0TEST",
        "api_app_id": "A0SLIPWAY",
        "event_id": event_id,
        "event_time": 1_700_000_000,
        "event": {
            "type": "user_change",
            "user": {
                "id": user, "team_id": "T0TEST", "name": "vera", "deleted": deleted,
                "profile": {"email": "vera.viewer@example.com", "real_name": "Vera Viewer"},
                "is_bot": false, "updated": 1_700_000_000
            },
            "cache_ts": 1_700_000_000,
            "event_ts": "1700000000.000100"
        }
    })
    .to_string()
    .into_bytes()
}

/// A Slack admin deactivates someone: Slack's `user_change` arrives, and their very next
/// command is denied with the reason, even though the policy file still lists them; the
/// deactivation is audited, and reactivation restores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_deactivation_denies_the_next_command_even_for_a_static_entry() {
    let app = TestApp::start().await;
    let line = "/kubectl get pods -n web";
    assert!(app.ack("U0VIEWER", line).await.starts_with("Running"));
    let body = user_change("Ev0DEACT", "U0VIEWER", true);
    let headers = app.signed_headers(&body);
    assert_eq!(app.post_raw("/slack/events", body, &headers).await.0, 200);
    let denied = app.ack("U0VIEWER", line).await;
    assert!(
        denied.contains("Slack says this account is deactivated"),
        "{denied}"
    );
    let audit = app.audit();
    let deactivation = audit
        .iter()
        .find(|r| r.kind == EventKind::Identity)
        .expect("an identity record");
    assert_eq!(
        deactivation.details.as_ref().unwrap()["action"],
        "slack_deactivated"
    );
    let last = audit.last().unwrap();
    assert_eq!(last.kind, EventKind::Decision);
    assert_eq!(last.decision.as_ref().unwrap().rule, "identity.refused");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let body = user_change("Ev0REACT", "U0VIEWER", false);
    let headers = app.signed_headers(&body);
    assert_eq!(app.post_raw("/slack/events", body, &headers).await.0, 200);
    assert!(app.ack("U0VIEWER", line).await.starts_with("Running"));
}

/// One SCIM PATCH operation on a user, which must succeed.
async fn patch_user(app: &TestApp, id: &str, op: serde_json::Value) {
    let (status, body) = crate::scim::scim(
        &app.addr.to_string(),
        "PATCH",
        &format!("/Users/{id}"),
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [op]
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn scim_app_opts() -> slipway_tests::harness::Options {
    slipway_tests::harness::Options {
        env: vec![("SLIPWAY_SCIM_TOKEN", crate::scim::TOKEN.into())],
        policy_edits: vec![(
            "identities:\n  provider: static",
            "identities:\n  provider: scim\n  slack_match: email".to_string(),
        )],
        ..slipway_tests::harness::Options::default()
    }
}

/// A SCIM group `name` with one member.
async fn scim_group(addr: &str, name: &str, member: &str) {
    let (status, group) = crate::scim::scim(
        addr,
        "POST",
        "/Groups",
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": [{"value": member}]
        })),
    )
    .await;
    assert_eq!(status, 201, "{group}");
}

/// Dana, provisioned over SCIM and put in a group bound to a role.
async fn provision_dana(addr: &str) -> String {
    use serde_json::json;
    let (status, user) = crate::scim::scim(
        addr,
        "POST",
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "dana@example.com",
            "name": {"givenName": "Dana", "familyName": "Ng"},
            "emails": [{"value": "dana@example.com", "type": "work", "primary": true}],
            "active": true
        })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    scim_group(addr, "engineering", &id).await;
    id
}

/// The contract from the issue: a user created through SCIM with primary email E, a member of
/// a SCIM group bound to a role, runs that role's commands from the Slack user whose
/// `users.lookupByEmail(E)` answer is that user; after `PATCH active=false` (Okta's dialect)
/// their next command is denied, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_user_runs_their_roles_commands_until_deactivated() {
    use serde_json::json;
    let app = TestApp::start_with(scim_app_opts()).await;
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    let id = provision_dana(&app.addr.to_string()).await;
    let line = "/kubectl get pods -n web";
    let ack = app.ack("U0DANA", line).await;
    assert!(
        ack.starts_with("Running") && ack.contains("as viewer"),
        "{ack}"
    );
    let who = app.ack("U0DANA", "/slipway whoami").await;
    assert!(
        who.contains("dana@example.com") && who.contains("over SCIM"),
        "{who}"
    );
    patch_user(
        &app,
        &id,
        json!({"op": "replace", "value": {"active": false}}),
    )
    .await;
    let denied = app.ack("U0DANA", line).await;
    assert!(
        denied.contains("deactivated in the company directory"),
        "{denied}"
    );
    let links: Vec<_> = app
        .audit()
        .into_iter()
        .filter(|r| r.kind == EventKind::Identity)
        .collect();
    assert_eq!(links.len(), 1, "one link, audited: {links:?}");
    assert_eq!(
        links[0].actor.as_ref().unwrap().slack_user_id.as_deref(),
        Some("U0DANA")
    );
}

/// Entra's dialect (`Replace` with `"False"`), and a DELETE: both end the person's access; a
/// Slack account whose email matches nobody active is nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_deactivation_and_a_delete_end_access_and_unknown_emails_link_nobody() {
    use serde_json::json;
    let app = TestApp::start_with(scim_app_opts()).await;
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    app.slack
        .add_user("U0MALLORY", "mallory", Some("mallory@example.com"));
    let id = provision_dana(&app.addr.to_string()).await;
    let line = "/kubectl get pods -n web";
    assert!(app.ack("U0DANA", line).await.starts_with("Running"));
    assert!(app.ack("U0MALLORY", line).await.contains("doesn't know"));
    patch_user(
        &app,
        &id,
        json!({"op": "Replace", "path": "active", "value": "False"}),
    )
    .await;
    assert!(app.ack("U0DANA", line).await.contains("deactivated"));
    patch_user(
        &app,
        &id,
        json!({"op": "Replace", "path": "active", "value": "True"}),
    )
    .await;
    assert!(app.ack("U0DANA", line).await.starts_with("Running"));
    let (status, _) = crate::scim::scim(
        &app.addr.to_string(),
        "DELETE",
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let gone = app.ack("U0DANA", line).await;
    assert!(
        gone.contains("removed from the company directory"),
        "{gone}"
    );
}

/// `slipway identities list|show` while `serve` runs (it asks the bridge over its 0600 admin
/// socket, since the state files are locked) and after it stopped (it reads them itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identities_cli_lists_people_while_the_bridge_runs_and_after() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = slipway_tests::harness::free_port();
    let addr = format!("127.0.0.1:{port}");
    let bridge = crate::scim::Bridge(crate::scim::serve(&state, port));
    crate::scim::ready(&addr).await;
    provision_dana(&addr).await;
    let socket = state.join("admin.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let cli = |args: &[&str]| {
        let state = state.to_str().unwrap().to_string();
        let policy = slipway_tests::example_policy();
        let mut all = vec!["identities"];
        all.extend_from_slice(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .args(&all)
            .args(["--state-dir", &state, "--policy", policy.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    check_listing(&cli, "running");
    drop(bridge);
    check_listing(&cli, "stopped");
    explain_names_where_groups_came_from(&state);
}

/// `slipway policy explain` for a directory person (linked here by hand, as the bridge would
/// have on their first command) says their groups came from SCIM, and when.
fn explain_names_where_groups_came_from(state: &std::path::Path) {
    use slipway_bridge::identity::links::{Link, LinkHow, LinkStore as _, RedbLinks};
    let directory = slipway_bridge::identity::RedbDirectory::open(state).unwrap();
    let dana =
        slipway_bridge::identity::DirectoryStore::user_by_email(&directory, "dana@example.com")
            .unwrap()
            .unwrap();
    drop(directory);
    let link = Link {
        person: dana.id,
        how: LinkHow::Email,
        email: Some("dana@example.com".into()),
        at: 1,
        github: None,
    };
    RedbLinks::open(state)
        .unwrap()
        .set_link("U0DANA", &link)
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args([
            "policy",
            "explain",
            "--user",
            "U0DANA",
            "--command",
            "/kubectl get pods -n web",
        ])
        .args([
            "--policy",
            slipway_tests::example_policy().to_str().unwrap(),
        ])
        .args(["--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["decision"].as_str(),
            v["groups_from"].as_str(),
            v["identity"].as_str()
        ),
        (Some("allow"), Some("scim"), Some("dana@example.com")),
        "{v}"
    );
    assert!(v["synced_at"].is_string(), "{v}");
}

/// The CLI run with some arguments: its exit code and stdout.
type Cli<'a> = &'a dyn Fn(&[&str]) -> (Option<i32>, String);

fn check_listing(cli: Cli<'_>, when: &str) {
    let (code, json) = cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "{when}: {json}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let dana = entries
        .iter()
        .find(|e| e["subject"] == "dana@example.com")
        .unwrap_or_else(|| panic!("{when}: {json}"));
    assert_eq!(
        (dana["source"].as_str(), dana["active"].as_bool()),
        (Some("scim"), Some(true))
    );
    assert_eq!(dana["groups"], serde_json::json!(["engineering"]));
    assert!(
        entries
            .iter()
            .any(|e| e["source"] == "static" && e["slack"][0] == "U0OWNER")
    );
    let (code, table) = cli(&["show", "DANA@example.com"]);
    assert_eq!(code, Some(0));
    assert!(
        table.starts_with("SUBJECT\t") && table.contains("dana@example.com\tscim\tyes"),
        "{when}: {table}"
    );
    assert_eq!(cli(&["show", "nobody@example.com"]).0, Some(1));
}

/// Taking someone out of the group bound to their role takes the role away on their next
/// command (Entra's `Remove` of `members[value eq "…"]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_removal_takes_the_role_away_on_the_next_command() {
    let app = TestApp::start_with(scim_app_opts()).await;
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    let id = provision_dana(&app.addr.to_string()).await;
    let line = "/kubectl get pods -n web";
    assert!(app.ack("U0DANA", line).await.starts_with("Running"));
    let (status, groups) = crate::scim::scim(
        &app.addr.to_string(),
        "GET",
        "/Groups?filter=displayName%20eq%20%22engineering%22",
        None,
    )
    .await;
    assert_eq!(status, 200, "{groups}");
    let group = groups["Resources"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = crate::scim::scim(
        &app.addr.to_string(),
        "PATCH",
        &format!("/Groups/{group}"),
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]
        })),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let denied = app.ack("U0DANA", line).await;
    assert!(denied.starts_with(":no_entry:"), "{denied}");
    let who = app.ack("U0DANA", "/slipway whoami").await;
    assert!(who.contains("Groups: none"), "{who}");
}

/// A directory person's GitHub review (login from the SCIM extension attribute) counts toward
/// the quorum in the bridge, and stops counting once the IdP deactivates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_approvers_review_counts_until_they_are_deactivated() {
    use serde_json::json;
    use slipway_tests::gitops::{self, OWNER, REPO};
    let fx = gitops::start().await;
    let app = crate::approvals::start_with(&fx, scim_app_opts()).await;
    let addr = app.addr.to_string();
    let (status, gina) = crate::scim::scim(
        &addr,
        "POST",
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:slipway:2.0:User"],
            "userName": "gina@example.com",
            "emails": [{"value": "gina@example.com", "type": "work", "primary": true}],
            "active": true,
            "urn:ietf:params:scim:schemas:extension:slipway:2.0:User": {"githubLogin": "gina-gh"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{gina}");
    let gina = gina["id"].as_str().unwrap().to_string();
    scim_group(&addr, "approvers", &gina).await;
    let number = crate::approvals::open_pr(&app, &fx).await;
    let ts = crate::approvals::change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "gina-gh", "APPROVE", "ok");
    assert!(
        crate::approvals::message_contains(&app.slack, &ts, "*1 of 2*").await,
        "{:?}",
        crate::approvals::change_message(&app)
    );
    patch_user(
        &app,
        &gina,
        json!({"op": "replace", "value": {"active": false}}),
    )
    .await;
    // Any later event re-judges the quorum: Gina's approval no longer counts.
    fx.github
        .review(OWNER, REPO, number, "vera-viewer", "COMMENT", "fyi");
    assert!(
        crate::approvals::message_contains(&app.slack, &ts, "*0 of 2*").await,
        "{:?}",
        crate::approvals::change_message(&app)
    );
    // The runner learns the same through the signed snapshot on `slipway/identities`.
    let gina_in_snapshot = || {
        let text = fx
            .github
            .file_at(OWNER, REPO, "slipway/identities", "identities.json")?;
        let snapshot = slipway_core::change::people::Snapshot::from_json(&text).ok()?;
        let keys = slipway_core::change::Keyring::from(vec![(
            "test".to_string(),
            slipway_tests::gitops::verifying_key(),
        )]);
        snapshot.verify(&keys).ok()?;
        snapshot
            .people
            .iter()
            .find(|p| p.github.as_deref() == Some("gina-gh"))
            .map(|p| p.active)
    };
    assert!(
        fx.github_wait(|| gina_in_snapshot() == Some(false)).await,
        "{:?}",
        fx.github
            .file_at(OWNER, REPO, "slipway/identities", "identities.json")
    );
}

/// A directory person whose IdP record has no GitHub login links one with
/// `/slipway link github` (the device flow proves they own it); their reviews then count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_person_links_their_github_login_and_their_review_counts() {
    use slipway_tests::gitops::{self, OWNER, REPO};
    let fx = gitops::start().await;
    let app = crate::approvals::start_with(&fx, scim_app_opts()).await;
    let addr = app.addr.to_string();
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    let dana = provision_dana(&addr).await;
    scim_group(&addr, "approvers", &dana).await;
    let number = crate::approvals::open_pr(&app, &fx).await;
    let ts = crate::approvals::change_message(&app).ts;
    // Dana is known (linked by email) but has no GitHub login yet: her review is nobody's.
    assert!(
        app.ack("U0DANA", "/slipway whoami")
            .await
            .contains("dana@example.com")
    );
    fx.github.add_user("dana-gh", "tok-dana");
    let done = crate::approvals::link_by_device_flow(
        &app.slack,
        &fx,
        async |u| app.ack(u, "/slipway link github").await,
        "U0DANA",
        "dana-gh",
    )
    .await;
    assert!(done.contains("Linked GitHub account `dana-gh`"), "{done}");
    fx.github
        .review(OWNER, REPO, number, "dana-gh", "APPROVE", "ok");
    assert!(
        crate::approvals::message_contains(&app.slack, &ts, "*1 of 2*").await,
        "{:?}",
        crate::approvals::change_message(&app)
    );
}

/// A person the IdP deactivates after asking: their pending Confirm opens nothing, and their
/// Approve button opens no dialog, each answered with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_persons_pending_confirm_and_approve_stop_working() {
    use serde_json::json;
    use slipway_tests::gitops::{self, OWNER, REPO};
    let fx = gitops::start().await;
    let app = crate::approvals::start_with(&fx, scim_app_opts()).await;
    let addr = app.addr.to_string();
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    let dana = provision_dana(&addr).await;
    for group in ["operators", "approvers"] {
        scim_group(&addr, group, &dana).await;
    }
    // Someone else's change is open for review, and Dana has a dry run waiting for Confirm.
    let _number = crate::approvals::open_pr(&app, &fx).await;
    let ts = crate::approvals::change_message(&app).ts;
    let dry = app.ack("U0DANA", "/deploy api staging v3.0.0").await;
    assert!(dry.starts_with("Dry run of"), "{dry}");
    assert!(
        app.slack
            .wait_until(std::time::Duration::from_secs(30), |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("slipway_confirm")))
            .await
    );
    let confirm = crate::change_limits::confirm_value(&app);
    patch_user(
        &app,
        &dana,
        json!({"op": "replace", "value": {"active": false}}),
    )
    .await;

    let views = app.slack.views().len();
    app.click(
        "U0DANA",
        "slipway_approve",
        &crate::approvals::approve_value(&app.slack, &ts),
        &ts,
    )
    .await;
    let refused = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .filter(|r| {
                r.body
                    .to_string()
                    .contains("deactivated in the company directory")
            })
            .count()
    };
    assert!(
        app.slack
            .wait_until(std::time::Duration::from_secs(30), |s| refused(s) >= 1)
            .await,
        "{:?}",
        app.slack.responses()
    );
    assert_eq!(app.slack.views().len(), views, "no review dialog opened");

    app.click("U0DANA", "slipway_confirm", &confirm, "1.0")
        .await;
    assert!(
        app.slack
            .wait_until(std::time::Duration::from_secs(30), |s| refused(s) >= 2)
            .await,
        "{:?}",
        app.slack.responses()
    );
    assert_eq!(
        fx.github.pulls(OWNER, REPO).len(),
        1,
        "Dana's change never opened"
    );
}

/// Replicas on one Redis (issue 19): a person provisioned through replica A runs commands
/// through replica B, the link B makes is known to A, and a deactivation pushed to A ends
/// their access on B, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_provisioned_through_one_replica_is_resolved_and_deactivated_on_another() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let redis = slipway_tests::redis_server::RedisServer::start(dir.path());
    let replica = |name: &'static str, slack_api: Option<String>| {
        let mut opts = scim_app_opts();
        opts.env.push(("SLIPWAY_REDIS_URL", redis.url()));
        opts.env.push(("SLIPWAY_AUDIT_WRITER", name.into()));
        if let Some(api) = slack_api {
            opts.env.push(("SLIPWAY_SLACK_API_URL", api));
        }
        TestApp::start_with(opts)
    };
    let a = replica("a", None).await;
    let b = replica("b", Some(a.slack.api_url())).await;
    a.slack.add_user("U0DANA", "dana", Some("dana@example.com"));
    let id = provision_dana(&a.addr.to_string()).await;
    let line = "/kubectl get pods -n web";
    let mut ack = String::new();
    for _ in 0..50 {
        ack = b.ack("U0DANA", line).await;
        if ack.starts_with("Running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ack.starts_with("Running") && ack.contains("as viewer"),
        "B knows the person A provisioned: {ack}"
    );
    let who = a.ack("U0DANA", "/slipway whoami").await;
    assert!(who.contains("dana@example.com"), "A knows B's link: {who}");

    patch_user(
        &a,
        &id,
        json!({"op": "replace", "value": {"active": false}}),
    )
    .await;
    let mut denied = String::new();
    for _ in 0..50 {
        denied = b.ack("U0DANA", line).await;
        if denied.contains("deactivated in the company directory") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        denied.contains("deactivated in the company directory"),
        "B stops them: {denied}"
    );
}
