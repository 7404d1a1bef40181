//! `subrt run` on a Docker environment, and `subrt gc`, on the real binary
//! and daemon. Each test uses an environment name of its own, so `gc`
//! (filtered by `--env`) never touches another test's containers.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{containers_of, test_image};
use common::eventually;

/// A project with one Docker environment, and that environment's name.
struct Setup {
    project: common::Project,
    env: String,
}

impl std::ops::Deref for Setup {
    type Target = common::Project;

    fn deref(&self) -> &common::Project {
        &self.project
    }
}

impl Setup {
    /// A config with one Docker environment named `env`; `extra` goes into
    /// its `docker` table.
    fn new(env: &str, extra: &str) -> Option<Self> {
        let image = test_image()?;
        let project = common::Project::with_config(&format!(
            "[[environments]]\nname = \"{env}\"\ntype = \"docker\"\n\
             docker = {{ image = \"{image}\"{extra} }}\n"
        ));
        Some(Self {
            project,
            env: env.to_owned(),
        })
    }
}

#[test]
fn run_on_docker_behaves_like_local() {
    let Some(setup) = Setup::new("cli-like-local", "") else {
        return;
    };
    let out = setup.run(&["run", "--", r"printf 'a\377\000'; printf 'e\n' >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"a\xff\0");
    assert_eq!(out.stderr, b"e\n");
    assert_eq!(
        setup.run(&["run", "--", "kill -9 $$"]).status.code(),
        Some(137)
    );

    let mut child = setup
        .cmd(&["run", "--stdin", "-", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"through the container").unwrap();
    assert_eq!(
        child.wait_with_output().unwrap().stdout,
        b"through the container"
    );

    let started = Instant::now();
    let out = setup.run(&[
        "run",
        "--timeout",
        "1",
        "--",
        "sh -c 'sleep 300 & sleep 300'",
    ]);
    assert_eq!(out.status.code(), Some(124));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for run in setup.run_ids() {
        assert!(
            containers_of(&run, true).is_empty(),
            "run {run} left a container"
        );
    }
    let exported = setup.run(&["export", "last", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    assert_eq!(doc["commands"][0]["timed_out"], true);
}

#[test]
fn a_killed_subrt_takes_its_container_down_without_gc() {
    let Some(setup) = Setup::new("cli-owner-killed", "") else {
        return;
    };
    let mut child = setup
        .cmd(&["run", "--", "echo started; sleep 3000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"started\n");
    let run = setup.run_ids().pop().unwrap();
    assert_eq!(
        containers_of(&run, false).len(),
        1,
        "the run has its container"
    );
    child.kill().unwrap(); // SIGKILL: subrt cleans nothing up
    child.wait().unwrap();
    let killed = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || containers_of(&run, true)
            .is_empty()),
        "a container of run {run} is still there 10 s after its owner's SIGKILL"
    );
    eprintln!(
        "container gone {:?} after the owner's SIGKILL",
        killed.elapsed()
    );
}

#[test]
fn gc_removes_a_container_whose_owner_is_gone() {
    let Some(setup) = Setup::new("cli-gc-victim", "") else {
        return;
    };
    // What a daemon restart can leave: a labelled container with nobody
    // attached, whose owner (pid 1 started at tick 1: not this boot's) is gone.
    let run = format!("gc-test-{}", std::process::id());
    let host = subrt::runtime::owner::hostname();
    let made = Command::new("docker")
        .args(["run", "-d", "--label", "subrt.managed=true"])
        .arg("--label")
        .arg(format!("subrt.run={run}"))
        .arg("--label")
        .arg(format!("subrt.env={}", setup.env))
        .arg("--label")
        .arg(format!("subrt.owner={}/1/1", host.trim()))
        .args([test_image().unwrap(), "sleep", "300"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    assert_eq!(containers_of(&run, false).len(), 1);

    let dry = setup.run(&["gc", "--dry-run", "--env", &setup.env]);
    let listing = String::from_utf8_lossy(&dry.stdout);
    assert!(
        listing.contains("would remove") && listing.contains(&run),
        "{listing}"
    );
    assert_eq!(
        containers_of(&run, true).len(),
        1,
        "a dry run removes nothing"
    );

    let gc = setup.run(&["gc", "--env", &setup.env]);
    let report = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success(), "{gc:?}");
    assert!(
        report.contains("removed") && report.contains("owner gone"),
        "{report}"
    );
    assert!(containers_of(&run, true).is_empty(), "gc removed it");
}

#[test]
fn gc_leaves_containers_whose_owner_runs() {
    let Some(setup) = Setup::new("cli-gc-owned", "") else {
        return;
    };
    let mut child = setup
        .cmd(&["run", "--", "sleep 300"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        setup
            .run_ids()
            .first()
            .is_some_and(|run| containers_of(run, false).len() == 1)
    }));
    let gc = setup.run(&["gc", "--env", &setup.env]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("no leftover containers"),
        "{gc:?}"
    );
    let run = setup.run_ids().pop().unwrap();
    assert_eq!(containers_of(&run, false).len(), 1);
    // SAFETY: signalling a child we own; SIGTERM makes subrt clean up.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(
        containers_of(&run, true).is_empty(),
        "SIGTERM cleaned the container up"
    );
}

#[test]
fn a_kept_container_stays_until_gc_all() {
    let Some(setup) = Setup::new("cli-gc-kept", ", keep_container_after_clean = true") else {
        return;
    };
    assert!(setup.run(&["run", "--", "echo kept"]).status.success());
    let run = setup.run_ids().pop().unwrap();
    assert_eq!(containers_of(&run, true).len(), 1, "kept after cleanup");
    let gc = setup.run(&["gc", "--env", &setup.env]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("no leftover"),
        "plain gc removed a container kept on purpose: {gc:?}"
    );
    assert_eq!(containers_of(&run, true).len(), 1);
    let gc = setup.run(&["gc", "--all", "--env", &setup.env]);
    assert!(
        String::from_utf8_lossy(&gc.stdout).contains("removed"),
        "{gc:?}"
    );
    assert!(containers_of(&run, true).is_empty());
}

#[test]
fn specs_says_why_docker_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[[environments]]\nname = \"far\"\ntype = \"docker\"\n\
         docker = { image = \"x\", host = \"unix:///nonexistent/docker.sock\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_subrt"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("specs")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("unavailable") && listing.contains("/nonexistent/docker.sock"),
        "{listing}"
    );
}

#[test]
fn sigint_while_the_container_starts_ends_the_run_at_once() {
    let Some(setup) = Setup::new("cli-early-sigint", "") else {
        return;
    };
    for delay_ms in [100u64, 300] {
        let child = setup
            .cmd(&["run", "--", "sleep 30; echo late"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let sent = Instant::now();
        // SAFETY: signalling a child we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "SIGINT after {delay_ms} ms took {:?}",
            sent.elapsed()
        );
        assert_eq!(out.status.code(), Some(130), "after {delay_ms} ms: {out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("late"));
    }
    for run in setup.run_ids() {
        assert!(
            eventually(Duration::from_secs(5), || containers_of(&run, true)
                .is_empty()),
            "run {run} left a container"
        );
    }
}

#[test]
fn a_batch_of_twenty_docker_submissions_leaves_no_container() {
    let Some(setup) = Setup::new("cli-batch", "") else {
        return;
    };
    let dir = setup.dir.path();
    let mut text = format!("environment = \"{}\"\njobs = 4\n", setup.env);
    for i in 0..20 {
        std::fs::create_dir_all(dir.join(format!("s{i}"))).unwrap();
        text += &format!(
            "[[submissions]]\nid = \"s{i}\"\nworkdir = \"s{i}\"\nsetup = [\"echo setup >> setup.log\"]\n\
             commands = [\"cat setup.log\", \"exit 2\", \"true\"]\n"
        );
    }
    std::fs::write(dir.join("batch.toml"), text).unwrap();
    let out = setup.run(&["batch", "batch.toml", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 61, "60 commands and the summary");
    for i in 0..20 {
        let log = std::fs::read_to_string(dir.join(format!("s{i}/setup.log"))).unwrap();
        assert_eq!(log, "setup\n", "setup of s{i} ran once");
    }
    let batch = lines[60]["summary"]["batch"].as_str().unwrap();
    let ls = setup.run(&["ls", "--json", "--batch", batch]);
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r["containment"] == "container"));
    let labelled = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=subrt.label.batch={batch}"))
        .output()
        .unwrap();
    assert!(
        labelled.stdout.is_empty(),
        "containers of the batch are left: {}",
        String::from_utf8_lossy(&labelled.stdout)
    );
}

/// Which way a Docker session's commands start is said before (`specs`)
/// and kept after (the run log's header): through subrt's agent by
/// default, `docker exec` with `agent = false`.
#[test]
fn specs_and_the_run_log_say_how_commands_start() {
    for (extra, expected, listed) in [
        ("", "subrt-agent", "commands start through subrt-agent"),
        (
            ", agent = false",
            "docker exec (docker.agent = false)",
            "commands start through docker exec (docker.agent = false)",
        ),
    ] {
        let Some(setup) = Setup::new("cli-command-path", extra) else {
            return;
        };
        let specs = setup.run(&["specs"]);
        let specs = String::from_utf8_lossy(&specs.stdout);
        assert!(
            specs.contains(&format!("cli-command-path: {listed}")),
            "{specs}"
        );
        assert!(setup.run(&["run", "--", "true"]).status.success());
        let run = setup.run_ids().pop().unwrap();
        let index = setup
            .dir
            .path()
            .join("runs")
            .join(&run)
            .join("events.jsonl");
        let header = std::fs::read_to_string(index).unwrap();
        let header: serde_json::Value =
            serde_json::from_str(header.lines().next().unwrap()).unwrap();
        assert_eq!(header["commands_start"], expected, "{header}");
    }
}

/// The agent is written to `$TMPDIR/subrt-<uid>`, a folder of this user's
/// alone: one that anyone may write to (or a link in its place) could have
/// the agent swapped for a program that would run as every container's
/// init. subrt then does not put it there, and says why.
#[test]
fn the_agent_is_not_put_in_a_folder_others_may_write() {
    use std::os::unix::fs::PermissionsExt;
    let Some(setup) = Setup::new("cli-agent-folder", "") else {
        return;
    };
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    for bad in ["open to all", "a link"] {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join(format!("subrt-{uid}"));
        if bad == "a link" {
            let elsewhere = tmp.path().join("elsewhere");
            std::fs::create_dir(&elsewhere).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &folder).unwrap();
        } else {
            std::fs::create_dir(&folder).unwrap();
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let specs = setup
            .cmd(&["specs"])
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        let specs = String::from_utf8_lossy(&specs.stdout);
        assert!(
            specs.contains("commands start through docker exec")
                && specs.contains("is not a folder of this user's alone"),
            "{bad}: {specs}"
        );
        let agents: Vec<_> = std::fs::read_dir(&folder).unwrap().flatten().collect();
        assert!(
            agents.is_empty(),
            "{bad}: the agent was written there: {agents:?}"
        );
    }
}
