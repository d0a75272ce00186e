//! Everything in a `state.redb`, read out at once, and written into another store: how
//! `slipway state migrate --to redis` moves one replica's state into the shared Redis. Writing
//! is a series of upserts, so running it twice leaves the same state.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};

use super::{
    BRIDGE_COMMITS, DEADLINES, DELIVERIES, Deadline, NOTICES, Notice, PUSHERS, RedbStore, Result,
    SLACK_REVIEWS, SlackThread, StateStore, THREADS, TOKEN_GENERATIONS, TOKENS, err,
};

/// The contents of a state store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateDump {
    pub threads: BTreeMap<u64, SlackThread>,
    pub tokens: BTreeMap<String, Vec<u8>>,
    pub generations: BTreeMap<String, u64>,
    pub slack_reviews: Vec<(u64, u64)>,
    pub deliveries: BTreeMap<String, i64>,
    pub deadlines: BTreeMap<u64, Deadline>,
    pub bridge_commits: Vec<String>,
    pub pushers: Vec<(u64, String)>,
    pub notices: Vec<(u64, Notice)>,
}

impl StateDump {
    /// `(what, how many)` for each kind of record, for the migration's report.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("slack threads", self.threads.len()),
            ("sealed tokens", self.tokens.len()),
            ("token generations", self.generations.len()),
            ("slack reviews", self.slack_reviews.len()),
            ("webhook deliveries", self.deliveries.len()),
            ("deadlines", self.deadlines.len()),
            ("bridge commits", self.bridge_commits.len()),
            ("pushers", self.pushers.len()),
            ("approver notices", self.notices.len()),
        ]
    }

    /// Write everything into `to`. A token's generation goes with it; a generation without a
    /// token (one removed) is kept too, so an old sealed row still can't come back.
    pub fn write_into(&self, to: &dyn StateStore) -> Result<()> {
        for (pr, t) in &self.threads {
            to.set_thread(*pr, t)?;
        }
        for (user, generation) in &self.generations {
            if let Some(sealed) = self.tokens.get(user) {
                to.set_sealed_token_at(user, sealed, *generation)?;
            } else {
                to.set_sealed_token_at(user, &[], *generation)?;
                to.remove_token(user)?;
            }
        }
        for (user, sealed) in &self.tokens {
            if !self.generations.contains_key(user) {
                to.set_sealed_token(user, sealed)?;
            }
        }
        for (pr, review) in &self.slack_reviews {
            to.add_slack_review(*pr, *review)?;
        }
        for (id, at) in &self.deliveries {
            to.first_delivery(id, *at)?;
        }
        for (pr, d) in &self.deadlines {
            to.set_deadline(*pr, d)?;
        }
        for sha in &self.bridge_commits {
            to.add_bridge_commit(sha)?;
        }
        for (pr, login) in &self.pushers {
            to.add_pusher(*pr, login)?;
        }
        for (pr, n) in &self.notices {
            to.add_notice(*pr, n)?;
        }
        Ok(())
    }
}

impl RedbStore {
    /// Everything this store holds.
    pub fn dump(&self) -> Result<StateDump> {
        let tx = self.db.begin_read().map_err(err)?;
        let mut d = StateDump::default();
        for row in tx.open_table(THREADS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (channel, ts) = v.value();
            let thread = SlackThread {
                channel: channel.to_string(),
                ts: ts.to_string(),
            };
            d.threads.insert(k.value(), thread);
        }
        for row in tx.open_table(TOKENS).map_err(err)?.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            d.tokens.insert(k.value().to_string(), v.value().to_vec());
        }
        for row in tx
            .open_table(TOKEN_GENERATIONS)
            .map_err(err)?
            .iter()
            .map_err(err)?
        {
            let (k, v) = row.map_err(err)?;
            d.generations.insert(k.value().to_string(), v.value());
        }
        for row in tx
            .open_table(SLACK_REVIEWS)
            .map_err(err)?
            .iter()
            .map_err(err)?
        {
            d.slack_reviews.push(row.map_err(err)?.0.value());
        }
        dump_rest(&tx, &mut d)?;
        Ok(d)
    }
}

fn dump_rest(tx: &redb::ReadTransaction, d: &mut StateDump) -> Result<()> {
    for row in tx
        .open_table(DELIVERIES)
        .map_err(err)?
        .iter()
        .map_err(err)?
    {
        let (k, v) = row.map_err(err)?;
        d.deliveries.insert(k.value().to_string(), v.value());
    }
    for row in tx.open_table(DEADLINES).map_err(err)?.iter().map_err(err)? {
        let (k, v) = row.map_err(err)?;
        let (head, at) = v.value();
        let deadline = Deadline {
            head_sha: head.to_string(),
            expires_at: at,
        };
        d.deadlines.insert(k.value(), deadline);
    }
    for row in tx
        .open_table(BRIDGE_COMMITS)
        .map_err(err)?
        .iter()
        .map_err(err)?
    {
        d.bridge_commits
            .push(row.map_err(err)?.0.value().to_string());
    }
    for row in tx.open_table(PUSHERS).map_err(err)?.iter().map_err(err)? {
        let (k, _) = row.map_err(err)?;
        let (pr, login) = k.value();
        d.pushers.push((pr, login.to_string()));
    }
    for row in tx.open_table(NOTICES).map_err(err)?.iter().map_err(err)? {
        let (k, _) = row.map_err(err)?;
        let (pr, n) = k.value();
        d.notices.extend(Notice::decode(n).map(|n| (pr, n)));
    }
    Ok(())
}
