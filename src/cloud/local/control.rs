//! The local cloud's control plane: what the sample does with the AWS CLI
//! and CloudFormation — deploy the stack, init the CAs and fleet, read it
//! all back, clean up, tear down — on the embedded local cloud.
//!
//! Layout: this file holds [`LocalCloud`] (opening, ownership of the data dir,
//! the [`Cloud`] trait); `control/init.rs` carries out the control plane's
//! `init` ([`crate::cloud::control`]) on the store; `control/status.rs`
//! reads everything back and runs `certs_etc.py --delete`.

mod init;
mod stacks;
mod status;

pub use stacks::StackOutcome;

use super::endpoint::EndpointControl;
use super::stack;
use crate::cloud::{
    CleanupReport, Cloud, CloudError, CloudEvent, CloudResult, DeployReport, DeviceEndpoint,
    EventBus, EventKind, EventReceiver, InitReport, ParameterOverrides, StatusReport,
    TeardownReport,
};
use crate::datadir::{DataDir, DataDirLock};
use crate::fleet::Fleet;
use crate::model::CertificateStatus;
use crate::store::Store;
use crate::vocabulary::STACK_NAME;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The embedded local cloud. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct LocalCloud {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: DataDir,
    store: Store,
    fleet: Fleet,
    bus: EventBus,
    /// Held for as long as this cloud lives: we own the data dir for
    /// writing. `None` when opened read-only beside another owner.
    lock: Option<DataDirLock>,
    /// The endpoint's socket when it runs in this process.
    local_endpoint: Mutex<Option<SocketAddr>>,
    /// The endpoint running in this process, told about control-plane
    /// changes it must act on: topic rules after a deploy or teardown, a
    /// certificate set INACTIVE/REVOKED (its device is disconnected).
    endpoint_control: Mutex<Option<EndpointControl>>,
    /// One control-plane operation at a time (the TUI may trigger init while
    /// a cleanup runs): each is a sequence of registry steps.
    control: Mutex<()>,
}

impl LocalCloud {
    /// Opens the local cloud in `data_dir` for writing: takes the data dir's
    /// lock (a second writer gets an error naming the owner), opens the store
    /// and loads the fleet definition.
    pub fn open(data_dir: &Path, bus: EventBus) -> CloudResult<LocalCloud> {
        let dir = DataDir::new(data_dir);
        let lock = dir
            .lock(&command_line())
            .map_err(|e| CloudError::Other(e.to_string()))?;
        let store = Store::open(dir.root())?;
        let fleet = Fleet::load(dir.root()).map_err(|e| CloudError::Other(e.to_string()))?;
        Ok(LocalCloud::assemble(dir, store, fleet, bus, Some(lock)))
    }

    /// Opens the local cloud for reading only, beside the process that owns
    /// the data dir (`jitpilot status` next to a running TUI or `serve`).
    /// Every operation that writes fails with a message saying so.
    pub fn open_read_only(data_dir: &Path) -> CloudResult<LocalCloud> {
        let dir = DataDir::new(data_dir);
        let store = Store::open_read_only(dir.root())?;
        let fleet = Fleet::load(dir.root()).map_err(|e| CloudError::Other(e.to_string()))?;
        Ok(LocalCloud::assemble(
            dir,
            store,
            fleet,
            EventBus::default(),
            None,
        ))
    }

    fn assemble(
        data_dir: DataDir,
        store: Store,
        fleet: Fleet,
        bus: EventBus,
        lock: Option<DataDirLock>,
    ) -> LocalCloud {
        LocalCloud {
            inner: Arc::new(Inner {
                data_dir,
                store,
                fleet,
                bus,
                lock,
                local_endpoint: Mutex::new(None),
                endpoint_control: Mutex::new(None),
                control: Mutex::new(()),
            }),
        }
    }

    /// The store (registry, tables, parameters, stacks, event log).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The data dir's paths.
    pub fn data_dir(&self) -> &DataDir {
        &self.inner.data_dir
    }

    /// The fleet definition in use.
    pub fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    /// The event stream's sending half.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// False when opened with [`LocalCloud::open_read_only`].
    pub fn is_writable(&self) -> bool {
        self.inner.lock.is_some()
    }

    /// Records the socket of an endpoint running in this process (the
    /// runtime calls this when it starts listening, `None` when it stops).
    pub fn set_local_endpoint(&self, addr: Option<SocketAddr>) {
        *self
            .inner
            .local_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = addr;
    }

    /// Connects the endpoint running in this process to the control plane
    /// (the runtime calls this when it starts, `None` when it stops).
    pub fn attach_endpoint(&self, control: Option<EndpointControl>) {
        *self
            .inner
            .endpoint_control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = control;
    }

    fn running_endpoint(&self) -> Option<EndpointControl> {
        self.inner
            .endpoint_control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The stack's topic rules changed: the running endpoint reloads them,
    /// so rule_jitp fires for a stack deployed while it runs (and a
    /// torn-down stack's rules stop firing).
    pub(crate) fn topic_rules_changed(&self) -> CloudResult<()> {
        if let Some(endpoint) = self.running_endpoint() {
            endpoint.reload_rules().map_err(|e| {
                CloudError::Other(format!(
                    "the stack changed but the endpoint could not load its topic rules: {e}; restart jitpilot"
                ))
            })?;
        }
        Ok(())
    }

    /// Step 1: creates or updates the stack from `cfn/cert-rotation.json`.
    pub fn deploy_sync(&self) -> CloudResult<DeployReport> {
        self.deploy_sync_with(&ParameterOverrides::new())
    }

    /// Step 1 with parameter overrides; the other parameters keep their
    /// current values.
    pub fn deploy_sync_with(&self, overrides: &ParameterOverrides) -> CloudResult<DeployReport> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        let parameters =
            stack::parameters_with_overrides(self.store(), STACK_NAME, stack::TEMPLATE, overrides)
                .map_err(stack_error)?;
        let report = stack::deploy(
            self.store(),
            self.bus(),
            STACK_NAME,
            stack::TEMPLATE,
            &parameters,
        )
        .map_err(stack_error);
        // Even a failed (rolled back) deploy may have changed the rules.
        self.topic_rules_changed()?;
        let report = report?;
        // The stack engine streamed its own events; the log keeps the outcome.
        self.store().append_event(
            "stack.deployed",
            STACK_NAME,
            &serde_json::json!({"status": report.status, "changed": report.changed}),
        )?;
        Ok(report)
    }

    /// Step 2 for `devices` devices: see [`init`](Cloud::init).
    pub fn init_sync(&self, devices: usize) -> CloudResult<InitReport> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        init::run(self, devices)
    }

    /// Everything the walkthrough created, read back.
    pub fn status_sync(&self) -> CloudResult<StatusReport> {
        status::status(self)
    }

    /// The sample's `certs_etc.py --delete`.
    pub fn cleanup_sync(&self) -> CloudResult<CleanupReport> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        status::cleanup(self)
    }

    /// The sample's `delete_cf.bash`: deletes the stack's resources in reverse
    /// dependency order, then the stack. Succeeds when there is no stack.
    pub fn teardown_sync(&self) -> CloudResult<TeardownReport> {
        self.writable()?;
        let _one_at_a_time = self.control_lock();
        let report = stack::teardown(self.store(), self.bus(), STACK_NAME).map_err(stack_error);
        self.topic_rules_changed()?;
        let report = report?;
        if report.existed {
            self.store().append_event(
                "stack.deleted",
                STACK_NAME,
                &serde_json::json!({"deleted": report.deleted}),
            )?;
        }
        Ok(report)
    }

    /// `aws iot update-certificate --new-status`.
    pub fn set_certificate_status_sync(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> CloudResult<()> {
        self.writable()?;
        self.store().set_certificate_status(cert_id, status)?;
        // As on AWS, a device whose certificate is switched off is disconnected.
        if !matches!(status, CertificateStatus::Active) {
            if let Some(endpoint) = self.running_endpoint() {
                endpoint.certificate_deactivated(cert_id);
            }
        }
        self.record(
            EventKind::Registry,
            "registry.certificate_status",
            cert_id,
            format!("certificate {} → {status}", short_id(cert_id)),
            serde_json::json!({"certificateId": cert_id, "status": status}),
        )
    }

    /// Emits `summary` on the event stream and appends it to the event log.
    pub(crate) fn record(
        &self,
        kind: EventKind,
        log_kind: &str,
        subject: &str,
        summary: String,
        detail: serde_json::Value,
    ) -> CloudResult<()> {
        tracing::info!(kind = log_kind, subject, "{summary}");
        self.store().append_event(log_kind, subject, &detail)?;
        self.bus()
            .emit(CloudEvent::new(kind, summary).detail(detail));
        Ok(())
    }

    fn writable(&self) -> CloudResult<()> {
        if self.is_writable() {
            return Ok(());
        }
        let owner = std::fs::read_to_string(self.data_dir().lock_path())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Err(CloudError::Other(format!(
            "the data dir {} is owned by {}; this process only reads it. Stop the owner (or use it, e.g. the TUI) to change anything",
            self.data_dir().root().display(),
            if owner.is_empty() { "another jitpilot process" } else { &owner }
        )))
    }

    fn control_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs a blocking control-plane operation off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(LocalCloud) -> CloudResult<T> + Send + 'static,
    ) -> CloudResult<T> {
        let cloud = self.clone();
        tokio::task::spawn_blocking(move || f(cloud))
            .await
            .map_err(|e| CloudError::Other(format!("{what} stopped unexpectedly: {e}")))?
    }
}

#[async_trait::async_trait]
impl Cloud for LocalCloud {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn deploy_with_parameters(
        &self,
        overrides: &ParameterOverrides,
    ) -> CloudResult<DeployReport> {
        let overrides = overrides.clone();
        self.blocking("deploy", move |c| c.deploy_sync_with(&overrides))
            .await
    }

    async fn init(&self, devices: usize) -> CloudResult<InitReport> {
        self.blocking("init", move |c| c.init_sync(devices)).await
    }

    async fn status(&self) -> CloudResult<StatusReport> {
        self.blocking("status", |c| c.status_sync()).await
    }

    async fn device_rows(&self) -> CloudResult<Vec<crate::rotation::wire::Item>> {
        self.blocking("scan", |c| {
            let store = c.store();
            if store
                .table_schema(crate::vocabulary::DEVICE_TABLE)?
                .is_none()
            {
                return Ok(Vec::new());
            }
            Ok(store.scan(crate::vocabulary::DEVICE_TABLE)?)
        })
        .await
    }

    async fn cleanup(&self) -> CloudResult<CleanupReport> {
        self.blocking("cleanup", |c| c.cleanup_sync()).await
    }

    async fn teardown(&self) -> CloudResult<TeardownReport> {
        self.blocking("teardown", |c| c.teardown_sync()).await
    }

    async fn set_certificate_status(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> CloudResult<()> {
        let cert_id = cert_id.to_string();
        self.blocking("update-certificate", move |c| {
            c.set_certificate_status_sync(&cert_id, status)
        })
        .await
    }

    fn device_endpoint(&self) -> Option<DeviceEndpoint> {
        let local = *self
            .inner
            .local_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let addr = match local {
            Some(addr) => addr.to_string(),
            None => self.data_dir().read_endpoint_addr()?,
        };
        Some(DeviceEndpoint {
            addr,
            server_name: super::endpoint_ca::SERVER_NAME.to_string(),
            root_ca_path: self.data_dir().endpoint_ca_path(),
            local_addr: local,
        })
    }

    fn events(&self) -> EventReceiver {
        self.bus().subscribe()
    }
}

fn stack_error(e: stack::StackError) -> CloudError {
    match e {
        stack::StackError::Template(msg) => CloudError::Template(msg),
        stack::StackError::Store(e) => CloudError::Store(e),
        // The stack engine may grow variants; they still say what is wrong.
        #[allow(unreachable_patterns)]
        other => CloudError::Other(other.to_string()),
    }
}

/// What the lock file records about this process: `jitpilot init --devices 3`.
fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .and_then(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "jitpilot".to_string());
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) use crate::cloud::control::plan::short_id;

#[cfg(test)]
mod running_tests;
#[cfg(test)]
mod tests;
