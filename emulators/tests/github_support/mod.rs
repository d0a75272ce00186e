//! Helpers shared by the GitHub emulator tests: octocrab clients, the `git` CLI with an isolated
//! configuration, and a webhook receiver.
#![allow(dead_code)]

pub mod schema;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use octocrab::Octocrab;
use slipway_emulators::github::GitHubEmulator;

pub const OWNER: &str = "acme";
pub const REPO: &str = "gitops";

/// An emulator with `acme/gitops` (`main`: README.md, deploy/staging.yaml), users alice, bob and
/// carol (tokens `<login>-token`).
pub async fn emulator() -> GitHubEmulator {
    let gh = GitHubEmulator::start().await;
    for login in ["alice", "bob", "carol"] {
        gh.add_user(login, &format!("{login}-token"));
    }
    gh.create_repo(
        OWNER,
        REPO,
        "main",
        &[
            ("README.md", "# gitops\n"),
            ("deploy/staging.yaml", "image: app:1.0.0\n"),
        ],
    );
    gh
}

/// octocrab acting as a user.
pub fn octo(gh: &GitHubEmulator, token: &str) -> Octocrab {
    Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .personal_token(token.to_string())
        .build()
        .unwrap()
}

/// A branch `name` with one commit on top of main, made with a direct push by `login`.
pub fn branch(gh: &GitHubEmulator, name: &str, login: &str) -> String {
    gh.push_direct(
        OWNER,
        REPO,
        name,
        &[("deploy/staging.yaml", &format!("image: app:{name}\n"))],
        &format!("change on {name}"),
        login,
    )
}

/// Runs `git` with no user or system configuration and a fixed identity.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs")
}

pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `http://x-access-token:TOKEN@127.0.0.1:P/git/o/r.git`
pub fn authed_url(gh: &GitHubEmulator, token: &str) -> String {
    gh.git_url(OWNER, REPO)
        .replacen("http://", &format!("http://x-access-token:{token}@"), 1)
}

/// One webhook request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// A webhook receiver on 127.0.0.1:0 that answers `status` to every POST.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = received.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(Received { headers, body });
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            received,
            task,
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
