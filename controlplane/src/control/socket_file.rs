//! Putting the control socket in place without a race a local user can win.
//!
//! The socket is bound inside a fresh private directory (mode 0700, owned
//! by the user mcrd starts as) made next to the target, given its group
//! and mode there, where nobody else can reach or replace it, and only then
//! renamed onto the configured path. So:
//! - no chmod or chown ever goes through a path another user can change
//!   (`fchmod` does not work on `AF_UNIX` sockets in Linux, so the mode
//!   must be set by name; the private directory makes that name ours);
//! - the socket never exists at its public path with wider permissions
//!   than configured, whatever the umask;
//! - the file belongs to the user mcrd started as and the configured group,
//!   never to the user it switches to later.

use super::server::BindError;
use crate::files::{self, cstr, file_type, stat_at, unlink_at};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Mode of the control socket: owner and group read and write.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of directories created on the way to the socket: clients must be
/// able to traverse them; the socket's own mode decides who connects.
pub const DIR_MODE: u32 = 0o755;
/// Longest path a Unix socket can be bound or reached at (`sun_path` is
/// 108 bytes including the terminating NUL).
pub const MAX_PATH_LEN: usize = 107;

/// The socket file mcrd placed: its directory (held open, so the name is
/// always resolved in the same directory) and identity, to remove exactly
/// it at exit.
pub struct SocketFile {
    dir: OwnedFd,
    name: OsString,
    dev: u64,
    ino: u64,
    /// Directories created on the way, deepest first.
    created_dirs: Vec<PathBuf>,
}

impl SocketFile {
    /// Removes the socket, if the entry is still the one we placed (not a
    /// file someone put there since), then the directories we created
    /// when empty.
    pub fn remove(&self) {
        if let Ok(st) = stat_at(self.dir.as_fd(), &self.name) {
            if st.st_dev == self.dev && st.st_ino == self.ino {
                let _ = unlink_at(self.dir.as_fd(), &self.name, 0);
            }
        }
        // remove_dir only removes empty directories: others' files stay.
        for dir in &self.created_dirs {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> BindError + '_ {
    move |error| BindError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Binds a listening socket at `path`, owned by the current user and group
/// `gid` (when given) with mode [`SOCKET_MODE`]. A stale socket there is
/// replaced; a live one, or anything that is not a socket, is refused.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<(UnixListener, SocketFile), BindError> {
    let err = io_err(path);
    let len = path.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(BindError::TooLong(path.to_path_buf(), len));
    }
    let Some(name) = path.file_name().map(OsStr::to_os_string) else {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        )));
    };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let (dir, created_dirs) =
        files::open_dir_creating(parent.unwrap_or(Path::new(".")), DIR_MODE).map_err(&err)?;
    match stat_at(dir.as_fd(), &name) {
        Ok(st) if file_type(&st) != libc::S_IFSOCK => {
            return Err(BindError::NotASocket(path.to_path_buf()))
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            tracing::info!(path = %path.display(), "replacing stale control socket");
            match unlink_at(dir.as_fd(), &name, 0) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
                _ => {}
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }

    // The private directory: a random name, created 0700 by us; opened
    // without following a symlink and checked to be ours, in case the
    // name was swapped between mkdirat and openat.
    let mut private = None;
    for _ in 0..8 {
        let mut pname = OsString::from(".");
        pname.push(&name);
        pname.push(format!(".bind-{}", files::random_suffix()));
        match files::mkdir_at(dir.as_fd(), &pname, 0o700) {
            Ok(Some(fd)) => {
                private = Some((pname, fd));
                break;
            }
            // Taken, or replaced (by a symlink: ENOTDIR/ELOOP) between
            // mkdirat and openat: another name.
            Ok(None) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {}
            Err(e) => return Err(err(e)),
        }
    }
    let Some((pname, pfd)) = private else {
        return Err(err(io::Error::other(
            "its directory kept changing while the socket was being created there (can another user write it?)",
        )));
    };
    let result = bind_in_private(&pfd, &dir, &name, gid);
    // Empty after the rename (or after cleanup): rmdir, never recursive.
    let _ = unlink_at(dir.as_fd(), &pname, libc::AT_REMOVEDIR);
    let (listener, dev, ino) = result.map_err(|e| match e.raw_os_error() {
        Some(libc::EEXIST) => BindError::InUse(path.to_path_buf()),
        _ => err(e),
    })?;
    listener.set_nonblocking(true).map_err(&err)?;
    Ok((
        listener,
        SocketFile {
            dir,
            name,
            dev,
            ino,
            created_dirs,
        },
    ))
}

/// Binds `s` in the private directory `pfd`, sets its group and mode there
/// and renames it to `name` in `dir` (failing if something appeared there
/// meanwhile). Returns the listener and the socket file's identity.
fn bind_in_private(
    pfd: &OwnedFd,
    dir: &OwnedFd,
    name: &OsStr,
    gid: Option<u32>,
) -> io::Result<(UnixListener, u64, u64)> {
    let s = OsStr::new("s");
    // bind(2) takes a path, not a directory descriptor: reach the private
    // directory through our own descriptor's magic link, which always
    // refers to the directory we opened, whatever happens to its name.
    let via_fd = PathBuf::from(format!("/proc/self/fd/{}/s", pfd.as_raw_fd()));
    let listener = UnixListener::bind(&via_fd)?;
    let placed = (|| {
        let c = cstr(s)?;
        if let Some(gid) = gid {
            // SAFETY: c is NUL-terminated; pfd is open. AT_SYMLINK_NOFOLLOW:
            // nothing but our socket can be there, but never follow anyway.
            let r = unsafe {
                libc::fchownat(
                    pfd.as_raw_fd(),
                    c.as_ptr(),
                    u32::MAX, // (uid_t)-1: owner unchanged
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: as above. fchmodat cannot refuse to follow a symlink on
        // Linux; none can be there, as only we can write this directory.
        let r = unsafe { libc::fchmodat(pfd.as_raw_fd(), c.as_ptr(), SOCKET_MODE, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let st = stat_at(pfd.as_fd(), s)?;
        files::rename_at(pfd.as_fd(), s, dir.as_fd(), name, false)?;
        Ok((st.st_dev, st.st_ino))
    })();
    match placed {
        Ok((dev, ino)) => Ok((listener, dev, ino)),
        Err(e) => {
            let _ = unlink_at(pfd.as_fd(), s, 0);
            Err(e)
        }
    }
}
