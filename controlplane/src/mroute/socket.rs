//! The mroute socket: a raw `IPPROTO_IGMP` socket on which `MRT_INIT`
//! succeeded. The kernel allows one per network namespace (routing table);
//! holding it makes `net.ipv4.conf.all.mc_forwarding` read 1, closing it
//! (or `MRT_DONE`) flushes our vifs and MFC entries and sets it back to 0.

use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;
use mcr_dataplane::socket::{new_socket, setsockopt};

/// What the route data path asks of the kernel: the mroute socket's
/// operations, behind a trait so the reconciliation logic is unit-tested
/// against a model of the kernel.
pub trait MfcKernel: Send {
    /// The descriptor to poll.
    fn raw_fd(&self) -> RawFd;
    /// Sets an integer option (`MRT_PIM`, `MRT_ASSERT`).
    fn set_flag(&self, opt: libc::c_int, on: bool) -> io::Result<()>;
    /// Adds vif `vifi` on `ifindex`, or the register vif when `None`.
    fn add_vif(&self, vifi: u16, ifindex: Option<u32>) -> io::Result<()>;
    /// Deletes vif `vifi`.
    fn del_vif(&self, vifi: u16) -> io::Result<()>;
    /// Adds or replaces an MFC entry.
    fn add_mfc(&self, m: &sys::mfcctl) -> io::Result<()>;
    /// Deletes the `(S,G)` entry.
    fn del_mfc(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<()>;
    /// Packets, bytes, wrong-interface arrivals of the `(S,G)` entry.
    fn sg_count(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<(u64, u64, u64)>;
    /// Reads one datagram; `None` when nothing waits.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Releases the kernel's multicast routing (`MRT_DONE`, close).
    fn close(self: Box<Self>);
}

impl MfcKernel for MrouteSocket {
    fn raw_fd(&self) -> RawFd {
        MrouteSocket::raw_fd(self)
    }
    fn set_flag(&self, opt: libc::c_int, on: bool) -> io::Result<()> {
        MrouteSocket::set_flag(self, opt, on)
    }
    fn add_vif(&self, vifi: u16, ifindex: Option<u32>) -> io::Result<()> {
        MrouteSocket::add_vif(self, vifi, ifindex)
    }
    fn del_vif(&self, vifi: u16) -> io::Result<()> {
        MrouteSocket::del_vif(self, vifi)
    }
    fn add_mfc(&self, m: &sys::mfcctl) -> io::Result<()> {
        MrouteSocket::add_mfc(self, m)
    }
    fn del_mfc(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<()> {
        MrouteSocket::del_mfc(self, source, group)
    }
    fn sg_count(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<(u64, u64, u64)> {
        MrouteSocket::sg_count(self, source, group)
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        MrouteSocket::recv(self, buf)
    }
    fn close(self: Box<Self>) {
        MrouteSocket::close(*self)
    }
}

/// The open mroute socket.
#[derive(Debug)]
pub struct MrouteSocket {
    fd: OwnedFd,
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

/// Builds the `struct mfcctl` of an entry: `oifs` are vif numbers (each
/// below [`sys::MAXVIFS`]; others are ignored), each with TTL threshold 1
/// so every packet with TTL > 1 is forwarded with TTL - 1 (the kernel
/// never forwards TTL <= 1 anyway, `ip_mr_forward`).
pub fn mfcctl(source: Ipv4Addr, group: Ipv4Addr, iif: u16, oifs: &[u16]) -> sys::mfcctl {
    let mut ttls = [0u8; sys::MAXVIFS];
    for &v in oifs {
        if usize::from(v) < sys::MAXVIFS && v != iif {
            ttls[usize::from(v)] = 1;
        }
    }
    sys::mfcctl {
        mfcc_origin: in_addr(source),
        mfcc_mcastgrp: in_addr(group),
        mfcc_parent: iif,
        mfcc_ttls: ttls,
        mfcc_pkt_cnt: 0,
        mfcc_byte_cnt: 0,
        mfcc_wrong_if: 0,
        mfcc_expire: 0,
    }
}

impl MrouteSocket {
    /// Opens the socket and takes the namespace's multicast routing with
    /// `MRT_INIT`. `EADDRINUSE`: another process holds it (smcroute, FRR's
    /// pimd, another mcrd); `EPERM`/`EACCES`: no `CAP_NET_RAW`.
    pub fn open() -> io::Result<MrouteSocket> {
        let fd = new_socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::IPPROTO_IGMP,
        )?;
        setsockopt(fd.as_raw_fd(), libc::IPPROTO_IP, sys::MRT_INIT, &1i32)?;
        // Room for upcall bursts (a new-source storm) while the loop is busy.
        mcr_dataplane::socket::set_buffer(
            fd.as_raw_fd(),
            libc::SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            4 << 20,
        );
        Ok(MrouteSocket { fd })
    }

    /// The descriptor to poll.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sets an integer option (`MRT_PIM`, `MRT_ASSERT`).
    pub fn set_flag(&self, opt: libc::c_int, on: bool) -> io::Result<()> {
        setsockopt(self.raw_fd(), libc::IPPROTO_IP, opt, &i32::from(on))
    }

    /// Adds vif `vifi` on interface `ifindex` (`VIFF_USE_IFINDEX`), or the
    /// register vif (`pimreg`) when `ifindex` is `None`.
    pub fn add_vif(&self, vifi: u16, ifindex: Option<u32>) -> io::Result<()> {
        let v = sys::vifctl {
            vifc_vifi: vifi,
            vifc_flags: match ifindex {
                Some(_) => sys::VIFF_USE_IFINDEX,
                None => sys::VIFF_REGISTER,
            },
            vifc_threshold: 1,
            vifc_rate_limit: 0,
            vifc_lcl_ifindex: ifindex.unwrap_or(0) as i32,
            vifc_rmt_addr: 0,
        };
        setsockopt(self.raw_fd(), libc::IPPROTO_IP, sys::MRT_ADD_VIF, &v)
    }

    /// Deletes vif `vifi` (and the kernel drops it from every entry).
    pub fn del_vif(&self, vifi: u16) -> io::Result<()> {
        let v = sys::vifctl {
            vifc_vifi: vifi,
            ..Default::default()
        };
        setsockopt(self.raw_fd(), libc::IPPROTO_IP, sys::MRT_DEL_VIF, &v)
    }

    /// Adds or replaces an MFC entry.
    pub fn add_mfc(&self, m: &sys::mfcctl) -> io::Result<()> {
        setsockopt(self.raw_fd(), libc::IPPROTO_IP, sys::MRT_ADD_MFC, m)
    }

    /// Deletes the `(S,G)` MFC entry.
    pub fn del_mfc(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<()> {
        let m = mfcctl(source, group, 0, &[]);
        setsockopt(self.raw_fd(), libc::IPPROTO_IP, sys::MRT_DEL_MFC, &m)
    }

    /// Packets, bytes and wrong-interface arrivals of the `(S,G)` entry.
    pub fn sg_count(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<(u64, u64, u64)> {
        let mut r = sys::sioc_sg_req {
            src: in_addr(source),
            grp: in_addr(group),
            pktcnt: 0,
            bytecnt: 0,
            wrong_if: 0,
        };
        // SAFETY: SIOCGETSGCNT reads and writes one sioc_sg_req, which `r`
        // is, live for the call.
        let rc = unsafe { libc::ioctl(self.raw_fd(), sys::SIOCGETSGCNT as _, &mut r) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // c_ulong is u64 on the 64-bit targets mcr builds for.
        #[allow(clippy::unnecessary_cast)]
        Ok((r.pktcnt as u64, r.bytecnt as u64, r.wrong_if as u64))
    }

    /// Reads one datagram into `buf`; `None` when nothing waits.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is live and its length is passed.
        let n = unsafe { libc::recv(self.raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// `MRT_DONE`, then the socket closes (the kernel flushes our state).
    pub fn close(self) {
        let _ = setsockopt(self.raw_fd(), libc::IPPROTO_IP, sys::MRT_DONE, &1i32);
    }
}

/// `mcrctl`-readable size check of the structs against the kernel ABI.
const _: () = {
    assert!(size_of::<sys::vifctl>() == 16);
    assert!(size_of::<sys::mfcctl>() == 60);
    assert!(size_of::<sys::sioc_sg_req>() == 8 + 3 * size_of::<libc::c_ulong>());
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfcctl_ttls_mark_oifs_only() {
        let m = mfcctl(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            2,
            &[0, 2, 5, 31, 32, 400],
        );
        assert_eq!(m.mfcc_parent, 2);
        let want: Vec<usize> = vec![0, 5, 31];
        let got: Vec<usize> = (0..sys::MAXVIFS).filter(|&v| m.mfcc_ttls[v] != 0).collect();
        assert_eq!(got, want, "iif 2 and vifs past MAXVIFS are not oifs");
        assert!(m.mfcc_ttls.iter().all(|&t| t == 0 || t == 1));
        assert_eq!(
            m.mfcc_origin.s_addr,
            u32::from_be_bytes([10, 0, 0, 1]).to_be()
        );
        assert_eq!(
            m.mfcc_mcastgrp.s_addr.to_ne_bytes(),
            [239, 1, 1, 1],
            "network byte order"
        );
    }
}
