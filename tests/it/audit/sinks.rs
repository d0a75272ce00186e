//! The sinks beside S3: Jira (against the Jira emulator) and the signed webhook (against a
//! receiver in this test), each on its own spool cursor, through outages and a replay.

use slipway_tests::harness::audit_signing;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use slipway_core::audit::{AuditRecord, EventKind, Output};
use slipway_emulators::jira::{JiraEmulator, JiraLogin};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::sinks::jira::{self, JiraAuth, JiraSettings, JiraSink};
use slipway_infra::sinks::webhook::{self, WebhookSettings, WebhookSink};
use slipway_infra::sinks::{self};
use tokio_util::sync::CancellationToken;

use super::{eventually, fast_pacing, record, recorded, reopen_without_cursor};

const WAIT: Duration = Duration::from_secs(20);

fn execution(event: &str, change: &str) -> AuditRecord {
    record(EventKind::Execution, event, Some(change)).with_output(Output::new(
        "deployment.apps/api scaled".into(),
        b"deployment.apps/api scaled\n",
        Some(0),
        840,
        false,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_gets_an_issue_per_change_and_a_comment_per_outcome() {
    let jira = JiraEmulator::start(
        "OPS",
        JiraLogin::Basic {
            user: "bot@acme.test".into(),
            token: "t0k".into(),
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let settings = JiraSettings {
        url: jira.base_url(),
        project: "OPS".into(),
        issue_type: "Task".into(),
        auth: JiraAuth::Basic {
            user: "bot@acme.test".into(),
            token: "t0k".into(),
        },
        issues_file: spool_dir.join("jira-issues.json"),
        transitions: std::collections::HashMap::new(),
        timeout: Duration::from_secs(5),
    };
    let writer =
        AuditWriter::start(&spool_dir, "bridge:jira", &audit_signing("bridge:jira")).unwrap();
    let log = writer.log();
    let metrics = recorded();
    let stop = CancellationToken::new();
    let task = sinks::spawn(
        JiraSink::new(settings.clone()).unwrap(),
        log.clone(),
        metrics.clone(),
        fast_pacing(),
        stop.clone(),
    );

    let mut request = record(EventKind::ChangeRequest, "cr-1-req", Some("cr-1"));
    request.command = Some(slipway_core::audit::CommandInfo {
        text: "/kubectl scale deployment/api --replicas=3 -n web".into(),
        family: None,
        argv: None,
    });
    writer.record(request).await.unwrap();
    writer
        .record(record(EventKind::Command, "unrelated", None))
        .await
        .unwrap();
    writer.record(execution("cr-1-run", "cr-1")).await.unwrap();
    let last = writer
        .record(record(EventKind::Rejection, "cr-2-no", Some("cr-2")))
        .await
        .unwrap()
        .seq;
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == last).await);

    let issues = jira.issues();
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let cr1 = &issues[0];
    assert_eq!(cr1.key, "OPS-1");
    assert!(
        cr1.summary.contains("cr-1") && cr1.summary.contains("/kubectl scale"),
        "{cr1:?}"
    );
    assert!(cr1.labels.contains(&"slipway-change-cr-1".to_string()));
    assert_eq!(cr1.comments.len(), 1, "{cr1:#?}");
    assert!(
        cr1.comments[0].body.contains("*Executed*: exit code 0"),
        "{cr1:#?}"
    );
    assert!(cr1.comments[0].body.contains("slipway-event:cr-1-run"));
    // An outcome for a change this sink never saw opens its issue, so it is not lost.
    assert!(issues[1].summary.contains("cr-2"));
    assert!(issues[1].comments[0].body.contains("*Rejected*"));

    // Jira down: the record waits, and arrives once Jira is back.
    jira.set_down(true);
    let expiry = writer
        .record(record(EventKind::Expiry, "cr-1-exp", Some("cr-1")))
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || {
            metrics
                .failures
                .lock()
                .unwrap()
                .contains(&("jira", "transient"))
        })
        .await
    );
    assert_eq!(log.cursor(jira::CURSOR).unwrap(), last);
    jira.set_down(false);
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == expiry.seq).await);
    assert_eq!(jira.issues()[0].comments.len(), 2);

    // A crash that lost the cursor: the replay neither opens issues again nor repeats comments.
    stop.cancel();
    task.await.unwrap();
    drop((writer, log));
    let log = reopen_without_cursor(&spool_dir, "bridge:jira", jira::CURSOR).await;
    let stop = CancellationToken::new();
    sinks::spawn(
        JiraSink::new(settings).unwrap(),
        log.clone(),
        recorded(),
        fast_pacing(),
        stop.clone(),
    );
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == expiry.seq).await);
    stop.cancel();
    let issues = jira.issues();
    assert_eq!(issues.len(), 2, "issues were opened again: {issues:#?}");
    assert_eq!(
        issues[0].comments.len(),
        2,
        "comments repeated: {:#?}",
        issues[0]
    );
}

/// Merge and execution records move the issue by the configured transition names, each once:
/// a replay after a lost cursor neither repeats a comment nor moves the issue again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_moves_the_issue_through_the_configured_transitions_once() {
    let jira = JiraEmulator::start("OPS", JiraLogin::Bearer("pat".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = JiraSettings {
        url: jira.base_url(),
        project: "OPS".into(),
        issue_type: "Task".into(),
        auth: JiraAuth::Bearer {
            token: "pat".into(),
        },
        issues_file: dir.path().join("jira-issues.json"),
        transitions: [
            (EventKind::Merge, "In Progress".to_string()),
            (EventKind::Execution, "done".to_string()),
        ]
        .into(),
        timeout: Duration::from_secs(5),
    };
    let writer = AuditWriter::start(dir.path(), "bridge:jt", &audit_signing("bridge:jt")).unwrap();
    let log = writer.log();
    let stop = CancellationToken::new();
    let sink = || JiraSink::new(settings.clone()).unwrap();
    let task = sinks::spawn(sink(), log.clone(), recorded(), fast_pacing(), stop.clone());
    writer
        .record(record(EventKind::ChangeRequest, "cr-9-req", Some("cr-9")))
        .await
        .unwrap();
    writer
        .record(record(EventKind::Merge, "cr-9-merge", Some("cr-9")))
        .await
        .unwrap();
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == 2).await);
    assert_eq!(jira.issues()[0].status, "In Progress");
    writer.record(execution("cr-9-run", "cr-9")).await.unwrap();
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == 3).await);
    let issue = &jira.issues()[0];
    assert_eq!(issue.status, "Done", "{issue:#?}");
    assert_eq!(issue.comments.len(), 2, "{issue:#?}");
    assert!(issue.comments[0].body.contains("*Merged*"));
    let moves = || {
        jira.requests()
            .iter()
            .filter(|r| r.starts_with("POST") && r.contains("/transitions"))
            .count()
    };
    assert_eq!(moves(), 2);

    stop.cancel();
    task.await.unwrap();
    drop((writer, log));
    let log = reopen_without_cursor(dir.path(), "bridge:jt", jira::CURSOR).await;
    let stop = CancellationToken::new();
    sinks::spawn(sink(), log.clone(), recorded(), fast_pacing(), stop.clone());
    assert!(eventually(WAIT, || log.cursor(jira::CURSOR).unwrap() == 3).await);
    stop.cancel();
    let issue = &jira.issues()[0];
    assert_eq!((issue.status.as_str(), issue.comments.len()), ("Done", 2));
    assert_eq!(moves(), 2, "the replay moved the issue again");
}

/// What the receiver got: headers and body of each POST.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receive(
    State((got, fail_first)): State<(Received, Arc<Mutex<usize>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut fail = fail_first.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    got.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_every_record_signed_in_order() {
    let got: Received = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state((got.clone(), Arc::new(Mutex::new(2))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let writer =
        AuditWriter::start(dir.path(), "bridge:hook", &audit_signing("bridge:hook")).unwrap();
    let sink = WebhookSink::new(WebhookSettings {
        url,
        secret: "shared-secret".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let metrics = recorded();
    let stop = CancellationToken::new();
    sinks::spawn(
        sink,
        writer.log(),
        metrics.clone(),
        fast_pacing(),
        stop.clone(),
    );
    for i in 0..5 {
        writer
            .record(record(EventKind::Command, &format!("hook-{i}"), None))
            .await
            .unwrap();
    }
    assert!(eventually(WAIT, || got.lock().unwrap().len() == 5).await);
    // The driver moves its cursor after each delivery is answered: wait for that too before
    // stopping it, or the stop can race the last mark.
    let log = writer.log();
    assert!(eventually(WAIT, || log.cursor(webhook::CURSOR).ok() == Some(5)).await);
    stop.cancel();

    let got = got.lock().unwrap();
    for (i, (headers, body)) in got.iter().enumerate() {
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(
            header("x-slipway-signature"),
            webhook::sign(b"shared-secret", body)
        );
        assert_eq!(header("x-slipway-event-id"), format!("hook-{i}"));
        assert_eq!(header("content-type"), "application/json");
        let rec: AuditRecord = serde_json::from_slice(body).unwrap();
        assert_eq!(rec.seq, u64::try_from(i + 1).unwrap());
    }
    // The two refusals were retried, not skipped (every seq arrived, in order, above). Under load
    // a slow answer may count as one more transient failure, so this is a lower bound.
    let failures = metrics.failures.lock().unwrap().len();
    assert!(failures >= 2, "{failures}");
    assert_eq!(writer.log().cursor(webhook::CURSOR).unwrap(), 5);
}
