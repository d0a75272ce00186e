//! The shipped workflows (the GitOps repo's caller and the reusable runner workflow), the example
//! CODEOWNERS, and the IAM trust policy.

use super::*;

const DIR: &str = ".github/gitops-runner";
/// Where the reusable workflow lives: its own repository, not the GitOps repo.
const REUSABLE: &str = "acme/slipway-runner-workflow/.github/workflows/slipway-runner.yml";

fn text(name: &str) -> String {
    std::fs::read_to_string(slipway_tests::repo_root().join(DIR).join(name)).unwrap()
}

fn workflow(name: &str) -> Value {
    serde_saphyr::from_str::<Value>(&text(name)).unwrap()
}

/// Every shipped workflow file, by name.
fn workflow_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(slipway_tests::repo_root().join(DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            std::path::Path::new(n)
                .extension()
                .is_some_and(|e| e == "yml" || e == "yaml")
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["slipway-runner-reusable.yml", "slipway-runner.yml"],
        "a new workflow here must be covered by these tests"
    );
    names
}

fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The commit the caller pins the reusable workflow at.
fn called_commit() -> String {
    let w = workflow("slipway-runner.yml");
    let uses = w["jobs"]["runner"]["uses"].as_str().unwrap();
    let (path, at) = uses.split_once('@').unwrap();
    assert_eq!(
        path, REUSABLE,
        "the caller calls the protected repository's workflow"
    );
    at.to_string()
}

#[test]
fn the_callers_workflow_only_calls_the_pinned_runner() {
    let w = workflow("slipway-runner.yml");
    // Only pushes to the default branch touching changes/**.
    let on = &w["on"];
    assert_eq!(
        on.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["push"],
        "no pull_request(_target), no dispatch: {on}"
    );
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(on["push"]["paths"], serde_json::json!(["changes/**"]));
    assert_eq!(
        w["permissions"],
        serde_json::json!({}),
        "no token by default"
    );
    let jobs = w["jobs"].as_object().unwrap();
    assert_eq!(jobs.keys().collect::<Vec<_>>(), ["runner"]);
    let job = &jobs["runner"];
    assert!(
        job.get("steps").is_none(),
        "the caller runs no steps of its own"
    );
    assert_eq!(
        job["permissions"],
        serde_json::json!({"id-token": "write", "contents": "read", "pull-requests": "write", "statuses": "write"})
    );
    assert!(job.get("with").is_none(), "the runner takes no inputs");
    assert!(is_commit_sha(&called_commit()));
}

#[test]
fn the_reusable_runner_workflow_is_safe() {
    let w = workflow("slipway-runner-reusable.yml");
    let on = &w["on"];
    assert_eq!(
        on.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["workflow_call"],
        "only ever called: {on}"
    );
    assert!(
        on["workflow_call"].get("inputs").is_none(),
        "no inputs: the caller can't change the image, config or steps"
    );
    let jobs = w["jobs"].as_object().unwrap();
    let mut runs = 0;
    for (name, job) in jobs {
        assert!(
            job.get("permissions").is_some(),
            "{name}: explicit permissions"
        );
        for step in job["steps"].as_array().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    step["with"]["persist-credentials"], false,
                    "{name}: checkout must not keep credentials"
                );
                assert_eq!(step["with"]["ref"], "${{ github.sha }}");
                assert!(step["with"].get("repository").is_none(), "{name}");
            }
            if let Some(script) = step["run"].as_str() {
                runs += 1;
                assert!(
                    !script.contains("${{"),
                    "{name}: no expression may be interpolated into a script: {script}"
                );
            }
        }
    }
    assert!(runs >= 2);
    let guard = jobs["targets"]["if"].as_str().unwrap();
    assert!(
        guard.contains("github.event_name == 'push'")
            && guard.contains("github.event.repository.default_branch"),
        "only for a push to the caller's default branch: {guard}"
    );
    assert_eq!(
        jobs["targets"]["permissions"],
        serde_json::json!({"contents": "read"})
    );
    let execute = &jobs["execute"];
    assert_eq!(
        execute["permissions"],
        serde_json::json!({"id-token": "write", "contents": "read", "pull-requests": "write", "statuses": "write"})
    );
    assert_eq!(execute["needs"], "targets", "so the guard holds for it too");
    let group = execute["concurrency"]["group"].as_str().unwrap();
    assert!(
        group.contains("matrix.target"),
        "one concurrency group per target: {group}"
    );
    assert_eq!(execute["concurrency"]["cancel-in-progress"], false);
    assert!(
        execute["strategy"]["matrix"]["target"]
            .as_str()
            .unwrap()
            .contains("needs.targets.outputs.targets")
    );
    let step = execute["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("slipway-runner execute"))
        })
        .unwrap();
    assert_eq!(step["env"]["SLIPWAY_TARGET"], "${{ matrix.target }}");
    assert_eq!(step["env"]["SLIPWAY_RUNNER_CONFIG"], ".slipway/runner.yaml");
}

/// The jobs hold `id-token: write`: a moved tag of any action they use would run with it. Every
/// `uses:` is a full commit SHA, with the version it is in a comment for the next upgrade.
#[test]
fn every_action_in_the_shipped_workflows_is_pinned_to_a_commit() {
    let mut seen = 0;
    for name in workflow_files() {
        // Parsed: every `uses:` of jobs (reusable workflows) and steps (actions).
        let w = workflow(&name);
        let mut uses: Vec<String> = Vec::new();
        for job in w["jobs"].as_object().unwrap().values() {
            uses.extend(job["uses"].as_str().map(String::from));
            for step in job["steps"].as_array().into_iter().flatten() {
                uses.extend(step["uses"].as_str().map(String::from));
            }
        }
        assert!(!uses.is_empty(), "{name} uses nothing?");
        for u in &uses {
            let (_, at) = u
                .split_once('@')
                .unwrap_or_else(|| panic!("{name}: `{u}` names no version"));
            assert!(
                is_commit_sha(at),
                "{name}: `{u}` must be pinned to a full 40-hex commit SHA, not a tag or branch"
            );
        }
        // As written: each `uses:` line carries its version as a comment.
        let text = text(&name);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.trim_start().trim_start_matches("- ").starts_with("uses:"))
            .collect();
        assert_eq!(lines.len(), uses.len(), "{name}: one `uses:` per line");
        for line in lines {
            let (_, comment) = line
                .split_once(" # ")
                .unwrap_or_else(|| panic!("{name}: `{line}` needs a `# vX.Y.Z` comment"));
            assert!(comment.starts_with('v'), "{name}: `{line}`");
        }
        seen += uses.len();
    }
    assert!(seen >= 4, "{seen}");
}

#[test]
fn the_codeowners_example_covers_github_and_slipway() {
    let owners = text("CODEOWNERS");
    for dir in ["/.github/", "/.slipway/"] {
        assert!(
            owners.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(dir) && words.next().is_some_and(|o| o.starts_with('@'))
            }),
            "{dir} needs a code owner:\n{owners}"
        );
    }
}

#[test]
fn the_trust_policy_pins_audience_branch_and_the_reusable_workflow_at_a_commit() {
    let text = std::fs::read_to_string(
        slipway_tests::repo_root().join("deploy/iam/runner-trust-policy.json"),
    )
    .unwrap();
    let p: Value = serde_json::from_str(&text).unwrap();
    let statements = p["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    assert!(
        s["Principal"]["Federated"]
            .as_str()
            .unwrap()
            .ends_with(":oidc-provider/token.actions.githubusercontent.com")
    );
    let eq = &s["Condition"]["StringEquals"];
    assert_eq!(
        eq["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    let sub = eq["token.actions.githubusercontent.com:sub"]
        .as_str()
        .unwrap();
    assert!(
        sub.starts_with("repo:acme/gitops:ref:refs/heads/main:"),
        "sub pins the default branch: {sub}"
    );
    // The reusable workflow, at exactly the commit the caller calls: a workflow merged into the
    // GitOps repo, or the runner workflow at another commit, gets another subject.
    let pinned = format!(":job_workflow_ref:{REUSABLE}@{}", called_commit());
    assert!(sub.ends_with(&pinned), "{sub} must end with {pinned}");
    assert!(
        !sub.contains(":job_workflow_ref:acme/gitops/"),
        "never a workflow of the GitOps repo itself: {sub}"
    );
    assert!(s["Condition"].get("StringLike").is_none(), "no wildcards");
    // The runner's own pre-check accepts exactly this subject's branch.
    let claims = slipway_infra::oidc::Claims {
        sub: sub.into(),
        ..Default::default()
    };
    assert_eq!(claims.branch(), Some("main"));
}

/// The shipped trust policy against real tokens from the (emulated) Actions issuer, read with
/// the runner's own OIDC client, for the GitOps repo with its subject customized as documented:
/// only the runner's job, defined by the reusable workflow at the pinned commit and run for a
/// push to the default branch, gets a token the role accepts. A job that a merged edit of the
/// GitOps repo's workflow defines itself, the reusable workflow at another commit or a branch,
/// and a pull request's run are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pinned_reusable_workflow_gets_tokens_the_trust_policy_accepts() {
    let text = std::fs::read_to_string(
        slipway_tests::repo_root().join("deploy/iam/runner-trust-policy.json"),
    )
    .unwrap();
    let policy: Value = serde_json::from_str(&text).unwrap();
    let conditions = policy["Statement"][0]["Condition"]["StringEquals"].clone();
    let accepts = |claims: &slipway_infra::oidc::Claims| {
        conditions
            .as_object()
            .unwrap()
            .iter()
            .all(|(key, want)| match key.as_str() {
                "token.actions.githubusercontent.com:aud" => {
                    claims.aud.contains(want.as_str().unwrap())
                }
                "token.actions.githubusercontent.com:sub" => claims.sub == want.as_str().unwrap(),
                other => panic!("a condition this test doesn't evaluate: {other}"),
            })
    };
    let caller = "acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main";
    let pinned = format!("{REUSABLE}@{}", called_commit());
    let job = |job_workflow_ref: &str| {
        ActionsJob::push("acme/gitops", "main", &"a".repeat(40))
            .calling(job_workflow_ref)
            .with_subject_claims(&["repo", "context", "job_workflow_ref"])
    };
    let mut pull_request = job(&pinned);
    pull_request.git_ref = "refs/pull/7/merge".into();
    pull_request.event_name = "pull_request".into();
    let cases = [
        ("the runner's job", job(&pinned), true),
        (
            "a job of the GitOps repo's own workflow",
            job(caller),
            false,
        ),
        (
            "the runner workflow at another commit",
            job(&format!("{REUSABLE}@{}", "1".repeat(40))),
            false,
        ),
        (
            "the runner workflow at a branch",
            job(&format!("{REUSABLE}@refs/heads/main")),
            false,
        ),
        ("a pull request's run", pull_request, false),
    ];
    let oidc = ActionsOidcEmulator::start(job(&pinned)).await;
    for (what, j, allowed) in cases {
        oidc.set_job(j);
        let token = slipway_infra::oidc::request_token(
            &oidc.request_url(),
            &oidc.request_token(),
            slipway_infra::oidc::STS_AUDIENCE,
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            accepts(&token.claims),
            allowed,
            "{what}: sub {}",
            token.claims.sub
        );
    }
}
