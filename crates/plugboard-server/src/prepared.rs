//! Catalog responses prepared once when the catalog loads: the list body, each manifest's body and their ETags.
//! Requests clone a `Bytes` (a reference count), never re-serialise.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use plugboard_catalog::Catalog;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One tile of `GET /api/v1/connectors`: exactly these string fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectorSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub auth_mode: String,
    pub brand_logo: String,
    pub brand_color: String,
}

pub struct Prepared {
    body: Bytes,
    etag: HeaderValue,
}

impl Prepared {
    fn new(body: Vec<u8>) -> Prepared {
        let digest = Sha256::digest(&body);
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Prepared {
            body: Bytes::from(body),
            etag,
        }
    }

    /// 304 when `If-None-Match` names this ETag (or `*`), else 200 with the body.
    pub fn respond(&self, request_headers: &HeaderMap) -> Response {
        let matches = request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == self.etag.as_bytes());
        let mut res = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = self.body.clone().into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        let h = res.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        res
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

pub struct PreparedCatalog {
    pub catalog: Catalog,
    pub list: Prepared,
    items: HashMap<String, Prepared>,
}

impl PreparedCatalog {
    pub fn new(catalog: Catalog) -> Result<PreparedCatalog, serde_json::Error> {
        let summaries: Vec<ConnectorSummary> = catalog
            .entries()
            .iter()
            .map(|e| {
                let m = &e.manifest;
                ConnectorSummary {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    description: m.description.clone(),
                    category: m.category.clone(),
                    auth_mode: m.auth_mode.as_str().to_string(),
                    brand_logo: m.brand.logo.clone(),
                    brand_color: m.brand.color.clone(),
                }
            })
            .collect();
        let list = Prepared::new(serde_json::to_vec(&summaries)?);
        let mut items = HashMap::with_capacity(catalog.len());
        for e in catalog.entries() {
            items.insert(
                e.manifest.id.clone(),
                Prepared::new(serde_json::to_vec(&e.raw)?),
            );
        }
        Ok(PreparedCatalog {
            catalog,
            list,
            items,
        })
    }

    pub fn item(&self, id: &str) -> Option<&Prepared> {
        self.items.get(id)
    }
}
