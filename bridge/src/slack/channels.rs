//! `conversations.info`, for one fact: whether a channel is shared with another organisation
//! (Slack Connect), where protected output must never be posted. slack-morphism's channel model
//! has no `is_ext_shared`, so this one call goes through the bridge's small HTTPS client.
//! Answers are cached for a minute; a failure is an error the caller treats as "shared".

use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;

use super::client::{Slack, SlackError};

const CACHE_FOR: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(5);

fn fail(message: impl Into<String>) -> SlackError {
    SlackError {
        method: "conversations.info",
        message: message.into(),
    }
}

impl Slack {
    /// Whether `channel` is shared with another organisation (`is_ext_shared`, or an external
    /// share pending).
    pub async fn is_externally_shared(&self, channel: &str) -> Result<bool, SlackError> {
        let cached = slipway_infra::sync::lock(&self.facts().0)
            .get(channel)
            .filter(|(_, at)| at.elapsed() < CACHE_FOR)
            .map(|(shared, _)| *shared);
        if let Some(shared) = cached {
            return Ok(shared);
        }
        let shared = self.ask_conversations_info(channel).await?;
        slipway_infra::sync::lock(&self.facts().0)
            .insert(channel.to_string(), (shared, Instant::now()));
        Ok(shared)
    }

    async fn ask_conversations_info(&self, channel: &str) -> Result<bool, SlackError> {
        let url = format!("{}/conversations.info", self.api_base());
        let body =
            serde_urlencoded::to_string([("channel", channel)]).map_err(|e| fail(e.to_string()))?;
        let req = hyper::Request::post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", format!("Bearer {}", &*self.bot_token()))
            .body(body)
            .map_err(|e| fail(e.to_string()))?;
        let client = crate::https::client().map_err(fail)?;
        let resp = tokio::time::timeout(TIMEOUT, client.request(req))
            .await
            .map_err(|_| fail("timed out"))?
            .map_err(|e| fail(e.to_string()))?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| fail("the answer is not JSON"))?;
        if v["ok"] != true {
            return Err(fail(v["error"].as_str().unwrap_or("not ok").to_string()));
        }
        let flag = |k: &str| v["channel"][k].as_bool().unwrap_or(false);
        Ok(flag("is_ext_shared") || flag("is_pending_ext_shared"))
    }
}
