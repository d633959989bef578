//! CloudFormation's operations called as the server calls them: awsQuery
//! forms in, XML or AWS's errors out, on a local cloud in a temp dir.

use super::*;
use crate::cloud::local::api::s3::S3;
use crate::cloud::local::LocalCloud;
use crate::cloud::EventBus;
use crate::vocabulary::STACK_NAME;

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: ApiContext,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = LocalCloud::open(dir.path(), EventBus::default()).expect("cloud opens");
    let ctx = ApiContext::without_endpoint(cloud);
    Fixture { _dir: dir, ctx }
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An awsQuery request: `Action=op&Version=…&k=v…`.
fn form_request(op: &str, pairs: &[(&str, &str)]) -> ApiRequest {
    let mut body = format!("Action={op}&Version=2010-05-15");
    for (k, v) in pairs {
        body.push_str(&format!("&{}={}", enc(k), enc(v)));
    }
    ApiRequest {
        service: "cloudformation".into(),
        method: http::Method::POST,
        path: "/".into(),
        query: Vec::new(),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from(body),
    }
}

async fn call(f: &Fixture, op: &str, pairs: &[(&str, &str)]) -> ApiResult {
    let request = form_request(op, pairs);
    let operation = CloudFormation.operation(&request)?;
    CloudFormation.call(&f.ctx, operation, request).await
}

async fn ok(f: &Fixture, op: &str, pairs: &[(&str, &str)]) -> String {
    let response = call(f, op, pairs)
        .await
        .unwrap_or_else(|e| panic!("{op} failed: {e}"));
    assert_eq!(response.status, 200);
    String::from_utf8(response.body.to_vec()).expect("utf-8")
}

async fn err(f: &Fixture, op: &str, pairs: &[(&str, &str)]) -> ApiError {
    match call(f, op, pairs).await {
        Ok(r) => panic!("{op} succeeded: {}", String::from_utf8_lossy(&r.body)),
        Err(e) => e,
    }
}

/// The text of every `<tag>` in `xml`, in order.
fn all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(t, _)| unescape(t)))
        .collect()
}

/// XML text as a client reads it.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn first(xml: &str, tag: &str) -> String {
    all(xml, tag)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

const CAPS: (&str, &str) = ("Capabilities.member.1", "CAPABILITY_NAMED_IAM");

fn small_template(policy_name: &str) -> String {
    serde_json::json!({
        "Description": "a policy and a rule",
        "Parameters": {
            "Topic": {"Type": "String", "Default": "a/b"},
            "Mode": {"Type": "String", "AllowedValues": ["refuse", "warn"], "Default": "refuse"}
        },
        "Resources": {
            "Policy": {"Type": "AWS::IoT::Policy", "Properties": {
                "PolicyName": policy_name,
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "iot:Publish",
                     "Resource": {"Fn::Sub": "arn:aws:iot:${AWS::Region}:${AWS::AccountId}:topic/${Topic}"}}]}
            }}
        },
        "Outputs": {"PolicyOut": {"Description": "the policy", "Value": {"Ref": "Policy"}}}
    })
    .to_string()
}

#[tokio::test]
async fn create_stack_deploys_the_real_template_and_describe_shows_status_parameters_outputs() {
    let f = fixture();
    let body = ok(
        &f,
        "CreateStack",
        &[
            ("StackName", STACK_NAME),
            ("TemplateBody", crate::vocabulary::STACK_TEMPLATE),
            ("Parameters.member.1.ParameterKey", "CodeKey"),
            ("Parameters.member.1.ParameterValue", "other/key.zip"),
            CAPS,
        ],
    )
    .await;
    assert!(body.contains(NAMESPACE), "{body}");
    let id = first(&body, "StackId");
    assert!(id.starts_with("arn:aws:cloudformation:us-east-1:"), "{id}");

    let describe = ok(&f, "DescribeStacks", &[("StackName", STACK_NAME)]).await;
    assert_eq!(first(&describe, "StackStatus"), "CREATE_COMPLETE");
    assert_eq!(first(&describe, "StackId"), id);
    let keys = all(&describe, "ParameterKey");
    let values = all(&describe, "ParameterValue");
    let code_key = keys
        .iter()
        .position(|k| k == "CodeKey")
        .expect("CodeKey listed");
    assert_eq!(values[code_key], "other/key.zip");
    assert!(
        keys.contains(&"CodeBucket".to_string()),
        "defaults listed: {keys:?}"
    );
    assert!(all(&describe, "OutputKey").contains(&"JitpProvisioningRoleArn".to_string()));
    // The same stack the TUI and `jitpilot status` read.
    let stack = f.ctx.cloud.store().get_stack(STACK_NAME).unwrap().unwrap();
    assert_eq!(stack.status, "CREATE_COMPLETE");
    assert!(!f.ctx.cloud.store().list_topic_rules().unwrap().is_empty());

    let events = ok(&f, "DescribeStackEvents", &[("StackName", STACK_NAME)]).await;
    let statuses = all(&events, "ResourceStatus");
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("CREATE_COMPLETE"),
        "newest first"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("CREATE_IN_PROGRESS")
    );
    let resources = ok(&f, "DescribeStackResources", &[("StackName", &id)]).await;
    assert!(all(&resources, "LogicalResourceId").contains(&"JitpRule".to_string()));
    let template = ok(&f, "GetTemplate", &[("StackName", STACK_NAME)]).await;
    assert!(template.contains("rule_jitp") || template.contains("JitpRule"));

    let again = err(
        &f,
        "CreateStack",
        &[
            ("StackName", STACK_NAME),
            ("TemplateBody", crate::vocabulary::STACK_TEMPLATE),
            CAPS,
        ],
    )
    .await;
    assert_eq!(
        (again.status, again.code.as_str()),
        (400, "AlreadyExistsException")
    );
}

#[tokio::test]
async fn missing_stacks_capabilities_and_parameters_are_refused_as_aws_does() {
    let f = fixture();
    let e = err(&f, "DescribeStacks", &[("StackName", "Nope")]).await;
    assert_eq!((e.status, e.code.as_str()), (400, "ValidationError"));
    assert!(
        e.message.contains("Stack with id Nope does not exist"),
        "{e}"
    );

    let e = err(
        &f,
        "CreateStack",
        &[
            ("StackName", "S"),
            ("TemplateBody", crate::vocabulary::STACK_TEMPLATE),
        ],
    )
    .await;
    assert_eq!(e.code, "InsufficientCapabilitiesException");
    assert!(e.message.contains("CAPABILITY_IAM"), "{e}");

    let tpl = small_template("P1");
    let e = err(
        &f,
        "CreateStack",
        &[
            ("StackName", "S"),
            ("TemplateBody", &tpl),
            ("Parameters.member.1.ParameterKey", "Nope"),
            ("Parameters.member.1.ParameterValue", "x"),
        ],
    )
    .await;
    assert!(e.message.contains("[Nope] do not exist"), "{e}");
    let e = err(
        &f,
        "CreateStack",
        &[
            ("StackName", "S"),
            ("TemplateBody", &tpl),
            ("Parameters.member.1.ParameterKey", "Mode"),
            ("Parameters.member.1.ParameterValue", "maybe"),
        ],
    )
    .await;
    assert!(e.message.contains("AllowedValues"), "{e}");
    let e = err(
        &f,
        "CreateStack",
        &[("StackName", "S"), ("TemplateBody", "{not json")],
    )
    .await;
    assert!(e.message.contains("Template format error"), "{e}");
    let e = err(&f, "CreateStack", &[("StackName", "S")]).await;
    assert!(e.message.contains("Template URL or Template Body"), "{e}");
    let e = err(
        &f,
        "CreateStack",
        &[("StackName", "1bad"), ("TemplateBody", &tpl)],
    )
    .await;
    assert!(e.message.contains("stackName"), "{e}");
    let e = err(&f, "NoSuchThing", &[]).await;
    assert_eq!(e.code, "UnknownOperationException");
    // Nothing of these refusals was recorded.
    assert!(f.ctx.cloud.store().list_stacks().unwrap().is_empty());
}

#[tokio::test]
async fn update_applies_changes_says_no_updates_when_none_and_reuses_previous_values() {
    let f = fixture();
    let tpl = small_template("P1");
    ok(
        &f,
        "CreateStack",
        &[
            ("StackName", "S"),
            ("TemplateBody", &tpl),
            ("Parameters.member.1.ParameterKey", "Topic"),
            ("Parameters.member.1.ParameterValue", "x/y"),
        ],
    )
    .await;
    let doc = f
        .ctx
        .cloud
        .store()
        .get_policy("P1")
        .unwrap()
        .unwrap()
        .document;
    assert!(doc.contains("topic/x/y"), "{doc}");

    let same = [
        ("StackName", "S"),
        ("UsePreviousTemplate", "true"),
        ("Parameters.member.1.ParameterKey", "Topic"),
        ("Parameters.member.1.UsePreviousValue", "true"),
    ];
    let e = err(&f, "UpdateStack", &same).await;
    assert_eq!(e.code, "ValidationError");
    assert_eq!(e.message, "No updates are to be performed.");

    ok(
        &f,
        "UpdateStack",
        &[
            ("StackName", "S"),
            ("UsePreviousTemplate", "true"),
            ("Parameters.member.1.ParameterKey", "Topic"),
            ("Parameters.member.1.ParameterValue", "z"),
        ],
    )
    .await;
    let describe = ok(&f, "DescribeStacks", &[("StackName", "S")]).await;
    assert_eq!(first(&describe, "StackStatus"), "UPDATE_COMPLETE");
    let doc = f
        .ctx
        .cloud
        .store()
        .get_policy("P1")
        .unwrap()
        .unwrap()
        .document;
    assert!(doc.contains("topic/z"), "{doc}");

    let e = err(
        &f,
        "UpdateStack",
        &[("StackName", "Nope"), ("TemplateBody", &tpl)],
    )
    .await;
    assert!(e.message.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn an_unsupported_resource_type_fails_the_stack_with_events_naming_it() {
    let f = fixture();
    let tpl = serde_json::json!({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "P", "PolicyDocument": {"Statement": []}}}
    }})
    .to_string();
    ok(
        &f,
        "CreateStack",
        &[("StackName", "S"), ("TemplateBody", &tpl)],
    )
    .await;
    let describe = ok(&f, "DescribeStacks", &[("StackName", "S")]).await;
    assert_eq!(first(&describe, "StackStatus"), "ROLLBACK_COMPLETE");
    assert!(first(&describe, "StackStatusReason").contains("[Queue]"));
    let events = ok(&f, "DescribeStackEvents", &[("StackName", "S")]).await;
    assert!(events.contains("<LogicalResourceId>Queue</LogicalResourceId>"));
    assert!(
        events.contains("AWS::SQS::Queue is not a resource type"),
        "{events}"
    );
    // Nothing was created, and the stack cannot be updated, only deleted.
    assert!(f.ctx.cloud.store().get_policy("P").unwrap().is_none());
    let e = err(
        &f,
        "UpdateStack",
        &[("StackName", "S"), ("TemplateBody", &tpl)],
    )
    .await;
    assert!(
        e.message
            .contains("ROLLBACK_COMPLETE state and can not be updated"),
        "{e}"
    );
    ok(&f, "DeleteStack", &[("StackName", "S")]).await;
    assert!(err(&f, "DescribeStacks", &[("StackName", "S")])
        .await
        .message
        .contains("does not exist"));
}

#[tokio::test]
async fn change_sets_create_describe_execute_and_an_empty_one_fails_as_the_cli_expects() {
    let f = fixture();
    let tpl = small_template("P2");
    let created = ok(
        &f,
        "CreateChangeSet",
        &[
            ("StackName", "S"),
            ("ChangeSetName", "cs-1"),
            ("ChangeSetType", "CREATE"),
            ("TemplateBody", &tpl),
        ],
    )
    .await;
    let cs_id = first(&created, "Id");
    // Before execution the stack is under review, and nothing exists.
    let describe = ok(&f, "DescribeStacks", &[("StackName", "S")]).await;
    assert_eq!(first(&describe, "StackStatus"), "REVIEW_IN_PROGRESS");
    assert!(f.ctx.cloud.store().get_policy("P2").unwrap().is_none());
    let cs = ok(&f, "DescribeChangeSet", &[("ChangeSetName", &cs_id)]).await;
    assert_eq!(first(&cs, "Status"), "CREATE_COMPLETE");
    assert_eq!(first(&cs, "ExecutionStatus"), "AVAILABLE");
    assert_eq!(first(&cs, "Action"), "Add");
    assert_eq!(first(&cs, "LogicalResourceId"), "Policy");

    ok(
        &f,
        "ExecuteChangeSet",
        &[("ChangeSetName", "cs-1"), ("StackName", "S")],
    )
    .await;
    let describe = ok(&f, "DescribeStacks", &[("StackName", "S")]).await;
    assert_eq!(first(&describe, "StackStatus"), "CREATE_COMPLETE");
    assert!(f.ctx.cloud.store().get_policy("P2").unwrap().is_some());

    // The same template again: FAILED with the words the aws CLI looks for.
    ok(
        &f,
        "CreateChangeSet",
        &[
            ("StackName", "S"),
            ("ChangeSetName", "cs-2"),
            ("TemplateBody", &tpl),
            ("Parameters.member.1.ParameterKey", "Topic"),
            ("Parameters.member.1.UsePreviousValue", "true"),
        ],
    )
    .await;
    let cs = ok(
        &f,
        "DescribeChangeSet",
        &[("ChangeSetName", "cs-2"), ("StackName", "S")],
    )
    .await;
    assert_eq!(first(&cs, "Status"), "FAILED");
    assert!(first(&cs, "StatusReason").contains("didn't contain changes"));
    let e = err(
        &f,
        "ExecuteChangeSet",
        &[("ChangeSetName", "cs-2"), ("StackName", "S")],
    )
    .await;
    assert_eq!(e.code, "InvalidChangeSetStatus");

    // A real change: Modify, then executed as an update.
    ok(
        &f,
        "CreateChangeSet",
        &[
            ("StackName", "S"),
            ("ChangeSetName", "cs-3"),
            ("TemplateBody", &tpl),
            ("Parameters.member.1.ParameterKey", "Topic"),
            ("Parameters.member.1.ParameterValue", "new/topic"),
        ],
    )
    .await;
    let cs = ok(
        &f,
        "DescribeChangeSet",
        &[("ChangeSetName", "cs-3"), ("StackName", "S")],
    )
    .await;
    assert_eq!(first(&cs, "Action"), "Modify");
    assert_eq!(first(&cs, "PhysicalResourceId"), "P2");
    ok(
        &f,
        "ExecuteChangeSet",
        &[("ChangeSetName", "cs-3"), ("StackName", "S")],
    )
    .await;
    let describe = ok(&f, "DescribeStacks", &[("StackName", "S")]).await;
    assert_eq!(first(&describe, "StackStatus"), "UPDATE_COMPLETE");
    // Executing removed the stack's change sets.
    let e = err(
        &f,
        "DescribeChangeSet",
        &[("ChangeSetName", "cs-2"), ("StackName", "S")],
    )
    .await;
    assert_eq!((e.status, e.code.as_str()), (404, "ChangeSetNotFound"));

    let e = err(
        &f,
        "CreateChangeSet",
        &[
            ("StackName", "S"),
            ("ChangeSetName", "x"),
            ("ChangeSetType", "CREATE"),
            ("TemplateBody", &tpl),
        ],
    )
    .await;
    assert!(e.message.contains("already exists"), "{e}");
    let summary = ok(&f, "GetTemplateSummary", &[("StackName", "S")]).await;
    assert_eq!(all(&summary, "ParameterKey"), ["Mode", "Topic"]);
}

#[tokio::test]
async fn template_url_reads_the_local_s3_and_delete_stack_removes_everything() {
    let f = fixture();
    let put = |method: http::Method, path: &str, body: &str| ApiRequest {
        service: "s3".into(),
        method,
        path: path.into(),
        query: Vec::new(),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from(body.to_string()),
    };
    for request in [
        put(http::Method::PUT, "/templates", ""),
        put(
            http::Method::PUT,
            "/templates/dir/t.json",
            &small_template("P3"),
        ),
    ] {
        let op = S3.operation(&request).unwrap();
        S3.call(&f.ctx, op, request).await.unwrap();
    }
    ok(
        &f,
        "CreateStack",
        &[
            ("StackName", "S"),
            ("TemplateURL", "http://127.0.0.1:4566/templates/dir/t.json"),
        ],
    )
    .await;
    assert!(f.ctx.cloud.store().get_policy("P3").unwrap().is_some());
    let e = err(
        &f,
        "CreateStack",
        &[
            ("StackName", "T"),
            (
                "TemplateURL",
                "https://templates.s3.amazonaws.com/missing.json",
            ),
        ],
    )
    .await;
    assert!(
        e.message
            .contains("TemplateURL must reference a valid S3 object"),
        "{e}"
    );

    ok(&f, "DeleteStack", &[("StackName", "S")]).await;
    assert!(f.ctx.cloud.store().get_policy("P3").unwrap().is_none());
    assert!(f.ctx.cloud.store().get_stack("S").unwrap().is_none());
    // Deleting what does not exist succeeds, as on AWS.
    ok(&f, "DeleteStack", &[("StackName", "S")]).await;
}

#[test]
fn s3_urls_of_every_style_name_bucket_and_key() {
    let cases = [
        ("http://127.0.0.1:4566/b/k/x.json", ("b", "k/x.json")),
        ("https://s3.amazonaws.com/b/k", ("b", "k")),
        (
            "https://s3.eu-west-1.amazonaws.com/b/a%20b?versionId=1",
            ("b", "a b"),
        ),
        ("https://b.s3.amazonaws.com/k", ("b", "k")),
        ("https://b.s3.us-east-1.amazonaws.com/dir/k", ("b", "dir/k")),
        ("s3://b/k", ("b", "k")),
    ];
    for (url, (bucket, key)) in cases {
        assert_eq!(
            s3_location(url),
            Some((bucket.to_string(), key.to_string())),
            "{url}"
        );
    }
    assert_eq!(s3_location("ftp://b/k"), None);
    assert_eq!(s3_location("http://host/onlybucket"), None);
}

#[test]
fn form_lists_and_structures_are_read_by_member_number() {
    let form = Form::new(vec![
        ("Capabilities.member.2".into(), "B".into()),
        ("Capabilities.member.1".into(), "A".into()),
        ("Parameters.member.10.ParameterKey".into(), "K10".into()),
        ("Parameters.member.2.ParameterKey".into(), "K2".into()),
        ("Parameters.member.2.ParameterValue".into(), "V2".into()),
    ]);
    assert_eq!(form.list("Capabilities"), ["A", "B"]);
    let s = form.structs("Parameters");
    assert_eq!(s[0]["ParameterKey"], "K2");
    assert_eq!(s[0]["ParameterValue"], "V2");
    assert_eq!(s[1]["ParameterKey"], "K10");
    assert_eq!(
        stack_name("arn:aws:cloudformation:us-east-1:1:stack/Name/abc"),
        "Name"
    );
}
