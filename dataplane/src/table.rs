//! The compiled forwarding table: what the engines match packets against.
//!
//! A table is immutable once built. The control plane compiles a new one for
//! every change and publishes it through [`TableHandle`] (an `ArcSwap`); each
//! engine loads it once per batch, so a swap is one pointer store and costs
//! the data path nothing.

use arc_swap::ArcSwap;
use mcr_wire::MacAddr;
use rustc_hash::FxHashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// One input interface's capture needs: its index, how its frames start,
/// and the (group, port) pairs its filter passes.
pub type InterfaceInputs = (u32, crate::input::LinkKind, Vec<(Ipv4Addr, u16)>);

/// Where a rule listens: the input interface and the destination address and
/// port of the datagrams it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputKey {
    pub ifindex: u32,
    pub group: Ipv4Addr,
    pub port: u16,
}

/// The port of a route's input key and outputs. A route (a multicast
/// router's `(S,G)` or `(*,G)`, DESIGN.md "Relay rules and routes") takes
/// every IP protocol and port to its group on its iif and forwards the
/// whole IP packet, TTL minus one, as an Ethernet frame on each oif. It is
/// a table rule whose input and output ports are this value: relay rules
/// never use port 0 (the config refuses it), so the two kinds share the
/// index, the counters and the capture filter (where port 0 means "any IP
/// protocol to the group", see [`crate::bpf::capture_filter`]).
pub const ROUTE_PORT: u16 = 0;

/// One output as the engine needs it: which socket slot to send on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOutput {
    /// Index into [`ForwardingTable::output_slots`].
    pub slot: u32,
}

/// A distinct egress socket: several rules sending to the same interface,
/// destination and TTL share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutputSlot {
    pub ifindex: u32,
    pub ifname: String,
    pub dest: SocketAddrV4,
    pub ttl: u8,
    /// `ttl: "decrement"`: each datagram leaves with its input's TTL less
    /// one (`ttl` is then only the socket default).
    pub ttl_decrement: bool,
    /// The output interface's link details, for the prebuilt-header
    /// transmit path (None when unknown: the UDP path is used).
    pub link: Option<LinkInfo>,
}

impl OutputSlot {
    /// How counters name the output: `group:port@interface`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.dest, self.ifname)
    }
}

/// What an engine needs to build an output's Ethernet/IP/UDP headers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkInfo {
    pub mac: MacAddr,
    pub addr: Ipv4Addr,
    pub mtu: u32,
}

/// A rule as compiled for the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRule {
    /// The stable rule id (from the config crate); counters follow it across
    /// table swaps.
    pub id: String,
    pub input: InputKey,
    pub source: Option<Ipv4Addr>,
    pub outputs: Vec<TableOutput>,
}

/// What the compiler hands to [`TableBuilder::add_rule`].
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub id: String,
    pub input: InputKey,
    pub source: Option<Ipv4Addr>,
    pub outputs: Vec<OutputSlot>,
}

/// The rules matching one input key: at most one any-source rule, plus
/// source-specific ones (which win over the any-source rule).
#[derive(Debug, Clone, Default)]
struct InputMatch {
    any_source: Option<u32>,
    by_source: Vec<(Ipv4Addr, u32)>,
}

#[derive(Debug, Default)]
pub struct ForwardingTable {
    /// Capture sockets per input interface, one per engine (see
    /// [`crate::capture`]).
    captures: Vec<(u32, crate::capture::CaptureSet)>,
    generation: u64,
    rules: Vec<TableRule>,
    output_slots: Vec<OutputSlot>,
    index: FxHashMap<InputKey, InputMatch>,
    local_macs: Vec<MacAddr>,
    /// Input interfaces without an Ethernet header (read at the network
    /// header; never on the kernel fast path).
    ip_links: Vec<u32>,
    /// Ids of rules that exist but are not in this table (an interface
    /// is missing): their counters are kept until they return.
    dormant: Vec<String>,
}

impl ForwardingTable {
    /// An empty table (nothing is forwarded).
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The table with its capture sockets attached.
    pub fn with_captures(mut self, captures: Vec<(u32, crate::capture::CaptureSet)>) -> Self {
        self.captures = captures;
        self
    }

    pub fn captures(&self) -> &[(u32, crate::capture::CaptureSet)] {
        &self.captures
    }

    pub fn rules(&self) -> &[TableRule] {
        &self.rules
    }

    pub fn output_slots(&self) -> &[OutputSlot] {
        &self.output_slots
    }

    pub fn local_macs(&self) -> &[MacAddr] {
        &self.local_macs
    }

    /// The rule that takes a datagram, if any: a rule for this exact source
    /// wins over an any-source rule for the same input.
    #[inline]
    pub fn lookup(&self, ifindex: u32, dst: Ipv4Addr, port: u16, src: Ipv4Addr) -> Option<usize> {
        let m = self.index.get(&InputKey {
            ifindex,
            group: dst,
            port,
        })?;
        m.by_source
            .iter()
            .find(|(s, _)| *s == src)
            .map(|(_, r)| *r)
            .or(m.any_source)
            .map(|r| r as usize)
    }

    /// Whether rule `idx` is a route (see [`ROUTE_PORT`]).
    #[inline]
    pub fn is_route(&self, idx: usize) -> bool {
        self.rules
            .get(idx)
            .is_some_and(|r| r.input.port == ROUTE_PORT)
    }

    /// Whether any rule is a route.
    pub fn has_routes(&self) -> bool {
        self.rules.iter().any(|r| r.input.port == ROUTE_PORT)
    }

    /// The table with `routes` added (each a [`RuleSpec`] whose input and
    /// output ports are [`ROUTE_PORT`] and whose outputs carry the oif's
    /// link details). A route whose input is taken is left out and named
    /// in the result.
    pub fn with_routes(self, routes: Vec<RuleSpec>) -> (Self, Vec<DuplicateInput>) {
        let slot_of = self
            .output_slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        let mut b = TableBuilder {
            table: self,
            slot_of,
        };
        let mut refused = Vec::new();
        for r in routes {
            if let Err(e) = b.add_rule(r) {
                refused.push(e);
            }
        }
        (b.build(), refused)
    }

    /// Whether a frame with this source MAC was sent by this host (one of our
    /// own interfaces): such frames are never taken as input, which is what
    /// keeps a relay whose input and output share a bridge from looping.
    #[inline]
    pub fn is_local_mac(&self, mac: &MacAddr) -> bool {
        self.local_macs.contains(mac)
    }

    /// The input interfaces in use, each with the (group, port) pairs the
    /// BPF filter must pass, sorted and without duplicates.
    /// Whether rule `id` exists without being in this table (its counters
    /// are kept).
    pub fn is_dormant(&self, id: &str) -> bool {
        self.dormant.iter().any(|d| d == id)
    }

    pub fn dormant(&self) -> &[String] {
        &self.dormant
    }

    /// How frames on input interface `ifindex` start.
    pub fn link_kind(&self, ifindex: u32) -> crate::input::LinkKind {
        if self.ip_links.contains(&ifindex) {
            crate::input::LinkKind::Ip
        } else {
            crate::input::LinkKind::Ethernet
        }
    }

    pub fn inputs_by_interface(&self) -> Vec<InterfaceInputs> {
        let mut by_if: std::collections::BTreeMap<u32, Vec<(Ipv4Addr, u16)>> = Default::default();
        for key in self.index.keys() {
            by_if
                .entry(key.ifindex)
                .or_default()
                .push((key.group, key.port));
        }
        by_if
            .into_iter()
            .map(|(i, mut v)| {
                v.sort();
                v.dedup();
                (i, self.link_kind(i), v)
            })
            .collect()
    }
}

/// Builds a [`ForwardingTable`].
#[derive(Debug, Default)]
pub struct TableBuilder {
    table: ForwardingTable,
    slot_of: FxHashMap<OutputSlot, u32>,
}

/// A rule the builder refused because its input is already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule '{id}' has the same input as rule '{existing}'")]
pub struct DuplicateInput {
    pub id: String,
    pub existing: String,
}

impl TableBuilder {
    pub fn new(generation: u64) -> Self {
        TableBuilder {
            table: ForwardingTable {
                generation,
                ..Default::default()
            },
            slot_of: Default::default(),
        }
    }

    pub fn local_macs(mut self, macs: Vec<MacAddr>) -> Self {
        self.table.local_macs = macs;
        self
    }

    /// Rules that exist but are not in the table (see
    /// [`ForwardingTable::is_dormant`]).
    pub fn dormant(mut self, ids: Vec<String>) -> Self {
        self.table.dormant = ids;
        self
    }

    /// Interfaces whose frames carry no Ethernet header.
    pub fn ip_links(mut self, ifindexes: Vec<u32>) -> Self {
        self.table.ip_links = ifindexes;
        self
    }

    pub fn add_rule(&mut self, spec: RuleSpec) -> Result<(), DuplicateInput> {
        let index = self.table.rules.len() as u32;
        let entry = self.table.index.entry(spec.input).or_default();
        let existing = match spec.source {
            None => entry.any_source,
            Some(s) => entry
                .by_source
                .iter()
                .find(|(src, _)| *src == s)
                .map(|(_, r)| *r),
        };
        if let Some(existing) = existing {
            return Err(DuplicateInput {
                id: spec.id,
                existing: self.table.rules[existing as usize].id.clone(),
            });
        }
        match spec.source {
            None => entry.any_source = Some(index),
            Some(s) => entry.by_source.push((s, index)),
        }
        let mut outputs = Vec::with_capacity(spec.outputs.len());
        for out in spec.outputs {
            let next = self.table.output_slots.len() as u32;
            let slot = *self.slot_of.entry(out.clone()).or_insert(next);
            if slot == next {
                self.table.output_slots.push(out);
            }
            outputs.push(TableOutput { slot });
        }
        self.table.rules.push(TableRule {
            id: spec.id,
            input: spec.input,
            source: spec.source,
            outputs,
        });
        Ok(())
    }

    pub fn build(self) -> ForwardingTable {
        self.table
    }
}

/// The shared, swappable reference to the current table.
#[derive(Clone)]
pub struct TableHandle(Arc<ArcSwap<ForwardingTable>>);

impl Default for TableHandle {
    fn default() -> Self {
        TableHandle(Arc::new(ArcSwap::from_pointee(ForwardingTable::empty())))
    }
}

impl TableHandle {
    pub fn load(&self) -> Arc<ForwardingTable> {
        self.0.load_full()
    }

    /// Publishes `table`; engines pick it up at their next batch.
    pub fn publish(&self, table: ForwardingTable) {
        self.0.store(Arc::new(table));
    }

    /// The generation of the current table, without taking a reference.
    pub fn generation(&self) -> u64 {
        self.0.load().generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: [u8; 4], port: u16) -> InputKey {
        InputKey {
            ifindex: 2,
            group: Ipv4Addr::from(group),
            port,
        }
    }

    fn out(port: u16) -> OutputSlot {
        OutputSlot {
            ifindex: 3,
            ifname: "b".into(),
            dest: SocketAddrV4::new(Ipv4Addr::new(239, 2, 2, 2), port),
            ttl: 1,
            ttl_decrement: false,
            link: None,
        }
    }

    #[test]
    fn lookup_prefers_source_specific_rule() {
        let mut b = TableBuilder::new(1);
        let k = key([239, 1, 1, 1], 5000);
        b.add_rule(RuleSpec {
            id: "any".into(),
            input: k,
            source: None,
            outputs: vec![out(1)],
        })
        .unwrap();
        b.add_rule(RuleSpec {
            id: "ssm".into(),
            input: k,
            source: Some(Ipv4Addr::new(10, 0, 0, 9)),
            outputs: vec![out(1), out(2)],
        })
        .unwrap();
        let t = b.build();
        let g = Ipv4Addr::new(239, 1, 1, 1);
        assert_eq!(t.lookup(2, g, 5000, Ipv4Addr::new(10, 0, 0, 9)), Some(1));
        assert_eq!(t.lookup(2, g, 5000, Ipv4Addr::new(10, 0, 0, 8)), Some(0));
        assert_eq!(t.lookup(2, g, 5001, Ipv4Addr::new(10, 0, 0, 8)), None);
        assert_eq!(t.lookup(3, g, 5000, Ipv4Addr::new(10, 0, 0, 8)), None);
        // out(1) is shared between the two rules.
        assert_eq!(t.output_slots().len(), 2);
        assert_eq!(t.rules()[1].outputs[0].slot, t.rules()[0].outputs[0].slot);
        assert_eq!(
            t.inputs_by_interface(),
            vec![(2, crate::input::LinkKind::Ethernet, vec![(g, 5000)])]
        );
    }

    #[test]
    fn duplicate_input_refused() {
        let mut b = TableBuilder::new(1);
        let spec = RuleSpec {
            id: "a".into(),
            input: key([239, 1, 1, 1], 5000),
            source: None,
            outputs: vec![],
        };
        b.add_rule(spec.clone()).unwrap();
        let err = b
            .add_rule(RuleSpec {
                id: "b".into(),
                ..spec
            })
            .unwrap_err();
        assert_eq!(err.existing, "a");
    }
}
