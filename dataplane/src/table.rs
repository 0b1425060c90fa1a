//! The compiled forwarding table: what the engines match packets against.
//!
//! A table is immutable once built. The control plane compiles a new one for
//! every change and publishes it through [`TableHandle`] (an `ArcSwap`); each
//! engine loads it once per batch, so a swap is one pointer store and costs
//! the data path nothing.
//!
//! One rule added or removed need not cost a table of 100,000 rules: the
//! rules are kept in chunks and the input index in shards, each behind an
//! `Arc`, so [`ForwardingTable::edit`] starts the next version sharing
//! every part with the current one and copies only the chunk and the shard
//! a change touches. Rule indexes stay put across such an edit except for
//! the one a removal moves (see [`TableDelta`]), so the engines carry their
//! counters over without looking at the other rules.

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

/// Rules per chunk of [`Rules`]: what an edit copies.
const RULE_CHUNK: usize = 256;
/// Shards of the input index: an edit copies one (a 64th of the keys).
const INDEX_SHARDS: usize = 64;

/// The rules of a table, indexed from 0, in chunks shared between table
/// versions (copy on write).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    chunks: Vec<Arc<Vec<TableRule>>>,
    len: usize,
}

/// Iterates [`Rules`] in index order.
pub type RulesIter<'a> = std::iter::FlatMap<
    std::slice::Iter<'a, Arc<Vec<TableRule>>>,
    std::slice::Iter<'a, TableRule>,
    fn(&'a Arc<Vec<TableRule>>) -> std::slice::Iter<'a, TableRule>,
>;

impl Rules {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&TableRule> {
        self.chunks.get(i / RULE_CHUNK)?.get(i % RULE_CHUNK)
    }

    pub fn iter(&self) -> RulesIter<'_> {
        let chunk: fn(&Arc<Vec<TableRule>>) -> std::slice::Iter<'_, TableRule> = |c| c.iter();
        self.chunks.iter().flat_map(chunk)
    }

    fn push(&mut self, rule: TableRule) {
        if self.len.is_multiple_of(RULE_CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(RULE_CHUNK)));
        }
        let last = self.chunks.last_mut().expect("a chunk was just ensured");
        Arc::make_mut(last).push(rule);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<TableRule> {
        let last = self.chunks.last_mut()?;
        let rule = Arc::make_mut(last).pop();
        if last.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        rule
    }

    fn set(&mut self, i: usize, rule: TableRule) {
        Arc::make_mut(&mut self.chunks[i / RULE_CHUNK])[i % RULE_CHUNK] = rule;
    }
}

impl std::ops::Index<usize> for Rules {
    type Output = TableRule;
    fn index(&self, i: usize) -> &TableRule {
        &self.chunks[i / RULE_CHUNK][i % RULE_CHUNK]
    }
}

impl<'a> IntoIterator for &'a Rules {
    type Item = &'a TableRule;
    type IntoIter = RulesIter<'a>;
    fn into_iter(self) -> RulesIter<'a> {
        self.iter()
    }
}

/// What an edit changed in rule indexes, relative to table `base`: an
/// engine that runs `base` applies the steps in order to its per-rule
/// counters instead of matching every rule by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDelta {
    pub base: u64,
    pub steps: Vec<DeltaStep>,
}

/// One step of a [`TableDelta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaStep {
    /// A rule appended at this index (the last).
    Added(u32),
    /// The rule at this index removed, and the last rule moved into its
    /// place (`Vec::swap_remove`).
    Removed(u32),
}

/// The shard of the input index a key lives in.
#[inline]
fn shard_of(key: &InputKey) -> usize {
    let mixed = (u32::from(key.group) ^ (u32::from(key.port) << 16) ^ key.ifindex.rotate_left(8))
        .wrapping_mul(0x9E37_79B1);
    (mixed >> 26) as usize % INDEX_SHARDS
}

#[derive(Debug, Default, Clone)]
pub struct ForwardingTable {
    /// Capture sockets per input interface, one per engine (see
    /// [`crate::capture`]).
    captures: Vec<(u32, crate::capture::CaptureSet)>,
    generation: u64,
    rules: Rules,
    output_slots: Arc<Vec<OutputSlot>>,
    /// Each output slot's index, and how many rule outputs use it (a slot
    /// no rule uses any more is kept by edits, and dropped by the next
    /// full compile).
    slot_of: Arc<FxHashMap<OutputSlot, u32>>,
    slot_users: Arc<Vec<u32>>,
    unused_slots: usize,
    /// `INDEX_SHARDS` shards, or none while the table is empty.
    index: Vec<Arc<FxHashMap<InputKey, InputMatch>>>,
    /// Input keys per input interface.
    keys_per_if: std::collections::BTreeMap<u32, usize>,
    local_macs: Vec<MacAddr>,
    /// Input interfaces without an Ethernet header (read at the network
    /// header; never on the kernel fast path).
    ip_links: Vec<u32>,
    /// Ids of rules that exist but are not in this table (an interface
    /// is missing): their counters are kept until they return.
    dormant: Arc<Vec<String>>,
    /// Set by [`ForwardingTable::edit`]: how rule indexes moved since the
    /// table it started from.
    delta: Option<TableDelta>,
    /// How many rules are routes (see [`ROUTE_PORT`]); kept by
    /// `add_rule`/`remove_rule` so engines need not scan every rule per
    /// table.
    routes: usize,
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

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// How rule indexes moved since the table this one was edited from
    /// (None: compiled from scratch, match rules by id).
    pub fn delta(&self) -> Option<&TableDelta> {
        self.delta.as_ref()
    }

    /// Output slots no rule uses any more (left by removals).
    pub fn unused_slots(&self) -> usize {
        self.unused_slots
    }

    /// The index of the rule taking exactly this input and source, if any.
    pub fn rule_for(&self, input: &InputKey, source: Option<Ipv4Addr>) -> Option<usize> {
        let m = self.index.get(shard_of(input))?.get(input)?;
        match source {
            None => m.any_source,
            Some(s) => m
                .by_source
                .iter()
                .find(|(src, _)| *src == s)
                .map(|(_, r)| *r),
        }
        .map(|r| r as usize)
    }

    /// The input interfaces in use (sorted).
    pub fn input_interfaces(&self) -> Vec<u32> {
        self.keys_per_if.keys().copied().collect()
    }

    /// How many distinct (group, port) inputs interface `ifindex` has.
    pub fn input_count(&self, ifindex: u32) -> usize {
        self.keys_per_if.get(&ifindex).copied().unwrap_or(0)
    }

    /// The next version of this table as a builder (generation
    /// `generation`), sharing every part with this one until changed; the
    /// built table records the index moves in its [`delta`](Self::delta).
    /// Capture sockets are kept.
    pub fn edit(&self, generation: u64) -> TableBuilder {
        let mut table = self.clone();
        table.delta = Some(TableDelta {
            base: self.generation,
            steps: Vec::new(),
        });
        table.generation = generation;
        TableBuilder { table }
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
        let key = InputKey {
            ifindex,
            group: dst,
            port,
        };
        let m = self.index.get(shard_of(&key))?.get(&key)?;
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
        self.routes > 0
    }

    /// The table with `routes` added (each a [`RuleSpec`] whose input and
    /// output ports are [`ROUTE_PORT`] and whose outputs carry the oif's
    /// link details). A route whose input is taken is left out and named
    /// in the result.
    pub fn with_routes(self, routes: Vec<RuleSpec>) -> (Self, Vec<DuplicateInput>) {
        let mut b = TableBuilder { table: self };
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
        &self.dormant[..]
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
        for key in self.index.iter().flat_map(|s| s.keys()) {
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

/// Builds a [`ForwardingTable`], from nothing ([`TableBuilder::new`]) or
/// from the running one ([`ForwardingTable::edit`]).
#[derive(Debug, Default)]
pub struct TableBuilder {
    table: ForwardingTable,
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
        }
    }

    pub fn local_macs(mut self, macs: Vec<MacAddr>) -> Self {
        self.table.local_macs = macs;
        self
    }

    /// Rules that exist but are not in the table (see
    /// [`ForwardingTable::is_dormant`]).
    pub fn dormant(mut self, ids: Vec<String>) -> Self {
        self.table.dormant = Arc::new(ids);
        self
    }

    /// Interfaces whose frames carry no Ethernet header.
    pub fn ip_links(mut self, ifindexes: Vec<u32>) -> Self {
        self.table.ip_links = ifindexes;
        self
    }

    pub fn add_rule(&mut self, spec: RuleSpec) -> Result<(), DuplicateInput> {
        let t = &mut self.table;
        let index = t.rules.len() as u32;
        if t.index.is_empty() {
            t.index = (0..INDEX_SHARDS).map(|_| Arc::default()).collect();
        }
        if let Some(existing) = t.rule_for(&spec.input, spec.source) {
            return Err(DuplicateInput {
                id: spec.id,
                existing: t.rules[existing].id.clone(),
            });
        }
        let shard = Arc::make_mut(&mut t.index[shard_of(&spec.input)]);
        let entry = match shard.entry(spec.input) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                *t.keys_per_if.entry(spec.input.ifindex).or_default() += 1;
                e.insert(InputMatch::default())
            }
        };
        match spec.source {
            None => entry.any_source = Some(index),
            Some(s) => entry.by_source.push((s, index)),
        }
        let mut outputs = Vec::with_capacity(spec.outputs.len());
        for out in spec.outputs {
            let slot = match t.slot_of.get(&out) {
                Some(&slot) => slot,
                None => {
                    let next = t.output_slots.len() as u32;
                    Arc::make_mut(&mut t.slot_of).insert(out.clone(), next);
                    Arc::make_mut(&mut t.output_slots).push(out);
                    Arc::make_mut(&mut t.slot_users).push(0);
                    t.unused_slots += 1;
                    next
                }
            };
            let users = &mut Arc::make_mut(&mut t.slot_users)[slot as usize];
            if *users == 0 {
                t.unused_slots -= 1;
            }
            *users += 1;
            outputs.push(TableOutput { slot });
        }
        if spec.input.port == ROUTE_PORT {
            t.routes += 1;
        }
        t.rules.push(TableRule {
            id: spec.id,
            input: spec.input,
            source: spec.source,
            outputs,
        });
        if let Some(d) = &mut t.delta {
            d.steps.push(DeltaStep::Added(index));
        }
        Ok(())
    }

    /// Removes the rule at `index`; the last rule takes its place. Its
    /// output slots stay (see [`ForwardingTable::unused_slots`]).
    pub fn remove_rule(&mut self, index: usize) -> Option<TableRule> {
        let t = &mut self.table;
        let rule = t.rules.get(index)?.clone();
        if rule.input.port == ROUTE_PORT {
            t.routes -= 1;
        }
        let shard = Arc::make_mut(&mut t.index[shard_of(&rule.input)]);
        if let Some(m) = shard.get_mut(&rule.input) {
            match rule.source {
                None => m.any_source = None,
                Some(s) => m.by_source.retain(|(src, _)| *src != s),
            }
            if m.any_source.is_none() && m.by_source.is_empty() {
                shard.remove(&rule.input);
                if let Some(n) = t.keys_per_if.get_mut(&rule.input.ifindex) {
                    *n -= 1;
                    if *n == 0 {
                        t.keys_per_if.remove(&rule.input.ifindex);
                    }
                }
            }
        }
        for o in &rule.outputs {
            let users = &mut Arc::make_mut(&mut t.slot_users)[o.slot as usize];
            *users -= 1;
            if *users == 0 {
                t.unused_slots += 1;
            }
        }
        let last = t.rules.pop().expect("the rule at index exists");
        if index < t.rules.len() {
            // The last rule moves into the hole: point its key there.
            let shard = Arc::make_mut(&mut t.index[shard_of(&last.input)]);
            if let Some(m) = shard.get_mut(&last.input) {
                let at = match last.source {
                    None => m.any_source.as_mut(),
                    Some(s) => m
                        .by_source
                        .iter_mut()
                        .find(|(src, _)| *src == s)
                        .map(|(_, r)| r),
                };
                if let Some(at) = at {
                    *at = index as u32;
                }
            }
            t.rules.set(index, last);
        }
        if let Some(d) = &mut t.delta {
            d.steps.push(DeltaStep::Removed(index as u32));
        }
        Some(rule)
    }

    /// Takes `id` off the dormant list (a dormant rule removed).
    pub fn forget_dormant(&mut self, id: &str) {
        Arc::make_mut(&mut self.table.dormant).retain(|d| d != id);
    }

    /// The table being built, as it stands.
    pub fn table(&self) -> &ForwardingTable {
        &self.table
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

    fn spec(i: u32, out_port: u16) -> RuleSpec {
        RuleSpec {
            id: format!("r{i}"),
            input: key((0xef0a_0000 + i).to_be_bytes(), 5000),
            source: None,
            outputs: vec![out(out_port)],
        }
    }

    /// `has_routes` follows the route rules through adds, edits and
    /// removals (engines read it on every table they take).
    #[test]
    fn has_routes_follows_route_rules() {
        let mut b = TableBuilder::new(1);
        b.add_rule(spec(1, 6000)).unwrap();
        let mut route = spec(2, ROUTE_PORT);
        route.input.port = ROUTE_PORT;
        b.add_rule(route).unwrap();
        let t = b.build();
        assert!(t.has_routes());
        assert!(t.is_route(1) && !t.is_route(0));
        let mut e = t.edit(2);
        e.remove_rule(1).unwrap();
        let t2 = e.build();
        assert!(!t2.has_routes(), "the only route was removed");
        assert!(t.has_routes(), "the old table is unchanged");
        let mut e = t2.edit(3);
        e.remove_rule(0).unwrap();
        assert!(!e.build().has_routes());
    }

    /// Chunks and shards of `b` that are not the same allocation as `a`'s.
    fn unshared(a: &ForwardingTable, b: &ForwardingTable) -> (usize, usize) {
        let chunks = b
            .rules
            .chunks
            .iter()
            .enumerate()
            .filter(|(i, c)| !a.rules.chunks.get(*i).is_some_and(|o| Arc::ptr_eq(o, c)))
            .count();
        let shards = b
            .index
            .iter()
            .zip(&a.index)
            .filter(|(x, y)| !Arc::ptr_eq(x, y))
            .count();
        (chunks, shards)
    }

    /// An edit copies the chunk and the shard it touches and shares the
    /// rest: what keeps `mcrctl add` at 100,000 rules from costing a table
    /// of 100,000 rules (a whole-table copy returning would fail here).
    #[test]
    fn an_edit_copies_only_what_it_touches() {
        let n = 10_000;
        let mut b = TableBuilder::new(1);
        for i in 0..n {
            b.add_rule(spec(i, 1)).unwrap();
        }
        let t1 = b.build();
        let mut e = t1.edit(2);
        e.add_rule(spec(n, 2)).unwrap();
        let t2 = e.build();
        assert_eq!(unshared(&t1, &t2), (1, 1));
        assert_eq!(
            t2.delta(),
            Some(&TableDelta {
                base: 1,
                steps: vec![DeltaStep::Added(n)]
            })
        );
        let g = |i: u32| Ipv4Addr::from(0xef0a_0000 + i);
        let src = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(t2.lookup(2, g(n), 5000, src), Some(n as usize));
        assert_eq!(t1.lookup(2, g(n), 5000, src), None);
        // Removing rule 7: the last rule moves into its place, two chunks
        // (the hole's and the last's) and two shards are copied.
        let mut e = t2.edit(3);
        let gone = e.remove_rule(7).unwrap();
        assert_eq!(gone.id, "r7");
        let t3 = e.build();
        let (chunks, shards) = unshared(&t2, &t3);
        assert!(
            chunks <= 2 && shards <= 2,
            "{chunks} chunks, {shards} shards copied"
        );
        assert_eq!(t3.rules().len(), n as usize);
        assert_eq!(t3.rules()[7].id, format!("r{n}"));
        assert_eq!(t3.lookup(2, g(n), 5000, src), Some(7));
        assert_eq!(t3.lookup(2, g(7), 5000, src), None);
        assert_eq!(t3.lookup(2, g(8), 5000, src), Some(8));
        assert_eq!(t3.delta().unwrap().steps, vec![DeltaStep::Removed(7)]);
        // Removing r{n} (now at 7) leaves the output only it used unused,
        // for the next rule sending there.
        assert_eq!(t3.unused_slots(), 0);
        let mut e = t3.edit(4);
        assert_eq!(e.remove_rule(7).unwrap().id, format!("r{n}"));
        assert_eq!(e.table().unused_slots(), 1);
        e.add_rule(spec(n + 1, 2)).unwrap();
        e.add_rule(spec(7, 1)).unwrap();
        let t4 = e.build();
        assert_eq!((t4.unused_slots(), t4.output_slots().len()), (0, 2));
        // The edited table answers like one built from scratch.
        let mut fresh = TableBuilder::new(9);
        for r in t4.rules() {
            fresh
                .add_rule(RuleSpec {
                    id: r.id.clone(),
                    input: r.input,
                    source: r.source,
                    outputs: r
                        .outputs
                        .iter()
                        .map(|o| t4.output_slots()[o.slot as usize].clone())
                        .collect(),
                })
                .unwrap();
        }
        let fresh = fresh.build();
        assert_eq!(t4.lookup(2, g(n), 5000, src), None);
        for i in 0..n + 2 {
            let by = |t: &ForwardingTable| {
                t.lookup(2, g(i), 5000, src)
                    .map(|r| (t.rules()[r].id.clone(), t.rules()[r].outputs.len()))
            };
            assert_eq!(by(&t4), by(&fresh), "rule r{i}");
        }
        assert_eq!(t4.inputs_by_interface(), fresh.inputs_by_interface());
        assert_eq!(t4.input_count(2), n as usize + 1);
        assert_eq!(t4.rules().len(), n as usize + 1);
    }

    #[test]
    fn removing_the_last_key_of_an_interface_forgets_it() {
        let mut b = TableBuilder::new(1);
        b.add_rule(spec(0, 1)).unwrap();
        let t = b.build();
        assert_eq!(t.input_interfaces(), vec![2]);
        let mut e = t.edit(2);
        e.remove_rule(0).unwrap();
        assert!(e.remove_rule(0).is_none());
        let t = e.build();
        assert!(t.input_interfaces().is_empty());
        assert!(t.rules().is_empty());
        assert_eq!(t.inputs_by_interface(), vec![]);
    }
}
