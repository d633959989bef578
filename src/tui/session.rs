//! The session: the cloud the TUI drives and the devices it runs, opened
//! before the first frame and shut down after the last.
//!
//! On the local backend this opens the data dir (taking its lock), starts
//! the embedded cloud's endpoint on `--mqtt-addr`, and runs devices
//! in-process with the device agent. Every failure comes back as words for
//! the screen: the TUI shows them with what to do instead of crashing.

use super::app::Header;
use super::worker::DeviceRunner;
use crate::cli::GlobalArgs;
use crate::cloud::Cloud;
use std::sync::Arc;

/// Something to shut down cleanly on quit (the running endpoint).
#[async_trait::async_trait]
pub trait Shutdown: Send {
    /// Closes sessions, flushes the store, removes the endpoint address file.
    async fn shutdown(self: Box<Self>);
}

/// What the TUI runs on.
pub struct Session {
    pub cloud: Arc<dyn Cloud>,
    pub devices: Arc<dyn DeviceRunner>,
    pub header: Header,
    /// The running cloud, shut down on quit.
    pub running: Option<Box<dyn Shutdown>>,
}

/// Opens the session for `global`, or explains why it cannot.
pub async fn open(global: &GlobalArgs) -> Result<Session, String> {
    match global.backend {
        crate::cli::Backend::Aws => Err(
            "The AWS backend is not available in the TUI yet. Run jitpilot without --backend aws to use the embedded local cloud."
                .into(),
        ),
        crate::cli::Backend::Local => open_local(global).await,
    }
}

async fn open_local(global: &GlobalArgs) -> Result<Session, String> {
    let _ = global;
    Err("This build of jitpilot has no embedded local cloud wired into the TUI yet \
         (LocalCloud and the endpoint runtime are missing). Use the headless commands, \
         or rebuild from a tree where the local cloud is merged."
        .into())
}
