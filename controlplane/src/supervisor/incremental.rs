//! One rule added or removed at run time, applied without recompiling the
//! others: the running table is edited (it shares every untouched chunk
//! with the next version, see `mcr_dataplane::table`), the engines follow
//! the index moves the edit records, and only the changed rule's group join
//! is taken or left. At 100,000 rules a full recompile took ~100 ms of
//! compile, status diff and join diff per change; this costs what one rule
//! costs.
//!
//! With the kernel fast path open, only the changed rule's input interface
//! is re-planned (see `mcr_dataplane::fastpath::plan`: up to its key
//! budget, 1,024 (group, port) keys), only the programs of the keys that
//! changed are loaded (one, usually), and only the rules whose reason
//! to be off the fast path changed are logged. What an edit does not cover falls
//! back to [`Supervisor::recompile`], which gives the same result: a fast
//! path still to be opened, a unicast input (its sink), a duplicate input,
//! and too many output slots left unused by removals.

use super::{FastState, Supervisor};
use crate::compile::{compile_rule, waiting_state, Placed, RuleState, RuleStatus};
use mcr_config::Rule;
use mcr_dataplane::fastpath::RuleEdit;
use mcr_dataplane::membership::Join;
use mcr_dataplane::{ForwardingTable, InputKey};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Output slots that removals may leave unused before the next change
/// recompiles the table (which drops them).
pub(super) const MAX_UNUSED_SLOTS: usize = 64;

/// A change of the desired rules that may be applied on its own.
pub(crate) enum RuleChange<'a> {
    /// This rule was appended to the runtime rules.
    Added(&'a Rule),
    /// This rule was taken out of the desired rules.
    Removed(&'a Rule),
}

/// The inputs and names of the running rules, counted by fingerprint, so
/// that `add` learns in O(1) that a rule clashes with none: the scan that
/// says which rule it clashes with runs only when a fingerprint matches (a
/// fingerprint collision costs that scan, never a wrong answer). Rebuilt
/// by every recompile, kept up to date by edits.
#[derive(Debug, Default)]
pub(crate) struct RuleKeys {
    inputs: HashMap<u64, u32>,
    /// A named rule's name, an unnamed one's id (a new name may be
    /// neither).
    names: HashMap<u64, u32>,
}

/// A fixed-key hash: the same value for the same key in every map.
fn fingerprint<T: std::hash::Hash + ?Sized>(t: &T) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

impl RuleKeys {
    /// The keys of `rules`.
    pub(crate) fn of<'a>(rules: impl Iterator<Item = &'a Rule>) -> RuleKeys {
        let mut k = RuleKeys::default();
        for r in rules {
            k.count(r, true);
        }
        k
    }

    fn count(&mut self, rule: &Rule, up: bool) {
        let name = match &rule.name {
            Some(n) => fingerprint(n.as_str()),
            None => fingerprint(rule.id().as_str()),
        };
        bump(&mut self.names, name, up);
        bump(&mut self.inputs, fingerprint(&rule.input), up);
    }
}

fn bump(map: &mut HashMap<u64, u32>, key: u64, up: bool) {
    if up {
        *map.entry(key).or_insert(0) += 1;
    } else if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// What the edit made, to be published.
struct Edit {
    /// None: the table does not change (an inactive rule).
    table: Option<ForwardingTable>,
    /// The input interface whose capture filter may have to change.
    ifindex: u32,
    /// The group join the rule's input needs (None: inactive).
    join: Option<Join>,
    status: Option<RuleStatus>,
    removed_id: Option<String>,
    /// The rule the table gained or lost, for the fast path: id, input,
    /// source, and whether it was added.
    rule: Option<(String, InputKey, Option<std::net::Ipv4Addr>, bool)>,
}

impl Supervisor {
    /// Applies `change` to the forwarding table, the statuses and the joins:
    /// by editing the running table when it can, else by a full recompile.
    pub(crate) fn apply_rule_change(&mut self, change: RuleChange<'_>) {
        let t0 = Instant::now();
        if let Some(keys) = &mut self.rule_keys {
            match change {
                RuleChange::Added(r) => keys.count(r, true),
                RuleChange::Removed(r) => keys.count(r, false),
            }
        }
        match self.edit_for(&change) {
            Some(edit) => self.publish_edit(edit, t0),
            None => self.recompile(),
        }
    }

    /// Whether a running rule may have `rule`'s input or name (false: none
    /// has).
    pub(crate) fn may_clash(&mut self, rule: &Rule) -> bool {
        let keys = self.rule_keys.get_or_insert_with(|| {
            RuleKeys::of(
                self.config
                    .rules
                    .iter()
                    .chain(self.runtime_rules.iter().map(|d| &d.rule)),
            )
        });
        keys.inputs.contains_key(&fingerprint(&rule.input))
            || rule
                .name
                .as_ref()
                .is_some_and(|n| keys.names.contains_key(&fingerprint(n.as_str())))
    }

    /// The edited table for `change`, or None when it needs a recompile.
    fn edit_for(&self, change: &RuleChange<'_>) -> Option<Edit> {
        // A fast path the config asks for is opened by a recompile.
        if self.config.data_plane.kernel_fast_path && matches!(self.fast, FastState::Closed) {
            return None;
        }
        let current = self.table.load();
        if current.generation() != self.generation {
            return None;
        }
        let next_generation = self.generation + 1;
        match change {
            RuleChange::Added(rule) => {
                let mrib = &self.mrib;
                let members = |ifindex: u32, group, source: Option<std::net::Ipv4Addr>| {
                    mrib.local_members_on(&mcr_protocols::Interface::new(ifindex, ""), group)
                        .is_some_and(|f| match source {
                            Some(s) => f.admits(s),
                            None => f.mode == mcr_protocols::FilterMode::Exclude,
                        })
                };
                let (id, placed) = compile_rule(
                    rule,
                    &self.interfaces,
                    self.config.multicast_ttl(),
                    &members,
                );
                let (spec, waiting, join) = match placed {
                    Placed::InTable {
                        spec,
                        waiting,
                        join,
                        unicast: None,
                    } => (spec, waiting, join),
                    Placed::InTable { .. } => return None,
                    // Not in the table, and new: no counters to keep, so
                    // the table need not list it as dormant (the next
                    // recompile does).
                    Placed::Inactive(reason) => {
                        return Some(Edit {
                            table: None,
                            ifindex: 0,
                            join: None,
                            status: Some(RuleStatus {
                                id,
                                state: RuleState::Inactive { reason },
                            }),
                            removed_id: None,
                            rule: None,
                        })
                    }
                };
                let rule_edit = Some((id.clone(), spec.input, spec.source, true));
                let ifindex = spec.input.ifindex;
                let mut b = current.edit(next_generation);
                b.add_rule(spec).ok()?;
                Some(Edit {
                    table: Some(b.build()),
                    ifindex,
                    join: Some(join),
                    status: Some(RuleStatus {
                        id,
                        state: waiting_state(waiting),
                    }),
                    removed_id: None,
                    rule: rule_edit,
                })
            }
            RuleChange::Removed(rule) => {
                let id = rule.id().to_string();
                let status = self.statuses.iter().rposition(|s| s.id == id)?;
                if matches!(self.statuses[status].state, RuleState::Inactive { .. }) {
                    // Out of the table already; listed as dormant (its
                    // counters kept) only by a recompile.
                    let table = current.dormant().contains(&id).then(|| {
                        let mut b = current.edit(next_generation);
                        b.forget_dormant(&id);
                        b.build()
                    });
                    return Some(Edit {
                        table,
                        ifindex: 0,
                        join: None,
                        status: None,
                        removed_id: Some(id),
                        rule: None,
                    });
                }
                if !rule.input.group.is_multicast() {
                    return None;
                }
                let ifindex = self.interfaces.get(&rule.input.interface)?.index;
                let key = InputKey {
                    ifindex,
                    group: rule.input.group,
                    port: rule.input.port,
                };
                let at = current.rule_for(&key, rule.input.source)?;
                if current.rules()[at].id != id {
                    return None;
                }
                let mut b = current.edit(next_generation);
                b.remove_rule(at)?;
                if b.table().unused_slots() > MAX_UNUSED_SLOTS {
                    return None;
                }
                Some(Edit {
                    table: Some(b.build()),
                    ifindex,
                    join: Some(Join {
                        ifindex,
                        group: rule.input.group,
                        source: rule.input.source,
                    }),
                    status: None,
                    rule: Some((id.clone(), key, rule.input.source, false)),
                    removed_id: Some(id),
                })
            }
        }
    }

    /// Publishes an edited table and applies the rest of the change: what
    /// `recompile` does, for one rule.
    fn publish_edit(&mut self, edit: Edit, t0: Instant) {
        let Edit {
            table,
            ifindex,
            join,
            status,
            removed_id,
            rule,
        } = edit;
        let t_publish = Instant::now();
        let mut fast = Duration::ZERO;
        if let Some(table) = table {
            fast = self.publish_edited(table, ifindex, rule);
        }
        let publish_at = t_publish.elapsed();
        let t_joins = Instant::now();
        let event = match (status, removed_id) {
            (Some(s), _) => {
                if let Some(join) = join {
                    let users = self.join_users.entry(join).or_insert(0);
                    *users += 1;
                    if *users == 1 {
                        if let Err(e) = self.memberships.join(join) {
                            tracing::warn!(group = %join.group, ifindex = join.ifindex, error = %e, "joining group failed");
                        }
                    }
                }
                super::log_rule_state(&s.id, &s.state);
                let mut e = serde_json::json!({"event": "rule", "id": s.id});
                if let Ok(serde_json::Value::Object(state)) = serde_json::to_value(&s.state) {
                    for (k, v) in state {
                        e[k] = v;
                    }
                }
                // (With the fast path open, `log_path_changes` has set it.)
                if !matches!(s.state, RuleState::Inactive { .. })
                    && !matches!(self.fast, FastState::Open(_))
                {
                    self.off_fast.insert(s.id.clone(), None);
                }
                self.statuses.push(s);
                e
            }
            (None, Some(id)) => {
                if let Some(join) = join {
                    if let Some(users) = self.join_users.get_mut(&join) {
                        *users -= 1;
                        if *users == 0 {
                            self.join_users.remove(&join);
                            self.memberships.leave(join);
                        }
                    }
                }
                // Runtime rules are last: look from the end.
                if let Some(at) = self.statuses.iter().rposition(|s| s.id == id) {
                    self.statuses.remove(at);
                }
                self.off_fast.remove(&id);
                serde_json::json!({"event": "rule", "id": id, "state": "removed"})
            }
            (None, None) => serde_json::Value::Null,
        };
        if !event.is_null() {
            self.event("rules", event);
        }
        tracing::debug!(
            rules = self.statuses.len(),
            edit_us = (t_publish - t0).as_micros() as u64,
            publish_us = publish_at.as_micros() as u64,
            fast_path_us = fast.as_micros() as u64,
            joins_us = t_joins.elapsed().as_micros() as u64,
            total_us = t0.elapsed().as_micros() as u64,
            "table edited"
        );
        // A rule edit changes nothing the protocols see, except which
        // traffic relay rules take from routes.
        self.sync_routes();
    }

    /// Logs the rules of `ids` whose reason to be off the fast path changed
    /// (what `log_path_changes` does for every rule), except `removed`.
    fn log_edited_paths(&mut self, ids: Vec<String>, removed: Option<&str>) {
        let FastState::Open(f) = &self.fast else {
            return;
        };
        let on = self.config.data_plane.kernel_fast_path;
        for id in ids {
            if Some(id.as_str()) == removed {
                continue;
            }
            let why = if on {
                f.off_reason(&id).map(str::to_string)
            } else {
                None
            };
            if on && self.off_fast.get(&id) != Some(&why) {
                if let Some(why) = &why {
                    tracing::info!(rule = %id, reason = %why, "rule kept off the kernel fast path; the engines forward it");
                } else {
                    tracing::debug!(rule = %id, "rule on the kernel fast path");
                }
            }
            self.off_fast.insert(id, why);
        }
    }

    /// Publishes an edited table (its capture filters and input claims
    /// updated when they change) and waits for the engines to run it.
    /// Returns the time the kernel fast path took (part of the publish).
    fn publish_edited(
        &mut self,
        table: ForwardingTable,
        ifindex: u32,
        rule: Option<(String, InputKey, Option<std::net::Ipv4Addr>, bool)>,
    ) -> Duration {
        let before = self.table.load();
        let t_fast = Instant::now();
        self.generation = table.generation();
        let enabled = self.config.data_plane.kernel_fast_path;
        if let FastState::Open(f) = &mut self.fast {
            // Only the rule's input interface is re-planned (its program
            // replaced if it changed), and only the rules whose reason to
            // be off the fast path changed are looked at.
            let failed = match &rule {
                Some((id, input, source, added)) => f.apply_edit(
                    &table,
                    &RuleEdit {
                        id,
                        input: *input,
                        source: *source,
                        added: *added,
                    },
                    enabled,
                ),
                // A dormant rule forgotten: nothing the fast path holds.
                None => Vec::new(),
            };
            let changed = f.take_changed();
            for (ifindex, e) in &failed {
                let name = self.interface_name(*ifindex);
                tracing::warn!(interface = %name, error = %e, "kernel fast path not used on this interface; the engines forward its rules");
            }
            self.log_edited_paths(
                changed,
                rule.as_ref().filter(|r| !r.3).map(|r| r.0.as_str()),
            );
        } else {
            self.fast_was_on = Some(false);
        }
        let fast = t_fast.elapsed();
        // Capture filters list the pairs exactly up to MAX_EXACT_PAIRS per
        // interface and pass all UDP past it: only a change on the small
        // side (or an interface coming or going) touches the sockets.
        let (was, now) = (before.input_count(ifindex), table.input_count(ifindex));
        drop(before);
        let table = if was.min(now) <= mcr_dataplane::bpf::MAX_EXACT_PAIRS {
            let (sets, failed) = self
                .captures
                .update(&table.inputs_by_interface(), self.engines.cpus().len());
            for (ifindex, e) in failed {
                let name = self.interface_name(ifindex);
                tracing::warn!(interface = %name, error = %e, "opening capture sockets failed");
            }
            if was.min(now) == 0 {
                let inputs: Vec<(u32, String)> = table
                    .input_interfaces()
                    .into_iter()
                    .map(|i| (i, self.interface_name(i)))
                    .collect();
                self.claims.update(&inputs);
            }
            table.with_captures(sets)
        } else {
            table
        };
        self.table.publish(table);
        self.engines.wake_all();
        if !self
            .engines
            .wait_for_generation(self.generation, Duration::from_millis(500))
        {
            tracing::warn!(
                generation = self.generation,
                "engines slow to take the new forwarding table"
            );
        }
        fast
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr_config::{Input, Output};
    use std::net::Ipv4Addr;

    fn rule(name: Option<&str>, port: u16) -> Rule {
        Rule {
            name: name.map(str::to_string),
            input: Input {
                interface: "a".into(),
                group: Ipv4Addr::new(239, 1, 1, 1),
                port,
                source: None,
            },
            outputs: vec![Output {
                interface: "b".into(),
                group: Ipv4Addr::new(239, 2, 2, 2),
                port: 6000,
                ttl: None,
                when: mcr_config::OutputWhen::Always,
            }],
        }
    }

    fn clashes(k: &RuleKeys, r: &Rule) -> bool {
        k.inputs.contains_key(&fingerprint(&r.input))
            || r.name
                .as_ref()
                .is_some_and(|n| k.names.contains_key(&fingerprint(n.as_str())))
    }

    #[test]
    fn keys_follow_adds_and_removes() {
        let running = [rule(Some("a"), 1), rule(None, 2), rule(Some("b"), 2)];
        let mut k = RuleKeys::of(running.iter());
        assert!(clashes(&k, &rule(Some("a"), 9)), "same name");
        assert!(clashes(&k, &rule(Some("z"), 1)), "same input");
        // A name equal to an unnamed rule's id clashes too.
        let id = running[1].id().to_string();
        assert!(clashes(&k, &rule(Some(&id), 9)));
        assert!(!clashes(&k, &rule(Some("z"), 9)));
        // Input port 2 is used twice: it stays taken until both go.
        k.count(&running[1], false);
        assert!(clashes(&k, &rule(Some("z"), 2)));
        assert!(!clashes(&k, &rule(Some(&id), 9)));
        k.count(&running[2], false);
        assert!(!clashes(&k, &rule(Some("z"), 2)));
        assert!(!clashes(&k, &rule(Some("b"), 9)));
        k.count(&rule(Some("b"), 2), true);
        assert!(clashes(&k, &rule(Some("b"), 9)));
    }
}
