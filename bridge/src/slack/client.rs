//! The Slack Web API, through slack-morphism, with 429/Retry-After handled by its rate
//! controller. One TLS stack: rustls with aws-lc-rs.

use std::sync::Arc;
use std::time::Duration;

use slack_morphism::prelude::*;

use crate::config::SlackConfig;

/// A message: fallback text plus Block Kit blocks (as JSON, from templates).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub text: String,
    pub blocks: Vec<serde_json::Value>,
}

impl Message {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            blocks: Vec::new(),
        }
    }

    fn content(&self) -> Result<SlackMessageContent, String> {
        let mut content = SlackMessageContent::new().with_text(self.text.clone());
        if !self.blocks.is_empty() {
            let blocks: Vec<SlackBlock> =
                serde_json::from_value(serde_json::Value::Array(self.blocks.clone()))
                    .map_err(|e| format!("blocks don't match Block Kit: {e}"))?;
            content = content.with_blocks(blocks);
        }
        Ok(content)
    }
}

pub type Connector = SlackClientHyperConnector<slipway_infra::tls::Https>;

/// The bot's Slack client.
#[derive(Clone)]
pub struct Slack {
    client: Arc<SlackClient<Connector>>,
    /// Read at each call, so a rotated token is used from the next call on.
    bot_token: crate::config::Secret,
    /// The configured Web API, whose origin is the one non-Slack place a `response_url` may
    /// point (the emulator in tests).
    api: url::Url,
    /// What `conversations.info` said of channels, recently.
    facts: Arc<ChannelFacts>,
}

/// Hosts that serve Slack's `response_url`s, commercial and GovSlack (which runs on
/// `slack-gov.com` instead of `slack.com`).
pub const RESPONSE_URL_HOSTS: &[&str] = &["hooks.slack.com", "hooks.slack-gov.com"];

/// Whether a `response_url` may be followed: https on one of Slack's hosts, or the configured
/// Web API's own origin (scheme, host and port). So loopback is reachable only when the API is
/// on that very loopback address, and never with userinfo. The URL comes from a signed
/// payload, but following any host would let a payload steer the bot's POSTs anywhere.
pub fn response_url_allowed(url: &url::Url, api: &url::Url) -> bool {
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let slack = url.scheme() == "https"
        && url.port().is_none()
        && url
            .host_str()
            .is_some_and(|h| RESPONSE_URL_HOSTS.contains(&h));
    slack || url.origin() == api.origin()
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slack { token: *** }")
    }
}

/// Errors from the Slack API, with the API's own error code where there is one.
#[derive(Debug, thiserror::Error)]
#[error("Slack API {method}: {message}")]
pub struct SlackError {
    pub method: &'static str,
    pub message: String,
}

fn err(
    method: &'static str,
) -> impl FnOnce(slack_morphism::errors::SlackClientError) -> SlackError {
    move |e| SlackError {
        method,
        message: e.to_string(),
    }
}

impl Slack {
    pub fn new(cfg: &SlackConfig) -> Result<Self, String> {
        let https = slipway_infra::tls::connector(slipway_infra::tls::Connect {
            http2: true,
            ..Default::default()
        })?;
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(&cfg.api_url)
            .with_rate_control(
                SlackApiRateControlConfig::new()
                    .with_max_retries(5)
                    .with_max_delay_timeout(Duration::from_secs(60)),
            );
        let api = cfg
            .api_url
            .parse()
            .map_err(|e| format!("the Slack API URL is not a URL: {e}"))?;
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            bot_token: cfg.bot_token.clone(),
            api,
            facts: Arc::default(),
        })
    }

    pub(super) fn facts(&self) -> &ChannelFacts {
        &self.facts
    }

    /// The Web API base, without a trailing slash.
    pub(super) fn api_base(&self) -> String {
        self.api.as_str().trim_end_matches('/').to_string()
    }

    pub(super) fn bot_token(&self) -> crate::config::Exposed {
        self.bot_token.expose()
    }

    /// The bot token as slack-morphism takes it: the value in force now.
    pub(super) fn token(&self) -> SlackApiToken {
        SlackApiToken::new(SlackApiTokenValue(self.bot_token.expose().to_string()))
    }

    /// A Web API session with `token` (from [`Slack::token`]).
    pub(super) fn session<'a>(
        &'a self,
        token: &'a SlackApiToken,
    ) -> SlackClientSession<'a, Connector> {
        self.client.open_session(token)
    }

    /// The underlying client, for Socket Mode.
    pub fn client(&self) -> Arc<SlackClient<Connector>> {
        self.client.clone()
    }

    /// `chat.postMessage`; returns the message `ts`.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        msg: &Message,
    ) -> Result<String, SlackError> {
        let content = msg.content().map_err(|message| SlackError {
            method: "chat.postMessage",
            message,
        })?;
        let mut req = SlackApiChatPostMessageRequest::new(channel.into(), content);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(ts.into());
        }
        let token = self.token();
        let session = self.client.open_session(&token);
        let resp = session
            .chat_post_message(&req)
            .await
            .map_err(err("chat.postMessage"))?;
        Ok(resp.ts.0)
    }

    /// `conversations.open` with one user: the direct message channel (`D…`) between the bot
    /// and them, which `chat.update` needs to redraw a message sent there (scope `im:write`).
    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        let req = SlackApiConversationsOpenRequest::new().with_users(vec![user.into()]);
        let token = self.token();
        let session = self.client.open_session(&token);
        let resp = session
            .conversations_open(&req)
            .await
            .map_err(err("conversations.open"))?;
        Ok(resp.channel.id.0)
    }

    /// `chat.update`.
    pub async fn update(&self, channel: &str, ts: &str, msg: &Message) -> Result<(), SlackError> {
        let content = msg.content().map_err(|message| SlackError {
            method: "chat.update",
            message,
        })?;
        let req = SlackApiChatUpdateRequest::new(channel.into(), content, ts.into());
        let token = self.token();
        let session = self.client.open_session(&token);
        session
            .chat_update(&req)
            .await
            .map_err(err("chat.update"))?;
        Ok(())
    }

    /// `chat.getPermalink`: a link to a posted message.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<String, SlackError> {
        let req = SlackApiChatGetPermalinkRequest::new(channel.into(), ts.into());
        let token = self.token();
        let session = self.client.open_session(&token);
        let resp = session
            .chat_get_permalink(&req)
            .await
            .map_err(err("chat.getPermalink"))?;
        Ok(resp.permalink.to_string())
    }

    /// Reply through a `response_url` (ephemeral unless `in_channel`). A URL outside Slack's
    /// hosts is refused and nothing is sent; the error names only its host, never the path,
    /// which carries a token.
    pub async fn respond(
        &self,
        response_url: &str,
        msg: &Message,
        replace_original: bool,
    ) -> Result<(), SlackError> {
        let content = msg.content().map_err(|message| SlackError {
            method: "response_url",
            message,
        })?;
        let url: url::Url = response_url.parse().map_err(|e| SlackError {
            method: "response_url",
            message: format!("bad URL: {e}"),
        })?;
        if !response_url_allowed(&url, &self.api) {
            return Err(SlackError {
                method: "response_url",
                message: format!(
                    "refused a response_url on `{}`: only {} and the configured Slack API host are followed, so nothing was sent",
                    url.host_str().unwrap_or("no host"),
                    RESPONSE_URL_HOSTS.join(", ")
                ),
            });
        }
        let mut req = SlackApiPostWebhookMessageRequest::new(content);
        if replace_original {
            req = req.with_replace_original(true);
        }
        self.client
            .respond_to_event(&SlackResponseUrl(url), &req)
            .await
            .map_err(err("response_url"))?;
        Ok(())
    }

    /// `views.open` with a modal given as Block Kit JSON.
    pub async fn open_view(
        &self,
        trigger_id: &str,
        view: serde_json::Value,
    ) -> Result<(), SlackError> {
        let view: SlackView = serde_json::from_value(view).map_err(|e| SlackError {
            method: "views.open",
            message: format!("view doesn't match Block Kit: {e}"),
        })?;
        let req = SlackApiViewsOpenRequest::new(trigger_id.to_string().into(), view);
        let token = self.token();
        let session = self.client.open_session(&token);
        session.views_open(&req).await.map_err(err("views.open"))?;
        Ok(())
    }
}

impl Slack {
    /// `chat.postEphemeral`: a message only `user` sees, in `channel` (in a thread when
    /// `thread_ts` is given).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        msg: &Message,
    ) -> Result<(), SlackError> {
        let content = msg.content().map_err(|message| SlackError {
            method: "chat.postEphemeral",
            message,
        })?;
        let mut req = SlackApiChatPostEphemeralRequest::new(channel.into(), user.into(), content);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(ts.into());
        }
        let token = self.token();
        let session = self.client.open_session(&token);
        session
            .chat_post_ephemeral(&req)
            .await
            .map_err(err("chat.postEphemeral"))?;
        Ok(())
    }

    /// `views.publish`: `user`'s App Home, a `home` view given as Block Kit JSON.
    pub async fn publish_home(
        &self,
        user: &str,
        view: serde_json::Value,
    ) -> Result<(), SlackError> {
        let view: SlackView = serde_json::from_value(view).map_err(|e| SlackError {
            method: "views.publish",
            message: format!("view doesn't match Block Kit: {e}"),
        })?;
        let req = SlackApiViewsPublishRequest::new(user.into(), view);
        let token = self.token();
        let session = self.client.open_session(&token);
        session
            .views_publish(&req)
            .await
            .map_err(err("views.publish"))?;
        Ok(())
    }
}

/// Channel id → (shared with another organisation, when it was asked); filled by
/// `conversations.info` (see `channels`).
#[derive(Debug, Default)]
pub struct ChannelFacts(
    pub(super) std::sync::Mutex<std::collections::HashMap<String, (bool, std::time::Instant)>>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, api: &str) -> bool {
        response_url_allowed(&url.parse().unwrap(), &api.parse().unwrap())
    }

    #[test]
    fn response_urls_go_only_to_slack_or_the_configured_api() {
        let slack = "https://slack.com/api";
        assert!(allowed("https://hooks.slack.com/commands/T1/2/abc", slack));
        assert!(allowed(
            "https://hooks.slack-gov.com/actions/T1/2/abc",
            slack
        ));
        assert!(allowed(
            "https://hooks.slack.com:443/commands/T1/2/abc",
            slack
        ));
        for bad in [
            "http://hooks.slack.com/commands/T1/2/abc",
            "https://hooks.slack.com:8443/commands/T1/2/abc",
            "https://hooks.slack.com.evil.example/commands/T1/2/abc",
            "https://evil.example/hooks.slack.com/commands",
            "https://user:pw@hooks.slack.com/commands/T1/2/abc",
            "http://127.0.0.1:9000/response/1",
            "http://localhost/response/1",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            assert!(!allowed(bad, slack), "{bad}");
        }
        let emulator = "http://127.0.0.1:4000/api";
        assert!(allowed("http://127.0.0.1:4000/response/1", emulator));
        for bad in [
            "http://127.0.0.1:4001/response/1",
            "http://localhost:4000/response/1",
            "http://localhost.evil.example:4000/response/1",
            "https://127.0.0.1:4000/response/1",
            "http://x@127.0.0.1:4000/response/1",
        ] {
            assert!(!allowed(bad, emulator), "{bad}");
        }
    }
}
