//! A writable layer's figures kept per directory, so a change re-reads only the directories
//! inotify named instead of the whole layer: a layer of a million files that keeps changing
//! costs the size of the directories that changed, not of the layer.
//!
//! Each directory holds its own sums: its own size and inode, and the size, inode and
//! whiteout counts of the non-directory entries directly in it. Files with several hard
//! links are kept apart and counted once per layer, as `du` does. The totals are the sums
//! over all directories, and equal what [`super::walk::walk`] counts (tests check it).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::walk::LayerUsage;

/// (device, inode) of a file with several links.
type Inode = (u64, u64);

#[derive(Debug, Default, Clone)]
struct DirSums {
    /// The directory's own st_size (its inode counts one).
    own_bytes: u64,
    /// Of the non-directory entries directly in it, hard-linked ones excepted.
    bytes: u64,
    inodes: u64,
    whiteouts: u64,
    /// Files here with several links: counted once per layer, wherever they are.
    linked: Vec<(Inode, u64)>,
    subdirs: BTreeSet<OsString>,
    /// The volume whose bytes its entries add to.
    volume: Option<usize>,
    /// The volume its own size adds to: its parent's (a volume's own directory is not
    /// below itself).
    own_volume: Option<usize>,
}

/// The per-directory figures of one layer.
#[derive(Debug, Default)]
pub struct LayerTree {
    root: PathBuf,
    /// Volume paths relative to the root.
    volumes: Vec<PathBuf>,
    /// By path relative to the root ("" is the root).
    dirs: HashMap<PathBuf, DirSums>,
    /// How many directories hold a link of each multi-link file, and its size.
    links: HashMap<Inode, (u32, u64)>,
    /// Entries read since the last [`Self::take_visited`].
    visited: u64,
    /// While a first read is bounded: stop past this many entries.
    budget: Option<u64>,
}

impl LayerTree {
    /// Reads the whole layer; `on_dir` sees every directory (to watch it). None when more
    /// than `budget` entries were read (the caller hands the layer to a worker).
    pub fn read(
        root: &Path,
        volumes: &[String],
        budget: Option<u64>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<Option<LayerTree>> {
        let mut tree = LayerTree {
            root: root.to_path_buf(),
            volumes: volumes
                .iter()
                .map(|v| PathBuf::from(v.trim_start_matches('/')))
                .collect(),
            ..LayerTree::default()
        };
        tree.budget = budget;
        tree.add_subtree(PathBuf::new(), None, on_dir)?;
        if tree.over_budget() {
            return Ok(None);
        }
        tree.budget = None;
        Ok(Some(tree))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Entries read since the last call: what the last updates cost.
    pub fn take_visited(&mut self) -> u64 {
        std::mem::take(&mut self.visited)
    }

    pub fn dir_count(&self) -> usize {
        self.dirs.len()
    }

    /// Reads again the directories named (relative to the root): their entries, and the
    /// whole of any subdirectory that appeared; subdirectories that went are forgotten
    /// with everything below them. A named directory that is gone is forgotten too.
    pub fn update(
        &mut self,
        changed: impl IntoIterator<Item = PathBuf>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<()> {
        // Parents first, so a subtree read for a new directory is not read twice.
        let mut changed: Vec<PathBuf> = changed.into_iter().collect();
        changed.sort_by_key(|p| p.components().count());
        changed.dedup();
        for rel in changed {
            let Some(old) = self.dirs.get(&rel).cloned() else {
                continue; // not known (already forgotten, or read with a new parent)
            };
            let full = self.root.join(&rel);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    self.forget_subtree(&rel);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.forget_subtree(&rel);
                    continue;
                }
                Err(e) => return Err(e),
            }
            self.unlink_all(&old.linked);
            let Some(fresh) = self.read_dir(&rel, old.own_volume, old.volume)? else {
                self.forget_subtree(&rel);
                continue;
            };
            for gone in old.subdirs.difference(&fresh.subdirs) {
                self.forget_subtree(&rel.join(gone));
            }
            let added: Vec<OsString> = fresh.subdirs.difference(&old.subdirs).cloned().collect();
            let volume = fresh.volume;
            self.link_all(&fresh.linked);
            self.dirs.insert(rel.clone(), fresh);
            for name in added {
                let child = rel.join(&name);
                let child_volume = volume.or_else(|| self.volume_at(&child));
                on_dir(&self.root.join(&child));
                self.add_subtree_at(child, volume, child_volume, on_dir)?;
            }
        }
        Ok(())
    }

    /// The layer's figures, as [`super::walk::walk`] counts them.
    pub fn usage(&self) -> LayerUsage {
        let mut usage = LayerUsage {
            volume_bytes: vec![0; self.volumes.len()],
            ..LayerUsage::default()
        };
        let mut linked_in_volume: Vec<BTreeSet<Inode>> = vec![BTreeSet::new(); self.volumes.len()];
        for d in self.dirs.values() {
            usage.bytes += d.own_bytes + d.bytes;
            usage.inodes += 1 + d.inodes;
            usage.whiteouts += d.whiteouts;
            if let Some(v) = d.own_volume {
                usage.volume_bytes[v] += d.own_bytes;
            }
            if let Some(v) = d.volume {
                usage.volume_bytes[v] += d.bytes;
                for (inode, size) in &d.linked {
                    if linked_in_volume[v].insert(*inode) {
                        usage.volume_bytes[v] += size;
                    }
                }
            }
        }
        for (_, size) in self.links.values() {
            usage.bytes += size;
            usage.inodes += 1;
        }
        usage
    }

    fn over_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.visited > b)
    }

    fn volume_at(&self, rel: &Path) -> Option<usize> {
        self.volumes.iter().position(|v| v == rel)
    }

    fn add_subtree(
        &mut self,
        rel: PathBuf,
        own_volume: Option<usize>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<()> {
        on_dir(&self.root.join(&rel));
        let volume = own_volume.or_else(|| self.volume_at(&rel));
        self.add_subtree_at(rel, own_volume, volume, on_dir)
    }

    /// Reads `rel` and everything below it (`on_dir` was called for `rel` already).
    fn add_subtree_at(
        &mut self,
        rel: PathBuf,
        own_volume: Option<usize>,
        volume: Option<usize>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<()> {
        let mut stack = vec![(rel, own_volume, volume)];
        while let Some((rel, own_volume, volume)) = stack.pop() {
            if self.over_budget() {
                return Ok(());
            }
            let Some(sums) = self.read_dir(&rel, own_volume, volume)? else {
                continue;
            };
            for name in &sums.subdirs {
                let child = rel.join(name);
                let child_volume = volume.or_else(|| self.volume_at(&child));
                on_dir(&self.root.join(&child));
                stack.push((child, volume, child_volume));
            }
            self.link_all(&sums.linked);
            self.dirs.insert(rel, sums);
        }
        Ok(())
    }

    /// The sums of one directory's own inode and direct entries; None when it is gone.
    fn read_dir(
        &mut self,
        rel: &Path,
        own_volume: Option<usize>,
        volume: Option<usize>,
    ) -> std::io::Result<Option<DirSums>> {
        let full = self.root.join(rel);
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let own = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut sums = DirSums {
            own_bytes: own.size(),
            volume,
            own_volume,
            ..DirSums::default()
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            self.visited += 1;
            if self.over_budget() {
                break; // the read is abandoned: its caller sees the budget spent
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                sums.subdirs.insert(entry.file_name());
                continue;
            }
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                sums.whiteouts += 1;
            }
            if meta.nlink() > 1 {
                sums.linked.push(((meta.dev(), meta.ino()), meta.size()));
            } else {
                sums.bytes += meta.size();
                sums.inodes += 1;
            }
        }
        Ok(Some(sums))
    }

    fn link_all(&mut self, linked: &[(Inode, u64)]) {
        for (inode, size) in linked {
            let e = self.links.entry(*inode).or_insert((0, *size));
            e.0 += 1;
            e.1 = *size;
        }
    }

    fn unlink_all(&mut self, linked: &[(Inode, u64)]) {
        for (inode, _) in linked {
            if let Some(e) = self.links.get_mut(inode) {
                e.0 = e.0.saturating_sub(1);
                if e.0 == 0 {
                    self.links.remove(inode);
                }
            }
        }
    }

    fn forget_subtree(&mut self, rel: &Path) {
        let below: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|k| k.starts_with(rel))
            .cloned()
            .collect();
        for k in below {
            if let Some(d) = self.dirs.remove(&k) {
                self.unlink_all(&d.linked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::walk::{walk, Walked};
    use super::*;

    fn walked(root: &Path, volumes: &[String]) -> LayerUsage {
        match walk(root, volumes, None, &mut |_| {}).unwrap() {
            Walked::Done(u) => u,
            Walked::OverBudget => panic!("no budget"),
        }
    }

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    /// Changes a tree step by step; after each, updating only the directories a watch
    /// would name gives what a full walk gives.
    #[test]
    fn updates_of_the_changed_directories_match_a_full_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        fs::create_dir_all(root.join("var/lib/db/x")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/a"), vec![1u8; 100]).unwrap();
        fs::write(root.join("var/lib/db/x/data"), vec![2u8; 1000]).unwrap();
        let volumes = vec!["/var/lib/db".to_string()];
        let mut watched = Vec::new();
        let mut tree = LayerTree::read(&root, &volumes, None, &mut |d| {
            watched.push(d.to_path_buf())
        })
        .unwrap()
        .unwrap();
        assert_eq!(tree.usage(), walked(&root, &volumes));
        assert_eq!(watched.len(), 6, "every directory is watched: {watched:?}");

        type Change = Box<dyn Fn(&Path)>;
        let steps: Vec<(&str, Change, Vec<&str>)> = vec![
            (
                "a file grows",
                Box::new(|r: &Path| fs::write(r.join("etc/a"), vec![1u8; 5000]).unwrap()),
                vec!["etc"],
            ),
            (
                "a new file in a volume",
                Box::new(|r: &Path| fs::write(r.join("var/lib/db/new"), b"xyz").unwrap()),
                vec!["var/lib/db"],
            ),
            (
                "a whiteout",
                Box::new(|r: &Path| {
                    fs::remove_file(r.join("etc/a")).unwrap();
                    whiteout(&r.join("etc/a"));
                }),
                vec!["etc"],
            ),
            (
                "a hard link in another directory",
                Box::new(|r: &Path| {
                    fs::hard_link(r.join("var/lib/db/x/data"), r.join("etc/data-link")).unwrap()
                }),
                vec!["etc", "var/lib/db/x"],
            ),
            (
                "a new tree",
                Box::new(|r: &Path| {
                    fs::create_dir_all(r.join("srv/deep/er")).unwrap();
                    fs::write(r.join("srv/deep/er/f"), vec![0u8; 77]).unwrap();
                }),
                vec![""],
            ),
            (
                "the first link goes",
                Box::new(|r: &Path| fs::remove_file(r.join("var/lib/db/x/data")).unwrap()),
                vec!["var/lib/db/x", "etc"],
            ),
            (
                "a tree goes",
                Box::new(|r: &Path| fs::remove_dir_all(r.join("srv")).unwrap()),
                vec![""],
            ),
            (
                "a directory moves",
                Box::new(|r: &Path| fs::rename(r.join("var/lib/db/x"), r.join("etc/x")).unwrap()),
                vec!["var/lib/db", "etc"],
            ),
            (
                "the moved directory changes",
                Box::new(|r: &Path| fs::write(r.join("etc/x/more"), vec![3u8; 10]).unwrap()),
                vec!["var/lib/db/x", "etc/x"],
            ),
        ];
        for (what, change, named) in steps {
            change(&root);
            tree.update(named.iter().map(PathBuf::from), &mut |_| {})
                .unwrap();
            assert_eq!(tree.usage(), walked(&root, &volumes), "after: {what}");
        }
    }

    #[test]
    fn an_update_reads_only_the_directories_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        for d in 0..20 {
            fs::create_dir_all(root.join(format!("d{d}"))).unwrap();
            for f in 0..50 {
                fs::write(root.join(format!("d{d}/f{f}")), b"x").unwrap();
            }
        }
        assert!(
            LayerTree::read(&root, &[], Some(500), &mut |_| {})
                .unwrap()
                .is_none(),
            "over its budget"
        );
        let mut tree = LayerTree::read(&root, &[], None, &mut |_| {})
            .unwrap()
            .unwrap();
        assert_eq!(tree.take_visited(), 20 + 20 * 50);
        assert_eq!(tree.dir_count(), 21);
        fs::write(root.join("d7/f3"), b"longer").unwrap();
        tree.update([PathBuf::from("d7")], &mut |_| {}).unwrap();
        assert_eq!(tree.take_visited(), 50, "one directory's entries");
        assert_eq!(tree.usage(), walked(&root, &[]));
    }

    #[test]
    fn a_layer_that_vanishes_counts_nothing_and_updates_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        fs::create_dir_all(root.join("a")).unwrap();
        let mut tree = LayerTree::read(&root, &[], None, &mut |_| {})
            .unwrap()
            .unwrap();
        fs::remove_dir_all(&root).unwrap();
        tree.update([PathBuf::from("a"), PathBuf::new()], &mut |_| {})
            .unwrap();
        assert_eq!(tree.usage(), LayerUsage::default());
    }
}
