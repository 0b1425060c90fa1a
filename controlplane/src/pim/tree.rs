//! The control-plane side of the PIM-SM trees (RFC 7761 sections 4.1-4.6):
//! RPF answers for every source and RP the trees need, the instance's MRIB
//! updates queued for the supervisor (the MRIB's one owner), local members
//! from IGMP, the data path's notices and register-vif packets, the RP
//! mappings changed at run time, and the `pim_join_state` / `pim_rp`
//! answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Instant;

use mcr_config::Config;
use mcr_protocols::pim::fsm::{AssertState, DownState, RegState, RptDownState, RptUpState};
use mcr_protocols::pim::tree::{EntryKey, Sg};
use mcr_protocols::pim::{PimMessage, Register, SptSwitchover, StaticRp, TreeConfig};
use mcr_protocols::{
    DataPlaneNotice, FilterMode, Input, Interface, Ipv4Prefix, Mrib, MribError, MribUpdate,
    RpfChange, RpfRoute, SourceFilter, Timestamp,
};

use super::PimRuntime;
use crate::control::api::{
    PimAssertMetric, PimDownstreamEntry, PimJoinEntry, PimJoinState, PimMalformedCounters, PimRp,
    PimRpForGroup, PimRpMapping, PimTreeCounters,
};
use crate::rpf::Lookup;

/// Bound of the addresses (sources and RPs) whose RPF answer is tracked.
pub const MAX_TRACKED_RPF: usize = 65_536;
/// What an RPF scan depends on: entries held, static RPs, `rp_address`.
type ScanSig = (usize, usize, Option<Ipv4Addr>);

/// How often the RPF scan runs when the entry count did not move.
const RPF_RESCAN: std::time::Duration = std::time::Duration::from_secs(1);
/// Bound of register-tunnel changes waiting for
/// [`PimRuntime::take_register_tunnels`].
pub const MAX_TUNNEL_CHANGES: usize = 65_536;
/// Bound of MRIB updates waiting for [`PimRuntime::apply_mrib`].
pub const MAX_MRIB_QUEUE: usize = 1 << 20;
/// Largest data packet encapsulated in a Register: an IPv4 datagram of
/// 65535 bytes less the outer IPv4 (20) and Register (8) headers.
pub const MAX_REGISTER_DATA: usize = 65_535 - 28;

/// Data-plane notices kept while their source's RPF answer is pending.
pub const MAX_DEFERRED_NOTICES: usize = 256;

/// The source a data-plane notice is about.
fn notice_source(n: &DataPlaneNotice) -> Ipv4Addr {
    match n {
        DataPlaneNotice::NewSource { source, .. }
        | DataPlaneNotice::Traffic { source, .. }
        | DataPlaneNotice::WrongInterface { source, .. } => *source,
    }
}

/// What the control plane keeps beside the tree state.
#[derive(Debug, Default)]
pub struct TreeGlue {
    /// Last RPF answer fed per tracked address (`None`: no route).
    pub(super) tracked: BTreeMap<Ipv4Addr, Option<RpfRoute>>,
    /// Addresses asked of an external provider, answer pending.
    pub(super) asking: BTreeSet<Ipv4Addr>,
    /// MRIB updates for the supervisor.
    pub(super) mrib: Vec<MribUpdate>,
    /// Register-tunnel changes (S, G, up) for the route data path.
    pub(super) tunnels: Vec<(Ipv4Addr, Ipv4Addr, bool)>,
    /// Runtime static RP mappings (replace a file mapping of the same
    /// range, or add one), until the next reload.
    pub(super) runtime_static_rp: Vec<mcr_config::StaticRp>,
    /// Runtime `rp_address` (`Some(None)`: cleared), until the next
    /// reload; `None`: the file's.
    pub(super) runtime_rp_address: Option<Option<Ipv4Addr>>,
    /// What the last RPF scan saw (entries, static RPs, rp_address) and
    /// when.
    pub(super) last_scan: Option<(ScanSig, Instant)>,
    /// The instance is new: IGMP's members must be fed again.
    pub(super) needs_members: bool,
    /// PIM's routes changed (or PIM stopped) since the last
    /// [`PimRuntime::take_rp_sources`]: the sources MSDP originates SAs for
    /// may have changed.
    pub(super) rp_sources_dirty: bool,
    /// Data-plane notices waiting for their source's RPF answer.
    pub(super) deferred: Vec<DataPlaneNotice>,
    pub(super) counters: GlueCounters,
}

/// Control-plane counters around the trees (shown by `pim_join_state`).
#[derive(Debug, Default, Clone, Copy)]
pub struct GlueCounters {
    pub(super) mrib_route_limit: u64,
    pub(super) mrib_refused: u64,
    pub(super) rpf_untracked: u64,
    pub(super) rpf_unavailable: u64,
    pub(super) register_data_sent: u64,
    pub(super) register_data_no_tunnel: u64,
    pub(super) register_data_dropped: u64,
    pub(super) tunnel_changes_dropped: u64,
}

fn parse_range(text: &str) -> Option<Ipv4Prefix> {
    let srp = mcr_config::StaticRp {
        group: text.into(),
        rp: Ipv4Addr::UNSPECIFIED,
    };
    let (a, l) = srp.group_prefix().ok()?;
    Ipv4Prefix::new(a, l).ok()
}

/// One downstream interface before naming: (index, state, expiry,
/// prune-pending).
type DownRow = (u32, String, Option<Timestamp>, Option<Timestamp>);

fn secs_until(now: Timestamp, t: Option<Timestamp>) -> Option<u64> {
    t.map(|t| t.saturating_duration_since(now).as_secs())
}

impl PimRuntime {
    /// The static RP mappings in force: the file's, with runtime ones
    /// replacing those of the same range or added; (mapping, origin).
    pub(super) fn effective_static_rp(
        &self,
        config: &Config,
    ) -> Vec<(mcr_config::StaticRp, &'static str)> {
        let mut out: Vec<(mcr_config::StaticRp, &'static str)> = config
            .pim
            .static_rp
            .iter()
            .map(|s| (s.clone(), "config"))
            .collect();
        for r in &self.glue.runtime_static_rp {
            let p = parse_range(&r.group);
            match out.iter_mut().find(|(s, _)| parse_range(&s.group) == p) {
                Some(slot) => *slot = (r.clone(), "runtime"),
                None => out.push((r.clone(), "runtime")),
            }
        }
        out
    }

    /// `rp_address` in force and its origin.
    pub(super) fn effective_rp_address(
        &self,
        config: &Config,
    ) -> (Option<Ipv4Addr>, Option<&'static str>) {
        match self.glue.runtime_rp_address {
            Some(a) => (a, Some("runtime")),
            None => (
                config.pim.rp_address,
                config.pim.rp_address.map(|_| "config"),
            ),
        }
    }

    /// The tree part of the instance's configuration.
    pub(super) fn tree_config(&self, config: &Config) -> TreeConfig {
        let static_rp = self
            .effective_static_rp(config)
            .into_iter()
            .filter_map(|(s, _)| {
                Some(StaticRp {
                    group: parse_range(&s.group)?,
                    rp: s.rp,
                })
            })
            .collect();
        TreeConfig {
            static_rp,
            rp_address: self.effective_rp_address(config).0,
            spt_switchover: match config.pim.spt_switchover {
                mcr_config::SptSwitchover::Immediate => SptSwitchover::Immediate,
                mcr_config::SptSwitchover::Never => SptSwitchover::Never,
            },
            max_entries: config.pim.max_tree_entries.max(1) as usize,
            ..TreeConfig::default()
        }
    }

    /// The running config's `pim` section with the runtime RP changes (for
    /// `config show` and `config save`).
    pub fn running_pim(&self, config: &Config) -> mcr_config::PimConfig {
        let mut p = config.pim.clone();
        p.static_rp = self
            .effective_static_rp(config)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        p.rp_address = self.effective_rp_address(config).0;
        p
    }

    /// Applies the MRIB updates the instance asked for since the last call
    /// (the supervisor owns the MRIB). Refusals are counted.
    pub fn apply_mrib(&mut self, mrib: &mut Mrib) {
        if std::mem::take(&mut self.clear_routes) {
            mrib.remove_origin(mcr_protocols::Origin::Pim);
        }
        for u in std::mem::take(&mut self.glue.mrib) {
            match mrib.apply(u) {
                Ok(_) => {}
                Err(MribError::RouteLimit(_)) => self.glue.counters.mrib_route_limit += 1,
                Err(e) => {
                    self.glue.counters.mrib_refused += 1;
                    tracing::debug!(error = %e, "MRIB refused a PIM route");
                }
            }
        }
    }

    pub(super) fn queue_mrib(&mut self, u: MribUpdate) {
        if self.glue.mrib.len() >= MAX_MRIB_QUEUE {
            self.glue.counters.mrib_refused += 1;
            return;
        }
        self.glue.mrib.push(u);
    }

    /// Every register tunnel still up, reported down (PIM stops).
    pub(super) fn tunnels_down(&mut self) {
        let up: Vec<(Ipv4Addr, Ipv4Addr)> = self.driver.as_ref().map_or_else(Vec::new, |d| {
            d.protocol()
                .tree()
                .groups()
                .iter()
                .flat_map(|(g, st)| {
                    st.sources
                        .iter()
                        .filter(|(_, sg)| sg.register == RegState::Join)
                        .map(move |(s, _)| (*s, *g))
                })
                .collect()
        });
        for (s, g) in up {
            self.note_tunnel(s, g, false);
        }
    }

    pub(super) fn note_tunnel(&mut self, source: Ipv4Addr, group: Ipv4Addr, up: bool) {
        if self.glue.tunnels.len() >= MAX_TUNNEL_CHANGES {
            self.glue.counters.tunnel_changes_dropped += 1;
            return;
        }
        self.glue.tunnels.push((source, group, up));
    }

    /// Whether the instance is new and wants every local member again
    /// ([`local_members`](Self::local_members)); clears the flag.
    pub fn take_needs_members(&mut self) -> bool {
        std::mem::take(&mut self.glue.needs_members) && self.driver.is_some()
    }

    /// IGMP's members of `group` on `interface` (RFC 7761 section 4.1
    /// `local_receiver_include`): the MRIB's merged filter, or `INCLUDE {}`
    /// when the last member left.
    pub fn local_members(&mut self, interface: Interface, group: Ipv4Addr, filter: SourceFilter) {
        if self.driver.is_none() {
            return;
        }
        self.feed(Input::LocalMembers {
            interface,
            group,
            filter,
        });
        self.track_rpf();
    }

    /// An MSDP SA for (S,G) entered (`active`) or left the SA cache (RFC
    /// 3618 section 3): fed to the instance as `Input::SourceActive`; at the
    /// RP with receivers for G it joins toward S while the SA is active.
    pub fn source_active(&mut self, source: Ipv4Addr, group: Ipv4Addr, active: bool) {
        if self.driver.is_none() {
            return;
        }
        self.feed(Input::SourceActive {
            source,
            group,
            active,
        });
        self.track_rpf();
    }

    /// The sources of this domain we are the RP for and know, as (S, G)
    /// (registered to us, or directly connected where we are the DR: what
    /// MSDP originates SAs for, RFC 3618 section 3), when they may have
    /// changed since the last call (PIM's routes changed, a first Register
    /// or a Keepalive Timer start or expiry at the RP, or PIM stopped: then
    /// empty); `None` otherwise, so the caller does no work.
    pub fn take_rp_sources(&mut self) -> Option<Vec<(Ipv4Addr, Ipv4Addr)>> {
        let changed = self
            .driver
            .as_mut()
            .is_some_and(|d| d.protocol_mut().take_rp_sources_changed());
        if !std::mem::take(&mut self.glue.rp_sources_dirty) && !changed {
            return None;
        }
        Some(
            self.driver
                .as_ref()
                .map_or_else(Vec::new, |d| d.protocol().rp_sources()),
        )
    }

    /// A notice from the route data path (kernel upcalls, route counters):
    /// fed to the instance as `Input::DataPlane`. The source's RPF answer
    /// is asked first: whether this router is the source's first-hop DR
    /// (RFC 7761 section 4.4.1) or on its SPT depends on it, and a NOCACHE
    /// comes once per unresolved entry, so a notice judged without the
    /// answer would be lost. A notice waiting for an external provider's
    /// answer is kept (bounded by [`MAX_DEFERRED_NOTICES`], dropped and
    /// counted as `rpf_untracked` beyond) and fed with the answer.
    pub fn data_plane_notice(&mut self, notice: DataPlaneNotice) {
        if self.driver.is_none() {
            return;
        }
        let source = notice_source(&notice);
        if !self.glue.tracked.contains_key(&source) && !self.glue.asking.contains(&source) {
            if self.glue.tracked.len() + self.glue.asking.len() >= MAX_TRACKED_RPF {
                self.glue.counters.rpf_untracked += 1;
            } else {
                self.lookup_and_feed(source);
            }
        }
        if self.glue.asking.contains(&source) {
            if self.glue.deferred.len() >= MAX_DEFERRED_NOTICES {
                self.glue.counters.rpf_untracked += 1;
            } else {
                self.glue.deferred.push(notice);
            }
            return;
        }
        self.feed(Input::DataPlane(notice));
        self.track_rpf();
    }

    /// A data packet from the kernel's register vif (whole IPv4 packet,
    /// `IGMPMSG_WHOLEPKT`): encapsulated in a PIM Register (RFC 7761
    /// section 4.4.1) and sent unicast to the RP of (S,G) while its register
    /// tunnel is up; dropped and counted otherwise.
    pub fn register_data(&mut self, source: Ipv4Addr, group: Ipv4Addr, ip_packet: &[u8]) {
        let rp = self.driver.as_ref().and_then(|d| {
            let sg = d
                .protocol()
                .tree()
                .groups()
                .get(&group)?
                .sources
                .get(&source)?;
            (sg.register == RegState::Join)
                .then_some(sg.register_rp)
                .flatten()
        });
        let Some(rp) = rp else {
            self.glue.counters.register_data_no_tunnel += 1;
            return;
        };
        if ip_packet.len() > MAX_REGISTER_DATA || ip_packet.len() < 20 {
            self.glue.counters.register_data_dropped += 1;
            return;
        }
        let msg = PimMessage::Register(Register {
            border: false,
            null_register: false,
            packet: ip_packet.to_vec(),
        });
        let (Some(bytes), Some(sock)) = (msg.encode(), &self.socket) else {
            self.glue.counters.register_data_dropped += 1;
            return;
        };
        match sock.send(0, rp, &bytes) {
            Ok(()) => self.glue.counters.register_data_sent += 1,
            Err(e) => {
                self.glue.counters.register_data_dropped += 1;
                tracing::debug!(rp = %rp, error = %e, "Register send failed");
            }
        }
    }

    /// Register-tunnel changes since the last call: (S, G, up) from the
    /// instance's `register-tunnel` events (`add`/`update` up, `remove`
    /// down), in order.
    pub fn take_register_tunnels(&mut self) -> Vec<(Ipv4Addr, Ipv4Addr, bool)> {
        std::mem::take(&mut self.glue.tunnels)
    }

    /// Every address the trees need an RPF answer for: each configured RP
    /// and each source with `(S,G)` state.
    fn rpf_wanted(&self, config_rps: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
        let mut want: Vec<Ipv4Addr> = config_rps.to_vec();
        if let Some(d) = &self.driver {
            for st in d.protocol().tree().groups().values() {
                want.extend(st.sources.keys().copied());
            }
        }
        want
    }

    /// Asks the provider about every needed address not asked yet and
    /// feeds the answers (`Input::Rpf` for the host, so it wins over any
    /// shorter prefix). Bounded by [`MAX_TRACKED_RPF`]; at the bound,
    /// addresses no longer needed are forgotten first.
    pub(super) fn track_rpf(&mut self) {
        let Some(d) = &self.driver else {
            return;
        };
        // The scan walks every entry: after each poll only when the entry
        // count moved, else at most once a second (an entry replaced by
        // another within one poll keeps the count).
        let count = d.protocol().tree().entry_count();
        let cfg = d.protocol().tree().config();
        let sig = (count, cfg.static_rp.len(), cfg.rp_address);
        if let Some((last, at)) = self.glue.last_scan {
            if last == sig && at.elapsed() < RPF_RESCAN {
                return;
            }
        }
        self.glue.last_scan = Some((sig, Instant::now()));
        let mut rps: Vec<Ipv4Addr> = cfg.static_rp.iter().map(|s| s.rp).collect();
        rps.extend(cfg.rp_address);
        let wanted = self.rpf_wanted(&rps);
        let fresh: Vec<Ipv4Addr> = wanted
            .iter()
            .copied()
            .filter(|a| !self.glue.tracked.contains_key(a) && !self.glue.asking.contains(a))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if fresh.is_empty() {
            return;
        }
        if self.glue.tracked.len() + fresh.len() > MAX_TRACKED_RPF {
            let keep: BTreeSet<Ipv4Addr> = wanted.iter().copied().collect();
            self.glue.tracked.retain(|a, _| keep.contains(a));
        }
        for a in fresh {
            if self.glue.tracked.len() + self.glue.asking.len() >= MAX_TRACKED_RPF {
                self.glue.counters.rpf_untracked += 1;
                continue;
            }
            self.lookup_and_feed(a);
        }
    }

    fn lookup_and_feed(&mut self, a: Ipv4Addr) {
        let Some(p) = self.provider.dyn_mut() else {
            self.glue.counters.rpf_unavailable += 1;
            self.glue.tracked.insert(a, None);
            return;
        };
        match p.lookup(Instant::now(), a) {
            Lookup::Answer(r) => self.rpf_answer(a, r),
            Lookup::Pending => {
                self.glue.asking.insert(a);
            }
            Lookup::Unavailable(_) => {
                self.glue.counters.rpf_unavailable += 1;
                self.glue.tracked.insert(a, None);
            }
        }
    }

    /// Records the answer for `a` and feeds it when it changed.
    pub(super) fn rpf_answer(&mut self, a: Ipv4Addr, route: Option<RpfRoute>) {
        self.glue.asking.remove(&a);
        let before = self.glue.tracked.insert(a, route.clone());
        // Nothing fed yet and no route: the instance knows no more.
        if before.as_ref() != Some(&route) && !(before.is_none() && route.is_none()) {
            self.feed(Input::Rpf(RpfChange {
                prefix: Ipv4Prefix::host(a),
                route,
            }));
        }
        if self.glue.deferred.iter().any(|n| notice_source(n) == a) {
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.glue.deferred)
                .into_iter()
                .partition(|n| notice_source(n) == a);
            self.glue.deferred = later;
            for n in now {
                self.feed(Input::DataPlane(n));
            }
        }
    }

    /// A provider's change for `prefix`: tracked addresses inside it are
    /// asked again (their host entries would hide the prefix's change).
    pub(super) fn rpf_prefix_changed(&mut self, prefix: Ipv4Prefix) {
        let inside: Vec<Ipv4Addr> = self
            .glue
            .tracked
            .keys()
            .copied()
            .filter(|a| prefix.contains(*a))
            .collect();
        for a in inside {
            self.lookup_and_feed_again(a);
        }
    }

    fn lookup_and_feed_again(&mut self, a: Ipv4Addr) {
        let Some(p) = self.provider.dyn_mut() else {
            return;
        };
        match p.lookup(Instant::now(), a) {
            Lookup::Answer(r) => self.rpf_answer(a, r),
            Lookup::Pending => {
                self.glue.asking.insert(a);
            }
            Lookup::Unavailable(_) => self.glue.counters.rpf_unavailable += 1,
        }
    }

    /// Forgets every RPF answer (a new provider answers afresh).
    pub(super) fn rpf_reset(&mut self) {
        let old = std::mem::take(&mut self.glue.tracked);
        self.glue.asking.clear();
        self.glue.last_scan = None;
        for (a, r) in old {
            if r.is_some() {
                self.feed(Input::Rpf(RpfChange {
                    prefix: Ipv4Prefix::host(a),
                    route: None,
                }));
            }
        }
    }

    fn ifname(&self, ifindex: u32) -> String {
        self.addrs
            .get(&ifindex)
            .map(|(i, _)| i.name.to_string())
            .unwrap_or_else(|| ifindex.to_string())
    }

    fn is_local(&self, a: Ipv4Addr, rp_address: Option<Ipv4Addr>) -> bool {
        rp_address == Some(a)
            || self
                .addrs
                .values()
                .any(|(_, l)| l.iter().any(|x| x.address == a))
    }

    /// `pim_rp`: the mappings in force and, with `group`, RP(G).
    pub(super) fn rp_answer(&self, config: &Config, group: Option<Ipv4Addr>) -> PimRp {
        let (rp_address, origin) = self.effective_rp_address(config);
        let mappings = self.effective_static_rp(config);
        let group = group.map(|g| {
            let best = mappings
                .iter()
                .filter_map(|(s, _)| Some((parse_range(&s.group)?, s)))
                .filter(|(p, _)| p.contains(g))
                .max_by_key(|(p, _)| p.prefix_len());
            let (rp, via) = match best {
                Some((_, s)) => (Some(s.rp), Some(format!("static_rp {}", s.group))),
                None => (rp_address, rp_address.map(|_| "rp_address".to_string())),
            };
            PimRpForGroup {
                group: g,
                rp,
                via,
                local: rp.is_some_and(|r| self.is_local(r, rp_address)),
            }
        });
        PimRp {
            rp_address,
            rp_address_origin: origin.map(String::from),
            static_rp: mappings
                .iter()
                .map(|(s, o)| PimRpMapping {
                    group: s.group.clone(),
                    rp: s.rp,
                    origin: (*o).into(),
                    local: self.is_local(s.rp, rp_address),
                })
                .collect(),
            group,
        }
    }

    fn rpf_of(&self, a: Option<Ipv4Addr>) -> (Option<String>, Option<Ipv4Addr>) {
        match a
            .and_then(|a| self.glue.tracked.get(&a))
            .and_then(Option::as_ref)
        {
            Some(r) => (Some(r.interface.name.to_string()), r.neighbor),
            None => (None, None),
        }
    }

    /// `pim_join_state`.
    pub(super) fn join_state(&self) -> PimJoinState {
        let now = self.now();
        let mut entries = Vec::new();
        let mut malformed = PimMalformedCounters::default();
        let (counters, count, max, not_pim) = match &self.driver {
            Some(d) => {
                let pim = d.protocol();
                let tree = pim.tree();
                for c in pim.interfaces().values().map(|i| &i.counters) {
                    malformed.bad_checksum += c.bad_checksum;
                    malformed.truncated += c.truncated;
                    malformed.bad_version += c.bad_version;
                    malformed.bad_option += c.bad_option;
                    malformed.unknown_type += c.unknown_type;
                }
                let asserts = tree.asserts();
                let assert_of = |key: EntryKey, i: u32| {
                    asserts.get(&(key, i)).and_then(|a| {
                        let state = match a.state {
                            AssertState::NoInfo => return None,
                            AssertState::Winner => "winner",
                            AssertState::Loser => "loser",
                        };
                        Some((state.to_string(), a.winner, secs_until(now, a.timer)))
                    })
                };
                // pim_include(*,G) / pim_include(S,G): IGMP members where
                // we are the DR (section 4.1.6), shown as `local-members`.
                let mut local: BTreeMap<EntryKey, Vec<u32>> = BTreeMap::new();
                for (g, ifc, f) in tree.local_receivers() {
                    if !pim.interfaces().get(&ifc.index).is_some_and(|i| i.is_dr()) {
                        continue;
                    }
                    match f.mode {
                        FilterMode::Exclude => {
                            local.entry(EntryKey::StarG(g)).or_default().push(ifc.index)
                        }
                        FilterMode::Include => {
                            for s in &f.sources {
                                local
                                    .entry(EntryKey::Sg(*s, g))
                                    .or_default()
                                    .push(ifc.index);
                            }
                        }
                    }
                }
                let down = |key: EntryKey, mut list: Vec<DownRow>| {
                    for i in local.get(&key).into_iter().flatten() {
                        if !list.iter().any(|x| x.0 == *i) {
                            list.push((*i, "local-members".into(), None, None));
                        }
                    }
                    let mut ifs: BTreeSet<u32> = list.iter().map(|x| x.0).collect();
                    ifs.extend(asserts.keys().filter(|(k, _)| *k == key).map(|(_, i)| *i));
                    ifs.into_iter()
                        .map(|i| {
                            let d = list.iter().find(|x| x.0 == i);
                            let a = assert_of(key, i);
                            PimDownstreamEntry {
                                interface: self.ifname(i),
                                state: d.map_or("none".into(), |d| d.1.clone()),
                                expiry: d.and_then(|d| secs_until(now, d.2)),
                                prune_pending: d.and_then(|d| secs_until(now, d.3)),
                                assert: a.as_ref().map(|a| a.0.clone()),
                                assert_winner: a.as_ref().and_then(|a| a.1).map(|w| w.address),
                                assert_metric: a.as_ref().and_then(|a| a.1).map(|w| {
                                    PimAssertMetric {
                                        rpt: w.rpt,
                                        preference: w.preference,
                                        metric: w.metric,
                                    }
                                }),
                                assert_timer: a.as_ref().and_then(|a| a.2),
                            }
                        })
                        .collect::<Vec<_>>()
                };
                let down_name = |s: DownState| match s {
                    DownState::NoInfo => "no-info",
                    DownState::Join => "join",
                    DownState::PrunePending => "prune-pending",
                };
                for (g, st) in tree.groups() {
                    let rp = tree.rp_for(*g);
                    if let Some(star) = &st.star {
                        let (rif, rnb) = match star.upstream {
                            Some(u) => (Some(self.ifname(u.ifindex)), Some(u.neighbor)),
                            None => self.rpf_of(rp),
                        };
                        let list = star
                            .down
                            .iter()
                            .map(|(i, d)| {
                                (
                                    *i,
                                    down_name(d.state).to_string(),
                                    d.timers.expiry,
                                    d.timers.prune_pending,
                                )
                            })
                            .collect();
                        entries.push(PimJoinEntry {
                            kind: "star-g".into(),
                            group: *g,
                            source: None,
                            rp,
                            upstream: up_name(star.up == mcr_protocols::pim::fsm::UpState::Joined),
                            rpf_interface: rif,
                            rpf_neighbor: rnb,
                            join_timer: secs_until(now, star.join_timer),
                            spt_bit: None,
                            keepalive: None,
                            register: None,
                            register_rp: None,
                            downstream: down(EntryKey::StarG(*g), list),
                        });
                    }
                    for (s, sg) in &st.sources {
                        entries.push(self.sg_entry(now, *g, *s, rp, sg, &down, down_name));
                        if !sg.rpt_down.is_empty() || sg.rpt_up != RptUpState::RptNotJoined {
                            let list = sg
                                .rpt_down
                                .iter()
                                .map(|(i, d)| {
                                    let name = match d.state {
                                        RptDownState::NoInfo => "no-info",
                                        RptDownState::Prune => "prune",
                                        RptDownState::PrunePending => "prune-pending",
                                        RptDownState::PruneTmp => "prune-tmp",
                                        RptDownState::PrunePendingTmp => "prune-pending-tmp",
                                    };
                                    (
                                        *i,
                                        name.to_string(),
                                        d.timers.expiry,
                                        d.timers.prune_pending,
                                    )
                                })
                                .collect();
                            let (rif, rnb) = self.rpf_of(rp);
                            entries.push(PimJoinEntry {
                                kind: "sg-rpt".into(),
                                group: *g,
                                source: Some(*s),
                                rp,
                                upstream: match sg.rpt_up {
                                    RptUpState::RptNotJoined => "rpt-not-joined",
                                    RptUpState::Pruned => "pruned",
                                    RptUpState::NotPruned => "not-pruned",
                                }
                                .into(),
                                rpf_interface: rif,
                                rpf_neighbor: rnb,
                                join_timer: secs_until(now, sg.override_timer),
                                spt_bit: None,
                                keepalive: None,
                                register: None,
                                register_rp: None,
                                downstream: down(EntryKey::SgRpt(*s, *g), list),
                            });
                        }
                    }
                }
                (
                    *tree.counters(),
                    tree.entry_count(),
                    tree.config().max_entries,
                    pim.not_pim_interface(),
                )
            }
            None => Default::default(),
        };
        let c = &self.glue.counters;
        PimJoinState {
            entries,
            entry_count: count,
            max_entries: max,
            counters: PimTreeCounters {
                tree: counters,
                malformed,
                not_pim_interface: not_pim,
                mrib_route_limit: c.mrib_route_limit,
                mrib_refused: c.mrib_refused,
                rpf_untracked: c.rpf_untracked,
                rpf_unavailable: c.rpf_unavailable,
                register_data_sent: c.register_data_sent,
                register_data_no_tunnel: c.register_data_no_tunnel,
                register_data_dropped: c.register_data_dropped,
                tunnel_changes_dropped: c.tunnel_changes_dropped,
                send_errors: self.send_errors,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sg_entry(
        &self,
        now: Timestamp,
        g: Ipv4Addr,
        s: Ipv4Addr,
        rp: Option<Ipv4Addr>,
        sg: &Sg,
        down: &dyn Fn(EntryKey, Vec<DownRow>) -> Vec<PimDownstreamEntry>,
        down_name: fn(DownState) -> &'static str,
    ) -> PimJoinEntry {
        let (rif, rnb) = match sg.upstream {
            Some(u) => (Some(self.ifname(u.ifindex)), Some(u.neighbor)),
            None => self.rpf_of(Some(s)),
        };
        let list = sg
            .down
            .iter()
            .map(|(i, d)| {
                (
                    *i,
                    down_name(d.state).to_string(),
                    d.timers.expiry,
                    d.timers.prune_pending,
                )
            })
            .collect();
        PimJoinEntry {
            kind: "sg".into(),
            group: g,
            source: Some(s),
            rp,
            upstream: up_name(sg.up == mcr_protocols::pim::fsm::UpState::Joined),
            rpf_interface: rif,
            rpf_neighbor: rnb,
            join_timer: secs_until(now, sg.join_timer),
            spt_bit: Some(sg.spt_bit),
            keepalive: secs_until(now, sg.keepalive),
            register: Some(
                match sg.register {
                    RegState::NoInfo => "no-info",
                    RegState::Join => "join",
                    RegState::JoinPending => "join-pending",
                    RegState::Prune => "prune",
                }
                .into(),
            ),
            register_rp: sg.register_rp,
            downstream: down(EntryKey::Sg(s, g), list),
        }
    }
}

fn up_name(joined: bool) -> String {
    if joined { "joined" } else { "not-joined" }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr_protocols::pim::PimEvent;
    use mcr_protocols::{Action, Event, EventCategory, MribLimits, Origin, RouteKey};

    fn tunnel(
        action: &'static str,
        s: Ipv4Addr,
        g: Ipv4Addr,
    ) -> mcr_protocols::ActionOf<mcr_protocols::pim::Pim> {
        Action::Event(Event {
            category: EventCategory::Pim,
            kind: "register-tunnel",
            payload: PimEvent {
                interface: "eth0".into(),
                source: Some(s),
                group: Some(g),
                rp: Some(Ipv4Addr::new(10, 0, 0, 1)),
                action: Some(action),
                ..PimEvent::default()
            },
        })
    }

    #[test]
    fn register_tunnel_events_become_tunnel_changes_in_order_and_bounded() {
        let mut rt = PimRuntime::new();
        let (s, g) = (Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::new(239, 1, 1, 1));
        let mut acts = vec![
            tunnel("add", s, g),
            tunnel("update", s, g),
            tunnel("remove", s, g),
        ];
        rt.execute(&mut acts);
        assert_eq!(
            rt.take_register_tunnels(),
            vec![(s, g, true), (s, g, true), (s, g, false)]
        );
        assert!(rt.take_register_tunnels().is_empty());
        // Nobody collects: bounded, the rest counted.
        for _ in 0..MAX_TUNNEL_CHANGES + 5 {
            rt.execute(&mut vec![tunnel("add", s, g)]);
        }
        assert_eq!(rt.take_register_tunnels().len(), MAX_TUNNEL_CHANGES);
        assert_eq!(rt.glue.counters.tunnel_changes_dropped, 5);
        // The events are published too.
        assert!(rt
            .take_events()
            .iter()
            .all(|e| e["event"] == "register-tunnel"));
    }

    #[test]
    fn register_data_without_a_tunnel_is_counted_not_sent() {
        let mut rt = PimRuntime::new();
        let pkt = [0x45u8; 40];
        rt.register_data(
            Ipv4Addr::new(10, 1, 1, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            &pkt,
        );
        assert_eq!(rt.glue.counters.register_data_no_tunnel, 1);
        assert_eq!(rt.glue.counters.register_data_sent, 0);
        // Notices without a running instance are ignored, not a panic.
        rt.data_plane_notice(DataPlaneNotice::NewSource {
            interface: Interface::new(3, "eth0"),
            source: Ipv4Addr::new(10, 1, 1, 1),
            group: Ipv4Addr::new(239, 1, 1, 1),
        });
    }

    #[test]
    fn mrib_updates_are_applied_by_the_owner_and_refusals_counted() {
        let mut rt = PimRuntime::new();
        let mut mrib = Mrib::new(MribLimits {
            max_routes: 1,
            max_local_members: 1,
        });
        let set = |g: [u8; 4]| {
            Action::Mrib(MribUpdate::Set {
                origin: Origin::Pim,
                key: RouteKey::star_g(Ipv4Addr::from(g)),
                contribution: mcr_protocols::Contribution::new(None),
            })
        };
        rt.execute(&mut vec![
            set([239, 1, 1, 1]),
            set([239, 1, 1, 2]),
            set([10, 0, 0, 1]),
        ]);
        assert_eq!(mrib.len(), 0, "queued until the owner applies them");
        rt.apply_mrib(&mut mrib);
        assert_eq!(mrib.len(), 1);
        assert_eq!(rt.glue.counters.mrib_route_limit, 1);
        assert_eq!(rt.glue.counters.mrib_refused, 1, "not a group");
        // PIM stops: its routes go.
        rt.clear_routes = true;
        rt.apply_mrib(&mut mrib);
        assert_eq!(mrib.len(), 0);
    }
}
