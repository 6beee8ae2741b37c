//! The big-walk worker: a container whose layer is over the main thread's walk budget (a
//! million files) is walked here, so its walk delays no other container's figures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use super::watches::Watches;
use crate::metrics::tree::{DirNews, LayerTree};

/// Work for the big-walk worker: the layer's tree to update with the directories that
/// changed, or (no tree) a full read.
pub(super) struct Job {
    pub(super) id: String,
    pub(super) upper: PathBuf,
    pub(super) volumes: Vec<String>,
    pub(super) tree: Option<LayerTree>,
    pub(super) changed: Vec<(PathBuf, DirNews)>,
}

pub(super) struct JobResult {
    pub(super) id: String,
    pub(super) tree: Option<LayerTree>,
    /// A full read (it restarts the safety net's timer).
    pub(super) full: bool,
    pub(super) watched: bool,
    pub(super) seconds: f64,
}

/// The main thread's end of the worker: jobs go in, results come back.
pub(super) struct Worker {
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) results: Arc<Mutex<Vec<JobResult>>>,
}

/// Starts the big-walk worker; it ends with the channel or at `stop`.
pub(super) fn spawn(watches: Arc<Watches>, stop: Arc<AtomicBool>) -> std::io::Result<Worker> {
    let (jobs, jobs_rx) = mpsc::channel::<Job>();
    let results = Arc::new(Mutex::new(Vec::<JobResult>::new()));
    let worker_results = results.clone();
    std::thread::Builder::new()
        .name("layerlet-big-walks".into())
        .spawn(move || big_walks(jobs_rx, &watches, &worker_results, &stop))?;
    Ok(Worker { jobs, results })
}

fn big_walks(
    jobs: mpsc::Receiver<Job>,
    watches: &Watches,
    results: &Mutex<Vec<JobResult>>,
    stop: &AtomicBool,
) {
    while let Ok(job) = jobs.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let started = Instant::now();
        let mut watched = true;
        let mut on_dir = |dir: &Path| watched &= watches.add(&job.id, dir);
        let (tree, full) = match job.tree {
            Some(mut tree) => match tree.apply(job.changed, &mut on_dir) {
                Ok(()) => (Some(tree), false),
                Err(_) => (None, false),
            },
            None => (
                LayerTree::read(&job.upper, &job.volumes, None, &mut on_dir)
                    .ok()
                    .flatten(),
                true,
            ),
        };
        results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(JobResult {
                id: job.id,
                tree,
                full,
                watched,
                seconds: started.elapsed().as_secs_f64(),
            });
    }
}
