//! Copy-on-write rootfs on real overlay mounts: shared read-only lowerdirs, one writable layer
//! per container, and `diff` of what a container changed.

use std::path::Path;

use layerlet::runtime::storage::rootfs::{diff, ChangeKind, ContainerLayer};

fn image_layers(dir: &Path) -> Vec<std::path::PathBuf> {
    let base = dir.join("layers/base");
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::write(base.join("etc/config"), "original").unwrap();
    std::fs::write(base.join("etc/remove-me"), "x").unwrap();
    std::fs::write(base.join("big"), vec![1u8; 1 << 20]).unwrap();
    let top = dir.join("layers/top");
    std::fs::create_dir_all(top.join("app")).unwrap();
    std::fs::write(top.join("app/run"), "run").unwrap();
    vec![top, base]
}

#[test]
fn each_container_writes_only_to_its_own_layer_and_diff_shows_what_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let lowers = image_layers(dir.path());
    let a = ContainerLayer::under(&dir.path().join("containers/a"));
    let b = ContainerLayer::under(&dir.path().join("containers/b"));
    a.mount(&lowers, false, &[]).unwrap();
    b.mount(&lowers, false, &[]).unwrap();

    std::fs::write(a.merged.join("new-file"), "mine").unwrap();
    std::fs::write(a.merged.join("etc/config"), "changed").unwrap();
    std::fs::remove_file(a.merged.join("etc/remove-me")).unwrap();

    // The sibling and the image layers are untouched.
    assert!(!b.merged.join("new-file").exists());
    assert_eq!(
        std::fs::read_to_string(b.merged.join("etc/config")).unwrap(),
        "original"
    );
    assert!(b.merged.join("etc/remove-me").exists());
    assert_eq!(
        std::fs::read_to_string(lowers[1].join("etc/config")).unwrap(),
        "original"
    );
    assert!(lowers[1].join("etc/remove-me").exists());
    // The change was copied up into a's writable layer only.
    assert_eq!(
        std::fs::read_to_string(a.upper.join("etc/config")).unwrap(),
        "changed"
    );
    assert!(!b.upper.join("etc/config").exists());

    let changes: Vec<(String, ChangeKind)> = diff(&a.upper, &lowers)
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.kind))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("/etc".to_string(), ChangeKind::Changed),
            ("/etc/config".to_string(), ChangeKind::Changed),
            ("/etc/remove-me".to_string(), ChangeKind::Deleted),
            ("/new-file".to_string(), ChangeKind::Added),
        ]
    );
    assert!(
        diff(&b.upper, &lowers).unwrap().is_empty(),
        "an untouched container has no changes"
    );

    a.destroy().unwrap();
    b.destroy().unwrap();
    assert!(
        !a.upper.exists() && !a.merged.exists() && !a.work.exists(),
        "delete destroys the writable layer"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.path().to_str().unwrap()),
        "no mount left behind"
    );
}

#[test]
fn a_read_only_rootfs_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let lowers = image_layers(dir.path());
    let c = ContainerLayer::under(&dir.path().join("containers/ro"));
    c.mount(&lowers, true, &[]).unwrap();
    let err = std::fs::write(c.merged.join("x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    c.destroy().unwrap();
}

#[test]
fn an_image_without_layers_cannot_make_a_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let c = ContainerLayer::under(dir.path());
    assert!(c.mount(&[], false, &[]).is_err());
}
