//! Image and layer metadata in SQLite (WAL mode, so the CLI reads while the agent writes;
//! writers take `BEGIN IMMEDIATE` and wait on a busy timeout instead of failing).

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::digest::Digest;
use crate::layout::NodeLayout;
use crate::sys::lock::{FileLock, LockMode};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("metadata database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("metadata database {path} holds a bad digest: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: super::digest::DigestError,
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

const MIGRATIONS: &[&str] = &[
    // 1: the layer store.
    "CREATE TABLE blobs(
        digest TEXT PRIMARY KEY, size INTEGER NOT NULL, media_type TEXT NOT NULL);
     CREATE TABLE layers(
        chain_id TEXT PRIMARY KEY, diff_id TEXT NOT NULL, parent TEXT,
        blob_digest TEXT NOT NULL, media_type TEXT NOT NULL,
        compressed_size INTEGER NOT NULL, unpacked_size INTEGER NOT NULL,
        created_at INTEGER NOT NULL);
     CREATE TABLE images(
        digest TEXT PRIMARY KEY, config_digest TEXT NOT NULL, index_digest TEXT,
        platform TEXT NOT NULL, created_at INTEGER NOT NULL, last_used INTEGER NOT NULL);
     CREATE TABLE image_layers(
        image TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE,
        position INTEGER NOT NULL, chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY(image, position));
     CREATE INDEX image_layers_chain ON image_layers(chain_id);
     CREATE TABLE tags(
        name TEXT PRIMARY KEY, image TEXT NOT NULL REFERENCES images(digest) ON DELETE CASCADE);
     CREATE TABLE image_users(
        container_id TEXT PRIMARY KEY, image TEXT NOT NULL REFERENCES images(digest));",
    // 2: pods and containers.
    "CREATE TABLE pods(
        uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL,
        owner TEXT NOT NULL, spec TEXT NOT NULL, created_at INTEGER NOT NULL,
        UNIQUE(namespace, name));
     CREATE TABLE containers(
        id TEXT PRIMARY KEY, pod_uid TEXT NOT NULL REFERENCES pods(uid),
        name TEXT NOT NULL, attempt INTEGER NOT NULL, image_ref TEXT NOT NULL,
        image TEXT NOT NULL, created_at INTEGER NOT NULL);
     CREATE INDEX containers_pod ON containers(pod_uid);",
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub blob_digest: Digest,
    pub media_type: String,
    pub compressed_size: u64,
    pub unpacked_size: u64,
    pub created_at: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageRecord {
    pub digest: Digest,
    pub config_digest: Digest,
    pub index_digest: Option<Digest>,
    pub platform: String,
    pub created_at: i64,
    pub last_used: i64,
}

#[derive(Debug, Clone)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

pub struct Db {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Db {
    pub fn open(layout: &NodeLayout) -> Result<Self, DbError> {
        let path = &layout.database();
        // Switching a new database to WAL and migrating it can answer SQLITE_BUSY at once,
        // without waiting on the busy timeout, when two processes open it together: serialise
        // the opening itself.
        let _opening = FileLock::acquire(&layout.database_open_lock(), LockMode::Exclusive)?;
        let err = |source| DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // WAL with synchronous=NORMAL: commits do not fsync; after a power loss the database
        // is consistent but may lack its last commits. Pod and container records can be lost
        // so (the agent re-creates pods from their manifests; the directories of lost
        // containers are orphans the cleanup removes). Image and layer records are committed
        // with FULL (`durable`): a committed pull survives power loss.
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
        let mut db = Db {
            conn,
            path: path.to_path_buf(),
        };
        db.migrate()?;
        Ok(db)
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn digest(&self, value: String) -> Result<Digest, DbError> {
        Digest::parse(&value).map_err(|source| DbError::Corrupt {
            path: self.path.clone(),
            source,
        })
    }

    fn migrate(&mut self) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(DbError::TooNew {
                path,
                found: version,
                supported,
            });
        }
        for migration in &MIGRATIONS[version as usize..] {
            tx.execute_batch(migration).map_err(err)?;
        }
        tx.pragma_update(None, "user_version", supported)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>, DbError> {
        let row = self
            .conn
            .query_row(
                "SELECT chain_id, diff_id, parent, blob_digest, media_type, compressed_size,
                        unpacked_size, created_at FROM layers WHERE chain_id = ?1",
                params![chain_id.to_string()],
                layer_row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|r| self.layer_from_row(r)).transpose()
    }

    fn layer_from_row(&self, r: LayerRow) -> Result<LayerRecord, DbError> {
        Ok(LayerRecord {
            chain_id: self.digest(r.0)?,
            diff_id: self.digest(r.1)?,
            parent: r.2.map(|p| self.digest(p)).transpose()?,
            blob_digest: self.digest(r.3)?,
            media_type: r.4,
            compressed_size: r.5 as u64,
            unpacked_size: r.6 as u64,
            created_at: r.7,
        })
    }

    /// Runs `commit` with synchronous=FULL: its transaction is on disk when it returns.
    fn durable<T>(
        &mut self,
        commit: impl FnOnce(&mut Self) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        let result = commit(self);
        let restored = self
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e));
        let value = result?;
        restored?;
        Ok(value)
    }

    pub fn insert_layer(&mut self, layer: &LayerRecord) -> Result<(), DbError> {
        self.durable(|db| db.insert_layer_now(layer))
    }

    fn insert_layer_now(&mut self, layer: &LayerRecord) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, blob_digest, media_type,
                compressed_size, unpacked_size, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                layer.chain_id.to_string(),
                layer.diff_id.to_string(),
                layer.parent.as_ref().map(|p| p.to_string()),
                layer.blob_digest.to_string(),
                layer.media_type,
                layer.compressed_size as i64,
                layer.unpacked_size as i64,
                layer.created_at
            ],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Records an image, its layer stack, its blobs and the names that point at it, all at once.
    pub fn commit_image(
        &mut self,
        image: &ImageRecord,
        chain: &[Digest],
        blobs: &[BlobRecord],
        names: &[String],
    ) -> Result<(), DbError> {
        self.durable(|db| db.commit_image_now(image, chain, blobs, names))
    }

    fn commit_image_now(
        &mut self,
        image: &ImageRecord,
        chain: &[Digest],
        blobs: &[BlobRecord],
        names: &[String],
    ) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        for blob in blobs {
            tx.execute(
                "INSERT OR IGNORE INTO blobs(digest, size, media_type) VALUES (?1, ?2, ?3)",
                params![blob.digest.to_string(), blob.size as i64, blob.media_type],
            )
            .map_err(err)?;
        }
        tx.execute(
            "INSERT INTO images(digest, config_digest, index_digest, platform, created_at, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(digest) DO UPDATE SET last_used = excluded.last_used,
                index_digest = COALESCE(excluded.index_digest, images.index_digest)",
            params![
                image.digest.to_string(),
                image.config_digest.to_string(),
                image.index_digest.as_ref().map(|d| d.to_string()),
                image.platform,
                image.created_at,
                image.last_used
            ],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM image_layers WHERE image = ?1",
            params![image.digest.to_string()],
        )
        .map_err(err)?;
        for (position, chain_id) in chain.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers(image, position, chain_id) VALUES (?1, ?2, ?3)",
                params![
                    image.digest.to_string(),
                    position as i64,
                    chain_id.to_string()
                ],
            )
            .map_err(err)?;
        }
        for name in names {
            tx.execute(
                "INSERT INTO tags(name, image) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET image = excluded.image",
                params![name, image.digest.to_string()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT digest, config_digest, index_digest, platform, created_at, last_used
                 FROM images ORDER BY created_at DESC, digest",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| {
                Ok(ImageRecord {
                    digest: self.digest(r.0)?,
                    config_digest: self.digest(r.1)?,
                    index_digest: r.2.map(|d| self.digest(d)).transpose()?,
                    platform: r.3,
                    created_at: r.4,
                    last_used: r.5,
                })
            })
            .collect()
    }

    pub fn tags(&self) -> Result<Vec<(String, Digest)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, image FROM tags ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(n, d)| Ok((n, self.digest(d)?)))
            .collect()
    }

    pub fn tag(&self, name: &str) -> Result<Option<Digest>, DbError> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        found.map(|d| self.digest(d)).transpose()
    }

    /// Every layer of the store, bottom of each stack first.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT chain_id, diff_id, parent, blob_digest, media_type, compressed_size,
                        unpacked_size, created_at FROM layers ORDER BY created_at, chain_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], layer_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|r| self.layer_from_row(r)).collect()
    }

    /// The chain IDs of an image, bottom layer first.
    pub fn image_chain(&self, image: &Digest) -> Result<Vec<Digest>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT chain_id FROM image_layers WHERE image = ?1 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![image.to_string()], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(|d| self.digest(d)).collect()
    }

    /// Number of containers recorded as using each image.
    pub fn image_user_counts(&self) -> Result<Vec<(Digest, u64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT image, COUNT(*) FROM image_users GROUP BY image")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(d, n)| Ok((self.digest(d)?, n as u64)))
            .collect()
    }

    pub fn add_image_user(&mut self, container_id: &str, image: &Digest) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO image_users(container_id, image) VALUES (?1, ?2)",
                params![container_id, image.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn remove_image_user(&mut self, container_id: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "DELETE FROM image_users WHERE container_id = ?1",
                params![container_id],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn blobs(&self) -> Result<Vec<BlobRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT digest, size, media_type FROM blobs ORDER BY digest")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(d, s, m)| {
                Ok(BlobRecord {
                    digest: self.digest(d)?,
                    size: s as u64,
                    media_type: m,
                })
            })
            .collect()
    }

    /// Removes one name; the image goes too when no name is left and no container uses it.
    /// Returns the image digest when the image record was removed.
    pub fn untag(&mut self, name: &str) -> Result<Option<Digest>, DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let image: Option<String> = tx
            .query_row(
                "SELECT image FROM tags WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let Some(image) = image else {
            return Ok(None);
        };
        tx.execute("DELETE FROM tags WHERE name = ?1", params![name])
            .map_err(err)?;
        let removed = remove_image_if_unnamed(&tx, &image).map_err(err)?;
        tx.commit().map_err(err)?;
        if removed {
            Ok(Some(self.digest(image)?))
        } else {
            Ok(None)
        }
    }

    /// Removes an image and all its names, unless a container uses it.
    pub fn remove_image(&mut self, image: &Digest) -> Result<bool, DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            "DELETE FROM tags WHERE image = ?1",
            params![image.to_string()],
        )
        .map_err(err)?;
        let removed = remove_image_if_unnamed(&tx, &image.to_string()).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(removed)
    }

    /// Deletes layer and blob records that nothing references, in one transaction, and
    /// returns them so their files can be removed afterwards.
    pub fn collect_garbage(&mut self) -> Result<(Vec<LayerRecord>, Vec<BlobRecord>), DbError> {
        let layers: Vec<LayerRecord> = self
            .layers()?
            .into_iter()
            .filter(|l| !self.layer_in_use(&l.chain_id).unwrap_or(true))
            .collect();
        let blobs: Vec<BlobRecord> = self
            .blobs()?
            .into_iter()
            .filter(|b| !self.blob_in_use(&b.digest).unwrap_or(true))
            .collect();
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut removed_layers = Vec::new();
        for layer in layers {
            // Re-checked inside the write transaction: a pull may have committed meanwhile.
            let n = tx
                .execute(
                    "DELETE FROM layers WHERE chain_id = ?1
                     AND NOT EXISTS (SELECT 1 FROM image_layers WHERE chain_id = ?1)",
                    params![layer.chain_id.to_string()],
                )
                .map_err(err)?;
            if n > 0 {
                removed_layers.push(layer);
            }
        }
        let mut removed_blobs = Vec::new();
        for blob in blobs {
            let n = tx
                .execute(
                    "DELETE FROM blobs WHERE digest = ?1
                     AND NOT EXISTS (SELECT 1 FROM images WHERE digest = ?1 OR config_digest = ?1
                                     OR index_digest = ?1)",
                    params![blob.digest.to_string()],
                )
                .map_err(err)?;
            if n > 0 {
                removed_blobs.push(blob);
            }
        }
        tx.commit().map_err(err)?;
        Ok((removed_layers, removed_blobs))
    }

    fn layer_in_use(&self, chain_id: &Digest) -> Result<bool, DbError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE chain_id = ?1)",
                params![chain_id.to_string()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn blob_in_use(&self, digest: &Digest) -> Result<bool, DbError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM images WHERE digest = ?1 OR config_digest = ?1
                               OR index_digest = ?1)",
                params![digest.to_string()],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Removes an image with all its names in one transaction, unless a container uses it
    /// (then nothing changes). For garbage collection, which must not strip names from an
    /// image that a container started using since it looked.
    pub fn remove_unused_image(&mut self, image: &Digest) -> Result<bool, DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let in_use: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM image_users WHERE image = ?1)",
                params![image.to_string()],
                |r| r.get(0),
            )
            .map_err(err)?;
        if in_use {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM tags WHERE image = ?1",
            params![image.to_string()],
        )
        .map_err(err)?;
        let removed = remove_image_if_unnamed(&tx, &image.to_string()).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(removed)
    }
}

type LayerRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
);

fn layer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn remove_image_if_unnamed(tx: &rusqlite::Transaction<'_>, image: &str) -> rusqlite::Result<bool> {
    let named: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM tags WHERE image = ?1)
             OR EXISTS(SELECT 1 FROM image_users WHERE image = ?1)",
        params![image],
        |r| r.get(0),
    )?;
    if named {
        return Ok(false);
    }
    tx.execute("DELETE FROM images WHERE digest = ?1", params![image])?;
    Ok(true)
}
