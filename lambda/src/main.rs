//! `bootstrap`: jitpilot's rotation function on AWS Lambda's
//! `provided.al2023` runtime. The IoT rules `rule_jitp`,
//! `rule_create_man_cert` and `rule_ack_man_cert` invoke it with their SQL
//! output; [`RotationLambda`] does the rest. Built and zipped by
//! `scripts/package-lambda`.

use jitpilot_aws_function::lambda::RotationLambda;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // One JSON line per log record: CloudWatch Logs Insights can query them.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .init();
    // Cold start: clients and the data endpoint once per container.
    let function = RotationLambda::from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.handle(event.payload).await.map_err(Error::from) }
    }))
    .await
}
