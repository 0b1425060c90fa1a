//! PIM-SM distribution trees (RFC 7761 sections 4.1, 4.5, 4.2.1 in part):
//! per group the `(*,G)` entry and the `(S,G)` entries (with their
//! `(S,G,rpt)` state), fed by received Join/Prune messages, local members,
//! RPF changes and data-plane notices; it sends Join/Prune messages packed
//! per upstream neighbour and writes `Origin::Pim` contributions to the
//! MRIB.
//!
//! The state machines themselves are the pure functions of
//! [`super::fsm`]; this module keeps their state per entry and interface,
//! evaluates the state-summarization macros of section 4.1.6
//! (`immediate_olist`, `inherited_olist`, `JoinDesired`, `PruneDesired`)
//! and turns level changes into the machines' "-> True / -> False" events
//! (the [`Tree`] re-evaluates every group an input touched, once, at the
//! end of the input).
//!
//! Also here: the Register machine at the first-hop DR and Register
//! handling at the RP (sections 4.4.1, 4.4.2), the `(S,G)` Keepalive Timer
//! and SPT switchover (sections 4.1.2, 4.2.1, 4.2.2), and Asserts
//! (section 4.6, core rows). Not here: `(*,*,RP)` state, BSR, PMBR
//! (border) Registers, Assert tracking rows that need
//! AssertTrackingDesired, and the Join-side "RPF' changes due to an Assert"
//! subtlety (an Assert-driven RPF' change moves the join like any other).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use mcr_wire::pim::{EncodedGroup, EncodedSource, JoinPruneGroup};
use serde::Serialize;

use super::fsm::{
    self, AssertEvent, AssertInfo, AssertMetric, AssertSend, AssertState, DownCtx, DownEvent,
    DownState, DownTimers, RegAction, RegEvent, RegState, RptDownEvent, RptDownState, RptSend,
    RptUpEvent, RptUpState, UpCtx, UpEvent, UpSend, UpState, Upstream, REGISTER_PROBE_TIME,
    REGISTER_SUPPRESSION_TIME,
};
use super::{
    Assert, JoinPrune, Pim, PimEvent, PimIface, PimMessage, PimTimer, Register, ALL_PIM_ROUTERS,
};
use crate::io::{Action, ActionOf, Event, EventCategory, RpfChange, RpfRoute};
use crate::mrib::{
    Contribution, FilterMode, MribUpdate, OifReason, Origin, RouteKey, SourceFilter,
};
use crate::net::{Interface, Ipv4Prefix};
use crate::rng::Rng;
use crate::time::Timestamp;

type Out = Vec<ActionOf<Pim>>;

/// t_periodic, 60 s (RFC 7761 section 4.11): the period of Join/Prune
/// messages.
pub const T_PERIODIC: Duration = Duration::from_secs(60);
/// Keepalive_Period, 210 s (RFC 7761 section 4.11): how long `(S,G)` state
/// lives after the last data packet.
pub const KEEPALIVE_PERIOD: Duration = Duration::from_secs(210);
/// RP_Keepalive_Period = 3 x Register_Suppression_Time +
/// Register_Probe_Time = 185 s (RFC 7761 section 4.11): the Keepalive
/// Timer the RP sets when it answers a Register with a Register-Stop.
pub const RP_KEEPALIVE_PERIOD: Duration = Duration::from_secs(185);
/// Default propagation delay when not every neighbour sends LAN Prune
/// Delay (RFC 7761 section 4.11), 500 ms.
pub const DEFAULT_PROPAGATION_DELAY: Duration = Duration::from_millis(500);
/// Default t_override bound when not every neighbour sends LAN Prune Delay
/// (RFC 7761 section 4.11), 2500 ms.
pub const DEFAULT_OVERRIDE_INTERVAL: Duration = Duration::from_millis(2500);
/// Default bound of the tree state, entries (`(*,G)` plus `(S,G)`).
pub const DEFAULT_MAX_ENTRIES: usize = 16_384;
/// Default size budget of one Join/Prune message, bytes of IP packet
/// (an Ethernet MTU).
pub const DEFAULT_JP_MTU: usize = 1500;
/// When a neighbour's periodic Join/Prune goes out, entries whose Join
/// Timer is due within this window ride along (their timers restart), so
/// entries drift into one message per neighbour and period.
pub const JOIN_PACK_WINDOW: Duration = Duration::from_secs(5);

/// IPv4 header (20 bytes) + PIM header (4) + upstream neighbour (6) +
/// reserved, group count, holdtime (4).
const JP_FIXED: usize = 20 + 4 + 6 + 4;
/// Encoded group (8) + join count and prune count (4).
const JP_GROUP: usize = 12;
/// One encoded source.
const JP_SOURCE: usize = 8;

/// A static RP mapping (`pim.static_rp`): groups in `group` use `rp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StaticRp {
    /// The group range (inside 224.0.0.0/4).
    pub group: Ipv4Prefix,
    /// The RP's address.
    pub rp: Ipv4Addr,
}

/// When a last-hop router switches from the shared tree to the source's
/// tree (`pim.spt_switchover`, RFC 7761 section 4.2.1 `SwitchToSptDesired`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SptSwitchover {
    /// After the first packet from a source (what most routers do).
    #[default]
    Immediate,
    /// Never: stay on the shared tree.
    Never,
}

/// The tree part of the PIM configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeConfig {
    /// Static RP mappings, longest group prefix wins (RFC 7761 section 4.7
    /// leaves the mapping mechanism open; this is the static one).
    pub static_rp: Vec<StaticRp>,
    /// Our RP address (`pim.rp_address`): we are the RP for groups mapped
    /// to it, and for every group no static mapping covers.
    pub rp_address: Option<Ipv4Addr>,
    /// SPT switchover policy at last-hop routers.
    pub spt_switchover: SptSwitchover,
    /// t_periodic (RFC 7761 section 4.11), 60 s by default.
    pub t_periodic: Duration,
    /// Bound of the tree entries (`(*,G)` and `(S,G)`); new entries past it
    /// are dropped and counted ([`TreeCounters::entries_dropped`]).
    pub max_entries: usize,
    /// Size budget of one sent Join/Prune, bytes of IP packet.
    pub jp_mtu: usize,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            static_rp: Vec::new(),
            rp_address: None,
            spt_switchover: SptSwitchover::Immediate,
            t_periodic: T_PERIODIC,
            max_entries: DEFAULT_MAX_ENTRIES,
            jp_mtu: DEFAULT_JP_MTU,
        }
    }
}

impl TreeConfig {
    /// The Holdtime we put in Join/Prune messages: 3.5 x t_periodic,
    /// seconds (RFC 7761 section 4.11, J/P_HoldTime; 210 s by default).
    pub fn jp_holdtime(&self) -> u16 {
        let s = self.t_periodic.as_millis().saturating_mul(7) / 2000;
        u16::try_from(s).unwrap_or(0xfffe).min(0xfffe)
    }
}

/// Which entry a timer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EntryKey {
    /// `(*,G)`.
    StarG(Ipv4Addr),
    /// `(S,G)`: source, group.
    Sg(Ipv4Addr, Ipv4Addr),
    /// `(S,G,rpt)`: source, group.
    SgRpt(Ipv4Addr, Ipv4Addr),
}

/// Timer keys of the tree state (wrapped in [`PimTimer::Tree`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeTimer {
    /// Downstream Expiry Timer of an entry on an interface (sections
    /// 4.5.2-4.5.4).
    Expiry(EntryKey, u32),
    /// Downstream Prune-Pending Timer of an entry on an interface.
    PrunePending(EntryKey, u32),
    /// The earliest Join Timer (sections 4.5.5, 4.5.6) of the entries
    /// joined toward one upstream neighbour: when it fires, every entry
    /// due goes out in one packed message.
    Upstream(Upstream),
    /// `(S,G,rpt)` Override Timer (section 4.5.7): source, group.
    Override(Ipv4Addr, Ipv4Addr),
    /// `(S,G)` Keepalive Timer (section 4.1.2): source, group.
    Keepalive(Ipv4Addr, Ipv4Addr),
    /// `(S,G)` Register-Stop Timer at the DR (section 4.4.1): source,
    /// group.
    RegisterStop(Ipv4Addr, Ipv4Addr),
    /// Assert Timer of an entry (`(*,G)` or `(S,G)`) on an interface
    /// (sections 4.6.1, 4.6.2).
    Assert(EntryKey, u32),
}

/// Downstream state of an entry on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Downstream<S> {
    /// The machine's state.
    pub state: S,
    /// Its timers.
    pub timers: DownTimers,
}

/// `(*,G)` state (RFC 7761 section 4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StarG {
    /// Downstream state per interface index (only non-NoInfo ones).
    pub down: BTreeMap<u32, Downstream<DownState>>,
    /// Upstream state (section 4.5.5).
    pub up: UpState,
    /// Join Timer deadline.
    pub join_timer: Option<Timestamp>,
    /// The RPF' joined toward (while Joined).
    pub upstream: Option<Upstream>,
    /// Whether `upstream` is an Assert winner rather than the unicast
    /// RPF' (section 4.5.5 treats changes caused by an Assert apart).
    #[serde(skip)]
    pub upstream_by_assert: bool,
    /// The RP the upstream Join names (while Joined).
    pub rp: Option<Ipv4Addr>,
}

/// `(S,G)` state with its `(S,G,rpt)` state (RFC 7761 sections 4.1.4,
/// 4.1.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sg {
    /// `(S,G)` downstream state per interface.
    pub down: BTreeMap<u32, Downstream<DownState>>,
    /// `(S,G,rpt)` downstream state per interface.
    pub rpt_down: BTreeMap<u32, Downstream<RptDownState>>,
    /// `(S,G)` upstream state (section 4.5.6).
    pub up: UpState,
    /// Join Timer deadline.
    pub join_timer: Option<Timestamp>,
    /// The RPF'(S,G) joined toward (while Joined).
    pub upstream: Option<Upstream>,
    /// Whether `upstream` is an Assert winner rather than the unicast
    /// RPF' (section 4.5.6 treats changes caused by an Assert apart).
    #[serde(skip)]
    pub upstream_by_assert: bool,
    /// `(S,G,rpt)` upstream state (section 4.5.7).
    pub rpt_up: RptUpState,
    /// `(S,G,rpt)` Override Timer deadline.
    pub override_timer: Option<Timestamp>,
    /// Keepalive Timer deadline (section 4.1.2; `None`: not running).
    pub keepalive: Option<Timestamp>,
    /// SPTbit (section 4.2.2): traffic arrives on the source tree.
    pub spt_bit: bool,
    /// Register state at the first-hop DR (section 4.4.1).
    pub register: RegState,
    /// Register-Stop Timer deadline.
    pub register_stop_timer: Option<Timestamp>,
    /// The RP the register tunnel points at (while [`RegState::Join`]).
    pub register_rp: Option<Ipv4Addr>,
    /// At the RP: a Register for `(S,G)` arrived while the Keepalive Timer
    /// runs (section 4.4.2), so S is a source of this domain (an MSDP SA
    /// originates for it, RFC 3618 section 3). Cleared when the Keepalive
    /// Timer expires.
    pub registered: bool,
}

impl Sg {
    fn new() -> Self {
        Sg {
            down: BTreeMap::new(),
            rpt_down: BTreeMap::new(),
            up: UpState::NotJoined,
            join_timer: None,
            upstream: None,
            upstream_by_assert: false,
            rpt_up: RptUpState::RptNotJoined,
            override_timer: None,
            keepalive: None,
            spt_bit: false,
            register: RegState::NoInfo,
            register_stop_timer: None,
            register_rp: None,
            registered: false,
        }
    }
    fn is_idle(&self) -> bool {
        self.register == RegState::NoInfo && self.is_idle_but_register()
    }
    fn is_idle_but_register(&self) -> bool {
        self.down.is_empty()
            && self.rpt_down.is_empty()
            && self.up == UpState::NotJoined
            && self.rpt_up != RptUpState::Pruned
            && self.override_timer.is_none()
            && self.keepalive.is_none()
    }
}

/// All state of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupState {
    /// `(*,G)`, if any.
    pub star: Option<StarG>,
    /// `(S,G)` by source.
    pub sources: BTreeMap<Ipv4Addr, Sg>,
}

/// Tree counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TreeCounters {
    /// Join/Prune messages received (on PIM interfaces).
    pub jp_received: u64,
    /// Join/Prune messages sent.
    pub jp_sent: u64,
    /// Join/Prune messages from our own address (looped back), ignored.
    pub jp_own: u64,
    /// Join/Prune messages from a router that is not a PIM neighbour on the
    /// interface, ignored.
    pub jp_not_neighbor: u64,
    /// Group entries ignored: not a single multicast group (mask not 32,
    /// not in 224.0.0.0/4, or link-local 224.0.0.0/24).
    pub bad_group: u64,
    /// Source entries ignored: mask not 32, S bit clear, W without R, or
    /// not unicast.
    pub bad_source: u64,
    /// Join(*,G) / Prune(*,G) naming an RP other than RP(G), ignored
    /// (section 4.5.2).
    pub rp_mismatch: u64,
    /// New entries refused because the table is at its bound.
    pub entries_dropped: u64,
    /// Local member records refused at the bound.
    pub members_dropped: u64,
    /// Registers received (at the RP, section 4.4.2).
    pub registers_received: u64,
    /// Registers whose inner packet is not an IPv4 packet to a group,
    /// dropped.
    pub bad_registers: u64,
    /// Registers received whose data the control plane should decapsulate
    /// and forward down the shared tree (not Null, SPTbit clear).
    pub registers_to_forward: u64,
    /// Register-Stops sent.
    pub register_stops_sent: u64,
    /// Register-Stops received (at the DR).
    pub register_stops_received: u64,
    /// Null-Registers sent.
    pub null_registers_sent: u64,
    /// Asserts received and used.
    pub asserts_received: u64,
    /// Asserts (and AssertCancels) sent.
    pub asserts_sent: u64,
    /// Asserts ignored: for an entry we hold no route for, or malformed.
    pub asserts_ignored: u64,
}

/// The tree state of a PIM instance. See the module documentation.
#[derive(Debug)]
pub struct Tree {
    config: TreeConfig,
    rng: Rng,
    groups: BTreeMap<Ipv4Addr, GroupState>,
    entries: usize,
    local: BTreeMap<(Ipv4Addr, u32), (Interface, SourceFilter)>,
    installed: BTreeMap<RouteKey, Contribution>,
    upstream_timers: BTreeMap<Upstream, Timestamp>,
    touched: BTreeSet<Ipv4Addr>,
    all_touched: bool,
    pending: BTreeMap<Upstream, PendingGroups>,
    pending_stops: Vec<(Ipv4Addr, Ipv4Addr)>,
    asserts: BTreeMap<(EntryKey, u32), AssertInfo>,
    /// CouldAssert interfaces per group and entry (kept per group so one
    /// group's reconcile does not walk every entry).
    could_assert: BTreeMap<Ipv4Addr, BTreeMap<EntryKey, BTreeSet<u32>>>,
    /// Groups each source has had `(S,G)` state in: a superset (stale
    /// pairs are dropped when [`Tree::touch_prefix`] reads them), so an RPF
    /// change for a source finds its groups without a walk of every group.
    by_source: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>>,
    by_source_len: usize,
    /// Active sources of other domains, (G, S), from MSDP SAs
    /// ([`Tree::source_active`]); bounded by `max_entries`.
    sa_sources: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    /// A source may have become, or stopped being, one of
    /// [`Tree::rp_sources`] without a route change (a first Register, a
    /// Keepalive Timer start or expiry).
    rp_sources_changed: bool,
    counters: TreeCounters,
}

/// Queued Join/Prune entries toward one neighbour: per group, (joins,
/// prunes).
type PendingGroups = BTreeMap<Ipv4Addr, (Vec<EncodedSource>, Vec<EncodedSource>)>;

/// What the tree reads from the rest of the instance.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub ifaces: &'a BTreeMap<u32, PimIface>,
    pub rpf: &'a BTreeMap<Ipv4Prefix, RpfChange>,
}

impl Env<'_> {
    /// The longest-prefix RPF route toward `addr`.
    fn route(&self, addr: Ipv4Addr) -> Option<&RpfRoute> {
        (0..=32u8).rev().find_map(|len| {
            let p = Ipv4Prefix::new(addr, len).ok()?;
            self.rpf.get(&p).and_then(|c| c.route.as_ref())
        })
    }

    fn is_dr(&self, ifindex: u32) -> bool {
        self.ifaces.get(&ifindex).is_some_and(PimIface::is_dr)
    }

    fn our_address(&self, addr: Ipv4Addr) -> bool {
        self.ifaces
            .values()
            .any(|i| i.addresses.iter().any(|a| a.address == addr))
    }
}

/// Effective_Propagation_Delay, Effective_Override_Interval and whether
/// join suppression is enabled on an interface (RFC 7761 section 4.3.3):
/// the largest values among us and the neighbours when every neighbour
/// sends a LAN Prune Delay option, else the defaults; suppression is off
/// only when every neighbour (and we) set the T bit, which we never do.
pub fn lan_delays(ifc: &PimIface) -> (Duration, Duration, bool) {
    let all =
        !ifc.neighbors.is_empty() && ifc.neighbors.values().all(|n| n.lan_prune_delay.is_some());
    if !all {
        return (DEFAULT_PROPAGATION_DELAY, DEFAULT_OVERRIDE_INTERVAL, true);
    }
    let mut prop = ifc.config.propagation_delay_ms;
    let mut ovr = ifc.config.override_interval_ms;
    for d in ifc.neighbors.values().filter_map(|n| n.lan_prune_delay) {
        prop = prop.max(d.propagation_delay_ms);
        ovr = ovr.max(d.override_interval_ms);
    }
    (
        Duration::from_millis(prop.into()),
        Duration::from_millis(ovr.into()),
        true,
    )
}

/// J/P_Override_Interval(I) = Effective_Propagation_Delay(I) +
/// Effective_Override_Interval(I) (RFC 7761 section 4.11); 3 s with the
/// defaults.
pub fn jp_override_interval(ifc: &PimIface) -> Duration {
    let (p, o, _) = lan_delays(ifc);
    p + o
}

fn group_of(key: EntryKey) -> Ipv4Addr {
    match key {
        EntryKey::StarG(g) | EntryKey::Sg(_, g) | EntryKey::SgRpt(_, g) => g,
    }
}

/// A `join-state` event: `reason` names the entry (`star-g`, `sg`,
/// `sg-rpt`), `action` its new downstream state on the interface.
fn join_event(
    env: &Env<'_>,
    ifindex: u32,
    group: Ipv4Addr,
    source: Option<Ipv4Addr>,
    entry: &'static str,
    state: &'static str,
) -> ActionOf<Pim> {
    Action::Event(Event {
        category: EventCategory::Pim,
        kind: "join-state",
        payload: PimEvent {
            interface: env
                .ifaces
                .get(&ifindex)
                .map_or_else(String::new, |i| i.config.interface.name.to_string()),
            group: Some(group),
            source,
            reason: Some(entry),
            action: Some(state),
            ..PimEvent::default()
        },
    })
}

fn route_event(key: RouteKey, action: &'static str) -> ActionOf<Pim> {
    Action::Event(Event {
        category: EventCategory::Pim,
        kind: "route",
        payload: PimEvent {
            group: Some(key.group),
            source: key.source,
            action: Some(action),
            ..PimEvent::default()
        },
    })
}

fn is_group(g: Ipv4Addr) -> bool {
    g.is_multicast() && g.octets()[..3] != [224, 0, 0]
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !a.is_multicast() && !a.is_unspecified() && !a.is_broadcast()
}

fn enc(addr: Ipv4Addr, wildcard: bool, rpt: bool) -> EncodedSource {
    EncodedSource {
        addr,
        mask_len: 32,
        sparse: true,
        wildcard,
        rpt,
    }
}

/// A classified Join/Prune source entry.
enum Entry {
    Star(Ipv4Addr),
    Sg(Ipv4Addr),
    Rpt(Ipv4Addr),
}

fn classify(s: &EncodedSource) -> Option<Entry> {
    if s.mask_len != 32 || !s.sparse || !is_unicast(s.addr) {
        return None;
    }
    match (s.wildcard, s.rpt) {
        (true, true) => Some(Entry::Star(s.addr)),
        (false, false) => Some(Entry::Sg(s.addr)),
        (false, true) => Some(Entry::Rpt(s.addr)),
        (true, false) => None,
    }
}

impl Tree {
    /// Empty tree state; `rng` draws t_suppressed and t_override.
    pub fn new(rng: Rng) -> Self {
        Tree {
            config: TreeConfig::default(),
            rng,
            groups: BTreeMap::new(),
            entries: 0,
            local: BTreeMap::new(),
            installed: BTreeMap::new(),
            upstream_timers: BTreeMap::new(),
            touched: BTreeSet::new(),
            all_touched: false,
            pending: BTreeMap::new(),
            pending_stops: Vec::new(),
            asserts: BTreeMap::new(),
            could_assert: BTreeMap::new(),
            sa_sources: BTreeSet::new(),
            rp_sources_changed: false,
            by_source: BTreeMap::new(),
            by_source_len: 0,
            counters: TreeCounters::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// The state per group (`mcrctl pim join-state`).
    pub fn groups(&self) -> &BTreeMap<Ipv4Addr, GroupState> {
        &self.groups
    }

    /// IGMP's members per (group, interface index): the interface and the
    /// merged source filter (RFC 7761 section 4.1 `local_receiver_include`;
    /// they count where we are the DR).
    pub fn local_receivers(
        &self,
    ) -> impl Iterator<Item = (Ipv4Addr, &Interface, &SourceFilter)> + '_ {
        self.local.iter().map(|((g, _), (i, f))| (*g, i, f))
    }

    /// `(*,G)` plus `(S,G)` entries held.
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    /// Counters.
    pub fn counters(&self) -> &TreeCounters {
        &self.counters
    }

    /// The Assert states per (entry, interface index) (sections 4.6.1,
    /// 4.6.2); NoInfo ones are absent.
    pub fn asserts(&self) -> &BTreeMap<(EntryKey, u32), AssertInfo> {
        &self.asserts
    }

    /// The MRIB contributions as last written (`Origin::Pim`).
    pub fn routes(&self) -> &BTreeMap<RouteKey, Contribution> {
        &self.installed
    }

    /// RP(G): the longest static mapping covering `group`, else our own
    /// `rp_address`; `None` when no RP is known.
    pub fn rp_for(&self, group: Ipv4Addr) -> Option<Ipv4Addr> {
        self.config
            .static_rp
            .iter()
            .filter(|m| m.group.contains(group))
            .max_by_key(|m| m.group.prefix_len())
            .map(|m| m.rp)
            .or(self.config.rp_address)
    }

    pub(crate) fn set_config(&mut self, config: TreeConfig) {
        if config != self.config {
            self.config = config;
            self.all_touched = true;
        }
    }

    /// Re-evaluate every group at the end of this input (interface, DR,
    /// neighbour or RPF change).
    pub(crate) fn touch_all(&mut self) {
        self.all_touched = true;
    }

    /// Re-evaluate, at the end of this input, the groups an RPF change of
    /// `prefix` can move: those with a source inside it or whose RP is
    /// inside it (4.5.5/4.5.6 "RPF' changes"). Cheaper than
    /// [`touch_all`](Self::touch_all) when thousands of sources are
    /// resolved one by one.
    pub(crate) fn touch_prefix(&mut self, prefix: Ipv4Prefix) {
        if self.all_touched {
            return;
        }
        if prefix.prefix_len() < 8 {
            // A default or very short route may cover every RP and source.
            self.all_touched = true;
            return;
        }
        let rp_covered = self
            .config
            .static_rp
            .iter()
            .map(|m| m.rp)
            .chain(self.config.rp_address)
            .any(|rp| prefix.contains(rp));
        if !rp_covered {
            // Only sources can move: their groups from the index.
            let first = prefix.addr();
            let host_bits = u32::MAX
                .checked_shr(u32::from(prefix.prefix_len()))
                .unwrap_or(0);
            let last = Ipv4Addr::from(u32::from(first) | host_bits);
            let mut hit: Vec<Ipv4Addr> = Vec::new();
            let mut stale: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
            for (s, gs) in self.by_source.range(first..=last) {
                for g in gs {
                    let live = self
                        .groups
                        .get(g)
                        .is_some_and(|x| x.sources.contains_key(s))
                        || self.installed.contains_key(&RouteKey::sg(*s, *g));
                    if live {
                        hit.push(*g);
                    } else {
                        stale.push((*s, *g));
                    }
                }
            }
            for (s, g) in stale {
                if let Some(gs) = self.by_source.get_mut(&s) {
                    if gs.remove(&g) {
                        self.by_source_len -= 1;
                    }
                    if gs.is_empty() {
                        self.by_source.remove(&s);
                    }
                }
            }
            self.touched.extend(hit);
            return;
        }
        let rp_hit = |g: Ipv4Addr| self.rp_for(g).is_some_and(|rp| prefix.contains(rp));
        let hit: Vec<Ipv4Addr> = self
            .groups
            .iter()
            .filter(|(g, st)| rp_hit(**g) || st.sources.keys().any(|s| prefix.contains(*s)))
            .map(|(g, _)| *g)
            .chain(self.local.keys().map(|k| k.0).filter(|g| rp_hit(*g)))
            .chain(
                self.installed
                    .keys()
                    .filter(|k| k.source.is_some_and(|s| prefix.contains(s)) || rp_hit(k.group))
                    .map(|k| k.group),
            )
            .collect();
        self.touched.extend(hit);
    }

    fn i_am_rp(&self, env: &Env<'_>, rp: Ipv4Addr) -> bool {
        self.config.rp_address == Some(rp) || env.our_address(rp)
    }

    /// RPF toward the RP: the incoming interface and RPF'(*,G). `(None,
    /// None)` at the RP.
    fn star_target(&self, env: &Env<'_>, rp: Ipv4Addr) -> (Option<Interface>, Option<Upstream>) {
        if self.i_am_rp(env, rp) {
            return (None, None);
        }
        let Some(r) = env.route(rp) else {
            return (None, None);
        };
        let up = env.ifaces.get(&r.interface.index).map(|_| Upstream {
            ifindex: r.interface.index,
            neighbor: r.neighbor.unwrap_or(rp),
        });
        (Some(r.interface.clone()), up)
    }

    /// RPF toward a source: the incoming interface and RPF'(S,G) (`None`
    /// when the source is directly connected or off any PIM interface).
    fn sg_target(env: &Env<'_>, s: Ipv4Addr) -> (Option<Interface>, Option<Upstream>) {
        let Some(r) = env.route(s) else {
            return (None, None);
        };
        let up = r.neighbor.and_then(|n| {
            env.ifaces.get(&r.interface.index).map(|_| Upstream {
                ifindex: r.interface.index,
                neighbor: n,
            })
        });
        (Some(r.interface.clone()), up)
    }

    fn down_ctx(env: &Env<'_>, now: Timestamp, ifindex: u32) -> DownCtx {
        match env.ifaces.get(&ifindex) {
            Some(ifc) => DownCtx {
                now,
                override_interval: jp_override_interval(ifc),
                multi_access: ifc.neighbors.len() > 1,
            },
            None => DownCtx {
                now,
                override_interval: DEFAULT_PROPAGATION_DELAY + DEFAULT_OVERRIDE_INTERVAL,
                multi_access: false,
            },
        }
    }

    fn up_ctx(&mut self, env: &Env<'_>, now: Timestamp, target: Option<Upstream>) -> UpCtx {
        let iface = target.and_then(|t| env.ifaces.get(&t.ifindex));
        let (_, ovr, suppress) = iface.map_or(
            (DEFAULT_PROPAGATION_DELAY, DEFAULT_OVERRIDE_INTERVAL, true),
            lan_delays,
        );
        let p = self.config.t_periodic;
        let t_suppressed = if suppress {
            self.rng.uniform_inclusive(p * 11 / 10..=p * 14 / 10)
        } else {
            Duration::ZERO
        };
        UpCtx {
            now,
            target,
            t_periodic: p,
            t_suppressed,
            t_override: self.rng.uniform(Duration::ZERO..ovr),
        }
    }

    /// Ensures `group` has state and, if `star`, a `(*,G)` entry; returns
    /// false when refused at the bound.
    fn ensure_star(&mut self, group: Ipv4Addr) -> bool {
        let full = self.entries >= self.config.max_entries;
        let g = self.groups.entry(group).or_default();
        if g.star.is_some() {
            return true;
        }
        if full {
            self.counters.entries_dropped += 1;
            if g.star.is_none() && g.sources.is_empty() {
                self.groups.remove(&group);
            }
            return false;
        }
        g.star = Some(StarG {
            down: BTreeMap::new(),
            up: UpState::NotJoined,
            join_timer: None,
            upstream: None,
            upstream_by_assert: false,
            rp: None,
        });
        self.entries += 1;
        true
    }

    fn ensure_sg(&mut self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        let full = self.entries >= self.config.max_entries;
        let g = self.groups.entry(group).or_default();
        if g.sources.contains_key(&source) {
            return true;
        }
        if full {
            self.counters.entries_dropped += 1;
            if g.star.is_none() && g.sources.is_empty() {
                self.groups.remove(&group);
            }
            return false;
        }
        g.sources.insert(source, Sg::new());
        self.entries += 1;
        if self.by_source.entry(source).or_default().insert(group) {
            self.by_source_len += 1;
        }
        if self.by_source_len > 2 * self.config.max_entries.max(1024) {
            self.rebuild_by_source();
        }
        true
    }

    /// Rebuilds the source index from the state (its stale pairs went
    /// past twice the entry bound).
    fn rebuild_by_source(&mut self) {
        let mut idx: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for (g, gs) in &self.groups {
            for s in gs.sources.keys() {
                idx.entry(*s).or_default().insert(*g);
            }
        }
        for k in self.installed.keys() {
            if let Some(s) = k.source {
                idx.entry(s).or_default().insert(k.group);
            }
        }
        self.by_source_len = idx.values().map(BTreeSet::len).sum();
        self.by_source = idx;
    }

    /// Applies a downstream `(*,G)` or `(S,G)` event on `ifindex`.
    fn down_event(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        key: EntryKey,
        ifindex: u32,
        ev: DownEvent,
        out: &mut Out,
    ) {
        let ctx = Self::down_ctx(env, now, ifindex);
        let (group, slot) = match key {
            EntryKey::StarG(g) => {
                if matches!(ev, DownEvent::ReceiveJoin { .. }) && !self.ensure_star(g) {
                    return;
                }
                let Some(st) = self.groups.get_mut(&g).and_then(|s| s.star.as_mut()) else {
                    return;
                };
                (g, &mut st.down)
            }
            EntryKey::Sg(s, g) => {
                if matches!(ev, DownEvent::ReceiveJoin { .. }) && !self.ensure_sg(s, g) {
                    return;
                }
                let Some(sg) = self.groups.get_mut(&g).and_then(|x| x.sources.get_mut(&s)) else {
                    return;
                };
                (g, &mut sg.down)
            }
            EntryKey::SgRpt(..) => return,
        };
        let (state, timers) = slot
            .get(&ifindex)
            .map_or((DownState::NoInfo, DownTimers::default()), |d| {
                (d.state, d.timers)
            });
        let (next, nt, echo) = fsm::downstream(state, timers, ev, &ctx);
        if next != state {
            let (source, name) = match key {
                EntryKey::Sg(s, _) => (Some(s), "sg"),
                _ => (None, "star-g"),
            };
            let state_name = match next {
                DownState::NoInfo => "noinfo",
                DownState::Join => "join",
                DownState::PrunePending => "prune-pending",
            };
            out.push(join_event(
                env,
                ifindex,
                group_of(key),
                source,
                name,
                state_name,
            ));
        }
        if next == DownState::NoInfo {
            slot.remove(&ifindex);
        } else {
            slot.insert(
                ifindex,
                Downstream {
                    state: next,
                    timers: nt,
                },
            );
        }
        Self::sync_down_timers(key, ifindex, timers, nt, out);
        if echo {
            // 4.5.2: PruneEcho(*,G) / Prune(S,G) to ourselves on I, so
            // routers that did not override in time hear it.
            if let Some(me) = env.ifaces.get(&ifindex).and_then(PimIface::primary) {
                let up = Upstream {
                    ifindex,
                    neighbor: me,
                };
                let src = match key {
                    EntryKey::StarG(g) => self.rp_for(g).map(|rp| enc(rp, true, true)),
                    EntryKey::Sg(s, _) => Some(enc(s, false, false)),
                    EntryKey::SgRpt(..) => None,
                };
                if let Some(src) = src {
                    self.queue(up, group, src, false);
                }
            }
        }
        self.touched.insert(group);
    }

    #[allow(clippy::too_many_arguments)]
    fn rpt_event(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        source: Ipv4Addr,
        group: Ipv4Addr,
        ifindex: u32,
        ev: RptDownEvent,
        out: &mut Out,
    ) {
        let ctx = Self::down_ctx(env, now, ifindex);
        if matches!(ev, RptDownEvent::ReceivePruneRpt { .. }) && !self.ensure_sg(source, group) {
            return;
        }
        let Some(sg) = self
            .groups
            .get_mut(&group)
            .and_then(|x| x.sources.get_mut(&source))
        else {
            return;
        };
        let (state, timers) = sg
            .rpt_down
            .get(&ifindex)
            .map_or((RptDownState::NoInfo, DownTimers::default()), |d| {
                (d.state, d.timers)
            });
        let (next, nt) = fsm::downstream_rpt(state, timers, ev, &ctx);
        if next != state {
            let state_name = match next {
                RptDownState::NoInfo => "noinfo",
                RptDownState::Prune => "prune",
                RptDownState::PrunePending => "prune-pending",
                RptDownState::PruneTmp => "prune-tmp",
                RptDownState::PrunePendingTmp => "prune-pending-tmp",
            };
            out.push(join_event(
                env,
                ifindex,
                group,
                Some(source),
                "sg-rpt",
                state_name,
            ));
        }
        if next == RptDownState::NoInfo {
            sg.rpt_down.remove(&ifindex);
        } else {
            sg.rpt_down.insert(
                ifindex,
                Downstream {
                    state: next,
                    timers: nt,
                },
            );
        }
        Self::sync_down_timers(EntryKey::SgRpt(source, group), ifindex, timers, nt, out);
        self.touched.insert(group);
    }

    fn sync_down_timers(key: EntryKey, i: u32, old: DownTimers, new: DownTimers, out: &mut Out) {
        for (o, n, k) in [
            (
                old.expiry,
                new.expiry,
                PimTimer::Tree(TreeTimer::Expiry(key, i)),
            ),
            (
                old.prune_pending,
                new.prune_pending,
                PimTimer::Tree(TreeTimer::PrunePending(key, i)),
            ),
        ] {
            match (o, n) {
                (_, Some(at)) if o != n => out.push(Action::ArmTimer { key: k, at }),
                (Some(_), None) => out.push(Action::CancelTimer { key: k }),
                _ => {}
            }
        }
    }

    /// A received Join/Prune on `ifindex` from `source` (RFC 7761 sections
    /// 4.5.2-4.5.7; 4.5.1: addressed to us when the upstream neighbour
    /// field is one of our addresses on the interface).
    pub(crate) fn receive_jp(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        ifindex: u32,
        source: Ipv4Addr,
        jp: &JoinPrune,
        out: &mut Out,
    ) {
        let Some(ifc) = env.ifaces.get(&ifindex) else {
            return;
        };
        self.counters.jp_received += 1;
        if ifc.addresses.iter().any(|a| a.address == source) {
            self.counters.jp_own += 1;
            return;
        }
        // Only neighbours (Hello-learned or injected) take part in the
        // Join/Prune protocol on a link (RFC 7761 section 4.3: Hellos are
        // what make a router a neighbour); anything else is counted.
        if !ifc.neighbors.contains_key(&source)
            && !ifc
                .neighbors
                .values()
                .any(|n| n.secondary_addresses.contains(&source))
        {
            self.counters.jp_not_neighbor += 1;
            return;
        }
        let to_us = ifc
            .addresses
            .iter()
            .any(|a| a.address == jp.upstream_neighbor);
        let holdtime = (jp.holdtime != 0xffff).then(|| Duration::from_secs(jp.holdtime.into()));
        for grp in &jp.groups {
            let g = grp.group.addr;
            if grp.group.mask_len != 32 || !is_group(g) || grp.group.bidir {
                self.counters.bad_group += 1;
                continue;
            }
            if to_us {
                self.receive_group(env, now, ifindex, g, grp, holdtime, out);
            } else {
                let up = Upstream {
                    ifindex,
                    neighbor: jp.upstream_neighbor,
                };
                self.see_group(env, now, up, g, grp, holdtime, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_group(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        i: u32,
        g: Ipv4Addr,
        grp: &JoinPruneGroup,
        holdtime: Option<Duration>,
        out: &mut Out,
    ) {
        let rp = self.rp_for(g);
        // Joins first, then prunes, then End of Message (4.5.4).
        for s in &grp.joins {
            match classify(s) {
                Some(Entry::Star(addr)) => {
                    if rp != Some(addr) {
                        self.counters.rp_mismatch += 1;
                        continue;
                    }
                    self.down_event(
                        env,
                        now,
                        EntryKey::StarG(g),
                        i,
                        DownEvent::ReceiveJoin { holdtime },
                        out,
                    );
                    self.join_resets_lost_assert(env, now, EntryKey::StarG(g), i, out);
                    let srcs: Vec<Ipv4Addr> = self.groups.get(&g).map_or(Vec::new(), |x| {
                        x.sources
                            .iter()
                            .filter(|(_, sg)| sg.rpt_down.contains_key(&i))
                            .map(|(s, _)| *s)
                            .collect()
                    });
                    for s in srcs {
                        self.rpt_event(env, now, s, g, i, RptDownEvent::ReceiveJoinStarG, out);
                    }
                }
                Some(Entry::Sg(src)) => {
                    self.down_event(
                        env,
                        now,
                        EntryKey::Sg(src, g),
                        i,
                        DownEvent::ReceiveJoin { holdtime },
                        out,
                    );
                    self.join_resets_lost_assert(env, now, EntryKey::Sg(src, g), i, out);
                }
                Some(Entry::Rpt(src)) => {
                    self.rpt_event(env, now, src, g, i, RptDownEvent::ReceiveJoinRpt, out)
                }
                None => self.counters.bad_source += 1,
            }
        }
        for s in &grp.prunes {
            match classify(s) {
                Some(Entry::Star(addr)) => {
                    if rp != Some(addr) {
                        self.counters.rp_mismatch += 1;
                        continue;
                    }
                    self.down_event(
                        env,
                        now,
                        EntryKey::StarG(g),
                        i,
                        DownEvent::ReceivePrune,
                        out,
                    )
                }
                Some(Entry::Sg(src)) => self.down_event(
                    env,
                    now,
                    EntryKey::Sg(src, g),
                    i,
                    DownEvent::ReceivePrune,
                    out,
                ),
                Some(Entry::Rpt(src)) => self.rpt_event(
                    env,
                    now,
                    src,
                    g,
                    i,
                    RptDownEvent::ReceivePruneRpt { holdtime },
                    out,
                ),
                None => self.counters.bad_source += 1,
            }
        }
        let srcs: Vec<Ipv4Addr> = self.groups.get(&g).map_or(Vec::new(), |x| {
            x.sources
                .iter()
                .filter(|(_, sg)| {
                    sg.rpt_down.get(&i).is_some_and(|d| {
                        matches!(
                            d.state,
                            RptDownState::PruneTmp | RptDownState::PrunePendingTmp
                        )
                    })
                })
                .map(|(s, _)| *s)
                .collect()
        });
        for s in srcs {
            self.rpt_event(env, now, s, g, i, RptDownEvent::EndOfMessage, out);
        }
    }

    /// A Join/Prune for another router seen on `up.ifindex`: join
    /// suppression and prune override for entries whose RPF' is that
    /// router (sections 4.5.5-4.5.7).
    #[allow(clippy::too_many_arguments)]
    fn see_group(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        up: Upstream,
        g: Ipv4Addr,
        grp: &JoinPruneGroup,
        holdtime: Option<Duration>,
        out: &mut Out,
    ) {
        let hold = holdtime.unwrap_or(Duration::MAX);
        let list = grp
            .joins
            .iter()
            .map(|s| (s, true))
            .chain(grp.prunes.iter().map(|s| (s, false)));
        for (s, join) in list {
            let Some(entry) = classify(s) else {
                self.counters.bad_source += 1;
                continue;
            };
            let ctx = self.up_ctx(env, now, Some(up));
            let Some(gs) = self.groups.get_mut(&g) else {
                return;
            };
            match entry {
                Entry::Star(_) => {
                    if let Some(st) = gs.star.as_mut().filter(|st| st.upstream == Some(up)) {
                        let ev = if join {
                            UpEvent::SeeJoin { holdtime: hold }
                        } else {
                            UpEvent::SeePrune
                        };
                        let (state, jt, _) = fsm::upstream(st.up, st.join_timer, ev, &ctx);
                        st.up = state;
                        st.join_timer = jt;
                        if let Some(t) = jt {
                            Self::note_jt(&mut self.upstream_timers, up, t, out);
                        }
                    }
                }
                Entry::Sg(src) | Entry::Rpt(src) => {
                    let is_rpt = matches!(entry, Entry::Rpt(_));
                    let star_up = gs.star.as_ref().and_then(|st| st.upstream);
                    let Some(sg) = gs.sources.get_mut(&src) else {
                        continue;
                    };
                    // (S,G) upstream: See Join(S,G) suppresses, See
                    // Prune(S,G) / Prune(S,G,rpt) overrides (4.5.6).
                    if sg.upstream == Some(up) && (!is_rpt || !join) {
                        let ev = if join {
                            UpEvent::SeeJoin { holdtime: hold }
                        } else {
                            UpEvent::SeePrune
                        };
                        let (state, jt, _) = fsm::upstream(sg.up, sg.join_timer, ev, &ctx);
                        sg.up = state;
                        sg.join_timer = jt;
                        if let Some(t) = jt {
                            Self::note_jt(&mut self.upstream_timers, up, t, out);
                        }
                    }
                    // (S,G,rpt) upstream (4.5.7): RPF'(S,G,rpt) = RPF'(*,G).
                    if star_up == Some(up) {
                        let ev = match (is_rpt, join) {
                            (true, true) => Some(RptUpEvent::SeeJoinRpt),
                            (_, false) => Some(RptUpEvent::SeePrune),
                            (false, true) => None,
                        };
                        if let Some(ev) = ev {
                            let (state, ot, _) = fsm::upstream_rpt(
                                sg.rpt_up,
                                sg.override_timer,
                                ev,
                                now,
                                ctx.t_override,
                            );
                            sg.rpt_up = state;
                            Self::sync_ot(src, g, sg.override_timer, ot, out);
                            sg.override_timer = ot;
                        }
                    }
                }
            }
            self.touched.insert(g);
        }
    }

    fn sync_ot(
        s: Ipv4Addr,
        g: Ipv4Addr,
        old: Option<Timestamp>,
        new: Option<Timestamp>,
        out: &mut Out,
    ) {
        let key = PimTimer::Tree(TreeTimer::Override(s, g));
        match (old, new) {
            (_, Some(at)) if old != new => out.push(Action::ArmTimer { key, at }),
            (Some(_), None) => out.push(Action::CancelTimer { key }),
            _ => {}
        }
    }

    /// Brings the neighbour's packed-join timer forward to `t` if needed.
    fn note_jt(
        timers: &mut BTreeMap<Upstream, Timestamp>,
        up: Upstream,
        t: Timestamp,
        out: &mut Out,
    ) {
        let cur = timers.get(&up).copied();
        if cur.is_none_or(|c| t < c) {
            timers.insert(up, t);
            out.push(Action::ArmTimer {
                key: PimTimer::Tree(TreeTimer::Upstream(up)),
                at: t,
            });
        }
    }

    fn queue(&mut self, up: Upstream, g: Ipv4Addr, src: EncodedSource, join: bool) {
        let e = self.pending.entry(up).or_default().entry(g).or_default();
        let (list, other) = if join {
            (&mut e.0, &mut e.1)
        } else {
            (&mut e.1, &mut e.0)
        };
        // A later decision about the same entry replaces an earlier one.
        other.retain(|x| *x != src);
        if !list.contains(&src) {
            list.push(src);
        }
    }

    fn queue_sends(&mut self, sends: Vec<UpSend>, g: Ipv4Addr, src: EncodedSource) {
        for s in sends {
            match s {
                UpSend::Join(up) => self.queue(up, g, src, true),
                UpSend::Prune(up) => self.queue(up, g, src, false),
            }
        }
    }

    /// RPF' `up` restarted (new Generation ID): every entry joined toward
    /// it brings its Join Timer forward to t_override (4.5.5 / 4.5.6
    /// "RPF'(*,G) GenID changes").
    pub(crate) fn genid_changed(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        up: Upstream,
        out: &mut Out,
    ) {
        let ctx = self.up_ctx(env, now, Some(up));
        let mut earliest = None;
        for gs in self.groups.values_mut() {
            let star = gs
                .star
                .iter_mut()
                .map(|st| (&mut st.up, &mut st.join_timer, st.upstream));
            let sgs = gs
                .sources
                .values_mut()
                .map(|sg| (&mut sg.up, &mut sg.join_timer, sg.upstream));
            for (state, jt, target) in star.chain(sgs) {
                if target != Some(up) {
                    continue;
                }
                let (s, t, _) = fsm::upstream(*state, *jt, UpEvent::GenIdChanged, &ctx);
                *state = s;
                *jt = t;
                if let Some(t) = t {
                    earliest = Some(earliest.map_or(t, |e: Timestamp| e.min(t)));
                }
            }
        }
        if let Some(t) = earliest {
            Self::note_jt(&mut self.upstream_timers, up, t, out);
        }
    }

    /// Runs one Register machine step for `(s, g)` and carries out its
    /// action (section 4.4.1).
    fn register_event(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        s: Ipv4Addr,
        g: Ipv4Addr,
        ev: RegEvent,
        out: &mut Out,
    ) {
        let rp = self.rp_for(g);
        // rand(0.5, 1.5) x Register_Suppression_Time - Register_Probe_Time.
        let sup = self
            .rng
            .uniform_inclusive(REGISTER_SUPPRESSION_TIME / 2..=REGISTER_SUPPRESSION_TIME * 3 / 2)
            .saturating_sub(REGISTER_PROBE_TIME);
        let Some(sg) = self.groups.get_mut(&g).and_then(|x| x.sources.get_mut(&s)) else {
            return;
        };
        let (state, rst, action) = fsm::register(sg.register, sg.register_stop_timer, ev, now, sup);
        sg.register = state;
        let key = PimTimer::Tree(TreeTimer::RegisterStop(s, g));
        match rst {
            Some(at) if rst != sg.register_stop_timer => out.push(Action::ArmTimer { key, at }),
            None if sg.register_stop_timer.is_some() => out.push(Action::CancelTimer { key }),
            _ => {}
        }
        sg.register_stop_timer = rst;
        let (iif, _) = Self::sg_target(env, s);
        let name = iif.as_ref().map_or(String::new(), |i| i.name.to_string());
        let tunnel = |action: &'static str, rp: Option<Ipv4Addr>| {
            Action::Event(Event {
                category: EventCategory::Pim,
                kind: "register-tunnel",
                payload: PimEvent {
                    interface: name.clone(),
                    source: Some(s),
                    group: Some(g),
                    rp,
                    action: Some(action),
                    ..PimEvent::default()
                },
            })
        };
        match action {
            Some(RegAction::AddTunnel) => {
                sg.register_rp = rp;
                out.push(tunnel("add", rp));
            }
            Some(RegAction::UpdateTunnel) => {
                sg.register_rp = rp;
                out.push(tunnel("update", rp));
            }
            Some(RegAction::RemoveTunnel) => {
                out.push(tunnel("remove", sg.register_rp.take()));
            }
            Some(RegAction::SendNullRegister) => {
                if let Some(rp) = rp {
                    let via = env.route(rp).map(|r| r.interface.clone()).or(iif);
                    if let Some(interface) = via {
                        self.counters.null_registers_sent += 1;
                        out.push(Action::Send {
                            interface,
                            destination: rp,
                            message: PimMessage::Register(Register::null(s, g)),
                        });
                    }
                }
            }
            None => {}
        }
        self.touched.insert(g);
    }

    /// A Register-Stop from the RP (section 4.4.1).
    pub(crate) fn receive_register_stop(
        &mut self,
        _now: Timestamp,
        s: Ipv4Addr,
        g: Ipv4Addr,
        out: &mut Out,
    ) {
        self.counters.register_stops_received += 1;
        // Applied in `finish` (it needs the environment); remembered here.
        self.pending_stops.push((s, g));
        let _ = out;
    }

    /// A Register at the RP (section 4.4.2): answers with Register-Stop
    /// when we are not the RP for the group, when the SPTbit is set, or
    /// when nobody downstream wants the source; keeps the `(S,G)` Keepalive
    /// Timer running (so the RP joins toward the source,
    /// `SwitchToSptDesired` being true at the RP); counts the data the
    /// control plane should decapsulate and forward down the shared tree.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn receive_register(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        interface: &Interface,
        from: Ipv4Addr,
        destination: Ipv4Addr,
        reg: &Register,
        out: &mut Out,
    ) {
        self.counters.registers_received += 1;
        let Some((s, g)) = reg
            .inner_source_group()
            .filter(|(s, g)| is_unicast(*s) && is_group(*g))
        else {
            self.counters.bad_registers += 1;
            return;
        };
        let rp = self.rp_for(g);
        let via = env
            .route(from)
            .map_or_else(|| interface.clone(), |r| r.interface.clone());
        let stop = Action::Send {
            interface: via,
            destination: from,
            message: PimMessage::RegisterStop {
                group: g,
                source: s,
            },
        };
        if rp != Some(destination) || !self.i_am_rp(env, destination) {
            self.counters.register_stops_sent += 1;
            out.push(stop);
            return;
        }
        if !self.ensure_sg(s, g) {
            return;
        }
        let star_joins = self
            .groups
            .get(&g)
            .and_then(|x| x.star.as_ref())
            .is_some_and(|st| !st.down.is_empty());
        let local = self
            .local
            .range((g, 0)..=(g, u32::MAX))
            .any(|((_, i), (_, f))| env.is_dr(*i) && f.admits(s));
        let Some(sg) = self.groups.get_mut(&g).and_then(|x| x.sources.get_mut(&s)) else {
            return;
        };
        let inherited_empty = !star_joins && !local && sg.down.is_empty();
        let sent_stop = sg.spt_bit || inherited_empty;
        let spt_bit = sg.spt_bit;
        let at = now
            + if sent_stop {
                RP_KEEPALIVE_PERIOD
            } else {
                KEEPALIVE_PERIOD
            };
        sg.keepalive = Some(at);
        self.rp_sources_changed |= !sg.registered;
        sg.registered = true;
        out.push(Action::ArmTimer {
            key: PimTimer::Tree(TreeTimer::Keepalive(s, g)),
            at,
        });
        if sent_stop {
            self.counters.register_stops_sent += 1;
            out.push(stop);
        }
        if !spt_bit && !reg.null_register {
            self.counters.registers_to_forward += 1;
        }
        self.touched.insert(g);
    }

    /// CouldAssert(entry, I) as last reconciled (section 4.6.1).
    fn could(&self, key: EntryKey, i: u32) -> bool {
        let g = match key {
            EntryKey::StarG(g) | EntryKey::Sg(_, g) | EntryKey::SgRpt(_, g) => g,
        };
        self.could_assert
            .get(&g)
            .and_then(|m| m.get(&key))
            .is_some_and(|c| c.contains(&i))
    }

    /// my_assert_metric(entry, I) (section 4.6.1): the route toward S (or
    /// toward the RP for `(*,G)`, RPT bit set) when CouldAssert holds on I;
    /// `None` otherwise.
    fn my_metric(&self, env: &Env<'_>, key: EntryKey, i: u32) -> Option<AssertMetric> {
        if !self.could(key, i) {
            return None;
        }
        let address = env.ifaces.get(&i).and_then(PimIface::primary)?;
        let (toward, rpt) = match key {
            EntryKey::Sg(s, _) => (Some(s), false),
            EntryKey::StarG(g) => (self.rp_for(g), true),
            EntryKey::SgRpt(..) => return None,
        };
        let (preference, metric) = toward
            .and_then(|t| env.route(t))
            .map_or((0, 0), |r| (r.preference, r.metric));
        Some(AssertMetric {
            rpt,
            preference,
            metric,
            address,
        })
    }

    /// Runs one Assert step for `key` on interface `i` and carries out its
    /// effects (sections 4.6.1, 4.6.2).
    /// A Join to us on `i` for an entry that lost the Assert there: the
    /// Loser goes back to NoInfo (sections 4.6.1/4.6.2, A5).
    fn join_resets_lost_assert(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        key: EntryKey,
        i: u32,
        out: &mut Out,
    ) {
        if self
            .asserts
            .get(&(key, i))
            .is_some_and(|a| a.state == fsm::AssertState::Loser)
        {
            self.assert_event(env, now, key, i, AssertEvent::ReceiveJoin, out);
        }
    }

    fn assert_event(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        key: EntryKey,
        i: u32,
        ev: AssertEvent,
        out: &mut Out,
    ) {
        let (g, source) = match key {
            EntryKey::StarG(g) => (g, Ipv4Addr::UNSPECIFIED),
            EntryKey::Sg(s, g) => (g, s),
            EntryKey::SgRpt(..) => return,
        };
        let mine = self.my_metric(env, key, i);
        let old = self
            .asserts
            .get(&(key, i))
            .copied()
            .unwrap_or(AssertInfo::NONE);
        let (new, send) = fsm::assert_step(old, ev, mine, now);
        let tkey = PimTimer::Tree(TreeTimer::Assert(key, i));
        match new.timer {
            Some(at) if new.timer != old.timer => out.push(Action::ArmTimer { key: tkey, at }),
            None if old.timer.is_some() => out.push(Action::CancelTimer { key: tkey }),
            _ => {}
        }
        if new.state == AssertState::NoInfo {
            self.asserts.remove(&(key, i));
        } else if self.asserts.contains_key(&(key, i))
            || self.asserts.len() < self.config.max_entries
        {
            self.asserts.insert((key, i), new);
        }
        let interface = env.ifaces.get(&i).map(|x| x.config.interface.clone());
        if let (Some(send), Some(interface)) = (send, interface) {
            let rpt = matches!(key, EntryKey::StarG(_));
            let (metric_preference, metric) = match (send, mine) {
                (AssertSend::Assert, Some(m)) => (m.preference, m.metric),
                _ => (fsm::ASSERT_INFINITE_PREFERENCE, u32::MAX),
            };
            self.counters.asserts_sent += 1;
            out.push(Action::Send {
                interface,
                destination: ALL_PIM_ROUTERS,
                message: PimMessage::Assert(Assert {
                    group: g,
                    source,
                    rpt,
                    metric_preference,
                    metric,
                }),
            });
        }
        // A new winner while Loser moves RPF' (section 4.5.5: RPF' is the
        // Assert winner) as much as a new state does.
        let winner = |a: &AssertInfo| a.winner.map(|w| w.address);
        if new.state != old.state || winner(&new) != winner(&old) {
            self.touched.insert(g);
        }
    }

    /// An Assert received on `ifindex` from `from` (sections 4.6.1,
    /// 4.6.2): source 0.0.0.0, or an RPT-bit Assert for a source we hold no
    /// `(S,G)` state for, goes to the `(*,G)` machine.
    pub(crate) fn receive_assert(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        ifindex: u32,
        from: Ipv4Addr,
        a: &Assert,
        out: &mut Out,
    ) {
        if env.our_address(from) || !is_group(a.group) {
            self.counters.asserts_ignored += 1;
            return;
        }
        let sg = RouteKey::sg(a.source, a.group);
        let star_sg = EntryKey::StarG(a.group);
        let key = if !a.source.is_unspecified() && self.installed.contains_key(&sg) {
            EntryKey::Sg(a.source, a.group)
        } else if !a.source.is_unspecified()
            && !a.rpt
            && self.could(star_sg, ifindex)
            && self.ensure_sg(a.source, a.group)
        {
            // 4.6.1: an (S,G) Assert on an interface we forward S onto
            // through (*,G) only (AssertTrackingDesired(S,G,I) holds there).
            // Losing takes I out of inherited_olist(S,G,rpt)
            // (lost_assert(S,G,rpt), 4.1.6): an (S,G) entry carries it.
            self.touched.insert(a.group);
            EntryKey::Sg(a.source, a.group)
        } else if (a.source.is_unspecified() || a.rpt)
            && self.installed.contains_key(&RouteKey::star_g(a.group))
        {
            EntryKey::StarG(a.group)
        } else {
            self.counters.asserts_ignored += 1;
            return;
        };
        self.counters.asserts_received += 1;
        let m = AssertMetric {
            // An Assert for (*,G) (source 0) is an RPT metric whatever its
            // R bit says (RFC 7761 section 4.9.6: R is 1 for Assert(*,G));
            // taken as an SPT metric it would beat every real (*,G) metric.
            rpt: a.rpt || a.source.is_unspecified(),
            preference: a.metric_preference,
            metric: a.metric,
            address: from,
        };
        self.assert_event(env, now, key, ifindex, AssertEvent::ReceiveAssert(m), out);
    }

    /// The neighbour `winner` on `ifindex` went away or restarted (its
    /// Neighbor Liveness Timer expired, a goodbye Hello, or a new
    /// Generation ID): every Assert we lost to it there goes to NoInfo
    /// (sections 4.6.1, 4.6.2, "Current Winner's GenID changes or NLT
    /// expires"), so we forward again without waiting out Assert_Time.
    pub(crate) fn assert_winner_gone(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        ifindex: u32,
        winner: Ipv4Addr,
        out: &mut Out,
    ) {
        let lost: Vec<EntryKey> = self
            .asserts
            .iter()
            .filter(|((_, i), a)| {
                *i == ifindex
                    && a.state == AssertState::Loser
                    && a.winner.is_some_and(|w| w.address == winner)
            })
            .map(|((k, _), _)| *k)
            .collect();
        for key in lost {
            self.assert_event(env, now, key, ifindex, AssertEvent::WinnerGone, out);
        }
    }

    /// RPF' with asserts (section 4.1.6 `RPF'`): when we lost an Assert on
    /// the RPF interface, the winner is the upstream neighbour.
    fn assert_rpf(&self, key: EntryKey, t: Option<Upstream>) -> Option<Upstream> {
        t.map(|u| match self.asserts.get(&(key, u.ifindex)) {
            Some(AssertInfo {
                state: AssertState::Loser,
                winner: Some(w),
                ..
            }) => Upstream {
                neighbor: w.address,
                ..u
            },
            _ => u,
        })
    }

    /// After a group's routes are computed: CouldAssert per entry (its
    /// olist, and for `(S,G)` only on the SPT), CouldAssert -> False for
    /// winners, and `lost_assert` removes interfaces where we lost.
    fn assert_reconcile(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        g: Ipv4Addr,
        routes: &mut BTreeMap<RouteKey, Contribution>,
        spt: &BTreeSet<Ipv4Addr>,
        out: &mut Out,
    ) {
        let lo = EntryKey::StarG(g);
        let mut could: BTreeMap<EntryKey, BTreeSet<u32>> = BTreeMap::new();
        for (key, c) in routes.iter() {
            let ek = match key.source {
                None => lo,
                Some(s) if spt.contains(&s) => EntryKey::Sg(s, g),
                Some(_) => continue,
            };
            could.insert(ek, c.oifs.keys().map(|i| i.index).collect());
        }
        if could.is_empty() {
            self.could_assert.remove(&g);
        } else {
            self.could_assert.insert(g, could);
        }
        let states: Vec<((EntryKey, u32), AssertInfo)> = self
            .asserts
            .iter()
            .filter(|((k, _), _)| matches!(k, EntryKey::StarG(x) | EntryKey::Sg(_, x) if *x == g))
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((key, i), a) in states {
            let rk = match key {
                EntryKey::StarG(_) => RouteKey::star_g(g),
                EntryKey::Sg(s, _) => RouteKey::sg(s, g),
                EntryKey::SgRpt(..) => continue,
            };
            if !routes.contains_key(&rk) {
                // The entry is gone: so is its Assert state.
                self.asserts.remove(&(key, i));
                out.push(Action::CancelTimer {
                    key: PimTimer::Tree(TreeTimer::Assert(key, i)),
                });
                continue;
            }
            let could = self.could(key, i);
            if a.state == AssertState::Winner && !could {
                self.assert_event(env, now, key, i, AssertEvent::CouldAssertFalse, out);
            }
            // 4.6.1: a loser whose own metric became better (it joined the
            // SPT after losing with a (*,G) metric, or its route improved)
            // leaves the Loser state and asserts again on the next packet.
            if a.state == AssertState::Loser
                && self
                    .my_metric(env, key, i)
                    .zip(a.winner)
                    .is_some_and(|(m, w)| m.better_than(&w))
            {
                self.assert_event(env, now, key, i, AssertEvent::MyMetricBetter, out);
            }
        }
        // lost_assert: (S,G) losers leave the (S,G) olist; (*,G) losers
        // leave the (*,G) olist and the inherited part of (S,G) olists.
        for (key, c) in routes.iter_mut() {
            c.oifs.retain(|ifc, reason| {
                let i = ifc.index;
                let lost = |k: EntryKey| {
                    self.asserts
                        .get(&(k, i))
                        .is_some_and(|a| a.state == AssertState::Loser)
                };
                match key.source {
                    None => !lost(lo),
                    Some(s) => {
                        let inherited_lost = *reason == OifReason::Inherited && lost(lo);
                        !(lost(EntryKey::Sg(s, g)) || inherited_lost)
                    }
                }
            });
            for (ifc, reason) in c.oifs.iter_mut() {
                let k = match key.source {
                    None => lo,
                    Some(s) => EntryKey::Sg(s, g),
                };
                if self
                    .asserts
                    .get(&(k, ifc.index))
                    .is_some_and(|a| a.state == AssertState::Winner)
                    && *reason == OifReason::Inherited
                {
                    *reason = OifReason::AssertWinner;
                }
            }
        }
    }

    /// A timer of the tree fired.
    pub(crate) fn timer(&mut self, env: &Env<'_>, now: Timestamp, t: TreeTimer, out: &mut Out) {
        match t {
            TreeTimer::Expiry(EntryKey::SgRpt(s, g), i) => {
                self.rpt_event(env, now, s, g, i, RptDownEvent::ExpiryExpired, out)
            }
            TreeTimer::PrunePending(EntryKey::SgRpt(s, g), i) => {
                self.rpt_event(env, now, s, g, i, RptDownEvent::PrunePendingExpired, out)
            }
            TreeTimer::Expiry(key, i) => {
                self.down_event(env, now, key, i, DownEvent::ExpiryExpired, out)
            }
            TreeTimer::PrunePending(key, i) => {
                self.down_event(env, now, key, i, DownEvent::PrunePendingExpired, out)
            }
            TreeTimer::Upstream(up) => self.upstream_timer(env, now, up, out),
            TreeTimer::Override(s, g) => {
                if let Some(sg) = self.groups.get_mut(&g).and_then(|x| x.sources.get_mut(&s)) {
                    let (state, ot, send) = fsm::upstream_rpt(
                        sg.rpt_up,
                        sg.override_timer,
                        RptUpEvent::OverrideExpired,
                        now,
                        Duration::ZERO,
                    );
                    sg.rpt_up = state;
                    sg.override_timer = ot;
                    let star_up = self.groups[&g].star.as_ref().and_then(|st| st.upstream);
                    if let (Some(RptSend::Join), Some(up)) = (send, star_up) {
                        self.queue(up, g, enc(s, false, true), true);
                    }
                    self.touched.insert(g);
                }
            }
            TreeTimer::Assert(key, i) => {
                self.assert_event(env, now, key, i, AssertEvent::TimerExpired, out);
            }
            TreeTimer::RegisterStop(s, g) => {
                self.register_event(env, now, s, g, RegEvent::RegisterStopTimerExpired, out);
            }
            TreeTimer::Keepalive(s, g) => {
                if let Some(sg) = self.groups.get_mut(&g).and_then(|x| x.sources.get_mut(&s)) {
                    // 4.1.2: KAT expiry ends the (S,G) state's data-driven
                    // life (JoinDesired(S,G) may become false).
                    sg.keepalive = None;
                    sg.registered = false;
                    self.rp_sources_changed = true;
                    self.touched.insert(g);
                }
            }
        }
    }

    /// The packed periodic Join: every entry toward `up` whose Join Timer
    /// is due (within [`JOIN_PACK_WINDOW`]) fires its "Timer Expires" row
    /// (4.5.5/4.5.6); the `(S,G,rpt)` prunes of a joined `(*,G)` ride along
    /// (4.5.7: sent with each periodic Join(*,G)).
    fn upstream_timer(&mut self, env: &Env<'_>, now: Timestamp, up: Upstream, out: &mut Out) {
        self.upstream_timers.remove(&up);
        let horizon = now + JOIN_PACK_WINDOW;
        let ctx = self.up_ctx(env, now, Some(up));
        let mut next: Option<Timestamp> = None;
        let mut sends: Vec<(Ipv4Addr, EncodedSource, bool)> = Vec::new();
        for (g, gs) in self.groups.iter_mut() {
            if let Some(st) = gs.star.as_mut().filter(|st| st.upstream == Some(up)) {
                if st.join_timer.is_some_and(|t| t <= horizon) {
                    let (state, jt, s) =
                        fsm::upstream(st.up, st.join_timer, UpEvent::JoinTimerExpired, &ctx);
                    st.up = state;
                    st.join_timer = jt;
                    if !s.is_empty() {
                        if let Some(rp) = st.rp {
                            sends.push((*g, enc(rp, true, true), true));
                        }
                        for (src, sg) in &gs.sources {
                            if sg.rpt_up == RptUpState::Pruned {
                                sends.push((*g, enc(*src, false, true), false));
                            }
                        }
                    }
                }
                if let Some(t) = st.join_timer {
                    next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
                }
            }
            for (src, sg) in gs
                .sources
                .iter_mut()
                .filter(|(_, sg)| sg.upstream == Some(up))
            {
                if sg.join_timer.is_some_and(|t| t <= horizon) {
                    let (state, jt, s) =
                        fsm::upstream(sg.up, sg.join_timer, UpEvent::JoinTimerExpired, &ctx);
                    sg.up = state;
                    sg.join_timer = jt;
                    if !s.is_empty() {
                        sends.push((*g, enc(*src, false, false), true));
                    }
                }
                if let Some(t) = sg.join_timer {
                    next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
                }
            }
        }
        for (g, src, join) in sends {
            self.queue(up, g, src, join);
        }
        if let Some(t) = next {
            Self::note_jt(&mut self.upstream_timers, up, t, out);
        }
    }

    /// IGMP's local members of `group` on `interface` changed.
    pub(crate) fn local_members(
        &mut self,
        interface: Interface,
        group: Ipv4Addr,
        filter: SourceFilter,
    ) {
        if !is_group(group) {
            return;
        }
        let key = (group, interface.index);
        if filter.is_empty() {
            self.local.remove(&key);
        } else if self.local.contains_key(&key) || self.local.len() < self.config.max_entries {
            self.local.insert(key, (interface, filter));
        } else {
            self.counters.members_dropped += 1;
            return;
        }
        self.touched.insert(group);
    }

    /// An MSDP SA for `(source, group)` entered (`active`) or left the SA
    /// cache (RFC 3618 section 3). While active, the RP of `group` with
    /// `(*,G)` joins or local members holds `(S,G)` state with
    /// JoinDesired(S,G) as if its Keepalive Timer ran, so it joins toward
    /// S; once the SA is gone only traffic (the Keepalive Timer) keeps it.
    /// New sources past `max_entries` are dropped and counted in
    /// `entries_dropped`.
    pub(crate) fn source_active(&mut self, source: Ipv4Addr, group: Ipv4Addr, active: bool) {
        if !is_group(group) || !is_unicast(source) {
            return;
        }
        let key = (group, source);
        if !active {
            if self.sa_sources.remove(&key) {
                self.touched.insert(group);
            }
            return;
        }
        if self.sa_sources.contains(&key) {
            return;
        }
        if self.sa_sources.len() >= self.config.max_entries {
            self.counters.entries_dropped += 1;
            return;
        }
        self.sa_sources.insert(key);
        self.touched.insert(group);
    }

    /// Whether [`Tree::rp_sources`] may have changed without a route change
    /// since the last call; clears the flag.
    pub fn take_rp_sources_changed(&mut self) -> bool {
        std::mem::take(&mut self.rp_sources_changed)
    }

    /// The active sources of other domains (MSDP SAs), as (S, G).
    pub fn sa_sources(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.sa_sources.iter().map(|(g, s)| (*s, *g))
    }

    /// The sources of this domain the RP knows (RFC 3618 section 3: the
    /// sources an MSDP SA originates for), as (S, G): at the RP of G, `(S,G)`
    /// with a running Keepalive Timer that was registered to us, or whose S
    /// is directly connected on an interface where we are the DR.
    pub(crate) fn rp_sources(&self, env: &Env<'_>) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut v = Vec::new();
        for (g, gs) in &self.groups {
            if !self.rp_for(*g).is_some_and(|r| self.i_am_rp(env, r)) {
                continue;
            }
            for (s, sg) in &gs.sources {
                if sg.keepalive.is_none() {
                    continue;
                }
                let local = sg.registered
                    || matches!(Self::sg_target(env, *s), (Some(i), None) if env.is_dr(i.index));
                if local && !self.sa_sources.contains(&(*g, *s)) {
                    v.push((*s, *g));
                }
            }
        }
        v
    }

    /// A data-plane notice: starts or refreshes the Keepalive Timer of
    /// `(S,G)` (section 4.1.2) where the source's traffic is wanted: at the
    /// first-hop DR of a directly connected source, at the RP, or at a
    /// last-hop router with local receivers when `spt_switchover` is
    /// `immediate` (section 4.2.1 `SwitchToSptDesired`). Traffic arriving on
    /// the RPF interface toward S sets the SPTbit (section 4.2.2).
    pub(crate) fn data_plane(
        &mut self,
        env: &Env<'_>,
        now: Timestamp,
        interface: &Interface,
        source: Ipv4Addr,
        group: Ipv4Addr,
        out: &mut Out,
    ) {
        if !is_group(group) || !is_unicast(source) {
            return;
        }
        // 4.6.1 / 4.6.2: data on one of our outgoing interfaces.
        let i = interface.index;
        let sg_key = EntryKey::Sg(source, group);
        let star_key = EntryKey::StarG(group);
        if self.could(sg_key, i) {
            self.assert_event(env, now, sg_key, i, AssertEvent::DataOnOif, out);
            return;
        }
        if self.could(star_key, i) && !self.installed.contains_key(&RouteKey::sg(source, group)) {
            self.assert_event(env, now, star_key, i, AssertEvent::DataOnOif, out);
            return;
        }
        let (iif, sg_up) = Self::sg_target(env, source);
        let on_spt = iif.as_ref() == Some(interface);
        let connected = on_spt && sg_up.is_none();
        let first_hop = connected && env.is_dr(interface.index);
        let rp = self.rp_for(group);
        let at_rp = rp.is_some_and(|r| self.i_am_rp(env, r));
        let has_local = self
            .local
            .range((group, 0)..=(group, u32::MAX))
            .any(|((_, i), (_, f))| env.is_dr(*i) && f.mode == FilterMode::Exclude);
        let last_hop = has_local && self.config.spt_switchover == SptSwitchover::Immediate;
        let exists = self
            .groups
            .get(&group)
            .is_some_and(|g| g.sources.contains_key(&source));
        if !(first_hop || at_rp || last_hop || exists) {
            return;
        }
        if !self.ensure_sg(source, group) {
            return;
        }
        let Some(sg) = self
            .groups
            .get_mut(&group)
            .and_then(|x| x.sources.get_mut(&source))
        else {
            return;
        };
        if first_hop || at_rp || last_hop || sg.keepalive.is_some() {
            self.rp_sources_changed |= sg.keepalive.is_none() && at_rp;
            let at = now + KEEPALIVE_PERIOD;
            sg.keepalive = Some(at);
            out.push(Action::ArmTimer {
                key: PimTimer::Tree(TreeTimer::Keepalive(source, group)),
                at,
            });
        }
        // 4.2.2 Update_SPTbit: data on RPF_interface(S) while joined on the
        // SPT (or directly connected) sets the SPTbit.
        if on_spt && (sg.up == UpState::Joined || connected) {
            sg.spt_bit = true;
        }
        self.touched.insert(group);
    }

    /// Forgets state on interfaces that stopped running PIM.
    fn prune_gone_interfaces(&mut self, env: &Env<'_>, out: &mut Out) {
        for (g, gs) in self.groups.iter_mut() {
            let mut changed = false;
            if let Some(st) = gs.star.as_mut() {
                changed |= Self::drop_gone(&mut st.down, EntryKey::StarG(*g), env, out);
            }
            for (s, sg) in gs.sources.iter_mut() {
                changed |= Self::drop_gone(&mut sg.down, EntryKey::Sg(*s, *g), env, out);
                changed |= Self::drop_gone(&mut sg.rpt_down, EntryKey::SgRpt(*s, *g), env, out);
            }
            if changed {
                self.touched.insert(*g);
            }
        }
    }

    /// Removes the downstream state of `key` on interfaces no longer
    /// running PIM, cancelling their timers; whether anything went.
    fn drop_gone<S>(
        down: &mut BTreeMap<u32, Downstream<S>>,
        key: EntryKey,
        env: &Env<'_>,
        out: &mut Out,
    ) -> bool {
        let before = down.len();
        down.retain(|i, d| {
            let keep = env.ifaces.contains_key(i);
            if !keep {
                Self::sync_down_timers(key, *i, d.timers, DownTimers::default(), out);
            }
            keep
        });
        down.len() != before
    }

    /// End of an input: re-evaluates the touched groups (upstream machines
    /// and MRIB) and sends the queued Join/Prune messages.
    pub(crate) fn finish(&mut self, env: &Env<'_>, now: Timestamp, out: &mut Out) {
        for (s, g) in std::mem::take(&mut self.pending_stops) {
            self.register_event(env, now, s, g, RegEvent::RegisterStopReceived, out);
        }
        if self.all_touched {
            self.all_touched = false;
            self.prune_gone_interfaces(env, out);
            let all: Vec<Ipv4Addr> = self
                .groups
                .keys()
                .copied()
                .chain(self.local.keys().map(|k| k.0))
                .chain(self.installed.keys().map(|k| k.group))
                .collect();
            self.touched.extend(all);
        }
        let touched = std::mem::take(&mut self.touched);
        for g in touched {
            self.reconcile(env, now, g, out);
        }
        self.flush(env, out);
    }

    /// Section 4.1.6 macros for one group, the upstream machines' level
    /// events, the MRIB contributions and garbage collection.
    fn reconcile(&mut self, env: &Env<'_>, now: Timestamp, g: Ipv4Addr, out: &mut Out) {
        let rp = self.rp_for(g);
        // pim_include(*,G): DR and EXCLUDE-mode (any-source) members;
        // pim_include(S,G) / pim_exclude(S,G) from INCLUDE / EXCLUDE lists.
        let mut star_include: BTreeMap<u32, Interface> = BTreeMap::new();
        let mut sg_include: BTreeMap<Ipv4Addr, BTreeMap<u32, Interface>> = BTreeMap::new();
        let mut sg_exclude: BTreeMap<Ipv4Addr, BTreeSet<u32>> = BTreeMap::new();
        for ((_, i), (ifc, f)) in self.local.range((g, 0)..=(g, u32::MAX)) {
            if !env.is_dr(*i) {
                continue;
            }
            match f.mode {
                FilterMode::Exclude => {
                    if rp.is_some() {
                        star_include.insert(*i, ifc.clone());
                    }
                    for s in &f.sources {
                        sg_exclude.entry(*s).or_default().insert(*i);
                    }
                }
                FilterMode::Include => {
                    for s in &f.sources {
                        sg_include.entry(*s).or_default().insert(*i, ifc.clone());
                    }
                }
            }
        }
        if !star_include.is_empty() {
            self.ensure_star(g);
        }
        // RFC 3618 section 3: at the RP with receivers for G (joins(*,G) or
        // pim_include(*,G)), each active source of another domain gets
        // (S,G) state and a Join toward S.
        let at_rp = rp.is_some_and(|r| self.i_am_rp(env, r));
        let sa_sources: BTreeSet<Ipv4Addr> = if at_rp {
            self.sa_sources
                .range((g, Ipv4Addr::UNSPECIFIED)..=(g, Ipv4Addr::BROADCAST))
                .map(|(_, s)| *s)
                .collect()
        } else {
            BTreeSet::new()
        };
        let star_receivers = !star_include.is_empty()
            || self
                .groups
                .get(&g)
                .and_then(|x| x.star.as_ref())
                .is_some_and(|st| !st.down.is_empty());
        if star_receivers {
            for s in &sa_sources {
                self.ensure_sg(*s, g);
            }
        }
        // INCLUDE sources need (S,G) state, EXCLUDE sources (S,G,rpt)
        // state (4.1.6 pim_include / pim_exclude).
        for s in sg_include.keys().chain(sg_exclude.keys()) {
            self.ensure_sg(*s, g);
        }
        let Some(mut gs) = self.groups.remove(&g) else {
            self.write_mrib(g, BTreeMap::new(), out);
            return;
        };

        // (*,G).
        let (star_iif, star_target) = match rp {
            Some(r) => self.star_target(env, r),
            None => (None, None),
        };
        let star_unicast = star_target;
        let star_target = self.assert_rpf(EntryKey::StarG(g), star_target);
        let mut spt_sources: BTreeSet<Ipv4Addr> = BTreeSet::new();
        let star_joins: BTreeSet<u32> = gs
            .star
            .as_ref()
            .map_or(BTreeSet::new(), |st| st.down.keys().copied().collect());
        let mut routes: BTreeMap<RouteKey, Contribution> = BTreeMap::new();
        if let Some(mut st) = gs.star.take() {
            let jd = !(star_joins.is_empty() && star_include.is_empty());
            let ctx = self.up_ctx(env, now, star_target);
            let mut sends = Vec::new();
            // 4.5.5: RPF'(*,G) changes (or the RP changes) while Joined.
            if st.up == UpState::Joined && (st.upstream != star_target || st.rp != rp) {
                if let Some(old) = st.upstream {
                    if st.rp != rp {
                        if let Some(old_rp) = st.rp {
                            self.queue(old, g, enc(old_rp, true, true), false);
                        }
                        st.up = UpState::NotJoined;
                        st.join_timer = None;
                    } else {
                        let ev = if by_assert(old, st.upstream_by_assert, star_target, star_unicast)
                        {
                            UpEvent::RpfChangedByAssert
                        } else {
                            UpEvent::RpfChanged { old }
                        };
                        let (s, jt, x) = fsm::upstream(st.up, st.join_timer, ev, &ctx);
                        st.up = s;
                        st.join_timer = jt;
                        sends.extend(x);
                    }
                } else {
                    st.up = UpState::NotJoined;
                }
            }
            sends.extend(fsm::join_desired(
                &mut st.up,
                &mut st.join_timer,
                jd,
                st.upstream,
                &UpCtx {
                    target: star_target,
                    ..ctx
                },
            ));
            let rp_for_msg = if st.up == UpState::Joined {
                rp
            } else {
                st.rp.or(rp)
            };
            if let Some(r) = rp_for_msg {
                self.queue_sends(sends, g, enc(r, true, true));
            }
            if st.up == UpState::Joined {
                st.upstream = star_target;
                st.upstream_by_assert = star_target != star_unicast;
                st.rp = rp;
                if let (Some(up), Some(t)) = (st.upstream, st.join_timer) {
                    Self::note_jt(&mut self.upstream_timers, up, t, out);
                }
            } else {
                st.upstream = None;
                st.upstream_by_assert = false;
                st.rp = None;
            }
            if jd || st.up == UpState::Joined {
                // immediate_olist(*,G) = joins(*,G) + pim_include(*,G).
                let mut c = Contribution::new(star_iif.clone());
                c.rpf_neighbor = star_target.map(|u| u.neighbor);
                for i in &star_joins {
                    if let Some(ifc) = env.ifaces.get(i) {
                        c.oifs
                            .insert(ifc.config.interface.clone(), OifReason::PimJoin);
                    }
                }
                for ifc in star_include.values() {
                    c.oifs.entry(ifc.clone()).or_insert(OifReason::LocalMembers);
                }
                if let Some(iif) = &star_iif {
                    c.oifs.remove(iif);
                }
                routes.insert(RouteKey::star_g(g), c);
            }
            if st.down.is_empty() && st.up == UpState::NotJoined && !jd {
                self.entries -= 1;
            } else {
                gs.star = Some(st);
            }
        }
        let star_joined = gs.star.as_ref().is_some_and(|st| st.up == UpState::Joined);

        // (S,G) and (S,G,rpt).
        let sources: Vec<Ipv4Addr> = gs.sources.keys().copied().collect();
        for s in sources {
            let Some(mut sg) = gs.sources.remove(&s) else {
                continue;
            };
            let (sg_iif, sg_target) = Self::sg_target(env, s);
            let sg_unicast = sg_target;
            let sg_target = self.assert_rpf(EntryKey::Sg(s, g), sg_target);
            let joins: BTreeSet<u32> = sg.down.keys().copied().collect();
            let prunes_rpt: BTreeSet<u32> = sg
                .rpt_down
                .iter()
                .filter(|(_, d)| matches!(d.state, RptDownState::Prune | RptDownState::PruneTmp))
                .map(|(i, _)| *i)
                .collect();
            let excl = sg_exclude.get(&s).cloned().unwrap_or_default();
            let incl = sg_include.get(&s).cloned().unwrap_or_default();
            // inherited_olist(S,G,rpt) = (joins(*,G) - prunes(S,G,rpt)) +
            // (pim_include(*,G) - pim_exclude(S,G)).
            let mut inherited_rpt: BTreeSet<u32> =
                star_joins.difference(&prunes_rpt).copied().collect();
            inherited_rpt.extend(star_include.keys().filter(|i| !excl.contains(i)));
            // immediate_olist(S,G) = joins(S,G) + pim_include(S,G).
            let mut immediate: BTreeSet<u32> = joins.clone();
            immediate.extend(incl.keys());
            let inherited: BTreeSet<u32> = inherited_rpt.union(&immediate).copied().collect();
            // JoinDesired(S,G) = immediate_olist(S,G) != NULL OR
            // (KeepaliveTimer(S,G) running AND inherited_olist(S,G) != NULL);
            // an active SA at the RP counts as a running Keepalive Timer
            // (RFC 3618 section 3).
            let sa = sa_sources.contains(&s);
            let jd =
                !immediate.is_empty() || ((sg.keepalive.is_some() || sa) && !inherited.is_empty());
            let ctx = self.up_ctx(env, now, sg_target);
            let mut sends = Vec::new();
            if sg.up == UpState::Joined && sg.upstream != sg_target {
                if let Some(old) = sg.upstream {
                    let assert = by_assert(old, sg.upstream_by_assert, sg_target, sg_unicast);
                    let ev = if assert {
                        UpEvent::RpfChangedByAssert
                    } else {
                        UpEvent::RpfChanged { old }
                    };
                    let (st, jt, x) = fsm::upstream(sg.up, sg.join_timer, ev, &ctx);
                    sg.up = st;
                    sg.join_timer = jt;
                    sends.extend(x);
                    // Same RPF interface after an Assert: data still
                    // arrives where the SPTbit was set (section 4.2.2).
                    if !assert {
                        sg.spt_bit = false;
                    }
                }
            }
            sends.extend(fsm::join_desired(
                &mut sg.up,
                &mut sg.join_timer,
                jd,
                sg.upstream,
                &UpCtx {
                    target: sg_target,
                    ..ctx
                },
            ));
            self.queue_sends(sends, g, enc(s, false, false));
            if sg.up == UpState::Joined {
                sg.upstream = sg_target;
                sg.upstream_by_assert = sg_target != sg_unicast;
                if let (Some(up), Some(t)) = (sg.upstream, sg.join_timer) {
                    Self::note_jt(&mut self.upstream_timers, up, t, out);
                }
            } else {
                sg.upstream = None;
                sg.upstream_by_assert = false;
                sg.spt_bit = sg_target.is_none() && sg.spt_bit;
            }
            // 4.4.1: CouldRegister(S,G) = I_am_DR(RPF_interface(S)) AND
            // KeepaliveTimer(S,G) running AND DirectlyConnected(S), and not
            // the RP ourselves.
            let could = rp.is_some_and(|r| !self.i_am_rp(env, r))
                && sg.keepalive.is_some()
                && sg_target.is_none()
                && sg_iif.as_ref().is_some_and(|i| env.is_dr(i.index));
            let reg_ev = match (sg.register, could) {
                (RegState::NoInfo, true) => Some(RegEvent::CouldRegisterTrue),
                (RegState::NoInfo, false) => None,
                (_, false) => Some(RegEvent::CouldRegisterFalse),
                (RegState::Join, true) if sg.register_rp != rp => Some(RegEvent::RpChanged),
                (RegState::JoinPending | RegState::Prune, true)
                    if sg.register_rp != rp && sg.register_rp.is_some() =>
                {
                    Some(RegEvent::RpChanged)
                }
                _ => None,
            };
            if let Some(ev) = reg_ev {
                gs.sources.insert(s, sg);
                self.groups.insert(g, gs);
                self.register_event(env, now, s, g, ev, out);
                gs = self.groups.remove(&g).unwrap_or_default();
                sg = gs.sources.remove(&s).unwrap_or_else(Sg::new);
            }
            // 4.5.7: RPTJoinDesired(G) = JoinDesired(*,G); PruneDesired =
            // RPTJoinDesired(G) AND (inherited_olist(S,G,rpt) == NULL OR
            // (SPTbit AND RPF'(*,G) != RPF'(S,G))).
            let rjd = star_joined;
            let pd = rjd
                && (inherited_rpt.is_empty()
                    || (sg.spt_bit && star_target != sg_target && sg.up == UpState::Joined));
            let rev = match (sg.rpt_up, rjd, pd) {
                (RptUpState::Pruned | RptUpState::NotPruned, false, _) => {
                    Some(RptUpEvent::RptJoinDesiredFalse)
                }
                (RptUpState::RptNotJoined | RptUpState::NotPruned, true, true) => {
                    Some(RptUpEvent::PruneDesiredTrue)
                }
                (RptUpState::Pruned, true, false) => Some(RptUpEvent::PruneDesiredFalse),
                (RptUpState::RptNotJoined, true, false) if !inherited_rpt.is_empty() => {
                    Some(RptUpEvent::InheritedOlistNonEmpty)
                }
                _ => None,
            };
            if let Some(ev) = rev {
                let was = sg.rpt_up;
                let (st, ot, send) =
                    fsm::upstream_rpt(sg.rpt_up, sg.override_timer, ev, now, ctx.t_override);
                sg.rpt_up = st;
                Self::sync_ot(s, g, sg.override_timer, ot, out);
                sg.override_timer = ot;
                // RPTNotJoined -> Pruned sends nothing by itself: the
                // Prune(S,G,rpt) rides in the message carrying the
                // Join(*,G) that joined the shared tree (4.5.7, 4.5.8).
                let send = match (was, st, send) {
                    (RptUpState::RptNotJoined, RptUpState::Pruned, None) => Some(RptSend::Prune),
                    _ => send,
                };
                if let (Some(send), Some(up)) = (send, star_target) {
                    self.queue(up, g, enc(s, false, true), send == RptSend::Join);
                }
            }
            // MRIB: on the SPT (joined, SPTbit, connected source or no
            // shared tree) the iif is toward S with inherited_olist(S,G);
            // otherwise toward the RP with inherited_olist(S,G,rpt).
            let on_spt = sg.up == UpState::Joined
                || sg.spt_bit
                || (sg_iif.is_some() && sg_target.is_none())
                || star_iif.is_none() && !rjd;
            // Entries with no state left go (local INCLUDE members keep
            // theirs); only kept entries have a route.
            let asserted = self
                .asserts
                .range((EntryKey::Sg(s, g), 0)..=(EntryKey::Sg(s, g), u32::MAX))
                .next()
                .is_some();
            let keep = !sg.is_idle()
                || asserted
                || !incl.is_empty()
                || !excl.is_empty()
                || (sa && !inherited.is_empty());
            let wants = !inherited.is_empty()
                || asserted
                || !prunes_rpt.is_empty()
                || sg.keepalive.is_some()
                || sg.up == UpState::Joined;
            if keep && wants {
                if on_spt && (sg.spt_bit || sg_target.is_none()) {
                    spt_sources.insert(s);
                }
                let (iif, nbr, olist) = if on_spt {
                    (sg_iif.clone(), sg_target.map(|u| u.neighbor), &inherited)
                } else {
                    (
                        star_iif.clone(),
                        star_target.map(|u| u.neighbor),
                        &inherited_rpt,
                    )
                };
                let mut c = Contribution::new(iif.clone());
                c.rpf_neighbor = nbr;
                for i in olist {
                    let reason = if joins.contains(i) {
                        OifReason::PimJoin
                    } else if incl.contains_key(i) {
                        OifReason::LocalMembers
                    } else {
                        OifReason::Inherited
                    };
                    let ifc = env
                        .ifaces
                        .get(i)
                        .map(|x| x.config.interface.clone())
                        .or_else(|| incl.get(i).cloned())
                        .or_else(|| star_include.get(i).cloned());
                    if let Some(ifc) = ifc {
                        c.oifs.insert(ifc, reason);
                    }
                }
                if let Some(iif) = &iif {
                    c.oifs.remove(iif);
                }
                routes.insert(RouteKey::sg(s, g), c);
            }
            if keep {
                gs.sources.insert(s, sg);
            } else {
                self.entries -= 1;
            }
        }
        if gs.star.is_some() || !gs.sources.is_empty() {
            self.groups.insert(g, gs);
        }
        self.assert_reconcile(env, now, g, &mut routes, &spt_sources, out);
        self.write_mrib(g, routes, out);
    }

    /// Writes the group's `Origin::Pim` contributions, only what changed.
    fn write_mrib(&mut self, g: Ipv4Addr, routes: BTreeMap<RouteKey, Contribution>, out: &mut Out) {
        let old: Vec<RouteKey> = self
            .installed
            .range(RouteKey::star_g(g)..=RouteKey::sg(Ipv4Addr::BROADCAST, g))
            .map(|(k, _)| *k)
            .filter(|k| !routes.contains_key(k))
            .collect();
        for key in old {
            self.installed.remove(&key);
            out.push(Action::Mrib(MribUpdate::Remove {
                origin: Origin::Pim,
                key,
            }));
            out.push(route_event(key, "remove"));
        }
        for (key, c) in routes {
            if self.installed.get(&key) != Some(&c) {
                if !self.installed.contains_key(&key) {
                    out.push(route_event(key, "add"));
                }
                self.installed.insert(key, c.clone());
                out.push(Action::Mrib(MribUpdate::Set {
                    origin: Origin::Pim,
                    key,
                    contribution: c,
                }));
            }
        }
    }

    /// Sends the queued Join/Prune entries: one message per upstream
    /// neighbour, split only when it would pass [`TreeConfig::jp_mtu`].
    fn flush(&mut self, env: &Env<'_>, out: &mut Out) {
        let holdtime = self.config.jp_holdtime();
        let budget = self.config.jp_mtu.max(JP_FIXED + JP_GROUP + JP_SOURCE);
        for (up, groups) in std::mem::take(&mut self.pending) {
            let Some(ifc) = env.ifaces.get(&up.ifindex) else {
                continue;
            };
            let mut msgs: Vec<Vec<JoinPruneGroup>> = Vec::new();
            let mut cur: Vec<JoinPruneGroup> = Vec::new();
            let mut size = JP_FIXED;
            for (g, (joins, prunes)) in groups {
                let mut jg = JoinPruneGroup {
                    group: EncodedGroup::host(g),
                    joins: Vec::new(),
                    prunes: Vec::new(),
                };
                let mut open = false;
                for (src, join) in joins
                    .into_iter()
                    .map(|s| (s, true))
                    .chain(prunes.into_iter().map(|s| (s, false)))
                {
                    let need = JP_SOURCE + if open { 0 } else { JP_GROUP };
                    if size + need > budget || cur.len() == 255 {
                        if open {
                            cur.push(std::mem::replace(
                                &mut jg,
                                JoinPruneGroup {
                                    group: EncodedGroup::host(g),
                                    joins: Vec::new(),
                                    prunes: Vec::new(),
                                },
                            ));
                        }
                        msgs.push(std::mem::take(&mut cur));
                        size = JP_FIXED;
                        open = false;
                    }
                    if !open {
                        size += JP_GROUP;
                        open = true;
                    }
                    size += JP_SOURCE;
                    if join {
                        jg.joins.push(src);
                    } else {
                        jg.prunes.push(src);
                    }
                }
                if open {
                    cur.push(jg);
                }
            }
            if !cur.is_empty() {
                msgs.push(cur);
            }
            for groups in msgs {
                self.counters.jp_sent += 1;
                out.push(Action::Send {
                    interface: ifc.config.interface.clone(),
                    destination: ALL_PIM_ROUTERS,
                    message: PimMessage::JoinPrune(JoinPrune {
                        upstream_neighbor: up.neighbor,
                        holdtime,
                        groups,
                    }),
                });
            }
        }
    }
}

/// Whether RPF' moving from `old` to `new` is caused by an Assert (RFC
/// 7761 sections 4.5.5-4.5.6): on the same interface, and either the new
/// RPF' is an Assert winner (`new` differs from the unicast answer) or the
/// old one was and the unicast RPF' is back.
fn by_assert(
    old: Upstream,
    old_by_assert: bool,
    new: Option<Upstream>,
    unicast: Option<Upstream>,
) -> bool {
    new.is_some_and(|n| n.ifindex == old.ifindex) && (new != unicast || old_by_assert)
}
