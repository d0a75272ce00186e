//! From a decided command to concrete work: the per-target credentials and settings come
//! from the bridge's configuration, keyed by the target alias; the user never chooses them.
//! This runs on the ack path, so it only reads configuration: no I/O.

use std::sync::Arc;

use slipway_core::command::silence::Silence;
use slipway_core::command::{Command, ParsedCommand, Target};
use slipway_core::policy::Decision;
use slipway_infra::exec::ExecSpec;

use super::AppState;
use super::silence::{Action, OWNER_ROLE, SilenceWork};
use super::terraform::{CheckoutSource, PlanWork};
use super::work::{Shape, Work};

/// Ready-to-run work, and the command as shown to people (without the configuration flags the
/// bridge adds).
#[derive(Debug)]
pub struct Prepared {
    /// What the job does (a process, a terraform plan, an Alertmanager call).
    pub exec: Work,
    pub argv_shown: Vec<String>,
}

/// The environment every process starts from (nothing is inherited from the bridge).
pub fn base_env(state: &AppState) -> Vec<(String, String)> {
    base_env_for(&state.config)
}

/// [`base_env`] from the configuration alone. No child may fall back to the bridge host's
/// instance role, whatever tool it runs.
pub fn base_env_for(config: &crate::config::Config) -> Vec<(String, String)> {
    let (metadata, off) = slipway_infra::exec::NO_INSTANCE_METADATA;
    vec![
        ("PATH".into(), config.execution.path.clone()),
        (
            "HOME".into(),
            config.state_dir.join("home").display().to_string(),
        ),
        ("LANG".into(), "C.UTF-8".into()),
        (metadata.into(), off.into()),
    ]
}

/// A catalog kubectl argv with the cluster alias's credentials from configuration inserted after
/// `kubectl` (never from the user). `None` when the alias has no credentials configured.
pub fn kubectl_argv(state: &AppState, alias: &str, argv: &[String]) -> Option<Vec<String>> {
    let cluster = state.config.cluster(alias)?;
    let context = cluster.context.clone().unwrap_or_else(|| alias.to_string());
    let cache = state.config.state_dir.join("kube-cache").join(alias);
    let mut full = vec![
        "kubectl".to_string(),
        format!("--kubeconfig={}", cluster.kubeconfig.display()),
        format!("--context={context}"),
        format!("--cache-dir={}", cache.display()),
    ];
    full.extend(argv.iter().skip(1).cloned());
    Some(full)
}

/// Build the work for an allowed read/operate command, or say why it can't run here.
pub fn exec_spec(
    state: &AppState,
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
) -> Result<Prepared, String> {
    let timeout = decision
        .timeout
        .unwrap_or(std::time::Duration::from_secs(60));
    let output_cap = usize::try_from(state.policy.output_bytes()).unwrap_or(usize::MAX);
    let argv = parsed.argv();
    match (&parsed.command, &decision.target, argv) {
        (
            Command::Kubectl(_),
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
            Some(argv),
        ) => {
            let full = kubectl_argv(state, alias, &argv).ok_or_else(|| {
                format!(
                    "cluster `{alias}` has no credentials configured in this bridge, so nothing was run; ask {}.",
                    state.policy.support()
                )
            })?;
            Ok(Prepared {
                exec: Work::Process {
                    spec: ExecSpec {
                        argv: full,
                        env: base_env(state),
                        cwd: state.work_dir.clone(),
                        timeout,
                        output_cap,
                        kill_grace: state.config.execution.kill_grace,
                    },
                    shape: Shape::Text,
                },
                argv_shown: argv,
            })
        }
        (Command::Aws(aws), Target::AwsProfile { .. }, Some(argv)) => Ok(Prepared {
            exec: super::aws::work(state, aws, timeout, output_cap)?,
            argv_shown: argv,
        }),
        (Command::TfPlan { stack }, Target::Stack { .. }, Some(argv)) => {
            // The git mirror (default branch head) when change requests are configured; else a
            // configured checkout.
            let source: Arc<dyn super::terraform::StackSource> = match (
                &state.change,
                state.config.gitops.checkout.clone(),
            ) {
                (Some(svc), _) => Arc::new(crate::change::MirrorSource {
                    svc: svc.clone(),
                    handle: tokio::runtime::Handle::current(),
                }),
                (None, Some(checkout)) => Arc::new(CheckoutSource { root: checkout }),
                (None, None) => {
                    return Err(format!(
                        "terraform plans need the GitOps repository, and this bridge has none configured \
                         (`gitops.repo`, or `gitops.checkout` / SLIPWAY_GITOPS_CHECKOUT), so nothing was run; ask {}.",
                        state.policy.support()
                    ));
                }
            };
            let mut env = base_env(state);
            env.extend([
                ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
                ("TF_INPUT".into(), "0".into()),
                ("CHECKPOINT_DISABLE".into(), "1".into()),
            ]);
            if let Some(alias) = &state.config.terraform.aws_profile {
                env.extend(super::aws::env_for(state, alias)?);
            }
            Ok(Prepared {
                exec: Work::TfPlan(PlanWork {
                    stack: stack.clone(),
                    source,
                    state_dir: state.config.state_dir.clone(),
                    binary: state.config.terraform.binary.clone(),
                    env,
                    timeout,
                    output_cap,
                    kill_grace: state.config.execution.kill_grace,
                }),
                argv_shown: argv,
            })
        }
        (Command::Silence(silence), Target::Alerts { env: Some(env), .. }, _) => {
            let Some(url) = state.config.alertmanager_url(env) else {
                return Err(format!(
                    "environment `{env}` has no Alertmanager configured in this bridge \
                     (`alertmanager.{env}` or SLIPWAY_ALERTMANAGER_URL), so nothing was done; ask {}.",
                    state.policy.support()
                ));
            };
            let identity = decision
                .identity
                .ok_or_else(|| "silences need a known identity".to_string())?;
            let action = match silence {
                Silence::Create {
                    matchers,
                    duration,
                    comment,
                    ..
                } => Action::Create {
                    matchers: matchers.clone(),
                    duration: *duration,
                    comment: comment.clone(),
                },
                Silence::List { .. } => Action::List,
                Silence::Expire { id, .. } => Action::Expire { id: id.clone() },
            };
            let work = SilenceWork {
                env: env.clone(),
                url: url.to_string(),
                action,
                subject: identity.subject.clone(),
                is_owner: state.policy.primary_role(identity) == Some(OWNER_ROLE),
                timeout,
            };
            Ok(Prepared {
                argv_shown: work.shown(),
                exec: Work::Silence(work),
            })
        }
        _ => Err(format!(
            "`/{}` commands are not enabled in this build of Slipway yet, so nothing was run.",
            parsed.family()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_process_starts_without_the_instance_role() {
        let config = crate::config::Config::load_with(None, &|k| {
            (k == "SLIPWAY_SLACK_SIGNING_SECRET").then(|| "targets-signing-secret".to_string())
        })
        .unwrap();
        let env = base_env_for(&config);
        assert!(
            env.iter()
                .any(|(k, v)| k == "AWS_EC2_METADATA_DISABLED" && v == "true"),
            "{env:?}"
        );
    }
}
