//! `deploy/kubernetes/`: the bridge's own base and its overlays, and the target-cluster
//! identities, rendered by the real `kubectl kustomize` and checked object by object against the
//! Kubernetes OpenAPI schemas by `kubernetes-validate` (PyPI; it ships the schemas, so this
//! runs offline), then read for the properties a later edit must not drop: a locked-down pod,
//! the probes on the bridge's real endpoints, a configuration the bridge's own loader accepts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use slipway_tests::repo_root;

/// The oldest Kubernetes the manifests support (the target-cluster's `ValidatingAdmissionPolicy`
/// is GA from 1.30), and a newer one the validator ships.
const VERSIONS: [&str; 2] = ["1.30.0", "1.34.0"];

const BASE: &str = "deploy/kubernetes/base";
const HTTP: &str = "deploy/kubernetes/overlays/http";
const SOCKET: &str = "deploy/kubernetes/overlays/socket-mode";
pub const TARGET: &str = "deploy/kubernetes/target-cluster";

/// `kubectl kustomize DIR` (offline: everything is local), as text and as objects.
pub fn render(dir: &str) -> (String, Vec<Value>) {
    let out = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(repo_root())
        .output()
        .expect("kubectl runs (it comes with the machine image; see scripts/install-deps)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert!(!docs.is_empty(), "{dir} renders nothing");
    (text, docs)
}

/// Every object of `yaml` against the schemas of Kubernetes `version`, strictly (an unknown
/// field fails). A kind the validator has no schema for only warns there; here it fails too,
/// and so does an object the validator didn't report as passed.
fn validate(yaml: &str, version: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = match Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", version])
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "kubernetes-validate can't run ({e}): install it with \
             `python3 -m pip install kubernetes-validate` (scripts/install-deps does)"
        ),
    };
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || report.contains("ERROR") || report.contains("WARN") {
        return Err(format!("against {version}:\n{report}"));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).map_err(|e| e.to_string())?;
    for d in &docs {
        let kind = d["kind"].as_str().unwrap_or_default().to_lowercase();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        if !report.contains(&format!("passed for resource {kind}/{name} ")) {
            return Err(format!(
                "{kind}/{name} was not reported as passed against {version}:\n{report}"
            ));
        }
    }
    Ok(())
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

/// The ConfigMap generated under `prefix` (its name carries a content hash).
fn generated<'a>(docs: &'a [Value], prefix: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{prefix}-")))
        })
        .unwrap_or_else(|| panic!("ConfigMap {prefix}-<hash> is rendered"))
}

#[test]
fn every_kustomization_renders_and_validates_against_the_kubernetes_schemas() {
    for dir in [BASE, HTTP, SOCKET, TARGET] {
        let (yaml, _) = render(dir);
        for version in VERSIONS {
            if let Err(e) = validate(&yaml, version) {
                panic!("{dir} is invalid {e}");
            }
        }
    }
}

/// The check above can fail: a wrong type, an unknown field and an unknown kind are each caught.
#[test]
fn the_schema_check_refuses_an_invalid_object() {
    let (yaml, _) = render(HTTP);
    assert!(validate(&yaml, VERSIONS[0]).is_ok());
    for (what, broken) in [
        (
            "a wrong type",
            yaml.replacen("replicas: 1", "replicas: one", 1),
        ),
        (
            "an unknown field",
            yaml.replacen(
                "readOnlyRootFilesystem: true",
                "readOnlyRootFilesystem: true\n          readOnlyRootFileSystem: true",
                1,
            ),
        ),
        (
            "an unknown kind",
            format!("{yaml}---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"),
        ),
    ] {
        assert_ne!(broken, yaml, "{what}: the edit applies");
        assert!(
            validate(&broken, VERSIONS[0]).is_err(),
            "{what} passed the schema check"
        );
    }
}

/// Every container of the bridge's pod runs as a numeric non-root user, on a read-only root
/// filesystem, without privilege escalation or capabilities, under RuntimeDefault seccomp, with
/// requests and limits; the probes are the bridge's `/healthz` and `/readyz` on the port it
/// listens on; a disruption budget and the metadata-blocking NetworkPolicy select the pods.
#[test]
fn the_bridge_pod_is_locked_down_in_every_overlay() {
    let (_, target) = render(TARGET);
    for dir in [BASE, HTTP, SOCKET] {
        let (_, docs) = render(dir);
        let set = find(&docs, "StatefulSet", "slipway");
        let pod = &set["spec"]["template"]["spec"];
        let labels = &set["spec"]["template"]["metadata"]["labels"];
        assert_eq!(set["spec"]["selector"]["matchLabels"], *labels, "{dir}");
        let sc = &pod["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{dir}");
        assert!(sc["runAsUser"].as_u64().is_some_and(|u| u > 0), "{dir}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{dir}");
        assert_eq!(pod["automountServiceAccountToken"], false, "{dir}");
        assert_eq!(pod["serviceAccountName"], "slipway-bridge", "{dir}");
        let containers: Vec<&Value> = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_array().unwrap())
            .collect();
        for c in &containers {
            let name = &c["name"];
            let csc = &c["securityContext"];
            assert_eq!(csc["readOnlyRootFilesystem"], true, "{dir} {name}");
            assert_eq!(csc["allowPrivilegeEscalation"], false, "{dir} {name}");
            assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert_ne!(csc["runAsUser"], 0, "{dir} {name}");
            for what in ["requests", "limits"] {
                for r in ["cpu", "memory"] {
                    assert!(
                        c["resources"][what][r].is_string(),
                        "{dir} {name}: no {what}.{r}"
                    );
                }
            }
        }
        let bridge = find_in(&pod["containers"], "slipway");
        let port = bridge["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "http")
            .expect("a port named http")["containerPort"]
            .as_u64()
            .unwrap();
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            assert_eq!(bridge[probe]["httpGet"]["path"], path, "{dir} {probe}");
            assert_eq!(bridge[probe]["httpGet"]["port"], "http", "{dir} {probe}");
        }
        // The bridge listens where the probes look, and keeps its state on the replica's volume.
        let config = generated(&docs, "slipway-config")["data"]["slipway.yaml"]
            .as_str()
            .unwrap();
        let config: Value = serde_saphyr::from_str(config).unwrap();
        assert!(
            config["listen"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{port}")),
            "{dir}: listen {} vs port {port}",
            config["listen"]
        );
        let state = mount(bridge, "state");
        assert_eq!(config["state_dir"], *state, "{dir}");
        let claims = set["spec"]["volumeClaimTemplates"].as_array().unwrap();
        assert!(
            claims.iter().any(|c| c["metadata"]["name"] == "state"),
            "{dir}: the state volume survives the pod"
        );
        for writable in ["/tmp", state.as_str().unwrap()] {
            assert!(
                bridge["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["mountPath"] == writable),
                "{dir}: {writable} is writable"
            );
        }
        // Each replica its own audit chain, named after its pod.
        let writer = env_of(bridge, "SLIPWAY_AUDIT_WRITER").unwrap();
        assert_eq!(
            writer["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        // One replica unless the state is shared (Redis).
        if config["state"]["redis_url"].is_null() && config["state"]["redis_sentinels"].is_null() {
            assert_eq!(set["spec"]["replicas"], 1, "{dir}: replicas need Redis");
        }

        let pdb = find(&docs, "PodDisruptionBudget", "slipway");
        assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels, "{dir}");
        assert!(pdb["spec"]["maxUnavailable"].is_number(), "{dir}");
        let net = find(&docs, "NetworkPolicy", "slipway");
        assert_eq!(net["spec"]["podSelector"]["matchLabels"], *labels, "{dir}");
        assert!(
            net["spec"]["egress"]
                .to_string()
                .contains("169.254.169.254/32"),
            "{dir}: the metadata address is closed"
        );
        let svc = find(&docs, "Service", "slipway");
        assert_eq!(svc["spec"]["selector"], *labels, "{dir}");
        assert_eq!(
            find(&docs, "Service", "slipway-pods")["spec"]["clusterIP"],
            "None"
        );
        assert_eq!(set["spec"]["serviceName"], "slipway-pods");
        // The same ServiceAccount as the target-cluster identities, so both can be applied.
        assert_eq!(
            find(&docs, "ServiceAccount", "slipway-bridge"),
            find(&target, "ServiceAccount", "slipway-bridge")
        );
    }
}

fn find_in<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} is there"))
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// Where `container` mounts `volume`.
fn mount<'a>(container: &'a Value, volume: &str) -> &'a Value {
    &find_in(&container["volumeMounts"], volume)["mountPath"]
}

/// A stand-in for each Secret key the pod reads, in the shape the bridge checks.
fn fake_secret(key: &str) -> String {
    match key {
        "github-token-key" | "change-signing-key" => "11".repeat(32),
        "slack-bot-token" => "xoxb-1-fake".into(),
        "slack-app-token" => "xapp-1-fake".into(),
        _ => "a-fake-secret-of-32-characters!!".into(),
    }
}

/// The configuration file each overlay ships loads through the bridge's own loader, with the
/// environment the pod gives it (every `{ env: … }` reference must be one of the container's
/// variables), in the Slack mode the overlay names, with the sandbox replaced as documented;
/// and the placeholder policy passes `slipway policy check`.
#[test]
fn each_overlay_configures_a_bridge_that_loads() {
    for (dir, socket_mode) in [(HTTP, false), (SOCKET, true)] {
        let (_, docs) = render(dir);
        let set = find(&docs, "StatefulSet", "slipway");
        let bridge = find_in(&set["spec"]["template"]["spec"]["containers"], "slipway");
        let tmp = tempfile::tempdir().unwrap();
        let config_path = tmp.path().join("slipway.yaml");
        let config_text = generated(&docs, "slipway-config")["data"]["slipway.yaml"]
            .as_str()
            .unwrap();
        std::fs::write(&config_path, config_text).unwrap();
        let policy_path = tmp.path().join("policy.yaml");
        std::fs::write(
            &policy_path,
            generated(&docs, "slipway-policy")["data"]["slipway.yaml"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let out = crate::slipway(&["policy", "check", "--policy", path_str(&policy_path)]);
        assert!(out.status.success(), "{dir}: {}", crate::stderr(&out));

        let mut env = BTreeMap::new();
        for e in bridge["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
                fake_secret(key)
            } else {
                format!("{}-0", set["metadata"]["name"].as_str().unwrap())
            };
            env.insert(name, value);
        }
        assert_eq!(
            env.get("SLIPWAY_CONFIG").map(String::as_str),
            Some(format!("{}/slipway.yaml", mount(bridge, "config").as_str().unwrap()).as_str()),
            "{dir}: SLIPWAY_CONFIG names the mounted file"
        );
        let config = slipway_bridge::config::Config::load_with(Some(&config_path), &|k| {
            if k == "SLIPWAY_POLICY" {
                return Some(path_str(&policy_path).to_string());
            }
            env.get(k).cloned()
        })
        .unwrap_or_else(|e| panic!("{dir}: the shipped configuration doesn't load: {e}"));
        assert_eq!(config.slack.socket_mode, socket_mode, "{dir}");
        assert_eq!(
            config.slack.signing_secret.is_empty(),
            socket_mode,
            "{dir}: a signing secret exactly over HTTP"
        );
        assert!(
            config.execution.sandbox.is_none(),
            "{dir}: a RuntimeDefault pod can't run bubblewrap (docs/operations.md)"
        );
        assert_eq!(
            config.audit.signing_key_file.as_deref(),
            Some(Path::new(&format!(
                "{}/audit.key",
                mount(bridge, "audit-key").as_str().unwrap()
            ))),
            "{dir}: the audit key is the init container's 0600 copy"
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The Ingress of each overlay routes what that Slack mode needs from outside and no more: the
/// HTTP one every Slack request URL of deploy/slack-app-manifest.yaml plus GitHub's webhook,
/// the Socket Mode one GitHub's webhook only. Probes and metrics are never routed.
#[test]
fn each_overlay_routes_what_its_slack_manifest_names() {
    let manifest: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/slack-app-manifest.yaml")).unwrap(),
    )
    .unwrap();
    let mut urls: Vec<String> = manifest["features"]["slash_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["url"].as_str().unwrap().to_string())
        .collect();
    urls.push(
        manifest["settings"]["event_subscriptions"]["request_url"]
            .as_str()
            .unwrap()
            .into(),
    );
    urls.push(
        manifest["settings"]["interactivity"]["request_url"]
            .as_str()
            .unwrap()
            .into(),
    );
    let mut slack: Vec<String> = urls
        .iter()
        .map(|u| {
            u.trim_start_matches("https://slipway.example.com")
                .to_string()
        })
        .collect();
    slack.sort();
    slack.dedup();
    for (dir, expected) in [
        (
            HTTP,
            [slack.clone(), vec!["/github/webhook".into()]].concat(),
        ),
        (SOCKET, vec!["/github/webhook".to_string()]),
    ] {
        let (_, docs) = render(dir);
        let ingress = find(&docs, "Ingress", "slipway");
        let mut paths: Vec<String> = ingress["spec"]["rules"][0]["http"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["backend"]["service"]["name"], "slipway", "{dir}");
                p["path"].as_str().unwrap().to_string()
            })
            .collect();
        paths.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(paths, expected, "{dir}");
    }
}

/// The Dockerfile is never built here (no container engine), so this reads it: the image the
/// pod runs starts `slipway serve` (the binary `slipway-bridge` builds) as the pod's user, and
/// bakes in no `SLIPWAY_*` variable, which would silently win over the ConfigMap's file.
#[test]
fn the_dockerfile_runs_slipway_serve_as_the_pods_user() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p slipway-bridge")),
        "the release binary of slipway-bridge is built"
    );
    let bridge_manifest = std::fs::read_to_string(root.join("bridge/Cargo.toml")).unwrap();
    assert!(bridge_manifest.contains("[[bin]]\nname = \"slipway\"\n"));
    assert!(
        lines.contains(&r#"ENTRYPOINT ["slipway", "serve"]"#),
        "{text}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("ENV") && l.contains("SLIPWAY_")),
        "the image sets no SLIPWAY_ variable"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let (_, docs) = render(BASE);
    let pod = &find(&docs, "StatefulSet", "slipway")["spec"]["template"]["spec"];
    let sc = &pod["securityContext"];
    assert_eq!(
        user,
        format!("{}:{}", sc["runAsUser"], sc["runAsGroup"]),
        "the image's user is the pod's"
    );
    // The init container copies the audit key with `install`, which the runtime image has.
    let init = find_in(&pod["initContainers"], "audit-key");
    assert_eq!(init["command"][0], "install");
    let runtime = lines.iter().rev().find(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        runtime.starts_with("FROM debian:"),
        "{runtime} has coreutils"
    );
}
