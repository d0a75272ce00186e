//! Replicas sharing their state stores through one real Redis (issue 19): a dry run acked by
//! one replica is confirmed through another, and `slipway state migrate --to redis` moves a
//! single replica's embedded state into Redis.

use std::time::Duration;

use slipway_bridge::store::{Deadline, RedbStore, RedisStore, SlackThread, StateStore};
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO};
use slipway_tests::harness::{Options, TestApp};
use slipway_tests::redis_server::RedisServer;

use crate::changes::{button_value, wait_pulls};

const LONG: Duration = Duration::from_secs(30);

pub(crate) async fn change_replica(redis: &RedisServer, fx: &GitOpsFixture, name: &str) -> TestApp {
    let mut env = fx.env.clone();
    env.push(("SLIPWAY_REDIS_URL", redis.url()));
    env.push(("SLIPWAY_AUDIT_WRITER", name.to_string()));
    TestApp::start_with(Options {
        env,
        config_yaml: Some(fx.config_yaml.clone()),
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_acked_by_one_replica_is_confirmed_through_another() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let fx = gitops::start().await;
    let a = change_replica(&redis, &fx, "a").await;
    let b = change_replica(&redis, &fx, "b").await;
    let ack = a.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    let has_confirm = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .any(|r| r.body.to_string().contains("slipway_confirm"))
    };
    assert!(a.slack.wait_until(LONG, has_confirm).await);
    let resp = a
        .slack
        .responses()
        .into_iter()
        .find(|r| r.body.to_string().contains("slipway_confirm"))
        .unwrap();
    let token = button_value(&resp.body["blocks"], "slipway_confirm").unwrap();
    b.click("U0OPERATOR", "slipway_confirm", &token, "1.1")
        .await;
    wait_pulls(&fx, 1).await;
    // A second click, on the first replica, finds the change taken: still one PR.
    a.click("U0OPERATOR", "slipway_confirm", &token, "1.1")
        .await;
    assert!(
        a.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("already confirmed")))
            .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fx.github.pulls(OWNER, REPO).len(), 1);
}

#[test]
fn state_migrate_moves_a_redb_state_into_redis_and_refuses_a_held_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let s = RedbStore::open(&state).unwrap();
        let thread = SlackThread {
            channel: "C1".into(),
            ts: "1.5".into(),
        };
        s.set_thread(12, &thread).unwrap();
        s.set_sealed_token_at("U1", b"sealed", 4).unwrap();
        let deadline = Deadline {
            head_sha: "abc".into(),
            expires_at: 99,
        };
        s.set_deadline(12, &deadline).unwrap();
        let links = slipway_bridge::identity::links::RedbLinks::open(&state).unwrap();
        let link = slipway_bridge::identity::links::Link {
            person: "p-1".into(),
            how: slipway_bridge::identity::links::LinkHow::Email,
            email: Some("ada@example.com".into()),
            at: 1,
            github: None,
        };
        slipway_bridge::identity::links::LinkStore::set_link(&links, "U1", &link).unwrap();
    }
    let redis = RedisServer::start(dir.path());
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .args(["state", "migrate", "--to", "redis", "--state-dir"])
            .arg(&state)
            .env("SLIPWAY_REDIS_URL", redis.url())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(
        crate::stdout(&out).contains("1  slack threads"),
        "{}",
        crate::stdout(&out)
    );
    assert!(run().status.success(), "idempotent");
    let config = slipway_bridge::config::RedisConfig {
        target: slipway_bridge::config::RedisTarget::Url(redis.url()),
        username: None,
        password: slipway_bridge::config::Secret::default(),
        prefix: "slipway:".into(),
    };
    let pool = slipway_bridge::shared::blocking::Pool::new(config);
    let to = RedisStore::new(pool.clone());
    assert_eq!(to.thread(12).unwrap().map(|t| t.ts), Some("1.5".into()));
    assert_eq!(to.token_generation("U1").unwrap(), 4);
    assert_eq!(to.deadline(12).unwrap().map(|d| d.expires_at), Some(99));
    let links = slipway_bridge::identity::links_redis::RedisLinks::open(&pool);
    let got = slipway_bridge::identity::links::LinkStore::link(&links, "U1").unwrap();
    assert_eq!(got.map(|l| l.person), Some("p-1".into()));

    // A bridge still holding the file: refused, saying so; Redis down: refused, non-zero.
    let held = RedbStore::open(&state).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::stderr(&out).contains("in use"),
        "{}",
        crate::stderr(&out)
    );
    drop(held);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["state", "migrate", "--to", "redis", "--state-dir"])
        .arg(&state)
        .env("SLIPWAY_REDIS_URL", "redis://:topsecretpw@127.0.0.1:1/0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::stderr(&out).contains("Redis"),
        "{}",
        crate::stderr(&out)
    );
    assert!(!crate::stderr(&out).contains("topsecretpw"));
}
