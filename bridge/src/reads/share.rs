//! Private output and its "Share in channel" button. A read whose output is ephemeral (protected
//! resources by default, or as the policy's `channels` section says) is shown only to the
//! requester; the button posts that same output into the channel, for the requester only, and
//! never into a channel shared with another organisation when the resource is protected.

use serde_json::json;
use slipway_core::audit::{Actor, AuditRecord, EventKind};

use crate::ctx::Ctx;
use crate::slack::events::BlockAction;

/// The button's action id.
pub const ACTION: &str = "slipway_share";

/// The button under a private output.
pub fn button(run_id: &str) -> serde_json::Value {
    json!({
        "type": "actions",
        "block_id": "slipway_share",
        "elements": [{
            "type": "button",
            "action_id": ACTION,
            "text": {"type": "plain_text", "text": "Share in channel"},
            "value": run_id,
        }],
    })
}

/// Whether protected output may go to `channel`: not when it is shared with another
/// organisation, nor when Slack can't say (fails closed).
pub async fn channel_is_safe(state: &Ctx, channel: &str) -> bool {
    match state.slack.is_externally_shared(channel).await {
        Ok(shared) => !shared,
        Err(e) => {
            tracing::warn!(error = %e, channel, "can't tell whether the channel is shared with another organisation; keeping protected output private");
            false
        }
    }
}

/// The Share click: post the kept output in its channel, as the requester asked. `Err` is what
/// to tell the clicker.
pub async fn share(state: &Ctx, click: &BlockAction) -> Result<String, String> {
    let s = state.shares.get(&click.value).ok_or(
        "That output can no longer be shared (it is kept for 30 minutes); run the command again.",
    )?;
    if s.requester != click.user.user_id {
        return Err("Only the person who ran this command can share its output.".into());
    }
    if s.protected && !channel_is_safe(state, &s.channel).await {
        return Err("This channel is shared with another organisation, so output from protected resources is never posted here.".into());
    }
    let mut msg = s.message.clone();
    msg.blocks.retain(|b| b["block_id"] != "slipway_share");
    msg.blocks.insert(
        0,
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Shared by <@{}>", s.requester)}]}),
    );
    let identity = state.person(&click.user).await?;
    let record = AuditRecord::new(EventKind::Share, state.ids.next(), state.clock.now())
        .with_actor(Actor::slack(
            &click.user,
            Some(&identity),
            state.policy().primary_role(&identity),
        ))
        .with_details(json!({"run_id": click.value, "channel": s.channel, "command": s.text, "protected": s.protected}));
    // On disk before the output reaches the channel (and nothing is posted if it can't be).
    state.record(record, "a shared output").await.map_err(|_| {
        "Slipway can't write its audit trail right now, so nothing was shared.".to_string()
    })?;
    state
        .slack
        .post(&s.channel, None, &msg)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "sharing an output");
            "Slack refused the message; try again.".to_string()
        })?;
    state.shares.forget(&click.value);
    Ok("Shared in the channel.".into())
}
