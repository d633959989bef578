//! The worker: executes the UI's [`Command`]s on spawned tasks and reports
//! back on a channel, so the UI task never waits on the cloud.

use super::action::{Command, DeviceProgress, Msg, ProgressState, WalkStep};
use crate::cloud::{Cloud, CloudError};
use crate::model::{now_millis, CertificateStatus};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// True while a read-back runs: refreshes never pile up.
    refreshing: Arc<AtomicBool>,
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
            refreshing: Arc::new(AtomicBool::new(false)),
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
            Command::Init { extra_devices } | Command::Spawn { extra_devices } => {
                let what = if matches!(command, Command::Init { .. }) {
                    "init"
                } else {
                    "spawn"
                };
                self.spawn_cloud(what, async move {
                    let r = cloud.init(extra_devices).await?;
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
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cloud, tx, flag) = (self.cloud.clone(), self.tx.clone(), self.refreshing.clone());
        tokio::spawn(async move {
            let msg = match cloud.status().await {
                Ok(report) => Msg::Status(Box::new(report)),
                Err(e) => Msg::Finished {
                    what: "refresh",
                    result: Err(explain(&e)),
                },
            };
            flag.store(false, Ordering::Release);
            let _ = tx.send(msg);
        });
    }

    fn spawn_cloud<F>(&self, what: &'static str, work: F)
    where
        F: std::future::Future<Output = Result<String, CloudError>> + Send + 'static,
    {
        let tx = self.tx.clone();
        let cloud = self.cloud.clone();
        let refreshing = self.refreshing.clone();
        tokio::spawn(async move {
            let result = work.await.map_err(|e| explain(&e));
            let _ = tx.send(Msg::Finished { what, result });
            // Read everything back so the panes show what the command did.
            if !refreshing.swap(true, Ordering::AcqRel) {
                let msg = match cloud.status().await {
                    Ok(report) => Msg::Status(Box::new(report)),
                    Err(e) => Msg::Finished {
                        what: "refresh",
                        result: Err(explain(&e)),
                    },
                };
                refreshing.store(false, Ordering::Release);
                let _ = tx.send(msg);
            }
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
