//! Change requests: `/deploy` and kubectl mutations become signed change files and pull requests
//! in the emulated GitHub (real git underneath), driven through the real router.

use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::change::ChangeRequest;
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO};
use slipway_tests::harness::{CHANNEL, Options, TestApp};

const LONG: Duration = Duration::from_secs(30);

pub(crate) async fn start() -> (TestApp, GitOpsFixture) {
    let fx = gitops::start().await;
    (app_for(&fx).await, fx)
}

/// A bridge configured for the fixture as it is (its config possibly edited).
pub(crate) async fn app_for(fx: &GitOpsFixture) -> TestApp {
    TestApp::start_with(Options {
        env: fx.env.clone(),
        config_yaml: Some(fx.config_yaml.clone()),
        ..Options::default()
    })
    .await
}

pub(crate) async fn wait_pulls(fx: &GitOpsFixture, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let pulls = fx.github.pulls(OWNER, REPO);
        if pulls.len() >= n {
            return pulls;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} PR(s), got {:?}", fx.github.pulls(OWNER, REPO));
}

/// The change request committed on a PR's branch.
pub(crate) fn change_file(fx: &GitOpsFixture, branch: &str) -> ChangeRequest {
    let id = branch.trim_start_matches("slipway/");
    let text = fx
        .github
        .file_at(OWNER, REPO, branch, &format!("changes/{id}.yaml"))
        .expect("change file on the branch");
    ChangeRequest::from_yaml(&text).expect("parses")
}

pub(crate) fn button_value(blocks: &Value, action_id: &str) -> Option<String> {
    blocks.as_array()?.iter().find_map(|b| {
        b["elements"]
            .as_array()?
            .iter()
            .find(|e| e["action_id"] == action_id)
            .and_then(|e| e["value"].as_str())
            .map(String::from)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_to_staging_opens_a_pr_whose_diff_is_exactly_the_tag_bump() {
    let (app, fx) = start().await;
    let ack = app.ack("U0OPERATOR", "/deploy api staging --apply").await;
    assert!(
        ack.starts_with("Opening a pull request for `/deploy api staging --apply`"),
        "{ack}"
    );
    let pulls = wait_pulls(&fx, 1).await;
    let pr = &pulls[0];
    let branch = pr["head"]["ref"].as_str().unwrap();
    assert!(
        branch.starts_with("slipway/cr-service-api-staging-"),
        "{branch}"
    );
    assert_eq!(pr["base"]["ref"], "main");

    // The manifest change is exactly the tag bump to the newest green CI build.
    let short: String = fx.api_sha.chars().take(7).collect();
    let new = fx
        .github
        .file_at(OWNER, REPO, branch, "apps/api/staging/kustomization.yaml")
        .unwrap();
    assert_eq!(
        new,
        gitops::KUSTOMIZATION_V1.replace("newTag: \"v1.0.0\"", &format!("newTag: \"sha-{short}\""))
    );
    // Nothing else in the repo moved.
    assert_eq!(
        fx.github.file_at(
            OWNER,
            REPO,
            branch,
            "apps/api/production/kustomization.yaml"
        ),
        fx.github.file_at(
            OWNER,
            REPO,
            "main",
            "apps/api/production/kustomization.yaml"
        )
    );
    assert_eq!(
        fx.github
            .file_at(OWNER, REPO, branch, "README.md")
            .as_deref(),
        Some("# GitOps\n")
    );

    // The change request is signed, and names requester, argv, rule and the image.
    let cr = change_file(&fx, branch);
    let keys =
        slipway_core::change::Keyring::from(vec![("test".to_string(), gitops::verifying_key())]);
    slipway_core::change::verify(&cr, &keys, cr.created_at).expect("valid signature");
    assert_eq!(cr.requester.slack_user_id, "U0OPERATOR");
    assert_eq!(cr.policy.approval.rule, "standard");
    assert_eq!(
        cr.rendered.image.as_deref(),
        Some(format!("registry.example/api:sha-{short}").as_str())
    );
    assert_eq!(cr.rendered.source_sha.as_deref(), Some(fx.api_sha.as_str()));

    // The PR body tells who, what and the rule; the Slack thread has the summary with buttons.
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("omar.operator@example.com")
            && body.contains("`standard`")
            && body.contains("newTag"),
        "{body}"
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.blocks.to_string().contains("slipway_approve")))
            .await
    );
    let msg = app
        .slack
        .messages()
        .into_iter()
        .find(|m| m.channel == CHANNEL && m.blocks.to_string().contains("slipway_approve"))
        .unwrap();
    assert_eq!(
        button_value(&msg.blocks, "slipway_reject").as_deref(),
        Some(pr["number"].to_string().as_str())
    );
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
    // Approval status is pending on the head.
    let statuses = fx
        .github
        .statuses(OWNER, REPO, pr["head"]["sha"].as_str().unwrap());
    assert!(
        statuses
            .iter()
            .any(|s| s["context"] == "slipway/approval" && s["state"] == "pending"),
        "{statuses:?}"
    );
    assert!(
        app.audit()
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::ChangeRequest
                && r.change_id.as_deref() == Some(cr.id.as_str()))
    );
}

/// `/deploy` without a version takes the newest green build of the service's CI workflow from a
/// push to its branch in its own repository. Newer green runs of another workflow, of a pull
/// request (a fork's can set its head branch to `main`), or from a fork's repository are not
/// builds of that branch, and must never be deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versionless_deploy_takes_only_the_ci_workflows_push_build_of_the_service_repo() {
    use slipway_emulators::github::RunSpec;
    let (app, fx) = start().await;
    fx.github
        .create_repo("mallory", "api", "main", &[("README.md", "# fork\n")]);
    let newer = |n: &str| {
        fx.github.push_direct(
            OWNER,
            "api",
            &format!("side-{n}"),
            &[("x", n)],
            &format!("commit {n}"),
            "mallory",
        )
    };
    let other_workflow = newer("1");
    fx.github.add_run(
        OWNER,
        "api",
        &RunSpec::push("release.yml", "main", &other_workflow, "success"),
    );
    let pull_request = newer("2");
    fx.github.add_run(
        OWNER,
        "api",
        &RunSpec {
            event: "pull_request".into(),
            ..RunSpec::push("ci.yml", "main", &pull_request, "success")
        },
    );
    let fork = newer("3");
    fx.github.add_run(
        OWNER,
        "api",
        &RunSpec {
            head_repository: Some("mallory/api".into()),
            ..RunSpec::push("ci.yml", "main", &fork, "success")
        },
    );
    app.ack("U0OPERATOR", "/deploy api staging --apply").await;
    let pulls = wait_pulls(&fx, 1).await;
    let branch = pulls[0]["head"]["ref"].as_str().unwrap();
    let cr = change_file(&fx, branch);
    assert_eq!(
        cr.rendered.source_sha.as_deref(),
        Some(fx.api_sha.as_str()),
        "the CI workflow's push build, not {other_workflow}, {pull_request} or {fork}"
    );
    let short: String = fx.api_sha.chars().take(7).collect();
    assert_eq!(
        cr.rendered.image.as_deref(),
        Some(format!("registry.example/api:sha-{short}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_are_dry_run_until_confirmed_by_the_requester() {
    let (app, fx) = start().await;
    let ack = app.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("slipway_confirm")))
            .await,
        "{:?} {:?} {:?}",
        app.slack.responses(),
        app.slack.validation_errors(),
        app.slack.calls()
    );
    let resp = app
        .slack
        .responses()
        .into_iter()
        .find(|r| r.body.to_string().contains("slipway_confirm"))
        .unwrap();
    assert!(resp.body.to_string().contains("newTag"), "{}", resp.body);
    assert!(
        fx.github.pulls(OWNER, REPO).is_empty(),
        "a dry run opens nothing"
    );
    let token = button_value(&resp.body["blocks"], "slipway_confirm").unwrap();
    // Someone else can't confirm it.
    app.click("U0OWNER", "slipway_confirm", &token, "1.1").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("Only the person who asked")))
            .await
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
    app.click("U0OPERATOR", "slipway_confirm", &token, "1.1")
        .await;
    let pulls = wait_pulls(&fx, 1).await;
    let cr = change_file(&fx, pulls[0]["head"]["ref"].as_str().unwrap());
    assert_eq!(
        cr.rendered.image.as_deref(),
        Some("registry.example/api:v2.0.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_deploy_outside_prod_deploys_is_denied_before_anything_is_written() {
    let (app, fx) = start().await;
    let ack = app
        .ack("U0OPERATOR", "/deploy api production --apply")
        .await;
    assert!(
        ack.contains("only members of prod-deploys may deploy to production"),
        "{ack}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
    assert!(
        fx.github.calls().iter().all(|c| c.method == "GET"),
        "no writes: {:?}",
        fx.github.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_yields_one_pr() {
    let (app, fx) = start().await;
    let body = app.command_body("U0OPERATOR", "/deploy", "api staging --apply");
    let first = app.signed_headers(&body);
    assert_eq!(
        app.post_raw("/slack/commands", body.clone(), &first)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Re-signed, as a retry would be: same trigger id, new timestamp.
    let second = app.signed_headers(&body);
    let (status, text) = app.post_raw("/slack/commands", body, &second).await;
    assert_eq!(status, 200);
    assert!(text.contains("already received"), "{text}");
    wait_pulls(&fx, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fx.github.pulls(OWNER, REPO).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_for_the_same_target_advances_the_pr() {
    let (app, fx) = start().await;
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0 --apply")
        .await;
    let first = wait_pulls(&fx, 1).await[0].clone();
    let branch = first["head"]["ref"].as_str().unwrap().to_string();
    let old = change_file(&fx, &branch);
    app.ack("U0OWNER", "/deploy api staging v3.0.0 --apply")
        .await;
    let number = first["number"].as_u64().unwrap();
    assert!(
        fx.github_wait(|| fx
            .github
            .comments(OWNER, REPO, number)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("Advanced")))
            .await,
        "the PR says it was advanced"
    );
    let pulls = fx.github.pulls(OWNER, REPO);
    assert_eq!(pulls.len(), 1, "still one PR");
    assert_ne!(
        pulls[0]["head"]["sha"], first["head"]["sha"],
        "a new commit"
    );
    let kustomization = fx
        .github
        .file_at(OWNER, REPO, &branch, "apps/api/staging/kustomization.yaml")
        .unwrap();
    assert!(kustomization.contains("v3.0.0"), "{kustomization}");
    assert!(
        fx.github
            .file_at(OWNER, REPO, &branch, &format!("changes/{}.yaml", old.id))
            .is_none(),
        "the superseded change file is gone"
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.blocks.to_string().contains("advanced")))
            .await,
        "{:?} {:?}",
        app.slack.messages(),
        app.slack.responses()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destructive_delete_needs_the_typed_confirmation() {
    let (app, fx) = start().await;
    let ack = app
        .ack(
            "U0OPERATOR",
            "/kubectl delete deployment/old-api -n web --apply",
        )
        .await;
    assert!(
        ack.contains("destructive") && ack.contains("dialog"),
        "{ack}"
    );
    assert!(
        app.slack.wait_until(LONG, |s| !s.views().is_empty()).await,
        "a modal opened"
    );
    let view = app.slack.views()[0].clone();
    assert_eq!(view["callback_id"], "slipway_destructive");
    let token = view["private_metadata"].as_str().unwrap().to_string();
    // A wrong name is refused on the input, and nothing opens.
    let (status, body) = submit_view(&app, "U0OPERATOR", &token, "old").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("response_action") && body.contains("deployment/old-api"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
    // The exact name opens the PR.
    let (status, body) = submit_view(&app, "U0OPERATOR", &token, "deployment/old-api").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let pulls = wait_pulls(&fx, 1).await;
    let cr = change_file(&fx, pulls[0]["head"]["ref"].as_str().unwrap());
    assert_eq!(cr.tier, slipway_core::command::Tier::Destructive);
    assert_eq!(
        cr.rendered.confirmation.as_deref(),
        Some("deployment/old-api")
    );
    assert_eq!(
        cr.command.argv,
        ["kubectl", "delete", "deployment/old-api", "--namespace=web"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_rejected_by_the_remote_is_reported_and_the_lock_released() {
    let (app, fx) = start().await;
    fx.github.reject_pushes(OWNER, REPO, "refs/heads/slipway/*");
    app.ack("U0OPERATOR", "/deploy api staging --apply").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.responses().iter().any(|r| r
                .body
                .to_string()
                .contains("Couldn't open a pull request")))
            .await
    );
    let text = app
        .slack
        .responses()
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    // An upstream failure: a short sentence and the decision's audit event id, never git's
    // or GitHub's own text (which is logged under that id instead).
    let decision = app
        .audit()
        .into_iter()
        .find(|r| r.kind == slipway_core::audit::EventKind::Decision)
        .expect("decision record");
    assert!(
        text.contains("failed on Slipway's side") && text.contains(&decision.event_id),
        "{text}"
    );
    assert!(
        !text.contains("reject") && !text.contains("refs/heads"),
        "{text}"
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
    // The lock was released, so a later request can proceed.
    assert!(
        fx.github
            .file_at(
                OWNER,
                REPO,
                &format!(
                    "refs/slipway/locks/{}",
                    slipway_core::change::lock_slug("service:api/staging")
                ),
                "README.md"
            )
            .is_none()
    );
}

pub(crate) async fn submit_view(
    app: &TestApp,
    user: &str,
    token: &str,
    typed: &str,
) -> (u16, String) {
    let payload = json!({
        "type": "view_submission",
        "user": {"id": user, "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "view": {
            "id": "V1", "type": "modal", "callback_id": "slipway_destructive", "private_metadata": token,
            "state": {"values": {"confirm": {"confirm_text": {"type": "plain_text_input", "value": typed}}}}
        }
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes();
    let headers = app.signed_headers(&body);
    app.post_raw("/slack/interactivity", body, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tf_apply_on_a_stack_pushed_directly_is_refused_with_the_reason() {
    let (app, fx) = start().await;
    app.ack("U0OPERATOR", "/tf apply network --apply").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("direct push")))
            .await,
        "{:?}",
        app.slack.responses()
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tf_apply_with_real_terraform_pins_the_plan_hash() {
    slipway_tests::harness::require_terraform();
    let (app, fx) = start().await;
    let state_dir = tempfile::tempdir().unwrap();
    let main_tf = format!(
        "terraform {{\n  backend \"local\" {{\n    path = \"{}/app.tfstate\"\n  }}\n}}\n\nresource \"terraform_data\" \"app\" {{\n  input = \"v2\"\n}}\n",
        state_dir.path().display()
    );
    // The stack's code lands through a reviewed, merged PR.
    fx.github.push_direct(
        OWNER,
        REPO,
        "stack-app",
        &[("stacks/app/main.tf", &main_tf)],
        "Add the app stack",
        "omar-operator",
    );
    let number = fx.github.open_pr(
        OWNER,
        REPO,
        "stack-app",
        "main",
        "Add the app stack",
        "omar-operator",
    );
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "ok");
    fx.github
        .merge(OWNER, REPO, number, "ada-approver")
        .unwrap();

    app.ack("U0OPERATOR", "/tf apply app --apply").await;
    let pulls = wait_pulls(&fx, 2).await;
    let pr = pulls
        .iter()
        .find(|p| {
            p["head"]["ref"]
                .as_str()
                .unwrap_or("")
                .starts_with("slipway/")
        })
        .expect("change PR");
    let cr = change_file(&fx, pr["head"]["ref"].as_str().unwrap());
    let digest = cr.rendered.plan_sha256.clone().expect("pinned plan digest");
    assert_eq!(digest.len(), 64);
    assert_eq!(
        cr.rendered.plan_summary.as_deref(),
        Some("Plan: 1 to add, 0 to change, 0 to destroy.")
    );
    assert_eq!(cr.rendered.stack_pr, Some(number));
    assert_eq!(cr.rendered.stack_merged_by.as_deref(), Some("ada-approver"));
    assert_eq!(cr.policy.approval.rule, "stacks");
    assert_eq!(
        cr.policy.approval.approvers, 2,
        "a second approver is required for stacks"
    );
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("terraform_data.app") && body.contains(&digest),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tf_plan_reads_the_stack_from_the_git_mirror_at_the_default_branch_head() {
    slipway_tests::harness::require_terraform();
    let (app, _fx) = start().await;
    let ack = app.ack("U0VIEWER", "/tf plan network").await;
    assert!(ack.starts_with("Running"), "{ack}");
    let msg = app
        .wait_message("terraform plan", LONG)
        .await
        .expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, Duration::from_secs(120)).await;
    let all = format!("{}{}", main.blocks, thread[0].blocks);
    assert!(all.contains("1 to add"), "{all}");
    let exec = app
        .audit()
        .into_iter()
        .find(|r| r.kind == slipway_core::audit::EventKind::Execution)
        .unwrap();
    assert!(
        exec.details
            .unwrap()
            .to_string()
            .contains("acme/gitops at the head of main")
    );
}

/// A bridge-host compromise yields the App's installation token: it reaches the GitOps
/// repository only, never the service repositories the App is also installed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridges_installation_token_reaches_only_the_gitops_repository() {
    let (app, _fx) = start().await;
    let svc = app.state.change.clone().expect("change service");
    let token = svc.gh().installation_token().await.expect("a token");
    let api = app
        .state
        .config
        .gitops_repo
        .as_ref()
        .unwrap()
        .api_url
        .clone();
    let as_token = slipway_infra::github::GitHub::user(&api, &token).unwrap();
    let gitops = slipway_infra::github::Repo::parse("acme/gitops").unwrap();
    let service = slipway_infra::github::Repo::parse("acme/api").unwrap();
    assert!(
        as_token
            .file_at(&gitops, "README.md", "main")
            .await
            .unwrap()
            .is_some(),
        "the GitOps repository is reachable"
    );
    assert!(as_token.open_prs(&gitops).await.is_ok());
    let err = as_token
        .open_prs(&service)
        .await
        .expect_err("the service repository is out of the token's reach");
    assert_eq!(err.status(), Some(404), "{err}");
}
