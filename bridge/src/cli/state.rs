//! `slipway state migrate --to redis`: move one replica's embedded state (the redb files in the
//! state directory) into the shared Redis named by `SLIPWAY_REDIS_URL` (or the Sentinel
//! settings), before starting replicas on it (issue 19).
//!
//! Every record is an upsert, so running it again is harmless. The bridge must be stopped: a
//! redb file it holds is refused with a sentence saying so. Exit codes: 0 migrated, 1 failed
//! (nothing is rolled back; running it again completes it), 2 usage (no Redis configured).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::identity::directory::{DirectoryStore, Source};
use crate::identity::links::LinkStore;
use crate::identity::sso::ClaimStore;
use crate::shared::blocking::Pool;

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// Copy the embedded state into the shared Redis.
    Migrate(Migrate),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Backend {
    Redis,
}

#[derive(Debug, Args)]
pub struct Migrate {
    /// Where the state goes (only `redis`).
    #[arg(long, value_enum)]
    to: Backend,
    /// The state directory holding `state.redb`, `identity.redb`, `directory.redb`, `sso.redb`.
    #[arg(long, env = "SLIPWAY_STATE_DIR", default_value = ".slipway")]
    state_dir: PathBuf,
}

pub fn run(cmd: &StateCmd) -> ExitCode {
    let StateCmd::Migrate(m) = cmd;
    let Backend::Redis = m.to;
    let redis = match crate::config::redis_from_env(&|k| std::env::var(k).ok()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "error: no Redis is configured: set SLIPWAY_REDIS_URL (or SLIPWAY_REDIS_SENTINELS)"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = Pool::new(redis);
    if let Err(e) = pool.run(|c| redis::cmd("PING").query::<String>(c)) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    match migrate(&m.state_dir, &pool) {
        Ok(report) => {
            for (what, n) in report {
                println!("{n:>8}  {what}");
            }
            println!("migrated {} into Redis", m.state_dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Copy each redb file that exists; returns what was copied, by kind.
fn migrate(dir: &Path, pool: &Pool) -> Result<Vec<(String, usize)>, String> {
    let mut report = Vec::new();
    if dir.join(crate::store::RedbStore::FILE).exists() {
        let from = crate::store::RedbStore::open(dir).map_err(|e| e.to_string())?;
        let dump = from.dump().map_err(|e| e.to_string())?;
        dump.write_into(&crate::store::RedisStore::new(pool.clone()))
            .map_err(|e| e.to_string())?;
        report.extend(dump.counts().into_iter().map(|(w, n)| (w.to_string(), n)));
    }
    if dir.join(crate::identity::links::RedbLinks::FILE).exists() {
        report.extend(links(dir, pool)?);
    }
    if dir.join(crate::identity::RedbDirectory::FILE).exists() {
        report.extend(directory(dir, pool)?);
    }
    if dir.join(crate::identity::sso::RedbClaims::FILE).exists() {
        report.push(("sso claims".into(), claims(dir, pool)?));
    }
    if report.is_empty() {
        return Err(format!("{} holds no Slipway state files", dir.display()));
    }
    Ok(report)
}

fn links(dir: &Path, pool: &Pool) -> Result<Vec<(String, usize)>, String> {
    let from = crate::identity::links::RedbLinks::open(dir).map_err(|e| e.to_string())?;
    let to = crate::identity::links_redis::RedisLinks::open(pool);
    let all = from.links().map_err(|e| e.to_string())?;
    for (user, link) in &all {
        to.set_link(user, link).map_err(|e| e.to_string())?;
    }
    let deactivated = from.deactivated().map_err(|e| e.to_string())?;
    for user in &deactivated {
        to.set_slack_deactivated(user, true)
            .map_err(|e| e.to_string())?;
    }
    Ok(vec![
        ("identity links".into(), all.len()),
        ("deactivated slack users".into(), deactivated.len()),
    ])
}

fn directory(dir: &Path, pool: &Pool) -> Result<Vec<(String, usize)>, String> {
    let from = crate::identity::RedbDirectory::open(dir).map_err(|e| e.to_string())?;
    let users = from.users().map_err(|e| e.to_string())?;
    let groups = from.groups().map_err(|e| e.to_string())?;
    let mut sync = Vec::new();
    for source in [Source::Scim, Source::Google] {
        sync.push((source, from.sync_state(source).map_err(|e| e.to_string())?));
    }
    crate::identity::RedisDirectory::open(pool)
        .import(&users, &groups, &sync)
        .map_err(|e| e.to_string())?;
    Ok(vec![
        ("directory users".into(), users.len()),
        ("directory groups".into(), groups.len()),
    ])
}

fn claims(dir: &Path, pool: &Pool) -> Result<usize, String> {
    let from = crate::identity::sso::RedbClaims::open(dir).map_err(|e| e.to_string())?;
    let to = crate::identity::links_redis::RedisClaims::open(pool);
    let all = from.all().map_err(|e| e.to_string())?;
    for (user, c) in &all {
        to.set_claims(user, c).map_err(|e| e.to_string())?;
    }
    Ok(all.len())
}
