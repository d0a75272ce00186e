//! Terraform changes: re-verified, re-planned against the approved digest, applied with OIDC credentials once; drift and timeouts.

use super::*;

pub(super) fn tf_stack(state: &Path, input: &str, provisioner: Option<&str>) -> String {
    let prov = provisioner
        .map(|cmd| format!("\n  provisioner \"local-exec\" {{\n    command = \"{cmd}\"\n  }}\n"))
        .unwrap_or_default();
    format!(
        "terraform {{\n  backend \"local\" {{\n    path = \"{}\"\n  }}\n}}\n\nresource \"terraform_data\" \"app\" {{\n  input = \"{input}\"\n{prov}}}\n",
        state.display()
    )
}

fn terraform(dir: &Path, args: &[&str]) -> String {
    let rc = dir.join("test.tfrc");
    std::fs::write(&rc, "disable_checkpoint = true\n").unwrap();
    let out = std::process::Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The digest the bridge would pin: plan the stack as it stands (with its state) and digest.
pub(super) fn pinned_digest(fx: &Fx, main_tf: &str) -> String {
    let dir = tempfile::tempdir_in(fx.dir.path()).unwrap();
    std::fs::write(dir.path().join("main.tf"), main_tf).unwrap();
    terraform(dir.path(), &["init", "-input=false", "-no-color"]);
    terraform(
        dir.path(),
        &[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            "-out=p.tfplan",
        ],
    );
    let json = terraform(dir.path(), &["show", "-json", "p.tfplan"]);
    slipway_core::change::plan_digest(&slipway_core::redact::redactor().redact(&json)).unwrap()
}

pub(super) fn tf_rendered(digest: &str) -> Rendered {
    Rendered {
        stack_dir: Some("stacks/app".into()),
        plan_sha256: Some(digest.into()),
        plan_summary: Some("Plan: 1 to add, 0 to change, 0 to destroy.".into()),
        ..Rendered::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_change_is_reverified_and_applied_with_oidc_credentials_once() {
    slipway_tests::harness::require_terraform();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let main_tf = tf_stack(&state, "v2", None);
    let fx = fixture(&[], &[("stacks/app/main.tf", main_tf.clone())]).await;
    let sts = crate::audit::moto(fx.dir.path(), None).await;
    let cr = change(
        &fx,
        "a1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    assert_eq!(cr.policy.approval.rule, "stacks");
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let cfg = config(
        &fx,
        &format!(
            "aws: {{ region: us-east-1, sts_endpoint: \"{}\" }}\nstacks:\n  app: {{ role_arn: \"{ROLE}\" }}\n",
            sts.url()
        ),
    );

    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert!(
        crate::stdout(&out).contains("changes/") && crate::stdout(&out).contains(": executed"),
        "{}",
        crate::stdout(&out)
    );

    // terraform applied the approved plan: the resource is in the state.
    let tfstate = std::fs::read_to_string(&state).expect("state written by the apply");
    assert!(
        tfstate.contains("terraform_data") && tfstate.contains("\"v2\""),
        "{tfstate}"
    );

    // The PR says what happened; the merge commit has the status; the lock is released.
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Executed")
            && body.contains("took ")
            && body.contains("terraform apply -input=false -no-color slipway.tfplan"),
        "{body}"
    );
    assert!(body.contains("Apply complete!"), "{body}");
    assert!(
        body.contains("assumed-role/slipway-app"),
        "the role session is named: {body}"
    );
    assert!(
        comments(&fx, number)
            .iter()
            .any(|c| c.contains(&format!("<!-- slipway-runner:{}:started -->", cr.id)))
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "success");
    assert!(!lock_exists(&fx, &cr), "the lock was released");

    // One OIDC token for STS, for the default branch; the audit record names the run and the role.
    let issued = fx.oidc.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["aud"], "sts.amazonaws.com");
    let records = audit(&fx);
    let done = executed_record(&fx);
    assert_eq!(done.writer, "runner:9000001-1");
    assert_eq!(done.change_id.as_deref(), Some(cr.id.as_str()));
    assert_eq!(
        done.runner.as_ref().unwrap().oidc_subject.as_deref(),
        Some("repo:acme/gitops:ref:refs/heads/main")
    );
    assert!(
        done.details.as_ref().unwrap()["assumed_role"]
            .as_str()
            .unwrap()
            .contains("assumed-role/slipway-app")
    );
    assert_eq!(
        done.pr.as_ref().unwrap().merge_sha.as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(done.approvals.len(), 2);
    assert!(
        done.output
            .as_ref()
            .unwrap()
            .excerpt
            .contains("Apply complete")
    );
    assert!(slipway_core::audit::verify_chain(&records).is_ok());

    // A re-run of the workflow on the same commit executes nothing and says so.
    let before = std::fs::read_to_string(&state).unwrap();
    let n_comments = comments(&fx, number).len();
    let again = run(&fx, &ws, &sha, &cfg, &[("GITHUB_RUN_ATTEMPT", "2".into())]).await;
    assert_eq!(again.status.code(), Some(0), "{}", crate::stderr(&again));
    assert!(
        crate::stdout(&again).contains("already-done")
            && crate::stdout(&again).contains("nothing was done again"),
        "{}",
        crate::stdout(&again)
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        before,
        "no second apply"
    );
    assert_eq!(comments(&fx, number).len(), n_comments, "no new comments");
    assert_eq!(fx.oidc.issued().len(), 1, "no new credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_drifted_after_approval_is_refused() {
    slipway_tests::harness::require_terraform();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let main_tf = tf_stack(&state, "v2", None);
    let fx = fixture(&[], &[("stacks/app/main.tf", main_tf.clone())]).await;
    let cr = change(
        &fx,
        "d1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    // After approval, someone applies the stack out of band: the state no longer matches the plan.
    let oob = tempfile::tempdir_in(fx.dir.path()).unwrap();
    std::fs::write(oob.path().join("main.tf"), tf_stack(&state, "v3", None)).unwrap();
    terraform(oob.path(), &["init", "-input=false", "-no-color"]);
    terraform(
        oob.path(),
        &["apply", "-input=false", "-no-color", "-auto-approve"],
    );
    let before = std::fs::read_to_string(&state).unwrap();

    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Refused")
            && body.contains("differs from the approved plan")
            && body.contains("Nothing was applied"),
        "{body}"
    );
    assert!(
        !body.contains("terraform apply -input"),
        "apply never ran: {body}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        before,
        "the state is untouched"
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "failure");
    assert!(
        !lock_exists(&fx, &cr),
        "the lock is released on failure too"
    );
    assert!(
        audit(&fx)
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::Rejection
                && r.change_id.as_deref() == Some(cr.id.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_process_group_and_reports_it() {
    slipway_tests::harness::require_terraform();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let pid_file = state_dir.path().join("sleep.pid");
    // The apply starts a provisioner that never ends on its own.
    let main_tf = tf_stack(
        &state,
        "v2",
        Some(&format!("echo $$ > {}; exec sleep 300", pid_file.display())),
    );
    let fx = fixture(
        &[("change: 15m", "change: 8s")],
        &[("stacks/app/main.tf", main_tf.clone())],
    )
    .await;
    let cr = change(
        &fx,
        "t1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let started = std::time::Instant::now();
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Partially executed")
            && body.contains("timed out after 8s")
            && body.contains("process group was killed"),
        "{body}"
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "error");
    // The provisioner's process, a grandchild of the runner, is gone.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the provisioner started")
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
    };
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "process {pid} survived the timeout");
    let rec = audit(&fx)
        .into_iter()
        .find(|r| {
            r.details
                .as_ref()
                .is_some_and(|d| d["outcome"] == "partial")
        })
        .expect("partial execution record");
    assert!(
        rec.details.unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}
