//! `slipway demo --scripted`: the walkthrough, step by step, through the same channel a person
//! types into. Each step checks its outcome where it lands (Slack, GitHub, the cluster, the
//! audit trail and its sinks); the first failure stops the walk and the exit code says so.

use std::sync::Arc;
use std::time::Duration;

use super::actions::Actions;
use super::channel::{Channel, Submitted};
use super::plain;
use super::screen::Screen;
use super::world::{OWNER, REPO, World};

mod audit;
mod runs;

/// How long any one step may take before it counts as failed.
pub(super) const STEP: Duration = Duration::from_secs(90);

pub struct Script {
    pub world: Arc<World>,
    pub screen: Arc<Screen>,
    pub channel: Arc<Channel>,
    pub actions: Arc<Actions>,
}

pub(super) type StepResult = Result<String, String>;

/// Link each person's GitHub account the way they would: `/slipway link github`, then the code
/// on (the emulated) github.com. The channel enters the code for them.
pub async fn link_accounts(channel: &Channel, users: &[&str]) -> StepResult {
    for user in users {
        channel.command(user, "/slipway link github").await?;
    }
    let linked = |w: &World| {
        w.slack
            .responses()
            .iter()
            .filter(|r| {
                r.body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Linked GitHub account"))
            })
            .count()
            >= users.len()
    };
    if channel.wait_for(STEP, linked).await {
        Ok(format!("{} GitHub accounts linked", users.len()))
    } else {
        Err("the device flow did not finish for everyone".into())
    }
}

/// The string at JSON `pointer` (e.g. `/head/ref`) in PR `pr` of the GitOps repo.
fn pull_str(w: &World, pr: u64, pointer: &str) -> Option<String> {
    w.github
        .pulls(OWNER, REPO)
        .into_iter()
        .find(|p| p["number"].as_u64() == Some(pr))
        .and_then(|p| p.pointer(pointer)?.as_str().map(str::to_string))
}

fn text_of(m: &slipway_emulators::slack::Message) -> String {
    format!("{} {}", m.text, m.blocks)
}

/// The walkthrough, in order.
const STEPS: [&str; 16] = [
    "/kubectl get pods, as a viewer",
    "/gcloud gcp-staging compute instances list, as a viewer",
    "a viewer tries to read a Secret, and is refused",
    "a viewer asks Slipway to explain a command quoted in the channel (a message shortcut)",
    "/deploy api staging --apply opens a pull request",
    "the approver's App Home lists the change waiting for them",
    "the requester tries to approve their own change, and is refused",
    "two approvers approve in Slack",
    "the pull request is merged",
    "the runner executes the merged change, and the rollout fails",
    "the Slack thread shows the failure, with a Roll back button",
    "the requester clicks Roll back: a pull request back to the version before",
    "two approvers approve the roll back, and it is merged",
    "the runner executes the roll back, and the rollout succeeds",
    "Jira, ServiceNow and Loki each hold the whole story",
    "slipway audit verify --git passes",
];

/// The pull requests the walk opens: the deploy's, then its roll back's.
#[derive(Debug, Default)]
struct Prs {
    deploy: u64,
    rollback: u64,
}

impl Script {
    /// Run every step; true if all of them worked.
    pub async fn run(&self) -> bool {
        let screen = &self.screen;
        screen.line("Setting up: the approvers and the operator link their GitHub accounts.");
        if let Err(e) =
            link_accounts(&self.channel, &["U0OPERATOR", "U0APPROVER1", "U0APPROVER2"]).await
        {
            screen.line(format!("✗ setup: {e}"));
            return false;
        }
        let mut prs = Prs::default();
        let total = STEPS.len();
        for (i, title) in STEPS.iter().enumerate() {
            let n = i + 1;
            screen.print(&[String::new(), format!("━━ Step {n}/{total}: {title} ━━")]);
            let result = self.step(n, &mut prs).await;
            self.channel
                .settle(Duration::from_millis(300), Duration::from_secs(3))
                .await;
            match result {
                Ok(msg) => screen.line(format!("✓ Step {n}: {msg}")),
                Err(e) => {
                    screen.print(&[
                        format!("✗ Step {n} failed: {e}"),
                        format!(
                            "  The bridge's log is {}; everything else is under {}.",
                            self.world.bridge.log.display(),
                            self.world.dir.display()
                        ),
                    ]);
                    return false;
                }
            }
        }
        screen.print(&[String::new(), format!("All {total} steps worked.")]);
        true
    }

    /// Step `n` of [`STEPS`].
    async fn step(&self, n: usize, prs: &mut Prs) -> StepResult {
        match n {
            1 => self.viewer_reads().await,
            2 => self.gcloud_reads().await,
            3 => self.secret_refused().await,
            4 => self.explain_shortcut().await,
            5 => self
                .opened(1, "/deploy api staging --apply")
                .await
                .map(|(number, msg)| {
                    prs.deploy = number;
                    msg
                }),
            6 => self.approver_home(prs.deploy).await,
            7 => self.self_approval(prs.deploy).await,
            8 => self.approve(prs.deploy).await,
            9 => self.merge(prs.deploy),
            10 => self.rollout_fails(prs.deploy).await,
            11 => self.thread_shows_failure(prs.deploy).await,
            12 => self.roll_back().await.map(|(number, msg)| {
                prs.rollback = number;
                msg
            }),
            13 => self.approve_and_merge(prs.rollback).await,
            14 => self.rollback_runs(prs.rollback).await,
            15 => self.sinks_hold_story([prs.deploy, prs.rollback]).await,
            _ => self.audit_verifies().await,
        }
    }

    async fn say(&self, user: &str, line: &str) -> StepResult {
        self.screen.line(format!("» {user} types: {line}"));
        self.channel.command(user, line).await
    }

    async fn viewer_reads(&self) -> StepResult {
        self.say("U0VIEWER", "/kubectl get pods").await?;
        let done = |w: &World| {
            w.slack.messages().iter().any(|m| {
                let t = text_of(m);
                t.contains("hello-5c7d9-x2x8k") && !t.contains("slipway_cancel")
            })
        };
        if self.channel.wait_for(STEP, done).await {
            Ok("the pod list from the cluster is in the channel".into())
        } else {
            Err("no finished run showing the pod `hello-5c7d9-x2x8k`".into())
        }
    }

    /// Real gcloud, as the alias's read-only account, minted by the bridge for this run.
    async fn gcloud_reads(&self) -> StepResult {
        if let Err(why) = &self.world.gcp {
            return Ok(format!("skipped: {why}"));
        }
        self.say("U0VIEWER", "/gcloud gcp-staging compute instances list")
            .await?;
        let instance = super::world::gcp::INSTANCE;
        let done = |w: &World| {
            w.slack.messages().iter().any(|m| {
                let t = text_of(m);
                t.contains(instance) && !t.contains("slipway_cancel")
            })
        };
        if self.channel.wait_for(STEP, done).await {
            Ok(format!(
                "the instances of gcp-staging, read as its read-only service account, are in the channel ({instance})"
            ))
        } else {
            Err(format!("no finished run showing the instance `{instance}`"))
        }
    }

    async fn secret_refused(&self) -> StepResult {
        let ack = self
            .say(
                "U0VIEWER",
                "/kubectl get secret db-credentials -n web -o yaml",
            )
            .await?;
        self.channel
            .settle(Duration::from_millis(500), Duration::from_secs(3))
            .await;
        let leaked = self
            .world
            .slack
            .messages()
            .iter()
            .any(|m| text_of(m).contains("hunter2"))
            || self
                .world
                .slack
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("hunter2"));
        if leaked {
            return Err("the Secret's value reached Slack".into());
        }
        if ack.contains("never shown") {
            Ok("refused before anything ran; the value never reached Slack".into())
        } else {
            Err(format!("expected a refusal, got: {ack}"))
        }
    }

    /// The operator types `line`; the `count`th pull request opens, with its change message.
    async fn opened(&self, count: usize, line: &str) -> Result<(u64, String), String> {
        self.say("U0OPERATOR", line).await?;
        self.pull_request(count).await
    }

    /// Waits for the `count`th pull request and its change message with Approve and Reject.
    async fn pull_request(&self, count: usize) -> Result<(u64, String), String> {
        let number = |w: &World| {
            let pulls = w.github.pulls(OWNER, REPO);
            pulls.get(count - 1).and_then(|p| p["number"].as_u64())
        };
        let opened = |w: &World| {
            number(w).is_some_and(|n| {
                let link = format!("pull/{n}");
                w.slack.messages().iter().any(|m| {
                    let t = text_of(m);
                    t.contains(&link) && t.contains("slipway_approve")
                })
            })
        };
        if !self.channel.wait_for(STEP, opened).await {
            return Err("no pull request with an approval message appeared".into());
        }
        let number = number(&self.world).ok_or("the PR has no number")?;
        Ok((
            number,
            format!("PR #{number} is open, with Approve and Reject buttons in the channel"),
        ))
    }

    async fn click_approve(&self, user: &str) -> Result<(), String> {
        self.channel.poll();
        let n = self
            .channel
            .find_choice(|c| c.button.action_id == "slipway_approve" && c.message_ts.is_some())
            .ok_or("no Approve button on screen")?;
        self.channel.click(user, n).await
    }

    /// Approve as `user`: click Approve, then submit the dialog it opens, without a comment.
    async fn approve_as(&self, user: &str) -> Result<(), String> {
        let before = self.world.slack.views().len();
        self.click_approve(user).await?;
        let opened = |w: &World| w.slack.views().len() > before;
        if !self.channel.wait_for(STEP, opened).await {
            return Err(format!("Approve opened no dialog for {user}"));
        }
        let view = self
            .world
            .slack
            .views()
            .into_iter()
            .nth(before)
            .ok_or("the dialog vanished")?;
        let m = self.channel.show_modal(&view, |_| String::new());
        let submit = m.submit.as_deref().unwrap_or("Submit");
        self.screen.line(format!(
            "» {user} leaves the comment empty and clicks {submit}"
        ));
        let values = plain::submission_values(&m.inputs, &vec![String::new(); m.inputs.len()]);
        match self.channel.submit(user, &view, values).await? {
            Submitted::Closed => Ok(()),
            Submitted::Errors(e) => Err(format!("the dialog refused the submission: {e:?}")),
        }
    }

    async fn self_approval(&self, pr: u64) -> StepResult {
        let before = self.world.slack.responses().len();
        self.click_approve("U0OPERATOR").await?;
        let refused = |w: &World| {
            w.slack
                .responses()
                .iter()
                .skip(before)
                .any(|r| r.body.to_string().contains("you requested this change"))
        };
        if !self.channel.wait_for(STEP, refused).await {
            return Err("no refusal was shown to the requester".into());
        }
        if self.world.github.reviews(OWNER, REPO, pr).is_empty() {
            Ok("refused in Slack; nothing reached GitHub".into())
        } else {
            Err("a review reached GitHub".into())
        }
    }

    fn approval_state(w: &World, pr: u64) -> Option<String> {
        let pull = w
            .github
            .pulls(OWNER, REPO)
            .into_iter()
            .find(|p| p["number"].as_u64() == Some(pr))?;
        let sha = pull["head"]["sha"].as_str()?.to_string();
        w.github
            .status(OWNER, REPO, &sha, "slipway/approval")
            .and_then(|s| s["state"].as_str().map(str::to_string))
    }

    async fn approve(&self, pr: u64) -> StepResult {
        for (user, login) in [
            ("U0APPROVER1", "ada-approver"),
            ("U0APPROVER2", "bo-approver"),
        ] {
            self.approve_as(user).await?;
            let reviewed = |w: &World| {
                w.github
                    .reviews(OWNER, REPO, pr)
                    .iter()
                    .any(|r| r["user"]["login"] == login && r["state"] == "APPROVED")
            };
            if !self.channel.wait_for(STEP, reviewed).await {
                return Err(format!("{login}'s approval did not reach GitHub"));
            }
            self.channel
                .settle(Duration::from_millis(300), Duration::from_secs(3))
                .await;
        }
        let quorum = |w: &World| Self::approval_state(w, pr).as_deref() == Some("success");
        if self.channel.wait_for(STEP, quorum).await {
            Ok(
                "two reviews in GitHub as ada-approver and bo-approver; slipway/approval is green"
                    .into(),
            )
        } else {
            Err(format!(
                "slipway/approval is {:?}, not success",
                Self::approval_state(&self.world, pr)
            ))
        }
    }

    fn merge(&self, pr: u64) -> StepResult {
        self.screen.line(format!(
            "» ada-approver merges PR #{pr} on (the emulated) github.com"
        ));
        let sha = self
            .world
            .github
            .merge(OWNER, REPO, pr, "ada-approver")
            .map_err(|e| format!("GitHub refused the merge: {e}"))?;
        Ok(format!(
            "merged as {}; branch protection required slipway/approval",
            sha.get(..7).unwrap_or(&sha)
        ))
    }
}
