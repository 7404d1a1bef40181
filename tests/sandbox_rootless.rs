//! The sandbox for a user who is not root: each session in a user
//! namespace of its own (see `runtime/sandbox`).
//!
//! Run as root, a test marked so runs itself again as uid 1000 (through
//! `setpriv`, the test binary with `--exact` and its own name) and passes
//! when that run passes, so that the runtime contract and the escape
//! attempts below run unprivileged for real; run as another user, the tests
//! run as that user. The tests of the CLI start `subrt` as uid 1000
//! themselves.

mod common;
mod contract;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use subrt::runtime::{ExecRequest, LaunchSpec, SubmissionRuntime, spawn_runtime};
use subrt::spec::{EnvironmentSpec, Isolation, Limits};

/// The unprivileged user the tests run as when started as root.
const USER: u32 = 1000;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this user may make a user namespace. Said when not; with `CI`
/// set, a refusal fails the test instead (the machine must allow them).
fn user_namespaces() -> bool {
    let allowed = Command::new("unshare")
        .args(["--user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        assert!(
            std::env::var_os("CI").is_none(),
            "this kernel refuses user namespaces to uid {}",
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() }
        );
        eprintln!("skipped: this kernel refuses user namespaces to this user");
    }
    allowed
}

/// As root: runs the calling test again as uid 1000 and asserts that it
/// passed there; true then (the caller returns). As another user: false
/// (the caller goes on, unprivileged already).
fn ran_as_user() -> bool {
    if !is_root() {
        return false;
    }
    let name = std::thread::current()
        .name()
        .expect("libtest names a test's thread after it")
        .to_owned();
    run_unprivileged(&[&name], &[]);
    true
}

/// Runs the tests `names` of this binary unprivileged (as uid 1000 when
/// this is root, else as this user) with `env` added, and asserts that
/// each passed.
fn run_unprivileged(names: &[&str], env: &[(&str, &str)]) {
    let test = std::env::current_exe().unwrap();
    let mut command = match is_root() {
        true => {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args([
                    format!("--reuid={USER}"),
                    format!("--regid={USER}"),
                    "--clear-groups".into(),
                ])
                .arg(test)
                .env("HOME", "/tmp");
            setpriv
        }
        false => Command::new(test),
    };
    let out = command
        .arg("--exact")
        .args(names)
        .args(["--nocapture", "--test-threads", "1"])
        .envs(env.iter().copied())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("{} passed", names.len())),
        "{names:?} unprivileged with {env:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stderr}");
}

/// Whether this run asks for the forked helper (see
/// `runtime/sandbox/spawn.rs`).
fn forked_helper_asked() -> bool {
    std::env::var_os("SUBRT_SANDBOX_HELPER").is_some_and(|v| v == "fork")
}

fn spec(limits: Limits) -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("rootless-sandbox");
    spec.local.isolation = Isolation::Sandbox;
    spec.environment
        .env
        .insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    spec.limits = limits;
    spec
}

async fn sandbox(limits: Limits) -> Box<dyn SubmissionRuntime> {
    spawn_runtime(LaunchSpec::new(spec(limits), common::workspace()))
        .await
        .unwrap()
}

struct Rootless;

impl contract::Target for Rootless {
    async fn runtime(&self, setup: &[&str]) -> Arc<dyn SubmissionRuntime> {
        let mut spec = spec(Limits::default());
        spec.setup.commands = setup.iter().map(|s| s.to_string()).collect();
        Arc::from(
            spawn_runtime(LaunchSpec::new(spec, common::workspace()))
                .await
                .unwrap(),
        )
    }

    async fn alive(&self, _: &Arc<dyn SubmissionRuntime>, needle: &str) -> bool {
        !common::live_processes(needle).is_empty()
    }
}

contract_tests!(if ran_as_user() || !user_namespaces() {
    return;
} else {
    Rootless
});

async fn run(rt: &dyn SubmissionRuntime, line: &str) -> String {
    let result = rt.execute(ExecRequest::new(line)).await.unwrap();
    String::from_utf8_lossy(&result.stdout.data).into_owned()
}

/// Unprivileged, the sandbox is the same view: its user without
/// capabilities, no host file outside what it shows, nothing written
/// outside the working dir, no host process, no host loopback, a hostname
/// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_commands_run_in_a_view_of_their_own() {
    if ran_as_user() || !user_namespaces() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let outside = common::workspace();
    std::fs::write(outside.join("secret"), "the caller's secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let workdir = common::workspace();
    let rt = spawn_runtime(LaunchSpec::new(spec(Limits::default()), workdir.clone()))
        .await
        .unwrap();

    let out = run(
        &*rt,
        "id -u; id -g; grep -E 'Cap(Prm|Eff|Bnd)' /proc/self/status; grep NoNewPrivs /proc/self/status",
    )
    .await;
    assert!(out.starts_with("1000\n1000\n"), "{out}");
    for capability in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(
            out.contains(&format!("{capability}:\t0000000000000000")),
            "{capability} not empty: {out}"
        );
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");

    let secret = outside.join("secret");
    let out = run(
        &*rt,
        &format!("cat {} 2>/dev/null || echo unread", secret.display()),
    )
    .await;
    assert!(
        out.contains("unread") && !out.contains("the caller's secret"),
        "{out}"
    );

    let planted = outside.join("planted");
    let out = run(
        &*rt,
        &format!(
            "(echo x > {}) 2>/dev/null || echo unwritten; (echo x > /usr/planted) 2>/dev/null || echo unwritten; echo made > here && cat here",
            planted.display()
        ),
    )
    .await;
    assert!(
        !planted.exists() && !Path::new("/usr/planted").exists(),
        "{out}"
    );
    assert!(out.starts_with("unwritten\nunwritten\n"), "{out}");
    assert!(
        out.ends_with("made\n"),
        "the working dir is writable: {out}"
    );
    // What it wrote in the working dir is the caller's on the host.
    let here = std::fs::metadata(workdir.join("here")).expect("the file is on the host");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&here), me);

    let out = run(&*rt, "test -e /proc/1 && echo shown || echo hidden").await;
    assert_eq!(out, "hidden\n", "the init (subrt's command line) is shown");
    let out = run(&*rt, "ls /proc | grep -c '^[0-9]'").await;
    let processes: usize = out.trim().parse().unwrap_or(usize::MAX);
    assert!(processes <= 4, "host processes are shown: {out}");

    let out = run(
        &*rt,
        &format!(
            "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo connected || echo refused"
        ),
    )
    .await;
    // `sh` may be dash (no /dev/tcp): then python, then nothing to try.
    let out = if out.contains("connected") || out.contains("refused") {
        out
    } else {
        run(
            &*rt,
            &format!(
                "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 1)' \
                 2>/dev/null && echo connected || echo refused"
            ),
        )
        .await
    };
    assert!(out.contains("refused"), "{out}");

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = run(&*rt, "hostname taken 2>&1; hostname").await;
    assert!(out.ends_with("subrt-sandbox\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
    let out = run(
        &*rt,
        "mount -t tmpfs none /tmp 2>&1 && echo mounted || echo refused",
    )
    .await;
    assert!(out.contains("refused"), "{out}");
    rt.cleanup().await.unwrap();
}

/// `pids` holds without a cgroup (an rlimit counted in the session's own
/// user namespace): a fork bomb stops at it, and the host answers.
/// Unprivileged, a command starts as one does as root: through a helper
/// that shares subrt's memory, so that a harness holding memory pays no
/// copy of its page tables, and no write fault on each of its pages after,
/// per command. With the forked helper asked for (what a kernel that
/// refuses a shared helper its user namespace gets), each page faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_a_command_is_not_forked_from_the_harness() {
    if ran_as_user() || !user_namespaces() {
        return;
    }
    let rt = sandbox(Limits::default()).await;
    let mut held = common::HeldMemory::new(256 << 20);
    for _ in 0..3 {
        let result = rt.execute(ExecRequest::new("true")).await.unwrap();
        assert_eq!(result.exit_code, 0, "{result:?}");
        let faults = held.faults_to_write();
        if forked_helper_asked() {
            assert!(
                faults > held.pages() / 2,
                "{faults} page faults writing {} pages after a command started through a \
                 forked helper: it was not forked",
                held.pages()
            );
        } else {
            assert!(
                faults < held.pages() / 4,
                "{faults} page faults writing {} pages after a command: its helper was \
                 forked from this process",
                held.pages()
            );
        }
    }
    rt.cleanup().await.unwrap();
}

/// The forked helper (where the kernel refuses a shared one) still gives
/// the same sandbox: the view test and the one above, run with it asked
/// for; the second shows it was the path taken.
#[test]
fn with_the_forked_helper_commands_see_the_same_view() {
    if !user_namespaces() || forked_helper_asked() {
        return;
    }
    run_unprivileged(
        &[
            "without_root_commands_run_in_a_view_of_their_own",
            "without_root_a_command_is_not_forked_from_the_harness",
        ],
        &[("SUBRT_SANDBOX_HELPER", "fork")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_a_fork_bomb_stops_at_the_pids_limit() {
    if ran_as_user() || !user_namespaces() {
        return;
    }
    let rt = sandbox(Limits {
        pids: Some(24),
        ..Limits::default()
    })
    .await;
    let result = rt
        .execute(
            ExecRequest::new(
                "(i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; \
                 set -- /proc/[0-9]*; echo $#",
            )
            .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data);
    let processes: usize = out.trim().parse().unwrap();
    assert!(
        (10..=25).contains(&processes),
        "{processes} processes with pids = 24"
    );
    // The host is not held: a process starts at once outside.
    let started = std::time::Instant::now();
    assert!(Command::new("true").status().unwrap().success());
    assert!(started.elapsed() < Duration::from_secs(2));
    rt.cleanup().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || common::live_processes(
            "sleep 60"
        )
        .is_empty()),
        "the bomb's processes outlived cleanup"
    );
}

/// The shipped `sandbox` environment asks for `memory` and `cpus`, which
/// only a cgroup keeps: unprivileged, it is refused with why and what to
/// do, and the command does not run with less.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_memory_and_cpus_limits_are_refused_never_dropped() {
    if ran_as_user() {
        return;
    }
    let marker = common::workspace().join("ran");
    let spec = spec(Limits {
        memory: Some("64m".into()),
        cpus: Some(1.0),
        pids: Some(32),
        ..Limits::default()
    });
    let error = match spawn_runtime(LaunchSpec::new(spec, common::workspace())).await {
        Ok(_) => panic!("a sandbox with limits it cannot keep was made"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("memory, cpus")
            && error.contains("need a cgroup")
            && error.contains("Docker"),
        "{error}"
    );
    assert!(
        error.contains("limits memory, cpus need"),
        "pids is kept unprivileged: {error}"
    );
    assert!(!marker.exists());
}

/// The shipped config as uid 1000 through the CLI: the same refusal,
/// exit 2.
#[test]
fn the_shipped_sandbox_is_refused_without_root_never_downgraded() {
    if !is_root() {
        eprintln!("skipped: needs root to become another user (setpriv)");
        return;
    }
    let dir = world_writable_dir();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let out = as_user(
        &["--config", shipped, "run", "--no-log", "--env", "sandbox"],
        &dir,
    )
    .args(["--", "touch ran"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("memory, cpus") && error.contains("uid 1000") && error.contains("Docker"),
        "{error}"
    );
    assert!(
        !dir.join("ran").exists(),
        "the command ran without its sandbox"
    );
}

/// A folder uid 1000 may write, removed by the test's workspace cleanup.
fn world_writable_dir() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::workspace();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777)).unwrap();
    // The workspaces' folder is the caller's alone: let uid 1000 through.
    let parent = dir.parent().unwrap();
    std::fs::set_permissions(parent, PermissionsExt::from_mode(0o711)).unwrap();
    dir
}

/// `subrt args... --workdir dir` as uid 1000.
fn as_user(args: &[&str], dir: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args([
            format!("--reuid={USER}"),
            format!("--regid={USER}"),
            "--clear-groups".into(),
        ])
        .arg(env!("CARGO_BIN_EXE_subrt"))
        .args(args)
        .arg("--workdir")
        .arg(dir)
        .env("HOME", "/tmp");
    command
}

/// A config with an unprivileged sandbox (no cgroup limits), in `dir`.
fn rootless_config(dir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[[environments]]\nname = \"sandbox\"\ntype = \"local\"\n\
         environment = { env = { PATH = \"/usr/bin:/bin\" } }\n\
         local = { isolation = \"sandbox\" }\nlimits = { pids = 64 }\n",
    )
    .unwrap();
    config
}

/// Where the kernel refuses a user namespace (here `user.max_user_namespaces
/// = 0` in a user namespace made for the test, so the host is untouched),
/// subrt refuses the session and names the setting.
#[test]
fn a_kernel_that_refuses_user_namespaces_is_named() {
    if !is_root() || !user_namespaces() {
        eprintln!("skipped: needs root to make the refusing namespace");
        return;
    }
    let dir = world_writable_dir();
    let config = rootless_config(&dir);
    // The shell waits until its namespace has maps (written below, as root
    // may), starts again (a program started unmapped has no capabilities
    // in the namespace; started mapped as root there, it has them all),
    // forbids user namespaces in it, and becomes uid 1000.
    let inner = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 9; \
         exec setpriv --reuid={USER} --regid={USER} --clear-groups {} --config {} run --no-log \
         --env sandbox --workdir {} -- 'touch ran'",
        env!("CARGO_BIN_EXE_subrt"),
        config.display(),
        dir.display()
    );
    let mut child = Command::new("unshare")
        .args(["--user", "--", "sh", "-c", "read go; exec sh -c \"$INNER\""])
        .env("INNER", inner)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(format!("/proc/{pid}/uid_map"), "0 0 2000").unwrap();
    std::fs::write(format!("/proc/{pid}/gid_map"), "0 0 2000").unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        error.contains("kernel refused")
            && error.contains("user.max_user_namespaces = 0")
            && error.contains("uid 1000"),
        "{error}"
    );
    assert!(
        !dir.join("ran").exists(),
        "the command ran without its sandbox"
    );
}

/// The session dies with subrt, SIGKILL included: its init (PID 1 of the
/// session's namespace) is bound to subrt's death.
#[test]
fn without_root_a_session_dies_with_subrt_killed() {
    if !is_root() || !user_namespaces() {
        eprintln!("skipped: needs root to become another user (setpriv)");
        return;
    }
    let dir = world_writable_dir();
    let config = rootless_config(&dir);
    let (line, needles) = common::escapes(false);
    let mut child = as_user(
        &[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--no-log",
            "--env",
            "sandbox",
        ],
        &dir,
    )
    .args(["--", &line])
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || needles
            .iter()
            .all(|n| !common::live_processes(n).is_empty())),
        "the sleeps started"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    for needle in &needles {
        assert!(
            common::eventually(Duration::from_secs(5), || common::live_processes(needle)
                .is_empty()),
            "{needle} outlived subrt"
        );
    }
}
