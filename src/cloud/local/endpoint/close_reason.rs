//! Why a connection ended, in AWS's `disconnectReason` words: for the
//! disconnected lifecycle event, logs, and whether the last will is sent.

/// Why a session ended, in AWS's `disconnectReason` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientInitiated,
    /// The client sent an MQTT 5 DISCONNECT asking for its will (0x04) or
    /// reporting an error: the will is published.
    ClientInitiatedWithWill,
    /// The client broke the protocol (malformed packet, wrong order, ...).
    ClientError(String),
    /// A policy denied what the client asked for.
    AuthorizationError(String),
    /// The certificate may not connect (status, unknown, JITP done).
    AuthenticationError(String),
    /// Nothing heard for 1.5 × keepalive.
    KeepAliveTimeout,
    /// Another connection took over this clientId.
    DuplicateClientId,
    /// The endpoint is shutting down.
    ServerInitiated,
    /// The socket closed or failed.
    ConnectionLost,
}

impl CloseReason {
    /// AWS's `disconnectReason` for the disconnected lifecycle event.
    pub fn aws_reason(&self) -> &'static str {
        match self {
            CloseReason::ClientInitiated | CloseReason::ClientInitiatedWithWill => {
                "CLIENT_INITIATED_DISCONNECT"
            }
            CloseReason::ClientError(_) => "CLIENT_ERROR",
            CloseReason::AuthorizationError(_) => "AUTHORIZATION_ERROR",
            CloseReason::AuthenticationError(_) => "AUTHENTICATION_ERROR",
            CloseReason::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            CloseReason::DuplicateClientId => "DUPLICATE_CLIENTID",
            CloseReason::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            CloseReason::ConnectionLost => "CONNECTION_LOST",
        }
    }

    /// A sentence for logs and the traffic pane.
    pub fn describe(&self) -> String {
        match self {
            CloseReason::ClientInitiated => "client sent DISCONNECT".into(),
            CloseReason::ClientInitiatedWithWill => {
                "client sent DISCONNECT asking for its last will".into()
            }
            CloseReason::ClientError(why) => format!("protocol error: {why}"),
            CloseReason::AuthorizationError(why) => format!("not authorized: {why}"),
            CloseReason::AuthenticationError(why) => format!("refused: {why}"),
            CloseReason::KeepAliveTimeout => "keepalive timeout (1.5 x keepalive)".into(),
            CloseReason::DuplicateClientId => {
                "another connection connected with the same clientId".into()
            }
            CloseReason::ServerInitiated => "endpoint shutting down".into(),
            CloseReason::ConnectionLost => "connection lost".into(),
        }
    }

    /// Whether the client's last will is published (any end but a clean DISCONNECT).
    pub fn publishes_will(&self) -> bool {
        !matches!(self, CloseReason::ClientInitiated)
    }
}
