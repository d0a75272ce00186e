use super::*;

#[test]
fn vault_references_need_a_kv2_path_and_a_key() {
    assert_eq!(
        SecretRef::vault("secret/data/slipway#signing_secret"),
        Ok(SecretRef::Vault {
            path: "secret/data/slipway".into(),
            key: "signing_secret".into()
        })
    );
    let e = SecretRef::vault("secret/data/slipway").unwrap_err();
    assert!(e.contains("names no key"), "{e}");
    let e = SecretRef::vault("secret/slipway#k").unwrap_err();
    assert!(e.contains("not a KV v2 path"), "{e}");
    assert!(SecretRef::vault("secret/data//x#k").is_err());
}

#[test]
fn aws_and_gcp_references_parse_with_an_optional_key() {
    assert_eq!(
        SecretRef::aws("arn:aws:secretsmanager:us-east-1:1:secret:slipway-AbC#bot_token"),
        Ok(SecretRef::AwsSecretsManager {
            id: "arn:aws:secretsmanager:us-east-1:1:secret:slipway-AbC".into(),
            key: Some("bot_token".into())
        })
    );
    assert_eq!(
        SecretRef::aws("slipway/signing"),
        Ok(SecretRef::AwsSecretsManager {
            id: "slipway/signing".into(),
            key: None
        })
    );
    assert!(SecretRef::aws("#k").is_err());
    assert_eq!(
        SecretRef::gcp("projects/p/secrets/s#k"),
        Ok(SecretRef::GcpSecretManager {
            name: "projects/p/secrets/s/versions/latest".into(),
            key: Some("k".into())
        })
    );
    assert_eq!(
        SecretRef::gcp("projects/p/secrets/s/versions/3")
            .unwrap()
            .to_string(),
        "gcp_secretmanager projects/p/secrets/s/versions/3"
    );
    assert!(SecretRef::gcp("projects/p/s").is_err());
}

#[test]
fn a_missing_key_names_the_keys_there_but_no_value() {
    let r = SecretRef::aws("x#nope").unwrap();
    let doc = Document::Text(SecretString::from(
        r#"{"bot_token":"xoxb-very-secret","signing":"s3cr3t-value"}"#.to_string(),
    ));
    let e = doc.pick(&r).unwrap_err().to_string();
    assert!(e.contains("bot_token, signing"), "{e}");
    assert!(!e.contains("very-secret") && !e.contains("s3cr3t"), "{e}");
    let not_json = Document::Text(SecretString::from("plain-secret-text".to_string()));
    let e = not_json.pick(&r).unwrap_err().to_string();
    assert!(!e.contains("plain-secret"), "{e}");
}
