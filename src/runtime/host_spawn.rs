//! Starting a host program (the cluster's `srun` and `salloc`, a
//! `process-group` session's commands) as `posix_spawn` starts one: a
//! `clone(CLONE_VM | CLONE_VFORK)` child on a stack of its own, which
//! shares subrt's memory until its `execve`, so the cost does not grow
//! with subrt's size, and nothing of subrt's is copied for later writes to
//! fault on. Between the clone and the exec the child does what
//! `posix_spawn` cannot:
//!
//! - asks for SIGKILL when subrt ends (`PR_SET_PDEATHSIG`; the clone is
//!   made on the [lasting thread](super::lasting_thread), since the signal
//!   follows the thread that made the child);
//! - keeps its three standard streams and closes every other descriptor
//!   (`close_range`): nothing subrt, or a harness around it, left open or
//!   inheritable reaches the program, without hiding descriptors process-wide
//!   as [`inherited_fds::while_hidden`](super::inherited_fds::while_hidden)
//!   must for std's `Command`.
//!
//! std's `Command` with a `pre_exec` step forks the whole process instead:
//! a copy of the caller's page tables per command, then a write-protect
//! fault on each page the caller writes after it. From a harness holding
//! 2 GiB that made a `process-group` command 110 times the cost of a
//! spawn, and a Slurm step 2.6 times an `srun` (BENCHMARKS.md).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::net::unix::pipe;

use super::raw_child::RawChild;
use super::raw_syscall::{ChildMain, Program, clone_with_signals_blocked, close_range, pipe, raw};

/// A host program to start: an absolute path (no `PATH` search), its
/// arguments, and the whole of its environment.
#[derive(Debug, Clone)]
pub(crate) struct HostCommand {
    path: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin_piped: bool,
    die_with_subrt: bool,
    own_group: bool,
    cwd: Option<PathBuf>,
    user: Option<(libc::uid_t, libc::gid_t)>,
}

/// A started [`HostCommand`]: the process, and subrt's ends of its pipes.
#[derive(Debug)]
pub(crate) struct HostChild {
    pub process: RawChild,
    /// Its stdin, when piped; otherwise it reads `/dev/null`.
    pub stdin: Option<pipe::Sender>,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
}

impl HostCommand {
    /// `path` with no arguments, an empty environment, stdin from
    /// `/dev/null`, in subrt's process group, left running should subrt
    /// end.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin_piped: false,
            die_with_subrt: false,
            own_group: false,
            cwd: None,
            user: None,
        }
    }

    /// Its working dir (entered as its user), rather than subrt's.
    pub(crate) fn current_dir(&mut self, dir: &Path) -> &mut Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Runs it as `uid` and `gid`, with no supplementary groups when subrt
    /// runs as root (as std's `Command::uid` does).
    pub(crate) fn user(&mut self, uid: libc::uid_t, gid: libc::gid_t) -> &mut Self {
        self.user = Some((uid, gid));
        self
    }

    pub(crate) fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds `(key, value)` pairs to its environment (a later one of the
    /// same key wins).
    pub(crate) fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            let key = key.as_ref().to_owned();
            self.env.retain(|(k, _)| *k != key);
            self.env.push((key, value.as_ref().to_owned()));
        }
        self
    }

    /// Gives it a pipe for stdin ([`HostChild::stdin`]).
    pub(crate) fn stdin_piped(&mut self) -> &mut Self {
        self.stdin_piped = true;
        self
    }

    /// SIGKILL to it when subrt's process ends.
    pub(crate) fn die_with_subrt(&mut self) -> &mut Self {
        self.die_with_subrt = true;
        self
    }

    /// A process group of its own: a terminal's Ctrl-C, sent to subrt's
    /// group, does not reach it.
    pub(crate) fn own_group(&mut self) -> &mut Self {
        self.own_group = true;
        self
    }

    /// Starts it. Call it within a tokio runtime (its pipes and pidfd are
    /// registered with it).
    ///
    /// # Errors
    ///
    /// An argument or variable holds a NUL byte, a pipe or the clone
    /// failed, or the child could not start the program (the step and the
    /// kernel's reason are said, e.g. the program is not there).
    pub(crate) fn spawn(&self) -> io::Result<HostChild> {
        let program = self.program()?;
        let cwd = match &self.cwd {
            Some(dir) => Some(CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the working dir holds a NUL byte: {}", dir.display()),
                )
            })?),
            None => None,
        };
        let (stdout_read, stdout_write) = pipe_above_stdio()?;
        let (stderr_read, stderr_write) = pipe_above_stdio()?;
        let (stdin_read, stdin_write) = match self.stdin_piped {
            true => {
                let (read, write) = pipe_above_stdio()?;
                (read, Some(write))
            }
            false => (above_stdio(std::fs::File::open("/dev/null")?.into())?, None),
        };
        let start = Start {
            stdio: [
                stdin_read.as_raw_fd(),
                stdout_write.as_raw_fd(),
                stderr_write.as_raw_fd(),
            ],
            die_with_subrt: self.die_with_subrt,
            own_group: self.own_group,
            parent: std::process::id() as libc::pid_t,
            report: -1,
            user: self.user,
            // SAFETY: geteuid cannot fail.
            drop_groups: self.user.is_some() && unsafe { libc::geteuid() } == 0,
        };
        let pid = if self.die_with_subrt {
            // The descriptors stay open here until the job has run.
            super::lasting_thread::run(move || start_program(&program, cwd.as_ref(), start))??
        } else {
            start_program(&program, cwd.as_ref(), start)?
        };
        drop((stdin_read, stdout_write, stderr_write));
        let process = match RawChild::new(pid) {
            Ok(process) => process,
            Err(e) => {
                // Not to be watched: not to be left running either.
                // SAFETY: kill and waitpid of our own child, just started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(e);
            }
        };
        super::process_io::enlarge_pipe(&stdout_read);
        super::process_io::enlarge_pipe(&stderr_read);
        Ok(HostChild {
            process,
            stdin: stdin_write.map(pipe::Sender::from_owned_fd).transpose()?,
            stdout: pipe::Receiver::from_owned_fd(stdout_read)?,
            stderr: pipe::Receiver::from_owned_fd(stderr_read)?,
        })
    }

    /// The path, argv (argv[0] the path) and environment as `execve`
    /// takes them.
    fn program(&self) -> io::Result<Program> {
        let c_string = |bytes: &[u8], what: &str| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{what} of {} holds a NUL byte: {:?}",
                        self.path.display(),
                        String::from_utf8_lossy(bytes)
                    ),
                )
            })
        };
        let path = c_string(self.path.as_os_str().as_bytes(), "the path")?;
        let args = std::iter::once(Ok(path.clone()))
            .chain(
                self.args
                    .iter()
                    .map(|arg| c_string(arg.as_bytes(), "an argument")),
            )
            .collect::<io::Result<Vec<_>>>()?;
        let env = self
            .env
            .iter()
            .map(|(key, value)| {
                let mut pair = key.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                c_string(&pair, "a variable")
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Program::new(path, args, env))
    }
}

/// What the child needs, in one place for its function.
#[derive(Clone, Copy)]
struct Start {
    stdio: [RawFd; 3],
    die_with_subrt: bool,
    own_group: bool,
    /// subrt's pid: a child whose parent is another by the time it asked
    /// for PDEATHSIG was orphaned before it could, and exits.
    parent: libc::pid_t,
    /// Where the child reports a failure (step, errno) before it exits.
    report: RawFd,
    /// The user (uid, gid) to run as.
    user: Option<(libc::uid_t, libc::gid_t)>,
    /// Empty the supplementary groups (subrt is root).
    drop_groups: bool,
}

/// Bytes of the child's stack (it makes system calls only).
const STACK: usize = 64 * 1024;

/// Clones the child, waits for its exec (or its failure), and returns its
/// pid.
fn start_program(
    program: &Program,
    cwd: Option<&CString>,
    mut start: Start,
) -> io::Result<libc::pid_t> {
    let (report_read, report_write) = pipe_above_stdio()?;
    start.report = report_write.as_raw_fd();
    let mut stack = vec![0u8; STACK];
    let top = stack.as_mut_ptr().wrapping_add(STACK);
    let top = top.wrapping_sub(top as usize % 16).cast::<libc::c_void>();
    let job = (program, cwd, start);
    // SAFETY: the child runs on its own stack and reads only `job`, which
    // outlives it: it shares this memory until its execve or _exit, and
    // CLONE_VFORK holds this thread until then.
    let pid = unsafe {
        clone_with_signals_blocked(
            child as ChildMain,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw const job).cast_mut().cast(),
        )
    };
    drop(stack);
    let pid = pid?;
    drop(report_write);
    let mut record = [0i32; 2];
    let read = loop {
        // SAFETY: reads at most 8 bytes into a valid array.
        let read = unsafe { libc::read(report_read.as_raw_fd(), record.as_mut_ptr().cast(), 8) };
        if read != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break read;
        }
    };
    if read != 8 {
        // End of file: the exec closed the report's write end.
        return Ok(pid);
    }
    // SAFETY: waitpid of our own child, which has exited (it reported).
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let [step, errno] = record;
    let cause = io::Error::from_raw_os_error(errno);
    // The program, and the dir where that was the step, by name.
    let path = program.path.to_string_lossy();
    let step = match step {
        0 => "asking for SIGKILL at subrt's end".to_owned(),
        1 => "making its process group".to_owned(),
        2 => "setting its standard streams".to_owned(),
        4 => "taking its user".to_owned(),
        5 => match cwd {
            Some(dir) => format!("changing to its working dir {}", dir.to_string_lossy()),
            None => "changing to its working dir".to_owned(),
        },
        _ => "starting it".to_owned(),
    };
    Err(io::Error::new(
        cause.kind(),
        format!("{path}: {step}: {cause}"),
    ))
}

/// The child: set up, then `execve`; on failure report the step and errno
/// and `_exit(127)`. System calls only, through [`raw`] (a libc wrapper
/// would write the parent thread's `errno`).
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the job the parent keeps alive across the vfork;
    // only system calls follow, as a vfork child must.
    unsafe {
        let (program, cwd, start) = *(arg as *const (&Program, Option<&CString>, Start));
        let fail = |step: i32, result: isize| -> libc::c_int {
            let record = [step, -result as i32];
            raw(
                libc::SYS_write,
                [start.report as usize, record.as_ptr() as usize, 8, 0, 0],
            );
            raw(libc::SYS_exit, [127, 0, 0, 0, 0]);
            127
        };
        // Handlers of subrt's are not this process's; then signals flow.
        // The kernel's `struct sigaction`, all zero: SIG_DFL, no flags,
        // an empty mask.
        let default = [0u64; 4];
        for signal in 1..=64usize {
            if signal != libc::SIGKILL as usize && signal != libc::SIGSTOP as usize {
                raw(
                    libc::SYS_rt_sigaction,
                    [signal, (&raw const default) as usize, 0, 8, 0],
                );
            }
        }
        let none: u64 = 0;
        raw(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                (&raw const none) as usize,
                0,
                8,
                0,
            ],
        );
        if start.own_group {
            let made = raw(libc::SYS_setpgid, [0; 5]);
            if made < 0 {
                return fail(1, made);
            }
        }
        // Every descriptor here is above stderr (`above_stdio`): none is
        // overwritten before it is copied.
        for (target, &fd) in start.stdio.iter().enumerate() {
            let copied = raw(libc::SYS_dup3, [fd as usize, target, 0, 0, 0]);
            if copied < 0 {
                return fail(2, copied);
            }
        }
        // The user, then its working dir (as std's `Command` does: a dir
        // the user may not enter is an error). Raw calls: glibc's would
        // change every thread of what it takes for this process.
        if let Some((uid, gid)) = start.user {
            let (uid, gid) = (uid as usize, gid as usize);
            if start.drop_groups {
                let dropped = raw(libc::SYS_setgroups, [0; 5]);
                if dropped < 0 {
                    return fail(4, dropped);
                }
            }
            let set = raw(libc::SYS_setresgid, [gid, gid, gid, 0, 0]);
            if set < 0 {
                return fail(4, set);
            }
            let set = raw(libc::SYS_setresuid, [uid, uid, uid, 0, 0]);
            if set < 0 {
                return fail(4, set);
            }
        }
        if let Some(cwd) = cwd {
            let entered = raw(libc::SYS_chdir, [cwd.as_ptr() as usize, 0, 0, 0, 0]);
            if entered < 0 {
                return fail(5, entered);
            }
        }
        // SIGKILL at subrt's end, last: a change of user clears it
        // (prctl(2)).
        if start.die_with_subrt {
            let set = raw(
                libc::SYS_prctl,
                [
                    libc::PR_SET_PDEATHSIG as usize,
                    libc::SIGKILL as usize,
                    0,
                    0,
                    0,
                ],
            );
            if set < 0 {
                return fail(0, set);
            }
            if raw(libc::SYS_getppid, [0; 5]) != start.parent as isize {
                raw(libc::SYS_exit, [127, 0, 0, 0, 0]);
            }
        }
        // All but the report (close-on-exec: the exec closes it).
        let report = start.report as u32;
        close_range(3, report - 1);
        close_range(report + 1, u32::MAX);
        let failed = raw(
            libc::SYS_execve,
            [
                program.path.as_ptr() as usize,
                program.argv.as_ptr() as usize,
                program.envp.as_ptr() as usize,
                0,
                0,
            ],
        );
        fail(3, failed)
    }
}

/// A close-on-exec pipe whose ends are above stderr.
fn pipe_above_stdio() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe()?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// `fd`, or a close-on-exec copy of it above stderr where it is one of the
/// standard streams' numbers (a process started with one of them closed
/// gets that number for its next descriptor): the child's `dup3` onto
/// 0, 1 and 2 must not overwrite a descriptor it has yet to copy.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC of an fd we own makes a new one, owned here.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_all(mut pipe: pipe::Receiver) -> String {
        let mut text = String::new();
        pipe.read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test]
    async fn runs_with_its_arguments_environment_and_stdin() {
        let mut cmd = HostCommand::new(Path::new("/bin/sh"));
        cmd.args([
            "-c",
            "read -r line; echo \"$line $0 $GREETING\" >&2; echo out",
        ])
        .envs([("GREETING", "hello"), ("PATH", "/usr/bin:/bin")])
        .stdin_piped();
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"in\n").await.unwrap();
        drop(stdin);
        assert_eq!(read_all(child.stdout).await, "out\n");
        assert_eq!(read_all(child.stderr).await, "in /bin/sh hello\n");
        assert!(child.process.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn the_environment_is_only_what_was_given() {
        let mut cmd = HostCommand::new(Path::new("/usr/bin/env"));
        cmd.envs([("ONLY", "this")]);
        let mut child = cmd.spawn().unwrap();
        assert_eq!(read_all(child.stdout).await, "ONLY=this\n");
        child.process.wait().await.unwrap();
    }

    #[tokio::test]
    async fn no_descriptor_but_the_standard_streams_is_inherited() {
        // An inheritable descriptor, as a harness around subrt may leave.
        let file = tempfile::tempfile().unwrap();
        let fd = file.as_raw_fd();
        // SAFETY: clears FD_CLOEXEC on our own fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let mut cmd = HostCommand::new(Path::new("/bin/ls"));
        cmd.arg("/proc/self/fd");
        let mut child = cmd.spawn().unwrap();
        let fds = read_all(child.stdout).await;
        child.process.wait().await.unwrap();
        // 0, 1, 2 and the listing's own.
        assert_eq!(fds.lines().count(), 4, "{fds}");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_that_says_so() {
        let err = HostCommand::new(Path::new("/nonexistent/srun"))
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("starting it"), "{err}");
        assert!(err.to_string().contains("/nonexistent/srun"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_working_dir_is_named() {
        let err = HostCommand::new(Path::new("/bin/true"))
            .current_dir(Path::new("/nonexistent/workdir"))
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("/nonexistent/workdir"), "{err}");
    }

    #[tokio::test]
    async fn a_group_of_its_own() {
        let mut cmd = HostCommand::new(Path::new("/bin/sleep"));
        cmd.arg("30").own_group().die_with_subrt();
        let mut child = cmd.spawn().unwrap();
        let pid = child.process.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // pgrp is field 5: the third after the name.
        assert_eq!(fields[2], pid.to_string(), "{stat}");
        child.process.start_kill();
        assert!(!child.process.wait().await.unwrap().success());
    }
}
