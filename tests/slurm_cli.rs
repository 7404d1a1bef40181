//! `subrt` on the Slurm cluster of `assets/slurm/cluster.sh`: what is left
//! after a SIGKILLed `subrt run`, a batch spread over the nodes, `gc`.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::slurm::{cluster, jobs_named};
use common::{Project, escapes, eventually, live_processes};

const CONFIG: &str = "[[environments]]\nname = \"cluster\"\ntype = \"slurm\"\n\
    environment = { include_os_env = true }\nslurm = { time = \"10\" }\n";

/// The cluster's InactiveLimit (cluster.sh's default) and some slack.
const INACTIVE_LIMIT: Duration = Duration::from_secs(20 + 10);

#[test]
fn a_sigkilled_subrt_run_leaves_nothing_on_the_cluster() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    let (line, needles) = escapes(false);
    let mut child = project
        .cmd(&["run", "--", &line])
        .stdout(Stdio::piped())
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
    let run = project.run_ids().pop().unwrap();
    assert_eq!(jobs_named(&run).len(), 1, "the run has its job");
    assert!(needles.iter().all(|n| !live_processes(n).is_empty()));
    child.kill().unwrap(); // SIGKILL: subrt cleans nothing up
    child.wait().unwrap();
    let killed = Instant::now();
    for needle in &needles {
        assert!(
            eventually(Duration::from_secs(5), || live_processes(needle).is_empty()),
            "`{needle}` runs on a node after its owner's SIGKILL"
        );
    }
    assert!(
        eventually(INACTIVE_LIMIT, || jobs_named(&run).is_empty()),
        "job of run {run} still queued: {:?}",
        jobs_named(&run)
    );
    eprintln!(
        "processes and job gone {:?} after the SIGKILL",
        killed.elapsed()
    );
}

/// `batch.toml`: `count` submissions `s0`... on the cluster, each running
/// `command` in a folder of its own.
fn write_batch(project: &Project, count: usize, command: &str) {
    let mut batch = String::from("environment = \"cluster\"\n");
    for n in 0..count {
        std::fs::create_dir_all(project.dir.path().join(format!("s{n}"))).unwrap();
        batch.push_str(&format!(
            "[[submissions]]\nid = \"s{n}\"\nworkdir = \"s{n}\"\ncommands = [\"{command}\"]\n"
        ));
    }
    std::fs::write(project.dir.path().join("batch.toml"), batch).unwrap();
}

#[test]
fn a_batch_spreads_over_the_three_nodes() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    write_batch(&project, 30, "sleep 0.3; echo $SLURMD_NODENAME");
    let out = project.run(&["batch", "batch.toml", "-j", "6", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut nodes = BTreeSet::new();
    for log in project.logs() {
        let index = std::fs::read_to_string(log.join("events.jsonl")).unwrap();
        let header: serde_json::Value =
            serde_json::from_str(index.lines().next().unwrap()).unwrap();
        let node = header["slurm_job"]["node"].as_str().unwrap().to_owned();
        let printed = std::fs::read_to_string(log.join("stdout")).unwrap();
        assert_eq!(
            printed.trim(),
            node,
            "the log names the node the command ran on"
        );
        nodes.insert(node);
    }
    assert_eq!(project.logs().len(), 30);
    assert_eq!(
        nodes,
        BTreeSet::from(["n1".to_owned(), "n2".to_owned(), "n3".to_owned()]),
        "the batch used every node"
    );
}

/// The job of every run of the store, from its log's header.
fn jobs_of_runs(project: &Project) -> Vec<String> {
    project
        .logs()
        .iter()
        .filter_map(|log| {
            let index = std::fs::read_to_string(log.join("events.jsonl")).ok()?;
            let header: serde_json::Value = serde_json::from_str(index.lines().next()?).ok()?;
            Some(header["slurm_job"]["job_id"].as_str()?.to_owned())
        })
        .collect()
}

/// Whether `job` is queued or running (or on its way out).
fn job_listed(job: &str) -> bool {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-o", "%i", "-j", job])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout).trim() == job
}

/// Asserts that every one of `jobs` leaves the queue within `limit` of
/// `event`.
fn assert_gone<'a>(jobs: impl IntoIterator<Item = &'a String>, limit: Duration, event: &str) {
    for job in jobs {
        assert!(
            eventually(limit, || !job_listed(job)),
            "job {job} is still there {limit:?} after {event}"
        );
    }
}

#[test]
fn a_batch_hands_allocations_on_and_gives_them_back_at_its_end() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    write_batch(&project, 12, "echo $SLURM_JOB_ID");
    let out = project.run(&["batch", "batch.toml", "-j", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = jobs_of_runs(&project);
    assert_eq!(jobs.len(), 12);
    for log in project.logs() {
        let printed = std::fs::read_to_string(log.join("stdout")).unwrap();
        assert!(jobs.contains(&printed.trim().to_owned()), "{printed}");
    }
    let distinct: BTreeSet<&String> = jobs.iter().collect();
    // Two at a time: two allocations, and one more now and then should a
    // step take more than a second to end.
    assert!(
        distinct.len() <= 4,
        "12 submissions, two at a time, used {} jobs: {distinct:?}",
        distinct.len()
    );
    assert_gone(distinct, Duration::from_secs(5), "the batch's end");
}

#[test]
fn a_sigkilled_batch_leaves_no_allocation_it_kept_for_later() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    let sleep = common::unique_sleep();
    for id in ["quick", "slow"] {
        std::fs::create_dir_all(project.dir.path().join(id)).unwrap();
    }
    let batch = format!(
        "environment = \"cluster\"\n\
         [[submissions]]\nid = \"quick\"\nworkdir = \"quick\"\ncommands = [\"true\"]\n\
         [[submissions]]\nid = \"slow\"\nworkdir = \"slow\"\ncommands = [\"sleep {sleep}\"]\n"
    );
    std::fs::write(project.dir.path().join("batch.toml"), batch).unwrap();
    let mut child = project
        .cmd(&["batch", "batch.toml", "-j", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The quick one done, its allocation kept (no submission is left to
    // take it), the slow one running.
    let quick_done = || {
        project.logs().iter().any(|log| {
            std::fs::read_to_string(log.join("events.jsonl")).is_ok_and(|index| {
                index.contains("\"submission\":\"quick\"") && index.contains("\"end\"")
            })
        })
    };
    assert!(eventually(Duration::from_secs(30), || quick_done()
        && !live_processes(&format!("sleep {sleep}")).is_empty()));
    let jobs = jobs_of_runs(&project);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(
        jobs.iter().all(|job| job_listed(job)),
        "both jobs are held: {jobs:?}"
    );
    child.kill().unwrap(); // SIGKILL: nothing is cleaned up nor given back
    child.wait().unwrap();
    assert!(common::gone(&format!("sleep {sleep}")));
    assert_gone(&jobs, Duration::from_secs(10), "the batch's SIGKILL");
}

/// On a cluster that gives each job a private `/tmp` (here the config's
/// answer says `job_container/tmpfs`), a handed-on job would share it
/// between submissions: each gets a job of its own, and a note says why.
#[test]
fn a_batch_hands_nothing_on_where_each_job_has_a_tmp_of_its_own() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    write_batch(&project, 4, "true");
    let shim = shim("scontrol", |real| {
        format!(
            "#!/bin/sh\n{real} \"$@\" | \
             sed 's|^JobContainerType .*|JobContainerType = job_container/tmpfs|'\n"
        )
    });
    let out = project
        .cmd(&["batch", "batch.toml", "-j", "1"])
        .env("PATH", path_with(shim.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs: BTreeSet<String> = jobs_of_runs(&project).into_iter().collect();
    assert_eq!(jobs.len(), 4, "a job each: {jobs:?}");
    let log = &project.logs()[0];
    let index = std::fs::read_to_string(log.join("events.jsonl")).unwrap();
    assert!(index.contains("job_container/tmpfs"), "{index}");
}

#[test]
fn gc_cancels_a_job_whose_owner_is_gone() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    // A job as a subrt process that died without a trace would leave it:
    // named like subrt's, its owner a process of this host that is gone.
    let name = format!("subrt-cluster-gcvictim{}", std::process::id());
    let comment = format!(
        "subrt owner={}/999999/12345",
        subrt::runtime::owner::hostname()
    );
    let made = std::process::Command::new("salloc")
        .args(["--no-shell", "-N1", "-Q", "--time=5"])
        .arg(format!("--job-name={name}"))
        .arg(format!("--comment={comment}"))
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(jobs_named(&name).len(), 1);
    let dry = project.run(&["gc", "--dry-run"]);
    let said = String::from_utf8_lossy(&dry.stdout);
    assert!(
        said.contains("would cancel slurm job") && said.contains(&name),
        "{said}"
    );
    assert_eq!(jobs_named(&name).len(), 1, "a dry run cancels nothing");
    let out = project.run(&["gc"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("cancelled slurm job") && said.contains(&name),
        "{said}"
    );
    assert!(eventually(Duration::from_secs(10), || jobs_named(&name)
        .iter()
        .all(|j| j.contains("COMPLETING"))));
}

#[test]
fn specs_says_the_cluster_answers_and_what_contains_a_session() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    let out = project.run(&["specs"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let line = listing.lines().find(|l| l.starts_with("cluster ")).unwrap();
    assert!(
        line.contains("slurm-step") && line.contains("ready"),
        "{listing}"
    );
    let broken = Project::with_config(&CONFIG.replace(
        "time = \"10\"",
        "time = \"10\", partition = \"gpu-nowhere\"",
    ));
    let listing = String::from_utf8_lossy(&broken.run(&["specs"]).stdout).into_owned();
    assert!(listing.contains("no partition `gpu-nowhere`"), "{listing}");
}

/// A folder with a script named `program` that stands for the real one:
/// `script` is its body, given the real one's path. The real one stays
/// where `which` finds it.
fn shim(program: &str, script: impl FnOnce(&str) -> String) -> tempfile::TempDir {
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(program);
    std::fs::write(&path, script(real.trim())).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// A folder with an `srun` that runs the real one with its stdout passed
/// through `relay` (a shell pipeline stage): a link that is slow, or lost,
/// for one stream.
fn srun_whose_stdout_goes_through(relay: &str) -> tempfile::TempDir {
    shim("srun", |real| {
        format!("#!/bin/bash\nexec {real} \"$@\" > >({relay})\n")
    })
}

fn path_with(dir: &std::path::Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    std::env::join_paths(dirs).unwrap()
}

/// srun forwards stdout and stderr apart: the command's status (on stderr)
/// can come while the tail of its stdout is still on the way. Here stdout
/// comes half a second late; the run waits for it and has all of it.
#[test]
fn stdout_that_comes_after_the_status_is_read_whole() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    let shim = srun_whose_stdout_goes_through("sleep 0.5; exec cat");
    let out = project
        .cmd(&[
            "run",
            "--",
            "head -c 70000 /dev/zero | tr '\\0' x; echo done >&2",
        ])
        .env("PATH", path_with(shim.path()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(out.stdout.len(), 70_000, "stderr: {stderr}");
    assert!(
        out.stdout.iter().all(|&b| b == b'x'),
        "no record left in it"
    );
}

/// A step whose stdout never reaches subrt (a link that drops it): the
/// command exited 0, but its output is not known whole, so the run is not a
/// success and says why.
#[test]
fn stdout_cut_short_is_never_a_success() {
    if !cluster() {
        return;
    }
    let project = Project::with_config(CONFIG);
    let shim = srun_whose_stdout_goes_through("exec cat >/dev/null");
    let out = project
        .cmd(&["run", "--", "echo hello"])
        .env("PATH", path_with(shim.path()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("output lost"), "stderr: {stderr}");
    let run = &project.run_ids()[0];
    let listed = project.run(&["ls", "--json"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(run.as_str()) && listed.contains("output lost"),
        "{listed}"
    );
}
