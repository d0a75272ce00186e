//! `slipway serve`: validate everything, then listen.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::{AppState, serve};
use crate::clock::{SystemClock, UuidIds};
use crate::config::Config;

pub fn run(config: Option<&Path>) -> ExitCode {
    init_tracing();
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let entry = slipway_infra::runtime::Entry {
        prefix: "error",
        workers: None,
        no_runtime: 1,
    };
    entry.block_on(async move {
        let listen = config.listen;
        if let Err(e) = crate::app::audit_sinks::preflight(&config.audit).await {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        let state = match AppState::new(config, Arc::new(SystemClock), Arc::new(UuidIds)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: listening on {listen}: {e}");
                return ExitCode::from(2);
            }
        };
        tracing::info!(%listen, "slipway bridge listening");
        if let Err(e) = crate::app::admin::start(&state) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        if let Err(e) = reload_on_sighup(&state) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        let leader = state.leader.clone();
        let served = serve(listener, state).await;
        leader.step_down().await;
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// `kill -HUP` re-reads the policy file; an invalid one keeps the policy in force.
fn reload_on_sighup(state: &AppState) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("listening for SIGHUP: {e}"))?;
    let state = state.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            crate::reload::from_file(&state).await;
        }
    });
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` filters them. Tokens never reach a log line: secrets are held in
/// `Secret`, which doesn't print.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
