//! The keys Slipway verifies requests with: the HMAC keys (Slack's signing secret, GitHub's
//! webhook secret), the SCIM bearer token and the Google push channel token. A MAC under an empty or guessable key proves
//! nothing, and neither does a guessable token, so a short one is a startup error rather than an
//! endpoint that anyone can sign for.

use super::Secret;

/// The shortest key accepted, in bytes. Slack's signing secrets are 32 hex characters.
pub const MIN_HMAC_KEY_BYTES: usize = 16;

/// What to tell the operator about one key: its name, where it is set, and how to get one.
pub(super) struct KeyInfo {
    pub what: &'static str,
    pub set_with: &'static str,
    pub how: &'static str,
}

pub(super) const SLACK_SIGNING_SECRET: KeyInfo = KeyInfo {
    what: "the Slack signing secret",
    set_with: "SLIPWAY_SLACK_SIGNING_SECRET or `slack.signing_secret`",
    how: "your Slack app's Signing Secret (Basic Information → App Credentials; 32 hex characters)",
};

pub(super) const GITHUB_WEBHOOK_SECRET: KeyInfo = KeyInfo {
    what: "the GitHub webhook secret",
    set_with: "SLIPWAY_GITHUB_WEBHOOK_SECRET or `github.webhook_secret`",
    how: "a random value (for example `openssl rand -hex 32`), the same as the GitHub App's webhook secret",
};

pub(super) const SCIM_TOKEN: KeyInfo = KeyInfo {
    what: "the SCIM bearer token",
    set_with: "SLIPWAY_SCIM_TOKEN or `scim.token`",
    how: "a random value (for example `openssl rand -hex 32`), the same as the Secret Token / API token in the identity provider's provisioning settings",
};

pub(super) const GOOGLE_CHANNEL_TOKEN: KeyInfo = KeyInfo {
    what: "the Google push channel token",
    set_with: "SLIPWAY_GOOGLE_CHANNEL_TOKEN or `google.channel_token`",
    how: "a random value (for example `openssl rand -hex 32`); Slipway registers it with the channel, and Google sends it back in X-Goog-Channel-Token",
};

/// A configured key must be at least [`MIN_HMAC_KEY_BYTES`] long. An unset key is not checked
/// here: its endpoint is simply not mounted.
pub(super) fn check(key: &Secret, info: &KeyInfo) -> Result<(), String> {
    let len = key.expose().len();
    if key.is_empty() || len >= MIN_HMAC_KEY_BYTES {
        return Ok(());
    }
    Err(format!(
        "{} is {len} bytes long, and Slipway needs at least {MIN_HMAC_KEY_BYTES}: set {} to {}.",
        info.what, info.set_with, info.how
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_with_what_to_set() {
        let e = check(&Secret::new("short"), &SLACK_SIGNING_SECRET).unwrap_err();
        assert!(
            e.contains("5 bytes")
                && e.contains("SLIPWAY_SLACK_SIGNING_SECRET")
                && e.contains("32 hex"),
            "{e}"
        );
        assert!(
            !e.contains("short\""),
            "the key itself is never printed: {e}"
        );
        check(&Secret::new("0123456789abcdef"), &GITHUB_WEBHOOK_SECRET).unwrap();
        check(&Secret::default(), &GITHUB_WEBHOOK_SECRET).unwrap();
    }

    fn load(pairs: &[(&str, &str)]) -> Result<crate::config::Config, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        crate::config::Config::load_with(None, &move |k| {
            pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn socket_mode_needs_no_signing_secret_but_refuses_a_short_one() {
        let socket = [
            ("SLIPWAY_SOCKET_MODE", "1"),
            ("SLIPWAY_SLACK_APP_TOKEN", "xapp-1-test"),
        ];
        let c = load(&socket).unwrap();
        assert!(c.slack.signing_secret.is_empty());
        let mut short = socket.to_vec();
        short.push(("SLIPWAY_SLACK_SIGNING_SECRET", "0123456789"));
        let e = load(&short).unwrap_err();
        assert!(e.contains("SLIPWAY_SLACK_SIGNING_SECRET"), "{e}");
        let e = load(&[
            ("SLIPWAY_SLACK_SIGNING_SECRET", "0123456789abcdef"),
            ("SLIPWAY_GITHUB_WEBHOOK_SECRET", "hunter2"),
        ])
        .unwrap_err();
        assert!(
            e.contains("SLIPWAY_GITHUB_WEBHOOK_SECRET") && e.contains("7 bytes"),
            "{e}"
        );
    }
}
