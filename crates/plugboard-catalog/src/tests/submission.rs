use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::*;

const FORM: &str = r#"id: form
name: Form
auth_mode: pat
fields:
  - {key: token, label: Token, type: password, required: true, validation: {pattern: "^ghp_[A-Za-z0-9]+$", min_length: 6, max_length: 40}}
  - {key: port, type: number, default: "5432", validation: {min: 1, max: 65535}}
  - {key: ssl, type: bool, default: "false"}
  - {key: region, type: select, choices: [eu, us]}
  - {key: org, type: text}
  - {key: name, type: text, required: true, default: anon}
mcp:
  transport: stdio
  command: x
  args: ["${field.token}", "${field.org}"]
"#;

fn submit(v: Value) -> Result<BTreeMap<String, String>, FieldError> {
    manifest(FORM).validate_submission(v.as_object().unwrap())
}

#[track_caller]
fn field_error(v: Value, field: &str, needle: &str) -> FieldError {
    let e = submit(v.clone()).unwrap_err();
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(needle), "expected `{needle}` in: {e}");
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("field `{field}`: ")), "{shown}");
    // The error never repeats a submitted value.
    for value in v.as_object().unwrap().values() {
        if let Some(s) = value.as_str() {
            if s.len() >= 4 {
                assert!(!shown.contains(s), "the error leaks `{s}`: {shown}");
            }
        }
    }
    e
}

#[test]
fn a_valid_submission_gets_defaults_and_normalised_values() {
    let out =
        submit(json!({"token": "ghp_abcdef", "port": 5433, "ssl": true, "region": "eu"})).unwrap();
    let expected: BTreeMap<String, String> = [
        ("token", "ghp_abcdef"),
        ("port", "5433"),
        ("ssl", "true"),
        ("region", "eu"),
        ("name", "anon"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(out, expected);
}

#[test]
fn an_absent_optional_field_without_a_default_is_left_out() {
    let out = submit(json!({"token": "ghp_abcdef", "org": ""})).unwrap();
    assert!(!out.contains_key("org"));
    assert!(!out.contains_key("region"));
    assert_eq!(out["port"], "5432");
    assert_eq!(out["ssl"], "false");
}

#[test]
fn a_missing_required_field_is_rejected_naming_it() {
    let e = field_error(json!({}), "token", "is required");
    assert_eq!(e.to_string(), "field `token`: is required");
}

#[test]
fn an_empty_string_counts_as_missing_and_null_as_absent() {
    field_error(json!({"token": ""}), "token", "is required");
    field_error(json!({"token": null}), "token", "is required");
}

#[test]
fn a_default_satisfies_a_required_field_even_when_the_value_is_empty() {
    let out = submit(json!({"token": "ghp_abcdef", "name": ""})).unwrap();
    assert_eq!(out["name"], "anon");
}

#[test]
fn an_unknown_key_is_rejected_naming_the_key() {
    field_error(
        json!({"token": "ghp_abcdef", "tokn": "ghp_abcdef"}),
        "tokn",
        "is not a field of this connector",
    );
}

#[test]
fn a_number_field_takes_finite_numbers_as_strings_or_json_numbers() {
    assert_eq!(
        submit(json!({"token": "ghp_abcdef", "port": "1e3"})).unwrap()["port"],
        "1e3"
    );
    assert_eq!(
        submit(json!({"token": "ghp_abcdef", "port": 2.5})).unwrap()["port"],
        "2.5"
    );
    for bad in ["abcd", "inf", "NaN", " 80", "0x50"] {
        field_error(
            json!({"token": "ghp_abcdef", "port": bad}),
            "port",
            "must be a number",
        );
    }
    field_error(
        json!({"token": "ghp_abcdef", "port": [1]}),
        "port",
        "must be a number or a string",
    );
}

#[test]
fn number_bounds_are_enforced() {
    field_error(
        json!({"token": "ghp_abcdef", "port": 0}),
        "port",
        "must be at least 1",
    );
    field_error(
        json!({"token": "ghp_abcdef", "port": "70000"}),
        "port",
        "must be at most 65535",
    );
}

#[test]
fn a_bool_field_takes_true_or_false() {
    assert_eq!(
        submit(json!({"token": "ghp_abcdef", "ssl": "true"})).unwrap()["ssl"],
        "true"
    );
    assert_eq!(
        submit(json!({"token": "ghp_abcdef", "ssl": false})).unwrap()["ssl"],
        "false"
    );
    field_error(
        json!({"token": "ghp_abcdef", "ssl": "yes!"}),
        "ssl",
        "must be `true` or `false`",
    );
    field_error(
        json!({"token": "ghp_abcdef", "ssl": 1}),
        "ssl",
        "must be a bool or a string",
    );
}

#[test]
fn a_select_value_must_be_one_of_the_choices() {
    field_error(
        json!({"token": "ghp_abcdef", "region": "asia"}),
        "region",
        "must be one of: eu, us",
    );
}

#[test]
fn a_text_field_takes_only_strings() {
    field_error(
        json!({"token": "ghp_abcdef", "org": 5}),
        "org",
        "must be a string",
    );
    field_error(
        json!({"token": "ghp_abcdef", "org": true}),
        "org",
        "must be a string",
    );
    field_error(json!({"token": 123456}), "token", "must be a string");
}

#[test]
fn the_pattern_must_match_the_whole_value_and_the_error_hides_the_value() {
    field_error(
        json!({"token": "xghp_abcdef"}),
        "token",
        "does not match the pattern",
    );
    field_error(
        json!({"token": "ghp_abcdef!"}),
        "token",
        "does not match the pattern",
    );
}

#[test]
fn lengths_are_counted_in_characters() {
    field_error(json!({"token": "ghp_a"}), "token", "at least 6 characters");
    let long = format!("ghp_{}", "a".repeat(40));
    field_error(json!({"token": long}), "token", "at most 40 characters");
    let m = manifest(
        &FORM
            .replace("min_length: 6, max_length: 40", "max_length: 3")
            .replace("^ghp_[A-Za-z0-9]+$", ".+"),
    );
    // Three characters, nine bytes.
    assert!(m
        .validate_submission(json!({"token": "äöü"}).as_object().unwrap())
        .is_ok());
}

#[test]
fn a_nul_character_or_an_oversized_value_is_rejected() {
    field_error(json!({"token": "ghp_abc\u{0}def"}), "token", "NUL");
    let huge = "a".repeat(MAX_VALUE_BYTES + 1);
    field_error(
        json!({"token": "ghp_abcdef", "org": huge}),
        "org",
        "too long",
    );
}

#[test]
fn a_huge_unknown_key_is_shown_truncated() {
    let key = "k".repeat(500);
    let e = submit(json!({ key: "x" })).unwrap_err();
    assert!(e.field.chars().count() <= 65, "{}", e.field);
}

#[test]
fn secret_keys_are_the_secret_fields() {
    assert_eq!(manifest(FORM).secret_keys().collect::<Vec<_>>(), ["token"]);
    assert_eq!(
        manifest(SPEC_EXAMPLE).secret_keys().collect::<Vec<_>>(),
        ["password"]
    );
}

#[test]
fn rendering_an_optional_blank_field_gives_an_empty_argument() {
    let m = manifest(FORM);
    let fields = submit(json!({"token": "ghp_abcdef"})).unwrap();
    let derived = m.resolve_derived(&fields, "https://pb").unwrap();
    let ctx = RenderContext {
        fields: &fields,
        derived: &derived,
        instance_url: "https://pb",
        oauth_access_token: None,
    };
    let args: Vec<String> = m.mcp.args.iter().map(|a| a.render(&ctx).unwrap()).collect();
    assert_eq!(args, ["ghp_abcdef", ""]);
}
