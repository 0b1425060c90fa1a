//! The PIM-SM Join/Prune state machines of RFC 7761 section 4.5 as pure
//! functions: `(state, timers, event, context) -> (state, timers, effects)`.
//! Each is a `match (state, event)` whose rows cite the RFC; the
//! [`super::tree`] module owns the per-entry state, feeds the events and
//! carries out the effects (timers, messages).
//!
//! Durations are absolute deadlines ([`Timestamp`]); `None` means the timer
//! is not running.

use std::time::Duration;

use serde::Serialize;

use crate::time::Timestamp;

/// Downstream per-interface state of `(*,G)` (RFC 7761 section 4.5.2) and
/// `(S,G)` (section 4.5.3): the two machines have the same rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownState {
    /// NoInfo (NI): no join state on the interface.
    NoInfo,
    /// Join (J): a downstream router joined; the interface is in `joins()`.
    Join,
    /// Prune-Pending (PP): a Prune was received; waiting
    /// J/P_Override_Interval for another router to override it. Still in
    /// `joins()`.
    PrunePending,
}

/// Events of the `(*,G)` / `(S,G)` downstream machine (sections 4.5.2,
/// 4.5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownEvent {
    /// Receive Join(*,G) / Join(S,G) addressed to us, with the message's
    /// Holdtime (`None`: 0xFFFF, never expires).
    ReceiveJoin {
        /// Holdtime of the message.
        holdtime: Option<Duration>,
    },
    /// Receive Prune(*,G) / Prune(S,G) addressed to us.
    ReceivePrune,
    /// The Prune-Pending Timer expired.
    PrunePendingExpired,
    /// The Expiry Timer expired.
    ExpiryExpired,
}

/// The two downstream timers of one interface: Expiry Timer (ET) and
/// Prune-Pending Timer (PPT), as deadlines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DownTimers {
    /// Expiry Timer deadline (`None`: stopped, or infinite holdtime).
    pub expiry: Option<Timestamp>,
    /// Prune-Pending Timer deadline.
    pub prune_pending: Option<Timestamp>,
}

/// What the downstream machines need to know about the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownCtx {
    /// The current time.
    pub now: Timestamp,
    /// J/P_Override_Interval(I) (section 4.11: Effective_Propagation_Delay
    /// + Effective_Override_Interval), used for the Prune-Pending Timer.
    pub override_interval: Duration,
    /// Whether there is more than one PIM neighbour on the interface (with
    /// one, the PPT is zero and no PruneEcho is sent, sections 4.5.2-4.5.4).
    pub multi_access: bool,
}

impl DownCtx {
    fn ppt(&self) -> Timestamp {
        if self.multi_access {
            self.now + self.override_interval
        } else {
            self.now
        }
    }
}

/// ET = max(ET, now + holdtime); an infinite holdtime stops expiry.
fn extend(et: Option<Timestamp>, now: Timestamp, holdtime: Option<Duration>) -> Option<Timestamp> {
    match (et, holdtime) {
        (_, None) => None,
        (None, Some(h)) => Some(now + h),
        (Some(t), Some(h)) => Some(t.max(now + h)),
    }
}

/// One step of the `(*,G)` (RFC 7761 section 4.5.2) or `(S,G)` (section
/// 4.5.3) downstream per-interface machine. Returns the next state, timers
/// and whether to send a PruneEcho on the interface.
///
/// A state of [`DownState::Join`] whose ET came from an infinite holdtime has
/// `expiry: None`.
pub fn downstream(
    state: DownState,
    t: DownTimers,
    ev: DownEvent,
    ctx: &DownCtx,
) -> (DownState, DownTimers, bool) {
    use DownEvent as E;
    use DownState as S;
    let none = DownTimers::default();
    match (state, ev) {
        // 4.5.2/4.5.3 NoInfo, Receive Join: -> J; start ET at the Holdtime.
        (S::NoInfo, E::ReceiveJoin { holdtime }) => (
            S::Join,
            DownTimers {
                expiry: holdtime.map(|h| ctx.now + h),
                prune_pending: None,
            },
            false,
        ),
        // Join, Receive Join: -> J; ET = max(ET, Holdtime).
        (S::Join, E::ReceiveJoin { holdtime }) => (
            S::Join,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                ..t
            },
            false,
        ),
        // Prune-Pending, Receive Join: -> J; cancel PPT; ET = max(ET, HT).
        (S::PrunePending, E::ReceiveJoin { holdtime }) => (
            S::Join,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                prune_pending: None,
            },
            false,
        ),
        // NoInfo, Receive Prune: -.
        (S::NoInfo, E::ReceivePrune) => (S::NoInfo, none, false),
        // Join, Receive Prune: -> PP; start PPT (J/P_Override_Interval, or
        // 0 with a single neighbour).
        (S::Join, E::ReceivePrune) => (
            S::PrunePending,
            DownTimers {
                prune_pending: Some(ctx.ppt()),
                ..t
            },
            false,
        ),
        // Prune-Pending, Receive Prune: -.
        (S::PrunePending, E::ReceivePrune) => (S::PrunePending, t, false),
        // Prune-Pending, PPT expires: -> NI; send PruneEcho if there is more
        // than one neighbour; ET cancelled.
        (S::PrunePending, E::PrunePendingExpired) => (S::NoInfo, none, ctx.multi_access),
        // Join and Prune-Pending, ET expires: -> NI (PPT cancelled).
        (S::Join | S::PrunePending, E::ExpiryExpired) => (S::NoInfo, none, false),
        // Timers that cannot run in this state (stale): no change.
        (S::NoInfo, E::PrunePendingExpired | E::ExpiryExpired)
        | (S::Join, E::PrunePendingExpired) => (state, t, false),
    }
}

/// Downstream per-interface state of `(S,G,rpt)` (RFC 7761 section 4.5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RptDownState {
    /// NoInfo (NI).
    NoInfo,
    /// Prune (P): S is pruned off the shared tree on this interface.
    Prune,
    /// Prune-Pending (PP): waiting for an override.
    PrunePending,
    /// PruneTmp (P'): a Join(*,G) in the message being processed; the
    /// Prune(S,G,rpt) must be repeated in the same message to survive.
    PruneTmp,
    /// Prune-Pending-Tmp (PP').
    PrunePendingTmp,
}

/// Events of the `(S,G,rpt)` downstream machine (section 4.5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RptDownEvent {
    /// Receive Join(*,G) addressed to us (in the same message).
    ReceiveJoinStarG,
    /// Receive Join(S,G,rpt) addressed to us.
    ReceiveJoinRpt,
    /// Receive Prune(S,G,rpt) addressed to us, with the Holdtime.
    ReceivePruneRpt {
        /// Holdtime of the message (`None`: infinite).
        holdtime: Option<Duration>,
    },
    /// End of the message (of the group's entries in it).
    EndOfMessage,
    /// The Prune-Pending Timer expired.
    PrunePendingExpired,
    /// The Expiry Timer expired.
    ExpiryExpired,
}

/// One step of the `(S,G,rpt)` downstream machine (RFC 7761 section 4.5.4).
/// Returns the next state and timers (no messages: this machine sends
/// none).
pub fn downstream_rpt(
    state: RptDownState,
    t: DownTimers,
    ev: RptDownEvent,
    ctx: &DownCtx,
) -> (RptDownState, DownTimers) {
    use RptDownEvent as E;
    use RptDownState as S;
    let none = DownTimers::default();
    match (state, ev) {
        // NoInfo, Receive Prune(S,G,rpt): -> PP; start PPT and ET.
        (S::NoInfo, E::ReceivePruneRpt { holdtime }) => (
            S::PrunePending,
            DownTimers {
                expiry: holdtime.map(|h| ctx.now + h),
                prune_pending: Some(ctx.ppt()),
            },
        ),
        // NoInfo, anything else: -.
        (S::NoInfo, _) => (S::NoInfo, none),
        // Prune, Receive Join(*,G): -> P' (the prune must be repeated).
        (S::Prune, E::ReceiveJoinStarG) => (S::PruneTmp, t),
        // Prune-Pending, Receive Join(*,G): -> PP'.
        (S::PrunePending, E::ReceiveJoinStarG) => (S::PrunePendingTmp, t),
        // P', PP', Receive Join(*,G): - (already tmp).
        (S::PruneTmp | S::PrunePendingTmp, E::ReceiveJoinStarG) => (state, t),
        // Prune, Prune-Pending, Receive Join(S,G,rpt): -> NI; cancel timers.
        (S::Prune | S::PrunePending, E::ReceiveJoinRpt) => (S::NoInfo, none),
        // P', PP', Receive Join(S,G,rpt): -> NI at End of Message anyway;
        // the join overrides at once.
        (S::PruneTmp | S::PrunePendingTmp, E::ReceiveJoinRpt) => (S::NoInfo, none),
        // Prune, Receive Prune(S,G,rpt): -> P; ET = max(ET, HT).
        (S::Prune, E::ReceivePruneRpt { holdtime }) => (
            S::Prune,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                ..t
            },
        ),
        // Prune-Pending, Receive Prune(S,G,rpt): -> PP; ET = max(ET, HT).
        (S::PrunePending, E::ReceivePruneRpt { holdtime }) => (
            S::PrunePending,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                ..t
            },
        ),
        // P', Receive Prune(S,G,rpt): -> P; ET = max(ET, HT).
        (S::PruneTmp, E::ReceivePruneRpt { holdtime }) => (
            S::Prune,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                ..t
            },
        ),
        // PP', Receive Prune(S,G,rpt): -> PP; ET = max(ET, HT).
        (S::PrunePendingTmp, E::ReceivePruneRpt { holdtime }) => (
            S::PrunePending,
            DownTimers {
                expiry: extend(t.expiry, ctx.now, holdtime),
                ..t
            },
        ),
        // P', PP', End of Message: -> NI; cancel timers.
        (S::PruneTmp | S::PrunePendingTmp, E::EndOfMessage) => (S::NoInfo, none),
        // Prune, Prune-Pending, End of Message: -.
        (S::Prune | S::PrunePending, E::EndOfMessage) => (state, t),
        // Prune-Pending, PPT expires: -> P.
        (S::PrunePending, E::PrunePendingExpired) => (
            S::Prune,
            DownTimers {
                prune_pending: None,
                ..t
            },
        ),
        // Any pruned state, ET expires: -> NI.
        (S::Prune | S::PrunePending | S::PruneTmp | S::PrunePendingTmp, E::ExpiryExpired) => {
            (S::NoInfo, none)
        }
        // PPT in states without one (stale): -.
        (S::Prune | S::PruneTmp | S::PrunePendingTmp, E::PrunePendingExpired) => (state, t),
    }
}

/// Upstream state of `(*,G)` (RFC 7761 section 4.5.5) and `(S,G)`
/// (section 4.5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpState {
    /// NotJoined.
    NotJoined,
    /// Joined: periodic Joins go to RPF'.
    Joined,
}

/// Where an upstream Join/Prune goes: the RPF' neighbour and the interface
/// it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Upstream {
    /// Interface index of the RPF interface.
    pub ifindex: u32,
    /// The RPF' neighbour's address (the Join/Prune's upstream neighbour
    /// field).
    pub neighbor: Ipv4Addr,
}

use std::net::Ipv4Addr;

/// Events of the `(*,G)` / `(S,G)` upstream machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpEvent {
    /// JoinDesired became true (with an RPF' to join toward).
    JoinDesiredTrue,
    /// JoinDesired became false (or RPF' disappeared).
    JoinDesiredFalse,
    /// The Join Timer expired.
    JoinTimerExpired,
    /// Another router's Join for this entry to RPF' seen on the RPF
    /// interface, with the message's Holdtime (seconds).
    SeeJoin {
        /// Holdtime of the seen message.
        holdtime: Duration,
    },
    /// Another router's Prune for this entry to RPF' seen (section 4.5.5
    /// "See Prune(*,G) to RPF'(*,G)"; 4.5.6 also for Prune(S,G,rpt) and
    /// Prune(*,G)).
    SeePrune,
    /// RPF' changed (not due to an Assert); the new target is the
    /// context's, `old` the previous one.
    RpfChanged {
        /// The previous RPF'.
        old: Upstream,
    },
    /// RPF' sent a Hello with a new Generation ID.
    GenIdChanged,
}

/// A message the upstream machine asks for, for this entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpSend {
    /// Send Join to this upstream neighbour.
    Join(Upstream),
    /// Send Prune to this upstream neighbour.
    Prune(Upstream),
}

/// The times the upstream machines use, drawn by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpCtx {
    /// The current time.
    pub now: Timestamp,
    /// RPF' now (`None`: no upstream neighbour).
    pub target: Option<Upstream>,
    /// t_periodic (section 4.11, 60 s).
    pub t_periodic: Duration,
    /// t_suppressed = rand(1.1, 1.4) x t_periodic, or zero when join
    /// suppression is disabled on the RPF interface (section 4.11).
    pub t_suppressed: Duration,
    /// t_override = rand(0, Effective_Override_Interval(RPF interface)).
    pub t_override: Duration,
}

/// One step of the `(*,G)` (RFC 7761 section 4.5.5) or `(S,G)` (section
/// 4.5.6) upstream machine. `jt` is the Join Timer deadline. Returns the
/// next state, Join Timer and the messages to send (at most two).
pub fn upstream(
    state: UpState,
    jt: Option<Timestamp>,
    ev: UpEvent,
    ctx: &UpCtx,
) -> (UpState, Option<Timestamp>, Vec<UpSend>) {
    use UpEvent as E;
    use UpState as S;
    let periodic = Some(ctx.now + ctx.t_periodic);
    match (state, ev, ctx.target) {
        // 4.5.5/4.5.6 NotJoined, JoinDesired -> True: -> Joined; send Join
        // to RPF'; set the Join Timer to t_periodic.
        (S::NotJoined, E::JoinDesiredTrue, Some(to)) => {
            (S::Joined, periodic, vec![UpSend::Join(to)])
        }
        (S::NotJoined, E::JoinDesiredTrue, None) => (S::NotJoined, None, vec![]),
        // Joined, JoinDesired -> False: -> NotJoined; send Prune to RPF';
        // cancel the Join Timer.
        (S::Joined, E::JoinDesiredFalse, to) => (
            S::NotJoined,
            None,
            to.map(UpSend::Prune).into_iter().collect(),
        ),
        // Joined, Join Timer expires: send Join to RPF'; JT = t_periodic.
        (S::Joined, E::JoinTimerExpired, Some(to)) => (S::Joined, periodic, vec![UpSend::Join(to)]),
        // Joined, See Join to RPF': JT = max(JT, t_joinsuppress) with
        // t_joinsuppress = min(t_suppressed, Holdtime of the message).
        (S::Joined, E::SeeJoin { holdtime }, _) => {
            let sup = ctx.t_suppressed.min(holdtime);
            let t = ctx.now + sup;
            (S::Joined, jt.map(|j| j.max(t)).or(Some(t)), vec![])
        }
        // Joined, See Prune to RPF': JT = min(JT, t_override).
        (S::Joined, E::SeePrune | E::GenIdChanged, _) => {
            let t = ctx.now + ctx.t_override;
            (S::Joined, jt.map(|j| j.min(t)).or(Some(t)), vec![])
        }
        // Joined, RPF' changes (not an Assert): send Join to the new RPF',
        // Prune to the old; JT = t_periodic.
        (S::Joined, E::RpfChanged { old }, Some(to)) => (
            S::Joined,
            periodic,
            vec![UpSend::Prune(old), UpSend::Join(to)],
        ),
        // Joined with RPF' gone: like JoinDesired -> False toward the old.
        (S::Joined, E::RpfChanged { old }, None) => (S::NotJoined, None, vec![UpSend::Prune(old)]),
        (S::Joined, E::JoinTimerExpired, None) => (S::Joined, None, vec![]),
        (S::Joined, E::JoinDesiredTrue, _) => (S::Joined, jt, vec![]),
        // NotJoined: every other event is "-".
        (S::NotJoined, _, _) => (S::NotJoined, None, vec![]),
    }
}

/// Upstream `(S,G,rpt)` state (RFC 7761 section 4.5.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RptUpState {
    /// RPTNotJoined(G): the shared tree is not joined.
    RptNotJoined,
    /// Pruned(S,G,rpt): S is pruned off the shared tree.
    Pruned,
    /// NotPruned(S,G,rpt): the shared tree is joined and S is not pruned.
    NotPruned,
}

/// Events of the `(S,G,rpt)` upstream machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RptUpEvent {
    /// PruneDesired(S,G,rpt) -> True.
    PruneDesiredTrue,
    /// PruneDesired(S,G,rpt) -> False.
    PruneDesiredFalse,
    /// RPTJoinDesired(G) -> False.
    RptJoinDesiredFalse,
    /// inherited_olist(S,G,rpt) -> non-NULL.
    InheritedOlistNonEmpty,
    /// See Prune(S,G,rpt) or Prune(S,G) to RPF'(S,G,rpt).
    SeePrune,
    /// See Join(S,G,rpt) to RPF'(S,G,rpt).
    SeeJoinRpt,
    /// RPF'(S,G,rpt) -> RPF'(*,G) (it changed with the shared tree).
    RpfChanged,
    /// The Override Timer expired.
    OverrideExpired,
}

/// What the `(S,G,rpt)` upstream machine sends, to RPF'(S,G,rpt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RptSend {
    /// Join(S,G,rpt).
    Join,
    /// Prune(S,G,rpt).
    Prune,
}

/// One step of the `(S,G,rpt)` upstream machine (RFC 7761 section 4.5.7).
/// `ot` is the Override Timer deadline; `t_override` the drawn override
/// delay.
pub fn upstream_rpt(
    state: RptUpState,
    ot: Option<Timestamp>,
    ev: RptUpEvent,
    now: Timestamp,
    t_override: Duration,
) -> (RptUpState, Option<Timestamp>, Option<RptSend>) {
    use RptUpEvent as E;
    use RptUpState as S;
    match (state, ev) {
        // 4.5.7 RPTNotJoined, PruneDesired -> True: -> Pruned (nothing to
        // send: the shared tree is not joined).
        (S::RptNotJoined, E::PruneDesiredTrue) => (S::Pruned, None, None),
        // RPTNotJoined, inherited_olist(S,G,rpt) -> non-NULL: -> NotPruned.
        (S::RptNotJoined, E::InheritedOlistNonEmpty) => (S::NotPruned, None, None),
        // Pruned, PruneDesired -> False: -> NotPruned; send Join(S,G,rpt).
        (S::Pruned, E::PruneDesiredFalse) => (S::NotPruned, None, Some(RptSend::Join)),
        // Pruned and NotPruned, RPTJoinDesired -> False: -> RPTNotJoined;
        // cancel OT.
        (S::Pruned | S::NotPruned, E::RptJoinDesiredFalse) => (S::RptNotJoined, None, None),
        // NotPruned, PruneDesired -> True: -> Pruned; send Prune(S,G,rpt);
        // cancel OT.
        (S::NotPruned, E::PruneDesiredTrue) => (S::Pruned, None, Some(RptSend::Prune)),
        // NotPruned, See Prune(S,G,rpt) / Prune(S,G) to RPF'(S,G,rpt), and
        // RPF'(S,G,rpt) -> RPF'(*,G): OT = min(OT, t_override).
        (S::NotPruned, E::SeePrune | E::RpfChanged) => {
            let t = now + t_override;
            (S::NotPruned, Some(ot.map_or(t, |o| o.min(t))), None)
        }
        // NotPruned, See Join(S,G,rpt) to RPF'(S,G,rpt): cancel OT.
        (S::NotPruned, E::SeeJoinRpt) => (S::NotPruned, None, None),
        // NotPruned, OT expires: send Join(S,G,rpt); leave OT unset.
        (S::NotPruned, E::OverrideExpired) => (S::NotPruned, None, Some(RptSend::Join)),
        // Every other cell is "-".
        _ => (state, ot, None),
    }
}
