//! PIM in the control plane: the raw socket, the [`Driver`] of the
//! [`Pim`] instance, the RPF provider and the injected neighbours, all
//! owned by the supervisor thread and polled from its loop.
//!
//! The supervisor calls, in its loop: [`PimRuntime::poll_fds`] (descriptors
//! to wait on), [`PimRuntime::timeout`] (how long it may sleep: the next PIM
//! timer or provider deadline), then [`PimRuntime::poll`] (read packets,
//! fire timers, read the provider); after a config or interface change
//! [`PimRuntime::sync`]; on exit [`PimRuntime::shutdown`] (Holdtime 0
//! Hellos). What PIM wants published comes back from
//! [`PimRuntime::take_events`]; answers to `pim_query_rpf` that waited for
//! an external provider from [`PimRuntime::take_answers`].

pub mod commands;
pub mod socket;
pub mod tree;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr_config::{Config, RpfProvider as RpfSetting};
use mcr_protocols::pim::{
    ExternalNeighbor, Pim, PimConfig, PimInterfaceConfig, PimMessage, DEFAULT_MAX_NEIGHBORS,
};
use mcr_protocols::{
    Action, ActionOf, Driver, IfAddr, Input, Interface, Ipv4Prefix, Packet, Rng, Timestamp,
};
use serde_json::{json, Value};

use crate::control::{ErrorCode, Response};
use crate::interfaces::Interfaces;
use crate::rpf::{self, external::ExternalRpf, kernel::KernelRpf, RpfNotice, RpfProvider};
use socket::PimSocket;

/// Bound of the PIM timer set (Hello timers plus one liveness timer per
/// neighbour).
const TIMER_CAPACITY: usize = 1 << 18;
/// Bound of the injected neighbours, all interfaces together.
pub const MAX_EXTERNAL_NEIGHBORS: usize = 4096;
/// Bound of `pim_query_rpf` requests waiting for an external provider.
const MAX_WAITING_QUERIES: usize = 256;
/// Packets read per poll before other work gets a turn.
const RX_BUDGET: usize = 256;

/// An injected neighbour as the operator gave it (by interface name, so it
/// survives the interface going away and coming back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// Interface name.
    pub interface: String,
    /// Address.
    pub address: Ipv4Addr,
    /// DR priority.
    pub priority: Option<u32>,
    /// Free text.
    pub tag: Option<String>,
}

/// A `pim_query_rpf` waiting for an external provider's answer.
#[derive(Debug)]
pub struct WaitingQuery {
    /// Control client.
    pub client: u64,
    /// The request's `id`.
    pub id: Option<Value>,
    /// The source asked about.
    pub source: Ipv4Addr,
}

/// The RPF provider as configured.
pub enum Provider {
    /// `disabled`.
    Disabled(rpf::Disabled),
    /// `static`.
    Static(rpf::StaticRpf),
    /// `kernel`.
    Kernel(KernelRpf),
    /// An external provider.
    External(ExternalRpf),
    /// `kernel` asked for, but its netlink sockets could not be opened.
    Failed(String),
}

impl Provider {
    fn dyn_mut(&mut self) -> Option<&mut dyn RpfProvider> {
        match self {
            Provider::Disabled(p) => Some(p),
            Provider::Static(p) => Some(p),
            Provider::Kernel(p) => Some(p),
            Provider::External(p) => Some(p),
            Provider::Failed(_) => None,
        }
    }

    fn dyn_ref(&self) -> Option<&dyn RpfProvider> {
        match self {
            Provider::Disabled(p) => Some(p),
            Provider::Static(p) => Some(p),
            Provider::Kernel(p) => Some(p),
            Provider::External(p) => Some(p),
            Provider::Failed(_) => None,
        }
    }
}

/// PIM and RPF state of the control thread. See the module documentation.
pub struct PimRuntime {
    epoch: Instant,
    driver: Option<Driver<Pim>>,
    socket: Option<PimSocket>,
    socket_error: Option<String>,
    /// Addresses last fed per running interface.
    addrs: BTreeMap<u32, (Interface, Vec<IfAddr>)>,
    last: Option<PimConfig>,
    /// Configured interfaces PIM does not run on now.
    waiting: Vec<String>,
    injected: Vec<Injected>,
    provider: Provider,
    provider_text: String,
    static_config: Vec<mcr_config::StaticRpfRoute>,
    queries: Vec<WaitingQuery>,
    answers: Vec<(u64, Option<Value>, Response)>,
    events: Vec<Value>,
    actions: Vec<ActionOf<Pim>>,
    send_errors: u64,
    rng_seed: u64,
    /// `control_plane.external_neighbors_enabled`: when false, injected
    /// neighbours take no part in PIM (and commands are refused).
    external_enabled: bool,
    /// A reload happened: the static RPF table takes the file's routes
    /// again at the next sync.
    reloaded: bool,
    /// The trees' control-plane state (RPF tracking, MRIB queue, runtime
    /// RP mappings).
    glue: tree::TreeGlue,
    /// PIM stopped: its MRIB routes go at the next
    /// [`apply_mrib`](Self::apply_mrib).
    clear_routes: bool,
}

fn os_seed() -> u64 {
    // RandomState is seeded from the OS's random source.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// The IPv4 addresses of `name` with their prefix lengths, in kernel order
/// (the primary first).
fn addresses_of(name: &str) -> Vec<IfAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter(|i| i.interface_name == name)
        .filter_map(|i| {
            let a = i.address?.as_sockaddr_in()?.ip();
            let len = i
                .netmask
                .and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).count_ones()))
                .unwrap_or(32);
            IfAddr::new(a, len as u8).ok()
        })
        .collect()
}

impl Default for PimRuntime {
    fn default() -> Self {
        PimRuntime::new()
    }
}

impl PimRuntime {
    /// Nothing running yet: [`sync`](Self::sync) starts what the config asks.
    pub fn new() -> PimRuntime {
        PimRuntime {
            epoch: Instant::now(),
            driver: None,
            socket: None,
            socket_error: None,
            addrs: BTreeMap::new(),
            last: None,
            waiting: Vec::new(),
            injected: Vec::new(),
            provider: Provider::Disabled(rpf::Disabled),
            provider_text: "disabled".into(),
            static_config: Vec::new(),
            queries: Vec::new(),
            answers: Vec::new(),
            events: Vec::new(),
            actions: Vec::new(),
            send_errors: 0,
            rng_seed: os_seed(),
            external_enabled: true,
            reloaded: false,
            glue: tree::TreeGlue::default(),
            clear_routes: false,
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.epoch.elapsed())
    }

    /// Whether PIM runs: an instance exists and at least one of its
    /// interfaces is up with an address (an instance whose every
    /// interface is missing or down sends and hears nothing).
    pub fn running(&self) -> bool {
        self.driver
            .as_ref()
            .is_some_and(|d| !d.protocol().interfaces().is_empty())
    }

    /// The PIM instance, if it runs.
    pub fn pim(&self) -> Option<&Driver<Pim>> {
        self.driver.as_ref()
    }

    /// The RPF provider's status (`None` when `disabled`).
    pub fn rpf_status(&self) -> Option<rpf::RpfProviderStatus> {
        match &self.provider {
            Provider::Disabled(_) => None,
            Provider::Failed(e) => Some(rpf::RpfProviderStatus {
                kind: "kernel".into(),
                socket: None,
                state: "down".into(),
                error: Some(e.clone()),
                connects: 0,
                cached: 0,
            }),
            p => p.dyn_ref().map(RpfProvider::status),
        }
    }

    /// Events to publish (each with `event` and its fields; the supervisor
    /// adds `time`), all in category `pim`.
    pub fn take_events(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.events)
    }

    /// Answers to `pim_query_rpf` requests that waited: (client, id,
    /// answer).
    pub fn take_answers(&mut self) -> Vec<(u64, Option<Value>, Response)> {
        std::mem::take(&mut self.answers)
    }

    /// Descriptors the supervisor must poll for us.
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        if let (Some(s), Some(_)) = (&self.socket, &self.driver) {
            fds.push(libc::pollfd {
                fd: s.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some((fd, events)) = self.provider.dyn_ref().and_then(|p| p.poll_fd()) {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
    }

    /// How long the supervisor may sleep: until the next PIM timer or
    /// provider deadline (`None`: no deadline).
    pub fn timeout(&self) -> Option<Duration> {
        let now = self.now();
        let pim = self.driver.as_ref().and_then(|d| d.poll_timeout(now));
        let provider = self
            .provider
            .dyn_ref()
            .and_then(|p| p.next_deadline())
            .map(|t| t.saturating_duration_since(Instant::now()));
        [pim, provider].into_iter().flatten().min()
    }

    /// Reads packets, fires due timers, reads the RPF provider.
    pub fn poll(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        if let (Some(sock), Some(driver)) = (&mut self.socket, &mut self.driver) {
            for _ in 0..RX_BUDGET {
                match sock.recv() {
                    Ok(Some(rx)) => {
                        let Some((ifc, _)) = self.addrs.get(&rx.ifindex) else {
                            let now = Timestamp::from_duration(self.epoch.elapsed());
                            // Register and Register-Stop are unicast and
                            // routed: they may arrive on any interface
                            // (RFC 7761 section 4.4).
                            let message = PimMessage::parse(&rx.payload);
                            if matches!(
                                message,
                                PimMessage::Register(_) | PimMessage::RegisterStop { .. }
                            ) {
                                driver.feed(
                                    now,
                                    Input::Packet(Packet {
                                        interface: Interface::new(
                                            rx.ifindex,
                                            rx.ifindex.to_string(),
                                        ),
                                        source: rx.source,
                                        destination: rx.destination,
                                        ttl: rx.ttl,
                                        router_alert: false,
                                        message,
                                    }),
                                    &mut actions,
                                );
                                continue;
                            }
                            // Not a PIM interface: the instance counts it.
                            driver.feed(
                                now,
                                Input::Packet(Packet {
                                    interface: Interface::new(rx.ifindex, rx.ifindex.to_string()),
                                    source: rx.source,
                                    destination: rx.destination,
                                    ttl: rx.ttl,
                                    router_alert: false,
                                    message: PimMessage::Other { msg_type: 0 },
                                }),
                                &mut actions,
                            );
                            continue;
                        };
                        let now = Timestamp::from_duration(self.epoch.elapsed());
                        driver.feed(
                            now,
                            Input::Packet(Packet {
                                interface: ifc.clone(),
                                source: rx.source,
                                destination: rx.destination,
                                ttl: rx.ttl,
                                router_alert: false,
                                message: PimMessage::parse(&rx.payload),
                            }),
                            &mut actions,
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "PIM socket receive failed");
                        break;
                    }
                }
            }
        }
        if let Some(driver) = &mut self.driver {
            let now = Timestamp::from_duration(self.epoch.elapsed());
            driver.fire_due(now, &mut actions);
        }
        self.execute(&mut actions);
        self.actions = actions;
        let notices = match self.provider.dyn_mut() {
            Some(p) => p.poll(Instant::now()),
            None => Vec::new(),
        };
        for n in notices {
            self.rpf_notice(n);
        }
        self.track_rpf();
    }

    fn provider_kind(&self) -> &'static str {
        match &self.provider {
            Provider::Failed(_) => "kernel",
            p => p.dyn_ref().map_or("disabled", RpfProvider::kind),
        }
    }

    fn rpf_notice(&mut self, n: RpfNotice) {
        match n {
            RpfNotice::Change(change) => {
                let r = change.route.as_ref();
                self.events.push(json!({
                    "event": "rpf-change",
                    "provider": self.provider_kind(),
                    "prefix": change.prefix.to_string(),
                    "interface": r.map(|r| r.interface.name.to_string()),
                    "neighbor": r.and_then(|r| r.neighbor),
                    "metric": r.map(|r| r.metric),
                }));
                tracing::debug!(prefix = %change.prefix, interface = ?r.map(|r| r.interface.name.to_string()), "RPF change");
                let prefix = change.prefix;
                if let Some(driver) = &mut self.driver {
                    let now = Timestamp::from_duration(self.epoch.elapsed());
                    let mut actions = std::mem::take(&mut self.actions);
                    driver.feed(now, Input::Rpf(change), &mut actions);
                    self.glue.rp_sources_dirty = true;
                    self.execute(&mut actions);
                    self.actions = actions;
                }
                self.rpf_prefix_changed(prefix);
            }
            RpfNotice::Answered { source, result } => {
                if self.glue.asking.contains(&source) {
                    match &result {
                        Ok(route) => self.rpf_answer(source, route.clone()),
                        Err(_) => {
                            self.glue.asking.remove(&source);
                            self.glue.tracked.insert(source, None);
                        }
                    }
                }
                let provider = self.provider_kind();
                let mut keep = Vec::new();
                for q in std::mem::take(&mut self.queries) {
                    if q.source != source {
                        keep.push(q);
                        continue;
                    }
                    let resp = match &result {
                        Ok(route) => {
                            Response::ok(commands::rpf_answer(source, provider, route.as_ref()))
                        }
                        Err(e) => Response::error(ErrorCode::Unavailable, e.clone()),
                    };
                    self.answers.push((q.client, q.id, resp));
                }
                self.queries = keep;
            }
            RpfNotice::State(state) => {
                // An external provider came back (or went): addresses it
                // could not answer are asked again at the next scan.
                self.glue.tracked.retain(|_, r| r.is_some());
                self.glue.last_scan = None;
                self.events.push(json!({
                    "event": "rpf-provider",
                    "provider": self.provider_kind(),
                    "state": state,
                }));
            }
        }
    }

    /// Carries out the instance's actions.
    fn execute(&mut self, actions: &mut Vec<ActionOf<Pim>>) {
        for a in actions.drain(..) {
            match a {
                Action::Send {
                    interface,
                    destination,
                    message,
                } => {
                    let Some(bytes) = message.encode() else {
                        continue;
                    };
                    // Register and Register-Stop go unicast, routed by the
                    // kernel (RFC 7761 section 4.4); the rest to
                    // ALL-PIM-ROUTERS out of the interface, TTL 1.
                    let ifindex = if destination.is_multicast() {
                        interface.index
                    } else {
                        0
                    };
                    if let Some(s) = &self.socket {
                        if let Err(e) = s.send(ifindex, destination, &bytes) {
                            self.send_errors += 1;
                            tracing::debug!(interface = %interface, error = %e, "PIM send failed");
                        }
                    }
                }
                Action::Join { interface, .. } => {
                    if let Some(s) = &self.socket {
                        if let Err(e) = s.join(interface.index) {
                            tracing::warn!(interface = %interface, error = %e, "cannot join 224.0.0.13 (ALL-PIM-ROUTERS)");
                        }
                    }
                }
                Action::Leave { interface, .. } => {
                    if let Some(s) = &self.socket {
                        s.leave(interface.index);
                    }
                }
                Action::Event(e) => {
                    let mut v = serde_json::to_value(&e.payload).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut v {
                        m.insert("event".into(), Value::String(e.kind.into()));
                    }
                    if e.kind == "route" {
                        self.glue.rp_sources_dirty = true;
                    }
                    if e.kind == "register-tunnel" {
                        if let (Some(src), Some(grp)) = (e.payload.source, e.payload.group) {
                            self.note_tunnel(src, grp, e.payload.action != Some("remove"));
                        }
                    }
                    match e.kind {
                        "join-state" | "route" | "register-tunnel" => {
                            tracing::debug!(interface = %e.payload.interface, source = %show(&e.payload.source), group = %show(&e.payload.group), action = %show(&e.payload.action), "PIM {}", e.kind)
                        }
                        "dr-change" => {
                            tracing::info!(interface = %e.payload.interface, dr = %show(&e.payload.dr), "PIM DR changed")
                        }
                        kind => {
                            tracing::info!(interface = %e.payload.interface, neighbor = %show(&e.payload.neighbor), reason = %show(&e.payload.reason), "PIM {kind}")
                        }
                    }
                    self.events.push(v);
                }
                Action::Mrib(u) => self.queue_mrib(u),
                Action::ArmTimer { .. } | Action::CancelTimer { .. } => {}
            }
        }
    }

    fn feed(&mut self, input: mcr_protocols::InputOf<Pim>) {
        // Whether we are the RP for a group (RP mappings, our addresses)
        // and whether a source is ours (its RPF) decide what MSDP
        // originates, but change no route by themselves: recompute the RP's
        // sources after them (RFC 3618 section 3).
        if matches!(
            input,
            Input::Config(_)
                | Input::Rpf(_)
                | Input::AddressAdded { .. }
                | Input::AddressRemoved { .. }
        ) {
            self.glue.rp_sources_dirty = true;
        }
        let now = self.now();
        let mut actions = std::mem::take(&mut self.actions);
        if let Some(d) = &mut self.driver {
            d.feed(now, input, &mut actions);
        }
        self.execute(&mut actions);
        self.actions = actions;
    }

    /// Applies the config and the current interfaces: starts or stops PIM,
    /// feeds the interface set and addresses (only differences reach the
    /// instance, so unchanged interfaces keep their neighbours), and
    /// (re)opens the RPF provider when its setting changed.
    pub fn sync(&mut self, config: &Config, interfaces: &Interfaces) {
        self.sync_provider(config);
        self.external_enabled = config.control_plane.external_neighbors_enabled;
        if !config.pim.enabled {
            if self.driver.is_some() {
                self.shutdown();
                tracing::info!("PIM stopped");
            }
            // Nothing waits for an interface while PIM is off.
            self.waiting.clear();
            return;
        }
        if self.socket.is_none() {
            match PimSocket::open() {
                Ok(s) => {
                    self.socket = Some(s);
                    self.socket_error = None;
                }
                Err(e) => {
                    let why = format!(
                        "cannot open the raw PIM socket (protocol 103; needs CAP_NET_RAW): {e}"
                    );
                    if self.socket_error.as_deref() != Some(why.as_str()) {
                        tracing::error!("{why}; PIM does not run");
                    }
                    self.socket_error = Some(why);
                    return;
                }
            }
        }
        if self.driver.is_none() {
            self.glue.needs_members = true;
            self.glue.tracked.clear();
            self.glue.last_scan = None;
            self.glue.asking.clear();
            let mut seed = self.rng_seed;
            seed ^= Instant::now().duration_since(self.epoch).as_nanos() as u64;
            self.driver = Some(Driver::new(Pim::new(Rng::new(seed)), TIMER_CAPACITY));
            tracing::info!("PIM started");
        }
        let mut want = PimConfig {
            interfaces: Vec::new(),
            external_neighbors: Vec::new(),
            max_neighbors_per_interface: DEFAULT_MAX_NEIGHBORS,
            tree: self.tree_config(config),
        };
        let mut waiting = Vec::new();
        for pi in &config.pim.interfaces {
            match interfaces.get(&pi.name) {
                Some(i) if i.up => {
                    let mut c = PimInterfaceConfig::new(Interface::new(i.index, pi.name.as_str()));
                    c.hello_period = Duration::from_secs(config.pim.hello_period_of(pi).into());
                    c.dr_priority = config.pim.dr_priority_of(pi);
                    want.interfaces.push(c);
                }
                _ => waiting.push(pi.name.clone()),
            }
        }
        for w in &waiting {
            if !self.waiting.contains(w) {
                tracing::warn!(interface = %w, "PIM interface missing or down; PIM starts on it when it is up");
            }
        }
        self.waiting = waiting;
        want.external_neighbors = self.external_for(&want);
        if self.last.as_ref() != Some(&want) {
            self.feed(Input::Config(want.clone()));
            self.last = Some(want.clone());
            self.glue.last_scan = None;
        }
        // Addresses: differences only.
        let running: Vec<Interface> = want
            .interfaces
            .iter()
            .map(|c| c.interface.clone())
            .collect();
        self.addrs
            .retain(|i, _| running.iter().any(|r| r.index == *i));
        for ifc in running {
            let now_addrs = addresses_of(&ifc.name);
            let before = self
                .addrs
                .get(&ifc.index)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            if before == now_addrs && self.addrs.contains_key(&ifc.index) {
                continue;
            }
            for a in before.iter().filter(|a| !now_addrs.contains(a)) {
                self.feed(Input::AddressRemoved {
                    interface: ifc.clone(),
                    address: *a,
                });
            }
            for a in now_addrs.iter().filter(|a| !before.contains(a)) {
                self.feed(Input::AddressAdded {
                    interface: ifc.clone(),
                    address: *a,
                });
            }
            self.addrs.insert(ifc.index, (ifc, now_addrs));
        }
        self.track_rpf();
    }

    /// The injected neighbours on interfaces that exist, for the instance.
    fn external_for(&self, want: &PimConfig) -> Vec<ExternalNeighbor> {
        if !self.external_enabled {
            return Vec::new();
        }
        self.injected
            .iter()
            .filter_map(|n| {
                let ifc = want
                    .interfaces
                    .iter()
                    .find(|c| *c.interface.name == *n.interface)?;
                Some(ExternalNeighbor {
                    ifindex: ifc.interface.index,
                    address: n.address,
                    priority: n.priority,
                    tag: n.tag.clone(),
                })
            })
            .collect()
    }

    /// Re-feeds the config after a change of the injected neighbours.
    fn refresh_external(&mut self) {
        let Some(mut want) = self.last.clone() else {
            return;
        };
        want.external_neighbors = self.external_for(&want);
        if self.last.as_ref() != Some(&want) {
            self.feed(Input::Config(want.clone()));
            self.last = Some(want);
        }
    }

    fn sync_provider(&mut self, config: &Config) {
        let text = &config.control_plane.rpf_provider;
        let statics_changed = self.static_config != config.control_plane.static_rpf
            || std::mem::take(&mut self.reloaded);
        if *text == self.provider_text && !matches!(self.provider, Provider::Failed(_)) {
            if statics_changed {
                if let Provider::Static(s) = &mut self.provider {
                    // The file's routes again (a runtime route for one of
                    // its prefixes is replaced; other runtime routes stay).
                    let stale: Vec<Ipv4Prefix> = s
                        .routes()
                        .iter()
                        .filter(|r| r.origin == "config")
                        .map(|r| r.source)
                        .filter(|p| {
                            !config.control_plane.static_rpf.iter().any(|c| {
                                c.prefix().and_then(|(a, l)| Ipv4Prefix::new(a, l).ok()) == Some(*p)
                            })
                        })
                        .collect();
                    for p in stale {
                        s.remove(&p);
                    }
                    load_static(s, &config.control_plane.static_rpf);
                }
                self.static_config = config.control_plane.static_rpf.clone();
            }
            return;
        }
        self.static_config = config.control_plane.static_rpf.clone();
        // A new provider starts from the config (runtime static routes of
        // an earlier static provider are gone).
        self.provider = match config.control_plane.rpf() {
            None | Some(RpfSetting::Disabled) => Provider::Disabled(rpf::Disabled),
            Some(RpfSetting::Static) => {
                let mut s = rpf::StaticRpf::default();
                load_static(&mut s, &config.control_plane.static_rpf);
                Provider::Static(s)
            }
            Some(RpfSetting::Kernel) => match KernelRpf::open() {
                Ok(k) => Provider::Kernel(k),
                Err(e) => {
                    let why = format!("cannot open rtnetlink for the kernel RPF provider: {e}");
                    tracing::error!("{why}");
                    Provider::Failed(why)
                }
            },
            Some(RpfSetting::Socket(path)) => Provider::External(ExternalRpf::new(path)),
        };
        tracing::info!(provider = %text, "RPF provider set");
        self.rpf_reset();
        self.provider_text = text.clone();
        for q in std::mem::take(&mut self.queries) {
            self.answers.push((
                q.client,
                q.id,
                Response::error(ErrorCode::Unavailable, "the RPF provider changed (reload)"),
            ));
        }
    }

    /// Tells PIM that the config file was reloaded (the static RPF table
    /// takes the file's routes again at the next [`sync`](Self::sync)).
    /// The runtime RP changes (`set-static-rp`, `set-rp`) a reload would
    /// undo, as text for the reload summary.
    pub fn runtime_changes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .glue
            .runtime_static_rp
            .iter()
            .map(|m| {
                format!(
                    "pim static_rp {} -> {}",
                    mcr_config::text::escape(&m.group),
                    m.rp
                )
            })
            .collect();
        match self.glue.runtime_rp_address {
            Some(Some(a)) => v.push(format!("pim rp_address {a}")),
            Some(None) => v.push("pim rp_address cleared".into()),
            None => {}
        }
        v
    }

    pub fn config_reloaded(&mut self) {
        self.reloaded = true;
        self.glue.runtime_static_rp.clear();
        self.glue.runtime_rp_address = None;
    }

    /// Says goodbye (Holdtime 0) on every interface and stops PIM.
    pub fn shutdown(&mut self) {
        if self.driver.is_some() {
            self.feed(Input::Shutdown);
            self.tunnels_down();
        }
        self.driver = None;
        self.last = None;
        self.addrs.clear();
        self.glue.mrib.clear();
        self.glue.rp_sources_dirty = true;
        self.clear_routes = true;
    }
}

fn load_static(s: &mut rpf::StaticRpf, routes: &[mcr_config::StaticRpfRoute]) {
    for r in routes {
        let Some((addr, len)) = r.prefix() else {
            continue;
        };
        let Ok(source) = Ipv4Prefix::new(addr, len) else {
            continue;
        };
        let _ = s.insert(rpf::StaticRoute {
            source,
            interface: r.interface.clone(),
            neighbor: r.neighbor,
            metric: r.metric.unwrap_or(0),
            origin: "config".into(),
        });
    }
}

/// An optional log field as its value, or `-` (not Rust's `Some(..)`).
fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}
