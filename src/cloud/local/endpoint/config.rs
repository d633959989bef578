//! How the endpoint is run ([`EndpointConfig`]: address, handshake and
//! CONNECT deadlines, AWS's quotas) and why it could not start.

use super::limits;
use super::tls;
use std::time::Duration;

/// How to run the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// `host:port` to listen on; port 0 picks a free port (see [`EndpointHandle::local_addr`]).
    pub addr: String,
    /// A TLS handshake taking longer is abandoned (slowloris, half-open
    /// sockets) when the endpoint is quiet; the deadline shrinks as
    /// unauthenticated connections fill their slots (`handshakes.rs`).
    pub handshake_timeout: Duration,
    /// Time from the end of the handshake to CONNECT.
    pub connect_timeout: Duration,
    /// AWS's quotas and jitpilot's bounds; `JITPILOT_LIMITS` is applied
    /// over them when the endpoint starts.
    pub limits: limits::Limits,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            addr: "127.0.0.1:8883".into(),
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
            limits: limits::Limits::default(),
        }
    }
}

/// Why the endpoint could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("cannot listen on {addr}: the address is in use. Stop the other process or pick another address with --mqtt-addr HOST:PORT (port 0 picks a free one)")]
    AddrInUse { addr: String },
    #[error(
        "cannot listen on {addr}: {source}. Check the address given with --mqtt-addr HOST:PORT"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Limits(#[from] limits::LimitsError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
