//! `/deploy` checks the image in a real OCI registry (Debian's `docker-registry` on loopback)
//! and pins the digest it resolves beside the tag; the dry run shows the build it came from.
//! Registries that misbehave are small fakes here: one that lies about a digest, one that asks
//! for a bearer token.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use slipway_core::change::ChangeRequest;
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO};
use slipway_tests::harness::TestApp;
use slipway_tests::registry_server::{OCI_MANIFEST, RegistryServer};

use crate::changes::{app_for, button_value, change_file, wait_pulls};

const LONG: Duration = Duration::from_secs(30);

/// The fixture with `api`'s registry at `url` (and any extra registry keys).
async fn start_with_registry(url: &str, extra: &str) -> (TestApp, GitOpsFixture) {
    let mut fx = gitops::start().await;
    fx.config_yaml = fx.config_yaml.replacen(
        "workflow: ci.yml\n",
        &format!("workflow: ci.yml\n      registry:\n        url: {url}\n{extra}"),
        1,
    );
    (app_for(&fx).await, fx)
}

/// The first PR's change request and the staging kustomization on its branch.
async fn opened(fx: &GitOpsFixture) -> (ChangeRequest, String) {
    let pulls = wait_pulls(fx, 1).await;
    let branch = pulls[0]["head"]["ref"].as_str().unwrap();
    let kustomization = fx
        .github
        .file_at(OWNER, REPO, branch, "apps/api/staging/kustomization.yaml")
        .unwrap();
    (change_file(fx, branch), kustomization)
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// The response that carries the Confirm button, once it arrives.
async fn dry_run_response(app: &TestApp) -> Value {
    let has_confirm = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .any(|r| r.body.to_string().contains("slipway_confirm"))
    };
    assert!(
        app.slack.wait_until(LONG, has_confirm).await,
        "{:?}",
        app.slack.responses()
    );
    app.slack
        .responses()
        .into_iter()
        .find(|r| r.body.to_string().contains("slipway_confirm"))
        .map(|r| r.body)
        .unwrap()
}

async fn wait_response_containing(app: &TestApp, needle: &str) -> String {
    let found = app
        .slack
        .wait_until(LONG, |s| {
            s.responses()
                .iter()
                .any(|r| r.body.to_string().contains(needle))
        })
        .await;
    let all = app
        .slack
        .responses()
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(found, "no response contains `{needle}`: {all}");
    all
}

/// A versionless deploy takes CI's build, finds its tag in the registry, and the PR's
/// kustomization pins the digest beside the tag; the dry run shows the run, commit and age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_pins_the_digest_the_registry_resolves_beside_the_tag_and_shows_the_build() {
    let registry = RegistryServer::start().await;
    let (app, fx) = start_with_registry(&registry.url(), "").await;
    let tag = format!("sha-{}", short(&fx.api_sha));
    let digest = registry.push_image("api", &tag, "a").await;
    app.ack("U0OPERATOR", "/deploy api staging").await;
    let body = dry_run_response(&app).await;
    let text = body.to_string();
    for needle in [
        "Build: CI run",
        &format!("acme/api@{}", short(&fx.api_sha)),
        " ago",
        &format!("digest: {digest}"),
        &format!("found in {}", registry.url()),
    ] {
        assert!(text.contains(needle), "`{needle}` not in {text}");
    }
    let token = button_value(&body["blocks"], "slipway_confirm").unwrap();
    app.click("U0OPERATOR", "slipway_confirm", &token, "1.1")
        .await;
    let (cr, kustomization) = opened(&fx).await;
    assert_eq!(cr.rendered.image_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(
        cr.rendered.image.as_deref(),
        Some(format!("registry.example/api:{tag}@{digest}").as_str())
    );
    assert!(
        kustomization.contains(&format!("newTag: \"{tag}\"\n    digest: {digest}")),
        "{kustomization}"
    );
}

/// A version the registry doesn't have is refused before anything opens, naming the tag and
/// the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_refused_naming_the_tag_and_the_registry() {
    let registry = RegistryServer::start().await;
    let (app, fx) = start_with_registry(&registry.url(), "").await;
    registry.push_image("api", "v1.0.0", "a").await;
    app.ack("U0OPERATOR", "/deploy api staging v9.9.9 --apply")
        .await;
    let all = wait_response_containing(&app, "is not in the registry").await;
    assert!(
        all.contains("registry.example/api:v9.9.9") && all.contains(&registry.url()),
        "{all}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
}

/// Attack: the tag is pushed again between the dry run and Confirm. What opens is the digest
/// the requester saw, not whatever the tag points at now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_after_the_dry_run_still_deploys_the_digest_the_dry_run_pinned() {
    let registry = RegistryServer::start().await;
    let (app, fx) = start_with_registry(&registry.url(), "").await;
    let seen = registry.push_image("api", "v2.0.0", "reviewed").await;
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    let body = dry_run_response(&app).await;
    assert!(body.to_string().contains(&seen), "{body}");
    let moved = registry.push_image("api", "v2.0.0", "swapped").await;
    assert_ne!(seen, moved);
    let token = button_value(&body["blocks"], "slipway_confirm").unwrap();
    app.click("U0OPERATOR", "slipway_confirm", &token, "1.1")
        .await;
    let (cr, kustomization) = opened(&fx).await;
    assert_eq!(cr.rendered.image_digest.as_deref(), Some(seen.as_str()));
    assert!(
        kustomization.contains(&seen) && !kustomization.contains(&moved),
        "{kustomization}"
    );
}

/// What a fake registry does for a manifest request.
#[derive(Clone)]
enum Fake {
    /// Serves a manifest but claims another digest for it.
    Lies,
    /// Asks for a bearer token from its realm, which wants basic credentials.
    WantsToken { realm: String },
}

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_digest() -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(MANIFEST)))
}

async fn fake_registry(mode: Arc<std::sync::Mutex<Option<Fake>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let m = mode.clone();
    let manifests = move |headers: HeaderMap| {
        let mode = m.lock().unwrap().clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match mode {
                Some(Fake::Lies) => (
                    StatusCode::OK,
                    [("content-type", OCI_MANIFEST.to_string()), ("docker-content-digest", format!("sha256:{}", "0".repeat(64)))],
                    MANIFEST,
                )
                    .into_response(),
                Some(Fake::WantsToken { realm }) if auth != "Bearer pull-token-123" => (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", format!("Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:api:pull\""))],
                    "{}",
                )
                    .into_response(),
                _ => (
                    StatusCode::OK,
                    [("content-type", OCI_MANIFEST.to_string()), ("docker-content-digest", manifest_digest())],
                    MANIFEST,
                )
                    .into_response(),
            }
        }
    };
    let token = |headers: HeaderMap, q: axum::extract::RawQuery| async move {
        use base64::Engine as _;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ci-bot:s3cret-registry-password")
        );
        let q = q.0.unwrap_or_default();
        let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(basic.as_str())
            && q.contains("scope=repository%3Aapi%3Apull")
            && q.contains("service=fake");
        if ok {
            (StatusCode::OK, r#"{"token":"pull-token-123"}"#).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "{}").into_response()
        }
    };
    let router = axum::Router::new()
        .route(
            "/v2/api/manifests/{reference}",
            axum::routing::get(manifests),
        )
        .route("/token", axum::routing::get(token));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Attack: a registry (or something in its place) serves one manifest and claims another's
/// digest. The bridge hashes what it was served and refuses rather than pin either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_claiming_a_digest_other_than_what_it_serves_is_refused() {
    let mode = Arc::new(std::sync::Mutex::new(Some(Fake::Lies)));
    let url = fake_registry(mode).await;
    let (app, fx) = start_with_registry(&url, "").await;
    app.ack("U0OPERATOR", "/deploy api staging v1.2.3 --apply")
        .await;
    let all = wait_response_containing(&app, "is not serving what it claims").await;
    assert!(all.contains(&manifest_digest()), "{all}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
}

/// Registry auth: a `401 Bearer realm=…` challenge is answered by fetching a pull token for the
/// repository from the realm with the configured basic credentials; the secret never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_credentials_fetch_a_pull_token_from_the_bearer_realm() {
    let mode = Arc::new(std::sync::Mutex::new(None));
    let url = fake_registry(mode.clone()).await;
    *mode.lock().unwrap() = Some(Fake::WantsToken {
        realm: format!("{url}/token"),
    });
    let (app, fx) = start_with_registry(
        &url,
        "        username: ci-bot\n        password: s3cret-registry-password\n",
    )
    .await;
    app.ack("U0OPERATOR", "/deploy api staging v1.2.3 --apply")
        .await;
    let (cr, _) = opened(&fx).await;
    assert_eq!(
        cr.rendered.image_digest.as_deref(),
        Some(manifest_digest().as_str())
    );
    let all = app
        .slack
        .responses()
        .iter()
        .map(|r| r.body.to_string())
        .collect::<String>();
    assert!(!all.contains("s3cret") && !all.contains("pull-token-123"));
}
