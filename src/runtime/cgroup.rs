//! Control groups: what a session's processes may use, and what they used.
//!
//! A [`Cgroup`] is one group in the host's hierarchy, version 2 (one
//! folder, the unified hierarchy) or version 1 (a folder per controller:
//! `memory`, `pids`, `cpu`, `cpuacct`). The layout is read once from
//! `/proc/self/mountinfo`: a host that mounts v1 controllers uses them
//! (this is what a "hybrid" host with an empty `unified` tree means), else
//! the v2 tree.
//!
//! Own code rather than a crate: subrt needs about ten files read or
//! written per version, and the `cgroups-rs` crate, the maintained one,
//! would bring a dependency many times the size of this file for them.
//!
//! | what                 | v2                          | v1                                         |
//! |----------------------|-----------------------------|--------------------------------------------|
//! | memory limit         | `memory.max`, `memory.swap.max` | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` |
//! | process limit        | `pids.max`                  | `pids/pids.max`                            |
//! | CPU limit            | `cpu.max`                   | `cpu/cpu.cfs_quota_us`, `cpu.cfs_period_us` |
//! | peak memory          | `memory.peak`               | `memory.max_usage_in_bytes`                |
//! | out-of-memory kills  | `memory.events` `oom_kill`  | `memory.oom_control` `oom_kill`            |
//! | CPU time             | `cpu.stat` `user_usec`, `system_usec` | `cpuacct.usage_user`, `usage_sys` (ns) |
//! | kill every process   | `cgroup.kill`               | SIGKILL to each pid of `cgroup.procs`      |

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The host's cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy, mounted here.
    V2(PathBuf),
    /// One mount per controller.
    V1 {
        /// `memory` controller's mount.
        memory: Option<PathBuf>,
        /// `pids`.
        pids: Option<PathBuf>,
        /// `cpu` (quota).
        cpu: Option<PathBuf>,
        /// `cpuacct` (CPU time).
        cpuacct: Option<PathBuf>,
    },
}

impl Hierarchy {
    /// The host's hierarchy, read once; `None` when no cgroup filesystem is
    /// mounted.
    pub fn host() -> Option<&'static Hierarchy> {
        static HOST: OnceLock<Option<Hierarchy>> = OnceLock::new();
        super::fork_gate::once(&HOST, || {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            Self::from_mountinfo(&mountinfo)
        })
        .as_ref()
    }

    /// The hierarchy `mountinfo` (the text of `/proc/self/mountinfo`)
    /// describes.
    pub fn from_mountinfo(mountinfo: &str) -> Option<Self> {
        let (mut memory, mut pids, mut cpu, mut cpuacct, mut unified) =
            (None, None, None, None, None);
        for line in mountinfo.lines() {
            // `... mount-point options - fstype source super-options`
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = before.split(' ').nth(4).map(unescape);
            let mut after = after.split(' ');
            let (fstype, super_options) = (after.next(), after.nth(1).unwrap_or(""));
            let Some(mount_point) = mount_point else {
                continue;
            };
            match fstype {
                Some("cgroup2") => {
                    unified.get_or_insert(mount_point);
                }
                Some("cgroup") => {
                    for option in super_options.split(',') {
                        let slot = match option {
                            "memory" => &mut memory,
                            "pids" => &mut pids,
                            "cpu" => &mut cpu,
                            "cpuacct" => &mut cpuacct,
                            _ => continue,
                        };
                        slot.get_or_insert_with(|| mount_point.clone());
                    }
                }
                _ => {}
            }
        }
        if memory.is_some() || pids.is_some() || cpu.is_some() {
            Some(Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            })
        } else {
            unified.map(Hierarchy::V2)
        }
    }

    /// "v2" or "v1", for messages.
    pub fn version(&self) -> &'static str {
        match self {
            Hierarchy::V2(_) => "v2",
            Hierarchy::V1 { .. } => "v1",
        }
    }
}

/// `\040` and friends of mountinfo back to their characters.
fn unescape(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Limits a cgroup applies (each `None` leaves it unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupLimits {
    /// Bytes of memory (and no swap beyond it).
    pub memory: Option<u64>,
    /// Processes (and threads) at once.
    pub pids: Option<u64>,
    /// CPU, in cores (`1.5`: a core and a half).
    pub cpus: Option<f64>,
}

/// What the processes of a cgroup used, as far as the kernel says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupUsage {
    /// Most memory in use at once, in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time in user mode.
    pub cpu_user: Option<Duration>,
    /// CPU time in the kernel.
    pub cpu_system: Option<Duration>,
    /// Processes the out-of-memory killer ended.
    pub oom_kills: Option<u64>,
}

impl CgroupUsage {
    /// In the words of an outcome.
    pub fn as_usage(&self) -> crate::runtime::Usage {
        crate::runtime::Usage {
            peak_memory_bytes: self.peak_memory_bytes,
            cpu_user_seconds: self.cpu_user.map(|d| d.as_secs_f64()),
            cpu_system_seconds: self.cpu_system.map(|d| d.as_secs_f64()),
        }
    }

    /// What was used since `before` (the peak is not a difference: it is
    /// this reading's, reset at the start of what is measured).
    pub fn since(&self, before: &CgroupUsage) -> CgroupUsage {
        let minus = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        CgroupUsage {
            peak_memory_bytes: self.peak_memory_bytes,
            cpu_user: minus(self.cpu_user, before.cpu_user),
            cpu_system: minus(self.cpu_system, before.cpu_system),
            oom_kills: self
                .oom_kills
                .zip(before.oom_kills)
                .map(|(after, before)| after.saturating_sub(before)),
        }
    }
}

/// One cgroup: its folder in each controller that subrt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// v2: the one folder; v1: the memory controller's.
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    v2: bool,
    /// Made by subrt (removed by [`remove`](Cgroup::remove)).
    owned: bool,
}

impl Cgroup {
    /// The cgroup process `pid` is in (a container's init, say), when this
    /// host's hierarchy shows it.
    pub fn of_process(pid: u32) -> Option<Cgroup> {
        let hierarchy = Hierarchy::host()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let cgroup = Self::at(hierarchy, |controller| {
            text.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let wanted = match controller {
                    None => controllers.is_empty(),
                    Some(name) => controllers.split(',').any(|c| c == name),
                };
                wanted.then(|| PathBuf::from(path.trim_start_matches('/')))
            })
        });
        cgroup.memory.as_ref().filter(|p| p.is_dir())?;
        Some(cgroup)
    }

    /// The cgroup at `relative(controller)` under each controller's mount
    /// (`None` asks for the v2 path).
    fn at(hierarchy: &Hierarchy, relative: impl Fn(Option<&str>) -> Option<PathBuf>) -> Cgroup {
        match hierarchy {
            Hierarchy::V2(root) => {
                let dir = relative(None).map(|r| root.join(r));
                Cgroup {
                    memory: dir.clone(),
                    pids: dir.clone(),
                    cpu: dir.clone(),
                    cpuacct: dir,
                    v2: true,
                    owned: false,
                }
            }
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => {
                let under = |mount: &Option<PathBuf>, name: &str| {
                    Some(mount.as_ref()?.join(relative(Some(name))?))
                };
                Cgroup {
                    memory: under(memory, "memory"),
                    pids: under(pids, "pids"),
                    cpu: under(cpu, "cpu"),
                    cpuacct: under(cpuacct, "cpuacct"),
                    v2: false,
                    owned: false,
                }
            }
        }
    }

    /// Makes the cgroup `name` under the one subrt itself is in (so that a
    /// delegated subtree is enough), with `limits` applied.
    ///
    /// # Errors
    ///
    /// No cgroup filesystem, or a folder or a limit that cannot be
    /// written (not root, and no delegation); the error names the file.
    pub fn create(name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        let hierarchy = Hierarchy::host().ok_or(CgroupError::NoHierarchy)?;
        let own = Self::of_process(std::process::id()).ok_or(CgroupError::NoHierarchy)?;
        let child = |dir: &Option<PathBuf>| dir.as_ref().map(|d| d.join(name));
        let mut cgroup = Cgroup {
            memory: child(&own.memory),
            pids: child(&own.pids),
            cpu: child(&own.cpu),
            cpuacct: child(&own.cpuacct),
            v2: matches!(hierarchy, Hierarchy::V2(_)),
            owned: true,
        };
        if cgroup.v2 {
            // One folder; the controllers must be enabled for its children
            // by the parent (a delegated tree usually has them).
            cgroup.cpu = cgroup.memory.clone();
            cgroup.pids = cgroup.memory.clone();
            cgroup.cpuacct = cgroup.memory.clone();
        }
        for dir in cgroup.dirs() {
            std::fs::create_dir_all(dir).map_err(|source| CgroupError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        if let Err(e) = cgroup.apply(limits) {
            cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Its distinct folders.
    fn dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = [&self.memory, &self.pids, &self.cpu, &self.cpuacct]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect();
        dirs.dedup();
        dirs
    }

    fn apply(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        if let Some(bytes) = limits.memory {
            let dir = need(&self.memory, "memory")?;
            if self.v2 {
                write(dir, "memory.max", &bytes.to_string())?;
                // No swap beyond it: the limit means what it says. A
                // kernel without swap accounting has no such file.
                let _ = write(dir, "memory.swap.max", "0");
            } else {
                write(dir, "memory.limit_in_bytes", &bytes.to_string())?;
                let _ = write(dir, "memory.memsw.limit_in_bytes", &bytes.to_string());
            }
        }
        if let Some(pids) = limits.pids {
            write(need(&self.pids, "pids")?, "pids.max", &pids.to_string())?;
        }
        if let Some(cpus) = limits.cpus {
            const PERIOD: u64 = 100_000;
            let quota = ((cpus * PERIOD as f64).round() as u64).max(1_000);
            let dir = need(&self.cpu, "cpu")?;
            if self.v2 {
                write(dir, "cpu.max", &format!("{quota} {PERIOD}"))?;
            } else {
                write(dir, "cpu.cfs_period_us", &PERIOD.to_string())?;
                write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` file of each of its folders (a process writing
    /// `0` there joins).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Moves process `pid` into the cgroup (every controller of it).
    ///
    /// # Errors
    ///
    /// A `cgroup.procs` that cannot be written; the error names it.
    pub fn add(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in self.dirs() {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// What its processes used so far.
    pub fn usage(&self) -> CgroupUsage {
        let read = |dir: &Option<PathBuf>, file: &str| {
            std::fs::read_to_string(dir.as_ref()?.join(file)).ok()
        };
        let field = |text: &str, key: &str| {
            text.lines().find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                (name == key).then(|| value.trim().parse::<u64>().ok())?
            })
        };
        let number = |text: Option<String>| text?.trim().parse::<u64>().ok();
        if self.v2 {
            let stat = read(&self.cpu, "cpu.stat").unwrap_or_default();
            let events = read(&self.memory, "memory.events").unwrap_or_default();
            CgroupUsage {
                peak_memory_bytes: number(read(&self.memory, "memory.peak")),
                cpu_user: field(&stat, "user_usec").map(Duration::from_micros),
                cpu_system: field(&stat, "system_usec").map(Duration::from_micros),
                oom_kills: field(&events, "oom_kill"),
            }
        } else {
            let oom = read(&self.memory, "memory.oom_control").unwrap_or_default();
            CgroupUsage {
                peak_memory_bytes: number(read(&self.memory, "memory.max_usage_in_bytes")),
                cpu_user: number(read(&self.cpuacct, "cpuacct.usage_user"))
                    .map(Duration::from_nanos),
                cpu_system: number(read(&self.cpuacct, "cpuacct.usage_sys"))
                    .map(Duration::from_nanos),
                oom_kills: field(&oom, "oom_kill"),
            }
        }
    }

    /// Starts a new peak-memory measurement (v1; v2 kernels from 6.12 let a
    /// writer reset `memory.peak`). Where it cannot be reset, the peak is
    /// the cgroup's since it was made.
    pub fn reset_peak(&self) {
        if let Some(dir) = &self.memory {
            let _ = match self.v2 {
                true => write(dir, "memory.peak", "0"),
                false => write(dir, "memory.max_usage_in_bytes", "0"),
            };
        }
    }

    /// The pids in it.
    pub fn pids(&self) -> Vec<u32> {
        let Some(dir) = self.memory.as_ref().or(self.pids.as_ref()) else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL to every process in it.
    pub fn kill(&self) {
        if self.v2
            && let Some(dir) = &self.memory
            && write(dir, "cgroup.kill", "1").is_ok()
        {
            return;
        }
        // v1 (or a v2 kernel before 5.14): one by one, until none is left
        // (a fork between the listing and the kill adds one).
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill(2) has no memory preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }

    /// Removes the folders subrt made (once empty; a cgroup with processes
    /// left is killed first).
    pub fn remove(&self) {
        if !self.owned {
            return;
        }
        if !self.pids().is_empty() {
            self.kill();
        }
        for dir in self.dirs() {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    _ => break,
                }
            }
        }
    }
}

fn need<'a>(dir: &'a Option<PathBuf>, controller: &str) -> Result<&'a Path, CgroupError> {
    dir.as_deref()
        .ok_or_else(|| CgroupError::NoController(controller.to_owned()))
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|source| CgroupError::Io { path, source })
}

/// Why a cgroup could not be made or set.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup filesystem is mounted.
    #[error("this host has no cgroup hierarchy mounted (no limits can be applied)")]
    NoHierarchy,
    /// The host's hierarchy lacks a controller a limit needs.
    #[error("the host's cgroups have no `{0}` controller")]
    NoController(String),
    /// A file of the hierarchy could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hybrid_host_uses_its_v1_controllers() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        assert_eq!(
            Hierarchy::from_mountinfo(mountinfo),
            Some(Hierarchy::V1 {
                memory: Some("/sys/fs/cgroup/memory".into()),
                pids: Some("/sys/fs/cgroup/pids".into()),
                cpu: Some("/sys/fs/cgroup/cpu".into()),
                cpuacct: Some("/sys/fs/cgroup/cpuacct".into()),
            })
        );
    }

    #[test]
    fn a_unified_host_uses_v2_and_comounted_v1_controllers_share_a_folder() {
        let unified = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(
            Hierarchy::from_mountinfo(unified),
            Some(Hierarchy::V2("/sys/fs/cgroup".into()))
        );
        let comounted =
            "32 31 0:29 / /sys/fs/cgroup/cpu\\054cpuacct rw - cgroup cgroup rw,cpu,cpuacct";
        let Some(Hierarchy::V1 { cpu, cpuacct, .. }) = Hierarchy::from_mountinfo(comounted) else {
            panic!("v1 expected");
        };
        assert_eq!(cpu, Some("/sys/fs/cgroup/cpu,cpuacct".into()));
        assert_eq!(cpu, cpuacct);
    }
}
