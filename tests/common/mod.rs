//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod docker;
pub mod slurm;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The folder of this test process's workspaces, removed when it exits.
static WORKSPACES: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_workspaces() {
    if let Some(root) = WORKSPACES.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

/// Whether `SUBRT_SKIP` (a comma-separated list: `slurm`, `docker`) asks
/// to skip the tests of `part`, even with `CI` set.
pub fn skipped(part: &str) -> bool {
    let skip = std::env::var("SUBRT_SKIP").unwrap_or_default();
    let asked = skip.split(',').any(|p| p.trim() == part);
    if asked {
        static SAID: OnceLock<()> = OnceLock::new();
        SAID.get_or_init(|| eprintln!("skipping the {part} tests: SUBRT_SKIP={skip}"));
    }
    asked
}

/// A fresh folder that outlives the test that asks for it (a runtime may
/// use it until the process ends) and is removed when the test process
/// exits: the suite leaves no temporary folder behind.
pub fn workspace() -> PathBuf {
    let root = WORKSPACES.get_or_init(|| {
        let root = tempfile::Builder::new()
            .prefix("subrt-tests-")
            .tempdir()
            .unwrap()
            .keep();
        // SAFETY: registers a plain function; it runs at exit(3), after
        // the tests, and only removes a folder.
        unsafe { libc::atexit(remove_workspaces) };
        root
    });
    tempfile::tempdir_in(root).unwrap().keep()
}

/// The `subrt` binary built for these tests, with no config of the caller's
/// and its built-in store in a temporary folder.
pub fn subrt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
    cmd.current_dir(std::env::temp_dir()).env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("subrt-test-state"),
    );
    cmd
}

/// A `sleep` duration no other test (or test process) uses, so a process
/// scan finds only the processes of the test that asks.
pub fn unique_sleep() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    100_000 + (std::process::id() % 40_000) * 20 + n % 20
}

/// A command line that leaves processes behind in every way a submission
/// might: a background child, a double fork through `setsid`, and `nohup`;
/// then it says `started` and sleeps in the foreground (unless `finish`).
/// Returns it with the needles that find each process.
pub fn escapes(finish: bool) -> (String, Vec<String>) {
    let n: Vec<u32> = (0..4).map(|_| unique_sleep()).collect();
    let quiet = ">/dev/null 2>&1";
    let line = format!(
        "sleep {a} {quiet} & setsid sh -c 'sleep {b} {quiet} &'; nohup sleep {c} {quiet} & echo started{tail}",
        a = n[0],
        b = n[1],
        c = n[2],
        tail = if finish {
            String::new()
        } else {
            format!("; sleep {}", n[3])
        },
    );
    let needles = n[..if finish { 3 } else { 4 }]
        .iter()
        .map(|n| format!("sleep {n}"))
        .collect();
    (line, needles)
}

/// Host processes, not zombies, whose command line contains `needle`.
pub fn live_processes(needle: &str) -> Vec<String> {
    live_pids(needle)
        .into_iter()
        .map(|(_, cmdline)| cmdline)
        .collect()
}

/// The pids and command lines of host processes, not zombies, whose command
/// line contains `needle`.
pub fn live_pids(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        if state == Some("Z") {
            continue;
        }
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Waits up to `limit` for `check` to hold; true if it did.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True once no live process's command line contains `needle`, waiting
/// up to 2 s (SIGKILL is asynchronous).
pub fn gone(needle: &str) -> bool {
    eventually(Duration::from_secs(2), || live_processes(needle).is_empty())
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A temporary folder with a `config.toml`, and `subrt` run against it
/// (its store is the folder's `runs/`).
pub struct Project {
    /// The folder; removed on drop.
    pub dir: tempfile::TempDir,
}

impl Project {
    /// A folder whose `config.toml` holds `config`.
    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self { dir }
    }

    /// `subrt --config <the config> ARGS`, in the folder.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
        cmd.arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs `subrt ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args).output().unwrap()
    }

    /// The run logs in the store, oldest first.
    pub fn logs(&self) -> Vec<std::path::PathBuf> {
        // Not the hidden folder of a run being made.
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The run ids in the store, oldest first.
    pub fn run_ids(&self) -> Vec<String> {
        self.logs()
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    }
}

/// Memory a harness holds (a model, a dataset): `bytes` written once, in
/// small pages (a huge page would hide a copy-on-write behind one fault).
#[allow(dead_code)]
pub struct HeldMemory {
    pages: Vec<u8>,
}

#[allow(dead_code)]
impl HeldMemory {
    pub fn new(bytes: usize) -> Self {
        let mut pages: Vec<u8> = Vec::with_capacity(bytes);
        let start = pages.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(4096);
        // SAFETY: advice on whole pages of memory this Vec owns.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                (bytes - (aligned - start)) / 4096 * 4096,
                libc::MADV_NOHUGEPAGE,
            );
        }
        pages.resize(bytes, 1);
        Self { pages }
    }

    /// Page faults of this thread while it writes a byte of each page: ~0
    /// when the pages are this process's alone, one a page after a `fork`
    /// made them copy-on-write.
    pub fn faults_to_write(&mut self) -> i64 {
        let faults = || {
            // SAFETY: rusage is plain data, filled by the call.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: writes into a valid rusage.
            unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut usage) };
            usage.ru_minflt
        };
        let before = faults();
        for page in self.pages.chunks_mut(4096) {
            page[0] = page[0].wrapping_add(1);
        }
        std::hint::black_box(&self.pages);
        faults() - before
    }

    pub fn pages(&self) -> i64 {
        (self.pages.len() / 4096) as i64
    }
}
