use chrono::{DateTime, Duration as Span};
use slipway_core::audit::{CommandInfo, DecisionInfo, EventKind};
use slipway_core::command::Family;
use slipway_core::policy::Outcome;

use super::*;

fn sink() -> LokiSink {
    LokiSink::new(LokiSettings {
        url: "http://127.0.0.1:9/".into(),
        tenant: None,
        auth: None,
        timeout: Duration::from_secs(1),
    })
    .unwrap()
}

fn sealed(kind: EventKind, seq: u64, secs: i64) -> AuditRecord {
    let mut r = AuditRecord::new(
        kind,
        format!("e{seq}"),
        DateTime::UNIX_EPOCH + Span::seconds(secs),
    );
    r.writer = "bridge:a".into();
    r.seq = seq;
    r
}

#[test]
fn labels_are_stable_and_carry_no_ids() {
    let mut r = sealed(EventKind::Decision, 1, 1).with_change_id("cr-1");
    assert_eq!(
        labels(&r),
        BTreeMap::from([
            ("app", "slipway".to_string()),
            ("writer", "bridge:a".to_string()),
            ("event", "decision".to_string()),
            ("family", "none".to_string()),
            ("decision", "none".to_string()),
        ])
    );
    r.command = Some(CommandInfo {
        text: "/kubectl get pods".into(),
        family: Some(Family::Kubectl),
        argv: None,
    });
    r.decision = Some(DecisionInfo {
        outcome: Outcome::Allow,
        rule: "r".into(),
        reason: "ok".into(),
        approval_rule: None,
    });
    let l = labels(&r);
    assert_eq!(
        (l["family"].as_str(), l["decision"].as_str()),
        ("kubectl", "allow")
    );
    assert!(!l.values().any(|v| v.contains("cr-1") || v.contains("e1")));
}

/// Loki 2.4 refuses a line older than its stream's newest: a clock step back is sent at the
/// predecessor's time, and the same records give the same push when sent again.
#[test]
fn timestamps_never_go_back_within_a_writer_and_repeat_exactly() {
    let sink = sink();
    let records = [
        sealed(EventKind::Command, 1, 10),
        sealed(EventKind::Command, 2, 5),
        sealed(EventKind::Execution, 3, 20),
    ];
    let (body, newest) = sink.body(&records).unwrap();
    let streams = body["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{body}");
    let command: Vec<&str> = streams[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_str().unwrap())
        .collect();
    assert_eq!(command, ["10000000000", "10000000000"]);
    assert_eq!(streams[1]["values"][0][0], "20000000000");
    let line: AuditRecord =
        serde_json::from_str(streams[1]["values"][0][1].as_str().unwrap()).unwrap();
    assert_eq!(line, records[2]);
    assert_eq!(
        sink.body(&records).unwrap().0,
        body,
        "a retry repeats the push"
    );
    // Once pushed, the next batch starts from the newest time, and a replay repeats itself.
    *crate::sync::lock(&sink.newest) = newest;
    let next = sink.body(&[sealed(EventKind::Command, 4, 1)]).unwrap().0;
    assert_eq!(next["streams"][0]["values"][0][0], "20000000000");
    assert_eq!(
        sink.body(&records).unwrap().0,
        body,
        "a replay repeats the push"
    );
}

#[test]
fn credentials_are_never_printed() {
    let sink = LokiSink::new(LokiSettings {
        url: "https://logs.example".into(),
        tenant: Some("ops".into()),
        auth: Some(LokiAuth::Basic {
            user: "1234".into(),
            token: "glc_secret".into(),
        }),
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let shown = format!("{sink:?}");
    assert!(shown.contains("***") && shown.contains("ops"), "{shown}");
    assert!(
        !shown.contains("glc_secret") && !shown.contains("MTIzNDpnbGNfc2VjcmV0"),
        "{shown}"
    );
}
