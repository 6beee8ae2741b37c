//! Pod and container records in the node's metadata database (the same SQLite file as the
//! image store: one transaction can tie a container to the image it uses).

use rusqlite::{params, Row};
use serde::Serialize;

use crate::image::digest::Digest;
use crate::image::users;
use crate::meta::{Db, MetaError};
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

const POD_COLUMNS: &str = "uid, namespace, name, owner, spec, created_at";

fn pod_row(r: &Row<'_>) -> rusqlite::Result<PodRecord> {
    Ok(PodRecord {
        uid: r.get(0)?,
        namespace: r.get(1)?,
        name: r.get(2)?,
        owner: r.get(3)?,
        spec: r.get(4)?,
        created_at: r.get(5)?,
    })
}

const CONTAINER_COLUMNS: &str = "id, pod_uid, name, attempt, image_ref, image, created_at";

fn container_row(r: &Row<'_>) -> rusqlite::Result<ContainerRecord> {
    Ok(ContainerRecord {
        id: r.get(0)?,
        pod_uid: r.get(1)?,
        name: r.get(2)?,
        attempt: r.get::<_, i64>(3)? as u32,
        image_ref: r.get(4)?,
        image: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl Db {
    pub fn insert_pod(&mut self, pod: &PodRecord) -> Result<(), MetaError> {
        self.sql()
            .exec(
                &format!("INSERT INTO pods({POD_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6)"),
                params![
                    pod.uid,
                    pod.namespace,
                    pod.name,
                    pod.owner,
                    pod.spec,
                    pod.created_at
                ],
            )
            .map(|_| ())
    }

    pub fn pods(&self) -> Result<Vec<PodRecord>, MetaError> {
        self.sql().rows(
            &format!("SELECT {POD_COLUMNS} FROM pods ORDER BY namespace, name"),
            [],
            pod_row,
        )
    }

    pub fn pod_by_name(&self, namespace: &str, name: &str) -> Result<Option<PodRecord>, MetaError> {
        self.sql().row(
            &format!("SELECT {POD_COLUMNS} FROM pods WHERE namespace = ?1 AND name = ?2"),
            params![namespace, name],
            pod_row,
        )
    }

    /// Records a container and ties it to its image (so `rmi` and `gc` leave that image be).
    pub fn insert_container(&mut self, c: &ContainerRecord) -> Result<(), MetaError> {
        self.write(|tx| {
            tx.exec(
                &format!(
                    "INSERT INTO containers({CONTAINER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"
                ),
                params![
                    c.id,
                    c.pod_uid,
                    c.name,
                    c.attempt,
                    c.image_ref,
                    c.image,
                    c.created_at
                ],
            )?;
            users::hold(tx, &c.id, &c.image)
        })
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>, MetaError> {
        self.sql().rows(
            &format!("SELECT {CONTAINER_COLUMNS} FROM containers ORDER BY pod_uid, name, attempt"),
            [],
            container_row,
        )
    }

    pub fn remove_container(&mut self, id: &str) -> Result<(), MetaError> {
        self.write(|tx| {
            users::release(tx, id)?;
            tx.exec("DELETE FROM containers WHERE id = ?1", params![id])
                .map(|_| ())
        })
    }

    /// Records a pod's current spec (after its containers were replaced for a new one).
    pub fn update_pod_spec(&mut self, uid: &str, spec: &str) -> Result<(), MetaError> {
        self.sql()
            .exec(
                "UPDATE pods SET spec = ?2 WHERE uid = ?1",
                params![uid, spec],
            )
            .map(|_| ())
    }

    pub fn remove_pod(&mut self, uid: &str) -> Result<(), MetaError> {
        self.sql()
            .exec("DELETE FROM pods WHERE uid = ?1", params![uid])
            .map(|_| ())
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
