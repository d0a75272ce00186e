//! After a deploy applies, the runner waits for the rollout with the real `kubectl rollout
//! status` (which watches the emulated Deployment's generation, conditions and replica counts):
//! a rollout that finishes is reported with its ready replicas and the digest running; one that
//! fails (crash-looping pods, a readiness probe failing, or the configured wait running out)
//! makes the execution a failure with the pods' reasons.

use std::time::Duration;

use slipway_emulators::kube::RolloutFailure;

use super::*;

const BASE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.4.2\n";
/// The runner config's `deploy:` section: `kubectl apply -k` of the kustomization.
pub(crate) const DEPLOY: &str = "deploy:\n  command: [kubectl, \"--kubeconfig={kubeconfig}\", \"--context={context}\", apply, --server-side, --validate=false, -k, \"{dir}\"]\n";
const DIGEST: &str = "sha256:5b0f3b9e2cd4a3c0d4b2f1e7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7";

fn kustomization(tag: &str, digest: Option<&str>) -> String {
    let pin = digest
        .map(|d| format!("    digest: {d}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/web\n    newTag: \"{tag}\"\n{pin}"
    )
}

/// What one deploy run left behind.
pub(super) struct Deployed {
    pub fx: Fx,
    pub kube: KubeEmulator,
    pub number: u64,
    pub sha: String,
    pub cr: ChangeRequest,
    pub out: Output,
}

/// `/deploy web staging 1.5.0` (the digest pinned when given), approved, merged and run with
/// `deploy:` settings `extra`, against a cluster `prepare` sets up.
pub(super) async fn deploy_web(
    digest: Option<&str>,
    prepare: impl FnOnce(&KubeEmulator),
    extra: &str,
) -> Deployed {
    let plan = Plan {
        text: "/deploy web staging 1.5.0",
        policy_edits: &[],
        approvers: &["ada-approver", "bo-approver"],
    };
    deploy_web_with(&plan, digest, prepare, extra).await
}

/// What a deploy run is asked and approved as.
pub(super) struct Plan<'a> {
    pub text: &'a str,
    pub policy_edits: &'a [(&'a str, &'a str)],
    pub approvers: &'a [&'a str],
}

/// As [`deploy_web`], with the command text, policy and approvers given.
pub(super) async fn deploy_web_with(
    plan: &Plan<'_>,
    digest: Option<&str>,
    prepare: impl FnOnce(&KubeEmulator),
    extra: &str,
) -> Deployed {
    let fx = fixture(
        plan.policy_edits,
        &[
            ("apps/web/base/deployment.yaml", BASE.to_string()),
            (
                "apps/web/base/kustomization.yaml",
                "resources:\n  - deployment.yaml\n".to_string(),
            ),
            (
                "apps/web/staging/kustomization.yaml",
                kustomization("1.4.2", None),
            ),
        ],
    )
    .await;
    let (kube, clusters) = super::kubectl::cluster(&fx).await;
    prepare(&kube);
    let new = kustomization("1.5.0", digest);
    let rendered = Rendered {
        files: vec![RenderedFile {
            path: "apps/web/staging/kustomization.yaml".into(),
            sha256: {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(new.as_bytes()))
            },
        }],
        image: Some("registry.example/web:1.5.0".into()),
        image_digest: digest.map(String::from),
        ..Rendered::default()
    };
    let cr = change(&fx, "p1", plan.text, rendered);
    let files = [("apps/web/staging/kustomization.yaml", new)];
    let (number, _) = super::open_change(&fx, &cr, &cr.to_yaml(), &files).await;
    for who in plan.approvers {
        fx.github
            .review(OWNER, REPO, number, who, "APPROVE", "lgtm");
    }
    let sha = super::merge(&fx, number);
    let ws = checkout(&fx, &sha);
    let deploy = format!("{DEPLOY}{extra}");
    let out = run(
        &fx,
        &ws,
        &sha,
        &config(&fx, &format!("{clusters}{deploy}")),
        &[],
    )
    .await;
    Deployed {
        fx,
        kube,
        number,
        sha,
        cr,
        out,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_waits_for_the_rollout_and_reports_ready_replicas_and_the_running_digest() {
    let d = deploy_web(
        Some(DIGEST),
        |k| k.set_rollout_delay(Duration::from_millis(1500)),
        "",
    )
    .await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert_eq!(d.out.status.code(), Some(0), "{body}");
    assert!(
        body.contains("kubectl rollout status deployment/web -n web --timeout=300s")
            && body.contains("successfully rolled out")
            && body.contains(&format!(
                "2/2 replicas ready, running registry.example/web:1.5.0@{DIGEST}"
            )),
        "{body}"
    );
    assert!(
        d.kube
            .requests()
            .iter()
            .any(|r| r.path.contains("/deployments?") && r.path.contains("watch=true")),
        "kubectl watched the rollout: {:?}",
        d.kube.requests()
    );
    assert_eq!(execution_status(&d.fx, &d.sha)["state"], "success");
    evidence_verifies(&comments(&d.fx, d.number));
}

/// The job's evidence comment holds its whole chain, signed by the runner's audit key: its
/// records.
fn evidence_verifies(comments: &[String]) -> Vec<slipway_core::audit::AuditRecord> {
    use base64::Engine as _;
    let comment = comments
        .iter()
        .find(|c| c.starts_with(slipway_runner::evidence::MARKER))
        .unwrap_or_else(|| panic!("no evidence comment: {comments:?}"));
    let encoded = comment
        .split("```\n")
        .nth(1)
        .unwrap()
        .split("\n```")
        .next()
        .unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap(),
    )
    .unwrap();
    let records: Vec<slipway_core::audit::AuditRecord> =
        serde_json::from_value(payload["records"].clone()).unwrap();
    let checkpoint = serde_json::from_value(payload["checkpoint"].clone()).unwrap();
    let mut allow = slipway_core::audit::WriterAllowlist::new();
    allow
        .allow_text("runner:*", &slipway_tests::harness::audit_public_hex())
        .unwrap();
    slipway_core::audit::verify_segment(&records, &checkpoint, &allow, "runner:").unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::Execution),
        "{records:?}"
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_rollout_fails_the_execution_with_the_pods_reasons() {
    let d = deploy_web(
        Some(DIGEST),
        |k| k.fail_rollouts("web", "web", RolloutFailure::CrashLoop),
        "",
    )
    .await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert_ne!(d.out.status.code(), Some(0), "{body}");
    assert!(
        body.contains("exceeded its progress deadline")
            && body.contains("web-2-0: CrashLoopBackOff")
            && body.contains("did not finish"),
        "{body}"
    );
    assert_eq!(execution_status(&d.fx, &d.sha)["state"], "failure");
    // The record's exit code is the rollout wait's, not that of the steps gathering reasons.
    let records = evidence_verifies(&comments(&d.fx, d.number));
    let failed = records
        .iter()
        .rfind(|r| r.kind == slipway_core::audit::EventKind::Execution)
        .and_then(|r| r.output.as_ref())
        .expect("the execution record's output");
    assert_ne!(failed.exit_code, Some(0), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_whose_readiness_probe_fails_or_that_outlasts_the_wait_is_a_failure() {
    let d = deploy_web(
        None,
        |k| k.fail_rollouts("web", "web", RolloutFailure::Readiness),
        "",
    )
    .await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert!(body.contains("Readiness probe failed"), "{body}");
    assert_eq!(execution_status(&d.fx, &d.sha)["state"], "failure");

    let slow = deploy_web(
        None,
        |k| k.set_rollout_delay(Duration::from_secs(120)),
        "  rollout_timeout: 2s\n",
    )
    .await;
    let body = result_comment(&slow.fx, slow.number, &slow.cr.id);
    assert!(
        body.contains("--timeout=2s") && body.contains("did not finish"),
        "{body}"
    );
    assert_eq!(execution_status(&slow.fx, &slow.sha)["state"], "failure");
}
