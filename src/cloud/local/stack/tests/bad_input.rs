//! Bad templates and parameters: refused before anything is created, with
//! an error naming the resource and the field.

use super::*;

/// Deploys a broken variant of the template; the error must mention every
/// `needle`, and nothing may have been created.
fn refused(change: impl FnOnce(&mut Value), needles: &[&str]) {
    let f = fixture();
    let mut tpl = template_json();
    change(&mut tpl);
    let err = deploy_json(&f, &tpl)
        .expect_err("must be refused")
        .to_string();
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert_nothing_created(&f);
}

#[test]
fn invalid_json_is_refused() {
    let f = fixture();
    let err = deploy(
        &f.store,
        &f.bus,
        STACK_NAME,
        "{\"Resources\": ",
        &no_params(),
    )
    .expect_err("bad json");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_nothing_created(&f);
}

#[test]
fn bad_templates_are_refused_naming_resource_and_field() {
    refused(
        |t| t["Resources"]["JitpRule"]["Type"] = json!("AWS::SNS::Topic"),
        &["JitpRule", "Type", "AWS::SNS::Topic", "not supported"],
    );
    refused(
        |t| {
            t["Resources"]["CertRotationFunction"]["Properties"]["Environment"]["Variables"]
                ["DEVICE_TABLE"] = json!({"Ref": "NoSuchTable"})
        },
        &[
            "CertRotationFunction",
            "Properties.Environment.Variables.DEVICE_TABLE",
            "Ref NoSuchTable",
        ],
    );
    refused(
        |t| {
            t["Resources"]["JitpRule"]["Properties"]["TopicRulePayload"]["Actions"][0]["Lambda"]
                ["FunctionArn"] = json!({"Fn::GetAtt": ["CertRotationFunction", "Nope"]})
        },
        &[
            "JitpRule",
            "Properties.TopicRulePayload.Actions[0].Lambda.FunctionArn",
            "no attribute Nope",
        ],
    );
    refused(
        |t| t["Resources"]["CertRotationDevicesTable"]["DependsOn"] = json!("JitpRule"),
        &[
            "circular dependency",
            "CertRotationDevicesTable",
            "JitpRule",
            "CertRotationFunction",
        ],
    );
    refused(
        |t| {
            t["Resources"]["JitpRule"]["Properties"]["TopicRulePayload"]
                .as_object_mut()
                .unwrap()
                .remove("Sql");
        },
        &["JitpRule", "Properties.TopicRulePayload.Sql", "required"],
    );
    refused(
        |t| {
            t["Resources"]["CreateManCertRule"]["Properties"]["TopicRulePayload"]["Sql"] =
                json!("SELECT * FROM '/a/#/b'")
        },
        &["CreateManCertRule", "Sql", "at character 14"],
    );
    refused(
        |t| {
            t["Resources"]["InProgressCertPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
                ["Effect"] = json!("Maybe")
        },
        &[
            "InProgressCertPolicy",
            "PolicyDocument",
            "Statement[0]",
            "Effect",
        ],
    );
    refused(
        |t| {
            t["Resources"]["CertRotationFunction"]
                .as_object_mut()
                .unwrap()
                .remove("Metadata");
        },
        // Without a built-in it runs its own code: the zip must be in S3.
        &[
            "CertRotationFunction",
            "Properties.Code",
            "NoSuchKey",
            "aws s3 cp",
        ],
    );
    refused(
        |t| t["Resources"]["CertRotationFunction"]["Metadata"]["jitpilot:builtin"] = json!(7),
        &[
            "CertRotationFunction",
            "Metadata.jitpilot:builtin",
            "found 7",
        ],
    );
    refused(
        |t| {
            t["Resources"]["CertRotationDevicesTable"]["Properties"]["KeySchema"][0]["KeyType"] =
                json!("RANGE")
        },
        &["CertRotationDevicesTable", "KeySchema[0]", "RANGE"],
    );
    refused(
        |t| t["Resources"]["JitpRule"]["DependsOn"] = json!(["Ghost"]),
        &["JitpRule", "DependsOn", "Ghost"],
    );
    refused(
        |t| {
            t["Resources"]["JitpRule"]["Properties"]["RuleName"] =
                json!({"Fn::If": ["c", "a", "b"]})
        },
        &["JitpRule", "Properties.RuleName", "Fn::If is not supported"],
    );
    refused(
        |t| {
            t["Resources"]["CertRotationFunction"]["Properties"]["FunctionName"] =
                json!({"Fn::Sub": "${AWS::StackName}-${Unknown}"})
        },
        &[
            "CertRotationFunction",
            "Properties.FunctionName",
            "Fn::Sub variable Unknown",
        ],
    );
    refused(
        |t| t["Outputs"]["Bad"] = json!({"Value": {"Ref": "Ghost"}}),
        &["output Bad", "Ref Ghost"],
    );
    refused(
        |t| t["Resources"] = json!({}),
        &["Resources is missing or empty"],
    );
}

#[test]
fn unknown_or_missing_parameters_are_refused() {
    let f = fixture();
    let params = json!({"NoSuchParam": "x"}).as_object().cloned().unwrap();
    let err =
        deploy(&f.store, &f.bus, STACK_NAME, TEMPLATE, &params).expect_err("unknown parameter");
    assert!(err.to_string().contains("NoSuchParam"), "{err}");
    let mut tpl = template_json();
    tpl["Parameters"]["CodeBucket"]
        .as_object_mut()
        .unwrap()
        .remove("Default");
    let err = deploy_json(&f, &tpl).expect_err("missing parameter");
    assert!(
        err.to_string().contains("CodeBucket has no Default"),
        "{err}"
    );
    assert_nothing_created(&f);
}

#[test]
fn intrinsics_resolve_as_cloudformation_does() {
    let f = fixture();
    let tpl = json!({
        "Parameters": {
            "Prefix": {"Type": "String", "Default": "p"},
            "Parts": {"Type": "CommaDelimitedList", "Default": "a, b,c"},
            "Size": {"Type": "Number", "Default": "3", "AllowedValues": ["3", "4"]}
        },
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
                "TableName": {"Fn::Join": ["-", [{"Ref": "Prefix"}, {"Ref": "AWS::Region"}, "t"]]},
                "KeySchema": [{"AttributeName": "K", "KeyType": "HASH"}],
                "BillingMode": {"Ref": "AWS::NoValue"}
            }},
            "Policy": {"Type": "AWS::IoT::Policy", "Properties": {
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
                    "Resource": {"Fn::Sub": ["arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:client/${!iot:ClientId}/${T}/${Table.Arn}",
                        {"T": {"Fn::Join": ["+", {"Ref": "Parts"}]}}]}}]}
            }}
        },
        "Outputs": {"StackName": {"Value": {"Fn::Sub": "${AWS::StackName}/${Size}"}}}
    });
    let report = deploy(&f.store, &f.bus, "S", &tpl.to_string(), &no_params()).expect("deploys");
    assert!(f.store.table_schema("p-us-east-1-t").unwrap().is_some());
    let table_row = report
        .resources
        .iter()
        .find(|r| r.logical_id == "Table")
        .unwrap();
    assert!(
        table_row.properties.get("BillingMode").is_none(),
        "AWS::NoValue drops the property"
    );
    let policy_row = report
        .resources
        .iter()
        .find(|r| r.logical_id == "Policy")
        .unwrap();
    assert!(
        policy_row.physical_id.starts_with("S-Policy-"),
        "{}",
        policy_row.physical_id
    );
    let doc = f
        .store
        .get_policy(&policy_row.physical_id)
        .unwrap()
        .unwrap()
        .document;
    assert!(
        doc.contains("arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}/a+b+c/arn:aws:dynamodb:us-east-1:123456789012:table/p-us-east-1-t"),
        "{doc}"
    );
    assert_eq!(outputs(&f.store, "S").unwrap().unwrap()["StackName"], "S/3");
    let bad = json!({"Size": "5"}).as_object().cloned().unwrap();
    let err = deploy(&f.store, &f.bus, "S", &tpl.to_string(), &bad).expect_err("not allowed");
    assert!(err.to_string().contains("AllowedValues"), "{err}");
}

#[test]
fn generated_names_are_stable_and_valid() {
    let f = fixture();
    let tpl = json!({"Resources": {
        "MyRule": {"Type": "AWS::IoT::TopicRule", "Properties": {"TopicRulePayload": {"Sql": "SELECT * FROM 'a'", "Actions": []}}},
        "AVeryLongLogicalIdThatKeepsGoingAndGoingBeyondSixtyFourCharactersSurely": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    }});
    let first = deploy(&f.store, &f.bus, "my-stack", &tpl.to_string(), &no_params()).unwrap();
    let rule = first
        .resources
        .iter()
        .find(|r| r.logical_id == "MyRule")
        .unwrap();
    assert!(
        rule.physical_id.starts_with("my_stack_MyRule_"),
        "{}",
        rule.physical_id
    );
    assert!(rule
        .physical_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let role = first
        .resources
        .iter()
        .find(|r| r.resource_type == "AWS::IAM::Role")
        .unwrap();
    assert!(role.physical_id.len() <= 64, "{}", role.physical_id);
    let again = deploy(&f.store, &f.bus, "my-stack", &tpl.to_string(), &no_params()).unwrap();
    assert!(!again.changed);
}
