//! `jitpilot serve`: the local cloud headless — the MQTT endpoint, the AWS
//! API, the topic rules and the rotation function — until Ctrl-C or SIGTERM.

use super::GlobalArgs;
use crate::cloud::{Backend, Connected};
use color_eyre::eyre::{eyre, WrapErr};

/// What `serve --json` prints once listening.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Serving {
    /// `host:port` devices connect to.
    endpoint: String,
    /// The name to verify in the server certificate (SNI).
    server_name: String,
    data_dir: std::path::PathBuf,
    /// The CA devices trust for the endpoint.
    endpoint_ca: std::path::PathBuf,
    /// `http://host:port` of the AWS API (`null` with `--api-addr off`).
    api_endpoint: Option<String>,
    pid: u32,
}

/// Runs `jitpilot serve`.
pub async fn run(global: &GlobalArgs) -> color_eyre::Result<()> {
    let data_dir = global.data_dir();
    let _log = crate::logging::init_file_logging_with_stderr_warnings(&data_dir);
    // `serve` is the local cloud, whatever `--backend` says.
    let mut options = global.cloud_options();
    options.backend = Backend::Local;
    let running = Connected::for_cockpit(&options, &global.serve())
        .await
        .wrap_err_with(|| format!("cannot serve the local cloud in {}", data_dir.display()))?;
    let endpoint = running
        .device_endpoint()
        .ok_or_else(|| eyre!("the local cloud started no MQTT endpoint"))?;
    let serving = Serving {
        endpoint: endpoint.local_addr.map_or(endpoint.addr, |a| a.to_string()),
        server_name: endpoint.server_name,
        data_dir: data_dir.clone(),
        endpoint_ca: endpoint.root_ca_path,
        api_endpoint: running
            .api_addr()
            .map(|a| super::env::endpoint_url(&a.to_string())),
        pid: std::process::id(),
    };
    if global.json {
        // One line: scripts can read the document as soon as it is printed.
        println!("{}", serde_json::to_string(&serving)?);
    } else {
        println!("jitpilot local cloud serving");
        println!(
            "  MQTT endpoint  mqtts://{} (server name {})",
            serving.endpoint, serving.server_name
        );
        println!("  endpoint CA    {}", serving.endpoint_ca.display());
        match &serving.api_endpoint {
            Some(url) => println!(
                "  AWS API        {url} (`eval \"$(jitpilot env)\"` points the aws CLI and boto3 at it)"
            ),
            None => println!("  AWS API        off"),
        }
        println!("  data dir       {}", serving.data_dir.display());
        println!("Ctrl-C to stop.");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    wait_for_signal().await;
    eprintln!("shutting down: closing sessions");
    running.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
