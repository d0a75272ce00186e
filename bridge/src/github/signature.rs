//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body under the webhook secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Check `sha256=<hex>` against the raw body in constant time. An empty secret verifies
/// nothing: anyone can compute a MAC under it.
pub fn verify_github_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_test_vector() {
        let secret = b"It's a Secret to Everybody";
        assert!(verify_github_signature(
            secret,
            b"Hello, World!",
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        ));
        assert!(!verify_github_signature(
            secret,
            b"Hello, World?",
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        ));
        assert!(!verify_github_signature(secret, b"Hello, World!", None));
        assert!(!verify_github_signature(
            secret,
            b"Hello, World!",
            Some("sha1=abc")
        ));
    }

    #[test]
    fn an_empty_secret_verifies_nothing() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
        mac.update(b"{}");
        let forged = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(!verify_github_signature(b"", b"{}", Some(&forged)));
    }
}
