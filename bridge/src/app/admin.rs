//! The operators' socket, `<state_dir>/admin.sock`: `slipway identities` asks the running
//! bridge here, because the state files are locked while it runs. A Unix socket with mode 0600
//! in the state directory: whoever can use it can already read the bridge's state.

use std::os::unix::fs::PermissionsExt as _;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::identity::listing;

/// The socket's file name inside the state directory.
pub const SOCKET: &str = "admin.sock";

/// Bind the socket (replacing one a crash left behind) and serve it in the background.
pub fn start(state: &AppState) -> Result<(), String> {
    let path = state.config.state_dir.join(SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing the old {}: {e}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("binding the admin socket {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("restricting {}: {e}", path.display()))?;
    let router = Router::new()
        .route("/identities", get(identities))
        .with_state(state.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the admin socket stopped");
        }
    });
    Ok(())
}

async fn identities(State(state): State<AppState>) -> Response {
    match listing::list(
        &state.policy(),
        state.directory.as_deref(),
        state.people.links().as_ref(),
    ) {
        Ok(entries) => axum::Json(entries).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "listing identities");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "can't read the identity state",
            )
                .into_response()
        }
    }
}
