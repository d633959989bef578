//! The stack engine: interprets `cfn/cert-rotation.json` — the same template
//! that is deployed as-is to AWS — for the resource types the walkthrough uses.
//!
//! Layout:
//! - `template.rs`   reading the template and its parameters, shape checks
//! - `intrinsics.rs` `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, pseudo parameters
//! - `graph.rs`      dependency order (creation) and its reverse (deletion)
//! - `provision.rs`  per resource type: names, attributes, store operations
//! - `mod.rs`        deploy (create / update / no-op) and teardown, with events
//!
//! A deployment is planned completely before anything is touched: the
//! template parsed, parameters resolved, every reference checked, the order
//! computed, every property resolved and checked (policy documents parsed,
//! rule SQL parsed, key schemas read). Only a plan without errors is applied,
//! so a bad template never leaves a half-created stack behind.

mod changes;
mod graph;
mod intrinsics;
mod provision;
mod refusal;
mod summary;
mod template;

pub use changes::{preview, ChangeAction, ResourceChange};
pub use provision::BUILTIN_METADATA;
pub use refusal::{record_refused_delete, record_refused_deploy};
pub use summary::{summarize, ParameterSummary, TemplateSummary};

use crate::cloud::events::{CloudEvent, EventKind};
use crate::cloud::{DeployReport, EventBus, TeardownReport};
use crate::model::{now_millis, Stack, StackEvent, StackResource};
use crate::store::Store;
use changes::Change;
use provision::Desired;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use template::{resource_error, ResourceKind, Template};

/// The stack template (the vocabulary's `STACK_TEMPLATE`, shared with the AWS backend).
pub use crate::vocabulary::STACK_TEMPLATE as TEMPLATE;

/// The type name CloudFormation gives the stack itself in its events.
const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// The status of a stack whose creation failed and was undone: nothing of
/// it exists; it can only be deleted (the API) or deployed anew (`jitpilot deploy`).
pub const ROLLBACK_COMPLETE: &str = "ROLLBACK_COMPLETE";

/// What can go wrong in the stack engine. Messages name the resource and field.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The template (or a parameter) is wrong; nothing was changed.
    #[error("template: {0}")]
    Template(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A resource the template names already exists outside the stack.
    #[error("resource {logical_id} ({resource_type}): {name} already exists and does not belong to this stack; delete it or give {logical_id} another name. Nothing was changed")]
    AlreadyExists {
        /// The template's logical id.
        logical_id: String,
        /// CloudFormation type name.
        resource_type: String,
        /// The physical name that is taken.
        name: String,
    },
    /// A policy to delete is still attached to certificates.
    #[error("IoT policy {policy} is still attached to {targets} certificate(s); run `jitpilot cleanup` first, then retry. Nothing was deleted")]
    PolicyInUse {
        /// The policy's name.
        policy: String,
        /// How many certificates it is attached to.
        targets: usize,
    },
    /// Applying one resource failed; the stack is left `*_FAILED` with the
    /// resources done so far recorded, so a retry or a teardown can finish.
    #[error("resource {logical_id}: {status}: {source}")]
    Resource {
        /// The template's logical id.
        logical_id: String,
        /// `CREATE_FAILED`, `UPDATE_FAILED` or `DELETE_FAILED`.
        status: String,
        /// What the store said.
        #[source]
        source: Box<crate::store::StoreError>,
    },
}

/// One resource of a plan, fully resolved and checked.
struct Planned {
    kind: ResourceKind,
    properties: Value,
    physical_id: String,
    desired: Desired,
}

/// A deployment, planned before anything is touched.
struct Plan {
    parameters: BTreeMap<String, Value>,
    /// Logical ids, dependencies first.
    order: Vec<String>,
    resources: BTreeMap<String, Planned>,
}

/// Every resource's dependencies: `DependsOn` plus what its properties refer to.
fn dependency_graph(tpl: &Template) -> Result<BTreeMap<String, BTreeSet<String>>, StackError> {
    let mut graph = BTreeMap::new();
    for (id, def) in &tpl.resources {
        let mut deps = BTreeSet::new();
        for dep in &def.depends_on {
            if !tpl.resources.contains_key(dep) {
                return Err(resource_error(
                    def,
                    "DependsOn",
                    format!("{dep} is not a resource of the template"),
                ));
            }
            deps.insert(dep.clone());
        }
        intrinsics::dependencies(tpl, &def.properties, "Properties", &mut deps)
            .map_err(|e| resource_error(def, &e.path, e.message))?;
        graph.insert(id.clone(), deps);
    }
    for (name, value) in &tpl.outputs {
        intrinsics::dependencies(tpl, value, "Value", &mut BTreeSet::new()).map_err(|e| {
            StackError::Template(format!("output {name}, {}: {}", e.path, e.message))
        })?;
    }
    Ok(graph)
}

fn creation_order(tpl: &Template) -> Result<Vec<String>, StackError> {
    graph::creation_order(&dependency_graph(tpl)?).map_err(|cycle| {
        StackError::Template(format!(
            "circular dependency between resources: {}; remove one of these references or DependsOn",
            cycle.join(" → ")
        ))
    })
}

fn plan(stack_name: &str, text: &str, given: &Map<String, Value>) -> Result<Plan, StackError> {
    let tpl = template::parse(text)?;
    let parameters = template::resolve_parameters(&tpl, given)?;
    let order = creation_order(&tpl)?;
    let mut physical = BTreeMap::new();
    let mut resources = BTreeMap::new();
    for id in &order {
        let def = &tpl.resources[id];
        let scope = intrinsics::Scope {
            template: &tpl,
            params: &parameters,
            stack_name,
            physical: &physical,
        };
        let properties = intrinsics::resolve(&def.properties, &scope, "Properties")
            .map_err(|e| resource_error(def, &e.path, e.message))?
            .unwrap_or_else(|| Value::Object(Map::new()));
        let physical_id = provision::physical_id(stack_name, def, &properties)?;
        let desired = provision::desired(def, &properties, &physical_id)?;
        physical.insert(id.clone(), physical_id.clone());
        resources.insert(
            id.clone(),
            Planned {
                kind: def.kind,
                properties,
                physical_id,
                desired,
            },
        );
    }
    resolve_outputs(&tpl, &parameters, stack_name, &physical)?;
    Ok(Plan {
        parameters,
        order,
        resources,
    })
}

fn resolve_outputs(
    tpl: &Template,
    params: &BTreeMap<String, Value>,
    stack_name: &str,
    physical: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, StackError> {
    let scope = intrinsics::Scope {
        template: tpl,
        params,
        stack_name,
        physical,
    };
    let mut out = Map::new();
    for (name, value) in &tpl.outputs {
        let resolved = intrinsics::resolve(value, &scope, "Value").map_err(|e| {
            StackError::Template(format!("output {name}, {}: {}", e.path, e.message))
        })?;
        out.insert(name.clone(), resolved.unwrap_or(Value::Null));
    }
    Ok(out)
}

/// The stack's id, as `Ref: AWS::StackId` gives it inside its template:
/// `arn:aws:cloudformation:<region>:<account>:stack/<name>/<suffix>`.
pub fn stack_id(stack_name: &str) -> String {
    match intrinsics::pseudo("AWS::StackId", stack_name) {
        Some(Value::String(id)) => id,
        _ => format!("arn:aws:cloudformation:::stack/{stack_name}"),
    }
}

/// The deployed stack's Outputs (e.g. `JitpProvisioningRoleArn` for the
/// Vendor CA's registration config), recomputed from the recorded template
/// and resources. `None` when there is no stack.
pub fn outputs(store: &Store, stack_name: &str) -> Result<Option<Map<String, Value>>, StackError> {
    let Some(stack) = store.get_stack(stack_name)? else {
        return Ok(None);
    };
    let tpl = template::parse(&stack.template)?;
    let physical = store
        .list_stack_resources(stack_name)?
        .into_iter()
        .map(|r| (r.logical_id, r.physical_id))
        .collect();
    let params = stack.parameters.into_iter().collect();
    resolve_outputs(&tpl, &params, stack_name, &physical).map(Some)
}

/// Writes stack events to the store and the bus, and keeps this run's.
struct Recorder<'a> {
    store: &'a Store,
    bus: &'a EventBus,
    stack: &'a str,
    events: Vec<StackEvent>,
}

impl Recorder<'_> {
    fn event(
        &mut self,
        logical_id: &str,
        resource_type: &str,
        status: &str,
        reason: Option<String>,
    ) -> Result<(), StackError> {
        let event = StackEvent {
            stack: self.stack.to_string(),
            timestamp: now_millis(),
            logical_id: logical_id.to_string(),
            resource_type: resource_type.to_string(),
            status: status.to_string(),
            reason,
        };
        self.store.add_stack_event(&event)?;
        self.publish(&event);
        self.events.push(event);
        Ok(())
    }

    fn publish(&self, event: &StackEvent) {
        self.bus.emit_with(|| {
            CloudEvent::new(
                EventKind::Stack,
                format!("{} {} {}", event.stack, event.logical_id, event.status),
            )
            .detail(serde_json::json!({
                "stack": event.stack,
                "logicalId": event.logical_id,
                "resourceType": event.resource_type,
                "status": event.status,
                "reason": event.reason,
            }))
        });
    }

    fn stack_status(&mut self, stack: &mut Stack, status: &str) -> Result<(), StackError> {
        stack.status = status.to_string();
        stack.updated_at = now_millis();
        self.store.put_stack(stack)?;
        let name = stack.name.clone();
        self.event(&name, STACK_TYPE, status, None)
    }
}

/// The parameters of a deployment with `--parameter-overrides`, as
/// `aws cloudformation deploy` builds them: the overrides, and for every other
/// parameter the template still declares, the deployed stack's value (none
/// at creation: the default applies). Unknown names and values are refused
/// by [`deploy`] with the template's own words.
pub fn parameters_with_overrides(
    store: &Store,
    stack_name: &str,
    template: &str,
    overrides: &crate::cloud::ParameterOverrides,
) -> Result<Map<String, Value>, StackError> {
    let declared = template::parse(template)?.parameters;
    let mut parameters: Map<String, Value> = match store.get_stack(stack_name)? {
        Some(stack) => stack
            .parameters
            .into_iter()
            .filter(|(name, _)| declared.contains_key(name))
            .collect(),
        None => Map::new(),
    };
    for (name, value) in overrides {
        parameters.insert(name.clone(), Value::String(value.clone()));
    }
    Ok(parameters)
}

/// Creates the stack, or updates what changed (a no-op when nothing did).
/// Emits CloudFormation-style events to the store and `bus` as it goes.
pub fn deploy(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
    template: &str,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<DeployReport, StackError> {
    let plan = plan(stack_name, template, parameters)?;
    let changes::Diff {
        existing,
        changes,
        removed,
    } = changes::diff(store, stack_name, &plan)?;

    // Checks that need the store, still before anything is touched.
    for (id, change) in &changes {
        let p = &plan.resources[id];
        if !matches!(change, Change::Unchanged) {
            provision::check_code(store, id, &p.desired)?;
        }
        match change {
            Change::Create | Change::Replace(_)
                if provision::exists(store, p.kind, &p.physical_id)? =>
            {
                return Err(StackError::AlreadyExists {
                    logical_id: id.to_string(),
                    resource_type: p.kind.type_name().into(),
                    name: p.physical_id.clone(),
                });
            }
            Change::Update => {
                if let Desired::Table { name, hash_key } = &p.desired {
                    if let Some(table) = store.table_schema(name)? {
                        if table.hash_key != *hash_key {
                            return Err(StackError::Template(format!(
                                "resource {id} (AWS::DynamoDB::Table), Properties.KeySchema: changing the key of {name} needs a replacement, which CloudFormation refuses for a named table; rename the table or run `jitpilot teardown` first"
                            )));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let to_delete: Vec<StackResource> = changes
        .iter()
        .rev()
        .filter_map(|(_, c)| match c {
            Change::Replace(o) => Some(o.clone()),
            _ => None,
        })
        .chain(removed.iter().cloned())
        .collect();
    check_deletable(store, &to_delete)?;

    let nothing_to_do =
        changes.iter().all(|(_, c)| matches!(c, Change::Unchanged)) && to_delete.is_empty();
    let parameters: Map<String, Value> = plan.parameters.into_iter().collect();
    if let (Some(mut stack), true) = (existing.clone(), nothing_to_do) {
        // CloudFormation's "No updates are to be performed": keep the status,
        // remember the exact template text (it may differ in layout only).
        if stack.template != template || stack.parameters != parameters {
            stack.template = template.to_string();
            stack.parameters = parameters;
            store.put_stack(&stack)?;
        }
        return Ok(DeployReport {
            stack: stack_name.to_string(),
            status: stack.status,
            changed: false,
            resources: store.list_stack_resources(stack_name)?,
            events: Vec::new(),
        });
    }

    // A stack whose creation was rolled back holds nothing: deploying it
    // again creates it again.
    let creating = existing
        .as_ref()
        .is_none_or(|s| s.status == ROLLBACK_COMPLETE);
    let phase = if creating { "CREATE" } else { "UPDATE" };
    let now = now_millis();
    let mut stack = Stack {
        name: stack_name.to_string(),
        status: String::new(),
        template: template.to_string(),
        parameters,
        created_at: existing.map_or(now, |s| s.created_at),
        updated_at: now,
    };
    let mut rec = Recorder {
        store,
        bus,
        stack: stack_name,
        events: Vec::new(),
    };
    rec.stack_status(&mut stack, &format!("{phase}_IN_PROGRESS"))?;

    for (id, change) in &changes {
        let p = &plan.resources[id];
        let step = match change {
            Change::Unchanged => continue,
            Change::Create | Change::Replace(_) => "CREATE",
            Change::Update => "UPDATE",
        };
        let type_name = p.kind.type_name();
        let mut row = StackResource {
            stack: stack_name.to_string(),
            logical_id: id.to_string(),
            resource_type: type_name.to_string(),
            physical_id: p.physical_id.clone(),
            status: format!("{step}_IN_PROGRESS"),
            properties: p.properties.clone(),
        };
        rec.event(id, type_name, &row.status, None)?;
        // Recorded before it exists, so a crash mid-way is retried as an update.
        store.put_stack_resource(&row)?;
        if let Err(source) = provision::apply(store, &p.desired) {
            row.status = format!("{step}_FAILED");
            store.put_stack_resource(&row)?;
            rec.event(id, type_name, &row.status, Some(source.to_string()))?;
            rec.stack_status(&mut stack, &format!("{phase}_FAILED"))?;
            return Err(StackError::Resource {
                logical_id: id.to_string(),
                status: row.status,
                source: Box::new(source),
            });
        }
        row.status = format!("{step}_COMPLETE");
        store.put_stack_resource(&row)?;
        rec.event(id, type_name, &row.status, None)?;
    }

    if !to_delete.is_empty() {
        rec.stack_status(&mut stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")?;
    }
    for resource in &to_delete {
        let replaced = plan.resources.contains_key(&resource.logical_id);
        delete_one(&mut rec, &mut stack, resource, !replaced, "UPDATE_FAILED")?;
    }
    rec.stack_status(&mut stack, &format!("{phase}_COMPLETE"))?;
    Ok(DeployReport {
        stack: stack_name.to_string(),
        status: stack.status,
        changed: true,
        resources: store.list_stack_resources(stack_name)?,
        events: rec.events,
    })
}

/// Refuses to go on when a policy to delete is still attached.
fn check_deletable(store: &Store, resources: &[StackResource]) -> Result<(), StackError> {
    for r in resources {
        if let Some(kind) = ResourceKind::parse(&r.resource_type) {
            let targets = provision::attachments(store, kind, &r.physical_id)?;
            if targets > 0 {
                return Err(StackError::PolicyInUse {
                    policy: r.physical_id.clone(),
                    targets,
                });
            }
        }
    }
    Ok(())
}

/// Deletes one resource with its events; `forget` drops its row too (a
/// replaced resource's row already describes its successor).
fn delete_one(
    rec: &mut Recorder<'_>,
    stack: &mut Stack,
    r: &StackResource,
    forget: bool,
    failed: &str,
) -> Result<(), StackError> {
    rec.event(&r.logical_id, &r.resource_type, "DELETE_IN_PROGRESS", None)?;
    // Types recorded by an older jitpilot but unknown now have nothing to delete in the store.
    let result = match ResourceKind::parse(&r.resource_type) {
        Some(kind) => provision::delete(rec.store, kind, &r.physical_id),
        None => Ok(()),
    };
    if let Err(source) = result {
        rec.event(
            &r.logical_id,
            &r.resource_type,
            "DELETE_FAILED",
            Some(source.to_string()),
        )?;
        rec.stack_status(stack, failed)?;
        return Err(StackError::Resource {
            logical_id: r.logical_id.clone(),
            status: "DELETE_FAILED".into(),
            source: Box::new(source),
        });
    }
    if forget {
        rec.store.delete_stack_resource(&r.stack, &r.logical_id)?;
    }
    rec.event(&r.logical_id, &r.resource_type, "DELETE_COMPLETE", None)
}

/// `resources` in deletion order: the reverse of the recorded template's
/// creation order; resources the template does not know go first, and if
/// the recorded template cannot be read, the reverse of the recording order.
fn removal_order(stack: Option<&Stack>, mut resources: Vec<StackResource>) -> Vec<StackResource> {
    let order = stack
        .and_then(|s| template::parse(&s.template).ok())
        .and_then(|tpl| creation_order(&tpl).ok());
    match order {
        Some(order) => {
            let rank = |r: &StackResource| {
                order
                    .iter()
                    .position(|id| *id == r.logical_id)
                    .map_or(-1, |i| i as i64)
            };
            resources.sort_by_key(|r| std::cmp::Reverse(rank(r)));
            // Unknown ones (rank -1) sort last; they must go first.
            let unknown = resources.iter().filter(|r| rank(r) < 0).count();
            resources.rotate_right(unknown);
        }
        None => resources.reverse(),
    }
    resources
}

/// Deletes the stack's resources in reverse dependency order, then the stack.
/// Succeeds when there is no stack.
pub fn teardown(
    store: &Store,
    bus: &EventBus,
    stack_name: &str,
) -> Result<TeardownReport, StackError> {
    let Some(mut stack) = store.get_stack(stack_name)? else {
        return Ok(TeardownReport {
            stack: stack_name.to_string(),
            existed: false,
            deleted: Vec::new(),
        });
    };
    let resources = removal_order(Some(&stack), store.list_stack_resources(stack_name)?);
    check_deletable(store, &resources)?;
    let mut rec = Recorder {
        store,
        bus,
        stack: stack_name,
        events: Vec::new(),
    };
    rec.stack_status(&mut stack, "DELETE_IN_PROGRESS")?;
    let mut deleted = Vec::with_capacity(resources.len());
    for resource in &resources {
        delete_one(&mut rec, &mut stack, resource, true, "DELETE_FAILED")?;
        deleted.push(resource.logical_id.clone());
    }
    // The stack's own events go with it, as on AWS; the bus still sees the end.
    store.delete_stack(stack_name)?;
    rec.publish(&StackEvent {
        stack: stack_name.to_string(),
        timestamp: now_millis(),
        logical_id: stack_name.to_string(),
        resource_type: STACK_TYPE.to_string(),
        status: "DELETE_COMPLETE".into(),
        reason: None,
    });
    Ok(TeardownReport {
        stack: stack_name.to_string(),
        existed: true,
        deleted,
    })
}

#[cfg(test)]
mod tests;
