//! iot-data: `Publish` (`POST /topics/{topic}?qos=1`) — a message published
//! as the cloud on the local MQTT endpoint: delivered to the subscribers
//! whose policy lets them receive it, and matched by the topic rules, as
//! AWS IoT's data plane does. Signing name `iotdata`.

use super::{ApiContext, ApiError, ApiRequest, ApiResponse, ApiResult, Service};
use crate::cloud::local::topic;

/// The `iotdata` service.
pub struct IotData;

/// The topic of `POST /topics/{topic}`: the rest of the path, percent-decoded
/// (SDKs encode `/` in the topic as `%2F`; a literal `/` is taken as is).
fn topic_of(request: &ApiRequest) -> Option<String> {
    let rest = request.path.strip_prefix("/topics/")?;
    if rest.is_empty() {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(rest)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Every operation this service answers.
pub const OPERATIONS: &[&str] = &["Publish"];

#[async_trait::async_trait]
impl Service for IotData {
    fn operation(&self, request: &ApiRequest) -> Result<&'static str, ApiError> {
        if request.method == http::Method::POST && topic_of(request).is_some() {
            return Ok("Publish");
        }
        Err(ApiError::unknown_operation(
            "iot-data",
            &format!("{} {}", request.method, request.path),
        ))
    }

    async fn call(
        &self,
        ctx: &ApiContext,
        operation: &'static str,
        request: ApiRequest,
    ) -> ApiResult {
        match operation {
            "Publish" => publish(ctx, &request),
            other => Err(ApiError::unknown_operation("iot-data", other)),
        }
    }
}

fn publish(ctx: &ApiContext, request: &ApiRequest) -> ApiResult {
    let topic = topic_of(request).ok_or_else(|| ApiError::missing("topic"))?;
    topic::validate_topic_name(&topic)
        .map_err(|e| ApiError::invalid_request(format!("topic {topic:?}: {e}")))?;
    match request.query_param("qos").unwrap_or("0") {
        "0" | "1" => {}
        other => {
            return Err(ApiError::invalid_request(format!(
                "qos {other:?}: AWS IoT publishes at QoS 0 or 1"
            )))
        }
    }
    if request
        .query_param("retain")
        .is_some_and(|r| r.eq_ignore_ascii_case("true"))
    {
        return Err(ApiError::invalid_request(
            "retain=true is not supported by jitpilot's local cloud; publish without retain",
        ));
    }
    let publisher = ctx.publisher.as_ref().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailableException",
            "the local MQTT endpoint is not running; start the cloud with `jitpilot serve` or the TUI",
        )
    })?;
    publisher.publish(&topic, request.body.to_vec());
    Ok(ApiResponse::empty(200))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, query: &[(&str, &str)]) -> ApiRequest {
        ApiRequest {
            service: "iotdata".into(),
            method: http::Method::POST,
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn the_topic_is_the_decoded_rest_of_the_path() {
        let r = post("/topics/%2Fcert-rotation%2Fack-man-cert%2FS1%2Frqst", &[]);
        assert_eq!(IotData.operation(&r), Ok("Publish"));
        assert_eq!(
            topic_of(&r).as_deref(),
            Some("/cert-rotation/ack-man-cert/S1/rqst")
        );
        assert_eq!(topic_of(&post("/topics/a/b", &[])).as_deref(), Some("a/b"));
        assert!(IotData.operation(&post("/topics/", &[])).is_err());
        assert!(IotData.operation(&post("/things", &[])).is_err());
    }
}
