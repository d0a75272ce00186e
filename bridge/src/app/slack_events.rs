//! Events API callbacks that change what Slipway knows (HTTP and Socket Mode alike). Today that
//! is `user_change`: a Slack admin deactivating someone, or someone changing their email.

use slipway_core::audit::{Actor, AuditRecord, EventKind};
use slipway_core::policy::SlackUser;

use super::AppState;
use crate::slack::events::user_change;

/// Act on one fresh (deduplicated) event.
pub(super) async fn on_event(state: &AppState, event: &serde_json::Value) {
    let Some(person) = user_change(event) else {
        return;
    };
    let was = state
        .people
        .links()
        .slack_deactivated(&person.id)
        .unwrap_or(false);
    state
        .people
        .slack_user_changed(&person.id, person.deleted, person.email.as_deref());
    if person.deleted != was {
        let action = if person.deleted {
            "slack_deactivated"
        } else {
            "slack_reactivated"
        };
        let record = AuditRecord::new(EventKind::Identity, state.ids.next(), state.clock.now())
            .with_actor(Actor::slack(&SlackUser::new(&person.id), None, None))
            .with_details(serde_json::json!({ "action": action }));
        let _ = state.record(record, "a Slack deactivation").await;
    }
}
