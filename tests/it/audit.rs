//! The audit trail end to end: the S3 mirror against a real S3-compatible server (moto) with an
//! Object Lock bucket, an outage, `kill -9` of a writer, the Jira and webhook sinks, and
//! `slipway audit verify` / `show` (with the `--git` cross-check).

mod anchors;
mod cli;
mod crash;
mod loki;
mod mirror;
mod servicenow;
mod sinks;
mod tamper;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_infra::s3::{self, S3Mirror, S3Settings, StaticCredentials};
use slipway_infra::sinks::{Backoff, Pacing, SinkMetrics};
use slipway_tests::harness::{Daemon, free_port, resolve_tool};

pub const BUCKET: &str = "slipway-audit";
pub const PREFIX: &str = "trail";

/// `slipway audit verify`'s arguments for the test bucket on `endpoint`.
pub fn bucket_args(endpoint: &str) -> [&str; 6] {
    [
        "--bucket",
        BUCKET,
        "--prefix",
        PREFIX,
        "--endpoint-url",
        endpoint,
    ]
}

/// moto's S3 on loopback, stopped by PID when dropped. Fails (never skips) without moto.
pub async fn moto(dir: &Path, port: Option<u16>) -> Daemon {
    let server = resolve_tool(
        "moto_server",
        "install moto's server: `pip install 'moto[server]'` (scripts/install-deps does this)",
    );
    let port = port.unwrap_or_else(free_port);
    let mut cmd = std::process::Command::new(server);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let log = dir.join(format!(
        "moto-{port}-{}.log",
        chrono::Utc::now().timestamp_micros()
    ));
    Daemon::start("moto_server", cmd, port, "/moto-api/", log).await
}

/// Mirror settings for `endpoint`: COMPLIANCE for `days`, static test credentials, one attempt
/// per request so an outage shows at once.
pub fn settings(endpoint: &str, bucket: &str, days: u32) -> S3Settings {
    let mut s = S3Settings::new(bucket, PREFIX, days);
    s.endpoint_url = Some(endpoint.to_string());
    s.credentials = Some(StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    });
    s.max_attempts = 1;
    s.attempt_timeout = Duration::from_secs(5);
    s
}

pub async fn client(endpoint: &str) -> Client {
    s3::client(&settings(endpoint, BUCKET, 1)).await
}

/// Creates `bucket`, with Object Lock (which turns on versioning for good) when `locked`.
pub async fn create_bucket(client: &Client, bucket: &str, locked: bool) {
    client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(locked)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {bucket}: {}", s3_error(&e)));
}

pub fn s3_error<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug, R>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    use aws_sdk_s3::error::ProvideErrorMetadata as _;
    format!(
        "{} {}",
        e.code().unwrap_or("(no code)"),
        e.message().unwrap_or_default()
    )
}

pub async fn mirror(endpoint: &str, days: u32) -> S3Mirror {
    let settings = settings(endpoint, BUCKET, days);
    S3Mirror::new(s3::client(&settings).await, settings)
}

/// Reopens the spool of `writer` in `dir` once its previous holder has let go (a crash that lost
/// the `cursor`'s file: the cursor starts again from 0).
pub async fn reopen_without_cursor(
    dir: &Path,
    writer: &str,
    cursor: &str,
) -> Arc<slipway_infra::spool::SpoolLog> {
    use slipway_infra::spool::{Spool, SpoolError};
    let stem = slipway_infra::spool::file_stem(writer).unwrap();
    std::fs::remove_file(dir.join(format!("{stem}.{cursor}"))).unwrap();
    let mut reopened = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            match Spool::open(dir, writer, &slipway_tests::harness::audit_signing(writer)) {
                Ok(s) => {
                    reopened = Some(s);
                    true
                }
                Err(SpoolError::Locked { .. }) => false,
                Err(e) => panic!("{e}"),
            }
        })
        .await
    );
    let log = reopened.unwrap().log();
    assert_eq!(log.cursor(cursor).unwrap(), 0);
    log
}

/// Fast retries, so tests see recovery within seconds.
pub fn fast_pacing() -> Pacing {
    Pacing {
        batch: 256,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
        },
        idle_poll: Duration::from_millis(100),
    }
}

/// A record of `kind` for `change` (if any), time now.
pub fn record(kind: EventKind, event: &str, change: Option<&str>) -> AuditRecord {
    let r = AuditRecord::new(kind, event, chrono::Utc::now());
    match change {
        Some(c) => r.with_change_id(c),
        None => r,
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record key under the prefix (checkpoints left out), with how many versions each has.
pub async fn versions(client: &Client, bucket: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(format!("{PREFIX}/"))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing {bucket}: {}", s3_error(&e)));
        for v in page.versions() {
            let key = v.key().unwrap_or_default();
            if !key.ends_with(s3::CHECKPOINT_SUFFIX) {
                *out.entry(key.to_string()).or_default() += 1;
            }
        }
        if page.is_truncated() != Some(true) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// The audit CLI's env for a moto bucket: throwaway credentials, no retries.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]
}

/// Records every metric call, for assertions.
#[derive(Debug, Default)]
pub struct Recorded {
    pub failures: std::sync::Mutex<Vec<(&'static str, &'static str)>>,
    pub delivered: std::sync::atomic::AtomicU64,
    pub max_depth: std::sync::atomic::AtomicU64,
    pub max_lag: std::sync::Mutex<f64>,
}

impl SinkMetrics for Recorded {
    fn depth(&self, _: &'static str, records: u64) {
        self.max_depth
            .fetch_max(records, std::sync::atomic::Ordering::SeqCst);
    }
    fn lag(&self, _: &'static str, seconds: f64) {
        let mut lag = self.max_lag.lock().unwrap();
        *lag = lag.max(seconds);
    }
    fn delivered(&self, _: &'static str, records: u64) {
        self.delivered
            .fetch_add(records, std::sync::atomic::Ordering::SeqCst);
    }
    fn failed(&self, sink: &'static str, reason: &'static str) {
        self.failures.lock().unwrap().push((sink, reason));
    }
}

impl Recorded {
    /// Whether `sink` reported a failure of `reason`.
    pub fn failed_with(&self, sink: &str, reason: &str) -> bool {
        self.failures
            .lock()
            .unwrap()
            .iter()
            .any(|&(s, r)| s == sink && r == reason)
    }
}

pub fn recorded() -> Arc<Recorded> {
    Arc::new(Recorded::default())
}
