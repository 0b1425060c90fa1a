//! IGMP proxying (RFC 4605): the downstream interfaces run the IGMP router
//! side (querier and membership, [`crate::igmp`]); their members, merged
//! per group (RFC 4605 section 4.1), are reported on the upstream
//! interface as a host would, and become `Origin::Igmp` routes in the MRIB:
//! `(*,G)` iif = upstream, oifs = downstream interfaces with any-source
//! members; `(S,G)` for sources members name, oifs = the downstream
//! interfaces that admit S.
//!
//! Upstream reporting is the kernel's host stack: one UDP socket per group
//! joins it on the upstream interface (`MCAST_JOIN_GROUP`, with the merged
//! source filter set by `MCAST_MSFILTER`), so the kernel sends the reports
//! and answers the upstream querier's queries itself (RFC 4605 section
//! 4.2: the proxy "performs the host portion" upstream).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use mcr_dataplane::socket::{new_socket, setsockopt};
use mcr_protocols::{
    Contribution, FilterMode, Interface, Mrib, OifReason, Origin, RouteKey, SourceFilter,
};

use crate::interfaces::Interfaces;
use crate::mroute::sys;

/// Most groups reported upstream (one socket each); beyond, a group is not
/// joined upstream nor routed, and counted.
pub const MAX_GROUPS: usize = 4096;

/// Merges the downstream interfaces' filters of one group into the
/// membership reported upstream (RFC 4605 section 4.1, the rules of RFC
/// 3376 section 3.2 for merging per-socket states):
///
/// * any `EXCLUDE`: `EXCLUDE` (intersection of the `EXCLUDE` lists minus
///   the union of the `INCLUDE` lists);
/// * else `INCLUDE` (union of the `INCLUDE` lists);
///
/// `None` when nothing is wanted (no filters, or only `INCLUDE {}`).
pub fn merge<'a>(filters: impl IntoIterator<Item = &'a SourceFilter>) -> Option<SourceFilter> {
    let mut excl: Option<BTreeSet<Ipv4Addr>> = None;
    let mut incl: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for f in filters {
        match f.mode {
            FilterMode::Exclude => {
                excl = Some(match excl {
                    None => f.sources.clone(),
                    Some(x) => x.intersection(&f.sources).copied().collect(),
                })
            }
            FilterMode::Include => incl.extend(f.sources.iter().copied()),
        }
    }
    match excl {
        Some(x) => Some(SourceFilter::exclude(x.difference(&incl).copied())),
        None if incl.is_empty() => None,
        None => Some(SourceFilter::include(incl)),
    }
}

/// The routes the proxy contributes for one group: `(*,G)` with the
/// interfaces whose members take any source (unless excluded), and an
/// `(S,G)` for each source some member names whose oifs differ from the
/// `(*,G)`'s (an empty list when every member excludes S: the `(S,G)`
/// entry then drops what the `(*,G)` would forward).
pub fn routes_for<'a>(
    group: Ipv4Addr,
    upstream: &Interface,
    members: impl IntoIterator<Item = (&'a Interface, &'a SourceFilter)> + Clone,
) -> Vec<(RouteKey, Contribution)> {
    let star: BTreeSet<&Interface> = members
        .clone()
        .into_iter()
        .filter(|(_, f)| f.mode == FilterMode::Exclude)
        .map(|(i, _)| i)
        .collect();
    let named: BTreeSet<Ipv4Addr> = members
        .clone()
        .into_iter()
        .flat_map(|(_, f)| f.sources.iter().copied())
        .collect();
    let contribution = |oifs: &BTreeSet<&Interface>| {
        let mut c = Contribution::new(Some(upstream.clone()));
        for o in oifs {
            if o.index != upstream.index {
                c = c.with_oif((*o).clone(), OifReason::LocalMembers);
            }
        }
        c
    };
    let mut out = Vec::new();
    if !star.is_empty() {
        out.push((RouteKey::star_g(group), contribution(&star)));
    }
    for s in named {
        let oifs: BTreeSet<&Interface> = members
            .clone()
            .into_iter()
            .filter(|(_, f)| f.admits(s))
            .map(|(i, _)| i)
            .collect();
        if oifs == star || (star.is_empty() && oifs.is_empty()) {
            continue;
        }
        out.push((RouteKey::sg(s, group), contribution(&oifs)));
    }
    out
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably
    // aligned for it; we write one sockaddr_in at its start.
    unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
    ss
}

/// One group's membership on the upstream interface.
struct UpstreamJoin {
    fd: OwnedFd,
    filter: SourceFilter,
}

impl UpstreamJoin {
    fn join(ifindex: u32, group: Ipv4Addr, filter: &SourceFilter) -> io::Result<UpstreamJoin> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        // An INCLUDE membership starts source-specific, so the upstream
        // router never sees a moment of any-source membership.
        let first = match filter.mode {
            FilterMode::Include => filter.sources.iter().next().copied(),
            FilterMode::Exclude => None,
        };
        let start = match first {
            Some(s) => {
                let req = libc::group_source_req {
                    gsr_interface: ifindex,
                    gsr_group: sockaddr_in(group),
                    gsr_source: sockaddr_in(s),
                };
                setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::MCAST_JOIN_SOURCE_GROUP,
                    &req,
                )?;
                SourceFilter::include([s])
            }
            None => {
                let req = libc::group_req {
                    gr_interface: ifindex,
                    gr_group: sockaddr_in(group),
                };
                setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::MCAST_JOIN_GROUP,
                    &req,
                )?;
                SourceFilter::any_source()
            }
        };
        let mut j = UpstreamJoin { fd, filter: start };
        j.set_filter(ifindex, group, filter)?;
        Ok(j)
    }

    /// Sets the socket's filter (`MCAST_MSFILTER`): the kernel sends the
    /// state-change report.
    fn set_filter(&mut self, ifindex: u32, group: Ipv4Addr, f: &SourceFilter) -> io::Result<()> {
        if *f == self.filter {
            return Ok(());
        }
        if f.sources.len() > sys::MAX_FILTER_SOURCES {
            return Err(io::Error::other(format!(
                "more than {} sources",
                sys::MAX_FILTER_SOURCES
            )));
        }
        // SAFETY: group_filter is plain old data; all-zero is valid.
        let mut gf: Box<sys::group_filter> = Box::new(unsafe { std::mem::zeroed() });
        gf.gf_interface = ifindex;
        gf.gf_group = sockaddr_in(group);
        gf.gf_fmode = match f.mode {
            FilterMode::Include => sys::MCAST_INCLUDE,
            FilterMode::Exclude => sys::MCAST_EXCLUDE,
        };
        gf.gf_numsrc = f.sources.len() as u32;
        for (slot, s) in gf.gf_slist.iter_mut().zip(&f.sources) {
            *slot = sockaddr_in(*s);
        }
        // The kernel reads GROUP_FILTER_SIZE(numsrc) bytes.
        let len = size_of::<sys::group_filter>()
            - (sys::MAX_FILTER_SOURCES - f.sources.len().max(1))
                * size_of::<libc::sockaddr_storage>();
        // SAFETY: `gf` is live and at least `len` bytes long.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::MCAST_MSFILTER,
                (&*gf as *const sys::group_filter).cast(),
                len as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filter = f.clone();
        Ok(())
    }
}

/// The IGMP proxy as the supervisor runs it.
#[derive(Default)]
pub struct IgmpProxy {
    /// `(upstream, downstream)` names from the config.
    config: Option<(String, Vec<String>)>,
    upstream: Option<Interface>,
    downstream: BTreeSet<u32>,
    joins: BTreeMap<Ipv4Addr, UpstreamJoin>,
    /// Route keys contributed, per group.
    routes: BTreeMap<Ipv4Addr, BTreeSet<RouteKey>>,
    /// Why the proxy does not run (upstream missing or down).
    pub not_running: Option<String>,
    /// Groups not proxied at [`MAX_GROUPS`], upstream join failures.
    pub dropped_groups: u64,
}

impl IgmpProxy {
    /// The downstream interface names (they run the IGMP router side).
    pub fn downstream_names(&self) -> Vec<String> {
        self.config
            .as_ref()
            .map(|c| c.1.clone())
            .unwrap_or_default()
    }

    /// Upstream and downstream interfaces as resolved now (they get vifs).
    pub fn interfaces(&self, interfaces: &Interfaces) -> BTreeSet<Interface> {
        let mut out = BTreeSet::new();
        if let Some((up, down)) = &self.config {
            for n in std::iter::once(up).chain(down) {
                if let Some(i) = interfaces.get(n) {
                    out.insert(Interface::new(i.index, n.as_str()));
                }
            }
        }
        out
    }

    /// Whether the proxy is configured.
    pub fn configured(&self) -> bool {
        self.config.is_some()
    }

    /// Applies the config and interfaces; recomputes every group when
    /// either moved.
    pub fn sync(
        &mut self,
        config: Option<&mcr_config::IgmpProxyConfig>,
        interfaces: &Interfaces,
        mrib: &mut Mrib,
    ) {
        let want = config.map(|c| (c.upstream.clone(), c.downstream.clone()));
        let upstream = want.as_ref().and_then(|(u, _)| {
            interfaces
                .get(u)
                .filter(|i| i.up)
                .map(|i| Interface::new(i.index, u.as_str()))
        });
        let downstream: BTreeSet<u32> = want
            .iter()
            .flat_map(|(_, d)| d.iter())
            .filter_map(|n| interfaces.get(n).map(|i| i.index))
            .collect();
        self.not_running = match (&want, &upstream) {
            (Some((u, _)), None) => Some(format!("upstream interface {u} is missing or down")),
            _ => None,
        };
        if want == self.config && upstream == self.upstream && downstream == self.downstream {
            return;
        }
        let moved_upstream = upstream != self.upstream;
        self.config = want;
        self.upstream = upstream;
        self.downstream = downstream;
        if moved_upstream {
            // Joins belong to the old upstream interface.
            self.joins.clear();
        }
        let groups: BTreeSet<Ipv4Addr> = self
            .routes
            .keys()
            .copied()
            .chain(mrib.iter_local_members().map(|(_, g, _)| g))
            .collect();
        for g in groups {
            self.update_group(mrib, g);
        }
    }

    /// Local members of these `(ifindex, group)` changed.
    pub fn members_changed(&mut self, mrib: &mut Mrib, changes: &BTreeSet<(u32, Ipv4Addr)>) {
        if self.upstream.is_none() && self.routes.is_empty() {
            return;
        }
        let groups: BTreeSet<Ipv4Addr> = changes
            .iter()
            .filter(|(i, _)| self.downstream.contains(i))
            .map(|(_, g)| *g)
            .collect();
        for g in groups {
            self.update_group(mrib, g);
        }
    }

    fn update_group(&mut self, mrib: &mut Mrib, g: Ipv4Addr) {
        let members: Vec<(Interface, SourceFilter)> = match &self.upstream {
            Some(_) => mrib
                .local_members(g)
                .filter(|(i, _)| self.downstream.contains(&i.index))
                .map(|(i, f)| (i.clone(), f.clone()))
                .collect(),
            None => Vec::new(),
        };
        let merged = merge(members.iter().map(|(_, f)| f));
        let new_group = !self.routes.contains_key(&g) && !self.joins.contains_key(&g);
        if merged.is_some() && new_group && self.routes.len() >= MAX_GROUPS {
            self.dropped_groups += 1;
            return;
        }
        // Upstream membership.
        match (&merged, &self.upstream) {
            (Some(f), Some(up)) => {
                let r = match self.joins.get_mut(&g) {
                    Some(j) => j.set_filter(up.index, g, f),
                    None => UpstreamJoin::join(up.index, g, f).map(|j| {
                        self.joins.insert(g, j);
                    }),
                };
                if let Err(e) = r {
                    self.dropped_groups += 1;
                    tracing::warn!(group = %g, interface = %up.name, error = %e, "IGMP proxy: cannot report the membership upstream");
                }
            }
            _ => {
                self.joins.remove(&g);
            }
        }
        // Routes.
        let want: Vec<(RouteKey, Contribution)> = match &self.upstream {
            Some(up) => routes_for(g, up, members.iter().map(|(i, f)| (i, f))),
            None => Vec::new(),
        };
        let keys: BTreeSet<RouteKey> = want.iter().map(|(k, _)| *k).collect();
        for old in self.routes.get(&g).into_iter().flatten() {
            if !keys.contains(old) {
                mrib.remove(Origin::Igmp, *old);
            }
        }
        let mut set = BTreeSet::new();
        for (k, c) in want {
            match mrib.set(Origin::Igmp, k, c) {
                Ok(_) => {
                    set.insert(k);
                }
                Err(e) => {
                    self.dropped_groups += 1;
                    tracing::warn!(route = %k, error = %e, "IGMP proxy route not recorded in the MRIB");
                }
            }
        }
        if set.is_empty() {
            self.routes.remove(&g);
        } else {
            self.routes.insert(g, set);
        }
    }

    /// Withdraws every route and leaves every group upstream.
    pub fn shutdown(&mut self, mrib: &mut Mrib) {
        self.joins.clear();
        for (_, keys) in std::mem::take(&mut self.routes) {
            for k in keys {
                mrib.remove(Origin::Igmp, k);
            }
        }
    }

    /// Groups reported upstream now.
    pub fn upstream_groups(&self) -> usize {
        self.joins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    fn s(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }
    fn ifc(i: u32) -> Interface {
        Interface::new(i, format!("if{i}"))
    }

    /// RFC 4605 section 4.1 / RFC 3376 section 3.2 merge rows.
    #[test]
    fn merge_follows_rfc_4605_rows() {
        let inc = |v: &[u8]| SourceFilter::include(v.iter().map(|n| s(*n)));
        let exc = |v: &[u8]| SourceFilter::exclude(v.iter().map(|n| s(*n)));
        // Nothing, or only INCLUDE {}: no membership.
        assert_eq!(merge([]), None);
        assert_eq!(merge([&inc(&[])]), None);
        // INCLUDE + INCLUDE: union.
        assert_eq!(merge([&inc(&[1, 2]), &inc(&[2, 3])]), Some(inc(&[1, 2, 3])));
        // EXCLUDE + EXCLUDE: intersection.
        assert_eq!(merge([&exc(&[1, 2]), &exc(&[2, 3])]), Some(exc(&[2])));
        // EXCLUDE + INCLUDE: exclude list minus the included sources.
        assert_eq!(merge([&exc(&[1, 2]), &inc(&[2, 5])]), Some(exc(&[1])));
        // Any-source (v2 member) with anything: EXCLUDE {}.
        assert_eq!(
            merge([&inc(&[1]), &SourceFilter::any_source(), &exc(&[3])]),
            Some(SourceFilter::any_source())
        );
    }

    #[test]
    fn routes_star_and_source_specific() {
        let up = ifc(1);
        let any = SourceFilter::any_source();
        let only1 = SourceFilter::include([s(1)]);
        let not2 = SourceFilter::exclude([s(2)]);
        // A: any source; B: only S1; C: all but S2.
        let (a, b, c) = (ifc(2), ifc(3), ifc(4));
        let members = [(&a, &any), (&b, &only1), (&c, &not2)];
        let r = routes_for(G, &up, members.iter().copied());
        let keys: Vec<RouteKey> = r.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            vec![
                RouteKey::star_g(G),
                RouteKey::sg(s(1), G),
                RouteKey::sg(s(2), G)
            ]
        );
        let oifs = |i: usize| r[i].1.oifs.keys().map(|i| i.index).collect::<Vec<_>>();
        assert_eq!(oifs(0), vec![2, 4]);
        assert_eq!(oifs(1), vec![2, 3, 4]);
        assert_eq!(oifs(2), vec![2], "C excludes S2");
        assert!(r.iter().all(|(_, c)| c.iif == Some(up.clone())));
        assert!(r
            .iter()
            .flat_map(|(_, c)| c.oifs.values())
            .all(|w| *w == OifReason::LocalMembers));
        // Only INCLUDE members: no (*,G).
        let members = [(&b, &only1)];
        let r = routes_for(G, &up, members.iter().copied());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, RouteKey::sg(s(1), G));
        // A downstream interface equal to upstream is never an oif.
        let members = [(&up, &any)];
        let r = routes_for(G, &up, members.iter().copied());
        assert!(r[0].1.oifs.is_empty());
    }
}
