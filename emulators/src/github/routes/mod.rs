//! The REST dispatcher: authentication, routing, secondary rate limits, call recording and
//! GitHub's error bodies. Handlers are synchronous functions over the locked state.

mod misc;
mod pulls;
mod repos;

pub(crate) use pulls::render as render_pull;

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth;
use super::ops::ApiError;
use super::smart_http;
use super::state::{Identity, State, hex, lock, random_bytes};
use super::{App, AuthenticatedAs, Call};

/// A successful reply.
pub(crate) struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Reply {
        Reply::with(200, body)
    }
    pub(crate) fn created(body: Value) -> Reply {
        Reply::with(201, body)
    }
    pub(crate) fn with(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    pub(crate) fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
        }
    }
}

pub(crate) type Outcome = Result<Reply, ApiError>;

/// What a handler sees of the request.
pub(crate) struct Ctx<'a> {
    pub(crate) owner: &'a str,
    pub(crate) repo: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Value,
    pub(crate) identity: Identity,
    pub(crate) path: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The login the caller acts as (the bot for installation tokens).
    pub(crate) fn login(&self) -> &str {
        self.identity.login().unwrap_or("unknown")
    }

    pub(crate) fn str_field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    /// A required string field, or GitHub's 422 for a missing one.
    pub(crate) fn required(&self, resource: &str, key: &str) -> Result<&str, ApiError> {
        self.str_field(key)
            .ok_or_else(|| ApiError::validation(resource, key, "missing_field", None))
    }
}

/// `per_page` (default 30, max 100) and `page` (from 1) applied to `items`, with a `Link` header.
pub(crate) fn paginate(cx: &Ctx<'_>, base_url: &str, items: Vec<Value>) -> Reply {
    let per_page = cx
        .query("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = cx
        .query("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut reply = Reply::ok(Value::Array(slice));
    if last > 1 {
        let url = |p: usize| {
            let mut q: Vec<(String, String)> = cx
                .query
                .iter()
                .filter(|(k, _)| k != "page")
                .cloned()
                .collect();
            q.push(("page".to_string(), p.to_string()));
            let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
            format!("<{base_url}{}?{qs}>", cx.path)
        };
        let mut links = Vec::new();
        if page < last {
            links.push(format!("{}; rel=\"next\"", url(page + 1)));
            links.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            links.push(format!("{}; rel=\"first\"", url(1)));
            links.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        reply.headers.push(("link", links.join(", ")));
    }
    reply
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let digit = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes[i] == b'%' && i + 3 <= bytes.len())
            .then(|| digit(bytes[i + 1]).zip(digit(bytes[i + 2])))
            .flatten();
        if let Some((h, l)) = pair {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn request_id() -> String {
    let b = random_bytes::<8>();
    hex(&b)
        .to_ascii_uppercase()
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i > 0 && i % 4 == 0).then_some(':').into_iter().chain([c]))
        .collect()
}

fn json_response(status: u16, body: Option<&Value>, extra: &[(&'static str, String)]) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match body {
        Some(b) => (
            code,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            b.to_string(),
        )
            .into_response(),
        None => code.into_response(),
    };
    let h = resp.headers_mut();
    let reset = (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp();
    for (k, v) in [
        ("x-github-api-version-selected", "2022-11-28".to_string()),
        ("x-github-media-type", "github.v3; format=json".to_string()),
        ("x-github-request-id", request_id()),
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", "4999".to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-used", "1".to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.status, Some(&e.body()), &[])
}

fn authenticated_as(identity: Option<&Identity>) -> AuthenticatedAs {
    match identity {
        None => AuthenticatedAs::None,
        Some(Identity::App(id)) => AuthenticatedAs::App(*id),
        Some(Identity::Installation {
            app_id,
            installation_id,
            ..
        }) => AuthenticatedAs::Installation {
            app_id: *app_id,
            installation_id: *installation_id,
        },
        Some(Identity::ActionsJob { repo }) => AuthenticatedAs::ActionsJob {
            repository: repo.clone(),
        },
        Some(Identity::User(login)) => AuthenticatedAs::User(login.clone()),
    }
}

fn record(app: &App, method: &Method, uri: &Uri, status: u16, identity: Option<&Identity>) {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    lock(&app.state).calls.push(Call {
        method: method.to_string(),
        path,
        status,
        authenticated_as: authenticated_as(identity),
    });
}

/// Every request lands here.
pub(crate) async fn handle(
    AxState(app): AxState<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Some(rest) = uri.path().strip_prefix("/git/") {
        let (resp, identity) =
            smart_http::handle(&app.state, &method, &uri, &headers, rest, &body).await;
        record(
            &app,
            &method,
            &uri,
            resp.status().as_u16(),
            identity.as_ref(),
        );
        return resp;
    }
    if let Some(rest) = uri.path().strip_prefix("/login/") {
        let resp = super::device::handle(&mut lock(&app.state), &method, &headers, rest, &body);
        record(&app, &method, &uri, resp.status().as_u16(), None);
        return resp;
    }
    let latency = lock(&app.state).latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (resp, identity) = rest(&app, &method, &uri, &headers, &body);
    record(
        &app,
        &method,
        &uri,
        resp.status().as_u16(),
        identity.as_ref(),
    );
    resp
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    )
}

fn rest(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<Identity>) {
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let credential = auth::parse_authorization(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let mut st = lock(&app.state);
    let identity = match auth::identify(&st, &credential) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return (
                error_response(&ApiError::new(401, "Requires authentication")),
                None,
            );
        }
        Err(msg) => return (error_response(&ApiError::new(401, msg)), None),
    };
    let app_route = segs.first() == Some(&"app");
    match (&identity, app_route) {
        (Identity::App(_), false) => {
            let e = ApiError::new(403, "Resource not accessible by integration");
            return (error_response(&e), Some(identity));
        }
        (Identity::Installation { .. } | Identity::ActionsJob { .. } | Identity::User(_), true) => {
            let e = ApiError::new(401, "A JSON web token could not be decoded");
            return (error_response(&e), Some(identity));
        }
        _ => {}
    }
    if segs.first() == Some(&"repos") && segs.len() >= 3 {
        let (o, r) = (segs[1], segs[2]);
        if st.repo(o, r).is_none() || !st.can_access(&identity, o, r) {
            return (error_response(&ApiError::not_found()), Some(identity));
        }
    }
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        let Ok(v) = serde_json::from_slice(body) else {
            let e = ApiError::new(400, "Problems parsing JSON");
            return (error_response(&e), Some(identity));
        };
        v
    };
    if let Some((suffix, left)) = st.fail_next.clone()
        && uri.path().ends_with(&suffix)
    {
        st.fail_next = (left > 1).then(|| (suffix, left - 1));
        let e = ApiError::new(502, "Server Error");
        return (error_response(&e), Some(identity));
    }
    if let Some((left, retry)) = st.rate_limit.filter(|_| is_write(method) && !app_route) {
        {
            st.rate_limit = (left > 1).then(|| (left - 1, retry));
            let e = ApiError::new(
                403,
                format!(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {}.",
                    request_id()
                ),
            );
            let mut body = e.body();
            body["documentation_url"] = json!(
                "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
            );
            let resp = json_response(403, Some(&body), &[("retry-after", retry.to_string())]);
            return (resp, Some(identity));
        }
    }
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let (owner, repo) = match segs.as_slice() {
        ["repos", o, r, ..] => (*o, *r),
        _ => ("", ""),
    };
    let cx = Ctx {
        owner,
        repo,
        query,
        body: parsed,
        identity: identity.clone(),
        path: uri.path(),
    };
    let outcome = route(&mut st, method, &segs, &cx);
    drop(st);
    let resp = match outcome {
        Some(Ok(reply)) => json_response(reply.status, reply.body.as_ref(), &reply.headers),
        Some(Err(e)) => error_response(&e),
        None => error_response(&ApiError::not_found()),
    };
    (resp, Some(identity))
}

fn number(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found())
}

fn route(st: &mut State, method: &Method, segs: &[&str], cx: &Ctx<'_>) -> Option<Outcome> {
    use Method as M;
    let m = method.clone();
    Some(match (m, segs) {
        (M::POST, ["app", "installations", id, "access_tokens"]) => misc::access_token(st, cx, id),
        (M::GET, ["user"]) => misc::current_user(st, cx),
        (M::GET, ["repos", _, _]) => repos::get_repo(st, cx),
        (M::GET, ["repos", _, _, "git", "ref", r @ ..]) if !r.is_empty() => {
            repos::get_ref(st, cx, &r.join("/"))
        }
        (M::GET, ["repos", _, _, "git", "matching-refs" | "refs", r @ ..]) => {
            repos::matching_refs(st, cx, &r.join("/"))
        }
        (M::POST, ["repos", _, _, "git", "refs"]) => repos::create_ref(st, cx),
        (M::PATCH, ["repos", _, _, "git", "refs", r @ ..]) if !r.is_empty() => {
            repos::update_ref(st, cx, &r.join("/"))
        }
        (M::DELETE, ["repos", _, _, "git", "refs", r @ ..]) if !r.is_empty() => {
            repos::delete_ref(st, cx, &r.join("/"))
        }
        (M::GET, ["repos", _, _, "git", "commits", sha]) => repos::git_commit(st, cx, sha),
        (M::GET, ["repos", _, _, "contents", p @ ..]) => repos::contents(st, cx, &p.join("/")),
        (M::GET, ["repos", _, _, "commits"]) => repos::list_commits(st, cx),
        (M::GET, ["repos", _, _, "commits", sha, "pulls"]) => pulls::for_commit(st, cx, sha),
        (M::GET, ["repos", _, _, "commits", r @ .., "status"]) if !r.is_empty() => {
            misc::combined_status(st, cx, &r.join("/"))
        }
        (M::GET, ["repos", _, _, "commits", r @ .., "statuses"]) if !r.is_empty() => {
            misc::list_statuses(st, cx, &r.join("/"))
        }
        (M::POST, ["repos", _, _, "statuses", sha]) => misc::create_status(st, cx, sha),
        (M::GET, ["repos", _, _, "actions", "runs"]) => misc::list_runs(st, cx),
        (M::GET, ["repos", _, _, "actions", "workflows", w, "runs"]) => {
            misc::list_workflow_runs(st, cx, w)
        }
        (M::GET, ["repos", _, _, "pulls"]) => pulls::list(st, cx),
        (M::POST, ["repos", _, _, "pulls"]) => pulls::create(st, cx),
        (M::GET, ["repos", _, _, "pulls", n]) => number(n).and_then(|n| pulls::get(st, cx, n)),
        (M::PATCH, ["repos", _, _, "pulls", n]) => number(n).and_then(|n| pulls::update(st, cx, n)),
        (M::PUT, ["repos", _, _, "pulls", n, "merge"]) => {
            number(n).and_then(|n| pulls::merge(st, cx, n))
        }
        (M::GET, ["repos", _, _, "pulls", n, "merge"]) => {
            number(n).and_then(|n| pulls::is_merged(st, cx, n))
        }
        (M::GET, ["repos", _, _, "pulls", n, "commits"]) => {
            number(n).and_then(|n| pulls::list_commits(st, cx, n))
        }
        (M::GET, ["repos", _, _, "pulls", n, "reviews"]) => {
            number(n).and_then(|n| pulls::list_reviews(st, cx, n))
        }
        (M::POST, ["repos", _, _, "pulls", n, "reviews"]) => {
            number(n).and_then(|n| pulls::create_review(st, cx, n))
        }
        (M::PUT, ["repos", _, _, "pulls", n, "reviews", id, "dismissals"]) => number(n)
            .and_then(|n| Ok((n, number(id)?)))
            .and_then(|(n, id)| pulls::dismiss_review(st, cx, n, id)),
        (M::GET, ["repos", _, _, "issues", n, "comments"]) => {
            number(n).and_then(|n| misc::list_comments(st, cx, n))
        }
        (M::POST, ["repos", _, _, "issues", n, "comments"]) => {
            number(n).and_then(|n| misc::create_comment(st, cx, n))
        }
        (M::POST, ["repos", _, _, "issues", n, "labels"]) => {
            number(n).and_then(|n| misc::add_labels(st, cx, n))
        }
        _ => return None,
    })
}
