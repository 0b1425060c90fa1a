//! One relay per input interface: each mcrd holds an abstract Unix socket
//! named after every input interface it captures on
//! (`@mcrd/input/<ifindex>`). Abstract socket names belong to the network
//! namespace, so a second mcrd in the same namespace finds the name taken
//! and says so: on the engines both would relay every datagram (each
//! output twice), on the fast path the second one's program would never
//! see a frame the first one forwards.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[derive(Default)]
pub struct InputClaims {
    held: BTreeMap<u32, OwnedFd>,
    /// Interfaces whose name another process holds (reported once each).
    taken: BTreeMap<u32, String>,
}

fn name_of(ifindex: u32) -> String {
    format!("mcrd/input/{ifindex}")
}

/// Binds the abstract name; Ok(None) when another socket holds it.
fn claim(ifindex: u32) -> std::io::Result<Option<OwnedFd>> {
    // SAFETY: socket(2) has no memory-safety preconditions.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let name = name_of(ifindex);
    // sun_path[0] = 0: the abstract namespace.
    for (d, s) in sun.sun_path[1..].iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
    // SAFETY: `sun` is a valid sockaddr_un of at least `len` bytes.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc == 0 {
        return Ok(Some(fd));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EADDRINUSE) {
        Ok(None)
    } else {
        Err(e)
    }
}

impl InputClaims {
    /// Holds the name of every interface in `inputs` (ifindex, name) and
    /// lets the others go. Logs each interface another instance holds,
    /// once.
    pub fn update(&mut self, inputs: &[(u32, String)]) {
        self.held.retain(|i, _| inputs.iter().any(|(w, _)| w == i));
        self.taken.retain(|i, _| inputs.iter().any(|(w, _)| w == i));
        for (ifindex, name) in inputs {
            if self.held.contains_key(ifindex) {
                continue;
            }
            match claim(*ifindex) {
                Ok(Some(fd)) => {
                    if self.taken.remove(ifindex).is_some() {
                        tracing::info!(interface = %name, "no other mcrd relays this interface's input any more");
                    }
                    self.held.insert(*ifindex, fd);
                }
                Ok(None) => {
                    if !self.taken.contains_key(ifindex) {
                        tracing::warn!(
                            interface = %name,
                            "another mcrd in this network namespace already relays input on this interface: on the engines every datagram would be relayed twice, on the kernel fast path this instance would see nothing; stop one of them"
                        );
                    }
                    self.taken.insert(*ifindex, name.clone());
                }
                Err(e) => {
                    tracing::debug!(interface = %name, error = %e, "cannot claim the input interface")
                }
            }
        }
    }

    /// Input interfaces another mcrd instance relays too.
    pub fn shared(&self) -> Vec<String> {
        self.taken.values().cloned().collect()
    }
}
