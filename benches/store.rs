//! `subrt ls` over a big store: 10,000 runs (`STORE_RUNS=100000` for a
//! benchmark's history), one of them with a 2 GB stdout, against a baseline
//! taken in the same run (`find` reading every index). `ls` reads indexes
//! and the ends of files, never the streams.

#[path = "common/store.rs"]
mod synthetic_store;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs in the store unless `STORE_RUNS` says.
const RUNS: usize = 10_000;
const BIG: u64 = 2_000_000_000;

/// Wall time and peak RSS (KiB) of `cmd`.
fn measure(cmd: &mut Command) -> (Duration, i64) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into valid locals.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    let _ = child.try_wait();
    assert_eq!(std::process::ExitStatus::from_raw(status).code(), Some(0));
    (took, usage.ru_maxrss)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("runs");
    let runs: usize = std::env::var("STORE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RUNS);
    for n in 0..runs {
        synthetic_store::make_run(&store, n, if n == runs / 2 { BIG } else { 100 }, BIG);
    }
    std::fs::write(
        dir.path().join("config.toml"),
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n",
    )
    .unwrap();
    for args in [&["ls"][..], &["ls", "--json"][..]] {
        let mut times = Vec::new();
        let mut baselines = Vec::new();
        let mut rss = 0;
        for _ in 0..5 {
            let (baseline, _) = measure(Command::new("sh").arg("-c").arg(format!(
                "find {} -name events.jsonl -exec cat {{}} + > /dev/null",
                store.display()
            )));
            baselines.push(baseline);
            let (took, peak) = measure(
                Command::new(env!("CARGO_BIN_EXE_subrt"))
                    .arg("--config")
                    .arg(dir.path().join("config.toml"))
                    .args(args),
            );
            times.push(took);
            rss = rss.max(peak);
        }
        // The first listing reads every index and writes the store's
        // catalog; the others read the catalog.
        let first = times[0];
        times.sort();
        baselines.sort();
        let (took, baseline) = (times[2], baselines[2]);
        println!(
            "subrt {} over {runs} runs (one of 2 GB): {:.3} s (median of 5; the first, \
             with no catalog yet: {:.3} s), peak RSS {} MiB; \
             baseline (find + cat of every index) {:.3} s; ratio {:.2}",
            args.join(" "),
            took.as_secs_f64(),
            first.as_secs_f64(),
            rss / 1024,
            baseline.as_secs_f64(),
            baseline.as_secs_f64() / took.as_secs_f64()
        );
    }
}
