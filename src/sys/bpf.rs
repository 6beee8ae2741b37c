//! The few bpf(2) commands a cgroup device filter needs: load a program (with the verifier's
//! log when the kernel refuses it), attach it to a cgroup v2 directory, list and detach what
//! is attached there. Raw `libc::syscall` with the kernel's `union bpf_attr` layouts: each
//! command's struct is passed with its own size, and the kernel zero-fills the rest.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// One eBPF instruction, as `struct bpf_insn`: opcode, dst (low nibble) and src (high
/// nibble) registers, a signed jump offset and a signed immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
}

// uapi/linux/bpf.h
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs per cgroup, all of which must allow (what runc and systemd use).
pub const BPF_F_ALLOW_MULTI: u32 = 2;
/// Enough for any verifier complaint about a few hundred instructions.
const LOG_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("open cgroup directory {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel refused to load the {what} program ({insns} instructions): {source}{}", verifier(.log))]
    Load {
        what: String,
        insns: usize,
        log: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} on cgroup {path}: {source}")]
    Cgroup {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn verifier(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; verifier log:\n{}", log.trim_end())
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(cmd, attr, sizeof attr): the returned value (an fd for loads), or errno.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct of the layout `cmd` expects
    // (a prefix of union bpf_attr), and every pointer in it outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Loads `insns` as a program of `prog_type`; `name` (15 bytes at most shown) is what
/// `bpftool prog` lists. On refusal the load is repeated with the verifier's log on, so the
/// error says why.
pub fn load(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[Insn],
) -> Result<OwnedFd, BpfError> {
    // Device programs call no GPL-only helper: the project's own license will do.
    let license = c"Apache-2.0";
    let mut prog_name = [0u8; 16];
    for (to, from) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *to = from;
    }
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name,
            expected_attach_type,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    let refused = |source: std::io::Error, log: String| BpfError::Load {
        what: name.to_string(),
        insns: insns.len(),
        log,
        source,
    };
    let fd = match attempt(None) {
        Ok(fd) => fd,
        Err(first) => {
            let mut buf = vec![0u8; LOG_SIZE];
            match attempt(Some(&mut buf)) {
                Ok(fd) => fd,
                Err(e) => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    let log = String::from_utf8_lossy(&buf[..end]).into_owned();
                    // ENOSPC only says the log did not fit: the first error is the reason.
                    let source = if e.raw_os_error() == Some(libc::ENOSPC) {
                        first
                    } else {
                        e
                    };
                    return Err(refused(source, log));
                }
            }
        }
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new fd (O_CLOEXEC) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An open cgroup v2 directory, the target of attach, detach and query.
#[derive(Debug)]
pub struct CgroupDir {
    path: PathBuf,
    fd: OwnedFd,
}

/// Whether `path` is on a cgroup2 filesystem (the only place programs can be attached).
pub fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

impl CgroupDir {
    pub fn open(path: &Path) -> Result<Self, BpfError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(|source| BpfError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(CgroupDir {
            path: path.to_path_buf(),
            fd: file.into(),
        })
    }

    fn err(&self, op: &'static str, source: std::io::Error) -> BpfError {
        BpfError::Cgroup {
            op,
            path: self.path.clone(),
            source,
        }
    }

    pub fn attach(&self, prog: &OwnedFd, attach_type: u32, flags: u32) -> Result<(), BpfError> {
        let mut attr = AttachAttr {
            target_fd: self.fd.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type,
            attach_flags: flags,
            ..Default::default()
        };
        bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| self.err("BPF_PROG_ATTACH", e))?;
        Ok(())
    }

    /// Detaches the program with kernel id `id` (from [`CgroupDir::attached`]).
    pub fn detach(&self, id: u32, attach_type: u32) -> Result<(), BpfError> {
        let mut get = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut get)
            .map_err(|e| self.err("BPF_PROG_GET_FD_BY_ID", e))?;
        // SAFETY: a successful BPF_PROG_GET_FD_BY_ID returns a new fd that we now own.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut attr = AttachAttr {
            target_fd: self.fd.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut attr).map_err(|e| self.err("BPF_PROG_DETACH", e))?;
        Ok(())
    }

    /// Kernel ids of the programs of `attach_type` attached to this very cgroup (not those
    /// inherited from its ancestors).
    pub fn attached(&self, attach_type: u32) -> Result<Vec<u32>, BpfError> {
        let mut ids = vec![0u32; 64];
        loop {
            let mut attr = QueryAttr {
                target_fd: self.fd.as_raw_fd() as u32,
                attach_type,
                prog_ids: ids.as_mut_ptr() as u64,
                prog_cnt: ids.len() as u32,
                ..Default::default()
            };
            match bpf(BPF_PROG_QUERY, &mut attr) {
                Ok(_) => {
                    ids.truncate(attr.prog_cnt as usize);
                    return Ok(ids);
                }
                // Too small a buffer: the kernel has put the real count in prog_cnt.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    ids = vec![0u32; attr.prog_cnt as usize + 8];
                }
                Err(e) => return Err(self.err("BPF_PROG_QUERY", e)),
            }
        }
    }
}
