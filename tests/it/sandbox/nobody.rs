//! The escape attempts again as `nobody`, the way a production pod runs the bridge: bwrap
//! without root, in an unprivileged user namespace. Everything here belongs to `nobody`, so
//! only the sandbox stands between the attempts and the files, and the operator's read-only
//! paths include the whole directory around the state, which the sandbox must still hide.

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use slipway_bridge::config::Config;
use slipway_bridge::exec::sandbox;
use slipway_infra::exec::{ExecResult, ExecSpec, run_to_end};
use slipway_tests::harness::{require_terraform, require_tool};

use super::{NOBODY, assert_write_refused, escape_stack, flat, require_bwrap, writer};

const MARKER: &str = "SLIPWAY_BRIDGE_MARKER=only-the-bridge-has-this";

/// `spec` started through `setpriv` as `nobody`, with no supplementary groups.
fn as_nobody(mut spec: ExecSpec) -> ExecSpec {
    let id = NOBODY.to_string();
    let mut argv: Vec<String> = [
        "setpriv",
        &format!("--reuid={id}"),
        &format!("--regid={id}"),
        "--clear-groups",
        "--",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    argv.append(&mut spec.argv);
    argv[0] = "/usr/bin/setpriv".into();
    ExecSpec { argv, ..spec }
}

fn chown_all(path: &Path) {
    chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_all(&e.unwrap().path());
        }
    }
}

/// A stand-in for the bridge: a process of `nobody`'s with a marker in its environment.
fn bridge_process() -> Child {
    let id = NOBODY.to_string();
    Command::new("setpriv")
        .args([
            &format!("--reuid={id}"),
            &format!("--regid={id}"),
            "--clear-groups",
        ])
        .args(["--", "/usr/bin/env", "-i", MARKER, "sleep", "120"])
        .spawn()
        .expect("setpriv runs")
}

/// The bridge's configuration over `state_dir`, sandboxed or not, with `read_only` added.
fn config(state_dir: &Path, mode: &str, read_only: &Path) -> Config {
    let vars = [
        (
            "SLIPWAY_SLACK_SIGNING_SECRET",
            "nobody-signing-secret".to_string(),
        ),
        ("SLIPWAY_STATE_DIR", state_dir.display().to_string()),
        ("SLIPWAY_SANDBOX", mode.to_string()),
        ("SLIPWAY_SANDBOX_READ_ONLY", read_only.display().to_string()),
    ];
    Config::load_with(None, &|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .expect("config")
}

/// `terraform init` then `plan` in `stack` (inside `tree`), as the bridge builds them, as
/// `nobody`; the plan's result.
async fn plan(config: &Config, tree: &Path, stack: &Path, rc: &Path) -> ExecResult {
    let mut env = slipway_bridge::exec::env::base_env_for(config);
    env.extend([
        ("TF_CLI_CONFIG_FILE".to_string(), rc.display().to_string()),
        ("TF_IN_AUTOMATION".into(), "1".into()),
    ]);
    let access = sandbox::terraform_run(sandbox::terraform(config), tree, rc, stack);
    let mut last = None;
    for words in [
        &["init", "-input=false", "-no-color"][..],
        &["plan", "-input=false", "-no-color"],
    ] {
        let spec = ExecSpec {
            argv: std::iter::once("terraform")
                .chain(words.iter().copied())
                .map(String::from)
                .collect(),
            env: env.clone(),
            cwd: stack.to_path_buf(),
            timeout: Duration::from_secs(60),
            output_cap: 256 * 1024,
            kill_grace: Duration::from_secs(1),
        };
        let r = run_to_end(as_nobody(sandbox::wrap(config, spec, &access))).await;
        if words[0] == "init" {
            assert!(r.end.success(), "init as nobody: {}", r.output);
        }
        last = Some(r);
    }
    last.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_attempts_fail_as_an_unprivileged_user() {
    require_bwrap();
    require_terraform();
    require_tool(
        "setpriv",
        "install util-linux: `apt-get install util-linux`",
    );
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let state_dir = r.join("state");
    for d in [
        "state/audit",
        "state/home",
        "state/terraform/plugin-cache",
        "tree/stacks/app",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let (spool, state_db) = (
        state_dir.join("audit/000001.jsonl"),
        state_dir.join("state.redb"),
    );
    std::fs::write(&spool, "{\"seq\":1}\n").unwrap();
    std::fs::write(&state_db, b"redb\x00state").unwrap();
    let rc = state_dir.join("terraform/cli.tfrc");
    std::fs::write(&rc, "disable_checkpoint = true\n").unwrap();
    let mut bridge = bridge_process();
    let environ = format!("/proc/{}/environ", bridge.id());
    let stack = r.join("tree/stacks/app");
    let text = escape_stack(Path::new(&environ), &state_db, &spool);
    std::fs::write(stack.join("main.tf"), text).unwrap();
    chown_all(r);
    std::thread::sleep(Duration::from_millis(200));

    // Unconfined, nobody reads all three: the attempt is real.
    let open = plan(&config(&state_dir, "none", r), &r.join("tree"), &stack, &rc).await;
    assert!(open.end.success(), "{}", open.output);
    assert!(open.output.contains(MARKER), "{}", open.output);
    std::fs::remove_dir_all(stack.join(".terraform")).unwrap();

    let sandboxed = config(&state_dir, "bwrap", r);
    let shut = plan(&sandboxed, &r.join("tree"), &stack, &rc).await;
    assert!(!shut.end.success(), "{}", shut.output);
    for path in [Path::new(&environ), &state_db, &spool] {
        let failure = format!("no file exists at \"{}\"", path.display());
        assert!(
            flat(&shut.output).contains(&failure),
            "{failure}: {}",
            shut.output
        );
    }
    assert!(!shut.output.contains(MARKER), "{}", shut.output);

    // Writes, as nobody, to files nobody owns: refused inside, done outside.
    let before = std::fs::read(&spool).unwrap();
    let w = run_to_end(as_nobody(writer(&sandboxed, &state_dir, &spool, &state_db))).await;
    assert_write_refused(&w, &state_dir, &spool, &before);
    let open = config(&state_dir, "none", r);
    let scratch = state_dir.join("scratch");
    let w = run_to_end(as_nobody(writer(&open, &state_dir, &scratch, &state_db))).await;
    assert!(w.end.success(), "{}", w.output);
    assert!(state_dir.join("planted").is_file());
    let _ = bridge.kill();
    let _ = bridge.wait();
}
