//! The browser side of `/slipway link sso`, on the public listener, mounted only when SSO is
//! configured: `GET /sso/start` sends the browser to the identity provider, `GET /sso/callback`
//! completes the login, records the link (audited before anyone is told), and answers with a
//! small HTML page and, through the command's `response_url`, in Slack. Every refusal is a page
//! with a sentence and what to do; its cause is only logged.

use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_core::policy::SlackUser;
use slipway_core::policy::model::SlackMatch;

use super::AppState;
use crate::identity::sso::{Login, SsoError};
use crate::identity::{Origin, Resolved};
use crate::slack::client::Message;
use crate::slack::events::SlashCommand;

const NOT_CONFIGURED: &str = "SSO linking isn't configured on this bridge. An operator turns it \
    on with SLIPWAY_SSO_ISSUER, SLIPWAY_SSO_CLIENT_ID (and SLIPWAY_SSO_CLIENT_SECRET for a \
    confidential client) and SLIPWAY_PUBLIC_URL, the bridge's public address: the identity \
    provider sends people back to `<public URL>/sso/callback`. Socket Mode deployments without a \
    public listener link Slack accounts by email instead (`identities.slack_match: email`).";

/// The ack of `/slipway link sso`: a one-time login link, or why there is none. No I/O.
pub(super) fn link_reply(state: &AppState, cmd: &SlashCommand, who: &Resolved) -> String {
    let Some(sso) = &state.sso else {
        return NOT_CONFIGURED.to_string();
    };
    let policy = state.policy();
    if policy.slack_match() != SlackMatch::Sso {
        return format!(
            "This organisation links Slack accounts to the company directory by Slack email \
             (the policy's `identities.slack_match: email`), so an SSO login wouldn't count. \
             If that's wrong, ask {}.",
            policy.support()
        );
    }
    if let Resolved::Known(k) = who
        && k.source == Origin::Static
    {
        return format!(
            "You are *{}* in the policy file, and its entries win for their own Slack IDs, so \
             an SSO login would change nothing.",
            k.identity.subject
        );
    }
    let url = sso.begin(&cmd.user.user_id, &cmd.response_url);
    format!(
        ":key: <{url}|Sign in with your company account> to link this Slack account to your \
         company login. The link works once, for 10 minutes, and only for you: don't pass it on."
    )
}

/// `GET /sso/start?state=…`: to the provider's authorization endpoint.
pub(super) async fn start(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(sso) = state.sso.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match sso.authorize_url(query.as_deref()).await {
        Ok(url) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "no-store".to_string()),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
            ],
        )
            .into_response(),
        Err(e) => refused(&e, "starting an SSO login"),
    }
}

/// `GET /sso/callback?code=…&state=…`.
pub(super) async fn callback(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(sso) = state.sso.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match sso.finish(query.as_deref()).await {
        Ok(login) => link(&state, login).await,
        Err(e) => refused(&e, "completing an SSO login"),
    }
}

fn refused(e: &SsoError, what: &str) -> Response {
    if let SsoError::Discovery(_) = e {
        tracing::error!(error = %e, "{what}");
    } else {
        tracing::warn!(error = %e, "{what}");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    page(status, "Not linked", &e.public())
}

/// Record a verified login: the link and its claims, then the audit record; if that can't be
/// written, the link is undone and nobody is told it happened.
async fn link(state: &AppState, login: Login) -> Response {
    let user = SlackUser::new(&login.slack_user);
    let (link, replaced) = match state
        .people
        .link_sso(&login.slack_user, &login.claims)
        .await
    {
        Ok(done) => done,
        Err(why) => return page(StatusCode::BAD_REQUEST, "Not linked", &format!("{why}.")),
    };
    let who = state.people.resolve(&state.policy(), &user).await;
    let source = match &who {
        Resolved::Known(k) => k.source.as_str(),
        _ => Origin::Sso.as_str(),
    };
    if state
        .record_link(&user, source, &link, who.identity())
        .await
        .is_err()
    {
        state.people.undo_sso(&login.slack_user, replaced);
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not linked",
            "Slipway can't write its audit trail right now, so nothing was linked. Try again \
             in a few minutes.",
        );
    }
    tracing::info!(slack_user = %login.slack_user, sub = %link.person, "SSO login linked");
    let told = confirmation(&who);
    if !login.response_url.is_empty() {
        let (slack, url, text) = (
            state.slack.clone(),
            login.response_url.expose().to_string(),
            format!(":white_check_mark: {told}"),
        );
        tokio::spawn(async move {
            if let Err(e) = slack.respond(&url, &Message::text(text), false).await {
                tracing::warn!(error = %e, "confirming an SSO link in Slack");
            }
        });
    }
    page(
        StatusCode::OK,
        "Linked",
        &format!("{told} You can close this tab."),
    )
}

/// What the person hears once the link is recorded.
fn confirmation(who: &Resolved) -> String {
    match who {
        Resolved::Known(k) => format!(
            "Linked this Slack account to your company login `{}`. Groups: {}.",
            k.identity.subject,
            if k.identity.groups.is_empty() {
                "none".to_string()
            } else {
                k.identity.groups.join(", ")
            }
        ),
        Resolved::Refused(why) => {
            format!("Your login was linked, but Slipway still refuses this account: {why}.")
        }
        Resolved::Unknown(hint) => format!(
            "Your login was linked, but Slipway can't tell who you are yet{}.",
            hint.as_deref()
                .map(|h| format!("; to be recognised, {h}"))
                .unwrap_or_default()
        ),
    }
}

/// A small HTML page: nothing in it is markup but what is written here, `code` spans included.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let mut body = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(body, "<code>{}</code>", escape(part));
        } else {
            body.push_str(&escape(part));
        }
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>Slipway: {t}</title></head>\
         <body><h1>{t}</h1><p>{body}</p></body></html>\n",
        t = escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_everything_but_their_own_code_spans() {
        assert_eq!(
            escape(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        let r = page(StatusCode::OK, "T<", "a `<b>` c");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
