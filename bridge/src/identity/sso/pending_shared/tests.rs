//! Logins shared by two replicas through a real redis-server.

use super::super::pending::tests::flow;
use super::*;
use crate::shared::test_server::TestRedis;

/// Wait for the write started after the ack.
async fn landed(logins: &SharedLogins, state: &str, now: i64) {
    for _ in 0..100 {
        if logins.peek(state, now).await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the login was never written");
}

#[tokio::test]
async fn a_login_begun_on_one_replica_is_finished_on_another_once() {
    let server = TestRedis::start();
    let a = SharedLogins::new(Redis::new(server.config("t:")));
    let b = SharedLogins::new(Redis::new(server.config("t:")));
    let f = flow("U0ADA", 100);
    let (challenge, verifier) = (
        f.challenge.as_str().to_string(),
        f.verifier.secret().clone(),
    );
    a.insert("state-a", &f);
    landed(&b, "state-a", 101).await;
    let (seen, _) = b.peek("state-a", 101).await.unwrap();
    assert_eq!(seen.as_str(), challenge, "the challenge is the verifier's");
    let taken = b.take("state-a", 102).await.unwrap();
    assert_eq!(
        (taken.slack_user.as_str(), taken.verifier.secret()),
        ("U0ADA", &verifier)
    );
    assert_eq!(a.take("state-a", 103).await.unwrap_err(), Refusal::Unknown);
    // A write that lands after the take can't bring the state back.
    a.insert("state-a", &flow("U0ADA", 104));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(b.peek("state-a", 105).await.unwrap_err(), Refusal::Unknown);
}

#[tokio::test]
async fn a_new_request_replaces_the_old_and_links_expire() {
    let server = TestRedis::start();
    let a = SharedLogins::new(Redis::new(server.config("t:")));
    a.insert("old", &flow("U0ADA", 0));
    landed(&a, "old", 1).await;
    a.insert("new", &flow("U0ADA", 10));
    landed(&a, "new", 11).await;
    assert_eq!(a.peek("old", 11).await.unwrap_err(), Refusal::Unknown);
    assert_eq!(
        a.take("new", TTL_SECS + 10).await.unwrap_err(),
        Refusal::Expired
    );
    // Redis away: a sentence about that, not "unknown".
    drop(server);
    assert_eq!(a.take("new", 12).await.unwrap_err(), Refusal::Unavailable);
}

/// Everything Redis holds for a login, as a dump would show it.
async fn dump(server: &TestRedis) -> String {
    let redis = Redis::new(server.config("t:"));
    let keys: Vec<String> = redis
        .run(|mut c| async move { redis::cmd("KEYS").arg("*").query_async(&mut c).await })
        .await
        .unwrap();
    let mut all = keys.join("\n");
    for key in keys {
        let value: Option<String> = redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .unwrap();
        all.push_str(&value.unwrap_or_default());
    }
    all
}

#[tokio::test]
async fn a_redis_dump_shows_no_verifier_nor_response_url_and_only_the_state_opens_it() {
    let server = TestRedis::start();
    let a = SharedLogins::new(Redis::new(server.config("t:")));
    let f = flow("U0ADA", 100);
    let verifier = f.verifier.secret().clone();
    a.insert("the-state-in-the-link", &f);
    landed(&a, "the-state-in-the-link", 101).await;
    let seen = dump(&server).await;
    assert!(!seen.contains(&verifier), "{seen}");
    assert!(
        !seen.contains("hooks.slack.com") && !seen.contains("U0ADA\""),
        "{seen}"
    );
    assert!(
        !seen.contains("the-state-in-the-link"),
        "only the state's digest is a key"
    );
    // The sealed login under another state's key: it opens for nobody.
    let digest = hex_digest("the-state-in-the-link");
    let sealed = seal("the-state-in-the-link", &digest, b"{}".to_vec()).unwrap();
    assert!(open("another-state", &digest, &sealed).is_none());
    assert!(open("the-state-in-the-link", &hex_digest("x"), &sealed).is_none());
    assert!(open("the-state-in-the-link", &digest, &sealed[..8]).is_none());
    assert!(open("the-state-in-the-link", &digest, &sealed).is_some());
}
