//! The listener, after mini-redis's `server.rs`: accept TCP connections
//! with a backlog sized for fleets, track each until its TLS handshake is
//! done (`handshakes.rs`: per-address and total bounds, a deadline that
//! shrinks under pressure), then hand the connection to its task.
//!
//! Nothing here waits for a free slot before accepting: a socket that
//! never sends a byte takes a table entry, not a place in line, and is the
//! first closed when room is needed — so idle sockets cannot keep devices
//! out.
//!
//! Shutdown: the [`CancellationToken`] stops the accept loop and tells
//! every connection to close; each connection task holds a clone of
//! `done`, so the owner knows all are gone when the channel closes.

use super::config::EndpointError;
use super::connection;
use super::handshakes::HandshakeGate;
use super::sampler::Sample;
use super::shared::Shared;
use crate::cloud::events::{CloudEvent, EventKind};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

fn gate(shared: &Shared) -> std::sync::MutexGuard<'_, HandshakeGate> {
    shared
        .handshakes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Binds `addr` (`host:port`) with a listen backlog of `backlog`.
pub async fn bind(addr: &str, backlog: u32) -> Result<TcpListener, EndpointError> {
    let bind_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            EndpointError::AddrInUse {
                addr: addr.to_string(),
            }
        } else {
            EndpointError::Bind {
                addr: addr.to_string(),
                source,
            }
        }
    };
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(bind_error)?
        .next()
        .ok_or_else(|| {
            bind_error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolves to no address",
            ))
        })?;
    let socket = match resolved {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(bind_error)?;
    // As std's and tokio's own `bind` do on Unix: a restarted endpoint can
    // take its port back while old connections sit in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(bind_error)?;
    socket.bind(resolved).map_err(bind_error)?;
    socket.listen(backlog.max(1)).map_err(bind_error)
}

/// Accepts until `shutdown` is cancelled.
pub async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    done: mpsc::Sender<()>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: log, let some connections end, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let closed = CancellationToken::new();
        let admitted = {
            let mut gate = gate(&shared);
            let admitted = gate.table.admit(peer.ip());
            for id in &admitted.evict {
                if let Some(token) = gate.close.remove(id) {
                    token.cancel();
                }
            }
            gate.close.insert(admitted.id, closed.clone());
            admitted
        };
        let (acceptor, shared, shutdown, done) = (
            acceptor.clone(),
            shared.clone(),
            shutdown.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let _done = done;
            let id = admitted.id;
            let handshake = async {
                // Idle until the ClientHello arrives: evictable first.
                tcp.readable().await?;
                gate(&shared).table.started(id);
                acceptor.accept(tcp).await
            };
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(admitted.deadline, handshake) => Some(outcome),
                _ = closed.cancelled() => None,
                _ = shutdown.cancelled() => return,
            };
            {
                let mut gate = gate(&shared);
                gate.table.finished(id);
                gate.close.remove(&id);
            }
            let stream = match outcome {
                Some(Ok(Ok(stream))) => stream,
                Some(Ok(Err(e))) => return handshake_failed(&shared, peer, &e.to_string()),
                Some(Err(_)) => {
                    let why = format!(
                        "TLS handshake not finished within {} ms",
                        admitted.deadline.as_millis()
                    );
                    return handshake_failed(&shared, peer, &why);
                }
                // Closed to make room: counted (stats), never logged one by one.
                None => return,
            };
            connection::serve(shared, stream, peer, shutdown).await;
        });
    }
}

fn handshake_failed(shared: &Shared, peer: SocketAddr, why: &str) {
    let failed = shared
        .counters
        .handshakes_failed
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    let Sample::Record { skipped } = shared.sample("endpoint.tls_refused") else {
        tracing::debug!(peer = ?peer, reason = ?why, "TLS handshake refused");
        return;
    };
    tracing::info!(peer = ?peer, reason = ?why, skipped, "TLS handshake refused");
    let detail = json!({
        "ipAddress": peer.ip().to_string(),
        "reason": why,
        "skippedSinceLastRow": skipped,
        "handshakesFailed": failed,
    });
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
