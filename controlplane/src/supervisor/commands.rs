//! What each control request does. Every command runs on the supervisor
//! thread, which owns the state it reads or changes.

use super::{FastState, ReloadRecord, Supervisor};
use crate::compile::{DesiredRule, Origin, RuleState};
use crate::control::protocol::EVENT_CATEGORIES;
use crate::control::server::Pending;
use crate::control::{Request, Response, PROTOCOL_VERSION};
use mcr_config::{Config, Rule};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

impl Supervisor {
    pub(super) fn serve(&mut self, pending: Pending) {
        if self.control.is_subscribed(pending.client) {
            let resp = Response::error(
                "subscribed",
                "this connection streams events; open another one for requests",
            );
            self.control
                .respond(pending.client, pending.id.as_ref(), &resp);
            return;
        }
        if let Ok(Request::Subscribe { events }) = &pending.request {
            let response = subscribe_answer(events);
            let ok = response.is_ok();
            self.control
                .respond(pending.client, pending.id.as_ref(), &response);
            if ok {
                let events = if events.is_empty() {
                    EVENT_CATEGORIES.iter().map(|c| c.to_string()).collect()
                } else {
                    events.clone()
                };
                self.control.subscribe(pending.client, events);
            }
            return;
        }
        let response = match pending.request {
            Ok(req) => self.execute(req),
            Err(resp) => resp,
        };
        self.control
            .respond(pending.client, pending.id.as_ref(), &response);
    }

    pub fn execute(&mut self, req: Request) -> Response {
        match req {
            Request::Ping => Response::Ok(json!({ "pong": true })),
            Request::Version => Response::Ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "protocol": PROTOCOL_VERSION,
            })),
            Request::Status => Response::Ok(self.status()),
            Request::List => Response::Ok(self.list()),
            Request::Add { rule } => self.add(rule),
            Request::Remove { rule_id, name } => self.remove(rule_id, name),
            Request::Stats => Response::OkText(self.stats_text()),
            Request::Cores => Response::Ok(self.cores()),
            Request::ConfigShow => {
                Response::Ok(json!({ "json5": self.running_config().to_json5() }))
            }
            Request::ConfigCheck { file } => match mcr_config::load_file(&file) {
                Ok(c) => {
                    Response::Ok(json!({ "file": file, "valid": true, "rules": c.rules.len() }))
                }
                Err(e) => Response::error("invalid_config", e.to_string()),
            },
            Request::ConfigSave { file } => self.config_save(file),
            Request::LogLevelGet => match &self.options.log_control {
                Some(l) => Response::Ok(json!({ "filter": l.current() })),
                None => {
                    Response::error("unsupported", "log levels cannot be changed in this build")
                }
            },
            Request::LogLevelSet { level, target } => {
                let Some(l) = &self.options.log_control else {
                    return Response::error(
                        "unsupported",
                        "log levels cannot be changed in this build",
                    );
                };
                const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
                let plain_word = !level.contains(['=', ',']);
                if (target.is_some() || plain_word)
                    && !LEVELS.contains(&level.to_ascii_lowercase().as_str())
                {
                    return Response::error(
                        "invalid_arguments",
                        format!(
                            "unknown log level '{level}'; use one of {}",
                            LEVELS.join(", ")
                        ),
                    );
                }
                if let Err(why) = check_socket_filter(&level, target.as_deref()) {
                    return Response::error("invalid_arguments", why);
                }
                let filter = match target {
                    // Replace this target's directive rather than piling up.
                    Some(t) => {
                        let prefix = format!("{t}=");
                        let mut parts: Vec<String> = l
                            .current()
                            .split(',')
                            .filter(|d| !d.is_empty() && !d.starts_with(&prefix))
                            .map(str::to_string)
                            .collect();
                        parts.push(format!("{t}={level}"));
                        parts.join(",")
                    }
                    None => level,
                };
                match l.set(&filter) {
                    Ok(()) => Response::Ok(json!({ "filter": l.current() })),
                    Err(e) => Response::error("invalid_arguments", e),
                }
            }
            Request::Reload { file, dry_run } => self.reload(file, dry_run),
            Request::Subscribe { .. } => Response::error(
                "invalid_request",
                "subscribe is answered on the connection itself",
            ),
        }
    }

    /// The running state as a config: the file's settings plus the rules as
    /// they run now (runtime additions included, runtime removals excluded).
    pub fn running_config(&self) -> Config {
        let mut c = self.config.clone();
        c.rules
            .extend(self.runtime_rules.iter().map(|d| d.rule.clone()));
        c
    }

    fn status(&self) -> Value {
        let totals = self.rule_totals();
        let count =
            |f: fn(&RuleState) -> bool| self.statuses.iter().filter(|s| f(&s.state)).count();
        let drops = self.drops();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_secs": self.uptime().as_secs(),
            "config_file": self.options.config_path,
            "config_hash": self.config_hash.map(|h| format!("{h:016x}")),
            "control_socket": self.control.path(),
            "namespace": crate::namespace::current(),
            "cores": self.engines.cpus(),
            "rules": {
                "total": self.statuses.len(),
                "active": count(|s| matches!(s, RuleState::Active)),
                "partial": count(|s| matches!(s, RuleState::Partial { .. })),
                "inactive": count(|s| matches!(s, RuleState::Inactive { .. })),
            },
            "packets": totals.iter().map(|r| r.packets).sum::<u64>(),
            "bytes": totals.iter().map(|r| r.bytes).sum::<u64>(),
            "drops": drops.total(),
            "protocols": {
                "igmp": self.config.igmp.enabled,
                "pim": self.config.pim.enabled,
                "msdp": self.config.msdp.enabled,
            },
            "kernel_fast_path": self.fast_path_json(),
            "control_clients": self.control.client_count(),
            "events_dropped": self.control.events_dropped(),
            "last_reload": self.last_reload,
            "reloads": self.reloads,
        })
    }

    /// Whether the kernel fast path runs, where, and for how many rules.
    fn fast_path_json(&self) -> Value {
        match &self.fast {
            FastState::Open(f) if self.config.data_plane.kernel_fast_path => json!({
                "enabled": true,
                "rules": f.rule_count(),
                "interfaces": f
                    .interfaces()
                    .iter()
                    .map(|i| self.interface_name(*i))
                    .collect::<Vec<_>>(),
            }),
            FastState::Failed(why) => json!({ "enabled": false, "rules": 0, "error": why }),
            _ => json!({ "enabled": false, "rules": 0, "error": null }),
        }
    }

    fn list(&self) -> Value {
        let states: BTreeMap<&str, &RuleState> = self
            .statuses
            .iter()
            .map(|s| (s.id.as_str(), &s.state))
            .collect();
        let rules: Vec<Value> = self
            .desired()
            .iter()
            .map(|d| {
                let id = d.rule.id().to_string();
                let mut v = json!({
                    "id": id,
                    "name": d.rule.name,
                    "input": d.rule.input,
                    "outputs": d.rule.outputs,
                    "origin": d.origin,
                });
                if let Some(state) = states.get(id.as_str()) {
                    let sv = serde_json::to_value(state).unwrap_or(Value::Null);
                    if let Value::Object(m) = sv {
                        for (k, val) in m {
                            v[k] = val;
                        }
                    }
                }
                v
            })
            .collect();
        json!({ "rules": rules })
    }

    fn add(&mut self, rule: Rule) -> Response {
        if let Err(msg) = self.check_new_rule(&rule) {
            return Response::error("invalid_rule", msg);
        }
        let id = rule.id().to_string();
        self.runtime_rules.push(DesiredRule {
            rule,
            origin: Origin::Runtime,
        });
        self.recompile();
        tracing::info!(rule = %id, "rule added at run time");
        let state = self
            .statuses
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.state.clone());
        Response::Ok(json!({ "id": id, "state": state }))
    }

    /// Validates a rule to add against the running rules, with the same
    /// messages as a config file holding them all would get, without
    /// re-validating every running rule (that made each `add` O(rules)).
    fn check_new_rule(&self, rule: &Rule) -> Result<(), String> {
        // The new rule alone, with the running settings (the other sections
        // are small): everything but the cross-rule checks.
        let mut alone = self.config_without_rules();
        alone.rules.push(rule.clone());
        let mut msgs: Vec<String> = Vec::new();
        if let Err(e) = alone.validate() {
            let prefix = "rules[0]";
            msgs = e
                .diagnostics
                .iter()
                .filter(|d| d.path.starts_with(prefix))
                .map(|d| {
                    let path = d.path.trim_start_matches(prefix).trim_start_matches('.');
                    if path.is_empty() {
                        d.message.clone()
                    } else {
                        format!("{path}: {}", d.message)
                    }
                })
                .collect();
            if msgs.is_empty() {
                return Err(e.to_string());
            }
        }
        // The cross-rule checks of mcr_config's validation: one pass that
        // compares, no per-rule allocation for named rules.
        let running = self
            .config
            .rules
            .iter()
            .chain(self.runtime_rules.iter().map(|d| &d.rule));
        let name = rule.name.as_deref();
        let mut dup_input = None;
        let mut dup_name = None;
        for (j, r) in running.enumerate() {
            if dup_input.is_none() && r.input == rule.input {
                dup_input = Some(j);
            }
            if let (None, Some(n)) = (dup_name, name) {
                let same = match &r.name {
                    Some(other) => other == n,
                    None => r.id().as_str() == n,
                };
                if same {
                    dup_name = Some(j);
                }
            }
            if dup_input.is_some() && (dup_name.is_some() || name.is_none()) {
                break;
            }
        }
        if let Some(j) = dup_input {
            let i = &rule.input;
            msgs.push(format!(
                "input: duplicate input: rules[{j}] already captures interface {} group {} port {}{}; merge the outputs into one rule",
                i.interface,
                i.group,
                i.port,
                match i.source {
                    Some(s) => format!(" source {s}"),
                    None => String::new(),
                }
            ));
        }
        if let (Some(j), Some(n)) = (dup_name, name) {
            msgs.push(format!(
                "name: duplicate rule name '{n}': rules[{j}] already uses it; names must be unique"
            ));
        }
        if msgs.is_empty() {
            Ok(())
        } else {
            Err(msgs.join("; "))
        }
    }

    /// The running settings with no rules (without copying the rules).
    fn config_without_rules(&self) -> Config {
        // Destructured field by field: a new field is a compile error here
        // rather than silently left out of the check.
        let Config {
            rules: _,
            cores,
            user,
            control_socket_group,
            igmp,
            pim,
            msdp,
            control_plane,
            data_plane,
        } = &self.config;
        Config {
            rules: Vec::new(),
            cores: cores.clone(),
            user: user.clone(),
            control_socket_group: control_socket_group.clone(),
            igmp: igmp.clone(),
            pim: pim.clone(),
            msdp: msdp.clone(),
            control_plane: control_plane.clone(),
            data_plane: data_plane.clone(),
        }
    }

    fn remove(&mut self, id: Option<String>, name: Option<String>) -> Response {
        // By name without building ids: a named rule's id is its name, and
        // computing 100,000 ids per remove was O(rules) allocations.
        let matches = |r: &Rule| match (&id, &name) {
            (Some(i), _) => match &r.name {
                Some(n) => n == i,
                None => r.id().as_str() == i,
            },
            (None, Some(n)) => r.name.as_deref() == Some(n.as_str()),
            (None, None) => false,
        };
        if id.is_none() && name.is_none() {
            return Response::error("invalid_arguments", "remove needs an id or a name");
        }
        let removed = if let Some(pos) = self.runtime_rules.iter().position(|d| matches(&d.rule)) {
            self.runtime_rules.remove(pos).rule
        } else if let Some(pos) = self.config.rules.iter().position(matches) {
            self.config.rules.remove(pos)
        } else {
            let what = id
                .map(|i| format!("id '{i}'"))
                .or(name.map(|n| format!("name '{n}'")));
            return Response::error(
                "not_found",
                format!("no rule with {}", what.unwrap_or_default()),
            );
        };
        let rid = removed.id().to_string();
        self.recompile();
        tracing::info!(rule = %rid, "rule removed at run time");
        Response::Ok(json!({ "removed": rid }))
    }

    /// `stats` as JSON text, serialized straight from typed rows: with
    /// 10,000 rules a `Value` tree made each answer cost ~0.4 s (debug).
    fn stats_text(&self) -> String {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            output: &'a str,
            packets: u64,
            bytes: u64,
            pps: f64,
            bps: f64,
            full: u64,
            errors: u64,
        }
        #[derive(serde::Serialize)]
        struct RuleRow<'a> {
            id: &'a str,
            packets: u64,
            bytes: u64,
            pps: f64,
            bps: f64,
            outputs: Vec<Out<'a>>,
        }
        #[derive(serde::Serialize)]
        struct Stats<'a> {
            drops: mcr_dataplane::Drops,
            engines: Vec<Value>,
            rules: Vec<RuleRow<'a>>,
        }
        let totals = self.rule_totals();
        let base = self.rates.base();
        let rules = totals
            .iter()
            .map(|r| {
                let rate = super::rates::RateTracker::rule(base.as_ref(), r);
                RuleRow {
                    id: &r.id,
                    packets: r.packets,
                    bytes: r.bytes,
                    pps: rate.pps,
                    bps: rate.bps,
                    outputs: r
                        .outputs
                        .iter()
                        .enumerate()
                        .map(|(i, o)| Out {
                            output: &o.output,
                            packets: o.packets,
                            bytes: o.bytes,
                            pps: rate.outputs_pps.get(i).copied().unwrap_or(0.0),
                            bps: rate.outputs_bps.get(i).copied().unwrap_or(0.0),
                            full: o.full,
                            errors: o.errors,
                        })
                        .collect(),
                }
            })
            .collect();
        let engines: Vec<Value> = self
            .engines
            .stats()
            .iter()
            .map(|e| {
                let mut v = self.engine_json(e);
                v["drops"] = json!(e.drops);
                v
            })
            .collect();
        let stats = Stats {
            drops: self.drops(),
            engines,
            rules,
        };
        serde_json::to_string(&stats).unwrap_or_else(|_| "{}".into())
    }

    fn cores(&self) -> Value {
        let inputs: Vec<String> = self
            .desired()
            .iter()
            .zip(&self.statuses)
            .filter(|(_, s)| !matches!(s.state, RuleState::Inactive { .. }))
            .map(|(d, _)| d.rule.input.interface.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let engines: Vec<Value> = self
            .engines
            .stats()
            .iter()
            .map(|e| {
                let mut v = self.engine_json(e);
                v["interfaces"] = json!(inputs);
                v["drops"] = json!(e.drops.total());
                v["table_generation"] = json!(e.generation);
                v
            })
            .collect();
        json!({ "engines": engines })
    }

    /// What `stats` and `cores` both say of an engine.
    fn engine_json(&self, e: &mcr_dataplane::EngineStats) -> Value {
        json!({
            "engine": e.engine,
            "cpu": e.cpu,
            "frames": e.frames,
            "pps": self.rates.engine_pps(e.engine, e.frames),
        })
    }

    fn config_save(&self, file: Option<PathBuf>) -> Response {
        let Some(path) = file.or_else(|| self.options.config_path.clone()) else {
            return Response::error(
                "invalid_arguments",
                "mcrd runs without --config: name the file to write",
            );
        };
        match write_atomically(&path, &self.running_config().to_json5()) {
            Ok(()) => Response::Ok(json!({ "file": path })),
            Err(e) => Response::error("io", format!("cannot write {}: {e}", path.display())),
        }
    }

    /// Re-reads the config file (or `file`) and applies the difference.
    /// The file wins: the running rules become exactly the file's, so rules
    /// added at run time and not in the file are removed (and reported).
    pub fn reload(&mut self, file: Option<PathBuf>, dry_run: bool) -> Response {
        let t0 = Instant::now();
        let Some(path) = file.or_else(|| self.options.config_path.clone()) else {
            let msg =
                "mcrd runs without --config: name the file to load (mcrctl reload --file FILE)";
            return self.record_reload(
                false,
                msg.into(),
                dry_run,
                Response::error("invalid_arguments", msg),
            );
        };
        let new = match mcr_config::load_file(&path) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                for line in msg.lines() {
                    tracing::error!("reload refused, running state kept: {line}");
                }
                return self.record_reload(
                    false,
                    msg.clone(),
                    dry_run,
                    Response::error("invalid_config", msg),
                );
            }
        };
        let parsed = t0.elapsed();
        let diff = RuleDiff::between(&self.running_config().rules, &new.rules);
        let runtime_removed: Vec<String> = self
            .runtime_rules
            .iter()
            .map(|d| d.rule.id().to_string())
            .filter(|id| diff.removed.contains(id))
            .collect();
        let mut summary = json!({
            "file": path,
            "dry_run": dry_run,
            "added": diff.added,
            "removed": diff.removed,
            "changed": diff.changed,
            "unchanged": diff.unchanged,
            "runtime_rules_removed": runtime_removed,
            "sections_changed": sections_changed(&self.config, &new),
        });
        if dry_run {
            return Response::Ok(summary);
        }
        if new.cores != self.config.cores {
            summary["note"] = json!("'cores' changed: takes effect at the next restart of mcrd");
        }
        let hash = file_hash_of(&path);
        // Nothing the table depends on changed (same rules in the same order,
        // no runtime rule to drop, same data-plane settings): keep the
        // running table. Recompiling 100,000 unchanged rules, rejoining and
        // refiltering cost seconds and changed nothing.
        let same_table = self.runtime_rules.is_empty()
            && self.config.rules == new.rules
            && self.config.data_plane == new.data_plane;
        self.config = new;
        self.runtime_rules.clear();
        let t1 = Instant::now();
        if !same_table {
            self.recompile();
        }
        summary["recompiled"] = json!(!same_table);
        summary["parse_us"] = json!(parsed.as_micros() as u64);
        summary["compile_swap_us"] = json!(t1.elapsed().as_micros() as u64);
        if self.options.config_path.as_deref() == Some(path.as_path()) {
            self.config_hash = hash;
        }
        let msg = format!(
            "{} added, {} removed, {} changed, {} unchanged",
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len(),
            diff.unchanged
        );
        tracing::info!(file = %path.display(), "configuration reloaded: {msg}");
        self.record_reload(true, msg, false, Response::Ok(summary))
    }

    fn record_reload(
        &mut self,
        ok: bool,
        message: String,
        dry_run: bool,
        resp: Response,
    ) -> Response {
        if !dry_run {
            self.event(
                "reload",
                json!({"event": "reload", "ok": ok, "message": message}),
            );
            if ok {
                self.reloads += 1;
            }
            self.last_reload = Some(ReloadRecord {
                time: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                ok,
                message,
            });
        }
        resp
    }
}

/// The longest log filter accepted from the control socket, and the most
/// directives in it.
pub const MAX_SOCKET_FILTER_LEN: usize = 1024;
/// See [`MAX_SOCKET_FILTER_LEN`].
pub const MAX_SOCKET_FILTER_DIRECTIVES: usize = 32;

/// Refuses log filters a control client may not set: span field filters
/// (`target[span{field=value}]`), whose values tracing-subscriber compiles
/// as regular expressions with no bound on time or memory (19 nested
/// repetitions froze the control thread 7.3 s, doubling with each one),
/// and filters too long to be anything but an attack. The operator can
/// still give any filter with `--log-level` at start.
pub fn check_socket_filter(level: &str, target: Option<&str>) -> Result<(), String> {
    let text = format!("{}{level}", target.unwrap_or(""));
    if text.len() > MAX_SOCKET_FILTER_LEN {
        return Err(format!(
            "log filter over {MAX_SOCKET_FILTER_LEN} bytes; set long filters with --log-level at start"
        ));
    }
    if level.split(',').count() > MAX_SOCKET_FILTER_DIRECTIVES {
        return Err(format!(
            "log filter with more than {MAX_SOCKET_FILTER_DIRECTIVES} directives; set it with --log-level at start"
        ));
    }
    if text.contains(['[', ']', '{', '}']) {
        return Err(
            "span and field filters ([span{field=value}]) are not accepted over the control socket (their values are regular expressions); set them with --log-level at start"
                .into(),
        );
    }
    Ok(())
}

pub(super) fn file_hash_of(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| mcr_config::fnv1a64(&b))
}

/// The difference between two rule lists, by rule id.
#[derive(Debug, Default, PartialEq)]
pub struct RuleDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

impl RuleDiff {
    pub fn between(old: &[Rule], new: &[Rule]) -> RuleDiff {
        let old: BTreeMap<String, &Rule> = old.iter().map(|r| (r.id().to_string(), r)).collect();
        let new: BTreeMap<String, &Rule> = new.iter().map(|r| (r.id().to_string(), r)).collect();
        let mut d = RuleDiff::default();
        for (id, r) in &new {
            match old.get(id) {
                None => d.added.push(id.clone()),
                Some(o) if o != r => d.changed.push(id.clone()),
                Some(_) => d.unchanged += 1,
            }
        }
        d.removed = old
            .keys()
            .filter(|id| !new.contains_key(*id))
            .cloned()
            .collect();
        d
    }
}

fn subscribe_answer(events: &[String]) -> Response {
    if let Some(bad) = events
        .iter()
        .find(|e| !EVENT_CATEGORIES.contains(&e.as_str()))
    {
        return Response::error(
            "invalid_arguments",
            format!(
                "unknown event category '{bad}'; categories: {}",
                EVENT_CATEGORIES.join(", ")
            ),
        );
    }
    let list: Vec<&str> = if events.is_empty() {
        EVENT_CATEGORIES.to_vec()
    } else {
        events.iter().map(String::as_str).collect()
    };
    Response::Ok(json!({ "subscribed": list }))
}

fn sections_changed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.igmp != new.igmp {
        v.push("igmp");
    }
    if old.pim != new.pim {
        v.push("pim");
    }
    if old.msdp != new.msdp {
        v.push("msdp");
    }
    if old.control_plane != new.control_plane {
        v.push("control_plane");
    }
    if old.data_plane != new.data_plane {
        v.push("data_plane");
    }
    if old.cores != new.cores {
        v.push("cores");
    }
    v
}

/// Writes `contents` to a temporary file beside `path`, then renames it over
/// `path`, so a reader sees the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, port: u16) -> Rule {
        mcr_config::parse_str(
            &format!(
                "{{ rules: [ {{ name: \"{name}\", input: {{ interface: \"a\", group: \"239.1.1.1\", port: {port} }}, outputs: [ {{ interface: \"b\", group: \"239.2.2.2\", port: 1 }} ] }} ] }}"
            ),
            "t",
        )
        .unwrap()
        .rules
        .remove(0)
    }

    #[test]
    fn diff_by_id() {
        let old = vec![rule("a", 1), rule("b", 2), rule("c", 3)];
        let new = vec![rule("a", 1), rule("b", 20), rule("d", 4)];
        let d = RuleDiff::between(&old, &new);
        assert_eq!(d.added, vec!["d"]);
        assert_eq!(d.removed, vec!["c"]);
        assert_eq!(d.changed, vec!["b"]);
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn socket_filters_refuse_regexes_and_size() {
        assert!(check_socket_filter("mcr[{x=(a|b)*a}]=debug", None).is_err());
        assert!(check_socket_filter("debug", Some("mcr[span]")).is_err());
        assert!(check_socket_filter(&"a=debug,".repeat(40), None).is_err());
        assert!(check_socket_filter(&"x".repeat(2000), None).is_err());
        assert!(check_socket_filter("mcr_dataplane=debug,info", None).is_ok());
        assert!(check_socket_filter("trace", Some("mcr_controlplane")).is_ok());
    }

    #[test]
    fn atomic_write_replaces_file() {
        let dir = std::env::temp_dir().join(format!("mcr-aw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.json5");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
