//! What this machine offers a function: the host's python3 and whether it
//! has `awslambdaric`, and where the local cloud's AWS API listens with
//! which access key (the files the API writes into the data dir).

use super::config::{ApiAccess, HostFacts};
use std::path::Path;

/// Written by the running AWS API: its address (`127.0.0.1:4566`).
pub const API_ADDR_FILE: &str = "api.addr";
/// Written by the AWS API on first start (0600): the data dir's access key.
pub const API_CREDENTIALS_FILE: &str = "api-credentials.json";

/// Asks the host's `python3` for its real executable (not a pyenv or
/// asdf shim: the function gets no shell environment), its version, and
/// whether it can import awslambdaric.
pub async fn probe(path: &str) -> HostFacts {
    let script = "import sys\nprint(sys.executable)\nprint('%d.%d' % sys.version_info[:2])\ntry:\n    import awslambdaric\n    print('ric')\nexcept Exception:\n    print('no-ric')\n";
    let out = tokio::process::Command::new("python3")
        .args(["-c", script])
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out).await;
    let mut facts = HostFacts {
        path: path.to_string(),
        ..HostFacts::default()
    };
    if let Ok(Ok(out)) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        if let [exe, version, ric, ..] = lines.as_slice() {
            if out.status.success() && !exe.is_empty() {
                facts.python = Some((exe.into(), version.to_string()));
                facts.awslambdaric = *ric == "ric";
            }
        }
    }
    facts
}

/// The local AWS API's URL and access key, when the running cloud has
/// written them into `data_dir`; `None` before the API has started (the
/// function then runs without SDK access, and says so in the log).
pub fn api_access(data_dir: &Path) -> Option<ApiAccess> {
    let addr = std::fs::read_to_string(data_dir.join(API_ADDR_FILE)).ok()?;
    let addr = addr.trim();
    if addr.is_empty() {
        return None;
    }
    let text = std::fs::read(data_dir.join(API_CREDENTIALS_FILE)).ok()?;
    let creds: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| creds.get(*n).and_then(|v| v.as_str()))
            .map(str::to_string)
    };
    let endpoint_url = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Some(ApiAccess {
        endpoint_url,
        access_key_id: field(&[
            "accessKeyId",
            "access_key_id",
            "AccessKeyId",
            "aws_access_key_id",
        ])?,
        secret_access_key: field(&[
            "secretAccessKey",
            "secret_access_key",
            "SecretAccessKey",
            "aws_secret_access_key",
        ])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apis_files_give_the_sdk_its_endpoint_and_key() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(api_access(dir.path()), None);
        std::fs::write(dir.path().join(API_ADDR_FILE), "127.0.0.1:4566\n").unwrap();
        assert_eq!(api_access(dir.path()), None, "no credentials yet");
        std::fs::write(
            dir.path().join(API_CREDENTIALS_FILE),
            r#"{"accessKeyId": "AKIALOCAL", "secretAccessKey": "s3cr3t"}"#,
        )
        .unwrap();
        let access = api_access(dir.path()).unwrap();
        assert_eq!(access.endpoint_url, "http://127.0.0.1:4566");
        assert_eq!(access.access_key_id, "AKIALOCAL");
        assert_eq!(access.secret_access_key, "s3cr3t");
    }

    #[tokio::test]
    async fn the_host_python_is_found_by_its_real_path() {
        let facts = probe(&std::env::var("PATH").unwrap_or_default()).await;
        // python3 is a test dependency of this repository (scripts/test).
        let (exe, version) = facts.python.expect("python3 on PATH");
        assert!(exe.is_absolute(), "{exe:?}");
        assert!(version.starts_with("3."), "{version}");
    }
}
