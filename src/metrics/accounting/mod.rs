//! The accounting thread: keeps every container's figures (writable-layer bytes and inodes,
//! unmounted-VOLUME bytes, logs, memory, CPU, state) and the sharing figures in a cache that
//! scrapes read. Scrapes never walk a filesystem.
//!
//! Cheap by construction:
//! - inotify watches every directory of every upperdir (writes through overlay land there
//!   and are seen), so a tick re-walks only the containers that changed; a slow periodic
//!   full re-walk catches what inotify cannot see (writes through a shared mmap);
//! - a walk has a budget of entries: a container over it (a million files) goes to a
//!   worker of its own, so its walk delays no other container's figures and no scrape;
//! - a container whose directories could not all be watched (the kernel's watch limit) is
//!   re-walked on a timer instead, within the staleness bound.
//!
//! Both are plain OS threads: a walk is blocking I/O that must not sit on the tokio pool.

mod figures;
mod state;
mod watches;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use self::state::State;
use self::watches::Watches;
use crate::image::store::Store;
use crate::meta::Db;
use crate::metrics::error::MetricsError;
use crate::runtime::container::Runtime;

pub use self::figures::{Cache, ContainerFigures, Figures};
pub use self::state::AccountingOptions;

/// The running accounting; stops its threads when dropped (a big walk in progress ends at
/// its next directory).
pub struct Accounting {
    stop: Arc<AtomicBool>,
}

impl Drop for Accounting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Accounting {
    /// Starts the accounting of the containers of `rt`'s data root into `cache`.
    pub fn start(
        rt: Runtime,
        store: Arc<Store>,
        cache: Arc<Cache>,
        options: AccountingOptions,
    ) -> Result<Accounting, MetricsError> {
        let watches = Arc::new(Watches::new());
        // Its own connection: the agent's is not held while walking; WAL lets both read.
        let db = Db::open(store.layout())?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = worker::spawn(watches.clone(), stop.clone()).map_err(MetricsError::Thread)?;
        let state = State::new(rt, store, db, cache, options, watches, worker);
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name("layerlet-accounting".into())
            .spawn(move || state.run(&stop2))
            .map_err(MetricsError::Thread)?;
        Ok(Accounting { stop })
    }
}
