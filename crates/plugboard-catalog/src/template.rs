//! Templates: strings with `${…}` placeholders, parsed once when a manifest is loaded.
//!
//! Syntax (see the crate docs for the reasoning):
//!
//! * `${field.KEY}`, `${derived.KEY}`, `${instance_url}`, `${oauth.access_token}`;
//! * an optional filter chain after the name: `${field.password|url}` percent-encodes the value
//!   for use inside a URL or DSN component (everything except the unreserved `A-Za-z0-9-._~`);
//! * a `$` not followed by `{` is a literal `$`; `$${` is a literal `${`.
//!
//! Which names are *allowed* in a given place (declared fields, declared derived keys, the OAuth
//! token only inside `mcp` of OAuth manifests) is checked by the manifest loader, which knows the
//! manifest; [`Template::parse`] only checks the syntax.

use std::borrow::Cow;
use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything except the RFC 3986 unreserved characters is encoded.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `${field.KEY}`
    Field(String),
    /// `${derived.KEY}`
    Derived(String),
    /// `${instance_url}`
    InstanceUrl,
    /// `${oauth.access_token}`
    OAuthAccessToken,
}

impl Var {
    /// The placeholder as written, without filters, e.g. `${field.token}`.
    pub fn display(&self) -> String {
        match self {
            Var::Field(k) => format!("${{field.{k}}}"),
            Var::Derived(k) => format!("${{derived.{k}}}"),
            Var::InstanceUrl => "${instance_url}".to_owned(),
            Var::OAuthAccessToken => "${oauth.access_token}".to_owned(),
        }
    }
}

/// A filter applied to a placeholder's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `|url`: percent-encode for a URL or DSN component.
    Url,
}

impl Filter {
    fn apply(self, value: &str) -> String {
        match self {
            Filter::Url => utf8_percent_encode(value, URL_COMPONENT).to_string(),
        }
    }
}

/// One `${…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub var: Var,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// A template that does not parse. The message quotes the template's own text (manifest
/// content, never a user value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// A template could not be rendered. The message names placeholders, never a rendered value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(String);

impl RenderError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        RenderError(message.into())
    }

    /// The message (same as `Display`).
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// Validated field values (defaults applied), as returned by
    /// [`Manifest::validate_submission`](crate::Manifest::validate_submission).
    pub fields: &'a BTreeMap<String, String>,
    /// Resolved derived values, as returned by
    /// [`Manifest::resolve_derived`](crate::Manifest::resolve_derived).
    pub derived: &'a BTreeMap<String, String>,
    /// `PLUGBOARD_PUBLIC_URL`.
    pub instance_url: &'a str,
    /// `${oauth.access_token}`; rendering a template that uses it while this is `None` fails.
    pub oauth_access_token: Option<&'a str>,
}

/// Longest name accepted after `field.` / `derived.`.
const MAX_KEY_LEN: usize = 64;

impl Template {
    /// Parses `source`. Never panics.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some((before, after)) = rest.split_once('$') {
            literal.push_str(before);
            if let Some(after_escape) = after.strip_prefix("${") {
                literal.push_str("${");
                rest = after_escape;
            } else if let Some(body) = after.strip_prefix('{') {
                let offset = source.len().saturating_sub(after.len() + 1);
                let Some((inner, tail)) = body.split_once('}') else {
                    return Err(unclosed(offset));
                };
                if inner.contains('{') || inner.contains('$') {
                    return Err(unclosed(offset));
                }
                let placeholder = parse_placeholder(inner)?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Placeholder(placeholder));
                rest = tail;
            } else {
                literal.push('$');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    /// The original text, as the author wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no placeholders (`$${` escapes still count as literal).
    pub fn is_literal(&self) -> bool {
        self.placeholders().next().is_none()
    }

    /// The literal text before the first placeholder (the whole text for a literal template).
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }

    /// Every placeholder, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(ph) => Some(ph),
            Part::Literal(_) => None,
        })
    }

    /// Field keys referenced directly (`${field.X}`), in order, possibly repeated.
    pub fn field_refs(&self) -> impl Iterator<Item = &str> {
        self.placeholders().filter_map(|p| match &p.var {
            Var::Field(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// Derived keys referenced directly (`${derived.Y}`), in order, possibly repeated.
    pub fn derived_refs(&self) -> impl Iterator<Item = &str> {
        self.placeholders().filter_map(|p| match &p.var {
            Var::Derived(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// True when the template uses `${oauth.access_token}`.
    pub fn uses_oauth_access_token(&self) -> bool {
        self.placeholders().any(|p| p.var == Var::OAuthAccessToken)
    }

    /// Renders the template.
    ///
    /// A field with no value in `ctx.fields` renders as the empty string (the loader has already
    /// checked that the key is a declared field, so a missing value is an optional field left
    /// blank). A derived key missing from `ctx.derived`, or `${oauth.access_token}` while
    /// `ctx.oauth_access_token` is `None`, is an error.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(p) => {
                    let value: &str = match &p.var {
                        Var::Field(k) => ctx.fields.get(k).map_or("", String::as_str),
                        Var::Derived(k) => ctx.derived.get(k).map(String::as_str).ok_or_else(|| {
                            RenderError(format!("`${{derived.{k}}}` has no resolved value"))
                        })?,
                        Var::InstanceUrl => ctx.instance_url,
                        Var::OAuthAccessToken => ctx.oauth_access_token.ok_or_else(|| {
                            RenderError(
                                "`${oauth.access_token}` is used but no OAuth access token is available"
                                    .to_owned(),
                            )
                        })?,
                    };
                    let mut value = Cow::Borrowed(value);
                    for filter in &p.filters {
                        value = Cow::Owned(filter.apply(&value));
                    }
                    out.push_str(&value);
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Serialises as the source text.
impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

fn unclosed(offset: usize) -> TemplateError {
    TemplateError(format!(
        "unclosed `${{` at byte {offset} (a placeholder is `${{field.KEY}}`; write `$${{` for a literal `${{`)"
    ))
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, TemplateError> {
    let mut segments = inner.split('|');
    let name = segments.next().unwrap_or_default().trim();
    let mut filters = Vec::new();
    for segment in segments {
        match segment.trim() {
            "url" => filters.push(Filter::Url),
            other => {
                return Err(TemplateError(format!(
                    "unknown filter `{}` in `${{{}}}` (the only filter is `url`)",
                    crate::util::shown(other),
                    crate::util::shown(inner)
                )))
            }
        }
    }
    let var = if name == "instance_url" {
        Var::InstanceUrl
    } else if name == "oauth.access_token" {
        Var::OAuthAccessToken
    } else if let Some(key) = name.strip_prefix("field.") {
        Var::Field(key_name(key, inner)?)
    } else if let Some(key) = name.strip_prefix("derived.") {
        Var::Derived(key_name(key, inner)?)
    } else if name.is_empty() {
        return Err(TemplateError("empty placeholder `${}`".to_owned()));
    } else {
        return Err(TemplateError(format!(
            "unknown placeholder `${{{}}}` (expected `${{field.KEY}}`, `${{derived.KEY}}`, `${{instance_url}}` or `${{oauth.access_token}}`)",
            crate::util::shown(inner)
        )));
    };
    Ok(Placeholder { var, filters })
}

fn key_name(key: &str, inner: &str) -> Result<String, TemplateError> {
    if crate::util::is_key(key, MAX_KEY_LEN) {
        Ok(key.to_owned())
    } else {
        Err(TemplateError(format!(
            "invalid key in placeholder `${{{}}}` (keys are letters, digits, `_` and `-`)",
            crate::util::shown(inner)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(
        fields: &'a BTreeMap<String, String>,
        derived: &'a BTreeMap<String, String>,
        token: Option<&'a str>,
    ) -> RenderContext<'a> {
        RenderContext {
            fields,
            derived,
            instance_url: "https://plugboard.example",
            oauth_access_token: token,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_template_renders_fields_derived_and_the_instance_url() {
        let t = Template::parse("${instance_url}/cb?u=${field.user}&d=${derived.dsn}").unwrap();
        let f = map(&[("user", "ann")]);
        let d = map(&[("dsn", "x")]);
        assert_eq!(
            t.render(&ctx(&f, &d, None)).unwrap(),
            "https://plugboard.example/cb?u=ann&d=x"
        );
        assert!(!t.is_literal());
        assert_eq!(t.field_refs().collect::<Vec<_>>(), ["user"]);
        assert_eq!(t.derived_refs().collect::<Vec<_>>(), ["dsn"]);
    }

    #[test]
    fn the_url_filter_percent_encodes_at_slash_colon_and_everything_but_unreserved() {
        let t = Template::parse("postgres://${field.user|url}:${field.password|url}@h/db").unwrap();
        let f = map(&[("user", "a b"), ("password", "p@ss/w:rd?#%~-._ü")]);
        let d = BTreeMap::new();
        assert_eq!(
            t.render(&ctx(&f, &d, None)).unwrap(),
            "postgres://a%20b:p%40ss%2Fw%3Ard%3F%23%25~-._%C3%BC@h/db"
        );
    }

    #[test]
    fn a_dollar_not_followed_by_a_brace_is_literal_and_double_dollar_brace_escapes() {
        let t = Template::parse("cost $5 $ $$ $${not.a.placeholder} end$").unwrap();
        assert!(t.is_literal());
        let e = BTreeMap::new();
        assert_eq!(
            t.render(&ctx(&e, &e, None)).unwrap(),
            "cost $5 $ $$ ${not.a.placeholder} end$"
        );
        assert_eq!(t.source(), "cost $5 $ $$ $${not.a.placeholder} end$");
    }

    #[test]
    fn an_unclosed_placeholder_is_an_error() {
        for bad in ["${field.a", "x ${", "${field.a ${field.b}", "${field.a$}"] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.contains("unclosed"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_unknown_namespace_or_filter_or_empty_placeholder_is_an_error() {
        let err = Template::parse("${env.HOME}").unwrap_err().to_string();
        assert!(err.contains("unknown placeholder `${env.HOME}`"), "{err}");
        let err = Template::parse("${field.a|base64}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown filter `base64`"), "{err}");
        let err = Template::parse("${}").unwrap_err().to_string();
        assert!(err.contains("empty placeholder"), "{err}");
        let err = Template::parse("${field.}").unwrap_err().to_string();
        assert!(err.contains("invalid key"), "{err}");
        let err = Template::parse("${oauth.refresh_token}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder"), "{err}");
    }

    #[test]
    fn a_missing_optional_field_renders_empty_but_a_missing_derived_value_is_an_error() {
        let e = BTreeMap::new();
        let t = Template::parse("a${field.opt}b").unwrap();
        assert_eq!(t.render(&ctx(&e, &e, None)).unwrap(), "ab");
        let t = Template::parse("${derived.dsn}").unwrap();
        let err = t.render(&ctx(&e, &e, None)).unwrap_err().to_string();
        assert!(err.contains("derived.dsn"), "{err}");
    }

    #[test]
    fn the_oauth_token_renders_when_present_and_errors_without_leaking_when_absent() {
        let e = BTreeMap::new();
        let t = Template::parse("Bearer ${oauth.access_token}").unwrap();
        assert!(t.uses_oauth_access_token());
        assert_eq!(
            t.render(&ctx(&e, &e, Some("tok123"))).unwrap(),
            "Bearer tok123"
        );
        let err = t.render(&ctx(&e, &e, None)).unwrap_err().to_string();
        assert!(err.contains("no OAuth access token"), "{err}");
    }

    #[test]
    fn render_errors_never_contain_field_values() {
        let f = map(&[("password", "hunter2-secret")]);
        let e = BTreeMap::new();
        let t = Template::parse("${field.password}${derived.missing}").unwrap();
        let err = t.render(&ctx(&f, &e, None)).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn spaces_around_names_and_filters_are_allowed() {
        let t = Template::parse("${ field.a | url }").unwrap();
        let f = map(&[("a", "x y")]);
        let e = BTreeMap::new();
        assert_eq!(t.render(&ctx(&f, &e, None)).unwrap(), "x%20y");
    }

    #[test]
    fn the_literal_prefix_is_the_text_before_the_first_placeholder() {
        assert_eq!(
            Template::parse("https://x/${field.a}")
                .unwrap()
                .literal_prefix(),
            "https://x/"
        );
        assert_eq!(
            Template::parse("${field.a}/x").unwrap().literal_prefix(),
            ""
        );
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn template_parsing_never_panics(s in ".{0,200}") {
                let _ = Template::parse(&s);
            }

            #[test]
            fn template_parsing_of_placeholder_soup_never_panics_and_renders(
                s in r"(\$|\{|\}|\||field\.|derived\.|url|instance_url|oauth\.access_token|[a-z_]|é| ){0,60}"
            ) {
                if let Ok(t) = Template::parse(&s) {
                    let e = BTreeMap::new();
                    let ctx = RenderContext { fields: &e, derived: &e, instance_url: "", oauth_access_token: Some("t") };
                    let _ = t.render(&ctx);
                    prop_assert_eq!(t.source(), s.as_str());
                }
            }

            #[test]
            fn a_literal_template_without_dollar_renders_to_itself(s in "[^$]{0,100}") {
                let t = Template::parse(&s).unwrap();
                let e = BTreeMap::new();
                let ctx = RenderContext { fields: &e, derived: &e, instance_url: "", oauth_access_token: None };
                prop_assert_eq!(t.render(&ctx).unwrap(), s);
            }
        }
    }
}
