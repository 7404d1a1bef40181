//! config.toml: what loads, and what each mistake says.

use std::path::Path;

use subrt::config::{Config, ConfigError};
use subrt::spec::MountMode;

fn error_of(text: &str) -> String {
    Config::parse(text, Path::new("conf/config.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_shipped_config_loads_with_its_docker_settings() {
    let config = Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    assert_eq!(config.default_environment, "local");
    assert!(config.store_dir.ends_with("runs"));
    let local = config.environment(None).unwrap();
    assert_eq!(local.kind, "local");
    assert_eq!(local.compose_command("main.py", false), "python3 main.py");
    let docker = config.environment(Some("python-docker")).unwrap();
    let settings = docker.docker.as_ref().unwrap();
    assert_eq!(settings.network, "none");
    assert_eq!(settings.pids_limit, Some(256));
    assert!(settings.mount_workspace, "mount_workspace defaults to true");
}

#[test]
fn every_part_of_a_spec_parses() {
    let config = Config::parse(
        r#"
[[environments]]
name = "full"
type = "docker"
environment = { env = { A = "1" }, include_os_env = false }
setup = { commands = ["make"], eval_commands = ["make test-deps"] }
commands = { entry_file = "{entry_file}.py", command = "python3", agent_command = "python3 -u" }
local = { shell = "/bin/bash", requires_tty = true }
[environments.docker]
image = "img:1"
workdir = "/work"
mount_workspace = false
extra_mounts = [{ source = "data", target = "/data" }, { source = "/out", target = "/out", mode = "rw" }]
network = "bridge"
user = "1000:1000"
keep_container_after_clean = true
memory = "512m"
cpus = 1.5
pids_limit = 64
host = "unix:///run/docker.sock"
"#,
        Path::new("config.toml"),
    )
    .unwrap();
    let spec = &config.environments[0];
    assert_eq!(spec.setup_commands(true, false), ["make", "make test-deps"]);
    assert_eq!(spec.compose_command("main", true), "python3 -u main.py");
    let docker = spec.docker.as_ref().unwrap();
    assert_eq!(docker.extra_mounts[0].mode, MountMode::Ro);
    assert_eq!(docker.extra_mounts[1].mode, MountMode::Rw);
    assert_eq!(docker.cpus, Some(1.5));
    assert!(docker.keep_container_after_clean);
}

#[test]
fn an_unknown_key_names_its_line_and_column() {
    let err = error_of("[[environments]]\nname = \"a\"\ntype = \"local\"\nimage = \"x\"\n");
    assert!(
        err.starts_with("conf/config.toml:4:1: unknown field `image`"),
        "{err}"
    );
}

#[test]
fn a_wrong_type_names_its_line_and_column() {
    let err = error_of(
        "[[environments]]\nname = \"a\"\ntype = \"local\"\nsetup = { commands = \"make\" }\n",
    );
    assert!(err.starts_with("conf/config.toml:4:22:"), "{err}");
    assert!(err.contains("sequence"), "says a list was expected: {err}");
}

#[test]
fn broken_toml_names_its_line_and_column() {
    let err = error_of("default_environment = \"a\n");
    assert!(err.starts_with("conf/config.toml:1:"), "{err}");
}

#[test]
fn duplicate_environments_are_rejected_where_the_second_starts() {
    let err = error_of(
        "[[environments]]\nname = \"a\"\ntype = \"local\"\n\n[[environments]]\nname = \"a\"\ntype = \"local\"\n",
    );
    assert!(
        err.contains("conf/config.toml:5:1:") && err.contains("`a` is defined twice"),
        "{err}"
    );
}

#[test]
fn an_undefined_default_environment_lists_the_defined_ones() {
    let err = error_of(
        "default_environment = \"gpu\"\n[[environments]]\nname = \"a\"\ntype = \"local\"\n",
    );
    assert!(err.starts_with("conf/config.toml:1:23:"), "{err}");
    assert!(
        err.contains("`gpu`") && err.contains("environments: a"),
        "{err}"
    );
}

#[test]
fn a_docker_environment_needs_its_docker_table() {
    let err = error_of("[[environments]]\nname = \"d\"\ntype = \"docker\"\n");
    assert!(
        err.contains("`d`") && err.contains("no `docker` table"),
        "{err}"
    );
}

#[test]
fn the_store_is_relative_to_the_config_file() {
    let config = Config::parse(
        "[store]\ndir = \"logs\"\n[[environments]]\nname = \"l\"\ntype = \"local\"\n",
        Path::new("/etc/subrt/config.toml"),
    )
    .unwrap();
    assert_eq!(config.store_dir, Path::new("/etc/subrt/logs"));
}

#[test]
fn asking_for_an_unknown_environment_lists_the_configured_ones() {
    let config = Config::builtin();
    let err = config.environment(Some("gpu")).unwrap_err();
    assert!(matches!(err, ConfigError::UnknownEnvironment { .. }));
    assert!(err.to_string().contains("configured: local"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load("/no/such/config.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such/config.toml"), "{err}");
}

#[test]
fn an_empty_config_and_unusable_limits_are_refused_where_they_are() {
    let err = error_of("");
    assert!(err.contains("no [[environments]]"), "{err}");
    let err = error_of("# only a comment\n[store]\ndir = \"runs\"\n");
    assert!(err.contains("no [[environments]]"), "{err}");
    let docker = |setting: &str| {
        error_of(&format!(
            "[[environments]]\nname = \"l\"\ntype = \"local\"\n\n\
             [[environments]]\nname = \"d\"\ntype = \"docker\"\n\
             docker = {{ image = \"i\", {setting} }}\n"
        ))
    };
    for (setting, words) in [
        ("memory = \"lots\"", "docker.memory `lots`"),
        ("cpus = -1.0", "docker.cpus -1"),
        ("cpus = nan", "docker.cpus NaN"),
        ("pids_limit = 0", "docker.pids_limit 0"),
    ] {
        let err = docker(setting);
        assert!(
            err.contains("config.toml:5:1") && err.contains(words),
            "{setting}: {err}"
        );
    }
}
