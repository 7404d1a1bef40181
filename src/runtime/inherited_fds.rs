//! File descriptors a command must not inherit.
//!
//! What subrt opens is close-on-exec (Rust's standard library and tokio
//! open everything so, as Python does). What is not: descriptors the process
//! itself inherited (a CI runner's pipes, a shell's `exec 7>file`, a socket
//! a supervisor passed down) and those a harness marked inheritable. A
//! command would get them all, and an untrusted one could read or write
//! whatever they lead to. So a command gets stdin, stdout and stderr and
//! nothing else, as with Python's `subprocess` (`close_fds=True`):
//!
//! - the `subrt` binary marks every inherited descriptor close-on-exec when
//!   it starts ([`close_on_exec`] of [`inheritable`]);
//! - the library, in a process it does not own, leaves the process's own
//!   descriptors as they were: they are close-on-exec only while a command
//!   is spawned (`while_hidden`).
//!
//! Local commands and setup commands go through this. Slurm's `salloc`
//! (it lasts as long as the session) and `srun` (as long as its step) need
//! not: `host_spawn` starts them with their three
//! standard streams and closes the rest in the child. Docker commands run
//! in a container, which inherits nothing from subrt.

use std::os::fd::RawFd;
use std::sync::Mutex;

use super::fork_gate::{self, Locked};

/// The descriptors above stderr that a child of this process would inherit,
/// read from `/proc/self/fd`; empty where that cannot be read.
pub fn inheritable() -> Vec<RawFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        .filter(|&fd| {
            // SAFETY: F_GETFD reads the flags of an fd number; the listing's
            // own fd is close-on-exec, and one closed since gives -1.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC == 0
        })
        .collect()
}

/// Marks `fds` close-on-exec.
pub fn close_on_exec(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: F_SETFD on an fd number changes only that fd's flags; one
        // that is not open gives EBADF, which is fine.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Runs `spawn` with the process's inheritable descriptors marked
/// close-on-exec, and makes them inheritable again after.
///
/// Marking them in the parent, not in the child, keeps the spawn on the fast
/// `posix_spawn` path: a `pre_exec` step would make std fork the whole
/// process (for a Python harness, 1.8 against 0.8 ms per `execute("true")`,
/// measured with two inherited descriptors). A process another thread of
/// the host starts while subrt spawns, asking to inherit everything
/// (`close_fds=False`), does not get them either.
///
/// Spawns on several threads at once share one hiding: the descriptors stay
/// hidden from the first one's start to the last one's end. Each restoring
/// its own would hand them to a command another thread was starting in that
/// instant (5 to 8 of 320 commands of 8 sessions on 4 threads got one).
pub(crate) fn while_hidden<T>(spawn: impl FnOnce() -> T) -> T {
    let _hidden = Hidden::now();
    spawn()
}

/// One spawn's share of the hiding, until it is dropped.
struct Hidden;

/// What the spawns under way in process `pid` have hidden, and how many
/// spawns there are.
struct Hiding {
    pid: u32,
    spawns: usize,
    fds: Vec<(RawFd, Option<(u64, u64)>)>,
}

static HIDING: Mutex<Hiding> = Mutex::new(Hiding {
    pid: 0,
    spawns: 0,
    fds: Vec::new(),
});

/// The hiding of this process. In a child made by `fork` while another
/// thread was spawning, that spawn never ends: what it hid is given back
/// at the child's first spawn, which starts a hiding of its own.
fn hiding() -> Locked<Hiding> {
    let mut hiding = fork_gate::lock(&HIDING);
    let pid = std::process::id();
    if hiding.pid != pid {
        hiding.pid = pid;
        hiding.spawns = 0;
        restore(std::mem::take(&mut hiding.fds));
    }
    hiding
}

/// Makes `fds` inheritable again, each only if its number still names the
/// same file: one closed meanwhile and its number reused by a new
/// (close-on-exec) descriptor must stay close-on-exec.
fn restore(fds: Vec<(RawFd, Option<(u64, u64)>)>) {
    for (fd, file) in fds {
        if file.is_some() && identity(fd) == file {
            // SAFETY: clears the close-on-exec flag this set on an fd the
            // process holds open for inheritance.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
    }
}

impl Hidden {
    fn now() -> Self {
        // Counted first: from here on nothing is given back until this is
        // dropped, so what this marks below stays marked for its spawn.
        hiding().spawns += 1;
        // Looked for at every spawn (one made inheritable since the first
        // spawn of a hiding is hidden too), outside the lock, which a
        // `fork` of the host would leave held in the child. Noted before
        // they are marked, so that a child forked in between still finds
        // them to give back.
        let fds = inheritable();
        let noted: Vec<_> = fds.iter().map(|&fd| (fd, identity(fd))).collect();
        hiding().fds.extend(noted);
        close_on_exec(&fds);
        Self
    }
}

impl Drop for Hidden {
    /// The last spawn makes them inheritable again.
    fn drop(&mut self) {
        let mut hiding = hiding();
        // Counted in this process (a hiding is per process, see `hiding`),
        // so never below zero; saturating all the same, as a drop must not
        // panic.
        hiding.spawns = hiding.spawns.saturating_sub(1);
        if hiding.spawns == 0 {
            restore(std::mem::take(&mut hiding.fds));
        }
    }
}

/// The device and inode `fd` refers to, if it is open.
fn identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer given, or fails.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the buffer is filled.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
}
