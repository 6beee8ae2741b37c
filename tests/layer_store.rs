//! The layer store against a real registry (Debian's docker-registry) and real overlay mounts.

mod common;
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{du_sb, layer_dirs_of, Node};
use layerlet::sys::mount::{mount_overlay, unmount, OverlaySpec};
use support::{
    block_on, noise, push_image, push_index, Compression, ImageSpec, LayerBuilder, Registry,
};
use tar::EntryType;

fn spec_with(layers: Vec<support::Layer>) -> ImageSpec {
    ImageSpec {
        layers,
        cmd: Some(vec!["sh".into()]),
        ..ImageSpec::default()
    }
}

fn pulled(node: &Node, image: &str) -> serde_json::Value {
    node.json(&["pull", image])
}

/// Mounts the image read-only-ish (a throwaway upper) and runs `check` on the merged view.
fn with_merged_view(node: &Node, image: &str, check: impl FnOnce(&Path)) {
    let scratch = node.dir.path().join("view");
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(scratch.join(d)).unwrap();
    }
    let spec = OverlaySpec {
        lower: layer_dirs_of(node, image),
        upper: scratch.join("upper"),
        work: scratch.join("work"),
        read_only: false,
        volatile: false,
    };
    mount_overlay(&spec, &scratch.join("merged")).expect("overlay mount");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&scratch.join("merged"))
    }));
    unmount(&scratch.join("merged")).expect("unmount");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn pull_lists_image_history_and_disk_usage() {
    let registry = Registry::start();
    let spec = ImageSpec {
        history: Some(vec![
            ("ADD busybox /".into(), false),
            ("CMD [\"sh\"]".into(), true),
        ]),
        ..ImageSpec::busybox()
    };
    let pushed = block_on(push_image(
        &registry.addr(),
        "library/busybox",
        "1.36",
        &spec,
    ));
    let node = Node::new();
    let image = registry.image_ref("library/busybox", "1.36");
    let out = pulled(&node, &image);
    assert_eq!(out[0]["digest"], pushed.manifest_digest.as_str());
    assert_eq!(out[0]["fetched_layers"], 1);

    let images = node.json(&["images"]);
    assert_eq!(
        images[0]["repository"],
        format!("{}/library/busybox", registry.addr())
    );
    assert_eq!(images[0]["tag"], "1.36");
    let size = images[0]["size"].as_u64().unwrap();
    let layer_dir = &layer_dirs_of(&node, &image)[0];
    assert_eq!(
        size,
        du_sb(layer_dir),
        "image size is the du -sb of its layer"
    );

    let history = node.json(&["history", &image]);
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["created_by"], "CMD [\"sh\"]");
    assert!(rows[0]["diff_id"].is_null());
    assert_eq!(rows[1]["diff_id"], spec.layers[0].diff_id.as_str());
    assert_eq!(rows[1]["compressed_size"], spec.layers[0].size());

    let df = node.json(&["df"]);
    assert_eq!(df["layers"], 1);
    assert_eq!(df["saved_bytes"], 0);
    // The table forms work too.
    assert!(node.ok(&["images"]).contains("SHARED SIZE"));
    assert!(node.ok(&["history", &image]).contains("ADD busybox /"));
    assert!(node.ok(&["df"]).contains("SAVED BY SHARING"));
    // Pulling again fetches nothing.
    assert_eq!(pulled(&node, &image)[0]["fetched_layers"], 0);

    // By digest: the manifest bytes are checked against it.
    let by_digest = format!(
        "{}/library/busybox@{}",
        registry.addr(),
        pushed.manifest_digest
    );
    let fresh = Node::new();
    assert_eq!(
        pulled(&fresh, &by_digest)[0]["digest"],
        pushed.manifest_digest.as_str()
    );
    assert_eq!(
        fresh.json(&["images"])[0]["tag"],
        format!("@{}", pushed.manifest_digest)
    );
    let wrong = format!(
        "{}/library/busybox@sha256:{}",
        registry.addr(),
        "0".repeat(64)
    );
    let err = fresh.fails(&["pull", &wrong]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn images_sharing_a_base_share_it_on_disk_and_the_second_pull_fetches_only_the_difference() {
    let registry = Registry::start();
    let base = LayerBuilder::busybox_layer(Compression::Gzip);
    let mut a = LayerBuilder::new();
    a.file("app-a", vec![b'a'; 100_000], 0o644);
    let mut b = LayerBuilder::new();
    b.file("app-b", vec![b'b'; 300_000], 0o644);
    block_on(push_image(
        &registry.addr(),
        "app/a",
        "v1",
        &spec_with(vec![base.clone(), a.build(Compression::Gzip)]),
    ));
    block_on(push_image(
        &registry.addr(),
        "app/b",
        "v1",
        &spec_with(vec![base.clone(), b.build(Compression::Gzip)]),
    ));
    let node = Node::new();
    assert_eq!(
        pulled(&node, &registry.image_ref("app/a", "v1"))[0]["fetched_layers"],
        2
    );
    let second = pulled(&node, &registry.image_ref("app/b", "v1"));
    assert_eq!(
        second[0]["fetched_layers"], 1,
        "the shared base is not fetched again"
    );
    assert_eq!(
        node.entries("layers").len(),
        3,
        "two images over one base: three layer directories"
    );

    let images = node.json(&["images"]);
    let base_size = du_sb(
        &node
            .root()
            .join("layers")
            .join(base.diff_id.trim_start_matches("sha256:")),
    );
    for row in images.as_array().unwrap() {
        assert_eq!(row["shared_size"].as_u64().unwrap(), base_size);
    }
    let df = node.json(&["df"]);
    assert_eq!(
        df["saved_bytes"].as_u64().unwrap(),
        base_size,
        "sharing saves exactly one copy of the base"
    );
    let on_disk = du_sb(&node.root().join("layers")) - du_sb_dir_entry(&node.root().join("layers"));
    let physical_layers =
        df["physical_bytes"].as_u64().unwrap() - df["blob_bytes"].as_u64().unwrap();
    assert_eq!(
        physical_layers, on_disk,
        "df's physical bytes are du -sb of the layer store"
    );
}

/// du -sb counts the directory itself; the layer sizes do not include `layers/`.
fn du_sb_dir_entry(dir: &Path) -> u64 {
    std::fs::metadata(dir).unwrap().size()
}

#[test]
fn whiteouts_and_opaque_directories_show_as_deletions_in_the_merged_view() {
    let registry = Registry::start();
    let mut base = LayerBuilder::new();
    base.busybox()
        .file("etc/gone", "x", 0o644)
        .dir("var/cache", 0o755)
        .file("var/cache/old1", "1", 0o644)
        .file("var/cache/old2", "2", 0o644)
        .dir("keep", 0o755)
        .file("keep/kept", "k", 0o644);
    let mut top = LayerBuilder::new();
    top.whiteout("etc/gone")
        .opaque("var/cache")
        .file("var/cache/new", "n", 0o644);
    block_on(push_image(
        &registry.addr(),
        "wh/img",
        "1",
        &spec_with(vec![
            base.build(Compression::Gzip),
            top.build(Compression::Gzip),
        ]),
    ));
    let node = Node::new();
    let image = registry.image_ref("wh/img", "1");
    pulled(&node, &image);
    let top_dir = &layer_dirs_of(&node, &image)[0];
    let whiteout = std::fs::symlink_metadata(top_dir.join("etc/gone")).unwrap();
    assert_eq!(
        whiteout.rdev(),
        0,
        "an overlay whiteout is a 0:0 character device"
    );
    assert!(std::fs::symlink_metadata(top_dir.join("etc/.wh.gone")).is_err());
    with_merged_view(&node, &image, |merged| {
        assert!(!merged.join("etc/gone").exists(), "whiteout hides the file");
        assert!(merged.join("etc/passwd").exists());
        assert!(
            !merged.join("var/cache/old1").exists(),
            "opaque directory hides the lower content"
        );
        assert_eq!(
            std::fs::read_to_string(merged.join("var/cache/new")).unwrap(),
            "n"
        );
        assert!(merged.join("keep/kept").exists());
    });
}

#[test]
fn implied_directories_take_mode_and_owner_from_the_layers_below() {
    let registry = Registry::start();
    let mut base = LayerBuilder::new();
    base.busybox().dir_owned("srv/data", 0o750, 1000, 1000);
    let mut top = LayerBuilder::new();
    top.file("tmp/x", "x", 0o644).file("srv/data/y", "y", 0o644);
    block_on(push_image(
        &registry.addr(),
        "implied/img",
        "1",
        &spec_with(vec![
            base.build(Compression::Gzip),
            top.build(Compression::Gzip),
        ]),
    ));
    let node = Node::new();
    let image = registry.image_ref("implied/img", "1");
    pulled(&node, &image);
    let top_dir = &layer_dirs_of(&node, &image)[0];
    let tmp = std::fs::metadata(top_dir.join("tmp")).unwrap();
    assert_eq!(
        tmp.permissions().mode() & 0o7777,
        0o1777,
        "/tmp keeps its sticky 1777 mode"
    );
    let data = std::fs::metadata(top_dir.join("srv/data")).unwrap();
    assert_eq!(
        (data.permissions().mode() & 0o7777, data.uid(), data.gid()),
        (0o750, 1000, 1000)
    );
    let root = std::fs::metadata(top_dir).unwrap();
    assert_eq!(
        root.permissions().mode() & 0o7777,
        0o755,
        "the layer root is not left 0700"
    );
    with_merged_view(&node, &image, |merged| {
        let tmp = std::fs::metadata(merged.join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    });
}

#[test]
fn an_image_of_128_layers_mounts() {
    let registry = Registry::start();
    let mut layers = vec![LayerBuilder::busybox_layer(Compression::Gzip)];
    for i in 1..128 {
        let mut b = LayerBuilder::new();
        b.file(&format!("layer-{i:03}"), format!("{i}"), 0o644);
        layers.push(b.build(Compression::Gzip));
    }
    block_on(push_image(
        &registry.addr(),
        "many/layers",
        "1",
        &spec_with(layers),
    ));
    let node = Node::new();
    let image = registry.image_ref("many/layers", "1");
    assert_eq!(pulled(&node, &image)[0]["layers"], 128);
    let dirs = layer_dirs_of(&node, &image);
    assert_eq!(dirs.len(), 128);
    let option_bytes: usize = dirs.iter().map(|d| d.as_os_str().len() + 1).sum();
    assert!(
        option_bytes > 4096,
        "the lowerdir list ({option_bytes} bytes) would not fit one page"
    );
    with_merged_view(&node, &image, |merged| {
        assert_eq!(
            std::fs::read_to_string(merged.join("layer-001")).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(merged.join("layer-127")).unwrap(),
            "127"
        );
        assert!(merged.join("bin/busybox").exists());
    });
}

#[test]
fn gzip_zstd_and_uncompressed_layers_in_oci_and_docker_manifests() {
    let registry = Registry::start();
    let node = Node::new();
    for (docker, repo) in [(false, "comp/oci"), (true, "comp/docker")] {
        let mut z = LayerBuilder::new();
        z.file("zstd-file", vec![7u8; 50_000], 0o644);
        let mut plain = LayerBuilder::new();
        plain.file("plain-file", "plain", 0o600);
        let mut gz = LayerBuilder::busybox_layer(Compression::Gzip);
        let mut none = plain.build(Compression::None);
        if docker {
            gz = gz.with_docker_media_type();
            none = none.with_docker_media_type();
        }
        let spec = ImageSpec {
            docker_schema2: docker,
            ..spec_with(vec![gz, z.build(Compression::Zstd), none])
        };
        block_on(push_image(&registry.addr(), repo, "1", &spec));
        let image = registry.image_ref(repo, "1");
        pulled(&node, &image);
        with_merged_view(&node, &image, |merged| {
            assert_eq!(
                std::fs::read(merged.join("zstd-file")).unwrap(),
                vec![7u8; 50_000]
            );
            assert_eq!(
                std::fs::read_to_string(merged.join("plain-file")).unwrap(),
                "plain"
            );
            let mode = std::fs::metadata(merged.join("plain-file"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        });
    }
}

#[test]
fn an_index_with_two_platforms_resolves_to_the_node_platform_or_the_one_asked_for() {
    let registry = Registry::start();
    let mut amd = LayerBuilder::new();
    amd.file("arch", "native", 0o644);
    let native = block_on(push_image(
        &registry.addr(),
        "multi/img",
        "native",
        &spec_with(vec![amd.build(Compression::Gzip)]),
    ));
    let mut other = LayerBuilder::new();
    other.file("arch", "s390x", 0o644);
    let foreign_spec = ImageSpec {
        architecture: "s390x".into(),
        ..spec_with(vec![other.build(Compression::Gzip)])
    };
    let foreign = block_on(push_image(
        &registry.addr(),
        "multi/img",
        "foreign",
        &foreign_spec,
    ));
    block_on(push_index(
        &registry.addr(),
        "multi/img",
        "latest",
        &[
            (foreign.clone(), "linux", "s390x", None),
            (
                native.clone(),
                "linux",
                support::image::host_oci_arch(),
                None,
            ),
        ],
    ));
    let node = Node::new();
    let image = registry.image_ref("multi/img", "latest");
    assert_eq!(
        pulled(&node, &image)[0]["digest"],
        native.manifest_digest.as_str()
    );
    let other_node = Node::new();
    let out = other_node.json(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(out[0]["digest"], foreign.manifest_digest.as_str());
    let err = other_node.fails(&["pull", "--platform", "linux/riscv64", &image]);
    assert!(
        err.contains("no manifest for platform linux/riscv64"),
        "{err}"
    );
    assert!(
        err.contains("linux/s390x"),
        "the error lists what the index has: {err}"
    );
    let err = other_node.fails(&["pull", "--platform", "linux", &image]);
    assert!(err.contains("OS/ARCH"), "{err}");
}

/// Pushes an image whose top layer is `hostile`, pulls it, and checks that the pull fails
/// naming `entry`, that nothing appeared outside the store and that the store holds no
/// trace of the image.
fn assert_hostile_layer_refused(hostile: LayerBuilder, entry: &str, outside: &Path) {
    let registry = Registry::start();
    let repo = "hostile/img";
    block_on(push_image(
        &registry.addr(),
        repo,
        "1",
        &spec_with(vec![
            LayerBuilder::busybox_layer(Compression::Gzip),
            hostile.build(Compression::Gzip),
        ]),
    ));
    let node = Node::new();
    let err = node.fails(&["pull", &registry.image_ref(repo, "1")]);
    assert!(
        err.contains(entry),
        "the error names the entry {entry:?}: {err}"
    );
    assert!(!outside.exists(), "{} must not exist", outside.display());
    assert!(node.json(&["images"]).as_array().unwrap().is_empty());
    assert!(
        node.entries("tmp").is_empty(),
        "no unpack leftovers: {:?}",
        node.entries("tmp")
    );
    // Only the (valid) base layer may have been committed.
    assert!(node.entries("layers").len() <= 1);
}

fn outside_path(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("layerlet-escape-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn hostile_layers_are_refused_without_touching_anything_outside() {
    let target = outside_path("dotdot");
    let name = format!("../../../../../../../../..{}", target.display());
    let mut dotdot = LayerBuilder::new();
    dotdot.raw(name.as_bytes(), EntryType::Regular, "", "pwned");
    assert_hostile_layer_refused(dotdot, "..", &target);

    let target = outside_path("absolute");
    let mut absolute = LayerBuilder::new();
    absolute.raw(
        target.to_string_lossy().as_bytes(),
        EntryType::Regular,
        "",
        "pwned",
    );
    assert_hostile_layer_refused(absolute, &target.to_string_lossy(), &target);

    let dir = outside_path("symlinkdir");
    std::fs::create_dir_all(&dir).unwrap();
    let mut through_symlink = LayerBuilder::new();
    through_symlink
        .raw(
            "escape",
            EntryType::Symlink,
            dir.to_string_lossy().as_bytes(),
            "",
        )
        .raw("escape/pwned", EntryType::Regular, "", "pwned");
    assert_hostile_layer_refused(through_symlink, "escape/pwned", &dir.join("pwned"));
    std::fs::remove_dir_all(&dir).unwrap();

    let target = outside_path("hardlink");
    std::fs::write(&target, "host file").unwrap();
    let mut hardlink_out = LayerBuilder::new();
    hardlink_out.raw(
        "link",
        EntryType::Link,
        "../../../../../../../../etc/passwd",
        "",
    );
    assert_hostile_layer_refused(hardlink_out, "link", &outside_path("hardlink-never"));
    let mut hardlink_abs = LayerBuilder::new();
    hardlink_abs.raw(
        "link",
        EntryType::Link,
        target.to_string_lossy().as_bytes(),
        "",
    );
    assert_hostile_layer_refused(hardlink_abs, "link", &outside_path("hardlink-never2"));
    assert_eq!(
        std::fs::metadata(&target).unwrap().nlink(),
        1,
        "no hardlink to the host file"
    );
    std::fs::remove_file(&target).unwrap();

    let mut whiteout_dotdot = LayerBuilder::new();
    whiteout_dotdot.raw("etc/.wh...", EntryType::Regular, "", "");
    assert_hostile_layer_refused(whiteout_dotdot, "etc/.wh...", &outside_path("never3"));
    let target = outside_path("whiteout-parent");
    std::fs::write(&target, "keep me").unwrap();
    let mut whiteout_escape = LayerBuilder::new();
    whiteout_escape.raw(
        format!(
            "../../../../../../..{}/.wh.{}",
            target.parent().unwrap().display(),
            target.file_name().unwrap().to_string_lossy()
        ),
        EntryType::Regular,
        "",
        "",
    );
    let registry_check = target.clone();
    assert_hostile_layer_refused(whiteout_escape, ".wh.", &outside_path("never4"));
    assert_eq!(std::fs::read_to_string(&registry_check).unwrap(), "keep me");
    std::fs::remove_file(&target).unwrap();

    let mut device = LayerBuilder::new();
    device.char_device("dev/fake-whiteout", 0, 0);
    assert_hostile_layer_refused(device, "dev/fake-whiteout", &outside_path("never5"));
}

#[test]
fn overlay_xattrs_are_stripped_and_ordinary_metadata_is_kept() {
    let registry = Registry::start();
    let mut layer = LayerBuilder::new();
    layer
        .file("redirected", "data", 0o644)
        .xattr("redirected", "trusted.overlay.redirect", "/etc")
        .xattr("redirected", "user.note", "kept")
        .file_owned("suid", "x", 0o4755, 1000, 1000)
        .char_device("dev/null", 1, 3)
        .hardlink("redirected-link", "redirected");
    block_on(push_image(
        &registry.addr(),
        "meta/img",
        "1",
        &spec_with(vec![
            LayerBuilder::busybox_layer(Compression::Gzip),
            layer.build(Compression::Gzip),
        ]),
    ));
    let node = Node::new();
    let image = registry.image_ref("meta/img", "1");
    pulled(&node, &image);
    let top = &layer_dirs_of(&node, &image)[0];
    let xattrs = std::process::Command::new("getfattr")
        .args(["-d", "-m", "-", "--absolute-names"])
        .arg(top.join("redirected"))
        .output();
    if let Ok(out) = xattrs {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("trusted.overlay"), "{text}");
        assert!(text.contains("user.note"), "{text}");
    }
    let suid = std::fs::metadata(top.join("suid")).unwrap();
    assert_eq!(
        (suid.permissions().mode() & 0o7777, suid.uid(), suid.gid()),
        (0o4755, 1000, 1000)
    );
    let null = std::fs::metadata(top.join("dev/null")).unwrap();
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    let a = std::fs::metadata(top.join("redirected")).unwrap();
    let b = std::fs::metadata(top.join("redirected-link")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlinks inside a layer are kept");
    assert_eq!(a.mtime(), 1_700_000_000, "mtimes are kept");
}

#[test]
fn a_decompression_bomb_is_stopped_by_the_unpacked_size_cap() {
    let registry = Registry::start();
    let mut bomb = LayerBuilder::new();
    bomb.file("zeros", vec![0u8; 8 * 1024 * 1024], 0o644);
    let layer = bomb.build(Compression::Gzip);
    assert!(layer.size() < 64 * 1024, "compresses well");
    block_on(push_image(
        &registry.addr(),
        "bomb/img",
        "1",
        &spec_with(vec![layer]),
    ));
    let node = Node::new();
    let err = node.fails(&[
        "pull",
        "--max-layer-size",
        "1000000",
        &registry.image_ref("bomb/img", "1"),
    ]);
    assert!(err.contains("more than 1000000 bytes"), "{err}");
    assert!(node.entries("layers").is_empty());
    assert!(node.entries("tmp").is_empty());
}

#[test]
fn a_blob_whose_digest_does_not_match_is_rejected_and_the_store_is_unchanged() {
    let registry = Registry::start();
    let good = block_on(push_image(
        &registry.addr(),
        "good/img",
        "1",
        &ImageSpec::busybox(),
    ));
    let mut layer = LayerBuilder::new();
    layer.file("payload", vec![1u8; 4096], 0o644);
    let layer = layer.build(Compression::Gzip);
    let digest = layer.digest.clone();
    block_on(push_image(
        &registry.addr(),
        "bad/img",
        "1",
        &spec_with(vec![layer.clone()]),
    ));
    let node = Node::new();
    pulled(&node, &registry.image_ref("good/img", "1"));
    let before_layers = node.entries("layers");
    let before_images = node.json(&["images"]);

    // Same length, different bytes: only the digest can tell.
    let blob = registry.blob_path(&digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let err = node.fails(&["pull", &registry.image_ref("bad/img", "1")]);
    assert!(err.contains(&digest), "the error names the blob: {err}");
    assert_eq!(node.entries("layers"), before_layers);
    assert_eq!(node.json(&["images"]), before_images);
    assert!(node.entries("tmp").is_empty());
    assert_eq!(
        good.manifest_digest,
        node.json(&["images"])[0]["digest"].as_str().unwrap()
    );
}

#[test]
fn a_connection_dropped_mid_blob_is_retried_then_reported() {
    let registry = Registry::start();
    let mut big = LayerBuilder::new();
    big.file("noise", noise(2_000_000, 1), 0o644);
    block_on(push_image(
        &registry.addr(),
        "flaky/img",
        "1",
        &spec_with(vec![big.build(Compression::Gzip)]),
    ));

    let once = support::DroppingProxy::start(&registry.addr(), 100_000, 1);
    let node = Node::new();
    let image = format!("{}/flaky/img:1", once.addr());
    assert_eq!(pulled(&node, &image)[0]["fetched_layers"], 1);
    assert_eq!(once.drops_done(), 1, "the first transfer was cut");

    let always = support::DroppingProxy::start(&registry.addr(), 100_000, 100);
    let node = Node::new();
    let err = node.fails(&["pull", &format!("{}/flaky/img:1", always.addr())]);
    assert!(err.contains("transfer failed after 3 attempts"), "{err}");
    assert_eq!(always.drops_done(), 3);
    assert!(node.entries("layers").is_empty());
    assert!(node.entries("tmp").is_empty());
}

#[test]
fn basic_auth_uses_credentials_from_a_docker_config_json() {
    let registry = Registry::start_with_basic_auth("puller", "s3cret");
    block_on(support::push_image_with_auth(
        &registry.addr(),
        "private/img",
        "1",
        &ImageSpec::busybox(),
        "puller",
        "s3cret",
    ));
    let node = Node::new();
    let image = registry.image_ref("private/img", "1");
    let err = node.fails(&["pull", &image]);
    assert!(
        err.contains("config.json"),
        "an auth failure says where credentials go: {err}"
    );

    let config = node.dir.path().join("auth.json");
    let wrong = base64_of("puller:wrong");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{wrong}"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    node.fails(&["pull", "--auth-file", config.to_str().unwrap(), &image]);

    let right = base64_of("puller:s3cret");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{right}"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let out = node.json(&["pull", "--auth-file", config.to_str().unwrap(), &image]);
    assert_eq!(out[0]["fetched_layers"], 1);

    // The default location, ~/.docker/config.json, is read too.
    let docker_dir = node.dir.path().join(".docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::copy(&config, docker_dir.join("config.json")).unwrap();
    let fresh = Node::new();
    let mut cmd = fresh.cmd();
    cmd.env("HOME", node.dir.path()).args(["pull", &image]);
    assert!(cmd.output().unwrap().status.success());
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn two_pulls_of_the_same_image_at_once_fetch_each_layer_once() {
    let registry = Registry::start();
    let mut layers = vec![LayerBuilder::busybox_layer(Compression::Gzip)];
    for i in 0..4u32 {
        let mut b = LayerBuilder::new();
        b.file(
            &format!("data-{i}"),
            noise(1_500_000, u64::from(i) + 100),
            0o644,
        );
        layers.push(b.build(Compression::Gzip));
    }
    block_on(push_image(
        &registry.addr(),
        "race/img",
        "1",
        &spec_with(layers),
    ));
    let node = Node::new();
    let image = registry.image_ref("race/img", "1");
    let children: Vec<_> = (0..2)
        .map(|_| {
            node.cmd()
                .args(["--output", "json", "pull", &image])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut fetched = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        fetched += v[0]["fetched_layers"].as_u64().unwrap();
    }
    assert_eq!(
        fetched, 5,
        "each of the 5 layers was fetched by exactly one of the two pulls"
    );
    assert_eq!(node.entries("layers").len(), 5);
}

#[test]
fn a_pull_killed_half_way_leaves_nothing_visible_and_the_next_pull_completes() {
    let registry = Registry::start();
    let mut layers = Vec::new();
    for i in 0..3u32 {
        let mut b = LayerBuilder::new();
        b.file(
            &format!("big-{i}"),
            noise(20_000_000, u64::from(i) + 10),
            0o644,
        );
        layers.push(b.build(Compression::Gzip));
    }
    block_on(push_image(
        &registry.addr(),
        "crash/img",
        "1",
        &spec_with(layers),
    ));
    let node = Node::new();
    let image = registry.image_ref("crash/img", "1");
    let mut child = node.cmd().args(["pull", &image]).spawn().unwrap();
    // Kill it while it is unpacking: as soon as an unpack directory exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while node.entries("tmp").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never started unpacking"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        node.json(&["images"]).as_array().unwrap().is_empty(),
        "no image is visible after the crash"
    );
    assert!(
        node.entries("layers").len() < 3,
        "the killed pull did not finish"
    );
    let out = pulled(&node, &image);
    assert_eq!(out[0]["layers"], 3);
    node.ok(&["gc"]);
    assert!(
        node.entries("tmp").is_empty(),
        "gc clears leftovers of the killed pull"
    );
    assert_eq!(node.entries("layers").len(), 3);
    with_merged_view(&node, &image, |merged| {
        for i in 0..3 {
            let size = std::fs::metadata(merged.join(format!("big-{i}")))
                .unwrap()
                .len();
            assert_eq!(size, 20_000_000, "big-{i} is complete");
        }
    });
}

#[test]
fn import_reads_oci_layouts_and_archives_with_the_same_verification() {
    let work = tempfile::tempdir().unwrap();
    let spec = ImageSpec::busybox();
    let layout = work.path().join("layout");
    let pushed = support::write_oci_layout(&layout, &spec, "example.com/tools/busybox:1");
    let node = Node::new();
    let out = node.json(&["image", "import", layout.to_str().unwrap()]);
    assert_eq!(out[0]["digest"], pushed.manifest_digest.as_str());
    assert_eq!(
        node.json(&["images"])[0]["repository"],
        "example.com/tools/busybox"
    );

    let archive = work.path().join("image.tar");
    let other = ImageSpec {
        env: vec!["A=1".into()],
        ..ImageSpec::busybox()
    };
    let pushed = support::write_oci_archive(&archive, &other, "example.com/tools/other:2");
    let out = node.json(&[
        "image",
        "import",
        "--name",
        "local/renamed:v9",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(out[0]["digest"], pushed.manifest_digest.as_str());
    assert_eq!(
        out[0]["fetched_layers"], 0,
        "the busybox layer is already in the store"
    );
    assert!(node.ok(&["images"]).contains("docker.io/local/renamed"));

    // A layer blob that does not match its digest is refused.
    let tampered = work.path().join("tampered");
    let mut layer = LayerBuilder::new();
    layer.file("f", "original", 0o644);
    let t = support::write_oci_layout(
        &tampered,
        &spec_with(vec![layer.build(Compression::None)]),
        "t/t:1",
    );
    let _ = t;
    let blobs = tampered.join("blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(8).position(|w| w == b"original") {
            bytes[pos] = b'O';
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let fresh = Node::new();
    let err = fresh.fails(&["image", "import", tampered.to_str().unwrap()]);
    assert!(err.contains("digest"), "{err}");
    assert!(fresh.entries("layers").is_empty());
    let err = fresh.fails(&[
        "image",
        "import",
        work.path().join("missing").to_str().unwrap(),
    ]);
    assert!(err.contains("not an OCI image layout"), "{err}");
}

#[test]
fn rmi_and_gc_remove_only_what_no_image_references() {
    let registry = Registry::start();
    let base = LayerBuilder::busybox_layer(Compression::Gzip);
    let mut a = LayerBuilder::new();
    a.file("a", "a", 0o644);
    let mut b = LayerBuilder::new();
    b.file("b", "b", 0o644);
    block_on(push_image(
        &registry.addr(),
        "gc/a",
        "1",
        &spec_with(vec![base.clone(), a.build(Compression::Gzip)]),
    ));
    block_on(push_image(
        &registry.addr(),
        "gc/b",
        "1",
        &spec_with(vec![base.clone(), b.build(Compression::Gzip)]),
    ));
    let node = Node::new();
    pulled(&node, &registry.image_ref("gc/a", "1"));
    pulled(&node, &registry.image_ref("gc/b", "1"));
    assert_eq!(node.entries("layers").len(), 3);
    node.ok(&["rmi", &registry.image_ref("gc/a", "1")]);
    assert_eq!(node.json(&["images"]).as_array().unwrap().len(), 1);
    let report = node.json(&["gc"]);
    assert_eq!(
        report["layers_removed"].as_array().unwrap().len(),
        1,
        "only a's top layer goes"
    );
    assert_eq!(node.entries("layers").len(), 2);
    let image_b = registry.image_ref("gc/b", "1");
    with_merged_view(&node, &image_b, |merged| {
        assert!(merged.join("bin/busybox").exists())
    });
    let err = node.fails(&["rmi", "no/such:image"]);
    assert!(err.contains("no image named"), "{err}");
    node.ok(&["rmi", &image_b]);
    node.ok(&["gc"]);
    assert!(node.entries("layers").is_empty());
    assert!(node.entries("blobs/sha256").is_empty());
}

#[test]
fn bad_references_and_missing_images_get_clear_errors() {
    let registry = Registry::start();
    let node = Node::new();
    let err = node.fails(&["pull", "Not/Valid:Ref"]);
    assert!(err.contains("invalid image reference"), "{err}");
    let err = node.fails(&["pull", &registry.image_ref("missing/img", "1")]);
    assert!(err.contains("not found"), "{err}");
    let err = node.fails(&["history", "missing"]);
    assert!(err.contains("no image named"), "{err}");
}
