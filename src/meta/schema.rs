//! The whole schema, as the migrations that build it, oldest first. A database records how
//! many it has run in `PRAGMA user_version`; opening runs the rest in one transaction. A
//! migration, once released, never changes: data roots of every earlier layerlet must open.

use super::{MetaError, Sql};

/// Migration 1 made the layer store's tables, migration 2 the pods' and containers'.
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

/// The schema version this layerlet writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`] inside the caller's write transaction; refuses
/// a database a newer layerlet migrated further.
pub(super) fn migrate(tx: Sql<'_>) -> Result<(), MetaError> {
    let version: i64 = tx.value("PRAGMA user_version", [])?;
    if version > SCHEMA_VERSION {
        return Err(MetaError::TooNew {
            path: tx.path().to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in &MIGRATIONS[version.max(0) as usize..] {
        tx.batch(migration)?;
    }
    // PRAGMA takes no parameters; the value is a constant of this file.
    tx.batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
}

/// Runs only the first `version` migrations: a database as an older layerlet left it.
#[cfg(test)]
pub(super) fn migrate_to(tx: Sql<'_>, version: usize) -> Result<(), MetaError> {
    for migration in &MIGRATIONS[..version] {
        tx.batch(migration)?;
    }
    tx.batch(&format!("PRAGMA user_version = {version}"))
}
