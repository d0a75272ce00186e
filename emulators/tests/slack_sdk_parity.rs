//! Cross-checks the emulator's Block Kit validator against the official one: slack_sdk's
//! `validate_json()` validators (Python), applied to every block, element, option and text
//! object (slack_sdk's `validate_json` does not recurse, so the script walks the objects).
//!
//! Needs `python3` with `slack_sdk`; installs it with `python3 -m pip install --quiet slack_sdk`
//! when missing, and fails (never skips) when that is impossible.

// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::process::Command;

use serde_json::{Value, json};
use slipway_emulators::slack::{Surface, validate_blocks, validate_view};

const INSTALL: &str = "python3 -m pip install --quiet slack_sdk";

/// Parses each sample with slack_sdk and reports whether it validates.
const SCRIPT: &str = r#"
import json, sys
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block, Option, OptionGroup
from slack_sdk.models.views import View

class Unparsed(Exception):
    pass

# Some elements (static_select, multi_static_select) keep their options as raw dicts; parse
# those children with slack_sdk's own Option/OptionGroup so their validators run too.
RAW_CHILDREN = {"options": Option, "initial_options": Option, "initial_option": Option, "option_groups": OptionGroup}

def child(key, value):
    if isinstance(value, dict) and key in RAW_CHILDREN:
        return RAW_CHILDREN[key](**value)
    return value

def walk(obj, path):
    if obj is None:
        raise Unparsed(f"slack_sdk could not parse the object at {path}")
    if not isinstance(obj, JsonObject):
        return
    obj.validate_json()
    for key, value in vars(obj).items():
        value = child(key, value)
        if isinstance(value, JsonObject):
            walk(value, f"{path}/{key}")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if item is None:
                    raise Unparsed(f"slack_sdk could not parse the object at {path}/{key}/{i}")
                walk(child(key, item), f"{path}/{key}/{i}")

results = []
for sample in json.load(open(sys.argv[1])):
    try:
        if sample["kind"] == "view":
            walk(View(**sample["payload"]), "/view")
        else:
            for i, block in enumerate(sample["payload"]):
                walk(Block.parse(block), f"/blocks/{i}")
        results.append({"name": sample["name"], "valid": True, "detail": ""})
    except Exception as e:
        results.append({"name": sample["name"], "valid": False, "detail": f"{type(e).__name__}: {e}"})
print(json.dumps(results))
"#;

struct Sample {
    name: &'static str,
    /// `"message"` or `"modal"` (a blocks array for that surface) or `"view"`.
    kind: &'static str,
    payload: Value,
    valid: bool,
    /// false where slack_sdk is more lenient than the Slack API (the emulator follows Slack).
    sdk_checks_it: bool,
}

fn sample(name: &'static str, kind: &'static str, payload: Value, valid: bool) -> Sample {
    Sample {
        name,
        kind,
        payload,
        valid,
        sdk_checks_it: true,
    }
}

fn stricter_than_sdk(name: &'static str, kind: &'static str, payload: Value) -> Sample {
    Sample {
        name,
        kind,
        payload,
        valid: false,
        sdk_checks_it: false,
    }
}

fn x(n: usize) -> String {
    "x".repeat(n)
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

fn button(text: &str) -> Value {
    json!({"type": "button", "text": plain(text), "action_id": "b", "value": "v"})
}

fn option(text: &str, value: &str) -> Value {
    json!({"text": plain(text), "value": value})
}

fn select(options: Vec<Value>) -> Value {
    json!({"type": "static_select", "action_id": "s", "placeholder": plain("pick"), "options": Value::Array(options)})
}

fn actions(elements: Vec<Value>) -> Value {
    json!([{"type": "actions", "elements": Value::Array(elements)}])
}

fn modal(title: &str, blocks: Value) -> Value {
    let mut view = json!({"type": "modal", "title": plain(title), "submit": plain("Run"), "close": plain("Cancel")});
    view["blocks"] = blocks;
    view
}

fn samples() -> Vec<Sample> {
    let divider = json!([{"type": "divider"}]);
    vec![
        sample(
            "valid message",
            "message",
            json!([
                {"type": "header", "text": plain("Deploy api")},
                {"type": "section", "block_id": "summary", "text": mrkdwn("*api* 2.1.0 → prod"),
                 "fields": [mrkdwn("*Env*\nprod"), mrkdwn("*By*\n<@U1>")], "accessory": button("Logs")},
                {"type": "divider"},
                {"type": "actions", "elements": [
                    {"type": "button", "text": plain("Approve"), "action_id": "approve", "style": "primary", "value": "run-1",
                     "confirm": {"title": plain("Sure?"), "text": mrkdwn("Deploy to *prod*"), "confirm": plain("Yes"), "deny": plain("No")}},
                    {"type": "button", "text": plain("Open"), "action_id": "open", "url": "https://example.com/run/1"},
                    select(vec![option("prod", "prod"), option("staging", "staging")]),
                    {"type": "overflow", "action_id": "more", "options": [option("Cancel", "cancel")]}
                ]},
                {"type": "context", "elements": [mrkdwn("run `1`"), {"type": "image", "image_url": "https://example.com/i.png", "alt_text": "icon"}]},
                {"type": "image", "image_url": "https://example.com/graph.png", "alt_text": "graph", "title": plain("Graph")}
            ]),
            true,
        ),
        sample(
            "valid modal",
            "view",
            json!({"type": "modal", "callback_id": "approve", "private_metadata": "{\"run\":1}",
            "title": plain("Approve run"), "submit": plain("Approve"), "close": plain("Cancel"),
            "blocks": [
                {"type": "section", "text": mrkdwn("Approve *run 1*?")},
                {"type": "input", "block_id": "why", "label": plain("Reason"),
                 "element": {"type": "plain_text_input", "action_id": "reason", "multiline": true}},
                {"type": "input", "block_id": "env", "label": plain("Env"), "element": select(vec![option("prod", "prod")])}
            ]}),
            true,
        ),
        sample(
            "section text at the limit",
            "message",
            json!([{"type": "section", "text": mrkdwn(&x(3000))}]),
            true,
        ),
        sample(
            "section text 3001 chars",
            "message",
            json!([{"type": "section", "text": mrkdwn(&x(3001))}]),
            false,
        ),
        sample(
            "section 11 fields",
            "message",
            json!([{"type": "section", "fields": vec![mrkdwn("f"); 11]}]),
            false,
        ),
        sample(
            "section without text or fields",
            "message",
            json!([{"type": "section", "block_id": "b"}]),
            false,
        ),
        sample(
            "header 151 chars",
            "message",
            json!([{"type": "header", "text": plain(&x(151))}]),
            false,
        ),
        sample(
            "actions 26 elements",
            "message",
            actions(vec![button("b"); 26]),
            false,
        ),
        sample(
            "actions 25 elements",
            "message",
            actions(vec![button("b"); 25]),
            true,
        ),
        sample(
            "context 11 elements",
            "message",
            json!([{"type": "context", "elements": vec![mrkdwn("c"); 11]}]),
            false,
        ),
        sample(
            "block_id 256 chars",
            "message",
            json!([{"type": "divider", "block_id": x(256)}]),
            false,
        ),
        sample(
            "action_id 256 chars",
            "message",
            actions(vec![
                json!({"type": "button", "text": plain("b"), "action_id": x(256)}),
            ]),
            false,
        ),
        sample(
            "button text 76 chars",
            "message",
            actions(vec![button(&x(76))]),
            false,
        ),
        sample(
            "button value 2001 chars",
            "message",
            actions(vec![
                json!({"type": "button", "text": plain("b"), "value": x(2001)}),
            ]),
            false,
        ),
        sample(
            "button url 3001 chars",
            "message",
            actions(vec![
                json!({"type": "button", "text": plain("b"), "url": format!("https://e.com/{}", x(2987))}),
            ]),
            false,
        ),
        sample(
            "button style unknown",
            "message",
            actions(vec![
                json!({"type": "button", "text": plain("b"), "style": "loud"}),
            ]),
            false,
        ),
        sample(
            "option text 76 chars",
            "message",
            actions(vec![select(vec![option(&x(76), "v")])]),
            false,
        ),
        sample(
            "option value 151 chars",
            "message",
            actions(vec![select(vec![option("t", &x(151))])]),
            false,
        ),
        sample(
            "overflow 6 options",
            "message",
            actions(vec![
                json!({"type": "overflow", "options": vec![option("o", "o"); 6]}),
            ]),
            false,
        ),
        sample(
            "unknown block type",
            "message",
            json!([{"type": "hologram", "block_id": "b"}]),
            false,
        ),
        sample(
            "block without type",
            "message",
            json!([{"block_id": "b", "text": mrkdwn("t")}]),
            false,
        ),
        sample(
            "text object without type",
            "message",
            json!([{"type": "section", "text": {"text": "t"}}]),
            false,
        ),
        sample(
            "button without text",
            "message",
            actions(vec![json!({"type": "button", "action_id": "a"})]),
            false,
        ),
        sample(
            "unknown element type",
            "message",
            actions(vec![json!({"type": "slider", "action_id": "a"})]),
            false,
        ),
        sample(
            "modal 100 blocks",
            "view",
            modal("ok", json!(vec![json!({"type": "divider"}); 100])),
            true,
        ),
        sample(
            "modal 101 blocks",
            "view",
            modal("ok", json!(vec![json!({"type": "divider"}); 101])),
            false,
        ),
        sample(
            "modal title 25 chars",
            "view",
            modal(&x(25), divider.clone()),
            false,
        ),
        sample(
            "modal submit 25 chars",
            "view",
            json!({"type": "modal", "title": plain("t"), "submit": plain(&x(25)), "blocks": divider}),
            false,
        ),
        sample(
            "modal close 25 chars",
            "view",
            json!({"type": "modal", "title": plain("t"), "close": plain(&x(25)), "blocks": divider}),
            false,
        ),
        sample(
            "private_metadata 3001 chars",
            "view",
            json!({"type": "modal", "title": plain("t"), "private_metadata": x(3001), "blocks": divider}),
            false,
        ),
        sample(
            "callback_id 256 chars",
            "view",
            json!({"type": "modal", "title": plain("t"), "callback_id": x(256), "blocks": divider}),
            false,
        ),
        sample(
            "view of unknown type",
            "view",
            json!({"type": "popup", "title": plain("t"), "blocks": divider}),
            false,
        ),
        // Slack rejects these; slack_sdk's validators don't look.
        stricter_than_sdk(
            "message 51 blocks",
            "message",
            json!(vec![json!({"type": "divider"}); 51]),
        ),
        stricter_than_sdk(
            "header in mrkdwn",
            "message",
            json!([{"type": "header", "text": mrkdwn("h")}]),
        ),
        stricter_than_sdk(
            "button text in mrkdwn",
            "message",
            actions(vec![json!({"type": "button", "text": mrkdwn("b")})]),
        ),
        stricter_than_sdk(
            "section field 2001 chars",
            "message",
            json!([{"type": "section", "fields": [mrkdwn(&x(2001))]}]),
        ),
        stricter_than_sdk(
            "modal title in mrkdwn",
            "view",
            json!({"type": "modal", "title": mrkdwn("t"), "blocks": divider}),
        ),
        stricter_than_sdk(
            "modal with input but no submit",
            "view",
            json!({"type": "modal", "title": plain("t"), "blocks": [
                {"type": "input", "label": plain("l"), "element": {"type": "plain_text_input"}}]}),
        ),
    ]
}

fn rust_errors(s: &Sample) -> Vec<String> {
    match s.kind {
        "view" => validate_view(&s.payload),
        "modal" => validate_blocks(&s.payload, Surface::Modal),
        _ => validate_blocks(&s.payload, Surface::Message),
    }
}

fn python_with_slack_sdk() {
    let version = Command::new("python3").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "python3 is required for the slack_sdk parity test: install Python 3, then run `{INSTALL}`"
    );
    let has_sdk = || {
        Command::new("python3")
            .args(["-c", "import slack_sdk"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_sdk() {
        return;
    }
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "slack_sdk"])
        .output();
    let detail = match &install {
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    assert!(
        has_sdk(),
        "slack_sdk is required for the parity test and `{INSTALL}` failed:\n{detail}"
    );
}

#[test]
fn block_kit_validator_agrees_with_slack_sdk() {
    python_with_slack_sdk();
    let samples = samples();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.json");
    let payload: Vec<Value> = samples
        .iter()
        .map(|s| {
            let kind = if s.kind == "view" { "view" } else { "blocks" };
            json!({"name": s.name, "kind": kind, "payload": s.payload})
        })
        .collect();
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&path)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "the slack_sdk script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("slack_sdk script output");
    assert_eq!(results.len(), samples.len());

    let mut problems = Vec::new();
    for (s, r) in samples.iter().zip(&results) {
        assert_eq!(r["name"], s.name);
        let sdk_valid = r["valid"].as_bool().unwrap();
        let errors = rust_errors(s);
        let rust_valid = errors.is_empty();
        eprintln!(
            "{:<34} expected {:<7} slack_sdk {:<7} rust {:<7} {}",
            s.name,
            if s.valid { "valid" } else { "invalid" },
            if sdk_valid { "valid" } else { "invalid" },
            if rust_valid { "valid" } else { "invalid" },
            errors.first().map_or_else(
                || r["detail"].as_str().unwrap_or("").to_string(),
                Clone::clone
            ),
        );
        if rust_valid != s.valid {
            problems.push(format!(
                "{}: Rust says valid={rust_valid} ({errors:?}), expected {}",
                s.name, s.valid
            ));
        }
        let sdk_expected = if s.sdk_checks_it { s.valid } else { true };
        if sdk_valid != sdk_expected {
            problems.push(format!(
                "{}: slack_sdk says valid={sdk_valid} ({}), expected {sdk_expected}",
                s.name,
                r["detail"].as_str().unwrap_or("")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "disagreements:\n{}",
        problems.join("\n")
    );
}
