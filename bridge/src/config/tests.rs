//! Loading the configuration: clear errors, secrets from env and files.

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn env_only_defaults() {
    let c = Config::load_with(
        None,
        &env_of(&[("SLIPWAY_SLACK_SIGNING_SECRET", "s3cr3t-signing-secret")]),
    )
    .unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.policy, PathBuf::from("policy/slipway.yaml"));
    assert_eq!(c.slack.api_url, DEFAULT_SLACK_API);
    assert_eq!(&*c.slack.signing_secret.expose(), "s3cr3t-signing-secret");
    assert_eq!(format!("{:?}", c.slack.signing_secret), "Secret(***)");
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn clear_errors() {
    let e = Config::load_with(None, &env_of(&[])).unwrap_err();
    assert!(e.contains("SLIPWAY_SLACK_SIGNING_SECRET"), "{e}");
    let e = Config::load_with(
        None,
        &env_of(&[
            ("SLIPWAY_SLACK_SIGNING_SECRET", "x-signing-secret-16"),
            ("SLIPWAY_LISTEN", "nope"),
        ]),
    )
    .unwrap_err();
    assert!(e.contains("SLIPWAY_LISTEN"), "{e}");
    let e = Config::load_with(
        None,
        &env_of(&[
            ("SLIPWAY_SLACK_SIGNING_SECRET", "x-signing-secret-16"),
            ("SLIPWAY_SLACK_API_URL", "http://evil.example/api"),
        ]),
    )
    .unwrap_err();
    assert!(e.contains("https"), "{e}");
}

#[test]
fn file_with_secret_references() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("token");
    std::fs::write(&secret_file, "xoxb-from-file\n").unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:4000\nslack:\n  signing_secret: {{ env: MY_SECRET }}\n  bot_token: {{ file: {} }}\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let c = Config::load_with(Some(&cfg), &env_of(&[("MY_SECRET", "abc-signing-secret")])).unwrap();
    assert_eq!(c.listen.port(), 4000);
    assert_eq!(&*c.slack.signing_secret.expose(), "abc-signing-secret");
    assert_eq!(&*c.slack.bot_token.expose(), "xoxb-from-file");
    std::fs::write(
        &cfg,
        "slack:\n  signing_secret: x-signing-secret-16\n  bogus: 1\n",
    )
    .unwrap();
    let e = Config::load_with(Some(&cfg), &env_of(&[])).unwrap_err();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn short_lived_credentials_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\n").unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, "[p]\n").unwrap();
    let cfg = dir.path().join("c.yaml");
    let load = |extra: &str| {
        std::fs::write(
            &cfg,
            format!("slack:\n  signing_secret: x-signing-secret-16\n{extra}"),
        )
        .unwrap();
        Config::load_with(Some(&cfg), &env_of(&[]))
    };
    let k = kubeconfig.display();
    let sa = "read_service_account: {namespace: slipway, name: slipway-read}";
    let c = load(&format!(
        "clusters:\n  staging:\n    kubeconfig: {k}\n    {sa}\n    audience: https://kubernetes.default.svc\n"
    ))
    .unwrap();
    assert_eq!(
        c.clusters["staging"]
            .read_service_account
            .as_ref()
            .unwrap()
            .to_string(),
        "slipway/slipway-read"
    );
    let e = load(&format!(
        "clusters:\n  staging:\n    kubeconfig: {k}\n    {sa}\n"
    ))
    .unwrap_err();
    assert!(e.contains("clusters.staging.audience"), "{e}");
    let e = load(&format!(
        "clusters:\n  staging:\n    kubeconfig: {k}\n    audience: a\n    \
         dry_run_service_account: {{namespace: slipway, name: ../../secrets}}\n"
    ))
    .unwrap_err();
    assert!(e.contains("dry_run_service_account.name"), "{e}");
    let c = creds.display();
    let e = load(&format!(
        "aws_profiles:\n  a:\n    profile: p\n    credentials_file: {c}\n    read_role_arn: slipway-read\n"
    ))
    .unwrap_err();
    assert!(e.contains("aws_profiles.a.read_role_arn"), "{e}");
}
