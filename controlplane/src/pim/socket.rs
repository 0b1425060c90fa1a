//! The raw PIM socket (IP protocol 103): Hellos out to 224.0.0.13 with
//! TTL 1 on a chosen interface (`IP_PKTINFO` on send), every PIM packet in
//! with its arrival interface (`IP_PKTINFO` on receive), and the
//! ALL-PIM-ROUTERS membership per PIM interface (`IP_ADD_MEMBERSHIP`).
//! Multicast loopback is off, so our own Hellos never come back.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use mcr_dataplane::socket::{new_socket, setsockopt, setsockopt_int};
use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn,
};

/// IP protocol number of PIM (RFC 7761 section 4.9).
pub const IPPROTO_PIM: libc::c_int = 103;

/// A packet read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Arrival interface index.
    pub ifindex: u32,
    /// IP source.
    pub source: Ipv4Addr,
    /// IP destination.
    pub destination: Ipv4Addr,
    /// IP TTL.
    pub ttl: u8,
    /// The PIM message (IP payload).
    pub payload: Vec<u8>,
}

/// Splits a raw IPv4 datagram into (source, destination, ttl, payload);
/// `None` when the header is malformed or the protocol is not PIM.
pub fn split_ipv4(b: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u8, &[u8])> {
    let first = *b.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    if ihl < 20 || b.len() < ihl || *b.get(9)? != IPPROTO_PIM as u8 {
        return None;
    }
    // The kernel may hand a raw socket a total length of the payload only
    // on some paths; trust the buffer when the field disagrees.
    let end = if total >= ihl && total <= b.len() {
        total
    } else {
        b.len()
    };
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    Some((src, dst, b[8], &b[ihl..end]))
}

/// The raw PIM socket.
#[derive(Debug)]
pub struct PimSocket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl PimSocket {
    /// Opens it (needs CAP_NET_RAW).
    ///
    /// # Errors
    /// The socket cannot be opened or set up.
    pub fn open() -> io::Result<PimSocket> {
        let fd = new_socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            IPPROTO_PIM,
        )?;
        let raw = fd.as_raw_fd();
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, 1)?;
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
        // Internetwork control (RFC 791 precedence 6), as routers mark
        // their protocol traffic.
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_TOS, 0xc0)?;
        // Room for a burst of Hellos (a LAN of many routers restarting, or
        // a flood: the neighbour table bound, not the socket, should be
        // what limits it). Forced when allowed, else up to rmem_max.
        mcr_dataplane::socket::set_buffer(raw, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 4 << 20);
        Ok(PimSocket {
            fd,
            buf: vec![0u8; 65_536],
        })
    }

    /// The descriptor to poll for input.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn membership(&self, opt: libc::c_int, ifindex: u32) -> io::Result<()> {
        let m = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(mcr_protocols::pim::ALL_PIM_ROUTERS).to_be(),
            },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: ifindex as libc::c_int,
        };
        setsockopt(self.fd.as_raw_fd(), libc::IPPROTO_IP, opt, &m)
    }

    /// Joins 224.0.0.13 on `ifindex`.
    ///
    /// # Errors
    /// `IP_ADD_MEMBERSHIP` failed (an existing membership is not an error).
    pub fn join(&self, ifindex: u32) -> io::Result<()> {
        match self.membership(libc::IP_ADD_MEMBERSHIP, ifindex) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
            r => r,
        }
    }

    /// Leaves 224.0.0.13 on `ifindex` (errors ignored: the interface may be
    /// gone).
    pub fn leave(&self, ifindex: u32) {
        let _ = self.membership(libc::IP_DROP_MEMBERSHIP, ifindex);
    }

    /// Sends `payload` (a PIM message) to `dest` out of `ifindex`.
    ///
    /// # Errors
    /// sendmsg failed.
    pub fn send(&self, ifindex: u32, dest: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let info = libc::in_pktinfo {
            ipi_ifindex: ifindex as libc::c_int,
            ipi_spec_dst: libc::in_addr { s_addr: 0 },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let addr = SockaddrIn::from(SocketAddrV4::new(dest, 0));
        sendmsg(
            self.fd.as_raw_fd(),
            &[IoSlice::new(payload)],
            &[ControlMessage::Ipv4PacketInfo(&info)],
            MsgFlags::MSG_DONTWAIT,
            Some(&addr),
        )
        .map(drop)
        .map_err(io::Error::from)
    }

    /// Reads one packet; `Ok(None)` when nothing is waiting. Packets that
    /// are not IPv4 PIM (impossible on this socket) or carry no arrival
    /// interface are skipped.
    ///
    /// # Errors
    /// recvmsg failed otherwise.
    pub fn recv(&mut self) -> io::Result<Option<Received>> {
        loop {
            let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
            let (n, ifindex) = {
                let mut iov = [IoSliceMut::new(&mut self.buf)];
                let msg = match recvmsg::<SockaddrIn>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(m) => m,
                    Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                let mut ifindex = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                            ifindex = Some(info.ipi_ifindex as u32);
                        }
                    }
                }
                (msg.bytes, ifindex)
            };
            let Some(ifindex) = ifindex else { continue };
            let Some((source, destination, ttl, payload)) = split_ipv4(&self.buf[..n]) else {
                continue;
            };
            return Ok(Some(Received {
                ifindex,
                source,
                destination,
                ttl,
                payload: payload.to_vec(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ipv4_and_rejects_garbage() {
        let mut p = vec![
            0x45, 0xc0, 0, 30, 0, 0, 0, 0, 1, 103, 0, 0, 10, 0, 0, 1, 224, 0, 0, 13,
        ];
        p.extend_from_slice(&[0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105]);
        let (s, d, ttl, pl) = split_ipv4(&p).unwrap();
        assert_eq!(s, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(d, Ipv4Addr::new(224, 0, 0, 13));
        assert_eq!(ttl, 1);
        assert_eq!(pl.len(), 10);
        for cut in 0..p.len() {
            let _ = split_ipv4(&p[..cut]);
        }
        p[9] = 17;
        assert!(split_ipv4(&p).is_none());
    }
}
