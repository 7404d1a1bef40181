//! Forks of the process subrt runs in, made by its host while one of
//! subrt's threads is inside a process-wide lock or a one-time set-up.
//!
//! A Python harness forks (`os.fork`, `multiprocessing`'s default start
//! method on Linux) whenever it likes, from any of its threads, while
//! subrt's threads run its sessions. The child is a copy of the memory with
//! one thread in it: a lock another thread held at that instant stays held
//! there, a set-up another thread was running stays running, and the
//! child's first session waits for them for ever. (Seen: a child stuck in
//! `OnceLock::initialize` of the PID namespace probe, which takes
//! milliseconds, when the parent forked during its own first session.)
//!
//! So each such place is entered through [`section`] (or [`lock`] and
//! [`once`], which do it for a static `Mutex` and `OnceLock`), and a
//! `pthread_atfork` handler makes every fork wait until no section is under
//! way, and holds new ones off until the fork is made: the child starts with
//! every lock free and every set-up done or not begun. Sections are short
//! (a lock's hold, a probe) and never wait for the host; one entered again
//! on the same thread counts once. A fork made from inside a section (std's
//! `Command` forks when given a `pre_exec`) is not held: its child execs at
//! once and enters none, and waiting would wait for its own thread.
//!
//! Per-process state that a child must not share with its parent (the
//! lasting thread, the PID namespaces' keeper) is keyed by pid besides;
//! this only makes reaching it safe.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::{Condvar, Mutex, MutexGuard, Once, OnceLock, PoisonError};

/// The sections under way and the forks waiting for them.
struct Gate {
    /// Sections under way in the process (a thread's nested ones count
    /// once).
    sections: usize,
    /// Forks waiting for them to end.
    forks: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    sections: 0,
    forks: 0,
});
/// Signalled when the last section ends while a fork waits (only then: a
/// signal is a system call).
static NONE_UNDER_WAY: Condvar = Condvar::new();

thread_local! {
    /// Sections this thread is in.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// [`GATE`]'s lock, held by this thread across a fork it makes.
    static HELD: RefCell<Option<MutexGuard<'static, Gate>>> = const { RefCell::new(None) };
}

/// Registers the fork handlers, once per process. Sections call it; the
/// Python package calls it at import, so that no fork can come while it
/// runs (and gates its own executor's lock).
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: the handlers are plain functions that live as long as the
        // process; registering them has no other effect.
        unsafe {
            libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork));
        }
    });
}

/// A part of subrt a fork must not cut in two, until this is dropped. Not
/// `Send`: a section is counted on its thread, so it cannot be held across
/// an `.await` of a task that may move.
#[must_use = "the section ends when this is dropped"]
pub struct Section(PhantomData<*const ()>);

/// Enters a section.
pub fn section() -> Section {
    install();
    if DEPTH.get() == 0 {
        gate().sections += 1;
    }
    DEPTH.set(DEPTH.get() + 1);
    Section(PhantomData)
}

impl Drop for Section {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
        if DEPTH.get() == 0 {
            let mut gate = gate();
            gate.sections -= 1;
            if gate.sections == 0 && gate.forks > 0 {
                NONE_UNDER_WAY.notify_all();
            }
        }
    }
}

/// A process-wide `Mutex`'s guard, with the section it is held in (the
/// guard is released first).
pub struct Locked<T: 'static> {
    guard: MutexGuard<'static, T>,
    _section: Section,
}

impl<T> std::ops::Deref for Locked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Locked<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// Locks a process-wide `mutex` in a section (a poisoned one as it is: its
/// holders leave it consistent).
pub fn lock<T>(mutex: &'static Mutex<T>) -> Locked<T> {
    let section = section();
    Locked {
        guard: mutex.lock().unwrap_or_else(PoisonError::into_inner),
        _section: section,
    }
}

/// `cell.get_or_init(init)`, the set-up in a section.
pub fn once<T>(cell: &'static OnceLock<T>, init: impl FnOnce() -> T) -> &'static T {
    if let Some(value) = cell.get() {
        return value;
    }
    let _section = section();
    cell.get_or_init(init)
}

fn gate() -> MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Before a fork: waits for the sections under way to end, and keeps
/// [`GATE`] locked (so that none begins) until the fork is made.
extern "C" fn before_fork() {
    if DEPTH.get() > 0 {
        return;
    }
    let mut gate = gate();
    gate.forks += 1;
    while gate.sections > 0 {
        gate = NONE_UNDER_WAY
            .wait(gate)
            .unwrap_or_else(PoisonError::into_inner);
    }
    gate.forks -= 1;
    HELD.set(Some(gate));
}

/// After a fork, in the parent and in the child: sections may begin.
extern "C" fn after_fork() {
    HELD.take();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Forks; the child runs `child` and exits with what it returns. The
    /// child's exit code, or `None` if it had not exited within 10 s (it is
    /// killed then: it hung).
    fn fork_and_wait(child: impl FnOnce() -> i32) -> Option<i32> {
        // SAFETY: the child only runs `child` (locks and reads of this
        // module's statics) and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = child();
            // SAFETY: ends the child without running the parent's exit code.
            unsafe { libc::_exit(code) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut status = 0;
            // SAFETY: waits for our own child without blocking.
            let waited = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
            if waited == pid {
                return Some(libc::WEXITSTATUS(status));
            }
            if Instant::now() > deadline {
                // SAFETY: kills and reaps our own hung child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &raw mut status, 0);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_fork_waits_for_a_lock_another_thread_holds_and_the_child_finds_it_free() {
        static SHARED: Mutex<u32> = Mutex::new(0);
        let (held, wait) = mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut shared = lock(&SHARED);
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            *shared += 1;
        });
        wait.recv().unwrap();
        let child = fork_and_wait(|| match *lock(&SHARED) {
            1 => 0,
            _ => 1,
        });
        holder.join().unwrap();
        assert_eq!(
            child,
            Some(0),
            "the child hung on a lock held at the fork (None), or the fork cut the holder's \
             section in two (1)"
        );
    }

    #[test]
    fn a_fork_waits_for_a_set_up_under_way_and_the_child_gets_its_value() {
        static CELL: OnceLock<u32> = OnceLock::new();
        let (started, wait) = mpsc::channel();
        let setter = std::thread::spawn(move || {
            once(&CELL, || {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
                7
            });
        });
        wait.recv().unwrap();
        let child = fork_and_wait(|| match once(&CELL, || 8) {
            7 => 0,
            _ => 1,
        });
        setter.join().unwrap();
        assert_eq!(
            child,
            Some(0),
            "the child hung on a set-up running at the fork (None), or ran its own (1)"
        );
    }
}
