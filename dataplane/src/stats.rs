//! Counters: each engine counts into its own memory on the packet path and
//! publishes a snapshot every [`PUBLISH_INTERVAL`]; the control plane reads
//! the snapshots and never touches the engine.

use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Packets an engine took in but did not forward, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Drops {
    /// Passed the filter but no rule matches (e.g. a rule removed, or a
    /// source-specific rule and another source).
    pub no_rule: u64,
    /// Sent by one of this host's interfaces (loop prevention).
    pub own_frame: u64,
    /// Not IPv4/UDP, or a header that contradicts itself.
    pub malformed: u64,
    /// Shorter than its headers say.
    pub truncated: u64,
    /// Longer than the engines' 9,216-byte frame limit
    /// ([`crate::input::MAX_FRAME`]); the fast path leaves these to the
    /// engines too.
    pub oversize: u64,
    /// Tagged with a VLAN (other than VLAN 0): the frame belongs to the
    /// VLAN's interface, not to the one it arrived on.
    pub vlan: u64,
    /// Sent to another host's MAC address (`PACKET_OTHERHOST`).
    pub not_for_host: u64,
    /// The IPv4 header checksum does not verify.
    pub ip_checksum: u64,
    /// Not sent on a `ttl: "decrement"` output because it arrived with TTL
    /// 1 (counted once per such output).
    pub ttl_expired: u64,
    /// The UDP checksum does not verify (0, "none", is accepted).
    pub udp_checksum: u64,
    /// The UDP length is below 8 or past the IPv4 payload.
    pub udp_length: u64,
    /// Arrived with TTL 0.
    pub ttl_zero: u64,
    /// From a source no datagram can have: 0.0.0.0/8, 127.0.0.0/8,
    /// multicast, 255.255.255.255.
    pub martian_source: u64,
    /// A piece of a fragmented datagram: the relay forwards whole datagrams.
    pub fragment: u64,
    /// The capture ring ran out of buffers (the engine fell behind; frames
    /// wait in the socket queue, so this alone loses nothing).
    pub no_buffer: u64,
    /// The kernel dropped frames because a capture socket's queue was full:
    /// the engine fell too far behind and input was lost.
    pub capture_overflow: u64,
    /// An output's socket buffer was full (counted per output too).
    pub output_full: u64,
    /// An output's send failed for another reason (counted per output too).
    pub output_error: u64,
}

impl Drops {
    /// Counts one frame rejected for `reason`.
    pub fn count(&mut self, reason: crate::input::Reject) {
        use crate::input::Reject as R;
        let c = match reason {
            R::Oversize => &mut self.oversize,
            R::Vlan => &mut self.vlan,
            R::NotForHost => &mut self.not_for_host,
            R::Truncated => &mut self.truncated,
            R::OwnFrame => &mut self.own_frame,
            R::Malformed => &mut self.malformed,
            R::IpChecksum => &mut self.ip_checksum,
            R::Fragment => &mut self.fragment,
            R::TtlZero => &mut self.ttl_zero,
            R::MartianSource => &mut self.martian_source,
            R::UdpLength => &mut self.udp_length,
            R::UdpChecksum => &mut self.udp_checksum,
            R::NoRule => &mut self.no_rule,
        };
        *c += 1;
    }

    pub fn total(&self) -> u64 {
        self.no_rule
            + self.own_frame
            + self.malformed
            + self.truncated
            + self.oversize
            + self.vlan
            + self.not_for_host
            + self.ip_checksum
            + self.udp_checksum
            + self.udp_length
            + self.ttl_zero
            + self.ttl_expired
            + self.martian_source
            + self.fragment
            + self.capture_overflow
            + self.output_full
            + self.output_error
    }

    pub fn add(&mut self, o: &Drops) {
        self.no_rule += o.no_rule;
        self.own_frame += o.own_frame;
        self.malformed += o.malformed;
        self.truncated += o.truncated;
        self.oversize += o.oversize;
        self.vlan += o.vlan;
        self.not_for_host += o.not_for_host;
        self.ip_checksum += o.ip_checksum;
        self.udp_checksum += o.udp_checksum;
        self.udp_length += o.udp_length;
        self.ttl_zero += o.ttl_zero;
        self.ttl_expired += o.ttl_expired;
        self.martian_source += o.martian_source;
        self.fragment += o.fragment;
        self.no_buffer += o.no_buffer;
        self.capture_overflow += o.capture_overflow;
        self.output_full += o.output_full;
        self.output_error += o.output_error;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputStats {
    /// The output's destination as `group:port@interface`.
    pub output: String,
    pub packets: u64,
    pub bytes: u64,
    /// Socket buffer full: dropped rather than blocking the engine.
    pub full: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    pub id: String,
    /// Datagrams matched on input, and their UDP payload bytes.
    pub packets: u64,
    pub bytes: u64,
    pub outputs: Vec<OutputStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub engine: usize,
    pub cpu: usize,
    /// The forwarding table generation the engine runs.
    pub generation: u64,
    /// Frames received from the capture sockets.
    pub frames: u64,
    pub batches: u64,
    /// UDP GSO sends of two or more datagrams (receive ring only), and the
    /// datagrams they carried.
    pub batched_sends: u64,
    pub batched_datagrams: u64,
    pub drops: Drops,
    pub rules: RuleStatsList,
}

/// An engine's per-rule counts, in chunks that successive snapshots share
/// while none of their rules counted anything: a snapshot of 100,000 rules
/// rebuilds only the chunks that moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStatsList {
    pub(crate) chunks: Vec<Arc<Vec<RuleStats>>>,
}

impl RuleStatsList {
    pub fn iter(&self) -> impl Iterator<Item = &RuleStats> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(|c| c.is_empty())
    }
}

impl Serialize for RuleStatsList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Where one engine publishes its snapshots.
#[derive(Clone, Default)]
pub struct StatsHandle(Arc<ArcSwap<EngineStats>>);

impl StatsHandle {
    pub fn publish(&self, s: EngineStats) {
        self.0.store(Arc::new(s));
    }

    pub fn snapshot(&self) -> Arc<EngineStats> {
        self.0.load_full()
    }
}
