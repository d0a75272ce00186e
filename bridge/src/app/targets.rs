//! From a decided command to a concrete process: the per-target credentials and settings come
//! from the bridge's configuration, keyed by the target alias; the user never chooses them.

use slipway_core::command::{Command, ParsedCommand, Target};
use slipway_core::policy::Decision;
use slipway_infra::exec::ExecSpec;

use super::AppState;

/// A ready-to-run command: the spec, and the argv as shown to people (without the
/// configuration flags the bridge adds).
#[derive(Debug)]
pub struct Prepared {
    pub exec: ExecSpec,
    pub argv_shown: Vec<String>,
}

fn base_env(state: &AppState) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), state.config.execution.path.clone()),
        (
            "HOME".into(),
            state.config.state_dir.join("home").display().to_string(),
        ),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

/// Build the process for an allowed read/operate command, or say why it can't run here.
pub fn exec_spec(
    state: &AppState,
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
) -> Result<Prepared, String> {
    let argv = parsed
        .argv()
        .ok_or_else(|| format!("`{}` has no process to run.", parsed.text))?;
    let timeout = decision
        .timeout
        .unwrap_or(std::time::Duration::from_secs(60));
    let output_cap = usize::try_from(state.policy.output_bytes()).unwrap_or(usize::MAX);
    match (&parsed.command, &decision.target) {
        (
            Command::Kubectl(_),
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
        ) => {
            let Some(cluster) = state.config.cluster(alias) else {
                return Err(format!(
                    "cluster `{alias}` has no credentials configured in this bridge, so nothing was run; ask {}.",
                    state.policy.support()
                ));
            };
            let context = cluster.context.clone().unwrap_or_else(|| alias.clone());
            let cache = state.config.state_dir.join("kube-cache").join(alias);
            let mut full = vec![
                "kubectl".to_string(),
                format!("--kubeconfig={}", cluster.kubeconfig.display()),
                format!("--context={context}"),
                format!("--cache-dir={}", cache.display()),
            ];
            full.extend(argv.iter().skip(1).cloned());
            Ok(Prepared {
                exec: ExecSpec {
                    argv: full,
                    env: base_env(state),
                    cwd: state.work_dir.clone(),
                    timeout,
                    output_cap,
                    kill_grace: state.config.execution.kill_grace,
                },
                argv_shown: argv,
            })
        }
        _ => Err(format!(
            "`/{}` commands are not enabled in this build of Slipway yet, so nothing was run.",
            parsed.family()
        )),
    }
}
