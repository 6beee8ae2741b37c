//! Pod networking end to end with Debian's CNI plugins: the agent runs inside a network
//! namespace each test creates (`ip netns add`), so its bridge, the pod addresses, the
//! iptables rules and every packet exist only there, never in the machine's namespace.
//! Pods get IPs from the default network, reach each other by pod IP, a hostPort answers at
//! the node's address, resolv.conf and /etc/hosts are kubelet's, and removing the pods
//! frees every IP and interface; bad network configuration is an event on the pod.

mod common;
mod kubelet_support;
#[path = "common/netns.rs"]
mod netns;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_node, ps_all, Node, BUSYBOX_IMAGE};
use kubelet_support::Pki;
use netns::{run, Netns, NODE_ADDRESS};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);
/// The kubelet API's address, inside the test's namespace.
const KUBELET: &str = "127.0.0.1:10266";

/// `layerlet agent` with pod networking on, inside `netns`; killed (and its pods removed)
/// on drop.
struct NetAgent<'a> {
    node: &'a Node,
    netns: &'a Netns,
    child: Option<Child>,
    log: PathBuf,
    manifests: PathBuf,
    conf_dir: PathBuf,
}

impl<'a> NetAgent<'a> {
    fn start(node: &'a Node, netns: &'a Netns, extra: &[&str]) -> NetAgent<'a> {
        let manifests = node.dir.path().join("manifests");
        let conf_dir = node.dir.path().join("net.d");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::create_dir_all(&conf_dir).unwrap();
        let mut agent = NetAgent {
            node,
            netns,
            child: None,
            log: node.dir.path().join("agent.log"),
            manifests,
            conf_dir,
        };
        agent.spawn(extra);
        agent
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.netns.cmd(env!("CARGO_BIN_EXE_layerlet"));
        cmd.arg("--root")
            .arg(self.node.root())
            .arg("--run-root")
            .arg(self.node.run_root())
            .args([
                "--log-level",
                "info",
                "--pod-network",
                "cni",
                "--cni-conf-dir",
            ])
            .arg(&self.conf_dir)
            .args(["agent", "--listen", "127.0.0.1:10265", "--manifests"])
            .arg(&self.manifests)
            .args(["--backoff-seconds", "1", "--rescan-seconds", "1"])
            .args(extra)
            .env("HOME", self.node.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn the agent"));
        let deadline = Instant::now() + DEADLINE;
        while self.get("/readyz").as_deref() != Some("ok\n") {
            assert!(
                Instant::now() < deadline,
                "agent not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET on the agent's API, from inside its namespace.
    fn get(&self, path: &str) -> Option<String> {
        let out = self
            .netns
            .cmd("curl")
            .args(["-fsS", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:10265{path}"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn events(&self) -> Vec<Value> {
        self.get("/api/v1/events")
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn write_pod(&self, name: &str, yaml: &str) {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.manifests.join(format!("{name}.yaml"))).unwrap();
    }

    fn remove_pod(&self, name: &str) {
        std::fs::remove_file(self.manifests.join(format!("{name}.yaml"))).unwrap();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NetAgent<'_> {
    fn drop(&mut self) {
        self.kill();
        // The pods' networks go with them, through the same namespace's plugins.
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

/// Polls `check` until it gives a value, or panics with `what` and the agent's log.
fn wait<T>(agent: &NetAgent, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}\nps: {:?}\nevents: {:?}\n{}",
            ps_all(agent.node),
            agent.events(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pod's IP once its container runs.
fn running_ip(agent: &NetAgent, pod: &str) -> String {
    wait(agent, &format!("{pod} running with an IP"), || {
        ps_all(agent.node)
            .into_iter()
            .find(|r| r["pod"] == pod && r["state"] == "running")
            .and_then(|r| r["pod_ips"][0].as_str().map(str::to_string))
    })
}

fn manifest(name: &str, extra_spec: &str, container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n{extra_spec}  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: Never\n{container}"
    )
}

/// Attachment records in the agent's CNI cache.
fn records(node: &Node) -> usize {
    std::fs::read_dir(node.root().join("cni/attachments"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// A temp file as the agent's atomic writes name them, of a writer that no longer runs.
fn plant_dead_writers_temp_file(dir: &Path) {
    let mut writer = Command::new("true").spawn().unwrap();
    let pid = writer.id();
    writer.wait().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!(".tmp-{pid}-0-1f")), "{").unwrap();
}

/// The file names in the agent's CNI cache, for a failure's message.
fn record_names(node: &Node) -> Vec<String> {
    std::fs::read_dir(node.root().join("cni/attachments"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
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

fn exec(node: &Node, target: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", target, "--"];
    args.extend_from_slice(command);
    node.ok(&args)
}

#[test]
fn two_pods_talk_by_pod_ip_a_host_port_answers_and_removal_frees_everything() {
    let node = busybox_node();
    let netns = Netns::new("llt-podnet");
    let agent = NetAgent::start(&node, &netns, &["--cluster-dns", "10.96.0.10"]);
    let web = "web";
    agent.write_pod(
        web,
        &manifest(
            web,
            "  hostname: web-0\n  subdomain: shop\n",
            "    command: ['/bin/sh', '-c', 'mkdir -p /www && echo hello-from-web > /www/index.html && echo ip=$POD_IP && exec httpd -f -p 8080 -h /www']\n    ports: [{containerPort: 8080, hostPort: 18080}]\n    env: [{name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]\n",
        ),
    );
    let web_ip = running_ip(&agent, web);
    assert!(web_ip.starts_with("10.89."), "{web_ip}");
    // The downward API, /etc/hosts and the status all tell the same address.
    wait(&agent, "web's log line", || {
        node.run(&["logs", "web/main"])
            .status
            .success()
            .then(|| String::from_utf8_lossy(&node.run(&["logs", "web/main"]).stdout).into_owned())
            .filter(|l| l.contains("ip="))
    });
    let logs = node.ok(&["logs", "web/main"]);
    assert!(logs.contains(&format!("ip={web_ip}")), "{logs}");
    let hosts = exec(&node, "web/main", &["cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!(
            "{web_ip}\tweb-0.shop.default.svc.cluster.local web-0"
        )),
        "{hosts}"
    );
    let resolv = exec(&node, "web/main", &["cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");
    let pods: Value = serde_json::from_str(&agent.get("/api/v1/pods").unwrap()).unwrap();
    let status = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == web)
        .map(|p| p["status"].clone())
        .unwrap();
    assert_eq!(status["podIP"], web_ip.as_str(), "{status}");
    assert_eq!(status["podIPs"][0]["ip"], web_ip.as_str(), "{status}");

    // Pod to pod, by pod IP, over the bridge.
    agent.write_pod(
        "client",
        &manifest(
            "client",
            "",
            &format!("    command: ['/bin/sh', '-c', 'until wget -qO- http://{web_ip}:8080/; do sleep 0.2; done; exec sleep 3600']\n"),
        ),
    );
    let client_ip = running_ip(&agent, "client");
    assert_ne!(client_ip, web_ip);
    wait(&agent, "the client's answer from web", || {
        Some(node.ok(&["logs", "client/main"])).filter(|l| l.contains("hello-from-web"))
    });

    // The host port, at the node's address in its namespace.
    let answer = wait(&agent, "the host port to answer", || {
        // busybox 1.35's own `wget -T` crashes (SIGSEGV): coreutils' timeout bounds it.
        let out = netns
            .cmd("timeout")
            .args(["5", "busybox", "wget", "-q", "-O", "-"])
            .arg(format!("http://{NODE_ADDRESS}:18080/"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(answer, "hello-from-web\n");
    let mut held = allocated(&node);
    held.sort();
    let mut want = vec![web_ip.clone(), client_ip.clone()];
    want.sort();
    assert_eq!(held, want, "host-local holds exactly the live pods' IPs");

    agent.remove_pod(web);
    agent.remove_pod("client");
    wait(&agent, "both pods gone", || {
        ps_all(&node).is_empty().then_some(())
    });
    // The containers go first; the sandbox and its network right after.
    // DEL frees the IP, then the attachment's record goes.
    wait(&agent, "their IPs and attachment records freed", || {
        (allocated(&node).is_empty() && records(&node) == 0).then_some(())
    });
    assert_eq!(netns.veths(), Vec::<String>::new(), "veths left");
}

#[test]
fn a_broken_conflist_is_a_sandbox_event_on_the_pod_until_it_is_fixed() {
    let node = busybox_node();
    let netns = Netns::new("llt-podnet");
    let agent = NetAgent::start(&node, &netns, &[]);
    let broken = agent.conf_dir.join("10-broken.conflist");
    std::fs::write(
        &broken,
        "{\"cniVersion\": \"1.0.0\", \"name\": \"x\", \"plugins\": [",
    )
    .unwrap();
    // A hostNetwork pod needs no CNI and runs meanwhile.
    agent.write_pod(
        "hostnet",
        &manifest(
            "hostnet",
            "  hostNetwork: true\n",
            "    command: ['sleep', '3600']\n",
        ),
    );
    agent.write_pod(
        "bad",
        &manifest("bad", "", "    command: ['sleep', '3600']\n"),
    );
    let event = wait(&agent, "a FailedCreatePodSandBox event", || {
        agent
            .events()
            .into_iter()
            .find(|e| e["reason"] == "FailedCreatePodSandBox")
    });
    let message = event["message"].as_str().unwrap_or_default();
    assert!(message.contains("10-broken.conflist"), "{event}");
    wait(&agent, "the hostNetwork pod running", || {
        ps_all(&node)
            .into_iter()
            .find(|r| r["pod"] == "hostnet" && r["state"] == "running")
    });
    assert!(
        !ps_all(&node).iter().any(|r| r["pod"] == "bad"),
        "no container of the pod without a network"
    );
    assert!(agent.get("/readyz").is_some(), "the agent runs on");
    // Fixed (removed): the default network is used at the next try.
    std::fs::remove_file(&broken).unwrap();
    let ip = running_ip(&agent, "bad");
    assert!(ip.starts_with("10.89."), "{ip}");
}

#[test]
fn kill_9_of_the_agent_during_creation_and_removal_leaks_no_ip_or_interface() {
    let node = busybox_node();
    let netns = Netns::new("llt-podnet");
    let mut agent = NetAgent::start(&node, &netns, &[]);
    for round in 0..20u64 {
        let name = format!("round{round}");
        agent.write_pod(
            &name,
            &manifest(&name, "", "    command: ['sleep', '3600']\n"),
        );
        // Somewhere between the write and a running pod (each round a bit later).
        std::thread::sleep(Duration::from_millis(20 * (round % 10)));
        agent.kill();
        if round == 0 {
            // What a kill between a record's temp file and its rename leaves, made sure of.
            plant_dead_writers_temp_file(&node.root().join("cni/attachments"));
        }
        agent.spawn(&[]);
        running_ip(&agent, &name);
        agent.remove_pod(&name);
        std::thread::sleep(Duration::from_millis(15 * (round % 10)));
        agent.kill();
        agent.spawn(&[]);
        wait(&agent, "the pod gone", || {
            ps_all(&node).is_empty().then_some(())
        });
        // The pod's removal (by the restarted agent, if the kill came first) ends with its
        // DEL: then nothing of any round may be left.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (held, veths) = (allocated(&node), netns.veths());
            if held.is_empty() && veths.is_empty() && records(&node) == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: IPs left: {held:?}, veths left: {veths:?}, records left: {:?}\n{}",
                record_names(&node),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(!Path::new(&node.root().join("cni/attachments"))
        .read_dir()
        .map(|mut rd| rd.next().is_some())
        .unwrap_or(false));
    // Forty agent starts later, the node's masquerade rule for the default subnet is there
    // exactly once (the bridge plugin's per-pod chains are not used).
    assert_eq!(masquerade_rules(&netns), 1, "{}", agent.log());
}

/// How many of the node's NAT rules masquerade the default subnet's traffic, in `netns`.
fn masquerade_rules(netns: &Netns) -> usize {
    let out = run(netns
        .cmd("iptables")
        .args(["-w", "5", "-t", "nat", "-S", "POSTROUTING"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("-s 10.89.0.0/16") && l.ends_with("-j MASQUERADE"))
        .count()
}

/// The value of `family`'s series for `pod`'s eth0 in a Prometheus text.
fn eth0_counter(text: &str, family: &str, pod: &str) -> Option<u64> {
    text.lines()
        .find(|l| {
            l.starts_with(&format!("{family}{{"))
                && l.contains(&format!("pod=\"{pod}\""))
                && l.contains("interface=\"eth0\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[test]
fn a_pods_network_counters_grow_by_what_it_serves_in_metrics_cadvisor_and_the_summary() {
    const SIZE: u64 = 2 << 20;
    let node = busybox_node();
    let netns = Netns::new("llt-podnet");
    let pki = Pki::new(node.dir.path(), "net", "kube-apiserver-kubelet-client");
    let agent = NetAgent::start(
        &node,
        &netns,
        &[
            "--kubelet-listen",
            KUBELET,
            "--client-ca-file",
            pki.ca.to_str().unwrap(),
        ],
    );
    agent.write_pod(
        "web",
        &manifest(
            "web",
            "",
            &format!("    command: ['/bin/sh', '-c', 'mkdir -p /www && head -c {SIZE} /dev/zero > /www/blob && exec httpd -f -p 8080 -h /www']\n"),
        ),
    );
    let web_ip = running_ip(&agent, "web");
    let tx = "container_network_transmit_bytes_total";
    // Before any client exists: what web has sent so far (ARP, nothing more).
    let before = wait(&agent, "web's eth0 series in /metrics", || {
        eth0_counter(&agent.get("/metrics")?, tx, "web")
    });
    agent.write_pod(
        "client",
        &manifest(
            "client",
            "",
            &format!("    command: ['/bin/sh', '-c', 'until wget -q -O /tmp/blob http://{web_ip}:8080/blob; do sleep 0.2; done; echo fetched=$(wc -c < /tmp/blob); exec sleep 3600']\n"),
        ),
    );
    running_ip(&agent, "client");
    wait(&agent, "the client to fetch the file", || {
        Some(node.ok(&["logs", "client/main"])).filter(|l| l.contains(&format!("fetched={SIZE}")))
    });
    let text = wait(&agent, "web's transmit bytes to grow by the file", || {
        let text = agent.get("/metrics")?;
        (eth0_counter(&text, tx, "web")? >= before + SIZE).then_some(text)
    });
    let rx = "container_network_receive_bytes_total";
    let received = eth0_counter(&text, rx, "client").unwrap_or(0);
    assert!(received >= SIZE, "client received {received}:\n{text}");
    for family in [
        "container_network_transmit_packets_total",
        "container_network_receive_packets_total",
    ] {
        let packets = eth0_counter(&text, family, "web").unwrap_or(0);
        assert!(packets > 0, "{family} of web: {packets}\n{text}");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("container_network_") && l.contains("interface=\"lo\"")),
        "loopback is not counted, as with cAdvisor:\n{text}"
    );
    common::promtool_check("/metrics", &text);

    // The kubelet API shows the same figures: /metrics/cadvisor and the Summary's pod block.
    let kubelet = |path: &str| -> String {
        let out = run(netns
            .cmd("curl")
            .args(["-fsS", "--max-time", "30", "--cacert"])
            .arg(node.root().join("pki/kubelet.crt"))
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .arg(format!("https://{KUBELET}{path}")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cadvisor = kubelet("/metrics/cadvisor");
    let sent = eth0_counter(&cadvisor, tx, "web").unwrap_or(0);
    assert!(sent >= before + SIZE, "{sent}:\n{cadvisor}");
    common::promtool_check("/metrics/cadvisor", &cadvisor);
    let summary: Value = serde_json::from_str(&kubelet("/stats/summary")).unwrap();
    let web = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "web")
        .unwrap_or_else(|| panic!("no pod web in {summary}"));
    assert_eq!(web["network"]["name"], "eth0", "{web}");
    let sent = web["network"]["txBytes"].as_u64().unwrap_or(0);
    assert!(sent >= before + SIZE, "{web}");
    let names: Vec<&str> = web["network"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["eth0"], "{web}");
}
