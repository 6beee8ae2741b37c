//! A writable layer's figures kept per directory, so a change re-reads only the directories
//! inotify named instead of the whole layer: a layer of a million files that keeps changing
//! costs the size of the directories that changed, not of the layer.
//!
//! Each directory holds its own sums: its own size and inode, and the size, inode and
//! whiteout counts of the non-directory entries directly in it. Files with several hard
//! links are kept apart and counted once per layer, as `du` does. The totals are the sums
//! over all directories, and equal what [`super::walk::walk`] counts (tests check it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::walk::LayerUsage;

/// (device, inode) of a file with several links.
type Inode = (u64, u64);

/// A directory with at least this many entries is updated entry by entry when inotify
/// names the entries that changed, instead of being read again whole.
pub const LARGE_DIR: u64 = 2048;
/// Entries of one large directory whose figures are remembered; past it they are forgotten.
const HOT_ENTRIES: usize = 4096;

/// What inotify said of one entry of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryChange {
    /// Written, truncated, or its attributes changed (IN_MODIFY, IN_ATTRIB).
    Changed,
    /// A new name (IN_CREATE).
    Created,
    /// A name that went (IN_DELETE, IN_MOVED_FROM).
    Removed,
    /// A name moved in, maybe over an existing one (IN_MOVED_TO).
    MovedIn,
}

/// What changed in one directory since the last update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirNews {
    /// Read it again whole (a subdirectory came or went, the directory itself changed).
    pub whole: bool,
    /// Named non-directory entries, in the order the changes happened.
    pub entries: Vec<(OsString, EntryChange)>,
}

impl DirNews {
    pub fn whole() -> DirNews {
        DirNews {
            whole: true,
            entries: Vec::new(),
        }
    }
}

/// The figures of one single-link file or whiteout, for entry-by-entry updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntryFigures {
    bytes: u64,
    whiteout: bool,
}

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
    /// Entries, subdirectories included.
    entries: u64,
    /// In a large directory: the figures of the entries that changed lately.
    hot: HashMap<OsString, EntryFigures>,
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

    /// Entries read since the last call: what the last updates cost.
    #[cfg(test)]
    fn take_visited(&mut self) -> u64 {
        std::mem::take(&mut self.visited)
    }

    #[cfg(test)]
    fn dir_count(&self) -> usize {
        self.dirs.len()
    }

    /// Reads again the directories named (relative to the root) whole: see [`Self::apply`].
    #[cfg(test)]
    fn update(
        &mut self,
        changed: impl IntoIterator<Item = PathBuf>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<()> {
        self.apply(changed.into_iter().map(|d| (d, DirNews::whole())), on_dir)
    }

    /// Brings the figures up to date with what changed: a small directory, or one with news
    /// of more than its files, is read again with the whole of any subdirectory that appeared
    /// (subdirectories that went are forgotten with everything below them; a directory that
    /// is gone is forgotten). In a large directory ([`LARGE_DIR`]) only the entries named are
    /// looked at, once each has been seen in a read.
    pub fn apply(
        &mut self,
        news: impl IntoIterator<Item = (PathBuf, DirNews)>,
        on_dir: &mut dyn FnMut(&Path),
    ) -> std::io::Result<()> {
        // Parents first, so a subtree read for a new directory is not read twice.
        let mut news: Vec<(PathBuf, DirNews)> = news.into_iter().collect();
        news.sort_by_key(|(p, _)| p.components().count());
        let mut merged: BTreeMap<PathBuf, DirNews> = BTreeMap::new();
        let mut order = Vec::new();
        for (dir, n) in news {
            let entry = merged.entry(dir.clone()).or_insert_with(|| {
                order.push(dir);
                DirNews::default()
            });
            entry.whole |= n.whole;
            entry.entries.extend(n.entries);
        }
        for rel in order {
            let Some(n) = merged.remove(&rel) else {
                continue;
            };
            let large = self.dirs.get(&rel).is_some_and(|d| d.entries >= LARGE_DIR);
            if large && !n.whole && !n.entries.is_empty() {
                let mut transient = BTreeSet::new();
                if n.entries
                    .iter()
                    .all(|(name, change)| self.apply_entry(&rel, name, *change, &mut transient))
                {
                    continue;
                }
                // An entry the figures cannot follow: read the directory, and remember the
                // entries named so that their next changes are followed one by one.
                self.rescan(&rel, on_dir)?;
                self.remember(&rel, n.entries.iter().map(|(name, _)| name));
                continue;
            }
            self.rescan(&rel, on_dir)?;
            if large {
                self.remember(&rel, n.entries.iter().map(|(name, _)| name));
            }
        }
        Ok(())
    }

    /// One entry's change in a large directory, when its figures are known; false when the
    /// directory must be read instead. `transient`: names created in this batch that were
    /// gone again when looked at (a temporary file renamed away): their removal is nothing.
    fn apply_entry(
        &mut self,
        rel: &Path,
        name: &OsString,
        change: EntryChange,
        transient: &mut BTreeSet<OsString>,
    ) -> bool {
        let now = match self.entry_figures(&rel.join(name)) {
            Ok(now) => now,
            Err(()) => return false,
        };
        let Some(dir) = self.dirs.get_mut(rel) else {
            return false;
        };
        let known = dir.hot.get(name).copied();
        let before = match (change, known) {
            // A name that is new has no figures before.
            (EntryChange::Created, None) => {
                if now.is_none() {
                    transient.insert(name.clone());
                }
                None
            }
            (EntryChange::Removed, None) if now.is_none() && transient.contains(name) => None,
            (_, Some(k)) => Some(k),
            // Unknown: what it replaced or what it was cannot be told.
            (_, None) => return false,
        };
        if let Some(b) = before {
            dir.bytes -= b.bytes;
            dir.inodes -= 1;
            dir.whiteouts -= u64::from(b.whiteout);
            dir.entries -= 1;
            dir.hot.remove(name);
        }
        if let Some(n) = now {
            dir.bytes += n.bytes;
            dir.inodes += 1;
            dir.whiteouts += u64::from(n.whiteout);
            dir.entries += 1;
            if dir.hot.len() >= HOT_ENTRIES {
                dir.hot.clear();
            }
            dir.hot.insert(name.clone(), n);
        }
        true
    }

    /// The figures of one entry as it is now: None when it is gone; Err when it is not a
    /// single-link file or whiteout (a directory, a hard link) or cannot be read.
    fn entry_figures(&self, rel: &Path) -> Result<Option<EntryFigures>, ()> {
        match fs::symlink_metadata(self.root.join(rel)) {
            Ok(m) if m.is_dir() || m.nlink() > 1 => Err(()),
            Ok(m) => Ok(Some(EntryFigures {
                bytes: m.size(),
                whiteout: m.file_type().is_char_device() && m.rdev() == 0,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// Takes note of the named entries' figures as they are now (after a read).
    fn remember<'a>(&mut self, rel: &Path, names: impl Iterator<Item = &'a OsString>) {
        let figures: Vec<(OsString, EntryFigures)> = names
            .filter_map(|n| match self.entry_figures(&rel.join(n)) {
                Ok(Some(f)) => Some((n.clone(), f)),
                _ => None,
            })
            .collect();
        if let Some(dir) = self.dirs.get_mut(rel) {
            for (name, f) in figures {
                if dir.hot.len() >= HOT_ENTRIES {
                    dir.hot.clear();
                }
                dir.hot.insert(name, f);
            }
        }
    }

    /// Reads one known directory again (see [`Self::apply`]).
    fn rescan(&mut self, rel: &Path, on_dir: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
        let Some(old) = self.dirs.get(rel).cloned() else {
            return Ok(()); // not known (already forgotten, or read with a new parent)
        };
        let full = self.root.join(rel);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                self.forget_subtree(rel);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget_subtree(rel);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.unlink_all(&old.linked);
        let Some(fresh) = self.read_dir(rel, old.own_volume, old.volume)? else {
            self.forget_subtree(rel);
            return Ok(());
        };
        for gone in old.subdirs.difference(&fresh.subdirs) {
            self.forget_subtree(&rel.join(gone));
        }
        let added: Vec<OsString> = fresh.subdirs.difference(&old.subdirs).cloned().collect();
        let volume = fresh.volume;
        self.link_all(&fresh.linked);
        self.dirs.insert(rel.to_path_buf(), fresh);
        // The entries followed one by one stay followed.
        self.remember(rel, old.hot.keys());
        for name in added {
            let child = rel.join(&name);
            let child_volume = volume.or_else(|| self.volume_at(&child));
            on_dir(&self.root.join(&child));
            self.add_subtree_at(child, volume, child_volume, on_dir)?;
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
            sums.entries += 1;
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

    /// A directory of 3000 files: once an entry has been seen in a read, its next changes
    /// cost a stat, not a read of the directory; the figures always match a full walk.
    #[test]
    fn in_a_large_directory_named_entries_are_followed_one_by_one() {
        use EntryChange::*;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        let big = root.join("big");
        fs::create_dir_all(&big).unwrap();
        for i in 0..3000 {
            fs::write(big.join(format!("f{i}")), b"x").unwrap();
        }
        let mut tree = LayerTree::read(&root, &[], None, &mut |_| {})
            .unwrap()
            .unwrap();
        tree.take_visited();
        let news = |entries: &[(&str, EntryChange)]| {
            vec![(
                PathBuf::from("big"),
                DirNews {
                    whole: false,
                    entries: entries
                        .iter()
                        .map(|(n, c)| (OsString::from(n), *c))
                        .collect(),
                },
            )]
        };
        let mut step = |what: &str, entries: &[(&str, EntryChange)], reads_dir: bool| {
            tree.apply(news(entries), &mut |_| {}).unwrap();
            assert_eq!(tree.usage(), walked(&root, &[]), "after: {what}");
            let visited = tree.take_visited();
            assert_eq!(visited >= 3000, reads_dir, "{what}: {visited} entries read");
        };

        fs::write(big.join("log"), b"one").unwrap();
        step("a new file", &[("log", Created)], false);
        fs::write(big.join("log"), b"one two three").unwrap();
        step("the new file grows", &[("log", Changed)], false);
        fs::write(big.join("f7"), b"longer than before").unwrap();
        step(
            "an old file never seen in a read changes",
            &[("f7", Changed)],
            true,
        );
        fs::write(big.join("f7"), b"short").unwrap();
        step("then again", &[("f7", Changed)], false);
        fs::remove_file(big.join("log")).unwrap();
        step("a followed file goes", &[("log", Removed)], false);
        fs::remove_file(big.join("f9")).unwrap();
        whiteout(&big.join("f9"));
        step(
            "a file becomes a whiteout",
            &[("f9", Removed), ("f9", Created)],
            true,
        );
        fs::write(big.join("tmp"), b"replacement").unwrap();
        fs::rename(big.join("tmp"), big.join("f7")).unwrap();
        step(
            "a rename over a followed file",
            &[("tmp", Created), ("tmp", Removed), ("f7", MovedIn)],
            false,
        );
        fs::hard_link(big.join("f7"), big.join("f7-link")).unwrap();
        step(
            "a hard link",
            &[("f7-link", Created), ("f7", Changed)],
            true,
        );
    }
}
