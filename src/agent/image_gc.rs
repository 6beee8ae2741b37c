//! kubelet's image garbage collection, one pass at a time in the background.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::shared::Shared;
use crate::image::digest::Digest;
use crate::image::gc_policy::Watermarks;
use crate::image::store::Store;
use crate::source::manifests::Desired;

/// One image garbage collection pass: images the desired pods name are kept even while none
/// of their containers exists (between restarts, before the first start).
pub async fn collect_images(
    store: Arc<Store>,
    shared: Arc<Shared>,
    marks: Watermarks,
    desired: Desired,
    running: Arc<AtomicBool>,
) {
    let result = tokio::task::spawn_blocking(move || {
        let keep: BTreeSet<Digest> = desired
            .pods
            .values()
            .flat_map(|p| p.all_containers())
            .filter_map(|c| store.resolve_reference(&c.image).ok())
            .collect();
        store.free_space(marks, &keep)
    })
    .await;
    running.store(false, Ordering::Release);
    match result {
        Ok(Ok(report)) => {
            if report.wanted_bytes == 0 {
                return;
            }
            shared.metrics.gc_runs.inc();
            shared
                .metrics
                .gc_images_removed
                .inc_by(report.images_removed.len() as u64);
            shared
                .metrics
                .gc_freed_bytes
                .inc_by(report.collected.bytes_freed);
            tracing::info!(
                before = format!("{:.1}%", report.usage_percent_before),
                after = format!("{:.1}%", report.usage_percent_after),
                images = ?report.images_removed,
                freed = report.collected.bytes_freed,
                "image garbage collection"
            );
            if report.short_of_target() {
                shared.node_event(
                    "Warning",
                    "FreeDiskSpaceFailed",
                    format!(
                        "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                        report.wanted_bytes, report.collected.bytes_freed
                    ),
                );
            }
        }
        Ok(Err(e)) => shared.node_event("Warning", "ImageGCFailed", e.to_string()),
        Err(e) => shared.node_event("Warning", "ImageGCFailed", e.to_string()),
    }
}
