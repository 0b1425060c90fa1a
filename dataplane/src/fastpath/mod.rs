//! The kernel fast path: rules whose outputs are all multicast on
//! interfaces with a known MAC and address are forwarded inside the kernel,
//! by tc (tcx) ingress programs on the input interface, generated from the
//! table: a dispatcher that does not depend on the rules, and one small
//! program per (group, port) key, tail-called through a program array (see
//! [`program`]). An edit loads the program of the key it changes and
//! updates a map entry or two; the dispatcher stays.
//!
//! A datagram then never reaches user space: the key's program rewrites the
//! headers for each output and sends a clone (the same work the kernel's own
//! multicast routing does, without its limits: any group/port translation,
//! no RPF check, any number of interfaces).
//!
//! What stays with the engines: rules with a unicast output or an output
//! whose link details are unknown, rules on the same (group, port) as such a
//! rule, datagrams with IP options or fragmented, and everything when the
//! program cannot be loaded (no CAP_BPF/CAP_NET_ADMIN, or a kernel without
//! tcx). The engines' capture sockets take `ETH_P_IP`, which the kernel
//! delivers after tc ingress: a frame the programs forward never reaches
//! them, one they pass on does. So moving a key between the kernel and the
//! engines is the map update itself, with no filter change.
//!
//! Planning ([`plan`]) is kept per input interface, so that one rule added
//! or removed ([`FastPath::apply_edit`]) re-plans its interface only, and
//! only the keys whose programs changed are loaded.
//!
//! Counters: one per-CPU array for the life of the daemon; each rule and
//! each output keeps its slot across table swaps, so its counts carry on
//! through reloads like the engines' do.

pub mod asm;
pub mod plan;
pub mod program;
mod sys;

use crate::stats::{OutputStats, RuleStats};
use crate::table::ForwardingTable;
use plan::Planner;
pub use plan::{PlanWork, RuleEdit};
use program::{FastKey, InterfaceProgram};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Counter words per slot: packets, payload bytes, errors.
pub const VALUE_WORDS: usize = 3;
/// Counter slots (rules + outputs).
/// 384 KiB per possible CPU; rules past it stay with the engines.
pub const MAX_SLOTS: u32 = 1 << 14;
/// Largest program of one (group, port) key (about 250 output sends);
/// a key past it stays with the engines. (Jumps are 16-bit, and the
/// verifier's time grows with the program: an edit of the key loads it.)
pub const MAX_INSNS: usize = 30_000;
/// (group, port) keys per input interface, each its own program behind
/// the interface's dispatcher; keys past it (in key order) stay with the
/// engines. Bounds the kernel memory (a few KiB per key program) and the
/// time a full recompile loads programs for.
pub const MAX_KEYS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SlotKey {
    Rule(String),
    Output(String, String),
}

/// One input interface's programs: the dispatcher behind the tcx link, and
/// one program per key, tail-called through `progs` at the index `keys`
/// maps its (group, port) to.
struct Attached {
    link: OwnedFd,
    _dispatcher: OwnedFd,
    tab: KeyTable,
    program: InterfaceProgram,
}

/// The maps behind one dispatcher and the key programs in them.
struct KeyTable {
    /// (group, port) -> index in `progs`.
    keys: OwnedFd,
    /// The key programs. Kept open: the kernel empties a program array
    /// when its last file descriptor closes.
    progs: OwnedFd,
    /// Each key's index in `progs`.
    index: HashMap<plan::Key, u32>,
    /// Indexes free in `progs` (below `next`).
    free: Vec<u32>,
    next: u32,
}

/// A rule's counter slots, for reading them back.
#[derive(Debug, Clone)]
struct Counted {
    slot: u32,
    outputs: Vec<(String, u32)>,
}

pub struct FastPath {
    map: OwnedFd,
    cpus: usize,
    /// Per-interface plans, counter slots and reasons.
    plan: Planner,
    attached: BTreeMap<u32, Attached>,
    /// Slots to report, by rule id.
    counted: HashMap<String, Counted>,
    /// Rules the attached programs forward.
    rules: usize,
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
            plan: Planner::default(),
            attached: BTreeMap::new(),
            counted: HashMap::new(),
            rules: 0,
            base: HashMap::new(),
        })
    }

    /// Programs the kernel for `table` (nothing when `enabled` is false):
    /// attaches a dispatcher on each input interface with eligible rules
    /// and loads the programs of the keys that changed (each swapped in
    /// atomically), and detaches the rest. Returns the
    /// interfaces whose program failed (their rules stay with the engines),
    /// with the reason. O(rules): see [`FastPath::apply_edit`] for one rule.
    pub fn apply(&mut self, table: &ForwardingTable, enabled: bool) -> Vec<(u32, String)> {
        let programs = self.plan.plan_all(table, enabled);
        let mut failed = Vec::new();
        let mut keep = HashSet::new();
        for (ifindex, program) in programs {
            if let Some(program) = program {
                match self.attach(program) {
                    Ok(()) => {
                        keep.insert(ifindex);
                    }
                    Err(e) => {
                        self.plan.program_failed(ifindex, &e);
                        failed.push((ifindex, e));
                    }
                }
            }
        }
        // Closing a link detaches its program.
        self.attached.retain(|i, _| keep.contains(i));
        self.count_rules();
        self.plan.take_changed();
        self.retire_slots(table);
        failed
    }

    /// Applies one rule added to or removed from the table (`table` is the
    /// edited one): re-plans the rule's input interface only, loads the
    /// programs of its keys that changed (usually the edited rule's key
    /// alone; each swapped in atomically; nothing else is touched), and
    /// frees a removed rule's counter slots. Counter slots
    /// follow rule ids, so rules that moved index keep theirs. Returns the
    /// interface if its program failed, with the reason.
    pub fn apply_edit(
        &mut self,
        table: &ForwardingTable,
        edit: &RuleEdit<'_>,
        enabled: bool,
    ) -> Vec<(u32, String)> {
        let mut failed = Vec::new();
        if !edit.added {
            self.retire_rule(edit.id);
        }
        if let Some((ifindex, program)) = self.plan.plan_edit(table, edit, enabled) {
            match program {
                Some(program) => match self.attach(program) {
                    Ok(()) => self.plan.program_ok(ifindex),
                    Err(e) => {
                        self.plan.program_failed(ifindex, &e);
                        // As `apply` does: the engines take the interface.
                        self.attached.remove(&ifindex);
                        failed.push((ifindex, e));
                    }
                },
                None => {
                    self.attached.remove(&ifindex);
                }
            }
            // Slots allocated by the re-plan, to be reported.
            if let Some(ifp) = self.plan.ifs.get(&ifindex) {
                let mut ids = Vec::new();
                for (_, k) in &self.plan.built {
                    let Some(kp) = ifp.keys.get(k) else { continue };
                    let input = crate::table::InputKey {
                        ifindex,
                        group: k.0,
                        port: k.1,
                    };
                    for (source, id) in &kp.rules {
                        if !self.counted.contains_key(id) {
                            ids.push((input, *source));
                        }
                    }
                }
                for (input, source) in ids {
                    if let Some(i) = table.rule_for(&input, source) {
                        self.count_rule(table, i);
                    }
                }
            }
            self.count_rules();
        }
        failed
    }

    /// Rules whose reason to be off the fast path may have changed since
    /// the last call, by [`FastPath::apply_edit`] (an `apply` reports none:
    /// its caller looks at every rule).
    pub fn take_changed(&mut self) -> Vec<String> {
        self.plan.take_changed()
    }

    /// Work done by planning since the fast path opened.
    pub fn plan_work(&self) -> PlanWork {
        self.plan.work
    }

    /// Why rule `id` of the last table is not on the fast path; None when
    /// it is.
    pub fn off_reason(&self, id: &str) -> Option<&str> {
        self.plan.off.get(id).map(String::as_str)
    }

    fn count_rules(&mut self) {
        self.rules = self
            .attached
            .keys()
            .filter_map(|i| self.plan.ifs.get(i))
            .map(|ifp| ifp.planned_rules())
            .sum();
    }

    /// Records the slots of the rule at index `i` for reading back.
    fn count_rule(&mut self, table: &ForwardingTable, i: usize) {
        let r = &table.rules()[i];
        let id = r.id.as_str();
        let Some(&slot) = self.plan.slots.get(&SlotKey::Rule(id.to_string())) else {
            return;
        };
        let outputs = r
            .outputs
            .iter()
            .filter_map(|o| {
                let label = table.output_slots()[o.slot as usize].label();
                let s = *self
                    .plan
                    .slots
                    .get(&SlotKey::Output(id.to_string(), label.clone()))?;
                Some((label, s))
            })
            .collect();
        self.counted
            .insert(id.to_string(), Counted { slot, outputs });
    }

    /// Frees (and zeroes) the slots of rule `id`, removed for good.
    fn retire_rule(&mut self, id: &str) {
        let zero = vec![0u64; VALUE_WORDS * self.cpus];
        let mut keys = vec![SlotKey::Rule(id.to_string())];
        if let Some(c) = self.counted.remove(id) {
            keys.extend(
                c.outputs
                    .into_iter()
                    .map(|(label, _)| SlotKey::Output(id.to_string(), label)),
            );
        }
        for k in keys {
            if let Some(s) = self.plan.slots.remove(&k) {
                if sys::update(&self.map, s, &zero).is_ok() {
                    self.plan.free.push(s);
                }
            }
        }
        self.base.retain(|k, _| match k {
            SlotKey::Rule(r) | SlotKey::Output(r, _) => r != id,
        });
    }

    /// Makes interface `prog.ifindex` forward `prog`: attaches its
    /// dispatcher, or replaces it (atomically) when the interface's MACs
    /// changed, and loads a program for each key new or changed since the
    /// last call (one `bpf_map_update_elem` swaps it in), dropping keys gone.
    /// Every datagram runs either a key's old program or its new one. On an
    /// error the caller drops the interface's attachment (its rules go to
    /// the engines).
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
        let map_fd = self.map.as_raw_fd();
        if let Some(a) = self.attached.get_mut(&prog.ifindex) {
            if a.program.local_macs != prog.local_macs {
                let fd = load_dispatcher(&prog.local_macs, &a.tab.keys, &a.tab.progs)?;
                sys::link_update(&a.link, &fd)
                    .map_err(|e| format!("replacing the fast-path program: {e}"))?;
                a._dispatcher = fd;
            }
            // Both lists are in (group, port) order: one walk finds the
            // keys gone and those new or changed (an unchanged key shares
            // its `Arc` with the plan, so most compares are a pointer's).
            let old = std::mem::take(&mut a.program.keys);
            let mut gone = Vec::new();
            let mut set = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < prog.keys.len() {
                let ko = old.get(i).map(|k| (k.group, k.port));
                let kn = prog.keys.get(j).map(|k| (k.group, k.port));
                match (ko, kn) {
                    (Some(o), Some(n)) if o == n => {
                        if old[i] != prog.keys[j] {
                            set.push(&prog.keys[j]);
                        }
                        i += 1;
                        j += 1;
                    }
                    (Some(o), Some(n)) if o < n => {
                        gone.push(o);
                        i += 1;
                    }
                    (Some(o), None) => {
                        gone.push(o);
                        i += 1;
                    }
                    _ => {
                        set.push(&prog.keys[j]);
                        j += 1;
                    }
                }
            }
            let t = &mut a.tab;
            // Keys gone first: their indexes are free for the new ones (a
            // datagram still on its way to a reused index finds another key
            // there, which passes it on).
            for k in gone {
                if let Some(i) = t.index.remove(&k) {
                    sys::map_delete(&t.keys, &program::keys_map_key(k.0, k.1))
                        .map_err(|e| format!("removing a fast-path key: {e}"))?;
                    sys::map_delete(&t.progs, &i.to_ne_bytes())
                        .map_err(|e| format!("removing a fast-path key's program: {e}"))?;
                    t.free.push(i);
                }
            }
            for key in set {
                t.set_key(key, map_fd)?;
            }
            a.program = prog;
            return Ok(());
        }
        let keys = sys::hash_map(program::KEYS_MAP_KEY, 4, MAX_KEYS as u32)
            .map_err(|e| format!("creating the fast-path key map: {e}"))?;
        let progs = sys::prog_array(MAX_KEYS as u32)
            .map_err(|e| format!("creating the fast-path program array: {e}"))?;
        let dispatcher = load_dispatcher(&prog.local_macs, &keys, &progs)?;
        let mut tab = KeyTable {
            keys,
            progs,
            index: HashMap::new(),
            free: Vec::new(),
            next: 0,
        };
        // Every key before the dispatcher is attached: the interface starts
        // with all of them.
        for key in &prog.keys {
            tab.set_key(key, map_fd)?;
        }
        let link = sys::tcx_attach(&dispatcher, prog.ifindex)
            .map_err(|e| format!("attaching at tcx ingress: {e}"))?;
        self.attached.insert(
            prog.ifindex,
            Attached {
                link,
                _dispatcher: dispatcher,
                tab,
                program: prog,
            },
        );
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
                if let Some(s) = self.plan.slots.get(&key) {
                    outputs.push((label, *s));
                }
                live.insert(key);
            }
            if let Some(s) = self.plan.slots.get(&SlotKey::Rule(r.id.clone())) {
                self.counted
                    .insert(r.id.clone(), Counted { slot: *s, outputs });
            }
        }
        let zero = vec![0u64; VALUE_WORDS * self.cpus];
        let gone: Vec<SlotKey> = self
            .plan
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
            if let Some(s) = self.plan.slots.remove(&k) {
                // A rule still configured keeps what its slot counted.
                if table.is_dormant(&rule_of(&k)) || live.contains(&SlotKey::Rule(rule_of(&k))) {
                    let v = all.get(s as usize).copied().unwrap_or_default();
                    let b = self.base.entry(k.clone()).or_default();
                    for (b, v) in b.iter_mut().zip(v) {
                        *b += v;
                    }
                }
                if sys::update(&self.map, s, &zero).is_ok() {
                    self.plan.free.push(s);
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
        let n = self.plan.next as usize;
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
            .map(|(id, c)| {
                let r = read(c.slot);
                RuleStats {
                    id: id.clone(),
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

impl KeyTable {
    /// Loads `key`'s program and puts it at the key's index (a new key: a
    /// free index, then the key into the hash map, so no datagram finds the
    /// key before its program).
    fn set_key(&mut self, key: &FastKey, map_fd: i32) -> Result<(), String> {
        let insns = program::generate_key(key, map_fd)?;
        let fd = sys::load_sched_cls("mcr_fast_key", &insns)
            .map_err(|e| format!("loading the fast-path program: {e}"))?;
        let k = (key.group, key.port);
        let (i, new) = match self.index.get(&k) {
            Some(i) => (*i, false),
            None => match self.free.pop() {
                Some(i) => (i, true),
                None if (self.next as usize) < MAX_KEYS => {
                    self.next += 1;
                    (self.next - 1, true)
                }
                None => return Err("no fast-path program index left".into()),
            },
        };
        if let Err(e) = sys::prog_array_set(&self.progs, i, &fd) {
            if new {
                self.free.push(i);
            }
            return Err(format!("installing the fast-path program: {e}"));
        }
        if new {
            self.index.insert(k, i);
            sys::map_set(
                &self.keys,
                &program::keys_map_key(k.0, k.1),
                &i.to_ne_bytes(),
            )
            .map_err(|e| format!("adding a fast-path key: {e}"))?;
        }
        Ok(())
    }
}

/// Loads an interface's dispatcher (see [`program::generate_dispatcher`]).
fn load_dispatcher(
    local_macs: &[[u8; 6]],
    keys: &OwnedFd,
    progs: &OwnedFd,
) -> Result<OwnedFd, String> {
    let insns = program::generate_dispatcher(local_macs, keys.as_raw_fd(), progs.as_raw_fd())?;
    sys::load_sched_cls("mcr_fast", &insns)
        .map_err(|e| format!("loading the fast-path program: {e}"))
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
        && r.input.port != crate::table::ROUTE_PORT
        && !r.outputs.is_empty()
        && r.outputs.iter().all(|o| {
            let s = &table.output_slots()[o.slot as usize];
            s.link.is_some() && s.dest.ip().is_multicast() && s.ifindex != r.input.ifindex
        })
}
