//! The dashboard at the size an operator runs it, in a real terminal (tmux),
//! timed from inside the process (`SUBRT_TUI_TRACE`):
//!
//! - loaded: 1,000 runs in the store (one of them a 1 GB log), 20 live runs
//!   of the dashboard's own (5 of them flooding stdout with `yes`); the
//!   cursor walks down the list (each row's output is read from its log,
//!   the 1 GB one included) and the help opens and closes;
//! - baseline, same run: the same keys on an empty store with no live run.
//!
//! Reported: the first frame, the frame with the store's runs listed, the
//! key latency (key read to the frame showing its effect: p50, p95, max),
//! and the dashboard's peak resident memory. Needs tmux.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: usize = 60;
const STORED: usize = 1000;
const BIG_LOG_BYTES: u64 = 1_000_000_000;

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
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Opens the dashboard on `dir`'s config in tmux, waits for the store's
/// runs and `live` running sessions, walks the list, and reads the trace.
fn measure(dir: &Path, live: usize) -> Measured {
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
    // Down the list (each row's output is read from its log), with the
    // help opened and closed now and then: at a brisk human pace.
    for i in 0..KEYS {
        let key = match i % 10 {
            4 => "?",
            5 => "Escape",
            _ => "j",
        };
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
    }
}

fn report(name: &str, m: &Measured) {
    println!(
        "{name:<9} first frame {:>6.1} ms  store listed {:>7.1} ms  keys {:>3}: p50 {:>5.1} ms  p95 {:>5.1} ms  max {:>5.1} ms  peak RSS {:>4} MB",
        m.first_frame.as_secs_f64() * 1e3,
        m.listed_frame.as_secs_f64() * 1e3,
        m.keys.len(),
        percentile(&m.keys, 0.5).as_secs_f64() * 1e3,
        percentile(&m.keys, 0.95).as_secs_f64() * 1e3,
        m.keys.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        m.peak_rss / 1_000_000,
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
    let baseline = measure(empty.path(), 0);

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
    let loaded = measure(dir.path(), 20);

    report("baseline", &baseline);
    report("loaded", &loaded);
    let p95 = |m: &Measured| percentile(&m.keys, 0.95).as_secs_f64();
    println!(
        "key p95 loaded / baseline: {:.2}x; peak RSS loaded / baseline: {:.2}x",
        p95(&loaded) / p95(&baseline),
        loaded.peak_rss as f64 / baseline.peak_rss.max(1) as f64
    );
}
