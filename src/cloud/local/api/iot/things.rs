//! Things and their principals: JITP creates a device's thing and attaches
//! its certificate; the rotation function attaches the manufacturer
//! certificate and detaches the vendor one; scripts read it all back.
//! Principals travel in the `x-amzn-principal` header, as certificate ARNs.

use super::cas::record_change;
use super::{
    cert_arn, cert_id_of_principal, done, missing, not_found, ok, page, store_error, thing_arn,
    uuid_like, with_next, Call,
};
use crate::cloud::local::api::{ApiError, ApiResult};
use crate::cloud::local::control::short_id;
use crate::model::Thing;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    billing_group_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AttributePayload {
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// AWS's thing names: 1–128 of letters, digits and `:_-`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!(
            "the thing name {name:?} is not valid: use 1-128 letters, digits and :_-"
        )))
    }
}

/// A thing's `thingId`: stable for the thing's lifetime, new if it is
/// deleted and created again (as AWS's).
fn thing_id(thing: &Thing) -> String {
    uuid_like(&format!("thing/{}/{}", thing.name, thing.created_at))
}

/// Attributes as AWS returns them: text values.
fn attributes(thing: &Thing) -> Value {
    let map: Map<String, Value> = thing
        .attributes
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(text))
        })
        .collect();
    Value::Object(map)
}

fn existing(call: &Call<'_>, name: &str) -> Result<Thing, ApiError> {
    call.store()
        .get_thing(name)
        .map_err(store_error)?
        .ok_or_else(|| not_found(format!("the thing {name} does not exist")))
}

/// `CreateThing`: creating an identical thing again returns it; one with
/// other attributes is `ResourceAlreadyExistsException`.
pub(super) fn create(call: &Call<'_>) -> ApiResult {
    let name = call.label("thingName")?;
    check_name(name)?;
    let body: CreateBody = call.request.json()?;
    if let Some(kind) = body.thing_type_name {
        return Err(not_found(format!(
            "the thing type {kind} does not exist (the local cloud has no thing types)"
        )));
    }
    if let Some(group) = body.billing_group_name {
        return Err(not_found(format!(
            "the billing group {group} does not exist (the local cloud has no billing groups)"
        )));
    }
    let wanted = body.attribute_payload.unwrap_or_default().attributes;
    if let Some((key, _)) = wanted.iter().find(|(_, v)| !v.is_string()) {
        return Err(ApiError::invalid_request(format!(
            "the attribute {key} must be a string"
        )));
    }
    let store = call.store();
    let thing = match store.get_thing(name).map_err(store_error)? {
        Some(thing) if thing.attributes == wanted => thing,
        Some(_) => {
            return Err(ApiError::already_exists(format!(
                "the thing {name} already exists with other attributes"
            )))
        }
        None => {
            let thing = store.create_thing(name, &wanted).map_err(store_error)?;
            record_change(
                call,
                "registry.thing_created",
                name,
                format!("thing {name} created through the API"),
                json!({"thingName": name}),
            );
            thing
        }
    };
    ok(json!({
        "thingName": thing.name,
        "thingArn": thing_arn(&thing.name),
        "thingId": thing_id(&thing),
    }))
}

/// `DescribeThing`.
pub(super) fn describe(call: &Call<'_>) -> ApiResult {
    let thing = existing(call, call.label("thingName")?)?;
    ok(json!({
        "defaultClientId": thing.name,
        "thingName": thing.name,
        "thingId": thing_id(&thing),
        "thingArn": thing_arn(&thing.name),
        "attributes": attributes(&thing),
        "version": 1,
    }))
}

/// `DeleteThing`: an absent thing is a success (as AWS); one with
/// principals attached is refused until they are detached.
pub(super) fn delete(call: &Call<'_>) -> ApiResult {
    let name = call.label("thingName")?;
    let store = call.store();
    if store.get_thing(name).map_err(store_error)?.is_none() {
        return done();
    }
    if let Some(expected) = call.query("expectedVersion") {
        if expected != "1" {
            return Err(ApiError::new(
                409,
                "VersionConflictException",
                format!("the thing {name} is at version 1, not {expected}"),
            ));
        }
    }
    let principals = store.list_thing_principals(name).map_err(store_error)?;
    if !principals.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "the thing {name} has {} principal(s) attached; detach them (detach-thing-principal) before deleting it",
            principals.len()
        )));
    }
    store.delete_thing(name).map_err(store_error)?;
    record_change(
        call,
        "registry.thing_deleted",
        name,
        format!("thing {name} deleted through the API"),
        json!({"thingName": name}),
    );
    done()
}

/// `ListThings` (filtered by `attributeName`/`attributeValue`).
pub(super) fn list(call: &Call<'_>) -> ApiResult {
    let attribute = call.query("attributeName");
    let value = call.query("attributeValue");
    let things: Vec<Thing> = call
        .store()
        .list_things()
        .map_err(store_error)?
        .into_iter()
        .filter(|t| match attribute {
            None => true,
            Some(a) => {
                let shown = attributes(t);
                match (shown.get(a).and_then(Value::as_str), value) {
                    (Some(v), Some(wanted)) => v == wanted,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
            }
        })
        .collect();
    let (things, next) = page(things, call.query("nextToken"), call.query("maxResults"))?;
    let things: Vec<Value> = things
        .iter()
        .map(|t| {
            json!({
                "thingName": t.name,
                "thingArn": thing_arn(&t.name),
                "attributes": attributes(t),
                "version": 1,
            })
        })
        .collect();
    ok(with_next(json!({ "things": things }), "nextToken", next))
}

/// The `x-amzn-principal` header's certificateId.
fn principal(call: &Call<'_>) -> Result<String, ApiError> {
    let header = call
        .request
        .header("x-amzn-principal")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| missing("principal (the x-amzn-principal header)"))?;
    cert_id_of_principal(header)
}

fn registered_certificate(call: &Call<'_>, id: &str) -> Result<(), ApiError> {
    match call.store().get_certificate(id).map_err(store_error)? {
        Some(_) => Ok(()),
        None => Err(not_found(format!("the certificate {id} is not registered"))),
    }
}

/// `AttachThingPrincipal` (idempotent).
pub(super) fn attach_principal(call: &Call<'_>) -> ApiResult {
    let name = call.label("thingName")?;
    let id = principal(call)?;
    existing(call, name)?;
    registered_certificate(call, &id)?;
    call.store()
        .attach_thing_principal(name, &id)
        .map_err(store_error)?;
    record_change(
        call,
        "registry.thing_principal_attached",
        name,
        format!(
            "certificate {} attached to thing {name} through the API",
            short_id(&id)
        ),
        json!({"thingName": name, "certificateId": id}),
    );
    done()
}

/// `DetachThingPrincipal` (idempotent).
pub(super) fn detach_principal(call: &Call<'_>) -> ApiResult {
    let name = call.label("thingName")?;
    let id = principal(call)?;
    existing(call, name)?;
    call.store()
        .detach_thing_principal(name, &id)
        .map_err(store_error)?;
    record_change(
        call,
        "registry.thing_principal_detached",
        name,
        format!(
            "certificate {} detached from thing {name} through the API",
            short_id(&id)
        ),
        json!({"thingName": name, "certificateId": id}),
    );
    done()
}

/// `ListThingPrincipals`: the thing's certificate ARNs.
pub(super) fn list_principals(call: &Call<'_>) -> ApiResult {
    let name = call.label("thingName")?;
    existing(call, name)?;
    let ids = call
        .store()
        .list_thing_principals(name)
        .map_err(store_error)?;
    let (ids, next) = page(ids, call.query("nextToken"), call.query("maxResults"))?;
    let principals: Vec<String> = ids.iter().map(|id| cert_arn(id)).collect();
    ok(with_next(
        json!({ "principals": principals }),
        "nextToken",
        next,
    ))
}

/// `ListPrincipalThings`: the things a certificate is attached to.
pub(super) fn list_principal_things(call: &Call<'_>) -> ApiResult {
    let id = principal(call)?;
    registered_certificate(call, &id)?;
    let things = call
        .store()
        .list_principal_things(&id)
        .map_err(store_error)?;
    let (things, next) = page(things, call.query("nextToken"), call.query("maxResults"))?;
    ok(with_next(json!({ "things": things }), "nextToken", next))
}
