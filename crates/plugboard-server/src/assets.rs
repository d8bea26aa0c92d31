//! The static files of the web console and of the OAuth callback page, embedded in the binary and served under
//! names that carry a hash of their content (`/static/console.1a2b3c4d5e.js`), so a browser may keep them for a year
//! (`Cache-Control: public, max-age=31536000, immutable`): a new build changes the name, never the bytes behind one.
//!
//! Nothing here knows a route or a page; the console's templates and the callback page ask [`url`] for a name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The URL prefix every asset is served under.
pub const PREFIX: &str = "/static/";

struct Asset {
    /// The logical name, e.g. `console.js`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// `console.<hash>.js`.
    hashed: String,
    /// `/static/console.<hash>.js`.
    url: String,
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/console.js"),
    ),
    (
        "oauth-callback.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/oauth-callback.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../assets/favicon.svg"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let hash = hex::encode(digest.get(..5).unwrap_or_default());
            let hashed = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            let url = format!("{PREFIX}{hashed}");
            Asset {
                name,
                content_type,
                bytes,
                hashed,
                url,
            }
        })
        .collect()
});

/// The hashed URL of an embedded file, by its logical name (`console.js` → `/static/console.<hash>.js`). An unknown
/// name gives a URL that answers 404 (names are constants of our own templates; a test checks every one).
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.url.as_str())
        .unwrap_or("/static/missing")
}

/// The logical names of every embedded file.
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _, _)| *name)
}

/// `GET /static/{file}`: an embedded file by its hashed name, cached for a year; anything else is 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.hashed == file) else {
        let mut res = (StatusCode::NOT_FOUND, "no such file\n").into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return res;
    };
    let mut res = asset.bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_name_that_changes_with_its_content() {
        for name in names() {
            let u = url(name);
            assert!(
                u.starts_with(PREFIX) && u != "/static/missing",
                "{name}: {u}"
            );
            let ext = name.rsplit('.').next().unwrap();
            assert!(u.ends_with(&format!(".{ext}")), "{u}");
            assert_ne!(u, format!("{PREFIX}{name}"));
        }
        assert_eq!(url("nope.js"), "/static/missing");
    }
}
