//! Faults of the Slurm cluster under a running command, on the cluster of
//! `assets/slurm/cluster.sh`: a SIGKILLed `slurmd`, the whole cluster taken
//! down. The run ends failed, with the reason, within the bound, never as
//! a success; nothing of it is left. These tests break the cluster on
//! purpose and bring it back, one at a time.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::slurm::cluster;
use common::{Project, eventually, live_processes, unique_sleep};
use subrt::runtime::slurm_health::BOUND;

/// One fault at a time: each breaks the cluster every other test uses.
static CLUSTER: Mutex<()> = Mutex::new(());

const CONFIG: &str = "[[environments]]\nname = \"n2\"\ntype = \"slurm\"\n\
    environment = { include_os_env = true }\nslurm = { time = \"10\", nodes = \"n2\" }\n";

fn cluster_sh(verb: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/slurm/cluster.sh");
    let status = Command::new(script).arg(verb).status().unwrap();
    assert!(status.success(), "cluster.sh {verb} failed");
}

/// `subrt run` of a command that prints `started` and sleeps on node n2;
/// returns the child once `started` came, and the sleep's needle.
fn start_sleeper(project: &Project) -> (std::process::Child, String) {
    let n = unique_sleep();
    let mut child = project
        .cmd(&["run", "--", &format!("echo started; sleep {n}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"started\n");
    (child, format!("sleep {n}"))
}

/// Waits for `child` up to `limit`; its exit code and stderr.
fn wait(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("subrt run did not end within {limit:?} of the fault");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_run(project: &Project) -> serde_json::Value {
    let out = project.run(&["ls", "--json", "-n", "1"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_sigkilled_slurmd_ends_the_run_failed_within_the_bound() {
    if !cluster() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::with_config(CONFIG);
    let (child, needle) = start_sleeper(&project);
    let killed = Command::new("pkill")
        .args(["-9", "-f", "slurmd -f /run/subrt-slurm/slurm.conf -N n2"])
        .status()
        .unwrap();
    assert!(killed.success(), "n2's slurmd was running");
    let fault = Instant::now();
    let (code, stderr) = wait(child, BOUND);
    eprintln!("run ended {:?} after the fault: {stderr}", fault.elapsed());
    assert_ne!(
        code,
        Some(0),
        "a command whose status never came is no success"
    );
    let run = last_run(&project);
    let lost = run["status_lost"].as_str().unwrap_or_default();
    assert!(
        lost.starts_with("node failed") || lost.starts_with("status lost"),
        "{run}"
    );
    assert_eq!(run["state"], "finished", "{run}");
    assert_eq!(run["status"], "status_lost", "{run}");
    assert!(stderr.contains("exit status is not known"), "{stderr}");
    // The node comes back: its slurmd ends what its job left.
    cluster_sh("up");
    assert!(
        eventually(Duration::from_secs(30), || live_processes(&needle)
            .is_empty()),
        "`{needle}` runs on after n2 came back"
    );
}

#[test]
fn the_cluster_taken_down_ends_the_run_and_leaves_nothing() {
    if !cluster() {
        return;
    }
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let project = Project::with_config(CONFIG);
    let (child, needle) = start_sleeper(&project);
    cluster_sh("down");
    let fault = Instant::now();
    let (code, stderr) = wait(child, BOUND);
    eprintln!("run ended {:?} after the fault: {stderr}", fault.elapsed());
    let left = live_processes(&needle);
    let stepds = live_processes("slurmstepd");
    let cgroups: Vec<_> = ["freezer", "memory", "cpuset", "devices", "pids"]
        .iter()
        .flat_map(|c| (1..=3).map(move |n| format!("/sys/fs/cgroup/{c}/slurm_n{n}")))
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    let namespaces = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("subrt-slurm"))
                .count()
        })
        .unwrap_or(0);
    cluster_sh("up");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(left.is_empty(), "the command ran on: {left:?}");
    assert!(stepds.is_empty(), "stepds left: {stepds:?}");
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    assert_eq!(namespaces, 0, "network namespaces left");
    let run = last_run(&project);
    assert!(run["status_lost"].is_string(), "{run}");
}
