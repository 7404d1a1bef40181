//! Builds `agent/` (the init of a Docker session, see
//! `src/runtime/docker/agent.rs`) as a static executable, which subrt
//! embeds. On a platform where it is not built, an empty file stands in and
//! Docker sessions start their commands through `docker exec`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    for input in [
        "agent/src",
        "agent/Cargo.toml",
        "src/runtime/docker/agent_protocol.rs",
        "src/runtime/process_tree.rs",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("subrt-agent");
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        std::fs::write(&dest, b"").expect("OUT_DIR is writable");
        return;
    }
    let target_dir = out.join("agent-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--offline",
            "-p",
            "subrt-agent",
        ])
        .args(["--target", &target, "--target-dir"])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Only the flags that make it static and small: not the outer
        // build's (a wrapper such as clippy's, flags meant for subrt).
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "-Ctarget-feature=+crt-static",
                "-Cstrip=symbols",
                "-Copt-level=s",
            ]
            .join("\x1f"),
        )
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the agent (agent/) failed");
    let built = target_dir.join(&target).join("release").join("subrt-agent");
    std::fs::copy(&built, &dest).expect("the agent was built");
}
