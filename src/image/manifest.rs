//! The JSON documents of an image: index (manifest list), manifest and config. Parsed
//! leniently where registries differ (Docker schema 2 and OCI) and strictly where a wrong
//! value would be acted on (digests, sizes, diff_ids).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::digest::{Digest, DigestError};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const ACCEPTED_MANIFESTS: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} of {image} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        image: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{image}: Docker schema 1 manifests are not supported (deprecated since 2017); push the image again with a current tool")]
    Schema1 { image: String },
    #[error("{image}: {field}: {source}")]
    BadDigest {
        image: String,
        field: String,
        #[source]
        source: DigestError,
    },
    #[error("{image}: the config lists {diff_ids} diff_ids (rootfs.diff_ids) but the manifest has {layers} layers")]
    LayerCount {
        image: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("{image}: no manifest for platform {wanted} in the index (it has: {available}); pick one with --platform")]
    NoPlatform {
        image: String,
        wanted: String,
        available: String,
    },
    #[error("invalid platform {value:?}: expected OS/ARCH[/VARIANT], for example linux/amd64 or linux/arm64/v8")]
    BadPlatform { value: String },
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(value: &str) -> Result<Self, ManifestError> {
        let parts: Vec<&str> = value.split('/').collect();
        let bad = || ManifestError::BadPlatform {
            value: value.to_string(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }

    /// The platform this node runs, in OCI's (Go's) names.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && match (&self.variant, &candidate.variant) {
                (Some(want), Some(have)) => want == have,
                // arm64 images are often tagged v8 while hosts ask for none.
                (None, _) => true,
                (Some(want), None) => self.architecture == "arm64" && want == "v8",
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default, rename = "fsLayers")]
    fs_layers: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Index(Vec<Descriptor>),
    Image(ImageManifest),
}

#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub fn parse_manifest(image: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "manifest",
        image: image.to_string(),
        source,
    })?;
    if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
        return Err(ManifestError::Schema1 {
            image: image.to_string(),
        });
    }
    let check = |field: String, d: &Descriptor| {
        Digest::parse(&d.digest)
            .map(|_| ())
            .map_err(|source| ManifestError::BadDigest {
                image: image.to_string(),
                field,
                source,
            })
    };
    if let Some(manifests) = raw.manifests {
        for (i, m) in manifests.iter().enumerate() {
            check(format!("manifests[{i}].digest"), m)?;
        }
        return Ok(Manifest::Index(manifests));
    }
    let config = raw.config.ok_or_else(|| ManifestError::Json {
        what: "manifest",
        image: image.to_string(),
        source: serde::de::Error::missing_field("config"),
    })?;
    check("config.digest".to_string(), &config)?;
    let layers = raw.layers.unwrap_or_default();
    for (i, l) in layers.iter().enumerate() {
        check(format!("layers[{i}].digest"), l)?;
    }
    Ok(Manifest::Image(ImageManifest {
        media_type: raw.media_type.unwrap_or_else(|| OCI_MANIFEST.to_string()),
        config,
        layers,
    }))
}

/// Picks the index entry for `wanted`; entries without a platform (attestations) never match.
pub fn select_platform<'a>(
    image: &str,
    entries: &'a [Descriptor],
    wanted: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    entries
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .ok_or_else(|| ManifestError::NoPlatform {
            image: image.to_string(),
            wanted: wanted.to_string(),
            available: entries
                .iter()
                .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct HistoryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

pub fn parse_config(image: &str, bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "config",
        image: image.to_string(),
        source,
    })
}

impl ImageConfig {
    pub fn diff_ids(&self, image: &str) -> Result<Vec<Digest>, ManifestError> {
        self.rootfs
            .diff_ids
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Digest::parse(d).map_err(|source| ManifestError::BadDigest {
                    image: image.to_string(),
                    field: format!("rootfs.diff_ids[{i}]"),
                    source,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn platform_selection_picks_matching_entry_and_names_the_alternatives() {
        let entries = vec![
            entry("linux", "arm64", Some("v8"), 1),
            entry("linux", "amd64", None, 2),
        ];
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            select_platform("img", &entries, &amd).unwrap().digest,
            entries[1].digest
        );
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            select_platform("img", &entries, &arm).unwrap().digest,
            entries[0].digest
        );
        let err = select_platform("img", &entries, &Platform::parse("linux/s390x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    }

    #[test]
    fn schema1_manifests_are_refused_with_a_reason() {
        let err = parse_manifest("img", br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap_err();
        assert!(err.to_string().contains("schema 1"));
    }

    #[test]
    fn bad_platform_strings_are_refused() {
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
