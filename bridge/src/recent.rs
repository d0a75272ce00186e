//! What the App Home needs to know between events: each person's last few runs, who has looked
//! at their App Home lately, and whose App Home is out of date. In memory: after a restart the
//! next `app_home_opened` republishes it anyway.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use slipway_infra::sync::lock;

/// Runs kept per person.
const RUNS_KEPT: usize = 5;
/// People kept at all (the least recent are forgotten first).
const PEOPLE_KEPT: usize = 10_000;
/// An App Home opened longer ago than this is not republished on changes.
const VIEWER_FOR: Duration = Duration::from_secs(3600);
/// An App Home published this recently is not published again just because it was opened
/// again (each publish reads GitHub): flipping between tabs costs nothing.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// One finished run, as the App Home lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRun {
    pub text: String,
    pub target: String,
    pub outcome: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, VecDeque<RecentRun>>,
    viewers: HashMap<String, Instant>,
    published: HashMap<String, Instant>,
    dirty: HashSet<String>,
}

/// Recent runs per Slack user, and the App Homes to republish.
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<Inner>,
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Recent {
    /// A run of `user`'s ended: keep it, and their App Home is out of date.
    pub fn ran(&self, user: &str, run: RecentRun) {
        let mut inner = lock(&self.inner);
        if inner.runs.len() >= PEOPLE_KEPT && !inner.runs.contains_key(user) {
            inner.runs.clear();
        }
        let runs = inner.runs.entry(user.to_string()).or_default();
        runs.push_front(run);
        runs.truncate(RUNS_KEPT);
        drop(inner);
        self.mark(user);
    }

    /// `user`'s runs, newest first.
    pub fn runs(&self, user: &str) -> Vec<RecentRun> {
        lock(&self.inner)
            .runs
            .get(user)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `user` opened their App Home now. `true` if it should be published: it wasn't within
    /// the last few seconds, or it is out of date.
    pub fn viewing(&self, user: &str) -> bool {
        let mut inner = lock(&self.inner);
        inner.viewers.retain(|_, at| at.elapsed() < VIEWER_FOR);
        inner.published.retain(|_, at| at.elapsed() < FRESH_FOR);
        if inner.viewers.len() < PEOPLE_KEPT {
            inner.viewers.insert(user.to_string(), Instant::now());
        }
        let dirty = inner.dirty.remove(user);
        let due = dirty || !inner.published.contains_key(user);
        // Claimed now, not when the publish lands: an open event arriving meanwhile (a second
        // tab flip) must not publish again.
        if due && inner.published.len() < PEOPLE_KEPT {
            inner.published.insert(user.to_string(), Instant::now());
        }
        due
    }

    /// Publishing `user`'s App Home failed: the next open tries again.
    pub fn unpublished(&self, user: &str) {
        lock(&self.inner).published.remove(user);
    }

    /// `user`'s App Home was just published.
    pub fn published(&self, user: &str) {
        let mut inner = lock(&self.inner);
        if inner.published.len() < PEOPLE_KEPT {
            inner.published.insert(user.to_string(), Instant::now());
        }
    }

    /// `user`'s App Home is out of date.
    pub fn mark(&self, user: &str) {
        lock(&self.inner).dirty.insert(user.to_string());
        self.changed.notify_one();
    }

    /// Everyone's App Home may be out of date (a change request moved).
    pub fn mark_all(&self) {
        let mut inner = lock(&self.inner);
        let viewers: Vec<String> = inner.viewers.keys().cloned().collect();
        inner.dirty.extend(viewers);
        drop(inner);
        self.changed.notify_one();
    }

    /// Woken when an App Home went out of date (held apart from `self`, so a task waiting on it
    /// keeps nothing else alive).
    pub fn changes(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Take the App Homes to republish: those marked whose owner looked at it within the last
    /// hour.
    pub fn take_stale(&self) -> Vec<String> {
        let mut inner = lock(&self.inner);
        let dirty = std::mem::take(&mut inner.dirty);
        let mut users: Vec<String> = dirty
            .into_iter()
            .filter(|u| {
                inner
                    .viewers
                    .get(u)
                    .is_some_and(|at| at.elapsed() < VIEWER_FOR)
            })
            .collect();
        users.sort();
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize) -> RecentRun {
        RecentRun {
            text: format!("/kubectl get pods #{n}"),
            target: "staging".into(),
            outcome: "finished".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn keeps_the_last_runs_and_republishes_only_for_viewers() {
        let r = Recent::default();
        for n in 0..7 {
            r.ran("U1", run(n));
        }
        let runs = r.runs("U1");
        assert_eq!(runs.len(), RUNS_KEPT);
        assert_eq!(runs[0], run(6));
        // U1 never opened their App Home: nothing to republish.
        assert!(r.take_stale().is_empty());
        assert!(r.viewing("U1"));
        r.published("U1");
        assert!(
            !r.viewing("U1"),
            "opened again at once: not published again"
        );
        assert!(r.viewing("U2"));
        assert!(
            !r.viewing("U2"),
            "opened again while the first publish is on its way: not published twice"
        );
        r.unpublished("U2");
        assert!(r.viewing("U2"), "a failed publish is tried again");
        r.mark_all();
        assert_eq!(r.take_stale(), vec!["U1".to_string(), "U2".to_string()]);
    }
}
