//! Deployment rollouts and watches, for `kubectl rollout status`: a spec change starts a rollout
//! that finishes after [`Rollouts::delay`] (status `observedGeneration`, replica counts and the
//! `Progressing`/`Available` conditions move as the controller would), or fails when the
//! deployment is switched to fail (`ProgressDeadlineExceeded`, its pods crash-looping or never
//! ready). A watch (`?watch=1`) streams newline-delimited `MODIFIED`/`ADDED` events of the
//! objects it selects, as the API server does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use serde_json::{Map, Value, json};

use super::resources::{deployment_status, settle_deployment};
use super::selector::Selector;
use super::{Key, Shared, State, lock};

/// How a rollout switched to fail fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutFailure {
    /// The new pods' container keeps exiting: `CrashLoopBackOff`.
    CrashLoop,
    /// The new pods run but their readiness probe fails.
    Readiness,
}

#[derive(Debug, Default)]
pub(crate) struct Rollouts {
    /// How long a rollout takes; zero settles at once (unless it is switched to fail).
    pub(crate) delay: Duration,
    /// `(namespace, name)` of deployments whose rollouts fail, and whether only the next one
    /// does (`true`: the switch turns itself off once that rollout starts).
    pub(crate) failing: HashMap<(String, String), (RolloutFailure, bool)>,
    /// Rollouts under way: when each ends and how.
    pending: HashMap<Key, (Instant, Option<RolloutFailure>)>,
}

fn replicas(d: &Value) -> u64 {
    d.pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1)
}

/// A stored deployment's spec changed: settle it at once, or start a rollout.
pub(crate) fn begin(st: &mut State, ns: &str, name: &str, d: &mut Value) {
    let switch = (ns.to_string(), name.to_string());
    let fail = st.rollouts.failing.get(&switch).copied();
    if let Some((_, true)) = fail {
        st.rollouts.failing.remove(&switch);
    }
    let fail = fail.map(|(how, _)| how);
    if st.rollouts.delay.is_zero() && fail.is_none() {
        settle_deployment(d);
        return;
    }
    let (n, generation) = (replicas(d), d["metadata"]["generation"].clone());
    let progress = format!("ReplicaSet \"{name}-{generation}\" is progressing.");
    deployment_status(
        d,
        [0, n, n],
        [
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        ],
        ["True", "ReplicaSetUpdated", &progress],
    );
    let key = ("deployments".to_string(), ns.to_string(), name.to_string());
    let due = Instant::now() + st.rollouts.delay;
    st.rollouts.pending.insert(key, (due, fail));
}

/// Finish every rollout whose time has come (called on each request and watch tick).
pub(crate) fn advance(st: &mut State) {
    let now = Instant::now();
    let due: Vec<(Key, Option<RolloutFailure>)> = st
        .rollouts
        .pending
        .iter()
        .filter(|(_, (at, _))| *at <= now)
        .map(|(k, (_, f))| (k.clone(), *f))
        .collect();
    for (key, fail) in due {
        st.rollouts.pending.remove(&key);
        let Some(mut d) = st.objects.get(&key).cloned() else {
            continue;
        };
        match fail {
            None => settle_deployment(&mut d),
            Some(how) => {
                fail_deployment(&mut d, &key.2);
                for pod in failing_pods(&d, &key.1, &key.2, how) {
                    st.put("pods", pod);
                }
            }
        }
        st.put("deployments", d);
    }
}

fn fail_deployment(d: &mut Value, name: &str) {
    let (n, generation) = (replicas(d), d["metadata"]["generation"].clone());
    let timed_out = format!("ReplicaSet \"{name}-{generation}\" has timed out progressing.");
    deployment_status(
        d,
        [n, 0, 0],
        [
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        ],
        ["False", "ProgressDeadlineExceeded", &timed_out],
    );
}

/// The new ReplicaSet's pods, failing as `how` says, labelled as the pod template is.
fn failing_pods(d: &Value, ns: &str, name: &str, how: RolloutFailure) -> Vec<Value> {
    let labels = d
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(Map::new);
    let container = d
        .pointer("/spec/template/spec/containers/0")
        .cloned()
        .unwrap_or_else(|| json!({"name": name, "image": ""}));
    let (cname, image) = (container["name"].clone(), container["image"].clone());
    let (state, restarts, message) = match how {
        RolloutFailure::CrashLoop => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 40s restarting failed container={} pod={name}", cname.as_str().unwrap_or_default())}}),
            5,
            "containers with unready status: [".to_string()
                + cname.as_str().unwrap_or_default()
                + "]",
        ),
        RolloutFailure::Readiness => (
            json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
            0,
            "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string(),
        ),
    };
    let generation = d["metadata"]["generation"].as_u64().unwrap_or(1);
    (0..replicas(d))
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": { "name": format!("{name}-{generation}-{i}"), "namespace": ns, "labels": labels },
                "spec": { "containers": [{ "name": cname, "image": image }] },
                "status": {
                    "phase": "Running",
                    "conditions": [{ "type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": message }],
                    "containerStatuses": [{ "name": cname, "image": image, "ready": false, "restartCount": restarts, "state": state }],
                },
            })
        })
        .collect()
}

/// A watch's response body: events as the poller sends them.
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// What a watch selects.
pub(crate) struct Watch {
    pub(crate) resource: &'static str,
    pub(crate) ns: Option<String>,
    pub(crate) fields: Selector,
    pub(crate) labels: Selector,
    /// Events for objects newer than this resourceVersion.
    pub(crate) since: u64,
    pub(crate) timeout: Duration,
}

/// Stream the watch's events until it times out or the client goes away.
pub(crate) fn watch(state: &Shared, w: Watch) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let state = state.clone();
    tokio::spawn(async move {
        let end = Instant::now() + w.timeout;
        let mut seen: HashMap<Key, u64> = HashMap::new();
        let mut since = w.since;
        while Instant::now() < end && !tx.is_closed() {
            let events = {
                let mut st = lock(&state);
                advance(&mut st);
                changed(&st, &w, since, &mut seen)
            };
            for (rv, line) in events {
                since = since.max(rv);
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (
        [("content-type", "application/json")],
        axum::body::Body::new(Events(rx)),
    )
        .into_response()
}

fn changed(st: &State, w: &Watch, since: u64, seen: &mut HashMap<Key, u64>) -> Vec<(u64, Bytes)> {
    st.objects
        .iter()
        .filter(|((r, ns, _), _)| r == w.resource && w.ns.as_ref().is_none_or(|want| want == ns))
        .filter(|(_, o)| w.labels.matches_labels(o) && w.fields.matches_fields(o))
        .filter_map(|(k, o)| {
            let rv = o["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())?;
            if rv <= since {
                return None;
            }
            let kind = if seen.insert(k.clone(), rv).is_some() || since > 0 {
                "MODIFIED"
            } else {
                "ADDED"
            };
            let mut line = json!({"type": kind, "object": o}).to_string();
            line.push('\n');
            Some((rv, Bytes::from(line)))
        })
        .collect()
}
