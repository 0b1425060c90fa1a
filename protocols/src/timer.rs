//! A deadline-ordered set of timers keyed by a caller-chosen key.
//!
//! Each protocol names its timers with its own key type (for PIM, e.g.
//! `Hello(ifindex)` or `NeighborExpiry(ifindex, address)`); a key is armed at
//! most once, so re-arming moves the deadline (the RFCs' "restart timer" and
//! "set timer to" both mean exactly that). The control plane keeps one set per
//! protocol instance, sleeps until [`TimerSet::next_deadline`], and feeds each
//! key returned by [`TimerSet::pop_expired`] back as
//! [`crate::Input::Timer`].
//!
//! Implementation: a binary min-heap of `(deadline, sequence, key)` with
//! lazy deletion, plus a `BTreeMap` key -> `(deadline, sequence)` that says
//! which heap entry is live. Arm is one map update and one heap push, cancel
//! one map removal (its heap entry goes stale and is skipped), pop one heap
//! pop and one map removal: `O(log n)` each. Stale entries are purged from the
//! top after every change (so the top is always live) and the heap is rebuilt
//! when stale entries outnumber live ones, so memory stays within twice the
//! armed timers plus a constant. Order is deterministic: by deadline, then by
//! arming order. The key index is ordered, not hashed: no OS-seeded hash state
//! and no hash flooding by keys an attacker chooses (e.g. neighbour
//! addresses).

use core::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use crate::time::Timestamp;

/// Default bound of a [`TimerSet`] made with [`TimerSet::default`]: 1,048,576
/// timers.
pub const DEFAULT_TIMER_CAPACITY: usize = 1 << 20;

/// The error of [`TimerSet::arm`] when the set already holds `capacity`
/// timers and the key is not one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerSetFull {
    /// The bound that was hit (number of timers).
    pub capacity: usize,
}

impl core::fmt::Display for TimerSetFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "timer set full ({} timers)", self.capacity)
    }
}

impl std::error::Error for TimerSetFull {}

/// A bounded set of timers, each identified by a key `K` and carrying one
/// deadline.
///
/// * [`arm`](TimerSet::arm) sets a key's deadline; re-arming an armed key
///   replaces its deadline (never two timers for one key).
/// * [`cancel`](TimerSet::cancel) removes it.
/// * [`next_deadline`](TimerSet::next_deadline) is the earliest deadline: the
///   poll timeout of the loop that drives the protocol.
/// * [`pop_expired`](TimerSet::pop_expired) / [`expired`](TimerSet::expired)
///   remove and return keys whose deadline is `<= now`, earliest first; equal
///   deadlines come out in the order they were (last) armed.
///
/// **Bound.** The set holds at most `capacity` timers. Arming a *new* key
/// when full is refused with [`TimerSetFull`], leaves the set unchanged and
/// counts one in [`rejected`](TimerSet::rejected); re-arming or cancelling an
/// already armed key always succeeds. Protocols bound their own state (routes,
/// neighbours, groups) below this, so a refusal means a bug or an attack, and
/// the counter makes it visible.
#[derive(Clone, Debug)]
pub struct TimerSet<K> {
    by_key: BTreeMap<K, (Timestamp, u64)>,
    heap: BinaryHeap<HeapEntry<K>>,
    seq: u64,
    capacity: usize,
    rejected: u64,
}

impl<K: Ord + Clone> Default for TimerSet<K> {
    /// A set bounded at [`DEFAULT_TIMER_CAPACITY`].
    fn default() -> Self {
        TimerSet::with_capacity(DEFAULT_TIMER_CAPACITY)
    }
}

impl<K: Ord + Clone> TimerSet<K> {
    /// An empty set holding at most `capacity` timers (nothing is
    /// preallocated).
    pub fn with_capacity(capacity: usize) -> Self {
        TimerSet {
            by_key: BTreeMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            capacity,
            rejected: 0,
        }
    }

    /// Arms `key` to fire at `deadline`. Returns the previous deadline if the
    /// key was armed (the timer is re-armed, not duplicated), `None` if it is
    /// new.
    ///
    /// # Errors
    /// [`TimerSetFull`] if the key is new and the set already holds
    /// `capacity` timers; the set is unchanged and
    /// [`rejected`](TimerSet::rejected) grows by one.
    pub fn arm(&mut self, key: K, deadline: Timestamp) -> Result<Option<Timestamp>, TimerSetFull> {
        self.seq += 1;
        let seq = self.seq;
        let previous = if let Some(slot) = self.by_key.get_mut(&key) {
            let old = slot.0;
            *slot = (deadline, seq);
            Some(old)
        } else {
            if self.by_key.len() >= self.capacity {
                self.rejected += 1;
                return Err(TimerSetFull {
                    capacity: self.capacity,
                });
            }
            self.by_key.insert(key.clone(), (deadline, seq));
            None
        };
        self.heap.push(HeapEntry { deadline, seq, key });
        self.tidy();
        Ok(previous)
    }

    /// Arms `key` to fire `delay` after `now` (saturating); see
    /// [`arm`](TimerSet::arm).
    ///
    /// # Errors
    /// As [`arm`](TimerSet::arm).
    pub fn arm_after(
        &mut self,
        key: K,
        now: Timestamp,
        delay: Duration,
    ) -> Result<Option<Timestamp>, TimerSetFull> {
        self.arm(key, now + delay)
    }

    /// Cancels `key`. Returns its deadline if it was armed, `None` otherwise
    /// (cancelling an unarmed key is not an error).
    pub fn cancel(&mut self, key: &K) -> Option<Timestamp> {
        let (deadline, _) = self.by_key.remove(key)?;
        self.tidy();
        Some(deadline)
    }

    /// The deadline of `key`, if armed.
    pub fn deadline(&self, key: &K) -> Option<Timestamp> {
        self.by_key.get(key).map(|&(d, _)| d)
    }

    /// Whether `key` is armed.
    pub fn is_armed(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Time left until `key` fires (zero if already due), if armed: what
    /// `show` commands print as a timer's remaining time.
    pub fn remaining(&self, key: &K, now: Timestamp) -> Option<Duration> {
        self.deadline(key).map(|d| d - now)
    }

    /// The earliest deadline, or `None` if no timer is armed.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        // `tidy` keeps the top live.
        self.heap.peek().map(|e| e.deadline)
    }

    /// How long a poll loop may sleep from `now`: zero if a timer is already
    /// due, `None` (sleep until another input) if no timer is armed.
    pub fn poll_timeout(&self, now: Timestamp) -> Option<Duration> {
        self.next_deadline().map(|d| d - now)
    }

    /// Removes and returns the earliest timer if its deadline is `<= now`, as
    /// `(key, deadline)`.
    pub fn pop_expired(&mut self, now: Timestamp) -> Option<(K, Timestamp)> {
        if self.heap.peek()?.deadline > now {
            return None;
        }
        let HeapEntry { deadline, key, .. } = self.heap.pop()?;
        self.by_key.remove(&key);
        self.tidy();
        Some((key, deadline))
    }

    /// An iterator that removes and yields, earliest first, every key whose
    /// deadline is `<= now`. It pops lazily: timers it has not reached when
    /// dropped stay armed. Since it borrows the set, a caller that must re-arm
    /// while handling expiries uses [`pop_expired`](TimerSet::pop_expired) in
    /// a loop instead.
    pub fn expired(&mut self, now: Timestamp) -> Expired<'_, K> {
        Expired { set: self, now }
    }

    /// The armed timers as `(key, deadline)` in firing order, without
    /// removing them (sorts a copy: `O(n log n)`, for `show` commands).
    pub fn iter(&self) -> impl Iterator<Item = (&K, Timestamp)> + '_ {
        let mut v: Vec<(&K, Timestamp, u64)> =
            self.by_key.iter().map(|(k, &(d, s))| (k, d, s)).collect();
        v.sort_by_key(|&(_, d, s)| (d, s));
        v.into_iter().map(|(k, d, _)| (k, d))
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The bound given at construction (number of timers).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many [`arm`](TimerSet::arm) calls were refused because the set was
    /// full, since construction.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Cancels every timer whose key matches `pred` (e.g. all timers of an
    /// interface that went down); returns how many were cancelled.
    pub fn cancel_where(&mut self, mut pred: impl FnMut(&K) -> bool) -> usize {
        let before = self.by_key.len();
        self.by_key.retain(|k, _| !pred(k));
        self.tidy();
        before - self.by_key.len()
    }

    /// Cancels every timer.
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.heap.clear();
    }

    fn is_live(&self, e: &HeapEntry<K>) -> bool {
        self.by_key.get(&e.key).is_some_and(|&(_, s)| s == e.seq)
    }

    /// Drops stale entries from the top (so `peek` is live) and rebuilds the
    /// heap when stale entries outnumber live ones (bounding memory).
    fn tidy(&mut self) {
        if self.heap.len() > 2 * self.by_key.len() + 64 {
            let by_key = &self.by_key;
            self.heap
                .retain(|e| by_key.get(&e.key).is_some_and(|&(_, s)| s == e.seq));
        }
        // Every armed key has exactly one live entry, so the surplus is the
        // number of stale entries; with none, the top is live for free.
        while self.heap.len() > self.by_key.len() {
            match self.heap.peek() {
                Some(top) if !self.is_live(top) => {
                    self.heap.pop();
                }
                _ => break,
            }
        }
    }
}

/// A heap entry; ordered so the `BinaryHeap` (a max-heap) yields the
/// earliest `(deadline, seq)` first.
#[derive(Clone, Debug)]
struct HeapEntry<K> {
    deadline: Timestamp,
    seq: u64,
    key: K,
}

impl<K> PartialEq for HeapEntry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<K> Eq for HeapEntry<K> {}

impl<K> PartialOrd for HeapEntry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for HeapEntry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// Iterator returned by [`TimerSet::expired`]: yields keys whose deadline is
/// `<= now`, removing each as it is yielded.
#[derive(Debug)]
pub struct Expired<'a, K> {
    set: &'a mut TimerSet<K>,
    now: Timestamp,
}

impl<K: Ord + Clone> Iterator for Expired<'_, K> {
    type Item = K;
    fn next(&mut self) -> Option<K> {
        self.set.pop_expired(self.now).map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn fires_in_deadline_order_then_arming_order() {
        let mut ts = TimerSet::with_capacity(16);
        ts.arm("c", t(30)).unwrap();
        ts.arm("a", t(10)).unwrap();
        ts.arm("b", t(20)).unwrap();
        ts.arm("b2", t(20)).unwrap();
        ts.arm("late", t(100)).unwrap();
        assert_eq!(ts.next_deadline(), Some(t(10)));
        assert_eq!(ts.poll_timeout(t(4)), Some(Duration::from_secs(6)));
        assert_eq!(ts.expired(t(9)).count(), 0);
        let fired: Vec<_> = ts.expired(t(30)).collect();
        assert_eq!(fired, vec!["a", "b", "b2", "c"]);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts.next_deadline(), Some(t(100)));
        assert_eq!(ts.poll_timeout(t(200)), Some(Duration::ZERO));
    }

    #[test]
    fn rearm_replaces_and_moves_to_back_of_equal_deadlines() {
        let mut ts = TimerSet::with_capacity(16);
        assert_eq!(ts.arm(1, t(10)), Ok(None));
        assert_eq!(ts.arm(2, t(10)), Ok(None));
        assert_eq!(ts.arm(1, t(50)), Ok(Some(t(10))));
        assert_eq!(ts.len(), 2);
        assert_eq!(ts.deadline(&1), Some(t(50)));
        assert_eq!(ts.pop_expired(t(20)), Some((2, t(10))));
        assert_eq!(ts.pop_expired(t(20)), None);
        // Re-arm to an equal deadline: fires after keys armed before it.
        ts.arm(3, t(50)).unwrap();
        ts.arm(1, t(50)).unwrap();
        assert_eq!(ts.expired(t(50)).collect::<Vec<_>>(), vec![3, 1]);
        assert!(ts.is_empty());
    }

    #[test]
    fn cancel_removes_exactly() {
        let mut ts = TimerSet::with_capacity(16);
        ts.arm('x', t(1)).unwrap();
        ts.arm('y', t(2)).unwrap();
        assert_eq!(ts.cancel(&'x'), Some(t(1)));
        assert_eq!(ts.cancel(&'x'), None);
        assert!(!ts.is_armed(&'x'));
        assert_eq!(ts.next_deadline(), Some(t(2)));
        assert_eq!(ts.remaining(&'y', t(1)), Some(Duration::from_secs(1)));
        assert_eq!(ts.cancel_where(|k| *k == 'y'), 1);
        assert_eq!(ts.next_deadline(), None);
        assert_eq!(ts.poll_timeout(t(0)), None);
    }

    #[test]
    fn bound_refuses_new_keys_but_allows_rearm_and_counts() {
        let mut ts = TimerSet::with_capacity(2);
        ts.arm(1, t(1)).unwrap();
        ts.arm(2, t(2)).unwrap();
        assert_eq!(ts.arm(3, t(3)), Err(TimerSetFull { capacity: 2 }));
        assert_eq!(ts.arm(4, t(0)), Err(TimerSetFull { capacity: 2 }));
        assert_eq!(ts.rejected(), 2);
        assert_eq!(ts.len(), 2);
        assert_eq!(
            ts.next_deadline(),
            Some(t(1)),
            "refused arm left set unchanged"
        );
        assert_eq!(ts.arm(2, t(5)), Ok(Some(t(2))), "re-arm when full succeeds");
        ts.cancel(&1);
        assert_eq!(ts.arm(3, t(3)), Ok(None), "room again after cancel");
        assert_eq!(ts.rejected(), 2);
        assert_eq!(ts.capacity(), 2);
    }

    #[test]
    fn stale_heap_entries_stay_bounded() {
        let mut ts = TimerSet::with_capacity(16);
        for i in 0..10_000u64 {
            ts.arm(i % 4, Timestamp::from_millis(10_000 - i)).unwrap();
            assert!(
                ts.heap.len() <= 2 * ts.len() + 64 + 1,
                "heap {}",
                ts.heap.len()
            );
        }
        for k in 0..4 {
            ts.cancel(&k);
        }
        assert!(ts.heap.len() <= 64 + 1);
        assert_eq!(ts.next_deadline(), None);
        assert_eq!(ts.iter().count(), 0);
    }

    #[test]
    fn iter_lists_in_firing_order() {
        let mut ts = TimerSet::default();
        ts.arm('b', t(2)).unwrap();
        ts.arm('a', t(1)).unwrap();
        ts.arm('c', t(2)).unwrap();
        let v: Vec<_> = ts.iter().map(|(k, d)| (*k, d)).collect();
        assert_eq!(v, vec![('a', t(1)), ('b', t(2)), ('c', t(2))]);
        assert_eq!(ts.capacity(), DEFAULT_TIMER_CAPACITY);
        ts.clear();
        assert!(ts.is_empty());
    }

    #[test]
    fn hundred_thousand_timers_are_fast() {
        const N: u64 = 100_000;
        let start = std::time::Instant::now();
        let mut ts = TimerSet::with_capacity(N as usize);
        // Scattered deadlines (multiplicative hash) so the tree is not fed in order.
        for i in 0..N {
            ts.arm(i, Timestamp::from_millis((i * 2_654_435_761) % 1_000_000))
                .unwrap();
        }
        for i in 0..N {
            ts.arm(i, Timestamp::from_millis((i * 40_503) % 1_000_000))
                .unwrap();
        }
        for i in (0..N).step_by(2) {
            assert!(ts.cancel(&i).is_some());
        }
        assert_eq!(ts.len(), (N / 2) as usize);
        let mut last = Timestamp::ZERO;
        let mut n = 0;
        while let Some((k, d)) = ts.pop_expired(Timestamp::MAX) {
            assert!(d >= last);
            assert_eq!(k % 2, 1);
            last = d;
            n += 1;
        }
        assert_eq!(n, N / 2);
        let elapsed = start.elapsed();
        // Generous: an unoptimised build on a loaded 2-core machine (an
        // optimised build takes a few tens of milliseconds).
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        eprintln!("100k arm + 100k re-arm + 50k cancel + 50k pop: {elapsed:?}");
    }
}
