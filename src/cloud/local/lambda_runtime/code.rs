//! The data dir's function code: what a function runs when it runs its
//! own code instead of a built-in.
//!
//! `<data-dir>/lambda/<FunctionName>/`:
//! - `function.json` — its [`FunctionConfig`] and the code's revision
//! - `code/`         — the unpacked package (`LAMBDA_TASK_ROOT`)
//! - `deps/`         — what its `requirements.txt` installed (python), once
//! - `deps.failed`   — why that install failed (tried once per revision)
//! - `source`        — where the code came from (`api:<last_modified>` for an API upload)
//!
//! Whoever receives code writes it here: `jitpilot deploy --function-code`,
//! the AWS API's Lambda `CreateFunction`/`UpdateFunctionCode`, the stack
//! engine for a template's `Code`. The running cloud reads it at each
//! invocation, so new code takes effect at the next one.

use super::config::FunctionConfig;
use super::package::{self, PackageError, PackageFile};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long installing a function's `requirements.txt` may take.
const PIP_LIMIT: Duration = Duration::from_secs(600);

/// Why code could not be stored or read. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("function name {0:?} is not a Lambda function name (1-64 letters, digits, - and _)")]
    BadName(String),
    #[error("cannot read the function code at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the function code under {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({why}); deploy the function's code again")]
    Damaged { path: PathBuf, why: String },
}

/// A function's stored code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub name: String,
    pub config: FunctionConfig,
    /// SHA-256 of the package and its settings: a changed revision restarts
    /// the warm process.
    pub revision: String,
    /// `<data-dir>/lambda/<name>`.
    pub dir: PathBuf,
}

impl StoredCode {
    /// The unpacked package: the function's `LAMBDA_TASK_ROOT`.
    pub fn task_root(&self) -> PathBuf {
        self.dir.join("code")
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FunctionFile {
    config: FunctionConfig,
    revision: String,
}

/// `<data-dir>/lambda/`.
#[derive(Debug, Clone)]
pub struct CodeStore {
    root: PathBuf,
}

fn check_name(name: &str) -> Result<(), CodeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CodeError::BadName(name.to_string()))
    }
}

impl CodeStore {
    /// The code store of the data dir `data_dir`.
    pub fn new(data_dir: &Path) -> CodeStore {
        CodeStore {
            root: data_dir.join("lambda"),
        }
    }

    fn dir(&self, name: &str) -> Result<PathBuf, CodeError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    /// Stores a deployment package (a zip's bytes) for `name`.
    pub fn put_zip(
        &self,
        name: &str,
        config: &FunctionConfig,
        zip: &[u8],
    ) -> Result<StoredCode, CodeError> {
        let files = package::read_zip(zip)?;
        self.put_files(name, config, &files)
    }

    /// Stores the code at `path`: a `.zip`, a directory (its contents are
    /// the package), or one executable (it becomes the package's `bootstrap`).
    pub fn put_path(
        &self,
        name: &str,
        config: &FunctionConfig,
        path: &Path,
    ) -> Result<StoredCode, CodeError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| CodeError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        if path.is_dir() {
            let mut files = Vec::new();
            collect_dir(path, path, &mut files)?;
            return self.put_files(name, config, &files);
        }
        let bytes = read(path)?;
        if bytes.starts_with(b"PK") {
            return self.put_zip(name, config, &bytes);
        }
        let file = PackageFile {
            path: "bootstrap".into(),
            mode: Some(0o755),
            contents: bytes,
        };
        self.put_files(name, config, &[file])
    }

    fn put_files(
        &self,
        name: &str,
        config: &FunctionConfig,
        files: &[PackageFile],
    ) -> Result<StoredCode, CodeError> {
        let dir = self.dir(name)?;
        let mut digest = Sha256::new();
        for f in files {
            digest.update(f.path.as_bytes());
            digest.update([0]);
            digest.update(&f.contents);
        }
        digest.update(serde_json::to_vec(config).unwrap_or_default());
        let revision = hex::encode(digest.finalize());
        package::unpack(files, &dir.join("code"))?;
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CodeError::Write { path, source }
        };
        // New code: its dependencies are installed anew.
        for stale in ["deps", "deps.failed", "source"] {
            let p = dir.join(stale);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(write_err(&p))?;
            } else if p.exists() {
                std::fs::remove_file(&p).map_err(write_err(&p))?;
            }
        }
        let file = FunctionFile {
            config: config.clone(),
            revision: revision.clone(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| CodeError::Damaged {
            path: dir.clone(),
            why: e.to_string(),
        })?;
        let tmp = dir.join("function.json.tmp");
        std::fs::write(&tmp, text).map_err(write_err(&tmp))?;
        let target = dir.join("function.json");
        std::fs::rename(&tmp, &target).map_err(write_err(&target))?;
        Ok(StoredCode {
            name: name.to_string(),
            config: config.clone(),
            revision,
            dir,
        })
    }

    /// The code stored for `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<StoredCode>, CodeError> {
        let Ok(dir) = self.dir(name) else {
            return Ok(None);
        };
        let path = dir.join("function.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CodeError::Read { path, source }),
        };
        let file: FunctionFile = serde_json::from_slice(&text).map_err(|e| CodeError::Damaged {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Ok(Some(StoredCode {
            name: name.to_string(),
            config: file.config,
            revision: file.revision,
            dir,
        }))
    }

    /// Where `name`'s code came from, as [`CodeStore::set_source`] noted it.
    pub fn source(&self, name: &str) -> Option<String> {
        let dir = self.dir(name).ok()?;
        std::fs::read_to_string(dir.join("source")).ok()
    }

    /// When `name`'s code was last stored (epoch millis).
    pub fn stored_at(&self, name: &str) -> Option<i64> {
        let dir = self.dir(name).ok()?;
        let modified = std::fs::metadata(dir.join("function.json"))
            .ok()?
            .modified()
            .ok()?;
        let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    }

    /// Notes where `name`'s code came from (e.g. the API upload it copies).
    pub fn set_source(&self, name: &str, source: &str) -> Result<(), CodeError> {
        let path = self.dir(name)?.join("source");
        std::fs::write(&path, source).map_err(|e| CodeError::Write { path, source: e })
    }

    /// Forgets `name`'s code (the built-in, if any, runs again). True if
    /// there was some.
    pub fn remove(&self, name: &str) -> Result<bool, CodeError> {
        let dir = self.dir(name)?;
        if !dir.exists() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir).map_err(|source| CodeError::Write { path: dir, source })?;
        Ok(true)
    }
}

fn collect_dir(base: &Path, dir: &Path, out: &mut Vec<PackageFile>) -> Result<(), CodeError> {
    let read_err = |p: &Path| {
        let path = p.to_path_buf();
        move |source| CodeError::Read { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err(&path))?;
        if kind.is_dir() {
            collect_dir(base, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                entry
                    .metadata()
                    .ok()
                    .map(|m| m.permissions().mode() & 0o777)
            };
            #[cfg(not(unix))]
            let mode = None;
            out.push(PackageFile {
                path: rel,
                mode,
                contents: std::fs::read(&path).map_err(read_err(&path))?,
            });
        }
        if out.len() > 65_535 {
            return Err(PackageError::TooLarge.into());
        }
    }
    Ok(())
}

// ---- python dependencies ----------------------------------------------------

/// The requirement names of a `requirements.txt` (comments, options and
/// version pins dropped), normalized as pip compares them.
pub fn requirement_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('-'))
        .filter_map(|l| {
            let end = l
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .unwrap_or(l.len());
            let name = normalize(&l[..end]);
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// True when every requirement is already in the package (a
/// `<name>-<version>.dist-info` directory at its top level, as
/// `pip install --target package/` leaves them).
pub fn bundled(task_root: &Path, requirements: &[String]) -> bool {
    let Ok(entries) = std::fs::read_dir(task_root) else {
        return false;
    };
    let present: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".dist-info")?;
            Some(normalize(stem.split('-').next().unwrap_or(stem)))
        })
        .collect();
    requirements.iter().all(|r| present.contains(r))
}

/// Makes `code`'s python dependencies importable: `None` when there is
/// nothing to add to `PYTHONPATH`, the `deps/` directory once installed.
/// Installs with `pip install --target` once per revision; a failure is
/// remembered (`deps.failed`) and returned, saying what to do.
pub async fn python_dependencies(
    code: &StoredCode,
    python: &Path,
) -> Result<Option<PathBuf>, String> {
    let requirements = code.task_root().join("requirements.txt");
    let Ok(text) = std::fs::read_to_string(&requirements) else {
        return Ok(None);
    };
    let names = requirement_names(&text);
    if names.is_empty() || bundled(&code.task_root(), &names) {
        return Ok(None);
    }
    let deps = code.dir.join("deps");
    let failed = code.dir.join("deps.failed");
    if let Ok(why) = std::fs::read_to_string(&failed) {
        return Err(why);
    }
    if deps.join(".installed").exists() {
        return Ok(Some(deps));
    }
    tracing::info!(function = %code.name, requirements = ?names, "installing the function's requirements.txt with pip");
    let run = tokio::process::Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
        ])
        .arg(&deps)
        .arg("-r")
        .arg(&requirements)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let why = match tokio::time::timeout(PIP_LIMIT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let _ = std::fs::write(deps.join(".installed"), "");
            return Ok(Some(deps));
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "pip could not install its requirements.txt ({}): {}; bundle the dependencies in the zip built for this python, or change requirements.txt, then deploy the code again",
                names.join(", "),
                tail.join(" | ")
            )
        }
        Ok(Err(e)) => format!(
            "pip did not run ({e}); install pip for {} or bundle the dependencies in the zip",
            python.display()
        ),
        Err(_) => format!(
            "pip did not finish within {} s; bundle the dependencies in the zip",
            PIP_LIMIT.as_secs()
        ),
    };
    let _ = std::fs::write(&failed, &why);
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config() -> FunctionConfig {
        FunctionConfig {
            runtime: "python3.12".into(),
            handler: "app.handler".into(),
            timeout_secs: 3,
            memory_mb: 128,
            environment: BTreeMap::new(),
        }
    }

    #[test]
    fn code_is_stored_read_back_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::new(dir.path());
        assert_eq!(store.get("f").unwrap(), None);
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("pkg")).unwrap();
        std::fs::write(src.join("app.py"), "def handler(e, c): return e\n").unwrap();
        std::fs::write(src.join("pkg/__init__.py"), "").unwrap();
        let first = store.put_path("f", &config(), &src).unwrap();
        assert_eq!(store.get("f").unwrap(), Some(first.clone()));
        assert!(first.task_root().join("pkg/__init__.py").is_file());
        std::fs::write(src.join("app.py"), "def handler(e, c): return 1\n").unwrap();
        let second = store.put_path("f", &config(), &src).unwrap();
        assert_ne!(first.revision, second.revision);
        assert!(store.remove("f").unwrap());
        assert_eq!(store.get("f").unwrap(), None);
        assert!(matches!(
            store.put_path("../x", &config(), &src),
            Err(CodeError::BadName(_))
        ));
    }

    #[test]
    fn a_single_executable_becomes_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("my-binary");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let store = CodeStore::new(dir.path());
        let code = store.put_path("fn_1", &config(), &exe).unwrap();
        assert!(package::is_executable(&code.task_root().join("bootstrap")));
    }

    #[test]
    fn requirements_are_read_as_pip_names_them() {
        let text = "cffi==1.14.0\n# a comment\ncryptography>=3.2  # pinned\n-r other.txt\npyOpenSSL[extra]~=19.1\nsix\n\n";
        assert_eq!(
            requirement_names(text),
            ["cffi", "cryptography", "pyopenssl", "six"]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pyOpenSSL-19.1.0.dist-info")).unwrap();
        std::fs::create_dir(dir.path().join("six-1.14.0.dist-info")).unwrap();
        assert!(bundled(dir.path(), &requirement_names("pyopenssl\nsix")));
        assert!(!bundled(dir.path(), &requirement_names("pyopenssl\ncffi")));
    }
}
