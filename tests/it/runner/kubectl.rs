//! kubectl changes and deploys against the Kubernetes emulator; a re-run is a no-op.

use super::*;

/// The Kubernetes emulator with deployment `web/web` at 2 replicas (kubectl required).
pub(super) async fn web_cluster() -> KubeEmulator {
    require_tool(
        "kubectl",
        "this machine image ships kubectl 1.32 at /usr/bin/kubectl",
    );
    let kube = KubeEmulator::start().await;
    kube.add_namespace("web");
    kube.add_deployment("web", "web", 2, "registry.example/web:1.4.2");
    kube
}

pub(super) async fn cluster(fx: &Fx) -> (KubeEmulator, String) {
    let kube = web_cluster().await;
    let kubeconfig = fx.dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, &["staging", "production"], KUBE_TOKEN);
    let cfg = format!(
        "clusters:\n  staging: {{ kubeconfig: {}, context: staging }}\n",
        kubeconfig.display()
    );
    (kube, cfg)
}

fn patches(kube: &KubeEmulator) -> usize {
    kube.requests()
        .iter()
        .filter(|r| r.method == "PATCH" || r.method == "PUT")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_the_signed_argv_against_the_cluster_and_a_second_run_is_a_no_op() {
    let fx = fixture(&[], &[]).await;
    let (kube, clusters) = cluster(&fx).await;
    let cr = change(
        &fx,
        "k1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    assert_eq!(
        cr.command.argv,
        [
            "kubectl",
            "scale",
            "deployment/web",
            "--replicas=5",
            "--namespace=web"
        ]
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    // The workflow's matrix: one target per lock.
    let targets = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-runner-under-test"))
        .arg("targets")
        .env_clear()
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_SHA", &sha)
        .output()
        .unwrap();
    assert_eq!(
        crate::stdout(&targets).trim(),
        format!(
            r#"["{}"]"#,
            slipway_core::change::lock_slug("kube:staging/web")
        ),
        "{}",
        crate::stderr(&targets)
    );
    let cfg = config(&fx, &clusters);
    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        5
    );
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.context.as_deref() == Some("staging") && r.method != "GET"),
        "through the staging context"
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Executed") && body.contains("deployment.apps/web scaled"),
        "{body}"
    );
    assert!(
        fx.oidc.issued().is_empty(),
        "no AWS role configured for the cluster: no token minted"
    );

    let writes = patches(&kube);
    let again = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(
        crate::stdout(&again).contains("already-done"),
        "{}",
        crate::stdout(&again)
    );
    assert_eq!(patches(&kube), writes, "nothing ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_applies_the_rendered_manifests_server_side() {
    let d = super::rollout::deploy_web(None, |_| {}, "").await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert_eq!(d.out.status.code(), Some(0), "{body}");
    let dep = d.kube.deployment("web", "web").unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example/web:1.5.0",
        "{dep}"
    );
    assert!(body.contains("serverside-applied"), "{body}");
}

/// GitHub lists reviews 100 a page at most: the runner reads every page before it decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_the_second_page_of_reviews_count() {
    let fx = fixture(&[], &[]).await;
    let (kube, clusters) = cluster(&fx).await;
    let cr = change(
        &fx,
        "pg",
        "/kubectl scale deployment/web --replicas=4 -n web",
        Rendered::default(),
    );
    let (number, _) = open_change(&fx, &cr, &cr.to_yaml(), &[]).await;
    for i in 0..100 {
        fx.github.review(
            OWNER,
            REPO,
            number,
            "chatty-reviewer",
            "COMMENT",
            &format!("note {i}"),
        );
    }
    approve(&fx, number);
    let sha = merge(&fx, number);
    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, &clusters), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", comments(&fx, number));
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        4
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(body.contains("Executed"), "{body}");
}

/// The environment's cluster moved (a policy change merged after the request was made): the
/// deploy still runs on the cluster the request signed, the one its approvers approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_runs_on_the_signed_cluster_even_after_the_policy_moves_its_environment() {
    let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.4.2\n";
    let kustomization = |tag: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/web\n    newTag: \"{tag}\"\n"
        )
    };
    let fx = fixture(
        &[],
        &[
            ("apps/web/base/deployment.yaml", base.to_string()),
            (
                "apps/web/base/kustomization.yaml",
                "resources:\n  - deployment.yaml\n".to_string(),
            ),
            (
                "apps/web/staging/kustomization.yaml",
                kustomization("1.4.2"),
            ),
        ],
    )
    .await;
    let (kube, clusters) = cluster(&fx).await;
    let new = kustomization("1.6.0");
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(new.as_bytes()))
    };
    let rendered = Rendered {
        files: vec![RenderedFile {
            path: "apps/web/staging/kustomization.yaml".into(),
            sha256: digest,
        }],
        ..Rendered::default()
    };
    let cr = change(&fx, "mv1", "/deploy web staging 1.6.0", rendered);
    assert_eq!(
        cr.execution.as_ref().and_then(|e| e.cluster.as_deref()),
        Some("staging")
    );
    let (number, _) = open_change(
        &fx,
        &cr,
        &cr.to_yaml(),
        &[("apps/web/staging/kustomization.yaml", new)],
    )
    .await;
    approve(&fx, number);
    // Meanwhile the default branch maps `staging` to the production cluster.
    let moved = example_policy(&[(
        "staging: { cluster: staging }",
        "staging: { cluster: production }",
    )]);
    fx.github.push_direct(
        OWNER,
        REPO,
        "main",
        &[("policy/slipway.yaml", moved.as_str())],
        "move staging",
        "olga-owner",
    );
    let sha = merge(&fx, number);
    let ws = checkout(&fx, &sha);
    let production = format!(
        "  production: {{ kubeconfig: {}, context: production }}\n",
        fx.dir.path().join("kubeconfig").display()
    );
    let deploy = "deploy:\n  command: [kubectl, \"--kubeconfig={kubeconfig}\", \"--context={context}\", apply, --server-side, --validate=false, -k, \"{dir}\"]\n";
    let out = run(
        &fx,
        &ws,
        &sha,
        &config(&fx, &format!("{clusters}{production}{deploy}")),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{:?}", comments(&fx, number));
    let contexts: Vec<Option<String>> = kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.context)
        .collect();
    assert!(!contexts.is_empty());
    assert!(
        contexts.iter().all(|c| c.as_deref() == Some("staging")),
        "applied on the signed cluster only: {contexts:?}"
    );
}

/// One deadline rule: approved and merged before the request expired, the change runs even if
/// the job starts after the deadline (the quorum and the expiry are judged as of the merge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_merged_in_time_runs_even_when_its_job_starts_after_the_deadline() {
    let fx = fixture(&[], &[]).await;
    let (kube, clusters) = cluster(&fx).await;
    let mut cr = change(
        &fx,
        "dl1",
        "/kubectl scale deployment/web --replicas=6 -n web",
        Rendered::default(),
    );
    cr.expires_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let key = slipway_core::change::parse_signing_key(SIGNING_KEY_HEX).unwrap();
    let cr = slipway_core::change::sign(cr, &key, "test");
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    // The job is queued behind others: it starts after the deadline.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, &clusters), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", comments(&fx, number));
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        6
    );
}
