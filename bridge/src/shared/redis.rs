//! The bridge's connection to Redis, when replicas share state (issue 19). One multiplexed
//! async connection serves every task; a broken one is dropped and the next call reconnects,
//! through Sentinel when configured, so a failover is followed without a restart. While Redis
//! is down, calls fail fast (no connect attempt per request) until the health loop, which
//! pings once a second, finds it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError};

use crate::config::{RedisConfig, RedisTarget};

/// How long a whole connect (Sentinel lookup, TCP, TLS, AUTH, `ROLE`) and one reply may take.
/// Short: the ack path may wait on either, and Slack wants its ack within 3 s.
const CONNECT_BUDGET: Duration = Duration::from_millis(1200);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1200);
/// While Redis is down, at most one reconnect attempt per this interval (the rest fail fast).
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Redis could not be reached or answered with an error. The text never holds a credential
/// (the URL is not part of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared state (Redis) is unavailable: {0}")]
pub struct Unavailable(pub String);

impl From<RedisError> for Unavailable {
    fn from(e: RedisError) -> Self {
        Unavailable(format!("{:?}: {}", e.kind(), e.detail().unwrap_or("")))
    }
}

/// A handle to the shared Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    /// The live connection: read (and cloned) by every call without waiting.
    conn: std::sync::RwLock<Option<MultiplexedConnection>>,
    /// Held by whoever is connecting, so one task connects and the rest wait for it.
    connecting: tokio::sync::Mutex<()>,
    up: AtomicBool,
    /// Milliseconds since `epoch` of the last failed connect.
    last_failure_ms: AtomicI64,
    epoch: Instant,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("target", &self.inner.config.target)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle; nothing connects until the first call.
    pub fn new(config: RedisConfig) -> Redis {
        Redis {
            inner: Arc::new(Inner {
                config,
                conn: std::sync::RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                up: AtomicBool::new(false),
                last_failure_ms: AtomicI64::new(i64::MIN),
                epoch: Instant::now(),
            }),
        }
    }

    /// `prefix` + `rest`: every key Slipway writes.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.config.prefix)
    }

    /// Whether the last call or health ping reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// A client for the current master: the URL's server, or the one the Sentinels name now.
    pub async fn client(&self) -> Result<Client, Unavailable> {
        let c = &self.inner.config;
        match &c.target {
            RedisTarget::Url(url) => url_client(c, url),
            RedisTarget::Sentinel {
                sentinels,
                master,
                tls,
            } => {
                let mut s = sentinel(c, sentinels, master, *tls)?;
                Ok(s.async_get_client().await?)
            }
        }
    }

    /// The same client, asked for without a runtime (the blocking stores, the CLI).
    pub fn client_blocking(&self) -> Result<Client, Unavailable> {
        client_blocking(&self.inner.config)
    }

    /// The shared connection, connecting if there is none. Fails fast while Redis is known to
    /// be down and the last attempt was under [`RETRY_EVERY`] ago; a caller never waits more
    /// than about two connect budgets.
    pub async fn conn(&self) -> Result<MultiplexedConnection, Unavailable> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _connecting = tokio::time::timeout(CONNECT_BUDGET, self.inner.connecting.lock())
            .await
            .map_err(|_| Unavailable("still connecting".into()))?;
        // Whoever held the lock may have connected meanwhile.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let now_ms = self.elapsed_ms();
        let last = self.inner.last_failure_ms.load(Ordering::Relaxed);
        if last != i64::MIN && now_ms.saturating_sub(last) < millis(RETRY_EVERY) {
            return Err(Unavailable("not reachable (retrying)".into()));
        }
        match tokio::time::timeout(CONNECT_BUDGET, self.connect()).await {
            Ok(Ok(conn)) => {
                self.inner.up.store(true, Ordering::Relaxed);
                *slipway_infra::sync::write(&self.inner.conn) = Some(conn.clone());
                Ok(conn)
            }
            Ok(Err(e)) => {
                self.down(now_ms);
                Err(e)
            }
            Err(_) => {
                self.down(now_ms);
                Err(Unavailable("connect timed out".into()))
            }
        }
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        slipway_infra::sync::read(&self.inner.conn).clone()
    }

    /// A new connection to the current master. A Sentinel may still name a master that was
    /// just demoted: only a server that says it is a master will do.
    async fn connect(&self) -> Result<MultiplexedConnection, Unavailable> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_BUDGET))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let client = self.client().await?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r == b"master" => Ok(conn),
            _ => Err(Unavailable("the server is not a master".into())),
        }
    }

    fn down(&self, now_ms: i64) {
        self.inner.up.store(false, Ordering::Relaxed);
        self.inner.last_failure_ms.store(now_ms, Ordering::Relaxed);
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Note a failed call: a broken connection, a timeout or a demoted master drops the
    /// connection, so the next call reconnects (and asks the Sentinels again).
    pub fn failed(&self, e: &RedisError) -> Unavailable {
        let readonly = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || readonly {
            *slipway_infra::sync::write(&self.inner.conn) = None;
            self.down(self.elapsed_ms());
        }
        Unavailable::from(e.clone())
    }

    /// Run `f` on the connection; a failure is noted (see [`Redis::failed`]). Each call is
    /// one round trip (a command, a pipeline or a script), counted for an ack ([`counted`]).
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let _ = ROUND_TRIPS.try_with(|n| n.set(n.get() + 1));
        let conn = self.conn().await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(&e)),
        }
    }

    /// One `PING`: is Redis reachable and writable right now?
    pub async fn ping(&self) -> bool {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .is_ok()
    }

    /// Ping once a second for the life of the process, so `/readyz` and fail-fast know when
    /// Redis comes back without waiting for a request.
    pub fn start_health(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_up = true;
            loop {
                tick.tick().await;
                let up = me.ping().await;
                if up != was_up {
                    if up {
                        tracing::info!("shared state (Redis) is reachable again");
                    } else {
                        tracing::error!(
                            "shared state (Redis) is unreachable: new commands are refused and \
                             /readyz answers 503 until it is back"
                        );
                    }
                    was_up = up;
                }
            }
        });
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A client for the current master without a runtime: the URL's server, or the one the
/// Sentinels name now.
pub fn client_blocking(c: &RedisConfig) -> Result<Client, Unavailable> {
    match &c.target {
        RedisTarget::Url(url) => url_client(c, url),
        RedisTarget::Sentinel {
            sentinels,
            master,
            tls,
        } => Ok(sentinel(c, sentinels, master, *tls)?.get_client()?),
    }
}

/// A client for one server, with the configured ACL credentials.
fn url_client(c: &RedisConfig, url: &str) -> Result<Client, Unavailable> {
    let mut info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &c.username {
        settings = settings.set_username(u);
    }
    if !c.password.is_empty() {
        settings = settings.set_password(&*c.password.expose());
    }
    info = info.set_redis_settings(settings);
    Ok(Client::open(info)?)
}

/// The Sentinels that know the master's address; credentials and TLS apply to the master.
fn sentinel(
    c: &RedisConfig,
    sentinels: &[String],
    master: &str,
    tls: bool,
) -> Result<redis::sentinel::SentinelClient, Unavailable> {
    use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(u) = &c.username {
        settings = settings.set_username(u);
    }
    if !c.password.is_empty() {
        settings = settings.set_password(&*c.password.expose());
    }
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(settings);
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    let addrs: Vec<String> = sentinels.iter().map(|a| format!("redis://{a}")).collect();
    Ok(SentinelClient::build(
        addrs,
        master,
        Some(node),
        SentinelServerType::Master,
    )?)
}

impl Redis {
    /// Call `on_message` with each message published on `channel`, for the life of the
    /// process: resubscribing (with backoff) after Redis goes away. A message published while
    /// the subscription is down is lost; callers that can't lose one keep it elsewhere too.
    pub fn subscribe_forever<F>(&self, channel: String, on_message: F)
    where
        F: Fn(&[u8]) + Send + Sync + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match me.listen(&channel, &on_message).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "subscription lost; retrying");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        });
    }

    async fn listen(
        &self,
        channel: &str,
        on_message: &(dyn Fn(&[u8]) + Send + Sync),
    ) -> Result<(), Unavailable> {
        use futures_util::StreamExt as _;
        let client = self.client().await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            on_message(msg.get_payload_bytes());
        }
        Ok(())
    }
}

tokio::task_local! {
    /// Round trips made by the task being counted (an ack).
    static ROUND_TRIPS: std::cell::Cell<u32>;
}

/// Run `fut` (an ack) and count the Redis round trips it makes itself: the ARCHITECTURE
/// invariant allows one, and the `ack_redis_round_trips` histogram shows it holds.
pub async fn counted<F: std::future::Future>(fut: F) -> (F::Output, u32) {
    ROUND_TRIPS
        .scope(std::cell::Cell::new(0), async move {
            let out = fut.await;
            (out, ROUND_TRIPS.with(std::cell::Cell::get))
        })
        .await
}
