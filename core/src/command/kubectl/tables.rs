//! The kubectl allowlists: the verbs and flags Slipway runs, and the ones it refuses with a reason.

use crate::command::Tier;

/// One allowed verb (or verb + subverb).
#[derive(Debug, PartialEq, Eq)]
pub struct VerbSpec {
    /// The words as typed, for example `["rollout", "status"]`.
    pub words: &'static [&'static str],
    pub tier: Tier,
    pub summary: &'static str,
    /// Long names of the flags this verb accepts.
    pub flags: &'static [&'static str],
    /// How many positional words it needs at least.
    pub min_positionals: usize,
}

impl VerbSpec {
    pub fn name(&self) -> String {
        self.words.join(" ")
    }
}

const LIST: &[&str] = &[
    "namespace",
    "all-namespaces",
    "output",
    "selector",
    "field-selector",
    "show-labels",
    "sort-by",
    "no-headers",
    "label-columns",
    "chunk-size",
    "ignore-not-found",
    "show-kind",
];

/// The verb allowlist, in the order help shows it.
pub const VERBS: &[VerbSpec] = &[
    VerbSpec {
        words: &["get"],
        tier: Tier::Read,
        summary: "List or show resources (never Secret contents)",
        flags: LIST,
        min_positionals: 1,
    },
    VerbSpec {
        words: &["describe"],
        tier: Tier::Read,
        summary: "Describe resources (not Secrets)",
        flags: &["namespace", "all-namespaces", "selector", "show-events"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["logs"],
        tier: Tier::Read,
        summary: "Print a pod's logs (no follow)",
        flags: &[
            "namespace",
            "container",
            "tail",
            "since",
            "since-time",
            "previous",
            "timestamps",
            "all-containers",
            "limit-bytes",
            "prefix",
            "selector",
            "max-log-requests",
            "ignore-errors",
        ],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["top"],
        tier: Tier::Read,
        summary: "CPU and memory of pods or nodes",
        flags: &[
            "namespace",
            "all-namespaces",
            "selector",
            "containers",
            "sort-by",
            "no-headers",
        ],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["events"],
        tier: Tier::Read,
        summary: "List events",
        flags: &[
            "namespace",
            "all-namespaces",
            "for",
            "types",
            "output",
            "no-headers",
        ],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["explain"],
        tier: Tier::Read,
        summary: "Document a resource's fields",
        flags: &["recursive", "api-version"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["api-resources"],
        tier: Tier::Read,
        summary: "List resource types",
        flags: &[
            "namespaced",
            "api-group",
            "verbs",
            "output",
            "no-headers",
            "sort-by",
        ],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["api-versions"],
        tier: Tier::Read,
        summary: "List API versions",
        flags: &[],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["rollout", "status"],
        tier: Tier::Read,
        summary: "Show a rollout's progress",
        flags: &["namespace", "revision", "timeout"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["rollout", "history"],
        tier: Tier::Read,
        summary: "Show rollout revisions",
        flags: &["namespace", "revision", "output"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["auth", "can-i"],
        tier: Tier::Read,
        summary: "Check what the bridge's read credentials may do",
        flags: &["namespace", "all-namespaces", "list", "subresource"],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["apply"],
        tier: Tier::Change,
        summary: "Apply a manifest from the GitOps repo (`-f path`)",
        flags: &["namespace", "filename", "recursive", "server-side"],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["scale"],
        tier: Tier::Change,
        summary: "Set a workload's replica count",
        flags: &[
            "namespace",
            "replicas",
            "current-replicas",
            "selector",
            "resource-version",
        ],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["rollout", "restart"],
        tier: Tier::Change,
        summary: "Restart a workload's pods",
        flags: &["namespace", "selector"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["patch"],
        tier: Tier::Change,
        summary: "Patch a resource",
        flags: &["namespace", "patch", "type", "subresource"],
        min_positionals: 1,
    },
    VerbSpec {
        words: &["label"],
        tier: Tier::Change,
        summary: "Set or remove labels",
        flags: &["namespace", "overwrite", "selector", "resource-version"],
        min_positionals: 2,
    },
    VerbSpec {
        words: &["annotate"],
        tier: Tier::Change,
        summary: "Set or remove annotations",
        flags: &["namespace", "overwrite", "selector", "resource-version"],
        min_positionals: 2,
    },
    VerbSpec {
        words: &["cordon"],
        tier: Tier::Change,
        summary: "Mark a node unschedulable",
        flags: &["selector"],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["uncordon"],
        tier: Tier::Change,
        summary: "Mark a node schedulable",
        flags: &["selector"],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["delete"],
        tier: Tier::Destructive,
        summary: "Delete resources (typed confirmation)",
        flags: &[
            "namespace",
            "filename",
            "recursive",
            "selector",
            "field-selector",
            "grace-period",
            "cascade",
            "ignore-not-found",
            "wait",
            "timeout",
        ],
        min_positionals: 0,
    },
    VerbSpec {
        words: &["drain"],
        tier: Tier::Destructive,
        summary: "Evict a node's pods (typed confirmation)",
        flags: &[
            "selector",
            "ignore-daemonsets",
            "delete-emptydir-data",
            "grace-period",
            "timeout",
            "pod-selector",
            "skip-wait-for-delete-timeout",
        ],
        min_positionals: 1,
    },
];

/// Verbs refused outright, with the reason shown to the person.
pub const REFUSED_VERBS: &[(&str, &str)] = &[
    (
        "exec",
        "it opens a shell or runs programs inside a container",
    ),
    ("attach", "it attaches to a running container's console"),
    ("debug", "it starts privileged debug containers"),
    (
        "run",
        "it starts arbitrary workloads; ship them through the GitOps repo",
    ),
    ("cp", "it copies files into or out of containers"),
    ("port-forward", "it opens a network tunnel into the cluster"),
    ("proxy", "it opens a network tunnel to the API server"),
    (
        "edit",
        "it is interactive; use `/kubectl patch` or `/kubectl apply -f` instead",
    ),
    (
        "auth",
        "only `auth can-i` is available; impersonation is never allowed",
    ),
];

/// One allowed flag.
#[derive(Debug, PartialEq, Eq)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
}

const fn v(long: &'static str, short: Option<char>) -> FlagSpec {
    FlagSpec {
        long,
        short,
        takes_value: true,
    }
}
const fn b(long: &'static str, short: Option<char>) -> FlagSpec {
    FlagSpec {
        long,
        short,
        takes_value: false,
    }
}

/// Every flag any verb accepts; [`VerbSpec::flags`] picks from these.
pub const FLAGS: &[FlagSpec] = &[
    v("namespace", Some('n')),
    b("all-namespaces", Some('A')),
    v("output", Some('o')),
    v("selector", Some('l')),
    v("field-selector", None),
    b("show-labels", None),
    v("sort-by", None),
    b("no-headers", None),
    v("label-columns", Some('L')),
    v("chunk-size", None),
    b("ignore-not-found", None),
    b("show-kind", None),
    b("show-events", None),
    v("container", Some('c')),
    v("tail", None),
    v("since", None),
    v("since-time", None),
    b("previous", Some('p')),
    b("timestamps", None),
    b("all-containers", None),
    v("limit-bytes", None),
    b("prefix", None),
    v("max-log-requests", None),
    b("ignore-errors", None),
    b("containers", None),
    v("for", None),
    v("types", None),
    b("recursive", Some('R')),
    v("api-version", None),
    b("namespaced", None),
    v("api-group", None),
    v("verbs", None),
    v("revision", None),
    v("timeout", None),
    b("list", None),
    v("subresource", None),
    v("filename", Some('f')),
    b("server-side", None),
    v("replicas", None),
    v("current-replicas", None),
    v("resource-version", None),
    v("patch", Some('p')),
    v("type", None),
    b("overwrite", None),
    v("grace-period", None),
    v("cascade", None),
    b("wait", None),
    b("ignore-daemonsets", None),
    b("delete-emptydir-data", None),
    v("pod-selector", None),
    v("skip-wait-for-delete-timeout", None),
];

/// Global flags that would change who kubectl is or which cluster it talks to.
pub const IDENTITY_FLAGS: &[&str] = &[
    "kubeconfig",
    "context",
    "cluster",
    "server",
    "token",
    "as",
    "as-group",
    "as-uid",
    "user",
    "username",
    "password",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "insecure-skip-tls-verify",
    "tls-server-name",
    "cache-dir",
];

/// Other flags refused on purpose, with the reason.
pub const REFUSED_FLAGS: &[(&str, &str)] = &[
    ("watch", "it streams forever; run the command again instead"),
    ("follow", "it streams forever; use `--tail` or `--since`"),
    ("v", "verbose logging can print credentials"),
    ("vmodule", "verbose logging can print credentials"),
    ("log-file", "it writes files on the bridge"),
    (
        "dry-run",
        "Slipway runs its own server-side dry-run for changes",
    ),
    (
        "force",
        "forced operations bypass graceful handling; ask an owner",
    ),
    ("prune", "pruning can delete unrelated resources"),
    (
        "all",
        "acting on every resource at once is too broad; name the resources",
    ),
    ("raw", "raw API access bypasses the verb allowlist"),
    ("kustomize", "use `-f` with a path in the GitOps repo"),
    ("disable-eviction", "it bypasses PodDisruptionBudgets"),
];

/// Output formats allowed for `-o`.
pub(super) const OUTPUT_FORMATS: &[&str] = &["wide", "name", "yaml", "json"];
pub(super) const OUTPUT_PREFIXES: &[&str] = &["jsonpath=", "jsonpath-as-json=", "custom-columns="];
