//! The Slack emulator driven with plain HTTP: both body encodings Slack accepts, its error
//! answers, rate limits and response_url sinks.

// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use serde_json::{Value, json};
use slipway_emulators::slack::SlackEmulator;

const BOT: &str = "xoxb-http-test";

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(slack: &SlackEmulator) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: slack.api_url(),
        }
    }

    async fn json(&self, method: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{method}", self.base)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("test setup");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON answer"),
        )
    }

    async fn form(&self, method: &str, token: Option<&str>, body: &[(&str, &str)]) -> (u16, Value) {
        let encoded = serde_urlencoded::to_string(body).expect("test setup");
        let mut req = self
            .http
            .post(format!("{}{method}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("test setup");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON answer"),
        )
    }
}

#[tokio::test]
async fn post_message_json_and_form() {
    let slack = SlackEmulator::start(BOT).await;
    let api = Api::new(&slack);
    let (code, body) = api
        .json(
            "chat.postMessage",
            Some(BOT),
            &json!({"channel": "C1", "text": "hello", "blocks": [{"type": "divider"}]}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["ok"], true);
    assert_eq!(body["channel"], "C1");
    assert_eq!(body["message"]["text"], "hello");
    let ts1 = body["ts"].as_str().unwrap().to_string();
    assert!(ts1.starts_with("1700000000."), "{ts1}");

    // Form-encoded, blocks as a JSON string, token in the body (Slack accepts both).
    let blocks =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]).to_string();
    let (_, body) = api
        .form(
            "chat.postMessage",
            None,
            &[
                ("token", BOT),
                ("channel", "C1"),
                ("blocks", &blocks),
                ("thread_ts", &ts1),
            ],
        )
        .await;
    assert_eq!(body["ok"], true, "{body}");
    let ts2 = body["ts"].as_str().unwrap().to_string();
    assert!(ts2 > ts1);

    let msgs = slack.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].blocks[0]["text"]["text"], "*hi*");
    assert_eq!(msgs[1].thread_ts.as_deref(), Some(ts1.as_str()));
    assert_eq!(slack.thread("C1", &ts1).len(), 1);

    // Nothing to post.
    let (_, body) = api
        .json("chat.postMessage", Some(BOT), &json!({"channel": "C1"}))
        .await;
    assert_eq!(body["error"], "no_text");
}

#[tokio::test]
async fn update_needs_an_existing_message() {
    let slack = SlackEmulator::start(BOT).await;
    let api = Api::new(&slack);
    let (_, posted) = api
        .json(
            "chat.postMessage",
            Some(BOT),
            &json!({"channel": "C1", "text": "v1"}),
        )
        .await;
    let ts = posted["ts"].as_str().unwrap();
    let (_, body) = api
        .json(
            "chat.update",
            Some(BOT),
            &json!({"channel": "C1", "ts": ts, "text": "v2"}),
        )
        .await;
    assert_eq!(body["ok"], true, "{body}");
    let (_, body) = api
        .form(
            "chat.update",
            Some(BOT),
            &[("channel", "C1"), ("ts", ts), ("text", "v3")],
        )
        .await;
    assert_eq!(body["ok"], true, "{body}");
    let (_, body) = api
        .json(
            "chat.update",
            Some(BOT),
            &json!({"channel": "C2", "ts": ts, "text": "x"}),
        )
        .await;
    assert_eq!(body["error"], "message_not_found");
    let (_, body) = api
        .json(
            "chat.update",
            Some(BOT),
            &json!({"channel": "C1", "ts": "1.2", "text": "x"}),
        )
        .await;
    assert_eq!(body["error"], "message_not_found");
    let m = &slack.messages()[0];
    assert_eq!((m.text.as_str(), m.updates), ("v3", 2));
    let texts: Vec<&str> = m.history.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["v1", "v2", "v3"]);
}

#[tokio::test]
async fn auth_and_unknown_methods() {
    let slack = SlackEmulator::start(BOT).await;
    let api = Api::new(&slack);
    let (code, body) = api.json("auth.test", Some("xoxb-wrong"), &json!({})).await;
    assert_eq!((code, body["error"].as_str()), (200, Some("invalid_auth")));
    let (code, body) = api
        .json(
            "chat.postMessage",
            None,
            &json!({"channel": "C1", "text": "x"}),
        )
        .await;
    assert_eq!((code, body["error"].as_str()), (200, Some("not_authed")));
    let (_, body) = api
        .json("chat.deleteEverything", Some(BOT), &json!({}))
        .await;
    assert_eq!(body, json!({"ok": false, "error": "unknown_method"}));
    // Slack's GET form, with a double slash as slack-morphism sends with a trailing-slash base URL.
    let resp = reqwest::Client::new()
        .get(format!("{}/api//auth.test", slack.base_url()))
        .bearer_auth(BOT)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert_eq!(body["user_id"], "U0SLIPBOT");
    // Malformed bodies get an error answer, not a crash.
    let resp = reqwest::Client::new()
        .post(format!("{}chat.postMessage", slack.api_url()))
        .bearer_auth(BOT)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_json");
    let calls = slack.calls();
    assert_eq!(calls[0].error.as_deref(), Some("invalid_auth"));
    assert!(
        calls
            .iter()
            .any(|c| c.method == "chat.deleteEverything" && !c.ok)
    );
}

#[tokio::test]
async fn users_info() {
    let slack = SlackEmulator::start(BOT).await;
    slack.add_user("U0BOB", "bob", Some("bob@example.com"));
    slack.add_user("U0EVE", "eve", None);
    let api = Api::new(&slack);
    let (_, body) = api
        .form("users.info", Some(BOT), &[("user", "U0BOB")])
        .await;
    assert_eq!(body["user"]["id"], "U0BOB");
    assert_eq!(body["user"]["name"], "bob");
    assert_eq!(body["user"]["profile"]["email"], "bob@example.com");
    let (_, body) = api
        .form("users.info", Some(BOT), &[("user", "U0EVE")])
        .await;
    assert!(body["user"]["profile"].get("email").is_none());
    let (_, body) = api
        .form("users.info", Some(BOT), &[("user", "U0NONE")])
        .await;
    assert_eq!(body["error"], "user_not_found");
}

/// Shaped like Slack's documented answer: the user object, found without case; a deactivated
/// user is still found, with `deleted: true`; no match is `users_not_found`.
#[tokio::test]
async fn users_lookup_by_email() {
    let slack = SlackEmulator::start(BOT).await;
    slack.add_user("U0BOB", "bob", Some("bob@example.com"));
    let api = Api::new(&slack);
    let (_, body) = api
        .form(
            "users.lookupByEmail",
            Some(BOT),
            &[("email", "Bob@Example.com")],
        )
        .await;
    assert_eq!(body["ok"], true);
    assert_eq!(body["user"]["id"], "U0BOB");
    assert_eq!(body["user"]["deleted"], false);
    assert_eq!(body["user"]["profile"]["email"], "bob@example.com");
    slack.set_user_deleted("U0BOB", true);
    let (_, body) = api
        .form(
            "users.lookupByEmail",
            Some(BOT),
            &[("email", "bob@example.com")],
        )
        .await;
    assert_eq!(body["user"]["deleted"], true);
    let (_, body) = api
        .form(
            "users.lookupByEmail",
            Some(BOT),
            &[("email", "eve@example.com")],
        )
        .await;
    assert_eq!(
        (body["ok"].clone(), body["error"].clone()),
        (false.into(), "users_not_found".into())
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let slack = SlackEmulator::start(BOT).await;
    slack.rate_limit_next("chat.update", 2, 30);
    let api = Api::new(&slack);
    for _ in 0..2 {
        let resp = api
            .http
            .post(format!("{}chat.update", api.base))
            .bearer_auth(BOT)
            .json(&json!({"channel": "C1", "ts": "1", "text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers()["retry-after"], "30");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "ratelimited");
    }
    let (code, body) = api
        .json(
            "chat.update",
            Some(BOT),
            &json!({"channel": "C1", "ts": "1", "text": "x"}),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (200, Some("message_not_found"))
    );
    // Other methods were never limited.
    let (code, _) = api.json("auth.test", Some(BOT), &json!({})).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn invalid_blocks_are_rejected_and_recorded() {
    let slack = SlackEmulator::start(BOT).await;
    let api = Api::new(&slack);
    let too_many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
    let (_, body) = api
        .json(
            "chat.postMessage",
            Some(BOT),
            &json!({"channel": "C1", "blocks": too_many}),
        )
        .await;
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"], "invalid_blocks");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("[json-pointer:/blocks]"),
        "{body}"
    );

    let button = json!([{"type": "actions", "elements": [
        {"type": "button", "text": {"type": "mrkdwn", "text": "Approve"}, "action_id": "a"}
    ]}]);
    let (_, body) = api
        .form(
            "chat.postMessage",
            Some(BOT),
            &[("channel", "C1"), ("blocks", &button.to_string())],
        )
        .await;
    assert_eq!(body["error"], "invalid_blocks");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("/blocks/0/elements/0/text/type"),
        "{body}"
    );

    let (_, body) = api
        .form(
            "chat.postMessage",
            Some(BOT),
            &[("channel", "C1"), ("blocks", "[not json")],
        )
        .await;
    assert_eq!(body["error"], "invalid_blocks_format");

    let errors = slack.validation_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.starts_with("chat.postMessage: ")));
    assert!(slack.messages().is_empty());

    // Views: Slack answers invalid_arguments.
    let view = json!({"type": "modal", "title": {"type": "plain_text", "text": "A title that is far too long"}, "blocks": [{"type": "divider"}]});
    let (_, body) = api
        .json(
            "views.open",
            Some(BOT),
            &json!({"trigger_id": "t", "view": view}),
        )
        .await;
    assert_eq!(body["error"], "invalid_arguments");
    assert!(
        body["response_metadata"]["messages"][0]
            .as_str()
            .unwrap()
            .contains("/view/title/text"),
        "{body}"
    );
    let good = json!({"type": "modal", "title": {"type": "plain_text", "text": "Ok"}, "blocks": [{"type": "divider"}]});
    let (_, body) = api
        .json("views.open", Some(BOT), &json!({"view": good}))
        .await;
    assert_eq!(body["error"], "invalid_arguments", "trigger_id is required");
    let (_, body) = api
        .form(
            "views.open",
            Some(BOT),
            &[("trigger_id", "t"), ("view", &good.to_string())],
        )
        .await;
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["view"]["id"].as_str().unwrap().starts_with('V'));
    let id = body["view"]["id"].as_str().unwrap();
    let (_, body) = api
        .json(
            "views.push",
            Some(BOT),
            &json!({"trigger_id": "t2", "view": good}),
        )
        .await;
    assert_eq!(body["view"]["previous_view_id"], id);
    let (_, body) = api
        .json(
            "views.update",
            Some(BOT),
            &json!({"view_id": "V-nope", "view": good}),
        )
        .await;
    assert_eq!(body["error"], "not_found");
    assert_eq!(slack.views().len(), 2);
}

#[tokio::test]
async fn response_url_sink() {
    let slack = SlackEmulator::start(BOT).await;
    let url = slack.new_response_url();
    assert!(url.starts_with(&format!("{}/response/", slack.base_url())));
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(&url).json(&body).send();
    for i in 0..5 {
        let resp = post(json!({"text": format!("update {i}"), "response_type": "in_channel", "replace_original": i > 0}))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    let resp = post(json!({"text": "one too many"})).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.text().await.unwrap(), "used_url");
    let responses = slack.responses();
    assert_eq!(responses.len(), 5);
    assert_eq!(responses[4].body["text"], "update 4");
    assert_eq!(responses[0].body["response_type"], "in_channel");

    // Invalid blocks: 400 invalid_blocks, recorded, not counted.
    let other = slack.new_response_url();
    let bad = json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
    let resp = http.post(&other).json(&bad).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.text().await.unwrap(), "invalid_blocks");
    assert!(slack.validation_errors()[0].starts_with("response_url R"));
    let resp = http.post(&other).body("not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http
        .post(format!("{}/response/unknown", slack.base_url()))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn server_stops_when_dropped() {
    let slack = SlackEmulator::start(BOT).await;
    let url = slack.api_url();
    let clone = slack.clone();
    drop(slack);
    // A clone keeps it running.
    let resp = reqwest::Client::new()
        .post(format!("{url}auth.test"))
        .bearer_auth(BOT)
        .send()
        .await;
    assert!(resp.is_ok());
    drop(clone);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let fresh = reqwest::Client::new();
    let resp = fresh
        .post(format!("{url}auth.test"))
        .bearer_auth(BOT)
        .send()
        .await;
    assert!(resp.is_err(), "server still answering after drop");
}

/// `views.publish` takes only a `home` view for a user, validated like any view; a trigger id
/// the emulator issued opens one view within 3 s, as Slack's do.
#[tokio::test]
async fn views_publish_and_trigger_ids() {
    let slack = SlackEmulator::start(BOT).await;
    let api = Api::new(&slack);
    let call = async |method: &str, body: Value| api.json(method, Some(BOT), &body).await.1;
    let home = json!({"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]});
    let body = call("views.publish", json!({"user_id": "U1", "view": home})).await;
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(slack.home("U1").unwrap()["blocks"][0]["text"]["text"], "hi");
    let modal = json!({"type": "modal", "title": {"type": "plain_text", "text": "Ok"}, "blocks": [{"type": "divider"}]});
    let body = call("views.publish", json!({"user_id": "U1", "view": modal})).await;
    assert_eq!(body["error"], "invalid_arguments", "{body}");
    let body = call("views.publish", json!({"view": home})).await;
    assert_eq!(body["error"], "invalid_arguments", "user_id is required");
    assert_eq!(slack.published_homes().len(), 1);

    let fresh = slack.trigger_id();
    let body = call("views.open", json!({"trigger_id": fresh, "view": modal})).await;
    assert_eq!(body["ok"], true, "{body}");
    let body = call("views.open", json!({"trigger_id": fresh, "view": modal})).await;
    assert_eq!(
        body["error"], "invalid_trigger_id",
        "a trigger opens one view"
    );
    let stale = slack.trigger_id();
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let body = call("views.open", json!({"trigger_id": stale, "view": modal})).await;
    assert_eq!(body["error"], "expired_trigger_id", "{body}");
}
