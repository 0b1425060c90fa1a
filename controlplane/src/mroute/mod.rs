//! The route data path: MRIB routes installed in the kernel's multicast
//! forwarding cache (MFC) through the namespace's mroute socket, and the
//! kernel's upcalls turned into PIM notices.
//!
//! One [`Mroute`] owns the socket (see [`socket`]); the supervisor polls it
//! and hands it every MRIB diff. What it does (see `docs/data-path.md`,
//! "Routes"):
//!
//! * **Vifs**: one per interface a route uses or the supervisor lists
//!   (PIM and IGMP proxy interfaces, so a first packet on them reaches us
//!   as a NOCACHE upcall), by ifindex (`VIFF_USE_IFINDEX`); one register vif
//!   (`pimreg`, `VIFF_REGISTER`) on demand. The kernel has
//!   [`sys::MAXVIFS`] = 32: a route that needs a vif past that goes to
//!   mcr's engines (below).
//! * **`(S,G)` routes** are installed as they are: parent = the iif's vif,
//!   TTL threshold 1 on every oif's vif. The kernel forwards the whole IP
//!   packet with TTL - 1, never at TTL <= 1, only when it arrived on the
//!   parent (RPF); a packet on another vif counts in `wrong_if`.
//! * **`(*,G)` routes**: the kernel's own `(*,G)` entries (origin 0.0.0.0)
//!   would hide new sources from PIM (no NOCACHE per source, no per-source
//!   counters; measured in `perf/kernel_star_g.sh`), so, as igmpproxy and
//!   FRR do, a NOCACHE for
//!   `(S,G)` installs an `(S,G)` entry with the `(*,G)`'s iif and oifs, kept
//!   in step with the `(*,G)` and removed with it (or after
//!   [`IDLE_SOURCE`] without a packet). A NOCACHE on the register vif at an
//!   RP installs `(S,G)` with iif = the register vif and the `(*,G)`'s oifs
//!   (RFC 7761 section 4.4.2: decapsulated Register data goes down the
//!   shared tree).
//! * **Upcalls** become [`DataPlaneNotice`]s for PIM (NewSource,
//!   WrongInterface, Traffic from the `SIOCGETSGCNT` counters at most once
//!   a minute per entry) and WHOLEPKT packets its Register data.
//! * **Past the kernel's 32 vifs**: a route that needs a vif the kernel
//!   cannot give (every vif in use, e.g. more than 31 oifs) is handed to
//!   mcr's own data path instead ([`Mroute::engine_routes`]): the
//!   supervisor compiles it into the engines' table, which forward the
//!   whole IP packet out of each oif with TTL - 1. It stays there while it
//!   exists, even if it shrinks back (moving it to the kernel would need
//!   the engines to let go first; staying never forwards a packet twice),
//!   and its kernel entries, `(*,G)`-derived ones included, are removed.
//! * **Precedence over relay rules**: a relay rule whose input is on the
//!   route's iif for its group (and source, when the rule names one) keeps
//!   the traffic; the MFC entry is not installed (`not installed: relay
//!   rule ... takes this traffic`), so no packet is forwarded twice.

pub mod socket;
pub mod sys;
pub mod upcall;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr_protocols::{DataPlaneNotice, Interface, Mrib, MribDiff, Route, RouteKey};
use serde::{Deserialize, Serialize};

use socket::{MfcKernel, MrouteSocket};
use upcall::Upcall;

/// A `(*,G)`-derived `(S,G)` entry without a packet for this long is
/// removed (PIM's Keepalive period, RFC 7761 section 4.11).
pub const IDLE_SOURCE: Duration = Duration::from_secs(210);
/// How often the installed entries' counters are read.
const COUNTER_SWEEP: Duration = Duration::from_secs(10);
/// Least time between two Traffic notices of one entry.
const TRAFFIC_NOTICE: Duration = Duration::from_secs(60);
/// How often entries whose iif changed are read until a packet arrives on
/// the new iif: that first packet is noticed at once (PIM sets the SPTbit
/// on it, RFC 7761 section 4.2.2, and stops the (S,G,rpt) traffic).
const IIF_CHANGE_SWEEP: Duration = Duration::from_millis(250);
/// Most MFC entries installed; beyond, an entry is not installed, counted.
pub const MAX_ENTRIES: usize = 100_000;
/// Most notices and register packets waiting for PIM; beyond, dropped,
/// counted.
const MAX_PENDING: usize = 4096;
/// NOCACHEs without a route remembered at most (see [`UNRESOLVED_TTL`]).
pub const MAX_UNRESOLVED: usize = 4096;
/// How long a NOCACHE without a route is remembered: the kernel's
/// unresolved-entry timeout (`ipmr` keeps it 10 s and sends no further
/// NOCACHE for that (S,G) meanwhile, so a route appearing then would get
/// no entry until the next NOCACHE without this memory).
pub const UNRESOLVED_TTL: Duration = Duration::from_secs(10);
/// How often a socket another router holds is tried again.
const RETRY_OPEN: Duration = Duration::from_secs(30);
/// Upcalls read per loop pass.
const READ_BUDGET: usize = 1024;

/// Whether this process holds the namespace's mroute socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteSocketStatus {
    /// `MRT_INIT` succeeded and the socket is open.
    pub held: bool,
    /// Why it is not held (another multicast router holds it, no
    /// `CAP_NET_RAW`); absent when held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Vifs in use (of 32).
    pub vifs: usize,
    /// MFC entries installed.
    pub entries: usize,
}

/// Counters of the route data path since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteCounters {
    /// NOCACHE upcalls read.
    pub nocache: u64,
    /// WRONGVIF upcalls read.
    pub wrongvif: u64,
    /// WHOLEPKT upcalls read.
    pub wholepkt: u64,
    /// Ordinary IGMP packets drained from the socket.
    pub igmp_drained: u64,
    /// Unparseable or unknown upcalls.
    pub malformed: u64,
    /// Notices or register packets dropped because PIM had not taken the
    /// previous ones.
    pub pending_dropped: u64,
    /// `mroute` events not published: more than 4096 routes moved in one
    /// loop pass (`mcrctl mroute` still lists them all).
    pub events_dropped: u64,
    /// Entries not installed because [`MAX_ENTRIES`] was reached.
    pub entry_limit: u64,
    /// `MRT_ADD_MFC`/`MRT_DEL_MFC`/`MRT_ADD_VIF` failures.
    pub kernel_errors: u64,
    /// NOCACHEs without a route not remembered: [`MAX_UNRESOLVED`] were
    /// already waiting for one.
    #[serde(default)]
    pub unresolved_dropped: u64,
}

/// One installed MFC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The route it comes from: itself, or the `(*,G)` it was derived from.
    from: RouteKey,
    iif: u16,
    oifs: Vec<u16>,
}

/// The counters of one entry as last read.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    packets: u64,
    bytes: u64,
    wrong_if: u64,
    moved_at: Option<Instant>,
    noticed_at: Option<Instant>,
    /// The entry's iif vif at the last counter read.
    iif: Option<u16>,
    /// The iif changed and no packet was counted on the new one yet.
    iif_changed: bool,
}

/// One vif slot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Vif {
    Interface(Interface),
    Register,
}

/// A route forwarded by mcr's engines (see the module docs): its iif and
/// its oifs (never the iif).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineRoute {
    /// The RPF interface: packets to the group arriving elsewhere are not
    /// forwarded.
    pub iif: Interface,
    /// Where each packet leaves, as an Ethernet frame.
    pub oifs: Vec<Interface>,
}

/// Why a route forwarded by the engines has no kernel entry.
const IN_ENGINES: &str = "forwarded by mcr's engines (past the kernel's 32 vifs)";

/// Relay-rule inputs by (ifindex, group): each rule's source filter and id.
type RuleInputs = BTreeMap<(u32, Ipv4Addr), Vec<(Option<Ipv4Addr>, String)>>;

/// What the route data path wants PIM to hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToPim {
    /// A data-plane notice.
    Notice(DataPlaneNotice),
    /// A WHOLEPKT packet to encapsulate in a Register: `(S, G, packet)`.
    RegisterData(Ipv4Addr, Ipv4Addr, Vec<u8>),
}

/// Where a route is installed, for `mcrctl mroute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInstall {
    /// `None`: installed in the kernel (or, with `engines`, in mcr's
    /// engines); `Some(reason)`: not installed.
    pub not_installed: Option<String>,
    /// Forwarded by mcr's engines rather than the kernel (counters then
    /// come from the engines, not from this struct).
    pub engines: bool,
    /// Sources with an installed `(S,G)` entry of this route (for a
    /// `(*,G)`, one per source seen; for an `(S,G)`, its own source).
    pub sources: Vec<Ipv4Addr>,
    /// Packets, bytes and wrong-interface arrivals of those entries.
    pub packets: u64,
    /// Bytes (IP packets, headers included).
    pub bytes: u64,
    /// Arrivals on a vif other than the iif (RPF failures).
    pub wrong_if: u64,
    /// When the route was first seen by the data path.
    pub since: Option<Instant>,
}

/// The route data path. See the module documentation.
pub struct Mroute {
    sock: Option<Box<dyn MfcKernel>>,
    error: Option<String>,
    vifs: [Option<Vif>; sys::MAXVIFS],
    entries: BTreeMap<(Ipv4Addr, Ipv4Addr), Entry>,
    seen: BTreeMap<(Ipv4Addr, Ipv4Addr), Seen>,
    /// Why a route (by key) is not installed.
    not_installed: BTreeMap<RouteKey, String>,
    /// Sources seen (NOCACHE) per group with a `(*,G)` route, and whether
    /// they arrived on the register vif.
    star_sources: BTreeMap<Ipv4Addr, BTreeMap<Ipv4Addr, bool>>,
    /// NOCACHEs that found no route, by (group, source): when, and
    /// whether on the register vif. A `(*,G)` route appearing within
    /// [`UNRESOLVED_TTL`] takes them as if they came now.
    unresolved: BTreeMap<(Ipv4Addr, Ipv4Addr), (Instant, bool)>,
    /// `(S,G)` whose register tunnel is up (PIM at a first-hop DR).
    tunnels: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
    /// When each route appeared.
    since: BTreeMap<RouteKey, Instant>,
    /// Interfaces that get a vif even without a route.
    extra: BTreeSet<Interface>,
    /// This host's addresses: their packets get no `(*,G)`-derived entry.
    local: BTreeSet<Ipv4Addr>,
    /// Relay-rule inputs: (ifindex, group, source) and the rule id.
    rule_inputs: RuleInputs,
    /// Routes forwarded by the engines, not the kernel.
    engine_routes: BTreeMap<RouteKey, EngineRoute>,
    /// `engine_routes` changed since [`Mroute::take_engines_changed`].
    engines_changed: bool,
    to_pim: Vec<ToPim>,
    events: Vec<serde_json::Value>,
    last_sweep: Instant,
    /// When entries whose iif changed were last read.
    last_iif_sweep: Instant,
    /// Now, as of the current [`Mroute::step_at`].
    clock: Instant,
    /// When opening the socket last failed (retried every [`RETRY_OPEN`]).
    failed_at: Option<Instant>,
    buf: Vec<u8>,
    /// Counters since start.
    pub counters: MrouteCounters,
}

impl Default for Mroute {
    fn default() -> Self {
        Mroute {
            sock: None,
            error: None,
            vifs: Default::default(),
            entries: BTreeMap::new(),
            seen: BTreeMap::new(),
            not_installed: BTreeMap::new(),
            star_sources: BTreeMap::new(),
            unresolved: BTreeMap::new(),
            tunnels: BTreeSet::new(),
            since: BTreeMap::new(),
            extra: BTreeSet::new(),
            local: BTreeSet::new(),
            rule_inputs: BTreeMap::new(),
            engine_routes: BTreeMap::new(),
            engines_changed: false,
            to_pim: Vec::new(),
            events: Vec::new(),
            last_sweep: Instant::now(),
            last_iif_sweep: Instant::now(),
            clock: Instant::now(),
            failed_at: None,
            buf: vec![0u8; 65536],
            counters: MrouteCounters::default(),
        }
    }
}

fn sg_key(s: Ipv4Addr, g: Ipv4Addr) -> RouteKey {
    RouteKey::sg(s, g)
}

impl Mroute {
    /// Opens the socket when `wanted` and not open (once per call: a busy
    /// socket is tried again at the next call that wants it), closes it
    /// when not wanted. `wanted` changes only with the config, so a busy
    /// socket is retried at reloads.
    pub fn set_wanted(&mut self, wanted: bool, mrib: &Mrib) {
        match (wanted, self.sock.is_some()) {
            (true, false) => match MrouteSocket::open() {
                Ok(s) => {
                    if let Err(e) = s.set_flag(sys::MRT_PIM, true) {
                        tracing::info!(error = %e, "MRT_PIM refused: the kernel will not decapsulate PIM Registers (no register vif)");
                    }
                    if let Err(e) = s.set_flag(sys::MRT_ASSERT, true) {
                        tracing::info!(error = %e, "MRT_ASSERT refused: no WRONGVIF upcalls");
                    }
                    tracing::info!("mroute socket held: routes are forwarded by the kernel's multicast forwarding cache");
                    self.sock = Some(Box::new(s));
                    self.error = None;
                    self.vifs = Default::default();
                    self.entries.clear();
                    self.resync_all(mrib);
                }
                Err(e) => {
                    let why = match e.raw_os_error() {
                        Some(libc::EADDRINUSE) => format!("another multicast router holds this namespace's mroute socket (smcroute, FRR's pimd, igmpproxy or another mcrd): {e}; routes are not forwarded"),
                        Some(libc::EPERM) | Some(libc::EACCES) => format!("cannot open the mroute socket (needs CAP_NET_RAW): {e}; routes are not forwarded"),
                        _ => format!("cannot open the mroute socket: {e}; routes are not forwarded"),
                    };
                    if self.error.as_deref() != Some(why.as_str()) {
                        tracing::warn!("{why}");
                    }
                    self.error = Some(why);
                    self.failed_at = Some(Instant::now());
                    self.recompute_reasons(mrib);
                }
            },
            (false, true) => {
                self.release();
                self.error = None;
            }
            (false, false) => self.error = None,
            (true, true) => {}
        }
    }

    /// A route data path on `kernel` (a model of it in tests).
    pub fn with_kernel(kernel: Box<dyn MfcKernel>) -> Mroute {
        Mroute {
            sock: Some(kernel),
            ..Mroute::default()
        }
    }

    /// Whether opening failed long enough ago to try again (the other
    /// router may have stopped).
    pub fn retry_due(&self) -> bool {
        self.sock.is_none()
            && self.error.is_some()
            && self.failed_at.is_some_and(|t| t.elapsed() >= RETRY_OPEN)
    }

    /// Whether the socket is held.
    pub fn held(&self) -> bool {
        self.sock.is_some()
    }

    /// For `mcrctl status`: `None` when routing was never wanted.
    pub fn status(&self) -> Option<MrouteSocketStatus> {
        if self.sock.is_none() && self.error.is_none() {
            return None;
        }
        Some(MrouteSocketStatus {
            held: self.sock.is_some(),
            error: self.error.clone(),
            vifs: self.vifs.iter().filter(|v| v.is_some()).count(),
            entries: self.entries.len(),
        })
    }

    /// Sets the interfaces that get a vif without a route (PIM and IGMP
    /// proxy interfaces) and the relay-rule inputs routes yield to:
    /// `(ifindex, group, source, rule id)`.
    pub fn set_context(
        &mut self,
        extra: BTreeSet<Interface>,
        rule_inputs: Vec<(u32, Ipv4Addr, Option<Ipv4Addr>, String)>,
        mrib: &Mrib,
    ) {
        let mut ri = RuleInputs::new();
        for (i, g, s, id) in rule_inputs {
            ri.entry((i, g)).or_default().push((s, id));
        }
        if extra == self.extra && ri == self.rule_inputs {
            return;
        }
        self.extra = extra;
        self.rule_inputs = ri;
        self.resync_all(mrib);
    }

    /// This host's addresses. With the mroute socket held the kernel loops
    /// the host's own multicast (e.g. the IGMPv2 reports the proxy's
    /// upstream membership sends to the group, TTL 1) into the MFC, which
    /// makes NOCACHE upcalls; no `(*,G)`-derived entry is made for them
    /// (PIM still hears of them).
    pub fn set_local_addresses(&mut self, local: BTreeSet<Ipv4Addr>) {
        self.local = local;
    }

    /// The descriptor to poll, if open.
    pub fn poll_fd(&self, fds: &mut Vec<libc::pollfd>) {
        if let Some(s) = &self.sock {
            fds.push(libc::pollfd {
                fd: s.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
    }

    /// What PIM should hear, since the last call.
    pub fn take_to_pim(&mut self) -> Vec<ToPim> {
        std::mem::take(&mut self.to_pim)
    }

    /// `mroute` events (route added, changed, removed), since the last call.
    pub fn take_events(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.events)
    }

    /// The routes the engines forward (past the kernel's 32 vifs).
    pub fn engine_routes(&self) -> &BTreeMap<RouteKey, EngineRoute> {
        &self.engine_routes
    }

    /// Whether [`Mroute::engine_routes`] changed since the last call (the
    /// engines' table must then be compiled again).
    pub fn take_engines_changed(&mut self) -> bool {
        std::mem::take(&mut self.engines_changed)
    }

    /// Decides whether route `r` is the engines' (the one place this is
    /// decided): it already is and still has an iif and no relay rule
    /// takes its traffic, or it newly needs a vif past the kernel's 32.
    fn place(&mut self, r: &Route) {
        let k = r.key;
        let engines = r.iif.is_some()
            && self.sock.is_some()
            && self.rule_conflict(r).is_none()
            && (self.engine_routes.contains_key(&k) || self.past_vifs(r));
        let want = match (&r.iif, engines) {
            (Some(iif), true) => Some(EngineRoute {
                iif: iif.clone(),
                oifs: r
                    .oif_list()
                    .filter(|o| o.index != iif.index)
                    .cloned()
                    .collect(),
            }),
            _ => None,
        };
        match want {
            Some(e) => {
                if self.engine_routes.get(&k) != Some(&e) {
                    if !self.engine_routes.contains_key(&k) {
                        tracing::info!(route = %k, oifs = e.oifs.len(), "route needs more vifs than the kernel's 32: forwarded by mcr's engines");
                    }
                    self.engine_routes.insert(k, e);
                    self.engines_changed = true;
                }
            }
            None => self.unplace(&k),
        }
    }

    fn unplace(&mut self, k: &RouteKey) {
        if self.engine_routes.remove(k).is_some() {
            self.engines_changed = true;
        }
    }

    /// Whether one of the route's interfaces has no vif while all 32 are
    /// in use.
    fn past_vifs(&self, r: &Route) -> bool {
        self.vifs.iter().all(Option::is_some)
            && r.iif
                .iter()
                .chain(r.oif_list())
                .any(|i| self.vif_of(i.index).is_none())
    }

    /// The relay rule that takes a route's traffic on its iif, if any.
    fn rule_conflict(&self, r: &Route) -> Option<String> {
        let i = r.iif.as_ref()?;
        let rules = self.rule_inputs.get(&(i.index, r.key.group))?;
        rules
            .iter()
            .find(|(s, _)| s.is_none() || r.key.source.is_none() || *s == r.key.source)
            .map(|(_, id)| id.clone())
    }

    fn push_pim(&mut self, p: ToPim) {
        if self.to_pim.len() >= MAX_PENDING {
            self.counters.pending_dropped += 1;
        } else {
            self.to_pim.push(p);
        }
    }

    fn vif_interface(&self, vif: u16) -> Option<Interface> {
        match self.vifs.get(usize::from(vif))? {
            Some(Vif::Interface(i)) => Some(i.clone()),
            _ => None,
        }
    }

    fn register_vif(&self) -> Option<u16> {
        self.vifs
            .iter()
            .position(|v| *v == Some(Vif::Register))
            .map(|v| v as u16)
    }

    /// Reads the upcalls waiting, installs `(*,G)`-derived entries and
    /// queues PIM's notices; then the MRIB diff; then, every few seconds,
    /// the counters. `tunnels` are PIM's register tunnel changes.
    pub fn step(&mut self, mrib: &mut Mrib, tunnels: Vec<(Ipv4Addr, Ipv4Addr, bool)>) {
        self.step_at(Instant::now(), mrib, tunnels);
    }

    /// [`Mroute::step`] at `now` (tests drive the clock).
    pub fn step_at(
        &mut self,
        now: Instant,
        mrib: &mut Mrib,
        tunnels: Vec<(Ipv4Addr, Ipv4Addr, bool)>,
    ) {
        self.clock = now;
        let diff = mrib.take_diff();
        self.apply_diff(mrib, &diff);
        for (s, g, up) in tunnels {
            let changed = if up {
                self.tunnels.insert((s, g))
            } else {
                self.tunnels.remove(&(s, g))
            };
            if changed {
                self.reconcile_sg(mrib, s, g);
            }
        }
        self.read_upcalls(mrib);
        if now.saturating_duration_since(self.last_sweep) >= COUNTER_SWEEP {
            self.last_sweep = now;
            self.last_iif_sweep = now;
            self.sweep(mrib, false);
        } else if now.saturating_duration_since(self.last_iif_sweep) >= IIF_CHANGE_SWEEP {
            self.last_iif_sweep = now;
            self.sweep(mrib, true);
        }
    }

    fn read_upcalls(&mut self, mrib: &Mrib) {
        for _ in 0..READ_BUDGET {
            let Some(sock) = &self.sock else { return };
            let n = match sock.recv(&mut self.buf) {
                Ok(Some(n)) => n.min(self.buf.len()),
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "mroute socket read failed");
                    return;
                }
            };
            let bytes = std::mem::take(&mut self.buf);
            match upcall::parse(&bytes[..n]) {
                Ok(u) => self.on_upcall(mrib, u),
                Err(upcall::NotUpcall::Igmp) => self.counters.igmp_drained += 1,
                Err(_) => self.counters.malformed += 1,
            }
            self.buf = bytes;
        }
    }

    fn on_upcall(&mut self, mrib: &Mrib, u: Upcall<'_>) {
        match u {
            Upcall::NoCache { vif, source, group } => {
                self.counters.nocache += 1;
                let on_register = Some(vif) == self.register_vif();
                if let Some(interface) = self.vif_interface(vif) {
                    self.push_pim(ToPim::Notice(DataPlaneNotice::NewSource {
                        interface,
                        source,
                        group,
                    }));
                }
                if mrib.get(&sg_key(source, group)).is_none()
                    && mrib.get(&RouteKey::star_g(group)).is_none()
                    && !self.local.contains(&source)
                {
                    self.remember_unresolved(source, group, on_register);
                }
                if mrib.get(&sg_key(source, group)).is_none()
                    && mrib.get(&RouteKey::star_g(group)).is_some()
                    && !self.local.contains(&source)
                {
                    let srcs = self.star_sources.entry(group).or_default();
                    if srcs.len() < MAX_ENTRIES {
                        srcs.insert(source, on_register);
                    }
                    self.reconcile_sg(mrib, source, group);
                }
            }
            Upcall::WrongVif { vif, source, group } => {
                self.counters.wrongvif += 1;
                if let Some(interface) = self.vif_interface(vif) {
                    self.push_pim(ToPim::Notice(DataPlaneNotice::WrongInterface {
                        interface,
                        source,
                        group,
                    }));
                }
            }
            Upcall::WholePacket {
                source,
                group,
                packet,
            } => {
                self.counters.wholepkt += 1;
                self.push_pim(ToPim::RegisterData(source, group, packet.to_vec()));
            }
        }
    }

    /// Applies one MRIB diff.
    pub fn apply_diff(&mut self, mrib: &Mrib, diff: &MribDiff) {
        if diff.is_empty() {
            return;
        }
        let now = self.clock;
        for k in &diff.added {
            self.since.insert(*k, now);
        }
        for k in &diff.removed {
            self.since.remove(k);
        }
        // Vifs for every interface routes name, before any entry needs one
        // (a (*,G) needs its iif as a vif before its first packet).
        self.sync_vifs(mrib);
        for (kind, keys) in [
            ("added", &diff.added),
            ("changed", &diff.changed),
            ("removed", &diff.removed),
        ] {
            for k in keys {
                self.reconcile_key(mrib, *k);
                let mut e = match mrib.get(k) {
                    Some(r) => route_event(r),
                    None => serde_json::json!({"source": k.source, "group": k.group}),
                };
                e["event"] = serde_json::json!("route");
                e["change"] = serde_json::json!(kind);
                if self.engine_routes.contains_key(k) {
                    e["installed"] = serde_json::json!("engines");
                } else if let Some(why) = self.not_installed.get(k) {
                    e["installed"] = serde_json::json!(format!("not installed: {why}"));
                } else if mrib.get(k).is_some() {
                    e["installed"] = serde_json::json!("kernel");
                }
                if self.events.len() < MAX_PENDING {
                    self.events.push(e);
                } else {
                    self.counters.events_dropped += 1;
                }
            }
        }
        self.sync_vifs(mrib);
    }

    fn reconcile_key(&mut self, mrib: &Mrib, k: RouteKey) {
        match mrib.get(&k) {
            Some(r) => self.place(r),
            None => self.unplace(&k),
        }
        match k.source {
            Some(s) => self.reconcile_sg(mrib, s, k.group),
            None => {
                self.not_installed.remove(&k);
                if let Some(r) = mrib.get(&k) {
                    if let Err(why) = self.resolve(r, false) {
                        self.not_installed.insert(k, why);
                    }
                    self.take_unresolved(k.group);
                }
                let srcs: Vec<Ipv4Addr> = self
                    .star_sources
                    .get(&k.group)
                    .map(|m| m.keys().copied().collect())
                    .unwrap_or_default();
                for s in srcs {
                    self.reconcile_sg(mrib, s, k.group);
                }
                if mrib.get(&k).is_none() {
                    self.star_sources.remove(&k.group);
                }
            }
        }
    }

    /// Remembers a NOCACHE that found no route (bounded: forgets expired
    /// ones first, then drops and counts).
    fn remember_unresolved(&mut self, source: Ipv4Addr, group: Ipv4Addr, on_register: bool) {
        let now = self.clock;
        let key = (group, source);
        if !self.unresolved.contains_key(&key) && self.unresolved.len() >= MAX_UNRESOLVED {
            self.unresolved
                .retain(|_, (t, _)| now.saturating_duration_since(*t) < UNRESOLVED_TTL);
            if self.unresolved.len() >= MAX_UNRESOLVED {
                self.counters.unresolved_dropped += 1;
                return;
            }
        }
        self.unresolved.insert(key, (now, on_register));
    }

    /// Moves the sources of `group` still waiting in the kernel's
    /// unresolved queue (NOCACHE less than [`UNRESOLVED_TTL`] ago) to the
    /// group's `(*,G)` sources, so the caller installs their entries now.
    fn take_unresolved(&mut self, group: Ipv4Addr) {
        let now = self.clock;
        let low = (group, Ipv4Addr::UNSPECIFIED);
        let high = (group, Ipv4Addr::BROADCAST);
        let keys: Vec<_> = self
            .unresolved
            .range(low..=high)
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((g, s), (at, on_register)) in keys {
            self.unresolved.remove(&(g, s));
            if now.saturating_duration_since(at) >= UNRESOLVED_TTL || self.local.contains(&s) {
                continue;
            }
            let srcs = self.star_sources.entry(g).or_default();
            if srcs.len() < MAX_ENTRIES {
                srcs.insert(s, on_register);
            }
        }
    }

    /// The vif numbers of a route's iif (or the register vif) and oifs, or
    /// why it cannot be installed.
    fn resolve(&self, r: &Route, via_register: bool) -> Result<(u16, Vec<u16>), String> {
        if self.engine_routes.contains_key(&r.key) {
            return Err(IN_ENGINES.into());
        }
        if self.sock.is_none() {
            return Err(self
                .error
                .clone()
                .unwrap_or_else(|| "the mroute socket is not open".into()));
        }
        let iif = if via_register {
            self.register_vif()
                .ok_or_else(|| "no register vif".to_string())?
        } else {
            let Some(i) = &r.iif else {
                return Err("no incoming interface (RPF unresolved); forwards nothing".into());
            };
            self.vif_of(i.index).ok_or_else(|| self.no_vif(i))?
        };
        if let (Some(i), false) = (&r.iif, via_register) {
            if let Some(id) = self.rule_conflict(r) {
                return Err(format!(
                    "relay rule '{id}' takes this traffic on {} (relay rules have precedence)",
                    i.name
                ));
            }
        }
        let mut oifs = Vec::with_capacity(r.oifs.len());
        for o in r.oif_list() {
            oifs.push(self.vif_of(o.index).ok_or_else(|| self.no_vif(o))?);
        }
        Ok((iif, oifs))
    }

    fn no_vif(&self, i: &Interface) -> String {
        if self.vifs.iter().all(Option::is_some) {
            format!(
                "needs a vif for {} but the kernel's {} vifs are in use",
                i.name,
                sys::MAXVIFS
            )
        } else {
            format!("no vif for {} (interface missing or down)", i.name)
        }
    }

    fn vif_of(&self, ifindex: u32) -> Option<u16> {
        self.vifs
            .iter()
            .position(|v| matches!(v, Some(Vif::Interface(i)) if i.index == ifindex))
            .map(|v| v as u16)
    }

    /// Brings the `(S,G)` MFC entry in line with the MRIB: its own route,
    /// else the `(*,G)` it was derived from, else none.
    fn reconcile_sg(&mut self, mrib: &Mrib, s: Ipv4Addr, g: Ipv4Addr) {
        let own = sg_key(s, g);
        self.not_installed.remove(&own);
        let star = RouteKey::star_g(g);
        let via = self.star_sources.get(&g).and_then(|m| m.get(&s)).copied();
        let want: Option<Result<Entry, String>> = if let Some(r) = mrib.get(&own) {
            Some(self.resolve(r, false).map(|(iif, oifs)| Entry {
                from: own,
                iif,
                oifs,
            }))
        } else if let (Some(r), Some(via_register)) = (mrib.get(&star), via) {
            if via_register && self.register_vif().is_none() {
                let _ = self.ensure_register_vif();
            }
            self.resolve(r, via_register).ok().map(|(iif, oifs)| {
                Ok(Entry {
                    from: star,
                    iif,
                    oifs,
                })
            })
        } else {
            None
        };
        let want = match want {
            Some(Ok(mut e)) => {
                if self.tunnels.contains(&(s, g)) {
                    match self.ensure_register_vif() {
                        Some(r) => e.oifs.push(r),
                        None => {
                            tracing::debug!(source = %s, group = %g, "no register vif for the register tunnel")
                        }
                    }
                }
                Some(e)
            }
            Some(Err(why)) => {
                if self.entries.get(&(s, g)).is_some_and(|e| e.from == own)
                    || mrib.get(&own).is_some()
                {
                    self.not_installed.insert(own, why);
                }
                None
            }
            None => None,
        };
        let Some(sock) = &self.sock else {
            return;
        };
        match want {
            Some(e) if self.entries.get(&(s, g)) == Some(&e) => {}
            Some(e) => {
                if !self.entries.contains_key(&(s, g)) && self.entries.len() >= MAX_ENTRIES {
                    self.counters.entry_limit += 1;
                    if e.from == own {
                        self.not_installed
                            .insert(own, format!("the data path holds {MAX_ENTRIES} entries"));
                    }
                    return;
                }
                let m = socket::mfcctl(s, g, e.iif, &e.oifs);
                match sock.add_mfc(&m) {
                    Ok(()) => {
                        self.entries.insert((s, g), e);
                        self.seen.entry((s, g)).or_default().moved_at = Some(self.clock);
                    }
                    Err(err) => {
                        self.counters.kernel_errors += 1;
                        tracing::warn!(source = %s, group = %g, error = %err, "MRT_ADD_MFC failed");
                        if e.from == own {
                            self.not_installed
                                .insert(own, format!("the kernel refused the entry: {err}"));
                        }
                    }
                }
            }
            None => {
                if self.entries.remove(&(s, g)).is_some() {
                    self.seen.remove(&(s, g));
                    if let Err(err) = sock.del_mfc(s, g) {
                        self.counters.kernel_errors += 1;
                        tracing::debug!(source = %s, group = %g, error = %err, "MRT_DEL_MFC failed");
                    }
                }
            }
        }
    }

    fn ensure_register_vif(&mut self) -> Option<u16> {
        if let Some(v) = self.register_vif() {
            return Some(v);
        }
        let sock = self.sock.as_ref()?;
        let free = self.vifs.iter().position(Option::is_none)?;
        match sock.add_vif(free as u16, None) {
            Ok(()) => {
                tracing::info!(vif = free, "register vif (pimreg) added");
                self.vifs[free] = Some(Vif::Register);
                Some(free as u16)
            }
            Err(e) => {
                self.counters.kernel_errors += 1;
                tracing::warn!(error = %e, "cannot add the register vif");
                None
            }
        }
    }

    /// Adds vifs for every interface a route or the context names (in
    /// interface-index order, so who gets the last of the 32 is stable),
    /// and removes vifs nothing names any more.
    fn sync_vifs(&mut self, mrib: &Mrib) {
        let Some(sock) = &self.sock else { return };
        let mut want: BTreeSet<Interface> = self.extra.clone();
        for r in mrib.iter() {
            want.extend(r.iif.iter().cloned());
            want.extend(r.oif_list().cloned());
        }
        let in_use: BTreeSet<u16> = self
            .entries
            .values()
            .flat_map(|e| std::iter::once(e.iif).chain(e.oifs.iter().copied()))
            .collect();
        for v in 0..sys::MAXVIFS {
            if let Some(Vif::Interface(i)) = &self.vifs[v] {
                if !want.iter().any(|w| w.index == i.index) && !in_use.contains(&(v as u16)) {
                    let _ = sock.del_vif(v as u16);
                    self.vifs[v] = None;
                }
            }
        }
        for i in want {
            if self.vif_of(i.index).is_some() {
                continue;
            }
            let Some(free) = self.vifs.iter().position(Option::is_none) else {
                break;
            };
            match sock.add_vif(free as u16, Some(i.index)) {
                Ok(()) => self.vifs[free] = Some(Vif::Interface(i)),
                Err(e) => {
                    self.counters.kernel_errors += 1;
                    tracing::debug!(interface = %i.name, error = %e, "MRT_ADD_VIF failed");
                }
            }
        }
    }

    /// Re-derives every entry (after the socket opened, the context or
    /// interfaces changed).
    pub fn resync_all(&mut self, mrib: &Mrib) {
        self.sync_vifs(mrib);
        let keys: Vec<RouteKey> = mrib.iter().map(|r| r.key).collect();
        for k in &keys {
            self.since.entry(*k).or_insert_with(Instant::now);
        }
        let stale: Vec<(Ipv4Addr, Ipv4Addr)> = self
            .entries
            .keys()
            .filter(|(s, g)| {
                mrib.get(&sg_key(*s, *g)).is_none() && mrib.get(&RouteKey::star_g(*g)).is_none()
            })
            .copied()
            .collect();
        for (s, g) in stale {
            self.reconcile_sg(mrib, s, g);
        }
        for k in keys {
            self.reconcile_key(mrib, k);
        }
        self.not_installed.retain(|k, _| mrib.get(k).is_some());
        let before = self.engine_routes.len();
        self.engine_routes.retain(|k, _| mrib.get(k).is_some());
        self.engines_changed |= before != self.engine_routes.len();
        self.since.retain(|k, _| mrib.get(k).is_some());
        self.sync_vifs(mrib);
    }

    fn recompute_reasons(&mut self, mrib: &Mrib) {
        self.not_installed.clear();
        if let Some(why) = &self.error {
            for r in mrib.iter() {
                self.not_installed.insert(r.key, why.clone());
            }
        }
    }

    /// Reads the counters of every entry: Traffic notices for entries that
    /// moved (at most one a minute each, but at once for the first packets
    /// on a changed iif), and idle `(*,G)`-derived entries removed. With
    /// `iif_changes` only entries whose iif changed are read (no idling).
    fn sweep(&mut self, mrib: &Mrib, iif_changes: bool) {
        let Some(sock) = &self.sock else { return };
        let now = self.clock;
        let mut idle = Vec::new();
        let mut notices = Vec::new();
        for (&(s, g), e) in &self.entries {
            let seen = self.seen.entry((s, g)).or_default();
            if seen.iif.is_some_and(|i| i != e.iif) {
                // What was counted so far came in on the old iif: a base.
                seen.iif = Some(e.iif);
                seen.iif_changed = true;
                if let Ok((p, b, w)) = sock.sg_count(s, g) {
                    (seen.packets, seen.bytes, seen.wrong_if) = (p, b, w);
                }
                continue;
            }
            if iif_changes && !seen.iif_changed {
                continue;
            }
            let Ok((p, b, w)) = sock.sg_count(s, g) else {
                continue;
            };
            seen.iif = Some(e.iif);
            if p != seen.packets {
                seen.moved_at = Some(now);
                if seen.iif_changed
                    || seen
                        .noticed_at
                        .is_none_or(|t| now.saturating_duration_since(t) >= TRAFFIC_NOTICE)
                {
                    seen.iif_changed = false;
                    seen.noticed_at = Some(now);
                    if let Some(Some(Vif::Interface(i))) = self.vifs.get(usize::from(e.iif)) {
                        notices.push(DataPlaneNotice::Traffic {
                            interface: i.clone(),
                            source: s,
                            group: g,
                        });
                    }
                }
            }
            (seen.packets, seen.bytes, seen.wrong_if) = (p, b, w);
            if !iif_changes
                && !e.from.is_sg()
                && seen
                    .moved_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_SOURCE)
            {
                idle.push((s, g));
            }
        }
        for n in notices {
            self.push_pim(ToPim::Notice(n));
        }
        for (s, g) in idle {
            if let Some(m) = self.star_sources.get_mut(&g) {
                m.remove(&s);
            }
            self.reconcile_sg(mrib, s, g);
        }
    }

    /// Where `route` is installed and what its entries counted (read now).
    pub fn install_of(&self, route: &Route) -> RouteInstall {
        let k = route.key;
        if self.engine_routes.contains_key(&k) {
            return RouteInstall {
                not_installed: None,
                engines: true,
                sources: Vec::new(),
                packets: 0,
                bytes: 0,
                wrong_if: 0,
                since: self.since.get(&k).copied(),
            };
        }
        let mut out = RouteInstall {
            not_installed: self.not_installed.get(&k).cloned(),
            engines: false,
            sources: Vec::new(),
            packets: 0,
            bytes: 0,
            wrong_if: 0,
            since: self.since.get(&k).copied(),
        };
        if out.not_installed.is_none() && self.sock.is_none() {
            out.not_installed = Some(
                self.error
                    .clone()
                    .unwrap_or_else(|| "the mroute socket is not open".into()),
            );
        }
        let sources: Vec<Ipv4Addr> = match k.source {
            Some(s) => vec![s],
            None => self
                .star_sources
                .get(&k.group)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default(),
        };
        for s in sources {
            let Some(e) = self.entries.get(&(s, k.group)) else {
                continue;
            };
            if e.from != k {
                continue;
            }
            out.sources.push(s);
            let counted = self
                .sock
                .as_ref()
                .and_then(|sock| sock.sg_count(s, k.group).ok());
            if let Some((p, b, w)) = counted {
                out.packets += p;
                out.bytes += b;
                out.wrong_if += w;
            }
        }
        if k.source.is_some() && out.not_installed.is_none() && out.sources.is_empty() {
            out.not_installed = Some("not in the kernel (see the log)".into());
        }
        out
    }

    /// Releases the socket (`MRT_DONE` and close: the kernel flushes our
    /// vifs and entries, `mc_forwarding` goes back to 0).
    pub fn release(&mut self) {
        if let Some(s) = self.sock.take() {
            s.close();
            tracing::info!("mroute socket released");
        }
        self.vifs = Default::default();
        self.entries.clear();
        self.seen.clear();
        self.star_sources.clear();
        self.not_installed.clear();
        if !self.engine_routes.is_empty() {
            self.engine_routes.clear();
            self.engines_changed = true;
        }
    }
}

/// A route as an event payload.
fn route_event(r: &Route) -> serde_json::Value {
    serde_json::json!({
        "source": r.key.source,
        "group": r.key.group,
        "origins": r.origins,
        "iif": r.iif.as_ref().map(|i| i.name.clone()),
        "oifs": r.oif_list().map(|i| i.name.clone()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
