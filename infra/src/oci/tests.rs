use super::*;

#[test]
fn bearer_challenges_give_realm_and_service_and_other_schemes_none() {
    let c = parse_challenge(
        r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:api:pull""#,
    )
    .unwrap();
    assert_eq!(c.realm, "https://auth.example/token");
    assert_eq!(c.service.as_deref(), Some("registry.example"));
    assert!(parse_challenge(r#"Basic realm="registry""#).is_none());
    assert!(
        parse_challenge("Bearer service=\"x\"").is_none(),
        "no realm"
    );
}

#[test]
fn image_names_split_into_registry_host_and_repository() {
    assert_eq!(
        split_image("registry.example.com/team/api"),
        ("registry.example.com".into(), "team/api".into())
    );
    assert_eq!(
        split_image("127.0.0.1:5000/api"),
        ("127.0.0.1:5000".into(), "api".into())
    );
    assert_eq!(
        split_image("acme/api"),
        ("registry-1.docker.io".into(), "acme/api".into())
    );
    assert_eq!(
        split_image("nginx"),
        ("registry-1.docker.io".into(), "library/nginx".into())
    );
}

#[test]
fn credentials_never_print() {
    let basic = Auth::Basic {
        username: "ci".into(),
        password: "hunter2-secret".into(),
    };
    let bearer = Auth::Bearer("tok-secret".into());
    let shown = format!("{basic:?} {bearer:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("tok-secret"),
        "{shown}"
    );
}

#[test]
fn only_https_or_loopback_http_realms_are_accepted() {
    assert!(is_loopback_http("http://127.0.0.1:5000/token"));
    assert!(!is_loopback_http("http://127.0.0.1.evil.example/token"));
    assert!(!is_loopback_http("http://registry.example/token"));
}
