//! Tests of the rules engine's SQL: the sample's rule statement (topic(),
//! clientId(), principal()), WHERE and its operators, field paths, and how
//! payloads are selected.

use super::*;
use serde_json::json;

const TEMPLATE_SQL: &str = "SELECT * as data, topic() as topic, clientId() as client_id, principal() as cert_id FROM '/cert-rotation/create-man-cert/+/rqst'";

fn msg<'a>(topic: &'a str, payload: &'a [u8]) -> RuleMessage<'a> {
    RuleMessage {
        topic,
        payload,
        client_id: "IUQWXALODJESC1",
        principal: "abc123",
        timestamp: 1_700_000_000_000,
        user_properties: &[],
    }
}

fn run(sql: &str, topic: &str, payload: &str) -> Option<Value> {
    RuleSql::parse(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .evaluate(&msg(topic, payload.as_bytes()))
}

#[test]
fn the_template_statement_builds_the_rotation_event() {
    let sql = RuleSql::parse(TEMPLATE_SQL).expect("parses");
    assert_eq!(sql.topic_filter(), "/cert-rotation/create-man-cert/+/rqst");
    let topic = "/cert-rotation/create-man-cert/IUQWXALODJESC1/rqst";
    assert!(sql.matches_topic(topic));
    assert!(!sql.matches_topic("/cert-rotation/ack-man-cert/IUQWXALODJESC1/rqst"));
    let out = sql.evaluate(&msg(topic, br#"{"csr":"PEM"}"#));
    assert_eq!(
        out,
        Some(json!({
            "data": {"csr": "PEM"},
            "topic": topic,
            "client_id": "IUQWXALODJESC1",
            "cert_id": "abc123",
        }))
    );
}

#[test]
fn keywords_and_functions_are_case_insensitive() {
    let out = run(
        "select TOPIC(4) As serial, ClientID() as c, TIMESTAMP() from '/a/+/+/+'",
        "/a/b/SERIAL/d",
        "{}",
    );
    assert_eq!(
        out,
        Some(json!({"serial": "SERIAL", "c": "IUQWXALODJESC1", "timestamp": 1_700_000_000_000i64}))
    );
}

#[test]
fn where_filters_messages() {
    let sql = "SELECT * FROM 'sensors/#' WHERE temp > 30 AND (room = 'lab' OR NOT ok)";
    assert!(run(
        sql,
        "sensors/1",
        r#"{"temp": 31, "room": "lab", "ok": true}"#
    )
    .is_some());
    assert!(run(
        sql,
        "sensors/1",
        r#"{"temp": 31, "room": "hall", "ok": false}"#
    )
    .is_some());
    assert!(run(
        sql,
        "sensors/1",
        r#"{"temp": 31, "room": "hall", "ok": true}"#
    )
    .is_none());
    assert!(run(sql, "sensors/1", r#"{"temp": 30, "room": "lab"}"#).is_none());
    // Missing field: undefined, so the WHERE is not true.
    assert!(run(sql, "sensors/1", r#"{"room": "lab"}"#).is_none());
    // Type mismatch: undefined, not an error.
    assert!(run(sql, "sensors/1", r#"{"temp": "hot", "room": "lab"}"#).is_none());
}

#[test]
fn every_comparison_operator_works() {
    let cases = [
        ("n = 5", true),
        ("n <> 5", false),
        ("n != 4", true),
        ("n < 6", true),
        ("n <= 5", true),
        ("n > 5", false),
        ("n >= 5.0", true),
        ("s = 'x''y'", true),
        ("s < 'z'", true),
        ("b = true", true),
        ("b = FALSE", false),
        ("topic(2) = 'b'", true),
        ("clientId() = 'IUQWXALODJESC1'", true),
        ("principal() <> 'abc123'", false),
    ];
    for (cond, expected) in cases {
        let sql = format!("SELECT * FROM 'a/#' WHERE {cond}");
        let got = run(&sql, "a/b", r#"{"n": 5, "s": "x'y", "b": true}"#).is_some();
        assert_eq!(got, expected, "{cond}");
    }
}

#[test]
fn or_with_an_undefined_side_can_still_be_true() {
    let sql = "SELECT * FROM 'a' WHERE missing = 1 OR n = 1";
    assert!(run(sql, "a", r#"{"n": 1}"#).is_some());
    let sql = "SELECT * FROM 'a' WHERE missing = 1 AND n = 1";
    assert!(run(sql, "a", r#"{"n": 1}"#).is_none());
}

#[test]
fn field_paths_and_undefined_items() {
    let out = run(
        "SELECT a.b as x, a.b, missing.field as gone, topic(9) as nine, 'lit' as l, 7 as n FROM 'a'",
        "a",
        r#"{"a": {"b": [1, 2]}}"#,
    );
    assert_eq!(
        out,
        Some(json!({"x": [1, 2], "b": [1, 2], "l": "lit", "n": 7}))
    );
}

#[test]
fn unaliased_star_merges_the_payload() {
    let out = run("SELECT *, topic() as t FROM 'a/+'", "a/b", r#"{"k": 1}"#);
    assert_eq!(out, Some(json!({"k": 1, "t": "a/b"})));
    let out = run("SELECT * FROM 'a/+'", "a/b", r#"[1, 2]"#);
    assert_eq!(out, Some(json!([1, 2])));
}

#[test]
fn binary_payloads_are_base64_only_when_selected_whole() {
    let bytes = b"\x00\xffnot json";
    let encoded = json!(base64(bytes));
    let eval = |sql: &str| {
        RuleSql::parse(sql)
            .expect("parses")
            .evaluate(&msg("a", bytes))
    };
    assert_eq!(eval("SELECT * FROM 'a'"), Some(encoded.clone()));
    assert_eq!(
        eval("SELECT * as data FROM 'a'"),
        Some(json!({ "data": encoded }))
    );
    assert_eq!(
        eval("SELECT *, topic() as t FROM 'a'"),
        Some(json!({"t": "a"}))
    );
    assert_eq!(eval("SELECT x as x FROM 'a'"), Some(json!({})));
}

#[test]
fn the_jitp_rule_sees_dollar_events() {
    let sql = RuleSql::parse(
        "SELECT * as data, topic() as topic, clientId() as client_id, principal() as cert_id FROM '$aws/events/certificates/registered/#'",
    )
    .expect("parses");
    assert!(sql.matches_topic("$aws/events/certificates/registered/cafe01"));
    let payload = br#"{"certificateId":"c1","caCertificateId":"cafe01","certificateStatus":"PENDING_ACTIVATION"}"#;
    let out = sql
        .evaluate(&msg("$aws/events/certificates/registered/cafe01", payload))
        .expect("no WHERE");
    assert_eq!(out["data"]["certificateId"], "c1");
}

#[test]
fn parse_errors_name_the_position() {
    let cases = [
        ("SELECT FROM 'a'", 7, "expected a value"),
        ("SELECT * FROM a", 14, "in quotes"),
        ("SELECT * 'a'", 9, "expected FROM"),
        ("SELECT * FROM 'a' WHERE", 23, "expected a value"),
        ("SELECT * FROM 'a' WHERE x = ", 28, "expected a value"),
        ("SELECT * FROM 'a/#/b'", 14, "not a valid topic filter"),
        ("SELECT * FROM 'a", 14, "unterminated string"),
        ("SELECT upper(x) FROM 'a'", 7, "not supported"),
        ("SELECT topic(0) FROM 'a'", 13, "level number"),
        ("SELECT * FROM 'a' extra", 18, "unexpected"),
        ("SELECT * FROM 'a' WHERE (x = 1", 30, "expected `)`"),
        ("SELECT a; FROM 'a'", 8, "unexpected character"),
        ("DELETE FROM 'a'", 0, "expected SELECT"),
        ("SELECT * AS FROM 'a'", 12, "expected a name"),
    ];
    for (sql, position, needle) in cases {
        let err = RuleSql::parse(sql).expect_err(sql);
        assert_eq!(err.position, position, "{sql}: {err}");
        assert!(err.message.contains(needle), "{sql}: {err}");
        assert!(err
            .to_string()
            .contains(&format!("at character {position}")));
    }
}

#[test]
fn actions_parse_from_cloudformation_and_api_shapes() {
    let actions = json!([
        {"Lambda": {"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:CertRotation-cert-rotation"}},
        {"republish": {"topic": "out/${topic(2)}/${clientId()}", "qos": 1, "roleArn": "arn:aws:iam::1:role/r"}},
        {"Republish": {"Topic": "plain"}}
    ]);
    let parsed = RuleAction::parse_all("r", &actions).expect("parses");
    assert_eq!(
        parsed[0].function_name(),
        Some("CertRotation-cert-rotation")
    );
    assert_eq!(
        parsed[1],
        RuleAction::Republish {
            topic: "out/${topic(2)}/${clientId()}".into(),
            qos: 1
        }
    );
    assert_eq!(
        parsed[2],
        RuleAction::Republish {
            topic: "plain".into(),
            qos: 0
        }
    );
    let m = msg("in/dev7", br#"{"v": 1}"#);
    assert_eq!(
        parsed[1].republish_topic(&m).as_deref(),
        Some("out/dev7/IUQWXALODJESC1")
    );
    assert_eq!(parsed[0].republish_topic(&m), None);
}

#[test]
fn substitution_of_undefined_values_is_empty() {
    let action = RuleAction::Republish {
        topic: "x/${missing}/${v}/${topic(7)}".into(),
        qos: 0,
    };
    let m = msg("in/dev7", br#"{"v": 3}"#);
    assert_eq!(action.republish_topic(&m).as_deref(), Some("x//3/"));
}

#[test]
fn bad_actions_are_refused_with_the_index() {
    let cases = [
        (json!({"Lambda": {}}), "must be a list"),
        (json!([{"Lambda": {}}]), "FunctionArn"),
        (
            json!([{"S3": {"BucketName": "b"}}]),
            "not run by the local cloud",
        ),
        (json!([{"Republish": {"Topic": "t", "Qos": 2}}]), "0 or 1"),
        (json!([{"Republish": {"Topic": "t/${topic(}"}}]), "Topic"),
        (json!([{"Republish": {}}]), "Topic"),
        (
            json!([{"Lambda": {"FunctionArn": "a"}, "Republish": {"Topic": "t"}}]),
            "exactly one kind",
        ),
    ];
    for (actions, needle) in cases {
        let err = RuleAction::parse_all("rule_x", &actions).expect_err(&actions.to_string());
        let text = err.to_string();
        assert!(text.contains("rule_x") && text.contains(needle), "{text}");
    }
}

#[test]
fn function_names_come_from_arns() {
    assert_eq!(function_name_from_arn("arn:aws:lambda:r:1:function:f"), "f");
    assert_eq!(
        function_name_from_arn("arn:aws:lambda:r:1:function:f:PROD"),
        "f"
    );
    assert_eq!(function_name_from_arn("f"), "f");
}

#[test]
fn compiled_rules_carry_name_and_enabled() {
    let rule = TopicRule {
        name: "rule_ack_man_cert".into(),
        sql: TEMPLATE_SQL.replace("create", "ack"),
        actions: json!([{"Lambda": {"FunctionArn": "arn:aws:lambda:r:1:function:f"}}]),
        enabled: false,
    };
    let compiled = CompiledRule::compile(&rule).expect("compiles");
    assert!(!compiled.enabled);
    assert_eq!(
        compiled.sql.topic_filter(),
        "/cert-rotation/ack-man-cert/+/rqst"
    );
    let bad = TopicRule {
        sql: "SELECT * FROM".into(),
        ..rule
    };
    let err = CompiledRule::compile(&bad).expect_err("bad sql");
    assert!(
        err.to_string()
            .starts_with("topic rule rule_ack_man_cert: rule SQL, at character 13"),
        "{err}"
    );
}

proptest::proptest! {
    #[test]
    fn parsing_and_evaluating_never_panic(
        sql in "(SELECT|select|\\*|,|AS|FROM|WHERE|AND|OR|NOT|\\(|\\)|=|<>|<=|>|'a/\\+'|'x'|topic\\(2\\)|clientId\\(\\)|a\\.b|1|-2\\.5|true| ){0,16}",
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
    ) {
        if let Ok(parsed) = RuleSql::parse(&sql) {
            let _ = parsed.evaluate(&msg("a/b", &payload));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(sql in ".{0,48}") {
        let _ = RuleSql::parse(&sql);
    }
}

#[test]
fn get_user_property_reads_the_mqtt5_user_properties() {
    let props = [
        ("sdk".to_string(), "awsiot".to_string()),
        ("tag".to_string(), "a".to_string()),
        ("tag".to_string(), "b".to_string()),
    ];
    let message = RuleMessage {
        user_properties: &props,
        ..msg("dev/t", b"{}")
    };
    let out = RuleSql::parse(
        "SELECT get_user_property('sdk') as sdk, get_user_property('tag') as tags FROM 'dev/#' WHERE get_user_property('sdk') = 'awsiot'",
    )
    .expect("parses")
    .evaluate(&message)
    .expect("matches");
    assert_eq!(out, json!({"sdk": "awsiot", "tags": ["a", "b"]}));
    assert!(RuleSql::parse("SELECT get_user_property(1) FROM 'a'").is_err());
}
