//! Files and directories the daemon creates or replaces, done through
//! directory descriptors (`*at` calls) so that no path component a less
//! privileged user controls is ever followed or re-resolved between two
//! steps.
//!
//! The rules every caller follows:
//! - a directory is opened once and everything inside it is named relative
//!   to that descriptor;
//! - new files get random names and `O_CREAT | O_EXCL | O_NOFOLLOW`, so a
//!   planted symlink or file makes the call fail instead of redirecting it;
//! - modes are given at creation (and set on descriptors or inside
//!   directories nobody else can enter), never by path afterwards.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A C string for a path or a name (one with a NUL byte cannot exist).
pub fn cstr(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// 16 random hex digits for temporary names (from getrandom(2); a name
/// only has to be unguessable enough that `O_EXCL` rarely fails, since
/// `O_EXCL` is what makes the creation safe).
pub fn random_suffix() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Not reached on Linux >= 3.17; the names stay unique per call.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        buf = (t ^ u64::from(std::process::id()) << 32).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens the directory `path` (following symlinks: it names an existing
/// directory the administrator chose).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: c is NUL-terminated and outlives the call.
    let fd = check(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: open just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the subdirectory `name` of `dir`, refusing a symlink there.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated; dir is a descriptor borrowed for the call.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates directory `name` in `dir` with exactly `mode` (whatever the
/// umask, which can only narrow it: the directory never exists wider) and
/// opens it. `Ok(None)` when it already existed.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<Option<OwnedFd>> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated; dir is borrowed for the call.
    match check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(None),
        Err(e) => return Err(e),
    }
    let fd = open_dir_at(dir, name)?;
    // The umask may have narrowed `mode` (e.g. 077 would keep clients out
    // of a socket's directory); set it on the descriptor, never by path.
    // SAFETY: fd is an open descriptor we own.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(Some(fd))
}

/// Opens directory `path`, creating the missing ones on the way (mode
/// `mode`, one `mkdirat` at a time below the deepest existing ancestor,
/// never following a symlink planted in between). Returns the directory
/// and the paths created, deepest first.
pub fn open_dir_creating(path: &Path, mode: u32) -> io::Result<(OwnedFd, Vec<PathBuf>)> {
    let mut missing = Vec::new();
    let mut d = Some(path);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    let top = match d {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut fd = open_dir(top)?;
    let mut created = Vec::new();
    for p in missing.iter().rev() {
        let Some(name) = p.file_name() else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        fd = match mkdir_at(fd_ref(&fd), name, mode)? {
            Some(new) => {
                created.push(p.clone());
                new
            }
            // Someone made it meanwhile: use it, but not through a symlink.
            None => open_dir_at(fd_ref(&fd), name)?,
        };
    }
    created.reverse();
    Ok((fd, created))
}

fn fd_ref(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// `lstat` of `name` in `dir` (a symlink is reported, not followed).
pub fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is valid for writes, dir is borrowed.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// The file type bits of a stat.
pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// Removes the entry `name` of `dir` (`dir_flag`: `libc::AT_REMOVEDIR` for
/// a directory, else 0). Symlinks are removed, never followed.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, dir_flag: libc::c_int) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is NUL-terminated; dir is borrowed for the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), dir_flag) }).map(|_| ())
}

/// Renames `from` in `from_dir` to `to` in `to_dir`; with `replace` false
/// it fails with `EEXIST` rather than replace what is there.
pub fn rename_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
    replace: bool,
) -> io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
    // SAFETY: both names are NUL-terminated; both dirs are borrowed.
    let r = unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            flags,
        )
    };
    match check(r) {
        Err(e) if !replace && e.raw_os_error() == Some(libc::EINVAL) => {
            // A filesystem without RENAME_NOREPLACE: a hard link fails
            // with EEXIST just the same, then the old name goes.
            // SAFETY: as above; no AT_SYMLINK_FOLLOW, so a link is linked.
            check(unsafe {
                libc::linkat(
                    from_dir.as_raw_fd(),
                    f.as_ptr(),
                    to_dir.as_raw_fd(),
                    t.as_ptr(),
                    0,
                )
            })?;
            unlink_at(from_dir, from, 0)
        }
        r => r.map(|_| ()),
    }
}

/// Replaces the regular file `name` in `dir` with `contents`, atomically:
/// a temporary with a random name is created beside it with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` (mode `mode`, or the mode of the file
/// it replaces), written, fsynced and renamed over `name`; the directory
/// is fsynced after. A destination that exists and is not a regular file
/// (a symlink, a socket, a FIFO, a device, a directory) is refused.
pub fn write_atomically_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
) -> io::Result<()> {
    use std::io::Write;
    let mode = match stat_at(dir, name) {
        Ok(st) if file_type(&st) == libc::S_IFREG => st.st_mode & 0o777,
        Ok(_) => {
            return Err(io::Error::other(
                "it exists and is not a regular file (a symlink, socket, FIFO, device or directory is never replaced)",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => mode,
        Err(e) => return Err(e),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", random_suffix()));
    let c = cstr(&tmp_name)?;
    // SAFETY: c is NUL-terminated; dir is borrowed for the call.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let result = (|| {
        // The umask may have narrowed the mode of the file replaced.
        // SAFETY: fd belongs to `file`, which is open.
        check(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) })?;
        file.write_all(contents)?;
        file.sync_all()?;
        rename_at(dir, &tmp_name, dir, name, true)?;
        // SAFETY: dir is an open directory descriptor borrowed for the call.
        check(unsafe { libc::fsync(dir.as_raw_fd()) }).map(|_| ())
    })();
    if result.is_err() {
        let _ = unlink_at(dir, &tmp_name, 0);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mcr-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_a_file_and_leaves_no_temporary() {
        let d = scratch("aw");
        std::fs::write(d.join("x.json5"), "old").unwrap();
        std::fs::set_permissions(d.join("x.json5"), std::fs::Permissions::from_mode(0o604))
            .unwrap();
        let dir = open_dir(&d).unwrap();
        write_atomically_at(dir.as_fd(), OsStr::new("x.json5"), b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("x.json5")).unwrap(), "new");
        let mode = std::fs::metadata(d.join("x.json5"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o604, "the replaced file's mode is kept");
        write_atomically_at(dir.as_fd(), OsStr::new("y.json5"), b"y", 0o640).unwrap();
        let mode = std::fs::metadata(d.join("y.json5"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_write_refuses_symlinks_and_other_non_regular_destinations() {
        let d = scratch("sym");
        std::fs::write(d.join("victim"), "secret").unwrap();
        std::os::unix::fs::symlink(d.join("victim"), d.join("link.json5")).unwrap();
        let sock = std::os::unix::net::UnixListener::bind(d.join("s.sock")).unwrap();
        let dir = open_dir(&d).unwrap();
        for name in ["link.json5", "s.sock"] {
            let e = write_atomically_at(dir.as_fd(), OsStr::new(name), b"x", 0o600).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{name}: {e}");
        }
        assert_eq!(std::fs::read_to_string(d.join("victim")).unwrap(), "secret");
        assert!(std::fs::symlink_metadata(d.join("s.sock")).unwrap().len() == 0);
        drop(sock);
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            3,
            "no temporary left"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn directories_are_created_with_their_mode_whatever_the_umask() {
        let d = scratch("mk");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o077) };
        let r = open_dir_creating(&d.join("a/b"), 0o755);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let (_fd, created) = r.unwrap();
        assert_eq!(created, vec![d.join("a/b"), d.join("a")]);
        for p in &created {
            let m = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(m & 0o777, 0o755, "{}", p.display());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
