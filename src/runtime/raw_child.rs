//! A child process that tokio did not start (a sandboxed command, a
//! cluster tool started by [`host_spawn`](super::host_spawn)): waited for
//! through a pidfd, reaped with its resource usage.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A child of this process that tokio did not start, waited for through
/// its pidfd.
#[derive(Debug)]
pub struct RawChild {
    pid: libc::pid_t,
    pidfd: tokio::io::unix::AsyncFd<OwnedFd>,
    status: Option<std::process::ExitStatus>,
    usage: Option<crate::runtime::Usage>,
}

impl RawChild {
    /// Watches child `pid` of this process.
    ///
    /// # Errors
    ///
    /// `pidfd_open` failed (a kernel before 5.3).
    pub fn new(pid: libc::pid_t) -> io::Result<Self> {
        // SAFETY: pidfd_open of our own unreaped child; no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd, owned here (pidfds are close-on-exec).
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        // SAFETY: an OwnedFd returns the same open descriptor for as long
        // as it is owned, which the AsyncFd does until it is dropped.
        let pidfd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }?;
        Ok(Self {
            pid,
            pidfd,
            status: None,
            usage: None,
        })
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// What it and the children it waited for used, once it is reaped.
    pub fn usage(&self) -> Option<crate::runtime::Usage> {
        self.usage
    }

    /// Reaps it if it has exited, without waiting.
    ///
    /// # Errors
    ///
    /// `wait4` failed.
    pub fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        if self.status.is_none()
            && let Some((status, usage)) = reap(self.pid, libc::WNOHANG)?
        {
            self.status = Some(status);
            self.usage = Some(usage);
        }
        Ok(self.status)
    }

    /// Sends it SIGKILL, unless it is reaped already (its pid may then be
    /// another process's).
    pub fn start_kill(&self) {
        if self.status.is_none() {
            // SAFETY: kill(2) of our own child, not yet reaped: the pid is
            // still its own.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Waits for it to exit, and reaps it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it is reaped only in a call that returns.
    pub async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut ready = self.pidfd.readable().await?;
            if let Some((status, usage)) = reap(self.pid, libc::WNOHANG)? {
                self.status = Some(status);
                self.usage = Some(usage);
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}

/// `wait4` of child `pid` with `flags`: how it ended and what it used, once
/// it is reaped.
fn reap(
    pid: libc::pid_t,
    flags: libc::c_int,
) -> io::Result<Option<(std::process::ExitStatus, crate::runtime::Usage)>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    // SAFETY: rusage is plain data.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 of our own child, writing into a valid int and a
    // valid rusage.
    let reaped = unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut rusage) };
    if reaped == -1 {
        return Err(io::Error::last_os_error());
    }
    if reaped != pid {
        return Ok(None);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = crate::runtime::Usage {
        // The largest resident set of it and the children it waited for
        // (kilobytes).
        peak_memory_bytes: Some(rusage.ru_maxrss as u64 * 1024),
        cpu_user_seconds: Some(seconds(rusage.ru_utime)),
        cpu_system_seconds: Some(seconds(rusage.ru_stime)),
    };
    Ok(Some((std::process::ExitStatus::from_raw(status), usage)))
}

impl Drop for RawChild {
    /// A child never waited for is reaped in the background, so that it
    /// does not stay a zombie (the session's kill ends it).
    fn drop(&mut self) {
        if self.status.is_none() {
            let pid = self.pid;
            std::thread::spawn(move || {
                // SAFETY: waitpid of our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            });
        }
    }
}
