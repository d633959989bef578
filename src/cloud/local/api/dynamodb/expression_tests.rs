//! Tests of `expression.rs`.
use super::*;
use serde_json::{json, Value};

fn ph(body: Value) -> Placeholders {
    Placeholders::from_request(&body).unwrap()
}

fn key(k: &str) -> PathElem {
    PathElem::Key(k.into())
}

#[test]
fn conditions_parse_with_precedence_and_placeholders() {
    let p = ph(json!({
        "ExpressionAttributeNames": {"#s": "CrState"},
        "ExpressionAttributeValues": {":w": {"S": "CR_WHITELISTED"}, ":n": {"N": "1"}}
    }));
    let c = parse_condition(
        "attribute_exists(SerialNumber) AND NOT #s = :w OR a.b[2] < :n",
        "ConditionExpression",
        &p,
    )
    .unwrap();
    let Condition::Or(left, right) = c else {
        panic!("{c:?}")
    };
    assert!(matches!(*left, Condition::And(_, _)));
    let Condition::Compare(Operand::Path(path), Comparator::Lt, _) = *right else {
        panic!()
    };
    assert_eq!(path.0, vec![key("a"), key("b"), PathElem::Index(2)]);
    p.check_all_used().unwrap();
    let c = parse_condition(
        "(x BETWEEN :n AND :n) and size(y) >= :n AND x IN (:n, :n)",
        "FilterExpression",
        &p,
    )
    .unwrap();
    assert!(matches!(c, Condition::And(_, _)));
}

#[test]
fn bad_expressions_say_what_and_where() {
    let p = ph(json!({"ExpressionAttributeValues": {":v": {"S": "x"}}}));
    for (text, needle) in [
        ("a = ", "<EOF>"),
        ("a == :v", "token: \"=\""),
        ("a = :missing", "not defined; attribute value: :missing"),
        ("#nope = :v", "attribute name: #nope"),
        (
            "frobnicate(a)",
            "Invalid function name; function: frobnicate",
        ),
        ("", "can not be empty"),
        ("a = :v)", "token: \")\""),
        ("a ! :v", "token: \"!\""),
    ] {
        let err = parse_condition(text, "ConditionExpression", &p).unwrap_err();
        assert!(err.message.contains(needle), "{text:?}: {}", err.message);
        assert!(
            err.message.contains("ConditionExpression")
                || needle.contains("not defined")
                || needle.contains("#nope"),
            "{}",
            err.message
        );
        assert_eq!(err.code, "ValidationException");
    }
    let unused = ph(json!({"ExpressionAttributeValues": {":v": {"S": "x"}, ":u": {"S": "y"}}}));
    parse_condition("a = :v", "ConditionExpression", &unused).unwrap();
    assert!(unused
        .check_all_used()
        .unwrap_err()
        .message
        .contains("unused in expressions: keys: {:u}"));
}

#[test]
fn updates_parse_each_clause_once_without_overlaps() {
    let p = ph(
        json!({"ExpressionAttributeValues": {":one": {"N": "1"}, ":l": {"L": []}, ":s": {"SS": ["a"]}}}),
    );
    let u = parse_update(
        "SET n = if_not_exists(n, :one) + :one, l = list_append(l, :l) REMOVE gone, other[1] ADD c :one DELETE tags :s",
        &p,
    )
    .unwrap();
    assert_eq!(u.set.len(), 2);
    assert_eq!(u.remove.len(), 2);
    assert_eq!(u.add.len(), 1);
    assert_eq!(u.delete.len(), 1);
    assert!(parse_update("SET a = :one SET b = :one", &p)
        .unwrap_err()
        .message
        .contains("only be used once"));
    assert!(parse_update("SET a = :one REMOVE a.b", &p)
        .unwrap_err()
        .message
        .contains("overlap"));
    assert!(parse_update("UPSERT a = :one", &p)
        .unwrap_err()
        .message
        .contains("UPSERT"));
    assert_eq!(
        parse_projection("a, b.c[0]", &p).unwrap(),
        vec![
            Path(vec![key("a")]),
            Path(vec![key("b"), key("c"), PathElem::Index(0)])
        ]
    );
}
