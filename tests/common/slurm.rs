//! Slurm test support: the cluster of `assets/slurm/cluster.sh`.

use std::process::Command;
use std::sync::OnceLock;

/// The config of the cluster `assets/slurm/cluster.sh` starts: the only
/// cluster these tests submit to.
pub const CONF: &str = "/run/subrt-slurm/slurm.conf";

/// `true` when the cluster of `assets/slurm/cluster.sh` answers `sinfo`
/// with three nodes up, and this process talks to it (`SLURM_CONF` names
/// its config, or `/etc/slurm/slurm.conf` is a link to it): never to
/// another cluster that answers on this machine. Without it: panics when
/// `CI` is set (`.ci/run` starts it), else `false` (skip, said once).
/// `SUBRT_SKIP=slurm` skips whatever `CI` says.
pub fn cluster() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if super::skipped("slurm") {
        return false;
    }
    let ready = READY.get_or_init(|| {
        let ours = std::fs::canonicalize(CONF).ok();
        let used = match std::env::var_os("SLURM_CONF") {
            Some(conf) => std::fs::canonicalize(conf).ok(),
            None => std::fs::canonicalize("/etc/slurm/slurm.conf").ok(),
        };
        if ours.is_none() || used != ours {
            return Err(format!(
                "the Slurm tests run on the cluster of assets/slurm/cluster.sh only: \
                 start it, and set SLURM_CONF={CONF} (test.sh does)"
            ));
        }
        let out = Command::new("sinfo")
            .args(["-h", "-N", "-o", "%N %T"])
            .output()
            .map_err(|e| format!("cannot run sinfo: {e}"))?;
        let listing = String::from_utf8_lossy(&out.stdout);
        // Up: not down, drained, failing or not responding (`*`).
        let up = listing
            .lines()
            .filter(|l| {
                !["down", "drain", "fail", "unknown", "*"]
                    .iter()
                    .any(|bad| l.contains(bad))
            })
            .count();
        if out.status.success() && up == 3 {
            Ok(())
        } else {
            Err(format!(
                "no 3-node Slurm cluster (assets/slurm/cluster.sh up starts one): {}{}",
                listing.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and the Slurm tests cannot run: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping Slurm test: {reason}");
            false
        }
    }
}

/// The jobs in the queue whose name contains `needle`, as `id state node`.
pub fn jobs_named(needle: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i %T %N %j"])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}
