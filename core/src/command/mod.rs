//! The command AST: what a person asked for, kept apart from how it was parsed.
//!
//! Every command knows its safety [`Tier`], its [`Target`] and the exact argv it would run, so that
//! policy, the Slack ack, the change request and the audit record all describe the same thing.

pub mod aws;
mod aws_query;
pub mod deploy;
pub mod gcloud;
pub mod kubectl;
pub mod meta;
mod parse;
#[cfg(test)]
mod proptests;
pub mod silence;
pub mod tf;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use parse::{
    OVERRIDE_FREEZE_FLAG, ParseError, ParseErrorKind, is_name as is_target_name, parse, parse_line,
};

/// How dangerous a command is, which decides how it may proceed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Runs directly; changes nothing.
    Read,
    /// A direct, audited state change, such as an Alertmanager silence.
    Operate,
    /// Becomes a reviewed pull request.
    Change,
    /// Becomes a pull request and needs typed confirmation first.
    Destructive,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Read, Tier::Operate, Tier::Change, Tier::Destructive];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Operate => "operate",
            Tier::Change => "change",
            Tier::Destructive => "destructive",
        }
    }

    /// Whether this tier goes through a pull request rather than running directly.
    pub fn is_change_request(self) -> bool {
        matches!(self, Tier::Change | Tier::Destructive)
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A slash-command family. Adding a variant without catalog help fails to compile
/// (see [`crate::catalog::spec`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Kubectl,
    Tf,
    Aws,
    Gcloud,
    Deploy,
    Silence,
    Slipway,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Kubectl,
        Family::Tf,
        Family::Aws,
        Family::Gcloud,
        Family::Deploy,
        Family::Silence,
        Family::Slipway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Kubectl => "kubectl",
            Family::Tf => "tf",
            Family::Aws => "aws",
            Family::Gcloud => "gcloud",
            Family::Deploy => "deploy",
            Family::Silence => "silence",
            Family::Slipway => "slipway",
        }
    }

    /// The slash command as typed in Slack.
    pub fn slash(self) -> String {
        format!("/{}", self.as_str())
    }

    pub fn from_slash(name: &str) -> Option<Family> {
        let name = name.strip_prefix('/').unwrap_or(name);
        Family::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Kubernetes namespace a command touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Namespace {
    /// No `-n`: the namespace the cluster's configured context defaults to.
    Default,
    Named(String),
    /// `-A`: every namespace, protected ones included.
    All,
    /// The objects are cluster-scoped (nodes, cluster roles, CRDs, …, or a kind the cluster
    /// doesn't describe): they belong to no namespace and affect all of them. Policy sees
    /// `kube:<cluster>`, which no namespace pattern grants.
    ClusterScoped,
}

impl Namespace {
    /// The namespace as it appears in a resource string: `*` for all namespaces, `None` for
    /// cluster-scoped objects.
    pub fn resource_part(&self) -> Option<&str> {
        match self {
            Namespace::Default => Some("default"),
            Namespace::Named(n) => Some(n),
            Namespace::All => Some("*"),
            Namespace::ClusterScoped => None,
        }
    }
}

/// What a command acts on. Clusters and alert environments may be left to the policy's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Target {
    Cluster {
        cluster: Option<String>,
        namespace: Namespace,
    },
    AwsProfile {
        profile: String,
    },
    /// A GCP project alias; the bridge maps it to a project id and a read-only service account.
    GcpProject {
        alias: String,
    },
    Stack {
        stack: String,
    },
    Service {
        service: String,
        env: String,
    },
    Alerts {
        env: Option<String>,
        matchers: Vec<String>,
    },
    /// Slipway's own commands touch nothing.
    None,
}

impl Target {
    /// The canonical resource string that policy patterns match, once defaults are filled in:
    /// `kube:<cluster>/<namespace>`, `aws:<profile>`, `gcp:<alias>`, `stack:<name>`,
    /// `service:<svc>/<env>`, `alerts:<env>`. Returns `None` for [`Target::None`] or when a default is still missing.
    pub fn resource(&self) -> Option<String> {
        match self {
            Target::Cluster {
                cluster: Some(c),
                namespace,
            } => Some(match namespace.resource_part() {
                Some(ns) => format!("kube:{c}/{ns}"),
                None => format!("kube:{c}"),
            }),
            Target::AwsProfile { profile } => Some(format!("aws:{profile}")),
            Target::GcpProject { alias } => Some(format!("gcp:{alias}")),
            Target::Stack { stack } => Some(format!("stack:{stack}")),
            Target::Service { service, env } => Some(format!("service:{service}/{env}")),
            Target::Alerts { env: Some(e), .. } => Some(format!("alerts:{e}")),
            Target::Cluster { cluster: None, .. }
            | Target::Alerts { env: None, .. }
            | Target::None => None,
        }
    }

    /// A short human description, for Slack messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Cluster { cluster, namespace } => {
                let c = cluster.as_deref().unwrap_or("the default cluster");
                match namespace {
                    Namespace::Default => c.to_string(),
                    Namespace::Named(n) => format!("{c} (namespace {n})"),
                    Namespace::All => format!("{c} (all namespaces)"),
                    Namespace::ClusterScoped => format!("{c} (cluster-scoped)"),
                }
            }
            Target::AwsProfile { profile } => format!("AWS profile {profile}"),
            Target::GcpProject { alias } => format!("GCP project {alias}"),
            Target::Stack { stack } => format!("stack {stack}"),
            Target::Service { service, env } => format!("{service} in {env}"),
            Target::Alerts { env, .. } => {
                format!("Alertmanager {}", env.as_deref().unwrap_or("(default env)"))
            }
            Target::None => "Slipway".to_string(),
        }
    }
}

/// A fully parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    /// The text as typed, including the slash command.
    pub text: String,
    pub command: Command,
    /// `--apply` was given: a change proceeds past dry-run.
    pub apply: bool,
    /// `--override-freeze "<reason>"`: the reason (trimmed, redacted), for a change made during
    /// a freeze window by someone the window lets override it.
    pub override_freeze: Option<String>,
    /// `--rollback-of <PR>`: this deploy rolls back that merged deploy's failed rollout.
    pub rollback_of: Option<u64>,
}

/// The command AST. Each variant's parser lives in its own module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Kubectl(kubectl::Kubectl),
    TfPlan { stack: String },
    TfApply { stack: String },
    Aws(aws::Aws),
    Gcloud(gcloud::Gcloud),
    Deploy(deploy::Deploy),
    Silence(silence::Silence),
    Slipway(meta::Meta),
}

impl ParsedCommand {
    pub fn family(&self) -> Family {
        match &self.command {
            Command::Kubectl(_) => Family::Kubectl,
            Command::TfPlan { .. } | Command::TfApply { .. } => Family::Tf,
            Command::Aws(_) => Family::Aws,
            Command::Gcloud(_) => Family::Gcloud,
            Command::Deploy(_) => Family::Deploy,
            Command::Silence(_) => Family::Silence,
            Command::Slipway(_) => Family::Slipway,
        }
    }

    /// The safety tier. Slipway's own commands are `None`: they read only the caller's own state.
    pub fn tier(&self) -> Option<Tier> {
        Some(match &self.command {
            Command::Kubectl(k) => k.tier,
            Command::TfPlan { .. } | Command::Aws(_) | Command::Gcloud(_) => Tier::Read,
            Command::TfApply { .. } | Command::Deploy(_) => Tier::Change,
            Command::Silence(s) => s.tier(),
            Command::Slipway(_) => return None,
        })
    }

    /// The target, judging kinds by the built-in table only (custom resources count as
    /// cluster-scoped). [`ParsedCommand::target_with`] takes what discovery knows.
    pub fn target(&self) -> Target {
        self.target_with(kubectl::KindScopes::builtin())
    }

    /// The target, with kubectl kinds judged by `scopes`.
    pub fn target_with(&self, scopes: &kubectl::KindScopes) -> Target {
        match &self.command {
            Command::Kubectl(k) => Target::Cluster {
                cluster: k.cluster.clone(),
                namespace: k.target_namespace(scopes),
            },
            Command::TfPlan { stack } | Command::TfApply { stack } => Target::Stack {
                stack: stack.clone(),
            },
            Command::Aws(a) => Target::AwsProfile {
                profile: a.profile.clone(),
            },
            Command::Gcloud(g) => Target::GcpProject {
                alias: g.alias.clone(),
            },
            Command::Deploy(d) => Target::Service {
                service: d.service.clone(),
                env: d.env.clone(),
            },
            Command::Silence(s) => s.target(),
            Command::Slipway(_) => Target::None,
        }
    }

    /// The exact argv this command runs, credentials aside: the execution engine supplies the
    /// cluster context, AWS profile, GCP project and working directory from its own
    /// configuration, never from the user. `None` for commands that call an API (Alertmanager)
    /// or Slipway itself.
    pub fn argv(&self) -> Option<Vec<String>> {
        match &self.command {
            Command::Kubectl(k) => Some(k.argv()),
            Command::Aws(a) => Some(a.argv()),
            Command::Gcloud(g) => Some(g.argv()),
            Command::TfPlan { .. } => Some(
                [
                    "terraform",
                    "plan",
                    "-input=false",
                    "-no-color",
                    "-lock=false",
                ]
                .map(String::from)
                .to_vec(),
            ),
            Command::TfApply { .. } => Some(
                [
                    "terraform",
                    "apply",
                    "-input=false",
                    "-no-color",
                    tf::TF_PLAN_FILE,
                ]
                .map(String::from)
                .to_vec(),
            ),
            Command::Deploy(d) => Some(d.argv()),
            Command::Silence(_) | Command::Slipway(_) => None,
        }
    }
}
