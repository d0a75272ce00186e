//! Audit trail throughput: durable appends per second through `AuditWriter` (group commit, one
//! fdatasync per batch) at several numbers of concurrent callers, then the S3 mirror's catch-up
//! time after an outage, against moto's server on loopback.
//!
//! `cargo bench -p slipway-infra --bench audit` (moto: `pip install 'moto[server]'`; without it
//! the catch-up part is skipped with a message).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_core::audit::{AuditRecord, EventKind};
use slipway_infra::audit_signer::{AuditSigning, KeyFileSigner};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::{self, S3Mirror, S3Settings, StaticCredentials};
use slipway_infra::sinks::{self, Backoff, NoMetrics, Pacing};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// An in-memory key: the bench measures the spool, the signature is per batch either way.
fn signing(writer: &str) -> AuditSigning {
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    AuditSigning::new(Arc::new(KeyFileSigner::from_key(key)), None, writer).unwrap()
}

/// A record about the size of a real one (~700 bytes as JSON).
fn record(i: u64) -> AuditRecord {
    AuditRecord::new(EventKind::Command, format!("bench-{i}"), chrono::Utc::now()).with_details(
        serde_json::json!({ "i": i, "text": "/kubectl get pods -n web", "pad": "x".repeat(400) }),
    )
}

/// Appends `n` records from `callers` concurrent tasks; returns records per second.
async fn appends(writer: &AuditWriter, n: u64, callers: usize) -> f64 {
    let permits = Arc::new(Semaphore::new(callers));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(n).unwrap());
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            w.record(record(i)).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / started.elapsed().as_secs_f64();
    rate
}

fn moto_server() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("pyenv")
        .args(["which", "moto_server"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(o) = out {
        return Some(String::from_utf8_lossy(&o.stdout).trim().into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("moto_server"))
            .find(|p| p.is_file())
    })
}

/// Writes `n` records while S3 is unreachable, then starts the mirror and times the catch-up.
#[allow(clippy::too_many_lines)]
async fn catch_up(n: u64) {
    let Some(server) = moto_server() else {
        println!("mirror catch-up: skipped, moto_server not found (pip install 'moto[server]')");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut moto = std::process::Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut settings = S3Settings::new("slipway-bench", "trail", 1);
    settings.endpoint_url = Some(endpoint);
    settings.credentials = Some(StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    });
    let client = s3::client(&settings).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .create_bucket()
        .bucket("slipway-bench")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let writer = AuditWriter::start(
        dir.path(),
        "bridge:bench-mirror",
        &signing("bridge:bench-mirror"),
    )
    .unwrap();
    appends(&writer, n, 64).await; // the outage: nothing is mirrored yet
    let stop = CancellationToken::new();
    let pacing = Pacing {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
        ..Pacing::default()
    };
    let started = Instant::now();
    sinks::spawn(
        S3Mirror::new(client, settings),
        writer.log(),
        Arc::new(NoMetrics),
        pacing,
        stop.clone(),
    );
    while writer.depth() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    let _ = moto.kill();
    let _ = moto.wait();
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "mirror catch-up: {n} records to moto in {:.2} s ({rate:.0} objects/s, 16 uploads in flight)",
        took.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("durable appends through AuditWriter (each acknowledged after its fdatasync):");
        for (callers, n) in [(1, 2_000), (8, 10_000), (64, 40_000), (256, 40_000)] {
            let dir = tempfile::tempdir().unwrap();
            let writer =
                AuditWriter::start(dir.path(), "bridge:bench", &signing("bridge:bench")).unwrap();
            let rate = appends(&writer, n, callers).await;
            println!("  {callers:>3} concurrent callers: {n:>6} records, {rate:>8.0} appends/s");
        }
        catch_up(2_000).await;
    });
}
