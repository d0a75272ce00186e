//! The shipped Prometheus rules and Grafana dashboard (`deploy/monitoring/`): promtool accepts
//! the rules, and every series either names is one the bridge really exports, so a renamed
//! metric can't leave an alert that never fires.

use std::collections::BTreeSet;

use slipway_tests::harness::{TestApp, require_tool};

fn monitoring(file: &str) -> String {
    std::fs::read_to_string(
        slipway_tests::repo_root()
            .join("deploy/monitoring")
            .join(file),
    )
    .unwrap()
}

/// `slipway_…` names in PromQL text.
fn series(text: &str) -> BTreeSet<String> {
    regex::Regex::new(r"slipway_[a-z0-9_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// What `/metrics` exports, by the names PromQL uses (`_total` counters, histogram parts).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let parts: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            out.extend(parts.iter().map(|p| format!("{name}{p}")));
        }
    }
    out
}

/// The bridge's metrics with one series in each labelled family, encoded.
fn every_family() -> String {
    use slipway_bridge::metrics::{ExecLabels, Metrics, ReasonLabels};
    use slipway_infra::sinks::SinkMetrics as _;
    let m = Metrics::new();
    m.refused("rbac.default-deny");
    m.rollouts
        .get_or_create(&slipway_bridge::metrics::OutcomeLabels { outcome: "failed" })
        .inc();
    m.secrets.staleness("vault secret/data/x#k", 1);
    m.secrets.rotated("vault secret/data/x#k");
    m.secrets.refresh("vault", "ok");
    m.audit_sinks.depth("s3", 1);
    m.audit_sinks.lag("s3", 1.0);
    m.audit_sinks.delivered("s3", 1);
    m.audit_sinks.failed("s3", "transient");
    m.executions
        .get_or_create(&ExecLabels {
            tier: "read",
            outcome: "success",
        })
        .inc();
    m.signature_rejections
        .get_or_create(&ReasonLabels { reason: "stale" })
        .inc();
    m.encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_and_dashboard_name_only_series_the_bridge_exports() {
    require_tool(
        "promtool",
        "install Debian's prometheus package, which ships promtool (scripts/install-deps does)",
    );
    let rules = slipway_tests::repo_root().join("deploy/monitoring/prometheus-rules.yaml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&monitoring("grafana-dashboard.json")).unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 7, "{exprs:?}");
    // A running bridge's own /metrics, plus every labelled family touched once (a family with
    // no series yet prints nothing).
    let app = TestApp::start().await;
    app.ack("U0VIEWER", "/slipway whoami").await;
    let mut have = exported(&app.get("/metrics").await);
    have.extend(exported(&every_family()));
    let mut named = series(&monitoring("prometheus-rules.yaml"));
    named.extend(exprs.iter().flat_map(|e| series(e)));
    let missing: Vec<&String> = named.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\nexported: {have:?}"
    );
    for needed in [
        "slipway_ack_latency_seconds_bucket",
        "slipway_refusals_total",
        "slipway_audit_sink_lag_seconds",
        "slipway_queue_depth",
        "slipway_rollouts_total",
    ] {
        assert!(named.contains(needed), "nothing watches {needed}");
    }
}
