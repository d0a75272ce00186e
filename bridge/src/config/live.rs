//! Values built from secrets — a GitHub App client, a change-request signer, a parsed service
//! account key — rebuilt when one of their secrets rotates, so a rotation in the secret store
//! reaches them without a restart.
//!
//! A rotated value that can't be built (a malformed key) never replaces the working one: the
//! old value stays in force and the log says which setting to fix. The values a rotation
//! replaced are kept (a few), so what they signed or wrapped still verifies or opens.

use std::fmt;
use std::sync::{Arc, RwLock};

use slipway_infra::sync::{read, write};

use super::{Exposed, Secret};

/// How many replaced values are kept for opening or verifying what they made.
const KEEP_PREVIOUS: usize = 4;

type Build<T> = dyn Fn(&[Exposed]) -> Result<T, String> + Send + Sync;

/// A value built from `sources`, current with their latest rotation. Clones share the cell.
pub struct Live<T>(Arc<Inner<T>>);

struct Inner<T> {
    what: &'static str,
    sources: Vec<Secret>,
    build: Box<Build<T>>,
    state: RwLock<State<T>>,
}

struct State<T> {
    /// The sources' versions the current value answers (or a failed rebuild was tried at).
    versions: Vec<u64>,
    current: Arc<T>,
    /// Newest first.
    previous: Vec<Arc<T>>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// Shows the value as its own `Debug` does (which hides its secrets).
impl<T: fmt::Debug + Send + Sync + 'static> fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl<T: Send + Sync + 'static> Live<T> {
    /// Builds the value now (an error here is a configuration error, reported at start).
    /// `what` names the settings, for the log.
    pub fn new(
        what: &'static str,
        sources: Vec<Secret>,
        build: impl Fn(&[Exposed]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Live<T>, String> {
        let exposed: Vec<Exposed> = sources.iter().map(Secret::expose).collect();
        let versions = sources.iter().map(Secret::version).collect();
        let current = Arc::new(build(&exposed)?);
        Ok(Live(Arc::new(Inner {
            what,
            sources,
            build: Box::new(build),
            state: RwLock::new(State {
                versions,
                current,
                previous: Vec::new(),
            }),
        })))
    }

    /// A value with no secret behind it (tests, and settings given as plain values).
    pub fn fixed(value: T) -> Live<T> {
        Live(Arc::new(Inner {
            what: "fixed",
            sources: Vec::new(),
            build: Box::new(|_| Err("a fixed value is never rebuilt".into())),
            state: RwLock::new(State {
                versions: Vec::new(),
                current: Arc::new(value),
                previous: Vec::new(),
            }),
        }))
    }

    /// The value for the sources' current versions, rebuilt first when one has rotated.
    pub fn get(&self) -> Arc<T> {
        let versions: Vec<u64> = self.0.sources.iter().map(Secret::version).collect();
        {
            let state = read(&self.0.state);
            if state.versions == versions {
                return state.current.clone();
            }
        }
        let mut state = write(&self.0.state);
        if state.versions != versions {
            self.rebuild(&mut state, versions);
        }
        state.current.clone()
    }

    /// The values rotations replaced, newest first (up to a few, since this process started).
    pub fn previous(&self) -> Vec<Arc<T>> {
        self.get();
        read(&self.0.state).previous.clone()
    }

    /// The current value, then the ones it replaced.
    pub fn all(&self) -> Vec<Arc<T>> {
        let current = self.get();
        let mut all = vec![current];
        all.extend(read(&self.0.state).previous.iter().cloned());
        all
    }

    fn rebuild(&self, state: &mut State<T>, versions: Vec<u64>) {
        let exposed: Vec<Exposed> = self.0.sources.iter().map(Secret::expose).collect();
        state.versions = versions;
        match (self.0.build)(&exposed) {
            Ok(value) => {
                let old = std::mem::replace(&mut state.current, Arc::new(value));
                state.previous.insert(0, old);
                state.previous.truncate(KEEP_PREVIOUS);
                tracing::info!(
                    settings = self.0.what,
                    "a rotated secret is in use: rebuilt from the new value without a restart"
                );
            }
            Err(e) => tracing::error!(
                settings = self.0.what, error = %e,
                "a rotated secret can't be used, so the previous value stays in force: fix the \
                 value in the secret store"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(secret: &Secret) -> Live<u32> {
        Live::new("test.number", vec![secret.clone()], |v| {
            v[0].parse::<u32>().map_err(|e| e.to_string())
        })
        .expect("builds")
    }

    #[test]
    fn a_rotation_rebuilds_and_keeps_the_replaced_value() {
        let secret = Secret::new("1");
        let live = parsed(&secret);
        assert_eq!(*live.get(), 1);
        assert!(secret.rotate("2", 0));
        assert_eq!(*live.get(), 2);
        assert_eq!(live.previous().iter().map(|v| **v).collect::<Vec<_>>(), [1]);
        assert_eq!(live.all().iter().map(|v| **v).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn a_rotated_value_that_does_not_build_leaves_the_old_one_in_force() {
        let secret = Secret::new("1");
        let live = parsed(&secret);
        secret.rotate("not a number", 0);
        assert_eq!(*live.get(), 1);
        assert!(live.previous().is_empty());
        secret.rotate("3", 0);
        assert_eq!(*live.get(), 3);
    }

    #[test]
    fn a_bad_value_at_start_is_an_error_and_only_a_few_old_values_are_kept() {
        assert!(
            Live::new("x", vec![Secret::new("x")], |v| v[0]
                .parse::<u32>()
                .map_err(|e| e.to_string()))
            .is_err()
        );
        let secret = Secret::new("0");
        let live = parsed(&secret);
        for n in 1..10 {
            secret.rotate(&n.to_string(), 0);
            live.get();
        }
        assert_eq!(live.previous().len(), KEEP_PREVIOUS);
        assert_eq!(*live.previous()[0], 8);
    }
}
