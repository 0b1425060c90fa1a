//! The kernel fast path: rules whose outputs are all multicast on
//! interfaces with a known MAC and address are forwarded inside the kernel,
//! by a tc (tcx) ingress program on the input interface, generated from the
//! table. A datagram then never reaches user space: the program rewrites the
//! headers for each output and sends a clone (the same work the kernel's own
//! multicast routing does, without its limits: any group/port translation,
//! no RPF check, any number of interfaces).
//!
//! What stays with the engines: rules with a unicast output or an output
//! whose link details are unknown, rules on the same (group, port) as such a
//! rule, datagrams with IP options or fragmented, and everything when the
//! program cannot be loaded (no CAP_BPF/CAP_NET_ADMIN, or a kernel without
//! tcx). The engines' capture sockets take `ETH_P_IP`, which the kernel
//! delivers after tc ingress: a frame the program forwards never reaches
//! them, one it passes on does. So moving a key between the kernel and the
//! engines is the program swap itself, with no filter change.
//!
//! Counters: one per-CPU array for the life of the daemon; each rule and
//! each output keeps its slot across table swaps, so its counts carry on
//! through reloads like the engines' do.

pub mod asm;
pub mod program;
mod sys;

use crate::stats::{OutputStats, RuleStats};
use crate::table::ForwardingTable;
use program::{FastKey, FastOutput, FastRule, InterfaceProgram};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// Counter words per slot: packets, payload bytes, errors.
pub const VALUE_WORDS: usize = 3;
/// Counter slots (rules + outputs).
/// 384 KiB per possible CPU; rules past it stay with the engines.
pub const MAX_SLOTS: u32 = 1 << 14;
/// Largest program per interface; keys past it stay with the engines.
/// (Jumps are 16-bit, and a smaller program verifies quickly.)
pub const MAX_INSNS: usize = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SlotKey {
    Rule(String),
    Output(String, String),
}

struct Attached {
    link: OwnedFd,
    _prog: OwnedFd,
    program: InterfaceProgram,
}

/// A rule's counter slots, for reading them back.
#[derive(Debug, Clone)]
struct Counted {
    id: String,
    slot: u32,
    outputs: Vec<(String, u32)>,
}

/// One interface's program and the table rules it forwards.
struct InterfacePlan {
    program: InterfaceProgram,
    rules: Vec<usize>,
}

pub struct FastPath {
    map: OwnedFd,
    cpus: usize,
    slots: HashMap<SlotKey, u32>,
    free: Vec<u32>,
    next: u32,
    attached: BTreeMap<u32, Attached>,
    counted: Vec<Counted>,
    /// Rules the attached programs forward.
    rules: usize,
    /// Why each rule of the last table is not on the fast path (rules
    /// missing here are on it).
    off: HashMap<String, String>,
    /// Counts of slots given up while their rule was dormant (an interface
    /// gone), added back when it returns: counters live as long as the
    /// rule.
    base: HashMap<SlotKey, [u64; VALUE_WORDS]>,
}

impl FastPath {
    /// Creates the counter map and checks that programs can be loaded
    /// (CAP_BPF and CAP_NET_ADMIN).
    pub fn open() -> io::Result<FastPath> {
        let map = sys::percpu_array((VALUE_WORDS * 8) as u32, MAX_SLOTS)?;
        let mut a = asm::Asm::default();
        a.mov_imm(asm::R0, -1);
        a.exit();
        let probe = a.finish().map_err(io::Error::other)?;
        sys::load_sched_cls("mcr_probe", &probe)?;
        Ok(FastPath {
            map,
            cpus: sys::possible_cpus().ok_or_else(|| {
                io::Error::other(
                    "cannot read /sys/devices/system/cpu/possible (per-CPU counters need it)",
                )
            })?,
            slots: HashMap::new(),
            free: Vec::new(),
            next: 0,
            attached: BTreeMap::new(),
            counted: Vec::new(),
            rules: 0,
            off: HashMap::new(),
            base: HashMap::new(),
        })
    }

    fn slot(&mut self, key: SlotKey) -> Option<u32> {
        if let Some(s) = self.slots.get(&key) {
            return Some(*s);
        }
        let s = match self.free.pop() {
            Some(s) => s,
            None if self.next < MAX_SLOTS => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.slots.insert(key, s);
        Some(s)
    }

    /// Programs the kernel for `table` (nothing when `enabled` is false):
    /// loads and attaches, or atomically replaces, one program per input
    /// interface with eligible rules, and detaches the rest. Returns the
    /// interfaces whose program failed (their rules stay with the engines),
    /// with the reason.
    pub fn apply(&mut self, table: &ForwardingTable, enabled: bool) -> Vec<(u32, String)> {
        self.off = table
            .rules()
            .iter()
            .map(|r| {
                let why = if enabled {
                    off_reason(table, r).unwrap_or_else(|| "not planned".into())
                } else {
                    "the kernel fast path is off (data_plane.kernel_fast_path: false)".into()
                };
                (r.id.clone(), why)
            })
            .collect();
        let plans = if enabled {
            self.plan(table)
        } else {
            Vec::new()
        };
        self.install(plans, table)
    }

    /// Why rule `id` of the last table is not on the fast path; None when
    /// it is.
    pub fn off_reason(&self, id: &str) -> Option<&str> {
        self.off.get(id).map(String::as_str)
    }

    /// Per input interface, the (group, port) keys whose rules are all
    /// eligible, within the program size budget. Allocates counter slots.
    fn plan(&mut self, table: &ForwardingTable) -> Vec<InterfacePlan> {
        // Input keys by interface, each with its rules (indexes).
        let mut by_if: BTreeMap<u32, BTreeMap<(Ipv4Addr, u16), Vec<usize>>> = BTreeMap::new();
        for (i, r) in table.rules().iter().enumerate() {
            // Routes (whole IP packets, any protocol) are the engines'.
            if table.is_route(i) {
                continue;
            }
            by_if
                .entry(r.input.ifindex)
                .or_default()
                .entry((r.input.group, r.input.port))
                .or_default()
                .push(i);
        }
        let local_macs: Vec<[u8; 6]> = table.local_macs().iter().map(|m| m.0).collect();
        let mut plans = Vec::new();
        for (ifindex, keys) in &by_if {
            let mut program = InterfaceProgram {
                ifindex: *ifindex,
                local_macs: local_macs.clone(),
                keys: Vec::new(),
            };
            // The preamble and checks, and the UDP checksum subprogram.
            let mut size = 1000 + 4 * local_macs.len();
            let mut rules_here = Vec::new();
            for ((group, port), rules) in keys {
                if !rules.iter().all(|&i| eligible(table, i)) {
                    for &i in rules {
                        let r = &table.rules()[i];
                        if eligible(table, i) {
                            self.off.insert(
                                r.id.clone(),
                                "another rule on its input group and port cannot be on the fast path".into(),
                            );
                        }
                    }
                    continue;
                }
                let cost: usize = rules
                    .iter()
                    .map(|&i| 130 + table.rules()[i].outputs.len() * program::INSNS_PER_OUTPUT)
                    .sum::<usize>()
                    + 20;
                if size + cost > MAX_INSNS {
                    for &i in rules {
                        let r = &table.rules()[i];
                        self.off.insert(
                            r.id.clone(),
                            format!(
                                "past the fast-path program's size budget on its input interface ({} outputs; about {} output sends fit one interface)",
                                r.outputs.len(),
                                MAX_INSNS / program::INSNS_PER_OUTPUT
                            ),
                        );
                    }
                    continue;
                }
                let mut key = FastKey {
                    group: *group,
                    port: *port,
                    any_source: None,
                    by_source: Vec::new(),
                };
                let mut ok = true;
                for &i in rules {
                    match self.fast_rule(table, i) {
                        Some(fr) => match table.rules()[i].source {
                            None => key.any_source = Some(fr),
                            Some(s) => key.by_source.push((s, fr)),
                        },
                        None => ok = false,
                    }
                }
                if !ok {
                    for &i in rules {
                        self.off.insert(
                            table.rules()[i].id.clone(),
                            format!("no fast-path counter slot left ({MAX_SLOTS} in all)"),
                        );
                    }
                    continue;
                }
                size += cost;
                program.keys.push(key);
                rules_here.extend(rules.iter().copied());
            }
            if !program.keys.is_empty() {
                plans.push(InterfacePlan {
                    program,
                    rules: rules_here,
                });
            }
        }
        plans
    }

    fn install(
        &mut self,
        plans: Vec<InterfacePlan>,
        table: &ForwardingTable,
    ) -> Vec<(u32, String)> {
        let mut failed = Vec::new();
        let mut keep = HashSet::new();
        self.rules = 0;
        for p in plans {
            let ifindex = p.program.ifindex;
            match self.attach(p.program) {
                Ok(()) => {
                    keep.insert(ifindex);
                    self.rules += p.rules.len();
                    for &i in &p.rules {
                        self.off.remove(&table.rules()[i].id);
                    }
                }
                Err(e) => {
                    for &i in &p.rules {
                        self.off.insert(
                            table.rules()[i].id.clone(),
                            format!("the program of its input interface failed: {e}"),
                        );
                    }
                    failed.push((ifindex, e));
                }
            }
        }
        // Closing a link detaches its program.
        self.attached.retain(|i, _| keep.contains(i));
        self.retire_slots(table);
        failed
    }

    fn fast_rule(&mut self, table: &ForwardingTable, i: usize) -> Option<FastRule> {
        let r = &table.rules()[i];
        let slot = self.slot(SlotKey::Rule(r.id.clone()))?;
        let mut outputs = Vec::with_capacity(r.outputs.len());
        for o in &r.outputs {
            let s = &table.output_slots()[o.slot as usize];
            let link = s.link?;
            let oslot = self.slot(SlotKey::Output(r.id.clone(), s.label()))?;
            outputs.push(FastOutput {
                ifindex: s.ifindex,
                src_mac: link.mac.0,
                src: link.addr,
                dest: s.dest,
                ttl: s.ttl,
                ttl_decrement: s.ttl_decrement,
                slot: oslot,
            });
        }
        Some(FastRule { slot, outputs })
    }

    fn attach(&mut self, prog: InterfaceProgram) -> Result<(), String> {
        if let Some(a) = self.attached.get(&prog.ifindex) {
            // A link whose interface went away (deleted and re-created
            // under the same index between two scans, or moved to another
            // namespace) is defunct: attach afresh instead of keeping it.
            if sys::link_ifindex(&a.link).ok() != Some(prog.ifindex) {
                tracing::debug!(
                    ifindex = prog.ifindex,
                    "fast-path link defunct; attaching again"
                );
                self.attached.remove(&prog.ifindex);
            } else if a.program == prog {
                return Ok(());
            }
        }
        let insns = program::generate(&prog, self.map.as_raw_fd())?;
        let fd = sys::load_sched_cls("mcr_fast", &insns)
            .map_err(|e| format!("loading the fast-path program: {e}"))?;
        match self.attached.get_mut(&prog.ifindex) {
            Some(a) => {
                sys::link_update(&a.link, &fd)
                    .map_err(|e| format!("replacing the fast-path program: {e}"))?;
                a._prog = fd;
                a.program = prog;
            }
            None => {
                let link = sys::tcx_attach(&fd, prog.ifindex)
                    .map_err(|e| format!("attaching at tcx ingress: {e}"))?;
                self.attached.insert(
                    prog.ifindex,
                    Attached {
                        link,
                        _prog: fd,
                        program: prog,
                    },
                );
            }
        }
        Ok(())
    }

    /// Frees (and zeroes) the slots of rules and outputs no longer in the
    /// table, and records which slots to report.
    fn retire_slots(&mut self, table: &ForwardingTable) {
        let mut live = HashSet::new();
        self.counted.clear();
        for r in table.rules() {
            live.insert(SlotKey::Rule(r.id.clone()));
            let mut outputs = Vec::new();
            for o in &r.outputs {
                let label = table.output_slots()[o.slot as usize].label();
                let key = SlotKey::Output(r.id.clone(), label.clone());
                if let Some(s) = self.slots.get(&key) {
                    outputs.push((label, *s));
                }
                live.insert(key);
            }
            if let Some(s) = self.slots.get(&SlotKey::Rule(r.id.clone())) {
                self.counted.push(Counted {
                    id: r.id.clone(),
                    slot: *s,
                    outputs,
                });
            }
        }
        let zero = vec![0u64; VALUE_WORDS * self.cpus];
        let gone: Vec<SlotKey> = self
            .slots
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        let rule_of = |k: &SlotKey| match k {
            SlotKey::Rule(id) | SlotKey::Output(id, _) => id.clone(),
        };
        let all = if gone.is_empty() {
            Vec::new()
        } else {
            self.read_all()
        };
        for k in gone {
            if let Some(s) = self.slots.remove(&k) {
                // A rule still configured keeps what its slot counted.
                if table.is_dormant(&rule_of(&k)) || live.contains(&SlotKey::Rule(rule_of(&k))) {
                    let v = all.get(s as usize).copied().unwrap_or_default();
                    let b = self.base.entry(k.clone()).or_default();
                    for (b, v) in b.iter_mut().zip(v) {
                        *b += v;
                    }
                }
                if sys::update(&self.map, s, &zero).is_ok() {
                    self.free.push(s);
                }
            }
        }
        // Rules removed for good take their counts with them.
        self.base.retain(|k, _| {
            table.is_dormant(&rule_of(k)) || live.contains(&SlotKey::Rule(rule_of(k)))
        });
    }

    /// Every slot in use, summed over CPUs, in one `bpf(2)` call (stats and
    /// the rate sampler read all of them every second).
    fn read_all(&self) -> Vec<[u64; VALUE_WORDS]> {
        let n = self.next as usize;
        let mut keys = vec![0u32; n];
        let mut buf = vec![0u64; n * VALUE_WORDS * self.cpus];
        let read = sys::lookup_batch(&self.map, &mut keys, &mut buf).unwrap_or(0);
        let mut sums = vec![[0u64; VALUE_WORDS]; n];
        for (key, elem) in keys[..read].iter().zip(buf.chunks(VALUE_WORDS * self.cpus)) {
            let Some(sum) = sums.get_mut(*key as usize) else {
                continue;
            };
            for cpu in elem.chunks(VALUE_WORDS) {
                for (s, v) in sum.iter_mut().zip(cpu) {
                    *s += v;
                }
            }
        }
        sums
    }

    /// Counters of every rule that has been on the fast path, in the same
    /// shape the engines publish (summed with theirs by rule id and output).
    pub fn rule_stats(&self) -> Vec<RuleStats> {
        let all = self.read_all();
        let read = |slot: u32| all.get(slot as usize).copied().unwrap_or_default();
        let mut stats: Vec<RuleStats> = self
            .counted
            .iter()
            .map(|c| {
                let r = read(c.slot);
                RuleStats {
                    id: c.id.clone(),
                    packets: r[0],
                    bytes: r[1],
                    outputs: c
                        .outputs
                        .iter()
                        .map(|(label, s)| {
                            let o = read(*s);
                            OutputStats {
                                output: label.clone(),
                                packets: o[0],
                                bytes: o[1],
                                full: 0,
                                errors: o[2],
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        // What slots given up earlier counted (summed with the above by
        // rule id and output label).
        for (k, v) in &self.base {
            match k {
                SlotKey::Rule(id) => stats.push(RuleStats {
                    id: id.clone(),
                    packets: v[0],
                    bytes: v[1],
                    outputs: Vec::new(),
                }),
                SlotKey::Output(id, label) => stats.push(RuleStats {
                    id: id.clone(),
                    packets: 0,
                    bytes: 0,
                    outputs: vec![OutputStats {
                        output: label.clone(),
                        packets: v[0],
                        bytes: v[1],
                        full: 0,
                        errors: v[2],
                    }],
                }),
            }
        }
        stats
    }

    /// Rules the kernel forwards (the engines see only what it passes on).
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Interfaces with a program attached.
    pub fn interfaces(&self) -> Vec<u32> {
        self.attached.keys().copied().collect()
    }
}

/// Why a rule cannot run in the kernel, if it cannot (see [`eligible`]).
fn off_reason(table: &ForwardingTable, r: &crate::table::TableRule) -> Option<String> {
    if table.link_kind(r.input.ifindex) != crate::input::LinkKind::Ethernet {
        return Some(
            "its input interface has no Ethernet header (the engines read it at the network header)"
                .into(),
        );
    }
    if r.outputs.is_empty() {
        return Some("no output interface exists".into());
    }
    for o in &r.outputs {
        let s = &table.output_slots()[o.slot as usize];
        if !s.dest.ip().is_multicast() {
            return Some(format!("output {} is unicast", s.label()));
        }
        if s.ifindex == r.input.ifindex {
            return Some(format!("output {} is on the input interface", s.label()));
        }
        if s.link.is_none() {
            return Some(format!(
                "output {} has no Ethernet address, no IPv4 address or a smaller MTU than the input",
                s.label()
            ));
        }
    }
    None
}

/// Whether a rule can run in the kernel: an input with an Ethernet header,
/// every output multicast, on an interface whose MAC and address are known,
/// and not the input interface.
fn eligible(table: &ForwardingTable, i: usize) -> bool {
    let r = &table.rules()[i];
    // An input without an Ethernet header is read by the engines only.
    table.link_kind(r.input.ifindex) == crate::input::LinkKind::Ethernet
        && !r.outputs.is_empty()
        && r.outputs.iter().all(|o| {
            let s = &table.output_slots()[o.slot as usize];
            s.link.is_some() && s.dest.ip().is_multicast() && s.ifindex != r.input.ifindex
        })
}
