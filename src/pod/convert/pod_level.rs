//! Pod-level fields outside layerlet's model, and the pod's DNS settings.

use k8s_openapi::api::core::v1 as k8s;

use super::fields::{non_empty, non_empty_map, not_supported, set_to, warn, Result};
use crate::pod::error::{FieldError, Warning, SCHEDULING_ONLY};
use crate::pod::spec::{DnsConfig, DnsOption};

/// Pod fields outside layerlet's model: refused when they change what runs, warned otherwise.
pub(super) fn pod_level_fields(spec: &k8s::PodSpec, warnings: &mut Vec<Warning>) -> Result<()> {
    if non_empty(&spec.ephemeral_containers) {
        return Err(not_supported("spec.ephemeralContainers", ""));
    }
    if non_empty(&spec.resource_claims) {
        return Err(not_supported(
            "spec.resourceClaims",
            "dynamic resource allocation",
        ));
    }
    if spec.resources.is_some() {
        return Err(not_supported(
            "spec.resources",
            "set resources on each container",
        ));
    }
    if set_to(&spec.runtime_class_name, "") {
        return Err(not_supported(
            "spec.runtimeClassName",
            "layerlet is the only runtime",
        ));
    }
    if spec.host_users == Some(false) {
        return Err(not_supported("spec.hostUsers", "user namespaces"));
    }
    if spec.set_hostname_as_fqdn == Some(true) {
        return Err(not_supported("spec.setHostnameAsFQDN", ""));
    }
    if spec.share_process_namespace == Some(true) {
        return Err(not_supported(
            "spec.shareProcessNamespace",
            "each container has its own PID namespace",
        ));
    }
    if let Some(os) = &spec.os {
        if os.name != "linux" {
            return Err(FieldError::new(
                "spec.os.name",
                format!("unsupported value {:?}; layerlet runs Linux pods", os.name),
            ));
        }
    }

    if non_empty_map(&spec.node_selector) {
        warn(warnings, "spec.nodeSelector", SCHEDULING_ONLY);
    }
    if spec.affinity.is_some() {
        warn(warnings, "spec.affinity", SCHEDULING_ONLY);
    }
    if non_empty(&spec.tolerations) {
        warn(warnings, "spec.tolerations", SCHEDULING_ONLY);
    }
    if non_empty(&spec.topology_spread_constraints) {
        warn(warnings, "spec.topologySpreadConstraints", SCHEDULING_ONLY);
    }
    if set_to(&spec.priority_class_name, "") {
        warn(warnings, "spec.priorityClassName", SCHEDULING_ONLY);
    }
    // The API server fills in these defaults; only other values are worth a warning.
    if spec.priority.is_some_and(|p| p != 0) {
        warn(warnings, "spec.priority", SCHEDULING_ONLY);
    }
    if set_to(&spec.preemption_policy, "PreemptLowerPriority") {
        warn(warnings, "spec.preemptionPolicy", SCHEDULING_ONLY);
    }
    if set_to(&spec.scheduler_name, "default-scheduler") {
        warn(warnings, "spec.schedulerName", SCHEDULING_ONLY);
    }
    if non_empty(&spec.scheduling_gates) {
        warn(warnings, "spec.schedulingGates", SCHEDULING_ONLY);
    }
    if non_empty_map(&spec.overhead) {
        warn(warnings, "spec.overhead", SCHEDULING_ONLY);
    }
    if non_empty(&spec.readiness_gates) {
        warn(
            warnings,
            "spec.readinessGates",
            "ignored: nothing on the node sets their conditions; Ready follows the containers alone",
        );
    }
    const NO_TOKEN: &str = "ignored: layerlet mounts no service account token";
    if set_to(&spec.service_account_name, "default") {
        warn(warnings, "spec.serviceAccountName", NO_TOKEN);
    } else if set_to(&spec.service_account, "default") {
        warn(warnings, "spec.serviceAccount", NO_TOKEN);
    }
    if spec.automount_service_account_token == Some(true) {
        warn(warnings, "spec.automountServiceAccountToken", NO_TOKEN);
    }
    Ok(())
}

pub(super) fn dns_config(config: &k8s::PodDNSConfig) -> Result<DnsConfig> {
    let mut options = Vec::new();
    for (i, o) in config.options.iter().flatten().enumerate() {
        let Some(name) = o.name.clone().filter(|n| !n.is_empty()) else {
            return Err(FieldError::new(
                format!("spec.dnsConfig.options[{i}].name"),
                "required",
            ));
        };
        options.push(DnsOption {
            name,
            value: o.value.clone(),
        });
    }
    Ok(DnsConfig {
        nameservers: config.nameservers.clone().unwrap_or_default(),
        searches: config.searches.clone().unwrap_or_default(),
        options,
    })
}
