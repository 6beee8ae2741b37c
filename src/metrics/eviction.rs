//! Ephemeral-storage eviction, as kubelet decides it (pure): a container whose writable
//! layer plus logs passes its `limits.ephemeral-storage`, or a pod whose containers plus
//! disk-backed emptyDirs pass the sum of its containers' limits, is evicted.

/// One container's local storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStorage {
    pub name: String,
    pub limit: Option<u64>,
    /// Writable layer, apparent bytes.
    pub cow_bytes: u64,
    pub log_bytes: u64,
}

/// A pod evicted, and why (kubelet's wording, with the figures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub pod_uid: String,
    pub pod_key: String,
    pub message: String,
}

/// Bytes as a Kubernetes quantity where exact (`10Mi`), plain bytes otherwise.
pub fn quantity(bytes: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Whether the pod must be evicted: the first container over its own limit, else the pod
/// over the sum of its containers' limits (when any container has one).
pub fn check(
    pod_uid: &str,
    pod_key: &str,
    containers: &[ContainerStorage],
    empty_dir_bytes: u64,
) -> Option<Eviction> {
    for c in containers {
        let used = c.cow_bytes + c.log_bytes;
        if let Some(limit) = c.limit {
            if used > limit {
                return Some(Eviction {
                    pod_uid: pod_uid.to_string(),
                    pod_key: pod_key.to_string(),
                    message: format!(
                        "Container {} exceeded its local ephemeral storage limit \"{}\": using {used} bytes (writable layer {}, logs {}). ",
                        c.name,
                        quantity(limit),
                        c.cow_bytes,
                        c.log_bytes
                    ),
                });
            }
        }
    }
    let limits: Vec<u64> = containers.iter().filter_map(|c| c.limit).collect();
    if limits.is_empty() {
        return None;
    }
    let limit: u64 = limits.iter().sum();
    let containers_bytes: u64 = containers.iter().map(|c| c.cow_bytes + c.log_bytes).sum();
    let used = containers_bytes + empty_dir_bytes;
    (used > limit).then(|| Eviction {
        pod_uid: pod_uid.to_string(),
        pod_key: pod_key.to_string(),
        message: format!(
            "Pod ephemeral local storage usage exceeds the total limit of containers {}: using {used} bytes (containers {containers_bytes}, emptyDir {empty_dir_bytes}). ",
            quantity(limit)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, limit: Option<u64>, cow: u64, logs: u64) -> ContainerStorage {
        ContainerStorage {
            name: name.into(),
            limit,
            cow_bytes: cow,
            log_bytes: logs,
        }
    }

    #[test]
    fn a_container_over_its_limit_is_named_with_the_figures() {
        let e = check("u", "ns/p", &[c("app", Some(10 << 20), 10 << 20, 1)], 0).unwrap();
        assert!(
            e.message
                .starts_with("Container app exceeded its local ephemeral storage limit \"10Mi\""),
            "{}",
            e.message
        );
        assert!(
            e.message.contains(&format!("{}", (10u64 << 20) + 1)),
            "{}",
            e.message
        );
    }

    #[test]
    fn at_the_limit_is_not_over_it() {
        assert_eq!(check("u", "ns/p", &[c("app", Some(100), 90, 10)], 0), None);
    }

    #[test]
    fn empty_dirs_count_against_the_pods_total() {
        let pods = [c("a", Some(100), 10, 0), c("b", Some(100), 10, 0)];
        assert_eq!(check("u", "ns/p", &pods, 180), None);
        let e = check("u", "ns/p", &pods, 181).unwrap();
        assert!(
            e.message.contains("total limit of containers 200"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_pod_without_limits_is_never_evicted() {
        assert_eq!(
            check("u", "ns/p", &[c("a", None, 1 << 40, 0)], 1 << 40),
            None
        );
    }

    #[test]
    fn quantities_print_as_kubernetes_does() {
        assert_eq!(quantity(10 << 20), "10Mi");
        assert_eq!(quantity(2 << 30), "2Gi");
        assert_eq!(quantity(1000), "1000");
    }
}
