//! What the runner refuses: tampering, stale approvals, direct pushes, configuration mistakes.

use super::*;

pub(super) async fn refused(fx: &Fx, number: Option<u64>, sha: &str, id: &str) -> String {
    let ws = checkout(fx, sha);
    let out = run(fx, &ws, sha, &config(fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    assert!(
        crate::stdout(&out).contains("refused"),
        "{}",
        crate::stdout(&out)
    );
    assert_eq!(execution_status(fx, sha)["state"], "failure");
    let rejection = audit(fx)
        .into_iter()
        .find(|r| r.kind == slipway_core::audit::EventKind::Rejection)
        .expect("a rejection record");
    assert_eq!(rejection.change_id.as_deref(), Some(id));
    if let Some(n) = number {
        assert!(
            !comments(fx, n).iter().any(|c| c.contains(":started -->")),
            "nothing started"
        );
        return result_comment(fx, n, id);
    }
    crate::stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_change_request_is_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "x1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    // Someone edits the merged file: five replicas become fifty.
    let tampered = cr.to_yaml().replace("--replicas=5", "--replicas=50");
    assert_ne!(tampered, cr.to_yaml());
    let (number, sha) = approved_and_merged(&fx, &cr, &tampered, &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("Refused") && body.contains("edited after signing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_an_older_head_sha_are_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "s1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let (number, _) = open_change(&fx, &cr, &cr.to_yaml(), &[]).await;
    approve(&fx, number);
    // A commit lands on the PR after the approvals (it rewrites the change file as it is);
    // nobody approves the new head.
    let path = cr.file_path();
    fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &[(path.as_str(), cr.to_yaml().as_str())],
        "late edit",
        "omar-operator",
    );
    let sha = merge(&fx, number);
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("don't meet the quorum")
            && body.contains("older commit (stale): ada-approver, bo-approver"),
        "{body}"
    );
    assert!(
        !lock_exists(&fx, &cr),
        "the lock this change took is released even though the head moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pushed_directly_to_main_is_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "m1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let sha = fx.github.push_direct(
        OWNER,
        REPO,
        "main",
        &[(&cr.file_path(), &cr.to_yaml())],
        "sneak a change in",
        "omar-operator",
    );
    fx.oidc
        .set_job(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", &sha));
    let stdout = refused(&fx, None, &sha, &cr.id).await;
    assert!(
        stdout.contains("direct push") && stdout.contains("not through a merged pull request"),
        "{stdout}"
    );
    assert!(fx.oidc.issued().is_empty(), "no credentials were requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_mistakes_exit_2_and_say_what_to_fix() {
    let fx = fixture(&[], &[]).await;
    let sha = fx.github.branch_sha(OWNER, REPO, "main").unwrap();
    let ws = checkout(&fx, &sha);
    let missing = fx.dir.path().join("nope.yaml");
    let out = run(&fx, &ws, &sha, &missing, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("nope.yaml") && crate::stderr(&out).contains("--config"),
        "{}",
        crate::stderr(&out)
    );
    let out = run(
        &fx,
        &ws,
        &sha,
        &config(&fx, ""),
        &[("GITHUB_TOKEN", String::new())],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("GITHUB_TOKEN"),
        "{}",
        crate::stderr(&out)
    );
    // A commit that adds no change requests is nothing to do.
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert!(crate::stdout(&out).contains("nothing to do"));
}

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: web\ndata:\n  level: info\n";

/// A `kubectl apply -f` change pinning `path` as it is on main.
pub(super) fn apply_change(fx: &Fx, suffix: &str, path: &str, content: &str) -> ChangeRequest {
    use sha2::Digest;
    change(
        fx,
        suffix,
        &format!("/kubectl apply -f {path} -n web"),
        Rendered {
            files: vec![RenderedFile {
                path: path.into(),
                sha256: hex::encode(sha2::Sha256::digest(content.as_bytes())),
            }],
            ..Rendered::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_manifest_edited_after_the_request_is_refused() {
    let path = "apps/web/config.yaml";
    let fx = fixture(&[], &[(path, CONFIG_MAP.to_string())]).await;
    let cr = apply_change(&fx, "f1", path, CONFIG_MAP);
    // The PR also swaps the manifest the approvers were shown for another one.
    let swapped = CONFIG_MAP.replace("level: info", "level: debug");
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[(path, swapped)]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains(path) && body.contains("not what the change rendered"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scoped_object_inside_an_applied_manifest_is_refused() {
    let path = "apps/web/config.yaml";
    let manifest = format!(
        "{CONFIG_MAP}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: everyone-admin\nroleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }}\n"
    );
    let fx = fixture(&[], &[(path, manifest.clone())]).await;
    let cr = apply_change(&fx, "f2", path, &manifest);
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("ClusterRoleBinding/everyone-admin"),
        "the object is named: {body}"
    );
}

/// A PR that carries a change request and also edits a workflow (or the runner's config) would
/// run the request with whatever it swapped in: the runner refuses the whole merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_also_changes_github_or_slipway_is_refused() {
    for (suffix, path, content) in [
        (
            "g1",
            ".github/workflows/slipway-runner.yml",
            "on: push\njobs: { x: { runs-on: ubuntu-24.04, steps: [ { run: env } ] } }\n",
        ),
        ("g2", ".slipway/runner.yaml", "keys: { mine: \"00\" }\n"),
    ] {
        let fx = fixture(&[], &[]).await;
        let cr = change(
            &fx,
            suffix,
            "/kubectl scale deployment/web --replicas=5 -n web",
            Rendered::default(),
        );
        let (number, sha) =
            approved_and_merged(&fx, &cr, &cr.to_yaml(), &[(path, content.to_string())]).await;
        let body = refused(&fx, Some(number), &sha, &cr.id).await;
        assert!(
            body.contains("Refused")
                && body.contains(&format!("`{path}`"))
                && body.contains("code owners"),
            "{body}"
        );
        assert!(fx.oidc.issued().is_empty(), "no credentials were requested");
    }
}

/// The attack that retargeted the runner: the change PR gains a commit mapping `staging` to the
/// production cluster. The runner executes the signed target, on the signed cluster, judged by
/// the policy before the merge: the extra commit is outside the request, so nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pr_that_retargets_its_environment_is_refused_and_nothing_runs() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "rt1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    assert_eq!(
        cr.execution.as_ref().and_then(|e| e.cluster.as_deref()),
        Some("staging"),
        "the bridge signs where it runs"
    );
    let retarget = example_policy(&[(
        "staging: { cluster: staging }",
        "staging: { cluster: production }",
    )]);
    let (number, sha) = approved_and_merged(
        &fx,
        &cr,
        &cr.to_yaml(),
        &[("policy/slipway.yaml", retarget)],
    )
    .await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(body.contains("`policy/slipway.yaml`"), "{body}");
    assert!(fx.oidc.issued().is_empty(), "no credentials were requested");
}

/// A change PR that edits the kubeconfig its cluster config points at (adding an `exec` plugin)
/// runs nothing: the kubeconfig is in the checkout, and the merge changed a file outside the
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_in_the_checkout_or_with_an_exec_plugin_is_never_used() {
    let plugin = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: 'https://127.0.0.1:1' }\nusers:\n- name: u\n  user: { exec: { apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'touch /tmp/slipway-pwned'] } }\ncontexts:\n- name: staging\n  context: { cluster: c, user: u }\n";
    let fx = fixture(&[], &[(".slipway/kube/staging.yaml", plugin.to_string())]).await;
    let cr = change(
        &fx,
        "kc1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let cfg = config(
        &fx,
        &format!(
            "clusters:\n  staging: {{ kubeconfig: {}, context: staging }}\n",
            ws.join(".slipway/kube/staging.yaml").display()
        ),
    );
    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    let body = result_comment(&fx, number, &cr.id);
    assert!(body.contains("inside the checkout"), "{body}");
    assert!(!std::path::Path::new("/tmp/slipway-pwned").exists());
}

/// Reviews the bridge made from Slack carry its signed marker: under a rule that needs the
/// approval in GitHub (`approve_in: github`, the IdP's MFA), the runner doesn't count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_made_approvals_do_not_count_where_the_rule_needs_github() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "gh1",
        "/kubectl scale deployment/web --replicas=5 -n prod",
        Rendered::default(),
    );
    assert_eq!(cr.policy.approval.rule, "production");
    let (number, head) = open_change(&fx, &cr, &cr.to_yaml(), &[]).await;
    let key = slipway_core::change::parse_signing_key(SIGNING_KEY_HEX).unwrap();
    for who in ["ada-approver", "bo-approver"] {
        let marker = slipway_core::change::slack_review_marker(
            &key,
            "test",
            &format!("{OWNER}/{REPO}"),
            number,
            &head,
            who,
        );
        fx.github.review(
            OWNER,
            REPO,
            number,
            who,
            "APPROVE",
            &format!("Approved in Slack.\n\n{marker}"),
        );
    }
    let sha = merge(&fx, number);
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("approved in Slack, but this rule needs the approval in GitHub"),
        "{body}"
    );
}

/// A bridge key that leaked is revoked in the runner's config: a change it signed is refused,
/// approved and unexpired as it is, and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_signed_with_a_revoked_key_is_refused_whatever_its_expiry() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "rv1",
        "/kubectl scale deployment/web --replicas=4 -n web",
        Rendered::default(),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let rotated = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .verifying_key()
            .as_bytes(),
    );
    let base = std::fs::read_to_string(config(&fx, "")).unwrap();
    let text = base.replacen(
        "keys:\n",
        &format!("revoked_keys: [test]\nkeys:\n  bridge-2027: \"{rotated}\"\n"),
        1,
    );
    let path = fx.dir.path().join("runner-revoked.yaml");
    std::fs::write(&path, text).unwrap();
    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &path, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    assert_eq!(execution_status(&fx, &sha)["state"], "failure");
    let body = result_comment(&fx, number, &cr.id);
    assert!(body.contains("revoked"), "{body}");
    assert!(
        !comments(&fx, number)
            .iter()
            .any(|c| c.contains(":started -->")),
        "nothing started"
    );
}
