//! The resource catalog (what discovery advertises) and builders for the objects the emulator
//! serves.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// One API resource, as discovery (`APIResourceList`) describes it.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) name: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    /// `""` for the core group.
    pub(crate) group: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NODE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub(crate) const RESOURCES: &[Resource] = &[
    Resource {
        name: "pods",
        singular: "pod",
        kind: "Pod",
        group: "",
        namespaced: true,
        short: &["po"],
    },
    Resource {
        name: "services",
        singular: "service",
        kind: "Service",
        group: "",
        namespaced: true,
        short: &["svc"],
    },
    Resource {
        name: "secrets",
        singular: "secret",
        kind: "Secret",
        group: "",
        namespaced: true,
        short: &[],
    },
    Resource {
        name: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        group: "",
        namespaced: true,
        short: &["cm"],
    },
    Resource {
        name: "events",
        singular: "event",
        kind: "Event",
        group: "",
        namespaced: true,
        short: &["ev"],
    },
    Resource {
        name: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        group: "",
        namespaced: false,
        short: &["ns"],
    },
    Resource {
        name: "nodes",
        singular: "node",
        kind: "Node",
        group: "",
        namespaced: false,
        short: &["no"],
    },
    Resource {
        name: "deployments",
        singular: "deployment",
        kind: "Deployment",
        group: "apps",
        namespaced: true,
        short: &["deploy"],
    },
    Resource {
        name: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        group: "apps",
        namespaced: true,
        short: &["rs"],
    },
    Resource {
        name: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        group: "rbac.authorization.k8s.io",
        namespaced: false,
        short: &[],
    },
    // Custom resources, as a CRD would add them: one namespaced, one cluster-scoped.
    Resource {
        name: "widgets",
        singular: "widget",
        kind: "Widget",
        group: "example.com",
        namespaced: true,
        short: &["wd"],
    },
    Resource {
        name: "clusterwidgets",
        singular: "clusterwidget",
        kind: "ClusterWidget",
        group: "example.com",
        namespaced: false,
        short: &[],
    },
];

/// The API groups served besides the core group (each at version `v1`).
pub(crate) fn groups() -> Vec<&'static str> {
    let mut g: Vec<&'static str> = RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    g.sort_unstable();
    g.dedup();
    g
}

impl Resource {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            "v1".into()
        } else {
            format!("{}/v1", self.group)
        }
    }

    pub(crate) fn find(group: &str, name: &str) -> Option<&'static Resource> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.name == name)
    }

    pub(crate) fn by_kind(kind: &str) -> Option<&'static Resource> {
        RESOURCES.iter().find(|r| r.kind == kind)
    }
}

/// `APIResourceList` for `group` (`""` = core `v1`, `"apps"` = `apps/v1`).
pub(crate) fn resource_list(group: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        let verbs = if r.name == "nodes" {
            NODE_VERBS
        } else {
            ALL_VERBS
        };
        let mut entry = json!({
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short.is_empty() {
            entry["shortNames"] = json!(r.short);
        }
        if r.name == "deployments" || r.name == "replicasets" {
            entry["categories"] = json!(["all"]);
        }
        if r.name == "pods" || r.name == "services" {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        match r.name {
            "pods" => {
                resources.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
                resources.push(json!({"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get", "patch", "update"]}));
            }
            "deployments" | "replicasets" => resources.push(json!({
                "name": format!("{}/scale", r.name),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            })),
            _ => {}
        }
    }
    let group_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources })
}

pub(crate) fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = format!("{g}/v1");
            json!({
                "name": g,
                "versions": [{ "groupVersion": gv, "version": "v1" }],
                "preferredVersion": { "groupVersion": gv, "version": "v1" },
            })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:02:27Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `{"app": <first dash-separated part of name>}`: `api-1` → `app=api`.
pub(crate) fn app_of(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

pub(crate) fn meta(name: &str, ns: Option<&str>, labels: &Map<String, Value>) -> Value {
    let mut m = json!({ "name": name, "labels": labels });
    if let Some(ns) = ns {
        m["namespace"] = Value::String(ns.to_string());
    }
    m
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect()
}

/// A pod. `phase` is a real phase (`Running`, `Pending`, `Succeeded`, `Failed`, `Unknown`) or a
/// container state reason (`CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
/// `ContainerCreating`, `OOMKilled`, `Error`, `Completed`), which sets the phase kubectl would see
/// alongside it.
pub(crate) fn pod(
    ns: &str,
    name: &str,
    phase: &str,
    pod_labels: &Map<String, Value>,
    n: u64,
) -> Value {
    let container = app_of(name);
    let image = format!("registry.example.com/{container}:1.0.0");
    let (real_phase, state, ready, restarts) = match phase {
        "Running" => (
            "Running",
            json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
            true,
            0,
        ),
        "Pending" | "ContainerCreating" => (
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}}),
            false,
            0,
        ),
        "Succeeded" | "Completed" => (
            "Succeeded",
            json!({"terminated": {"reason": "Completed", "exitCode": 0}}),
            false,
            0,
        ),
        "Failed" | "Error" => (
            "Failed",
            json!({"terminated": {"reason": "Error", "exitCode": 1}}),
            false,
            0,
        ),
        "OOMKilled" => (
            "Running",
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
            false,
            3,
        ),
        "CrashLoopBackOff" => (
            "Running",
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
            false,
            7,
        ),
        "Unknown" => (
            "Unknown",
            json!({"waiting": {"reason": "Unknown"}}),
            false,
            0,
        ),
        other => ("Pending", json!({"waiting": {"reason": other}}), false, 0),
    };
    let cond = if ready { "True" } else { "False" };
    let ip = format!("10.244.{}.{}", n / 250 % 250, n % 250 + 2);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, Some(ns), pod_labels),
        "spec": {
            "containers": [{
                "name": container,
                "image": image,
                "ports": [{ "containerPort": 8080, "name": "http", "protocol": "TCP" }],
                "resources": {},
            }],
            "nodeName": if n.is_multiple_of(2) { "node-1" } else { "node-2" },
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
        "status": {
            "phase": real_phase,
            "podIP": ip,
            "podIPs": [{ "ip": ip }],
            "hostIP": "172.18.0.2",
            "startTime": "2025-01-01T00:00:00Z",
            "conditions": [
                { "type": "Initialized", "status": "True" },
                { "type": "Ready", "status": cond },
                { "type": "ContainersReady", "status": cond },
                { "type": "PodScheduled", "status": "True" },
            ],
            "containerStatuses": [{
                "name": container,
                "image": image,
                "imageID": "",
                "ready": ready,
                "started": ready,
                "restartCount": restarts,
                "state": state,
            }],
        },
    })
}

pub(crate) fn deployment(ns: &str, name: &str, replicas: u32, image: &str) -> Value {
    let app = labels(&[("app", name)]);
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, Some(ns), &app),
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": app },
            "template": {
                "metadata": { "labels": app },
                "spec": { "containers": [{ "name": name, "image": image }] },
            },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } },
        },
    });
    d["metadata"]["generation"] = json!(1);
    d["metadata"]["annotations"] = json!({ "deployment.kubernetes.io/revision": "1" });
    settle_deployment(&mut d);
    d
}

/// Makes a deployment's status reflect its spec, as if the rollout finished instantly.
pub(crate) fn settle_deployment(d: &mut Value) {
    let n = d
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    deployment_status(
        d,
        [n, n, n],
        [
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        ],
        [
            "True",
            "NewReplicaSetAvailable",
            "ReplicaSet has successfully progressed.",
        ],
    );
    if let (0, Some(s)) = (n, d["status"].as_object_mut()) {
        s.remove("readyReplicas");
        s.remove("availableReplicas");
    }
}

/// Sets a deployment's status as the controller would report it: `[updated, ready,
/// available]` replicas of `spec.replicas`, and the `Available` and `Progressing` conditions
/// as `[status, reason, message]`.
pub(crate) fn deployment_status(
    d: &mut Value,
    [updated, ready, available]: [u64; 3],
    available_cond: [&str; 3],
    progressing: [&str; 3],
) {
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let generation = d
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let cond = |kind: &str, [status, reason, message]: [&str; 3]| json!({ "type": kind, "status": status, "reason": reason, "message": message });
    d["status"] = json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": [cond("Available", available_cond), cond("Progressing", progressing)],
    });
}

pub(crate) fn service(ns: &str, name: &str, n: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, Some(ns), &labels(&[("app", name)])),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": format!("10.96.{}.{}", n / 250 % 250, n % 250 + 1),
            "ports": [{ "name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080 }],
            "selector": { "app": name },
        },
        "status": { "loadBalancer": {} },
    })
}

pub(crate) fn secret(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded: Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(engine.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name, Some(ns), &Map::new()),
        "type": "Opaque",
        "data": encoded,
    })
}

pub(crate) fn configmap(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let plain: Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(name, Some(ns), &Map::new()),
        "data": plain,
    })
}

pub(crate) fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(name, None, &labels(&[("kubernetes.io/metadata.name", name)])),
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

pub(crate) fn node(name: &str, role: &str) -> Value {
    let role_label = format!("node-role.kubernetes.io/{role}");
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta(name, None, &labels(&[("kubernetes.io/hostname", name), (role_label.as_str(), "")])),
        "spec": {},
        "status": {
            "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady" }],
            "nodeInfo": {
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "architecture": "amd64",
                "operatingSystem": "linux",
            },
        },
    })
}
