//! `/slipway link github`: the GitHub App's user authorization, device flow.
//!
//! The ack does no network I/O: it checks what it can locally (a known identity with a GitHub
//! login in policy, a client id, a token key) and spawns the flow. The flow asks
//! `POST {oauth}/login/device/code` for a code, shows it through the command's `response_url`,
//! polls `POST {oauth}/login/oauth/access_token` at GitHub's interval (`authorization_pending`
//! waits, `slow_down` waits longer, `expired_token` and `access_denied` end it), then asks
//! `GET {api}/user` who the token is. Only a token of the login the policy maps the person to is
//! kept, sealed (see `tokens`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, Request, header};
use serde_json::Value;
use slipway_core::policy::Identity;

use super::ChangeService;
use super::tokens::LinkedAccount;
use crate::config::Secret;
use crate::ctx::Ctx;
use crate::slack::client::Message;
use crate::slack::events::SlashCommand;

/// Biggest response body read from GitHub's OAuth endpoints.
const MAX_BODY: usize = 64 * 1024;
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// GitHub's grant type for the device flow.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// GitHub adds 5 s to the interval on each `slow_down`.
const SLOW_DOWN_STEP: u64 = 5;

/// One HTTP exchange; the body is never logged (it may hold a token).
async fn exchange(
    method: Method,
    url: &str,
    bearer: Option<&Secret>,
    form: Option<String>,
) -> Result<(u16, Value), String> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "slipway-bridge");
    if let Some(t) = bearer {
        req = req
            .header(header::AUTHORIZATION, format!("Bearer {}", &*t.expose()))
            .header("x-github-api-version", "2022-11-28");
    }
    if form.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let req = req
        .body(form.unwrap_or_default())
        .map_err(|_| format!("bad URL {url}"))?;
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, crate::https::client()?.request(req))
        .await
        .map_err(|_| format!("{url} timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_BODY)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    // GitHub answers form-encoded unless asked for JSON; accept both.
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    });
    Ok((status, value))
}

/// `POST /login/device/code`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
}

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(|x| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    })
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

impl DeviceCode {
    pub fn parse(status: u16, v: &Value) -> Result<DeviceCode, String> {
        if let Some(e) = text(v, "error") {
            return Err(match e.as_str() {
                "device_flow_disabled" => "the GitHub App doesn't have the device flow enabled (App settings → Enable Device Flow)".into(),
                "incorrect_client_credentials" => "GitHub doesn't know the configured client id (SLIPWAY_GITHUB_CLIENT_ID)".into(),
                other => format!("GitHub answered `{other}`"),
            });
        }
        let field =
            |k: &str| text(v, k).ok_or_else(|| format!("GitHub's answer ({status}) has no `{k}`"));
        Ok(DeviceCode {
            device_code: field("device_code")?,
            user_code: field("user_code")?,
            verification_uri: field("verification_uri")?,
            expires_in: num(v, "expires_in").unwrap_or(900).clamp(1, 3600),
            interval: num(v, "interval").unwrap_or(5).min(120),
        })
    }
}

/// One poll's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// A token, with its lifetime in seconds if GitHub gave one.
    Token {
        token: Secret,
        expires_in: Option<u64>,
    },
    /// Not yet: wait `interval` and ask again.
    Pending,
    /// Asked too fast: wait this new interval from now on.
    SlowDown(u64),
    Expired,
    Denied,
    Failed(String),
}

impl Poll {
    /// Classify an access-token answer; `interval` is the current polling interval.
    pub fn classify(status: u16, v: &Value, interval: u64) -> Poll {
        if let Some(token) = text(v, "access_token") {
            return Poll::Token {
                token: Secret::new(token),
                expires_in: num(v, "expires_in"),
            };
        }
        match text(v, "error").as_deref() {
            Some("authorization_pending") => Poll::Pending,
            Some("slow_down") => Poll::SlowDown(
                num(v, "interval")
                    .unwrap_or(interval + SLOW_DOWN_STEP)
                    .max(interval + 1),
            ),
            Some("expired_token") => Poll::Expired,
            Some("access_denied") => Poll::Denied,
            Some("incorrect_client_credentials") => {
                Poll::Failed("GitHub doesn't know the configured client id".into())
            }
            Some("device_flow_disabled") => {
                Poll::Failed("the GitHub App doesn't have the device flow enabled".into())
            }
            Some("incorrect_device_code" | "bad_verification_code") => {
                Poll::Failed("GitHub no longer knows this code".into())
            }
            Some("unsupported_grant_type") => Poll::Failed("GitHub refused the grant type".into()),
            Some(other) => Poll::Failed(format!("GitHub answered `{other}`")),
            None => Poll::Failed(format!("GitHub answered {status} without a token")),
        }
    }
}

/// Takes the person's slot out of `linking` when the flow ends, however it ends.
struct Slot<'a> {
    set: &'a Mutex<HashSet<String>>,
    user: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        slipway_infra::sync::lock(self.set).remove(&self.user);
    }
}

/// GitHub didn't start the device flow (its cause is logged).
const START_FAILED: &str = ":x: Couldn't start the GitHub authorization (GitHub didn't answer as expected); try again in a minute.";

impl ChangeService {
    /// The ack for `/slipway link github`: local checks only, then the flow runs in a task.
    pub fn link_github(
        self: &Arc<Self>,
        state: &Ctx,
        cmd: &SlashCommand,
        identity: Option<&Identity>,
    ) -> String {
        let Some(identity) = identity else {
            return format!(
                "Slipway doesn't know you, so there is nothing to link; ask {} to add you to the policy.",
                state.policy().support()
            );
        };
        // A directory person without a GitHub login gets theirs from this link; a static entry
        // must name it in the policy.
        let from_directory = matches!(state.people.links().link(&cmd.user.user_id), Ok(Some(_)));
        let want = identity.github.clone();
        if want.is_none() && !from_directory {
            return format!(
                "The policy maps you to no GitHub login, so a linked account couldn't be checked; ask {} to add `github:` to your identity.",
                state.policy().support()
            );
        }
        if !self.tokens.enabled() {
            return format!(
                ":no_entry: GitHub account linking is off: this bridge has no key to encrypt tokens at rest (SLIPWAY_TOKEN_KEY or `github.token_key`), so it won't store one. Ask {}.",
                state.policy().support()
            );
        }
        let Some(client_id) = self.cfg.client_id.clone() else {
            return format!(
                ":no_entry: GitHub account linking is off: no GitHub App client id is configured (SLIPWAY_GITHUB_CLIENT_ID or `github.client_id`). Ask {}.",
                state.policy().support()
            );
        };
        if cmd.response_url.is_empty() {
            return "Slack gave this command no response URL, so the code couldn't be shown; try again.".into();
        }
        if !slipway_infra::sync::lock(&self.linking).insert(cmd.user.user_id.clone()) {
            return "A GitHub authorization for you is already waiting: use the code Slipway showed you, or wait for it to expire.".into();
        }
        let (svc, st) = (self.clone(), state.clone());
        let (user, url) = (cmd.user.user_id.clone(), cmd.response_url.clone());
        let shown = want.clone();
        tokio::spawn(async move {
            let _slot = Slot {
                set: &svc.linking,
                user: user.clone(),
            };
            let text = match svc
                .device_flow(&st, &client_id, &user, want.as_deref(), &url)
                .await
            {
                Ok(done) | Err(done) => done,
            };
            svc.tell(&st, &url, text).await;
        });
        match shown {
            Some(login) => format!(
                "Starting GitHub authorization for `{login}`… a one-time code follows here in a moment."
            ),
            None => "Starting GitHub authorization… a one-time code follows here in a moment."
                .to_string(),
        }
    }

    async fn tell(&self, state: &Ctx, response_url: &str, text: String) {
        if let Err(e) = state
            .slack
            .respond(response_url, &Message::text(text), false)
            .await
        {
            tracing::warn!(error = %e, "response_url failed");
        }
    }

    /// The whole flow; `Ok`/`Err` is the last message for the person either way.
    async fn device_flow(
        &self,
        state: &Ctx,
        client_id: &str,
        slack_user: &str,
        want: Option<&str>,
        response_url: &str,
    ) -> Result<String, String> {
        let code = self.request_code(client_id).await?;
        let minutes = code.expires_in.div_ceil(60);
        self.tell(
            state,
            response_url,
            format!(
                ":key: To link your GitHub account, open {} and enter the code *{}* (valid for {minutes} min).{}",
                code.verification_uri,
                code.user_code,
                want.map(|w| format!(" Sign in as `{w}`: Slipway keeps the token only if it is that account's.")).unwrap_or_default()
            ),
        )
        .await;
        let (token, expires_in) = self.poll_token(client_id, &code).await?;
        let login = self.token_login(&token, want).await?;
        if want.is_none() {
            record_directory_login(state, slack_user, &login).await?;
        }
        let now = state.clock.now();
        let account = LinkedAccount {
            login: login.clone(),
            token,
            linked_at: now,
            expires_at: expires_in
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| now + chrono::Duration::seconds(s)),
        };
        self.tokens
            .link_account(slack_user, &account)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, slack_user, "storing a linked token");
                ":x: Slipway couldn't store the token, so nothing was linked; try again, and tell the platform team if it keeps failing.".to_string()
            })?;
        tracing::info!(slack_user, github = %login, "GitHub account linked");
        Ok(format!(
            ":white_check_mark: Linked GitHub account `{login}`. Approve and Reject in Slack now submit reviews as you."
        ))
    }

    /// Phase 1: a one-time code for the person to enter in GitHub.
    async fn request_code(&self, client_id: &str) -> Result<DeviceCode, String> {
        let form =
            serde_urlencoded::to_string([("client_id", client_id)]).map_err(|e| e.to_string())?;
        let (status, v) = exchange(
            Method::POST,
            &format!("{}/login/device/code", self.cfg.oauth_url),
            None,
            Some(form),
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "starting GitHub's device flow");
            START_FAILED.to_string()
        })?;
        DeviceCode::parse(status, &v).map_err(|e| {
            tracing::warn!(error = %e, "GitHub's device-flow answer");
            START_FAILED.to_string()
        })
    }

    /// Phase 2: poll at GitHub's pace until the person authorizes or declines, or the code
    /// expires. Returns the token and its lifetime in seconds, if GitHub gave one.
    async fn poll_token(
        &self,
        client_id: &str,
        code: &DeviceCode,
    ) -> Result<(Secret, Option<u64>), String> {
        const EXPIRED: &str = ":hourglass: The GitHub code expired before it was used; run `/slipway link github` again.";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in);
        let mut interval = code.interval.max(1);
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(EXPIRED.into());
            }
            let form = serde_urlencoded::to_string([
                ("client_id", client_id),
                ("device_code", code.device_code.as_str()),
                ("grant_type", DEVICE_GRANT),
            ])
            .map_err(|e| e.to_string())?;
            let (status, v) = match exchange(
                Method::POST,
                &format!("{}/login/oauth/access_token", self.cfg.oauth_url),
                None,
                Some(form),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    // A transient network failure: keep polling until the code expires.
                    tracing::warn!(error = %e, "polling GitHub for a device-flow token");
                    continue;
                }
            };
            match Poll::classify(status, &v, interval) {
                Poll::Token { token, expires_in } => return Ok((token, expires_in)),
                Poll::Pending => {}
                Poll::SlowDown(next) => interval = next,
                Poll::Expired => return Err(EXPIRED.into()),
                Poll::Denied => return Err(
                    ":no_entry_sign: The authorization was declined in GitHub; nothing was linked."
                        .into(),
                ),
                Poll::Failed(why) => {
                    return Err(format!(
                        ":x: GitHub authorization failed: {why}; nothing was linked."
                    ));
                }
            }
        }
    }

    /// Phase 3: whose token it is. Only a token of the login the policy maps the person to is
    /// kept; anyone else's would let them review as someone else.
    async fn token_login(&self, token: &Secret, want: Option<&str>) -> Result<String, String> {
        let user_url = format!("{}/user", self.cfg.api_url.trim_end_matches('/'));
        let (status, v) = exchange(Method::GET, &user_url, Some(token), None)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "asking GitHub whose token it is");
                ":x: Couldn't ask GitHub who the new token belongs to; nothing was linked. Try again.".to_string()
            })?;
        let Some(login) = text(&v, "login").filter(|_| (200..300).contains(&status)) else {
            return Err(format!(
                ":x: GitHub answered {status} to `GET /user` with the new token; nothing was linked."
            ));
        };
        if let Some(want) = want
            && !login.eq_ignore_ascii_case(want)
        {
            return Err(format!(
                ":no_entry: You authorized as GitHub user `{login}`, but the policy maps you to `{want}`; nothing was stored. Sign in to GitHub as `{want}` and run `/slipway link github` again."
            ));
        }
        Ok(login)
    }
}

/// A directory person's GitHub login, from the account they just proved they own: kept on
/// their link (so reviews and the runner's snapshot know it), unless it is someone else's.
async fn record_directory_login(state: &Ctx, slack_user: &str, login: &str) -> Result<(), String> {
    let me = state
        .person(&slipway_core::policy::SlackUser::new(slack_user))
        .await?;
    if let Some(other) = state.people.by_github(&state.policy(), login)
        && other.subject != me.subject
    {
        return Err(format!(
            ":no_entry: GitHub user `{login}` already belongs to someone else in Slipway; nothing was stored."
        ));
    }
    let Ok(Some(mine)) = state.people.links().link(slack_user) else {
        return Err(":x: Slipway couldn't find your directory link, so nothing was linked; run the command again.".into());
    };
    let link = crate::identity::links::Link {
        github: Some(login.to_string()),
        ..mine
    };
    state
        .people
        .links()
        .set_link(slack_user, &link)
        .map_err(|e| {
            tracing::error!(error = %e, slack_user, "recording a linked GitHub login");
            ":x: Slipway couldn't record your GitHub login, so nothing was linked; try again."
                .to_string()
        })?;
    state.people.touch();
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::gitops::oauth_url_for;

    #[test]
    fn oauth_urls() {
        assert_eq!(
            oauth_url_for("https://api.github.com"),
            "https://github.com"
        );
        assert_eq!(
            oauth_url_for("https://api.github.com/"),
            "https://github.com"
        );
        assert_eq!(
            oauth_url_for("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com"
        );
        assert_eq!(
            oauth_url_for("http://127.0.0.1:4000/"),
            "http://127.0.0.1:4000"
        );
    }

    #[test]
    fn device_codes_parse() {
        let v = json!({"device_code": "d", "user_code": "ABCD-1234", "verification_uri": "https://github.com/login/device", "expires_in": 900, "interval": 5});
        assert_eq!(
            DeviceCode::parse(200, &v).unwrap(),
            DeviceCode {
                device_code: "d".into(),
                user_code: "ABCD-1234".into(),
                verification_uri: "https://github.com/login/device".into(),
                expires_in: 900,
                interval: 5
            }
        );
        // Form-encoded answers arrive as strings.
        let v = json!({"device_code": "d", "user_code": "U", "verification_uri": "u", "expires_in": "600", "interval": "1"});
        assert_eq!(DeviceCode::parse(200, &v).unwrap().expires_in, 600);
        assert!(
            DeviceCode::parse(200, &json!({"error": "device_flow_disabled"}))
                .unwrap_err()
                .contains("device flow")
        );
        assert!(
            DeviceCode::parse(404, &json!({"message": "Not Found"}))
                .unwrap_err()
                .contains("device_code")
        );
    }

    #[test]
    fn polls_classify() {
        assert_eq!(
            Poll::classify(200, &json!({"error": "authorization_pending"}), 5),
            Poll::Pending
        );
        assert_eq!(
            Poll::classify(200, &json!({"error": "slow_down", "interval": 10}), 5),
            Poll::SlowDown(10)
        );
        assert_eq!(
            Poll::classify(200, &json!({"error": "slow_down"}), 5),
            Poll::SlowDown(10)
        );
        assert_eq!(
            Poll::classify(200, &json!({"error": "slow_down", "interval": 1}), 5),
            Poll::SlowDown(6),
            "never faster"
        );
        assert_eq!(
            Poll::classify(200, &json!({"error": "expired_token"}), 5),
            Poll::Expired
        );
        assert_eq!(
            Poll::classify(200, &json!({"error": "access_denied"}), 5),
            Poll::Denied
        );
        assert!(matches!(
            Poll::classify(200, &json!({"error": "incorrect_device_code"}), 5),
            Poll::Failed(_)
        ));
        assert!(matches!(
            Poll::classify(500, &json!(null), 5),
            Poll::Failed(_)
        ));
        let Poll::Token { token, expires_in } = Poll::classify(
            200,
            &json!({"access_token": "ghu_x", "expires_in": 28800, "token_type": "bearer"}),
            5,
        ) else {
            panic!()
        };
        assert_eq!((&*token.expose(), expires_in), ("ghu_x", Some(28800)));
    }
}
