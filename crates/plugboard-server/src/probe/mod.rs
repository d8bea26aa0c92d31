//! Verify probes: one real, bounded, SSRF-guarded attempt to use the credentials a user typed.
//!
//! [`run`] renders the manifest's verify block with the submitted fields and runs it:
//!
//! - [`http`]: one request through [`Guard::send`] (redirects followed by the guard, each hop re-checked, auth
//!   headers dropped when a hop leaves the origin); success by status and optionally a JSON field that must be `true`.
//! - [`sql`]: a PostgreSQL or MySQL login over a TCP stream from the guarded dialer, `SELECT 1`, close (see the
//!   module docs).
//! - [`mcp`]: an MCP session over streamable HTTP: `initialize`, `notifications/initialized`, the method.
//!
//! Everything a probe says back goes through [`redact::finish`]: every submitted secret removed in every encoding,
//! one line, at most 512 bytes. Nothing here logs a field value.
//!
//! The whole probe runs under one `tokio::time::timeout` of `PLUGBOARD_PROBE_TIMEOUT_MS`; a probe that runs out of
//! time answers `ok: false` saying so.

pub mod http;
pub mod mcp;
pub mod redact;
pub mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use plugboard_catalog::{Manifest, RenderContext, Template, Transport, Verify};
use plugboard_egress::{EgressError, Guard};

pub use redact::Redactor;

/// What a verify answers: `ok` and a human-readable message (empty on a plain success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
    /// Which probe ran: `skipped` (auth mode without a probe), `none` (no verify block), `http`, `sql` or `mcp`.
    pub probe: &'static str,
}

impl Outcome {
    pub fn ok(probe: &'static str) -> Outcome {
        Outcome {
            ok: true,
            message: String::new(),
            probe,
        }
    }

    pub fn ok_with(probe: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            message: message.into(),
            probe,
        }
    }

    pub fn fail(probe: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            message: message.into(),
            probe,
        }
    }
}

/// The rendered-values side of a probe: templates, and the redactor for what comes back.
pub struct ProbeContext<'a> {
    pub guard: &'a Guard,
    pub fields: &'a BTreeMap<String, String>,
    pub derived: &'a BTreeMap<String, String>,
    pub instance_url: &'a str,
    pub redactor: Redactor,
    pub timeout: Duration,
}

impl ProbeContext<'_> {
    pub fn render(&self, template: &Template) -> Result<String, String> {
        let ctx = RenderContext {
            fields: self.fields,
            derived: self.derived,
            instance_url: self.instance_url,
            oauth_access_token: None,
        };
        template
            .render(&ctx)
            .map_err(|e| format!("the connector's verify step could not be prepared: {e}"))
    }

    /// A probe message, made safe to return.
    pub fn finish(&self, message: &str) -> String {
        redact::finish(&self.redactor, message)
    }

    /// The message for a failed outbound call: a refusal is `blocked: …` verbatim; a timeout names the bound.
    pub fn egress_message(&self, what: &str, err: &EgressError) -> String {
        let text = match err {
            EgressError::Blocked(_) => err.to_string(),
            EgressError::Timeout => self.timeout_message(what),
            EgressError::InvalidUrl(_) => format!("the {what} address is not usable: {err}"),
            _ => format!("could not reach the {what}: {err}"),
        };
        self.finish(&text)
    }

    pub fn timeout_message(&self, what: &str) -> String {
        format!(
            "timed out: the {what} did not answer within {} ms",
            self.timeout.as_millis()
        )
    }
}

/// The values that must never come back to the user: every submitted value of a secret field (a `password` field
/// is secret unless the manifest says otherwise), whatever the auth mode.
pub fn secret_values<'a>(
    manifest: &'a Manifest,
    fields: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a str> + 'a {
    manifest
        .fields
        .iter()
        .filter(|f| f.secret || f.field_type == plugboard_catalog::FieldType::Password)
        .filter_map(|f| fields.get(&f.key).map(String::as_str))
}

/// Runs the manifest's verify probe (the caller has already handled auth modes that skip it). Never panics, never
/// takes longer than `timeout` (plus scheduling), never returns a secret value.
pub async fn run(
    guard: &Guard,
    timeout: Duration,
    manifest: &Manifest,
    fields: &BTreeMap<String, String>,
    instance_url: &str,
) -> Outcome {
    let redactor = Redactor::new(secret_values(manifest, fields));
    let Some(verify) = &manifest.verify else {
        return Outcome::ok_with(
            "none",
            "nothing was checked: this connector has no verify step",
        );
    };
    let probe = match verify {
        Verify::Http(_) => "http",
        Verify::Sql(_) => "sql",
        Verify::McpMethod(_) => "mcp",
    };
    let derived = match manifest.resolve_derived(fields, instance_url) {
        Ok(d) => d,
        Err(e) => {
            return Outcome::fail(
                probe,
                redact::finish(
                    &redactor,
                    &format!("the connector's verify step could not be prepared: {e}"),
                ),
            )
        }
    };
    let ctx = ProbeContext {
        guard,
        fields,
        derived: &derived,
        instance_url,
        redactor,
        timeout,
    };
    let work = async {
        match verify {
            Verify::Http(h) => http::probe(&ctx, h).await,
            Verify::Sql(s) => sql::probe(&ctx, s).await,
            Verify::McpMethod(method) => match manifest.mcp.transport {
                Transport::StreamableHttp => mcp::probe(&ctx, &manifest.mcp, method).await,
                Transport::Sse => Outcome::ok_with(
                    "mcp",
                    "not checked: verifying a legacy SSE MCP server is not supported; the credentials are \
                     used for the first time when the integration connects",
                ),
                Transport::Stdio => Outcome::ok_with(
                    "mcp",
                    "not checked: a stdio MCP server is not started by a verify",
                ),
            },
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let what = match verify {
                Verify::Http(_) => "provider",
                Verify::Sql(_) => "database",
                Verify::McpMethod(_) => "MCP server",
            };
            Outcome::fail(probe, ctx.timeout_message(what))
        }
    }
}
