//! The walkthrough's audit steps: Jira, ServiceNow and Loki each hold the whole story, and
//! `slipway audit verify --git` passes over the spool and, with moto, the S3 mirror.

use std::process::Stdio;
use std::time::Duration;

use slipway_core::audit::AuditRecord;

use super::super::world::{BUCKET, World, aws_env, inherited_basics};
use super::{Script, StepResult, pull_str};

/// The change id of PR `pr` (its branch is `slipway/<id>`).
fn change_id(w: &World, pr: u64) -> Option<String> {
    pull_str(w, pr, "/head/ref").map(|r| r.trim_start_matches("slipway/").to_string())
}

/// Every record of the changes `ids` in the spool the bridge and the runner share.
fn story(w: &World, ids: &[String]) -> Vec<AuditRecord> {
    slipway_infra::spool::read_all(&w.spool_dir())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.change_id.as_ref().is_some_and(|c| ids.contains(c)))
        .collect()
}

impl Script {
    /// Each sink holds every record the spool has of the two changes.
    pub(super) async fn sinks_hold_story(&self, prs: [u64; 2]) -> StepResult {
        let ids: Vec<String> = prs
            .iter()
            .map(|&pr| change_id(&self.world, pr).ok_or(format!("PR #{pr} has no branch")))
            .collect::<Result<_, _>>()?;
        let whole = |w: &World| w.sinks.gaps(&story(w, &ids)).is_empty();
        if !self.channel.wait_for(Duration::from_secs(60), whole).await {
            let gaps = self.world.sinks.gaps(&story(&self.world, &ids));
            return Err(format!("the sinks lack: {}", gaps.join("; ")));
        }
        let sinks = &self.world.sinks;
        let mut lines = Vec::new();
        for i in sinks.jira.issues() {
            lines.push(format!(
                "    Jira {}: {} ({} comments)",
                i.key,
                i.summary,
                i.comments.len()
            ));
        }
        for c in sinks.servicenow.changes() {
            let closed = c.fields["close_code"]
                .as_str()
                .unwrap_or("open")
                .to_string();
            lines.push(format!(
                "    ServiceNow {}: {} work notes, closed {closed}",
                c.number,
                c.work_notes.len()
            ));
        }
        self.screen.print(&lines);
        Ok(format!(
            "the {} records of both changes (the bridge's and both runner jobs') are in Jira, ServiceNow and Loki",
            story(&self.world, &ids).len()
        ))
    }

    async fn verify(&self, source: &[String]) -> Result<(bool, String), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let git = self.world.gitops_dir().ok_or("no GitOps repository")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["audit", "verify"])
            .args(source)
            .arg("--writers")
            .arg(self.world.audit_writers())
            .arg("--git")
            .arg(git)
            .stdin(Stdio::null())
            .env_clear()
            .envs(inherited_basics());
        if self.world.moto.is_some() {
            cmd.envs(aws_env());
        }
        let out = cmd.output().await.map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    pub(super) async fn audit_verifies(&self) -> StepResult {
        let spool = vec![
            "--spool".to_string(),
            self.world.spool_dir().display().to_string(),
        ];
        self.screen.line(format!(
            "» an auditor runs: slipway audit verify --spool {} --git <acme/gitops>",
            self.world.spool_dir().display()
        ));
        let (ok, text) = self.verify(&spool).await?;
        self.screen
            .print(&text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>());
        if !ok {
            return Err("the local trail did not verify".into());
        }
        let Some(moto) = &self.world.moto else {
            return Ok("the spool's hash chains and git history agree (S3 was off)".into());
        };
        let bucket = vec![
            "--bucket".to_string(),
            BUCKET.to_string(),
            "--endpoint-url".to_string(),
            moto.url.clone(),
            "--retention-mode".to_string(),
            "COMPLIANCE".to_string(),
        ];
        self.screen.line(format!(
            "» and against the S3 mirror: slipway audit verify --bucket {BUCKET} --endpoint-url {} --git <acme/gitops>",
            moto.url
        ));
        // The bridge mirrors continuously; give the newest records a moment to arrive.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, text) = self.verify(&bucket).await?;
            if ok {
                self.screen
                    .print(&text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>());
                return Ok("the spool and the Object Lock mirror both verify against git".into());
            }
            if tokio::time::Instant::now() > deadline {
                self.screen
                    .print(&text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>());
                return Err("the S3 mirror did not verify".into());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
