//! Tests of the stack engine on the walkthrough's template: deploy, a
//! redeploy that changes nothing, updates, removed resources, teardown in
//! reverse dependency order, and what it refuses before touching anything.

use super::*;
use crate::cloud::local::rules::{CompiledRule, RuleAction};
use crate::vocabulary::{DEVICE_TABLE, DEVICE_TABLE_KEY, STACK_NAME};
use serde_json::json;

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) store: Store,
    pub(super) bus: EventBus,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store opens");
    Fixture {
        _dir: dir,
        store,
        bus: EventBus::new(1024),
    }
}

pub(super) fn no_params() -> Map<String, Value> {
    Map::new()
}

pub(super) fn template_json() -> Value {
    serde_json::from_str(TEMPLATE).expect("template is JSON")
}

pub(super) fn deploy_json(f: &Fixture, tpl: &Value) -> Result<DeployReport, StackError> {
    deploy(&f.store, &f.bus, STACK_NAME, &tpl.to_string(), &no_params())
}

fn statuses(report: &DeployReport, logical_id: &str) -> Vec<String> {
    report
        .events
        .iter()
        .filter(|e| e.logical_id == logical_id)
        .map(|e| e.status.clone())
        .collect()
}

fn position(report: &DeployReport, logical_id: &str, status: &str) -> usize {
    report
        .events
        .iter()
        .position(|e| e.logical_id == logical_id && e.status == status)
        .unwrap_or_else(|| panic!("no {status} event for {logical_id}"))
}

/// Nothing of the stack exists in the store.
pub(super) fn assert_nothing_created(f: &Fixture) {
    assert!(f.store.get_stack(STACK_NAME).unwrap().is_none());
    assert!(f.store.list_policies().unwrap().is_empty());
    assert!(f.store.list_topic_rules().unwrap().is_empty());
    assert!(f.store.list_functions().unwrap().is_empty());
    assert!(f.store.table_schemas().unwrap().is_empty());
}

#[test]
fn the_real_template_deploys_every_resource() {
    let f = fixture();
    let mut rx = f.bus.subscribe();
    let report = deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).expect("deploys");
    assert_eq!(report.status, "CREATE_COMPLETE");
    assert!(report.changed);
    let tpl = template_json();
    let logical: BTreeSet<&str> = tpl["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let deployed: BTreeSet<&str> = report
        .resources
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    assert_eq!(deployed, logical);
    assert!(report
        .resources
        .iter()
        .all(|r| r.status == "CREATE_COMPLETE"));
    for id in &logical {
        assert_eq!(
            statuses(&report, id),
            ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"],
            "{id}"
        );
    }
    assert_eq!(report.events.first().unwrap().status, "CREATE_IN_PROGRESS");
    assert_eq!(report.events.first().unwrap().resource_type, STACK_TYPE);
    assert_eq!(report.events.last().unwrap().status, "CREATE_COMPLETE");
    // Dependencies first: role and table before the function, function before rules, rules before permissions.
    let done = |id| position(&report, id, "CREATE_COMPLETE");
    let started = |id| position(&report, id, "CREATE_IN_PROGRESS");
    assert!(done("CertRotationFunctionRole") < started("CertRotationFunction"));
    assert!(done("CertRotationDevicesTable") < started("CertRotationFunctionRole"));
    assert!(done("CertRotationFunction") < started("JitpRule"));
    assert!(done("JitpRule") < started("JitpRuleInvokePermission"));

    // The store holds what the walkthrough needs.
    let table = f
        .store
        .table_schema(DEVICE_TABLE)
        .unwrap()
        .expect("device table");
    assert_eq!(table.hash_key, DEVICE_TABLE_KEY);
    let policies: Vec<String> = f
        .store
        .list_policies()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        policies,
        ["CrCertRotationCompleteCertPolicy", "CrInProgressCertPolicy"]
    );
    let in_progress = f
        .store
        .get_policy("CrInProgressCertPolicy")
        .unwrap()
        .unwrap();
    assert!(in_progress
        .document
        .contains("client/${iot:Connection.Thing.ThingName}"));
    assert!(in_progress
        .document
        .contains("arn:aws:iot:us-east-1:123456789012:"));
    let function = f
        .store
        .list_functions()
        .unwrap()
        .pop()
        .expect("one function");
    assert_eq!(function.name, "CertRotation-cert-rotation");
    assert_eq!(function.handler, "cert-rotation");
    assert_eq!(
        function.arn,
        "arn:aws:lambda:us-east-1:123456789012:function:CertRotation-cert-rotation"
    );
    assert!(function
        .role_arn
        .starts_with("arn:aws:iam::123456789012:role/CertRotation-CertRotationFunctionRole-"));
    assert_eq!(function.environment["DEVICE_TABLE"], DEVICE_TABLE);
    assert_eq!(
        function.environment["IN_PROGRESS_POLICY"],
        "CrInProgressCertPolicy"
    );
    assert_eq!(
        function.environment["COMPLETE_POLICY"],
        "CrCertRotationCompleteCertPolicy"
    );
    assert_eq!(
        function.environment["CA_KEY_PARAMETER_PREFIX"],
        "cr-ca-key-"
    );
    let rules = f.store.list_topic_rules().unwrap();
    let filters: BTreeSet<String> = rules
        .iter()
        .map(|r| {
            let compiled = CompiledRule::compile(r).expect("rule compiles");
            assert!(compiled.enabled);
            assert_eq!(
                compiled.actions,
                [RuleAction::Lambda {
                    function_arn: function.arn.clone()
                }]
            );
            compiled.sql.topic_filter().to_string()
        })
        .collect();
    let expected: BTreeSet<String> = [
        "$aws/events/certificates/registered/#",
        "/cert-rotation/create-man-cert/+/rqst",
        "/cert-rotation/ack-man-cert/+/rqst",
    ]
    .map(String::from)
    .into();
    assert_eq!(filters, expected);
    assert!(rules.iter().any(|r| r.name == "rule_jitp"));

    // The bus saw the same events.
    let mut seen = 0;
    while let Some(event) = rx.try_recv() {
        assert_eq!(event.kind, EventKind::Stack);
        seen += 1;
    }
    assert_eq!(seen, report.events.len());
    let stored = f.store.list_stack_events(STACK_NAME, 1000).unwrap();
    assert_eq!(stored, report.events);
}

#[test]
fn outputs_give_the_jitp_role_arn() {
    let f = fixture();
    assert!(outputs(&f.store, STACK_NAME).unwrap().is_none());
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).expect("deploys");
    let out = outputs(&f.store, STACK_NAME)
        .unwrap()
        .expect("stack exists");
    let role = out["JitpProvisioningRoleArn"].as_str().unwrap();
    assert!(
        role.starts_with("arn:aws:iam::123456789012:role/CertRotation-JitpProvisioningRole-"),
        "{role}"
    );
    assert_eq!(out["DeviceTableName"], DEVICE_TABLE);
    assert_eq!(out["InProgressPolicyName"], "CrInProgressCertPolicy");
}

#[test]
fn redeploying_the_same_template_is_a_no_op() {
    let f = fixture();
    let first = deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    // Same template, different layout: still nothing to do.
    let again = deploy_json(&f, &template_json()).unwrap();
    assert!(!again.changed);
    assert_eq!(again.status, "CREATE_COMPLETE");
    assert!(again.events.is_empty());
    assert_eq!(again.resources, first.resources);
    assert_eq!(
        f.store.list_stack_events(STACK_NAME, 1000).unwrap().len(),
        first.events.len()
    );
    assert_eq!(
        f.store
            .get_policy("CrInProgressCertPolicy")
            .unwrap()
            .unwrap()
            .version,
        1
    );
}

#[test]
fn a_changed_policy_updates_only_that_resource() {
    let f = fixture();
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    let mut tpl = template_json();
    tpl["Resources"]["InProgressCertPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/forbidden"}));
    let report = deploy_json(&f, &tpl).unwrap();
    assert!(report.changed);
    assert_eq!(report.status, "UPDATE_COMPLETE");
    let touched: BTreeSet<&str> = report
        .events
        .iter()
        .filter(|e| e.resource_type != STACK_TYPE)
        .map(|e| e.logical_id.as_str())
        .collect();
    assert_eq!(touched, BTreeSet::from(["InProgressCertPolicy"]));
    assert_eq!(
        statuses(&report, "InProgressCertPolicy"),
        ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    );
    let policy = f
        .store
        .get_policy("CrInProgressCertPolicy")
        .unwrap()
        .unwrap();
    assert_eq!(policy.version, 2);
    assert!(policy.document.contains("forbidden"));
}

#[test]
fn a_changed_parameter_updates_the_function_environment() {
    let f = fixture();
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    let params = json!({"CaKeyParameterPrefix": "other-prefix-"})
        .as_object()
        .cloned()
        .unwrap();
    let report = deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &params).unwrap();
    assert_eq!(
        statuses(&report, "CertRotationFunction"),
        ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    );
    let function = f
        .store
        .get_function("CertRotation-cert-rotation")
        .unwrap()
        .unwrap();
    assert_eq!(
        function.environment["CA_KEY_PARAMETER_PREFIX"],
        "other-prefix-"
    );
    assert_eq!(
        f.store.get_stack(STACK_NAME).unwrap().unwrap().parameters["CaKeyParameterPrefix"],
        "other-prefix-"
    );
}

#[test]
fn removed_and_renamed_resources_are_deleted() {
    let f = fixture();
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    let mut tpl = template_json();
    let resources = tpl["Resources"].as_object_mut().unwrap();
    resources.remove("AckManCertRule");
    resources.remove("AckManCertRuleInvokePermission");
    resources["JitpRule"]["Properties"]["RuleName"] = json!("rule_jitp_v2");
    let report = deploy_json(&f, &tpl).unwrap();
    assert_eq!(report.status, "UPDATE_COMPLETE");
    let names: BTreeSet<String> = f
        .store
        .list_topic_rules()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "rule_create_man_cert".to_string(),
            "rule_jitp_v2".to_string()
        ])
    );
    assert_eq!(
        statuses(&report, "AckManCertRule"),
        ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    );
    assert_eq!(
        statuses(&report, "JitpRule"),
        [
            "CREATE_IN_PROGRESS",
            "CREATE_COMPLETE",
            "DELETE_IN_PROGRESS",
            "DELETE_COMPLETE"
        ]
    );
    // The permission on the renamed rule follows its new ARN.
    assert_eq!(
        statuses(&report, "JitpRuleInvokePermission"),
        ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    );
    // The removed permission goes before the rule it points at.
    assert!(
        position(&report, "AckManCertRuleInvokePermission", "DELETE_COMPLETE")
            < position(&report, "AckManCertRule", "DELETE_IN_PROGRESS")
    );
    assert!(report
        .events
        .iter()
        .any(|e| e.status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
    let rows: BTreeSet<String> = report
        .resources
        .iter()
        .map(|r| r.logical_id.clone())
        .collect();
    assert!(!rows.contains("AckManCertRule"));
    let jitp = report
        .resources
        .iter()
        .find(|r| r.logical_id == "JitpRule")
        .unwrap();
    assert_eq!(jitp.physical_id, "rule_jitp_v2");
}

#[test]
fn teardown_deletes_in_reverse_dependency_order() {
    let f = fixture();
    let mut rx = f.bus.subscribe();
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    let report = teardown(&f.store, &f.bus, STACK_NAME).expect("tears down");
    assert!(report.existed);
    assert_eq!(
        report.deleted.len(),
        template_json()["Resources"].as_object().unwrap().len()
    );
    let at = |id: &str| report.deleted.iter().position(|d| d == id).unwrap();
    assert!(at("JitpRuleInvokePermission") < at("JitpRule"));
    assert!(at("JitpRule") < at("CertRotationFunction"));
    assert!(at("CertRotationFunction") < at("CertRotationFunctionRole"));
    assert!(at("CertRotationFunction") < at("InProgressCertPolicy"));
    assert!(at("CertRotationFunctionRole") < at("CertRotationDevicesTable"));
    assert_nothing_created(&f);
    let mut last = None;
    while let Some(event) = rx.try_recv() {
        last = Some(event);
    }
    assert_eq!(
        last.expect("events").summary,
        "CertRotation CertRotation DELETE_COMPLETE"
    );
    // Nothing left: success, and says so.
    let again = teardown(&f.store, &f.bus, STACK_NAME).unwrap();
    assert!(!again.existed);
    assert!(again.deleted.is_empty());
}

#[test]
fn an_attached_policy_blocks_teardown_before_anything_is_deleted() {
    let f = fixture();
    deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).unwrap();
    f.store
        .attach_policy("CrInProgressCertPolicy", "cert-1")
        .unwrap();
    let err = teardown(&f.store, &f.bus, STACK_NAME).expect_err("attached");
    assert!(
        matches!(err, StackError::PolicyInUse { ref policy, targets: 1 } if policy == "CrInProgressCertPolicy")
    );
    assert!(err.to_string().contains("jitpilot cleanup"), "{err}");
    assert_eq!(
        f.store.get_stack(STACK_NAME).unwrap().unwrap().status,
        "CREATE_COMPLETE"
    );
    assert_eq!(f.store.list_topic_rules().unwrap().len(), 3);
    assert_eq!(f.store.list_policies().unwrap().len(), 2);
    // Removing an attached policy from the template is refused the same way.
    let mut tpl = template_json();
    tpl["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("InProgressCertPolicy");
    let env =
        &mut tpl["Resources"]["CertRotationFunction"]["Properties"]["Environment"]["Variables"];
    env["IN_PROGRESS_POLICY"] = json!("CrInProgressCertPolicy");
    tpl["Outputs"]
        .as_object_mut()
        .unwrap()
        .remove("InProgressPolicyName");
    assert!(matches!(
        deploy_json(&f, &tpl),
        Err(StackError::PolicyInUse { .. })
    ));
    f.store
        .detach_policy("CrInProgressCertPolicy", "cert-1")
        .unwrap();
    teardown(&f.store, &f.bus, STACK_NAME).expect("tears down once detached");
}

#[test]
fn a_name_taken_outside_the_stack_is_refused_before_creating() {
    let f = fixture();
    f.store
        .create_policy("CrCertRotationCompleteCertPolicy", r#"{"Statement":[]}"#)
        .unwrap();
    let err = deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &no_params()).expect_err("taken");
    assert!(
        err.to_string().contains("CertRotationCompleteCertPolicy"),
        "{err}"
    );
    assert!(f.store.get_stack(STACK_NAME).unwrap().is_none());
    assert!(f.store.table_schemas().unwrap().is_empty());
}

mod bad_input;
