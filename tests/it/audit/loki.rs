//! The Loki sink against the Loki emulator (Loki 2.4's push and query_range API with its
//! ordering rules): every record pushed as a line with stable labels and read back with LogQL,
//! through an outage and a replay after a lost cursor.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::audit::{AuditRecord, CommandInfo, DecisionInfo, EventKind};
use slipway_core::command::Family;
use slipway_core::policy::Outcome;
use slipway_emulators::loki::LokiEmulator;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::sinks::loki::{self, LokiSettings, LokiSink};
use slipway_infra::sinks::{self};
use slipway_infra::spool::SpoolLog;
use slipway_tests::harness::{audit_signing, http};
use tokio_util::sync::CancellationToken;

use super::{Recorded, eventually, fast_pacing, record, recorded, reopen_without_cursor};

const WAIT: Duration = Duration::from_secs(20);

fn sink(loki: &LokiEmulator) -> LokiSink {
    LokiSink::new(LokiSettings {
        url: loki.base_url(),
        tenant: None,
        auth: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// Runs the sink on `log` until the returned token is cancelled.
fn run(
    loki: &LokiEmulator,
    log: &Arc<SpoolLog>,
    metrics: Arc<Recorded>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = sinks::spawn(
        sink(loki),
        log.clone(),
        metrics,
        fast_pacing(),
        stop.clone(),
    );
    (stop, task)
}

/// The records a LogQL query finds, oldest first.
async fn logql(loki: &LokiEmulator, query: &str) -> Vec<AuditRecord> {
    let url = format!(
        "{}/loki/api/v1/query_range?direction=forward&limit=1000&query={}",
        loki.base_url(),
        url_encode(query)
    );
    let (status, body) = http("GET", &url, None).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["data"]["resultType"], "streams");
    let mut records: Vec<AuditRecord> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|v| serde_json::from_str(v[1].as_str().unwrap()).unwrap())
        .collect();
    records.sort_by_key(|r| r.seq);
    records
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decided(event: &str) -> AuditRecord {
    let mut r = record(EventKind::Decision, event, Some("cr-7"));
    r.command = Some(CommandInfo {
        text: "/kubectl scale deployment/api --replicas=3 -n web".into(),
        family: Some(Family::Kubectl),
        argv: None,
    });
    r.decision = Some(DecisionInfo {
        outcome: Outcome::Approval,
        rule: "prod-changes".into(),
        reason: "needs two approvals".into(),
        approval_rule: Some("standard".into()),
    });
    r
}

/// A Loki emulator, and a spool of writer `bridge:loki` in a temp dir.
async fn started() -> (LokiEmulator, tempfile::TempDir, AuditWriter) {
    let loki = LokiEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let writer =
        AuditWriter::start(dir.path(), "bridge:loki", &audit_signing("bridge:loki")).unwrap();
    (loki, dir, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_gets_every_record_with_stable_labels_and_logql_reads_them_back() {
    let (loki, _dir, writer) = started().await;
    let log = writer.log();
    let (stop, _) = run(&loki, &log, recorded());

    let mut written = vec![writer.record(decided("d-1")).await.unwrap()];
    for kind in [EventKind::Merge, EventKind::Execution, EventKind::Command] {
        let event = format!("{kind:?}-1").to_lowercase();
        written.push(
            writer
                .record(record(kind, &event, Some("cr-7")))
                .await
                .unwrap(),
        );
    }
    let last = written.last().unwrap().seq;
    assert!(eventually(WAIT, || log.cursor(loki::CURSOR).unwrap() == last).await);
    stop.cancel();

    // Every record, as written (hash and all), under `app="slipway"`.
    assert_eq!(logql(&loki, r#"{app="slipway"}"#).await, written);
    // The labels select by writer, kind, family and decision; ids are only in the line.
    let found = logql(
        &loki,
        r#"{app="slipway", writer="bridge:loki", event="decision", family="kubectl", decision="approval"}"#,
    )
    .await;
    assert_eq!(found, written[..1]);
    let merges = logql(
        &loki,
        r#"{app="slipway", event="merge", family="none"} |= "cr-7""#,
    )
    .await;
    assert_eq!(merges, written[1..2]);
    for line in loki.lines() {
        assert!(
            !line
                .labels
                .values()
                .any(|v| v.contains("cr-7") || v.contains("d-1")),
            "an id became a label: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_loki_loses_nothing_and_a_replay_adds_no_line() {
    let (loki, dir, writer) = started().await;
    let log = writer.log();
    loki.fail_with(Some(500));
    let metrics = recorded();
    let (stop, task) = run(&loki, &log, metrics.clone());
    for i in 0..3 {
        writer
            .record(record(EventKind::Command, &format!("c-{i}"), None))
            .await
            .unwrap();
    }
    assert!(eventually(WAIT, || loki.pushes() >= 2).await);
    assert_eq!(log.cursor(loki::CURSOR).unwrap(), 0, "nothing acknowledged");
    assert!(
        metrics
            .failures
            .lock()
            .unwrap()
            .contains(&("loki", "transient"))
    );
    // A 4xx is a configuration error: still retried, still nothing lost.
    loki.fail_with(Some(401));
    let refused = loki.pushes();
    assert!(eventually(WAIT, || loki.pushes() > refused).await);
    assert_eq!(log.cursor(loki::CURSOR).unwrap(), 0);
    loki.fail_with(None);
    assert!(eventually(WAIT, || log.cursor(loki::CURSOR).unwrap() == 3).await);
    assert_eq!(loki.lines().len(), 3);
    assert!(
        metrics
            .failures
            .lock()
            .unwrap()
            .contains(&("loki", "config"))
    );

    // A crash that lost the cursor: the replay is the same push, which Loki drops as duplicates.
    stop.cancel();
    task.await.unwrap();
    drop((writer, log));
    let log = reopen_without_cursor(dir.path(), "bridge:loki", loki::CURSOR).await;
    let (stop, _) = run(&loki, &log, recorded());
    assert!(eventually(WAIT, || log.cursor(loki::CURSOR).unwrap() == 3).await);
    stop.cancel();
    let lines = loki.lines();
    assert_eq!(lines.len(), 3, "the replay added lines: {lines:#?}");
    assert_eq!(logql(&loki, r#"{app="slipway"}"#).await.len(), 3);
}

/// Someone pushes a line under this writer's labels, dated in the future: Loki then refuses the
/// writer's next record as out of order. The sink reads Loki back, finds the record missing,
/// and keeps it in the spool (a `conflict` alarm) rather than counting it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_loki_refuses_and_lacks_stays_in_the_spool() {
    let (loki, _dir, writer) = started().await;
    let log = writer.log();
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .timestamp_nanos_opt()
        .unwrap();
    let forged = serde_json::json!({"streams": [{
        "stream": {"app": "slipway", "writer": "bridge:loki", "event": "command",
                   "family": "none", "decision": "none"},
        "values": [[future.to_string(), "{\"forged\":true}"]],
    }]});
    let push = format!("{}/loki/api/v1/push", loki.base_url());
    let (status, body) = http("POST", &push, Some(forged.to_string())).await;
    assert_eq!(status, 204, "{body}");

    let metrics = recorded();
    let (stop, _) = run(&loki, &log, metrics.clone());
    writer
        .record(record(EventKind::Command, "c-0", None))
        .await
        .unwrap();
    assert!(eventually(WAIT, || metrics.failed_with("loki", "conflict")).await);
    assert_eq!(log.cursor(loki::CURSOR).unwrap(), 0, "counted as delivered");
    stop.cancel();
}
