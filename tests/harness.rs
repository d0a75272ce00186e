//! `TestApp`: the real bridge router on loopback, with the Slack and Kubernetes emulators, a
//! real kubectl, and a real audit spool. Tests talk to it the way Slack does: signed HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use slipway_bridge::app::{AppState, router};
use slipway_bridge::clock::{Clock, SystemClock, UuidIds};
use slipway_bridge::config::Config;
use slipway_bridge::slack::signature::sign;
use slipway_emulators::kube::KubeEmulator;
use slipway_emulators::slack::SlackEmulator;

pub const SIGNING_SECRET: &str = "test-signing-secret";
pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const KUBE_TOKEN: &str = "kube-test-token";
pub const CHANNEL: &str = "C0OPS";

/// The audit signing key every test writer uses (its seed: 32 bytes of 0x22).
pub const AUDIT_SEED: [u8; 32] = [0x22; 32];

/// The public key of [`AUDIT_SEED`], as `audit.writers` and `--writer` take it.
pub fn audit_public_hex() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&AUDIT_SEED);
    hex::encode(key.verifying_key().as_bytes())
}

/// `--writer` arguments that allow the test writers (`bridge:*`, `runner:*`).
pub fn audit_writer_args() -> Vec<String> {
    let key = audit_public_hex();
    vec![
        "--writer".into(),
        format!("bridge:*={key}"),
        "--writer".into(),
        format!("runner:*={key}"),
    ]
}

/// Writes [`AUDIT_SEED`] to `dir/audit.key` (mode 600), outside any state directory in `dir`.
pub fn write_audit_key(dir: &Path) -> PathBuf {
    let path = dir.join("audit.key");
    std::fs::write(&path, hex::encode(AUDIT_SEED)).expect("write the audit key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the audit key");
    }
    path
}

/// In-process signing with [`AUDIT_SEED`], for `writer` (and every other `bridge:*` or
/// `runner:*` writer).
pub fn audit_signing(writer: &str) -> slipway_infra::audit_signer::AuditSigning {
    let key = ed25519_dalek::SigningKey::from_bytes(&AUDIT_SEED);
    let signer = std::sync::Arc::new(slipway_infra::audit_signer::KeyFileSigner::from_key(key));
    let mut writers = slipway_core::audit::WriterAllowlist::new();
    for pattern in ["bridge:*", "runner:*"] {
        writers
            .allow_text(pattern, &audit_public_hex())
            .expect("test allowlist");
    }
    slipway_infra::audit_signer::AuditSigning::new(signer, Some(writers), writer)
        .expect("test signing")
}

/// Knobs a test may turn before start.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    pub queue: usize,
    pub per_user: usize,
    /// Overrides the policy's `read` timeout.
    pub read_timeout: Option<&'static str>,
    /// Text replacements applied to the example policy, e.g. to add a target alias.
    pub policy_edits: Vec<(&'static str, String)>,
    /// A bridge config file (YAML) for sections beyond the environment, e.g. `aws_profiles`.
    pub config_yaml: Option<String>,
    /// More bridge environment variables, e.g. `SLIPWAY_ALERTMANAGER_URL`.
    pub env: Vec<(&'static str, String)>,
    /// The bridge's clock (default: the system clock), e.g. a fake one that jumps ahead.
    pub clock: Option<Arc<dyn Clock>>,
    /// The loopback port the router listens on (0: any free one), for a test that must name
    /// the bridge's URL in its configuration (Google's push URL).
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 4,
            queue: 32,
            per_user: 2,
            read_timeout: None,
            policy_edits: Vec::new(),
            config_yaml: None,
            env: Vec::new(),
            clock: None,
            port: 0,
        }
    }
}

/// A running bridge with its emulators.
pub struct TestApp {
    pub slack: SlackEmulator,
    pub kube: KubeEmulator,
    pub addr: SocketAddr,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    seq: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Fail with the install hint if a tool is missing (never skip silently).
pub fn require_tool(tool: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()));
    assert!(
        found,
        "{tool} is required for this test but is not on PATH: {hint}"
    );
}

/// `require_tool` for terraform, with where it comes from on this machine image.
pub fn require_terraform() {
    require_tool(
        "terraform",
        "this machine image ships terraform 1.11 at /usr/local/bin/terraform",
    );
}

/// The real program behind a tool on PATH (failing with `hint` if it is missing). A pyenv shim
/// is resolved to its target, because the bridge runs commands with a cleared environment.
pub fn resolve_tool(tool: &str, hint: &str) -> PathBuf {
    require_tool(tool, hint);
    let path = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
        .expect("on PATH");
    let is_shim = std::fs::read_to_string(&path).is_ok_and(|s| s.contains("pyenv"));
    if !is_shim {
        return path;
    }
    let out = std::process::Command::new("pyenv")
        .args(["which", tool])
        .output()
        .expect("pyenv which");
    assert!(out.status.success(), "pyenv which {tool}: {hint}");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A trigger id no other request in this test run carries, as Slack gives each interaction its
/// own (the bridge drops a second delivery of the same trigger as a retry).
pub fn trigger_id(what: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("trigger.{what}.{}.{n}", std::process::id())
}

/// A port that was free a moment ago, for a helper service on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A helper service a test started (moto, Alertmanager…); stopped by its PID when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub port: u16,
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    /// Start `cmd` (its output goes to `log`) and wait until `ready_path` answers on `port`.
    pub async fn start(
        name: &'static str,
        mut cmd: std::process::Command,
        port: u16,
        ready_path: &str,
        log: PathBuf,
    ) -> Daemon {
        let out = std::fs::File::create(&log).expect("daemon log");
        let err = out.try_clone().expect("daemon log");
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut daemon = Daemon {
            name,
            port,
            child,
            log,
        };
        let url = format!("http://127.0.0.1:{port}{ready_path}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((status, _)) = try_http("GET", &url, None).await
                && status < 500
            {
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{name} exited with {status}: {}", daemon.log_text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not become ready on port {port}: {}",
                daemon.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn try_http(method: &str, url: &str, body: Option<String>) -> Option<(u16, String)> {
    try_http_with(method, url, &[], body).await
}

/// [`try_http`] with extra headers (an API token).
pub async fn try_http_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Option<(u16, String)> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// One plain-HTTP request (to a helper service); returns status and body.
pub async fn http(method: &str, url: &str, body: Option<String>) -> (u16, String) {
    try_http(method, url, body)
        .await
        .unwrap_or_else(|| panic!("{method} {url} failed"))
}

/// [`http`] with extra headers.
pub async fn http_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, String) {
    try_http_with(method, url, headers, body)
        .await
        .unwrap_or_else(|| panic!("{method} {url} failed"))
}

fn example_policy_with(opts: &Options, dir: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(crate::example_policy()).expect("example policy");
    if let Some(t) = opts.read_timeout {
        text = text.replacen("read: 60s", &format!("read: {t}"), 1);
    }
    for (from, to) in &opts.policy_edits {
        assert!(
            text.contains(from),
            "policy edit: `{from}` is not in the example policy"
        );
        text = text.replacen(from, to, 1);
    }
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).expect("write policy");
    path
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestApp {
        require_tool(
            "kubectl",
            "this machine image ships kubectl 1.32 at /usr/bin/kubectl",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let slack = SlackEmulator::start(BOT_TOKEN).await;
        let kube = KubeEmulator::start().await;
        kube.add_namespace("web");
        kube.add_namespace("prod");
        kube.add_pod("web", "web-7d9f-abcde", "Running");
        kube.add_pod("web", "web-7d9f-fghij", "Running");
        kube.add_deployment("web", "web", 2, "registry.example/web:1.4.2");
        kube.add_secret(
            "web",
            "db-credentials",
            &[("password", "hunter2-super-secret")],
        );
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, &["staging", "production"], KUBE_TOKEN);
        let policy = example_policy_with(&opts, dir.path());

        let state_dir = dir.path().join("state");
        let mut vars: Vec<(&str, String)> = vec![
            ("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
            ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
            ("SLIPWAY_SLACK_API_URL", slack.api_url()),
            ("SLIPWAY_POLICY", policy.display().to_string()),
            ("SLIPWAY_STATE_DIR", state_dir.display().to_string()),
            ("SLIPWAY_KUBECONFIG", kubeconfig.display().to_string()),
            ("SLIPWAY_WORKERS", opts.workers.to_string()),
            ("SLIPWAY_QUEUE", opts.queue.to_string()),
            ("SLIPWAY_PER_USER", opts.per_user.to_string()),
            (
                "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
                write_audit_key(dir.path()).display().to_string(),
            ),
        ];
        vars.extend(opts.env.iter().cloned());
        let config_file = opts.config_yaml.as_ref().map(|yaml| {
            let path = dir.path().join("slipway.yaml");
            // `$KUBECONFIG` names the emulator's kubeconfig (the bridge's own identity).
            let yaml = yaml.replace("$KUBECONFIG", &kubeconfig.display().to_string());
            std::fs::write(&path, yaml).expect("write config");
            path
        });
        // The test's own variables (added last) win over the defaults.
        // An empty value unsets a default (a test that reads the secret from a store instead).
        let env = move |k: &str| {
            vars.iter()
                .rfind(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let mut config = Config::load_with(config_file.as_deref(), &env).expect("config");
        config.execution.progress_interval = Duration::from_millis(300);
        config.execution.kill_grace = Duration::from_millis(500);
        let clock = opts.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        let state = AppState::new(config, clock, Arc::new(UuidIds)).expect("bridge state");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestApp {
            slack,
            kube,
            addr,
            state,
            dir,
            client,
            seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// POST a body with the given headers; returns status and body text.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> (u16, String) {
        let mut req = hyper::Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// GET a path; returns the status and the body text.
    pub async fn get_status(&self, path: &str) -> (u16, String) {
        let req = hyper::Request::get(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = self.client.request(req).await.expect("response");
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// GET a path; returns the body text.
    pub async fn get(&self, path: &str) -> String {
        let req = hyper::Request::get(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = self.client.request(req).await.expect("response");
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Signed the way Slack signs, with the current time (the bridge's clock's, which a test
    /// may have set).
    pub fn signed_headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let ts = self.state.clock.unix().to_string();
        let sig = sign(SIGNING_SECRET.as_bytes(), &ts, body);
        vec![
            ("x-slack-request-timestamp", ts),
            ("x-slack-signature", sig),
        ]
    }

    /// The form body Slack sends for a slash command.
    pub fn command_body(&self, user: &str, command: &str, text: &str) -> Vec<u8> {
        self.command_body_in(CHANNEL, user, command, text)
    }

    /// [`Self::command_body`] typed in `channel` (`D…` for a direct message).
    pub fn command_body_in(&self, channel: &str, user: &str, command: &str, text: &str) -> Vec<u8> {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = if channel.starts_with('D') {
            "directmessage"
        } else {
            "ops"
        };
        serde_urlencoded::to_string([
            ("token", "deprecated-verification-token"),
            ("team_id", "T0TEST"),
            ("team_domain", "test"),
            ("channel_id", channel),
            ("channel_name", name),
            ("user_id", user),
            ("user_name", &user.to_lowercase()),
            ("command", command),
            ("text", text),
            ("api_app_id", "A0SLIPWAY"),
            ("response_url", &self.slack.new_response_url()),
            ("trigger_id", &trigger_id(&format!("cmd{n}"))),
        ])
        .expect("form")
        .into_bytes()
    }

    /// Run a slash command as `user`; returns the HTTP status and the ack's JSON.
    pub async fn command(&self, user: &str, line: &str) -> (u16, Value) {
        self.command_in(CHANNEL, user, line).await
    }

    /// [`Self::command`] typed in `channel`.
    pub async fn command_in(&self, channel: &str, user: &str, line: &str) -> (u16, Value) {
        let (command, text) = line.split_once(' ').unwrap_or((line, ""));
        let body = self.command_body_in(channel, user, command, text);
        let headers = self.signed_headers(&body);
        let (status, text) = self.post_raw("/slack/commands", body, &headers).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The ack text of a command (asserting HTTP 200).
    pub async fn ack(&self, user: &str, line: &str) -> String {
        let (status, v) = self.command(user, line).await;
        assert_eq!(status, 200, "{line}: {v}");
        v["text"].as_str().unwrap_or_default().to_string()
    }

    /// Click a button on a message, as `user`.
    pub async fn click(&self, user: &str, action_id: &str, value: &str, message_ts: &str) -> u16 {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": user, "team_id": "T0TEST"},
            "team": {"id": "T0TEST"},
            "api_app_id": "A0SLIPWAY",
            "trigger_id": trigger_id("click"),
            "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL},
            "channel": {"id": CHANNEL},
            "response_url": self.slack.new_response_url(),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "slipway_run", "value": value, "action_ts": "1"}],
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .expect("form")
            .into_bytes();
        let headers = self.signed_headers(&body);
        self.post_raw("/slack/interactivity", body, &headers)
            .await
            .0
    }

    /// The channel message whose first block mentions `needle`, once it exists.
    pub async fn wait_message(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> Option<slipway_emulators::slack::Message> {
        let found = self
            .slack
            .wait_until(timeout, |s| {
                s.messages()
                    .iter()
                    .any(|m| m.thread_ts.is_none() && m.blocks.to_string().contains(needle))
            })
            .await;
        if !found {
            return None;
        }
        self.slack
            .messages()
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.blocks.to_string().contains(needle))
    }

    /// Wait until the main message `ts` says the run is over (no Cancel button), and return its
    /// final version plus the thread replies.
    pub async fn wait_finished(
        &self,
        ts: &str,
        timeout: Duration,
    ) -> (
        slipway_emulators::slack::Message,
        Vec<slipway_emulators::slack::Message>,
    ) {
        let ts_owned = ts.to_string();
        let done =
            self.slack
                .wait_until(timeout, |s| {
                    let main_done = s.messages().iter().any(|m| {
                        m.ts == ts_owned && !m.blocks.to_string().contains("slipway_cancel")
                    });
                    main_done && !s.thread(CHANNEL, &ts_owned).is_empty()
                })
                .await;
        assert!(
            done,
            "run {ts} did not finish within {timeout:?}: {:#?}",
            self.slack.messages()
        );
        let main = self
            .slack
            .messages()
            .into_iter()
            .find(|m| m.ts == ts)
            .expect("main message");
        (main, self.slack.thread(CHANNEL, ts))
    }

    /// Every audit record written so far.
    pub fn audit(&self) -> Vec<slipway_core::audit::AuditRecord> {
        slipway_infra::spool::read_all(&self.dir.path().join("state/audit")).expect("audit spool")
    }
}

/// The bridge's Socket Mode connection to the emulator, beside its HTTP router.
#[derive(Debug)]
pub struct SocketMode {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl SocketMode {
    /// Close the connection; the Socket Mode loop must end cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let ended = self.task.await.expect("the Socket Mode task");
        assert!(ended.is_ok(), "{ended:?}");
    }
}

impl TestApp {
    /// Connect the bridge over Socket Mode (the app-level token set in the emulator), once the
    /// emulator sees the connection.
    pub async fn socket_mode(&self) -> SocketMode {
        const APP_TOKEN: &str = "xapp-1-test-app-token";
        self.slack.set_app_token(APP_TOKEN);
        let token = slipway_bridge::config::Secret::new(APP_TOKEN);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            slipway_bridge::app::socket::run(state, &token, stopped).await
        });
        let connected = self
            .slack
            .wait_until(Duration::from_secs(30), |s| s.socket_connections() > 0)
            .await;
        assert!(connected, "socket connected");
        SocketMode { stop, task }
    }

    /// The requests that reached the Kubernetes API for objects (the bridge's discovery of
    /// resource kinds in the background aside).
    pub fn kube_object_requests(&self) -> Vec<slipway_emulators::kube::RecordedRequest> {
        self.kube
            .requests()
            .into_iter()
            .filter(|r| {
                let path = r.path.split('?').next().unwrap_or_default();
                let segments = path.trim_matches('/').split('/').count();
                let discovery = matches!(path, "/api" | "/apis" | "/api/v1" | "/version")
                    || (path.starts_with("/apis/") && segments == 3);
                !discovery
            })
            .collect()
    }
}
