//! IoT policies and their attachments: the stack's in-progress and
//! rotation-complete policies are created by the stack engine; scripts
//! create their own, attach them to certificate ARNs and read them back.

use super::cas::record_change;
use super::{
    cert_arn, cert_id_of_principal, delete_conflict, done, missing, not_found, ok, page,
    policy_arn, store_error, uuid_like, with_next, Call,
};
use crate::cloud::local::api::{ApiError, ApiResult};
use crate::cloud::local::control::short_id;
use crate::cloud::local::policy::CompiledPolicy;
use crate::store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    policy_document: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetBody {
    target: Option<String>,
}

/// AWS's policy names: 1–128 of letters, digits and `+=,.@-_`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!(
            "the policy name {name:?} is not valid: use 1-128 letters, digits and +=,.@-_"
        )))
    }
}

/// A target as the API shows it: a certificate's ARN.
fn target_arn(target: &str) -> String {
    match cert_id_of_principal(target) {
        Ok(id) => cert_arn(&id),
        Err(_) => target.to_string(),
    }
}

/// `CreatePolicy`: a new name with a well-formed document.
pub(super) fn create(call: &Call<'_>) -> ApiResult {
    let name = call.label("policyName")?;
    check_name(name)?;
    let body: CreateBody = call.request.json()?;
    let document = body
        .policy_document
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| missing("policyDocument"))?;
    CompiledPolicy::parse(name, &document)
        .map_err(|e| ApiError::new(400, "MalformedPolicyException", e.to_string()))?;
    let policy = call
        .store()
        .create_policy(name, &document)
        .map_err(|e| match e {
            StoreError::AlreadyExists { .. } => {
                ApiError::already_exists(format!("the policy {name} already exists"))
            }
            other => store_error(other),
        })?;
    record_change(
        call,
        "registry.policy_created",
        name,
        format!("policy {name} created through the API"),
        json!({"policyName": name}),
    );
    ok(json!({
        "policyName": policy.name,
        "policyArn": policy_arn(&policy.name),
        "policyDocument": policy.document,
        "policyVersionId": policy.version.to_string(),
    }))
}

fn existing(call: &Call<'_>, name: &str) -> Result<crate::model::Policy, ApiError> {
    call.store()
        .get_policy(name)
        .map_err(store_error)?
        .ok_or_else(|| not_found(format!("the policy {name} does not exist")))
}

/// `GetPolicy`: its default version.
pub(super) fn get(call: &Call<'_>) -> ApiResult {
    let policy = existing(call, call.label("policyName")?)?;
    ok(json!({
        "policyName": policy.name,
        "policyArn": policy_arn(&policy.name),
        "policyDocument": policy.document,
        "defaultVersionId": policy.version.to_string(),
        "generationId": uuid_like(&format!("{}/{}", policy.name, policy.version)),
    }))
}

/// `DeletePolicy`: not while it is attached.
pub(super) fn delete(call: &Call<'_>) -> ApiResult {
    let name = call.label("policyName")?;
    existing(call, name)?;
    call.store().delete_policy(name).map_err(|e| match e {
        StoreError::Conflict { reason, .. } => {
            delete_conflict(format!("the policy {name}: {reason}"))
        }
        other => store_error(other),
    })?;
    record_change(
        call,
        "registry.policy_deleted",
        name,
        format!("policy {name} deleted through the API"),
        json!({"policyName": name}),
    );
    done()
}

/// `ListPolicies`, by name.
pub(super) fn list(call: &Call<'_>) -> ApiResult {
    let policies = call.store().list_policies().map_err(store_error)?;
    let (policies, next) = page(policies, call.query("marker"), call.query("pageSize"))?;
    let policies: Vec<Value> = policies
        .iter()
        .map(|p| json!({"policyName": p.name, "policyArn": policy_arn(&p.name)}))
        .collect();
    ok(with_next(
        json!({ "policies": policies }),
        "nextMarker",
        next,
    ))
}

/// The certificate a `target` names, registered.
fn target_certificate(call: &Call<'_>, target: &str) -> Result<String, ApiError> {
    let id = cert_id_of_principal(target)?;
    if call
        .store()
        .get_certificate(&id)
        .map_err(store_error)?
        .is_none()
    {
        return Err(not_found(format!("the certificate {id} is not registered")));
    }
    Ok(id)
}

fn target_of(call: &Call<'_>) -> Result<String, ApiError> {
    let body: TargetBody = call.request.json()?;
    body.target
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("target"))
}

/// `AttachPolicy`: policy → certificate ARN (idempotent).
pub(super) fn attach(call: &Call<'_>) -> ApiResult {
    let name = call.label("policyName")?;
    let target = target_of(call)?;
    existing(call, name)?;
    let id = target_certificate(call, &target)?;
    call.store().attach_policy(name, &id).map_err(store_error)?;
    record_change(
        call,
        "registry.policy_attached",
        &id,
        format!(
            "policy {name} attached to certificate {} through the API",
            short_id(&id)
        ),
        json!({"policyName": name, "certificateId": id}),
    );
    done()
}

/// `DetachPolicy` (idempotent).
pub(super) fn detach(call: &Call<'_>) -> ApiResult {
    let name = call.label("policyName")?;
    let target = target_of(call)?;
    let id = cert_id_of_principal(&target)?;
    call.store().detach_policy(name, &id).map_err(store_error)?;
    record_change(
        call,
        "registry.policy_detached",
        &id,
        format!(
            "policy {name} detached from certificate {} through the API",
            short_id(&id)
        ),
        json!({"policyName": name, "certificateId": id}),
    );
    done()
}

/// `ListAttachedPolicies`: the policies attached to a certificate ARN.
pub(super) fn list_attached(call: &Call<'_>) -> ApiResult {
    let target = call.label("target")?.to_string();
    let id = target_certificate(call, &target)?;
    let policies = call
        .store()
        .list_attached_policies(&id)
        .map_err(store_error)?;
    let (policies, next) = page(policies, call.query("marker"), call.query("pageSize"))?;
    let policies: Vec<Value> = policies
        .iter()
        .map(|p| json!({"policyName": p.name, "policyArn": policy_arn(&p.name)}))
        .collect();
    ok(with_next(
        json!({ "policies": policies }),
        "nextMarker",
        next,
    ))
}

/// `ListTargetsForPolicy`: the certificate ARNs a policy is attached to.
pub(super) fn list_targets(call: &Call<'_>) -> ApiResult {
    let name = call.label("policyName")?;
    existing(call, name)?;
    let targets = call
        .store()
        .list_policy_targets(name)
        .map_err(store_error)?;
    let (targets, next) = page(targets, call.query("marker"), call.query("pageSize"))?;
    let targets: Vec<String> = targets.iter().map(|t| target_arn(t)).collect();
    ok(with_next(json!({ "targets": targets }), "nextMarker", next))
}
