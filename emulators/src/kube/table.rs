//! Server-side printing (`meta.k8s.io/v1 Table`) and ages.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

fn col(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({ "name": name, "type": kind, "format": format, "description": name, "priority": priority })
}

/// Column definitions for `resource`.
pub(crate) fn columns(resource: &str) -> Vec<Value> {
    match resource {
        "pods" => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
        ],
        "deployments" => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        "replicasets" => vec![
            col("Name", "string", 0),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
        ],
        "services" => vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ],
        "secrets" => vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Data", "string", 0),
            col("Age", "string", 0),
        ],
        "configmaps" => vec![
            col("Name", "string", 0),
            col("Data", "string", 0),
            col("Age", "string", 0),
        ],
        "namespaces" => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Age", "string", 0),
        ],
        "nodes" => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
        ],
        "events" => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ],
        _ => vec![col("Name", "string", 0), col("Age", "string", 0)],
    }
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn n(obj: &Value, ptr: &str) -> u64 {
    obj.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn count(obj: &Value, ptr: &str) -> usize {
    obj.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

/// The cells of `obj`'s row, matching [`columns`].
pub(crate) fn cells(resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let age_cell = json!(age(s(obj, "/metadata/creationTimestamp"), now));
    match resource {
        "pods" => {
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
                .count();
            let restarts: u64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
            let mut status = s(obj, "/status/phase").to_string();
            for c in statuses.iter().rev() {
                let reason = [
                    s(c, "/state/waiting/reason"),
                    s(c, "/state/terminated/reason"),
                ]
                .into_iter()
                .find(|r| !r.is_empty());
                if let Some(reason) = reason {
                    status = reason.to_string();
                }
            }
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                status = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age_cell,
                json!(s(obj, "/status/podIP")),
                json!(s(obj, "/spec/nodeName")),
            ]
        }
        "deployments" => {
            let containers = obj
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
            let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
            let selector = obj
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(obj, "/status/readyReplicas"),
                    n(obj, "/spec/replicas")
                )),
                json!(n(obj, "/status/updatedReplicas")),
                json!(n(obj, "/status/availableReplicas")),
                age_cell,
                json!(names.join(",")),
                json!(images.join(",")),
                json!(selector),
            ]
        }
        "replicasets" => vec![
            name,
            json!(n(obj, "/spec/replicas")),
            json!(n(obj, "/status/replicas")),
            json!(n(obj, "/status/readyReplicas")),
            age_cell,
        ],
        "services" => {
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ports: Vec<String> = ports
                .iter()
                .map(|p| format!("{}/{}", n(p, "/port"), s(p, "/protocol")))
                .collect();
            let selector = obj
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map_or_else(
                    || "<none>".into(),
                    |m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                );
            let ip = s(obj, "/spec/clusterIP");
            vec![
                name,
                json!(s(obj, "/spec/type")),
                json!(if ip.is_empty() { "<none>" } else { ip }),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                age_cell,
                json!(selector),
            ]
        }
        "secrets" => vec![
            name,
            json!(s(obj, "/type")),
            json!(count(obj, "/data").to_string()),
            age_cell,
        ],
        "configmaps" => {
            let data = count(obj, "/data") + count(obj, "/binaryData");
            vec![name, json!(data.to_string()), age_cell]
        }
        "namespaces" => vec![name, json!(s(obj, "/status/phase")), age_cell],
        "nodes" => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| s(c, "/type") == "Ready"))
                .is_some_and(|c| s(c, "/status") == "True");
            let roles: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age_cell,
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
            ]
        }
        "events" => {
            let last = s(obj, "/lastTimestamp");
            let last = if last.is_empty() {
                s(obj, "/metadata/creationTimestamp")
            } else {
                last
            };
            let object = format!(
                "{}/{}",
                s(obj, "/involvedObject/kind").to_lowercase(),
                s(obj, "/involvedObject/name")
            );
            vec![
                json!(age(last, now)),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(s(obj, "/message")),
            ]
        }
        _ => vec![name, age_cell],
    }
}

/// kubectl's `HumanDuration` of the time since `timestamp` (RFC 3339), or `<unknown>`.
pub(crate) fn age(timestamp: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    human_duration(secs.max(0).unsigned_abs())
}

fn human_duration(secs: u64) -> String {
    let (mins, hours) = (secs / 60, secs / 3600);
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        if secs.is_multiple_of(60) {
            format!("{mins}m")
        } else {
            format!("{mins}m{}s", secs % 60)
        }
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        if mins.is_multiple_of(60) {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", mins % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        if hours.is_multiple_of(24) {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, hours % 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        let days = hours / 24 - years * 365;
        if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
        assert_eq!(human_duration(3 * 24 * 3600 + 2 * 3600), "3d2h");
        assert_eq!(human_duration(30 * 24 * 3600), "30d");
        assert_eq!(age("not a time", Utc::now()), "<unknown>");
    }
}
