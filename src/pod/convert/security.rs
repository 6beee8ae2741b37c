//! Pod and container securityContext.

use k8s_openapi::api::core::v1 as k8s;

use super::fields::{choice, id, not_supported, warn, Result};
use crate::pod::error::{FieldError, Warning};
use crate::pod::spec::*;

pub(super) fn pod_security(
    sc: Option<&k8s::PodSecurityContext>,
    warnings: &mut Vec<Warning>,
) -> Result<PodSecurity> {
    let Some(sc) = sc else {
        return Ok(PodSecurity::default());
    };
    let p = "spec.securityContext";
    app_armor(sc.app_armor_profile.as_ref(), p)?;
    if sc.se_linux_options.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxOptions"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.se_linux_change_policy.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxChangePolicy"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        warn(
            warnings,
            format!("{p}.windowsOptions"),
            "ignored: Windows only",
        );
    }
    let mut supplemental_groups = Vec::new();
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        supplemental_groups.push(id(&format!("{p}.supplementalGroups[{i}]"), *g)?);
    }
    Ok(PodSecurity {
        run_as_user: optional_id(sc.run_as_user, &format!("{p}.runAsUser"))?,
        run_as_group: optional_id(sc.run_as_group, &format!("{p}.runAsGroup"))?,
        run_as_non_root: sc.run_as_non_root,
        supplemental_groups,
        supplemental_groups_policy: choice(
            &format!("{p}.supplementalGroupsPolicy"),
            sc.supplemental_groups_policy.as_deref(),
            SupplementalGroupsPolicy::Merge,
            &[
                ("Merge", SupplementalGroupsPolicy::Merge),
                ("Strict", SupplementalGroupsPolicy::Strict),
            ],
        )?,
        fs_group: optional_id(sc.fs_group, &format!("{p}.fsGroup"))?,
        fs_group_change_policy: choice(
            &format!("{p}.fsGroupChangePolicy"),
            sc.fs_group_change_policy.as_deref(),
            FsGroupChangePolicy::Always,
            &[
                ("Always", FsGroupChangePolicy::Always),
                ("OnRootMismatch", FsGroupChangePolicy::OnRootMismatch),
            ],
        )?,
        seccomp_profile: seccomp(sc.seccomp_profile.as_ref(), &format!("{p}.seccompProfile"))?,
        sysctls: sc
            .sysctls
            .iter()
            .flatten()
            .map(|s| Sysctl {
                name: s.name.clone(),
                value: s.value.clone(),
            })
            .collect(),
    })
}

fn optional_id(value: Option<i64>, field: &str) -> Result<Option<u32>> {
    value.map(|v| id(field, v)).transpose()
}

/// kubelet refuses a confining AppArmor profile on a host that cannot enforce it; so does
/// layerlet, which enforces none. Unconfined is what it does anyway.
fn app_armor(profile: Option<&k8s::AppArmorProfile>, path: &str) -> Result<()> {
    match profile {
        Some(p) if p.type_ != "Unconfined" => Err(not_supported(
            format!("{path}.appArmorProfile"),
            "AppArmor profiles are not applied (only type Unconfined is accepted)",
        )),
        _ => Ok(()),
    }
}

fn seccomp(profile: Option<&k8s::SeccompProfile>, path: &str) -> Result<Option<SeccompProfile>> {
    let Some(profile) = profile else {
        return Ok(None);
    };
    let localhost = profile.localhost_profile.clone().filter(|p| !p.is_empty());
    let converted = match profile.type_.as_str() {
        "RuntimeDefault" => SeccompProfile::RuntimeDefault,
        "Unconfined" => SeccompProfile::Unconfined,
        "Localhost" => match localhost {
            Some(file) => return Ok(Some(SeccompProfile::Localhost(file))),
            None => return Err(FieldError::new(format!("{path}.localhostProfile"), "required when type is Localhost")),
        },
        "" => return Err(FieldError::new(format!("{path}.type"), "required")),
        other => {
            return Err(FieldError::new(
                format!("{path}.type"),
                format!("unsupported value {other:?}; expected one of RuntimeDefault, Unconfined, Localhost"),
            ))
        }
    };
    if localhost.is_some() {
        return Err(FieldError::new(
            format!("{path}.localhostProfile"),
            "may only be set when type is Localhost",
        ));
    }
    Ok(Some(converted))
}

pub(super) fn container_security(
    sc: Option<&k8s::SecurityContext>,
    container_path: &str,
    warnings: &mut Vec<Warning>,
) -> Result<ContainerSecurity> {
    let Some(sc) = sc else {
        return Ok(ContainerSecurity::default());
    };
    let p = format!("{container_path}.securityContext");
    app_armor(sc.app_armor_profile.as_ref(), &p)?;
    if sc.se_linux_options.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxOptions"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        warn(
            warnings,
            format!("{p}.windowsOptions"),
            "ignored: Windows only",
        );
    }
    Ok(ContainerSecurity {
        run_as_user: optional_id(sc.run_as_user, &format!("{p}.runAsUser"))?,
        run_as_group: optional_id(sc.run_as_group, &format!("{p}.runAsGroup"))?,
        run_as_non_root: sc.run_as_non_root,
        read_only_root_filesystem: sc.read_only_root_filesystem.unwrap_or(false),
        privileged: sc.privileged.unwrap_or(false),
        allow_privilege_escalation: sc.allow_privilege_escalation,
        capabilities: sc
            .capabilities
            .as_ref()
            .map(|c| Capabilities {
                add: c.add.clone().unwrap_or_default(),
                drop: c.drop.clone().unwrap_or_default(),
            })
            .unwrap_or_default(),
        proc_mount: choice(
            &format!("{p}.procMount"),
            sc.proc_mount.as_deref(),
            ProcMount::Default,
            &[
                ("Default", ProcMount::Default),
                ("Unmasked", ProcMount::Unmasked),
            ],
        )?,
        seccomp_profile: seccomp(sc.seccomp_profile.as_ref(), &format!("{p}.seccompProfile"))?,
    })
}
