//! Soak: two `slipway serve` replicas sharing one real Redis, driven by concurrent users for
//! minutes, then every command accounted for (issue 19). Not a CI test: it takes ten minutes.
//!
//! `cargo bench -p slipway-bridge --bench soak` (needs a release build of the binary:
//! `cargo build --release -p slipway-bridge --no-default-features --bin slipway`, or
//! `SLIPWAY_BIN`), with `redis-server` and `kubectl` on PATH.
//!
//! - Slack and Kubernetes are this process's emulators; the replicas are child processes.
//! - `SLIPWAY_SOAK_USERS` (default 50) users, each its own identity in the policy, send
//!   `/kubectl get pods -n web -l soak=<n>` (a read that runs kubectl) in a loop, alternating
//!   between the replicas, with `SLIPWAY_SOAK_THINK_MS` (default 3000) between an ack and the
//!   next command, for `SLIPWAY_SOAK_SECS` (default 600).
//! - Reported: acks (and their p50/p99/max), commands refused as busy, and, after a drain,
//!   every accepted read's run message: lost (none), duplicated (more than one), unfinished;
//!   Redis `used_memory` and key count at the end.

#![allow(
    clippy::too_many_lines,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_emulators::kube::KubeEmulator;
use slipway_emulators::slack::SlackEmulator;

const SECRET: &str = "soak-signing-secret-0123456789";
const BOT: &str = "xoxb-soak";
const CHANNEL: &str = "C0SOAK";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example policy plus one viewer identity per soak user.
fn policy(dir: &Path, users: u64) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("policy/slipway.yaml")).unwrap();
    let mut extra = String::new();
    for n in 0..users {
        let _ = write!(
            extra,
            "    - slack: [U0SOAK{n:03}]\n      subject: soak{n:03}@example.com\n      \
             email: soak{n:03}@example.com\n      groups: [engineering]\n"
        );
    }
    text = text.replacen(
        "identities:\n  provider: static\n  users:\n",
        &format!("identities:\n  provider: static\n  users:\n{extra}"),
        1,
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Replica {
    child: Child,
    url: String,
}

fn start_replica(
    dir: &Path,
    name: &str,
    redis: &str,
    slack: &SlackEmulator,
    kubeconfig: &Path,
    policy: &Path,
) -> Replica {
    let bin = std::env::var("SLIPWAY_BIN")
        .map_or_else(|_| root().join("target/release/slipway"), PathBuf::from);
    let port = free_port();
    let key = dir.join("audit.key");
    if !key.exists() {
        std::fs::write(&key, "33".repeat(32)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(&bin)
        .arg("serve")
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLIPWAY_STATE_DIR", dir.join(name))
        .env("SLIPWAY_AUDIT_WRITER", name)
        .env("SLIPWAY_AUDIT_SIGNING_KEY_FILE", &key)
        .env("SLIPWAY_REDIS_URL", redis)
        .env("SLIPWAY_SLACK_SIGNING_SECRET", SECRET)
        .env("SLIPWAY_SLACK_BOT_TOKEN", BOT)
        .env("SLIPWAY_SLACK_API_URL", slack.api_url())
        .env("SLIPWAY_POLICY", policy)
        .env("SLIPWAY_KUBECONFIG", kubeconfig)
        .env("SLIPWAY_WORKERS", "8")
        .env("SLIPWAY_QUEUE", "256")
        .env("SLIPWAY_PER_USER", "2")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it: see the header)", bin.display()));
    Replica {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A tiny signed-POST client over hyper (the bridge's own dependency).
mod signed_client {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    pub struct Client(hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>);

    impl Client {
        pub fn new() -> Self {
            Self(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http())
        }

        pub async fn command(&self, base: &str, user: &str, text: &str) -> (u16, String) {
            let trigger = uuid::Uuid::new_v4();
            let body = serde_urlencoded::to_string([
                ("command", "/kubectl"),
                ("text", text),
                ("user_id", user),
                ("team_id", "T0SOAK"),
                ("channel_id", super::CHANNEL),
                ("response_url", ""),
                ("trigger_id", &format!("soak.{trigger}")),
            ])
            .unwrap();
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = slipway_bridge::slack::signature::sign(
                super::SECRET.as_bytes(),
                &ts,
                body.as_bytes(),
            );
            let req = hyper::Request::post(format!("{base}/slack/commands"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            match self.0.request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let bytes = resp
                        .into_body()
                        .collect()
                        .await
                        .map(http_body_util::Collected::to_bytes);
                    (
                        status,
                        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned(),
                    )
                }
                Err(e) => (0, e.to_string()),
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn redis_info(url: &str) -> (String, u64) {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    (used, keys)
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(soak());
}

async fn soak() {
    let secs = env_num("SLIPWAY_SOAK_SECS", 600);
    let users = env_num("SLIPWAY_SOAK_USERS", 50);
    let think = Duration::from_millis(env_num("SLIPWAY_SOAK_THINK_MS", 3000));
    let dir = tempfile::tempdir().unwrap();
    let rport = free_port();
    let mut redis = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &rport.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    std::thread::sleep(Duration::from_millis(300));
    let redis_url = format!("redis://127.0.0.1:{rport}/0");
    let slack = SlackEmulator::start(BOT).await;
    let kube = KubeEmulator::start().await;
    kube.add_namespace("web");
    kube.add_pod("web", "web-1", "Running");
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, &["staging", "production"], "soak-kube-token");
    let policy = policy(dir.path(), users);
    let mut replicas: Vec<Replica> = ["soak-a", "soak-b"]
        .iter()
        .map(|n| start_replica(dir.path(), n, &redis_url, &slack, &kubeconfig, &policy))
        .collect();
    let client = Arc::new(signed_client::Client::new());
    for r in &replicas {
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.command(&r.url, "U0SOAK000", "version").await.0 != 200 {
            assert!(Instant::now() < deadline, "{} did not start", r.url);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!("soak: {users} users, {secs} s, think {think:?}, 2 replicas on one Redis");
    let urls: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.url.clone()).collect());
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for u in 0..users {
        let (client, urls) = (client.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let user = format!("U0SOAK{u:03}");
            let mut acks = Vec::new();
            let mut accepted = Vec::new();
            let (mut busy, mut failed) = (0u64, 0u64);
            let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
            let mut k = 0u64;
            while Instant::now() < end {
                let tag = format!("{u}x{k}");
                let url = &urls[usize::try_from(k % 2).unwrap()];
                let started = Instant::now();
                let text = format!("get pods -n web -l soak={tag}");
                let (status, body) = client.command(url, &user, &text).await;
                acks.push(started.elapsed());
                if status == 200 && body.contains("Running") {
                    accepted.push(tag);
                } else if body.contains("busy") || body.contains("already") {
                    busy += 1;
                    let text = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["text"].as_str().map(str::to_string))
                        .unwrap_or(body);
                    *refusals
                        .entry(text.chars().take(90).collect::<String>())
                        .or_insert(0u64) += 1;
                } else {
                    failed += 1;
                }
                k += 1;
                tokio::time::sleep(think).await;
            }
            (acks, accepted, busy, failed, refusals)
        }));
    }
    let mut acks = Vec::new();
    let mut accepted = Vec::new();
    let (mut busy, mut failed) = (0, 0);
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let (a, acc, b, f, r) = t.await.unwrap();
        acks.extend(a);
        accepted.extend(acc);
        busy += b;
        failed += f;
        for (k, n) in r {
            *refusals.entry(k).or_default() += n;
        }
    }
    // Drain: every accepted read should finish.
    let drain = Instant::now() + Duration::from_secs(120);
    let count_runs = |slack: &SlackEmulator| {
        let mut runs: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for m in slack.messages().iter().filter(|m| m.thread_ts.is_none()) {
            let text = m.blocks.to_string();
            if let Some(i) = text.find("soak=") {
                let tag: String = text[i + 5..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                let e = runs.entry(tag).or_default();
                e.0 += 1;
                if !text.contains("slipway_cancel") {
                    e.1 += 1;
                }
            }
        }
        runs
    };
    let mut runs = count_runs(&slack);
    while Instant::now() < drain
        && accepted
            .iter()
            .any(|t| runs.get(t).is_none_or(|r| r.1 == 0))
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        runs = count_runs(&slack);
    }
    acks.sort();
    let lost = accepted.iter().filter(|t| !runs.contains_key(*t)).count();
    let duplicated = runs.values().filter(|r| r.0 > 1).count();
    let unfinished = accepted
        .iter()
        .filter(|t| runs.get(*t).is_some_and(|r| r.1 == 0))
        .count();
    let (memory, keys) = redis_info(&redis_url);
    println!(
        "acks {} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms); accepted reads {}, busy {busy}, other {failed}",
        acks.len(),
        percentile(&acks, 0.50).as_secs_f64() * 1e3,
        percentile(&acks, 0.99).as_secs_f64() * 1e3,
        acks.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        accepted.len(),
    );
    println!(
        "runs: lost {lost}, duplicated {duplicated}, unfinished {unfinished}; redis used_memory {memory}, keys {keys}"
    );
    for (text, n) in &refusals {
        println!("  refused {n}x: {text}");
    }
    for r in &mut replicas {
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
    let _ = redis.kill();
    let _ = redis.wait();
}
