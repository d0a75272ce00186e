//! The environment every backend's process starts from.

use crate::base::Base;

/// The environment every process starts from (nothing is inherited from the bridge).
pub fn base_env(state: &Base) -> Vec<(String, String)> {
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

/// Write `path` whole or not at all (a temporary file renamed over it), readable by the
/// bridge's user only: credentials a process is handed (a token file, a kubeconfig).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}
