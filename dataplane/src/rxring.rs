//! A capture socket's receive ring (`PACKET_RX_RING`, `TPACKET_V2`).
//!
//! The kernel writes each captured frame into the next free slot of a ring
//! mapped into the engine, during the softirq that received it, and marks
//! the slot `TP_STATUS_USER`; the engine reads frames straight out of the
//! slots, sends from them, and hands each slot back (`TP_STATUS_KERNEL`)
//! once the sends that read it have been taken by the kernel. No system
//! call, completion or copy per received frame on the engine's side.
//!
//! `TPACKET_V2` rather than `V3`: a V2 slot is handed over (and the socket
//! woken) frame by frame, where V3 hands over whole blocks, at the earliest
//! when a block fills or its timer (>= 1 ms) fires, which would add up to
//! that much latency at low rates.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const PACKET_RX_RING: i32 = 5;
const PACKET_VERSION: i32 = 10;
const TPACKET_V2: i32 = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// The frame's VLAN tag was moved out of the bytes into `tp_vlan_tci`.
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// The frame's transport checksum is left to offload (its field holds the
/// pseudo-header seed).
pub const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

/// `struct tpacket_req` (linux/if_packet.h).
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// Offsets in `struct tpacket2_hdr`, which starts every slot.
const HDR_STATUS: usize = 0;
const HDR_LEN: usize = 4;
const HDR_SNAPLEN: usize = 8;
const HDR_MAC: usize = 12;
const HDR_VLAN_TCI: usize = 24;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where the `sockaddr_ll`
/// follows the header.
const SLL_AT: usize = 32;
/// `sll_pkttype` within `sockaddr_ll`.
const SLL_PKTTYPE: usize = 10;

/// One frame handed over by the kernel.
pub struct Frame {
    /// The slot, to [`RxRing::release`] when nothing reads it any more.
    pub slot: u32,
    /// Offset of the frame's first byte (link header, or network header on
    /// an L3 link) within the slot, and the bytes captured.
    pub at: usize,
    pub captured: usize,
    /// Bytes the frame had on the wire (more than `captured` when it did
    /// not fit the slot).
    pub wire_len: usize,
    pub status: u32,
    pub vlan_tci: u16,
    pub pkt_type: u8,
}

/// Bytes of one ring block: whole slots are packed into blocks of this
/// size (the kernel allocates the ring block by block, physically
/// contiguous, so not larger), and what a block cannot fit is unused: under
/// 2% for slots of standard or jumbo MTU.
const BLOCK_SIZE: usize = 64 << 10;

/// Where the frame starts in a `SOCK_RAW` slot: the kernel aligns the
/// network header to 16 bytes after the 52-byte `TPACKET_V2` header and
/// `sockaddr_ll` (plus at least 16 bytes), so the 14-byte link header
/// begins at 80 - 14.
const RAW_MAC_OFFSET: usize = 66;

/// The slot size that takes a frame of an `mtu`-byte IP packet whole:
/// the header area, an Ethernet header with one VLAN tag, the packet,
/// rounded up to the 16-byte alignment the kernel requires.
pub fn slot_size_for_mtu(mtu: u32) -> usize {
    (RAW_MAC_OFFSET + 18 + mtu as usize).next_multiple_of(16)
}

/// A ring's layout for at least `frames` slots of `mtu`-byte packets, but
/// at most [`MAX_RING_BYTES`] (and at least one block): (slot size, block
/// size, slots per block, blocks), all in bytes or counts as the kernel's
/// `tpacket_req` wants them.
fn layout(frames: u32, mtu: u32) -> (usize, usize, usize, usize) {
    let frame_size = slot_size_for_mtu(mtu);
    let block = BLOCK_SIZE.max(frame_size).next_multiple_of(4096);
    let per_block = block / frame_size;
    let blocks = (frames as usize)
        .div_ceil(per_block)
        .min((MAX_RING_BYTES / block).max(1));
    (frame_size, block, per_block, blocks)
}

/// The most one ring maps (kernel memory, resident from the start): 256
/// MiB, e.g. 65,536 slots at MTU 2,500 or 27,000 at MTU 9,000; a ring asked
/// larger gets the slots that fit ([`RxRing::setup`]).
pub const MAX_RING_BYTES: usize = 256 << 20;

/// The memory a ring asked for `frames` slots for `mtu` takes, in bytes:
/// what [`RxRing::setup`] allocates in the kernel and maps into the engine.
pub fn ring_bytes(frames: u32, mtu: u32) -> usize {
    let (_, block, _, blocks) = layout(frames, mtu);
    block * blocks
}

/// The mapped ring of one capture socket; unmapped on drop (the socket
/// must outlive it, or at least not be reused, while it is mapped).
pub struct RxRing {
    map: NonNull<u8>,
    len: usize,
    frame_size: usize,
    block_size: usize,
    per_block: u32,
    frame_nr: u32,
    /// The next slot the kernel fills in order, where the engine reads
    /// (only the one engine that owns the socket reads the ring).
    head: AtomicU32,
}

// SAFETY: the mapping is plain memory shared with the kernel; the engine
// that owns the ring is the only user-space reader and writer of it.
unsafe impl Send for RxRing {}
// SAFETY: as above; `&RxRing` only reads the geometry.
unsafe impl Sync for RxRing {}

impl RxRing {
    /// Sets up a ring of at least `frame_nr` slots (whole 64 KiB blocks),
    /// each taking a frame of an `mtu`-byte packet whole
    /// ([`slot_size_for_mtu`]), but no more than [`MAX_RING_BYTES`], on
    /// `fd`, which must not be bound yet, and maps it
    /// ([`geometry`](Self::geometry) says what it got). Errors: the
    /// kernel's (no `TPACKET_V2`, no memory), or `InvalidInput` for 0 slots.
    pub fn setup(fd: RawFd, mtu: u32, frame_nr: u32) -> io::Result<RxRing> {
        if frame_nr == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a receive ring needs at least one slot",
            ));
        }
        let (frame_size, block, per_block, block_nr) = layout(frame_nr, mtu);
        let frame_nr = (block_nr * per_block) as u32;
        crate::socket::setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        let req = TpacketReq {
            tp_block_size: block as u32,
            tp_block_nr: block_nr as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frame_nr,
        };
        crate::socket::setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        let len = block * block_nr;
        // SAFETY: mapping the ring the kernel just allocated for `fd`, at a
        // length it accepts (block size x block count); checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(RxRing {
            map,
            len,
            frame_size,
            block_size: block,
            per_block: per_block as u32,
            frame_nr,
            head: AtomicU32::new(0),
        })
    }

    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        let at = (slot / self.per_block) as usize * self.block_size
            + (slot % self.per_block) as usize * self.frame_size;
        // SAFETY: slot < frame_nr = block count * per_block, so `at` plus a
        // slot lies within the block count * block_size mapped bytes.
        unsafe { self.map.as_ptr().add(at) }
    }

    /// Slots in the ring, and bytes mapped.
    pub fn geometry(&self) -> (u32, usize) {
        (self.frame_nr, self.len)
    }

    fn status(&self, slot: u32) -> &AtomicU32 {
        // SAFETY: the status word is the first, 4-byte aligned word of a
        // slot (slots are 16-byte aligned) within the mapping; the kernel
        // writes it with release semantics after the frame.
        unsafe { &*(self.slot_ptr(slot).add(HDR_STATUS) as *const AtomicU32) }
    }

    /// The next frame the kernel has handed over, if any; advances past it.
    pub fn next(&self) -> Option<Frame> {
        let slot = self.head.load(Ordering::Relaxed);
        let status = self.status(slot).load(Ordering::Acquire);
        if status & TP_STATUS_USER == 0 {
            return None;
        }
        let p = self.slot_ptr(slot);
        let rd32 = |off: usize| {
            // SAFETY: header fields lie within the slot's first 32 bytes.
            u32::from_ne_bytes(unsafe { *(p.add(off) as *const [u8; 4]) })
        };
        let rd16 = |off: usize| {
            // SAFETY: as above.
            u16::from_ne_bytes(unsafe { *(p.add(off) as *const [u8; 2]) })
        };
        let at = usize::from(rd16(HDR_MAC));
        let captured = rd32(HDR_SNAPLEN) as usize;
        // SAFETY: the sockaddr_ll lies within the slot after the header.
        let pkt_type = unsafe { *p.add(SLL_AT + SLL_PKTTYPE) };
        self.head
            .store((slot + 1) % self.frame_nr, Ordering::Relaxed);
        Some(Frame {
            slot,
            at,
            captured: captured.min(self.frame_size.saturating_sub(at)),
            wire_len: rd32(HDR_LEN) as usize,
            status,
            vlan_tci: rd16(HDR_VLAN_TCI),
            pkt_type,
        })
    }

    /// The bytes of `frame`, writable (routes decrement the TTL in place).
    #[allow(clippy::mut_from_ref)]
    pub fn bytes(&self, frame: &Frame) -> &mut [u8] {
        // SAFETY: at + captured lies within the slot (clamped in `next`),
        // the slot is ours until released, and nothing else in user space
        // aliases it.
        unsafe {
            std::slice::from_raw_parts_mut(self.slot_ptr(frame.slot).add(frame.at), frame.captured)
        }
    }

    /// Whether the kernel has handed over the frame at the read position.
    pub fn ready(&self) -> bool {
        let slot = self.head.load(Ordering::Relaxed);
        self.status(slot).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Hands `slot` back to the kernel.
    pub fn release(&self, slot: u32) {
        self.status(slot).store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

impl std::fmt::Debug for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("frame_size", &self.frame_size)
            .field("frame_nr", &self.frame_nr)
            .finish()
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `setup`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_whole_blocks_up_to_the_cap() {
        // MTU 1,500: 1,584-byte slots, 41 to a 64 KiB block.
        assert_eq!(slot_size_for_mtu(1500), 1584);
        assert_eq!(layout(1024, 1500), (1584, 65536, 41, 25));
        assert_eq!(ring_bytes(1024, 1500), 25 * 65536);
        // MTU 9,600 (the corpus test): 6 slots of 9,696 bytes a block.
        assert_eq!(layout(100, 9600), (9696, 65536, 6, 17));
        // 65,536 slots at MTU 9,000 would be 600 MiB: capped at 256.
        let (_, block, per_block, blocks) = layout(65536, 9000);
        assert_eq!(block * blocks, MAX_RING_BYTES);
        assert!(per_block * blocks < 65536);
        // A slot larger than a block: one slot per block, still capped.
        let (size, block, per_block, blocks) = layout(65536, 65535);
        assert_eq!((size, per_block), (65632, 1));
        assert!(block * blocks <= MAX_RING_BYTES && blocks >= 1);
    }
}
