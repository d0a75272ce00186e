//! The renderer's cases: real bridge messages and modals, mrkdwn, and malformed input.

#![allow(clippy::unwrap_used)]
use serde_json::json;

use super::*;

fn change_blocks() -> Value {
    json!([
      {"type":"section","text":{"type":"mrkdwn","text":"*Change request* `/deploy api staging --apply` by <@U0OPERATOR>"}},
      {"type":"context","elements":[{"type":"mrkdwn","text":"rule `standard` · 0/2 approvals · <http://127.0.0.1:1/acme/gitops/pull/1|PR #1>"}]},
      {"type":"section","text":{"type":"mrkdwn","text":"```\n-  newTag: \"v1.0.0\"\n+  newTag: \"v2.0.0\"\n```"}},
      {"type":"actions","block_id":"slipway_change","elements":[
        {"type":"button","action_id":"slipway_approve","text":{"type":"plain_text","text":"Approve"},"style":"primary","value":"acme/gitops#1"},
        {"type":"button","action_id":"slipway_reject","text":{"type":"plain_text","text":"Reject"},"style":"danger","value":"acme/gitops#1"},
        {"type":"button","action_id":"slipway_view_pr","text":{"type":"plain_text","text":"View PR"},"url":"http://127.0.0.1:1/acme/gitops/pull/1","value":"x"}]}
    ])
}

#[test]
fn change_request() {
    let r = message("fallback", &change_blocks(), 1);
    assert_eq!(
        r.lines,
        [
            "*Change request* `/deploy api staging --apply` by @U0OPERATOR",
            "  · rule `standard` · 0/2 approvals · PR #1 (http://127.0.0.1:1/acme/gitops/pull/1)",
            "    -  newTag: \"v1.0.0\"",
            "    +  newTag: \"v2.0.0\"",
            "[1] Approve  [2] Reject (danger)",
            "↗ View PR: http://127.0.0.1:1/acme/gitops/pull/1",
        ]
    );
    assert_eq!(r.buttons.len(), 2);
    assert_eq!(
        r.buttons[0],
        Button {
            label: "Approve".into(),
            action_id: "slipway_approve".into(),
            block_id: Some("slipway_change".into()),
            value: Some("acme/gitops#1".into()),
            style: Some("primary".into()),
            confirm: None,
        }
    );
    assert_eq!(r.buttons[1].action_id, "slipway_reject");
    assert_eq!(r.buttons[1].style.as_deref(), Some("danger"));
}

#[test]
fn numbering_starts_at_first_choice_and_wraps() {
    let r = message("", &change_blocks(), 7);
    assert_eq!(r.lines[4], "[7] Approve  [8] Reject (danger)");
    let many: Vec<Value> = (0..12)
        .map(|i| json!({"type":"button","action_id":format!("a{i}"),"text":{"type":"plain_text","text":format!("Button {i}")}}))
        .collect();
    let r = message("", &json!([{"type":"actions","elements":many}]), 1);
    assert_eq!(r.buttons.len(), 12);
    assert!(r.lines.len() > 1 && r.lines.iter().all(|l| l.chars().count() <= WRAP));
    assert!(r.lines[0].starts_with("[1] Button 0  [2] Button 1"));
    assert!(r.lines.last().unwrap().ends_with("[12] Button 11"));
}

#[test]
fn fallback_text_when_no_blocks() {
    let r = message("hello <@U1> &amp; bye", &json!([]), 1);
    assert_eq!(r.lines, ["hello @U1 & bye"]);
    assert_eq!(message("a\nb", &Value::Null, 1).lines, ["a", "b"]);
    assert!(message("", &json!([]), 1).lines.is_empty());
}

#[test]
fn accessory_button_fields_header_divider() {
    let blocks = json!([
      {"type":"header","text":{"type":"plain_text","text":"Deploys"}},
      {"type":"section","block_id":"b1","text":{"type":"mrkdwn","text":"Run done"},
       "fields":[{"type":"mrkdwn","text":"*Exit* 0"},{"type":"mrkdwn","text":"*Took* 3s"},{"type":"plain_text","text":"x"}],
       "accessory":{"type":"button","action_id":"retry","text":{"type":"plain_text","text":"Retry"},
         "confirm":{"title":{"type":"plain_text","text":"Retry?"},"text":{"type":"mrkdwn","text":"Run *again*"},
                    "confirm":{"type":"plain_text","text":"Go"},"deny":{"type":"plain_text","text":"No"}}}},
      {"type":"divider"},
      {"type":"image","alt_text":"graph","image_url":"http://x"},
      {"type":"actions","elements":[{"type":"static_select","placeholder":{"type":"plain_text","text":"Env"}}]}
    ]);
    let r = message("", &blocks, 3);
    assert_eq!(
        r.lines,
        [
            "Deploys",
            "═══════",
            "Run done",
            &format!("{:<38}*Took* 3s", "*Exit* 0"),
            "x",
            "[3] Retry",
            &"─".repeat(40),
            "[image: graph]",
            "(select: Env)",
        ]
    );
    assert_eq!(r.buttons.len(), 1);
    assert_eq!(r.buttons[0].block_id.as_deref(), Some("b1"));
    let c = r.buttons[0].confirm.clone().unwrap();
    assert_eq!(
        [c.title, c.text, c.confirm, c.deny],
        ["Retry?", "Run *again*", "Go", "No"]
    );
}

#[test]
fn rich_text() {
    let blocks = json!([{"type":"rich_text","elements":[
      {"type":"rich_text_section","elements":[{"type":"text","text":"hi "},{"type":"user","user_id":"U1"},
        {"type":"link","url":"https://x","text":"site"}]},
      {"type":"rich_text_preformatted","elements":[{"type":"text","text":"a\nb"}]},
      {"type":"rich_text_list","style":"bullet","elements":[
        {"type":"rich_text_section","elements":[{"type":"text","text":"one"}]}]}]}]);
    assert_eq!(
        message("", &blocks, 1).lines,
        ["hi @U1site (https://x)", "    a", "    b", "• one"]
    );
}

#[test]
fn mrkdwn_cases() {
    assert_eq!(
        mrkdwn("see <https://x.io/a?b=1&amp;c=2|the docs>"),
        "see the docs (https://x.io/a?b=1&c=2)"
    );
    assert_eq!(mrkdwn("<https://x.io>"), "https://x.io");
    assert_eq!(
        mrkdwn("<@U123> in <#C1|ops> <#C2> <!here> <!subteam^S1|@sre>"),
        "@U123 in #ops #C2 @here @sre"
    );
    assert_eq!(mrkdwn("a &lt;b&gt; &amp;lt; <none>"), "a <b> &lt; <none>");
    assert_eq!(mrkdwn("*bold* _it_ ~s~ `code`"), "*bold* _it_ ~s~ `code`");
    assert_eq!(
        mrkdwn("open <https://x|unclosed"),
        "open <https://x|unclosed"
    );
    assert_eq!(
        mrkdwn("Output:\n```\n$ ls\n<none> &amp;\n\n```\nexit 0"),
        "Output:\n    $ ls\n    <none> &\n\nexit 0"
    );
    assert_eq!(mrkdwn("```\nfoo```"), "    foo");
    assert_eq!(mrkdwn("diff: ```a```"), "diff:\n    a");
    assert_eq!(mrkdwn("run:```x\ny```done"), "run:\n    x\n    y\ndone");
    assert_eq!(mrkdwn("a ``` b"), "a ``` b");
    assert_eq!(mrkdwn("line1\nline2"), "line1\nline2");
}

#[test]
fn reject_modal() {
    let view = json!({
      "type":"modal","callback_id":"slipway_reject","private_metadata":"{\"pr\":1}",
      "title":{"type":"plain_text","text":"Request changes"},
      "submit":{"type":"plain_text","text":"Request changes"},
      "close":{"type":"plain_text","text":"Cancel"},
      "blocks":[
        {"type":"section","text":{"type":"mrkdwn","text":"Reject <http://h/acme/gitops/pull/1|PR #1>?"}},
        {"type":"input","block_id":"reason","optional":true,
         "label":{"type":"plain_text","text":"Reason"},
         "hint":{"type":"plain_text","text":"Shown on the pull request as your review's text."},
         "element":{"type":"plain_text_input","action_id":"reject_reason","multiline":true,"max_length":2000,
           "placeholder":{"type":"plain_text","text":"What has to change before you'd approve?"}}}]});
    let m = modal(&view);
    assert_eq!(m.title, "Request changes");
    assert_eq!(m.lines, ["Reject PR #1 (http://h/acme/gitops/pull/1)?"]);
    assert_eq!(
        (m.submit.as_deref(), m.close.as_deref()),
        (Some("Request changes"), Some("Cancel"))
    );
    assert_eq!(
        m.inputs,
        [Input {
            block_id: "reason".into(),
            action_id: "reject_reason".into(),
            kind: "plain_text_input".into(),
            label: "Reason".into(),
            hint: Some("Shown on the pull request as your review's text.".into()),
            optional: true,
            multiline: true,
            initial_value: None,
        }]
    );
    assert_eq!(
        submission_values(&m.inputs, &[String::new()]),
        json!({"reason":{"reject_reason":{"type":"plain_text_input","value":null}}})
    );
    assert_eq!(
        submission_values(&m.inputs, &["Use v2.1".into()]),
        json!({"reason":{"reject_reason":{"type":"plain_text_input","value":"Use v2.1"}}})
    );
}

#[test]
fn typed_confirmation_modal() {
    let view = json!({
      "type":"modal","callback_id":"slipway_destructive","private_metadata":"tok",
      "title":{"type":"plain_text","text":"Confirm deletion"},
      "submit":{"type":"plain_text","text":"Open the PR"},
      "close":{"type":"plain_text","text":"Cancel"},
      "blocks":[
        {"type":"section","text":{"type":"mrkdwn","text":"*Delete* `svc/api`"}},
        {"type":"input","block_id":"confirm",
         "label":{"type":"plain_text","text":"Type the resource name to confirm"},
         "hint":{"type":"plain_text","text":"api"},
         "element":{"type":"plain_text_input","action_id":"confirm_text","max_length":255}}]});
    let m = modal(&view);
    assert_eq!(m.lines, ["*Delete* `svc/api`"]);
    assert_eq!(m.inputs.len(), 1);
    let i = &m.inputs[0];
    assert!(!i.optional && !i.multiline);
    assert_eq!(
        (i.label.as_str(), i.hint.as_deref()),
        ("Type the resource name to confirm", Some("api"))
    );
    assert_eq!(
        submission_values(&m.inputs, &["api".into()]),
        json!({"confirm":{"confirm_text":{"type":"plain_text_input","value":"api"}}})
    );
    assert_eq!(
        submission_values(&m.inputs, &[]),
        json!({"confirm":{"confirm_text":{"type":"plain_text_input","value":""}}})
    );
}

#[test]
fn garbage_never_panics() {
    for blocks in [
        json!(42),
        json!("x"),
        json!([1, "x", {"type": "section"}]),
        json!([{"type":"actions","elements":"nope"}]),
        json!([{"type":"actions","elements":[1, {"type":"button"}, {"type":"button","url":7}]}]),
        json!([{"type":"context","elements":[{"type":"image"}, null]}, {"type":7}, {"type":"header","text":"é"}]),
        json!([{"type":"section","text":{"type":"mrkdwn","text":{"nested":[]}},"fields":{"a":1},"accessory":[]}]),
        json!([{"type":"rich_text","elements":[{"type":"rich_text_list","indent":99_999_999_999_u64,"elements":[1]}]}]),
        json!([{"type":"mystery","text":{"type":"mrkdwn","text":"<é|ü> <!x^y> <> <|> < `"}}]),
    ] {
        let r = message("fb", &blocks, usize::MAX - 1);
        assert!(r.lines.iter().all(|l| !l.contains('\n')));
        let _ = modal(&json!({"blocks": blocks, "title": 3, "submit": []}));
    }
    assert_eq!(message("fb", &json!(42), 1).lines, ["fb"]);
    let nameless = json!([{"type":"actions","elements":[{"type":"button"}]}]);
    assert_eq!(message("", &nameless, 1).lines, ["[1] button"]);
    assert_eq!(modal(&json!(null)), Modal::default());
}

#[test]
fn the_bridges_emoji_show_as_characters_and_others_stay_as_typed() {
    assert_eq!(
        mrkdwn(":white_check_mark: done · :hourglass_flowing_sand: · :party_parrot:"),
        "✅ done · ⏳ · :party_parrot:"
    );
    // Inside code, nothing is replaced.
    assert_eq!(mrkdwn("```\n:x:\n```"), "    :x:");
}
