//! Process groups on the host: signalling them and telling whether a
//! recorded process is still the one that was recorded.

use std::io;

/// Sends `signal` to every process in group `pgid`. A group that no longer
/// exists is not an error.
pub fn signal_group(pgid: i32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process group {pgid}"),
        ));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        e => Err(e),
    }
}

/// Sends `signal` to process `pid`. A process that no longer exists is
/// not an error.
pub fn signal_process(pid: u32, signal: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 1).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal process {pid}"),
        )
    })?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(());
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        e => Err(e),
    }
}

/// Kills every process in group `pgid` with SIGKILL.
pub fn kill_group(pgid: i32) -> io::Result<()> {
    signal_group(pgid, libc::SIGKILL)
}

/// True while group `pgid` has a live member. Zombies do not count: they
/// are dead, and an init that reaps slowly (as in some containers) would
/// otherwise keep a killed group "alive".
pub fn group_exists(pgid: i32) -> bool {
    // Fast path: no member at all, zombie or not.
    // SAFETY: signal 0 only checks for existence and permission.
    let any = unsafe { libc::kill(-pgid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    pgid > 1 && any && !live_members(pgid).is_empty()
}

/// Pids of the processes of group `pgid` that are not zombies.
pub fn live_members(pgid: i32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid).is_some_and(|fields| {
                // Fields after the name: state (3), ppid (4), pgrp (5).
                fields.first().is_some_and(|state| state != "Z")
                    && fields.get(2).and_then(|p| p.parse().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name, from field 3.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
///
/// A pid and its start time together name one process for good: a pid is
/// reused, the pair is not. Whoever recorded both can check the pair before
/// signalling, so it never kills a stranger that inherited the number.
pub fn process_start_time(pid: u32) -> Option<u64> {
    // Field 22 is the 20th after the name.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether process `pid` started at `start` (see [`process_start_time`])
/// still runs: a zombie (dead, not yet reaped by its parent, as a SIGKILLed
/// subrt is for a moment) does not.
pub fn is_running(pid: u32, start: u64) -> bool {
    stat_fields(pid).is_some_and(|fields| {
        !matches!(fields.first().map(String::as_str), Some("Z" | "X"))
            && fields.get(19).and_then(|s| s.parse().ok()) == Some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_names_this_process_and_nothing_after_exit() {
        assert!(process_start_time(std::process::id()).is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_start_time(pid), None);
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start_time(pid).unwrap();
        // Exited, not reaped: a zombie whose start time is still there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stat_fields(pid).and_then(|f| f.first().cloned()).as_deref() != Some("Z") {
            assert!(std::time::Instant::now() < deadline, "never a zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(process_start_time(pid), Some(start));
        assert!(!is_running(pid, start), "a zombie does not run");
        assert!(is_running(
            std::process::id(),
            process_start_time(std::process::id()).unwrap()
        ));
        child.wait().unwrap();
    }

    #[test]
    fn refuses_to_signal_init_or_everyone() {
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(0, 0).is_err());
        assert!(!group_exists(0));
    }
}
