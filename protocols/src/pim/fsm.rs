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
    /// RPF' changed because of an Assert on the RPF interface (the winner
    /// became RPF', or the Assert ended and the unicast RPF' is back):
    /// sections 4.5.5/4.5.6 "RPF' changes due to an Assert".
    RpfChangedByAssert,
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
        // Joined, See Prune to RPF', RPF' GenID changes, or RPF' changes
        // due to an Assert: JT = min(JT, t_override). No message now: the
        // Join goes to RPF' as it stands when the timer fires, so a
        // router that first took the first asserter for the winner does
        // not join it and prune the real one in passing.
        (S::Joined, E::SeePrune | E::GenIdChanged | E::RpfChangedByAssert, _) => {
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

/// Feeds a change of JoinDesired (RFC 7761 4.5.5 for (*,G), 4.5.6 for
/// (S,G)) to [`upstream`]: `JoinDesiredTrue` toward `ctx.target` when not
/// joined and joining is wanted and possible, `JoinDesiredFalse` toward the
/// neighbour last joined (`joined_to`, so the Prune goes where the Join
/// went) when joined and no longer wanted; otherwise nothing. Updates the
/// state and Join Timer in place and returns the messages to send.
pub fn join_desired(
    state: &mut UpState,
    jt: &mut Option<Timestamp>,
    join_desired: bool,
    joined_to: Option<Upstream>,
    ctx: &UpCtx,
) -> Vec<UpSend> {
    let ev = match (*state, join_desired && ctx.target.is_some()) {
        (UpState::NotJoined, true) => UpEvent::JoinDesiredTrue,
        (UpState::Joined, false) => UpEvent::JoinDesiredFalse,
        _ => return Vec::new(),
    };
    let ctx = UpCtx {
        target: if ev == UpEvent::JoinDesiredFalse {
            joined_to
        } else {
            ctx.target
        },
        ..*ctx
    };
    let (s, t, sends) = upstream(*state, *jt, ev, &ctx);
    *state = s;
    *jt = t;
    sends
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

/// Register state of `(S,G)` at a first-hop DR (RFC 7761 section 4.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegState {
    /// NoInfo (NI): not registering.
    NoInfo,
    /// Join (J): the register tunnel is up; data is encapsulated to the RP.
    Join,
    /// Join-Pending (JP): a Null-Register probe was sent; the tunnel comes
    /// back up unless a Register-Stop arrives within Register_Probe_Time.
    JoinPending,
    /// Prune (P): the RP said Register-Stop; the tunnel is down until the
    /// Register-Stop Timer expires.
    Prune,
}

/// Events of the Register machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegEvent {
    /// CouldRegister(S,G) -> True (DR on the source's interface, source
    /// directly connected, Keepalive Timer running, not the RP).
    CouldRegisterTrue,
    /// CouldRegister(S,G) -> False.
    CouldRegisterFalse,
    /// A Register-Stop for (S,G) arrived.
    RegisterStopReceived,
    /// The Register-Stop Timer expired.
    RegisterStopTimerExpired,
    /// RP(G) changed.
    RpChanged,
}

/// What the Register machine asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegAction {
    /// Add the register tunnel (start encapsulating to RP(G)).
    AddTunnel,
    /// Remove the register tunnel.
    RemoveTunnel,
    /// Point the tunnel at the new RP.
    UpdateTunnel,
    /// Send a Null-Register to RP(G).
    SendNullRegister,
}

/// Register_Suppression_Time, 60 s (RFC 7761 section 4.11).
pub const REGISTER_SUPPRESSION_TIME: Duration = Duration::from_secs(60);
/// Register_Probe_Time, 5 s (RFC 7761 section 4.11).
pub const REGISTER_PROBE_TIME: Duration = Duration::from_secs(5);

/// One step of the Register machine (RFC 7761 section 4.4.1). `rst` is the
/// Register-Stop Timer; `suppression` the drawn rand(0.5, 1.5) x
/// Register_Suppression_Time - Register_Probe_Time.
pub fn register(
    state: RegState,
    rst: Option<Timestamp>,
    ev: RegEvent,
    now: Timestamp,
    suppression: Duration,
) -> (RegState, Option<Timestamp>, Option<RegAction>) {
    use RegEvent as E;
    use RegState as S;
    match (state, ev) {
        // NI, CouldRegister -> True: -> J; add the register tunnel.
        (S::NoInfo, E::CouldRegisterTrue) => (S::Join, None, Some(RegAction::AddTunnel)),
        // J, CouldRegister -> False: -> NI; remove the tunnel.
        (S::Join, E::CouldRegisterFalse) => (S::NoInfo, None, Some(RegAction::RemoveTunnel)),
        // JP, P, CouldRegister -> False: -> NI (the tunnel is already down).
        (S::JoinPending | S::Prune, E::CouldRegisterFalse) => (S::NoInfo, None, None),
        // J, Register-Stop: -> P; remove the tunnel; set the RST.
        (S::Join, E::RegisterStopReceived) => (
            S::Prune,
            Some(now + suppression),
            Some(RegAction::RemoveTunnel),
        ),
        // JP, Register-Stop: -> P; set the RST.
        (S::JoinPending, E::RegisterStopReceived) => (S::Prune, Some(now + suppression), None),
        // P, RST expires: -> JP; send a Null-Register; RST =
        // Register_Probe_Time.
        (S::Prune, E::RegisterStopTimerExpired) => (
            S::JoinPending,
            Some(now + REGISTER_PROBE_TIME),
            Some(RegAction::SendNullRegister),
        ),
        // JP, RST expires: -> J; add the tunnel.
        (S::JoinPending, E::RegisterStopTimerExpired) => {
            (S::Join, None, Some(RegAction::AddTunnel))
        }
        // J, RP changed: update the tunnel.
        (S::Join, E::RpChanged) => (S::Join, None, Some(RegAction::UpdateTunnel)),
        // JP, P, RP changed: -> J; add the tunnel; cancel the RST.
        (S::JoinPending | S::Prune, E::RpChanged) => (S::Join, None, Some(RegAction::AddTunnel)),
        // Every other cell is "-".
        _ => (state, rst, None),
    }
}

/// An assert metric (RFC 7761 section 4.6.3): compared by RPT bit (clear
/// is better), then metric preference (lower), then metric (lower), then
/// address (higher).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AssertMetric {
    /// RPT bit: the metric is toward the RP (a (*,G) assert).
    pub rpt: bool,
    /// Metric preference (administrative distance).
    pub preference: u32,
    /// Route metric.
    pub metric: u32,
    /// The asserting router's address on the LAN.
    pub address: Ipv4Addr,
}

/// Metric preference of an AssertCancel / infinite metric (section 4.6.3).
pub const ASSERT_INFINITE_PREFERENCE: u32 = 0x7fff_ffff;

impl AssertMetric {
    /// Whether `self` is preferred over `other` (section 4.6.3).
    pub fn better_than(&self, other: &AssertMetric) -> bool {
        let key = |m: &AssertMetric| {
            (
                core::cmp::Reverse(m.rpt),
                core::cmp::Reverse(m.preference),
                core::cmp::Reverse(m.metric),
                m.address,
            )
        };
        key(self) > key(other)
    }

    /// An AssertCancel: infinite preference and metric (section 4.6.1).
    pub fn is_cancel(&self) -> bool {
        self.preference >= ASSERT_INFINITE_PREFERENCE
    }
}

/// Per-interface Assert state of `(S,G)` (section 4.6.1) or `(*,G)`
/// (section 4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssertState {
    /// NoInfo (NI).
    NoInfo,
    /// I am Assert Winner (W): we forward onto the LAN.
    Winner,
    /// I am Assert Loser (L): another router forwards; the interface leaves
    /// our olist (`lost_assert`) and the winner is RPF' downstream of it.
    Loser,
}

/// Events of the Assert machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertEvent {
    /// A data packet for the entry arrived on the interface, which is one
    /// of our outgoing interfaces (section 4.6.1 "An (S,G) data packet
    /// arrives on interface I").
    DataOnOif,
    /// An Assert for the entry was received on the interface.
    ReceiveAssert(AssertMetric),
    /// The Assert Timer expired.
    TimerExpired,
    /// CouldAssert became false.
    CouldAssertFalse,
    /// The winner's Neighbor Liveness Timer expired or its Generation ID
    /// changed.
    WinnerGone,
    /// my_assert_metric became better than the winner's metric (e.g. we
    /// joined the SPT after losing with an RPT metric).
    MyMetricBetter,
    /// A Join for the entry addressed to us arrived on the interface: a
    /// downstream router still takes us for its upstream, so the Assert is
    /// reset and redone (sections 4.6.1 and 4.6.2, Loser: "Receive
    /// Join(S,G)/Join(*,G) on Interface I").
    ReceiveJoin,
}

/// What the Assert machine sends on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertSend {
    /// An Assert with our metric.
    Assert,
    /// An AssertCancel (infinite metric).
    Cancel,
}

/// Assert_Time, 180 s (RFC 7761 section 4.11).
pub const ASSERT_TIME: Duration = Duration::from_secs(180);
/// Assert_Override_Interval, 3 s (RFC 7761 section 4.11).
pub const ASSERT_OVERRIDE_INTERVAL: Duration = Duration::from_secs(3);

/// The Assert machine's state on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AssertInfo {
    /// The state.
    pub state: AssertState,
    /// Assert Timer deadline.
    pub timer: Option<Timestamp>,
    /// AssertWinner(S,G,I) with AssertWinnerMetric (section 4.6.1): the
    /// other router's while Loser, our own while Winner (actions A1, A3).
    pub winner: Option<AssertMetric>,
}

impl AssertInfo {
    /// NoInfo.
    pub const NONE: AssertInfo = AssertInfo {
        state: AssertState::NoInfo,
        timer: None,
        winner: None,
    };
}

/// One step of the Assert machine (RFC 7761 sections 4.6.1 and 4.6.2, the
/// core rows: AssertTrackingDesired is taken as always true). `mine` is
/// my_assert_metric on the interface, `None` when CouldAssert is false.
pub fn assert_step(
    a: AssertInfo,
    ev: AssertEvent,
    mine: Option<AssertMetric>,
    now: Timestamp,
) -> (AssertInfo, Option<AssertSend>) {
    use AssertEvent as E;
    use AssertState as S;
    // A1/A3: store self as AssertWinner with my metric.
    let win = AssertInfo {
        state: S::Winner,
        timer: Some(now + ASSERT_TIME - ASSERT_OVERRIDE_INTERVAL),
        winner: mine,
    };
    let lose = |m: AssertMetric| AssertInfo {
        state: S::Loser,
        timer: Some(now + ASSERT_TIME),
        winner: Some(m),
    };
    let inferior = |m: &AssertMetric| m.is_cancel() || mine.is_some_and(|x| x.better_than(m));
    match (a.state, ev) {
        // NI, data on an oif and CouldAssert: -> W; send Assert; AT =
        // Assert_Time - Assert_Override_Interval.
        (S::NoInfo, E::DataOnOif) if mine.is_some() => (win, Some(AssertSend::Assert)),
        // NI, receive an inferior Assert (or one with the RPT bit where we
        // assert on the SPT) and CouldAssert: -> W; send Assert.
        (S::NoInfo, E::ReceiveAssert(m)) if mine.is_some() && inferior(&m) => {
            (win, Some(AssertSend::Assert))
        }
        // NI, receive an acceptable Assert: -> L; store the winner; AT =
        // Assert_Time.
        (S::NoInfo, E::ReceiveAssert(m)) if !m.is_cancel() => (lose(m), None),
        // W, AT expires: send Assert; restart AT.
        (S::Winner, E::TimerExpired) => (win, Some(AssertSend::Assert)),
        // W, receive an inferior Assert: send Assert; restart AT.
        (S::Winner, E::ReceiveAssert(m)) if inferior(&m) => (win, Some(AssertSend::Assert)),
        // W, receive a preferred Assert: -> L; store the winner.
        (S::Winner, E::ReceiveAssert(m)) => (lose(m), None),
        // W, CouldAssert -> False: -> NI; send AssertCancel.
        (S::Winner, E::CouldAssertFalse) => (AssertInfo::NONE, Some(AssertSend::Cancel)),
        // L, receive an Assert from the current winner that is inferior or
        // a cancel: -> NI.
        (S::Loser, E::ReceiveAssert(m))
            if a.winner.is_some_and(|w| w.address == m.address) && inferior(&m) =>
        {
            (AssertInfo::NONE, None)
        }
        // L, receive a preferred Assert, or an acceptable one from the
        // winner: -> L; update the winner; AT = Assert_Time.
        (S::Loser, E::ReceiveAssert(m))
            if a.winner
                .is_some_and(|w| w.address == m.address || m.better_than(&w)) =>
        {
            (lose(m), None)
        }
        // L, AT expires, the winner is gone, or my metric becomes better
        // than the winner's: -> NI (A5). Data on the interface then makes
        // us assert again.
        (S::Loser, E::TimerExpired | E::WinnerGone | E::MyMetricBetter | E::ReceiveJoin) => {
            (AssertInfo::NONE, None)
        }
        // Everything else: -.
        _ => (a, None),
    }
}

#[cfg(test)]
mod tests {
    //! One test per row (or group of identical rows) of the RFC 7761
    //! section 4.5 tables.
    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1000);

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    fn dctx(multi: bool) -> DownCtx {
        DownCtx {
            now: T0,
            override_interval: Duration::from_millis(3000),
            multi_access: multi,
        }
    }

    fn timers(et: Option<u64>, ppt: Option<u64>) -> DownTimers {
        DownTimers {
            expiry: et.map(|x| T0 + s(x)),
            prune_pending: ppt.map(|x| T0 + s(x)),
        }
    }

    const JOIN210: DownEvent = DownEvent::ReceiveJoin {
        holdtime: Some(Duration::from_secs(210)),
    };

    // ---- 4.5.2 / 4.5.3 downstream (*,G) and (S,G) ----

    #[test]
    fn down_noinfo_join_starts_expiry() {
        let (st, t, echo) = downstream(DownState::NoInfo, timers(None, None), JOIN210, &dctx(true));
        assert_eq!(
            (st, t, echo),
            (DownState::Join, timers(Some(210), None), false)
        );
    }

    #[test]
    fn down_noinfo_join_infinite_holdtime_never_expires() {
        let ev = DownEvent::ReceiveJoin { holdtime: None };
        let (st, t, _) = downstream(DownState::NoInfo, timers(None, None), ev, &dctx(true));
        assert_eq!((st, t.expiry), (DownState::Join, None));
    }

    #[test]
    fn down_join_join_extends_expiry_never_shortens() {
        let ev = DownEvent::ReceiveJoin {
            holdtime: Some(s(10)),
        };
        let (st, t, _) = downstream(DownState::Join, timers(Some(100), None), ev, &dctx(true));
        assert_eq!((st, t), (DownState::Join, timers(Some(100), None)));
        let (_, t, _) = downstream(
            DownState::Join,
            timers(Some(100), None),
            JOIN210,
            &dctx(true),
        );
        assert_eq!(t, timers(Some(210), None));
    }

    #[test]
    fn down_prune_pending_join_cancels_ppt() {
        let (st, t, _) = downstream(
            DownState::PrunePending,
            timers(Some(100), Some(3)),
            JOIN210,
            &dctx(true),
        );
        assert_eq!((st, t), (DownState::Join, timers(Some(210), None)));
    }

    #[test]
    fn down_noinfo_prune_ignored() {
        let r = downstream(
            DownState::NoInfo,
            timers(None, None),
            DownEvent::ReceivePrune,
            &dctx(true),
        );
        assert_eq!(r, (DownState::NoInfo, timers(None, None), false));
    }

    #[test]
    fn down_join_prune_starts_ppt_override_interval_on_lan() {
        let (st, t, _) = downstream(
            DownState::Join,
            timers(Some(100), None),
            DownEvent::ReceivePrune,
            &dctx(true),
        );
        assert_eq!(st, DownState::PrunePending);
        assert_eq!(t.prune_pending, Some(T0 + Duration::from_millis(3000)));
        assert_eq!(t.expiry, Some(T0 + s(100)), "ET unchanged");
    }

    #[test]
    fn down_join_prune_ppt_zero_with_one_neighbor() {
        let (_, t, _) = downstream(
            DownState::Join,
            timers(Some(100), None),
            DownEvent::ReceivePrune,
            &dctx(false),
        );
        assert_eq!(t.prune_pending, Some(T0));
    }

    #[test]
    fn down_prune_pending_prune_no_change() {
        let t0 = timers(Some(100), Some(2));
        let r = downstream(
            DownState::PrunePending,
            t0,
            DownEvent::ReceivePrune,
            &dctx(true),
        );
        assert_eq!(r, (DownState::PrunePending, t0, false));
    }

    #[test]
    fn down_ppt_expiry_goes_noinfo_with_prune_echo_on_lan_only() {
        let t0 = timers(Some(100), Some(0));
        let r = downstream(
            DownState::PrunePending,
            t0,
            DownEvent::PrunePendingExpired,
            &dctx(true),
        );
        assert_eq!(r, (DownState::NoInfo, timers(None, None), true));
        let r = downstream(
            DownState::PrunePending,
            t0,
            DownEvent::PrunePendingExpired,
            &dctx(false),
        );
        assert_eq!(r, (DownState::NoInfo, timers(None, None), false));
    }

    #[test]
    fn down_expiry_goes_noinfo_from_join_and_prune_pending() {
        for st in [DownState::Join, DownState::PrunePending] {
            let r = downstream(
                st,
                timers(Some(0), Some(2)),
                DownEvent::ExpiryExpired,
                &dctx(true),
            );
            assert_eq!(r, (DownState::NoInfo, timers(None, None), false));
        }
    }

    #[test]
    fn down_stale_timers_change_nothing() {
        let r = downstream(
            DownState::Join,
            timers(Some(9), None),
            DownEvent::PrunePendingExpired,
            &dctx(true),
        );
        assert_eq!(r, (DownState::Join, timers(Some(9), None), false));
        let r = downstream(
            DownState::NoInfo,
            timers(None, None),
            DownEvent::ExpiryExpired,
            &dctx(true),
        );
        assert_eq!(r.0, DownState::NoInfo);
    }

    // ---- 4.5.4 downstream (S,G,rpt) ----

    const PRUNE210: RptDownEvent = RptDownEvent::ReceivePruneRpt {
        holdtime: Some(Duration::from_secs(210)),
    };

    #[test]
    fn rpt_noinfo_prune_goes_prune_pending_with_both_timers() {
        let (st, t) = downstream_rpt(
            RptDownState::NoInfo,
            timers(None, None),
            PRUNE210,
            &dctx(true),
        );
        assert_eq!(st, RptDownState::PrunePending);
        assert_eq!(t.expiry, Some(T0 + s(210)));
        assert_eq!(t.prune_pending, Some(T0 + Duration::from_millis(3000)));
    }

    #[test]
    fn rpt_noinfo_other_events_ignored() {
        for ev in [
            RptDownEvent::ReceiveJoinStarG,
            RptDownEvent::ReceiveJoinRpt,
            RptDownEvent::EndOfMessage,
            RptDownEvent::PrunePendingExpired,
            RptDownEvent::ExpiryExpired,
        ] {
            assert_eq!(
                downstream_rpt(RptDownState::NoInfo, timers(None, None), ev, &dctx(true)).0,
                RptDownState::NoInfo
            );
        }
    }

    #[test]
    fn rpt_join_star_makes_tmp_states() {
        let t0 = timers(Some(100), Some(1));
        assert_eq!(
            downstream_rpt(
                RptDownState::Prune,
                t0,
                RptDownEvent::ReceiveJoinStarG,
                &dctx(true)
            )
            .0,
            RptDownState::PruneTmp
        );
        assert_eq!(
            downstream_rpt(
                RptDownState::PrunePending,
                t0,
                RptDownEvent::ReceiveJoinStarG,
                &dctx(true)
            )
            .0,
            RptDownState::PrunePendingTmp
        );
    }

    #[test]
    fn rpt_tmp_states_repruned_return() {
        let t0 = timers(Some(100), Some(1));
        let (st, t) = downstream_rpt(RptDownState::PruneTmp, t0, PRUNE210, &dctx(true));
        assert_eq!((st, t.expiry), (RptDownState::Prune, Some(T0 + s(210))));
        let (st, _) = downstream_rpt(RptDownState::PrunePendingTmp, t0, PRUNE210, &dctx(true));
        assert_eq!(st, RptDownState::PrunePending);
    }

    #[test]
    fn rpt_tmp_states_end_of_message_noinfo() {
        for st in [RptDownState::PruneTmp, RptDownState::PrunePendingTmp] {
            let r = downstream_rpt(
                st,
                timers(Some(9), Some(1)),
                RptDownEvent::EndOfMessage,
                &dctx(true),
            );
            assert_eq!(r, (RptDownState::NoInfo, timers(None, None)));
        }
        for st in [RptDownState::Prune, RptDownState::PrunePending] {
            assert_eq!(
                downstream_rpt(
                    st,
                    timers(Some(9), None),
                    RptDownEvent::EndOfMessage,
                    &dctx(true)
                )
                .0,
                st
            );
        }
    }

    #[test]
    fn rpt_join_rpt_clears_prune() {
        for st in [
            RptDownState::Prune,
            RptDownState::PrunePending,
            RptDownState::PruneTmp,
        ] {
            let r = downstream_rpt(
                st,
                timers(Some(9), Some(1)),
                RptDownEvent::ReceiveJoinRpt,
                &dctx(true),
            );
            assert_eq!(r, (RptDownState::NoInfo, timers(None, None)));
        }
    }

    #[test]
    fn rpt_prune_refresh_extends_expiry() {
        let (st, t) = downstream_rpt(
            RptDownState::Prune,
            timers(Some(9), None),
            PRUNE210,
            &dctx(true),
        );
        assert_eq!((st, t.expiry), (RptDownState::Prune, Some(T0 + s(210))));
        let (st, _) = downstream_rpt(
            RptDownState::PrunePending,
            timers(Some(9), Some(1)),
            PRUNE210,
            &dctx(true),
        );
        assert_eq!(st, RptDownState::PrunePending);
    }

    #[test]
    fn rpt_ppt_expiry_prunes_and_et_expiry_clears() {
        let (st, t) = downstream_rpt(
            RptDownState::PrunePending,
            timers(Some(9), Some(0)),
            RptDownEvent::PrunePendingExpired,
            &dctx(true),
        );
        assert_eq!((st, t), (RptDownState::Prune, timers(Some(9), None)));
        for st in [RptDownState::Prune, RptDownState::PrunePending] {
            assert_eq!(
                downstream_rpt(
                    st,
                    timers(Some(0), None),
                    RptDownEvent::ExpiryExpired,
                    &dctx(true)
                )
                .0,
                RptDownState::NoInfo
            );
        }
    }

    // ---- 4.5.5 / 4.5.6 upstream (*,G) and (S,G) ----

    const NBR: Upstream = Upstream {
        ifindex: 1,
        neighbor: Ipv4Addr::new(10, 0, 0, 1),
    };
    const NBR2: Upstream = Upstream {
        ifindex: 2,
        neighbor: Ipv4Addr::new(10, 0, 1, 1),
    };

    fn uctx(target: Option<Upstream>) -> UpCtx {
        UpCtx {
            now: T0,
            target,
            t_periodic: s(60),
            t_suppressed: s(70),
            t_override: s(2),
        }
    }

    #[test]
    fn up_notjoined_join_desired_sends_join_sets_periodic() {
        let r = upstream(
            UpState::NotJoined,
            None,
            UpEvent::JoinDesiredTrue,
            &uctx(Some(NBR)),
        );
        assert_eq!(
            r,
            (UpState::Joined, Some(T0 + s(60)), vec![UpSend::Join(NBR)])
        );
    }

    #[test]
    fn up_notjoined_without_rpf_stays() {
        let r = upstream(
            UpState::NotJoined,
            None,
            UpEvent::JoinDesiredTrue,
            &uctx(None),
        );
        assert_eq!(r, (UpState::NotJoined, None, vec![]));
    }

    #[test]
    fn up_joined_join_desired_false_prunes() {
        let r = upstream(
            UpState::Joined,
            Some(T0),
            UpEvent::JoinDesiredFalse,
            &uctx(Some(NBR)),
        );
        assert_eq!(r, (UpState::NotJoined, None, vec![UpSend::Prune(NBR)]));
    }

    #[test]
    fn up_joined_timer_expiry_sends_join() {
        let r = upstream(
            UpState::Joined,
            Some(T0),
            UpEvent::JoinTimerExpired,
            &uctx(Some(NBR)),
        );
        assert_eq!(
            r,
            (UpState::Joined, Some(T0 + s(60)), vec![UpSend::Join(NBR)])
        );
    }

    #[test]
    fn up_joined_see_join_suppresses() {
        // JT = max(JT, min(t_suppressed, holdtime)).
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(10)),
            UpEvent::SeeJoin { holdtime: s(210) },
            &uctx(Some(NBR)),
        );
        assert_eq!(r.1, Some(T0 + s(70)));
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(10)),
            UpEvent::SeeJoin { holdtime: s(30) },
            &uctx(Some(NBR)),
        );
        assert_eq!(r.1, Some(T0 + s(30)), "bounded by the seen holdtime");
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(80)),
            UpEvent::SeeJoin { holdtime: s(210) },
            &uctx(Some(NBR)),
        );
        assert_eq!(r.1, Some(T0 + s(80)), "never shortened");
        assert!(r.2.is_empty());
    }

    #[test]
    fn up_joined_see_prune_overrides() {
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(50)),
            UpEvent::SeePrune,
            &uctx(Some(NBR)),
        );
        assert_eq!(r, (UpState::Joined, Some(T0 + s(2)), vec![]));
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(1)),
            UpEvent::SeePrune,
            &uctx(Some(NBR)),
        );
        assert_eq!(r.1, Some(T0 + s(1)), "never lengthened");
    }

    #[test]
    fn up_joined_genid_change_overrides() {
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(50)),
            UpEvent::GenIdChanged,
            &uctx(Some(NBR)),
        );
        assert_eq!(r.1, Some(T0 + s(2)));
    }

    /// 4.5.5/4.5.6: RPF' changes due to an Assert: JT = min(JT,
    /// t_override), nothing sent now (the Join goes to RPF' as it stands
    /// when the timer fires).
    #[test]
    fn up_joined_rpf_change_by_assert_only_shortens_the_join_timer() {
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(50)),
            UpEvent::RpfChangedByAssert,
            &uctx(Some(NBR2)),
        );
        assert_eq!(r, (UpState::Joined, Some(T0 + s(2)), vec![]));
        let r = upstream(
            UpState::NotJoined,
            None,
            UpEvent::RpfChangedByAssert,
            &uctx(Some(NBR2)),
        );
        assert_eq!(r, (UpState::NotJoined, None, vec![]));
    }

    #[test]
    fn up_joined_rpf_change_moves_join() {
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(5)),
            UpEvent::RpfChanged { old: NBR },
            &uctx(Some(NBR2)),
        );
        assert_eq!(
            r,
            (
                UpState::Joined,
                Some(T0 + s(60)),
                vec![UpSend::Prune(NBR), UpSend::Join(NBR2)]
            )
        );
        let r = upstream(
            UpState::Joined,
            Some(T0 + s(5)),
            UpEvent::RpfChanged { old: NBR },
            &uctx(None),
        );
        assert_eq!(r, (UpState::NotJoined, None, vec![UpSend::Prune(NBR)]));
    }

    #[test]
    fn up_notjoined_ignores_everything_else() {
        for ev in [
            UpEvent::JoinDesiredFalse,
            UpEvent::JoinTimerExpired,
            UpEvent::SeeJoin { holdtime: s(1) },
            UpEvent::SeePrune,
            UpEvent::RpfChanged { old: NBR2 },
            UpEvent::GenIdChanged,
        ] {
            assert_eq!(
                upstream(UpState::NotJoined, None, ev, &uctx(Some(NBR))),
                (UpState::NotJoined, None, vec![])
            );
        }
    }

    // ---- 4.5.7 upstream (S,G,rpt) ----

    #[test]
    fn rpt_up_rows() {
        use RptUpEvent as E;
        use RptUpState as S;
        let ot = Some(T0 + s(1));
        let f = |st, o, ev| upstream_rpt(st, o, ev, T0, s(2));
        assert_eq!(
            f(S::RptNotJoined, None, E::PruneDesiredTrue),
            (S::Pruned, None, None)
        );
        assert_eq!(
            f(S::RptNotJoined, None, E::InheritedOlistNonEmpty),
            (S::NotPruned, None, None)
        );
        assert_eq!(
            f(S::Pruned, None, E::PruneDesiredFalse),
            (S::NotPruned, None, Some(RptSend::Join))
        );
        assert_eq!(
            f(S::Pruned, None, E::RptJoinDesiredFalse),
            (S::RptNotJoined, None, None)
        );
        assert_eq!(
            f(S::NotPruned, ot, E::RptJoinDesiredFalse),
            (S::RptNotJoined, None, None)
        );
        assert_eq!(
            f(S::NotPruned, ot, E::PruneDesiredTrue),
            (S::Pruned, None, Some(RptSend::Prune))
        );
        assert_eq!(
            f(S::NotPruned, None, E::SeePrune),
            (S::NotPruned, Some(T0 + s(2)), None)
        );
        assert_eq!(
            f(S::NotPruned, ot, E::SeePrune),
            (S::NotPruned, ot, None),
            "min(OT, t_override)"
        );
        assert_eq!(
            f(S::NotPruned, None, E::RpfChanged),
            (S::NotPruned, Some(T0 + s(2)), None)
        );
        assert_eq!(
            f(S::NotPruned, ot, E::SeeJoinRpt),
            (S::NotPruned, None, None)
        );
        assert_eq!(
            f(S::NotPruned, ot, E::OverrideExpired),
            (S::NotPruned, None, Some(RptSend::Join))
        );
        assert_eq!(f(S::Pruned, None, E::SeePrune), (S::Pruned, None, None));
        assert_eq!(
            f(S::RptNotJoined, None, E::OverrideExpired),
            (S::RptNotJoined, None, None)
        );
    }

    // ---- 4.4.1 Register ----

    #[test]
    fn register_rows() {
        use RegAction as A;
        use RegEvent as E;
        use RegState as S;
        let sup = s(40);
        let rst = Some(T0 + s(3));
        let f = |st, r, ev| register(st, r, ev, T0, sup);
        assert_eq!(
            f(S::NoInfo, None, E::CouldRegisterTrue),
            (S::Join, None, Some(A::AddTunnel))
        );
        assert_eq!(
            f(S::Join, None, E::CouldRegisterFalse),
            (S::NoInfo, None, Some(A::RemoveTunnel))
        );
        assert_eq!(
            f(S::JoinPending, rst, E::CouldRegisterFalse),
            (S::NoInfo, None, None)
        );
        assert_eq!(
            f(S::Prune, rst, E::CouldRegisterFalse),
            (S::NoInfo, None, None)
        );
        assert_eq!(
            f(S::Join, None, E::RegisterStopReceived),
            (S::Prune, Some(T0 + sup), Some(A::RemoveTunnel))
        );
        assert_eq!(
            f(S::JoinPending, rst, E::RegisterStopReceived),
            (S::Prune, Some(T0 + sup), None)
        );
        assert_eq!(
            f(S::Prune, rst, E::RegisterStopTimerExpired),
            (
                S::JoinPending,
                Some(T0 + REGISTER_PROBE_TIME),
                Some(A::SendNullRegister)
            )
        );
        assert_eq!(
            f(S::JoinPending, rst, E::RegisterStopTimerExpired),
            (S::Join, None, Some(A::AddTunnel))
        );
        assert_eq!(
            f(S::Join, None, E::RpChanged),
            (S::Join, None, Some(A::UpdateTunnel))
        );
        assert_eq!(
            f(S::JoinPending, rst, E::RpChanged),
            (S::Join, None, Some(A::AddTunnel))
        );
        assert_eq!(
            f(S::Prune, rst, E::RpChanged),
            (S::Join, None, Some(A::AddTunnel))
        );
        assert_eq!(
            f(S::Prune, rst, E::RegisterStopReceived),
            (S::Prune, rst, None)
        );
        assert_eq!(
            f(S::NoInfo, None, E::RegisterStopReceived),
            (S::NoInfo, None, None)
        );
        assert_eq!(
            f(S::Join, None, E::CouldRegisterTrue),
            (S::Join, None, None)
        );
    }

    // ---- 4.6.1 / 4.6.2 Assert ----

    fn m(pref: u32, metric: u32, last: u8) -> AssertMetric {
        AssertMetric {
            rpt: false,
            preference: pref,
            metric,
            address: Ipv4Addr::new(10, 0, 0, last),
        }
    }

    #[test]
    fn assert_metric_order() {
        assert!(m(1, 10, 1).better_than(&m(2, 0, 9)), "preference first");
        assert!(m(1, 5, 1).better_than(&m(1, 6, 9)), "then metric");
        assert!(m(1, 5, 9).better_than(&m(1, 5, 1)), "then higher address");
        let rpt = AssertMetric {
            rpt: true,
            ..m(0, 0, 9)
        };
        assert!(m(200, 200, 1).better_than(&rpt), "SPT beats RPT");
        assert!(AssertMetric {
            preference: ASSERT_INFINITE_PREFERENCE,
            ..m(0, 0, 1)
        }
        .is_cancel());
    }

    #[test]
    fn assert_rows() {
        use AssertEvent as E;
        use AssertState as S;
        let mine = Some(m(10, 10, 5));
        let better = m(10, 5, 7);
        let worse = m(10, 20, 7);
        let win = AssertInfo {
            state: S::Winner,
            timer: Some(T0 + s(177)),
            winner: mine,
        };
        let lose = |w| AssertInfo {
            state: S::Loser,
            timer: Some(T0 + s(180)),
            winner: Some(w),
        };
        let none = AssertInfo::NONE;
        // NoInfo.
        assert_eq!(
            assert_step(none, E::DataOnOif, mine, T0),
            (win, Some(AssertSend::Assert))
        );
        assert_eq!(assert_step(none, E::DataOnOif, None, T0), (none, None));
        assert_eq!(
            assert_step(none, E::ReceiveAssert(worse), mine, T0),
            (win, Some(AssertSend::Assert))
        );
        assert_eq!(
            assert_step(none, E::ReceiveAssert(better), mine, T0),
            (lose(better), None)
        );
        assert_eq!(
            assert_step(none, E::ReceiveAssert(worse), None, T0),
            (lose(worse), None)
        );
        // Winner.
        assert_eq!(
            assert_step(win, E::TimerExpired, mine, T0),
            (win, Some(AssertSend::Assert))
        );
        assert_eq!(
            assert_step(win, E::ReceiveAssert(worse), mine, T0),
            (win, Some(AssertSend::Assert))
        );
        assert_eq!(
            assert_step(win, E::ReceiveAssert(better), mine, T0),
            (lose(better), None)
        );
        assert_eq!(
            assert_step(win, E::CouldAssertFalse, None, T0),
            (none, Some(AssertSend::Cancel))
        );
        // Loser.
        let l = lose(better);
        let even_better = m(1, 1, 8);
        assert_eq!(
            assert_step(l, E::ReceiveAssert(even_better), mine, T0),
            (lose(even_better), None)
        );
        let refreshed = m(10, 6, 7);
        assert_eq!(
            assert_step(l, E::ReceiveAssert(refreshed), mine, T0),
            (lose(refreshed), None)
        );
        assert_eq!(
            assert_step(l, E::ReceiveAssert(worse), mine, T0),
            (none, None),
            "winner became inferior"
        );
        let cancel = AssertMetric {
            preference: ASSERT_INFINITE_PREFERENCE,
            metric: u32::MAX,
            ..better
        };
        assert_eq!(
            assert_step(l, E::ReceiveAssert(cancel), mine, T0),
            (none, None),
            "AssertCancel"
        );
        let third_worse = m(10, 30, 9);
        assert_eq!(
            assert_step(l, E::ReceiveAssert(third_worse), mine, T0),
            (l, None)
        );
        assert_eq!(assert_step(l, E::TimerExpired, mine, T0), (none, None));
        assert_eq!(assert_step(l, E::WinnerGone, mine, T0), (none, None));
        // 4.6.1 Loser: "my metric becomes better than the assert winner's
        // metric" -> NI (A5).
        assert_eq!(assert_step(l, E::MyMetricBetter, mine, T0), (none, None));
        // Elsewhere the event changes nothing.
        assert_eq!(assert_step(win, E::MyMetricBetter, mine, T0), (win, None));
        assert_eq!(assert_step(none, E::MyMetricBetter, mine, T0), (none, None));
        // 4.6.1/4.6.2 Loser: "Receive Join(S,G)/Join(*,G) on interface I"
        // -> NI (A5); a Winner or NoInfo takes the Join as usual.
        assert_eq!(assert_step(l, E::ReceiveJoin, mine, T0), (none, None));
        assert_eq!(assert_step(win, E::ReceiveJoin, mine, T0), (win, None));
        assert_eq!(assert_step(none, E::ReceiveJoin, mine, T0), (none, None));
    }
}
