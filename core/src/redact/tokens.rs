//! Self-identifying credential formats, and high-entropy values under generic secret-ish names.
//!
//! The kinds follow what the widely used open-source secret scanners' default rule sets look for
//! (cloud, payment, container-registry, chat/webhook, private-key and JWT formats), written from
//! the vendors' documented token formats. Each becomes `[REDACTED:<kind>]`. A token's prefix is
//! what makes it recognisable, so every pattern but the few in [`LOOSE`] starts with a literal
//! (or a few): the regex engine then skips text with none of them at memchr speed.

use regex::{Captures, Regex};

/// `(kind, pattern)`: tokens that start with a fixed prefix.
pub(super) const TYPED: &[(&str, &str)] = &[
    // Cloud providers.
    (
        "aws-bedrock-api-key",
        r"ABSK[A-Za-z0-9+/]{100,}={0,2}|bedrock-api-key-[A-Za-z0-9+/]{100,}={0,2}",
    ),
    ("gcp-api-key", r"AIza[0-9A-Za-z_-]{35}"),
    ("gcp-oauth-client-secret", r"GOCSPX-[0-9A-Za-z_-]{28}"),
    ("gcp-access-token", r"ya29\.[0-9A-Za-z_-]{30,}"),
    ("alibaba-access-key-id", r"LTAI[A-Za-z0-9]{20}"),
    ("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}"),
    ("heroku-api-key", r"HRKU-AA[0-9A-Za-z_-]{58}"),
    (
        "cloudflare-origin-ca-key",
        r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
    ),
    ("vault-token", r"hv[sb]\.[A-Za-z0-9_-]{24,}"),
    (
        "yandex-credential",
        r"AQVN[A-Za-z0-9_-]{35,38}|YC[A-Za-z0-9_-]{38}|t1\.[A-Z0-9a-z_-]+=*\.[A-Z0-9a-z_-]{86}=*",
    ),
    ("databricks-token", r"dapi[a-f0-9]{32}(?:-[0-9]+)?"),
    // Payment providers.
    (
        "stripe-key",
        r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}",
    ),
    (
        "square-token",
        r"EAAA[A-Za-z0-9_-]{60}|sq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}",
    ),
    (
        "braintree-token",
        r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}",
    ),
    ("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    (
        "plaid-token",
        r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    (
        "flutterwave-key",
        r"FLW(?:SECK|PUBK)(?:_TEST)?-[a-hA-H0-9]{32}-X|FLWSECK_TEST[a-hA-H0-9]{12}",
    ),
    ("razorpay-key", r"rzp_(?:live|test)_[A-Za-z0-9]{14}"),
    ("easypost-key", r"EZ[AT]K[A-Za-z0-9]{54}"),
    // Container registries and package registries.
    ("dockerhub-token", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}"),
    (
        "gitlab-token",
        r"gl(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent)-[0-9A-Za-z_-]{20,}|GR1348941[0-9A-Za-z_-]{20}",
    ),
    (
        "jfrog-token",
        r"AKCp[A-Za-z0-9]{69}|cmVmdGtu[A-Za-z0-9]{56}",
    ),
    ("npm-token", r"npm_[A-Za-z0-9]{36}"),
    ("pypi-token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    // `aws ecr get-login-password`: base64 of `{"payload":…`.
    ("ecr-token", r"eyJwYXlsb2FkIjoi[A-Za-z0-9+/]{100,}={0,2}"),
    // Chat, mail and webhook tokens.
    ("twilio-api-key", r"SK[0-9a-fA-F]{32}"),
    // The first part is the base64 of a numeric user id, so it starts with one of 12 pairs.
    (
        "discord-bot-token",
        r"[MNO][DTjz][A-Za-z0-9_-]{22,24}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}",
    ),
    (
        "sendgrid-api-key",
        r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
    ),
    // AI APIs.
    (
        "openai-api-key",
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
    ),
    (
        "anthropic-api-key",
        r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}",
    ),
    ("huggingface-token", r"hf_[A-Za-z]{34}|api_org_[A-Za-z]{34}"),
    // Private keys and JWTs.
    (
        "age-secret-key",
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ),
    // A base64-encoded JWT (`eyJ…` encodes to `ZXlK…`), as in Secret data and CI variables.
    ("jwt", r"ZXlK[A-Za-z0-9+/]{40,}={0,2}"),
];

/// `(kind, pattern, inner literal)`: formats without a literal prefix, each run only on text
/// that contains its inner literal (a lazy DFA scan of every line for each would cost more than
/// all the other rules together).
pub(super) const LOOSE: &[(&str, &str, &str)] = &[
    (
        "azure-client-secret",
        r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}",
        "Q~",
    ),
    (
        "telegram-bot-token",
        r"[0-9]{8,10}:AA[0-9A-Za-z_-]{33}",
        ":AA",
    ),
    ("mailchimp-api-key", r"[0-9a-f]{32}-us[0-9]{1,2}", "-us"),
    (
        "terraform-token",
        r"[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}",
        ".atlasv1.",
    ),
];

/// Literals whose absence lets the chain skip its rarer rules in one prefiltered scan: the
/// [`LOOSE`] literals, then `login` (registry logins), `jdbc:oracle:` and `arn:`.
pub(super) fn rare_hints() -> String {
    let mut lits: Vec<&str> = LOOSE.iter().map(|l| l.2).collect();
    lits.extend(["login", "jdbc:oracle:", "arn:"]);
    lits.iter()
        .map(|l| regex::escape(l))
        .collect::<Vec<_>>()
        .join("|")
}

/// One alternation with a capture group per kind, so the kind of a match is its group.
pub(super) fn alternation<'a>(patterns: impl Iterator<Item = &'a str>) -> String {
    let alts: Vec<String> = patterns.map(|p| format!("({p})")).collect();
    format!(r"(?-u:\b)(?:{})", alts.join("|"))
}

/// `[REDACTED:<kind>]` for the group that matched.
pub(super) fn label(c: &Captures, kinds: &[&str]) -> String {
    let kind = (1..c.len())
        .find(|&i| c.get(i).is_some())
        .and_then(|i| kinds.get(i - 1))
        .copied()
        .unwrap_or("secret");
    format!("[REDACTED:{kind}]")
}

/// The loose patterns, compiled one by one with their prechecks.
pub(super) fn loose(re: fn(&str) -> Regex) -> Vec<(&'static str, Regex, &'static str)> {
    LOOSE
        .iter()
        .map(|&(kind, p, pre)| (kind, re(&format!(r"(?-u:\b)(?:{p})")), pre))
        .collect()
}

/// Names that hold a secret only when the value looks random: `ENCRYPTION_KEY`,
/// `storageAccountKey`, Docker's `"auth"`, `credentials`, a SAS `sig`. Such names also label
/// public things (`key: node-role.kubernetes.io/control-plane`, `auth: oidc`), so the value
/// must pass [`looks_random`].
/// Run the [`WEAK_NAME`] rule only on text that has one of its words.
pub(super) const WEAK_HINT: &str = r"(?i)key|auth|cred|sig|session";

pub(super) const WEAK_NAME: &str = r#"(?i)(?-u:\b)([a-z0-9_.-]*(?:key|keys|auth|credentials?|creds|signature|sig|session)["']?)([ \t]*[:=][ \t]*)(["']?)([A-Za-z0-9+/=_.~%-]{16,})"#;

/// Whether a value under a generic name is a random secret rather than a name, path or flag:
/// 16+ characters mixing letters and digits (or 24+ very mixed ones), with high per-character
/// entropy, and not shaped like
/// a domain, a path or a hyphenated word list.
pub(super) fn looks_random(v: &str) -> bool {
    let b = v.as_bytes();
    let e = entropy(b);
    // Random base64 can lack digits; then only a long, very mixed value counts.
    let mixed = b.iter().any(u8::is_ascii_digit) || (b.len() >= 24 && e >= 4.0);
    if b.len() < 16
        || !mixed
        || !b.iter().any(u8::is_ascii_alphabetic)
        || v.starts_with("sha256")
        || v.starts_with("sha512")
    {
        return false;
    }
    // Word lists and paths (`my-service-account-2`, `k8s.amazonaws.com/accelerator`,
    // `/etc/ssl/private/server-2024.key`): every segment between separators is lowercase
    // letters or digits alone (or a short mix like `k8s`).
    let segments: Vec<&str> = v.split(['-', '_', '.', '/']).collect();
    let wordy = segments.len() >= 3
        && segments.iter().all(|s| {
            s.bytes().all(|c| c.is_ascii_lowercase())
                || s.bytes().all(|c| c.is_ascii_digit())
                || s.len() <= 3
        });
    !wordy && e >= 3.0
}

/// Shannon entropy in bits per byte.
fn entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[usize::from(c)] += 1;
    }
    let n = f64::from(u32::try_from(b.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_versus_names() {
        for v in [
            "k8s.amazonaws.com/accelerator",
            "node-role.kubernetes.io/control-plane",
            "my-service-account-2",
            "kubernetes.io/hostname",
            "/var/run/secrets/token",
            "/etc/ssl/private/server-2024.key",
            "sha256:0123456789abcdef0123",
            "aaaaaaaaaaaaaaaa1111",
        ] {
            assert!(!looks_random(v), "{v}");
        }
        for v in [
            "q3Zk9PzL0vA7mN2xR8tY",
            "Y2k6aHVudGVyMjJwYXNzd29yZA==",
            "9f86d081884c7d659a2feaa0c55ad015",
            "abc%2Bdef%2Fghi%3D123XYZ",
            "/btDPpCNkCBCLuUYNnTvAweqbs8Ed4u+R3Awdeni9f+9",
        ] {
            assert!(looks_random(v), "{v}");
        }
    }
}
