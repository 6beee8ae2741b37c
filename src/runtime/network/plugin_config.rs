//! What one plugin of a chain reads on stdin: its own config object with the list's `name`
//! and `cniVersion`, the previous plugin's result as `prevResult`, and the `runtimeConfig`
//! of the capabilities it declares, as libcni builds it.

use serde_json::{Map, Value};

use super::config::{NetworkConfig, PluginConfig};
use super::identity::AttachmentId;
use super::runtime_config::RuntimeConfig;

/// The stdin of `plugin` for ADD, CHECK or DEL.
pub fn plugin_stdin(
    network: &NetworkConfig,
    plugin: &PluginConfig,
    prev_result: Option<&Value>,
    runtime: &RuntimeConfig,
) -> Vec<u8> {
    let mut object = base(network, plugin);
    if let Some(prev) = prev_result {
        object.insert("prevResult".into(), prev.clone());
    }
    // libcni replaces any runtimeConfig written in the file with the runtime's.
    match runtime.for_capabilities(&plugin.capabilities) {
        Some(rc) => object.insert("runtimeConfig".into(), Value::Object(rc)),
        None => object.remove("runtimeConfig"),
    };
    to_bytes(object)
}

/// The stdin of `plugin` for GC: the attachments that are still valid, so the plugin frees
/// everything else it holds for this network.
pub fn gc_stdin(network: &NetworkConfig, plugin: &PluginConfig, valid: &[AttachmentId]) -> Vec<u8> {
    let mut object = base(network, plugin);
    object.remove("runtimeConfig");
    let attachments = valid
        .iter()
        .map(|id| serde_json::json!({"containerID": id.container_id, "ifname": id.ifname}))
        .collect();
    object.insert(
        "cni.dev/valid-attachments".into(),
        Value::Array(attachments),
    );
    to_bytes(object)
}

/// The stdin of VERSION: only the version the caller speaks.
pub fn version_stdin(network: &NetworkConfig) -> Vec<u8> {
    let mut object = Map::new();
    object.insert(
        "cniVersion".into(),
        Value::String(network.cni_version.clone()),
    );
    to_bytes(object)
}

/// The stdin of STATUS: the plugin's own config, as for the other commands.
pub fn status_stdin(network: &NetworkConfig, plugin: &PluginConfig) -> Vec<u8> {
    let mut object = base(network, plugin);
    object.remove("runtimeConfig");
    to_bytes(object)
}

fn base(network: &NetworkConfig, plugin: &PluginConfig) -> Map<String, Value> {
    let mut object = plugin.raw.clone();
    object.insert("name".into(), Value::String(network.name.clone()));
    object.insert(
        "cniVersion".into(),
        Value::String(network.cni_version.clone()),
    );
    object
}

fn to_bytes(object: Map<String, Value>) -> Vec<u8> {
    // A map of JSON values always serializes.
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::network::config::parse_config;
    use crate::runtime::network::runtime_config::one_tcp_host_port;
    use serde_json::json;
    use std::path::Path;

    fn network() -> NetworkConfig {
        let text = r#"{"cniVersion": "1.0.0", "name": "pods", "plugins": [
            {"type": "bridge", "name": "ignored", "cniVersion": "0.3.1", "bridge": "br0",
             "runtimeConfig": {"stale": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]}"#;
        parse_config(Path::new("/n.conflist"), text.as_bytes()).unwrap()
    }

    fn read(bytes: Vec<u8>) -> Value {
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn each_plugin_gets_the_lists_name_and_version_and_the_previous_result() {
        let net = network();
        let runtime = one_tcp_host_port(80, 8080);
        let first = read(plugin_stdin(&net, &net.plugins[0], None, &runtime));
        assert_eq!(
            first,
            json!({"type": "bridge", "name": "pods", "cniVersion": "1.0.0", "bridge": "br0"})
        );
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.89.0.2/16"}]});
        let second = read(plugin_stdin(&net, &net.plugins[1], Some(&prev), &runtime));
        assert_eq!(
            second,
            json!({
                "type": "portmap", "name": "pods", "cniVersion": "1.0.0", "snat": true,
                "capabilities": {"portMappings": true},
                "prevResult": prev,
                "runtimeConfig": {"portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
                ]}
            })
        );
    }

    #[test]
    fn gc_names_the_valid_attachments() {
        let net = network();
        let valid = [AttachmentId::pod("abc").unwrap()];
        let stdin = read(gc_stdin(&net, &net.plugins[1], &valid));
        assert_eq!(
            stdin["cni.dev/valid-attachments"],
            json!([{"containerID": "abc", "ifname": "eth0"}])
        );
        assert_eq!(stdin["name"], "pods");
        assert_eq!(read(version_stdin(&net)), json!({"cniVersion": "1.0.0"}));
    }
}
