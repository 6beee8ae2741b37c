//! Which container uses which image (the `image_users` table): an image in use is never
//! removed by `rmi` or `gc`, and its last use orders garbage collection. The runtime ties a
//! container to its image inside the transaction that records the container.

use rusqlite::params;

use super::digest::Digest;
use crate::meta::{Db, MetaError, Sql};
use crate::time::unix_secs_now;

/// Ties a container to the image it uses, and marks the image used now (image garbage
/// collection removes the least recently used images first).
pub fn hold(tx: Sql<'_>, container_id: &str, image: &Digest) -> Result<(), MetaError> {
    tx.exec(
        "INSERT OR REPLACE INTO image_users(container_id, image) VALUES (?1, ?2)",
        params![container_id, image],
    )?;
    tx.exec(
        "UPDATE images SET last_used = ?2 WHERE digest = ?1",
        params![image, unix_secs_now()],
    )?;
    Ok(())
}

/// Unties a container from its image; the image was in use until now, its last use.
pub fn release(tx: Sql<'_>, container_id: &str) -> Result<(), MetaError> {
    tx.exec(
        "UPDATE images SET last_used = ?2
         WHERE digest = (SELECT image FROM image_users WHERE container_id = ?1)",
        params![container_id, unix_secs_now()],
    )?;
    tx.exec(
        "DELETE FROM image_users WHERE container_id = ?1",
        params![container_id],
    )?;
    Ok(())
}

pub(super) fn in_use(tx: Sql<'_>, image: &Digest) -> Result<bool, MetaError> {
    tx.value(
        "SELECT EXISTS(SELECT 1 FROM image_users WHERE image = ?1)",
        params![image],
    )
}

impl Db {
    /// Number of containers recorded as using each image.
    pub fn image_user_counts(&self) -> Result<Vec<(Digest, u64)>, MetaError> {
        self.sql().rows(
            "SELECT image, COUNT(*) FROM image_users GROUP BY image",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
    }
}
