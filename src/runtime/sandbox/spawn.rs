//! Starting a command inside a sandbox, as `posix_spawn` starts one: a
//! `clone(CLONE_VM | CLONE_VFORK)` child on a stack of its own, which
//! shares subrt's memory until it calls `execve`, so the cost does not
//! grow with subrt's size (no page tables are copied). Between the clone
//! and the exec the child joins the session's namespaces and cgroup,
//! drops to the sandbox's user with no capabilities and no new privileges,
//! takes its limits, and wires its standard streams: system calls only, on
//! data prepared before the clone.
//!
//! A sandbox in a user namespace of its own (subrt not run as root) is
//! entered by a *helper*: only from inside that user namespace may a
//! process join the others, and joining a PID namespace places a process's
//! children there, not the process. The helper joins the namespaces, user
//! namespace first, starts the command with
//! `clone(CLONE_VM | CLONE_VFORK | CLONE_PARENT)`, so that the command is
//! subrt's child, waited for and measured as any other, and exits. It is
//! itself a `CLONE_VM | CLONE_VFORK` child: current kernels let a process
//! that shares its memory (but not its thread group) into a user
//! namespace. Older ones refuse it (`EINVAL`: they count the memory's
//! users); there, from the first refusal on, the helper is forked (a copy
//! of subrt, whose cost grows with subrt's size: for a harness holding
//! 2 GiB, a write fault on each page it writes after each command).
//! `SUBRT_SANDBOX_HELPER=fork` asks for the forked helper everywhere (the
//! tests run both).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::raw_syscall::{ChildMain, Program, clone_with_signals_blocked, pipe};

/// What the child does before it runs the program.
pub(crate) struct ChildSetup<'a> {
    /// Namespaces to enter (`setns` descriptor and type), in order.
    pub namespaces: &'a [(RawFd, libc::c_int)],
    /// `cgroup.procs` of each controller's cgroup: the child writes itself
    /// there first, so that nothing it starts escapes the limits.
    pub cgroup_procs: &'a [RawFd],
    /// Its working directory, inside.
    pub cwd: &'a CString,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Resource limits (`RLIMIT_*`, value).
    pub rlimits: &'a [(libc::c_int, libc::rlim_t)],
    /// Empty the supplementary groups (not allowed, nor needed, in a user
    /// namespace made without root: the kernel keeps them there).
    pub drop_groups: bool,
    /// Standard input, output and error.
    pub stdio: [RawFd; 3],
}

/// What the child needs, in one place for its function.
#[derive(Clone, Copy)]
struct Start<'a> {
    program: &'a Program,
    setup: &'a ChildSetup<'a>,
    /// Where the child reports a failure (step, errno) before it exits,
    /// and a helper the command's pid (`PID_RECORD`, pid).
    report: RawFd,
    /// The namespaces are joined already (by a helper): the child skips
    /// them.
    joined: bool,
    /// Where a helper starts the command: the top of the lower half of the
    /// stack (the helper runs on the upper).
    child_stack: *mut libc::c_void,
}

/// Bytes of the child's stack (it makes system calls only); a helper and
/// its command take half each.
const STACK: usize = 128 * 1024;

/// The step number of a helper's record of the command's pid.
const PID_RECORD: i32 = -1;

/// The step at which a helper joins the user namespace (a shared helper
/// refused there with `EINVAL` is retried forked).
const USER_NAMESPACE_STEP: i32 = 10;

/// How a command is started (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// A `CLONE_VM | CLONE_VFORK` child sets itself up and runs it.
    Child,
    /// A helper sharing subrt's memory joins the namespaces and starts it.
    SharedHelper,
    /// A forked helper (a copy of subrt) does the same.
    ForkedHelper,
}

/// Set once the kernel refused a shared helper its user namespace: from
/// then on helpers are forked.
static FORKED_HELPERS: AtomicBool = AtomicBool::new(false);

/// Whether helpers are forked: the kernel refused a shared one, or
/// `SUBRT_SANDBOX_HELPER=fork` asks for it.
fn helpers_forked() -> bool {
    static ASKED: OnceLock<bool> = OnceLock::new();
    FORKED_HELPERS.load(Ordering::Relaxed)
        || *crate::runtime::fork_gate::once(&ASKED, || {
            std::env::var_os("SUBRT_SANDBOX_HELPER").is_some_and(|v| v == "fork")
        })
}

/// Why a command did not start.
#[derive(Debug)]
enum Failure {
    /// The clone or the report's pipe failed.
    Io(io::Error),
    /// The child or helper failed at a step (see [`step_words`]).
    Step { step: i32, errno: i32 },
    /// A helper ended without starting the command.
    NoCommand,
}

impl From<Failure> for io::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Io(e) => e,
            Failure::Step { step, errno } => {
                let cause = io::Error::from_raw_os_error(errno);
                io::Error::new(cause.kind(), format!("{}: {cause}", step_words(step)))
            }
            Failure::NoCommand => {
                io::Error::other("the sandbox's helper ended without starting the command")
            }
        }
    }
}

/// Starts `program` as `setup` says; returns its pid. Call it on a thread
/// whose `pid_for_children` is the session's PID namespace, unless the
/// namespaces to join include its user namespace (then a helper joins the
/// PID namespace too: list it there).
///
/// # Errors
///
/// The clone failed, or the child failed before its `execve` (the step and
/// the kernel's reason are said).
pub(crate) fn spawn(program: &Program, setup: &ChildSetup<'_>) -> io::Result<libc::pid_t> {
    // A user namespace is joined by a helper (see the module's doc).
    let through_helper = setup
        .namespaces
        .iter()
        .any(|&(_, kind)| kind == libc::CLONE_NEWUSER);
    if !through_helper {
        return Ok(start(program, setup, Way::Child)?);
    }
    if !helpers_forked() {
        match start(program, setup, Way::SharedHelper) {
            Err(Failure::Step {
                step: USER_NAMESPACE_STEP,
                errno: libc::EINVAL,
            }) => {
                FORKED_HELPERS.store(true, Ordering::Relaxed);
                tracing::debug!(
                    "this kernel refuses a user namespace to a process sharing subrt's \
                     memory: sandbox commands start through a forked helper from now on"
                );
            }
            started => return Ok(started?),
        }
    }
    Ok(start(program, setup, Way::ForkedHelper)?)
}

/// [`spawn`] the given way.
fn start(program: &Program, setup: &ChildSetup<'_>, way: Way) -> Result<libc::pid_t, Failure> {
    let (report_read, report_write) = pipe().map_err(Failure::Io)?;
    let mut stack = vec![0u8; STACK];
    let base = stack.as_mut_ptr();
    let top = |at: usize| {
        let top = base.wrapping_add(at);
        top.wrapping_sub(top as usize % 16).cast::<libc::c_void>()
    };
    let start = Start {
        program,
        setup,
        report: report_write.as_raw_fd(),
        joined: false,
        child_stack: top(STACK / 2),
    };
    let shared = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    let (entry, flags): (ChildMain, _) = match way {
        Way::Child => (child, shared),
        Way::SharedHelper => (helper, shared),
        Way::ForkedHelper => (helper, libc::SIGCHLD),
    };
    let entry_stack = top(STACK);
    // Signals stay blocked until the child has reset their handlers: a
    // handler of subrt's must never run in it.
    // SAFETY: the child runs `entry` on its own stack and only reads
    // `start`, which outlives it: a child or a shared helper shares this
    // memory until its execve or _exit (CLONE_VFORK holds this thread
    // until then); a forked helper has a copy of it.
    let pid = unsafe {
        clone_with_signals_blocked(
            entry,
            entry_stack,
            flags,
            (&raw const start).cast_mut().cast(),
        )
    };
    drop(stack);
    let pid = pid.map_err(Failure::Io)?;
    drop(report_write);
    // Records until end-of-file (every copy of the write end is closed on
    // exec or exit): a failure (step, errno), a helper's (PID_RECORD, pid).
    let mut failure = None;
    let mut command = None;
    loop {
        let mut record = [0i32; 2];
        // SAFETY: reads at most 8 bytes into a valid array.
        let read = unsafe { libc::read(report_read.as_raw_fd(), record.as_mut_ptr().cast(), 8) };
        match (read, record) {
            (8, [PID_RECORD, pid]) => command = Some(pid),
            (8, [step, errno]) => failure = Some(Failure::Step { step, errno }),
            (-1, _) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    let through_helper = way != Way::Child;
    // SAFETY: waitpid of our own children, which have exited (a helper, or
    // a child that failed) or is the command (not waited for here).
    unsafe {
        if through_helper || failure.is_some() {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        if let (Some(_), Some(command)) = (&failure, command) {
            libc::waitpid(command, std::ptr::null_mut(), 0);
        }
    }
    match (failure, through_helper, command) {
        (Some(failure), _, _) => Err(failure),
        (None, false, _) => Ok(pid),
        (None, true, Some(command)) => Ok(command),
        (None, true, None) => Err(Failure::NoCommand),
    }
}

/// The steps of [`child`], for the error.
fn step_words(step: i32) -> &'static str {
    match step {
        0 => "joining the session's cgroup",
        1 => "entering the session's namespaces",
        2 => "changing to the working dir",
        3 => "setting the standard streams",
        4 => "setting the limits",
        5 => "dropping to the sandbox's user",
        6 => "forbidding new privileges",
        8 => "starting the command from the sandbox's user namespace",
        9 => "dropping capabilities",
        USER_NAMESPACE_STEP => "joining the session's user namespace",
        _ => "starting the shell",
    }
}

/// A helper (see the module's doc): joins the sandbox's namespaces, starts
/// the command as subrt's child, reports its pid and exits. Signals stay
/// blocked in it throughout.
extern "C" fn helper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Start` in the parent's memory (held by the
    // vfork) or in this process's copy of it; only system calls follow.
    unsafe {
        let start = *(arg as *const Start<'_>);
        let report = |record: [i32; 2]| {
            libc::write(start.report, record.as_ptr().cast(), 8);
        };
        for &(fd, kind) in start.setup.namespaces {
            if libc::setns(fd, kind) < 0 {
                let step = match kind {
                    libc::CLONE_NEWUSER => USER_NAMESPACE_STEP,
                    _ => 1,
                };
                report([step, *libc::__errno_location()]);
                libc::_exit(127);
            }
        }
        let joined = Start {
            joined: true,
            ..start
        };
        let pid = libc::clone(
            child,
            start.child_stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT | libc::SIGCHLD,
            (&raw const joined).cast_mut().cast(),
        );
        if pid == -1 {
            report([8, *libc::__errno_location()]);
            libc::_exit(127);
        }
        report([PID_RECORD, pid]);
        libc::_exit(0)
    }
}

/// The capability sets of `capset(2)`, version 3 (two of these).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The header of `capset(2)`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// The child: set up, then `execve`; on failure report the step and errno
/// and `_exit(127)`.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Start` the parent keeps alive across the
    // vfork; only system calls follow, as a vfork child must.
    unsafe {
        let start = &*(arg as *const Start<'_>);
        let setup = start.setup;
        let fail = |step: i32| -> libc::c_int {
            let report = [step, *libc::__errno_location()];
            libc::write(start.report, report.as_ptr().cast(), 8);
            libc::_exit(127);
        };
        // Handlers of subrt's are not this process's; then signals flow.
        for signal in 1..libc::SIGRTMAX() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());

        for &procs in setup.cgroup_procs {
            if libc::write(procs, c"0".as_ptr().cast(), 1) < 0 {
                return fail(0);
            }
        }
        if !start.joined {
            for &(fd, kind) in setup.namespaces {
                if libc::setns(fd, kind) < 0 {
                    return fail(1);
                }
            }
        }
        if libc::chdir(setup.cwd.as_ptr()) < 0 {
            return fail(2);
        }
        // A process group of its own, as the local runtime's commands have.
        libc::setpgid(0, 0);
        for (target, &fd) in setup.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                return fail(3);
            }
        }
        for &(resource, value) in setup.rlimits {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource as _, &raw const limit) < 0 {
                return fail(4);
            }
        }
        // No capability can come back (an exec of a file with capabilities):
        // the bounding set is emptied while there is still the right to.
        for capability in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
        }
        // The user last: joining namespaces and cgroups needs root. Leaving
        // uid 0 for another clears every capability. Raw system calls, not
        // glibc's: its wrappers change the credentials of every thread of
        // what they take for this process (the parent's, with CLONE_VM),
        // and wait for those threads to do it.
        if (setup.drop_groups
            && libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) < 0)
            || libc::syscall(libc::SYS_setresgid, setup.gid, setup.gid, setup.gid) < 0
            || libc::syscall(libc::SYS_setresuid, setup.uid, setup.uid, setup.uid) < 0
        {
            return fail(5);
        }
        // Leaving uid 0 cleared them; in a user namespace made without root
        // the user was never 0 there and holds them all until now.
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let none = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capset, &raw const header, none.as_ptr()) < 0 {
            return fail(9);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            return fail(6);
        }
        libc::execve(
            start.program.path.as_ptr(),
            start.program.argv.as_ptr(),
            start.program.envp.as_ptr(),
        );
        fail(7)
    }
}
