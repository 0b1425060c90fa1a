//! Reading and clearing one interface offload feature through the
//! `SIOCETHTOOL` ioctl (what `ethtool -k` / `ethtool -K` do).
//!
//! `mcrgen --gso` needs the kernel to cut its UDP segmentation batches into
//! single datagrams *before* they reach the device; a device that offloads
//! UDP segmentation (veth does) would otherwise carry one 64 KiB super-packet
//! that a packet-socket receiver sees as one frame.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// The feature `mcrgen --gso` needs off.
pub const UDP_SEGMENTATION: &str = "tx-udp-segmentation";

#[repr(C)]
struct IfReqPtr {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u64; 2],
}

fn ethtool(fd: &OwnedFd, ifname: &str, buf: &mut [u32]) -> io::Result<()> {
    let mut r = IfReqPtr {
        name: [0; libc::IFNAMSIZ],
        data: buf.as_mut_ptr().cast(),
        _pad: [0; 2],
    };
    let n = ifname.len().min(libc::IFNAMSIZ - 1);
    r.name[..n].copy_from_slice(&ifname.as_bytes()[..n]);
    // SAFETY: `r` is a struct ifreq whose ifr_data points at `buf`, which
    // is live for the call and sized for the command written in buf[0]
    // (every caller sizes it from the count the kernel reported).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL as _, &mut r) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Bit index of a named feature on `ifname`.
fn feature_index(fd: &OwnedFd, ifname: &str, feature: &str) -> io::Result<Option<usize>> {
    // ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0, 0];
    ethtool(fd, ifname, &mut info)?;
    let count = info[4] as usize;
    // ethtool_gstrings: cmd, string_set, len, data[len * 32].
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_FEATURES;
    strings[2] = count as u32;
    ethtool(fd, ifname, &mut strings)?;
    let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes.chunks(ETH_GSTRING_LEN).position(|s| {
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        &s[..end] == feature.as_bytes()
    }))
}

/// Whether `feature` is active on `ifname` (false when the device does not
/// know it).
pub fn feature_active(fd: &OwnedFd, ifname: &str, feature: &str) -> io::Result<bool> {
    let Some(bit) = feature_index(fd, ifname, feature)? else {
        return Ok(false);
    };
    let blocks = bit / 32 + 1;
    // ethtool_gfeatures: cmd, size, then {available, requested, active,
    // never_changed} per block.
    let mut g = vec![0u32; 2 + 4 * blocks];
    g[0] = ETHTOOL_GFEATURES;
    g[1] = blocks as u32;
    ethtool(fd, ifname, &mut g)?;
    let active = g[2 + 4 * (bit / 32) + 2];
    Ok(active & (1 << (bit % 32)) != 0)
}

/// Turns `feature` off on `ifname` (needs CAP_NET_ADMIN).
pub fn disable_feature(fd: &OwnedFd, ifname: &str, feature: &str) -> io::Result<()> {
    let Some(bit) = feature_index(fd, ifname, feature)? else {
        return Ok(());
    };
    let blocks = bit / 32 + 1;
    // ethtool_sfeatures: cmd, size, then {valid, requested} per block.
    let mut s = vec![0u32; 2 + 2 * blocks];
    s[0] = ETHTOOL_SFEATURES;
    s[1] = blocks as u32;
    s[2 + 2 * (bit / 32)] = 1 << (bit % 32);
    ethtool(fd, ifname, &mut s)
}
