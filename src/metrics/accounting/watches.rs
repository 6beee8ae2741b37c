//! inotify on every directory of every upperdir: writes through overlay land there, so a
//! tick knows which containers, and which of their directories, changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use crate::metrics::error::MetricsError;
use crate::metrics::tree::{DirNews, EntryChange};

/// IN_ATTRIB: a new or removed hard link changes the link count of a file in another
/// directory, which counts it once per layer.
const WATCH_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The inotify instance and which container each watch belongs to; shared by both threads.
/// Without an instance (the kernel's per-user limit of instances reached) every container
/// counts as unwatched and is re-walked on the timer instead.
pub(super) struct Watches {
    inotify: Option<Inotify>,
    /// Each watch's container and directory.
    owners: Mutex<HashMap<WatchDescriptor, (String, PathBuf)>>,
}

impl Watches {
    /// Without an inotify instance every container is re-walked on a timer instead.
    pub(super) fn new() -> Watches {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| {
                tracing::warn!(error = %MetricsError::Inotify(e), "writable layers are re-walked on a timer instead");
            })
            .ok();
        Watches {
            inotify,
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// Watches `dir` for container `id`; false when the kernel refused (watch limit).
    pub(super) fn add(&self, id: &str, dir: &Path) -> bool {
        let Some(inotify) = &self.inotify else {
            return false;
        };
        match inotify.add_watch(dir, WATCH_MASK) {
            Ok(wd) => {
                // A directory moved within the layer keeps its watch: the path is renewed.
                self.owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(wd, (id.to_string(), dir.to_path_buf()));
                true
            }
            // A directory removed under the walk is no failure to watch.
            Err(nix::Error::ENOENT) | Err(nix::Error::ENOTDIR) => true,
            Err(_) => false,
        }
    }

    pub(super) fn forget(&self, id: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<WatchDescriptor> = owners
            .iter()
            .filter(|(_, (o, _))| o.as_str() == id)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in mine {
            owners.remove(&wd);
            if let Some(inotify) = &self.inotify {
                let _ = inotify.rm_watch(wd);
            }
        }
    }

    /// The news since the last call, by container and directory; None when the queue
    /// overflowed (all are suspect).
    pub(super) fn drain(&self) -> Option<HashMap<String, HashMap<PathBuf, DirNews>>> {
        let mut dirty: HashMap<String, HashMap<PathBuf, DirNews>> = HashMap::new();
        let Some(inotify) = &self.inotify else {
            return Some(dirty);
        };
        loop {
            let events = match inotify.read_events() {
                Ok(e) if !e.is_empty() => e,
                _ => return Some(dirty),
            };
            let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    return None;
                }
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    if let Some((id, dir)) = owners.remove(&event.wd) {
                        dirty.entry(id).or_default().entry(dir).or_default().whole = true;
                    }
                    continue;
                }
                if let Some((id, dir)) = owners.get(&event.wd) {
                    let news = dirty
                        .entry(id.clone())
                        .or_default()
                        .entry(dir.clone())
                        .or_default();
                    match (entry_change(event.mask), event.name) {
                        (Some(change), Some(name)) => news.entries.push((name, change)),
                        _ => news.whole = true,
                    }
                }
            }
        }
    }
}

/// What an event says of a non-directory entry; None for a directory's own events and for
/// subdirectories (their directory is read again).
fn entry_change(mask: AddWatchFlags) -> Option<EntryChange> {
    if mask.contains(AddWatchFlags::IN_ISDIR) {
        return None;
    }
    if mask.contains(AddWatchFlags::IN_CREATE) {
        Some(EntryChange::Created)
    } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
        Some(EntryChange::Removed)
    } else if mask.contains(AddWatchFlags::IN_MOVED_TO) {
        Some(EntryChange::MovedIn)
    } else if mask.intersects(AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ATTRIB) {
        Some(EntryChange::Changed)
    } else {
        None
    }
}
