//! The small HTML pages the OAuth callback answers (a person's browser opened it, usually as a popup).
//!
//! A title and a message, nothing else from the request: never the code, the state or a token. Every interpolated
//! value is HTML-escaped and sits in element text or a quoted attribute. The one script is a static file
//! (`assets/oauth-callback.js`, served with a hashed name; the CSP allows `script-src 'self'` and no inline script);
//! it reads the outcome from `data-` attributes, posts
//! `{type: "plugboard:oauth", integration_id, status}` to `window.opener` (target origin: `PLUGBOARD_PUBLIC_URL`'s
//! origin, where the Plugboard UI lives) and closes the popup. `Cache-Control: no-store`, `Referrer-Policy:
//! no-referrer` (the URL carries the code) and no framing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use plugboard_store::IntegrationStatus;
use sha2::{Digest, Sha256};

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;\
display:flex;min-height:100vh;align-items:center;justify-content:center;background:#f6f7f9;color:#1f2328}\
main{max-width:32rem;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.1)}\
h1{font-size:1.25rem;margin:0 0 .75rem}p{line-height:1.5;margin:.5rem 0}.hint{color:#656d76;font-size:.9rem}";

/// The outcome shown to the person and posted to the opener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    pub integration_id: Option<String>,
    /// The integration's status after the callback (`active` or `error`); `error` when no integration is known.
    pub outcome: IntegrationStatus,
}

impl Page {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Page {
            status,
            title: title.to_string(),
            message: message.into(),
            integration_id: None,
            outcome: IntegrationStatus::Error,
        }
    }

    pub fn for_integration(mut self, id: &str, outcome: IntegrationStatus) -> Self {
        self.integration_id = Some(id.to_string());
        self.outcome = outcome;
        self
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page as a response; `public_url` gives the opener's origin.
pub fn render(page: &Page, public_url: &str) -> Response {
    let origin = url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .ok()
        .filter(|o| o != "null")
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"no-referrer\"><title>{title} · Plugboard</title><style>{STYLE}</style></head>\
<body data-integration-id=\"{id}\" data-status=\"{status}\" data-origin=\"{origin}\"><main><h1>{title}</h1>\
<p>{message}</p><p class=\"hint\">You can close this window.</p></main><script src=\"{script}\"></script></body></html>\n",
        title = escape(&page.title),
        message = escape(&page.message),
        id = escape(page.integration_id.as_deref().unwrap_or("")),
        status = escape(page.outcome.as_str()),
        origin = escape(&origin),
        script = escape(crate::assets::url("oauth-callback.js")),
    );
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src {}; img-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        csp_hash(STYLE)
    );
    let mut res = (page.status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn everything_interpolated_is_escaped_and_the_script_is_a_file() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        let page = Page::new(
            StatusCode::BAD_REQUEST,
            "<b>",
            "</p><script>alert(1)</script>",
        )
        .for_integration("\"><img>", IntegrationStatus::Error);
        let res = render(&page, "https://pb.example.com/base");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self';"));
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let html = String::from_utf8(
            axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(!html.contains("<script>"), "no inline script: {html}");
        assert!(html.contains(crate::assets::url("oauth-callback.js")));
    }
}
