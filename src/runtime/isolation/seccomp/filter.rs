//! Compiling rules into one classic-BPF program: one seccompiler filter per action, chained
//! by rewriting each filter's mismatch return into a jump to the next.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule,
};

use super::error::SeccompError;
use super::syscalls::*;

/// Actions ordered from the most to the least restrictive, as the kernel ranks them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u32),
    Log,
    Allow,
}

impl Action {
    pub(super) fn to_seccompiler(&self) -> SeccompAction {
        match self {
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Errno(errno) => SeccompAction::Errno(*errno),
            Action::Log => SeccompAction::Log,
            Action::Allow => SeccompAction::Allow,
        }
    }
}

/// One syscall, one action, and conditions that must all hold (none: always).
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) nr: libc::c_long,
    pub(super) action: Action,
    pub(super) conditions: Vec<SeccompCondition>,
}

impl Rule {
    pub(super) fn new(nr: libc::c_long, action: Action, conditions: Vec<SeccompCondition>) -> Rule {
        Rule {
            nr,
            action,
            conditions,
        }
    }
}

#[derive(Debug)]
pub(super) struct Profile {
    pub(super) default: Action,
    pub(super) rules: Vec<Rule>,
}

/// Compares a whole 64-bit argument, as libseccomp does on 64-bit architectures.
pub(super) fn condition(
    index: u8,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
}

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
pub(super) const BPF_MAXINSNS: usize = 4096;

/// Marks "no rule of this action matched": seccompiler's mismatch return, rewritten into a
/// jump. TRACE is never an action of ours, so no real return carries this value.
pub(super) fn sentinel() -> SeccompAction {
    SeccompAction::Trace(0x5ecc)
}

pub(super) const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
pub(super) const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

pub(super) fn build(label: &str, profile: Profile) -> Result<BpfProgram, SeccompError> {
    let arch = native_arch()?;
    let compile_error = |source| SeccompError::Compile {
        profile: label.to_owned(),
        source,
    };
    // Per action, per syscall: None when some rule allows it unconditionally, else the
    // alternative condition sets.
    let mut by_action: BTreeMap<Action, BTreeMap<i64, Option<Vec<SeccompRule>>>> = BTreeMap::new();
    for rule in profile.rules {
        // As runc: a rule that repeats the default action changes nothing.
        if rule.action == profile.default {
            continue;
        }
        let slot = by_action
            .entry(rule.action)
            .or_default()
            .entry(rule.nr)
            .or_insert_with(|| Some(Vec::new()));
        if rule.conditions.is_empty() {
            *slot = None;
        } else if let Some(alternatives) = slot {
            alternatives.push(SeccompRule::new(rule.conditions).map_err(compile_error)?);
        }
    }

    let mut program = abi_guard();
    let continue_k = u32::from(sentinel());
    for (action, syscalls) in by_action {
        let syscalls = syscalls
            .into_iter()
            .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(syscalls, sentinel(), action.to_seccompiler(), arch)
            .map_err(compile_error)?;
        let mut part = BpfProgram::try_from(filter).map_err(compile_error)?;
        let len = part.len();
        for (i, insn) in part.iter_mut().enumerate() {
            if insn.code == BPF_RET_K && insn.k == continue_k {
                // Jump to the first instruction after this part.
                *insn = bpf_stmt(BPF_JA, (len - i - 1) as u32);
            }
        }
        program.extend(part);
    }
    // The default action: seccompiler's arch check, then the return for every other syscall.
    let other = if profile.default == Action::Allow {
        SeccompAction::KillProcess
    } else {
        SeccompAction::Allow
    };
    let tail = SeccompFilter::new(
        BTreeMap::new(),
        profile.default.to_seccompiler(),
        other,
        arch,
    )
    .map_err(compile_error)?;
    program.extend(BpfProgram::try_from(tail).map_err(compile_error)?);

    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge {
            profile: label.to_owned(),
            len: program.len(),
        });
    }
    Ok(program)
}

pub(super) fn bpf_stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// x86_64: kill x32 calls (bit 30 of the number), which reach the same kernel entry points
/// under other numbers and would pass a deny-list; libseccomp does the same.
#[cfg(target_arch = "x86_64")]
pub(super) fn abi_guard() -> Vec<sock_filter> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    vec![
        bpf_stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        bpf_stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn abi_guard() -> Vec<sock_filter> {
    Vec::new()
}
