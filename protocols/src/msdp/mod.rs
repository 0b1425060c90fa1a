//! MSDP (RFC 3618): the peer state machine and the Source-Active cache, as
//! pure logic: no sockets, no clock, no threads.
//!
//! # Shape
//!
//! MSDP runs over TCP (port [`MSDP_PORT`], 639), so its inputs and actions
//! are about connections and TLVs rather than interfaces and packets: it
//! has its own [`MsdpInput`] and [`MsdpAction`] and the same
//! `handle(now, input, &mut Vec<action>)` method as every
//! [`crate::Protocol`]. Timers are keyed ([`MsdpTimer`]) and armed and
//! cancelled through actions, so a [`crate::TimerSet`] (or a
//! [`crate::Driver`]-like loop) feeds them back as [`MsdpInput::Timer`].
//!
//! The control plane owns the sockets: it listens on TCP 639 (accepting
//! only from peers the instance asked it to accept, [`MsdpAction::Listen`]),
//! connects where asked ([`MsdpAction::Connect`]), frames each session's
//! byte stream with [`mcr_wire::msdp::TlvFramer`] and feeds whole TLVs
//! ([`MsdpInput::Tlv`]) or the framing error ([`MsdpInput::FormatError`]).
//!
//! # Peer state machine (RFC 3618 section 11)
//!
//! States [`PeerState`]: Disabled, Inactive, Listen, Connecting,
//! Established. Events: enable, own address lower or higher than the
//! peer's, TCP established, ConnectRetry timer expired, disable, Hold timer
//! expired, TLV format error (section 13: reset the session), KeepAlive
//! timer expired, TLV received. The side with the lower
//! address connects, the higher listens (section 5). Timers: ConnectRetry
//! ([`Config::connect_retry`], 30 s), KeepAlive
//! ([`Config::keepalive_interval`], 60 s, restarted by every TLV we send),
//! Hold ([`Config::hold_time`], 75 s, restarted by every TLV received).
//!
//! # SA cache (RFC 3618 sections 5, 6, 10)
//!
//! One entry per (S, G, originating RP) with an SA-State timer
//! ([`Config::sa_cache_timeout`], 6 minutes) that every re-advertisement
//! restarts. An SA is accepted from a peer by the peer-RPF rules of
//! section 10.1.3, simplified ([`Msdp::set_peer_rpf`]), filtered by the
//! peer's inbound filter, limited per peer and globally (each drop
//! counted), and flooded to every other Established peer except those in
//! the sender's mesh group (section 10.2), through each target's outbound
//! filter.
//!
//! # Origination (RFC 3618 sections 3, 5.1)
//!
//! [`MsdpInput::LocalSources`] gives the sources active in our domain (the
//! ones registered at this RP); new ones are sent at once with our RP
//! address ([`Config::originator_id`]), all of them every
//! [`Config::sa_advertisement_period`] (60 s). SAs carrying our own RP
//! address that come back are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use mcr_wire::msdp::{FrameError, Repr, SaEntry, SA_MAX_ENTRIES};
use serde::Serialize;

use crate::net::Ipv4Prefix;
use crate::time::Timestamp;

#[cfg(test)]
mod tests;

/// The TCP port of MSDP (RFC 3618 section 5).
pub const MSDP_PORT: u16 = 639;
/// Default ConnectRetry period, in seconds (RFC 3618 section 5.6: 30 s).
pub const DEFAULT_CONNECT_RETRY: u64 = 30;
/// Default KeepAlive period, in seconds (RFC 3618 section 5.5: 60 s).
pub const DEFAULT_KEEPALIVE_INTERVAL: u64 = 60;
/// Default Hold time, in seconds (RFC 3618 section 5.4: 75 s).
pub const DEFAULT_HOLD_TIME: u64 = 75;
/// Default SA cache entry timeout (SA-State timer), in seconds: 6 minutes.
pub const DEFAULT_SA_CACHE_TIMEOUT: u64 = 360;
/// Default SA-Advertisement period, in seconds (RFC 3618 section 5.1:
/// locally originated SAs are re-sent every 60 s).
pub const DEFAULT_SA_ADVERTISEMENT_PERIOD: u64 = 60;
/// Default global SA cache limit, in entries (also the most local sources
/// originated).
pub const DEFAULT_SA_CACHE_LIMIT: usize = 20_000;
/// Default per-peer SA limit (entries learned from one peer).
pub const DEFAULT_PEER_SA_LIMIT: usize = 10_000;

/// One rule of an SA filter: an SA whose source is in `source` and group
/// in `group` is permitted or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FilterRule {
    /// Source prefix (`0.0.0.0/0` for any).
    pub source: Ipv4Prefix,
    /// Group prefix (`0.0.0.0/0` for any).
    pub group: Ipv4Prefix,
    /// Permit (true) or deny (false) on match.
    pub permit: bool,
}

/// An SA filter (per peer, in or out): the first matching rule decides;
/// when none matches, `default_permit` does. The default filter (no rules,
/// permit) passes everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaFilter {
    /// Rules in order.
    pub rules: Vec<FilterRule>,
    /// Verdict when no rule matches.
    pub default_permit: bool,
}

impl Default for SaFilter {
    fn default() -> Self {
        SaFilter {
            rules: Vec::new(),
            default_permit: true,
        }
    }
}

impl SaFilter {
    /// Whether the filter passes (source, group).
    pub fn permits(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        self.rules
            .iter()
            .find(|r| r.source.contains(source) && r.group.contains(group))
            .map_or(self.default_permit, |r| r.permit)
    }
}

/// One configured peer (`msdp.peers[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerConfig {
    /// Free text shown by `mcrctl msdp peers`.
    pub description: Option<String>,
    /// Mesh group name (RFC 3618 section 10.2); peers sharing one do not
    /// re-flood to each other.
    pub mesh_group: Option<String>,
    /// A default peer (a static peer-RPF peer, RFC 3618 10.1.3 rule 5): SAs from it are accepted when no
    /// other rule picks a peer.
    pub default_peer: bool,
    /// Most cache entries learned from this peer; more are dropped and
    /// counted ([`PeerStats::limit_drops`]).
    pub sa_limit: usize,
    /// Filter on SAs received from this peer.
    pub filter_in: SaFilter,
    /// Filter on SAs sent to this peer.
    pub filter_out: SaFilter,
    /// Administratively enabled (false: the peer stays Disabled, disable).
    pub enabled: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            description: None,
            mesh_group: None,
            default_peer: false,
            sa_limit: DEFAULT_PEER_SA_LIMIT,
            filter_in: SaFilter::default(),
            filter_out: SaFilter::default(),
            enabled: true,
        }
    }
}

impl PeerConfig {
    /// Whether a change from `self` to `new` must reset the TCP session:
    /// only enabling/disabling does; descriptions, mesh groups, default
    /// peer, limits and filters apply to the running session.
    fn session_affecting(&self, new: &PeerConfig) -> bool {
        self.enabled != new.enabled
    }
}

/// The MSDP section of the configuration. Times are in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Our address: the TCP connection source and the one compared with
    /// each peer's to decide who connects (RFC 3618 section 5).
    pub local_address: Ipv4Addr,
    /// The RP address put in the SAs we originate (RFC 3618 12.2.1 "RP
    /// Address"); `None`: [`Config::local_address`].
    pub originator_id: Option<Ipv4Addr>,
    /// KeepAlive period in seconds (RFC 3618 5.5; default 60).
    pub keepalive_interval: u64,
    /// Hold time in seconds (RFC 3618 5.4; default 75).
    pub hold_time: u64,
    /// ConnectRetry period in seconds (RFC 3618 5.6; default 30).
    pub connect_retry: u64,
    /// SA cache entry timeout in seconds (SA-State timer; default 360).
    pub sa_cache_timeout: u64,
    /// SA-Advertisement period in seconds (RFC 3618 5.1; default 60).
    pub sa_advertisement_period: u64,
    /// Most entries in the SA cache, all peers together.
    pub sa_cache_limit: usize,
    /// Peers by address.
    pub peers: BTreeMap<Ipv4Addr, PeerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local_address: Ipv4Addr::UNSPECIFIED,
            originator_id: None,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            hold_time: DEFAULT_HOLD_TIME,
            connect_retry: DEFAULT_CONNECT_RETRY,
            sa_cache_timeout: DEFAULT_SA_CACHE_TIMEOUT,
            sa_advertisement_period: DEFAULT_SA_ADVERTISEMENT_PERIOD,
            sa_cache_limit: DEFAULT_SA_CACHE_LIMIT,
            peers: BTreeMap::new(),
        }
    }
}

/// The MSDP peer states (RFC 3618 section 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Peering administratively disabled.
    Disabled,
    /// Enabled, no role chosen yet (transient: own address lower/own address higher follow at once).
    Inactive,
    /// Our address is higher: waiting for the peer to connect .
    Listen,
    /// Our address is lower: connecting, retried every ConnectRetry .
    Connecting,
    /// Session up: KeepAlive and Hold timers running.
    Established,
}

/// The key of every timer an instance arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MsdpTimer {
    /// ConnectRetry of a peer (RFC 3618 5.6, event ConnectRetry expired).
    ConnectRetry(Ipv4Addr),
    /// KeepAlive of a peer (RFC 3618 5.5, event KeepAlive expired).
    KeepAlive(Ipv4Addr),
    /// Hold of a peer (RFC 3618 5.4, event Hold expired).
    Hold(Ipv4Addr),
    /// SA-State timer of one cache entry (RFC 3618 5.3).
    SaState(SaKey),
    /// SA-Advertisement timer: re-send the local sources (RFC 3618 5.1).
    SaAdvertisement,
}

/// A cache entry's key: (S, G, originating RP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SaKey {
    /// Source.
    pub source: Ipv4Addr,
    /// Group.
    pub group: Ipv4Addr,
    /// The RP that originated the SA.
    pub rp: Ipv4Addr,
}

/// Why a session was closed (logged, shown as a peer's last error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The Hold timer expired (RFC 3618 5.4).
    HoldTimerExpired,
    /// The byte stream was malformed (RFC 3618 section 13).
    FormatError(FrameError),
    /// The peer closed or reset the connection.
    PeerClosed,
    /// Peering disabled by configuration (disable).
    Disabled,
    /// The peer was removed from the configuration.
    Removed,
    /// The local address changed: every session restarts.
    LocalAddressChanged,
    /// The daemon is stopping.
    Shutdown,
    /// A connection from the wrong side (the lower address must connect,
    /// RFC 3618 section 5), a second connection, or one in a state that
    /// does not accept it.
    Unexpected,
    /// A connection from an address that is not a configured peer.
    UnknownPeer,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::HoldTimerExpired => f.write_str("hold timer expired"),
            CloseReason::FormatError(e) => write!(f, "TLV format error: {e}"),
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Disabled => f.write_str("peering disabled"),
            CloseReason::Removed => f.write_str("peer removed"),
            CloseReason::LocalAddressChanged => f.write_str("local address changed"),
            CloseReason::Shutdown => f.write_str("shutdown"),
            CloseReason::Unexpected => f.write_str("unexpected connection"),
            CloseReason::UnknownPeer => f.write_str("not a configured peer"),
        }
    }
}

/// Everything that happens to an MSDP instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsdpInput {
    /// The complete new MSDP configuration; only differences are applied
    /// (peers whose session settings did not change keep their session).
    Config(Config),
    /// A TCP connection with `peer` is up (TCP established): `active` when it is our
    /// [`MsdpAction::Connect`] that completed, false when we accepted it.
    TcpEstablished {
        /// The peer's address.
        peer: Ipv4Addr,
        /// We connected (true) or accepted (false).
        active: bool,
    },
    /// Our connect to `peer` failed (refused, unreachable); retried when
    /// ConnectRetry expires.
    TcpConnectFailed {
        /// The peer's address.
        peer: Ipv4Addr,
    },
    /// The established session with `peer` was closed or reset by the
    /// other side (or a read/write failed).
    TcpClosed {
        /// The peer's address.
        peer: Ipv4Addr,
    },
    /// A whole TLV from `peer`'s session (TLV received), as framed by
    /// [`mcr_wire::msdp::TlvFramer`].
    Tlv {
        /// The peer's address.
        peer: Ipv4Addr,
        /// The TLV.
        tlv: Repr,
    },
    /// `peer`'s byte stream is malformed (TLV format error).
    FormatError {
        /// The peer's address.
        peer: Ipv4Addr,
        /// What the framer found.
        error: FrameError,
    },
    /// The complete set of active local sources this RP originates SAs
    /// for (sources registered at this RP, or directly connected ones when
    /// we are the RP; RFC 3618 section 3). New entries are advertised at
    /// once, all of them every SA-Advertisement period (section 5.1). At
    /// most [`Config::sa_cache_limit`] are kept (the rest counted in
    /// [`Counters::local_sources_dropped`]).
    LocalSources(Vec<SaEntry>),
    /// A timer armed by [`MsdpAction::ArmTimer`] fired.
    Timer(MsdpTimer),
    /// The daemon is stopping: close every session.
    Shutdown,
}

/// An MSDP event for `subscribe --events msdp` ([`crate::EventCategory::Msdp`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum MsdpEvent {
    /// A session reached Established.
    PeerUp {
        /// The peer.
        peer: Ipv4Addr,
    },
    /// An Established session went down.
    PeerDown {
        /// The peer.
        peer: Ipv4Addr,
        /// Why (the [`CloseReason`] as text).
        reason: String,
    },
    /// A new SA cache entry (hook for PIM: an (S,G) join toward the source
    /// when (*,G) state exists, RFC 3618 section 10.2 / RFC 7761).
    SaAdded {
        /// The entry.
        key: SaKey,
        /// The peer it was learned from.
        peer: Ipv4Addr,
    },
    /// An SA cache entry's SA-State timer ran out.
    SaExpired {
        /// The entry.
        key: SaKey,
    },
}

/// What an MSDP instance asks the control plane to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsdpAction {
    /// Open a TCP connection from `local` to `peer` port 639 ; report
    /// [`MsdpInput::TcpEstablished`] with `active: true` or
    /// [`MsdpInput::TcpConnectFailed`]. Never blocking the control thread.
    Connect {
        /// The peer.
        peer: Ipv4Addr,
        /// Source address ([`Config::local_address`]).
        local: Ipv4Addr,
        /// Destination port ([`MSDP_PORT`]).
        port: u16,
    },
    /// Accept connections from `peer` on the listening socket .
    Listen {
        /// The peer.
        peer: Ipv4Addr,
    },
    /// Stop accepting connections from `peer`.
    StopListening {
        /// The peer.
        peer: Ipv4Addr,
    },
    /// Close `peer`'s established session (or abandon a pending connect)
    /// and log `reason`.
    Close {
        /// The peer.
        peer: Ipv4Addr,
        /// Why.
        reason: CloseReason,
    },
    /// Close the connection just reported by [`MsdpInput::TcpEstablished`]
    /// without touching an existing session with the same peer.
    Reject {
        /// The connection's remote address.
        peer: Ipv4Addr,
        /// Why.
        reason: CloseReason,
    },
    /// Encode `tlv` and write it to `peer`'s session.
    Send {
        /// The peer.
        peer: Ipv4Addr,
        /// The TLV (always emittable: at most 255 SA entries).
        tlv: Repr,
    },
    /// Arm (or move) timer `key` to fire at `at`.
    ArmTimer {
        /// The timer.
        key: MsdpTimer,
        /// Deadline.
        at: Timestamp,
    },
    /// Cancel timer `key` if armed.
    CancelTimer {
        /// The timer.
        key: MsdpTimer,
    },
    /// Publish an event.
    Event(MsdpEvent),
}

/// Per-peer counters (`mcrctl msdp peers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PeerStats {
    /// SA entries received (before any check).
    pub sa_in: u64,
    /// SA entries sent.
    pub sa_out: u64,
    /// SA entries rejected by the peer-RPF rules (RFC 3618 10.1.3).
    pub rpf_fail: u64,
    /// SA entries dropped by the inbound filter.
    pub filtered_in: u64,
    /// SA entries not sent because of the outbound filter.
    pub filtered_out: u64,
    /// New SA entries dropped: the peer's [`PeerConfig::sa_limit`] was hit.
    pub limit_drops: u64,
    /// New SA entries dropped: the global cache limit was hit.
    pub cache_full_drops: u64,
    /// TLVs received while Established.
    pub tlvs_in: u64,
    /// TLVs sent.
    pub tlvs_out: u64,
    /// TLVs received when not Established, or of no use (ignored).
    pub ignored: u64,
    /// Times the session reached Established.
    pub established_count: u64,
    /// SA entries rejected for their source (RFC 3618 section 12.2: not a
    /// unicast host address: 0.0.0.0/8, 127.0.0.0/8, multicast,
    /// 255.255.255.255); not cached, not flooded.
    #[serde(default)]
    pub invalid_source: u64,
    /// SA entries rejected for their group: not multicast, or link-local
    /// (224.0.0.0/24, never forwarded); not cached, not flooded.
    #[serde(default)]
    pub invalid_group: u64,
    /// SA entries rejected because their message's originating RP is not
    /// a unicast address (0.0.0.0/8, 127.0.0.0/8, multicast, broadcast):
    /// the whole message is dropped.
    #[serde(default)]
    pub invalid_rp: u64,
}

/// A peer as `mcrctl msdp peers` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The peer.
    pub address: Ipv4Addr,
    /// Its configuration.
    pub config: PeerConfig,
    /// FSM state.
    pub state: PeerState,
    /// When the session reached Established (for uptime).
    pub up_since: Option<Timestamp>,
    /// Cache entries learned from it.
    pub sa_count: usize,
    /// Counters.
    pub stats: PeerStats,
    /// The last close reason, as text.
    pub last_error: Option<String>,
}

/// A cache entry as `mcrctl msdp sa-cache` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SaInfo {
    /// The peer it was learned from.
    pub learned_from: Ipv4Addr,
    /// When it was first learned.
    pub created: Timestamp,
    /// When its SA-State timer runs out.
    pub expires: Timestamp,
}

/// Instance-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counters {
    /// SA entries dropped because the cache was full.
    pub cache_full_drops: u64,
    /// SA entries dropped because they carried our own address as RP.
    pub own_rp_drops: u64,
    /// Connections from addresses that are not configured peers.
    pub unknown_peer_connections: u64,
    /// Inputs for unknown peers or stale timers.
    pub stale_inputs: u64,
    /// Local sources beyond the cache limit, not originated.
    pub local_sources_dropped: u64,
}

/// The peer-RPF lookup: the MSDP peer toward an originating RP (RFC 3618
/// 10.1.3), or `None`. Supplied by the caller (from the unicast RIB / BGP).
pub type PeerRpfFn = Box<dyn Fn(Ipv4Addr) -> Option<Ipv4Addr> + Send>;

#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    state: PeerState,
    up_since: Option<Timestamp>,
    sa_count: usize,
    stats: PeerStats,
    last_error: Option<CloseReason>,
}

/// Events of the peer state machine (RFC 3618 section 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerEvent {
    /// Enable peering.
    Enable,
    /// TCP established, with which side opened it.
    TcpEstablished { active: bool },
    /// Our connect failed (stays Connecting until ConnectRetry expired).
    ConnectFailed,
    /// The peer closed the session.
    TcpClosed,
    /// ConnectRetry expired.
    ConnectRetryExpired,
    /// disable (with the reason: disabled, removed, shutdown, address change).
    Disable(CloseReason),
    /// Hold timer expired.
    HoldExpired,
    /// TLV format error (section 13).
    FormatError(FrameError),
    /// KeepAlive expired.
    KeepAliveExpired,
}

/// An MSDP instance: peers, their state machines and the SA cache.
pub struct Msdp {
    config: Config,
    peers: BTreeMap<Ipv4Addr, Peer>,
    cache: BTreeMap<SaKey, SaInfo>,
    counters: Counters,
    peer_rpf: Option<PeerRpfFn>,
    local_sources: BTreeSet<SaEntry>,
    advertising: bool,
}

impl fmt::Debug for Msdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Msdp")
            .field("config", &self.config)
            .field("peers", &self.peers)
            .field("cache_len", &self.cache.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Default for Msdp {
    fn default() -> Self {
        Self::new()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s.max(1))
}

impl Msdp {
    /// An instance with no peers; feed [`MsdpInput::Config`] to start.
    pub fn new() -> Self {
        Msdp {
            config: Config::default(),
            peers: BTreeMap::new(),
            cache: BTreeMap::new(),
            counters: Counters::default(),
            peer_rpf: None,
            local_sources: BTreeSet::new(),
            advertising: false,
        }
    }

    /// Sets the peer-RPF lookup of RFC 3618 10.1.3: for an originating RP,
    /// the MSDP peer on the best path toward it. Without one, only the
    /// other rules (RP is the peer, mesh group, default peer, only peer)
    /// accept SAs.
    pub fn set_peer_rpf(&mut self, f: PeerRpfFn) {
        self.peer_rpf = Some(f);
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A peer's state and counters.
    pub fn peer(&self, address: Ipv4Addr) -> Option<PeerInfo> {
        self.peers.get(&address).map(|p| PeerInfo {
            address,
            config: p.config.clone(),
            state: p.state,
            up_since: p.up_since,
            sa_count: p.sa_count,
            stats: p.stats,
            last_error: p.last_error.map(|e| e.to_string()),
        })
    }

    /// Every peer, by address.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers.keys().filter_map(|a| self.peer(*a)).collect()
    }

    /// The SA cache, ordered by (source, group, RP).
    pub fn sa_cache(&self) -> impl Iterator<Item = (&SaKey, &SaInfo)> + '_ {
        self.cache.iter()
    }

    /// The local sources we originate SAs for.
    pub fn local_sources(&self) -> impl Iterator<Item = &SaEntry> + '_ {
        self.local_sources.iter()
    }

    /// Number of SA cache entries.
    pub fn sa_cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Instance-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Handles one input at `now`, pushing actions onto `out` (not cleared).
    pub fn handle(&mut self, now: Timestamp, input: MsdpInput, out: &mut Vec<MsdpAction>) {
        match input {
            MsdpInput::Config(c) => self.apply_config(now, c, out),
            MsdpInput::TcpEstablished { peer, active } => {
                if self.peers.contains_key(&peer) {
                    self.peer_event(now, peer, PeerEvent::TcpEstablished { active }, out);
                } else {
                    self.counters.unknown_peer_connections += 1;
                    out.push(MsdpAction::Reject {
                        peer,
                        reason: CloseReason::UnknownPeer,
                    });
                }
            }
            MsdpInput::TcpConnectFailed { peer } => {
                self.peer_event(now, peer, PeerEvent::ConnectFailed, out)
            }
            MsdpInput::TcpClosed { peer } => self.peer_event(now, peer, PeerEvent::TcpClosed, out),
            MsdpInput::FormatError { peer, error } => {
                self.peer_event(now, peer, PeerEvent::FormatError(error), out)
            }
            MsdpInput::Tlv { peer, tlv } => self.receive_tlv(now, peer, tlv, out),
            MsdpInput::Timer(t) => match t {
                MsdpTimer::ConnectRetry(p) => {
                    self.peer_event(now, p, PeerEvent::ConnectRetryExpired, out)
                }
                MsdpTimer::KeepAlive(p) => {
                    self.peer_event(now, p, PeerEvent::KeepAliveExpired, out)
                }
                MsdpTimer::Hold(p) => self.peer_event(now, p, PeerEvent::HoldExpired, out),
                MsdpTimer::SaState(key) => self.sa_expired(now, key, out),
                MsdpTimer::SaAdvertisement => self.advertise(now, out),
            },
            MsdpInput::LocalSources(sources) => self.set_local_sources(now, sources, out),
            MsdpInput::Shutdown => {
                let addrs: Vec<Ipv4Addr> = self.peers.keys().copied().collect();
                for a in addrs {
                    self.peer_event(now, a, PeerEvent::Disable(CloseReason::Shutdown), out);
                }
            }
        }
    }

    // ----- configuration -----

    fn apply_config(&mut self, now: Timestamp, new: Config, out: &mut Vec<MsdpAction>) {
        let address_changed = new.local_address != self.config.local_address;
        let old_peers = std::mem::take(&mut self.config.peers);
        self.config = Config {
            peers: BTreeMap::new(),
            ..new.clone()
        };
        self.config.peers = old_peers;
        // Removed peers, and every peer when our address changed.
        let addrs: Vec<Ipv4Addr> = self.peers.keys().copied().collect();
        for a in addrs {
            if !new.peers.contains_key(&a) {
                self.peer_event(now, a, PeerEvent::Disable(CloseReason::Removed), out);
                self.forget_peer(a, out);
            } else if address_changed {
                self.peer_event(
                    now,
                    a,
                    PeerEvent::Disable(CloseReason::LocalAddressChanged),
                    out,
                );
            }
        }
        // Added or changed peers.
        for (a, pc) in &new.peers {
            match self.peers.get_mut(a) {
                None => {
                    self.peers.insert(
                        *a,
                        Peer {
                            config: pc.clone(),
                            state: PeerState::Disabled,
                            up_since: None,
                            sa_count: 0,
                            stats: PeerStats::default(),
                            last_error: None,
                        },
                    );
                }
                Some(p) => {
                    let reset = p.config.session_affecting(pc);
                    p.config = pc.clone();
                    if reset && !pc.enabled {
                        self.peer_event(now, *a, PeerEvent::Disable(CloseReason::Disabled), out);
                    }
                }
            }
            if pc.enabled && self.peers[a].state == PeerState::Disabled {
                self.peer_event(now, *a, PeerEvent::Enable, out);
            }
        }
        self.config.peers = new.peers;
    }

    /// Drops a removed peer and every cache entry learned from it.
    fn forget_peer(&mut self, a: Ipv4Addr, out: &mut Vec<MsdpAction>) {
        self.peers.remove(&a);
        let keys: Vec<SaKey> = self
            .cache
            .iter()
            .filter(|(_, v)| v.learned_from == a)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.cache.remove(&key);
            out.push(MsdpAction::CancelTimer {
                key: MsdpTimer::SaState(key),
            });
        }
    }

    // ----- peer state machine (RFC 3618 section 11) -----

    fn peer_event(
        &mut self,
        now: Timestamp,
        a: Ipv4Addr,
        ev: PeerEvent,
        out: &mut Vec<MsdpAction>,
    ) {
        let local = self.config.local_address;
        let ka = secs(self.config.keepalive_interval);
        let hold = secs(self.config.hold_time);
        let retry = secs(self.config.connect_retry);
        let Some(p) = self.peers.get_mut(&a) else {
            self.counters.stale_inputs += 1;
            return;
        };
        use PeerEvent as E;
        use PeerState as S;
        let mut newly_up = false;
        let next = match (p.state, ev) {
            // Section 11: enable, then at once "own address lower" (active
            // active open and ConnectRetry) or own address higher (higher: listen).
            (S::Disabled, E::Enable) => {
                if local < a {
                    out.push(MsdpAction::Connect {
                        peer: a,
                        local,
                        port: MSDP_PORT,
                    });
                    out.push(MsdpAction::ArmTimer {
                        key: MsdpTimer::ConnectRetry(a),
                        at: now + retry,
                    });
                    S::Connecting
                } else {
                    out.push(MsdpAction::Listen { peer: a });
                    S::Listen
                }
            }
            // Section 11, ConnectRetry expired in Connecting: restart ConnectRetry, connect again.
            (S::Connecting, E::ConnectRetryExpired) => {
                out.push(MsdpAction::Connect {
                    peer: a,
                    local,
                    port: MSDP_PORT,
                });
                out.push(MsdpAction::ArmTimer {
                    key: MsdpTimer::ConnectRetry(a),
                    at: now + retry,
                });
                S::Connecting
            }
            // Connect failed: wait for ConnectRetry expired.
            (S::Connecting, E::ConnectFailed) => S::Connecting,
            // Section 11, TCP established in Connecting (our active open) or Listen (accepted):
            // cancel ConnectRetry, start KeepAlive and Hold; a
            // KeepAlive goes out at once so the peer's Hold timer starts.
            (S::Connecting, E::TcpEstablished { active: true })
            | (S::Listen, E::TcpEstablished { active: false }) => {
                out.push(MsdpAction::CancelTimer {
                    key: MsdpTimer::ConnectRetry(a),
                });
                out.push(MsdpAction::Send {
                    peer: a,
                    tlv: Repr::KeepAlive,
                });
                p.stats.tlvs_out += 1;
                out.push(MsdpAction::ArmTimer {
                    key: MsdpTimer::KeepAlive(a),
                    at: now + ka,
                });
                out.push(MsdpAction::ArmTimer {
                    key: MsdpTimer::Hold(a),
                    at: now + hold,
                });
                p.up_since = Some(now);
                p.stats.established_count += 1;
                out.push(MsdpAction::Event(MsdpEvent::PeerUp { peer: a }));
                newly_up = true;
                S::Established
            }
            // Section 5: the higher address listens, the lower connects. A
            // connection from the wrong side, or a second one, is refused.
            (s, E::TcpEstablished { .. }) => {
                out.push(MsdpAction::Reject {
                    peer: a,
                    reason: CloseReason::Unexpected,
                });
                s
            }
            // Section 11, KeepAlive expired: send a KeepAlive, restart the KeepAlive timer.
            (S::Established, E::KeepAliveExpired) => {
                out.push(MsdpAction::Send {
                    peer: a,
                    tlv: Repr::KeepAlive,
                });
                p.stats.tlvs_out += 1;
                out.push(MsdpAction::ArmTimer {
                    key: MsdpTimer::KeepAlive(a),
                    at: now + ka,
                });
                S::Established
            }
            // Section 11, Hold expired, TLV format error and a closed connection: close, back to
            // Inactive and at once to the role of own address lower/own address higher. The connecting
            // side waits one ConnectRetry before reconnecting.
            (S::Established, E::HoldExpired | E::FormatError(_) | E::TcpClosed) => {
                let reason = match ev {
                    E::HoldExpired => CloseReason::HoldTimerExpired,
                    E::FormatError(e) => CloseReason::FormatError(e),
                    _ => CloseReason::PeerClosed,
                };
                if reason != CloseReason::PeerClosed {
                    out.push(MsdpAction::Close { peer: a, reason });
                }
                Self::session_down(p, a, reason, out);
                if local < a {
                    out.push(MsdpAction::ArmTimer {
                        key: MsdpTimer::ConnectRetry(a),
                        at: now + retry,
                    });
                    S::Connecting
                } else {
                    S::Listen
                }
            }
            // Section 11, disable from any enabled state: close, cancel all timers,
            // stop listening .
            (S::Established, E::Disable(reason)) => {
                out.push(MsdpAction::Close { peer: a, reason });
                Self::session_down(p, a, reason, out);
                out.push(MsdpAction::StopListening { peer: a });
                out.push(MsdpAction::CancelTimer {
                    key: MsdpTimer::ConnectRetry(a),
                });
                p.last_error = Some(reason);
                S::Disabled
            }
            (S::Connecting | S::Listen | S::Inactive, E::Disable(reason)) => {
                out.push(MsdpAction::Close { peer: a, reason });
                out.push(MsdpAction::StopListening { peer: a });
                out.push(MsdpAction::CancelTimer {
                    key: MsdpTimer::ConnectRetry(a),
                });
                S::Disabled
            }
            // Everything else is stale (a timer of a previous session, a
            // close of a connection not adopted) and changes nothing.
            (s, _) => {
                self.counters.stale_inputs += 1;
                s
            }
        };
        if let Some(p) = self.peers.get_mut(&a) {
            p.state = next;
        }
        if newly_up {
            self.send_all_to(now, a, out);
        }
    }

    fn session_down(p: &mut Peer, a: Ipv4Addr, reason: CloseReason, out: &mut Vec<MsdpAction>) {
        out.push(MsdpAction::CancelTimer {
            key: MsdpTimer::KeepAlive(a),
        });
        out.push(MsdpAction::CancelTimer {
            key: MsdpTimer::Hold(a),
        });
        p.up_since = None;
        p.last_error = Some(reason);
        out.push(MsdpAction::Event(MsdpEvent::PeerDown {
            peer: a,
            reason: reason.to_string(),
        }));
    }

    // ----- TLVs and the SA cache (RFC 3618 sections 5, 6, 10) -----

    fn receive_tlv(&mut self, now: Timestamp, a: Ipv4Addr, tlv: Repr, out: &mut Vec<MsdpAction>) {
        let hold = secs(self.config.hold_time);
        let Some(p) = self.peers.get_mut(&a) else {
            self.counters.stale_inputs += 1;
            return;
        };
        if p.state != PeerState::Established {
            p.stats.ignored += 1;
            return;
        }
        // Section 11, TLV received: restart the Hold timer on every TLV received.
        p.stats.tlvs_in += 1;
        out.push(MsdpAction::ArmTimer {
            key: MsdpTimer::Hold(a),
            at: now + hold,
        });
        match tlv {
            Repr::SourceActive { rp, entries, data } => {
                self.receive_sa(now, a, rp, entries, data, out)
            }
            Repr::KeepAlive => {}
            Repr::Unknown { .. } => p.stats.ignored += 1,
        }
    }

    /// Peer-RPF acceptance (RFC 3618 10.1.3, simplified; 10.2 for mesh
    /// groups): accept an SA from peer `n` originated by `rp` when `n` is
    /// in a mesh group, `n` is `rp` itself, `n` is the peer-RPF neighbour
    /// toward `rp`, `n` is a default peer, or `n` is our only peer.
    fn rpf_accepts(&self, n: Ipv4Addr, rp: Ipv4Addr) -> bool {
        let Some(p) = self.peers.get(&n) else {
            return false;
        };
        if p.config.mesh_group.is_some() || n == rp {
            return true;
        }
        if let Some(f) = &self.peer_rpf {
            if f(rp) == Some(n) {
                return true;
            }
        }
        p.config.default_peer || self.peers.len() == 1
    }

    fn receive_sa(
        &mut self,
        now: Timestamp,
        a: Ipv4Addr,
        rp: Ipv4Addr,
        entries: Vec<SaEntry>,
        data: Vec<u8>,
        out: &mut Vec<MsdpAction>,
    ) {
        let n = entries.len() as u64;
        let accepted = self.rpf_accepts(a, rp);
        let own = rp == self.config.local_address || rp == self.originator();
        let timeout = secs(self.config.sa_cache_timeout);
        let global_limit = self.config.sa_cache_limit;
        let Some(p) = self.peers.get_mut(&a) else {
            return;
        };
        p.stats.sa_in += n;
        // RFC 3618 section 12.2: the RP address names a unicast router.
        if !is_unicast_host(rp) {
            p.stats.invalid_rp += n;
            return;
        }
        if own {
            self.counters.own_rp_drops += n;
            return;
        }
        if !accepted {
            p.stats.rpf_fail += n;
            return;
        }
        let mut forward = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            // Section 12.2's fields: a source that no host can have, or a
            // group no SA can be for, would be cached and flooded to
            // every peer for nothing.
            if !is_unicast_host(e.source) {
                p.stats.invalid_source += 1;
                continue;
            }
            if !e.group.is_multicast() || is_link_local_group(e.group) {
                p.stats.invalid_group += 1;
                continue;
            }
            if !p.config.filter_in.permits(e.source, e.group) {
                p.stats.filtered_in += 1;
                continue;
            }
            let key = SaKey {
                source: e.source,
                group: e.group,
                rp,
            };
            let expires = now + timeout;
            if let Some(info) = self.cache.get_mut(&key) {
                // Section 5.3: a re-advertisement restarts the SA-State timer.
                info.expires = expires;
            } else {
                if p.sa_count >= p.config.sa_limit {
                    p.stats.limit_drops += 1;
                    continue;
                }
                if self.cache.len() >= global_limit {
                    p.stats.cache_full_drops += 1;
                    self.counters.cache_full_drops += 1;
                    continue;
                }
                self.cache.insert(
                    key,
                    SaInfo {
                        learned_from: a,
                        created: now,
                        expires,
                    },
                );
                p.sa_count += 1;
                out.push(MsdpAction::Event(MsdpEvent::SaAdded { key, peer: a }));
            }
            out.push(MsdpAction::ArmTimer {
                key: MsdpTimer::SaState(key),
                at: expires,
            });
            forward.push(*e);
        }
        let whole = forward.len() == entries.len();
        self.flood(now, a, rp, &forward, if whole { &data } else { &[] }, out);
    }

    /// The RP address of our SAs.
    fn originator(&self) -> Ipv4Addr {
        self.config
            .originator_id
            .unwrap_or(self.config.local_address)
    }

    /// Replaces the local sources; advertises the new ones at once (RFC
    /// 3618 section 5.1) and starts the SA-Advertisement timer.
    fn set_local_sources(
        &mut self,
        now: Timestamp,
        sources: Vec<SaEntry>,
        out: &mut Vec<MsdpAction>,
    ) {
        let limit = self.config.sa_cache_limit;
        let mut set = BTreeSet::new();
        for e in sources {
            if set.len() >= limit && !set.contains(&e) {
                self.counters.local_sources_dropped += 1;
                continue;
            }
            set.insert(e);
        }
        let new: Vec<SaEntry> = set.difference(&self.local_sources).copied().collect();
        self.local_sources = set;
        let rp = self.originator();
        self.flood(now, rp, rp, &new, &[], out);
        if self.local_sources.is_empty() {
            if self.advertising {
                out.push(MsdpAction::CancelTimer {
                    key: MsdpTimer::SaAdvertisement,
                });
                self.advertising = false;
            }
        } else if !self.advertising {
            self.advertising = true;
            out.push(MsdpAction::ArmTimer {
                key: MsdpTimer::SaAdvertisement,
                at: now + secs(self.config.sa_advertisement_period),
            });
        }
    }

    /// SA-Advertisement timer (RFC 3618 5.1): every local source to every
    /// Established peer, then re-arm.
    fn advertise(&mut self, now: Timestamp, out: &mut Vec<MsdpAction>) {
        if self.local_sources.is_empty() {
            self.advertising = false;
            return;
        }
        let all: Vec<SaEntry> = self.local_sources.iter().copied().collect();
        let rp = self.originator();
        self.flood(now, rp, rp, &all, &[], out);
        out.push(MsdpAction::ArmTimer {
            key: MsdpTimer::SaAdvertisement,
            at: now + secs(self.config.sa_advertisement_period),
        });
    }

    /// Sections 3 and 10.2: sends the accepted entries to every Established
    /// peer except the sender and the members of the sender's mesh group,
    /// through each target's outbound filter, at most 255 entries a TLV.
    fn flood(
        &mut self,
        now: Timestamp,
        from: Ipv4Addr,
        rp: Ipv4Addr,
        entries: &[SaEntry],
        data: &[u8],
        out: &mut Vec<MsdpAction>,
    ) {
        if entries.is_empty() {
            return;
        }
        let ka = secs(self.config.keepalive_interval);
        let mesh = self
            .peers
            .get(&from)
            .and_then(|p| p.config.mesh_group.clone());
        for (&t, p) in self.peers.iter_mut() {
            if t == from || p.state != PeerState::Established {
                continue;
            }
            if mesh.is_some() && p.config.mesh_group == mesh {
                continue;
            }
            send_sa(p, t, rp, entries, data, now + ka, out);
        }
    }

    /// Section 5.2 (SHOULD): a peer that just reached Established gets
    /// every local source and every cached SA it may receive (not those
    /// learned from it, nor from members of its own mesh group, section
    /// 10.2), through its outbound filter.
    fn send_all_to(&mut self, now: Timestamp, t: Ipv4Addr, out: &mut Vec<MsdpAction>) {
        let ka = secs(self.config.keepalive_interval);
        let mut by_rp: BTreeMap<Ipv4Addr, Vec<SaEntry>> = BTreeMap::new();
        if !self.local_sources.is_empty() {
            by_rp
                .entry(self.originator())
                .or_default()
                .extend(self.local_sources.iter().copied());
        }
        let mesh_of = |a: &Ipv4Addr| self.peers.get(a).and_then(|p| p.config.mesh_group.as_ref());
        let t_mesh = mesh_of(&t);
        for (k, info) in &self.cache {
            if info.learned_from == t || (t_mesh.is_some() && mesh_of(&info.learned_from) == t_mesh)
            {
                continue;
            }
            by_rp.entry(k.rp).or_default().push(SaEntry {
                source: k.source,
                group: k.group,
            });
        }
        let Some(p) = self.peers.get_mut(&t) else {
            return;
        };
        for (rp, entries) in by_rp {
            send_sa(p, t, rp, &entries, &[], now + ka, out);
        }
    }

    /// Section 5.3: the SA-State timer ran out; the entry goes.
    fn sa_expired(&mut self, now: Timestamp, key: SaKey, out: &mut Vec<MsdpAction>) {
        match self.cache.get(&key) {
            Some(info) if info.expires <= now => {
                let from = info.learned_from;
                self.cache.remove(&key);
                if let Some(p) = self.peers.get_mut(&from) {
                    p.sa_count = p.sa_count.saturating_sub(1);
                }
                out.push(MsdpAction::Event(MsdpEvent::SaExpired { key }));
            }
            _ => self.counters.stale_inputs += 1,
        }
    }
}

/// Sends `entries` (all from originating RP `rp`) to peer `t` through its
/// outbound filter, at most 255 entries a TLV; `data` goes with the first
/// TLV when every entry passes. Restarts `t`'s KeepAlive timer to
/// `keepalive_at` (RFC 3618 5.5: reset each time a message is sent).
fn send_sa(
    p: &mut Peer,
    t: Ipv4Addr,
    rp: Ipv4Addr,
    entries: &[SaEntry],
    data: &[u8],
    keepalive_at: Timestamp,
    out: &mut Vec<MsdpAction>,
) {
    let passing: Vec<SaEntry> = entries
        .iter()
        .filter(|e| p.config.filter_out.permits(e.source, e.group))
        .copied()
        .collect();
    p.stats.filtered_out += (entries.len() - passing.len()) as u64;
    if passing.is_empty() {
        return;
    }
    let whole = passing.len() == entries.len();
    for (i, chunk) in passing.chunks(SA_MAX_ENTRIES).enumerate() {
        let data = if whole && i == 0 {
            data.to_vec()
        } else {
            Vec::new()
        };
        p.stats.sa_out += chunk.len() as u64;
        p.stats.tlvs_out += 1;
        out.push(MsdpAction::Send {
            peer: t,
            tlv: Repr::SourceActive {
                rp,
                entries: chunk.to_vec(),
                data,
            },
        });
    }
    out.push(MsdpAction::ArmTimer {
        key: MsdpTimer::KeepAlive(t),
        at: keepalive_at,
    });
}

/// Whether `a` can be a unicast host's or router's address: not in
/// 0.0.0.0/8 ("this network"), 127.0.0.0/8 (loopback), 224.0.0.0/4
/// (multicast) and not 255.255.255.255.
fn is_unicast_host(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] != 0 && o[0] != 127 && !a.is_multicast() && !a.is_broadcast()
}

/// 224.0.0.0/24: link-local groups, never forwarded by a router (RFC
/// 5771), so never in an SA.
fn is_link_local_group(g: Ipv4Addr) -> bool {
    let o = g.octets();
    o[0] == 224 && o[1] == 0 && o[2] == 0
}
