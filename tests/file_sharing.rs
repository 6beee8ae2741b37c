//! File-level sharing against a real registry and real overlay mounts: each regular file
//! kept once in `objects/`, hard-linked into the layers that hold it.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{layer_dirs_of, Node};
use layerlet::runtime::storage::rootfs::ContainerLayer;
use sha2::{Digest, Sha256};
use support::{block_on, noise, push_image, Compression, ImageSpec, LayerBuilder, Registry};
use tar::EntryType;

/// Files both images hold: (name, bytes), 150 kB of noise each plus small ones.
fn shared_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("big-{i}"), noise(150_000, 100 + i)))
        .collect();
    files.extend((0..20).map(|i| {
        (
            format!("small-{i}"),
            noise(2_000 + i as usize * 10, 200 + i),
        )
    }));
    files
}

fn shared_bytes() -> u64 {
    shared_files().iter().map(|(_, d)| d.len() as u64).sum()
}

const B_ONLY: usize = 100_000;

/// A: the shared files under usr/lib/x in its first layer, A's own file in a second.
/// B: the same files under opt/copy, split over two layers (none of them a layer of A), its
/// own file, and big-0's bytes with another mode (a different object).
fn push_pair(registry: &Registry) -> (String, String) {
    let files = shared_files();
    let mut a1 = LayerBuilder::new();
    for (name, data) in &files {
        a1.file(&format!("usr/lib/x/{name}"), data, 0o644);
    }
    let mut a2 = LayerBuilder::new();
    a2.file("usr/lib/a-only", noise(50_000, 7), 0o644);
    let (first, second) = files.split_at(files.len() / 2);
    let mut b1 = LayerBuilder::new();
    b1.file("opt/b-only", noise(B_ONLY, 8), 0o644);
    for (name, data) in second {
        b1.file(&format!("opt/copy/{name}"), data, 0o644);
    }
    let mut b2 = LayerBuilder::new();
    for (name, data) in first {
        b2.file(&format!("opt/copy/{name}"), data, 0o644);
    }
    b2.file("opt/mode-differs", &files[0].1, 0o755);
    for (repo, layers) in [
        (
            "share/a",
            vec![a1.build(Compression::Gzip), a2.build(Compression::Gzip)],
        ),
        (
            "share/b",
            vec![b1.build(Compression::Gzip), b2.build(Compression::Zstd)],
        ),
    ] {
        block_on(push_image(&registry.addr(), repo, "1", &spec_with(layers)));
    }
    (
        registry.image_ref("share/a", "1"),
        registry.image_ref("share/b", "1"),
    )
}

fn spec_with(layers: Vec<support::Layer>) -> ImageSpec {
    ImageSpec {
        layers,
        cmd: Some(vec!["sh".into()]),
        ..ImageSpec::default()
    }
}

/// `du -sb` of several paths in one walk, so an inode linked from several is counted once.
fn du_once(paths: &[PathBuf]) -> u64 {
    let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        return 0;
    }
    let out = Command::new("du")
        .arg("-scb")
        .args(&existing)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du output: {text}"))
}

fn store_paths(node: &Node) -> Vec<PathBuf> {
    vec![node.root().join("layers"), node.root().join("objects")]
}

/// Every object file: path -> metadata.
fn objects(node: &Node) -> BTreeMap<PathBuf, std::fs::Metadata> {
    let mut out = BTreeMap::new();
    for fan in std::fs::read_dir(node.root().join("objects"))
        .into_iter()
        .flatten()
    {
        let fan = fan.unwrap().path();
        if !fan.is_dir() {
            continue;
        }
        for object in std::fs::read_dir(&fan).unwrap() {
            let object = object.unwrap().path();
            out.insert(object.clone(), std::fs::symlink_metadata(&object).unwrap());
        }
    }
    out
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The image's file at `rel`, found in its topmost layer that has it.
fn layer_file(node: &Node, image: &str, rel: &str) -> PathBuf {
    layer_dirs_of(node, image)
        .into_iter()
        .map(|l| l.join(rel))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{rel} in no layer of {image}"))
}

#[test]
fn a_second_image_with_the_same_files_in_other_layers_grows_the_store_by_its_own_files_only() {
    let registry = Registry::start();
    let (a, b) = push_pair(&registry);
    let node = Node::new();
    node.json(&["pull", &a]);
    let after_a = du_once(&store_paths(&node));
    node.json(&["pull", &b]);
    let growth = du_once(&store_paths(&node)) - after_a;
    let own = (B_ONLY + shared_files()[0].1.len()) as u64;
    assert!(
        growth >= own && growth < own + 64 * 1024,
        "b grows the store by its own {own} bytes (plus directories), not {growth}"
    );

    // One inode for a file in both images, whatever its path and layer.
    let files = shared_files();
    for (name, _) in &files {
        let in_a = std::fs::metadata(layer_file(&node, &a, &format!("usr/lib/x/{name}"))).unwrap();
        let in_b = std::fs::metadata(layer_file(&node, &b, &format!("opt/copy/{name}"))).unwrap();
        assert_eq!(in_a.ino(), in_b.ino(), "{name} is one object");
        assert_eq!(in_a.nlink(), 3, "{name}: the object and two layers");
    }
    let other_mode = std::fs::metadata(layer_file(&node, &b, "opt/mode-differs")).unwrap();
    assert_eq!(other_mode.mode() & 0o7777, 0o755);
    let big0 = std::fs::metadata(layer_file(&node, &a, "usr/lib/x/big-0")).unwrap();
    assert_ne!(
        other_mode.ino(),
        big0.ino(),
        "another mode is another object"
    );

    // df: file sharing saves the shared files once; physical is du counting inodes once.
    let df = node.json(&["df"]);
    assert_eq!(df["file_saved_bytes"].as_u64().unwrap(), shared_bytes());
    let all_objects = objects(&node);
    assert_eq!(df["objects"].as_u64().unwrap(), all_objects.len() as u64);
    assert_eq!(
        df["object_bytes"].as_u64().unwrap(),
        all_objects.values().map(|m| m.size()).sum::<u64>()
    );
    let dirs_of_store: u64 = [node.root().join("layers"), node.root().join("objects")]
        .iter()
        .map(|d| std::fs::metadata(d).unwrap().size())
        .sum::<u64>()
        + std::fs::read_dir(node.root().join("objects"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap())
            .filter(|m| m.is_dir())
            .map(|m| m.size())
            .sum::<u64>();
    assert_eq!(
        df["physical_bytes"].as_u64().unwrap() - df["blob_bytes"].as_u64().unwrap(),
        du_once(&store_paths(&node)) - dirs_of_store,
        "df's physical bytes are du of layers and objects, each inode once"
    );
    assert_eq!(
        df["saved_bytes"].as_u64().unwrap(),
        df["layer_saved_bytes"].as_u64().unwrap() + shared_bytes()
    );
    assert!(node.ok(&["df"]).contains("BY FILES"));
    let images = node.json(&["images"]);
    for row in images.as_array().unwrap() {
        assert_eq!(row["file_shared_size"].as_u64().unwrap(), shared_bytes());
        assert_eq!(
            row["unique_size"].as_u64().unwrap() + shared_bytes(),
            row["size"].as_u64().unwrap()
        );
    }

    // With sharing off, the same two pulls store every file twice.
    let off = Node::new();
    off.json(&["pull", "--file-sharing=false", &a]);
    let off_after_a = du_once(&store_paths(&off));
    off.json(&["pull", "--file-sharing=false", &b]);
    let off_growth = du_once(&store_paths(&off)) - off_after_a;
    assert!(
        off_growth >= own + shared_bytes(),
        "without sharing b stores its copies: {off_growth}"
    );
    assert!(objects(&off).is_empty(), "the off switch writes no object");
    assert_eq!(
        std::fs::metadata(layer_file(&off, &b, "opt/copy/big-1"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn containers_of_both_images_see_the_same_files_and_a_write_copies_up_leaving_the_object() {
    let registry = Registry::start();
    let (a, b) = push_pair(&registry);
    let node = Node::new();
    node.json(&["pull", &a]);
    node.json(&["pull", &b]);
    let ca = ContainerLayer::under(&node.dir.path().join("containers/a"));
    let cb = ContainerLayer::under(&node.dir.path().join("containers/b"));
    ca.mount(&layer_dirs_of(&node, &a), false, &[]).unwrap();
    cb.mount(&layer_dirs_of(&node, &b), false, &[]).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for (name, data) in shared_files() {
            let pa = ca.merged.join(format!("usr/lib/x/{name}"));
            let pb = cb.merged.join(format!("opt/copy/{name}"));
            assert_eq!(std::fs::read(&pa).unwrap(), data, "{name} in a");
            assert_eq!(std::fs::read(&pb).unwrap(), data, "{name} in b");
            let (ma, mb) = (
                std::fs::metadata(&pa).unwrap(),
                std::fs::metadata(&pb).unwrap(),
            );
            assert_eq!(ma.mode(), mb.mode());
            assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()));
            assert_eq!(ma.mtime(), mb.mtime(), "the tar's mtime is kept");
        }
        let object_file = layer_file(&node, &a, "usr/lib/x/big-0");
        let before = std::fs::read(&object_file).unwrap();
        let objects_before: BTreeMap<PathBuf, (u64, u32)> = objects(&node)
            .into_iter()
            .map(|(p, m)| (p, (m.size(), m.mode())))
            .collect();

        // A write and a chmod in a's container.
        std::fs::OpenOptions::new()
            .append(true)
            .open(ca.merged.join("usr/lib/x/big-0"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"changed"))
            .unwrap();
        std::fs::set_permissions(
            ca.merged.join("usr/lib/x/small-0"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();

        assert!(ca.upper.join("usr/lib/x/big-0").exists(), "copied up");
        assert_eq!(
            std::fs::read(cb.merged.join("opt/copy/big-0")).unwrap(),
            shared_files()[0].1,
            "b's container sees the original"
        );
        assert_eq!(
            std::fs::metadata(cb.merged.join("opt/copy/small-0"))
                .unwrap()
                .mode()
                & 0o7777,
            0o644
        );
        assert_eq!(
            std::fs::read(&object_file).unwrap(),
            before,
            "the object is unchanged"
        );
        let objects_after: BTreeMap<PathBuf, (u64, u32)> = objects(&node)
            .into_iter()
            .map(|(p, m)| (p, (m.size(), m.mode())))
            .collect();
        assert_eq!(
            objects_before, objects_after,
            "no object changed size or mode"
        );
        let verify = node.json(&["image", "verify"]);
        assert!(verify["damaged"].as_array().unwrap().is_empty(), "{verify}");
    }));
    ca.destroy().unwrap();
    cb.destroy().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn a_pull_killed_half_way_links_no_half_written_object_and_gc_clears_its_files() {
    let registry = Registry::start();
    let contents: Vec<Vec<u8>> = (0..4).map(|i| noise(15_000_000, 40 + i)).collect();
    let mut layers = vec![];
    let mut small = LayerBuilder::new();
    small.file("small", b"quick", 0o644);
    layers.push(small.build(Compression::Gzip));
    for (i, data) in contents.iter().enumerate() {
        let mut l = LayerBuilder::new();
        l.file(&format!("big-{i}"), data, 0o644);
        layers.push(l.build(Compression::Gzip));
    }
    block_on(push_image(
        &registry.addr(),
        "crash/files",
        "1",
        &spec_with(layers),
    ));
    let expected: BTreeSet<String> = contents
        .iter()
        .map(|d| sha(d))
        .chain([sha(b"quick")])
        .collect();
    let node = Node::new();
    let image = registry.image_ref("crash/files", "1");
    let mut child = node.cmd().args(["pull", &image]).spawn().unwrap();
    // Killed once something is unpacking, and a little later, so some layer may be done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.entries("tmp").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the pull never started unpacking"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    for (path, _) in objects(&node) {
        let got = sha(&std::fs::read(&path).unwrap());
        assert!(
            expected.contains(&got),
            "object {} is not one of the image's files whole",
            path.display()
        );
    }
    node.ok(&["gc"]);
    for (path, meta) in objects(&node) {
        assert!(
            meta.nlink() > 1,
            "gc left {} that no layer links",
            path.display()
        );
    }
    node.json(&["pull", &image]);
    let all = objects(&node);
    assert_eq!(all.len(), 5, "one object per file");
    for (path, meta) in &all {
        assert_eq!(meta.nlink(), 2, "{} linked by its layer", path.display());
        assert!(expected.contains(&sha(&std::fs::read(path).unwrap())));
    }
    assert!(node.json(&["image", "verify"])["damaged"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn gc_removes_objects_no_layer_links_never_one_in_use_even_beside_a_pull() {
    let registry = Registry::start();
    let (a, b) = push_pair(&registry);
    let node = Node::new();
    node.json(&["pull", &a]);
    let a_only = sha(&std::fs::read(layer_file(&node, &a, "usr/lib/a-only")).unwrap());
    node.ok(&["rmi", &a]);
    // b is pulled while gc runs again and again: gc removes a's layers meanwhile, and b
    // links a's objects; either order must leave b whole.
    let mut pull = node
        .cmd()
        .args(["--output", "json", "pull", &b])
        .spawn()
        .unwrap();
    let mut passes = 0;
    loop {
        node.ok(&["gc"]);
        passes += 1;
        if pull.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert!(
        pull.wait().unwrap().success(),
        "the pull beside gc succeeds"
    );
    node.ok(&["gc"]);
    assert!(passes >= 1);
    let all = objects(&node);
    // By content: inode numbers are reused.
    assert!(
        !all.keys()
            .any(|p| sha(&std::fs::read(p).unwrap()) == a_only),
        "a's own file went with its layers"
    );
    for (path, meta) in &all {
        assert!(meta.nlink() >= 2, "{} in use", path.display());
    }
    // b's files: the shared ones, its own, the other-mode copy.
    assert_eq!(all.len(), shared_files().len() + 2);
    for (name, data) in shared_files() {
        assert_eq!(
            std::fs::read(layer_file(&node, &b, &format!("opt/copy/{name}"))).unwrap(),
            data
        );
    }
    // Sharing off for this process: gc still collects the objects.
    node.ok(&["rmi", &b]);
    let out = node
        .cmd()
        .env("LAYERLET_FILE_SHARING", "false")
        .args(["--output", "json", "gc"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["objects_removed"].as_u64().unwrap(),
        all.len() as u64
    );
    assert!(objects(&node).is_empty());
}

#[test]
fn a_store_of_todays_layout_keeps_working_and_new_pulls_share_files() {
    let registry = Registry::start();
    let (a, b) = push_pair(&registry);
    let node = Node::new();
    let out = node
        .cmd()
        .env("LAYERLET_FILE_SHARING", "0")
        .args(["pull", &a])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        objects(&node).is_empty(),
        "LAYERLET_FILE_SHARING=0 writes no object"
    );
    node.json(&["pull", &b]);
    // a's private files are not objects; b's are, and a still mounts.
    assert_eq!(
        std::fs::metadata(layer_file(&node, &a, "usr/lib/x/big-1"))
            .unwrap()
            .nlink(),
        1
    );
    assert_eq!(
        std::fs::metadata(layer_file(&node, &b, "opt/copy/big-1"))
            .unwrap()
            .nlink(),
        2
    );
    let c = ContainerLayer::under(&node.dir.path().join("containers/a"));
    c.mount(&layer_dirs_of(&node, &a), false, &[]).unwrap();
    let seen = std::fs::read(c.merged.join("usr/lib/x/big-1"));
    c.destroy().unwrap();
    assert_eq!(seen.unwrap(), shared_files()[1].1);
}

#[test]
fn a_damaged_object_is_found_by_verify_and_refetched_by_the_next_pull() {
    let registry = Registry::start();
    let (a, b) = push_pair(&registry);
    let node = Node::new();
    node.json(&["pull", &a]);
    node.json(&["pull", &b]);
    let file = layer_file(&node, &b, "opt/copy/big-2");
    // A bit flips on disk.
    let mut data = std::fs::read(&file).unwrap();
    data[1000] ^= 0x40;
    let t = std::fs::metadata(&file).unwrap().modified().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &data[1000..1001], 1000).unwrap();
    f.set_modified(t).unwrap();
    drop(f);

    let out = node.run(&["--output", "json", "image", "verify"]);
    assert!(!out.status.success(), "verify fails on damage");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["layers_removed"].as_array().unwrap().len(), 2);
    let images: Vec<&str> = damaged[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(images.len() == 2, "both images named: {images:?}");
    let object = damaged[0]["object"]["path"].as_str().unwrap();
    assert!(
        !std::path::Path::new(object).exists(),
        "the damaged object is gone"
    );

    for image in [&a, &b] {
        let pulled = node.json(&["pull", image]);
        assert_eq!(pulled[0]["fetched_layers"], 1, "one layer fetched again");
    }
    assert_eq!(
        std::fs::read(layer_file(&node, &b, "opt/copy/big-2")).unwrap(),
        shared_files()[2].1
    );
    assert_eq!(
        std::fs::read(layer_file(&node, &a, "usr/lib/x/big-2")).unwrap(),
        shared_files()[2].1
    );
    assert!(node.json(&["image", "verify"])["damaged"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_hostile_layer_is_still_refused_and_publishes_no_object() {
    let registry = Registry::start();
    let target = std::env::temp_dir().join(format!("layerlet-escape-files-{}", std::process::id()));
    let _ = std::fs::remove_file(&target);
    let mut hostile = LayerBuilder::new();
    hostile.file("fine", b"a file before the attack", 0o644);
    hostile.raw(
        format!("../../../../../../../..{}", target.display()).as_bytes(),
        EntryType::Regular,
        "",
        "pwned",
    );
    let mut good = LayerBuilder::new();
    good.file("base", b"base file", 0o644);
    block_on(push_image(
        &registry.addr(),
        "hostile/files",
        "1",
        &spec_with(vec![
            good.build(Compression::Gzip),
            hostile.build(Compression::Gzip),
        ]),
    ));
    let node = Node::new();
    let err = node.fails(&["pull", &registry.image_ref("hostile/files", "1")]);
    assert!(err.contains(".."), "{err}");
    assert!(!target.exists());
    node.ok(&["gc"]);
    let left: Vec<String> = objects(&node)
        .keys()
        .map(|p| sha(&std::fs::read(p).unwrap()))
        .collect();
    assert!(
        !left.contains(&sha(b"a file before the attack")),
        "nothing of the refused layer is an object"
    );
}

/// A file capability (VFS_CAP_REVISION_2, effective) granting capability `bit`.
fn capability(bit: u32) -> Vec<u8> {
    let mut v = vec![0x01, 0x00, 0x00, 0x02];
    v.extend_from_slice(&(1u32 << bit).to_le_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer with its length.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn files_differing_only_in_capability_owner_or_mtime_are_separate_objects() {
    let registry = Registry::start();
    let data = noise(10_000, 77);
    let mut a = LayerBuilder::new();
    a.file("bin/tool", &data, 0o755)
        .xattr("bin/tool", "security.capability", capability(13));
    let mut b = LayerBuilder::new();
    b.file("usr/bin/same", &data, 0o755)
        .xattr("usr/bin/same", "security.capability", capability(13))
        .file("usr/bin/other-cap", &data, 0o755)
        .xattr("usr/bin/other-cap", "security.capability", capability(10))
        .file("usr/bin/no-cap", &data, 0o755)
        .file_owned("usr/bin/other-owner", &data, 0o755, 1000, 1000)
        .xattr("usr/bin/other-owner", "security.capability", capability(13));
    b.mtime(1_600_000_000)
        .file("usr/bin/other-mtime", &data, 0o755)
        .xattr("usr/bin/other-mtime", "security.capability", capability(13));
    for (repo, layer) in [("caps/a", a), ("caps/b", b)] {
        block_on(push_image(
            &registry.addr(),
            repo,
            "1",
            &spec_with(vec![layer.build(Compression::Gzip)]),
        ));
    }
    let (ia, ib) = (
        registry.image_ref("caps/a", "1"),
        registry.image_ref("caps/b", "1"),
    );
    let node = Node::new();
    node.json(&["pull", &ia]);
    node.json(&["pull", &ib]);
    let tool = layer_file(&node, &ia, "bin/tool");
    let ino = |p: &PathBuf| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&tool), ino(&layer_file(&node, &ib, "usr/bin/same")));
    assert_eq!(xattr(&tool, "security.capability"), Some(capability(13)));
    for other in ["other-cap", "no-cap", "other-owner", "other-mtime"] {
        let path = layer_file(&node, &ib, &format!("usr/bin/{other}"));
        assert_ne!(ino(&tool), ino(&path), "{other} is its own object");
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
    assert_eq!(
        xattr(
            &layer_file(&node, &ib, "usr/bin/other-cap"),
            "security.capability"
        ),
        Some(capability(10))
    );
    assert_eq!(
        xattr(
            &layer_file(&node, &ib, "usr/bin/no-cap"),
            "security.capability"
        ),
        None
    );
    let owner = std::fs::metadata(layer_file(&node, &ib, "usr/bin/other-owner")).unwrap();
    assert_eq!((owner.uid(), owner.gid()), (1000, 1000));
    assert_eq!(
        xattr(
            &layer_file(&node, &ib, "usr/bin/other-owner"),
            "security.capability"
        ),
        Some(capability(13)),
        "set after the owner, which clears it"
    );
    assert!(node.json(&["image", "verify"])["damaged"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn identical_files_of_one_layer_are_one_inode_and_replaced_paths_publish_nothing_stale() {
    let registry = Registry::start();
    let twin = noise(3_000_000, 5);
    let mut layer = LayerBuilder::new();
    layer
        .file("dup/one", &twin, 0o644)
        .file("dup/two", &twin, 0o644)
        .file("f", b"first version", 0o644)
        .file("f", b"second version", 0o644)
        .file("d/g", b"under a directory replaced later", 0o644)
        .symlink("d", "/etc")
        .file("small-one", b"tiny twin", 0o644)
        .file("small-two", b"tiny twin", 0o644);
    block_on(push_image(
        &registry.addr(),
        "dups/img",
        "1",
        &spec_with(vec![layer.build(Compression::Gzip)]),
    ));
    let image = registry.image_ref("dups/img", "1");
    let node = Node::new();
    node.json(&["pull", &image]);
    let ino = |rel: &str| {
        std::fs::metadata(layer_file(&node, &image, rel))
            .unwrap()
            .ino()
    };
    assert_eq!(ino("dup/one"), ino("dup/two"), "one inode for a big twin");
    assert_eq!(
        ino("small-one"),
        ino("small-two"),
        "one inode for a small twin"
    );
    let contents: BTreeSet<String> = objects(&node)
        .keys()
        .map(|p| sha(&std::fs::read(p).unwrap()))
        .collect();
    let expected: BTreeSet<String> = [sha(&twin), sha(b"second version"), sha(b"tiny twin")]
        .into_iter()
        .collect();
    assert_eq!(
        contents, expected,
        "objects of the files the layer ends with"
    );
    assert!(node.json(&["image", "verify"])["damaged"]
        .as_array()
        .unwrap()
        .is_empty());
}
