//! Prometheus metrics: a registry the agent creates and passes in (never the global one),
//! the operations counters and histograms the agent feeds, and the per-container CoW and
//! layer-sharing figures that the background accounting thread keeps in a cache.
//!
//! A scrape only reads that cache and the counters: it never walks a filesystem.

pub mod accounting;
pub mod collect;
pub mod error;
pub mod eviction;
pub mod network;
pub mod sharing;
pub mod start;
pub mod tree;
pub mod walk;

use std::sync::Arc;

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry, TextEncoder,
};

pub use accounting::{Accounting, AccountingOptions, Cache};
pub use error::MetricsError;

/// Longest label value exported. A value from an image (a VOLUME path) or a manifest can be
/// arbitrarily long; capping keeps each series, and so the scrape, bounded.
pub const MAX_LABEL_BYTES: usize = 256;

/// `value` cut to at most [`MAX_LABEL_BYTES`] bytes, at a character boundary. Escaping of
/// quotes, backslashes and newlines is the text encoder's job.
pub fn cap_label(value: &str) -> String {
    if value.len() <= MAX_LABEL_BYTES {
        return value.to_string();
    }
    let mut end = MAX_LABEL_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// Every metric layerlet exports, registered in one registry.
pub struct Metrics {
    pub registry: Registry,
    /// Figures of the accounting thread (per container, sharing), read by scrapes.
    pub cache: Arc<Cache>,
    /// Seconds from a pod's manifest being seen to the pod Running; `pull` is "true" when
    /// an image was pulled for it on the way.
    pub pod_start_seconds: HistogramVec,
    pub pull_seconds: HistogramVec,
    pub pull_bytes: IntCounter,
    pub pulls: IntCounterVec,
    /// Reconcile steps that failed, by step (`create_pod`, `start_container`, ...).
    pub reconcile_step_errors: IntCounterVec,
    /// Manifest files found invalid, by reason (`yaml`, `field`, `read`, ...).
    pub manifest_validation_errors: IntCounterVec,
    /// Image garbage collection passes that found the disk above the high threshold, the
    /// images they removed and the bytes of layers and blobs they freed.
    pub gc_runs: IntCounter,
    pub gc_images_removed: IntCounter,
    pub gc_freed_bytes: IntCounter,
    /// Pods evicted for passing their ephemeral-storage limit.
    pub evictions: IntCounter,
    pub start: start::StartTracker,
}

impl Default for Metrics {
    fn default() -> Self {
        // Only fails on a duplicate or malformed name: a programming error caught by tests.
        Metrics::new().expect("metric definitions are valid")
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    c: C,
) -> Result<C, MetricsError> {
    registry
        .register(Box::new(c.clone()))
        .map_err(|source| MetricsError::Register {
            name: name.to_string(),
            source,
        })?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let err = |name: &str| {
            let name = name.to_string();
            move |source| MetricsError::Register { name, source }
        };
        let cache = Arc::new(Cache::default());
        registry
            .register(Box::new(collect::CacheCollector::new(cache.clone())))
            .map_err(err("cache collector"))?;
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(err("process collector"))?;
        // 50 ms to ~7 min: a pod start without a pull is sub-second, a big pull minutes.
        let start_buckets = exponential_buckets(0.05, 2.0, 14).map_err(err("buckets"))?;
        let pod_start_seconds = register(
            &registry,
            "layerlet_pod_start_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "layerlet_pod_start_duration_seconds",
                    "Seconds from a pod's manifest being seen to the pod Running, by whether an image was pulled for it.",
                )
                .buckets(start_buckets.clone()),
                &["pull"],
            )
            .map_err(err("layerlet_pod_start_duration_seconds"))?,
        )?;
        let pull_seconds = register(
            &registry,
            "layerlet_image_pull_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "layerlet_image_pull_duration_seconds",
                    "Seconds an image pull took, by result.",
                )
                .buckets(start_buckets),
                &["result"],
            )
            .map_err(err("layerlet_image_pull_duration_seconds"))?,
        )?;
        let pull_bytes = register(
            &registry,
            "layerlet_image_pull_bytes_total",
            IntCounter::new(
                "layerlet_image_pull_bytes_total",
                "Bytes fetched from registries by image pulls (layers already present are not fetched).",
            )
            .map_err(err("layerlet_image_pull_bytes_total"))?,
        )?;
        let pulls = register(
            &registry,
            "layerlet_image_pulls_total",
            IntCounterVec::new(
                Opts::new("layerlet_image_pulls_total", "Image pulls, by result."),
                &["result"],
            )
            .map_err(err("layerlet_image_pulls_total"))?,
        )?;
        let reconcile_step_errors = register(
            &registry,
            "layerlet_reconcile_step_errors_total",
            IntCounterVec::new(
                Opts::new(
                    "layerlet_reconcile_step_errors_total",
                    "Reconcile steps that failed, by step.",
                ),
                &["step"],
            )
            .map_err(err("layerlet_reconcile_step_errors_total"))?,
        )?;
        let manifest_validation_errors = register(
            &registry,
            "layerlet_manifest_validation_errors_total",
            IntCounterVec::new(
                Opts::new(
                    "layerlet_manifest_validation_errors_total",
                    "Manifest files found invalid, by reason.",
                ),
                &["reason"],
            )
            .map_err(err("layerlet_manifest_validation_errors_total"))?,
        )?;
        let gc_runs = register(
            &registry,
            "layerlet_image_gc_runs_total",
            IntCounter::new(
                "layerlet_image_gc_runs_total",
                "Image garbage collection passes that found the disk above the high threshold.",
            )
            .map_err(err("layerlet_image_gc_runs_total"))?,
        )?;
        let gc_images_removed = register(
            &registry,
            "layerlet_image_gc_images_removed_total",
            IntCounter::new(
                "layerlet_image_gc_images_removed_total",
                "Images that image garbage collection removed.",
            )
            .map_err(err("layerlet_image_gc_images_removed_total"))?,
        )?;
        let gc_freed_bytes = register(
            &registry,
            "layerlet_image_gc_freed_bytes_total",
            IntCounter::new(
                "layerlet_image_gc_freed_bytes_total",
                "Bytes of layers and blobs that image garbage collection removed.",
            )
            .map_err(err("layerlet_image_gc_freed_bytes_total"))?,
        )?;
        let evictions = register(
            &registry,
            "layerlet_evictions_total",
            IntCounter::new(
                "layerlet_evictions_total",
                "Pods evicted for passing their ephemeral-storage limit.",
            )
            .map_err(err("layerlet_evictions_total"))?,
        )?;
        Ok(Metrics {
            registry,
            cache,
            pod_start_seconds,
            pull_seconds,
            pull_bytes,
            pulls,
            reconcile_step_errors,
            manifest_validation_errors,
            gc_runs,
            gc_images_removed,
            gc_freed_bytes,
            evictions,
            start: start::StartTracker::default(),
        })
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> Result<Vec<u8>, MetricsError> {
        let mut out = Vec::with_capacity(64 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(MetricsError::Encode)?;
        Ok(out)
    }
}

/// Builds metric families for a custom collector: one [`prometheus::core::Desc`] per
/// family, and samples added with their label values in the family's label order.
pub mod family {
    use prometheus::core::Desc;
    use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

    pub struct Family {
        pub desc: Desc,
        kind: MetricType,
        labels: &'static [&'static str],
    }

    impl Family {
        pub fn gauge(name: &str, help: &str, labels: &'static [&'static str]) -> Family {
            Family::new(name, help, labels, MetricType::GAUGE)
        }

        pub fn counter(name: &str, help: &str, labels: &'static [&'static str]) -> Family {
            Family::new(name, help, labels, MetricType::COUNTER)
        }

        fn new(
            name: &str,
            help: &str,
            labels: &'static [&'static str],
            kind: MetricType,
        ) -> Family {
            let desc = Desc::new(
                name.to_string(),
                help.to_string(),
                labels.iter().map(|l| l.to_string()).collect(),
                Default::default(),
            )
            .expect("a valid metric name and label names");
            Family { desc, kind, labels }
        }

        pub fn start(&self) -> MetricFamily {
            let mut mf = MetricFamily::default();
            mf.set_name(self.desc.fq_name.clone());
            mf.set_help(self.desc.help.clone());
            mf.set_field_type(self.kind);
            mf
        }

        /// Adds one sample; `values` in the order of the family's labels (capped).
        pub fn add(&self, mf: &mut MetricFamily, values: &[&str], value: f64) {
            debug_assert_eq!(values.len(), self.labels.len());
            let pairs = self
                .labels
                .iter()
                .zip(values)
                .map(|(name, v)| {
                    let mut p = LabelPair::default();
                    p.set_name(name.to_string());
                    p.set_value(super::cap_label(v));
                    p
                })
                .collect();
            let mut m = Metric::from_label(pairs);
            match self.kind {
                MetricType::COUNTER => {
                    let mut c = Counter::default();
                    c.set_value(value);
                    m.set_counter(c);
                }
                _ => {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    m.set_gauge(g);
                }
            }
            mf.mut_metric().push(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_label_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let cut = cap_label(&long);
        assert!(cut.len() <= MAX_LABEL_BYTES);
        assert_eq!(cut.len(), 256);
        assert!(long.starts_with(&cut));
        let odd = format!("a{}", "é".repeat(200));
        assert_eq!(cap_label(&odd).len(), 255);
        assert_eq!(cap_label("short"), "short");
    }

    #[test]
    fn a_fresh_registry_renders_and_holds_no_global_state() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.gc_runs.inc();
        let text_a = String::from_utf8(a.render().unwrap()).unwrap();
        let text_b = String::from_utf8(b.render().unwrap()).unwrap();
        assert!(
            text_a.contains("layerlet_image_gc_runs_total 1"),
            "{text_a}"
        );
        assert!(
            text_b.contains("layerlet_image_gc_runs_total 0"),
            "{text_b}"
        );
    }
}
