//! Tests of `evaluate.rs`.
use super::super::attribute::item_from_wire;
use super::super::expression::{parse_condition, parse_projection, parse_update, Placeholders};
use super::*;
use serde_json::{json, Value};

fn item(v: Value) -> Item {
    item_from_wire(&v).unwrap()
}

fn holds(expr: &str, values: Value, it: &Item) -> bool {
    let ph = Placeholders::from_request(&json!({ "ExpressionAttributeValues": values })).unwrap();
    evaluate(
        &parse_condition(expr, "ConditionExpression", &ph).unwrap(),
        it,
    )
    .unwrap()
}

#[test]
fn conditions_hold_as_on_dynamodb() {
    let it = item(
        json!({"S": {"S": "CR_WHITELISTED"}, "n": {"N": "5"}, "tags": {"SS": ["a", "b"]},
                         "m": {"M": {"l": {"L": [{"N": "1"}, {"S": "x"}]}}}}),
    );
    let v = json!({":w": {"S": "CR_WHITELISTED"}, ":three": {"N": "3"}, ":ten": {"N": "10.0"},
                   ":a": {"S": "a"}, ":t": {"S": "SS"}, ":p": {"S": "CR_"}, ":x": {"S": "x"}});
    let cases = [
        ("S = :w", true),
        ("S <> :w", false),
        ("missing <> :w", true),
        ("missing = :w", false),
        ("n > :three AND n < :ten", true),
        ("n BETWEEN :three AND :ten", true),
        ("n < :w", false),
        ("n IN (:three, :ten)", false),
        ("attribute_exists(m.l[1])", true),
        ("attribute_not_exists(m.l[2])", true),
        ("contains(tags, :a)", true),
        ("contains(m.l, :x)", true),
        ("attribute_type(tags, :t)", true),
        ("begins_with(S, :p)", true),
        ("size(tags) < :three", true),
        ("NOT (S = :w OR n = :three)", false),
        ("n = :three OR S = :w AND n > :three", true),
    ];
    for (expr, expected) in cases {
        let mut used = v.clone();
        // Only pass the values the expression uses.
        used.as_object_mut()
            .unwrap()
            .retain(|k, _| expr.contains(k.as_str()));
        assert_eq!(holds(expr, used, &it), expected, "{expr}");
    }
}

#[test]
fn updates_set_remove_add_and_delete() {
    let mut it = item(
        json!({"k": {"S": "1"}, "n": {"N": "1"}, "l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}]},
                             "tags": {"SS": ["a", "b"]}, "m": {"M": {}}}),
    );
    let ph = Placeholders::from_request(&json!({"ExpressionAttributeValues": {
        ":one": {"N": "1"}, ":new": {"L": [{"N": "3"}]}, ":b": {"SS": ["b"]}, ":c": {"SS": ["c"]}, ":x": {"S": "x"}
    }})).unwrap();
    let u = parse_update(
        "SET n = n + :one, fresh = if_not_exists(fresh, :one), l = list_append(l, :new), m.inner = :x \
         REMOVE gone ADD tags :c, counter :one DELETE other :b",
        &ph,
    )
    .unwrap();
    let touched = apply_update(&u, &mut it, &["k"]).unwrap();
    assert!(touched.contains("n") && touched.contains("tags"));
    assert_eq!(it["n"], AttributeValue::N(Number::parse("2").unwrap()));
    assert_eq!(it["fresh"], AttributeValue::N(Number::parse("1").unwrap()));
    assert_eq!(
        it["counter"],
        AttributeValue::N(Number::parse("1").unwrap())
    );
    assert_eq!(it["tags"], item(json!({"t": {"SS": ["a", "b", "c"]}}))["t"]);
    assert!(matches!(&it["l"], AttributeValue::L(l) if l.len() == 4));
    assert_eq!(
        resolve(
            &it,
            &Path(vec![
                PathElem::Key("m".into()),
                PathElem::Key("inner".into())
            ])
        ),
        Some(&AttributeValue::S("x".into()))
    );
    let remove = parse_update("REMOVE l[0], l[2] DELETE tags :b", &ph).unwrap();
    apply_update(&remove, &mut it, &["k"]).unwrap();
    assert_eq!(
        it["l"],
        item(json!({"l": {"L": [{"N": "1"}, {"N": "3"}]}}))["l"]
    );
    assert_eq!(it["tags"], item(json!({"t": {"SS": ["a", "c"]}}))["t"]);
    let key = parse_update("SET k = :x", &ph).unwrap();
    assert!(apply_update(&key, &mut it, &["k"])
        .unwrap_err()
        .message
        .contains("part of the key"));
    let bad = parse_update("SET tags = tags + :one", &ph).unwrap();
    assert!(apply_update(&bad, &mut it, &["k"])
        .unwrap_err()
        .message
        .contains("incorrect data type"));
    let deep = parse_update("SET nowhere.deep = :one", &ph).unwrap();
    assert!(apply_update(&deep, &mut it, &["k"])
        .unwrap_err()
        .message
        .contains("invalid for update"));
}

#[test]
fn projections_keep_only_the_named_paths() {
    let it = item(
        json!({"a": {"S": "1"}, "b": {"M": {"c": {"S": "2"}, "d": {"S": "3"}}}, "l": {"L": [{"S": "x"}, {"S": "y"}]}}),
    );
    let ph = Placeholders::default();
    let out = project(
        &it,
        &parse_projection("a, b.c, l[1], missing", &ph).unwrap(),
    );
    assert_eq!(
        out,
        item(json!({"a": {"S": "1"}, "b": {"M": {"c": {"S": "2"}}}, "l": {"L": [{"S": "y"}]}}))
    );
}
