//! One warm function: a sandbox (a Runtime API server and the function's
//! process) kept between invocations, as Lambda keeps an execution
//! environment.
//!
//! - invocations are serialized: one at a time per function, the next waits;
//! - the first invocation, or the first after a failure, starts a fresh
//!   sandbox (a cold start);
//! - the function's clock starts when its runtime takes the event; past the
//!   template's `Timeout` the process is killed and the invocation fails
//!   with `Task timed out after N.00 seconds`;
//! - a process that exits mid-invocation fails it (`Runtime.ExitError`),
//!   an init error fails it with the runtime's own report; either way the
//!   next invocation starts a fresh process.

use super::config::{CannotRun, LaunchPlan};
use super::process::FunctionProcess;
use super::runtime_api::{FunctionError, Invocation, Outcome, RuntimeApi};
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a runtime may take from start to its first poll (Lambda
/// allows 10 s; a busy machine gets more).
pub const INIT_LIMIT: Duration = Duration::from_secs(60);

/// Why an invocation produced no response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function failed: its own error, a timeout, a crash. Lambda's
    /// Invoke answers these with `X-Amz-Function-Error: Unhandled`.
    #[error("{0}")]
    Function(FunctionError),
    /// The code cannot run on this machine.
    #[error("the function's code cannot run here: {0}")]
    CannotRun(CannotRun),
    /// The sandbox could not be started.
    #[error("cannot start the function's process: {0}; check the package and the log")]
    Start(String),
}

/// Builds the launch plan for a fresh sandbox whose Runtime API listens
/// at the given address (the code store and host facts behind it).
pub type Planner = Box<dyn Fn(&str) -> Result<LaunchPlan, CannotRun> + Send + Sync>;

struct Sandbox {
    api: RuntimeApi,
    process: FunctionProcess,
}

/// A function whose process stays warm between invocations.
pub struct WarmFunction {
    name: String,
    arn: String,
    timeout: Duration,
    plan: Planner,
    sandbox: tokio::sync::Mutex<Option<Sandbox>>,
}

impl WarmFunction {
    /// A function named `name` that starts its processes with `plan`.
    pub fn new(name: &str, arn: &str, timeout: Duration, plan: Planner) -> WarmFunction {
        WarmFunction {
            name: name.to_string(),
            arn: arn.to_string(),
            timeout,
            plan,
            sandbox: tokio::sync::Mutex::new(None),
        }
    }

    /// Stops the process, if one runs (shutdown, new code).
    pub async fn stop(&self) {
        if let Some(mut sandbox) = self.sandbox.lock().await.take() {
            sandbox.process.kill().await;
        }
    }

    async fn start(&self) -> Result<Sandbox, InvokeError> {
        let api = RuntimeApi::start(&self.arn)
            .await
            .map_err(|e| InvokeError::Start(format!("the Runtime API could not listen: {e}")))?;
        let plan = (self.plan)(&api.address()).map_err(InvokeError::CannotRun)?;
        let process = FunctionProcess::spawn(&self.name, &plan).map_err(|e| {
            InvokeError::Start(format!("{} did not start: {e}", plan.program.display()))
        })?;
        tracing::info!(
            function = %self.name,
            pid = process.pid().unwrap_or_default(),
            program = %plan.program.display(),
            runtime_api = %api.address(),
            note = plan.note.as_deref().unwrap_or(""),
            "function started (cold start)"
        );
        Ok(Sandbox { api, process })
    }

    /// Runs one invocation with `event`, waiting for any in progress first.
    pub async fn invoke(&self, event: Bytes) -> Result<Bytes, InvokeError> {
        let mut slot = self.sandbox.lock().await;
        let mut sandbox = match slot.take() {
            Some(sandbox) => sandbox,
            None => self.start().await?,
        };
        let request_id = request_id();
        let started = std::time::Instant::now();
        let result = self.run(&mut sandbox, &request_id, event).await;
        let millis = started.elapsed().as_millis();
        match &result {
            Ok(_) => {
                tracing::debug!(function = %self.name, request_id, millis, "invocation answered")
            }
            Err(Failure::Handled(e) | Failure::SandboxLost(e)) => {
                tracing::warn!(function = %self.name, request_id, millis, error = %e, "invocation failed")
            }
        }
        match result {
            // The process is fine: keep it warm for the next invocation.
            Ok(response) => {
                *slot = Some(sandbox);
                Ok(response)
            }
            Err(Failure::Handled(error)) => {
                *slot = Some(sandbox);
                Err(InvokeError::Function(error))
            }
            // Timed out, crashed or never started: the next one starts fresh.
            Err(Failure::SandboxLost(error)) => {
                sandbox.process.kill().await;
                Err(InvokeError::Function(error))
            }
        }
    }

    async fn run(
        &self,
        sandbox: &mut Sandbox,
        request_id: &str,
        event: Bytes,
    ) -> Result<Bytes, Failure> {
        let (picked_up, mut picked_rx) = oneshot::channel();
        let (reply, mut reply_rx) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.to_string(),
            event,
            trace_id: format!(
                "Root=1-{:08x}-{}",
                now_secs(),
                &request_id.replace('-', "")[..24]
            ),
            timeout: self.timeout,
            picked_up,
            reply,
        };
        let lost = |error_type: &str, what: String| {
            Failure::SandboxLost(FunctionError::service(
                error_type,
                format!("RequestId: {request_id} Error: {what}"),
            ))
        };
        if sandbox.api.submit(invocation).await.is_err() {
            return Err(lost("Runtime.Unknown", "the Runtime API stopped".into()));
        }
        // Init: until the runtime takes the event.
        tokio::select! {
            biased;
            taken = &mut picked_rx => {
                if taken.is_err() {
                    return Err(lost("Runtime.Unknown", "the Runtime API dropped the invocation".into()));
                }
            }
            error = sandbox.api.init_error() => return Err(Failure::SandboxLost(error)),
            status = sandbox.process.exited() => {
                return Err(match sandbox.api.reported_init_error() {
                    Some(error) => Failure::SandboxLost(error),
                    None => lost("Runtime.ExitError", format!("Runtime exited before taking the event: {}", describe(status))),
                });
            }
            _ = tokio::time::sleep(INIT_LIMIT) => {
                return Err(lost("Sandbox.Timedout", format!("the runtime did not poll for the invocation within {} seconds of starting", INIT_LIMIT.as_secs())));
            }
        }
        // Run: the function's own clock.
        tokio::select! {
            biased;
            outcome = &mut reply_rx => match outcome {
                Ok(Outcome::Response(body)) => Ok(body),
                Ok(Outcome::Error(error)) => Err(Failure::Handled(error)),
                Err(_) => Err(lost("Runtime.Unknown", "the Runtime API dropped the invocation".into())),
            },
            status = sandbox.process.exited() => {
                // It may have answered just before exiting.
                match reply_rx.try_recv() {
                    Ok(Outcome::Response(body)) => Ok(body),
                    Ok(Outcome::Error(error)) => Err(Failure::SandboxLost(error)),
                    Err(_) => Err(lost("Runtime.ExitError", format!("Runtime exited with error: {}", describe(status)))),
                }
            }
            _ = tokio::time::sleep(self.timeout) => Err(lost(
                "Sandbox.Timedout",
                format!("Task timed out after {:.2} seconds", self.timeout.as_secs_f64()),
            )),
        }
    }
}

/// How an invocation failed: with the process still good, or not.
enum Failure {
    Handled(FunctionError),
    SandboxLost(FunctionError),
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("{status}"),
        },
        Err(e) => format!("unknown ({e})"),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A UUID-shaped request id, as Lambda's.
fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_lambdas() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, request_id());
    }
}
