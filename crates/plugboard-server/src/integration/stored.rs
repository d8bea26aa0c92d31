//! The stored MCP block (`integrations.mcp`) and credential values in memory.

use std::collections::BTreeMap;

use plugboard_catalog::{Manifest, RenderContext, Template, Transport};
use rand::RngCore;
use secrecy::zeroize::Zeroize;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;

use super::*;

/// Credential form values in memory: wiped on drop; `Debug` lists the keys only.
#[derive(Default)]
pub struct FieldValues(BTreeMap<String, String>);

impl FieldValues {
    pub(crate) fn map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
    pub(crate) fn insert(&mut self, key: String, value: String) {
        if let Some(mut old) = self.0.insert(key, value) {
            old.zeroize();
        }
    }
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<BTreeMap<String, String>> for FieldValues {
    fn from(map: BTreeMap<String, String>) -> Self {
        FieldValues(map)
    }
}

impl Drop for FieldValues {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl std::fmt::Debug for FieldValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The `mcp` column: templates (sources), plain values and the names of vaulted fields. Never a secret value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMcp {
    /// Format version.
    pub v: u32,
    pub transport: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Name → template, in the author's order.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub env: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// The manifest's derived templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub derived: Map<String, Value>,
    /// Field values kept in the clear (non-secret fields of a `none` install).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plain: BTreeMap<String, String>,
    /// Field keys whose values are sealed in the vault as `field.<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vaulted: Vec<String>,
}

pub(crate) const STORED_MCP_VERSION: u32 = 1;

/// A literal string as a template source: `${` is written `$${`, so nothing in it is a placeholder.
pub fn escape_literal(s: &str) -> String {
    s.replace("${", "$${")
}

/// Template sources of a manifest map, in the author's order.
pub(crate) fn template_map<'a>(
    it: impl Iterator<Item = (&'a String, &'a Template)>,
) -> Map<String, Value> {
    it.map(|(k, t)| (k.clone(), Value::String(t.source().to_string())))
        .collect()
}

impl StoredMcp {
    /// A snapshot of a manifest's templates.
    pub(crate) fn from_manifest(
        m: &Manifest,
        plain: BTreeMap<String, String>,
        vaulted: Vec<String>,
    ) -> Self {
        StoredMcp {
            v: STORED_MCP_VERSION,
            transport: m.mcp.transport.as_str().to_string(),
            command: m.mcp.command.as_ref().map(|t| t.source().to_string()),
            args: m.mcp.args.iter().map(|t| t.source().to_string()).collect(),
            endpoint: m.mcp.endpoint.as_ref().map(|t| t.source().to_string()),
            env: template_map(m.mcp.env.iter()),
            headers: template_map(m.mcp.headers.iter()),
            derived: template_map(m.derived.iter()),
            plain,
            vaulted,
        }
    }

    pub(crate) fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self).map_err(ApiError::internal)
    }

    pub(crate) fn parse(text: &str) -> Result<StoredMcp, String> {
        let stored: StoredMcp =
            serde_json::from_str(text).map_err(|e| format!("stored MCP block: {e}"))?;
        if stored.v != STORED_MCP_VERSION {
            return Err(format!(
                "stored MCP block: unknown format version {}",
                stored.v
            ));
        }
        Ok(stored)
    }

    /// Renders the block with `values` for the fields (plain and vaulted alike).
    pub(crate) fn render(
        &self,
        values: &BTreeMap<String, String>,
        instance_url: &str,
        oauth_access_token: Option<&str>,
    ) -> Result<Value, String> {
        let transport = Transport::parse(&self.transport)
            .ok_or_else(|| format!("stored MCP block: unknown transport `{}`", self.transport))?;
        let parse = |what: &str, src: &str| {
            Template::parse(src).map_err(|e| format!("stored MCP block: {what}: {e}"))
        };
        let parse_map = |what: &str, map: &Map<String, Value>| {
            map.iter()
                .map(|(k, v)| {
                    let src = v
                        .as_str()
                        .ok_or_else(|| format!("stored MCP block: {what}.{k} is not a string"))?;
                    Ok((k.clone(), parse(&format!("{what}.{k}"), src)?))
                })
                .collect::<Result<Vec<(String, Template)>, String>>()
        };
        // Derived values, resolved transitively (the loader proved there is no cycle; a pass without progress is
        // still reported rather than looping).
        let mut derived = BTreeMap::new();
        let mut pending = parse_map("derived", &self.derived)?;
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for (key, t) in pending {
                if t.derived_refs().all(|d| derived.contains_key(d)) {
                    let ctx = RenderContext {
                        fields: values,
                        derived: &derived,
                        instance_url,
                        oauth_access_token: None,
                    };
                    let value = t
                        .render(&ctx)
                        .map_err(|e| format!("derived `{key}`: {e}"))?;
                    derived.insert(key, value);
                } else {
                    waiting.push((key, t));
                }
            }
            if waiting.len() == before {
                return Err("stored MCP block: derived values cannot be resolved".into());
            }
            pending = waiting;
        }
        let ctx = RenderContext {
            fields: values,
            derived: &derived,
            instance_url,
            oauth_access_token,
        };
        let render = |what: &str, t: &Template| {
            t.render(&ctx)
                .map(Value::String)
                .map_err(|e| format!("{what}: {e}"))
        };
        let mut out = Map::new();
        out.insert("transport".into(), Value::String(self.transport.clone()));
        if transport.is_http() {
            let endpoint = self
                .endpoint
                .as_deref()
                .ok_or("stored MCP block: an HTTP transport without an endpoint")?;
            out.insert(
                "endpoint".into(),
                render("endpoint", &parse("endpoint", endpoint)?)?,
            );
            let mut headers = Map::new();
            for (k, t) in parse_map("headers", &self.headers)? {
                let v = render(&format!("headers.{k}"), &t)?;
                headers.insert(k, v);
            }
            out.insert("headers".into(), Value::Object(headers));
        } else {
            let command = self
                .command
                .as_deref()
                .ok_or("stored MCP block: stdio without a command")?;
            out.insert(
                "command".into(),
                render("command", &parse("command", command)?)?,
            );
            let mut args = Vec::with_capacity(self.args.len());
            for (i, a) in self.args.iter().enumerate() {
                args.push(render(&format!("args[{i}]"), &parse("args", a)?)?);
            }
            out.insert("args".into(), Value::Array(args));
            let mut env = Map::new();
            for (k, t) in parse_map("env", &self.env)? {
                let v = render(&format!("env.{k}"), &t)?;
                env.insert(k, v);
            }
            out.insert("env".into(), Value::Object(env));
        }
        Ok(Value::Object(out))
    }

    /// The block as responses show it: vaulted values and the OAuth token as `"********"`.
    pub fn masked(&self, instance_url: &str) -> Result<Value, String> {
        let sentinel = format!("pbmask{}", random_alphanumeric(26));
        let mut values = self.plain.clone();
        for key in &self.vaulted {
            values.insert(key.clone(), sentinel.clone());
        }
        let mut rendered = self.render(&values, instance_url, Some(&sentinel))?;
        replace_in_strings(&mut rendered, &sentinel, MASK);
        Ok(rendered)
    }
}

pub(crate) fn replace_in_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        _ => {}
    }
}

pub(crate) fn random_alphanumeric(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_literal(s: &str) -> String {
        let t = Template::parse(&escape_literal(s)).expect("escaped literal parses");
        let empty = BTreeMap::new();
        let ctx = RenderContext {
            fields: &empty,
            derived: &empty,
            instance_url: "https://x",
            oauth_access_token: None,
        };
        t.render(&ctx).expect("renders")
    }

    #[test]
    fn an_escaped_literal_renders_as_itself() {
        for s in [
            "",
            "plain",
            "${field.x}",
            "$${",
            "$$${x}",
            "a$b",
            "$",
            "${",
            "}${}{$",
            "${oauth.access_token}",
            "$${field.y}$",
            "x$",
        ] {
            assert_eq!(render_literal(s), s, "{s:?}");
        }
    }

    #[test]
    fn field_values_do_not_print_their_values() {
        let mut v = FieldValues::default();
        v.insert("token".into(), "canary-value".into());
        let shown = format!("{v:?}");
        assert!(
            shown.contains("token") && !shown.contains("canary"),
            "{shown}"
        );
    }
}
