//! A stack's function running its own code, as Lambda runs it: through the
//! Lambda Runtime API, one warm process per function.
//!
//! A rule's Lambda action (or the AWS API's `Invoke`) resolves a deployed
//! function through [`FunctionRegistry::resolve`]: when the data dir holds
//! code for it ([`CodeStore`]), that code runs; otherwise the built-in its
//! handler names (jitpilot's own stack: the fast path). Running code is
//! opt-in for jitpilot's own stack (`jitpilot deploy --function-code PATH`)
//! and the rule for functions whose code arrived through the AWS API.
//!
//! - `provided.al2023` / `provided.al2`: the package's `bootstrap` (so
//!   jitpilot's own `lambda/` binary runs for real);
//! - `python3.x`: `python3 -m awslambdaric <handler>` with the host's
//!   python3, the package on `PYTHONPATH`, its `requirements.txt` installed
//!   once with `pip install --target` unless the package bundles it.
//!
//! The function's SDK is pointed at the local cloud's AWS API
//! (`AWS_ENDPOINT_URL` and the data dir's access key, read when its process
//! starts). Its stdout and stderr go to `jitpilot.log`.
//!
//! Where the code cannot run here, the event log and the stack pane say
//! why and what to do; a function shaped like the rotation function has the
//! built-in rotation function stand in, and every such invocation says so.
//!
//! ## Layout
//!
//! - `mod.rs`         [`LocalLambda`]: resolving a function to its code, warm processes, reporting
//! - `config.rs`      [`FunctionConfig`] and the launch decision (pure)
//! - `deploy.rs`      `jitpilot deploy --function-code`: opting jitpilot's own stack in
//! - `code.rs`        [`CodeStore`]: `<data-dir>/lambda/<name>/`, python dependencies
//! - `package.rs`     reading and unpacking a deployment zip
//! - `host.rs`        the host's python3 and awslambdaric; the AWS API's address and key
//! - `runtime_api.rs` the Runtime API server (hyper, loopback)
//! - `process.rs`     the function's process and its output
//! - `warm.rs`        [`WarmFunction`]: serialized invocations, timeout, crash, restart

pub mod code;
pub mod config;
pub mod deploy;
pub mod host;
pub mod package;
pub mod process;
pub mod runtime_api;
pub mod warm;

pub use code::{CodeError, CodeStore, StoredCode};
pub use config::{CannotRun, FunctionConfig};
pub use runtime_api::FunctionError;
pub use warm::{InvokeError, WarmFunction};

use self::config::{FunctionIdentity, HostFacts, RuntimeKind};
use super::functions::{BuiltinFunction, FunctionRegistry, CERT_ROTATION_HANDLER};
use crate::cloud::events::{CloudEvent, EventBus, EventKind};
use crate::model::Function;
use crate::rotation::Publisher;
use crate::store::Store;
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The code side of the local Lambda service. Cheap to clone.
#[derive(Clone)]
pub struct LocalLambda {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    code: CodeStore,
    region: String,
    bus: EventBus,
    store: Option<Store>,
    /// Probed on first use; probed again while python or awslambdaric is missing.
    host: tokio::sync::Mutex<Option<HostFacts>>,
    /// Warm functions by name, with the revision they run.
    warm: Mutex<HashMap<String, (String, Arc<WarmFunction>)>>,
    /// Held while a warm function is made: two invocations arriving at once
    /// (3a's still starting when 3b comes) share one process, not two.
    making: tokio::sync::Mutex<()>,
    /// Problems already reported (function, revision, reason): said once.
    reported: Mutex<HashSet<String>>,
}

impl LocalLambda {
    /// The Lambda service of the data dir `data_dir`, reporting to `bus`
    /// and, when given, the event log of `store`.
    pub fn new(data_dir: &Path, bus: EventBus, store: Option<Store>) -> LocalLambda {
        LocalLambda {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                code: CodeStore::new(data_dir),
                region: super::LOCAL_REGION.to_string(),
                bus,
                store,
                host: tokio::sync::Mutex::new(None),
                warm: Mutex::new(HashMap::new()),
                making: tokio::sync::Mutex::new(()),
                reported: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Where functions' code is kept.
    pub fn code_store(&self) -> &CodeStore {
        &self.inner.code
    }

    /// What runs for the deployed `function`: its own code when the data
    /// dir has some, else the built-in its handler names, else — for a
    /// function shaped like the rotation function — the built-in rotation
    /// function standing in, marked as such.
    pub fn resolve(
        &self,
        function: &Function,
        builtins: &FunctionRegistry,
    ) -> Option<Arc<dyn BuiltinFunction>> {
        let by_handler = builtins.get(&function.handler);
        let stand_in = by_handler.clone().or_else(|| {
            rotation_shaped(function)
                .then(|| builtins.get(CERT_ROTATION_HANDLER))
                .flatten()
        });
        if let Err(e) = self.sync_api_package(&function.name) {
            self.report_problem(&function.name, "api-package", &e, None);
        }
        match self.inner.code.get(&function.name) {
            Ok(Some(stored)) => Some(Arc::new(CodeFunction {
                lambda: self.clone(),
                function: function.clone(),
                stored,
                stand_in,
            })),
            Ok(None) => by_handler.or_else(|| {
                let builtin = stand_in?;
                Some(Arc::new(StandIn {
                    lambda: self.clone(),
                    function: function.name.clone(),
                    reason: "its code is not in the local cloud".into(),
                    builtin,
                }) as Arc<dyn BuiltinFunction>)
            }),
            Err(e) => {
                self.report_problem(&function.name, "unreadable", &e.to_string(), None);
                by_handler
            }
        }
    }

    /// Brings a package uploaded through the AWS API (Lambda's
    /// `UpdateFunctionCode`, kept in the store) into the code store when it
    /// changed since the last look; its settings are the API's, else the
    /// template's.
    fn sync_api_package(&self, name: &str) -> Result<(), String> {
        let Some(store) = &self.inner.store else {
            return Ok(());
        };
        let Some(stamp) = store
            .function_package_stamp(name)
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let source = format!("api:{stamp}");
        // Already copied, or code was stored here after that upload (the latest wins).
        let code = &self.inner.code;
        if code.source(name).as_deref() == Some(source.as_str())
            || code.stored_at(name).is_some_and(|at| at >= stamp)
        {
            return Ok(());
        }
        let Some(package) = store.function_package(name).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let Some(zip) = &package.zip else {
            return Ok(());
        };
        let mut props = store
            .function_template(name)
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| json!({}));
        if let Value::Object(map) = &mut props {
            let set = |map: &mut serde_json::Map<String, Value>, key: &str, v: Option<Value>| {
                if let Some(v) = v {
                    map.insert(key.to_string(), v);
                }
            };
            set(map, "Runtime", package.runtime.clone().map(Value::from));
            set(map, "Handler", package.handler.clone().map(Value::from));
            set(map, "Timeout", package.timeout.map(Value::from));
            set(map, "MemorySize", package.memory_size.map(Value::from));
        }
        let config = FunctionConfig::from_properties(&props)?;
        self.inner
            .code
            .put_zip(name, &config, zip)
            .map_err(|e| e.to_string())?;
        self.inner
            .code
            .set_source(name, &source)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            function = name,
            "the function's package uploaded through the API will run"
        );
        Ok(())
    }

    /// Runs `function`'s stored code with `payload` (the AWS API's Invoke
    /// and the rules both come here). `Err(CannotRun)` when this machine
    /// cannot run it (the caller may let a built-in stand in).
    pub async fn invoke(
        &self,
        function: &Function,
        stored: &StoredCode,
        payload: Bytes,
    ) -> Result<Bytes, InvokeError> {
        let warm = self.warm_for(function, stored).await.map_err(|why| {
            self.report_problem(
                &function.name,
                &stored.revision,
                &why.reason,
                Some(&why.what_to_do),
            );
            InvokeError::CannotRun(why)
        })?;
        warm.invoke(payload).await
    }

    /// Stops every warm process (the cloud is stopping).
    pub async fn shutdown(&self) {
        let warm: Vec<Arc<WarmFunction>> = self
            .inner
            .warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, (_, w))| w)
            .collect();
        for w in warm {
            w.stop().await;
        }
    }

    async fn host_facts(&self) -> HostFacts {
        let mut host = self.inner.host.lock().await;
        if let Some(facts) = host
            .as_ref()
            .filter(|f| f.python.is_some() && f.awslambdaric)
        {
            return facts.clone();
        }
        let facts = host::probe(&host_path()).await;
        *host = Some(facts.clone());
        facts
    }

    /// The warm function running `stored` with `function`'s environment,
    /// started anew when the code or the environment changed.
    async fn warm_for(
        &self,
        function: &Function,
        stored: &StoredCode,
    ) -> Result<Arc<WarmFunction>, CannotRun> {
        let mut settings = stored.config.clone();
        // The deployed stack's variables (e.g. CsrKeyReuse) over the stored ones.
        for (k, v) in &function.environment {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            settings.environment.insert(k.clone(), v);
        }
        let key = {
            let mut d = Sha256::new();
            d.update(stored.revision.as_bytes());
            d.update(serde_json::to_vec(&settings).unwrap_or_default());
            hex::encode(d.finalize())
        };
        let current = || {
            let warm = self.inner.warm.lock().unwrap_or_else(|p| p.into_inner());
            warm.get(&function.name)
                .filter(|(k, _)| *k == key)
                .map(|(_, w)| w.clone())
        };
        if let Some(warm) = current() {
            return Ok(warm);
        }
        let _making = self.inner.making.lock().await;
        if let Some(warm) = current() {
            return Ok(warm);
        }
        let kind = RuntimeKind::of(&settings.runtime);
        let host = match &kind {
            RuntimeKind::Python { .. } => self.host_facts().await,
            _ => HostFacts {
                path: host_path(),
                ..HostFacts::default()
            },
        };
        let deps = match (kind, &host.python) {
            (RuntimeKind::Python { .. }, Some((python, _))) => {
                code::python_dependencies(stored, python)
                    .await
                    .map_err(|reason| CannotRun {
                        reason,
                        what_to_do: "see jitpilot.log; deploy the code again once fixed".into(),
                    })?
            }
            _ => None,
        };
        let identity = FunctionIdentity {
            name: function.name.clone(),
            arn: function.arn.clone(),
            region: self.inner.region.clone(),
        };
        let task_root = stored.task_root();
        // Decide now, so a function that cannot run is reported before any process starts.
        config::launch(
            &identity,
            &settings,
            &task_root,
            deps.as_deref(),
            &host,
            None,
            "127.0.0.1:0",
        )?;
        let data_dir = self.inner.data_dir.clone();
        let timeout = settings.timeout();
        let arn = identity.arn.clone();
        let planner: warm::Planner = Box::new(move |runtime_api: &str| {
            let api = host::api_access(&data_dir);
            if api.is_none() {
                tracing::warn!(function = %identity.name, "the local AWS API is not running (no api.addr in the data dir): the function's SDK calls will fail");
            }
            config::launch(
                &identity,
                &settings,
                &task_root,
                deps.as_deref(),
                &host,
                api.as_ref(),
                runtime_api,
            )
        });
        let fresh = Arc::new(WarmFunction::new(&function.name, &arn, timeout, planner));
        let replaced = {
            let mut warm = self.inner.warm.lock().unwrap_or_else(|p| p.into_inner());
            warm.insert(function.name.clone(), (key, fresh.clone()))
        };
        if let Some((_, old)) = replaced {
            old.stop().await;
        }
        Ok(fresh)
    }

    /// Says once — in the log, the event log and the stack pane — that a
    /// function's code cannot run, and what to do.
    fn report_problem(
        &self,
        function: &str,
        revision: &str,
        reason: &str,
        what_to_do: Option<&str>,
    ) {
        let first = self
            .inner
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{function}/{revision}/{reason}"));
        if !first {
            return;
        }
        let message = match what_to_do {
            Some(what) => format!("{reason}; {what}"),
            None => reason.to_string(),
        };
        tracing::warn!(function, reason = %message, "function code cannot run here");
        let detail = json!({
            "function": function,
            "reason": reason,
            "whatToDo": what_to_do,
            "resourceType": "AWS::Lambda::Function",
            "logicalId": function,
            "status": "CODE_CANNOT_RUN",
        });
        if let Some(store) = &self.inner.store {
            if let Err(e) = store.append_event("lambda.code_cannot_run", function, &detail) {
                tracing::warn!(function, error = %e, "could not write the event log");
            }
        }
        let summary = format!("{function} code cannot run here: {message}");
        self.inner.bus.emit_with(|| {
            CloudEvent::new(EventKind::Stack, summary.clone()).detail(detail.clone())
        });
        self.inner
            .bus
            .emit_with(|| CloudEvent::new(EventKind::Function, summary).detail(detail));
    }
}

/// `PATH` for functions: jitpilot's own (their programs may need it).
fn host_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// True for a function shaped like the sample's rotation function, which
/// the built-in rotation function may stand in for.
pub fn rotation_shaped(function: &Function) -> bool {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    squash(&function.name).contains("certrotation")
        || squash(&function.handler).contains("certrotation")
}

/// A deployed function that runs its own code.
struct CodeFunction {
    lambda: LocalLambda,
    function: Function,
    stored: StoredCode,
    stand_in: Option<Arc<dyn BuiltinFunction>>,
}

#[async_trait::async_trait]
impl BuiltinFunction for CodeFunction {
    async fn invoke(
        &self,
        event: Value,
        environment: serde_json::Map<String, Value>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<Value, String> {
        // The deployed function's variables, as the rule hands them over.
        let mut function = self.function.clone();
        function.environment = environment.clone();
        // The code answers devices itself, through the AWS API's iot-data
        // Publish; `publisher` is for built-ins.
        let payload = Bytes::from(event.to_string());
        match self.lambda.invoke(&function, &self.stored, payload).await {
            Ok(body) => Ok(serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))),
            Err(InvokeError::CannotRun(why)) => match &self.stand_in {
                Some(builtin) => {
                    // The built-in has no runtime to keep the clock: the
                    // function's timeout applies to it here.
                    let timeout = self.stored.config.timeout();
                    let stand_in = StandIn {
                        lambda: self.lambda.clone(),
                        function: self.function.name.clone(),
                        reason: why.reason,
                        builtin: builtin.clone(),
                    };
                    tokio::time::timeout(timeout, stand_in.invoke(event, environment, publisher))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "Task timed out after {:.2} seconds",
                                timeout.as_secs_f64()
                            ))
                        })
                }
                None => Err(format!("code cannot run here: {why}")),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    fn keeps_its_own_clock(&self) -> bool {
        true
    }
}

/// The built-in rotation function standing in for a function whose code
/// cannot run here; every invocation says so.
struct StandIn {
    lambda: LocalLambda,
    function: String,
    reason: String,
    builtin: Arc<dyn BuiltinFunction>,
}

#[async_trait::async_trait]
impl BuiltinFunction for StandIn {
    async fn invoke(
        &self,
        event: Value,
        environment: serde_json::Map<String, Value>,
        publisher: Arc<dyn Publisher>,
    ) -> Result<Value, String> {
        let summary = format!(
            "{}: the built-in rotation function stands in ({})",
            self.function, self.reason
        );
        tracing::info!(function = %self.function, reason = %self.reason, "built-in rotation function stands in");
        self.lambda.inner.bus.emit_with(|| {
            CloudEvent::new(EventKind::Function, summary).detail(
                json!({"function": self.function, "standIn": "cert-rotation (built-in)", "reason": self.reason}),
            )
        });
        let mut result = self.builtin.invoke(event, environment, publisher).await?;
        if let Value::Object(map) = &mut result {
            map.insert("standIn".into(), json!("cert-rotation (built-in)"));
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests;
