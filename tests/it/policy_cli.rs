//! The `slipway policy` CLI contract that outside checks rely on.

use serde_json::Value;
use slipway_tests::example_policy;

use crate::{slipway, stderr, stdout};

fn explain(user: &str, command: &str) -> Value {
    explain_in(user, command, &[])
}

/// `slipway policy explain`, with `more` arguments (`--channel D…`).
fn explain_in(user: &str, command: &str, more: &[&str]) -> Value {
    let policy = example_policy();
    let mut args = vec![
        "policy",
        "explain",
        "--policy",
        policy.to_str().unwrap(),
        "--user",
        user,
        "--command",
        command,
    ];
    args.extend_from_slice(more);
    let out = slipway(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "one JSON object on one line: {text}"
    );
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn check_accepts_the_example_policy() {
    let out = slipway(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let policy = example_policy();
    let out = slipway(&["policy", "check", "--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_reports_path_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example_policy()).unwrap();
    for (from, to, line_of) in [
        ("role: operator }", "role: operatr }", "role: operatr"),
        ("support:", "supprt:", "supprt:"),
        ("tiers: [read]", "tiers: [reed]", "tiers: [reed]"),
        ("read: 60s", "read: sixty", "read: sixty"),
        // One GitHub login for two people (case-insensitively).
        (
            "github: bo-approver",
            "github: Ada-Approver",
            "github: Ada-Approver",
        ),
    ] {
        let bad = text.replacen(from, to, 1);
        let expected_line = bad.lines().position(|l| l.contains(line_of)).unwrap() + 1;
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, &bad).unwrap();
        let out = slipway(&["policy", "check", "--policy", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{to}");
        let err = stderr(&out);
        let prefix = format!("{}:{expected_line}:", path.display());
        assert!(
            err.starts_with(&prefix),
            "{to}: expected {prefix}…, got {err}"
        );
        let col: String = err[prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(col.parse::<u32>().unwrap() >= 1, "{err}");
    }
    let out = slipway(&["policy", "check", "--policy", "/nonexistent/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("/nonexistent/policy.yaml:1:1:"));
}

#[test]
fn explain_prints_the_contract_keys() {
    let v = explain("U0VIEWER", "/kubectl get pods -n web");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["rule"], "viewer-read");
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["tier"], "read");
    assert_eq!(v["identity"], "vera.viewer@example.com");
    assert_eq!(
        v["argv"],
        serde_json::json!(["kubectl", "get", "pods", "--namespace=web"])
    );
    assert!(v["reason"].as_str().unwrap().contains("viewers may run"));
}

#[test]
fn explain_denials_and_approvals() {
    let v = explain("U0VIEWER", "/kubectl get secret db -n web -o yaml");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["argv"], Value::Null);
    assert_eq!(v["tier"], Value::Null);
    assert!(v["reason"].as_str().unwrap().contains("Secret"));

    let v = explain("U0PRODDEPLOY", "/deploy api production --apply");
    assert_eq!(v["decision"], "approval");
    assert_eq!(v["tier"], "change");
    assert_eq!(v["approval"]["rule"], "production");
    assert_eq!(v["role"], "operator");

    let v = explain("U0OPERATOR", "/deploy api production --apply");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "prod-deploys-only");

    let v = explain("U0NOBODY", "/kubectl get pods");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["identity"], Value::Null);
    assert_eq!(v["role"], Value::Null);

    // A parse error is a deny with the reason, still exit 0.
    let v = explain("U0OWNER", "/kubectl get pods | sh");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["argv"], Value::Null);
}

/// `--channel`: the example policy keeps production out of direct messages.
#[test]
fn explain_judges_the_channel_it_is_given() {
    let read = "/kubectl @production get pods -n api";
    assert_eq!(explain("U0OPERATOR", read)["decision"], "allow");
    assert_eq!(
        explain_in("U0OPERATOR", read, &["--channel", "C0OPS"])["decision"],
        "allow"
    );
    let v = explain_in("U0OPERATOR", read, &["--channel", "D0OMAR"]);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "channels.production-not-in-dms");
}

/// The contract outside checks use: `/gcloud` is judged against the shipped policy on
/// `gcp:<alias>`, and its argv never carries a project.
#[test]
fn gcloud_is_decided_on_the_project_alias() {
    for (user, alias, decision) in [
        ("U0VIEWER", "gcp-staging", "allow"),
        ("U0OPERATOR", "gcp-prod", "allow"),
        ("U0OWNER", "gcp-prod", "allow"),
        ("U0VIEWER", "gcp-prod", "deny"),
    ] {
        let v = explain(user, &format!("/gcloud {alias} compute instances list"));
        assert_eq!(v["decision"], decision, "{user} {alias}: {v}");
        assert_eq!(v["resource"], format!("gcp:{alias}"), "{v}");
        if decision == "allow" {
            assert_eq!(v["tier"], "read");
            assert_eq!(
                v["argv"],
                serde_json::json!(["gcloud", "compute", "instances", "list", "--format=json"])
            );
        }
    }
    let v = explain("U0VIEWER", "/gcloud gcp-staging compute instances list");
    assert_eq!(v["rule"], "viewer-read");
    let v = explain("U0VIEWER", "/gcloud gcp-prod compute instances list");
    assert_eq!(v["rule"], "rbac.default-deny", "{v}");
}

/// Credential printing and a smuggled project are refused whatever the role.
#[test]
fn gcloud_refusals_hold_for_owners() {
    for command in [
        "/gcloud gcp-prod auth print-access-token",
        "/gcloud gcp-prod compute instances list --project=other-project",
        "/gcloud gcp-prod compute instances list --project other-project",
        "/gcloud gcp-prod projects describe other-project",
    ] {
        let v = explain("U0OWNER", command);
        assert_eq!(v["decision"], "deny", "{command}: {v}");
        assert_eq!(v["rule"], "catalog.refused", "{command}: {v}");
        assert_eq!(v["argv"], Value::Null);
    }
}

#[test]
fn explain_exits_2_only_when_the_policy_cannot_be_read() {
    let out = slipway(&[
        "policy",
        "explain",
        "--policy",
        "/nonexistent.yaml",
        "--user",
        "U0VIEWER",
        "--command",
        "/slipway whoami",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
}

#[test]
fn policy_test_runs_the_matrix() {
    let out = slipway(&["policy", "test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let last = stdout(&out).lines().last().unwrap_or_default().to_string();
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 40, "{last}");
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn policy_test_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cases.yaml"),
        "cases:\n  - { name: wrong on purpose, user: U0VIEWER, command: \"/deploy api staging\", expect: allow }\n  - { name: right, user: U0VIEWER, command: \"/kubectl get pods\", expect: allow }\n",
    )
    .unwrap();
    let policy = example_policy();
    let out = slipway(&[
        "policy",
        "test",
        "--policy",
        policy.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("wrong on purpose"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 passed, 1 failed"), "{text}");
}

#[test]
fn redact_reads_stdin_and_writes_redacted_stdout() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .arg("redact")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input =
        "ok line\ntoken=ghp_abcdefghijklmnopqrstuvwxyz0123456789\nAKIAIOSFODNN7EXAMPLE\nplain\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("ok line") && text.contains("plain") && text.contains("REDACTED"),
        "{text}"
    );
    assert!(
        !text.contains("ghp_abcdefghijklmnopqrstuvwxyz0123456789")
            && !text.contains("AKIAIOSFODNN7EXAMPLE"),
        "{text}"
    );
}

#[test]
fn serve_refuses_to_start_without_a_signing_secret() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .arg("serve")
        .env_remove("SLIPWAY_SLACK_SIGNING_SECRET")
        .env("SLIPWAY_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SLIPWAY_SLACK_SIGNING_SECRET"),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["serve", "--config", "/nonexistent/slipway.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/slipway.yaml"),
        "{}",
        stderr(&out)
    );
}

/// `slipway policy explain` against a policy file written next to the test.
fn explain_with(policy_yaml: &str, user: &str, command: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy_yaml).unwrap();
    let out = slipway(&[
        "policy",
        "explain",
        "--policy",
        path.to_str().unwrap(),
        "--user",
        user,
        "--command",
        command,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("valid JSON")
}

/// Two protected entries on one namespace, in `order`, plus the route's rule.
fn two_protected(order: [&str; 2]) -> String {
    let entry = |id: &str| {
        let rule = if id == "first" { "weak" } else { "strict" };
        format!(
            "  - {{ id: {id}, resources: [\"kube:*/pay\"], read_roles: [op], approval: {rule} }}\n"
        )
    };
    format!(
        "version: 1\ndefaults: {{ cluster: c, alert_env: e }}\n\
         targets: {{ clusters: [c], aws_profiles: [], stacks: [], services: [], envs: {{ e: {{ cluster: c }} }} }}\n\
         identities:\n  provider: static\n  users:\n    - {{ slack: [U1], subject: u1, groups: [ops] }}\n\
         bindings: [{{ group: ops, role: op }}]\n\
         roles:\n  - name: op\n    max_silence: 1h\n    rules:\n      - {{ id: r, commands: [kubectl], tiers: [read, change, destructive], resources: [\"kube:c/*\"] }}\n\
         protected:\n{}{}\
         approvals:\n  rules:\n\
         \x20   - {{ id: weak, approvers: 1, groups: [approvers], expires_after: 24h, approve_in: slack }}\n\
         \x20   - {{ id: strict, approvers: 2, groups: [security], expires_after: 2h, approve_in: github }}\n\
         \x20   - {{ id: route, approvers: 3, groups: [approvers], expires_after: 8h, approve_in: slack }}\n\
         \x20 routes: [{{ resources: [\"*\"], rule: route }}]\n\
         limits: {{ timeouts: {{ read: 1s, operate: 1s, change: 1s, destructive: 1s }}, output_bytes: 10 }}\n",
        entry(order[0]),
        entry(order[1])
    )
}

#[test]
fn the_strictest_of_several_protected_entries_and_the_route_wins_in_any_order() {
    for order in [["first", "second"], ["second", "first"]] {
        let v = explain_with(
            &two_protected(order),
            "U1",
            "/kubectl @c scale deployment/api --replicas=1 -n pay",
        );
        assert_eq!(v["decision"], "approval", "{v}");
        let a = &v["approval"];
        assert_eq!(a["approvers"], 3, "the most approvers (the route's): {a}");
        assert_eq!(a["approve_in"], "github", "GitHub over Slack: {a}");
        assert_eq!(a["expires_after"], "2h", "the shortest expiry: {a}");
        let quorums: Vec<&str> = a["all_of"]
            .as_array()
            .expect("each group's own quorum")
            .iter()
            .map(|q| q["rule"].as_str().unwrap())
            .collect();
        assert!(
            quorums.contains(&"strict") && quorums.contains(&"route"),
            "security's own 2 must hold beside 3 approvers: {a}"
        );
    }
}

#[test]
fn cluster_scoped_objects_and_namespace_objects_are_authorised_as_what_they_are() {
    let v = explain(
        "U0OPERATOR",
        "/kubectl @staging delete namespace prod --apply",
    );
    assert_eq!(v["resource"], "kube:staging/prod");
    assert_eq!(v["approval"]["rule"], "production", "{v}");
    let v = explain(
        "U0OPERATOR",
        "/kubectl @staging patch clusterrolebinding admin -p {}",
    );
    assert_eq!(v["resource"], "kube:staging");
    assert_eq!(v["decision"], "deny", "{v}");
    let v = explain("U0OPERATOR", "/kubectl get pods -n web");
    assert!(
        v["argv"]
            .as_array()
            .unwrap()
            .contains(&Value::from("--namespace=web"))
    );
    let v = explain("U0OPERATOR", "/kubectl get pods");
    assert!(
        v["argv"]
            .as_array()
            .unwrap()
            .contains(&Value::from("--namespace=default")),
        "the namespace is always explicit: {v}"
    );
}
