//! GitHub Actions as the emulator serves it to the real octocrab client: a workflow job's
//! `GITHUB_TOKEN`, and workflow runs listed per workflow with GitHub's filters.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod github_support;

use github_support::{OWNER, REPO, branch, emulator, octo};
use serde_json::Value;
use slipway_emulators::github::{AuthenticatedAs, RunSpec};

fn status_of(e: &octocrab::Error) -> u16 {
    match e {
        octocrab::Error::GitHub { source, .. } => source.status_code.as_u16(),
        other => panic!("expected a GitHub error, got {other:?}"),
    }
}

/// A workflow job's `GITHUB_TOKEN` acts as `github-actions[bot]` (a Bot) on its own repository,
/// and sees no other.
#[tokio::test]
async fn an_actions_job_token_acts_as_github_actions_on_its_repository_only() {
    let gh = emulator().await;
    gh.create_repo(OWNER, "other", "main", &[("README.md", "x\n")]);
    branch(&gh, "slipway/cr-j", "alice");
    let n = gh.open_pr(OWNER, REPO, "slipway/cr-j", "main", "Job", "alice");
    let job = octo(&gh, &gh.actions_token(OWNER, REPO));
    let c = job
        .issues(OWNER, REPO)
        .create_comment(n, "report")
        .await
        .unwrap();
    assert_eq!(c.user.login, "github-actions[bot]");
    assert_eq!(c.user.r#type, "Bot");
    let err = job.repos(OWNER, "other").get().await.unwrap_err();
    assert_eq!(status_of(&err), 404);
    let call = gh
        .calls()
        .into_iter()
        .find(|c| c.method == "POST" && c.path.contains("/comments"))
        .unwrap();
    assert_eq!(
        call.authenticated_as,
        AuthenticatedAs::ActionsJob {
            repository: format!("{OWNER}/{REPO}")
        }
    );
}

/// One workflow's runs (by file name or id), with GitHub's filters; another head repository
/// (a fork) shows in `head_repository`; an unknown workflow is 404.
#[tokio::test]
async fn workflow_runs_by_workflow_with_filters() {
    let gh = emulator().await;
    gh.create_repo("mallory", REPO, "main", &[("README.md", "fork\n")]);
    let main = gh.branch_sha(OWNER, REPO, "main").unwrap();
    let ci = gh.add_run(
        OWNER,
        REPO,
        &RunSpec::push("ci.yml", "main", &main, "success"),
    );
    gh.add_run(
        OWNER,
        REPO,
        &RunSpec::push("release.yml", "main", &main, "success"),
    );
    let pr = gh.add_run(
        OWNER,
        REPO,
        &RunSpec {
            event: "pull_request".into(),
            head_repository: Some(format!("mallory/{REPO}")),
            actor: Some("mallory".into()),
            ..RunSpec::push("ci.yml", "main", &main, "success")
        },
    );
    let alice = octo(&gh, "alice-token");
    let get = |q: String| {
        let alice = alice.clone();
        async move {
            let resp = alice._get(q.as_str()).await.unwrap();
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    };
    let base = format!("/repos/{OWNER}/{REPO}/actions/workflows");
    let ids = |v: &Value| -> Vec<u64> {
        v["workflow_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    let (status, all) = get(format!("{base}/ci.yml/runs")).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), [pr, ci], "newest first, ci.yml only");
    assert_eq!(all["total_count"], 2);
    assert_eq!(
        all["workflow_runs"][0]["head_repository"]["full_name"],
        format!("mallory/{REPO}")
    );
    assert_eq!(all["workflow_runs"][0]["actor"]["login"], "mallory");
    assert_eq!(all["workflow_runs"][1]["path"], ".github/workflows/ci.yml");
    let id = all["workflow_runs"][1]["workflow_id"].as_u64().unwrap();
    let (_, by_id) = get(format!("{base}/{id}/runs?event=push")).await;
    assert_eq!(ids(&by_id), [ci]);
    let (_, pushes) = get(format!(
        "{base}/ci.yml/runs?event=push&status=success&branch=main"
    ))
    .await;
    assert_eq!(ids(&pushes), [ci]);
    let (_, by_actor) = get(format!("{base}/ci.yml/runs?actor=mallory")).await;
    assert_eq!(ids(&by_actor), [pr]);
    let (_, none) = get(format!("{base}/ci.yml/runs?status=failure")).await;
    assert_eq!(none["total_count"], 0);
    let (status, missing) = get(format!("{base}/nope.yml/runs")).await;
    assert_eq!(status, 404, "{missing}");
}
