//! Socket Mode: for workspaces that expose no public endpoint. slack-morphism holds the
//! websocket (authenticated with the app-level `xapp-` token) and acks envelopes; the events it
//! delivers go to the same handlers as the HTTP endpoints.

use std::sync::Arc;

use slack_morphism::prelude::*;

use super::AppState;
use crate::config::Secret;
use crate::shared::{Pass, Refused};
use crate::slack::client::Connector;
use crate::slack::events::{SlashCommand, parse_interaction_json};

async fn state_of(states: &SlackClientEventsUserState) -> Option<AppState> {
    states.read().await.get_user_state::<AppState>().cloned()
}

fn system_error(message: &str) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(slack_morphism::errors::SlackClientError::SystemError(
        slack_morphism::errors::SlackClientSystemError::new().with_message(message.to_string()),
    ))
}

async fn on_command(
    ev: SlackCommandEvent,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let Some(state) = state_of(&states).await else {
        return Err(system_error("bridge state missing"));
    };
    // The trigger's dedupe is settled in the ack's one round trip, like the HTTP path's.
    let ticket = match state
        .gate
        .defer_unsigned(&format!("trigger:{}", ev.trigger_id.0))
    {
        Pass::Settled(a) if !a.fresh => return Ok(ephemeral(crate::shared::ALREADY_RECEIVED)),
        Pass::Settled(_) => None,
        Pass::Deferred(t) => Some(t),
    };
    let cmd = SlashCommand {
        command: ev.command.0,
        text: ev.text.unwrap_or_default(),
        user: slipway_core::policy::SlackUser {
            user_id: ev.user_id.0,
            team_id: Some(ev.team_id.0),
            enterprise_id: None,
        },
        user_name: String::new(),
        channel_id: ev.channel_id.0,
        response_url: ev.response_url.0.to_string(),
        trigger_id: ev.trigger_id.0,
        thread_ts: None,
    };
    let started = std::time::Instant::now();
    let handling = Box::pin(super::commands::handle(&state, cmd, ticket));
    let (handled, trips) = crate::shared::redis::counted(handling).await;
    if state.redis.is_some() {
        let trips = f64::from(trips);
        state.metrics.ack_redis_round_trips.observe(trips);
    }
    let response = match handled {
        Ok(reply) => {
            let text = reply
                .0
                .get("text")
                .and_then(|t| t.as_str())
                .unwrap_or_default();
            // The blocks of a denial carry its Explain button.
            let blocks = serde_json::from_value::<Vec<SlackBlock>>(reply.0["blocks"].clone());
            match blocks {
                Ok(blocks) if !blocks.is_empty() => content(text).with_blocks(blocks),
                _ => content(text),
            }
        }
        // No signature: never a replay, only a redelivery.
        Err(Refused::Replayed | Refused::Duplicate) => content(crate::shared::ALREADY_RECEIVED),
        Err(Refused::Unavailable) => content(crate::shared::UNAVAILABLE_MESSAGE),
    };
    state
        .metrics
        .ack_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(SlackCommandEventResponse::new(response)
        .with_response_type(SlackMessageResponseType::Ephemeral))
}

fn content(text: &str) -> SlackMessageContent {
    SlackMessageContent::new().with_text(text.to_string())
}

fn ephemeral(text: &str) -> SlackCommandEventResponse {
    SlackCommandEventResponse::new(content(text))
        .with_response_type(SlackMessageResponseType::Ephemeral)
}

async fn on_interaction(
    ev: SlackInteractionEvent,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let Some(state) = state_of(&states).await else {
        return Err(system_error("bridge state missing"));
    };
    let value = serde_json::to_value(&ev).map_err(|e| system_error(&e.to_string()))?;
    let ticket = match value.get("trigger_id").and_then(|t| t.as_str()) {
        None => None,
        Some(trigger) => match state.gate.defer_unsigned(&format!("trigger:{trigger}")) {
            Pass::Settled(a) if !a.fresh => return Ok(()),
            Pass::Settled(_) => None,
            Pass::Deferred(t) => Some(t),
        },
    };
    match parse_interaction_json(value) {
        Ok(i) => {
            state.metrics.request("socket_interactivity", "ok");
            // Socket Mode acks carry no view errors here; a bad confirmation is simply not applied.
            if let Err(Refused::Unavailable) = super::interact::handle(&state, i, ticket).await {
                // Unacknowledged, Slack delivers the envelope again.
                return Err(system_error("shared state unavailable"));
            }
        }
        Err(e) => {
            state.metrics.request("socket_interactivity", "malformed");
            tracing::warn!(error = %e, "malformed Socket Mode interaction");
        }
    }
    Ok(())
}

/// Events arrive here in Socket Mode: deduplicated by id like the HTTP path, then the same
/// handler.
async fn on_push(
    ev: SlackPushEventCallback,
    _client: Arc<SlackClient<Connector>>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let Some(state) = state_of(&states).await else {
        return Err(system_error("bridge state missing"));
    };
    let fresh = match state.gate.first(&format!("event:{}", ev.event_id.0)).await {
        Ok(fresh) => fresh,
        Err(e) => {
            // Unacknowledged, Slack delivers the envelope again (to this or another replica).
            tracing::error!(error = %e, "Socket Mode event refused: shared state unreachable");
            return Err(system_error("shared state unavailable"));
        }
    };
    if fresh {
        state.metrics.request("events", "ok");
        let event = serde_json::to_value(&ev.event)?;
        super::slack_events::on_event(&state, &event).await;
    } else {
        state.metrics.request("events", "duplicate");
    }
    Ok(())
}

/// Connect with the app-level token and serve until `stop` resolves.
pub async fn run(
    state: AppState,
    app_token: &Secret,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let client = state.slack.client();
    let token = SlackApiToken::new(SlackApiTokenValue(app_token.expose().to_string()));
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction)
        .with_push_events(on_push);
    let env =
        Arc::new(SlackClientEventsListenerEnvironment::new(client).with_user_state(state.clone()));
    let listener = SlackClientSocketModeListener::new(
        &SlackClientSocketModeConfig::new().with_initial_backoff_in_seconds(1),
        env,
        callbacks,
    );
    listener
        .listen_for(&token)
        .await
        .map_err(|e| format!("Socket Mode: apps.connections.open failed: {e}"))?;
    listener.start().await;
    tracing::info!("Socket Mode connected");
    stop.await;
    listener.shutdown().await;
    Ok(())
}
