//! The IGMP router side (RFC 2236, RFC 3376): a querier per interface and
//! the membership it learns, as a pure [`Protocol`]: no sockets, no clock,
//! no randomness.
//!
//! # What it does
//!
//! * **Querier** per interface (RFC 3376 6.1, 6.6.2; RFC 2236 3): on start
//!   it sends [`InterfaceParams::startup_query_count`] general queries
//!   [`InterfaceParams::startup_query_interval`] apart (RFC 3376 8.6, 8.7),
//!   then one every [`InterfaceParams::query_interval`]. The lowest address
//!   on the link wins the election: a query from a lower address makes us a
//!   non-querier for the Other Querier Present Interval (RFC 3376 8.5:
//!   `robustness * QI + QRI / 2`); when it runs out we query again. While
//!   non-querier we adopt the querier's QRV and QQI from its IGMPv3 queries
//!   (RFC 3376 4.1.6, 4.1.7, 8.1, 8.2), so every router on the link times
//!   members out alike.
//! * **Membership** per (interface, group) (RFC 3376 6.2-6.5): filter mode
//!   INCLUDE/EXCLUDE, a source list with per-source timers, a group timer,
//!   the action tables of 6.4.1 (current-state records) and 6.4.2
//!   (filter-mode and source-list changes). As querier it sends group- and
//!   group-and-source-specific queries, [`InterfaceParams::last_member_query_count`]
//!   of them [`InterfaceParams::last_member_query_interval`] apart, lowering
//!   timers to the Last Member Query Time (6.6.3). As non-querier it lowers
//!   its timers when it hears such queries without the S flag (6.6.1).
//! * **Older versions** (RFC 3376 7.3.2): IGMPv1/v2 reports set per-group
//!   host-present timers (Older Host Present Interval, 8.13) and the group
//!   runs in v1/v2 compatibility mode while they run: v2 Leave is
//!   `TO_IN({})`, v1/v2 reports are `IS_EX({})`, BLOCK is ignored and
//!   TO_EX loses its sources. The interface's configured version caps every
//!   group's mode.
//! * **Validation** (the `wire` crate already checked lengths, counts and
//!   checksums; the control plane feeds what it rejected as
//!   [`Message::Invalid`] so every reason is counted here): IGMPv3 messages
//!   without Router Alert are ignored (RFC 3376 9.1), as are messages from
//!   off the interface's subnets unless the source is 0.0.0.0 (RFC 3376
//!   4.2.13, 9.2) and records for non-multicast groups. Link-local groups
//!   (224.0.0.0/24) are never tracked (RFC 3376 6: "no reports are sent
//!   for 224.0.0.1", and nothing in 224.0.0.0/24 is routed). Each reason has
//!   a counter in [`Counters`].
//! * **Bounds**: at most [`InterfaceParams::max_groups`] groups per
//!   interface and [`InterfaceParams::max_sources`] sources per group; what
//!   does not fit is dropped and counted.
//!
//! # Outputs
//!
//! [`Action::Send`] of queries (the control plane adds TTL 1 and Router
//! Alert, RFC 2236 2 / RFC 3376 4), [`Action::Mrib`] with
//! `SetLocalMembers`/`RemoveLocalMembers` whenever a group's forwarding
//! filter changes (RFC 3376 6.3: INCLUDE forwards the listed sources,
//! EXCLUDE all but those whose timers ran out), and [`Action::Event`]s in
//! [`EventCategory::Igmp`]: `join`, `leave`, `querier-change`,
//! `compatibility-change`.
//!
//! # Timers
//!
//! One timer per interface for general queries ([`Timer::Query`]), one for
//! the other querier ([`Timer::OtherQuerier`]) and **one per group**
//! ([`Timer::Group`]) armed at the earliest of that group's deadlines (group
//! timer, source timers, host-present timers, next query retransmission):
//! the timer set grows with groups, not with sources.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use mcr_wire::igmp::{encode_code, GroupRecordRepr, RecordType, Repr};
use serde::{Deserialize, Serialize};

use crate::io::{Action, Event, EventCategory, Input, Packet, Protocol};
use crate::mrib::{FilterMode, MribUpdate, SourceFilter};
use crate::net::{IfAddr, Interface};
use crate::time::Timestamp;

#[cfg(test)]
mod tests;

/// 224.0.0.1, all systems: destination of general queries (RFC 3376 4.1.12).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// 224.0.0.22, where IGMPv3 reports go (RFC 3376 4.2.14).
pub const V3_REPORTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
/// Most sources in one group-and-source-specific query we send: keeps the
/// message (24 + 12 + 4n bytes) inside a 1500-byte MTU (RFC 3376 4.1.8).
pub const MAX_QUERY_SOURCES: usize = 366;

/// Whether `g` is in 224.0.0.0/24, the local network control block: never
/// tracked, never routed.
pub fn is_link_local_group(g: Ipv4Addr) -> bool {
    let o = g.octets();
    o[0] == 224 && o[1] == 0 && o[2] == 0
}

/// IGMP settings of one interface (RFC 3376 section 8 names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceParams {
    /// Version we query with and the highest compatibility mode of its
    /// groups: 1, 2 or 3 (RFC 3376 7).
    pub version: u8,
    /// Robustness Variable (RFC 3376 8.1), at least 1.
    pub robustness: u8,
    /// Query Interval (RFC 3376 8.2).
    pub query_interval: Duration,
    /// Query Response Interval, the Max Response Time of general queries
    /// (RFC 3376 8.3).
    pub query_response_interval: Duration,
    /// Last Member Query Interval (RFC 3376 8.8), also the Max Response
    /// Time of group(-and-source)-specific queries.
    pub last_member_query_interval: Duration,
    /// Last Member Query Count (RFC 3376 8.9), default the robustness.
    pub last_member_query_count: u8,
    /// Startup Query Interval (RFC 3376 8.6), default QI / 4.
    pub startup_query_interval: Duration,
    /// Startup Query Count (RFC 3376 8.7), default the robustness.
    pub startup_query_count: u8,
    /// Most groups tracked on the interface; reports for more are dropped
    /// and counted in [`Counters::group_limit_dropped`].
    pub max_groups: usize,
    /// Most sources tracked per group; more are dropped and counted in
    /// [`Counters::source_limit_dropped`].
    pub max_sources: usize,
}

/// Default [`InterfaceParams::max_groups`].
pub const DEFAULT_MAX_GROUPS: usize = 4096;
/// Default [`InterfaceParams::max_sources`].
pub const DEFAULT_MAX_SOURCES: usize = 512;

impl Default for InterfaceParams {
    /// The defaults of RFC 3376 section 8: v3, robustness 2, QI 125 s,
    /// QRI 10 s, LMQI 1 s, LMQC 2, SQI 31.25 s, SQC 2.
    fn default() -> Self {
        InterfaceParams::new(3, 2, Duration::from_secs(125), Duration::from_secs(10))
    }
}

impl InterfaceParams {
    /// Parameters from the four a config file usually names; the others
    /// take their RFC 3376 section 8 defaults derived from these (LMQI 1 s,
    /// LMQC = robustness, SQI = QI / 4, SQC = robustness) and the default
    /// bounds.
    pub fn new(
        version: u8,
        robustness: u8,
        query_interval: Duration,
        query_response_interval: Duration,
    ) -> Self {
        let robustness = robustness.max(1);
        InterfaceParams {
            version: version.clamp(1, 3),
            robustness,
            query_interval,
            query_response_interval,
            last_member_query_interval: Duration::from_secs(1),
            last_member_query_count: robustness,
            startup_query_interval: query_interval / 4,
            startup_query_count: robustness,
            max_groups: DEFAULT_MAX_GROUPS,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }

    fn rv(&self) -> u32 {
        u32::from(self.robustness.max(1))
    }

    /// Group Membership Interval (RFC 3376 8.4): `robustness * QI + QRI`.
    /// A member that stops reporting is forgotten after this long.
    pub fn group_membership_interval(&self) -> Duration {
        self.query_interval * self.rv() + self.query_response_interval
    }

    /// Other Querier Present Interval (RFC 3376 8.5):
    /// `robustness * QI + QRI / 2`.
    pub fn other_querier_present_interval(&self) -> Duration {
        self.query_interval * self.rv() + self.query_response_interval / 2
    }

    /// Last Member Query Time (RFC 3376 8.14): `LMQI * LMQC`, the leave
    /// latency.
    pub fn last_member_query_time(&self) -> Duration {
        self.last_member_query_interval * u32::from(self.last_member_query_count.max(1))
    }

    /// Older Host Present Interval (RFC 3376 8.13): `robustness * QI + QRI`.
    pub fn older_host_present_interval(&self) -> Duration {
        self.group_membership_interval()
    }
}

/// The instance's configuration: the interfaces IGMP runs on, with their
/// parameters. The control plane resolves names to [`Interface`]s; an
/// interface that is not listed (or is down) has no IGMP state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Interfaces and their settings.
    pub interfaces: BTreeMap<Interface, InterfaceParams>,
}

/// Why a received message was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalid {
    /// Shorter than its headers or counts say (wire).
    Truncated,
    /// IPv4 header or IGMP checksum wrong (RFC 2236 2.3, RFC 3376 4.1.2).
    BadChecksum,
    /// A length field contradicts the format, e.g. a 9-11 byte query
    /// (RFC 3376 7.1).
    BadLength,
    /// An IGMPv3 record or source count larger than the packet (RFC 3376
    /// 4.2.6).
    BadCount,
    /// An IGMP type we do not know (RFC 3376 4: ignored).
    UnknownType,
    /// The IPv4 header is malformed (version, header length, options).
    BadIpHeader,
    /// An IGMPv3 message without Router Alert (RFC 3376 9.1).
    NoRouterAlert,
    /// The source is not on the interface's subnets and not 0.0.0.0
    /// (RFC 3376 4.2.13, 9.2).
    WrongSubnet,
    /// A record or report for an address outside 224.0.0.0/4.
    NotMulticast,
}

/// Invalid messages by reason (see [`Invalid`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidCounters {
    /// [`Invalid::Truncated`].
    pub truncated: u64,
    /// [`Invalid::BadChecksum`].
    pub bad_checksum: u64,
    /// [`Invalid::BadLength`].
    pub bad_length: u64,
    /// [`Invalid::BadCount`].
    pub bad_count: u64,
    /// [`Invalid::UnknownType`].
    pub unknown_type: u64,
    /// [`Invalid::BadIpHeader`].
    pub bad_ip_header: u64,
    /// [`Invalid::NoRouterAlert`].
    pub no_router_alert: u64,
    /// [`Invalid::WrongSubnet`].
    pub wrong_subnet: u64,
    /// [`Invalid::NotMulticast`].
    pub not_multicast: u64,
}

impl InvalidCounters {
    /// Counts one message ignored for `why`.
    pub fn count(&mut self, why: Invalid) {
        let c = match why {
            Invalid::Truncated => &mut self.truncated,
            Invalid::BadChecksum => &mut self.bad_checksum,
            Invalid::BadLength => &mut self.bad_length,
            Invalid::BadCount => &mut self.bad_count,
            Invalid::UnknownType => &mut self.unknown_type,
            Invalid::BadIpHeader => &mut self.bad_ip_header,
            Invalid::NoRouterAlert => &mut self.no_router_alert,
            Invalid::WrongSubnet => &mut self.wrong_subnet,
            Invalid::NotMulticast => &mut self.not_multicast,
        };
        *c = c.saturating_add(1);
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.truncated
            + self.bad_checksum
            + self.bad_length
            + self.bad_count
            + self.unknown_type
            + self.bad_ip_header
            + self.no_router_alert
            + self.wrong_subnet
            + self.not_multicast
    }
}

/// Per-interface message counters (messages, not bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// General queries sent.
    pub general_queries_sent: u64,
    /// Group-specific queries sent (RFC 3376 6.6.3.1).
    pub group_queries_sent: u64,
    /// Group-and-source-specific queries sent (RFC 3376 6.6.3.2).
    pub group_source_queries_sent: u64,
    /// Queries received from other routers.
    pub queries_received: u64,
    /// IGMPv1 reports received.
    pub v1_reports_received: u64,
    /// IGMPv2 reports received.
    pub v2_reports_received: u64,
    /// IGMPv3 reports received.
    pub v3_reports_received: u64,
    /// IGMPv2 leaves received.
    pub leaves_received: u64,
    /// Records or reports for 224.0.0.0/24, valid but never tracked.
    pub link_local_ignored: u64,
    /// Records for a new group refused at [`InterfaceParams::max_groups`].
    pub group_limit_dropped: u64,
    /// Sources refused at [`InterfaceParams::max_sources`].
    pub source_limit_dropped: u64,
    /// Messages ignored, by reason.
    pub invalid: InvalidCounters,
}

/// What the instance receives and sends: an IGMP message as the `wire`
/// crate parsed it, or the reason the control plane could not parse one (so
/// the instance counts every reason in one place).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A message that parsed.
    Igmp(Repr),
    /// A message that did not parse (only ever received).
    Invalid(Invalid),
}

/// Timer keys (interface by kernel index).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Next general query (startup or periodic) on an interface.
    Query(u32),
    /// Other Querier Present timer (RFC 3376 6.6.2).
    OtherQuerier(u32),
    /// The earliest deadline of one group: group timer, source timers,
    /// host-present timers, next query retransmission.
    Group(u32, Ipv4Addr),
}

/// An IGMP event as published on `subscribe --events igmp`. Fields that do
/// not apply to the kind are absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IgmpEvent {
    /// Interface name.
    pub interface: String,
    /// The group (join, leave, compatibility-change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Ipv4Addr>,
    /// The host whose report created the group (join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Ipv4Addr>,
    /// The querier now (querier-change); `None` when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub querier: Option<Ipv4Addr>,
    /// Whether we are the querier (querier-change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us: Option<bool>,
    /// Compatibility mode now (compatibility-change, join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// Why (leave: `leave`, `expired`, `disabled`; querier-change:
    /// `startup`, `lower-address`, `other-querier-expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl IgmpEvent {
    fn on(ifc: &Interface) -> Self {
        IgmpEvent {
            interface: ifc.name.to_string(),
            group: None,
            reporter: None,
            querier: None,
            us: None,
            version: None,
            reason: None,
        }
    }
}

/// One action of this instance.
pub type IgmpAction = Action<Message, Timer, IgmpEvent>;
type Out = Vec<IgmpAction>;

/// Who queries on an interface (RFC 3376 6.6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    /// We query. `startup_left` startup queries remain (RFC 3376 8.7).
    Querier { startup_left: u8 },
    /// `querier` does; we resume when `expires` passes.
    NonQuerier {
        querier: Ipv4Addr,
        expires: Timestamp,
    },
}

/// Interface-level events of the querier state machine.
enum IfEvent {
    /// Enabled (config or interface up) or got its first address.
    Start,
    /// The query timer fired.
    QueryTimer,
    /// A query from `Ipv4Addr`, lower than ours.
    LowerQuerier(Ipv4Addr),
    /// The other-querier-present timer fired.
    OtherQuerierExpired,
}

/// One group on one interface (RFC 3376 6.2.1).
#[derive(Clone, Debug)]
struct Group {
    mode: FilterMode,
    /// Group timer (EXCLUDE mode only, RFC 3376 6.2.2).
    group_timer: Option<Timestamp>,
    /// Sources and their timers; `None` is a timer at zero (EXCLUDE mode's
    /// exclude list, RFC 3376 6.2.3).
    sources: BTreeMap<Ipv4Addr, Option<Timestamp>>,
    /// IGMPv1 / IGMPv2 Host Present timers (RFC 3376 7.3.2).
    v1_host: Option<Timestamp>,
    v2_host: Option<Timestamp>,
    /// Compatibility mode last reported (for the change event).
    compat: u8,
    last_reporter: Ipv4Addr,
    since: Timestamp,
    /// Group-specific query retransmissions left (RFC 3376 6.6.3.1).
    group_queries_left: u8,
    /// Group-and-source-specific query retransmissions left per source
    /// (RFC 3376 6.6.3.2).
    source_queries_left: BTreeMap<Ipv4Addr, u8>,
    next_retransmit: Option<Timestamp>,
    /// The group-specific queries were started by a leave (TO_IN): the
    /// `leave` event's reason.
    leaving: bool,
    /// Filter last given to the MRIB.
    published: Option<SourceFilter>,
}

impl Group {
    fn new(now: Timestamp, reporter: Ipv4Addr) -> Self {
        Group {
            mode: FilterMode::Include,
            group_timer: None,
            sources: BTreeMap::new(),
            v1_host: None,
            v2_host: None,
            compat: 3,
            last_reporter: reporter,
            since: now,
            group_queries_left: 0,
            source_queries_left: BTreeMap::new(),
            next_retransmit: None,
            leaving: false,
            published: None,
        }
    }

    /// Compatibility mode (RFC 3376 7.3.2), capped by the interface's
    /// version.
    fn compat(&self, now: Timestamp, version: u8) -> u8 {
        let m = if self.v1_host.is_some_and(|t| t > now) {
            1
        } else if self.v2_host.is_some_and(|t| t > now) {
            2
        } else {
            3
        };
        m.min(version)
    }

    /// Sources with a running timer (INCLUDE's list; EXCLUDE's "requested
    /// list" X).
    fn running(&self) -> BTreeSet<Ipv4Addr> {
        self.sources
            .iter()
            .filter(|(_, t)| t.is_some())
            .map(|(s, _)| *s)
            .collect()
    }

    /// EXCLUDE's exclude list Y (timers at zero).
    fn excluded(&self) -> BTreeSet<Ipv4Addr> {
        self.sources
            .iter()
            .filter(|(_, t)| t.is_none())
            .map(|(s, _)| *s)
            .collect()
    }

    /// The forwarding filter (RFC 3376 6.3).
    fn filter(&self) -> SourceFilter {
        match self.mode {
            FilterMode::Include => SourceFilter::include(self.running()),
            FilterMode::Exclude => SourceFilter::exclude(self.excluded()),
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        self.sources
            .values()
            .flatten()
            .copied()
            .chain(self.group_timer)
            .chain(self.v1_host)
            .chain(self.v2_host)
            .chain(self.next_retransmit)
            .min()
    }

    /// Whether nothing is left (INCLUDE {} without pending queries).
    fn is_dead(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }
}

/// IGMP state of one interface.
#[derive(Clone, Debug)]
struct IfState {
    ifc: Interface,
    params: InterfaceParams,
    /// The querier's Robustness Variable and Query Interval from its last
    /// IGMPv3 query, adopted while we are not querier (RFC 3376 4.1.6,
    /// 4.1.7, 8.1, 8.2); `None` while we query or when it sent zeros.
    adopted: (Option<u8>, Option<Duration>),
    role: Role,
    next_query: Option<Timestamp>,
    groups: BTreeMap<Ipv4Addr, Group>,
    counters: Counters,
}

impl IfState {
    /// The parameters in force: ours, with the querier's QRV and QQI while
    /// we are not querier (RFC 3376 8.1, 8.2).
    fn effective(&self) -> InterfaceParams {
        let mut p = self.params.clone();
        if let Role::NonQuerier { .. } = self.role {
            if let Some(r) = self.adopted.0 {
                p.robustness = r;
                p.last_member_query_count = r;
            }
            if let Some(qi) = self.adopted.1 {
                p.query_interval = qi;
            }
        }
        p
    }
}

/// The IGMP router instance: every interface it runs on.
#[derive(Clone, Debug, Default)]
pub struct Igmp {
    config: Config,
    ifaces: BTreeMap<u32, IfState>,
    addrs: BTreeMap<u32, BTreeSet<IfAddr>>,
    down: BTreeSet<u32>,
}

/// A source of a group as `mcrctl igmp groups` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceView {
    /// The source address.
    pub address: Ipv4Addr,
    /// Seconds until its timer runs out; `null` when it is at zero (an
    /// excluded source of an EXCLUDE-mode group, RFC 3376 6.2.3).
    pub timer_secs: Option<f64>,
}

/// One group on one interface as `mcrctl igmp groups` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    /// Interface name.
    pub interface: String,
    /// The group.
    pub group: Ipv4Addr,
    /// Filter mode (RFC 3376 6.2.1).
    pub mode: FilterMode,
    /// Source list with timers.
    pub sources: Vec<SourceView>,
    /// Seconds left on the group timer (EXCLUDE mode), else `null`.
    pub group_timer_secs: Option<f64>,
    /// Compatibility mode: 1, 2 or 3 (RFC 3376 7.3.2).
    pub version: u8,
    /// Seconds left on the IGMPv1 Host Present timer, else `null`.
    pub v1_host_secs: Option<f64>,
    /// Seconds left on the IGMPv2 Host Present timer, else `null`.
    pub v2_host_secs: Option<f64>,
    /// The host that last reported (0.0.0.0 for an unnumbered host).
    pub last_reporter: Ipv4Addr,
    /// Seconds since the group was learned.
    pub uptime_secs: f64,
}

/// One interface as `mcrctl igmp interfaces` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceView {
    /// Interface name.
    pub interface: String,
    /// Our address there (the lowest one), if it has any.
    pub address: Option<Ipv4Addr>,
    /// The querier's address (ours when we query), if known.
    pub querier: Option<Ipv4Addr>,
    /// Whether we are the querier.
    pub is_querier: bool,
    /// Configured version (1, 2 or 3).
    pub version: u8,
    /// Seconds to our next general query (querier only).
    pub next_query_secs: Option<f64>,
    /// Seconds left on the Other Querier Present timer (non-querier only).
    pub other_querier_secs: Option<f64>,
    /// Startup queries still to send.
    pub startup_queries_left: u8,
    /// Groups tracked.
    pub groups: usize,
    /// Robustness Variable.
    pub robustness: u8,
    /// Query Interval, seconds.
    pub query_interval_secs: f64,
    /// Query Response Interval, seconds.
    pub query_response_interval_secs: f64,
    /// Last Member Query Interval, seconds.
    pub last_member_query_interval_secs: f64,
    /// Last Member Query Count.
    pub last_member_query_count: u8,
    /// Group Membership Interval, seconds (RFC 3376 8.4).
    pub group_membership_interval_secs: f64,
    /// Other Querier Present Interval, seconds (RFC 3376 8.5).
    pub other_querier_present_interval_secs: f64,
    /// Message counters.
    pub counters: Counters,
}

fn secs(d: Duration) -> f64 {
    // Milliseconds are what an operator can use; rounding keeps the JSON
    // short.
    (d.as_millis() as f64) / 1000.0
}

fn left(t: Option<Timestamp>, now: Timestamp) -> Option<f64> {
    t.map(|t| secs(t - now))
}

/// Max Resp Code / Time in tenths of a second for `d`, for v3 (the
/// floating-point code of RFC 3376 4.1.1) or v2 (8 bits, RFC 2236 2.2;
/// at least 1 so the query is not read as IGMPv1).
fn resp_code(d: Duration, version: u8) -> u8 {
    let tenths = (d.as_millis() / 100).min(u128::from(u32::MAX)) as u32;
    if version >= 3 {
        encode_code(tenths)
    } else {
        tenths.clamp(1, 255) as u8
    }
}

impl Igmp {
    /// An instance with no interfaces (they come with [`Input::Config`]).
    pub fn new() -> Self {
        Igmp::default()
    }

    /// Whether IGMP runs on at least one interface.
    pub fn is_running(&self) -> bool {
        !self.ifaces.is_empty()
    }

    /// The interfaces IGMP runs on (configured and up).
    pub fn running_interfaces(&self) -> impl Iterator<Item = &Interface> + '_ {
        self.ifaces.values().map(|s| &s.ifc)
    }

    /// Every group, by interface index then group.
    pub fn groups(&self, now: Timestamp) -> Vec<GroupView> {
        let mut v = Vec::new();
        for st in self.ifaces.values() {
            for (g, grp) in &st.groups {
                v.push(GroupView {
                    interface: st.ifc.name.to_string(),
                    group: *g,
                    mode: grp.mode,
                    sources: grp
                        .sources
                        .iter()
                        .map(|(s, t)| SourceView {
                            address: *s,
                            timer_secs: left(*t, now),
                        })
                        .collect(),
                    group_timer_secs: left(grp.group_timer, now),
                    version: grp.compat(now, st.params.version),
                    v1_host_secs: left(grp.v1_host.filter(|t| *t > now), now),
                    v2_host_secs: left(grp.v2_host.filter(|t| *t > now), now),
                    last_reporter: grp.last_reporter,
                    uptime_secs: secs(now - grp.since),
                });
            }
        }
        v
    }

    /// Every interface IGMP runs on.
    pub fn interfaces(&self, now: Timestamp) -> Vec<InterfaceView> {
        self.ifaces
            .values()
            .map(|st| {
                let ours = self.our_addr(st.ifc.index);
                let p = &st.effective();
                let (querier, is_querier, other, startup) = match &st.role {
                    Role::Querier { startup_left } => (ours, true, None, *startup_left),
                    Role::NonQuerier { querier, expires } => {
                        (Some(*querier), false, Some(*expires), 0)
                    }
                };
                InterfaceView {
                    interface: st.ifc.name.to_string(),
                    address: ours,
                    querier,
                    is_querier,
                    version: p.version,
                    next_query_secs: if is_querier {
                        left(st.next_query, now)
                    } else {
                        None
                    },
                    other_querier_secs: left(other, now),
                    startup_queries_left: startup,
                    groups: st.groups.len(),
                    robustness: p.robustness,
                    query_interval_secs: secs(p.query_interval),
                    query_response_interval_secs: secs(p.query_response_interval),
                    last_member_query_interval_secs: secs(p.last_member_query_interval),
                    last_member_query_count: p.last_member_query_count,
                    group_membership_interval_secs: secs(p.group_membership_interval()),
                    other_querier_present_interval_secs: secs(p.other_querier_present_interval()),
                    counters: st.counters.clone(),
                }
            })
            .collect()
    }

    /// Counters of one interface (by index), if IGMP runs there.
    pub fn counters(&self, ifindex: u32) -> Option<&Counters> {
        self.ifaces.get(&ifindex).map(|s| &s.counters)
    }

    /// Our address on an interface: the lowest (the one that wins the
    /// election, RFC 3376 6.6.2), if any.
    fn our_addr(&self, ifindex: u32) -> Option<Ipv4Addr> {
        self.addrs.get(&ifindex)?.iter().map(|a| a.address).min()
    }

    fn on_subnet(&self, ifindex: u32, src: Ipv4Addr) -> bool {
        match self.addrs.get(&ifindex) {
            // Without an address nothing can be checked: accept.
            None => true,
            Some(a) if a.is_empty() => true,
            Some(a) => a.iter().any(|a| a.on_subnet(src)),
        }
    }

    // ----- interface lifecycle -------------------------------------------

    /// Starts or stops interfaces so that exactly the configured, up ones
    /// run; updates parameters of those that keep running (no query sent,
    /// members kept).
    fn sync(&mut self, now: Timestamp, out: &mut Out) {
        let want: BTreeMap<u32, (Interface, InterfaceParams)> = self
            .config
            .interfaces
            .iter()
            .filter(|(i, _)| !self.down.contains(&i.index))
            .map(|(i, p)| (i.index, (i.clone(), p.clone())))
            .collect();
        let gone: Vec<u32> = self
            .ifaces
            .keys()
            .filter(|i| !want.contains_key(i))
            .copied()
            .collect();
        for idx in gone {
            self.stop(idx, "disabled", out);
        }
        for (idx, (ifc, params)) in want {
            match self.ifaces.get_mut(&idx) {
                Some(st) => {
                    st.ifc = ifc;
                    if st.params != params {
                        // Parameters change in place (DESIGN.md
                        // "Declarative reload"): members stay, a shorter
                        // query interval takes effect at once.
                        if let Some(t) = st.next_query {
                            let latest = now + params.query_interval;
                            if t > latest && matches!(st.role, Role::Querier { .. }) {
                                st.next_query = Some(latest);
                                out.push(Action::ArmTimer {
                                    key: Timer::Query(idx),
                                    at: latest,
                                });
                            }
                        }
                        st.params = params;
                    }
                }
                None => {
                    self.ifaces.insert(
                        idx,
                        IfState {
                            ifc,
                            params,
                            adopted: (None, None),
                            role: Role::Querier { startup_left: 0 },
                            next_query: None,
                            groups: BTreeMap::new(),
                            counters: Counters::default(),
                        },
                    );
                    self.interface_event(now, idx, IfEvent::Start, out);
                }
            }
        }
    }

    /// Stops IGMP on an interface: every member is withdrawn from the MRIB
    /// and every timer cancelled.
    fn stop(&mut self, idx: u32, reason: &'static str, out: &mut Out) {
        let Some(st) = self.ifaces.remove(&idx) else {
            return;
        };
        out.push(Action::CancelTimer {
            key: Timer::Query(idx),
        });
        out.push(Action::CancelTimer {
            key: Timer::OtherQuerier(idx),
        });
        for (g, grp) in st.groups {
            out.push(Action::CancelTimer {
                key: Timer::Group(idx, g),
            });
            if grp.published.is_some() {
                out.push(Action::Mrib(MribUpdate::RemoveLocalMembers {
                    interface: st.ifc.clone(),
                    group: g,
                }));
            }
            let mut e = IgmpEvent::on(&st.ifc);
            e.group = Some(g);
            e.reason = Some(reason);
            out.push(event("leave", e));
        }
    }

    /// The querier state machine (RFC 3376 6.6.2, RFC 2236 3).
    fn interface_event(&mut self, now: Timestamp, idx: u32, ev: IfEvent, out: &mut Out) {
        let ours = self.our_addr(idx);
        let Some(st) = self.ifaces.get_mut(&idx) else {
            return;
        };
        let p = st.effective();
        let role = st.role.clone();
        let querier_event = |st: &IfState, querier: Option<Ipv4Addr>, us, why| {
            let mut e = IgmpEvent::on(&st.ifc);
            e.querier = querier;
            e.us = Some(us);
            e.reason = Some(why);
            event("querier-change", e)
        };
        match (role, ev) {
            // RFC 3376 6.6.2 / 8.6 / 8.7, RFC 2236 3: a router starts as
            // querier and sends Startup Query Count general queries Startup
            // Query Interval apart.
            (_, IfEvent::Start) => {
                out.push(Action::CancelTimer {
                    key: Timer::OtherQuerier(idx),
                });
                let sqc = p.startup_query_count.max(1);
                st.role = Role::Querier {
                    startup_left: sqc - 1,
                };
                send_general(st, ours, out);
                let next = now
                    + if sqc > 1 {
                        p.startup_query_interval
                    } else {
                        p.query_interval
                    };
                st.next_query = Some(next);
                out.push(Action::ArmTimer {
                    key: Timer::Query(idx),
                    at: next,
                });
                out.push(querier_event(st, ours, true, "startup"));
            }
            // RFC 3376 8.2 / 8.6: the next general query, startup or
            // periodic.
            (Role::Querier { startup_left }, IfEvent::QueryTimer) => {
                send_general(st, ours, out);
                let left = startup_left.saturating_sub(1);
                let gap = if left > 0 {
                    p.startup_query_interval
                } else {
                    p.query_interval
                };
                st.role = Role::Querier { startup_left: left };
                let next = now + gap;
                st.next_query = Some(next);
                out.push(Action::ArmTimer {
                    key: Timer::Query(idx),
                    at: next,
                });
            }
            // RFC 3376 6.6.2: a query from a lower address: that router is
            // querier; we stop querying and start the Other Querier Present
            // timer (also restarted on every such query).
            (role, IfEvent::LowerQuerier(src)) => {
                let expires = now + p.other_querier_present_interval();
                let changed = match role {
                    Role::Querier { .. } => true,
                    Role::NonQuerier { querier, .. } => querier != src,
                };
                let querier = match role {
                    Role::NonQuerier { querier, .. } if querier < src => querier,
                    _ => src,
                };
                st.role = Role::NonQuerier { querier, expires };
                st.next_query = None;
                out.push(Action::CancelTimer {
                    key: Timer::Query(idx),
                });
                out.push(Action::ArmTimer {
                    key: Timer::OtherQuerier(idx),
                    at: expires,
                });
                // Pending group queries are the querier's job now.
                for (g, grp) in st.groups.iter_mut() {
                    if grp.next_retransmit.take().is_some() {
                        grp.group_queries_left = 0;
                        grp.source_queries_left.clear();
                        rearm_group(idx, *g, grp, out);
                    }
                }
                if changed && querier == src {
                    out.push(querier_event(st, Some(src), false, "lower-address"));
                }
            }
            // RFC 3376 6.6.2, RFC 2236 3: the other querier went quiet; we
            // resume with a general query now and then every QI.
            (Role::NonQuerier { .. }, IfEvent::OtherQuerierExpired) => {
                // Our own settings again (RFC 3376 8.1, 8.2 apply to
                // non-queriers).
                st.adopted = (None, None);
                let p = st.params.clone();
                st.role = Role::Querier { startup_left: 0 };
                send_general(st, ours, out);
                let next = now + p.query_interval;
                st.next_query = Some(next);
                out.push(Action::ArmTimer {
                    key: Timer::Query(idx),
                    at: next,
                });
                out.push(querier_event(st, ours, true, "other-querier-expired"));
            }
            // Stale timers (the role changed since they were armed).
            (Role::NonQuerier { .. }, IfEvent::QueryTimer)
            | (Role::Querier { .. }, IfEvent::OtherQuerierExpired) => {}
        }
    }

    // ----- packets ---------------------------------------------------------

    fn packet(&mut self, now: Timestamp, pkt: Packet<Message>, out: &mut Out) {
        let idx = pkt.interface.index;
        let subnet_ok = pkt.source.is_unspecified() || self.on_subnet(idx, pkt.source);
        let ours = self.our_addr(idx);
        let Some(st) = self.ifaces.get_mut(&idx) else {
            return;
        };
        let repr = match pkt.message {
            Message::Invalid(why) => {
                st.counters.invalid.count(why);
                return;
            }
            Message::Igmp(r) => r,
        };
        let v3 = matches!(repr, Repr::QueryV3 { .. } | Repr::ReportV3 { .. });
        if v3 && !pkt.router_alert {
            // RFC 3376 9.1: IGMPv3 messages without Router Alert are
            // ignored (they may be spoofed from off the link).
            st.counters.invalid.count(Invalid::NoRouterAlert);
            return;
        }
        if !subnet_ok {
            // RFC 3376 4.2.13 / 9.2: a source from another subnet is not a
            // neighbour (0.0.0.0 is accepted: an unnumbered host).
            st.counters.invalid.count(Invalid::WrongSubnet);
            return;
        }
        let src = pkt.source;
        match repr {
            Repr::QueryV1 { .. } | Repr::QueryV2 { .. } | Repr::QueryV3 { .. } => {
                st.counters.queries_received += 1;
                if Some(src) == ours {
                    return; // our own, looped back
                }
                let lower = !src.is_unspecified() && ours.is_none_or(|o| src < o);
                self.query_heard(now, idx, src, lower, &repr, out);
            }
            // RFC 3376 7.3.2: an IGMPv1 report is IS_EX({}) and sets the
            // IGMPv1 Host Present timer.
            Repr::ReportV1 { group } => {
                st.counters.v1_reports_received += 1;
                let rec = (RecordType::ModeIsExclude, group, Vec::new());
                self.record(now, idx, src, rec, Some(1), out);
            }
            // RFC 3376 7.3.2: an IGMPv2 report is IS_EX({}) and sets the
            // IGMPv2 Host Present timer.
            Repr::ReportV2 { group } => {
                st.counters.v2_reports_received += 1;
                let rec = (RecordType::ModeIsExclude, group, Vec::new());
                self.record(now, idx, src, rec, Some(2), out);
            }
            // RFC 3376 7.3.2: an IGMPv2 Leave is TO_IN({}).
            Repr::LeaveV2 { group } => {
                st.counters.leaves_received += 1;
                let rec = (RecordType::ChangeToInclude, group, Vec::new());
                self.record(now, idx, src, rec, Some(0), out);
            }
            Repr::ReportV3 { records } => {
                st.counters.v3_reports_received += 1;
                for GroupRecordRepr {
                    record_type,
                    group,
                    sources,
                    ..
                } in records
                {
                    self.record(now, idx, src, (record_type, group, sources), None, out);
                }
            }
        }
    }

    /// A query from another router: the election (RFC 3376 6.6.2) and, as
    /// non-querier, the timer updates of RFC 3376 6.6.1.
    fn query_heard(
        &mut self,
        now: Timestamp,
        idx: u32,
        src: Ipv4Addr,
        lower: bool,
        repr: &Repr,
        out: &mut Out,
    ) {
        if lower {
            self.interface_event(now, idx, IfEvent::LowerQuerier(src), out);
        }
        let Some(st) = self.ifaces.get_mut(&idx) else {
            return;
        };
        let querier = match st.role {
            Role::Querier { .. } => return,
            Role::NonQuerier { querier, .. } => querier,
        };
        // RFC 3376 4.1.6, 4.1.7 (8.1, 8.2): a non-querier adopts the
        // querier's QRV and QQI unless they are zero.
        if let (true, Repr::QueryV3 { qrv, .. }) = (src == querier, repr) {
            st.adopted = (
                (*qrv != 0).then_some(*qrv),
                repr.query_interval().filter(|d| !d.is_zero()),
            );
        }
        // RFC 3376 6.6.1: a non-querier receiving a group-specific query
        // without S lowers its group timer to LMQT; one with sources lowers
        // those sources' timers. (RFC 2236 3: likewise for a v2
        // group-specific query.)
        let (group, s_flag, sources) = match repr {
            Repr::QueryV3 {
                group,
                s_flag,
                sources,
                ..
            } => (*group, *s_flag, sources.as_slice()),
            Repr::QueryV2 { group, .. } => (*group, false, &[][..]),
            _ => return,
        };
        if s_flag || group.is_unspecified() {
            return;
        }
        let lmqt = now + st.effective().last_member_query_time();
        let Some(grp) = st.groups.get_mut(&group) else {
            return;
        };
        if sources.is_empty() {
            if grp.group_timer.is_some_and(|t| t > lmqt) {
                grp.group_timer = Some(lmqt);
            }
        } else {
            for s in sources {
                if let Some(Some(t)) = grp.sources.get_mut(s) {
                    if *t > lmqt {
                        *t = lmqt;
                    }
                }
            }
        }
        rearm_group(idx, group, grp, out);
    }

    /// One group record (RFC 3376 6.4), or a v1/v2 message translated into
    /// one (RFC 3376 7.3.2): `older` is `Some(1|2)` for a v1/v2 report,
    /// `Some(0)` for a v2 leave, `None` for a v3 record.
    fn record(
        &mut self,
        now: Timestamp,
        idx: u32,
        src: Ipv4Addr,
        (rtype, group, sources): (RecordType, Ipv4Addr, Vec<Ipv4Addr>),
        older: Option<u8>,
        out: &mut Out,
    ) {
        let ours = self.our_addr(idx);
        let Some(st) = self.ifaces.get_mut(&idx) else {
            return;
        };
        if !group.is_multicast() {
            st.counters.invalid.count(Invalid::NotMulticast);
            return;
        }
        if is_link_local_group(group) {
            st.counters.link_local_ignored += 1;
            return;
        }
        if let RecordType::Unknown(_) = rtype {
            // RFC 3376 4.2.12: unknown record types are ignored.
            st.counters.invalid.count(Invalid::UnknownType);
            return;
        }
        let p = st.effective();
        let is_querier = matches!(st.role, Role::Querier { .. });
        if !st.groups.contains_key(&group) {
            // Records that cannot create state do not take a slot.
            let creates = match rtype {
                RecordType::ModeIsExclude | RecordType::ChangeToExclude => true,
                RecordType::ModeIsInclude
                | RecordType::ChangeToInclude
                | RecordType::AllowNewSources => !sources.is_empty(),
                _ => false,
            };
            if !creates || older == Some(0) {
                return;
            }
            if st.groups.len() >= p.max_groups {
                st.counters.group_limit_dropped += 1;
                return;
            }
            st.groups.insert(group, Group::new(now, src));
        }
        let Some(grp) = st.groups.get_mut(&group) else {
            return;
        };
        grp.last_reporter = src;
        let ohpi = now + p.older_host_present_interval();
        match older {
            Some(1) => grp.v1_host = Some(ohpi),
            Some(2) => grp.v2_host = Some(ohpi),
            _ => {}
        }
        let compat = grp.compat(now, p.version);
        // RFC 3376 7.3.2: what an older-version group does with each record.
        let mut sources: BTreeSet<Ipv4Addr> = sources.into_iter().collect();
        let rtype = match (compat, rtype, older) {
            // In IGMPv1 mode a v2 Leave is ignored.
            (1, _, Some(0)) => None,
            // In v1 and v2 mode BLOCK is ignored.
            (1 | 2, RecordType::BlockOldSources, _) => None,
            // In v1 and v2 mode TO_EX(x) is TO_EX({}) (and so IS_EX).
            (1 | 2, t @ (RecordType::ChangeToExclude | RecordType::ModeIsExclude), _) => {
                sources.clear();
                Some(t)
            }
            (_, t, _) => Some(t),
        };
        let Some(rtype) = rtype else {
            finish_group(now, st, group, out);
            return;
        };
        // Bound the source list (the group's current sources plus the new).
        let room = p.max_sources.saturating_sub(grp.sources.len());
        let new: Vec<Ipv4Addr> = sources
            .iter()
            .filter(|s| !grp.sources.contains_key(s))
            .copied()
            .collect();
        if new.len() > room {
            for s in new.into_iter().skip(room) {
                sources.remove(&s);
                st.counters.source_limit_dropped += 1;
            }
        }
        let Some(grp) = st.groups.get_mut(&group) else {
            return;
        };
        let gmi = now + p.group_membership_interval();
        let a = sources;
        let querier = is_querier && ours.is_some();
        let mut q_group = false;
        let mut q_sources: BTreeSet<Ipv4Addr> = BTreeSet::new();
        match (grp.mode, rtype) {
            // RFC 3376 6.4.1, INCLUDE(A) + IS_IN(B) -> INCLUDE(A+B); (B)=GMI.
            // RFC 3376 6.4.2, INCLUDE(A) + ALLOW(B): the same.
            (FilterMode::Include, RecordType::ModeIsInclude | RecordType::AllowNewSources) => {
                for s in &a {
                    grp.sources.insert(*s, Some(gmi));
                }
            }
            // RFC 3376 6.4.1, INCLUDE(A) + IS_EX(B) -> EXCLUDE(A*B, B-A);
            // (B-A)=0; delete (A-B); group timer = GMI.
            // RFC 3376 6.4.2, INCLUDE(A) + TO_EX(B): the same plus
            // Q(G, A*B).
            (
                FilterMode::Include,
                t @ (RecordType::ModeIsExclude | RecordType::ChangeToExclude),
            ) => {
                grp.sources.retain(|s, _| a.contains(s));
                for s in &a {
                    grp.sources.entry(*s).or_insert(None);
                }
                grp.mode = FilterMode::Exclude;
                grp.group_timer = Some(gmi);
                grp.leaving = false;
                if t == RecordType::ChangeToExclude {
                    q_sources = grp.running();
                }
            }
            // RFC 3376 6.4.2, INCLUDE(A) + BLOCK(B) -> INCLUDE(A);
            // Q(G, A*B).
            (FilterMode::Include, RecordType::BlockOldSources) => {
                q_sources = a
                    .iter()
                    .filter(|s| grp.sources.contains_key(s))
                    .copied()
                    .collect();
            }
            // RFC 3376 6.4.2, INCLUDE(A) + TO_IN(B) -> INCLUDE(A+B);
            // (B)=GMI; Q(G, A-B).
            (FilterMode::Include, RecordType::ChangeToInclude) => {
                q_sources = grp.running().difference(&a).copied().collect();
                for s in &a {
                    grp.sources.insert(*s, Some(gmi));
                }
            }
            // RFC 3376 6.4.1, EXCLUDE(X,Y) + IS_IN(A) -> EXCLUDE(X+A, Y-A);
            // (A)=GMI. RFC 3376 6.4.2, EXCLUDE(X,Y) + ALLOW(A): the same.
            (FilterMode::Exclude, RecordType::ModeIsInclude | RecordType::AllowNewSources) => {
                for s in &a {
                    grp.sources.insert(*s, Some(gmi));
                }
            }
            // RFC 3376 6.4.1, EXCLUDE(X,Y) + IS_EX(A) -> EXCLUDE(A-Y, Y*A);
            // (A-X-Y)=GMI; delete (X-A), (Y-A); group timer = GMI.
            // RFC 3376 6.4.2, EXCLUDE(X,Y) + TO_EX(A) -> EXCLUDE(A-Y, Y*A);
            // (A-X-Y)=group timer; delete (X-A), (Y-A); Q(G, A-Y);
            // group timer = GMI.
            (
                FilterMode::Exclude,
                t @ (RecordType::ModeIsExclude | RecordType::ChangeToExclude),
            ) => {
                let old_gt = grp.group_timer;
                grp.sources.retain(|s, _| a.contains(s));
                for s in &a {
                    grp.sources
                        .entry(*s)
                        .or_insert(if t == RecordType::ModeIsExclude {
                            Some(gmi)
                        } else {
                            old_gt
                        });
                }
                grp.group_timer = Some(gmi);
                grp.leaving = false;
                if t == RecordType::ChangeToExclude {
                    q_sources = grp.running();
                }
            }
            // RFC 3376 6.4.2, EXCLUDE(X,Y) + BLOCK(A) -> EXCLUDE(X+(A-Y), Y);
            // (A-X-Y)=group timer; Q(G, A-Y).
            (FilterMode::Exclude, RecordType::BlockOldSources) => {
                let gt = grp.group_timer;
                for s in &a {
                    grp.sources.entry(*s).or_insert(gt);
                }
                let y = grp.excluded();
                q_sources = a.difference(&y).copied().collect();
            }
            // RFC 3376 6.4.2, EXCLUDE(X,Y) + TO_IN(A) -> EXCLUDE(X+A, Y-A);
            // (A)=GMI; Q(G, X-A); Q(G).
            (FilterMode::Exclude, RecordType::ChangeToInclude) => {
                let x = grp.running();
                for s in &a {
                    grp.sources.insert(*s, Some(gmi));
                }
                q_sources = x.difference(&a).copied().collect();
                q_group = true;
                grp.leaving = true;
            }
            (_, RecordType::Unknown(_)) => {}
        }
        if querier {
            let lmqt = now + p.last_member_query_time();
            let count = p.last_member_query_count.max(1);
            // RFC 3376 6.6.3.2: lower the queried sources' timers to LMQT and
            // query them LMQC times (not in v1/v2 mode: older hosts cannot
            // answer source-specific queries).
            if compat == 3 && !q_sources.is_empty() {
                for s in &q_sources {
                    if let Some(Some(t)) = grp.sources.get_mut(s) {
                        if *t > lmqt {
                            *t = lmqt;
                        }
                    }
                    grp.source_queries_left.insert(*s, count);
                }
            }
            // RFC 3376 6.6.3.1: lower the group timer to LMQT and query the
            // group LMQC times.
            if q_group && grp.mode == FilterMode::Exclude && compat >= 2 {
                if grp.group_timer.is_some_and(|t| t > lmqt) {
                    grp.group_timer = Some(lmqt);
                }
                grp.group_queries_left = count;
            }
            if grp.group_queries_left > 0 || !grp.source_queries_left.is_empty() {
                send_group_queries(now, st, group, ours, out);
            }
        }
        finish_group(now, st, group, out);
    }

    /// The group's timer fired: expire what is due (RFC 3376 6.3, 6.5,
    /// 7.3.2) and send due retransmissions (6.6.3).
    fn group_timer(&mut self, now: Timestamp, idx: u32, group: Ipv4Addr, out: &mut Out) {
        let ours = self.our_addr(idx);
        let Some(st) = self.ifaces.get_mut(&idx) else {
            return;
        };
        let Some(grp) = st.groups.get_mut(&group) else {
            return;
        };
        let due = |t: &Option<Timestamp>| t.is_some_and(|t| t <= now);
        // RFC 3376 7.3.2: host-present timers.
        if due(&grp.v1_host) {
            grp.v1_host = None;
        }
        if due(&grp.v2_host) {
            grp.v2_host = None;
        }
        // RFC 3376 6.3: a source timer runs out. INCLUDE: the source is
        // deleted. EXCLUDE: it moves to the exclude list (timer zero).
        match grp.mode {
            FilterMode::Include => grp.sources.retain(|_, t| !due(t)),
            FilterMode::Exclude => {
                for t in grp.sources.values_mut() {
                    if due(t) {
                        *t = None;
                    }
                }
            }
        }
        // RFC 3376 6.5: the group timer runs out in EXCLUDE mode: with
        // running sources the group becomes INCLUDE of them (the exclude
        // list is deleted); without, it is deleted.
        if grp.mode == FilterMode::Exclude && due(&grp.group_timer) {
            grp.group_timer = None;
            grp.mode = FilterMode::Include;
            grp.sources.retain(|_, t| t.is_some());
        }
        // RFC 3376 6.6.3: retransmissions.
        if due(&grp.next_retransmit) {
            grp.next_retransmit = None;
            if matches!(st.role, Role::Querier { .. }) {
                send_group_queries(now, st, group, ours, out);
            }
        }
        finish_group(now, st, group, out);
    }
}

fn event(kind: &'static str, payload: IgmpEvent) -> IgmpAction {
    Action::Event(Event {
        category: EventCategory::Igmp,
        kind,
        payload,
    })
}

fn rearm_group(idx: u32, g: Ipv4Addr, grp: &Group, out: &mut Out) {
    match grp.next_deadline() {
        Some(at) => out.push(Action::ArmTimer {
            key: Timer::Group(idx, g),
            at,
        }),
        None => out.push(Action::CancelTimer {
            key: Timer::Group(idx, g),
        }),
    }
}

/// A general query in the interface's version (RFC 3376 4.1, RFC 2236 2,
/// RFC 1112), to 224.0.0.1. Not sent without an address to send it from.
fn send_general(st: &mut IfState, ours: Option<Ipv4Addr>, out: &mut Out) {
    if ours.is_none() {
        return;
    }
    let p = &st.params;
    let repr = match p.version {
        1 => Repr::QueryV1 {
            group: Ipv4Addr::UNSPECIFIED,
        },
        2 => Repr::QueryV2 {
            max_resp_time: resp_code(p.query_response_interval, 2),
            group: Ipv4Addr::UNSPECIFIED,
        },
        _ => v3_query(p, Ipv4Addr::UNSPECIFIED, false, Vec::new()),
    };
    st.counters.general_queries_sent += 1;
    out.push(Action::Send {
        interface: st.ifc.clone(),
        destination: ALL_SYSTEMS,
        message: Message::Igmp(repr),
    });
}

fn v3_query(p: &InterfaceParams, group: Ipv4Addr, s_flag: bool, sources: Vec<Ipv4Addr>) -> Repr {
    let resp = if group.is_unspecified() {
        p.query_response_interval
    } else {
        p.last_member_query_interval
    };
    Repr::QueryV3 {
        max_resp_code: resp_code(resp, 3),
        group,
        s_flag,
        // RFC 3376 4.1.6: QRV is 0 when the robustness exceeds 7.
        qrv: if p.robustness <= 7 { p.robustness } else { 0 },
        qqic: encode_code(p.query_interval.as_secs().min(u64::from(u32::MAX)) as u32),
        sources,
    }
}

/// Sends the group-specific and group-and-source-specific queries due now
/// and schedules the next retransmission (RFC 3376 6.6.3.1, 6.6.3.2): the
/// S flag is set for what a report raised above LMQT since the first one.
fn send_group_queries(
    now: Timestamp,
    st: &mut IfState,
    group: Ipv4Addr,
    ours: Option<Ipv4Addr>,
    out: &mut Out,
) {
    let p = st.params.clone();
    let lmqt = now + p.last_member_query_time();
    let Some(grp) = st.groups.get_mut(&group) else {
        return;
    };
    let compat = grp.compat(now, p.version);
    let mut msgs: Vec<(Repr, bool)> = Vec::new();
    if grp.group_queries_left > 0 {
        grp.group_queries_left -= 1;
        let s_flag = grp.group_timer.is_some_and(|t| t > lmqt);
        let repr = if compat <= 2 {
            Repr::QueryV2 {
                max_resp_time: resp_code(p.last_member_query_interval, 2),
                group,
            }
        } else {
            v3_query(&p, group, s_flag, Vec::new())
        };
        msgs.push((repr, false));
    }
    if !grp.source_queries_left.is_empty() {
        let (mut high, mut low) = (Vec::new(), Vec::new());
        for (s, n) in grp.source_queries_left.iter_mut() {
            *n = n.saturating_sub(1);
            match grp.sources.get(s) {
                Some(Some(t)) if *t > lmqt => high.push(*s),
                Some(_) => low.push(*s),
                None => {}
            }
        }
        grp.source_queries_left
            .retain(|s, n| *n > 0 && grp.sources.contains_key(s));
        for (list, s_flag) in [(high, true), (low, false)] {
            for chunk in list.chunks(MAX_QUERY_SOURCES) {
                msgs.push((v3_query(&p, group, s_flag, chunk.to_vec()), true));
            }
        }
    }
    grp.next_retransmit = if grp.group_queries_left > 0 || !grp.source_queries_left.is_empty() {
        Some(now + p.last_member_query_interval)
    } else {
        None
    };
    if ours.is_none() {
        return;
    }
    for (repr, with_sources) in msgs {
        if with_sources {
            st.counters.group_source_queries_sent += 1;
        } else {
            st.counters.group_queries_sent += 1;
        }
        out.push(Action::Send {
            interface: st.ifc.clone(),
            destination: group,
            message: Message::Igmp(repr),
        });
    }
}

/// After any change to a group: publish its filter to the MRIB if it moved,
/// report a compatibility-mode change, delete it when nothing is left, and
/// re-arm its timer.
fn finish_group(now: Timestamp, st: &mut IfState, group: Ipv4Addr, out: &mut Out) {
    let idx = st.ifc.index;
    let version = st.params.version;
    let Some(grp) = st.groups.get_mut(&group) else {
        return;
    };
    if grp.is_dead() {
        let leaving = grp.leaving;
        let published = grp.published.is_some();
        st.groups.remove(&group);
        out.push(Action::CancelTimer {
            key: Timer::Group(idx, group),
        });
        if published {
            out.push(Action::Mrib(MribUpdate::RemoveLocalMembers {
                interface: st.ifc.clone(),
                group,
            }));
            let mut e = IgmpEvent::on(&st.ifc);
            e.group = Some(group);
            e.reason = Some(if leaving { "leave" } else { "expired" });
            out.push(event("leave", e));
        }
        return;
    }
    let compat = grp.compat(now, version);
    let filter = grp.filter();
    let first = grp.published.is_none();
    if grp.published.as_ref() != Some(&filter) {
        grp.published = Some(filter.clone());
        out.push(Action::Mrib(MribUpdate::SetLocalMembers {
            interface: st.ifc.clone(),
            group,
            filter,
        }));
    }
    if first {
        grp.compat = compat;
        let mut e = IgmpEvent::on(&st.ifc);
        e.group = Some(group);
        e.reporter = Some(grp.last_reporter);
        e.version = Some(compat);
        out.push(event("join", e));
    } else if compat != grp.compat {
        grp.compat = compat;
        let mut e = IgmpEvent::on(&st.ifc);
        e.group = Some(group);
        e.version = Some(compat);
        out.push(event("compatibility-change", e));
    }
    rearm_group(idx, group, grp, out);
}

impl Protocol for Igmp {
    type Message = Message;
    type Timer = Timer;
    type Config = Config;
    type Event = IgmpEvent;

    fn handle(
        &mut self,
        now: Timestamp,
        input: Input<Message, Timer, Config>,
        out: &mut Vec<IgmpAction>,
    ) {
        match input {
            Input::Config(c) => {
                self.config = c;
                self.sync(now, out);
            }
            Input::InterfaceUp(i) => {
                if self.down.remove(&i.index) {
                    self.sync(now, out);
                }
            }
            Input::InterfaceDown(i) => {
                self.down.insert(i.index);
                self.stop(i.index, "interface-down", out);
            }
            Input::AddressAdded { interface, address } => {
                let had = self.our_addr(interface.index);
                self.addrs
                    .entry(interface.index)
                    .or_default()
                    .insert(address);
                // The first address lets a silent querier start querying
                // (RFC 3376 6.6.2: we are querier until told otherwise).
                if had.is_none()
                    && self
                        .ifaces
                        .get(&interface.index)
                        .is_some_and(|s| matches!(s.role, Role::Querier { .. }))
                {
                    self.interface_event(now, interface.index, IfEvent::Start, out);
                }
            }
            Input::AddressRemoved { interface, address } => {
                if let Some(a) = self.addrs.get_mut(&interface.index) {
                    a.remove(&address);
                    if a.is_empty() {
                        self.addrs.remove(&interface.index);
                    }
                }
            }
            Input::Packet(p) => self.packet(now, p, out),
            Input::Timer(Timer::Query(i)) => self.interface_event(now, i, IfEvent::QueryTimer, out),
            Input::Timer(Timer::OtherQuerier(i)) => {
                self.interface_event(now, i, IfEvent::OtherQuerierExpired, out)
            }
            Input::Timer(Timer::Group(i, g)) => self.group_timer(now, i, g, out),
            Input::Shutdown => {
                let all: Vec<u32> = self.ifaces.keys().copied().collect();
                for i in all {
                    self.stop(i, "disabled", out);
                }
            }
            Input::Rpf(_)
            | Input::LocalMembers { .. }
            | Input::DataPlane(_)
            | Input::SourceActive { .. } => {}
        }
    }
}
