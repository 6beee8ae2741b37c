use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use super::*;

fn meta() -> FileMeta {
    FileMeta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1,
        xattrs: Vec::new(),
    }
}

fn dir_fd(path: &Path) -> std::fs::File {
    std::fs::File::open(path).unwrap()
}

#[test]
fn published_files_are_found_linked_and_swept_when_unlinked() {
    let root = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(root.path())
        .unwrap()
        .expect("hard links work");
    let layer = root.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(layer.join("f"), b"hello").unwrap();
    let key = ObjectKey::new(&[3; 32], 5, &meta());
    assert_eq!(store.find(&key).unwrap(), Slot::Free(0));
    let ino = std::fs::metadata(layer.join("f")).unwrap().ino();
    let pending = vec![
        PendingObject {
            rel: "f".into(),
            key: key.clone(),
            copy: 0,
            ino,
        },
        // Replaced later in its layer: the inode differs, nothing is published.
        PendingObject {
            rel: "f".into(),
            key: ObjectKey::new(&[4; 32], 5, &meta()),
            copy: 0,
            ino: ino + 1,
        },
    ];
    assert_eq!(store.publish(&layer, &pending).unwrap(), 1);
    assert_eq!(store.find(&key).unwrap(), Slot::Room(0));

    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let fd = dir_fd(&other);
    let name = OsStr::new("g");
    assert_eq!(
        store.link_existing(&key, fd.as_fd(), name).unwrap(),
        Lookup::Linked
    );
    assert_eq!(std::fs::metadata(other.join("g")).unwrap().ino(), ino);
    let unknown = ObjectKey::new(&[9; 32], 5, &meta());
    assert_eq!(
        store
            .link_existing(&unknown, fd.as_fd(), OsStr::new("h"))
            .unwrap(),
        Lookup::Missing(0)
    );
    assert!(!other.join("h").exists());

    // In use by two layers: the sweep keeps it.
    assert_eq!(store.sweep().unwrap().objects_removed, 0);
    std::fs::remove_file(layer.join("f")).unwrap();
    std::fs::remove_file(other.join("g")).unwrap();
    let swept = store.sweep().unwrap();
    assert_eq!(swept.objects_removed, 1);
    assert_eq!(swept.bytes_freed, 5);
    assert_eq!(store.find(&key).unwrap(), Slot::Free(0));
}

#[test]
fn a_full_object_gets_a_second_copy() {
    let root = tempfile::tempdir().unwrap();
    // The object's own name plus two layers.
    let store = ObjectStore::open(root.path())
        .unwrap()
        .expect("hard links work")
        .with_max_links(3);
    let layer = root.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    let key = ObjectKey::new(&[5; 32], 1, &meta());
    for (name, copy) in [("a", 0), ("d", 1)] {
        std::fs::write(layer.join(name), b"x").unwrap();
        let ino = std::fs::metadata(layer.join(name)).unwrap().ino();
        let pending = [PendingObject {
            rel: name.into(),
            key: key.clone(),
            copy,
            ino,
        }];
        assert_eq!(store.publish(&layer, &pending).unwrap(), 1);
        if copy == 0 {
            let fd = dir_fd(&layer);
            assert_eq!(
                store
                    .link_existing(&key, fd.as_fd(), OsStr::new("b"))
                    .unwrap(),
                Lookup::Linked
            );
            assert_eq!(
                store
                    .link_existing(&key, fd.as_fd(), OsStr::new("c"))
                    .unwrap(),
                Lookup::Missing(1),
                "copy 0 holds its limit of links"
            );
        }
    }
    assert_eq!(store.find(&key).unwrap(), Slot::Room(1));
    assert_eq!(std::fs::metadata(layer.join("a")).unwrap().nlink(), 3);
}
