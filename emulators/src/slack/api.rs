//! The Web API (`/api/<method>`) and response_url sinks (`/response/<id>`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Map, Value, json};

use super::blockkit::{Surface, validate_blocks};
use super::state::{APP_ID, BOT_ID, BOT_USER_ID, State, TEAM_ID, TEAM_NAME, lock};
use super::{App, Ephemeral, Message, Response};

const METHODS: &[&str] = &[
    "api.test",
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.getPermalink",
    "views.open",
    "views.update",
    "views.push",
    "views.publish",
    "users.info",
    "users.lookupByEmail",
    "conversations.info",
    "conversations.open",
    "apps.connections.open",
];

const RESPONSE_URL_MAX_POSTS: u32 = 5;
const RESPONSE_URL_TTL: Duration = Duration::from_secs(30 * 60);

/// A Slack API failure: `{"ok":false,"error":…}` plus optional extra fields.
pub(super) struct Fail {
    error: &'static str,
    extra: Map<String, Value>,
}

pub(super) fn fail(error: &'static str) -> Fail {
    Fail {
        error,
        extra: Map::new(),
    }
}

pub(super) type Outcome = Result<Value, Fail>;

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn text_response(status: StatusCode, body: &'static str) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) async fn handle(
    AxState(app): AxState<App>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/api/") {
        let method = rest.trim_start_matches('/').trim_end_matches('/');
        return api_call(&app, method, &uri, &headers, &body);
    }
    if let Some(id) = path.strip_prefix("/response/") {
        return response_url(&app, id, &headers, &body);
    }
    text_response(StatusCode::NOT_FOUND, "not_found")
}

fn api_call(app: &App, method: &str, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> HttpResponse {
    let mut st = lock(&app.state);
    if !METHODS.contains(&method) {
        st.record_call(method, Some("unknown_method"));
        return json_response(
            StatusCode::OK,
            &json!({"ok": false, "error": "unknown_method"}),
        );
    }
    if let Some(retry) = st.take_rate_limit(method) {
        st.record_call(method, Some("ratelimited"));
        let mut resp = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"ok": false, "error": "ratelimited"}),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return resp;
    }
    let outcome = match parse_params(uri, headers, body) {
        Err(e) => Err(fail(e)),
        Ok(params) => check_token(&st, method, headers, &params)
            .and_then(|()| dispatch(&mut st, method, &params)),
    };
    match outcome {
        Ok(mut value) => {
            st.record_call(method, None);
            if let Value::Object(map) = &mut value {
                map.insert("ok".into(), Value::Bool(true));
            }
            json_response(StatusCode::OK, &value)
        }
        Err(f) => {
            st.record_call(method, Some(f.error));
            let mut map = f.extra;
            map.insert("ok".into(), Value::Bool(false));
            map.insert("error".into(), Value::String(f.error.into()));
            json_response(StatusCode::OK, &Value::Object(map))
        }
    }
}

/// Query parameters merged with a JSON or form body, as Slack accepts both.
fn parse_params(
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, &'static str> {
    let mut params = Map::new();
    if let Some(q) = uri.query() {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(q).map_err(|_| "invalid_arguments")?;
        for (k, v) in pairs {
            params.insert(k, Value::String(v));
        }
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let trimmed = body.iter().all(u8::is_ascii_whitespace);
    if trimmed {
        return Ok(params);
    }
    if ctype.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => params.extend(map),
            _ => return Err("invalid_json"),
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|_| "invalid_form_data")?;
        for (k, v) in pairs {
            params.insert(k, Value::String(v));
        }
    } else {
        return Err("invalid_form_data");
    }
    Ok(params)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn check_token(
    st: &State,
    method: &str,
    headers: &HeaderMap,
    params: &Map<String, Value>,
) -> Result<(), Fail> {
    if method == "api.test" {
        return Ok(());
    }
    let token = bearer(headers).or_else(|| params.get("token").and_then(Value::as_str));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(fail("not_authed"));
    };
    let is_app = st.app_token.as_deref() == Some(token);
    let is_bot = token == st.bot_token;
    match (method == "apps.connections.open", is_app, is_bot) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, false, true) | (false, true, false) => Err(fail("not_allowed_token_type")),
        _ => Err(fail("invalid_auth")),
    }
}

pub(super) fn str_param<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A JSON-valued parameter: a JSON value in JSON bodies, a JSON string in form bodies.
pub(super) fn json_param(
    params: &Map<String, Value>,
    key: &str,
    bad: &'static str,
) -> Result<Option<Value>, Fail> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| fail(bad)),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn blocks_param(
    st: &mut State,
    method: &str,
    params: &Map<String, Value>,
) -> Result<Option<Value>, Fail> {
    let Some(blocks) = json_param(params, "blocks", "invalid_blocks_format")? else {
        return Ok(None);
    };
    let errors = validate_blocks(&blocks, Surface::Message);
    if errors.is_empty() {
        Ok(Some(blocks))
    } else {
        Err(invalid("invalid_blocks", st, method, errors))
    }
}

/// Records Block Kit violations and builds Slack's answer for them.
pub(super) fn invalid(
    error: &'static str,
    st: &mut State,
    method: &str,
    errors: Vec<String>,
) -> Fail {
    st.validation_errors
        .extend(errors.iter().map(|e| format!("{method}: {e}")));
    let mut extra = Map::new();
    let messages: Vec<Value> = errors
        .iter()
        .map(|e| Value::String(format!("[ERROR] {e}")))
        .collect();
    extra.insert(
        "errors".into(),
        Value::Array(errors.into_iter().map(Value::String).collect()),
    );
    extra.insert("response_metadata".into(), json!({ "messages": messages }));
    Fail { error, extra }
}

fn dispatch(st: &mut State, method: &str, params: &Map<String, Value>) -> Outcome {
    match method {
        "api.test" => Ok(json!({ "args": params })),
        "auth.test" => Ok(json!({
            "url": "https://slipway-emulator.slack.com/",
            "team": TEAM_NAME,
            "user": "slipway",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        })),
        "chat.postMessage" => post_message(st, params),
        "chat.update" => update_message(st, params),
        "chat.postEphemeral" => post_ephemeral(st, params),
        "chat.getPermalink" => permalink(st, params),
        "views.open" | "views.push" | "views.update" => super::views::handle(st, method, params),
        "views.publish" => super::views::publish(st, params),
        "users.info" => users_info(st, params),
        "users.lookupByEmail" => users_lookup_by_email(st, params),
        "conversations.info" => conversations_info(st, params),
        "conversations.open" => conversations_open(params),
        "apps.connections.open" => {
            let n = st.next();
            let ws = st.base_url.replacen("http://", "ws://", 1);
            Ok(json!({ "url": format!("{ws}/socket?ticket=emu-{n}&app_id={APP_ID}") }))
        }
        _ => Err(fail("unknown_method")),
    }
}

fn message_json(ts: &str, thread_ts: Option<&str>, text: &str, blocks: &Value) -> Value {
    let mut m = json!({
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "ts": ts,
        "text": text,
    });
    if blocks.as_array().is_some_and(|b| !b.is_empty()) {
        m["blocks"] = blocks.clone();
    }
    if let Some(t) = thread_ts {
        m["thread_ts"] = Value::String(t.into());
    }
    m
}

fn post_message(st: &mut State, params: &Map<String, Value>) -> Outcome {
    let channel = str_param(params, "channel")
        .ok_or_else(|| fail("channel_not_found"))?
        .to_string();
    let blocks = blocks_param(st, "chat.postMessage", params)?;
    let attachments = json_param(params, "attachments", "invalid_attachments")?;
    let text = str_param(params, "text").map(str::to_string);
    if text.is_none() && blocks.is_none() && attachments.is_none() {
        return Err(fail("no_text"));
    }
    let thread_ts = str_param(params, "thread_ts").map(str::to_string);
    let ts = st.next_ts();
    let text = text.unwrap_or_default();
    let blocks = blocks.unwrap_or_else(|| json!([]));
    let message = message_json(&ts, thread_ts.as_deref(), &text, &blocks);
    st.messages.push(Message {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        text: text.clone(),
        blocks: blocks.clone(),
        updates: 0,
        history: vec![(text, blocks)],
    });
    Ok(json!({ "channel": channel, "ts": ts, "message": message }))
}

fn update_message(st: &mut State, params: &Map<String, Value>) -> Outcome {
    let channel = str_param(params, "channel")
        .ok_or_else(|| fail("channel_not_found"))?
        .to_string();
    let ts = str_param(params, "ts")
        .ok_or_else(|| fail("message_not_found"))?
        .to_string();
    let blocks = blocks_param(st, "chat.update", params)?;
    let attachments = json_param(params, "attachments", "invalid_attachments")?;
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string);
    if text.is_none() && blocks.is_none() && attachments.is_none() {
        return Err(fail("no_text"));
    }
    let msg = st
        .find_message(&channel, &ts)
        .ok_or_else(|| fail("message_not_found"))?;
    if let Some(t) = text {
        msg.text = t;
    }
    if let Some(b) = blocks {
        msg.blocks = b;
    }
    msg.updates += 1;
    msg.history.push((msg.text.clone(), msg.blocks.clone()));
    let mut message = message_json(&ts, msg.thread_ts.as_deref(), &msg.text, &msg.blocks);
    if let Value::Object(m) = &mut message {
        m.remove("ts");
        m.insert("edited".into(), json!({ "user": BOT_USER_ID, "ts": ts }));
    }
    let (text, thread_ts) = (msg.text.clone(), msg.thread_ts.clone());
    let mut out = json!({ "channel": channel, "ts": ts, "text": text, "message": message });
    if let Some(t) = thread_ts {
        out["thread_ts"] = Value::String(t);
    }
    Ok(out)
}

fn post_ephemeral(st: &mut State, params: &Map<String, Value>) -> Outcome {
    let channel = str_param(params, "channel")
        .ok_or_else(|| fail("channel_not_found"))?
        .to_string();
    let user = str_param(params, "user")
        .ok_or_else(|| fail("user_not_in_channel"))?
        .to_string();
    let blocks = blocks_param(st, "chat.postEphemeral", params)?;
    let attachments = json_param(params, "attachments", "invalid_attachments")?;
    let text = str_param(params, "text").map(str::to_string);
    if text.is_none() && blocks.is_none() && attachments.is_none() {
        return Err(fail("no_text"));
    }
    let ts = st.next_ts();
    st.ephemerals.push(Ephemeral {
        channel,
        user,
        ts: ts.clone(),
        thread_ts: str_param(params, "thread_ts").map(str::to_string),
        text: text.unwrap_or_default(),
        blocks: blocks.unwrap_or_else(|| json!([])),
    });
    Ok(json!({ "message_ts": ts }))
}

fn permalink(st: &mut State, params: &Map<String, Value>) -> Outcome {
    let channel = str_param(params, "channel")
        .ok_or_else(|| fail("channel_not_found"))?
        .to_string();
    let ts = str_param(params, "message_ts")
        .ok_or_else(|| fail("message_not_found"))?
        .to_string();
    let base = st.base_url.clone();
    let msg = st
        .find_message(&channel, &ts)
        .ok_or_else(|| fail("message_not_found"))?;
    let mut link = format!("{base}/archives/{channel}/p{}", ts.replace('.', ""));
    if let Some(parent) = msg.thread_ts.as_deref().filter(|p| *p != ts) {
        link = format!("{link}?thread_ts={parent}&cid={channel}");
    }
    Ok(json!({ "channel": channel, "permalink": link }))
}

/// `conversations.info`: a public channel (`C…`) or a DM (`D…`); shared with another
/// organisation when a test said so.
/// `conversations.open` for one user: their direct message with the bot, the same `D…` id each
/// time. `users` is a comma-separated string (form) or an array (JSON); several users would be a
/// group DM, which Slipway never opens.
fn conversations_open(params: &Map<String, Value>) -> Outcome {
    let users: Vec<String> = match params.get("users") {
        Some(Value::String(s)) => s.split(',').map(|u| u.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let [user] = users.as_slice() else {
        return Err(fail(if users.is_empty() {
            "users_list_not_supplied"
        } else {
            "not_implemented"
        }));
    };
    let Some(rest) = user.strip_prefix('U').or_else(|| user.strip_prefix('W')) else {
        return Err(fail("user_not_found"));
    };
    if rest.is_empty() {
        return Err(fail("user_not_found"));
    }
    Ok(json!({ "channel": { "id": format!("D{rest}") } }))
}

fn conversations_info(st: &State, params: &Map<String, Value>) -> Outcome {
    let id = str_param(params, "channel").ok_or_else(|| fail("channel_not_found"))?;
    let im = id.starts_with('D');
    if !(id.starts_with('C') || id.starts_with('G') || im) {
        return Err(fail("channel_not_found"));
    }
    let ext = st.external_channels.contains(id);
    let mut channel = json!({
        "id": id,
        "created": 1_700_000_000,
        "is_channel": !im,
        "is_group": false,
        "is_im": im,
        "is_mpim": false,
        "is_private": im,
        "is_archived": false,
        "is_general": false,
        "is_shared": ext,
        "is_ext_shared": ext,
        "is_org_shared": false,
        "is_pending_ext_shared": false,
        "is_member": true,
    });
    if !im {
        channel["name"] = json!(id.to_ascii_lowercase());
        channel["creator"] = json!("U0CREATOR");
    }
    Ok(json!({ "channel": channel }))
}

fn users_info(st: &State, params: &Map<String, Value>) -> Outcome {
    let id = str_param(params, "user").ok_or_else(|| fail("user_not_found"))?;
    let user = st.users.get(id).ok_or_else(|| fail("user_not_found"))?;
    Ok(json!({ "user": user_json(id, user) }))
}

/// Slack matches the registered email without case; deactivated users are still found (with
/// `deleted: true`). No match is `users_not_found`.
fn users_lookup_by_email(st: &State, params: &Map<String, Value>) -> Outcome {
    let email = str_param(params, "email").ok_or_else(|| fail("invalid_arguments"))?;
    let (id, user) = st
        .users
        .iter()
        .find(|(_, u)| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .ok_or_else(|| fail("users_not_found"))?;
    Ok(json!({ "user": user_json(id, user) }))
}

fn user_json(id: &str, user: &super::state::User) -> Value {
    let mut profile = json!({
        "real_name": user.name,
        "display_name": user.name,
        "real_name_normalized": user.name,
        "display_name_normalized": user.name,
        "team": TEAM_ID,
    });
    if let Some(email) = &user.email {
        profile["email"] = Value::String(email.clone());
    }
    json!({
        "id": id,
        "team_id": TEAM_ID,
        "name": user.name,
        "real_name": user.name,
        "deleted": user.deleted,
        "is_bot": false,
        "is_admin": false,
        "is_owner": false,
        "tz": "Etc/UTC",
        "tz_label": "Coordinated Universal Time",
        "tz_offset": 0,
        "profile": profile,
    })
}

/// POST `/response/<id>`: Slack answers `ok` (text/plain), 404 `used_url` after 5 posts,
/// 404 `expired_url` after 30 minutes, 400 `invalid_blocks` for Block Kit violations.
fn response_url(app: &App, id: &str, headers: &HeaderMap, body: &Bytes) -> HttpResponse {
    let mut st = lock(&app.state);
    let Some(sink) = st.sinks.get(id) else {
        return text_response(StatusCode::NOT_FOUND, "no_service");
    };
    if sink.created.elapsed() > RESPONSE_URL_TTL {
        return text_response(StatusCode::NOT_FOUND, "expired_url");
    }
    if sink.posts >= RESPONSE_URL_MAX_POSTS {
        return text_response(StatusCode::NOT_FOUND, "used_url");
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = if ctype.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "payload"))
            .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok())
    } else {
        serde_json::from_slice::<Value>(body).ok()
    };
    let Some(payload) = parsed.filter(Value::is_object) else {
        return text_response(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let label = format!("response_url {id}");
    if let Some(blocks) = payload.get("blocks") {
        let errors = validate_blocks(blocks, Surface::Message);
        if !errors.is_empty() {
            st.validation_errors
                .extend(errors.iter().map(|e| format!("{label}: {e}")));
            return text_response(StatusCode::BAD_REQUEST, "invalid_blocks");
        }
    }
    let no_content = ["text", "blocks", "attachments"]
        .iter()
        .all(|k| payload.get(*k).is_none());
    if no_content && payload.get("delete_original").is_none() {
        return text_response(StatusCode::BAD_REQUEST, "no_text");
    }
    if let Some(sink) = st.sinks.get_mut(id) {
        sink.posts += 1;
    }
    st.responses.push(Response {
        id: id.to_string(),
        body: payload,
    });
    text_response(StatusCode::OK, "ok")
}
