//! Generated docs in the repo must equal a fresh generation.

use slipway_tests::repo_root;

#[test]
fn generated_docs_are_up_to_date() {
    let root = repo_root();
    for (rel, fresh) in slipway_bridge::docs::generate(&root).expect("generates") {
        let committed = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
        assert!(
            committed == fresh,
            "{rel} is out of date: run `cargo run -p slipway-bridge -- docs`"
        );
    }
}

#[test]
fn docs_check_command_agrees() {
    let out = crate::slipway(&["docs", "--check"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
}

#[test]
fn the_terraform_module_is_formatted_and_pins_the_workflow() {
    slipway_tests::harness::require_tool(
        "terraform",
        "this machine image ships terraform 1.11 at /usr/local/bin/terraform",
    );
    let dir = repo_root().join("deploy/terraform");
    let out = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "."])
        .current_dir(&dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform fmt: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    assert!(
        main.contains("token.actions.githubusercontent.com:aud")
            && main.contains(":job_workflow_ref:"),
        "the trust policy pins aud, sub and the workflow"
    );
    assert!(
        main.contains("object_lock_enabled = true") && main.contains("COMPLIANCE")
            || main.contains("audit_retention_mode")
    );
}
