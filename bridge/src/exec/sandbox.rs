//! Every process the bridge runs goes through [`wrap`]: under bubblewrap
//! (`execution.sandbox`, see `config/sandbox`) it sees the read-only system, a private `/tmp`
//! and only what its backend grants here: its own credentials read-only, its per-run
//! directories read-write. The rest of the state directory (the spool, `state.redb`, other
//! clusters' and projects' credentials) and other processes' `/proc` are out of sight.

use std::path::{Path, PathBuf};

use slipway_infra::exec::ExecSpec;
pub use slipway_infra::sandbox::{Access, Bwrap};

use crate::config::Config;

/// terraform's provider plugin cache, beside its CLI config (`exec::terraform::cli_config`
/// writes both): the one directory outside its own tree a plan may write.
pub const PLUGIN_CACHE: &str = "plugin-cache";

/// `spec` as the configuration says it runs: sandboxed, or as it is with `sandbox: none`.
pub fn wrap(config: &Config, spec: ExecSpec, access: &Access) -> ExecSpec {
    wrap_in(config.execution.sandbox.as_ref(), spec, access)
}

/// [`wrap`] for work that carries its sandbox with it (a plan, off the ack path).
pub fn wrap_in(sandbox: Option<&Bwrap>, spec: ExecSpec, access: &Access) -> ExecSpec {
    match sandbox {
        Some(bwrap) => bwrap.wrap(spec, access),
        None => spec,
    }
}

/// kubectl's cache directory. Under the sandbox it is the run's private `/tmp`: a cache shared
/// between runs would let one run plant discovery answers for the next.
pub fn kube_cache(config: &Config, alias: &str) -> PathBuf {
    match config.execution.sandbox {
        Some(_) => PathBuf::from(slipway_infra::sandbox::PRIVATE_TMP).join("kube-cache"),
        None => config.state_dir.join("kube-cache").join(alias),
    }
}

/// What kubectl needs for `alias`: its kubeconfig, or, for a kubeconfig the bridge keeps in
/// its state directory (GKE), that cluster's directory, so the token file it rewrites stays
/// current inside. Files a hand-written kubeconfig names go in `execution.sandbox_read_only`.
pub fn kubectl(config: &Config, alias: &str) -> Access {
    let read_only = config
        .cluster(alias)
        .map(|c| match c.kubeconfig.parent() {
            Some(dir) if c.kubeconfig.starts_with(&config.state_dir) => dir.to_path_buf(),
            _ => c.kubeconfig,
        })
        .into_iter()
        .collect();
    Access {
        read_only,
        network: true,
        ..Access::default()
    }
}

/// What the AWS CLI (or terraform's AWS provider) needs for a profile alias: its config and
/// credentials files.
pub fn aws(config: &Config, alias: &str) -> Access {
    let read_only = config
        .aws_profile(alias)
        .map(|p| [p.config_file, p.credentials_file])
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    Access {
        read_only,
        network: true,
        ..Access::default()
    }
}

/// What terraform needs before its tree exists: the AWS files of `terraform.aws_profile`.
pub fn terraform(config: &Config) -> Access {
    let mut access = config
        .terraform
        .aws_profile
        .as_deref()
        .map_or_else(Access::default, |alias| aws(config, alias));
    access.network = true;
    access
}

/// [`terraform`]'s access once the run's copy of the tree is in `tree`, planning in `cwd`: its
/// CLI config read-only, the tree and the provider cache beside the CLI config read-write.
pub fn terraform_run(mut access: Access, tree: &Path, rc: &Path, cwd: &Path) -> Access {
    access.read_only.push(rc.to_path_buf());
    access.read_write.push(tree.to_path_buf());
    if let Some(dir) = rc.parent() {
        access.read_write.push(dir.join(PLUGIN_CACHE));
    }
    access.cwd = Some(cwd.to_path_buf());
    access
}
