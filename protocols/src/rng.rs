//! A seeded, deterministic random source for protocol jitter.
//!
//! The RFCs ask for randomised delays so routers on one LAN do not act in
//! lock-step: PIM's triggered Hello within `Triggered_Hello_Delay` (RFC 7761
//! section 4.3.1, 5 s), an IGMP host's report within the query's Max Response
//! Time (RFC 2236 section 3, RFC 3376 section 5.2; an IGMP proxy answers
//! queries upstream as a host does, RFC 4605). The randomness is an input: the control plane seeds [`Rng`] once
//! (from the OS, outside this crate) and tests seed it with a constant, so a
//! run replays exactly.
//!
//! The generator is SplitMix64 (Steele, Lea, Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014): 64 bits of state, passes
//! BigCrush, a few instructions per draw. Not cryptographic; nothing here
//! needs that (PIM Generation IDs only need to differ across restarts).

use core::ops::{Range, RangeInclusive};
use std::time::Duration;

/// A deterministic pseudorandom generator (SplitMix64). The same seed always
/// yields the same sequence, on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 uniformly distributed bits (e.g. a PIM Generation ID,
    /// RFC 7761 section 4.3.1).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method);
    /// `0` when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// A uniform duration in the half-open range `start..end`, at nanosecond
    /// resolution. An empty range (`end <= start`) yields `start`. Spans
    /// longer than `u64::MAX` nanoseconds (~584 years) are clamped to that.
    ///
    /// Example: the PIM triggered Hello delay is
    /// `rng.uniform(Duration::ZERO..Duration::from_secs(5))`.
    pub fn uniform(&mut self, range: Range<Duration>) -> Duration {
        if range.end <= range.start {
            return range.start;
        }
        let span = u64::try_from((range.end - range.start).as_nanos()).unwrap_or(u64::MAX);
        range.start + Duration::from_nanos(self.below(span))
    }

    /// A uniform duration in the closed range `start..=end` (both ends
    /// possible), nanosecond resolution; `start` if `end < start`. For RFC
    /// text that says "between 0 and Max Response Time".
    pub fn uniform_inclusive(&mut self, range: RangeInclusive<Duration>) -> Duration {
        let (start, end) = range.into_inner();
        if end <= start {
            return start;
        }
        let span = u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX - 1);
        start + Duration::from_nanos(self.below(span + 1))
    }

    /// A new generator seeded from this one: give each interface or peer its
    /// own stream so adding one does not shift the draws of the others.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_known_answers() {
        // Reference outputs of SplitMix64 seeded with 0 (same as Java's
        // SplittableRandom and the reference C implementation).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..64)
                .map(|_| r.uniform(Duration::ZERO..Duration::from_secs(5)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn uniform_stays_in_range_and_spreads() {
        let mut r = Rng::new(7);
        let lo = Duration::from_millis(100);
        let hi = Duration::from_millis(200);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let d = r.uniform(lo..hi);
            assert!(d >= lo && d < hi, "{d:?}");
            buckets[((d - lo).as_millis() / 10) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
        assert_eq!(r.uniform(hi..lo), hi, "empty range yields start");
        assert_eq!(r.uniform(lo..lo), lo);
        for _ in 0..1000 {
            let d = r.uniform_inclusive(Duration::ZERO..=Duration::from_nanos(2));
            assert!(d <= Duration::from_nanos(2));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn uniform_inclusive_reaches_both_ends() {
        let mut r = Rng::new(1);
        let mut seen = [false; 3];
        for _ in 0..200 {
            let d = r.uniform_inclusive(Duration::ZERO..=Duration::from_nanos(2));
            seen[d.as_nanos() as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn fork_is_deterministic_and_independent() {
        let mut a = Rng::new(9);
        let mut b = Rng::new(9);
        let mut fa = a.fork();
        let mut fb = b.fork();
        assert_eq!(fa.next_u64(), fb.next_u64());
        assert_ne!(fa.next_u64(), a.next_u64());
    }
}
