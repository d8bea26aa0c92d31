//! Tool policies and tool prefixes: the one place both endpoint kinds decide what an agent may see and call.

use serde::{Deserialize, Serialize};

/// Patterns at most this long.
pub const MAX_PATTERN_LEN: usize = 128;
/// At most this many patterns in `allow` and in `deny`.
pub const MAX_PATTERNS: usize = 100;
/// A tool prefix is at most this long.
pub const MAX_PREFIX_LEN: usize = 48;
/// Between the prefix and the upstream's tool name on the aggregated endpoints.
pub const SEPARATOR: &str = "__";

/// An integration's tool policy: glob patterns (`*` matches any run of characters, everything else matches
/// itself) against the upstream's tool name. An empty `allow` allows every tool; `deny` wins over `allow`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Why a tool may not be used: the pattern that decided it, for the agent's error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// Matched this `deny` pattern.
    Denied(String),
    /// `allow` is not empty and no pattern of it matched.
    NotAllowed,
}

impl ToolPolicy {
    /// A policy that lets everything through (nothing to check or filter).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// `Ok` when `tool` may be listed and called.
    pub fn check(&self, tool: &str) -> Result<(), Denial> {
        if let Some(p) = self.deny.iter().find(|p| glob_match(p, tool)) {
            return Err(Denial::Denied(p.clone()));
        }
        if self.allow.is_empty() || self.allow.iter().any(|p| glob_match(p, tool)) {
            Ok(())
        } else {
            Err(Denial::NotAllowed)
        }
    }

    pub fn allows(&self, tool: &str) -> bool {
        self.check(tool).is_ok()
    }

    /// The message for a refused call: names the tool and the policy that refused it.
    pub fn denial_message(&self, tool: &str, denial: &Denial) -> String {
        let shown: String = tool.chars().take(MAX_PATTERN_LEN).collect();
        match denial {
            Denial::Denied(pattern) => format!(
                "the tool {shown:?} is denied by this integration's tool policy (deny pattern {pattern:?}); \
                 an admin can change the policy with PATCH /api/v1/integrations/{{id}} `tools`"
            ),
            Denial::NotAllowed => format!(
                "the tool {shown:?} is not allowed by this integration's tool policy (allow: {}); an admin can \
                 change the policy with PATCH /api/v1/integrations/{{id}} `tools`",
                self.allow.join(", ")
            ),
        }
    }

    /// Checks the patterns a PATCH sets: the message names the offending pattern.
    pub fn validate(&self) -> Result<(), String> {
        for (list, name) in [(&self.allow, "tools.allow"), (&self.deny, "tools.deny")] {
            if list.len() > MAX_PATTERNS {
                return Err(format!("{name} holds more than {MAX_PATTERNS} patterns"));
            }
            for p in list {
                if p.is_empty() {
                    return Err(format!("{name} holds an empty pattern"));
                }
                if p.len() > MAX_PATTERN_LEN {
                    return Err(format!(
                        "{name} holds a pattern longer than {MAX_PATTERN_LEN} bytes"
                    ));
                }
                if p.chars().any(char::is_control) {
                    return Err(format!("{name} holds a pattern with a control character"));
                }
            }
        }
        Ok(())
    }
}

/// `*` matches any run of characters (also none); everything else matches itself, case-sensitively.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks a `tool_prefix`: 1 to 48 of `a-z 0-9 - _`, starting with a letter or digit, not ending with `-` or `_`,
/// and without `__` (the separator), so `<prefix>__<tool>` always splits back at its first `__`.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(format!(
            "tool_prefix must be 1 to {MAX_PREFIX_LEN} characters long"
        ));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("tool_prefix may only hold lowercase letters, digits, '-' and '_'".to_owned());
    }
    let first = prefix.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("tool_prefix must start with a lowercase letter or a digit".to_owned());
    }
    if prefix.ends_with('_') || prefix.ends_with('-') {
        return Err("tool_prefix must not end with '_' or '-'".to_owned());
    }
    if prefix.contains(SEPARATOR) {
        return Err(format!(
            "tool_prefix must not contain {SEPARATOR:?}, which separates it from the tool's name"
        ));
    }
    Ok(())
}

/// The default prefix of an integration: its connector id, or a slug of its name for a custom server, made valid
/// (lowercased, other characters and runs of `_` turned into single `-`/`_`, trimmed, cut to length; `mcp` when
/// nothing is left).
pub fn default_prefix(connector_id: Option<&str>, name: &str) -> String {
    let source = connector_id.unwrap_or(name);
    let mut out = String::with_capacity(source.len().min(MAX_PREFIX_LEN));
    for c in source.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else if c == '_' {
            '_'
        } else {
            '-'
        };
        let last = out.chars().last();
        let is_sep = |x: char| x == '-' || x == '_';
        if is_sep(c) && (last.is_none() || last.is_some_and(is_sep)) {
            continue;
        }
        out.push(c);
        if out.len() >= MAX_PREFIX_LEN {
            break;
        }
    }
    while out.ends_with('-') || out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("mcp");
    }
    out
}

/// `<prefix>__<tool>`.
pub fn exposed_name(prefix: &str, tool: &str) -> String {
    format!("{prefix}{SEPARATOR}{tool}")
}

/// Splits an exposed name back into `(prefix, tool)`; `None` when it has no separator or an empty tool.
pub fn split_exposed(name: &str) -> Option<(&str, &str)> {
    let (prefix, tool) = name.split_once(SEPARATOR)?;
    if prefix.is_empty() || tool.is_empty() {
        return None;
    }
    Some((prefix, tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> ToolPolicy {
        ToolPolicy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn globs_match_runs_of_characters_and_nothing_else() {
        for (p, t) in [
            ("*", ""),
            ("*", "anything"),
            ("get_*", "get_issue"),
            ("get_*", "get_"),
            ("*_issue", "get_issue"),
            ("a*b*c", "aXbYc"),
            ("a*b*c", "abc"),
            ("a**c", "abbc"),
            ("exact", "exact"),
            ("é*", "été"),
        ] {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        for (p, t) in [
            ("get_*", "list_issues"),
            ("exact", "exactly"),
            ("exact", "Exact"),
            ("a*b*c", "acb"),
            ("?", "a"),
            ("", "a"),
        ] {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }

    #[test]
    fn an_empty_policy_allows_everything_and_deny_wins_over_allow() {
        assert!(policy(&[], &[]).is_open());
        assert!(policy(&[], &[]).allows("whatever"));
        let p = policy(&["get_*", "list_*"], &["get_secret*"]);
        assert!(p.allows("get_issue"));
        assert!(p.allows("list_repos"));
        assert_eq!(p.check("delete_repo"), Err(Denial::NotAllowed));
        assert_eq!(
            p.check("get_secret_key"),
            Err(Denial::Denied("get_secret*".into()))
        );
        let only_deny = policy(&[], &["delete_*"]);
        assert!(only_deny.allows("create_issue"));
        assert!(!only_deny.allows("delete_repo"));
    }

    #[test]
    fn a_denial_message_names_the_tool_and_the_policy() {
        let p = policy(&["get_*"], &["get_secret*"]);
        let m = p.denial_message("get_secret", &p.check("get_secret").unwrap_err());
        assert!(
            m.contains("\"get_secret\"") && m.contains("deny pattern \"get_secret*\""),
            "{m}"
        );
        let m = p.denial_message("drop", &p.check("drop").unwrap_err());
        assert!(m.contains("not allowed") && m.contains("get_*"), "{m}");
    }

    #[test]
    fn prefixes_are_validated_so_names_split_back_unambiguously() {
        for ok in ["github", "google-drive", "a", "x9", "my_tools", "a-b_c"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Git",
            "a__b",
            "a_",
            "a-",
            "_a",
            "-a",
            "a b",
            "ä",
            &"a".repeat(49),
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
        let name = exposed_name("my_tools", "__private_tool");
        assert_eq!(split_exposed(&name), Some(("my_tools", "__private_tool")));
        assert_eq!(split_exposed("no-separator"), None);
        assert_eq!(split_exposed("__tool"), None);
        assert_eq!(split_exposed("prefix__"), None);
    }

    #[test]
    fn default_prefixes_are_valid_prefixes() {
        assert_eq!(default_prefix(Some("github"), "ignored"), "github");
        assert_eq!(default_prefix(Some("weird__id_"), "x"), "weird_id");
        assert_eq!(
            default_prefix(None, "My Custom Server!"),
            "my-custom-server"
        );
        assert_eq!(default_prefix(None, "¡¡¡"), "mcp");
        for source in [
            "a__b",
            "__x__",
            "Ünïcode name",
            "a b  c",
            &"long".repeat(30),
        ] {
            let p = default_prefix(None, source);
            assert!(validate_prefix(&p).is_ok(), "{source:?} -> {p:?}");
        }
    }

    #[test]
    fn pattern_lists_are_bounded() {
        assert!(policy(&["ok*"], &["x"]).validate().is_ok());
        assert!(policy(&[""], &[]).validate().is_err());
        assert!(policy(&[], &["a\nb"]).validate().is_err());
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("t{i}")).collect();
        let p = ToolPolicy {
            allow: many,
            deny: vec![],
        };
        assert!(p.validate().unwrap_err().contains("tools.allow"));
    }
}
