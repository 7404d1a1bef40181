//! LocalRuntime: the shared contract, plus what only the host runtime does.

mod common;
mod contract;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use subrt::runtime::{
    ExecRequest, LaunchSpec, RuntimeError, StaticAsset, SubmissionRuntime, spawn_runtime,
};
use subrt::spec::{EnvironmentSpec, LocalContainment};

/// A plain local session with this containment.
struct Local(LocalContainment);

impl contract::Target for Local {
    async fn runtime(&self, setup: &[&str]) -> Arc<dyn SubmissionRuntime> {
        let mut spec = EnvironmentSpec::local("test");
        spec.local.containment = self.0;
        spec.environment.include_os_env = true;
        spec.setup.commands = setup.iter().map(|s| s.to_string()).collect();
        Arc::from(
            spawn_runtime(LaunchSpec::new(spec, std::env::temp_dir()))
                .await
                .unwrap(),
        )
    }

    async fn alive(&self, _: &Arc<dyn SubmissionRuntime>, needle: &str) -> bool {
        !common::live_processes(needle).is_empty()
    }
}

/// The default: a PID namespace where the kernel allows one (root here).
mod in_a_pid_namespace {
    use super::*;
    contract_tests!(Local(LocalContainment::Auto));
}

/// What an unprivileged user gets: process groups, each command started by
/// subrt itself (`host_spawn`), not forked from it. The whole contract but
/// its escapes (a process that leaves its group, `setsid`, outlives its
/// session there, as the README says of process groups) and the setup's
/// order (such a session's first event is a note that says so).
mod as_process_groups {
    use super::*;
    contract_tests!(@weak_containment Local(LocalContainment::ProcessGroup));
}

fn launch(dir: &std::path::Path) -> LaunchSpec {
    LaunchSpec::new(EnvironmentSpec::local("test"), dir)
}

#[tokio::test]
async fn env_layers_merge_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut launch = launch(dir.path());
    launch.environment.environment.env =
        BTreeMap::from([("A".into(), "spec".into()), ("B".into(), "spec".into())]);
    launch.env_vars =
        BTreeMap::from([("B".into(), "launch".into()), ("C".into(), "launch".into())]);
    let rt = spawn_runtime(launch).await.unwrap();
    let request = ExecRequest::new("echo $A $B $C $D; pwd")
        .env("C", "request")
        .env("D", "request");
    let result = rt.execute(request).await.unwrap();
    let expected = format!(
        "spec launch request request\n{}\n",
        dir.path().canonicalize().unwrap().display()
    );
    assert_eq!(String::from_utf8_lossy(&result.stdout.data), expected);
}

#[tokio::test]
async fn os_env_only_when_the_spec_asks() {
    let dir = tempfile::tempdir().unwrap();
    let rt = spawn_runtime(launch(dir.path())).await.unwrap();
    let result = rt
        .execute(ExecRequest::new("echo \"[$CARGO]\""))
        .await
        .unwrap();
    assert_eq!(
        &result.stdout.data[..],
        b"[]\n",
        "CARGO leaked from the OS env"
    );
    let mut with_os = launch(dir.path());
    with_os.environment.environment.include_os_env = true;
    let rt = spawn_runtime(with_os).await.unwrap();
    let result = rt
        .execute(ExecRequest::new("echo \"[$CARGO]\""))
        .await
        .unwrap();
    assert_ne!(&result.stdout.data[..], b"[]\n");
}

#[tokio::test]
async fn static_placeholders_become_host_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "payload").unwrap();
    let mut launch = launch(dir.path());
    launch.static_assets.insert(
        "data".into(),
        StaticAsset {
            path: "data.txt".into(),
            save_path: "data.txt".into(),
        },
    );
    let rt = spawn_runtime(launch).await.unwrap();
    let result = rt
        .execute(ExecRequest::new("cat {{static:data}}"))
        .await
        .unwrap();
    assert_eq!(&result.stdout.data[..], b"payload");
    let err = rt
        .execute(ExecRequest::new("cat {{static:other}}"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`other`") && err.to_string().contains("data"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_working_dir_is_named() {
    let missing = std::env::temp_dir().join("subrt-no-such-dir-7f3a");
    let err = spawn_runtime(launch(&missing)).await.unwrap_err();
    assert!(matches!(err, RuntimeError::WorkingDir { .. }), "{err:?}");
    assert!(err.to_string().contains("subrt-no-such-dir-7f3a"), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn an_unknown_type_lists_the_registered_ones() {
    let mut spec = EnvironmentSpec::local("x");
    spec.kind = "kubernetes".into();
    let err = spawn_runtime(LaunchSpec::new(spec, std::env::temp_dir()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`kubernetes`") && message.contains("local"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_shell_is_named() {
    let mut spec = EnvironmentSpec::local("odd");
    spec.local.shell = "/no/such/shell".into();
    let err = spawn_runtime(LaunchSpec::new(spec, std::env::temp_dir()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("/no/such/shell") && err.to_string().contains("`odd`"),
        "{err}"
    );
}

#[tokio::test]
async fn one_command_at_a_time() {
    let rt = spawn_runtime(launch(&std::env::temp_dir())).await.unwrap();
    let running = rt.stream(ExecRequest::new("sleep 1")).await.unwrap();
    let second = rt.stream(ExecRequest::new("true")).await;
    assert!(matches!(second, Err(RuntimeError::Busy)), "{second:?}");
    drop(running);
    rt.cleanup().await.unwrap();
}

#[tokio::test]
async fn results_keep_up_to_the_capture_limit_and_count_the_rest() {
    let rt = spawn_runtime(launch(&std::env::temp_dir())).await.unwrap();
    let request = ExecRequest::new("head -c 100000 /dev/zero").capture_limit(1000);
    let result = rt.execute(request).await.unwrap();
    assert_eq!(result.stdout.data.len(), 1000);
    assert_eq!(result.stdout.total_bytes, 100_000);
    assert!(result.stdout.truncated());
}

#[tokio::test]
async fn output_of_a_background_process_does_not_hold_the_result() {
    let rt = spawn_runtime(launch(&std::env::temp_dir())).await.unwrap();
    let n = common::unique_sleep();
    let started = std::time::Instant::now();
    // The background sleep keeps stdout open; the result must not wait for it.
    let result = rt
        .execute(ExecRequest::new(format!("sleep {n} & echo done")))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(&result.stdout.data[..], b"done\n");
    rt.cleanup().await.unwrap();
    assert!(common::gone(&format!("sleep {n}")));
}

#[tokio::test]
async fn dropping_the_runtime_kills_what_it_started() {
    let rt = spawn_runtime(launch(&std::env::temp_dir())).await.unwrap();
    let n = common::unique_sleep();
    rt.execute(ExecRequest::new(format!("sleep {n} >/dev/null 2>&1 &")))
        .await
        .unwrap();
    assert!(!common::live_processes(&format!("sleep {n}")).is_empty());
    drop(rt);
    assert!(common::gone(&format!("sleep {n}")));
}

#[tokio::test]
async fn a_command_gets_no_descriptor_the_process_holds_for_inheritance() {
    use std::os::fd::AsRawFd;
    // As a harness's parent might pass one down: open across exec.
    let file = tempfile::tempfile().unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: clears the flags of an fd this test owns.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let dir = tempfile::tempdir().unwrap();
    let rt = spawn_runtime(launch(dir.path())).await.unwrap();
    let check = format!("test -e /proc/self/fd/{fd} && echo inherited || echo closed");
    let result = rt.execute(ExecRequest::new(check)).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&result.stdout.data), "closed\n");
    assert!(
        inheritable_again(fd),
        "the process's own descriptor is left as it was"
    );
}

/// Whether `fd` is inheritable again once no spawn is under way (the other
/// tests of this binary spawn too, and keep it hidden while they do).
fn inheritable_again(fd: i32) -> bool {
    // SAFETY: reads the flags of an fd the caller owns.
    common::eventually(Duration::from_secs(5), || unsafe {
        libc::fcntl(fd, libc::F_GETFD) == 0
    })
}

/// Spawns that overlap (sessions on several threads, as a harness's thread
/// pool runs them) must each keep the descriptor hidden: one spawn making it
/// inheritable again when it is done must not hand it to a command another
/// thread is starting in that instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_spawns_never_hand_on_a_descriptor_held_for_inheritance() {
    use std::os::fd::AsRawFd;
    let file = tempfile::tempfile().unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: clears the flags of an fd this test owns.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let check = format!("test -e /proc/self/fd/{fd} && echo inherited || echo closed");
    let sessions: Vec<_> = (0..8)
        .map(|_| {
            let check = check.clone();
            tokio::spawn(async move {
                let dir = tempfile::tempdir().unwrap();
                let rt = spawn_runtime(launch(dir.path())).await.unwrap();
                let mut inherited = 0;
                for _ in 0..40 {
                    let result = rt.execute(ExecRequest::new(check.clone())).await.unwrap();
                    if result.stdout.data.as_ref() != b"closed\n" {
                        inherited += 1;
                    }
                }
                rt.cleanup().await.unwrap();
                inherited
            })
        })
        .collect();
    let mut inherited = 0;
    for session in sessions {
        inherited += session.await.unwrap();
    }
    assert_eq!(inherited, 0, "{inherited} of 320 commands got fd {fd}");
    assert!(inheritable_again(fd), "fd {fd} stayed close-on-exec");
}

/// A command on its way to the runtime when `cleanup` comes (its stream
/// made, its process not yet spawned) must not start in a namespace made
/// anew for it: a cancelled batch showed this as a `sleep` that ran on.
#[tokio::test]
async fn a_command_on_its_way_when_cleanup_comes_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let n = common::unique_sleep();
    let rt = spawn_runtime(launch(dir.path())).await.unwrap();
    // On this test's one thread the stream's task has not run yet.
    let mut events = rt
        .stream(ExecRequest::new(format!("sleep 30.{n}")))
        .await
        .unwrap();
    rt.cleanup().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while events.next_event().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the command ran on after cleanup");
    assert!(
        common::live_processes(&format!("sleep 30.{n}")).is_empty(),
        "sleep 30.{n} outlived cleanup"
    );
}

/// A `process-group` session's commands are not forked from the process
/// that runs subrt: a harness holding memory would pay a copy of its page
/// tables per command, then a fault on each page it writes after (from 2 GiB,
/// 110x the cost of a spawn: BENCHMARKS.md).
#[tokio::test]
async fn a_process_group_command_is_not_forked_from_the_harness() {
    let mut spec = EnvironmentSpec::local("test");
    spec.local.containment = LocalContainment::ProcessGroup;
    let rt = spawn_runtime(launch_of(spec)).await.unwrap();
    let mut held = common::HeldMemory::new(256 << 20);
    for _ in 0..3 {
        let result = rt.execute(ExecRequest::new("true")).await.unwrap();
        assert_eq!(result.exit_code, 0, "{result:?}");
        let faults = held.faults_to_write();
        assert!(
            faults < held.pages() / 4,
            "{faults} page faults writing {} pages after a command: its process was \
             forked from this one",
            held.pages()
        );
    }
    rt.cleanup().await.unwrap();
}

fn launch_of(spec: EnvironmentSpec) -> LaunchSpec {
    LaunchSpec::new(spec, std::env::temp_dir())
}
