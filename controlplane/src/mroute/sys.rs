//! The kernel's IPv4 multicast routing ABI (`linux/mroute.h`), which the
//! `libc` crate does not define: socket options, `struct vifctl`,
//! `struct mfcctl`, `struct sioc_sg_req` and the upcall `struct igmpmsg`.
//! Values and layouts are copied from `include/uapi/linux/mroute.h`.

#![allow(non_camel_case_types)]

/// `MRT_BASE` and the options after it (linux/mroute.h), level `IPPROTO_IP`.
pub const MRT_INIT: libc::c_int = 200;
/// Shuts the kernel mroute code down for this socket (also done on close).
pub const MRT_DONE: libc::c_int = 201;
/// Adds a vif (`struct vifctl`).
pub const MRT_ADD_VIF: libc::c_int = 202;
/// Deletes a vif (`struct vifctl`, only `vifc_vifi` is read).
pub const MRT_DEL_VIF: libc::c_int = 203;
/// Adds or replaces an MFC entry (`struct mfcctl`).
pub const MRT_ADD_MFC: libc::c_int = 204;
/// Deletes an MFC entry (`struct mfcctl`, origin and group are read).
pub const MRT_DEL_MFC: libc::c_int = 205;
/// Enables `IGMPMSG_WRONGVIF` upcalls (int).
pub const MRT_ASSERT: libc::c_int = 207;
/// Enables PIM: the register vif, Register decapsulation, WHOLEPKT (int).
pub const MRT_PIM: libc::c_int = 208;

/// `SIOCGETSGCNT` = `SIOCPROTOPRIVATE + 1` (linux/mroute.h, linux/sockios.h).
pub const SIOCGETSGCNT: libc::c_ulong = 0x89E1;

/// Most vifs the kernel supports (`MAXVIFS`).
pub const MAXVIFS: usize = 32;

/// `VIFF_REGISTER`: the vif is the PIM register pseudo-interface (`pimreg`).
pub const VIFF_REGISTER: u8 = 0x4;
/// `VIFF_USE_IFINDEX`: `vifc_lcl_ifindex` names the interface.
pub const VIFF_USE_IFINDEX: u8 = 0x8;

/// `IGMPMSG_NOCACHE`: a packet matched no MFC entry.
pub const IGMPMSG_NOCACHE: u8 = 1;
/// `IGMPMSG_WRONGVIF`: a packet of an entry arrived on another vif.
pub const IGMPMSG_WRONGVIF: u8 = 2;
/// `IGMPMSG_WHOLEPKT`: a packet sent to the register vif, whole.
pub const IGMPMSG_WHOLEPKT: u8 = 3;
/// `IGMPMSG_WRVIFWHOLE`: WRONGVIF with the whole packet (not enabled by us).
pub const IGMPMSG_WRVIFWHOLE: u8 = 4;

/// `struct vifctl`; the union `vifc_lcl_addr`/`vifc_lcl_ifindex` is the
/// `int` here (we always use `VIFF_USE_IFINDEX` or the register vif).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct vifctl {
    pub vifc_vifi: u16,
    pub vifc_flags: u8,
    pub vifc_threshold: u8,
    pub vifc_rate_limit: libc::c_uint,
    pub vifc_lcl_ifindex: libc::c_int,
    pub vifc_rmt_addr: u32,
}

/// `struct mfcctl`: one MFC entry. `mfcc_ttls[v]` is the TTL threshold of
/// vif `v` (0 or 255: not an oif; 1: forward any packet with TTL > 1).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mfcctl {
    pub mfcc_origin: libc::in_addr,
    pub mfcc_mcastgrp: libc::in_addr,
    pub mfcc_parent: u16,
    pub mfcc_ttls: [u8; MAXVIFS],
    pub mfcc_pkt_cnt: libc::c_uint,
    pub mfcc_byte_cnt: libc::c_uint,
    pub mfcc_wrong_if: libc::c_uint,
    pub mfcc_expire: libc::c_int,
}

/// `struct sioc_sg_req`: the counters of one `(S,G)` entry.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sioc_sg_req {
    pub src: libc::in_addr,
    pub grp: libc::in_addr,
    pub pktcnt: libc::c_ulong,
    pub bytecnt: libc::c_ulong,
    pub wrong_if: libc::c_ulong,
}

/// `struct group_filter` (linux/in.h, RFC 3678) with room for
/// [`MAX_FILTER_SOURCES`] sources, for `MCAST_MSFILTER`.
#[repr(C)]
pub struct group_filter {
    pub gf_interface: u32,
    pub gf_group: libc::sockaddr_storage,
    pub gf_fmode: u32,
    pub gf_numsrc: u32,
    pub gf_slist: [libc::sockaddr_storage; MAX_FILTER_SOURCES],
}

/// Sources one upstream filter lists at most (the kernel's default
/// `net.ipv4.igmp_max_msf` is 10; 64 is room for a raised sysctl).
pub const MAX_FILTER_SOURCES: usize = 64;
/// `MCAST_INCLUDE` (linux/in.h).
pub const MCAST_INCLUDE: u32 = 1;
/// `MCAST_EXCLUDE` (linux/in.h).
pub const MCAST_EXCLUDE: u32 = 0;
