//! GitHub webhooks: redeliveries, forgeries, malformed bodies and real payloads.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_changes_nothing() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(thread_contains(&app.slack, &ts, "approved in GitHub").await);
    assert!(thread_contains(&app.slack, &ts, "slipway[bot]: opened").await);
    let before = app.slack.thread(CHANNEL, &ts).len();
    let delivery = fx
        .github
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.event == "pull_request_review")
        .expect("review delivery");
    assert_eq!(fx.github.redeliver(&delivery.id).await, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.slack.thread(CHANNEL, &ts).len(), before);
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 1"#)
    );
}

/// `X-GitHub-Delivery` is outside the signature: a captured delivery sent again under a fresh
/// id is still the same signed body, and is recognised by its digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_body_under_a_new_delivery_id_changes_nothing() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(thread_contains(&app.slack, &ts, "approved in GitHub").await);
    assert!(fx.github.wait_for_deliveries(LONG).await);
    // The PR's own `opened` delivery is handled in the background too, and may post after the
    // review's message on a loaded machine: wait for it before counting.
    assert!(thread_contains(&app.slack, &ts, "slipway[bot]: opened").await);
    // Let the original deliveries' work settle (slow on a loaded machine) before counting.
    let mut before = app.slack.thread(CHANNEL, &ts).len();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = app.slack.thread(CHANNEL, &ts).len();
        if now == before {
            break;
        }
        before = now;
    }
    let duplicates_before = duplicate_webhooks(&app).await;
    let captured = fx
        .github
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.event == "pull_request_review")
        .expect("review delivery");
    for fresh in ["replay-1", "replay-2"] {
        let (status, body) = webhook(
            &app,
            &captured.event,
            fresh,
            captured.body.clone().into_bytes(),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "duplicate delivery"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        app.slack.thread(CHANNEL, &ts).len(),
        before,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    assert_eq!(duplicate_webhooks(&app).await, duplicates_before + 2);
}

/// How many webhook deliveries the bridge has counted as duplicates so far.
async fn duplicate_webhooks(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} "#,
            )
        })
        .map_or(0, |n| n.trim().parse().expect("a counter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_webhooks_are_refused() {
    let (app, _fx, _number) = with_open_pr().await;
    let body = br#"{"action":"submitted"}"#.to_vec();
    let (status, _) = app
        .post_raw(
            "/github/webhook",
            body.clone(),
            &[
                ("x-hub-signature-256", "sha256=00".into()),
                ("x-github-event", "pull_request_review".into()),
                ("x-github-delivery", "d-1".into()),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.post_raw("/github/webhook", body, &[]).await.0, 401);
    let (status, _) = webhook(&app, "pull_request", "d-2", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"endpoint="github_webhook",outcome="malformed"} 1"#),
        "{metrics}"
    );
}

fn examples_dir() -> PathBuf {
    slipway_tests::repo_root().join("tests/fixtures/github/examples")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_github_payloads_parse_and_prs_slipway_didnt_open_are_ignored() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    // Let the emulator's own deliveries (push, status…) land first, then count.
    assert!(fx.github.wait_for_deliveries(LONG).await);
    assert!(
        thread_contains(&app.slack, &ts, "opened").await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ignored_before = metric(
        &app.get("/metrics").await,
        r#"slipway_requests_total{endpoint="github_webhook",outcome="ignored"}"#,
    );
    let before = app.slack.thread(CHANNEL, &ts).len();
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("derived.")
            .to_string();
        let event = name.split('.').next().unwrap().to_string();
        let (status, body) = webhook(
            &app,
            &event,
            &format!("example-{i}"),
            std::fs::read(path).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", path.display());
    }
    let metrics = app.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            r#"slipway_requests_total{endpoint="github_webhook",outcome="ignored"}"#
        ),
        ignored_before + u64::try_from(files.len()).unwrap(),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.slack.thread(CHANNEL, &ts).len(),
        before,
        "none of them is a Slipway PR"
    );

    // The same real shapes, pointed at Slipway's PR: handled. The payload is a trigger; the
    // bridge re-reads the PR and its reviews from GitHub.
    let branch = gitops_branch(&fx, number);
    for (i, file) in [
        "derived.pull_request_review.submitted.approved.json",
        "pull_request.synchronize.json",
        "pull_request_review.dismissed.json",
    ]
    .iter()
    .enumerate()
    {
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(examples_dir().join(file)).unwrap()).unwrap();
        v["pull_request"]["number"] = json!(number);
        v["pull_request"]["head"]["ref"] = json!(branch);
        let event = file
            .trim_start_matches("derived.")
            .split('.')
            .next()
            .unwrap();
        let (status, _) = webhook(
            &app,
            event,
            &format!("pointed-{i}"),
            v.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert!(
        app.slack
            .wait_until(LONG, |s| s.thread(CHANNEL, &ts).len() >= before + 3)
            .await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    let thread: Vec<String> = app
        .slack
        .thread(CHANNEL, &ts)
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("approved in GitHub · approvals 0 of 2")),
        "{thread:?}"
    );
    assert!(
        thread.iter().any(|t| t.contains("pushed a new commit")),
        "{thread:?}"
    );
    assert!(
        thread.iter().any(|t| t.contains("was dismissed")),
        "{thread:?}"
    );
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="ok"}"#)
    );
}

/// A counter's value in Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn gitops_branch(fx: &GitOpsFixture, number: u64) -> String {
    pull(fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string()
}

/// GitHub failing while a PR is verified is not a verdict on the PR: nothing says it "no longer
/// verifies", the failure isn't remembered, and the next event verifies and counts as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_failure_while_verifying_is_not_a_verdict_and_is_not_cached() {
    let fx = gitops::start().await;
    let app = start_with(&fx, Options::default()).await;
    // The PR's commits can't be listed while the `opened` event is handled.
    fx.github.fail_next("/commits", 1);
    let number = open_pr(&app, &fx).await;
    let ts = change_message(&app).ts;
    assert!(fx.github.wait_for_deliveries(LONG).await);
    assert!(
        fx.github_wait(|| fx.github.calls().iter().any(|c| c.status == 502))
            .await,
        "the failure was served"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(
        thread_contains(&app.slack, &ts, "approved in GitHub").await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    assert!(message_contains(&app.slack, &ts, "*1 of 2*").await);
    let thread = app.slack.thread(CHANNEL, &ts);
    assert!(
        !thread.iter().any(|m| m.text.contains("no longer verifies")),
        "{thread:?}"
    );
    let status = approval_status(&fx, number).unwrap();
    assert!(
        !status["description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unverified"),
        "{status}"
    );
}

/// Replicas on one Redis (issue 19): GitHub redelivers a review webhook, and the load balancer
/// sends the redelivery to the other replica and then back to the first: the review is mirrored
/// into the PR's Slack thread once, and both replicas count the redeliveries as duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redelivered_to_both_replicas_is_mirrored_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = slipway_tests::redis_server::RedisServer::start(dir.path());
    let fx = gitops::start().await;
    let shared = |name: &str| {
        vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", name.to_string()),
        ]
    };
    // B first: `start_with` points the emulator's webhook at the replica it starts last (A).
    let mut b_env = shared("b");
    let a = start_with(
        &fx,
        Options {
            env: shared("a"),
            ..Options::default()
        },
    )
    .await;
    b_env.push(("SLIPWAY_SLACK_API_URL", a.slack.api_url()));
    let b = TestApp::start_with(Options {
        env: approvals_env(&fx).into_iter().chain(b_env).collect(),
        config_yaml: Some(fx.config_yaml.clone()),
        ..Options::default()
    })
    .await;
    let number = open_pr(&a, &fx).await;
    let ts = change_message(&a).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(thread_contains(&a.slack, &ts, "approved in GitHub").await);
    assert!(thread_contains(&a.slack, &ts, "slipway[bot]: opened").await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = a.slack.thread(CHANNEL, &ts).len();
    let delivery = fx
        .github
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.event == "pull_request_review")
        .expect("review delivery");
    for app in [&b, &a] {
        let (status, body) = webhook(
            app,
            &delivery.event,
            &delivery.id,
            delivery.body.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reviews: Vec<_> = a
        .slack
        .thread(CHANNEL, &ts)
        .into_iter()
        .filter(|m| m.text.contains("approved in GitHub"))
        .collect();
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(a.slack.thread(CHANNEL, &ts).len(), before);
    for app in [&a, &b] {
        let metrics = app.get("/metrics").await;
        assert!(
            metrics.contains(
                r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 1"#
            ),
            "{metrics}"
        );
    }
}
