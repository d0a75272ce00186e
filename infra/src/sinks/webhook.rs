//! A generic signed webhook, for ServiceNow or anything else that takes JSON: one POST per audit
//! record, the record as the body, signed like GitHub signs its webhooks.
//!
//! Headers: `X-Slipway-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (compare it in
//! constant time), `X-Slipway-Event-Id` (the record's event id: delivery is at least once, so
//! receivers dedupe on it), `X-Slipway-Writer` and `X-Slipway-Seq`.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use hyper::Method;
use sha2::Sha256;
use slipway_core::audit::AuditRecord;

use super::http::{Http, status_error};
use super::{Delivery, Sink, SinkError};
use crate::credential::Credential;

/// The webhook sink's spool cursor.
pub const CURSOR: &str = "webhook";

/// Where to send, and the shared secret.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: Credential,
    pub timeout: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct WebhookSink {
    settings: WebhookSettings,
    http: Http,
}

impl WebhookSink {
    pub fn new(settings: WebhookSettings) -> Result<WebhookSink, String> {
        if settings.secret.get().is_empty() {
            return Err(
                "the audit webhook needs a secret to sign with (audit.webhook.secret)".into(),
            );
        }
        let http = Http::new(settings.timeout)?;
        Ok(WebhookSink { settings, http })
    }

    async fn post(&self, record: &AuditRecord) -> Result<(), SinkError> {
        let body = serde_json::to_vec(record)
            .map_err(|e| SinkError::Config(format!("cannot encode record: {e}")))?;
        let signature = sign(self.settings.secret.get().as_bytes(), &body);
        let seq = record.seq.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("user-agent", "slipway-audit"),
            ("x-slipway-signature", signature.as_str()),
            ("x-slipway-event-id", record.event_id.as_str()),
            ("x-slipway-writer", record.writer.as_str()),
            ("x-slipway-seq", seq.as_str()),
        ];
        let resp = self
            .http
            .send(Method::POST, &self.settings.url, &headers, Some(body))
            .await?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(status_error(
                &format!(
                    "audit webhook {} (event {})",
                    self.settings.url, record.event_id
                ),
                &resp,
            ))
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn cursor(&self) -> &'static str {
        CURSOR
    }

    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        Delivery::in_order(records, |r| self.post(r)).await
    }
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so the `else` cannot be reached.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::from("sha256=");
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_github_test_vector() {
        // The same construction as GitHub's X-Hub-Signature-256, so receivers can reuse code.
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn a_secret_is_required_and_never_printed() {
        let settings = WebhookSettings {
            url: "http://127.0.0.1:9/hook".into(),
            secret: String::new().into(),
            timeout: Duration::from_secs(1),
        };
        assert!(WebhookSink::new(settings.clone()).is_err());
        let settings = WebhookSettings {
            secret: "hunter2".into(),
            ..settings
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
