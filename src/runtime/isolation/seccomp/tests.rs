use super::syscalls::*;
use super::*;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use seccompiler::sock_filter;

#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_00B7;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Docker's and containerd's default capability set.
fn default_caps() -> Vec<String> {
    [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect()
}

fn with_caps(extra: &[&str]) -> Vec<String> {
    let mut caps = default_caps();
    caps.extend(extra.iter().map(|c| c.to_string()));
    caps
}

fn runtime_default_program(caps: &[String]) -> BpfProgram {
    compile(
        &SeccompPolicy::RuntimeDefault,
        Path::new("/nonexistent"),
        caps,
    )
    .unwrap()
    .unwrap()
}

/// Runs a seccomp program the way the kernel would, for one syscall.
fn run(program: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
    // struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
    let mut data = Vec::new();
    data.extend_from_slice(&(nr as i32).to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_le_bytes());
    }
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = &program[pc];
        let k = insn.k;
        let jump = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
        pc += 1;
        match insn.code {
            0x20 => {
                let at = k as usize;
                a = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            0x54 => a &= k,
            0x05 => pc += k as usize,
            0x15 => pc += jump(a == k),
            0x25 => pc += jump(a > k),
            0x35 => pc += jump(a >= k),
            0x45 => pc += jump(a & k != 0),
            0x06 => return k,
            code => panic!("instruction {code:#x} at {} not understood", pc - 1),
        }
    }
}

fn verdict(program: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
    let nr = native_number(name).unwrap_or_else(|| panic!("{name} has no number here"));
    run(program, NATIVE_AUDIT_ARCH, nr, args)
}

#[test]
fn unconfined_compiles_to_no_filter() {
    let compiled = compile(&SeccompPolicy::Unconfined, Path::new("/x"), &[]).unwrap();
    assert!(compiled.is_none());
}

#[test]
fn runtime_default_is_what_a_pod_gets_when_it_says_nothing() {
    assert_eq!(SeccompPolicy::default(), SeccompPolicy::RuntimeDefault);
}

#[test]
fn policy_round_trips_through_json_for_the_container_plan() {
    for policy in [
        SeccompPolicy::RuntimeDefault,
        SeccompPolicy::Unconfined,
        SeccompPolicy::Localhost(PathBuf::from("profiles/audit.json")),
    ] {
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            serde_json::from_str::<SeccompPolicy>(&json).unwrap(),
            policy
        );
    }
}

#[test]
fn runtime_default_compiles_within_the_kernel_limit() {
    let program = runtime_default_program(&default_caps());
    assert!(
        program.len() <= BPF_MAXINSNS,
        "{} instructions",
        program.len()
    );
    let privileged = runtime_default_program(&with_caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]));
    assert!(privileged.len() <= BPF_MAXINSNS);
}

#[test]
fn runtime_default_allows_read_write_openat_and_execve() {
    let program = runtime_default_program(&default_caps());
    for name in [
        "read",
        "write",
        "openat",
        "execve",
        "exit_group",
        "futex",
        "getpid",
    ] {
        assert_eq!(verdict(&program, name, [0; 6]), ALLOW, "{name}");
    }
}

#[test]
fn runtime_default_refuses_keyctl_unshare_and_mount_with_eperm() {
    let program = runtime_default_program(&default_caps());
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "mount",
        "umount2",
        "setns",
        "bpf",
        "io_uring_setup",
        "kexec_load",
        "reboot",
        "init_module",
    ] {
        assert_eq!(verdict(&program, name, [0; 6]), EPERM, "{name}");
    }
}

#[test]
fn a_container_with_cap_sys_admin_may_mount_and_unshare() {
    let program = runtime_default_program(&with_caps(&["CAP_SYS_ADMIN"]));
    for name in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "clone3",
        "sethostname",
    ] {
        assert_eq!(verdict(&program, name, [0; 6]), ALLOW, "{name}");
    }
    let new_user_ns = libc::CLONE_NEWUSER as u64;
    assert_eq!(
        verdict(&program, "clone", [new_user_ns, 0, 0, 0, 0, 0]),
        ALLOW
    );
    // Still nothing for the keyring.
    assert_eq!(verdict(&program, "keyctl", [0; 6]), EPERM);
}

#[test]
fn capability_names_are_accepted_with_or_without_the_cap_prefix() {
    let program = runtime_default_program(&["sys_admin".to_string()]);
    assert_eq!(verdict(&program, "mount", [0; 6]), ALLOW);
}

#[test]
fn clone_is_allowed_only_without_namespace_flags() {
    let program = runtime_default_program(&default_caps());
    let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
    let fork_like = libc::SIGCHLD as u64;
    assert_eq!(verdict(&program, "clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        verdict(&program, "clone", [fork_like, 0, 0, 0, 0, 0]),
        ALLOW
    );
    for flag in [
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWNS,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
    ] {
        let flags = fork_like | flag as u64;
        assert_eq!(verdict(&program, "clone", [flags, 0, 0, 0, 0, 0]), EPERM);
    }
}

#[test]
fn clone3_fails_with_enosys_so_libcs_fall_back_to_clone() {
    let program = runtime_default_program(&default_caps());
    assert_eq!(verdict(&program, "clone3", [0; 6]), ENOSYS);
}

#[test]
fn personality_is_allowed_only_with_the_personas_moby_allows() {
    let program = runtime_default_program(&default_caps());
    for persona in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            verdict(&program, "personality", [persona, 0, 0, 0, 0, 0]),
            ALLOW
        );
    }
    // ADDR_NO_RANDOMIZE: turning off ASLR is not allowed.
    assert_eq!(
        verdict(&program, "personality", [0x0040000, 0, 0, 0, 0, 0]),
        EPERM
    );
}

#[test]
fn sockets_are_allowed_except_af_vsock() {
    let program = runtime_default_program(&default_caps());
    let inet = libc::AF_INET as u64;
    assert_eq!(verdict(&program, "socket", [inet, 1, 0, 0, 0, 0]), ALLOW);
    let vsock = libc::AF_VSOCK as u64;
    assert_eq!(verdict(&program, "socket", [vsock, 1, 0, 0, 0, 0]), EPERM);
}

#[test]
fn capability_gated_syscalls_follow_the_capabilities() {
    let default = runtime_default_program(&default_caps());
    // CAP_SYS_CHROOT is in the default set.
    assert_eq!(verdict(&default, "chroot", [0; 6]), ALLOW);
    for name in [
        "reboot",
        "settimeofday",
        "kcmp",
        "pidfd_getfd",
        "acct",
        "vhangup",
    ] {
        assert_eq!(verdict(&default, name, [0; 6]), EPERM, "{name}");
    }
    let none = runtime_default_program(&[]);
    assert_eq!(verdict(&none, "chroot", [0; 6]), EPERM);
    let more = runtime_default_program(&with_caps(&[
        "CAP_SYS_BOOT",
        "CAP_SYS_TIME",
        "CAP_SYS_PTRACE",
        "CAP_BPF",
        "CAP_PERFMON",
    ]));
    for name in [
        "reboot",
        "settimeofday",
        "kcmp",
        "pidfd_getfd",
        "bpf",
        "perf_event_open",
    ] {
        assert_eq!(verdict(&more, name, [0; 6]), ALLOW, "{name}");
    }
}

#[test]
fn ptrace_is_allowed_on_kernels_from_4_8_as_moby_does() {
    let program = runtime_default_program(&default_caps());
    let expected = if kernel_at_least((4, 8)) {
        ALLOW
    } else {
        EPERM
    };
    assert_eq!(verdict(&program, "ptrace", [0; 6]), expected);
}

#[test]
fn a_syscall_through_another_abi_kills_the_process() {
    let program = runtime_default_program(&default_caps());
    // i386 getpid through int 0x80.
    assert_eq!(run(&program, AUDIT_ARCH_I386, 20, [0; 6]), KILL_PROCESS);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscall_numbers_kill_the_process() {
    let program = runtime_default_program(&default_caps());
    let x32_read = 0x4000_0000 | libc::SYS_read;
    assert_eq!(
        run(&program, NATIVE_AUDIT_ARCH, x32_read, [0; 6]),
        KILL_PROCESS
    );
}

#[test]
fn every_name_in_the_runtime_default_lists_is_a_real_syscall() {
    let mut names: Vec<&str> = DEFAULT_ALLOWED.to_vec();
    names.extend(ALLOWED_SINCE_4_8);
    names.extend(ALLOWED_ON_THIS_ARCH);
    for (_, gated) in ALLOWED_WITH_CAPABILITY {
        names.extend(gated.iter());
    }
    for name in names {
        assert!(
            native_number(name).is_some() || known_elsewhere(name),
            "{name} is not a Linux syscall"
        );
    }
}

#[test]
fn syscall_name_tables_are_consistent() {
    assert!(
        OTHER_ARCH_SYSCALLS.windows(2).all(|w| w[0] < w[1]),
        "not sorted"
    );
    for (name, nr) in NEWER_SYSCALLS {
        let in_libc = LIBC_SYSCALLS
            .iter()
            .any(|(sys, _)| sys.strip_prefix("SYS_") == Some(*name));
        assert!(
            !in_libc,
            "{name} is in libc now; drop it from NEWER_SYSCALLS"
        );
        assert!(
            !LIBC_SYSCALLS.iter().any(|(_, n)| n == nr),
            "{name}'s number {nr} is taken"
        );
    }
    assert_eq!(native_number("read"), Some(libc::SYS_read));
    assert_eq!(native_number("listmount"), Some(458));
    assert_eq!(native_number("chown32"), None);
    assert!(known_elsewhere("chown32"));
    assert!(!known_elsewhere("opne"));
}

#[test]
fn runtime_default_list_sizes_per_architecture() {
    let resolved = DEFAULT_ALLOWED
        .iter()
        .filter(|n| native_number(n).is_some())
        .count();
    let arch_only = ALLOWED_ON_THIS_ARCH
        .iter()
        .filter(|n| native_number(n).is_some())
        .count();
    eprintln!(
        "{}: {} of {} moby names resolve, plus {arch_only} arch-specific",
        std::env::consts::ARCH,
        resolved,
        DEFAULT_ALLOWED.len()
    );
    assert!(resolved > 280, "only {resolved} syscalls resolved");
}

// --- Localhost -------------------------------------------------------------------

fn profile_dir(files: &[(&str, &str)]) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// A throwaway directory without another crate.
mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "layerlet-seccomp-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn localhost(dir: &tempdir::Dir, rel: &str, caps: &[String]) -> Result<BpfProgram, SeccompError> {
    let policy = SeccompPolicy::Localhost(PathBuf::from(rel));
    compile(&policy, dir.path(), caps).map(|p| p.unwrap())
}

const SAMPLE: &str = r#"{
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
    "syscalls": [
        {"names": ["keyctl", "add_key", "chown32"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["personality"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "value": 4194304, "valueTwo": 4194304, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"},
                  {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "comment": "not without CAP_SYS_ADMIN",
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
    ]
}"#;

#[test]
fn a_localhost_profile_is_parsed_and_compiled() {
    let dir = profile_dir(&[("profiles/sample.json", SAMPLE)]);
    let program = localhost(&dir, "profiles/sample.json", &default_caps()).unwrap();
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
    assert_eq!(verdict(&program, "read", [0; 6]), ALLOW);
    assert_eq!(verdict(&program, "keyctl", [0; 6]), errno(libc::ENOSYS));
    assert_eq!(verdict(&program, "add_key", [0; 6]), errno(libc::ENOSYS));
    assert_eq!(verdict(&program, "unshare", [0; 6]), EPERM);
    assert_eq!(verdict(&program, "kexec_load", [0; 6]), KILL_PROCESS);
    let trap = libc::SECCOMP_RET_TRAP;
    assert_eq!(
        verdict(&program, "personality", [0x40_0000, 0, 0, 0, 0, 0]),
        trap
    );
    assert_eq!(verdict(&program, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
    let log = libc::SECCOMP_RET_LOG;
    assert_eq!(verdict(&program, "socket", [10, 3, 0, 0, 0, 0]), log);
    assert_eq!(verdict(&program, "socket", [10, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&program, "socket", [2, 3, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&program, "mount", [0; 6]), EPERM);

    let admin = localhost(&dir, "profiles/sample.json", &with_caps(&["CAP_SYS_ADMIN"]));
    assert_eq!(verdict(&admin.unwrap(), "mount", [0; 6]), ALLOW);
}

#[test]
fn the_stricter_action_wins_when_two_rules_match() {
    let dir = profile_dir(&[(
        "p.json",
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ioctl"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_EQ"}]}
        ]}"#,
    )]);
    let program = localhost(&dir, "p.json", &[]).unwrap();
    // TIOCSTI (0x5412) kills the thread; other ioctls pass.
    let kill_thread = libc::SECCOMP_RET_KILL_THREAD;
    assert_eq!(
        verdict(&program, "ioctl", [0, 0x5412, 0, 0, 0, 0]),
        kill_thread
    );
    assert_eq!(verdict(&program, "ioctl", [0, 0x5401, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&program, "read", [0; 6]), EPERM);
}

#[test]
fn repeated_conditions_on_one_argument_are_alternatives_as_in_runc() {
    let dir = profile_dir(&[(
        "p.json",
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]}"#,
    )]);
    let program = localhost(&dir, "p.json", &[]).unwrap();
    assert_eq!(verdict(&program, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&program, "personality", [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(verdict(&program, "personality", [9, 0, 0, 0, 0, 0]), EPERM);
}

#[test]
fn a_localhost_path_that_is_absolute_or_climbs_out_is_refused() {
    let dir = profile_dir(&[("ok.json", SAMPLE)]);
    for bad in [
        "../etc/profile.json",
        "a/../../x.json",
        "/etc/seccomp.json",
        "",
    ] {
        let err = localhost(&dir, bad, &[]).unwrap_err();
        assert!(
            matches!(err, SeccompError::LocalhostPath { .. }),
            "{bad}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("relative to the seccomp profile directory"),
            "{text}"
        );
    }
}

#[test]
fn a_missing_localhost_file_is_named_in_the_error() {
    let dir = profile_dir(&[]);
    let err = localhost(&dir, "missing.json", &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SeccompError::Read { .. }), "{text}");
    assert!(text.contains("missing.json"), "{text}");
}

fn error_for(profile: &str) -> (SeccompError, String) {
    let dir = profile_dir(&[("bad.json", profile)]);
    let err = localhost(&dir, "bad.json", &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bad.json"), "the file is not named: {text}");
    (err, text)
}

#[test]
fn an_unknown_action_is_named_with_its_field() {
    let (err, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(matches!(err, SeccompError::UnknownAction { .. }), "{text}");
    assert!(text.contains("syscalls[1].action"), "{text}");
    assert!(text.contains("SCMP_ACT_NOTIFY"), "{text}");
    let (err, text) = error_for(r#"{"defaultAction": "SCMP_ACT_DENY"}"#);
    assert!(matches!(err, SeccompError::UnknownAction { .. }), "{text}");
    assert!(
        text.contains("defaultAction") && text.contains("SCMP_ACT_DENY"),
        "{text}"
    );
}

#[test]
fn an_unknown_comparison_is_named_with_its_field() {
    let (err, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
    );
    assert!(
        matches!(err, SeccompError::UnknownOperator { .. }),
        "{text}"
    );
    assert!(text.contains("syscalls[0].args[0].op"), "{text}");
    assert!(text.contains("SCMP_CMP_LIKE"), "{text}");
}

#[test]
fn an_unknown_syscall_is_named_but_other_architectures_syscalls_are_skipped() {
    let (err, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "chown32", "opne"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(matches!(err, SeccompError::UnknownSyscall { .. }), "{text}");
    assert!(text.contains("syscalls[0].names[2]"), "{text}");
    assert!(text.contains("\"opne\""), "{text}");
}

#[test]
fn an_argument_index_beyond_five_is_refused() {
    let (err, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(matches!(err, SeccompError::Invalid { .. }), "{text}");
    assert!(text.contains("syscalls[0].args[0].index"), "{text}");
}

#[test]
fn a_misspelt_field_is_refused_rather_than_ignored() {
    let (err, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscall": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert!(matches!(err, SeccompError::Parse { .. }), "{text}");
    assert!(text.contains("syscall"), "{text}");
}

#[test]
fn errno_ret_outside_errno_actions_or_range_is_refused() {
    let (_, text) = error_for(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
    );
    assert!(
        text.contains("errnoRet only goes with SCMP_ACT_ERRNO"),
        "{text}"
    );
    let (_, text) = error_for(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#);
    assert!(text.contains("out of range"), "{text}");
}

#[test]
fn unknown_architectures_and_unsupported_flags_are_refused() {
    let (_, text) =
        error_for(r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#);
    assert!(
        text.contains("architectures[0]") && text.contains("SCMP_ARCH_VAX"),
        "{text}"
    );
    let (_, text) =
        error_for(r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#);
    assert!(text.contains("flags[0]"), "{text}");
}

#[test]
fn docker_default_json_compiles_as_a_localhost_profile() {
    // moby's format: archMap, includes/excludes with caps, arches and minKernel, nulls.
    let dir = profile_dir(&[(
        "docker.json",
        r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}],
            "syscalls": [
                {"names": ["read", "write", "fstat64", "_llseek"], "action": "SCMP_ACT_ALLOW",
                 "args": null, "comment": "", "includes": {}, "excludes": {}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}},
                {"names": ["arch_prctl", "breakpoint"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64", "x32", "arm64"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#,
    )]);
    let program = localhost(&dir, "docker.json", &default_caps()).unwrap();
    assert_eq!(verdict(&program, "read", [0; 6]), ALLOW);
    assert_eq!(verdict(&program, "clone3", [0; 6]), ENOSYS);
    assert_eq!(verdict(&program, "ptrace", [0; 6]), ALLOW);
    if let Some(nr) = native_number("arch_prctl") {
        assert_eq!(run(&program, NATIVE_AUDIT_ARCH, nr, [0; 6]), ALLOW);
    }
}

// --- A real process --------------------------------------------------------------

/// In the forked child: only raw syscalls, no allocation, no locks.
fn probe_in_child(program: &BpfProgram) -> i32 {
    let errno = || nix::errno::Errno::last_raw();
    // SAFETY: plain syscalls on this thread.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return 64;
        }
        if install(program).is_err() {
            return 65;
        }
        let mut failures = 0;
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
        if libc::syscall(libc::SYS_keyctl, 0, -3, 0) != -1 || errno() != libc::EPERM {
            failures |= 1;
        }
        if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
            failures |= 2;
        }
        if libc::syscall(libc::SYS_getpid) <= 0 {
            failures |= 4;
        }
        let null = std::ptr::null::<u8>();
        if libc::syscall(libc::SYS_clone3, null, 0) != -1 || errno() != libc::ENOSYS {
            failures |= 8;
        }
        failures
    }
}

#[test]
fn runtime_default_blocks_keyctl_and_user_namespaces_in_a_real_process() {
    // Built before forking: the child of a multi-threaded test process must not allocate.
    let program = runtime_default_program(&default_caps());
    // SAFETY: the child only makes raw syscalls and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = probe_in_child(&program);
            // SAFETY: leaves without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            let WaitStatus::Exited(_, code) = status else {
                panic!("the probe did not exit normally: {status:?}");
            };
            let mut problems = Vec::new();
            if code == 64 {
                problems.push("prctl(PR_SET_NO_NEW_PRIVS) failed");
            }
            if code == 65 {
                problems.push("install failed");
            }
            if code < 64 {
                for (bit, what) in [
                    (1, "keyctl did not fail with EPERM"),
                    (2, "unshare(CLONE_NEWUSER) did not fail with EPERM"),
                    (4, "getpid failed"),
                    (8, "clone3 did not fail with ENOSYS"),
                ] {
                    if code & bit != 0 {
                        problems.push(what);
                    }
                }
            }
            assert!(problems.is_empty(), "{problems:?}");
        }
    }
}
