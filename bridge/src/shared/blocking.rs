//! Blocking access to the shared Redis, for the state stores: their traits are synchronous
//! (called from async code the way the embedded redb stores are), so they use the sync
//! `redis::Connection` API rather than a `block_on` inside the runtime.
//!
//! [`Pool`] keeps a few idle connections; a call takes one (or connects, with a short timeout),
//! and gives it back only if it is still sound: a broken one (I/O error, timeout, a demoted
//! master) is dropped, so the next call reconnects and, through Sentinel, follows a failover.
//!
//! [`watch`] runs one subscriber thread per replica-local cache: it listens on
//! `<prefix>changed` for what other replicas wrote, and reloads everything when it
//! (re)subscribes and every [`RELOAD_EVERY`], so a message lost while the link was down heals.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionLike, RedisError};

use super::redis::{Unavailable, client_blocking};
use crate::config::RedisConfig;

/// How long a connect, and one reply, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
const IO_TIMEOUT: Duration = Duration::from_millis(1500);
/// Idle connections kept for reuse.
const IDLE: usize = 8;
/// How often a replica-local cache reloads everything, whatever it heard.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// The channel every write to a cached store is announced on (after the prefix).
pub const CHANGED: &str = "changed";

/// Blocking connections to the shared Redis; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: RedisConfig,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.inner.config.target)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool; nothing connects until the first call.
    pub fn new(config: RedisConfig) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                config,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// `prefix` + `rest`: every key Slipway writes.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.config.prefix)
    }

    /// A new connection to the current master, with timeouts on connect, reads and writes.
    pub fn connect(&self) -> Result<Connection, Unavailable> {
        let client: Client = client_blocking(&self.inner.config)?;
        let conn = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// Run `f` on a pooled connection. The error names what failed, never a credential.
    pub fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Unavailable> {
        let pooled = slipway_infra::sync::lock(&self.inner.idle).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = f(&mut conn);
        let keep = match &out {
            Ok(_) => true,
            Err(e) => !broken(e),
        };
        if keep && conn.is_open() {
            let mut idle = slipway_infra::sync::lock(&self.inner.idle);
            if idle.len() < IDLE {
                idle.push(conn);
            }
        }
        out.map_err(Unavailable::from)
    }

    /// Announce `what` changed to every replica's caches (`<prefix>changed`).
    pub fn publish(&self, conn: &mut Connection, what: &str) -> redis::RedisResult<()> {
        redis::cmd("PUBLISH")
            .arg(self.key(CHANGED))
            .arg(what)
            .exec(conn)
    }
}

/// Whether a failed call leaves the connection unusable.
fn broken(e: &RedisError) -> bool {
    let readonly = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || readonly
}

/// A replica-local copy of shared state, kept fresh by [`watch`].
pub trait Watched: Send + Sync {
    /// Another replica (or this one) announced `what` on `<prefix>changed`.
    fn changed(&self, what: &str);
    /// Load everything again (at start, after a lost subscription, and periodically).
    fn reload(&self);
}

/// Keep `target` fresh on a thread of its own until it is dropped.
pub fn watch(pool: &Pool, target: Weak<dyn Watched>) {
    let pool = pool.clone();
    let spawned = std::thread::Builder::new()
        .name("slipway-redis-watch".into())
        .spawn(move || {
            while target.strong_count() > 0 {
                if let Err(e) = subscribe(&pool, &target) {
                    tracing::warn!(error = %e, "shared state: the change feed dropped; resubscribing");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "shared state: the change feed thread could not start");
    }
}

/// One subscription: reload once subscribed, then apply each message, reloading every
/// [`RELOAD_EVERY`]. Returns `Ok` only when the target is gone.
fn subscribe(pool: &Pool, target: &Weak<dyn Watched>) -> Result<(), Unavailable> {
    let mut conn = pool.connect()?;
    let mut sub = conn.as_pubsub();
    sub.subscribe(pool.key(CHANGED))?;
    sub.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut reloaded = Instant::now();
    match target.upgrade() {
        Some(t) => t.reload(),
        None => return Ok(()),
    }
    loop {
        let msg = match sub.get_message() {
            Ok(m) => Some(m),
            Err(e) if e.is_timeout() => None,
            Err(e) => return Err(e.into()),
        };
        let Some(t) = target.upgrade() else {
            return Ok(());
        };
        if let Some(payload) = msg.and_then(|m| m.get_payload::<String>().ok()) {
            t.changed(&payload);
        }
        if reloaded.elapsed() >= RELOAD_EVERY {
            t.reload();
            reloaded = Instant::now();
        }
    }
}
