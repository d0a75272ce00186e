//! The loopback HTTP server every emulator runs on: binds `127.0.0.1:0`, serves an axum router
//! over HTTP/1.1 (with upgrades, for websockets) and stops everything it started when the last
//! handle is dropped. With a TLS config, the same port also speaks HTTPS: a connection whose
//! first byte is a TLS handshake record is served over TLS, any other as plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A running server. Dropping it aborts the accept loop and every open connection, and cancels
/// `shutdown` so long-lived tasks (websockets) started by handlers end too.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `router` (plain HTTP, and HTTPS too when `tls` is given).
    /// `shutdown` is cancelled when the server is dropped.
    pub(crate) async fn start(
        router: Router,
        shutdown: CancellationToken,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("emulator: binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("emulator: local address");
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let router = router.clone();
                        let conn_stop = stop.clone();
                        let tls = tls.clone();
                        connections.spawn(async move {
                            tokio::select! {
                                () = serve_connection(stream, router, tls) => {}
                                () = conn_stop.cancelled() => {}
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            connections.abort_all();
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// TLS handshake records start with content type 22.
const TLS_HANDSHAKE: u8 = 0x16;

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let mut first = [0u8; 1];
    let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE);
    match tls {
        Some(config) if is_tls => {
            let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await else {
                return;
            };
            serve_http(stream, router).await;
        }
        _ => serve_http(stream, router).await,
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, router: Router) {
    let service = TowerToHyperService::new(router);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}
