//! Schema faithfulness: every REST response the emulator gives (through octocrab's raw request
//! API and through plain reqwest) is validated against the response schema of its operation in
//! GitHub's OpenAPI description, and every webhook payload it sends against
//! `@octokit/webhooks-schemas`. The schemas are the subsets extracted by
//! `tests/fixtures/github/extract.mjs`. The real and derived example payloads are validated too.
#![allow(clippy::unwrap_used)]

mod github_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use github_support::{OWNER, REPO, Receiver, branch, emulator};
use http_body_util::BodyExt as _;
use octocrab::Octocrab;
use serde_json::{Value, json};
use slipway_emulators::github::{GitHubEmulator, generate_app_key_pem};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/github")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(20)
        .collect()
}

/// What GitHub documents for `operation` answering `status`.
enum Documented {
    No,
    /// Documented, without a JSON body schema.
    WithoutSchema,
    Schema(Box<jsonschema::Validator>),
}

fn response_validator(operation: &str, status: u16) -> Documented {
    let file = load(&fixtures().join(format!("openapi/{}.json", operation.replace('/', "."))));
    let Some(schema) = file["responses"].get(status.to_string()) else {
        return Documented::No;
    };
    if schema.is_null() {
        return Documented::WithoutSchema;
    }
    let mut root = schema.clone();
    root["$defs"] = file["$defs"].clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    Documented::Schema(Box::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{operation} {status}: bad schema: {e}")),
    ))
}

fn webhook_validator(event: &str, action: Option<&str>) -> jsonschema::Validator {
    let schema = load(&fixtures().join(format!(
        "webhooks/{event}.{}.json",
        action.unwrap_or("event")
    )));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{event}.{action:?}: bad schema: {e}"))
}

/// Drives the emulator and checks each answer against its operation's schema.
struct Checker {
    gh: GitHubEmulator,
    octo: Octocrab,
    token: String,
    /// `(operation, status)` pairs validated.
    seen: Mutex<BTreeSet<(String, u16)>>,
}

impl Checker {
    fn check(&self, operation: &str, status: u16, body: &Value) {
        match response_validator(operation, status) {
            Documented::No => panic!("{operation}: status {status} is not documented; body {body}"),
            Documented::WithoutSchema if status == 204 => {
                assert!(body.is_null(), "{operation}: 204 with a body");
            }
            // Documented without a body schema: GitHub's usual error body.
            Documented::WithoutSchema => {
                assert!(body["message"].is_string(), "{operation} {status}: {body}");
            }
            Documented::Schema(validator) => {
                let errs = errors(&validator, body);
                assert!(
                    errs.is_empty(),
                    "{operation} {status} does not match its schema:\n{}\nbody: {body:#}",
                    errs.join("\n")
                );
            }
        }
        self.seen
            .lock()
            .unwrap()
            .insert((operation.to_string(), status));
    }

    /// Through octocrab (raw request API: GitHub's error bodies come back unmapped).
    async fn octo(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let resp = match method {
            "GET" => self.octo._get(path).await,
            "POST" => self.octo._post(path, body.as_ref()).await,
            "PATCH" => self.octo._patch(path, body.as_ref()).await,
            "PUT" => self.octo._put(path, body.as_ref()).await,
            "DELETE" => self.octo._delete(path, body.as_ref()).await,
            _ => unreachable!(),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        assert_eq!(status, expect, "{method} {path}: {value}");
        self.check(operation, status, &value);
        value
    }

    /// Through plain HTTP.
    async fn raw(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let url = format!("{}{}", self.gh.base_url(), path);
        let mut req = reqwest::Client::new()
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .header("authorization", format!("token {}", self.token))
            .header("accept", "application/vnd.github+json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert_eq!(status, expect, "{method} {path}: {value}");
        self.check(operation, status, &value);
        value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_responses_and_webhooks_match_githubs_schemas() {
    let gh = emulator().await;
    let hook = Receiver::start(200).await;
    gh.set_webhook(&hook.url, "schema");
    let key = generate_app_key_pem().unwrap();
    let installation = gh.add_app(77, &key, &[(OWNER, REPO)]);
    let app = Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .app(
            77.into(),
            octocrab::auth::EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let as_app = Checker {
        gh: gh.clone(),
        octo: app,
        token: String::new(),
        seen: Mutex::default(),
    };
    let path = format!("/app/installations/{installation}/access_tokens");
    let minted = as_app
        .octo(
            "apps/create-installation-access-token",
            "POST",
            &path,
            Some(json!({})),
            201,
        )
        .await;
    as_app
        .octo(
            "apps/create-installation-access-token",
            "POST",
            "/app/installations/999/access_tokens",
            None,
            404,
        )
        .await;
    let token = minted["token"].as_str().unwrap().to_string();
    let bot = Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .personal_token(token.clone())
        .build()
        .unwrap();
    let c = Checker {
        gh: gh.clone(),
        octo: bot,
        token,
        seen: Mutex::new(as_app.seen.into_inner().unwrap()),
    };
    let base = format!("/repos/{OWNER}/{REPO}");

    c.octo("repos/get", "GET", &base, None, 200).await;
    c.raw("repos/get", "GET", "/repos/acme/missing", None, 404)
        .await;

    // Git database.
    let main = gh.branch_sha(OWNER, REPO, "main").unwrap();
    c.octo(
        "git/get-ref",
        "GET",
        &format!("{base}/git/ref/heads/main"),
        None,
        200,
    )
    .await;
    c.raw(
        "git/get-ref",
        "GET",
        &format!("{base}/git/ref/heads/nope"),
        None,
        404,
    )
    .await;
    c.octo(
        "git/list-matching-refs",
        "GET",
        &format!("{base}/git/matching-refs/heads/"),
        None,
        200,
    )
    .await;
    let lock = json!({ "ref": "refs/slipway/locks/staging", "sha": main });
    c.octo(
        "git/create-ref",
        "POST",
        &format!("{base}/git/refs"),
        Some(lock.clone()),
        201,
    )
    .await;
    c.raw(
        "git/create-ref",
        "POST",
        &format!("{base}/git/refs"),
        Some(lock),
        422,
    )
    .await;
    c.raw(
        "git/create-ref",
        "POST",
        &format!("{base}/git/refs"),
        Some(json!({ "ref": "refs/heads/tmp", "sha": main })),
        201,
    )
    .await;
    let next = gh.push_direct(OWNER, REPO, "side", &[("side.txt", "s\n")], "side", "alice");
    c.octo(
        "git/update-ref",
        "PATCH",
        &format!("{base}/git/refs/heads/tmp"),
        Some(json!({ "sha": next })),
        200,
    )
    .await;
    c.raw(
        "git/update-ref",
        "PATCH",
        &format!("{base}/git/refs/heads/tmp"),
        Some(json!({ "sha": main })),
        422,
    )
    .await;
    c.octo(
        "git/update-ref",
        "PATCH",
        &format!("{base}/git/refs/heads/tmp"),
        Some(json!({ "sha": main, "force": true })),
        200,
    )
    .await;
    c.octo(
        "git/delete-ref",
        "DELETE",
        &format!("{base}/git/refs/heads/tmp"),
        None,
        204,
    )
    .await;
    c.raw(
        "git/delete-ref",
        "DELETE",
        &format!("{base}/git/refs/heads/tmp"),
        None,
        422,
    )
    .await;
    c.octo(
        "git/get-commit",
        "GET",
        &format!("{base}/git/commits/{main}"),
        None,
        200,
    )
    .await;
    c.raw(
        "git/get-commit",
        "GET",
        &format!("{base}/git/commits/{}", "f".repeat(40)),
        None,
        404,
    )
    .await;
    c.octo(
        "repos/get-content",
        "GET",
        &format!("{base}/contents/deploy/staging.yaml?ref=main"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/get-content",
        "GET",
        &format!("{base}/contents/deploy"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/get-content",
        "GET",
        &format!("{base}/contents/nope.txt"),
        None,
        404,
    )
    .await;
    c.octo(
        "repos/list-commits",
        "GET",
        &format!("{base}/commits?sha=main&path=deploy/staging.yaml&per_page=5"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/list-commits",
        "GET",
        &format!("{base}/commits?sha=nope"),
        None,
        404,
    )
    .await;

    // Pull requests and reviews.
    let head = branch(&gh, "slipway/cr-1", "alice");
    let pr_body =
        json!({ "title": "CR 1", "head": "slipway/cr-1", "base": "main", "body": "plan" });
    c.octo(
        "pulls/create",
        "POST",
        &format!("{base}/pulls"),
        Some(pr_body.clone()),
        201,
    )
    .await;
    c.raw(
        "pulls/create",
        "POST",
        &format!("{base}/pulls"),
        Some(pr_body),
        422,
    )
    .await;
    c.raw(
        "pulls/create",
        "POST",
        &format!("{base}/pulls"),
        Some(json!({ "title": "x", "head": "nope", "base": "main" })),
        422,
    )
    .await;
    c.octo(
        "pulls/list",
        "GET",
        &format!("{base}/pulls?state=all&head={OWNER}:slipway/cr-1"),
        None,
        200,
    )
    .await;
    c.raw("pulls/get", "GET", &format!("{base}/pulls/1"), None, 200)
        .await;
    c.octo("pulls/get", "GET", &format!("{base}/pulls/99"), None, 404)
        .await;
    c.octo(
        "pulls/update",
        "PATCH",
        &format!("{base}/pulls/1"),
        Some(json!({ "body": "plan v2" })),
        200,
    )
    .await;
    c.raw(
        "pulls/update",
        "PATCH",
        &format!("{base}/pulls/1"),
        Some(json!({ "state": "sideways" })),
        422,
    )
    .await;
    c.octo(
        "pulls/create-review",
        "POST",
        &format!("{base}/pulls/1/reviews"),
        Some(json!({ "event": "APPROVE", "commit_id": head })),
        422,
    )
    .await;
    c.octo(
        "pulls/create-review",
        "POST",
        &format!("{base}/pulls/1/reviews"),
        Some(json!({ "event": "COMMENT", "body": "note" })),
        200,
    )
    .await;
    let approval = gh.review(OWNER, REPO, 1, "bob", "APPROVE", "");
    let review = gh.review(OWNER, REPO, 1, "carol", "REQUEST_CHANGES", "no");
    c.raw(
        "pulls/list-reviews",
        "GET",
        &format!("{base}/pulls/1/reviews"),
        None,
        200,
    )
    .await;
    c.octo(
        "pulls/dismiss-review",
        "PUT",
        &format!("{base}/pulls/1/reviews/{review}/dismissals"),
        Some(json!({ "message": "stale", "event": "DISMISS" })),
        200,
    )
    .await;
    c.raw(
        "pulls/dismiss-review",
        "PUT",
        &format!("{base}/pulls/1/reviews/{review}/dismissals"),
        Some(json!({ "message": "again" })),
        422,
    )
    .await;
    c.octo(
        "pulls/list-reviews",
        "GET",
        &format!("{base}/pulls/1/reviews"),
        None,
        200,
    )
    .await;
    assert!(approval > 0);

    // Issues, labels, statuses.
    c.octo(
        "issues/create-comment",
        "POST",
        &format!("{base}/issues/1/comments"),
        Some(json!({ "body": "Plan: 1 to add" })),
        201,
    )
    .await;
    c.raw(
        "issues/create-comment",
        "POST",
        &format!("{base}/issues/1/comments"),
        Some(json!({ "body": "x".repeat(65_537) })),
        422,
    )
    .await;
    c.raw(
        "issues/create-comment",
        "POST",
        &format!("{base}/issues/42/comments"),
        Some(json!({ "body": "x" })),
        404,
    )
    .await;
    c.octo(
        "issues/list-comments",
        "GET",
        &format!("{base}/issues/1/comments"),
        None,
        200,
    )
    .await;
    c.raw(
        "issues/add-labels",
        "POST",
        &format!("{base}/issues/1/labels"),
        Some(json!({ "labels": ["slipway", "staging"] })),
        200,
    )
    .await;
    c.octo(
        "issues/add-labels",
        "POST",
        &format!("{base}/issues/1/labels"),
        Some(json!(["tf"])),
        200,
    )
    .await;
    let status = json!({ "state": "pending", "context": "slipway/approval", "description": "1 of 2", "target_url": "https://example.com/x" });
    c.octo(
        "repos/create-commit-status",
        "POST",
        &format!("{base}/statuses/{head}"),
        Some(status),
        201,
    )
    .await;
    c.raw(
        "repos/create-commit-status",
        "POST",
        &format!("{base}/statuses/{head}"),
        Some(json!({ "state": "success", "context": "ci" })),
        201,
    )
    .await;
    c.octo(
        "repos/get-combined-status-for-ref",
        "GET",
        &format!("{base}/commits/{head}/status"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/get-combined-status-for-ref",
        "GET",
        &format!("{base}/commits/slipway/cr-1/status"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/get-combined-status-for-ref",
        "GET",
        &format!("{base}/commits/nope/status"),
        None,
        404,
    )
    .await;
    c.octo(
        "repos/list-commit-statuses-for-ref",
        "GET",
        &format!("{base}/commits/{head}/statuses"),
        None,
        200,
    )
    .await;

    // Merge.
    c.octo(
        "pulls/merge",
        "PUT",
        &format!("{base}/pulls/1/merge"),
        Some(json!({ "sha": main })),
        409,
    )
    .await;
    let merged = c
        .raw(
            "pulls/merge",
            "PUT",
            &format!("{base}/pulls/1/merge"),
            Some(json!({ "sha": head, "merge_method": "merge" })),
            200,
        )
        .await;
    c.octo(
        "pulls/merge",
        "PUT",
        &format!("{base}/pulls/1/merge"),
        None,
        405,
    )
    .await;
    let merge_sha = merged["sha"].as_str().unwrap();
    c.octo(
        "repos/list-pull-requests-associated-with-commit",
        "GET",
        &format!("{base}/commits/{merge_sha}/pulls"),
        None,
        200,
    )
    .await;
    c.raw(
        "repos/list-pull-requests-associated-with-commit",
        "GET",
        &format!("{base}/commits/{next}/pulls"),
        None,
        200,
    )
    .await;
    c.raw("pulls/get", "GET", &format!("{base}/pulls/1"), None, 200)
        .await;

    // A PR closed without merging, then reopened.
    branch(&gh, "slipway/cr-2", "alice");
    c.octo(
        "pulls/create",
        "POST",
        &format!("{base}/pulls"),
        Some(json!({ "title": "CR 2", "head": "slipway/cr-2", "base": "main" })),
        201,
    )
    .await;
    c.octo(
        "pulls/update",
        "PATCH",
        &format!("{base}/pulls/2"),
        Some(json!({ "state": "closed" })),
        200,
    )
    .await;
    c.raw(
        "pulls/update",
        "PATCH",
        &format!("{base}/pulls/2"),
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
    c.octo(
        "actions/list-workflow-runs-for-repo",
        "GET",
        &format!("{base}/actions/runs?branch=main&status=success&event=push&per_page=1"),
        None,
        200,
    )
    .await;

    let seen = c.seen.lock().unwrap().clone();
    let operations: BTreeSet<&str> = seen.iter().map(|(o, _)| o.as_str()).collect();
    let all: BTreeSet<String> = std::fs::read_dir(fixtures().join("openapi"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .replacen('.', "/", 1)
        })
        .collect();
    let missing: Vec<&String> = all
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
    let merged_close = deliveries.iter().find(|d| {
        d.action.as_deref() == Some("closed") && d.payload["pull_request"]["merged"] == true
    });
    assert!(merged_close.is_some());
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
    assert!(checked >= 9, "only {checked} examples");
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
    assert_eq!(
        errors(&validator, &bad).len(),
        3,
        "{:?}",
        errors(&validator, &bad)
    );
}
