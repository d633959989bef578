//! Shared helpers of the AWS API tests: `jitpilot env` of a running
//! `serve`, raw HTTP/1.1 over a TCP socket (to send what no SDK would), a
//! SigV4 signer for those raw requests (aws-sigv4, as the Rust SDK signs),
//! and running the Python (boto3) scripts of `tests/py/` with the exports.
//!
//! Use beside [`super::endpoint`] (which starts `serve` with `--api-addr
//! 127.0.0.1:0` and reads its `apiEndpoint`).

use super::Bounded;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// What `jitpilot env --json` prints.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keys {
    pub endpoint_url: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// `JITPILOT_IOT_ROOT_CA`: the MQTT endpoint's CA.
    #[serde(default)]
    pub iot_root_ca: Option<String>,
}

impl Keys {
    /// The same endpoint with another key (for refusals).
    pub fn with(&self, access_key_id: &str, secret_access_key: &str) -> Keys {
        Keys {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            ..self.clone()
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.endpoint_url.trim_start_matches("http://")
    }

    /// What `eval "$(jitpilot env)"` exports for the AWS SDKs and CLI.
    pub fn exports(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint_url.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
        ]
    }

    /// `command` with only these exports for AWS: no profile, session
    /// token, config or credentials file of the machine's user
    /// (`home/no-config`, `home/no-credentials` do not exist).
    pub fn isolate(&self, command: &mut Command, home: &Path) {
        command
            .envs(self.exports())
            .env("AWS_CONFIG_FILE", home.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }
}

/// The aws CLI (from PyPI) with only the exports of `keys` (see
/// [`Keys::isolate`]), run in `home` to its end.
pub fn aws(keys: &Keys, home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("aws");
    command.args(args).current_dir(home);
    keys.isolate(&mut command, home);
    command
        .bounded_output()
        .expect("run the aws CLI (scripts/test installs it from PyPI)")
}

/// `aws cloudformation delete-stack`, then `wait stack-delete-complete`
/// (as the sample's `delete_cf.bash`); both must succeed.
pub fn delete_stack(keys: &Keys, home: &Path, stack: &str) {
    let delete = ["cloudformation", "delete-stack", "--stack-name", stack];
    ok(aws(keys, home, &delete), "delete-stack");
    let wait = [
        "cloudformation",
        "wait",
        "stack-delete-complete",
        "--stack-name",
        stack,
    ];
    ok(aws(keys, home, &wait), "wait stack-delete-complete");
}

/// The stdout of a command that must have succeeded (`what` names it).
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `text` as JSON; panics showing it.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `jitpilot env --json` for the cloud serving `data_dir`.
pub fn env_keys(data_dir: &Path) -> Keys {
    let out = jitpilot(data_dir, &["env", "--json"]);
    assert!(
        out.status.success(),
        "jitpilot env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("env --json is JSON")
}

/// Runs the jitpilot binary on `data_dir`.
pub fn jitpilot(data_dir: &Path, args: &[&str]) -> Output {
    super::jitpilot_on(data_dir, args)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Writes `bytes` to `addr`, half-closes, and reads the answer to EOF.
pub fn raw(addr: &str, bytes: &[u8]) -> Reply {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect to the API");
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // The peer may answer (and close) before it has read everything: a
    // failed write is then expected, the answer is what counts.
    let _ = tcp.write_all(bytes);
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    parse_reply(&answer)
}

fn parse_reply(answer: &[u8]) -> Reply {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = answer[split + 4..].to_vec();
    if let Some(n) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(n);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// An HTTP/1.1 request as bytes, `Connection: close`.
pub fn request_bytes(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("host") {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The headers SigV4 adds for `keys` at `time` (`authorization`, `x-amz-date`),
/// signing `headers`, the host and the body, as the AWS SDK for Rust does.
pub fn sign(
    keys: &Keys,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        None,
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&keys.region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", keys.addr())];
    all.extend_from_slice(headers);
    let request = SignableRequest::new(
        method,
        format!("{}{path}", keys.endpoint_url),
        all.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(request, &params).expect("sign").into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    out
}

/// A signed request, sent; its answer.
pub fn signed(
    keys: &Keys,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    signed_at(
        keys,
        service,
        method,
        path,
        headers,
        body,
        SystemTime::now(),
    )
}

/// [`signed`] as of `time`.
pub fn signed_at(
    keys: &Keys,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Reply {
    let all = sign(keys, service, method, path, headers, body, time);
    raw(
        keys.addr(),
        &request_bytes(keys.addr(), method, path, &all, body),
    )
}

/// Runs `tests/py/<script>` with the exports of `keys` in its environment.
pub fn python(script: &str, keys: &Keys, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .envs(keys.exports())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .bounded_output()
        .expect("run python3 (scripts/test installs boto3)");
    assert!(
        out.status.success(),
        "{script} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
