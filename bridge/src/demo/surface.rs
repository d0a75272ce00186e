//! The walkthrough's steps on the Slack surfaces beyond slash commands: a message shortcut
//! (*Explain with Slipway*) whose dialog is drawn on the terminal, and an approver's App Home
//! printed as text.

use std::time::Duration;

use super::channel::Channel;
use super::screen::Screen;
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
        let needle = format!("PR #{pr}>");
        let home = open_home(&self.channel, &self.world, user, |h| h.contains(&needle)).await?;
        print_home(&self.screen, user, &home);
        if home.to_string().contains("Waiting for your approval* (1)") {
            Ok(format!(
                "PR #{pr} waits for {user}'s approval in their App Home"
            ))
        } else {
            Err("the App Home doesn't list the change as waiting for the approver".into())
        }
    }
}

/// Open `user`'s App Home (`app_home_opened`) and wait for a published view `ready` accepts,
/// or, when none comes (it was published moments ago and nothing changed), take the one shown.
pub(super) async fn open_home(
    channel: &Channel,
    world: &World,
    user: &str,
    ready: impl Fn(&str) -> bool,
) -> Result<serde_json::Value, String> {
    let before = world.slack.published_homes().len();
    let event = serde_json::json!({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"});
    channel.event(event).await?;
    let published = |w: &World| {
        (w.slack.published_homes().iter().skip(before))
            .any(|(u, h)| u == user && ready(&h.to_string()))
    };
    if !channel.wait_for(Duration::from_secs(5), published).await {
        return (world.slack.home(user))
            .filter(|h| ready(&h.to_string()))
            .ok_or_else(|| format!("{user}'s App Home was not published"));
    }
    world.slack.home(user).ok_or_else(|| "no App Home".into())
}

/// An App Home as text, in a box (its buttons shown, not numbered: clicks happen in the channel).
pub(super) fn print_home(screen: &Screen, user: &str, home: &serde_json::Value) {
    let rendered = super::plain::message_numbered("", &home["blocks"], &mut |_| 0);
    let mut lines = vec![format!("┌─ Slipway's App Home, as {user} sees it")];
    lines.extend(
        rendered
            .lines
            .iter()
            .map(|l| format!("│ {}", l.replace("[0] ", "[·] "))),
    );
    lines.push("└─".into());
    screen.print(&lines);
}
