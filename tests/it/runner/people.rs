//! With `identities.provider: scim`, the runner judges reviewers by the signed identity
//! snapshot in force at the merge: a directory approver counts while active, a deactivated one
//! counts for nothing, and a snapshot the bridge didn't sign, or none at all, decides nothing.

use slipway_core::change::people::{
    SNAPSHOT_BRANCH, SNAPSHOT_FILE, SNAPSHOT_VERSION, Snapshot, SnapshotPerson,
};

use super::*;

const SCIM: &[(&str, &str)] = &[(
    "identities:\n  provider: static",
    "identities:\n  provider: scim",
)];

fn snapshot(gina_active: bool, minutes_ago: i64, key_hex: &str) -> String {
    let key = slipway_core::change::parse_signing_key(key_hex).unwrap();
    Snapshot {
        version: SNAPSHOT_VERSION,
        generated_at: chrono::Utc::now() - chrono::Duration::minutes(minutes_ago),
        provider: "scim".into(),
        people: vec![SnapshotPerson {
            subject: "gina@example.com".into(),
            slack: vec!["U0GINA".into()],
            github: Some("gina-gh".into()),
            groups: vec!["approvers".into()],
            active: gina_active,
        }],
        signature: None,
    }
    .signed(&key, "test")
    .to_json()
}

fn publish(fx: &Fx, json: &str) {
    fx.github.push_direct(
        OWNER,
        REPO,
        SNAPSHOT_BRANCH,
        &[(SNAPSHOT_FILE, json)],
        "identities: snapshot",
        BOT,
    );
}

/// Ada (a static approver) and Gina (a directory approver) approve, then it merges.
async fn approved_by_ada_and_gina(fx: &Fx, suffix: &str) -> (u64, String, ChangeRequest) {
    fx.github.add_user("gina-gh", "tok-gina");
    let cr = change(
        fx,
        suffix,
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let (number, _) = open_change(fx, &cr, &cr.to_yaml(), &[]).await;
    for who in ["ada-approver", "gina-gh"] {
        fx.github.review(OWNER, REPO, number, who, "APPROVE", "ok");
    }
    let sha = merge(fx, number);
    (number, sha, cr)
}

async fn quorum_refusal(fx: &Fx, number: u64, sha: &str) -> String {
    let ws = checkout(fx, sha);
    let out = run(fx, &ws, sha, &config(fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    comments(fx, number).join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_approver_counts_only_while_the_snapshot_at_the_merge_says_active() {
    let fx = fixture(SCIM, &[]).await;
    // Active an hour ago, deactivated ten minutes before the merge: the later one is in force.
    publish(&fx, &snapshot(true, 60, SIGNING_KEY_HEX));
    publish(&fx, &snapshot(false, 10, SIGNING_KEY_HEX));
    let (number, sha, _) = approved_by_ada_and_gina(&fx, "p1").await;
    let body = quorum_refusal(&fx, number, &sha).await;
    assert!(
        body.contains("don't meet the quorum") && body.contains("gina-gh doesn't count"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_missing_snapshot_decides_nothing() {
    let fx = fixture(SCIM, &[]).await;
    // A snapshot signed with another key, however new, is ignored: there is none in force.
    publish(&fx, &snapshot(true, 1, &"22".repeat(32)));
    let (number, sha, _) = approved_by_ada_and_gina(&fx, "p2").await;
    let body = quorum_refusal(&fx, number, &sha).await;
    assert!(body.contains("no identity snapshot"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_directory_approver_in_the_snapshot_completes_the_quorum() {
    let fx = fixture(SCIM, &[]).await;
    let (_kube, clusters) = super::kubectl::cluster(&fx).await;
    publish(&fx, &snapshot(true, 5, SIGNING_KEY_HEX));
    let (number, sha, cr) = approved_by_ada_and_gina(&fx, "p3").await;
    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, &clusters), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    let result = result_comment(&fx, number, &cr.id);
    assert!(result.contains(":white_check_mark: Executed"), "{result}");
}
