//! `layerlet validate FILE...`: the agent's manifest checks, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use layerlet::pod::downward::NodeInfo;
use layerlet::pod::env::resolve_env;
use layerlet::pod::objects::{ConfigError, ConfigObjects};
use layerlet::pod::spec::PodSpec;
use layerlet::pod::{parse_manifest_file, Limits, ParsedObject};
use layerlet::runtime::storage::projected::volume_payload;

use super::context::Context;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Manifest files (YAML or JSON; several documents per file).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn validate(_ctx: &Context, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let mut failed = false;
    let mut objects = ConfigObjects::default();
    let mut pods: Vec<(PathBuf, PodSpec)> = Vec::new();
    for file in &args.files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match parse_manifest_file(file, &bytes, &limits) {
            Ok(parsed) => {
                for object in parsed {
                    println!("{}: {} {} ok", file.display(), object.kind(), object.key());
                    let key = object.key();
                    match object {
                        ParsedObject::Pod(pod) => {
                            for w in &pod.warnings {
                                eprintln!(
                                    "warning: {}: pod {}: {}: {}",
                                    file.display(),
                                    pod.spec.key(),
                                    w.field,
                                    w.message
                                );
                            }
                            pods.push((file.clone(), pod.spec));
                        }
                        ParsedObject::ConfigMap(c) => {
                            objects.config_maps.insert(key, c);
                        }
                        ParsedObject::Secret(s) => {
                            objects.secrets.insert(key, s);
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    for (file, pod) in &pods {
        for problem in missing_objects(pod, &objects) {
            eprintln!(
                "warning: {}: pod {}: {problem} (checked against the objects in the files given); the agent holds the container in CreateContainerConfigError until it exists",
                file.display(),
                pod.key()
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the agent would find missing when it starts the pod's containers, if the node had
/// exactly the objects of these files: the agent's own env and volume code, run offline.
fn missing_objects(pod: &PodSpec, objects: &ConfigObjects) -> Vec<String> {
    // Values do not matter here, only whether they can be made.
    let node = NodeInfo {
        node_name: "validate".into(),
        host_ip: "127.0.0.1".into(),
        cpu_millis: 1000,
        memory: 1 << 30,
        ephemeral_storage: 1 << 30,
    };
    let mut out = Vec::new();
    for volume in &pod.volumes {
        if let Err(e) = volume_payload(pod, volume, objects, &node) {
            out.push(format!("volume {}: {}", volume.name, describe(&e)));
        }
    }
    for container in pod.all_containers() {
        if let Err(e) = resolve_env(pod, container, objects, &node, &[]) {
            out.push(format!("container {}: {}", container.name, describe(&e)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// kubelet's words, without the agent's hint about the manifest directory.
fn describe(e: &ConfigError) -> String {
    match e {
        ConfigError::MissingConfigMap { name, .. } => format!("configmap {name:?} not found"),
        ConfigError::MissingSecret { name, .. } => format!("secret {name:?} not found"),
        other => other.to_string(),
    }
}
