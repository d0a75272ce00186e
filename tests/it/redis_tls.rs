//! `rediss://` with an ACL user: the real `slipway serve` reaches a real TLS-only Redis through
//! rustls (aws-lc-rs), trusting only the CA it is given, and never shows the password.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_tests::harness::{free_port, http, require_tool, write_audit_key};

const PASSWORD: &str = "redis-acl-password-7f3e";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    require_tool("openssl", "Debian's openssl package");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Slipway test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// A TLS-only Redis whose only user is `slipway` with [`PASSWORD`].
fn tls_redis(dir: &Path) -> (Child, u16) {
    require_tool("redis-server", "scripts/install-deps installs it");
    let port = free_port();
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {d}\n\
             tls-cert-file {d}/server.pem\ntls-key-file {d}/server.key\n\
             tls-ca-cert-file {d}/ca.pem\ntls-auth-clients no\n\
             user default off\nuser slipway on >{PASSWORD} ~* &* +@all\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("redis.log")).unwrap();
    let child = Command::new("redis-server")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("redis-server starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// `slipway serve` on `url` with `password`, trusting `ca` (if any); returns its port and log.
fn serve(dir: &Path, name: &str, url: &str, password: &str, ca: Option<&Path>) -> (Child, u16) {
    let port = free_port();
    let state = dir.join(name);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SLIPWAY_SLACK_SIGNING_SECRET",
            "tls-test-signing-secret-0123",
        )
        .env("SLIPWAY_SLACK_BOT_TOKEN", "xoxb-tls-test")
        .env("SLIPWAY_SLACK_API_URL", "http://127.0.0.1:9/api/")
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", &state)
        .env("SLIPWAY_AUDIT_SIGNING_KEY_FILE", write_audit_key(dir))
        .env("SLIPWAY_AUDIT_WRITER", name)
        .env("SLIPWAY_REDIS_URL", url)
        .env("SLIPWAY_REDIS_USERNAME", "slipway")
        .env("SLIPWAY_REDIS_PASSWORD", password)
        .env("RUST_LOG", "debug");
    if let Some(ca) = ca {
        // rustls-native-certs reads the trust store from here instead of the system's.
        cmd.env("SSL_CERT_FILE", ca);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("slipway serve starts");
    (child, port)
}

/// `/readyz`'s status once `/healthz` answers.
async fn readiness(port: u16) -> (u16, String) {
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http("GET", &format!("{base}/healthz"), None).await.0 == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The health ping runs each second; give it two tries at the answer we expect.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    http("GET", &format!("{base}/readyz"), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_an_acl_user_works_and_a_wrong_password_or_an_untrusted_ca_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (mut redis, port) = tls_redis(dir.path());
    let url = format!("rediss://127.0.0.1:{port}/0");
    let ca = dir.path().join("ca.pem");

    let (mut good, good_port) = serve(dir.path(), "good", &url, PASSWORD, Some(&ca));
    let (mut wrong, wrong_port) =
        serve(dir.path(), "wrong", &url, "not-the-password-99", Some(&ca));
    let (mut untrusted, untrusted_port) = serve(dir.path(), "untrusted", &url, PASSWORD, None);

    let ready = readiness(good_port).await;
    assert_eq!(ready.0, 200, "{ready:?}");
    assert!(ready.1.contains(r#""shared_state":"ok""#), "{ready:?}");
    for (port, what) in [
        (wrong_port, "a wrong password"),
        (untrusted_port, "an untrusted CA"),
    ] {
        let r = readiness(port).await;
        assert_eq!(r.0, 503, "{what}: {r:?}");
    }

    for c in [&mut good, &mut wrong, &mut untrusted, &mut redis] {
        let _ = c.kill();
        let _ = c.wait();
    }
    for name in ["good", "wrong", "untrusted"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        assert!(
            !log.contains(PASSWORD) && !log.contains("not-the-password-99"),
            "{name}'s log shows a Redis password:\n{log}"
        );
    }
}
