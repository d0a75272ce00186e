//! Schema faithfulness: every REST response the emulator gives (through octocrab's raw request
//! API and through plain reqwest) is validated against the response schema of its operation in
//! GitHub's OpenAPI description, and every webhook payload it sends against
//! `@octokit/webhooks-schemas`. The schemas are the subsets extracted by
//! `tests/fixtures/github/extract.mjs`. The real and derived example payloads are validated too.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod github_support;

use std::collections::BTreeSet;
use std::time::Duration;

use github_support::schema::{Checker, errors, fixtures, load, webhook_validator};
use github_support::{OWNER, REPO, Receiver, branch, emulator};
use octocrab::Octocrab;
use serde_json::json;
use slipway_emulators::github::{RunSpec, generate_app_key_pem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_responses_and_webhooks_match_githubs_schemas() {
    let gh = emulator().await;
    let hook = Receiver::start(200).await;
    gh.set_webhook(&hook.url, "schema");
    let key = generate_app_key_pem().unwrap();
    let installation = gh.add_app(77, &key, &[(OWNER, REPO)]);
    let encoding_key = octocrab::auth::EncodingKey::from_rsa_pem(key.as_bytes()).unwrap();
    let app = Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .app(77.into(), encoding_key)
        .build()
        .unwrap();

    // The App's JWT buys an installation token; everything else runs as the installation.
    let as_app = Checker::new(&gh, app, "");
    let op = "apps/create-installation-access-token";
    let path = format!("POST /app/installations/{installation}/access_tokens");
    let minted = as_app.o(op, &path, Some(json!({})), 201).await;
    as_app
        .o(op, "POST /app/installations/9/access_tokens", None, 404)
        .await;
    let token = minted["token"].as_str().unwrap().to_string();
    let bot = Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .personal_token(token.clone())
        .build()
        .unwrap();
    let mut c = Checker::new(&gh, bot, &token);
    c.seen = as_app.seen;

    c.o(
        "repos/get",
        &format!("GET /repos/{OWNER}/{REPO}"),
        None,
        200,
    )
    .await;
    c.r("repos/get", "GET /repos/acme/missing", None, 404).await;

    // Git database.
    let main = gh.branch_sha(OWNER, REPO, "main").unwrap();
    c.o("git/get-ref", "GET git/ref/heads/main", None, 200)
        .await;
    c.r("git/get-ref", "GET git/ref/heads/nope", None, 404)
        .await;
    c.o(
        "git/list-matching-refs",
        "GET git/matching-refs/heads/",
        None,
        200,
    )
    .await;
    let lock = json!({ "ref": "refs/slipway/locks/staging", "sha": main });
    c.o("git/create-ref", "POST git/refs", Some(lock.clone()), 201)
        .await;
    c.r("git/create-ref", "POST git/refs", Some(lock), 422)
        .await;
    let tmp = json!({ "ref": "refs/heads/tmp", "sha": main });
    c.r("git/create-ref", "POST git/refs", Some(tmp), 201).await;
    let next = gh.push_direct(OWNER, REPO, "side", &[("side.txt", "s\n")], "side", "alice");
    let update = "git/update-ref";
    c.o(
        update,
        "PATCH git/refs/heads/tmp",
        Some(json!({ "sha": next })),
        200,
    )
    .await;
    c.r(
        update,
        "PATCH git/refs/heads/tmp",
        Some(json!({ "sha": main })),
        422,
    )
    .await;
    let forced = json!({ "sha": main, "force": true });
    c.o(update, "PATCH git/refs/heads/tmp", Some(forced), 200)
        .await;
    c.o("git/delete-ref", "DELETE git/refs/heads/tmp", None, 204)
        .await;
    c.r("git/delete-ref", "DELETE git/refs/heads/tmp", None, 422)
        .await;
    c.o(
        "git/get-commit",
        &format!("GET git/commits/{main}"),
        None,
        200,
    )
    .await;
    let missing = "f".repeat(40);
    c.r(
        "git/get-commit",
        &format!("GET git/commits/{missing}"),
        None,
        404,
    )
    .await;
    let content = "repos/get-content";
    c.o(
        content,
        "GET contents/deploy/staging.yaml?ref=main",
        None,
        200,
    )
    .await;
    c.r(content, "GET contents/deploy", None, 200).await;
    c.r(content, "GET contents/nope.txt", None, 404).await;
    let history = "GET commits?sha=main&path=deploy/staging.yaml&per_page=5";
    c.o("repos/list-commits", history, None, 200).await;
    c.r("repos/list-commits", "GET commits?sha=nope", None, 404)
        .await;

    // Pull requests and reviews.
    let head = branch(&gh, "slipway/cr-1", "alice");
    let pr = json!({ "title": "CR 1", "head": "slipway/cr-1", "base": "main", "body": "plan" });
    c.o("pulls/create", "POST pulls", Some(pr.clone()), 201)
        .await;
    c.r("pulls/create", "POST pulls", Some(pr), 422).await;
    let no_head = json!({ "title": "x", "head": "nope", "base": "main" });
    c.r("pulls/create", "POST pulls", Some(no_head), 422).await;
    let list = format!("GET pulls?state=all&head={OWNER}:slipway/cr-1");
    c.o("pulls/list", &list, None, 200).await;
    c.r("pulls/get", "GET pulls/1", None, 200).await;
    c.o("pulls/get", "GET pulls/99", None, 404).await;
    c.o(
        "pulls/update",
        "PATCH pulls/1",
        Some(json!({ "body": "plan v2" })),
        200,
    )
    .await;
    c.r(
        "pulls/update",
        "PATCH pulls/1",
        Some(json!({ "state": "sideways" })),
        422,
    )
    .await;
    let own_approval = json!({ "event": "APPROVE", "commit_id": head });
    c.o(
        "pulls/create-review",
        "POST pulls/1/reviews",
        Some(own_approval),
        422,
    )
    .await;
    let comment = json!({ "event": "COMMENT", "body": "note" });
    c.o(
        "pulls/create-review",
        "POST pulls/1/reviews",
        Some(comment),
        200,
    )
    .await;
    gh.review(OWNER, REPO, 1, "bob", "APPROVE", "");
    let review = gh.review(OWNER, REPO, 1, "carol", "REQUEST_CHANGES", "no");
    c.r("pulls/list-reviews", "GET pulls/1/reviews", None, 200)
        .await;
    let dismiss = format!("PUT pulls/1/reviews/{review}/dismissals");
    let message = json!({ "message": "stale", "event": "DISMISS" });
    c.o("pulls/dismiss-review", &dismiss, Some(message.clone()), 200)
        .await;
    c.r("pulls/dismiss-review", &dismiss, Some(message), 422)
        .await;
    c.o("pulls/list-reviews", "GET pulls/1/reviews", None, 200)
        .await;

    // Issues, labels, statuses.
    let comments = "POST issues/1/comments";
    c.o(
        "issues/create-comment",
        comments,
        Some(json!({ "body": "Plan: 1 to add" })),
        201,
    )
    .await;
    let too_long = json!({ "body": "x".repeat(65_537) });
    c.r("issues/create-comment", comments, Some(too_long), 422)
        .await;
    let no_issue = json!({ "body": "x" });
    c.r(
        "issues/create-comment",
        "POST issues/42/comments",
        Some(no_issue),
        404,
    )
    .await;
    c.o("issues/list-comments", "GET issues/1/comments", None, 200)
        .await;
    let labels = json!({ "labels": ["slipway", "staging"] });
    c.r(
        "issues/add-labels",
        "POST issues/1/labels",
        Some(labels),
        200,
    )
    .await;
    c.o(
        "issues/add-labels",
        "POST issues/1/labels",
        Some(json!(["tf"])),
        200,
    )
    .await;
    let statuses = format!("POST statuses/{head}");
    let pending = json!({
        "state": "pending", "context": "slipway/approval", "description": "1 of 2",
        "target_url": "https://example.com/x",
    });
    c.o("repos/create-commit-status", &statuses, Some(pending), 201)
        .await;
    let ci = json!({ "state": "success", "context": "ci" });
    c.r("repos/create-commit-status", &statuses, Some(ci), 201)
        .await;
    let combined = "repos/get-combined-status-for-ref";
    c.o(combined, &format!("GET commits/{head}/status"), None, 200)
        .await;
    c.r(combined, "GET commits/slipway/cr-1/status", None, 200)
        .await;
    c.r(combined, "GET commits/nope/status", None, 404).await;
    let list = format!("GET commits/{head}/statuses");
    c.o("repos/list-commit-statuses-for-ref", &list, None, 200)
        .await;

    // Merge, and the PRs of a commit.
    c.o(
        "pulls/merge",
        "PUT pulls/1/merge",
        Some(json!({ "sha": main })),
        409,
    )
    .await;
    let merge = json!({ "sha": head, "merge_method": "merge" });
    let merged = c
        .r("pulls/merge", "PUT pulls/1/merge", Some(merge), 200)
        .await;
    c.o("pulls/merge", "PUT pulls/1/merge", None, 405).await;
    let merge_sha = merged["sha"].as_str().unwrap();
    let associated = "repos/list-pull-requests-associated-with-commit";
    c.o(
        associated,
        &format!("GET commits/{merge_sha}/pulls"),
        None,
        200,
    )
    .await;
    c.r(associated, &format!("GET commits/{next}/pulls"), None, 200)
        .await;
    c.r("pulls/get", "GET pulls/1", None, 200).await;

    // A PR closed without merging, reopened, then pushed to.
    branch(&gh, "slipway/cr-2", "alice");
    let pr = json!({ "title": "CR 2", "head": "slipway/cr-2", "base": "main" });
    c.o("pulls/create", "POST pulls", Some(pr), 201).await;
    c.o(
        "pulls/update",
        "PATCH pulls/2",
        Some(json!({ "state": "closed" })),
        200,
    )
    .await;
    c.r(
        "pulls/update",
        "PATCH pulls/2",
        Some(json!({ "state": "open" })),
        200,
    )
    .await;
    gh.push_direct(
        OWNER,
        REPO,
        "slipway/cr-2",
        &[("more.txt", "m\n")],
        "more",
        "alice",
    );

    // Actions runs.
    gh.add_workflow_run(OWNER, REPO, "main", &main, "CI", "success");
    let runs = "GET actions/runs?branch=main&status=success&event=push&per_page=1";
    c.o("actions/list-workflow-runs-for-repo", runs, None, 200)
        .await;
    // One workflow's runs, with a fork's pull-request run (another head repository).
    gh.create_repo("mallory", REPO, "main", &[("README.md", "fork\n")]);
    gh.add_run(
        OWNER,
        REPO,
        &RunSpec {
            event: "pull_request".into(),
            head_repository: Some(format!("mallory/{REPO}")),
            ..RunSpec::push("ci.yml", "main", &main, "success")
        },
    );
    let runs = c
        .o(
            "actions/list-workflow-runs",
            "GET actions/workflows/ci.yml/runs?branch=main&per_page=5",
            None,
            200,
        )
        .await;
    assert_eq!(
        runs["workflow_runs"][0]["head_repository"]["full_name"],
        format!("mallory/{REPO}")
    );

    let seen = c.seen.lock().unwrap().clone();
    let operations: BTreeSet<&str> = seen.iter().map(|(o, _)| o.as_str()).collect();
    let extracted: BTreeSet<String> = std::fs::read_dir(fixtures().join("openapi"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".json").replacen('.', "/", 1)
        })
        .collect();
    let missing: Vec<&String> = extracted
        .iter()
        .filter(|o| !operations.contains(o.as_str()))
        .collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");

    // Every webhook payload sent.
    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);
    let deliveries = gh.deliveries();
    let mut kinds = BTreeSet::new();
    for d in &deliveries {
        let validator = webhook_validator(&d.event, d.action.as_deref());
        let errs = errors(&validator, &d.payload);
        assert!(
            errs.is_empty(),
            "{} {:?} payload does not match its schema:\n{}\n{:#}",
            d.event,
            d.action,
            errs.join("\n"),
            d.payload
        );
        kinds.insert(format!(
            "{}.{}",
            d.event,
            d.action.clone().unwrap_or_default()
        ));
    }
    for expected in [
        "push.",
        "pull_request.opened",
        "pull_request.synchronize",
        "pull_request.closed",
        "pull_request.reopened",
        "pull_request_review.submitted",
        "pull_request_review.dismissed",
        "issue_comment.created",
        "status.",
    ] {
        assert!(
            kinds.contains(expected),
            "no {expected} delivery: {kinds:?}"
        );
    }
    assert!(deliveries.iter().any(|d| {
        d.action.as_deref() == Some("closed") && d.payload["pull_request"]["merged"] == true
    }));
    assert!(
        deliveries
            .iter()
            .any(|d| d.payload["review"]["state"] == "approved")
    );
    assert_eq!(hook.all().len(), deliveries.len());
}

#[test]
fn example_payloads_match_the_webhook_schemas() {
    let dir = fixtures().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = name.trim_end_matches(".json").split('.').collect();
        let (event, action) = match parts.as_slice() {
            ["derived", event, action, ..] | [event, action] => (*event, *action),
            _ => panic!("unexpected example file {name}"),
        };
        let payload = load(&path);
        let validator = webhook_validator(event, (action != "event").then_some(action));
        let errs = errors(&validator, &payload);
        assert!(errs.is_empty(), "{name}:\n{}", errs.join("\n"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples");
    let merged = load(&dir.join("derived.pull_request.closed.merged.json"));
    assert_eq!(merged["pull_request"]["merged"], true);
    let approved = load(&dir.join("derived.pull_request_review.submitted.approved.json"));
    assert_eq!(approved["review"]["state"], "approved");

    // The validators bite: an unknown property, a wrong enum and a bad URI are all refused.
    let validator = webhook_validator("pull_request_review", Some("submitted"));
    let mut bad = approved.clone();
    bad["review"]["bogus"] = json!(1);
    bad["review"]["state"] = json!("APPROVED");
    bad["sender"]["url"] = json!("not a uri");
    let errs = errors(&validator, &bad);
    assert_eq!(errs.len(), 3, "{errs:?}");
}
