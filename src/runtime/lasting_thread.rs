//! One thread that lives as long as the process, to run what is bound to
//! the thread that does it: spawning processes that get `PR_SET_PDEATHSIG`
//! (see [`host_spawn`](super::host_spawn)). `PR_SET_PDEATHSIG` fires when
//! the *thread* that made a process ends, not its process, and tokio polls
//! a task on whichever thread drives the runtime: the Python package's is
//! driven by the Python thread that waits on it, which may end long before
//! the command it happened to start.
//!
//! It is started on first use, and again in a child made by `fork`, which
//! inherits none of its parent's threads.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The thread's queue, and the process it belongs to.
static QUEUE: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);

/// Runs `job` on the lasting thread and returns what it returned, blocking
/// the caller meanwhile (a panic in `job` is raised again here).
///
/// # Errors
///
/// The thread could not be started.
pub(crate) fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (reply, answer) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = reply.send(panic::catch_unwind(AssertUnwindSafe(job)));
    });
    queue()?
        .send(job)
        .map_err(|_| io::Error::other("subrt's lasting thread has ended"))?;
    match answer.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panicked)) => panic::resume_unwind(panicked),
        Err(_) => Err(io::Error::other("subrt's lasting thread has ended")),
    }
}

fn queue() -> io::Result<mpsc::Sender<Job>> {
    let pid = std::process::id();
    let mut slot = super::fork_gate::lock(&QUEUE);
    if let Some((owner, queue)) = &*slot
        && *owner == pid
    {
        return Ok(queue.clone());
    }
    let (queue, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("subrt-lasting".into())
        .spawn(move || {
            for job in jobs {
                job();
            }
        })?;
    *slot = Some((pid, queue.clone()));
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_from_ending_threads_run_on_one_thread_that_stays() {
        let ids: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(|| run(|| std::thread::current().id()).unwrap())
                    .join()
                    .unwrap()
            })
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_ne!(ids[0], std::thread::current().id());
    }

    #[test]
    fn a_panicking_job_panics_its_caller_and_the_thread_goes_on() {
        let caught = panic::catch_unwind(|| run(|| panic!("job failed")));
        assert!(caught.is_err());
        assert_eq!(run(|| 7).unwrap(), 7);
    }
}
