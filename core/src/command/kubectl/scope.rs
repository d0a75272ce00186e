//! Which Kubernetes kinds live in a namespace and which are cluster-scoped.
//!
//! Policy must authorise a cluster-scoped object (a node, a cluster role binding, a CRD) as what
//! it is, never as the `default` namespace: it belongs to no namespace and affects all of them.
//! Built-in kinds come from the table below. Custom resources take the scope their definition
//! declares, which the bridge learns from API discovery ([`KindScopes::with_discovered`]); a kind
//! nobody describes is treated as cluster-scoped, the stricter reading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where objects of a kind live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A built-in kind: its plural, singular (also the lower-cased `kind`) and short names.
struct Builtin {
    group: &'static str,
    names: &'static [&'static str],
    namespaced: bool,
}

const fn ns(group: &'static str, names: &'static [&'static str]) -> Builtin {
    Builtin {
        group,
        names,
        namespaced: true,
    }
}

const fn cl(group: &'static str, names: &'static [&'static str]) -> Builtin {
    Builtin {
        group,
        names,
        namespaced: false,
    }
}

/// Kubernetes' built-in resources (1.32), by API group.
const BUILTINS: &[Builtin] = &[
    ns("", &["pods", "pod", "po"]),
    ns("", &["services", "service", "svc"]),
    ns("", &["configmaps", "configmap", "cm"]),
    ns("", &["secrets", "secret"]),
    ns("", &["serviceaccounts", "serviceaccount", "sa"]),
    ns("", &["endpoints", "endpoint", "ep"]),
    ns("", &["events", "event", "ev"]),
    ns(
        "",
        &["persistentvolumeclaims", "persistentvolumeclaim", "pvc"],
    ),
    ns(
        "",
        &["replicationcontrollers", "replicationcontroller", "rc"],
    ),
    ns("", &["limitranges", "limitrange", "limits"]),
    ns("", &["resourcequotas", "resourcequota", "quota"]),
    ns("", &["podtemplates", "podtemplate"]),
    cl("", &["namespaces", "namespace", "ns"]),
    cl("", &["nodes", "node", "no"]),
    cl("", &["persistentvolumes", "persistentvolume", "pv"]),
    cl("", &["componentstatuses", "componentstatus", "cs"]),
    ns("apps", &["deployments", "deployment", "deploy"]),
    ns("apps", &["replicasets", "replicaset", "rs"]),
    ns("apps", &["statefulsets", "statefulset", "sts"]),
    ns("apps", &["daemonsets", "daemonset", "ds"]),
    ns("apps", &["controllerrevisions", "controllerrevision"]),
    ns("batch", &["jobs", "job"]),
    ns("batch", &["cronjobs", "cronjob", "cj"]),
    ns(
        "autoscaling",
        &["horizontalpodautoscalers", "horizontalpodautoscaler", "hpa"],
    ),
    ns(
        "policy",
        &["poddisruptionbudgets", "poddisruptionbudget", "pdb"],
    ),
    ns("networking.k8s.io", &["ingresses", "ingress", "ing"]),
    ns(
        "networking.k8s.io",
        &["networkpolicies", "networkpolicy", "netpol"],
    ),
    cl("networking.k8s.io", &["ingressclasses", "ingressclass"]),
    ns("rbac.authorization.k8s.io", &["roles", "role"]),
    ns(
        "rbac.authorization.k8s.io",
        &["rolebindings", "rolebinding"],
    ),
    cl(
        "rbac.authorization.k8s.io",
        &["clusterroles", "clusterrole"],
    ),
    cl(
        "rbac.authorization.k8s.io",
        &["clusterrolebindings", "clusterrolebinding"],
    ),
    cl("storage.k8s.io", &["storageclasses", "storageclass", "sc"]),
    cl("storage.k8s.io", &["csidrivers", "csidriver"]),
    cl("storage.k8s.io", &["csinodes", "csinode"]),
    cl("storage.k8s.io", &["volumeattachments", "volumeattachment"]),
    ns(
        "storage.k8s.io",
        &["csistoragecapacities", "csistoragecapacity"],
    ),
    cl(
        "apiextensions.k8s.io",
        &[
            "customresourcedefinitions",
            "customresourcedefinition",
            "crd",
            "crds",
        ],
    ),
    cl(
        "admissionregistration.k8s.io",
        &[
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
        ],
    ),
    cl(
        "admissionregistration.k8s.io",
        &[
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
        ],
    ),
    cl(
        "admissionregistration.k8s.io",
        &["validatingadmissionpolicies", "validatingadmissionpolicy"],
    ),
    cl(
        "admissionregistration.k8s.io",
        &[
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
        ],
    ),
    cl(
        "scheduling.k8s.io",
        &["priorityclasses", "priorityclass", "pc"],
    ),
    cl("node.k8s.io", &["runtimeclasses", "runtimeclass"]),
    ns("coordination.k8s.io", &["leases", "lease"]),
    ns("discovery.k8s.io", &["endpointslices", "endpointslice"]),
    ns("events.k8s.io", &["events", "event", "ev"]),
    cl(
        "certificates.k8s.io",
        &[
            "certificatesigningrequests",
            "certificatesigningrequest",
            "csr",
        ],
    ),
    cl("apiregistration.k8s.io", &["apiservices", "apiservice"]),
    cl(
        "flowcontrol.apiserver.k8s.io",
        &["flowschemas", "flowschema"],
    ),
    cl(
        "flowcontrol.apiserver.k8s.io",
        &["prioritylevelconfigurations", "prioritylevelconfiguration"],
    ),
    ns("metrics.k8s.io", &["pods", "pod"]),
    cl("metrics.k8s.io", &["nodes", "node"]),
];

/// One resource as API discovery (`kubectl api-resources`) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredKind {
    /// The plural name, e.g. `widgets`.
    pub name: String,
    pub short_names: Vec<String>,
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    pub namespaced: bool,
    pub kind: String,
}

/// Built-in scopes plus what a cluster's discovery added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindScopes {
    /// Lower-cased name (`widgets`, `widgets.example.com`, `widget.example.com`, short names) →
    /// namespaced.
    discovered: BTreeMap<String, bool>,
}

static BUILTIN_ONLY: KindScopes = KindScopes {
    discovered: BTreeMap::new(),
};

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// `deploy.v1.apps` → (`deploy`, `apps`); `widgets.example.com` → (`widgets`, `example.com`).
fn split_word(word: &str) -> (&str, &str) {
    let Some((base, rest)) = word.split_once('.') else {
        return (word, "");
    };
    let group = match rest.split_once('.') {
        Some((v, g)) if is_version(v) => g,
        _ if is_version(rest) => "",
        _ => rest,
    };
    (base, group)
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .is_some_and(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

impl KindScopes {
    /// Only the built-in kinds.
    pub fn builtin() -> &'static KindScopes {
        &BUILTIN_ONLY
    }

    /// Built-ins plus discovered resources. A name discovery reports with both scopes counts as
    /// cluster-scoped.
    pub fn with_discovered(kinds: impl IntoIterator<Item = DiscoveredKind>) -> KindScopes {
        let mut discovered = BTreeMap::new();
        for k in kinds {
            let group = group_of(&k.api_version).to_ascii_lowercase();
            let kind = k.kind.to_ascii_lowercase();
            let mut names = vec![k.name.to_ascii_lowercase(), kind.clone()];
            names.extend(k.short_names.iter().map(|s| s.to_ascii_lowercase()));
            if !group.is_empty() {
                names.push(format!("{}.{group}", k.name.to_ascii_lowercase()));
                names.push(format!("{kind}.{group}"));
            }
            for n in names {
                let e = discovered.entry(n).or_insert(k.namespaced);
                *e = *e && k.namespaced;
            }
        }
        KindScopes { discovered }
    }

    /// What discovery added, for the signed change request (`name → namespaced`).
    pub fn discovered(&self) -> &BTreeMap<String, bool> {
        &self.discovered
    }

    /// The discovered entries for these resource words (as typed, or `kind` / `kind.group` of
    /// manifest objects), for a change request to sign.
    pub fn subset<'w>(&self, words: impl IntoIterator<Item = &'w str>) -> BTreeMap<String, bool> {
        words
            .into_iter()
            .filter_map(|w| {
                let w = w.to_ascii_lowercase();
                self.discovered.get(&w).map(|n| (w, *n))
            })
            .collect()
    }

    /// Rebuild from a signed `discovered()` map.
    pub fn from_map(discovered: BTreeMap<String, bool>) -> KindScopes {
        KindScopes { discovered }
    }

    fn builtin_scope(base: &str, group: &str) -> Option<Scope> {
        BUILTINS
            .iter()
            .find(|b| b.names.contains(&base) && (group.is_empty() || b.group == group))
            .map(|b| {
                if b.namespaced {
                    Scope::Namespaced
                } else {
                    Scope::Cluster
                }
            })
    }

    /// The scope of a resource word as typed (`pods`, `deploy.v1.apps`, `widgets.example.com`),
    /// or `None` when nothing describes it.
    pub fn lookup(&self, word: &str) -> Option<Scope> {
        let word = word.to_ascii_lowercase();
        let (base, group) = split_word(&word);
        Self::builtin_scope(base, group).or_else(|| {
            self.discovered
                .get(&word)
                .or_else(|| {
                    (group.is_empty())
                        .then(|| self.discovered.get(base))
                        .flatten()
                })
                .map(|n| {
                    if *n {
                        Scope::Namespaced
                    } else {
                        Scope::Cluster
                    }
                })
        })
    }

    /// The scope of a resource word; unknown kinds are cluster-scoped.
    pub fn scope_of(&self, word: &str) -> Scope {
        self.lookup(word).unwrap_or(Scope::Cluster)
    }

    /// The scope of a manifest object (`apiVersion`, `kind`); unknown kinds are cluster-scoped.
    pub fn scope_of_object(&self, api_version: &str, kind: &str) -> Scope {
        let group = group_of(api_version);
        let kind = kind.to_ascii_lowercase();
        let word = if group.is_empty() {
            kind
        } else {
            format!("{kind}.{group}")
        };
        self.scope_of(&word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_their_spellings() {
        let s = KindScopes::builtin();
        for w in ["pods", "po", "deploy.v1.apps", "deployments.apps", "Pod"] {
            assert_eq!(s.scope_of(w), Scope::Namespaced, "{w}");
        }
        for w in ["nodes", "ns", "clusterrolebinding", "crd", "pv", "sc"] {
            assert_eq!(s.scope_of(w), Scope::Cluster, "{w}");
        }
        assert_eq!(s.scope_of("widgets.example.com"), Scope::Cluster, "unknown");
        assert_eq!(
            s.scope_of_object("rbac.authorization.k8s.io/v1", "ClusterRole"),
            Scope::Cluster
        );
        assert_eq!(
            s.scope_of_object("apps/v1", "Deployment"),
            Scope::Namespaced
        );
    }

    #[test]
    fn custom_resources_take_the_scope_discovery_declares() {
        let s = KindScopes::with_discovered([
            DiscoveredKind {
                name: "widgets".into(),
                short_names: vec!["wd".into()],
                api_version: "example.com/v1".into(),
                namespaced: true,
                kind: "Widget".into(),
            },
            DiscoveredKind {
                name: "clusterwidgets".into(),
                short_names: vec![],
                api_version: "example.com/v1".into(),
                namespaced: false,
                kind: "ClusterWidget".into(),
            },
        ]);
        assert_eq!(s.scope_of("widgets"), Scope::Namespaced);
        assert_eq!(s.scope_of("wd"), Scope::Namespaced);
        assert_eq!(s.scope_of("widgets.example.com"), Scope::Namespaced);
        assert_eq!(s.scope_of("clusterwidgets"), Scope::Cluster);
        assert_eq!(
            s.scope_of_object("example.com/v1", "Widget"),
            Scope::Namespaced
        );
        assert_eq!(s.scope_of("widgets.other.io"), Scope::Cluster);
        let round = KindScopes::from_map(s.discovered().clone());
        assert_eq!(round, s);
    }
}
