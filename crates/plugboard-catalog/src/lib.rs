//! Connector manifests: strict parsing, validation, templates and the built-in catalog.
//!
//! Pure: no HTTP, no SQL, no async. The only I/O is reading catalog files
//! ([`Catalog::load_dir`], [`lint_paths`]). The format is specified in `spec/manifest.md`; this
//! crate implements every rule there. Manifests are untrusted input: nothing here panics on
//! any input, and every error names the file and the key path (`fields[2].validation.pattern`,
//! `mcp.args[1]`, `derived.dsn`).
//!
//! # Using it
//!
//! ```
//! use plugboard_catalog::{parse_manifest, RenderContext};
//!
//! let entry = parse_manifest("pg.yaml", r#"
//! id: pg
//! name: Postgres
//! auth_mode: conn_string
//! fields:
//!   - {key: password, label: Password, type: password, required: true}
//! derived:
//!   dsn: "postgres://app:${field.password|url}@db.example.com/app"
//! mcp: {transport: stdio, command: npx, args: ["${derived.dsn}"]}
//! "#).unwrap();
//! let m = entry.manifest().unwrap();
//! let submitted = serde_json::json!({"password": "p@ss/word"});
//! let fields = m.validate_submission(submitted.as_object().unwrap()).unwrap();
//! let derived = m.resolve_derived(&fields, "https://plugboard.example").unwrap();
//! assert_eq!(derived["dsn"], "postgres://app:p%40ss%2Fword@db.example.com/app");
//! let ctx = RenderContext { fields: &fields, derived: &derived,
//!     instance_url: "https://plugboard.example", oauth_access_token: None };
//! assert_eq!(m.mcp.args[0].render(&ctx).unwrap(), derived["dsn"]);
//! ```
//!
//! [`convert_registry_document`] turns entries of the official MCP Registry into manifests (see its module for
//! the mapping).
//!
//! # Decisions where the spec leaves room
//!
//! * **Literal `$`.** A `$` not followed by `{` is a literal `$` (so foreign catalogs load
//!   unchanged); `$${` writes a literal `${`. Inside a placeholder, spaces around the name and
//!   filters are ignored: `${ field.a | url }`.
//! * **`null` is absent.** A key whose value is `null` (or an empty YAML value) counts as not
//!   written, so generated JSON with `"oauth": null` loads. Exception: `brand.color: #336791`
//!   unquoted is a YAML comment, so a null colour is an error that says to quote it.
//! * **Forbidden means non-empty.** `args: []` or `env: {}` on an HTTP transport, or
//!   `choices: []` on a text field, are accepted; non-empty ones are errors. An empty
//!   `command` / `endpoint` counts as absent.
//! * **`verify` on `mcp_oauth`, `byo_oauth` and `none` manifests is accepted** (and fully
//!   checked: its templates must name real fields), but the server skips the probe for those
//!   modes, as the API promises ([`AuthMode::skips_verify`]). Accepting keeps foreign catalogs
//!   loading.
//! * **`mcp.command` must be a literal.** A placeholder there would let a form value choose the
//!   program to run.
//! * **`${oauth.access_token}`** is allowed only inside `mcp` of `byo_oauth` / `mcp_oauth`
//!   manifests; it is never resolved into `derived`.
//! * **Field values at render time.** [`Template::render`] renders a field with no value as the
//!   empty string (the loader already proved the key is declared, so that is an optional field
//!   left blank); a missing derived value or OAuth token is a [`RenderError`].
//! * **Fields.** `type` is required; `label` defaults to the key; a `default` written as a YAML
//!   number or bool (`default: 5432`) is taken as its text; an empty default is no default.
//!   `validation.min`/`max` apply to number fields only, `pattern`/`min_length`/`max_length` to
//!   text, password and number fields; select and bool fields take no validation (choices and
//!   the type already constrain them). A submitted value may not contain NUL and is at most
//!   [`MAX_VALUE_BYTES`].
//! * **`validation.pattern` is a search, as in JSON Schema** (the most common meaning in form and
//!   manifest formats, so foreign catalogs keep their meaning): `^xoxb-` accepts every value that
//!   starts with `xoxb-`; anchor both ends (`^[a-z]+$`) to constrain the whole value.
//! * **`pkce`** defaults to `false`; `scopes` to `[]`; a scope may not contain the separator.
//! * **OAuth params.** `authorize_params` may not set [`RESERVED_AUTHORIZE_PARAMS`] and
//!   `token_params` may not set [`RESERVED_TOKEN_PARAMS`]: the flow sets those itself (a
//!   manifest must not be able to redirect the authorization code elsewhere).
//! * **Headers** (`mcp.headers`, `verify.http.headers`) must be valid header names and may not
//!   be framing or routing headers (`Host`, `Content-Length`, `Transfer-Encoding`, …).
//! * **URLs.** `mcp.endpoint`, `verify.http.url` and the OAuth URLs must be `http://` or
//!   `https://` when the scheme is written literally (whether the destination is allowed is the
//!   egress guard's job at run time).
//! * **`verify.http.method`** is one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any case);
//!   `expect_status` a code or a non-empty list of codes in 100..=599; `verify.mcp_method` on any
//!   transport: on a `stdio` manifest it loads (foreign catalogs carry it) and the server's verify answers
//!   `ok: true` saying that a stdio server is not started by a verify.
//! * **`mcp_oauth`** needs `streamable-http` exactly (not `sse`), per the spec.
//! * **Limits.** Files up to [`MAX_FILE_BYTES`]; ids up to 64 bytes; field and derived keys are
//!   `^[A-Za-z_][A-Za-z0-9_-]*$` (hyphens allowed, as in `api-key`), up to 64 bytes; at most [`MAX_FIELDS`] fields and
//!   [`MAX_DERIVED`] derived values; `validation.pattern` up to 1 KiB and a 1 MiB compiled
//!   size; YAML/JSON nesting 128 levels; YAML alias expansion bounded.
//! * **Files.** `.json` files are parsed as JSON, everything else as YAML; both reject duplicate
//!   keys. In a folder, hidden files are skipped and, for a duplicate id, the first file by name
//!   wins and the later one is reported.

// The house rule, enforced: no panics on any input outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod catalog;
mod load;
mod manifest;
mod raw;
mod registry;
mod template;
mod util;

#[cfg(test)]
mod tests;

pub use catalog::{
    lint_paths, parse_manifest, Catalog, CatalogFilter, Entry, FileError, LintReport, SearchText,
    Summary, LOAD_THREADS, MAX_FILE_BYTES,
};
pub use load::{MAX_DERIVED, MAX_FIELDS, RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS};
pub use manifest::{
    AuthMode, Brand, Docs, Field, FieldError, FieldType, HttpVerify, Manifest, Mcp, OAuthConfig,
    Pattern, SqlDriver, SqlVerify, TokenAuth, Transport, Validation, Verify, MAX_VALUE_BYTES,
};
pub use registry::{convert_registry_document, registry_id, Converted, Skipped};
pub use template::{Filter, Placeholder, RenderContext, RenderError, Template, TemplateError, Var};
