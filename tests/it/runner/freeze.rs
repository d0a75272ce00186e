//! Freeze windows at execution time: the runner judges the window in force as it runs, from the
//! policy of the merge's first parent, and executes only under an override signed into the
//! change request by someone the window names.

use super::kubectl::cluster;
use super::refusals::{apply_change, refused};
use super::*;

/// A named event in force now (from an hour ago to two hours ahead) over staging's namespaces;
/// operators may override it.
fn window_now() -> String {
    window_over("kube:staging/*", "operators")
}

/// The same event over `pattern`, which members of `overriders` may override.
fn window_over(pattern: &str, overriders: &str) -> String {
    let now = chrono::Utc::now();
    format!(
        "freezes:\n  - name: change-freeze\n    reason: the release event\n    resources: [\"{pattern}\"]\n    from: \"{}\"\n    to: \"{}\"\n    overriders: {{ groups: [{overriders}] }}\nlimits:\n  timeouts:",
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(2)).to_rfc3339()
    )
}

const SCALE: &str = "/kubectl scale deployment/web --replicas=5 -n web";

/// `cr` with an override of the window, signed again as the bridge would have signed it.
fn overridden(mut cr: ChangeRequest) -> ChangeRequest {
    cr.freeze_override = Some(slipway_core::change::FreezeOverride {
        windows: vec!["change-freeze".into()],
        reason: "the release needs it".into(),
    });
    let key = slipway_core::change::parse_signing_key(SIGNING_KEY_HEX).unwrap();
    slipway_core::change::sign(cr, &key, "test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_during_a_freeze_is_not_executed_without_an_override() {
    let window = window_now();
    let fx = fixture(&[("limits:\n  timeouts:", window.as_str())], &[]).await;
    let cr = change(&fx, "f1", SCALE, Rendered::default());
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    for part in [
        "`kube:staging/web`",
        "frozen by window `change-freeze`",
        "the release event",
        "carries no override",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    assert!(
        execution_status(&fx, &sha)["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "slipway/execution says why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_signed_into_the_request_by_an_overrider_runs_during_the_freeze() {
    let window = window_now();
    let fx = fixture(&[("limits:\n  timeouts:", window.as_str())], &[]).await;
    let (kube, clusters) = cluster(&fx).await;
    let cr = overridden(change(&fx, "f2", SCALE, Rendered::default()));
    let (_, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, &clusters), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_override_by_someone_the_window_no_longer_names_is_not_executed() {
    // The policy the merge lands on lets only platform owners override; the requester is an
    // operator, whose override the bridge signed under an older policy.
    let window = window_over("kube:staging/*", "platform-owners");
    let fx = fixture(&[("limits:\n  timeouts:", window.as_str())], &[]).await;
    let cr = overridden(change(&fx, "f5", SCALE, Rendered::default()));
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("overrides freeze window `change-freeze`")
            && body.contains("omar.operator@example.com"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_added_by_hand_to_a_signed_change_file_fails_verification() {
    let window = window_now();
    let fx = fixture(&[("limits:\n  timeouts:", window.as_str())], &[]).await;
    let cr = change(&fx, "f3", SCALE, Rendered::default());
    // Someone with push access adds the override the requester could have asked for.
    let tampered = format!(
        "{}freeze_override:\n  windows: [change-freeze]\n  reason: added by hand\n",
        cr.to_yaml()
    );
    let parsed = ChangeRequest::from_yaml(&tampered).expect("the edit parses");
    assert!(
        parsed.freeze_override.is_some(),
        "the edit adds an override"
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &tampered, &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(body.contains("edited after signing"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_a_manifest_in_a_frozen_namespace_is_not_executed() {
    // The request is for namespace `web`; one object of its manifest lives in `other`, which
    // the window covers.
    let path = "apps/web/config.yaml";
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: other\ndata:\n  level: info\n";
    let window = window_over("kube:staging/other", "operators");
    let fx = fixture(
        &[("limits:\n  timeouts:", window.as_str())],
        &[(path, manifest.to_string())],
    )
    .await;
    let cr = apply_change(&fx, "f4", path, manifest);
    assert_eq!(
        cr.resource, "kube:staging/web",
        "the request itself is not covered"
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("`kube:staging/other` is frozen by window `change-freeze`"),
        "{body}"
    );
}
