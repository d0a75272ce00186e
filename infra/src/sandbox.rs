//! Confining a process with bubblewrap (`bwrap`): the argv of an [`ExecSpec`] is rewritten to
//! run inside new user, mount, pid, IPC, UTS and cgroup namespaces that see only a read-only
//! system, a private `/tmp` and the paths the caller grants. A compromised or tricked tool
//! (a terraform `file()`, an `external` data source, a kubectl plugin) then can't read the
//! bridge's state, spool, configuration or other processes' `/proc`, nor write anywhere but
//! its own per-run directories.
//!
//! The environment is never put on bwrap's command line (`--setenv`): `/proc/<pid>/cmdline` is
//! readable by every user of the host. bwrap is started with exactly the spec's environment
//! ([`crate::exec`] clears everything else) and hands it on unchanged.

use std::path::{Path, PathBuf};

use crate::exec::ExecSpec;

/// The bwrap package, for error messages.
pub const INSTALL_HINT: &str = "apt-get install bubblewrap";

/// Read-only everywhere (missing ones are skipped): the programs and libraries, and the few
/// files of `/etc` that TLS, DNS and user lookups need. Never the whole of `/etc`, which may
/// hold the bridge's configuration.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/nsswitch.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

/// Where a sandboxed process runs and what `HOME` is: the private `/tmp`, empty at every start.
pub const PRIVATE_TMP: &str = "/tmp";

/// The user and group a sandboxed process runs as inside its user namespace (`nobody`); outside
/// it stays the bridge's own user, so it gains nothing.
const SANDBOX_ID: &str = "65534";

/// The sandbox shared by every process of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bwrap {
    /// The bwrap binary (absolute).
    pub program: PathBuf,
    /// Bound read-only when present: [`SYSTEM_READ_ONLY`], the `PATH` directories and what the
    /// operator adds.
    pub read_only: Vec<PathBuf>,
    /// Directories hidden under an empty tmpfs should a read-only path above contain them (the
    /// bridge's state directory).
    pub hidden: Vec<PathBuf>,
    /// Files covered by `/dev/null` (which can't be opened inside: binds are `nodev`) should
    /// any bound path contain them (the bridge's configuration file).
    pub hidden_files: Vec<PathBuf>,
}

/// What one process may see besides the system: paths bound at the same place inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Credentials and inputs (a kubeconfig, an AWS credentials file, the terraform CLI config).
    pub read_only: Vec<PathBuf>,
    /// Per-run directories the tool writes (a stack's copy, gcloud's config, kubectl's cache).
    pub read_write: Vec<PathBuf>,
    /// Whether the process keeps the host's network (every cloud CLI does).
    pub network: bool,
    /// The working directory inside; the private `/tmp` when `None`.
    pub cwd: Option<PathBuf>,
}

impl Bwrap {
    /// The first `bwrap` on `path` (a `PATH`-style list), or what to install.
    pub fn find(path: &str) -> Result<PathBuf, String> {
        std::env::split_paths(path)
            .map(|dir| dir.join("bwrap"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "the command sandbox needs bubblewrap, and no `bwrap` is on the execution \
                     path `{path}`: install it (`{INSTALL_HINT}`)"
                )
            })
    }

    /// `spec` run inside the sandbox: the same process, wrapped. `HOME` becomes the private
    /// `/tmp`; everything else of the environment is kept.
    pub fn wrap(&self, spec: ExecSpec, access: &Access) -> ExecSpec {
        let mut argv = vec![self.program.display().to_string()];
        argv.extend(
            self.args(access)
                .into_iter()
                .map(|a| a.display().to_string()),
        );
        argv.push("--".into());
        argv.extend(spec.argv);
        let mut env: Vec<(String, String)> =
            spec.env.into_iter().filter(|(k, _)| k != "HOME").collect();
        env.push(("HOME".into(), PRIVATE_TMP.into()));
        ExecSpec { argv, env, ..spec }
    }

    /// bwrap's options, in mount order: later mounts go over earlier ones.
    fn args(&self, access: &Access) -> Vec<PathBuf> {
        let mut a: Vec<PathBuf> = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            SANDBOX_ID,
            "--gid",
            SANDBOX_ID,
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            PRIVATE_TMP,
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if access.network {
            a.push("--share-net".into());
        }
        for p in &self.read_only {
            a.extend(["--ro-bind-try".into(), p.clone(), p.clone()]);
        }
        for hidden in &self.hidden {
            if self.read_only.iter().any(|p| hidden.starts_with(p)) {
                // Read-only, so a write there fails rather than vanish with the sandbox.
                a.extend([
                    "--perms".into(),
                    "0555".into(),
                    "--tmpfs".into(),
                    hidden.clone(),
                ]);
            }
        }
        for p in access.read_only.iter().map(|p| absolute(p)) {
            // A missing file stays missing inside, and the tool says so as it would outside.
            a.extend(["--ro-bind-try".into(), p.clone(), p]);
        }
        for p in access.read_write.iter().map(|p| absolute(p)) {
            a.extend(["--bind".into(), p.clone(), p]);
        }
        // Last, so that no grant above uncovers them.
        let granted = [&self.read_only, &access.read_only, &access.read_write];
        for file in &self.hidden_files {
            if granted
                .iter()
                .flat_map(|g| g.iter())
                .any(|p| file.starts_with(absolute(p)))
            {
                a.extend(["--ro-bind".into(), "/dev/null".into(), file.clone()]);
            }
        }
        let cwd = access.cwd.as_deref().unwrap_or(Path::new(PRIVATE_TMP));
        a.extend(["--chdir".into(), absolute(cwd)]);
        a
    }
}

/// `p` against the bridge's working directory: bwrap starts in the spec's, and binds need an
/// absolute place inside.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests;
