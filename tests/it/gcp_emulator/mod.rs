//! The GCP emulator (`slipway_emulators::gcp`) against Google's own descriptions and clients:
//!
//! - `gcloud`: the real gcloud CLI reads every API through the endpoint overrides (the request
//!   reason arriving as `X-Goog-Request-Reason`), is refused without a read role, exchanges a
//!   GitHub Actions OIDC token through STS and IAM Credentials (an `external_account` file, as
//!   the runner will), and impersonates the reader with the bridge's service account key;
//! - `discovery`: every method served against its discovery document, and a live response of
//!   each against the document's schema;
//! - `tokens`: STS's and IAM Credentials' checks (signature, audience, condition, grants,
//!   lifetimes), and expiry, over plain HTTP.

mod discovery;
mod gcloud;
mod tokens;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
use slipway_emulators::gcp::{Example, GcpEmulator, WifProvider};
use slipway_tests::harness::resolve_tool;

const GCLOUD_HINT: &str = "install the Google Cloud CLI (google-cloud-cli 528 is on this machine image at /usr/bin/gcloud; \
     elsewhere https://cloud.google.com/sdk/docs/install)";

/// The reader's IAM member in the example project.
pub fn reader(ex: &Example) -> String {
    format!("serviceAccount:{}", ex.reader.client_email)
}

/// A gcloud with its own fresh configuration directory, pointed at the emulator.
pub struct Gcloud {
    binary: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Gcloud {
    /// gcloud (failing with the install hint if it is missing) with the emulator's overrides,
    /// prompts and colour off, and the metadata-server probe off (`gce` = `False`).
    pub fn new(gcp: &GcpEmulator) -> Gcloud {
        let binary = resolve_tool("gcloud", GCLOUD_HINT);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("gce"), "False").unwrap();
        let mut env = gcp.endpoint_overrides();
        for (k, v) in [
            ("CLOUDSDK_CONFIG", config.display().to_string()),
            ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1".into()),
            ("CLOUDSDK_CORE_DISABLE_COLOR", "1".into()),
            ("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "1".into()),
            (
                "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK",
                "1".into(),
            ),
            ("HOME", dir.path().display().to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ] {
            env.push((k.to_string(), v));
        }
        Gcloud { binary, dir, env }
    }

    /// Authenticate with this access token (`CLOUDSDK_AUTH_ACCESS_TOKEN_FILE`).
    pub fn with_token(mut self, token: &str) -> Gcloud {
        let path = self.dir.path().join("token");
        std::fs::write(&path, token).unwrap();
        self.set(
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
            &path.display().to_string(),
        );
        self
    }

    /// Authenticate with this credential file (`CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE`).
    pub fn with_credential_file(mut self, json: &str) -> Gcloud {
        let path = self.dir.path().join("credentials.json");
        std::fs::write(&path, json).unwrap();
        self.set(
            "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
            &path.display().to_string(),
        );
        self
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs `gcloud args` in a cleared environment, off the runtime's threads (the emulator is
    /// served by the runtime).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || cmd.output().expect("gcloud runs")),
        )
        .await
        .expect("gcloud finished within a minute")
        .unwrap();
        eprintln!(
            "$ gcloud {}\n--- stdout\n{}--- stderr\n{}---",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and expects success; stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "gcloud {} failed", args.join(" "));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One HTTP call to the emulator: status and JSON body (`Null` if it isn't JSON).
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (u16, Value) {
    call_with(method, url, token, &[], body).await
}

/// [`call`] with more headers (a `host`, say).
pub async fn call_with(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Option<(&str, String)>,
) -> (u16, Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let (content_type, body) = body.unwrap_or(("application/json", String::new()));
    let req = req
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The example project, a GitHub Actions token service for `acme/gitops` on `main`, and a
/// provider for it pinned to that repository and branch, whose identities may mint tokens for
/// the reader.
pub async fn federation() -> (GcpEmulator, Example, ActionsOidcEmulator, WifProvider) {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let oidc = ActionsOidcEmulator::start(ActionsJob::push("acme/gitops", "main", "abc123")).await;
    let provider = WifProvider::github(ex.project_number, "github", "actions", oidc.jwks())
        .with_condition(
            "assertion.repository == 'acme/gitops' && assertion.ref == 'refs/heads/main'",
        );
    gcp.add_wif_provider(provider.clone());
    gcp.grant_on_service_account(
        &ex.reader.client_email,
        "roles/iam.workloadIdentityUser",
        &provider.principal_set("repository", "acme/gitops"),
    );
    (gcp, ex, oidc, provider)
}

/// An Actions OIDC token for `audience`.
pub async fn actions_token(oidc: &ActionsOidcEmulator, audience: &str) -> String {
    let url = format!("{}&audience={audience}", oidc.request_url());
    let (status, body) = call("GET", &url, Some(&oidc.request_token()), None).await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_str().unwrap().to_string()
}
