//! Webhook delivery: signatures (with GitHub's test vector), headers, event payloads for the PR
//! lifecycle, redelivery with the same GUID, and failed deliveries.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod github_support;

use std::time::Duration;

use github_support::{OWNER, REPO, Receiver, branch, emulator, octo};
use serde_json::json;
use slipway_emulators::github::signature_256;

#[test]
fn signature_matches_githubs_test_vector() {
    assert_eq!(
        signature_256("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn pull_request_lifecycle_events_signed_and_redelivered() {
    let gh = emulator().await;
    let hook = Receiver::start(202).await;
    gh.set_webhook(&hook.url, "topsecret");
    let head = branch(&gh, "slipway/cr-5", "alice");
    let n = gh.open_pr(OWNER, REPO, "slipway/cr-5", "main", "CR 5", "alice");
    let review = gh.review(OWNER, REPO, n, "bob", "APPROVE", "");
    octo(&gh, "alice-token")
        .issues(OWNER, REPO)
        .create_comment(n, "Plan attached")
        .await
        .unwrap();
    let _: serde_json::Value = octo(&gh, "alice-token")
        .post(
            format!("/repos/{OWNER}/{REPO}/statuses/{head}"),
            Some(&json!({ "state": "success", "context": "slipway/approval" })),
        )
        .await
        .unwrap();
    let _: serde_json::Value = octo(&gh, "carol-token")
        .put(
            format!("/repos/{OWNER}/{REPO}/pulls/{n}/reviews/{review}/dismissals"),
            Some(&json!({ "message": "stale", "event": "DISMISS" })),
        )
        .await
        .unwrap();
    gh.review(OWNER, REPO, n, "carol", "APPROVE", "ok");
    let merge = gh.merge(OWNER, REPO, n, "carol").unwrap();
    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);

    let deliveries = gh.deliveries();
    let kinds: Vec<String> = deliveries
        .iter()
        .map(|d| format!("{}.{}", d.event, d.action.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            "push.",
            "pull_request.opened",
            "pull_request_review.submitted",
            "issue_comment.created",
            "status.",
            "pull_request_review.dismissed",
            "pull_request_review.submitted",
            "push.",
            "pull_request.closed",
        ]
    );
    let received = hook.all();
    assert_eq!(received.len(), deliveries.len());
    for (d, r) in deliveries.iter().zip(&received) {
        assert_eq!(d.status, Some(202));
        assert!(is_guid(&d.id), "{}", d.id);
        assert_eq!(r.header("x-github-delivery"), d.id);
        assert_eq!(r.header("x-github-event"), d.event);
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(
            r.header("x-hub-signature-256"),
            signature_256("topsecret", &r.body)
        );
        assert_eq!(r.body, d.body.as_bytes());
    }
    let submitted = &deliveries[2].payload;
    assert_eq!(submitted["review"]["state"], "approved");
    assert_eq!(submitted["review"]["commit_id"], head.as_str());
    assert_eq!(submitted["review"]["user"]["login"], "bob");
    assert_eq!(deliveries[5].payload["review"]["state"], "dismissed");
    let closed = &deliveries[8].payload;
    assert_eq!(closed["pull_request"]["merged"], true);
    assert_eq!(closed["pull_request"]["merge_commit_sha"], merge.as_str());
    assert_eq!(closed["pull_request"]["merged_by"]["login"], "carol");
    assert_eq!(deliveries[7].payload["after"], merge.as_str());
    assert_eq!(deliveries[3].payload["comment"]["body"], "Plan attached");
    assert_eq!(deliveries[4].payload["state"], "success");

    // Redelivery: same GUID, same body.
    let first = deliveries[1].clone();
    assert_eq!(gh.redeliver(&first.id).await, 202);
    let again = hook.all().last().cloned().unwrap();
    assert_eq!(again.header("x-github-delivery"), first.id);
    assert_eq!(again.body, first.body.as_bytes());
    let last = gh.deliveries().last().cloned().unwrap();
    assert!(last.redelivery);
    assert_eq!(last.id, first.id);
    assert_eq!(gh.redeliver("no-such-delivery").await, 0);
}

#[tokio::test]
async fn failed_deliveries_are_recorded() {
    let gh = emulator().await;
    let failing = Receiver::start(500).await;
    gh.set_webhook(&failing.url, "x");
    branch(&gh, "a", "alice");
    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);
    assert_eq!(gh.deliveries()[0].status, Some(500));

    // Nobody listening: no status, an error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    gh.set_webhook(&format!("http://127.0.0.1:{port}/hook"), "x");
    branch(&gh, "b", "alice");
    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);
    let last = gh.deliveries().last().cloned().unwrap();
    assert_eq!(last.status, None);
    assert!(last.error.is_some());
    assert_eq!(gh.redeliver(&last.id).await, 0);
}

#[tokio::test]
async fn stale_approvals_dismissed_on_push_when_protected() {
    let gh = emulator().await;
    gh.set_dismiss_stale_reviews(OWNER, REPO, true);
    let hook = Receiver::start(200).await;
    gh.set_webhook(&hook.url, "k");
    branch(&gh, "f", "alice");
    let n = gh.open_pr(OWNER, REPO, "f", "main", "F", "alice");
    gh.review(OWNER, REPO, n, "bob", "APPROVE", "");
    gh.push_direct(OWNER, REPO, "f", &[("more", "1")], "more", "alice");
    assert_eq!(gh.reviews(OWNER, REPO, n)[0]["state"], "DISMISSED");
    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);
    let actions: Vec<_> = gh
        .deliveries()
        .iter()
        .filter_map(|d| d.action.clone())
        .collect();
    assert_eq!(actions, ["opened", "submitted", "synchronize", "dismissed"]);
}
