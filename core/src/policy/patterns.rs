//! Resource patterns, compiled once into glob sets so that evaluation with a thousand rules stays
//! in the microseconds.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// The resource kinds a pattern may start with.
pub const KINDS: &[&str] = &["kube:", "aws:", "gcp:", "stack:", "service:", "alerts:"];

/// The resource a request touches, in the form patterns match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKey {
    /// `kube:staging/web`, `aws:prod-readonly`, `gcp:gcp-prod`, …
    pub full: String,
    /// For `-A` requests, `kube:<cluster>`: the request touches every namespace of it.
    pub all_namespaces_of: Option<String>,
    /// For cluster-scoped objects, `kube:<cluster>`: only cluster-scope patterns (`kube:<cluster>`,
    /// no namespace part) or `*` grant it; every restriction on the cluster covers it, because
    /// such an object affects all of the cluster's namespaces.
    pub cluster_scope_of: Option<String>,
}

impl ResourceKey {
    /// The key for a resource string (`kube:staging/web`, `kube:staging/*` for `-A`,
    /// `kube:staging` for cluster-scoped objects, `aws:…`).
    pub fn of(full: String) -> ResourceKey {
        let kube = full.strip_prefix("kube:");
        let all_namespaces_of = kube
            .and_then(|k| k.strip_suffix("/*"))
            .map(|c| format!("kube:{c}"));
        let cluster_scope_of = kube.filter(|k| !k.contains('/')).map(|_| full.clone());
        ResourceKey {
            full,
            all_namespaces_of,
            cluster_scope_of,
        }
    }
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
    let cluster_scope = *kind == "kube:" && slashes == 0;
    if needs_slash && slashes != 1 && !cluster_scope {
        return Err(format!(
            "resource pattern `{p}` must have the form `{kind}<{}>/<{}>`, for example `{kind}*/staging`{}",
            if *kind == "kube:" {
                "cluster"
            } else {
                "service"
            },
            if *kind == "kube:" { "namespace" } else { "env" },
            if *kind == "kube:" {
                " (or `kube:<cluster>` for cluster-scoped objects)"
            } else {
                ""
            },
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
    /// Cluster-scope patterns (`kube:<cluster>`) and `*`, for cluster-scoped objects.
    scoped: GlobSet,
    scoped_owners: Vec<u32>,
    mode: AllNamespaces,
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
        let mut scoped = GlobSetBuilder::new();
        let mut scoped_owners = Vec::new();
        for (owner, pattern) in items {
            let is_scope = pattern == "*"
                || pattern
                    .strip_prefix("kube:")
                    .is_some_and(|c| !c.contains('/'));
            if is_scope {
                scoped.add(Glob::new(pattern)?);
                scoped_owners.push(owner);
                if pattern != "*" {
                    // `*` inside a cluster-scope glob would also match `/`: keep these out of
                    // the namespaced set.
                    continue;
                }
            }
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
            scoped: scoped.build()?,
            scoped_owners,
            mode,
        })
    }

    fn matches(&self, key: &ResourceKey) -> Vec<u32> {
        let pick = |set: &GlobSet, owners: &[u32], what: &str| -> Vec<u32> {
            set.matches(what).into_iter().map(|i| owners[i]).collect()
        };
        if let Some(cluster) = &key.cluster_scope_of {
            let mut hits = pick(&self.scoped, &self.scoped_owners, cluster);
            if self.mode == AllNamespaces::AnyNamespace {
                hits.extend(pick(&self.clusters, &self.cluster_owners, cluster));
            }
            return hits;
        }
        match &key.all_namespaces_of {
            Some(cluster) => pick(&self.clusters, &self.cluster_owners, cluster),
            None => pick(&self.set, &self.owners, &key.full),
        }
    }

    /// The lowest-numbered owner with a matching pattern.
    pub(crate) fn first(&self, key: &ResourceKey) -> Option<u32> {
        self.matches(key).into_iter().min()
    }

    /// Every owner with a matching pattern, ascending, without repeats.
    pub(crate) fn all(&self, key: &ResourceKey) -> Vec<u32> {
        let mut v: Vec<u32> = self.matches(key);
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
        ResourceKey::of(full.into())
    }
    fn all_ns(cluster: &str) -> ResourceKey {
        ResourceKey::of(format!("kube:{cluster}/*"))
    }

    #[test]
    fn shapes() {
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("kube:staging/*").is_ok());
        assert!(check_pattern("service:*/production").is_ok());
        assert!(check_pattern("kube:staging").is_ok(), "cluster scope");
        assert!(check_pattern("kube:a/b/c").is_err());
        assert!(check_pattern("aws:a/b").is_err());
        assert!(check_pattern("gcp:gcp-*").is_ok());
        assert!(check_pattern("gcp:a/b").is_err());
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

    #[test]
    fn cluster_scoped_objects_need_a_cluster_scope_grant_but_every_restriction_covers_them() {
        let items = [
            (0, "kube:staging/*"),
            (1, "kube:*/prod"),
            (2, "kube:staging"),
            (3, "*"),
            (4, "kube:*"),
        ];
        let perm = PatternIndex::build(items, AllNamespaces::NeedsStar).unwrap();
        let restr = PatternIndex::build(items, AllNamespaces::AnyNamespace).unwrap();
        assert_eq!(perm.all(&key("kube:staging")), [2, 3, 4]);
        assert_eq!(perm.all(&key("kube:production")), [3, 4]);
        assert_eq!(restr.all(&key("kube:staging")), [0, 1, 2, 3, 4]);
        assert_eq!(restr.all(&key("kube:production")), [1, 3, 4]);
        assert_eq!(
            perm.all(&key("kube:staging/web")),
            [0, 3],
            "a cluster-scope pattern grants no namespace"
        );
    }
}
