//! Socket Mode: the `/socket` websocket that `apps.connections.open` hands out. Sends `hello`
//! on connect, pushes envelopes on request and collects the client's acks.

use std::time::Duration;

use axum::extract::State as AxState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response as HttpResponse;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::App;
use super::state::{APP_ID, Shared, SocketConn, lock};

const ACK_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn upgrade(AxState(app): AxState<App>, ws: WebSocketUpgrade) -> HttpResponse {
    ws.on_upgrade(move |socket| serve(socket, app.state, app.shutdown))
}

async fn serve(mut socket: WebSocket, state: Shared, shutdown: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let id = {
        let mut st = lock(&state);
        let id = st.next();
        st.sockets.push(SocketConn { id, tx });
        id
    };
    let hello = json!({
        "type": "hello",
        "num_connections": 1,
        "debug_info": {
            "host": "applink-emulator",
            "build_number": 1,
            "approximate_connection_time": 18060,
        },
        "connection_info": { "app_id": APP_ID },
    });
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                out = rx.recv() => {
                    let Some(frame) = out else { break };
                    if socket.send(WsMessage::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
                incoming = socket.recv() => {
                    match incoming {
                        Some(Ok(WsMessage::Text(text))) => on_frame(&state, text.as_str()),
                        Some(Ok(WsMessage::Close(_)) | Err(_)) | None => break,
                        Some(Ok(_)) => {} // pings are answered by the websocket layer
                    }
                }
            }
        }
    }
    lock(&state).sockets.retain(|c| c.id != id);
}

/// An ack from the client: `{"envelope_id":…, "payload"?:…}`. Anything else is ignored, as
/// Slack does.
fn on_frame(state: &Shared, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(envelope_id) = frame
        .get("envelope_id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let mut st = lock(state);
    st.socket_acks.push(frame.clone());
    if let Some(waiter) = st.pending_acks.remove(&envelope_id) {
        let _ = waiter.send(frame);
    }
}

/// Which connection an envelope goes to, and which delivery of it this is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    /// Index among the live connections, oldest first; `None`: the most recent.
    pub connection: Option<usize>,
    /// 0 for the first delivery; Slack redelivers an unacknowledged envelope with 1, 2, 3.
    pub retry_attempt: u32,
}

pub(crate) async fn send(
    state: &Shared,
    envelope_type: &str,
    payload: Value,
    delivery: Delivery,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    let (envelope_id, rx) = loop {
        {
            let mut st = lock(state);
            let conn = match delivery.connection {
                Some(i) => st.sockets.get(i),
                None => st.sockets.last(),
            };
            if let Some(tx) = conn.map(|c| c.tx.clone()) {
                let n = st.next();
                let envelope_id = format!("emu-envelope-{n:08}");
                let frame = json!({
                    "envelope_id": envelope_id,
                    "type": envelope_type,
                    "payload": payload,
                    "accepts_response_payload": true,
                    "retry_attempt": delivery.retry_attempt,
                    "retry_reason": if delivery.retry_attempt > 0 { "timeout" } else { "" },
                });
                let (ack_tx, ack_rx) = oneshot::channel();
                st.pending_acks.insert(envelope_id.clone(), ack_tx);
                if tx.send(frame.to_string()).is_ok() {
                    break (envelope_id, ack_rx);
                }
                st.pending_acks.remove(&envelope_id);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ack = tokio::time::timeout(ACK_TIMEOUT, rx).await;
    lock(state).pending_acks.remove(&envelope_id);
    ack.ok()?.ok()?.get("payload").cloned()
}
