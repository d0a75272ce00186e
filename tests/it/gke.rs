//! A GKE cluster (`clusters.<alias>.gke`): the bridge reads its endpoint and CA from the
//! container API and reaches it with short-lived tokens of its read-only Google account,
//! minted by the bridge, which the cluster checks with Google; no static credential is used.

use std::time::Duration;

use slipway_emulators::gcp::GcpEmulator;
use slipway_emulators::kube::KubeEmulator;
use slipway_tests::harness::{Options, TestApp, require_tool};

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gke_clusters_reads_run_with_a_minted_token_of_its_read_account() {
    require_tool(
        "kubectl",
        "this machine image ships kubectl at /usr/bin/kubectl",
    );
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    // The cluster behind `staging`: a Kubernetes API that, like GKE, accepts only Google tokens
    // of the read account (and one static token nobody is given).
    let cluster = KubeEmulator::start().await;
    cluster.add_namespace("web");
    cluster.add_pod("web", "gke-web-5f6d7-q1w2e", "Running");
    cluster.add_token("a-static-token-nobody-has");
    let reader = format!("serviceAccount:{}", ex.reader.client_email);
    let issuer = gcp.clone();
    cluster.check_tokens(move |t| issuer.principal_of(t).as_deref() == Some(reader.as_str()));
    let endpoint = cluster
        .https_url()
        .trim_start_matches("https://")
        .to_string();
    gcp.set_cluster_endpoint(
        &ex.project,
        &ex.region,
        &ex.cluster,
        &format!("{endpoint}/clusters/staging"),
        &cluster.ca_pem(),
    );
    let base = gcp.base_url();
    let yaml = format!(
        "clusters:\n  staging:\n    gke:\n      project: {}\n      location: {}\n      name: {}\n      \
         service_account: {}\n\
         gcp:\n  token_url: {}\n  iam_credentials_url: {base}/iamcredentials\n  \
         api_endpoint_overrides:\n    container: {base}/container/\n",
        ex.project,
        ex.region,
        ex.cluster,
        ex.reader.client_email,
        gcp.token_url(),
    );
    let app = TestApp::start_with(Options {
        config_yaml: Some(yaml),
        env: vec![("SLIPWAY_GCP_CREDENTIALS", ex.bridge.json.clone())],
        ..Options::default()
    })
    .await;
    let kubeconfig = app.dir.path().join("state/gke/staging/kubeconfig");
    let deadline = tokio::time::Instant::now() + LONG;
    while !kubeconfig.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no GKE kubeconfig was written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        written.contains("tokenFile") && !written.contains("\"token\""),
        "the kubeconfig names a token file, never a token: {written}"
    );

    let shown = "kubectl get pods --namespace=web";
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert!(ack.starts_with("Running"), "{ack}");
    let msg = app.wait_message(shown, LONG).await.expect("run message");
    let (_, thread) = app.wait_finished(&msg.ts, LONG).await;
    let out: String = thread.iter().map(|m| m.blocks.to_string()).collect();
    assert!(
        out.contains("gke-web-5f6d7-q1w2e"),
        "the GKE cluster's pods: {out}"
    );
    assert!(
        cluster
            .requests()
            .iter()
            .any(|r| r.path.contains("/pods") && r.had_bearer),
        "kubectl reached the GKE cluster with a bearer token"
    );
    let minted = gcp
        .requests()
        .iter()
        .filter(|r| r.path.contains(":generateAccessToken"))
        .count();
    assert!(minted >= 1, "the token was minted for the read account");
}
