//! The outcomes of a sign-in that did not produce an identity. Messages are for the person at the browser: what
//! happened and what to do. None contains a code, a token, a state, a nonce or a secret.

use axum::http::StatusCode;

/// Why an ID token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenProblem {
    /// The token response had no `id_token` (was `openid` asked for?).
    Missing,
    /// Not a JWT Plugboard can read.
    Malformed,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain Plugboard's client id (or names other, untrusted audiences).
    WrongAudience,
    /// `exp` has passed.
    Expired,
    /// `nonce` is not the one this sign-in sent.
    WrongNonce,
    /// Signed with a key the provider's JWKS does not contain (even after fetching it again).
    UnknownKey,
    /// The signature does not verify with the provider's key.
    BadSignature,
    /// `alg: none`.
    Unsigned,
    /// An algorithm the provider does not advertise, or a shared-secret (HS*) one.
    DisallowedAlgorithm,
    /// A feature Plugboard does not accept (encrypted or nested tokens, `crit` headers, an unexpected `typ`).
    Unsupported,
}

impl IdTokenProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenProblem::Missing => "missing",
            IdTokenProblem::Malformed => "malformed",
            IdTokenProblem::WrongIssuer => "wrong_issuer",
            IdTokenProblem::WrongAudience => "wrong_audience",
            IdTokenProblem::Expired => "expired",
            IdTokenProblem::WrongNonce => "wrong_nonce",
            IdTokenProblem::UnknownKey => "unknown_key",
            IdTokenProblem::BadSignature => "bad_signature",
            IdTokenProblem::Unsigned => "unsigned",
            IdTokenProblem::DisallowedAlgorithm => "disallowed_algorithm",
            IdTokenProblem::Unsupported => "unsupported",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            IdTokenProblem::Missing => "your identity provider sent no identity token (is the `openid` scope asked for?)",
            IdTokenProblem::Malformed => "the identity token from your identity provider cannot be read",
            IdTokenProblem::WrongIssuer => "the identity token was issued by a different identity provider than the configured one",
            IdTokenProblem::WrongAudience => "the identity token was issued for a different application, not for Plugboard",
            IdTokenProblem::Expired => "the identity token has expired (check that the clocks of Plugboard and your identity provider are right)",
            IdTokenProblem::WrongNonce => "the identity token does not belong to this sign-in (its nonce does not match)",
            IdTokenProblem::UnknownKey => "the identity token is signed with a key your identity provider does not publish",
            IdTokenProblem::BadSignature => "the identity token's signature is not valid",
            IdTokenProblem::Unsigned => "the identity token is not signed",
            IdTokenProblem::DisallowedAlgorithm => "the identity token is signed with an algorithm your identity provider does not advertise or Plugboard does not accept",
            IdTokenProblem::Unsupported => "the identity token uses a format Plugboard does not accept (encrypted, nested or with critical headers)",
        }
    }
}

/// A sign-in that did not produce a verified identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The identity provider did not answer (down, refused the connection, timed out, 5xx).
    #[error("Plugboard could not reach your identity provider: {0}. Try again in a moment; if this goes on, ask your administrator to check that the provider at PLUGBOARD_OIDC_ISSUER is up and reachable from Plugboard.")]
    ProviderUnreachable(String),
    /// The provider answered, but with something Plugboard cannot use (bad discovery document, issuer mismatch,
    /// no PKCE S256, bad JWKS …).
    #[error("Your identity provider's configuration cannot be used: {0}. Ask your administrator to check PLUGBOARD_OIDC_ISSUER and the provider's settings.")]
    ProviderInvalid(String),
    /// No pending sign-in cookie, or one that is expired, altered or from another configuration.
    #[error("This sign-in was started too long ago, in another browser, or not at all. Start again from the sign-in page.")]
    SignInExpired,
    /// The callback's `state` is missing or is not the one this browser's sign-in sent.
    #[error("This answer from your identity provider does not belong to the sign-in started in this browser. Start again from the sign-in page.")]
    StateMismatch,
    /// The state was already used on this instance.
    #[error("This sign-in answer was already used. Start again from the sign-in page.")]
    Replayed,
    /// The callback's `iss` is not the configured issuer, or is missing although the provider promised it (RFC 9207).
    #[error("This sign-in answer did not come from the identity provider Plugboard uses. Start again from the sign-in page.")]
    IssuerMismatch,
    /// The provider answered the authorization request with an error (e.g. `access_denied`).
    #[error("Your identity provider did not sign you in ({code}){}. Start again, or ask your administrator if you should have access.", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    ProviderDenied {
        code: String,
        description: Option<String>,
    },
    /// The callback carried no authorization code.
    #[error("Your identity provider's answer carried no sign-in code. Start again from the sign-in page.")]
    MissingCode,
    /// The token endpoint refused the code (`invalid_grant`: expired, already used, or PKCE mismatch).
    #[error("Your identity provider refused the sign-in code: it expired or was already used. Start again from the sign-in page.")]
    CodeRejected,
    /// The token endpoint refused Plugboard's client credentials.
    #[error("Your identity provider does not accept Plugboard's client credentials. Ask your administrator to check PLUGBOARD_OIDC_CLIENT_ID and PLUGBOARD_OIDC_CLIENT_SECRET.")]
    ClientRejected,
    /// Another OAuth error from the token endpoint.
    #[error("Your identity provider refused the sign-in ({0}). Start again; if this goes on, ask your administrator.")]
    TokenRefused(String),
    /// The ID token failed validation.
    #[error("The sign-in was refused: {}. No session was started; if this goes on, ask your administrator.", .0.explain())]
    IdToken(IdTokenProblem),
    /// Neither the ID token nor the userinfo endpoint gave an email address.
    #[error("Your identity provider did not share your email address, which Plugboard needs to know who you are. Ask your administrator to include the `email` scope in PLUGBOARD_OIDC_SCOPES and to allow it for Plugboard.")]
    EmailMissing,
    /// The email claim is not a usable address.
    #[error("Your identity provider gave an email address Plugboard cannot use. Ask your administrator to check your account's email address.")]
    EmailInvalid,
    /// `email_verified` is not `true`.
    #[error("Your identity provider says your email address is not verified. Verify it with your identity provider, then sign in again.")]
    EmailNotVerified,
    /// Plugboard could not seal the pending sign-in (should not happen).
    #[error("Plugboard could not start the sign-in. Try again.")]
    Internal,
}

impl OidcError {
    /// A snake_case code for logs and pages.
    pub fn code(&self) -> &'static str {
        match self {
            OidcError::ProviderUnreachable(_) => "oidc_provider_unreachable",
            OidcError::ProviderInvalid(_) => "oidc_provider_invalid",
            OidcError::SignInExpired => "oidc_sign_in_expired",
            OidcError::StateMismatch => "oidc_state_mismatch",
            OidcError::Replayed => "oidc_sign_in_replayed",
            OidcError::IssuerMismatch => "oidc_issuer_mismatch",
            OidcError::ProviderDenied { .. } => "oidc_denied",
            OidcError::MissingCode => "oidc_missing_code",
            OidcError::CodeRejected => "oidc_code_rejected",
            OidcError::ClientRejected => "oidc_client_rejected",
            OidcError::TokenRefused(_) => "oidc_token_refused",
            OidcError::IdToken(_) => "oidc_invalid_id_token",
            OidcError::EmailMissing => "oidc_email_missing",
            OidcError::EmailInvalid => "oidc_email_invalid",
            OidcError::EmailNotVerified => "oidc_email_not_verified",
            OidcError::Internal => "internal",
        }
    }

    /// The status of the HTML page that reports it.
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::ProviderUnreachable(_) => StatusCode::BAD_GATEWAY,
            OidcError::ProviderInvalid(_)
            | OidcError::ClientRejected
            | OidcError::TokenRefused(_)
            | OidcError::IdToken(_) => StatusCode::BAD_GATEWAY,
            OidcError::EmailMissing | OidcError::EmailInvalid | OidcError::EmailNotVerified => {
                StatusCode::FORBIDDEN
            }
            OidcError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short title for the page.
    pub fn title(&self) -> &'static str {
        match self {
            OidcError::ProviderUnreachable(_) => "Identity provider unreachable",
            OidcError::ProviderInvalid(_) | OidcError::ClientRejected => "Sign-in is misconfigured",
            OidcError::EmailNotVerified => "Email address not verified",
            OidcError::EmailMissing | OidcError::EmailInvalid => "No usable email address",
            OidcError::SignInExpired | OidcError::StateMismatch | OidcError::Replayed => {
                "Sign-in expired"
            }
            _ => "Sign-in failed",
        }
    }

    /// Whether starting again can help (the page then offers it).
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            OidcError::ProviderInvalid(_)
                | OidcError::ClientRejected
                | OidcError::EmailMissing
                | OidcError::EmailInvalid
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened_and_what_to_do() {
        let e = OidcError::EmailNotVerified;
        assert!(e.to_string().contains("your email address is not verified"));
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let e = OidcError::IdToken(IdTokenProblem::WrongAudience);
        assert!(e.to_string().contains("different application"), "{e}");
        let e = OidcError::ProviderDenied {
            code: "access_denied".into(),
            description: Some("user said no".into()),
        };
        assert!(
            e.to_string().contains("(access_denied): user said no"),
            "{e}"
        );
    }
}
