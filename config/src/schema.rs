//! The configuration types, their defaults and their serde mapping.
//!
//! Field names are the keys of the file. See the crate documentation for the
//! meaning of every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::addr;
use crate::rule_id::RuleId;

/// The whole configuration file: static rules plus the protocol sections.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Static forwarding rules.
    pub rules: Vec<Rule>,
    /// CPUs that run data-plane engines; `None` means all online CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Unprivileged user the daemon drops to after opening its sockets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group owning the control socket (mode 0660).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_socket_group: Option<String>,
    /// Interface name -> CPUs meant to serve it (the seed system's key).
    /// Validated but not acted on yet: see the crate documentation.
    /// A `BTreeMap` so `config save` writes it in a stable order.
    #[serde(
        deserialize_with = "de_pinning",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub pinning: BTreeMap<String, Vec<usize>>,
    /// TTL of multicast outputs that do not set `ttl`; `None` means
    /// [`DEFAULT_MULTICAST_TTL`]. See [`Config::multicast_ttl`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast_ttl: Option<u8>,
    /// IGMP querier / membership tracking.
    pub igmp: IgmpConfig,
    /// PIM-SM.
    pub pim: PimConfig,
    /// MSDP.
    pub msdp: MsdpConfig,
    /// Control-plane integration (RPF provider, event bus).
    pub control_plane: ControlPlaneConfig,
    /// Data-plane choices.
    pub data_plane: DataPlaneConfig,
    /// The Prometheus/OpenMetrics endpoint (off unless `listen` is set).
    #[serde(skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
}

/// TTL of a multicast output when neither the output's `ttl` nor the
/// file's `multicast_ttl` says otherwise: 1 keeps the copy on the link.
pub const DEFAULT_MULTICAST_TTL: u8 = 1;

/// TTL of a unicast output without `ttl` (the usual host default).
pub const DEFAULT_UNICAST_TTL: u8 = 64;

impl Config {
    /// The TTL multicast outputs without their own `ttl` are sent with:
    /// `multicast_ttl` from the file, else [`DEFAULT_MULTICAST_TTL`].
    pub fn multicast_ttl(&self) -> u8 {
        self.multicast_ttl.unwrap_or(DEFAULT_MULTICAST_TTL)
    }
}

/// Reads `pinning` refusing an interface named twice: a plain map would
/// keep the last entry silently, and a file that pins one interface in two
/// places is a mistake worth reporting.
fn de_pinning<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<usize>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, Vec<usize>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object mapping interface names to lists of CPU numbers")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.contains_key(&name) {
                    return Err(de::Error::custom(format!(
                        "interface '{name}' is pinned twice; give each interface one list of CPUs"
                    )));
                }
                let cpus: Vec<usize> = map.next_value()?;
                out.insert(name, cpus);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// One static forwarding rule: traffic matching `input` is sent to every output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Optional name; when present it is the rule id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to capture.
    pub input: Input,
    /// Where to send it (at least one).
    #[serde(default)]
    pub outputs: Vec<Output>,
}

impl Rule {
    /// The stable id of this rule: its name, or a hash of its input key
    /// (see [`RuleId`]).
    pub fn id(&self) -> RuleId {
        match &self.name {
            Some(name) => RuleId::new(name.clone()),
            None => RuleId::from_input(&self.input),
        }
    }
}

/// The traffic a rule captures.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Interface the traffic arrives on.
    pub interface: String,
    /// Destination address (multicast group, or a unicast address).
    #[serde(deserialize_with = "addr::de_group")]
    pub group: Ipv4Addr,
    /// Destination UDP port.
    pub port: u16,
    /// Only accept packets from this (unicast) source; `None` = any source.
    #[serde(
        default,
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Ipv4Addr>,
}

/// One destination of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// Interface to send on.
    pub interface: String,
    /// Destination address (multicast group or unicast host).
    #[serde(deserialize_with = "addr::de_group")]
    pub group: Ipv4Addr,
    /// Destination UDP port.
    pub port: u16,
    /// IP TTL of sent packets: a number (see [`Output::effective_ttl`]),
    /// or `"decrement"`: the input datagram's TTL less one (a datagram
    /// arriving with TTL 1 is not sent on this output), as a router would,
    /// so a loop through other relays dies out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
    /// When the output forwards: always (the default), or only while IGMP
    /// has a member of `group` on `interface` ([`OutputWhen::Members`]).
    #[serde(default, skip_serializing_if = "OutputWhen::is_always")]
    pub when: OutputWhen,
}

/// An output's `ttl`: a fixed value, or the input's TTL less one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    Set(u8),
    Decrement,
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ttl::Set(n) => write!(f, "{n}"),
            Ttl::Decrement => f.write_str("decrement"),
        }
    }
}

impl PartialEq<u8> for Ttl {
    fn eq(&self, n: &u8) -> bool {
        *self == Ttl::Set(*n)
    }
}

impl Serialize for Ttl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ttl::Set(n) => s.serialize_u8(*n),
            Ttl::Decrement => s.serialize_str("decrement"),
        }
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ttl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TTL from 1 to 255, or \"decrement\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ttl, E> {
                u8::try_from(v).map(Ttl::Set).map_err(|_| {
                    E::custom(format!(
                        "ttl {v} is out of range; use a TTL from 1 to 255, or \"decrement\""
                    ))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ttl, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!(
                            "ttl {v} is out of range; use a TTL from 1 to 255, or \"decrement\""
                        ))
                    })
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ttl, E> {
                if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                    Ok(Ttl::Set(v as u8))
                } else {
                    Err(E::custom(format!(
                        "ttl {v} is not a TTL; use a TTL from 1 to 255, or \"decrement\""
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ttl, E> {
                if v == "decrement" {
                    Ok(Ttl::Decrement)
                } else {
                    Err(E::custom(format!("ttl \"{v}\" is not a TTL; use a TTL from 1 to 255, or \"decrement\" (the input's TTL less one)")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// When a relay output forwards (`outputs[].when`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputWhen {
    /// Always (the default; not written by `config save`).
    #[default]
    Always,
    /// Only while the output interface has an IGMP member (RFC 3376 6.3
    /// forwarding state) of the output group that wants traffic from the
    /// output interface's own address (the source the relay sends with):
    /// any-source (EXCLUDE) members, or source-specific members listing
    /// that address. Recomputed at every IGMP membership change, within
    /// one forwarding-table swap.
    Members,
}

impl OutputWhen {
    /// Whether this is [`OutputWhen::Always`].
    pub fn is_always(&self) -> bool {
        *self == OutputWhen::Always
    }
}

impl Output {
    /// Whether each datagram leaves with its input's TTL less one.
    pub fn decrements_ttl(&self) -> bool {
        self.ttl == Some(Ttl::Decrement)
    }

    /// The TTL to send with: `ttl` when set, else `multicast_default`
    /// (the file's [`Config::multicast_ttl`]) for a multicast destination
    /// and [`DEFAULT_UNICAST_TTL`] for a unicast one. The default comes
    /// from the caller because it is a property of the whole file, and a
    /// rule added at run time must follow the same default.
    ///
    /// With `ttl: "decrement"` this is the TTL of the sockets the output
    /// may use; each datagram carries its input's TTL less one.
    pub fn effective_ttl(&self, multicast_default: u8) -> u8 {
        match self.ttl {
            Some(Ttl::Set(ttl)) => ttl,
            None | Some(Ttl::Decrement) if self.group.is_multicast() => multicast_default,
            None | Some(Ttl::Decrement) => DEFAULT_UNICAST_TTL,
        }
    }
}

/// IGMP settings (seed schema names; intervals in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgmpConfig {
    /// Explicit on/off. Absent means "on when `querier_interfaces` is not
    /// empty", which is how the seed system reads a file without this key;
    /// see [`IgmpConfig::is_enabled`]. Kept optional so `config save`
    /// writes it only when the file had it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Interfaces to act as IGMP querier on (and track members on).
    pub querier_interfaces: Vec<String>,
    /// IGMP version: 2 (RFC 2236) or 3 (RFC 3376).
    pub version: u8,
    /// General query interval, seconds.
    pub query_interval: u32,
    /// Max response time advertised in general queries, seconds.
    pub query_response_interval: u32,
    /// Robustness variable.
    pub robustness: u8,
    /// Last Member Query Interval (RFC 3376 8.8), **milliseconds**: the
    /// gap between the group-specific queries sent after a leave, and
    /// their Max Response Time. Leave latency is this times the Last
    /// Member Query Count (= `robustness`). Written by `config save` only
    /// when not the default (1000).
    #[serde(skip_serializing_if = "is_default_lmqi")]
    pub last_member_query_interval_ms: u32,
    /// IGMP proxying (RFC 4605): absent means no proxy. Written by
    /// `config save` only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<IgmpProxyConfig>,
}

/// IGMP proxying (RFC 4605 section 1): members learned on the `downstream`
/// interfaces (which run the IGMP router side automatically) are reported
/// on `upstream` as a host would, and the groups' traffic arriving on
/// `upstream` is routed to the downstream interfaces with members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgmpProxyConfig {
    /// The one interface toward the multicast source (the upstream router).
    pub upstream: String,
    /// The interfaces toward the receivers; at least one, each once, never
    /// the upstream interface.
    pub downstream: Vec<String>,
}

fn is_default_lmqi(v: &u32) -> bool {
    *v == 1000
}

impl IgmpConfig {
    /// Whether the file asks for IGMP: `enabled` when given, else whether
    /// any querier interface is listed.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(!self.querier_interfaces.is_empty())
    }
}

impl Default for IgmpConfig {
    fn default() -> Self {
        IgmpConfig {
            enabled: None,
            querier_interfaces: Vec::new(),
            version: 3,
            query_interval: 125,
            query_response_interval: 10,
            robustness: 2,
            last_member_query_interval_ms: 1000,
            proxy: None,
        }
    }
}

/// PIM-SM settings (seed schema names; periods in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PimConfig {
    /// Run PIM-SM.
    pub enabled: bool,
    /// Router id (a unicast address of this router); `None` lets the
    /// protocol pick one.
    #[serde(
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub router_id: Option<Ipv4Addr>,
    /// PIM-enabled interfaces.
    pub interfaces: Vec<PimInterface>,
    /// Static group range -> RP mappings.
    pub static_rp: Vec<StaticRp>,
    /// This router's own RP address, when it is a rendezvous point.
    #[serde(
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub rp_address: Option<Ipv4Addr>,
    /// Hello period, seconds, for interfaces that do not set their own.
    pub hello_period: u16,
    /// DR priority for interfaces that do not set their own.
    pub dr_priority: u32,
    /// When a last-hop router moves from the shared tree to the source's
    /// tree (RFC 7761 section 4.2.1 `SwitchToSptDesired`).
    #[serde(skip_serializing_if = "SptSwitchover::is_default")]
    pub spt_switchover: SptSwitchover,
    /// Bound of the tree state, `(*,G)` plus `(S,G)` entries; new entries
    /// past it are dropped and counted.
    pub max_tree_entries: u32,
}

/// `pim.spt_switchover`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SptSwitchover {
    /// Join the source's tree after its first packet (what most routers do).
    #[default]
    Immediate,
    /// Stay on the shared tree.
    Never,
}

impl SptSwitchover {
    fn is_default(&self) -> bool {
        *self == SptSwitchover::Immediate
    }
}

/// Default of `pim.max_tree_entries`.
pub const DEFAULT_MAX_TREE_ENTRIES: u32 = 16_384;

impl Default for PimConfig {
    fn default() -> Self {
        PimConfig {
            enabled: false,
            router_id: None,
            interfaces: Vec::new(),
            static_rp: Vec::new(),
            rp_address: None,
            hello_period: 30,
            dr_priority: 1,
            spt_switchover: SptSwitchover::Immediate,
            max_tree_entries: DEFAULT_MAX_TREE_ENTRIES,
        }
    }
}

impl PimConfig {
    /// The hello period of `iface`, seconds: its own or the section's.
    pub fn hello_period_of(&self, iface: &PimInterface) -> u16 {
        iface.hello_period.unwrap_or(self.hello_period)
    }

    /// The DR priority of `iface`: its own or the section's.
    pub fn dr_priority_of(&self, iface: &PimInterface) -> u32 {
        iface.dr_priority.unwrap_or(self.dr_priority)
    }
}

/// One PIM-enabled interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PimInterface {
    /// Interface name.
    pub name: String,
    /// Overrides [`PimConfig::dr_priority`] on this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_priority: Option<u32>,
    /// Overrides [`PimConfig::hello_period`] on this interface, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_period: Option<u16>,
}

/// A static rendezvous-point mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRp {
    /// Multicast range served by this RP: CIDR (`239.0.0.0/8`) or a
    /// single group (`239.1.1.1`, meaning /32). Kept as written so
    /// `config save` gives back the user's text.
    #[serde(default = "default_group_range")]
    pub group: String,
    /// The RP's unicast address.
    #[serde(deserialize_with = "addr::de_unicast")]
    pub rp: Ipv4Addr,
}

impl StaticRp {
    /// The group range as (network, prefix length).
    ///
    /// # Errors
    /// The text is not a multicast CIDR or group (the message says why).
    pub fn group_prefix(&self) -> Result<(Ipv4Addr, u8), String> {
        crate::addr::parse_group_range(&self.group).map(|c| (c.network, c.prefix_len))
    }
}

pub(crate) fn default_group_range() -> String {
    "224.0.0.0/4".to_string()
}

/// MSDP settings (seed schema names; times in seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MsdpConfig {
    /// Run MSDP.
    pub enabled: bool,
    /// This router's address for MSDP sessions.
    #[serde(
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_address: Option<Ipv4Addr>,
    /// Peers.
    pub peers: Vec<MsdpPeer>,
    /// Keepalive interval, seconds.
    pub keepalive_interval: u32,
    /// Hold time, seconds.
    pub hold_time: u32,
    /// Most entries in the SA cache, all peers together (RFC 3618 SA
    /// cache); new SAs past it are dropped and counted. Default 20,000.
    pub sa_cache_limit: u32,
}

impl Default for MsdpConfig {
    fn default() -> Self {
        MsdpConfig {
            enabled: false,
            local_address: None,
            peers: Vec::new(),
            keepalive_interval: 60,
            hold_time: 75,
            sa_cache_limit: 20_000,
        }
    }
}

/// Whether an SA filter rule lets matching SAs through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaFilterAction {
    /// Matching SAs are dropped (and counted).
    #[default]
    Deny,
    /// Matching SAs pass.
    Permit,
}

/// One rule of an MSDP peer's SA filter (`sa_filter_in`, `sa_filter_out`):
/// an SA whose source is inside `source` and group inside `group` gets
/// `action`; the first matching rule decides, and an SA no rule matches
/// passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaFilter {
    /// Source prefix, CIDR (a bare address is a /32), host bits zero.
    /// Default `0.0.0.0/0` (any source). Kept as written.
    #[serde(default = "any_source")]
    pub source: String,
    /// Group range, multicast CIDR (a bare group is a /32). Default
    /// `224.0.0.0/4` (any group). Kept as written.
    #[serde(default = "default_group_range")]
    pub group: String,
    /// `deny` (default) or `permit`.
    #[serde(default)]
    pub action: SaFilterAction,
}

fn any_source() -> String {
    "0.0.0.0/0".to_string()
}

/// A CIDR (`10.1.0.0/16`; a bare address is a /32) with host bits zero,
/// as (network, length); `None` when it is not one.
pub fn cidr_of(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = text.split_once('/').unwrap_or((text, "32"));
    let addr: Ipv4Addr = a.trim().parse().ok()?;
    let len: u8 = l.trim().parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    (u32::from(addr) & !mask == 0).then_some((addr, len))
}

impl SaFilter {
    /// The source prefix; `None` only for an unvalidated config.
    pub fn source_prefix(&self) -> Option<(Ipv4Addr, u8)> {
        cidr_of(&self.source)
    }

    /// The group prefix; `None` only for an unvalidated config.
    pub fn group_prefix(&self) -> Option<(Ipv4Addr, u8)> {
        cidr_of(&self.group)
    }
}

/// One MSDP peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsdpPeer {
    /// The peer's unicast address.
    #[serde(deserialize_with = "addr::de_unicast")]
    pub address: Ipv4Addr,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Mesh group name: SAs from a member are not flooded to the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_group: Option<String>,
    /// Accept SAs from this peer without the peer-RPF check (RFC 3618
    /// default peer). Written only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default_peer: bool,
    /// Most SA cache entries learned from this peer; more are dropped and
    /// counted. Absent: 10,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sa_limit: Option<u32>,
    /// Filter on SAs received from this peer (first match decides; no
    /// match passes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sa_filter_in: Vec<SaFilter>,
    /// Filter on SAs sent to this peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sa_filter_out: Vec<SaFilter>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Data-plane settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneConfig {
    /// Forward eligible rules inside the kernel (tc ingress program) instead
    /// of through the engines.
    pub kernel_fast_path: bool,
    /// Slots of the receive ring each engine's capture socket of each
    /// input interface reads through (`PACKET_RX_RING`), or 0 (the
    /// default) for a receive queue read by io_uring. A ring costs the
    /// engine about a quarter less CPU per packet but holds its memory
    /// from the start: slots x (MTU + 84 bytes), e.g. 4,096 slots of a
    /// 1,500-byte MTU are 6.2 MiB per engine and input. Taken when mcrd
    /// starts; a reload that changes it says it waits for a restart.
    pub receive_ring: u32,
}

/// The most `data_plane.receive_ring` slots an input may have (with a
/// jumbo MTU about 590 MiB per engine and input: a typing error rather
/// than a choice beyond this).
pub const MAX_RECEIVE_RING: u32 = 65_536;

impl Default for DataPlaneConfig {
    fn default() -> Self {
        DataPlaneConfig {
            kernel_fast_path: true,
            receive_ring: 0,
        }
    }
}

/// Control-plane integration settings (the seed system's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// Where RPF answers come from: `"disabled"`, `"kernel"`, `"static"` or
    /// the absolute path of a provider's Unix socket; see [`RpfProvider`].
    /// Kept as text so `config save` writes what was read.
    pub rpf_provider: String,
    /// Accept neighbours injected through the control socket.
    pub external_neighbors_enabled: bool,
    /// Events buffered per subscriber before the oldest are dropped.
    pub event_buffer_size: usize,
    /// The RPF table of `rpf_provider: "static"` (ignored by the other
    /// providers). Written only when not empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_rpf: Vec<StaticRpfRoute>,
}

/// One static RPF route: traffic from `source` is expected on `interface`,
/// from `neighbor` (RFC 7761 section 4.5's RPF interface and RPF neighbour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRpfRoute {
    /// Source prefix in CIDR form (`10.1.0.0/16`; a bare address is a
    /// /32), host bits zero. Kept as written so `config save` gives it back.
    pub source: String,
    /// Upstream (RPF) interface.
    pub interface: String,
    /// Upstream neighbour (next hop toward the source); absent when the
    /// source is directly connected.
    #[serde(
        default,
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub neighbor: Option<Ipv4Addr>,
    /// Route metric (unitless, lower is better; PIM Assert's metric,
    /// RFC 7761 section 4.6). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

impl StaticRpfRoute {
    /// The source prefix as (network address, length); `None` when
    /// `source` is not a valid CIDR with host bits zero (validation
    /// reports that, so a validated config never gives `None`).
    pub fn prefix(&self) -> Option<(Ipv4Addr, u8)> {
        let (a, l) = self.source.split_once('/').unwrap_or((&self.source, "32"));
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let len: u8 = l.trim().parse().ok().filter(|l| *l <= 32)?;
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        (u32::from(addr) & !mask == 0).then_some((addr, len))
    }
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            rpf_provider: "disabled".to_string(),
            external_neighbors_enabled: true,
            event_buffer_size: 256,
            static_rpf: Vec::new(),
        }
    }
}

impl ControlPlaneConfig {
    /// `rpf_provider` parsed; `None` when it is none of the accepted forms
    /// (validation reports that, so a validated config never gives `None`).
    pub fn rpf(&self) -> Option<RpfProvider> {
        RpfProvider::parse(&self.rpf_provider)
    }
}

/// The meaning of `control_plane.rpf_provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpfProvider {
    /// No RPF lookups: routes need an explicit incoming interface.
    Disabled,
    /// The kernel's unicast routing table of the namespace.
    Kernel,
    /// Only statically configured answers.
    Static,
    /// An external provider listening on this Unix socket path.
    Socket(PathBuf),
}

impl RpfProvider {
    /// Reads the config text: a keyword or an absolute path.
    pub fn parse(text: &str) -> Option<RpfProvider> {
        match text {
            "disabled" => Some(RpfProvider::Disabled),
            "kernel" => Some(RpfProvider::Kernel),
            "static" => Some(RpfProvider::Static),
            p if p.starts_with('/') => Some(RpfProvider::Socket(PathBuf::from(p))),
            _ => None,
        }
    }
}

/// The Prometheus/OpenMetrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:PORT` to serve `GET /metrics` on; `None` = no endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// Whether this is the default (nothing to write in a saved config).
    pub fn is_default(&self) -> bool {
        *self == MetricsConfig::default()
    }

    /// The address to serve on, when `listen` is set and valid (the
    /// validation of the file rejects an invalid one).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|a| a.parse().ok())
    }
}
