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
    /// The configuration file itself, kept out of sight.
    pub config_file: Option<PathBuf>,
}

/// The sandbox, or `None` for `execution.sandbox: none` (`SLIPWAY_SANDBOX` overrides the file).
/// The read-only view is the system's, each directory of the execution `path`, and the
/// operator's `sandbox_read_only` (`SLIPWAY_SANDBOX_READ_ONLY`, `:`-separated, adds to it); the
/// state directory and the configuration file stay hidden under them all.
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
    let config_file = file.config_file.map(std::path::absolute).transpose();
    Ok(Some(Bwrap {
        program,
        read_only,
        hidden: vec![state_dir],
        hidden_files: config_file
            .map_err(|e| format!("the configuration file: {e}"))?
            .into_iter()
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(
        file: FileSandbox,
        path: &str,
        vars: &[(&str, &str)],
    ) -> Result<Option<Bwrap>, String> {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        };
        load(file, path, Path::new("/var/lib/slipway"), &env)
    }

    #[test]
    fn the_sandbox_is_on_by_default_and_hides_the_state_directory() {
        let b = load_env(
            FileSandbox::default(),
            slipway_infra::exec::DEFAULT_PATH,
            &[],
        )
        .unwrap()
        .expect("bwrap by default");
        assert!(b.program.ends_with("bwrap"), "{b:?}");
        assert!(b.read_only.contains(&PathBuf::from("/usr")));
        assert_eq!(b.hidden, [PathBuf::from("/var/lib/slipway")]);
        let file = FileSandbox {
            mode: Some("bwrap".into()),
            read_only: vec!["/opt/tools".into()],
            config_file: Some("/opt/tools/slipway.yaml".into()),
        };
        let extra = [("SLIPWAY_SANDBOX_READ_ONLY", "/opt/a:/opt/b")];
        let b = load_env(file, "/usr/bin", &extra).unwrap().unwrap();
        for p in ["/opt/tools", "/opt/a", "/opt/b"] {
            assert!(b.read_only.contains(&PathBuf::from(p)), "{p}: {b:?}");
        }
        assert_eq!(b.hidden_files, [PathBuf::from("/opt/tools/slipway.yaml")]);
    }

    #[test]
    fn none_bad_modes_relative_paths_and_a_missing_bwrap_are_explained() {
        let none = [("SLIPWAY_SANDBOX", "none")];
        assert_eq!(
            load_env(FileSandbox::default(), "/nowhere", &none),
            Ok(None)
        );
        let e = load_env(FileSandbox::default(), "/nowhere", &[]).unwrap_err();
        assert!(
            e.contains("apt-get install bubblewrap") && e.contains("sandbox: none"),
            "{e}"
        );
        let bad = [("SLIPWAY_SANDBOX", "docker")];
        let e = load_env(FileSandbox::default(), "/usr/bin", &bad).unwrap_err();
        assert!(e.contains("`docker`") && e.contains("`bwrap`"), "{e}");
        let file = FileSandbox {
            read_only: vec!["tools".into()],
            ..FileSandbox::default()
        };
        let e = load_env(file, "/usr/bin", &[]).unwrap_err();
        assert!(e.contains("`tools` is not an absolute path"), "{e}");
    }
}
