//! Attaching a pod to the network and detaching it, as libcni runs a chain: ADD through
//! the plugins in order, each given the previous one's result; DEL in reverse with the
//! recorded config and result. Every step is recorded first, so an interrupted ADD is
//! always undone by DEL.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cache::{AttachmentCache, AttachmentRecord};
use super::config::{find_plugin, parse_list, NetworkConfig, PluginConfig};
use super::error::{NetworkError, PluginSite};
use super::exec::{run_plugin, ExecSettings, PluginCall};
use super::identity::{cni_args, AttachmentId, PodRef};
use super::netns::is_namespace_file;
use super::plugin_config::plugin_stdin;
use super::result::{parse_result, result_from_value, CniResult};
use super::runtime_config::RuntimeConfig;
use super::version::PREV_RESULT_ON_DEL;

/// Where plugins are looked for when nothing else is said: the upstream location, then
/// Debian's (`containernetworking-plugins`).
pub const DEFAULT_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];
/// How long one plugin call may take before it is killed.
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a node runs its network's plugins.
#[derive(Debug, Clone)]
pub struct CniOptions {
    pub bin_dirs: Vec<PathBuf>,
    /// The attachment records (`<data root>/cni/attachments`): they must survive a reboot
    /// as long as the IPAM store does.
    pub attachments_dir: PathBuf,
    pub timeout: Duration,
    /// Run plugins inside this network namespace rather than the caller's (tests).
    pub plugin_netns: Option<PathBuf>,
}

impl CniOptions {
    pub fn new(attachments_dir: impl Into<PathBuf>) -> CniOptions {
        CniOptions {
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            attachments_dir: attachments_dir.into(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            plugin_netns: None,
        }
    }
}

/// What a pod asks of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: AttachmentId,
    pub pod: PodRef,
    /// The pod's network namespace (its pinned nsfs file).
    pub netns: PathBuf,
    pub runtime_config: RuntimeConfig,
}

/// A finished ADD: the chain's result and the pod's IPs in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    pub id: AttachmentId,
    pub result: CniResult,
    /// IPv4 first, then IPv6.
    pub ips: Vec<IpAddr>,
}

/// One node's network: the chain to attach new pods with and the records of those attached.
#[derive(Debug, Clone)]
pub struct Cni {
    pub(super) network: NetworkConfig,
    pub(super) exec: ExecSettings,
    pub(super) cache: AttachmentCache,
}

impl Cni {
    pub fn new(network: NetworkConfig, options: CniOptions) -> Cni {
        Cni {
            network,
            exec: ExecSettings {
                bin_dirs: options.bin_dirs,
                timeout: options.timeout,
                plugin_netns: options.plugin_netns,
            },
            cache: AttachmentCache::new(options.attachments_dir),
        }
    }

    pub fn network(&self) -> &NetworkConfig {
        &self.network
    }

    /// Attaches a pod: ADD through the chain. A failed ADD is undone (DEL) before its error
    /// is returned; where the undo fails too, the record stays for the next sweep.
    pub fn add(&self, attachment: &Attachment) -> Result<Attached, NetworkError> {
        let binaries = self.plugin_binaries(&self.network)?;
        let args = cni_args(&attachment.pod, &attachment.id.container_id)?;
        let netns = path_str("pod network namespace", &attachment.netns)?;
        // An earlier ADD of the same attachment (a crash, a retry) is undone first.
        if self.cache.read(&attachment.id)?.is_some() {
            self.del(&attachment.id)?;
        }
        let mut record = AttachmentRecord {
            id: attachment.id.clone(),
            pod: attachment.pod.clone(),
            netns: attachment.netns.clone(),
            runtime_config: attachment.runtime_config.clone(),
            config_file: self.network.file.clone(),
            config: self.network.raw.clone(),
            result: None,
            complete: false,
        };
        self.cache.create(&record)?;
        let started = Instant::now();
        let added = self.add_chain(&mut record, &binaries, &args, netns);
        // The plugins' share of a pod start, for bench/net_start.sh and slow-start triage.
        tracing::debug!(
            attachment = %record.id,
            ok = added.is_ok(),
            ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
            "CNI ADD chain finished"
        );
        match added {
            Ok(result) => Ok(Attached {
                id: record.id,
                ips: result.pod_ips(&attachment.id.ifname),
                result,
            }),
            Err(error) => {
                match self.del_record(&record) {
                    Ok(()) => self.cache.remove(&record.id)?,
                    Err(undo) => tracing::warn!(
                        attachment = %record.id,
                        "undoing a failed CNI ADD failed; the next sweep retries: {undo}"
                    ),
                }
                Err(error)
            }
        }
    }

    fn add_chain(
        &self,
        record: &mut AttachmentRecord,
        binaries: &[PathBuf],
        args: &str,
        netns: &str,
    ) -> Result<CniResult, NetworkError> {
        let mut last = None;
        for (i, (plugin, binary)) in self.network.plugins.iter().zip(binaries).enumerate() {
            let site = site(&self.network, plugin, "ADD");
            let stdin = plugin_stdin(
                &self.network,
                plugin,
                record.result.as_ref(),
                &record.runtime_config,
            );
            let stdout = run_plugin(
                PluginCall {
                    site: site.clone(),
                    binary,
                    container_id: &record.id.container_id,
                    netns,
                    ifname: &record.id.ifname,
                    args,
                    stdin,
                },
                &self.exec,
            )?;
            let (result, value) = parse_result(&stdout, &self.network.cni_version)
                .map_err(|reason| NetworkError::PluginOutput { site, reason })?;
            record.result = Some(value);
            record.complete = i + 1 == self.network.plugins.len();
            // Recorded before the next plugin runs: DEL then gets the latest result.
            self.cache.update(record)?;
            last = Some(result);
        }
        // parse_list refuses an empty chain.
        last.ok_or_else(|| NetworkError::ConfigField {
            path: self.network.file.clone(),
            field: "plugins".into(),
            reason: "empty".into(),
        })
    }

    /// Detaches: DEL through the recorded chain in reverse, then forgets the record. An
    /// attachment with no record (never added, or already deleted) is fine: returns false.
    pub fn del(&self, id: &AttachmentId) -> Result<bool, NetworkError> {
        let Some(record) = self.cache.read(id)? else {
            return Ok(false);
        };
        self.del_record(&record)?;
        self.cache.remove(id)?;
        Ok(true)
    }

    /// DEL of every plugin of the record's chain, last first. A namespace that is gone is
    /// passed as empty, as libcni's callers do: plugins then free what they hold outside it.
    pub(super) fn del_record(&self, record: &AttachmentRecord) -> Result<(), NetworkError> {
        let network = parse_list(&record.config_file, record.config.clone())?;
        let binaries = self.plugin_binaries(&network)?;
        let netns = if is_namespace_file(&record.netns) {
            path_str("pod network namespace", &record.netns)?
        } else {
            ""
        };
        let prev = PREV_RESULT_ON_DEL
            .is_met_by(&network.cni_version)
            .then_some(record.result.as_ref())
            .flatten();
        let mut chain: Vec<_> = network.plugins.iter().zip(&binaries).collect();
        chain.reverse();
        let started = Instant::now();
        let deleted = self.call_each(&network, &chain, record, "DEL", netns, prev);
        tracing::debug!(
            attachment = %record.id,
            ok = deleted.is_ok(),
            ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
            "CNI DEL chain finished"
        );
        deleted
    }

    /// Runs `command` through `chain` in the order given, for the attachment of `record`.
    fn call_each(
        &self,
        network: &NetworkConfig,
        chain: &[(&PluginConfig, &PathBuf)],
        record: &AttachmentRecord,
        command: &'static str,
        netns: &str,
        prev: Option<&serde_json::Value>,
    ) -> Result<(), NetworkError> {
        let args = cni_args(&record.pod, &record.id.container_id)?;
        for (plugin, binary) in chain {
            run_plugin(
                PluginCall {
                    site: site(network, plugin, command),
                    binary,
                    container_id: &record.id.container_id,
                    netns,
                    ifname: &record.id.ifname,
                    args: &args,
                    stdin: plugin_stdin(network, plugin, prev, &record.runtime_config),
                },
                &self.exec,
            )?;
        }
        Ok(())
    }

    /// CHECK through the recorded chain: each plugin verifies what it set up is still there.
    /// Skipped for configs before 0.4.0 and for `disableCheck`.
    pub fn check(&self, id: &AttachmentId) -> Result<(), NetworkError> {
        let record = match self.cache.read(id)? {
            Some(record) if record.complete => record,
            _ => return Err(NetworkError::NotAttached { id: id.to_string() }),
        };
        let network = parse_list(&record.config_file, record.config.clone())?;
        if network.disable_check || !PREV_RESULT_ON_DEL.is_met_by(&network.cni_version) {
            return Ok(());
        }
        let binaries = self.plugin_binaries(&network)?;
        let netns = path_str("pod network namespace", &record.netns)?;
        let chain: Vec<_> = network.plugins.iter().zip(&binaries).collect();
        let prev = record.result.as_ref();
        self.call_each(&network, &chain, &record, "CHECK", netns, prev)
    }

    /// A finished attachment as recorded: what an agent restart reads back for the pods
    /// it adopts. None when there is no record or its ADD never finished.
    pub fn attached(&self, id: &AttachmentId) -> Result<Option<Attached>, NetworkError> {
        let Some(record) = self.cache.read(id)? else {
            return Ok(None);
        };
        let Some(value) = record.result.filter(|_| record.complete) else {
            return Ok(None);
        };
        let result = result_from_value(&value).map_err(|reason| NetworkError::PluginOutput {
            site: PluginSite {
                plugin: "(recorded result)".into(),
                command: "ADD",
                config: record.config_file.clone(),
            },
            reason,
        })?;
        Ok(Some(Attached {
            ips: result.pod_ips(&id.ifname),
            id: record.id,
            result,
        }))
    }

    /// The binary of each plugin of `network`, in chain order.
    pub(super) fn plugin_binaries(
        &self,
        network: &NetworkConfig,
    ) -> Result<Vec<PathBuf>, NetworkError> {
        network
            .plugins
            .iter()
            .map(|p| self.plugin_binary(network, p))
            .collect()
    }

    /// The binary of `plugin`; missing is an error naming it and the dirs searched.
    pub(super) fn plugin_binary(
        &self,
        network: &NetworkConfig,
        plugin: &PluginConfig,
    ) -> Result<PathBuf, NetworkError> {
        find_plugin(&plugin.plugin_type, &self.exec.bin_dirs).ok_or_else(|| {
            NetworkError::PluginMissing {
                plugin: plugin.plugin_type.clone(),
                config: network.file.clone(),
                dirs: self.exec.bin_dirs.clone(),
            }
        })
    }
}

/// Names a plugin call in errors.
pub(super) fn site(
    network: &NetworkConfig,
    plugin: &PluginConfig,
    command: &'static str,
) -> PluginSite {
    PluginSite {
        plugin: plugin.plugin_type.clone(),
        command,
        config: network.file.clone(),
    }
}

fn path_str<'a>(what: &str, path: &'a Path) -> Result<&'a str, NetworkError> {
    path.to_str().ok_or_else(|| NetworkError::InvalidInput {
        field: what.to_string(),
        value: path.display().to_string(),
        reason: "not UTF-8".into(),
    })
}
