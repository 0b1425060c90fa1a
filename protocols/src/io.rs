//! What goes into a protocol instance ([`Input`]) and what comes out
//! ([`Action`]), and the [`Protocol`] trait that joins them.
//!
//! Inputs and actions are plain data: the control plane turns sockets,
//! netlink messages, the clock and its own timer set into inputs, and turns
//! actions into socket sends, `IP_ADD_MEMBERSHIP` calls, MRIB updates, events
//! on the bus and timer-set changes. A protocol never sees any of those
//! things, which is what lets tests drive it through hours of protocol time
//! with a [`crate::ManualClock`].

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::mrib::{MribUpdate, SourceFilter};
use crate::net::{IfAddr, Interface, Ipv4Prefix};
use crate::time::Timestamp;

/// A parsed control packet as it reached us, generic over the protocol's
/// message type `M` (a `wire` crate `Repr`, e.g. an IGMP or PIM message).
///
/// The control plane has already checked what the socket and the `wire`
/// parser can check (checksum, lengths); the protocol checks meaning (e.g. a
/// PIM Hello's source on the interface's subnet; an
/// IGMPv3 report with Router Alert, RFC 3376 section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<M> {
    /// Interface the packet arrived on.
    pub interface: Interface,
    /// IP source address.
    pub source: Ipv4Addr,
    /// IP destination address (e.g. 224.0.0.13 for PIM Hellos, the group
    /// for an IGMP group-specific query).
    pub destination: Ipv4Addr,
    /// IP TTL as received.
    pub ttl: u8,
    /// Whether the IP header carried the Router Alert option (RFC 2113).
    pub router_alert: bool,
    /// The parsed message.
    pub message: M,
}

/// The best unicast route toward a source prefix, as an RPF provider answers
/// it (kernel FIB, static table or an external provider).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RpfRoute {
    /// Upstream (RPF) interface: where traffic from the prefix should arrive.
    pub interface: Interface,
    /// Upstream neighbour (next hop); `None` when the prefix is directly
    /// connected.
    pub neighbor: Option<Ipv4Addr>,
    /// Route metric (unitless, lower is better); PIM Assert's `metric`
    /// (RFC 7761 section 4.6 `assert_metric`).
    pub metric: u32,
    /// Metric preference (administrative distance, lower is better); PIM
    /// Assert's `metric_preference` (RFC 7761 section 4.6).
    pub preference: u32,
}

/// A change of the RPF answer for a source prefix. The consumer re-resolves
/// every source inside `prefix` (longest match wins among what it holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RpfChange {
    /// The source prefix whose route changed.
    pub prefix: Ipv4Prefix,
    /// The new route; `None` when the prefix became unreachable.
    pub route: Option<RpfRoute>,
}

/// Something the data plane (or the kernel's mroute upcalls) noticed and
/// punted to the control plane. Sent over a bounded channel and dropped,
/// counted, when the control plane is busy, so a protocol must not rely on
/// seeing every one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DataPlaneNotice {
    /// Traffic from `source` to `group` arrived on `interface` and no route
    /// matched (kernel `IGMPMSG_NOCACHE`): at a first-hop DR this starts
    /// registering (RFC 7761 section 4.4.1).
    NewSource {
        /// Arrival interface.
        interface: Interface,
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
    },
    /// Packets of an existing `(S,G)` route kept arriving on `interface`
    /// (the data plane's or the kernel's per-route counters moved since the
    /// last look, e.g. `SIOCGETSGCNT`): refreshes PIM's Keepalive Timer
    /// (RFC 7761 section 4.1.2), which NOCACHE alone cannot do once the
    /// route is installed. Send at most about once a minute per route.
    Traffic {
        /// Arrival interface.
        interface: Interface,
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
    },
    /// Traffic for a route arrived on an interface other than its iif
    /// (kernel `IGMPMSG_WRONGVIF`): on an outgoing interface it triggers an
    /// Assert (RFC 7761 section 4.6).
    WrongInterface {
        /// Interface the packet arrived on.
        interface: Interface,
        /// IP source.
        source: Ipv4Addr,
        /// Destination group.
        group: Ipv4Addr,
    },
}

/// One input to a protocol instance.
///
/// Type parameters: `M` the protocol's message type, `T` its timer key, `C`
/// its configuration type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<M, T, C> {
    /// A control packet received.
    Packet(Packet<M>),
    /// A timer armed by an earlier [`Action::ArmTimer`] reached its deadline
    /// (it is no longer armed).
    Timer(T),
    /// The interface came up (or the protocol was enabled on it).
    InterfaceUp(Interface),
    /// The interface went down (or the protocol was disabled on it).
    InterfaceDown(Interface),
    /// An address was added to an interface.
    AddressAdded {
        /// The interface.
        interface: Interface,
        /// The address and its prefix length.
        address: IfAddr,
    },
    /// An address was removed from an interface.
    AddressRemoved {
        /// The interface.
        interface: Interface,
        /// The address and its prefix length.
        address: IfAddr,
    },
    /// The configuration changed (reload or runtime command); the new
    /// complete configuration of this protocol. The protocol applies only the
    /// difference (DESIGN.md "Declarative reload").
    Config(C),
    /// The RPF answer for a source prefix changed.
    Rpf(RpfChange),
    /// The local members of a group on an interface changed (IGMP's state as
    /// stored in the MRIB, [`crate::Mrib::set_local_members`]); `filter` is
    /// `INCLUDE {}` when the last member left. PIM's local receivers
    /// (RFC 7761 section 4.1).
    LocalMembers {
        /// The interface.
        interface: Interface,
        /// The group.
        group: Ipv4Addr,
        /// The merged filter of the members there.
        filter: SourceFilter,
    },
    /// A data-plane notice.
    DataPlane(DataPlaneNotice),
    /// An active source learned from another domain (an MSDP SA accepted
    /// into the SA cache, RFC 3618 section 3; `active: false` when its
    /// SA-State timer ran out). At the RP of `group` with `(*,G)` joins or
    /// local members, PIM creates `(S,G)` state and joins toward `source`
    /// (RFC 3618 section 3, RFC 7761 section 4.5.6) while the SA is active.
    SourceActive {
        /// S.
        source: Ipv4Addr,
        /// G.
        group: Ipv4Addr,
        /// Whether the SA is in the cache (false: it expired).
        active: bool,
    },
    /// The daemon is stopping: say goodbye where the RFC asks (e.g. a PIM
    /// Hello with Holdtime 0, RFC 7761 section 4.3.1; an IGMPv2 Leave of
    /// proxied groups, RFC 4605). Further inputs are not
    /// expected.
    Shutdown,
}

/// Event categories, as `subscribe --events CATEGORY` selects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventCategory {
    /// IGMP: join, leave, querier change, compatibility-mode change.
    Igmp,
    /// PIM: neighbour up/down, DR change, RPF change, join/prune state,
    /// route add/remove.
    Pim,
    /// MSDP: peer up/down, SA learned/expired.
    Msdp,
    /// MRIB route changes (any origin).
    Mroute,
}

/// An event for the control socket's event bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event<E> {
    /// Which subscribers see it.
    pub category: EventCategory,
    /// Short kebab-case kind within the category, e.g. `"neighbor-up"`.
    pub kind: &'static str,
    /// Protocol-specific details; serialised to JSON by the control plane.
    pub payload: E,
}

/// One thing a protocol instance asks the control plane to do. Executed in
/// the order the protocol pushed them.
///
/// Type parameters: `M` the protocol's message type, `T` its timer key, `E`
/// its event payload type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<M, T, E> {
    /// Send `message` out of `interface` to `destination` (a group such as
    /// 224.0.0.13, or a unicast address, e.g. a PIM Register to the RP). The
    /// control plane builds the IP header (TTL 1 and Router Alert where the
    /// protocol's RFC requires them).
    Send {
        /// Outgoing interface.
        interface: Interface,
        /// IP destination.
        destination: Ipv4Addr,
        /// The message to encode.
        message: M,
    },
    /// Join `group` at IP level on `interface` with a source filter (e.g.
    /// 224.0.0.13 ALL-PIM-ROUTERS to receive Hellos; an IGMP proxy's
    /// upstream membership, RFC 4605 section 4). `EXCLUDE {}` is an
    /// any-source join. Replaces an earlier join's filter.
    Join {
        /// The interface.
        interface: Interface,
        /// The group.
        group: Ipv4Addr,
        /// Source filter of the membership.
        filter: SourceFilter,
    },
    /// Leave `group` on `interface` (undoes [`Action::Join`]).
    Leave {
        /// The interface.
        interface: Interface,
        /// The group.
        group: Ipv4Addr,
    },
    /// Change the MRIB.
    Mrib(MribUpdate),
    /// Publish an event.
    Event(Event<E>),
    /// Arm timer `key` to fire at `at` (absolute time of the same clock as
    /// `now`); re-arming an armed key moves it. It comes back as
    /// [`Input::Timer`].
    ArmTimer {
        /// The protocol's timer key.
        key: T,
        /// Deadline.
        at: Timestamp,
    },
    /// Cancel timer `key` if armed.
    CancelTimer {
        /// The protocol's timer key.
        key: T,
    },
}

/// A protocol instance: a state machine that turns inputs into actions.
///
/// `handle` is called on the control thread with the current time and one
/// input; it updates the instance's state and **pushes** the resulting
/// actions onto `out` (it never clears `out`). Pushing into a caller-owned
/// vector lets the control plane reuse one allocation for every call; the
/// caller executes the actions in order and then clears the vector.
///
/// Rules every implementation keeps:
/// * no I/O, no clock reads, no OS randomness: time is `now`, randomness is
///   an [`crate::Rng`] the instance was built with;
/// * bounded state: every table has a cap with a drop counter, so hostile
///   input cannot grow memory without bound;
/// * never panic on any input (malformed, unexpected, out of order): count it
///   and ignore it;
/// * state machines are `match (state, event)` tables whose rows cite the RFC
///   section they implement.
pub trait Protocol: core::fmt::Debug {
    /// Parsed message type this protocol receives and sends.
    type Message: core::fmt::Debug;
    /// Timer key type: names every timer the instance may arm.
    type Timer: Ord + Clone + core::fmt::Debug;
    /// Configuration type (the protocol's section of the config file).
    type Config: core::fmt::Debug;
    /// Event payload type.
    type Event: Serialize + core::fmt::Debug;

    /// Handles one input at time `now`, pushing actions onto `out`.
    fn handle(&mut self, now: Timestamp, input: InputOf<Self>, out: &mut Vec<ActionOf<Self>>);
}

/// The [`Input`] type of protocol `P`.
pub type InputOf<P> =
    Input<<P as Protocol>::Message, <P as Protocol>::Timer, <P as Protocol>::Config>;

/// The [`Action`] type of protocol `P`.
pub type ActionOf<P> =
    Action<<P as Protocol>::Message, <P as Protocol>::Timer, <P as Protocol>::Event>;
