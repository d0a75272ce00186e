//! Help text and `docs/commands.md`, generated from the same tables the parsers use, so the two
//! can't drift. [`spec`] matches every [`Family`] exhaustively: a new family without help is a
//! compile error.

use std::fmt::Write as _;

use crate::command::{Family, Tier, aws, gcloud, kubectl};

/// Help for one slash-command family.
#[derive(Debug)]
pub struct CommandSpec {
    pub family: Family,
    pub usage: &'static [&'static str],
    pub summary: &'static str,
    /// Which tiers its commands fall in, and why.
    pub tiers: &'static str,
    pub examples: &'static [&'static str],
}

/// The catalog entry of a family.
pub fn spec(family: Family) -> CommandSpec {
    match family {
        Family::Kubectl => CommandSpec {
            family,
            usage: &["/kubectl [@cluster] <verb> [args…] [--apply]"],
            summary: "Run kubectl against a configured cluster. Reads run directly; changes become pull requests.",
            tiers: "read verbs run directly; apply/scale/patch/label/annotate/cordon/rollout restart are `change`; delete and drain are `destructive`.",
            examples: &[
                "/kubectl get pods -n web",
                "/kubectl @production get deploy -n api",
                "/kubectl scale deployment/api --replicas=3 -n web --apply",
            ],
        },
        Family::Tf => CommandSpec {
            family,
            usage: &["/tf plan <stack>", "/tf apply <stack> [--apply]"],
            summary: "Plan a terraform stack from the GitOps repo, or request an apply of the pinned plan.",
            tiers: "`plan` is read; `apply` is change.",
            examples: &["/tf plan network", "/tf apply app --apply"],
        },
        Family::Aws => CommandSpec {
            family,
            usage: &["/aws <profile> <service> <operation> [--param value…]"],
            summary: "Run an allowlisted read-only AWS CLI operation with the profile's read-only role.",
            tiers: "read only; everything else is refused.",
            examples: &[
                "/aws staging-readonly ec2 describe-instances",
                "/aws prod-readonly sts get-caller-identity",
            ],
        },
        Family::Gcloud => GCLOUD,
        Family::Deploy => CommandSpec {
            family,
            usage: &["/deploy <service> <env> [version] [--apply]"],
            summary: "Deploy a service: without a version, the newest successful CI build. Opens a pull request.",
            tiers: "change.",
            examples: &["/deploy api staging", "/deploy api staging v1.4.2 --apply"],
        },
        Family::Silence => SILENCE,
        Family::Slipway => SLIPWAY,
    }
}

/// `/gcloud`, like [`SILENCE`].
const GCLOUD: CommandSpec = CommandSpec {
    family: Family::Gcloud,
    usage: &["/gcloud <project-alias> <group…> <verb> [name…] [--flag=value…]"],
    summary: "Run an allowlisted read-only gcloud command in a project alias, as its read-only service account.",
    tiers: "read only; changes go through the GitOps repository and `/tf apply`; everything else is refused.",
    examples: &[
        "/gcloud gcp-staging compute instances list",
        "/gcloud gcp-prod compute disks list --format=\"table(name, zone, sizeGb)\"",
    ],
};

/// `/silence`, kept beside `spec` (whose match still names every family) so it reads as a table.
const SILENCE: CommandSpec = CommandSpec {
    family: Family::Silence,
    usage: &[
        "/silence [@env] <matcher…> <duration> [comment]",
        "/silence [@env] list",
        "/silence [@env] expire <id>",
    ],
    summary: "Create, list or expire Alertmanager silences. Durations are capped per role.",
    tiers: "create and expire are operate; list is read.",
    examples: &[
        "/silence alertname=HighLatency service=api 2h deploying",
        "/silence list",
    ],
};

/// `/slipway`, like [`SILENCE`].
const SLIPWAY: CommandSpec = CommandSpec {
    family: Family::Slipway,
    usage: &[
        "/slipway help [command]",
        "/slipway whoami",
        "/slipway explain <command>",
        "/slipway link github",
        "/slipway link sso",
    ],
    summary: "Help, your identity and role, why a command would be allowed or denied, and linking your GitHub account or your company login.",
    tiers: "none: these touch no infrastructure.",
    examples: &[
        "/slipway whoami",
        "/slipway explain /kubectl get secrets -n prod",
    ],
};

/// The help text shown in Slack for `/slipway help [topic]`.
pub fn help_text(topic: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(family) = topic.and_then(Family::from_slash) {
        let s = spec(family);
        let _ = writeln!(out, "*{}*: {}", family.slash(), s.summary);
        for u in s.usage {
            let _ = writeln!(out, "• `{u}`");
        }
        let _ = writeln!(out, "Tiers: {}", s.tiers);
        if family == Family::Gcloud {
            let _ = writeln!(
                out,
                "Commands: {}",
                gcloud::GROUPS
                    .iter()
                    .map(|g| format!("`{} {}`", g.name(), g.verbs.join("|")))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if family == Family::Kubectl {
            let _ = writeln!(
                out,
                "Verbs: {}",
                kubectl::VERBS
                    .iter()
                    .map(|v| format!("`{}` ({})", v.name(), v.tier))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(out, "Examples: {}", ticked(s.examples, ", "));
    } else {
        out.push_str("*Slipway commands*\n");
        for family in Family::ALL {
            let s = spec(family);
            let _ = writeln!(out, "• `{}`: {}", s.usage[0], s.summary);
        }
        out.push_str(
            "Changes are dry-run until you add `--apply`, which opens a pull request for review. \
             `/slipway help <command>` for details.",
        );
    }
    out
}

/// `docs/commands.md`: the catalog with safety tiers.
pub fn commands_markdown() -> String {
    let mut md = String::from(
        "<!-- Generated by `slipway docs generate` from core/src/catalog.rs. Do not edit. -->\n\
         # Command catalog\n\n\
         Every command has a safety tier:\n\n\
         | tier | what happens |\n|---|---|\n\
         | `read` | runs directly with read-only credentials |\n\
         | `operate` | a direct, audited state change (an Alertmanager silence) |\n\
         | `change` | dry-run by default; `--apply` opens a reviewed pull request |\n\
         | `destructive` | like `change`, and the requester must type the resource name in a modal first |\n\n\
         Text is split into words without a shell: quotes group words, and an unquoted `;`, `|`, `&`, \
         `&&`, `<`, `>`, backtick, `$(` or line break is an error. Verbs, flags and parameters are allowlists.\n\n",
    );
    for family in Family::ALL {
        let s = spec(family);
        let _ = writeln!(md, "## `{}`\n\n{}\n", family.slash(), s.summary);
        for u in s.usage {
            let _ = writeln!(md, "- `{u}`");
        }
        let _ = writeln!(md, "\nTiers: {}\n\nExamples:\n", s.tiers);
        for e in s.examples {
            let _ = writeln!(md, "- `{e}`");
        }
        md.push('\n');
        match family {
            Family::Kubectl => kubectl_markdown(&mut md),
            Family::Aws => aws_markdown(&mut md),
            Family::Gcloud => gcloud_markdown(&mut md),
            _ => {}
        }
    }
    md
}

fn kubectl_markdown(md: &mut String) {
    md.push_str("### Verbs\n\n| verb | tier | what it does | flags |\n|---|---|---|---|\n");
    for v in kubectl::VERBS {
        let flags = v
            .flags
            .iter()
            .map(|f| format!("`--{f}`"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            v.name(),
            v.tier,
            v.summary,
            flags
        );
    }
    md.push_str("\n### Refused verbs\n\n");
    for (verb, why) in kubectl::REFUSED_VERBS {
        let _ = writeln!(md, "- `{verb}`: {why}");
    }
    md.push_str("\n### Refused flags\n\nIdentity and target flags (the cluster comes from `@cluster` or policy): ");
    md.push_str(
        &kubectl::IDENTITY_FLAGS
            .iter()
            .map(|f| format!("`--{f}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    md.push_str("\n\n");
    for (flag, why) in kubectl::REFUSED_FLAGS {
        let _ = writeln!(md, "- `--{flag}`: {why}");
    }
    md.push_str(
        "\nSecret contents are never shown: `get secret` with `-o` other than `wide`/`name`, and \
         `describe secret`, are refused whatever the role.\n\n",
    );
}

fn aws_markdown(md: &mut String) {
    md.push_str("### Allowed operations (all `read`)\n\n| service | operations |\n|---|---|\n");
    for s in aws::SERVICES {
        let _ = writeln!(md, "| `{}` | {} |", s.name, ticked(s.operations, " "));
    }
    md.push_str("\n### Always refused\n\n");
    for (svc, op, why) in aws::REFUSED_OPERATIONS {
        let _ = writeln!(md, "- `{svc} {op}`: {why}");
    }
    for (p, why) in aws::REFUSED_PARAMS {
        let _ = writeln!(md, "- `--{p}`: {why}");
    }
    md.push_str("- any `file://`, `fileb://`, `http://` or `https://` argument\n");
    md.push_str(
        "- a `--query` that calls a JMESPath function (`reverse(…)`, `join`, `to_string`, …): \
         queries may only select and filter fields, because a function can reshape a secret so \
         that redaction no longer recognises it\n\n### Allowed parameters\n\n",
    );
    let mut params: Vec<&str> = aws::ALLOWED_PARAMS.to_vec();
    params.sort_unstable();
    params.dedup();
    md.push_str(
        &params
            .iter()
            .map(|p| format!("`--{p}`"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    md.push_str("\n\n");
}

fn gcloud_markdown(md: &mut String) {
    md.push_str(
        "### Allowed commands (all `read`)\n\n\
         The project comes from the alias (`--project` is added by the bridge), and so does the \
         read-only service account the bridge acts as.\n\n\
         | command | verbs | output |\n|---|---|---|\n",
    );
    for g in gcloud::GROUPS {
        let output = if g.strip.is_empty() {
            "as asked".to_string()
        } else {
            format!("JSON without {}", ticked(g.strip, ", "))
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {output} |",
            g.name(),
            ticked(g.verbs, " ")
        );
    }
    md.push_str("\n### Always refused\n\n");
    for (path, why) in gcloud::REFUSED_COMMANDS {
        let _ = writeln!(md, "- `{}`: {why}", path.join(" "));
    }
    let _ = writeln!(
        md,
        "- verbs that change GCP ({}, and any verb starting with {}): GCP changes go through the \
         GitOps repository and `/tf apply`",
        ticked(gcloud::MUTATING_VERBS, ", "),
        ticked(gcloud::MUTATING_PREFIXES, ", ")
    );
    for (f, why) in gcloud::REFUSED_FLAGS {
        let _ = writeln!(md, "- `--{f}`, in any spelling: {why}");
    }
    for (f, v, why) in gcloud::REFUSED_VALUES {
        let _ = writeln!(md, "- `--{f}={v}`: {why}");
    }
    gcloud_flags_markdown(md);
}

fn gcloud_flags_markdown(md: &mut String) {
    md.push_str("\n### Allowed flags\n\n| flag | value | what |\n|---|---|---|\n");
    for f in gcloud::FLAGS {
        let value = match f.kind {
            gcloud::FlagKind::Switch => "none".to_string(),
            gcloud::FlagKind::Name => "resource name(s), comma-separated".into(),
            gcloud::FlagKind::Number => "a number or `unlimited`".into(),
            gcloud::FlagKind::Format => "see below".into(),
            gcloud::FlagKind::Filter => "a filter without transforms".into(),
            gcloud::FlagKind::Keys => "field keys, comma-separated".into(),
            gcloud::FlagKind::SortKeys => "field keys, each optionally `~` (descending)".into(),
            gcloud::FlagKind::Duration => "digits and `s`, `m`, `h` or `d`".into(),
            gcloud::FlagKind::Choice(c) => ticked(c, " "),
        };
        let _ = writeln!(md, "| `--{}` | {value} | {} |", f.name, f.summary);
    }
    md.push_str(
        "\nFlags are passed as `--name=value`. Slipway matches full flag names only, and no \
         allowed name is the start of a refused one, so an abbreviation can't reach a refused \
         flag.\n\n\
         ### Output expressions\n\n\
         `--format` is `json`, `yaml`, `table(field, …)` or `value(field, …)`. A field is keys \
         joined by `.`, with `[N]` or `[]` for lists, then optionally `:label=NAME`, `:sort=N` \
         or `:reverse`. `--flatten` and `--sort-by` take plain keys (`~key` sorts descending). \
         gcloud's transforms (`.encode(base64)`, `.decode()`, `.basename()`, …) are refused \
         there and in `--filter` (a `(` after a key, a value or a word other than `AND`, `OR` \
         and `NOT`): like JMESPath functions for `/aws`, they can reshape a secret so that \
         redaction no longer recognises it.\n\n\
         ### Output that can hold secrets\n\n\
         Commands listed with \"JSON without …\" return fields that can hold secrets (instance \
         and project metadata: startup scripts and SSH keys; Cloud Run and Cloud Functions \
         environment variables; GKE's legacy client credentials). They always run with \
         `--format=json`, take none of `--format`, `--filter`, `--flatten`, `--sort-by` or \
         `--uri` (a filter could test a removed value), and the bridge removes those fields, \
         wherever they occur, before anything is shown.\n\n\
         ### Names and projects\n\n\
         Positionals and name-valued flags name resources in the alias's project: letters, \
         digits, `-`, `_`, `.` and `@`, buckets as `gs://name`, predefined roles as \
         `roles/name`. A path or URL, which could name another project, is refused, and so is \
         a service account of another project. `projects describe` and \
         `projects get-iam-policy` take no positional: the bridge supplies the project.\n\n\
         ### Log entries\n\n\
         `logging read` is allowed. Log entries are the project's operational output, like \
         `/kubectl logs` and `/aws logs filter-log-events`, and pass the same redactor as all \
         output. Which logs it reaches is the service account's role to decide \
         (`roles/logging.viewer` leaves out Data Access audit logs). Objects' contents \
         (`storage cat`) and serial consoles stay refused: they are data, not logs.\n\n",
    );
}

/// Each item in backticks, joined by `sep`.
fn ticked<T: std::fmt::Display>(items: impl IntoIterator<Item = T>, sep: &str) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Tiers of every kubectl verb, for tests and docs.
pub fn kubectl_tier(verb: &str) -> Option<Tier> {
    kubectl::VERBS
        .iter()
        .find(|v| v.name() == verb)
        .map(|v| v.tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help() {
        for f in Family::ALL {
            let s = spec(f);
            assert!(
                !s.usage.is_empty() && !s.summary.is_empty() && !s.examples.is_empty(),
                "{f}"
            );
            assert!(help_text(Some(&f.slash())).contains(s.summary));
        }
    }

    #[test]
    fn every_example_parses() {
        for f in Family::ALL {
            for e in spec(f).examples {
                crate::command::parse_line(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            }
        }
    }

    #[test]
    fn every_verb_has_a_summary() {
        for v in kubectl::VERBS {
            assert!(!v.summary.is_empty(), "{}", v.name());
        }
        assert_eq!(kubectl_tier("delete"), Some(Tier::Destructive));
    }
}
