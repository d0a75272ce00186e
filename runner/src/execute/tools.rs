//! Running a verified change: terraform (re-plan, compare the pinned digest, apply the saved
//! plan), kubectl (the exact signed argv with the cluster's credentials), or a deploy (the
//! rendered manifests, or a configured command). Every process goes through
//! [`slipway_infra::exec`]: argv only, cleared environment, own process group, one deadline for
//! the whole change, output redacted as it arrives.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slipway_core::change::{ChangeRequest, plan_digest};
use slipway_core::command::tf::TF_PLAN_FILE;
use slipway_infra::exec::{ExecEnd, ExecSpec, run_to_end};

use crate::outcome::{Ran, Step, Verdict};

use crate::config::ToolsConfig;
use crate::kubeconfig::KubeTarget;

/// `terraform show -json` of a big plan is large; it is digested, never shown.
const SHOW_JSON_CAP: usize = 64 * 1024 * 1024;

/// What every step of one change shares. `Debug` names `extra_env`'s variables only.
#[derive(Clone)]
pub struct Runner<'a> {
    pub tools: &'a ToolsConfig,
    /// A scratch directory for this change (HOME, caches, the terraform copy).
    pub scratch: PathBuf,
    pub deadline: Instant,
    pub timeout: Duration,
    pub output_cap: usize,
    /// Credentials and tool settings for every process.
    pub extra_env: Vec<(String, String)>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("tools", &self.tools)
            .field("scratch", &self.scratch)
            .field("timeout", &self.timeout)
            .field("output_cap", &self.output_cap)
            .field("extra_env", &crate::credentials::names(&self.extra_env))
            .finish_non_exhaustive()
    }
}

/// What every terraform step of one change shares.
struct Terraform {
    env: Vec<(String, String)>,
    /// The stack's directory in the fresh export.
    cwd: PathBuf,
    bin: String,
}

impl Terraform {
    fn argv(&self, args: &[&str]) -> Vec<String> {
        std::iter::once(self.bin.clone())
            .chain(args.iter().map(|a| (*a).to_string()))
            .collect()
    }
}

/// Keep a step; `Err` (the verdict) if it didn't succeed, so the change stops there.
fn keep(steps: &mut Vec<Step>, step: Step, ok: bool) -> Result<(), Verdict> {
    let verdict = (!ok).then(|| Runner::failed(&step));
    steps.push(step);
    verdict.map_or(Ok(()), Err)
}

impl Runner<'_> {
    /// Every process's environment. The metadata service is off, so a tool that finds no
    /// credentials for its target fails rather than borrowing the CI host's instance role.
    pub(super) fn base_env(&self) -> Vec<(String, String)> {
        let (metadata, off) = slipway_infra::exec::NO_INSTANCE_METADATA;
        let mut env = vec![
            ("PATH".to_string(), self.tools.path.clone()),
            (
                "HOME".to_string(),
                self.scratch.join("home").display().to_string(),
            ),
            (metadata.to_string(), off.to_string()),
        ];
        env.extend(self.extra_env.iter().cloned());
        env
    }

    pub(super) async fn step(
        &self,
        argv: Vec<String>,
        shown: String,
        env: &[(String, String)],
        cwd: &Path,
        cap: usize,
        mutating: bool,
    ) -> Step {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            let ended = ExecEnd::TimedOut.describe(self.timeout);
            return Step {
                shown,
                end: ExecEnd::TimedOut,
                ended,
                duration: Duration::ZERO,
                output: String::new(),
                truncated: false,
                digest: String::new(),
                total_bytes: 0,
                mutating,
            };
        }
        let r = run_to_end(ExecSpec {
            argv,
            env: env.to_vec(),
            cwd: cwd.to_path_buf(),
            timeout: remaining,
            output_cap: cap,
            kill_grace: self.tools.kill_grace.0,
        })
        .await;
        let ended = r.end.describe(self.timeout);
        Step {
            shown,
            end: r.end,
            ended,
            duration: r.duration,
            output: r.output,
            truncated: r.truncated,
            digest: r.digest,
            total_bytes: r.total_bytes,
            mutating,
        }
    }

    /// The verdict after a failed step.
    fn failed(step: &Step) -> Verdict {
        let why = format!("`{}` {}", step.shown, step.ended);
        if step.mutating {
            Verdict::Partial(format!(
                "{why}; it may have changed some resources before it stopped, see its output"
            ))
        } else {
            Verdict::Failed(format!("{why}; nothing was changed"))
        }
    }

    /// terraform: init, plan -out, show -json (digest compared with the pinned one), apply.
    /// `stack_dir` is the directory inside `export` (a fresh copy of the merged commit).
    pub async fn terraform(&self, cr: &ChangeRequest, export: &Path, stack_dir: &str) -> Ran {
        let mut steps = Vec::new();
        let Some(pinned) = cr.rendered.plan_sha256.clone() else {
            return Ran { steps, verdict: Verdict::Failed("the change request pins no plan digest (rendered.plan_sha256), so its plan can't be checked; nothing was changed".into()) };
        };
        let verdict = match self.terraform_setup(export.join(stack_dir)) {
            Err(verdict) => verdict,
            Ok(tf) => match self.replan(&tf, &pinned, &mut steps).await {
                Err(verdict) => verdict,
                Ok(()) => self.apply_plan(&tf, cr, &mut steps).await,
            },
        };
        Ran { steps, verdict }
    }

    /// terraform's environment: no prompts, no checkpoint calls, and a CLI config of our own
    /// (so none from the checkout or the host is read).
    fn terraform_setup(&self, cwd: PathBuf) -> Result<Terraform, Verdict> {
        let rc = self.scratch.join("cli.tfrc");
        std::fs::write(
            &rc,
            "# Written by slipway-runner.\ndisable_checkpoint = true\n",
        )
        .map_err(|e| Verdict::Failed(format!("writing {}: {e}", rc.display())))?;
        let mut env = self.base_env();
        env.extend(
            [
                ("TF_IN_AUTOMATION", "1"),
                ("TF_INPUT", "0"),
                ("CHECKPOINT_DISABLE", "1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()));
        Ok(Terraform {
            env,
            cwd,
            bin: self.tools.terraform.clone(),
        })
    }

    /// init, plan -out and show -json; `Ok` only if the new plan's digest is the approved one.
    async fn replan(
        &self,
        tf: &Terraform,
        pinned: &str,
        steps: &mut Vec<Step>,
    ) -> Result<(), Verdict> {
        let out_flag = format!("-out={TF_PLAN_FILE}");
        for args in [
            &["init", "-input=false", "-no-color"][..],
            &["plan", "-input=false", "-no-color", &out_flag],
        ] {
            let s = self
                .step(
                    tf.argv(args),
                    format!("terraform {}", args.join(" ")),
                    &tf.env,
                    &tf.cwd,
                    self.output_cap,
                    false,
                )
                .await;
            let ok = s.end.success();
            keep(steps, s, ok)?;
        }
        let mut show = self
            .step(
                tf.argv(&["show", "-json", TF_PLAN_FILE]),
                format!("terraform show -json {TF_PLAN_FILE}"),
                &tf.env,
                &tf.cwd,
                SHOW_JSON_CAP,
                false,
            )
            .await;
        let json = std::mem::take(&mut show.output);
        let ok = show.end.success() && !show.truncated;
        keep(steps, show, ok)?;
        let digest =
            plan_digest(&json).map_err(|e| Verdict::Failed(format!("{e}; nothing was changed")))?;
        if !digest.eq_ignore_ascii_case(pinned) {
            return Err(Verdict::Drift(format!(
                "the re-plan differs from the approved plan (approved digest {pinned}, now {digest}): the stack or its state changed after approval. Nothing was applied; request the change again to review the new plan"
            )));
        }
        Ok(())
    }

    /// The signed argv (`terraform apply -input=false -no-color slipway.tfplan`) with the
    /// configured binary: it applies exactly the plan just checked.
    async fn apply_plan(
        &self,
        tf: &Terraform,
        cr: &ChangeRequest,
        steps: &mut Vec<Step>,
    ) -> Verdict {
        let mut apply = cr.command.argv.clone();
        if let Some(first) = apply.first_mut() {
            first.clone_from(&tf.bin);
        }
        let s = self
            .step(
                apply,
                cr.command.argv.join(" "),
                &tf.env,
                &tf.cwd,
                self.output_cap,
                true,
            )
            .await;
        let ok = s.end.success();
        match keep(steps, s, ok) {
            Ok(()) => Verdict::Done,
            Err(verdict) => verdict,
        }
    }

    /// The signed kubectl argv with the cluster's kubeconfig, context and a cache directory
    /// inserted right after `kubectl`.
    fn kubectl_argv(&self, cr: &ChangeRequest, kube: &KubeTarget) -> Vec<String> {
        self.kubectl_with(kube, cr.command.argv.iter().skip(1).cloned())
    }

    /// kubectl with the cluster's kubeconfig, context and a cache directory, then `args`.
    pub(super) fn kubectl_with(
        &self,
        kube: &KubeTarget,
        rest: impl IntoIterator<Item = String>,
    ) -> Vec<String> {
        let mut argv = vec![
            self.tools.kubectl.clone(),
            format!("--kubeconfig={}", kube.kubeconfig.display()),
            format!("--context={}", kube.context),
            format!("--cache-dir={}", self.scratch.join("kube-cache").display()),
        ];
        argv.extend(rest);
        argv
    }

    /// One mutating process, run in the checkout (so `-f <path>` and `-k <dir>` name files of
    /// the merged commit).
    async fn single(&self, argv: Vec<String>, shown: String, checkout: &Path) -> Ran {
        let s = self
            .step(
                argv,
                shown,
                &self.base_env(),
                checkout,
                self.output_cap,
                true,
            )
            .await;
        let verdict = if s.end.success() {
            Verdict::Done
        } else {
            Self::failed(&s)
        };
        Ran {
            steps: vec![s],
            verdict,
        }
    }

    /// kubectl: the signed argv with the cluster's credentials.
    pub async fn kubectl(&self, cr: &ChangeRequest, kube: &KubeTarget, checkout: &Path) -> Ran {
        let shown = format!("{} (cluster {})", cr.command.argv.join(" "), kube.context);
        self.single(self.kubectl_argv(cr, kube), shown, checkout)
            .await
    }

    /// deploy: the configured command (placeholders filled), or else the signed argv with the
    /// cluster's credentials, like kubectl.
    pub async fn deploy(
        &self,
        cr: &ChangeRequest,
        command: Option<&[String]>,
        kube: &KubeTarget,
        dir: &str,
        checkout: &Path,
    ) -> Ran {
        let Some(template) = command else {
            return self.kubectl(cr, kube, checkout).await;
        };
        let context = kube.context.clone();
        let (service, env) = match &cr.target {
            slipway_core::command::Target::Service { service, env } => {
                (service.clone(), env.clone())
            }
            _ => (String::new(), String::new()),
        };
        let kubeconfig = kube.kubeconfig.display().to_string();
        let fill = |w: &String| {
            w.replace("{dir}", dir)
                .replace("{kubeconfig}", &kubeconfig)
                .replace("{context}", &context)
                .replace("{service}", &service)
                .replace("{env}", &env)
        };
        let shown = format!(
            "{} (the configured deploy command for `{}`)",
            template.iter().map(fill).collect::<Vec<_>>().join(" "),
            cr.command.argv.join(" ")
        );
        let argv = template
            .iter()
            .map(fill)
            .map(|w| {
                if w == "kubectl" {
                    self.tools.kubectl.clone()
                } else {
                    w
                }
            })
            .collect();
        self.single(argv, shown, checkout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_runs_without_the_instance_role() {
        let tools = ToolsConfig::default();
        let runner = Runner {
            tools: &tools,
            scratch: PathBuf::from("/tmp/scratch"),
            deadline: Instant::now(),
            timeout: Duration::from_secs(1),
            output_cap: 1024,
            extra_env: Vec::new(),
        };
        let env = runner.base_env();
        assert!(
            env.iter()
                .any(|(k, v)| k == "AWS_EC2_METADATA_DISABLED" && v == "true"),
            "{env:?}"
        );
        let with_token = Runner {
            extra_env: vec![("GOOGLE_OAUTH_ACCESS_TOKEN".into(), "ya29.secret".into())],
            ..runner
        };
        let shown = format!("{with_token:?}");
        assert!(
            shown.contains("GOOGLE_OAUTH_ACCESS_TOKEN") && !shown.contains("ya29.secret"),
            "Debug names credentials, never shows them: {shown}"
        );
    }
}
