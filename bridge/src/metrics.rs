//! Prometheus metrics, served on `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExecLabels {
    pub tier: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// All of the bridge's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub ack_latency: Histogram,
    pub queue_depth: Gauge,
    pub running: Gauge,
    pub executions: Family<ExecLabels, Counter>,
    pub signature_rejections: Family<ReasonLabels, Counter>,
    pub audit_spool_depth: Gauge,
    pub audit_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slipway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by endpoint and outcome",
            requests.clone(),
        );
        // 100 µs … ~3.3 s
        let ack_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        registry.register(
            "ack_latency_seconds",
            "Time from request received to ack sent",
            ack_latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Commands waiting for a worker",
            queue_depth.clone(),
        );
        let running = Gauge::default();
        registry.register("running", "Commands running now", running.clone());
        let executions = Family::<ExecLabels, Counter>::default();
        registry.register(
            "executions",
            "Finished executions by tier and outcome",
            executions.clone(),
        );
        let signature_rejections = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "signature_rejections",
            "Requests rejected at the signature check",
            signature_rejections.clone(),
        );
        let audit_spool_depth = Gauge::default();
        registry.register(
            "audit_spool_depth",
            "Audit records not yet mirrored to S3",
            audit_spool_depth.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_failures",
            "Audit writes that failed",
            audit_failures.clone(),
        );
        Self {
            registry,
            requests,
            ack_latency,
            queue_depth,
            running,
            executions,
            signature_rejections,
            audit_spool_depth,
            audit_failures,
        }
    }

    pub fn request(&self, endpoint: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
