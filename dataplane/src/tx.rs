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
use mcr_wire::{checksum, ethernet, ipv4, udp, MacAddr};
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Ethernet + IPv4 (no options) + UDP.
pub const HEADER_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;

/// `struct virtio_net_hdr` (linux/virtio_net.h): what a socket with
/// `PACKET_VNET_HDR` takes before every frame it sends, all zero for a
/// plain frame, or asking the kernel to cut one large UDP datagram into
/// equal ones (UDP GSO) and complete their checksums.
pub const VNET_HDR_LEN: usize = 10;
const PACKET_VNET_HDR: i32 = 15;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;

/// Datagrams one batched send carries at most (the kernel's limit for a
/// UDP GSO send is 64 or more, and 64 KiB in all).
pub const MAX_SEGMENTS: usize = 64;

/// An `AF_PACKET` socket that only sends, on one interface.
#[derive(Debug)]
pub struct PacketTxSocket {
    fd: OwnedFd,
    /// Every frame sent on it starts with a [`VNET_HDR_LEN`]-byte
    /// `virtio_net_hdr`, which lets one send carry a batch of datagrams.
    vnet: bool,
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
        // Without it (a kernel before 2.6.38 has none) every send is one
        // datagram.
        let vnet =
            crate::socket::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, &1i32)
                .is_ok();
        Ok(PacketTxSocket { fd, vnet })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether frames sent on it start with a `virtio_net_hdr`.
    pub fn vnet(&self) -> bool {
        self.vnet
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
    /// The socket takes a `virtio_net_hdr` before each frame
    /// ([`PacketTxSocket::vnet`]).
    pub vnet: bool,
    /// Sends may be batched: the socket takes the header and the device
    /// leaves batches cut into frames ([`crate::ethtool::batches_leave_cut`]).
    pub batch: bool,
}

impl PacketRoute {
    /// `batch`: whether the output's device leaves batches cut into
    /// frames (checked by the caller, see [`crate::ethtool`]).
    pub fn new(
        sock: &PacketTxSocket,
        link: LinkInfo,
        dest: SocketAddrV4,
        ttl: u8,
        batch: bool,
    ) -> PacketRoute {
        PacketRoute {
            fd: sock.raw_fd(),
            dst_mac: MacAddr::from_ipv4_multicast(*dest.ip()),
            src_mac: link.mac,
            src: link.addr,
            dest,
            ttl,
            mtu: link.mtu,
            vnet: sock.vnet,
            batch: batch && sock.vnet,
        }
    }

    /// Bytes each send on this route puts before the frame itself.
    pub fn prefix_len(&self) -> usize {
        if self.vnet {
            VNET_HDR_LEN
        } else {
            0
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

/// One queued send's header and message description. The header buffer
/// holds a `virtio_net_hdr` (always zero here: one datagram) and then the
/// frame's headers; a send starts at the part its socket takes.
pub struct TxSlot {
    pub hdr: [u8; VNET_HDR_LEN + HEADER_LEN],
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
    /// Points the slot's msghdr at two pieces: `prefix` bytes of zero
    /// `virtio_net_hdr` and the `header_len` bytes of headers after it in
    /// its own header buffer, then `len` bytes at `payload` (the receive
    /// buffer); no address, no control message.
    fn two_part(
        &mut self,
        prefix: usize,
        header_len: usize,
        payload: *const u8,
        len: usize,
    ) -> *const libc::msghdr {
        self.iov[0] = libc::iovec {
            iov_base: self.hdr[VNET_HDR_LEN - prefix..].as_mut_ptr().cast(),
            iov_len: prefix + header_len,
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
                hdr: [0; VNET_HDR_LEN + HEADER_LEN],
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
        let hdr = header_part(&mut slot.hdr);
        route.emit(hdr, src_port, ttl, len);
        hdr[HEADER_LEN - 2..].copy_from_slice(&udp_checksum.to_be_bytes());
        slot.two_part(route.prefix_len(), HEADER_LEN, payload, len)
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
            &mut header_part(&mut slot.hdr)[..ethernet::HEADER_LEN],
        ));
        slot.two_part(route.prefix_len(), ethernet::HEADER_LEN, packet, len)
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

/// The frame-header part of a send's header buffer, after the
/// `virtio_net_hdr`.
fn header_part(buf: &mut [u8; VNET_HDR_LEN + HEADER_LEN]) -> &mut [u8; HEADER_LEN] {
    let (_, hdr) = buf.split_at_mut(VNET_HDR_LEN);
    hdr.try_into()
        .expect("HEADER_LEN bytes after the vnet header")
}

/// One batched send: consecutive datagrams of equal size for one output,
/// with the same headers but for their length, sent as one UDP GSO frame
/// the kernel (or the device) cuts back into one frame each.
pub struct Batch {
    hdr: [u8; VNET_HDR_LEN + HEADER_LEN],
    iov: [libc::iovec; 1 + MAX_SEGMENTS],
    msg: libc::msghdr,
    n: usize,
}

/// Fixed storage for the batched sends of one submission; like
/// [`TxArena`], free again once the kernel has taken every entry (and no
/// batch is still being filled).
pub struct BatchArena {
    batches: Box<[Batch]>,
    next: usize,
}

impl BatchArena {
    /// Room for `capacity` batches (about 1.2 KiB each; 0 for none).
    pub fn new(capacity: usize) -> BatchArena {
        let batches = (0..capacity)
            .map(|_| Batch {
                hdr: [0; VNET_HDR_LEN + HEADER_LEN],
                iov: [libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                }; 1 + MAX_SEGMENTS],
                // SAFETY: msghdr is plain old data; all-zero is valid.
                msg: unsafe { std::mem::zeroed() },
                n: 0,
            })
            .collect();
        BatchArena { batches, next: 0 }
    }

    pub fn is_full(&self) -> bool {
        self.next == self.batches.len()
    }

    /// How many batches it holds.
    pub fn capacity(&self) -> usize {
        self.batches.len()
    }

    /// Every batch is free again (the submission queue is empty and no
    /// batch is open).
    pub fn reset(&mut self) {
        self.next = 0;
    }

    /// A new, empty batch (the caller checks [`is_full`](Self::is_full)).
    pub fn open(&mut self) -> usize {
        let b = self.next;
        self.next += 1;
        self.batches[b].n = 0;
        b
    }

    /// Datagrams in batch `b`.
    pub fn len(&self, b: usize) -> usize {
        self.batches[b].n
    }

    /// Adds the `len` payload bytes at `payload` (which must stay valid
    /// until the batch's send is taken) to batch `b`, which has room.
    pub fn push(&mut self, b: usize, payload: *const u8, len: usize) {
        let batch = &mut self.batches[b];
        batch.n += 1;
        batch.iov[batch.n] = libc::iovec {
            iov_base: payload as *mut libc::c_void,
            iov_len: len,
        };
    }

    /// Writes batch `b`'s headers for `route` and returns the msghdr to
    /// send. Every datagram has `seg_len` payload bytes. One datagram
    /// leaves as a plain frame with `udp_checksum` (see
    /// [`crate::input::relayed_checksum`]); more leave as one UDP GSO frame
    /// whose checksums the kernel or the device completes per datagram
    /// (the field holds the pseudo-header sum over the whole length, as
    /// `udp_send_skb` leaves it). The kernel numbers the datagrams' IP ids
    /// from the header's (0); they carry DF, so the id means nothing
    /// (RFC 6864).
    pub fn seal(
        &mut self,
        b: usize,
        route: &PacketRoute,
        src_port: u16,
        ttl: u8,
        seg_len: usize,
        udp_checksum: u16,
    ) -> *const libc::msghdr {
        let batch = &mut self.batches[b];
        let n = batch.n;
        let total = n * seg_len;
        let (vnet, hdr) = batch.hdr.split_at_mut(VNET_HDR_LEN);
        let hdr: &mut [u8; HEADER_LEN] = hdr.try_into().expect("header length");
        route.emit(hdr, src_port, ttl, total);
        vnet.fill(0);
        let csum = if n > 1 {
            vnet[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
            vnet[1] = VIRTIO_NET_HDR_GSO_UDP_L4;
            let at = |v: usize| (v as u16).to_le_bytes();
            vnet[2..4].copy_from_slice(&at(HEADER_LEN));
            vnet[4..6].copy_from_slice(&at(seg_len));
            vnet[6..8].copy_from_slice(&at(ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN));
            vnet[8..10].copy_from_slice(&at(6));
            // What `udp_send_skb` leaves for offload: the folded,
            // uncomplemented pseudo-header sum over the whole length.
            checksum::fold(checksum::pseudo_header(
                route.src,
                *route.dest.ip(),
                ipv4::PROTO_UDP,
                (udp::HEADER_LEN + total) as u32,
            ))
        } else {
            udp_checksum
        };
        hdr[HEADER_LEN - 2..].copy_from_slice(&csum.to_be_bytes());
        let prefix = route.prefix_len();
        batch.iov[0] = libc::iovec {
            iov_base: batch.hdr[VNET_HDR_LEN - prefix..].as_mut_ptr().cast(),
            iov_len: prefix + HEADER_LEN,
        };
        batch.msg.msg_name = std::ptr::null_mut();
        batch.msg.msg_namelen = 0;
        batch.msg.msg_iov = batch.iov.as_mut_ptr();
        batch.msg.msg_iovlen = 1 + n;
        batch.msg.msg_control = std::ptr::null_mut();
        batch.msg.msg_controllen = 0;
        batch.msg.msg_flags = 0;
        &batch.msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn test_route() -> PacketRoute {
        let dest = SocketAddrV4::new(Ipv4Addr::new(239, 2, 2, 2), 6000);
        PacketRoute {
            fd: -1,
            dst_mac: MacAddr::from_ipv4_multicast(*dest.ip()),
            src_mac: MacAddr([2, 0, 0, 0, 0, 7]),
            src: Ipv4Addr::new(10, 0, 0, 1),
            dest,
            ttl: 5,
            mtu: 1500,
            vnet: true,
            batch: true,
        }
    }

    /// The bytes a sealed batch hands the kernel: its iovecs joined.
    fn sent_bytes(msg: *const libc::msghdr) -> Vec<u8> {
        // SAFETY: the msghdr and its iovecs point into the arena and the
        // test's payloads, alive for this call.
        unsafe {
            let m = &*msg;
            let iov = std::slice::from_raw_parts(m.msg_iov, m.msg_iovlen);
            iov.iter()
                .flat_map(|v| std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len))
                .copied()
                .collect()
        }
    }

    #[test]
    fn a_batch_of_three_is_one_udp_gso_frame() {
        let route = test_route();
        let payloads: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100]).collect();
        let mut arena = BatchArena::new(2);
        let b = arena.open();
        for p in &payloads {
            arena.push(b, p.as_ptr(), p.len());
        }
        assert_eq!(arena.len(b), 3);
        let bytes = sent_bytes(arena.seal(b, &route, 4000, 5, 100, 0x1234));
        assert_eq!(bytes.len(), VNET_HDR_LEN + HEADER_LEN + 300);
        // virtio_net_hdr: NEEDS_CSUM, GSO_UDP_L4, hdr_len 42, gso_size 100,
        // csum_start 34, csum_offset 6 (little-endian).
        assert_eq!(&bytes[..10], &[1, 5, 42, 0, 100, 0, 34, 0, 6, 0]);
        let eth = ethernet::Frame::new_checked(&bytes[10..]).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(usize::from(ip.total_len()), 20 + 8 + 300);
        assert!(ipv4::Repr::parse(&ip).is_ok(), "valid header checksum");
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(u.len(), 8 + 300);
        // The seed: pseudo-header over 10.0.0.1 > 239.2.2.2, UDP, 308.
        let seed = 0x0a00 + 0x0001 + 0xef02 + 0x0202 + 17 + 308;
        assert_eq!(u.checksum(), ((seed & 0xffff) + (seed >> 16)) as u16);
        assert_eq!(&bytes[52..152], &payloads[0][..]);
        assert_eq!(&bytes[252..], &payloads[2][..]);
    }

    #[test]
    fn a_batch_of_one_is_a_plain_frame_with_its_checksum() {
        let mut route = test_route();
        let payload = [7u8; 64];
        let mut arena = BatchArena::new(1);
        let b = arena.open();
        arena.push(b, payload.as_ptr(), 64);
        assert!(arena.is_full());
        let bytes = sent_bytes(arena.seal(b, &route, 4000, 5, 64, 0xbeef));
        assert_eq!(&bytes[..10], &[0; 10]);
        assert_eq!(&bytes[10 + 40..10 + 42], &[0xbe, 0xef]);
        // A socket without the vnet header gets the frame alone.
        route.vnet = false;
        arena.reset();
        let b = arena.open();
        arena.push(b, payload.as_ptr(), 64);
        let bytes = sent_bytes(arena.seal(b, &route, 4000, 5, 64, 0xbeef));
        assert_eq!(bytes.len(), HEADER_LEN + 64);
        assert_eq!(&bytes[..6], &[1, 0, 0x5e, 2, 2, 2]);
    }

    #[test]
    fn headers_parse_back() {
        let route = test_route();
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
