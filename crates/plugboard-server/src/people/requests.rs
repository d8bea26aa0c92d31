//! The request bodies of the people endpoints, parsed (in the handler, after the role check) into typed values. Each
//! struct is what its endpoint parses and what the OpenAPI document describes (`ToSchema`). Messages name the key,
//! never a submitted value; a body that is refused stores nothing.

use plugboard_store::Role;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::{json_object, only_keys};
use crate::integration::valid_name;

/// Longest `expires_in_days` (ten years).
pub const MAX_TOKEN_DAYS: i64 = 3650;
/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// A role as the API writes it (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "UPPERCASE")]
#[allow(dead_code)]
pub enum RoleName {
    Viewer,
    Member,
    Manager,
    Admin,
    Owner,
}

fn required_string<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::invalid_field(format!("`{key}` is required"))),
        Some(_) => Err(ApiError::invalid_field(format!("`{key}` must be a string"))),
    }
}

fn required_name(body: &Map<String, Value>) -> Result<String, ApiError> {
    valid_name(required_string(body, "name")?)
}

fn role(body: &Map<String, Value>) -> Result<Role, ApiError> {
    required_string(body, "role")?.trim().parse().map_err(|_| {
        ApiError::invalid_field("`role` must be one of VIEWER, MEMBER, MANAGER, ADMIN, OWNER")
    })
}

/// An email address as Plugboard stores it (trimmed, lower-cased), or 400 naming `email`: one `@` between a
/// non-empty local part and a domain of dot-separated labels, no spaces, quotes or control characters, at most
/// 254 characters.
pub(crate) fn valid_email(raw: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "`email` is not an email address (expected something like name@example.com)",
        )
    };
    let email = raw.trim();
    if email.is_empty() || email.chars().count() > MAX_EMAIL {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"()<>[]\\,;:\"@".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email.to_lowercase())
    } else {
        Err(bad())
    }
}

/// `POST /api/v1/workspaces`, `PATCH /api/v1/workspaces/{id}`, `POST /api/v1/workspaces/{id}/crews` and
/// `PATCH /api/v1/crews/{crew_id}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct NameRequest {
    /// 1 to 200 characters (trimmed), no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
}

impl NameRequest {
    pub const KEYS: &'static [&'static str] = &["name"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        Ok(NameRequest {
            name: required_name(&raw)?,
        })
    }
}

/// `POST /api/v1/workspaces/{id}/members`.
#[derive(Debug, utoipa::ToSchema)]
pub struct AddMemberRequest {
    /// The person's email address; a user is created when nobody has it yet.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl AddMemberRequest {
    pub const KEYS: &'static [&'static str] = &["email", "role"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        Ok(AddMemberRequest {
            email: valid_email(required_string(&raw, "email")?)?,
            role: role(&raw)?,
        })
    }
}

/// `PATCH /api/v1/workspaces/{id}/members/{user_id}`.
#[derive(Debug, utoipa::ToSchema)]
pub struct RoleRequest {
    #[schema(value_type = RoleName)]
    pub role: Role,
}

impl RoleRequest {
    pub const KEYS: &'static [&'static str] = &["role"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        Ok(RoleRequest { role: role(&raw)? })
    }
}

/// `POST /api/v1/tokens`.
#[derive(Debug, utoipa::ToSchema)]
pub struct CreateTokenRequest {
    /// 1 to 200 characters (trimmed), no control characters: what the token is for.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Whole days from now until the token stops working, 1 to 3650; omit (or `null`) for a token that does not
    /// expire.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

impl CreateTokenRequest {
    pub const KEYS: &'static [&'static str] = &["name", "expires_in_days"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        let name = required_name(&raw)?;
        let expires_in_days = Self::parse_days(&raw)?;
        Ok(CreateTokenRequest {
            name,
            expires_in_days,
        })
    }

    /// `expires_in_days`: absent or `null`, or a whole number of days from 1 to [`MAX_TOKEN_DAYS`].
    pub(crate) fn parse_days(raw: &Map<String, Value>) -> Result<Option<i64>, ApiError> {
        Ok(match raw.get("expires_in_days") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    // JSON has one number type: 30.0 is the whole number 30.
                    .or_else(|| {
                        v.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() <= 1e9)
                            .map(|f| f as i64)
                    })
                    .filter(|d| (1..=MAX_TOKEN_DAYS).contains(d))
                    .ok_or_else(|| {
                        ApiError::invalid_field(format!(
                            "`expires_in_days` must be a whole number from 1 to {MAX_TOKEN_DAYS}"
                        ))
                    })?,
            ),
        })
    }
}

/// `POST /api/v1/workspaces/{id}/agent-tokens`.
#[derive(Debug, utoipa::ToSchema)]
pub struct CreateAgentTokenRequest {
    /// 1 to 200 characters (trimmed), no control characters: which agent uses it.
    pub name: String,
    /// A crew of the workspace: the token then reaches that crew's integrations and the workspace-scoped ones;
    /// omit (or `null`) for a token that reaches every integration of the workspace.
    #[schema(value_type = Option<String>)]
    pub crew_id: Option<plugboard_store::CrewId>,
    /// Whole days from now until the token stops working, 1 to 3650; omit (or `null`) for a token that does not
    /// expire.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

impl CreateAgentTokenRequest {
    pub const KEYS: &'static [&'static str] = &["name", "crew_id", "expires_in_days"];

    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let raw = json_object(body)?;
        only_keys(&raw, Self::KEYS)?;
        let name = required_name(&raw)?;
        let crew_id = match raw.get("crew_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(plugboard_store::CrewId::parse(s.trim()).ok_or_else(|| {
                    ApiError::invalid_field("`crew_id` is not a crew of this workspace")
                })?)
            }
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "`crew_id` must be a crew id (a string) or null",
                ))
            }
        };
        let personal = CreateTokenRequest::parse_days(&raw)?;
        Ok(CreateAgentTokenRequest {
            name,
            crew_id,
            expires_in_days: personal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_that_are_not_are_refused_without_echoing_them() {
        for ok in [
            "ada@example.com",
            " Ada.L+x@Sub.Example.org ",
            "o'neil@example.co.uk",
            "jo@bücher.de",
        ] {
            assert!(valid_email(ok).is_ok(), "{ok}");
        }
        assert_eq!(valid_email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada@-x.com",
            "ada@example..com",
            "ad\u{0}a@example.com",
            "\"ada\"@example.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("a@{}.com", "b".repeat(260)),
        ] {
            // One fixed message: the value is never echoed.
            let e = valid_email(bad).expect_err(bad);
            assert_eq!(
                e.message,
                "`email` is not an email address (expected something like name@example.com)"
            );
        }
    }

    #[test]
    fn bodies_are_parsed_strictly() {
        assert_eq!(
            NameRequest::parse(br#"{"name":" Acme "}"#).unwrap().name,
            "Acme"
        );
        for bad in [
            &br#"{}"#[..],
            br#"{"name":""}"#,
            br#"{"name":7}"#,
            br#"{"name":"a","x":1}"#,
            br#"[]"#,
            br#"{"name":"a\u0000b"}"#,
        ] {
            assert_eq!(NameRequest::parse(bad).unwrap_err().status.as_u16(), 400);
        }
        let long = format!(r#"{{"name":"{}"}}"#, "n".repeat(10 * 1024));
        assert!(NameRequest::parse(long.as_bytes())
            .unwrap_err()
            .message
            .contains("200"));
        let r = AddMemberRequest::parse(br#"{"email":"A@x.io","role":"admin"}"#).unwrap();
        assert_eq!((r.email.as_str(), r.role), ("a@x.io", Role::Admin));
        let e = RoleRequest::parse(br#"{"role":"GOD"}"#).unwrap_err();
        assert!(e.message.contains("`role`") && !e.message.contains("GOD"));
        let t = CreateTokenRequest::parse(br#"{"name":"ci","expires_in_days":30}"#).unwrap();
        assert_eq!(t.expires_in_days, Some(30));
        // JSON has one number type: a whole number written with a fraction is still that number.
        let t = CreateTokenRequest::parse(br#"{"name":"ci","expires_in_days":30.0}"#).unwrap();
        assert_eq!(t.expires_in_days, Some(30));
        assert_eq!(
            CreateTokenRequest::parse(br#"{"name":"ci"}"#)
                .unwrap()
                .expires_in_days,
            None
        );
        for bad in [
            &br#"{"name":"ci","expires_in_days":0}"#[..],
            br#"{"name":"ci","expires_in_days":1.5}"#,
            br#"{"name":"ci","expires_in_days":"3"}"#,
            br#"{"name":"ci","expires_in_days":3651}"#,
        ] {
            assert!(CreateTokenRequest::parse(bad)
                .unwrap_err()
                .message
                .contains("expires_in_days"));
        }
    }
}
