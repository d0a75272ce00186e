//! Identity links, Slack deactivations and SSO claims in the shared Redis (issue 19), so a
//! person linked through one replica is known to every other without a restart.
//!
//! The Slack ack resolves identity, and may make only one Redis round trip (the replay gate's):
//! so these stores answer reads from a replica-local copy, written through to Redis and kept
//! fresh by the change feed (see [`crate::shared::replicated`]). Keys, under the prefix:
//! `links` (hash: Slack user → link JSON), `slack_deactivated` (hash: Slack user → `true`),
//! `sso_claims` (hash: Slack user → claims JSON).

use std::sync::Arc;

use super::links::{Link, LinkStore};
use super::sso::{ClaimStore, SsoClaims};
use crate::shared::blocking::Pool;
use crate::shared::replicated::Replicated;
use crate::store::{Result, StoreError};

fn store_err(e: &crate::shared::Unavailable) -> StoreError {
    StoreError(e.to_string())
}

/// [`LinkStore`] on Redis.
#[derive(Debug)]
pub struct RedisLinks {
    links: Arc<Replicated<Link>>,
    deactivated: Arc<Replicated<bool>>,
}

impl RedisLinks {
    /// Load the links and start following other replicas' writes.
    pub fn open(pool: &Pool) -> RedisLinks {
        RedisLinks {
            links: Replicated::open(pool, "links"),
            deactivated: Replicated::open(pool, "slack_deactivated"),
        }
    }
}

impl LinkStore for RedisLinks {
    fn link(&self, slack_user: &str) -> Result<Option<Link>> {
        Ok(self.links.get(slack_user))
    }

    fn set_link(&self, slack_user: &str, link: &Link) -> Result<()> {
        self.links
            .set(slack_user, Some(link))
            .map_err(|e| store_err(&e))
    }

    fn remove_link(&self, slack_user: &str) -> Result<()> {
        self.links.set(slack_user, None).map_err(|e| store_err(&e))
    }

    fn links(&self) -> Result<Vec<(String, Link)>> {
        Ok(self
            .links
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn set_slack_deactivated(&self, slack_user: &str, deactivated: bool) -> Result<()> {
        self.deactivated
            .set(slack_user, deactivated.then_some(&true))
            .map_err(|e| store_err(&e))
    }

    fn slack_deactivated(&self, slack_user: &str) -> Result<bool> {
        Ok(self.deactivated.get(slack_user).unwrap_or(false))
    }
}

/// [`ClaimStore`] on Redis.
#[derive(Debug)]
pub struct RedisClaims(Arc<Replicated<SsoClaims>>);

impl RedisClaims {
    pub fn open(pool: &Pool) -> RedisClaims {
        RedisClaims(Replicated::open(pool, "sso_claims"))
    }
}

impl ClaimStore for RedisClaims {
    fn claims(&self, slack_user: &str) -> Result<Option<SsoClaims>> {
        Ok(self.0.get(slack_user))
    }

    fn set_claims(&self, slack_user: &str, claims: &SsoClaims) -> Result<()> {
        self.0
            .set(slack_user, Some(claims))
            .map_err(|e| store_err(&e))
    }

    fn remove_claims(&self, slack_user: &str) -> Result<()> {
        self.0.set(slack_user, None).map_err(|e| store_err(&e))
    }
}
