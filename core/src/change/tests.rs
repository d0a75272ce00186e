use chrono::TimeZone;

use super::*;
use crate::command::Namespace;
use crate::policy::model::ApproveIn;

pub(crate) fn sample() -> ChangeRequest {
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
    ChangeRequest {
        schema_version: SCHEMA_VERSION,
        id: "cr-20261124-0001".into(),
        requester: Requester {
            slack_user_id: "U0OPERATOR".into(),
            slack_team_id: Some("T1".into()),
            slack_enterprise_id: None,
            subject: "omar.operator@example.com".into(),
            email: Some("omar.operator@example.com".into()),
            github_login: Some("omar-operator".into()),
            role: "operator".into(),
            groups: vec!["engineering".into(), "operators".into()],
        },
        command: ChangeCommand {
            text: "/kubectl scale deployment/api --replicas=3 -n web --apply".into(),
            family: Family::Kubectl,
            argv: vec![
                "kubectl".into(),
                "scale".into(),
                "deployment/api".into(),
                "--replicas=3".into(),
                "--namespace=web".into(),
            ],
        },
        target: Target::Cluster {
            cluster: Some("staging".into()),
            namespace: Namespace::Named("web".into()),
        },
        tier: Tier::Change,
        resource: "kube:staging/web".into(),
        policy: PolicyBinding {
            rule: "operator-change-staging".into(),
            approval: ApprovalRequirement {
                rule: "standard".into(),
                approvers: 2,
                groups: vec!["approvers".into()],
                approve_in: ApproveIn::Slack,
                expires_after_secs: 86_400,
                all_of: Vec::new(),
            },
        },
        rendered: Rendered::default(),
        reason: None,
        freeze_override: None,
        supersedes: None,
        execution: None,
        created_at: t,
        expires_at: t + chrono::Duration::hours(24),
        signature: None,
    }
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

#[test]
fn sign_verify_roundtrip_through_yaml() {
    let signed = sign(sample(), &key(), "bridge-1");
    let yaml = signed.to_yaml();
    assert!(yaml.starts_with("# Slipway change request cr-20261124-0001"));
    let back = ChangeRequest::from_yaml(&yaml).unwrap();
    assert_eq!(back, signed);
    let keys = Keyring::from(vec![("bridge-1".to_string(), key().verifying_key())]);
    let now = sample().created_at + chrono::Duration::hours(1);
    assert_eq!(verify(&back, &keys, now), Ok(()));
}

#[test]
fn any_edit_invalidates() {
    let signed = sign(sample(), &key(), "bridge-1");
    let keys = Keyring::from(vec![("bridge-1".to_string(), key().verifying_key())]);
    let now = sample().created_at;
    let yaml = signed.to_yaml();
    for (from, to) in [
        ("--replicas=3", "--replicas=30"),
        ("omar.operator@example.com", "eve@example.com"),
        ("approvers: 2", "approvers: 0"),
    ] {
        let tampered = ChangeRequest::from_yaml(&yaml.replace(from, to)).unwrap();
        assert_eq!(
            verify(&tampered, &keys, now),
            Err(VerifyError::BadSignature),
            "{from}"
        );
    }
    // Formatting alone doesn't matter.
    let reformatted = ChangeRequest::from_yaml(&format!("# extra comment\n{yaml}")).unwrap();
    assert_eq!(verify(&reformatted, &keys, now), Ok(()));
}

#[test]
fn expiry_unknown_keys_and_unsigned() {
    let signed = sign(sample(), &key(), "bridge-1");
    let keys = Keyring::from(vec![("bridge-1".to_string(), key().verifying_key())]);
    let late = signed.expires_at + chrono::Duration::seconds(1);
    assert!(matches!(
        verify(&signed, &keys, late),
        Err(VerifyError::Expired { .. })
    ));
    let other = Keyring::from(vec![("bridge-2".to_string(), key().verifying_key())]);
    assert_eq!(
        verify(&signed, &other, signed.created_at),
        Err(VerifyError::UnknownKey("bridge-1".into()))
    );
    assert_eq!(
        verify(&sample(), &keys, signed.created_at),
        Err(VerifyError::Unsigned)
    );
    let wrong = Keyring::from(vec![(
        "bridge-1".to_string(),
        SigningKey::from_bytes(&[8u8; 32]).verifying_key(),
    )]);
    assert_eq!(
        verify(&signed, &wrong, signed.created_at),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn keys_parse() {
    let k = parse_signing_key(&"07".repeat(32)).unwrap();
    assert_eq!(k.to_bytes(), [7u8; 32]);
    let pk = hex::encode(k.verifying_key().to_bytes());
    assert_eq!(parse_verifying_key(&pk).unwrap(), k.verifying_key());
    assert!(parse_signing_key("nope").is_err());
    assert!(parse_signing_key("0102").is_err());
}

#[test]
fn malformed_files_are_errors() {
    assert!(matches!(
        ChangeRequest::from_yaml("id: [unclosed"),
        Err(VerifyError::Malformed(_))
    ));
    let yaml = sign(sample(), &key(), "k")
        .to_yaml()
        .replace("schema_version: 1", "schema_version: 1\nextra: field");
    assert!(matches!(
        ChangeRequest::from_yaml(&yaml),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn slugs() {
    assert!(lock_slug("service:api/staging").starts_with("service-api-staging-"));
    // One-to-one: neither equal nor a prefix of another's slug.
    let (a, b) = (lock_slug("kube:prod/web"), lock_slug("kube:prod/web-api"));
    assert!(!b.starts_with(&a) && a != b);
    assert_ne!(
        lock_slug("kube:prod/web-api"),
        lock_slug("kube:prod/web/api")
    );
    assert_eq!(lock_slug("kube:prod/web"), lock_slug("kube:prod/web"));
    let id = format!("cr-{a}-1a2b3c4d");
    assert_eq!(slug_of_id(&id), Some(a.as_str()));
    assert_eq!(slug_of_id(&format!("cr-{b}-1a2b3c4d")), Some(b.as_str()));
    assert_eq!(slug_of_id("cr-x"), None);
}

#[test]
fn a_rotated_key_signs_the_old_one_still_verifies_and_a_revoked_one_never_does() {
    let old = sign(sample(), &key(), "bridge-2025");
    let new_key = SigningKey::from_bytes(&[9u8; 32]);
    let new = sign(sample(), &new_key, "bridge-2026");
    let both = vec![
        ("bridge-2025".to_string(), key().verifying_key()),
        ("bridge-2026".to_string(), new_key.verifying_key()),
    ];
    let now = sample().created_at;
    let rotated = Keyring::from(both.clone());
    assert_eq!(verify(&old, &rotated, now), Ok(()));
    assert_eq!(verify(&new, &rotated, now), Ok(()));
    // Revoked: refused whatever the expiry, even though the key is still listed.
    let revoked = Keyring::new(both, ["bridge-2025".to_string()]);
    assert_eq!(
        verify(&old, &revoked, now),
        Err(VerifyError::RevokedKey("bridge-2025".into()))
    );
    assert_eq!(
        verify(&old, &revoked, chrono::DateTime::<Utc>::MIN_UTC),
        Err(VerifyError::RevokedKey("bridge-2025".into()))
    );
    assert_eq!(verify(&new, &revoked, now), Ok(()));
    assert!(
        VerifyError::RevokedKey("bridge-2025".into())
            .to_string()
            .contains("revoked")
    );
}
