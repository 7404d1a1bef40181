//! `subrt gc`: containers and Slurm jobs whose owning process is gone.

use std::io::Write;

use clap::Args;
use color_eyre::eyre::Result;

use super::say;
use subrt::config::Config;
use subrt::runtime::{docker, leftovers, slurm};

/// Arguments of `subrt gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Every subrt container, whether its owner runs or not.
    #[arg(long)]
    pub all: bool,
    /// Only containers of this environment.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

pub(super) async fn gc(config: &Config, args: &GcArgs) -> Result<i32> {
    // The default daemon, and every other one an environment names.
    let mut hosts: Vec<Option<String>> = vec![None];
    for spec in &config.environments {
        let host = spec.docker.as_ref().and_then(|d| d.host.clone());
        if host.is_some() && !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let mut status = 0;
    let (mut found, mut removed) = (0, 0);
    for host in hosts {
        let docker = match docker::connect(host.as_deref()).await {
            Ok(docker) => docker,
            Err(e) => {
                say(&e);
                status = 1;
                continue;
            }
        };
        let mut containers = leftovers::leftovers(&docker, args.all).await?;
        if let Some(env) = &args.env {
            containers.retain(|c| &c.environment == env);
        }
        for container in containers {
            found += 1;
            let what = format!(
                "{} ({}) run {} env {}: {}",
                container.name,
                container.id.get(..12).unwrap_or(&container.id),
                container.run_id,
                container.environment,
                container.verdict
            );
            if args.dry_run {
                writeln!(std::io::stdout(), "would remove {what}")?;
            } else {
                match leftovers::remove(&docker, &container.id).await {
                    Ok(()) => {
                        removed += 1;
                        writeln!(std::io::stdout(), "removed {what}")?;
                    }
                    Err(e) => {
                        say(&e);
                        status = 1;
                    }
                }
            }
        }
    }
    // Jobs on a Slurm cluster, when an environment runs on one.
    let slurm = config.environments.iter().any(|e| e.kind == "slurm");
    if slurm {
        match gc_slurm(args).await {
            Ok((jobs_found, jobs_cancelled)) => {
                found += jobs_found;
                removed += jobs_cancelled;
            }
            Err(e) => {
                say(&e);
                status = 1;
            }
        }
    }
    let scope = match (args.all, slurm) {
        (true, true) => "subrt containers and jobs",
        (true, false) => "subrt containers",
        (false, true) => "leftover containers and jobs",
        (false, false) => "leftover containers",
    };
    match (found, args.dry_run) {
        (0, _) => writeln!(std::io::stdout(), "no {scope}")?,
        (n, true) => writeln!(std::io::stdout(), "{n} {scope} (dry run: none removed)")?,
        (n, false) => writeln!(std::io::stdout(), "{removed} of {n} {scope} removed")?,
    }
    Ok(status)
}

/// `subrt gc` on the Slurm cluster: subrt's jobs whose owner is gone (or
/// all of them), cancelled. Returns how many were found and cancelled.
async fn gc_slurm(args: &GcArgs) -> Result<(usize, usize)> {
    let mut jobs = slurm::leftover_jobs(args.all).await?;
    if let Some(env) = &args.env {
        let prefix = format!("subrt-{env}-");
        jobs.retain(|j| j.name.starts_with(&prefix));
    }
    let mut cancelled = 0;
    for job in &jobs {
        let what = format!(
            "slurm job {} ({}, {} on {}), owner {}{}",
            job.job_id,
            job.name,
            job.state,
            job.nodes,
            job.owner,
            if job.owner_gone { " (gone)" } else { "" }
        );
        if args.dry_run {
            writeln!(std::io::stdout(), "would cancel {what}")?;
        } else {
            slurm::cancel_job(&job.job_id).await?;
            cancelled += 1;
            writeln!(std::io::stdout(), "cancelled {what}")?;
        }
    }
    Ok((jobs.len(), cancelled))
}
