//! The node's address as kubelet chooses it, read from a real network namespace the test
//! makes (veth interfaces and a default route; nothing is sent anywhere): the default
//! route's interface gives the address, and `--node-ip` must be one of the host's.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;

use layerlet::runtime::node::address::{node_address, AddressOrigin};

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("llt-addr-{}", std::process::id());
        let ns = Netns(name);
        ns.ip(&["netns", "add", &ns.0]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn in_ns(&self, args: &[&str]) {
        self.ip(&[&["-n", &self.0][..], args].concat());
    }

    /// Runs `f` on a thread that joined this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn the_default_routes_interface_gives_the_address_and_the_flag_must_be_the_hosts() {
    let ns = Netns::new();
    // veth pairs (every kernel with namespaces has them; "dummy" is a module some lack).
    ns.in_ns(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
    ]);
    ns.in_ns(&[
        "link", "add", "side0", "type", "veth", "peer", "name", "side1",
    ]);
    ns.in_ns(&["addr", "add", "10.77.0.5/24", "dev", "uplink0"]);
    ns.in_ns(&["addr", "add", "10.88.0.9/24", "dev", "side0"]);
    for link in ["uplink0", "uplink1", "side0", "side1"] {
        ns.in_ns(&["link", "set", link, "up"]);
    }
    // Before a default route exists, the host name's address or loopback, never side0's.
    let without_route = ns.run(|| node_address(None).unwrap());
    assert_ne!(without_route.ip, "10.88.0.9".parse::<IpAddr>().unwrap());
    ns.in_ns(&[
        "route",
        "add",
        "default",
        "via",
        "10.77.0.1",
        "dev",
        "uplink0",
    ]);

    let detected = ns.run(|| node_address(None).unwrap());
    assert_eq!(detected.ip, "10.77.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(
        detected.origin,
        AddressOrigin::DefaultRoute {
            interface: "uplink0".into()
        }
    );
    let flagged = ns.run(|| node_address(Some("10.88.0.9".parse().unwrap())).unwrap());
    assert_eq!(
        (flagged.ip, flagged.origin),
        ("10.88.0.9".parse().unwrap(), AddressOrigin::Flag)
    );
    let refused = ns
        .run(|| node_address(Some("10.99.0.1".parse().unwrap())))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("--node-ip 10.99.0.1") && refused.contains("10.77.0.5"),
        "{refused}"
    );
}
