//! Opening a database that must already exist: the operator commands (other than `migrate`) work on the server's
//! database and never create or migrate one, so a command run with the wrong settings (another folder, another URL)
//! fails saying so instead of writing into a new, empty database the server does not know.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;

use crate::sql::{PG_MIGRATOR, SQLITE_MIGRATOR};
use crate::{ConnectOptions, PgStore, SqliteStore, Store, StoreError};

/// Why an existing database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExistingDbError {
    /// The SQLite file does not exist.
    #[error("there is no database file at {}", .0.display())]
    Missing(PathBuf),
    /// The database exists but was never migrated (no Plugboard tables).
    #[error("the database has no Plugboard tables (it was never migrated)")]
    Empty,
    /// Migrations this binary knows are not applied yet.
    #[error("the database lacks {missing} of this version's {known} migrations")]
    Behind { missing: usize, known: usize },
    /// The database was migrated by a newer Plugboard.
    #[error("the database was migrated by a newer version of Plugboard ({unknown} migrations this version does not know)")]
    Ahead { unknown: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The versions of the migrations applied to the database behind `$pool`; `$has_table` counts the migrations table.
macro_rules! applied_versions {
    ($pool:expr, $has_table:expr) => {{
        let (tables,): (i64,) = sqlx::query_as($has_table)
            .fetch_one($pool)
            .await
            .map_err(StoreError::from)?;
        if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_as::<_, (i64,)>("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all($pool)
                .await
                .map_err(StoreError::from)?
        }
    }};
}

/// Opens a database that exists and is migrated to exactly this version's schema; never creates a file, never
/// migrates.
pub async fn open_existing(url: &str) -> Result<Arc<dyn Store>, ExistingDbError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(open_existing_sqlite(url).await?))
    } else {
        Ok(Arc::new(open_existing_pg(url).await?))
    }
}

pub(crate) async fn open_existing_sqlite(url: &str) -> Result<SqliteStore, ExistingDbError> {
    let path = SqliteConnectOptions::from_str(url)
        .map_err(StoreError::from)?
        .get_filename()
        .to_path_buf();
    if !path.is_file() {
        return Err(ExistingDbError::Missing(path));
    }
    let options = ConnectOptions {
        create: false,
        ..ConnectOptions::default()
    };
    let store = SqliteStore::connect_with(url, options).await?;
    let applied = applied_versions!(
        &store.pool,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
    );
    compare(&applied, SQLITE_MIGRATOR.iter().map(|m| m.version))?;
    Ok(store)
}

async fn open_existing_pg(url: &str) -> Result<PgStore, ExistingDbError> {
    let store = PgStore::connect(url).await?;
    let applied = applied_versions!(
        &store.pool,
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
    );
    compare(&applied, PG_MIGRATOR.iter().map(|m| m.version))?;
    Ok(store)
}

fn compare(applied: &[(i64,)], known: impl Iterator<Item = i64>) -> Result<(), ExistingDbError> {
    if applied.is_empty() {
        return Err(ExistingDbError::Empty);
    }
    let applied: BTreeSet<i64> = applied.iter().map(|(v,)| *v).collect();
    let known: BTreeSet<i64> = known.collect();
    let unknown = applied.difference(&known).count();
    if unknown > 0 {
        return Err(ExistingDbError::Ahead { unknown });
    }
    let missing = known.difference(&applied).count();
    if missing > 0 {
        return Err(ExistingDbError::Behind {
            missing,
            known: known.len(),
        });
    }
    Ok(())
}
