//! The ServiceNow sink against the Table API emulator: a Change Request per change, a work note
//! per step, states by the configured mapping, closed with the outcome; errors lose nothing.

use std::time::Duration;

use slipway_core::audit::{EventKind, Output};
use slipway_emulators::servicenow::ServiceNowEmulator;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::sinks::servicenow::{self, ServiceNowSettings, ServiceNowSink};
use slipway_infra::sinks::{self, Auth};
use slipway_tests::harness::audit_signing;
use tokio_util::sync::CancellationToken;

use super::{eventually, fast_pacing, record, recorded};

const WAIT: Duration = Duration::from_secs(20);

fn settings(snow: &ServiceNowEmulator, dir: &std::path::Path) -> ServiceNowSettings {
    ServiceNowSettings {
        url: snow.base_url(),
        auth: Auth::Basic {
            user: "slipway".into(),
            token: "pw".into(),
        },
        states: [
            (EventKind::Merge, "-1".to_string()),
            (EventKind::Execution, "3".to_string()),
        ]
        .into(),
        changes_file: dir.join("servicenow-changes.json"),
        timeout: Duration::from_secs(5),
        cab_gate: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_gets_a_change_request_moved_through_its_states_and_closed() {
    let snow = ServiceNowEmulator::start("slipway", "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let writer =
        AuditWriter::start(dir.path(), "bridge:snow", &audit_signing("bridge:snow")).unwrap();
    let log = writer.log();
    let stop = CancellationToken::new();
    let sink = ServiceNowSink::new(settings(&snow, dir.path())).unwrap();
    sinks::spawn(sink, log.clone(), recorded(), fast_pacing(), stop.clone());
    writer
        .record(record(EventKind::ChangeRequest, "cr-1-req", Some("cr-1")))
        .await
        .unwrap();
    writer
        .record(record(EventKind::Merge, "cr-1-merge", Some("cr-1")))
        .await
        .unwrap();
    assert!(eventually(WAIT, || log.cursor(servicenow::CURSOR).unwrap() == 2).await);
    assert_eq!(
        snow.changes()[0].fields["state"],
        "-1",
        "Implement after the merge"
    );
    let run = record(EventKind::Execution, "cr-1-run", Some("cr-1")).with_output(Output::new(
        "applied".into(),
        b"applied\n",
        Some(0),
        120,
        false,
    ));
    writer.record(run).await.unwrap();
    writer
        .record(record(EventKind::Command, "no-change", None))
        .await
        .unwrap();
    assert!(eventually(WAIT, || log.cursor(servicenow::CURSOR).unwrap() == 4).await);
    stop.cancel();

    let changes = snow.changes();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    let change = &changes[0];
    assert!(
        change.fields["short_description"]
            .as_str()
            .unwrap()
            .contains("cr-1")
    );
    assert_eq!(change.fields["state"], "3");
    assert_eq!(change.fields["close_code"], "successful");
    assert_eq!(change.work_notes.len(), 3, "{change:#?}");
    assert!(change.work_notes[1].contains("slipway-event:cr-1-merge"));
    assert!(change.work_notes[2].contains("exit code 0"));
}

/// ServiceNow answering errors (an outage, then a state its data policy refuses) loses
/// nothing: the records stay behind the cursor until it takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicenow_answering_errors_loses_no_record() {
    let snow = ServiceNowEmulator::start("slipway", "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let writer =
        AuditWriter::start(dir.path(), "bridge:snow", &audit_signing("bridge:snow")).unwrap();
    let log = writer.log();
    let metrics = recorded();
    let stop = CancellationToken::new();
    let mut bad = settings(&snow, dir.path());
    bad.states.insert(EventKind::ChangeRequest, "7".into());
    let task = sinks::spawn(
        ServiceNowSink::new(bad).unwrap(),
        log.clone(),
        metrics.clone(),
        fast_pacing(),
        stop.clone(),
    );
    writer
        .record(record(EventKind::ChangeRequest, "cr-2-req", Some("cr-2")))
        .await
        .unwrap();
    assert!(eventually(WAIT, || metrics.failed_with("servicenow", "config")).await);
    assert_eq!(log.cursor(servicenow::CURSOR).unwrap(), 0);
    stop.cancel();
    task.await.unwrap();

    snow.fail_with(Some(503));
    let stop = CancellationToken::new();
    let sink = ServiceNowSink::new(settings(&snow, dir.path())).unwrap();
    sinks::spawn(
        sink,
        log.clone(),
        metrics.clone(),
        fast_pacing(),
        stop.clone(),
    );
    assert!(eventually(WAIT, || metrics.failed_with("servicenow", "transient")).await);
    assert_eq!(log.cursor(servicenow::CURSOR).unwrap(), 0);
    assert!(snow.changes().is_empty());
    snow.fail_with(None);
    assert!(eventually(WAIT, || log.cursor(servicenow::CURSOR).unwrap() == 1).await);
    stop.cancel();
    assert_eq!(snow.changes().len(), 1);
}
