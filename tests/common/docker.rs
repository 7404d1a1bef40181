//! Docker test support: the daemon, and a small image built here from host
//! binaries (this machine can pull nothing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The image the Docker tests run in: `sh`, coreutils and their libraries
/// copied from the host into a `FROM scratch` image.
pub const TEST_IMAGE: &str = "subrt-test-rootfs:3";

/// Programs copied into the image (the shell is dash, as `/bin/sh`).
const PROGRAMS: &[&str] = &[
    "sh", "sleep", "cat", "head", "ls", "id", "touch", "tr", "dd", "wc", "mkdir", "rm", "true",
    "setsid", "nohup", "ln",
];

/// `Some(image)` when the daemon answers and the test image is built.
/// Without a daemon: panics when `CI` is set, else `None` (skip, said once).
/// `SUBRT_SKIP=docker` skips whatever `CI` says.
pub fn test_image() -> Option<&'static str> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    // Read here, not through `common`: the Docker bench includes this file
    // alone.
    let skip = std::env::var("SUBRT_SKIP").unwrap_or_default();
    if skip.split(',').any(|part| part.trim() == "docker") {
        eprintln!("skipping Docker test: SUBRT_SKIP={skip}");
        return None;
    }
    match READY.get_or_init(build_image) {
        Ok(()) => Some(TEST_IMAGE),
        Err(reason) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and the Docker tests cannot run: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping Docker test: {reason}");
            None
        }
    }
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The file `program` runs from: the first match on PATH, links resolved.
fn which(program: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::fs::canonicalize(found).ok())
        .ok_or_else(|| format!("`{program}` is not on PATH; the test image needs it"))
}

/// Copies `from` to `root` + `at`, making folders.
fn place(root: &Path, at: &Path, from: &Path) -> Result<(), String> {
    let target = root.join(at.strip_prefix("/").unwrap_or(at));
    std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(from, &target).map_err(|e| format!("{}: {e}", from.display()))?;
    Ok(())
}

fn build_image() -> Result<(), String> {
    run(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
        .map_err(|e| format!("the Docker daemon is not reachable: {e}"))?;
    build_variant(TEST_IMAGE, None, &[], &[])
}

/// The test image's files as image `tag`, its config saying `platform`
/// when given (its programs are still this host's, so it runs here), with
/// empty folders at `dirs` and `files` (path, text) too.
pub fn build_variant(
    tag: &str,
    platform: Option<&str>,
    dirs: &[&str],
    files: &[(&str, &str)],
) -> Result<(), String> {
    let context = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = context.path().join("rootfs");
    rootfs(&root)?;
    // A file of its own: the build cache would otherwise hand back the
    // test image itself, whatever the platform asked for.
    if tag != TEST_IMAGE {
        std::fs::write(root.join(".variant"), format!("{tag} {platform:?}"))
            .map_err(|e| e.to_string())?;
    }
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir.trim_start_matches('/')))
            .map_err(|e| e.to_string())?;
    }
    for (path, text) in files {
        let path = root.join(path.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n",
    )
    .map_err(|e| e.to_string())?;
    let mut build = Command::new("docker");
    build.args(["build", "-q", "-t", tag]);
    if let Some(platform) = platform {
        build.args(["--platform", platform]);
    }
    run(build.arg(context.path()))?;
    Ok(())
}

/// A root filesystem at `root`: `sh`, coreutils and their libraries copied
/// from the host (the test image's, and a container bundle's).
pub fn rootfs(root: &Path) -> Result<(), String> {
    for dir in ["tmp", "workspace", "static", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| e.to_string())?;
    }
    // As in every image: anyone may write /tmp (a tmpfs over it takes its
    // mode).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| e.to_string())?;
    for program in PROGRAMS {
        let binary = which(program)?;
        place(root, &Path::new("/bin").join(program), &binary)?;
        // Its shared libraries, at the paths the loader looks for them.
        for line in run(Command::new("ldd").arg(&binary))
            .unwrap_or_default()
            .lines()
        {
            let path = match line.split("=>").nth(1) {
                Some(rest) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(lib) = path.filter(|p| p.starts_with('/')) {
                place(
                    root,
                    Path::new(lib),
                    &std::fs::canonicalize(lib).map_err(|e| e.to_string())?,
                )?;
            }
        }
    }
    Ok(())
}

/// Ids of the running containers labelled with `run_id`.
pub fn containers_of(run_id: &str, all: bool) -> Vec<String> {
    let mut cmd = Command::new("docker");
    cmd.args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=subrt.run={run_id}"));
    if all {
        cmd.arg("-a");
    }
    run(&mut cmd)
        .map(|out| out.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}
