//! `/deploy … --apply` → pull request opened, on a generated GitOps repository of 100k files and
//! 20k commits, side by side with `git clone --depth 1` + edit + commit + push of the same repo.
//!
//! `cargo bench -p slipway-bridge --bench pr_open`
//!
//! - The repository comes from `make-gitops-repo.py` (python3; path in `SLIPWAY_BENCH_GENERATOR`,
//!   default `/work/shared/bench/make-gitops-repo.py`), generated once into
//!   `target/bench-cache/` and reused. A last commit of our own adds
//!   `apps/api/staging/kustomization.yaml`, the file `/deploy api staging` bumps.
//! - The GitHub emulator (plus the Slack emulator the bridge posts its summary to) runs in a child
//!   process, this binary re-executed with `--serve-emulators`, so the peak RSS read here
//!   (`VmHWM`) is the bridge's alone. The child answers one-line commands on stdin.
//! - The bridge is the real router and `AppState` with its change service, configured from the
//!   environment the way `slipway serve` is. Its mirror starts empty: the first command (a dry
//!   run) clones it, which is reported separately, and the peak RSS is reset after it
//!   (`/proc/self/clear_refs`), so the figure is the steady state of opening PRs.
//! - Each measured request is a signed `/deploy api staging v2.<k>.0 --apply` slash command with
//!   a new version, timed from sending it to the PR existing in the emulator (and, second column,
//!   to the Slack summary). Between requests the change lock `refs/slipway/locks/<target>` is
//!   deleted in the emulator (untimed), so every request opens a new PR rather than advancing the
//!   previous one.
//! - Then the flow's git and GitHub steps run one at a time through the same `slipway_infra`
//!   calls, on the bridge's mirror, to show where the time goes.
//! - The baseline runs the git CLI against the same emulator and repository: `git clone --depth 1`,
//!   edit the same file, `git commit -a`, `git push` to a new branch. Every checkout is kept until
//!   the end: right after 100k files are deleted, ext4 skips the freed inodes for a while and the
//!   next checkout runs ten times slower, which would measure the filesystem, not git.
//!
//! `SLIPWAY_BENCH_ITERATIONS` (default 15) sets how many PRs are timed, and
//! `SLIPWAY_BENCH_BASELINE_ITERATIONS` (default the same; 0 skips it) how many clone+push runs.

// Benchmark scenarios read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_bridge::app::{AppState, router};
use slipway_bridge::clock::{SystemClock, UuidIds};
use slipway_bridge::config::Config;
use slipway_bridge::slack::signature::sign;

const FILES: u32 = 100_000;
const COMMITS: u32 = 20_000;
const SEED: u32 = 1;
const DEFAULT_GENERATOR: &str = "/work/shared/bench/make-gitops-repo.py";
const MANIFEST: &str = "apps/api/staging/kustomization.yaml";
const LOCK_REF: &str = "refs/slipway/locks/service-api-staging";

const OWNER: &str = "acme";
const REPO: &str = "gitops";
const APP_ID: u64 = 4242;
const SLACK_SECRET: &str = "bench-signing-secret";
const BOT_TOKEN: &str = "xoxb-bench-bot-token";
const SIGNING_KEY_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const USER: &str = "U0OPERATOR";
const CHANNEL: &str = "C0OPS";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-emulators") {
        let (Some(repo), Some(key)) = (args.get(2), args.get(3)) else {
            panic!("usage: pr_open --serve-emulators <bare repo> <app key pem file>");
        };
        serve_emulators(Path::new(repo), Path::new(key));
        return;
    }
    // `cargo test --benches` runs bench binaries without `--bench`: this one takes minutes.
    if !args.iter().any(|a| a == "--bench") {
        println!("pr_open: run it with `cargo bench -p slipway-bridge --bench pr_open`");
        return;
    }
    let iterations = std::env::var("SLIPWAY_BENCH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let baseline_iterations = std::env::var("SLIPWAY_BENCH_BASELINE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(iterations);
    rt.block_on(bench(iterations, baseline_iterations));
}

// ---------------------------------------------------------------------------------------------
// The repository

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `git` with no user or system configuration, a fixed identity, and never a prompt.
fn git_cmd() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, panicking with its stderr on failure; returns trimmed stdout.
fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git_in(git_dir: &Path, args: &[&str]) -> String {
    let mut cmd = git_cmd();
    cmd.arg("--git-dir").arg(git_dir).args(args);
    run_ok(cmd, &format!("git {}", args.join(" ")))
}

/// The manifest `/deploy api staging` renders (templates/manifests/kustomization.yaml.j2).
fn kustomization(tag: &str) -> String {
    format!(
        "# Managed by Slipway: /deploy api staging sets the image below.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/api\n    newName: registry.example/api\n    newTag: \"{tag}\"\n"
    )
}

/// The generated repository, from the cache or made now (once: it takes a minute or so).
fn gitops_repo() -> PathBuf {
    let cache = workspace_root().join("target/bench-cache");
    let dest = cache.join(format!("gitops-{FILES}f-{COMMITS}c-s{SEED}.git"));
    let ready = dest.join("slipway-bench-ready");
    if ready.is_file() {
        eprintln!("pr_open: reusing {}", dest.display());
        return dest;
    }
    if dest.exists() {
        // An interrupted generation.
        std::fs::remove_dir_all(&dest).expect("removing a partial bench repository");
    }
    std::fs::create_dir_all(&cache).expect("creating target/bench-cache");
    let generator = std::env::var_os("SLIPWAY_BENCH_GENERATOR")
        .map_or_else(|| PathBuf::from(DEFAULT_GENERATOR), PathBuf::from);
    assert!(
        generator.is_file(),
        "the repository generator {} does not exist; set SLIPWAY_BENCH_GENERATOR to make-gitops-repo.py",
        generator.display()
    );
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 is required to generate the benchmark repository, and `python3 --version` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "python3 is required to generate the benchmark repository ({}), but it could not be run: {e}; install Python 3 and put python3 on PATH",
            generator.display()
        ),
    }
    eprintln!(
        "pr_open: generating {FILES} files / {COMMITS} commits into {} (once; about a minute)…",
        dest.display()
    );
    let t = Instant::now();
    let mut cmd = Command::new("python3");
    cmd.arg(&generator)
        .arg(&dest)
        .args(["--files", &FILES.to_string()])
        .args(["--commits", &COMMITS.to_string()])
        .args(["--seed", &SEED.to_string()])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    eprintln!("pr_open: {}", run_ok(cmd, "make-gitops-repo.py"));

    // The generator lays services out as environments/<env>/<svc>/; the deploy flow renders
    // apps/<svc>/<env>/kustomization.yaml. Add it (and its base) in one last commit, without a
    // working tree: a temporary index, write-tree, commit-tree, update-ref.
    let scratch = tempfile::tempdir().expect("tempdir");
    let index = scratch.path().join("index");
    let blob = |content: &str| {
        let file = scratch.path().join("blob");
        std::fs::write(&file, content).expect("write blob");
        git_in(&dest, &["hash-object", "-w", &file.display().to_string()])
    };
    let manifest = blob(&kustomization("v1.0.0"));
    let base = blob(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: registry.example/api\n",
    );
    let with_index = |args: &[&str]| {
        let mut cmd = git_cmd();
        cmd.arg("--git-dir")
            .arg(&dest)
            .args(args)
            .env("GIT_INDEX_FILE", &index);
        run_ok(cmd, &format!("git {}", args.join(" ")))
    };
    let parent = git_in(&dest, &["rev-parse", "refs/heads/main"]);
    with_index(&["read-tree", &parent]);
    with_index(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{manifest},{MANIFEST}"),
    ]);
    with_index(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{base},apps/api/base/deployment.yaml"),
    ]);
    let tree = with_index(&["write-tree"]);
    let mut cmd = git_cmd();
    cmd.arg("--git-dir")
        .arg(&dest)
        .args([
            "commit-tree",
            &tree,
            "-p",
            &parent,
            "-m",
            "Add apps/api (the Slipway deploy layout)",
        ])
        .env("GIT_AUTHOR_DATE", "1701200000 +0000")
        .env("GIT_COMMITTER_DATE", "1701200000 +0000");
    let commit = run_ok(cmd, "git commit-tree");
    git_in(&dest, &["update-ref", "refs/heads/main", &commit, &parent]);
    std::fs::write(
        &ready,
        format!("make-gitops-repo.py --files {FILES} --commits {COMMITS} --seed {SEED}, plus {MANIFEST}\n"),
    )
    .expect("marking the bench repository ready");
    eprintln!(
        "pr_open: repository ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    dest
}

// ---------------------------------------------------------------------------------------------
// The emulators' process

/// What the child prints once it serves.
#[derive(Debug)]
struct Served {
    api_url: String,
    git_url: String,
    slack_api_url: String,
    installation_id: u64,
    token: String,
}

/// The child process: GitHub and Slack emulators, driven over stdin/stdout.
struct Emulators {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    served: Served,
}

impl Emulators {
    fn start(repo: &Path, key_file: &Path) -> Emulators {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg("--serve-emulators")
            .arg(repo)
            .arg(key_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the emulators' process");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("emulators: ready line");
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("emulators: no {k} in {line:?}"))
                .to_string()
        };
        let served = Served {
            api_url: field("api"),
            git_url: field("git"),
            slack_api_url: field("slack"),
            installation_id: field("installation").parse().expect("installation id"),
            token: field("token"),
        };
        Emulators {
            child,
            stdin,
            stdout,
            served,
        }
    }

    /// Sends one command and returns the child's one-line answer.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("emulators: write");
        self.stdin.flush().expect("emulators: flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("emulators: read");
        line.trim_end().to_string()
    }

    fn ask_ok(&mut self, command: &str) -> String {
        let answer = self.ask(command);
        let rest = answer.strip_prefix("ok").unwrap_or_else(|| {
            let diag = self.ask("responses");
            panic!("emulators: `{command}` → {answer}; Slack responses: {diag}")
        });
        rest.trim().to_string()
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Child::kill signals exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: serve, then answer commands until `quit` or EOF.
///
/// - `wait-pr <n>`: once `n` PRs have been opened (`POST …/pulls` answered 201) → `ok`
/// - `wait-slack <n>`: once `n` messages were posted (`chat.postMessage`) → `ok`
/// - `response-url` → `ok <url>`; `wait-response <n>` → `ok <last response body>`
/// - `release <ref>`: delete the ref in the served repository → `ok`
/// - `responses` → every `response_url` body so far, on one line
fn serve_emulators(repo: &Path, key_file: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let key = std::fs::read_to_string(key_file).expect("app key");
        let gh = slipway_emulators::github::GitHubEmulator::start().await;
        let dir = gh.import_repo(OWNER, REPO, repo);
        let installation = gh.add_app(APP_ID, &key, &[(OWNER, REPO)]);
        let token = gh.installation_token(installation);
        let slack = slipway_emulators::slack::SlackEmulator::start(BOT_TOKEN).await;
        println!(
            "ready api={} git={} slack={} installation={installation} token={token}",
            gh.api_url(),
            gh.git_url(OWNER, REPO),
            slack.api_url()
        );
        let pulls_path = format!("/repos/{OWNER}/{REPO}/pulls");
        let opened = |gh: &slipway_emulators::github::GitHubEmulator| {
            gh.calls()
                .iter()
                .filter(|c| c.method == "POST" && c.path == pulls_path && c.status == 201)
                .count()
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = || Instant::now() + Duration::from_secs(120);
        while let Some(line) = rx.recv().await {
            let mut words = line.split_whitespace();
            let verb = words.next().unwrap_or_default();
            let arg = words.next().unwrap_or_default();
            let n: usize = arg.parse().unwrap_or(0);
            let answer = match verb {
                "wait-pr" | "wait-slack" | "wait-response" => {
                    let until = deadline();
                    loop {
                        let have = match verb {
                            "wait-pr" => opened(&gh),
                            // Calls, not messages: cheap to copy every millisecond.
                            "wait-slack" => slack
                                .calls()
                                .iter()
                                .filter(|c| c.method == "chat.postMessage" && c.ok)
                                .count(),
                            _ => slack.responses().len(),
                        };
                        if have >= n {
                            let detail = if verb == "wait-response" {
                                slack
                                    .responses()
                                    .last()
                                    .map(|r| r.body.to_string())
                                    .unwrap_or_default()
                            } else {
                                String::new()
                            };
                            break format!("ok {detail}");
                        }
                        if Instant::now() > until {
                            break format!("timeout: {have} of {n}");
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                "response-url" => format!("ok {}", slack.new_response_url()),
                "release" => {
                    let out = git_cmd()
                        .arg("--git-dir")
                        .arg(&dir)
                        .args(["update-ref", "-d", arg])
                        .output();
                    match out {
                        Ok(o) if o.status.success() => "ok".to_string(),
                        Ok(o) => format!("error {}", String::from_utf8_lossy(&o.stderr).trim()),
                        Err(e) => format!("error {e}"),
                    }
                }
                "responses" => slack
                    .responses()
                    .iter()
                    .map(|r| r.body.to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
                "quit" => break,
                other => format!("error unknown command {other:?}"),
            };
            println!("{}", answer.replace('\n', " "));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The measurement

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident set size of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    kib_to_mib(status_kb("VmHWM:"))
}

fn rss_mib() -> f64 {
    kib_to_mib(status_kb("VmRSS:"))
}

fn kib_to_mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX)) / 1024.0
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort_unstable();
    v
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m >= 10_000.0 {
        format!("{:.1} s", m / 1000.0)
    } else if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

struct Bridge {
    addr: std::net::SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _state: AppState,
    dir: tempfile::TempDir,
}

impl Bridge {
    async fn start(served: &Served, key_pem: &str) -> Bridge {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = dir.path().join("slipway.yaml");
        std::fs::write(
            &config_file,
            "gitops:\n  services:\n    api:\n      repo: acme/api\n      image: registry.example/api\n",
        )
        .expect("config file");
        let vars: Vec<(&str, String)> = vec![
            ("SLIPWAY_SLACK_SIGNING_SECRET", SLACK_SECRET.into()),
            ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
            ("SLIPWAY_SLACK_API_URL", served.slack_api_url.clone()),
            (
                "SLIPWAY_POLICY",
                workspace_root()
                    .join("policy/slipway.yaml")
                    .display()
                    .to_string(),
            ),
            (
                "SLIPWAY_STATE_DIR",
                dir.path().join("state").display().to_string(),
            ),
            ("SLIPWAY_GITOPS_REPO", format!("{OWNER}/{REPO}")),
            ("SLIPWAY_GITOPS_GIT_URL", served.git_url.clone()),
            ("SLIPWAY_GITHUB_API_URL", served.api_url.clone()),
            ("SLIPWAY_GITHUB_APP_ID", APP_ID.to_string()),
            (
                "SLIPWAY_GITHUB_INSTALLATION_ID",
                served.installation_id.to_string(),
            ),
            ("SLIPWAY_GITHUB_PRIVATE_KEY", key_pem.to_string()),
            ("SLIPWAY_SIGNING_KEY", SIGNING_KEY_HEX.into()),
            ("SLIPWAY_SIGNING_KEY_ID", "bench".into()),
        ];
        let env = move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let config = Config::load_with(Some(&config_file), &env).expect("bridge config");
        let state =
            AppState::new(config, Arc::new(SystemClock), Arc::new(UuidIds)).expect("bridge state");
        assert!(state.change.is_some(), "the change service is configured");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Bridge {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _state: state,
            dir,
        }
    }

    /// A signed slash command, as Slack sends it; returns the ack's text.
    async fn slash(&self, seq: usize, command: &str, text: &str, response_url: &str) -> String {
        let body = serde_urlencoded::to_string([
            ("token", "deprecated-verification-token"),
            ("team_id", "T0BENCH"),
            ("team_domain", "bench"),
            ("channel_id", CHANNEL),
            ("channel_name", "ops"),
            ("user_id", USER),
            ("user_name", "omar"),
            ("command", command),
            ("text", text),
            ("api_app_id", "A0SLIPWAY"),
            ("response_url", response_url),
            ("trigger_id", &format!("bench.trigger.{seq}")),
        ])
        .expect("form");
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = sign(SLACK_SECRET.as_bytes(), &ts, body.as_bytes());
        let req = hyper::Request::post(format!("http://{}/slack/commands", self.addr))
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.client.request(req).await.expect("ack");
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            status.is_success(),
            "{command} {text}: HTTP {status}: {text}"
        );
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["text"].as_str().map(String::from))
            .unwrap_or(text)
    }
}

/// One `git clone --depth 1` + edit + commit + push; returns (clone, commit, push) times.
fn clone_edit_push(git_url: &str, token: &str, k: usize, root: &Path) -> [Duration; 3] {
    let work = root.join(format!("clone-{k}"));
    let t = Instant::now();
    let mut cmd = git_cmd();
    cmd.args(["clone", "--quiet", "--depth", "1", git_url])
        .arg(&work);
    run_ok(cmd, "git clone --depth 1");
    let cloned = t.elapsed();
    let t = Instant::now();
    std::fs::write(work.join(MANIFEST), kustomization(&format!("v3.{k}.0"))).expect("edit");
    let mut cmd = git_cmd();
    cmd.arg("-C").arg(&work).args([
        "commit",
        "--quiet",
        "-a",
        "-m",
        &format!("Deploy api to staging (v3.{k}.0)"),
    ]);
    run_ok(cmd, "git commit");
    let committed = t.elapsed();
    let t = Instant::now();
    let authed = git_url.replacen("http://", &format!("http://x-access-token:{token}@"), 1);
    let mut cmd = git_cmd();
    cmd.arg("-C").arg(&work).args([
        "push",
        "--quiet",
        &authed,
        &format!("HEAD:refs/heads/bench/clone-{k}"),
    ]);
    run_ok(cmd, "git push");
    let pushed = t.elapsed();
    // The checkout stays until the end: deleting 100k files makes ext4 skip the freed inodes
    // for a while, and the next clone's checkout then runs ten times slower.
    [cloned, committed, pushed]
}

async fn bench(iterations: usize, baseline_iterations: usize) {
    let repo = gitops_repo();
    let files = git_in(&repo, &["ls-tree", "-r", "--name-only", "main"])
        .lines()
        .count();
    let commits = git_in(&repo, &["rev-list", "--count", "main"]);
    let pack_mib: u64 = std::fs::read_dir(repo.join("objects/pack")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>()
    }) >> 20;
    eprintln!("pr_open: {files} files, {commits} commits, {pack_mib} MiB of packs");

    let scratch = tempfile::tempdir().expect("tempdir");
    let key_pem = slipway_emulators::github::generate_app_key_pem().expect("app key");
    let key_file = scratch.path().join("app-key.pem");
    std::fs::write(&key_file, &key_pem).expect("key file");
    let mut emu = Emulators::start(&repo, &key_file);
    let rss_before_bridge = rss_mib();
    let bridge = Bridge::start(&emu.served, &key_pem).await;

    // The first command pays for cloning the mirror: a dry run, timed to its response.
    let url = emu.ask_ok("response-url");
    let t = Instant::now();
    let ack = bridge.slash(0, "/deploy", "api staging v1.0.1", &url).await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    let response = emu.ask_ok("wait-response 1");
    let first = t.elapsed();
    assert!(
        response.contains("newTag") && response.contains("v1.0.1"),
        "the dry run shows the tag bump: {response}"
    );
    let warm_peak = peak_rss_mib();
    let warm_rss = rss_mib();
    let reset = reset_peak_rss();

    let mut to_pr = Vec::with_capacity(iterations);
    let mut to_slack = Vec::with_capacity(iterations);
    let mut acks = Vec::with_capacity(iterations);
    for k in 1..=iterations {
        emu.ask_ok(&format!("release {LOCK_REF}"));
        let url = emu.ask_ok("response-url");
        let t = Instant::now();
        let ack = bridge
            .slash(k, "/deploy", &format!("api staging v2.{k}.0 --apply"), &url)
            .await;
        acks.push(t.elapsed());
        assert!(ack.starts_with("Opening a pull request"), "{ack}");
        emu.ask_ok(&format!("wait-pr {k}"));
        to_pr.push(t.elapsed());
        emu.ask_ok(&format!("wait-slack {k}"));
        to_slack.push(t.elapsed());
        eprintln!(
            "pr_open: PR {k}: {} (Slack summary {})",
            ms(to_pr[k - 1]),
            ms(to_slack[k - 1])
        );
    }
    let peak = peak_rss_mib();
    let end_rss = rss_mib();

    // The same steps one by one, on the bridge's mirror (idle now), to see where the time goes.
    let steps = phases(
        &bridge.dir.path().join("state/gitops.git"),
        &emu.served,
        &key_pem,
        iterations,
    )
    .await;

    let served_git = emu.served.git_url.clone();
    let token = emu.served.token.clone();
    let mut baseline = Vec::with_capacity(baseline_iterations);
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    let root = scratch.path().to_path_buf();
    for k in 1..=baseline_iterations {
        let (g, tk, r) = (served_git.clone(), token.clone(), root.clone());
        let p = tokio::task::spawn_blocking(move || clone_edit_push(&g, &tk, k, &r))
            .await
            .expect("baseline");
        baseline.push(p.iter().sum::<Duration>());
        for (i, d) in p.iter().enumerate() {
            phases[i].push(*d);
        }
        eprintln!(
            "pr_open: clone+push {k}: {} (clone {}, commit {}, push {})",
            ms(baseline[k - 1]),
            ms(p[0]),
            ms(p[1]),
            ms(p[2])
        );
    }
    drop(bridge);
    drop(emu);

    let (to_pr, to_slack, acks, baseline) = (
        sorted(to_pr),
        sorted(to_slack),
        sorted(acks),
        sorted(baseline),
    );
    let phases = phases.map(sorted);
    let speedup = baseline_p50_ratio(&baseline, &to_pr);
    let peak_note = if reset {
        "after the clone (VmHWM reset)"
    } else {
        "whole run (VmHWM could not be reset)"
    };
    println!();
    println!(
        "Repository: {files} files, {commits} commits, {pack_mib} MiB packed. {iterations} PRs, {baseline_iterations} clone+push runs."
    );
    println!();
    println!("| measure | p50 | p90 | max | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| `/deploy api staging vK --apply` → PR opened | {} | {} | {} | ≤ 1 s p50 |",
        ms(pct(&to_pr, 50)),
        ms(pct(&to_pr, 90)),
        ms(to_pr.last().copied().unwrap_or_default())
    );
    println!(
        "| … → Slack summary posted | {} | {} | {} | – |",
        ms(pct(&to_slack, 50)),
        ms(pct(&to_slack, 90)),
        ms(to_slack.last().copied().unwrap_or_default())
    );
    println!(
        "| … → ack (HTTP 200) | {} | {} | {} | – |",
        ms(pct(&acks, 50)),
        ms(pct(&acks, 90)),
        ms(acks.last().copied().unwrap_or_default())
    );
    if !baseline.is_empty() {
        println!(
            "| `git clone --depth 1` + edit + commit + push | {} | {} | {} | ≥ 10× the PR p50 |",
            ms(pct(&baseline, 50)),
            ms(pct(&baseline, 90)),
            ms(baseline.last().copied().unwrap_or_default())
        );
        for (name, v) in ["clone --depth 1", "commit -a", "push"].iter().zip(&phases) {
            println!(
                "| ↳ `git {name}` | {} | {} | {} | – |",
                ms(pct(v, 50)),
                ms(pct(v, 90)),
                ms(v.last().copied().unwrap_or_default())
            );
        }
    }
    println!();
    println!("| step of opening a PR, alone | p50 | p90 | max |");
    println!("|---|---|---|---|");
    for (name, v) in steps {
        let v = sorted(v);
        println!(
            "| {name} | {} | {} | {} |",
            ms(pct(&v, 50)),
            ms(pct(&v, 90)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
    println!();
    println!("| bridge process | value | target |");
    println!("|---|---|---|");
    if !baseline.is_empty() {
        println!("| clone+push p50 ÷ PR p50 | {speedup:.1}× | ≥ 10× |");
    }
    println!("| peak RSS opening PRs, {peak_note} | {peak:.0} MiB | ≤ 150 MB |");
    println!("| RSS after the last PR | {end_rss:.0} MiB | – |");
    println!(
        "| first command (dry run) incl. the mirror's initial clone | {} | one-time |",
        ms(first)
    );
    println!("| peak RSS through the initial clone | {warm_peak:.0} MiB | – |");
    println!(
        "| RSS before the bridge started / after the clone | {rss_before_bridge:.0} / {warm_rss:.0} MiB | – |"
    );
    eprintln!("pr_open: removing the {iterations} checkouts…");
    drop(scratch);
}

/// The change flow's git and GitHub steps one at a time, through the same `slipway_infra` calls
/// the bridge makes (mirror fetch, read, in-memory commit, push; lock ref and PR over REST).
async fn phases(
    mirror_dir: &Path,
    served: &Served,
    key_pem: &str,
    n: usize,
) -> Vec<(&'static str, Vec<Duration>)> {
    use slipway_infra::github::{GitHub, Repo};
    use slipway_infra::gitops::{Author, Credentials, FileChange, Mirror};

    let gh = GitHub::app(&served.api_url, APP_ID, key_pem, served.installation_id)
        .expect("GitHub client");
    let repo = Repo {
        owner: OWNER.into(),
        name: REPO.into(),
    };
    let mirror = Mirror::open(mirror_dir, &served.git_url, "main").expect("mirror");
    let names = [
        "installation token (cached)",
        "fetch (mirror up to date)",
        "read the manifest",
        "create the lock ref (REST)",
        "commit in memory",
        "push",
        "open the PR (REST)",
    ];
    let mut out: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); names.len()];
    for k in 1..=n {
        let mut lap = Instant::now();
        let mut mark = |i: usize| {
            out[i].push(lap.elapsed());
            lap = Instant::now();
        };
        let token = gh.installation_token().await.expect("token");
        let creds = Credentials {
            username: "x-access-token".into(),
            password: token,
        };
        mark(0);
        let head = mirror.fetch(Some(&creds)).expect("fetch");
        mark(1);
        let current = mirror.read_file(head, MANIFEST).expect("read");
        assert!(current.is_some(), "{MANIFEST} exists");
        mark(2);
        let fresh = gh
            .create_ref(
                &repo,
                &format!("refs/slipway/bench-locks/phase-{k}"),
                &head.to_string(),
            )
            .await
            .expect("create ref");
        assert!(fresh);
        mark(3);
        let files = [
            FileChange::Upsert {
                path: MANIFEST.into(),
                content: kustomization(&format!("v4.{k}.0")).into_bytes(),
            },
            FileChange::Upsert {
                path: format!("changes/bench-phase-{k}.yaml"),
                content: format!("id: bench-phase-{k}\n").into_bytes(),
            },
        ];
        let author = Author {
            name: "Slipway".into(),
            email: "slipway@users.noreply.github.com".into(),
            unix_time: chrono::Utc::now().timestamp(),
        };
        let commit = mirror
            .commit(head, &files, "Deploy api to staging", &author)
            .expect("commit");
        mark(4);
        let branch = format!("bench/phase-{k}");
        mirror
            .push(commit, &branch, false, Some(&creds))
            .expect("push");
        mark(5);
        gh.open_pr(&repo, "[bench] phase", "phase timing", &branch, "main")
            .await
            .expect("open PR");
        mark(6);
    }
    names.into_iter().zip(out).collect()
}

fn baseline_p50_ratio(baseline: &[Duration], bridge: &[Duration]) -> f64 {
    let b = pct(bridge, 50).as_secs_f64();
    if b == 0.0 {
        return 0.0;
    }
    pct(baseline, 50).as_secs_f64() / b
}
