//! The answers of the control protocol, typed.
//!
//! Every `result` an `mcrd` sends is one of the structs below, serialised
//! with serde; `mcrctl` reads the same structs back, so the two cannot drift
//! apart. The requests are [`Request`](super::Request). A command's answer
//! type is [`Request::reply_kind`](super::Request::reply_kind); field names
//! are the wire names and never change within one protocol version
//! ([`PROTOCOL_VERSION`](super::PROTOCOL_VERSION)). Counters are
//! cumulative since the rule (by id) first appeared; rates are per second;
//! byte counts are UDP payload bytes.

use crate::compile::{Origin, RuleState};
use crate::namespace::Namespace;
use mcr_config::{Input, Output};
use mcr_dataplane::Drops;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The first line a client reads: `{"hello":"mcrd","version":...,"protocol":1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `"mcrd"`.
    pub hello: String,
    /// The daemon's package version.
    pub version: String,
    /// The control protocol version (see [`super::PROTOCOL_VERSION`]).
    pub protocol: u32,
}

/// `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Always `true`.
    pub pong: bool,
}

/// `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's package version.
    pub version: String,
    /// The control protocol version.
    pub protocol: u32,
}

/// `status`: the daemon's state and totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's package version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The `--config` file, if any.
    pub config_file: Option<PathBuf>,
    /// FNV-1a 64 of the config file's bytes as last applied, 16 hex digits.
    pub config_hash: Option<String>,
    /// The control socket's path.
    pub control_socket: PathBuf,
    /// The network namespace the daemon runs in.
    pub namespace: Namespace,
    /// CPUs running data-plane engines.
    pub cores: Vec<usize>,
    /// Rules by state.
    pub rules: RuleCounts,
    /// Packets relayed, over the rules in the running table.
    pub packets: u64,
    /// UDP payload bytes relayed.
    pub bytes: u64,
    /// Packets dropped, over all engines and reasons.
    pub drops: u64,
    /// What each routing protocol does now (not what the file asks for).
    pub protocols: Protocols,
    /// The kernel fast path as it runs.
    pub kernel_fast_path: FastPathStatus,
    /// The capture sockets reading through a receive ring
    /// (`data_plane.receive_ring`) as they are open now; absent when none
    /// does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_ring: Option<ReceiveRingStatus>,
    /// Input interfaces another mcrd in this network namespace relays too
    /// (each is logged): on the engines every datagram would go out twice,
    /// on the fast path this instance would see nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_inputs: Vec<String>,
    /// Connected control clients (this one included).
    pub control_clients: usize,
    /// Events not delivered to subscribers that fell behind.
    pub events_dropped: u64,
    /// The last reload (not dry runs), `null` before the first.
    pub last_reload: Option<ReloadRecord>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// The RPF provider (`control_plane.rpf_provider`) as it runs; absent
    /// when `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpf_provider: Option<crate::rpf::RpfProviderStatus>,
    /// The namespace's mroute socket (the kernel MFC routes are installed
    /// in): whether this instance holds it; absent when nothing routes
    /// (no IGMP proxy, PIM off, no route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mroute_socket: Option<crate::mroute::MrouteSocketStatus>,
}

/// The receive rings of the open capture sockets (one socket per engine and
/// input interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveRingStatus {
    /// Capture sockets with a ring.
    pub sockets: usize,
    /// Slots per ring (the largest, if they differ).
    pub slots: u32,
    /// Bytes mapped by all of them together (kernel memory, resident).
    pub bytes: u64,
}

/// Rule counts by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounts {
    /// Every rule, from the file and from `add`.
    pub total: usize,
    /// Forwarding to every output.
    pub active: usize,
    /// Forwarding to some outputs; others wait for their interface.
    pub partial: usize,
    /// Not forwarding (e.g. the input interface is missing).
    pub inactive: usize,
}

/// The routing protocols, each as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocols {
    /// IGMP (RFC 2236, RFC 3376).
    pub igmp: ProtocolState,
    /// PIM-SM (RFC 7761).
    pub pim: ProtocolState,
    /// MSDP (RFC 3618).
    pub msdp: ProtocolState,
}

/// One routing protocol: whether the config enables it and whether it runs.
/// `configured` without `running` means this build does not run it yet (or
/// it failed to start: the log says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolState {
    /// The running config enables it.
    pub configured: bool,
    /// An instance of it runs in this daemon.
    pub running: bool,
}

/// The kernel fast path (tc ingress program) as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastPathStatus {
    /// A program is loaded and the config wants it.
    pub enabled: bool,
    /// Rules it forwards.
    pub rules: usize,
    /// Interfaces it is attached to.
    pub interfaces: Vec<String>,
    /// Why it is off, when the config wants it and it could not load.
    pub error: Option<String>,
}

/// The outcome of the last reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadRecord {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// Whether it was applied.
    pub ok: bool,
    /// A summary, or every diagnostic (one per line) when refused.
    pub message: String,
}

/// `list`: every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleList {
    /// In the order of the running config (file first, then runtime).
    pub rules: Vec<RuleEntry>,
}

/// One rule as `list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// The stable rule id (its name, or a hash of its input).
    pub id: String,
    /// The rule's name, if it has one.
    pub name: Option<String>,
    /// What it captures.
    pub input: Input,
    /// Where it sends.
    pub outputs: Vec<Output>,
    /// The file or `add`.
    pub origin: Origin,
    /// Whether it forwards (`state`, with `waiting` or `reason`); absent
    /// only between a change and its compilation.
    #[serde(flatten)]
    pub state: Option<RuleState>,
    /// Which data path carries it (absent while it is not in the running
    /// table: inactive, or between a change and its compilation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<DataPath>,
    /// Why it is not on the kernel fast path (with `path: "engines"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_reason: Option<String>,
}

/// The data path that forwards a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPath {
    /// The tc ingress program on its input interface (the kernel).
    Fast,
    /// The user-space engines (`AF_PACKET` capture).
    Engines,
}

/// `add`: the new rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    /// Its id.
    pub id: String,
    /// Its state once the new table runs.
    pub state: Option<RuleState>,
}

/// `remove`: the removed rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    /// Its id.
    pub removed: String,
}

/// `stats`: counters and rates per rule, output and engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// One entry per rule of the running table.
    pub rules: Vec<RuleStatsEntry>,
    /// One entry per data-plane engine.
    pub engines: Vec<EngineStatsEntry>,
    /// Drops summed over engines.
    pub drops: Drops,
}

/// A rule's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatsEntry {
    /// Rule id.
    pub id: String,
    /// Datagrams matched.
    pub packets: u64,
    /// UDP payload bytes matched.
    pub bytes: u64,
    /// Datagrams per second (last sampling period, about 1 s).
    pub pps: f64,
    /// Bits per second of payload.
    pub bps: f64,
    /// One entry per output, in rule order.
    pub outputs: Vec<OutputStatsEntry>,
}

/// An output's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputStatsEntry {
    /// `GROUP:PORT@INTERFACE`.
    pub output: String,
    /// Datagrams sent.
    pub packets: u64,
    /// UDP payload bytes sent.
    pub bytes: u64,
    /// Datagrams per second.
    pub pps: f64,
    /// Bits per second of payload.
    pub bps: f64,
    /// Dropped because the output's socket buffer was full.
    pub full: u64,
    /// Dropped because the send failed otherwise.
    pub errors: u64,
}

/// An engine as `stats` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineStatsEntry {
    /// Engine number.
    pub engine: usize,
    /// The CPU it is pinned to.
    pub cpu: usize,
    /// Frames taken from its capture sockets.
    pub frames: u64,
    /// Frames per second.
    pub pps: f64,
    /// Sends that carried two or more datagrams as one UDP GSO frame
    /// (`data_plane.receive_ring` only), and the datagrams in them.
    #[serde(default)]
    pub batched_sends: u64,
    #[serde(default)]
    pub batched_datagrams: u64,
    /// Its drops by reason.
    pub drops: Drops,
}

/// `cores`: one entry per engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cores {
    /// The engines.
    pub engines: Vec<CoreEntry>,
}

/// An engine as `cores` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreEntry {
    /// Engine number.
    pub engine: usize,
    /// The CPU it is pinned to.
    pub cpu: usize,
    /// Frames taken from its capture sockets.
    pub frames: u64,
    /// Frames per second.
    pub pps: f64,
    /// Input interfaces of the active and partial rules.
    pub interfaces: Vec<String>,
    /// Its drops, all reasons.
    pub drops: u64,
    /// The forwarding table generation it runs.
    pub table_generation: u64,
}

/// `config_show`: the running state as JSON5 text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigText {
    /// The text, as `config_save` would write it.
    pub json5: String,
}

/// `config_check`: a valid file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChecked {
    /// The file read.
    pub file: PathBuf,
    /// Always `true` (an invalid file is an `invalid_config` error).
    pub valid: bool,
    /// Its rule count.
    pub rules: usize,
}

/// `config_save`: the file written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The file written.
    pub file: PathBuf,
}

/// `log_level_get` and `log_level_set`: the filter in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    /// An `EnvFilter` directive list, e.g. `info,mcr_controlplane=debug`.
    pub filter: String,
}

/// `reload`: the difference between the running rules and the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadSummary {
    /// The file read.
    pub file: PathBuf,
    /// Nothing was applied.
    pub dry_run: bool,
    /// Ids of rules the file adds.
    pub added: Vec<String>,
    /// Ids of rules the file no longer has.
    pub removed: Vec<String>,
    /// Ids of rules whose input or outputs changed.
    pub changed: Vec<String>,
    /// How many rules stay as they are.
    pub unchanged: usize,
    /// Ids of rules added at run time that the reload removes.
    pub runtime_rules_removed: Vec<String>,
    /// Sections other than `rules` that differ (`igmp`, `pim`, ...).
    pub sections_changed: Vec<String>,
    /// A remark for the operator (e.g. a setting that needs a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether the table was rebuilt: `false` when nothing it depends on
    /// changed (rules, data-plane settings, `multicast_ttl`), so the running
    /// table was kept (absent on a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recompiled: Option<bool>,
    /// Microseconds spent reading and validating (absent on a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_us: Option<u64>,
    /// Microseconds spent compiling and publishing the table (absent on a
    /// dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_swap_us: Option<u64>,
}

/// `subscribe`: the categories this connection now streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// Event categories.
    pub subscribed: Vec<super::protocol::EventCategory>,
}

/// `pim_neighbors`: every PIM neighbour (RFC 7761 section 4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimNeighbors {
    /// By interface, then address.
    pub neighbors: Vec<PimNeighborEntry>,
}

/// One PIM neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimNeighborEntry {
    /// Interface it is on.
    pub interface: String,
    /// Its address (the source of its Hellos).
    pub address: std::net::Ipv4Addr,
    /// `hello`, `injected` or `both`.
    pub learned_by: String,
    /// Seconds since it was first seen.
    pub uptime_secs: u64,
    /// Seconds until its Neighbor Liveness Timer expires; `null` for never
    /// (injected only, or Holdtime 0xFFFF).
    pub expires_in_secs: Option<u64>,
    /// Holdtime of its last Hello, seconds.
    pub holdtime_secs: Option<u16>,
    /// The DR priority the election uses; `null` when its Hellos omit it.
    pub dr_priority: Option<u32>,
    /// Its Generation ID.
    pub generation_id: Option<u32>,
    /// Whether it is the interface's DR.
    pub dr: bool,
    /// The tag it was injected with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Its secondary addresses (Hello Address List).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondary_addresses: Vec<std::net::Ipv4Addr>,
}

/// `pim_interfaces`: every interface PIM runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimInterfaces {
    /// By interface index.
    pub interfaces: Vec<PimInterfaceEntry>,
    /// Configured PIM interfaces that PIM does not run on now (missing or
    /// down).
    pub waiting: Vec<String>,
    /// PIM packets that arrived on interfaces PIM does not run on.
    pub not_pim_interface: u64,
    /// Hellos that could not be sent (socket errors).
    pub send_errors: u64,
}

/// One PIM interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimInterfaceEntry {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub ifindex: u32,
    /// Our primary address on it.
    pub address: Option<std::net::Ipv4Addr>,
    /// The elected DR (RFC 7761 section 4.3.2).
    pub dr: Option<std::net::Ipv4Addr>,
    /// Whether we are the DR.
    pub is_dr: bool,
    /// Our DR priority.
    pub dr_priority: u32,
    /// Hello period, seconds.
    pub hello_period_secs: u64,
    /// Holdtime we advertise (3.5 x period), seconds.
    pub holdtime_secs: u16,
    /// Milliseconds until our next Hello.
    pub next_hello_ms: Option<u64>,
    /// Our Generation ID on it.
    pub generation_id: u32,
    /// Neighbours on it.
    pub neighbors: usize,
    /// Seconds PIM has run on it.
    pub uptime_secs: u64,
    /// Messages, and received messages not used by reason.
    pub counters: mcr_protocols::pim::PimCounters,
}

/// `pim_add_neighbor`, `pim_remove_neighbor`, `pim_clear_neighbors`,
/// `pim_external_neighbors`: the injected neighbours after the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimExternalNeighbors {
    /// Every injected neighbour.
    pub neighbors: Vec<PimExternalNeighborEntry>,
    /// How many the command added, changed or removed.
    pub changed: usize,
}

/// One injected neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimExternalNeighborEntry {
    /// Interface name.
    pub interface: String,
    /// Address.
    pub address: std::net::Ipv4Addr,
    /// DR priority (`null`: 1).
    pub priority: Option<u32>,
    /// Free text.
    pub tag: Option<String>,
    /// Whether PIM runs on its interface now (else it waits).
    pub active: bool,
}

/// `pim_add_rpf_route`, `pim_remove_rpf_route`, `pim_clear_rpf_routes`,
/// `pim_list_rpf_routes`: the static RPF table after the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimRpfRoutes {
    /// Every static route, by prefix.
    pub routes: Vec<crate::rpf::StaticRoute>,
    /// How many the command added, changed or removed.
    pub changed: usize,
}

/// `pim_query_rpf`: the RPF answer for a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimRpfAnswer {
    /// The source asked about.
    pub source: std::net::Ipv4Addr,
    /// Who answered: `disabled`, `static`, `kernel` or `external`.
    pub provider: String,
    /// Whether there is a route.
    pub found: bool,
    /// Upstream (RPF) interface.
    pub interface: Option<String>,
    /// Upstream neighbour (`null`: directly connected).
    pub neighbor: Option<std::net::Ipv4Addr>,
    /// Route metric.
    pub metric: Option<u32>,
    /// Metric preference (administrative distance).
    pub preference: Option<u32>,
}

/// `pim_join_state`: the PIM-SM tree state (RFC 7761 section 4.1), one
/// entry per `(*,G)`, `(S,G)` and `(S,G,rpt)`, by group then source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimJoinState {
    /// The entries.
    pub entries: Vec<PimJoinEntry>,
    /// `(*,G)` plus `(S,G)` entries held.
    pub entry_count: usize,
    /// Their bound (`pim.max_tree_entries`).
    pub max_entries: usize,
    /// Tree counters, including what was received and not used, by reason.
    pub counters: PimTreeCounters,
}

/// One `(*,G)`, `(S,G)` or `(S,G,rpt)` entry of `pim_join_state`. Times
/// are seconds until the timer fires (`null`: not running).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimJoinEntry {
    /// `star-g`, `sg` or `sg-rpt`.
    pub kind: String,
    /// The group.
    pub group: std::net::Ipv4Addr,
    /// The source (`sg`, `sg-rpt`).
    pub source: Option<std::net::Ipv4Addr>,
    /// RP(G) (`null`: no RP known for the group).
    pub rp: Option<std::net::Ipv4Addr>,
    /// Upstream state: `joined` / `not-joined` (sections 4.5.5, 4.5.6);
    /// for `sg-rpt` `rpt-not-joined` / `pruned` / `not-pruned` (4.5.7).
    pub upstream: String,
    /// RPF interface (toward the RP for `star-g` and `sg-rpt`, toward S for
    /// `sg`).
    pub rpf_interface: Option<String>,
    /// RPF' neighbour (`null`: none, or directly connected / we are the RP).
    pub rpf_neighbor: Option<std::net::Ipv4Addr>,
    /// Join Timer (`star-g`, `sg`), or `(S,G,rpt)` Override Timer, seconds.
    pub join_timer: Option<u64>,
    /// SPTbit (`sg`, section 4.2.2).
    pub spt_bit: Option<bool>,
    /// Keepalive Timer (`sg`, section 4.1.2), seconds.
    pub keepalive: Option<u64>,
    /// Register state at the first-hop DR (`sg`, section 4.4.1): `no-info`,
    /// `join`, `join-pending`, `prune`.
    pub register: Option<String>,
    /// The RP the register tunnel points at.
    pub register_rp: Option<std::net::Ipv4Addr>,
    /// Downstream state per interface.
    pub downstream: Vec<PimDownstreamEntry>,
}

/// Downstream state of an entry on one interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimDownstreamEntry {
    /// Interface name.
    pub interface: String,
    /// `join` / `prune-pending` (`star-g`, `sg`; `local-members`: IGMP
    /// members where we are the DR, section 4.1.6 `pim_include`); `prune` /
    /// `prune-pending`
    /// / `prune-tmp` / `prune-pending-tmp` (`sg-rpt`); `none` when only an
    /// Assert state is held there.
    pub state: String,
    /// Expiry Timer, seconds.
    pub expiry: Option<u64>,
    /// Prune-Pending Timer, seconds.
    pub prune_pending: Option<u64>,
    /// Assert state (section 4.6): `winner` or `loser`; `null`: NoInfo.
    pub assert: Option<String>,
    /// The Assert winner's address on the interface (this router's own
    /// while `winner`).
    pub assert_winner: Option<std::net::Ipv4Addr>,
    /// The winner's assert metric (section 4.6.3; ours while `winner`).
    pub assert_metric: Option<PimAssertMetric>,
    /// Assert Timer, seconds left (a winner re-asserts when it runs out, a
    /// loser forgets the winner).
    pub assert_timer: Option<u64>,
}

/// An assert metric as shown (RFC 7761 section 4.6.3): lower is better,
/// compared by `rpt` (clear wins), then `preference`, then `metric`, then
/// the higher address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PimAssertMetric {
    /// RPT bit: the metric is toward the RP (a `(*,G)` Assert).
    pub rpt: bool,
    /// Metric preference (administrative distance of the route used).
    pub preference: u32,
    /// The route's metric.
    pub metric: u32,
}

/// Counters of `pim_join_state`: the protocol's tree counters and what
/// the control plane counted around them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimTreeCounters {
    /// The protocol's counters (RFC 7761 messages used and ignored, by
    /// reason; entries refused at the bound).
    pub tree: mcr_protocols::pim::tree::TreeCounters,
    /// PIM messages that failed to parse, by reason, all interfaces.
    pub malformed: PimMalformedCounters,
    /// PIM messages received on interfaces where PIM does not run.
    pub not_pim_interface: u64,
    /// Route updates the MRIB refused at its route bound.
    pub mrib_route_limit: u64,
    /// Other MRIB refusals (not a multicast group).
    pub mrib_refused: u64,
    /// RPF lookups not made because the tracked set was at its bound.
    pub rpf_untracked: u64,
    /// RPF lookups the provider could not answer.
    pub rpf_unavailable: u64,
    /// Data packets encapsulated in Registers and sent to the RP.
    pub register_data_sent: u64,
    /// Data packets for the RP dropped: no register tunnel up for (S,G).
    pub register_data_no_tunnel: u64,
    /// Data packets for the RP dropped: too big or not sent.
    pub register_data_dropped: u64,
    /// Register-tunnel changes dropped because nobody collected them.
    pub tunnel_changes_dropped: u64,
    /// PIM messages that could not be sent.
    pub send_errors: u64,
}

/// Malformed PIM messages by reason, summed over interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PimMalformedCounters {
    /// The checksum did not verify.
    pub bad_checksum: u64,
    /// Truncated message.
    pub truncated: u64,
    /// Not PIM version 2.
    pub bad_version: u64,
    /// Bad option or encoded address.
    pub bad_option: u64,
    /// Unknown message type.
    pub unknown_type: u64,
}

/// `pim_rp`, `pim_set_static_rp`, `pim_set_rp`: the RP mappings and, when
/// asked, which RP serves a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimRp {
    /// `pim.rp_address` in force (this router as an RP).
    pub rp_address: Option<std::net::Ipv4Addr>,
    /// `config` or `runtime` (set or cleared by `pim_set_rp`, until the
    /// next reload); `null` when no address is set by either.
    pub rp_address_origin: Option<String>,
    /// Static mappings in force.
    pub static_rp: Vec<PimRpMapping>,
    /// The answer for `group`, when one was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<PimRpForGroup>,
}

/// One static RP mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimRpMapping {
    /// Group range, as written.
    pub group: String,
    /// The RP.
    pub rp: std::net::Ipv4Addr,
    /// `config` or `runtime`.
    pub origin: String,
    /// Whether the RP is this router.
    pub local: bool,
}

/// Which RP serves a group (RFC 7761 section 4.7: longest static range,
/// else `rp_address`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PimRpForGroup {
    /// The group asked about.
    pub group: std::net::Ipv4Addr,
    /// RP(G) (`null`: none).
    pub rp: Option<std::net::Ipv4Addr>,
    /// Why: the static range that maps it, or `rp_address`.
    pub via: Option<String>,
    /// Whether the RP is this router.
    pub local: bool,
}

pub use mcr_protocols::igmp::{
    Counters as IgmpCounters, GroupView as IgmpGroup, InterfaceView as IgmpInterface,
    InvalidCounters as IgmpInvalidCounters, SourceView as IgmpSource,
};
pub use mcr_protocols::FilterMode;

/// `mroute`: every route of the MRIB, in group order (`(*,G)` before the
/// group's `(S,G)`s), with where each is installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mroutes {
    /// The routes.
    pub routes: Vec<Mroute>,
    /// The namespace's mroute socket; absent when nothing routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<crate::mroute::MrouteSocketStatus>,
    /// Upcalls read and what was dropped or refused, since start.
    pub counters: crate::mroute::MrouteCounters,
    /// The IGMP proxy, when `igmp.proxy` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
}

/// The IGMP proxy (RFC 4605) as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {
    /// The upstream interface.
    pub upstream: String,
    /// The downstream interfaces.
    pub downstream: Vec<String>,
    /// Groups joined upstream now (the merged downstream membership).
    pub upstream_groups: usize,
    /// Groups refused at the bound (4096) or whose upstream join failed.
    pub dropped_groups: u64,
    /// Why it does not run (upstream interface missing or down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_running: Option<String>,
}

/// One route as `mcrctl mroute` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mroute {
    /// The source of an `(S,G)`; `null` for `(*,G)`.
    pub source: Option<std::net::Ipv4Addr>,
    /// The group.
    pub group: std::net::Ipv4Addr,
    /// Every origin contributing (`static`, `pim`, `msdp`, `igmp`).
    pub origins: Vec<mcr_protocols::Origin>,
    /// The incoming (RPF) interface; `null` when no origin names one (the
    /// route then forwards nothing).
    pub iif: Option<String>,
    /// The RPF neighbour, when known.
    pub rpf_neighbor: Option<std::net::Ipv4Addr>,
    /// Outgoing interfaces, each with why it is there.
    pub oifs: Vec<MrouteOif>,
    /// Seconds since the route appeared.
    pub uptime_secs: u64,
    /// Packets forwarded by its kernel MFC entries (`SIOCGETSGCNT`); for a
    /// `(*,G)`, summed over the `(S,G)` entries made for its sources.
    pub packets: u64,
    /// Bytes of those packets (whole IP packets).
    pub bytes: u64,
    /// Packets of the route that arrived on another interface (RPF
    /// failures, not forwarded).
    pub wrong_if: u64,
    /// `kernel`, or `not installed: REASON`.
    pub installed: String,
    /// For a `(*,G)`: the sources with an `(S,G)` entry made from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<std::net::Ipv4Addr>,
}

/// An outgoing interface of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteOif {
    /// Interface name.
    pub interface: String,
    /// `origin:reason` for each origin that wants it, e.g.
    /// `igmp:local-members`, `pim:pim-join`.
    pub reasons: Vec<String>,
}

/// `igmp_groups`: every group IGMP tracks, by interface then group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgmpGroups {
    /// Groups; timers are seconds remaining.
    pub groups: Vec<IgmpGroup>,
}

/// `igmp_interfaces`: the interfaces IGMP runs on, those it should run on
/// but cannot, and the runtime changes in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgmpInterfaces {
    /// Interfaces IGMP runs on.
    pub interfaces: Vec<IgmpInterface>,
    /// Interfaces wanted (config or runtime) where IGMP does not run.
    pub not_running: Vec<IgmpNotRunning>,
    /// `igmp_enable`/`igmp_disable` changes in force (until reload).
    pub runtime: Vec<IgmpRuntime>,
}

/// An interface IGMP should run on but does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpNotRunning {
    /// Interface name.
    pub interface: String,
    /// Why, for people.
    pub reason: String,
}

/// A runtime IGMP change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpRuntime {
    /// Interface name.
    pub interface: String,
    /// `true`: enabled at run time; `false`: disabled at run time.
    pub enabled: bool,
}

/// `igmp_enable`/`igmp_disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpToggled {
    /// Interface name.
    pub interface: String,
    /// What was asked.
    pub enabled: bool,
    /// Whether an IGMP instance runs there now.
    pub running: bool,
    /// Whether a runtime change is now in force for the interface (removed
    /// by the next reload); `false` when the request put it back to what
    /// the config file says.
    pub runtime: bool,
}

/// `msdp_peers`, `msdp_add_peer`, `msdp_remove_peer`: every MSDP peer
/// (RFC 3618) after the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsdpPeers {
    /// Whether an MSDP instance runs (`msdp.enabled` with a
    /// `local_address`).
    pub running: bool,
    /// Our address (the TCP source of the sessions).
    pub local_address: Option<std::net::Ipv4Addr>,
    /// Whether TCP port 639 is open for peers with higher addresses.
    pub listening: bool,
    /// Why it is not, when it is not (e.g. no `CAP_NET_BIND_SERVICE`).
    pub listen_error: Option<String>,
    /// Peers by address.
    pub peers: Vec<MsdpPeerEntry>,
    /// Entries in the SA cache, all peers together.
    pub sa_cache_entries: usize,
    /// `msdp.sa_cache_limit`.
    pub sa_cache_limit: usize,
    /// Active local sources we originate SAs for.
    pub local_sources: usize,
    /// Instance-wide counters (cache full, own RP, unknown peers...).
    pub counters: mcr_protocols::msdp::Counters,
    /// Socket counters (accepts, connects, write buffer drops...).
    pub sockets: crate::msdp::SocketCounters,
}

/// One MSDP peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsdpPeerEntry {
    /// The peer's address.
    pub address: std::net::Ipv4Addr,
    /// Free text.
    pub description: Option<String>,
    /// Mesh group (RFC 3618 section 10.2).
    pub mesh_group: Option<String>,
    /// A default peer (RFC 3618 10.1.3).
    pub default_peer: bool,
    /// RFC 3618 section 11 state: `disabled`, `inactive`, `listen`,
    /// `connecting` or `established`.
    pub state: mcr_protocols::msdp::PeerState,
    /// `connect` when we are the lower address (we open the connection),
    /// `listen` when we are the higher (section 5).
    pub role: String,
    /// Seconds Established (`null` when not).
    pub uptime_secs: Option<u64>,
    /// The session's local TCP address (`null` when none).
    pub local: Option<std::net::SocketAddr>,
    /// The session's remote TCP address.
    pub remote: Option<std::net::SocketAddr>,
    /// SA cache entries learned from the peer now.
    pub sa_cached: usize,
    /// Most SA cache entries learned from it (`sa_limit`).
    pub sa_limit: usize,
    /// SA entries received (`sa_in`), sent (`sa_out`), filtered, limited,
    /// TLVs, establishments.
    pub stats: mcr_protocols::msdp::PeerStats,
    /// TLVs dropped because its write buffer was full.
    pub send_drops: u64,
    /// The last reason its session closed.
    pub last_error: Option<String>,
}

/// `msdp_sa_cache`: the SA cache entries asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsdpSaCache {
    /// By (source, group, RP).
    pub entries: Vec<MsdpSaEntry>,
    /// Entries in the whole cache.
    pub total: usize,
}

/// One SA cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsdpSaEntry {
    /// Source (S).
    pub source: std::net::Ipv4Addr,
    /// Group (G).
    pub group: std::net::Ipv4Addr,
    /// The RP that originated the SA.
    pub origin_rp: std::net::Ipv4Addr,
    /// The peer it was learned from.
    pub learned_from: std::net::Ipv4Addr,
    /// Seconds since it was first learned.
    pub uptime_secs: u64,
    /// Seconds until its SA-State timer runs out (RFC 3618 5.3).
    pub expires_in_secs: u64,
}

/// Any answer's `result`, for the daemon to send. Serialised without a tag:
/// which one it is follows from the request (see
/// [`super::Request::reply_kind`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `ping`.
    Pong(Pong),
    /// `version`.
    Version(VersionInfo),
    /// `status`.
    Status(Box<Status>),
    /// `list`.
    List(RuleList),
    /// `add`.
    Added(Added),
    /// `remove`.
    Removed(Removed),
    /// `stats`.
    Stats(Box<Stats>),
    /// `cores`.
    Cores(Cores),
    /// `config_show`.
    ConfigText(ConfigText),
    /// `config_check`.
    ConfigChecked(ConfigChecked),
    /// `config_save`.
    Saved(Saved),
    /// `log_level_get`, `log_level_set`.
    LogFilter(LogFilter),
    /// `reload`.
    Reload(Box<ReloadSummary>),
    /// `subscribe`.
    Subscribed(Subscribed),
    /// `pim_neighbors`.
    PimNeighbors(PimNeighbors),
    /// `pim_interfaces`.
    PimInterfaces(PimInterfaces),
    /// `pim_add_neighbor`, `pim_remove_neighbor`, `pim_clear_neighbors`,
    /// `pim_external_neighbors`.
    PimExternalNeighbors(PimExternalNeighbors),
    /// `pim_add_rpf_route`, `pim_remove_rpf_route`, `pim_clear_rpf_routes`,
    /// `pim_list_rpf_routes`.
    PimRpfRoutes(PimRpfRoutes),
    /// `pim_query_rpf`.
    PimRpfAnswer(PimRpfAnswer),
    /// `pim_join_state`.
    PimJoinState(Box<PimJoinState>),
    /// `pim_rp`, `pim_set_static_rp`, `pim_set_rp`.
    PimRp(PimRp),
    /// `igmp_groups`.
    IgmpGroups(IgmpGroups),
    /// `igmp_interfaces`.
    IgmpInterfaces(IgmpInterfaces),
    /// `igmp_enable`, `igmp_disable`.
    IgmpToggled(IgmpToggled),
    /// `mroute`.
    Mroutes(Box<Mroutes>),
    /// `msdp_peers`, `msdp_add_peer`, `msdp_remove_peer`.
    MsdpPeers(Box<MsdpPeers>),
    /// `msdp_sa_cache`.
    MsdpSaCache(MsdpSaCache),
}

macro_rules! reply_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Reply {
            fn from(r: $t) -> Reply {
                Reply::$v(r.into())
            }
        })*
    };
}

reply_from!(
    Pong => Pong, VersionInfo => Version, Status => Status, RuleList => List,
    Added => Added, Removed => Removed, Stats => Stats, Cores => Cores,
    ConfigText => ConfigText, ConfigChecked => ConfigChecked, Saved => Saved,
    LogFilter => LogFilter, ReloadSummary => Reload, Subscribed => Subscribed,
    PimNeighbors => PimNeighbors, PimInterfaces => PimInterfaces,
    PimExternalNeighbors => PimExternalNeighbors, PimRpfRoutes => PimRpfRoutes,
    PimRpfAnswer => PimRpfAnswer, PimJoinState => PimJoinState, PimRp => PimRp,
    IgmpGroups => IgmpGroups, IgmpInterfaces => IgmpInterfaces, IgmpToggled => IgmpToggled,
    Mroutes => Mroutes,
    MsdpPeers => MsdpPeers, MsdpSaCache => MsdpSaCache,
);

/// Which answer type a request gets, so a client can read `result` back
/// into the right struct ([`ReplyKind::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// [`Pong`].
    Pong,
    /// [`VersionInfo`].
    Version,
    /// [`Status`].
    Status,
    /// [`RuleList`].
    List,
    /// [`Added`].
    Added,
    /// [`Removed`].
    Removed,
    /// [`Stats`].
    Stats,
    /// [`Cores`].
    Cores,
    /// [`ConfigText`].
    ConfigText,
    /// [`ConfigChecked`].
    ConfigChecked,
    /// [`Saved`].
    Saved,
    /// [`LogFilter`].
    LogFilter,
    /// [`ReloadSummary`].
    Reload,
    /// [`Subscribed`].
    Subscribed,
    /// [`PimNeighbors`].
    PimNeighbors,
    /// [`PimInterfaces`].
    PimInterfaces,
    /// [`PimExternalNeighbors`].
    PimExternalNeighbors,
    /// [`PimRpfRoutes`].
    PimRpfRoutes,
    /// [`PimRpfAnswer`].
    PimRpfAnswer,
    /// [`PimJoinState`].
    PimJoinState,
    /// [`PimRp`].
    PimRp,
    /// [`IgmpGroups`].
    IgmpGroups,
    /// [`IgmpInterfaces`].
    IgmpInterfaces,
    /// [`IgmpToggled`].
    IgmpToggled,
    /// [`Mroutes`].
    Mroutes,
    /// [`MsdpPeers`].
    MsdpPeers,
    /// [`MsdpSaCache`].
    MsdpSaCache,
}

impl ReplyKind {
    /// Reads a `result` value as this kind of answer.
    ///
    /// # Errors
    /// The value does not have this answer's shape (a daemon of another
    /// protocol version, or a bug).
    pub fn parse(self, v: serde_json::Value) -> Result<Reply, serde_json::Error> {
        use serde_json::from_value as f;
        Ok(match self {
            ReplyKind::Pong => Reply::Pong(f(v)?),
            ReplyKind::Version => Reply::Version(f(v)?),
            ReplyKind::Status => Reply::Status(f(v)?),
            ReplyKind::List => Reply::List(f(v)?),
            ReplyKind::Added => Reply::Added(f(v)?),
            ReplyKind::Removed => Reply::Removed(f(v)?),
            ReplyKind::Stats => Reply::Stats(f(v)?),
            ReplyKind::Cores => Reply::Cores(f(v)?),
            ReplyKind::ConfigText => Reply::ConfigText(f(v)?),
            ReplyKind::ConfigChecked => Reply::ConfigChecked(f(v)?),
            ReplyKind::Saved => Reply::Saved(f(v)?),
            ReplyKind::LogFilter => Reply::LogFilter(f(v)?),
            ReplyKind::Reload => Reply::Reload(f(v)?),
            ReplyKind::Subscribed => Reply::Subscribed(f(v)?),
            ReplyKind::PimNeighbors => Reply::PimNeighbors(f(v)?),
            ReplyKind::PimInterfaces => Reply::PimInterfaces(f(v)?),
            ReplyKind::PimExternalNeighbors => Reply::PimExternalNeighbors(f(v)?),
            ReplyKind::PimRpfRoutes => Reply::PimRpfRoutes(f(v)?),
            ReplyKind::PimRpfAnswer => Reply::PimRpfAnswer(f(v)?),
            ReplyKind::PimJoinState => Reply::PimJoinState(f(v)?),
            ReplyKind::PimRp => Reply::PimRp(f(v)?),
            ReplyKind::IgmpGroups => Reply::IgmpGroups(f(v)?),
            ReplyKind::IgmpInterfaces => Reply::IgmpInterfaces(f(v)?),
            ReplyKind::IgmpToggled => Reply::IgmpToggled(f(v)?),
            ReplyKind::Mroutes => Reply::Mroutes(f(v)?),
            ReplyKind::MsdpPeers => Reply::MsdpPeers(f(v)?),
            ReplyKind::MsdpSaCache => Reply::MsdpSaCache(f(v)?),
        })
    }
}

/// One answer line as a client reads it: `{"ok":true,"result":...}` or
/// `{"ok":false,"error":{...}}`, with the request's `id` echoed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The answer (`ok: true`), read with [`ReplyKind::parse`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why not (`ok: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::protocol::ErrorBody>,
    /// The request's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
}
