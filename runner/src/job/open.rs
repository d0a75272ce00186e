//! Opening a job, in phases: the environment and config, the checkout of the merge, the change
//! files it added, the GitHub clients, then the audit spool and the scratch directory. Each
//! phase says what is wrong in the variable or setting that fixes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::Oid;
use slipway_core::change::{CHANGES_DIR, ChangeRequest};
use slipway_core::policy::Policy;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::github::{GitHub, Repo};
use slipway_infra::gitops::Mirror;

use super::files::{is_yaml, target_of};
use super::{Change, Early, Job, Options, lookup};
use crate::config::RunnerConfig;
use crate::credentials::{self, AwsSource};
use crate::env::ActionsEnv;
use crate::{audit, config};

/// Read everything the job needs before it handles its first change, and the change files the
/// merge added (of `opts.target`, if given).
pub async fn open(opts: &Options) -> Result<(Job, Vec<Change>), Early> {
    let Settings {
        env,
        cfg,
        config_path,
        keys,
        aws,
    } = settings(opts)?;
    let keys = published_keys(&cfg, &env, keys).await?;
    let checkout = Checkout::open(&env)?;
    let (gh, lock_gh) = clients(&env)?;
    let (changes, signed) = read_changes(&checkout, &keys, opts.target.as_deref());
    if changes.is_empty() {
        let target = opts.target.as_deref().map(|t| format!(" for target {t}"));
        return Err(Early::NothingToDo(format!(
            "{} adds no change requests{}; nothing to do",
            checkout.merge,
            target.unwrap_or_default()
        )));
    }
    let default_branch = default_branch(&cfg, &gh, &env.repository).await?;
    let (audit, spool) = open_audit(&cfg, &env, opts.target.as_deref())?;
    let policy = policy_before(&checkout.mirror, checkout.merge, &cfg.policy);
    let scratch = scratch(&env)?;
    let job = Job {
        config_in_repo: inside(&config_path, &env.workspace),
        region: credentials::region(&cfg, &lookup),
        mirror: Arc::new(Mutex::new(checkout.mirror)),
        merge: checkout.merge,
        changed: checkout.changed,
        declared: declared_paths(&signed),
        env,
        cfg,
        gh,
        lock_gh,
        default_branch,
        keys,
        policy,
        aws,
        audit,
        spool,
        scratch,
    };
    Ok((job, changes))
}

/// What the environment and the config file say.
struct Settings {
    env: ActionsEnv,
    cfg: RunnerConfig,
    config_path: PathBuf,
    keys: slipway_core::change::Keyring,
    aws: AwsSource,
}

fn settings(opts: &Options) -> Result<Settings, Early> {
    let env = ActionsEnv::from_lookup(&lookup).map_err(Early::Usage)?;
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| env.workspace.join(config::DEFAULT_PATH));
    let cfg = RunnerConfig::load(&config_path).map_err(Early::Usage)?;
    let keys = cfg.keyring().map_err(Early::Usage)?;
    let aws = credentials::source(opts.aws_from_env, env.id_token_request.as_ref(), &lookup)
        .map_err(Early::Usage)?;
    Ok(Settings {
        env,
        cfg,
        config_path,
        keys,
        aws,
    })
}

/// The keyring with what `key_store` publishes, read with this job's OIDC token. A store that
/// can't be read stops the run: a revocation it may hold must not be skipped.
async fn published_keys(
    cfg: &RunnerConfig,
    env: &ActionsEnv,
    keys: slipway_core::change::Keyring,
) -> Result<slipway_core::change::Keyring, Early> {
    use slipway_infra::secret_store::vault::{Vault, VaultAuth, VaultSettings};
    let Some(ks) = &cfg.key_store else {
        return Ok(keys);
    };
    let usage = |m: String| Early::Usage(format!("key_store: {m}"));
    if !slipway_infra::https_or_loopback(&ks.address) {
        return Err(usage(format!(
            "address must be https (or http on loopback): {}",
            ks.address
        )));
    }
    let (url, token) = env.id_token_request.as_ref().ok_or_else(|| {
        usage("reading the key store needs the job's OIDC token: grant the workflow `permissions: id-token: write`".into())
    })?;
    let timeout = std::time::Duration::from_secs(10);
    let jwt = slipway_infra::oidc::request_token(url, token, &ks.audience, timeout)
        .await
        .map_err(|e| usage(e.to_string()))?;
    let vault = Vault::new(VaultSettings {
        address: ks.address.trim_end_matches('/').to_string(),
        namespace: ks.namespace.clone(),
        auth: VaultAuth::JwtValue {
            mount: ks.mount.clone(),
            role: ks.role.clone(),
            jwt: jwt.expose().to_string().into(),
        },
        timeout,
    })
    .map_err(|e| usage(e.to_string()))?;
    let doc = vault
        .read_kv(&ks.path)
        .await
        .map_err(|e| usage(format!("{e}; the run stops rather than miss a revocation")))?;
    cfg.keyring_with(&doc).map_err(usage)
}

/// The checkout of the pushed merge, and what the merge changed and added.
struct Checkout {
    mirror: Mirror,
    merge: Oid,
    /// Every path the merge changed.
    changed: Vec<String>,
    /// The change files it added, sorted.
    added: Vec<String>,
}

impl Checkout {
    fn open(env: &ActionsEnv) -> Result<Checkout, Early> {
        let usage = |m: String| Early::Usage(m);
        let mirror = Mirror::open_local(&env.workspace, "main")
            .map_err(|e| usage(format!("GITHUB_WORKSPACE: {e}")))?;
        let merge =
            Oid::from_str(&env.sha).map_err(|_| usage("GITHUB_SHA is not a commit id".into()))?;
        match mirror.head_commit() {
            Ok(head) if head == merge => {}
            Ok(head) => {
                return Err(usage(format!(
                    "the checkout in {} is at {head}, not GITHUB_SHA {merge}: check out the pushed commit",
                    env.workspace.display()
                )));
            }
            Err(e) => return Err(usage(format!("reading the checkout's HEAD: {e}"))),
        }
        let changed = mirror.changed_files(merge).map_err(|e| {
            usage(format!(
                "reading what {merge} changed: {e} (check out with `fetch-depth: 2` so the merge's parents are present)"
            ))
        })?;
        let mut added: Vec<String> = mirror
            .added_files(merge, CHANGES_DIR)
            .map_err(|e| usage(format!("listing the change files {merge} added: {e}")))?
            .into_iter()
            .filter(|f| is_yaml(f))
            .collect();
        added.sort();
        Ok(Checkout {
            mirror,
            merge,
            changed,
            added,
        })
    }
}

/// Every change file the merge added, as far as it reads (those of `target` only), and every
/// signed request among them, whatever its target.
fn read_changes(
    checkout: &Checkout,
    keys: &slipway_core::change::Keyring,
    target: Option<&str>,
) -> (Vec<Change>, Vec<ChangeRequest>) {
    let mut changes = Vec::new();
    let mut signed = Vec::new();
    for path in &checkout.added {
        let text = checkout
            .mirror
            .read_file(checkout.merge, path)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        // Only a signed request may declare what the merge changes (an unsigned one could
        // claim any file); expiry doesn't matter for that.
        if let Some(cr) = text
            .as_deref()
            .and_then(|t| ChangeRequest::from_yaml(t).ok())
            .filter(|cr| {
                slipway_core::change::verify(cr, keys, chrono::DateTime::<chrono::Utc>::MIN_UTC)
                    .is_ok()
            })
        {
            signed.push(cr);
        }
        if target.is_some_and(|t| target_of(text.as_deref()) != t) {
            continue;
        }
        let parsed = match text {
            Some(t) => ChangeRequest::from_yaml(&t).map_err(|e| e.to_string()),
            None => Err("the file can't be read from the merged commit".into()),
        };
        changes.push(Change {
            path: path.clone(),
            parsed,
        });
    }
    (changes, signed)
}

/// The paths a merge may change: its change files and the files they declare as rendered.
fn declared_paths(changes: &[ChangeRequest]) -> BTreeSet<String> {
    changes
        .iter()
        .flat_map(|cr| {
            std::iter::once(cr.file_path()).chain(cr.rendered.files.iter().map(|f| f.path.clone()))
        })
        .collect()
}

/// The job's client (`GITHUB_TOKEN`) and the one that deletes lock refs.
fn clients(env: &ActionsEnv) -> Result<(GitHub, GitHub), Early> {
    let gh = GitHub::user(&env.api_url, &env.token)
        .map_err(|e| Early::Usage(format!("GITHUB_API_URL / GITHUB_TOKEN: {e}")))?;
    let lock_gh = match &env.lock_token {
        Some(t) => GitHub::user(&env.api_url, t)
            .map_err(|e| Early::Usage(format!("SLIPWAY_LOCK_TOKEN: {e}")))?,
        None => gh.clone(),
    };
    Ok((gh, lock_gh))
}

/// The configured default branch, else the repository's (one API call).
async fn default_branch(cfg: &RunnerConfig, gh: &GitHub, repo: &Repo) -> Result<String, Early> {
    if let Some(b) = &cfg.default_branch {
        return Ok(b.clone());
    }
    gh.default_branch(repo).await.map_err(|e| {
        Early::Failed(format!(
            "can't read the repository's default branch: {e} (set default_branch in the config to skip this call)"
        ))
    })
}

/// The job's audit writer and its spool directory: nothing runs without an audit trail.
fn open_audit(
    cfg: &RunnerConfig,
    env: &ActionsEnv,
    target: Option<&str>,
) -> Result<(AuditWriter, PathBuf), Early> {
    let spool = cfg.audit.spool_dir.clone().unwrap_or_else(|| {
        env.runner_temp
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("slipway-audit")
    });
    let writer = audit::writer_id(&env.run_id, &env.run_attempt, target);
    let audit = audit::open(&cfg.audit, &lookup, &env.workspace, &spool, &writer).map_err(|e| {
        Early::Usage(format!(
            "the audit spool: {e} (nothing runs without an audit trail)"
        ))
    })?;
    Ok((audit, spool))
}

/// A scratch directory for the job's changes (HOME, caches, terraform copies), removed at the end.
fn scratch(env: &ActionsEnv) -> Result<tempfile::TempDir, Early> {
    let parent = env.runner_temp.clone().unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("slipway-runner-")
        .tempdir_in(&parent)
        .map_err(|e| {
            Early::Usage(format!(
                "creating a scratch directory in {}: {e}",
                parent.display()
            ))
        })
}

/// `path` relative to the checkout, if it is inside it.
fn inside(path: &Path, workspace: &Path) -> Option<String> {
    let p = std::path::absolute(path).ok()?;
    let ws = std::path::absolute(workspace).ok()?;
    p.strip_prefix(&ws)
        .ok()
        .map(|r| r.to_string_lossy().into_owned())
}

/// The policy of the default branch as it was before the merge (the merge's first parent):
/// what the merge itself changed never judges it, so a PR can't make its own reviewers count or
/// move its own target.
fn policy_before(mirror: &Mirror, merge: Oid, path: &str) -> Result<Policy, String> {
    let parent = mirror.first_parent(merge).map_err(|e| {
        format!("reading the merge's first parent: {e} (check out with `fetch-depth: 2`)")
    })?;
    match mirror.read_file(parent, path) {
        Ok(Some(bytes)) => Policy::from_yaml(&String::from_utf8_lossy(&bytes)).map_err(|e| {
            format!(
                "the policy {path} of the default branch before the merge is invalid: {}",
                e.display_with_path(path)
            )
        }),
        Ok(None) => Err(format!(
            "the default branch had no policy at {path} before the merge"
        )),
        Err(e) => Err(format!("reading {path} before the merge: {e}")),
    }
}
