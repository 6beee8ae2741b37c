//! Pod and container records in the node's metadata database (the same SQLite file as the
//! image store: one transaction can tie a container to the image it uses).

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::image::db::{Db, DbError};
use crate::image::digest::Digest;
use crate::time::unix_secs_now as now;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// "cli" for `layerlet run`, "agent" for pods from the agent's sources.
    pub owner: String,
    /// The pod spec as JSON (for `inspect` and to recreate containers).
    pub spec: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerRecord {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    /// 0 for the first instance, +1 for each restart.
    pub attempt: u32,
    pub image_ref: String,
    pub image: Digest,
    pub created_at: i64,
}

fn pod_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PodRecord> {
    Ok(PodRecord {
        uid: r.get(0)?,
        namespace: r.get(1)?,
        name: r.get(2)?,
        owner: r.get(3)?,
        spec: r.get(4)?,
        created_at: r.get(5)?,
    })
}

type ContainerRow = (String, String, String, i64, String, String, i64);

fn container_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContainerRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

const CONTAINER_COLUMNS: &str = "id, pod_uid, name, attempt, image_ref, image, created_at";

impl Db {
    pub fn insert_pod(&mut self, pod: &PodRecord) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT INTO pods(uid, namespace, name, owner, spec, created_at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![pod.uid, pod.namespace, pod.name, pod.owner, pod.spec, pod.created_at],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn pods(&self) -> Result<Vec<PodRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT uid, namespace, name, owner, spec, created_at FROM pods ORDER BY namespace, name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], pod_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    pub fn pod_by_name(&self, namespace: &str, name: &str) -> Result<Option<PodRecord>, DbError> {
        self.conn
            .query_row(
                "SELECT uid, namespace, name, owner, spec, created_at FROM pods WHERE namespace = ?1 AND name = ?2",
                params![namespace, name],
                pod_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a container and ties it to its image (so `rmi` and `gc` leave that image be).
    pub fn insert_container(&mut self, c: &ContainerRecord) -> Result<(), DbError> {
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
            "INSERT INTO containers(id, pod_uid, name, attempt, image_ref, image, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![c.id, c.pod_uid, c.name, c.attempt, c.image_ref, c.image.to_string(), c.created_at],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT OR REPLACE INTO image_users(container_id, image) VALUES (?1, ?2)",
            params![c.id, c.image.to_string()],
        )
        .map_err(err)?;
        // Image garbage collection removes the least recently used images first.
        tx.execute(
            "UPDATE images SET last_used = ?2 WHERE digest = ?1",
            params![c.image.to_string(), crate::time::unix_secs_now()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>, DbError> {
        let sql =
            format!("SELECT {CONTAINER_COLUMNS} FROM containers ORDER BY pod_uid, name, attempt");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], container_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| {
                Ok(ContainerRecord {
                    id: r.0,
                    pod_uid: r.1,
                    name: r.2,
                    attempt: r.3 as u32,
                    image_ref: r.4,
                    image: Digest::parse(&r.5).map_err(|source| DbError::Corrupt {
                        path: self.path.clone(),
                        source,
                    })?,
                    created_at: r.6,
                })
            })
            .collect()
    }

    pub fn remove_container(&mut self, id: &str) -> Result<(), DbError> {
        let path = self.path.clone();
        let err = |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // The image was in use until now: that is its last use.
        tx.execute(
            "UPDATE images SET last_used = ?2
             WHERE digest = (SELECT image FROM image_users WHERE container_id = ?1)",
            params![id, crate::time::unix_secs_now()],
        )
        .map_err(err)?;
        tx.execute(
            "DELETE FROM image_users WHERE container_id = ?1",
            params![id],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Records a pod's current spec (after its containers were replaced for a new one).
    pub fn update_pod_spec(&mut self, uid: &str, spec: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE pods SET spec = ?2 WHERE uid = ?1",
                params![uid, spec],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn remove_pod(&mut self, uid: &str) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM pods WHERE uid = ?1", params![uid])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

pub fn new_pod_record(pod: &crate::pod::spec::PodSpec, owner: &str) -> PodRecord {
    PodRecord {
        uid: pod.uid.clone(),
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        owner: owner.to_string(),
        spec: serde_json::to_string(pod).unwrap_or_default(),
        created_at: now(),
    }
}
