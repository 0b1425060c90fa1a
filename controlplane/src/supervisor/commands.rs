//! What each control request does. Every command runs on the supervisor
//! thread, which owns the state it reads or changes.

use super::{FastState, Supervisor};
use crate::compile::{DesiredRule, Origin, RuleState};
use crate::control::api::{
    self, Added, ConfigChecked, ConfigText, CoreEntry, Cores, EngineStatsEntry, FastPathStatus,
    LogFilter, OutputStatsEntry, Pong, ProtocolState, Protocols, ReceiveRingStatus, ReloadRecord,
    ReloadSummary, Removed, RuleCounts, RuleEntry, RuleList, RuleStatsEntry, Saved, Subscribed,
    VersionInfo,
};
use crate::control::protocol::{EventCategory, EVENT_CATEGORIES};
use crate::control::server::Pending;
use crate::control::{ErrorCode, Request, Response, PROTOCOL_VERSION};
use mcr_config::{Config, Rule};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

impl Supervisor {
    pub(super) fn serve(&mut self, pending: Pending) {
        if self.control.is_subscribed(pending.client) {
            let resp = Response::error(
                ErrorCode::Subscribed,
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
        if let Ok(Request::PimQueryRpf { source }) = &pending.request {
            // An external provider answers later (pim_publish sends it).
            if let Some(resp) = self
                .pim
                .query_rpf(*source, pending.client, pending.id.clone())
            {
                self.control
                    .respond(pending.client, pending.id.as_ref(), &resp);
            }
            return;
        }
        self.peer = self.control.peer(pending.client);
        let response = match pending.request {
            Ok(req) => self.execute(req),
            Err(resp) => resp,
        };
        self.peer = None;
        self.control
            .respond(pending.client, pending.id.as_ref(), &response);
    }

    pub fn execute(&mut self, req: Request) -> Response {
        match req {
            Request::Ping => Response::ok(Pong { pong: true }),
            Request::Version => Response::ok(VersionInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                protocol: PROTOCOL_VERSION,
            }),
            Request::Status => Response::ok(self.status()),
            Request::List => Response::ok(self.list()),
            Request::Add { rule } => self.add(rule),
            Request::Remove { rule_id, name } => self.remove(rule_id, name),
            Request::Stats => Response::ok(self.stats()),
            Request::Cores => Response::ok(self.cores()),
            Request::ConfigShow => Response::ok(ConfigText {
                json5: self.running_config().to_json5(),
            }),
            Request::ConfigCheck { file } => {
                let target = match self.client_file(Some(file), "check") {
                    Ok(t) => t,
                    Err(resp) => return resp,
                };
                match self.load(&target) {
                    Ok((c, _)) => Response::ok(ConfigChecked {
                        file: target.shown().into(),
                        valid: true,
                        rules: c.rules.len(),
                    }),
                    Err(e) => {
                        Response::error(ErrorCode::InvalidConfig, self.shown_error(&target, &e))
                    }
                }
            }
            Request::ConfigSave { file } => self.config_save(file),
            Request::LogLevelGet => match &self.options.log_control {
                Some(l) => Response::ok(LogFilter {
                    filter: l.current(),
                }),
                None => Response::error(
                    ErrorCode::Unsupported,
                    "log levels cannot be changed in this build",
                ),
            },
            Request::LogLevelSet { level, target } => {
                let Some(l) = &self.options.log_control else {
                    return Response::error(
                        ErrorCode::Unsupported,
                        "log levels cannot be changed in this build",
                    );
                };
                const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
                let plain_word = !level.contains(['=', ',']);
                if (target.is_some() || plain_word)
                    && !LEVELS.contains(&level.to_ascii_lowercase().as_str())
                {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!(
                            "unknown log level '{level}'; use one of {}",
                            LEVELS.join(", ")
                        ),
                    );
                }
                if let Err(why) = check_socket_filter(&level, target.as_deref()) {
                    return Response::error(ErrorCode::InvalidArguments, why);
                }
                // A target is a module path (`mcr_dataplane::engine`): anything
                // else would be taken as part of the filter's syntax.
                if let Some(t) = &target {
                    if t.is_empty()
                        || !t
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    {
                        return Response::error(
                            ErrorCode::InvalidArguments,
                            format!(
                                "target '{}' is not a module path such as mcr_dataplane or mcr_controlplane::pim",
                                mcr_config::text::escape(t)
                            ),
                        );
                    }
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
                    Ok(()) => Response::ok(LogFilter {
                        filter: l.current(),
                    }),
                    Err(e) => Response::error(ErrorCode::InvalidArguments, e),
                }
            }
            Request::Reload { file, dry_run } => self.reload(file, dry_run),
            Request::IgmpGroups { interface } => {
                let now = self.igmp.now();
                let groups = self
                    .igmp
                    .protocol()
                    .groups(now)
                    .into_iter()
                    .filter(|g| interface.as_deref().is_none_or(|i| i == g.interface))
                    .collect();
                Response::ok(api::IgmpGroups { groups })
            }
            Request::Mroute => Response::ok(self.mroutes()),
            Request::IgmpInterfaces => {
                let now = self.igmp.now();
                Response::ok(api::IgmpInterfaces {
                    interfaces: self.igmp.protocol().interfaces(now),
                    not_running: self
                        .igmp
                        .not_running
                        .iter()
                        .map(|n| api::IgmpNotRunning {
                            interface: n.interface.clone(),
                            reason: n.reason.clone(),
                        })
                        .collect(),
                    runtime: self
                        .igmp_runtime
                        .iter()
                        .map(|(i, e)| api::IgmpRuntime {
                            interface: i.clone(),
                            enabled: *e,
                        })
                        .collect(),
                })
            }
            Request::IgmpEnable { interface } => self.igmp_toggle(interface, true),
            Request::IgmpDisable { interface } => self.igmp_toggle(interface, false),
            Request::Subscribe { .. } => Response::error(
                ErrorCode::InvalidRequest,
                "subscribe is answered on the connection itself",
            ),
            pim @ (Request::PimNeighbors
            | Request::PimInterfaces
            | Request::PimAddNeighbor { .. }
            | Request::PimRemoveNeighbor { .. }
            | Request::PimExternalNeighbors
            | Request::PimClearNeighbors { .. }
            | Request::PimAddRpfRoute { .. }
            | Request::PimRemoveRpfRoute { .. }
            | Request::PimListRpfRoutes
            | Request::PimClearRpfRoutes
            | Request::PimQueryRpf { .. }
            | Request::PimJoinState
            | Request::PimRp { .. }
            | Request::PimSetStaticRp { .. }
            | Request::PimSetRp { .. }) => {
                let config = self.config.clone();
                self.pim.request(pim, &config)
            }
            Request::MsdpPeers => Response::ok(self.msdp_peers()),
            Request::MsdpSaCache { group, peer } => Response::ok(self.msdp_sa_cache(group, peer)),
            Request::MsdpAddPeer {
                address,
                description,
                mesh_group,
                default_peer,
            } => self.msdp_add_peer(address, description, mesh_group, default_peer),
            Request::MsdpRemovePeer { address } => self.msdp_remove_peer(address),
        }
    }

    /// The running state as a config: the file's settings plus the rules as
    /// they run now (runtime additions included, runtime removals excluded).
    pub fn running_config(&self) -> Config {
        let mut c = self.config.clone();
        c.rules
            .extend(self.runtime_rules.iter().map(|d| d.rule.clone()));
        // RP mappings changed at run time (`pim set-static-rp`, `set-rp`).
        c.pim = self.pim.running_pim(&self.config);
        // `cores` takes effect only at start: a reload that changed it left
        // the engines where they were, and that is what runs.
        c.cores = self.started_cores.clone();
        // Likewise the receive ring of the capture sockets.
        c.data_plane.receive_ring = self.captures.ring_frames();
        c
    }

    fn status(&self) -> api::Status {
        self.status_from(&self.rule_totals())
    }

    /// `status` from per-rule totals already summed (see
    /// [`Supervisor::rule_totals`]); metrics use the same.
    pub(super) fn status_from(&self, totals: &[super::RuleTotals]) -> api::Status {
        let count =
            |f: fn(&RuleState) -> bool| self.statuses.iter().filter(|s| f(&s.state)).count();
        // `running` says what runs, whatever the file asks for.
        let protocol = |configured: bool| ProtocolState {
            configured,
            running: false,
        };
        let pim_running = self.pim.running();
        api::Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_secs: self.uptime().as_secs(),
            config_file: self.options.config_path.clone(),
            config_hash: self.config_hash.map(|h| format!("{h:016x}")),
            control_socket: self.control.path().to_path_buf(),
            namespace: crate::namespace::current(),
            cores: self.engines.cpus().to_vec(),
            rules: RuleCounts {
                total: self.statuses.len(),
                active: count(|s| matches!(s, RuleState::Active)),
                partial: count(|s| matches!(s, RuleState::Partial { .. })),
                inactive: count(|s| matches!(s, RuleState::Inactive { .. })),
            },
            packets: totals.iter().map(|r| r.packets).sum(),
            bytes: totals.iter().map(|r| r.bytes).sum(),
            drops: self.drops().total(),
            protocols: Protocols {
                igmp: ProtocolState {
                    configured: self.config.igmp.is_enabled(),
                    running: self.igmp.is_running(),
                },
                pim: ProtocolState {
                    running: pim_running,
                    ..protocol(self.config.pim.enabled)
                },
                msdp: ProtocolState {
                    configured: self.config.msdp.enabled,
                    running: self.msdp.running(),
                },
            },
            kernel_fast_path: self.fast_path_status(),
            receive_ring: match self.captures.ring_usage() {
                (0, _, _) => None,
                (sockets, slots, bytes) => Some(ReceiveRingStatus {
                    sockets,
                    slots,
                    bytes,
                }),
            },
            shared_inputs: self.shared_inputs(),
            control_clients: self.control.client_count(),
            events_dropped: self.control.events_dropped(),
            last_reload: self.last_reload.clone(),
            reloads: self.reloads,
            rpf_provider: self.pim.rpf_status(),
            mroute_socket: self.mroute.status(),
        }
    }

    /// Whether the kernel fast path runs, where, and for how many rules.
    fn fast_path_status(&self) -> FastPathStatus {
        match &self.fast {
            FastState::Open(f) if self.config.data_plane.kernel_fast_path => FastPathStatus {
                enabled: true,
                rules: f.rule_count(),
                interfaces: f
                    .interfaces()
                    .iter()
                    .map(|i| self.interface_name(*i))
                    .collect(),
                error: None,
            },
            other => FastPathStatus {
                enabled: false,
                rules: 0,
                interfaces: Vec::new(),
                error: match other {
                    FastState::Failed(why) => Some(why.clone()),
                    _ => None,
                },
            },
        }
    }

    fn list(&self) -> RuleList {
        let states: BTreeMap<&str, &RuleState> = self
            .statuses
            .iter()
            .map(|s| (s.id.as_str(), &s.state))
            .collect();
        let rules = self
            .desired()
            .iter()
            .map(|d| {
                let id = d.rule.id().to_string();
                let state = states.get(id.as_str()).map(|s| (*s).clone());
                let (path, path_reason) = self.rule_path(&id);
                RuleEntry {
                    id,
                    name: d.rule.name.clone(),
                    input: d.rule.input.clone(),
                    outputs: d.rule.outputs.clone(),
                    origin: d.origin,
                    state,
                    path,
                    path_reason,
                }
            })
            .collect();
        RuleList { rules }
    }

    fn add(&mut self, rule: Rule) -> Response {
        let clash = self.may_clash(&rule);
        if let Err(msg) = self.check_new_rule(&rule, clash) {
            return Response::error(ErrorCode::InvalidRule, msg);
        }
        let id = rule.id().to_string();
        self.runtime_rules.push(DesiredRule {
            rule: rule.clone(),
            origin: Origin::Runtime,
        });
        self.apply_rule_change(super::incremental::RuleChange::Added(&rule));
        tracing::info!(rule = %id, "rule added at run time");
        // The new rule's status is the last.
        let state = self
            .statuses
            .iter()
            .rev()
            .find(|s| s.id == id)
            .map(|s| s.state.clone());
        Response::ok(Added { id, state })
    }

    /// Validates a rule to add against the running rules, with the same
    /// messages as a config file holding them all would get, without
    /// re-validating every running rule (that made each `add` O(rules)).
    /// `clash`: a running rule may have its input or name (else the scan
    /// for it is skipped).
    fn check_new_rule(&self, rule: &Rule, clash: bool) -> Result<(), String> {
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
        for (j, r) in running.enumerate().take_while(|_| clash) {
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
            multicast_ttl,
            pinning,
            metrics,
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
            multicast_ttl: *multicast_ttl,
            pinning: pinning.clone(),
            metrics: metrics.clone(),
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
            return Response::error(ErrorCode::InvalidArguments, "remove needs an id or a name");
        }
        if let (Some(i), Some(n)) = (&id, &name) {
            if i != n {
                // Two different rules named: neither is removed rather than
                // one silently.
                return Response::error(
                    ErrorCode::InvalidArguments,
                    "give 'rule_id' or 'name', not two different ones",
                );
            }
        }
        let removed = if let Some(pos) = self.runtime_rules.iter().position(|d| matches(&d.rule)) {
            self.runtime_rules.remove(pos).rule
        } else if let Some(pos) = self.config.rules.iter().position(matches) {
            self.config_edited = true;
            self.config.rules.remove(pos)
        } else {
            let what = id
                .map(|i| format!("id '{i}'"))
                .or(name.map(|n| format!("name '{n}'")));
            return Response::error(
                ErrorCode::NotFound,
                format!("no rule with {}", what.unwrap_or_default()),
            );
        };
        let rid = removed.id().to_string();
        self.apply_rule_change(super::incremental::RuleChange::Removed(&removed));
        tracing::info!(rule = %rid, "rule removed at run time");
        Response::ok(Removed { removed: rid })
    }

    fn stats(&self) -> api::Stats {
        self.stats_from(&self.rule_totals())
    }

    /// `stats` from per-rule totals already summed; metrics use the same.
    pub(super) fn stats_from(&self, totals: &[super::RuleTotals]) -> api::Stats {
        let base = self.rates.base();
        let rules = totals
            .iter()
            .map(|r| {
                let rate = super::rates::RateTracker::rule(base.as_ref(), r);
                RuleStatsEntry {
                    id: r.id.clone(),
                    packets: r.packets,
                    bytes: r.bytes,
                    pps: rate.pps,
                    bps: rate.bps,
                    outputs: r
                        .outputs
                        .iter()
                        .enumerate()
                        .map(|(i, o)| OutputStatsEntry {
                            output: o.output.clone(),
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
        let engines = self
            .engines
            .stats()
            .iter()
            .map(|e| EngineStatsEntry {
                engine: e.engine,
                cpu: e.cpu,
                frames: e.frames,
                pps: self.rates.engine_pps(e.engine, e.frames),
                batched_sends: e.batched_sends,
                batched_datagrams: e.batched_datagrams,
                drops: e.drops,
            })
            .collect();
        api::Stats {
            rules,
            engines,
            drops: self.drops(),
        }
    }

    fn cores(&self) -> Cores {
        let inputs: Vec<String> = self
            .desired()
            .iter()
            .zip(&self.statuses)
            .filter(|(_, s)| !matches!(s.state, RuleState::Inactive { .. }))
            .map(|(d, _)| d.rule.input.interface.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let engines = self
            .engines
            .stats()
            .iter()
            .map(|e| CoreEntry {
                engine: e.engine,
                cpu: e.cpu,
                frames: e.frames,
                pps: self.rates.engine_pps(e.engine, e.frames),
                interfaces: inputs.clone(),
                drops: e.drops.total(),
                table_generation: e.generation,
            })
            .collect();
        Cores { engines }
    }

    fn config_save(&self, file: Option<PathBuf>) -> Response {
        let target = match self.client_file(file, "save") {
            Ok(t) => t,
            Err(resp) => return resp,
        };
        let shown = target.shown();
        if Path::new(&shown) == self.control.path() {
            return Response::error(
                ErrorCode::NotPermitted,
                format!("{shown} is the control socket; config save never replaces it"),
            );
        }
        let text = self.running_config().to_json5();
        let written = match &target {
            ClientFile::Config(path) => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = path.file_name().unwrap_or_default();
                crate::files::open_dir(dir).and_then(|d| {
                    crate::files::write_atomically_at(d.as_fd(), name, text.as_bytes(), 0o640)
                })
            }
            ClientFile::InSaveDir { name, .. } => match &self.save_dir {
                Some(d) => {
                    crate::files::write_atomically_at(d.as_fd(), name, text.as_bytes(), 0o640)
                }
                None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            },
        };
        match written {
            Ok(()) => Response::ok(Saved { file: shown.into() }),
            Err(e) => Response::error(
                ErrorCode::Io,
                format!("cannot write {}: {e}", mcr_config::text::escape(&shown)),
            ),
        }
    }

    /// Which file a client may have read or written: `file`, or the config
    /// file when `None`. Only two kinds are allowed: the config file mcrd
    /// runs with, and files directly inside `--save-dir`. The answer to any
    /// other path depends on the path's text alone, never on the file
    /// system, so a refusal tells nothing about what exists.
    fn client_file(&self, file: Option<PathBuf>, verb: &str) -> Result<ClientFile, Response> {
        let config = self.options.config_path.as_deref();
        let Some(path) = file.or_else(|| config.map(Path::to_path_buf)) else {
            let msg = match verb {
                "save" => "mcrd runs without --config: name the file to write",
                _ => {
                    "mcrd runs without --config: name the file to load (mcrctl reload --file FILE)"
                }
            };
            return Err(Response::error(ErrorCode::InvalidArguments, msg));
        };
        if Some(path.as_path()) == config {
            return Ok(ClientFile::Config(path));
        }
        if let (Some(dir), Some(name)) = (self.options.save_dir.as_deref(), path.file_name()) {
            if path.parent() == Some(dir)
                && path
                    .components()
                    .all(|c| c != std::path::Component::ParentDir)
            {
                return Ok(ClientFile::InSaveDir {
                    name: name.to_os_string(),
                    path,
                });
            }
        }
        let allowed = match (config, self.options.save_dir.as_deref()) {
            (Some(c), Some(d)) => format!(
                "its config file {} or a file directly in {}",
                c.display(),
                d.display()
            ),
            (Some(c), None) => format!(
                "its config file {} (start mcrd with --save-dir DIR to allow files in DIR)",
                c.display()
            ),
            (None, Some(d)) => format!("files directly in {}", d.display()),
            (None, None) => "no file (start mcrd with --config FILE or --save-dir DIR)".to_string(),
        };
        Err(Response::error(
            ErrorCode::NotPermitted,
            format!(
                "cannot {verb} {}: on a client's request mcrd reads and writes only {allowed}",
                mcr_config::text::escape(&path.to_string_lossy())
            ),
        ))
    }

    /// What a client is told about a file that failed to load: every
    /// problem when it could read the file itself, else only that (the
    /// problems quote the file's contents; they are in the log).
    fn shown_error(&self, target: &ClientFile, e: &mcr_config::ConfigError) -> String {
        match &self.peer {
            Some(peer) if !self.peer_can_read(target, peer) => format!(
                "cannot load {}: the requesting user (uid {}) may not read it; the problems are in mcrd's log",
                mcr_config::text::escape(&target.shown()),
                peer.uid()
            ),
            _ => e.to_string(),
        }
    }

    /// Whether the client process could read `target` with its own rights,
    /// judged from the file's owner, group and mode (not ACLs; when in
    /// doubt, no).
    fn peer_can_read(&self, target: &ClientFile, peer: &nix::sys::socket::UnixCredentials) -> bool {
        if peer.uid() == 0 {
            return true;
        }
        let st = match target {
            ClientFile::Config(path) => nix::sys::stat::stat(path.as_path()).ok(),
            ClientFile::InSaveDir { name, .. } => self
                .save_dir
                .as_ref()
                .and_then(|d| crate::files::stat_at(d.as_fd(), name).ok()),
        };
        let Some(st) = st else {
            return false;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return false;
        }
        if st.st_uid == peer.uid() {
            return st.st_mode & 0o400 != 0;
        }
        if st.st_mode & 0o040 != 0 && peer_groups(peer).contains(&st.st_gid) {
            return true;
        }
        st.st_mode & 0o004 != 0
    }

    /// Reads, validates and hashes a client-allowed file from one
    /// descriptor (see [`mcr_config::load_file_hashed`]).
    fn load(&self, target: &ClientFile) -> Result<(Config, u64), mcr_config::ConfigError> {
        match target {
            ClientFile::Config(path) => mcr_config::load_file_hashed(path),
            ClientFile::InSaveDir { name, path } => {
                let shown = path.display().to_string();
                match &self.save_dir {
                    Some(d) => mcr_config::load_file_at(d.as_fd(), Path::new(name), &shown),
                    // InSaveDir exists only when --save-dir was given.
                    None => Err(mcr_config::Diagnostic::new("", "no --save-dir").into()),
                }
            }
        }
    }

    /// `igmp enable|disable --interface IF`: a runtime change, kept until
    /// the next reload (which makes the file's `igmp` section the truth
    /// again) and not written by `config save`.
    fn igmp_toggle(&mut self, interface: String, enabled: bool) -> Response {
        if let Err(e) = mcr_config::validate_interface_name(&interface) {
            return Response::error(ErrorCode::InvalidArguments, e);
        }
        let file_on = self.config.igmp.is_enabled()
            && self.config.igmp.querier_interfaces.contains(&interface);
        if file_on == enabled {
            // Back to what the file says: no runtime change left.
            self.igmp_runtime.remove(&interface);
        } else {
            self.igmp_runtime.insert(interface.clone(), enabled);
        }
        self.sync_igmp();
        let running = self
            .igmp
            .protocol()
            .running_interfaces()
            .any(|i| *i.name == *interface);
        tracing::info!(interface = %mcr_config::text::escape(&interface), enabled, running, "IGMP changed at run time");
        let runtime = self.igmp_runtime.contains_key(&interface);
        Response::ok(api::IgmpToggled {
            interface,
            enabled,
            running,
            runtime,
        })
    }

    /// Re-reads the config file (or `file`) and applies the difference.
    /// The file wins: the running rules become exactly the file's, so rules
    /// added at run time and not in the file are removed (and reported).
    pub fn reload(&mut self, file: Option<PathBuf>, dry_run: bool) -> Response {
        let t0 = Instant::now();
        let target = match self.client_file(file, "reload") {
            Ok(t) => t,
            Err(resp) => {
                let msg = match &resp {
                    Response::Err(e) => e.message.clone(),
                    Response::Ok(_) => String::new(),
                };
                return self.record_reload(false, msg, dry_run, resp);
            }
        };
        let path = PathBuf::from(target.shown());
        // The running config's own file, with no run-time rule changes: if
        // its bytes are the ones running, there is nothing to parse or apply
        // (an unchanged reload of 100,000 rules was seconds of parsing).
        let running_file = matches!(&target, ClientFile::Config(p)
            if self.options.config_path.as_deref() == Some(p.as_path()))
            && self.runtime_rules.is_empty()
            && !self.config_edited;
        let loaded = match (&target, self.config_hash) {
            (ClientFile::Config(p), Some(known)) if running_file => {
                mcr_config::load_file_if_changed(p, known)
            }
            _ => self.load(&target).map(Some),
        };
        // One open, one read: what is validated is what is hashed and
        // applied (the path is not opened again below).
        let (new, hash) = match loaded {
            Ok(Some(c)) => c,
            Ok(None) => return self.reload_unchanged(path, dry_run, t0),
            Err(e) => {
                let msg = e.to_string();
                for line in msg.lines() {
                    tracing::error!(
                        "reload refused, running state kept: {}",
                        mcr_config::text::escape(line)
                    );
                }
                let told = self.shown_error(&target, &e);
                return self.record_reload(
                    false,
                    told.clone(),
                    dry_run,
                    Response::error(ErrorCode::InvalidConfig, told),
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
        let mut summary = ReloadSummary {
            file: path.clone(),
            dry_run,
            added: diff.added.clone(),
            removed: diff.removed.clone(),
            changed: diff.changed.clone(),
            unchanged: diff.unchanged,
            runtime_rules_removed: runtime_removed,
            sections_changed: sections_changed(&self.config, &new)
                .into_iter()
                .map(String::from)
                .collect(),
            note: self.runtime_undone_note(),
            parse_us: None,
            recompiled: None,
            compile_swap_us: None,
        };
        if dry_run {
            return Response::ok(summary);
        }
        if new.cores != self.config.cores {
            add_note(
                &mut summary.note,
                "'cores' changed: takes effect at the next restart of mcrd".into(),
            );
        }
        if new.data_plane.receive_ring != self.captures.ring_frames() {
            add_note(
                &mut summary.note,
                format!(
                    "'data_plane.receive_ring' changed ({} -> {}): takes effect at the next restart of mcrd",
                    self.captures.ring_frames(),
                    new.data_plane.receive_ring
                ),
            );
        }
        // Nothing the table depends on changed (same rules in the same order,
        // no runtime rule to drop, same data-plane settings, same default
        // TTL): keep the running table. Recompiling 100,000 unchanged rules,
        // rejoining and refiltering cost seconds and changed nothing.
        let same_table = self.runtime_rules.is_empty()
            && self.config.rules == new.rules
            && self.config.data_plane == new.data_plane
            && self.config.multicast_ttl == new.multicast_ttl;
        self.config = new;
        self.config_edited = false;
        self.runtime_rules.clear();
        self.pim.config_reloaded();
        self.igmp_runtime.clear();
        let t1 = Instant::now();
        self.sync_igmp();
        if same_table {
            self.sync_protocols();
        } else {
            self.recompile();
        }
        summary.recompiled = Some(!same_table);
        if let Err(e) = self.sync_metrics() {
            tracing::error!("{e:#}");
            add_note(&mut summary.note, format!("{e:#}"));
        }
        summary.parse_us = Some(parsed.as_micros() as u64);
        summary.compile_swap_us = Some(t1.elapsed().as_micros() as u64);
        if self.options.config_path.as_deref() == Some(path.as_path()) {
            self.config_hash = Some(hash);
        }
        let msg = format!(
            "{} added, {} removed, {} changed, {} unchanged",
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len(),
            diff.unchanged
        );
        tracing::info!(file = %mcr_config::text::escape(&path.to_string_lossy()), "configuration reloaded: {msg}");
        self.record_reload(true, msg, false, Response::ok(summary))
    }

    /// A reload of the running config file whose bytes have not changed:
    /// the rules and sections stay as they run, nothing is recompiled; run-
    /// time protocol changes are dropped as on any reload.
    fn reload_unchanged(&mut self, path: PathBuf, dry_run: bool, t0: Instant) -> Response {
        let unchanged = self.config.rules.len();
        let mut summary = ReloadSummary {
            file: path,
            dry_run,
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged,
            runtime_rules_removed: Vec::new(),
            sections_changed: Vec::new(),
            note: None,
            parse_us: None,
            recompiled: None,
            compile_swap_us: None,
        };
        add_note(
            &mut summary.note,
            "the file is unchanged (same bytes as the running config)".into(),
        );
        if let Some(undone) = self.runtime_undone_note() {
            add_note(&mut summary.note, undone);
        }
        if dry_run {
            return Response::ok(summary);
        }
        let read = t0.elapsed();
        let t1 = Instant::now();
        self.pim.config_reloaded();
        self.igmp_runtime.clear();
        self.sync_igmp();
        self.sync_protocols();
        summary.recompiled = Some(false);
        summary.parse_us = Some(read.as_micros() as u64);
        summary.compile_swap_us = Some(t1.elapsed().as_micros() as u64);
        let msg = format!("0 added, 0 removed, 0 changed, {unchanged} unchanged (file unchanged)");
        tracing::info!("configuration reloaded: {msg}");
        self.record_reload(true, msg, false, Response::ok(summary))
    }

    /// What a reload drops of the changes made at run time to protocol
    /// settings (`pim set-rp`, `set-static-rp`, `igmp enable|disable`),
    /// for the summary's note: the operator sees what goes back to the
    /// file, on a dry run too.
    fn runtime_undone_note(&self) -> Option<String> {
        let mut v = self.pim.runtime_changes();
        v.extend(self.igmp_runtime.iter().map(|(ifname, on)| {
            format!(
                "igmp {} on {}",
                if *on { "enabled" } else { "disabled" },
                mcr_config::text::escape(ifname)
            )
        }));
        (!v.is_empty()).then(|| format!("runtime changes undone: {}", v.join(", ")))
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

/// A file a control client named and may have read or written (see
/// `Supervisor::client_file`).
enum ClientFile {
    /// The config file mcrd runs with (`--config`).
    Config(PathBuf),
    /// An entry directly inside `--save-dir`, resolved in the directory
    /// opened at start and never through a symlink.
    InSaveDir { name: OsString, path: PathBuf },
}

impl ClientFile {
    /// The path as the client named it, for answers.
    fn shown(&self) -> String {
        match self {
            ClientFile::Config(p) | ClientFile::InSaveDir { path: p, .. } => {
                p.to_string_lossy().into_owned()
            }
        }
    }
}

/// A client's groups: its primary group, and the supplementary ones from
/// /proc/PID/status (`SO_PEERCRED` has only the primary one).
fn peer_groups(peer: &nix::sys::socket::UnixCredentials) -> Vec<u32> {
    let mut groups = vec![peer.gid()];
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", peer.pid())) {
        if let Some(line) = status.lines().find_map(|l| l.strip_prefix("Groups:")) {
            groups.extend(
                line.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    groups
}

/// Opens `--save-dir` once at start. It must be a directory that no group
/// or other user can write, since files in it are read on clients' request
/// and replaced by renames there.
pub(super) fn open_save_dir(path: &Path) -> anyhow::Result<OwnedFd> {
    let shown = path.display();
    let fd = crate::files::open_dir(path)
        .map_err(|e| anyhow::anyhow!("--save-dir {shown}: cannot open the directory: {e}"))?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| anyhow::anyhow!("--save-dir {shown}: {e}"))?;
    if st.st_mode & 0o022 != 0 {
        anyhow::bail!(
            "--save-dir {shown} is writable by its group or by others (mode {:o}); make it writable only by its owner (chmod go-w {shown})",
            st.st_mode & 0o7777
        );
    }
    Ok(fd)
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
    let names: Vec<&str> = if events.is_empty() {
        EVENT_CATEGORIES.to_vec()
    } else {
        events.iter().map(String::as_str).collect()
    };
    let mut subscribed = Vec::with_capacity(names.len());
    for name in names {
        match name.parse::<EventCategory>() {
            Ok(c) => subscribed.push(c),
            Err(_) => {
                return Response::error(
                    ErrorCode::InvalidArguments,
                    format!(
                        "unknown event category '{name}'; categories: {}",
                        EVENT_CATEGORIES.join(", ")
                    ),
                )
            }
        }
    }
    Response::ok(Subscribed { subscribed })
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
    if old.multicast_ttl != new.multicast_ttl {
        v.push("multicast_ttl");
    }
    if old.pinning != new.pinning {
        v.push("pinning");
    }
    if old.metrics != new.metrics {
        v.push("metrics");
    }
    v
}

/// Appends `text` to a reload summary's note (`; ` between notes).
fn add_note(note: &mut Option<String>, text: String) {
    *note = Some(match note.take() {
        Some(n) => format!("{n}; {text}"),
        None => text,
    });
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
}
