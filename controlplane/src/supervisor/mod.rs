//! The supervisor: the control-plane thread that owns all state.
//!
//! It holds the desired rules, watches interfaces, compiles and publishes
//! forwarding tables, holds the group joins and answers signals. Nothing
//! here runs on the packet path: the engines only see the tables it
//! publishes.

mod claims;
mod commands;
mod incremental;
mod msdp_commands;
mod rates;

use crate::compile::{compile_with_members, DesiredRule, Origin, RuleState, RuleStatus};
use crate::control::api::ReloadRecord;
use crate::control::ControlServer;
use crate::interfaces::{Interfaces, LinkMonitor};
use crate::metrics::{MetricsServer, ServerLimits, Snapshot};
use mcr_config::Config;
use mcr_dataplane::capture::Captures;
use mcr_dataplane::fastpath::FastPath;
use mcr_dataplane::membership::Memberships;
use mcr_dataplane::{EngineParams, EngineSet, RuleStats, TableHandle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How mcrd was asked to run.
#[derive(Debug)]
pub struct Options {
    pub config_path: Option<PathBuf>,
    pub control_socket_path: PathBuf,
    /// Group owning the control socket (overrides the config file's).
    pub control_socket_group: Option<String>,
    /// User to switch to after opening privileged resources (overrides the
    /// config file's `user`).
    pub user: Option<String>,
    /// FNV-1a hash of the config file's bytes as read at start (from the
    /// same read that produced the config; see `mcr_config::load_file_hashed`).
    pub config_hash: Option<u64>,
    /// The one directory (besides the config file itself) where control
    /// clients may have files read (`reload --file`, `config check`) or
    /// written (`config save FILE`); see `docs/control-protocol.md`.
    pub save_dir: Option<PathBuf>,
    /// Changes log levels at run time (`mcrctl log-level`).
    pub log_control: Option<Box<dyn LogControl>>,
    /// Serve metrics here (overrides the config file's `metrics.listen`).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// What the binary gives the supervisor to read and change log filters.
pub trait LogControl: Send {
    fn current(&self) -> String;
    fn set(&self, filter: &str) -> Result<(), String>;
}

impl std::fmt::Debug for dyn LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogControl({})", self.current())
    }
}

/// Signals, as flags the loop polls, plus a socket that becomes readable
/// when one arrives, so the loop wakes at once instead of at its next poll
/// timeout.
#[derive(Clone, Default)]
pub struct Signals {
    pub terminate: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    wake: Option<Arc<std::os::unix::net::UnixStream>>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let s = Signals {
            wake: Some(Arc::new(rx)),
            ..Signals::default()
        };
        let all = [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ];
        for sig in all {
            signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
        }
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&s.terminate))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&s.reload))?;
        Ok(s)
    }

    /// The fd that turns readable on a signal, to poll with the others.
    fn wake_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.wake.as_ref().map(|w| w.as_raw_fd())
    }

    /// Empties the wake socket (the flags say what arrived).
    fn drain_wake(&self) {
        use std::io::Read;
        if let Some(w) = &self.wake {
            let mut buf = [0u8; 64];
            while matches!((&**w).read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// Per-rule counters summed over the engines.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleTotals {
    pub id: String,
    pub packets: u64,
    pub bytes: u64,
    pub outputs: Vec<mcr_dataplane::stats::OutputStats>,
}

pub struct Supervisor {
    options: Options,
    config: Config,
    runtime_rules: Vec<DesiredRule>,
    interfaces: Interfaces,
    statuses: Vec<RuleStatus>,
    generation: u64,
    table: TableHandle,
    engines: EngineSet,
    memberships: Memberships,
    captures: Captures,
    monitor: LinkMonitor,
    control: ControlServer,
    started: Instant,
    config_hash: Option<u64>,
    /// A rule of the file was removed at run time (`mcrctl remove`): the
    /// running rules differ from the file even when its bytes do not.
    config_edited: bool,
    /// `cores` as the engines were started with (reloads do not move them).
    started_cores: Option<Vec<usize>>,
    last_reload: Option<ReloadRecord>,
    /// Successful reloads since start.
    reloads: u64,
    rates: rates::RateTracker,
    fast: FastState,
    /// Whether the fast path forwarded by the last table, and why each rule
    /// was off it (None: on it), to log what changes.
    fast_was_on: Option<bool>,
    /// This instance's hold on its input interfaces (a second mcrd on one
    /// is reported).
    claims: claims::InputClaims,
    off_fast: BTreeMap<String, Option<String>>,
    /// `options.save_dir`, opened once at start: client-named files are
    /// resolved in this directory, never through its path again.
    save_dir: Option<std::os::fd::OwnedFd>,
    /// Who sent the request being executed (None for SIGHUP and tests).
    peer: Option<nix::sys::socket::UnixCredentials>,
    /// The Prometheus endpoint, when asked for.
    metrics: Option<MetricsServer>,
    /// PIM (neighbours, DR) and the RPF provider.
    pim: crate::pim::PimRuntime,
    /// The IGMP instance and its sockets.
    igmp: crate::igmp::IgmpRunner,
    /// `mcrctl igmp enable|disable` at run time, by interface name (true:
    /// enabled). Cleared by reload, like runtime rules; not written by
    /// `config save`.
    igmp_runtime: BTreeMap<String, bool>,
    /// The MRIB: every origin's routes (PIM, IGMP proxy, MSDP, static)
    /// merged, and IGMP's local-member state. Its one owner; the protocols
    /// write it through their `Action::Mrib`, the route data path reads
    /// its diffs.
    mrib: mcr_protocols::Mrib,
    /// The route data path: the mroute socket and the kernel MFC.
    mroute: crate::mroute::Mroute,
    /// IGMP proxying (RFC 4605), when `igmp.proxy` is set.
    proxy: crate::proxy::IgmpProxy,
    /// MSDP sessions and the SA cache.
    msdp: crate::msdp::MsdpRuntime,
    /// How many rules of the table need each group join (see
    /// `incremental`).
    join_users: std::collections::HashMap<mcr_dataplane::membership::Join, u32>,
    /// The running rules' inputs and names (None: rebuilt when needed).
    rule_keys: Option<incremental::RuleKeys>,
}

/// The kernel fast path as far as this process got with it.
pub(super) enum FastState {
    /// Never asked for (or asked for again after a failure).
    Closed,
    /// Loaded. Switched off later by config, it stays open with nothing
    /// attached, so the counts it made stay in the rules' totals.
    Open(Box<FastPath>),
    /// The config asks for it but BPF cannot be used; why.
    Failed(String),
}

/// How often the interface list is rescanned even without a netlink
/// notification (a lost notification costs at most this long).
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);
const POLL_INTERVAL_MS: u64 = 100;
/// Rules that get their own `final counters` line at exit.
const FINAL_COUNTER_LINES: usize = 1000;
/// How long one round may spend executing control requests before it looks
/// at signals, interface events and the other fds again.
const SERVE_BUDGET: Duration = Duration::from_millis(20);

impl Supervisor {
    pub fn start(options: Options, config: Config) -> anyhow::Result<Supervisor> {
        let started_cores = config.cores.clone();
        // The socket first: a second mcrd on the same path must be refused
        // before it touches anything else.
        let group = options
            .control_socket_group
            .clone()
            .or_else(|| config.control_socket_group.clone());
        let control = ControlServer::bind(&options.control_socket_path, group.as_deref())?;
        let config_hash = options.config_hash;
        let save_dir = match &options.save_dir {
            Some(d) => Some(commands::open_save_dir(d)?),
            None => None,
        };
        let cpus = match &config.cores {
            Some(c) => c.clone(),
            None => online_cpus(),
        };
        let allowed = online_cpus();
        if let Some(bad) = cpus.iter().find(|c| !allowed.contains(c)) {
            anyhow::bail!(
                "cores: CPU {bad} is not available to mcrd (allowed CPUs: {allowed:?}); fix 'cores' in the config"
            );
        }
        // Checked like `cores` so a file that pins to a CPU without an
        // engine fails now, not when pinning starts being acted on.
        for (iface, pinned) in &config.pinning {
            if let Some(bad) = pinned.iter().find(|c| !cpus.contains(c)) {
                anyhow::bail!(
                    "pinning.{iface}: CPU {bad} runs no data-plane engine (engine CPUs: {cpus:?}); fix 'pinning' in the config"
                );
            }
        }
        if !config.pinning.is_empty() {
            tracing::warn!(
                "'pinning' is validated but not acted on yet: every engine captures on every input interface"
            );
        }
        raise_memlock_limit();
        raise_nofile_limit();
        // TCP 639 is privileged: bound now, before the user switch below,
        // when the file asks for MSDP (a reload that adds it later may
        // lack the capability; see docs/deployment.md#msdp).
        let mut msdp = crate::msdp::MsdpRuntime::new();
        if crate::msdp::protocol_config(&config.msdp).is_some() {
            msdp.bind_listener();
        }
        // Switch users before any thread starts: capabilities are per thread
        // and the engines must inherit the reduced set.
        let user =
            crate::privilege::choose_user(options.user.as_deref().or(config.user.as_deref()));
        if let Some(user) = &user {
            let target = nix::unistd::User::from_name(user).ok().flatten();
            if target.as_ref().map(|u| u.uid) != Some(nix::unistd::geteuid()) {
                // The socket stays owned by the user mcrd started as (and
                // its configured group): access to the relay is the
                // group's, never the runtime user's by accident.
                if let Some(u) = &target {
                    if crate::privilege::is_shared_account(user, u.uid.as_raw()) {
                        tracing::warn!(
                            "user '{user}' is an account other services share: any process running as {user} can signal mcrd (SIGTERM stops the relay, SIGHUP reloads it); create a dedicated user such as mcr (see docs/deployment.md#security)"
                        );
                    }
                }
                crate::privilege::switch_user(user)?;
                if let Some(path) = &options.config_path {
                    crate::privilege::warn_if_unreadable(path, user);
                }
            }
        }
        crate::privilege::check_capture_allowed(
            config.rules.first().map(|r| r.input.interface.as_str()),
        )?;
        let monitor = LinkMonitor::open()
            .map_err(|e| anyhow::anyhow!("cannot watch interfaces (netlink): {e}"))?;
        let table = TableHandle::default();
        let engines = EngineSet::start(&cpus, table.clone(), EngineParams::default())?;
        tracing::info!(cpus = ?cpus, "data-plane engines started");
        let captures = Captures::with_ring(config.data_plane.receive_ring);
        let mut sup = Supervisor {
            options,
            config,
            runtime_rules: Vec::new(),
            interfaces: Interfaces::default(),
            statuses: Vec::new(),
            generation: 0,
            table,
            engines,
            memberships: Memberships::default(),
            captures,
            monitor,
            control,
            started: Instant::now(),
            config_hash,
            config_edited: false,
            started_cores,
            last_reload: None,
            reloads: 0,
            rates: rates::RateTracker::default(),
            fast: FastState::Closed,
            fast_was_on: None,
            claims: claims::InputClaims::default(),
            off_fast: BTreeMap::new(),
            save_dir,
            peer: None,
            metrics: None,
            pim: crate::pim::PimRuntime::new(),
            igmp: crate::igmp::IgmpRunner::default(),
            igmp_runtime: BTreeMap::new(),
            mrib: mcr_protocols::Mrib::new(mcr_protocols::MribLimits::default()),
            mroute: crate::mroute::Mroute::default(),
            proxy: crate::proxy::IgmpProxy::default(),
            msdp,
            join_users: Default::default(),
            rule_keys: None,
        };
        sup.interfaces = Interfaces::scan()?;
        sup.sync_igmp();
        sup.recompile();
        // At start a metrics address that cannot be bound is fatal: the
        // operator asked for it (at reload it is logged and reported).
        sup.sync_metrics()?;
        if !sup
            .engines
            .wait_for_generation(sup.generation, Duration::from_secs(2))
        {
            tracing::warn!("engines slow to take the first forwarding table");
        }
        let active = sup
            .statuses
            .iter()
            .filter(|s| !matches!(s.state, RuleState::Inactive { .. }))
            .count();
        tracing::info!(
            rules = sup.statuses.len(),
            active,
            control_socket = %sup.options.control_socket_path.display(),
            "mcrd ready"
        );
        Ok(sup)
    }

    /// Runs until SIGTERM/SIGINT, then stops the engines and logs the final
    /// counters.
    pub fn run(mut self, signals: &Signals) -> anyhow::Result<()> {
        let mut last_scan = Instant::now();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !signals.terminate.load(Ordering::Relaxed) {
            fds.clear();
            fds.push(libc::pollfd {
                fd: self.monitor.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            if let Some(fd) = signals.wake_fd() {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            self.control.poll_fds(&mut fds);
            self.pim.poll_fds(&mut fds);
            self.igmp.poll_fds(&mut fds);
            self.mroute.poll_fd(&mut fds);
            self.msdp.poll_fds(&mut fds);
            let mut timeout = self
                .control
                .poll_timeout(Duration::from_millis(POLL_INTERVAL_MS));
            // The next PIM, RPF provider or IGMP deadline bounds the sleep
            // (+1 ms so a deadline is past when the loop wakes, rather than
            // polled for in a busy loop).
            for t in [
                self.pim.timeout(),
                self.igmp.poll_timeout(),
                self.msdp.timeout(),
            ]
            .into_iter()
            .flatten()
            {
                timeout = timeout.min(t + Duration::from_millis(1));
            }
            // SAFETY: `fds` is a valid array of pollfd of the length passed.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    timeout.as_millis() as i32,
                )
            };
            signals.drain_wake();
            if signals.terminate.load(Ordering::Relaxed) {
                break;
            }
            self.pim.poll();
            self.pim_publish();
            self.step_igmp();
            self.step_routes();
            self.msdp.poll();
            self.msdp_publish();
            self.control.poll();
            // Requests in turns, within a time budget: what is left waits
            // for the next round, after signals and interface events.
            let deadline = Instant::now() + SERVE_BUDGET;
            while let Some(pending) = self.control.next_request() {
                self.serve(pending);
                if Instant::now() >= deadline || signals.terminate.load(Ordering::Relaxed) {
                    break;
                }
            }
            self.control.flush_all();
            if signals.terminate.load(Ordering::Relaxed) {
                break;
            }
            if self.rates.due() {
                let fast = match &self.fast {
                    FastState::Open(f) => f.rule_stats(),
                    _ => Vec::new(),
                };
                self.rates.sample(self.engines.stats(), fast);
                if self.metrics.is_some() {
                    self.publish_metrics(&self.rule_totals());
                }
            }
            let changed = self.monitor.drain();
            if changed || last_scan.elapsed() >= RESCAN_INTERVAL {
                last_scan = Instant::now();
                self.rescan_interfaces();
            }
            if signals.reload.swap(false, Ordering::Relaxed) {
                let _ = self.reload(None, false);
            }
        }
        // The socket first: a restart right after SIGTERM must find the
        // path free, however long the rest of the stop takes.
        self.control.release();
        tracing::info!("stopping");
        // Holdtime 0 Hellos: neighbours drop us at once (RFC 7761 4.3.1).
        self.pim.shutdown();
        self.msdp.shutdown();
        for e in self.igmp.shutdown(&self.interfaces, &mut self.mrib) {
            self.event("igmp", e);
        }
        self.proxy.shutdown(&mut self.mrib);
        // MRT_DONE and close: the kernel flushes our vifs and entries and
        // mc_forwarding reads 0 again.
        self.mroute.release();
        self.engines.stop_within(Duration::from_millis(1500));
        let t = Instant::now();
        self.memberships.release_all();
        tracing::debug!(took_ms = t.elapsed().as_millis() as u64, "groups left");
        let drops = self.drops();
        tracing::info!(
            frames = self.engines.stats().iter().map(|e| e.frames).sum::<u64>(),
            no_rule = drops.no_rule,
            own_frame = drops.own_frame,
            malformed = drops.malformed,
            truncated = drops.truncated,
            oversize = drops.oversize,
            vlan = drops.vlan,
            not_for_host = drops.not_for_host,
            ip_checksum = drops.ip_checksum,
            udp_checksum = drops.udp_checksum,
            udp_length = drops.udp_length,
            ttl_zero = drops.ttl_zero,
            ttl_expired = drops.ttl_expired,
            martian_source = drops.martian_source,
            fragment = drops.fragment,
            no_buffer = drops.no_buffer,
            capture_overflow = drops.capture_overflow,
            output_full = drops.output_full,
            output_error = drops.output_error,
            "final drops"
        );
        // One line per rule, up to a bound: 100,000 lines would hold the
        // exit for seconds (the rest are summed in one line; `mcrctl stats`
        // before stopping has them all).
        let totals = self.rule_totals();
        for r in totals.iter().take(FINAL_COUNTER_LINES) {
            let outputs: Vec<String> = r
                .outputs
                .iter()
                .map(|o| format!("{}={}", o.output, o.packets))
                .collect();
            tracing::info!(
                rule = %r.id,
                packets = r.packets,
                bytes = r.bytes,
                outputs = %outputs.join(","),
                "final counters"
            );
        }
        if totals.len() > FINAL_COUNTER_LINES {
            let rest = &totals[FINAL_COUNTER_LINES..];
            tracing::info!(
                rules = rest.len(),
                packets = rest.iter().map(|r| r.packets).sum::<u64>(),
                bytes = rest.iter().map(|r| r.bytes).sum::<u64>(),
                "final counters of the other rules, summed"
            );
        }
        // The kernel fast path is closed here, as before (its links detach
        // its programs). Everything left is memory and descriptors, which
        // the kernel takes back at exit at once (as after kill -9, which
        // leaves nothing behind either); freeing 100,000 rules' tables piece
        // by piece only delays the exit. The socket is released and the
        // groups left above.
        self.fast = FastState::Closed;
        std::mem::forget(self);
        Ok(())
    }

    fn desired(&self) -> Vec<DesiredRule> {
        self.config
            .rules
            .iter()
            .map(|r| DesiredRule {
                rule: r.clone(),
                origin: Origin::Config,
            })
            .chain(self.runtime_rules.iter().cloned())
            .collect()
    }

    fn rescan_interfaces(&mut self) {
        match Interfaces::scan() {
            Ok(now) if now != self.interfaces => {
                let mut events = Vec::new();
                for gone in self
                    .interfaces
                    .iter()
                    .filter(|i| now.get(&i.name).is_none())
                {
                    tracing::info!(interface = %gone.name, "interface removed");
                    self.memberships.forget_interface(gone.index);
                    events.push(
                        serde_json::json!({"event": "interface_removed", "interface": gone.name}),
                    );
                }
                for new in now
                    .iter()
                    .filter(|i| self.interfaces.get(&i.name).is_none())
                {
                    tracing::info!(interface = %new.name, index = new.index, "interface appeared");
                    events.push(serde_json::json!({"event": "interface_appeared", "interface": new.name, "index": new.index}));
                }
                for e in events {
                    self.event("interfaces", e);
                }
                self.interfaces = now;
                self.sync_igmp();
                self.recompile();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot list interfaces"),
        }
    }

    /// The interfaces IGMP should run on, with their parameters: the
    /// file's `querier_interfaces` (when IGMP is enabled) plus runtime
    /// enables, minus runtime disables.
    pub(super) fn igmp_wanted(&self) -> BTreeMap<String, mcr_protocols::igmp::InterfaceParams> {
        let c = &self.config.igmp;
        let params = crate::igmp::params_of(c);
        let mut names: std::collections::BTreeSet<String> = if c.is_enabled() {
            c.querier_interfaces.iter().cloned().collect()
        } else {
            Default::default()
        };
        for (name, on) in &self.igmp_runtime {
            if *on {
                names.insert(name.clone());
            } else {
                names.remove(name);
            }
        }
        // The IGMP proxy's downstream interfaces run the router side
        // (RFC 4605 section 4), unless disabled at run time.
        if let Some(p) = &c.proxy {
            for n in &p.downstream {
                if self.igmp_runtime.get(n) != Some(&false) {
                    names.insert(n.clone());
                }
            }
        }
        names.into_iter().map(|n| (n, params.clone())).collect()
    }

    /// Brings the IGMP proxy and the route data path in line with the
    /// config, the interfaces and the relay rules (which have precedence
    /// over routes for the same traffic; see `docs/data-path.md`).
    pub(super) fn sync_routes(&mut self) {
        self.proxy.sync(
            self.config.igmp.proxy.as_ref(),
            &self.interfaces,
            &mut self.mrib,
        );
        let wanted = self.proxy.configured() || self.config.pim.enabled || !self.mrib.is_empty();
        self.mroute.set_wanted(wanted, &self.mrib);
        if wanted {
            self.route_context();
        }
        self.step_routes();
    }

    /// What the route data path must know besides the MRIB: the interfaces
    /// routes may use, the relay rules' inputs (a rule takes its traffic
    /// before a route, see docs/data-path.md) and this host's addresses.
    /// O(rules): only while routes are wanted.
    fn route_context(&mut self) {
        let mut extra = self.proxy.interfaces(&self.interfaces);
        if self.config.pim.enabled {
            for i in &self.config.pim.interfaces {
                if let Some(x) = self.interfaces.get(&i.name) {
                    extra.insert(mcr_protocols::Interface::new(x.index, i.name.as_str()));
                }
            }
        }
        let rule_inputs = self
            .config
            .rules
            .iter()
            .chain(self.runtime_rules.iter().map(|d| &d.rule))
            .filter_map(|r| {
                let i = self.interfaces.get(&r.input.interface)?;
                Some((
                    i.index,
                    r.input.group,
                    r.input.source,
                    r.id().as_str().to_string(),
                ))
            })
            .collect();
        self.mroute.set_context(extra, rule_inputs, &self.mrib);
        self.mroute.set_local_addresses(
            self.interfaces
                .iter()
                .flat_map(|i| i.addrs.iter().copied())
                .collect(),
        );
    }

    /// The `mroute` answer: every MRIB route with where it is installed
    /// and its kernel counters (read now).
    pub(super) fn mroutes(&self) -> crate::control::api::Mroutes {
        use crate::control::api::{Mroute, MrouteOif, Mroutes};
        let routes = self
            .mrib
            .iter()
            .map(|r| {
                let mut inst = self.mroute.install_of(r);
                if inst.engines {
                    // Counted by the engines, under the route's id.
                    let id = crate::compile::route_id(&r.key);
                    for st in self.engines.stats() {
                        for rs in st.rules.iter().filter(|rs| rs.id == id) {
                            inst.packets += rs.packets;
                            inst.bytes += rs.bytes;
                        }
                    }
                }
                Mroute {
                    source: r.key.source,
                    group: r.key.group,
                    origins: r.origins.iter().copied().collect(),
                    iif: r.iif.as_ref().map(|i| self.interface_name(i.index)),
                    rpf_neighbor: r.rpf_neighbor,
                    oifs: r
                        .oifs
                        .iter()
                        .map(|(i, why)| MrouteOif {
                            interface: self.interface_name(i.index),
                            reasons: why
                                .iter()
                                .map(|(o, reason)| {
                                    let reason = serde_json::to_value(reason)
                                        .ok()
                                        .and_then(|v| v.as_str().map(str::to_string))
                                        .unwrap_or_default();
                                    format!("{o}:{reason}")
                                })
                                .collect(),
                        })
                        .collect(),
                    uptime_secs: inst.since.map_or(0, |t| t.elapsed().as_secs()),
                    packets: inst.packets,
                    bytes: inst.bytes,
                    wrong_if: inst.wrong_if,
                    installed: match inst.not_installed {
                        None if inst.engines => "engines".into(),
                        None => "kernel".into(),
                        Some(why) => format!("not installed: {why}"),
                    },
                    sources: if r.key.is_sg() {
                        Vec::new()
                    } else {
                        inst.sources
                    },
                }
            })
            .collect();
        Mroutes {
            routes,
            socket: self.mroute.status(),
            counters: self.mroute.counters.clone(),
            proxy: self
                .config
                .igmp
                .proxy
                .as_ref()
                .map(|p| crate::control::api::ProxyStatus {
                    upstream: p.upstream.clone(),
                    downstream: p.downstream.clone(),
                    upstream_groups: self.proxy.upstream_groups(),
                    dropped_groups: self.proxy.dropped_groups,
                    not_running: self.proxy.not_running.clone(),
                }),
        }
    }

    /// MRIB diffs into the MFC, upcalls to PIM, `mroute` events.
    fn step_routes(&mut self) {
        if !self.mroute.held() && self.mroute.status().is_none() && !self.mrib.is_empty() {
            // A protocol wrote the first route.
            self.route_context();
            self.mroute.set_wanted(true, &self.mrib);
        }
        if self.mroute.retry_due() {
            // Another router held the socket; it may have stopped.
            self.mroute.set_wanted(true, &self.mrib);
        }
        let tunnels = self.pim.take_register_tunnels();
        self.mroute.step(&mut self.mrib, tunnels);
        if self.mroute.take_engines_changed() {
            // A route moved to or within the engines: their table.
            self.recompile();
        }
        let to_pim = self.mroute.take_to_pim();
        if !to_pim.is_empty() {
            for p in to_pim {
                match p {
                    crate::mroute::ToPim::Notice(n) => self.pim.data_plane_notice(n),
                    crate::mroute::ToPim::RegisterData(s, g, pkt) => {
                        self.pim.register_data(s, g, &pkt)
                    }
                }
            }
            // What PIM decided on them (a new (S,G), a register tunnel)
            // reaches the kernel in this turn, not after the next poll.
            self.pim_publish();
            let tunnels = self.pim.take_register_tunnels();
            self.mroute.step(&mut self.mrib, tunnels);
        }
        for e in self.mroute.take_events() {
            self.event("mroute", e);
        }
    }

    /// Brings the IGMP instance in line with the config, runtime changes
    /// and interfaces; publishes its events.
    pub(super) fn sync_igmp(&mut self) {
        let wanted = self.igmp_wanted();
        for e in self.igmp.sync(&wanted, &self.interfaces, &mut self.mrib) {
            self.event("igmp", e);
        }
        self.after_igmp();
    }

    /// Reads IGMP sockets and fires IGMP timers.
    fn step_igmp(&mut self) {
        for e in self.igmp.step(&self.interfaces, &mut self.mrib) {
            self.event("igmp", e);
        }
        self.after_igmp();
    }

    /// Recompiles when the members of an (interface, group) that some
    /// rule output follows moved (other membership changes cost nothing).
    fn after_igmp(&mut self) {
        let changes = self.igmp.take_member_changes();
        if changes.is_empty() {
            return;
        }
        self.pim_members(&changes);
        self.proxy.members_changed(&mut self.mrib, &changes);
        let followed = self
            .config
            .rules
            .iter()
            .chain(self.runtime_rules.iter().map(|d| &d.rule))
            .flat_map(|r| r.outputs.iter())
            .filter(|o| o.when == mcr_config::OutputWhen::Members)
            .filter_map(|o| Some((self.interfaces.get(&o.interface)?.index, o.group)))
            .any(|k| changes.contains(&k));
        if followed {
            self.recompile();
        }
    }

    /// An interface's name by index (the index itself when unknown).
    pub(super) fn interface_name(&self, ifindex: u32) -> String {
        self.interfaces
            .iter()
            .find(|i| i.index == ifindex)
            .map(|i| i.name.clone())
            .unwrap_or_else(|| ifindex.to_string())
    }

    /// Input interfaces another mcrd instance relays too.
    pub(super) fn shared_inputs(&self) -> Vec<String> {
        self.claims.shared()
    }

    /// The data path of rule `id` in the running table, and why it is not
    /// the fast path.
    pub(super) fn rule_path(
        &self,
        id: &str,
    ) -> (Option<crate::control::api::DataPath>, Option<String>) {
        use crate::control::api::DataPath;
        if !self.table.load().rules().iter().any(|r| r.id == id) {
            return (None, None);
        }
        let why = match &self.fast {
            FastState::Open(_) if !self.config.data_plane.kernel_fast_path => {
                "the kernel fast path is off (data_plane.kernel_fast_path: false)".to_string()
            }
            FastState::Open(f) => match f.off_reason(id) {
                None => return (Some(DataPath::Fast), None),
                Some(r) => r.to_string(),
            },
            FastState::Failed(why) => why.clone(),
            FastState::Closed => {
                "the kernel fast path is off (data_plane.kernel_fast_path: false)".to_string()
            }
        };
        (Some(DataPath::Engines), Some(why))
    }

    /// Logs the fast path turning on or off, and each rule that is kept
    /// off it (once per change of reason).
    fn log_path_changes(&mut self, table: &mcr_dataplane::ForwardingTable) {
        let on = matches!(self.fast, FastState::Open(_)) && self.config.data_plane.kernel_fast_path;
        match (self.fast_was_on, on) {
            (Some(true), false) => tracing::info!(
                "kernel fast path off: the configuration turned it off; the engines forward every rule"
            ),
            (Some(false), true) => tracing::info!(
                "kernel fast path on: the configuration turned it on; eligible rules move to the kernel"
            ),
            _ => {}
        }
        self.fast_was_on = Some(on);
        let mut now = BTreeMap::new();
        for r in table.rules() {
            let why = match &self.fast {
                FastState::Open(f) if on => f.off_reason(&r.id).map(str::to_string),
                _ => None,
            };
            if on && self.off_fast.get(&r.id) != Some(&why) {
                if let Some(why) = &why {
                    tracing::info!(rule = %r.id, reason = %why, "rule kept off the kernel fast path; the engines forward it");
                } else {
                    tracing::debug!(rule = %r.id, "rule on the kernel fast path");
                }
            }
            now.insert(r.id.clone(), why);
        }
        self.off_fast = now;
    }

    /// Opens the kernel fast path when the config asks for it (once: a
    /// failure is retried only after the config switched it off and on).
    fn sync_fast_path(&mut self) {
        if !self.config.data_plane.kernel_fast_path {
            if let FastState::Failed(_) = self.fast {
                self.fast = FastState::Closed;
            }
            return;
        }
        if !matches!(self.fast, FastState::Closed) {
            return;
        }
        match FastPath::open() {
            Ok(f) => {
                tracing::info!(
                    "kernel fast path on: eligible rules are forwarded by a tc ingress program"
                );
                self.fast = FastState::Open(Box::new(f));
            }
            Err(e) => {
                let why = format!(
                    "cannot load BPF programs ({e}); the engines forward everything. The fast path needs CAP_BPF and CAP_NET_ADMIN (run as root, or set data_plane.kernel_fast_path: false to silence this)"
                );
                // Without the capabilities this is the least-privilege
                // set-up working as configured, not a fault.
                if e.raw_os_error() == Some(libc::EPERM) {
                    tracing::info!("kernel fast path off: {why}");
                } else {
                    tracing::warn!("kernel fast path off: {why}");
                }
                self.fast = FastState::Failed(why);
            }
        }
    }

    /// Compiles the desired rules against the current interfaces, publishes
    /// the table and updates joins. Logs every rule whose state changed.
    pub fn recompile(&mut self) {
        self.generation += 1;
        self.rule_keys = Some(incremental::RuleKeys::of(
            self.config
                .rules
                .iter()
                .chain(self.runtime_rules.iter().map(|d| &d.rule)),
        ));
        let mrib = &self.mrib;
        // RFC 3376 6.3: a member in EXCLUDE mode wants every source not
        // excluded; in INCLUDE mode only the listed ones.
        let members = |ifindex: u32, group, source: Option<std::net::Ipv4Addr>| {
            mrib.local_members_on(&mcr_protocols::Interface::new(ifindex, ""), group)
                .is_some_and(|f| match source {
                    Some(s) => f.admits(s),
                    None => f.mode == mcr_protocols::FilterMode::Exclude,
                })
        };
        let t0 = Instant::now();
        let compiled = compile_with_members(
            self.config
                .rules
                .iter()
                .chain(self.runtime_rules.iter().map(|d| &d.rule)),
            &self.interfaces,
            self.generation,
            self.config.multicast_ttl(),
            &members,
        );
        let compiled_at = t0.elapsed();
        // Routes past the kernel's 32 vifs (the mroute layer decides which).
        let (table, refused) = compiled.table.with_routes(crate::compile::route_specs(
            self.mroute.engine_routes(),
            &self.interfaces,
        ));
        for e in refused {
            tracing::warn!(route = %e.id, "route not forwarded by the engines: {e}");
        }
        self.sync_fast_path();
        // Frames the program forwards never reach the capture sockets (they
        // take ETH_P_IP after tc ingress), so a key moves between the kernel
        // and the engines with the program swap itself: no filter change.
        let failed = match &mut self.fast {
            FastState::Open(f) => f.apply(&table, self.config.data_plane.kernel_fast_path),
            _ => Vec::new(),
        };
        for (ifindex, e) in &failed {
            let name = self.interface_name(*ifindex);
            tracing::warn!(interface = %name, error = %e, "kernel fast path not used on this interface; the engines forward its rules");
        }
        self.log_path_changes(&table);
        let before: std::collections::HashMap<&str, &RuleState> = self
            .statuses
            .iter()
            .map(|s| (s.id.as_str(), &s.state))
            .collect();
        let mut changes = Vec::new();
        for s in &compiled.statuses {
            if before.get(s.id.as_str()) == Some(&&s.state) {
                continue;
            }
            let mut e = serde_json::json!({"event": "rule", "id": s.id});
            if let Ok(serde_json::Value::Object(state)) = serde_json::to_value(&s.state) {
                for (k, v) in state {
                    e[k] = v;
                }
            }
            changes.push(e);
            log_rule_state(&s.id, &s.state);
        }
        // Rules that disappeared (removed or reloaded away). A set, not a
        // scan per rule: that was O(rules²), most of an `add` at 10,000.
        let now_ids: std::collections::HashSet<&str> =
            compiled.statuses.iter().map(|s| s.id.as_str()).collect();
        for s in &self.statuses {
            if !now_ids.contains(s.id.as_str()) {
                changes.push(serde_json::json!({"event": "rule", "id": s.id, "state": "removed"}));
            }
        }
        // Capture sockets for every input interface, one per engine, all
        // joined before any takes traffic (see mcr_dataplane::capture).
        let t_caps = Instant::now();
        let (sets, failed) = self
            .captures
            .update(&table.inputs_by_interface(), self.engines.cpus().len());
        for (ifindex, e) in failed {
            let name = self.interface_name(ifindex);
            tracing::warn!(interface = %name, error = %e, "opening capture sockets failed");
        }
        let caps_at = t_caps.elapsed();
        let t_publish = Instant::now();
        let inputs: Vec<(u32, String)> = table
            .inputs_by_interface()
            .iter()
            .map(|(i, _, _)| (*i, self.interface_name(*i)))
            .collect();
        self.claims.update(&inputs);
        self.table.publish(table.with_captures(sets));
        self.engines.wake_all();
        // Answer (and log) only once the engines forward by the new table,
        // so "added" means "forwarding".
        if !self
            .engines
            .wait_for_generation(self.generation, Duration::from_millis(500))
        {
            tracing::warn!(
                generation = self.generation,
                "engines slow to take the new forwarding table"
            );
        }
        let publish_at = t_publish.elapsed();
        let t_joins = Instant::now();
        for (join, e) in self.memberships.apply(&compiled.joins) {
            tracing::warn!(group = %join.group, ifindex = join.ifindex, error = %e, "joining group failed");
        }
        self.memberships.apply_sinks(&compiled.unicast_inputs);
        self.join_users = compiled.join_users;
        self.statuses = compiled.statuses;
        for e in changes {
            self.event("rules", e);
        }
        // Where a change's time goes, for perf/control_scale.sh.
        tracing::debug!(
            rules = self.statuses.len(),
            compile_us = compiled_at.as_micros() as u64,
            captures_us = caps_at.as_micros() as u64,
            publish_us = publish_at.as_micros() as u64,
            joins_us = t_joins.elapsed().as_micros() as u64,
            total_us = t0.elapsed().as_micros() as u64,
            "recompiled"
        );
        self.sync_protocols();
    }

    /// Hands the running config and the interfaces to the protocol
    /// instances (only differences reach them). Called after every
    /// recompile, and by a reload that keeps the table (a protocol section
    /// may still have changed).
    pub(super) fn sync_protocols(&mut self) {
        self.pim.sync(&self.config, &self.interfaces);
        let fresh_pim = self.pim.take_needs_members();
        if fresh_pim {
            let all: Vec<(
                mcr_protocols::Interface,
                std::net::Ipv4Addr,
                mcr_protocols::SourceFilter,
            )> = self
                .mrib
                .iter_local_members()
                .map(|(i, g, f)| (i.clone(), g, f.clone()))
                .collect();
            for (i, g, f) in all {
                self.pim.local_members(i, g, f);
            }
            // A new instance knows no SA yet: the whole SA cache.
            let active: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> = self
                .msdp
                .instance()
                .map(|m| m.sa_cache().map(|(k, _)| (k.source, k.group)).collect())
                .unwrap_or_default();
            for (s, g) in active {
                self.pim.source_active(s, g, true);
            }
        }
        self.pim_publish();
        self.sync_routes();
        self.msdp.sync(&self.config.msdp);
        self.msdp_publish();
    }

    /// Feeds PIM the local members of the (interface index, group) pairs
    /// IGMP changed (RFC 7761 section 4.1 `local_receiver_include`): the
    /// MRIB's merged filter, or `INCLUDE {}` when none is left.
    fn pim_members(&mut self, changes: &std::collections::BTreeSet<(u32, std::net::Ipv4Addr)>) {
        for (ifindex, group) in changes {
            let ifc = mcr_protocols::Interface::new(*ifindex, self.interface_name(*ifindex));
            let filter = self
                .mrib
                .local_members_on(&ifc, *group)
                .cloned()
                .unwrap_or_else(|| mcr_protocols::SourceFilter::include([]));
            self.pim.local_members(ifc, *group, filter);
        }
        self.pim_publish();
    }

    /// Publishes MSDP events (`subscribe --events msdp`).
    fn msdp_publish(&mut self) {
        for e in self.msdp.take_events() {
            self.event("msdp", e);
        }
        // RFC 3618 section 3: accepted SAs become active sources for the
        // PIM trees (the RP with receivers joins toward S); an expired one
        // stops being active unless another RP's SA for (S,G) remains.
        let changes = self.msdp.take_sa_changes();
        if !changes.is_empty() {
            for c in changes {
                match c {
                    crate::msdp::SaChange::Added { source, group, .. } => {
                        self.pim.source_active(source, group, true)
                    }
                    crate::msdp::SaChange::Expired { source, group, .. } => {
                        let still = self.msdp.instance().is_some_and(|m| {
                            m.sa_cache()
                                .any(|(k, _)| k.source == source && k.group == group)
                        });
                        if !still {
                            self.pim.source_active(source, group, false);
                        }
                    }
                }
            }
            self.pim_publish();
        }
    }

    /// Publishes PIM events and sends `pim_query_rpf` answers that waited;
    /// applies PIM's MRIB updates.
    fn pim_publish(&mut self) {
        self.pim.apply_mrib(&mut self.mrib);
        // RFC 3618 section 3: the RP's own sources, as MSDP SAs.
        if let Some(sources) = self.pim.take_rp_sources() {
            self.msdp.set_local_sources(sources);
        }
        for e in self.pim.take_events() {
            self.event("pim", e);
        }
        for (client, id, resp) in self.pim.take_answers() {
            self.control.respond(client, id.as_ref(), &resp);
        }
    }

    /// Streams an event to the control clients subscribed to `category`.
    pub(super) fn event(&mut self, category: &str, mut event: serde_json::Value) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        event["time"] = serde_json::json!(now);
        let backlog = self.config.control_plane.event_buffer_size;
        self.control.publish(category, &event, backlog);
    }

    /// Counters per rule, summed over engines, in table order.
    pub fn rule_totals(&self) -> Vec<RuleTotals> {
        let engines = self.engines.stats();
        let fast = match &self.fast {
            FastState::Open(f) => f.rule_stats(),
            _ => Vec::new(),
        };
        let all = engines.iter().flat_map(|e| e.rules.iter()).chain(&fast);
        let mut totals = sum_rules(all, self.statuses.len());
        self.statuses
            .iter()
            .filter_map(|s| totals.remove(s.id.as_str()))
            .collect()
    }

    /// Drops by reason, summed over engines (the fast path drops nothing:
    /// what it does not forward goes on to the engines).
    pub fn drops(&self) -> mcr_dataplane::Drops {
        let mut d = mcr_dataplane::Drops::default();
        for e in self.engines.stats() {
            d.add(&e.drops);
        }
        d
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Where metrics should be served: the flag, else the file's key.
    fn metrics_wanted(&self) -> Option<std::net::SocketAddr> {
        self.options
            .metrics_listen
            .or_else(|| self.config.metrics.listen_addr())
    }

    /// Starts, moves or stops the metrics endpoint to match the flag and
    /// the config. Returns the bind error, if any (the endpoint is then off).
    pub(super) fn sync_metrics(&mut self) -> anyhow::Result<()> {
        let want = self.metrics_wanted();
        if self.metrics.as_ref().map(MetricsServer::addr) == want {
            return Ok(());
        }
        // Stop the old one first: the new address may overlap it.
        if let Some(old) = self.metrics.take() {
            tracing::info!(listen = %old.addr(), "metrics endpoint stopped");
        }
        let Some(addr) = want else {
            return Ok(());
        };
        match MetricsServer::start(addr, ServerLimits::default()) {
            Ok(m) => {
                tracing::info!(listen = %m.addr(), "metrics endpoint at http://{}/metrics", m.addr());
                self.metrics = Some(m);
                let totals = self.rule_totals();
                self.publish_metrics(&totals);
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "metrics.listen: cannot listen on {addr}: {e} (set by {})",
                if self.options.metrics_listen.is_some() {
                    "--metrics-listen"
                } else {
                    "the config file"
                }
            )),
        }
    }

    /// Hands the endpoint what `status` and `stats` answer now.
    fn publish_metrics(&self, totals: &[RuleTotals]) {
        let Some(m) = &self.metrics else {
            return;
        };
        m.publish(Snapshot {
            status: self.status_from(totals),
            stats: self.stats_from(totals),
            table_generation: self.generation,
            engine_generations: self
                .engines
                .stats()
                .iter()
                .map(|e| (e.engine, e.generation))
                .collect(),
            event_subscribers: self.control.subscriber_count(),
        });
    }
}

/// Per-rule counters summed by rule id (borrowed: one hash lookup per rule
/// and engine, one id copy per rule).
pub(super) fn sum_rules<'a>(
    rules: impl Iterator<Item = &'a RuleStats>,
    capacity: usize,
) -> std::collections::HashMap<&'a str, RuleTotals> {
    let mut totals = std::collections::HashMap::with_capacity(capacity);
    for r in rules {
        add_rule(totals.entry(r.id.as_str()).or_default(), r);
    }
    totals
}

fn add_rule(t: &mut RuleTotals, r: &RuleStats) {
    if t.id.is_empty() {
        t.id.clone_from(&r.id);
    }
    t.packets += r.packets;
    t.bytes += r.bytes;
    // By output name, not position: engines briefly on different tables
    // may list different outputs at the same position.
    for o in &r.outputs {
        let acc = match t.outputs.iter().position(|a| a.output == o.output) {
            Some(i) => &mut t.outputs[i],
            None => {
                t.outputs.push(mcr_dataplane::stats::OutputStats {
                    output: o.output.clone(),
                    ..Default::default()
                });
                t.outputs.last_mut().expect("just pushed")
            }
        };
        acc.packets += o.packets;
        acc.bytes += o.bytes;
        acc.full += o.full;
        acc.errors += o.errors;
    }
}

/// The CPUs this process may run on (honours taskset/cpusets).
pub fn online_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Group joins take one socket per 20 groups: lift the soft file limit to
/// the hard one.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// glommio and io_uring lock memory; lift the limit when we may.
fn raise_memlock_limit() {
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; keeping the current limit");
    }
}

/// Logs a rule's new state: active, partly waiting (each output that
/// waits), or inactive and why.
fn log_rule_state(id: &impl std::fmt::Display, state: &RuleState) {
    match state {
        RuleState::Active => tracing::info!(rule = %id, "rule active"),
        RuleState::Partial { waiting } => {
            for w in waiting {
                tracing::warn!(rule = %id, "{w}; rule forwards to its other outputs");
            }
        }
        RuleState::Inactive { reason } => {
            tracing::warn!(rule = %id, "{reason}; rule inactive until it appears")
        }
    }
}
