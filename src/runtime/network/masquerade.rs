//! Masquerading of the default network's traffic that leaves the node: one rule per subnet
//! for the whole node (as ip-masq-agent and flannel keep it), instead of the bridge plugin's
//! `ipMasq`, which makes and removes a chain of its own for every pod and cost about 60 ms
//! of each pod's ADD and DEL in bench/net_start.sh.

use std::process::Command;
use std::sync::{Arc, Mutex};

use super::default_network::PodCidr;
use super::error::NetworkError;

/// Marks the rules as layerlet's, for people reading `iptables -t nat -S`.
const COMMENT: &str = "layerlet pod network: masquerade traffic leaving the node";

/// The arguments of the rule for `cidr`, after `-t nat -{A,C} POSTROUTING`.
pub fn rule(cidr: &PodCidr) -> Vec<String> {
    let subnet = cidr.to_string();
    [
        "-s",
        &subnet,
        "!",
        "-d",
        &subnet,
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "MASQUERADE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn iptables_for(cidr: &PodCidr) -> &'static str {
    if cidr.network.is_ipv4() {
        "iptables"
    } else {
        "ip6tables"
    }
}

fn iptables(program: &str, action: &str, cidr: &PodCidr) -> Result<bool, NetworkError> {
    let failed = |reason: String| NetworkError::InvalidInput {
        field: "masquerade rule".into(),
        value: cidr.to_string(),
        reason,
    };
    let out = Command::new(program)
        .args(["-w", "5", "-t", "nat", action, "POSTROUTING"])
        .args(rule(cidr))
        .output()
        .map_err(|e| {
            failed(format!(
                "run {program}: {e}; install iptables (Debian: iptables) for the default pod network"
            ))
        })?;
    match (action, out.status.code()) {
        (_, Some(0)) => Ok(true),
        // -C answers 1 when the rule is not there.
        ("-C", Some(1)) => Ok(false),
        _ => Err(failed(format!(
            "{program} {action} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// The subnets whose rule this agent has made sure of.
#[derive(Debug, Clone, Default)]
pub struct Masquerade {
    ensured: Arc<Mutex<Vec<PodCidr>>>,
}

impl Masquerade {
    /// Adds the rule for each of `cidrs` unless it is there; checked once per subnet per
    /// agent run, so a pod's ADD costs nothing here after the first.
    pub fn ensure(&self, cidrs: &[PodCidr]) -> Result<(), NetworkError> {
        let mut ensured = self.ensured.lock().unwrap_or_else(|p| p.into_inner());
        for cidr in cidrs {
            if ensured.contains(cidr) {
                continue;
            }
            let program = iptables_for(cidr);
            if !iptables(program, "-C", cidr)? {
                iptables(program, "-A", cidr)?;
            }
            ensured.push(*cidr);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_masquerades_what_leaves_the_subnet_and_names_layerlet() {
        let cidr = PodCidr::parse("10.89.0.0/16").unwrap();
        let rule = rule(&cidr).join(" ");
        assert!(
            rule.starts_with("-s 10.89.0.0/16 ! -d 10.89.0.0/16 -m comment"),
            "{rule}"
        );
        assert!(rule.ends_with("-j MASQUERADE"), "{rule}");
        let v6 = PodCidr::parse("fd00:89::/64").unwrap();
        assert_eq!(iptables_for(&v6), "ip6tables");
    }
}
