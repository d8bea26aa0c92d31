//! Tests of the public behaviour. Test code may unwrap: a panic there is a failed test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalog;
mod manifest_rules;
mod props;
mod registry;
mod submission;

use crate::{parse_manifest, Entry, Manifest};

/// The example of `spec/manifest.md`, byte for byte.
pub(crate) const SPEC_EXAMPLE: &str = r##"id: postgres
name: PostgreSQL
description: Query a Postgres database
category: databases
brand: {logo: postgres, color: "#336791"}
auth_mode: conn_string
fields:
  - {key: host, label: Host, type: text, required: true}
  - {key: port, label: Port, type: number, required: true, default: "5432"}
  - {key: database, label: Database, type: text, required: true}
  - {key: user, label: User, type: text, required: true}
  - {key: password, label: Password, type: password, required: true}
derived:
  dsn: "postgres://${field.user|url}:${field.password|url}@${field.host}:${field.port}/${field.database}"
mcp:
  transport: stdio
  command: npx
  args: ["-y", "@modelcontextprotocol/server-postgres", "${derived.dsn}"]
verify:
  sql: {driver: postgres, dsn: "${derived.dsn}"}
"##;

/// A minimal valid `pat` manifest over HTTP; tests append or replace lines.
pub(crate) const PAT_HTTP: &str = r#"id: demo
name: Demo
auth_mode: pat
fields:
  - {key: token, label: Token, type: password, required: true}
mcp:
  transport: streamable-http
  endpoint: https://mcp.example.com/mcp
  headers: {Authorization: "Bearer ${field.token}"}
"#;

pub(crate) fn load(yaml: &str) -> Entry {
    match parse_manifest("t.yaml", yaml) {
        Ok(e) => e,
        Err(e) => panic!("expected the manifest to load, got: {e}\n---\n{yaml}"),
    }
}

pub(crate) fn manifest(yaml: &str) -> Manifest {
    (*load(yaml).manifest().unwrap()).clone()
}

/// The full error text (`file: path: message`) of a manifest that must not load.
pub(crate) fn error(yaml: &str) -> String {
    match parse_manifest("t.yaml", yaml) {
        Ok(_) => panic!("expected the manifest to be rejected\n---\n{yaml}"),
        Err(e) => {
            assert_eq!(e.file, "t.yaml");
            let shown = e.to_string();
            assert!(shown.starts_with("t.yaml: "), "{shown}");
            shown
        }
    }
}

/// Asserts `yaml` is rejected with an error containing every one of `needles`.
#[track_caller]
pub(crate) fn rejects(yaml: &str, needles: &[&str]) {
    let e = error(yaml);
    for n in needles {
        assert!(
            e.contains(n),
            "expected `{n}` in the error: {e}\n---\n{yaml}"
        );
    }
}
