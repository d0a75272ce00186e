//! The Kubernetes API emulator with plain HTTP: discovery shapes, Status errors for malformed
//! requests, PATCH semantics and dry runs.

// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use serde_json::{Value, json};
use slipway_emulators::kube::KubeEmulator;

const TOKEN: &str = "t0ken";

async fn call(
    kube: &KubeEmulator,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", kube.url()))
        .bearer_auth(TOKEN)
        .body(body.to_string());
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn discovery_documents() {
    let kube = KubeEmulator::start().await;
    kube.add_token(TOKEN);
    let (_, core_v1) = call(&kube, "GET", "/api/v1", None, "").await;
    assert_eq!(core_v1["kind"], "APIResourceList");
    let pods = core_v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    let ns = core_v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "namespaces")
        .unwrap();
    assert_eq!(ns["namespaced"], false);
    let (_, apps) = call(&kube, "GET", "/apis/apps/v1", None, "").await;
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments" && r["shortNames"] == json!(["deploy"]))
    );
    let (_, groups) = call(&kube, "GET", "/apis", None, "").await;
    assert_eq!(groups["groups"][0]["name"], "apps");
    let (code, _) = call(&kube, "GET", "/openapi/v2", None, "").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn malformed_requests_get_status_answers() {
    let kube = KubeEmulator::start().await;
    kube.add_token(TOKEN);
    kube.add_namespace("web");
    kube.add_deployment("web", "api", 2, "img:1");
    let path = "/apis/apps/v1/namespaces/web/deployments/api";
    let merge = Some("application/merge-patch+json");

    let (code, s) = call(&kube, "PATCH", path, merge, "{not json").await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = call(&kube, "PATCH", path, merge, r#"{"metadata":"oops"}"#).await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
    let (code, s) = call(&kube, "PATCH", path, merge, "[1,2]").await;
    assert_eq!(code, 400, "{s}");
    let (code, s) = call(&kube, "PATCH", path, Some("text/plain"), "{}").await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, s) = call(
        &kube,
        "PATCH",
        path,
        Some("application/apply-patch+yaml"),
        "a: [unclosed",
    )
    .await;
    assert_eq!(code, 400, "{s}");
    let (code, s) = call(
        &kube,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        r#"[{"op":"replace","path":"/nope/x","value":1}]"#,
    )
    .await;
    assert_eq!(code, 422, "{s}");
    let (code, _) = call(
        &kube,
        "PATCH",
        &format!("{path}/scale"),
        merge,
        r#"{"spec":{"replicas":"many"}}"#,
    )
    .await;
    assert_eq!(code, 422);
    let (code, s) = call(&kube, "PUT", path, None, "{}").await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    // A watch streams events (`kubectl rollout status`), and ends at its timeoutSeconds.
    let (code, _) = call(
        &kube,
        "GET",
        "/api/v1/namespaces/web/pods?watch=true&timeoutSeconds=1",
        None,
        "",
    )
    .await;
    assert_eq!(code, 200);
    let (code, s) = call(
        &kube,
        "GET",
        "/api/v1/namespaces/web/pods?labelSelector=app%20in%20oops",
        None,
        "",
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = call(&kube, "GET", "/api/v1/namespaces/web/widgets", None, "").await;
    assert_eq!((code, s["reason"].as_str()), (404, Some("NotFound")));
    let (code, s) = call(
        &kube,
        "GET",
        "/apis/apps/v1/namespaces/web/deployments/nope",
        None,
        "",
    )
    .await;
    assert_eq!(s["message"], r#"deployments.apps "nope" not found"#);
    assert_eq!(code, 404);
    // Nothing above changed the stored object.
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        2
    );
    assert!(kube.deployment("web", "api").unwrap()["metadata"].is_object());
}

#[tokio::test]
async fn patches_and_dry_runs() {
    let kube = KubeEmulator::start().await;
    kube.add_token(TOKEN);
    kube.add_deployment("web", "api", 2, "img:1");
    let path = "/apis/apps/v1/namespaces/web/deployments/api";
    let (code, d) = call(
        &kube,
        "PATCH",
        &format!("{path}?dryRun=All"),
        Some("application/merge-patch+json"),
        r#"{"spec":{"replicas":9}}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(d["spec"]["replicas"], 9);
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        2
    );

    let (_, d) = call(
        &kube,
        "PATCH",
        path,
        Some("application/strategic-merge-patch+json"),
        r#"{"spec":{"replicas":4}}"#,
    )
    .await;
    assert_eq!(d["status"]["readyReplicas"], 4);
    assert_eq!(d["metadata"]["generation"], 2);
    let (_, d) = call(
        &kube,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        r#"[{"op":"replace","path":"/spec/replicas","value":1}]"#,
    )
    .await;
    assert_eq!(d["spec"]["replicas"], 1);
    let (_, s) = call(&kube, "GET", &format!("{path}/scale"), None, "").await;
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(s["status"]["selector"], "app=api");
    let (_, s) = call(
        &kube,
        "PUT",
        &format!("{path}/scale"),
        Some("application/json"),
        r#"{"spec":{"replicas":6}}"#,
    )
    .await;
    assert_eq!(s["spec"]["replicas"], 6);
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        6
    );

    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: new\n  namespace: web\nspec:\n  replicas: 2\n";
    let (code, _) = call(
        &kube,
        "PATCH",
        "/apis/apps/v1/namespaces/web/deployments/new?fieldManager=t&dryRun=All",
        Some("application/apply-patch+yaml"),
        yaml,
    )
    .await;
    assert_eq!(code, 201);
    assert!(kube.deployment("web", "new").is_none());
    let (code, _) = call(
        &kube,
        "PATCH",
        "/apis/apps/v1/namespaces/web/deployments/new?fieldManager=t",
        Some("application/apply-patch+yaml"),
        yaml,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        kube.deployment("web", "new").unwrap()["status"]["availableReplicas"],
        2
    );
    let (code, s) = call(
        &kube,
        "PATCH",
        "/apis/apps/v1/namespaces/web/deployments/other?fieldManager=t",
        Some("application/apply-patch+yaml"),
        yaml,
    )
    .await;
    assert_eq!(code, 400, "{s}");
}
