//! The default pod network in kube mode takes the pod CIDR the control plane allocated to
//! the node (`spec.podCIDRs`), as kubelet does, instead of `--pod-cidr`: the pod's address,
//! the bridge's gateway and the status the API server receives all come from it, whether
//! the CIDR was there when the agent started or was allocated after it registered.
//!
//! The agent and its mock API server both run inside a network namespace each test creates
//! (`ip netns add`): the agent only sees that namespace's loopback, so the mock binds its
//! listener there too ([`MockKube::start_in_netns`]); the bridge, veths and pod addresses
//! never reach the machine's own namespace.

mod common;
#[path = "common/mock_kube.rs"]
mod mock_kube;
#[path = "common/netns.rs"]
mod netns;
mod support;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_node, ps_all, unique, Node, BUSYBOX_IMAGE};
use mock_kube::{in_netns, MockKube};
use netns::{Netns, NODE_ADDRESS};
use serde_json::{json, Value};

/// The agent's own HTTP API, inside the namespace.
const AGENT: &str = "127.0.0.1:10265";
/// What the control plane allocates to the node.
const NODE_CIDR: &str = "10.244.7.0/24";
const NS: &str = "default";
const DEADLINE: Duration = Duration::from_secs(60);
/// What the agent logs once the default network takes the Node's subnet.
const TAKEN: &str = "the default pod network uses the node's spec.podCIDRs";

/// `layerlet agent` in kube mode with `--register-node` and the default pod network, inside
/// `netns`, against `mock`; killed (and its pods removed) on drop.
struct KubeAgent<'a> {
    node: &'a Node,
    netns: &'a Netns,
    mock: &'a MockKube,
    child: Option<Child>,
    log: PathBuf,
    conf_dir: PathBuf,
}

impl<'a> KubeAgent<'a> {
    fn start(
        node: &'a Node,
        netns: &'a Netns,
        mock: &'a MockKube,
        node_name: &str,
        extra: &[&str],
    ) -> KubeAgent<'a> {
        let manifests = node.dir.path().join("manifests");
        // Empty: the machine's /etc/cni/net.d has podman's config, which would win.
        let conf_dir = node.dir.path().join("net.d");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::create_dir_all(&conf_dir).unwrap();
        let log = node.dir.path().join("agent.log");
        let kubeconfig = mock.kubeconfig(node.dir.path());
        let mut cmd = netns.cmd(env!("CARGO_BIN_EXE_layerlet"));
        cmd.arg("--root")
            .arg(node.root())
            .arg("--run-root")
            .arg(node.run_root())
            .args([
                "--log-level",
                "info",
                "--pod-network",
                "cni",
                "--cni-conf-dir",
            ])
            .arg(&conf_dir)
            .args(["agent", "--listen", AGENT, "--manifests"])
            .arg(&manifests)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--node-name", node_name, "--register-node"])
            .args(["--node-ip", NODE_ADDRESS, "--kubelet-listen", "off"])
            .args(["--backoff-seconds", "1"])
            .args(extra)
            .env("HOME", node.dir.path())
            .stdin(Stdio::null());
        let out = File::create(&log).unwrap();
        cmd.stdout(out.try_clone().unwrap()).stderr(out);
        let agent = KubeAgent {
            node,
            netns,
            mock,
            child: Some(cmd.spawn().expect("spawn the agent")),
            log,
            conf_dir,
        };
        agent.wait("the agent to be ready", || {
            let (status, _) = in_netns(&netns.file, || common::http_get(AGENT, "/readyz")).ok()?;
            (status == 200).then_some(())
        });
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `check` until it gives a value, or panics with `what`, the agent's log and the
    /// mock's recent requests.
    fn wait<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}\nps: {:?}\n{}\nagent log:\n{}",
                ps_all(self.node),
                self.mock.summary(40),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Binds a pod that sleeps (or runs `script`) to `node_name`.
    fn add_pod(&self, name: &str, node_name: &str, script: &str) {
        self.mock.add_pod(bound_pod(name, node_name, script));
    }

    /// The pod's status as the API server has it, once Running with a podIP.
    fn api_running(&self, name: &str) -> Value {
        self.wait(&format!("{name} Running with a podIP in the API"), || {
            let pod = self.mock.pod(NS, name)?;
            let status = &pod["status"];
            (status["phase"] == "Running" && status["podIP"].is_string()).then(|| status.clone())
        })
    }

    /// Deletes the pods gracefully through the API and waits until the agent finished the
    /// delete and the node holds no address, attachment record or veth.
    fn delete_pods(&self, names: &[&str]) {
        for name in names {
            self.mock.mark_deleted(NS, name, 1);
        }
        self.wait("the pods deleted and their networks freed", || {
            (names.iter().all(|n| self.mock.pod(NS, n).is_none())
                && ps_all(self.node).is_empty()
                && allocated(self.node).is_empty()
                && records(self.node) == 0
                && self.netns.veths().is_empty())
            .then_some(())
        });
    }
}

impl Drop for KubeAgent<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // What a failed test left: removed through the same namespace's plugins.
        let mut pods: Vec<String> = ps_all(self.node)
            .iter()
            .filter_map(|r| {
                Some(format!(
                    "{}/{}",
                    r["namespace"].as_str()?,
                    r["pod"].as_str()?
                ))
            })
            .collect();
        pods.dedup();
        if pods.is_empty() {
            return;
        }
        let _ = self
            .netns
            .cmd(env!("CARGO_BIN_EXE_layerlet"))
            .arg("--root")
            .arg(self.node.root())
            .arg("--run-root")
            .arg(self.node.run_root())
            .args(["--pod-network", "cni", "--cni-conf-dir"])
            .arg(&self.conf_dir)
            .args(["rm", "-t", "0"])
            .args(&pods)
            .status();
    }
}

/// Attachment records in the agent's CNI cache.
fn records(node: &Node) -> usize {
    std::fs::read_dir(node.root().join("cni/attachments"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// Addresses host-local holds for the default network.
fn allocated(node: &Node) -> Vec<String> {
    std::fs::read_dir(node.root().join("cni/ipam/layerlet"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A busybox pod running `script`, bound to `node_name` as the scheduler binds it.
fn bound_pod(name: &str, node_name: &str, script: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": node_name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script],
            }],
        },
    })
}

/// Whether IPv4 `ip` lies in `cidr` (`A.B.C.D/N`).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, prefix) = cidr.split_once('/').unwrap();
    let (net, prefix): (Ipv4Addr, u32) = (net.parse().unwrap(), prefix.parse().unwrap());
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Checks the status the API server received for a pod attached from `cidr`; returns its IP.
fn assert_pod_ip_in(status: &Value, cidr: &str) -> String {
    let ip = status["podIP"].as_str().unwrap().to_string();
    assert!(in_cidr(&ip, cidr), "podIP {ip} not in {cidr}: {status}");
    assert_eq!(status["podIPs"], json!([{"ip": ip}]), "{status}");
    assert_eq!(status["hostIP"], NODE_ADDRESS, "{status}");
    ip
}

/// The gateway the bridge plugin gives a subnet: its first address, with its prefix.
fn gateway(cidr: &str) -> String {
    let (net, prefix) = cidr.split_once('/').unwrap();
    let net: Ipv4Addr = net.parse().unwrap();
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(net) + 1))
}

#[test]
fn in_cidr_and_gateway_read_subnets_right() {
    assert!(in_cidr("10.244.7.2", NODE_CIDR));
    assert!(!in_cidr("10.244.8.2", NODE_CIDR));
    assert!(!in_cidr("10.89.0.2", NODE_CIDR));
    assert!(in_cidr("10.89.200.3", "10.89.0.0/16"));
    assert_eq!(gateway(NODE_CIDR), "10.244.7.1/24");
}

#[test]
fn a_pod_gets_its_address_from_the_pod_cidr_the_control_plane_allocated_to_the_node() {
    let netns = Netns::new("llt-cidr");
    let mock = MockKube::start_in_netns(&netns.path());
    let node = busybox_node();
    let node_name = unique("cidr-node");
    // Registered earlier and given its CIDR then: the agent finds it at its first read.
    mock.put_node(json!({"metadata": {"name": node_name}, "spec": {"podCIDRs": [NODE_CIDR]}}));
    let agent = KubeAgent::start(&node, &netns, &mock, &node_name, &[]);
    agent.wait("the agent to take the node's pod CIDR", || {
        agent.log().contains(TAKEN).then_some(())
    });

    let name = unique("web");
    agent.add_pod(
        &name,
        &node_name,
        "mkdir -p /www && echo hello-from-cidr > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    let status = agent.api_running(&name);
    // In the Node's subnet, not the default 10.89.0.0/16.
    let ip = assert_pod_ip_in(&status, NODE_CIDR);
    assert_eq!(netns.bridge_addresses(), [gateway(NODE_CIDR)]);
    assert_eq!(allocated(&node), std::slice::from_ref(&ip));
    let conflist = std::fs::read_to_string(node.root().join("cni/layerlet.conflist")).unwrap();
    assert!(
        conflist.contains(&format!("\"subnet\": \"{NODE_CIDR}\"")),
        "{conflist}"
    );
    // The address works: the pod answers at it through the bridge's gateway.
    let answer = agent.wait("the pod to answer at its address", || {
        // busybox 1.35's own `wget -T` crashes (SIGSEGV): coreutils' timeout bounds it.
        let out = netns
            .cmd("timeout")
            .args(["5", "busybox", "wget", "-q", "-O", "-"])
            .arg(format!("http://{ip}:8080/"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(answer, "hello-from-cidr\n");
    let node_object = mock.object(&format!("api/v1/nodes/{node_name}")).unwrap();
    assert_eq!(
        node_object["spec"]["podCIDRs"],
        json!([NODE_CIDR]),
        "the agent keeps the spec"
    );

    agent.delete_pods(&[&name]);
}

#[test]
fn a_pod_cidr_allocated_after_registration_is_taken_up_once_no_pod_is_attached() {
    let netns = Netns::new("llt-cidr");
    let mock = MockKube::start_in_netns(&netns.path());
    let node = busybox_node();
    let node_name = unique("cidr-node");
    let flag = "10.99.0.0/24";
    let agent = KubeAgent::start(&node, &netns, &mock, &node_name, &["--pod-cidr", flag]);
    let registered = agent.wait("the node registered with its status", || {
        mock.object(&format!("api/v1/nodes/{node_name}"))
            .filter(|n| n["status"]["conditions"].is_array())
    });
    assert!(registered["spec"]["podCIDRs"].is_null(), "{registered}");

    // Before the allocation: --pod-cidr.
    let first = unique("first");
    agent.add_pod(&first, &node_name, "exec sleep 3600");
    assert_pod_ip_in(&agent.api_running(&first), flag);
    assert_eq!(netns.bridge_addresses(), [gateway(flag)]);

    // The node IPAM controller allocates; the agent sees it at its next lease period.
    let allocated_at = mock.last_seq();
    mock.allocate_pod_cidrs(&node_name, &[NODE_CIDR]);
    agent.wait("the agent to take the allocated pod CIDR", || {
        agent.log().contains(TAKEN).then_some(())
    });
    let node_path = format!("/api/v1/nodes/{node_name}");
    assert!(
        mock.requests_after(allocated_at)
            .iter()
            .any(|r| r.method == "GET" && r.path == node_path && r.status == 200),
        "the agent read the Node again: {}",
        mock.summary(40)
    );

    // The bridge holds one IPv4 gateway: while `first` is attached, new pods stay on its subnet.
    let second = unique("second");
    agent.add_pod(&second, &node_name, "exec sleep 3600");
    assert_pod_ip_in(&agent.api_running(&second), flag);
    agent.delete_pods(&[&first, &second]);

    // Nothing attached: the next pod gets the Node's subnet, and the gateway moves there.
    let third = unique("third");
    agent.add_pod(&third, &node_name, "exec sleep 3600");
    let ip = assert_pod_ip_in(&agent.api_running(&third), NODE_CIDR);
    assert_eq!(netns.bridge_addresses(), [gateway(NODE_CIDR)]);
    assert_eq!(allocated(&node), [ip]);

    agent.delete_pods(&[&third]);
}

#[test]
fn pods_bound_while_the_api_server_is_away_at_start_wait_for_the_nodes_pod_cidr() {
    let netns = Netns::new("llt-cidr");
    let mock = MockKube::start_in_netns(&netns.path());
    let node = busybox_node();
    let node_name = unique("cidr-node");
    mock.put_node(json!({"metadata": {"name": node_name}, "spec": {"podCIDRs": [NODE_CIDR]}}));
    let name = unique("early");
    mock.add_pod(bound_pod(&name, &node_name, "exec sleep 3600"));
    // A fresh data root (nothing attached before) and an API server away at start: the
    // agent's first read of the Node fails. Its pod list can then succeed before the next
    // read, one lease period later; a pod attached in between would hold --pod-cidr's
    // subnet for as long as it lives.
    mock.set_down(true);
    let agent = KubeAgent::start(&node, &netns, &mock, &node_name, &[]);
    let path = format!("/api/v1/nodes/{node_name}");
    agent.wait("the agent's first (failed) read of its Node", || {
        mock.requests().iter().any(|r| r.path == path).then_some(())
    });
    mock.set_down(false);
    let status = agent.api_running(&name);
    assert_pod_ip_in(&status, NODE_CIDR);
    assert_eq!(netns.bridge_addresses(), [gateway(NODE_CIDR)]);
    agent.delete_pods(&[&name]);
}
