//! The node's metadata database: one SQLite file (the layout's `layerlet.db`) shared by the
//! agent and every CLI call, in WAL mode so readers never wait for the writer.
//!
//! This module owns the connection and its settings (`connection`), the whole schema and the
//! migrations that reach it from any earlier version (`schema`), and a small query helper
//! that maps rows into values and errors into ones that name the database (`query`). The
//! tables' logic lives with their owners: `image::db` (blobs, layers, images, tags),
//! `image::users` (which container uses which image) and `runtime::records` (pods and
//! containers), each as methods on [`Db`] or functions over a write transaction's [`Sql`].
//! Monitors never open it: a container's state lives in files its monitor writes.

mod connection;
mod query;
mod schema;

use std::path::PathBuf;

pub use connection::Db;
pub use query::Sql;
pub use schema::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("metadata database {path} holds a value layerlet cannot read: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Lock(#[from] crate::sys::lock::LockError),
    #[error("metadata database {path} has schema version {found}, newer than this layerlet understands ({supported}); upgrade layerlet")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
}

impl MetaError {
    /// Names the database; a value that does not convert is corruption, not a SQL error.
    pub(crate) fn at(path: &std::path::Path, source: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        match source {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..) => MetaError::Corrupt { path, source },
            source => MetaError::Sqlite { path, source },
        }
    }
}
