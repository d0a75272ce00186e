use chrono::{DateTime, Utc};

use super::super::Policy;
use super::FreezeCheck;

const EXAMPLE: &str = include_str!("../../../../policy/slipway.yaml");

fn policy(freezes: &str) -> Policy {
    let text = format!("{EXAMPLE}\nfreezes:\n{freezes}");
    Policy::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// The window in force on `resource` at `t` and when it ends, if any.
fn frozen(p: &Policy, resource: &str, t: &str) -> Option<(String, String)> {
    p.freezes_at(resource, at(t))
        .first()
        .map(|f| (f.window.name.clone(), f.ends_at.to_rfc3339()))
}

const FRIDAY_BERLIN: &str = r#"  - name: friday-afternoon
    reason: no production changes on Friday afternoons
    protected: true
    weekly: { days: [fri], from: "16:00", to: "24:00", timezone: Europe/Berlin }
    overriders: { roles: [owner] }
"#;

#[test]
fn a_weekly_window_holds_from_its_start_to_its_end_in_local_time() {
    let p = policy(FRIDAY_BERLIN);
    let prod = "service:api/production";
    // 2026-12-04 is a Friday; Berlin is UTC+1 in winter.
    assert_eq!(
        frozen(&p, prod, "2026-12-04T14:59:59Z"),
        None,
        "15:59 in Berlin"
    );
    let window = Some((
        "friday-afternoon".to_string(),
        "2026-12-04T23:00:00+00:00".to_string(),
    ));
    assert_eq!(
        frozen(&p, prod, "2026-12-04T15:00:00Z"),
        window,
        "16:00 sharp"
    );
    assert_eq!(frozen(&p, prod, "2026-12-04T22:59:59Z"), window);
    assert_eq!(
        frozen(&p, prod, "2026-12-04T23:00:00Z"),
        None,
        "midnight: Saturday"
    );
    assert_eq!(frozen(&p, prod, "2026-12-03T15:30:00Z"), None, "a Thursday");
    assert_eq!(
        frozen(&p, prod, "2026-12-11T15:30:00Z"),
        window.map(|_| (
            "friday-afternoon".to_string(),
            "2026-12-11T23:00:00+00:00".to_string(),
        )),
        "every week"
    );
}

#[test]
fn a_resource_the_window_does_not_cover_is_never_frozen() {
    let p = policy(FRIDAY_BERLIN);
    for resource in ["service:api/staging", "kube:staging/web", "stack:network"] {
        assert_eq!(
            frozen(&p, resource, "2026-12-04T15:30:00Z"),
            None,
            "{resource}"
        );
    }
    for resource in [
        "kube:production/web",
        "kube:production",
        "kube:staging/prod",
    ] {
        assert!(
            frozen(&p, resource, "2026-12-04T15:30:00Z").is_some(),
            "{resource} is protected"
        );
    }
}

#[test]
fn weekly_windows_follow_daylight_saving_time() {
    let p = policy(FRIDAY_BERLIN);
    let prod = "service:api/production";
    // 2026-07-03 is a Friday; Berlin is UTC+2 in summer: 16:00 is 14:00 UTC.
    assert_eq!(frozen(&p, prod, "2026-07-03T13:59:00Z"), None);
    assert_eq!(
        frozen(&p, prod, "2026-07-03T14:00:00Z").map(|f| f.1),
        Some("2026-07-03T22:00:00+00:00".to_string())
    );
    // A weekend window that spans the switch to summer time (2026-03-29, 02:00 → 03:00).
    let weekend = policy(
        r#"  - name: weekend
    reason: weekend
    protected: true
    weekly: { days: [sat, sun], from: "00:00", to: "24:00", timezone: Europe/Berlin }
  - name: night
    reason: the night of the switch
    resources: ["stack:*"]
    weekly: { days: [sun], from: "01:00", to: "02:30", timezone: Europe/Berlin }
"#,
    );
    assert_eq!(
        frozen(&weekend, prod, "2026-03-28T12:00:00Z"),
        Some((
            "weekend".to_string(),
            "2026-03-29T22:00:00+00:00".to_string()
        )),
        "Saturday noon: it ends at Monday 00:00, summer time"
    );
    assert_eq!(
        frozen(&weekend, prod, "2026-03-27T22:59:00Z"),
        None,
        "Friday"
    );
    // 02:30 doesn't exist that night: the window ends at 03:30 summer time.
    assert_eq!(
        frozen(&weekend, "stack:network", "2026-03-29T00:30:00Z").map(|f| f.1),
        Some("2026-03-29T01:30:00+00:00".to_string())
    );
}

#[test]
fn a_fixed_interval_holds_from_its_start_to_before_its_end() {
    let p = policy(
        r#"  - name: black-friday
    reason: the Black Friday sale
    resources: ["service:*/production"]
    from: "2026-11-27T00:00:00+01:00"
    to: "2026-11-30T00:00:00+01:00"
"#,
    );
    let prod = "service:api/production";
    assert_eq!(frozen(&p, prod, "2026-11-26T22:59:59Z"), None);
    let window = Some((
        "black-friday".to_string(),
        "2026-11-29T23:00:00+00:00".to_string(),
    ));
    assert_eq!(frozen(&p, prod, "2026-11-26T23:00:00Z"), window);
    assert_eq!(frozen(&p, prod, "2026-11-29T22:59:59Z"), window);
    assert_eq!(frozen(&p, prod, "2026-11-29T23:00:00Z"), None);
    assert_eq!(
        frozen(&p, "kube:production/web", "2026-11-28T12:00:00Z"),
        None,
        "protected, but the window names only its patterns"
    );
}

#[test]
fn only_the_windows_overriders_may_override_it_and_only_the_windows_overridden() {
    let p = policy(FRIDAY_BERLIN);
    let prod = "service:api/production";
    let (resources, now) = (vec![prod.to_string()], at("2026-12-04T15:30:00Z"));
    let owner = vec!["engineering".to_string(), "platform-owners".to_string()];
    let operator = vec!["engineering".to_string(), "operators".to_string()];
    let named = |n: &str| n == "friday-afternoon";
    assert!(matches!(
        p.check_freeze(&resources, now, &owner, named),
        FreezeCheck::Overridden(ref w) if w.len() == 1
    ));
    let FreezeCheck::NotAllowed(f) = p.check_freeze(&resources, now, &operator, named) else {
        panic!("an operator may not override")
    };
    assert!(f.not_allowed().contains("holders of role owner"));
    let FreezeCheck::Frozen(f) = p.check_freeze(&resources, now, &owner, |_| false) else {
        panic!("no override, frozen")
    };
    let refusal = f.refusal();
    for part in [
        "`friday-afternoon`",
        "2026-12-04 23:00 UTC",
        "no production changes on Friday afternoons",
        "--override-freeze",
    ] {
        assert!(refusal.contains(part), "{part} in {refusal}");
    }
    assert!(matches!(
        p.check_freeze(&resources, now, &owner, |n| n == "another-window"),
        FreezeCheck::Frozen(_)
    ));
    assert!(matches!(
        p.check_freeze(&resources, at("2026-12-04T12:00:00Z"), &operator, named),
        FreezeCheck::Open
    ));
}

#[test]
fn every_resource_of_a_change_is_judged_and_each_window_counts_once() {
    let p = policy(FRIDAY_BERLIN);
    let now = at("2026-12-04T15:30:00Z");
    let owner = vec!["platform-owners".to_string()];
    // A manifest applied in staging with an object in production's namespace.
    let resources = vec![
        "kube:staging/web".to_string(),
        "kube:production/web".to_string(),
    ];
    let FreezeCheck::Frozen(f) = p.check_freeze(&resources, now, &owner, |_| false) else {
        panic!("the production object is frozen")
    };
    assert_eq!(f.resource, "kube:production/web");
    let both = vec![
        "kube:production/web".to_string(),
        "service:api/production".to_string(),
    ];
    assert!(matches!(
        p.check_freeze(&both, now, &owner, |_| true),
        FreezeCheck::Overridden(ref w) if w.len() == 1
    ));
}
