//! `execution.sandbox`: every process the bridge runs (kubectl, aws, gcloud, terraform, the dry
//! runs) runs under bubblewrap unless the operator says `none`, because the tools parse
//! attacker-influenced input (a stack's HCL, a manifest) while holding credentials, next to the
//! bridge's state. bwrap is looked up at start, so a host without it fails there, saying what
//! to install, not on the first command.

use std::path::{Path, PathBuf};

use slipway_infra::sandbox::{Bwrap, SYSTEM_READ_ONLY};

use super::Env;

/// `execution.sandbox` and `execution.sandbox_read_only` from the file.
#[derive(Debug, Default)]
pub(super) struct FileSandbox {
    pub mode: Option<String>,
    pub read_only: Vec<PathBuf>,
}

/// The sandbox, or `None` for `execution.sandbox: none` (`SLIPWAY_SANDBOX` overrides the file).
/// The read-only view is the system's, each directory of the execution `path`, and the
/// operator's `sandbox_read_only` (`SLIPWAY_SANDBOX_READ_ONLY`, `:`-separated, adds to it); the
/// state directory stays hidden under them all.
pub(super) fn load(
    file: FileSandbox,
    path: &str,
    state_dir: &Path,
    env: Env<'_>,
) -> Result<Option<Bwrap>, String> {
    let mode = env("SLIPWAY_SANDBOX").or(file.mode);
    match mode.as_deref().unwrap_or("bwrap") {
        "bwrap" => {}
        "none" => return Ok(None),
        other => {
            return Err(format!(
                "execution.sandbox / SLIPWAY_SANDBOX is `{other}`: it must be `bwrap` (the \
                 default) or `none` (only where commands already run in a separate executor \
                 container or user; see docs/operations.md)"
            ));
        }
    }
    let program = Bwrap::find(path).map_err(|e| {
        format!(
            "{e}, or set `execution.sandbox: none` if commands run in a separate executor \
             container (docs/operations.md)"
        )
    })?;
    let extra = env("SLIPWAY_SANDBOX_READ_ONLY").unwrap_or_default();
    let mut read_only: Vec<PathBuf> = SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect();
    read_only.extend(std::env::split_paths(path).filter(|p| p.is_absolute()));
    read_only.extend(file.read_only);
    read_only.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    if let Some(relative) = read_only.iter().find(|p| !p.is_absolute()) {
        return Err(format!(
            "execution.sandbox_read_only: `{}` is not an absolute path",
            relative.display()
        ));
    }
    read_only.dedup();
    let state_dir = std::path::absolute(state_dir).map_err(|e| format!("state_dir: {e}"))?;
    Ok(Some(Bwrap {
        program,
        read_only,
        hidden: vec![state_dir],
    }))
}
