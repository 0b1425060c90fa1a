//! The sockets the data plane uses, each opened with the options it needs.
//!
//! - [`CaptureSocket`]: `AF_PACKET` on one input interface, in the engines'
//!   shared `PACKET_FANOUT` group, behind a BPF filter.
//! - [`OutputSocket`]: a connected UDP socket per (interface, destination,
//!   TTL), so the kernel routes, fragments and fills in headers.
//! - [`MembershipSocket`]: holds IP-level group joins on an input interface so
//!   IGMP-snooping switches send us the traffic; it never queues data.
//!
//! The small socket and interface helpers below (socket options, bind,
//! connect, ifreq ioctls) are the workspace's only copies: the control
//! plane and the traffic tools use them too.

use crate::bpf;
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// socket(2) with `SOCK_CLOEXEC` added, as an owned descriptor.
pub fn new_socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory-safety preconditions.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt(2) with a value of any plain type `T`.
pub fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// setsockopt(2) with an `int` value.
pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: i32,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// getsockopt(2) of an `int` option.
pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and writable; len says v's size.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) })?;
    Ok(v)
}

/// bind(2) to a socket address of any family: `A` is the family's
/// `sockaddr_*` struct (`sockaddr_in`, `sockaddr_ll`, `sockaddr_nl`); the
/// kernel checks its family and length.
pub fn bind_sockaddr<A>(fd: RawFd, sa: &A) -> io::Result<()> {
    // SAFETY: `sa` is a live A and its size is passed; the kernel only
    // reads that many bytes.
    cvt(unsafe { libc::bind(fd, (sa as *const A).cast(), size_of::<A>() as u32) }).map(drop)
}

/// bind(2) to an IPv4 address.
pub fn bind_in(fd: RawFd, addr: SocketAddrV4) -> io::Result<()> {
    bind_sockaddr(fd, &sockaddr_in(addr))
}

/// connect(2) to an IPv4 address.
pub fn connect_in(fd: RawFd, addr: SocketAddrV4) -> io::Result<()> {
    let sin = sockaddr_in(addr);
    // SAFETY: `sin` is a valid sockaddr_in and its size is passed.
    cvt(unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as u32,
        )
    })
    .map(drop)
}

/// `SO_BINDTODEVICE`: the socket sends and receives on interface `name`
/// only.
pub fn bind_to_device(fd: RawFd, name: &str) -> io::Result<()> {
    let name = name.as_bytes();
    // SAFETY: the pointer and length describe `name`, which outlives the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as u32,
        )
    })
    .map(drop)
}

/// Runs an interface ioctl (`SIOCGIF*`) for interface `name` on a scratch
/// UDP socket of the current namespace (unlike /sys, right in any
/// namespace) and returns the 24 bytes of the `ifreq` union it filled.
pub fn ifreq_ioctl(name: &str, req: libc::c_ulong) -> io::Result<[u8; 24]> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the SIOCGIF* requests read ifr_name and write the union of
    // the ifreq we pass, which lives across the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut ifr) })?;
    // SAFETY: the union is 24 bytes of plain data (ifreq is 40: a 16-byte
    // name and the union); reading it as bytes is valid whatever member
    // the kernel wrote.
    Ok(
        unsafe {
            std::mem::transmute_copy::<libc::__c_anonymous_ifr_ifru, [u8; 24]>(&ifr.ifr_ifru)
        },
    )
}

// `ifreq_ioctl` reads the union as 24 bytes.
const _: () = assert!(size_of::<libc::__c_anonymous_ifr_ifru>() == 24);

/// The MTU a receive ring is sized for when the input's own cannot be read.
const JUMBO_MTU: u32 = 9000;

/// An interface's name from its index (`if_indextoname`).
pub fn iface_name(ifindex: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the name is NUL-terminated within `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

/// An interface's MTU (`SIOCGIFMTU`).
pub fn iface_mtu(name: &str) -> io::Result<u32> {
    let d = ifreq_ioctl(name, libc::SIOCGIFMTU)?;
    Ok(i32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as u32)
}

/// An interface's link type (`ARPHRD_*`, from `SIOCGIFHWADDR`: the family
/// of its hardware address is `dev->type`, also for links without one).
pub fn iface_link_type(name: &str) -> io::Result<u16> {
    let d = ifreq_ioctl(name, libc::SIOCGIFHWADDR)?;
    Ok(u16::from_ne_bytes([d[0], d[1]]))
}

/// Attaches a classic BPF program (replacing any earlier one atomically).
pub fn attach_filter(fd: RawFd, prog: &[bpf::Insn]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Sets a socket buffer size, past `rmem_max`/`wmem_max` when we hold
/// CAP_NET_ADMIN (the FORCE option), else as large as the sysctl allows.
/// Returns the size the kernel reports afterwards (doubled for its
/// bookkeeping), 0 if it cannot be read.
pub fn set_buffer(fd: RawFd, force: libc::c_int, plain: libc::c_int, bytes: i32) -> i32 {
    if setsockopt(fd, libc::SOL_SOCKET, force, &bytes).is_err() {
        let _ = setsockopt(fd, libc::SOL_SOCKET, plain, &bytes);
    }
    getsockopt_int(fd, libc::SOL_SOCKET, plain).unwrap_or(0)
}

const ETH_P_IP: u16 = 0x0800;

/// The receive buffer asked for each capture socket, in bytes: what
/// queues while an engine is off its CPU. A 1316-byte payload costs about
/// 2.3 KB of it (the frame's truesize), so 8 MiB holds about 3,600 such
/// frames, 180 ms at 20,000 frames/s.
pub const CAPTURE_RCVBUF: i32 = 8 << 20;

/// Warns once per process when a capture socket got less receive buffer
/// than [`CAPTURE_RCVBUF`]: without `CAP_NET_ADMIN` `SO_RCVBUF` is capped
/// at twice `net.core.rmem_max` (stock 212,992: 416 KiB, about 180
/// 1316-byte frames, 9 ms at 20,000 frames/s), and any longer wait for a
/// CPU drops input, counted as `capture_overflow`.
fn warn_small_capture_buffer(got: i32) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if got < CAPTURE_RCVBUF && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            got_bytes = got,
            wanted_bytes = CAPTURE_RCVBUF,
            "capture socket receive buffer capped (no CAP_NET_ADMIN, net.core.rmem_max): input \
             arriving while an engine waits for a CPU longer than it holds is dropped as \
             capture_overflow; raise net.core.rmem_max or grant CAP_NET_ADMIN"
        );
    }
}

/// An `AF_PACKET` socket capturing one input interface.
#[derive(Debug)]
pub struct CaptureSocket {
    /// The receive ring, when the socket has one (see [`crate::rxring`]);
    /// unmapped before the socket closes.
    pub ring: Option<crate::rxring::RxRing>,
    fd: OwnedFd,
    pub ifindex: u32,
    /// Where the network header starts in what this socket reads.
    pub link: crate::input::LinkKind,
}

impl CaptureSocket {
    /// Opens a capture socket on `ifindex` that takes nothing yet (its
    /// filter drops everything), in fanout group `fanout_id` (flow hash: one
    /// flow stays on one socket, so its packets stay in order). See
    /// [`crate::capture`] for why it starts closed.
    ///
    /// On an interface without an Ethernet header (tun, WireGuard, GRE,
    /// IPIP: `link` is [`LinkKind::Ip`](crate::input::LinkKind::Ip)) the
    /// socket is `SOCK_DGRAM`, so every frame starts at the network header
    /// whatever the device puts before it.
    ///
    /// `ring_frames` > 0 gives the socket a receive ring of that many
    /// slots sized for the interface's MTU now (see [`crate::rxring`])
    /// instead of a receive queue.
    pub fn open_closed(
        ifindex: u32,
        fanout_id: u16,
        link: crate::input::LinkKind,
        ring_frames: u32,
    ) -> io::Result<Self> {
        // Protocol 0: no frame is queued before the filter is attached and
        // the socket is bound.
        let ty = match link {
            crate::input::LinkKind::Ethernet => libc::SOCK_RAW,
            crate::input::LinkKind::Ip => libc::SOCK_DGRAM,
        };
        let fd = new_socket(libc::AF_PACKET, ty | libc::SOCK_NONBLOCK, 0)?;
        let raw = fd.as_raw_fd();
        attach_filter(raw, &bpf::drop_all())?;
        // The kernel's facts about each frame (VLAN tag moved out of the
        // bytes, length on the wire) come as a PACKET_AUXDATA message.
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1i32)?;
        // Frames we transmit ourselves are never input (the BPF filter checks
        // this too, for kernels without the option).
        let _ = setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
        // The ring is set up before bind, so no frame lands in the queue.
        let ring = if ring_frames > 0 {
            let mtu = iface_name(ifindex)
                .and_then(|n| iface_mtu(&n))
                .unwrap_or(JUMBO_MTU);
            let ring = crate::rxring::RxRing::setup(raw, mtu, ring_frames)?;
            let (slots, bytes) = ring.geometry();
            if slots < ring_frames {
                tracing::warn!(
                    ifindex,
                    mtu,
                    asked = ring_frames,
                    slots,
                    mib = bytes >> 20,
                    "receive ring capped at 256 MiB per engine and input: fewer slots than data_plane.receive_ring asks"
                );
            }
            Some(ring)
        } else {
            None
        };
        if ring.is_none() {
            let got = set_buffer(raw, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, CAPTURE_RCVBUF);
            warn_small_capture_buffer(got);
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_IP.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        })?;
        let fanout: u32 = u32::from(fanout_id) | (libc::PACKET_FANOUT_HASH << 16);
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &fanout)?;
        Ok(CaptureSocket {
            ring,
            fd,
            ifindex,
            link,
        })
    }

    /// Frames the kernel dropped because this socket's receive queue was
    /// full, since the last call (the kernel resets the count on read).
    pub fn take_drops(&self) -> u64 {
        // SAFETY: tpacket_stats is plain old data; all-zero is valid.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and describe a buffer of `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            u64::from(st.tp_drops)
        } else {
            0
        }
    }

    pub fn set_filter(&self, pairs: &[(Ipv4Addr, u16)]) -> io::Result<()> {
        attach_filter(self.fd.as_raw_fd(), &bpf::capture_filter(pairs, self.link))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The fanout group id for an interface: the same in every engine of this
/// process, different from other processes (fanout ids are per namespace).
pub fn fanout_id(ifindex: u32) -> u16 {
    let pid = std::process::id();
    ((pid.wrapping_mul(2_654_435_761) ^ ifindex.wrapping_mul(40_503)) & 0xffff) as u16
}

/// What an egress socket is shared by. Up to [`CONNECTED_OUTPUTS`] outputs
/// per engine each get a connected socket (the fast path); past that, every
/// output on the same interface, with the same TTL and the same kind of
/// destination, sends through one unconnected UDP socket, naming its
/// destination per send, so thousands of rules need only a few sockets.
pub const CONNECTED_OUTPUTS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EgressKey {
    pub ifindex: u32,
    pub ttl: u8,
    pub multicast: bool,
}

/// A UDP socket sending out of one interface; the kernel routes, builds
/// headers and fragments.
#[derive(Debug)]
pub struct OutputSocket {
    fd: OwnedFd,
}

impl OutputSocket {
    pub fn open(key: EgressKey, ifname: &str) -> io::Result<Self> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
        let raw = fd.as_raw_fd();
        let ttl = i32::from(key.ttl);
        if key.multicast {
            let mreqn = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: key.ifindex as i32,
            };
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreqn)?;
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &0i32)?;
        } else {
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
            // A directed-broadcast output (the subnet's broadcast address)
            // is refused without it (EACCES on connect and send).
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_BROADCAST, &1i32)?;
        }
        // Pin the egress interface for unicast too: the rule names it.
        bind_to_device(raw, ifname)?;
        set_buffer(raw, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, 4 << 20);
        Ok(OutputSocket { fd })
    }

    /// The same socket, connected to one destination: the kernel then keeps
    /// the route in the socket instead of looking it up (and, for
    /// multicast, building it) for every datagram.
    pub fn open_connected(key: EgressKey, ifname: &str, dest: SocketAddrV4) -> io::Result<Self> {
        let sock = OutputSocket::open(key, ifname)?;
        connect_in(sock.raw_fd(), dest)?;
        Ok(sock)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The destination of a send, in the form `sendto` takes.
pub fn dest_addr(addr: SocketAddrV4) -> libc::sockaddr_in {
    sockaddr_in(addr)
}

/// An IPv4 socket address in the kernel's form.
pub fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The kernel allows this many joins per socket (`igmp_max_memberships`).
pub const JOINS_PER_SOCKET: usize = 20;

/// A UDP socket that only holds group memberships on one interface.
#[derive(Debug)]
pub struct MembershipSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl MembershipSocket {
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
        // The capture socket sees the traffic; this one must not buffer it.
        attach_filter(fd.as_raw_fd(), &bpf::drop_all())?;
        Ok(MembershipSocket { fd, ifindex })
    }

    /// Joins `group` (source-specific when `source` is given).
    pub fn join(&self, group: Ipv4Addr, source: Option<Ipv4Addr>) -> io::Result<()> {
        self.membership(group, source, true)
    }

    pub fn leave(&self, group: Ipv4Addr, source: Option<Ipv4Addr>) -> io::Result<()> {
        self.membership(group, source, false)
    }

    fn membership(&self, group: Ipv4Addr, source: Option<Ipv4Addr>, join: bool) -> io::Result<()> {
        let raw = self.fd.as_raw_fd();
        let be = |a: Ipv4Addr| libc::in_addr {
            s_addr: u32::from(a).to_be(),
        };
        match source {
            None => {
                let mreqn = libc::ip_mreqn {
                    imr_multiaddr: be(group),
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: self.ifindex as i32,
                };
                let op = if join {
                    libc::IP_ADD_MEMBERSHIP
                } else {
                    libc::IP_DROP_MEMBERSHIP
                };
                setsockopt(raw, libc::IPPROTO_IP, op, &mreqn)
            }
            Some(src) => {
                // ip_mreq_source names the interface by address; use the
                // protocol-independent form, which takes an index.
                let req = group_source_req(self.ifindex, group, src);
                let op = if join {
                    libc::MCAST_JOIN_SOURCE_GROUP
                } else {
                    libc::MCAST_LEAVE_SOURCE_GROUP
                };
                setsockopt(raw, libc::IPPROTO_IP, op, &req)
            }
        }
    }
}

/// `struct group_source_req` (not in the libc crate for every target).
#[repr(C)]
struct GroupSourceReq {
    gsr_interface: u32,
    gsr_group: libc::sockaddr_storage,
    gsr_source: libc::sockaddr_storage,
}

fn group_source_req(ifindex: u32, group: Ipv4Addr, source: Ipv4Addr) -> GroupSourceReq {
    let storage = |a: Ipv4Addr| {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let sin = sockaddr_in(SocketAddrV4::new(a, 0));
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
        unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
        ss
    };
    GroupSourceReq {
        gsr_interface: ifindex,
        gsr_group: storage(group),
        gsr_source: storage(source),
    }
}

/// A UDP socket bound to a local unicast input (address, port) that takes
/// nothing: without it the host's own stack would answer every relayed
/// datagram with ICMP port unreachable.
#[derive(Debug)]
pub struct UnicastSink {
    _fd: OwnedFd,
}

impl UnicastSink {
    pub fn bind(addr: SocketAddrV4) -> io::Result<Self> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
        attach_filter(fd.as_raw_fd(), &bpf::drop_all())?;
        bind_in(fd.as_raw_fd(), addr)?;
        Ok(UnicastSink { _fd: fd })
    }
}
