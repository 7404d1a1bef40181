//! The dashboard at the size an operator runs it, in a real terminal (tmux),
//! timed from inside the process (`SUBRT_TUI_TRACE`):
//!
//! - loaded: 1,000 runs in the store (one of them a 1 GB log), 20 live runs
//!   of the dashboard's own (5 of them flooding stdout with `yes`); the
//!   cursor walks down the list (each row's output is read from its log,
//!   the 1 GB one included) and the help opens and closes;
//! - baseline, same run: the same keys on an empty store with no live run.
//!
//! - history: a store of 100,000 finished runs (`HISTORY_RUNS`), written
//!   straight into the store's folder, opened twice (before any listing
//!   made the store's catalog, and after); a filter is typed and cleared;
//!   then the dashboard sits idle.
//!
//! Reported: the first frame, the frame with the store's runs listed, the
//! key latency (key read to the frame showing its effect: p50, p95, max),
//! the dashboard's peak resident memory, and (history) its CPU while idle.
//! Needs tmux.

#[path = "common/store.rs"]
mod synthetic_store;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: usize = 60;
const STORED: usize = 1000;
const BIG_LOG_BYTES: u64 = 1_000_000_000;
/// Runs in the history scenario, unless `HISTORY_RUNS` says.
const HISTORY_RUNS: usize = 100_000;
/// Down the list with the help opened and closed now and then.
const WALK: &[&str] = &["j", "j", "j", "j", "?", "Escape", "j", "j", "j", "j"];
/// A filter typed letter by letter, then cleared.
const FILTER: &[&str] = &[
    "/", "s", "u", "b", "9", "9", "BSpace", "BSpace", "BSpace", "BSpace", "BSpace", "Escape",
];

fn subrt(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
    cmd.arg("--config")
        .arg(dir.join("config.toml"))
        .current_dir(dir);
    cmd
}

fn tmux(server: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", server])
        .args(args)
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What one dashboard session measured.
struct Measured {
    first_frame: Duration,
    listed_frame: Duration,
    keys: Vec<Duration>,
    peak_rss: u64,
    /// CPU ticks (`utime + stime`) over 5 s with no key and nothing running.
    idle_ticks: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// `utime + stime` of process `pid`, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's closing parenthesis: utime is the 12th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Opens the dashboard on `dir`'s config in tmux, waits for the store's
/// runs and `live` running sessions, sends `keys` (round and round, `KEYS`
/// in all), and reads the trace.
fn measure(dir: &Path, live: usize, keys: &[&str]) -> Measured {
    let server = format!("subrt-bench-{}-{live}", std::process::id());
    let trace = dir.join("trace.txt");
    let _ = std::fs::remove_file(&trace);
    let command = format!(
        "cd {} && SUBRT_TUI_TRACE={} {} --config {}; sleep 60",
        dir.display(),
        trace.display(),
        env!("CARGO_BIN_EXE_subrt"),
        dir.join("config.toml").display()
    );
    tmux(
        &server,
        &[
            "new-session",
            "-d",
            "-s",
            &server,
            "-x",
            "160",
            "-y",
            "45",
            &command,
        ],
    );
    let read_trace = || std::fs::read_to_string(&trace).unwrap_or_default();
    // A store of 100,000 runs without a catalog is listed from every index.
    let deadline = Instant::now() + Duration::from_secs(180);
    let running = format!("{live} running");
    while !(read_trace().contains("listed_frame_us")
        && (live == 0 || tmux(&server, &["capture-pane", "-p"]).contains(&running)))
    {
        assert!(Instant::now() < deadline, "the dashboard never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2)); // the floods run meanwhile
    let pid = Command::new("pgrep")
        .args([
            "-f",
            &format!("subrt --config {}", dir.join("config.toml").display()),
        ])
        .output()
        .unwrap();
    let pid = String::from_utf8(pid.stdout)
        .unwrap()
        .lines()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "subrt")
        })
        .expect("the dashboard's pid")
        .to_owned();
    let idle_ticks = match live {
        0 => {
            let before = cpu_ticks(&pid);
            std::thread::sleep(Duration::from_secs(5));
            cpu_ticks(&pid) - before
        }
        _ => 0,
    };
    // At a brisk human pace.
    for key in keys.iter().cycle().take(KEYS) {
        tmux(&server, &["send-keys", "-t", &server, key]);
        std::thread::sleep(Duration::from_millis(120));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    tmux(&server, &["send-keys", "-t", &server, "q"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&server, &["send-keys", "-t", &server, "y"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux(&server, &["kill-server"]);

    let text = read_trace();
    let micros = |key: &str| -> Vec<Duration> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .map(Duration::from_micros)
            .collect()
    };
    let mut keys = micros("key_us ");
    keys.sort();
    Measured {
        first_frame: micros("first_frame_us ")[0],
        listed_frame: micros("listed_frame_us ")[0],
        keys,
        peak_rss,
        idle_ticks,
    }
}

fn report(name: &str, m: &Measured) {
    println!(
        "{name:<16} first frame {:>6.1} ms  store listed {:>7.1} ms  keys {:>3}: p50 {:>5.1} ms  p95 {:>5.1} ms  max {:>5.1} ms  peak RSS {:>4} MB  idle {} ticks in 5 s",
        m.first_frame.as_secs_f64() * 1e3,
        m.listed_frame.as_secs_f64() * 1e3,
        m.keys.len(),
        percentile(&m.keys, 0.5).as_secs_f64() * 1e3,
        percentile(&m.keys, 0.95).as_secs_f64() * 1e3,
        m.keys.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        m.peak_rss / 1_000_000,
        m.idle_ticks,
    );
}

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("the dashboard bench needs tmux");
        return;
    }
    // The baseline: nothing stored, nothing running.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(
        empty.path().join("config.toml"),
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n",
    )
    .unwrap();
    let baseline = measure(empty.path(), 0, WALK);

    let dir = tempfile::tempdir().unwrap();
    let plain = "[[environments]]\nname = \"local\"\ntype = \"local\"\n";
    std::fs::write(dir.path().join("config.toml"), plain).unwrap();
    // The store: 999 short runs from one batch, then the 1 GB log.
    let mut batch = String::from("environment = \"local\"\n");
    for i in 0..STORED - 1 {
        let command = if i % 10 == 3 {
            "echo failing; exit 1"
        } else {
            "echo ok"
        };
        batch += &format!(
            "[[submissions]]\nid = \"s{i:04}\"\nworkdir = \".\"\ncommands = [{command:?}]\n"
        );
    }
    std::fs::write(dir.path().join("batch.toml"), batch).unwrap();
    let started = Instant::now();
    let out = subrt(dir.path())
        .args(["batch", "-j", "2", "batch.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let big = format!("yes 'a line of the big log, 40 bytes..' | head -c {BIG_LOG_BYTES}");
    let out = subrt(dir.path())
        .args(["run", "--", &big])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    eprintln!("store of {STORED} runs made in {:?}", started.elapsed());

    // 20 live runs of the dashboard's own, 5 of them floods.
    let mut startup: Vec<String> = (0..15).map(|i| format!("sleep {}", 600 + i)).collect();
    startup.extend((0..5).map(|i| format!("yes 'flood {i}: the quick brown fox jumps'")));
    let list: Vec<String> = startup.iter().map(|c| format!("{c:?}")).collect();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("{plain}[ui]\nstartup = [{}]\n", list.join(", ")),
    )
    .unwrap();
    let loaded = measure(dir.path(), 20, WALK);

    // History: finished runs only, many of them.
    let history = tempfile::tempdir().unwrap();
    std::fs::write(history.path().join("config.toml"), plain).unwrap();
    let runs: usize = std::env::var("HISTORY_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(HISTORY_RUNS);
    let started = Instant::now();
    let store = history.path().join("runs");
    for n in 0..runs {
        synthetic_store::make_run(&store, n, 100, BIG_LOG_BYTES);
    }
    eprintln!("store of {runs} runs made in {:?}", started.elapsed());
    let cold = measure(history.path(), 0, FILTER);
    let warm = measure(history.path(), 0, FILTER);

    report("baseline", &baseline);
    report("loaded", &loaded);
    report(&format!("{runs}, no catalog"), &cold);
    report(&format!("{runs}"), &warm);
    let p95 = |m: &Measured| percentile(&m.keys, 0.95).as_secs_f64();
    println!(
        "key p95 loaded / baseline: {:.2}x; peak RSS loaded / baseline: {:.2}x",
        p95(&loaded) / p95(&baseline),
        loaded.peak_rss as f64 / baseline.peak_rss.max(1) as f64
    );
}
