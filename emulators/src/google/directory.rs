//! The Directory API routes the emulator serves: `users.list`, `users.get`, `users.watch`,
//! `groups.list`, `members.list` and `channels.stop`, each described by a [`MethodSpec`] (its
//! verb, path, parameters and scopes as Google's discovery document names them; the emulator's
//! tests check the table against that document). A parameter the table doesn't name is a 400,
//! so a client sending something the emulator doesn't implement finds out.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::oauth::{ApiError, api_error, authorize};
use super::push;
use super::state::{Channel, Shared, State as Google, lock, random_hex};

/// One Directory API method as the discovery document describes it.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    /// The discovery document's method id (`directory.users.list`).
    pub id: &'static str,
    pub http_method: &'static str,
    /// Relative to the root URL, as the document's `path` (`admin/directory/v1/users`).
    pub path: &'static str,
    /// The parameters the emulator honours (path and query).
    pub params: &'static [&'static str],
    /// The scopes any one of which lets a token call it.
    pub scopes: &'static [&'static str],
    pub request: Option<&'static str>,
    pub response: Option<&'static str>,
}

const USER: &str = "https://www.googleapis.com/auth/admin.directory.user";
const USER_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";
const GROUP: &str = "https://www.googleapis.com/auth/admin.directory.group";
const GROUP_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const MEMBER: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
const MEMBER_RO: &str = "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
const ALIAS: &str = "https://www.googleapis.com/auth/admin.directory.user.alias";
const ALIAS_RO: &str = "https://www.googleapis.com/auth/admin.directory.user.alias.readonly";

const USER_LIST_PARAMS: &[&str] = &[
    "customer",
    "domain",
    "maxResults",
    "pageToken",
    "projection",
    "customFieldMask",
    "orderBy",
    "sortOrder",
    "viewType",
    "showDeleted",
    "event",
];

pub const USERS_LIST: MethodSpec = MethodSpec {
    id: "directory.users.list",
    http_method: "GET",
    path: "admin/directory/v1/users",
    params: USER_LIST_PARAMS,
    scopes: &[USER, USER_RO, CLOUD],
    request: None,
    response: Some("Users"),
};
pub const USERS_GET: MethodSpec = MethodSpec {
    id: "directory.users.get",
    http_method: "GET",
    path: "admin/directory/v1/users/{userKey}",
    params: &["userKey", "projection", "customFieldMask", "viewType"],
    scopes: &[USER, USER_RO],
    request: None,
    response: Some("User"),
};
pub const USERS_WATCH: MethodSpec = MethodSpec {
    id: "directory.users.watch",
    http_method: "POST",
    path: "admin/directory/v1/users/watch",
    params: USER_LIST_PARAMS,
    scopes: &[USER, USER_RO, CLOUD],
    request: Some("Channel"),
    response: Some("Channel"),
};
pub const GROUPS_LIST: MethodSpec = MethodSpec {
    id: "directory.groups.list",
    http_method: "GET",
    path: "admin/directory/v1/groups",
    params: &[
        "customer",
        "domain",
        "maxResults",
        "pageToken",
        "orderBy",
        "sortOrder",
        "userKey",
    ],
    scopes: &[GROUP, GROUP_RO],
    request: None,
    response: Some("Groups"),
};
pub const MEMBERS_LIST: MethodSpec = MethodSpec {
    id: "directory.members.list",
    http_method: "GET",
    path: "admin/directory/v1/groups/{groupKey}/members",
    params: &[
        "groupKey",
        "maxResults",
        "pageToken",
        "includeDerivedMembership",
        "roles",
    ],
    scopes: &[GROUP, MEMBER, MEMBER_RO, GROUP_RO],
    request: None,
    response: Some("Members"),
};
pub const CHANNELS_STOP: MethodSpec = MethodSpec {
    id: "admin.channels.stop",
    http_method: "POST",
    path: "admin/directory_v1/channels/stop",
    params: &[],
    scopes: &[USER, ALIAS, ALIAS_RO, USER_RO, CLOUD],
    request: Some("Channel"),
    response: None,
};

/// Every method the emulator serves.
pub const METHODS: &[MethodSpec] = &[
    USERS_LIST,
    USERS_GET,
    USERS_WATCH,
    GROUPS_LIST,
    MEMBERS_LIST,
    CHANNELS_STOP,
];

/// Parameters every Google API takes (the discovery document's top-level `parameters`).
const STANDARD: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

type Params = BTreeMap<String, String>;

fn bad(message: &str) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn forbidden() -> ApiError {
    api_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Not Authorized to access this resource/api",
    )
}

fn ok_json(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// Log the call, check the token, and parse the query against the method's parameters.
fn begin(
    st: &mut Google,
    spec: &MethodSpec,
    headers: &HeaderMap,
    raw: Option<&str>,
    path: &str,
) -> Result<Params, ApiError> {
    let raw = raw.unwrap_or_default();
    st.requests
        .push(format!("{} /{path}?{raw}", spec.http_method));
    authorize(st, headers, spec.scopes)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|_| bad("Invalid query string"))?;
    let mut params = Params::new();
    for (k, v) in pairs {
        if !spec.params.contains(&k.as_str()) && !STANDARD.contains(&k.as_str()) {
            return Err(bad(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter."
            )));
        }
        if k == "alt" && v != "json" {
            return Err(bad("Invalid value for alt: only json is served"));
        }
        params.insert(k, v);
    }
    Ok(params)
}

/// `maxResults` within `1..=max` (Google refuses values outside it), else `default`.
fn max_results(p: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match p.get("maxResults") {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(&format!(
                "Invalid value '{s}'. Values must be within the range: [1, {max}]"
            ))),
        },
    }
}

/// One page of `items` from `pageToken`, and the token of the next page.
fn page<T: Clone>(
    items: &[T],
    p: &Params,
    what: &str,
    size: usize,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match p.get("pageToken") {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(&format!("{what}:"))?.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| bad("Invalid pageToken"))?,
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| URL_SAFE_NO_PAD.encode(format!("{what}:{end}")));
    Ok((items[start..end].to_vec(), next))
}

/// `customer` or `domain` must name this customer (one is required).
fn check_scope(st: &Google, p: &Params) -> Result<(), ApiError> {
    match (p.get("customer"), p.get("domain")) {
        (None, None) => Err(bad("Bad Request: customer or domain is required")),
        (Some(c), _) if !st.is_customer(c) => Err(forbidden()),
        (_, Some(d)) if !d.eq_ignore_ascii_case(&st.domain) => Err(forbidden()),
        _ => Ok(()),
    }
}

/// Which custom schemas a projection includes.
type SchemaFilter = Box<dyn Fn(&str) -> bool>;

/// The filter for `projection` (and `customFieldMask`).
fn projection(p: &Params) -> Result<SchemaFilter, ApiError> {
    match p.get("projection").map_or("basic", String::as_str) {
        "basic" => Ok(Box::new(|_| false)),
        "full" => Ok(Box::new(|_| true)),
        "custom" => {
            let mask: Vec<String> = p
                .get("customFieldMask")
                .ok_or_else(|| bad("customFieldMask is required with projection=custom"))?
                .split(',')
                .map(str::to_string)
                .collect();
            Ok(Box::new(move |s| mask.iter().any(|m| m == s)))
        }
        other => Err(bad(&format!("Invalid value for projection: {other}"))),
    }
}

/// A list's answer: `kind` (`admin#directory#<field>`), an etag, the page's items under
/// `field` (left out when there are none, as Google does) and `nextPageToken` if there is more.
fn list_page(field: &str, items: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({
        "kind": format!("admin#directory#{field}"),
        "etag": format!("\"{field}-list-{}\"", random_hex(6)),
    });
    if !items.is_empty() {
        body[field] = Value::Array(items);
    }
    if let Some(t) = next {
        body["nextPageToken"] = json!(t);
    }
    ok_json(&body)
}

pub(crate) async fn users_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = &mut *lock(&state);
    let result = (|| -> Result<Response, ApiError> {
        let p = begin(st, &USERS_LIST, &headers, raw.as_deref(), USERS_LIST.path)?;
        check_scope(st, &p)?;
        let size = max_results(&p, 100, 500)?;
        let custom = projection(&p)?;
        let mut users = if p.get("showDeleted").is_some_and(|v| v == "true") {
            Vec::new()
        } else {
            st.users.clone()
        };
        users.sort_by_key(|u| u.primary_email.to_lowercase());
        if p.get("sortOrder").is_some_and(|o| o == "DESCENDING") {
            users.reverse();
        }
        let (items, next) = page(&users, &p, "users", size)?;
        let items = items.iter().map(|u| st.user_json(u, &*custom)).collect();
        Ok(list_page("users", items, next))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn users_get(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = &mut *lock(&state);
    let path = format!("admin/directory/v1/users/{key}");
    let result = (|| -> Result<Response, ApiError> {
        let p = begin(st, &USERS_GET, &headers, raw.as_deref(), &path)?;
        let custom = projection(&p)?;
        let user = st.user(&key).ok_or_else(|| {
            api_error(
                StatusCode::NOT_FOUND,
                "notFound",
                "Resource Not Found: userKey",
            )
        })?;
        Ok(ok_json(&st.user_json(user, &*custom)))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn groups_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = &mut *lock(&state);
    let result = (|| -> Result<Response, ApiError> {
        let p = begin(st, &GROUPS_LIST, &headers, raw.as_deref(), GROUPS_LIST.path)?;
        let mut groups = st.groups.clone();
        if let Some(user) = p.get("userKey") {
            let id = st.user(user).map(|u| u.id.clone()).unwrap_or_default();
            groups.retain(|g| g.members.iter().any(|m| m.id == id));
        } else {
            check_scope(st, &p)?;
        }
        let size = max_results(&p, 200, 200)?;
        groups.sort_by_key(|g| g.email.to_lowercase());
        if p.get("sortOrder").is_some_and(|o| o == "DESCENDING") {
            groups.reverse();
        }
        let (items, next) = page(&groups, &p, "groups", size)?;
        Ok(list_page(
            "groups",
            items.iter().map(Google::group_json).collect(),
            next,
        ))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn members_list(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = &mut *lock(&state);
    let path = format!("admin/directory/v1/groups/{key}/members");
    let result = (|| -> Result<Response, ApiError> {
        let p = begin(st, &MEMBERS_LIST, &headers, raw.as_deref(), &path)?;
        let size = max_results(&p, 200, 200)?;
        let group = st.group(&key).cloned().ok_or_else(|| {
            api_error(
                StatusCode::NOT_FOUND,
                "notFound",
                "Resource Not Found: groupKey",
            )
        })?;
        let derived = p
            .get("includeDerivedMembership")
            .is_some_and(|v| v == "true");
        let mut members = st.members_of(&group, derived);
        if let Some(roles) = p.get("roles") {
            let roles: Vec<&str> = roles.split(',').map(str::trim).collect();
            members.retain(|m| roles.contains(&m.role.as_str()));
        }
        let (items, next) = page(&members, &p, "members", size)?;
        let items = items
            .iter()
            .map(|m| Google::member_json(&group, m))
            .collect();
        Ok(list_page("members", items, next))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The channel a `users.watch` body asks for.
fn channel_request(st: &Google, body: &[u8], p: &Params, raw: &str) -> Result<Channel, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("Invalid JSON payload"))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let id = text("id").ok_or_else(|| bad("channel id is required"))?;
    if !matches!(text("type").as_deref(), Some("web_hook" | "webhook")) {
        return Err(bad("channel type must be web_hook"));
    }
    let address = text("address").ok_or_else(|| bad("channel address is required"))?;
    let loopback = address.starts_with("http://127.0.0.1:");
    if !(address.starts_with("https://") || loopback) {
        return Err(bad("WebHook callback must be HTTPS"));
    }
    if st.channels.iter().any(|c| c.id == id) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "channelIdNotUnique",
            "Channel id not unique",
        ));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let asked = match v.get("expiration") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let longest = now_ms + st.channel_ttl_ms;
    let default = now_ms + st.channel_ttl_ms.min(2 * 3600 * 1000);
    Ok(Channel {
        id,
        resource_id: random_hex(14),
        resource_uri: format!("{}/{}?{raw}", st.base_url, USERS_LIST.path),
        token: text("token"),
        address,
        expiration_ms: asked
            .filter(|a| *a > now_ms)
            .map_or(default, |a| a.min(longest)),
        event: p.get("event").cloned(),
        message_number: 0,
    })
}

pub(crate) async fn users_watch(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let mut guard = lock(&state);
    let st = &mut *guard;
    let raw = raw.unwrap_or_default();
    let channel = (|| {
        let p = begin(st, &USERS_WATCH, &headers, Some(&raw), USERS_WATCH.path)?;
        check_scope(st, &p)?;
        if let Some(e) = p.get("event")
            && !["add", "delete", "makeAdmin", "undelete", "update"].contains(&e.as_str())
        {
            return Err(bad(&format!("Invalid value for event: {e}")));
        }
        channel_request(st, &body, &p, &raw)
    })();
    let channel = match channel {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut answer = json!({
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": channel.resource_uri,
        "expiration": channel.expiration_ms.to_string(),
    });
    if let Some(t) = &channel.token {
        answer["token"] = json!(t);
    }
    let id = channel.id.clone();
    st.channels.push(channel);
    drop(guard);
    push::sync_message(&state, &id);
    ok_json(&answer)
}

pub(crate) async fn channels_stop(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let st = &mut *lock(&state);
    let result = (|| -> Result<Response, ApiError> {
        begin(
            st,
            &CHANNELS_STOP,
            &headers,
            raw.as_deref(),
            CHANNELS_STOP.path,
        )?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| bad("Invalid JSON payload"))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let before = st.channels.len();
        st.channels
            .retain(|c| !(c.id == text("id") && c.resource_id == text("resourceId")));
        if st.channels.len() == before {
            return Err(api_error(
                StatusCode::NOT_FOUND,
                "notFound",
                &format!("Channel '{}' not found for project", text("id")),
            ));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}
