//! Prometheus metrics, served on `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use slipway_infra::sinks::SinkMetrics;

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

/// An audit sink: `s3`, `jira` or `webhook`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkFailureLabels {
    pub sink: &'static str,
    pub reason: &'static str,
}

/// The audit mirror and sinks' metrics, handed to `slipway_infra::sinks` as a [`SinkMetrics`].
/// Clones share the underlying series.
#[derive(Clone, Debug, Default)]
pub struct AuditSinkMetrics {
    pub depth: Family<SinkLabels, Gauge>,
    pub lag_seconds: Family<SinkLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub delivered: Family<SinkLabels, Counter>,
    pub failures: Family<SinkFailureLabels, Counter>,
}

impl SinkMetrics for AuditSinkMetrics {
    fn depth(&self, sink: &'static str, records: u64) {
        self.depth
            .get_or_create(&SinkLabels { sink })
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }
    fn lag(&self, sink: &'static str, seconds: f64) {
        self.lag_seconds
            .get_or_create(&SinkLabels { sink })
            .set(seconds);
    }
    fn delivered(&self, sink: &'static str, records: u64) {
        self.delivered
            .get_or_create(&SinkLabels { sink })
            .inc_by(records);
    }
    fn failed(&self, sink: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&SinkFailureLabels { sink, reason })
            .inc();
    }
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
    pub audit_sinks: AuditSinkMetrics,
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
        let audit_sinks = AuditSinkMetrics::default();
        registry.register(
            "audit_sink_depth",
            "Audit records a sink (s3, jira, webhook) has not delivered yet",
            audit_sinks.depth.clone(),
        );
        registry.register(
            "audit_sink_lag_seconds",
            "Age of the oldest audit record a sink has not delivered (0 when caught up)",
            audit_sinks.lag_seconds.clone(),
        );
        registry.register(
            "audit_sink_delivered",
            "Audit records delivered by each sink",
            audit_sinks.delivered.clone(),
        );
        registry.register(
            "audit_sink_failures",
            "Failed audit sink attempts, by sink and reason (transient, config, conflict, spool)",
            audit_sinks.failures.clone(),
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
            audit_sinks,
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
