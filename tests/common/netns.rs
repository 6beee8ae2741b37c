//! A network namespace a test owns (`ip netns add`), with the node's address on its
//! loopback: agents, pods and their traffic live there, never in the machine's own
//! namespace. Deleted on drop. Each test binary uses a part of it.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The node's own address inside its namespace, for host ports and `--node-ip`.
pub const NODE_ADDRESS: &str = "10.255.255.1";

pub struct Netns {
    pub name: String,
    /// Open while the namespace lives, for `setns` from a thread of the test.
    pub file: File,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = super::common::unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]));
        let file = File::open(format!("/run/netns/{name}")).expect("open the new netns");
        let ns = Netns { name, file };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        run(Command::new("ip").args([
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{NODE_ADDRESS}/32"),
            "dev",
            "lo",
        ]));
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `program ARGS` inside this namespace (`nsenter`, which, unlike `ip netns exec`,
    /// leaves /sys alone).
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    pub fn veths(&self) -> Vec<String> {
        let out =
            run(Command::new("ip").args(["-n", &self.name, "-o", "link", "show", "type", "veth"]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
            .collect()
    }

    /// The IPv4 addresses (`A.B.C.D/N`) of the default network's bridge, none before it
    /// exists.
    pub fn bridge_addresses(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.name,
                "-o",
                "-4",
                "addr",
                "show",
                "dev",
                "layerlet0",
            ])
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next().map(str::to_string)
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `cmd`; panics with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
