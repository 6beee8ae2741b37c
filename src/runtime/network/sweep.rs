//! The start-up leak sweep and the CNI 1.1 housekeeping commands: every recorded attachment
//! whose pod is gone is detached, then plugins that speak 1.1 are told which attachments are
//! still valid (GC) so they free anything else; STATUS asks whether they can attach now.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::attach::{site, Cni};
use super::config::PluginConfig;
use super::error::NetworkError;
use super::exec::{run_plugin, PluginCall};
use super::identity::AttachmentId;
use super::plugin_config::{gc_stdin, status_stdin, version_stdin};
use super::version::{SpecVersion, GC_AND_STATUS};

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Attachments of gone pods that were detached and forgotten.
    pub removed: Vec<AttachmentId>,
    /// What could not be cleaned, with the attachment where known; kept for the next sweep.
    pub failed: Vec<(Option<AttachmentId>, NetworkError)>,
    /// Plugins that were given a GC.
    pub collected: Vec<String>,
}

#[derive(Deserialize)]
struct VersionAnswer {
    #[serde(rename = "supportedVersions", default)]
    supported_versions: Vec<String>,
}

impl Cni {
    /// Detaches every recorded attachment that is not in `live`, then runs GC where the
    /// network and its plugins speak CNI 1.1. Each failure is reported and the rest goes on.
    pub fn sweep(&self, live: &HashSet<AttachmentId>) -> Result<SweepReport, NetworkError> {
        let mut report = SweepReport::default();
        let mut valid: BTreeSet<AttachmentId> = live.iter().cloned().collect();
        for record in self.cache.list()? {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    report.failed.push((None, e));
                    continue;
                }
            };
            if live.contains(&record.id) {
                continue;
            }
            match self
                .del_record(&record)
                .and_then(|()| self.cache.remove(&record.id))
            {
                Ok(()) => report.removed.push(record.id),
                Err(e) => {
                    // Still held: GC must not free it behind the record's back.
                    valid.insert(record.id.clone());
                    report.failed.push((Some(record.id), e));
                }
            }
        }
        let valid: Vec<AttachmentId> = valid.into_iter().collect();
        for (plugin, result) in self.gc(&valid) {
            match result {
                Ok(()) => report.collected.push(plugin),
                Err(e) => report.failed.push((None, e)),
            }
        }
        Ok(report)
    }

    /// GC through each plugin that supports 1.1, when the network's version is 1.1 or later
    /// and GC is not disabled.
    fn gc(&self, valid: &[AttachmentId]) -> Vec<(String, Result<(), NetworkError>)> {
        if self.network.disable_gc || !GC_AND_STATUS.is_met_by(&self.network.cni_version) {
            return Vec::new();
        }
        let mut done = Vec::new();
        for plugin in &self.network.plugins {
            let result = self.speaks_1_1(plugin).and_then(|binary| match binary {
                None => Ok(false),
                Some(binary) => self
                    .call_housekeeping(
                        plugin,
                        &binary,
                        "GC",
                        gc_stdin(&self.network, plugin, valid),
                    )
                    .map(|_| true),
            });
            match result {
                Ok(false) => {}
                Ok(true) => done.push((plugin.plugin_type.clone(), Ok(()))),
                Err(e) => done.push((plugin.plugin_type.clone(), Err(e))),
            }
        }
        done
    }

    /// STATUS through each plugin that supports 1.1: an error means the network cannot
    /// attach pods now. Networks and plugins before 1.1 have no STATUS and count as ready.
    pub fn status(&self) -> Result<(), NetworkError> {
        if !GC_AND_STATUS.is_met_by(&self.network.cni_version) {
            return Ok(());
        }
        for plugin in &self.network.plugins {
            if let Some(binary) = self.speaks_1_1(plugin)? {
                self.call_housekeeping(
                    plugin,
                    &binary,
                    "STATUS",
                    status_stdin(&self.network, plugin),
                )?;
            }
        }
        Ok(())
    }

    /// The CNI versions a plugin says it supports (VERSION).
    pub fn supported_versions(&self, plugin: &PluginConfig) -> Result<Vec<String>, NetworkError> {
        let binary = self.plugin_binary(&self.network, plugin)?;
        self.versions_of(plugin, &binary)
    }

    fn versions_of(
        &self,
        plugin: &PluginConfig,
        binary: &Path,
    ) -> Result<Vec<String>, NetworkError> {
        let stdout =
            self.call_housekeeping(plugin, binary, "VERSION", version_stdin(&self.network))?;
        let answer: VersionAnswer =
            serde_json::from_slice(&stdout).map_err(|e| NetworkError::PluginOutput {
                site: site(&self.network, plugin, "VERSION"),
                reason: format!("not a version answer ({e})"),
            })?;
        Ok(answer.supported_versions)
    }

    /// The plugin's binary when it supports CNI 1.1 (GC, STATUS), else None.
    fn speaks_1_1(&self, plugin: &PluginConfig) -> Result<Option<PathBuf>, NetworkError> {
        let binary = self.plugin_binary(&self.network, plugin)?;
        let speaks = self
            .versions_of(plugin, &binary)?
            .iter()
            .any(|v| SpecVersion::parse(v) == Some(GC_AND_STATUS));
        Ok(speaks.then_some(binary))
    }

    /// A call that concerns no attachment: no container, namespace or interface.
    fn call_housekeeping(
        &self,
        plugin: &PluginConfig,
        binary: &Path,
        command: &'static str,
        stdin: Vec<u8>,
    ) -> Result<Vec<u8>, NetworkError> {
        run_plugin(
            PluginCall {
                site: site(&self.network, plugin, command),
                binary,
                container_id: "",
                netns: "",
                ifname: "",
                args: "",
                stdin,
            },
            &self.exec,
        )
    }
}
