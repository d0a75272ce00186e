//! The audit record: one versioned schema for everything Slipway does, sealed into a per-writer
//! hash chain so that an edited, dropped or forged record shows up in `slipway audit verify`.
//!
//! Pure like the rest of this crate: event ids and times are passed in by the caller, and the
//! spool that makes records durable lives in `slipway-infra`.

mod chain;
mod checkpoint;
mod segment;
mod signed;
#[cfg(test)]
mod tests;
mod verify;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::{Family, ParsedCommand, Target, Tier};
use crate::policy::{Decision, Identity, Outcome, SlackUser};

pub use chain::{ChainState, GENESIS_HASH, canonical_json, compute_hash, seal};
pub use checkpoint::{
    CHECKPOINT_VERSION, Checkpoint, CheckpointError, ED25519, TRAILER, WriterAllowlist, WriterKeys,
    key_id,
};
pub use segment::verify_segment;
pub use signed::verify_trail;
pub use verify::{ChainProblem, ChainReport, ProblemKind, WriterHead, verify_chain};

/// The version written into every record. Bump it when a field changes meaning or a reader
/// could no longer recompute an old record's hash.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of one audit record (one spool line), for downstream consumers such as a SIEM.
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(AuditRecord)
}

pub(crate) fn datetime_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A slash command arrived and parsed (or failed to parse).
    Command,
    /// Policy decided a command.
    Decision,
    /// Someone approved a change request.
    Approval,
    /// Someone rejected a change request, or an approval was refused (self-approval, wrong group).
    Rejection,
    /// A command ran (directly, or by the runner after a merge).
    Execution,
    /// A change request (pull request) was opened or updated.
    ChangeRequest,
    /// A change request was merged.
    Merge,
    /// A change request was cancelled by its requester or an admin.
    Cancellation,
    /// Someone asked to roll back a change whose rollout failed (the Roll back button): the
    /// change it reverts, and the version it goes back to.
    Rollback,
    /// Requests with a bad Slack or GitHub signature were refused; usually aggregated in `details`.
    SignatureRejected,
    /// A change request or its approvals expired.
    Expiry,
    /// The policy file was reloaded.
    PolicyReload,
    /// Someone shared a command's private output in its channel.
    Share,
    /// Who a Slack user is changed: they were linked to a directory person, or Slack says
    /// their account was deactivated (or reactivated). `details.action` says which.
    Identity,
    /// The identity provider created, changed or removed a directory user or group (SCIM).
    Provisioning,
}

/// Who acted. Every part is optional: a signature rejection has no user, a runner has no Slack id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_enterprise_id: Option<String>,
    /// The resolved enterprise identity (SSO subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_login: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Actor {
    /// A Slack user as Slack reported them, plus what the identity provider resolved (if anything).
    pub fn slack(user: &SlackUser, identity: Option<&Identity>, role: Option<&str>) -> Self {
        Self {
            slack_user_id: Some(user.user_id.clone()),
            slack_team_id: user.team_id.clone(),
            slack_enterprise_id: user.enterprise_id.clone(),
            subject: identity.map(|i| i.subject.clone()),
            email: identity.and_then(|i| i.email.clone()),
            github_login: identity.and_then(|i| i.github.clone()),
            groups: identity.map(|i| i.groups.clone()).unwrap_or_default(),
            role: role.map(str::to_string),
        }
    }
}

/// The command as typed and the exact argv it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandInfo {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// `None` for commands that call an API rather than a binary (silences, Slipway's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
}

impl CommandInfo {
    pub fn from_parsed(command: &ParsedCommand) -> Self {
        Self {
            text: command.text.clone(),
            family: Some(command.family()),
            argv: command.argv(),
        }
    }
}

/// What policy decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInfo {
    pub outcome: Outcome,
    /// The id of the deciding rule, e.g. `rbac.default-deny`.
    pub rule: String,
    pub reason: String,
    /// The approval rule a change request falls under, for `approval` outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_rule: Option<String>,
}

impl From<&Decision<'_>> for DecisionInfo {
    fn from(d: &Decision<'_>) -> Self {
        Self {
            outcome: d.outcome,
            rule: d.rule.clone(),
            reason: d.reason.clone(),
            approval_rule: d.approval.as_ref().map(|a| a.rule.clone()),
        }
    }
}

/// Where an approval was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalSource {
    Slack,
    Github,
}

/// One approval that counted towards a quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's identity (SSO subject) or GitHub login.
    pub who: String,
    #[schemars(schema_with = "datetime_schema")]
    pub when: DateTime<Utc>,
    pub source: ApprovalSource,
    /// The head commit approved: an approval does not carry over to a later push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
}

/// The pull request behind a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_sha: Option<String>,
}

/// A command's result. Only a redacted excerpt is kept; the digest lets the full output (kept
/// elsewhere, or reproduced) be matched to this record later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub excerpt: String,
    /// Lowercase hex sha256 of the full, unredacted output.
    pub sha256: String,
    /// Size of the full output in bytes.
    pub bytes: u64,
    /// `None` when the process was killed by a signal or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// The excerpt is shorter than the output.
    pub truncated: bool,
}

impl Output {
    /// Digests `full_output`; `excerpt` must already be redacted.
    pub fn new(
        excerpt: String,
        full_output: &[u8],
        exit_code: Option<i32>,
        duration_ms: u64,
        truncated: bool,
    ) -> Self {
        Self {
            excerpt,
            sha256: hex::encode(Sha256::digest(full_output)),
            bytes: u64::try_from(full_output.len()).unwrap_or(u64::MAX),
            exit_code,
            duration_ms,
            truncated,
        }
    }
}

/// The CI run that executed a merged change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnerInfo {
    pub run_id: String,
    /// The `sub` claim of the run's OIDC token, which says which repo/branch/workflow ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_subject: Option<String>,
}

/// One audit record: one line of a spool, one object in the mirror.
///
/// Unknown fields are rejected on read: a field the hash does not cover must not ride along
/// unnoticed in a verified record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub schema_version: u32,
    /// Made by the caller (UUID, ULID…); unique per event, not per record copy.
    pub event_id: String,
    #[schemars(schema_with = "datetime_schema")]
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<PullRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerInfo>,
    /// The change request this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
    /// Free-form context, e.g. `{"count": 37, "source_cidr": "203.0.113.0/24", "window_s": 60}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Who wrote the record, e.g. `bridge:<hostname>` or `runner:<run id>`. Set by [`seal`].
    pub writer: String,
    /// Position in the writer's chain, from 1. Set by [`seal`].
    pub seq: u64,
    /// Hash of the writer's previous record, or [`GENESIS_HASH`]. Set by [`seal`].
    pub prev_hash: String,
    /// Set by [`seal`]; see [`compute_hash`].
    pub hash: String,
}

impl AuditRecord {
    /// An unsealed record of `kind`; add parts with the `with_*` methods, then [`seal`] it.
    pub fn new(kind: EventKind, event_id: impl Into<String>, time: DateTime<Utc>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event_id: event_id.into(),
            time,
            kind,
            actor: None,
            command: None,
            target: None,
            tier: None,
            decision: None,
            approvals: Vec::new(),
            pr: None,
            output: None,
            runner: None,
            change_id: None,
            details: None,
            writer: String::new(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[must_use]
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    #[must_use]
    pub fn with_command(mut self, command: CommandInfo) -> Self {
        self.command = Some(command);
        self
    }

    #[must_use]
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    #[must_use]
    pub fn with_tier(mut self, tier: Tier) -> Self {
        self.tier = Some(tier);
        self
    }

    #[must_use]
    pub fn with_decision(mut self, decision: DecisionInfo) -> Self {
        self.decision = Some(decision);
        self
    }

    /// The decision plus the resolved target and tier it was made about.
    #[must_use]
    pub fn with_policy_decision(mut self, decision: &Decision<'_>) -> Self {
        self.decision = Some(decision.into());
        self.target = Some(decision.target.clone());
        self.tier = decision.tier.or(self.tier);
        self
    }

    #[must_use]
    pub fn with_approval(mut self, approval: Approval) -> Self {
        self.approvals.push(approval);
        self
    }

    #[must_use]
    pub fn with_pr(mut self, pr: PullRequest) -> Self {
        self.pr = Some(pr);
        self
    }

    #[must_use]
    pub fn with_output(mut self, output: Output) -> Self {
        self.output = Some(output);
        self
    }

    #[must_use]
    pub fn with_runner(mut self, runner: RunnerInfo) -> Self {
        self.runner = Some(runner);
        self
    }

    #[must_use]
    pub fn with_change_id(mut self, change_id: impl Into<String>) -> Self {
        self.change_id = Some(change_id.into());
        self
    }

    /// A JSON `null` is stored as no details, so that it survives a JSON round trip unchanged.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = (!details.is_null()).then_some(details);
        self
    }

    /// Whether [`seal`] has filled in the chain fields.
    pub fn is_sealed(&self) -> bool {
        self.seq != 0
    }
}
