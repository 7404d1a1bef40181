//! System calls for children that share subrt's memory (`CLONE_VM`): such
//! a child shares the `errno` of the thread that made it, which libc's
//! wrappers write on failure while that thread runs on. [`raw`] makes a
//! call and leaves `errno` alone; [`clone_with_signals_blocked`] makes such
//! a child so that no handler of subrt's can run in it.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A pipe whose ends close on exec: (read, write).
///
/// # Errors
///
/// The kernel's refusal (out of descriptors).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// The program and its arguments and environment, as `execve` takes them.
pub(crate) struct Program {
    pub(crate) path: CString,
    _args: Vec<CString>,
    _env: Vec<CString>,
    pub(crate) argv: Vec<*const libc::c_char>,
    pub(crate) envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into the CStrings the struct owns, which
// never move (their heap buffers stay put) and are never changed.
unsafe impl Send for Program {}

impl Program {
    /// `path` run with `args` (argv[0] included) and `env` (`KEY=value`).
    pub(crate) fn new(path: CString, args: Vec<CString>, env: Vec<CString>) -> Self {
        let argv = args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp = env
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Self {
            path,
            _args: args,
            _env: env,
            argv,
            envp,
        }
    }
}

/// The function a child made by [`clone_with_signals_blocked`] runs.
pub(crate) type ChildMain = extern "C" fn(*mut libc::c_void) -> libc::c_int;

/// `clone(main, stack_top, flags, arg)` with every signal blocked in the
/// calling thread across it, so that the child starts with all of them
/// blocked: a handler of subrt's, run in a child that shares subrt's
/// memory, would act on subrt's state. The child resets the handlers
/// before it unblocks any, or never unblocks them. The caller's mask is
/// put back before this returns.
///
/// # Errors
///
/// The clone failed.
///
/// # Safety
///
/// As `clone(2)` with these arguments: `stack_top` is the top of memory the
/// child may use as its stack for as long as it runs there, and `main`
/// only touches what stays valid meanwhile.
pub(crate) unsafe fn clone_with_signals_blocked(
    main: ChildMain,
    stack_top: *mut libc::c_void,
    flags: libc::c_int,
    arg: *mut libc::c_void,
) -> io::Result<libc::pid_t> {
    // SAFETY: sigset_t is plain data; the calls fill it and set this
    // thread's mask, which is put back below; the clone is as the caller
    // promises.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let pid = libc::clone(main, stack_top, flags, arg);
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        match pid {
            -1 => Err(clone_error),
            pid => Ok(pid),
        }
    }
}

/// A system call that leaves `errno` alone: returns `-errno` on failure.
///
/// # Safety
///
/// As the call `number` with `args` is.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn raw(number: libc::c_long, args: [usize; 5]) -> isize {
    let result: isize;
    // SAFETY: the Linux x86-64 system call convention; the kernel clobbers
    // rcx and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// A system call that leaves `errno` alone: returns `-errno` on failure.
///
/// # Safety
///
/// As the call `number` with `args` is.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn raw(number: libc::c_long, args: [usize; 5]) -> isize {
    let result: isize;
    // SAFETY: the Linux aarch64 system call convention.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") number,
            inlateout("x0") args[0] as isize => result,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            options(nostack),
        );
    }
    result
}

/// Elsewhere, libc's `syscall`: it sets `errno` on failure, which a child
/// sharing memory then shares with a thread of subrt's (an error message
/// can name the wrong cause).
///
/// # Safety
///
/// As the call `number` with `args` is.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn raw(number: libc::c_long, args: [usize; 5]) -> isize {
    // SAFETY: as the caller's contract says.
    unsafe { libc::syscall(number, args[0], args[1], args[2], args[3], args[4]) as isize }
}

/// Closes every fd from `first` to `last`, falling back to closing them
/// one by one where `close_range(2)` is missing.
///
/// # Safety
///
/// Closes fds without regard to who owns them: only in a child that holds
/// nothing it needs.
pub(crate) unsafe fn close_range(first: u32, last: u32) {
    // SAFETY: the caller owns every fd in the range.
    unsafe {
        if raw(
            libc::SYS_close_range,
            [first as usize, last as usize, 0, 0, 0],
        ) == 0
        {
            return;
        }
        let mut limit: libc::rlimit = std::mem::zeroed();
        raw(
            libc::SYS_prlimit64,
            [
                0,
                libc::RLIMIT_NOFILE as usize,
                0,
                (&raw mut limit) as usize,
                0,
            ],
        );
        let end = (limit.rlim_cur.min(1 << 20) as u32).min(last.saturating_add(1));
        for fd in first..end {
            raw(libc::SYS_close, [fd as usize, 0, 0, 0, 0]);
        }
    }
}
