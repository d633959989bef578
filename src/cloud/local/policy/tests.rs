//! Tests of the policy evaluator as AWS IoT evaluates: resource ARNs, default
//! deny and explicit deny, wildcards, policy variables, and the stack
//! template's two policies (in progress, rotation complete).

use super::*;
use crate::vocabulary::STACK_TEMPLATE as TEMPLATE;

const SERIAL: &str = "IUQWXALODJESC1";

fn ctx<'a>(client_id: &'a str, thing: Option<&'a str>) -> RequestContext<'a> {
    RequestContext {
        client_id,
        thing_name: thing,
        cert_common_name: thing,
    }
}

fn policy(doc: serde_json::Value) -> CompiledPolicy {
    CompiledPolicy::parse("p", &doc.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn decide(p: &[CompiledPolicy], action: IotAction, name: &str, c: &RequestContext<'_>) -> Decision {
    evaluate(p, action, &resource_arn(action, name), c)
}

/// The template's policy document, resolved as the stack engine would:
/// `${AWS::...}` pseudo parameters filled in, `${!x}` escapes turned into `${x}`.
fn template_policy(logical_id: &str) -> CompiledPolicy {
    let template: serde_json::Value = serde_json::from_str(TEMPLATE).expect("template is JSON");
    let resource = &template["Resources"][logical_id]["Properties"];
    let mut doc = resource["PolicyDocument"].clone();
    resolve_subs(&mut doc);
    let name = resource["PolicyName"].as_str().expect("named policy");
    CompiledPolicy::parse(name, &doc.to_string()).expect("template policy parses")
}

fn resolve_subs(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") => {
            let text = map["Fn::Sub"].as_str().expect("string Sub");
            *value = Value::String(
                text.replace("${AWS::Partition}", "aws")
                    .replace("${AWS::Region}", LOCAL_REGION)
                    .replace("${AWS::AccountId}", LOCAL_ACCOUNT_ID)
                    .replace("${!", "${"),
            );
        }
        Value::Object(map) => map.values_mut().for_each(resolve_subs),
        Value::Array(list) => list.iter_mut().for_each(resolve_subs),
        _ => {}
    }
}

#[test]
fn resource_arns_follow_aws() {
    assert_eq!(
        resource_arn(IotAction::Connect, SERIAL),
        format!("arn:aws:iot:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:client/{SERIAL}")
    );
    assert!(resource_arn(IotAction::Publish, "/a/b").ends_with(":topic//a/b"));
    assert!(resource_arn(IotAction::Receive, "a").ends_with(":topic/a"));
    assert!(resource_arn(IotAction::Subscribe, "a/+").ends_with(":topicfilter/a/+"));
}

#[test]
fn default_deny_allow_and_explicit_deny() {
    let allow_all = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]
    }));
    let deny_secret = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": {"Effect": "Deny", "Action": ["iot:Publish", "iot:Receive"], "Resource": "arn:aws:iot:*:*:topic/secret/*"}
    }));
    let c = ctx("dev", None);
    assert_eq!(
        decide(&[], IotAction::Connect, "dev", &c),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            std::slice::from_ref(&allow_all),
            IotAction::Publish,
            "secret/x",
            &c
        ),
        Decision::Allow
    );
    let both = [allow_all, deny_secret];
    assert_eq!(
        decide(&both, IotAction::Publish, "secret/x", &c),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&both, IotAction::Subscribe, "secret/x", &c),
        Decision::Allow
    );
    assert_eq!(
        decide(&both, IotAction::Publish, "public/x", &c),
        Decision::Allow
    );
    assert!(!Decision::ExplicitDeny.is_allowed());
}

#[test]
fn actions_match_case_insensitively_with_wildcards() {
    let p = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["IOT:pub*", "iot:Rec?ive"], "Resource": "*"}]
    }));
    let c = ctx("dev", None);
    assert!(decide(std::slice::from_ref(&p), IotAction::Publish, "t", &c).is_allowed());
    assert!(decide(std::slice::from_ref(&p), IotAction::Receive, "t", &c).is_allowed());
    assert!(!decide(std::slice::from_ref(&p), IotAction::Connect, "dev", &c).is_allowed());
    assert!(!decide(std::slice::from_ref(&p), IotAction::Subscribe, "t", &c).is_allowed());
}

#[test]
fn resource_wildcards_star_and_question_mark() {
    let p = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Publish",
            "Resource": ["arn:aws:iot:*:*:topic/a/*/c", "arn:aws:iot:*:*:topic/dev-??"]}]
    }));
    let c = ctx("dev", None);
    let ok = |t: &str| decide(std::slice::from_ref(&p), IotAction::Publish, t, &c).is_allowed();
    assert!(ok("a/b/c"));
    assert!(ok("a/b/x/c"), "IAM `*` crosses `/`");
    assert!(ok("a//c"));
    assert!(!ok("a/b/d"));
    assert!(ok("dev-01"));
    assert!(ok("dev-äö"), "`?` is one character, not one byte");
    assert!(!ok("dev-1"));
    assert!(!ok("dev-123"));
}

#[test]
fn policy_variables_are_substituted_literally() {
    let p = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/cn/${iot:Certificate.Subject.CommonName}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/x/${iot:Connection.Thing.Attributes[kind]}"}
        ]
    }));
    let c = ctx("dev-1", Some("dev-1"));
    assert!(decide(std::slice::from_ref(&p), IotAction::Connect, "dev-1", &c).is_allowed());
    assert!(decide(std::slice::from_ref(&p), IotAction::Publish, "cn/dev-1", &c).is_allowed());
    assert!(!decide(std::slice::from_ref(&p), IotAction::Publish, "cn/dev-2", &c).is_allowed());
    // Unknown variables never resolve.
    assert!(!decide(std::slice::from_ref(&p), IotAction::Subscribe, "x/", &c).is_allowed());
    // A clientId with `*` is not a wildcard once substituted.
    let star = ctx("*", None);
    assert!(decide(std::slice::from_ref(&p), IotAction::Connect, "*", &star).is_allowed());
    assert!(!decide(std::slice::from_ref(&p), IotAction::Connect, "dev-1", &star).is_allowed());
}

#[test]
fn iam_escapes_and_old_version_keep_text_literal() {
    let escaped = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/a${*}b"}]
    }));
    let c = ctx("dev", None);
    assert!(decide(
        std::slice::from_ref(&escaped),
        IotAction::Publish,
        "a*b",
        &c
    )
    .is_allowed());
    assert!(!decide(
        std::slice::from_ref(&escaped),
        IotAction::Publish,
        "axb",
        &c
    )
    .is_allowed());
    let old = policy(serde_json::json!({
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}]
    }));
    assert!(!decide(std::slice::from_ref(&old), IotAction::Connect, "dev", &c).is_allowed());
    assert!(decide(
        std::slice::from_ref(&old),
        IotAction::Connect,
        "${iot:ClientId}",
        &c
    )
    .is_allowed());
}

#[test]
fn conditions_err_on_the_safe_side() {
    let p = policy(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:*", "Resource": "*", "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
            {"Effect": "Deny", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/bad", "Condition": {"x": {}}}
        ]
    }));
    let c = ctx("dev", None);
    assert!(!decide(std::slice::from_ref(&p), IotAction::Publish, "t", &c).is_allowed());
    assert!(decide(std::slice::from_ref(&p), IotAction::Connect, "dev", &c).is_allowed());
    assert_eq!(
        decide(std::slice::from_ref(&p), IotAction::Connect, "bad", &c),
        Decision::ExplicitDeny
    );
}

#[test]
fn malformed_documents_say_what_is_wrong() {
    let cases = [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"Version":"2012-10-17"}"#, "no Statement"),
        (r#"{"Version":"2019","Statement":[]}"#, "Version"),
        (
            r#"{"Statement":[{"Action":"iot:*","Resource":"*"}]}"#,
            "Statement[0]: Effect is missing",
        ),
        (
            r#"{"Statement":[{"Effect":"allow","Action":"iot:*","Resource":"*"}]}"#,
            "Statement[0]: Effect",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "Statement[0]: Action is missing",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            "Action must be",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":[1]}]}"#,
            "Resource must hold strings",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","NotResource":"*"}]}"#,
            "NotResource is not supported",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}, 3]}"#,
            "Statement[1]: must be an object",
        ),
    ];
    for (doc, needle) in cases {
        let err = CompiledPolicy::parse("MyPolicy", doc)
            .expect_err(doc)
            .to_string();
        assert!(err.starts_with("policy MyPolicy: "), "{err}");
        assert!(err.contains(needle), "{doc}: {err}");
    }
}

#[test]
fn the_in_progress_policy_allows_only_the_device_own_create_topics() {
    let p = [template_policy("InProgressCertPolicy")];
    assert_eq!(p[0].name(), "CrInProgressCertPolicy");
    let me = ctx(SERIAL, Some(SERIAL));
    let create_rqst = format!("/cert-rotation/create-man-cert/{SERIAL}/rqst");
    let create_rspn = format!("/cert-rotation/create-man-cert/{SERIAL}/rspn");
    assert!(decide(&p, IotAction::Connect, SERIAL, &me).is_allowed());
    assert!(decide(&p, IotAction::Publish, &create_rqst, &me).is_allowed());
    assert!(decide(&p, IotAction::Subscribe, &create_rspn, &me).is_allowed());
    assert!(decide(&p, IotAction::Receive, &create_rspn, &me).is_allowed());
    // Not its responses to publish, not its requests to read.
    assert!(!decide(&p, IotAction::Publish, &create_rspn, &me).is_allowed());
    assert!(!decide(&p, IotAction::Subscribe, &create_rqst, &me).is_allowed());
    // Not another device's topics, not wildcards, not the ack step, not app topics.
    assert!(!decide(
        &p,
        IotAction::Publish,
        "/cert-rotation/create-man-cert/OTHER/rqst",
        &me
    )
    .is_allowed());
    assert!(!decide(
        &p,
        IotAction::Subscribe,
        "/cert-rotation/create-man-cert/+/rspn",
        &me
    )
    .is_allowed());
    assert!(!decide(
        &p,
        IotAction::Publish,
        &format!("/cert-rotation/ack-man-cert/{SERIAL}/rqst"),
        &me
    )
    .is_allowed());
    assert!(!decide(
        &p,
        IotAction::Publish,
        &format!("things/{SERIAL}/data"),
        &me
    )
    .is_allowed());
    // Another clientId than the thing's name is refused.
    assert!(!decide(&p, IotAction::Connect, "OTHER", &me).is_allowed());
}

#[test]
fn template_policies_grant_nothing_without_a_thing() {
    let unattached = ctx(SERIAL, None);
    for logical in ["InProgressCertPolicy", "CertRotationCompleteCertPolicy"] {
        let p = [template_policy(logical)];
        assert_eq!(
            decide(&p, IotAction::Connect, SERIAL, &unattached),
            Decision::ImplicitDeny
        );
        let topic = format!("/cert-rotation/create-man-cert/{SERIAL}/rqst");
        assert_eq!(
            decide(&p, IotAction::Publish, &topic, &unattached),
            Decision::ImplicitDeny
        );
    }
}

#[test]
fn the_complete_policy_adds_ack_and_app_topics() {
    let p = [template_policy("CertRotationCompleteCertPolicy")];
    assert_eq!(p[0].name(), "CrCertRotationCompleteCertPolicy");
    let me = ctx(SERIAL, Some(SERIAL));
    let ok = |a, t: &str| decide(&p, a, t, &me).is_allowed();
    assert!(ok(IotAction::Connect, SERIAL));
    assert!(ok(
        IotAction::Publish,
        &format!("/cert-rotation/ack-man-cert/{SERIAL}/rqst")
    ));
    assert!(ok(
        IotAction::Subscribe,
        &format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn")
    ));
    assert!(ok(
        IotAction::Receive,
        &format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn")
    ));
    assert!(ok(
        IotAction::Publish,
        &format!("/cert-rotation/create-man-cert/{SERIAL}/rqst")
    ));
    assert!(ok(
        IotAction::Publish,
        &format!("things/{SERIAL}/telemetry")
    ));
    assert!(ok(
        IotAction::Subscribe,
        &format!("things/{SERIAL}/commands")
    ));
    assert!(!ok(IotAction::Publish, "things/OTHER/telemetry"));
    assert!(!ok(
        IotAction::Publish,
        &format!("/cert-rotation/ack-man-cert/{SERIAL}/rspn")
    ));
    assert!(!ok(IotAction::Subscribe, "#"));
}

/// The obvious recursive definition of IAM wildcards, to check `glob` against.
fn reference_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| reference_match(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && reference_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_match(rest, &text[1..]),
    }
}

proptest::proptest! {
    #[test]
    fn wildcards_match_like_the_reference(pattern in "[ab/é*?]{0,8}", text in "[ab/é]{0,10}") {
        let p = policy(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": pattern.clone()}]
        }));
        let c = ctx("dev", None);
        let got = evaluate(std::slice::from_ref(&p), IotAction::Publish, &text, &c).is_allowed();
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        proptest::prop_assert_eq!(got, reference_match(&chars(&pattern), &chars(&text)));
    }

    #[test]
    fn parsing_any_text_never_panics(doc in ".{0,64}") {
        let _ = CompiledPolicy::parse("p", &doc);
    }
}
