//! `image import`: an OCI image layout directory, or an `oci-archive` tar of one, verified
//! exactly as a pull is (every blob against its digest, every layer against its diff_id).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::content::verify;
use super::digest::Digest;
use super::manifest::{
    parse_manifest, select_platform, Descriptor, Manifest, ManifestError, Platform,
};
use super::registry::MAX_DOCUMENT_BYTES;
use super::store::{ImageToInstall, InstalledImage, LayerSource, Store, StoreError};
use super::unpack::safe_components;
use crate::reference::ImageRef;
use crate::sys::fs::{remove_tree, FsError};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: not an OCI image layout ({reason}); expected a directory or oci-archive tar with oci-layout, index.json and blobs/")]
    NotLayout { path: PathBuf, reason: String },
    #[error("{path}: archive entry {entry:?} refused: {reason}")]
    BadArchiveEntry {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{path}: the layout holds no image manifests")]
    Empty { path: PathBuf },
    #[error("{path}: blob {digest}: {reason}")]
    Blob {
        path: PathBuf,
        digest: String,
        reason: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Imports every image of the layout (or the one named `--name` picks), returning what was
/// installed.
pub async fn import(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Vec<InstalledImage>, ImportError> {
    let meta = fs::metadata(path).map_err(|e| ImportError::NotLayout {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.is_dir() {
        return import_layout(store, path, path, name, platform).await;
    }
    let staging = store
        .layer_store()
        .new_unpack_dir()
        .map_err(StoreError::from)?;
    let result = async {
        extract_archive(path, &staging)?;
        import_layout(store, &staging, path, name, platform).await
    }
    .await;
    if let Err(e) = remove_tree(&staging) {
        tracing::warn!(error = %e, "could not remove import staging directory");
    }
    result
}

/// Extracts only regular files and directories, by safe relative names.
fn extract_archive(archive: &Path, dest: &Path) -> Result<(), ImportError> {
    let file = File::open(archive).map_err(|e| FsError::io("open", archive, e))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let not_layout = |reason: String| ImportError::NotLayout {
        path: archive.to_path_buf(),
        reason,
    };
    let entries = tar.entries().map_err(|e| not_layout(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_layout(format!("reading tar: {e}")))?;
        let name_bytes = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let refuse = |reason: &str| ImportError::BadArchiveEntry {
            path: archive.to_path_buf(),
            entry: name.clone(),
            reason: reason.to_string(),
        };
        let parts = safe_components(&name, &name_bytes).map_err(|e| refuse(&e.to_string()))?;
        let target: PathBuf = parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target)
                    .map_err(|e| FsError::io("create directory", &target, e))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if parts.is_empty() {
                    return Err(refuse("a file cannot replace the archive root"));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| FsError::io("create directory", parent, e))?;
                }
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|e| FsError::io("create", &target, e))?;
                io::copy(&mut entry, &mut out).map_err(|e| FsError::io("write", &target, e))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(refuse(&format!(
                    "type {other:?} has no place in an OCI archive"
                )))
            }
        }
    }
    Ok(())
}

/// Reads a small blob of the layout without following symlinks, verified.
fn read_blob(
    layout: &Path,
    shown: &Path,
    desc: &Descriptor,
) -> Result<(Digest, Vec<u8>), ImportError> {
    let bad = |reason: String| ImportError::Blob {
        path: shown.to_path_buf(),
        digest: desc.digest.clone(),
        reason,
    };
    let digest = Digest::parse(&desc.digest).map_err(|e| bad(e.to_string()))?;
    if desc.size > MAX_DOCUMENT_BYTES {
        return Err(bad(format!(
            "{} bytes is too large for a manifest or config",
            desc.size
        )));
    }
    let path = layout.join("blobs/sha256").join(digest.hex());
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    verify(&digest, Some(desc.size), &bytes).map_err(|e| bad(e.to_string()))?;
    Ok((digest, bytes))
}

async fn import_layout(
    store: &Store,
    layout: &Path,
    shown: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Vec<InstalledImage>, ImportError> {
    let not_layout = |reason: String| ImportError::NotLayout {
        path: shown.to_path_buf(),
        reason,
    };
    let marker =
        fs::read(layout.join("oci-layout")).map_err(|e| not_layout(format!("oci-layout: {e}")))?;
    let marker: serde_json::Value =
        serde_json::from_slice(&marker).map_err(|e| not_layout(format!("oci-layout: {e}")))?;
    if marker
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(not_layout("oci-layout has no imageLayoutVersion".into()));
    }
    let index_bytes =
        fs::read(layout.join("index.json")).map_err(|e| not_layout(format!("index.json: {e}")))?;
    let display = shown.display().to_string();
    let Manifest::Index(entries) = parse_manifest(&display, &index_bytes)? else {
        return Err(not_layout("index.json is not an image index".into()));
    };
    let wanted = platform.cloned().unwrap_or_else(Platform::host);
    let mut installed = Vec::new();
    for entry in &entries {
        let ref_name = entry.annotations.get(REF_NAME).cloned();
        // The name recorded: --name wins; else the layout's ref name, normalised.
        let names: Vec<String> = match (name, &ref_name) {
            (Some(n), _) => vec![ImageRef::parse(n)
                .map_err(|e| not_layout(e.to_string()))?
                .normalised()],
            (None, Some(r)) => ImageRef::parse(r)
                .map(|r| vec![r.normalised()])
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        let (digest, bytes) = read_blob(layout, shown, entry)?;
        let (manifest_desc, manifest_bytes, manifest_digest, index) =
            match parse_manifest(&display, &bytes)? {
                Manifest::Image(_) => (entry.clone(), bytes, digest, None),
                Manifest::Index(inner) => {
                    let chosen = select_platform(&display, &inner, &wanted)?.clone();
                    let (d, b) = read_blob(layout, shown, &chosen)?;
                    (chosen, b, d, Some((bytes, digest)))
                }
            };
        let Manifest::Image(manifest) = parse_manifest(&display, &manifest_bytes)? else {
            return Err(not_layout("nested indexes are not supported".into()));
        };
        let config_desc = manifest.config.clone();
        let (_, config_bytes) = read_blob(layout, shown, &config_desc)?;
        let image = ImageToInstall {
            display_name: names.first().cloned().unwrap_or_else(|| display.clone()),
            names,
            manifest,
            manifest_bytes,
            manifest_digest,
            index,
            config_bytes,
            platform: manifest_desc
                .platform
                .map(|p| p.to_string())
                .unwrap_or_default(),
        };
        installed.push(
            store
                .install(LayerSource::Layout(layout.join("blobs/sha256")), image)
                .await?,
        );
        if name.is_some() {
            break;
        }
    }
    if installed.is_empty() {
        return Err(ImportError::Empty {
            path: shown.to_path_buf(),
        });
    }
    Ok(installed)
}
