//! What each cluster's API discovery says about kinds: which custom resources are namespaced.
//!
//! Policy needs it on the ack path, which does no I/O, so it is kept in memory and refreshed in
//! the background (`kubectl api-resources` as the cluster's read ServiceAccount, or with its static credentials). Until a cluster
//! has answered, its custom kinds are judged cluster-scoped: the stricter reading.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_core::command::kubectl::{DiscoveredKind, KindScopes};
use slipway_infra::exec::ExecSpec;

use crate::base::Base;

/// How often discovery is refreshed.
pub const REFRESH: Duration = Duration::from_secs(600);

/// Each cluster alias's kinds.
#[derive(Debug, Default)]
pub struct Discovery {
    clusters: Mutex<HashMap<String, Arc<KindScopes>>>,
}

impl Discovery {
    /// What is known of `cluster` (the built-ins alone until discovery answered).
    pub fn scopes(&self, cluster: &str) -> Arc<KindScopes> {
        slipway_infra::sync::lock(&self.clusters)
            .get(cluster)
            .cloned()
            .unwrap_or_else(|| Arc::new(KindScopes::builtin().clone()))
    }

    fn set(&self, cluster: &str, scopes: KindScopes) {
        slipway_infra::sync::lock(&self.clusters).insert(cluster.to_string(), Arc::new(scopes));
    }
}

/// Parse `kubectl api-resources --no-headers`: `NAME [SHORTNAMES] APIVERSION NAMESPACED KIND`.
pub fn parse_api_resources(text: &str) -> Vec<DiscoveredKind> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (name, short, rest) = match f.len() {
                4 => (f[0], "", &f[1..]),
                5 => (f[0], f[1], &f[2..]),
                _ => return None,
            };
            let namespaced = match rest[1] {
                "true" => true,
                "false" => false,
                _ => return None,
            };
            Some(DiscoveredKind {
                name: name.to_string(),
                short_names: short
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                api_version: rest[0].to_string(),
                namespaced,
                kind: rest[2].to_string(),
            })
        })
        .collect()
}

/// Ask one cluster. A failure keeps what was known and is logged. With shared state the
/// answer is also kept in Redis, for the replicas that don't lead.
pub async fn refresh(state: &Base, cache: &Discovery, cluster: &str) {
    let argv = ["kubectl", "api-resources", "--no-headers"].map(String::from);
    let Some(argv) = super::targets::kubectl_argv(state, cluster, &argv) else {
        return;
    };
    let spec = ExecSpec {
        argv,
        env: super::targets::base_env(state),
        cwd: state.work_dir.clone(),
        timeout: Duration::from_secs(30),
        output_cap: 4 * 1024 * 1024,
        kill_grace: state.config.execution.kill_grace,
    };
    let access = super::sandbox::kubectl(&state.config, cluster);
    let creds = super::creds::kube_creds(state, cluster, super::kube_token::Purpose::Read);
    let r = super::creds::run_to_end(state, &creds, &access, spec).await;
    if !r.end.success() {
        tracing::warn!(cluster, output = %r.output.lines().last().unwrap_or(""), "API discovery failed; custom kinds stay cluster-scoped");
        return;
    }
    apply(cache, cluster, &r.output);
    if let Some(redis) = &state.redis {
        let (key, text) = (redis.key(&format!("discovery:{cluster}")), r.output.clone());
        let stored: Result<(), _> = redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(text)
                    .arg("EX")
                    .arg(REFRESH.as_secs() * 3)
                    .query_async(&mut c)
                    .await
            })
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, cluster, "could not share API discovery");
        }
    }
}

fn apply(cache: &Discovery, cluster: &str, output: &str) {
    let kinds = parse_api_resources(output);
    tracing::debug!(cluster, kinds = kinds.len(), "API discovery");
    cache.set(cluster, KindScopes::with_discovered(kinds));
}

/// A replica that doesn't lead takes what the leader found, if it shared anything.
async fn follow(state: &Base, cache: &Discovery, cluster: &str) {
    let Some(redis) = &state.redis else { return };
    let key = redis.key(&format!("discovery:{cluster}"));
    let shared: Result<Option<String>, _> = redis
        .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
        .await;
    if let Ok(Some(output)) = shared {
        apply(cache, cluster, &output);
    }
}

/// How often a replica that doesn't lead picks up the leader's discovery.
const FOLLOW_EVERY: Duration = Duration::from_secs(30);

/// Refresh every cluster the policy names, now and every [`REFRESH`], on the leader; the
/// other replicas read what it shared every [`FOLLOW_EVERY`].
pub fn start(state: &Base, cache: &Arc<Discovery>) {
    let state = state.clone();
    let cache = cache.clone();
    tokio::spawn(async move {
        let mut last_refresh: Option<tokio::time::Instant> = None;
        loop {
            let due = last_refresh.is_none_or(|t| t.elapsed() >= REFRESH);
            let leads = state.leader.lead().await.is_some();
            for cluster in state.policy().cluster_names() {
                match (leads, due) {
                    (true, true) => refresh(&state, &cache, &cluster).await,
                    (true, false) => {}
                    (false, _) => follow(&state, &cache, &cluster).await,
                }
            }
            if leads && due {
                last_refresh = Some(tokio::time::Instant::now());
            } else if !leads {
                last_refresh = None;
            }
            tokio::time::sleep(FOLLOW_EVERY.min(REFRESH)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubectl_api_resources() {
        let out = "pods          po     v1                 true    Pod\n\
                   nodes         no     v1                 false   Node\n\
                   widgets              example.com/v1     true    Widget\n\
                   garbage line\n";
        let k = parse_api_resources(out);
        assert_eq!(k.len(), 3);
        assert_eq!(k[2].name, "widgets");
        assert!(k[2].short_names.is_empty());
        assert!(k[2].namespaced);
        assert_eq!(k[1].short_names, ["no"]);
    }
}
