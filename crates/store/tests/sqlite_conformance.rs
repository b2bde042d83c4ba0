//! Runs the storage conformance suite against SQLite, plus checks that only make
//! sense for a database file (migrations, file handling).
//!
//! Another engine gets the same coverage from a test file of its own that provides a
//! fresh database and invokes `palisade_store::conformance_tests!`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use palisade_store::conformance::Database;
use palisade_store::{Credential, CredentialStore, SqliteStore, Store, StoreError, StoreResult};
use tempfile::TempDir;

/// A database file in its own temporary directory, removed when dropped.
struct SqliteDb {
    _dir: TempDir,
    path: PathBuf,
}

impl SqliteDb {
    fn new() -> SqliteDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("palisade.db");
        SqliteDb { _dir: dir, path }
    }
}

#[async_trait]
impl Database for SqliteDb {
    async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        let path = self.path.clone();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .expect("open task")?;
        Ok(Arc::new(store))
    }
}

async fn fresh() -> SqliteDb {
    SqliteDb::new()
}

palisade_store::conformance_tests!(fresh);
palisade_store::things_conformance_tests!(fresh);
palisade_store::policies_conformance_tests!(fresh);
palisade_store::certificates_conformance_tests!(fresh);
palisade_store::import_conformance_tests!(fresh);

fn applied_migrations(path: &Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap();
    let versions = stmt.query_map([], |row| row.get(0)).unwrap();
    versions.collect::<Result<_, _>>().unwrap()
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let db = SqliteDb::new();
    let cred = Credential {
        access_key_id: "AKIAREOPEN".into(),
        secret_access_key: "secret".into(),
        account_id: "123456789012".into(),
        created_at_ms: 1,
    };
    let store = SqliteStore::open(&db.path).unwrap();
    store.create_credential(&cred).await.unwrap();
    let migrated = applied_migrations(&db.path);
    assert!(!migrated.is_empty());
    drop(store);

    for _ in 0..2 {
        let store = SqliteStore::open(&db.path).unwrap();
        assert_eq!(
            store.get_credential("AKIAREOPEN").await.unwrap(),
            Some(cred.clone())
        );
    }
    assert_eq!(applied_migrations(&db.path), migrated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_fresh_file_at_once_migrate_once() {
    let db = SqliteDb::new();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let path = db.path.clone();
            std::thread::spawn(move || SqliteStore::open(&path).map(drop))
        })
        .collect();
    for opener in openers {
        opener.join().expect("opener panicked").expect("open");
    }
    let expected: Vec<i64> = (1..=applied_migrations(&db.path).len() as i64).collect();
    assert_eq!(applied_migrations(&db.path), expected);
}

#[test]
fn open_creates_missing_parent_directories() {
    let db = SqliteDb::new();
    let nested = db.path.with_file_name("a").join("b").join("palisade.db");
    let store = SqliteStore::open(&nested).expect("open nested");
    assert_eq!(store.path(), nested);
    assert!(nested.exists());
}

#[test]
fn file_is_in_wal_mode() {
    let db = SqliteDb::new();
    let _store = SqliteStore::open(&db.path).unwrap();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn unopenable_path_is_unavailable() {
    let db = SqliteDb::new();
    // The temp directory itself exists and is not a database file.
    let dir = db.path.parent().unwrap();
    let err = SqliteStore::open(dir).expect_err("a directory is not a database");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[test]
fn a_non_database_file_is_reported_not_clobbered() {
    let db = SqliteDb::new();
    std::fs::write(&db.path, b"definitely not sqlite, but long enough to have a header....................................").unwrap();
    let err = SqliteStore::open(&db.path).expect_err("garbage file");
    assert!(
        matches!(err, StoreError::Internal(_) | StoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(std::fs::read(&db.path)
        .unwrap()
        .starts_with(b"definitely not sqlite"));
}
