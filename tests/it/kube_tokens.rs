//! Kubernetes ServiceAccount tokens minted per run (TokenRequest, 10 minutes, audience bound)
//! against the Kubernetes emulator: reads run as the read-only ServiceAccount, server-side dry
//! runs as the dry-run one, and the bridge's own kubeconfig identity only mints. The emulator
//! plays RBAC and the shipped `ValidatingAdmissionPolicy` (`deploy/kubernetes/target-cluster/`),
//! so the tests also show what a stolen token of either account can't do.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use slipway_bridge::exec::aws_role::{TAG_DECISION, TAG_REQUESTER, TAG_SLACK_USER};
use slipway_core::audit::EventKind;
use slipway_emulators::kube::{AccountRole, DEFAULT_AUDIENCE, DRY_RUN_POLICY, KubeEmulator};
use slipway_tests::harness::{KUBE_TOKEN, Options, TestApp};

const LONG: Duration = Duration::from_secs(60);
const READ_SA: &str = "system:serviceaccount:slipway:slipway-read";
const DRY_RUN_SA: &str = "system:serviceaccount:slipway:slipway-dry-run";

/// `clusters.staging` with both ServiceAccounts, minted with the emulator's kubeconfig.
fn clusters_yaml(audience: &str) -> String {
    format!(
        "clusters:\n  staging:\n    kubeconfig: $KUBECONFIG\n    context: staging\n    \
         read_service_account: {{namespace: slipway, name: slipway-read}}\n    \
         dry_run_service_account: {{namespace: slipway, name: slipway-dry-run}}\n    \
         audience: {audience}\n"
    )
}

fn add_accounts(kube: &KubeEmulator) {
    kube.add_service_account("slipway", "slipway-read", AccountRole::ReadOnly);
    kube.add_service_account("slipway", "slipway-dry-run", AccountRole::DryRunOnly);
}

/// One plain-HTTP request to the emulator with a bearer token: status and JSON body.
async fn call(
    kube: &KubeEmulator,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", kube.url()))
        .header("authorization", format!("Bearer {token}"))
        .header(
            "content-type",
            if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            },
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A token for `sa`, minted as the bridge would (with its own identity).
async fn mint(kube: &KubeEmulator, sa: &str, audience: &str, seconds: u64) -> (u16, Value) {
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": seconds},
    });
    let path = format!("/api/v1/namespaces/slipway/serviceaccounts/{sa}/token");
    call(kube, "POST", &path, KUBE_TOKEN, &body).await
}

async fn run_read(app: &TestApp, line: &str, shown: &str) -> String {
    let ack = app.ack("U0VIEWER", line).await;
    assert!(ack.starts_with("Running"), "{ack}");
    let msg = app.wait_message(shown, LONG).await.expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    main.blocks.to_string()
        + &thread
            .iter()
            .map(|m| m.blocks.to_string())
            .collect::<String>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_run_as_the_read_service_account_with_a_token_minted_per_run() {
    let app = TestApp::start_with(Options {
        config_yaml: Some(clusters_yaml(DEFAULT_AUDIENCE)),
        ..Options::default()
    })
    .await;
    add_accounts(&app.kube);
    let out = run_read(
        &app,
        "/kubectl get pods -n web",
        "kubectl get pods --namespace=web",
    )
    .await;
    assert!(out.contains("web-7d9f-abcde"), "{out}");
    let out = run_read(
        &app,
        "/kubectl get deployments -n web",
        "kubectl get deployments --namespace=web",
    )
    .await;
    assert!(
        out.contains("registry.example/web") || out.contains("web"),
        "{out}"
    );

    let requests = app.kube.requests();
    let reads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/namespaces/web/"))
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads.iter().all(|r| r.user.as_deref() == Some(READ_SA)),
        "every read ran as the read ServiceAccount: {reads:?}"
    );
    let minted: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/serviceaccounts/slipway-read/token"))
        .collect();
    // One per run (API discovery, which also reads as the read account, may mint its own).
    assert!(minted.len() >= 2, "one token per run: {minted:?}");
    assert!(
        minted.iter().all(|r| r.user.is_none()),
        "minted with the bridge's own identity"
    );
    let issued = app.kube.issued_tokens();
    assert_eq!(issued.len(), minted.len());
    for t in &issued {
        assert_eq!(t.account, "slipway/slipway-read");
        assert_eq!(t.audiences, [DEFAULT_AUDIENCE]);
        assert_eq!(t.expiration_seconds, 600);
    }

    let audit = app.audit();
    let runs: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == EventKind::Execution)
        .collect();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(
            r.details.as_ref().unwrap()["kubernetes_service_account"],
            "slipway/slipway-read"
        );
    }
    // The per-run kubeconfigs are gone, and no token was kept anywhere.
    let left: Vec<_> = std::fs::read_dir(&app.state.work_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("kube-")),
        "{left:?}"
    );
    let text = crate::aws_roles::shown_and_kept(&app);
    for t in &issued {
        assert!(!text.contains(&t.token), "a minted token was kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_is_refused_and_the_read_fails() {
    let app = TestApp::start_with(Options {
        config_yaml: Some(clusters_yaml("https://not-this-cluster.example")),
        ..Options::default()
    })
    .await;
    add_accounts(&app.kube);
    let out = run_read(
        &app,
        "/kubectl get pods -n web",
        "kubectl get pods --namespace=web",
    )
    .await;
    assert!(!out.contains("web-7d9f-abcde"), "{out}");
    assert!(
        out.contains("Unauthorized") || out.contains("provide credentials"),
        "{out}"
    );
    assert!(
        app.kube
            .requests()
            .iter()
            .all(|r| !r.path.contains("/namespaces/web/") || r.user.is_none()),
        "no read was authenticated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_runs_run_as_the_dry_run_service_account() {
    let fx = slipway_tests::gitops::start().await;
    let app = TestApp::start_with(Options {
        env: fx.env.clone(),
        config_yaml: Some(fx.config_yaml.clone() + &clusters_yaml(DEFAULT_AUDIENCE)),
        ..Options::default()
    })
    .await;
    add_accounts(&app.kube);
    let ack = app
        .ack(
            "U0OPERATOR",
            "/kubectl scale deployment web --replicas=3 -n web",
        )
        .await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    let dry = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .any(|r| r.body.to_string().contains("dry run"))
    };
    assert!(
        app.slack.wait_until(LONG, dry).await,
        "{:?}",
        app.slack.responses()
    );
    let shown: String = app
        .slack
        .responses()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert!(!shown.contains("no server-side dry run"), "{shown}");
    assert!(
        shown.contains("as ServiceAccount `slipway/slipway-dry-run`"),
        "the preview names the account: {shown}"
    );
    let writes: Vec<_> = app
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" || r.method == "PUT")
        .collect();
    assert!(!writes.is_empty(), "the dry run reached the API");
    for w in &writes {
        assert_eq!(w.user.as_deref(), Some(DRY_RUN_SA), "{w:?}");
        assert!(w.path.contains("dryRun=All"), "{w:?}");
    }
    assert_eq!(
        app.kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        2,
        "only a dry run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_read_or_dry_run_token_cannot_write_for_real() {
    let kube = KubeEmulator::start().await;
    kube.add_token(KUBE_TOKEN);
    kube.add_namespace("web");
    kube.add_deployment("web", "web", 2, "registry.example/web:1.4.2");
    kube.add_secret("web", "db", &[("password", "hunter2")]);
    add_accounts(&kube);
    let (code, read) = mint(&kube, "slipway-read", DEFAULT_AUDIENCE, 600).await;
    assert_eq!(code, 201, "{read}");
    assert_eq!(read["kind"], "TokenRequest");
    assert!(read["status"]["expirationTimestamp"].is_string());
    let read = read["status"]["token"].as_str().unwrap().to_string();
    let (_, dry) = mint(&kube, "slipway-dry-run", DEFAULT_AUDIENCE, 600).await;
    let dry = dry["status"]["token"].as_str().unwrap().to_string();
    let deploy = "/apis/apps/v1/namespaces/web/deployments/web";
    let patch = json!({"spec": {"replicas": 9}});

    assert_eq!(call(&kube, "GET", deploy, &read, &Value::Null).await.0, 200);
    let (code, body) = call(&kube, "PATCH", deploy, &read, &patch).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );
    let (code, _) = call(
        &kube,
        "GET",
        "/api/v1/namespaces/web/secrets/db",
        &read,
        &Value::Null,
    )
    .await;
    assert_eq!(code, 403, "the read account reads no secrets");
    let token_path = "/api/v1/namespaces/slipway/serviceaccounts/slipway-dry-run/token";
    let (code, _) = call(&kube, "POST", token_path, &read, &json!({})).await;
    assert_eq!(code, 403, "a ServiceAccount can't mint another's token");

    let (code, body) = call(&kube, "PATCH", deploy, &dry, &patch).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(DRY_RUN_POLICY),
        "the admission policy refuses a real write: {body}"
    );
    let (code, body) = call(
        &kube,
        "PATCH",
        &format!("{deploy}?dryRun=All"),
        &dry,
        &patch,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_short_lived_and_wrong_audience_tokens_are_refused() {
    let kube = KubeEmulator::start().await;
    kube.add_token(KUBE_TOKEN);
    kube.add_namespace("web");
    add_accounts(&kube);
    let pods = "/api/v1/namespaces/web/pods";
    let (code, body) = mint(&kube, "slipway-read", DEFAULT_AUDIENCE, 599).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    let (code, body) = mint(&kube, "nobody", DEFAULT_AUDIENCE, 600).await;
    assert_eq!(code, 404, "{body}");

    let (_, other) = mint(&kube, "slipway-read", "https://elsewhere.example", 600).await;
    let other = other["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(call(&kube, "GET", pods, &other, &Value::Null).await.0, 401);

    let (_, good) = mint(&kube, "slipway-read", DEFAULT_AUDIENCE, 600).await;
    let good = good["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(call(&kube, "GET", pods, &good, &Value::Null).await.0, 200);
    kube.expire_issued_tokens();
    let (code, body) = call(&kube, "GET", pods, &good, &Value::Null).await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
}

/// The manifests in `deploy/kubernetes/target-cluster/` (rendered by the real `kubectl
/// kustomize`, offline) and `deploy/iam/` grant exactly what the emulator plays and the
/// configuration names.
#[test]
fn the_shipped_manifests_grant_what_the_emulator_plays() {
    let root = slipway_tests::repo_root();
    let (_, docs) = crate::kube_manifests::render(crate::kube_manifests::TARGET);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} is shipped"))
    };
    for sa in ["slipway-bridge", "slipway-read", "slipway-dry-run"] {
        assert_eq!(
            find("ServiceAccount", sa)["metadata"]["namespace"],
            "slipway"
        );
    }
    let vap = find("ValidatingAdmissionPolicy", DRY_RUN_POLICY);
    assert_eq!(vap["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(
        vap["spec"]["validations"][0]["expression"],
        "request.dryRun == true"
    );
    assert_eq!(
        vap["spec"]["matchConditions"][0]["expression"],
        format!("request.userInfo.username == '{DRY_RUN_SA}'")
    );
    assert_eq!(vap["spec"]["failurePolicy"], "Fail");
    let binding = find("ValidatingAdmissionPolicyBinding", DRY_RUN_POLICY);
    assert_eq!(binding["spec"]["policyName"], DRY_RUN_POLICY);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    // The bridge's identity mints the two tokens and does nothing else.
    let mint = find("Role", "slipway-bridge-mints-tokens");
    assert_eq!(
        mint["rules"],
        json!([{"apiGroups": [""], "resources": ["serviceaccounts/token"],
                "resourceNames": ["slipway-read", "slipway-dry-run"], "verbs": ["create"]}])
    );
    for (role, writes) in [("slipway-read", false), ("slipway-dry-run", true)] {
        let text = find("ClusterRole", role)["rules"].to_string();
        for never in [
            "secrets",
            "\"*\"",
            "pods/exec",
            "pods/portforward",
            "proxy",
            "escalate",
            "bind",
            "impersonate",
            "token",
        ] {
            assert!(!text.contains(never), "{role} grants {never}: {text}");
        }
        assert_eq!(text.contains("patch"), writes, "{role}: {text}");
    }
    // The read role's trust lets the bridge assume it only with the tags it sends.
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/iam/bridge-read-role-trust-policy.json"))
            .unwrap(),
    )
    .unwrap();
    let stmt = &trust["Statement"][0];
    assert_eq!(stmt["Action"], json!(["sts:AssumeRole", "sts:TagSession"]));
    assert_eq!(
        stmt["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
        json!([TAG_REQUESTER, TAG_SLACK_USER, TAG_DECISION])
    );
    // The operations guide configures the same names.
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    for want in [
        "read_service_account: {namespace: slipway, name: slipway-read}",
        "dry_run_service_account: {namespace: slipway, name: slipway-dry-run}",
    ] {
        assert!(ops.contains(want), "docs/operations.md shows `{want}`");
    }
}
