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
pub struct Drops {
    /// Passed the filter but no rule matches (e.g. a rule removed, or a
    /// source-specific rule and another source).
    pub no_rule: u64,
    /// Sent by one of this host's interfaces (loop prevention).
    pub own_frame: u64,
    /// Not IPv4/UDP, or a header that contradicts itself.
    pub malformed: u64,
    /// Shorter than its headers say (including frames past the buffer size).
    pub truncated: u64,
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
    pub fn total(&self) -> u64 {
        self.no_rule
            + self.own_frame
            + self.malformed
            + self.truncated
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
    pub drops: Drops,
    pub rules: Vec<RuleStats>,
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
