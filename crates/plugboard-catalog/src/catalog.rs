//! Entries, the catalog, folder loading and lint.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use include_dir::{include_dir, Dir};

use crate::manifest::{AuthMode, Manifest};

/// Largest manifest file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../catalog");

/// One loaded manifest: the document as served and what a tile, the filters and the id index need ([`Summary`]).
/// The full [`Manifest`] (what install, verify and OAuth use) is made when first asked for, from the document, and
/// then kept: a catalog of 10,000 manifests holds one representation of each (its bytes), and a running service
/// makes the few it uses. The parsed tree and the manifest built to check a file while loading are dropped once
/// the bytes are made.
#[derive(Debug, Clone)]
pub struct Entry {
    summary: Summary,
    /// The document as the author wrote it, as compact JSON, key order preserved (served verbatim by
    /// `GET /api/v1/connectors/{id}`).
    pub json: bytes::Bytes,
    /// The file name it came from.
    pub source: String,
    manifest: OnceLock<Arc<Manifest>>,
}

/// What a catalog tile shows and the list filters compare: the manifest's id, name, description, category, auth
/// mode and brand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: Box<str>,
    pub name: Box<str>,
    /// Empty when absent.
    pub description: Box<str>,
    /// Empty when absent.
    pub category: Box<str>,
    pub auth_mode: AuthMode,
    /// Empty when absent.
    pub logo: Box<str>,
    /// Empty when absent.
    pub color: Box<str>,
}

impl Summary {
    /// The summary of a manifest.
    pub fn of(m: &Manifest) -> Summary {
        Summary {
            id: m.id.as_str().into(),
            name: m.name.as_str().into(),
            description: m.description.as_str().into(),
            category: m.category.as_str().into(),
            auth_mode: m.auth_mode,
            logo: m.brand.logo.as_str().into(),
            color: m.brand.color.as_str().into(),
        }
    }
}

impl PartialEq for Entry {
    /// Same document from the same file (the manifest is made from the document).
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.source == other.source
    }
}

impl Entry {
    /// The manifest's id.
    pub fn id(&self) -> &str {
        &self.summary.id
    }

    /// The manifest's id, name, description, category, auth mode and brand.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The manifest, made from [`Entry::json`] on first use and kept. The document was checked when it loaded, so
    /// this fails only if that check and this one disagree (an error naming the file, never a panic).
    pub fn manifest(&self) -> Result<Arc<Manifest>, FileError> {
        if let Some(m) = self.manifest.get() {
            return Ok(m.clone());
        }
        let text = std::str::from_utf8(&self.json)
            .map_err(|_| FileError::new(&self.source, "the stored document is not UTF-8"))?;
        let raw = crate::raw::parse_json(text).map_err(|e| FileError::new(&self.source, e))?;
        let made =
            crate::load::manifest(&raw).map_err(|e| FileError::new(&self.source, e.to_string()))?;
        drop(raw);
        Ok(self.manifest.get_or_init(|| Arc::new(made)).clone())
    }

    /// Whether the manifest has been made (by [`parse_manifest`] or a call to [`Entry::manifest`]).
    pub fn has_manifest(&self) -> bool {
        self.manifest.get().is_some()
    }

    /// Drops the manifest, keeping the document and summary (it is made again when next asked for).
    pub fn compact(mut self) -> Entry {
        self.manifest = OnceLock::new();
        self
    }

    /// The document as a JSON tree (parsed anew from [`Entry::json`]; for tools and tests, not for serving).
    pub fn raw(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

/// A file that could not be loaded. `Display` is `file: error`; `error` names the key path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{file}: {error}")]
pub struct FileError {
    pub file: String,
    pub error: String,
}

impl FileError {
    fn new(file: impl Into<String>, error: impl Into<String>) -> Self {
        FileError {
            file: file.into(),
            error: error.into(),
        }
    }
}

/// Parses one manifest (YAML, or JSON when `source` ends in `.json`). `source` names the file in
/// errors and becomes [`Entry::source`]. The entry keeps the manifest it made ([`Entry::compact`] drops it).
pub fn parse_manifest(source: &str, text: &str) -> Result<Entry, FileError> {
    parse_entry(source, text, true)
}

/// [`parse_manifest`]; without `keep_manifest` the manifest built to check the document is dropped at once (a
/// catalog load: most manifests of a large catalog are never used, and [`Entry::manifest`] makes one again).
fn parse_entry(source: &str, text: &str, keep_manifest: bool) -> Result<Entry, FileError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(FileError::new(
            source,
            format!("file is too large (at most {MAX_FILE_BYTES} bytes)"),
        ));
    }
    let raw = crate::raw::parse_document(source, text).map_err(|e| FileError::new(source, e))?;
    let manifest =
        crate::load::manifest(&raw).map_err(|e| FileError::new(source, e.to_string()))?;
    let mut json = Vec::with_capacity(text.len() + text.len() / 8);
    serde_json::to_writer(&mut json, &raw).map_err(|e| FileError::new(source, e.to_string()))?;
    drop(raw);
    Ok(Entry {
        summary: Summary::of(&manifest),
        // Exactly as long as the body (no spare capacity kept for the life of the catalog).
        json: bytes::Bytes::from(json.into_boxed_slice()),
        source: source.to_owned(),
        manifest: if keep_manifest {
            OnceLock::from(Arc::new(manifest))
        } else {
            OnceLock::new()
        },
    })
}

/// The connector catalog: entries in load order, with an id index.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Catalog {
    /// A catalog with no entries.
    pub fn empty() -> Self {
        Catalog::default()
    }

    /// The built-in catalog, embedded at compile time from the workspace's `catalog/` folder
    /// (`*.yaml`, `*.yml`, `*.json`, in file-name order). Any bad file is an error: the
    /// built-ins are ours and a test proves they all load.
    pub fn builtin() -> Result<Self, FileError> {
        let mut files: Vec<&include_dir::File<'_>> = BUILTIN
            .files()
            .filter(|f| {
                f.path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_manifest_name)
            })
            .collect();
        files.sort_by_key(|f| f.path().file_name());
        let mut entries = Vec::with_capacity(files.len());
        for f in files {
            let name = f
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = f
                .contents_utf8()
                .ok_or_else(|| FileError::new(&name, "not valid UTF-8"))?;
            entries.push(parse_entry(&name, text, false)?);
        }
        Catalog::from_entries(entries)
    }

    /// Loads every `*.yaml`, `*.yml` and `*.json` file directly in `dir` (not recursive; hidden
    /// files skipped), in file-name order. A bad file (unreadable, unparsable, invalid, or a
    /// duplicate id, where the first file wins) is reported and skipped; the rest are served.
    /// Only a directory that cannot be listed is an `io::Error`.
    pub fn load_dir(dir: &Path) -> std::io::Result<(Self, Vec<FileError>)> {
        let mut errors = Vec::new();
        let mut files = Vec::new();
        for item in std::fs::read_dir(dir)? {
            match item {
                Ok(item) => {
                    let name = item.file_name().to_string_lossy().into_owned();
                    if is_manifest_name(&name) && !is_dir(&item) {
                        files.push((name, item.path()));
                    }
                }
                Err(e) => errors.push(FileError::new(
                    dir.display().to_string(),
                    format!("cannot list the folder: {e}"),
                )),
            }
        }
        files.sort();
        let (entries, mut bad) = load_files(files);
        errors.append(&mut bad);
        // `load_files` kept the first file of each id, so the ids are distinct.
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id().to_owned(), i))
            .collect();
        Ok((Catalog { entries, index }, errors))
    }

    /// A catalog of these entries, in this order. A duplicate id is an error naming the file.
    pub fn from_entries(entries: Vec<Entry>) -> Result<Self, FileError> {
        let mut catalog = Catalog {
            entries: Vec::with_capacity(entries.len()),
            index: HashMap::with_capacity(entries.len()),
        };
        for entry in entries {
            catalog.push(entry)?;
        }
        Ok(catalog)
    }

    /// Appends an entry; a duplicate id is an error naming both files.
    pub fn push(&mut self, entry: Entry) -> Result<(), FileError> {
        if let Some(first) = self.get(entry.id()) {
            return Err(duplicate(&entry.source, entry.id(), &first.source));
        }
        self.index.insert(entry.id().to_owned(), self.entries.len());
        self.entries.push(entry);
        Ok(())
    }

    /// Every entry, in load order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.index.get(id).and_then(|&i| self.entries.get(i))
    }

    /// The position of the entry with this id in [`Catalog::entries`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn duplicate(file: &str, id: &str, first: &str) -> FileError {
    FileError::new(
        file,
        format!("id: duplicate id `{id}` (already defined in {first})"),
    )
}

/// `*.yaml`, `*.yml`, `*.json` (any case), not hidden.
fn is_manifest_name(name: &str) -> bool {
    if name.starts_with('.') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| lower.len() > ext.len() && lower.ends_with(ext))
}

/// Whether a folder item is a folder (or a link to one). The item's type comes with the listing, so only links (and
/// file systems that do not report types) cost a `stat`.
fn is_dir(item: &std::fs::DirEntry) -> bool {
    match item.file_type() {
        Ok(t) if t.is_dir() => true,
        Ok(t) if t.is_file() => false,
        _ => item.path().is_dir(),
    }
}

/// Reads a file into `buf` (cleared first; a loading thread reuses one buffer for all its files, so a typical
/// manifest is read in one call into memory already there) and returns its text.
fn read_file<'b>(path: &Path, buf: &'b mut Vec<u8>) -> Result<&'b str, String> {
    buf.clear();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if buf.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file is too large (at most {MAX_FILE_BYTES} bytes)"
        ));
    }
    std::str::from_utf8(buf).map_err(|_| "not valid UTF-8".to_owned())
}

/// The read buffer's first size: most manifests fit, larger files grow it.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Loads `(display name, path)` pairs in order; the first file with an id wins. Files are read and parsed on up to
/// [`LOAD_THREADS`] threads (a 10,000-file catalog is mostly YAML parsing); the result is the same as one by one.
fn load_files(files: Vec<(String, PathBuf)>) -> (Vec<Entry>, Vec<FileError>) {
    let loaded = parse_in_parallel(&files);
    let mut entries: Vec<Entry> = Vec::with_capacity(loaded.len());
    let mut errors = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for ((name, _), entry) in files.into_iter().zip(loaded) {
        match entry {
            Ok(entry) => {
                if let Some(first) = seen.get(entry.id()) {
                    errors.push(duplicate(&name, entry.id(), first));
                } else {
                    seen.insert(entry.id().to_owned(), name);
                    entries.push(entry);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (entries, errors)
}

/// Most threads a catalog load uses.
pub const LOAD_THREADS: usize = 4;

fn load_one(name: &str, path: &Path, buf: &mut Vec<u8>) -> Result<Entry, FileError> {
    read_file(path, buf)
        .map_err(|e| FileError::new(name, e))
        .and_then(|text| parse_entry(name, text, false))
}

/// Loads `files` in order, with one read buffer.
fn load_all(files: &[(String, PathBuf)]) -> Vec<Result<Entry, FileError>> {
    let mut buf = Vec::with_capacity(READ_BUFFER_BYTES);
    files
        .iter()
        .map(|(n, p)| load_one(n, p, &mut buf))
        .collect()
}

/// Files a loading thread takes at a time.
const LOAD_BATCH: usize = 32;

/// One result per file, in the files' order. The calling thread and up to [`LOAD_THREADS`]` - 1` others take
/// batches of [`LOAD_BATCH`] files from a shared counter, so a thread that gets less CPU (a busy machine) takes
/// fewer files instead of finishing last.
fn parse_in_parallel(files: &[(String, PathBuf)]) -> Vec<Result<Entry, FileError>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(LOAD_THREADS)
        .min(files.len() / 64 + 1);
    if threads <= 1 {
        return load_all(files);
    }
    let batches = files.len().div_ceil(LOAD_BATCH);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        let mut buf = Vec::with_capacity(READ_BUFFER_BYTES);
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            let start = b.saturating_mul(LOAD_BATCH);
            let Some(part) = files.get(start..(start + LOAD_BATCH).min(files.len())) else {
                return done;
            };
            if part.is_empty() {
                return done;
            }
            done.push((
                b,
                part.iter()
                    .map(|(n, p)| load_one(n, p, &mut buf))
                    .collect::<Vec<_>>(),
            ));
        }
    };
    let mut slots: Vec<Option<Vec<Result<Entry, FileError>>>> = Vec::with_capacity(batches);
    slots.resize_with(batches, || None);
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        // A panic in a batch (a bug: nothing here panics on any input) fails only that batch's files.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_default();
        let theirs = helpers
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default());
        for (b, results) in mine.into_iter().chain(theirs) {
            if let Some(slot) = slots.get_mut(b) {
                *slot = Some(results);
            }
        }
    });
    slots
        .into_iter()
        .zip(files.chunks(LOAD_BATCH))
        .flat_map(|(slot, part)| {
            slot.unwrap_or_else(|| {
                part.iter()
                    .map(|(n, _)| Err(FileError::new(n, "internal error while loading this file")))
                    .collect()
            })
        })
        .collect()
}

/// The result of [`lint_paths`]. Serialises as `{"valid": N, "invalid": [{"file", "error"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LintReport {
    pub valid: usize,
    pub invalid: Vec<FileError>,
}

impl LintReport {
    /// True when nothing is invalid.
    pub fn is_ok(&self) -> bool {
        self.invalid.is_empty()
    }
}

/// Lints files and folders (a folder's `*.yaml`, `*.yml`, `*.json`, not recursive, in file-name
/// order; a file named explicitly is linted whatever its extension). An unreadable path is an
/// invalid entry; an id used twice across the whole set makes the later file invalid. A file
/// reached twice (named and inside a named folder) is linted once. Files are reported by path.
pub fn lint_paths(paths: &[PathBuf]) -> LintReport {
    let mut report = LintReport::default();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut seen_files: HashSet<PathBuf> = HashSet::new();
    let mut add = |path: PathBuf, files: &mut Vec<(String, PathBuf)>| {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen_files.insert(canonical) {
            files.push((path.display().to_string(), path));
        }
    };
    for path in paths {
        let shown = path.display().to_string();
        match std::fs::metadata(path) {
            Err(e) => report
                .invalid
                .push(FileError::new(shown, format!("cannot read: {e}"))),
            Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
                Err(e) => report.invalid.push(FileError::new(
                    shown,
                    format!("cannot list the folder: {e}"),
                )),
                Ok(items) => {
                    let mut in_dir = Vec::new();
                    for item in items {
                        match item {
                            Ok(item) => {
                                let name = item.file_name().to_string_lossy().into_owned();
                                if is_manifest_name(&name) && !is_dir(&item) {
                                    in_dir.push(item.path());
                                }
                            }
                            Err(e) => report.invalid.push(FileError::new(
                                shown.clone(),
                                format!("cannot list the folder: {e}"),
                            )),
                        }
                    }
                    in_dir.sort();
                    for p in in_dir {
                        add(p, &mut files);
                    }
                }
            },
            Ok(_) => add(path.clone(), &mut files),
        }
    }
    let (entries, mut errors) = load_files(files);
    report.valid = entries.len();
    report.invalid.append(&mut errors);
    report
}

/// The catalog's filters, as `service-contract.md` defines them for `GET /api/v1/connectors`: `category` exactly,
/// `auth_mode` exactly, and `q`, a case-insensitive substring of the id, name, description or category. The console's
/// search uses the same rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogFilter<'a> {
    pub category: Option<&'a str>,
    pub auth_mode: Option<AuthMode>,
    pub text: Option<&'a str>,
}

impl CatalogFilter<'_> {
    /// Whether `m` passes every filter that is set (blank text passes).
    pub fn matches(&self, m: &Summary) -> bool {
        self.matches_folded(m, &SearchText::of(m))
    }

    /// [`CatalogFilter::matches`] with `m`'s [`SearchText`] made beforehand (a server keeps one per manifest, so a
    /// search over a large catalog lower-cases nothing but the query).
    pub fn matches_folded(&self, m: &Summary, folded: &SearchText) -> bool {
        if self.category.is_some_and(|c| c != &*m.category) {
            return false;
        }
        if self.auth_mode.is_some_and(|a| a != m.auth_mode) {
            return false;
        }
        match self.text.map(str::trim).filter(|t| !t.is_empty()) {
            None => true,
            Some(t) => folded.contains(&t.to_lowercase()),
        }
    }
}

/// The lower-cased id, name, description and category of a manifest, what the text filter searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(Box<str>);

impl SearchText {
    /// The fields are joined by NUL, which a query containing NUL cannot match across (see
    /// [`SearchText::contains`]).
    pub fn of(m: &Summary) -> SearchText {
        let mut s = String::with_capacity(
            m.id.len() + m.name.len() + m.description.len() + m.category.len() + 3,
        );
        for (i, part) in [&m.id, &m.name, &m.description, &m.category]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                s.push('\0');
            }
            s.push_str(&part.to_lowercase());
        }
        SearchText(s.into_boxed_str())
    }

    /// Whether one of the fields contains `needle` (already lower-cased).
    pub fn contains(&self, needle: &str) -> bool {
        if needle.contains('\0') {
            return self.0.split('\0').any(|field| field.contains(needle));
        }
        self.0.contains(needle)
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn the_text_filter_is_a_case_insensitive_substring_of_id_name_description_or_category() {
        let e = parse_manifest(
            "g.yaml",
            "id: github\nname: GitHub\ndescription: Issues and PRs\ncategory: developer-tools\nauth_mode: none\n\
             mcp: {transport: stdio, command: x}\n",
        )
        .unwrap();
        let m = e.summary();
        let text = |t| CatalogFilter {
            text: Some(t),
            ..Default::default()
        };
        for t in ["git", "GITHUB", "prs", "DEVELOPER", "  hub ", ""] {
            assert!(text(t).matches(m), "{t}");
        }
        assert!(!text("slack").matches(m));
        // A query never matches across two fields.
        assert!(!text("github\0github").matches(m));
        assert!(!text("prs\0dev").matches(m));
        let cat = |c| CatalogFilter {
            category: Some(c),
            ..Default::default()
        };
        assert!(cat("developer-tools").matches(m));
        assert!(!cat("developer").matches(m));
        let mode = |a| CatalogFilter {
            auth_mode: Some(a),
            ..Default::default()
        };
        assert!(mode(crate::AuthMode::None).matches(m));
        assert!(!mode(crate::AuthMode::Pat).matches(m));
    }
}
