//! Resource patterns, compiled once into glob sets so that evaluation with a thousand rules stays
//! in the microseconds.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// The resource kinds a pattern may start with.
pub const KINDS: &[&str] = &["kube:", "aws:", "stack:", "service:", "alerts:"];

/// The resource a request touches, in the form patterns match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKey {
    /// `kube:staging/web`, `aws:prod-readonly`, …
    pub full: String,
    /// For `-A` requests, `kube:<cluster>`: the request touches every namespace of it.
    pub all_namespaces_of: Option<String>,
}

/// Check a pattern's shape; the message says how to write it.
pub fn check_pattern(p: &str) -> Result<(), String> {
    if p == "*" {
        return Ok(());
    }
    let Some(kind) = KINDS.iter().find(|k| p.starts_with(*k)) else {
        return Err(format!(
            "resource pattern `{p}` must be `*` or start with one of {}",
            KINDS.join(" ")
        ));
    };
    let slashes = p.matches('/').count();
    let needs_slash = *kind == "kube:" || *kind == "service:";
    if needs_slash && slashes != 1 {
        return Err(format!(
            "resource pattern `{p}` must have the form `{kind}<{}>/<{}>`, for example `{kind}*/staging`",
            if *kind == "kube:" {
                "cluster"
            } else {
                "service"
            },
            if *kind == "kube:" { "namespace" } else { "env" },
        ));
    }
    if !needs_slash && slashes != 0 {
        return Err(format!("resource pattern `{p}` must not contain `/`"));
    }
    Glob::new(p)
        .map(|_| ())
        .map_err(|e| format!("resource pattern `{p}` is invalid: {e}"))
}

/// A set of patterns, each owned by an item (a rule, an ACL, a protected entry).
#[derive(Debug)]
pub(crate) struct PatternIndex {
    set: GlobSet,
    owners: Vec<u32>,
    /// Cluster parts of `kube:` patterns, for `-A` requests.
    clusters: GlobSet,
    cluster_owners: Vec<u32>,
}

/// How an `-A` request is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllNamespaces {
    /// Only patterns whose namespace part is `*` cover every namespace (permissions).
    NeedsStar,
    /// Any pattern on the cluster touches it (restrictions: ACLs, protected resources).
    AnyNamespace,
}

impl PatternIndex {
    pub(crate) fn build<'a>(
        items: impl IntoIterator<Item = (u32, &'a str)>,
        mode: AllNamespaces,
    ) -> Result<Self, globset::Error> {
        let mut set = GlobSetBuilder::new();
        let mut owners = Vec::new();
        let mut clusters = GlobSetBuilder::new();
        let mut cluster_owners = Vec::new();
        for (owner, pattern) in items {
            set.add(Glob::new(pattern)?);
            owners.push(owner);
            let cluster_part = if pattern == "*" {
                Some("*")
            } else if pattern.starts_with("kube:") {
                pattern.split_once('/').and_then(|(cluster, ns)| {
                    (mode == AllNamespaces::AnyNamespace || ns == "*").then_some(cluster)
                })
            } else {
                None
            };
            if let Some(c) = cluster_part {
                clusters.add(Glob::new(c)?);
                cluster_owners.push(owner);
            }
        }
        Ok(Self {
            set: set.build()?,
            owners,
            clusters: clusters.build()?,
            cluster_owners,
        })
    }

    fn matches(&self, key: &ResourceKey) -> impl Iterator<Item = u32> + '_ {
        let (hits, owners) = match &key.all_namespaces_of {
            Some(cluster) => (self.clusters.matches(cluster), &self.cluster_owners),
            None => (self.set.matches(&key.full), &self.owners),
        };
        hits.into_iter().map(move |i| owners[i])
    }

    /// The lowest-numbered owner with a matching pattern.
    pub(crate) fn first(&self, key: &ResourceKey) -> Option<u32> {
        self.matches(key).min()
    }

    /// Every owner with a matching pattern, ascending, without repeats.
    pub(crate) fn all(&self, key: &ResourceKey) -> Vec<u32> {
        let mut v: Vec<u32> = self.matches(key).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(full: &str) -> ResourceKey {
        ResourceKey {
            full: full.into(),
            all_namespaces_of: None,
        }
    }
    fn all_ns(cluster: &str) -> ResourceKey {
        ResourceKey {
            full: format!("kube:{cluster}/*"),
            all_namespaces_of: Some(format!("kube:{cluster}")),
        }
    }

    #[test]
    fn shapes() {
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("kube:staging/*").is_ok());
        assert!(check_pattern("service:*/production").is_ok());
        assert!(check_pattern("kube:staging").is_err());
        assert!(check_pattern("aws:a/b").is_err());
        assert!(check_pattern("pods").is_err());
        assert!(check_pattern("stack:[").is_err());
    }

    #[test]
    fn all_namespaces_modes() {
        let items = [
            (0, "kube:staging/web"),
            (1, "kube:*/prod"),
            (2, "kube:staging/*"),
        ];
        let perm = PatternIndex::build(items, AllNamespaces::NeedsStar).unwrap();
        let restr = PatternIndex::build(items, AllNamespaces::AnyNamespace).unwrap();
        assert_eq!(perm.all(&all_ns("staging")), [2]);
        assert_eq!(restr.all(&all_ns("staging")), [0, 1, 2]);
        assert_eq!(restr.all(&all_ns("production")), [1]);
        assert_eq!(perm.first(&key("kube:staging/web")), Some(0));
        assert_eq!(perm.all(&key("kube:staging/prod")), [1, 2]);
        assert_eq!(perm.first(&key("kube:production/web")), None);
    }
}
