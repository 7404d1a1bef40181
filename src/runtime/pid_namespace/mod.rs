//! A PID namespace per session, whose init is a small reaper of subrt's own.
//!
//! This is how a local session is contained. Every process of the session
//! (setup, commands, their background children, double forks, `setsid`,
//! `nohup`) is a member of the namespace, and the kernel kills every member
//! when the namespace's init dies. The init dies:
//!
//! - when subrt kills it ([`PidNamespace::kill`], on `kill`, a timeout, a
//!   dropped stream, `cleanup` and drop of the runtime);
//! - when the subrt process dies in any way, SIGKILL included: the init has
//!   `PR_SET_PDEATHSIG` bound to the keeper thread (`Keeper`), which lives as
//!   long as the process, and it also watches a *lifeline* pipe whose write
//!   end only the subrt process holds (so a parent that died before the
//!   `prctl` took effect is noticed too);
//! - on SIGTERM, SIGINT or SIGHUP sent to it.
//!
//! Until then it reaps the orphans reparented to it, so a killed background
//! process never stays a zombie.
//!
//! Commands enter the namespace without a helper process: the thread that
//! spawns a command points its `pid_for_children` at the namespace with
//! `setns(2)`, forks, and points it back (see [`PidNamespace::spawn`]). That
//! keeps the spawn on the fast `posix_spawn` path and costs no extra fork.
//!
//! Creating a PID namespace needs `CAP_SYS_ADMIN`. Where the kernel refuses
//! (an unprivileged user), [`PidNamespace::create`] fails and the local
//! runtime falls back to process groups, saying so (see
//! [`Containment`](super::Containment)). The namespace has no mount
//! namespace of its own: `/proc` still shows the host's processes, so `ps`
//! inside a session lists host pids while `$!` and `kill` use the
//! namespace's.
//!
//! # Caveats
//!
//! The init is made by the keeper thread with `clone(CLONE_VM)`: it shares
//! subrt's memory and only makes system calls on its own stack (see
//! `init` for why, and for the rules that keeps).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use super::process_group::process_start_time;

mod init;

/// A PID namespace holding one session's processes.
///
/// Dropping it kills everything in it.
#[derive(Debug)]
pub struct PidNamespace {
    /// The init's pid, as subrt sees it.
    pid: u32,
    /// The init's start time (see [`process_start_time`]).
    start_time: Option<u64>,
    /// A pidfd of the init: signals sent through it cannot hit a process
    /// that inherited the pid.
    pidfd: Arc<OwnedFd>,
    /// `/proc/<init>/ns/pid`, for entering the namespace.
    ns: File,
    /// Becomes true once the init is dead and reaped, which the kernel
    /// allows only after every member of the namespace is gone.
    gone: watch::Receiver<bool>,
}

impl PidNamespace {
    /// Makes a new namespace and its init.
    ///
    /// # Errors
    ///
    /// The kernel's refusal (EPERM for a user without `CAP_SYS_ADMIN`), or
    /// an I/O error while opening the namespace.
    pub fn create() -> io::Result<Self> {
        Self::create_with(None)
    }

    /// Makes a new namespace whose init first runs `setup` (in the
    /// namespaces `setup` asks for besides the PID namespace: a sandbox's
    /// mounts, network, hostname) and only then starts reaping.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), and the setup's failure, with the step
    /// that failed.
    pub(crate) fn create_with(setup: Option<Arc<dyn InitSetup>>) -> io::Result<Self> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        keeper()?.request(Request { setup, reply })?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the namespace keeper thread is gone"))?
    }

    /// `/proc/<init>/ns/<kind>` of the init (`mnt`, `net`, `uts`, `ipc`):
    /// what a command of the session enters.
    pub(crate) fn namespace_file(&self, kind: &str) -> io::Result<File> {
        File::open(format!("/proc/{}/ns/{kind}", self.pid))
    }

    /// Enters the namespace for the spawn `spawn` makes on this thread (its
    /// `pid_for_children`), and comes back.
    ///
    /// # Errors
    ///
    /// Entering failed, or `spawn` did.
    pub(crate) fn spawn_with<T>(&self, spawn: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let own = own_namespace()?;
        enter(self.ns.as_raw_fd())?;
        let spawned = spawn();
        if let Err(e) = enter(own.as_raw_fd()) {
            // This thread would now fork every later child into a session's
            // namespace: nothing sound can go on.
            eprintln!("subrt: cannot leave a session's PID namespace: {e}");
            std::process::abort();
        }
        spawned
    }

    /// The init's pid as subrt sees it: killing it kills the session.
    pub fn init_pid(&self) -> u32 {
        self.pid
    }

    /// The init's start time in clock ticks since boot.
    pub fn init_start_time(&self) -> Option<u64> {
        self.start_time
    }

    /// True while the init (and so possibly a member) lives.
    pub fn is_alive(&self) -> bool {
        !*self.gone.borrow()
    }

    /// Kills the init, and with it every process of the namespace. Returns
    /// at once; [`wait_gone`](Self::wait_gone) waits for the kernel to
    /// finish. Idempotent.
    pub fn kill(&self) {
        if self.is_alive() {
            // SAFETY: pidfd_send_signal takes a pidfd we own and no pointers
            // (the siginfo may be null).
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
    }

    /// Waits until every process of the namespace is gone, at most
    /// `limit`; true when they are.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only watches.
    pub async fn wait_gone(&self, limit: Duration) -> bool {
        self.watcher().wait(limit).await
    }

    /// A handle that tells when the namespace is gone, usable without
    /// holding the namespace (or a lock around it).
    pub fn watcher(&self) -> Gone {
        Gone(self.gone.clone())
    }

    /// Spawns `command` as a member of the namespace.
    ///
    /// The calling thread's `pid_for_children` is pointed at the namespace
    /// for the spawn only; the spawn is synchronous, so no other task runs
    /// on this thread meanwhile.
    ///
    /// # Errors
    ///
    /// Entering the namespace failed, or the spawn did (ENOMEM once the
    /// namespace's init has died).
    pub fn spawn(
        &self,
        command: &mut tokio::process::Command,
    ) -> io::Result<tokio::process::Child> {
        self.spawn_with(|| command.spawn())
    }
}

/// Tells when a [`PidNamespace`] is gone.
#[derive(Debug, Clone)]
pub struct Gone(watch::Receiver<bool>);

impl Gone {
    /// Waits until the namespace is gone, at most `limit`; true when it is.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only watches.
    pub async fn wait(mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.0.wait_for(|gone| *gone))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for PidNamespace {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Points the calling thread's `pid_for_children` at namespace `fd`.
fn enter(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns takes an fd and a flag; CLONE_NEWPID changes only the
    // namespace of this thread's future children.
    if unsafe { libc::setns(fd, libc::CLONE_NEWPID) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// subrt's own PID namespace, to return to after a spawn.
fn own_namespace() -> io::Result<&'static File> {
    static OWN: OnceLock<File> = OnceLock::new();
    if let Some(file) = OWN.get() {
        return Ok(file);
    }
    // `ns/pid` of a process is its active namespace, which never changes.
    let file = File::open("/proc/self/ns/pid")?;
    Ok(crate::runtime::fork_gate::once(&OWN, || file))
}

/// What the keeper sends back for a request.
type Reply = std_mpsc::SyncSender<io::Result<PidNamespace>>;

/// A request to the keeper: an init, with a setup to run first.
struct Request {
    setup: Option<Arc<dyn InitSetup>>,
    reply: Reply,
}

/// What a session's init does before it reaps: enter more namespaces
/// (`clone_flags`) and set them up.
pub(crate) trait InitSetup: Send + Sync {
    /// Namespaces besides the PID namespace (`CLONE_NEWNS`...).
    fn clone_flags(&self) -> libc::c_int;

    /// Runs in the init, before it starts reaping.
    ///
    /// # Safety
    ///
    /// Runs in the init, which shares subrt's memory and the keeper
    /// thread's thread-locals: system calls on data prepared beforehand
    /// only, no allocation, no lock, no unwinding.
    ///
    /// # Errors
    ///
    /// The `errno` of the step that failed, and which step.
    unsafe fn run(&self) -> Result<(), (i32, u32)>;

    /// The step numbered `step`, in words, for an error.
    fn describe(&self, step: u32) -> String;

    /// With `CLONE_NEWUSER` among the flags: writes the id maps of the
    /// init `pid`'s user namespace, which its maker must do, before the
    /// init runs its setup.
    ///
    /// # Errors
    ///
    /// The kernel refused a map.
    fn map_ids(&self, _pid: libc::pid_t) -> io::Result<()> {
        Ok(())
    }
}

/// The thread that makes inits and reaps them.
///
/// One per process, started on first use and never ended: the inits'
/// `PR_SET_PDEATHSIG` fires when the thread that made them exits, so they
/// must be made by a thread that lives as long as the process.
struct Keeper {
    requests: std_mpsc::Sender<Request>,
    /// Wakes the keeper's `poll` (an eventfd).
    wake: OwnedFd,
}

/// The keeper of this process. A child made by `fork` (a Python worker,
/// say) has no keeper thread even though it inherited the memory, so the
/// keeper is remembered with the pid that started it.
fn keeper() -> io::Result<Arc<Keeper>> {
    static KEEPER: Mutex<Option<(u32, Arc<Keeper>)>> = Mutex::new(None);
    let mut slot = crate::runtime::fork_gate::lock(&KEEPER);
    let pid = std::process::id();
    if let Some((owner, keeper)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(Arc::clone(keeper));
    }
    let keeper = Arc::new(Keeper::start()?);
    *slot = Some((pid, Arc::clone(&keeper)));
    Ok(keeper)
}

impl Keeper {
    fn start() -> io::Result<Self> {
        // The lifeline: the keeper keeps the write end for good; an init sees
        // end-of-file on the read end once no process holds it (subrt died).
        let (read_end, write_end) = super::raw_syscall::pipe()?;
        // SAFETY: eventfd has no pointer arguments.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd, owned here.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        let thread_wake = wake.try_clone()?;
        let (requests, queue) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("subrt-ns-keeper".into())
            .spawn(move || keep(queue, thread_wake, read_end, write_end))?;
        Ok(Self { requests, wake })
    }

    fn request(&self, request: Request) -> io::Result<()> {
        self.requests
            .send(request)
            .map_err(|_| io::Error::other("the namespace keeper thread is gone"))?;
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
        Ok(())
    }
}

/// An init the keeper watches.
struct Watched {
    pid: libc::pid_t,
    pidfd: Arc<OwnedFd>,
    gone: watch::Sender<bool>,
    /// What the init runs on: dropped with this, once it is reaped.
    _stack: init::InitStack,
}

/// The keeper's loop: make inits on request, reap them when they die.
fn keep(
    queue: std_mpsc::Receiver<Request>,
    wake: OwnedFd,
    lifeline: OwnedFd,
    _lifeline_write: OwnedFd,
) {
    let mut watched: Vec<Watched> = Vec::new();
    loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(wake.as_raw_fd())
            .chain(watched.iter().map(|w| w.pidfd.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready == -1 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            let mut counter = 0u64;
            // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
            unsafe { libc::read(wake.as_raw_fd(), (&raw mut counter).cast(), 8) };
            while let Ok(Request { setup, reply }) = queue.try_recv() {
                let made = make_init(lifeline.as_raw_fd(), setup.as_deref());
                let answer = made.map(|(namespace, watch)| {
                    watched.push(watch);
                    namespace
                });
                let _ = reply.send(answer);
            }
        }
        let exited: Vec<bool> = fds[1..].iter().map(|fd| fd.revents != 0).collect();
        let mut index = 0;
        watched.retain(|w| {
            let done = exited.get(index).copied().unwrap_or(false) && reap(w.pid);
            index += 1;
            if done {
                let _ = w.gone.send(true);
            }
            !done
        });
    }
}

/// Reaps `pid` if it has exited; true when it is reaped.
fn reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on our own child, writing into a valid int.
    let reaped = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
    reaped == pid
        || (reaped == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

/// Makes a new init (see [`init`]), and opens what subrt needs of it.
fn make_init(
    lifeline: RawFd,
    setup: Option<&dyn InitSetup>,
) -> io::Result<(PidNamespace, Watched)> {
    let (pid, stack) = init::start(lifeline, setup)?;
    let opened = (|| {
        // SAFETY: pidfd_open of our own unreaped child; no pointers.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd, owned here (pidfds are close-on-exec).
        let pidfd = Arc::new(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        let ns = File::open(format!("/proc/{pid}/ns/pid"))?;
        Ok((pidfd, ns))
    })();
    let (pidfd, ns) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            // SAFETY: kill and waitpid of our own unreaped child, before its
            // stack is dropped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    };
    let (gone_tx, gone) = watch::channel(false);
    let namespace = PidNamespace {
        pid: pid as u32,
        start_time: process_start_time(pid as u32),
        pidfd: Arc::clone(&pidfd),
        ns,
        gone,
    };
    let watched = Watched {
        pid,
        pidfd,
        gone: gone_tx,
        _stack: stack,
    };
    Ok((namespace, watched))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn can_create() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[tokio::test]
    async fn members_die_with_the_init() {
        if !can_create() {
            eprintln!("skipped: creating a PID namespace needs CAP_SYS_ADMIN");
            return;
        }
        let namespace = PidNamespace::create().unwrap();
        let mut command = tokio::process::Command::new("/bin/sh");
        command.args(["-c", "setsid sleep 1001 >/dev/null 2>&1 & echo $! $$"]);
        command.stdout(std::process::Stdio::piped());
        let child = namespace.spawn(&mut command).unwrap();
        let output = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let pids: Vec<u32> = text
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(pids[1] > 1, "the shell has a pid of the namespace: {text}");
        assert!(namespace.is_alive());
        let sleeping = || {
            std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| cmdline == b"sleep\x001001\x00")
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !sleeping() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(sleeping(), "the setsid sleep runs");
        namespace.kill();
        assert!(namespace.wait_gone(Duration::from_secs(2)).await);
        assert!(!sleeping(), "the setsid sleep died with the namespace");
    }

    #[tokio::test]
    async fn a_spawn_outside_stays_outside() {
        if !can_create() {
            return;
        }
        let namespace = PidNamespace::create().unwrap();
        let mut inside = tokio::process::Command::new("true");
        namespace.spawn(&mut inside).unwrap().wait().await.unwrap();
        // The same thread spawns again, without the namespace.
        let child = std::process::Command::new("sh")
            .args(["-c", "readlink /proc/self/ns/pid"])
            .output()
            .unwrap();
        let own = std::fs::read_link("/proc/self/ns/pid").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&child.stdout).trim(),
            own.display().to_string()
        );
    }

    static HANDLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    extern "C" fn note_usr1(_: libc::c_int) {
        HANDLED.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The init shares subrt's memory: a handler of subrt's that ran in it
    /// would act on subrt's state (here, set a flag it can see).
    #[tokio::test]
    async fn subrt_s_signal_handlers_never_run_in_the_init() {
        if !can_create() {
            return;
        }
        // SAFETY: installs a handler that only stores to an atomic.
        unsafe { libc::signal(libc::SIGUSR1, note_usr1 as *const () as libc::sighandler_t) };
        let namespace = PidNamespace::create().unwrap();
        // SAFETY: signals our own child.
        unsafe { libc::kill(namespace.init_pid() as i32, libc::SIGUSR1) };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !HANDLED.load(std::sync::atomic::Ordering::SeqCst),
            "subrt's SIGUSR1 handler ran in the init"
        );
        assert!(namespace.is_alive(), "an init ignores SIGUSR1");
        // SAFETY: signals our own child.
        unsafe { libc::kill(namespace.init_pid() as i32, libc::SIGHUP) };
        assert!(
            namespace.wait_gone(Duration::from_secs(2)).await,
            "SIGHUP ends the init"
        );
    }

    /// Mappings of this process that are an init's stack: 128 KiB, read
    /// and write, right above a one-page guard. (Not the process's size:
    /// other tests' threads come and go in the same process.)
    fn init_stacks() -> usize {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let regions: Vec<(u64, u64, &str)> = maps
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let (start, end) = fields.next()?.split_once('-')?;
                let start = u64::from_str_radix(start, 16).ok()?;
                let end = u64::from_str_radix(end, 16).ok()?;
                Some((start, end, fields.next()?))
            })
            .collect();
        regions
            .windows(2)
            .filter(|pair| {
                let ((guard_start, guard_end, guard), (start, end, perms)) = (pair[0], pair[1]);
                guard == "---p"
                    && guard_end - guard_start == 4096
                    && guard_end == start
                    && perms == "rw-p"
                    && end - start == 128 * 1024
            })
            .count()
    }

    /// Each init runs on a stack of its own in subrt's memory; it is given
    /// back once the init is reaped, or a long batch would grow subrt.
    #[tokio::test]
    async fn an_init_s_stack_is_given_back_once_it_is_gone() {
        if !can_create() {
            return;
        }
        let before = init_stacks();
        let live = PidNamespace::create().unwrap();
        assert!(init_stacks() >= 1, "a live init has its stack");
        drop(live);
        for _ in 0..200 {
            let namespace = PidNamespace::create().unwrap();
            namespace.kill();
            assert!(namespace.wait_gone(Duration::from_secs(2)).await);
        }
        // The keeper unmaps a stack just after it says the init is gone;
        // tests side by side may hold a few.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while init_stacks() > before + 4 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = init_stacks().saturating_sub(before);
        assert!(left <= 4, "200 sessions left {left} stacks mapped");
    }
}
