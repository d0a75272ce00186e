//! The bridge's restart-safe state, behind one trait so a shared store can replace the embedded
//! one later: which Slack message mirrors which PR, people's linked GitHub tokens (sealed by the
//! caller: the store only ever sees ciphertext), the review ids submitted through Slack, GitHub
//! webhook deliveries already handled, and each open change request's deadline.
//!
//! [`RedbStore`] keeps it in `<state_dir>/state.redb` (redb: one file, ACID, crash-safe; every
//! write is one fsync'd transaction), for one replica. [`RedisStore`] keeps it in the shared
//! Redis, so every replica sees every other's (issue 19). [`MemoryStore`] is the same in memory,
//! for unit tests. [`StateDump`] copies one into another (`slipway state migrate`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

mod dump;
pub mod envelope;
mod memory;
mod redis;

pub use dump::StateDump;
pub use memory::MemoryStore;
pub use redis::RedisStore;

/// A store failure (I/O, corruption). Callers log it and carry on where that is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

pub type Result<T> = std::result::Result<T, StoreError>;

/// The Slack message that mirrors a PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackThread {
    pub channel: String,
    pub ts: String,
}

/// A direct message Slipway sent about a PR: who was asked or reminded, and where, so the
/// message's buttons can follow the PR and a reminder goes out once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Notice {
    /// `ask` (the request needs them) or `remind` (its expiry is near).
    pub kind: String,
    pub channel: String,
    pub ts: String,
}

impl Notice {
    /// One string (`kind\tchannel\tts`): Slack's ids never hold a tab.
    fn encode(&self) -> String {
        format!("{}\t{}\t{}", self.kind, self.channel, self.ts)
    }

    fn decode(s: &str) -> Option<Notice> {
        let mut parts = s.splitn(3, '\t');
        Some(Notice {
            kind: parts.next()?.to_string(),
            channel: parts.next()?.to_string(),
            ts: parts.next()?.to_string(),
        })
    }
}

/// When a PR's change request expires, as read from the change file at `head_sha`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub head_sha: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Everything the bridge must remember across restarts.
pub trait StateStore: Send + Sync + fmt::Debug {
    fn thread(&self, pr: u64) -> Result<Option<SlackThread>>;
    fn set_thread(&self, pr: u64, thread: &SlackThread) -> Result<()>;

    /// A person's sealed (encrypted) GitHub token, by Slack user id.
    fn sealed_token(&self, slack_user: &str) -> Result<Option<Vec<u8>>>;
    fn set_sealed_token(&self, slack_user: &str, sealed: &[u8]) -> Result<()>;
    /// How many times this person's token was sealed: bound into each seal, so an older sealed
    /// row put back (a rollback) no longer opens.
    fn token_generation(&self, slack_user: &str) -> Result<u64>;
    /// Store a sealed row and its generation together (one transaction).
    fn set_sealed_token_at(&self, slack_user: &str, sealed: &[u8], generation: u64) -> Result<()>;
    fn remove_token(&self, slack_user: &str) -> Result<()>;

    /// Remember that review `review` on PR `pr` was submitted through Slack.
    fn add_slack_review(&self, pr: u64, review: u64) -> Result<()>;
    fn slack_reviews(&self, pr: u64) -> Result<BTreeSet<u64>>;

    /// Record a webhook delivery key received at `at` (unix seconds): a delivery id, or
    /// `sha256:<hex>` of a signed body. `true` the first time, `false` for a redelivery.
    fn first_delivery(&self, id: &str, at: i64) -> Result<bool>;
    /// Forget deliveries received before `before`; returns how many went.
    fn prune_deliveries(&self, before: i64) -> Result<usize>;

    fn deadline(&self, pr: u64) -> Result<Option<Deadline>>;
    fn set_deadline(&self, pr: u64, deadline: &Deadline) -> Result<()>;
    fn remove_deadline(&self, pr: u64) -> Result<()>;

    /// Commits the bridge itself pushed: whoever adds a commit after them can't approve.
    fn add_bridge_commit(&self, sha: &str) -> Result<()>;
    fn is_bridge_commit(&self, sha: &str) -> Result<bool>;

    /// Who pushed to a PR (from `synchronize` webhooks): they can't approve it.
    fn add_pusher(&self, pr: u64, login: &str) -> Result<()>;
    fn pushers(&self, pr: u64) -> Result<BTreeSet<String>>;

    /// Direct messages sent about PR `pr`.
    fn add_notice(&self, pr: u64, notice: &Notice) -> Result<()>;
    fn notices(&self, pr: u64) -> Result<Vec<Notice>>;
}

const THREADS: TableDefinition<u64, (&str, &str)> = TableDefinition::new("slack_threads");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("github_tokens_sealed");
const SLACK_REVIEWS: TableDefinition<(u64, u64), ()> = TableDefinition::new("slack_reviews");
const DELIVERIES: TableDefinition<&str, i64> = TableDefinition::new("github_deliveries");
const DEADLINES: TableDefinition<u64, (&str, i64)> = TableDefinition::new("change_deadlines");
const NOTICES: TableDefinition<(u64, &str), ()> = TableDefinition::new("approver_notices");
const TOKEN_GENERATIONS: TableDefinition<&str, u64> = TableDefinition::new("token_generations");
const BRIDGE_COMMITS: TableDefinition<&str, ()> = TableDefinition::new("bridge_commits");
const PUSHERS: TableDefinition<(u64, &str), ()> = TableDefinition::new("pr_pushers");

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError(e.into().to_string())
}

/// Open (creating if needed) `<state_dir>/<file>`. A file left by a crash is repaired by redb
/// on open; a file another process holds is an error that says so.
pub(crate) fn open_redb(state_dir: &Path, file: &str) -> Result<(redb::Database, PathBuf)> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| StoreError(format!("creating {}: {e}", state_dir.display())))?;
    let path = state_dir.join(file);
    let db = redb::Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError(format!(
            "{} is in use by another bridge process",
            path.display()
        )),
        other => StoreError(format!("opening {}: {other}", path.display())),
    })?;
    Ok((db, path))
}

/// The embedded, file-backed store.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// The file's name inside the state directory.
    pub const FILE: &'static str = "state.redb";

    /// Open (creating if needed) `<state_dir>/state.redb`. A file left by a crash is repaired
    /// by redb on open; a file another process holds is an error that says so.
    pub fn open(state_dir: &Path) -> Result<RedbStore> {
        let (db, path) = open_redb(state_dir, Self::FILE)?;
        // Create every table once, so read transactions never meet a missing one.
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(THREADS).map_err(err)?;
        tx.open_table(TOKENS).map_err(err)?;
        tx.open_table(SLACK_REVIEWS).map_err(err)?;
        tx.open_table(DELIVERIES).map_err(err)?;
        tx.open_table(DEADLINES).map_err(err)?;
        tx.open_table(TOKEN_GENERATIONS).map_err(err)?;
        tx.open_table(BRIDGE_COMMITS).map_err(err)?;
        tx.open_table(PUSHERS).map_err(err)?;
        tx.open_table(NOTICES).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbStore { db, path })
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let tx = self.db.begin_write().map_err(err)?;
        let out = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let tx = self.db.begin_read().map_err(err)?;
        f(&tx).map_err(err)
    }
}

impl StateStore for RedbStore {
    fn thread(&self, pr: u64) -> Result<Option<SlackThread>> {
        self.read(|tx| {
            let t = tx.open_table(THREADS)?;
            Ok(t.get(pr)?.map(|v| {
                let (channel, ts) = v.value();
                SlackThread {
                    channel: channel.to_string(),
                    ts: ts.to_string(),
                }
            }))
        })
    }

    fn set_thread(&self, pr: u64, thread: &SlackThread) -> Result<()> {
        self.write(|tx| {
            tx.open_table(THREADS)?
                .insert(pr, (thread.channel.as_str(), thread.ts.as_str()))?;
            Ok(())
        })
    }

    fn sealed_token(&self, slack_user: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .open_table(TOKENS)?
                .get(slack_user)?
                .map(|v| v.value().to_vec()))
        })
    }

    fn set_sealed_token(&self, slack_user: &str, sealed: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.open_table(TOKENS)?.insert(slack_user, sealed)?;
            Ok(())
        })
    }

    fn remove_token(&self, slack_user: &str) -> Result<()> {
        self.write(|tx| {
            tx.open_table(TOKENS)?.remove(slack_user)?;
            Ok(())
        })
    }

    fn token_generation(&self, slack_user: &str) -> Result<u64> {
        self.read(|tx| {
            Ok(tx
                .open_table(TOKEN_GENERATIONS)?
                .get(slack_user)?
                .map_or(0, |v| v.value()))
        })
    }

    fn set_sealed_token_at(&self, slack_user: &str, sealed: &[u8], generation: u64) -> Result<()> {
        self.write(|tx| {
            tx.open_table(TOKENS)?.insert(slack_user, sealed)?;
            tx.open_table(TOKEN_GENERATIONS)?
                .insert(slack_user, generation)?;
            Ok(())
        })
    }

    fn add_slack_review(&self, pr: u64, review: u64) -> Result<()> {
        self.write(|tx| {
            tx.open_table(SLACK_REVIEWS)?.insert((pr, review), ())?;
            Ok(())
        })
    }

    fn slack_reviews(&self, pr: u64) -> Result<BTreeSet<u64>> {
        self.read(|tx| {
            let t = tx.open_table(SLACK_REVIEWS)?;
            let mut out = BTreeSet::new();
            for entry in t.range((pr, 0)..=(pr, u64::MAX))? {
                let (k, _) = entry?;
                out.insert(k.value().1);
            }
            Ok(out)
        })
    }

    fn add_notice(&self, pr: u64, notice: &Notice) -> Result<()> {
        self.write(|tx| {
            tx.open_table(NOTICES)?
                .insert((pr, notice.encode().as_str()), ())?;
            Ok(())
        })
    }

    fn notices(&self, pr: u64) -> Result<Vec<Notice>> {
        self.read(|tx| {
            let t = tx.open_table(NOTICES)?;
            let mut out = Vec::new();
            for entry in t.range((pr, "")..(pr + 1, ""))? {
                let (k, _) = entry?;
                out.extend(Notice::decode(k.value().1));
            }
            Ok(out)
        })
    }

    fn first_delivery(&self, id: &str, at: i64) -> Result<bool> {
        self.write(|tx| {
            let mut t = tx.open_table(DELIVERIES)?;
            if t.get(id)?.is_some() {
                return Ok(false);
            }
            t.insert(id, at)?;
            Ok(true)
        })
    }

    fn prune_deliveries(&self, before: i64) -> Result<usize> {
        self.write(|tx| {
            let mut t = tx.open_table(DELIVERIES)?;
            let was = t.len()?;
            t.retain(|_, at| at >= before)?;
            Ok(usize::try_from(was.saturating_sub(t.len()?)).unwrap_or(usize::MAX))
        })
    }

    fn deadline(&self, pr: u64) -> Result<Option<Deadline>> {
        self.read(|tx| {
            Ok(tx.open_table(DEADLINES)?.get(pr)?.map(|v| {
                let (head, at) = v.value();
                Deadline {
                    head_sha: head.to_string(),
                    expires_at: at,
                }
            }))
        })
    }

    fn set_deadline(&self, pr: u64, deadline: &Deadline) -> Result<()> {
        self.write(|tx| {
            tx.open_table(DEADLINES)?
                .insert(pr, (deadline.head_sha.as_str(), deadline.expires_at))?;
            Ok(())
        })
    }

    fn remove_deadline(&self, pr: u64) -> Result<()> {
        self.write(|tx| {
            tx.open_table(DEADLINES)?.remove(pr)?;
            Ok(())
        })
    }

    fn add_bridge_commit(&self, sha: &str) -> Result<()> {
        let sha = sha.to_ascii_lowercase();
        self.write(|tx| {
            tx.open_table(BRIDGE_COMMITS)?.insert(sha.as_str(), ())?;
            Ok(())
        })
    }

    fn is_bridge_commit(&self, sha: &str) -> Result<bool> {
        let sha = sha.to_ascii_lowercase();
        self.read(|tx| Ok(tx.open_table(BRIDGE_COMMITS)?.get(sha.as_str())?.is_some()))
    }

    fn add_pusher(&self, pr: u64, login: &str) -> Result<()> {
        let login = login.to_ascii_lowercase();
        self.write(|tx| {
            tx.open_table(PUSHERS)?.insert((pr, login.as_str()), ())?;
            Ok(())
        })
    }

    fn pushers(&self, pr: u64) -> Result<BTreeSet<String>> {
        self.read(|tx| {
            let t = tx.open_table(PUSHERS)?;
            let mut out = BTreeSet::new();
            for entry in t.range((pr, "")..(pr.saturating_add(1), ""))? {
                let (k, _) = entry?;
                out.insert(k.value().1.to_string());
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn StateStore) {
        let t = SlackThread {
            channel: "C1".into(),
            ts: "1.2".into(),
        };
        assert_eq!(s.thread(7).unwrap(), None);
        s.set_thread(7, &t).unwrap();
        assert_eq!(s.thread(7).unwrap(), Some(t));
        s.set_sealed_token("U1", b"\x00sealed").unwrap();
        assert_eq!(
            s.sealed_token("U1").unwrap().as_deref(),
            Some(&b"\x00sealed"[..])
        );
        s.remove_token("U1").unwrap();
        assert_eq!(s.sealed_token("U1").unwrap(), None);
        for (pr, r) in [(7, 3), (7, 1), (8, 2), (6, u64::MAX)] {
            s.add_slack_review(pr, r).unwrap();
        }
        assert_eq!(
            s.slack_reviews(7).unwrap().into_iter().collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(s.first_delivery("d-1", 100).unwrap());
        assert!(!s.first_delivery("d-1", 200).unwrap());
        assert!(s.first_delivery("d-2", 300).unwrap());
        assert_eq!(s.prune_deliveries(200).unwrap(), 1);
        assert!(
            s.first_delivery("d-1", 400).unwrap(),
            "pruned ids are new again"
        );
        let d = Deadline {
            head_sha: "abc".into(),
            expires_at: 42,
        };
        s.set_deadline(7, &d).unwrap();
        assert_eq!(s.deadline(7).unwrap(), Some(d));
        s.remove_deadline(7).unwrap();
        assert_eq!(s.deadline(7).unwrap(), None);
        assert_eq!(s.token_generation("U2").unwrap(), 0);
        s.set_sealed_token_at("U2", b"gen3", 3).unwrap();
        assert_eq!(s.token_generation("U2").unwrap(), 3);
        assert_eq!(s.sealed_token("U2").unwrap().as_deref(), Some(&b"gen3"[..]));
        s.add_bridge_commit("ABCDEF").unwrap();
        assert!(s.is_bridge_commit("abcdef").unwrap());
        assert!(!s.is_bridge_commit("abcde0").unwrap());
        s.add_pusher(7, "Ada").unwrap();
        s.add_pusher(8, "bob").unwrap();
        assert_eq!(
            s.pushers(7).unwrap().into_iter().collect::<Vec<_>>(),
            ["ada"]
        );
    }

    fn redis_store(server: &crate::shared::test_server::TestRedis, prefix: &str) -> RedisStore {
        RedisStore::new(crate::shared::blocking::Pool::new(server.config(prefix)))
    }

    #[test]
    fn redis_store_behaves_like_the_embedded_one() {
        let server = crate::shared::test_server::TestRedis::start();
        exercise(&redis_store(&server, "slipway:"));
        // Another prefix is another installation: it sees none of it.
        assert_eq!(redis_store(&server, "other:").thread(7).unwrap(), None);
    }

    #[test]
    fn a_delivery_recorded_by_two_replicas_at_once_is_first_for_one_only() {
        let server = crate::shared::test_server::TestRedis::start();
        let firsts: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = redis_store(&server, "slipway:");
                    scope.spawn(move || usize::from(store.first_delivery("d-race", 1).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 1);
    }

    #[test]
    fn redis_store_errors_name_no_credential() {
        let mut config = crate::shared::test_server::TestRedis::start().config("p:");
        config.target =
            crate::config::RedisTarget::Url("redis://:hunter2secret@127.0.0.1:1/0".into());
        let s = RedisStore::new(crate::shared::blocking::Pool::new(config));
        let e = s.thread(1).unwrap_err();
        assert!(!e.0.contains("hunter2secret"), "{e}");
        assert!(e.0.contains("Redis"), "{e}");
    }

    #[test]
    fn a_redb_state_migrates_into_redis_and_again_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStore::open(dir.path()).unwrap();
        redb.set_thread(
            4,
            &SlackThread {
                channel: "C4".into(),
                ts: "4.4".into(),
            },
        )
        .unwrap();
        redb.set_sealed_token_at("U1", b"sealed", 2).unwrap();
        redb.set_sealed_token_at("U2", b"gone", 5).unwrap();
        redb.remove_token("U2").unwrap();
        redb.add_slack_review(4, 40).unwrap();
        assert!(redb.first_delivery("d-9", 9).unwrap());
        redb.set_deadline(
            4,
            &Deadline {
                head_sha: "h".into(),
                expires_at: 44,
            },
        )
        .unwrap();
        redb.add_bridge_commit("c0ffee").unwrap();
        redb.add_pusher(4, "eve").unwrap();
        let notice = Notice {
            kind: "ask".into(),
            channel: "D4".into(),
            ts: "4.5".into(),
        };
        redb.add_notice(4, &notice).unwrap();
        let dump = redb.dump().unwrap();
        assert_eq!(dump.counts().iter().map(|c| c.1).sum::<usize>(), 10);
        let server = crate::shared::test_server::TestRedis::start();
        let to = redis_store(&server, "slipway:");
        dump.write_into(&to).unwrap();
        dump.write_into(&to).unwrap();
        assert_eq!(to.thread(4).unwrap().map(|t| t.ts), Some("4.4".into()));
        assert_eq!(
            to.sealed_token("U1").unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        assert_eq!(to.token_generation("U1").unwrap(), 2);
        assert_eq!(to.sealed_token("U2").unwrap(), None);
        assert_eq!(
            to.token_generation("U2").unwrap(),
            5,
            "a removed token's generation stays"
        );
        assert!(to.slack_reviews(4).unwrap().contains(&40));
        assert!(
            !to.first_delivery("d-9", 10).unwrap(),
            "a migrated delivery is a redelivery"
        );
        assert_eq!(to.deadline(4).unwrap().map(|d| d.expires_at), Some(44));
        assert!(to.is_bridge_commit("C0FFEE").unwrap());
        assert!(to.pushers(4).unwrap().contains("eve"));
        assert_eq!(to.notices(4).unwrap(), [notice]);
    }

    #[test]
    fn memory_store() {
        exercise(&MemoryStore::default());
    }

    #[test]
    fn redb_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            exercise(&s);
            s.set_thread(
                9,
                &SlackThread {
                    channel: "C9".into(),
                    ts: "9.9".into(),
                },
            )
            .unwrap();
            s.add_slack_review(9, 99).unwrap();
            // A second open while this one lives is refused, not shared.
            let e = RedbStore::open(dir.path()).unwrap_err();
            assert!(e.0.contains("in use"), "{e}");
        }
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.thread(9).unwrap().map(|t| t.ts), Some("9.9".to_string()));
        assert!(s.slack_reviews(9).unwrap().contains(&99));
        assert!(!s.first_delivery("d-2", 500).unwrap(), "deliveries survive");
    }
}
