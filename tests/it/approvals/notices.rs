//! Approvers are told: a direct message to each eligible approver when a change request opens,
//! whose buttons follow the request; a reminder before it expires, once, to those who haven't
//! approved; the requester told when nobody can approve it.

use super::lifecycle::with_open_pr_on_a_clock;
use super::*;

fn dms(app: &TestApp, channel: &str) -> Vec<slipway_emulators::slack::Message> {
    app.slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == channel)
        .collect()
}

fn shows(m: &slipway_emulators::slack::Message, needle: &str) -> bool {
    m.text.contains(needle) || m.blocks.to_string().contains(needle)
}

async fn dm_shows(app: &TestApp, channel: &str, needle: &str) -> bool {
    app.slack
        .wait_until(LONG, |s| {
            s.messages()
                .iter()
                .any(|m| m.channel == channel && shows(m, needle))
        })
        .await
}

/// The `standard` rule's approvers (approvers or platform-owners), each by their DM.
const ELIGIBLE: [&str; 3] = ["D0APPROVER1", "D0APPROVER2", "D0OWNER"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eligible_approvers_get_a_dm_whose_buttons_follow_the_request() {
    let (app, fx, number) = with_open_pr().await;
    for dm in ELIGIBLE {
        assert!(
            dm_shows(&app, dm, "asks for your approval").await,
            "{dm}: {:?}",
            app.slack.messages()
        );
    }
    assert!(
        dms(&app, "D0OPERATOR").is_empty(),
        "the requester isn't asked"
    );
    assert!(
        dms(&app, "D0VIEWER").is_empty(),
        "nor someone outside the groups"
    );
    assert!(dms(&app, "D0PRODDEPLOY").is_empty());
    let ada = dms(&app, "D0APPROVER1");
    assert_eq!(ada.len(), 1, "told once: {ada:?}");
    assert!(shows(&ada[0], "<@U0OPERATOR>") && shows(&ada[0], "/deploy api staging"));
    assert!(shows(&ada[0], "slipway_approve"), "{:?}", ada[0]);

    // Approve from the DM itself; a review in GitHub meets the quorum.
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    let (status, body) = approve_in_slack(&app, "U0APPROVER1", &ada[0].ts, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        fx.github_wait(|| fx.github.reviews(OWNER, REPO, number).len() == 1)
            .await
    );
    fx.github
        .review(OWNER, REPO, number, "bo-approver", "APPROVE", "lgtm");
    for dm in ELIGIBLE {
        assert!(
            app.slack
                .wait_until(LONG, |_| dms(&app, dm).iter().any(|m| shows(m, "*2 of 2*")
                    && !shows(m, "slipway_approve")
                    && shows(m, "slipway_reject")))
                .await,
            "{dm}: Approve goes once the quorum holds: {:?}",
            dms(&app, dm)
        );
    }
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_goes_once_before_expiry_to_those_who_have_not_approved() {
    let (clock, app, fx, number) = with_open_pr_on_a_clock().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "one of two");
    assert!(message_contains(&app.slack, &ts, "*1 of 2*").await);
    // Sweeps long before the deadline remind nobody.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !app.slack.messages().iter().any(|m| shows(m, "Reminder")),
        "{:?}",
        app.slack.messages()
    );
    // `standard` expires after 24h; the reminder is due an hour before.
    clock.jump(chrono::Duration::minutes(23 * 60 + 30));
    for dm in ["D0APPROVER2", "D0OWNER"] {
        assert!(dm_shows(&app, dm, "Reminder").await, "{dm}");
    }
    // However many sweeps pass: once, and not to whoever approved already.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reminders = |dm| {
        dms(&app, dm)
            .iter()
            .filter(|m| shows(m, "Reminder"))
            .count()
    };
    assert_eq!(reminders("D0APPROVER2"), 1);
    assert_eq!(reminders("D0OWNER"), 1);
    assert_eq!(reminders("D0APPROVER1"), 0, "ada approved");
    assert_eq!(pull(&fx, number)["state"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_is_told_when_nobody_can_approve() {
    let (app, _fx, _number) = with_open_pr_opts(Options {
        policy_edits: vec![(
            "      groups: [approvers, platform-owners]\n      expires_after: 24h",
            "      groups: [release-managers]\n      expires_after: 24h".to_string(),
        )],
        ..Options::default()
    })
    .await;
    let ts = change_message(&app).ts;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(CHANNEL, &ts)
                .iter()
                .any(|m| m.text.contains("Nobody can approve")
                    && m.text.contains("release-managers")))
            .await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    assert!(
        !app.slack
            .messages()
            .iter()
            .any(|m| m.channel.starts_with('D')),
        "no DMs: {:?}",
        app.slack.messages()
    );
}
