//! Monotonic time as an input: [`Timestamp`], the [`Clock`] trait and a
//! [`ManualClock`] for tests.
//!
//! Nothing in this crate reads a clock. The control plane owns the real clock
//! (for example `std::time::Instant` taken once at start as the epoch) and
//! passes `now` into every [`crate::Protocol::handle`] call; tests pass a
//! [`ManualClock`]'s time and advance it by hand, so ten minutes of protocol
//! time cost microseconds.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in monotonic time: a [`Duration`] since an arbitrary epoch chosen
/// by whoever owns the clock (the control plane uses its start time).
///
/// Resolution is one nanosecond; the range is that of `Duration` (about
/// 584 years from the epoch at `u64` seconds, far beyond any uptime).
/// Arithmetic saturates instead of panicking: adding past the maximum gives
/// [`Timestamp::MAX`], subtracting past the epoch gives a zero `Duration`.
/// Timestamps from different clocks (different epochs) must not be mixed.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// The epoch itself (time zero).
    pub const ZERO: Timestamp = Timestamp(Duration::ZERO);
    /// The latest representable time; also what saturating additions reach.
    pub const MAX: Timestamp = Timestamp(Duration::MAX);

    /// The timestamp `since_epoch` after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Timestamp(since_epoch)
    }

    /// The timestamp `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(Duration::from_secs(secs))
    }

    /// The timestamp `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(Duration::from_millis(millis))
    }

    /// Time elapsed since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + d`, or `None` if that is past [`Timestamp::MAX`].
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        self.0.checked_add(d).map(Timestamp)
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }

    /// `self - d`, saturating at the epoch ([`Timestamp::ZERO`]).
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturating: never panics (see [`Timestamp::saturating_add`]).
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturating at the epoch (see [`Timestamp::saturating_sub`]).
    fn sub(self, d: Duration) -> Timestamp {
        self.saturating_sub(d)
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    /// Saturating: zero when `rhs` is later (see
    /// [`Timestamp::saturating_duration_since`]).
    fn sub(self, rhs: Timestamp) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Timestamp {
    /// Seconds since the epoch with millisecond precision, e.g. `t+12.345s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}

/// A source of monotonic time.
///
/// The control plane implements it over the OS clock (outside this crate);
/// tests use [`ManualClock`]. Successive calls must never go backwards.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Starts at the time given to [`ManualClock::new`] (often
/// [`Timestamp::ZERO`]).
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Timestamp,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { now: start }
    }

    /// Moves the clock forward by `d` (saturating) and returns the new time.
    pub fn advance(&mut self, d: Duration) -> Timestamp {
        self.now += d;
        self.now
    }

    /// Moves the clock to `t` if `t` is later; a `t` in the past is ignored so
    /// the clock stays monotonic. Returns the (possibly unchanged) time.
    pub fn advance_to(&mut self, t: Timestamp) -> Timestamp {
        if t > self.now {
            self.now = t;
        }
        self.now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(5);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_secs(6));
        assert_eq!(t - Duration::from_secs(10), Timestamp::ZERO);
        assert_eq!(Timestamp::from_secs(1) - t, Duration::ZERO);
        assert_eq!(t - Timestamp::from_secs(2), Duration::from_secs(3));
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::from_millis(12_345).to_string(), "t+12.345s");
    }

    #[test]
    fn manual_clock_is_monotonic() {
        let mut c = ManualClock::new(Timestamp::from_secs(10));
        assert_eq!(c.now(), Timestamp::from_secs(10));
        assert_eq!(
            c.advance(Duration::from_millis(1500)),
            Timestamp::from_millis(11_500)
        );
        assert_eq!(
            c.advance_to(Timestamp::from_secs(1)),
            Timestamp::from_millis(11_500)
        );
        assert_eq!(
            c.advance_to(Timestamp::from_secs(20)),
            Timestamp::from_secs(20)
        );
    }
}
