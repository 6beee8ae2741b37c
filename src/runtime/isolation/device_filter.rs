//! The device allow-list on cgroup v2, which has no devices controller: an eBPF program of
//! type BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup. The kernel runs it on
//! every mknod and every open of a device node, with
//! `struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }`,
//! and refuses with EPERM when it returns 0.
//!
//! [`program`] is pure: it turns the same [`DeviceRule`]s the v1 devices cgroup is given into
//! instructions with the v1 meaning (default deny; a rule allows when the type and numbers
//! match and it grants every access bit asked for). [`apply`] is the thin effectful edge.

use std::path::Path;

use crate::runtime::isolation::devices::DeviceRule;
use crate::sys::bpf::{self, Insn, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI};

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("device rule {rule:?}: {reason}")]
    Rule { rule: String, reason: String },
    #[error(transparent)]
    Bpf(#[from] bpf::BpfError),
}

/// The name `bpftool prog` shows.
pub const PROGRAM_NAME: &str = "layerlet_devices";

// The opcodes the generator emits (uapi/linux/bpf_common.h, bpf.h): class | op | source.
pub const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Register use: r1 the context (then scratch), r2 type, r3 access, r4 major, r5 minor.
const CTX: u8 = 1;
const SCRATCH: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

// BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_*.
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;

pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(LDX_MEM_W, dst, src, off, 0)
}
fn and32(dst: u8, imm: i32) -> Insn {
    insn(ALU32_AND_K, dst, 0, 0, imm)
}
fn mov32(dst: u8, imm: i32) -> Insn {
    insn(ALU32_MOV_K, dst, 0, 0, imm)
}
fn jne(dst: u8, imm: i32) -> Insn {
    // The offset is filled in once the rule's block length is known.
    insn(JMP_JNE_K, dst, 0, 0, imm)
}
fn exit() -> Insn {
    insn(JMP_EXIT, 0, 0, 0, 0)
}

/// Splits the context into registers; every rule block reads them.
fn prologue() -> Vec<Insn> {
    vec![
        ldx_w(TYPE, CTX, 0),
        and32(TYPE, 0xffff),
        ldx_w(ACCESS, CTX, 0),
        insn(ALU32_RSH_K, ACCESS, 0, 0, 16),
        ldx_w(MAJOR, CTX, 4),
        ldx_w(MINOR, CTX, 8),
    ]
}

fn rule_error(rule: &DeviceRule, reason: impl Into<String>) -> DeviceFilterError {
    let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
    DeviceFilterError::Rule {
        rule: format!(
            "{} {}:{} {}",
            rule.kind,
            n(rule.major),
            n(rule.minor),
            rule.access
        ),
        reason: reason.into(),
    }
}

/// The access bits of `rwm` letters.
fn access_bits(rule: &DeviceRule) -> Result<u32, DeviceFilterError> {
    rule.access.chars().try_fold(0, |bits, c| match c {
        'r' => Ok(bits | ACC_READ),
        'w' => Ok(bits | ACC_WRITE),
        'm' => Ok(bits | ACC_MKNOD),
        other => Err(rule_error(
            rule,
            format!("access letter {other:?} is not one of r, w, m"),
        )),
    })
}

/// A device number as a jump immediate: a 64-bit compare sign-extends it, so it must stay
/// below 2^31 (real majors have 12 bits, minors 20).
fn number(rule: &DeviceRule, what: &str, value: u32) -> Result<i32, DeviceFilterError> {
    i32::try_from(value)
        .map_err(|_| rule_error(rule, format!("{what} number {value} is out of range")))
}

/// The tests of one rule, each a jump past the rule when it fails; None for a rule that
/// grants nothing.
fn conditions(rule: &DeviceRule) -> Result<Option<Vec<Insn>>, DeviceFilterError> {
    let access = access_bits(rule)?;
    if access == 0 {
        return Ok(None); // grants nothing: no block at all
    }
    let mut tests = Vec::new();
    match rule.kind {
        'a' => {}
        'b' => tests.push(jne(TYPE, DEV_BLOCK as i32)),
        'c' => tests.push(jne(TYPE, DEV_CHAR as i32)),
        other => {
            return Err(rule_error(
                rule,
                format!("type {other:?} is not one of a, b, c"),
            ))
        }
    }
    // Allowed only if no bit is asked for beyond what the rule grants (even for `rwm`: a
    // bit the kernel may add one day is refused, as v1 refuses it).
    tests.push(insn(ALU32_MOV_X, SCRATCH, ACCESS, 0, 0));
    tests.push(and32(SCRATCH, !access as i32));
    tests.push(jne(SCRATCH, 0));
    if let Some(major) = rule.major {
        tests.push(jne(MAJOR, number(rule, "major", major)?));
    }
    if let Some(minor) = rule.minor {
        tests.push(jne(MINOR, number(rule, "minor", minor)?));
    }
    Ok(Some(tests))
}

/// The program for an allow-list: one block per rule that returns 1 when the rule matches,
/// then 0. Every block has a test that can fail, so no code is unreachable (the verifier
/// refuses that).
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>, DeviceFilterError> {
    let mut out = prologue();
    for rule in rules {
        let Some(mut block) = conditions(rule)? else {
            continue;
        };
        block.push(mov32(0, 1));
        block.push(exit());
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                // Relative to the next instruction: to the first one after the block.
                ins.off = (len - i - 1) as i16;
            }
        }
        out.extend(block);
    }
    out.push(mov32(0, 0));
    out.push(exit());
    Ok(out)
}

/// Loads the program for `rules` and makes it the only device program on the cgroup v2
/// directory `dir`. The new one is attached before the old ones go, so there is never a
/// moment without a filter (both apply in between: stricter, never looser).
pub fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
    let insns = program(rules)?;
    let prog = bpf::load(bpf::BPF_PROG_TYPE_CGROUP_DEVICE, 0, PROGRAM_NAME, &insns)?;
    let cgroup = bpf::CgroupDir::open(dir)?;
    let old = cgroup.attached(BPF_CGROUP_DEVICE)?;
    cgroup.attach(&prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)?;
    for id in old {
        cgroup.detach(id, BPF_CGROUP_DEVICE)?;
    }
    Ok(())
}

/// Detaches every device program of `dir` (all devices, as for a privileged container;
/// filters of ancestor cgroups still apply).
pub fn clear(dir: &Path) -> Result<(), DeviceFilterError> {
    let cgroup = bpf::CgroupDir::open(dir)?;
    for id in cgroup.attached(BPF_CGROUP_DEVICE)? {
        cgroup.detach(id, BPF_CGROUP_DEVICE)?;
    }
    Ok(())
}

/// Kernel ids of the device programs attached to `dir` itself.
pub fn attached(dir: &Path) -> Result<Vec<u32>, DeviceFilterError> {
    Ok(bpf::CgroupDir::open(dir)?.attached(BPF_CGROUP_DEVICE)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::isolation::devices::default_devices;

    const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

    /// Runs the opcodes [`program`] emits, as the kernel would, on one access; refuses
    /// anything else (another opcode, a backward jump, a read of an unset register, falling
    /// off the end), so a test also catches code the verifier would refuse.
    fn run(prog: &[Insn], kind: u32, major: u32, minor: u32, access: u32) -> Result<u64, String> {
        let ctx = [(access << 16) | kind, major, minor];
        let mut regs = [0u64; 11];
        let mut set = [false; 11];
        let mut ctx_ptr = [false; 11];
        ctx_ptr[1] = true;
        set[1] = true;
        let mut pc = 0usize;
        for _ in 0..=prog.len() {
            let i = prog.get(pc).ok_or(format!("fell off the end at {pc}"))?;
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let at = pc;
            let need = |regs: &[u64; 11], r: usize| {
                if set[r] && !ctx_ptr[r] {
                    Ok(regs[r])
                } else {
                    Err(format!("insn {at}: r{r} read before it is set"))
                }
            };
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    if !ctx_ptr[s] {
                        return Err(format!(
                            "insn {}: load through r{s}, not the context",
                            pc - 1
                        ));
                    }
                    let field = match i.off {
                        0 => 0,
                        4 => 1,
                        8 => 2,
                        off => return Err(format!("insn {}: context offset {off}", pc - 1)),
                    };
                    regs[d] = ctx[field] as u64;
                }
                ALU32_AND_K => regs[d] = (need(&regs, d)? as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => regs[d] = (need(&regs, d)? as u32 >> i.imm) as u64,
                ALU32_MOV_K => regs[d] = i.imm as u32 as u64,
                ALU32_MOV_X => regs[d] = need(&regs, s)? as u32 as u64,
                JMP_JNE_K => {
                    if i.off < 0 {
                        return Err(format!("insn {}: backward jump", pc - 1));
                    }
                    if need(&regs, d)? != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                    continue;
                }
                JMP_EXIT => return need(&regs, 0),
                other => return Err(format!("insn {}: opcode {other:#04x}", pc - 1)),
            }
            set[d] = true;
            ctx_ptr[d] = false;
        }
        Err("did not exit".into())
    }

    /// The verifier's "unreachable insn" check: every instruction is reached from the first.
    fn all_reachable(prog: &[Insn]) -> bool {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match prog[pc].code {
                JMP_EXIT => {}
                JMP_JNE_K => todo.extend([pc + 1, pc + 1 + prog[pc].off as usize]),
                _ => todo.push(pc + 1),
            }
        }
        seen.iter().all(|&s| s)
    }

    /// The v1 devices cgroup's rule: some rule of the type (or `a`), numbers (or wildcard)
    /// that grants every access bit asked for.
    fn v1_allows(rules: &[DeviceRule], kind: u32, major: u32, minor: u32, access: u32) -> bool {
        rules.iter().any(|r| {
            let kind_ok = match r.kind {
                'a' => true,
                'b' => kind == DEV_BLOCK,
                'c' => kind == DEV_CHAR,
                _ => false,
            };
            let granted = access_bits(r).unwrap();
            kind_ok
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
                && access & !granted == 0
        })
    }

    fn r(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
        DeviceRule {
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    fn allows(prog: &[Insn], kind: u32, major: u32, minor: u32, access: u32) -> bool {
        match run(prog, kind, major, minor, access) {
            Ok(1) => true,
            Ok(0) => false,
            other => panic!("{kind} {major}:{minor} access {access}: {other:?}"),
        }
    }

    #[test]
    fn one_exact_rule_is_type_access_major_minor_tests_then_allow_then_default_deny() {
        let prog = program(&[r('c', Some(1), Some(3), "rwm")]).unwrap();
        let mut want = prologue();
        want.extend([
            insn(JMP_JNE_K, TYPE, 0, 7, DEV_CHAR as i32),
            insn(ALU32_MOV_X, SCRATCH, ACCESS, 0, 0),
            insn(ALU32_AND_K, SCRATCH, 0, 0, !7),
            insn(JMP_JNE_K, SCRATCH, 0, 4, 0),
            insn(JMP_JNE_K, MAJOR, 0, 3, 1),
            insn(JMP_JNE_K, MINOR, 0, 2, 3),
            mov32(0, 1),
            exit(),
            mov32(0, 0),
            exit(),
        ]);
        assert_eq!(prog, want);
        assert_eq!(
            prologue(),
            vec![
                insn(0x61, 2, 1, 0, 0),
                insn(0x54, 2, 0, 0, 0xffff),
                insn(0x61, 3, 1, 0, 0),
                insn(0x74, 3, 0, 0, 16),
                insn(0x61, 4, 1, 4, 0),
                insn(0x61, 5, 1, 8, 0),
            ]
        );
    }

    #[test]
    fn a_partial_access_rule_tests_for_bits_beyond_the_grant() {
        let prog = program(&[r('b', None, None, "m")]).unwrap();
        let block = &prog[prologue().len()..];
        assert_eq!(
            block,
            &[
                insn(JMP_JNE_K, TYPE, 0, 5, DEV_BLOCK as i32),
                insn(ALU32_MOV_X, SCRATCH, ACCESS, 0, 0),
                insn(ALU32_AND_K, SCRATCH, 0, 0, !ACC_MKNOD as i32),
                insn(JMP_JNE_K, SCRATCH, 0, 2, 0),
                mov32(0, 1),
                exit(),
                mov32(0, 0),
                exit(),
            ]
        );
    }

    #[test]
    fn a_rule_for_every_device_allows_all_access_but_no_unknown_bit_and_leaves_no_dead_code() {
        let rules = [r('a', None, None, "rwm"), r('c', Some(1), Some(1), "r")];
        let prog = program(&rules).unwrap();
        // Its block is only the access test; the rules after it stay reachable.
        assert_eq!(prog.len(), prologue().len() + 5 + 8 + 2);
        assert!(all_reachable(&prog));
        for access in 1..=ACC_ALL {
            assert!(allows(&prog, DEV_BLOCK, 254, 0, access));
            assert!(allows(&prog, DEV_CHAR, 1, 1, access));
        }
        assert!(!allows(&prog, DEV_BLOCK, 254, 0, 8));
        // A rule that grants nothing has no block.
        let none = program(&[r('c', Some(1), Some(1), "")]).unwrap();
        assert_eq!(none.len(), prologue().len() + 2);
        assert!(!allows(&none, DEV_CHAR, 1, 1, ACC_READ));
    }

    #[test]
    fn the_default_allow_list_allows_the_pseudo_devices_and_mknod_but_not_host_devices() {
        let prog = program(&default_devices()).unwrap();
        assert!(all_reachable(&prog));
        let rw = ACC_READ | ACC_WRITE;
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, 0),
            (136, 7),
            (10, 200),
        ] {
            assert!(
                allows(&prog, DEV_CHAR, major, minor, rw),
                "c {major}:{minor}"
            );
        }
        // mknod of anything, so images may carry device nodes...
        assert!(allows(&prog, DEV_BLOCK, 254, 0, ACC_MKNOD));
        assert!(allows(&prog, DEV_CHAR, 1, 1, ACC_MKNOD));
        // ...but no read or write of a host disk, /dev/mem, /dev/kmsg or a tty.
        for access in [ACC_READ, ACC_WRITE, rw, ACC_MKNOD | ACC_READ] {
            assert!(
                !allows(&prog, DEV_BLOCK, 254, 0, access),
                "b 254:0 {access}"
            );
            assert!(!allows(&prog, DEV_BLOCK, 8, 0, access));
            assert!(!allows(&prog, DEV_CHAR, 1, 1, access));
            assert!(!allows(&prog, DEV_CHAR, 1, 11, access));
            assert!(!allows(&prog, DEV_CHAR, 4, 1, access));
            assert!(!allows(&prog, DEV_CHAR, 10, 201, access));
        }
        // The same numbers as a block device are not the pseudo-devices.
        assert!(!allows(&prog, DEV_BLOCK, 1, 3, ACC_READ));
        // Unknown access bits are refused rather than ignored.
        assert!(!allows(&prog, DEV_CHAR, 1, 3, 8));
    }

    #[test]
    fn decisions_equal_the_v1_devices_cgroups_for_every_tuple_of_a_grid() {
        let lists = [
            default_devices(),
            vec![
                r('c', Some(4), None, "r"),
                r('b', Some(7), None, "rw"),
                r('a', Some(1), Some(3), "w"),
                r('c', None, Some(9), "m"),
                r('b', Some(8), Some(0), ""),
            ],
            vec![],
            vec![r('a', None, None, "rm")],
        ];
        let majors = [0, 1, 4, 5, 7, 8, 10, 136, 254, 4095];
        let minors = [0, 1, 3, 5, 9, 200, 201, 1_048_575];
        for rules in &lists {
            let prog = program(rules).unwrap();
            assert!(all_reachable(&prog), "{rules:?}");
            for kind in [DEV_BLOCK, DEV_CHAR] {
                for major in majors {
                    for minor in minors {
                        // 8: a bit the kernel does not send today.
                        for access in 1..=(ACC_ALL | 8) {
                            assert_eq!(
                                allows(&prog, kind, major, minor, access),
                                v1_allows(rules, kind, major, minor, access),
                                "{rules:?}: type {kind} {major}:{minor} access {access}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        let e = program(&[r('x', None, None, "r")]).unwrap_err().to_string();
        assert!(e.contains("x *:* r") && e.contains("type"), "{e}");
        let e = program(&[r('c', Some(1), None, "rq")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("c 1:* rq") && e.contains("'q'"), "{e}");
        let e = program(&[r('b', Some(u32::MAX), None, "r")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("major number 4294967295"), "{e}");
    }
}
