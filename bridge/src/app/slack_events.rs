//! Events API callbacks (HTTP and Socket Mode alike): `user_change` (a Slack admin deactivating
//! someone, or someone changing their email) changes what Slipway knows; `app_mention` is
//! answered in its thread and `app_home_opened` publishes the App Home, both in a task after
//! the ack.

use slipway_core::audit::{Actor, AuditRecord, EventKind};
use slipway_core::policy::SlackUser;

use super::AppState;
use crate::slack::events::user_change;

/// Act on one fresh (deduplicated) event.
pub(super) async fn on_event(state: &AppState, event: &serde_json::Value) {
    if let Some(m) = crate::slack::surface::mention(event) {
        let state = state.clone();
        tokio::spawn(async move { super::mention::on_mention(&state, m).await });
        return;
    }
    if let Some(user) = crate::slack::surface::home_opened(event) {
        if state.recent.viewing(&user) {
            let state = state.clone();
            tokio::spawn(async move { super::home::publish(&state, &user, None).await });
        }
        return;
    }
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
