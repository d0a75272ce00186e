//! The Slack-facing service: the axum router, its shared state, and startup.
//!
//! The ack path does only this: verify, parse, resolve identity, evaluate, write the audit record
//! (group-committed), enqueue. Everything slow happens on the worker pool afterwards.

pub mod admin;
pub mod audit_sinks;
mod change_modal;
mod commands;
mod forward;
mod github;
mod google;
mod home;
mod ingress;
mod interact;
mod mention;
mod meta;
mod rollback;
pub mod scim;
mod shortcuts;
mod slack_events;
pub mod socket;
mod sso;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};

pub use ingress::{MAX_BODY, flush_rejections};

use crate::base::{Base, BaseInner};
use crate::clock::{Clock, Ids};
use crate::config::{Config, Live};
use crate::ctx::{Ctx, CtxInner};
use crate::exec::discovery::Discovery;
use crate::exec::queue::Runs;
use crate::metrics::Metrics;
use crate::shares::Shares;
use crate::slack::client::Slack;

/// Everything handlers share: the domain context plus what only the ingress uses.
#[derive(Clone, Debug)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct Inner {
    pub ctx: Ctx,
    pub rejections: std::sync::Mutex<ingress::RejectionTally>,
    /// Change requests, when a GitOps repository is configured.
    pub change: Option<Arc<crate::change::ChangeService>>,
    /// The S3 mirror and the other audit sinks, running beside the spool.
    pub audit_sinks: audit_sinks::AuditSinks,
    /// `/slipway link sso`, when an identity provider is configured.
    pub sso: Option<Arc<crate::identity::sso::Sso>>,
    /// The Google Workspace sync, when configured (`/google/notify` pokes it).
    pub google: Option<crate::identity::google::GoogleSync>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::Deref for Inner {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
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
        let policy = crate::config::load_policy(&config.policy)?;
        let (redis, gate) = shared(&config);
        let slack = Slack::new(&config.slack)?;
        let work_dir = work_dirs(&config)?;
        let writer = writer_id(&config);
        let audit = audit_sinks::open_spool(&config, &writer)?;
        let metrics = Metrics::new();
        let audit_sinks = audit_sinks::start(
            &config.audit,
            &config.state_dir.join("audit"),
            &audit.log(),
            &metrics.audit_sinks,
        )?;
        let change = open_change(&config)?;
        let directory = open_directory(&config)?;
        let (people, sso) = people(&config, directory.clone(), &slack, &clock, redis.as_ref())?;
        let replica = format!("{writer}#{}", ids.next());
        let leader = leader(&config, redis.as_ref(), &replica);
        let runs = runs(&config, redis.as_ref(), &replica);
        let gcp = gcp_minter(&config)?;
        let base = Base::new(BaseInner {
            config,
            policies: crate::base::PolicyCell::new(policy),
            slack,
            metrics,
            clock,
            ids,
            work_dir,
            redis,
            gate,
            gcp,
            leader,
            replica,
        });
        let ctx = Ctx::new(CtxInner {
            base,
            audit,
            runs,
            discovery: Arc::new(Discovery::default()),
            shares: Shares::default(),
            recent: crate::recent::Recent::default(),
            people,
            directory,
        });
        let google = start_google(&ctx)?;
        let state = AppState {
            inner: Arc::new(Inner {
                ctx,
                rejections: std::sync::Mutex::new(ingress::RejectionTally::default()),
                change,
                audit_sinks,
                sso,
                google,
            }),
        };
        state.start_background();
        Ok(state)
    }

    /// The workers, the discovery refresh, the expiry sweep and the rejection flusher.
    fn start_background(&self) {
        if let Some(r) = &self.redis {
            r.start_health();
        }
        self.leader.start();
        crate::reads::runs::start_workers(&self.ctx);
        // Weak: the workers must not keep a dropped state alive.
        let me = Arc::downgrade(&self.inner);
        let rebuild: crate::reads::shared_runs::Rebuild = Arc::new(move |wire| {
            let inner = me.upgrade();
            Box::pin(async move {
                let state = AppState {
                    inner: inner.ok_or("This replica is shutting down.")?,
                };
                commands::rebuild(&state, wire).await
            })
        });
        crate::reads::shared_runs::start(&self.ctx, &rebuild);
        crate::exec::gke::start(&self.ctx);
        crate::exec::discovery::start(&self.ctx, &self.ctx.discovery);
        if let Some(change) = &self.change {
            change.start_expiry_timer(&self.ctx);
            change.start_people_publisher(&self.ctx);
        }
        ingress::start_rejection_flusher(self, Duration::from_secs(60));
        home::start_refresher(self);
        crate::secrets::start(
            &self.config.secrets,
            self.clock.clone(),
            self.metrics.secrets.clone(),
        );
    }
}

/// The GCP token minter, when the bridge has a Google identity.
/// Rebuilt (with an empty token cache) when `gcp.credentials` rotates.
fn gcp_minter(config: &Config) -> Result<Option<Live<slipway_infra::gcp::Minter>>, String> {
    let Some(g) = config.gcp.clone() else {
        return Ok(None);
    };
    let sources = vec![g.credentials.clone()];
    Live::new("gcp.credentials", sources, move |_| {
        slipway_infra::gcp::Minter::new(g.minter_settings(), std::time::Duration::from_secs(20))
            .map_err(|e| format!("gcp: {e}"))
    })
    .map(Some)
}

/// The shared Redis (if configured) and the ack-time gate over it, or the embedded gate.
fn shared(config: &Config) -> (Option<crate::shared::Redis>, crate::shared::Gate) {
    let redis = config.redis.clone().map(crate::shared::Redis::new);
    let gate = redis
        .clone()
        .map_or_else(crate::shared::Gate::embedded, crate::shared::Gate::redis);
    (redis, gate)
}

/// The change service, when a GitOps repository is configured: its state in the shared Redis
/// when one is, else in `<state_dir>/state.redb`.
fn open_change(config: &Config) -> Result<Option<Arc<crate::change::ChangeService>>, String> {
    let Some(g) = &config.gitops_repo else {
        return Ok(None);
    };
    let mut svc =
        crate::change::ChangeService::open(g.clone(), &config.state_dir, config.redis.as_ref())?;
    if let Some(sn) = config.audit.servicenow.as_ref().filter(|s| s.cab_gate) {
        svc.cab = Some(slipway_infra::sinks::servicenow_cab::CabGate::new(
            sn.clone(),
        )?);
    }
    Ok(Some(Arc::new(svc)))
}

/// This replica's audit writer id: the configured one, or `bridge:<host name>`.
fn writer_id(config: &Config) -> String {
    config
        .audit
        .writer
        .clone()
        .unwrap_or_else(|| format!("bridge:{}", crate::clock::host_name()))
}

/// The worker pool's queue: in this process, or shared through Redis.
fn runs(config: &Config, redis: Option<&crate::shared::Redis>, replica: &str) -> Runs {
    let e = &config.execution;
    let runs = Runs::new(e.queue, e.per_user);
    match redis {
        None => runs,
        Some(r) => runs.with_shared(crate::exec::queue::Shared {
            redis: r.clone(),
            replica: replica.to_string(),
            claim_timeout: e.claim_timeout,
            per_user: e.per_user,
            // Waiting and running, across the deployment.
            bound: e.queue + e.workers,
        }),
    }
}

/// The leader election: embedded, this process; shared, the holder of the Redis lease.
fn leader(
    config: &Config,
    redis: Option<&crate::shared::Redis>,
    replica: &str,
) -> crate::shared::Leader {
    match redis {
        None => crate::shared::Leader::Embedded,
        Some(r) => crate::shared::Leader::redis(
            r.clone(),
            replica.to_string(),
            config.execution.leader_lease,
        ),
    }
}

/// The directories commands run in (`work`, `home`, `kube-cache`); returns `work`.
fn work_dirs(config: &Config) -> Result<std::path::PathBuf, String> {
    let work_dir = config.state_dir.join("work");
    for dir in [
        &work_dir,
        &config.state_dir.join("home"),
        &config.state_dir.join("kube-cache"),
    ] {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    Ok(work_dir)
}

/// The people service over the directory (if any) and the links (`<state_dir>/identity.redb`,
/// or the shared Redis), and SSO logins when an identity provider is configured for them.
fn people(
    config: &Config,
    directory: Option<Arc<dyn crate::identity::DirectoryStore>>,
    slack: &Slack,
    clock: &Arc<dyn Clock>,
    redis: Option<&crate::shared::Redis>,
) -> Result<
    (
        crate::identity::People,
        Option<Arc<crate::identity::sso::Sso>>,
    ),
    String,
> {
    let pool = config.redis.clone().map(crate::shared::blocking::Pool::new);
    let links: Arc<dyn crate::identity::links::LinkStore> = match &pool {
        Some(p) => Arc::new(crate::identity::links_redis::RedisLinks::open(p)),
        None => Arc::new(
            crate::identity::links::RedbLinks::open(&config.state_dir)
                .map_err(|e| e.to_string())?,
        ),
    };
    let directory = directory.map(|d| {
        Arc::new(crate::identity::StoreDirectory(d)) as Arc<dyn crate::identity::Directory>
    });
    let people = crate::identity::People::new(directory, links, slack.clone(), clock.clone());
    let Some(cfg) = &config.sso else {
        return Ok((people, None));
    };
    let claims: Arc<dyn crate::identity::sso::ClaimStore> = match &pool {
        Some(p) => Arc::new(crate::identity::links_redis::RedisClaims::open(p)),
        None => Arc::new(
            crate::identity::sso::RedbClaims::open(&config.state_dir).map_err(|e| e.to_string())?,
        ),
    };
    Ok((
        people.with_sso(claims, cfg.max_age),
        Some(Arc::new(crate::identity::sso::Sso::new(
            cfg.clone(),
            clock.clone(),
            redis.cloned(),
        ))),
    ))
}

/// The directory SCIM and the Google sync write into, opened when either is configured.
fn open_directory(
    config: &Config,
) -> Result<Option<Arc<dyn crate::identity::DirectoryStore>>, String> {
    if !config.scim.enabled() && config.google.is_none() {
        return Ok(None);
    }
    if let Some(redis) = &config.redis {
        let pool = crate::shared::blocking::Pool::new(redis.clone());
        return Ok(Some(Arc::new(crate::identity::RedisDirectory::open(&pool))));
    }
    let store =
        crate::identity::RedbDirectory::open(&config.state_dir).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(store)))
}

/// The Google Workspace sync's task, when `google:` is configured: it syncs at once, then on
/// its schedule.
fn start_google(ctx: &Ctx) -> Result<Option<crate::identity::google::GoogleSync>, String> {
    let (Some(config), Some(store)) = (&ctx.config.google, &ctx.directory) else {
        return Ok(None);
    };
    let sinks = crate::identity::google::Sinks {
        audit: ctx.audit.clone(),
        clock: ctx.clock.clone(),
        ids: ctx.ids.clone(),
        metrics: ctx.metrics.google.clone(),
        audit_failures: ctx.metrics.audit_failures.clone(),
        changed: ctx.people.changes(),
        leader: ctx.leader.clone(),
        redis: ctx.redis.clone(),
    };
    crate::identity::google::start(config, store.clone(), sinks).map(Some)
}

/// Where `/tf plan` reads stacks: the git mirror at the default branch's head when change
/// requests are configured, else a configured checkout, else nowhere (plans are refused).
fn stack_source(state: &AppState) -> Option<Arc<dyn crate::exec::terraform::StackSource>> {
    match (&state.change, state.config.gitops.checkout.clone()) {
        (Some(svc), _) => Some(Arc::new(crate::change::MirrorSource {
            svc: svc.clone(),
            handle: tokio::runtime::Handle::current(),
        })),
        (None, Some(root)) => Some(Arc::new(crate::exec::terraform::CheckoutSource { root })),
        (None, None) => None,
    }
}

/// The router. An endpoint that verifies an HMAC or a token is mounted only when its key is
/// configured (the configuration refuses short keys), so no request is ever checked against an
/// empty key: in Socket Mode without a signing secret the Slack endpoints answer 404, without a
/// SCIM token `/scim/v2` does, and without Google push (URL and channel token)
/// `/google/notify` does.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if !state.config.slack.signing_secret.is_empty() {
        router = router
            .route("/slack/commands", post(commands::slash_command))
            .route("/slack/interactivity", post(interact::interactivity))
            .route("/slack/events", post(interact::events))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_round_trips,
            ));
    }
    if let Some(scim) = scim::routes(&state) {
        router = router.nest("/scim/v2", scim);
    }
    // The SSO browser endpoints exist only when an identity provider is configured.
    if state.sso.is_some() {
        router = router
            .route("/sso/start", get(sso::start))
            .route("/sso/callback", get(sso::callback));
    }
    if let Some(google) = google::routes(&state) {
        router = router.merge(google);
    }
    if !state.config.github_webhook_secret.is_empty() {
        router = router.route(
            "/github/webhook",
            post(github::github_webhook).layer(DefaultBodyLimit::max(github::MAX_WEBHOOK_BODY)),
        );
    }
    // `layer`, not `route_layer`: in Socket Mode without a signing secret there may be no
    // route above at all (a route layer on no route panics); the probes come after it.
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            secrets_fresh,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Fails closed: while a secret is older than `secrets.max_staleness` (its store unreachable
/// that long), nothing signed with or checked against it is trusted, so every endpoint but the
/// probes and metrics answers 503.
async fn secrets_fresh(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let expired = state.config.secrets.stale(state.clock.unix());
    if expired.is_empty() {
        return next.run(req).await;
    }
    state.metrics.request("any", "secrets_stale");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Slipway can't reach its secret store and its secrets are older than \
         secrets.max_staleness, so it refuses requests until the store answers again.",
    )
        .into_response()
}

/// The Redis round trips each Slack ack made itself, extractor and handler (work spawned after
/// the ack is not counted): the ARCHITECTURE invariant allows one.
async fn count_round_trips(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (response, trips) = crate::shared::redis::counted(next.run(req)).await;
    if state.redis.is_some() {
        state
            .metrics
            .ack_redis_round_trips
            .observe(f64::from(trips));
    }
    response
}

/// Whether a load balancer should send this replica traffic: the audit spool takes writes and,
/// when state is shared, Redis answers. `/healthz` stays up either way (the process is alive);
/// this one drains a replica that could only refuse.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let spool = state.audit.is_healthy() && spool_writable(&state.config.state_dir.join("audit"));
    let redis = match &state.redis {
        None => "embedded",
        Some(r) if r.ping().await => "ok",
        Some(_) => "unreachable",
    };
    let secrets = state.config.secrets.stale(state.clock.unix()).is_empty();
    let ready = spool && redis != "unreachable" && secrets;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "ready": ready,
        "audit_spool": if spool { "writable" } else { "failing" },
        "shared_state": redis,
        "secrets": if secrets { "fresh" } else { "stale" },
    });
    (status, axum::Json(body))
}

/// A probe file can be created, written and removed in the spool directory.
fn spool_writable(dir: &std::path::Path) -> bool {
    use std::io::Write;
    let probe = dir.join(".readyz-probe");
    let ok = std::fs::File::create(&probe).and_then(|mut f| f.write_all(b"ok"));
    let _ = std::fs::remove_file(&probe);
    ok.is_ok()
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
