//! Paths that must stay inside a folder: what subrt reads or mounts on a
//! submission's behalf (stdin files, assets, working dirs).
//!
//! A submission's folder is untrusted content: `input.txt ->
//! /root/.ssh/id_ed25519` in it is an attack on whoever follows it, and
//! subrt runs with more rights than the submission. So a path under a
//! folder that must contain it is resolved with `openat2(2)` and
//! `RESOLVE_BENEATH`: the kernel follows `..` and symbolic links only as
//! long as they stay inside the folder, and the file read is the one
//! resolved (no gap between a check and the open). Kernels before 5.6
//! lack `openat2`; there the path is resolved with `realpath` and checked
//! to be inside, which a submission running at that very moment could race.
//!
//! The rule, as the README states it:
//! - a file inside a submission's folder (a stdin file, an asset there, the
//!   folder itself through a link) must resolve inside that folder;
//! - paths of a batch file must resolve inside the batch file's folder,
//!   unless the operator passes `--allow-outside`;
//! - what the operator names on the command line is taken as given, except
//!   a file inside the working dir, which is the submission's.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A path that leads out of the folder it must stay in, or cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// `..` or a symbolic link leads out of the folder.
    #[error(
        "{} leads out of {}{}; refused (a path there must stay inside it)",
        path.display(),
        root.display(),
        target.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default()
    )]
    Outside {
        /// The path as given.
        path: PathBuf,
        /// The folder it must stay in.
        root: PathBuf,
        /// Where it leads, when that could be told without reading it.
        target: Option<PathBuf>,
    },
    /// It cannot be opened (missing, not readable...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `path` relative to `root` when it is under it lexically (`root/a/b` or
/// `a/b`), `None` for an absolute path elsewhere.
pub fn relative_to(root: &Path, path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        path.strip_prefix(root).ok().map(Path::to_owned)
    } else {
        Some(path.to_owned())
    }
}

/// Opens `path` (relative to `root`, or absolute under it) for reading,
/// following `..` and links only while they stay inside `root`; refuses
/// what is not a regular file or folder (a FIFO would block the reader).
///
/// # Errors
///
/// [`BeneathError::Outside`] when it leads out; [`BeneathError::Io`] when it
/// cannot be opened.
pub fn open(root: &Path, path: &Path) -> Result<File, BeneathError> {
    let io = |source| BeneathError::Io {
        path: root.join(path),
        source,
    };
    let outside = || BeneathError::Outside {
        path: path.to_owned(),
        root: root.to_owned(),
        target: std::fs::canonicalize(root.join(path)).ok(),
    };
    let Some(relative) = relative_to(root, path) else {
        return Err(outside());
    };
    let dir = File::open(root).map_err(|source| BeneathError::Io {
        path: root.to_owned(),
        source,
    })?;
    let file = match openat2_beneath(&dir, &relative) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Err(outside()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            // No openat2 (before 5.6, or a seccomp filter that refuses it).
            let real = std::fs::canonicalize(root.join(&relative)).map_err(io)?;
            let real_root = std::fs::canonicalize(root).map_err(io)?;
            if !real.starts_with(&real_root) {
                return Err(outside());
            }
            open_nonblocking(&real).map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() && !kind.is_dir() {
        return Err(io(std::io::Error::other(
            "not a regular file (a FIFO, socket or device)",
        )));
    }
    Ok(file)
}

/// Reads the file `path` under `root` (see [`open`]), up to `limit` bytes.
///
/// # Errors
///
/// As [`open`], and a file larger than `limit`.
pub fn read(root: &Path, path: &Path, limit: u64) -> Result<Vec<u8>, BeneathError> {
    read_whole(open(root, path)?, &root.join(path), limit)
}

/// All of `file` (at `path`, for errors), refused when it is a folder or
/// larger than `limit`.
fn read_whole(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, BeneathError> {
    let io = |source| BeneathError::Io {
        path: path.to_owned(),
        source,
    };
    if file.metadata().map_err(io)?.is_dir() {
        return Err(io(std::io::Error::other("a folder, not a file")));
    }
    let mut data = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > limit {
        return Err(io(std::io::Error::other(format!(
            "larger than {limit} bytes"
        ))));
    }
    Ok(data)
}

/// Where `path` under `root` really is (every link resolved, inside
/// `root`), for what subrt hands to another program to open (a bind mount
/// by the Docker daemon, a sandbox's mount).
///
/// # Errors
///
/// As [`open`].
pub fn resolve(root: &Path, path: &Path) -> Result<PathBuf, BeneathError> {
    let file = open(root, path)?;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(|source| {
        BeneathError::Io {
            path: root.join(path),
            source,
        }
    })
}

/// A path the operator named, for subrt to read or mount, with
/// `submission` the submission's folder: a path inside that folder
/// (relative to it, or absolute under it) must resolve inside it and is
/// returned resolved; any other path is taken as given.
///
/// # Errors
///
/// A path inside the folder that leads out of it, or cannot be opened.
pub fn resolve_in_submission(submission: &Path, path: &Path) -> Result<PathBuf, BeneathError> {
    match relative_to(submission, &lexical(path)) {
        Some(relative) if !relative.starts_with("..") => resolve(submission, &relative),
        _ => Ok(path.to_owned()),
    }
}

/// Reads a file the operator named for a submission (its stdin, say), up
/// to `limit` bytes, with `submission` the submission's folder: a path
/// inside that folder (relative to it, or absolute under it) is read
/// beneath it (a link there leading out is refused: the folder is the
/// submission's, and the bytes go to it); any other path is the operator's
/// own file, read as named.
///
/// # Errors
///
/// A path inside the folder that leads out of it; a file that cannot be
/// read or is larger than `limit`.
pub fn read_in_submission(
    submission: &Path,
    path: &Path,
    limit: u64,
) -> Result<Vec<u8>, BeneathError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match relative_to(submission, &lexical(&path)) {
        Some(relative) if !relative.starts_with("..") => read(submission, &relative, limit),
        _ => {
            let file = File::open(&path).map_err(|source| BeneathError::Io {
                path: path.clone(),
                source,
            })?;
            read_whole(file, &path, limit)
        }
    }
}

/// `path` with `.` and `..` taken away lexically (`a/../b` is `b`; a `..`
/// with nothing before it stays).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                if matches!(last, Some(Component::Normal(_))) {
                    out.pop();
                } else if !matches!(last, Some(Component::RootDir)) {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// `openat2(dir, relative, O_RDONLY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn openat2_beneath(dir: &File, relative: &Path) -> std::io::Result<File> {
    // An empty path is the folder itself.
    let relative = if relative.components().next().is_none() {
        Path::new(".")
    } else {
        relative
    };
    debug_assert!(!matches!(
        relative.components().next(),
        Some(Component::RootDir)
    ));
    let name = CString::new(relative.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid descriptor, a NUL-terminated path and an open_how of
    // the size passed; the kernel returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("submission");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/input.txt"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        (dir, root)
    }

    #[test]
    fn a_file_inside_is_read_and_links_that_stay_inside_are_followed() {
        let (_dir, root) = folder();
        std::os::unix::fs::symlink("sub/input.txt", root.join("alias")).unwrap();
        assert_eq!(
            read(&root, Path::new("sub/input.txt"), 100).unwrap(),
            b"inside"
        );
        assert_eq!(read(&root, Path::new("alias"), 100).unwrap(), b"inside");
        assert_eq!(
            read(&root, &root.join("sub/../alias"), 100).unwrap(),
            b"inside"
        );
    }

    #[test]
    fn links_and_dots_that_lead_out_are_refused_unread() {
        let (dir, root) = folder();
        let secret = dir.path().join("secret");
        std::os::unix::fs::symlink(&secret, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("dir")).unwrap();
        for path in ["abs", "rel", "../secret", "dir/secret", "sub/../../secret"] {
            let error = read(&root, Path::new(path), 100).unwrap_err();
            assert!(
                matches!(error, BeneathError::Outside { .. }),
                "{path}: {error}"
            );
        }
        let error = read(&root, &secret, 100).unwrap_err();
        assert!(error.to_string().contains("leads out of"), "{error}");
        let error = resolve(&root, Path::new("abs")).unwrap_err();
        assert!(error.to_string().contains("secret"), "says where: {error}");
    }

    #[test]
    fn paths_inside_a_submission_stay_there_and_others_are_the_operators() {
        let (dir, root) = folder();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("abs")).unwrap();
        assert!(resolve_in_submission(&root, Path::new("abs")).is_err());
        assert!(resolve_in_submission(&root, &root.join("abs")).is_err());
        assert!(resolve_in_submission(&root, &root.join("sub/../abs")).is_err());
        let shared = dir.path().join("secret");
        assert_eq!(resolve_in_submission(&root, &shared).unwrap(), shared);
        assert_eq!(
            resolve_in_submission(&root, Path::new("sub/input.txt")).unwrap(),
            root.join("sub/input.txt")
        );
        assert_eq!(lexical(Path::new("a/../../b/./c")), Path::new("../b/c"));
        assert_eq!(lexical(Path::new("/../a")), Path::new("/a"));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_dir, root) = folder();
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let error = read(&root, Path::new("fifo"), 100).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
