//! `/slipway link sso` against a real OpenID provider (`oidc-provider-mock` 0.3.4 from PyPI,
//! started on loopback): the ack's login link, the provider's authorization form, the callback,
//! and then who the Slack user is. Also what an attacker gets from a replayed callback, a link
//! passed to a colleague, garbage, and a bridge without SSO: nothing.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_bridge::identity::links::{Link, LinkHow};
use slipway_core::audit::EventKind;
use slipway_tests::harness::{Daemon, Options, TestApp, free_port, http, resolve_tool};

/// Where the provider sends browsers back: the bridge's public URL, as a reverse proxy would
/// expose it. The test plays the browser and delivers each redirect to the bridge on loopback.
const PUBLIC_URL: &str = "https://slipway.example.com";
const HINT: &str = "pip install 'oidc-provider-mock==0.3.4' (scripts/install-deps does)";

/// The provider, with one registered confidential client, and nonces required.
struct Provider {
    daemon: Daemon,
    client_id: String,
    client_secret: String,
}

async fn provider(dir: &Path) -> Provider {
    let port = free_port();
    let mut cmd = std::process::Command::new(resolve_tool("oidc-provider-mock", HINT));
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--require-nonce", "true"]);
    let daemon = Daemon::start(
        "oidc-provider-mock",
        cmd,
        port,
        "/.well-known/openid-configuration",
        dir.join("oidc-provider.log"),
    )
    .await;
    let (status, body) = http(
        "POST",
        &format!("{}/oauth2/clients", daemon.url()),
        Some(
            serde_json::json!({
                "redirect_uris": [format!("{PUBLIC_URL}/sso/callback")],
                "token_endpoint_auth_method": "client_secret_basic",
            })
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    Provider {
        client_id: v["client_id"].as_str().unwrap().to_string(),
        client_secret: v["client_secret"].as_str().unwrap().to_string(),
        daemon,
    }
}

impl Provider {
    /// A person the provider knows, with the claims its ID tokens carry.
    async fn person(&self, sub: &str, email: &str, groups: &[&str]) {
        let claims = serde_json::json!({
            "email": email, "email_verified": true, "name": sub, "groups": groups,
        });
        let url = format!("{}/users/{sub}", self.daemon.url());
        let (status, body) = http("PUT", &url, Some(claims.to_string())).await;
        assert_eq!(status, 204, "{body}");
    }
}

/// A bridge that links by SSO at `p`.
async fn bridge(p: &Provider) -> TestApp {
    bridge_with(p, vec![]).await
}

/// The same, with more settings (a replica's Redis and writer name).
async fn bridge_with(p: &Provider, more: Vec<(&'static str, String)>) -> TestApp {
    TestApp::start_with(Options {
        policy_edits: vec![(
            "\n  provider: static\n",
            "\n  provider: static\n  slack_match: sso\n".into(),
        )],
        env: vec![
            ("SLIPWAY_SSO_ISSUER", p.daemon.url()),
            ("SLIPWAY_SSO_CLIENT_ID", p.client_id.clone()),
            ("SLIPWAY_SSO_CLIENT_SECRET", p.client_secret.clone()),
            ("SLIPWAY_PUBLIC_URL", PUBLIC_URL.into()),
        ]
        .into_iter()
        .chain(more)
        .collect(),
        ..Options::default()
    })
    .await
}

/// A provider that knows one person (`sub`, `email`, `groups`), and a bridge that signs in at
/// it. The provider stops when this is dropped.
struct World {
    _dir: tempfile::TempDir,
    _provider: Provider,
    app: TestApp,
}

async fn world(person: Option<(&str, &str, &[&str])>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path()).await;
    if let Some((sub, email, groups)) = person {
        p.person(sub, email, groups).await;
    }
    let app = bridge(&p).await;
    World {
        _dir: dir,
        _provider: p,
        app,
    }
}

/// One browser request, redirects not followed: status, `Location`, body.
async fn browse(method: &str, url: &str, form: Option<&str>) -> (u16, String, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let body = Full::new(Bytes::from(form.unwrap_or_default().to_string()));
    let req = req.body(body).unwrap_or_else(|e| panic!("{url}: {e}"));
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A public URL's path and query, delivered to the bridge on loopback.
fn on_bridge(app: &TestApp, public: &str) -> String {
    let rest = public
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{public} is not under {PUBLIC_URL}"));
    format!("http://{}{rest}", app.addr)
}

/// `/slipway link sso` as `slack_user`, then the provider's form as `sub`: the start link from
/// Slack and the callback URL the browser is sent back to (not yet delivered), both on the
/// bridge's loopback address.
async fn sign_in(app: &TestApp, slack_user: &str, sub: &str) -> (String, String) {
    sign_in_via(app, app, None, slack_user, sub).await
}

/// The same, with the command sent to `asked` and the browser's requests to `browsed`. With
/// `shared`, the login is written to Redis just after the ack: a person takes seconds to click,
/// a test waits for the write.
async fn sign_in_via(
    asked: &TestApp,
    browsed: &TestApp,
    shared: Option<&slipway_tests::redis_server::RedisServer>,
    slack_user: &str,
    sub: &str,
) -> (String, String) {
    let app = browsed;
    let ack = asked.ack(slack_user, "/slipway link sso").await;
    if let Some(redis) = shared {
        let key = format!("slipway:sso:user:{slack_user}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !redis::cmd("EXISTS")
            .arg(&key)
            .query::<bool>(&mut redis.client())
            .unwrap()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the login was never shared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let start = ack
        .split('<')
        .nth(1)
        .and_then(|s| s.split('|').next())
        .unwrap_or_else(|| panic!("no login link in {ack}"));
    assert!(
        start.starts_with(&format!("{PUBLIC_URL}/sso/start?state=")),
        "{ack}"
    );
    let (status, authorize, _) = browse("GET", &on_bridge(app, start), None).await;
    assert_eq!(status, 303);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce="), "{authorize}");
    let form = serde_urlencoded::to_string([("sub", sub)]).unwrap();
    let (status, callback, body) = browse("POST", &authorize, Some(&form)).await;
    assert_eq!(status, 302, "{body}");
    assert!(
        callback.starts_with(&format!("{PUBLIC_URL}/sso/callback?")),
        "{callback}"
    );
    (on_bridge(app, start), on_bridge(app, &callback))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_login_links_the_slack_user_and_its_group_claim_decides_their_role() {
    let w = world(Some((
        "00u-dana",
        "dana@example.com",
        &["engineering", "operators"],
    )))
    .await;
    let app = &w.app;
    app.slack
        .add_user("U0DANA", "dana", Some("dana@example.com"));
    let before = app.ack("U0DANA", "/kubectl get pods -n web").await;
    assert!(before.contains("/slipway link sso"), "{before}");

    let (_, callback) = sign_in(app, "U0DANA", "00u-dana").await;
    let (status, _, page) = browse("GET", &callback, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You can close this tab"), "{page}");
    assert!(page.contains("dana@example.com"), "{page}");

    let link = app.state.people.links().link("U0DANA").unwrap();
    assert!(
        matches!(&link, Some(Link { person, how: LinkHow::Sso, email: Some(e), .. }) if person == "00u-dana" && e == "dana@example.com"),
        "{link:?}"
    );
    let audit = app.audit();
    let linked = audit
        .iter()
        .find(|r| r.kind == EventKind::Identity)
        .expect("an identity record");
    let details = linked.details.as_ref().unwrap();
    assert_eq!(
        (details["action"].as_str(), details["how"].as_str()),
        (Some("linked"), Some("sso"))
    );
    assert_eq!(details["person"], "00u-dana");
    assert!(
        app.slack
            .wait_until(std::time::Duration::from_secs(10), |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("Linked this Slack account")))
            .await,
        "an ephemeral confirmation in Slack"
    );

    let whoami = app.ack("U0DANA", "/slipway whoami").await;
    assert!(whoami.contains("You are *dana@example.com*"), "{whoami}");
    assert!(whoami.contains("engineering, operators"), "{whoami}");
    assert!(whoami.contains("group claim of your SSO login"), "{whoami}");
    assert!(whoami.contains("Role: operator"), "{whoami}");
    let read = app.ack("U0DANA", "/kubectl get pods -n web").await;
    assert!(read.starts_with("Running"), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_is_refused() {
    let w = world(Some(("00u-dana", "dana@example.com", &["engineering"]))).await;
    let app = &w.app;
    let (start, callback) = sign_in(app, "U0DANA", "00u-dana").await;
    assert_eq!(browse("GET", &callback, None).await.0, 200);
    let (status, _, page) = browse("GET", &callback, None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown or was already used"), "{page}");
    assert!(page.starts_with("<!doctype html>"), "{page}");
    // The link from Slack is spent too.
    let (status, _, page) = browse("GET", &start, None).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        app.audit()
            .iter()
            .filter(|r| r.kind == EventKind::Identity)
            .count()
            == 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_issued_to_another_slack_user_cant_link_you() {
    let w = world(Some(("00u-bob", "bob@example.com", &["platform-owners"]))).await;
    let app = &w.app;
    app.slack.add_user("U0ADA", "ada", Some("ada@example.com"));
    app.slack.add_user("U0BOB", "bob", Some("bob@example.com"));
    // Ada asks for a link and passes it to Bob, who signs in with it.
    let (_, callback) = sign_in(app, "U0ADA", "00u-bob").await;
    let (status, _, page) = browse("GET", &callback, None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("another Slack account"), "{page}");
    let links = app.state.people.links();
    assert_eq!(links.link("U0ADA").unwrap(), None);
    assert_eq!(links.link("U0BOB").unwrap(), None);
    assert!(app.audit().iter().all(|r| r.kind != EventKind::Identity));
    // Bob's own request doesn't make Ada's state his: each state is bound to its asker.
    let (_, bobs) = sign_in(app, "U0BOB", "00u-bob").await;
    let (status, _, _) = browse("GET", &bobs, None).await;
    assert_eq!(status, 200);
    assert_eq!(links.link("U0ADA").unwrap(), None);
    assert_eq!(links.link("U0BOB").unwrap().unwrap().person, "00u-bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_sso_endpoints_gets_a_page_not_a_panic() {
    let w = world(None).await;
    let app = &w.app;
    for query in [
        "",
        "?",
        "?state",
        "?state=&code=",
        "?state=a&state=b",
        "?code=x",
        "?state=%ff%fe&code=%00",
        "?state=nope&code=nope",
        "?error=access_denied&state=nope",
        "?state=%3Cscript%3Ealert(1)%3C/script%3E&code=%3Cscript%3E",
        "?%%%%=&&&==",
    ] {
        for path in ["/sso/callback", "/sso/start"] {
            let (status, _, page) =
                browse("GET", &format!("http://{}{path}{query}", app.addr), None).await;
            assert_eq!(status, 400, "{path}{query}: {page}");
            assert!(!page.contains("<script>"), "{page}");
        }
    }
    let long = format!(
        "http://{}/sso/callback?state={}",
        app.addr,
        "x".repeat(8_000)
    );
    assert_eq!(browse("GET", &long, None).await.0, 400);
    // The provider says no: the state is spent and the page says what happened.
    let ack = app.ack("U0DANA", "/slipway link sso").await;
    let state = ack
        .split("state=")
        .nth(1)
        .unwrap()
        .split('|')
        .next()
        .unwrap();
    let denied = format!(
        "http://{}/sso/callback?error=access_denied&state={state}",
        app.addr
    );
    let (status, _, page) = browse("GET", &denied, None).await;
    assert_eq!(status, 400);
    assert!(page.contains("access_denied"), "{page}");
    assert_eq!(browse("GET", &denied, None).await.0, 400);
    assert_eq!(app.get("/healthz").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sso_configured_the_callback_is_404_and_the_command_says_what_to_set() {
    let app = TestApp::start().await;
    for path in ["/sso/callback?code=x&state=y", "/sso/start?state=y"] {
        let url = format!("http://{}{path}", app.addr);
        assert_eq!(browse("GET", &url, None).await.0, 404, "{path}");
    }
    let ack = app.ack("U0VIEWER", "/slipway link sso").await;
    assert!(ack.contains("SLIPWAY_SSO_ISSUER"), "{ack}");
    assert!(ack.contains("Socket Mode"), "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_login_begun_on_one_replica_finishes_on_another_and_works_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = slipway_tests::redis_server::RedisServer::start(dir.path());
    let p = provider(dir.path()).await;
    p.person("00u-erin", "erin@example.com", &["engineering"])
        .await;
    let replica = |name: &str| {
        vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", name.to_string()),
        ]
    };
    let a = bridge_with(&p, replica("a")).await;
    let b = bridge_with(&p, replica("b")).await;
    // The link comes from A; the browser's start and callback are load-balanced elsewhere.
    let (start, callback) = sign_in_via(&a, &b, Some(&redis), "U0ERIN", "00u-erin").await;
    let on_a = callback.replace(&b.addr.to_string(), &a.addr.to_string());
    let (status, _, page) = browse("GET", &on_a, None).await;
    assert_eq!(status, 200, "{page}");
    // B sees A's write after one pub/sub hop (shared::replicated): wait for it, briefly.
    let mut whoami = String::new();
    for _ in 0..50 {
        whoami = b.ack("U0ERIN", "/slipway whoami").await;
        if whoami.contains("erin@example.com") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        whoami.contains("erin@example.com"),
        "B knows the link: {whoami}"
    );
    // Used once: the same callback, or the start link, on the other replica is refused.
    let (status, _, page) = browse("GET", &callback, None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown or was already used"), "{page}");
    assert_eq!(browse("GET", &start, None).await.0, 400);
}
