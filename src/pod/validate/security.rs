//! securityContext rules of the pod and of each container.

use std::collections::BTreeSet;

use super::errors::Errors;
use super::names::sysctl_name;
use super::paths::relative_path;
use crate::pod::spec::{ContainerSpec, PodSecurity, SeccompProfile};

pub(super) fn pod_security(sc: &PodSecurity, e: &mut Errors) {
    let p = "spec.securityContext";
    seccomp(
        sc.seccomp_profile.as_ref(),
        &format!("{p}.seccompProfile"),
        e,
    );
    let mut names = BTreeSet::new();
    for (i, sysctl) in sc.sysctls.iter().enumerate() {
        let field = format!("{p}.sysctls[{i}].name");
        if let Err(reason) = sysctl_name(&sysctl.name) {
            e.push(field, reason);
        } else if !names.insert(sysctl.name.as_str()) {
            e.push(field, format!("duplicate name {:?}", sysctl.name));
        }
    }
}

fn seccomp(profile: Option<&SeccompProfile>, path: &str, e: &mut Errors) {
    if let Some(SeccompProfile::Localhost(file)) = profile {
        e.check(format!("{path}.localhostProfile"), relative_path(file));
    }
}

pub(super) fn container_security(c: &ContainerSpec, p: &str, e: &mut Errors) {
    let sc = &c.security_context;
    let sp = format!("{p}.securityContext");
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged {
            e.push(
                format!("{sp}.allowPrivilegeEscalation"),
                "cannot be false when privileged is true",
            );
        }
        if sc
            .capabilities
            .add
            .iter()
            .any(|cap| cap.trim_start_matches("CAP_") == "SYS_ADMIN")
        {
            e.push(
                format!("{sp}.allowPrivilegeEscalation"),
                "cannot be false when capabilities.add has SYS_ADMIN",
            );
        }
    }
    for (list, name) in [
        (&sc.capabilities.add, "add"),
        (&sc.capabilities.drop, "drop"),
    ] {
        for (i, cap) in list.iter().enumerate() {
            if cap.is_empty() {
                e.push(format!("{sp}.capabilities.{name}[{i}]"), "required");
            }
        }
    }
    seccomp(
        sc.seccomp_profile.as_ref(),
        &format!("{sp}.seccompProfile"),
        e,
    );
}
