//! The prebuilt-header transmit path for multicast outputs.
//!
//! Instead of a UDP send (socket lookup, route, IP output), the engine
//! writes the 42 bytes of Ethernet, IPv4 and UDP header itself and hands
//! header + payload to an `AF_PACKET` socket on the output interface, which
//! queues the frame on the device. Multicast needs no neighbour resolution
//! (the destination MAC follows from the group), so nothing is lost; a
//! datagram that would need fragmenting takes the UDP path instead.
//!
//! Each send's header, iovec and msghdr live in a [`TxArena`] slot until
//! the entry is submitted: the kernel copies all three while it takes the
//! entry (sends are `MSG_DONTWAIT`, so they are issued inline and never
//! read user memory later), so a slot is free again once the submission
//! queue is empty.

use crate::socket::{bind_sockaddr, new_socket, set_buffer};
use crate::table::LinkInfo;
use mcr_wire::{ethernet, ipv4, udp, MacAddr};
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Ethernet + IPv4 (no options) + UDP.
pub const HEADER_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;

/// An `AF_PACKET` socket that only sends, on one interface.
#[derive(Debug)]
pub struct PacketTxSocket {
    fd: OwnedFd,
}

impl PacketTxSocket {
    pub fn open(ifindex: u32) -> io::Result<PacketTxSocket> {
        // Protocol 0: the socket receives nothing.
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        bind_sockaddr(fd.as_raw_fd(), &sll)?;
        set_buffer(
            fd.as_raw_fd(),
            libc::SO_SNDBUFFORCE,
            libc::SO_SNDBUF,
            4 << 20,
        );
        Ok(PacketTxSocket { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Everything fixed about one output's headers.
#[derive(Debug, Clone, Copy)]
pub struct PacketRoute {
    pub fd: RawFd,
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub src: std::net::Ipv4Addr,
    pub dest: SocketAddrV4,
    pub ttl: u8,
    pub mtu: u32,
}

impl PacketRoute {
    pub fn new(fd: RawFd, link: LinkInfo, dest: SocketAddrV4, ttl: u8) -> PacketRoute {
        PacketRoute {
            fd,
            dst_mac: MacAddr::from_ipv4_multicast(*dest.ip()),
            src_mac: link.mac,
            src: link.addr,
            dest,
            ttl,
            mtu: link.mtu,
        }
    }

    /// Whether a payload of `len` bytes fits in one frame.
    pub fn fits(&self, len: usize) -> bool {
        len + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN <= self.mtu as usize
    }

    /// Writes the headers for a payload of `len` bytes.
    #[inline]
    pub fn emit(&self, hdr: &mut [u8; HEADER_LEN], src_port: u16, ttl: u8, len: usize) {
        emit_headers(
            hdr,
            self.src_mac,
            self.dst_mac,
            SocketAddrV4::new(self.src, src_port),
            self.dest,
            ttl,
            len,
        );
    }
}

/// Writes Ethernet, IPv4 (20 bytes, DF, id 0, valid checksum) and UDP
/// (checksum 0, "none") headers for a `len`-byte payload from `src` to
/// `dst`: the one header builder of the workspace, used by the engine's
/// transmit path and by mcrgen's `--af-packet` mode.
#[inline]
pub fn emit_headers(
    hdr: &mut [u8; HEADER_LEN],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    len: usize,
) {
    let (eth_hdr, rest) = hdr.split_at_mut(ethernet::HEADER_LEN);
    let (ip_hdr, udp_hdr) = rest.split_at_mut(ipv4::MIN_HEADER_LEN);
    ethernet::Repr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut ethernet::Frame::new_unchecked(eth_hdr));
    ipv4::Repr::new(
        *src.ip(),
        *dst.ip(),
        ipv4::PROTO_UDP,
        ttl,
        udp::HEADER_LEN + len,
    )
    .emit(&mut ipv4::Packet::new_unchecked(ip_hdr));
    udp::Repr {
        src_port: src.port(),
        dst_port: dst.port(),
        payload_len: len,
    }
    .emit(&mut udp::Packet::new_unchecked(udp_hdr), None);
}

/// One queued send's header and message description.
pub struct TxSlot {
    pub hdr: [u8; HEADER_LEN],
    pub iov: [libc::iovec; 2],
    pub msg: libc::msghdr,
    /// One control message (IP_TTL) for a UDP send with its own TTL.
    pub ctrl: [u64; 3],
    pub dest: libc::sockaddr_in,
}

/// Fixed storage for the sends of one submission (see the module docs).
pub struct TxArena {
    slots: Box<[TxSlot]>,
    next: usize,
}

impl TxSlot {
    /// Points the slot's msghdr at two pieces: the first `header_len`
    /// bytes of its own header buffer, then `len` bytes at `payload` (the
    /// receive buffer); no address, no control message.
    fn two_part(
        &mut self,
        header_len: usize,
        payload: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        self.iov[0] = libc::iovec {
            iov_base: self.hdr.as_mut_ptr().cast(),
            iov_len: header_len,
        };
        self.iov[1] = libc::iovec {
            iov_base: payload as *mut libc::c_void,
            iov_len: len,
        };
        self.msg.msg_name = std::ptr::null_mut();
        self.msg.msg_namelen = 0;
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = 2;
        self.msg.msg_control = std::ptr::null_mut();
        self.msg.msg_controllen = 0;
        self.msg.msg_flags = 0;
        &self.msg
    }
}

impl TxArena {
    pub fn new(capacity: usize) -> TxArena {
        let slots = (0..capacity.max(1))
            .map(|_| TxSlot {
                hdr: [0; HEADER_LEN],
                iov: [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                }; 2],
                // SAFETY: msghdr is plain old data; all-zero is valid.
                msg: unsafe { std::mem::zeroed() },
                ctrl: [0; 3],
                // SAFETY: sockaddr_in is plain old data; all-zero is valid.
                dest: unsafe { std::mem::zeroed() },
            })
            .collect();
        TxArena { slots, next: 0 }
    }

    pub fn is_full(&self) -> bool {
        self.next == self.slots.len()
    }

    /// Every slot is free again (call only when the submission queue is
    /// empty).
    pub fn reset(&mut self) {
        self.next = 0;
    }

    /// Fills the next slot for `route` and returns the msghdr to send;
    /// `udp_checksum` is the datagram's (0: none, see
    /// [`crate::input::relayed_checksum`]).
    /// The caller checks [`is_full`](Self::is_full) first.
    pub fn prepare(
        &mut self,
        route: &PacketRoute,
        src_port: u16,
        ttl: u8,
        udp_checksum: u16,
        payload: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        let slot = &mut self.slots[self.next];
        self.next += 1;
        route.emit(&mut slot.hdr, src_port, ttl, len);
        slot.hdr[HEADER_LEN - 2..].copy_from_slice(&udp_checksum.to_be_bytes());
        slot.two_part(HEADER_LEN, payload, len)
    }
}

impl TxArena {
    /// Fills the next slot for a routed packet: a 14-byte Ethernet header
    /// (the group's MAC, the oif's own) before the whole IP packet of
    /// `len` bytes at `packet`, and returns the msghdr to send.
    pub fn prepare_routed(
        &mut self,
        route: &PacketRoute,
        packet: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        let slot = &mut self.slots[self.next];
        self.next += 1;
        ethernet::Repr {
            src_addr: route.src_mac,
            dst_addr: route.dst_mac,
            ethertype: ethernet::ETHERTYPE_IPV4,
        }
        .emit(&mut ethernet::Frame::new_unchecked(
            &mut slot.hdr[..ethernet::HEADER_LEN],
        ));
        slot.two_part(ethernet::HEADER_LEN, packet, len)
    }

    /// Fills the next slot for a UDP-socket send of `len` payload bytes
    /// with TTL `ttl` (an `IP_TTL` control message) to `dest` (None on a
    /// connected socket) and returns the msghdr to send.
    pub fn prepare_udp(
        &mut self,
        dest: Option<libc::sockaddr_in>,
        ttl: u8,
        payload: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        let slot = &mut self.slots[self.next];
        self.next += 1;
        slot.iov[0] = libc::iovec {
            iov_base: payload as *mut libc::c_void,
            iov_len: len,
        };
        match dest {
            Some(d) => {
                slot.dest = d;
                slot.msg.msg_name = (&mut slot.dest as *mut libc::sockaddr_in).cast();
                slot.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
            None => {
                slot.msg.msg_name = std::ptr::null_mut();
                slot.msg.msg_namelen = 0;
            }
        }
        slot.msg.msg_iov = slot.iov.as_mut_ptr();
        slot.msg.msg_iovlen = 1;
        // SAFETY: ctrl is 24 bytes, 8-aligned: room for CMSG_SPACE(4); the
        // CMSG_* helpers only compute offsets within it.
        unsafe {
            slot.msg.msg_control = slot.ctrl.as_mut_ptr().cast();
            slot.msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let c = libc::CMSG_FIRSTHDR(&slot.msg);
            (*c).cmsg_level = libc::IPPROTO_IP;
            (*c).cmsg_type = libc::IP_TTL;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), i32::from(ttl));
        }
        slot.msg.msg_flags = 0;
        &slot.msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn headers_parse_back() {
        let route = PacketRoute::new(
            -1,
            LinkInfo {
                mac: MacAddr([2, 0, 0, 0, 0, 7]),
                addr: Ipv4Addr::new(10, 0, 0, 1),
                mtu: 1500,
            },
            SocketAddrV4::new(Ipv4Addr::new(239, 2, 2, 2), 6000),
            5,
        );
        let mut frame = [0u8; HEADER_LEN + 100];
        let mut hdr = [0u8; HEADER_LEN];
        route.emit(&mut hdr, 4000, route.ttl, 100);
        frame[..HEADER_LEN].copy_from_slice(&hdr);
        let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_addr(), MacAddr([1, 0, 0x5e, 2, 2, 2]));
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.ttl(), 5);
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(239, 2, 2, 2));
        assert!(ip.dont_frag() && !ip.is_fragment());
        assert!(ipv4::Repr::parse(&ip).is_ok(), "valid header checksum");
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (u.src_port(), u.dst_port(), u.payload().len()),
            (4000, 6000, 100)
        );
        assert!(route.fits(1472));
        assert!(!route.fits(1473));
    }
}
