//! `jitpilot env`: the shell exports that point the aws CLI, boto3 and any
//! AWS SDK at the running local cloud's AWS API, with the data dir's own
//! access key — so `eval "$(jitpilot env)"` is all they need.
//!
//! Read from the data dir beside the running cloud (no lock taken):
//! `api.addr` (written while `serve` or the TUI runs) and the access key
//! file. botocore reads only `AWS_DEFAULT_REGION`, the others
//! `AWS_REGION`: both are set.
//!
//! `JITPILOT_IOT_ROOT_CA` names the local MQTT endpoint's CA
//! (`<data-dir>/endpoint-ca.pem`), the way `AWS_CA_BUNDLE` names a CA for
//! HTTPS: jitpilot's own `--backend aws` then trusts it beside Amazon's roots
//! in the device folders and the observer identity `init` writes, so devices
//! dial what `DescribeEndpoint` answers and verify it.

use super::GlobalArgs;
use crate::cloud::open::local_api;
use crate::datadir::DataDir;
use color_eyre::eyre::eyre;

/// The variable `--iot-root-ca` reads: the local MQTT endpoint's CA.
pub const IOT_ROOT_CA_VAR: &str = "JITPILOT_IOT_ROOT_CA";

/// What `env --json` prints.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Exports {
    endpoint_url: String,
    access_key_id: String,
    secret_access_key: String,
    region: &'static str,
    /// The local MQTT endpoint's CA (absolute path), for `--iot-root-ca`.
    #[serde(skip_serializing_if = "Option::is_none")]
    iot_root_ca: Option<String>,
}

/// `http://host:port` for an API bound to `addr` (an unspecified address
/// such as `0.0.0.0` is reached on loopback).
pub fn endpoint_url(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let host = if a.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("http://{host}:{}", a.port())
        }
        _ => format!("http://{addr}"),
    }
}

/// Runs `jitpilot env`.
pub fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let data_dir = DataDir::new(global.data_dir());
    let addr = data_dir.read_api_addr().ok_or_else(|| {
        eyre!(
            "no local cloud serves the AWS API for the data dir {}: start one with `jitpilot serve` (or the TUI) in another terminal, without `--api-addr off`, or pass the --data-dir it uses",
            data_dir.root().display()
        )
    })?;
    let keys = local_api::load_keys(&data_dir)?.ok_or_else(|| {
        eyre!(
            "the data dir {} has no AWS API access key yet ({} is missing): start the cloud with `jitpilot serve` to make one",
            data_dir.root().display(),
            local_api::CREDENTIALS_FILE
        )
    })?;
    let endpoint_ca = std::path::absolute(data_dir.endpoint_ca_path())?;
    let exports = Exports {
        endpoint_url: endpoint_url(&addr),
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
        region: local_api::REGION,
        iot_root_ca: endpoint_ca
            .is_file()
            .then(|| endpoint_ca.display().to_string()),
    };
    if global.json {
        return super::print_json(&exports);
    }
    let iot_root_ca = exports
        .iot_root_ca
        .as_deref()
        .map(|path| format!(" {IOT_ROOT_CA_VAR}={}", shell_quote(path)))
        .unwrap_or_default();
    println!(
        "export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION={} AWS_DEFAULT_REGION={}{iot_root_ca}",
        shell_quote(&exports.endpoint_url),
        shell_quote(&exports.access_key_id),
        shell_quote(&exports.secret_access_key),
        exports.region,
        exports.region,
    );
    Ok(())
}

/// `'text'`, safe for any shell that `eval`s it.
fn shell_quote(text: &str) -> String {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/+:._-=".contains(&b))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        assert_eq!(endpoint_url("0.0.0.0:4566"), "http://127.0.0.1:4566");
        assert_eq!(endpoint_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(endpoint_url("[::]:4566"), "http://[::1]:4566");
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("AKIA+/x"), "AKIA+/x");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}
