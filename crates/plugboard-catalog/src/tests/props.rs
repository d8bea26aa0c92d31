use proptest::prelude::*;

use super::*;
use crate::*;

/// Tokens that make YAML-ish (and manifest-ish) documents likely.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(", ".to_owned()),
        Just("\"".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!tag ".to_owned()),
        Just("~".to_owned()),
        Just("${field.token}".to_owned()),
        Just("${derived.dsn|url}".to_owned()),
        Just("${".to_owned()),
        prop::sample::select(vec![
            "id",
            "name",
            "auth_mode",
            "pat",
            "none",
            "byo_oauth",
            "mcp_oauth",
            "conn_string",
            "fields",
            "key",
            "type",
            "password",
            "select",
            "number",
            "bool",
            "choices",
            "default",
            "validation",
            "pattern",
            "min",
            "max",
            "min_length",
            "mcp",
            "transport",
            "stdio",
            "streamable-http",
            "command",
            "args",
            "endpoint",
            "headers",
            "env",
            "verify",
            "http",
            "sql",
            "mcp_method",
            "url",
            "expect_status",
            "oauth",
            "derived",
            "brand",
            "logo",
            "color",
            "docs",
            "token",
            "dsn",
            "5432",
            "-1",
            "1e999",
            ".nan",
            "true",
            "https://x",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9#|.*()\\\\]{1,4}",
    ];
    prop::collection::vec(token, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_manifest_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = parse_manifest("x.yaml", &s);
        let _ = parse_manifest("x.json", &s);
    }

    #[test]
    fn parse_manifest_never_panics_on_yamlish_input(s in yamlish()) {
        let _ = parse_manifest("x.yaml", &s);
    }

    #[test]
    fn parse_manifest_never_panics_on_a_mutated_valid_manifest(
        cut in 0usize..2000, len in 0usize..20, insert in "\\PC{0,8}"
    ) {
        for base in [SPEC_EXAMPLE, PAT_HTTP] {
            let chars: Vec<char> = base.chars().collect();
            let at = cut % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            let mutated: String = chars.iter().take(at).copied()
                .chain(insert.chars())
                .chain(chars.iter().skip(end).copied())
                .collect();
            if let Ok(entry) = parse_manifest("x.yaml", &mutated) {
                // Whatever loads must be internally consistent enough to use.
                let made = entry.manifest().unwrap();
                let _ = made.resolve_derived(&Default::default(), "https://pb");
                // The manifest made again from the stored document (as a loaded catalog does) is the same one.
                let again = entry.clone().compact().manifest().unwrap();
                prop_assert_eq!(&*again, &*made);
            }
        }
    }

    #[test]
    fn validate_submission_never_panics_and_never_echoes_values(
        entries in prop::collection::vec(
            (
                prop::sample::select(vec!["host", "port", "database", "user", "password", "other"]),
                prop_oneof![
                    "\\PC{0,12}".prop_map(serde_json::Value::from),
                    "zq\\PC{1,10}".prop_map(serde_json::Value::from),
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<bool>().prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                ],
            ),
            0..8,
        )
    ) {
        let m = manifest(SPEC_EXAMPLE);
        let map: serde_json::Map<String, serde_json::Value> =
            entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        match m.validate_submission(&map) {
            Ok(fields) => {
                let derived = m.resolve_derived(&fields, "https://pb");
                prop_assert!(derived.is_ok());
            }
            Err(e) => {
                if let Some(serde_json::Value::String(s)) = map.get(&e.field) {
                    if s.starts_with("zq") {
                        prop_assert!(!e.message.contains(s.as_str()));
                    }
                }
            }
        }
    }
}
