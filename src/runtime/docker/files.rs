//! Files of a container through the Engine's archive API: a read is a
//! `GET /containers/{id}/archive` (a tar of one file, read as it comes), a
//! write a `PUT` of a tar of one file into its folder. Neither runs a
//! process in the container.
//!
//! The daemon reads and writes as root, so the session user's rights are
//! checked here, from the modes and owners the tar headers give (the
//! user's primary group only); a written file gets the user as its owner
//! (or keeps its owner and mode when it existed). Missing parent folders
//! are made by `mkdir -p` run as the user: the API cannot make them
//! without touching the folders that exist.

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::daemon::daemon_message;
use crate::runtime::FileError;
use crate::runtime::users::UserIds;

/// A tar block.
const BLOCK: usize = 512;
/// Links followed when a path is one, at most (as the kernel's `ELOOP`).
const MAX_LINKS: u32 = 40;

/// What a tar header says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    link: String,
}

impl Entry {
    fn is_dir(&self) -> bool {
        self.kind == b'5'
    }

    fn is_link(&self) -> bool {
        self.kind == b'2'
    }

    /// Whether `user` has the permission of `bits` (4 read, 2 write, 1
    /// search) on it.
    fn allows(&self, user: UserIds, bits: u32) -> bool {
        if user.uid == 0 {
            return true;
        }
        let shift = if user.uid == self.uid {
            6
        } else if user.gid == self.gid {
            3
        } else {
            0
        };
        (self.mode >> shift) & bits == bits
    }
}

/// A container's files, as `user`.
pub(super) struct Archive<'a> {
    pub docker: &'a Docker,
    pub container: &'a str,
    /// The container's working dir: relative paths start there.
    pub workdir: &'a str,
    pub user: UserIds,
    /// The user as `docker exec -u` takes it (for `mkdir -p`).
    pub exec_user: Option<&'a str>,
}

impl Archive<'_> {
    /// `path` made absolute (lexically) against the working dir.
    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.workdir.trim_end_matches('/'))
        }
    }

    /// Reads `path` (links followed), at most `limit` bytes.
    pub async fn read(&self, path: &str, limit: u64) -> Result<Bytes, FileError> {
        let mut target = self.absolute(path);
        for _ in 0..MAX_LINKS {
            let mut tar = Tar::open(self.docker, self.container, &target, path).await?;
            let Some(entry) = tar.header().await? else {
                return Err(FileError::NotFound { path: path.into() });
            };
            if entry.is_link() {
                target = follow(&target, &entry.link);
                continue;
            }
            if entry.is_dir() {
                return Err(FileError::IsADirectory { path: path.into() });
            }
            if !entry.allows(self.user, 4) {
                return Err(FileError::PermissionDenied { path: path.into() });
            }
            if entry.size > limit {
                return Err(FileError::TooLarge {
                    path: path.into(),
                    size: entry.size,
                    limit,
                });
            }
            return tar.body(entry.size).await;
        }
        Err(FileError::Other {
            path: path.into(),
            reason: "too many levels of symbolic links".into(),
        })
    }

    /// Replaces the contents of `path` with `data`, making the missing
    /// parent folders.
    pub async fn write(&self, path: &str, data: Bytes) -> Result<(), FileError> {
        let target = self.absolute(path);
        let (parent, name) = match target.rsplit_once('/') {
            Some(("", name)) => ("/".to_owned(), name.to_owned()),
            Some((parent, name)) => (parent.to_owned(), name.to_owned()),
            None => unreachable!("an absolute path has a slash"),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(FileError::IsADirectory { path: path.into() });
        }
        let existing = self.stat(&target, path).await?;
        let (mode, owner) = match &existing {
            Some(entry) if entry.is_dir() => {
                return Err(FileError::IsADirectory { path: path.into() });
            }
            Some(entry) if !entry.allows(self.user, 2) => {
                return Err(FileError::PermissionDenied { path: path.into() });
            }
            Some(entry) if !entry.is_link() => (
                entry.mode & 0o7777,
                UserIds {
                    uid: entry.uid,
                    gid: entry.gid,
                },
            ),
            // A link is written through as a new file in its place, as the
            // user: rare enough not to follow here.
            _ => (0o644, self.user),
        };
        let folder = match self.stat(&parent, path).await? {
            Some(folder) => folder,
            None => {
                self.make_dirs(&parent, path).await?;
                self.stat(&parent, path)
                    .await?
                    .ok_or_else(|| FileError::NotFound { path: path.into() })?
            }
        };
        if !folder.is_dir() {
            return Err(FileError::NotFound { path: path.into() });
        }
        if existing.is_none() && !folder.allows(self.user, 3) {
            return Err(FileError::PermissionDenied { path: path.into() });
        }
        let header = header(&name, mode, owner, data.len() as u64);
        let padding = (BLOCK - data.len() % BLOCK) % BLOCK;
        let chunks = [header, data, Bytes::from(vec![0u8; padding + 2 * BLOCK])];
        let body = bollard::body_stream(futures_util::stream::iter(chunks));
        let options = UploadToContainerOptions {
            path: parent.clone(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(self.container, Some(options), body)
            .await
            .map_err(|e| FileError::Other {
                path: path.into(),
                reason: format!("the daemon refused the upload: {}", daemon_message(&e)),
            })
    }

    /// The header of `target`, `None` when nothing is there.
    async fn stat(&self, target: &str, shown: &str) -> Result<Option<Entry>, FileError> {
        match Tar::open(self.docker, self.container, target, shown).await {
            Ok(mut tar) => tar.header().await,
            Err(FileError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `mkdir -p dir` as the user.
    async fn make_dirs(&self, dir: &str, shown: &str) -> Result<(), FileError> {
        let refused = |reason: String| FileError::Other {
            path: shown.into(),
            reason: format!("making its folder {dir}: {reason}"),
        };
        let options = CreateExecOptions::<String> {
            cmd: Some(vec!["mkdir".into(), "-p".into(), "--".into(), dir.into()]),
            user: self.exec_user.map(str::to_owned),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(self.container, options)
            .await
            .map_err(|e| refused(daemon_message(&e)))?;
        let mut said = Vec::new();
        if let Ok(StartExecResults::Attached { mut output, .. }) =
            self.docker.start_exec(&exec.id, None).await
        {
            while let Some(Ok(chunk)) = output.next().await {
                said.extend_from_slice(&chunk.into_bytes());
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .ok()
            .and_then(|i| i.exit_code);
        match code {
            Some(0) => Ok(()),
            _ => {
                let said = String::from_utf8_lossy(&said);
                if said.contains("Permission denied") {
                    Err(FileError::PermissionDenied { path: shown.into() })
                } else {
                    Err(refused(said.trim().to_owned()))
                }
            }
        }
    }
}

/// `link` (a link's target) resolved against the folder of `at`.
fn follow(at: &str, link: &str) -> String {
    if link.starts_with('/') {
        return link.to_owned();
    }
    let folder = at.rsplit_once('/').map_or("", |(folder, _)| folder);
    format!("{folder}/{link}")
}

/// A tar archive of one path, read as it arrives.
struct Tar {
    stream: std::pin::Pin<
        Box<dyn futures_core::Stream<Item = Result<Bytes, bollard::errors::Error>> + Send>,
    >,
    buffer: BytesMut,
    shown: String,
}

impl Tar {
    async fn open(
        docker: &Docker,
        container: &str,
        target: &str,
        shown: &str,
    ) -> Result<Self, FileError> {
        let options = DownloadFromContainerOptions {
            path: target.to_owned(),
        };
        let mut tar = Self {
            stream: Box::pin(docker.download_from_container(container, Some(options))),
            buffer: BytesMut::new(),
            shown: shown.to_owned(),
        };
        // The daemon's answer (404 for a path that is not there) comes with
        // the first bytes.
        tar.fill(1).await?;
        Ok(tar)
    }

    /// Reads until `bytes` are buffered (or the archive ends).
    async fn fill(&mut self, bytes: usize) -> Result<(), FileError> {
        while self.buffer.len() < bytes {
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(self.error(&e)),
                None => break,
            }
        }
        Ok(())
    }

    fn error(&self, e: &bollard::errors::Error) -> FileError {
        let path = self.shown.clone();
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => FileError::NotFound { path },
            _ => FileError::Other {
                path,
                reason: daemon_message(e),
            },
        }
    }

    /// The next file's header (extended headers skipped), `None` at the end.
    async fn header(&mut self) -> Result<Option<Entry>, FileError> {
        loop {
            self.fill(BLOCK).await?;
            if self.buffer.len() < BLOCK || self.buffer[..BLOCK].iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let block = self.buffer.split_to(BLOCK);
            let entry = parse(&block).ok_or_else(|| FileError::Other {
                path: self.shown.clone(),
                reason: "the daemon sent an archive subrt cannot read".into(),
            })?;
            match entry.kind {
                // pax extended headers, GNU long names: skip their data.
                b'x' | b'g' | b'L' | b'K' => {
                    let skip = padded(entry.size);
                    self.fill(skip).await?;
                    let skip = skip.min(self.buffer.len());
                    let _ = self.buffer.split_to(skip);
                }
                _ => return Ok(Some(entry)),
            }
        }
    }

    /// The `size` bytes after the header.
    async fn body(&mut self, size: u64) -> Result<Bytes, FileError> {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        self.buffer.reserve(size.saturating_sub(self.buffer.len()));
        self.fill(size).await?;
        if self.buffer.len() < size {
            return Err(FileError::Other {
                path: self.shown.clone(),
                reason: "the archive ended early".into(),
            });
        }
        Ok(self.buffer.split_to(size).freeze())
    }
}

/// `size` rounded up to whole blocks.
fn padded(size: u64) -> usize {
    usize::try_from(size.div_ceil(BLOCK as u64) * BLOCK as u64).unwrap_or(usize::MAX)
}

/// An octal (or base-256) number field.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn parse(block: &[u8]) -> Option<Entry> {
    Some(Entry {
        mode: u32::try_from(number(&block[100..108])?).ok()?,
        uid: u32::try_from(number(&block[108..116])?).ok()?,
        gid: u32::try_from(number(&block[116..124])?).ok()?,
        size: number(&block[124..136])?,
        kind: match block[156] {
            0 => b'0',
            kind => kind,
        },
        link: text(&block[157..257]),
    })
}

/// A ustar header for a regular file `name` (a pax header first when the
/// name does not fit).
fn header(name: &str, mode: u32, owner: UserIds, size: u64) -> Bytes {
    let mut out = BytesMut::new();
    let short = if name.len() <= 100 {
        name.to_owned()
    } else {
        let record = pax_record("path", name);
        out.extend_from_slice(&block("pax", 0o644, owner, record.len() as u64, b'x'));
        out.extend_from_slice(record.as_bytes());
        out.extend_from_slice(&vec![0u8; padded(record.len() as u64) - record.len()]);
        name.chars().take(99).collect()
    };
    out.extend_from_slice(&block(&short, mode, owner, size, b'0'));
    out.freeze()
}

/// `"<len> key=value\n"`, its length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len += 1;
    }
    format!("{len} {key}={value}\n")
}

fn block(name: &str, mode: u32, owner: UserIds, size: u64, kind: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let put = |b: &mut [u8; BLOCK], at: usize, width: usize, value: u64| {
        let text = format!("{value:0w$o}", w = width - 1);
        b[at..at + width - 1].copy_from_slice(&text.as_bytes()[text.len() - (width - 1)..]);
    };
    let name = name.as_bytes();
    b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    put(&mut b, 100, 8, u64::from(mode));
    put(&mut b, 108, 8, u64::from(owner.uid));
    put(&mut b, 116, 8, u64::from(owner.gid));
    put(&mut b, 124, 12, size);
    put(&mut b, 136, 12, 0);
    b[156] = kind;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_as_written() {
        let owner = UserIds {
            uid: 1000,
            gid: 1001,
        };
        let written = header("file with space.txt", 0o640, owner, 70_000);
        let entry = parse(&written).unwrap();
        assert_eq!(
            entry,
            Entry {
                kind: b'0',
                mode: 0o640,
                uid: 1000,
                gid: 1001,
                size: 70_000,
                link: String::new(),
            }
        );
        assert!(entry.allows(owner, 6));
        assert!(!entry.allows(UserIds { uid: 7, gid: 1001 }, 2));
        assert!(entry.allows(UserIds { uid: 7, gid: 1001 }, 4));
        assert!(!entry.allows(UserIds { uid: 7, gid: 7 }, 4));
        assert!(entry.allows(UserIds { uid: 0, gid: 0 }, 6));
    }

    #[test]
    fn a_long_name_gets_a_pax_record_that_counts_itself() {
        let record = pax_record("path", &"n".repeat(120));
        let (len, _) = record.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), record.len());
        let written = header(&"n".repeat(120), 0o644, UserIds { uid: 0, gid: 0 }, 1);
        assert_eq!(written[156], b'x');
        assert_eq!(written.len() % BLOCK, 0);
    }
}
