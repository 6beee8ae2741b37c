//! Volumes: the sources layerlet supports, their defaults, and the ones it refuses.

use k8s_openapi::api::core::v1 as k8s;

use super::downward::downward_file;
use super::fields::{choice, exactly_one, mode, not_supported, quantity, Result};
use crate::pod::error::FieldError;
use crate::pod::quantity::QuantityKind;
use crate::pod::spec::*;

/// Every volume source Kubernetes has that layerlet does not, by its field name.
fn unsupported_volume_types(v: &k8s::Volume) -> Vec<&'static str> {
    [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name)
    .collect()
}

pub(super) fn volume(v: &k8s::Volume, path: &str, service_account: &str) -> Result<Volume> {
    let supported = [
        v.empty_dir.is_some(),
        v.host_path.is_some(),
        v.persistent_volume_claim.is_some(),
        v.config_map.is_some(),
        v.secret.is_some(),
        v.downward_api.is_some(),
        v.projected.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let unsupported = unsupported_volume_types(v);
    if supported + unsupported.len() > 1 {
        return Err(FieldError::new(
            path,
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(kind) = unsupported.first() {
        return Err(FieldError::new(
            path,
            format!("unsupported volume type {kind}"),
        ));
    }

    let source = if let Some(e) = &v.empty_dir {
        let p = format!("{path}.emptyDir");
        VolumeSource::EmptyDir {
            medium: choice(
                &format!("{p}.medium"),
                e.medium.as_deref(),
                StorageMedium::Disk,
                &[("Memory", StorageMedium::Memory)],
            )?,
            size_limit: e
                .size_limit
                .as_ref()
                .map(|q| quantity(&format!("{p}.sizeLimit"), q, QuantityKind::Bytes))
                .transpose()?,
        }
    } else if let Some(h) = &v.host_path {
        VolumeSource::HostPath {
            path: h.path.clone(),
            host_path_type: choice(
                &format!("{path}.hostPath.type"),
                h.type_.as_deref(),
                HostPathType::Unset,
                &[
                    ("DirectoryOrCreate", HostPathType::DirectoryOrCreate),
                    ("Directory", HostPathType::Directory),
                    ("FileOrCreate", HostPathType::FileOrCreate),
                    ("File", HostPathType::File),
                    ("Socket", HostPathType::Socket),
                    ("CharDevice", HostPathType::CharDevice),
                    ("BlockDevice", HostPathType::BlockDevice),
                ],
            )?,
        }
    } else if let Some(c) = &v.persistent_volume_claim {
        VolumeSource::PersistentVolumeClaim {
            claim_name: c.claim_name.clone(),
            read_only: c.read_only.unwrap_or(false),
        }
    } else if let Some(c) = &v.config_map {
        let p = format!("{path}.configMap");
        VolumeSource::ConfigMap {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &p)?,
            default_mode: default_mode(c.default_mode, &p)?,
            optional: c.optional.unwrap_or(false),
        }
    } else if let Some(s) = &v.secret {
        let p = format!("{path}.secret");
        VolumeSource::Secret {
            secret_name: s.secret_name.clone().unwrap_or_default(),
            items: key_to_paths(s.items.as_deref(), &p)?,
            default_mode: default_mode(s.default_mode, &p)?,
            optional: s.optional.unwrap_or(false),
        }
    } else if let Some(d) = &v.downward_api {
        let p = format!("{path}.downwardAPI");
        let mut items = Vec::new();
        for (i, f) in d.items.iter().flatten().enumerate() {
            items.push(downward_file(f, &format!("{p}.items[{i}]"))?);
        }
        VolumeSource::DownwardApi {
            items,
            default_mode: default_mode(d.default_mode, &p)?,
        }
    } else if let Some(pr) = &v.projected {
        let p = format!("{path}.projected");
        let mut sources = Vec::new();
        for (i, s) in pr.sources.iter().flatten().enumerate() {
            sources.push(projected_source(
                s,
                &format!("{p}.sources[{i}]"),
                service_account,
            )?);
        }
        VolumeSource::Projected {
            sources,
            default_mode: default_mode(pr.default_mode, &p)?,
        }
    } else {
        // Kubernetes defaults a volume without a source to an emptyDir.
        VolumeSource::EmptyDir {
            medium: StorageMedium::Disk,
            size_limit: None,
        }
    };
    Ok(Volume {
        name: v.name.clone(),
        source,
    })
}

/// Refuses service account tokens in a pod that comes from no API server (a file).
pub fn refuse_tokens_without_api(spec: &PodSpec) -> Result<()> {
    for (i, v) in spec.volumes.iter().enumerate() {
        let VolumeSource::Projected { sources, .. } = &v.source else {
            continue;
        };
        if let Some(j) = sources
            .iter()
            .position(|s| matches!(s, ProjectedSource::ServiceAccountToken { .. }))
        {
            return Err(not_supported(
                format!("spec.volumes[{i}].projected.sources[{j}].serviceAccountToken"),
                "there is no API server to issue service account tokens",
            ));
        }
    }
    Ok(())
}

fn projected_source(
    s: &k8s::VolumeProjection,
    path: &str,
    service_account: &str,
) -> Result<ProjectedSource> {
    if s.cluster_trust_bundle.is_some() {
        return Err(not_supported(
            format!("{path}.clusterTrustBundle"),
            "there is no API server to hold ClusterTrustBundles",
        ));
    }
    let mut found = Vec::new();
    if let Some(c) = &s.config_map {
        found.push(ProjectedSource::ConfigMap {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &format!("{path}.configMap"))?,
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(c) = &s.secret {
        found.push(ProjectedSource::Secret {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &format!("{path}.secret"))?,
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(d) = &s.downward_api {
        let mut items = Vec::new();
        for (i, f) in d.items.iter().flatten().enumerate() {
            items.push(downward_file(f, &format!("{path}.downwardAPI.items[{i}]"))?);
        }
        found.push(ProjectedSource::DownwardApi { items });
    }
    if let Some(t) = &s.service_account_token {
        let p = format!("{path}.serviceAccountToken");
        let expiration = t.expiration_seconds.unwrap_or(3600);
        // The API server's bounds: at least 10 minutes, at most 2^32 seconds.
        let Ok(expiration_seconds) = u32::try_from(expiration) else {
            return Err(FieldError::new(
                format!("{p}.expirationSeconds"),
                "may not specify a duration larger than 2^32 seconds",
            ));
        };
        if expiration_seconds < 600 {
            return Err(FieldError::new(
                format!("{p}.expirationSeconds"),
                "may not specify a duration less than 10 minutes",
            ));
        }
        found.push(ProjectedSource::ServiceAccountToken {
            service_account: service_account.to_string(),
            audience: t.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds,
            path: t.path.clone(),
        });
    }
    exactly_one(
        found,
        path,
        "configMap, secret, downwardAPI, serviceAccountToken",
    )
}

fn default_mode(value: Option<i32>, path: &str) -> Result<u32> {
    match value {
        None => Ok(DEFAULT_VOLUME_FILE_MODE),
        Some(m) => mode(&format!("{path}.defaultMode"), m),
    }
}

fn key_to_paths(items: Option<&[k8s::KeyToPath]>, path: &str) -> Result<Vec<KeyToPath>> {
    let mut out = Vec::new();
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        out.push(KeyToPath {
            key: item.key.clone(),
            path: item.path.clone(),
            mode: item
                .mode
                .map(|m| mode(&format!("{path}.items[{i}].mode"), m))
                .transpose()?,
        });
    }
    Ok(out)
}
