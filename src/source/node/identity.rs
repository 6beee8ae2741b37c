//! The host's identity for `nodeInfo`: kernel release, OS name, machine id, boot id and
//! the firmware's system UUID, read once at start; a file this host lacks stays empty.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIdentity {
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
}

/// `PRETTY_NAME` of an os-release text, unquoted.
fn pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(value.trim().trim_matches('"').to_string())
}

fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default()
}

impl HostIdentity {
    pub fn read() -> HostIdentity {
        HostIdentity {
            kernel_version: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| pretty_name(&t))
                .unwrap_or_else(|| "Linux".to_string()),
            machine_id: first_line("/etc/machine-id"),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            system_uuid: first_line("/sys/class/dmi/id/product_uuid").to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_name_and_this_hosts_kernel_and_boot_id_are_read() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        let here = HostIdentity::read();
        assert!(!here.kernel_version.is_empty());
        assert_eq!(here.boot_id.len(), 36, "{here:?}");
    }
}
