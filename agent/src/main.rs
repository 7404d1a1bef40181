//! `subrt-agent`: PID 1 of a subrt Docker session.
//!
//! subrt mounts this static executable read-only into the container and
//! makes it the container's entrypoint, attached to its stdin and stdout.
//! Over that connection (frames of `agent_protocol.rs`) it starts the
//! session's commands, forwards their stdin, stdout and stderr, signals
//! them, and says how each ended and what it cost. It is also:
//!
//! - the reaper: every orphan of the container is reparented to it and
//!   waited for;
//! - the lifeline: when its stdin ends (subrt closed the connection, or
//!   died) it SIGKILLs every process of the container and exits, so the
//!   container stops.
//!
//! A command's end comes from `wait4` of its own process, never from its
//! pipes closing; its output is read until both pipes close, or stay
//! silent for [`DRAIN_MS`] after the exit (a background process may hold
//! them), as subrt's local runtime does, and only then is `EXITED` sent.

#[path = "../../src/runtime/process_tree.rs"]
#[allow(dead_code)]
mod process_tree;
#[path = "../../src/runtime/docker/agent_protocol.rs"]
#[allow(dead_code)]
mod protocol;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use protocol::{Exited, Start};

/// How long a command's pipes may stay silent after it exited before its
/// end is sent (subrt's `DRAIN_AFTER_EXIT`).
const DRAIN_MS: i32 = 100;
/// How long its pipes are read at most after it exited, beyond what they
/// held then (subrt's `DRAIN_AT_MOST`): a background process that writes on
/// does not hold the end back.
const DRAIN_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);
/// Bytes read from a command's pipe at once.
const CHUNK: usize = 64 * 1024;

fn main() {
    // Not dumpable: a command running as root in the container cannot
    // open `/proc/1/fd/1` (without CAP_SYS_PTRACE, which containers do not
    // get) and write frames of its own to subrt.
    // SAFETY: prctl(2) with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // `docker stop` (SIGTERM) and SIGINT end the container at once, as a
    // closed connection does; PID 1 ignores what it has no handler for.
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that makes only async-signal-safe calls.
        unsafe { libc::signal(signal, on_stop as *const () as libc::sighandler_t) };
    }
    let agent = Arc::new(Agent {
        // SAFETY: fd 1, the attach connection, is the agent's for its whole
        // life; frames are written to it whole, with no buffer of std's.
        out: Mutex::new(unsafe { File::from_raw_fd(1) }),
        waiting: Mutex::new(HashMap::new()),
        spawned: Condvar::new(),
        commands: Mutex::new(HashMap::new()),
    });
    let reaper = Arc::clone(&agent);
    std::thread::spawn(move || reaper.reap());
    agent.send(protocol::READY, 0, env!("CARGO_PKG_VERSION").as_bytes());
    agent.serve(std::io::stdin().lock());
    end_everything();
}

extern "C" fn on_stop(_: libc::c_int) {
    // SAFETY: kill(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        libc::_exit(0);
    }
}

/// SIGKILLs every other process of the container and exits.
fn end_everything() -> ! {
    // SAFETY: kill(2); as PID 1 of the container's PID namespace, -1 is
    // every process in it but this one.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    std::process::exit(0)
}

struct Agent {
    /// The connection to subrt: frames are written whole under this lock.
    out: Mutex<File>,
    /// Started commands not yet reaped, by pid.
    waiting: Mutex<HashMap<i32, Arc<Ending>>>,
    /// Signalled when a command starts (the reaper waits for one when the
    /// agent has no child).
    spawned: Condvar,
    /// Commands not yet ended, by id.
    commands: Mutex<HashMap<u32, Handle>>,
}

/// A running command, as the connection's reader sees it.
struct Handle {
    pid: i32,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
}

/// Where the reaper leaves a command's end: the status, and a byte on the
/// pipe its pump polls.
struct Ending {
    exited: Mutex<Option<Exited>>,
    wake: OwnedFd,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Agent {
    /// Writes one frame; a connection that is gone ends the session.
    fn send(&self, kind: u8, id: u32, payload: &[u8]) {
        let frame = protocol::frame(kind, id, payload);
        if lock(&self.out).write_all(&frame).is_err() {
            end_everything();
        }
    }

    /// Reads frames from subrt until its connection ends.
    fn serve(self: &Arc<Self>, input: impl Read) {
        let mut input = BufReader::with_capacity(CHUNK, input);
        let mut header = [0; protocol::HEADER];
        loop {
            if input.read_exact(&mut header).is_err() {
                return;
            }
            let (kind, id, len) = protocol::parse_header(&header);
            if len > protocol::MAX_PAYLOAD {
                eprintln!("subrt-agent: a frame of {len} bytes: the stream is broken");
                return;
            }
            let mut payload = vec![0; len as usize];
            if input.read_exact(&mut payload).is_err() {
                return;
            }
            match kind {
                protocol::START => match Start::decode(&payload) {
                    Some(start) => self.start(id, start),
                    None => self.send(protocol::FAILED, id, b"a START frame that does not parse"),
                },
                protocol::STDIN => {
                    let mut commands = lock(&self.commands);
                    if let Some(handle) = commands.get_mut(&id) {
                        if payload.is_empty() {
                            handle.stdin = None;
                        } else if let Some(stdin) = &handle.stdin {
                            let _ = stdin.send(payload);
                        }
                    }
                }
                protocol::SIGNAL => {
                    let pid = lock(&self.commands).get(&id).map(|h| h.pid);
                    if let (Some(pid), Some(&signal)) = (pid, payload.first()) {
                        signal_tree(pid, i32::from(signal));
                    }
                }
                _ => eprintln!("subrt-agent: frame kind {kind} is not known; ignored"),
            }
        }
    }

    /// Starts command `id` and the threads that carry its streams.
    fn start(self: &Arc<Self>, id: u32, start: Start) {
        if let Err(why) = self.spawn(id, start) {
            self.send(protocol::FAILED, id, why.as_bytes());
        }
    }

    /// Starts the command and says so (`STARTED`, before any of its
    /// output), or says why not.
    fn spawn(self: &Arc<Self>, id: u32, start: Start) -> Result<(), String> {
        // std waits for a child whose exec failed; a reaper that took it
        // first would leave std nothing to wait for. So what can be checked
        // before the fork is checked here.
        if !std::path::Path::new(&start.cwd).is_dir() {
            return Err(format!(
                "the working directory {} does not exist",
                start.cwd
            ));
        }
        let program = &start.argv[0];
        let c_program = std::ffi::CString::new(program.as_str()).map_err(|e| e.to_string())?;
        // SAFETY: access(2) of a NUL-terminated path.
        if unsafe { libc::access(c_program.as_ptr(), libc::X_OK) } != 0 {
            return Err(format!("{program} cannot be run in this image"));
        }
        let mut cmd = Command::new(program);
        let (uid, gid) = (start.uid, start.gid);
        let account = Account::of(uid);
        let groups = account.groups;
        cmd.args(&start.argv[1..])
            // As `docker exec -u` does: into the working dir first, then
            // the user (who may not be let into it by its permissions).
            .current_dir(&start.cwd)
            .process_group(0)
            .stdin(if start.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only system calls (no allocation,
        // no lock; `groups` was made before the fork): the supplementary
        // groups, then the group, then the user.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.env("HOME", account.home);
        cmd.envs(start.env.iter().map(|(k, v)| (k, v)));
        let (wake_rx, wake_tx) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let ending = Arc::new(Ending {
            exited: Mutex::new(None),
            wake: wake_tx,
        });
        // The reaper blocks on `waiting` until the pid is in it.
        let mut waiting = lock(&self.waiting);
        // A panic of std's there (its wait for a failed child, which the
        // reaper took) is a failed start, not the agent's end.
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.spawn()));
        let mut child = match spawned {
            Ok(Ok(child)) => child,
            Ok(Err(e)) => return Err(format!("cannot start {program}: {e}")),
            Err(_) => return Err(format!("cannot start {program}")),
        };
        let pid = child.id() as i32;
        waiting.insert(pid, Arc::clone(&ending));
        drop(waiting);
        self.spawned.notify_one();

        let stdin = child.stdin.take().map(|pipe| {
            let (tx, rx) = mpsc::channel::<Vec<u8>>();
            std::thread::spawn(move || feed(pipe, rx));
            tx
        });
        lock(&self.commands).insert(id, Handle { pid, stdin });
        self.send(protocol::STARTED, id, &(pid as u32).to_le_bytes());
        let stdout = OwnedFd::from(child.stdout.take().expect("piped"));
        let stderr = OwnedFd::from(child.stderr.take().expect("piped"));
        // `child` is dropped unwaited: the reaper waits for every child.
        let agent = Arc::clone(self);
        std::thread::spawn(move || agent.pump(id, [stdout, stderr], wake_rx, &ending));
        Ok(())
    }

    /// Forwards a command's output until it has ended and its pipes closed
    /// or went silent, then sends its end.
    fn pump(&self, id: u32, pipes: [OwnedFd; 2], wake: OwnedFd, ending: &Ending) {
        let kinds = [protocol::STDOUT, protocol::STDERR];
        let mut fds = [
            poll_fd(pipes[0].as_raw_fd()),
            poll_fd(pipes[1].as_raw_fd()),
            poll_fd(wake.as_raw_fd()),
        ];
        let mut exited = false;
        // From the exit on: what the pipes held then (the command's own
        // output, read whatever the time), and when reading stops anyway.
        let mut owed = [0usize; 2];
        let mut ends: Option<std::time::Instant> = None;
        let mut buf = vec![0u8; CHUNK];
        while !(exited && fds[0].fd < 0 && fds[1].fd < 0) {
            let timeout = match ends {
                None => -1,
                Some(_) if owed.iter().any(|&n| n > 0) => DRAIN_MS,
                Some(ends) => {
                    let left = ends.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    DRAIN_MS.min(left.as_millis() as i32)
                }
            };
            // SAFETY: poll(2) over three pollfds we own.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if ready == 0 {
                break; // silent since the exit: a background process holds them
            }
            for ((fd, kind), owed) in fds.iter_mut().zip(kinds).zip(&mut owed) {
                if fd.fd < 0 || fd.revents == 0 {
                    continue;
                }
                // SAFETY: read(2) into our buffer from a pipe we own.
                let n = unsafe { libc::read(fd.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    *owed = owed.saturating_sub(n as usize);
                    self.send(kind, id, &buf[..n as usize]);
                } else if n == 0
                    || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    fd.fd = -1;
                }
            }
            if fds[2].fd >= 0 && fds[2].revents != 0 {
                exited = true;
                fds[2].fd = -1;
                ends = Some(std::time::Instant::now() + DRAIN_AT_MOST);
                for (fd, owed) in fds.iter().zip(&mut owed) {
                    *owed = if fd.fd < 0 { 0 } else { pending(fd.fd) };
                }
            }
        }
        let exited = lock(&ending.exited).take().unwrap_or_default();
        lock(&self.commands).remove(&id);
        self.send(protocol::EXITED, id, &exited.encode());
    }

    /// Waits for every child: a command's end goes to its pump, an orphan's
    /// is dropped.
    fn reap(&self) {
        loop {
            let mut status = 0;
            // SAFETY: wait4(2) into a zeroed rusage and an int we own.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let pid = unsafe { libc::wait4(-1, &mut status, 0, &mut usage) };
            if pid < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                    // No child at all: wait until a command starts.
                    let waiting = lock(&self.waiting);
                    let _unused = self
                        .spawned
                        .wait_while(waiting, |w| w.is_empty())
                        .unwrap_or_else(|e| e.into_inner());
                }
                continue;
            }
            let Some(ending) = lock(&self.waiting).remove(&pid) else {
                continue;
            };
            let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            *lock(&ending.exited) = Some(Exited {
                status,
                max_rss_kib: usage.ru_maxrss as u64,
                user_us: micros(usage.ru_utime),
                system_us: micros(usage.ru_stime),
            });
            // SAFETY: write(2) of one byte to the pipe we own.
            unsafe { libc::write(ending.wake.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
    }
}

/// Writes what comes for a command's stdin until it is closed (or the
/// command stops reading).
fn feed(pipe: std::process::ChildStdin, rx: mpsc::Receiver<Vec<u8>>) {
    let mut pipe = pipe;
    for data in rx {
        if pipe.write_all(&data).is_err() {
            return;
        }
    }
}

/// Signals a command's process group, and with SIGKILL every descendant
/// of it too (one that left the group): the tree first, while the command
/// still holds it together (once it is dead its children are the agent's).
fn signal_tree(pid: i32, signal: i32) {
    if signal == libc::SIGKILL {
        process_tree::kill_tree(pid);
    }
    // SAFETY: kill(2) of the group the command leads.
    unsafe { libc::kill(-pid, signal) };
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) into an array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Bytes a pipe holds now.
fn pending(fd: i32) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD into an int of ours.
    let asked = unsafe { libc::ioctl(fd, libc::FIONREAD, &raw mut bytes) };
    if asked == 0 { bytes.max(0) as usize } else { 0 }
}

fn poll_fd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// What a command's user gets besides its uid and gid, read from the
/// image's files at each command as `docker exec -u` reads them.
#[derive(Debug, PartialEq, Eq)]
struct Account {
    /// `HOME`: the user's in `/etc/passwd`, else `/`.
    home: String,
    /// The supplementary groups: those of `/etc/group` that list the
    /// user's name (none for a uid `/etc/passwd` does not name).
    groups: Vec<libc::gid_t>,
}

impl Account {
    fn of(uid: u32) -> Self {
        Self::from_files(uid, &image_file("/etc/passwd"), &image_file("/etc/group"))
    }

    fn from_files(uid: u32, passwd: &str, group: &str) -> Self {
        let entry = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| (fields[0], fields[5]))
        });
        let Some((name, home)) = entry else {
            return Self {
                home: "/".to_owned(),
                groups: Vec::new(),
            };
        };
        let mut groups = Vec::new();
        for line in group.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let [_, _, gid, members] = fields[..] else {
                continue;
            };
            let member = members.split(',').any(|m| m.trim() == name);
            if let (true, Ok(gid)) = (member, gid.parse())
                && !groups.contains(&gid)
            {
                groups.push(gid);
            }
        }
        Self {
            home: home.to_owned(),
            groups,
        }
    }
}

/// The text of one of the image's account files, read as the agent reads
/// them for every command: a command run as root may have replaced it, so
/// only a regular file counts (not a FIFO, which would hold the agent, nor
/// a link to one of the agent's own descriptors, such as its connection to
/// subrt on `/proc/self/fd/0`), opened without waiting and read up to
/// 1 MiB. Anything else reads as empty: no home, no groups.
fn image_file(path: &str) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    const MOST: u64 = 1 << 20;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return String::new();
    };
    if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return String::new();
    }
    let mut text = String::new();
    match file.take(MOST).read_to_string(&mut text) {
        Ok(_) => text,
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::Account;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          bob:x:1000:1000::/home/bob:/bin/sh\n\
                          bobby:x:1001:1001::/home/bobby:/bin/sh\n\
                          broken line\n";

    #[test]
    fn a_named_user_gets_its_home_and_every_group_that_lists_it_once() {
        let group = "root:x:0:\n\
                     wheel:x:10:root, bob\n\
                     audio:x:29:bobby\n\
                     video:x:44:alice,bob\n\
                     again:x:10:bob\n\
                     odd:x:50\n";
        assert_eq!(
            Account::from_files(1000, PASSWD, group),
            Account {
                home: "/home/bob".to_owned(),
                groups: vec![10, 44],
            },
            "bob is in wheel (listed with a space) and video, not in bobby's audio; \
             gid 10 counted once; a line without its members field skipped"
        );
    }

    #[test]
    fn a_uid_the_image_does_not_name_gets_no_groups_and_root_as_home() {
        let group = "wheel:x:10:bob\n";
        assert_eq!(
            Account::from_files(4242, PASSWD, group),
            Account {
                home: "/".to_owned(),
                groups: Vec::new(),
            }
        );
        assert_eq!(
            Account::from_files(1000, "", ""),
            Account {
                home: "/".to_owned(),
                groups: Vec::new(),
            },
            "an image without the files (or with unreadable ones)"
        );
    }
}
