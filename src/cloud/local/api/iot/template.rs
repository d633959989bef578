//! Checking a JITP provisioning template before it is attached to a CA
//! (`RegisterCACertificate`/`UpdateCACertificate --registration-config`):
//! a template the endpoint's JITP (`jitp.rs`) could not apply is refused
//! when it is registered, not when the first device connects.

use serde_json::Value;

/// The resource types JITP applies.
const TYPES: &[&str] = &[
    "AWS::IoT::Thing",
    "AWS::IoT::Certificate",
    "AWS::IoT::Policy",
];

/// Why `body` is not a template JITP can apply, or `Ok`.
pub(super) fn check(body: &str) -> Result<(), String> {
    let template: Value =
        serde_json::from_str(body).map_err(|e| format!("templateBody is not JSON: {e}"))?;
    let template = template
        .as_object()
        .ok_or("templateBody must be a JSON object with Parameters and Resources")?;
    let declared: Vec<&str> = match template.get("Parameters") {
        None => Vec::new(),
        Some(Value::Object(p)) => p.keys().map(String::as_str).collect(),
        Some(_) => return Err("Parameters must be an object".into()),
    };
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .filter(|r| !r.is_empty())
        .ok_or("the template needs a non-empty Resources object")?;
    let mut certificates = 0;
    for (id, resource) in resources {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        if !TYPES.contains(&kind) {
            return Err(format!(
                "resource {id}: Type {kind:?} is not one JITP applies ({})",
                TYPES.join(", ")
            ));
        }
        let props = match resource.get("Properties") {
            None => &Value::Null,
            Some(p @ Value::Object(_)) => p,
            Some(_) => return Err(format!("resource {id}: Properties must be an object")),
        };
        match kind {
            "AWS::IoT::Thing" if props.get("ThingName").is_none() => {
                return Err(format!("resource {id}: an AWS::IoT::Thing needs ThingName"))
            }
            "AWS::IoT::Certificate" => {
                certificates += 1;
                if let Some(Value::String(s)) = props.get("Status") {
                    if crate::model::CertificateStatus::parse(s).is_none() {
                        return Err(format!(
                            "resource {id}: Status {s:?} is not ACTIVE, INACTIVE, REVOKED or PENDING_ACTIVATION"
                        ));
                    }
                }
            }
            "AWS::IoT::Policy"
                if props.get("PolicyName").is_none() && props.get("PolicyDocument").is_none() =>
            {
                return Err(format!(
                    "resource {id}: an AWS::IoT::Policy needs PolicyName or PolicyDocument"
                ))
            }
            _ => {}
        }
        check_refs(props, &declared).map_err(|e| format!("resource {id}: {e}"))?;
    }
    if certificates > 1 {
        return Err("a JITP template has at most one AWS::IoT::Certificate resource".into());
    }
    Ok(())
}

/// Every `{"Ref": P}` (and `${P}` of `Fn::Sub` that looks like a template
/// parameter) names a declared parameter.
fn check_refs(value: &Value, declared: &[&str]) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("Ref") {
                let name = target.as_str().ok_or("Ref needs a parameter name")?;
                if !declared.contains(&name) {
                    return Err(format!(
                        "Ref {name} is not declared in the template's Parameters"
                    ));
                }
            }
            map.values().try_for_each(|v| check_refs(v, declared))
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_refs(v, declared)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitpilots_and_the_samples_templates_pass_and_broken_ones_say_why() {
        assert_eq!(
            check(include_str!("../../../../../assets/jitp-template.json")),
            Ok(())
        );
        let sample = r#"{ "Parameters" : { "AWS::IoT::Certificate::CommonName" : { "Type" : "String" }, "AWS::IoT::Certificate::Id" : { "Type" : "String" } }, "Resources" : { "thing" : { "Type" : "AWS::IoT::Thing", "Properties" : { "ThingName" : {"Ref" : "AWS::IoT::Certificate::CommonName"} } }, "certificate" : { "Type" : "AWS::IoT::Certificate", "Properties" : { "CertificateId": {"Ref" : "AWS::IoT::Certificate::Id"}, "Status" : "ACTIVE" } }, "policy" : {"Type" : "AWS::IoT::Policy", "Properties" : { "PolicyName" : "CrInprogressCertPolicy" } } } }"#;
        assert_eq!(check(sample), Ok(()));
        let err = |body: &str| check(body).unwrap_err();
        assert!(err("{").contains("not JSON"));
        assert!(err(r#"{"Resources": {}}"#).contains("non-empty Resources"));
        assert!(
            err(r#"{"Resources": {"q": {"Type": "AWS::SQS::Queue"}}}"#).contains("AWS::SQS::Queue")
        );
        assert!(err(r#"{"Resources": {"t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}}}}"#)
            .contains("not declared"));
        assert!(err(r#"{"Resources": {"c": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ON"}}}}"#)
            .contains("\"ON\""));
        assert!(
            err(r#"{"Resources": {"p": {"Type": "AWS::IoT::Policy", "Properties": {}}}}"#)
                .contains("PolicyName")
        );
    }
}
