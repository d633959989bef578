//! The listener, after mini-redis's `server.rs`: accept TCP connections,
//! run each TLS handshake under a semaphore (bounding the CPU a connection
//! storm can take) and a timeout, then hand the connection to its task.
//!
//! Shutdown: the [`CancellationToken`] stops the accept loop and tells
//! every connection to close; each connection task holds a clone of
//! `done`, so the owner knows all are gone when the channel closes.

use super::{connection, Shared};
use crate::cloud::events::{CloudEvent, EventKind};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Accepts until `shutdown` is cancelled.
pub async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    done: mpsc::Sender<()>,
) {
    let handshakes = Arc::new(Semaphore::new(
        shared.config.max_concurrent_handshakes.max(1),
    ));
    loop {
        // Wait for a handshake slot first: while all are busy, new
        // connections wait in the kernel's backlog instead of our memory.
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: log and keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, shared, shutdown, done) = (
            acceptor.clone(),
            shared.clone(),
            shutdown.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let _done = done;
            let handshake =
                tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(tcp)).await;
            drop(permit);
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return handshake_failed(&shared, peer, &e.to_string()),
                Err(_) => return handshake_failed(&shared, peer, "TLS handshake timed out"),
            };
            connection::serve(shared, stream, peer, shutdown).await;
        });
    }
}

fn handshake_failed(shared: &Shared, peer: std::net::SocketAddr, why: &str) {
    shared
        .counters
        .handshakes_failed
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, reason = why, "TLS handshake refused");
    let detail = json!({"ipAddress": peer.ip().to_string(), "reason": why});
    if let Err(e) =
        shared
            .store
            .append_event("endpoint.tls_refused", &peer.ip().to_string(), &detail)
    {
        tracing::warn!(error = %e, "event log write failed");
    }
    shared.bus.emit_with(|| {
        CloudEvent::new(EventKind::Connection, format!("TLS refused: {why}")).detail(detail)
    });
}
