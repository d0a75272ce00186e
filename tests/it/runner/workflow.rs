//! The shipped workflow and IAM trust policy.

use super::*;

fn workflow() -> Value {
    let text = std::fs::read_to_string(
        slipway_tests::repo_root().join(".github/gitops-runner/slipway-runner.yml"),
    )
    .unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap()
}

#[test]
fn the_example_workflow_is_safe() {
    let w = workflow();
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
        serde_json::json!({"id-token": "write", "contents": "read", "pull-requests": "write", "statuses": "write"})
    );
    let jobs = w["jobs"].as_object().unwrap();
    let mut runs = 0;
    for (name, job) in jobs {
        for step in job["steps"].as_array().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    step["with"]["persist-credentials"], false,
                    "{name}: checkout must not keep credentials"
                );
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
    let execute = &jobs["execute"];
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
    assert!(
        execute.get("permissions").is_none(),
        "execute runs with the workflow's permissions"
    );
    assert_eq!(
        jobs["targets"]["permissions"],
        serde_json::json!({"contents": "read"})
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
}

#[test]
fn the_trust_policy_pins_audience_branch_and_workflow() {
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
    assert!(
        sub.ends_with(
            ":job_workflow_ref:acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main"
        ),
        "and the workflow: {sub}"
    );
    assert!(s["Condition"].get("StringLike").is_none(), "no wildcards");
    // The runner's own pre-check accepts exactly this subject's branch.
    let claims = slipway_infra::oidc::Claims {
        sub: sub.into(),
        ..Default::default()
    };
    assert_eq!(claims.branch(), Some("main"));
}
