//! Least privilege: after opening what needs root, mcrd switches to an
//! unprivileged user and keeps only the capability the data plane still
//! needs at run time.
//!
//! What needs which capability (docs/deployment.md#capabilities):
//! - `CAP_NET_RAW`: `AF_PACKET` capture sockets (opened whenever an input
//!   interface appears, so it is kept) and `SO_BINDTODEVICE` on outputs.
//! - `CAP_SETUID`, `CAP_SETGID`: only to switch to `--user`; dropped after.
//! - `CAP_NET_ADMIN`: optional; lets socket buffers exceed `rmem_max`. Not
//!   kept after a switch (buffers then fall back to the sysctl maximum).
//!
//! Capabilities are per thread, so the switch happens before any engine
//! thread starts; the engines inherit the reduced set.

use caps::{CapSet, Capability, CapsHashSet};
use std::fmt;

/// Where the capability requirements are explained.
pub const CAPABILITIES_DOC: &str = "docs/deployment.md#capabilities";

/// The capabilities mcrd keeps after switching users.
pub const KEPT: &[Capability] = &[Capability::CAP_NET_RAW];

#[derive(Debug)]
pub enum PrivilegeError {
    NoSuchUser(String),
    CannotSwitch { user: String, reason: String },
    MissingNetRaw { interface: Option<String> },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(u) => write!(f, "user '{u}' does not exist (from --user or 'user' in the config)"),
            PrivilegeError::CannotSwitch { user, reason } => write!(
                f,
                "cannot switch to user '{user}': {reason}; run mcrd as root or grant CAP_SETUID and CAP_SETGID (see {CAPABILITIES_DOC})"
            ),
            PrivilegeError::MissingNetRaw { interface } => {
                let on = match interface {
                    Some(i) => format!(" on interface '{i}'"),
                    None => String::new(),
                };
                write!(
                    f,
                    "mcrd needs CAP_NET_RAW to capture packets (AF_PACKET){on}; run it as root or grant the capability (e.g. AmbientCapabilities=CAP_NET_RAW, or setpriv --inh-caps +net_raw --ambient-caps +net_raw); see {CAPABILITIES_DOC}"
                )
            }
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// The user to switch to: the one asked for, else `mcr` when running as
/// root and that user exists, else none.
pub fn choose_user(asked: Option<&str>) -> Option<String> {
    if let Some(u) = asked {
        return Some(u.to_string());
    }
    if nix::unistd::geteuid().is_root()
        && matches!(nix::unistd::User::from_name("mcr"), Ok(Some(_)))
    {
        return Some("mcr".to_string());
    }
    None
}

/// Switches to `user` keeping only [`KEPT`]. Must run before any other
/// thread exists.
pub fn switch_user(user: &str) -> Result<(), PrivilegeError> {
    let u = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_string()))?;
    let fail = |reason: String| PrivilegeError::CannotSwitch {
        user: user.to_string(),
        reason,
    };
    let keep: CapsHashSet = KEPT.iter().copied().collect();
    // The bounding set first, while we still hold CAP_SETPCAP (SETUID and
    // SETGID stay for the switch itself; they leave the permitted set below).
    for cap in caps::all() {
        if !keep.contains(&cap) && !matches!(cap, Capability::CAP_SETUID | Capability::CAP_SETGID) {
            let _ = caps::drop(None, CapSet::Bounding, cap);
        }
    }
    // Keep permitted capabilities across the uid change; the set is
    // trimmed right after.
    // SAFETY: prctl(PR_SET_KEEPCAPS) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(fail(std::io::Error::last_os_error().to_string()));
    }
    nix::unistd::setgroups(&[]).map_err(|e| fail(format!("setgroups: {e}")))?;
    nix::unistd::setresgid(u.gid, u.gid, u.gid).map_err(|e| fail(format!("setgid: {e}")))?;
    nix::unistd::setresuid(u.uid, u.uid, u.uid).map_err(|e| fail(format!("setuid: {e}")))?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };

    let _ = caps::clear(None, CapSet::Ambient);
    let _ = caps::clear(None, CapSet::Inheritable);
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail(e.to_string()))?;
    // SETUID and SETGID leave the bounding set too, using CAP_SETPCAP (still
    // permitted: KEEPCAPS) once more.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        let _ = caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP);
        for cap in [Capability::CAP_SETUID, Capability::CAP_SETGID] {
            if !keep.contains(&cap) {
                let _ = caps::drop(None, CapSet::Bounding, cap);
            }
        }
    }
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail(e.to_string()))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail(e.to_string()))?;
    tracing::info!(user, uid = u.uid.as_raw(), gid = u.gid.as_raw(), kept = ?kept, "switched to unprivileged user");
    Ok(())
}

/// Fails with the operator-facing message when an `AF_PACKET` socket
/// cannot be opened (the capability is missing).
pub fn check_capture_allowed(first_input: Option<&str>) -> Result<(), PrivilegeError> {
    // SAFETY: socket(2) has no memory-safety preconditions; the fd is
    // closed right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        // SAFETY: fd is ours and open.
        unsafe { libc::close(fd) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EPERM) || err.raw_os_error() == Some(libc::EACCES) {
        return Err(PrivilegeError::MissingNetRaw {
            interface: first_input.map(str::to_string),
        });
    }
    Ok(())
}

/// Accounts that other services commonly run as. Running mcrd as one of
/// them lets every process of that account signal it (and read what the
/// account can read), so start warns about it.
pub const SHARED_ACCOUNTS: &[&str] = &["nobody", "nfsnobody", "daemon", "bin", "sys"];

/// Whether `user` (with uid `uid`) is shared with other services: one of
/// [`SHARED_ACCOUNTS`] or the kernel's overflow uid 65534.
pub fn is_shared_account(user: &str, uid: u32) -> bool {
    SHARED_ACCOUNTS.contains(&user) || uid == 65534
}

/// After switching to `user`: warns when the config file can no longer be
/// opened, since it was read at start with the old rights and every later
/// reload would fail. A warning, not an error: the relay runs as
/// configured until then, and the fix is a file permission.
pub fn warn_if_unreadable(config: &std::path::Path, user: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: only the permission matters here, never the contents.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(config);
    if let Err(e) = opened {
        let shown = mcr_config::text::escape(&config.to_string_lossy()).into_owned();
        tracing::warn!(
            "config file {shown} cannot be read by user '{user}' ({e}): it was read at start, but every reload (SIGHUP, mcrctl reload) will fail until {user} may read it (e.g. chgrp {user} {shown} && chmod g+r {shown})"
        );
    }
}
