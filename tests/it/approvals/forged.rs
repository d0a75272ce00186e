//! Attacks on what a Slipway PR carries: hand-made change files on `slipway/cr-…` branches,
//! signatures that are missing, random or by another key, a signed file edited by a later
//! commit, a PR Slipway didn't open, files outside the request, and a pusher approving their own
//! commit. None gets `slipway/approval=success`, none is merged with auto-merge on.

use slipway_core::change::{ChangeRequest, sign};

use super::*;

const BOT: &str = "slipway[bot]";

fn auto_merge() -> Options {
    Options {
        policy_edits: vec![(
            "approve_in: slack",
            "approve_in: slack\n      auto_merge: true".to_string(),
        )],
        ..Options::default()
    }
}

/// The bridge's own change request on PR `number`.
fn genuine(fx: &GitOpsFixture, number: u64) -> ChangeRequest {
    let branch = pull(fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let id = branch.trim_start_matches("slipway/");
    let text = fx
        .github
        .file_at(OWNER, REPO, &branch, &format!("changes/{id}.yaml"))
        .unwrap();
    ChangeRequest::from_yaml(&text).unwrap()
}

/// Push `cr` as `changes/<id>.yaml` on `slipway/<id>` (a hand-made branch) and open a PR from it
/// as `author`; returns the PR number.
fn hand_made_pr(fx: &GitOpsFixture, cr: &ChangeRequest, author: &str) -> u64 {
    let path = cr.file_path();
    fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &[(path.as_str(), cr.to_yaml().as_str())],
        "a change request",
        author,
    );
    fx.github.open_pr(
        OWNER,
        REPO,
        &cr.branch(),
        "main",
        "[slipway] forged",
        author,
    )
}

/// A forgery of `base` with no approvers needed, under a fresh id.
fn zero_approvers(base: &ChangeRequest, id: &str) -> ChangeRequest {
    let mut cr = base.clone();
    cr.id = id.into();
    cr.policy.approval.approvers = 0;
    cr.policy.approval.all_of.clear();
    cr
}

async fn wait_refused(fx: &GitOpsFixture, number: u64, reason: &str) {
    assert!(
        fx.github_wait(|| approval_status(fx, number).is_some_and(|s| {
            s["state"] == "failure" && s["description"].as_str().unwrap_or("").contains(reason)
        }))
        .await,
        "PR #{number} should fail with `{reason}`: {:?}",
        approval_status(fx, number)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pull(fx, number)["merged"], false, "never merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_change_files_never_get_success_nor_auto_merge() {
    let (_app, fx, number) = with_open_pr_opts(auto_merge()).await;
    let base = genuine(&fx, number);

    // Unsigned, on a PR the bot "opened" (the file is what fails).
    let mut unsigned = zero_approvers(&base, "cr-forged-unsigned");
    unsigned.signature = None;
    let n = hand_made_pr(&fx, &unsigned, BOT);
    wait_refused(&fx, n, "not signed").await;

    // A random signature.
    let mut random = sign(
        zero_approvers(&base, "cr-forged-random"),
        &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        "test",
    );
    if let Some(sig) = random.signature.as_mut() {
        sig.value = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWg==".into();
    }
    let n = hand_made_pr(&fx, &random, BOT);
    wait_refused(&fx, n, "signature").await;

    // Validly signed, by another key under the bridge's key id.
    let other = sign(
        zero_approvers(&base, "cr-forged-otherkey"),
        &ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        "test",
    );
    let n = hand_made_pr(&fx, &other, BOT);
    wait_refused(&fx, n, "signature").await;

    // A PR a person opened from a hand-pushed branch.
    let n = hand_made_pr(
        &fx,
        &zero_approvers(&base, "cr-forged-human"),
        "omar-operator",
    );
    wait_refused(&fx, n, "not by the Slipway App").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridges_signed_file_edited_by_a_later_commit_is_refused() {
    let (app, fx, number) = with_open_pr_opts(auto_merge()).await;
    let cr = genuine(&fx, number);
    let edited = cr.to_yaml().replace("approvers: 2", "approvers: 0");
    assert_ne!(edited, cr.to_yaml());
    fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &[(cr.file_path().as_str(), edited.as_str())],
        "fewer approvers",
        "omar-operator",
    );
    wait_refused(&fx, number, "signature does not").await;
    // Nobody can approve it from Slack either.
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    let ts = change_message(&app).ts;
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(responses_contain(&app.slack, "not a verified Slipway change request").await);
    assert!(fx.github.reviews(OWNER, REPO, number).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_outside_the_change_request_fails_the_status_and_keeps_the_lock() {
    let (_app, fx, number) = with_open_pr_opts(auto_merge()).await;
    let cr = genuine(&fx, number);
    let lock = format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug(&cr.resource)
    );
    fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &[(".github/workflows/slipway-runner.yml", "on: push\n")],
        "improve CI",
        "omar-operator",
    );
    wait_refused(&fx, number, ".github/workflows/slipway-runner.yml").await;
    for who in ["ada-approver", "olga-owner"] {
        fx.github.review(OWNER, REPO, number, who, "APPROVE", "ok");
    }
    wait_refused(&fx, number, "outside the change request").await;
    assert!(
        fx.github.ref_sha(OWNER, REPO, &lock).is_some(),
        "nothing is unlocked on an unverified file's word"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_pushed_after_slipway_cannot_approve_and_the_modal_shows_their_commit() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
    let branch = pull(&fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let path = "apps/api/staging/kustomization.yaml";
    let same = fx.github.file_at(OWNER, REPO, &branch, path).unwrap();
    // ada pushes a commit (the diff stays as signed), then approves it herself in GitHub.
    fx.github.push_direct(
        OWNER,
        REPO,
        &branch,
        &[(path, &same)],
        "tweak",
        "ada-approver",
    );
    let ts = change_message(&app).ts;
    assert!(message_contains(&app.slack, &ts, "slipway_approve").await);
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "mine");
    fx.github
        .review(OWNER, REPO, number, "olga-owner", "APPROVE", "ok");
    assert!(
        fx.github_wait(
            || approval_status(&fx, number).is_some_and(|s| s["state"] == "pending"
                && s["description"].as_str().unwrap_or("").contains("1 of 2"))
        )
        .await,
        "ada's own commit: her approval doesn't count: {:?}",
        approval_status(&fx, number)
    );
    // In Slack she is refused before anything reaches GitHub…
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(responses_contain(&app.slack, "you pushed to PR").await);
    // …and another approver's dialog shows her commit.
    let before = app.slack.views().len();
    app.click("U0APPROVER2", "slipway_approve", &number.to_string(), &ts)
        .await;
    let view = opened_view(&app.slack, before, "slipway_approve").await;
    let text = view.to_string();
    assert!(
        text.contains("Changed since Slipway") && text.contains("by ada-approver: tweak"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advanced_pr_verifies_through_its_supersedes_chain_and_can_be_approved() {
    let (app, fx, number) = with_open_pr().await;
    app.ack("U0OPERATOR", "/deploy api staging v3.0.0 --apply")
        .await;
    assert!(
        fx.github_wait(|| fx
            .github
            .comments(OWNER, REPO, number)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("Advanced by")))
            .await
    );
    for who in ["ada-approver", "bo-approver"] {
        fx.github.review(OWNER, REPO, number, who, "APPROVE", "ok");
    }
    assert!(
        fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success"))
            .await,
        "the newest request verifies back to the PR's first branch: {:?}",
        approval_status(&fx, number)
    );
}

/// A leaked key's id is revoked: a PR whose change file it signed is refused as revoked, and
/// never merges, whatever the file's expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_file_signed_with_a_revoked_key_is_refused() {
    let mut opts = auto_merge();
    opts.env = vec![("SLIPWAY_SIGNING_REVOKED_KEYS", "bridge-2025".to_string())];
    let (_app, fx, number) = with_open_pr_opts(opts).await;
    let base = genuine(&fx, number);
    let leaked = sign(
        zero_approvers(&base, "cr-forged-revoked"),
        &ed25519_dalek::SigningKey::from_bytes(&[11; 32]),
        "bridge-2025",
    );
    let n = hand_made_pr(&fx, &leaked, BOT);
    wait_refused(&fx, n, "revoked").await;
}
