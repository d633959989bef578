//! The provisioning template's intrinsic functions, as JITP evaluates them:
//! `Ref`, `Fn::Join` and `Fn::Sub` over the certificate's parameters.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Resolves `{"Ref": P}`, `{"Fn::Join": [sep, [..]]}` and `{"Fn::Sub": "..${P}.."}`
/// against the parameters, everywhere in `value`.
pub(super) fn resolve(value: &Value, params: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().ok_or("Ref needs a parameter name")?;
            Value::String(
                params
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("parameter {name} is not in the certificate"))?,
            )
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Join") => {
            let parts = map["Fn::Join"]
                .as_array()
                .ok_or("Fn::Join needs [separator, [values]]")?;
            let (Some(Value::String(sep)), Some(Value::Array(items))) =
                (parts.first(), parts.get(1))
            else {
                return Err("Fn::Join needs [separator, [values]]".into());
            };
            let mut out = Vec::new();
            for item in items {
                match resolve(item, params)? {
                    Value::String(s) => out.push(s),
                    other => out.push(other.to_string()),
                }
            }
            Value::String(out.join(sep))
        }
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let text = map["Fn::Sub"].as_str().ok_or("Fn::Sub needs a string")?;
            let mut out = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or("Fn::Sub: unclosed ${")?;
                let name = &after[..end];
                match params.get(name) {
                    Some(v) => out.push_str(v),
                    // Not a template parameter (e.g. a policy variable): keep it.
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve(v, params)?);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, params))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_joins_and_subs_resolve_from_certificate_parameters() {
        let params: HashMap<String, String> = [
            (
                "AWS::IoT::Certificate::CommonName".to_string(),
                "SER1".to_string(),
            ),
            ("AWS::IoT::Certificate::Id".to_string(), "abc".to_string()),
        ]
        .into();
        let v = serde_json::json!({
            "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
            "Joined": {"Fn::Join": ["-", ["x", {"Ref": "AWS::IoT::Certificate::Id"}]]},
            "Sub": {"Fn::Sub": "t/${AWS::IoT::Certificate::CommonName}/${iot:ClientId}"}
        });
        let r = resolve(&v, &params).expect("resolves");
        assert_eq!(r["ThingName"], "SER1");
        assert_eq!(r["Joined"], "x-abc");
        assert_eq!(r["Sub"], "t/SER1/${iot:ClientId}");
        let missing = serde_json::json!({"Ref": "AWS::IoT::Certificate::Country"});
        assert!(resolve(&missing, &params).unwrap_err().contains("Country"));
    }
}
