//! Sandboxed local sessions (`local.isolation = "sandbox"`): untrusted
//! code at process speed.
//!
//! A session is a set of namespaces made once, when the session starts,
//! by its init (a [`PidNamespace`] whose init first runs the
//! mount plan, `mounts`): its own PID namespace (and `/proc`), mount
//! namespace (see `mounts` for what it shows), network namespace with
//! loopback only (unless `local.sandbox.network`), UTS and IPC namespaces,
//! and a cgroup with the session's [limits](crate::spec::Limits). Each
//! command is started into them by `spawn` (a `vfork`-style clone, no
//! helper process) as an unprivileged user, without capabilities and with
//! no new privileges (setuid binaries do not elevate), with its rlimits.
//!
//! The working dir is the one place a command may write besides its
//! `/tmp`. When it belongs to root (subrt run as root on root's files), it
//! is mounted *idmapped*: its files show as the sandbox user's, and what
//! the sandbox user writes lands as root's on the host, so a submission
//! can build in its own folder without it being handed to another user.
//!
//! # Without root
//!
//! A user who is not root gets the same sandbox inside a user namespace of
//! its own, as bubblewrap makes one: the namespace maps the sandbox's user
//! (1000 by default) to the user who runs subrt, and nothing else, so
//! commands run as that user inside and as the caller outside, with no
//! capabilities on the host. What differs:
//!
//! - No cgroup: `memory` and `cpus` limits cannot be kept, and a spec that
//!   asks for them is refused (never run with less). `pids` is kept by
//!   `RLIMIT_NPROC`, which the kernel counts per user *and* user namespace:
//!   per session, since each has its own.
//! - Commands are started through a helper that joins the user namespace
//!   first (see `spawn`); it shares subrt's memory, unless the kernel
//!   refuses that, and then it is forked: a copy of subrt, whose cost
//!   grows with subrt's size.
//! - The working dir is never idmapped (its owner, the caller, is the
//!   sandbox's user inside already); supplementary groups stay as the
//!   kernel keeps them (shown as `nogroup`).
//!
//! Where the kernel refuses user namespaces to unprivileged users, the
//! error names the setting that does (`user.max_user_namespaces`,
//! `kernel.unprivileged_userns_clone`,
//! `kernel.apparmor_restrict_unprivileged_userns`).

mod mounts;
mod spawn;

pub(crate) use mounts::{DEFAULT_EXPOSE, DEFAULT_HIDE, Layout};
pub(crate) use spawn::ChildSetup;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cgroup::{Cgroup, CgroupLimits, CgroupUsage};
use super::pid_namespace::{InitSetup, PidNamespace};
use super::raw_syscall::Program;
use crate::spec::{Limits, SandboxConfig};

/// The sandbox's user when the spec names none.
pub const DEFAULT_USER: (u32, u32) = (1000, 1000);
/// `/tmp` and `/dev/shm` each, when `limits.tmp` says nothing.
pub const DEFAULT_TMP: u64 = 256 << 20;

/// `uid` or `uid:gid` (numbers, not root).
pub fn parse_user(text: &str) -> Option<(u32, u32)> {
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (uid.trim().parse().ok()?, gid.trim().parse().ok()?),
        None => {
            let uid = text.trim().parse().ok()?;
            (uid, uid)
        }
    };
    (uid != 0 && gid != 0).then_some((uid, gid))
}

/// Why a sandbox cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Not root, and limits only a cgroup keeps were asked for.
    #[error(
        "the sandbox's limits {limits} need a cgroup, which subrt makes only as root; \
         subrt runs as uid {uid}: run it as root, drop those limits (pids, tmp, file_size \
         and open_files are kept without root), or use Docker (type = \"docker\"). \
         Nothing less than asked for is used instead."
    )]
    LimitsNeedRoot {
        /// The user subrt runs as.
        uid: u32,
        /// The limits, in words (`memory, cpus`).
        limits: String,
    },
    /// Not root, and the kernel refuses this user a user namespace.
    #[error(
        "the sandbox needs a user namespace when subrt is not root (uid {uid}), and the \
         kernel refused one: {cause}. {settings}Run subrt as root, or use Docker \
         (type = \"docker\"). Nothing less than the sandbox is used instead."
    )]
    NoUserNamespace {
        /// The user subrt runs as.
        uid: u32,
        /// The kernel's error.
        cause: io::Error,
        /// The settings that decide it, with their values here.
        settings: String,
    },
    /// A path of the layout is missing or wrong.
    #[error("sandbox: {0}")]
    Layout(String),
    /// The session's cgroup (its limits) could not be made.
    #[error("sandbox: the session's cgroup: {0}")]
    Cgroup(#[from] super::cgroup::CgroupError),
    /// The kernel refused a step.
    #[error("sandbox: {0}")]
    Io(#[from] io::Error),
}

/// What a sandboxed session is made of, from its spec and launch.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The filesystem view.
    pub(crate) layout: Layout,
    /// Its limits.
    pub limits: Limits,
    /// The user commands run as.
    pub user: (u32, u32),
}

impl SandboxSpec {
    /// The sandbox of `config` and `limits` for a session in `working_dir`
    /// with `assets` (host paths).
    pub fn new(
        config: &SandboxConfig,
        limits: &Limits,
        working_dir: &Path,
        assets: Vec<PathBuf>,
    ) -> Self {
        let expose = config
            .expose
            .clone()
            .unwrap_or_else(|| DEFAULT_EXPOSE.iter().map(PathBuf::from).collect());
        let mut hide: Vec<PathBuf> = DEFAULT_HIDE.iter().map(PathBuf::from).collect();
        hide.extend(config.hide.iter().cloned());
        Self {
            layout: Layout {
                rootfs: config.rootfs.clone(),
                expose,
                hide,
                working_dir: working_dir.to_owned(),
                assets,
                tmp_bytes: limits.tmp_bytes().unwrap_or(DEFAULT_TMP),
                own_network: !config.network,
                workspace_idmap: None,
            },
            limits: limits.clone(),
            user: config
                .user
                .as_deref()
                .and_then(parse_user)
                .unwrap_or(DEFAULT_USER),
        }
    }
}

/// The init's setup: the mount plan, in a user namespace of its own when
/// subrt is not root.
struct Setup {
    plan: mounts::MountPlan,
    /// The sandbox's user inside and the caller outside (uid, gid each).
    user_namespace: Option<((u32, u32), (u32, u32))>,
}

impl InitSetup for Setup {
    fn clone_flags(&self) -> libc::c_int {
        let user = match self.user_namespace {
            Some(_) => libc::CLONE_NEWUSER,
            None => 0,
        };
        self.plan.clone_flags() | user
    }

    unsafe fn run(&self) -> Result<(), (i32, u32)> {
        // SAFETY: passed on from the caller.
        unsafe { self.plan.run() }
    }

    fn describe(&self, step: u32) -> String {
        self.plan.describe(step)
    }

    fn map_ids(&self, pid: libc::pid_t) -> io::Result<()> {
        let Some((inside, outside)) = self.user_namespace else {
            return Ok(());
        };
        // An unprivileged user may map its own ids only, and its gid only
        // once the namespace may not change its groups.
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|e| io::Error::new(e.kind(), format!("writing the sandbox's {file}: {e}")))
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("{} {} 1", inside.0, outside.0))?;
        write("gid_map", format!("{} {} 1", inside.1, outside.1))
    }
}

/// The limits of `limits` that only a cgroup keeps, in words; `None` when
/// there are none.
pub(crate) fn cgroup_only(limits: &Limits) -> Option<String> {
    let mut names = Vec::new();
    if limits.memory.is_some() {
        names.push("memory");
    }
    if limits.cpus.is_some() {
        names.push("cpus");
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// The kernel's settings that refuse user namespaces to unprivileged
/// users, with their values here (those this kernel has), for an error.
fn user_namespace_settings() -> String {
    let settings: Vec<String> = [
        (
            "user.max_user_namespaces",
            "user/max_user_namespaces",
            "0 refuses",
        ),
        (
            "kernel.unprivileged_userns_clone",
            "kernel/unprivileged_userns_clone",
            "0 refuses",
        ),
        (
            "kernel.apparmor_restrict_unprivileged_userns",
            "kernel/apparmor_restrict_unprivileged_userns",
            "1 refuses",
        ),
    ]
    .into_iter()
    .filter_map(|(name, file, meaning)| {
        let value = std::fs::read_to_string(format!("/proc/sys/{file}")).ok()?;
        Some(format!("{name} = {} ({meaning})", value.trim()))
    })
    .collect();
    match settings.is_empty() {
        true => String::new(),
        false => format!(
            "The settings that decide it here: {}. ",
            settings.join(", ")
        ),
    }
}

/// A sandboxed session's namespaces and cgroup.
///
/// Dropping it kills every process of the session and removes its cgroup.
#[derive(Debug)]
pub struct Sandbox {
    namespace: PidNamespace,
    /// `mnt`, `uts`, `ipc` and (when it has its own) `net` of the init.
    joins: Vec<(File, libc::c_int)>,
    cgroup: Option<Cgroup>,
    /// `cgroup.procs` of each of the cgroup's folders, open for writing.
    procs: Vec<File>,
    user: (u32, u32),
    rlimits: Vec<(libc::c_int, libc::rlim_t)>,
    /// In a user namespace of its own (subrt is not root).
    rootless: bool,
}

impl Sandbox {
    /// Makes the session's namespaces and cgroup (named after `run_id`).
    ///
    /// # Errors
    ///
    /// Not root and asking for limits only a cgroup keeps; not root where
    /// the kernel refuses a user namespace (its settings named); a path of
    /// the layout that cannot be used; the kernel's refusal of a step
    /// (named).
    pub fn create(spec: &SandboxSpec, run_id: &str) -> Result<Self, SandboxError> {
        // SAFETY: geteuid and getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let rootless = uid != 0;
        if rootless && let Some(limits) = cgroup_only(&spec.limits) {
            return Err(SandboxError::LimitsNeedRoot { uid, limits });
        }
        // A working dir the sandbox's user does not own is mounted idmapped,
        // its owner shown as that user (see the module's doc).
        let owner = {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&spec.layout.working_dir).map_err(|e| {
                SandboxError::Layout(format!(
                    "working dir {}: {e}",
                    spec.layout.working_dir.display()
                ))
            })?;
            (meta.uid(), meta.gid())
        };
        let idmap = if owner != spec.user && !rootless {
            Some(mapping_namespace(spec.user, owner)?)
        } else {
            None
        };
        let mut layout = spec.layout.clone();
        layout.workspace_idmap = idmap.as_ref().map(AsRawFd::as_raw_fd);
        let plan = mounts::MountPlan::new(&layout).map_err(SandboxError::Layout)?;
        let limits = match rootless {
            // `pids` is an rlimit there (below); the rest was refused above.
            true => CgroupLimits::default(),
            false => CgroupLimits {
                memory: spec.limits.memory_bytes(),
                pids: spec.limits.pids,
                cpus: spec.limits.cpus,
            },
        };
        // A cgroup only for limits: moving the first process into one
        // waits for an RCU grace period on cgroup v1 (6-14 ms measured),
        // most of a session's start. Without limits, what a command costs
        // is read from its own rusage instead.
        let wants_cgroup = limits != CgroupLimits::default();
        let cgroup = match wants_cgroup {
            true => Some(Cgroup::create(&format!("subrt-{run_id}"), &limits)?),
            false => None,
        };
        let procs = cgroup
            .iter()
            .flat_map(Cgroup::procs_files)
            .map(|path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            })
            .collect::<io::Result<Vec<File>>>()?;
        let setup: Arc<dyn InitSetup> = Arc::new(Setup {
            plan,
            user_namespace: rootless.then_some((spec.user, (uid, gid))),
        });
        let flags = setup.clone_flags();
        let namespace = PidNamespace::create_with(Some(setup)).map_err(|cause| {
            let refused = matches!(
                cause.raw_os_error(),
                Some(libc::EPERM | libc::ENOSPC | libc::EUSERS | libc::EACCES)
            );
            match rootless && refused {
                true => SandboxError::NoUserNamespace {
                    uid,
                    cause,
                    settings: user_namespace_settings(),
                },
                false => SandboxError::Io(cause),
            }
        })?;
        // The init stays out of the cgroup: it shares subrt's memory, so its
        // resident size is subrt's, and the out-of-memory killer of the
        // session's cgroup would take it for the largest member and kill
        // every process sharing that memory, subrt (or the Python harness
        // around it) included. Commands join the cgroup as they start.
        let mut joins = Vec::new();
        // Without root, a helper joins the user namespace first (which gives
        // it the right to join the rest) and the PID namespace itself.
        for (kind, flag) in [
            ("user", libc::CLONE_NEWUSER),
            ("pid", libc::CLONE_NEWPID),
            ("mnt", libc::CLONE_NEWNS),
            ("uts", libc::CLONE_NEWUTS),
            ("ipc", libc::CLONE_NEWIPC),
            ("net", libc::CLONE_NEWNET),
        ] {
            let joined = match flag {
                libc::CLONE_NEWPID => rootless,
                _ => flags & flag != 0,
            };
            if joined {
                joins.push((namespace.namespace_file(kind)?, flag));
            }
        }
        let mut rlimits = vec![(libc::RLIMIT_CORE as libc::c_int, 0)];
        if let Some(bytes) = spec.limits.file_size_bytes() {
            rlimits.push((libc::RLIMIT_FSIZE as libc::c_int, bytes));
        }
        if let Some(files) = spec.limits.open_files {
            rlimits.push((libc::RLIMIT_NOFILE as libc::c_int, files));
        }
        if let (true, Some(pids)) = (rootless, spec.limits.pids) {
            rlimits.push((libc::RLIMIT_NPROC as libc::c_int, pids));
        }
        Ok(Self {
            rootless,
            namespace,
            joins,
            cgroup,
            procs,
            user: spec.user,
            rlimits,
        })
    }

    /// The init's pid (killing it kills the session).
    pub fn init_pid(&self) -> u32 {
        self.namespace.init_pid()
    }

    /// The PID namespace.
    pub fn namespace(&self) -> &PidNamespace {
        &self.namespace
    }

    /// True while the session's init lives.
    pub fn is_alive(&self) -> bool {
        self.namespace.is_alive()
    }

    /// Kills every process of the session.
    pub fn kill(&self) {
        self.namespace.kill();
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
    }

    /// What the session's processes used so far (`None` without a
    /// cgroup: no limits were asked for).
    pub fn usage(&self) -> Option<CgroupUsage> {
        self.cgroup.as_ref().map(Cgroup::usage)
    }

    /// A reader of what the session used, that holds no lock on the
    /// session (it reads the cgroup's files); `None` without a cgroup.
    pub fn usage_reader(&self) -> Option<Box<dyn Fn() -> CgroupUsage + Send>> {
        let cgroup = self.cgroup.clone()?;
        Some(Box::new(move || cgroup.usage()))
    }

    /// Starts a new peak-memory measurement.
    pub fn reset_peak(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.reset_peak();
        }
    }

    /// Starts `shell -c line` (with `args` as `$1`...) in the session, in
    /// `cwd`, with `env`, its stdin from `stdin` (or `/dev/null`), its
    /// output into two new pipes.
    ///
    /// # Errors
    ///
    /// A pipe or the spawn failed (the step is said).
    pub fn spawn(
        &self,
        shell: &Path,
        line: &str,
        args: &[String],
        cwd: &Path,
        env: &std::collections::BTreeMap<String, String>,
        stdin: Option<RawFd>,
    ) -> io::Result<Spawned> {
        let bad = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let path = CString::new(shell.as_os_str().as_bytes()).map_err(bad)?;
        let mut argv = vec![
            path.clone(),
            CString::new("-c").map_err(bad)?,
            CString::new(line).map_err(bad)?,
        ];
        if !args.is_empty() {
            argv.push(CString::new("sh").map_err(bad)?);
            for arg in args {
                argv.push(CString::new(arg.as_str()).map_err(bad)?);
            }
        }
        let args = argv;
        let env = env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let program = Program::new(path, args, env);
        let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(bad)?;
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        let null = File::open("/dev/null")?;
        let stdin = stdin.unwrap_or(null.as_raw_fd());
        let namespaces: Vec<(RawFd, libc::c_int)> = self
            .joins
            .iter()
            .map(|(f, k)| (f.as_raw_fd(), *k))
            .collect();
        let procs: Vec<RawFd> = self.procs.iter().map(AsRawFd::as_raw_fd).collect();
        let setup = ChildSetup {
            namespaces: &namespaces,
            cgroup_procs: &procs,
            cwd: &cwd,
            uid: self.user.0,
            gid: self.user.1,
            rlimits: &self.rlimits,
            stdio: [stdin, stdout_write.as_raw_fd(), stderr_write.as_raw_fd()],
            drop_groups: !self.rootless,
        };
        let pid = match self.rootless {
            // The helper joins the PID namespace (in `joins`).
            true => spawn::spawn(&program, &setup)?,
            false => self
                .namespace
                .spawn_with(|| spawn::spawn(&program, &setup))?,
        };
        Ok(Spawned {
            pid,
            stdout: stdout_read,
            stderr: stderr_read,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
        if let Some(cgroup) = self.cgroup.take() {
            // The kernel removes a cgroup once its last process is gone.
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if cgroup.pids().is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                cgroup.remove();
            });
        }
    }
}

/// A command started in a sandbox: its pid (in subrt's PID namespace) and
/// the read ends of its output.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, as subrt sees it; subrt's child.
    pub pid: libc::pid_t,
    /// Its stdout.
    pub stdout: OwnedFd,
    /// Its stderr.
    pub stderr: OwnedFd,
}

/// A user namespace through which an idmapped mount shows files of
/// `outside` (the working dir's owner: uid, gid) as `inside`'s (the
/// sandbox user's), and stores `inside`'s writes as `outside`'s. Made by a
/// short-lived child (a multi-threaded process cannot make one for itself),
/// which is killed once its namespace is open.
///
/// The child shares subrt's memory (`CLONE_VM`, as a session's init does,
/// and for the same reason: a copy of subrt per session slows every later
/// write of subrt); it runs with every signal blocked, closes the
/// descriptors it got and waits for its kill, making raw system calls
/// only. It waits for nothing else: it once waited for a pipe to be
/// closed, and a copy of another thread's pipe, made into it at the same
/// moment, kept two session starts waiting for each other for ever.
fn mapping_namespace(inside: (u32, u32), outside: (u32, u32)) -> io::Result<OwnedFd> {
    /// The child: let go of the descriptors (others wait for some of them
    /// to close), then wait to be killed.
    extern "C" fn hold(_: *mut libc::c_void) -> libc::c_int {
        use crate::runtime::raw_syscall::{close_range, raw};
        // SAFETY: system calls on nothing of subrt's: closes this child's
        // own copies of descriptors, then sleeps until SIGKILL.
        unsafe {
            close_range(0, u32::MAX);
            loop {
                raw(libc::SYS_pause, [0; 5]);
            }
        }
    }
    let mut stack = vec![0u8; 16 * 1024];
    let top = stack.as_mut_ptr().wrapping_add(stack.len());
    let top = top.wrapping_sub(top as usize % 16);
    // SAFETY: the child runs `hold` on `stack`, which lives until the child
    // is reaped below, and touches nothing else of this memory. It keeps
    // every signal blocked: no handler of subrt's ever runs in it.
    let pid = unsafe {
        crate::runtime::raw_syscall::clone_with_signals_blocked(
            hold,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_NEWUSER | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    }?;
    let made = (|| {
        // An idmapped mount reads an id on disk as an id inside its
        // namespace: the owner's ids inside are the sandbox user's outside.
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("{} {} 1", outside.0, inside.0),
        )?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("{} {} 1", outside.1, inside.1),
        )?;
        Ok::<_, io::Error>(OwnedFd::from(File::open(format!("/proc/{pid}/ns/user"))?))
    })();
    // SAFETY: kill and waitpid of our own child; its stack is dropped after.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    drop(stack);
    made.map_err(|e| io::Error::new(e.kind(), format!("an idmapped working dir: {e}")))
}

/// A pipe for a child's output: the read end (subrt's) non-blocking, for
/// tokio; the write end (the child's) blocking. Both close on exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = crate::runtime::raw_syscall::pipe()?;
    set_nonblocking(&read)?;
    Ok((read, write))
}

/// A pipe for a child's stdin: the read end (the child's) blocking, as a
/// program expects its stdin; the write end (subrt's) non-blocking, for
/// tokio. A child given a non-blocking stdin fails its first read that
/// comes before the data (`EAGAIN`).
pub(crate) fn stdin_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = crate::runtime::raw_syscall::pipe()?;
    set_nonblocking(&write)?;
    Ok((read, write))
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on our own fd.
    let set = unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if set == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
