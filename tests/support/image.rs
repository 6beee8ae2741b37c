//! Image configs and manifests built from [`Layer`]s; pushing them to a registry with
//! oci-client; writing them as an OCI image layout directory or an `oci-archive:` tarball.
//!
//! The push functions are async. From a synchronous test, wrap them in [`block_on`].

use std::future::Future;
use std::path::Path;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Map, Value};

use super::layer::{Compression, Layer, LayerBuilder};
use super::sha256_digest;

pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation that names an image in an OCI layout's index.json.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `created` of every config and history entry: the same instant as the layers' mtime.
pub const CREATED: &str = "2023-11-14T22:13:20Z";

/// What to put in an image. `Default` gives no layers, empty config, this machine's
/// architecture, `os: linux`, OCI media types.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// In order, bottom layer first.
    pub layers: Vec<Layer>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Paths declared as `VOLUME`.
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    /// `(created_by, empty_layer)` per history entry. `None`: one `"layer N"` entry (N from 1)
    /// per layer, none empty.
    pub history: Option<Vec<(String, bool)>>,
    /// OCI/Go architecture name (`amd64`, `arm64`, ...).
    pub architecture: String,
    pub os: String,
    /// Docker schema 2 manifest and config media types instead of OCI ones. Layer media types
    /// are left as they are (see [`Layer::with_docker_media_type`]).
    pub docker_schema2: bool,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            layers: Vec::new(),
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            user: None,
            working_dir: None,
            volumes: Vec::new(),
            stop_signal: None,
            history: None,
            architecture: host_oci_arch().to_string(),
            os: "linux".to_string(),
            docker_schema2: false,
        }
    }
}

impl ImageSpec {
    /// One gzip busybox layer, a `PATH` and `cmd ["sh"]`: the smallest runnable image.
    pub fn busybox() -> ImageSpec {
        ImageSpec {
            layers: vec![LayerBuilder::busybox_layer(Compression::Gzip)],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: Some(vec!["sh".into()]),
            ..ImageSpec::default()
        }
    }

    pub fn manifest_media_type(&self) -> &'static str {
        if self.docker_schema2 {
            MEDIA_TYPE_DOCKER_MANIFEST
        } else {
            MEDIA_TYPE_OCI_MANIFEST
        }
    }

    pub fn config_media_type(&self) -> &'static str {
        if self.docker_schema2 {
            MEDIA_TYPE_DOCKER_CONFIG
        } else {
            MEDIA_TYPE_OCI_CONFIG
        }
    }

    /// The image config JSON bytes (`rootfs.diff_ids` in layer order).
    pub fn config_json(&self) -> Vec<u8> {
        let mut config = Map::new();
        if !self.env.is_empty() {
            config.insert("Env".into(), json!(self.env));
        }
        if let Some(entrypoint) = &self.entrypoint {
            config.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &self.cmd {
            config.insert("Cmd".into(), json!(cmd));
        }
        if let Some(user) = &self.user {
            config.insert("User".into(), json!(user));
        }
        if let Some(dir) = &self.working_dir {
            config.insert("WorkingDir".into(), json!(dir));
        }
        if !self.volumes.is_empty() {
            let volumes: Map<String, Value> = self
                .volumes
                .iter()
                .map(|v| (v.clone(), json!({})))
                .collect();
            config.insert("Volumes".into(), Value::Object(volumes));
        }
        if let Some(signal) = &self.stop_signal {
            config.insert("StopSignal".into(), json!(signal));
        }

        let history: Vec<Value> = match &self.history {
            Some(entries) => entries
                .iter()
                .map(|(created_by, empty)| {
                    let mut h = json!({ "created": CREATED, "created_by": created_by });
                    if *empty {
                        h["empty_layer"] = json!(true);
                    }
                    h
                })
                .collect(),
            None => (1..=self.layers.len())
                .map(|n| json!({ "created": CREATED, "created_by": format!("layer {n}") }))
                .collect(),
        };

        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let image = json!({
            "created": CREATED,
            "architecture": self.architecture,
            "os": self.os,
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        serde_json::to_vec(&image).expect("image: serializing config failed")
    }

    /// The manifest JSON bytes for a config blob with this digest and size.
    pub fn manifest_json(&self, config_digest: &str, config_size: usize) -> Vec<u8> {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({ "mediaType": l.media_type, "digest": l.digest, "size": l.size() }))
            .collect();
        // `mediaType` must be in the body and agree with the Content-Type of the push:
        // distribution >= 2.8 rejects manifests whose body and header disagree.
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type(),
            "config": {
                "mediaType": self.config_media_type(),
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        });
        serde_json::to_vec(&manifest).expect("image: serializing manifest failed")
    }

    /// Config and manifest, with their digests, without pushing anything.
    pub fn render(&self) -> PushedImage {
        let config_bytes = self.config_json();
        let config_digest = sha256_digest(&config_bytes);
        let manifest_bytes = self.manifest_json(&config_digest, config_bytes.len());
        PushedImage {
            manifest_digest: sha256_digest(&manifest_bytes),
            config_digest,
            manifest_bytes,
            config_bytes,
            manifest_media_type: self.manifest_media_type().to_string(),
        }
    }
}

/// An image as stored: `manifest_digest` is the sha256 of exactly `manifest_bytes`.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub manifest_digest: String,
    pub config_digest: String,
    pub manifest_bytes: Vec<u8>,
    pub config_bytes: Vec<u8>,
    pub manifest_media_type: String,
}

impl PushedImage {
    pub fn manifest_size(&self) -> u64 {
        self.manifest_bytes.len() as u64
    }
}

/// Index flavour for [`push_index_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// `application/vnd.oci.image.index.v1+json`
    Oci,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
}

/// This machine's architecture in OCI/Go spelling (x86_64 -> amd64, aarch64 -> arm64).
pub fn host_oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => panic!("host_oci_arch: no OCI name known for {other}"),
    }
}

/// An oci-client `Client` that speaks plain HTTP to `addr` (and HTTPS elsewhere).
pub fn client_for(addr: &str) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![addr.to_string()]),
        ..ClientConfig::default()
    })
}

/// Parses `addr/repo:tag` into an oci-client `Reference`.
pub fn reference(addr: &str, repo: &str, tag: &str) -> Reference {
    let s = format!("{addr}/{repo}:{tag}");
    s.parse()
        .unwrap_or_else(|e| panic!("image: {s:?} is not a valid reference: {e}"))
}

/// Pushes the layers, config and manifest of `spec` as `repo:tag` to an anonymous registry.
pub async fn push_image(addr: &str, repo: &str, tag: &str, spec: &ImageSpec) -> PushedImage {
    push_image_as(addr, repo, tag, spec, RegistryAuth::Anonymous).await
}

/// [`push_image`] with HTTP basic auth.
pub async fn push_image_with_auth(
    addr: &str,
    repo: &str,
    tag: &str,
    spec: &ImageSpec,
    user: &str,
    password: &str,
) -> PushedImage {
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    push_image_as(addr, repo, tag, spec, auth).await
}

async fn push_image_as(
    addr: &str,
    repo: &str,
    tag: &str,
    spec: &ImageSpec,
    auth: RegistryAuth,
) -> PushedImage {
    let image = spec.render();
    let (client, reference) = authed_client(addr, repo, tag, &auth).await;
    for (i, layer) in spec.layers.iter().enumerate() {
        client
            .push_blob(&reference, layer.blob.clone(), &layer.digest)
            .await
            .unwrap_or_else(|e| {
                panic!("push {reference}: layer {i} ({}) failed: {e}", layer.digest)
            });
    }
    client
        .push_blob(&reference, image.config_bytes.clone(), &image.config_digest)
        .await
        .unwrap_or_else(|e| panic!("push {reference}: config blob failed: {e}"));
    push_manifest_bytes(
        &client,
        &reference,
        &image.manifest_bytes,
        &image.manifest_media_type,
    )
    .await;
    image
}

/// Pushes an OCI image index tagged `repo:tag` to an anonymous registry. Each entry is
/// `(image, os, architecture, variant)`; the images must already be in `repo` (distribution
/// refuses an index whose manifests it does not have). Returns the index digest.
pub async fn push_index(
    addr: &str,
    repo: &str,
    tag: &str,
    entries: &[(PushedImage, &str, &str, Option<&str>)],
) -> String {
    push_index_with(addr, repo, tag, entries, IndexKind::Oci, None).await
}

/// [`push_index`] with a choice of index flavour and optional basic auth `(user, password)`.
pub async fn push_index_with(
    addr: &str,
    repo: &str,
    tag: &str,
    entries: &[(PushedImage, &str, &str, Option<&str>)],
    kind: IndexKind,
    basic_auth: Option<(&str, &str)>,
) -> String {
    let (bytes, media_type) = index_json(entries, kind);
    let auth = match basic_auth {
        Some((u, p)) => RegistryAuth::Basic(u.to_string(), p.to_string()),
        None => RegistryAuth::Anonymous,
    };
    let (client, reference) = authed_client(addr, repo, tag, &auth).await;
    push_manifest_bytes(&client, &reference, &bytes, media_type).await;
    sha256_digest(&bytes)
}

/// Index/manifest-list JSON bytes and their media type.
pub fn index_json(
    entries: &[(PushedImage, &str, &str, Option<&str>)],
    kind: IndexKind,
) -> (Vec<u8>, &'static str) {
    let media_type = match kind {
        IndexKind::Oci => MEDIA_TYPE_OCI_INDEX,
        IndexKind::DockerManifestList => MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    };
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(image, os, arch, variant)| {
            let mut platform = json!({ "os": os, "architecture": arch });
            if let Some(v) = variant {
                platform["variant"] = json!(v);
            }
            json!({
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest,
                "size": image.manifest_size(),
                "platform": platform,
            })
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": media_type, "manifests": manifests });
    (
        serde_json::to_vec(&index).expect("image: serializing index failed"),
        media_type,
    )
}

async fn authed_client(
    addr: &str,
    repo: &str,
    tag: &str,
    auth: &RegistryAuth,
) -> (Client, Reference) {
    let client = client_for(addr);
    let reference = reference(addr, repo, tag);
    // `auth` stores the credentials for the registry and probes `/v2/`: with a `Basic`
    // challenge the client then sends basic auth on every request; push_blob and
    // push_manifest_raw take no auth argument of their own.
    client
        .auth(&reference, auth, RegistryOperation::Push)
        .await
        .unwrap_or_else(|e| panic!("push {reference}: authenticating failed: {e}"));
    (client, reference)
}

/// PUTs `bytes` verbatim as the manifest, so the digest the registry stores is ours.
async fn push_manifest_bytes(
    client: &Client,
    reference: &Reference,
    bytes: &[u8],
    media_type: &str,
) {
    let content_type = media_type
        .parse()
        .unwrap_or_else(|e| panic!("image: {media_type:?} is not a header value: {e}"));
    let location = client
        .push_manifest_raw(reference, bytes.to_vec(), content_type)
        .await
        .unwrap_or_else(|e| panic!("push {reference}: manifest ({media_type}) failed: {e}"));
    let digest = sha256_digest(bytes);
    assert!(
        location.contains(&digest),
        "push {reference}: registry stored the manifest at {location}, expected digest {digest}"
    );
}

/// Runs `fut` to completion on a fresh current-thread tokio runtime in a scoped thread.
/// Works both from plain `#[test]`s and from inside another runtime (where a nested
/// `block_on` would panic), at the cost of blocking the calling thread.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("block_on: building a tokio runtime failed")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Every blob of `spec` (layers, config, manifest) as `(digest, bytes)`, plus the rendering.
fn blobs(spec: &ImageSpec) -> (PushedImage, Vec<(String, Vec<u8>)>) {
    let image = spec.render();
    let mut blobs: Vec<(String, Vec<u8>)> = spec
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.blob.clone()))
        .collect();
    blobs.push((image.config_digest.clone(), image.config_bytes.clone()));
    blobs.push((image.manifest_digest.clone(), image.manifest_bytes.clone()));
    // The same layer may appear twice in one image; a layout stores it once.
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);
    (image, blobs)
}

const OCI_LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// index.json of a one-image layout, the image named `ref_name`.
fn layout_index(image: &PushedImage, ref_name: &str) -> Vec<u8> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_INDEX,
        "manifests": [{
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest,
            "size": image.manifest_size(),
            "annotations": { ANNOTATION_REF_NAME: ref_name },
        }],
    });
    serde_json::to_vec(&index).expect("image: serializing layout index failed")
}

/// Writes `spec` as an OCI image layout in `dir` (created if missing): `oci-layout`,
/// `index.json` naming the image `ref_name`, `blobs/sha256/<hex>`. An existing index.json is
/// replaced.
pub fn write_oci_layout(dir: &Path, spec: &ImageSpec, ref_name: &str) -> PushedImage {
    let (image, blobs) = blobs(spec);
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir)
        .unwrap_or_else(|e| panic!("oci layout: creating {} failed: {e}", blob_dir.display()));
    for (digest, bytes) in &blobs {
        let path = blob_dir.join(digest.trim_start_matches("sha256:"));
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("oci layout: writing {} failed: {e}", path.display()));
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("oci layout: writing {} failed: {e}", path.display()));
    };
    write("oci-layout", OCI_LAYOUT_FILE.as_bytes());
    write("index.json", &layout_index(&image, ref_name));
    image
}

/// Writes `spec` as an uncompressed tar of an OCI layout (what `skopeo copy ...
/// oci-archive:PATH:REF` produces): entries `blobs/`, `blobs/sha256/`, the blobs,
/// `index.json`, `oci-layout`, with relative names.
pub fn write_oci_archive(path: &Path, spec: &ImageSpec, ref_name: &str) -> PushedImage {
    let (image, blobs) = blobs(spec);
    let mut tar = LayerBuilder::new();
    tar.dir("blobs", 0o755).dir("blobs/sha256", 0o755);
    for (digest, bytes) in &blobs {
        let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        tar.file(&name, bytes, 0o644);
    }
    tar.file("index.json", layout_index(&image, ref_name), 0o644)
        .file("oci-layout", OCI_LAYOUT_FILE, 0o644);
    std::fs::write(path, tar.build_tar())
        .unwrap_or_else(|e| panic!("oci archive: writing {} failed: {e}", path.display()));
    image
}
