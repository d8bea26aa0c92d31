//! Operations support in the store: leases, opening only an existing database, and SQLite backups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plugboard_store::testing::{Backend, TestDb};
use plugboard_store::*;

plugboard_store::test_on_both_backends! {
    a_lease_has_one_holder_until_it_is_released_or_expires => lease_lifecycle;
    an_existing_migrated_database_opens_for_operator_commands => existing_opens;
}

async fn lease_lifecycle(db: TestDb) {
    let s = &db.store;
    let now = 1_000_000;
    let a = s
        .try_lease("job", "a", "work of a", now, now + 30_000)
        .await
        .unwrap();
    assert!(a.taken);
    assert_eq!(
        (a.holder.as_str(), a.acquired_at, a.expires_at),
        ("a", now, now + 30_000)
    );
    // Someone else cannot take it while it lasts, and learns who holds it.
    let b = s
        .try_lease("job", "b", "work of b", now + 10, now + 30_010)
        .await
        .unwrap();
    assert!(!b.taken);
    assert_eq!((b.holder.as_str(), b.acquired_at), ("a", now));
    assert_eq!(b.detail, "work of a");
    // The holder renews it (keeping its acquisition time); other names are independent.
    let renewed = s
        .try_lease("job", "a", "work of a", now + 20_000, now + 50_000)
        .await
        .unwrap();
    assert!(renewed.taken);
    assert_eq!(
        (renewed.acquired_at, renewed.expires_at),
        (now, now + 50_000)
    );
    assert!(
        s.try_lease("other", "b", "work of b", now, now + 1)
            .await
            .unwrap()
            .taken
    );
    // Releasing is for the holder only.
    s.release_lease("job", "b").await.unwrap();
    assert!(
        !s.try_lease("job", "b", "work of b", now + 20_001, now + 60_000)
            .await
            .unwrap()
            .taken
    );
    // A holder that stopped renewing (crashed) loses the lease once it expired.
    let late = s
        .try_lease("job", "b", "work of b", now + 50_001, now + 80_000)
        .await
        .unwrap();
    assert!(late.taken);
    assert_eq!(
        (late.holder.as_str(), late.acquired_at),
        ("b", now + 50_001)
    );
    assert!(
        !s.try_lease("job", "a", "work of a", now + 50_002, now + 80_000)
            .await
            .unwrap()
            .taken
    );
    s.release_lease("job", "b").await.unwrap();
    assert!(
        s.try_lease("job", "a", "work of a", now + 50_003, now + 80_000)
            .await
            .unwrap()
            .taken
    );
}

async fn existing_opens(db: TestDb) {
    db.store
        .create_user("ada@example.com", "Ada")
        .await
        .unwrap();
    let store = open_existing(&db.url)
        .await
        .expect("a migrated database opens");
    assert_eq!(store.backend(), db.store.backend());
    assert!(store
        .get_user(&UserId::from("nope"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn opening_a_missing_sqlite_database_as_existing_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("plugboard.db");
    let url = format!("sqlite://{}", path.display());
    match open_existing(&url).await {
        Err(ExistingDbError::Missing(p)) => assert_eq!(p, path),
        Err(e) => panic!("expected Missing, got {e}"),
        Ok(_) => panic!("a missing database must not open"),
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[tokio::test]
async fn an_unmigrated_database_is_not_taken_for_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plugboard.db").display());
    // An empty SQLite file (e.g. made by another tool, or by hand).
    drop(connect(&url).await.unwrap());
    assert!(matches!(
        open_existing(&url).await,
        Err(ExistingDbError::Empty)
    ));
    // A schema that does not exist on PostgreSQL is as empty.
    if let Some(base) = testing::postgres_url() {
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!(
            "{base}{sep}options=-c%20search_path%3Dno_such_schema_{}",
            new_id()
        );
        assert!(matches!(
            open_existing(&url).await,
            Err(ExistingDbError::Empty)
        ));
    }
}

#[tokio::test]
async fn a_sqlite_backup_is_a_private_checked_copy_and_never_overwrites() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let user = db
        .store
        .create_user("ada@example.com", "Ada")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("copy.db");
    let backup = backup_sqlite(&db.url, &dest).await.expect("backup");
    assert_eq!(backup.path, dest);
    assert_eq!(backup.bytes, std::fs::metadata(&dest).unwrap().len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Only the copy: no journal files next to it.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    // The copy is a complete database: it opens as an existing one and holds the data.
    let copy = open_existing(&format!("sqlite://{}", dest.display()))
        .await
        .unwrap();
    assert_eq!(
        copy.get_user(&user.id).await.unwrap().unwrap().email,
        "ada@example.com"
    );

    // A second backup to the same path is refused and leaves the first intact.
    let before = std::fs::read(&dest).unwrap();
    match backup_sqlite(&db.url, &dest).await {
        Err(BackupError::Exists(p)) => assert_eq!(p, dest),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(std::fs::read(&dest).unwrap(), before);
    // A folder that does not exist is an error, with nothing created.
    let nowhere = out.path().join("missing").join("copy.db");
    assert!(matches!(
        backup_sqlite(&db.url, &nowhere).await,
        Err(BackupError::Io { .. })
    ));
    assert!(!out.path().join("missing").exists());
}

#[tokio::test]
async fn a_postgres_database_is_not_backed_up_by_the_sqlite_backup() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("copy.db");
    assert!(matches!(
        backup_sqlite("postgres://u:p@127.0.0.1:1/x", &dest).await,
        Err(BackupError::NotSqlite)
    ));
    assert!(!dest.exists());
}
