//! The Multicast RIB: routes learned by every origin, merged into one view,
//! with a diff of what moved; and the local-member state IGMP learns.
//!
//! # Routes
//!
//! A route is keyed `(S,G)` (a source-specific tree, RFC 7761 section 4.1)
//! or `(*,G)` (any source of the group, the shared tree of RFC 7761 section
//! 4.1; also what an IGMP proxy forwards, RFC 4605 section 4). Each
//! [`Origin`] (static config, IGMP proxying, PIM-SM, MSDP) contributes its own
//! [`Contribution`] — an incoming interface (the RPF interface), an RPF
//! neighbour, and outgoing interfaces each with the [`OifReason`] it is there
//! — and the MRIB merges them into one [`Route`], deterministically:
//!
//! * **Incoming interface**: taken from the contribution with the highest
//!   precedence that names one, in the order of [`Origin`]:
//!   `Static > Pim > Msdp > Igmp` (an operator's static route overrides what a
//!   protocol learned; PIM's RPF choice overrides what an MSDP-triggered or
//!   proxy contribution assumed). The RPF neighbour comes from the same
//!   contribution.
//! * **Outgoing interfaces**: the union over all contributions; each oif lists
//!   every origin that wants it, with that origin's reason.
//! * An oif equal to the merged incoming interface is never in the merged
//!   list (a packet is never sent back out of the interface it arrived on).
//! * A route exists while at least one origin contributes to it, even with
//!   an empty oif list (PIM keeps such state, e.g. at a first-hop router
//!   while registering, and an empty list installed in the data path means
//!   "drop, do not punt").
//!
//! Every [`Mrib::set`] / [`Mrib::remove`] reports whether the merged route was
//! added, changed or removed; the MRIB also accumulates a coalesced
//! [`MribDiff`] since the last [`Mrib::take_diff`], which the control plane
//! uses to recompile only the routes that moved.
//!
//! # Local members
//!
//! Per `(interface, group)`, the source filter IGMP learned from hosts
//! (RFC 3376 section 3.2 filter mode and source list; IGMPv1/v2 members are
//! `EXCLUDE {}`). PIM reads it as its local receivers (RFC 7761 section 4.1,
//! `local_receiver_include`); an IGMP proxy merges it into its upstream
//! membership (RFC 4605 section 4).
//!
//! # Bounds
//!
//! [`MribLimits`] caps routes and local-member entries. Creating a route or a
//! member entry beyond the cap is refused with an error, changes nothing, and
//! counts one in [`Mrib::dropped_routes`] / [`Mrib::dropped_members`];
//! updating or removing existing entries always succeeds.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::net::Interface;

/// The key of a route: `(S,G)` when `source` is set, `(*,G)` otherwise.
///
/// Ordered by group, then `(*,G)` before every `(S,G)` of that group, then
/// source: the order `mcrctl mroute` lists and [`Mrib::iter`] yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteKey {
    /// The multicast group (224.0.0.0/4).
    pub group: Ipv4Addr,
    /// The source for `(S,G)`; `None` for `(*,G)`.
    pub source: Option<Ipv4Addr>,
}

impl RouteKey {
    /// `(S,G)`: traffic from `source` to `group` (RFC 7761 section 4.1, `(S,G)` state).
    pub const fn sg(source: Ipv4Addr, group: Ipv4Addr) -> Self {
        RouteKey {
            group,
            source: Some(source),
        }
    }

    /// `(*,G)`: traffic from any source to `group` (RFC 7761 section 4.1, `(*,G)` state).
    pub const fn star_g(group: Ipv4Addr) -> Self {
        RouteKey {
            group,
            source: None,
        }
    }

    /// Whether this is an `(S,G)` key.
    pub fn is_sg(&self) -> bool {
        self.source.is_some()
    }
}

impl fmt::Display for RouteKey {
    /// `(10.0.0.1,239.1.1.1)` or `(*,239.1.1.1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Some(s) => write!(f, "({s},{})", self.group),
            None => write!(f, "(*,{})", self.group),
        }
    }
}

/// Who contributed to a route.
///
/// The declaration order is the precedence for the incoming interface,
/// strongest first: `Static > Pim > Msdp > Igmp`; `Ord` follows it
/// (`Origin::Static < Origin::Igmp`), so iterating a `BTreeMap<Origin, _>`
/// visits the strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A route from the configuration file or `mcrctl` (operator intent).
    Static,
    /// PIM-SM join state (RFC 7761).
    Pim,
    /// Created because an MSDP Source-Active announced the source
    /// (RFC 3618 section 3: an RP with `(*,G)` state joins toward the
    /// announced source).
    Msdp,
    /// IGMP proxying: upstream interface in, downstream members out
    /// (RFC 4605).
    Igmp,
}

impl Origin {
    /// Every origin, strongest first.
    pub const ALL: [Origin; 4] = [Origin::Static, Origin::Pim, Origin::Msdp, Origin::Igmp];

    /// Lower-case name as in JSON and `mcrctl` output: `"static"`, `"pim"`,
    /// `"msdp"`, `"igmp"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Static => "static",
            Origin::Pim => "pim",
            Origin::Msdp => "msdp",
            Origin::Igmp => "igmp",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an origin wants an outgoing interface (shown by `mcrctl mroute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OifReason {
    /// Listed by the operator (static route).
    Configured,
    /// Hosts on the interface are members (IGMP; RFC 7761 section 4.1
    /// `local_receiver_include`; a downstream interface of RFC 4605).
    LocalMembers,
    /// A downstream PIM neighbour joined (RFC 7761 section 4.5, downstream
    /// Join or Prune-Pending state on the interface).
    PimJoin,
    /// Inherited from the `(*,G)` entry into an `(S,G)` entry (RFC 7761
    /// section 4.1 state summarization macro `inherited_olist`).
    Inherited,
    /// We won the Assert on the interface (RFC 7761 section 4.6).
    AssertWinner,
}

/// One origin's view of a route: where traffic comes in and where it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Incoming (RPF) interface, if this origin has an opinion; an origin
    /// that only adds receivers (e.g. PIM local members on a `(*,G)` at the
    /// RP) leaves it `None`.
    pub iif: Option<Interface>,
    /// The RPF neighbour toward the source or RP (RFC 7761 section 4.1
    /// `RPF'`), if known; `None` for a directly connected source or a
    /// static route without one.
    pub rpf_neighbor: Option<Ipv4Addr>,
    /// Outgoing interfaces and why this origin wants each (serialised as a
    /// list of `[interface, reason]` pairs).
    #[serde(with = "crate::serde_pairs")]
    pub oifs: BTreeMap<Interface, OifReason>,
}

impl Contribution {
    /// A contribution with incoming interface `iif` and no oifs.
    pub fn new(iif: Option<Interface>) -> Self {
        Contribution {
            iif,
            rpf_neighbor: None,
            oifs: BTreeMap::new(),
        }
    }

    /// Builder: sets the RPF neighbour.
    pub fn with_rpf_neighbor(mut self, neighbor: Ipv4Addr) -> Self {
        self.rpf_neighbor = Some(neighbor);
        self
    }

    /// Builder: adds (or replaces the reason of) an outgoing interface.
    pub fn with_oif(mut self, oif: Interface, reason: OifReason) -> Self {
        self.oifs.insert(oif, reason);
        self
    }
}

/// An outgoing interface of a merged route: every origin that wants it and
/// why, strongest origin first.
pub type OifOrigins = BTreeMap<Origin, OifReason>;

/// The merged route: what the compiler installs in the data path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `(S,G)` or `(*,G)`.
    pub key: RouteKey,
    /// Incoming interface (from the strongest origin that names one); `None`
    /// if no contribution names one (such a route forwards nothing until one
    /// does, but its state is kept).
    pub iif: Option<Interface>,
    /// The origin whose contribution gave [`Route::iif`] and
    /// [`Route::rpf_neighbor`].
    pub iif_origin: Option<Origin>,
    /// RPF neighbour from the same contribution as the iif.
    pub rpf_neighbor: Option<Ipv4Addr>,
    /// Outgoing interfaces, in interface-index order, each with the origins
    /// that want it. Never contains the iif. Serialised as a list of
    /// `[interface, {origin: reason}]` pairs.
    #[serde(with = "crate::serde_pairs")]
    pub oifs: BTreeMap<Interface, OifOrigins>,
    /// Every origin contributing to this route.
    pub origins: BTreeSet<Origin>,
}

impl Route {
    /// Merges `contributions` (one per origin, in any order) into the route
    /// for `key` by the rules in the [module documentation](self).
    pub fn merge<'a>(
        key: RouteKey,
        contributions: impl IntoIterator<Item = (Origin, &'a Contribution)> + Clone,
    ) -> Route {
        let mut iif = None;
        let mut iif_origin = None;
        let mut rpf_neighbor = None;
        let mut origins = BTreeSet::new();
        for (origin, c) in contributions.clone() {
            origins.insert(origin);
            let stronger_seen = matches!(iif_origin, Some(o) if o < origin);
            if let (Some(i), false) = (&c.iif, stronger_seen) {
                iif = Some(i.clone());
                iif_origin = Some(origin);
                rpf_neighbor = c.rpf_neighbor;
            }
        }
        let mut oifs: BTreeMap<Interface, OifOrigins> = BTreeMap::new();
        for (origin, c) in contributions {
            for (oif, reason) in &c.oifs {
                if iif.as_ref() == Some(oif) {
                    continue;
                }
                oifs.entry(oif.clone()).or_default().insert(origin, *reason);
            }
        }
        Route {
            key,
            iif,
            iif_origin,
            rpf_neighbor,
            oifs,
            origins,
        }
    }

    /// The outgoing interfaces, in index order.
    pub fn oif_list(&self) -> impl Iterator<Item = &Interface> + '_ {
        self.oifs.keys()
    }
}

/// What happened to one merged route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The route did not exist and now does.
    Added,
    /// The route existed and its merged view (iif, RPF neighbour, oifs or
    /// origins) differs.
    Changed,
    /// The route existed and now does not.
    Removed,
}

/// The routes that moved since the last [`Mrib::take_diff`], each list in key
/// order. Coalesced against the state at the last take: a route added then
/// removed in between is in no list; removed then added back differently is
/// `changed`; changed and changed back is in no list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MribDiff {
    /// Routes that exist now and did not at the last take.
    pub added: Vec<RouteKey>,
    /// Routes that existed then and now, with a different merged view.
    pub changed: Vec<RouteKey>,
    /// Routes that existed then and do not now.
    pub removed: Vec<RouteKey>,
}

impl MribDiff {
    /// Whether nothing moved.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Whether a member filter lists the sources it admits or those it blocks
/// (RFC 3376 section 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Only the listed sources are wanted.
    Include,
    /// Every source except the listed ones is wanted.
    Exclude,
}

/// A group membership's source filter (RFC 3376 section 3.2): `INCLUDE {S..}`
/// or `EXCLUDE {S..}`. `EXCLUDE {}` is an any-source membership (every IGMPv1
/// and IGMPv2 member); `INCLUDE {}` wants nothing and means "no membership".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceFilter {
    /// Include or exclude.
    pub mode: FilterMode,
    /// The listed sources.
    pub sources: BTreeSet<Ipv4Addr>,
}

impl SourceFilter {
    /// `EXCLUDE {}`: any source (an IGMPv1/v2 join, or a v3 `EXCLUDE {}`).
    pub fn any_source() -> Self {
        SourceFilter {
            mode: FilterMode::Exclude,
            sources: BTreeSet::new(),
        }
    }

    /// `INCLUDE {sources}`: only these sources (source-specific membership).
    pub fn include(sources: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        SourceFilter {
            mode: FilterMode::Include,
            sources: sources.into_iter().collect(),
        }
    }

    /// `EXCLUDE {sources}`: every source but these.
    pub fn exclude(sources: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        SourceFilter {
            mode: FilterMode::Exclude,
            sources: sources.into_iter().collect(),
        }
    }

    /// Whether traffic from `source` is wanted.
    pub fn admits(&self, source: Ipv4Addr) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.contains(&source),
            FilterMode::Exclude => !self.sources.contains(&source),
        }
    }

    /// Whether it admits no source at all (`INCLUDE {}`).
    pub fn is_empty(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }
}

/// Caps on MRIB size; see the module documentation for what happens at a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MribLimits {
    /// Most merged routes held (count of `(S,G)` plus `(*,G)` keys).
    pub max_routes: usize,
    /// Most `(interface, group)` local-member entries held.
    pub max_local_members: usize,
}

impl Default for MribLimits {
    /// 100,000 routes and 100,000 local-member entries.
    fn default() -> Self {
        MribLimits {
            max_routes: 100_000,
            max_local_members: 100_000,
        }
    }
}

/// Why an MRIB update was refused (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MribError {
    /// A new route would exceed [`MribLimits::max_routes`] (the value given).
    RouteLimit(usize),
    /// A new local-member entry would exceed
    /// [`MribLimits::max_local_members`] (the value given).
    MemberLimit(usize),
    /// The group is not in 224.0.0.0/4.
    NotMulticast(Ipv4Addr),
}

impl fmt::Display for MribError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MribError::RouteLimit(n) => write!(f, "route limit reached ({n} routes)"),
            MribError::MemberLimit(n) => {
                write!(f, "local-member limit reached ({n} entries)")
            }
            MribError::NotMulticast(g) => write!(f, "{g} is not a multicast group"),
        }
    }
}

impl std::error::Error for MribError {}

/// An MRIB change as a protocol requests it in [`crate::Action::Mrib`]; the
/// control plane applies it with [`Mrib::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MribUpdate {
    /// [`Mrib::set`]: set (replace) `origin`'s contribution to `key`.
    Set {
        /// Contributing origin.
        origin: Origin,
        /// Route key.
        key: RouteKey,
        /// The whole contribution (replaces the previous one).
        contribution: Contribution,
    },
    /// [`Mrib::remove`]: withdraw `origin`'s contribution to `key`.
    Remove {
        /// Contributing origin.
        origin: Origin,
        /// Route key.
        key: RouteKey,
    },
    /// [`Mrib::set_local_members`].
    SetLocalMembers {
        /// Interface the members are on.
        interface: Interface,
        /// Group.
        group: Ipv4Addr,
        /// The merged filter of all members on the interface.
        filter: SourceFilter,
    },
    /// [`Mrib::remove_local_members`].
    RemoveLocalMembers {
        /// Interface.
        interface: Interface,
        /// Group.
        group: Ipv4Addr,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    contributions: BTreeMap<Origin, Contribution>,
    route: Route,
}

impl Entry {
    fn new(key: RouteKey, origin: Origin, contribution: Contribution) -> Self {
        let contributions = BTreeMap::from([(origin, contribution)]);
        let route = Route::merge(key, contributions.iter().map(|(o, c)| (*o, c)));
        Entry {
            contributions,
            route,
        }
    }

    /// Re-merges after a contribution moved; returns whether the merged
    /// view changed.
    fn remerge(&mut self, key: RouteKey) -> bool {
        let route = Route::merge(key, self.contributions.iter().map(|(o, c)| (*o, c)));
        let changed = route != self.route;
        self.route = route;
        changed
    }
}

/// The Multicast RIB (see the [module documentation](self)).
#[derive(Clone, Debug, Default)]
pub struct Mrib {
    routes: BTreeMap<RouteKey, Entry>,
    /// Merged view of each key touched since the last take_diff, as it was
    /// at that take (`None`: absent). Bounded by twice `max_routes`.
    baseline: BTreeMap<RouteKey, Option<Route>>,
    members: BTreeMap<(Ipv4Addr, Interface), SourceFilter>,
    limits: MribLimits,
    dropped_routes: u64,
    dropped_members: u64,
}

fn check_group(group: Ipv4Addr) -> Result<(), MribError> {
    if group.is_multicast() {
        Ok(())
    } else {
        Err(MribError::NotMulticast(group))
    }
}

impl Mrib {
    /// An empty MRIB with the given caps.
    pub fn new(limits: MribLimits) -> Self {
        Mrib {
            limits,
            ..Mrib::default()
        }
    }

    /// The caps in force.
    pub fn limits(&self) -> MribLimits {
        self.limits
    }

    /// Sets (replaces) `origin`'s contribution to `key` and re-merges the
    /// route. Returns what happened to the merged route: `Added` (new key),
    /// `Changed`, or `None` if the merged view is unchanged.
    ///
    /// # Errors
    /// [`MribError::NotMulticast`] if the group is not multicast;
    /// [`MribError::RouteLimit`] if `key` is new and the MRIB holds
    /// `max_routes` routes (counted in [`Mrib::dropped_routes`]). Nothing
    /// changes on error.
    pub fn set(
        &mut self,
        origin: Origin,
        key: RouteKey,
        contribution: Contribution,
    ) -> Result<Option<Change>, MribError> {
        check_group(key.group)?;
        if let Some(entry) = self.routes.get_mut(&key) {
            if entry.contributions.get(&origin) == Some(&contribution) {
                return Ok(None);
            }
            self.baseline
                .entry(key)
                .or_insert_with(|| Some(entry.route.clone()));
            entry.contributions.insert(origin, contribution);
            let changed = entry.remerge(key);
            self.settle_baseline(key);
            return Ok(changed.then_some(Change::Changed));
        }
        if self.routes.len() >= self.limits.max_routes {
            self.dropped_routes += 1;
            return Err(MribError::RouteLimit(self.limits.max_routes));
        }
        self.baseline.entry(key).or_insert(None);
        self.routes
            .insert(key, Entry::new(key, origin, contribution));
        self.settle_baseline(key);
        Ok(Some(Change::Added))
    }

    /// Withdraws `origin`'s contribution to `key`. Returns `Removed` if that
    /// was the last contribution, `Changed` if the merged view moved, `None`
    /// if nothing changed (including when `origin` had no contribution).
    pub fn remove(&mut self, origin: Origin, key: RouteKey) -> Option<Change> {
        let entry = self.routes.get_mut(&key)?;
        if !entry.contributions.contains_key(&origin) {
            return None;
        }
        self.baseline
            .entry(key)
            .or_insert_with(|| Some(entry.route.clone()));
        entry.contributions.remove(&origin);
        let change = if entry.contributions.is_empty() {
            self.routes.remove(&key);
            Some(Change::Removed)
        } else {
            entry.remerge(key).then_some(Change::Changed)
        };
        self.settle_baseline(key);
        change
    }

    /// Withdraws every contribution of `origin` (e.g. when a protocol is
    /// disabled); returns how many routes it touched.
    pub fn remove_origin(&mut self, origin: Origin) -> usize {
        let keys: Vec<RouteKey> = self
            .routes
            .iter()
            .filter(|(_, e)| e.contributions.contains_key(&origin))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            self.remove(origin, *k);
        }
        keys.len()
    }

    /// Forgets a baseline entry that equals the current state, so the diff
    /// bookkeeping stays bounded when keys come and go between takes.
    fn settle_baseline(&mut self, key: RouteKey) {
        if let Some(base) = self.baseline.get(&key) {
            if base.as_ref() == self.routes.get(&key).map(|e| &e.route) {
                self.baseline.remove(&key);
            }
        }
    }

    /// Applies a protocol's [`MribUpdate`]. Route updates return what
    /// [`Mrib::set`] / [`Mrib::remove`] return; local-member updates return
    /// `Ok(None)` (they move no route).
    ///
    /// # Errors
    /// As [`Mrib::set`] and [`Mrib::set_local_members`].
    pub fn apply(&mut self, update: MribUpdate) -> Result<Option<Change>, MribError> {
        match update {
            MribUpdate::Set {
                origin,
                key,
                contribution,
            } => self.set(origin, key, contribution),
            MribUpdate::Remove { origin, key } => Ok(self.remove(origin, key)),
            MribUpdate::SetLocalMembers {
                interface,
                group,
                filter,
            } => self
                .set_local_members(interface, group, filter)
                .map(|_| None),
            MribUpdate::RemoveLocalMembers { interface, group } => {
                self.remove_local_members(&interface, group);
                Ok(None)
            }
        }
    }

    /// The merged route for `key`.
    pub fn get(&self, key: &RouteKey) -> Option<&Route> {
        self.routes.get(key).map(|e| &e.route)
    }

    /// `origin`'s contribution to `key`, if any.
    pub fn contribution(&self, origin: Origin, key: &RouteKey) -> Option<&Contribution> {
        self.routes.get(key)?.contributions.get(&origin)
    }

    /// Every contribution to `key`, strongest origin first.
    pub fn contributions(
        &self,
        key: &RouteKey,
    ) -> impl Iterator<Item = (Origin, &Contribution)> + '_ {
        self.routes
            .get(key)
            .into_iter()
            .flat_map(|e| e.contributions.iter().map(|(o, c)| (*o, c)))
    }

    /// Every merged route in [`RouteKey`] order (group, `(*,G)` first, then
    /// source): stable across runs.
    pub fn iter(&self) -> impl Iterator<Item = &Route> + '_ {
        self.routes.values().map(|e| &e.route)
    }

    /// The routes of one group: its `(*,G)` (if any) then its `(S,G)`s.
    pub fn group(&self, group: Ipv4Addr) -> impl Iterator<Item = &Route> + '_ {
        self.routes
            .range(RouteKey::star_g(group)..=RouteKey::sg(Ipv4Addr::BROADCAST, group))
            .map(|(_, e)| &e.route)
    }

    /// Number of merged routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Routes refused at the route cap since construction.
    pub fn dropped_routes(&self) -> u64 {
        self.dropped_routes
    }

    /// Whether any route moved since the last [`Mrib::take_diff`].
    pub fn has_diff(&self) -> bool {
        !self.baseline.is_empty()
    }

    /// Returns the routes that moved since the last call (or since
    /// construction) and starts a new diff.
    pub fn take_diff(&mut self) -> MribDiff {
        let mut diff = MribDiff::default();
        for (key, base) in core::mem::take(&mut self.baseline) {
            match (base, self.routes.get(&key)) {
                (None, Some(_)) => diff.added.push(key),
                (Some(_), None) => diff.removed.push(key),
                (Some(old), Some(now)) if old != now.route => diff.changed.push(key),
                _ => {}
            }
        }
        diff
    }

    /// Sets the local members of `group` on `interface` to `filter` (the
    /// merged filter of all hosts there, RFC 3376 section 3.2). A filter that
    /// admits nothing (`INCLUDE {}`) removes the entry. Returns whether the
    /// stored state changed.
    ///
    /// # Errors
    /// [`MribError::NotMulticast`]; [`MribError::MemberLimit`] if the entry
    /// is new and the cap is reached (counted in
    /// [`Mrib::dropped_members`]). Nothing changes on error.
    pub fn set_local_members(
        &mut self,
        interface: Interface,
        group: Ipv4Addr,
        filter: SourceFilter,
    ) -> Result<bool, MribError> {
        check_group(group)?;
        if filter.is_empty() {
            return Ok(self.remove_local_members(&interface, group));
        }
        let k = (group, interface);
        if let Some(f) = self.members.get_mut(&k) {
            let changed = *f != filter;
            *f = filter;
            return Ok(changed);
        }
        if self.members.len() >= self.limits.max_local_members {
            self.dropped_members += 1;
            return Err(MribError::MemberLimit(self.limits.max_local_members));
        }
        self.members.insert(k, filter);
        Ok(true)
    }

    /// Removes the local members of `group` on `interface`; returns whether
    /// there were any.
    pub fn remove_local_members(&mut self, interface: &Interface, group: Ipv4Addr) -> bool {
        self.members.remove(&(group, interface.clone())).is_some()
    }

    /// The member filter of `group` on `interface`, if any.
    pub fn local_members_on(
        &self,
        interface: &Interface,
        group: Ipv4Addr,
    ) -> Option<&SourceFilter> {
        self.members.get(&(group, interface.clone()))
    }

    /// Interfaces with members of `group`, in index order, with their
    /// filters.
    pub fn local_members(
        &self,
        group: Ipv4Addr,
    ) -> impl Iterator<Item = (&Interface, &SourceFilter)> + '_ {
        let lo = (group, Interface::new(0, ""));
        let hi = (group, Interface::new(u32::MAX, ""));
        self.members.range(lo..=hi).map(|((_, i), f)| (i, f))
    }

    /// Interfaces whose members want traffic from `source` to `group`
    /// (RFC 7761 section 4.1 `local_receiver_include(S,G,I)`); with `source`
    /// `None`, interfaces with any-source (`EXCLUDE`) members, as a `(*,G)`
    /// uses (`local_receiver_include(*,G,I)`).
    pub fn local_receivers(
        &self,
        group: Ipv4Addr,
        source: Option<Ipv4Addr>,
    ) -> impl Iterator<Item = &Interface> + '_ {
        self.local_members(group)
            .filter(move |(_, f)| match source {
                Some(s) => f.admits(s),
                None => f.mode == FilterMode::Exclude,
            })
            .map(|(i, _)| i)
    }

    /// Every local-member entry, ordered by group then interface index.
    pub fn iter_local_members(
        &self,
    ) -> impl Iterator<Item = (&Interface, Ipv4Addr, &SourceFilter)> + '_ {
        self.members.iter().map(|((g, i), f)| (i, *g, f))
    }

    /// Number of local-member entries.
    pub fn local_member_count(&self) -> usize {
        self.members.len()
    }

    /// Local-member entries refused at the cap since construction.
    pub fn dropped_members(&self) -> u64 {
        self.dropped_members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifc(i: u32) -> Interface {
        Interface::new(i, format!("if{i}"))
    }
    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn iif_precedence_static_pim_msdp_igmp() {
        let mut m = Mrib::new(MribLimits::default());
        let k = RouteKey::sg(S, G);
        let igmp = Contribution::new(Some(ifc(4))).with_oif(ifc(9), OifReason::LocalMembers);
        assert_eq!(m.set(Origin::Igmp, k, igmp), Ok(Some(Change::Added)));
        assert_eq!(m.get(&k).unwrap().iif, Some(ifc(4)));
        assert_eq!(m.get(&k).unwrap().iif_origin, Some(Origin::Igmp));

        let msdp = Contribution::new(Some(ifc(3))).with_rpf_neighbor(Ipv4Addr::new(10, 9, 9, 3));
        assert_eq!(m.set(Origin::Msdp, k, msdp), Ok(Some(Change::Changed)));
        assert_eq!(m.get(&k).unwrap().iif, Some(ifc(3)));

        let pim = Contribution::new(Some(ifc(2)))
            .with_rpf_neighbor(Ipv4Addr::new(10, 9, 9, 2))
            .with_oif(ifc(3), OifReason::PimJoin);
        m.set(Origin::Pim, k, pim).unwrap();
        let r = m.get(&k).unwrap();
        assert_eq!(
            (r.iif.clone(), r.iif_origin),
            (Some(ifc(2)), Some(Origin::Pim))
        );
        assert_eq!(r.rpf_neighbor, Some(Ipv4Addr::new(10, 9, 9, 2)));

        // A static contribution without iif adds an oif but does not take the iif.
        let st = Contribution::new(None).with_oif(ifc(7), OifReason::Configured);
        m.set(Origin::Static, k, st).unwrap();
        assert_eq!(m.get(&k).unwrap().iif_origin, Some(Origin::Pim));
        // With an iif, static wins; its rpf neighbour (none) comes along.
        let st = Contribution::new(Some(ifc(1))).with_oif(ifc(7), OifReason::Configured);
        assert_eq!(m.set(Origin::Static, k, st), Ok(Some(Change::Changed)));
        let r = m.get(&k).unwrap();
        assert_eq!(
            (r.iif.clone(), r.iif_origin, r.rpf_neighbor),
            (Some(ifc(1)), Some(Origin::Static), None)
        );
        assert_eq!(
            r.origins.iter().copied().collect::<Vec<_>>(),
            Origin::ALL.to_vec()
        );
        // Withdrawing static hands the iif back to PIM.
        assert_eq!(m.remove(Origin::Static, k), Some(Change::Changed));
        assert_eq!(m.get(&k).unwrap().iif, Some(ifc(2)));
    }

    #[test]
    fn oifs_union_tagged_by_origin_and_never_the_iif() {
        let mut m = Mrib::new(MribLimits::default());
        let k = RouteKey::star_g(G);
        m.set(
            Origin::Pim,
            k,
            Contribution::new(Some(ifc(1)))
                .with_oif(ifc(2), OifReason::PimJoin)
                .with_oif(ifc(3), OifReason::PimJoin),
        )
        .unwrap();
        m.set(
            Origin::Igmp,
            k,
            Contribution::new(None)
                .with_oif(ifc(3), OifReason::LocalMembers)
                .with_oif(ifc(1), OifReason::LocalMembers)
                .with_oif(ifc(4), OifReason::LocalMembers),
        )
        .unwrap();
        let r = m.get(&k).unwrap();
        let oifs: Vec<u32> = r.oif_list().map(|i| i.index).collect();
        assert_eq!(oifs, vec![2, 3, 4], "union, iif 1 excluded");
        assert_eq!(
            r.oifs[&ifc(3)],
            BTreeMap::from([
                (Origin::Pim, OifReason::PimJoin),
                (Origin::Igmp, OifReason::LocalMembers)
            ])
        );
        assert_eq!(
            r.oifs[&ifc(4)],
            BTreeMap::from([(Origin::Igmp, OifReason::LocalMembers)])
        );
        // The iif moves to 4 (a static override): 4 leaves the oifs, 1 rejoins them.
        m.set(Origin::Static, k, Contribution::new(Some(ifc(4))))
            .unwrap();
        let oifs: Vec<u32> = m.get(&k).unwrap().oif_list().map(|i| i.index).collect();
        assert_eq!(oifs, vec![1, 2, 3]);
    }

    #[test]
    fn set_same_contribution_is_no_change_and_remove_last_removes() {
        let mut m = Mrib::new(MribLimits::default());
        let k = RouteKey::sg(S, G);
        let c = Contribution::new(Some(ifc(1))).with_oif(ifc(2), OifReason::Configured);
        assert_eq!(m.set(Origin::Static, k, c.clone()), Ok(Some(Change::Added)));
        assert_eq!(m.set(Origin::Static, k, c), Ok(None));
        assert_eq!(m.remove(Origin::Pim, k), None, "absent origin");
        assert_eq!(m.remove(Origin::Static, k), Some(Change::Removed));
        assert_eq!(m.remove(Origin::Static, k), None);
        assert!(m.is_empty());
    }

    #[test]
    fn diff_coalesces_between_takes() {
        let mut m = Mrib::new(MribLimits::default());
        let a = RouteKey::sg(S, G);
        let b = RouteKey::star_g(G);
        let c = RouteKey::star_g(Ipv4Addr::new(239, 2, 2, 2));
        let one = Contribution::new(Some(ifc(1)));
        let two = Contribution::new(Some(ifc(2)));
        m.set(Origin::Pim, a, one.clone()).unwrap();
        m.set(Origin::Pim, b, one.clone()).unwrap();
        m.set(Origin::Pim, a, two.clone()).unwrap(); // added then changed = added
        assert_eq!(
            m.take_diff(),
            MribDiff {
                added: vec![b, a],
                changed: vec![],
                removed: vec![]
            }
        );
        assert!(!m.has_diff());
        m.set(Origin::Pim, c, one.clone()).unwrap();
        m.remove(Origin::Pim, c); // added then removed = nothing
        m.set(Origin::Pim, a, one.clone()).unwrap();
        m.set(Origin::Pim, a, two.clone()).unwrap(); // changed and back = nothing
        assert!(!m.has_diff(), "round trips leave no bookkeeping");
        m.remove(Origin::Pim, b);
        m.set(Origin::Igmp, b, two).unwrap(); // removed then re-added differently = changed
        m.set(Origin::Static, a, one).unwrap(); // changed
        assert_eq!(
            m.take_diff(),
            MribDiff {
                added: vec![],
                changed: vec![b, a],
                removed: vec![]
            }
        );
        m.remove(Origin::Igmp, b);
        let d = m.take_diff();
        assert_eq!(d.removed, vec![b]);
        assert!(m.take_diff().is_empty());
    }

    #[test]
    fn route_bound_refuses_new_keys_and_counts() {
        let mut m = Mrib::new(MribLimits {
            max_routes: 2,
            max_local_members: 1,
        });
        let c = Contribution::new(Some(ifc(1)));
        let k = |n| RouteKey::star_g(Ipv4Addr::new(239, 0, 0, n));
        m.set(Origin::Pim, k(1), c.clone()).unwrap();
        m.set(Origin::Pim, k(2), c.clone()).unwrap();
        assert_eq!(
            m.set(Origin::Pim, k(3), c.clone()),
            Err(MribError::RouteLimit(2))
        );
        assert_eq!(
            m.set(Origin::Igmp, k(4), c.clone()),
            Err(MribError::RouteLimit(2))
        );
        assert_eq!(m.dropped_routes(), 2);
        assert_eq!(m.len(), 2);
        assert!(m.get(&k(3)).is_none());
        // Existing keys still take new origins when full.
        assert_eq!(
            m.set(
                Origin::Igmp,
                k(1),
                Contribution::new(None).with_oif(ifc(5), OifReason::LocalMembers)
            ),
            Ok(Some(Change::Changed))
        );
        m.remove(Origin::Pim, k(2));
        assert_eq!(m.set(Origin::Pim, k(3), c.clone()), Ok(Some(Change::Added)));
        assert_eq!(
            m.set(Origin::Pim, RouteKey::star_g(S), c),
            Err(MribError::NotMulticast(S))
        );
        assert_eq!(m.dropped_routes(), 2, "a bad group is not a cap drop");
        let d = m.take_diff();
        assert_eq!(d.added, vec![k(1), k(3)]);
    }

    #[test]
    fn iteration_order_is_group_then_star_then_source() {
        let mut m = Mrib::new(MribLimits::default());
        let g2 = Ipv4Addr::new(239, 0, 0, 2);
        let g1 = Ipv4Addr::new(239, 0, 0, 1);
        for k in [
            RouteKey::sg(Ipv4Addr::new(10, 0, 0, 9), g2),
            RouteKey::sg(S, g1),
            RouteKey::star_g(g2),
            RouteKey::sg(Ipv4Addr::new(10, 0, 0, 2), g2),
            RouteKey::star_g(g1),
        ] {
            m.set(Origin::Pim, k, Contribution::default()).unwrap();
        }
        let order: Vec<String> = m.iter().map(|r| r.key.to_string()).collect();
        assert_eq!(
            order,
            [
                "(*,239.0.0.1)",
                "(10.0.0.1,239.0.0.1)",
                "(*,239.0.0.2)",
                "(10.0.0.2,239.0.0.2)",
                "(10.0.0.9,239.0.0.2)"
            ]
        );
        assert_eq!(m.group(g2).count(), 3);
        assert_eq!(m.remove_origin(Origin::Pim), 5);
        assert!(m.is_empty());
    }

    #[test]
    fn local_members_filters_and_bound() {
        let mut m = Mrib::new(MribLimits {
            max_routes: 10,
            max_local_members: 2,
        });
        let s2 = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            m.set_local_members(ifc(1), G, SourceFilter::any_source()),
            Ok(true)
        );
        assert_eq!(
            m.set_local_members(ifc(1), G, SourceFilter::any_source()),
            Ok(false)
        );
        assert_eq!(
            m.set_local_members(ifc(2), G, SourceFilter::include([S])),
            Ok(true)
        );
        assert_eq!(
            m.set_local_members(ifc(3), G, SourceFilter::exclude([S])),
            Err(MribError::MemberLimit(2))
        );
        assert_eq!(m.dropped_members(), 1);
        let want = |src| {
            m.local_receivers(G, src)
                .map(|i| i.index)
                .collect::<Vec<_>>()
        };
        assert_eq!(want(Some(S)), vec![1, 2]);
        assert_eq!(want(Some(s2)), vec![1]);
        assert_eq!(want(None), vec![1]);
        // INCLUDE {} removes.
        assert_eq!(
            m.set_local_members(ifc(2), G, SourceFilter::include([])),
            Ok(true)
        );
        assert_eq!(m.local_member_count(), 1);
        assert_eq!(
            m.apply(MribUpdate::SetLocalMembers {
                interface: ifc(3),
                group: G,
                filter: SourceFilter::exclude([S]),
            }),
            Ok(None)
        );
        assert!(!m.local_members_on(&ifc(3), G).unwrap().admits(S));
        assert_eq!(m.local_members(G).count(), 2);
        m.apply(MribUpdate::RemoveLocalMembers {
            interface: ifc(1),
            group: G,
        })
        .unwrap();
        assert_eq!(m.iter_local_members().count(), 1);
        assert_eq!(
            m.set_local_members(ifc(1), S, SourceFilter::any_source()),
            Err(MribError::NotMulticast(S))
        );
    }

    #[test]
    fn twenty_thousand_routes_set_diffed_and_withdrawn_quickly() {
        let start = std::time::Instant::now();
        let mut m = Mrib::new(MribLimits::default());
        let key = |i: u32| {
            RouteKey::sg(
                Ipv4Addr::from(0x0a00_0000 + i),
                Ipv4Addr::from(0xef00_0000 + (i % 500)),
            )
        };
        for i in 0..20_000u32 {
            let mut c = Contribution::new(Some(ifc(1))).with_rpf_neighbor(S);
            for o in 2..6 {
                c = c.with_oif(ifc(o), OifReason::PimJoin);
            }
            m.set(Origin::Pim, key(i), c).unwrap();
        }
        assert_eq!(m.take_diff().added.len(), 20_000);
        for i in 0..20_000u32 {
            m.remove(Origin::Pim, key(i));
        }
        assert_eq!(m.take_diff().removed.len(), 20_000);
        let elapsed = start.elapsed();
        eprintln!("20k routes set + diff + remove + diff: {elapsed:?}");
        // Generous for an unoptimised build on a loaded 2-core machine.
        assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    }

    #[test]
    fn route_serialises_for_mcrctl() {
        let mut m = Mrib::new(MribLimits::default());
        let k = RouteKey::sg(S, G);
        m.set(
            Origin::Pim,
            k,
            Contribution::new(Some(ifc(1))).with_oif(ifc(2), OifReason::PimJoin),
        )
        .unwrap();
        let r = m.get(&k).unwrap();
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["iif_origin"], "pim");
        assert_eq!(json["key"]["source"], "10.0.0.1");
        let back: Route = serde_json::from_value(json).unwrap();
        assert_eq!(&back, r);
    }
}
