//! Helpers shared by the Google emulator tests: a domain with an admin and a delegated service
//! account, assertions signed the way Google's client libraries sign them, plain HTTP calls, and
//! a push receiver.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use octocrab::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use slipway_emulators::google::{GoogleEmulator, JWT_BEARER, ServiceAccountKey};

pub const DOMAIN: &str = "example.com";
pub const ADMIN: &str = "admin@example.com";
pub const USER_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUP_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
pub const SCOPES: [&str; 2] = [USER_RO, GROUP_RO];

/// `example.com` with its admin, three people, two groups, and a service account delegated the
/// two read-only scopes.
pub async fn domain() -> (GoogleEmulator, ServiceAccountKey) {
    let g = GoogleEmulator::start(DOMAIN).await;
    g.add_admin(ADMIN, "Ada", "Admin");
    g.add_user("dana@example.com", "Dana", "Ng");
    g.add_user("eve@example.com", "Eve", "Ito");
    g.add_user("finn@example.com", "Finn", "Olsen");
    g.add_group("engineering@example.com", "engineering");
    g.add_group("oncall@example.com", "oncall");
    g.add_member("engineering@example.com", "dana@example.com");
    g.add_member("engineering@example.com", "oncall@example.com");
    g.add_member("oncall@example.com", "eve@example.com");
    let key = g.add_service_account("slipway-sync");
    g.grant_delegation(&key.client_id, &SCOPES);
    (g, key)
}

/// The assertion a service account signs, with these claims.
pub fn assertion(key: &ServiceAccountKey, claims: &Value) -> String {
    let signing = EncodingKey::from_rsa_pem(key.private_key_pem.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::RS256), claims, &signing).unwrap()
}

/// The usual claims: acting as `sub` for `scopes`, valid for an hour from now.
pub fn claims(_g: &GoogleEmulator, key: &ServiceAccountKey, sub: &str, scopes: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": key.client_email, "sub": sub, "aud": "https://oauth2.googleapis.com/token",
        "scope": scopes.join(" "), "iat": now, "exp": now + 3600,
    })
}

/// `POST /token` with an assertion; status and body.
pub async fn exchange(g: &GoogleEmulator, jwt: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(g.token_url())
        .form(&[("grant_type", JWT_BEARER), ("assertion", jwt)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An access token acting as the admin with the usual scopes.
pub async fn access_token(g: &GoogleEmulator, key: &ServiceAccountKey) -> String {
    let (status, body) = exchange(g, &assertion(key, &claims(g, key, ADMIN, &SCOPES))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// One API call (`path` after the root, with its query); status, headers and JSON body.
pub async fn call(
    g: &GoogleEmulator,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}/{path}", g.base_url());
    let mut req = match method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A push receiver on loopback that answers `status` and keeps each notification's headers.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
        let keep = seen.clone();
        let app = Router::new().route(
            "/notify",
            post(move |headers: HeaderMap, body: String| {
                let keep = keep.clone();
                async move {
                    keep.lock().unwrap().push((headers, body));
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, seen }
    }

    pub fn seen(&self) -> Vec<(HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// The discovery document `google-api-python-client` ships for `admin:directory_v1`, located
/// through the installed package (never skipped: a missing package fails with the fix).
pub fn discovery_document() -> Value {
    slipway_emulators::discovery::document("admin.directory_v1").unwrap_or_else(|e| panic!("{e}"))
}
