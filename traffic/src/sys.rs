//! Small socket and clock helpers shared by the generator and the listener.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

pub fn udp_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_INET, SOCK_DGRAM)");
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: val points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    setsockopt(fd, level, name, &val)
}

pub fn getsockopt_int(fd: &OwnedFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: v and len are valid for writes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &mut v as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(v)
    }
}

/// Set a buffer size with the FORCE variant (CAP_NET_ADMIN), falling back to
/// the plain option (capped by net.core.[rw]mem_max). Returns the size the
/// kernel reports afterwards (which is doubled bookkeeping space).
pub fn set_buffer(fd: &OwnedFd, force: i32, plain: i32, bytes: i32) -> i32 {
    if setsockopt_int(fd, libc::SOL_SOCKET, force, bytes).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes);
    }
    getsockopt_int(fd, libc::SOL_SOCKET, plain).unwrap_or(0)
}

pub fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
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
    let sa = sockaddr_in(a);
    // SAFETY: sa is a valid sockaddr_in.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("bind({a})"));
    }
    Ok(())
}

/// connect(2) a UDP socket, so the kernel caches the route (for multicast
/// it otherwise builds a new one per packet).
pub fn connect(fd: &OwnedFd, a: SocketAddrV4) -> anyhow::Result<()> {
    let sa = sockaddr_in(a);
    // SAFETY: sa is a valid sockaddr_in.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("connect({a})"));
    }
    Ok(())
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
        bail!("no such interface {name:?}: {}", io::Error::last_os_error());
    }
    Ok(idx)
}

pub fn bind_to_device(fd: &OwnedFd, name: &str) -> io::Result<()> {
    // SAFETY: name bytes are valid for name.len() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr() as *const libc::c_void,
            name.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What an AF_PACKET sender needs to know about an interface.
#[derive(Debug, Clone)]
pub struct IfInfo {
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addr: Option<Ipv4Addr>,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u64; 3],
}

fn ifreq_ioctl(fd: &OwnedFd, name: &str, req: libc::c_ulong) -> io::Result<[u8; 24]> {
    let mut r = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: [0; 3],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: r is a properly sized struct ifreq (40 bytes).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut r as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = [0u8; 24];
    for (i, w) in r.data.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    Ok(out)
}

/// Index, MAC, MTU and (first) IPv4 address of an interface, through
/// ioctls in the current network namespace.
pub fn iface_info(name: &str) -> anyhow::Result<IfInfo> {
    let index = ifindex(name)?;
    let fd = udp_socket()?;
    let hw = ifreq_ioctl(&fd, name, libc::SIOCGIFHWADDR)
        .with_context(|| format!("SIOCGIFHWADDR {name}"))?;
    let mtu =
        ifreq_ioctl(&fd, name, libc::SIOCGIFMTU).with_context(|| format!("SIOCGIFMTU {name}"))?;
    let addr = ifreq_ioctl(&fd, name, libc::SIOCGIFADDR)
        .ok()
        .map(|d| Ipv4Addr::new(d[4], d[5], d[6], d[7]));
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hw[2..8]);
    let mtu = i32::from_ne_bytes(mtu[0..4].try_into().unwrap()) as u32;
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
