//! The Slack side of a refresh: the change message redrawn (its buttons follow the stage), one
//! line in its thread per event, and whether a GitHub review event is the echo of a review
//! made in Slack (already told in the thread when it was made, so it isn't told again).

use slipway_core::approval::Quorum;
use slipway_core::change::{ChangeRequest, is_slack_review};
use slipway_infra::github::Pr;

use super::super::ChangeService;
use super::view::{ApprovalView, approval_message};
use crate::ctx::Ctx;
use crate::slack::client::Message;

/// A `pull_request_review` event's review, as far as telling it apart takes.
#[derive(Debug, Clone)]
pub struct ReviewSeen<'a> {
    pub id: u64,
    pub login: &'a str,
    pub commit: &'a str,
    pub body: &'a str,
}

impl ChangeService {
    pub(super) async fn mirror_to_slack(
        &self,
        state: &Ctx,
        pr: &Pr,
        cr: &ChangeRequest,
        q: &Quorum,
        event: Option<&str>,
    ) {
        let Some((channel, ts)) = self.thread_of(pr.number) else {
            return;
        };
        let view = ApprovalView::new(pr, cr, q);
        if let Err(e) = state
            .slack
            .update(&channel, &ts, &approval_message(&view))
            .await
        {
            tracing::warn!(error = %e, "updating the change message");
        }
        self.redraw_notices(state, &view, &cr.command.text).await;
        let Some(event) = event else { return };
        let line = format!(
            "{event} · approvals {}{}",
            view.progress(),
            view.stale_note()
        );
        if let Err(e) = state
            .slack
            .post(&channel, Some(&ts), &Message::text(line))
            .await
        {
            tracing::warn!(error = %e, "posting in the change thread");
        }
    }

    /// Whether review `r` on PR `number` was made through Slack: its id is recorded, or (the
    /// webhook can arrive before the id is) its body carries the bridge's signed marker for
    /// this PR, commit and reviewer. A marker is only believed when it verifies: anyone can type
    /// the text into a GitHub review.
    pub fn made_in_slack(&self, number: u64, r: &ReviewSeen<'_>) -> bool {
        if self
            .store
            .slack_reviews(number)
            .is_ok_and(|ids| ids.contains(&r.id))
        {
            return true;
        }
        let keys = super::super::signer::keyring(&self.cfg, &self.signer);
        is_slack_review(
            r.body,
            &keys,
            &self.cfg.repo.to_string(),
            number,
            r.commit,
            r.login,
        )
    }
}
