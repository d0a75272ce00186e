use super::*;

fn kubeconfig(dir: &Path, user: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let ca = base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\n");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443/\n    \
             certificate-authority-data: {ca}\n    tls-server-name: api.internal\n\
             users:\n- name: u\n  user:\n{user}\ncontexts:\n- name: staging\n  context: {{cluster: c, user: u}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_bridges_identity_is_a_token_or_a_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-file\n").unwrap();
    let path = kubeconfig(
        dir.path(),
        &format!("    tokenFile: {}", token_file.display()),
    );
    let c = read_cluster(&path, "staging").unwrap();
    assert_eq!(c.server, "https://10.0.0.1:6443");
    assert_eq!(c.token, "from-file");
    assert_eq!(c.section["tls-server-name"], "api.internal");
    assert!(c.ca_pem.unwrap().starts_with("-----BEGIN"));

    let path = kubeconfig(dir.path(), "    token: inline");
    assert_eq!(read_cluster(&path, "staging").unwrap().token, "inline");
    let path = kubeconfig(dir.path(), "    exec: {command: aws}");
    let e = read_cluster(&path, "staging").err().unwrap();
    assert!(e.contains("no `token` or `tokenFile`"), "{e}");
    let e = read_cluster(&path, "production").err().unwrap();
    assert!(e.contains("no context `production`"), "{e}");
}

#[test]
fn a_refused_token_request_says_what_to_fix_and_never_echoes_a_token() {
    let sa = ServiceAccountRef {
        namespace: "slipway".into(),
        name: "slipway-read".into(),
    };
    let e = refusal(403, &sa, "forbidden");
    assert!(
        e.contains("slipway/slipway-read")
            && e.contains("serviceaccounts/token")
            && e.contains("deploy/kubernetes/target-cluster/bridge.yaml"),
        "{e}"
    );
    assert!(refusal(404, &sa, "").contains("does not exist"));
    assert!(refusal(500, &sa, &"x".repeat(1000)).len() < 500);
}
