use std::time::Duration;

use super::*;
use crate::exec::run_to_end;

fn bwrap() -> Bwrap {
    let program = Bwrap::find(crate::exec::DEFAULT_PATH).unwrap_or_else(|e| panic!("{e}"));
    Bwrap {
        program,
        read_only: SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect(),
        hidden: Vec::new(),
    }
}

fn spec(script: &str, env: &[(&str, &str)]) -> ExecSpec {
    ExecSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        cwd: std::env::temp_dir(),
        timeout: Duration::from_secs(20),
        output_cap: 64 * 1024,
        kill_grace: Duration::from_secs(1),
    }
}

#[test]
fn a_missing_bwrap_names_the_package() {
    let e = Bwrap::find("/nonexistent").unwrap_err();
    assert!(e.contains("apt-get install bubblewrap"), "{e}");
}

/// The environment reaches the tool, but never bwrap's command line (world-readable in /proc).
#[tokio::test]
async fn the_environment_passes_through_and_stays_off_the_command_line() {
    let wrapped = bwrap().wrap(
        spec(
            "echo marker=$RUN_MARKER home=$HOME; id -u; pwd; ls /proc | grep -c '^[0-9]'",
            &[
                ("RUN_MARKER", "m4rker-value"),
                ("HOME", "/var/lib/slipway/home"),
            ],
        ),
        &Access::default(),
    );
    assert!(!wrapped.argv.join(" ").contains("m4rker-value"));
    let r = run_to_end(wrapped).await;
    assert!(r.end.success(), "{:?}: {}", r.end, r.output);
    let lines: Vec<&str> = r.output.lines().collect();
    assert_eq!(lines[0], "marker=m4rker-value home=/tmp", "{}", r.output);
    assert_eq!(lines[1], "65534", "{}", r.output);
    assert_eq!(lines[2], "/tmp", "{}", r.output);
    // Its own pid namespace: bwrap's init, the shell and ls (and grep), not the host's.
    let pids: usize = lines[3].parse().unwrap();
    assert!(pids <= 5, "{}", r.output);
}

/// Only granted paths are seen; read-only ones refuse writes, read-write ones take them, and a
/// hidden directory under a read-only path shows up empty.
#[tokio::test]
async fn only_granted_paths_are_visible_and_writable() {
    let dir = tempfile::tempdir().unwrap();
    let (ro, rw, secret) = (
        dir.path().join("ro"),
        dir.path().join("rw"),
        dir.path().join("secret"),
    );
    for d in [&ro, &rw, &secret] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("f"), "before").unwrap();
    }
    let mut sandbox = bwrap();
    sandbox.read_only.push(dir.path().to_path_buf());
    sandbox.hidden.push(secret.clone());
    let access = Access {
        read_only: vec![ro.clone()],
        read_write: vec![rw.clone()],
        ..Access::default()
    };
    let script = format!(
        "cat {s}/f; echo x > {ro}/f; echo after > {rw}/f; echo x > {s}/g; ls -A {s} | wc -l",
        s = secret.display(),
        ro = ro.display(),
        rw = rw.display()
    );
    let r = run_to_end(sandbox.wrap(spec(&script, &[]), &access)).await;
    assert!(r.output.contains("No such file"), "{}", r.output);
    assert!(r.output.contains("Read-only file system"), "{}", r.output);
    assert!(r.output.contains("Permission denied"), "{}", r.output);
    assert_eq!(r.output.lines().last(), Some("0"), "{}", r.output);
    assert_eq!(std::fs::read_to_string(ro.join("f")).unwrap(), "before");
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "after\n");
    assert_eq!(std::fs::read_to_string(secret.join("f")).unwrap(), "before");
}
