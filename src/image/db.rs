//! The image store's tables (blobs, layers, images, their layer stacks and tags) on the
//! node's metadata database. The schema and the connection are `crate::meta`'s.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Row};

use super::digest::Digest;
use crate::meta::{Db, MetaError, Sql};

/// Digests are stored as text (`sha256:<hex>`); one that does not parse is corruption.
impl FromSql for Digest {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Digest::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Digest {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

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

const LAYER_COLUMNS: &str = "chain_id, diff_id, parent, blob_digest, media_type, compressed_size,
    unpacked_size, created_at";

fn layer_row(r: &Row<'_>) -> rusqlite::Result<LayerRecord> {
    Ok(LayerRecord {
        chain_id: r.get(0)?,
        diff_id: r.get(1)?,
        parent: r.get(2)?,
        blob_digest: r.get(3)?,
        media_type: r.get(4)?,
        compressed_size: r.get::<_, i64>(5)? as u64,
        unpacked_size: r.get::<_, i64>(6)? as u64,
        created_at: r.get(7)?,
    })
}

fn image_row(r: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        digest: r.get(0)?,
        config_digest: r.get(1)?,
        index_digest: r.get(2)?,
        platform: r.get(3)?,
        created_at: r.get(4)?,
        last_used: r.get(5)?,
    })
}

fn blob_row(r: &Row<'_>) -> rusqlite::Result<BlobRecord> {
    Ok(BlobRecord {
        digest: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        media_type: r.get(2)?,
    })
}

impl Db {
    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>, MetaError> {
        self.sql().row(
            &format!("SELECT {LAYER_COLUMNS} FROM layers WHERE chain_id = ?1"),
            params![chain_id],
            layer_row,
        )
    }

    /// Records a layer once it is in place; durable, like every record a pull commits.
    pub fn insert_layer(&mut self, layer: &LayerRecord) -> Result<(), MetaError> {
        self.durable_write(|tx| {
            tx.exec(
                "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, blob_digest, media_type,
                    compressed_size, unpacked_size, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![
                    layer.chain_id,
                    layer.diff_id,
                    layer.parent,
                    layer.blob_digest,
                    layer.media_type,
                    layer.compressed_size as i64,
                    layer.unpacked_size as i64,
                    layer.created_at
                ],
            )
            .map(|_| ())
        })
    }

    /// Records an image, its layer stack, its blobs and the names that point at it, all at
    /// once and durably.
    pub fn commit_image(
        &mut self,
        image: &ImageRecord,
        chain: &[Digest],
        blobs: &[BlobRecord],
        names: &[String],
    ) -> Result<(), MetaError> {
        self.durable_write(|tx| {
            for blob in blobs {
                tx.exec(
                    "INSERT OR IGNORE INTO blobs(digest, size, media_type) VALUES (?1, ?2, ?3)",
                    params![blob.digest, blob.size as i64, blob.media_type],
                )?;
            }
            tx.exec(
                "INSERT INTO images(digest, config_digest, index_digest, platform, created_at, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(digest) DO UPDATE SET last_used = excluded.last_used,
                    index_digest = COALESCE(excluded.index_digest, images.index_digest)",
                params![
                    image.digest,
                    image.config_digest,
                    image.index_digest,
                    image.platform,
                    image.created_at,
                    image.last_used
                ],
            )?;
            tx.exec(
                "DELETE FROM image_layers WHERE image = ?1",
                params![image.digest],
            )?;
            for (position, chain_id) in chain.iter().enumerate() {
                tx.exec(
                    "INSERT INTO image_layers(image, position, chain_id) VALUES (?1, ?2, ?3)",
                    params![image.digest, position as i64, chain_id],
                )?;
            }
            for name in names {
                tx.exec(
                    "INSERT INTO tags(name, image) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET image = excluded.image",
                    params![name, image.digest],
                )?;
            }
            Ok(())
        })
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>, MetaError> {
        self.sql().rows(
            "SELECT digest, config_digest, index_digest, platform, created_at, last_used
             FROM images ORDER BY created_at DESC, digest",
            [],
            image_row,
        )
    }

    pub fn tags(&self) -> Result<Vec<(String, Digest)>, MetaError> {
        self.sql()
            .rows("SELECT name, image FROM tags ORDER BY name", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }

    pub fn tag(&self, name: &str) -> Result<Option<Digest>, MetaError> {
        self.sql().row(
            "SELECT image FROM tags WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
    }

    /// Every layer of the store, bottom of each stack first.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, MetaError> {
        self.sql().rows(
            &format!("SELECT {LAYER_COLUMNS} FROM layers ORDER BY created_at, chain_id"),
            [],
            layer_row,
        )
    }

    /// The chain IDs of an image, bottom layer first.
    pub fn image_chain(&self, image: &Digest) -> Result<Vec<Digest>, MetaError> {
        self.sql().rows(
            "SELECT chain_id FROM image_layers WHERE image = ?1 ORDER BY position",
            params![image],
            |r| r.get(0),
        )
    }

    pub fn blobs(&self) -> Result<Vec<BlobRecord>, MetaError> {
        self.sql().rows(
            "SELECT digest, size, media_type FROM blobs ORDER BY digest",
            [],
            blob_row,
        )
    }

    /// Removes one name; the image goes too when no name is left and no container uses it.
    /// Returns the image digest when the image record was removed.
    pub fn untag(&mut self, name: &str) -> Result<Option<Digest>, MetaError> {
        self.write(|tx| {
            let Some(image) = tx.row(
                "SELECT image FROM tags WHERE name = ?1",
                params![name],
                |r| r.get::<_, Digest>(0),
            )?
            else {
                return Ok(None);
            };
            tx.exec("DELETE FROM tags WHERE name = ?1", params![name])?;
            let removed = remove_image_if_unnamed(tx, &image)?;
            Ok(removed.then_some(image))
        })
    }

    /// Removes an image and all its names, unless a container uses it.
    pub fn remove_image(&mut self, image: &Digest) -> Result<bool, MetaError> {
        self.write(|tx| {
            tx.exec("DELETE FROM tags WHERE image = ?1", params![image])?;
            remove_image_if_unnamed(tx, image)
        })
    }

    /// Deletes layer and blob records that nothing references, in one transaction, and
    /// returns them so their files can be removed afterwards.
    pub fn collect_garbage(&mut self) -> Result<(Vec<LayerRecord>, Vec<BlobRecord>), MetaError> {
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
        self.write(|tx| {
            let mut removed_layers = Vec::new();
            for layer in layers {
                // Re-checked inside the write transaction: a pull may have committed meanwhile.
                let n = tx.exec(
                    "DELETE FROM layers WHERE chain_id = ?1
                     AND NOT EXISTS (SELECT 1 FROM image_layers WHERE chain_id = ?1)",
                    params![layer.chain_id],
                )?;
                if n > 0 {
                    removed_layers.push(layer);
                }
            }
            let mut removed_blobs = Vec::new();
            for blob in blobs {
                let n = tx.exec(
                    "DELETE FROM blobs WHERE digest = ?1
                     AND NOT EXISTS (SELECT 1 FROM images WHERE digest = ?1 OR config_digest = ?1
                                     OR index_digest = ?1)",
                    params![blob.digest],
                )?;
                if n > 0 {
                    removed_blobs.push(blob);
                }
            }
            Ok((removed_layers, removed_blobs))
        })
    }

    fn layer_in_use(&self, chain_id: &Digest) -> Result<bool, MetaError> {
        self.sql().value(
            "SELECT EXISTS(SELECT 1 FROM image_layers WHERE chain_id = ?1)",
            params![chain_id],
        )
    }

    fn blob_in_use(&self, digest: &Digest) -> Result<bool, MetaError> {
        self.sql().value(
            "SELECT EXISTS(SELECT 1 FROM images WHERE digest = ?1 OR config_digest = ?1
                           OR index_digest = ?1)",
            params![digest],
        )
    }

    /// Removes an image with all its names in one transaction, unless a container uses it
    /// (then nothing changes). For garbage collection, which must not strip names from an
    /// image that a container started using since it looked.
    pub fn remove_unused_image(&mut self, image: &Digest) -> Result<bool, MetaError> {
        self.write(|tx| {
            if super::users::in_use(tx, image)? {
                return Ok(false);
            }
            tx.exec("DELETE FROM tags WHERE image = ?1", params![image])?;
            remove_image_if_unnamed(tx, image)
        })
    }
}

fn remove_image_if_unnamed(tx: Sql<'_>, image: &Digest) -> Result<bool, MetaError> {
    let named: bool = tx.value(
        "SELECT EXISTS(SELECT 1 FROM tags WHERE image = ?1)
             OR EXISTS(SELECT 1 FROM image_users WHERE image = ?1)",
        params![image],
    )?;
    if named {
        return Ok(false);
    }
    tx.exec("DELETE FROM images WHERE digest = ?1", params![image])?;
    Ok(true)
}
