//! `subrt batch` against the loops a harness would write without it,
//! measured in the same run:
//!
//! - 1,000 local submissions of `true` (`-j 1`): subrt's own cost per
//!   submission (wall time less the commands' own, from `--json`) against a
//!   shell loop of `subrt run -- true` (process start included);
//! - 100 Docker submissions of `true` with `-j 4` against `xargs -P 4` of
//!   `docker run --rm IMAGE true` (needs the daemon; builds the test image).

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod test_image;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_batch(dir: &Path, n: usize, environment: &str) -> std::path::PathBuf {
    let mut text = format!("environment = \"{environment}\"\n");
    for i in 0..n {
        text +=
            &format!("[[submissions]]\nid = \"s{i}\"\nworkdir = \".\"\ncommands = [\"true\"]\n");
    }
    let path = dir.join(format!("batch-{environment}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn subrt(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_subrt"));
    cmd.arg("--config")
        .arg(dir.join("config.toml"))
        .current_dir(dir);
    cmd
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let image = test_image::test_image();
    let mut config = "[[environments]]\nname = \"local\"\ntype = \"local\"\n".to_owned();
    if let Some(image) = image {
        config += &format!(
            "[[environments]]\nname = \"docker\"\ntype = \"docker\"\ndocker = {{ image = \"{image}\" }}\n"
        );
    }
    std::fs::write(dir.path().join("config.toml"), config).unwrap();

    let n = 1000;
    let file = write_batch(dir.path(), n, "local");
    let started = Instant::now();
    let out = subrt(dir.path())
        .args(["batch", "-j", "1", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let wall = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commands: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["elapsed"].as_f64())
        .sum();
    let own = (wall.as_secs_f64() - commands) / n as f64;
    let started = Instant::now();
    for _ in 0..n {
        let status = subrt(dir.path())
            .args(["run", "--", "true"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let looped = started.elapsed().as_secs_f64() / n as f64;
    println!(
        "{n} local submissions of `true`, -j 1: {:.2} ms each in all, subrt's own {:.2} ms; \
         shell loop of `subrt run`: {:.2} ms each; ratio {:.2}",
        wall.as_secs_f64() * 1e3 / n as f64,
        own * 1e3,
        looped * 1e3,
        looped / (wall.as_secs_f64() / n as f64)
    );

    let Some(image) = image else {
        println!("no Docker daemon: the Docker half is skipped");
        return;
    };
    let n = 100;
    let file = write_batch(dir.path(), n, "docker");
    let started = Instant::now();
    let out = subrt(dir.path())
        .args(["batch", "-j", "4"])
        .arg(&file)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let batch: Duration = started.elapsed();
    assert!(out.success());
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {n} | xargs -P 4 -I{{}} docker run --rm {image} true"
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let xargs = started.elapsed();
    println!(
        "{n} Docker submissions of `true`, -j 4: {:.2} s; xargs -P 4 docker run --rm: {:.2} s; ratio {:.2}",
        batch.as_secs_f64(),
        xargs.as_secs_f64(),
        xargs.as_secs_f64() / batch.as_secs_f64()
    );
}
