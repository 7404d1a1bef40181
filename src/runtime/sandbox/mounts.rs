//! The filesystem a sandboxed session sees, planned by subrt and made by
//! the session's init in its own mount namespace.
//!
//! The root is a small tmpfs, read-only once built, holding:
//!
//! - the host's system folders (`local.sandbox.expose`, default `/usr`,
//!   `/bin`, `/sbin`, `/lib*`, `/etc`, `/opt`), or every entry of a
//!   `rootfs` folder, bound read-only, `nosuid`, `nodev` (a link such as
//!   `/bin -> usr/bin` is made again as a link);
//! - the working dir, read-write at its own path, and static assets
//!   read-only at theirs;
//! - a private `/tmp` and `/dev/shm` (tmpfs of `limits.tmp`, default
//!   256 MiB), a minimal `/dev` (`null`, `zero`, `full`, `random`,
//!   `urandom`, `tty` and the usual links), and a `/proc` of the session's
//!   own PID namespace;
//! - nothing else: `/home`, `/root`, `/run` (the Docker socket), `/var`,
//!   other sessions' working dirs and subrt's store are not there, and
//!   `local.sandbox.hide` hides more inside what is shown.
//!
//! Every source is taken (`open_tree`) before anything is mounted over, so
//! a source under `/tmp` is found even though the staging tmpfs covers
//! `/tmp`; the tree is then moved (`move_mount`) into the new root, and
//! `pivot_root` makes it `/`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Where the new root is built, in the init's own mount namespace (every
/// source is taken before it is covered).
const STAGE: &str = "/tmp";

/// Host folders shown when the spec names none and there is no `rootfs`.
pub(crate) const DEFAULT_EXPOSE: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// Hidden inside what is shown unless the spec says otherwise: files only
/// root should read, and the Docker socket should a spec show `/run`.
pub(crate) const DEFAULT_HIDE: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
];

/// Devices bound into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// One step of building the root.
#[derive(Debug)]
enum Op {
    /// Stop mount events from reaching the host (`MS_REC | MS_PRIVATE`).
    Private,
    /// Take a copy of the tree at `source` as descriptor `slot`.
    Take {
        slot: usize,
        source: CString,
        read_only: bool,
        recursive: bool,
        /// A device node: `nodev` would make it unusable.
        device: bool,
        /// A user namespace whose mapping the mount takes (idmapped).
        idmap: Option<libc::c_int>,
    },
    /// A tmpfs at `target`.
    Tmpfs {
        target: CString,
        options: CString,
        flags: libc::c_ulong,
    },
    Mkdir(CString),
    /// An empty file, as a mount point for a file.
    Touch(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    /// Mount descriptor `slot` at `target`.
    Attach {
        slot: usize,
        target: CString,
    },
    /// A `proc` of the init's PID namespace at `target`.
    Proc(CString),
    /// `target`'s mount made read-only.
    ReadOnly(CString),
    /// `pivot_root` into `root`, the old root detached.
    Pivot(CString),
    Hostname(CString),
    /// `lo` up, in a network namespace of its own.
    Loopback,
}

/// What a session's root is made of.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// A folder to use as the root's content, else the host's `expose`d
    /// folders.
    pub rootfs: Option<PathBuf>,
    /// Host folders shown read-only (without `rootfs`).
    pub expose: Vec<PathBuf>,
    /// Paths hidden inside what is shown.
    pub hide: Vec<PathBuf>,
    /// The working dir (read-write at its path).
    pub working_dir: PathBuf,
    /// Static assets (read-only at their paths).
    pub assets: Vec<PathBuf>,
    /// Bytes of `/tmp` and `/dev/shm` each.
    pub tmp_bytes: u64,
    /// A network namespace of its own with loopback up.
    pub own_network: bool,
    /// A user namespace (its descriptor) mapping the sandbox's user to the
    /// working dir's owner: the working dir is mounted idmapped with it.
    pub workspace_idmap: Option<libc::c_int>,
}

/// The steps, ready to run in the init.
#[derive(Debug)]
pub(crate) struct MountPlan {
    ops: Vec<Op>,
    /// Descriptors `Take` fills.
    slots: usize,
    own_network: bool,
}

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL")
}

fn staged(path: &Path) -> PathBuf {
    let relative = path.strip_prefix("/").unwrap_or(path);
    Path::new(STAGE).join(relative)
}

impl MountPlan {
    /// Plans `layout`.
    ///
    /// # Errors
    ///
    /// A path that must exist does not (the working dir, an asset, the
    /// rootfs), or is not absolute.
    pub(crate) fn new(layout: &Layout) -> Result<Self, String> {
        let mut plan = Builder::default();
        plan.ops.push(Op::Private);
        // What the root holds: the rootfs's entries, or the host's folders.
        let shown: Vec<(PathBuf, PathBuf)> = match &layout.rootfs {
            // Its /dev, /proc and /tmp are the sandbox's own.
            Some(rootfs) => std::fs::read_dir(rootfs)
                .map_err(|e| format!("rootfs {}: {e}", rootfs.display()))?
                .flatten()
                .filter(|entry| !matches!(entry.file_name().to_str(), Some("dev" | "proc" | "tmp")))
                .map(|entry| (entry.path(), Path::new("/").join(entry.file_name())))
                .collect(),
            None => layout
                .expose
                .iter()
                .filter(|p| std::fs::symlink_metadata(p).is_ok())
                .map(|p| (p.clone(), p.clone()))
                .collect(),
        };
        let mut attach = Vec::new();
        for (source, target) in &shown {
            if !target.is_absolute() {
                return Err(format!("{} is not an absolute path", target.display()));
            }
            let kind = std::fs::symlink_metadata(source)
                .map_err(|e| format!("{}: {e}", source.display()))?
                .file_type();
            if kind.is_symlink() {
                let to =
                    std::fs::read_link(source).map_err(|e| format!("{}: {e}", source.display()))?;
                attach.push(Later::Link(to, target.clone()));
            } else if kind.is_dir() || kind.is_file() {
                let slot = plan.take(source, true, true);
                attach.push(Later::Bind(slot, target.clone(), kind.is_dir()));
            }
        }
        let devices: Vec<(usize, &str)> = DEVICES
            .iter()
            .filter(|d| Path::new("/dev").join(d).exists())
            .map(|d| (plan.take(&Path::new("/dev").join(d), false, false), *d))
            .collect();
        let working = plan.take(&layout.working_dir, false, true);
        if let Some(Op::Take { idmap, .. }) = plan.ops.last_mut() {
            *idmap = layout.workspace_idmap;
        }
        let mut assets = Vec::new();
        for asset in &layout.assets {
            let dir = std::fs::metadata(asset)
                .map_err(|e| format!("static asset {}: {e}", asset.display()))?
                .is_dir();
            assets.push((plan.take(asset, true, true), asset.clone(), dir));
        }

        // The new root: a tmpfs over STAGE, in this mount namespace only.
        plan.ops.push(Op::Tmpfs {
            target: c(Path::new(STAGE)),
            options: CString::new("mode=0755,size=16m").expect("no NUL"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        });
        for later in attach {
            match later {
                Later::Link(to, link) => {
                    plan.parents(&link);
                    plan.ops.push(Op::Symlink {
                        target: c(&to),
                        link: c(&staged(&link)),
                    });
                }
                Later::Bind(slot, target, dir) => plan.attach(slot, &target, dir),
            }
        }
        let size = layout.tmp_bytes.max(4096);
        let tmpfs = |target: &Path, mode: &str| Op::Tmpfs {
            target: c(&staged(target)),
            options: CString::new(format!("mode={mode},size={size}")).expect("no NUL"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
        };
        plan.mkdir_all(Path::new("/tmp"));
        plan.ops.push(tmpfs(Path::new("/tmp"), "1777"));
        // A minimal /dev.
        plan.mkdir_all(Path::new("/dev"));
        plan.ops.push(Op::Tmpfs {
            target: c(&staged(Path::new("/dev"))),
            options: CString::new("mode=0755,size=64k").expect("no NUL"),
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        });
        for (slot, name) in devices {
            plan.attach(slot, &Path::new("/dev").join(name), false);
        }
        for (link, to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            plan.ops.push(Op::Symlink {
                target: c(Path::new(to)),
                link: c(&staged(&Path::new("/dev").join(link))),
            });
        }
        plan.mkdir_all(Path::new("/dev/shm"));
        plan.ops.push(tmpfs(Path::new("/dev/shm"), "1777"));
        plan.mkdir_all(Path::new("/proc"));
        plan.ops.push(Op::Proc(c(&staged(Path::new("/proc")))));
        // What the submission works on, at the paths it knows.
        plan.attach(working, &layout.working_dir, true);
        for (slot, path, dir) in assets {
            plan.attach(slot, &path, dir);
        }
        for hidden in &layout.hide {
            plan.hide(hidden, &shown);
        }
        plan.ops.push(Op::ReadOnly(c(Path::new(STAGE))));
        plan.ops.push(Op::Pivot(c(Path::new(STAGE))));
        plan.ops
            .push(Op::Hostname(CString::new("subrt-sandbox").expect("no NUL")));
        if layout.own_network {
            plan.ops.push(Op::Loopback);
        }
        Ok(MountPlan {
            ops: plan.ops,
            slots: plan.slots,
            own_network: layout.own_network,
        })
    }

    /// The namespaces the init enters besides its PID namespace.
    pub(crate) fn clone_flags(&self) -> libc::c_int {
        let net = if self.own_network {
            libc::CLONE_NEWNET
        } else {
            0
        };
        libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | net
    }

    /// Step `step`, in words.
    pub(crate) fn describe(&self, step: u32) -> String {
        match self.ops.get(step as usize) {
            Some(op) => format!("sandbox setup, step {step} ({})", op_words(op)),
            None => format!("sandbox setup, step {step}"),
        }
    }

    /// Runs the steps.
    ///
    /// # Safety
    ///
    /// Only in the init (which shares subrt's memory): system calls on the
    /// plan's data, no allocation.
    ///
    /// # Errors
    ///
    /// The `errno` and number of the step that failed.
    pub(crate) unsafe fn run(&self) -> Result<(), (i32, u32)> {
        const MAX_SLOTS: usize = 256;
        let mut fds = [-1 as libc::c_int; MAX_SLOTS];
        if self.slots > MAX_SLOTS {
            return Err((libc::E2BIG, 0));
        }
        for (step, op) in self.ops.iter().enumerate() {
            // SAFETY: as the function's contract says.
            let done = unsafe { run_op(op, &mut fds) };
            if done < 0 {
                // SAFETY: reading errno.
                let errno = unsafe { *libc::__errno_location() };
                return Err((errno, step as u32));
            }
        }
        Ok(())
    }
}

/// A step that waits for the staging tmpfs.
enum Later {
    Link(PathBuf, PathBuf),
    Bind(usize, PathBuf, bool),
}

#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
    slots: usize,
    /// Folders of the new root made so far.
    made: Vec<PathBuf>,
    /// Folders bound into it: what is inside them exists already.
    bound: Vec<PathBuf>,
}

impl Builder {
    fn take(&mut self, source: &Path, read_only: bool, recursive: bool) -> usize {
        let slot = self.slots;
        self.slots += 1;
        self.ops.push(Op::Take {
            slot,
            source: c(source),
            read_only,
            recursive,
            device: source.starts_with("/dev"),
            idmap: None,
        });
        slot
    }

    /// Makes the folders above `path` in the new root.
    fn parents(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent);
        }
    }

    /// Makes `path` and the folders above it, where not made or bound yet.
    fn mkdir_all(&mut self, path: &Path) {
        let mut at = PathBuf::from("/");
        for part in path.components() {
            let Component::Normal(name) = part else {
                continue;
            };
            at.push(name);
            // Inside a bound folder its own folders exist already.
            if self
                .bound
                .iter()
                .any(|bound| at.starts_with(bound) && at != *bound)
            {
                continue;
            }
            if !self.made.contains(&at) {
                self.ops.push(Op::Mkdir(c(&staged(&at))));
                self.made.push(at.clone());
            }
        }
    }

    fn attach(&mut self, slot: usize, target: &Path, dir: bool) {
        if dir {
            self.mkdir_all(target);
        } else {
            self.parents(target);
            self.ops.push(Op::Touch(c(&staged(target))));
        }
        self.ops.push(Op::Attach {
            slot,
            target: c(&staged(target)),
        });
        if dir {
            self.bound.push(target.to_owned());
        }
    }

    /// Hides `path` when it is inside what is shown and exists: an empty,
    /// read-only folder over a folder, `/dev/null` over a file.
    fn hide(&mut self, path: &Path, shown: &[(PathBuf, PathBuf)]) {
        let Some((source, target)) = shown.iter().find(|(_, t)| path.starts_with(t)) else {
            return;
        };
        let on_host = source.join(path.strip_prefix(target).unwrap_or(Path::new("")));
        let Ok(meta) = std::fs::metadata(&on_host) else {
            return;
        };
        if meta.is_dir() {
            self.ops.push(Op::Tmpfs {
                target: c(&staged(path)),
                options: CString::new("mode=0555,size=4k").expect("no NUL"),
                flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            });
        } else {
            // A mount taken is attached once: a /dev/null of its own.
            let null = self.take(Path::new("/dev/null"), true, false);
            self.ops.push(Op::Attach {
                slot: null,
                target: c(&staged(path)),
            });
        }
    }
}

fn op_words(op: &Op) -> String {
    let show = |s: &CString| s.to_string_lossy().into_owned();
    match op {
        Op::Private => "making mounts private".into(),
        Op::Take { source, .. } => format!("taking {}", show(source)),
        Op::Tmpfs { target, .. } => format!("a tmpfs at {}", show(target)),
        Op::Mkdir(path) => format!("making folder {}", show(path)),
        Op::Touch(path) => format!("making file {}", show(path)),
        Op::Symlink { link, .. } => format!("making link {}", show(link)),
        Op::Attach { target, .. } => format!("mounting at {}", show(target)),
        Op::Proc(target) => format!("/proc at {}", show(target)),
        Op::ReadOnly(target) => format!("making {} read-only", show(target)),
        Op::Pivot(root) => format!("pivot_root to {}", show(root)),
        Op::Hostname(_) => "setting the hostname".into(),
        Op::Loopback => "bringing loopback up".into(),
    }
}

/// Runs one step; -1 with `errno` set when it failed.
///
/// # Safety
///
/// In the init only, as [`MountPlan::run`] says.
unsafe fn run_op(op: &Op, fds: &mut [libc::c_int]) -> libc::c_int {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: system calls with the plan's NUL-terminated strings and
    // valid structs; as the caller's contract says.
    unsafe {
        match op {
            Op::Private => libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            Op::Take {
                slot,
                source,
                read_only,
                recursive,
                device,
                idmap,
            } => {
                let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
                if *recursive {
                    flags |= libc::AT_RECURSIVE as libc::c_uint;
                }
                let fd = libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags)
                    as libc::c_int;
                if fd < 0 {
                    return -1;
                }
                fds[*slot] = fd;
                let mut attr: libc::mount_attr = std::mem::zeroed();
                attr.attr_set = libc::MOUNT_ATTR_NOSUID;
                if !*device {
                    attr.attr_set |= libc::MOUNT_ATTR_NODEV;
                }
                if *read_only {
                    attr.attr_set |= libc::MOUNT_ATTR_RDONLY;
                }
                if let Some(userns) = idmap {
                    attr.attr_set |= libc::MOUNT_ATTR_IDMAP;
                    attr.userns_fd = *userns as u64;
                }
                let recursive = if *recursive { libc::AT_RECURSIVE } else { 0 };
                libc::syscall(
                    libc::SYS_mount_setattr,
                    fd,
                    c"".as_ptr(),
                    (libc::AT_EMPTY_PATH | recursive) as libc::c_uint,
                    &raw const attr,
                    std::mem::size_of::<libc::mount_attr>(),
                ) as libc::c_int
            }
            Op::Tmpfs {
                target,
                options,
                flags,
            } => libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                *flags,
                options.as_ptr().cast(),
            ),
            Op::Mkdir(path) => {
                let made = libc::mkdir(path.as_ptr(), 0o755);
                if made < 0 && *libc::__errno_location() == libc::EEXIST {
                    0
                } else {
                    made
                }
            }
            Op::Touch(path) => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    return if *libc::__errno_location() == libc::EEXIST {
                        0
                    } else {
                        -1
                    };
                }
                libc::close(fd)
            }
            Op::Symlink { target, link } => libc::symlink(target.as_ptr(), link.as_ptr()),
            Op::Attach { slot, target } => libc::syscall(
                libc::SYS_move_mount,
                fds[*slot],
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            ) as libc::c_int,
            // `hidepid=2`: a command sees only the processes it could
            // trace. Not the init: it shares subrt's memory, so its
            // `cmdline` is subrt's (a harness's arguments, keys included).
            Op::Proc(target) => libc::mount(
                c"proc".as_ptr(),
                target.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"hidepid=2".as_ptr().cast(),
            ),
            Op::ReadOnly(target) => libc::mount(
                null,
                target.as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            ),
            Op::Pivot(root) => {
                if libc::chdir(root.as_ptr()) < 0 {
                    return -1;
                }
                let dot = c".".as_ptr();
                if libc::syscall(libc::SYS_pivot_root, dot, dot) < 0 {
                    return -1;
                }
                if libc::umount2(dot, libc::MNT_DETACH) < 0 {
                    return -1;
                }
                libc::chdir(c"/".as_ptr())
            }
            Op::Hostname(name) => libc::sethostname(name.as_ptr(), name.as_bytes().len()),
            Op::Loopback => {
                let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if socket < 0 {
                    return -1;
                }
                let mut request: libc::ifreq = std::mem::zeroed();
                for (i, b) in b"lo\0".iter().enumerate() {
                    request.ifr_name[i] = *b as libc::c_char;
                }
                request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                let done = libc::ioctl(socket, libc::SIOCSIFFLAGS, &raw mut request);
                libc::close(socket);
                done
            }
        }
    }
}
