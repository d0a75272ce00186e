//! The mark of a review made through Slack. The bridge submits Slack approvals as the person,
//! so on GitHub they look like any other review; a rule with `approve_in: github` (the identity
//! provider's MFA) must not count them. The bridge signs a marker into the review's body with
//! its change-request key, bound to the repository, PR, commit and login, so the runner can tell
//! a Slack-made review from a GitHub one without the bridge's database.
//!
//! The marker can only make a review weaker (count as Slack-made); copying it elsewhere binds to
//! another PR, commit or person and fails to verify, so the review just counts as made in GitHub.

use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier};

const TAG: &str = "<!-- slipway-review:v1";

fn message(repo: &str, pr: u64, commit: &str, login: &str) -> String {
    format!(
        "slipway-review:v1:{}:{pr}:{}:{}",
        repo.to_ascii_lowercase(),
        commit.to_ascii_lowercase(),
        login.to_ascii_lowercase()
    )
}

/// The marker for a Slack-made review, to append to its body.
pub fn slack_review_marker(
    key: &SigningKey,
    key_id: &str,
    repo: &str,
    pr: u64,
    commit: &str,
    login: &str,
) -> String {
    let sig = key.sign(message(repo, pr, commit, login).as_bytes());
    format!(
        "{TAG} key={key_id} sig={} -->",
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    )
}

/// Whether `body` carries a valid marker for this review (made through Slack).
pub fn is_slack_review(
    body: &str,
    keys: &super::Keyring,
    repo: &str,
    pr: u64,
    commit: &str,
    login: &str,
) -> bool {
    let msg = message(repo, pr, commit, login);
    body.match_indices(TAG).any(|(i, _)| {
        let rest = &body[i + TAG.len()..];
        let Some(end) = rest.find("-->") else {
            return false;
        };
        let mut key_id = None;
        let mut sig = None;
        for part in rest[..end].split_whitespace() {
            if let Some(k) = part.strip_prefix("key=") {
                key_id = Some(k);
            } else if let Some(s) = part.strip_prefix("sig=") {
                sig = Some(s);
            }
        }
        let (Some(key_id), Some(sig)) = (key_id, sig) else {
            return false;
        };
        let Ok(key) = keys.key(key_id) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(sig) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        key.verify(
            msg.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_binds_to_its_review_and_key() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let keys = super::super::Keyring::from(vec![("k".to_string(), key.verifying_key())]);
        let m = slack_review_marker(&key, "k", "acme/gitops", 7, "ABC", "Ada");
        let body = format!("Approved in Slack by ada.\n\n{m}");
        assert!(is_slack_review(
            &body,
            &keys,
            "acme/gitops",
            7,
            "abc",
            "ada"
        ));
        assert!(
            !is_slack_review(&body, &keys, "acme/gitops", 8, "abc", "ada"),
            "another PR"
        );
        assert!(
            !is_slack_review(&body, &keys, "acme/gitops", 7, "def", "ada"),
            "another commit"
        );
        assert!(
            !is_slack_review(&body, &keys, "acme/gitops", 7, "abc", "bo"),
            "another person"
        );
        let other = super::super::Keyring::from(vec![(
            "k".to_string(),
            SigningKey::from_bytes(&[2; 32]).verifying_key(),
        )]);
        assert!(!is_slack_review(
            &body,
            &other,
            "acme/gitops",
            7,
            "abc",
            "ada"
        ));
        assert!(!is_slack_review(
            "<!-- slipway-review:v1 key=k sig=AAAA -->",
            &keys,
            "acme/gitops",
            7,
            "abc",
            "ada"
        ));
        // A marker made with a key since revoked no longer counts.
        let revoked =
            super::super::Keyring::new(vec![("k".to_string(), key.verifying_key())], ["k".into()]);
        assert!(!is_slack_review(
            &body,
            &revoked,
            "acme/gitops",
            7,
            "abc",
            "ada"
        ));
    }
}
