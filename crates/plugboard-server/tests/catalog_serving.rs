//! Finding and serving the catalog at scale: the list's filters, compressed bodies, and reloading the catalog
//! folder, through the router.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::Method;
use plugboard_catalog::{Catalog, CatalogFilter};
use plugboard_server::testing::{Backend, Db, TestApp, TestResponse};
use serde_json::Value;

async fn app_with_builtin() -> (TestApp, String) {
    let db = Db::new(Backend::Sqlite).await.unwrap();
    let app = TestApp::new(db).await;
    let (_, token) = app.user("ada@example.com").await;
    (app, token)
}

async fn get(app: &TestApp, token: &str, uri: &str, headers: &[(&str, &str)]) -> TestResponse {
    app.raw(Method::GET, uri, Some(token), headers, None).await
}

fn ids(res: &TestResponse) -> Vec<String> {
    res.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids the catalog's own filter rule keeps, in catalog order.
fn expected(filter: CatalogFilter<'_>) -> Vec<String> {
    Catalog::builtin()
        .unwrap()
        .entries()
        .iter()
        .map(|e| e.summary())
        .filter(|m| filter.matches(m))
        .map(|m| m.id.to_string())
        .collect()
}

#[tokio::test]
async fn each_filter_narrows_the_list_in_catalog_order_and_they_combine() {
    let (app, token) = app_with_builtin().await;
    let all = get(&app, &token, "/api/v1/connectors", &[]).await;
    all.assert_status(200);

    let res = get(
        &app,
        &token,
        "/api/v1/connectors?category=developer-tools",
        &[],
    )
    .await;
    res.assert_status(200);
    let want = expected(CatalogFilter {
        category: Some("developer-tools"),
        ..Default::default()
    });
    assert!(want.len() >= 2 && want.len() < ids(&all).len(), "{want:?}");
    assert_eq!(ids(&res), want);
    assert!(res
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["category"] == "developer-tools"));

    let res = get(
        &app,
        &token,
        "/api/v1/connectors?auth_mode=conn_string",
        &[],
    )
    .await;
    res.assert_status(200);
    let want = expected(CatalogFilter {
        auth_mode: Some(plugboard_catalog::AuthMode::ConnString),
        ..Default::default()
    });
    assert!(!want.is_empty());
    assert_eq!(ids(&res), want);

    // `q`: case-insensitive substring of id, name, description or category, trimmed.
    let res = get(&app, &token, "/api/v1/connectors?q=%20GitHub%20", &[]).await;
    let want = expected(CatalogFilter {
        text: Some("github"),
        ..Default::default()
    });
    assert!(want.contains(&"github".to_string()), "{want:?}");
    assert_eq!(ids(&res), want);
    let res = get(&app, &token, "/api/v1/connectors?q=DEVELOPER-TOOLS", &[]).await;
    assert_eq!(
        ids(&res),
        expected(CatalogFilter {
            category: Some("developer-tools"),
            ..Default::default()
        })
    );

    // All three at once: every one applies.
    let res = get(
        &app,
        &token,
        "/api/v1/connectors?category=developer-tools&auth_mode=pat&q=git",
        &[],
    )
    .await;
    let want = expected(CatalogFilter {
        category: Some("developer-tools"),
        auth_mode: Some(plugboard_catalog::AuthMode::Pat),
        text: Some("git"),
    });
    assert!(!want.is_empty());
    assert_eq!(ids(&res), want);

    // Nothing matches: an empty array, never null.
    for uri in [
        "/api/v1/connectors?category=no-such-category",
        "/api/v1/connectors?q=zzzz-no-connector-says-this",
        "/api/v1/connectors?category=Developer-Tools",
    ] {
        let res = get(&app, &token, uri, &[]).await;
        res.assert_status(200);
        assert_eq!(res.text(), "[]", "{uri}");
    }
}

#[tokio::test]
async fn without_a_filter_the_list_is_the_same_bytes_and_tag_and_filtered_lists_have_their_own_tags(
) {
    let (app, token) = app_with_builtin().await;
    let all = get(&app, &token, "/api/v1/connectors", &[]).await;
    // Blank filters and other parameters change nothing.
    for uri in [
        "/api/v1/connectors?q=",
        "/api/v1/connectors?q=%20%20&category=&auth_mode=",
        "/api/v1/connectors?page=2",
    ] {
        let res = get(&app, &token, uri, &[]).await;
        res.assert_status(200);
        assert_eq!(res.body, all.body, "{uri}");
        assert_eq!(res.headers["etag"], all.headers["etag"], "{uri}");
    }
    let filtered = get(&app, &token, "/api/v1/connectors?auth_mode=pat", &[]).await;
    let tag = filtered.headers["etag"].to_str().unwrap().to_string();
    assert_ne!(tag, all.headers["etag"].to_str().unwrap());
    assert_eq!(filtered.headers["content-type"], "application/json");
    // The tag is the body's: the same filter written differently answers the same.
    let same = get(&app, &token, "/api/v1/connectors?auth_mode=%20pat%20", &[]).await;
    assert_eq!(same.body, filtered.body);
    assert_eq!(same.headers["etag"].to_str().unwrap(), tag);
    let res = get(
        &app,
        &token,
        "/api/v1/connectors?auth_mode=pat",
        &[("if-none-match", &tag)],
    )
    .await;
    assert_eq!(res.status.as_u16(), 304);
    assert!(res.body.is_empty());
    // The unfiltered list's tag does not match a filtered answer.
    let res = get(
        &app,
        &token,
        "/api/v1/connectors?auth_mode=pat",
        &[("if-none-match", all.headers["etag"].to_str().unwrap())],
    )
    .await;
    res.assert_status(200);
}

#[tokio::test]
async fn an_unknown_auth_mode_or_a_repeated_filter_is_a_400_after_authentication() {
    let (app, token) = app_with_builtin().await;
    for (uri, says) in [
        ("/api/v1/connectors?auth_mode=oauth", "auth_mode"),
        ("/api/v1/connectors?auth_mode=PAT", "auth_mode"),
        ("/api/v1/connectors?category=a&category=b", "category"),
        ("/api/v1/connectors?q=a&q=b", "`q`"),
    ] {
        let res = get(&app, &token, uri, &[]).await;
        res.assert_status(400);
        let body: Value = res.json();
        assert_eq!(body["code"], "invalid_request");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    let res = app
        .raw(
            Method::GET,
            "/api/v1/connectors?auth_mode=oauth",
            None,
            &[],
            None,
        )
        .await;
    res.assert_status(401);
}

// ---- Accept-Encoding ----

fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn header<'a>(res: &'a TestResponse, name: &str) -> Option<&'a str> {
    res.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn br_and_gzip_bodies_decompress_to_the_plain_bytes_on_both_endpoints() {
    let (app, token) = app_with_builtin().await;
    for uri in [
        "/api/v1/connectors",
        "/api/v1/connectors/github",
        "/api/v1/connectors?category=developer-tools",
    ] {
        let plain = get(&app, &token, uri, &[]).await;
        plain.assert_status(200);
        assert_eq!(header(&plain, "content-encoding"), None);
        assert_eq!(header(&plain, "vary"), Some("accept-encoding"));
        let tag = header(&plain, "etag")
            .unwrap()
            .trim_matches('"')
            .to_string();
        for (accept, coding, decode) in [
            ("br", "br", unbrotli as fn(&[u8]) -> Vec<u8>),
            ("gzip", "gzip", gunzip),
            ("gzip, deflate, br, zstd", "br", unbrotli),
            ("br;q=0.5, gzip", "gzip", gunzip),
            ("x-gzip", "gzip", gunzip),
            ("*", "br", unbrotli),
        ] {
            let res = get(&app, &token, uri, &[("accept-encoding", accept)]).await;
            res.assert_status(200);
            assert_eq!(
                header(&res, "content-encoding"),
                Some(coding),
                "{uri} {accept}"
            );
            assert_eq!(header(&res, "vary"), Some("accept-encoding"));
            assert_eq!(header(&res, "content-type"), Some("application/json"));
            assert!(res.body.len() < plain.body.len(), "{uri} {accept}");
            assert_eq!(decode(&res.body), plain.body, "{uri} {accept}");
            // Each representation has its own strong tag.
            let etag = header(&res, "etag").unwrap();
            assert_eq!(etag, format!("\"{tag}-{coding}\""));
            let again = get(
                &app,
                &token,
                uri,
                &[("accept-encoding", accept), ("if-none-match", etag)],
            )
            .await;
            assert_eq!(again.status.as_u16(), 304, "{uri} {accept}");
            assert!(again.body.is_empty());
            assert_eq!(header(&again, "etag"), Some(etag));
            assert_eq!(header(&again, "vary"), Some("accept-encoding"));
            // Another representation's tag does not match.
            let other = get(
                &app,
                &token,
                uri,
                &[
                    ("accept-encoding", accept),
                    ("if-none-match", &format!("\"{tag}\"")),
                ],
            )
            .await;
            other.assert_status(200);
        }
        // The plain body when the client asks for it, or for nothing this server has.
        for accept in [
            "identity",
            "",
            "deflate",
            "br;q=0, gzip;q=0",
            "identity;q=0.9, br;q=0.5",
        ] {
            let res = get(&app, &token, uri, &[("accept-encoding", accept)]).await;
            res.assert_status(200);
            assert_eq!(header(&res, "content-encoding"), None, "{uri} {accept}");
            assert_eq!(res.body, plain.body);
        }
    }
}

#[tokio::test]
async fn refusing_every_encoding_is_a_406_and_a_tiny_body_is_sent_plain_unless_plain_is_refused() {
    let (app, token) = app_with_builtin().await;
    for accept in ["identity;q=0", "*;q=0", "br;q=0, gzip;q=0, identity;q=0"] {
        let res = get(
            &app,
            &token,
            "/api/v1/connectors",
            &[("accept-encoding", accept)],
        )
        .await;
        res.assert_status(406);
        assert_eq!(res.json()["code"], "not_acceptable");
        assert_eq!(header(&res, "vary"), Some("accept-encoding"));
    }
    let res = get(
        &app,
        &token,
        "/api/v1/connectors",
        &[("accept-encoding", "gzip, *;q=0")],
    )
    .await;
    assert_eq!(header(&res, "content-encoding"), Some("gzip"));
    // `[]` is smaller than any compressed form of it.
    let uri = "/api/v1/connectors?category=no-such-category";
    let res = get(&app, &token, uri, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(header(&res, "content-encoding"), None);
    assert_eq!(res.text(), "[]");
    let res = get(
        &app,
        &token,
        uri,
        &[("accept-encoding", "gzip, identity;q=0")],
    )
    .await;
    assert_eq!(header(&res, "content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&res.body), b"[]");
}

// ---- Reloading PLUGBOARD_CATALOG_DIR ----

fn manifest(id: &str, name: &str) -> String {
    format!(
        "id: {id}\nname: {name}\ndescription: the {name} connector\ncategory: testing\nauth_mode: none\n\
         mcp: {{transport: streamable-http, endpoint: 'https://{id}.example.com/mcp'}}\n"
    )
}

async fn app_on_folder(dir: &std::path::Path) -> (TestApp, String) {
    let db = Db::new(Backend::Sqlite).await.unwrap();
    let (catalog, bad) = Catalog::load_dir(dir).unwrap();
    assert!(bad.is_empty());
    let dir = dir.to_path_buf();
    let app = TestApp::build(db, Some(catalog), move |c| c.catalog_dir = Some(dir)).await;
    let (_, token) = app.user("ada@example.com").await;
    (app, token)
}

#[tokio::test]
async fn a_reload_serves_the_new_folder_at_once_while_a_request_already_running_keeps_the_old_catalog(
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), manifest("alpha", "Alpha")).unwrap();
    let (app, token) = app_on_folder(dir.path()).await;
    let before = get(&app, &token, "/api/v1/connectors", &[]).await;
    assert_eq!(ids(&before), ["alpha"]);
    // What a request holds while it runs: the catalog it started with, and a manifest of it.
    let running = app.state.catalog.current();
    let alpha = app.state.catalog.manifest("alpha").unwrap();

    std::fs::write(dir.path().join("a.yaml"), manifest("alpha", "Alpha Two")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), manifest("beta", "Beta")).unwrap();
    std::fs::write(dir.path().join("c.yaml"), "id: [not a manifest\n").unwrap();
    let report = app.state.reload_catalog().unwrap();
    assert_eq!((report.loaded, report.skipped), (2, 1));

    let after = get(&app, &token, "/api/v1/connectors", &[]).await;
    assert_eq!(ids(&after), ["alpha", "beta"]);
    assert_eq!(after.json()[0]["name"], "Alpha Two");
    assert_ne!(header(&after, "etag"), header(&before, "etag"));
    let res = get(
        &app,
        &token,
        "/api/v1/connectors/beta",
        &[("accept-encoding", "gzip")],
    )
    .await;
    res.assert_status(200);
    let plain = get(&app, &token, "/api/v1/connectors/beta", &[]).await;
    assert_eq!(gunzip(&res.body), plain.body);
    assert_eq!(plain.json()["name"], "Beta");
    // The old tag no longer matches.
    let old_tag = header(&before, "etag").unwrap();
    let res = get(
        &app,
        &token,
        "/api/v1/connectors",
        &[("if-none-match", old_tag)],
    )
    .await;
    res.assert_status(200);

    // The running request still sees, and answers, the old catalog in full.
    assert_eq!(running.list.body(), &before.body);
    assert_eq!(alpha.name, "Alpha");
    assert!(running.item("beta").is_none());
}

#[tokio::test]
async fn a_reload_that_cannot_read_the_folder_or_loads_nothing_keeps_the_catalog_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.yaml"), manifest("alpha", "Alpha")).unwrap();
    let (app, token) = app_on_folder(&folder).await;
    let before = get(&app, &token, "/api/v1/connectors", &[]).await;

    // Every file broken: kept, and the error says why.
    std::fs::write(folder.join("a.yaml"), "id: alpha\n").unwrap();
    let err = app.state.reload_catalog().unwrap_err().to_string();
    assert!(err.contains("no manifest") && err.contains("kept"), "{err}");
    let res = get(&app, &token, "/api/v1/connectors", &[]).await;
    assert_eq!(res.body, before.body);

    // The folder gone: kept.
    std::fs::remove_dir_all(&folder).unwrap();
    let err = app.state.reload_catalog().unwrap_err().to_string();
    assert!(
        err.contains("cannot be read") && err.contains("kept"),
        "{err}"
    );
    let res = get(&app, &token, "/api/v1/connectors", &[]).await;
    assert_eq!(res.body, before.body);
    get(&app, &token, "/api/v1/connectors/alpha", &[])
        .await
        .assert_status(200);

    // An empty folder is an empty catalog, as at start.
    std::fs::create_dir(&folder).unwrap();
    let report = app.state.reload_catalog().unwrap();
    assert_eq!((report.loaded, report.skipped), (0, 0));
    assert_eq!(
        get(&app, &token, "/api/v1/connectors", &[]).await.text(),
        "[]"
    );
}

#[tokio::test]
async fn the_built_in_catalog_has_nothing_to_reload() {
    let (app, token) = app_with_builtin().await;
    let before = get(&app, &token, "/api/v1/connectors", &[]).await;
    let err = app.state.reload_catalog().unwrap_err().to_string();
    assert!(err.contains("PLUGBOARD_CATALOG_DIR is not set"), "{err}");
    assert_eq!(
        get(&app, &token, "/api/v1/connectors", &[]).await.body,
        before.body
    );
}
