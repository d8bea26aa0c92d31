//! The token endpoint client: one form-encoded request (authorization code or refresh grant) through the egress
//! guard with redirects off, the client authenticated as its registration says (public, `client_secret_post` or
//! `client_secret_basic`), and a lenient, hostile-input-safe parser of the answer (JSON or form-encoded; Slack-style
//! `ok: false`; GitHub-style errors with HTTP 200; `expires_in` as a number or a string). Why this is our own code
//! rather than the `oauth2` crate's: `docs/behaviour.md`, OAuth.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{error_code, sanitize};

/// Longest token accepted from a provider.
const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Longest provider text (error description) shown in a reason.
const MAX_DESCRIPTION: usize = 200;

pub use plugboard_store::ClientAuthMethod;

/// The client credentials for a token request.
pub struct Client {
    pub id: String,
    pub secret: Option<SecretString>,
    pub method: ClientAuthMethod,
}

/// What a token endpoint granted.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Seconds, as the provider said (clamped to 0 ..= 10 years).
    pub expires_in: Option<i64>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a token request failed. Messages are safe to show: no code, token or client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointError {
    /// The provider answered with an OAuth error.
    OAuth {
        status: u16,
        code: String,
        description: Option<String>,
    },
    /// The call did not complete (refused by the egress guard, timeout, connection).
    Transport(String),
    /// The answer is not a usable token response.
    Invalid(String),
}

impl EndpointError {
    pub fn message(&self) -> String {
        match self {
            EndpointError::OAuth {
                code, description, ..
            } => match description {
                Some(d) if !d.is_empty() => format!("the provider answered `{code}`: {d}"),
                _ => format!("the provider answered `{code}`"),
            },
            EndpointError::Transport(m) => format!("the token endpoint could not be reached ({m})"),
            EndpointError::Invalid(m) => m.clone(),
        }
    }

    /// The provider refused the grant itself (as opposed to being unreachable or briefly failing): the user has
    /// to connect again.
    pub fn is_refusal(&self) -> bool {
        match self {
            EndpointError::OAuth { status, code, .. } => {
                let transient = matches!(
                    code.as_str(),
                    "temporarily_unavailable" | "server_error" | "slow_down"
                );
                !(transient || *status >= 500 || *status == 408 || *status == 429)
            }
            _ => false,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            EndpointError::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// RFC 6749 Appendix B: the form-urlencoding of a client id or secret for HTTP Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The form body and, for HTTP Basic, the `Authorization` value.
fn encode_request(form: &[(String, String)], client: &Client) -> (Vec<u8>, Option<String>) {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        body.append_pair(k, v);
    }
    let mut basic = None;
    match client.method {
        ClientAuthMethod::None => {
            body.append_pair("client_id", &client.id);
        }
        ClientAuthMethod::Post => {
            body.append_pair("client_id", &client.id);
            if let Some(s) = &client.secret {
                body.append_pair("client_secret", s.expose_secret());
            }
        }
        ClientAuthMethod::Basic => {
            let secret = client
                .secret
                .as_ref()
                .map(|s| form_encode(s.expose_secret()))
                .unwrap_or_default();
            let pair = format!("{}:{}", form_encode(&client.id), secret);
            basic = Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
            ));
        }
    }
    (body.finish().into_bytes(), basic)
}

/// Sends one token request (`form` holds the grant's parameters) and parses the answer. `redact` lists values
/// that must not appear in an error message even if the provider echoes them.
pub async fn token_request(
    egress: &plugboard_egress::Guard,
    endpoint: &str,
    form: &[(String, String)],
    client: &Client,
    redact: &[&str],
) -> Result<TokenSet, EndpointError> {
    let (body, basic) = encode_request(form, client);
    let mut req = plugboard_egress::Request::post(endpoint, body)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .follow_redirects(false);
    if let Some(b) = basic {
        req = req.header("Authorization", b);
    }
    let mut redact: Vec<&str> = redact.to_vec();
    if let Some(s) = &client.secret {
        redact.push(s.expose_secret());
    }
    let res = egress
        .send(req)
        .await
        .map_err(|e| EndpointError::Transport(e.to_string()))?;
    parse_token_response(res.status, &res.headers, &res.body, res.truncated, &redact)
}

/// Parses a token endpoint's answer: JSON, or `application/x-www-form-urlencoded` (GitHub without
/// `Accept: application/json`, some older providers). Never panics; never echoes a token.
pub fn parse_token_response(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    truncated: bool,
    redact: &[&str],
) -> Result<TokenSet, EndpointError> {
    if truncated {
        return Err(EndpointError::Invalid(format!(
            "the token endpoint's answer (HTTP {status}) is too large"
        )));
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let map = parse_body(body, &content_type);
    let Some(map) = map else {
        return Err(EndpointError::Invalid(if (200..300).contains(&status) {
            format!("the token endpoint answered HTTP {status} with something that is neither JSON nor form-encoded")
        } else {
            format!("the token endpoint answered HTTP {status}")
        }));
    };
    let str_of = |k: &str| map.get(k).and_then(Value::as_str);
    let slack_refused = map.get("ok") == Some(&Value::Bool(false));
    if let Some(err) = str_of("error") {
        let code = error_code(err).unwrap_or_else(|| "invalid_response".into());
        let description = str_of("error_description")
            .map(|d| sanitize(d, MAX_DESCRIPTION, redact))
            .filter(|d| !d.is_empty());
        return Err(EndpointError::OAuth {
            status,
            code,
            description,
        });
    }
    if slack_refused {
        return Err(EndpointError::OAuth {
            status,
            code: "invalid_response".into(),
            description: None,
        });
    }
    if !(200..300).contains(&status) {
        return Err(EndpointError::Invalid(format!(
            "the token endpoint answered HTTP {status}"
        )));
    }
    let token = |k: &str| -> Result<Option<SecretString>, EndpointError> {
        match map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s))
                if s.len() <= MAX_TOKEN_BYTES && !s.chars().any(char::is_control) =>
            {
                Ok(Some(SecretString::from(s.clone())))
            }
            Some(_) => Err(EndpointError::Invalid(format!(
                "the token endpoint's `{k}` is not a usable string"
            ))),
        }
    };
    let access_token = token("access_token")?.ok_or_else(|| {
        EndpointError::Invalid("the token endpoint's answer has no access_token".into())
    })?;
    let refresh_token = token("refresh_token")?;
    let expires_in = map.get("expires_in").and_then(|v| {
        let secs = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }?;
        secs.is_finite()
            .then(|| secs.clamp(0.0, 10.0 * 365.0 * 86_400.0) as i64)
    });
    Ok(TokenSet {
        access_token,
        refresh_token,
        expires_in,
    })
}

fn parse_body(body: &[u8], content_type: &str) -> Option<Map<String, Value>> {
    if !content_type.contains("x-www-form-urlencoded") {
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
            return Some(m);
        }
        if content_type.contains("json") {
            return None;
        }
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || !text.contains('=') || text.starts_with('<') || text.starts_with('{') {
        return None;
    }
    let mut m = Map::new();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        m.entry(k.into_owned())
            .or_insert(Value::String(v.into_owned()));
    }
    Some(m)
}

/// Where and as whom to call the token endpoint.
pub(crate) struct Target {
    pub endpoint: String,
    pub client: Client,
    /// Extra form parameters (a byo_oauth manifest's `token_params`).
    pub extra: Vec<(String, String)>,
}

pub(crate) enum TargetError {
    /// Something the user must fix (connector gone, a value missing): the reason.
    Config(String),
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn json_and_form_answers_parse() {
        let t = parse_token_response(
            200,
            &headers("application/json"),
            br#"{"access_token":"at","refresh_token":"rt","expires_in":3600,"token_type":"Bearer"}"#,
            false,
            &[],
        )
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "at");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(t.expires_in, Some(3600));
        let t = parse_token_response(
            200,
            &headers("application/x-www-form-urlencoded; charset=utf-8"),
            b"access_token=gho_x&scope=repo&token_type=bearer",
            false,
            &[],
        )
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "gho_x");
        assert!(t.refresh_token.is_none() && t.expires_in.is_none());
        let t = parse_token_response(
            200,
            &headers("text/plain"),
            b"access_token=a&expires_in=12",
            false,
            &[],
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(12));
    }

    #[test]
    fn hostile_answers_are_errors_not_panics() {
        let cases: Vec<(u16, &str, &[u8])> = vec![
            (200, "application/json", b"[]"),
            (200, "application/json", b"{\"access_token\":5}"),
            (200, "application/json", b"{\"access_token\":\"\"}"),
            (200, "application/json", b"not json"),
            (200, "text/html", b"<html>hi</html>"),
            (200, "", b""),
            (500, "text/plain", b"oops"),
            (200, "application/json", b"{\"access_token\":\"a\\nb\"}"),
            (200, "application/json", &[0xff, 0xfe, 0x00]),
        ];
        for (status, ct, body) in cases {
            assert!(
                parse_token_response(status, &headers(ct), body, false, &[]).is_err(),
                "{status} {ct} {:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_token_response(200, &headers("application/json"), b"{}", true, &[]),
            Err(EndpointError::Invalid(_))
        ));
        // Odd expiries are clamped or ignored.
        for (v, want) in [
            ("-5", Some(0)),
            ("1e300", Some(315_360_000)),
            ("\"60\"", Some(60)),
            ("\"x\"", None),
            ("null", None),
            ("{}", None),
        ] {
            let body = format!("{{\"access_token\":\"a\",\"expires_in\":{v}}}");
            let t = parse_token_response(
                200,
                &headers("application/json"),
                body.as_bytes(),
                false,
                &[],
            )
            .unwrap();
            assert_eq!(t.expires_in, want, "{v}");
        }
    }

    #[test]
    fn oauth_errors_carry_a_safe_code_and_a_redacted_description() {
        let e = parse_token_response(
            400,
            &headers("application/json"),
            br#"{"error":"invalid_grant","error_description":"code SECRETCODE123 is expired"}"#,
            false,
            &["SECRETCODE123"],
        )
        .unwrap_err();
        assert!(e.is_refusal());
        let m = e.message();
        assert!(
            m.contains("invalid_grant") && !m.contains("SECRETCODE123"),
            "{m}"
        );
        let e = parse_token_response(
            503,
            &headers("application/json"),
            br#"{"error":"temporarily_unavailable"}"#,
            false,
            &[],
        )
        .unwrap_err();
        assert!(!e.is_refusal());
        // Slack: HTTP 200 with ok=false.
        let e = parse_token_response(
            200,
            &headers("application/json"),
            br#"{"ok":false,"error":"invalid_code"}"#,
            false,
            &[],
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("invalid_code"));
        assert!(e.is_refusal());
    }
}
