//! The TUI's API rows: one [`EventKind::Api`] event per request, with the
//! request and the answer for the detail view — secrets redacted.
//!
//! What never reaches the event stream: the `Authorization` header's
//! signature, a `SecretAccessKey`, a private key PEM, and the value of an
//! SSM SecureString (PutParameter's `Value` when `Type` is SecureString,
//! GetParameter(s)'s `Value`s when asked `WithDecryption`).

use crate::cloud::events::{CloudEvent, EventKind};
use serde_json::{json, Value};

/// How much of a body the detail view keeps (the rest is counted).
const MAX_BODY_SHOWN: usize = 16 * 1024;

/// What the server knows of one answered request.
pub struct ApiCall<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub request_body: &'a [u8],
    pub status: u16,
    pub response_body: &'a [u8],
    pub millis: u64,
    pub request_id: &'a str,
}

/// The traffic pane's row for `call`: `API  iot:RegisterCACertificate  200  3 ms`.
pub fn event(call: &ApiCall<'_>) -> CloudEvent {
    let secure = is_secure_string_call(call.operation, call.request_body);
    let mut request_headers = serde_json::Map::new();
    for (name, value) in call.headers {
        let shown = if *name == http::header::AUTHORIZATION {
            redact_authorization(value.to_str().unwrap_or(""))
        } else if name.as_str() == "x-amz-security-token" {
            "<redacted>".to_string()
        } else {
            value.to_str().unwrap_or("<binary>").to_string()
        };
        request_headers.insert(name.as_str().to_string(), Value::String(shown));
    }
    let summary = format!(
        "{}:{}  {}  {} ms",
        call.service, call.operation, call.status, call.millis
    );
    CloudEvent::new(
        EventKind::Api {
            service: call.service.to_string(),
            operation: call.operation.to_string(),
            status: call.status,
            millis: call.millis,
        },
        summary,
    )
    .detail(json!({
        "requestId": call.request_id,
        "request": {
            "method": call.method,
            "path": call.path,
            "headers": request_headers,
            "body": shown_body(call.request_body, secure),
        },
        "response": {
            "status": call.status,
            "body": shown_body(call.response_body, secure),
        },
    }))
}

/// `Credential=AKIA…/…, SignedHeaders=…, Signature=<redacted>`.
fn redact_authorization(value: &str) -> String {
    match value.find("Signature=") {
        Some(at) => format!("{}Signature=<redacted>", &value[..at]),
        None => "<redacted>".to_string(),
    }
}

/// True for SSM calls whose `Value`s are SecureString plaintext.
fn is_secure_string_call(operation: &str, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match operation {
        "PutParameter" => v["Type"] == "SecureString",
        "GetParameter" | "GetParameters" | "GetParametersByPath" => {
            v["WithDecryption"] == Value::Bool(true)
        }
        _ => false,
    }
}

/// A body as the detail view shows it: JSON (redacted), else text
/// (redacted), else its size.
fn shown_body(body: &[u8], secure: bool) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        redact_json(&mut v, secure);
        return v;
    }
    match std::str::from_utf8(body) {
        Ok(text) => {
            let mut text = redact_text(text);
            if text.len() > MAX_BODY_SHOWN {
                let mut cut = MAX_BODY_SHOWN;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str(&format!(" … ({} bytes in all)", body.len()));
            }
            Value::String(text)
        }
        Err(_) => Value::String(format!("<{} bytes of binary>", body.len())),
    }
}

fn redact_json(value: &mut Value, secure: bool) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let secret = key.eq_ignore_ascii_case("SecretAccessKey")
                    || key.eq_ignore_ascii_case("PrivateKey")
                    || key.eq_ignore_ascii_case("SessionToken")
                    || (secure && key == "Value");
                if secret && !v.is_null() {
                    *v = Value::String("<redacted>".into());
                } else {
                    redact_json(v, secure);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, secure)),
        Value::String(s) if s.contains("PRIVATE KEY-----") => *s = redact_text(s),
        _ => {}
    }
}

/// Replaces every `-----BEGIN … PRIVATE KEY-----` block, and the contents
/// of XML `<SecretAccessKey>`/`<SessionToken>` elements.
fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin..];
        let header_end = after[11..].find("-----").map(|i| i + 11 + 5);
        let is_private = header_end.is_some_and(|e| after[..e].contains("PRIVATE KEY"));
        match (is_private, after.find("-----END ")) {
            (true, Some(end)) => {
                let end_line = after[end + 9..]
                    .find("-----")
                    .map(|i| end + 9 + i + 5)
                    .unwrap_or(after.len());
                out.push_str(&rest[..begin]);
                out.push_str("<private key redacted>");
                rest = &after[end_line..];
            }
            _ => {
                let keep = begin + 11;
                out.push_str(&rest[..keep]);
                rest = &rest[keep..];
            }
        }
    }
    out.push_str(rest);
    for tag in ["SecretAccessKey", "SessionToken"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        if let (Some(a), Some(b)) = (out.find(&open), out.find(&close)) {
            if a < b {
                out.replace_range(a + open.len()..b, "<redacted>");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(
        op: &'a str,
        headers: &'a http::HeaderMap,
        req: &'a [u8],
        resp: &'a [u8],
    ) -> ApiCall<'a> {
        ApiCall {
            service: "ssm",
            operation: op,
            method: "POST",
            path: "/",
            headers,
            request_body: req,
            status: 200,
            response_body: resp,
            millis: 3,
            request_id: "r",
        }
    }

    #[test]
    fn the_row_reads_service_operation_status_and_time() {
        let h = http::HeaderMap::new();
        let ev = event(&call("GetParameter", &h, b"{}", b"{}"));
        assert_eq!(ev.summary, "ssm:GetParameter  200  3 ms");
        assert_eq!(ev.kind.label(), "API");
    }

    #[test]
    fn secrets_never_reach_the_event() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            http::HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIAX/20261202/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=deadbeef",
            ),
        );
        let key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n";
        let put = serde_json::to_vec(
            &json!({"Name": "cr-ca-key-1", "Type": "SecureString", "Value": key}),
        )
        .unwrap();
        let ev = event(&call("PutParameter", &h, &put, b"{\"Version\":1}"));
        let text = ev.detail.to_string();
        assert!(!text.contains("deadbeef"), "{text}");
        assert!(!text.contains("SECRETKEYBYTES"), "{text}");
        assert!(text.contains("cr-ca-key-1"), "{text}");

        let get = br#"{"Name":"p","WithDecryption":true}"#;
        let resp =
            br#"{"Parameter":{"Name":"p","Type":"SecureString","Value":"plaintext-secret"}}"#;
        let text = event(&call("GetParameter", &h, get, resp))
            .detail
            .to_string();
        assert!(!text.contains("plaintext-secret"), "{text}");

        let keys = br#"{"certificatePem":"-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----","keyPair":{"PrivateKey":"-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----","PublicKey":"pub"},"SecretAccessKey":"s3cr3t"}"#;
        let text = event(&call("CreateKeysAndCertificate", &h, b"", keys))
            .detail
            .to_string();
        assert!(
            !text.contains("\\nK\\n") && !text.contains("s3cr3t"),
            "{text}"
        );
        assert!(text.contains("BEGIN CERTIFICATE"), "{text}");

        let xml = b"<Result><SecretAccessKey>abc</SecretAccessKey>-----BEGIN RSA PRIVATE KEY-----\nXYZ\n-----END RSA PRIVATE KEY-----</Result>";
        let text = event(&call("X", &h, b"", xml)).detail.to_string();
        assert!(!text.contains("abc") && !text.contains("XYZ"), "{text}");
    }
}
