//! The connection: opened with the settings every process on a data root shares, migrated
//! on open, and the two ways to write (`write`, `durable_write`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::{schema, MetaError, Sql};
use crate::layout::NodeLayout;
use crate::sys::lock::{FileLock, LockMode};

/// One connection to the node's metadata database. Not shared across threads: the store
/// keeps one behind a mutex, and a thread that needs its own (metrics) opens another.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating and migrating if needed) the data root's database.
    pub fn open(layout: &NodeLayout) -> Result<Self, MetaError> {
        let path = layout.database();
        // Switching a new database to WAL and migrating it can answer SQLITE_BUSY at once,
        // without waiting on the busy timeout, when two processes open it together: serialise
        // the opening itself.
        let _opening = FileLock::acquire(&layout.database_open_lock(), LockMode::Exclusive)?;
        let err = |source| MetaError::at(&path, source);
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // WAL with synchronous=NORMAL: commits do not fsync; after a power loss the database
        // is consistent but may lack its last commits. Pod and container records can be lost
        // so (the agent re-creates pods from their manifests; the directories of lost
        // containers are orphans the cleanup removes). Image and layer records are committed
        // with FULL (`durable_write`): a committed pull survives power loss.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Every CLI call is a short-lived connection: a checkpoint (two fsyncs and the WAL's
        // removal) at each close would cost more than the call. SQLite's automatic
        // checkpoints, every 1000 pages, keep the WAL short instead.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let mut db = Db { conn, path };
        // Nearly every open finds the schema current: a read then, not a write transaction,
        // which would append to the WAL at every CLI call.
        if db.schema_version()? != schema::SCHEMA_VERSION {
            db.write(schema::migrate)?;
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves whenever another connection commits: while it stands still, nothing changed.
    pub fn data_version(&self) -> Result<i64, MetaError> {
        self.sql().value("PRAGMA data_version", [])
    }

    /// Reads, and single statements that commit on their own.
    pub fn sql(&self) -> Sql<'_> {
        Sql::new(&self.conn, &self.path)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, MetaError> {
        self.sql().value("PRAGMA user_version", [])
    }

    /// Runs `body` in one write transaction, begun IMMEDIATE: the write lock is taken (or
    /// waited for, up to the busy timeout) before the first read, so a read-then-write never
    /// fails half-way on a lock. Committed when `body` succeeds, rolled back otherwise.
    pub fn write<T, E: From<MetaError>>(
        &mut self,
        body: impl FnOnce(Sql<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| MetaError::at(path, e))?;
        let value = body(Sql::new(&tx, path))?;
        tx.commit().map_err(|e| MetaError::at(path, e))?;
        Ok(value)
    }

    /// [`Db::write`] with synchronous=FULL: the transaction is on disk when this returns.
    pub fn durable_write<T, E: From<MetaError>>(
        &mut self,
        body: impl FnOnce(Sql<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.set_synchronous("FULL")?;
        let result = self.write(body);
        let restored = self.set_synchronous("NORMAL");
        let value = result?;
        restored?;
        Ok(value)
    }

    fn set_synchronous(&self, mode: &str) -> Result<(), MetaError> {
        self.conn
            .pragma_update(None, "synchronous", mode)
            .map_err(|e| MetaError::at(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &tempfile::TempDir) -> NodeLayout {
        NodeLayout::new(dir.path(), dir.path().join("run"))
    }

    fn tables(db: &Db) -> Vec<String> {
        db.sql()
            .rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_new_database_gets_every_table_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&layout(&dir)).unwrap();
        assert_eq!(db.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert_eq!(
            tables(&db),
            [
                "blobs",
                "containers",
                "image_layers",
                "image_users",
                "images",
                "layers",
                "pods",
                "tags"
            ]
        );
        let mode: String = db.sql().value("PRAGMA journal_mode", []).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = db.sql().value("PRAGMA foreign_keys", []).unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn opening_a_current_database_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(&dir);
        let first = Db::open(&layout).unwrap();
        let wal = layout.database().with_extension("db-wal");
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let (version, wal_before) = (first.data_version().unwrap(), wal_len());
        for _ in 0..3 {
            drop(Db::open(&layout).unwrap());
        }
        assert_eq!(
            first.data_version().unwrap(),
            version,
            "another open committed"
        );
        assert_eq!(wal_len(), wal_before, "the WAL grew");
    }

    #[test]
    fn a_version_one_database_is_upgraded_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(&dir);
        {
            let conn = Connection::open(layout.database()).unwrap();
            schema::migrate_to(Sql::new(&conn, &layout.database()), 1).unwrap();
            conn.execute(
                "INSERT INTO blobs(digest, size, media_type) VALUES ('sha256:aa', 3, 'x')",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&layout).unwrap();
        assert_eq!(db.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert!(tables(&db).contains(&"pods".to_string()));
        let size: i64 = db
            .sql()
            .value("SELECT size FROM blobs WHERE digest = 'sha256:aa'", [])
            .unwrap();
        assert_eq!(size, 3);
    }

    #[test]
    fn a_database_from_a_newer_layerlet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = layout(&dir);
        drop(Db::open(&layout).unwrap());
        {
            let conn = Connection::open(layout.database()).unwrap();
            conn.pragma_update(None, "user_version", schema::SCHEMA_VERSION + 1)
                .unwrap();
        }
        match Db::open(&layout) {
            Err(MetaError::TooNew {
                found, supported, ..
            }) => {
                assert_eq!(found, schema::SCHEMA_VERSION + 1);
                assert_eq!(supported, schema::SCHEMA_VERSION);
            }
            other => panic!("expected TooNew, got {:?}", other.err()),
        }
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&layout(&dir)).unwrap();
        let result: Result<(), MetaError> = db.write(|tx| {
            tx.exec(
                "INSERT INTO blobs(digest, size, media_type) VALUES ('sha256:bb', 1, 'x')",
                [],
            )?;
            tx.exec("INSERT INTO nowhere VALUES (1)", [])?;
            Ok(())
        });
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().join("layerlet.db").display().to_string()),
            "{err}"
        );
        let n: i64 = db.sql().value("SELECT COUNT(*) FROM blobs", []).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn a_value_that_does_not_convert_is_reported_as_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&layout(&dir)).unwrap();
        let err = db.sql().value::<u64>("SELECT -1", []).unwrap_err();
        assert!(matches!(err, MetaError::Corrupt { .. }), "{err:?}");
    }
}
