//! The escape suite: attempts a hostile submission makes to get out of its
//! session, each run on a sandboxed local session and in a Docker
//! container side by side, with the same limits, and each asserted blocked
//! (the system refused) or contained (it happened only inside: the host
//! checks). Real processes, the real daemon. The attempts are made by a
//! small static probe (`tests/escape/probe.c`, built here) copied into the
//! session's working dir.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use subrt::runtime::{
    ExecRequest, LaunchSpec, RuntimeResult, StaticAsset, SubmissionRuntime, spawn_runtime,
};
use subrt::spec::{DockerConfig, EnvironmentSpec, Isolation, Limits};

/// The probe, built once: `None` (skip) without gcc, unless CI is set.
fn probe() -> Option<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = common::workspace().join("probe");
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/escape/probe.c");
        let made = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(source)
            .output()
            .map_err(|e| format!("cannot run gcc: {e}"))?;
        if !made.status.success() {
            return Err(String::from_utf8_lossy(&made.stderr).into_owned());
        }
        Ok(out)
    });
    match built {
        Ok(path) => Some(path),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and the escape probe cannot be built: {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: the escape probe cannot be built: {reason}");
            None
        }
    }
}

/// The same limits for both runtimes.
fn limits() -> Limits {
    Limits {
        memory: Some("64m".into()),
        pids: Some(64),
        cpus: None,
        tmp: Some("1m".into()),
        file_size: Some("2m".into()),
        open_files: Some(64),
    }
}

/// What the host prepared for the attempts to go after.
struct Host {
    n: u32,
    root_secret: PathBuf,
    home_secret: PathBuf,
    other_session: PathBuf,
    secret: String,
    port: u16,
    sleeper: std::process::Child,
    _listener: Arc<TcpListener>,
}

impl Host {
    fn new() -> Self {
        let n = common::unique_sleep();
        let secret = format!("HOST-SECRET-{n}");
        let root_secret = PathBuf::from(format!("/root/.subrt-escape-{n}"));
        std::fs::write(&root_secret, &secret).unwrap();
        let home = PathBuf::from(format!("/home/subrt-escape-{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let home_secret = home.join("secret");
        std::fs::write(&home_secret, &secret).unwrap();
        let other_session = common::workspace().join("answers.txt");
        std::fs::write(&other_session, &secret).unwrap();
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let port = listener.local_addr().unwrap().port();
        let serving = Arc::clone(&listener);
        std::thread::spawn(move || {
            for stream in serving.incoming().flatten() {
                use std::io::Write;
                let _ = (&stream).write_all(b"host-loopback");
            }
        });
        let sleeper = Command::new("sleep").arg(n.to_string()).spawn().unwrap();
        Self {
            n,
            root_secret,
            home_secret,
            other_session,
            secret,
            port,
            sleeper,
            _listener: listener,
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        let _ = std::fs::remove_file(&self.root_secret);
        let _ = std::fs::remove_dir_all(self.home_secret.parent().unwrap());
        for path in [
            format!("/usr/escape-{}", self.n),
            format!("/etc/escape-{}", self.n),
            format!("/tmp/escape-{}", self.n),
        ] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A working dir with the probe, a setuid-root copy of it, and a link
/// planted to a host secret.
fn working_dir(host: &Host) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::workspace();
    // World-writable: the Docker container runs as user 1000 too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let probe = probe().unwrap();
    std::fs::copy(probe, dir.join("probe")).unwrap();
    std::fs::copy(probe, dir.join("probe-suid")).unwrap();
    std::fs::set_permissions(
        dir.join("probe-suid"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink(&host.root_secret, dir.join("link")).unwrap();
    dir
}

fn sandbox_spec() -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("escape-sandbox");
    spec.local.isolation = Isolation::Sandbox;
    spec.environment
        .env
        .insert("PATH".into(), "/usr/bin:/bin".into());
    spec.limits = limits();
    spec
}

fn docker_spec(image: &str) -> EnvironmentSpec {
    let mut spec = EnvironmentSpec::local("escape-docker");
    spec.kind = "docker".into();
    let mut docker = DockerConfig::new(image);
    docker.user = Some("1000:1000".into());
    spec.docker = Some(docker);
    spec.limits = limits();
    spec
}

async fn run(rt: &dyn SubmissionRuntime, line: &str) -> (String, RuntimeResult) {
    let result = rt
        .execute(ExecRequest::new(line).timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout.data),
        String::from_utf8_lossy(&result.stderr.data)
    );
    (text, result)
}

/// Every attempt on `rt`; returns the failures (attempt: what happened).
async fn attempts(rt: &dyn SubmissionRuntime, host: &Host, spec: &EnvironmentSpec) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |name: &str, ok: bool, said: &str| {
        if !ok {
            failures.push(format!("{name}: {said}"));
        }
    };
    let secret = &host.secret;
    let n = host.n;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let domainname = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();

    for (name, path) in [
        (
            "read a secret in /root",
            host.root_secret.display().to_string(),
        ),
        (
            "read a secret in /home",
            host.home_secret.display().to_string(),
        ),
        (
            "read another session's working dir",
            host.other_session.display().to_string(),
        ),
        ("follow a link planted to a host file", "link".into()),
    ] {
        let (out, _) = run(rt, &format!("./probe read {path}")).await;
        check(name, !out.contains(secret), &out);
    }
    for (name, path) in [
        ("write into /usr", format!("/usr/escape-{n}")),
        ("write into /etc", format!("/etc/escape-{n}")),
        ("write into the host's /tmp", format!("/tmp/escape-{n}")),
    ] {
        let (out, _) = run(rt, &format!("./probe write {path}")).await;
        check(name, !Path::new(&path).exists(), &out);
    }
    let (out, _) = run(rt, &format!("./probe connect 127.0.0.1 {}", host.port)).await;
    check(
        "connect to the host's loopback",
        out.starts_with("BLOCKED"),
        &out,
    );
    let pid = host.sleeper.id();
    let (out, _) = run(rt, &format!("./probe see {pid}")).await;
    check("see a host process", out.starts_with("BLOCKED"), &out);
    let (out, _) = run(rt, &format!("./probe kill {pid}")).await;
    check(
        "signal a host process",
        out.starts_with("BLOCKED") && Path::new(&format!("/proc/{pid}")).exists(),
        &out,
    );
    let (out, _) = run(rt, &format!("./probe ptrace {pid}")).await;
    check("ptrace a host process", out.starts_with("BLOCKED"), &out);
    let (out, _) = run(rt, "./probe mount /tmp").await;
    check("mount", out.starts_with("BLOCKED"), &out);
    let (out, _) = run(rt, "./probe chroot").await;
    check("chroot", out.starts_with("BLOCKED"), &out);
    let (out, _) = run(rt, "./probe hostname pwned").await;
    check(
        "change the hostname the host sees",
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap() == hostname,
        &out,
    );
    let (out, _) = run(rt, "./probe sysctl /proc/sys/kernel/domainname pwned").await;
    check(
        "change a sysctl the host sees",
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap() == domainname,
        &out,
    );
    let (out, _) = run(rt, "./probe-suid euid").await;
    check(
        "gain root through a setuid binary",
        !out.contains("EUID 0"),
        &out,
    );
    // Cargo sets this for the test process, which runs subrt's library.
    let (out, _) = run(rt, "./probe env CARGO_MANIFEST_DIR").await;
    check("read subrt's environment", out.starts_with("BLOCKED"), &out);
    let (out, _) = run(
        rt,
        &format!("./probe read /proc/{}/environ", std::process::id()),
    )
    .await;
    check("read subrt's environ", !out.contains("CARGO"), &out);
    let (out, _) = run(rt, "./probe fds").await;
    check("use subrt's descriptors", out.contains("EXTRA-FDS 0"), &out);
    for socket in ["/var/run/docker.sock", "/run/docker.sock"] {
        let (out, _) = run(rt, &format!("./probe unix {socket}")).await;
        check("reach the Docker socket", out.starts_with("BLOCKED"), &out);
    }
    // Resource attacks: held by the limits, the host still answering.
    let bomb = tokio::spawn({
        let line = "b() { b | b & }; b; sleep 1; echo bomb-over".to_owned();
        let spec = spec.clone();
        async move {
            let rt = spawn_runtime(LaunchSpec::new(spec, common::workspace()))
                .await
                .unwrap();
            let result = run(rt.as_ref(), &line).await;
            rt.cleanup().await.unwrap();
            result
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = std::time::Instant::now();
    assert!(Command::new("true").status().unwrap().success());
    check(
        "a fork bomb starves the host",
        answered.elapsed() < Duration::from_secs(1),
        &format!("the host answered in {:?}", answered.elapsed()),
    );
    let (out, result) = bomb.await.unwrap();
    check(
        "a fork bomb outgrows the process limit",
        result.elapsed < Duration::from_secs(8) && !result.timed_out,
        &out,
    );
    let (out, result) = run(rt, "dd if=/dev/zero of=/dev/null bs=256M count=1").await;
    check(
        "a memory bomb is not reported as out of memory",
        result.oom_killed
            && result
                .usage
                .peak_memory_bytes
                .is_some_and(|p| p <= 64 << 20),
        &format!("{out} {result:?}"),
    );
    let (out, _) = run(rt, "head -c 4M /dev/zero > /tmp/fill; wc -c < /tmp/fill").await;
    let filled: u64 = out
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    check(
        "fill /tmp past its size",
        (900 << 10..=1 << 20).contains(&filled),
        &out,
    );
    let (out, _) = run(rt, "head -c 3M /dev/zero > big; wc -c < big").await;
    check(
        "write a file past the size limit",
        out.lines().next() == Some("2097152"),
        &out,
    );
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_to_escape_are_blocked_or_contained_in_a_sandbox_and_in_docker() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the sandbox and the host's secrets need root");
        return;
    }
    if probe().is_none() {
        return;
    }
    let host = Host::new();
    let mut report = Vec::new();
    let mut targets = vec![("sandbox", sandbox_spec())];
    match common::docker::test_image() {
        Some(image) => targets.push(("docker", docker_spec(image))),
        None => eprintln!("the escape suite runs on the sandbox only"),
    }
    for (name, spec) in targets {
        let dir = working_dir(&host);
        let rt = spawn_runtime(LaunchSpec::new(spec.clone(), &dir))
            .await
            .unwrap();
        for failure in attempts(rt.as_ref(), &host, &spec).await {
            report.push(format!("{name}: {failure}"));
        }
        rt.cleanup().await.unwrap();
        // subrt itself never follows the planted link: an asset there is
        // refused before anything starts.
        let mut launch = LaunchSpec::new(spec, &dir);
        launch.static_assets.insert(
            "data".into(),
            StaticAsset {
                path: "link".into(),
                save_path: "data".into(),
            },
        );
        match spawn_runtime(launch).await {
            Err(e) if e.to_string().contains("leads out of") => {}
            other => report.push(format!(
                "{name}: an asset linked to a host file was used: {:?}",
                other.map(|rt| rt.info())
            )),
        }
    }
    assert!(report.is_empty(), "escaped:\n{}", report.join("\n"));
}
