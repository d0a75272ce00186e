//! The policy file as written: `policy/slipway.yaml`. Every section denies unknown fields, and
//! every cross-reference keeps its source position so validation errors point at the line.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use crate::command::Tier;

/// A name that keeps where it was written.
pub type Name = Spanned<String>;

/// The whole policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; must be 1.
    pub version: u32,
    /// Who people should ask when they are denied, for example `#platform`.
    #[serde(default = "default_support")]
    pub support: String,
    pub defaults: Defaults,
    pub targets: Targets,
    pub identities: Identities,
    /// Which groups hold which roles.
    pub bindings: Vec<Binding>,
    /// Roles, listed from least to most privileged: a user's primary role is the last one they hold.
    pub roles: Vec<Role>,
    /// Restrictions on top of roles: only the named groups may act on the matched resources.
    #[serde(default)]
    pub acls: Vec<Acl>,
    /// Protected resources: reads limited to some roles, direct changes forbidden, changes approval-gated.
    #[serde(default)]
    pub protected: Vec<Protected>,
    pub approvals: Approvals,
    pub limits: Limits,
    /// Where output appears, per resource: the first matching entry decides. Without one, read
    /// output on protected resources is ephemeral and everything else goes to the channel.
    #[serde(default)]
    pub channels: Vec<ChannelRule>,
    /// Change windows: while one is in force, change requests on what it covers are refused,
    /// and their merges are not executed, unless someone it names overrides it with a reason.
    #[serde(default)]
    pub freezes: Vec<Freeze>,
}

/// A freeze window: when it is in force, what it covers, and who may override it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// Unique; named in refusals, overrides and audit records.
    #[schemars(with = "String")]
    pub name: Name,
    /// Shown to the people refused, for example `Friday afternoon: no production changes`.
    pub reason: String,
    /// Covers every resource a `protected` entry covers.
    #[serde(default)]
    pub protected: bool,
    /// Resource patterns it covers besides, as in rules (`service:*/production`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
    /// A weekly recurrence; give either this or `from` and `to`.
    #[serde(default)]
    pub weekly: Option<Weekly>,
    /// A fixed interval (a named event): its start, RFC 3339 (`2026-12-24T00:00:00+01:00`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<Name>,
    /// The end of the fixed interval, RFC 3339; after `from`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub to: Option<Name>,
    /// Who may override it (`--override-freeze "<reason>"`); nobody when empty.
    #[serde(default)]
    pub overriders: Overriders,
}

/// A window that recurs every week, in wall-clock time of a time zone.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Weekly {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    #[schemars(with = "Vec<String>")]
    pub days: Vec<Name>,
    /// Start on each of those days, `HH:MM`.
    #[schemars(with = "String")]
    pub from: Name,
    /// End on the same day, `HH:MM` or `24:00`; after `from`.
    #[schemars(with = "String")]
    pub to: Name,
    /// An IANA time zone (`Europe/Berlin`); `UTC` when left out.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Name>,
}

/// The groups and roles whose members may override a freeze.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overriders {
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Name>,
    /// Role names: anyone holding one of them (through their groups' bindings).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub roles: Vec<Name>,
}

/// Where commands on some resources may be run, and who sees their output: one section, so a
/// resource's channel rules are read in one place.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    #[schemars(with = "String")]
    pub id: Name,
    /// Resource patterns, as in rules.
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
    /// Families (`kubectl`, `aws`, …) or `*`; all when left out.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub commands: Vec<Name>,
    /// Who sees the output; the first matching entry that sets it decides.
    #[serde(default)]
    pub output: Option<Visibility>,
    /// Slack channel IDs (`C…`, `G…`) the commands may be run in; anywhere else, direct
    /// messages included, they are refused. Every matching entry that sets it must allow the
    /// channel. Empty (the default): any channel.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub only_in: Vec<Name>,
    /// `false`: refused in direct messages (with Slipway or between people). Default `true`.
    #[serde(default = "yes")]
    pub direct_messages: bool,
}

fn yes() -> bool {
    true
}

/// Who sees a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Posted in the channel for everyone there.
    #[default]
    Channel,
    /// Only the requester sees it, with a "Share in channel" button. Output on protected
    /// resources never goes to a channel shared with another organisation.
    Ephemeral,
}

fn default_support() -> String {
    "#platform".to_string()
}

/// Defaults for commands that don't name their target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Cluster for `/kubectl` without `@cluster`, unless the identity or role sets one.
    #[schemars(with = "String")]
    pub cluster: Name,
    /// Alertmanager environment for `/silence` without `@env`.
    #[schemars(with = "String")]
    pub alert_env: Name,
}

/// The names of everything Slipway can act on. Credentials for them live in the bridge config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[schemars(with = "Vec<String>")]
    pub clusters: Vec<Name>,
    #[schemars(with = "Vec<String>")]
    pub aws_profiles: Vec<Name>,
    /// GCP project aliases for `/gcloud` (resource `gcp:<alias>`); the bridge maps each to a
    /// project id and a read-only service account.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub gcp_projects: Vec<Name>,
    /// Terraform stacks; each is the directory `stacks/<name>` of the GitOps repo.
    #[schemars(with = "Vec<String>")]
    pub stacks: Vec<Name>,
    #[schemars(with = "Vec<String>")]
    pub services: Vec<Name>,
    /// Deployment environments and the cluster each one runs on.
    pub envs: BTreeMap<String, Env>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Env {
    #[schemars(with = "String")]
    pub cluster: Name,
}

/// Where identities come from.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    /// The directory people and groups come from: `static` (only `users` below), `scim` (Okta
    /// or Entra ID push to `/scim/v2`) or `google` (the Admin SDK Directory API, polled).
    pub provider: ProviderKind,
    /// How a Slack user is tied to a directory user: `email` (their Slack profile email is an
    /// active directory user's primary email) or `sso` (`/slipway link sso`, an OIDC login).
    #[serde(default)]
    pub slack_match: SlackMatch,
    /// Static people: small teams, bots and break-glass accounts. They apply beside any
    /// provider and win for their own Slack IDs.
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Static,
    Scim,
    Google,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Scim => "scim",
            Self::Google => "google",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlackMatch {
    #[default]
    Email,
    Sso,
}

/// One person.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Slack user IDs (`U…`, or `W…` on Enterprise Grid). IDs are immutable; names and emails are not.
    #[schemars(with = "Vec<String>")]
    pub slack: Vec<Name>,
    /// The SSO subject.
    pub subject: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The GitHub login, used to map PR reviews back to this person. Logins are
    /// case-insensitive, and each belongs to one person.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub github: Option<Name>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Name>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub default_cluster: Option<Name>,
}

/// A group → role binding.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    #[schemars(with = "String")]
    pub group: Name,
    #[schemars(with = "String")]
    pub role: Name,
}

/// A role: a named set of permission rules.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    #[schemars(with = "String")]
    pub name: Name,
    /// Roles whose rules this role also has.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub extends: Vec<Name>,
    /// The longest silence this role may create. Required so that every role is capped.
    pub max_silence: HumanDuration,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub default_cluster: Option<Name>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A permission: these command families, at these tiers, on resources matching these patterns.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[schemars(with = "String")]
    pub id: Name,
    /// Families (`kubectl`, `tf`, `aws`, `deploy`, `silence`) or `*`.
    #[schemars(with = "Vec<String>")]
    pub commands: Vec<Name>,
    pub tiers: Vec<Tier>,
    /// Resource patterns: `kube:<cluster>/<namespace>`, `kube:<cluster>` (cluster-scoped objects:
    /// nodes, cluster roles, CRDs…, which no namespace pattern grants), `aws:<profile>`,
    /// `stack:<name>`, `service:<service>/<env>`, `alerts:<env>`, with `*` and `?` wildcards.
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
}

/// Only members of `groups` may run `commands` on `resources`, whatever their role allows.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    #[schemars(with = "String")]
    pub id: Name,
    #[schemars(with = "Vec<String>")]
    pub commands: Vec<Name>,
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Name>,
    /// Shown to the person denied.
    pub reason: String,
}

/// What may happen to a protected resource.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    #[schemars(with = "String")]
    pub id: Name,
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
    /// Roles that may run `read` commands here; everyone else is denied.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub read_roles: Vec<Name>,
    /// Whether `operate` commands may run directly here.
    #[serde(default)]
    pub operate: OperateMode,
    /// The approval rule every change here needs, overriding the routes.
    #[schemars(with = "String")]
    pub approval: Name,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperateMode {
    #[default]
    Forbid,
    Allow,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    pub rules: Vec<ApprovalRule>,
    /// First matching route picks the approval rule for a change; no match denies it.
    pub routes: Vec<Route>,
}

/// How many people, from which groups, must approve, and for how long a request stays open.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    #[schemars(with = "String")]
    #[serde(serialize_with = "ser_name")]
    pub id: Name,
    /// Distinct approvers needed; the requester never counts.
    pub approvers: u32,
    #[schemars(with = "Vec<String>")]
    #[serde(serialize_with = "ser_names")]
    pub groups: Vec<Name>,
    pub expires_after: HumanDuration,
    /// `slack`: Slack buttons and GitHub reviews both count. `github`: approve in GitHub only (step-up).
    #[serde(default)]
    pub approve_in: ApproveIn,
    /// Merge automatically once the quorum holds on the head SHA.
    #[serde(default)]
    pub auto_merge: bool,
    /// For a roll back (`--rollback-of`, the Roll back button, checked against the failed
    /// deploy), this many approvers instead of `approvers`, never more. Never 0 for a rule that
    /// can reach a protected resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_approvers: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApproveIn {
    #[default]
    Slack,
    Github,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[schemars(with = "Vec<String>")]
    pub resources: Vec<Name>,
    #[schemars(with = "String")]
    pub rule: Name,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeouts: Timeouts,
    /// Bytes of command output kept; the rest is cut with a note.
    pub output_bytes: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub read: HumanDuration,
    pub operate: HumanDuration,
    pub change: HumanDuration,
    pub destructive: HumanDuration,
}

impl Timeouts {
    pub fn for_tier(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Read => self.read.0,
            Tier::Operate => self.operate.0,
            Tier::Change => self.change.0,
            Tier::Destructive => self.destructive.0,
        }
    }
}

/// A duration written the human way: `90s`, `15m`, `4h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a duration ({e}); write for example `90s`, `15m` or `4h`"
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `90s`, `15m`, `4h` or `1h30m`.",
            "pattern": "^([0-9]+\\s*[a-z]+\\s*)+$"
        })
    }
}

fn ser_name<S: serde::Serializer>(n: &Name, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&n.value)
}

fn ser_names<S: serde::Serializer>(n: &[Name], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(n.iter().map(|n| n.value.as_str()))
}
