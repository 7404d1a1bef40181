//! Sandboxed local sessions (`local.isolation = "sandbox"`): the runtime
//! contract, what the sandbox shows and hides, its limits and what each
//! command cost. Needs root (the sandbox says so otherwise): the tests
//! skip without it.

mod common;
mod contract;

use std::sync::Arc;
use std::time::Duration;

use subrt::runtime::{ExecRequest, KilledBy, LaunchSpec, SubmissionRuntime, spawn_runtime};
use subrt::spec::{EnvironmentSpec, Isolation, Limits};

/// Whether this process can make sandboxes (root); said once otherwise.
fn can_sandbox() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: sandboxes need root");
    }
    root
}

fn spec(limits: Limits) -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("sandbox-test");
    spec.local.isolation = Isolation::Sandbox;
    spec.environment
        .env
        .insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    spec.limits = limits;
    spec
}

struct Sandboxed;

impl contract::Target for Sandboxed {
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

contract_tests!(if can_sandbox() { Sandboxed } else { return });

async fn sandbox(limits: Limits) -> Box<dyn SubmissionRuntime> {
    spawn_runtime(LaunchSpec::new(spec(limits), common::workspace()))
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_run_unprivileged_in_a_view_of_their_own() {
    if !can_sandbox() {
        return;
    }
    let rt = sandbox(Limits::default()).await;
    let result = rt
        .execute(ExecRequest::new(
            "id -u; id -g; hostname; ls /; grep Cap /proc/self/status; cat /proc/self/status | grep NoNewPrivs; echo made > here && cat here",
        ))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1000", "1000", "subrt-sandbox"], "{out}");
    for absent in ["home", "root", "run", "var", "srv", "mnt"] {
        assert!(!lines.contains(&absent), "/{absent} is shown: {out}");
    }
    for shown in ["usr", "etc", "tmp", "proc", "dev"] {
        assert!(lines.contains(&shown), "/{shown} is missing: {out}");
    }
    for capability in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            out.contains(&format!("{capability}:\t0000000000000000")),
            "{capability} not empty: {out}"
        );
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(
        out.ends_with("made\n"),
        "the working dir is writable: {out}"
    );
    rt.cleanup().await.unwrap();
}

/// The session's init shares subrt's memory, so its command line is
/// subrt's (a harness's arguments, keys included): no command sees it.
#[tokio::test]
async fn the_init_and_so_subrt_s_command_line_are_hidden() {
    if !can_sandbox() {
        return;
    }
    let rt = sandbox(Limits::default()).await;
    let result = rt
        .execute(ExecRequest::new(
            "cat /proc/1/cmdline 2>/dev/null | tr '\\0' ' '; test -e /proc/1 && echo shown || echo hidden",
        ))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
    assert_eq!(out, "hidden\n", "{out}");
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_memory_bomb_ends_as_out_of_memory_with_its_peak() {
    if !can_sandbox() {
        return;
    }
    let rt = sandbox(Limits {
        memory: Some("48m".into()),
        ..Limits::default()
    })
    .await;
    let result = rt
        .execute(ExecRequest::new(
            "dd if=/dev/zero of=/dev/null bs=256M count=1",
        ))
        .await
        .unwrap();
    assert!(result.oom_killed, "{result:?}");
    assert_eq!(result.killed_by, Some(KilledBy::OutOfMemory));
    assert!(!result.success() && !result.killed);
    let peak = result.usage.peak_memory_bytes.unwrap();
    assert!((40 << 20..=48 << 20).contains(&peak), "peak {peak}");
    // What a modest command costs is measured, and is no memory bomb.
    let result = rt
        .execute(ExecRequest::new(
            "dd if=/dev/zero of=/dev/null bs=1M count=2000",
        ))
        .await
        .unwrap();
    assert!(result.success(), "{result:?}");
    assert!(!result.oom_killed);
    let cpu = result.usage.cpu_user_seconds.unwrap() + result.usage.cpu_system_seconds.unwrap();
    assert!(cpu > 0.0, "{:?}", result.usage);
    rt.cleanup().await.unwrap();
}

/// subrt larger than the session's memory limit (a Python harness is),
/// and a memory bomb in the session: the bomb is what the out-of-memory
/// killer ends, never subrt (the session's init shares subrt's memory, so
/// it must not be a candidate).
#[tokio::test]
async fn a_memory_bomb_never_takes_subrt_with_it() {
    if !can_sandbox() {
        return;
    }
    // 160 MB of this process, touched: resident.
    let ballast = vec![1u8; 160 << 20];
    let rt = sandbox(Limits {
        memory: Some("48m".into()),
        ..Limits::default()
    })
    .await;
    let result = rt
        .execute(ExecRequest::new(
            "dd if=/dev/zero of=/dev/null bs=256M count=1",
        ))
        .await
        .unwrap();
    assert!(result.oom_killed, "{result:?}");
    // Still here, and so is the ballast.
    assert_eq!(
        ballast
            .iter()
            .step_by(4096)
            .map(|&b| b as usize)
            .sum::<usize>(),
        160 << 8
    );
    let result = rt.execute(ExecRequest::new("echo alive")).await.unwrap();
    assert!(result.success(), "{result:?}");
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_file_size_and_tmp_limits_hold() {
    if !can_sandbox() {
        return;
    }
    let rt = sandbox(Limits {
        tmp: Some("1m".into()),
        ..Limits::default()
    })
    .await;
    let result = rt
        .execute(ExecRequest::new(
            "head -c 2M /dev/zero > /tmp/fill; echo $?; wc -c < /tmp/fill",
        ))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
    // /tmp is full at its size, and says so.
    assert_eq!(out, "1\n1048576\n", "{out}");
    rt.cleanup().await.unwrap();

    let rt = sandbox(Limits {
        file_size: Some("100k".into()),
        open_files: Some(16),
        ..Limits::default()
    })
    .await;
    let result = rt
        .execute(ExecRequest::new(
            "head -c 200k /dev/zero > big; echo $?; wc -c < big; ulimit -n",
        ))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
    // The writer gets SIGXFSZ (128 + 25) at the size limit.
    assert_eq!(out, "153\n102400\n16\n", "{out}");
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_fork_bomb_is_held_and_the_host_answers() {
    if !can_sandbox() {
        return;
    }
    let rt = sandbox(Limits {
        pids: Some(32),
        ..Limits::default()
    })
    .await;
    let bomb = ExecRequest::new("b() { b | b & }; b; sleep 2").timeout(Duration::from_secs(3));
    let running = tokio::spawn({
        let rt: Arc<dyn SubmissionRuntime> = Arc::from(rt);
        async move {
            let result = rt.execute(bomb).await.unwrap();
            rt.cleanup().await.unwrap();
            result
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let host = std::process::Command::new("true").status().unwrap();
    assert!(host.success());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the host answered in {:?}",
        started.elapsed()
    );
    let result = running.await.unwrap();
    // Held: the shells could not fork past the limit, and the session
    // ended within its time.
    let stderr = String::from_utf8_lossy(&result.stderr.data);
    assert!(stderr.contains("Cannot fork"), "{result:?}");
    assert!(result.elapsed < Duration::from_secs(4), "{result:?}");
}

/// Dropping to the sandbox's user happens in the command's process only,
/// by raw system calls: glibc's setuid wrappers, in a child that shares
/// subrt's memory, take subrt's threads for its own and wait on them, and
/// hung now and then while threads came and went (seen in a benchmark).
/// 400 commands while threads start and end around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawns_never_hang_while_threads_come_and_go() {
    if !can_sandbox() {
        return;
    }
    let rt: Arc<dyn SubmissionRuntime> = Arc::from(sandbox(Limits::default()).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let threads: Vec<_> = (0..8).map(|_| std::thread::spawn(|| ())).collect();
                threads.into_iter().for_each(|t| t.join().unwrap());
            }
        })
    };
    let all = async {
        for _ in 0..400 {
            let result = rt.execute(ExecRequest::new("true")).await.unwrap();
            assert!(result.success());
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(60), all).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert!(done.is_ok(), "a spawn hung");
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["0", "0", "0", "0"],
            "thread {:?} changed its user",
            task.file_name()
        );
    }
    rt.cleanup().await.unwrap();
}

/// Sessions started at the same moment from several threads: each start
/// forks helpers (the idmapped working dir's user namespace, the init),
/// and a helper that waited for a pipe to close held copies of the other
/// threads' pipes, so two starts could wait on each other for ever (seen
/// as two sandbox tests hung in CI). 6 threads start 60 sessions whose
/// working dirs need the idmapping.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn sessions_started_side_by_side_never_wait_on_each_other() {
    if !can_sandbox() {
        return;
    }
    let starts = (0..60).map(|_| {
        tokio::spawn(async {
            let rt = sandbox(Limits::default()).await;
            let result = rt.execute(ExecRequest::new("id -u")).await.unwrap();
            rt.cleanup().await.unwrap();
            result
        })
    });
    // A hang blocks the runtime's threads, its timers too: a thread of its
    // own ends the test.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            std::thread::sleep(Duration::from_secs(60));
            if !done.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!("starts of sessions side by side hung for 60 s");
                std::process::exit(101);
            }
        }
    });
    let results = futures_util::future::join_all(starts).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for result in results {
        assert_eq!(result.unwrap().stdout.data.as_ref(), b"1000\n");
    }
}

/// A sandbox on a root filesystem of its own: a folder, or an image of the
/// local Docker daemon exported once. Only what that root holds is there,
/// and the working dir at its own path.
#[tokio::test]
async fn a_sandbox_runs_on_a_rootfs_folder_or_a_local_image() {
    if !can_sandbox() {
        return;
    }
    let rootfs = common::workspace().join("rootfs");
    common::docker::rootfs(&rootfs).unwrap();
    std::fs::write(rootfs.join("MARK"), "rootfs folder").unwrap();
    let mut folder = spec(Limits::default());
    folder.local.sandbox.rootfs = Some(rootfs);
    let mut roots = vec![folder];
    if let Some(image) = common::docker::test_image() {
        let mut image_spec = spec(Limits::default());
        image_spec.local.sandbox.image = Some(image.to_owned());
        roots.push(image_spec);
    }
    for spec in roots {
        let dir = common::workspace();
        let rt = spawn_runtime(LaunchSpec::new(spec.clone(), &dir))
            .await
            .unwrap();
        let result = rt
            .execute(ExecRequest::new("ls /; pwd; echo w > f && cat f; ls /home"))
            .await
            .unwrap();
        let out = String::from_utf8_lossy(&result.stdout.data).into_owned();
        let err = String::from_utf8_lossy(&result.stderr.data).into_owned();
        assert!(
            out.contains("bin\n") && out.contains("workspace\n"),
            "{out}"
        );
        assert!(out.contains(&format!("{}\nw\n", dir.display())), "{out}");
        assert!(
            err.contains("No such file"),
            "the host's /home is not there: {err}"
        );
        if spec.local.sandbox.rootfs.is_some() {
            assert!(out.contains("MARK"), "{out}");
        }
        rt.cleanup().await.unwrap();
    }
}
