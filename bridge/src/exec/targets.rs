//! From a decided command to concrete work: the per-target credentials and settings come
//! from the bridge's configuration, keyed by the target alias; the user never chooses them.
//! This runs on the ack path, so it only reads configuration: no I/O.

use std::sync::Arc;

use slipway_core::command::silence::Silence;
use slipway_core::command::{Command, ParsedCommand, Target};
use slipway_core::policy::Decision;
use slipway_infra::exec::ExecSpec;

use super::silence::{Action, OWNER_ROLE, SilenceWork};
use super::terraform::PlanWork;
use super::work::{Shape, Work};
use crate::base::Base;

/// Ready-to-run work, and the command as shown to people (without the configuration flags the
/// bridge adds).
#[derive(Debug)]
pub struct Prepared {
    /// What the job does (a process, a terraform plan, an Alertmanager call).
    pub exec: Work,
    pub argv_shown: Vec<String>,
}

pub use super::env::{base_env, base_env_for};

/// A catalog kubectl argv with the cluster alias's credentials from configuration inserted after
/// `kubectl` (never from the user). `None` when the alias has no credentials configured.
pub fn kubectl_argv(state: &Base, alias: &str, argv: &[String]) -> Option<Vec<String>> {
    let cluster = state.config.cluster(alias)?;
    let context = cluster.context.clone().unwrap_or_else(|| alias.to_string());
    let cache = super::sandbox::kube_cache(&state.config, alias);
    let mut full = vec![
        "kubectl".to_string(),
        format!("--kubeconfig={}", cluster.kubeconfig.display()),
        format!("--context={context}"),
        format!("--cache-dir={}", cache.display()),
    ];
    full.extend(argv.iter().skip(1).cloned());
    Some(full)
}

/// A job's limits, from the decision and the policy.
#[derive(Debug, Clone, Copy)]
struct Limits {
    timeout: std::time::Duration,
    output_cap: usize,
}

/// Build the work for an allowed read/operate command, or say why it can't run here: one
/// builder per backend.
///
/// `stacks` is where `/tf plan` reads stacks from (the caller knows whether change requests and
/// their git mirror are configured); `None` refuses plans.
pub fn exec_spec(
    state: &Base,
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
    stacks: Option<Arc<dyn super::terraform::StackSource>>,
) -> Result<Prepared, String> {
    let limits = Limits {
        timeout: decision
            .timeout
            .unwrap_or(std::time::Duration::from_secs(60)),
        output_cap: usize::try_from(state.policy().output_bytes()).unwrap_or(usize::MAX),
    };
    match (&parsed.command, &decision.target, parsed.argv()) {
        (
            Command::Kubectl(_),
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
            Some(argv),
        ) => kubectl(state, alias, argv, limits),
        (Command::Aws(aws), Target::AwsProfile { .. }, Some(argv)) => Ok(Prepared {
            exec: super::aws::work(state, aws, limits.timeout, limits.output_cap)?,
            argv_shown: argv,
        }),
        (Command::Gcloud(g), Target::GcpProject { alias }, _) => Ok(Prepared {
            exec: super::work::Work::Gcloud(Box::new(super::gcloud::work(
                state,
                g,
                alias,
                limits.timeout,
                limits.output_cap,
            )?)),
            argv_shown: g.argv(),
        }),
        (Command::TfPlan { stack }, Target::Stack { .. }, Some(argv)) => {
            tf_plan(state, stack, stacks, argv, limits)
        }
        (Command::Silence(silence), Target::Alerts { env: Some(env), .. }, _) => {
            self::silence(state, silence, env, decision, limits)
        }
        _ => Err(format!(
            "`/{}` commands are not enabled in this build of Slipway yet, so nothing was run.",
            parsed.family()
        )),
    }
}

/// kubectl with the alias's credentials from configuration.
fn kubectl(
    state: &Base,
    alias: &str,
    argv: Vec<String>,
    limits: Limits,
) -> Result<Prepared, String> {
    let full = kubectl_argv(state, alias, &argv).ok_or_else(|| {
        format!(
            "cluster `{alias}` has no credentials configured in this bridge, so nothing was run; ask {}.",
            state.policy().support()
        )
    })?;
    Ok(Prepared {
        exec: Work::Minted(Box::new(super::creds::MintedWork {
            spec: ExecSpec {
                argv: full,
                env: base_env(state),
                cwd: state.work_dir.clone(),
                timeout: limits.timeout,
                output_cap: limits.output_cap,
                kill_grace: state.config.execution.kill_grace,
            },
            shape: Shape::Text,
            creds: super::creds::kube_creds(state, alias, super::kube_token::Purpose::Read),
            requester: super::creds::Requester::default(),
            access: super::sandbox::kubectl(&state.config, alias),
        })),
        argv_shown: argv,
    })
}

/// `terraform plan` of a stack from `stacks`, with terraform's automation settings and the
/// configured AWS profile.
fn tf_plan(
    state: &Base,
    stack: &str,
    stacks: Option<Arc<dyn super::terraform::StackSource>>,
    argv: Vec<String>,
    limits: Limits,
) -> Result<Prepared, String> {
    let Some(source) = stacks else {
        return Err(format!(
            "terraform plans need the GitOps repository, and this bridge has none configured \
             (`gitops.repo`, or `gitops.checkout` / SLIPWAY_GITOPS_CHECKOUT), so nothing was run; ask {}.",
            state.policy().support()
        ));
    };
    let mut env = base_env(state);
    env.extend([
        ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
        ("TF_INPUT".into(), "0".into()),
        ("CHECKPOINT_DISABLE".into(), "1".into()),
    ]);
    let mut aws = None;
    if let Some(alias) = &state.config.terraform.aws_profile {
        let (profile_env, creds) = super::aws::env_for(state, alias)?;
        env.extend(profile_env);
        aws = Some(creds);
    }
    Ok(Prepared {
        exec: Work::TfPlan(Box::new(PlanWork {
            stack: stack.to_string(),
            source,
            state_dir: state.config.state_dir.clone(),
            binary: state.config.terraform.binary.clone(),
            env,
            timeout: limits.timeout,
            output_cap: limits.output_cap,
            kill_grace: state.config.execution.kill_grace,
            sandbox: state.config.execution.sandbox.clone(),
            // A minted role session lives in the environment: the static files stay hidden.
            access: match &aws {
                Some(super::creds::RunCreds::AwsRole(_)) => super::sandbox::Access {
                    network: true,
                    ..super::sandbox::Access::default()
                },
                _ => super::sandbox::terraform(&state.config),
            },
            aws,
            requester: super::creds::Requester::default(),
        })),
        argv_shown: argv,
    })
}

/// A silence action against the environment's Alertmanager, on behalf of a known identity.
fn silence(
    state: &Base,
    silence: &Silence,
    env: &str,
    decision: &Decision<'_>,
    limits: Limits,
) -> Result<Prepared, String> {
    let Some(url) = state.config.alertmanager_url(env) else {
        return Err(format!(
            "environment `{env}` has no Alertmanager configured in this bridge \
             (`alertmanager.{env}` or SLIPWAY_ALERTMANAGER_URL), so nothing was done; ask {}.",
            state.policy().support()
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
        env: env.to_string(),
        url: url.to_string(),
        action,
        subject: identity.subject.clone(),
        is_owner: state.policy().primary_role(identity) == Some(OWNER_ROLE),
        timeout: limits.timeout,
    };
    Ok(Prepared {
        argv_shown: work.shown(),
        exec: Work::Silence(work),
    })
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
