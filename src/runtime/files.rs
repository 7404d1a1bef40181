//! Reading and writing files in a session's own view of the filesystem.
//!
//! A path is the session's: relative to its working dir, or absolute in
//! what its commands see (the sandbox's root, the container's). A write
//! makes the missing parent folders and replaces the file's contents.
//! Both happen as the session's user, so that what a command could not read
//! or write cannot be read or written this way either.
//!
//! Each runtime uses its own means: the local runtime the filesystem
//! directly (through the sandbox's root, as its user, when sandboxed; see
//! `HostFiles`), Docker the Engine's archive API, and a runtime with
//! nothing better a command of the session ([`through_commands`]).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::{ExecRequest, RuntimeError, SubmissionRuntime};

/// Why a file operation of a session failed: each case a user (or
/// inspect's sandbox API) tells apart.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Nothing at the path (or a folder on the way is missing).
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// The path is a directory.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path as given.
        path: String,
    },
    /// The session's user may not read (or write) it.
    #[error("{path}: permission denied (as the session's user)")]
    PermissionDenied {
        /// The path as given.
        path: String,
    },
    /// The file is larger than the reader's limit; nothing was read.
    #[error("{path}: {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The path as given.
        path: String,
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Anything else, with what was said about it.
    #[error("{path}: {reason}")]
    Other {
        /// The path as given.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The session cannot do it at all (cleaned up, its container gone).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl FileError {
    /// The error of `path` for an `errno`-style I/O error.
    pub(crate) fn from_io(path: &str, error: &io::Error) -> Self {
        let path = path.to_owned();
        match error.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => FileError::NotFound { path },
            Some(libc::EISDIR) => FileError::IsADirectory { path },
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => FileError::PermissionDenied { path },
            _ => FileError::Other {
                path,
                reason: error.to_string(),
            },
        }
    }
}

/// The files of a session on this host: the host's own, or a sandbox's
/// through its root.
#[derive(Debug)]
pub(crate) struct HostFiles {
    /// The session's root (`/proc/<init>/root`), when it has its own:
    /// paths resolve inside it, its links too (`RESOLVE_IN_ROOT`).
    pub root: Option<OwnedFd>,
    /// The working dir, as the session sees it.
    pub working_dir: PathBuf,
    /// The user (uid, gid) the files are read and written as; `None`:
    /// subrt's own.
    pub user: Option<(u32, u32)>,
}

impl HostFiles {
    /// Reads `path` whole, at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub fn read(&self, path: &str, limit: u64) -> Result<Bytes, FileError> {
        let at = |e: io::Error| FileError::from_io(path, &e);
        let file = self.open(path, libc::O_RDONLY, 0).map_err(at)?;
        let meta = file.metadata().map_err(at)?;
        if meta.is_dir() {
            return Err(FileError::IsADirectory { path: path.into() });
        }
        if meta.len() > limit {
            return Err(FileError::TooLarge {
                path: path.into(),
                size: meta.len(),
                limit,
            });
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        // A file that grows while read is read up to the limit, plus one
        // byte to know it went over.
        (&file).take(limit + 1).read_to_end(&mut data).map_err(at)?;
        if data.len() as u64 > limit {
            return Err(FileError::TooLarge {
                path: path.into(),
                size: data.len() as u64,
                limit,
            });
        }
        Ok(Bytes::from(data))
    }

    /// Replaces `path`'s contents with `data`, making the missing parent
    /// folders (mode 0755) and the file (mode 0644) as the session's user.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub fn write(&self, path: &str, data: &[u8]) -> Result<(), FileError> {
        let at = |e: io::Error| FileError::from_io(path, &e);
        let target = self.inside(path);
        if let Some(parent) = target.parent() {
            self.make_dirs(parent).map_err(at)?;
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let mut file = self.open(path, flags, 0o644).map_err(at)?;
        file.write_all(data).map_err(at)?;
        Ok(())
    }

    /// `path` as the session sees it, made absolute against its working
    /// dir.
    fn inside(&self, path: &str) -> PathBuf {
        self.working_dir.join(path)
    }

    /// Opens `path` (the session's), through its root when it has one.
    fn open(&self, path: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
        let target = self.inside(path);
        let fd = self.open_at(&target, flags | libc::O_CLOEXEC, mode)?;
        Ok(File::from(fd))
    }

    fn open_at(
        &self,
        target: &Path,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<OwnedFd> {
        match &self.root {
            Some(root) => {
                let relative = target.strip_prefix("/").unwrap_or(target);
                let relative = if relative.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    relative
                };
                openat2_in_root(root.as_raw_fd(), relative, flags, mode)
            }
            None => {
                let c = CString::new(target.as_os_str().as_bytes())
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                // SAFETY: open of a NUL-terminated path; the fd is owned
                // below.
                let fd = unsafe { libc::open(c.as_ptr(), flags, libc::c_uint::from(mode)) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: just opened, owned here.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        }
    }

    /// Makes `dir` and its missing parents, one at a time from the top
    /// (through the root, so that a link on the way cannot lead out).
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        let mut made = PathBuf::from("/");
        for part in dir.components() {
            let Component::Normal(name) = part else {
                if part == Component::ParentDir {
                    made.pop();
                }
                continue;
            };
            let parent =
                self.open_at(&made, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
            let c = CString::new(name.as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: mkdirat relative to an fd we own.
            if unsafe { libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755) } < 0 {
                let error = io::Error::last_os_error();
                if error.raw_os_error() != Some(libc::EEXIST) {
                    return Err(error);
                }
            }
            made.push(name);
        }
        Ok(())
    }
}

/// Runs `op` on a thread of its own, as `user` (file-system ids and no
/// supplementary groups, for that thread only) when one is given: the
/// kernel then checks permissions as it would for the session's commands.
///
/// # Cancel safety
///
/// Dropping the future leaves the thread to finish the operation.
pub(crate) async fn as_user<T: Send + 'static>(
    user: Option<(u32, u32)>,
    op: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("subrt-files".into())
        .spawn(move || {
            if let Some((uid, gid)) = user {
                // SAFETY: raw system calls change this thread's credentials
                // only (glibc's wrappers would change every thread's); the
                // thread ends after `op`.
                unsafe {
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
                    libc::syscall(libc::SYS_setfsgid, gid);
                    libc::syscall(libc::SYS_setfsuid, uid);
                }
            }
            let _ = tx.send(op());
        });
    if let Err(e) = spawned {
        return Err(RuntimeError::Io {
            context: "cannot start a thread for a file operation".into(),
            source: e,
        }
        .into());
    }
    rx.await.unwrap_or_else(|_| {
        Err(RuntimeError::Io {
            context: "a file operation's thread ended without an answer".into(),
            source: io::Error::other("panicked"),
        }
        .into())
    })
}

/// `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `path`
/// resolved as if `root` were `/`, links included.
fn openat2_in_root(
    root: RawFd,
    path: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data; zero is "no flags".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = u64::from(mode);
    }
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            c.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// What [`through_commands`] runs to read a file: exit 2, 21, 13, 27 say
/// not found, a directory, not readable, too large (the size on stderr).
const READ_SCRIPT: &str = r#"f=$1
[ -d "$f" ] && exit 21
[ -e "$f" ] || exit 2
[ -r "$f" ] || exit 13
size=$(wc -c < "$f") || exit 13
if [ "$size" -gt "$2" ]; then echo "$size" >&2; exit 27; fi
exec cat -- "$f""#;

/// What [`through_commands`] runs to write a file from its stdin.
const WRITE_SCRIPT: &str = r#"f=$1
[ -d "$f" ] && exit 21
case $f in */*) d=${f%/*}; mkdir -p -- "${d:-/}" || exit 13 ;; esac
[ -e "$f" ] && ! [ -w "$f" ] && exit 13
exec cat > "$f""#;

/// File operations as commands of the session (a POSIX shell, `wc` and
/// `cat` in it): for runtimes with no other way in.
pub mod through_commands {
    use super::*;

    /// Reads `path` through a command of `runtime`.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub async fn read(
        runtime: &(impl SubmissionRuntime + ?Sized),
        path: &str,
        limit: u64,
    ) -> Result<Bytes, FileError> {
        let request = ExecRequest::argv([
            "/bin/sh",
            "-c",
            READ_SCRIPT,
            "subrt-read",
            path,
            &limit.to_string(),
        ])
        .capture_limit(
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        let result = runtime.start(request).await?.finish().await?;
        let stderr = String::from_utf8_lossy(&result.stderr.data)
            .trim()
            .to_owned();
        let path = path.to_owned();
        match result.exit_code {
            0 if result.stdout.total_bytes > limit => Err(FileError::TooLarge {
                path,
                size: result.stdout.total_bytes,
                limit,
            }),
            0 => Ok(result.stdout.data),
            2 => Err(FileError::NotFound { path }),
            21 => Err(FileError::IsADirectory { path }),
            13 => Err(FileError::PermissionDenied { path }),
            27 => Err(FileError::TooLarge {
                path,
                size: stderr.parse().unwrap_or(0),
                limit,
            }),
            code => Err(FileError::Other {
                path,
                reason: format!("reading it ended {code}: {stderr}"),
            }),
        }
    }

    /// Writes `data` to `path` through a command of `runtime`.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub async fn write(
        runtime: &(impl SubmissionRuntime + ?Sized),
        path: &str,
        data: Bytes,
    ) -> Result<(), FileError> {
        let request = ExecRequest::argv(["/bin/sh", "-c", WRITE_SCRIPT, "subrt-write", path])
            .stdin(data)
            .capture_limit(64 * 1024);
        let result = runtime.start(request).await?.finish().await?;
        let stderr = String::from_utf8_lossy(&result.stderr.data)
            .trim()
            .to_owned();
        let path = path.to_owned();
        match result.exit_code {
            0 => Ok(()),
            21 => Err(FileError::IsADirectory { path }),
            13 => Err(FileError::PermissionDenied { path }),
            _ if stderr.contains("Permission denied") => Err(FileError::PermissionDenied { path }),
            _ if stderr.contains("Is a directory") => Err(FileError::IsADirectory { path }),
            code => Err(FileError::Other {
                path,
                reason: format!("writing it ended {code}: {stderr}"),
            }),
        }
    }
}
