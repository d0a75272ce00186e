//! The real `kubectl` binary against the Kubernetes API emulator.

// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use slipway_emulators::kube::KubeEmulator;

const TOKEN: &str = "emulator-token-123";

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
    cache: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn find_kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "kubectl is required for these tests but was not found on PATH \
                 (install kubectl 1.32, e.g. the machine image's /usr/bin/kubectl)"
            )
        })
}

impl Kubectl {
    fn new(kube: &KubeEmulator, contexts: &[&str]) -> Kubectl {
        let dir = tempfile::tempdir().expect("test setup");
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, contexts, TOKEN);
        Kubectl {
            binary: find_kubectl(),
            kubeconfig,
            home: tempfile::tempdir().expect("test setup"),
            cache: tempfile::tempdir().expect("test setup"),
            _dir: dir,
        }
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs kubectl off the async runtime's threads (the emulator is served by the runtime).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("running kubectl"))
            .await
            .expect("test setup");
        let out = Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ kubectl {}\n--- stdout\n{}--- stderr\n{}---",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out
    }
}

async fn cluster() -> KubeEmulator {
    let kube = KubeEmulator::start().await;
    kube.add_namespace("web");
    kube.add_pod("web", "api-1", "Running");
    kube.add_pod("web", "api-2", "CrashLoopBackOff");
    kube.add_pod("web", "worker-1", "Pending");
    kube.add_pod("kube-system", "coredns-1", "Running");
    kube.add_deployment("web", "api", 3, "registry.example.com/api:2.1.0");
    kube.add_deployment("web", "worker", 1, "registry.example.com/worker:2.1.0");
    kube.add_service("web", "api");
    kube.add_secret(
        "web",
        "db-credentials",
        &[("username", "admin"), ("password", "hunter2")],
    );
    kube.add_configmap("web", "api-config", &[("LOG_LEVEL", "debug")]);
    kube
}

/// The first whitespace-separated column of each line after the header.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_in_namespace_prints_server_side_table() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "pods", "-n", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(names(&out.stdout), ["api-1", "api-2", "worker-1"]);
    let api1 = out.stdout.lines().find(|l| l.starts_with("api-1")).unwrap();
    let cells: Vec<&str> = api1.split_whitespace().collect();
    assert_eq!(&cells[..4], ["api-1", "1/1", "Running", "0"]);
    assert!(out.stdout.contains("CrashLoopBackOff"));
    assert!(out.stdout.contains("ContainerCreating"));
    // Every request carried the bearer token, through the kubeconfig's context.
    let reqs = kube.requests();
    assert!(reqs.iter().all(|r| r.had_bearer), "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.context.as_deref() == Some("prod")));
    let list = reqs
        .iter()
        .find(|r| r.path.starts_with("/api/v1/namespaces/web/pods"))
        .unwrap();
    assert!(
        list.accept.as_deref().unwrap_or("").contains("as=Table"),
        "{list:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_all_namespaces() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "pods", "-A"]).await;
    assert!(out.ok, "{}", out.stderr);
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let rows: Vec<(String, String)> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut c = l.split_whitespace();
            (c.next().unwrap().to_string(), c.next().unwrap().to_string())
        })
        .collect();
    assert!(
        rows.contains(&("kube-system".into(), "coredns-1".into())),
        "{rows:?}"
    );
    assert!(rows.contains(&("web".into(), "api-1".into())));
    assert_eq!(rows.len(), 4);
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v1/pods"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_deployments_and_services() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "deploy", "-n", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let api: Vec<&str> = out
        .stdout
        .lines()
        .find(|l| l.starts_with("api "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&api[..4], ["api", "3/3", "3", "3"]);

    let wide = k
        .run(&["get", "deployments.apps", "-n", "web", "-o", "wide"])
        .await;
    assert!(wide.ok, "{}", wide.stderr);
    assert!(wide.stdout.contains("registry.example.com/api:2.1.0"));
    assert!(wide.stdout.contains("app=api"));

    let svc = k.run(&["get", "svc", "-n", "web"]).await;
    assert!(svc.ok, "{}", svc.stderr);
    assert!(svc.stdout.starts_with("NAME"));
    assert!(svc.stdout.contains("ClusterIP") && svc.stdout.contains("80/TCP"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pod_as_json() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k
        .run(&["get", "pod", "api-1", "-n", "web", "-o", "json"])
        .await;
    assert!(out.ok, "{}", out.stderr);
    let pod: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "api-1");
    assert_eq!(pod["metadata"]["namespace"], "web");
    assert_eq!(pod["metadata"]["labels"]["app"], "api");
    assert_eq!(pod["status"]["phase"], "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_secrets_shows_names_not_values() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "secrets", "-n", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["db-credentials", "Opaque", "2"]);
    assert!(!out.stdout.contains("hunter2") && !out.stdout.contains("aHVudGVyMg"));
    // The values are there, base64-encoded, for -o json (what redaction must handle).
    let json = k
        .run(&["get", "secret", "db-credentials", "-n", "web", "-o", "json"])
        .await;
    assert!(json.ok, "{}", json.stderr);
    let secret: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_a_pod() {
    let kube = cluster().await;
    kube.set_pod_log(
        "web",
        "api-1",
        "starting api\nconnecting with password=hunter2\nready\n",
    );
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["logs", "api-1", "-n", "web"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "starting api\nconnecting with password=hunter2\nready\n"
    );
    let tail = k.run(&["logs", "api-1", "-n", "web", "--tail", "1"]).await;
    assert!(tail.ok, "{}", tail.stderr);
    assert_eq!(tail.stdout, "ready\n");
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v1/namespaces/web/pods/api-1/log"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_namespace_and_missing_pod() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "pods", "-n", "missing"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr
            .contains("No resources found in missing namespace."),
        "{}",
        out.stderr
    );

    let out = k.run(&["get", "pod", "nope", "-n", "web"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains(r#"Error from server (NotFound): pods "nope" not found"#),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selectors_filter() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["get", "pods", "-n", "web", "-l", "app=api"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(names(&out.stdout), ["api-1", "api-2"]);
    let out = k.run(&["get", "pods", "-n", "web", "-l", "app!=api"]).await;
    assert_eq!(names(&out.stdout), ["worker-1"]);
    let out = k
        .run(&["get", "pods", "-n", "web", "-l", "app in (worker,nothing)"])
        .await;
    assert_eq!(names(&out.stdout), ["worker-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_resources_and_contexts() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod", "staging"]);
    let ns = k.run(&["get", "ns"]).await;
    assert!(ns.ok, "{}", ns.stderr);
    assert_eq!(names(&ns.stdout), ["default", "kube-system", "web"]);
    assert!(ns.stdout.contains("Active"));
    let nodes = k.run(&["--context", "staging", "get", "nodes"]).await;
    assert!(nodes.ok, "{}", nodes.stderr);
    assert_eq!(names(&nodes.stdout), ["node-1", "node-2"]);
    assert!(nodes.stdout.contains("Ready") && nodes.stdout.contains("v1.32.4"));
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.context.as_deref() == Some("staging"))
    );
    let cm = k.run(&["get", "cm", "-n", "web"]).await;
    assert!(cm.ok, "{}", cm.stderr);
    assert_eq!(names(&cm.stdout), ["api-config"]);
    let ev = k.run(&["get", "events", "-n", "web"]).await;
    assert!(ev.ok, "{}", ev.stderr);
    assert!(ev.stderr.contains("No resources found in web namespace."));
    let describe = k.run(&["describe", "pod", "api-1", "-n", "web"]).await;
    assert!(describe.ok, "{}", describe.stderr);
    assert!(describe.stdout.contains("Name:") && describe.stdout.contains("api-1"));
    let describe = k.run(&["describe", "deployment", "api", "-n", "web"]).await;
    assert!(describe.ok, "{}", describe.stderr);
    assert!(describe.stdout.contains("registry.example.com/api:2.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_unauthorized() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let text = std::fs::read_to_string(k.kubeconfig()).unwrap();
    assert!(text.contains(TOKEN));
    std::fs::write(k.kubeconfig(), text.replace(TOKEN, "wrong-token")).unwrap();
    let out = k.run(&["get", "pods"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("You must be logged in to the server"),
        "{}",
        out.stderr
    );
    assert!(kube.requests().iter().all(|r| r.had_bearer));

    // Plain HTTP without a token gets the apiserver's 401 Status.
    let resp = reqwest::get(format!("{}/api/v1/namespaces/web/pods", kube.url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    // /version is public, as on a real cluster.
    let version: serde_json::Value = reqwest::get(format!("{}/version", kube.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["gitVersion"], "v1.32.4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_namespace_times_out_with_request_timeout() {
    let kube = cluster().await;
    kube.set_slow_namespace("web", Duration::from_secs(5));
    let k = Kubectl::new(&kube, &["prod"]);
    // Discovery first (not slow), then the slow list.
    let fast = k.run(&["get", "pods", "-n", "default"]).await;
    assert!(fast.ok, "{}", fast.stderr);
    let started = std::time::Instant::now();
    let out = k
        .run(&["get", "pods", "-n", "web", "--request-timeout", "1s"])
        .await;
    assert!(!out.ok);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        out.stderr.to_lowercase().contains("timeout") || out.stderr.contains("deadline"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_patch_deployments() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k
        .run(&[
            "scale",
            "deployment/api",
            "-n",
            "web",
            "--replicas",
            "5",
            "--dry-run=server",
        ])
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        3
    );
    let out = k
        .run(&["scale", "deployment/api", "-n", "web", "--replicas", "5"])
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("deployment.apps/api scaled"),
        "{}",
        out.stdout
    );
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        5
    );
    let get = k.run(&["get", "deploy", "api", "-n", "web"]).await;
    assert!(get.stdout.contains("5/5"), "{}", get.stdout);

    let out = k
        .run(&[
            "patch",
            "deployment",
            "worker",
            "-n",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ])
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        kube.deployment("web", "worker").unwrap()["spec"]["replicas"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let manifest = k.home.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: web\nspec:\n  replicas: 4\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    spec:\n      containers:\n      - name: api\n        image: registry.example.com/api:2.2.0\n",
    )
    .unwrap();
    let file = manifest.to_str().unwrap();
    // No OpenAPI documents are served, so kubectl's schema validation must be off.
    let dry = k
        .run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "--dry-run=server",
            "-f",
            file,
        ])
        .await;
    assert!(dry.ok, "{}", dry.stderr);
    assert_eq!(
        kube.deployment("web", "api").unwrap()["spec"]["replicas"],
        3
    );
    let out = k
        .run(&["apply", "--server-side", "--validate=false", "-f", file])
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("deployment.apps/api serverside-applied"),
        "{}",
        out.stdout
    );
    let d = kube.deployment("web", "api").unwrap();
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/api:2.2.0"
    );
    let apply = kube
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(apply.path.contains("fieldManager=kubectl"), "{apply:?}");

    // A new object is created by server-side apply.
    let new = k.home.path().join("cm.yaml");
    std::fs::write(&new, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: web\ndata:\n  a: b\n").unwrap();
    let out = k
        .run(&[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            new.to_str().unwrap(),
        ])
        .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        kube.object("configmaps", "web", "extra").unwrap()["data"]["a"],
        "b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_from_a_file_with_a_server_dry_run_keeps_the_object() {
    let kube = cluster().await;
    kube.add_configmap("web", "app-config", &[("a", "b")]);
    let k = Kubectl::new(&kube, &["prod"]);
    let manifest = k.home.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: web\n",
    )
    .unwrap();
    let file = manifest.to_str().unwrap();
    let dry = k.run(&["delete", "--dry-run=server", "-f", file]).await;
    assert!(dry.ok, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("deleted (server dry run)"),
        "{}",
        dry.stdout
    );
    assert!(kube.object("configmaps", "web", "app-config").is_some());
    let real = k.run(&["delete", "-f", file]).await;
    assert!(real.ok, "{}", real.stderr);
    assert!(kube.object("configmaps", "web", "app-config").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_custom_resources_with_their_scope() {
    let kube = cluster().await;
    let k = Kubectl::new(&kube, &["prod"]);
    let out = k.run(&["api-resources", "--no-headers"]).await;
    assert!(out.ok, "{}", out.stderr);
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {}", out.stdout))
            .to_string()
    };
    assert!(line("widgets").contains("example.com/v1") && line("widgets").contains("true"));
    assert!(line("clusterwidgets").contains("false"));
    assert!(line("clusterrolebindings").contains("rbac.authorization.k8s.io/v1"));
}
