//! Sandbox escape attempts (issue 21). A stack's plan is code the bridge runs with credentials:
//! terraform's built-in `file()` reads any path the process can see. Under the sandbox it sees
//! neither the bridge's `/proc/<pid>/environ`, its state database nor its audit spool, and no
//! process it runs can write either. Each attempt is also made without the sandbox, to show the
//! test would catch an escape, and again as `nobody` (the non-root path a production pod uses).

use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_bridge::config::Config;
use slipway_bridge::exec::sandbox;
use slipway_infra::exec::{ExecResult, ExecSpec, run_to_end};
use slipway_tests::harness::{Options, TestApp, require_terraform, require_tool};

const LONG: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

pub(crate) fn require_bwrap() {
    require_tool("bwrap", "install bubblewrap: `apt-get install bubblewrap`");
}

/// One entry of this process's own environment that no sandboxed tool is given: seeing it in
/// a plan means the plan read the bridge's environment.
fn environ_marker() -> String {
    let environ = std::fs::read("/proc/self/environ").expect("the test reads its own environ");
    String::from_utf8_lossy(&environ)
        .split('\0')
        .find(|e| e.starts_with("CARGO_MANIFEST_DIR="))
        .expect("cargo sets CARGO_MANIFEST_DIR for tests")
        .to_string()
}

/// A stack whose plan reads the bridge's environment, state database and a spool file.
pub(crate) fn escape_stack(environ: &Path, state_db: &Path, spool: &Path) -> String {
    format!(
        r#"terraform {{
  backend "local" {{}}
}}

output "environ" {{
  value = file("{}")
}}

output "state_db" {{
  value = filebase64("{}")
}}

output "spool" {{
  value = file("{}")
}}
"#,
        environ.display(),
        state_db.display(),
        spool.display()
    )
}

/// The bridge's state database: `state.redb` with change requests on, else the identity links
/// every bridge keeps.
fn state_db(state_dir: &Path) -> PathBuf {
    ["state.redb", "identity.redb"]
        .iter()
        .map(|f| state_dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no state database in {}", state_dir.display()))
}

/// Terraform's and Slack's text with line breaks (real or JSON-escaped) as single spaces:
/// terraform wraps long paths.
pub(crate) fn flat(text: &str) -> String {
    text.replace("\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first spool file of `state_dir` (the audit segment records are appended to).
fn spool_file(state_dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(state_dir.join("audit"))
        .expect("the audit spool")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.into_iter().next().expect("a spool file")
}

/// A bridge over a GitOps checkout, with `sandbox` as `execution.sandbox`.
async fn bridge(repo: &Path, mode: &str) -> TestApp {
    TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_GITOPS_CHECKOUT", repo.display().to_string()),
            ("SLIPWAY_SANDBOX", mode.to_string()),
        ],
        ..Options::default()
    })
    .await
}

/// `/tf plan app` on a stack that tries to read the bridge's files; the plan's thread reply and
/// its audit excerpt.
async fn plan_escape(app: &TestApp, repo: &Path) -> (String, String, String) {
    // A first command, so the spool has a file to aim at.
    app.ack("U0VIEWER", "/slipway whoami").await;
    let state_dir = app.dir.path().join("state");
    let state_db = state_db(&state_dir);
    let environ = PathBuf::from(format!("/proc/{}/environ", std::process::id()));
    let spool = spool_file(&state_dir);
    let dir = repo.join("stacks/app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        escape_stack(&environ, &state_db, &spool),
    )
    .unwrap();
    app.ack("U0VIEWER", "/tf plan app").await;
    let msg = app
        .wait_message("on *stack app*", LONG)
        .await
        .expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    let excerpt = app
        .audit()
        .into_iter()
        .rfind(|r| r.kind == slipway_core::audit::EventKind::Execution)
        .and_then(|r| r.output.map(|o| o.excerpt))
        .expect("the plan's execution record");
    let paths = format!(
        "{}\n{}\n{}",
        environ.display(),
        state_db.display(),
        spool.display()
    );
    (
        format!("{}\n{}", main.blocks, thread[0].blocks),
        excerpt,
        paths,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_cannot_read_the_bridge_environ_state_database_or_spool() {
    require_bwrap();
    require_terraform();
    let marker = environ_marker();

    // Without the sandbox the same stack reads the bridge's environment: the attempt is real.
    let open = tempfile::tempdir().unwrap();
    let app = bridge(open.path(), "none").await;
    let (_, excerpt, _) = plan_escape(&app, open.path()).await;
    assert!(
        excerpt.contains(&marker),
        "unsandboxed, the plan reads the environ: {excerpt}"
    );
    drop(app);

    let repo = tempfile::tempdir().unwrap();
    let app = bridge(repo.path(), "bwrap").await;
    let (shown, excerpt, paths) = plan_escape(&app, repo.path()).await;
    let (shown_flat, excerpt_flat) = (flat(&shown), flat(&excerpt));
    for path in paths.lines() {
        let failure = format!("no file exists at \\\"{path}\\\"");
        assert!(shown_flat.contains(&failure), "{failure} in Slack: {shown}");
        let failure = format!("no file exists at \"{path}\"");
        assert!(excerpt_flat.contains(&failure), "{failure}: {excerpt}");
    }
    assert!(shown.contains("exited with code 1"), "{shown}");
    let everything = format!("{:?}{shown}{excerpt}", app.slack.messages());
    assert!(
        !everything.contains(&marker),
        "the environ leaked: {everything}"
    );
}

/// A sandboxed process with what a kubectl read is granted: it can't append to the spool,
/// plant a file in the state directory or see `state.redb`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_process_cannot_write_the_spool_or_the_state_directory() {
    require_bwrap();
    let app = TestApp::start().await;
    app.ack("U0VIEWER", "/slipway whoami").await;
    let state_dir = app.dir.path().join("state");
    let spool = spool_file(&state_dir);
    let before = std::fs::read(&spool).unwrap();
    let config = &app.state.config;
    let db = state_db(&state_dir);
    let r = run_to_end(writer(config, &state_dir, &spool, &db)).await;
    assert_write_refused(&r, &state_dir, &spool, &before);

    // The same process unconfined does write: the attempt is real.
    let mut open = config.clone();
    open.execution.sandbox = None;
    let r = run_to_end(writer(&open, &state_dir, &state_dir.join("scratch"), &db)).await;
    assert!(r.end.success(), "{}", r.output);
    assert!(state_dir.join("planted").is_file());
}

/// `sh` appending to `target` and planting `<state_dir>/planted`, as the bridge would run it
/// for a kubectl read of `staging` (only tests run a shell).
pub(crate) fn writer(config: &Config, state_dir: &Path, target: &Path, db: &Path) -> ExecSpec {
    let script = format!(
        "echo forged >> {t}; echo x > {s}/planted; ls {db}",
        t = target.display(),
        s = state_dir.display(),
        db = db.display()
    );
    let spec = ExecSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script],
        env: slipway_bridge::exec::env::base_env_for(config),
        cwd: std::env::temp_dir(),
        timeout: Duration::from_secs(20),
        output_cap: 64 * 1024,
        kill_grace: Duration::from_secs(1),
    };
    sandbox::wrap(config, spec, &sandbox::kubectl(config, "staging"))
}

pub(crate) fn assert_write_refused(r: &ExecResult, state_dir: &Path, spool: &Path, before: &[u8]) {
    assert!(!r.end.success(), "{}", r.output);
    let planted = state_dir.join("planted");
    // Out of sight ("Directory nonexistent"), or under the read-only mask ("Permission denied").
    for failure in [
        format!("cannot create {}: ", spool.display()),
        format!("cannot create {}: ", planted.display()),
        "No such file or directory".to_string(),
    ] {
        assert!(r.output.contains(&failure), "{failure}: {}", r.output);
    }
    assert_eq!(
        std::fs::read(spool).unwrap(),
        before,
        "the spool is unchanged"
    );
    assert!(!state_dir.join("planted").exists());
}

mod nobody;
