//! What an output device does with a UDP GSO frame (`SIOCETHTOOL`), which
//! decides whether the engines may batch sends to it (see
//! [`crate::tx::Batch`]).
//!
//! A batch must be cut back into one frame per datagram before anything
//! but this host's own stack sees it. The kernel cuts it before a device
//! without UDP segmentation offload (`tx-udp-segmentation` off); a NIC
//! with the offload cuts it on the wire. A virtual device with the
//! offload on (veth, bridge, macvlan, ipvlan, tun, by default) hands the
//! batch whole to another stack, where a router drops it (too large, DF)
//! and a packet socket reads one 64 KiB frame: never batch there.

use crate::socket::new_socket;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
/// Feature names the kernel reports; more would be a kernel from far ahead.
const MAX_FEATURES: u32 = 1024;
/// Drivers of devices that pass frames to another stack in this host.
const VIRTUAL: [&str; 9] = [
    "veth",
    "bridge",
    "macvlan",
    "ipvlan",
    "tun",
    "netkit",
    "vrf",
    "openvswitch",
    "dummy",
];

/// Runs one `SIOCETHTOOL` command whose buffer `data` starts with it.
fn ethtool(fd: RawFd, ifname: &str, data: &mut [u8]) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(ifname.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data.as_mut_ptr().cast();
    // SAFETY: `ifr` names the interface and points at `data`, which is as
    // large as the command's structure (each caller sizes it) and lives
    // across the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Whether `tx-udp-segmentation` (`NETIF_F_GSO_UDP_L4`) is active on
/// `ifname`: `ETHTOOL_GSSET_INFO`, `ETHTOOL_GSTRINGS` and
/// `ETHTOOL_GFEATURES`.
fn udp_segmentation_active(fd: RawFd, ifname: &str) -> io::Result<bool> {
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [0u8; 24];
    put_u32(&mut info, 0, ETHTOOL_GSSET_INFO);
    info[8..16].copy_from_slice(&(1u64 << ETH_SS_FEATURES).to_ne_bytes());
    ethtool(fd, ifname, &mut info)?;
    let count = u32_at(&info, 16).min(MAX_FEATURES);
    // struct ethtool_gstrings: cmd, string_set, len, data[len * 32].
    let mut names = vec![0u8; 12 + count as usize * ETH_GSTRING_LEN];
    put_u32(&mut names, 0, ETHTOOL_GSTRINGS);
    put_u32(&mut names, 4, ETH_SS_FEATURES);
    put_u32(&mut names, 8, count);
    ethtool(fd, ifname, &mut names)?;
    let Some(bit) = names[12..]
        .chunks(ETH_GSTRING_LEN)
        .position(|n| n.split(|c| *c == 0).next() == Some(b"tx-udp-segmentation"))
    else {
        // A kernel without the feature cannot hand a device a batch.
        return Ok(false);
    };
    // struct ethtool_gfeatures: cmd, size, then per 32 features
    // {available, requested, active, never_changed}.
    let blocks = count.div_ceil(32);
    let mut features = vec![0u8; 8 + blocks as usize * 16];
    put_u32(&mut features, 0, ETHTOOL_GFEATURES);
    put_u32(&mut features, 4, blocks);
    ethtool(fd, ifname, &mut features)?;
    let active = u32_at(&features, 8 + (bit / 32) * 16 + 8);
    Ok(active & (1 << (bit % 32)) != 0)
}

/// The device's driver and bus (`ETHTOOL_GDRVINFO`).
fn driver(fd: RawFd, ifname: &str) -> io::Result<(String, String)> {
    // struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32],
    // bus_info[32], erom_version[32], reserved2[12], five u32.
    let mut d = [0u8; 196];
    put_u32(&mut d, 0, ETHTOOL_GDRVINFO);
    ethtool(fd, ifname, &mut d)?;
    let text = |at: usize| {
        let f = &d[at..at + 32];
        let end = f.iter().position(|c| *c == 0).unwrap_or(32);
        String::from_utf8_lossy(&f[..end]).into_owned()
    };
    Ok((text(4), text(4 + 3 * 32)))
}

/// Whether a UDP GSO frame sent on `ifname` is cut into one frame per
/// datagram before anyone else sees it: by this kernel (no UDP
/// segmentation offload) or by a NIC (offload on a device on a hardware
/// bus, not one of the virtual drivers). False when it cannot be told.
pub fn batches_leave_cut(ifname: &str) -> bool {
    let Ok(fd) = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0) else {
        return false;
    };
    match udp_segmentation_active(fd.as_raw_fd(), ifname) {
        Ok(false) => true,
        Ok(true) => driver(fd.as_raw_fd(), ifname).is_ok_and(|(driver, bus)| {
            !VIRTUAL.contains(&driver.as_str()) && (bus.contains(':') || bus.contains('.'))
        }),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback has no hardware bus: batches may go there only when the
    /// kernel cuts them (its offload off); an unknown name never. (veth
    /// both ways: the end-to-end test
    /// `batched_sends_from_a_receive_ring_deliver_every_datagram_in_order`.)
    #[test]
    fn loopback_and_missing_devices() {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let offload = udp_segmentation_active(fd.as_raw_fd(), "lo").unwrap();
        assert_eq!(batches_leave_cut("lo"), !offload);
        assert!(!batches_leave_cut("no-such-if0"));
    }
}
