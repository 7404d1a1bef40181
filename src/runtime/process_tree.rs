//! Killing a process and its descendants, found through `/proc`: for a
//! command whose processes share a session with others (a container's
//! exec), where no group or namespace is the command's alone.
//!
//! Each round stops what it finds (a stopped process cannot fork), looks
//! again for children made meanwhile, and kills the lot. A process that
//! left the tree before it was seen (a double fork, reparented to the
//! session's init) is not found: it goes when the session does.

use std::collections::BTreeSet;

/// Rounds of search at most (a tree that forks faster than it is read).
const ROUNDS: usize = 16;

/// The children of `pid` (every thread's), from `/proc`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// `root` and every descendant of it now.
fn tree(root: i32) -> BTreeSet<i32> {
    let mut found = BTreeSet::from([root]);
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for child in children(pid) {
            if found.insert(child) {
                next.push(child);
            }
        }
    }
    found
}

/// Whether `pid` is visible here (the daemon shares this host's process
/// table).
pub(crate) fn visible(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILLs `root` and its descendants. Returns how many were signalled.
pub(crate) fn kill_tree(root: i32) -> usize {
    let mut stopped = BTreeSet::new();
    for _ in 0..ROUNDS {
        let found = tree(root);
        let new: Vec<i32> = found.difference(&stopped).copied().collect();
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            // SAFETY: kill(2); a pid reused meanwhile is a risk every
            // pid-based tool takes, made small by the stop.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        stopped.extend(new);
    }
    for &pid in &stopped {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    stopped.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_dies_and_what_is_beside_it_lives() {
        let mut tree_root = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & sh -c 'sleep 1000 & wait' & wait"])
            .spawn()
            .unwrap();
        let mut beside = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let root = tree_root.id() as i32;
        let members = tree(root);
        assert!(members.len() >= 4, "found {members:?}");
        assert!(kill_tree(root) >= 4);
        tree_root.wait().unwrap();
        for pid in members.iter().filter(|&&p| p != root) {
            // Killed: gone, or a zombie until its parent reaps it.
            let running = || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while running() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(!running(), "{pid} of the tree still runs");
        }
        assert!(
            beside.try_wait().unwrap().is_none(),
            "a process beside the tree was killed"
        );
        beside.kill().unwrap();
        beside.wait().unwrap();
    }
}
