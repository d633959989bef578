//! The Lambda Runtime API, on loopback: what a function's runtime
//! (`lambda_runtime` in a `bootstrap`, `awslambdaric` for python) polls for
//! work and answers to.
//!
//! - `GET  /2018-06-01/runtime/invocation/next` — long poll; the event, with
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`,
//!   `-Trace-Id` headers
//! - `POST /2018-06-01/runtime/invocation/{id}/response` — the result
//! - `POST /2018-06-01/runtime/invocation/{id}/error` — a function error
//! - `POST /2018-06-01/runtime/init/error` — the runtime could not start
//!
//! One server per sandbox (one function process): a restarted process gets
//! a fresh server, so a dead process's long poll can never take the next
//! invocation. Dropping [`RuntimeApi`] stops the server and every
//! connection.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Lambda's limit on a synchronous response (and on an error document).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Connections a runtime may hold open at once (it needs one or two).
const MAX_CONNECTIONS: usize = 16;

const PREFIX: &str = "/2018-06-01/runtime";

/// A function error as the runtime reported it (`errorType`,
/// `errorMessage`, the whole document for Invoke's error payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
    /// The error document, as Lambda's Invoke returns it.
    pub payload: Bytes,
}

impl FunctionError {
    /// An error raised by the local Lambda service itself (timeout, crash),
    /// shaped as Lambda shapes them.
    pub fn service(error_type: &str, error_message: String) -> FunctionError {
        let payload = json!({"errorType": error_type, "errorMessage": error_message}).to_string();
        FunctionError {
            error_type: error_type.to_string(),
            error_message,
            payload: Bytes::from(payload),
        }
    }

    /// An error document posted by the runtime. `header_type` is the
    /// `Lambda-Runtime-Function-Error-Type` header.
    fn from_document(body: Bytes, header_type: Option<&str>) -> FunctionError {
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let error_type = field("errorType")
            .or_else(|| header_type.map(str::to_string))
            .unwrap_or_else(|| "Unhandled".into());
        let error_message = field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(2048).collect());
        FunctionError {
            error_type,
            error_message,
            payload: body,
        }
    }
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// How an invocation ended, as the runtime reported it.
#[derive(Debug)]
pub enum Outcome {
    Response(Bytes),
    Error(FunctionError),
}

/// One invocation handed to the runtime.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub event: Bytes,
    pub trace_id: String,
    /// How long the function may run once the runtime takes the event: the
    /// deadline header is computed at that moment.
    pub timeout: Duration,
    /// Told when the runtime has taken the event (the function's clock starts).
    pub picked_up: oneshot::Sender<()>,
    /// Told the outcome.
    pub reply: oneshot::Sender<Outcome>,
}

/// The invocation the runtime is working on.
struct InFlight {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    in_flight: Mutex<Option<InFlight>>,
    init_error: watch::Sender<Option<FunctionError>>,
}

/// A running Runtime API server for one sandbox.
pub struct RuntimeApi {
    addr: SocketAddr,
    invocations: mpsc::Sender<Invocation>,
    init_error: watch::Receiver<Option<FunctionError>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // The accept loop owns every connection task: aborting it ends them all.
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts a server on `127.0.0.1:0` for the function `function_arn`.
    pub async fn start(function_arn: &str) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (invocations, queue) = mpsc::channel(1);
        let (init_error, init_error_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            function_arn: function_arn.to_string(),
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(None),
            init_error,
        });
        let server = tokio::spawn(accept_loop(listener, shared));
        Ok(RuntimeApi {
            addr,
            invocations,
            init_error: init_error_rx,
            server,
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `invocation` for the runtime's next poll. Fails only when the
    /// server is gone.
    pub async fn submit(&self, invocation: Invocation) -> Result<(), ()> {
        self.invocations.send(invocation).await.map_err(|_| ())
    }

    /// The init error the runtime reported, if it did.
    pub fn reported_init_error(&self) -> Option<FunctionError> {
        self.init_error.borrow().clone()
    }

    /// Resolves when the runtime reports an init error.
    pub async fn init_error(&mut self) -> FunctionError {
        loop {
            if let Some(e) = self.init_error.borrow_and_update().clone() {
                return e;
            }
            if self.init_error.changed().await.is_err() {
                // The server is gone; nothing more will be reported.
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set stays bounded.
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if connections.len() >= MAX_CONNECTIONS {
            continue; // dropped: the runtime retries
        }
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_reply(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        json!({"errorType": error_type, "errorMessage": message}),
    )
}

fn accepted() -> Response<Full<Bytes>> {
    reply(StatusCode::ACCEPTED, json!({"status": "OK"}))
}

/// What a request asks, from its method and path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    Unknown,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Route::Unknown;
    };
    match (method, rest) {
        (&Method::GET, "/invocation/next") => Route::Next,
        (&Method::POST, "/init/error") => Route::InitError,
        (&Method::POST, rest) => match rest.strip_prefix("/invocation/") {
            Some(tail) => match tail.rsplit_once('/') {
                Some((id, "response")) if !id.is_empty() => Route::Response(id),
                Some((id, "error")) if !id.is_empty() => Route::Error(id),
                _ => Route::Unknown,
            },
            None => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

/// The error a function reports (`/error`, `/init/error`): the document,
/// typed by `Lambda-Runtime-Function-Error-Type` when the header is there.
async fn reported_error(
    request: Request<Incoming>,
) -> Result<FunctionError, Response<Full<Bytes>>> {
    let header_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(request).await?;
    Ok(FunctionError::from_document(body, header_type.as_deref()))
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(request.into_body(), MAX_PAYLOAD_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "payload larger than Lambda's 6 MB limit",
        )),
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match route(&method, &path) {
        Route::Next => next(shared).await,
        Route::Response(id) => {
            let body = match read_body(request).await {
                Ok(b) => b,
                Err(too_large) => {
                    finish(shared, id, || {
                        Outcome::Error(FunctionError::service(
                        "Function.ResponseSizeTooLarge",
                        format!("Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
                    ))
                    });
                    return too_large;
                }
            };
            if finish(shared, id, || Outcome::Response(body)) {
                accepted()
            } else {
                unknown_request(id)
            }
        }
        Route::Error(id) => {
            let error = match reported_error(request).await {
                Ok(error) => error,
                Err(too_large) => return too_large,
            };
            if finish(shared, id, || Outcome::Error(error)) {
                accepted()
            } else {
                unknown_request(id)
            }
        }
        Route::InitError => {
            let error = match reported_error(request).await {
                Ok(error) => error,
                Err(too_large) => return too_large,
            };
            shared.init_error.send_replace(Some(error));
            accepted()
        }
        Route::Unknown => error_reply(
            StatusCode::NOT_FOUND,
            "InvalidRequest",
            &format!("no Runtime API route {method} {path}"),
        ),
    }
}

fn unknown_request(id: &str) -> Response<Full<Bytes>> {
    error_reply(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        &format!("request id {id} is not the invocation in progress"),
    )
}

/// Hands the in-flight invocation `id` its outcome. False when `id` is not
/// the invocation in flight (already answered, or never given out).
fn finish(shared: &Shared, id: &str, outcome: impl FnOnce() -> Outcome) -> bool {
    let mut slot = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
    match slot.take() {
        Some(in_flight) if in_flight.request_id == id => {
            let _ = in_flight.reply.send(outcome());
            true
        }
        other => {
            *slot = other;
            false
        }
    }
}

/// The long poll: waits for the next invocation the runtime should run.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    let mut queue = shared.queue.lock().await;
    loop {
        let Some(invocation) = queue.recv().await else {
            return error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceShutdown",
                "the function is being stopped",
            );
        };
        // The invoker gave up while it waited (timeout before pickup): skip it.
        if invocation.reply.is_closed() {
            continue;
        }
        let deadline = SystemTime::now()
            .checked_add(invocation.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut response = Response::new(Full::new(invocation.event.clone()));
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        set("content-type", "application/json");
        set("lambda-runtime-aws-request-id", &invocation.request_id);
        set("lambda-runtime-deadline-ms", &deadline.to_string());
        set("lambda-runtime-invoked-function-arn", &shared.function_arn);
        set("lambda-runtime-trace-id", &invocation.trace_id);
        *shared.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = Some(InFlight {
            request_id: invocation.request_id,
            reply: invocation.reply,
        });
        let _ = invocation.picked_up.send(());
        return response;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn routes_are_the_runtime_apis() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            route(&get, "/2018-06-01/runtime/invocation/next"),
            Route::Next
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/abc/response"),
            Route::Response("abc")
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/abc/error"),
            Route::Error("abc")
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/init/error"),
            Route::InitError
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/next"),
            Route::Unknown
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation//response"),
            Route::Unknown
        );
        assert_eq!(
            route(&get, "/2018-06-01/runtime/invocation/abc/response"),
            Route::Unknown
        );
        assert_eq!(route(&get, "/"), Route::Unknown);
    }

    /// One raw HTTP/1.1 exchange, as a runtime's client makes it.
    async fn exchange(addr: &str, request: String) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn post(path: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn an_invocation_goes_out_on_next_and_its_response_comes_back() {
        let api = RuntimeApi::start("arn:aws:lambda:us-east-1:123456789012:function:f")
            .await
            .unwrap();
        let addr = api.address();
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        api.submit(Invocation {
            request_id: "req-1".into(),
            event: Bytes::from_static(b"{\"hello\":1}"),
            trace_id: "Root=1-0-0".into(),
            timeout: Duration::from_secs(30),
            picked_up: picked_tx,
            reply: reply_tx,
        })
        .await
        .unwrap();
        let next = exchange(
            &addr,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        )
        .await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(
            next.contains("lambda-runtime-aws-request-id: req-1"),
            "{next}"
        );
        assert!(next.contains("lambda-runtime-deadline-ms: "), "{next}");
        assert!(next.contains(
            "lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:f"
        ));
        assert!(next.ends_with("{\"hello\":1}"), "{next}");
        picked_rx.await.unwrap();

        let wrong = exchange(
            &addr,
            post("/2018-06-01/runtime/invocation/other/response", "{}"),
        )
        .await;
        assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
        let ok = exchange(
            &addr,
            post(
                "/2018-06-01/runtime/invocation/req-1/response",
                "{\"ok\":true}",
            ),
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
        match reply_rx.await.unwrap() {
            Outcome::Response(body) => assert_eq!(&body[..], b"{\"ok\":true}"),
            other => panic!("{other:?}"),
        }
        // Answered once: a second answer is refused.
        let again = exchange(
            &addr,
            post("/2018-06-01/runtime/invocation/req-1/response", "{}"),
        )
        .await;
        assert!(again.starts_with("HTTP/1.1 400"), "{again}");
    }

    #[tokio::test]
    async fn errors_and_init_errors_are_reported() {
        let mut api = RuntimeApi::start("arn:f").await.unwrap();
        let addr = api.address();
        let (picked_tx, _picked) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        api.submit(Invocation {
            request_id: "r2".into(),
            event: Bytes::from_static(b"{}"),
            trace_id: String::new(),
            timeout: Duration::from_secs(30),
            picked_up: picked_tx,
            reply: reply_tx,
        })
        .await
        .unwrap();
        exchange(&addr, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into()).await;
        let doc = r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#;
        let res = exchange(&addr, post("/2018-06-01/runtime/invocation/r2/error", doc)).await;
        assert!(res.starts_with("HTTP/1.1 202"), "{res}");
        match reply_rx.await.unwrap() {
            Outcome::Error(e) => {
                assert_eq!(e.error_type, "ValueError");
                assert_eq!(e.error_message, "boom");
                assert_eq!(&e.payload[..], doc.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        let res = exchange(&addr, post("/2018-06-01/runtime/init/error", "not json")).await;
        assert!(res.starts_with("HTTP/1.1 202"), "{res}");
        let e = api.init_error().await;
        assert_eq!(e.error_message, "not json");
        let res = exchange(&addr, post("/nope", "")).await;
        assert!(res.starts_with("HTTP/1.1 404"), "{res}");
    }
}
