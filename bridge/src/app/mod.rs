//! The Slack-facing service: the axum router, its shared state, and startup.
//!
//! The ack path does only this: verify, parse, resolve identity, evaluate, write the audit record
//! (group-committed), enqueue. Everything slow happens on the worker pool afterwards.

mod alertmanager;
pub mod audit_sinks;
mod aws;
mod commands;
pub mod discovery;
mod ingress;
mod interact;
mod render;
mod runs;
pub mod share;
mod silence;
pub mod socket;
pub(crate) mod targets;
pub(crate) mod terraform;
mod webhook;
mod work;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use slipway_core::policy::Policy;
use slipway_infra::audit_writer::AuditWriter;

pub use ingress::{MAX_BODY, flush_rejections};
pub use runs::{ChangeTask, Enqueued, Runs};

use crate::clock::{Clock, Ids};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::slack::client::Slack;

/// Everything handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub policy: Arc<Policy>,
    pub slack: Slack,
    pub audit: AuditWriter,
    pub metrics: Metrics,
    pub runs: Runs,
    pub replay: crate::slack::signature::ReplayCache,
    /// Which custom kinds each cluster declares namespaced (refreshed in the background).
    pub discovery: discovery::Discovery,
    /// Private outputs their requesters may still share.
    pub shares: share::Shares,
    pub events_seen: std::sync::Mutex<lru_set::LruSet>,
    pub rejections: std::sync::Mutex<ingress::RejectionTally>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Directory commands run in: owned by the bridge, never chosen by a user.
    pub work_dir: PathBuf,
    /// Change requests, when a GitOps repository is configured.
    pub change: Option<Arc<crate::change::ChangeService>>,
    /// The S3 mirror and the other audit sinks, running beside the spool.
    pub audit_sinks: audit_sinks::AuditSinks,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// Build the state from a validated config: load the policy, open the audit spool, create the
    /// work directories, start the worker pool.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn Ids>,
    ) -> Result<AppState, String> {
        let policy = crate::cli::load_policy(&config.policy)?;
        let slack = Slack::new(&config.slack)?;
        let work_dir = config.state_dir.join("work");
        for dir in [
            &work_dir,
            &config.state_dir.join("home"),
            &config.state_dir.join("kube-cache"),
        ] {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let writer = format!("bridge:{}", crate::clock::host_name());
        let audit_dir = config.state_dir.join("audit");
        let audit = audit_sinks::open_spool(&config, &writer)?;
        let metrics = Metrics::new();
        let audit_sinks = audit_sinks::start(
            &config.audit,
            &audit_dir,
            &audit.log(),
            &metrics.audit_sinks,
        )?;
        let runs = Runs::new(config.execution.queue, config.execution.per_user);
        let change = match &config.gitops_repo {
            Some(g) => Some(Arc::new(crate::change::ChangeService::new(
                g.clone(),
                &config.state_dir,
            )?)),
            None => None,
        };
        let state = AppState {
            inner: Arc::new(Inner {
                policy: Arc::new(policy),
                slack,
                audit,
                metrics,
                runs,
                replay: crate::slack::signature::ReplayCache::default(),
                discovery: discovery::Discovery::default(),
                shares: share::Shares::default(),
                events_seen: std::sync::Mutex::new(lru_set::LruSet::new(10_000)),
                rejections: std::sync::Mutex::new(ingress::RejectionTally::default()),
                clock,
                ids,
                work_dir,
                change,
                audit_sinks,
                config,
            }),
        };
        runs::start_workers(&state);
        discovery::start(&state);
        if let Some(change) = &state.change {
            change.start_expiry_timer(&state);
        }
        ingress::start_rejection_flusher(&state, Duration::from_secs(60));
        Ok(state)
    }

    /// Append `record` to the audit spool. A failure is counted and logged as `could not record
    /// {what}`, and returned for the callers that must fail closed.
    pub async fn record(
        &self,
        record: slipway_core::audit::AuditRecord,
        what: &str,
    ) -> Result<slipway_core::audit::AuditRecord, String> {
        self.audit.record(record).await.inspect_err(|e| {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, "could not record {what}");
        })
    }
}

/// The router. An endpoint that verifies an HMAC is mounted only when its key is configured
/// (the configuration refuses short keys), so no request is ever checked against an empty key:
/// in Socket Mode without a signing secret the Slack endpoints answer 404.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if !state.config.slack.signing_secret.is_empty() {
        router = router
            .route("/slack/commands", post(commands::slash_command))
            .route("/slack/interactivity", post(interact::interactivity))
            .route("/slack/events", post(interact::events));
    }
    if !state.config.github_webhook_secret.is_empty() {
        router = router.route(
            "/github/webhook",
            post(webhook::github_webhook).layer(DefaultBodyLimit::max(webhook::MAX_WEBHOOK_BODY)),
        );
    }
    router
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .audit_spool_depth
        .set(i64::try_from(state.audit.depth()).unwrap_or(i64::MAX));
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Serve on a bound listener until the process is told to stop. In Socket Mode the HTTP
/// listener still serves `/healthz` and `/metrics`.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    if state.config.slack.socket_mode {
        let s = state.clone();
        tokio::spawn(async move {
            let token = s.config.slack.app_token.clone();
            if let Err(e) = socket::run(s, &token, shutdown_signal()).await {
                tracing::error!(error = %e, "Socket Mode stopped");
            }
        });
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// A small bounded set of recently seen keys (Events API retry dedupe).
pub mod lru_set {
    use std::collections::{HashSet, VecDeque};

    #[derive(Debug)]
    pub struct LruSet {
        cap: usize,
        order: VecDeque<String>,
        set: HashSet<String>,
    }

    impl LruSet {
        pub fn new(cap: usize) -> Self {
            Self {
                cap,
                order: VecDeque::new(),
                set: HashSet::new(),
            }
        }

        /// Insert; `false` if it was already there.
        pub fn insert(&mut self, key: &str) -> bool {
            if self.set.contains(key) {
                return false;
            }
            if self.order.len() >= self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
            self.order.push_back(key.to_string());
            self.set.insert(key.to_string());
            true
        }
    }
}
