//! The error shapes Google answers with, and that no secret shows.

use super::*;

#[test]
fn both_google_error_shapes_are_read_and_nothing_else_is_quoted() {
    let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    assert_eq!(google_error(oauth), "invalid_grant: Invalid JWT Signature.");
    let api = br#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Permission 'iam.serviceAccounts.getAccessToken' denied"}}"#;
    assert!(google_error(api).starts_with("PERMISSION_DENIED: Permission"));
    assert_eq!(
        google_error(b"<html>token=abc</html>"),
        "no error in the answer"
    );
    let long = format!(
        r#"{{"error":"x","error_description":"{}"}}"#,
        "a".repeat(1000)
    );
    assert!(google_error(long.as_bytes()).len() <= 300);
}

#[test]
fn debug_hides_tokens_and_keys() {
    let t = AccessToken {
        token: "ya29.secret-token".into(),
        expires_at: 5,
    };
    assert!(!format!("{t:?}").contains("secret-token"));
    let key = ServiceAccountKey {
        client_email: "a@p.iam.gserviceaccount.com".into(),
        private_key: "-----BEGIN PRIVATE KEY-----secret".into(),
        private_key_id: Some("k1".into()),
        token_uri: None,
    };
    assert!(!format!("{key:?}").contains("secret"));
}

#[test]
fn a_key_file_that_is_not_one_says_so_without_quoting_it() {
    let e = ServiceAccountKey::parse(r#"{"client_email":"a@b","private_key":"hunter2"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not an RSA PEM key") && !e.contains("hunter2"),
        "{e}"
    );
    let e = ServiceAccountKey::parse("hunter2").unwrap_err().to_string();
    assert!(
        e.contains("not a key file") && !e.contains("hunter2"),
        "{e}"
    );
}
