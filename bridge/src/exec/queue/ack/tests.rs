//! The ack's one script against a real redis-server: a replay or a retry takes nothing, a busy
//! user's pending change stays pending, and a change is taken once.

use super::*;
use crate::shared::Redis;

fn shared(server: &crate::shared::test_server::TestRedis) -> Shared {
    Shared {
        redis: Redis::new(server.config("t:")),
        replica: "me#1".into(),
        claim_timeout: Duration::from_secs(30),
        per_user: 1,
        bound: 10,
    }
}

fn ticket(mac: &str, trigger: &str) -> Ticket {
    Ticket {
        replay: Some(format!("t:replay:{mac}")),
        dedupe: Some(format!("t:seen:trigger:{trigger}")),
    }
}

async fn slots(s: &Shared, user: &str) -> usize {
    let key = s.user_slots(user);
    s.redis
        .run(|mut c| async move { redis::cmd("ZCARD").arg(key).query_async(&mut c).await })
        .await
        .unwrap()
}

fn step<'a>(id: &'a str, gate: Option<&'a Ticket>, take: Option<&'a str>) -> Admission<'a> {
    Admission {
        id,
        user: "U1",
        gate,
        work: Work::Slot,
        take,
    }
}

#[tokio::test]
async fn a_replay_or_a_retry_is_refused_before_any_slot_is_taken() {
    let server = crate::shared::test_server::TestRedis::start();
    let s = shared(&server);
    let first = ticket("aa", "T1");
    assert_eq!(
        s.admit_ack(step("1", Some(&first), None)).await.unwrap(),
        Admitted::Ok(None)
    );
    s.release("1", "U1").await.unwrap();
    // The same signed request again: a replay, whatever else it carries.
    let again = s.admit_ack(step("2", Some(&first), None)).await.unwrap();
    assert_eq!(again, Admitted::Replayed);
    // A new signature around the same trigger: a retry.
    let retry = ticket("bb", "T1");
    assert_eq!(
        s.admit_ack(step("3", Some(&retry), None)).await.unwrap(),
        Admitted::Duplicate
    );
    assert_eq!(slots(&s, "U1").await, 0, "neither took a slot");
}

#[tokio::test]
async fn a_pending_change_is_taken_only_when_admitted_and_only_once() {
    let server = crate::shared::test_server::TestRedis::start();
    let s = shared(&server);
    let key = "t:pending:tok".to_string();
    let k = key.clone();
    let _: () = s
        .redis
        .run(|mut c| async move { redis::cmd("SET").arg(k).arg("{}").query_async(&mut c).await })
        .await
        .unwrap();
    // The user is at their limit: refused, and the change stays pending.
    assert_eq!(
        s.admit("busy", "U1", None).await.unwrap(),
        Admitted::Ok(None)
    );
    let busy = s.admit_ack(step("c1", None, Some(&key))).await.unwrap();
    assert_eq!(busy, Admitted::UserBusy(1));
    s.release("busy", "U1").await.unwrap();
    let taken = s.admit_ack(step("c2", None, Some(&key))).await.unwrap();
    assert_eq!(taken, Admitted::Ok(Some("{}".into())));
    s.release("c2", "U1").await.unwrap();
    let gone = s.admit_ack(step("c3", None, Some(&key))).await.unwrap();
    assert_eq!(gone, Admitted::Gone, "a second click finds nothing");
    assert_eq!(slots(&s, "U1").await, 0);
}
