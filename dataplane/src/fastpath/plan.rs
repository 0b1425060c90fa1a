//! What each input interface's programs forward, and why every other rule
//! stays with the engines: kept per interface and per (group, port) key, so
//! that one rule added or removed re-plans only its interface, and on it
//! only the keys up to the interface's key budget ([`MAX_KEYS`]), whatever
//! the number of rules.
//!
//! Keys are taken in (group, port) order up to [`MAX_KEYS`], skipping a
//! key whose program would exceed [`MAX_INSNS`]: the same outcome whether
//! planned from the whole table or after any edits.

use super::program::{self, FastKey, FastOutput, FastRule, InterfaceProgram};
use super::{eligible, off_reason, SlotKey, MAX_INSNS, MAX_KEYS, MAX_SLOTS};
use crate::table::{ForwardingTable, InputKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::Bound;
use std::sync::Arc;

/// A (group, port) input key of one interface.
pub(super) type Key = (Ipv4Addr, u16);

/// Rough instruction cost of a key with `rules` rules and `outputs`
/// outputs in all (its program has [`program::KEY_BASE_INSNS`] more).
pub(super) const fn key_insns(rules: usize, outputs: usize) -> usize {
    130 * rules + outputs * program::INSNS_PER_OUTPUT + 20
}

/// What became of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// In the program.
    Planned,
    /// One of its rules cannot run in the kernel.
    Ineligible,
    /// Past the interface's key budget.
    PastBudget,
    /// Its program would be larger than [`MAX_INSNS`].
    TooLarge,
    /// No counter slot left for its rules.
    NoSlots,
}

/// One key's rules and outcome.
pub(super) struct KeyPlan {
    /// Its rules: source (None: any source) and id, in the order added.
    pub(super) rules: Vec<(Option<Ipv4Addr>, String)>,
    eligible: bool,
    cost: usize,
    pub(super) outcome: Outcome,
    /// The key as the program forwards it, built when first planned (its
    /// counter slots allocated), dropped when its rules change.
    /// Shared with the programs built from it: an edit of another key
    /// copies a pointer, not the key.
    fast: Option<Arc<FastKey>>,
}

/// One input interface's keys and what its program holds.
#[derive(Default)]
pub(super) struct IfPlan {
    pub(super) keys: BTreeMap<Key, KeyPlan>,
    /// Keys in the program, in key order.
    pub(super) planned: Vec<Key>,
    /// Keys kept off for want of counter slots.
    no_slots: BTreeSet<Key>,
    /// Rules of the planned keys.
    planned_rules: usize,
    /// The program last planned (keys shared with `keys`).
    program: Option<InterfaceProgram>,
}

impl IfPlan {
    /// Rules the program forwards.
    pub(super) fn planned_rules(&self) -> usize {
        self.planned_rules
    }
}

/// Work done by planning, counted for tests (an edit must not plan what
/// it does not touch).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlanWork {
    /// Interfaces (re)planned.
    pub interfaces: usize,
    /// Keys whose outcome was decided.
    pub keys: usize,
    /// Rules whose reason to be off the fast path was set.
    pub reasons: usize,
}

/// The plans of every input interface, the counter slots and each rule's
/// reason to be off the fast path. Pure bookkeeping: loading and attaching
/// is the owner's ([`super::FastPath`]).
#[derive(Default)]
pub(super) struct Planner {
    pub(super) slots: HashMap<SlotKey, u32>,
    pub(super) free: Vec<u32>,
    pub(super) next: u32,
    pub(super) ifs: BTreeMap<u32, IfPlan>,
    /// Why each rule is not on the fast path (rules missing here are on
    /// it).
    pub(super) off: HashMap<String, String>,
    /// Rules whose reason may have changed since the last
    /// [`Planner::take_changed`] (only kept by edits).
    changed: Vec<String>,
    /// Keys whose program was built (their counter slots allocated) by the
    /// last plan, with their interface.
    pub(super) built: Vec<(u32, Key)>,
    /// Interfaces whose program failed (their planned rules carry that
    /// reason until it loads).
    failed: BTreeSet<u32>,
    pub(super) work: PlanWork,
}

/// The outcome of a key that cannot be planned whatever the budget left;
/// None when it can.
fn unplanned(kp: &KeyPlan) -> Option<Outcome> {
    if !kp.eligible {
        Some(Outcome::Ineligible)
    } else if program::KEY_BASE_INSNS + kp.cost > MAX_INSNS {
        Some(Outcome::TooLarge)
    } else {
        None
    }
}

/// Outputs of all the rules of key `k`.
fn kp_outputs(table: &ForwardingTable, ifindex: u32, k: Key, kp: &KeyPlan) -> usize {
    let input = InputKey {
        ifindex,
        group: k.0,
        port: k.1,
    };
    kp.rules
        .iter()
        .filter_map(|(source, _)| table.rule_for(&input, *source))
        .map(|i| table.rules()[i].outputs.len())
        .sum()
}

/// A rule added to or removed from the table by an edit.
#[derive(Debug, Clone, Copy)]
pub struct RuleEdit<'a> {
    pub id: &'a str,
    pub input: InputKey,
    pub source: Option<Ipv4Addr>,
    /// True: added (it is in the table); false: removed (it is not).
    pub added: bool,
}

/// Why the fast path is off, for every rule while it is.
pub(super) const OFF: &str = "the kernel fast path is off (data_plane.kernel_fast_path: false)";

impl Planner {
    pub(super) fn slot(&mut self, key: SlotKey) -> Option<u32> {
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

    /// The key's rules as the program forwards them (None: a counter slot
    /// is missing).
    fn fast_key(
        &mut self,
        table: &ForwardingTable,
        ifindex: u32,
        k: Key,
        rules: &[(Option<Ipv4Addr>, String)],
    ) -> Option<FastKey> {
        let input = InputKey {
            ifindex,
            group: k.0,
            port: k.1,
        };
        let mut key = FastKey {
            group: k.0,
            port: k.1,
            any_source: None,
            by_source: Vec::new(),
        };
        let mut ok = true;
        for (source, _) in rules {
            let i = table.rule_for(&input, *source)?;
            match self.fast_rule(table, i) {
                Some(fr) => match source {
                    None => key.any_source = Some(fr),
                    Some(s) => key.by_source.push((*s, fr)),
                },
                None => ok = false,
            }
        }
        ok.then_some(key)
    }

    /// Eligibility and cost of key `k` from its rules in `table`.
    fn assess(
        table: &ForwardingTable,
        ifindex: u32,
        k: Key,
        rules: &[(Option<Ipv4Addr>, String)],
    ) -> (bool, usize) {
        let input = InputKey {
            ifindex,
            group: k.0,
            port: k.1,
        };
        let mut ok = true;
        let mut outputs = 0;
        for (source, _) in rules {
            match table.rule_for(&input, *source) {
                Some(i) => {
                    ok &= eligible(table, i);
                    outputs += table.rules()[i].outputs.len();
                }
                None => ok = false,
            }
        }
        (ok, key_insns(rules.len(), outputs))
    }

    /// Plans every interface from `table` (O(rules)); returns each
    /// interface's program (None: nothing to forward there).
    pub(super) fn plan_all(
        &mut self,
        table: &ForwardingTable,
        enabled: bool,
    ) -> Vec<(u32, Option<InterfaceProgram>)> {
        self.off.clear();
        self.changed.clear();
        self.built.clear();
        self.failed.clear();
        self.ifs.clear();
        if !enabled {
            for r in table.rules() {
                self.off.insert(r.id.clone(), OFF.into());
            }
            return Vec::new();
        }
        for r in table.rules() {
            // Routes (whole IP packets, any protocol) are the engines'.
            if r.input.port == crate::table::ROUTE_PORT {
                self.off.insert(
                    r.id.clone(),
                    "a route: forwarded whole by the engines".into(),
                );
                continue;
            }
            self.ifs
                .entry(r.input.ifindex)
                .or_default()
                .keys
                .entry((r.input.group, r.input.port))
                .or_insert_with(|| KeyPlan {
                    rules: Vec::new(),
                    eligible: true,
                    cost: 0,
                    outcome: Outcome::PastBudget,
                    fast: None,
                })
                .rules
                .push((r.source, r.id.clone()));
        }
        let ifindexes: Vec<u32> = self.ifs.keys().copied().collect();
        let mut out = Vec::new();
        for ifindex in ifindexes {
            if let Some(ifp) = self.ifs.get_mut(&ifindex) {
                for (k, kp) in ifp.keys.iter_mut() {
                    (kp.eligible, kp.cost) = Self::assess(table, ifindex, *k, &kp.rules);
                }
            }
            out.push((ifindex, self.replan(table, ifindex, None)));
        }
        self.changed.clear();
        out
    }

    /// Applies one rule edit to the plan of its interface and re-plans
    /// that interface only. Returns its program when the fast path is on
    /// (None inside: nothing to forward there), None when it is off.
    pub(super) fn plan_edit(
        &mut self,
        table: &ForwardingTable,
        edit: &RuleEdit<'_>,
        enabled: bool,
    ) -> Option<(u32, Option<InterfaceProgram>)> {
        self.changed.push(edit.id.to_string());
        self.built.clear();
        if !edit.added {
            self.off.remove(edit.id);
        }
        if !enabled {
            if edit.added {
                self.off.insert(edit.id.to_string(), OFF.into());
            }
            return None;
        }
        let ifindex = edit.input.ifindex;
        let k = (edit.input.group, edit.input.port);
        let ifp = self.ifs.entry(ifindex).or_default();
        let kp = ifp.keys.entry(k).or_insert_with(|| KeyPlan {
            rules: Vec::new(),
            eligible: true,
            cost: 0,
            outcome: Outcome::PastBudget,
            fast: None,
        });
        if edit.added {
            kp.rules.push((edit.source, edit.id.to_string()));
        } else {
            kp.rules.retain(|(_, id)| id != edit.id);
        }
        kp.fast = None;
        if kp.rules.is_empty() {
            ifp.keys.remove(&k);
        } else {
            (kp.eligible, kp.cost) = Self::assess(table, ifindex, k, &kp.rules);
        }
        Some((ifindex, self.replan(table, ifindex, Some(k))))
    }

    /// Decides the outcome of the keys of interface `ifindex` in key order
    /// and sets the reasons of the rules whose key's outcome changed.
    /// `touched`: the key an edit changed (None: plan every key afresh).
    /// An edit stops at the first point no key can fit any more: every key
    /// past it is past the budget, and only those that were not already
    /// are looked at.
    fn replan(
        &mut self,
        table: &ForwardingTable,
        ifindex: u32,
        touched: Option<Key>,
    ) -> Option<InterfaceProgram> {
        self.work.interfaces += 1;
        let mut ifp = self.ifs.remove(&ifindex)?;
        let full = touched.is_none();
        let local_macs: Vec<[u8; 6]> = table.local_macs().iter().map(|m| m.0).collect();
        // An edit of a key past the last planned one, with the budget full
        // and no key waiting for counter slots (a removal may free some):
        // no other key's outcome can change, nor the program (the usual
        // edit at scale; O(1) instead of a walk over the planned keys).
        if let (Some(k), Some(last), Some(cached)) = (touched, ifp.planned.last(), &ifp.program) {
            if ifp.planned.len() >= MAX_KEYS
                && ifp.no_slots.is_empty()
                && k > *last
                && cached.local_macs == local_macs
            {
                let program = Some(cached.clone());
                self.work.keys += 1;
                if let Some(kp) = ifp.keys.get_mut(&k) {
                    kp.outcome = unplanned(kp).unwrap_or(Outcome::PastBudget);
                    let kp = &ifp.keys[&k];
                    self.set_reasons(table, ifindex, k, kp);
                }
                self.ifs.insert(ifindex, ifp);
                return program;
            }
        }
        let old_planned = std::mem::take(&mut ifp.planned);
        let old_no_slots = std::mem::take(&mut ifp.no_slots);
        let mut planned = Vec::new();
        let mut keys = Vec::new();
        let mut planned_rules = 0;
        let mut changed: Vec<Key> = Vec::new();
        let mut touched_seen = false;
        // The last key looked at: the loop stops at the budget, and keys
        // past it are the only ones it may have left out.
        let mut last: Option<Key> = None;
        for (k, kp) in ifp.keys.iter_mut() {
            if !full && planned.len() >= MAX_KEYS {
                break;
            }
            last = Some(*k);
            self.work.keys += 1;
            let outcome = match unplanned(kp) {
                Some(o) => o,
                None if planned.len() >= MAX_KEYS => Outcome::PastBudget,
                None => {
                    if kp.fast.is_none() {
                        kp.fast = self.fast_key(table, ifindex, *k, &kp.rules).map(Arc::new);
                        if kp.fast.is_some() {
                            self.built.push((ifindex, *k));
                        }
                    }
                    if let Some(fast) = &kp.fast {
                        planned.push(*k);
                        keys.push(fast.clone());
                        planned_rules += kp.rules.len();
                        Outcome::Planned
                    } else {
                        ifp.no_slots.insert(*k);
                        Outcome::NoSlots
                    }
                }
            };
            let is_touched = Some(*k) == touched;
            touched_seen |= is_touched;
            if full || is_touched || outcome != kp.outcome {
                kp.outcome = outcome;
                changed.push(*k);
            }
        }
        // Keys not reached: past the budget (if they could be planned).
        let after = |k: &Key| last.is_none_or(|l| *k > l);
        let from = old_planned.partition_point(|k| !after(k));
        let no_slots_after = match last {
            Some(l) => old_no_slots.range((Bound::Excluded(l), Bound::Unbounded)),
            None => old_no_slots.range(..),
        };
        let unreached = old_planned[from..]
            .iter()
            .chain(no_slots_after)
            .chain(touched.iter().filter(|_| !touched_seen));
        for k in unreached {
            let Some(kp) = ifp.keys.get_mut(k) else {
                continue;
            };
            let reached = match kp.outcome {
                Outcome::Planned => planned.binary_search(k).is_ok(),
                Outcome::NoSlots => ifp.no_slots.contains(k),
                _ => Some(*k) != touched || touched_seen,
            };
            if reached {
                continue;
            }
            kp.outcome = unplanned(kp).unwrap_or(Outcome::PastBudget);
            changed.push(*k);
        }
        for k in &changed {
            if let Some(kp) = ifp.keys.get(k) {
                self.set_reasons(table, ifindex, *k, kp);
            }
        }
        let program = (!planned.is_empty()).then_some(InterfaceProgram {
            ifindex,
            local_macs,
            keys,
        });
        ifp.planned = planned;
        ifp.planned_rules = planned_rules;
        ifp.program = program.clone();
        if !ifp.keys.is_empty() {
            self.ifs.insert(ifindex, ifp);
        }
        program
    }

    /// Sets the reasons of key `k`'s rules from its outcome.
    fn set_reasons(&mut self, table: &ForwardingTable, ifindex: u32, k: Key, kp: &KeyPlan) {
        let input = InputKey {
            ifindex,
            group: k.0,
            port: k.1,
        };
        for (source, id) in &kp.rules {
            self.work.reasons += 1;
            let Some(i) = table.rule_for(&input, *source) else {
                continue;
            };
            let r = &table.rules()[i];
            let why = match kp.outcome {
                Outcome::Planned => None,
                Outcome::Ineligible => Some(off_reason(table, r).unwrap_or_else(|| {
                    "another rule on its input group and port cannot be on the fast path".into()
                })),
                Outcome::PastBudget => Some(format!(
                    "past the fast path's budget of {MAX_KEYS} input (group, port) keys on its input interface"
                )),
                Outcome::TooLarge => Some(format!(
                    "its input (group, port) has too many outputs for one fast-path program ({} in all; about {} fit)",
                    kp_outputs(table, ifindex, k, kp),
                    MAX_INSNS / program::INSNS_PER_OUTPUT
                )),
                Outcome::NoSlots => Some(format!("no fast-path counter slot left ({MAX_SLOTS} in all)")),
            };
            match why {
                Some(why) => self.off.insert(id.clone(), why),
                None => self.off.remove(id),
            };
            self.changed.push(id.clone());
        }
    }

    /// The program of interface `ifindex` failed: its planned rules stay
    /// with the engines, for this reason.
    pub(super) fn program_failed(&mut self, ifindex: u32, e: &str) {
        let Some(ifp) = self.ifs.get(&ifindex) else {
            return;
        };
        self.failed.insert(ifindex);
        for k in &ifp.planned {
            if let Some(kp) = ifp.keys.get(k) {
                for (_, id) in &kp.rules {
                    self.off.insert(
                        id.clone(),
                        format!("the program of its input interface failed: {e}"),
                    );
                    self.changed.push(id.clone());
                }
            }
        }
    }

    /// The program of interface `ifindex` is attached: its planned rules
    /// are on the fast path (clears what an earlier failure set).
    pub(super) fn program_ok(&mut self, ifindex: u32) {
        // Only a failure set reasons to clear (an edit must not walk every
        // planned rule otherwise).
        if !self.failed.remove(&ifindex) {
            return;
        }
        let Some(ifp) = self.ifs.get(&ifindex) else {
            return;
        };
        for k in &ifp.planned {
            if let Some(kp) = ifp.keys.get(k) {
                for (_, id) in &kp.rules {
                    if self.off.remove(id).is_some() {
                        self.changed.push(id.clone());
                    }
                }
            }
        }
    }

    /// Rules whose reason may have changed since the last call (by edits).
    pub(super) fn take_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{LinkInfo, OutputSlot, RuleSpec, TableBuilder};
    use mcr_wire::MacAddr;
    use std::net::SocketAddrV4;

    fn out(ifindex: u32) -> OutputSlot {
        OutputSlot {
            ifindex,
            ifname: format!("if{ifindex}"),
            dest: SocketAddrV4::new(Ipv4Addr::new(239, 255, 0, 1), 6000),
            ttl: 8,
            ttl_decrement: false,
            link: Some(LinkInfo {
                mac: MacAddr([2, 0, 0, 0, 0, ifindex as u8]),
                addr: Ipv4Addr::new(10, 0, ifindex as u8, 1),
                mtu: 1500,
            }),
        }
    }

    fn spec(ifindex: u32, i: u32) -> RuleSpec {
        RuleSpec {
            id: format!("r{ifindex}.{i}"),
            input: InputKey {
                ifindex,
                group: Ipv4Addr::from(0xef0a_0000 + i),
                port: 5000,
            },
            source: None,
            outputs: vec![out(9)],
        }
    }

    /// Two input interfaces with 2,000 rules each (more than a program
    /// holds): an edit on one re-plans it alone, looks at a program's worth
    /// of keys, and sets the reasons of the edited rule only.
    #[test]
    fn an_edit_replans_only_its_interface() {
        let mut b = TableBuilder::new(1);
        for i in 0..2000 {
            b.add_rule(spec(1, i)).unwrap();
            b.add_rule(spec(2, i)).unwrap();
        }
        let table = b.build();
        let mut p = Planner::default();
        let programs = p.plan_all(&table, true);
        assert_eq!(programs.len(), 2);
        let fits = programs[0].1.as_ref().unwrap().keys.len();
        assert!(fits > 10 && fits < 2000, "{fits} keys in a program");
        assert_eq!(p.work.keys, 4000);
        assert_eq!(p.off.len(), 2 * (2000 - fits));

        // Added past the budget: one interface, ~a program's keys, one
        // reason; the program is unchanged.
        p.work = PlanWork::default();
        let mut b = table.edit(2);
        let added = spec(2, 5000);
        b.add_rule(added.clone()).unwrap();
        let table = b.build();
        let edit = RuleEdit {
            id: &added.id,
            input: added.input,
            source: None,
            added: true,
        };
        let (ifindex, prog) = p.plan_edit(&table, &edit, true).unwrap();
        assert_eq!(ifindex, 2);
        assert_eq!(prog.as_ref().unwrap().keys.len(), fits);
        assert_eq!(p.work.interfaces, 1);
        assert!(p.work.keys <= fits + 1, "{:?}", p.work);
        assert_eq!(p.work.reasons, 1);
        assert!(p.off[&added.id].contains("budget of"));
        assert!(p.built.is_empty(), "no key program to build");
        // Nothing but the added key was looked at.
        assert_eq!(p.work.keys, 1);
        let mut fresh = Planner::default();
        fresh.plan_all(&table, true);
        assert_eq!(p.off, fresh.off);
        assert_eq!(p.take_changed(), vec![added.id.clone(), added.id.clone()]);

        // Removing a planned rule: the next key moves into the program
        // (the same plan as from scratch), and only those two rules'
        // reasons are set.
        p.work = PlanWork::default();
        let first = spec(2, 0);
        let at = table.rule_for(&first.input, None).unwrap();
        let mut b = table.edit(3);
        b.remove_rule(at).unwrap();
        let table = b.build();
        let edit = RuleEdit {
            id: &first.id,
            input: first.input,
            source: None,
            added: false,
        };
        let (_, prog) = p.plan_edit(&table, &edit, true).unwrap();
        let prog = prog.unwrap();
        assert_eq!(p.work.interfaces, 1);
        assert!(p.work.keys <= fits + 1, "{:?}", p.work);
        assert_eq!(p.work.reasons, 1);
        assert!(!p.off.contains_key(&first.id));
        let moved_in = spec(2, fits as u32);
        assert!(!p.off.contains_key(&moved_in.id), "the next key is planned");
        // Its program is the only one built.
        let k = (moved_in.input.group, moved_in.input.port);
        assert_eq!(p.built, vec![(2, k)]);
        assert_eq!(p.ifs[&2].planned_rules(), fits);
        let mut fresh = Planner::default();
        let again = fresh.plan_all(&table, true);
        let fresh_prog = again
            .iter()
            .find(|(i, _)| *i == 2)
            .unwrap()
            .1
            .as_ref()
            .unwrap();
        let keys =
            |p: &InterfaceProgram| p.keys.iter().map(|k| (k.group, k.port)).collect::<Vec<_>>();
        assert_eq!(keys(&prog), keys(fresh_prog));
        assert_eq!(p.off, fresh.off);
        // Interface 1 was not looked at.
        assert_eq!(p.ifs[&1].planned.len(), fits);
    }

    /// A key whose program would be too large stays with the engines with
    /// its own reason, planned from scratch or by an edit, and the keys
    /// after it are planned.
    #[test]
    fn a_key_too_large_for_one_program_is_skipped() {
        let big = |i: u32| {
            let mut r = spec(1, i);
            r.outputs = (0..300)
                .map(|j| {
                    let mut o = out(9);
                    o.dest.set_port(6000 + j);
                    o
                })
                .collect();
            r
        };
        let mut b = TableBuilder::new(1);
        b.add_rule(big(0)).unwrap();
        for i in 1..4 {
            b.add_rule(spec(1, i)).unwrap();
        }
        let table = b.build();
        let mut p = Planner::default();
        let programs = p.plan_all(&table, true);
        let prog = programs[0].1.as_ref().unwrap();
        assert_eq!(prog.keys.len(), 3);
        assert!(p.off["r1.0"].contains("too many outputs"), "{:?}", p.off);
        assert_eq!(p.off.len(), 1);

        let added = big(10);
        let mut b = table.edit(2);
        b.add_rule(added.clone()).unwrap();
        let table = b.build();
        let edit = RuleEdit {
            id: &added.id,
            input: added.input,
            source: None,
            added: true,
        };
        let (_, prog) = p.plan_edit(&table, &edit, true).unwrap();
        assert_eq!(prog.unwrap().keys.len(), 3);
        assert!(p.off[&added.id].contains("(300 in all"), "{:?}", p.off);
        let mut fresh = Planner::default();
        fresh.plan_all(&table, true);
        assert_eq!(p.off, fresh.off);
    }
}
