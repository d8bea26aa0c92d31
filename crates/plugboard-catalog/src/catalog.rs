//! Entries, the catalog, folder loading and lint.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::manifest::Manifest;

/// Largest manifest file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../catalog");

/// One loaded manifest: what install, verify and OAuth use ([`Manifest`]) and the document as served, nothing
/// else (the parsed tree is dropped once both are made, so a large catalog holds one representation each).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Boxed, so an entry is a few words: moving 10,000 entries between lists while loading copies no manifests.
    pub manifest: Box<Manifest>,
    /// The document as the author wrote it, as compact JSON, key order preserved (served verbatim by
    /// `GET /api/v1/connectors/{id}`).
    pub json: bytes::Bytes,
    /// The file name it came from.
    pub source: String,
}

impl Entry {
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
/// errors and becomes [`Entry::source`].
pub fn parse_manifest(source: &str, text: &str) -> Result<Entry, FileError> {
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
        manifest: Box::new(manifest),
        // Exactly as long as the body (no spare capacity kept for the life of the catalog).
        json: bytes::Bytes::from(json.into_boxed_slice()),
        source: source.to_owned(),
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
            entries.push(parse_manifest(&name, text)?);
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
                    if is_manifest_name(&name) && !item.path().is_dir() {
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
            .map(|(i, e)| (e.manifest.id.clone(), i))
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
        if let Some(first) = self.get(&entry.manifest.id) {
            return Err(duplicate(&entry.source, &entry.manifest.id, &first.source));
        }
        self.index
            .insert(entry.manifest.id.clone(), self.entries.len());
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

fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file is too large (at most {MAX_FILE_BYTES} bytes)"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())
}

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
                if let Some(first) = seen.get(&entry.manifest.id) {
                    errors.push(duplicate(&name, &entry.manifest.id, first));
                } else {
                    seen.insert(entry.manifest.id.clone(), name);
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

fn load_one(name: &str, path: &Path) -> Result<Entry, FileError> {
    read_file(path)
        .map_err(|e| FileError::new(name, e))
        .and_then(|text| parse_manifest(name, &text))
}

/// One result per file, in the files' order.
fn parse_in_parallel(files: &[(String, PathBuf)]) -> Vec<Result<Entry, FileError>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(LOAD_THREADS)
        .min(files.len() / 64 + 1);
    if threads <= 1 {
        return files.iter().map(|(n, p)| load_one(n, p)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let handle = scope
                    .spawn(move || part.iter().map(|(n, p)| load_one(n, p)).collect::<Vec<_>>());
                (part, handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, handle)| {
                handle.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|(n, _)| {
                            Err(FileError::new(n, "internal error while loading this file"))
                        })
                        .collect()
                })
            })
            .collect()
    })
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
                                if is_manifest_name(&name) && !item.path().is_dir() {
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
    pub auth_mode: Option<crate::manifest::AuthMode>,
    pub text: Option<&'a str>,
}

impl CatalogFilter<'_> {
    /// Whether `m` passes every filter that is set (blank text passes).
    pub fn matches(&self, m: &Manifest) -> bool {
        self.matches_folded(m, &SearchText::of(m))
    }

    /// [`CatalogFilter::matches`] with `m`'s [`SearchText`] made beforehand (a server keeps one per manifest, so a
    /// search over a large catalog lower-cases nothing but the query).
    pub fn matches_folded(&self, m: &Manifest, folded: &SearchText) -> bool {
        if self.category.is_some_and(|c| c != m.category) {
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
    pub fn of(m: &Manifest) -> SearchText {
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
        let m = &e.manifest;
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
