//! Maps an environment spec's `type` to the runtime that implements it.
//!
//! A backend is a type implementing [`RuntimeBackend`]; adding one is its
//! file plus one `register` line in [`Registry::with_builtins`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use super::docker::DockerRuntime;
use super::local::LocalRuntime;
use super::slurm::SlurmRuntime;
use super::{LaunchSpec, RuntimeError, SubmissionRuntime};
use crate::spec::EnvironmentSpec;

/// A runtime that the registry can make from a launch.
pub trait RuntimeBackend: SubmissionRuntime + Sized + 'static {
    /// Makes a runtime for `launch`: checks the spec and the working dir and
    /// acquires what every command needs (a container, say).
    fn spawn(launch: LaunchSpec) -> impl Future<Output = Result<Self, RuntimeError>> + Send;

    /// Whether `spec` can run on this machine now; the error says why not.
    fn check(spec: &EnvironmentSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type SpawnResult = Result<Box<dyn SubmissionRuntime>, RuntimeError>;

#[derive(Clone, Copy)]
struct Entry {
    spawn: fn(LaunchSpec) -> BoxFuture<SpawnResult>,
    check: fn(EnvironmentSpec) -> BoxFuture<Result<(), RuntimeError>>,
}

/// Runtime types by name.
#[derive(Default, Clone)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.keys()).finish()
    }
}

impl Registry {
    /// A registry with no types.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry with every runtime subrt ships.
    pub fn with_builtins() -> Self {
        let mut registry = Self::empty();
        registry.register::<LocalRuntime>("local");
        registry.register::<DockerRuntime>("docker");
        registry.register::<SlurmRuntime>("slurm");
        registry
    }

    /// Registers `R` under `kind`, replacing what was there.
    pub fn register<R: RuntimeBackend>(&mut self, kind: &str) {
        let entry = Entry {
            spawn: |launch| {
                Box::pin(async move {
                    let runtime: Box<dyn SubmissionRuntime> = Box::new(R::spawn(launch).await?);
                    Ok(runtime)
                })
            },
            check: |spec| Box::pin(async move { R::check(&spec).await }),
        };
        self.entries.insert(kind.to_owned(), entry);
    }

    /// The registered types, sorted.
    pub fn kinds(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn entry(&self, kind: &str) -> Result<Entry, RuntimeError> {
        self.entries
            .get(kind)
            .copied()
            .ok_or_else(|| RuntimeError::UnknownType {
                kind: kind.to_owned(),
                registered: self.kinds(),
            })
    }

    /// Makes the runtime of `launch.environment.kind`.
    pub async fn spawn(&self, launch: LaunchSpec) -> SpawnResult {
        let entry = self.entry(&launch.environment.kind)?;
        (entry.spawn)(launch).await
    }

    /// Whether `spec` can run here now (see [`RuntimeBackend::check`]).
    pub async fn check(&self, spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        let entry = self.entry(&spec.kind)?;
        (entry.check)(spec.clone()).await
    }
}

/// The registry of built-in runtimes, made on first use.
pub fn builtins() -> &'static Registry {
    static BUILTINS: OnceLock<Registry> = OnceLock::new();
    super::fork_gate::once(&BUILTINS, Registry::with_builtins)
}

/// Makes the runtime for `launch` from the [built-in registry](builtins).
pub async fn spawn_runtime(launch: LaunchSpec) -> Result<Box<dyn SubmissionRuntime>, RuntimeError> {
    builtins().spawn(launch).await
}
