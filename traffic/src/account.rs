//! Per-stream accounting: loss, duplicates, reordering, corruption, latency
//! and a running payload hash, in bounded memory.

use serde::Serialize;

/// Sequence numbers remembered for duplicate detection (a power of two).
pub const WINDOW: u64 = 1 << 16;
const WINDOW_WORDS: usize = (WINDOW / 64) as usize;

// Byte-wise FNV-1a and its constants live in one place, the config
// crate's rule ids; `payload_hash` below is a different (word-wise) hash
// built from the same step.
use mcr_config::FNV_PRIME;
pub use mcr_config::{fnv1a, FNV_OFFSET};

/// Continue the payload hash over one payload: FNV-1a's xor-multiply step
/// over 8-byte little-endian words, then the remaining bytes one by one.
/// Eight times fewer multiplications than byte-wise FNV-1a (the byte-wise
/// hash was most of `mcrd listen`'s CPU on 1316-byte payloads); equal
/// hashes still mean the same payloads in the same order.
#[inline]
pub fn payload_hash(mut h: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h ^= u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = h.wrapping_mul(FNV_PRIME);
    }
    fnv1a(h, words.remainder())
}

/// Log-bucketed histogram in the style of HdrHistogram: values below 128 are
/// exact, above that each power of two is split into 64 buckets (relative
/// error below 1/64, about 1.6%). Values are `u64` (we record nanoseconds).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
}

const SUB_BITS: u32 = 7; // 2^7 exact values, then 2^6 buckets per octave
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
const N_BUCKETS: usize = (SUB + (64 - SUB_BITS as u64 + 1) * HALF) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; N_BUCKETS],
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }

    #[inline]
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = msb - (SUB_BITS - 1); // >= 1
        let m = v >> shift; // in [HALF, SUB)
        (SUB + (shift as u64 - 1) * HALF + (m - HALF)) as usize
    }

    /// Highest value that maps to bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i - SUB) / HALF + 1;
        let m = (i - SUB) % HALF + HALF;
        // (m+1) << shift - 1, saturating for the top octave
        ((m as u128 + 1) << shift)
            .saturating_sub(1)
            .min(u64::MAX as u128) as u64
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Value at quantile `q` in [0, 1]: the upper bound of the bucket holding
    /// the q-th value, clamped to the exact min/max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50/p99/p99.9/max in microseconds, for a histogram of nanoseconds.
    pub fn latency_us(&self) -> LatencyUs {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencyUs {
            samples: self.total,
            p50: us(self.quantile(0.5)),
            p99: us(self.quantile(0.99)),
            p999: us(self.quantile(0.999)),
            max: us(self.max),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencyUs {
    pub samples: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Sequence accounting for one (source, stream).
///
/// A bitmap remembers which of the last [`WINDOW`] sequence numbers (up to
/// the highest seen) have arrived. A packet below the highest is a duplicate
/// if its bit is set, else it is counted reordered (and received). A packet
/// older than the window cannot be checked: it counts as reordered (late) and
/// as a distinct arrival.
pub struct SeqTracker {
    bits: Box<[u64; WINDOW_WORDS]>,
    started: bool,
    lowest: u64,
    highest: u64,
    /// Distinct sequence numbers received (duplicates excluded).
    pub distinct: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Of `reordered`, those too old for the window to tell.
    pub late: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`SeqTracker::observe`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    InOrder,
    Duplicate,
    Reordered,
    Late,
}

impl SeqTracker {
    pub fn new() -> Self {
        SeqTracker {
            bits: Box::new([0; WINDOW_WORDS]),
            started: false,
            lowest: 0,
            highest: 0,
            distinct: 0,
            duplicates: 0,
            reordered: 0,
            late: 0,
        }
    }

    #[inline]
    fn slot(seq: u64) -> (usize, u64) {
        let i = seq & (WINDOW - 1);
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    #[inline]
    fn clear(&mut self, seq: u64) {
        let (w, m) = Self::slot(seq);
        self.bits[w] &= !m;
    }

    /// Test-and-set; true if it was already set.
    #[inline]
    fn test_set(&mut self, seq: u64) -> bool {
        let (w, m) = Self::slot(seq);
        let was = self.bits[w] & m != 0;
        self.bits[w] |= m;
        was
    }

    #[inline]
    pub fn observe(&mut self, seq: u64) -> SeqEvent {
        if !self.started {
            self.started = true;
            self.lowest = seq;
            self.highest = seq;
            self.test_set(seq);
            self.distinct = 1;
            return SeqEvent::InOrder;
        }
        if seq > self.highest {
            let gap = seq - self.highest;
            if gap >= WINDOW {
                self.bits.fill(0);
            } else {
                // Slots for (highest, seq) now describe new sequence numbers.
                for s in self.highest + 1..seq {
                    self.clear(s);
                }
            }
            // The slot for `seq` itself may hold seq - WINDOW: overwrite.
            self.clear(seq);
            self.test_set(seq);
            self.highest = seq;
            self.distinct += 1;
            return SeqEvent::InOrder;
        }
        self.lowest = self.lowest.min(seq);
        if self.highest - seq >= WINDOW {
            self.reordered += 1;
            self.late += 1;
            self.distinct += 1;
            return SeqEvent::Late;
        }
        if self.test_set(seq) {
            self.duplicates += 1;
            SeqEvent::Duplicate
        } else {
            self.reordered += 1;
            self.distinct += 1;
            SeqEvent::Reordered
        }
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.started.then_some(self.lowest)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.started.then_some(self.highest)
    }

    /// Sequence numbers in [lowest, highest] never seen. Computed from totals,
    /// so late arrivals fill their gap.
    pub fn lost(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (self.highest - self.lowest + 1).saturating_sub(self.distinct)
    }
}

/// Everything counted for one (source, stream id). Packets without a full
/// header (shorter than 24 bytes or without the magic) go to a tracker with
/// no sequence accounting.
pub struct StreamTracker {
    pub seq: SeqTracker,
    /// Every packet, duplicates included.
    pub received: u64,
    pub bytes: u64,
    pub corrupted: u64,
    pub hash: u64,
    pub min_size: usize,
    pub max_size: usize,
    pub ttl_min: Option<u8>,
    pub ttl_max: Option<u8>,
    pub latency_ns: Histogram,
}

impl Default for StreamTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamTracker {
    pub fn new() -> Self {
        StreamTracker {
            seq: SeqTracker::new(),
            received: 0,
            bytes: 0,
            corrupted: 0,
            hash: FNV_OFFSET,
            min_size: usize::MAX,
            max_size: 0,
            ttl_min: None,
            ttl_max: None,
            latency_ns: Histogram::new(),
        }
    }

    /// Count a packet that carries no usable header.
    #[inline]
    pub fn record_unsequenced(&mut self, payload: &[u8], ttl: Option<u8>) {
        self.received += 1;
        self.bytes += payload.len() as u64;
        self.hash = payload_hash(self.hash, payload);
        self.min_size = self.min_size.min(payload.len());
        self.max_size = self.max_size.max(payload.len());
        if let Some(t) = ttl {
            self.ttl_min = Some(self.ttl_min.map_or(t, |m| m.min(t)));
            self.ttl_max = Some(self.ttl_max.map_or(t, |m| m.max(t)));
        }
    }

    /// Count a packet whose header decoded. `now_ns` is the receive time on
    /// CLOCK_REALTIME; `corrupt` is the result of the filler check. A corrupt
    /// packet is still sequence-tracked, its header taken at face value.
    #[inline]
    pub fn record(
        &mut self,
        payload: &[u8],
        seq: u64,
        sent_ns: u64,
        now_ns: u64,
        corrupt: bool,
        ttl: Option<u8>,
    ) -> SeqEvent {
        self.record_unsequenced(payload, ttl);
        if corrupt {
            self.corrupted += 1;
        }
        self.latency_ns.record(now_ns.saturating_sub(sent_ns));
        self.seq.observe(seq)
    }

    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: impl IntoIterator<Item = u64>) -> SeqTracker {
        let mut t = SeqTracker::new();
        for s in seqs {
            t.observe(s);
        }
        t
    }

    #[test]
    fn clean() {
        let t = run(0..100_000);
        assert_eq!((t.lost(), t.duplicates, t.reordered), (0, 0, 0));
        assert_eq!((t.first_seq(), t.last_seq()), (Some(0), Some(99_999)));
    }

    #[test]
    fn drop_every_100th() {
        let t = run((0..100_000).filter(|s| s % 100 != 99));
        assert_eq!(t.lost(), 1000 - 1); // seq 99_999 is past the highest seen
        assert_eq!((t.duplicates, t.reordered), (0, 0));
        let t = run((0..100_000).filter(|s| s % 100 != 50));
        assert_eq!(t.lost(), 1000);
    }

    #[test]
    fn duplicates() {
        let t = run((0..1000).flat_map(|s| [s, s]));
        assert_eq!((t.lost(), t.duplicates, t.reordered), (0, 1000, 0));
        // Duplicate of an old-but-in-window packet.
        let t = run([0, 1, 2, 3, 1, 2]);
        assert_eq!((t.lost(), t.duplicates, t.reordered), (0, 2, 0));
    }

    #[test]
    fn reordered() {
        // Swap every pair: 1,0,3,2,...
        let t = run((0..1000).map(|s| s ^ 1));
        assert_eq!((t.lost(), t.duplicates, t.reordered), (0, 0, 500));
        // First packet arrives after its successor: lowest moves back.
        let t = run([5, 4, 6]);
        assert_eq!((t.first_seq(), t.lost(), t.reordered), (Some(4), 0, 1));
        // A reordered packet that arrives twice: one reorder, one duplicate.
        let t = run([0, 2, 1, 1, 3]);
        assert_eq!((t.lost(), t.duplicates, t.reordered), (0, 1, 1));
    }

    #[test]
    fn late_beyond_window() {
        let mut seqs: Vec<u64> = (1..WINDOW + 10).collect();
        seqs.push(0);
        let t = run(seqs);
        assert_eq!((t.lost(), t.duplicates, t.reordered, t.late), (0, 0, 1, 1));
    }

    #[test]
    fn big_gap_and_window_reuse() {
        let t = run([0, 1, 3 * WINDOW, 3 * WINDOW + 1, 3 * WINDOW]);
        assert_eq!(t.lost(), 3 * WINDOW + 2 - 4);
        assert_eq!(t.duplicates, 1);
        // After wrapping, a seq sharing a slot with an old one is not a dup.
        let t = run([0, WINDOW, WINDOW + 1]);
        assert_eq!((t.duplicates, t.lost()), (0, WINDOW + 2 - 3));
        let t = run((0..3 * WINDOW).chain([3 * WINDOW - 5]));
        assert_eq!((t.duplicates, t.reordered, t.lost()), (1, 0, 0));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.02, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.02, "{p99}");
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.quantile(1.0), 100_000_000);
        for v in [0, 1, 127, 128, 129, 255, 256, 1 << 40, u64::MAX] {
            let i = Histogram::index(v);
            assert!(i < N_BUCKETS);
            assert!(Histogram::upper(i) >= v, "{v}");
            if i > 0 {
                assert!(Histogram::upper(i - 1) < v, "{v}");
            }
        }
        let mut e = Histogram::new();
        e.record(7);
        e.merge(&h);
        assert_eq!(e.count(), 100_001);
        assert_eq!(e.quantile(0.0), 7);
        assert_eq!(Histogram::new().latency_us(), LatencyUs::default());
    }

    #[test]
    fn payload_hash_sees_order_and_every_byte() {
        let a = payload_hash(FNV_OFFSET, b"0123456789abcdefXYZ");
        assert_ne!(a, payload_hash(FNV_OFFSET, b"0123456789abcdefXYz"));
        assert_ne!(a, payload_hash(FNV_OFFSET, b"1023456789abcdefXYZ"));
        let ab = payload_hash(payload_hash(FNV_OFFSET, b"first"), b"second");
        let ba = payload_hash(payload_hash(FNV_OFFSET, b"second"), b"first");
        assert_ne!(ab, ba);
        // Short payloads are byte-wise FNV-1a.
        assert_eq!(payload_hash(FNV_OFFSET, b"a"), fnv1a(FNV_OFFSET, b"a"));
    }

    #[test]
    fn fnv_known_value() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(
            fnv1a(fnv1a(FNV_OFFSET, b"foo"), b"bar"),
            fnv1a(FNV_OFFSET, b"foobar")
        );
    }

    #[test]
    fn stream_tracker() {
        let mut t = StreamTracker::new();
        let mut buf = vec![0u8; 40];
        for seq in 0..10u64 {
            crate::header::encode(&mut buf, 1, seq, 1_000);
            crate::header::fill(&mut buf, 1, seq);
            t.record(&buf, seq, 1_000, 3_000, false, Some(64));
        }
        t.record_unsequenced(&[1, 2, 3], Some(3));
        assert_eq!(t.received, 11);
        assert_eq!(t.bytes, 403);
        assert_eq!((t.min_size, t.max_size), (3, 40));
        assert_eq!((t.ttl_min, t.ttl_max), (Some(3), Some(64)));
        assert_eq!(t.latency_ns.quantile(0.5), 2_000);
        assert_eq!(t.hash_hex().len(), 16);
    }
}
