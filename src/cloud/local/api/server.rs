//! The AWS API's listener, after mini-redis's `server.rs`: accept TCP
//! connections under a semaphore (bounded concurrent connections), serve
//! each with hyper's HTTP/1.1 in its own task, and answer every request:
//!
//! 1. read the signature's parts ([`sigv4::parse`]): its credential scope
//!    names the service, and so the body limit (S3 64 MiB, others 1 MiB);
//! 2. read the body within the limit and a timeout;
//! 3. recompute the signature ([`sigv4::verify`]); undo S3's `aws-chunked`;
//! 4. [`Service::operation`], then [`Service::call`] on the blocking pool,
//!    so a slow operation (SQLite, a stack deploy) holds no async thread
//!    and no other request waits for it;
//! 5. the answer, or the error in the service's protocol shape
//!    ([`protocol::error_response`]), with `x-amzn-RequestId` always;
//! 6. one [`crate::cloud::events::EventKind::Api`] event for the TUI.
//!
//! No input panics the server: every failure is an [`ApiError`] in AWS's
//! shape, and a handler that panics anyway answers 500 `InternalFailure`.
//!
//! Shutdown: the [`CancellationToken`] stops the accept loop and tells each
//! connection to finish its request and close; each connection task holds
//! a clone of `done`, so the owner knows all are gone when the channel closes.

use super::credentials::ApiCredentials;
use super::traffic::{self, ApiCall};
use super::{
    protocol, services, sigv4, ApiContext, ApiError, ApiRequest, ApiResponse, Protocol, Registered,
    Service,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// The listener's bounds.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `host:port` to listen on (port 0 picks a free one).
    pub addr: String,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Largest request body, S3 aside (AWS's JSON APIs take far less).
    pub body_limit: usize,
    /// Largest S3 request body (one object, or one part of a multipart upload).
    pub s3_body_limit: usize,
    /// A request's headers must arrive within this.
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this.
    pub body_read_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            addr: "127.0.0.1:4566".into(),
            max_connections: 256,
            body_limit: 1024 * 1024,
            s3_body_limit: 64 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(120),
        }
    }
}

/// Why the API could not start. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("the AWS API cannot listen on {addr}: the port is in use; pass another with --api-addr (--api-addr 127.0.0.1:0 picks a free port, --api-addr off disables the API)")]
    AddrInUse { addr: String },
    #[error("the AWS API cannot listen on {addr}: {source}; pass another address with --api-addr, or --api-addr off")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// What every connection task shares.
struct Shared {
    ctx: ApiContext,
    credentials: ApiCredentials,
    services: Vec<Registered>,
    config: ApiConfig,
}

/// The running API.
pub struct ApiHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    listener: tokio::task::JoinHandle<()>,
    /// Every connection task holds a clone of the sender; when all are
    /// dropped, `recv` returns `None`: all connections are closed.
    connections_done: mpsc::Receiver<()>,
}

impl ApiHandle {
    /// Where the API listens (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets each connection finish its request, and waits
    /// for them at most 10 s.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.listener).await;
        let wait = async { while self.connections_done.recv().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .is_err()
        {
            tracing::warn!("some AWS API connections did not close within 10 s of shutdown");
        }
    }
}

/// Starts the API on `config.addr`. `ctx.api_addr` is set to the bound address.
pub async fn start(
    config: ApiConfig,
    mut ctx: ApiContext,
    credentials: ApiCredentials,
) -> Result<ApiHandle, ApiServerError> {
    let listener = TcpListener::bind(&config.addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ApiServerError::AddrInUse {
                addr: config.addr.clone(),
            }
        } else {
            ApiServerError::Bind {
                addr: config.addr.clone(),
                source,
            }
        }
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ApiServerError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
    ctx.api_addr = local_addr;
    tracing::info!(%local_addr, "AWS API listening");
    let shared = Arc::new(Shared {
        ctx,
        credentials,
        services: services(),
        config,
    });
    let shutdown = CancellationToken::new();
    let (done_tx, connections_done) = mpsc::channel(1);
    let listener = tokio::spawn(accept_loop(listener, shared, shutdown.clone(), done_tx));
    Ok(ApiHandle {
        local_addr,
        shutdown,
        listener,
        connections_done,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    done: mpsc::Sender<()>,
) {
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    loop {
        // A slot first: while all are busy, new connections wait in the
        // kernel's backlog instead of our memory.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "AWS API accept failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (shared, shutdown, done) = (shared.clone(), shutdown.clone(), done.clone());
        tokio::spawn(async move {
            let _done = done;
            let _permit = permit;
            serve_connection(shared, tcp, shutdown).await;
        });
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    shutdown: CancellationToken,
) {
    let header_read_timeout = shared.config.header_read_timeout;
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true)
        // A client may shut its write side while it waits for the answer.
        .half_close(true);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "AWS API connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
        }
    }
}

/// What one request came to, for the answer and the TUI's row.
struct Outcome {
    service: String,
    operation: String,
    protocol: Protocol,
    result: Result<ApiResponse, ApiError>,
    request_body: Bytes,
}

impl Outcome {
    fn refused(service: &str, protocol: Protocol, err: ApiError) -> Outcome {
        Outcome {
            service: service.to_string(),
            operation: "-".into(),
            protocol,
            result: Err(err),
            request_body: Bytes::new(),
        }
    }
}

async fn handle(shared: &Shared, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, body) = req.into_parts();
    let outcome = answer(shared, &parts, body, &request_id).await;
    let response = match &outcome.result {
        Ok(r) => r.clone(),
        Err(e) => protocol::error_response(outcome.protocol, &outcome.service, e, &request_id),
    };
    let millis = started.elapsed().as_millis() as u64;
    tracing::debug!(
        service = %outcome.service,
        operation = %outcome.operation,
        status = response.status,
        millis,
        "AWS API call"
    );
    let bus = shared.ctx.cloud.bus();
    bus.emit_with(|| {
        traffic::event(&ApiCall {
            service: &outcome.service,
            operation: &outcome.operation,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            headers: &parts.headers,
            request_body: &outcome.request_body,
            status: response.status,
            response_body: &response.body,
            millis,
            request_id: &request_id,
        })
    });
    to_http(response, &request_id, outcome.protocol == Protocol::RestXml)
}

async fn answer(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Incoming,
    request_id: &str,
) -> Outcome {
    let raw_query = parts.uri.query().unwrap_or("");
    let auth = match sigv4::parse(&parts.headers, raw_query) {
        Ok(auth) => auth,
        Err(e) => {
            let protocol = protocol::guess(&parts.headers, raw_query, None);
            return Outcome::refused("-", protocol, protocol::auth_error(protocol, &e));
        }
    };
    let Some(service) = shared
        .services
        .iter()
        .find(|s| s.signing_name == auth.service)
        .cloned()
    else {
        let protocol = protocol::guess(&parts.headers, raw_query, Some(&auth.service));
        let err = ApiError::new(
            400,
            "UnknownOperationException",
            format!(
                "the credential scope names the service {:?}, which jitpilot's local cloud does not answer; see the README's table of supported operations",
                auth.service
            ),
        );
        return Outcome::refused(&auth.service, protocol, err);
    };
    let name = service.signing_name;
    let protocol = protocol::effective(service.protocol, &parts.headers);
    let limit = if protocol == Protocol::RestXml {
        shared.config.s3_body_limit
    } else {
        shared.config.body_limit
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Outcome::refused(name, protocol, protocol::too_large(protocol, limit));
    }
    let body = match read_body(body, limit, shared.config.body_read_timeout, protocol).await {
        Ok(body) => body,
        Err(e) => return Outcome::refused(name, protocol, e),
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if let Err(e) = sigv4::verify(
        &auth,
        &shared.credentials,
        parts.method.as_str(),
        path_and_query,
        &parts.headers,
        &body,
        SystemTime::now(),
    ) {
        return Outcome::refused(name, protocol, protocol::auth_error(protocol, &e));
    }
    let mut headers = parts.headers.clone();
    let body = match headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("STREAMING-"))
        .map(str::to_string)
    {
        Some(payload) => {
            match sigv4::decode_aws_chunked(&body, &payload, &auth, &shared.credentials) {
                Ok(decoded) => {
                    strip_aws_chunked(&mut headers, decoded.len());
                    Bytes::from(decoded)
                }
                Err(e) => return Outcome::refused(name, protocol, protocol::chunked_error(&e)),
            }
        }
        None => body,
    };
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        headers.insert(super::REQUEST_ID_HEADER, id);
    }
    let request = ApiRequest {
        service: name.to_string(),
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: form_urlencoded::parse(raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers,
        body: body.clone(),
    };
    let operation = match service.handler.operation(&request) {
        Ok(op) => op,
        Err(e) => {
            let mut outcome = Outcome::refused(name, protocol, e);
            outcome.request_body = body;
            return outcome;
        }
    };
    let result = run_operation(shared.ctx.clone(), service.handler, operation, request).await;
    Outcome {
        service: name.to_string(),
        operation: operation.to_string(),
        protocol,
        result,
        request_body: body,
    }
}

/// Reads the whole body within `limit` bytes and `timeout`.
async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
    protocol: Protocol,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::new(
            400,
            "RequestTimeout",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(protocol::too_large(protocol, limit))
        }
        Ok(Err(e)) => Err(ApiError::new(
            400,
            if protocol == Protocol::RestXml {
                "IncompleteBody"
            } else {
                "SerializationException"
            },
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// After decoding `aws-chunked`: the headers describe the decoded body.
fn strip_aws_chunked(headers: &mut http::HeaderMap, decoded_len: usize) {
    let remaining: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "aws-chunked")
        .map(str::to_string)
        .collect();
    headers.remove(http::header::CONTENT_ENCODING);
    if let Ok(v) = http::HeaderValue::from_str(&remaining.join(",")) {
        if !remaining.is_empty() {
            headers.insert(http::header::CONTENT_ENCODING, v);
        }
    }
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(decoded_len),
    );
}

/// Runs the operation on the blocking pool: operations call SQLite
/// synchronously, and a slow one must not hold an async worker that MQTT
/// sessions and other requests need. A panic becomes 500 `InternalFailure`.
async fn run_operation(
    ctx: ApiContext,
    service: Arc<dyn Service>,
    operation: &'static str,
    request: ApiRequest,
) -> Result<ApiResponse, ApiError> {
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        runtime.block_on(async move { service.call(&ctx, operation, request).await })
    });
    match task.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(operation, error = %e, "AWS API operation panicked");
            Err(ApiError::internal(format!(
                "{operation} failed inside jitpilot (a bug: please report it with the log in the data dir's logs/)"
            )))
        }
    }
}

/// The HTTP answer, with the request id headers SDKs read.
fn to_http(response: ApiResponse, request_id: &str, s3: bool) -> http::Response<Full<Bytes>> {
    let mut builder = http::Response::builder()
        .status(
            http::StatusCode::from_u16(response.status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .header("x-amzn-RequestId", request_id);
    if s3 {
        builder = builder
            .header("x-amz-request-id", request_id)
            .header("x-amz-id-2", request_id);
    }
    for (name, value) in &response.headers {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => builder = builder.header(n, v),
            _ => {
                tracing::warn!(header = %name, "AWS API: an operation's response header is not valid HTTP; dropped")
            }
        }
    }
    builder.body(Full::new(response.body)).unwrap_or_else(|_| {
        let mut fallback = http::Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// A fresh request id, shaped like AWS's (a UUID).
fn new_request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
