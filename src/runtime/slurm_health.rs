//! Whether a Slurm step can still end with a status: the node's `slurmd`
//! and the controller, watched while a command runs.
//!
//! A step's status comes back through `srun`; when the node's `slurmd`
//! dies or the cluster goes away, `srun` may end at once with 0 and no
//! status, or hang for as long as the controller takes to declare the node
//! down (`SlurmdTimeout`, 300 s by default). subrt does not wait for
//! either: while a command runs it checks, every `EVERY`, that the node's
//! `slurmd` accepts a connection (a TCP connect to `NodeAddr:SlurmdPort`,
//! nothing sent) and, less often, what the controller says of the node. A
//! node down for the controller, a `slurmd` refusing for `GRACE`, or a
//! controller silent for `GRACE` ends the command as failed with that
//! reason: well within [`BOUND`] of the fault.
//!
//! Checks are shared by the sessions of a process: a node is probed at
//! most once per `EVERY`, however many steps run on it.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a running step's node is checked.
pub(crate) const EVERY: Duration = Duration::from_secs(5);
/// How long a node or the controller may not answer before the step is
/// given up.
pub(crate) const GRACE: Duration = Duration::from_secs(20);
/// What the README promises: a step whose node or cluster is lost ends
/// within this.
pub const BOUND: Duration = Duration::from_secs(60);
/// A connect to `slurmd` that takes longer than this did not answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A node's `slurmd`, as far as a process has seen it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    checked: Instant,
    /// Since when it has not answered (`None`: it answered last time).
    silent_since: Option<Instant>,
}

fn seen() -> &'static Mutex<HashMap<SocketAddr, Seen>> {
    static SEEN: OnceLock<Mutex<HashMap<SocketAddr, Seen>>> = OnceLock::new();
    super::fork_gate::once(&SEEN, Mutex::default)
}

/// Where a node's `slurmd` listens: `NodeAddr` (a name or an address) and
/// the cluster's `SlurmdPort`.
pub(crate) fn slurmd_address(node_addr: &str, port: u16) -> Option<SocketAddr> {
    (node_addr, port).to_socket_addrs().ok()?.next()
}

/// How long `slurmd` at `address` has not answered, probing it when the
/// last probe is older than [`EVERY`] (blocking up to [`CONNECT_TIMEOUT`]:
/// call it off the runtime's threads).
pub(crate) fn silent_for(address: SocketAddr) -> Option<Duration> {
    let now = Instant::now();
    let last = super::fork_gate::lock(seen()).get(&address).copied();
    let entry = match last {
        Some(seen) if now.duration_since(seen.checked) < EVERY => seen,
        _ => {
            let answered = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_ok();
            let silent_since = match (answered, last.and_then(|s| s.silent_since)) {
                (true, _) => None,
                (false, Some(since)) => Some(since),
                (false, None) => Some(now),
            };
            let entry = Seen {
                checked: Instant::now(),
                silent_since,
            };
            super::fork_gate::lock(seen()).insert(address, entry);
            entry
        }
    };
    entry.silent_since.map(|since| now.duration_since(since))
}

/// Whether a node state of `sinfo -o %T` (or `scontrol`'s `State=`) means
/// its steps are lost: down, failed, or not responding (`*`).
pub(crate) fn state_is_lost(state: &str) -> bool {
    let state = state.trim().to_ascii_lowercase();
    state.ends_with('*')
        || ["down", "fail", "not_responding", "no_respond"]
            .iter()
            .any(|bad| state.contains(bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_states_that_lose_a_step() {
        for lost in [
            "down*",
            "down",
            "idle*",
            "mixed*",
            "fail",
            "DOWN+NOT_RESPONDING",
        ] {
            assert!(state_is_lost(lost), "{lost}");
        }
        for fine in ["idle", "mixed", "allocated", "completing", "ALLOCATED"] {
            assert!(!state_is_lost(fine), "{fine}");
        }
    }

    #[test]
    fn a_closed_port_is_silent_and_an_open_one_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(silent_for(open), None);
        drop(listener);
        // Cached for EVERY: the same answer until then.
        assert_eq!(silent_for(open), None);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(silent_for(closed).is_some());
    }
}
