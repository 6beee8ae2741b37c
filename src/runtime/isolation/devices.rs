//! The device allow-list of a container, shared by the v1 `devices` cgroup and the v2 eBPF
//! filter so that both enforce the same rules.

use serde::{Deserialize, Serialize};

/// One device rule of the allow-list: `c 1:3 rwm`. `None` numbers are wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

impl DeviceRule {
    /// The rule as v1's `devices.allow` takes it.
    pub fn v1(&self) -> String {
        let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn rule(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
    DeviceRule {
        kind,
        major,
        minor,
        access: access.into(),
    }
}

/// runc's default allow-list: mknod of anything (so images can carry device nodes), but
/// read/write only of the pseudo-devices a container gets.
pub fn default_devices() -> Vec<DeviceRule> {
    vec![
        rule('c', None, None, "m"),
        rule('b', None, None, "m"),
        rule('c', Some(1), Some(3), "rwm"),
        rule('c', Some(1), Some(5), "rwm"),
        rule('c', Some(1), Some(7), "rwm"),
        rule('c', Some(1), Some(8), "rwm"),
        rule('c', Some(1), Some(9), "rwm"),
        rule('c', Some(5), Some(0), "rwm"),
        rule('c', Some(5), Some(1), "rwm"),
        rule('c', Some(5), Some(2), "rwm"),
        rule('c', Some(136), None, "rwm"),
        rule('c', Some(10), Some(200), "rwm"),
    ]
}
