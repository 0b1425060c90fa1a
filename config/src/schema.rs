//! The configuration types, their defaults and their serde mapping.
//!
//! Field names are the keys of the file. See the crate documentation for the
//! meaning of every key.

use std::net::Ipv4Addr;

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
    /// IP TTL of sent packets; see [`Output::effective_ttl`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
}

impl Output {
    /// The TTL to send with: `ttl` when set, else 1 for a multicast
    /// destination (stay on the link) and 64 for a unicast one.
    pub fn effective_ttl(&self) -> u8 {
        match self.ttl {
            Some(ttl) => ttl,
            None if self.group.is_multicast() => 1,
            None => 64,
        }
    }
}

/// IGMP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IgmpConfig {
    pub enabled: bool,
    pub interfaces: Vec<String>,
    pub version: u8,
    pub query_interval_secs: u32,
    pub query_response_interval_secs: u32,
    pub robustness: u8,
}

impl Default for IgmpConfig {
    fn default() -> Self {
        IgmpConfig {
            enabled: false,
            interfaces: Vec::new(),
            version: 3,
            query_interval_secs: 125,
            query_response_interval_secs: 10,
            robustness: 2,
        }
    }
}

/// PIM-SM settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PimConfig {
    pub enabled: bool,
    pub interfaces: Vec<PimInterface>,
    /// Static RP mappings.
    pub rp: Vec<RpMapping>,
    pub hello_interval_secs: u16,
    pub dr_priority: u32,
}

impl Default for PimConfig {
    fn default() -> Self {
        PimConfig {
            enabled: false,
            interfaces: Vec::new(),
            rp: Vec::new(),
            hello_interval_secs: 30,
            dr_priority: 1,
        }
    }
}

/// One PIM-enabled interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PimInterface {
    pub name: String,
    /// Overrides [`PimConfig::dr_priority`] on this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_priority: Option<u32>,
}

/// A static rendezvous-point mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpMapping {
    #[serde(deserialize_with = "addr::de_unicast")]
    pub address: Ipv4Addr,
    /// Multicast range served by this RP, CIDR notation.
    #[serde(default = "default_group_range")]
    pub group_range: String,
}

pub(crate) fn default_group_range() -> String {
    "224.0.0.0/4".to_string()
}

/// MSDP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MsdpConfig {
    pub enabled: bool,
    #[serde(
        deserialize_with = "addr::de_opt_unicast",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_address: Option<Ipv4Addr>,
    pub peers: Vec<MsdpPeer>,
    pub keepalive_secs: u16,
    pub hold_time_secs: u16,
}

impl Default for MsdpConfig {
    fn default() -> Self {
        MsdpConfig {
            enabled: false,
            local_address: None,
            peers: Vec::new(),
            keepalive_secs: 60,
            hold_time_secs: 75,
        }
    }
}

/// One MSDP peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsdpPeer {
    #[serde(deserialize_with = "addr::de_unicast")]
    pub address: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Data-plane settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneConfig {
    /// Forward eligible rules inside the kernel (tc ingress program) instead
    /// of through the engines.
    pub kernel_fast_path: bool,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        DataPlaneConfig {
            kernel_fast_path: true,
        }
    }
}

/// Control-plane integration settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// Unix socket path of an external RPF provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpf_provider: Option<String>,
    pub external_neighbors_enabled: bool,
    pub event_buffer_size: usize,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            rpf_provider: None,
            external_neighbors_enabled: false,
            event_buffer_size: 256,
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
