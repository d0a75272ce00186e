//! Two real `slipway serve` processes on one Redis, one of them killed (SIGKILL): the other
//! finishes every read the dead one held, each result posted once, and takes over as leader
//! once the dead one's lease expires.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use slipway_emulators::kube::KubeEmulator;
use slipway_emulators::slack::SlackEmulator;
use slipway_tests::harness::{
    BOT_TOKEN, CHANNEL, KUBE_TOKEN, SIGNING_SECRET, audit_writer_args, free_port, write_audit_key,
};
use slipway_tests::redis_server::RedisServer;

const READS: usize = 20;

/// One `slipway serve` process, killed on drop.
struct Serve {
    child: std::process::Child,
    addr: String,
    log: PathBuf,
}

impl Serve {
    async fn start(env: &[(&str, String)], dir: &Path, name: &str) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .arg("serve")
            .env_clear()
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SLIPWAY_LISTEN", &addr)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("slipway serve starts");
        let serve = Serve { child, addr, log };
        for _ in 0..300 {
            let url = format!("http://{}/healthz", serve.addr);
            if slipway_tests::harness::try_http("GET", &url, None)
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the bridge did not start: {}", serve.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A signed slash command; the ack's text.
    async fn command(
        &self,
        slack: &SlackEmulator,
        user: &str,
        command: &str,
        text: &str,
    ) -> String {
        let body = serde_urlencoded::to_string([
            ("team_id", "T0TEST"),
            ("channel_id", CHANNEL),
            ("user_id", user),
            ("command", command),
            ("text", text),
            ("response_url", &slack.new_response_url()),
            ("trigger_id", &slipway_tests::harness::trigger_id("crash")),
        ])
        .unwrap()
        .into_bytes();
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = slipway_bridge::slack::signature::sign(SIGNING_SECRET.as_bytes(), &ts, &body);
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = hyper::Request::post(format!("http://{}/slack/commands", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["text"].as_str().unwrap_or_default().to_string()
    }

    /// SIGKILL: a crash, not a clean shutdown.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

fn verify(spool: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["audit", "verify", "--spool"])
        .arg(spool)
        .args(audit_writer_args())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// How many thread replies (result posts) name `pod`.
fn results_naming(slack: &SlackEmulator, pod: &str) -> usize {
    slack
        .messages()
        .iter()
        .filter(|m| m.thread_ts.is_some() && m.blocks.to_string().contains(pod))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_reads_finish_on_the_other_each_posted_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    let kube = KubeEmulator::start().await;
    for i in 0..READS {
        let ns = format!("slow{i}");
        kube.add_namespace(&ns);
        kube.add_pod(&ns, &format!("pod-{i}-x"), "Running");
        kube.set_slow_namespace(&ns, Duration::from_secs(3));
    }
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, &["staging", "production"], KUBE_TOKEN);
    let common: Vec<(&str, String)> = vec![
        ("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
        ("SLIPWAY_SLACK_API_URL", slack.api_url()),
        (
            "SLIPWAY_POLICY",
            slipway_tests::example_policy().display().to_string(),
        ),
        ("SLIPWAY_KUBECONFIG", kubeconfig.display().to_string()),
        ("SLIPWAY_WORKERS", "4".into()),
        ("SLIPWAY_QUEUE", "64".into()),
        ("SLIPWAY_PER_USER", "64".into()),
        ("SLIPWAY_CLAIM_TIMEOUT", "2s".into()),
        ("SLIPWAY_REDIS_URL", redis.url()),
        (
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            write_audit_key(dir.path()).display().to_string(),
        ),
    ];
    let replica = |name: &str| {
        let mut env = common.clone();
        let state = dir.path().join(format!("state-{name}"));
        env.push(("SLIPWAY_STATE_DIR", state.display().to_string()));
        env.push(("SLIPWAY_AUDIT_WRITER", format!("bridge:{name}")));
        env
    };
    let mut a = Serve::start(&replica("a"), dir.path(), "a").await;
    let b = Serve::start(&replica("b"), dir.path(), "b").await;
    for i in 0..READS {
        let ack = a
            .command(
                &slack,
                "U0VIEWER",
                "/kubectl",
                &format!("get pods -n slow{i}"),
            )
            .await;
        assert!(ack.starts_with("Running"), "{ack}");
    }
    // Both replicas' workers are busy (each holds four three-second reads): kill one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    let deadline = Instant::now() + Duration::from_secs(90);
    while (0..READS).any(|i| results_naming(&slack, &format!("pod-{i}-x")) == 0) {
        assert!(
            Instant::now() < deadline,
            "not every read finished: {}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late duplicates would show up now, if any.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..READS {
        assert_eq!(
            results_naming(&slack, &format!("pod-{i}-x")),
            1,
            "read {i}'s result is posted once"
        );
    }
    assert!(
        slack
            .messages()
            .iter()
            .any(|m| m.blocks.to_string().contains("retried on another replica")),
        "a read the killed replica held shows it was retried"
    );
    // The killed replica's run messages say what became of them: no Cancel button is left
    // pointing at a run nobody holds.
    let stale: Vec<_> = slack
        .messages()
        .into_iter()
        .filter(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("slipway_cancel"))
        .collect();
    assert!(
        stale.is_empty(),
        "run messages still offering Cancel: {stale:#?}"
    );
    assert!(
        slack.messages().iter().any(|m| m
            .blocks
            .to_string()
            .contains("Interrupted: the Slipway replica")),
        "the first attempt's message says it was interrupted"
    );
    for name in ["a", "b"] {
        let (code, text) = verify(&dir.path().join(format!("state-{name}/audit")));
        assert_eq!(code, Some(0), "audit verify over {name}'s spool: {text}");
    }
}

/// How many expiry sweeps a bridge's log shows it ran as leader.
fn sweeps(serve: &Serve) -> usize {
    serve.log_text().matches("expiry sweep as leader").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_sweeps_and_a_successor_takes_over_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let fx = slipway_tests::gitops::start().await;
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    let config = dir.path().join("slipway.yaml");
    std::fs::write(&config, &fx.config_yaml).unwrap();
    let mut common: Vec<(&str, String)> = vec![
        ("SLIPWAY_CONFIG", config.display().to_string()),
        ("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
        ("SLIPWAY_SLACK_API_URL", slack.api_url()),
        (
            "SLIPWAY_POLICY",
            slipway_tests::example_policy().display().to_string(),
        ),
        ("SLIPWAY_REDIS_URL", redis.url()),
        ("SLIPWAY_EXPIRY_INTERVAL", "200ms".into()),
        ("SLIPWAY_LEADER_LEASE", "1500ms".into()),
        (
            "RUST_LOG",
            "info,slipway_bridge::change::expiry=debug".into(),
        ),
        (
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            write_audit_key(dir.path()).display().to_string(),
        ),
    ];
    common.extend(fx.env.iter().cloned());
    let replica = |name: &str| {
        let mut env = common.clone();
        let state = dir.path().join(format!("state-{name}"));
        env.push(("SLIPWAY_STATE_DIR", state.display().to_string()));
        env.push(("SLIPWAY_AUDIT_WRITER", format!("bridge:{name}")));
        env
    };
    let mut a = Serve::start(&replica("a"), dir.path(), "a").await;
    let mut b = Serve::start(&replica("b"), dir.path(), "b").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sweeps(&a) + sweeps(&b) < 5 {
        assert!(
            Instant::now() < deadline,
            "no sweep: {}\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (leader, follower) = if sweeps(&a) > 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(
        sweeps(follower),
        0,
        "only the leader sweeps: {}",
        follower.log_text()
    );
    leader.kill();
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(20);
    while sweeps(follower) < 2 {
        assert!(
            Instant::now() < deadline,
            "no successor: {}",
            follower.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        follower.log_text().contains("took the leader lease"),
        "{}",
        follower.log_text()
    );
}
