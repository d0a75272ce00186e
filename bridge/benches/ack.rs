//! Signed slash-command ack latency and throughput on loopback, at increasing offered load.
//!
//! `cargo bench -p slipway-bridge --bench ack`
//!
//! The real router runs in-process with a real audit spool (group-committed fsync) in a temp
//! dir; a load generator on the same 2 cores sends signed `/slipway whoami` and denied
//! `/kubectl` commands at fixed rates (open loop) and records each request's latency.

// Benchmark scenarios read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use slipway_bridge::app::{AppState, router};
use slipway_bridge::clock::{SystemClock, UuidIds};
use slipway_bridge::config::Config;
use slipway_bridge::slack::signature::sign;

const SECRET: &str = "bench-signing-secret";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let vars = [
        ("SLIPWAY_SLACK_SIGNING_SECRET", SECRET.to_string()),
        (
            "SLIPWAY_POLICY",
            root.join("policy/slipway.yaml").display().to_string(),
        ),
        ("SLIPWAY_STATE_DIR", dir.path().display().to_string()),
        (
            "SLIPWAY_SLACK_API_URL",
            "http://127.0.0.1:9/api/".to_string(),
        ),
    ];
    let config = Config::load_with(None, &|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .expect("config");
    let state = AppState::new(config, Arc::new(SystemClock), Arc::new(UuidIds)).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    let client = Arc::new(client);
    println!("| offered req/s | sent | ok | p50 | p99 | max | achieved req/s |");
    println!("|---|---|---|---|---|---|---|");
    let mut seq = 0u64;
    for rate in [500u64, 1000, 2000, 3000, 5000] {
        let secs = 3;
        let total = rate * secs;
        let interval = Duration::from_nanos(1_000_000_000 / rate);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for i in 0..total {
            let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due.into()).await;
            seq += 1;
            let (command, text, user) = if seq.is_multiple_of(2) {
                ("/slipway", "whoami", "U0VIEWER")
            } else {
                ("/kubectl", "get pods -n prod", "U0VIEWER")
            };
            let body = format!(
                "command={}&text={}&user_id={user}&user_name=b&team_id=T1&channel_id=C1&response_url=&trigger_id=t{seq}",
                command.replace('/', "%2F"),
                text.replace(' ', "+")
            );
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = sign(SECRET.as_bytes(), &ts, body.as_bytes());
            let req = hyper::Request::post(format!("http://{addr}/slack/commands"))
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                (t.elapsed(), ok)
            }));
        }
        let mut lat = Vec::with_capacity(tasks.len());
        let mut ok = 0;
        for t in tasks {
            if let Ok((d, good)) = t.await {
                lat.push(d);
                ok += usize::from(good);
            }
        }
        let wall = started.elapsed();
        lat.sort_unstable();
        let pct = |per_mille: usize| {
            lat.get((lat.len() * per_mille / 1000).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        println!(
            "| {rate} | {total} | {ok} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} |",
            ms(pct(500)),
            ms(pct(990)),
            ms(lat.last().copied().unwrap_or_default()),
            f64::from(u32::try_from(ok).unwrap_or(u32::MAX)) / wall.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
