//! An AWS profile alias's read role (`aws_profiles.<alias>.read_role_arn`): each run gets its
//! own 15-minute role session from `AssumeRole`, signed with the profile's static credentials
//! (which never reach the process) and tagged with the requester, so CloudTrail names the
//! person behind every call. The process gets the session only in its environment.

use slipway_infra::sts::{AssumeRoleRequest, ProfileSource, StsSettings};

use super::minted::{AWS_DETAIL, AWS_SESSION, Minted, Requester};

/// Session tag keys, as CloudTrail and IAM conditions see them.
pub const TAG_REQUESTER: &str = "slipway-requester";
pub const TAG_SLACK_USER: &str = "slipway-slack-user";
pub const TAG_DECISION: &str = "slipway-decision";

/// The read role of one profile alias, and the bridge's own credentials that sign for it.
#[derive(Debug, Clone)]
pub struct AwsRole {
    pub alias: String,
    pub role_arn: String,
    pub external_id: Option<String>,
    /// The profile's static credentials (files the bridge holds).
    pub source: ProfileSource,
    pub sts: StsSettings,
    pub region: String,
}

impl AwsRole {
    /// The `AssumeRole` call for `requester`.
    pub fn request(&self, requester: &Requester) -> AssumeRoleRequest {
        let mut r = AssumeRoleRequest::new(
            &self.role_arn,
            requester.name(),
            &[
                (TAG_REQUESTER, &requester.subject),
                (TAG_SLACK_USER, &requester.slack_user),
                (TAG_DECISION, &requester.decision),
            ],
        );
        r.external_id.clone_from(&self.external_id);
        r.duration = AWS_SESSION;
        r
    }

    /// A fresh session for one run, as the process's environment.
    pub async fn mint(&self, requester: &Requester) -> Result<Minted, String> {
        let request = self.request(requester);
        let creds = slipway_infra::sts::assume_role(&self.sts, &self.source, &request)
            .await
            .map_err(|e| format!("{e} (aws_profiles.{})", self.alias))?;
        let session = creds
            .assumed_role_arn
            .clone()
            .unwrap_or_else(|| format!("{} session {}", self.role_arn, request.session_name));
        Ok(Minted {
            env: creds.env(&self.region),
            args: Vec::new(),
            dir: None,
            detail: (AWS_DETAIL, session),
        })
    }
}
