//! `jitpilot deploy --function-code PATH|builtin`: opting jitpilot's own
//! stack into running its function's code (the built-in rotation function
//! stays the default: it is the fast path).

use super::code::{CodeError, CodeStore};
use super::config::FunctionConfig;
use crate::model::StackResource;
use std::path::Path;

/// The value of `--function-code` that goes back to the built-in function.
pub const BUILTIN: &str = "builtin";

/// Stores `code` for every function of the deployed stack (`resources`,
/// their properties as applied), or forgets their code for `builtin`.
/// Returns one line per function for the user.
pub fn set_function_code(
    data_dir: &Path,
    resources: &[StackResource],
    code: &Path,
) -> Result<Vec<String>, CodeError> {
    let store = CodeStore::new(data_dir);
    let functions = resources
        .iter()
        .filter(|r| r.resource_type == "AWS::Lambda::Function");
    let mut lines = Vec::new();
    for function in functions {
        let name = &function.physical_id;
        if code == Path::new(BUILTIN) {
            store.remove(name)?;
            lines.push(format!("{name}: runs the built-in function"));
            continue;
        }
        let config = FunctionConfig::from_properties(&function.properties).map_err(|why| {
            CodeError::Damaged {
                path: code.to_path_buf(),
                why: format!("the stack's {} cannot run code: {why}", function.logical_id),
            }
        })?;
        let stored = store.put_path(name, &config, code)?;
        lines.push(format!(
            "{name}: runs its own code from {} ({}, timeout {} s, revision {})",
            code.display(),
            config.runtime,
            config.timeout_secs,
            &stored.revision[..12]
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resources() -> Vec<StackResource> {
        vec![
            StackResource {
                stack: "CertRotation".into(),
                logical_id: "CertRotationFunction".into(),
                resource_type: "AWS::Lambda::Function".into(),
                physical_id: "CertRotation-cert-rotation".into(),
                status: "CREATE_COMPLETE".into(),
                properties: json!({"Runtime": "provided.al2023", "Handler": "bootstrap", "Timeout": 30,
                    "Environment": {"Variables": {"DEVICE_TABLE": "CertRotationDevices"}}}),
            },
            StackResource {
                stack: "CertRotation".into(),
                logical_id: "JitpRule".into(),
                resource_type: "AWS::IoT::TopicRule".into(),
                physical_id: "rule_jitp".into(),
                status: "CREATE_COMPLETE".into(),
                properties: json!({}),
            },
        ]
    }

    #[test]
    fn the_stacks_function_gets_the_code_and_builtin_takes_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("bootstrap-bin");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let lines = set_function_code(dir.path(), &resources(), &exe).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("provided.al2023, timeout 30 s"),
            "{lines:?}"
        );
        let store = CodeStore::new(dir.path());
        let stored = store.get("CertRotation-cert-rotation").unwrap().unwrap();
        assert_eq!(stored.config.timeout_secs, 30);
        assert_eq!(
            stored.config.environment["DEVICE_TABLE"],
            "CertRotationDevices"
        );
        set_function_code(dir.path(), &resources(), Path::new(BUILTIN)).unwrap();
        assert_eq!(store.get("CertRotation-cert-rotation").unwrap(), None);
        let missing = set_function_code(dir.path(), &resources(), &dir.path().join("nope.zip"));
        assert!(matches!(missing, Err(CodeError::Read { .. })));
    }
}
