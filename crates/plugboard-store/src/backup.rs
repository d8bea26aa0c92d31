//! `plugboard backup`: a consistent copy of a SQLite database, taken while servers keep reading and writing it.
//!
//! `VACUUM INTO` copies the database as one read transaction sees it (WAL mode: writers are not blocked and
//! nothing committed after the copy began is in it), into a new file created here with mode 0600 so that no other
//! user can read the copy. The copy is synced to disk and checked (`PRAGMA quick_check`) before it is reported.
//! PostgreSQL databases are backed up with `pg_dump`.

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::existing::{open_existing_sqlite, ExistingDbError};
use crate::StoreError;

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database is not SQLite.
    #[error("backups of a PostgreSQL database are made with pg_dump")]
    NotSqlite,
    /// The destination exists (a backup never overwrites anything).
    #[error("{} already exists: a backup never overwrites a file; choose a new file name", .0.display())]
    Exists(PathBuf),
    /// The destination cannot be created or written.
    #[error("cannot write the backup {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The copy failed its integrity check.
    #[error("the copy at {} failed its integrity check ({detail}); it was removed", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(transparent)]
    Source(#[from] ExistingDbError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies the SQLite database `url` names to `dest`, which must not exist (its folder must).
pub async fn backup_sqlite(url: &str, dest: &Path) -> Result<Backup, BackupError> {
    if !url.starts_with("sqlite:") {
        return Err(BackupError::NotSqlite);
    }
    let source = open_existing_sqlite(url).await?;
    let dest_str = dest.to_str().ok_or_else(|| BackupError::Io {
        path: dest.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is not valid UTF-8; choose a plain file name",
        ),
    })?;
    create_private_empty_file(dest).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => BackupError::Exists(dest.to_path_buf()),
        io::ErrorKind::NotFound => BackupError::Io {
            path: dest.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "its folder does not exist (create it first)",
            ),
        },
        _ => BackupError::Io {
            path: dest.to_path_buf(),
            source: e,
        },
    })?;
    let copied = async {
        sqlx::query("VACUUM INTO $1")
            .bind(dest_str)
            .execute(&source.pool)
            .await
            .map_err(StoreError::from)?;
        source.pool.close().await;
        sync_file_and_folder(dest).map_err(|e| BackupError::Io {
            path: dest.to_path_buf(),
            source: e,
        })?;
        check_copy(dest).await
    }
    .await;
    match copied {
        Ok(()) => {
            let bytes = std::fs::metadata(dest)
                .map_err(|e| BackupError::Io {
                    path: dest.to_path_buf(),
                    source: e,
                })?
                .len();
            Ok(Backup {
                path: dest.to_path_buf(),
                bytes,
            })
        }
        Err(e) => {
            // Never leave a partial copy that could be mistaken for a backup.
            let _ = std::fs::remove_file(dest);
            Err(e)
        }
    }
}

/// Creates `path` empty with mode 0600; fails with `AlreadyExists` when anything is there.
fn create_private_empty_file(path: &Path) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map(drop)
}

fn sync_file_and_folder(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Opens the copy read-only (no journal files are created next to it) and runs `PRAGMA quick_check`.
async fn check_copy(path: &Path) -> Result<(), BackupError> {
    let mut conn = SqliteConnectOptions::from_str("sqlite://")
        .map_err(StoreError::from)?
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(StoreError::from)?;
    let (result,): (String,) = sqlx::query_as("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(StoreError::from)?;
    let _ = conn.close().await;
    if result == "ok" {
        Ok(())
    } else {
        Err(BackupError::Corrupt {
            path: path.to_path_buf(),
            detail: result,
        })
    }
}
