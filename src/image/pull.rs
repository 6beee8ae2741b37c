//! `pull`: resolve a reference on a registry to one platform's manifest, then install it.

use std::sync::Arc;

use oci_client::Reference;

use super::manifest::{parse_manifest, select_platform, Manifest, ManifestError, Platform};
use super::registry::{RegistryClient, RegistryError, RegistryOptions};
use super::store::{ImageToInstall, InstalledImage, LayerSource, Store, StoreError};
use crate::reference::ImageRef;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{image}: the index entry for {platform} points at another index; nested indexes are not supported")]
    NestedIndex { image: String, platform: String },
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    /// Platform to pick from an index; the node's own when None.
    pub platform: Option<Platform>,
}

pub async fn pull(
    store: &Store,
    image: &ImageRef,
    options: &PullOptions,
) -> Result<InstalledImage, PullError> {
    let reference = Reference::from(image);
    let display = image.normalised();
    let client = RegistryClient::connect(&reference, &options.registry).await?;
    let (bytes, digest) = client.manifest(&reference).await?;
    let wanted = options.platform.clone().unwrap_or_else(Platform::host);
    let (manifest, manifest_bytes, manifest_digest, index, platform) =
        match parse_manifest(&display, &bytes)? {
            Manifest::Image(m) => (m, bytes, digest, None, String::new()),
            Manifest::Index(entries) => {
                let entry = select_platform(&display, &entries, &wanted)?;
                let platform = entry
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                let (inner_bytes, inner_digest) = client.manifest(&by_digest).await?;
                match parse_manifest(&display, &inner_bytes)? {
                    Manifest::Image(m) => (
                        m,
                        inner_bytes,
                        inner_digest,
                        Some((bytes, digest)),
                        platform,
                    ),
                    Manifest::Index(_) => {
                        return Err(PullError::NestedIndex {
                            image: display,
                            platform,
                        })
                    }
                }
            }
        };
    let config_digest =
        super::digest::Digest::parse(&manifest.config.digest).map_err(|source| {
            ManifestError::BadDigest {
                image: display.clone(),
                field: "config.digest".into(),
                source,
            }
        })?;
    let config_bytes = client
        .small_blob(&config_digest, manifest.config.size)
        .await?;
    let image = ImageToInstall {
        display_name: display.clone(),
        names: vec![display],
        manifest,
        manifest_bytes,
        manifest_digest,
        index,
        config_bytes,
        platform,
    };
    Ok(store
        .install(LayerSource::Registry(Arc::new(client)), image)
        .await?)
}
