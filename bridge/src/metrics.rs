//! Prometheus metrics, served on `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Metric;
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

/// The Google Workspace directory sync's metrics, handed to the sync task. Clones share the
/// underlying series.
#[derive(Clone, Debug, Default)]
pub struct GoogleMetrics {
    /// Sync runs by outcome (`ok`, `failed`).
    pub syncs: Family<OutcomeLabels, Counter>,
    /// Failed runs by reason (`token`, `api`, `unreachable`, `malformed`, `empty`, `store`).
    pub failures: Family<ReasonLabels, Counter>,
    /// Unix seconds of the last sync that succeeded.
    pub last_success: Gauge,
    /// Push channels (`users.watch`) registrations by outcome (`ok`, `failed`).
    pub channels: Family<OutcomeLabels, Counter>,
}

impl GoogleMetrics {
    fn registered(r: &mut Registry) -> Self {
        GoogleMetrics {
            syncs: registered(
                r,
                "google_syncs",
                "Google Workspace directory syncs by outcome (ok, failed)",
                Family::default(),
            ),
            failures: registered(
                r,
                "google_sync_failures",
                "Failed Google Workspace directory syncs by reason (token, api, unreachable, malformed, empty, store)",
                Family::default(),
            ),
            last_success: registered(
                r,
                "google_last_sync_timestamp_seconds",
                "Unix time of the last Google Workspace directory sync that succeeded",
                Gauge::default(),
            ),
            channels: registered(
                r,
                "google_channels",
                "Google push channel (users.watch) registrations by outcome",
                Family::default(),
            ),
        }
    }

    /// Count a failed run.
    pub fn failed(&self, reason: &'static str) {
        self.syncs
            .get_or_create(&OutcomeLabels { outcome: "failed" })
            .inc();
        self.failures.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// All of the bridge's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub ack_latency: Histogram,
    /// Redis round trips each ack made itself (shared state only; the invariant is one).
    pub ack_redis_round_trips: Histogram,
    pub queue_depth: Gauge,
    /// Reads in the shared stream no replica has taken yet (shared state only).
    pub shared_queue_waiting: Gauge,
    pub running: Gauge,
    pub executions: Family<ExecLabels, Counter>,
    pub signature_rejections: Family<ReasonLabels, Counter>,
    /// Refused commands by the policy rule that refused them (`rbac.default-deny`, a protected
    /// entry's id…): the policy bounds the label's values.
    pub refusals: Family<RuleLabels, Counter>,
    /// Rollouts the runner waited for, by how they ended (`ok`, `failed`), from its reports.
    pub rollouts: Family<OutcomeLabels, Counter>,
    pub audit_spool_depth: Gauge,
    pub audit_failures: Counter,
    pub audit_sinks: AuditSinkMetrics,
    /// Policy reloads by outcome (`applied`, `invalid`, `unreadable`).
    pub policy_reloads: Family<OutcomeLabels, Counter>,
    /// The Google Workspace directory sync.
    pub google: GoogleMetrics,
    /// Secret store references: reads, rotations, age of the value in use.
    pub secrets: SecretMetrics,
}

/// A secret is labelled by its reference (`vault secret/data/slipway#signing_secret`), which
/// says where it lives and never what it is.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    pub secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub store: &'static str,
    pub outcome: &'static str,
}

/// The secret refresher's series.
#[derive(Debug, Clone, Default)]
pub struct SecretMetrics {
    reads: Family<StoreLabels, Counter>,
    rotations: Family<SecretLabels, Counter>,
    staleness: Family<SecretLabels, Gauge>,
}

impl SecretMetrics {
    fn registered(r: &mut Registry) -> Self {
        let m = SecretMetrics::default();
        r.register(
            "secret_reads",
            "Secret store reads by store and outcome (ok, failed)",
            m.reads.clone(),
        );
        r.register(
            "secret_rotations",
            "New values found in a secret store, by reference",
            m.rotations.clone(),
        );
        r.register(
            "secret_staleness_seconds",
            "Seconds since each referenced secret was last read successfully",
            m.staleness.clone(),
        );
        m
    }

    pub fn refresh(&self, store: &'static str, outcome: &'static str) {
        self.reads
            .get_or_create(&StoreLabels { store, outcome })
            .inc();
    }

    pub fn rotated(&self, secret: &str) {
        self.rotations
            .get_or_create(&SecretLabels {
                secret: secret.to_string(),
            })
            .inc();
    }

    pub fn staleness(&self, secret: &str, seconds: i64) {
        self.staleness
            .get_or_create(&SecretLabels {
                secret: secret.to_string(),
            })
            .set(seconds);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Register a clone of `metric` (the registry encodes it; the clone we keep updates it) and
/// return it. Series are encoded in registration order, so callers keep theirs fixed.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl AuditSinkMetrics {
    /// The sinks' four series, one family each, labelled by sink.
    fn registered(registry: &mut Registry) -> Self {
        let sinks = AuditSinkMetrics::default();
        registry.register(
            "audit_sink_depth",
            "Audit records a sink (s3, jira, webhook) has not delivered yet",
            sinks.depth.clone(),
        );
        registry.register(
            "audit_sink_lag_seconds",
            "Age of the oldest audit record a sink has not delivered (0 when caught up)",
            sinks.lag_seconds.clone(),
        );
        registry.register(
            "audit_sink_delivered",
            "Audit records delivered by each sink",
            sinks.delivered.clone(),
        );
        registry.register(
            "audit_sink_failures",
            "Failed audit sink attempts, by sink and reason (transient, config, conflict, spool)",
            sinks.failures.clone(),
        );
        sinks
    }
}

impl Metrics {
    /// A command the policy refused under `rule`.
    pub fn refused(&self, rule: &str) {
        self.refusals
            .get_or_create(&RuleLabels {
                reason: rule.to_string(),
            })
            .inc();
    }

    /// Every series registered once, under the `slipway_` prefix. The fields are evaluated in the
    /// order written, which is the registration and so the `/metrics` order: keep it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("slipway");
        let r = &mut registry;
        Self {
            requests: registered(
                r,
                "requests",
                "HTTP requests by endpoint and outcome",
                Family::default(),
            ),
            // 100 µs … ~3.3 s
            ack_latency: registered(
                r,
                "ack_latency_seconds",
                "Time from request received to ack sent",
                Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            ),
            ack_redis_round_trips: round_trips(r),
            queue_depth: registered(
                r,
                "queue_depth",
                "Commands waiting for a worker",
                Gauge::default(),
            ),
            shared_queue_waiting: shared_waiting(r),
            running: registered(r, "running", "Commands running now", Gauge::default()),
            executions: registered(
                r,
                "executions",
                "Finished executions by tier and outcome",
                Family::default(),
            ),
            signature_rejections: registered(
                r,
                "signature_rejections",
                "Requests rejected at the signature check",
                Family::default(),
            ),
            refusals: refusals(r),
            rollouts: rollouts(r),
            audit_spool_depth: registered(
                r,
                "audit_spool_depth",
                "Audit records not yet mirrored to S3",
                Gauge::default(),
            ),
            audit_failures: registered(
                r,
                "audit_failures",
                "Audit writes that failed",
                Counter::default(),
            ),
            audit_sinks: AuditSinkMetrics::registered(r),
            policy_reloads: policy_reloads(r),
            google: GoogleMetrics::registered(r),
            secrets: SecretMetrics::registered(r),
            registry,
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

/// The Redis round trips one ack makes (shared state only; the invariant is one).
fn round_trips(r: &mut Registry) -> Histogram {
    registered(
        r,
        "ack_redis_round_trips",
        "Redis round trips made by one Slack ack (shared state only)",
        Histogram::new([0.0, 1.0, 2.0, 3.0, 5.0]),
    )
}

/// The deployment's backlog on the shared stream, as each replica last saw it.
fn refusals(r: &mut Registry) -> Family<RuleLabels, Counter> {
    registered(
        r,
        "refusals",
        "Commands the policy refused, by the rule that refused them",
        Family::default(),
    )
}

fn policy_reloads(r: &mut Registry) -> Family<OutcomeLabels, Counter> {
    registered(
        r,
        "policy_reloads",
        "Policy reloads (SIGHUP or the GitOps default branch) by outcome",
        Family::default(),
    )
}

fn rollouts(r: &mut Registry) -> Family<OutcomeLabels, Counter> {
    registered(
        r,
        "rollouts",
        "Rollouts the runner waited for, by outcome (ok, failed), as its reports say",
        Family::default(),
    )
}

fn shared_waiting(r: &mut Registry) -> Gauge {
    registered(
        r,
        "shared_queue_waiting",
        "Reads in the shared stream no replica's worker has taken yet (shared state only)",
        Gauge::default(),
    )
}
