use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::command::Namespace;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

fn rich(i: u32) -> AuditRecord {
    let user = SlackUser {
        user_id: "U123".into(),
        team_id: Some("T1".into()),
        enterprise_id: None,
    };
    AuditRecord::new(EventKind::Execution, format!("evt-{i}"), at(i64::from(i)))
        .with_actor(Actor::slack(&user, None, Some("developer")))
        .with_command(CommandInfo {
            text: "/kubectl get pods -n web".into(),
            family: Some(Family::Kubectl),
            argv: Some(vec!["kubectl".into(), "get".into(), "pods".into()]),
        })
        .with_target(Target::Cluster {
            cluster: Some("prod".into()),
            namespace: Namespace::Named("web".into()),
        })
        .with_tier(Tier::Read)
        .with_decision(DecisionInfo {
            outcome: Outcome::Allow,
            rule: "developers.read".into(),
            reason: "developers may run read commands".into(),
            approval_rule: None,
        })
        .with_approval(Approval {
            who: "alice@example.com".into(),
            when: at(1),
            source: ApprovalSource::Github,
            head_sha: Some("abc123".into()),
        })
        .with_pr(PullRequest {
            repo: "acme/infra".into(),
            number: 42,
            head_sha: Some("abc123".into()),
            merge_sha: None,
        })
        .with_output(Output::new(
            "pod-1 Running".into(),
            b"pod-1 Running\n",
            Some(0),
            120,
            false,
        ))
        .with_runner(RunnerInfo {
            run_id: "987".into(),
            oidc_subject: None,
        })
        .with_change_id("cr-7")
        .with_details(json!({"z": 1, "a": [1, 2, {"y": true, "b": null}]}))
}

fn sealed(writer: &str, n: u32) -> Vec<AuditRecord> {
    let mut state = ChainState::new(writer);
    (1..=n).map(|i| seal(&mut state, rich(i))).collect()
}

#[test]
fn three_sealed_records_verify() {
    let records = sealed("bridge:a", 3);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    assert_eq!(records[1].prev_hash, records[0].hash);
    assert_eq!(records[0].hash.len(), 64);
    let report = verify_chain(&records);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.writers["bridge:a"].last_seq, 3);
    assert_eq!(report.writers["bridge:a"].last_hash, records[2].hash);
}

#[test]
fn tampered_field_is_a_hash_mismatch() {
    let mut records = sealed("bridge:a", 3);
    if let Some(d) = records[1].decision.as_mut() {
        d.outcome = Outcome::Deny;
    }
    let report = verify_chain(&records);
    assert_eq!(report.problems.len(), 1, "{report}");
    let p = &report.problems[0];
    assert_eq!(
        (p.kind, p.seq, p.event_id.as_str()),
        (ProblemKind::HashMismatch, 2, "evt-2")
    );

    // Re-hashing the edit moves the problem to the link from the next record.
    records[1].hash = compute_hash(&records[1]);
    let report = verify_chain(&records);
    assert_eq!(report.problems.len(), 1, "{report}");
    assert_eq!(
        (report.problems[0].kind, report.problems[0].seq),
        (ProblemKind::BrokenLink, 3)
    );
}

#[test]
fn deleted_record_is_a_gap() {
    let mut records = sealed("bridge:a", 5);
    records.remove(2);
    records.remove(1);
    let report = verify_chain(&records);
    assert_eq!(report.count(ProblemKind::Gap), 1, "{report}");
    let gap = &report.problems[0];
    assert_eq!((gap.seq, gap.event_id.as_str()), (2, "evt-4"));
    assert!(
        gap.message.contains("records 2..=3 are missing"),
        "{}",
        gap.message
    );
    // Nothing else: seq 4's predecessor is absent, so its link cannot be judged.
    assert_eq!(report.problems.len(), 1, "{report}");
}

#[test]
fn duplicate_seq_with_other_content_is_a_fork() {
    let mut records = sealed("bridge:a", 3);
    // Another writer process with the same id and the same state seals a different record 3.
    let mut state = ChainState::resume("bridge:a", 2, records[1].hash.clone());
    let other = seal(
        &mut state,
        AuditRecord::new(EventKind::Expiry, "evt-x", at(9)),
    );
    records.push(other);
    let report = verify_chain(&records);
    assert_eq!(report.count(ProblemKind::Fork), 1, "{report}");
    assert_eq!(report.count(ProblemKind::HashMismatch), 0, "{report}");
    let fork = report.problems.iter().find(|p| p.kind == ProblemKind::Fork);
    assert_eq!(fork.map(|p| p.seq), Some(3));

    // An exact copy is reported too, as a duplicate rather than a fork.
    let mut copies = sealed("bridge:a", 2);
    copies.push(copies[1].clone());
    let report = verify_chain(&copies);
    assert_eq!(report.problems.len(), 1, "{report}");
    assert_eq!(report.problems[0].kind, ProblemKind::Duplicate);
}

#[test]
fn same_prev_hash_at_different_seqs_is_a_fork() {
    let mut records = sealed("bridge:a", 3);
    records[2].prev_hash = records[0].hash.clone();
    records[2].hash = compute_hash(&records[2]);
    let report = verify_chain(&records);
    assert_eq!(report.count(ProblemKind::Fork), 1, "{report}");
    assert_eq!(report.count(ProblemKind::BrokenLink), 1, "{report}");
}

#[test]
fn every_problem_is_reported() {
    let mut records = sealed("bridge:a", 6);
    records[0].event_id = "edited".into();
    records.remove(3);
    records.push(AuditRecord::new(EventKind::Command, "unsealed", at(0)));
    let report = verify_chain(&records);
    assert_eq!(report.count(ProblemKind::HashMismatch), 1, "{report}");
    assert_eq!(report.count(ProblemKind::Gap), 1, "{report}");
    assert_eq!(report.count(ProblemKind::Unsealed), 1, "{report}");
    assert!(
        report
            .to_string()
            .contains("bridge:a seq 4 (event evt-5): record 4 is missing")
    );
}

#[test]
fn interleaved_writers_verify() {
    let mut a = ChainState::new("bridge:a");
    let mut b = ChainState::new("runner:77");
    let mut records = Vec::new();
    for i in 0..10 {
        let state = if i % 3 == 0 { &mut b } else { &mut a };
        records.push(seal(state, rich(i)));
    }
    records.reverse();
    let report = verify_chain(&records);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.writers.len(), 2);
    assert_eq!(report.writers["runner:77"].records, 4);
    assert_eq!(report.writers["bridge:a"].last_seq, 6);
}

#[test]
fn json_round_trip_keeps_the_hash_valid() {
    let records = sealed("bridge:a", 3);
    let lines: Vec<String> = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    let back: Vec<AuditRecord> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(back, records);
    assert!(verify_chain(&back).is_ok());

    // Pretty-printed and with keys reordered still verifies: the hash is over the canonical form.
    let value = serde_json::to_value(&records[0]).unwrap_or_default();
    let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
    let again: Option<AuditRecord> = serde_json::from_str(&pretty).ok();
    assert_eq!(
        again.map(|r| compute_hash(&r)),
        Some(records[0].hash.clone())
    );
}

#[test]
fn canonical_json_is_sorted_and_compact() {
    let record = sealed("w", 1).remove(0);
    let json = canonical_json(&record).unwrap_or_default();
    assert!(!json.contains("\"hash\":"), "the hash field is excluded");
    assert!(json.starts_with("{\"actor\":"), "{json}");
    assert!(
        json.contains("\"details\":{\"a\":[1,2,{\"b\":null,\"y\":true}],\"z\":1}"),
        "{json}"
    );
    // serde_json's own compact output of a BTreeMap-backed Value is sorted too (this crate's
    // build does not enable `preserve_order`), so the two must agree byte for byte.
    let reparsed: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(serde_json::to_string(&reparsed).unwrap_or_default(), json);
    assert!(json.ends_with("\"writer\":\"w\"}"), "{json}");
}

#[test]
fn null_details_and_version_are_normalised_by_seal() {
    let mut record = AuditRecord::new(EventKind::SignatureRejected, "e", at(0));
    record.details = Some(serde_json::Value::Null);
    record.schema_version = 99;
    let record = seal(&mut ChainState::new("w"), record);
    assert_eq!(
        (record.details.clone(), record.schema_version),
        (None, SCHEMA_VERSION)
    );
    let line = serde_json::to_string(&record).unwrap_or_default();
    let back: Option<AuditRecord> = serde_json::from_str(&line).ok();
    assert!(back.is_some_and(|b| verify_chain(&[b]).is_ok()));
}

#[test]
fn unknown_fields_are_rejected() {
    let record = sealed("w", 1).remove(0);
    let mut value = serde_json::to_value(&record).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("approved_by_ceo".into(), json!(true));
    }
    assert!(serde_json::from_value::<AuditRecord>(value).is_err());
}

#[test]
fn schema_describes_the_record() {
    let schema = serde_json::to_value(schema()).unwrap_or_default();
    let props = &schema["properties"];
    for field in [
        "event_id",
        "time",
        "kind",
        "actor",
        "target",
        "tier",
        "prev_hash",
        "hash",
    ] {
        assert!(props.get(field).is_some(), "schema lacks {field}");
    }
    assert_eq!(props["time"]["format"], "date-time");
    let kinds = schema["$defs"]["EventKind"].to_string();
    assert!(
        kinds.contains("signature_rejected") && kinds.contains("change_request"),
        "{kinds}"
    );
}
