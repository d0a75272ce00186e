//! Block Kit snapshots of the approval message and modal, within Slack's limits.

use super::*;

fn snapshot_dir() -> PathBuf {
    slipway_tests::repo_root().join("tests/fixtures/blockkit")
}

/// Compare `value` with the committed snapshot `name`; `SLIPWAY_UPDATE_SNAPSHOTS=1` rewrites it.
fn check_snapshot(name: &str, value: &Value) {
    let path = snapshot_dir().join(name);
    let text = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    if std::env::var_os("SLIPWAY_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with SLIPWAY_UPDATE_SNAPSHOTS=1 and commit it",
            path.display()
        )
    });
    assert_eq!(
        committed,
        text,
        "{} differs from the rendering (SLIPWAY_UPDATE_SNAPSHOTS=1 rewrites it after review)",
        path.display()
    );
}

fn sample_view(stage: Stage) -> ApprovalView {
    ApprovalView {
        change_id: "cr-service-api-staging-1a2b3c4d".into(),
        pr_number: 42,
        pr_url: "https://github.com/acme/gitops/pull/42".into(),
        head_sha: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
        requester_slack_id: "U0OPERATOR".into(),
        rule: "standard".into(),
        needed: 2,
        approvals: vec![("ada.approver@example.com".into(), Source::Slack)],
        stale: Vec::new(),
        changes_requested: Vec::new(),
        expires_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap(),
        stage,
    }
}

fn message_json(m: &slipway_bridge::slack::client::Message) -> Value {
    json!({"text": m.text, "blocks": m.blocks})
}

#[test]
fn block_kit_snapshots_match_and_fit_slacks_limits() {
    let mut cases: Vec<(&str, Value)> = Vec::new();
    // The message as a change request opens (flow.rs renders the same template this way).
    let opened = slipway_bridge::templates::render_blocks(
        "blocks/change.json.j2",
        json!({
            "headline": ":memo: *Change request* `cr-service-api-staging-1a2b3c4d` opened: <https://github.com/acme/gitops/pull/42|#42> Deploy api to staging (v2.0.0)",
            "context": "Requested by <@U0OPERATOR> · needs 2 approval(s) from approvers or platform-owners (rule `standard`) · expires 2026-03-02 09:30 UTC",
            "diff": "```\n--- a/apps/api/staging/kustomization.yaml\n+++ b/apps/api/staging/kustomization.yaml\n@@ -8 +8 @@\n-    newTag: \"v1.0.0\"\n+    newTag: \"v2.0.0\"\n```",
            "note": "",
            "buttons": [
                {"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": "42@4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
                {"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": "42"},
                {"action_id": "slipway_open_pr", "text": "View PR", "url": "https://github.com/acme/gitops/pull/42", "value": "42"}
            ],
        }),
    )
    .unwrap();
    cases.push(("change_opened.json", json!({"blocks": opened})));
    cases.push((
        "approval_waiting.json",
        message_json(&approval_message(&sample_view(Stage::Waiting))),
    ));
    let mut stale = sample_view(Stage::Waiting);
    stale.approvals.clear();
    stale.stale = vec!["ada-approver".into()];
    cases.push((
        "approval_stale.json",
        message_json(&approval_message(&stale)),
    ));
    let mut approved = sample_view(Stage::Approved);
    approved
        .approvals
        .push(("bo.approver@example.com".into(), Source::Github));
    cases.push((
        "approval_approved.json",
        message_json(&approval_message(&approved)),
    ));
    let mut rejected = sample_view(Stage::ChangesRequested);
    rejected.changes_requested = vec!["bo-approver".into()];
    cases.push((
        "approval_changes_requested.json",
        message_json(&approval_message(&rejected)),
    ));
    cases.push((
        "approval_merged.json",
        message_json(&approval_message(&ApprovalView {
            approvals: approved.approvals.clone(),
            ..sample_view(Stage::Merged)
        })),
    ));
    cases.push((
        "approval_expired_closed.json",
        message_json(&approval_message(&sample_view(Stage::ExpiredClosed))),
    ));
    for (name, value) in &cases {
        let errors = validate_blocks(&value["blocks"], Surface::Message);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        check_snapshot(name, value);
    }
    let modal = reject_modal(
        &ReviewContext {
            pr: 42,
            head_sha: None,
            response_url: "https://hooks.slack.com/actions/T0TEST/1/abc".into(),
        },
        "bo-approver",
    )
    .unwrap();
    assert!(
        validate_view(&modal).is_empty(),
        "{:?}",
        validate_view(&modal)
    );
    check_snapshot("reject_modal.json", &modal);
    let modal = approve_modal(
        &ReviewContext {
            pr: 42,
            head_sha: Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904".into()),
            response_url: "https://hooks.slack.com/actions/T0TEST/1/abc".into(),
        },
        "ada-approver",
        &ApproveSummary {
            change_id: "cr-service-api-staging-1a2b3c4d",
            command: "/deploy api staging v2.0.0 --apply",
            resource: "service:api/staging",
            requester: "U0OPERATOR",
            foreign_commits: &[],
            changed_since: &[],
        },
    )
    .unwrap();
    assert!(
        validate_view(&modal).is_empty(),
        "{:?}",
        validate_view(&modal)
    );
    check_snapshot("approve_modal.json", &modal);

    // Limits hold whatever the data: hundreds of reviewers, long names.
    let mut huge = sample_view(Stage::Waiting);
    huge.approvals = (0..300)
        .map(|i| {
            (
                format!("person-{i}-with-a-rather-long-name@example.com"),
                Source::Github,
            )
        })
        .collect();
    huge.stale = (0..300).map(|i| format!("stale-reviewer-{i}")).collect();
    huge.changes_requested = (0..300).map(|i| format!("objector-{i}")).collect();
    let m = approval_message(&huge);
    assert!(!m.blocks.is_empty(), "the template rendered");
    let errors = validate_blocks(&Value::Array(m.blocks), Surface::Message);
    assert!(errors.is_empty(), "{errors:?}");
}

// ---- A restarted bridge: the real binary, killed and started again on the same state dir. ----
