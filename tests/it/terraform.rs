//! `/tf plan` through the real bridge and the real terraform binary, on `terraform_data` stacks
//! with a local backend in a GitOps checkout.

use std::path::Path;
use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_tests::harness::{Options, TestApp, require_tool};

const LONG: Duration = Duration::from_secs(60);

const APP_STACK: &str = r#"terraform {
  backend "local" {}
}

resource "terraform_data" "web" {
  input = "v1"
}

resource "terraform_data" "db" {
  input = { size = 10 }
}
"#;

const NETWORK_STACK: &str = r#"terraform {
  backend "local" {}
}

resource "terraform_data" "vpc" {
  input = "10.0.0.0/16"
}
"#;

fn terraform(dir: &Path, cli_config: &Path, args: &[&str]) {
    let out = std::process::Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("terraform runs");
    assert!(
        out.status.success(),
        "terraform {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GitOps checkout with two stacks; `network` is applied, so its plan is empty.
pub(crate) fn gitops_checkout(root: &Path) {
    require_tool(
        "terraform",
        "install terraform 1.x (https://developer.hashicorp.com/terraform/install) and put it on PATH",
    );
    for (name, text) in [("app", APP_STACK), ("network", NETWORK_STACK)] {
        let dir = root.join("stacks").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), text).unwrap();
    }
    let rc = root.join("test.tfrc");
    std::fs::write(&rc, "disable_checkpoint = true\n").unwrap();
    let network = root.join("stacks/network");
    terraform(&network, &rc, &["init", "-input=false", "-no-color"]);
    terraform(
        &network,
        &rc,
        &["apply", "-input=false", "-no-color", "-auto-approve"],
    );
    std::fs::remove_file(rc).unwrap();
}

const SHOWN: &str = "terraform plan -input=false -no-color -lock=false";

pub(crate) async fn plan(app: &TestApp, stack: &str) -> (String, String) {
    let ack = app.ack("U0VIEWER", &format!("/tf plan {stack}")).await;
    assert_eq!(
        ack,
        format!("Running `{SHOWN}` on stack {stack} as viewer…")
    );
    let msg = app
        .wait_message(&format!("on *stack {stack}*"), LONG)
        .await
        .expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    (main.blocks.to_string(), thread[0].blocks.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_show_changes_or_none_and_keep_the_plan_with_the_audit_record() {
    let repo = tempfile::tempdir().unwrap();
    gitops_checkout(repo.path());
    let app = TestApp::start_with(Options {
        env: vec![("SLIPWAY_GITOPS_CHECKOUT", repo.path().display().to_string())],
        ..Options::default()
    })
    .await;

    let (main, out) = plan(&app, "app").await;
    assert!(
        main.contains(":white_check_mark:") && main.contains("2 to add, 0 to change, 0 to destroy"),
        "{main}"
    );
    assert!(
        out.contains("*To add*\\n2") && out.contains("*To destroy*\\n0"),
        "{out}"
    );
    assert!(out.contains("terraform_data.web will be created"), "{out}");
    assert!(
        out.contains("the full redacted plan is kept with the audit record"),
        "{out}"
    );
    assert!(
        !out.contains("CLI configuration"),
        "terraform warned: {out}"
    );

    let (main, out) = plan(&app, "network").await;
    assert!(main.contains("finished: *no changes*"), "{main}");
    assert!(out.contains("No changes."), "{out}");
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
    assert_eq!(runs.len(), 2);
    let app_run = runs[0];
    let excerpt = &app_run.output.as_ref().unwrap().excerpt;
    assert!(
        excerpt.contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{excerpt}"
    );
    assert!(excerpt.contains("terraform_data.db will be created"));
    assert!(!excerpt.contains("Warning"), "{excerpt}");
    let details = app_run.details.as_ref().unwrap();
    assert_eq!(details["plan"]["add"], 2);
    assert_eq!(details["stack"], "app");
    assert_eq!(details["init"]["end"], "finished");
    let argv = app_run.command.as_ref().unwrap().argv.clone().unwrap();
    assert_eq!(
        argv[1..],
        ["plan", "-input=false", "-no-color", "-lock=false"]
    );
    assert_eq!(runs[1].details.as_ref().unwrap()["plan"]["add"], 0);

    // The checkout stays as it was; each plan's directory is gone afterwards.
    assert!(!repo.path().join("stacks/app/.terraform").exists());
    assert!(!repo.path().join("stacks/app/terraform.tfstate").exists());
    let runs_dir = app.dir.path().join("state/terraform/runs");
    assert_eq!(std::fs::read_dir(runs_dir).unwrap().count(), 0);
    assert!(app.dir.path().join("state/terraform/cli.tfrc").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_unknown_stacks_are_refused() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("stacks")).unwrap();
    let app = TestApp::start_with(Options {
        env: vec![("SLIPWAY_GITOPS_CHECKOUT", repo.path().display().to_string())],
        ..Options::default()
    })
    .await;
    let ack = app.ack("U0VIEWER", "/tf plan ../../etc").await;
    assert!(
        ack.starts_with(":no_entry:") && ack.contains("not a valid stack name"),
        "{ack}"
    );
    let ack = app.ack("U0VIEWER", "/tf plan billing").await;
    assert!(
        ack.starts_with(":no_entry:") && ack.contains("there is no stack `billing`"),
        "{ack}"
    );
    let ack = app.ack("U0VIEWER", "/tf plan app -chdir=/").await;
    assert!(
        ack.starts_with(":no_entry:") && ack.contains("-chdir"),
        "{ack}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");

    // Known to policy, missing from the repository: said plainly, after the run starts.
    let ack = app.ack("U0VIEWER", "/tf plan network").await;
    assert!(ack.starts_with("Running"), "{ack}");
    let msg = app.wait_message("on *stack network*", LONG).await.unwrap();
    let (main, _) = app.wait_finished(&msg.ts, LONG).await;
    let main = main.blocks.to_string();
    assert!(
        main.contains("could not be prepared: stack `network` has no directory `stacks/network`"),
        "{main}"
    );
}
