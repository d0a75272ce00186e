//! A small Alertmanager v2 API client: silences and alerts, over hyper (https through rustls;
//! plain http only to loopback, which the configuration enforces).

use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Biggest response body read.
const MAX_BODY: usize = 8 * 1024 * 1024;

fn client()
-> Result<&'static hyper_util::client::legacy::Client<crate::https::Https, String>, ApiError> {
    crate::https::client().map_err(ApiError::Unreachable)
}

/// A matcher as the API spells it: the one core parses.
pub use slipway_core::command::silence::Matcher;

/// `POST /api/v2/silences`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

/// A silence as `GET /api/v2/silences` returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub status: SilenceStatus,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    pub state: String,
}

/// An alert as `GET /api/v2/alerts` returns it (the parts Slipway shows).
#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub labels: std::collections::BTreeMap<String, String>,
    pub status: AlertStatus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// The silences that suppress this alert now.
    #[serde(default)]
    pub silenced_by: Vec<String>,
}

impl Alert {
    /// `HighLatency{service="api"}`.
    pub fn describe(&self) -> String {
        let name = self.labels.get("alertname").map_or("alert", String::as_str);
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{name}{{{}}}", rest.join(", "))
    }
}

/// What went wrong talking to Alertmanager.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The cause (for the log, through `Debug`) stays out of the message Slack shows.
    #[error("Alertmanager could not be reached")]
    Unreachable(String),
    /// The API answered with an error; the message is Alertmanager's own.
    #[error("Alertmanager refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Alertmanager sent an answer Slipway could not read")]
    BadAnswer(String),
}

/// One Alertmanager, by its base URL.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    base: String,
}

impl Alertmanager {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, bytes::Bytes), ApiError> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.unwrap_or_default())
            .map_err(|e| ApiError::Unreachable(format!("bad URL {}: {e}", self.base)))?;
        let resp = client()?
            .request(req)
            .await
            .map_err(|e| ApiError::Unreachable(format!("{}: {e}", self.base)))?;
        let status = resp.status();
        let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), MAX_BODY)
            .await
            .map_err(|e| ApiError::BadAnswer(e.to_string()))?;
        Ok((status, body))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, ApiError> {
        let (status, bytes) = self.call(method, path, body).await?;
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadAnswer(e.to_string()))
    }

    /// Create a silence; returns its id.
    pub async fn create_silence(&self, silence: &NewSilence) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "silenceID")]
            silence_id: String,
        }
        let body =
            serde_json::to_string(silence).map_err(|e| ApiError::BadAnswer(e.to_string()))?;
        let created: Created = self
            .json(Method::POST, "/api/v2/silences", Some(body))
            .await?;
        Ok(created.silence_id)
    }

    pub async fn silences(&self) -> Result<Vec<Silence>, ApiError> {
        self.json(Method::GET, "/api/v2/silences", None).await
    }

    /// One silence; `None` if Alertmanager has no silence with that id.
    pub async fn silence(&self, id: &str) -> Result<Option<Silence>, ApiError> {
        let (status, bytes) = self
            .call(Method::GET, &format!("/api/v2/silence/{id}"), None)
            .await?;
        // 422: not a UUID, so certainly not a silence.
        if status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ApiError::BadAnswer(e.to_string()))
    }

    /// Expire a silence.
    pub async fn expire(&self, id: &str) -> Result<(), ApiError> {
        let (status, bytes) = self
            .call(Method::DELETE, &format!("/api/v2/silence/{id}"), None)
            .await?;
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        Ok(())
    }

    /// Every alert Alertmanager holds, with its silenced/inhibited status.
    pub async fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        self.json(Method::GET, "/api/v2/alerts", None).await
    }
}

/// Alertmanager's errors are a JSON string, or `{code, message}`, or plain text.
fn refused(status: StatusCode, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body);
    let message = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v["message"]
            .as_str()
            .map_or_else(|| text.to_string(), String::from),
        Err(_) => text.trim().to_string(),
    };
    let message: String = message.chars().take(500).collect();
    ApiError::Refused {
        status: status.as_u16(),
        message: if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Slack shows never carries the transport's or the parser's own words.
    #[test]
    fn transport_and_parse_causes_stay_out_of_the_message() {
        let down = ApiError::Unreachable(
            "http://127.0.0.1:9093: client error (Connect): tcp connect error".into(),
        );
        assert_eq!(down.to_string(), "Alertmanager could not be reached");
        assert!(
            format!("{down:?}").contains("tcp connect error"),
            "kept for the log"
        );
        let odd = ApiError::BadAnswer("expected value at line 1 column 1".into());
        assert!(!odd.to_string().contains("line 1"));
    }

    #[test]
    fn error_bodies() {
        let e = refused(
            StatusCode::BAD_REQUEST,
            br#""silence invalid: invalid label name \"1bad\"""#,
        );
        assert_eq!(
            e.to_string(),
            "Alertmanager refused the request (400): silence invalid: invalid label name \"1bad\""
        );
        let e = refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"code":601,"message":"m"}"#,
        );
        assert!(e.to_string().ends_with("(422): m"));
        let e = refused(StatusCode::INTERNAL_SERVER_ERROR, b"");
        assert!(e.to_string().ends_with("Internal Server Error"));
    }

    #[test]
    fn wire_format() {
        let s = NewSilence {
            matchers: vec![Matcher {
                name: "alertname".into(),
                value: "X".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: DateTime::from_timestamp(0, 0).unwrap(),
            ends_at: DateTime::from_timestamp(3600, 0).unwrap(),
            created_by: "a@example.com".into(),
            comment: "c".into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["matchers"][0]["isRegex"], false);
        assert_eq!(v["createdBy"], "a@example.com");
        assert_eq!(v["endsAt"], "1970-01-01T01:00:00Z");
    }
}
