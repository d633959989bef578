//! What a function needs to run, and how it is launched: pure decisions,
//! no IO.
//!
//! A [`FunctionConfig`] is the template's `Runtime`, `Handler`, `Timeout`,
//! `MemorySize` and `Environment.Variables`. [`launch`] turns it, the
//! unpacked package and what this host has ([`HostFacts`]) into a
//! [`LaunchPlan`] (program, arguments, environment) or a [`CannotRun`]
//! saying why and what to do — the stack pane and the event log show that.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lambda's default timeout when the template sets none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3;
/// Lambda's default memory size.
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// A function's settings, as the template's `AWS::Lambda::Function` sets them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionConfig {
    /// `provided.al2023`, `provided.al2`, `python3.12`, …
    pub runtime: String,
    /// `bootstrap` for provided.*, `module.function` for python.
    pub handler: String,
    /// Seconds an invocation may run before it is stopped.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// `Environment.Variables`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_memory() -> u32 {
    DEFAULT_MEMORY_MB
}

impl FunctionConfig {
    /// The invocation time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }

    /// The settings from an `AWS::Lambda::Function`'s resolved `Properties`
    /// (numbers may arrive as strings, as CloudFormation allows).
    pub fn from_properties(props: &serde_json::Value) -> Result<FunctionConfig, String> {
        let text = |key: &str| props.get(key).and_then(scalar);
        let runtime =
            text("Runtime").ok_or("Properties.Runtime is required to run the function's code")?;
        let handler =
            text("Handler").ok_or("Properties.Handler is required to run the function's code")?;
        let number = |key: &str, default: u64| -> Result<u64, String> {
            match text(key) {
                None => Ok(default),
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("Properties.{key} must be a whole number, found {t}")),
            }
        };
        let mut environment = BTreeMap::new();
        if let Some(vars) = props.get("Environment").and_then(|e| e.get("Variables")) {
            let vars = vars
                .as_object()
                .ok_or("Properties.Environment.Variables must be an object")?;
            for (k, v) in vars {
                let v = scalar(v).ok_or_else(|| {
                    format!("Properties.Environment.Variables.{k} must be a string")
                })?;
                environment.insert(k.clone(), v);
            }
        }
        Ok(FunctionConfig {
            runtime,
            handler,
            timeout_secs: number("Timeout", DEFAULT_TIMEOUT_SECS)?,
            memory_mb: u32::try_from(number("MemorySize", u64::from(DEFAULT_MEMORY_MB))?)
                .map_err(|_| "Properties.MemorySize is too large".to_string())?,
            environment,
        })
    }
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The runtimes jitpilot can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeKind {
    /// `provided`, `provided.al2`, `provided.al2023`: the package's `bootstrap`.
    Provided,
    /// `python3.x`: `python3 -m awslambdaric <handler>` with the host's python3.
    Python { version: String },
    /// Anything else (node, java, dotnet, ruby, containers).
    Unsupported,
}

impl RuntimeKind {
    /// Which kind `runtime` names.
    pub fn of(runtime: &str) -> RuntimeKind {
        match runtime {
            "provided" | "provided.al2" | "provided.al2023" => RuntimeKind::Provided,
            r if r.starts_with("python3") => RuntimeKind::Python {
                version: r.trim_start_matches("python").to_string(),
            },
            _ => RuntimeKind::Unsupported,
        }
    }
}

/// What this machine offers functions (found by `host.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The host's python3 interpreter (its real path, not a shim), with its version.
    pub python: Option<(PathBuf, String)>,
    /// True when that python can `import awslambdaric`.
    pub awslambdaric: bool,
    /// `PATH` handed to functions (their own programs may need it).
    pub path: String,
}

/// Where the function's SDK sends its calls: the local cloud's AWS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAccess {
    /// `http://127.0.0.1:4566`.
    pub endpoint_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// One function's identity, as Lambda tells its runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionIdentity {
    pub name: String,
    pub arn: String,
    pub region: String,
}

/// How to start a function's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment: nothing of jitpilot's own is inherited (no
    /// real AWS credentials reach a function by accident).
    pub env: BTreeMap<String, String>,
    /// `LAMBDA_TASK_ROOT`, the working directory.
    pub task_root: PathBuf,
    /// Said once in the log when the function starts (e.g. "python3.6
    /// requested, running the host's python 3.11").
    pub note: Option<String>,
}

/// Why a function's code cannot run here, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotRun {
    pub reason: String,
    pub what_to_do: String,
}

impl std::fmt::Display for CannotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.reason, self.what_to_do)
    }
}

/// Decides how `config`'s code in `task_root` starts on this host.
/// `extra_python_path` holds dependencies installed from its `requirements.txt`.
pub fn launch(
    identity: &FunctionIdentity,
    config: &FunctionConfig,
    task_root: &Path,
    extra_python_path: Option<&Path>,
    host: &HostFacts,
    api: Option<&ApiAccess>,
    runtime_api: &str,
) -> Result<LaunchPlan, CannotRun> {
    let mut env = environment(identity, config, task_root, host, api, runtime_api);
    let (program, args, note) = match RuntimeKind::of(&config.runtime) {
        RuntimeKind::Provided => {
            let bootstrap = task_root.join("bootstrap");
            if !bootstrap.is_file() {
                return Err(CannotRun {
                    reason: format!("{} has no `bootstrap` at the package's top level", config.runtime),
                    what_to_do: "put the executable named `bootstrap` at the zip's root (scripts/package-lambda does)".into(),
                });
            }
            if !super::package::is_executable(&bootstrap) {
                return Err(CannotRun {
                    reason: "the package's `bootstrap` is not executable".into(),
                    what_to_do: "zip it with its executable bit (chmod 755, zip on Linux or macOS; scripts/package-lambda does)".into(),
                });
            }
            (bootstrap, Vec::new(), None)
        }
        RuntimeKind::Python { version } => {
            let Some((python, host_version)) = &host.python else {
                return Err(CannotRun {
                    reason: format!("{} needs python3, and this machine has none on PATH", config.runtime),
                    what_to_do: "install python3 (3.9 or newer) and restart jitpilot".into(),
                });
            };
            if !host.awslambdaric {
                return Err(CannotRun {
                    reason: format!("{} runs under awslambdaric, which {} cannot import", config.runtime, python.display()),
                    what_to_do: "run `python3 -m pip install awslambdaric` and invoke again".into(),
                });
            }
            if !config.handler.contains('.') {
                return Err(CannotRun {
                    reason: format!("handler {:?} is not `module.function`", config.handler),
                    what_to_do: "set the function's Handler to e.g. `lambda_function.lambda_handler`".into(),
                });
            }
            let mut path = task_root.display().to_string();
            if let Some(deps) = extra_python_path {
                path = format!("{path}:{}", deps.display());
            }
            env.insert("PYTHONPATH".into(), path);
            env.insert("PYTHONUNBUFFERED".into(), "1".into());
            let note = (*host_version != version).then(|| {
                format!("{} requested; running the host's python {host_version}", config.runtime)
            });
            let args = vec!["-m".into(), "awslambdaric".into(), config.handler.clone()];
            (python.clone(), args, note)
        }
        RuntimeKind::Unsupported => {
            return Err(CannotRun {
                reason: format!("runtime {} is not one jitpilot runs locally (provided.al2023, provided.al2, python3.x)", config.runtime),
                what_to_do: "deploy it to AWS, or rebuild it for provided.al2023 or python3".into(),
            })
        }
    };
    Ok(LaunchPlan {
        program,
        args,
        env,
        task_root: task_root.to_path_buf(),
        note,
    })
}

/// The function's environment, as Lambda sets it: the template's
/// variables, then Lambda's reserved ones (which a template cannot
/// override), then the SDK pointed at the local cloud's AWS API.
pub fn environment(
    identity: &FunctionIdentity,
    config: &FunctionConfig,
    task_root: &Path,
    host: &HostFacts,
    api: Option<&ApiAccess>,
    runtime_api: &str,
) -> BTreeMap<String, String> {
    let mut env = config.environment.clone();
    let root = task_root.display().to_string();
    let reserved = [
        ("AWS_REGION", identity.region.clone()),
        ("AWS_DEFAULT_REGION", identity.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", identity.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", identity.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "jitpilot.log".into()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", config.runtime),
        ),
        ("_HANDLER", config.handler.clone()),
        ("LAMBDA_TASK_ROOT", root.clone()),
        ("LAMBDA_RUNTIME_DIR", root),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", host.path.clone()),
    ];
    for (k, v) in reserved {
        env.insert(k.to_string(), v);
    }
    if let Some(api) = api {
        env.insert("AWS_ENDPOINT_URL".into(), api.endpoint_url.clone());
        env.insert("AWS_ACCESS_KEY_ID".into(), api.access_key_id.clone());
        env.insert(
            "AWS_SECRET_ACCESS_KEY".into(),
            api.secret_access_key.clone(),
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity() -> FunctionIdentity {
        FunctionIdentity {
            name: "CertRotation-cert-rotation".into(),
            arn: "arn:aws:lambda:us-east-1:123456789012:function:CertRotation-cert-rotation".into(),
            region: "us-east-1".into(),
        }
    }

    fn host() -> HostFacts {
        HostFacts {
            python: Some(("/usr/bin/python3.11".into(), "3.11".into())),
            awslambdaric: true,
            path: "/usr/bin:/bin".into(),
        }
    }

    #[test]
    fn the_templates_properties_become_the_config() {
        let props = json!({
            "Runtime": "python3.6", "Handler": "cert_rotation_lambda.cert_rotation_lambda",
            "Timeout": "5", "MemorySize": 128,
            "Environment": {"Variables": {"CsrKeyReuse": "warn", "N": 3}}
        });
        let config = FunctionConfig::from_properties(&props).unwrap();
        assert_eq!(config.timeout(), Duration::from_secs(5));
        assert_eq!(config.environment["CsrKeyReuse"], "warn");
        assert_eq!(config.environment["N"], "3");
        let config = FunctionConfig::from_properties(
            &json!({"Runtime": "provided.al2023", "Handler": "bootstrap"}),
        )
        .unwrap();
        assert_eq!(config.timeout_secs, DEFAULT_TIMEOUT_SECS);
        let err = FunctionConfig::from_properties(
            &json!({"Runtime": "python3.12", "Handler": "a.b", "Timeout": "soon"}),
        )
        .unwrap_err();
        assert!(err.contains("Timeout"), "{err}");
        assert!(FunctionConfig::from_properties(&json!({"Handler": "a.b"})).is_err());
    }

    #[test]
    fn python_runs_under_awslambdaric_with_the_package_on_its_path() {
        let config = FunctionConfig {
            runtime: "python3.6".into(),
            handler: "app.handler".into(),
            timeout_secs: 5,
            memory_mb: 128,
            environment: BTreeMap::from([
                ("TABLE".into(), "CertRotationDevices".into()),
                ("AWS_REGION".into(), "eu-west-1".into()),
            ]),
        };
        let api = ApiAccess {
            endpoint_url: "http://127.0.0.1:4566".into(),
            access_key_id: "AKIDLOCAL".into(),
            secret_access_key: "secret".into(),
        };
        let plan = launch(
            &identity(),
            &config,
            Path::new("/pkg"),
            Some(Path::new("/deps")),
            &host(),
            Some(&api),
            "127.0.0.1:9001",
        )
        .unwrap();
        assert_eq!(plan.program, PathBuf::from("/usr/bin/python3.11"));
        assert_eq!(plan.args, ["-m", "awslambdaric", "app.handler"]);
        assert_eq!(plan.env["PYTHONPATH"], "/pkg:/deps");
        assert_eq!(plan.env["TABLE"], "CertRotationDevices");
        // Reserved variables win over the template's, as on Lambda.
        assert_eq!(plan.env["AWS_REGION"], "us-east-1");
        assert_eq!(plan.env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
        assert_eq!(plan.env["_HANDLER"], "app.handler");
        assert_eq!(plan.env["LAMBDA_TASK_ROOT"], "/pkg");
        assert_eq!(plan.env["AWS_ENDPOINT_URL"], "http://127.0.0.1:4566");
        assert_eq!(plan.env["AWS_ACCESS_KEY_ID"], "AKIDLOCAL");
        assert!(plan.note.as_deref().unwrap().contains("python 3.11"));
    }

    #[test]
    fn what_cannot_run_says_what_to_do() {
        let mut config = FunctionConfig {
            runtime: "nodejs20.x".into(),
            handler: "index.handler".into(),
            timeout_secs: 3,
            memory_mb: 128,
            environment: BTreeMap::new(),
        };
        let run = |config: &FunctionConfig, host: &HostFacts| {
            launch(
                &identity(),
                config,
                Path::new("/nonexistent"),
                None,
                host,
                None,
                "127.0.0.1:1",
            )
        };
        assert!(run(&config, &host())
            .unwrap_err()
            .reason
            .contains("nodejs20.x"));
        config.runtime = "python3.12".into();
        let no_ric = HostFacts {
            awslambdaric: false,
            ..host()
        };
        assert!(run(&config, &no_ric)
            .unwrap_err()
            .what_to_do
            .contains("pip install awslambdaric"));
        let no_python = HostFacts {
            python: None,
            ..host()
        };
        assert!(run(&config, &no_python)
            .unwrap_err()
            .what_to_do
            .contains("install python3"));
        config.runtime = "provided.al2023".into();
        config.handler = "bootstrap".into();
        assert!(run(&config, &host())
            .unwrap_err()
            .reason
            .contains("no `bootstrap`"));
    }
}
