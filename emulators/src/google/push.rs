//! Push notifications to the channels `users.watch` opened, as Google sends them: a `POST` to
//! the channel's address with `X-Goog-Channel-ID`, `X-Goog-Channel-Token` (when the channel has
//! one), `X-Goog-Channel-Expiration`, `X-Goog-Resource-ID`, `X-Goog-Resource-URI`,
//! `X-Goog-Resource-State` (`sync` when the channel opens, then `add`, `update`, `delete`…) and
//! `X-Goog-Message-Number`; a change's body is the user's `kind`, `id`, `etag` and
//! `primaryEmail`. Expired channels get nothing and are dropped.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::state::{Channel, Delivery, Shared, lock};

/// How long the receiver has to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `sync` message a new channel gets first.
pub(crate) fn sync_message(state: &Shared, channel_id: &str) {
    let outgoing = {
        let mut st = lock(state);
        st.channels
            .iter_mut()
            .find(|c| c.id == channel_id)
            .map(|c| outgoing(c, "sync", None))
    };
    if let Some(o) = outgoing {
        spawn(state, o);
    }
}

/// Tell every live channel watching `event` about `user` (its `users.get` body, trimmed).
pub(crate) fn notify(state: &Shared, event: &str, user: &Value) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = serde_json::json!({
        "kind": user["kind"],
        "id": user["id"],
        "etag": user["etag"],
        "primaryEmail": user["primaryEmail"],
    });
    let outgoing: Vec<Outgoing> = {
        let mut st = lock(state);
        st.channels.retain(|c| c.expiration_ms > now_ms);
        st.channels
            .iter_mut()
            .filter(|c| c.event.as_deref().is_none_or(|e| e == event))
            .map(|c| outgoing(c, event, Some(body.clone())))
            .collect()
    };
    for o in outgoing {
        spawn(state, o);
    }
}

/// One message on its way.
struct Outgoing {
    address: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
    delivery: Delivery,
}

fn outgoing(c: &mut Channel, state: &str, body: Option<Value>) -> Outgoing {
    c.message_number += 1;
    let expiration = chrono::DateTime::from_timestamp_millis(c.expiration_ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default();
    let mut headers = vec![
        ("x-goog-channel-id", c.id.clone()),
        ("x-goog-channel-expiration", expiration),
        ("x-goog-resource-id", c.resource_id.clone()),
        ("x-goog-resource-uri", c.resource_uri.clone()),
        ("x-goog-resource-state", state.to_string()),
        ("x-goog-message-number", c.message_number.to_string()),
    ];
    if let Some(t) = &c.token {
        headers.push(("x-goog-channel-token", t.clone()));
    }
    let user_id = body
        .as_ref()
        .and_then(|b| b["id"].as_str())
        .map(str::to_string);
    Outgoing {
        address: c.address.clone(),
        headers,
        body,
        delivery: Delivery {
            channel_id: c.id.clone(),
            state: state.to_string(),
            user_id,
            status: None,
        },
    }
}

fn spawn(state: &Shared, o: Outgoing) {
    let state = state.clone();
    tokio::spawn(async move {
        let status = deliver(&o).await;
        lock(&state).deliveries.push(Delivery {
            status,
            ..o.delivery
        });
    });
}

async fn deliver(o: &Outgoing) -> Option<u16> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let body = o.body.as_ref().map(Value::to_string).unwrap_or_default();
    let mut req = hyper::Request::post(&o.address)
        .header("content-type", "application/json; charset=UTF-8")
        .header(
            "user-agent",
            "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        );
    for (k, v) in &o.headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::from(body))).ok()?;
    let resp = tokio::time::timeout(DELIVERY_TIMEOUT, client.request(req))
        .await
        .ok()?
        .ok()?;
    Some(resp.status().as_u16())
}
