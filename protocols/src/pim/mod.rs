//! PIM-SM (RFC 7761): neighbour discovery and DR election (section 4.3)
//! here, and the distribution trees in [`tree`] (Join/Prune, RP mapping,
//! Register, Keepalive and SPT switchover, Assert) on the pure state
//! machines of [`fsm`].
//!
//! [`Pim`] is a [`Protocol`] instance: per PIM interface it sends Hellos
//! (periodic, triggered, goodbye), keeps the neighbour table (learned from
//! Hellos or injected by an operator or an external routing daemon) and
//! elects the Designated Router; its [`Tree`] keeps the `(*,G)`, `(S,G)` and
//! `(S,G,rpt)` state, sends Join/Prune messages packed per upstream
//! neighbour, Registers, Register-Stops and Asserts, and writes
//! `Origin::Pim` routes as [`Action::Mrib`] updates. After every input, the
//! groups it touched are re-evaluated once (section 4.1.6 macros).
//!
//! # Inputs
//!
//! * [`Input::Config`] with a [`PimConfig`]: the complete desired state,
//!   interfaces (already resolved to kernel indexes by the control plane)
//!   and external neighbours. The instance applies only the difference: an
//!   interface whose settings did not change keeps its neighbours and its
//!   Generation ID; one whose settings changed applies them in place
//!   (triggered Hello, DR re-election); a removed one says goodbye.
//! * [`Input::AddressAdded`] / [`Input::AddressRemoved`]: the interface's
//!   addresses (the first one is the primary address, used in the DR
//!   election and as the Hello source; the others go in the Address List).
//! * [`Input::Packet`] with a [`PimMessage`]: a received message.
//! * [`Input::Timer`] with a [`PimTimer`].
//! * [`Input::InterfaceDown`]: like removing the interface (goodbye first).
//! * [`Input::Shutdown`]: goodbye (Holdtime 0) on every interface.
//! * [`Input::Rpf`]: recorded (last change per prefix, longest match
//!   wins); every group's RPF interface and RPF' are re-evaluated (an
//!   upstream join moves: 4.5.5/4.5.6 "RPF' changes").
//! * [`Input::LocalMembers`]: IGMP's members per interface and group; they
//!   count where we are the DR (`pim_include`, section 4.1.6).
//! * [`Input::DataPlane`]: `NewSource` / `Traffic` / `WrongInterface` notices start or
//!   refresh the `(S,G)` Keepalive Timer (first-hop DR, RP, last hop with
//!   `spt_switchover: immediate`), set the SPTbit when traffic arrives on
//!   the RPF interface toward S, and start Asserts when it arrives on an
//!   outgoing interface.
//!
//! # State machines
//!
//! The interface machine is `match (state, event)` in
//! `Pim::interface_event`; the neighbour machine in
//! `Pim::neighbor_event`. The tree machines are the pure functions of
//! [`fsm`] (downstream 4.5.2-4.5.4, upstream 4.5.5-4.5.7, Register 4.4.1,
//! Assert 4.6). Rows cite RFC 7761.
//!
//! # Events
//!
//! `neighbor-up`, `neighbor-down`, `neighbor-restart`, `dr-change`;
//! `join-state` (a downstream `(*,G)` / `(S,G)` / `(S,G,rpt)` state change on
//! an interface: `group`, `source`, `reason` = `star-g` / `sg` / `sg-rpt`,
//! `action` = the new state);
//! `route` (`action` = `add` / `remove` of a PIM route); `register-tunnel`
//! (`action` = `add` / `remove` / `update`, with `rp`).

pub mod fsm;
mod message;
pub mod tree;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tree_tests;

pub use message::{Assert, Hello, JoinPrune, LanPruneDelay, PimMessage, Register, RxError};
pub use tree::{SptSwitchover, StaticRp, Tree, TreeConfig, TreeTimer};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::io::{Action, ActionOf, Event, EventCategory, Input, InputOf, Protocol, RpfChange};
use crate::mrib::SourceFilter;
use crate::net::{IfAddr, Interface, Ipv4Prefix};
use crate::rng::Rng;
use crate::time::Timestamp;

/// ALL-PIM-ROUTERS, 224.0.0.13: Hellos are sent there with TTL 1 (RFC 7761
/// section 4.3.1).
pub const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
/// Hello_Period default, 30 s (RFC 7761 section 4.11).
pub const DEFAULT_HELLO_PERIOD: Duration = Duration::from_secs(30);
/// Triggered_Hello_Delay, 5 s (RFC 7761 section 4.11): the bound of the
/// random delay before a triggered Hello.
pub const TRIGGERED_HELLO_DELAY: Duration = Duration::from_secs(5);
/// Default_Hello_Holdtime, 105 s (RFC 7761 section 4.11): used for a
/// neighbour whose Hello has no Holdtime option.
pub const DEFAULT_HELLO_HOLDTIME: u16 = 105;
/// Holdtime value meaning "never time out" (RFC 7761 section 4.9.2).
pub const HOLDTIME_INFINITE: u16 = 0xffff;
/// Propagation_delay default, 500 ms (RFC 7761 section 4.11), advertised in
/// our LAN Prune Delay option.
pub const DEFAULT_PROPAGATION_DELAY_MS: u16 = 500;
/// t_override default, 2500 ms (RFC 7761 section 4.11), advertised in our
/// LAN Prune Delay option.
pub const DEFAULT_OVERRIDE_INTERVAL_MS: u16 = 2500;
/// Default bound of one interface's neighbour table (Hello-learned and
/// injected together), neighbours.
pub const DEFAULT_MAX_NEIGHBORS: usize = 1024;
/// Default DR priority (RFC 7761 section 4.9.2), also given to an injected
/// neighbour added without one.
pub const DEFAULT_DR_PRIORITY: u32 = 1;
/// Bound of the RPF changes remembered ([`Pim::rpf`]), prefixes.
pub const MAX_RPF_ENTRIES: usize = 65_536;

/// The Holdtime we advertise for `period`: 3.5 x Hello_Period (RFC 7761
/// section 4.11, Default_Hello_Holdtime), in seconds, capped at 65534 so it
/// never reads as "infinite".
pub fn holdtime_for(period: Duration) -> u16 {
    let secs = period.as_millis().saturating_mul(7) / 2000;
    u16::try_from(secs)
        .unwrap_or(HOLDTIME_INFINITE - 1)
        .min(HOLDTIME_INFINITE - 1)
}

/// One PIM interface as configured (names resolved to an index by the
/// control plane).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimInterfaceConfig {
    /// The interface.
    pub interface: Interface,
    /// Hello_Period (RFC 7761 section 4.11); 30 s by default.
    pub hello_period: Duration,
    /// Our DR priority on this interface (RFC 7761 section 4.3.2).
    pub dr_priority: u32,
    /// Propagation delay advertised in LAN Prune Delay, milliseconds.
    pub propagation_delay_ms: u16,
    /// Override interval advertised in LAN Prune Delay, milliseconds.
    pub override_interval_ms: u16,
}

impl PimInterfaceConfig {
    /// An interface with the RFC defaults (30 s period, priority 1, 500 ms
    /// propagation delay, 2500 ms override interval).
    pub fn new(interface: Interface) -> Self {
        PimInterfaceConfig {
            interface,
            hello_period: DEFAULT_HELLO_PERIOD,
            dr_priority: DEFAULT_DR_PRIORITY,
            propagation_delay_ms: DEFAULT_PROPAGATION_DELAY_MS,
            override_interval_ms: DEFAULT_OVERRIDE_INTERVAL_MS,
        }
    }

    fn same_settings(&self, other: &PimInterfaceConfig) -> bool {
        self.hello_period == other.hello_period
            && self.dr_priority == other.dr_priority
            && self.propagation_delay_ms == other.propagation_delay_ms
            && self.override_interval_ms == other.override_interval_ms
    }
}

/// A neighbour injected by an operator or an external routing daemon
/// (`mcrctl pim add-neighbor`): valid at once for DR election (and
/// Join/Prune later), never expires.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalNeighbor {
    /// Interface index it is on.
    pub ifindex: u32,
    /// Its address.
    pub address: Ipv4Addr,
    /// Its DR priority; [`DEFAULT_DR_PRIORITY`] when `None`.
    pub priority: Option<u32>,
    /// Free text naming who injected it.
    pub tag: Option<String>,
}

/// The whole desired PIM state: fed as [`Input::Config`] on start, reload,
/// interface changes and external-neighbour commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PimConfig {
    /// The PIM interfaces that exist and are up.
    pub interfaces: Vec<PimInterfaceConfig>,
    /// Injected neighbours (on interfaces not in `interfaces` they wait).
    pub external_neighbors: Vec<ExternalNeighbor>,
    /// Bound of each interface's neighbour table.
    pub max_neighbors_per_interface: usize,
    /// Trees: RP mappings, SPT switchover, t_periodic, bounds.
    pub tree: TreeConfig,
}

impl Default for PimConfig {
    fn default() -> Self {
        PimConfig {
            interfaces: Vec::new(),
            external_neighbors: Vec::new(),
            max_neighbors_per_interface: DEFAULT_MAX_NEIGHBORS,
            tree: TreeConfig::default(),
        }
    }
}

/// Timer keys of the PIM instance.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PimTimer {
    /// The Hello Timer of an interface (by index), RFC 7761 section 4.3.1.
    Hello(u32),
    /// The Neighbor Liveness Timer of a neighbour on an interface, RFC 7761
    /// section 4.3.2.
    NeighborExpiry(u32, Ipv4Addr),
    /// A timer of the tree state (RFC 7761 section 4.5).
    Tree(TreeTimer),
}

/// An event's details (`subscribe --events pim`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PimEvent {
    /// Interface name.
    pub interface: String,
    /// The neighbour concerned (neighbor-up, -down, -restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighbor: Option<Ipv4Addr>,
    /// Why (neighbor-down: `expired`, `goodbye`, `removed`,
    /// `interface-down`; neighbor-up: `hello`, `injected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The neighbour's new Generation ID (neighbor-up, neighbor-restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<u32>,
    /// The previous Generation ID (neighbor-restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_generation_id: Option<u32>,
    /// The DR after the change (dr-change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dr: Option<Ipv4Addr>,
    /// The DR before the change (dr-change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_dr: Option<Ipv4Addr>,
    /// The source of the (S,G) concerned (register-tunnel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    /// The group concerned (register-tunnel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Ipv4Addr>,
    /// The RP concerned (register-tunnel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rp: Option<Ipv4Addr>,
    /// What happened (register-tunnel: `add`, `remove`, `update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
}

/// Per-interface counters (messages, and received messages not used, by
/// reason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PimCounters {
    /// Hellos sent (goodbyes included).
    pub hellos_sent: u64,
    /// Hellos with Holdtime 0 sent.
    pub goodbyes_sent: u64,
    /// Valid Hellos received and used.
    pub hellos_received: u64,
    /// Hellos with Holdtime 0 received.
    pub goodbyes_received: u64,
    /// Dropped: the PIM checksum did not verify.
    pub bad_checksum: u64,
    /// Dropped: truncated message or option (length past the packet).
    pub truncated: u64,
    /// Dropped: PIM version other than 2.
    pub bad_version: u64,
    /// Dropped: known option of the wrong size, bad encoded address.
    pub bad_option: u64,
    /// Dropped: unknown message type.
    pub unknown_type: u64,
    /// Dropped: Hello from an address not on the interface's subnets
    /// (RFC 7761 section 4.3.1 neighbours are directly connected).
    pub wrong_subnet: u64,
    /// Dropped: our own Hello looped back.
    pub own: u64,
    /// Ignored: valid message of a type not handled yet (Join/Prune,
    /// Assert, ...).
    pub unhandled_type: u64,
    /// Unknown Hello options skipped (the Hello itself is used).
    pub unknown_options: u64,
    /// Dropped: a Hello from a new neighbour while the table was full.
    pub neighbor_table_full: u64,
}

/// How a neighbour became known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LearnedBy {
    /// From its Hellos only.
    Hello,
    /// Injected only.
    Injected,
    /// Injected and sending Hellos.
    Both,
}

/// A neighbour on one interface (RFC 7761 section 4.3.2's per-neighbour
/// state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Its (primary) address: the IP source of its Hellos.
    pub address: Ipv4Addr,
    /// When it was first seen (Hello or injection).
    pub since: Timestamp,
    /// Whether its Hellos keep it (the Hello half of [`LearnedBy`]).
    pub hello: bool,
    /// Its injection, if injected.
    pub injected: Option<ExternalNeighbor>,
    /// When the Neighbor Liveness Timer expires; `None` for never
    /// (Holdtime 0xFFFF, or injected only).
    pub expires: Option<Timestamp>,
    /// The Holdtime of its last Hello, seconds.
    pub holdtime: Option<u16>,
    /// The DR Priority option of its last Hello (`None`: absent).
    pub hello_priority: Option<u32>,
    /// Its Generation ID (last Hello).
    pub generation_id: Option<u32>,
    /// Its LAN Prune Delay option (last Hello).
    pub lan_prune_delay: Option<LanPruneDelay>,
    /// Its secondary addresses (Address List option).
    pub secondary_addresses: Vec<Ipv4Addr>,
}

impl Neighbor {
    /// How it was learned.
    pub fn learned_by(&self) -> LearnedBy {
        match (self.hello, self.injected.is_some()) {
            (true, true) => LearnedBy::Both,
            (false, true) => LearnedBy::Injected,
            _ => LearnedBy::Hello,
        }
    }

    /// The DR priority used in the election: the Hello's option when it
    /// sends Hellos, else the injected priority (default 1). `None` means
    /// the neighbour's Hellos omit the option (RFC 7761 section 4.3.2).
    pub fn dr_priority(&self) -> Option<u32> {
        if self.hello {
            self.hello_priority
        } else {
            Some(
                self.injected
                    .as_ref()
                    .and_then(|i| i.priority)
                    .unwrap_or(DEFAULT_DR_PRIORITY),
            )
        }
    }
}

/// The state of one PIM interface.
#[derive(Clone, Debug)]
pub struct PimIface {
    /// Its configuration.
    pub config: PimInterfaceConfig,
    /// Our addresses on it, the primary first.
    pub addresses: Vec<IfAddr>,
    /// Our Generation ID on it (random per start, RFC 7761 section 4.3.1).
    pub generation_id: u32,
    /// When the Hello Timer fires next.
    pub next_hello: Timestamp,
    /// The neighbour table, by address.
    pub neighbors: BTreeMap<Ipv4Addr, Neighbor>,
    /// The elected DR (`None` without any address here or there).
    pub dr: Option<Ipv4Addr>,
    /// Counters.
    pub counters: PimCounters,
    /// When PIM started on it.
    pub since: Timestamp,
    /// A triggered Hello is due (new or restarted neighbour, start,
    /// address change) and not sent yet: a Join/Prune on this interface
    /// sends it first (RFC 7761 4.3.1), or a restarted neighbour, not
    /// knowing us yet, drops the Join.
    hello_owed: bool,
    rng: Rng,
}

impl PimIface {
    /// Our primary address, if the interface has one.
    pub fn primary(&self) -> Option<Ipv4Addr> {
        self.addresses.first().map(|a| a.address)
    }

    /// Whether we are the DR.
    pub fn is_dr(&self) -> bool {
        self.dr.is_some() && self.dr == self.primary()
    }
}

/// Interface-level events of the interface state machine.
#[derive(Debug)]
enum IfEvent {
    /// Enabled (config) or up.
    Start(PimInterfaceConfig),
    /// Settings changed.
    Reconfigure(PimInterfaceConfig),
    /// Disabled (config) or down.
    Stop,
    /// The Hello Timer fired.
    HelloTimer,
    /// An address was added or removed (`true` if the primary changed).
    AddressChange,
}

/// Neighbour-level events of the neighbour state machine.
#[derive(Debug)]
enum NbrEvent<'a> {
    /// A valid Hello from it arrived.
    Hello(&'a Hello),
    /// Its Neighbor Liveness Timer expired.
    Expiry,
    /// Injected (or its injection changed).
    Inject(ExternalNeighbor),
    /// Its injection was removed.
    Uninject,
}

/// The PIM instance. See the module documentation.
#[derive(Debug)]
pub struct Pim {
    rng: Rng,
    ifaces: BTreeMap<u32, PimIface>,
    external: Vec<ExternalNeighbor>,
    max_neighbors: usize,
    rpf: BTreeMap<Ipv4Prefix, RpfChange>,
    not_pim_interface: u64,
    tree: Tree,
}

type Out = Vec<ActionOf<Pim>>;

/// Per interface (index, primary address, DR, neighbour count), and each
/// neighbour's Generation ID.
type TreeSnapshot = (
    Vec<(u32, Option<Ipv4Addr>, bool, usize)>,
    BTreeMap<(u32, Ipv4Addr), Option<u32>>,
);

impl Pim {
    /// A stopped instance; `rng` draws Generation IDs and triggered-Hello
    /// delays (seed it from the OS in the daemon, with a constant in tests).
    pub fn new(mut rng: Rng) -> Self {
        let tree = Tree::new(rng.fork());
        Pim {
            rng,
            tree,
            ifaces: BTreeMap::new(),
            external: Vec::new(),
            max_neighbors: DEFAULT_MAX_NEIGHBORS,
            rpf: BTreeMap::new(),
            not_pim_interface: 0,
        }
    }

    /// The running interfaces, by index.
    pub fn interfaces(&self) -> &BTreeMap<u32, PimIface> {
        &self.ifaces
    }

    /// The external neighbours as last configured.
    pub fn external_neighbors(&self) -> &[ExternalNeighbor] {
        &self.external
    }

    /// PIM messages received on interfaces where PIM does not run.
    pub fn not_pim_interface(&self) -> u64 {
        self.not_pim_interface
    }

    /// The tree state (join state, routes, RP mappings).
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Whether [`Pim::rp_sources`] may have changed without a route event
    /// (a first Register at the RP, a Keepalive Timer start or expiry there)
    /// since the last call; clears the flag.
    pub fn take_rp_sources_changed(&mut self) -> bool {
        self.tree.take_rp_sources_changed()
    }

    /// The sources of this domain we are the RP for and know (registered
    /// to us, or directly connected where we are the DR), as (S, G): what
    /// MSDP originates SAs for (RFC 3618 section 3).
    pub fn rp_sources(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let env = tree::Env {
            ifaces: &self.ifaces,
            rpf: &self.rpf,
        };
        self.tree.rp_sources(&env)
    }

    /// What the tree machines see of interfaces, DRs and neighbours; a
    /// change re-evaluates every group.
    fn tree_snapshot(&self) -> TreeSnapshot {
        let ifs = self
            .ifaces
            .iter()
            .map(|(i, ifc)| (*i, ifc.primary(), ifc.is_dr(), ifc.neighbors.len()))
            .collect();
        let gens = self
            .ifaces
            .iter()
            .flat_map(|(i, ifc)| {
                ifc.neighbors
                    .values()
                    .map(move |n| ((*i, n.address), n.generation_id))
            })
            .collect();
        (ifs, gens)
    }

    /// The last RPF change recorded per prefix.
    pub fn rpf(&self) -> &BTreeMap<Ipv4Prefix, RpfChange> {
        &self.rpf
    }

    fn event(out: &mut Out, kind: &'static str, payload: PimEvent) {
        out.push(Action::Event(Event {
            category: EventCategory::Pim,
            kind,
            payload,
        }));
    }

    /// Builds and queues our Hello on `ifc` (RFC 7761 section 4.9.2).
    fn send_hello(ifc: &mut PimIface, holdtime: u16, out: &mut Out) {
        let hello = Hello {
            holdtime: Some(holdtime),
            dr_priority: Some(ifc.config.dr_priority),
            generation_id: Some(ifc.generation_id),
            lan_prune_delay: Some(LanPruneDelay {
                t_bit: false,
                propagation_delay_ms: ifc.config.propagation_delay_ms,
                override_interval_ms: ifc.config.override_interval_ms,
            }),
            secondary_addresses: ifc.addresses.iter().skip(1).map(|a| a.address).collect(),
            unknown_options: 0,
        };
        ifc.counters.hellos_sent += 1;
        ifc.hello_owed = false;
        if holdtime == 0 {
            ifc.counters.goodbyes_sent += 1;
        }
        out.push(Action::Send {
            interface: ifc.config.interface.clone(),
            destination: ALL_PIM_ROUTERS,
            message: PimMessage::Hello(hello),
        });
    }

    /// RFC 7761 section 4.3.1: "a triggered Hello ... after a random delay
    /// between 0 and Triggered_Hello_Delay"; only ever brings the Hello
    /// Timer forward.
    fn trigger_hello(now: Timestamp, ifc: &mut PimIface, out: &mut Out) {
        let at = now
            + ifc
                .rng
                .uniform_inclusive(Duration::ZERO..=TRIGGERED_HELLO_DELAY);
        ifc.hello_owed = true;
        if at < ifc.next_hello {
            ifc.next_hello = at;
            out.push(Action::ArmTimer {
                key: PimTimer::Hello(ifc.config.interface.index),
                at,
            });
        }
    }

    /// RFC 7761 section 4.3.2, DR election: the highest DR priority wins,
    /// ties broken by the highest address; if any neighbour omits the DR
    /// Priority option, the highest address wins. Emits `dr-change`.
    fn elect_dr(ifc: &mut PimIface, out: &mut Out) {
        let me = ifc.primary();
        let all_have_priority = ifc.neighbors.values().all(|n| n.dr_priority().is_some());
        let mut candidates: Vec<(u32, Ipv4Addr)> = ifc
            .neighbors
            .values()
            .map(|n| (n.dr_priority().unwrap_or(0), n.address))
            .collect();
        if let Some(me) = me {
            candidates.push((ifc.config.dr_priority, me));
        }
        let dr = if all_have_priority {
            candidates.iter().max().map(|c| c.1)
        } else {
            candidates.iter().map(|c| c.1).max()
        };
        if dr != ifc.dr {
            let previous = ifc.dr;
            ifc.dr = dr;
            Self::event(
                out,
                "dr-change",
                PimEvent {
                    interface: ifc.config.interface.name.to_string(),
                    dr,
                    previous_dr: previous,
                    ..PimEvent::default()
                },
            );
        }
    }

    /// The interface state machine. The state is "absent" (PIM not running
    /// on it) or "running" ([`PimIface`]).
    fn interface_event(&mut self, now: Timestamp, ifindex: u32, ev: IfEvent, out: &mut Out) {
        let state = self.ifaces.remove(&ifindex);
        let next = match (state, ev) {
            // RFC 7761 4.3.1: on start, a fresh random Generation ID and a
            // first Hello after a random delay in [0, Triggered_Hello_Delay].
            (None, IfEvent::Start(config)) => {
                let mut rng = self.rng.fork();
                let generation_id = rng.next_u32();
                let mut ifc = PimIface {
                    config,
                    addresses: Vec::new(),
                    generation_id,
                    next_hello: Timestamp::MAX,
                    neighbors: BTreeMap::new(),
                    dr: None,
                    counters: PimCounters::default(),
                    since: now,
                    hello_owed: false,
                    rng,
                };
                out.push(Action::Join {
                    interface: ifc.config.interface.clone(),
                    group: ALL_PIM_ROUTERS,
                    filter: SourceFilter::any_source(),
                });
                Self::trigger_hello(now, &mut ifc, out);
                // Injected neighbours waiting for this interface.
                for ext in self.external.iter().filter(|e| e.ifindex == ifindex) {
                    Self::neighbor_event(
                        now,
                        &mut ifc,
                        ext.address,
                        NbrEvent::Inject(ext.clone()),
                        self.max_neighbors,
                        out,
                    );
                }
                Self::elect_dr(&mut ifc, out);
                Some(ifc)
            }
            // Settings changed (reload): applied in place, neighbours and
            // Generation ID kept; the new values are announced by a
            // triggered Hello (4.3.1) and may move the DR (4.3.2).
            (Some(mut ifc), IfEvent::Reconfigure(config)) => {
                let period_changed = config.hello_period != ifc.config.hello_period;
                ifc.config = config;
                if period_changed {
                    // Never wait longer than the new period.
                    let cap = now + ifc.config.hello_period;
                    if ifc.next_hello > cap {
                        ifc.next_hello = cap;
                        out.push(Action::ArmTimer {
                            key: PimTimer::Hello(ifindex),
                            at: cap,
                        });
                    }
                }
                Self::trigger_hello(now, &mut ifc, out);
                Self::elect_dr(&mut ifc, out);
                Some(ifc)
            }
            // RFC 7761 4.3.1: Hello Timer expires -> send Hello, restart the
            // timer at Hello_Period.
            (Some(mut ifc), IfEvent::HelloTimer) => {
                let holdtime = holdtime_for(ifc.config.hello_period);
                Self::send_hello(&mut ifc, holdtime, out);
                ifc.next_hello = now + ifc.config.hello_period;
                out.push(Action::ArmTimer {
                    key: PimTimer::Hello(ifindex),
                    at: ifc.next_hello,
                });
                Some(ifc)
            }
            // RFC 7761 4.3.1: an address change triggers a Hello (after the
            // random delay) so neighbours learn the new address list; the
            // primary address may change the DR.
            (Some(mut ifc), IfEvent::AddressChange) => {
                Self::trigger_hello(now, &mut ifc, out);
                Self::elect_dr(&mut ifc, out);
                Some(ifc)
            }
            // RFC 7761 4.3.1: "Before an interface goes down or changes
            // primary IP address, a Hello message with a zero HoldTime
            // should be sent immediately". Neighbours are forgotten.
            (Some(mut ifc), IfEvent::Stop) => {
                Self::send_hello(&mut ifc, 0, out);
                out.push(Action::CancelTimer {
                    key: PimTimer::Hello(ifindex),
                });
                for (addr, _) in std::mem::take(&mut ifc.neighbors) {
                    out.push(Action::CancelTimer {
                        key: PimTimer::NeighborExpiry(ifindex, addr),
                    });
                    Self::event(
                        out,
                        "neighbor-down",
                        PimEvent {
                            interface: ifc.config.interface.name.to_string(),
                            neighbor: Some(addr),
                            reason: Some("interface-down"),
                            ..PimEvent::default()
                        },
                    );
                }
                out.push(Action::Leave {
                    interface: ifc.config.interface.clone(),
                    group: ALL_PIM_ROUTERS,
                });
                None
            }
            // Start of a running interface: treated as a reconfiguration.
            (Some(ifc), IfEvent::Start(config)) => {
                self.ifaces.insert(ifindex, ifc);
                return self.interface_event(now, ifindex, IfEvent::Reconfigure(config), out);
            }
            // Anything else on an interface where PIM does not run: nothing.
            (None, IfEvent::Reconfigure(_) | IfEvent::Stop)
            | (None, IfEvent::HelloTimer | IfEvent::AddressChange) => None,
        };
        if let Some(ifc) = next {
            self.ifaces.insert(ifindex, ifc);
        }
    }

    /// The neighbour state machine on one interface. States: absent,
    /// Hello-learned, injected, both (the two flags of [`Neighbor`]).
    fn neighbor_event(
        now: Timestamp,
        ifc: &mut PimIface,
        addr: Ipv4Addr,
        ev: NbrEvent<'_>,
        max_neighbors: usize,
        out: &mut Out,
    ) {
        let ifindex = ifc.config.interface.index;
        let name = ifc.config.interface.name.to_string();
        let state = ifc.neighbors.remove(&addr);
        let ev_payload = |reason: Option<&'static str>, gen: Option<u32>| PimEvent {
            interface: name.clone(),
            neighbor: Some(addr),
            reason,
            generation_id: gen,
            ..PimEvent::default()
        };
        let next = match (state, ev) {
            // RFC 7761 4.3.1: Holdtime 0 from an unknown sender: nothing to
            // remove.
            (None, NbrEvent::Hello(h)) if h.holdtime == Some(0) => None,
            // RFC 7761 4.3.2: a Hello from a new neighbour creates it (if
            // the table has room: bounded, counted) and starts its Neighbor
            // Liveness Timer; 4.3.1: a new neighbour triggers a Hello.
            (None, NbrEvent::Hello(h)) => {
                if ifc.neighbors.len() >= max_neighbors {
                    ifc.counters.neighbor_table_full += 1;
                    None
                } else {
                    let mut n = Neighbor {
                        address: addr,
                        since: now,
                        hello: true,
                        injected: None,
                        expires: None,
                        holdtime: None,
                        hello_priority: None,
                        generation_id: None,
                        lan_prune_delay: None,
                        secondary_addresses: Vec::new(),
                    };
                    Self::apply_hello(now, ifindex, &mut n, h, out);
                    Self::event(
                        out,
                        "neighbor-up",
                        ev_payload(Some("hello"), h.generation_id),
                    );
                    Self::trigger_hello(now, ifc, out);
                    Some(n)
                }
            }
            // RFC 7761 4.3.1/4.3.2: Holdtime 0 is a goodbye: the neighbour
            // is removed at once. An injected one stays, injected only.
            (Some(mut n), NbrEvent::Hello(h)) if h.holdtime == Some(0) => {
                out.push(Action::CancelTimer {
                    key: PimTimer::NeighborExpiry(ifindex, addr),
                });
                if n.injected.is_some() {
                    n.hello = false;
                    n.expires = None;
                    Some(n)
                } else {
                    Self::event(out, "neighbor-down", ev_payload(Some("goodbye"), None));
                    None
                }
            }
            // RFC 7761 4.3.1: a Hello with a new Generation ID means the
            // neighbour restarted: its state is refreshed and a triggered
            // Hello goes out so it learns about us at once.
            (Some(mut n), NbrEvent::Hello(h)) => {
                let was_hello = n.hello;
                let old_gen = n.generation_id;
                n.hello = true;
                Self::apply_hello(now, ifindex, &mut n, h, out);
                match (was_hello, old_gen, h.generation_id) {
                    (true, Some(old), Some(new)) if old != new => {
                        Self::event(
                            out,
                            "neighbor-restart",
                            PimEvent {
                                previous_generation_id: Some(old),
                                ..ev_payload(None, Some(new))
                            },
                        );
                        Self::trigger_hello(now, ifc, out);
                    }
                    // An injected neighbour's first Hello: now Hello-learned
                    // too; it is new to the Hello protocol (4.3.1).
                    (false, _, _) => {
                        Self::event(
                            out,
                            "neighbor-up",
                            ev_payload(Some("hello"), h.generation_id),
                        );
                        Self::trigger_hello(now, ifc, out);
                    }
                    _ => {}
                }
                Some(n)
            }
            // RFC 7761 4.3.2: Neighbor Liveness Timer expired: remove it,
            // unless it is also injected (injected ones never expire).
            (Some(mut n), NbrEvent::Expiry) => {
                if n.injected.is_some() {
                    n.hello = false;
                    n.expires = None;
                    Some(n)
                } else {
                    Self::event(out, "neighbor-down", ev_payload(Some("expired"), None));
                    None
                }
            }
            (None, NbrEvent::Expiry) => None,
            // Injection: valid at once, no timer (never expires). Bounded
            // like Hello-learned ones (the control plane checks first).
            (None, NbrEvent::Inject(ext)) => {
                if ifc.neighbors.len() >= max_neighbors {
                    ifc.counters.neighbor_table_full += 1;
                    None
                } else {
                    Self::event(out, "neighbor-up", ev_payload(Some("injected"), None));
                    Some(Neighbor {
                        address: addr,
                        since: now,
                        hello: false,
                        injected: Some(ext),
                        expires: None,
                        holdtime: None,
                        hello_priority: None,
                        generation_id: None,
                        lan_prune_delay: None,
                        secondary_addresses: Vec::new(),
                    })
                }
            }
            (Some(mut n), NbrEvent::Inject(ext)) => {
                n.injected = Some(ext);
                Some(n)
            }
            // Removing an injection: a neighbour that also sends Hellos
            // stays, Hello-learned; an injected-only one goes.
            (Some(mut n), NbrEvent::Uninject) => {
                n.injected = None;
                if n.hello {
                    Some(n)
                } else {
                    Self::event(out, "neighbor-down", ev_payload(Some("removed"), None));
                    None
                }
            }
            (None, NbrEvent::Uninject) => None,
        };
        if let Some(n) = next {
            ifc.neighbors.insert(addr, n);
        }
        Self::elect_dr(ifc, out);
    }

    /// Records a Hello's options on a neighbour and restarts its Neighbor
    /// Liveness Timer at the Hello's Holdtime (RFC 7761 section 4.3.2);
    /// 0xFFFF never expires.
    fn apply_hello(now: Timestamp, ifindex: u32, n: &mut Neighbor, h: &Hello, out: &mut Out) {
        let holdtime = h.holdtime.unwrap_or(DEFAULT_HELLO_HOLDTIME);
        n.holdtime = Some(holdtime);
        n.hello_priority = h.dr_priority;
        n.generation_id = h.generation_id;
        n.lan_prune_delay = h.lan_prune_delay;
        n.secondary_addresses.clone_from(&h.secondary_addresses);
        n.secondary_addresses.truncate(64);
        let key = PimTimer::NeighborExpiry(ifindex, n.address);
        if holdtime == HOLDTIME_INFINITE {
            n.expires = None;
            out.push(Action::CancelTimer { key });
        } else {
            let at = now + Duration::from_secs(u64::from(holdtime));
            n.expires = Some(at);
            out.push(Action::ArmTimer { key, at });
        }
    }

    fn receive(&mut self, now: Timestamp, pkt: crate::io::Packet<PimMessage>, out: &mut Out) {
        let ifindex = pkt.interface.index;
        let max = self.max_neighbors;
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            self.not_pim_interface += 1;
            return;
        };
        let c = &mut ifc.counters;
        match pkt.message {
            PimMessage::Malformed(e) => match e {
                RxError::Truncated => c.truncated += 1,
                RxError::BadChecksum => c.bad_checksum += 1,
                RxError::BadVersion => c.bad_version += 1,
                RxError::BadOption => c.bad_option += 1,
                RxError::UnknownType => c.unknown_type += 1,
            },
            PimMessage::Other { .. } => c.unhandled_type += 1,
            // Handled by the tree before this point.
            PimMessage::JoinPrune(_)
            | PimMessage::Register(_)
            | PimMessage::RegisterStop { .. }
            | PimMessage::Assert(_) => {}
            PimMessage::Hello(h) => {
                if ifc.addresses.iter().any(|a| a.address == pkt.source) {
                    c.own += 1;
                    return;
                }
                // RFC 7761 4.3.1: neighbours are directly connected.
                if !ifc.addresses.iter().any(|a| a.on_subnet(pkt.source)) {
                    c.wrong_subnet += 1;
                    return;
                }
                c.hellos_received += 1;
                c.unknown_options += u64::from(h.unknown_options);
                if h.holdtime == Some(0) {
                    c.goodbyes_received += 1;
                }
                Self::neighbor_event(now, ifc, pkt.source, NbrEvent::Hello(&h), max, out);
            }
        }
    }

    fn apply_config(&mut self, now: Timestamp, cfg: PimConfig, out: &mut Out) {
        self.max_neighbors = cfg.max_neighbors_per_interface;
        // Interfaces gone: goodbye.
        let gone: Vec<u32> = self
            .ifaces
            .keys()
            .copied()
            .filter(|i| !cfg.interfaces.iter().any(|c| c.interface.index == *i))
            .collect();
        for i in gone {
            self.interface_event(now, i, IfEvent::Stop, out);
        }
        // External neighbours: diff by (interface, address).
        let old = std::mem::take(&mut self.external);
        self.external = cfg.external_neighbors;
        for o in &old {
            if !self
                .external
                .iter()
                .any(|e| e.ifindex == o.ifindex && e.address == o.address)
            {
                if let Some(ifc) = self.ifaces.get_mut(&o.ifindex) {
                    Self::neighbor_event(
                        now,
                        ifc,
                        o.address,
                        NbrEvent::Uninject,
                        self.max_neighbors,
                        out,
                    );
                }
            }
        }
        for e in self.external.clone() {
            if old.contains(&e) {
                continue;
            }
            if let Some(ifc) = self.ifaces.get_mut(&e.ifindex) {
                let addr = e.address;
                Self::neighbor_event(now, ifc, addr, NbrEvent::Inject(e), self.max_neighbors, out);
            }
        }
        // New and changed interfaces.
        for c in cfg.interfaces {
            let i = c.interface.index;
            match self.ifaces.get(&i) {
                None => self.interface_event(now, i, IfEvent::Start(c), out),
                Some(ifc) if !ifc.config.same_settings(&c) => {
                    self.interface_event(now, i, IfEvent::Reconfigure(c), out)
                }
                Some(_) => {}
            }
        }
    }
}

impl Protocol for Pim {
    type Message = PimMessage;
    type Timer = PimTimer;
    type Config = PimConfig;
    type Event = PimEvent;

    fn handle(&mut self, now: Timestamp, input: InputOf<Self>, out: &mut Vec<ActionOf<Self>>) {
        let before = self.tree_snapshot();
        self.handle_inner(now, input, out);
        let after = self.tree_snapshot();
        let env = tree::Env {
            ifaces: &self.ifaces,
            rpf: &self.rpf,
        };
        if after != before {
            self.tree.touch_all();
            // 4.5.5/4.5.6: a neighbour's new Generation ID. A neighbour
            // that went away (goodbye, expiry) and says Hello again is the
            // same case: a restarted RPF' has lost our Join state, and
            // the unicast RPF kept it RPF' meanwhile, so no RPF' change
            // would send one before t_periodic.
            for (k, g) in &after.1 {
                let restarted = match before.1.get(k) {
                    Some(old) => old.is_some() && old != g,
                    None => g.is_some(),
                };
                if restarted {
                    let up = fsm::Upstream {
                        ifindex: k.0,
                        neighbor: k.1,
                    };
                    self.tree.genid_changed(&env, now, up, out);
                }
            }
            // 4.6.1 / 4.6.2: an Assert winner whose Neighbor Liveness
            // Timer expired (or that said goodbye) or whose Generation ID
            // changed no longer holds the LAN: its losers forget it.
            for (k, old) in &before.1 {
                let gone = match after.1.get(k) {
                    None => true,
                    Some(g) => old.is_some() && g != old,
                };
                if gone {
                    self.tree.assert_winner_gone(&env, now, k.0, k.1, out);
                }
            }
        }
        self.tree.finish(&env, now, out);
        self.hello_before_join_prune(out);
    }
}

impl Pim {
    /// RFC 7761 4.3.1: "If a router needs to send a Join/Prune or Assert
    /// message on an interface on which it has not yet sent a Hello ...
    /// it MUST immediately send the relevant Hello message ... followed by
    /// the Join/Prune or Assert message." Applied while a triggered Hello
    /// is owed: a neighbour that just restarted (new Generation ID) or
    /// appeared does not know us yet and drops our J/P (FRR does), so the
    /// triggered Join of 4.5.5-4.5.7 would be lost until t_periodic.
    fn hello_before_join_prune(&mut self, out: &mut Out) {
        let mut at = 0;
        while at < out.len() {
            let ifindex = match &out[at] {
                Action::Send {
                    interface,
                    message: PimMessage::JoinPrune(_) | PimMessage::Assert(_),
                    ..
                } => interface.index,
                _ => {
                    at += 1;
                    continue;
                }
            };
            if let Some(ifc) = self.ifaces.get_mut(&ifindex).filter(|i| i.hello_owed) {
                let mut hello = Vec::with_capacity(1);
                let holdtime = holdtime_for(ifc.config.hello_period);
                Self::send_hello(ifc, holdtime, &mut hello);
                out.splice(at..at, hello);
                at += 1;
            }
            at += 1;
        }
    }
}

impl Pim {
    fn handle_inner(&mut self, now: Timestamp, input: InputOf<Self>, out: &mut Out) {
        match input {
            Input::Config(cfg) => {
                self.tree.set_config(cfg.tree.clone());
                self.apply_config(now, cfg, out)
            }
            Input::Packet(crate::io::Packet {
                interface,
                source,
                message: PimMessage::JoinPrune(jp),
                ..
            }) => {
                if !self.ifaces.contains_key(&interface.index) {
                    self.not_pim_interface += 1;
                    return;
                }
                let env = tree::Env {
                    ifaces: &self.ifaces,
                    rpf: &self.rpf,
                };
                self.tree
                    .receive_jp(&env, now, interface.index, source, &jp, out);
            }
            Input::Packet(crate::io::Packet {
                interface,
                source,
                destination,
                message: PimMessage::Register(reg),
                ..
            }) => {
                let env = tree::Env {
                    ifaces: &self.ifaces,
                    rpf: &self.rpf,
                };
                self.tree
                    .receive_register(&env, now, &interface, source, destination, &reg, out);
            }
            Input::Packet(crate::io::Packet {
                interface,
                source,
                message: PimMessage::Assert(a),
                ..
            }) => {
                if !self.ifaces.contains_key(&interface.index) {
                    self.not_pim_interface += 1;
                    return;
                }
                let env = tree::Env {
                    ifaces: &self.ifaces,
                    rpf: &self.rpf,
                };
                self.tree
                    .receive_assert(&env, now, interface.index, source, &a, out);
            }
            Input::Packet(crate::io::Packet {
                message: PimMessage::RegisterStop { group, source },
                ..
            }) => {
                self.tree.receive_register_stop(now, source, group, out);
            }
            Input::Timer(PimTimer::Tree(t)) => {
                let env = tree::Env {
                    ifaces: &self.ifaces,
                    rpf: &self.rpf,
                };
                self.tree.timer(&env, now, t, out);
            }
            Input::Packet(pkt) => self.receive(now, pkt, out),
            Input::Timer(PimTimer::Hello(i)) => {
                self.interface_event(now, i, IfEvent::HelloTimer, out)
            }
            Input::Timer(PimTimer::NeighborExpiry(i, addr)) => {
                let max = self.max_neighbors;
                if let Some(ifc) = self.ifaces.get_mut(&i) {
                    Self::neighbor_event(now, ifc, addr, NbrEvent::Expiry, max, out);
                }
            }
            Input::AddressAdded { interface, address } => {
                if let Some(ifc) = self.ifaces.get_mut(&interface.index) {
                    if ifc.addresses.contains(&address) {
                        return;
                    }
                    ifc.addresses.push(address);
                    self.interface_event(now, interface.index, IfEvent::AddressChange, out);
                }
            }
            Input::AddressRemoved { interface, address } => {
                if let Some(ifc) = self.ifaces.get_mut(&interface.index) {
                    let before = ifc.addresses.len();
                    ifc.addresses.retain(|a| *a != address);
                    if ifc.addresses.len() != before {
                        self.interface_event(now, interface.index, IfEvent::AddressChange, out);
                    }
                }
            }
            Input::InterfaceDown(interface) => {
                self.interface_event(now, interface.index, IfEvent::Stop, out)
            }
            // Interfaces start through Config (which says with what
            // settings); an Up alone carries none.
            Input::InterfaceUp(_) => {}
            Input::Rpf(change) => {
                if self.rpf.len() < MAX_RPF_ENTRIES || self.rpf.contains_key(&change.prefix) {
                    let prefix = change.prefix;
                    self.rpf.insert(prefix, change);
                    self.tree.touch_prefix(prefix);
                }
            }
            Input::Shutdown => {
                let all: Vec<u32> = self.ifaces.keys().copied().collect();
                for i in all {
                    self.interface_event(now, i, IfEvent::Stop, out);
                }
            }
            Input::LocalMembers {
                interface,
                group,
                filter,
            } => self.tree.local_members(interface, group, filter),
            Input::SourceActive {
                source,
                group,
                active,
            } => self.tree.source_active(source, group, active),
            Input::DataPlane(
                crate::io::DataPlaneNotice::NewSource {
                    interface,
                    source,
                    group,
                }
                | crate::io::DataPlaneNotice::WrongInterface {
                    interface,
                    source,
                    group,
                }
                | crate::io::DataPlaneNotice::Traffic {
                    interface,
                    source,
                    group,
                },
            ) => {
                let env = tree::Env {
                    ifaces: &self.ifaces,
                    rpf: &self.rpf,
                };
                self.tree
                    .data_plane(&env, now, &interface, source, group, out);
            }
        }
    }
}
