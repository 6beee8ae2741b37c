//! exec: a command in a running container, with a pseudo-terminal when asked.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use layerlet::runtime::pods::find_container;

use super::context::{node_runtime, open_store, Context};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Standard input is already the terminal to give the command (the kubelet API's exec,
    /// which holds the terminal's other side).
    #[arg(long, hide = true, conflicts_with = "tty")]
    pub stdin_tty: bool,
    /// [NAMESPACE/]POD[/CONTAINER] or a container ID prefix.
    pub name: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs before any thread starts (the exec helper forks and joins namespaces).
pub fn exec(ctx: &Context, args: ExecArgs) -> anyhow::Result<ExitCode> {
    use layerlet::runtime::process::exec::{exec_in, spawn_in, wait_code, ExecStdio};
    use layerlet::runtime::state::{check, Action};
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (_, c) = find_container(&store.db(), &args.name)?;
    drop(store);
    let state = rt.dirs(&c.id)?.state();
    check(&args.name, state.status()?, Action::Exec)?;
    let started = state.started()?.context("container has no start record")?;
    let process =
        layerlet::sys::process::PidFd::open_checked(started.pid, started.pid_start_ticks)?
            .with_context(|| format!("container {} is no longer running", args.name))?;
    let plan = rt.plan(&c.id)?.context("container has no plan")?;
    if args.stdin_tty {
        let terminal = std::io::stdin().as_fd().try_clone_to_owned()?;
        let child = spawn_in(
            process.pid(),
            &plan,
            &args.command,
            ExecStdio::Tty(terminal),
        )?;
        let code = wait_code(child)?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if !args.tty {
        let stdio = if args.interactive {
            ExecStdio::Inherit
        } else {
            ExecStdio::NoStdin
        };
        let code = exec_in(process.pid(), &plan, &args.command, stdio)?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    let pty = nix::pty::openpty(None, None)?;
    copy_window_size(pty.master.as_raw_fd());
    let child = spawn_in(
        process.pid(),
        &plan,
        &args.command,
        ExecStdio::Tty(pty.slave),
    )?;
    let raw = RawTerminal::enter();
    relay(pty.master, args.interactive);
    drop(raw);
    let code = wait_code(child)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn copy_window_size(master: i32) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts our terminal in raw mode while the session runs; restores it on drop.
struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    fn enter() -> RawTerminal {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Copies our stdin to the pty and the pty to our stdout until the session ends.
fn relay(master: OwnedFd, interactive: bool) {
    let mut buf = [0u8; 8192];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if stdin_open {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: valid pollfd array.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            // SAFETY: reading into our buffer from the master we own.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return; // EIO: the slave side closed, the session is over
            }
            // SAFETY: writing what we read to stdout.
            unsafe { libc::write(1, buf.as_ptr().cast(), n as usize) };
        }
        if stdin_open && fds[1].revents != 0 {
            // SAFETY: reading into our buffer from stdin.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                // End of input: send the terminal's EOF character.
                // SAFETY: writing one byte to the master.
                unsafe { libc::write(master.as_raw_fd(), [4u8].as_ptr().cast(), 1) };
            } else {
                // SAFETY: writing what we read to the master.
                unsafe { libc::write(master.as_raw_fd(), buf.as_ptr().cast(), n as usize) };
            }
        }
    }
}
