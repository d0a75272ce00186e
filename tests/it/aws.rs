//! `/aws` through the real bridge: the real AWS CLI against moto's server, with credentials the
//! bridge holds for the profile alias; denials; and a call that hangs until the timeout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_tests::harness::{Daemon, Options, TestApp, free_port, resolve_tool};

const LONG: Duration = Duration::from_secs(60);
const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn aws_cli() -> PathBuf {
    resolve_tool(
        "aws",
        "install the AWS CLI: `pip install awscli` (scripts/install-deps does this)",
    )
}

pub(crate) async fn moto(dir: &Path) -> Daemon {
    let server = resolve_tool(
        "moto_server",
        "install moto's server: `pip install 'moto[server]'` (scripts/install-deps does this)",
    );
    let port = free_port();
    let mut cmd = std::process::Command::new(server);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    Daemon::start("moto_server", cmd, port, "/moto-api/", dir.join("moto.log")).await
}

/// Run the AWS CLI in test setup, against moto, with throwaway credentials; returns stdout.
pub(crate) fn aws_setup(endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(aws_cli())
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("aws runs");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `execution` and `aws` sections for the real CLI. It is a Python install outside /usr:
/// the sandbox sees it because it is listed.
pub(crate) fn cli_yaml() -> String {
    let cli = aws_cli();
    let prefix = cli
        .parent()
        .and_then(Path::parent)
        .expect("<prefix>/bin/aws");
    format!(
        "execution:\n  sandbox_read_only: [{}]\naws:\n  cli: {}\n  max_attempts: 1\n",
        prefix.display(),
        cli.display()
    )
}

/// The bridge's config: profile aliases with files the bridge holds, and their endpoints.
fn bridge_config(dir: &Path, endpoints: &[(&str, String)]) -> String {
    let creds = dir.join("aws-credentials");
    let config = dir.join("aws-config");
    std::fs::write(
        &creds,
        format!("[slipway-read]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    std::fs::write(&config, "[profile slipway-read]\noutput = json\n").unwrap();
    let mut yaml = format!("{}aws_profiles:\n", cli_yaml());
    for (alias, url) in endpoints {
        let _ = write!(
            yaml,
            "  {alias}:\n    profile: slipway-read\n    config_file: {}\n    credentials_file: {}\n    region: us-east-1\n    endpoint_url: {url}\n",
            config.display(),
            creds.display()
        );
    }
    yaml
}

/// Run one command to the end; returns the final main message's and the first reply's blocks.
async fn run(app: &TestApp, user: &str, line: &str, shown: &str) -> (String, String) {
    let ack = app.ack(user, line).await;
    assert!(ack.starts_with(&format!("Running `{shown}`")), "{ack}");
    let msg = app.wait_message(shown, LONG).await.expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    (main.blocks.to_string(), thread[0].blocks.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_the_real_cli_against_moto_as_tables() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto(dir.path()).await;
    let launched = aws_setup(
        &moto.url(),
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-12c6146b",
            "--count",
            "1",
            "--instance-type",
            "t3.micro",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&launched).unwrap();
    let instance = v["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    aws_setup(
        &moto.url(),
        &["s3api", "create-bucket", "--bucket", "slipway-audit-demo"],
    );

    let app = TestApp::start_with(Options {
        config_yaml: Some(bridge_config(
            dir.path(),
            &[("staging-readonly", moto.url())],
        )),
        ..Options::default()
    })
    .await;

    let (main, out) = run(
        &app,
        "U0VIEWER",
        "/aws staging-readonly ec2 describe-instances",
        "aws ec2 describe-instances --output json",
    )
    .await;
    assert!(main.contains(":white_check_mark:"), "{main}");
    assert!(main.contains("AWS profile staging-readonly"), "{main}");
    assert!(
        out.contains("Reservations › Instances") && out.contains("(1 row)"),
        "{out}"
    );
    assert!(out.contains(&instance) && out.contains("t3.micro"), "{out}");
    assert!(out.contains("running"), "State.Name is a column: {out}");

    let (_, out) = run(
        &app,
        "U0VIEWER",
        "/aws staging-readonly s3api list-buckets",
        "aws s3api list-buckets --output json",
    )
    .await;
    assert!(
        out.contains("*Buckets* (1 row)") && out.contains("slipway-audit-demo"),
        "{out}"
    );

    let (_, out) = run(
        &app,
        "U0VIEWER",
        "/aws staging-readonly sts get-caller-identity",
        "aws sts get-caller-identity --output json",
    )
    .await;
    assert!(
        out.contains("Account") && out.contains("123456789012"),
        "{out}"
    );
    // moto echoes the access key id as the UserId: it never reaches Slack or the audit trail.
    assert!(
        !out.contains(ACCESS_KEY) && out.contains("REDACTED"),
        "{out}"
    );
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );

    let audit = app.audit();
    let runs: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == EventKind::Execution)
        .collect();
    assert_eq!(runs.len(), 3);
    for r in &runs {
        let argv = r.command.as_ref().and_then(|c| c.argv.clone()).unwrap();
        assert_eq!(Path::new(&argv[0]), aws_cli());
        assert!(
            !argv
                .iter()
                .any(|a| a.contains("endpoint") || a.contains("profile")),
            "{argv:?}"
        );
        assert_eq!(r.output.as_ref().unwrap().exit_code, Some(0));
    }
    assert!(runs[0].output.as_ref().unwrap().excerpt.contains(&instance));
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(ACCESS_KEY) && !text.contains(SECRET_KEY));
    assert!(slipway_core::audit::verify_chain(&audit).is_ok());
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_and_endpoint_overrides_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(Options {
        config_yaml: Some(bridge_config(
            dir.path(),
            &[("staging-readonly", "http://127.0.0.1:9".into())],
        )),
        ..Options::default()
    })
    .await;
    let ack = app
        .ack(
            "U0OWNER",
            "/aws staging-readonly secretsmanager get-secret-value --secret-id db",
        )
        .await;
    assert!(
        ack.starts_with(":no_entry:") && ack.contains("it returns secret values"),
        "{ack}"
    );
    for line in [
        "/aws staging-readonly ec2 describe-instances --endpoint-url=http://127.0.0.1:1",
        "/aws staging-readonly ec2 describe-instances --endpoint-url 127.0.0.1:1",
    ] {
        let ack = app.ack("U0OWNER", line).await;
        assert!(ack.starts_with(":no_entry:"), "{line}: {ack}");
        assert!(
            ack.contains("endpoint") || ack.contains("URL"),
            "{line}: {ack}"
        );
    }
    let ack = app
        .ack("U0VIEWER", "/aws prod-readonly ec2 describe-instances")
        .await;
    assert!(ack.starts_with(":no_entry:"), "{ack}");
    let ack = app
        .ack("U0OWNER", "/aws prod-readonly ec2 describe-instances")
        .await;
    assert!(
        ack.contains("AWS profile `prod-readonly` has no credentials configured"),
        "{ack}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");
}

/// Operations whose output carries secrets no redaction rule knows (Lambda environments, task
/// definitions, user data) are refused, and so is a `--query` that reshapes values: `reverse`
/// turns every prefixed token into something no rule matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_bearing_outputs_and_transforming_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(Options {
        config_yaml: Some(bridge_config(
            dir.path(),
            &[("staging-readonly", "http://127.0.0.1:9".into())],
        )),
        ..Options::default()
    })
    .await;
    for (line, why) in [
        (
            "/aws staging-readonly lambda list-functions --query \"Functions[].Environment.Variables\"",
            "environment variables",
        ),
        (
            "/aws staging-readonly lambda get-function-configuration --function-name api",
            "environment variables",
        ),
        (
            "/aws staging-readonly ecs describe-task-definition --task-definition api:7",
            "environment variables",
        ),
        (
            "/aws staging-readonly ec2 describe-launch-template-versions",
            "user data",
        ),
        (
            "/aws staging-readonly ssm get-parameters-by-path --path /app --query \"reverse(Parameters[].Value)\"",
            "`reverse(…)`",
        ),
        (
            "/aws staging-readonly ssm get-parameters-by-path --path /app --query \"Parameters[].join('', reverse(Value))\"",
            "`join(…)`",
        ),
    ] {
        let ack = app.ack("U0OWNER", line).await;
        assert!(ack.starts_with(":no_entry:"), "{line}: {ack}");
        assert!(ack.contains(why), "{line}: {ack}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_answers_hits_the_timeout() {
    aws_cli();
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = seen_tx.send(());
            held.push(stream);
        }
    });
    let app = TestApp::start_with(Options {
        read_timeout: Some("3s"),
        policy_edits: vec![(
            "aws_profiles: [staging-readonly, prod-readonly]",
            "aws_profiles: [staging-readonly, prod-readonly, slow]".into(),
        )],
        config_yaml: Some(bridge_config(
            dir.path(),
            &[("slow", format!("http://127.0.0.1:{port}"))],
        )),
        ..Options::default()
    })
    .await;
    let started = std::time::Instant::now();
    let (main, _) = run(
        &app,
        "U0OWNER",
        "/aws slow ec2 describe-instances",
        "aws ec2 describe-instances --output json",
    )
    .await;
    assert!(
        main.contains(":stop_sign:") && main.contains("timed out after 3s"),
        "{main}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        seen.try_recv().is_ok(),
        "the CLI went to the configured endpoint"
    );
    let audit = app.audit();
    let exec = audit
        .iter()
        .find(|r| r.kind == EventKind::Execution)
        .unwrap();
    assert_eq!(exec.output.as_ref().unwrap().exit_code, None);
    assert!(
        exec.details.as_ref().unwrap()["end"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}
