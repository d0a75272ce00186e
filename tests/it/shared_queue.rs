//! The queue, limits, Cancel and leadership shared by replicas through one real Redis
//! (issue 19, step 2).

use std::time::{Duration, Instant};

use slipway_bridge::config::{RedisConfig, RedisTarget, Secret};
use slipway_bridge::exec::queue::ack::{Admission, Admitted, Work};
use slipway_bridge::exec::queue::changes::ChangeRecord;
use slipway_bridge::exec::queue::shared::Shared;
use slipway_bridge::exec::queue::{ChangeTask, Enqueued, Runs, WireJob};
use slipway_bridge::shared::{Fence, Leader, Lease, Redis};
use slipway_tests::harness::{Options, TestApp};
use slipway_tests::redis_server::RedisServer;

const LONG: Duration = Duration::from_secs(30);

fn redis_on(server: &RedisServer) -> Redis {
    Redis::new(RedisConfig {
        target: RedisTarget::Url(server.url()),
        username: None,
        password: Secret::default(),
        prefix: "slipway:".into(),
    })
}

fn shared(server: &RedisServer, replica: &str, claim_timeout: Duration) -> Shared {
    Shared {
        redis: redis_on(server),
        replica: replica.to_string(),
        claim_timeout,
        per_user: 2,
        bound: 3,
    }
}

fn wire(id: &str, user: &str) -> WireJob {
    WireJob {
        id: id.to_string(),
        command: "/kubectl".into(),
        text: "get pods -n web".into(),
        user_id: user.to_string(),
        team_id: None,
        enterprise_id: None,
        user_name: "someone".into(),
        channel: "C0OPS".into(),
        response_url: String::new(),
        decision_audit_id: format!("decision-{id}"),
        thread_ts: None,
    }
}

async fn connection(s: &Shared) -> redis::aio::MultiplexedConnection {
    s.worker_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_and_global_limits_hold_across_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let (a, b) = (shared(&server, "a", LONG), shared(&server, "b", LONG));
    let w = |id: &str, u: &str| wire(id, u);
    assert_eq!(
        a.admit("1", "U1", Some(&w("1", "U1"))).await.unwrap(),
        Admitted::Ok(None)
    );
    assert_eq!(
        b.admit("2", "U1", Some(&w("2", "U1"))).await.unwrap(),
        Admitted::Ok(None)
    );
    assert_eq!(
        a.admit("3", "U1", Some(&w("3", "U1"))).await.unwrap(),
        Admitted::UserBusy(2),
        "the user's third command is refused whichever replica took the first two"
    );
    assert_eq!(
        b.admit("4", "U2", Some(&w("4", "U2"))).await.unwrap(),
        Admitted::Ok(None)
    );
    assert_eq!(
        a.admit("5", "U3", Some(&w("5", "U3"))).await.unwrap(),
        Admitted::Full,
        "three in flight across the deployment: full"
    );
    let mut c = server.client();
    let len: u64 = redis::cmd("XLEN")
        .arg("slipway:jobs")
        .query(&mut c)
        .unwrap();
    assert_eq!(len, 3, "a refused command adds nothing to the stream");
    b.release("1", "U1").await.unwrap();
    assert_eq!(
        a.admit("6", "U1", Some(&w("6", "U1"))).await.unwrap(),
        Admitted::Ok(None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_pools_on_one_redis_share_the_per_user_limit_and_free_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let metrics = slipway_bridge::metrics::Metrics::new();
    let pool = |name: &str| Runs::new(32, 2).with_shared(shared(&server, name, LONG));
    let (a, b) = (pool("a"), pool("b"));
    let task = |id: &str| ChangeTask {
        id: id.to_string(),
        user: "U1".into(),
        report_to: String::new(),
        work: Box::pin(async {}),
    };
    assert_eq!(
        a.enqueue_change(task("c1"), None, &metrics).await,
        Enqueued::Ok
    );
    assert_eq!(
        b.enqueue_change(task("c2"), None, &metrics).await,
        Enqueued::Ok
    );
    assert_eq!(
        b.enqueue_change(task("c3"), None, &metrics).await,
        Enqueued::UserBusy(2),
        "each pool would take it alone; together they are at the user's limit"
    );
    a.change_done("c1", "U1").await;
    assert_eq!(
        b.enqueue_change(task("c4"), None, &metrics).await,
        Enqueued::Ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replicas_long_read_is_never_claimed_but_a_silent_ones_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let timeout = Duration::from_millis(600);
    let (a, b) = (shared(&server, "a", timeout), shared(&server, "b", timeout));
    a.admit("r1", "U1", Some(&wire("r1", "U1"))).await.unwrap();
    let (mut ca, mut cb) = (connection(&a).await, connection(&b).await);
    let taken = a.next(&mut ca).await.unwrap().expect("a takes the job");
    assert!(!taken.retried);
    assert_eq!(taken.job.as_ref().unwrap().id, "r1");
    // a keeps heartbeating while b reads (each read blocks up to two seconds, many claim
    // timeouts in all): b never gets it.
    let beats = {
        let (a, entry) = (a.clone(), taken.entry.clone());
        tokio::spawn(async move {
            loop {
                assert!(a.heartbeat(&entry, "r1", "U1", "U1").await.ours);
                tokio::time::sleep(timeout / 3).await;
            }
        })
    };
    for _ in 0..3 {
        let stolen = b.next(&mut cb).await.unwrap();
        assert!(
            stolen.is_none(),
            "a live replica's read was claimed: {stolen:?}"
        );
    }
    assert_eq!(b.running("r1").await.unwrap().unwrap().replica, "a");
    beats.abort();
    // a stops answering: after the claim timeout, b claims it as a retry.
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    let claimed = b
        .next(&mut cb)
        .await
        .unwrap()
        .expect("b claims the idle read");
    assert!(claimed.retried);
    assert_eq!(claimed.entry, taken.entry);
    assert!(
        !a.heartbeat(&taken.entry, "r1", "U1", "U1").await.ours,
        "the stalled owner's late heartbeat doesn't take it back"
    );
    assert!(b.claim_post("r1").await, "the first result is posted");
    assert!(!a.claim_post("r1").await, "the second is not");
    b.done(&claimed.entry, "r1", "U1").await.unwrap();
    assert!(b.running("r1").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_step_whose_replica_died_is_reported_once_and_never_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let timeout = Duration::from_millis(400);
    let (a, b, c) = (
        shared(&server, "a", timeout),
        shared(&server, "b", timeout),
        shared(&server, "c", timeout),
    );
    let record = ChangeRecord {
        id: "ch1".into(),
        replica: "a".into(),
        user: "U1".into(),
        report_to: "https://hooks.example/r1".into(),
    };
    let step = Admission {
        id: "ch1",
        user: "U1",
        gate: None,
        work: Work::Change(&record),
        take: None,
    };
    assert_eq!(a.admit_ack(step).await.unwrap(), Admitted::Ok(None));
    b.alive().await.unwrap();
    assert!(b.orphaned_changes().await.unwrap().is_empty(), "a is alive");
    // a dies (no more liveness beats); b and c both look.
    tokio::time::sleep(timeout * 2 + Duration::from_millis(200)).await;
    let (from_b, from_c) = tokio::join!(b.orphaned_changes(), c.orphaned_changes());
    let reported: Vec<_> = from_b.unwrap().into_iter().chain(from_c.unwrap()).collect();
    assert_eq!(reported.len(), 1, "reported exactly once: {reported:?}");
    assert_eq!(reported[0].report_to, "https://hooks.example/r1");
    // Its slot is free again: the user may run two more.
    assert_eq!(b.admit("x1", "U1", None).await.unwrap(), Admitted::Ok(None));
    assert_eq!(b.admit("x2", "U1", None).await.unwrap(), Admitted::Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_a_successor_takes_over_and_a_stale_fence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let ttl = Duration::from_millis(600);
    let lease = |id: &str| match Leader::redis(redis_on(&server), id.to_string(), ttl) {
        Leader::Redis(l) => l,
        Leader::Embedded => unreachable!(),
    };
    let (a, b): (std::sync::Arc<Lease>, std::sync::Arc<Lease>) = (lease("a"), lease("b"));
    let fa = a.acquire().await.expect("a takes the free lease");
    assert!(b.acquire().await.is_none(), "only one leads");
    assert!(a.check(fa).await);
    // a keeps renewing: b never gets it.
    for _ in 0..4 {
        assert!(a.renew(fa).await);
        tokio::time::sleep(ttl / 3).await;
        assert!(b.acquire().await.is_none());
    }
    // a stalls (killed, paused): the lease expires and b takes it with a higher fence.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let fb = b
        .acquire()
        .await
        .expect("b takes over after the lease expired");
    assert!(fb.0 > fa.0, "{fb:?} after {fa:?}");
    assert!(b.check(fb).await);
    assert!(!a.check(fa).await, "the stale leader's fence is refused");
    assert!(!a.renew(fa).await, "and it can't extend b's lease");
    assert!(!b.check(Fence(fa.0)).await);
    assert_eq!(Leader::Embedded.lead().await, Some(Fence(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_campaigning_elect_exactly_one_and_a_clean_shutdown_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    // Campaigns every 2 s; an unreleased lease would take 6 s to expire.
    let ttl = Duration::from_secs(6);
    let a = Leader::redis(redis_on(&server), "a".into(), ttl);
    let b = Leader::redis(redis_on(&server), "b".into(), ttl);
    a.start();
    b.start();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (leader, other) = loop {
        let (la, lb) = (a.lead().await.is_some(), b.lead().await.is_some());
        assert!(!(la && lb), "two leaders at once");
        if la {
            break (&a, &b);
        }
        if lb {
            break (&b, &a);
        }
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    leader.step_down().await;
    assert!(
        leader.lead().await.is_none(),
        "a leader that stepped down doesn't act"
    );
    let handed_over = Instant::now();
    while other.lead().await.is_none() {
        assert!(
            handed_over.elapsed() < Duration::from_secs(4),
            "the successor waited for the lease to expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(leader.lead().await.is_none(), "and doesn't campaign again");
}

/// A replica on `redis` with a slow namespace on its cluster, so a read there runs until
/// cancelled.
async fn slow_replica(redis: &RedisServer, name: &str) -> TestApp {
    let app = TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", name.to_string()),
        ],
        ..Options::default()
    })
    .await;
    app.kube.add_namespace("slow");
    app.kube
        .set_slow_namespace("slow", Duration::from_secs(120));
    app
}

fn cancel_value(blocks: &serde_json::Value) -> Option<String> {
    blocks.as_array()?.iter().find_map(|b| {
        b["elements"]
            .as_array()?
            .iter()
            .find(|e| e["action_id"] == "slipway_cancel")
            .and_then(|e| e["value"].as_str())
            .map(String::from)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_clicked_on_one_replica_stops_the_run_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let a = slow_replica(&redis, "a").await;
    let b = slow_replica(&redis, "b").await;
    let ack = a.ack("U0VIEWER", "/kubectl get pods -n slow").await;
    assert!(ack.starts_with("Running"), "{ack}");
    // Whichever replica's worker took it posts the run message to its own Slack.
    let deadline = Instant::now() + LONG;
    let (runner, other, msg) = loop {
        if let Some(m) = a
            .slack
            .messages()
            .into_iter()
            .find(|m| m.blocks.to_string().contains("--namespace=slow"))
        {
            break (&a, &b, m);
        }
        if let Some(m) = b
            .slack
            .messages()
            .into_iter()
            .find(|m| m.blocks.to_string().contains("--namespace=slow"))
        {
            break (&b, &a, m);
        }
        assert!(Instant::now() < deadline, "no run message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run_id = cancel_value(&msg.blocks).expect("a Cancel button while running");
    // Someone else, not an owner, is refused on the other replica too.
    assert_eq!(
        other
            .click("U0APPROVER1", "slipway_cancel", &run_id, &msg.ts)
            .await,
        200
    );
    assert!(
        other
            .slack
            .wait_until(LONG, |s| s.responses().iter().any(|r| r
                .body
                .to_string()
                .contains("Only the person who ran this command")))
            .await
    );
    assert_eq!(
        other
            .click("U0VIEWER", "slipway_cancel", &run_id, &msg.ts)
            .await,
        200
    );
    let (main, _) = runner.wait_finished(&msg.ts, LONG).await;
    let text = main.blocks.to_string();
    assert!(text.contains("cancelled by <@U0VIEWER>"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_and_run_what_is_queued_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path());
    let app = TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", "a".to_string()),
        ],
        ..Options::default()
    })
    .await;
    assert!(
        app.ack("U0VIEWER", "/kubectl get pods -n web")
            .await
            .starts_with("Running")
    );
    let first = app
        .wait_message("--namespace=web", LONG)
        .await
        .expect("ran");
    app.wait_finished(&first.ts, LONG).await;
    // Redis restarts empty: no stream, no group. The workers back off, then recreate them.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.resume();
    let deadline = Instant::now() + LONG;
    loop {
        let ack = app.ack("U0VIEWER", "/kubectl get deployments -n web").await;
        if ack.starts_with("Running") {
            break;
        }
        assert!(ack.contains("shared state"), "{ack}");
        assert!(Instant::now() < deadline, "never accepted again");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let second = app
        .wait_message("kubectl get deployments", LONG)
        .await
        .expect("the read queued after the restart runs without a bridge restart");
    let (_, thread) = app.wait_finished(&second.ts, LONG).await;
    assert!(
        thread[0].blocks.to_string().contains("web"),
        "{:?}",
        thread[0].blocks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_the_shared_queue_refuses_runs_nothing_and_the_trail_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    // An ACL user that passes the ack's gate (SET) but can't run the enqueue script: Redis
    // answers, the enqueue fails after the decision was recorded.
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "slipway",
            "on",
            ">queue-test-password",
            "~*",
            "&*",
            "+@all",
        ])
        .arg(&["-eval", "-evalsha"])
        .query::<()>(&mut redis.client())
        .unwrap();
    let app = TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_REDIS_USERNAME", "slipway".into()),
            ("SLIPWAY_REDIS_PASSWORD", "queue-test-password".into()),
            ("SLIPWAY_AUDIT_WRITER", "a".to_string()),
        ],
        ..Options::default()
    })
    .await;
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert!(
        ack.contains("can't reach its shared state") && ack.contains("nothing was run"),
        "{ack}"
    );
    let len: u64 = redis::cmd("XLEN")
        .arg("slipway:jobs")
        .query(&mut redis.client())
        .unwrap();
    assert_eq!(len, 0, "nothing queued");
    let audit = app.audit();
    let decision = audit
        .iter()
        .find(|r| {
            r.command
                .as_ref()
                .is_some_and(|c| c.text.contains("get pods"))
        })
        .expect("the decision is recorded");
    let not_run = audit.iter().find(|r| {
        r.details.as_ref().is_some_and(|d| {
            d["decision_event_id"] == decision.event_id.as_str()
                && d["end"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("not queued"))
        })
    });
    assert!(
        not_run.is_some(),
        "the trail says it was not queued: {audit:#?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(app.slack.messages().is_empty(), "nothing ran");
}

/// Whoever can write to Redis is not a policy: a job added to the stream by hand, for a read
/// the named requester may not run, is judged again by the replica that takes it and refused
/// there; kubectl never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_stream_entry_for_a_denied_read_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let app = TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", "a".into()),
        ],
        ..Options::default()
    })
    .await;
    // A read the viewer is refused at the ack, for comparison.
    let denied = app.ack("U0VIEWER", "/kubectl get pods -n prod").await;
    assert!(denied.contains(":no_entry:"), "{denied}");
    let response_url = app.slack.new_response_url();
    let forged = WireJob {
        id: "forged-run-1".into(),
        text: "get pods -n prod".into(),
        user_id: "U0VIEWER".into(),
        response_url: response_url.clone(),
        ..wire("forged-run-1", "U0VIEWER")
    };
    let mut conn = redis.client();
    let _: String = redis::cmd("XADD")
        .arg("slipway:jobs")
        .arg("*")
        .arg("job")
        .arg(serde_json::to_string(&forged).unwrap())
        .query(&mut conn)
        .unwrap();
    assert!(
        app.slack
            .wait_until(LONG, |s| s.responses().iter().any(|r| r
                .body
                .to_string()
                .contains("policy no longer lets it run")))
            .await,
        "{:#?}",
        app.slack.responses()
    );
    assert!(
        !app.kube
            .requests()
            .iter()
            .any(|r| r.path.contains("/namespaces/prod/")),
        "kubectl ran for the forged job"
    );
}
