//! The webhook events Slipway acts on, as serde structs with only the fields it reads (GitHub's
//! payloads carry many more; unknown fields are ignored). An event of another type, or one whose
//! payload lacks a field Slipway needs, is [`GithubEvent::Other`]: acknowledged and ignored.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Head {
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub head: Head,
    #[serde(default)]
    pub merged: Option<bool>,
    /// The merge commit, once merged.
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
}

/// The repository an event is about.
#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
}

/// `pull_request`.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub pull_request: PullRequest,
    pub sender: User,
    /// Always sent by GitHub; optional so an event without it is still parsed (and not recorded
    /// as a merge).
    #[serde(default)]
    pub repository: Option<Repository>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub id: u64,
    pub user: User,
    /// `approved`, `changes_requested`, `commented` or `dismissed`.
    pub state: String,
    /// The commit reviewed (absent in some older payloads: then the PR's head).
    #[serde(default)]
    pub commit_id: Option<String>,
    /// The review's text (`null` when empty): a review made in Slack carries the bridge's
    /// signed marker in it.
    #[serde(default)]
    pub body: Option<String>,
}

/// `pull_request_review`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewEvent {
    pub action: String,
    pub review: Review,
    pub pull_request: PullRequest,
    pub sender: User,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub number: u64,
    /// Present when the issue is a pull request.
    #[serde(default)]
    pub pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub body: String,
    pub user: User,
}

/// `issue_comment`.
#[derive(Debug, Clone, Deserialize)]
pub struct IssueCommentEvent {
    pub action: String,
    pub issue: Issue,
    pub comment: Comment,
}

/// `status`: a commit status changed (CI reporting on a change PR's head, say).
#[derive(Debug, Clone, Deserialize)]
pub struct StatusEvent {
    pub sha: String,
    pub state: String,
    pub context: String,
    /// The branches whose head is `sha` (how a status names the PR it may be about).
    #[serde(default)]
    pub branches: Vec<StatusBranch>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusBranch {
    pub name: String,
}

/// `push`: commits reached a branch. Only what tells whether a file changed.
#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

impl PushEvent {
    /// Whether the push may have changed `path`. GitHub lists at most 20 commits in a push
    /// payload, so a full list is taken to touch everything.
    pub fn touches(&self, path: &str) -> bool {
        self.commits.len() >= 20
            || self.commits.iter().any(|c| {
                [&c.added, &c.modified, &c.removed]
                    .into_iter()
                    .flatten()
                    .any(|p| p == path)
            })
    }
}

/// One delivery, by its `X-GitHub-Event` header.
#[derive(Debug, Clone)]
pub enum GithubEvent {
    PullRequest(Box<PullRequestEvent>),
    Review(Box<ReviewEvent>),
    IssueComment(Box<IssueCommentEvent>),
    Status(Box<StatusEvent>),
    Push(Box<PushEvent>),
    /// Any other event, or a payload without the fields above.
    Other,
}

impl GithubEvent {
    /// The event named `event`, from a body already known to be JSON.
    pub fn parse(event: &str, body: &[u8]) -> GithubEvent {
        let typed = match event {
            "pull_request" => serde_json::from_slice(body).map(|e| Self::PullRequest(Box::new(e))),
            "pull_request_review" => {
                serde_json::from_slice(body).map(|e| Self::Review(Box::new(e)))
            }
            "issue_comment" => {
                serde_json::from_slice(body).map(|e| Self::IssueComment(Box::new(e)))
            }
            "status" => serde_json::from_slice(body).map(|e| Self::Status(Box::new(e))),
            "push" => serde_json::from_slice(body).map(|e| Self::Push(Box::new(e))),
            _ => return Self::Other,
        };
        typed.unwrap_or(Self::Other)
    }

    /// The pull request a `pull_request` or `pull_request_review` event is about.
    pub fn pull_request(&self) -> Option<&PullRequest> {
        match self {
            Self::PullRequest(e) => Some(&e.pull_request),
            Self::Review(e) => Some(&e.pull_request),
            Self::IssueComment(_) | Self::Status(_) | Self::Push(_) | Self::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_slipway_reads_are_typed_and_the_rest_ignored() {
        let body = br#"{"action":"submitted","review":{"id":7,"user":{"login":"ana"},"state":"approved","commit_id":"abc","extra":1},
            "pull_request":{"number":3,"head":{"ref":"slipway/cr-x","sha":"abc"}},"sender":{"login":"ana"}}"#;
        let GithubEvent::Review(e) = GithubEvent::parse("pull_request_review", body) else {
            panic!("a review event");
        };
        assert_eq!((e.review.id, e.pull_request.number), (7, 3));
        assert_eq!(e.pull_request.head.ref_name, "slipway/cr-x");
    }

    #[test]
    fn missing_fields_and_other_events_are_other() {
        assert!(matches!(
            GithubEvent::parse("pull_request", br#"{"action":"opened"}"#),
            GithubEvent::Other
        ));
        assert!(matches!(
            GithubEvent::parse("push", br#"{"ref":"refs/heads/main"}"#),
            GithubEvent::Other
        ));
    }
}
