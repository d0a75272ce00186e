//! The walkthrough's steps on the Slack surfaces beyond slash commands: a message shortcut
//! (*Explain with Slipway*) whose dialog is drawn on the terminal, and an approver's App Home
//! printed as text.

use super::script::{STEP, Script, StepResult};
use super::world::World;

/// What the viewer's message shortcut is used on: a channel message quoting a command.
const QUOTED: &str = "Could someone run `/kubectl delete pod api-0 -n web` for me?";

impl Script {
    /// *Explain with Slipway* on a message in the channel: a dialog with the policy's decision
    /// for the person who clicked, opened with the shortcut's trigger id.
    pub(super) async fn explain_shortcut(&self) -> StepResult {
        self.screen.line(format!(
            "» U0VIEWER uses the message shortcut “Explain with Slipway” on: {QUOTED}"
        ));
        let before = self.world.slack.views().len();
        self.channel
            .message_shortcut("U0VIEWER", "slipway_explain", QUOTED)
            .await?;
        let opened = |w: &World| w.slack.views().len() > before;
        if !self.channel.wait_for(STEP, opened).await {
            return Err("the shortcut opened no dialog".into());
        }
        let view =
            (self.world.slack.views().into_iter().nth(before)).ok_or("the dialog vanished")?;
        self.channel
            .show_modal(&view, |m| m.close.clone().unwrap_or_default());
        if view.to_string().contains("→ *deny*") {
            Ok("the policy's decision for the viewer, in a dialog only they see".into())
        } else {
            Err(format!("the dialog shows no decision: {view}"))
        }
    }

    /// An approver opens Slipway's App Home: the change waits for them there, with Approve and
    /// Reject, beside who they are and what they may run.
    pub(super) async fn approver_home(&self, pr: u64) -> StepResult {
        let user = "U0APPROVER1";
        self.screen
            .line(format!("» {user} opens Slipway's Home tab"));
        let event = serde_json::json!({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"});
        self.channel.event(event).await?;
        let needle = format!("PR #{pr}>");
        let listed = |w: &World| {
            w.slack
                .home(user)
                .is_some_and(|h| h.to_string().contains(&needle))
        };
        if !self.channel.wait_for(STEP, listed).await {
            return Err(format!("PR #{pr} is not in {user}'s App Home"));
        }
        let home = self.world.slack.home(user).ok_or("no App Home")?;
        let rendered = super::plain::message_numbered("", &home["blocks"], &mut |_| 0);
        let mut lines = vec![format!("┌─ Slipway's App Home, as {user} sees it")];
        lines.extend(
            rendered
                .lines
                .iter()
                .map(|l| format!("│ {}", l.replace("[0] ", "[·] "))),
        );
        lines.push("└─".into());
        self.screen.print(&lines);
        if home.to_string().contains("Waiting for your approval* (1)") {
            Ok(format!(
                "PR #{pr} waits for {user}'s approval in their App Home"
            ))
        } else {
            Err("the App Home doesn't list the change as waiting for the approver".into())
        }
    }
}
