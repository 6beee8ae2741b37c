//! In-memory layer tarballs: well-formed entries, OCI whiteouts, xattrs, and hostile raw entries.

use std::io::Write;

use tar::{EntryType, Header};

use super::sha256_digest;

/// mtime given to every entry unless [`LayerBuilder::mtime`] changed it, so that the same
/// builder calls always produce the same bytes and digests.
pub const DEFAULT_MTIME: u64 = 1_700_000_000;

pub const MEDIA_TYPE_OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_TYPE_DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Commands that [`LayerBuilder::busybox`] links to `busybox`.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "touch", "rm", "mkdir", "stat",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// A finished layer blob and the digests an image config and manifest need.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The bytes that go to the registry (compressed unless `Compression::None`).
    pub blob: Vec<u8>,
    pub media_type: String,
    /// `sha256:<hex>` of `blob`: the manifest's layer digest.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    pub uncompressed_size: u64,
}

impl Layer {
    /// Wraps an already-built tar stream (e.g. from [`LayerBuilder::build_tar`], possibly
    /// tampered with) into a layer.
    pub fn from_tar(tar: Vec<u8>, compression: Compression) -> Layer {
        let diff_id = sha256_digest(&tar);
        let uncompressed_size = tar.len() as u64;
        let (blob, media_type) = match compression {
            Compression::None => (tar, MEDIA_TYPE_OCI_TAR),
            Compression::Gzip => {
                // flate2 writes mtime 0 and no file name in the gzip header: deterministic.
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&tar).expect("layer: gzip compression failed");
                (
                    enc.finish().expect("layer: finishing gzip stream failed"),
                    MEDIA_TYPE_OCI_GZIP,
                )
            }
            Compression::Zstd => (
                zstd::encode_all(&tar[..], 3).expect("layer: zstd compression failed"),
                MEDIA_TYPE_OCI_ZSTD,
            ),
        };
        Layer {
            digest: sha256_digest(&blob),
            blob,
            media_type: media_type.to_string(),
            diff_id,
            uncompressed_size,
        }
    }

    /// Switches to the Docker schema 2 media type: `...rootfs.diff.tar.gzip` for gzip,
    /// `...rootfs.diff.tar` for uncompressed. Docker has no zstd layer type, so a zstd layer
    /// keeps its OCI media type.
    pub fn with_docker_media_type(mut self) -> Layer {
        match self.media_type.as_str() {
            MEDIA_TYPE_OCI_GZIP => self.media_type = MEDIA_TYPE_DOCKER_GZIP.to_string(),
            MEDIA_TYPE_OCI_TAR => self.media_type = MEDIA_TYPE_DOCKER_TAR.to_string(),
            _ => {}
        }
        self
    }

    /// Size of `blob` (the manifest descriptor's `size`).
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }
}

/// One tar entry waiting to be written. Names are raw bytes so hostile ones survive untouched.
#[derive(Debug, Clone)]
struct Entry {
    name: Vec<u8>,
    kind: EntryType,
    link: Vec<u8>,
    data: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    device: Option<(u32, u32)>,
    /// PAX extended-header records written in an `x` entry right before this one.
    pax: Vec<(String, Vec<u8>)>,
}

/// Builds a layer tar in memory, entries in the order they were added.
///
/// The named methods (`dir`, `file`, ...) refuse absolute paths and `..` components, so a
/// test does not make a hostile entry by accident; use [`LayerBuilder::raw`] for those.
/// Paths are written as given (no `./` prefix); directories get a trailing `/`.
#[derive(Debug, Clone)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
    mtime: u64,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder {
            entries: Vec::new(),
            mtime: DEFAULT_MTIME,
        }
    }

    /// A layer with just [`LayerBuilder::busybox`]'s contents.
    pub fn busybox_layer(compression: Compression) -> Layer {
        let mut b = LayerBuilder::new();
        b.busybox();
        b.build(compression)
    }

    /// Sets the mtime of entries added from now on.
    pub fn mtime(&mut self, mtime: u64) -> &mut Self {
        self.mtime = mtime;
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut name = checked(path).trim_end_matches('/').to_string();
        name.push('/');
        self.push(
            name.into_bytes(),
            EntryType::Directory,
            b"",
            b"",
            mode,
            uid,
            gid,
        )
    }

    pub fn file(&mut self, path: &str, data: impl AsRef<[u8]>, mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: impl AsRef<[u8]>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let name = checked(path).as_bytes().to_vec();
        self.push(name, EntryType::Regular, b"", data.as_ref(), mode, uid, gid)
    }

    /// Symlink `path -> target`; the target is written verbatim (relative or absolute).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let name = checked(path).as_bytes().to_vec();
        self.push(
            name,
            EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
            0,
            0,
        )
    }

    /// Hard link `path` to `target`, an earlier entry's path in this archive.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let name = checked(path).as_bytes().to_vec();
        let target = checked(target).as_bytes().to_vec();
        self.push(name, EntryType::Link, &target, b"", 0o644, 0, 0)
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        let name = checked(path).as_bytes().to_vec();
        self.push(name, EntryType::Char, b"", b"", 0o666, 0, 0);
        self.last_mut().device = Some((major, minor));
        self
    }

    pub fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        let name = checked(path).as_bytes().to_vec();
        self.push(name, EntryType::Fifo, b"", b"", mode, 0, 0)
    }

    /// OCI whiteout for `path` (`dir/NAME` becomes the empty file `dir/.wh.NAME`): deletes
    /// `path` from the layers below.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let path = checked(path).trim_end_matches('/');
        let name = match path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/.wh.{base}"),
            None => format!(".wh.{path}"),
        };
        self.push(name.into_bytes(), EntryType::Regular, b"", b"", 0o644, 0, 0)
    }

    /// OCI opaque-directory marker `dir/.wh..wh..opq`: hides everything below `dir` in the
    /// lower layers. `""` or `"."` mean the layer root.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        let dir = checked(dir).trim_end_matches('/');
        let name = if dir.is_empty() || dir == "." {
            ".wh..wh..opq".to_string()
        } else {
            format!("{dir}/.wh..wh..opq")
        };
        self.push(name.into_bytes(), EntryType::Regular, b"", b"", 0o644, 0, 0)
    }

    /// Adds extended attribute `key` (e.g. `user.foo`, `security.capability`) to the most
    /// recently added entry named `path`, as a PAX `SCHILY.xattr.KEY` record.
    pub fn xattr(&mut self, path: &str, key: &str, value: impl AsRef<[u8]>) -> &mut Self {
        let path = path.trim_end_matches('/');
        let entry = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| {
                let name = e.name.strip_suffix(b"/").unwrap_or(&e.name);
                name == path.as_bytes()
            })
            .unwrap_or_else(|| panic!("layer.xattr: no entry {path:?} added before the xattr"));
        entry
            .pax
            .push((format!("SCHILY.xattr.{key}"), value.as_ref().to_vec()));
        self
    }

    /// Adds an arbitrary PAX record (e.g. `path` or `linkpath`, which override the header's
    /// names in readers that honour PAX) to the most recently added entry.
    pub fn pax_on_last(&mut self, key: &str, value: impl AsRef<[u8]>) -> &mut Self {
        self.last_mut()
            .pax
            .push((key.to_string(), value.as_ref().to_vec()));
        self
    }

    /// An entry written exactly as given, without any path validation: `../evil`,
    /// `/etc/evil`, `a/../../x`, `.wh...`, links to `../../outside` or `/etc/passwd`.
    /// Mode is 0755 for directories and 0644 otherwise; owner 0:0. Names or link names longer
    /// than 100 bytes get a GNU long-name/long-link entry first.
    pub fn raw(
        &mut self,
        name: impl AsRef<[u8]>,
        entry_type: EntryType,
        link_name: impl AsRef<[u8]>,
        data: impl AsRef<[u8]>,
    ) -> &mut Self {
        let mode = if entry_type == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        self.push(
            name.as_ref().to_vec(),
            entry_type,
            link_name.as_ref(),
            data.as_ref(),
            mode,
            0,
            0,
        )
    }

    /// A minimal busybox userland: `bin/busybox` (the static /bin/busybox) plus applet
    /// symlinks ([`BUSYBOX_APPLETS`]), `etc/passwd` (root, nobody, app=1000), `etc/group`,
    /// `tmp` (01777), `root` (0700) and `home/app` owned by 1000:1000.
    pub fn busybox(&mut self) -> &mut Self {
        let busybox = std::fs::read("/bin/busybox")
            .expect("layer.busybox: reading /bin/busybox failed (is busybox-static installed?)");
        self.dir("bin", 0o755).file("bin/busybox", busybox, 0o755);
        for applet in BUSYBOX_APPLETS {
            self.symlink(&format!("bin/{applet}"), "busybox");
        }
        self.dir("etc", 0o755)
            .file(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                 app:x:1000:1000::/home/app:/bin/sh\n",
                0o644,
            )
            .file(
                "etc/group",
                "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
                0o644,
            )
            .dir("tmp", 0o1777)
            .dir("root", 0o700)
            .dir("home", 0o755)
            .dir_owned("home/app", 0o755, 1000, 1000)
    }

    /// The uncompressed tar stream (ends with the two zero blocks).
    pub fn build_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            write_entry(&mut builder, entry);
        }
        builder
            .into_inner()
            .expect("layer: finishing tar stream failed")
    }

    pub fn build(self, compression: Compression) -> Layer {
        Layer::from_tar(self.build_tar(), compression)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: Vec<u8>,
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.entries.push(Entry {
            name,
            kind,
            link: link.to_vec(),
            data: data.to_vec(),
            mode,
            uid,
            gid,
            mtime: self.mtime,
            device: None,
            pax: Vec::new(),
        });
        self
    }

    fn last_mut(&mut self) -> &mut Entry {
        self.entries.last_mut().expect("layer: no entry added yet")
    }
}

/// Rejects paths the well-behaved methods should never produce.
fn checked(path: &str) -> &str {
    assert!(
        !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
        "LayerBuilder: {path:?} is absolute or contains `..`; use LayerBuilder::raw for hostile entries"
    );
    path
}

/// Writes `entry` with headers built by hand: the tar crate's `set_path`/`set_link_name`
/// refuse `..` and absolute paths, and its builder has no PAX support, so names are copied
/// into the raw header fields and extension entries are written explicitly.
fn write_entry(builder: &mut tar::Builder<Vec<u8>>, entry: &Entry) {
    if !entry.pax.is_empty() {
        let mut records = Vec::new();
        for (key, value) in &entry.pax {
            records.extend_from_slice(&pax_record(key, value));
        }
        // Like GNU tar: the extended header's own name is informational only.
        let mut name = b"PaxHeaders/".to_vec();
        name.extend_from_slice(&entry.name);
        let header = header(
            &name,
            EntryType::XHeader,
            b"",
            records.len() as u64,
            entry,
            0o644,
        );
        builder
            .append(&header, &records[..])
            .expect("layer: writing PAX header failed");
    }
    if entry.name.len() > 100 {
        append_gnu_long(builder, EntryType::GNULongName, &entry.name);
    }
    if entry.link.len() > 100 {
        append_gnu_long(builder, EntryType::GNULongLink, &entry.link);
    }
    let header = header(
        &entry.name,
        entry.kind,
        &entry.link,
        entry.data.len() as u64,
        entry,
        entry.mode,
    );
    builder
        .append(&header, &entry.data[..])
        .expect("layer: writing tar entry failed");
}

fn header(
    name: &[u8],
    kind: EntryType,
    link: &[u8],
    size: u64,
    entry: &Entry,
    mode: u32,
) -> Header {
    let mut h = Header::new_gnu();
    copy_truncated(&mut h.as_old_mut().name, name);
    copy_truncated(&mut h.as_old_mut().linkname, link);
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(entry.uid);
    h.set_gid(entry.gid);
    h.set_mtime(entry.mtime);
    h.set_size(size);
    if let Some((major, minor)) = entry.device {
        h.set_device_major(major)
            .expect("layer: setting device major failed");
        h.set_device_minor(minor)
            .expect("layer: setting device minor failed");
    }
    h.set_cksum();
    h
}

/// A GNU `././@LongLink` entry carrying a name (type `L`) or link name (type `K`) that does
/// not fit the 100-byte header field.
fn append_gnu_long(builder: &mut tar::Builder<Vec<u8>>, kind: EntryType, value: &[u8]) {
    let mut data = value.to_vec();
    data.push(0);
    let mut h = Header::new_gnu();
    copy_truncated(&mut h.as_old_mut().name, b"././@LongLink");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    builder
        .append(&h, &data[..])
        .expect("layer: writing GNU long-name entry failed");
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    field[n..].fill(0);
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including
/// its own digits.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + base.to_string().len();
    if len.to_string().len() != base.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    debug_assert_eq!(rec.len(), len);
    rec
}
