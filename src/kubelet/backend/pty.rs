//! The master side of a pseudo-terminal as async reader and writer halves (non-blocking fd
//! on tokio's reactor), and its window size. Reading EIO means the terminal's other side
//! closed: end of output.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::kubelet::node::Resize;

pub struct Master(AsyncFd<OwnedFd>);

impl Master {
    /// Takes the master fd, made non-blocking and close-on-exec.
    pub fn new(fd: OwnedFd) -> io::Result<Arc<Master>> {
        let raw = fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(raw, libc::F_GETFL);
            if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
        let registered = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Arc::new(Master(registered)))
    }
}

pub struct Reader(pub Arc<Master>);
pub struct Writer(pub Arc<Master>);

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0 .0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let result = guard.try_io(|fd| {
                // SAFETY: reading into the caller's initialized buffer.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0 .0.poll_write_ready(cx))?;
            let result = guard.try_io(|fd| {
                // SAFETY: writing from the caller's buffer.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The end of the client's input: the terminal's end-of-file character, as a person
    /// typing ^D would send it.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // SAFETY: one byte written to the master we hold.
        unsafe { libc::write(self.0 .0.get_ref().as_raw_fd(), [4u8].as_ptr().cast(), 1) };
        Poll::Ready(Ok(()))
    }
}

pub struct WindowSize(pub Arc<Master>);

impl Resize for WindowSize {
    fn resize(&self, width: u16, height: u16) {
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on the master we hold.
        unsafe { libc::ioctl(self.0 .0.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}
