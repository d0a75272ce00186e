//! `/kubectl [@cluster] <verb> [args…]`.
//!
//! Grammar:
//! ```text
//! kubectl  := [ "@" cluster ] verb { positional | flag }
//! verb     := get | describe | logs | … | "rollout" ("status"|"history"|"restart") | "auth" "can-i"
//! flag     := "--" long [ "=" value ] | "-" short [ value ]
//! ```
//! Verbs and flags are allowlists: anything not named in [`VERBS`] or [`FLAGS`] is an error. The
//! cluster comes only from `@cluster` or the policy default, never from kubectl's own flags, and
//! flags are rewritten as `--long=value` so that no value can be read back as a flag.

use super::parse::{ParseError, check_name, truncate};
use super::{Namespace, Tier};

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
const OUTPUT_FORMATS: &[&str] = &["wide", "name", "yaml", "json"];
const OUTPUT_PREFIXES: &[&str] = &["jsonpath=", "jsonpath-as-json=", "custom-columns="];

/// A parsed kubectl command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubectl {
    /// From `@cluster`; `None` means the policy's default for the user.
    pub cluster: Option<String>,
    pub namespace: Namespace,
    pub verb: &'static VerbSpec,
    pub tier: Tier,
    /// Positional words after the verb (resource types and names).
    pub positionals: Vec<String>,
    /// Flags, normalised to `--long` or `--long=value`.
    pub flags: Vec<String>,
    /// Paths given with `-f`: relative paths inside the GitOps repository.
    pub files: Vec<String>,
}

impl Kubectl {
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["kubectl".to_string()];
        argv.extend(self.verb.words.iter().map(|w| (*w).to_string()));
        argv.extend(self.positionals.iter().cloned());
        argv.extend(self.flags.iter().cloned());
        argv
    }

    /// What the person must type to confirm a destructive command: the resources it names.
    pub fn confirmation_text(&self) -> String {
        if self.positionals.is_empty() {
            self.files.join(" ")
        } else {
            self.positionals.join(" ")
        }
    }
}

fn find_verb(words: &[String]) -> Result<(&'static VerbSpec, usize), ParseError> {
    let Some(first) = words.first() else {
        return Err(ParseError::invalid(
            "which kubectl verb? For example `/kubectl get pods -n web`. See `/slipway help kubectl`.",
        ));
    };
    let second = words.get(1).map(String::as_str);
    if let Some(spec) = VERBS
        .iter()
        .find(|s| s.words[0] == first && (s.words.len() == 1 || Some(s.words[1]) == second))
    {
        return Ok((spec, spec.words.len()));
    }
    if let Some((_, why)) = REFUSED_VERBS.iter().find(|(name, _)| name == first) {
        return Err(ParseError::refused(format!(
            "`kubectl {first}` is not allowed: {why}."
        )));
    }
    if first == "rollout" {
        return Err(ParseError::unknown(
            "`kubectl rollout` needs `status`, `history` or `restart`.",
        ));
    }
    Err(ParseError::unknown(format!(
        "`kubectl {}` is not a verb Slipway runs. Allowed: {}.",
        truncate(first, 40),
        VERBS
            .iter()
            .map(VerbSpec::name)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn flag_by_long(verb: &VerbSpec, long: &str) -> Result<&'static FlagSpec, ParseError> {
    if verb.flags.contains(&long)
        && let Some(spec) = FLAGS.iter().find(|f| f.long == long)
    {
        return Ok(spec);
    }
    if IDENTITY_FLAGS.contains(&long) {
        return Err(ParseError::refused(format!(
            "`--{long}` is not allowed: the cluster and credentials come from Slipway's configuration. \
             Choose a cluster with `@cluster` as the first word."
        )));
    }
    if let Some((_, why)) = REFUSED_FLAGS.iter().find(|(n, _)| *n == long) {
        return Err(ParseError::refused(format!(
            "`--{long}` is not allowed: {why}."
        )));
    }
    Err(ParseError::unknown(format!(
        "`--{}` is not a flag `kubectl {}` accepts here. Allowed: {}.",
        truncate(long, 40),
        verb.name(),
        allowed_flags(verb)
    )))
}

fn flag_by_short(verb: &VerbSpec, short: char) -> Result<&'static FlagSpec, ParseError> {
    if let Some(spec) = verb
        .flags
        .iter()
        .filter_map(|l| FLAGS.iter().find(|f| f.long == *l))
        .find(|f| f.short == Some(short))
    {
        return Ok(spec);
    }
    let long = match short {
        's' => "server",
        'w' => "watch",
        'f' => "follow",
        'v' => "v",
        'k' => "kustomize",
        'i' | 't' => {
            return Err(ParseError::refused(format!(
                "`-{short}` is not allowed: Slipway never opens an interactive session."
            )));
        }
        _ => {
            return Err(ParseError::unknown(format!(
                "`-{short}` is not a flag `kubectl {}` accepts here. Allowed: {}.",
                verb.name(),
                allowed_flags(verb)
            )));
        }
    };
    flag_by_long(verb, long)
}

fn allowed_flags(verb: &VerbSpec) -> String {
    if verb.flags.is_empty() {
        return "none".to_string();
    }
    verb.flags
        .iter()
        .map(
            |l| match FLAGS.iter().find(|f| f.long == *l).and_then(|f| f.short) {
                Some(s) => format!("-{s}/--{l}"),
                None => format!("--{l}"),
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a resource word (`secret`, `secrets.v1`, `secret/db`, `pods,secrets`) names Secrets.
pub fn names_secrets(word: &str) -> bool {
    word.to_ascii_lowercase().split(',').any(|part| {
        let kind = part.split('/').next().unwrap_or("");
        let base = kind.split('.').next().unwrap_or("");
        base == "secret" || base == "secrets"
    })
}

/// A path inside the GitOps repo: relative, no `..`, no URL, no stdin.
fn check_repo_path(path: &str) -> Result<(), ParseError> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.starts_with('-')
        && !path.contains("://")
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != ".." && c != ".")
        && path
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ParseError::refused(format!(
            "`-f {}` must be a relative path inside the GitOps repository (no `..`, URLs or stdin), \
             for example `-f apps/api/staging/deployment.yaml`.",
            truncate(path, 80)
        )))
    }
}

fn check_output(value: &str) -> Result<(), ParseError> {
    if OUTPUT_FORMATS.contains(&value) || OUTPUT_PREFIXES.iter().any(|p| value.starts_with(p)) {
        return Ok(());
    }
    Err(ParseError::refused(format!(
        "`-o {}` is not an allowed output format. Allowed: {}, jsonpath=…, custom-columns=…",
        truncate(value, 40),
        OUTPUT_FORMATS.join(", ")
    )))
}

/// Parse the words after `/kubectl`.
pub fn parse(mut words: Vec<String>) -> Result<Kubectl, ParseError> {
    let cluster = match words.first() {
        Some(w) if w.starts_with('@') => {
            let name = w[1..].to_string();
            check_name("cluster", &name)?;
            words.remove(0);
            Some(name)
        }
        _ => None,
    };
    if let Some(w) = words.iter().find(|w| w.starts_with('@')) {
        return Err(ParseError::invalid(format!(
            "`{}`: put the `@cluster` first, as in `/kubectl @production get pods`.",
            truncate(w, 40)
        )));
    }
    let (verb, consumed) = find_verb(&words)?;
    let mut rest = words.into_iter().skip(consumed);

    let mut namespace = Namespace::Default;
    let mut positionals = Vec::new();
    let mut flags = Vec::new();
    let mut files = Vec::new();
    let mut output: Option<String> = None;

    while let Some(word) = rest.next() {
        let (spec, inline) = if word == "--" {
            return Err(ParseError::unknown(
                "`--` is not supported; pass arguments directly.",
            ));
        } else if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            (flag_by_long(verb, name)?, value)
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('-');
            let tail: String = chars.collect();
            let spec = flag_by_short(verb, c)?;
            let value = match tail.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if tail.is_empty() => None,
                None if spec.takes_value => Some(tail),
                None => {
                    return Err(ParseError::unknown(format!(
                        "`{}`: combine short flags one at a time, for example `-A -o wide`.",
                        truncate(&word, 40)
                    )));
                }
            };
            (spec, value)
        } else {
            positionals.push(word);
            continue;
        };

        let value = if spec.takes_value {
            match inline.or_else(|| rest.next()) {
                Some(v) => Some(v),
                None => {
                    return Err(ParseError::invalid(format!(
                        "`--{}` needs a value.",
                        spec.long
                    )));
                }
            }
        } else {
            match inline.as_deref() {
                None => None,
                Some("true" | "false") => inline,
                Some(_) => {
                    return Err(ParseError::invalid(format!(
                        "`--{}` takes no value (or `=true`/`=false`).",
                        spec.long
                    )));
                }
            }
        };

        match (spec.long, value.as_deref()) {
            ("namespace", Some(ns)) => {
                check_name("namespace", ns)?;
                if namespace == Namespace::All {
                    return Err(ParseError::invalid("use either `-n` or `-A`, not both."));
                }
                namespace = Namespace::Named(ns.to_string());
            }
            ("all-namespaces", v) if v != Some("false") => {
                if matches!(namespace, Namespace::Named(_)) {
                    return Err(ParseError::invalid("use either `-n` or `-A`, not both."));
                }
                namespace = Namespace::All;
            }
            ("output", Some(o)) => {
                check_output(o)?;
                output = Some(o.to_string());
            }
            ("filename", Some(path)) => {
                check_repo_path(path)?;
                files.push(path.to_string());
            }
            _ => {}
        }
        flags.push(match value {
            Some(v) => format!("--{}={v}", spec.long),
            None => format!("--{}", spec.long),
        });
    }

    check_secrets(verb, &positionals, output.as_deref())?;
    check_shape(verb, &positionals, &files, &flags)?;

    Ok(Kubectl {
        cluster,
        namespace,
        verb,
        tier: verb.tier,
        positionals,
        flags,
        files,
    })
}

/// Secrets are never readable in content, whatever the role.
fn check_secrets(
    verb: &VerbSpec,
    positionals: &[String],
    output: Option<&str>,
) -> Result<(), ParseError> {
    if !positionals.iter().any(|p| names_secrets(p)) {
        return Ok(());
    }
    match verb.words {
        ["describe"] => Err(ParseError::refused(
            "Secrets can't be described through Slipway: their data is never shown in chat. \
             `/kubectl get secrets` lists their names.",
        )),
        ["get"] if output.is_some_and(|o| o != "wide" && o != "name") => Err(ParseError::refused(
            "Secret contents are never shown through Slipway, whatever your role. \
             `/kubectl get secrets` (without `-o`) lists their names.",
        )),
        _ => Ok(()),
    }
}

fn check_shape(
    verb: &VerbSpec,
    positionals: &[String],
    files: &[String],
    flags: &[String],
) -> Result<(), ParseError> {
    let has = |long: &str| {
        flags
            .iter()
            .any(|f| f == &format!("--{long}") || f.starts_with(&format!("--{long}=")))
    };
    let from_files = !files.is_empty();
    let selected = has("selector") || has("field-selector");
    if positionals.len() < verb.min_positionals && !from_files {
        return Err(ParseError::invalid(format!(
            "`kubectl {}` needs {} argument(s), for example `/kubectl {}`.",
            verb.name(),
            verb.min_positionals,
            example(verb)
        )));
    }
    match verb.words {
        ["apply"] if !from_files => Err(ParseError::invalid(
            "`kubectl apply` needs `-f <path in the GitOps repo>`.",
        )),
        ["apply"] if !positionals.is_empty() => Err(ParseError::invalid(
            "`kubectl apply` takes only `-f <path>`; remove the other words.",
        )),
        ["scale"] if !has("replicas") => {
            Err(ParseError::invalid("`kubectl scale` needs `--replicas=N`."))
        }
        ["patch"] if !has("patch") => {
            Err(ParseError::invalid("`kubectl patch` needs `-p '<patch>'`."))
        }
        ["delete"] if positionals.is_empty() && !from_files => Err(ParseError::invalid(
            "`kubectl delete` needs the resources to delete, for example `deployment/old-api`.",
        )),
        ["delete"] if selected => Err(ParseError::refused(
            "`kubectl delete` by selector is too broad to confirm; name the resources.",
        )),
        ["cordon" | "uncordon"] if positionals.is_empty() && !selected => Err(ParseError::invalid(
            "name the node, for example `/kubectl cordon node-1`.",
        )),
        ["logs"] if positionals.is_empty() && !selected => Err(ParseError::invalid(
            "which pod? For example `/kubectl logs api-7d9f -n web --tail=100`.",
        )),
        _ => Ok(()),
    }
}

fn example(verb: &VerbSpec) -> &'static str {
    match verb.words {
        ["get"] => "get pods -n web",
        ["describe"] => "describe deployment api -n web",
        ["top"] => "top pods -n web",
        ["explain"] => "explain deployment.spec",
        ["scale"] => "scale deployment/api --replicas=3 -n web",
        ["label" | "annotate"] => "label pod api-1 tier=web -n web",
        ["drain"] => "drain node-1 --ignore-daemonsets",
        _ => "rollout status deployment/api -n web",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse::ParseErrorKind;

    fn words(s: &str) -> Vec<String> {
        crate::tokenize::tokenize(s).unwrap()
    }
    fn ok(s: &str) -> Kubectl {
        parse(words(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn err(s: &str) -> ParseError {
        parse(words(s)).expect_err(s)
    }

    #[test]
    fn read_verbs() {
        let k = ok("get pods -n web");
        assert_eq!(k.argv(), ["kubectl", "get", "pods", "--namespace=web"]);
        assert_eq!(k.tier, Tier::Read);
        assert_eq!(k.namespace, Namespace::Named("web".into()));
        assert_eq!(
            ok("@production get pods -A").cluster.as_deref(),
            Some("production")
        );
        assert_eq!(ok("get pods -A").namespace, Namespace::All);
        assert_eq!(ok("rollout status deployment/api -n web").tier, Tier::Read);
        assert_eq!(
            ok("logs api-1 -n web --tail=50 -c app").argv(),
            [
                "kubectl",
                "logs",
                "api-1",
                "--namespace=web",
                "--tail=50",
                "--container=app"
            ]
        );
        assert_eq!(ok("get pods -owide").flags, ["--output=wide"]);
        assert_eq!(
            ok("get pods -n=web").namespace,
            Namespace::Named("web".into())
        );
    }

    #[test]
    fn change_and_destructive_verbs() {
        assert_eq!(
            ok("scale deploy/api --replicas=3 -n web").tier,
            Tier::Change
        );
        assert_eq!(ok("rollout restart deploy/api -n web").tier, Tier::Change);
        assert_eq!(
            ok("apply -f apps/api/staging/deploy.yaml").files,
            ["apps/api/staging/deploy.yaml"]
        );
        assert_eq!(ok("delete deploy/old -n web").tier, Tier::Destructive);
        assert_eq!(
            ok("drain node-1 --ignore-daemonsets").tier,
            Tier::Destructive
        );
        assert_eq!(
            ok("patch deploy/api -p '{\"spec\":{\"replicas\":2}}' -n web").flags[0],
            "--patch={\"spec\":{\"replicas\":2}}"
        );
    }

    #[test]
    fn refused_verbs() {
        for v in [
            "exec -it api-1 -- sh",
            "cp a b",
            "port-forward svc/api 80",
            "proxy",
            "attach x",
            "debug node/x",
            "edit deploy/api",
            "run x --image=y",
            "auth whoami",
        ] {
            assert_eq!(err(v).kind, ParseErrorKind::Refused, "{v}");
        }
        assert_eq!(err("create ns x").kind, ParseErrorKind::Unknown);
        assert_eq!(err("rollout undo deploy/api").kind, ParseErrorKind::Unknown);
    }

    #[test]
    fn identity_flags_refused() {
        for f in IDENTITY_FLAGS {
            let e = err(&format!("get pods --{f}=x"));
            assert_eq!(e.kind, ParseErrorKind::Refused, "{f}");
            let e = err(&format!("get pods --{f} x"));
            assert_eq!(e.kind, ParseErrorKind::Refused, "{f}");
        }
        assert_eq!(
            err("get pods -s https://evil").kind,
            ParseErrorKind::Refused
        );
    }

    #[test]
    fn unknown_flags() {
        let e = err("get pods --frobnicate");
        assert_eq!(e.kind, ParseErrorKind::Unknown);
        assert!(e.message.contains("-n/--namespace"), "{e}");
        assert_eq!(err("get pods -w").kind, ParseErrorKind::Refused);
        assert_eq!(err("logs api -f").kind, ParseErrorKind::Refused);
        assert_eq!(err("get pods -- x").kind, ParseErrorKind::Unknown);
        // A flag valid for one verb is unknown on another.
        assert_eq!(err("get pods --replicas=3").kind, ParseErrorKind::Unknown);
    }

    #[test]
    fn secrets_never_readable() {
        for s in [
            "get secret db -o yaml",
            "get secrets -o json -n prod",
            "get secret/db -ojsonpath={.data}",
            "get pods,secrets -o yaml",
            "get secrets.v1 db -o custom-columns=X:.data",
            "describe secret db",
            "describe secrets -n web",
        ] {
            assert_eq!(err(s).kind, ParseErrorKind::Refused, "{s}");
        }
        assert_eq!(ok("get secrets -n web").tier, Tier::Read);
        assert_eq!(ok("get configmap x -o yaml").tier, Tier::Read);
        assert!(names_secrets("Secrets"));
        assert!(!names_secrets("secretproviderclasses"));
    }

    #[test]
    fn values_checked() {
        assert_eq!(err("get pods -n 'web; id'").kind, ParseErrorKind::Invalid);
        assert_eq!(err("get pods -n --token=x").kind, ParseErrorKind::Invalid);
        assert_eq!(
            err("get pods -o go-template={{.}}").kind,
            ParseErrorKind::Refused
        );
        assert_eq!(
            err("get pods -o jsonpath-file=/etc/passwd").kind,
            ParseErrorKind::Refused
        );
        for p in [
            "/etc/passwd",
            "../x.yaml",
            "a/../../b",
            "-",
            "https://x/y.yaml",
        ] {
            assert_eq!(
                err(&format!("apply -f {p}")).kind,
                ParseErrorKind::Refused,
                "{p}"
            );
        }
        assert_eq!(err("get pods -n web -A").kind, ParseErrorKind::Invalid);
        assert_eq!(err("@Prod get pods").kind, ParseErrorKind::Invalid);
        assert_eq!(err("get pods @prod").kind, ParseErrorKind::Invalid);
    }

    #[test]
    fn shapes() {
        assert_eq!(err("get").kind, ParseErrorKind::Invalid);
        assert_eq!(err("scale deploy/api").kind, ParseErrorKind::Invalid);
        assert_eq!(err("apply").kind, ParseErrorKind::Invalid);
        assert_eq!(err("delete pods -l app=x").kind, ParseErrorKind::Refused);
        assert_eq!(err("").kind, ParseErrorKind::Invalid);
    }

    #[test]
    fn every_verb_flag_is_defined() {
        for verb in VERBS {
            for f in verb.flags {
                assert!(
                    FLAGS.iter().any(|s| s.long == *f),
                    "{} lists undefined flag {f}",
                    verb.name()
                );
            }
        }
    }
}
