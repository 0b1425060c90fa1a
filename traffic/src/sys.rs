//! Small socket and clock helpers shared by the generator and the listener.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
#[inline]
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Install (once per process) SIGINT/SIGTERM handlers that set a flag, and
/// return it. Loops check it between batches and finish cleanly.
pub fn stop_flag() -> &'static AtomicBool {
    STOP.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&f)) {
                tracing::warn!("cannot install handler for signal {sig}: {e}");
            }
        }
        f
    })
}

pub fn stop_requested() -> bool {
    STOP.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

// The socket-option, address and bind helpers are the data plane's (one
// copy in the workspace); the wrappers here only add error context.
pub use mcr_dataplane::socket::{
    bind_to_device, set_buffer, setsockopt, setsockopt_int, sockaddr_in,
};

pub fn udp_socket() -> anyhow::Result<OwnedFd> {
    mcr_dataplane::socket::new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
        .context("socket(AF_INET, SOCK_DGRAM)")
}

pub fn from_sockaddr_in(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    )
}

pub fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

pub fn bind(fd: &OwnedFd, a: SocketAddrV4) -> anyhow::Result<()> {
    mcr_dataplane::socket::bind_in(fd.as_raw_fd(), a).with_context(|| format!("bind({a})"))
}

/// connect(2) a UDP socket, so the kernel caches the route (for multicast
/// it otherwise builds a new one per packet).
pub fn connect(fd: &OwnedFd, a: SocketAddrV4) -> anyhow::Result<()> {
    mcr_dataplane::socket::connect_in(fd.as_raw_fd(), a).with_context(|| format!("connect({a})"))
}

/// Empty the socket error queue (IP_RECVERR) without blocking.
pub fn drain_errqueue(fd: &OwnedFd) {
    let mut buf = [0u8; 256];
    let mut ctl = [0u64; 64];
    for _ in 0..1024 {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr is valid; we point it at live buffers.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = std::mem::size_of_val(&ctl) as _;
        // SAFETY: m describes valid buffers.
        let rc = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut m,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            break;
        }
    }
}

pub fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddrV4> {
    // SAFETY: zeroed sockaddr_in is valid; getsockname writes at most len bytes.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut sa as *mut libc::sockaddr_in as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(from_sockaddr_in(&sa))
}

pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = CString::new(name).context("interface name contains NUL")?;
    // SAFETY: c is a valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        // The deployment guide's wording for a name the namespace lacks.
        bail!(
            "Interface '{name}' not found (in this network namespace; `ip link show` lists them)"
        );
    }
    Ok(idx)
}

/// What an AF_PACKET sender needs to know about an interface.
#[derive(Debug, Clone)]
pub struct IfInfo {
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addr: Option<Ipv4Addr>,
}

/// Index, MAC, MTU and (first) IPv4 address of an interface, through
/// ioctls in the current network namespace.
pub fn iface_info(name: &str) -> anyhow::Result<IfInfo> {
    use mcr_dataplane::socket::{iface_mtu, ifreq_ioctl};
    let index = ifindex(name)?;
    let hw =
        ifreq_ioctl(name, libc::SIOCGIFHWADDR).with_context(|| format!("SIOCGIFHWADDR {name}"))?;
    let mtu = iface_mtu(name).with_context(|| format!("SIOCGIFMTU {name}"))?;
    let addr = ifreq_ioctl(name, libc::SIOCGIFADDR)
        .ok()
        .map(|d| Ipv4Addr::new(d[4], d[5], d[6], d[7]));
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hw[2..8]);
    Ok(IfInfo {
        index,
        mac,
        mtu,
        addr,
    })
}

/// An `--interface` value: an interface name or one of its IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iface {
    Name(String),
    Addr(Ipv4Addr),
}

impl Iface {
    pub fn parse(s: &str) -> Iface {
        match s.parse::<Ipv4Addr>() {
            Ok(a) => Iface::Addr(a),
            Err(_) => Iface::Name(s.to_string()),
        }
    }
}
