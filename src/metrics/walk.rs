//! One walk of a writable layer (an overlay upperdir): its apparent bytes and inodes.
//!
//! The counting rule is GNU `du -sb` / `du -s --inodes`, checked on this machine: every
//! entry's `st_size` counts (regular files, symlinks, directories with their own size, 4096
//! on ext4, the root included), an inode with several hard links counts once. Whiteouts
//! (0:0 character devices) have `st_size` 0: they add an inode and no bytes, never a
//! negative figure. Apparent bytes have no block rounding: a 7 MiB file adds exactly
//! 7,340,032 bytes (`du` without `-b` would round each file up to 4 KiB blocks).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What one walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerUsage {
    pub bytes: u64,
    pub inodes: u64,
    pub whiteouts: u64,
    /// Per path of `volumes` (same order): bytes of everything below it (not the directory
    /// itself).
    pub volume_bytes: Vec<u64>,
}

/// How a walk ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Walked {
    Done(LayerUsage),
    /// More than the budget's entries: left for the big-walk worker.
    OverBudget,
}

/// Walks `root`. `volumes` are absolute paths inside the container (image VOLUMEs without
/// a mount); `budget` caps the entries visited; `on_dir` sees every directory (to watch it).
/// A tree that vanishes while walked (a container being deleted) gives what was seen.
pub fn walk(
    root: &Path,
    volumes: &[String],
    budget: Option<u64>,
    on_dir: &mut dyn FnMut(&Path),
) -> std::io::Result<Walked> {
    let rel_volumes: Vec<PathBuf> = volumes
        .iter()
        .map(|v| PathBuf::from(v.trim_start_matches('/')))
        .collect();
    let mut usage = LayerUsage {
        volume_bytes: vec![0; volumes.len()],
        ..LayerUsage::default()
    };
    let mut links = HashSet::new();
    let root_meta = match fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Walked::Done(usage)),
        Err(e) => return Err(e),
    };
    usage.bytes += root_meta.size();
    usage.inodes += 1;
    on_dir(root);
    // (directory, its path relative to root, the volume it is under)
    let mut stack: Vec<(PathBuf, PathBuf, Option<usize>)> =
        vec![(root.to_path_buf(), PathBuf::new(), None)];
    let mut visited = 0u64;
    while let Some((dir, rel, volume)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            visited += 1;
            if budget.is_some_and(|b| visited > b) {
                return Ok(Walked::OverBudget);
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let is_dir = meta.is_dir();
            if !is_dir && meta.nlink() > 1 && !links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            usage.bytes += meta.size();
            usage.inodes += 1;
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                usage.whiteouts += 1;
            }
            if let Some(v) = volume {
                usage.volume_bytes[v] += meta.size();
            }
            if is_dir {
                let child_rel = rel.join(entry.file_name());
                let child_volume =
                    volume.or_else(|| rel_volumes.iter().position(|v| *v == child_rel));
                let path = entry.path();
                on_dir(&path);
                stack.push((path, child_rel, child_volume));
            }
        }
    }
    Ok(Walked::Done(usage))
}

/// Apparent bytes of the files under `dir` (the container's log and its rotations are
/// `container.log*`) whose names start with `prefix`.
pub fn files_bytes(dir: &Path, prefix: &str) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.size())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn du(path: &Path, args: &[&str]) -> u64 {
        let out = Command::new("du").args(args).arg(path).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn run(root: &Path, volumes: &[String]) -> LayerUsage {
        match walk(root, volumes, None, &mut |_| {}).unwrap() {
            Walked::Done(u) => u,
            Walked::OverBudget => panic!("no budget"),
        }
    }

    #[test]
    fn a_walk_counts_what_du_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/f"), vec![1u8; 12345]).unwrap();
        fs::hard_link(root.join("a/f"), root.join("a/b/f2")).unwrap();
        std::os::unix::fs::symlink("some/target", root.join("link")).unwrap();
        nix::sys::stat::mknod(
            &root.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let usage = run(&root, &[]);
        assert_eq!(usage.bytes, du(&root, &["-sb"]));
        assert_eq!(usage.inodes, du(&root, &["-s", "--inodes"]));
        assert_eq!(usage.whiteouts, 1);
    }

    #[test]
    fn bytes_under_a_volume_path_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        fs::create_dir_all(root.join("var/lib/db/x")).unwrap();
        fs::write(root.join("var/lib/db/x/data"), vec![0u8; 1000]).unwrap();
        fs::write(root.join("var/lib/other"), vec![0u8; 7]).unwrap();
        let usage = run(&root, &["/var/lib/db".into(), "/nothing".into()]);
        let dir_size = fs::metadata(root.join("var/lib/db/x")).unwrap().size();
        assert_eq!(usage.volume_bytes, vec![1000 + dir_size, 0]);
    }

    #[test]
    fn a_walk_over_its_budget_stops() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            fs::write(dir.path().join(i.to_string()), b"x").unwrap();
        }
        assert_eq!(
            walk(dir.path(), &[], Some(5), &mut |_| {}).unwrap(),
            Walked::OverBudget
        );
        assert!(matches!(
            walk(dir.path(), &[], Some(10), &mut |_| {}).unwrap(),
            Walked::Done(u) if u.inodes == 11
        ));
    }

    #[test]
    fn a_missing_tree_counts_nothing() {
        let usage = run(Path::new("/nonexistent/upper"), &[]);
        assert_eq!(usage.bytes, 0);
    }
}
