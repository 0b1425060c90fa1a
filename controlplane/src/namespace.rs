//! Which network namespace this process runs in, and the control socket path
//! that follows from it.
//!
//! `ip netns exec NAME` bind-mounts the namespace at `/run/netns/NAME`; a
//! namespace is "named" when one of those files has the same inode as
//! `/proc/self/ns/net`. Both mcrd and mcrctl derive their default socket path
//! from it, so `ip netns exec red mcrctl status` finds the red instance.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Namespace {
    /// Inode of `/proc/self/ns/net` (what `ip netns identify` compares).
    pub inode: u64,
    /// The name under `/run/netns`, when there is one.
    pub name: Option<String>,
}

pub const SOCKET_DIR: &str = "/run/mcr";

pub fn current() -> Namespace {
    let inode = std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    let name = std::fs::read_dir("/run/netns").ok().and_then(|dir| {
        let mut names: Vec<String> = dir
            .flatten()
            .filter(|e| {
                std::fs::metadata(e.path())
                    .map(|m| m.ino() == inode)
                    .unwrap_or(false)
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.into_iter().next()
    });
    // The host namespace can also be mounted under a name; it is still the
    // host's, and its socket keeps the plain name only if no name matched.
    Namespace { inode, name }
}

/// `/run/mcr/mcrd-NAME.sock` inside a named namespace, else
/// `/run/mcr/mcrd.sock`.
pub fn default_socket_path() -> PathBuf {
    match current().name {
        Some(name) => PathBuf::from(format!("{SOCKET_DIR}/mcrd-{name}.sock")),
        None => PathBuf::from(format!("{SOCKET_DIR}/mcrd.sock")),
    }
}

/// `/run/netns/NAME` is the namespace itself (a bind-mounted file), so a
/// socket "inside" it such as `/run/netns/red/mcrd.sock` cannot exist. Such
/// a path is mapped to `/run/mcr/netns/NAME/FILE`, by mcrd and mcrctl alike,
/// so both agree on where the socket is. Every other path is kept.
pub fn resolve_socket_path(path: &std::path::Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("/run/netns") else {
        return path.to_path_buf();
    };
    let parts: Vec<_> = rest.components().collect();
    if parts.len() != 2 {
        return path.to_path_buf();
    }
    let ns_entry = std::path::Path::new("/run/netns").join(parts[0]);
    if ns_entry.is_dir() {
        return path.to_path_buf();
    }
    PathBuf::from(SOCKET_DIR)
        .join("netns")
        .join(parts[0])
        .join(parts[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn netns_file_paths_map_under_run_mcr() {
        // /run/netns/<name> never is a directory for a made-up name.
        assert_eq!(
            resolve_socket_path(Path::new("/run/netns/mcr-nonexistent-x/mcrd.sock")),
            PathBuf::from("/run/mcr/netns/mcr-nonexistent-x/mcrd.sock")
        );
        for kept in [
            "/run/mcr/mcrd-red.sock",
            "/tmp/x.sock",
            "/run/netns/a/b/c.sock",
            "rel.sock",
        ] {
            assert_eq!(resolve_socket_path(Path::new(kept)), PathBuf::from(kept));
        }
    }
}
