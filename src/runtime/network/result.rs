//! A plugin's ADD result (CNI 1.0, and 0.3/0.4, whose only difference is a `version` key on
//! each IP) and the pod addresses it gives: the IPs on the pod's own interface, IPv4 first.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::version::{SpecVersion, OLDEST_READ};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: ResultDns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The netns path for interfaces inside the sandbox; empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// An address with its prefix length, `10.89.0.2/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultDns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// Reads a plugin's stdout as a result. A result without `cniVersion` is taken to be of the
/// config's version, as libcni does. Returns the result and its JSON (with the version
/// filled in): the JSON is what the next plugin gets as `prevResult`.
pub fn parse_result(stdout: &[u8], config_version: &str) -> Result<(CniResult, Value), String> {
    let mut value: Value = serde_json::from_slice(stdout).map_err(|e| format!("not JSON ({e})"))?;
    let Some(object) = value.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let has_version = object
        .get("cniVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty());
    if !has_version {
        object.insert("cniVersion".into(), Value::String(config_version.into()));
    }
    let result = result_from_value(&value)?;
    Ok((result, value))
}

/// Checks and types a result kept as JSON (a cached `prevResult`).
pub fn result_from_value(value: &Value) -> Result<CniResult, String> {
    let result: CniResult =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a CNI result ({e})"))?;
    match SpecVersion::parse(&result.cni_version) {
        Some(v) if v >= OLDEST_READ => {}
        _ => {
            return Err(format!(
                "result version {:?} is not one layerlet reads (0.3.0 or later)",
                result.cni_version
            ))
        }
    }
    for ip in &result.ips {
        parse_cidr_address(&ip.address)
            .ok_or_else(|| format!("ips: {:?} is not an address/prefix", ip.address))?;
        if let Some(i) = ip.interface {
            if i >= result.interfaces.len() {
                return Err(format!(
                    "ips: {} names interface {i} of {}",
                    ip.address,
                    result.interfaces.len()
                ));
            }
        }
    }
    Ok(result)
}

/// The address part of `10.89.0.2/16`; the prefix length must fit the family.
fn parse_cidr_address(text: &str) -> Option<IpAddr> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some(addr)
}

impl CniResult {
    /// The pod's IPs: those on `ifname` inside the sandbox (or on no named interface), IPv4
    /// before IPv6, each once, in the plugin's order within a family.
    pub fn pod_ips(&self, ifname: &str) -> Vec<IpAddr> {
        let on_pod_side = |ip: &IpConfig| match ip.interface {
            None => true,
            Some(i) => self
                .interfaces
                .get(i)
                .is_some_and(|iface| iface.name == ifname && !iface.sandbox.is_empty()),
        };
        let mut ips: Vec<IpAddr> = self
            .ips
            .iter()
            .filter(|ip| on_pod_side(ip))
            .filter_map(|ip| parse_cidr_address(&ip.address))
            .collect();
        let mut seen = std::collections::HashSet::new();
        ips.retain(|ip| seen.insert(*ip));
        // Stable: keeps the plugin's order within each family.
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's bridge plugin (1.1.1) answered on this machine, trimmed.
    const BRIDGE_1_0: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "layerlet0", "mac": "6a:8c:1e:7d:3f:10"},
            {"name": "veth1a2b3c4d", "mac": "32:4f:5e:6a:7b:8c"},
            {"name": "eth0", "mac": "a2:11:22:33:44:55", "sandbox": "/run/netns/pod-a"}
        ],
        "ips": [{"interface": 2, "address": "10.89.0.2/16", "gateway": "10.89.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.89.0.1"}],
        "dns": {}
    }"#;

    #[test]
    fn a_bridge_result_gives_the_pod_ip_on_eth0() {
        let (result, value) = parse_result(BRIDGE_1_0.as_bytes(), "1.0.0").unwrap();
        assert_eq!(
            result.pod_ips("eth0"),
            ["10.89.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(result.routes[0].gw.as_deref(), Some("10.89.0.1"));
        assert_eq!(value["interfaces"][2]["sandbox"], "/run/netns/pod-a");
    }

    #[test]
    fn a_0_4_result_with_ip_versions_is_read_and_ipv4_comes_first() {
        let text = r#"{
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "sandbox": "/proc/1/ns/net"}, {"name": "cni0"}],
            "ips": [
                {"version": "6", "interface": 0, "address": "fd00::5/64"},
                {"version": "4", "interface": 1, "address": "10.0.0.1/24"},
                {"version": "4", "interface": 0, "address": "10.0.0.5/24"},
                {"version": "4", "interface": 0, "address": "10.0.0.5/24"}
            ]
        }"#;
        let (result, _) = parse_result(text.as_bytes(), "0.4.0").unwrap();
        let ips: Vec<String> = result
            .pod_ips("eth0")
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ips, ["10.0.0.5", "fd00::5"]);
    }

    #[test]
    fn a_result_without_a_version_takes_the_configs() {
        let (result, value) =
            parse_result(br#"{"ips": [{"address": "10.1.2.3/8"}]}"#, "1.0.0").unwrap();
        assert_eq!(result.cni_version, "1.0.0");
        assert_eq!(value["cniVersion"], "1.0.0");
        assert_eq!(
            result.pod_ips("eth0"),
            ["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn broken_results_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (
                r#"{"cniVersion": "0.2.0", "ip4": {}}"#,
                "result version \"0.2.0\"",
            ),
            (
                r#"{"ips": [{"address": "10.0.0.1"}]}"#,
                "is not an address/prefix",
            ),
            (
                r#"{"ips": [{"address": "10.0.0.1/33"}]}"#,
                "is not an address/prefix",
            ),
            (
                r#"{"ips": [{"address": "10.0.0.1/8", "interface": 0}]}"#,
                "names interface 0 of 0",
            ),
            (r#"{"ips": "none"}"#, "not a CNI result"),
        ];
        for (text, reason) in cases {
            let err = parse_result(text.as_bytes(), "1.0.0").unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
