//! [`Driver`]: a protocol instance plus its timer set, the loop body the
//! control plane runs (and tests run with a manual clock).

use std::time::Duration;

use crate::io::{Action, ActionOf, Input, InputOf, Protocol};
use crate::time::Timestamp;
use crate::timer::TimerSet;

/// Owns a protocol instance and its [`TimerSet`], executes the timer actions
/// itself ([`Action::ArmTimer`], [`Action::CancelTimer`]) and hands every
/// other action to the caller.
///
/// The control plane's loop, per instance:
///
/// ```text
/// loop {
///     sleep until an input arrives or driver.poll_timeout(now) elapses
///     now = clock.now()
///     driver.fire_due(now, &mut actions)          // timers that are due
///     for each input that arrived: driver.feed(now, input, &mut actions)
///     execute actions in order (send, join/leave, MRIB, events); clear them
/// }
/// ```
///
/// An arm refused because the timer set is full is counted in
/// `driver.timers().rejected()` and otherwise dropped (the protocol's own
/// state caps keep this from happening in normal operation).
#[derive(Debug)]
pub struct Driver<P: Protocol> {
    protocol: P,
    timers: TimerSet<P::Timer>,
    scratch: Vec<ActionOf<P>>,
}

impl<P: Protocol> Driver<P> {
    /// Wraps `protocol` with an empty timer set bounded at `timer_capacity`
    /// timers.
    pub fn new(protocol: P, timer_capacity: usize) -> Self {
        Driver {
            protocol,
            timers: TimerSet::with_capacity(timer_capacity),
            scratch: Vec::new(),
        }
    }

    /// The protocol instance (for `show` commands).
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The protocol instance, mutably (for tests; normal changes go through
    /// [`Input::Config`]).
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// The armed timers (for `show` commands: remaining time per timer).
    pub fn timers(&self) -> &TimerSet<P::Timer> {
        &self.timers
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.next_deadline()
    }

    /// How long the caller may sleep from `now` before calling
    /// [`Driver::fire_due`]: zero if a timer is due, `None` if none is armed.
    pub fn poll_timeout(&self, now: Timestamp) -> Option<Duration> {
        self.timers.poll_timeout(now)
    }

    /// Feeds one input at `now`. Timer actions are applied to the timer set;
    /// every other action is appended to `out`, in order.
    pub fn feed(&mut self, now: Timestamp, input: InputOf<P>, out: &mut Vec<ActionOf<P>>) {
        let mut scratch = core::mem::take(&mut self.scratch);
        self.protocol.handle(now, input, &mut scratch);
        for action in scratch.drain(..) {
            match action {
                Action::ArmTimer { key, at } => {
                    // Refusals are counted by the timer set.
                    let _ = self.timers.arm(key, at);
                }
                Action::CancelTimer { key } => {
                    self.timers.cancel(&key);
                }
                other => out.push(other),
            }
        }
        self.scratch = scratch;
    }

    /// Fires the timers due at `now` (deadline `<= now`), earliest first, each
    /// as an [`Input::Timer`]; other actions go to `out`. Returns how many
    /// fired.
    ///
    /// At most as many timers fire as were armed when the call began, so a
    /// handler that keeps re-arming its timer at `now` cannot loop forever:
    /// once the budget is spent, what is still due fires on the next call (the
    /// poll timeout is then zero).
    pub fn fire_due(&mut self, now: Timestamp, out: &mut Vec<ActionOf<P>>) -> usize {
        let budget = self.timers.len();
        let mut fired = 0;
        while fired < budget {
            let Some((key, _)) = self.timers.pop_expired(now) else {
                break;
            };
            fired += 1;
            self.feed(now, Input::Timer(key), out);
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-arms its timer at `now` on every firing (a buggy protocol) and
    /// counts firings; also arms `Other` once, far away, on interface up.
    #[derive(Debug, Default)]
    struct Rearmer {
        fired: u32,
    }

    impl Protocol for Rearmer {
        type Message = ();
        type Timer = u8;
        type Config = ();
        type Event = ();

        fn handle(&mut self, now: Timestamp, input: InputOf<Self>, out: &mut Vec<ActionOf<Self>>) {
            match input {
                Input::Timer(0) => {
                    self.fired += 1;
                    out.push(Action::ArmTimer { key: 0, at: now });
                    out.push(Action::CancelTimer { key: 2 });
                }
                Input::Shutdown => {
                    out.push(Action::ArmTimer { key: 0, at: now });
                    out.push(Action::ArmTimer {
                        key: 2,
                        at: now + Duration::from_secs(9),
                    });
                    out.push(Action::ArmTimer { key: 3, at: now });
                    out.push(Action::Event(crate::Event {
                        category: crate::EventCategory::Pim,
                        kind: "armed",
                        payload: (),
                    }));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn timer_actions_are_consumed_others_passed_through() {
        let mut d = Driver::new(Rearmer::default(), 2);
        let mut out = Vec::new();
        d.feed(Timestamp::ZERO, Input::Shutdown, &mut out);
        assert_eq!(out.len(), 1, "only the event reaches the caller");
        assert_eq!(d.timers().len(), 2, "third arm refused: capacity 2");
        assert_eq!(d.timers().rejected(), 1);
        assert_eq!(d.poll_timeout(Timestamp::ZERO), Some(Duration::ZERO));
    }

    #[test]
    fn a_timer_rearmed_at_now_cannot_loop_forever() {
        let mut d = Driver::new(Rearmer::default(), 8);
        let mut out = Vec::new();
        d.feed(Timestamp::ZERO, Input::Shutdown, &mut out);
        // Three armed (0, 2, 3) at the start: budget three. 0 fires (re-arms
        // itself at now, cancels 2), 3 fires, 0 fires again; then the budget
        // is spent.
        assert_eq!(d.fire_due(Timestamp::ZERO, &mut out), 3);
        assert_eq!(d.protocol().fired, 2);
        assert!(!d.timers().is_armed(&2), "cancelled by the handler");
        assert_eq!(
            d.next_deadline(),
            Some(Timestamp::ZERO),
            "re-armed, due again"
        );
        // One armed now: one firing per call.
        assert_eq!(d.fire_due(Timestamp::ZERO, &mut out), 1);
        assert_eq!(d.protocol_mut().fired, 3);
    }
}
