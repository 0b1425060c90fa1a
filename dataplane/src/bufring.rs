//! The provided-buffer ring an engine receives into.
//!
//! The kernel picks a free buffer for each datagram a multishot receive
//! takes and names it in the completion; the engine hands it back with
//! [`BufRing::recycle`] once every send that reads it has completed, and
//! [`BufRing::publish`] makes the returned buffers visible to the kernel, once
//! per batch.

use io_uring::types::BufRingEntry;
use io_uring::Submitter;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// Anonymous, page-aligned memory, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `populate`: fault every page in now. The receive buffers are not
    /// populated: a page becomes resident when the kernel first writes a
    /// frame into it, so an idle engine holds none of them and a
    /// standard-MTU flow touches only the first page or two of each
    /// jumbo-sized buffer.
    fn new(len: usize, populate: bool) -> io::Result<Mapping> {
        let populate = if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: an anonymous private mapping has no preconditions; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | populate,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows the
        // mapping past its owner's lifetime.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub struct BufRing {
    // The ring of entries the kernel takes buffers from.
    entries: Mapping,
    // The buffers themselves, `count * buf_size` bytes.
    data: Mapping,
    count: u16,
    buf_size: usize,
    tail: u16,
    bgid: u16,
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `buf_size` bytes and
    /// registers them as buffer group `bgid`, all available.
    pub fn register(
        submitter: &Submitter<'_>,
        count: u16,
        buf_size: usize,
        bgid: u16,
    ) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "buffer count must be a power of two"
        );
        let entries = Mapping::new(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            true,
        )?;
        let data = Mapping::new(usize::from(count) * buf_size, false)?;
        let mut ring = BufRing {
            entries,
            data,
            count,
            buf_size,
            tail: 0,
            bgid,
        };
        // SAFETY: the entry ring is page aligned, sized for `count` entries
        // and lives as long as `ring`, which the engine drops only after the
        // io_uring instance (field order in `Engine`).
        unsafe {
            submitter.register_buf_ring_with_flags(
                ring.entries.ptr.as_ptr() as u64,
                count,
                bgid,
                0,
            )?
        };
        for bid in 0..count {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// The first `len` bytes of buffer `bid`, as the kernel filled them.
    pub fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid % self.count);
        let len = len.min(self.buf_size);
        // SAFETY: bid < count and len <= buf_size, so the range lies inside
        // `data`. The kernel wrote this buffer before posting the completion
        // that named it and will not touch it again until it is recycled, so
        // no one writes it while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.data.ptr.as_ptr().add(bid * self.buf_size), len) }
    }

    /// [`buffer`](Self::buffer), writable: the engine rewrites a routed
    /// packet's IP header in place before its sends read it.
    pub fn buffer_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let bid = usize::from(bid % self.count);
        let len = len.min(self.buf_size);
        // SAFETY: as in `buffer`; `&mut self` makes this the only borrow,
        // and no send reads the buffer yet (they are queued after).
        unsafe {
            std::slice::from_raw_parts_mut(self.data.ptr.as_ptr().add(bid * self.buf_size), len)
        }
    }

    /// Queues buffer `bid` for return to the kernel (see [`publish`](Self::publish)).
    pub fn recycle(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: slot < count, so the entry lies inside `entries`; the kernel
        // does not read entries at or past the published tail.
        let entry = unsafe { &mut *self.entries.ptr.as_ptr().cast::<BufRingEntry>().add(slot) };
        // SAFETY: as in `buffer`, bid < count keeps the address inside `data`.
        let addr = unsafe { self.data.ptr.as_ptr().add(usize::from(bid) * self.buf_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer available to the kernel.
    pub fn publish(&mut self) {
        // SAFETY: the tail field overlays the first entry's reserved field,
        // which the ring's base address points at; it is a u16 the kernel
        // reads with acquire ordering, so a release store publishes the
        // entries written before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.ptr.as_ptr().cast::<BufRingEntry>());
            (*(tail as *const AtomicU16)).store(self.tail, Ordering::Release);
        }
    }
}
