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

pub mod manifest;
mod scope;
mod tables;
#[cfg(test)]
mod tests;

use super::parse::{ParseError, check_name, truncate};
use super::{Namespace, Tier};
pub use manifest::{ManifestObject, dir_reads, objects as manifest_objects};
pub use scope::{DiscoveredKind, KindScopes, Scope};
pub use tables::{FLAGS, FlagSpec, IDENTITY_FLAGS, REFUSED_FLAGS, REFUSED_VERBS, VERBS, VerbSpec};
use tables::{OUTPUT_FORMATS, OUTPUT_PREFIXES};

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
    /// The argv. Without `-n` or `-A` it says `--namespace=default` itself: what policy
    /// authorised must be what runs, whatever namespace a kubeconfig's context defaults to.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["kubectl".to_string()];
        argv.extend(self.verb.words.iter().map(|w| (*w).to_string()));
        argv.extend(self.positionals.iter().cloned());
        argv.extend(self.flags.iter().cloned());
        if self.namespace == Namespace::Default {
            argv.push("--namespace=default".into());
        }
        argv
    }

    /// The resource kinds the command names, lower-cased as typed (`pods`, `deploy.v1.apps`).
    /// Verbs that imply a kind (`logs`, `cordon`, …) report it. `apply`/`delete -f` report none:
    /// their objects are authorised one by one from the files.
    pub fn kinds(&self) -> Vec<String> {
        match self.verb.words {
            ["cordon" | "uncordon" | "drain"] => vec!["nodes".into()],
            ["events"] => vec!["events".into()],
            ["logs"] => {
                let named: Vec<String> = self
                    .positionals
                    .iter()
                    .filter_map(|p| p.split_once('/').map(|(k, _)| k.to_ascii_lowercase()))
                    .collect();
                if named.is_empty() {
                    vec!["pods".into()]
                } else {
                    named
                }
            }
            ["get" | "describe" | "delete" | "label" | "annotate" | "patch" | "scale" | "top"]
            | ["rollout", _] => self.typed_kinds(),
            _ => Vec::new(),
        }
    }

    /// `kind/name …` or `kind[,kind…] [name…]`.
    fn typed_kinds(&self) -> Vec<String> {
        let Some(first) = self.positionals.first() else {
            return Vec::new();
        };
        let lower = |s: &str| s.to_ascii_lowercase();
        if first.contains('/') {
            return self
                .positionals
                .iter()
                .map(|p| lower(p.split_once('/').map_or(p.as_str(), |(k, _)| k)))
                .collect();
        }
        first.split(',').map(lower).collect()
    }

    /// The object names the command names (not label pairs).
    fn names(&self) -> Vec<&str> {
        let first_is_kind = self.positionals.first().is_some_and(|p| !p.contains('/'));
        self.positionals
            .iter()
            .skip(usize::from(first_is_kind))
            .map(|p| p.split_once('/').map_or(p.as_str(), |(_, n)| n))
            .filter(|p| !p.contains('=') && !p.ends_with('-'))
            .collect()
    }

    /// The namespace policy must see, given which kinds are namespaced: the one the command names
    /// when every kind lives in namespaces; the namespace itself for `… namespace <name>`;
    /// otherwise cluster scope (which no namespace pattern grants, and every restriction on the
    /// cluster covers, so a mix is judged by its strictest part).
    pub fn target_namespace(&self, scopes: &KindScopes) -> Namespace {
        let kinds = self.kinds();
        if kinds
            .iter()
            .all(|k| k == "all" || scopes.scope_of(k) == Scope::Namespaced)
        {
            return self.namespace.clone();
        }
        let names = self.names();
        let only_namespaces = kinds
            .iter()
            .all(|k| matches!(k.split('.').next(), Some("namespaces" | "namespace" | "ns")));
        match names.as_slice() {
            [name] if only_namespaces && kinds.len() <= 1 => Namespace::Named((*name).to_string()),
            _ => Namespace::ClusterScoped,
        }
    }

    /// `--recursive` was given (`-f <dir>` then reads subdirectories too).
    pub fn recursive(&self) -> bool {
        self.flags
            .iter()
            .any(|f| f == "--recursive" || f == "--recursive=true")
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
    let mut args = Args {
        namespace: Namespace::Default,
        positionals: Vec::new(),
        flags: Vec::new(),
        files: Vec::new(),
        output: None,
    };
    while let Some(word) = rest.next() {
        let Some((spec, inline)) = read_flag(verb, &word)? else {
            args.positionals.push(word);
            continue;
        };
        let value = flag_value(spec, inline, &mut rest)?;
        args.add(spec, value)?;
    }
    check_secrets(verb, &args.positionals, args.output.as_deref())?;
    check_shape(verb, &args.positionals, &args.files, &args.flags)?;
    Ok(Kubectl {
        cluster,
        namespace: args.namespace,
        verb,
        tier: verb.tier,
        positionals: args.positionals,
        flags: args.flags,
        files: args.files,
    })
}

/// What the words after the verb say, as they are read.
struct Args {
    namespace: Namespace,
    positionals: Vec<String>,
    /// Every flag, rewritten as `--long[=value]`.
    flags: Vec<String>,
    /// `-f` paths, inside the repository.
    files: Vec<String>,
    output: Option<String>,
}

impl Args {
    /// Record one allowed flag and its value; the namespace, output and file flags are checked.
    fn add(&mut self, spec: &FlagSpec, value: Option<String>) -> Result<(), ParseError> {
        match (spec.long, value.as_deref()) {
            ("namespace", Some(ns)) => {
                check_name("namespace", ns)?;
                if self.namespace == Namespace::All {
                    return Err(ParseError::invalid("use either `-n` or `-A`, not both."));
                }
                self.namespace = Namespace::Named(ns.to_string());
            }
            ("all-namespaces", v) if v != Some("false") => {
                if matches!(self.namespace, Namespace::Named(_)) {
                    return Err(ParseError::invalid("use either `-n` or `-A`, not both."));
                }
                self.namespace = Namespace::All;
            }
            ("output", Some(o)) => {
                check_output(o)?;
                self.output = Some(o.to_string());
            }
            ("filename", Some(path)) => {
                check_repo_path(path)?;
                self.files.push(path.to_string());
            }
            _ => {}
        }
        self.flags.push(match value {
            Some(v) => format!("--{}={v}", spec.long),
            None => format!("--{}", spec.long),
        });
        Ok(())
    }
}

/// The flag `word` names for `verb` and its inline value; `None` for a positional argument.
fn read_flag(
    verb: &VerbSpec,
    word: &str,
) -> Result<Option<(&'static FlagSpec, Option<String>)>, ParseError> {
    if word == "--" {
        return Err(ParseError::unknown(
            "`--` is not supported; pass arguments directly.",
        ));
    }
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        return Ok(Some((flag_by_long(verb, name)?, value)));
    }
    let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
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
                truncate(word, 40)
            )));
        }
    };
    Ok(Some((spec, value)))
}

/// A flag's value: inline or the next word for a flag that takes one; for a switch, nothing or
/// `true`/`false`.
fn flag_value(
    spec: &FlagSpec,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<Option<String>, ParseError> {
    if spec.takes_value {
        return match inline.or_else(|| rest.next()) {
            Some(v) => Ok(Some(v)),
            None => Err(ParseError::invalid(format!(
                "`--{}` needs a value.",
                spec.long
            ))),
        };
    }
    match inline.as_deref() {
        None | Some("true" | "false") => Ok(inline),
        Some(_) => Err(ParseError::invalid(format!(
            "`--{}` takes no value (or `=true`/`=false`).",
            spec.long
        ))),
    }
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
