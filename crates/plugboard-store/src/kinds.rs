//! The small closed sets stored as text: an integration's status and auth mode, an OAuth flow, a client's token
//! endpoint auth method. Each is an enum with
//! one wire name per value (the text in the database and in JSON, unchanged from when they were plain strings).

use std::fmt;

use plugboard_catalog::AuthMode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stores a type with `as_str()` and `parse()` as TEXT on both backends, and (de)serialises it as that string.
macro_rules! stored_as_text {
    ($ty:ty, $what:literal) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $ty
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $ty
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $ty
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                <$ty>::parse(text)
                    .ok_or_else(|| format!("unknown {} `{}` in the database", $what, text).into())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$ty>::parse(&text)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown {} `{text}`", $what)))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// An integration's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrationStatus {
    /// Ready to use.
    Active,
    /// Waiting for its OAuth authorization to complete.
    PendingOauth,
    /// Needs attention (its `status_reason` says why and what to do).
    Error,
}

impl IntegrationStatus {
    pub const ALL: [IntegrationStatus; 3] = [
        IntegrationStatus::Active,
        IntegrationStatus::PendingOauth,
        IntegrationStatus::Error,
    ];

    /// The wire name: `active`, `pending_oauth` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Active => "active",
            IntegrationStatus::PendingOauth => "pending_oauth",
            IntegrationStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

stored_as_text!(IntegrationStatus, "integration status");

/// Which OAuth flow an integration's authorization uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OAuthFlow {
    /// The customer's own OAuth app, described by the manifest's `oauth` block.
    Byo,
    /// MCP authorization: discovery and dynamic client registration at the MCP server's authorization server.
    Mcp,
}

impl OAuthFlow {
    /// The wire name: `byo_oauth` or `mcp_oauth` (the same as the auth mode).
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthFlow::Byo => "byo_oauth",
            OAuthFlow::Mcp => "mcp_oauth",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [OAuthFlow::Byo, OAuthFlow::Mcp]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

stored_as_text!(OAuthFlow, "OAuth flow");

/// How an integration authenticates: its connector's auth mode, or `custom` for a hand-described MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrationAuthMode {
    Connector(AuthMode),
    /// A custom MCP server (no connector): its secrets are the header / env values marked secret.
    Custom,
}

impl IntegrationAuthMode {
    /// The wire name: a connector's auth mode (`pat`, `conn_string`, `mcp_oauth`, `byo_oauth`, `none`) or `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationAuthMode::Connector(m) => m.as_str(),
            IntegrationAuthMode::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "custom" => Some(IntegrationAuthMode::Custom),
            other => AuthMode::parse(other).map(IntegrationAuthMode::Connector),
        }
    }

    /// The one place that decides whether an integration is authorised through OAuth, and by which flow.
    pub fn oauth_flow(self) -> Option<OAuthFlow> {
        match self {
            IntegrationAuthMode::Connector(AuthMode::ByoOauth) => Some(OAuthFlow::Byo),
            IntegrationAuthMode::Connector(AuthMode::McpOauth) => Some(OAuthFlow::Mcp),
            _ => None,
        }
    }
}

impl From<AuthMode> for IntegrationAuthMode {
    fn from(m: AuthMode) -> Self {
        IntegrationAuthMode::Connector(m)
    }
}

stored_as_text!(IntegrationAuthMode, "auth mode");

/// How an OAuth client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// A public client: `client_id` in the form, no secret.
    None,
    /// `client_id` and `client_secret` in the form.
    Post,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    Basic,
}

impl ClientAuthMethod {
    /// The wire name: `none`, `client_secret_post` or `client_secret_basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::Post => "client_secret_post",
            ClientAuthMethod::Basic => "client_secret_basic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ClientAuthMethod::None,
            ClientAuthMethod::Post,
            ClientAuthMethod::Basic,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

stored_as_text!(ClientAuthMethod, "token endpoint auth method");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_only_oauth_modes_have_a_flow() {
        for s in IntegrationStatus::ALL {
            assert_eq!(IntegrationStatus::parse(s.as_str()), Some(s));
        }
        for m in AuthMode::ALL {
            let mode = IntegrationAuthMode::from(m);
            assert_eq!(IntegrationAuthMode::parse(mode.as_str()), Some(mode));
            assert_eq!(
                mode.oauth_flow().map(OAuthFlow::as_str),
                matches!(m, AuthMode::ByoOauth | AuthMode::McpOauth).then(|| m.as_str())
            );
        }
        assert_eq!(
            IntegrationAuthMode::parse("custom"),
            Some(IntegrationAuthMode::Custom)
        );
        assert_eq!(IntegrationAuthMode::Custom.oauth_flow(), None);
        assert_eq!(IntegrationStatus::parse("Active"), None);
        assert_eq!(OAuthFlow::parse("oauth"), None);
        for m in [
            ClientAuthMethod::None,
            ClientAuthMethod::Post,
            ClientAuthMethod::Basic,
        ] {
            assert_eq!(ClientAuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(ClientAuthMethod::parse("private_key_jwt"), None);
    }
}
