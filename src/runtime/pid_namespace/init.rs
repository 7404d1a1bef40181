//! The init of a session's PID namespace: how it is made, and what it runs.
//!
//! The init is made with `clone(CLONE_VM)` on a stack of its own: it shares
//! subrt's memory instead of getting a copy of it. A fork-like clone (what
//! this was before) copies the page tables of the whole process, and after
//! it every page subrt writes to again is a copy-on-write fault with a TLB
//! shootdown on every CPU that runs one of subrt's threads. In a batch of
//! 1,000 sessions that was 45% of all the CPU time, and it grew with
//! subrt's size (see BENCHMARKS.md, "Flat batches").
//!
//! Sharing memory puts rules on the init, which it keeps:
//!
//! - It runs only system calls on its own stack and on data the making
//!   thread keeps alive until the init's setup is done. It never allocates,
//!   locks or unwinds.
//! - It uses the making thread's thread-local storage (no `CLONE_SETTLS`),
//!   `errno` included. Once set up, it makes its calls with [`raw`], which
//!   leaves `errno` alone, so that a running init never writes the `errno`
//!   of the keeper thread or of another init's setup.
//! - No handler of subrt's may run in it (the handler would act on subrt's
//!   memory): signals are blocked in the making thread across the clone,
//!   and the init resets every handler before it unblocks any signal. It
//!   installs no handler of its own either: the signals it acts on
//!   (`SIGCHLD`, and `SIGTERM`, `SIGINT`, `SIGHUP` to end) stay blocked and
//!   are read from a signalfd. A blocked signal is queued even for the init
//!   of a namespace, which the kernel otherwise spares from signals it has
//!   no handler for.
//! - Its stack is unmapped only once it has been reaped.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::InitSetup;
use crate::runtime::raw_syscall::{clone_with_signals_blocked, close_range, pipe, raw};

/// Bytes of an init's stack: its setup and loop make system calls only
/// (the largest frame is a sandbox setup's 1 KiB table of descriptors).
/// Pages are committed when touched: a session costs a few.
const STACK: usize = 128 * 1024;

/// The memory an init runs on, unmapped when dropped: drop it only once
/// the init is reaped.
pub(super) struct InitStack {
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: a plain mapping, owned by the one value; nothing in this process
// but the init (which is gone when this is dropped) uses it.
unsafe impl Send for InitStack {}

impl std::fmt::Debug for InitStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitStack").field("len", &self.len).finish()
    }
}

impl InitStack {
    fn new() -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = STACK + page;
        // SAFETY: a fresh anonymous mapping, not overlapping anything.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base, len };
        // The lowest page is a guard: an overflow faults instead of writing
        // over whatever is mapped below.
        // SAFETY: the first page of the mapping made above.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The top of the stack, 16-byte aligned, where the init starts.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, as a stack's top is.
        let top = unsafe { self.base.cast::<u8>().add(self.len) };
        top.wrapping_sub(top as usize % 16).cast()
    }
}

impl Drop for InitStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the init that ran on it is
        // reaped (the owner's promise).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// What the init reads from its maker, on the maker's stack: valid until
/// the init's setup is done (the maker waits for that).
struct Start<'a> {
    lifeline: RawFd,
    setup: Option<&'a dyn InitSetup>,
    /// In a user namespace of its own, the init waits for a byte here: its
    /// maker writes the namespace's id maps first (until then it has no
    /// uid there, and could make no file). -1 otherwise.
    go: RawFd,
    /// Where the setup reports its failure (errno, step); closed by the init
    /// once it is done, which the maker sees as end-of-file.
    ready: RawFd,
}

/// Makes an init in a new PID namespace (and the namespaces `setup` asks
/// for), and waits until its setup is done. Returns its pid and the stack
/// it runs on, which must outlive it.
///
/// # Errors
///
/// The clone failed, or the setup did (with its step in words).
pub(super) fn start(
    lifeline: RawFd,
    setup: Option<&dyn InitSetup>,
) -> io::Result<(libc::pid_t, InitStack)> {
    let extra = setup.map_or(0, |s| s.clone_flags());
    let (ready_read, ready_write) = pipe()?;
    let go = if extra & libc::CLONE_NEWUSER != 0 {
        Some(pipe()?)
    } else {
        None
    };
    let stack = InitStack::new()?;
    let start = Start {
        lifeline,
        setup,
        ready: ready_write.as_raw_fd(),
        go: go.as_ref().map_or(-1, |(read, _)| read.as_raw_fd()),
    };
    // SAFETY: the child runs `init_entry` on its own stack and reads
    // `start` only until it closes `ready`, which this thread waits for
    // below while `start` lives.
    let pid = unsafe {
        clone_with_signals_blocked(
            init_entry,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_NEWPID | extra | libc::SIGCHLD,
            (&raw const start).cast_mut().cast(),
        )
    }?;
    drop(ready_write);
    if let (Some(setup), Some((_, go_write))) = (setup, &go) {
        let mapped = setup.map_ids(pid);
        if let Err(e) = mapped {
            // SAFETY: kill and waitpid of our own child, before its stack
            // is dropped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
        // SAFETY: writes one byte from a valid array.
        unsafe { libc::write(go_write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
    let mut report = [0i32; 2];
    // SAFETY: reads at most 8 bytes into a valid array.
    let read = unsafe { libc::read(ready_read.as_raw_fd(), report.as_mut_ptr().cast(), 8) };
    if read == 8 {
        // SAFETY: waitpid of our own child, which has exited; its stack is
        // dropped after.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let step = setup.map_or_else(String::new, |s| s.describe(report[1] as u32));
        let cause = io::Error::from_raw_os_error(report[0]);
        return Err(io::Error::new(cause.kind(), format!("{step}: {cause}")));
    }
    Ok((pid, stack))
}

/// Where the init starts: its setup, then [`init_main`].
extern "C" fn init_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the maker's `Start`, alive until `ready` is closed;
    // everything it is needed for is copied out first.
    let (lifeline, setup, ready, go) = unsafe {
        let start = &*(arg as *const Start<'_>);
        (start.lifeline, start.setup, start.ready, start.go)
    };
    // SAFETY: only system calls, as the module's rules say.
    unsafe {
        // Handlers of subrt's are not the init's: reset, while every signal
        // is still blocked (the maker's mask, inherited). Not glibc's own
        // two (32 and 33): it refuses them, writing an `errno` the maker's
        // thread may be reading.
        for signal in (1..32).chain(libc::SIGRTMIN()..=libc::SIGRTMAX()) {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_NAME, c"subrt-init".as_ptr());
        let mut byte = 0u8;
        if go >= 0
            && raw(
                libc::SYS_read,
                [go as usize, (&raw mut byte) as usize, 1, 0, 0],
            ) != 1
        {
            // The maker could not map the ids: it kills this init.
            exit(1);
        }
        if let Some(setup) = setup
            && let Err((errno, step)) = setup.run()
        {
            let report = [errno, step as i32];
            libc::write(ready, report.as_ptr().cast(), 8);
            exit(1);
        }
        init_main(lifeline)
    }
}

/// PID 1 of a session's namespace. Reaps orphans until the lifeline closes
/// or `SIGTERM`, `SIGINT` or `SIGHUP` arrives, then exits, which makes the
/// kernel kill every other member.
///
/// # Safety
///
/// Only in the init, after its setup.
unsafe fn init_main(lifeline: RawFd) -> ! {
    // SAFETY: system calls on values of this stack frame.
    unsafe {
        // Hold nothing of subrt's: another session's pipe kept open here
        // would keep that session's reader waiting for end-of-file. This
        // also closes `ready`: the maker goes on.
        if lifeline > 0 {
            close_range(0, lifeline as u32 - 1);
        }
        close_range(lifeline as u32 + 1, u32::MAX);

        let mut wanted: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut wanted);
        for signal in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&raw mut wanted, signal);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &raw const wanted, std::ptr::null_mut());
        let signals = libc::signalfd(-1, &raw const wanted, libc::SFD_NONBLOCK);
        if signals < 0 {
            exit(1);
        }

        let mut fds = [
            libc::pollfd {
                fd: lifeline,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            while raw(
                libc::SYS_wait4,
                [usize::MAX, 0, libc::WNOHANG as usize, 0, 0],
            ) > 0
            {}
            fds[0].revents = 0;
            fds[1].revents = 0;
            let polled = raw(
                libc::SYS_ppoll,
                [fds.as_mut_ptr() as usize, fds.len(), 0, 0, 0],
            );
            if polled < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                // Nobody writes the lifeline: readable means end-of-file.
                exit(0);
            }
            while raw(
                libc::SYS_read,
                [signals as usize, (&raw mut info) as usize, size, 0, 0],
            ) == size as isize
            {
                if info.ssi_signo != libc::SIGCHLD as u32 {
                    exit(0);
                }
            }
        }
    }
}

/// Ends the init with `code`.
///
/// # Safety
///
/// Only in the init.
unsafe fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group ends this process (the init is a process of
        // its own: no CLONE_THREAD), not subrt.
        unsafe { raw(libc::SYS_exit_group, [code as usize, 0, 0, 0, 0]) };
    }
}
