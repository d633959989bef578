//! The worker: executes the UI's [`Command`]s on spawned tasks and reports
//! back on a channel, so the UI task never waits on the cloud.

use super::action::{Command, DeviceProgress, Msg, ProgressState, WalkStep};
use crate::cloud::{Cloud, CloudError};
use crate::model::{now_millis, CertificateStatus};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;

/// How many devices autopilot runs at once.
pub const ONBOARD_CONCURRENCY: usize = 64;

/// Runs devices of the fleet in-process: the device agent, behind a trait so
/// the TUI does not depend on how (or where) devices run.
#[async_trait::async_trait]
pub trait DeviceRunner: Send + Sync {
    /// Runs `serial` through `step`, or through every remaining step when
    /// `step` is `None` (onboard). Progress goes to `progress`; the result
    /// says why it failed, in words a user can act on.
    async fn run(
        &self,
        serial: String,
        step: Option<WalkStep>,
        drop_next_response: bool,
        progress: mpsc::UnboundedSender<DeviceProgress>,
    ) -> Result<(), String>;
}

/// Executes commands against a cloud and a device runner.
pub struct Worker {
    cloud: Arc<dyn Cloud>,
    devices: Arc<dyn DeviceRunner>,
    tx: mpsc::UnboundedSender<Msg>,
    progress: mpsc::UnboundedSender<DeviceProgress>,
    /// Running device tasks, to kill them on request and on quit.
    tasks: HashMap<String, AbortHandle>,
    onboard_limit: Arc<Semaphore>,
    /// Read-backs: one at a time, and one asked for meanwhile runs after it.
    read_back: Arc<ReadBack>,
}

/// The cloud's read-back (`status`) for the panes. Refreshes never pile up:
/// one runs at a time. A refresh asked for while one runs (the read-back
/// after a deploy, while the periodic one is in flight) is not dropped — it
/// runs once the current one ends, so the panes never keep a read-back
/// taken before the command finished.
#[derive(Default)]
struct ReadBack {
    running: AtomicBool,
    again: AtomicBool,
}

/// The cloud's status as the message the panes take.
async fn status_of(cloud: Arc<dyn Cloud>) -> Msg {
    match cloud.status().await {
        Ok(report) => Msg::Status(Box::new(report)),
        Err(e) => Msg::Finished {
            what: "refresh",
            result: Err(explain(&e)),
        },
    }
}

impl ReadBack {
    /// Reads the cloud back and sends it on `tx`, unless a read-back is
    /// running: then that one reads again when it ends.
    async fn run<F, Fut>(self: Arc<Self>, read: F, tx: mpsc::UnboundedSender<Msg>)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Msg>,
    {
        use std::sync::atomic::Ordering::SeqCst;
        if self.running.swap(true, SeqCst) {
            self.again.store(true, SeqCst);
            // The running one may have ended between the two lines above,
            // before it could see `again`: then this one runs.
            if self.running.swap(true, SeqCst) {
                return;
            }
        }
        loop {
            self.again.store(false, SeqCst);
            let _ = tx.send(read().await);
            self.running.store(false, SeqCst);
            // Asked for while this one ran: read again, unless another
            // caller has started one since.
            if !self.again.load(SeqCst) || self.running.swap(true, SeqCst) {
                return;
            }
        }
    }
}

impl Worker {
    /// A worker reporting on `tx`.
    pub fn new(
        cloud: Arc<dyn Cloud>,
        devices: Arc<dyn DeviceRunner>,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Worker {
        let (progress, mut progress_rx) = mpsc::unbounded_channel::<DeviceProgress>();
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(p) = progress_rx.recv().await {
                if forward.send(Msg::Progress(p)).is_err() {
                    break;
                }
            }
        });
        Worker {
            cloud,
            devices,
            tx,
            progress,
            tasks: HashMap::new(),
            onboard_limit: Arc::new(Semaphore::new(ONBOARD_CONCURRENCY)),
            read_back: Arc::default(),
        }
    }

    /// Starts `command` on a spawned task.
    pub fn execute(&mut self, command: Command) {
        self.tasks.retain(|_, h| !h.is_finished());
        let cloud = self.cloud.clone();
        match command.clone() {
            Command::Refresh => self.refresh(),
            Command::Deploy => self.spawn_cloud("deploy", async move {
                let r = cloud.deploy().await?;
                Ok(format!(
                    "stack {} {}{}",
                    r.stack,
                    r.status,
                    if r.changed { "" } else { " (no changes)" }
                ))
            }),
            Command::Init { devices } | Command::Spawn { devices } => {
                let what = if matches!(command, Command::Init { .. }) {
                    "init"
                } else {
                    "spawn"
                };
                self.spawn_cloud(what, async move {
                    let r = cloud.init(devices).await?;
                    Ok(format!(
                        "{} CAs, key in {}, {} devices whitelisted with factory credentials",
                        r.cas.len(),
                        r.ca_key_parameter,
                        r.whitelisted.len()
                    ))
                })
            }
            Command::Cleanup => self.spawn_cloud("cleanup", async move {
                let r = cloud.cleanup().await?;
                Ok(format!(
                    "cleanup: {} things, {} certificates, {} CAs, {} parameters, {} table rows deleted",
                    r.things, r.certificates, r.cas, r.parameters, r.table_rows
                ))
            }),
            Command::Teardown => self.spawn_cloud("teardown", async move {
                let r = cloud.teardown().await?;
                Ok(if r.existed {
                    format!("stack {} deleted ({} resources)", r.stack, r.deleted.len())
                } else {
                    format!("there was no stack {}: nothing to delete", r.stack)
                })
            }),
            Command::Revoke { cert_id } => self.spawn_cloud("revoke", async move {
                cloud
                    .set_certificate_status(&cert_id, CertificateStatus::Revoked)
                    .await?;
                Ok(format!(
                    "certificate {cert_id} REVOKED: its next connect is refused"
                ))
            }),
            Command::Step {
                serial,
                step,
                drop_next_response,
            } => self.spawn_device(serial, Some(step), drop_next_response, false),
            Command::Onboard { serials } => {
                for serial in serials {
                    self.spawn_device(serial, None, false, true);
                }
            }
            Command::Kill { serial } => {
                if let Some(handle) = self.tasks.remove(&serial) {
                    handle.abort();
                }
                let _ = self.progress.send(DeviceProgress {
                    serial,
                    step: WalkStep::Jitp,
                    state: ProgressState::Killed,
                    attempt: 0,
                    message: "killed".into(),
                    at: now_millis(),
                });
            }
        }
    }

    fn refresh(&self) {
        let read_back = self.read_back.clone();
        let cloud = self.cloud.clone();
        tokio::spawn(read_back.run(move || status_of(cloud.clone()), self.tx.clone()));
    }

    fn spawn_cloud<F>(&self, what: &'static str, work: F)
    where
        F: std::future::Future<Output = Result<String, CloudError>> + Send + 'static,
    {
        let tx = self.tx.clone();
        let cloud = self.cloud.clone();
        let read_back = self.read_back.clone();
        tokio::spawn(async move {
            let result = work.await.map_err(|e| explain(&e));
            let _ = tx.send(Msg::Finished { what, result });
            // Read everything back so the panes show what the command did.
            read_back.run(move || status_of(cloud.clone()), tx).await;
        });
    }

    fn spawn_device(&mut self, serial: String, step: Option<WalkStep>, drop: bool, bounded: bool) {
        let devices = self.devices.clone();
        let progress = self.progress.clone();
        let limit = self.onboard_limit.clone();
        let key = serial.clone();
        let handle = tokio::spawn(async move {
            // Autopilot is bounded so ten thousand devices don't all dial at once.
            let _permit = if bounded {
                limit.acquire_owned().await.ok()
            } else {
                None
            };
            let result = devices
                .run(serial.clone(), step, drop, progress.clone())
                .await;
            let state = match &result {
                Ok(()) => ProgressState::Done,
                Err(_) => ProgressState::Failed,
            };
            let _ = progress.send(DeviceProgress {
                serial,
                step: step.unwrap_or(WalkStep::AckCert),
                state,
                attempt: 0,
                message: match result {
                    Ok(()) => match step {
                        Some(s) => format!("step {} done", s.label()),
                        None => "onboarded".into(),
                    },
                    Err(e) => e,
                },
                at: now_millis(),
            });
        });
        self.tasks.insert(key, handle.abort_handle());
    }

    /// Aborts every running device task (on quit).
    pub fn abort_all(&mut self) {
        for (_, handle) in self.tasks.drain() {
            handle.abort();
        }
    }
}

/// A cloud error as the status line shows it: what is wrong and what to do.
pub fn explain(e: &CloudError) -> String {
    match e {
        CloudError::NotDeployed => "the stack is not deployed: press d to deploy it first".into(),
        CloudError::NotInitialized => "the CAs are not set up: press i to init first".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The read-back asked for after a command, while the periodic one is
    /// in flight, runs once that one ends (it used to be dropped, and the
    /// TUI on AWS kept showing "not deployed" after a deploy).
    #[tokio::test]
    async fn a_read_back_asked_for_meanwhile_runs_after_the_current_one() {
        let read_back = Arc::new(ReadBack::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let read = {
            let (calls, gate) = (calls.clone(), gate.clone());
            move || {
                let (calls, gate) = (calls.clone(), gate.clone());
                async move {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    gate.acquire().await.expect("open").forget();
                    Msg::Finished {
                        what: "refresh",
                        result: Ok(format!("read {n}")),
                    }
                }
            }
        };
        let first = tokio::spawn(read_back.clone().run(read.clone(), tx.clone()));
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Asked for while the first runs: returns at once, nothing read yet.
        read_back.clone().run(read.clone(), tx.clone()).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        gate.add_permits(2);
        first.await.expect("the first read-back ends");
        let mut got = Vec::new();
        while let Ok(Msg::Finished { result, .. }) = rx.try_recv() {
            got.push(result.expect("ok"));
        }
        assert_eq!(got, vec!["read 1".to_string(), "read 2".to_string()]);
        // Nothing asked for meanwhile: one read, no more.
        gate.add_permits(1);
        read_back.run(read, tx).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
