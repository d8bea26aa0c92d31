//! Fresh databases for tests: a new SQLite file per test, or a new schema on the PostgreSQL server named by
//! `PLUGBOARD_TEST_DATABASE_URL` (when set).

// Test support (behind the `testing` feature, used only by tests): a failed set-up is a failed test, so this module
// may panic, unwrap and expect like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::{new_id, Database, PgStore, SqliteStore, Store};

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated, empty database that lives as long as this value.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    /// A URL another process (or a second server instance) can open to reach the same data.
    pub url: String,
    pub data_dir: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server tests may use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("PLUGBOARD_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no test server is configured.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("plugboard.db").display());
                let store = SqliteStore::connect(&url).await.expect("open sqlite");
                store.migrate().await.expect("migrate sqlite");
                Some(TestDb {
                    store: Arc::new(store),
                    url,
                    data_dir: Some(dir.path().to_path_buf()),
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let schema = format!("t_{}", new_id());
                let admin = PgStore::connect(&base)
                    .await
                    .expect("connect to PLUGBOARD_TEST_DATABASE_URL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin.pool)
                    .await
                    .expect("create test schema");
                admin.pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                let store = PgStore::connect(&url)
                    .await
                    .expect("connect to test schema");
                store.migrate().await.expect("migrate postgres");
                let dir = tempfile::tempdir().expect("temp dir");
                Some(TestDb {
                    store: Arc::new(store),
                    url,
                    data_dir: Some(dir.path().to_path_buf()),
                    _dir: Some(dir),
                })
            }
        }
    }
}

impl TestDb {
    /// Another handle on the same database (for a second server instance); the first handle keeps it alive.
    pub fn handle(&self) -> TestDb {
        TestDb {
            store: self.store.clone(),
            url: self.url.clone(),
            data_dir: self.data_dir.clone(),
            _dir: None,
        }
    }

    /// The same database opened again, as another process opens it: its own connections and write epoch, so nothing
    /// this handle's users remember in memory is invalidated by the other's writes (as between two server instances).
    /// This handle keeps the database alive.
    pub async fn reopened(&self) -> TestDb {
        TestDb {
            store: crate::connect(&self.url)
                .await
                .expect("open the test database again"),
            url: self.url.clone(),
            data_dir: self.data_dir.clone(),
            _dir: None,
        }
    }

    /// Runs one SQL statement on a connection of its own (to set up states the store's API cannot make, such as
    /// rows from before a migration).
    pub async fn exec(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url)
                .await
                .expect("open sqlite");
            sqlx::query(sql).execute(&pool).await.expect("exec");
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url)
                .await
                .expect("open postgres");
            sqlx::query(sql).execute(&pool).await.expect("exec");
            pool.close().await;
        }
    }
}

/// Declares one test per backend from an `async fn(TestDb)`: `name::sqlite` and `name::postgres`.
/// The PostgreSQL variant passes without running when `PLUGBOARD_TEST_DATABASE_URL` is unset (and says so).
#[macro_export]
macro_rules! test_on_both_backends {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = $crate::testing::TestDb::new($crate::testing::Backend::Sqlite).await.expect("sqlite");
                    super::$body(db).await;
                }
                #[tokio::test]
                async fn postgres() {
                    match $crate::testing::TestDb::new($crate::testing::Backend::Postgres).await {
                        Some(db) => super::$body(db).await,
                        None => eprintln!("PLUGBOARD_TEST_DATABASE_URL is not set: PostgreSQL variant not run"),
                    }
                }
            }
        )+
    };
}
