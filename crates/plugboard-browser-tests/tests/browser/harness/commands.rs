//! WebDriver commands that fantoccini does not name: ChromeDriver's DevTools bridge (`goog/cdp/execute`), its
//! browser log (`se/log`), and the standard "Get Computed Label" / "Get Computed Role".

use base64::Engine;
use fantoccini::wd::WebDriverCompatibleCommand;
use http::Method;
use serde_json::Value as Json;
use url::{ParseError, Url};

/// A command on the current session: `path` is relative to `/session/{id}/`.
#[derive(Debug)]
pub struct Raw {
    method: Method,
    path: String,
    body: Option<Json>,
}

impl Raw {
    pub fn get(path: impl Into<String>) -> Raw {
        Raw {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Json) -> Raw {
        Raw {
            method: Method::POST,
            path: path.into(),
            body: Some(body),
        }
    }

    /// Get Computed Label: the element's accessible name, as Chromium's accessibility tree computes it.
    pub fn computed_label(element_id: &str) -> Raw {
        Raw::get(format!("element/{element_id}/computedlabel"))
    }

    /// Get Computed Role: the element's ARIA role, as Chromium computes it.
    pub fn computed_role(element_id: &str) -> Raw {
        Raw::get(format!("element/{element_id}/computedrole"))
    }
}

impl WebDriverCompatibleCommand for Raw {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

pub fn decode_base64(data: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}
