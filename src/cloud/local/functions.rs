//! Built-in functions: what a rule's Lambda action invokes on the local cloud.
//!
//! A stack's `AWS::Lambda::Function` names its built-in handler in its
//! `Metadata` (`"jitpilot:builtin": "cert-rotation"`); the rules engine
//! resolves the action's function ARN → function name → handler → this
//! registry, and invokes it in-process with the rule's SQL output as event
//! and the deployed function's `Environment.Variables` (as Lambda sets them),
//! so a stack update (e.g. `CsrKeyReuse`) takes effect on the next invocation.

use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::model::{now_millis, Certificate, CertificateStatus};
use crate::rotation::{
    AuditSink, BackendError, BackendResult, Backends, DeviceRow, DeviceTable, ParameterStore,
    Publisher, Registry, RotationConfig, RotationFunction,
};
use crate::store::{Store, StoreError};
use crate::vocabulary::DEVICE_TABLE;
use std::collections::HashMap;
use std::sync::Arc;

/// A function compiled into jitpilot.
#[async_trait::async_trait]
pub trait BuiltinFunction: Send + Sync {
    /// Handles one event (the rule's SQL output). `environment` is the
    /// deployed function's `Environment.Variables`; `publisher` publishes as
    /// the cloud on the endpoint that invoked the function. Errors are
    /// reported as the function's failure (logged, like a Lambda error).
    async fn invoke(
        &self,
        event: serde_json::Value,
        environment: serde_json::Map<String, serde_json::Value>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<serde_json::Value, String>;

    /// True when the function keeps Lambda's clock itself (its own code in
    /// a runtime: init has its own limit, the configured timeout starts
    /// when the runtime takes the event), so the caller must not time the
    /// whole call, cold start included, against the timeout.
    fn keeps_its_own_clock(&self) -> bool {
        false
    }
}

/// Built-in handlers by name.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    handlers: HashMap<String, Arc<dyn BuiltinFunction>>,
    /// Functions that run their own code (`lambda_runtime`), consulted
    /// before the built-ins by [`FunctionRegistry::resolve`].
    code: Option<super::lambda_runtime::LocalLambda>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> FunctionRegistry {
        FunctionRegistry::default()
    }

    /// Registers `function` under `handler`.
    pub fn register(&mut self, handler: &str, function: Arc<dyn BuiltinFunction>) {
        self.handlers.insert(handler.to_string(), function);
    }

    /// The function registered under `handler`.
    pub fn get(&self, handler: &str) -> Option<Arc<dyn BuiltinFunction>> {
        self.handlers.get(handler).cloned()
    }

    /// Lets deployed functions run their own code from the data dir.
    pub fn with_code(mut self, lambda: super::lambda_runtime::LocalLambda) -> FunctionRegistry {
        self.code = Some(lambda);
        self
    }

    /// The code side of the local Lambda service, when attached.
    pub fn code(&self) -> Option<&super::lambda_runtime::LocalLambda> {
        self.code.as_ref()
    }

    /// What runs for the deployed `function` (a rule's action, Lambda's
    /// `Invoke`): its own code when the data dir has some, else the
    /// built-in its handler names.
    pub fn resolve(&self, function: &crate::model::Function) -> Option<Arc<dyn BuiltinFunction>> {
        match &self.code {
            Some(code) => code.resolve(function, self),
            None => self.get(&function.handler),
        }
    }
}

// ---- the rotation function, bound to the local cloud --------------------------

/// Handler name of the rotation function (the stack's
/// `"jitpilot:builtin": "cert-rotation"`).
pub const CERT_ROTATION_HANDLER: &str = "cert-rotation";

/// The rotation function's settings from the fleet definition (shared with the Lambda).
pub use crate::fleet::rotation_config;

/// The built-in functions of the local cloud: the rotation function under
/// [`CERT_ROTATION_HANDLER`], over `store`, reporting to `bus`.
pub fn builtin_functions(store: Store, bus: EventBus, config: RotationConfig) -> FunctionRegistry {
    let mut registry = FunctionRegistry::new();
    registry.register(
        CERT_ROTATION_HANDLER,
        Arc::new(CertRotation::new(store, bus, config)),
    );
    registry
}

/// The rotation function as a local built-in.
pub struct CertRotation {
    function: Arc<RotationFunction>,
}

impl CertRotation {
    /// The rotation function over the local store.
    pub fn new(store: Store, bus: EventBus, config: RotationConfig) -> CertRotation {
        CertRotation {
            function: Arc::new(RotationFunction::new(local_backends(store, bus), config)),
        }
    }

    /// The function itself, for callers that are already off the async runtime.
    pub fn function(&self) -> &Arc<RotationFunction> {
        &self.function
    }
}

#[async_trait::async_trait]
impl BuiltinFunction for CertRotation {
    async fn invoke(
        &self,
        event: serde_json::Value,
        environment: serde_json::Map<String, serde_json::Value>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<serde_json::Value, String> {
        let function = Arc::clone(&self.function);
        // The stack's settings, as the Lambda reads them from its environment.
        let config = function.config().with_environment(|name| {
            environment
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })?;
        // SQLite and signing are blocking work: keep them off the runtime's
        // worker threads so the endpoint keeps moving packets.
        tokio::task::spawn_blocking(move || {
            function
                .handle_configured(&event, &config, publisher.as_ref())
                .map(|invocation| invocation.to_json())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the rotation function's task failed: {e}"))?
    }
}

/// The rotation function's backends over the local store and event bus.
pub fn local_backends(store: Store, bus: EventBus) -> Backends {
    let local = Arc::new(LocalRotationBackend { store, bus });
    Backends {
        registry: local.clone(),
        table: local.clone(),
        params: local.clone(),
        audit: local,
    }
}

/// The local store seen through the rotation function's traits.
struct LocalRotationBackend {
    store: Store,
    bus: EventBus,
}

fn io(operation: &str) -> impl FnOnce(StoreError) -> BackendError + '_ {
    move |e| BackendError::during(operation, e)
}

impl Registry for LocalRotationBackend {
    fn certificate(&self, cert_id: &str) -> BackendResult<Option<Certificate>> {
        self.store
            .get_certificate(cert_id)
            .map_err(io("reading a certificate"))
    }

    fn ca_certificate_pem(&self, ca_id: &str) -> BackendResult<Option<String>> {
        Ok(self
            .store
            .get_ca(ca_id)
            .map_err(io("reading a CA certificate"))?
            .map(|ca| ca.pem))
    }

    fn register_certificate(
        &self,
        cert_id: &str,
        pem: &str,
        ca_id: &str,
        status: CertificateStatus,
    ) -> BackendResult<String> {
        self.store
            .register_certificate(&Certificate {
                id: cert_id.to_string(),
                ca_id: Some(ca_id.to_string()),
                pem: pem.to_string(),
                status,
                created_at: now_millis(),
            })
            .map_err(io("registering the manufacturer certificate"))?;
        self.registry_event(
            cert_id,
            format!("certificate {cert_id} registered {status}"),
        );
        // The local registry's ids are AWS's: the SHA-256 of the DER.
        Ok(cert_id.to_string())
    }

    fn set_certificate_status(
        &self,
        cert_id: &str,
        status: CertificateStatus,
    ) -> BackendResult<()> {
        self.store
            .set_certificate_status(cert_id, status)
            .map_err(io("setting a certificate's status"))?;
        self.registry_event(cert_id, format!("certificate {cert_id} set {status}"));
        Ok(())
    }

    fn delete_certificate(&self, cert_id: &str) -> BackendResult<bool> {
        let deleted = self
            .store
            .delete_certificate(cert_id)
            .map_err(io("deleting a certificate"))?;
        if deleted {
            self.registry_event(cert_id, format!("certificate {cert_id} deleted"));
        }
        Ok(deleted)
    }

    fn attach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()> {
        self.store
            .attach_thing_principal(thing, cert_id)
            .map_err(io("attaching a certificate to its thing"))
    }

    fn detach_thing_principal(&self, thing: &str, cert_id: &str) -> BackendResult<()> {
        self.store
            .detach_thing_principal(thing, cert_id)
            .map_err(io("detaching a certificate from its thing"))
    }

    fn thing_principals(&self, thing: &str) -> BackendResult<Vec<String>> {
        self.store
            .list_thing_principals(thing)
            .map_err(io("listing a thing's certificates"))
    }

    fn attach_policy(&self, policy: &str, cert_id: &str) -> BackendResult<()> {
        self.store
            .attach_policy(policy, cert_id)
            .map_err(io("attaching a policy (is the stack deployed?)"))
    }

    /// One store transaction: an invocation's writes and its event-log
    /// entry land with one commit, or none of them do.
    fn atomically(&self, writes: &mut dyn FnMut() -> BackendResult<()>) -> BackendResult<()> {
        self.store
            .batch(|| writes().map_err(Batched::Backend))
            .map_err(|e| match e {
                Batched::Backend(e) => e,
                Batched::Store(e) => BackendError::during("committing the invocation's writes", e),
            })
    }
}

/// Why a batch of the rotation function's writes did not land.
enum Batched {
    Backend(BackendError),
    Store(StoreError),
}

impl From<StoreError> for Batched {
    fn from(e: StoreError) -> Batched {
        Batched::Store(e)
    }
}

impl LocalRotationBackend {
    fn registry_event(&self, cert_id: &str, summary: String) {
        self.bus.emit_with(|| {
            CloudEvent::new(EventKind::Registry, summary)
                .detail(serde_json::json!({"certificateId": cert_id, "by": "rotation function"}))
        });
    }
}

impl DeviceTable for LocalRotationBackend {
    fn get(&self, serial: &str) -> BackendResult<Option<DeviceRow>> {
        Ok(self
            .store
            .get_item(DEVICE_TABLE, serial)
            .map_err(io("reading CertRotationDevices"))?
            .map(DeviceRow::from_item))
    }

    fn put(&self, row: &DeviceRow) -> BackendResult<()> {
        self.store
            .put_item(DEVICE_TABLE, row.item())
            .map_err(io("writing CertRotationDevices (is the stack deployed?)"))
    }
}

impl ParameterStore for LocalRotationBackend {
    fn secure_string(&self, name: &str) -> BackendResult<Option<String>> {
        Ok(self
            .store
            .get_parameter(name, true)
            .map_err(io("reading the CA key parameter"))?
            .map(|p| p.value))
    }
}

impl AuditSink for LocalRotationBackend {
    fn record(&self, kind: &str, subject: &str, detail: &serde_json::Value) {
        if let Err(e) = self.store.append_event(kind, subject, detail) {
            tracing::warn!(kind, subject, error = %e, "rotation function could not write the event log");
        }
        self.bus.emit_with(|| {
            let what = kind.trim_start_matches("rotation.");
            let text = |v: &serde_json::Value, key: &str| {
                v.get(key).and_then(|r| r.as_str()).map(str::to_string)
            };
            let code = text(detail, "code")
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let insecure = detail.get("insecure");
            let summary = match (text(detail, "reason"), insecure) {
                // The TUI shows this in red: the certificate was issued, unsafely.
                (_, Some(insecure)) => format!(
                    "rotation {what} {subject}: INSECURE [{}]: {}",
                    text(insecure, "code").unwrap_or_default(),
                    text(insecure, "reason").unwrap_or_default()
                ),
                (Some(reason), None) => format!("rotation {what} {subject}{code}: {reason}"),
                (None, None) => format!("rotation {what} {subject}"),
            };
            let mut event = CloudEvent::new(EventKind::Function, summary)
                .client(
                    detail
                        .get("client_id")
                        .and_then(|c| c.as_str())
                        .unwrap_or(subject),
                )
                .detail(detail.clone());
            if let Some(topic) = detail.get("topic").and_then(|t| t.as_str()) {
                event = event.topic(topic);
            }
            event
        });
    }
}
