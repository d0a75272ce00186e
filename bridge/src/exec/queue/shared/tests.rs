//! The shared queue against its reply shapes and a real redis-server.

use super::*;

#[tokio::test]
async fn a_stopped_replicas_idle_consumer_is_pruned_but_one_holding_a_job_is_not() {
    let server = crate::shared::test_server::TestRedis::start();
    let shared = Shared {
        redis: Redis::new(server.config("t:")),
        replica: "me#1".into(),
        claim_timeout: Duration::from_secs(30),
        per_user: 2,
        bound: 10,
    };
    let mut conn = shared.worker_connection().await.unwrap();
    let read = |consumer: &str| {
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(shared.stream())
            .arg(">")
            .clone()
    };
    // `old#1` holds nothing; `busy#1` holds an entry; `me#1` is this replica.
    for consumer in ["old#1", "me#1"] {
        let _: Value = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(shared.stream())
            .arg(GROUP)
            .arg(consumer)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: String = redis::cmd("XADD")
        .arg(shared.stream())
        .arg("*")
        .arg("job")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: Value = read("busy#1").query_async(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(shared.prune_consumers(Duration::from_secs(60)).await, Ok(0));
    assert_eq!(
        shared.prune_consumers(Duration::from_millis(10)).await,
        Ok(1)
    );
    let info: Vec<Vec<Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(shared.stream())
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    let names: Vec<String> = info.iter().filter_map(|c| text(&c[1])).collect();
    assert_eq!(names, ["busy#1", "me#1"]);
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn job_json() -> String {
    serde_json::json!({
        "id": "r1", "command": "/kubectl", "text": "get pods", "user_id": "U1",
        "team_id": null, "enterprise_id": null, "user_name": "u", "channel": "C1",
        "response_url": "", "decision_audit_id": "d1",
    })
    .to_string()
}

#[test]
fn xautoclaim_replies_of_redis_7_and_6_2_are_read() {
    let entry = Value::Array(vec![
        bulk("1-0"),
        Value::Array(vec![bulk("job"), bulk(&job_json())]),
    ]);
    // Redis 7: a third element lists deleted ids.
    let v7 = Value::Array(vec![
        bulk("0-0"),
        Value::Array(vec![entry]),
        Value::Array(vec![bulk("0-9")]),
    ]);
    let d = autoclaimed(&v7).expect("an entry");
    assert!(d.retried);
    assert_eq!(d.entry, "1-0");
    assert_eq!(d.job.map(|j| j.id).as_deref(), Some("r1"));
    // Redis 6.2: a deleted entry comes back as `[id, nil]`: taken, unreadable (dropped).
    let v6 = Value::Array(vec![
        bulk("0-0"),
        Value::Array(vec![Value::Array(vec![bulk("2-0"), Value::Nil])]),
    ]);
    let d = autoclaimed(&v6).expect("an entry");
    assert!(d.job.is_none());
    assert!(autoclaimed(&Value::Array(vec![bulk("0-0"), Value::Array(vec![])])).is_none());
}

#[test]
fn xreadgroup_replies_are_read_and_garbage_is_not_a_job() {
    let entry = |payload: &str| {
        Value::Array(vec![
            bulk("3-0"),
            Value::Array(vec![bulk("job"), bulk(payload)]),
        ])
    };
    let reply = |e| {
        Value::Array(vec![Value::Array(vec![
            bulk("jobs"),
            Value::Array(vec![e]),
        ])])
    };
    let d = read_group(&reply(entry(&job_json()))).expect("an entry");
    assert!(!d.retried);
    assert_eq!(d.job.map(|j| j.user_id).as_deref(), Some("U1"));
    let d = read_group(&reply(entry("{not json"))).expect("an entry");
    assert!(d.job.is_none(), "an unreadable entry is dropped, not run");
    assert!(read_group(&Value::Nil).is_none());
}

fn sample(id: &str) -> WireJob {
    WireJob {
        id: id.into(),
        command: "/kubectl".into(),
        text: "get pods -n web".into(),
        user_id: "U1".into(),
        team_id: None,
        enterprise_id: None,
        user_name: "ada".into(),
        channel: "C1".into(),
        response_url: String::new(),
        decision_audit_id: format!("d-{id}"),
        thread_ts: None,
    }
}

fn queue(server: &crate::shared::test_server::TestRedis) -> Shared {
    Shared {
        redis: Redis::new(server.config("t:")),
        replica: "me#1".into(),
        claim_timeout: Duration::from_secs(30),
        per_user: 5,
        bound: 10,
    }
}

#[tokio::test]
async fn a_cancel_the_channel_missed_reaches_the_running_replicas_heartbeat() {
    let server = crate::shared::test_server::TestRedis::start();
    let shared = queue(&server);
    let mut conn = shared.worker_connection().await.unwrap();
    shared.admit("r1", "U1", Some(&sample("r1"))).await.unwrap();
    let taken = shared.next(&mut conn).await.unwrap().expect("the read");
    let beat = shared.heartbeat(&taken.entry, "r1", "U1", "U1").await;
    assert_eq!((beat.ours, beat.cancelled_by), (true, None));
    // Nobody is subscribed: the published message is lost, the recorded one is not.
    shared.publish_cancel("r1", "U9").await.unwrap();
    let beat = shared.heartbeat(&taken.entry, "r1", "U1", "U1").await;
    assert_eq!(
        (beat.ours, beat.cancelled_by.as_deref()),
        (true, Some("U9"))
    );
}

#[tokio::test]
async fn waiting_counts_the_reads_no_worker_has_taken() {
    let server = crate::shared::test_server::TestRedis::start();
    let shared = queue(&server);
    let mut conn = shared.worker_connection().await.unwrap();
    assert_eq!(shared.waiting().await.unwrap(), 0);
    for id in ["w1", "w2", "w3"] {
        shared.admit(id, "U1", Some(&sample(id))).await.unwrap();
    }
    assert_eq!(shared.waiting().await.unwrap(), 3);
    shared.next(&mut conn).await.unwrap().expect("one taken");
    assert_eq!(shared.waiting().await.unwrap(), 2);
}
