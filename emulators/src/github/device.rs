//! The OAuth device flow of a GitHub App's user authorization, as `github.com` serves it:
//! `POST /login/device/code` (`client_id` → `device_code`, `user_code`, `verification_uri`,
//! `expires_in`, `interval`) and `POST /login/oauth/access_token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:device_code`, which answers 200 with
//! `authorization_pending`, `slow_down` (and the new `interval`, 5 s longer, when polled faster
//! than the interval), `expired_token`, `access_denied`, or a user access token (`ghu_…`, valid
//! 8 hours, with a `ghr_…` refresh token). Bodies are form-encoded or JSON; answers are JSON when
//! the request accepts `application/json`, form-encoded otherwise, as on GitHub.
//!
//! There is no browser: a test approves or denies a code with
//! [`super::GitHubEmulator::authorize_device`] / [`super::GitHubEmulator::deny_device`].

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::state::{Identity, State, Token, hex, random_bytes};

/// The grant type of the device flow.
pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// GitHub's default polling interval and code lifetime.
pub(crate) const DEFAULT_INTERVAL: u64 = 5;
const CODE_TTL_SECS: i64 = 900;
/// User access tokens of a GitHub App live 8 hours; refresh tokens 6 months.
const USER_TOKEN_TTL_SECS: i64 = 8 * 3600;
const REFRESH_TTL_SECS: i64 = 15_811_200;
/// Polls may arrive this much early without a `slow_down` (network jitter).
const JITTER: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    /// The token was handed out; the code is spent.
    Used,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub(crate) client_id: String,
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) interval: u64,
    pub(crate) last_poll: Instant,
    pub(crate) status: DeviceStatus,
}

fn alnum<const N: usize>(alphabet: &[u8]) -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

fn user_code() -> String {
    // GitHub's codes: 8 characters, no easily confused ones, with a dash in the middle.
    let raw = alnum::<8>(b"BCDFGHJKLMNPQRSTVWXZ0123456789");
    format!("{}-{}", &raw[..4], &raw[4..])
}

fn params(headers: &HeaderMap, body: &[u8]) -> Map<String, Value> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if json_body && let Ok(Value::Object(m)) = serde_json::from_slice(body) {
        return m;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn reply(headers: &HeaderMap, status: StatusCode, body: &Value) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    if wants_json {
        return (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response();
    }
    let pairs: Vec<(String, String)> = body
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let text = serde_urlencoded::to_string(pairs).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn error(code: &str, description: &str) -> Value {
    json!({
        "error": code,
        "error_description": description,
        "error_uri": format!("https://docs.github.com/developers/apps/authorizing-oauth-apps#{}", code.replace('_', "-")),
    })
}

/// `POST /login/{rest}`.
pub(crate) fn handle(
    st: &mut State,
    method: &Method,
    headers: &HeaderMap,
    rest: &str,
    body: &[u8],
) -> Response {
    if method != Method::POST {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let p = params(headers, body);
    let get = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match rest {
        "device/code" => {
            let client_id = get("client_id");
            if !st.device_clients.contains(&client_id) {
                let known = st.oauth_clients.contains(&client_id);
                let body = if known {
                    error(
                        "device_flow_disabled",
                        "Device Flow must be explicitly enabled for this App",
                    )
                } else {
                    error(
                        "incorrect_client_credentials",
                        "The client_id is incorrect.",
                    )
                };
                return reply(headers, StatusCode::OK, &body);
            }
            let interval = st.device_interval.unwrap_or(DEFAULT_INTERVAL);
            let grant = DeviceGrant {
                client_id,
                device_code: hex(&random_bytes::<20>()),
                user_code: user_code(),
                expires_at: Utc::now() + chrono::Duration::seconds(CODE_TTL_SECS),
                interval,
                last_poll: Instant::now(),
                status: DeviceStatus::Pending,
            };
            let body = json!({
                "device_code": grant.device_code,
                "user_code": grant.user_code,
                "verification_uri": format!("{}/login/device", st.base_url),
                "expires_in": CODE_TTL_SECS,
                "interval": interval,
            });
            st.device_grants.push(grant);
            reply(headers, StatusCode::OK, &body)
        }
        "oauth/access_token" => {
            let body = access_token(
                st,
                &get("client_id"),
                &get("device_code"),
                &get("grant_type"),
            );
            reply(headers, StatusCode::OK, &body)
        }
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

fn access_token(st: &mut State, client_id: &str, device_code: &str, grant_type: &str) -> Value {
    if grant_type != DEVICE_GRANT {
        return error(
            "unsupported_grant_type",
            "The grant type must be urn:ietf:params:oauth:grant-type:device_code.",
        );
    }
    if !st.device_clients.contains(client_id) {
        return error(
            "incorrect_client_credentials",
            "The client_id is incorrect.",
        );
    }
    let Some(i) = st
        .device_grants
        .iter()
        .position(|g| g.device_code == device_code && g.client_id == client_id)
    else {
        return error(
            "incorrect_device_code",
            "The device_code provided is not valid.",
        );
    };
    let now = Instant::now();
    let g = &mut st.device_grants[i];
    if Utc::now() > g.expires_at {
        return error("expired_token", "The device_code has expired.");
    }
    let early = now.duration_since(g.last_poll) + JITTER < Duration::from_secs(g.interval);
    g.last_poll = now;
    match g.status.clone() {
        DeviceStatus::Used => error(
            "incorrect_device_code",
            "The device_code provided is not valid.",
        ),
        DeviceStatus::Denied => error("access_denied", "The authorization request was denied."),
        DeviceStatus::Pending if early => {
            g.interval += 5;
            let mut e = error(
                "slow_down",
                "Too many requests have been made in the same timeframe.",
            );
            e["interval"] = json!(g.interval);
            e
        }
        DeviceStatus::Pending => error(
            "authorization_pending",
            "The authorization request is still pending.",
        ),
        DeviceStatus::Approved(login) => {
            g.status = DeviceStatus::Used;
            let token = format!(
                "ghu_{}",
                alnum::<36>(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            );
            let refresh = format!(
                "ghr_{}",
                alnum::<76>(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            );
            let _ = st.account(&login);
            st.tokens.insert(
                token.clone(),
                Token {
                    identity: Identity::User(login),
                    expires_at: Some(Utc::now() + chrono::Duration::seconds(USER_TOKEN_TTL_SECS)),
                },
            );
            json!({
                "access_token": token,
                "expires_in": USER_TOKEN_TTL_SECS,
                "refresh_token": refresh,
                "refresh_token_expires_in": REFRESH_TTL_SECS,
                "token_type": "bearer",
                "scope": "",
            })
        }
    }
}

/// Approve (`Some(login)`) or deny (`None`) the pending grant with `user_code`; `false` if there
/// is no such pending code.
pub(crate) fn decide(st: &mut State, user_code: &str, login: Option<&str>) -> bool {
    let code = user_code.trim().to_ascii_uppercase();
    let Some(g) = st
        .device_grants
        .iter_mut()
        .find(|g| g.user_code == code && g.status == DeviceStatus::Pending)
    else {
        return false;
    };
    g.status = login.map_or(DeviceStatus::Denied, |l| {
        DeviceStatus::Approved(l.to_string())
    });
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h
    }

    async fn body_of(resp: Response) -> (String, String) {
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (ct, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn post(st: &mut State, headers: &HeaderMap, rest: &str, form: &[(&str, &str)]) -> Value {
        let body = serde_urlencoded::to_string(form).unwrap();
        let (_, text) = body_of(handle(st, &Method::POST, headers, rest, body.as_bytes())).await;
        serde_json::from_str(&text).unwrap()
    }

    #[tokio::test]
    async fn the_device_flow_answers_as_github_does() {
        let mut st = State {
            base_url: "http://127.0.0.1:1".into(),
            ..State::default()
        };
        let h = json_headers();
        let v = post(&mut st, &h, "device/code", &[("client_id", "nope")]).await;
        assert_eq!(v["error"], "incorrect_client_credentials");
        st.oauth_clients.insert("Iv1.x".into());
        assert_eq!(
            post(&mut st, &h, "device/code", &[("client_id", "Iv1.x")]).await["error"],
            "device_flow_disabled"
        );
        st.device_clients.insert("Iv1.x".into());
        let code = post(&mut st, &h, "device/code", &[("client_id", "Iv1.x")]).await;
        assert_eq!(
            (code["interval"].as_u64(), code["expires_in"].as_i64()),
            (Some(5), Some(900))
        );
        assert_eq!(code["verification_uri"], "http://127.0.0.1:1/login/device");
        let device_code = code["device_code"].as_str().unwrap().to_string();
        let poll = |dc: &str| {
            vec![
                ("client_id", "Iv1.x".to_string()),
                ("device_code", dc.to_string()),
                ("grant_type", DEVICE_GRANT.to_string()),
            ]
        };
        let form = poll(&device_code);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Polled at once: faster than the interval.
        let v = post(&mut st, &h, "oauth/access_token", &form).await;
        assert_eq!(
            (v["error"].as_str(), v["interval"].as_u64()),
            (Some("slow_down"), Some(10))
        );
        st.device_grants[0].last_poll =
            Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
        assert_eq!(
            post(&mut st, &h, "oauth/access_token", &form).await["error"],
            "authorization_pending"
        );
        let user_code = code["user_code"].as_str().unwrap();
        assert!(decide(
            &mut st,
            &user_code.to_ascii_lowercase(),
            Some("ada")
        ));
        assert!(!decide(&mut st, user_code, Some("bo")), "decided once");
        st.device_grants[0].last_poll =
            Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
        let v = post(&mut st, &h, "oauth/access_token", &form).await;
        let token = v["access_token"].as_str().unwrap();
        assert!(
            token.starts_with("ghu_") && v["refresh_token"].as_str().unwrap().starts_with("ghr_")
        );
        assert_eq!(st.tokens[token].identity, Identity::User("ada".into()));
        st.device_grants[0].last_poll =
            Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
        assert_eq!(
            post(&mut st, &h, "oauth/access_token", &form).await["error"],
            "incorrect_device_code",
            "spent"
        );
        let mut wrong = form.clone();
        wrong[2] = ("grant_type", "authorization_code");
        assert_eq!(
            post(&mut st, &h, "oauth/access_token", &wrong).await["error"],
            "unsupported_grant_type"
        );

        // Denied, expired; and form-encoded answers for clients that don't ask for JSON.
        let code = post(&mut st, &h, "device/code", &[("client_id", "Iv1.x")]).await;
        assert!(decide(&mut st, code["user_code"].as_str().unwrap(), None));
        let dc = code["device_code"].as_str().unwrap().to_string();
        st.device_grants[1].last_poll =
            Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
        let form = poll(&dc);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            post(&mut st, &h, "oauth/access_token", &form).await["error"],
            "access_denied"
        );
        st.device_grants[1].expires_at = Utc::now() - chrono::Duration::seconds(1);
        let body = serde_urlencoded::to_string(&form).unwrap();
        let (ct, text) = body_of(handle(
            &mut st,
            &Method::POST,
            &HeaderMap::new(),
            "oauth/access_token",
            body.as_bytes(),
        ))
        .await;
        assert!(ct.starts_with("application/x-www-form-urlencoded"), "{ct}");
        assert!(text.starts_with("error=expired_token&"), "{text}");
    }
}
