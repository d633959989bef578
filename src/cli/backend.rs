//! Picking the cloud a headless command runs on: `--backend local` (the
//! embedded local cloud, the default) or `--backend aws` ([`AwsCloud`] over
//! the account's credentials, `--region`, `--endpoint-url`).

use super::{Backend, GlobalArgs};
use crate::cloud::aws::{AwsCloud, AwsOptions};
use crate::cloud::{Cloud, EventBus};
use color_eyre::eyre::eyre;

/// Opens the cloud `--backend` names. The local cloud takes the data dir's
/// lock for writing; the AWS backend keeps only device credentials, the
/// observer identity and the endpoint name in the data dir.
pub async fn open_cloud(global: &GlobalArgs, bus: EventBus) -> color_eyre::Result<Box<dyn Cloud>> {
    match global.backend {
        Backend::Local => Ok(Box::new(super::deploy::open_local_cloud(global, bus)?)),
        Backend::Aws => Ok(Box::new(open_aws(global, bus).await?)),
    }
}

/// Opens the AWS backend with the global options.
pub async fn open_aws(global: &GlobalArgs, bus: EventBus) -> color_eyre::Result<AwsCloud> {
    let mut options = AwsOptions::new(
        global.data_dir(),
        global.region.clone(),
        global.endpoint_url.clone(),
    );
    options.iot_endpoint = global.iot_endpoint.clone();
    options.iot_root_ca = global.iot_root_ca.clone();
    AwsCloud::connect(options, bus)
        .await
        .map_err(|e| eyre!("{e}"))
}
