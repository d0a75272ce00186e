//! Where logins in progress live: this process, or the shared Redis (see [`super::pending`]
//! and [`super::pending_shared`]).

use openidconnect::{Nonce, PkceCodeChallenge};

use super::pending::{Flow, Local, Refusal};
use super::pending_shared::SharedLogins;

/// Where logins in progress live.
#[derive(Debug)]
pub enum Logins {
    Local(Local),
    Shared(SharedLogins),
}

impl Logins {
    /// Keep `flow` under `state` (shared: written just after the ack).
    pub fn insert(&self, state: &str, flow: Flow, now: i64) {
        match self {
            Logins::Local(l) => l.insert(state, flow, now),
            Logins::Shared(s) => s.insert(state, &flow),
        }
    }

    /// What the authorization request needs (challenge and nonce), leaving the login pending.
    pub async fn peek(&self, state: &str, now: i64) -> Result<(PkceCodeChallenge, Nonce), Refusal> {
        match self {
            Logins::Local(l) => l.peek(state, now),
            Logins::Shared(s) => s.peek(state, now).await,
        }
    }

    /// Take the login out: whatever happens next, this state can't be used again.
    pub async fn take(&self, state: &str, now: i64) -> Result<Flow, Refusal> {
        match self {
            Logins::Local(l) => l.take(state, now),
            Logins::Shared(s) => s.take(state, now).await,
        }
    }
}
