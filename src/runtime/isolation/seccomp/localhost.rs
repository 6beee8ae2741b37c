//! Localhost profiles: OCI/Docker seccomp JSON read from the profile directory and turned
//! into rules.

use std::path::{Component, Path, PathBuf};

use seccompiler::{SeccompCmpOp, SeccompCondition};
use serde::Deserialize;

use super::error::SeccompError;
use super::filter::*;
use super::syscalls::*;

/// Resolves a Localhost profile path, refusing any that could leave the profile directory.
pub(super) fn localhost_file(root: &Path, rel: &Path) -> Result<PathBuf, SeccompError> {
    let refuse = |problem| SeccompError::LocalhostPath {
        path: rel.to_path_buf(),
        root: root.to_path_buf(),
        problem,
    };
    if rel.as_os_str().is_empty() {
        return Err(refuse("the path is empty"));
    }
    for component in rel.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is absolute"))
            }
        }
    }
    Ok(root.join(rel))
}

/// The profile file, as runc and Docker read it. Unknown fields are refused so that a
/// misspelt `syscalls` cannot silently leave a profile without rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ProfileFile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    /// Docker's per-host architecture list; the native ABI is all layerlet serves anyway.
    #[serde(default)]
    #[allow(dead_code)]
    arch_map: Option<serde_json::Value>,
    #[serde(default)]
    syscalls: Option<Vec<SyscallEntry>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SyscallEntry {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// Docker's older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<ArgEntry>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<DockerFilter>,
    #[serde(default)]
    excludes: Option<DockerFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ArgEntry {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// Docker's conditions on a rule: architectures (Go names), capabilities, kernel version.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DockerFilter {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// libseccomp's architecture names; a profile may list any of them.
pub(super) const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_SH",
];

pub(super) fn load_localhost(file: &Path, caps: &[String]) -> Result<Profile, SeccompError> {
    native_arch()?;
    let text = std::fs::read_to_string(file).map_err(|source| SeccompError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let parsed: ProfileFile =
        serde_json::from_str(&text).map_err(|source| SeccompError::Parse {
            file: file.to_path_buf(),
            source,
        })?;
    convert(&file.display().to_string(), parsed, caps)
}

/// Turns a parsed profile into rules for this architecture and these capabilities.
pub(super) fn convert(
    label: &str,
    file: ProfileFile,
    caps: &[String],
) -> Result<Profile, SeccompError> {
    let invalid = |field: &str, problem: String| SeccompError::Invalid {
        profile: label.to_owned(),
        field: field.to_owned(),
        problem,
    };
    for (i, arch) in file.architectures.iter().flatten().enumerate() {
        if !SCMP_ARCHES.contains(&arch.as_str()) {
            return Err(invalid(
                &format!("architectures[{i}]"),
                format!("unknown architecture {arch:?}"),
            ));
        }
    }
    for (i, flag) in file.flags.iter().flatten().enumerate() {
        // TSYNC only matters to multi-threaded callers; the container's init is not one.
        if flag != "SECCOMP_FILTER_FLAG_TSYNC" {
            return Err(invalid(
                &format!("flags[{i}]"),
                format!("filter flag {flag:?} is not supported by layerlet"),
            ));
        }
    }
    if file.listener_path.as_deref().is_some_and(|p| !p.is_empty())
        || file
            .listener_metadata
            .as_deref()
            .is_some_and(|m| !m.is_empty())
    {
        return Err(invalid(
            "listenerPath",
            "seccomp user notification (SCMP_ACT_NOTIFY) is not supported by layerlet".into(),
        ));
    }
    let default = action(
        label,
        "defaultAction",
        &file.default_action,
        file.default_errno_ret,
    )?;

    let mut rules = Vec::new();
    for (i, entry) in file.syscalls.into_iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        let applies = docker_filter_matches(label, &field, entry.includes.as_ref(), caps, true)?
            && !docker_filter_matches(label, &field, entry.excludes.as_ref(), caps, false)?;
        let act = action(
            label,
            &format!("{field}.action"),
            &entry.action,
            entry.errno_ret,
        )?;
        let alternatives = conditions(label, &field, entry.args.as_deref().unwrap_or(&[]))?;
        let names: Vec<&String> = entry.names.iter().flatten().chain(&entry.name).collect();
        if names.is_empty() {
            return Err(invalid(&field, "the rule names no syscall".into()));
        }
        for (j, name) in names.into_iter().enumerate() {
            let nr = match native_number(name) {
                Some(nr) => nr,
                // Exists on another architecture: skipped, as runc and moby do.
                None if known_elsewhere(name) => continue,
                None => {
                    return Err(SeccompError::UnknownSyscall {
                        profile: label.to_owned(),
                        field: format!("{field}.names[{j}]"),
                        name: name.clone(),
                    })
                }
            };
            if !applies {
                continue;
            }
            for conds in &alternatives {
                rules.push(Rule::new(nr, act.clone(), conds.clone()));
            }
        }
    }
    Ok(Profile { default, rules })
}

pub(super) fn action(
    label: &str,
    field: &str,
    name: &str,
    errno_ret: Option<u32>,
) -> Result<Action, SeccompError> {
    let action = match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => {
            let errno = errno_ret.unwrap_or(libc::EPERM as u32);
            if errno > MAX_ERRNO {
                return Err(SeccompError::Invalid {
                    profile: label.to_owned(),
                    field: field.to_owned(),
                    problem: format!("errno {errno} is out of range (0-{MAX_ERRNO})"),
                });
            }
            return Ok(Action::Errno(errno));
        }
        // libseccomp's SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD.
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        _ => {
            return Err(SeccompError::UnknownAction {
                profile: label.to_owned(),
                field: field.to_owned(),
                action: name.to_owned(),
            })
        }
    };
    match errno_ret {
        None => Ok(action),
        Some(_) => Err(SeccompError::Invalid {
            profile: label.to_owned(),
            field: field.to_owned(),
            problem: format!("errnoRet only goes with SCMP_ACT_ERRNO, not {name}"),
        }),
    }
}

/// The largest errno the kernel passes back (MAX_ERRNO).
pub(super) const MAX_ERRNO: u32 = 4095;

/// The argument conditions of one rule, as alternatives: usually one set that must all hold;
/// when an argument index repeats, runc adds each condition as its own rule, and so do we.
pub(super) fn conditions(
    label: &str,
    field: &str,
    args: &[ArgEntry],
) -> Result<Vec<Vec<SeccompCondition>>, SeccompError> {
    let mut all = Vec::with_capacity(args.len());
    for (k, arg) in args.iter().enumerate() {
        let at = format!("{field}.args[{k}]");
        let index = match u8::try_from(arg.index) {
            Ok(index) if index <= 5 => index,
            _ => {
                return Err(SeccompError::Invalid {
                    profile: label.to_owned(),
                    field: format!("{at}.index"),
                    problem: format!(
                        "argument {} does not exist (syscalls have arguments 0-5)",
                        arg.index
                    ),
                })
            }
        };
        let (op, value) = match arg.op.as_str() {
            "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, arg.value),
            "SCMP_CMP_NE" => (SeccompCmpOp::Ne, arg.value),
            "SCMP_CMP_LT" => (SeccompCmpOp::Lt, arg.value),
            "SCMP_CMP_LE" => (SeccompCmpOp::Le, arg.value),
            "SCMP_CMP_GT" => (SeccompCmpOp::Gt, arg.value),
            "SCMP_CMP_GE" => (SeccompCmpOp::Ge, arg.value),
            // (arg & value) == valueTwo
            "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
            other => {
                return Err(SeccompError::UnknownOperator {
                    profile: label.to_owned(),
                    field: format!("{at}.op"),
                    op: other.to_owned(),
                })
            }
        };
        let cond = condition(index, op, value).map_err(|source| SeccompError::Compile {
            profile: label.to_owned(),
            source,
        })?;
        all.push((index, cond));
    }
    let mut seen = [false; 6];
    let repeats = all
        .iter()
        .any(|(index, _)| std::mem::replace(&mut seen[usize::from(*index)], true));
    Ok(if repeats {
        all.into_iter().map(|(_, c)| vec![c]).collect()
    } else {
        vec![all.into_iter().map(|(_, c)| c).collect()]
    })
}

/// Whether Docker's `includes` (`want` true: every listed condition holds) or `excludes`
/// (`want` false: any listed condition holds) selects this rule.
pub(super) fn docker_filter_matches(
    label: &str,
    field: &str,
    filter: Option<&DockerFilter>,
    caps: &[String],
    want: bool,
) -> Result<bool, SeccompError> {
    let Some(filter) = filter else {
        return Ok(want);
    };
    let mut tests = Vec::new();
    if let Some(arches) = &filter.arches {
        if !arches.is_empty() {
            tests.push(arches.iter().any(|a| a == GO_ARCH));
        }
    }
    if let Some(listed) = &filter.caps {
        if !listed.is_empty() {
            let held = |c: &String| has_capability(caps, c);
            tests.push(if want {
                listed.iter().all(held)
            } else {
                listed.iter().any(held)
            });
        }
    }
    if let Some(min) = filter.min_kernel.as_deref().filter(|m| !m.is_empty()) {
        let which = if want { "includes" } else { "excludes" };
        let version = parse_kernel_version(min).ok_or_else(|| SeccompError::Invalid {
            profile: label.to_owned(),
            field: format!("{field}.{which}.minKernel"),
            problem: format!("{min:?} is not a kernel version like \"4.8\""),
        })?;
        tests.push(kernel_at_least(version));
    }
    Ok(if want {
        tests.into_iter().all(|t| t)
    } else {
        tests.into_iter().any(|t| t)
    })
}
