use std::time::Duration;

use super::*;
use crate::exec::run_to_end;

fn bwrap() -> Bwrap {
    let program = Bwrap::find(crate::exec::DEFAULT_PATH).unwrap_or_else(|e| panic!("{e}"));
    Bwrap {
        program,
        read_only: SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect(),
        hidden: Vec::new(),
        hidden_files: Vec::new(),
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

/// Only granted paths are seen; read-only ones refuse writes, read-write ones take them, a
/// hidden directory under a read-only path shows up empty and a hidden file can't be opened.
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
    std::fs::write(ro.join("config.yaml"), "secret: 1").unwrap();
    let mut sandbox = bwrap();
    sandbox.read_only.push(dir.path().to_path_buf());
    sandbox.hidden.push(secret.clone());
    sandbox.hidden_files.push(ro.join("config.yaml"));
    let access = Access {
        read_only: vec![ro.clone()],
        read_write: vec![rw.clone()],
        ..Access::default()
    };
    let script = format!(
        "cat {s}/f; echo x > {ro}/f; echo after > {rw}/f; echo x > {s}/g; cat {ro}/config.yaml; \
         ls -A {s} | wc -l",
        s = secret.display(),
        ro = ro.display(),
        rw = rw.display()
    );
    let r = run_to_end(sandbox.wrap(spec(&script, &[]), &access)).await;
    let (s, ro_f) = (secret.display(), ro.join("f"));
    for failure in [
        format!("{s}/f: No such file"),
        format!("cannot create {}: Read-only file system", ro_f.display()),
        format!("cannot create {s}/g: Permission denied"),
        format!("{}: Permission denied", ro.join("config.yaml").display()),
    ] {
        assert!(r.output.contains(&failure), "{failure}: {}", r.output);
    }
    assert!(!r.output.contains("secret: 1"), "{}", r.output);
    assert_eq!(r.output.lines().last(), Some("0"), "{}", r.output);
    assert_eq!(std::fs::read_to_string(ro_f).unwrap(), "before");
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "after\n");
    assert_eq!(std::fs::read_to_string(secret.join("f")).unwrap(), "before");
}
