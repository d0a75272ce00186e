//! Change windows (`freezes:`), through the real router with signed Slack requests and the
//! GitHub emulator, on a bridge whose clock a test sets: a change during a window is refused
//! naming it; an overrider's `--override-freeze` is signed into the request, audited and shown
//! in the PR; anyone else's is refused; a PR approved during a window isn't let merge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use slipway_bridge::clock::Clock;
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_core::change::FreezeOverride;
use slipway_core::policy::Outcome;
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO};
use slipway_tests::harness::{Options, TestApp};

use crate::changes::{change_file, wait_pulls};

const LONG: Duration = Duration::from_secs(30);

/// Friday 16:00 to midnight in Berlin, over protected resources; owners may override it.
const WINDOW: &str = r#"freezes:
  - name: friday-afternoon
    reason: no production changes on Friday afternoons
    protected: true
    weekly: { days: [fri], from: "16:00", to: "24:00", timezone: Europe/Berlin }
    overriders: { roles: [owner] }
limits:
  timeouts:"#;

/// Real time moved to an instant a test chooses, then running on; it can be moved again.
#[derive(Debug)]
struct SetClock(Mutex<chrono::Duration>);

impl SetClock {
    fn at(t: DateTime<Utc>) -> Arc<SetClock> {
        Arc::new(SetClock(Mutex::new(t - Utc::now())))
    }
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t - Utc::now();
    }
}

impl Clock for SetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

/// This week's Friday (or the next one) at `hh:mm` UTC. 15:30 UTC is 16:30 or 17:30 in Berlin
/// (inside the window); 13:00 UTC is 14:00 or 15:00 (before it).
fn friday_utc(hh: u32, mm: u32) -> DateTime<Utc> {
    let today = Utc::now().date_naive();
    let ahead =
        (7 + Weekday::Fri.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
    let day = today + chrono::Duration::days(i64::from(ahead));
    day.and_time(NaiveTime::from_hms_opt(hh, mm, 0).unwrap())
        .and_utc()
}

/// The example policy with the window, and the owner also a production deployer (the
/// `prod-deploys-only` ACL would refuse her deploys otherwise).
fn options(fx: &GitOpsFixture, clock: Arc<SetClock>) -> Options {
    Options {
        env: fx.env.clone(),
        config_yaml: Some(fx.config_yaml.clone()),
        policy_edits: vec![
            ("limits:\n  timeouts:", WINDOW.to_string()),
            (
                "groups: [engineering, platform-owners]",
                "groups: [engineering, platform-owners, prod-deploys]".to_string(),
            ),
        ],
        clock: Some(clock),
        ..Options::default()
    }
}

async fn during_the_window() -> (TestApp, GitOpsFixture) {
    let fx = gitops::start().await;
    let app = TestApp::start_with(options(&fx, SetClock::at(friday_utc(15, 30)))).await;
    (app, fx)
}

fn decisions(app: &TestApp) -> Vec<AuditRecord> {
    app.audit()
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_a_freeze_is_refused_naming_the_window_its_reason_and_end() {
    let (app, fx) = during_the_window().await;
    for line in ["/deploy api production --apply", "/deploy api production"] {
        let ack = app.ack("U0PRODDEPLOY", line).await;
        for part in [
            ":no_entry:",
            "`service:api/production`",
            "`friday-afternoon`",
            "no production changes on Friday afternoons",
            " until ",
            " UTC: ",
            "holders of role owner",
            "--override-freeze \"<reason>\"",
        ] {
            assert!(ack.contains(part), "{line}: {part} in {ack}");
        }
    }
    // Staging isn't protected: the window doesn't cover it.
    let ack = app.ack("U0PRODDEPLOY", "/deploy api staging").await;
    assert!(ack.starts_with("Dry run of"), "{ack}");

    let refused: Vec<_> = decisions(&app)
        .into_iter()
        .filter_map(|r| r.decision)
        .filter(|d| d.rule == "freeze")
        .collect();
    assert_eq!(refused.len(), 2, "both refusals are audited");
    assert!(
        refused
            .iter()
            .all(|d| d.outcome == Outcome::Deny && d.reason.contains("friday-afternoon"))
    );
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains("slipway_refusals_total{reason=\"freeze\"} 2"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty(), "no PR opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_overrides_a_freeze_with_a_reason_the_signed_request_the_audit_and_the_pr_keep() {
    let (app, fx) = during_the_window().await;
    let ack = app
        .ack(
            "U0OWNER",
            r#"/deploy api production --apply --override-freeze "hotfix for INC-42""#,
        )
        .await;
    assert!(ack.starts_with("Opening a pull request"), "{ack}");
    let pulls = wait_pulls(&fx, 1).await;
    let branch = pulls[0]["head"]["ref"].as_str().unwrap();
    let cr = change_file(&fx, branch);
    let expected = FreezeOverride {
        windows: vec!["friday-afternoon".into()],
        reason: "hotfix for INC-42".into(),
    };
    assert_eq!(cr.freeze_override.as_ref(), Some(&expected));
    let keys =
        slipway_core::change::Keyring::from(vec![("test".to_string(), gitops::verifying_key())]);
    slipway_core::change::verify(&cr, &keys, cr.created_at).expect("signed with the override");

    let body = pulls[0]["body"].as_str().unwrap();
    for part in [
        "Freeze overridden",
        "`friday-afternoon`",
        "olga.owner@example.com",
        "hotfix for INC-42",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    let decision = decisions(&app)
        .into_iter()
        .find(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| d.outcome == Outcome::Approval)
        })
        .expect("the approval decision");
    assert_eq!(
        decision.details.unwrap()["freeze_override"]["reason"],
        "hotfix for INC-42"
    );
    // The change-request record follows the PR.
    let opened = || {
        app.audit()
            .into_iter()
            .find(|r| r.kind == EventKind::ChangeRequest)
    };
    assert!(
        fx.github_wait(|| opened().is_some()).await,
        "the change request record"
    );
    let opened = opened().unwrap();
    assert_eq!(
        opened.details.unwrap()["freeze_override"],
        serde_json::json!({"windows": ["friday-afternoon"], "reason": "hotfix for INC-42"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_the_window_does_not_name_may_not_override_it() {
    let (app, fx) = during_the_window().await;
    let ack = app
        .ack(
            "U0PRODDEPLOY",
            r#"/deploy api production --apply --override-freeze "it's urgent""#,
        )
        .await;
    for part in [
        ":no_entry:",
        "`friday-afternoon`",
        "You may not override it",
        "holders of role owner",
    ] {
        assert!(ack.contains(part), "{part} in {ack}");
    }
    assert!(decisions(&app).iter().any(|r| {
        r.decision
            .as_ref()
            .is_some_and(|d| d.rule == "freeze.override-refused" && d.outcome == Outcome::Deny)
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty(), "no PR opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_opened_before_a_window_and_approved_during_it_gets_a_failing_approval_status() {
    let fx = gitops::start().await;
    let clock = SetClock::at(friday_utc(13, 0));
    let app = crate::approvals::start_with(&fx, options(&fx, clock.clone())).await;
    let ack = app
        .ack("U0PRODDEPLOY", "/deploy api production --apply")
        .await;
    assert!(ack.starts_with("Opening a pull request"), "{ack}");
    let pulls = wait_pulls(&fx, 1).await;
    let (number, head) = (
        pulls[0]["number"].as_u64().unwrap(),
        pulls[0]["head"]["sha"].as_str().unwrap().to_string(),
    );
    clock.set(friday_utc(15, 30));
    for who in ["ada-approver", "bo-approver"] {
        fx.github
            .review(OWNER, REPO, number, who, "APPROVE", "lgtm");
    }
    let approval = || {
        fx.github
            .statuses(OWNER, REPO, &head)
            .into_iter()
            .find(|s| s["context"] == "slipway/approval")
    };
    assert!(
        fx.github_wait(|| approval().is_some_and(|s| s["state"] == "failure"))
            .await,
        "{:?}",
        approval()
    );
    let status = approval().unwrap();
    assert!(
        status["description"]
            .as_str()
            .unwrap()
            .contains("frozen by window friday-afternoon"),
        "{status}"
    );
    assert_eq!(
        fx.github.pulls(OWNER, REPO)[0]["state"],
        "open",
        "not merged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_confirmed_after_the_window_began_is_refused_when_the_pr_would_open() {
    let fx = gitops::start().await;
    let clock = SetClock::at(friday_utc(13, 0));
    let mut opts = options(&fx, clock.clone());
    opts.env.push(("SLIPWAY_PENDING_TTL", "4h".to_string()));
    let app = TestApp::start_with(opts).await;
    let ack = app.ack("U0PRODDEPLOY", "/deploy api production").await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    let has = |text: &'static str| {
        move |s: &slipway_emulators::slack::SlackEmulator| {
            s.responses()
                .iter()
                .any(|r| r.body.to_string().contains(text))
        }
    };
    assert!(app.slack.wait_until(LONG, has("slipway_confirm")).await);
    let resp = app
        .slack
        .responses()
        .into_iter()
        .find(|r| r.body.to_string().contains("slipway_confirm"))
        .unwrap();
    let token = crate::changes::button_value(&resp.body["blocks"], "slipway_confirm").unwrap();
    clock.set(friday_utc(15, 30));
    app.click("U0PRODDEPLOY", "slipway_confirm", &token, "1.1")
        .await;
    assert!(
        app.slack
            .wait_until(LONG, has("frozen by window `friday-afternoon`"))
            .await,
        "{:?}",
        app.slack.responses()
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty(), "no PR opened");
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains("slipway_refusals_total{reason=\"freeze\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_with_an_object_the_window_covers_is_refused_when_the_pr_would_open() {
    let (app, fx) = during_the_window().await;
    // The request is for namespace `web`; its manifest also holds the `prod` namespace, which
    // is protected (`kube:*/prod`), so the window covers it.
    let path = "apps/web/with-ns.yaml";
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: web\ndata:\n  level: info\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n";
    fx.github.push_direct(
        OWNER,
        REPO,
        "main",
        &[(path, manifest)],
        "add a manifest",
        "olga-owner",
    );
    let ack = app
        .ack(
            "U0OPERATOR",
            &format!("/kubectl apply -f {path} -n web --apply"),
        )
        .await;
    assert!(ack.starts_with("Opening a pull request"), "{ack}");
    let refused = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses().iter().any(|r| {
            let body = r.body.to_string();
            body.contains("`kube:staging/prod`") && body.contains("`friday-afternoon`")
        })
    };
    assert!(
        app.slack.wait_until(LONG, refused).await,
        "{:?}",
        app.slack.responses()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty(), "no PR opened");
}
