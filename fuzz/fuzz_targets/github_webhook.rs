//! `POST /github/webhook` through the real router, with a change service configured (its GitHub
//! and Slack are a closed port, so follow-up work fails fast), state on tmpfs.
//!
//! Input: a mode byte, the `X-GitHub-Event` line, then the body. Mode bit 0 clear: the body is
//! correctly signed, so the fuzzer explores everything after the signature; set: the next line
//! is the `X-Hub-Signature-256` header as given. Bit 1 reuses one delivery id (dedupe path).
//! The answer must be one of the documented statuses, never a panic or a 5xx.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::Request;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use slipway_bridge::app::{AppState, router};
use slipway_bridge::clock::{SystemClock, UuidIds};
use slipway_bridge::config::Config;
use tower::ServiceExt;

const SECRET: &str = "fuzz-webhook-secret-0123456789";
const APP_KEY: &str = include_str!("../../tests/fixtures/keys/github-app-test.pem");
const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/slipway.yaml");

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::Builder::new()
        .prefix("slipway-fuzz-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("tempdir");
    let vars = [
        (
            "SLIPWAY_SLACK_SIGNING_SECRET",
            "fuzz-slack-secret-0123456789",
        ),
        ("SLIPWAY_POLICY", POLICY),
        (
            "SLIPWAY_STATE_DIR",
            dir.path().to_str().expect("utf-8 path"),
        ),
        ("SLIPWAY_SLACK_API_URL", "http://127.0.0.1:9/api/"),
        ("SLIPWAY_GITHUB_WEBHOOK_SECRET", SECRET),
        ("SLIPWAY_GITOPS_REPO", "acme/gitops"),
        (
            "SLIPWAY_GITOPS_GIT_URL",
            "http://127.0.0.1:9/acme/gitops.git",
        ),
        ("SLIPWAY_GITHUB_API_URL", "http://127.0.0.1:9/"),
        ("SLIPWAY_GITHUB_APP_ID", "1"),
        ("SLIPWAY_GITHUB_INSTALLATION_ID", "1"),
        ("SLIPWAY_GITHUB_PRIVATE_KEY", APP_KEY),
        (
            "SLIPWAY_SIGNING_KEY",
            "1111111111111111111111111111111111111111111111111111111111111111",
        ),
        ("SLIPWAY_SIGNING_KEY_ID", "test"),
    ];
    let config = Config::load_with(None, &|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_string())
    })
    .expect("config");
    let app = rt.block_on(async {
        let state = AppState::new(config, Arc::new(SystemClock), Arc::new(UuidIds)).expect("state");
        router(state)
    });
    World { rt, app, _dir: dir }
});

static DELIVERY: AtomicU64 = AtomicU64::new(0);

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (event, rest) = line(rest);
    let (signature, body) = if mode & 1 == 0 {
        (sign(rest).into_bytes(), rest)
    } else {
        let (sig, body) = line(rest);
        (sig.to_vec(), body)
    };
    let delivery = if mode & 2 == 0 {
        format!("fuzz-{}", DELIVERY.fetch_add(1, Ordering::Relaxed))
    } else {
        "fuzz-same".to_string()
    };
    let mut req = Request::post("/github/webhook").header("x-github-delivery", delivery);
    if let Ok(event) = std::str::from_utf8(event)
        && axum::http::HeaderValue::from_str(event).is_ok()
    {
        req = req.header("x-github-event", event);
    }
    if axum::http::HeaderValue::from_bytes(&signature).is_ok() {
        req = req.header("x-hub-signature-256", signature);
    }
    let req = req.body(Body::from(body.to_vec())).expect("request");
    let world = &*WORLD;
    let resp = world
        .rt
        .block_on(world.app.clone().oneshot(req))
        .expect("infallible");
    let status = resp.status().as_u16();
    assert!(
        matches!(status, 200 | 202 | 400 | 401 | 413),
        "unexpected status {status}"
    );
});
