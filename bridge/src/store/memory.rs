//! The state in memory (lost on restart): for unit tests.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::{Deadline, Notice, Result, SlackThread, StateStore};

/// The same state in memory (lost on restart): for unit tests.
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Memory>);

#[derive(Debug, Default)]
struct Memory {
    threads: HashMap<u64, SlackThread>,
    tokens: HashMap<String, Vec<u8>>,
    slack_reviews: BTreeSet<(u64, u64)>,
    notices: BTreeSet<(u64, Notice)>,
    deliveries: HashMap<String, i64>,
    deadlines: HashMap<u64, Deadline>,
    bridge_commits: BTreeSet<String>,
    generations: HashMap<String, u64>,
    pushers: BTreeSet<(u64, String)>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut slipway_infra::sync::lock(&self.0))
    }
}

impl StateStore for MemoryStore {
    fn thread(&self, pr: u64) -> Result<Option<SlackThread>> {
        Ok(self.with(|m| m.threads.get(&pr).cloned()))
    }
    fn set_thread(&self, pr: u64, thread: &SlackThread) -> Result<()> {
        self.with(|m| {
            m.threads.insert(pr, thread.clone());
        });
        Ok(())
    }
    fn sealed_token(&self, slack_user: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|m| m.tokens.get(slack_user).cloned()))
    }
    fn set_sealed_token(&self, slack_user: &str, sealed: &[u8]) -> Result<()> {
        self.with(|m| {
            m.tokens.insert(slack_user.to_string(), sealed.to_vec());
        });
        Ok(())
    }
    fn remove_token(&self, slack_user: &str) -> Result<()> {
        self.with(|m| {
            m.tokens.remove(slack_user);
        });
        Ok(())
    }

    fn token_generation(&self, slack_user: &str) -> Result<u64> {
        Ok(self.with(|m| m.generations.get(slack_user).copied().unwrap_or(0)))
    }

    fn set_sealed_token_at(&self, slack_user: &str, sealed: &[u8], generation: u64) -> Result<()> {
        self.with(|m| {
            m.tokens.insert(slack_user.to_string(), sealed.to_vec());
            m.generations.insert(slack_user.to_string(), generation);
        });
        Ok(())
    }
    fn add_slack_review(&self, pr: u64, review: u64) -> Result<()> {
        self.with(|m| {
            m.slack_reviews.insert((pr, review));
        });
        Ok(())
    }
    fn add_notice(&self, pr: u64, notice: &Notice) -> Result<()> {
        self.with(|m| {
            m.notices.insert((pr, notice.clone()));
        });
        Ok(())
    }
    fn notices(&self, pr: u64) -> Result<Vec<Notice>> {
        Ok(self.with(|m| {
            m.notices
                .iter()
                .filter(|(p, _)| *p == pr)
                .map(|(_, n)| n.clone())
                .collect()
        }))
    }
    fn slack_reviews(&self, pr: u64) -> Result<BTreeSet<u64>> {
        Ok(self.with(|m| {
            m.slack_reviews
                .range((pr, 0)..=(pr, u64::MAX))
                .map(|(_, r)| *r)
                .collect()
        }))
    }
    fn first_delivery(&self, id: &str, at: i64) -> Result<bool> {
        Ok(self.with(|m| {
            if m.deliveries.contains_key(id) {
                return false;
            }
            m.deliveries.insert(id.to_string(), at);
            true
        }))
    }
    fn prune_deliveries(&self, before: i64) -> Result<usize> {
        Ok(self.with(|m| {
            let was = m.deliveries.len();
            m.deliveries.retain(|_, at| *at >= before);
            was - m.deliveries.len()
        }))
    }
    fn deadline(&self, pr: u64) -> Result<Option<Deadline>> {
        Ok(self.with(|m| m.deadlines.get(&pr).cloned()))
    }
    fn set_deadline(&self, pr: u64, deadline: &Deadline) -> Result<()> {
        self.with(|m| {
            m.deadlines.insert(pr, deadline.clone());
        });
        Ok(())
    }
    fn remove_deadline(&self, pr: u64) -> Result<()> {
        self.with(|m| {
            m.deadlines.remove(&pr);
        });
        Ok(())
    }

    fn add_bridge_commit(&self, sha: &str) -> Result<()> {
        self.with(|m| m.bridge_commits.insert(sha.to_ascii_lowercase()));
        Ok(())
    }

    fn is_bridge_commit(&self, sha: &str) -> Result<bool> {
        Ok(self.with(|m| m.bridge_commits.contains(&sha.to_ascii_lowercase())))
    }

    fn add_pusher(&self, pr: u64, login: &str) -> Result<()> {
        self.with(|m| m.pushers.insert((pr, login.to_ascii_lowercase())));
        Ok(())
    }

    fn pushers(&self, pr: u64) -> Result<BTreeSet<String>> {
        Ok(self.with(|m| {
            m.pushers
                .iter()
                .filter(|(p, _)| *p == pr)
                .map(|(_, l)| l.clone())
                .collect()
        }))
    }
}
