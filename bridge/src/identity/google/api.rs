//! The Directory API calls the sync makes: `users.list` (projection `full`, for custom schemas),
//! `groups.list`, `members.list` (with derived membership), `users.watch` and `channels.stop`.
//! Lists are read to their last page (`pageToken` → `nextPageToken`), at the API's largest page
//! size; a token that repeats, or a list longer than [`MAX_PAGES`], is an error rather than a
//! loop. A 401 drops the cached access token and retries once.

use axum::http::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::GoogleError;
use super::http::{Body, api_message, send};
use super::model::{GoogleGroup, GoogleMember, GoogleUser};
use super::token::Tokens;
use crate::config::Secret;

/// The most pages one list may have (500 users a page: five million users).
pub const MAX_PAGES: usize = 10_000;

/// A channel Google opened for `users.watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub id: String,
    pub resource_id: String,
    /// Unix milliseconds.
    pub expiration_ms: i64,
}

/// The Directory API as the service account's admin sees it.
#[derive(Debug)]
pub struct DirectoryApi {
    /// The root, e.g. `https://admin.googleapis.com`.
    root: String,
    customer: String,
    tokens: Tokens,
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn malformed(what: &'static str, e: &serde_json::Error) -> GoogleError {
    GoogleError::Malformed {
        what,
        detail: format!(
            "{} (line {}, column {})",
            e.classify_name(),
            e.line(),
            e.column()
        ),
    }
}

/// serde_json's error category, without the value it was looking at.
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "not the documented shape",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

impl DirectoryApi {
    pub fn new(root: &str, customer: &str, tokens: Tokens) -> DirectoryApi {
        DirectoryApi {
            root: root.trim_end_matches('/').to_string(),
            customer: customer.to_string(),
            tokens,
        }
    }

    /// One authorised call; the body of a 2xx answer.
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, GoogleError> {
        let url = format!("{}/{path}", self.root);
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let req_body = body.map_or(Body::None, |b| Body::Json(b.to_string()));
            let (status, bytes) = send(what, method.clone(), &url, Some(&token), req_body).await?;
            if status == 401 && attempt == 0 {
                self.tokens.invalidate().await;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(GoogleError::Api {
                    status,
                    what,
                    message: api_message(&bytes),
                });
            }
            return Ok(bytes);
        }
        Err(GoogleError::Api {
            status: 401,
            what,
            message: "the access token was refused twice".into(),
        })
    }

    /// Every item of a list: `path?query&pageToken=…` until there is no `nextPageToken`.
    async fn all<T: DeserializeOwned>(
        &self,
        what: &'static str,
        path: &str,
        params: &[(&str, &str)],
        field: &str,
    ) -> Result<Vec<T>, GoogleError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut pairs = params.to_vec();
            if let Some(t) = &next {
                pairs.push(("pageToken", t));
            }
            let bytes = self
                .call(
                    what,
                    Method::GET,
                    &format!("{path}?{}", query(&pairs)),
                    None,
                )
                .await?;
            let mut page: Value =
                serde_json::from_slice(&bytes).map_err(|e| malformed(what, &e))?;
            let items = match page.get_mut(field).map(Value::take) {
                None | Some(Value::Null) => Vec::new(),
                Some(list) => serde_json::from_value(list).map_err(|e| malformed(what, &e))?,
            };
            out.extend(items);
            let token = page["nextPageToken"].as_str().filter(|t| !t.is_empty());
            match token {
                None => return Ok(out),
                Some(t) if next.as_deref() == Some(t) => {
                    return Err(GoogleError::Malformed {
                        what,
                        detail: "the same page token came back twice".into(),
                    });
                }
                Some(t) => next = Some(t.to_string()),
            }
        }
        Err(GoogleError::Malformed {
            what,
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }

    pub async fn users(&self) -> Result<Vec<GoogleUser>, GoogleError> {
        let params = [
            ("customer", self.customer.as_str()),
            ("projection", "full"),
            ("maxResults", "500"),
        ];
        self.all("users.list", "admin/directory/v1/users", &params, "users")
            .await
    }

    pub async fn groups(&self) -> Result<Vec<GoogleGroup>, GoogleError> {
        let params = [("customer", self.customer.as_str()), ("maxResults", "200")];
        self.all(
            "groups.list",
            "admin/directory/v1/groups",
            &params,
            "groups",
        )
        .await
    }

    pub async fn members(&self, group_id: &str) -> Result<Vec<GoogleMember>, GoogleError> {
        let path = format!(
            "admin/directory/v1/groups/{}/members",
            url::form_urlencoded::byte_serialize(group_id.as_bytes()).collect::<String>()
        );
        let params = [("maxResults", "200"), ("includeDerivedMembership", "true")];
        self.all("members.list", &path, &params, "members").await
    }

    /// Open a channel for `event` on the users of the customer.
    pub async fn watch(
        &self,
        event: &str,
        id: &str,
        address: &str,
        token: &Secret,
        expiration_ms: i64,
    ) -> Result<Watch, GoogleError> {
        const WHAT: &str = "users.watch";
        let params = [("customer", self.customer.as_str()), ("event", event)];
        let body = json!({
            "id": id, "type": "web_hook", "address": address, "token": &*token.expose(),
            "expiration": expiration_ms.to_string(),
        });
        let path = format!("admin/directory/v1/users/watch?{}", query(&params));
        let bytes = self.call(WHAT, Method::POST, &path, Some(&body)).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| malformed(WHAT, &e))?;
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let expiration = match &v["expiration"] {
            Value::String(s) => s.parse().ok(),
            other => other.as_i64(),
        };
        match (text("id"), text("resourceId"), expiration) {
            (Some(id), Some(resource_id), Some(expiration_ms)) => Ok(Watch {
                id,
                resource_id,
                expiration_ms,
            }),
            _ => Err(GoogleError::Malformed {
                what: WHAT,
                detail: "no id, resourceId or expiration".into(),
            }),
        }
    }

    pub async fn stop(&self, channel: &Watch) -> Result<(), GoogleError> {
        let body = json!({"id": channel.id, "resourceId": channel.resource_id});
        self.call(
            "channels.stop",
            Method::POST,
            "admin/directory_v1/channels/stop",
            Some(&body),
        )
        .await
        .map(|_| ())
    }
}
