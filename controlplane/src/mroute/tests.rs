//! The reconciliation of MRIB routes with the MFC, against a model of the
//! kernel's mroute socket.

use super::*;
use mcr_protocols::{Contribution, MribLimits, OifReason, Origin};
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    vifs: BTreeMap<u16, Option<u32>>,
    /// (S,G) -> (parent, oif vifs)
    mfc: BTreeMap<(Ipv4Addr, Ipv4Addr), (u16, Vec<u16>)>,
    upcalls: VecDeque<Vec<u8>>,
    /// Interfaces whose vif the kernel refuses (missing).
    missing: BTreeSet<u32>,
    /// Counters per entry; (5, 500, 1) when not set.
    counts: BTreeMap<(Ipv4Addr, Ipv4Addr), (u64, u64, u64)>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

fn ip(a: libc::in_addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(a.s_addr))
}

impl MfcKernel for Fake {
    fn raw_fd(&self) -> std::os::fd::RawFd {
        -1
    }
    fn set_flag(&self, _: libc::c_int, _: bool) -> io::Result<()> {
        Ok(())
    }
    fn add_vif(&self, vifi: u16, ifindex: Option<u32>) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        if ifindex.is_some_and(|i| s.missing.contains(&i)) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        if usize::from(vifi) >= sys::MAXVIFS || s.vifs.contains_key(&vifi) {
            return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
        }
        s.vifs.insert(vifi, ifindex);
        Ok(())
    }
    fn del_vif(&self, vifi: u16) -> io::Result<()> {
        self.0.lock().unwrap().vifs.remove(&vifi);
        Ok(())
    }
    fn add_mfc(&self, m: &sys::mfcctl) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        assert!(s.vifs.contains_key(&m.mfcc_parent), "parent is a vif");
        let oifs: Vec<u16> = (0..sys::MAXVIFS as u16)
            .filter(|v| m.mfcc_ttls[usize::from(*v)] != 0)
            .collect();
        for v in &oifs {
            assert!(s.vifs.contains_key(v), "oif {v} is a vif");
            assert_eq!(m.mfcc_ttls[usize::from(*v)], 1);
        }
        s.mfc.insert(
            (ip(m.mfcc_origin), ip(m.mfcc_mcastgrp)),
            (m.mfcc_parent, oifs),
        );
        Ok(())
    }
    fn del_mfc(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<()> {
        match self.0.lock().unwrap().mfc.remove(&(source, group)) {
            Some(_) => Ok(()),
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }
    fn sg_count(&self, source: Ipv4Addr, group: Ipv4Addr) -> io::Result<(u64, u64, u64)> {
        let s = self.0.lock().unwrap();
        match s.mfc.get(&(source, group)) {
            Some(_) => Ok(s
                .counts
                .get(&(source, group))
                .copied()
                .unwrap_or((5, 500, 1))),
            None => Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
        }
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.0.lock().unwrap().upcalls.pop_front() {
            Some(b) => {
                let n = b.len().min(buf.len());
                buf[..n].copy_from_slice(&b[..n]);
                Ok(Some(n))
            }
            None => Ok(None),
        }
    }
    fn close(self: Box<Self>) {
        let mut s = self.0.lock().unwrap();
        s.vifs.clear();
        s.mfc.clear();
    }
}

impl Fake {
    fn upcall(&self, t: u8, vif: u16, s: Ipv4Addr, g: Ipv4Addr, whole: &[u8]) {
        let mut b = vec![0x45, 0, 0, 0, 0, 0, 0, 0, t, 0, vif as u8, (vif >> 8) as u8];
        b.extend_from_slice(&s.octets());
        b.extend_from_slice(&g.octets());
        b.extend_from_slice(whole);
        self.0.lock().unwrap().upcalls.push_back(b);
    }
    /// The installed entry as (parent ifindex, oif ifindexes); register
    /// vif as 0.
    fn entry(&self, s: Ipv4Addr, g: Ipv4Addr) -> Option<(u32, Vec<u32>)> {
        let st = self.0.lock().unwrap();
        let (p, o) = st.mfc.get(&(s, g))?;
        let idx = |v: &u16| st.vifs[v].unwrap_or(0);
        Some((idx(p), o.iter().map(idx).collect()))
    }
    fn vif_count(&self) -> usize {
        self.0.lock().unwrap().vifs.len()
    }
}

fn ifc(i: u32) -> Interface {
    Interface::new(i, format!("if{i}"))
}
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const S2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn setup() -> (Fake, Mroute, Mrib) {
    let fake = Fake::default();
    let m = Mroute::with_kernel(Box::new(fake.clone()));
    (fake, m, Mrib::new(MribLimits::default()))
}

fn route(iif: Option<u32>, oifs: &[u32]) -> Contribution {
    let mut c = Contribution::new(iif.map(ifc));
    for o in oifs {
        c = c.with_oif(ifc(*o), OifReason::PimJoin);
    }
    c
}

fn installed(m: &Mroute, mrib: &Mrib, k: RouteKey) -> Option<String> {
    m.install_of(mrib.get(&k).unwrap()).not_installed
}

#[test]
fn sg_routes_are_installed_changed_and_removed() {
    let (fake, mut m, mut mrib) = setup();
    let k = RouteKey::sg(S, G);
    mrib.set(Origin::Pim, k, route(Some(1), &[2, 3])).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2, 3])));
    assert_eq!(installed(&m, &mrib, k), None);
    let inst = m.install_of(mrib.get(&k).unwrap());
    assert_eq!((inst.packets, inst.bytes, inst.wrong_if), (5, 500, 1));
    let ev = m.take_events();
    assert_eq!(ev[0]["change"], "added");
    assert_eq!(ev[0]["installed"], "kernel");
    // An oif leaves, the iif moves.
    mrib.set(Origin::Pim, k, route(Some(3), &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((3, vec![2])));
    // Gone: the entry and the vifs nothing uses any more.
    mrib.remove(Origin::Pim, k);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None);
    assert_eq!(fake.vif_count(), 0);
    assert_eq!(m.take_events().last().unwrap()["change"], "removed");
}

#[test]
fn a_route_without_iif_forwards_nothing() {
    let (fake, mut m, mut mrib) = setup();
    let k = RouteKey::sg(S, G);
    mrib.set(Origin::Pim, k, route(None, &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None);
    assert!(installed(&m, &mrib, k)
        .unwrap()
        .contains("no incoming interface"));
}

#[test]
fn star_g_installs_per_source_on_nocache_and_follows_the_star() {
    let (fake, mut m, mut mrib) = setup();
    let star = RouteKey::star_g(G);
    mrib.set(Origin::Igmp, star, route(Some(1), &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    assert!(
        fake.0.lock().unwrap().mfc.is_empty(),
        "no entry before a packet"
    );
    // The iif is a vif already, so the first packet comes up as NOCACHE.
    let iif_vif = *fake
        .0
        .lock()
        .unwrap()
        .vifs
        .iter()
        .find(|(_, i)| **i == Some(1))
        .unwrap()
        .0;
    fake.upcall(sys::IGMPMSG_NOCACHE, iif_vif, S, G, &[]);
    // A NOCACHE on another interface (wrong side) also makes the entry
    // with the (*,G)'s iif: its packets then fail RPF in the kernel.
    let oif_vif = (0..32u16)
        .find(|v| fake.0.lock().unwrap().vifs.get(v) == Some(&Some(2)))
        .unwrap();
    fake.upcall(sys::IGMPMSG_NOCACHE, oif_vif, S2, G, &[]);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2])));
    assert_eq!(fake.entry(S2, G), Some((1, vec![2])));
    // This host's own multicast (looped into the MFC): no entry.
    let own = Ipv4Addr::new(10, 0, 0, 254);
    m.set_local_addresses(BTreeSet::from([own]));
    fake.upcall(sys::IGMPMSG_NOCACHE, iif_vif, own, G, &[]);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(own, G), None);
    let inst = m.install_of(mrib.get(&star).unwrap());
    assert_eq!(inst.sources, vec![S, S2]);
    assert_eq!(inst.packets, 10);
    assert_eq!(inst.not_installed, None);
    let notices = m.take_to_pim();
    assert_eq!(
        notices[0],
        ToPim::Notice(DataPlaneNotice::NewSource {
            interface: ifc(1),
            source: S,
            group: G
        })
    );
    // The (*,G) gains an oif: every source's entry follows.
    mrib.set(Origin::Igmp, star, route(Some(1), &[2, 4]))
        .unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2, 4])));
    assert_eq!(fake.entry(S2, G), Some((1, vec![2, 4])));
    // An (S,G) route of its own takes over that source's entry.
    mrib.set(Origin::Pim, RouteKey::sg(S, G), route(Some(3), &[2]))
        .unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((3, vec![2])));
    // The (*,G) goes: its derived entries go, the (S,G) route's stays.
    mrib.remove(Origin::Igmp, star);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S2, G), None);
    assert_eq!(fake.entry(S, G), Some((3, vec![2])));
    mrib.remove(Origin::Pim, RouteKey::sg(S, G));
    m.step(&mut mrib, vec![]);
    assert!(fake.0.lock().unwrap().mfc.is_empty());
}

#[test]
fn register_vif_nocache_at_the_rp_and_register_tunnels() {
    let (fake, mut m, mut mrib) = setup();
    let star = RouteKey::star_g(G);
    mrib.set(Origin::Pim, star, route(Some(1), &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    // The register vif exists once a tunnel asked for it; a NOCACHE on it
    // (decapsulated Register data at the RP) installs iif = pimreg.
    let k = RouteKey::sg(S2, Ipv4Addr::new(239, 2, 2, 2));
    mrib.set(Origin::Pim, k, route(Some(3), &[])).unwrap();
    m.step(&mut mrib, vec![(S2, k.group, true)]);
    assert_eq!(
        fake.entry(S2, k.group),
        Some((3, vec![0])),
        "the register vif (shown as 0) is an oif while the tunnel is up"
    );
    let reg = m.register_vif().unwrap();
    fake.upcall(sys::IGMPMSG_NOCACHE, reg, S, G, &[]);
    m.step(&mut mrib, vec![(S2, k.group, false)]);
    assert_eq!(fake.entry(S, G), Some((0, vec![2])), "iif = register vif");
    assert_eq!(fake.entry(S2, k.group), Some((3, vec![])), "tunnel down");
    // WHOLEPKT and WRONGVIF go to PIM.
    let inner = [
        0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 239, 1, 1, 1,
    ];
    fake.upcall(sys::IGMPMSG_WHOLEPKT, reg, S, G, &inner);
    let v2 = (0..32u16)
        .find(|v| fake.0.lock().unwrap().vifs.get(v) == Some(&Some(2)))
        .unwrap();
    fake.upcall(sys::IGMPMSG_WRONGVIF, v2, S, G, &[]);
    fake.upcall(7, v2, S, G, &[]);
    let mut igmp = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 1, 2, 0, 0];
    igmp.extend_from_slice(&[10, 0, 0, 9, 224, 0, 0, 22, 0x22, 0, 0, 0, 0, 0, 0, 0]);
    fake.0.lock().unwrap().upcalls.push_back(igmp);
    m.step(&mut mrib, vec![]);
    let p = m.take_to_pim();
    assert!(
        p.contains(&ToPim::RegisterData(S, G, inner.to_vec())),
        "{p:?}"
    );
    assert!(p.contains(&ToPim::Notice(DataPlaneNotice::WrongInterface {
        interface: ifc(2),
        source: S,
        group: G
    })));
    assert_eq!(m.counters.igmp_drained, 1);
    assert_eq!(m.counters.malformed, 1);
}

#[test]
fn a_route_needing_more_than_32_vifs_goes_to_the_engines_and_stays() {
    let (fake, mut m, mut mrib) = setup();
    let small = RouteKey::sg(S2, G);
    mrib.set(Origin::Pim, small, route(Some(1), &[2])).unwrap();
    // 32 interfaces (iif 1, oifs 2..=32): the kernel's.
    let k = RouteKey::sg(S, G);
    let oifs: Vec<u32> = (2..=32).collect();
    mrib.set(Origin::Pim, k, route(Some(1), &oifs)).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G).unwrap().1.len(), 31);
    assert!(m.engine_routes().is_empty());
    assert!(!m.take_engines_changed());
    let _ = m.take_events();
    // 33: past the vifs; the engines', and out of the kernel in the same
    // step (never both).
    let oifs: Vec<u32> = (2..=33).collect();
    mrib.set(Origin::Pim, k, route(Some(1), &oifs)).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.vif_count(), 32);
    assert_eq!(fake.entry(S, G), None);
    assert!(m.take_engines_changed());
    let e = &m.engine_routes()[&k];
    assert_eq!(e.iif.index, 1);
    assert_eq!(
        e.oifs.iter().map(|o| o.index).collect::<Vec<_>>(),
        oifs,
        "every oif, never the iif"
    );
    let inst = m.install_of(mrib.get(&k).unwrap());
    assert!(inst.engines && inst.not_installed.is_none());
    assert_eq!(m.take_events()[0]["installed"], "engines");
    assert_eq!(installed(&m, &mrib, small), None, "the other route is fine");
    assert!(fake.entry(S2, G).is_some());
    // Back to 32: stays with the engines (documented), still not in the
    // kernel; its oif list follows.
    let oifs: Vec<u32> = (2..=32).collect();
    mrib.set(Origin::Pim, k, route(Some(1), &oifs)).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None);
    assert!(m.take_engines_changed());
    assert_eq!(m.engine_routes()[&k].oifs.len(), 31);
    // Removed: gone from the engines too.
    mrib.remove(Origin::Pim, k);
    m.step(&mut mrib, vec![]);
    assert!(m.engine_routes().is_empty());
    assert!(m.take_engines_changed());
}

#[test]
fn a_star_g_past_32_vifs_leaves_its_derived_entries_to_the_engines() {
    let (fake, mut m, mut mrib) = setup();
    let star = RouteKey::star_g(G);
    mrib.set(Origin::Igmp, star, route(Some(1), &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    let iif_vif = *fake
        .0
        .lock()
        .unwrap()
        .vifs
        .iter()
        .find(|(_, i)| **i == Some(1))
        .unwrap()
        .0;
    fake.upcall(sys::IGMPMSG_NOCACHE, iif_vif, S, G, &[]);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2])));
    let oifs: Vec<u32> = (2..=40).collect();
    mrib.set(Origin::Igmp, star, route(Some(1), &oifs)).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None, "no kernel entry beside the engines");
    assert!(m.engine_routes().contains_key(&star));
    // A new source's NOCACHE makes no kernel entry either.
    fake.upcall(sys::IGMPMSG_NOCACHE, iif_vif, S2, G, &[]);
    m.step(&mut mrib, vec![]);
    assert_eq!(fake.entry(S2, G), None);
    // A relay rule on the iif for the group takes the traffic back.
    m.set_context(BTreeSet::new(), vec![(1, G, None, "r1".into())], &mrib);
    assert!(m.engine_routes().is_empty());
    assert!(m.take_engines_changed());
    assert!(installed(&m, &mrib, star)
        .unwrap()
        .contains("relay rule 'r1'"));
}

#[test]
fn a_missing_interface_and_a_relay_rule_are_reasons() {
    let (fake, mut m, mut mrib) = setup();
    fake.0.lock().unwrap().missing.insert(9);
    let k = RouteKey::sg(S, G);
    mrib.set(Origin::Pim, k, route(Some(1), &[9])).unwrap();
    m.step(&mut mrib, vec![]);
    assert!(installed(&m, &mrib, k).unwrap().contains("no vif for if9"));
    mrib.set(Origin::Pim, k, route(Some(1), &[2])).unwrap();
    m.step(&mut mrib, vec![]);
    assert_eq!(installed(&m, &mrib, k), None);
    // A relay rule on the iif for G (any source) takes the traffic.
    m.set_context(BTreeSet::new(), vec![(1, G, None, "cam-1".into())], &mrib);
    let why = installed(&m, &mrib, k).unwrap();
    assert!(why.contains("relay rule 'cam-1'"), "{why}");
    assert_eq!(fake.entry(S, G), None, "never forwarded by both");
    // A rule for another source does not.
    m.set_context(
        BTreeSet::new(),
        vec![(1, G, Some(S2), "cam-2".into())],
        &mrib,
    );
    assert_eq!(installed(&m, &mrib, k), None);
    assert!(fake.entry(S, G).is_some());
    // Extra interfaces (PIM, proxy) get vifs without routes.
    m.set_context(BTreeSet::from([ifc(7)]), vec![], &mrib);
    assert!(fake.0.lock().unwrap().vifs.values().any(|i| *i == Some(7)));
    // Released: the kernel state goes with the socket.
    m.release();
    assert_eq!(fake.vif_count(), 0);
    assert!(!m.held());
}

#[test]
fn counters_give_traffic_notices_once_a_minute_and_idle_sources_expire() {
    let (fake, mut m, mut mrib) = setup();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let star = RouteKey::star_g(G);
    mrib.set(Origin::Igmp, star, route(Some(1), &[2])).unwrap();
    let own = RouteKey::sg(S2, G);
    mrib.set(Origin::Pim, own, route(Some(1), &[2])).unwrap();
    m.step_at(at(0), &mut mrib, vec![]);
    fake.upcall(sys::IGMPMSG_NOCACHE, m.vif_of(1).unwrap(), S, G, &[]);
    m.step_at(at(1), &mut mrib, vec![]);
    m.take_to_pim();
    assert!(fake.entry(S, G).is_some());
    let traffic = |m: &mut Mroute| {
        m.take_to_pim()
            .into_iter()
            .filter(|p| matches!(p, ToPim::Notice(DataPlaneNotice::Traffic { .. })))
            .count()
    };
    let count = |n: u64| {
        let mut st = fake.0.lock().unwrap();
        st.counts.insert((S, G), (n, n * 100, 0));
        st.counts.insert((S2, G), (n, n * 100, 0));
    };
    count(10);
    m.step_at(at(11), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), 2, "both entries moved");
    count(20);
    m.step_at(at(22), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), 0, "at most one a minute");
    count(30);
    m.step_at(at(72), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), 2);
    m.step_at(at(83), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), 0, "no movement, no notice");
    // Quiet for 210 s: the (*,G)-derived entry goes, the (S,G) route's stays.
    m.step_at(at(72 + 205), &mut mrib, vec![]);
    assert!(fake.entry(S, G).is_some());
    m.step_at(at(72 + 216), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None);
    assert!(fake.entry(S2, G).is_some());
    assert!(m.install_of(mrib.get(&star).unwrap()).sources.is_empty());
    // The source comes back: a new NOCACHE makes it again.
    fake.upcall(sys::IGMPMSG_NOCACHE, m.vif_of(1).unwrap(), S, G, &[]);
    m.step_at(at(300), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2])));
}

#[test]
fn first_packets_on_a_changed_iif_are_noticed_at_once() {
    let (fake, mut m, mut mrib) = setup();
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let k = RouteKey::sg(S, G);
    mrib.set(Origin::Pim, k, route(Some(1), &[2])).unwrap();
    m.step_at(at(0), &mut mrib, vec![]);
    let traffic = |m: &mut Mroute| -> Vec<u32> {
        m.take_to_pim()
            .into_iter()
            .filter_map(|p| match p {
                ToPim::Notice(DataPlaneNotice::Traffic { interface, .. }) => Some(interface.index),
                _ => None,
            })
            .collect()
    };
    let count = |n: u64| {
        fake.0
            .lock()
            .unwrap()
            .counts
            .insert((S, G), (n, n * 100, 0));
    };
    count(10);
    m.step_at(at(10_000), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), vec![1]);
    // RPF moved: the route's iif is now if3. Packets counted on if1 until
    // then are no notice for if3.
    mrib.set(Origin::Pim, k, route(Some(3), &[2])).unwrap();
    m.step_at(at(10_100), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((3, vec![2])));
    count(20);
    m.step_at(at(10_400), &mut mrib, vec![]);
    assert_eq!(traffic(&mut m), Vec::<u32>::new(), "the base is taken");
    count(21);
    m.step_at(at(10_700), &mut mrib, vec![]);
    assert_eq!(
        traffic(&mut m),
        vec![3],
        "within a quarter second, not a minute after the last notice"
    );
    count(40);
    m.step_at(at(11_000), &mut mrib, vec![]);
    m.step_at(at(20_100), &mut mrib, vec![]);
    assert_eq!(
        traffic(&mut m),
        Vec::<u32>::new(),
        "then once a minute again"
    );
}

/// A NOCACHE with no route yet (no member): the kernel holds the (S,G)
/// unresolved for 10 s and sends no second NOCACHE, so a `(*,G)` route
/// appearing within that time installs the source's entry at once; one
/// appearing later does not (the kernel has dropped it and will ask
/// again); the memory is bounded (dropped and counted).
#[test]
fn a_star_g_route_installs_sources_that_arrived_before_it() {
    let (fake, mut m, mut mrib) = setup();
    let t0 = Instant::now();
    let g2 = Ipv4Addr::new(239, 1, 1, 2);
    fake.upcall(sys::IGMPMSG_NOCACHE, 0, S, G, &[]);
    fake.upcall(sys::IGMPMSG_NOCACHE, 0, S2, g2, &[]);
    m.step_at(t0, &mut mrib, vec![]);
    assert!(fake.0.lock().unwrap().mfc.is_empty(), "no route, no entry");
    // A member 3 s later: the entry comes with the route, no new NOCACHE.
    mrib.set(Origin::Igmp, RouteKey::star_g(G), route(Some(1), &[2]))
        .unwrap();
    m.step_at(t0 + Duration::from_secs(3), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2])));
    let star = RouteKey::star_g(G);
    assert_eq!(m.install_of(mrib.get(&star).unwrap()).sources, vec![S]);
    // Past the kernel's unresolved timeout: nothing remembered.
    mrib.set(Origin::Igmp, RouteKey::star_g(g2), route(Some(1), &[2]))
        .unwrap();
    m.step_at(t0 + Duration::from_secs(11), &mut mrib, vec![]);
    assert_eq!(fake.entry(S2, g2), None);
    // The route goes and comes back (a reload flap) while traffic flows:
    // the NOCACHE in between is taken when it returns.
    mrib.remove(Origin::Igmp, star);
    m.step_at(t0 + Duration::from_secs(12), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), None);
    fake.upcall(sys::IGMPMSG_NOCACHE, 0, S, G, &[]);
    m.step_at(t0 + Duration::from_secs(12), &mut mrib, vec![]);
    mrib.set(Origin::Igmp, star, route(Some(1), &[2])).unwrap();
    m.step_at(t0 + Duration::from_secs(13), &mut mrib, vec![]);
    assert_eq!(fake.entry(S, G), Some((1, vec![2])));
    // Bounded.
    let g3 = Ipv4Addr::new(239, 1, 1, 3);
    for i in 0..=MAX_UNRESOLVED as u32 {
        fake.upcall(
            sys::IGMPMSG_NOCACHE,
            0,
            Ipv4Addr::from(0x0a01_0000 + i),
            g3,
            &[],
        );
        if i % 512 == 0 {
            m.step_at(t0 + Duration::from_secs(14), &mut mrib, vec![]);
        }
    }
    m.step_at(t0 + Duration::from_secs(14), &mut mrib, vec![]);
    assert_eq!(m.counters.unresolved_dropped, 1);
}
