use std::collections::HashSet;
use std::path::PathBuf;

use super::*;
use crate::*;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn named(id: &str) -> String {
    PAT_HTTP.replace("id: demo", &format!("id: {id}"))
}

#[test]
fn the_builtin_catalog_loads() {
    let catalog = match Catalog::builtin() {
        Ok(c) => c,
        Err(e) => panic!("a built-in manifest does not load: {e}"),
    };
    assert!(catalog.len() >= 50, "only {} built-ins", catalog.len());
    let modes: HashSet<AuthMode> = catalog
        .entries()
        .iter()
        .map(|e| e.summary().auth_mode)
        .collect();
    for mode in AuthMode::ALL {
        assert!(modes.contains(&mode), "no built-in uses auth_mode {mode}");
    }
    // File-name order, and every entry findable by id.
    let sources: Vec<&str> = catalog
        .entries()
        .iter()
        .map(|e| e.source.as_str())
        .collect();
    let mut sorted = sources.clone();
    sorted.sort_unstable();
    assert_eq!(sources, sorted);
    for e in catalog.entries() {
        assert_eq!(catalog.get(e.id()).map(|g| &g.source), Some(&e.source));
        assert!(e.raw().is_object());
    }
}

/// The package argument of an `npx` / `uvx` command line: the first argument that is not an option.
fn package_arg(m: &Manifest) -> Option<String> {
    m.mcp
        .args
        .iter()
        .map(|a| a.source().to_owned())
        .find(|a| !a.starts_with('-'))
}

#[test]
fn every_builtin_npx_or_uvx_server_is_pinned_to_an_exact_version() {
    let catalog = Catalog::builtin().unwrap();
    for e in catalog.entries() {
        let m = e.manifest().unwrap();
        let Some(command) = m.mcp.command.as_ref().map(|c| c.source().to_owned()) else {
            continue;
        };
        if command != "npx" && command != "uvx" {
            continue;
        }
        let package = package_arg(&m).unwrap_or_default();
        // `@scope/name@1.2.3` or `name@1.2.3`: the version follows the last `@` that is not the first character.
        let version = package
            .get(1..)
            .and_then(|rest| rest.rsplit_once('@'))
            .map(|(_, v)| v.to_owned());
        let exact = version.as_deref().is_some_and(|v| {
            v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        });
        assert!(
            exact,
            "{}: `{package}` is not pinned to an exact version",
            m.id
        );
        if command == "npx" {
            assert_eq!(
                m.mcp.args.first().map(|a| a.source()),
                Some("-y"),
                "{}: npx must not prompt",
                m.id
            );
        }
    }
}

#[test]
fn no_builtin_puts_a_secret_on_the_command_line() {
    let catalog = Catalog::builtin().unwrap();
    for e in catalog.entries() {
        let m = e.manifest().unwrap();
        let secret_derived: HashSet<&str> = m
            .derived
            .iter()
            .filter(|(_, t)| {
                t.placeholders().any(|p| match &p.var {
                    Var::Field(k) => m.field(k).is_some_and(|f| f.secret),
                    _ => false,
                })
            })
            .map(|(k, _)| k.as_str())
            .collect();
        for arg in &m.mcp.args {
            for p in arg.placeholders() {
                let secret = match &p.var {
                    Var::Field(k) => m.field(k).is_some_and(|f| f.secret),
                    Var::Derived(k) => secret_derived.contains(k.as_str()),
                    Var::OAuthAccessToken => true,
                    _ => false,
                };
                assert!(!secret, "{}: a secret in mcp.args ({})", m.id, arg.source());
            }
        }
    }
}

#[test]
fn every_builtin_has_setup_notes_and_a_row_in_sources_md() {
    let sources = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog/SOURCES.md"),
    )
    .unwrap();
    for e in Catalog::builtin().unwrap().entries() {
        let m = e.manifest().unwrap();
        let notes = m
            .docs
            .as_ref()
            .map(|d| d.setup_md.trim())
            .unwrap_or_default();
        assert!(notes.len() > 80, "{}: setup notes too thin", m.id);
        assert!(
            sources.contains(&format!("| `{}` |", m.id)),
            "{}: no row in catalog/SOURCES.md",
            m.id
        );
        if m.auth_mode == AuthMode::Pat || m.auth_mode == AuthMode::ConnString {
            if let Some(endpoint) = &m.mcp.endpoint {
                assert!(endpoint.source().starts_with("https://"), "{}", m.id);
            }
        }
    }
}

#[test]
fn the_builtin_folder_also_lints_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
    let report = lint_paths(&[dir]);
    assert!(report.is_ok(), "{:#?}", report.invalid);
    assert_eq!(report.valid, Catalog::builtin().unwrap().len());
}

#[test]
fn a_folder_with_one_bad_file_reports_it_and_serves_the_rest_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.yaml", &named("bravo"));
    write(dir.path(), "a.yml", &named("alpha"));
    write(
        dir.path(),
        "c.json",
        r#"{"id":"charlie","name":"C","auth_mode":"none","mcp":{"transport":"stdio","command":"x"}}"#,
    );
    write(
        dir.path(),
        "bad.yaml",
        &format!("{}oops: 1\n", named("broken")),
    );
    write(dir.path(), "README.md", "not a manifest");
    write(dir.path(), ".hidden.yaml", "garbage: [");
    std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();

    let (catalog, errors) = Catalog::load_dir(dir.path()).unwrap();
    let ids: Vec<&str> = catalog.entries().iter().map(|e| e.id()).collect();
    assert_eq!(ids, ["alpha", "bravo", "charlie"]);
    assert_eq!(catalog.len(), 3);
    assert!(!catalog.is_empty());
    assert_eq!(catalog.get("bravo").unwrap().source, "b.yaml");
    assert!(catalog.get("broken").is_none());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "bad.yaml");
    assert!(
        errors[0].error.contains("unknown key `oops`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].to_string().starts_with("bad.yaml: "));
}

#[test]
fn a_duplicate_id_in_a_folder_keeps_the_first_file_and_reports_the_second() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one.yaml", &named("same"));
    write(dir.path(), "two.yaml", &named("same"));
    let (catalog, errors) = Catalog::load_dir(dir.path()).unwrap();
    assert_eq!(catalog.get("same").unwrap().source, "one.yaml");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, "two.yaml");
    assert!(
        errors[0].error.contains("duplicate id `same`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].error.contains("one.yaml"), "{}", errors[0]);
}

#[test]
fn bad_bytes_and_oversized_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    write(dir.path(), "big.yaml", &"#".repeat(MAX_FILE_BYTES + 10));
    write(dir.path(), "ok.yaml", &named("ok"));
    let (catalog, errors) = Catalog::load_dir(dir.path()).unwrap();
    assert_eq!(catalog.len(), 1);
    let files: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, ["big.yaml", "bin.yaml"]);
    assert!(errors[0].error.contains("too large"));
    assert!(errors[1].error.contains("UTF-8"));
}

#[test]
fn an_unreadable_folder_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Catalog::load_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn from_entries_rejects_a_duplicate_id_and_get_finds_by_id() {
    let a = parse_manifest("a.yaml", &named("x")).unwrap();
    let b = parse_manifest("b.yaml", &named("x")).unwrap();
    let c = parse_manifest("c.yaml", &named("y")).unwrap();
    let err = Catalog::from_entries(vec![a.clone(), b]).unwrap_err();
    assert_eq!(err.file, "b.yaml");
    assert!(err.error.contains("duplicate id `x`") && err.error.contains("a.yaml"));
    let catalog = Catalog::from_entries(vec![c, a]).unwrap();
    assert_eq!(catalog.entries()[0].id(), "y");
    assert_eq!(catalog.get("x").unwrap().source, "a.yaml");
    assert!(catalog.get("z").is_none());
    assert!(Catalog::empty().is_empty());
    assert_eq!(Catalog::empty().entries().len(), 0);
}

#[test]
fn lint_reports_every_bad_file_across_files_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &named("a"));
    write(dir.path(), "b.yaml", "id: b\n");
    write(dir.path(), "c.yaml", &named("a"));
    let other = tempfile::tempdir().unwrap();
    write(other.path(), "one.txt", &named("z"));
    write(other.path(), "two.yaml", &named("a"));

    let report = lint_paths(&[
        dir.path().to_path_buf(),
        other.path().join("one.txt"),
        other.path().join("two.yaml"),
        dir.path().join("a.yaml"),
        other.path().join("missing.yaml"),
    ]);
    assert_eq!(report.valid, 2, "{report:#?}");
    let bad: Vec<String> = report
        .invalid
        .iter()
        .map(|e| {
            PathBuf::from(&e.file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(bad, ["missing.yaml", "b.yaml", "c.yaml", "two.yaml"]);
    assert!(report.invalid[1].error.contains("name: is required"));
    assert!(report.invalid[2].error.contains("duplicate id `a`"));
    assert!(!report.is_ok());

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["valid"], 2);
    assert_eq!(
        json["invalid"][1]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["file", "error"]
    );
}

#[test]
fn lint_of_nothing_is_clean() {
    let report = lint_paths(&[]);
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        r#"{"valid":0,"invalid":[]}"#
    );
}

#[test]
fn a_loaded_catalog_keeps_documents_and_makes_each_manifest_again_when_asked() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
    let (catalog, errors) = Catalog::load_dir(&dir).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(catalog.len() >= 50);
    for e in catalog.entries() {
        assert!(
            !e.has_manifest(),
            "{}: a loaded catalog keeps no manifest",
            e.source
        );
        let text = std::fs::read_to_string(dir.join(&e.source)).unwrap();
        let parsed = parse_manifest(&e.source, &text).unwrap();
        assert!(parsed.has_manifest());
        assert_eq!(e, &parsed);
        assert_eq!(e.summary(), parsed.summary());
        let made = e.manifest().unwrap();
        assert!(e.has_manifest(), "kept once made");
        assert!(std::sync::Arc::ptr_eq(&made, &e.manifest().unwrap()));
        assert_eq!(&*made, &*parsed.manifest().unwrap(), "{}", e.source);
        assert_eq!(e.summary(), &Summary::of(&made));
    }
}

#[test]
fn a_large_folder_loads_on_several_threads_with_the_same_result_as_one_by_one() {
    // Enough files for the threaded path; a large file, bad bytes and a short file right after them (the read buffer
    // a thread reuses must not leak one file's bytes into the next), and a duplicate id late in the folder.
    let dir = tempfile::tempdir().unwrap();
    let mut expected_ids = Vec::new();
    for i in 0..300 {
        let name = format!("{i:04}.yaml");
        match i {
            40 => write(dir.path(), &name, &"#".repeat(MAX_FILE_BYTES + 10)),
            41 => std::fs::write(dir.path().join(&name), [0xff, 0xfe, 0x00]).unwrap(),
            42 => write(dir.path(), &name, "id: x\n"),
            250 => write(dir.path(), &name, &named("m0007")),
            _ => {
                let id = format!("m{i:04}");
                write(dir.path(), &name, &named(&id));
                expected_ids.push(id);
            }
        }
    }
    let (catalog, errors) = Catalog::load_dir(dir.path()).unwrap();
    let ids: Vec<&str> = catalog.entries().iter().map(|e| e.id()).collect();
    assert_eq!(ids, expected_ids);
    let files: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, ["0040.yaml", "0041.yaml", "0042.yaml", "0250.yaml"]);
    assert!(errors[0].error.contains("too large"), "{}", errors[0]);
    assert!(errors[1].error.contains("UTF-8"), "{}", errors[1]);
    assert!(!errors[2].error.contains("too large"), "{}", errors[2]);
    assert!(
        errors[3].error.contains("duplicate id `m0007`"),
        "{}",
        errors[3]
    );
    for e in catalog.entries() {
        let text = std::fs::read_to_string(dir.path().join(&e.source)).unwrap();
        assert_eq!(e, &parse_manifest(&e.source, &text).unwrap());
    }
}
