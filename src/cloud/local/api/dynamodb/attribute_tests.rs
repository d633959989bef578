//! Tests of `attribute.rs`.
use super::*;
use serde_json::json;

fn n(text: &str) -> Number {
    Number::parse(text).unwrap()
}

#[test]
fn numbers_are_normalized_compared_and_added_exactly() {
    assert_eq!(n("1.50"), n("15e-1"));
    assert_eq!(n("1.50").to_string(), "1.5");
    assert_eq!(n("-0.00100").to_string(), "-0.001");
    assert_eq!(n("12e2").to_string(), "1200");
    assert_eq!(n("-0").to_string(), "0");
    assert!(n("-2") < n("-1.5"));
    assert!(n("0.1") < n("0.11"));
    assert!(n("9") < n("10"));
    assert_eq!(n("0.1").add(&n("0.2")).unwrap(), n("0.3"));
    assert_eq!(n("100").add(&n("-100.5")).unwrap(), n("-0.5"));
    assert_eq!(n("-3").add(&n("5")).unwrap().to_string(), "2");
    assert_eq!(
        n("99999999999999999999").add(&n("1")).unwrap().to_string(),
        "100000000000000000000"
    );
    for bad in [
        "",
        "-",
        "1x",
        "1e",
        "NaN",
        "Infinity",
        "1.2.3",
        " 1",
        "1e999999999",
    ] {
        assert!(Number::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Number::parse(&"1".repeat(39)).is_err());
    assert!(Number::parse("1e126").is_err());
    assert!(Number::parse("1e-131").is_err());
    assert!(Number::parse("9.9e125").is_ok());
    let big = n(&format!("9.{}e125", "9".repeat(37)));
    assert!(big.add(&big).is_err());
}

#[test]
fn every_type_round_trips_through_the_wire() {
    let wire = json!({
        "s": {"S": "text"}, "n": {"N": "1.50"}, "b": {"B": "AAEC"},
        "t": {"BOOL": true}, "z": {"NULL": true},
        "m": {"M": {"in": {"L": [{"S": "a"}, {"N": "2"}]}}},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AA=="]}
    });
    let item = item_from_wire(&wire).unwrap();
    assert_eq!(item["b"], AttributeValue::B(vec![0, 1, 2]));
    let back = Value::Object(item_to_wire(&item));
    let mut expected = wire.clone();
    expected["n"] = json!({"N": "1.5"});
    assert_eq!(back, expected);
    // Sets are sets.
    assert_eq!(
        AttributeValue::from_wire(&json!({"SS": ["a", "b"]})).unwrap(),
        AttributeValue::from_wire(&json!({"SS": ["b", "a"]})).unwrap()
    );
}

#[test]
fn malformed_values_are_refused_with_what_is_wrong() {
    for (wire, needle) in [
        (json!({}), "empty"),
        (json!({"S": "a", "N": "1"}), "more than one"),
        (json!({"S": 5}), "must be a string"),
        (json!({"N": "one"}), "numeric"),
        (json!({"X": "a"}), "not an AttributeValue type"),
        (json!({"NULL": false}), "true"),
        (json!({"SS": []}), "empty"),
        (json!({"SS": ["a", "a"]}), "duplicates"),
        (json!({"NS": ["1", "1.0"]}), "duplicates"),
        (json!({"B": "!!"}), "base64"),
        (json!("S"), "must be an object"),
    ] {
        let err = AttributeValue::from_wire(&wire).unwrap_err();
        assert!(err.message.contains(needle), "{wire}: {}", err.message);
        assert_eq!(err.status, 400);
    }
    let mut deep = json!({"S": "x"});
    for _ in 0..40 {
        deep = json!({"L": [deep]});
    }
    assert!(AttributeValue::from_wire(&deep)
        .unwrap_err()
        .message
        .contains("Nesting"));
}
