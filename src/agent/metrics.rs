//! The agent's own series in the registry it was handed: pods by phase and its counters,
//! read from [`Shared`] at scrape time, plus the labels it files errors under.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::shared::Shared;
use crate::metrics::family::Family;

pub struct AgentCollector {
    shared: Weak<Shared>,
    pods: Family,
    manifest_errors: Family,
    reconcile_errors: Family,
    reconciles: Family,
}

impl AgentCollector {
    pub fn new(shared: Weak<Shared>) -> Self {
        AgentCollector {
            shared,
            pods: Family::gauge(
                "layerlet_pods",
                "Pods the agent knows, by phase.",
                &["phase"],
            ),
            manifest_errors: Family::counter(
                "layerlet_manifest_errors_total",
                "Manifest files found invalid.",
                &[],
            ),
            reconcile_errors: Family::counter(
                "layerlet_reconcile_errors_total",
                "Reconcile steps that failed.",
                &[],
            ),
            reconciles: Family::counter("layerlet_reconciles_total", "Reconcile rounds.", &[]),
        }
    }
}

impl Collector for AgentCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![
            &self.pods.desc,
            &self.manifest_errors.desc,
            &self.reconcile_errors.desc,
            &self.reconciles.desc,
        ]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(shared) = self.shared.upgrade() else {
            return Vec::new();
        };
        let mut phases: BTreeMap<String, u64> = BTreeMap::new();
        {
            let pods = shared.pods.lock().unwrap_or_else(|p| p.into_inner());
            for item in pods["items"].as_array().into_iter().flatten() {
                let phase = item["status"]["phase"].as_str().unwrap_or("Unknown");
                *phases.entry(phase.to_string()).or_insert(0) += 1;
            }
        }
        let mut pods = self.pods.start();
        for (phase, n) in &phases {
            self.pods.add(&mut pods, &[phase], *n as f64);
        }
        let counter = |f: &Family, v: u64| {
            let mut mf = f.start();
            f.add(&mut mf, &[], v as f64);
            mf
        };
        vec![
            pods,
            counter(
                &self.manifest_errors,
                shared.manifest_errors.load(Ordering::Relaxed),
            ),
            counter(
                &self.reconcile_errors,
                shared.reconcile_errors.load(Ordering::Relaxed),
            ),
            counter(&self.reconciles, shared.reconciles.load(Ordering::Relaxed)),
        ]
    }
}
