//! The real slack-morphism client (Web API, response_url, Socket Mode) against the Slack emulator.

// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use slipway_emulators::slack::SlackEmulator;

const BOT: &str = "xoxb-emulated-bot-token";
const APP: &str = "xapp-emulated-app-token";

type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

fn https() -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build()
}

/// A client configured as the bridge configures it (API URL with a trailing slash).
fn client(slack: &SlackEmulator, retries: Option<usize>) -> Arc<SlackClient<Connector>> {
    let mut connector =
        SlackClientHyperConnector::with_connector(https()).with_slack_api_url(&slack.api_url());
    if let Some(n) = retries {
        connector = connector.with_rate_control(
            SlackApiRateControlConfig::new()
                .with_max_retries(n)
                .with_max_delay_timeout(Duration::from_secs(10)),
        );
    }
    Arc::new(SlackClient::new(connector))
}

fn token(t: &str) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue(t.to_string()))
}

fn blocks(v: serde_json::Value) -> Vec<SlackBlock> {
    serde_json::from_value(v).expect("test setup")
}

#[tokio::test]
async fn post_update_and_read_back() {
    let slack = SlackEmulator::start(BOT).await;
    let client = client(&slack, None);
    let bot = token(BOT);
    let session = client.open_session(&bot);

    let auth = session.auth_test().await.unwrap();
    assert!(auth.bot_id.is_some());

    let content = SlackMessageContent::new()
        .with_text("deploying".into())
        .with_blocks(blocks(
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*deploying* api"}}]),
        ));
    let posted = session
        .chat_post_message(&SlackApiChatPostMessageRequest::new(
            "C0OPS".into(),
            content,
        ))
        .await
        .unwrap();
    assert_eq!(posted.channel.0, "C0OPS");

    let reply = SlackApiChatPostMessageRequest::new(
        "C0OPS".into(),
        SlackMessageContent::new().with_text("log".into()),
    )
    .with_thread_ts(posted.ts.clone());
    let reply = session.chat_post_message(&reply).await.unwrap();
    assert!(
        reply.ts.0 > posted.ts.0,
        "ts must increase: {} then {}",
        posted.ts.0,
        reply.ts.0
    );

    let update = SlackApiChatUpdateRequest::new(
        "C0OPS".into(),
        SlackMessageContent::new()
            .with_text("done".into())
            .with_blocks(blocks(json!([{"type": "divider"}]))),
        posted.ts.clone(),
    );
    let updated = session.chat_update(&update).await.unwrap();
    assert_eq!(updated.ts, posted.ts);

    let missing = SlackApiChatUpdateRequest::new(
        "C0OPS".into(),
        SlackMessageContent::new().with_text("x".into()),
        SlackTs("1.000000".into()),
    );
    match session.chat_update(&missing).await {
        Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "message_not_found"),
        other => panic!("expected message_not_found, got {other:?}"),
    }

    let link = session
        .chat_get_permalink(&SlackApiChatGetPermalinkRequest::new(
            "C0OPS".into(),
            posted.ts.clone(),
        ))
        .await
        .unwrap();
    assert!(link.permalink.as_str().contains("/archives/C0OPS/p"));

    let messages = slack.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].text, "done");
    assert_eq!(messages[0].updates, 1);
    assert_eq!(messages[0].history.len(), 2);
    assert_eq!(messages[0].history[0].0, "deploying");
    assert_eq!(messages[0].blocks[0]["type"], "divider");
    let thread = slack.thread("C0OPS", &posted.ts.0);
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].text, "log");

    let eph = SlackApiChatPostEphemeralRequest::new(
        "C0OPS".into(),
        "U1".into(),
        SlackMessageContent::new().with_text("psst".into()),
    );
    session.chat_post_ephemeral(&eph).await.unwrap();
    assert_eq!(slack.ephemerals()[0].text, "psst");
}

#[tokio::test]
async fn users_views_and_errors() {
    let slack = SlackEmulator::start(BOT).await;
    slack.add_user("U0ALICE", "alice", Some("alice@example.com"));
    let client = client(&slack, None);
    let bot = token(BOT);
    let session = client.open_session(&bot);

    let user = session
        .users_info(&SlackApiUsersInfoRequest::new("U0ALICE".into()))
        .await
        .unwrap();
    assert_eq!(user.user.name.as_deref(), Some("alice"));
    assert_eq!(
        user.user.profile.unwrap().email.unwrap().0,
        "alice@example.com"
    );
    match session
        .users_info(&SlackApiUsersInfoRequest::new("U0NOBODY".into()))
        .await
    {
        Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "user_not_found"),
        other => panic!("expected user_not_found, got {other:?}"),
    }

    let view: SlackView = serde_json::from_value(json!({
        "type": "modal",
        "title": {"type": "plain_text", "text": "Approve"},
        "submit": {"type": "plain_text", "text": "Run"},
        "callback_id": "approve",
        "blocks": [{"type": "input", "block_id": "why", "label": {"type": "plain_text", "text": "Why?"},
                    "element": {"type": "plain_text_input", "action_id": "reason"}}]
    }))
    .unwrap();
    let opened = session
        .views_open(&SlackApiViewsOpenRequest::new(
            "trigger-1".into(),
            view.clone(),
        ))
        .await
        .unwrap();
    let id = opened.view.state_params.id.clone();
    let updated = session
        .views_update(&SlackApiViewsUpdateRequest::new(view).with_view_id(id.clone()))
        .await
        .unwrap();
    assert_eq!(updated.view.state_params.id, id);
    assert_eq!(slack.views().len(), 1);

    // Block Kit violations reach the client as Slack's invalid_blocks error.
    let long = "x".repeat(3001);
    let bad = SlackMessageContent::new()
        .with_text("t".into())
        .with_blocks(blocks(
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": long}}]),
        ));
    match session
        .chat_post_message(&SlackApiChatPostMessageRequest::new("C1".into(), bad))
        .await
    {
        Err(SlackClientError::ApiError(e)) => {
            assert_eq!(e.code, "invalid_blocks");
            let errors = e.errors.unwrap_or_default();
            assert!(
                errors.iter().any(|m| m.contains("/blocks/0/text/text")),
                "{errors:?}"
            );
        }
        other => panic!("expected invalid_blocks, got {other:?}"),
    }
    assert_eq!(slack.validation_errors().len(), 1);
    assert!(slack.validation_errors()[0].starts_with("chat.postMessage: "));

    let wrong_token = token("xoxb-wrong");
    let wrong = client.open_session(&wrong_token);
    match wrong.auth_test().await {
        Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "invalid_auth"),
        other => panic!("expected invalid_auth, got {other:?}"),
    }
}

#[tokio::test]
async fn rate_limits_surface_and_are_retried() {
    let slack = SlackEmulator::start(BOT).await;
    let msg = || {
        SlackApiChatPostMessageRequest::new(
            "C1".into(),
            SlackMessageContent::new().with_text("hi".into()),
        )
    };

    slack.rate_limit_next("chat.postMessage", 1, 7);
    let plain = client(&slack, None);
    match plain
        .open_session(&token(BOT))
        .chat_post_message(&msg())
        .await
    {
        Err(SlackClientError::RateLimitError(e)) => {
            assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }

    slack.rate_limit_next("chat.postMessage", 1, 1);
    let retrying = client(&slack, Some(3));
    retrying
        .open_session(&token(BOT))
        .chat_post_message(&msg())
        .await
        .unwrap();
    let calls: Vec<_> = slack
        .calls()
        .into_iter()
        .map(|c| (c.method, c.error))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "chat.postMessage".to_string(),
                Some("ratelimited".to_string())
            ),
            (
                "chat.postMessage".to_string(),
                Some("ratelimited".to_string())
            ),
            ("chat.postMessage".to_string(), None),
        ]
    );
}

#[tokio::test]
async fn respond_to_response_url() {
    let slack = SlackEmulator::start(BOT).await;
    let client = client(&slack, None);
    let url = SlackResponseUrl(slack.new_response_url().parse().unwrap());
    let req = SlackApiPostWebhookMessageRequest::new(
        SlackMessageContent::new().with_text("queued".into()),
    )
    .with_replace_original(true);
    for _ in 0..5 {
        client.respond_to_event(&url, &req).await.unwrap();
    }
    match client.respond_to_event(&url, &req).await {
        Err(SlackClientError::HttpError(e)) => assert_eq!(e.status_code.as_u16(), 404),
        other => panic!("the 6th post must fail, got {other:?}"),
    }
    let responses = slack.responses();
    assert_eq!(responses.len(), 5);
    assert_eq!(responses[0].body["text"], "queued");
    assert_eq!(responses[0].body["replace_original"], true);
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackClient<Connector>>,
    _state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let text = format!("running: {}", event.text.unwrap_or_default());
    Ok(SlackCommandEventResponse::new(
        SlackMessageContent::new().with_text(text),
    ))
}

async fn on_interaction(
    _event: SlackInteractionEvent,
    _client: Arc<SlackClient<Connector>>,
    _state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    Ok(())
}

#[tokio::test]
async fn socket_mode_envelopes_are_acked() {
    let slack = SlackEmulator::start(BOT).await;
    slack.set_app_token(APP);
    let client = client(&slack, None);

    // The bot token is the wrong kind of token for apps.connections.open.
    match client
        .open_session(&token(BOT))
        .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
        .await
    {
        Err(SlackClientError::ApiError(e)) => assert_eq!(e.code, "not_allowed_token_type"),
        other => panic!("expected not_allowed_token_type, got {other:?}"),
    }

    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction);
    let env = Arc::new(SlackClientEventsListenerEnvironment::new(client.clone()));
    let listener =
        SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
    listener.listen_for(&token(APP)).await.unwrap();
    listener.start().await;
    assert!(
        slack
            .wait_until(Duration::from_secs(10), |s| s.socket_connections() == 1)
            .await
    );

    let response_url = slack.new_response_url();
    let ack = slack
        .socket_send(
            "slash_commands",
            json!({
                "token": "legacy", "team_id": "T0SLIPWAY", "team_domain": "slipway",
                "channel_id": "C0OPS", "channel_name": "ops", "user_id": "U0ALICE", "user_name": "alice",
                "command": "/slipway", "text": "kubectl get pods -n web", "api_app_id": "A0SLIPWAY",
                "response_url": response_url, "trigger_id": "trigger-9",
            }),
        )
        .await;
    assert_eq!(ack.unwrap()["text"], "running: kubectl get pods -n web");

    let ack = slack
        .socket_send(
            "interactive",
            json!({
                "type": "block_actions",
                "team": {"id": "T0SLIPWAY", "domain": "slipway"},
                "user": {"id": "U0ALICE", "team_id": "T0SLIPWAY"},
                "api_app_id": "A0SLIPWAY",
                "trigger_id": "trigger-10",
                "actions": [{"type": "button", "action_id": "approve", "block_id": "b",
                             "text": {"type": "plain_text", "text": "Approve"}, "value": "1",
                             "action_ts": "1700000000.000200"}],
                "response_url": response_url,
            }),
        )
        .await;
    assert_eq!(ack, None);
    let acks = slack.socket_acks();
    assert_eq!(acks.len(), 2);
    assert!(acks.iter().all(|a| {
        a["envelope_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("emu-envelope-"))
    }));
    listener.shutdown().await;
}
