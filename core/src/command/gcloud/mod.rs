//! `/gcloud <project-alias> <command path> [flags]`: the gcloud CLI, wrapped and read-only.
//!
//! Grammar:
//! ```text
//! gcloud := alias { word | flag }
//! flag   := "--" name [ "=" value ] | "--" name value
//! ```
//! The words after the alias, flags set aside, are the command path (an allowlisted group and
//! one of its verbs, the longest group that matches) and then its positionals. The alias maps
//! to a project and a read-only service account in the bridge's configuration; the person never
//! passes `--project`, an account or a file. Flags are rewritten as `--name=value`, so no value
//! can be read back as a flag, and `--format`, `--filter`, `--flatten` and `--sort-by` are
//! checked by [`expr`]. Commands whose output holds secrets carry the JSON fields the bridge
//! strips ([`strip_fields`]) and always run with `--format=json`.

mod expr;
mod strip;
pub mod tables;

use super::parse::{ParseError, ParseErrorKind, check_name, truncate};
pub use expr::MAX_EXPR_LEN;
pub use strip::strip_fields;
pub use tables::{
    FLAGS, FlagKind, GROUPS, GcloudFlag, GcloudGroup, MUTATING_PREFIXES, MUTATING_VERBS,
    OUTPUT_FLAGS, Positionals, REFUSED_COMMANDS, REFUSED_FLAGS, REFUSED_VALUES,
};

/// A parsed `/gcloud` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gcloud {
    /// The project alias: the policy's `gcp:<alias>`, the bridge's `gcp_projects.<alias>`.
    pub alias: String,
    /// The command group and verb, for example `["compute", "instances", "list"]`.
    pub path: Vec<String>,
    /// Resource names, or the `logging read` query.
    pub positionals: Vec<String>,
    /// Flags as `--name` or `--name=value`.
    pub flags: Vec<String>,
    /// JSON fields to remove from the output before it is shown; non-empty means the argv
    /// asks for `--format=json`.
    pub strip: &'static [&'static str],
    /// The command's positional is the project itself (`projects describe`).
    pub project_positional: bool,
}

impl Gcloud {
    /// The argv as shown and audited: without the project, which comes from configuration.
    pub fn argv(&self) -> Vec<String> {
        self.build(None)
    }

    /// The argv to run in the GCP project `project` (the alias's `gcp_projects.<alias>.project`):
    /// `--project=<project>` last, and the project as the positional of `projects …` commands.
    /// `Err` is a sentence for the requester: a service account named in the command belongs
    /// to another project.
    pub fn argv_in(&self, project: &str) -> Result<Vec<String>, String> {
        let suffix = format!("@{project}.iam.gserviceaccount.com");
        for word in self.positionals.iter().chain(&self.flags) {
            let value = word.split_once('=').map_or(word.as_str(), |(_, v)| v);
            for email in value.split(',') {
                if email.ends_with(".iam.gserviceaccount.com") && !email.ends_with(&suffix) {
                    return Err(format!(
                        "`{}` belongs to another project than `{}`'s, so nothing was run; \
                         `/gcloud` reads only the alias's own project.",
                        truncate(email, 80),
                        self.alias
                    ));
                }
            }
        }
        Ok(self.build(Some(project)))
    }

    fn build(&self, project: Option<&str>) -> Vec<String> {
        let mut argv = vec!["gcloud".to_string()];
        argv.extend(self.path.iter().cloned());
        if self.project_positional
            && let Some(p) = project
        {
            argv.push(p.to_string());
        }
        argv.extend(self.positionals.iter().cloned());
        argv.extend(self.flags.iter().cloned());
        if !self.strip.is_empty() {
            argv.push("--format=json".into());
        }
        if let Some(p) = project {
            argv.push(format!("--project={p}"));
        }
        argv
    }
}

const USAGE: &str = "usage: `/gcloud <project-alias> <group…> <verb> [name…] [--flag=value…]`, \
                     for example `/gcloud gcp-staging compute instances list`";

/// Parse the words after `/gcloud`.
pub fn parse(words: Vec<String>) -> Result<Gcloud, ParseError> {
    let mut it = words.into_iter();
    let Some(alias) = it.next() else {
        return Err(ParseError::invalid(USAGE));
    };
    if alias.starts_with('-') {
        return Err(ParseError::invalid(format!(
            "the project alias comes first; {USAGE}"
        )));
    }
    check_name("GCP project alias", &alias)?;
    let args: Vec<String> = it.collect();
    // A refused command or a mutating verb says so whatever flags follow it.
    let leading: Vec<String> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if let Err(e) = command(&leading)
        && e.kind == ParseErrorKind::Refused
    {
        return Err(e);
    }
    let (words, flags) = split_flags(args)?;
    let (group, verb_at) = command(&words)?;
    let positionals = words[verb_at + 1..].to_vec();
    check_positionals(group, &positionals)?;
    if !group.strip.is_empty()
        && let Some(f) = flags.iter().find(|f| {
            let name = f.trim_start_matches('-');
            let name = name.split_once('=').map_or(name, |(n, _)| n);
            OUTPUT_FLAGS.contains(&name)
        })
    {
        return Err(ParseError::refused(format!(
            "`gcloud {} {}` output holds secrets that Slipway removes before showing it, so \
             Slipway chooses its format and `{}` is not allowed: a filter or sort could test \
             the removed fields' values.",
            group.name(),
            words[verb_at],
            truncate(f, 40)
        )));
    }
    Ok(Gcloud {
        alias,
        path: words[..=verb_at].to_vec(),
        positionals,
        flags,
        strip: group.strip,
        project_positional: group.positionals == Positionals::Project,
    })
}

/// Set the flags apart from the other words, each checked and rewritten as `--name=value`.
fn split_flags(args: Vec<String>) -> Result<(Vec<String>, Vec<String>), ParseError> {
    let mut words = Vec::new();
    let mut flags = Vec::new();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            words.push(arg);
            continue;
        }
        let Some(long) = arg.strip_prefix("--").filter(|n| !n.is_empty()) else {
            return Err(ParseError::unknown(format!(
                "`{}`: gcloud flags are written `--name=value`. See `/slipway help gcloud`.",
                truncate(&arg, 40)
            )));
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (long.to_string(), None),
        };
        let spec = flag_spec(&name)?;
        if spec.kind == FlagKind::Switch {
            if inline.is_some() {
                return Err(ParseError::invalid(format!("`--{name}` takes no value.")));
            }
            flags.push(format!("--{name}"));
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match it.next_if(|w| !w.starts_with('-')) {
                Some(v) => v,
                None => {
                    return Err(ParseError::invalid(format!(
                        "`--{name}` needs a value: write `--{name}=VALUE`."
                    )));
                }
            },
        };
        check_value(spec, &value)?;
        flags.push(format!("--{name}={value}"));
    }
    Ok((words, flags))
}

/// The allowed flag called `name`, or why not.
fn flag_spec(name: &str) -> Result<&'static GcloudFlag, ParseError> {
    if let Some((_, why)) = REFUSED_FLAGS.iter().find(|(n, _)| *n == name) {
        return Err(ParseError::refused(format!(
            "`--{name}` is not allowed: {why}."
        )));
    }
    FLAGS.iter().find(|f| f.name == name).ok_or_else(|| {
        ParseError::unknown(format!(
            "`--{}` is not a flag Slipway passes to gcloud. Allowed: {}.",
            truncate(name, 40),
            FLAGS
                .iter()
                .map(|f| format!("`--{}`", f.name))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// A flag's value has the shape its kind allows.
fn check_value(spec: &GcloudFlag, value: &str) -> Result<(), ParseError> {
    let name = spec.name;
    if let Some((_, _, why)) = REFUSED_VALUES
        .iter()
        .find(|(n, v, _)| *n == name && *v == value)
    {
        return Err(ParseError::refused(format!(
            "`--{name}={value}` is not allowed: {why}."
        )));
    }
    let ok = match spec.kind {
        FlagKind::Format => return expr::check_format(value),
        FlagKind::Filter => return expr::check_filter(value),
        FlagKind::Keys => return expr::check_keys(name, value, false),
        FlagKind::SortKeys => return expr::check_keys(name, value, true),
        FlagKind::Switch => true,
        FlagKind::Name => value.split(',').all(is_resource_name),
        FlagKind::Number => {
            value == "unlimited"
                || (!value.is_empty()
                    && value.len() <= 9
                    && value.bytes().all(|b| b.is_ascii_digit()))
        }
        FlagKind::Duration => value
            .strip_suffix(['s', 'm', 'h', 'd'])
            .is_some_and(|n| (1..=6).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())),
        FlagKind::Choice(choices) => choices.contains(&value),
    };
    if ok {
        Ok(())
    } else {
        Err(ParseError::invalid(format!(
            "`--{name}={}` is not a valid value{}.",
            truncate(value, 60),
            match spec.kind {
                FlagKind::Choice(c) => format!("; use one of {}", c.join(", ")),
                FlagKind::Name => "; names are letters, digits, `-`, `_`, `.` and `@` \
                                   (never a path or URL: those can name another project)"
                    .into(),
                _ => String::new(),
            }
        )))
    }
}

/// A resource in the alias's project, by name: no path or URL, which could name another
/// project. Buckets are written `gs://name` and predefined roles `roles/name`.
fn is_resource_name(s: &str) -> bool {
    let name = s
        .strip_prefix("gs://")
        .or_else(|| s.strip_prefix("roles/"))
        .unwrap_or(s);
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'@'))
}

/// The allowlisted group the words start with (the longest) and the index of its verb.
fn command(words: &[String]) -> Result<(&'static GcloudGroup, usize), ParseError> {
    check_refused(words)?;
    let starts = |path: &[&str]| {
        words.len() >= path.len() && path.iter().zip(words).all(|(p, w)| *p == w.as_str())
    };
    let Some(group) = GROUPS
        .iter()
        .filter(|g| starts(g.path))
        .max_by_key(|g| g.path.len())
    else {
        let first = words.first().map_or("", String::as_str);
        return Err(if first.is_empty() {
            ParseError::invalid(USAGE)
        } else {
            ParseError::unknown(format!(
                "`gcloud {}` is not available through Slipway. Command groups: {}.",
                truncate(&words.join(" "), 60),
                GROUPS
                    .iter()
                    .map(GcloudGroup::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
    };
    let at = group.path.len();
    let Some(verb) = words.get(at) else {
        return Err(ParseError::invalid(format!(
            "`gcloud {}` needs a verb. Allowed: {}.",
            group.name(),
            allowed_under(group.path)
        )));
    };
    if group.verbs.contains(&verb.as_str()) {
        return Ok((group, at));
    }
    Err(verb_refused(group, verb))
}

/// A command on the refused list (the longest matching prefix decides).
fn check_refused(words: &[String]) -> Result<(), ParseError> {
    let hit = REFUSED_COMMANDS
        .iter()
        .filter(|(path, _)| {
            words.len() >= path.len() && path.iter().zip(words).all(|(p, w)| *p == w.as_str())
        })
        .max_by_key(|(path, _)| path.len());
    match hit {
        Some((path, why)) => Err(ParseError::refused(format!(
            "`gcloud {}` is not allowed: {why}.",
            path.join(" ")
        ))),
        None => Ok(()),
    }
}

fn verb_refused(group: &GcloudGroup, verb: &str) -> ParseError {
    let mutating =
        MUTATING_VERBS.contains(&verb) || MUTATING_PREFIXES.iter().any(|p| verb.starts_with(p));
    if mutating {
        ParseError::refused(format!(
            "`gcloud {} {verb}` changes GCP, and `/gcloud` only reads. GCP changes go through \
             the GitOps repository: change the stack, then `/tf apply <stack>`.",
            group.name()
        ))
    } else {
        ParseError::unknown(format!(
            "`gcloud {} {}` is not an allowed read. Allowed under `gcloud {}`: {}.",
            group.name(),
            truncate(verb, 40),
            group.name(),
            allowed_under(group.path)
        ))
    }
}

/// Every allowed command under `prefix`, for messages.
fn allowed_under(prefix: &[&str]) -> String {
    GROUPS
        .iter()
        .filter(|g| g.path.starts_with(prefix))
        .map(|g| {
            let rest = g.path[prefix.len()..].join(" ");
            let verbs = g.verbs.join("|");
            if rest.is_empty() {
                format!("`{verbs}`")
            } else {
                format!("`{rest} {verbs}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Positionals fit the group: names in the alias's project, none where the project is the
/// positional, one query for `logging read`.
fn check_positionals(group: &GcloudGroup, positionals: &[String]) -> Result<(), ParseError> {
    match group.positionals {
        Positionals::Project if !positionals.is_empty() => Err(ParseError::refused(format!(
            "`gcloud {}` takes no project: the project comes from the alias.",
            group.name()
        ))),
        Positionals::LogQuery if positionals.len() > 1 => Err(ParseError::invalid(
            "`logging read` takes one query: put it in quotes, for example \
             `/gcloud gcp-staging logging read \"severity>=ERROR\" --limit=20`.",
        )),
        Positionals::LogQuery => match positionals.first() {
            Some(q) if q.len() > MAX_EXPR_LEN => Err(ParseError::refused(format!(
                "the log query is {} characters long; Slipway accepts up to {MAX_EXPR_LEN}.",
                q.len()
            ))),
            _ => Ok(()),
        },
        Positionals::Names | Positionals::Project => {
            match positionals.iter().find(|p| !is_resource_name(p)) {
                Some(p) => Err(ParseError::refused(format!(
                    "`{}` is not a resource name. Name resources in the alias's project by \
                     name (buckets as `gs://name`): a path or URL could name another project.",
                    truncate(p, 60)
                ))),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
