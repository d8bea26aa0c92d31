//! Catalog responses prepared once when the catalog loads: the list body, each manifest's body and their ETags,
//! plus what makes a filtered list cheap (each tile's place in the list body, each manifest's search text, the
//! entries of each category and auth mode). Requests clone a `Bytes` (a reference count), never re-serialise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use plugboard_catalog::{AuthMode, Catalog, CatalogFilter, Manifest, SearchText};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::encoding::{accepted, Coding, Compressors, Effort};
use crate::error::ApiError;

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

/// [`ConnectorSummary`] borrowed from a manifest (what the list body is serialised from).
#[derive(Serialize)]
struct Tile<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    category: &'a str,
    auth_mode: &'a str,
    brand_logo: &'a str,
    brand_color: &'a str,
}

/// A response body with its strong ETag (the first 16 bytes of its SHA-256, in hex, computed when first needed) and
/// its `gzip` and `br` forms, each compressed at most once (see [`PreparedCatalog::compress_all`]). A compressed
/// form's ETag is the plain one with `-gzip` / `-br` appended inside the quotes, so every representation has its
/// own strong tag.
pub struct Prepared {
    body: Bytes,
    hex: OnceLock<Box<str>>,
    effort: Effort,
    gzip: OnceLock<Option<Bytes>>,
    br: OnceLock<Option<Bytes>>,
}

impl Prepared {
    fn new(body: Bytes, effort: Effort) -> Prepared {
        Prepared {
            body,
            hex: OnceLock::new(),
            effort,
            gzip: OnceLock::new(),
            br: OnceLock::new(),
        }
    }

    /// The body in `coding` (compressed on first use, then kept).
    fn coded(&self, coding: Coding) -> Option<&Bytes> {
        self.coded_with(coding, &mut None)
    }

    /// [`Prepared::coded`] with compressors that may be reused (made on first need).
    fn coded_with(&self, coding: Coding, compressors: &mut Option<Compressors>) -> Option<&Bytes> {
        let cell = match coding {
            Coding::Identity => return Some(&self.body),
            Coding::Gzip => &self.gzip,
            Coding::Br => &self.br,
        };
        cell.get_or_init(|| {
            compressors.get_or_insert_with(Compressors::new).compress(
                &self.body,
                coding,
                self.effort,
            )
        })
        .as_ref()
    }

    /// The first 16 bytes of the body's SHA-256, in hex.
    fn hex(&self) -> &str {
        self.hex.get_or_init(|| {
            let digest = Sha256::digest(&self.body);
            let mut hex = String::with_capacity(32);
            for b in digest.iter().take(16) {
                use std::fmt::Write;
                let _ = write!(hex, "{b:02x}");
            }
            hex.into_boxed_str()
        })
    }

    fn etag(&self, coding: Coding) -> HeaderValue {
        let tag = match coding.name() {
            Some(suffix) => format!("\"{}-{suffix}\"", self.hex()),
            None => format!("\"{}\"", self.hex()),
        };
        HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
    }

    /// The representation `Accept-Encoding` prefers (a compressed form only when it is smaller, unless the plain
    /// body is refused; 406 when every form is refused), 304 when `If-None-Match` names its ETag (or `*`). Every
    /// answer carries `Vary: Accept-Encoding`.
    pub fn respond(&self, request_headers: &HeaderMap) -> Response {
        let accepted = accepted(request_headers);
        let mut chosen = None;
        for &coding in &accepted.ranked {
            match self.coded(coding) {
                Some(b) if coding == Coding::Identity || b.len() < self.body.len() => {
                    chosen = Some((coding, b));
                    break;
                }
                Some(b) if !accepted.identity_allowed() => {
                    chosen = Some((coding, b));
                    break;
                }
                _ => {}
            }
        }
        let Some((coding, body)) = chosen else {
            let mut res = ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not_acceptable",
                "Accept-Encoding refuses every encoding this body is available in (br, gzip, identity); \
                 allow one of them",
            )
            .into_response();
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            return res;
        };
        let etag = self.etag(coding);
        let matches = request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == etag.as_bytes());
        let mut res = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = body.clone().into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(name) = coding.name() {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
            }
            r
        };
        let h = res.headers_mut();
        h.insert(header::ETAG, etag);
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        res
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Makes both compressed forms now (no-op when they exist).
    fn compress_now(&self, compressors: &mut Option<Compressors>) {
        self.coded_with(Coding::Gzip, compressors);
        self.coded_with(Coding::Br, compressors);
    }
}

/// The filters of one list request, normalised (blank values are absent; the text is trimmed and lower-cased, as
/// [`CatalogFilter`] compares it), so equal filters share one cached answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListFilter {
    pub category: Option<String>,
    pub auth_mode: Option<AuthMode>,
    pub text: Option<String>,
}

impl ListFilter {
    pub fn new(category: Option<&str>, auth_mode: Option<AuthMode>, text: Option<&str>) -> Self {
        ListFilter {
            category: category.filter(|c| !c.is_empty()).map(str::to_owned),
            auth_mode,
            text: text
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_lowercase),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.category.is_none() && self.auth_mode.is_none() && self.text.is_none()
    }

    fn as_catalog_filter(&self) -> CatalogFilter<'_> {
        CatalogFilter {
            category: self.category.as_deref(),
            auth_mode: self.auth_mode,
            text: self.text.as_deref(),
        }
    }
}

/// Filtered answers kept for reuse, up to this many body bytes in all (then the cache starts afresh).
const FILTER_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// … and up to this many answers.
const FILTER_CACHE_ENTRIES: usize = 1024;

#[derive(Default)]
struct FilterCache {
    answers: HashMap<ListFilter, Arc<Prepared>>,
    bytes: usize,
}

pub struct PreparedCatalog {
    pub catalog: Catalog,
    pub list: Arc<Prepared>,
    /// Byte range of each entry's tile inside `list`'s body (entries' order).
    tiles: Vec<(u32, u32)>,
    /// Each entry's search text (entries' order).
    search: Vec<SearchText>,
    /// Entry positions by category and by auth mode, in catalog order.
    by_category: HashMap<String, Vec<u32>>,
    by_auth_mode: HashMap<AuthMode, Vec<u32>>,
    /// Each entry's manifest body (entries' order).
    items: Vec<Prepared>,
    filtered: Mutex<FilterCache>,
}

/// A catalog too large to index with 32-bit offsets (over 4 GiB of tiles or 4 billion entries).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the catalog cannot be serialised: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the catalog is too large (its list body exceeds 4 GiB)")]
    TooLarge,
}

impl PreparedCatalog {
    pub fn new(catalog: Catalog) -> Result<PreparedCatalog, PrepareError> {
        let entries = catalog.entries();
        let mut list = Vec::with_capacity(entries.len() * 256 + 2);
        let mut tiles = Vec::with_capacity(entries.len());
        let mut by_category: HashMap<String, Vec<u32>> = HashMap::new();
        let mut by_auth_mode: HashMap<AuthMode, Vec<u32>> = HashMap::new();
        list.push(b'[');
        for (i, e) in entries.iter().enumerate() {
            let m = e.summary();
            if i > 0 {
                list.push(b',');
            }
            let start = offset(list.len())?;
            serde_json::to_writer(
                &mut list,
                &Tile {
                    id: &m.id,
                    name: &m.name,
                    description: &m.description,
                    category: &m.category,
                    auth_mode: m.auth_mode.as_str(),
                    brand_logo: &m.logo,
                    brand_color: &m.color,
                },
            )?;
            tiles.push((start, offset(list.len())?));
            let position = offset(i)?;
            match by_category.get_mut(&*m.category) {
                Some(list) => list.push(position),
                None => {
                    by_category.insert(m.category.to_string(), vec![position]);
                }
            }
            by_auth_mode.entry(m.auth_mode).or_default().push(position);
        }
        list.push(b']');
        let search = entries
            .iter()
            .map(|e| SearchText::of(e.summary()))
            .collect();
        let items = entries
            .iter()
            .map(|e| Prepared::new(e.json.clone(), Effort::Prepared))
            .collect();
        Ok(PreparedCatalog {
            list: Arc::new(Prepared::new(Bytes::from(list), Effort::Prepared)),
            catalog,
            tiles,
            search,
            by_category,
            by_auth_mode,
            items,
            filtered: Mutex::new(FilterCache::default()),
        })
    }

    /// The manifest body of the connector with this id.
    pub fn item(&self, id: &str) -> Option<&Prepared> {
        self.catalog.position(id).and_then(|i| self.items.get(i))
    }

    /// The list narrowed by `filter` (the whole list when it is empty): tiles in catalog order, the same bytes as
    /// the unfiltered list's tiles. Answers are kept for reuse (bounded by [`FILTER_CACHE_BYTES`]).
    pub fn filtered(&self, filter: &ListFilter) -> Arc<Prepared> {
        if filter.is_empty() {
            return self.list.clone();
        }
        if let Ok(cache) = self.filtered.lock() {
            if let Some(hit) = cache.answers.get(filter) {
                return hit.clone();
            }
        }
        let answer = Arc::new(Prepared::new(self.filtered_body(filter), Effort::OnDemand));
        if let Ok(mut cache) = self.filtered.lock() {
            let size = answer.body.len();
            if cache.bytes + size > FILTER_CACHE_BYTES
                || cache.answers.len() >= FILTER_CACHE_ENTRIES
            {
                *cache = FilterCache::default();
            }
            if size <= FILTER_CACHE_BYTES {
                cache.bytes += size;
                cache.answers.insert(filter.clone(), answer.clone());
            }
        }
        answer
    }

    /// Compresses the list and every manifest body, on a thread of its own, so requests find them ready. It holds
    /// the catalog weakly and stops when the catalog is replaced (a reload) and no request still uses it.
    pub fn compress_all(catalog: &Arc<PreparedCatalog>) {
        let weak: Weak<PreparedCatalog> = Arc::downgrade(catalog);
        let spawned = std::thread::Builder::new()
            .name("catalog-compress".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut compressors = Some(Compressors::new());
                let mut i = 0;
                loop {
                    // A slice at a time, so a replaced catalog is let go soon.
                    let Some(catalog) = weak.upgrade() else {
                        return;
                    };
                    if i == 0 {
                        catalog.list.compress_now(&mut compressors);
                    }
                    let end = (i + 64).min(catalog.items.len());
                    let Some(items) = catalog.items.get(i..end).filter(|s| !s.is_empty()) else {
                        tracing::info!(
                            bodies = catalog.items.len() + 1,
                            ms = started.elapsed().as_millis() as u64,
                            "catalog bodies compressed"
                        );
                        return;
                    };
                    items.iter().for_each(|p| p.compress_now(&mut compressors));
                    i = end;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that compresses the catalog; bodies will be compressed when first asked for");
        }
    }

    fn filtered_body(&self, filter: &ListFilter) -> Bytes {
        // The smallest precomputed candidate set, then the catalog's own filter rule on each candidate.
        let mut candidates: Option<&[u32]> = None;
        if let Some(c) = &filter.category {
            candidates = Some(self.by_category.get(c).map_or(&[], Vec::as_slice));
        }
        if let Some(a) = filter.auth_mode {
            let by_mode = self.by_auth_mode.get(&a).map_or(&[][..], Vec::as_slice);
            if candidates.is_none_or(|c| by_mode.len() < c.len()) {
                candidates = Some(by_mode);
            }
        }
        let rule = filter.as_catalog_filter();
        let entries = self.catalog.entries();
        let keep = |i: usize| match (entries.get(i), self.search.get(i)) {
            (Some(e), Some(s)) => rule.matches_folded(e.summary(), s),
            _ => false,
        };
        let chosen: Vec<usize> = match candidates {
            Some(c) => c.iter().map(|&i| i as usize).filter(|&i| keep(i)).collect(),
            None => (0..entries.len()).filter(|&i| keep(i)).collect(),
        };
        let list = self.list.body();
        let mut out = Vec::with_capacity(2 + chosen.len() * 256);
        out.push(b'[');
        for (n, i) in chosen.into_iter().enumerate() {
            if let Some(tile) = self
                .tiles
                .get(i)
                .and_then(|&(s, e)| list.get(s as usize..e as usize))
            {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(tile);
            }
        }
        out.push(b']');
        Bytes::from(out)
    }
}

/// The catalog in service, replaced whole by a reload. A request takes [`LiveCatalog::current`] once and works on
/// that snapshot to the end, so a reload never changes the catalog under a request that already started.
pub struct LiveCatalog {
    current: RwLock<Arc<PreparedCatalog>>,
}

impl LiveCatalog {
    /// Serves `catalog`. Its bodies are compressed when first asked for, or all at once from
    /// [`LiveCatalog::compress_in_background`] (the server calls it once it listens, so compressing does not compete
    /// with starting).
    pub fn new(catalog: PreparedCatalog) -> LiveCatalog {
        LiveCatalog {
            current: RwLock::new(Arc::new(catalog)),
        }
    }

    /// Starts compressing every body of the catalog in service on a thread of its own
    /// ([`PreparedCatalog::compress_all`]).
    pub fn compress_in_background(&self) {
        PreparedCatalog::compress_all(&self.current());
    }

    /// The catalog in service now.
    pub fn current(&self) -> Arc<PreparedCatalog> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `catalog` in service for every request from now on (requests already running keep the one they took)
    /// and starts compressing its bodies.
    pub fn replace(&self, catalog: PreparedCatalog) {
        let catalog = Arc::new(catalog);
        PreparedCatalog::compress_all(&catalog);
        let old = match self.current.write() {
            Ok(mut c) => std::mem::replace(&mut *c, catalog),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), catalog),
        };
        // The old catalog is freed here, or by the last request still using it.
        drop(old);
    }

    /// The manifest with this id in the catalog in service now (made from its document on first use, then kept
    /// with the catalog).
    pub fn manifest(&self, id: &str) -> Option<ManifestRef> {
        let catalog = self.current();
        let entry = catalog.catalog.get(id)?;
        match entry.manifest() {
            Ok(manifest) => Some(ManifestRef(manifest)),
            Err(e) => {
                // The document passed the same rules when it loaded, so this is a bug; the connector answers as
                // unknown rather than failing the process.
                tracing::error!(file = %e.file, error = %e.error, "a loaded manifest cannot be made again from its document");
                None
            }
        }
    }
}

/// A manifest of the catalog in service (it stays usable after a reload replaced the catalog). Dereferences to the
/// [`Manifest`].
pub struct ManifestRef(Arc<Manifest>);

impl std::ops::Deref for ManifestRef {
    type Target = Manifest;

    fn deref(&self) -> &Manifest {
        &self.0
    }
}

fn offset(n: usize) -> Result<u32, PrepareError> {
    u32::try_from(n).map_err(|_| PrepareError::TooLarge)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn summaries(catalog: &Catalog, keep: impl Fn(&plugboard_catalog::Summary) -> bool) -> Vec<u8> {
        let tiles: Vec<ConnectorSummary> = catalog
            .entries()
            .iter()
            .map(|e| e.manifest().unwrap())
            .filter(|m| keep(&plugboard_catalog::Summary::of(m)))
            .map(|m| ConnectorSummary {
                id: m.id.clone(),
                name: m.name.clone(),
                description: m.description.clone(),
                category: m.category.clone(),
                auth_mode: m.auth_mode.as_str().to_string(),
                brand_logo: m.brand.logo.clone(),
                brand_color: m.brand.color.clone(),
            })
            .collect();
        serde_json::to_vec(&tiles).unwrap()
    }

    #[test]
    fn the_list_and_every_filtered_list_are_the_bytes_of_their_tiles_serialised_at_once() {
        let catalog = Catalog::builtin().unwrap();
        let prepared = PreparedCatalog::new(catalog.clone()).unwrap();
        assert_eq!(
            &prepared.list.body()[..],
            &summaries(&catalog, |_| true)[..]
        );
        let mut filters = vec![
            ListFilter::new(Some("developer-tools"), None, None),
            ListFilter::new(None, Some(AuthMode::Pat), None),
            ListFilter::new(Some("developer-tools"), Some(AuthMode::Pat), Some("Git")),
            ListFilter::new(None, None, Some("  SQL ")),
            ListFilter::new(Some("no-such-category"), None, None),
            ListFilter::new(None, None, Some("zzzz-nothing")),
            ListFilter::new(None, None, None),
        ];
        for mode in AuthMode::ALL {
            filters.push(ListFilter::new(None, Some(mode), Some("a")));
        }
        for f in &filters {
            let rule = f.as_catalog_filter();
            let expected = summaries(&catalog, |m| rule.matches(m));
            assert_eq!(&prepared.filtered(f).body()[..], &expected[..], "{f:?}");
            // Served again from the cache, same bytes and tag.
            let again = prepared.filtered(f);
            assert_eq!(&again.body()[..], &expected[..]);
        }
        assert_eq!(
            prepared.filtered(&ListFilter::default()).hex(),
            prepared.list.hex()
        );
    }
}
