//! The walkthrough's two runner jobs and what lies between them: the deploy whose rollout fails,
//! its report with the Roll back button, the click, the roll back's approvals and merge, and
//! its run, whose rollout succeeds.

use std::time::Duration;

use super::super::actions::Job;
use super::super::world::{CHANNEL, World};
use super::{STEP, Script, StepResult, pull_str, text_of};

/// What deployment api/api ran before the walk, and runs again after the roll back.
const BEFORE: &str = "registry.example/api:v1.0.0";

impl Script {
    /// The finished workflow job on PR `pr`'s merge commit.
    async fn job_of(&self, pr: u64) -> Result<Job, String> {
        let merged =
            pull_str(&self.world, pr, "/merge_commit_sha").ok_or("the PR has no merge commit")?;
        let actions = self.actions.clone();
        let sha = merged.clone();
        let finished = move |_: &World| actions.jobs().iter().any(|j| j.sha == sha);
        if !self
            .channel
            .wait_for(Duration::from_secs(180), finished)
            .await
        {
            return Err("the runner did not finish within 3 minutes".into());
        }
        self.actions
            .jobs()
            .into_iter()
            .find(|j| j.sha == merged)
            .ok_or_else(|| "no job".into())
    }

    /// The image deployment api/api runs now.
    fn api_image(&self) -> String {
        self.world
            .kube
            .deployment("api", "api")
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// Whether a runner report in the thread of PR `pr`'s change message contains `needle`
    /// (in its text or its blocks).
    fn reported(w: &World, pr: u64, needle: &str) -> bool {
        let link = format!("pull/{pr}");
        let messages = w.slack.messages();
        let Some(parent) = messages.iter().find(|m| {
            m.thread_ts.is_none()
                && text_of(m).contains(&link)
                && text_of(m).contains("Change request")
        }) else {
            return false;
        };
        w.slack
            .thread(CHANNEL, &parent.ts)
            .iter()
            .any(|m| m.text.contains("Runner report") && text_of(m).contains(needle))
    }

    pub(super) async fn rollout_fails(&self, pr: u64) -> StepResult {
        let job = self.job_of(pr).await?;
        let image = self.api_image();
        if job.code == Some(0) {
            return Err(format!(
                "the runner reported success, but the first rollout of api/api ({image}) was set \
                 to fail; see {}",
                job.log.display()
            ));
        }
        if image == BEFORE || image.is_empty() {
            return Err(format!(
                "deployment api/api still runs {image:?}: nothing was applied"
            ));
        }
        Ok(format!(
            "deployment api/api was set to {image}, but its new pods crash-loop: the runner \
             failed the execution (exit {})",
            job.code
                .map_or_else(|| "killed".to_string(), |c| c.to_string())
        ))
    }

    pub(super) async fn thread_shows_failure(&self, pr: u64) -> StepResult {
        let shown = |w: &World| Self::reported(w, pr, "slipway_rollback");
        if self.channel.wait_for(STEP, shown).await {
            Ok("the runner's report of the failed rollout is in the change's thread, with a Roll back button".into())
        } else {
            Err("no runner report with a Roll back button in the change message's thread".into())
        }
    }

    /// The requester clicks Roll back; returns the roll back's pull request.
    pub(super) async fn roll_back(&self) -> Result<(u64, String), String> {
        self.channel.poll();
        let n = self
            .channel
            .find_choice(|c| c.button.action_id == "slipway_rollback")
            .ok_or("no Roll back button on screen")?;
        self.channel.click("U0OPERATOR", n).await?;
        let (number, _) = self.pull_request(2).await?;
        let title = pull_str(&self.world, number, "/title").unwrap_or_default();
        if !title.contains("v1.0.0") {
            return Err(format!("PR #{number} ({title}) does not go back to v1.0.0"));
        }
        let msg = format!(
            "PR #{number} ({title}) goes back to the version before, an ordinary change with \
             Approve and Reject buttons"
        );
        Ok((number, msg))
    }

    pub(super) async fn approve_and_merge(&self, pr: u64) -> StepResult {
        let approved = self.approve(pr).await?;
        let merged = self.merge(pr)?;
        Ok(format!("{approved}; {merged}"))
    }

    pub(super) async fn rollback_runs(&self, pr: u64) -> StepResult {
        let job = self.job_of(pr).await?;
        if job.code != Some(0) {
            return Err(format!(
                "slipway-runner (target {}) exited with {:?}; see {}",
                job.target,
                job.code,
                job.log.display()
            ));
        }
        let image = self.api_image();
        if image != BEFORE {
            return Err(format!("deployment api/api runs {image:?}, not {BEFORE}"));
        }
        let shown = |w: &World| Self::reported(w, pr, "successfully rolled out");
        if !self.channel.wait_for(STEP, shown).await {
            return Err(
                "no runner report of the finished rollout in the roll back's thread".into(),
            );
        }
        Ok(format!(
            "deployment api/api runs {BEFORE} again and its rollout finished; the runner's report is in the roll back's thread"
        ))
    }
}
