//! Vault / OpenBao's Kubernetes auth, end to end: the bridge logs in with its pod's
//! ServiceAccount token, and OpenBao checks it with the API server's TokenReview (the
//! Kubernetes emulator), bound to that one ServiceAccount.

use slipway_emulators::kube::{AccountRole, KubeEmulator};
use slipway_tests::harness::http_with;
use slipway_tests::openbao::OpenBao;

/// The reviewer's own token (OpenBao's `token_reviewer_jwt`): the API server's admin.
const REVIEWER: &str = "token-reviewer-jwt-for-openbao";
const VALUE: &str = "signing-secret-read-with-kubernetes-auth";

/// A TokenRequest token for `ns/name`, as the kubelet projects it into the pod.
async fn pod_token(kube: &KubeEmulator, ns: &str, name: &str) -> String {
    let (status, body) = http_with(
        "POST",
        &format!(
            "{}/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            kube.url()
        ),
        &[("authorization", &format!("Bearer {REVIEWER}"))],
        Some(
            serde_json::json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                               "spec": {"expirationSeconds": 3600}})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["status"]["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_logs_in_with_its_pods_service_account_checked_by_token_review() {
    let dir = tempfile::tempdir().unwrap();
    let kube = KubeEmulator::start().await;
    kube.add_token(REVIEWER);
    kube.add_service_account("slipway", "slipway-bridge", AccountRole::ReadOnly);
    kube.add_service_account("slipway", "someone-else", AccountRole::ReadOnly);
    let bao = OpenBao::start(dir.path()).await;
    bao.put("slipway", &[("signing_secret", VALUE)]).await;
    bao.api(
        "POST",
        "sys/auth/kubernetes",
        serde_json::json!({"type": "kubernetes"}),
    )
    .await;
    bao.api(
        "POST",
        "auth/kubernetes/config",
        serde_json::json!({
            "kubernetes_host": kube.https_url(),
            "kubernetes_ca_cert": kube.ca_pem(),
            "token_reviewer_jwt": REVIEWER,
            "disable_local_ca_jwt": true,
        }),
    )
    .await;
    bao.api(
        "POST",
        "auth/kubernetes/role/slipway-bridge",
        serde_json::json!({
            "bound_service_account_names": ["slipway-bridge"],
            "bound_service_account_namespaces": ["slipway"],
            "token_policies": ["slipway"],
        }),
    )
    .await;
    let jwt_file = dir.path().join("token");
    std::fs::write(
        &jwt_file,
        pod_token(&kube, "slipway", "slipway-bridge").await,
    )
    .unwrap();
    let yaml = format!(
        "slack:\n  signing_secret: {{ vault: \"secret/data/slipway#signing_secret\" }}\n\
         secrets:\n  vault:\n    address: {}\n    auth:\n      method: kubernetes\n      \
         role: slipway-bridge\n      jwt_file: {}\n",
        bao.url(),
        jwt_file.display()
    );
    let config = crate::secrets::load(&yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&*config.slack.signing_secret.expose(), VALUE);
    // Another ServiceAccount's token: TokenReview says who it is, and the role refuses it.
    std::fs::write(&jwt_file, pod_token(&kube, "slipway", "someone-else").await).unwrap();
    let e = crate::secrets::load(&yaml).unwrap_err();
    assert!(
        e.contains("vault kubernetes login") && e.contains("does not start"),
        "{e}"
    );
    // A token the API server never issued: TokenReview doesn't authenticate it.
    std::fs::write(&jwt_file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").unwrap();
    assert!(crate::secrets::load(&yaml).is_err());
}
