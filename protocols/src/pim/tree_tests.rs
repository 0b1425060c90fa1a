//! Scenario tests of the tree state: small networks of [`Pim`] instances in
//! one process, joined by fake LANs (each router's Sends on a LAN become
//! Packet inputs of the others on it), under one manual clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use mcr_wire::pim::{EncodedGroup, EncodedSource, JoinPruneGroup};

use super::fsm::{self, DownState, RptDownState, RptUpState, UpState, Upstream};
use super::tree::{EntryKey, TreeTimer};
use super::*;
use crate::driver::Driver;
use crate::io::{DataPlaneNotice, Packet, RpfRoute};
use crate::mrib::{Mrib, MribLimits, OifReason, Origin, RouteKey};
use crate::time::ManualClock;
use crate::Clock;

const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S: Ipv4Addr = Ipv4Addr::new(192, 168, 9, 9);

/// Router `r`'s address on LAN `l`: 10.0.l.(r+1).
fn addr(r: usize, l: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, l as u8, r as u8 + 1)
}

/// LAN `l` is interface index `l + 1` on every router.
fn ifc(l: u32) -> Interface {
    Interface::new(l + 1, format!("lan{l}"))
}

struct Router {
    d: Driver<Pim>,
    mrib: Mrib,
    lans: Vec<u32>,
    /// Every Join/Prune this router sent: (time, lan, message).
    sent: Vec<(Timestamp, u32, JoinPrune)>,
    /// Every Hello this router sent: (time, lan, how many Join/Prunes it
    /// had sent before it).
    hellos: Vec<(Timestamp, u32, usize)>,
}

struct Net {
    clock: ManualClock,
    routers: Vec<Router>,
    queue: Vec<(usize, u32, Ipv4Addr, PimMessage)>,
}

impl Net {
    /// Routers attached to LANs (`attach[r]` lists router r's LANs) with
    /// one tree config each.
    fn new(attach: &[&[u32]], tree: impl Fn(usize) -> TreeConfig) -> Net {
        let mut net = Net {
            clock: ManualClock::new(Timestamp::from_secs(1000)),
            routers: Vec::new(),
            queue: Vec::new(),
        };
        for (r, lans) in attach.iter().enumerate() {
            let cfg = PimConfig {
                interfaces: lans
                    .iter()
                    .map(|l| PimInterfaceConfig::new(ifc(*l)))
                    .collect(),
                tree: tree(r),
                ..PimConfig::default()
            };
            net.routers.push(Router {
                d: Driver::new(Pim::new(Rng::new(r as u64 + 7)), 1 << 20),
                mrib: Mrib::new(MribLimits::default()),
                lans: lans.to_vec(),
                sent: Vec::new(),
                hellos: Vec::new(),
            });
            net.feed(r, Input::Config(cfg));
            for l in lans.iter() {
                net.feed(
                    r,
                    Input::AddressAdded {
                        interface: ifc(*l),
                        address: IfAddr::new(addr(r, *l), 24).unwrap(),
                    },
                );
            }
        }
        net
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn feed(&mut self, r: usize, input: InputOf<Pim>) {
        let now = self.now();
        let mut out = Vec::new();
        self.routers[r].d.feed(now, input, &mut out);
        self.execute(r, out);
    }

    fn execute(&mut self, r: usize, out: Vec<ActionOf<Pim>>) {
        let now = self.now();
        for a in out {
            match a {
                Action::Send {
                    interface,
                    message,
                    destination,
                } => {
                    let lan = interface.index - 1;
                    if let PimMessage::JoinPrune(jp) = &message {
                        // Everything sent must encode within the budget.
                        assert!(jp.buffer_len() + 20 <= DEFAULT_JP_MTU_TEST);
                        self.routers[r].sent.push((now, lan, jp.clone()));
                    }
                    if let PimMessage::Hello(_) = &message {
                        let n = self.routers[r].sent.len();
                        self.routers[r].hellos.push((now, lan, n));
                    }
                    self.queue.push((r, lan, destination, message));
                }
                Action::Mrib(u) => {
                    self.routers[r].mrib.apply(u).unwrap();
                }
                _ => {}
            }
        }
    }

    /// Delivers queued messages (and what they trigger) until quiet.
    fn deliver(&mut self) {
        let mut rounds = 0;
        while !self.queue.is_empty() {
            rounds += 1;
            assert!(rounds < 1000, "message storm");
            for (from, lan, dst, msg) in std::mem::take(&mut self.queue) {
                let src = addr(from, lan);
                for to in 0..self.routers.len() {
                    if to == from
                        || !self.routers[to].lans.contains(&lan)
                        || !self.routers[from].lans.contains(&lan)
                        || (!dst.is_multicast() && dst != addr(to, lan))
                    {
                        continue;
                    }
                    self.feed(
                        to,
                        Input::Packet(Packet {
                            interface: ifc(lan),
                            source: src,
                            destination: dst,
                            ttl: 1,
                            router_alert: true,
                            message: msg.clone(),
                        }),
                    );
                }
            }
        }
    }

    /// Runs every router's timers up to `t`, delivering messages at each
    /// step.
    fn run_until(&mut self, t: Timestamp) {
        self.deliver();
        loop {
            let next = self
                .routers
                .iter()
                .filter_map(|r| r.d.next_deadline())
                .min();
            match next {
                Some(d) if d <= t => {
                    self.clock.advance_to(d.max(self.now()));
                    let now = self.now();
                    for r in 0..self.routers.len() {
                        let mut out = Vec::new();
                        self.routers[r].d.fire_due(now, &mut out);
                        self.execute(r, out);
                    }
                    self.deliver();
                }
                _ => break,
            }
        }
        self.clock.advance_to(t);
    }

    fn advance(&mut self, d: Duration) {
        let t = self.now() + d;
        self.run_until(t);
    }

    fn rpf(&mut self, r: usize, prefix: Ipv4Prefix, lan: u32, neighbor: Option<Ipv4Addr>) {
        self.feed(
            r,
            Input::Rpf(RpfChange {
                prefix,
                route: Some(RpfRoute {
                    interface: ifc(lan),
                    neighbor,
                    metric: 1,
                    preference: 1,
                }),
            }),
        );
    }

    fn members(&mut self, r: usize, lan: u32, filter: SourceFilter) {
        self.feed(
            r,
            Input::LocalMembers {
                interface: ifc(lan),
                group: G,
                filter,
            },
        );
    }

    fn tree(&self, r: usize) -> &Tree {
        self.routers[r].d.protocol().tree()
    }

    fn star(&self, r: usize) -> Option<&tree::StarG> {
        self.tree(r).groups().get(&G).and_then(|g| g.star.as_ref())
    }

    fn sg(&self, r: usize) -> Option<&tree::Sg> {
        self.tree(r)
            .groups()
            .get(&G)
            .and_then(|g| g.sources.get(&S))
    }

    fn route(&self, r: usize, key: RouteKey) -> Option<&crate::mrib::Route> {
        self.routers[r].mrib.get(&key)
    }

    /// Join/Prune messages router `r` sent since `t`.
    fn sent_since(&self, r: usize, t: Timestamp) -> Vec<&JoinPrune> {
        self.routers[r]
            .sent
            .iter()
            .filter(|(at, _, _)| *at >= t)
            .map(|(_, _, jp)| jp)
            .collect()
    }
}

const DEFAULT_JP_MTU_TEST: usize = tree::DEFAULT_JP_MTU;

/// A Hello from `from` on `lan` at router `r`: makes it a neighbour there.
fn hello_from(net: &mut Net, r: usize, lan: u32, from: Ipv4Addr) {
    net.feed(
        r,
        Input::Packet(Packet {
            interface: ifc(lan),
            source: from,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: PimMessage::Hello(Hello {
                holdtime: Some(0xffff),
                ..Hello::default()
            }),
        }),
    );
}

fn rp_at(rp: Ipv4Addr) -> impl Fn(usize) -> TreeConfig {
    move |_| TreeConfig {
        static_rp: vec![StaticRp {
            group: Ipv4Prefix::new(Ipv4Addr::new(224, 0, 0, 0), 4).unwrap(),
            rp,
        }],
        ..TreeConfig::default()
    }
}

fn all_lans() -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 16).unwrap()
}

fn has_star_join(jp: &JoinPrune, rp: Ipv4Addr) -> bool {
    jp.groups
        .iter()
        .any(|g| g.group.addr == G && g.joins.iter().any(|s| s.wildcard && s.rpt && s.addr == rp))
}

fn has_star_prune(jp: &JoinPrune) -> bool {
    jp.groups
        .iter()
        .any(|g| g.group.addr == G && g.prunes.iter().any(|s| s.wildcard && s.rpt))
}

/// Step 1, 2, 5, 6: a last-hop router's local member makes it join (*,G)
/// toward the RP's RPF neighbour; the RP holds downstream Join state and
/// both MRIBs carry the route with the right iif, RPF neighbour and oif
/// reasons; periodic Joins keep it; the leave prunes it at once (one
/// neighbour: PPT 0).
#[test]
fn scenario_last_hop_star_g_join_reaches_rp() {
    // R0 = RP on LAN0, R1 = last hop (LAN0 up, LAN1 receivers).
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10)); // Hellos, neighbours
    let t0 = net.now();
    net.members(1, 1, SourceFilter::any_source());
    net.deliver();
    // R1: upstream Joined toward the RP (RPF neighbour = the RP itself,
    // directly connected).
    let st = net.star(1).unwrap();
    assert_eq!(st.up, UpState::Joined);
    assert_eq!(
        st.upstream,
        Some(Upstream {
            ifindex: 1,
            neighbor: rp
        })
    );
    let sent = net.sent_since(1, t0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].upstream_neighbor, rp);
    assert_eq!(sent[0].holdtime, 210);
    assert!(has_star_join(sent[0], rp));
    // R1's route: iif lan0, RPF neighbour the RP, oif lan1 for members.
    let r = net.route(1, RouteKey::star_g(G)).unwrap();
    assert_eq!(r.iif, Some(ifc(0)));
    assert_eq!(r.rpf_neighbor, Some(rp));
    assert_eq!(r.oifs[&ifc(1)][&Origin::Pim], OifReason::LocalMembers);
    // R0 (the RP): downstream Join on lan0, route with no iif.
    let st0 = net.star(0).unwrap();
    assert_eq!(st0.down[&1].state, DownState::Join);
    let r0 = net.route(0, RouteKey::star_g(G)).unwrap();
    assert_eq!(r0.iif, None);
    assert_eq!(r0.oifs[&ifc(0)][&Origin::Pim], OifReason::PimJoin);
    // Periodic: ten minutes later the state is still there, refreshed by
    // one Join per t_periodic.
    net.advance(Duration::from_secs(600));
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
    let n = net
        .sent_since(1, t0 + Duration::from_secs(1))
        .iter()
        .filter(|jp| has_star_join(jp, rp))
        .count();
    assert!((9..=11).contains(&n), "{n} periodic joins in 600 s");
    // Leave: Prune(*,G); R0 has one neighbour on lan0, so the PPT is zero.
    let t1 = net.now();
    net.members(1, 1, SourceFilter::include([]));
    net.advance(Duration::from_millis(1));
    assert!(net.sent_since(1, t1).iter().any(|jp| has_star_prune(jp)));
    assert!(net.star(1).is_none());
    assert!(net.star(0).is_none(), "pruned at the RP");
    assert!(net.route(0, RouteKey::star_g(G)).is_none());
    assert!(net.route(1, RouteKey::star_g(G)).is_none());
}

/// Without refreshes the RP's downstream state expires after the
/// J/P holdtime (4.5.2 Expiry Timer).
#[test]
fn scenario_downstream_state_expires_after_holdtime() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.deliver();
    assert!(net.star(0).is_some());
    // R1 goes silent (removed from the network, no goodbye delivered).
    net.routers[1].lans.clear();
    net.queue.clear();
    let joined = net.now();
    // Hold on for the last refresh: state lasts 210 s after it.
    net.run_until(joined + Duration::from_secs(200));
    assert!(net.star(0).is_some());
    net.run_until(joined + Duration::from_secs(211));
    assert!(net.star(0).is_none(), "expired after 210 s");
    assert!(net.route(0, RouteKey::star_g(G)).is_none());
}

/// Step 2: join suppression. Two last-hop routers on one LAN with the same
/// upstream: each suppresses its Join when it sees the other's, so the
/// upstream gets about one Join per period instead of two.
#[test]
fn scenario_join_suppression_on_shared_lan() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1], &[0, 2]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(2, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.members(2, 2, SourceFilter::any_source());
    net.deliver();
    let t0 = net.now() + Duration::from_secs(1);
    net.advance(Duration::from_secs(1200));
    let joins = |net: &Net, r| {
        net.sent_since(r, t0)
            .iter()
            .filter(|jp| has_star_join(jp, rp))
            .count()
    };
    let (a, b) = (joins(&net, 1), joins(&net, 2));
    // Without suppression: 2 x 20 = 40 in 1200 s.
    assert!(a + b <= 26, "suppression: {a} + {b} joins in 1200 s");
    assert!(a + b >= 14, "still refreshed: {a} + {b}");
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
}

/// Step 2: prune override. R1 leaves and prunes; R2, still joined, sees the
/// Prune to its RPF' and overrides with a Join within t_override, before
/// the upstream's Prune-Pending Timer (J/P_Override_Interval = 3 s)
/// expires: the upstream never stops forwarding onto the LAN.
#[test]
fn scenario_prune_override_on_shared_lan() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1], &[0, 2]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(2, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.members(2, 2, SourceFilter::any_source());
    net.advance(Duration::from_secs(30));
    let t0 = net.now();
    net.routers[0].mrib.take_diff();
    net.members(1, 1, SourceFilter::include([]));
    net.deliver();
    assert_eq!(
        net.star(0).unwrap().down[&1].state,
        DownState::PrunePending,
        "the upstream waits J/P_Override_Interval"
    );
    assert_eq!(
        net.star(0).unwrap().down[&1].timers.prune_pending,
        Some(t0 + Duration::from_secs(3))
    );
    net.advance(Duration::from_millis(2600));
    // R2's override Join went out within t_override (< 2.5 s).
    let overrides: Vec<_> = net
        .sent_since(2, t0)
        .into_iter()
        .filter(|jp| has_star_join(jp, rp))
        .collect();
    assert_eq!(overrides.len(), 1);
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
    assert!(
        net.routers[0].mrib.take_diff().is_empty(),
        "the route never moved at the upstream"
    );
}

/// Without an overriding router the prune takes effect after
/// J/P_Override_Interval and the upstream sends a PruneEcho (4.5.2).
#[test]
fn scenario_prune_without_override_takes_effect_with_prune_echo() {
    let rp = addr(0, 0);
    // R2 is on the LAN (a second neighbour) but has no members.
    let mut net = Net::new(&[&[0], &[0, 1], &[0]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.advance(Duration::from_secs(5));
    let t0 = net.now();
    net.members(1, 1, SourceFilter::include([]));
    net.advance(Duration::from_millis(2900));
    assert!(net.route(0, RouteKey::star_g(G)).is_some());
    net.advance(Duration::from_millis(200));
    assert!(net.route(0, RouteKey::star_g(G)).is_none(), "pruned at 3 s");
    let echo = net.sent_since(0, t0);
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].upstream_neighbor, rp, "PruneEcho names ourselves");
    assert!(has_star_prune(echo[0]));
}

/// The LAN Prune Delay options of every neighbour set
/// J/P_Override_Interval (RFC 7761 4.3.3): the largest values win.
#[test]
fn override_interval_from_lan_prune_delay() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.advance(Duration::from_secs(10));
    let ifc0 = &net.routers[0].d.protocol().interfaces()[&1];
    // Every neighbour sends the option (ours: 500 + 2500 ms).
    assert_eq!(
        tree::jp_override_interval(ifc0),
        Duration::from_millis(3000)
    );
    // A neighbour advertising longer delays raises it.
    net.feed(
        0,
        Input::Packet(Packet {
            interface: ifc(0),
            source: addr(5, 0),
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: PimMessage::Hello(Hello {
                holdtime: Some(105),
                lan_prune_delay: Some(LanPruneDelay {
                    t_bit: false,
                    propagation_delay_ms: 1000,
                    override_interval_ms: 4000,
                }),
                ..Hello::default()
            }),
        }),
    );
    let ifc0 = &net.routers[0].d.protocol().interfaces()[&1];
    assert_eq!(
        tree::jp_override_interval(ifc0),
        Duration::from_millis(5000)
    );
    // One without the option: the defaults.
    net.feed(
        0,
        Input::Packet(Packet {
            interface: ifc(0),
            source: addr(6, 0),
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: PimMessage::Hello(Hello {
                holdtime: Some(105),
                ..Hello::default()
            }),
        }),
    );
    let ifc0 = &net.routers[0].d.protocol().interfaces()[&1];
    assert_eq!(
        tree::jp_override_interval(ifc0),
        Duration::from_millis(3000)
    );
}

/// Step 2: an RPF change moves the (S,G) join: Prune to the old upstream,
/// Join to the new one (4.5.6 "RPF'(S,G) changes").
#[test]
fn scenario_rpf_change_moves_sg_join() {
    // R1 (last hop, LAN1 receivers) reaches S via R0 on LAN0 or via R2 on
    // LAN2. Receivers want INCLUDE {S} (no RP needed).
    let mut net = Net::new(&[&[0], &[0, 1, 2], &[2]], |_| TreeConfig::default());
    let src = Ipv4Prefix::new(S, 24).unwrap();
    net.rpf(1, src, 0, Some(addr(0, 0)));
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::include([S]));
    net.deliver();
    assert_eq!(net.sg(0).unwrap().down[&1].state, DownState::Join);
    let r = net.route(1, RouteKey::sg(S, G)).unwrap();
    assert_eq!(
        (r.iif.clone(), r.rpf_neighbor),
        (Some(ifc(0)), Some(addr(0, 0)))
    );
    assert_eq!(r.oifs[&ifc(1)][&Origin::Pim], OifReason::LocalMembers);
    net.advance(Duration::from_secs(1));
    let t0 = net.now();
    net.rpf(1, src, 2, Some(addr(2, 2)));
    net.advance(Duration::from_millis(10));
    let sent = net.sent_since(1, t0);
    assert_eq!(sent.len(), 2, "{sent:?}");
    let prune = sent
        .iter()
        .find(|jp| jp.upstream_neighbor == addr(0, 0))
        .unwrap();
    assert_eq!(prune.groups[0].prunes[0].addr, S);
    let join = sent
        .iter()
        .find(|jp| jp.upstream_neighbor == addr(2, 2))
        .unwrap();
    assert_eq!(join.groups[0].joins[0].addr, S);
    assert!(net.sg(0).is_none(), "old upstream pruned (one neighbour)");
    assert_eq!(net.sg(2).unwrap().down[&3].state, DownState::Join);
    let r = net.route(1, RouteKey::sg(S, G)).unwrap();
    assert_eq!(
        (r.iif.clone(), r.rpf_neighbor),
        (Some(ifc(2)), Some(addr(2, 2)))
    );
    // The new upstream's route forwards onto LAN2.
    let r2 = net.route(2, RouteKey::sg(S, G)).unwrap();
    assert_eq!(r2.oifs[&ifc(2)][&Origin::Pim], OifReason::PimJoin);
}

/// Step 3: periodic Joins packed per upstream neighbour: 300 groups go out
/// as ceil(300 / 73) = 5 messages within the 1500-byte budget, each time.
#[test]
fn scenario_periodic_joins_packed_per_neighbor() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    for k in 0..300u32 {
        let g = Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 2, 0, 0)) + k);
        net.feed(
            1,
            Input::LocalMembers {
                interface: ifc(1),
                group: g,
                filter: SourceFilter::any_source(),
            },
        );
    }
    net.deliver();
    assert_eq!(net.tree(0).entry_count(), 300);
    let t0 = net.now() + Duration::from_secs(1);
    net.advance(Duration::from_secs(61));
    let sent = net.sent_since(1, t0);
    assert_eq!(sent.len(), 5, "one packed round");
    let groups: usize = sent.iter().map(|jp| jp.groups.len()).sum();
    assert_eq!(groups, 300);
    for jp in &sent {
        assert!(jp.buffer_len() + 20 <= 1500);
        assert_eq!(jp.upstream_neighbor, rp);
    }
    assert_eq!(net.tree(0).entry_count(), 300);
}

/// Step 7: SPT switchover at the last hop after the first packet, and the
/// (S,G,rpt) prune on the shared tree; the Keepalive Timer ends it 210 s
/// after the last packet.
#[test]
fn scenario_spt_switchover_and_rpt_prune() {
    // R0 = RP on LAN0; R2 = toward S on LAN2; R1 = last hop on both, LAN1
    // receivers.
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1, 2], &[2]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(1, Ipv4Prefix::new(S, 24).unwrap(), 2, Some(addr(2, 2)));
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.deliver();
    // First packet down the shared tree: a new source on lan0.
    net.feed(
        1,
        Input::DataPlane(DataPlaneNotice::NewSource {
            interface: ifc(0),
            source: S,
            group: G,
        }),
    );
    net.deliver();
    let sg = net.sg(1).unwrap();
    assert_eq!(sg.up, UpState::Joined, "joined toward S");
    assert!(sg.keepalive.is_some());
    assert_eq!(net.sg(2).unwrap().down[&3].state, DownState::Join);
    // Until SPT traffic arrives the route stays on the shared tree.
    let r = net.route(1, RouteKey::sg(S, G)).unwrap();
    assert_eq!(r.iif, Some(ifc(2)));
    // Traffic on the SPT (a WRONGVIF on lan2 or a notice there) sets the
    // SPTbit: Prune(S,G,rpt) toward the RP.
    let t0 = net.now();
    net.feed(
        1,
        Input::DataPlane(DataPlaneNotice::WrongInterface {
            interface: ifc(2),
            source: S,
            group: G,
        }),
    );
    net.advance(Duration::from_millis(10));
    assert!(net.sg(1).unwrap().spt_bit);
    assert_eq!(net.sg(1).unwrap().rpt_up, RptUpState::Pruned);
    let rpt_prune = net.sent_since(1, t0).into_iter().any(|jp| {
        jp.upstream_neighbor == rp
            && jp.groups[0]
                .prunes
                .iter()
                .any(|s| s.rpt && !s.wildcard && s.addr == S)
    });
    assert!(rpt_prune);
    // The RP: (S,G,rpt) pruned on lan0, so its (S,G) route sends nowhere.
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    assert!(net.route(0, RouteKey::sg(S, G)).unwrap().oifs.is_empty());
    // The periodic Join(*,G) carries the Prune(S,G,rpt) along (4.5.7), so
    // the RP keeps the prune.
    net.advance(Duration::from_secs(200));
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    // No data for 210 s: KAT expires, the (S,G) join is pruned.
    net.advance(Duration::from_secs(20));
    assert!(net.sg(2).is_none(), "SPT pruned after the Keepalive period");
    assert_ne!(net.sg(1).map(|s| s.up), Some(UpState::Joined));
}

/// `spt_switchover: never` keeps the last hop on the shared tree.
#[test]
fn spt_switchover_never_stays_on_shared_tree() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1, 2], &[2]], |_| TreeConfig {
        spt_switchover: SptSwitchover::Never,
        ..rp_at(addr(0, 0))(0)
    });
    net.rpf(1, all_lans(), 0, None);
    net.rpf(1, Ipv4Prefix::new(S, 24).unwrap(), 2, Some(addr(2, 2)));
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.feed(
        1,
        Input::DataPlane(DataPlaneNotice::NewSource {
            interface: ifc(0),
            source: S,
            group: G,
        }),
    );
    net.deliver();
    assert!(net.sg(1).is_none());
    assert!(net.sg(2).is_none());
    assert_eq!(net.star(1).unwrap().upstream.unwrap().neighbor, rp);
}

/// Step 4: RP mapping, longest prefix per group; `rp_address` makes us the
/// RP where no static mapping covers the group.
#[test]
fn rp_mapping_longest_prefix() {
    let mut pim = Pim::new(Rng::new(1));
    let mut out = Vec::new();
    let p = |a: [u8; 4], l| Ipv4Prefix::new(Ipv4Addr::from(a), l).unwrap();
    let cfg = PimConfig {
        tree: TreeConfig {
            static_rp: vec![
                StaticRp {
                    group: p([224, 0, 0, 0], 4),
                    rp: Ipv4Addr::new(10, 0, 0, 1),
                },
                StaticRp {
                    group: p([239, 0, 0, 0], 8),
                    rp: Ipv4Addr::new(10, 0, 0, 2),
                },
                StaticRp {
                    group: p([239, 1, 0, 0], 16),
                    rp: Ipv4Addr::new(10, 0, 0, 3),
                },
            ],
            rp_address: Some(Ipv4Addr::new(10, 9, 9, 9)),
            ..TreeConfig::default()
        },
        ..PimConfig::default()
    };
    pim.handle(Timestamp::ZERO, Input::Config(cfg), &mut out);
    let t = pim.tree();
    assert_eq!(
        t.rp_for(Ipv4Addr::new(239, 1, 2, 3)),
        Some(Ipv4Addr::new(10, 0, 0, 3))
    );
    assert_eq!(
        t.rp_for(Ipv4Addr::new(239, 2, 2, 3)),
        Some(Ipv4Addr::new(10, 0, 0, 2))
    );
    assert_eq!(
        t.rp_for(Ipv4Addr::new(230, 0, 0, 1)),
        Some(Ipv4Addr::new(10, 0, 0, 1))
    );
    let mut pim = Pim::new(Rng::new(1));
    let cfg = PimConfig {
        tree: TreeConfig {
            rp_address: Some(Ipv4Addr::new(10, 9, 9, 9)),
            ..TreeConfig::default()
        },
        ..PimConfig::default()
    };
    pim.handle(Timestamp::ZERO, Input::Config(cfg), &mut out);
    assert_eq!(pim.tree().rp_for(G), Some(Ipv4Addr::new(10, 9, 9, 9)));
    assert_eq!(Pim::new(Rng::new(1)).tree().rp_for(G), None);
}

/// Step 5: local members count only where we are the DR (pim_include,
/// 4.1.6): a non-DR on the receivers' LAN does not join.
#[test]
fn local_members_only_where_dr() {
    let rp = addr(0, 0);
    // R1 and R2 both on LAN1 with the receivers; R2 (10.0.1.3) is the DR.
    let mut net = Net::new(&[&[0], &[0, 1], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(2, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.members(2, 1, SourceFilter::any_source());
    net.deliver();
    assert!(net.star(1).is_none_or(|s| s.up == UpState::NotJoined));
    assert_eq!(net.star(2).unwrap().up, UpState::Joined);
    assert!(net.route(1, RouteKey::star_g(G)).is_none());
}

fn jp_msg(to: Ipv4Addr, groups: Vec<JoinPruneGroup>) -> PimMessage {
    PimMessage::JoinPrune(JoinPrune {
        upstream_neighbor: to,
        holdtime: 210,
        groups,
    })
}

fn sg_src(s: Ipv4Addr) -> EncodedSource {
    EncodedSource {
        addr: s,
        mask_len: 32,
        sparse: true,
        wildcard: false,
        rpt: false,
    }
}

/// Bounded state: a flood of 10,000 distinct (S,G) joins fills the table to
/// its bound and counts the rest; existing routes are unaffected.
#[test]
fn flood_of_10000_sg_joins_hits_the_bound() {
    let mut net = Net::new(&[&[0]], |_| TreeConfig {
        max_entries: 1000,
        ..TreeConfig::default()
    });
    net.advance(Duration::from_secs(1));
    let me = addr(0, 0);
    hello_from(&mut net, 0, 0, Ipv4Addr::new(10, 0, 0, 77));
    hello_from(&mut net, 0, 0, Ipv4Addr::new(10, 0, 0, 78));
    // An existing route before the flood.
    let kept = Ipv4Addr::new(239, 255, 0, 1);
    let join_kept = |net: &mut Net| {
        net.feed(
            0,
            Input::Packet(Packet {
                interface: ifc(0),
                source: Ipv4Addr::new(10, 0, 0, 78),
                destination: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: true,
                message: jp_msg(
                    me,
                    vec![JoinPruneGroup {
                        group: EncodedGroup::host(kept),
                        joins: vec![sg_src(S)],
                        prunes: vec![],
                    }],
                ),
            }),
        )
    };
    join_kept(&mut net);
    let mut n = 0u32;
    for _msg in 0..40 {
        let mut groups = Vec::new();
        for _g in 0..25 {
            let g = Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 0, 0, 0)) + n);
            groups.push(JoinPruneGroup {
                group: EncodedGroup::host(g),
                joins: (0..10u32)
                    .map(|k| sg_src(Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 1)) + k)))
                    .collect(),
                prunes: vec![],
            });
            n += 1;
        }
        net.feed(
            0,
            Input::Packet(Packet {
                interface: ifc(0),
                source: Ipv4Addr::new(10, 0, 0, 77),
                destination: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: true,
                message: jp_msg(me, groups),
            }),
        );
    }
    let t = net.tree(0);
    assert_eq!(t.entry_count(), 1000);
    assert_eq!(t.counters().entries_dropped, 9001);
    assert_eq!(net.routers[0].mrib.len(), 1000);
    assert!(
        net.route(0, RouteKey::sg(S, kept)).is_some(),
        "existing route unaffected"
    );
    // Its refresh still works at the bound.
    join_kept(&mut net);
    assert_eq!(net.tree(0).counters().entries_dropped, 9001);
    assert!(net.routers[0].d.timers().len() <= 1000 + 10);
    // Garbage: bad masks, W without R, non-multicast groups are counted.
    let bad = vec![
        JoinPruneGroup {
            group: EncodedGroup::host(Ipv4Addr::new(10, 1, 1, 1)),
            joins: vec![sg_src(S)],
            prunes: vec![],
        },
        JoinPruneGroup {
            group: EncodedGroup::host(G),
            joins: vec![
                EncodedSource {
                    mask_len: 24,
                    ..sg_src(S)
                },
                EncodedSource {
                    wildcard: true,
                    ..sg_src(S)
                },
                EncodedSource {
                    sparse: false,
                    ..sg_src(S)
                },
            ],
            prunes: vec![],
        },
    ];
    net.feed(
        0,
        Input::Packet(Packet {
            interface: ifc(0),
            source: Ipv4Addr::new(10, 0, 0, 77),
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: jp_msg(me, bad),
        }),
    );
    let c = net.tree(0).counters();
    assert_eq!((c.bad_group, c.bad_source), (1, 3));
    // From a router that is not a neighbour: ignored, counted.
    net.feed(
        0,
        Input::Packet(Packet {
            interface: ifc(0),
            source: Ipv4Addr::new(10, 0, 0, 99),
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: jp_msg(
                me,
                vec![JoinPruneGroup {
                    group: EncodedGroup::host(G),
                    joins: vec![sg_src(S)],
                    prunes: vec![],
                }],
            ),
        }),
    );
    assert_eq!(net.tree(0).counters().jp_not_neighbor, 1);
    assert!(net.sg(0).is_none());
    // Entries expire after the holdtime: memory comes back.
    net.advance(Duration::from_secs(211));
    assert_eq!(net.tree(0).entry_count(), 0);
    assert!(net.routers[0].mrib.is_empty());
}

/// A Join(*,G) naming another RP than RP(G) is ignored and counted
/// (4.5.2); our own looped-back Join/Prune is ignored.
#[test]
fn star_join_with_wrong_rp_and_own_messages_ignored() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0]], rp_at(rp));
    net.advance(Duration::from_secs(1));
    hello_from(&mut net, 0, 0, Ipv4Addr::new(10, 0, 0, 9));
    let star = |a| EncodedSource {
        addr: a,
        mask_len: 32,
        sparse: true,
        wildcard: true,
        rpt: true,
    };
    for (src, rpa) in [
        (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 5, 5, 5)),
        (rp, rp),
    ] {
        net.feed(
            0,
            Input::Packet(Packet {
                interface: ifc(0),
                source: src,
                destination: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: true,
                message: jp_msg(
                    rp,
                    vec![JoinPruneGroup {
                        group: EncodedGroup::host(G),
                        joins: vec![star(rpa)],
                        prunes: vec![],
                    }],
                ),
            }),
        );
    }
    let c = net.tree(0).counters();
    assert_eq!((c.rp_mismatch, c.jp_own), (1, 1));
    assert!(net.star(0).is_none());
}

/// The (S,G,rpt) PruneTmp rows in a message: a Join(*,G) without the
/// repeated Prune(S,G,rpt) clears the prune at End of Message; with it the
/// prune stays (4.5.4).
#[test]
fn sg_rpt_prune_survives_only_if_repeated_with_star_join() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0]], rp_at(rp));
    net.advance(Duration::from_secs(1));
    hello_from(&mut net, 0, 0, Ipv4Addr::new(10, 0, 0, 9));
    let star = EncodedSource {
        addr: rp,
        mask_len: 32,
        sparse: true,
        wildcard: true,
        rpt: true,
    };
    let rpt = EncodedSource {
        rpt: true,
        ..sg_src(S)
    };
    let send = |net: &mut Net, prunes: Vec<EncodedSource>| {
        net.feed(
            0,
            Input::Packet(Packet {
                interface: ifc(0),
                source: Ipv4Addr::new(10, 0, 0, 9),
                destination: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: true,
                message: jp_msg(
                    rp,
                    vec![JoinPruneGroup {
                        group: EncodedGroup::host(G),
                        joins: vec![star],
                        prunes,
                    }],
                ),
            }),
        );
    };
    send(&mut net, vec![rpt]);
    net.advance(Duration::from_millis(1)); // PPT zero: one neighbour
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    let r = net.route(0, RouteKey::sg(S, G)).unwrap();
    assert!(r.oifs.is_empty(), "S pruned off the shared tree here");
    send(&mut net, vec![rpt]);
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    send(&mut net, vec![]);
    assert!(
        net.sg(0).is_none(),
        "not repeated: End of Message clears it"
    );
    assert!(net.route(0, RouteKey::sg(S, G)).is_none());
    assert_eq!(
        net.route(0, RouteKey::star_g(G)).unwrap().oifs[&ifc(0)][&Origin::Pim],
        OifReason::PimJoin
    );
}

/// Timer keys are per entry and interface: the RP's downstream Expiry Timer
/// is armed in the driver.
#[test]
fn downstream_timers_are_armed_in_the_driver() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.deliver();
    let key = PimTimer::Tree(TreeTimer::Expiry(EntryKey::StarG(G), 1));
    assert!(net.routers[0].d.timers().is_armed(&key));
    let up = PimTimer::Tree(TreeTimer::Upstream(Upstream {
        ifindex: 1,
        neighbor: rp,
    }));
    assert!(net.routers[1].d.timers().is_armed(&up));
    let _ = BTreeMap::<u8, u8>::new();
}

/// 4.5.5 "RPF'(*,G) GenID changes": when the upstream restarts, the
/// downstream re-joins within t_override instead of waiting t_periodic.
#[test]
fn upstream_genid_change_triggers_join_within_t_override() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.advance(Duration::from_secs(5));
    let t0 = net.now();
    // R0 restarted: a Hello with a new Generation ID.
    let old = net.routers[1].d.protocol().interfaces()[&1].neighbors[&rp].generation_id;
    net.feed(
        1,
        Input::Packet(Packet {
            interface: ifc(0),
            source: rp,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: PimMessage::Hello(Hello {
                holdtime: Some(105),
                generation_id: Some(old.unwrap().wrapping_add(1)),
                ..Hello::default()
            }),
        }),
    );
    // Within J/P_Override_Interval (t_override < 3 s), not t_periodic.
    net.advance(Duration::from_millis(2999));
    let first = net.routers[1]
        .sent
        .iter()
        .position(|(at, lan, jp)| *at >= t0 && *lan == 0 && has_star_join(jp, rp))
        .expect("no Join within J/P_Override_Interval of the new GenID");
    // 4.3.1: the restarted neighbour learns us first (our Hello goes out
    // before the Join, not up to Triggered_Hello_Delay later), or it drops
    // the Join as one from a non-neighbour.
    assert!(
        net.routers[1]
            .hellos
            .iter()
            .any(|(at, lan, n)| *at >= t0 && *lan == 0 && *n <= first),
        "Join before our Hello: sends {:?}, hellos {:?}",
        net.routers[1]
            .sent
            .iter()
            .map(|s| (s.0, s.1))
            .collect::<Vec<_>>(),
        net.routers[1].hellos
    );
}

/// The upstream says goodbye (Holdtime 0) and comes back with a new
/// Generation ID: RPF' (from the unicast RPF) never changed, so it is the
/// GenID case again: our Hello, then the Join, within t_override.
#[test]
fn upstream_goodbye_and_return_triggers_join_within_t_override() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.advance(Duration::from_secs(5));
    let old = net.routers[1].d.protocol().interfaces()[&1].neighbors[&rp].generation_id;
    let hello = |holdtime, generation_id| {
        Input::Packet(Packet {
            interface: ifc(0),
            source: rp,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: PimMessage::Hello(Hello {
                holdtime: Some(holdtime),
                generation_id: Some(generation_id),
                ..Hello::default()
            }),
        })
    };
    net.feed(1, hello(0, old.unwrap()));
    assert!(!net.routers[1].d.protocol().interfaces()[&1]
        .neighbors
        .contains_key(&rp));
    net.advance(Duration::from_secs(1));
    let t0 = net.now();
    net.feed(1, hello(105, old.unwrap().wrapping_add(7)));
    net.advance(Duration::from_millis(2999));
    let first = net.routers[1]
        .sent
        .iter()
        .position(|(at, lan, jp)| *at >= t0 && *lan == 0 && has_star_join(jp, rp))
        .expect("no Join within J/P_Override_Interval of the neighbour's return");
    assert!(net.routers[1]
        .hellos
        .iter()
        .any(|(at, lan, n)| *at >= t0 && *lan == 0 && *n <= first));
}

fn register_stops(net: &Net, r: usize, since: Timestamp) -> usize {
    let _ = since;
    net.tree(r).counters().register_stops_sent as usize
}

/// Step 7: the Register machine at a first-hop DR (4.4.1) against the RP
/// (4.4.2): tunnel up on the first packet, Register-Stop while nobody
/// wants the source, Null-Register probes after the Register-Stop Timer,
/// tunnel back up once a receiver joins at the RP, the RP joins toward the
/// source and stops the registers once native traffic arrives.
#[test]
fn scenario_register_at_first_hop_and_rp() {
    // R0 = RP (lan0; receivers on lan2), R1 = first-hop DR (lan0; source
    // S1 on lan1).
    let rp = addr(0, 0);
    let s1 = Ipv4Addr::new(10, 0, 1, 50);
    let mut net = Net::new(&[&[0, 2], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(1, Ipv4Prefix::new(s1, 24).unwrap(), 1, None);
    net.rpf(0, Ipv4Prefix::new(s1, 24).unwrap(), 0, Some(addr(1, 0)));
    net.advance(Duration::from_secs(10));
    let events = |out: &[ActionOf<Pim>]| -> Vec<&'static str> {
        out.iter()
            .filter_map(|a| match a {
                Action::Event(e) if e.kind == "register-tunnel" => e.payload.action,
                _ => None,
            })
            .collect()
    };
    // First packet at the DR: register tunnel up.
    let mut out = Vec::new();
    let now = net.now();
    net.routers[1].d.feed(
        now,
        Input::DataPlane(DataPlaneNotice::NewSource {
            interface: ifc(1),
            source: s1,
            group: G,
        }),
        &mut out,
    );
    assert_eq!(events(&out), vec!["add"]);
    net.execute(1, out);
    let sg1 = |net: &Net| net.tree(1).groups()[&G].sources[&s1].clone();
    assert_eq!(sg1(&net).register, fsm::RegState::Join);
    // The data path encapsulates a packet: a Register reaches the RP; no
    // receivers there, so Register-Stop.
    let mut data = Register::null(s1, G);
    data.null_register = false;
    net.queue
        .push((1, 0, rp, PimMessage::Register(data.clone())));
    net.deliver();
    assert_eq!(net.tree(0).counters().registers_received, 1);
    assert_eq!(register_stops(&net, 0, now), 1);
    assert_eq!(sg1(&net).register, fsm::RegState::Prune);
    let rst = sg1(&net).register_stop_timer.unwrap();
    let wait = rst.saturating_duration_since(net.now());
    assert!(
        wait >= Duration::from_secs(25) && wait <= Duration::from_secs(85),
        "RST {wait:?}"
    );
    // RST expires: Join-Pending and a Null-Register; the RP still has no
    // receivers and stops it again.
    net.run_until(rst);
    assert_eq!(net.tree(1).counters().null_registers_sent, 1);
    assert_eq!(register_stops(&net, 0, now), 2);
    assert_eq!(sg1(&net).register, fsm::RegState::Prune);
    // A receiver joins at the RP; the next probe is not stopped, so the
    // tunnel comes back up after Register_Probe_Time.
    net.feed(
        0,
        Input::LocalMembers {
            interface: ifc(2),
            group: G,
            filter: SourceFilter::any_source(),
        },
    );
    let rst = sg1(&net).register_stop_timer.unwrap();
    net.run_until(rst + Duration::from_secs(6));
    assert_eq!(register_stops(&net, 0, now), 2);
    assert_eq!(sg1(&net).register, fsm::RegState::Join);
    // The RP's KAT runs (Null-Register) and it has receivers: it joins
    // toward S; the DR forwards natively onto lan0.
    let sg0 = net.tree(0).groups()[&G].sources[&s1].clone();
    assert_eq!(sg0.up, UpState::Joined);
    let r1 = net.route(1, RouteKey::sg(s1, G)).unwrap();
    assert_eq!(r1.iif, Some(ifc(1)));
    assert_eq!(r1.oifs[&ifc(0)][&Origin::Pim], OifReason::PimJoin);
    // Native traffic at the RP sets the SPTbit; the next Register is
    // stopped.
    net.feed(
        0,
        Input::DataPlane(DataPlaneNotice::NewSource {
            interface: ifc(0),
            source: s1,
            group: G,
        }),
    );
    assert!(net.tree(0).groups()[&G].sources[&s1].spt_bit);
    net.queue.push((1, 0, rp, PimMessage::Register(data)));
    net.deliver();
    assert_eq!(register_stops(&net, 0, now), 3);
    assert_eq!(sg1(&net).register, fsm::RegState::Prune);
    // The source stops: after the Keepalive period the DR stops registering.
    net.advance(Duration::from_secs(211));
    assert!(net
        .tree(1)
        .groups()
        .get(&G)
        .and_then(|g| g.sources.get(&s1))
        .is_none_or(|sg| sg.register == fsm::RegState::NoInfo));
}

/// A Register for a group we are not the RP of is answered with
/// Register-Stop; garbage inner packets are counted.
#[test]
fn register_not_rp_and_garbage() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0]], rp_at(Ipv4Addr::new(10, 9, 9, 9)));
    net.advance(Duration::from_secs(10));
    let s1 = Ipv4Addr::new(10, 0, 1, 50);
    net.queue
        .push((1, 0, rp, PimMessage::Register(Register::null(s1, G))));
    net.queue.push((
        1,
        0,
        rp,
        PimMessage::Register(Register {
            border: false,
            null_register: false,
            packet: vec![0x45, 0, 1],
        }),
    ));
    net.deliver();
    let c = net.tree(0).counters();
    assert_eq!(
        (c.registers_received, c.bad_registers, c.register_stops_sent),
        (2, 1, 1)
    );
}

/// The new message variants survive encode and parse.
#[test]
fn messages_round_trip_through_the_wire_crate() {
    let msgs = vec![
        jp_msg(
            addr(0, 0),
            vec![JoinPruneGroup {
                group: EncodedGroup::host(G),
                joins: vec![sg_src(S)],
                prunes: vec![EncodedSource {
                    rpt: true,
                    ..sg_src(S)
                }],
            }],
        ),
        PimMessage::Register(Register::null(S, G)),
        PimMessage::RegisterStop {
            group: G,
            source: S,
        },
        PimMessage::Assert(Assert {
            group: G,
            source: S,
            rpt: false,
            metric_preference: 110,
            metric: 20,
        }),
    ];
    for m in msgs {
        let bytes = m.encode().unwrap();
        assert_eq!(PimMessage::parse(&bytes), m);
    }
    assert_eq!(Register::null(S, G).inner_source_group(), Some((S, G)));
}

/// Step 7 (Assert, 4.6.2): two routers forward (*,G) onto one LAN; data
/// from one arriving at the other on its outgoing interface starts an
/// Assert; the better metric (here: equal routes, higher address) wins,
/// the loser drops the LAN from its olist (and, with nothing left, prunes
/// upstream), and the downstream router whose RPF' was the loser re-joins
/// toward the winner.
#[test]
fn scenario_assert_elects_one_forwarder() {
    let rp = addr(0, 0);
    // R0 = RP (lan0); R1, R2 upstream routers on lan0 and lan1; R3, R4
    // downstream on lan1 with receivers on lan3 and lan4.
    let mut net = Net::new(&[&[0], &[0, 1], &[0, 1], &[1, 3], &[1, 4]], rp_at(rp));
    for r in [1, 2] {
        net.rpf(r, all_lans(), 0, None);
    }
    net.rpf(3, Ipv4Prefix::host(rp), 1, Some(addr(1, 1)));
    net.rpf(4, Ipv4Prefix::host(rp), 1, Some(addr(2, 1)));
    net.advance(Duration::from_secs(10));
    net.members(3, 3, SourceFilter::any_source());
    net.members(4, 4, SourceFilter::any_source());
    net.advance(Duration::from_secs(1));
    let lan1 = ifc(1);
    assert!(star_g_oif(&net, 1, &lan1));
    assert!(star_g_oif(&net, 2, &lan1));
    // R2's packets reach R1 on its oif lan1.
    let t0 = net.now();
    wrong_interface(&mut net, 1, &lan1);
    net.advance(Duration::from_secs(1));
    let key = (EntryKey::StarG(G), lan1.index);
    assert_eq!(net.tree(2).asserts()[&key].state, fsm::AssertState::Winner);
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    assert_eq!(
        net.tree(1).asserts()[&key].winner.unwrap().address,
        addr(2, 1)
    );
    // One forwarder on lan1.
    assert!(!star_g_oif(&net, 1, &lan1));
    assert!(star_g_oif(&net, 2, &lan1));
    // RPF' changes caused by the Asserts send nothing at once (sections
    // 4.5.5: JT = min(JT, t_override)): R4, whose unicast RPF' is R2, took
    // R1 for the winner for a moment and neither joined R1 nor pruned R2;
    // nobody joined the loser, whose Assert state would reset on a Join.
    for r in [3, 4] {
        for jp in net.sent_since(r, t0) {
            assert!(
                jp.upstream_neighbor != addr(1, 1) || jp.groups.iter().all(|g| g.joins.is_empty()),
                "R{r} joined the loser: {jp:?}"
            );
            assert!(
                jp.groups.iter().all(|g| g.prunes.is_empty()),
                "R{r} pruned on an Assert: {jp:?}"
            );
        }
    }
    // R3 learned the winner as its RPF' and joined toward it.
    assert_eq!(net.tree(3).asserts()[&key].state, fsm::AssertState::Loser);
    assert_eq!(net.star(3).unwrap().upstream.unwrap().neighbor, addr(2, 1));
    assert_eq!(
        net.star(2).unwrap().down[&lan1.index].state,
        DownState::Join
    );
    // The winner refreshes its Assert before the losers' 180 s run out,
    // so the outcome holds.
    net.advance(Duration::from_secs(400));
    assert_eq!(net.tree(2).asserts()[&key].state, fsm::AssertState::Winner);
    // R1 pruned its (*,G) (nothing left to forward to) and with it the
    // Assert state; it does not forward onto lan1 again.
    assert!(net.star(1).is_none());
    assert!(!net.tree(1).asserts().contains_key(&key));
    assert_eq!(net.star(3).unwrap().upstream.unwrap().neighbor, addr(2, 1));
    assert!(!star_g_oif(&net, 1, &lan1));
}

/// Router `n`'s data plane reports (S,G) data arriving on `at`, an oif
/// (the kernel's WRONGVIF upcall that starts an Assert, RFC 7761 4.6.1).
fn wrong_interface(net: &mut Net, n: usize, at: &Interface) {
    net.feed(
        n,
        Input::DataPlane(DataPlaneNotice::WrongInterface {
            interface: at.clone(),
            source: S,
            group: G,
        }),
    );
}

/// Whether router `n`'s (*,G) route forwards on `oif` (false without the
/// route).
fn star_g_oif(net: &Net, n: usize, oif: &Interface) -> bool {
    net.route(n, RouteKey::star_g(G))
        .is_some_and(|r| r.oifs.contains_key(oif))
}

/// The Assert tests' network: R0 = RP (lan0); R1 between lan0 and lan1,
/// forwarding (*,G) onto lan1 for R2, a last hop with members on lan2.
/// `s_rpf`: R1's route to S (`Some(rp)`: beyond R0; `None`: directly
/// connected on lan0, preference 1 and metric 1 from `Net::rpf`), or no
/// route of its own for S (the all-LANs default) when not given.
fn lan1_forwarder(s_rpf: Option<Option<Ipv4Addr>>) -> Net {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1], &[1, 2]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    if let Some(via) = s_rpf {
        net.rpf(1, Ipv4Prefix::host(S), 0, via);
    }
    net.rpf(2, Ipv4Prefix::host(rp), 1, Some(addr(1, 1)));
    net.advance(Duration::from_secs(10));
    net.members(2, 2, SourceFilter::any_source());
    net.advance(Duration::from_secs(1));
    assert!(star_g_oif(&net, 1, &ifc(1)));
    net
}

/// An Assert from `from` reaching R1 on lan1.
fn assert_on_lan1(net: &mut Net, from: Ipv4Addr, a: Assert) {
    net.feed(
        1,
        Input::Packet(Packet {
            interface: ifc(1),
            source: from,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: false,
            message: PimMessage::Assert(a),
        }),
    );
}

/// An (S,G) Assert with the RPT bit clear and this metric.
fn sg_assert(preference: u32, metric: u32) -> Assert {
    Assert {
        group: G,
        source: S,
        rpt: false,
        metric_preference: preference,
        metric,
    }
}

/// An (S,G) Assert (RPT bit clear) on an interface a router forwards S
/// onto through (*,G) only, with no (S,G) state (RFC 7761 section 4.6.1,
/// AssertTrackingDesired(S,G,I) holds on the (*,G) olist): the router
/// loses for S alone. I leaves inherited_olist(S,G,rpt) (lost_assert(S,G,
/// rpt), section 4.1.6) through an (S,G) route; the (*,G) route keeps I
/// for other sources; the state and the route go when the Assert Timer
/// runs out. (Before, such an Assert was ignored and both routers kept
/// forwarding: seen against FRR in tests/tests/pim_assert.rs.)
#[test]
fn sg_assert_on_a_shared_tree_oif_takes_it_out_for_that_source() {
    // S lies beyond R0.
    let mut net = lan1_forwarder(Some(Some(addr(0, 0))));
    let lan1 = ifc(1);
    assert!(net.route(1, RouteKey::sg(S, G)).is_none());
    // Another forwarder of S on lan1 asserts on the SPT.
    let other = addr(7, 1);
    assert_on_lan1(&mut net, other, sg_assert(200, 200));
    net.advance(Duration::from_millis(10));
    let key = (EntryKey::Sg(S, G), lan1.index);
    let a = net.tree(1).asserts()[&key];
    assert_eq!(a.state, fsm::AssertState::Loser);
    assert_eq!(a.winner.unwrap().address, other);
    assert_eq!(net.tree(1).counters().asserts_received, 1);
    // S is not forwarded onto lan1 any more; other sources still are.
    let sg = net.route(1, RouteKey::sg(S, G)).expect("(S,G) route");
    assert_eq!(sg.iif, Some(ifc(0)));
    assert!(!sg.oifs.contains_key(&lan1), "{sg:?}");
    assert!(star_g_oif(&net, 1, &lan1));
    // Assert_Time (180 s) without a refresh: NoInfo, the (S,G) entry goes.
    net.advance(Duration::from_secs(181));
    assert!(!net.tree(1).asserts().contains_key(&key));
    assert!(net.sg(1).is_none());
    assert!(net.route(1, RouteKey::sg(S, G)).is_none());
    assert!(star_g_oif(&net, 1, &lan1));
}

/// A (*,G) Assert (source 0) with the R bit clear is still an RPT metric
/// (RFC 7761 section 4.9.6): a worse one loses to ours instead of winning
/// as if it were on the SPT, and the oif stays.
#[test]
fn star_g_assert_without_the_rpt_bit_is_compared_as_rpt() {
    let mut net = lan1_forwarder(None);
    let lan1 = ifc(1);
    assert_on_lan1(
        &mut net,
        addr(7, 1),
        Assert {
            source: Ipv4Addr::UNSPECIFIED,
            ..sg_assert(1000, 1000)
        },
    );
    net.advance(Duration::from_millis(10));
    let a = net.tree(1).asserts()[&(EntryKey::StarG(G), lan1.index)];
    assert_eq!(a.state, fsm::AssertState::Winner, "{a:?}");
    assert!(star_g_oif(&net, 1, &lan1));
}

/// A loser that receives a Join for the entry on that interface goes back
/// to NoInfo (RFC 7761 section 4.6.1, Loser: "Receive Join(S,G) on
/// Interface I", A5): a downstream router still takes it for its upstream,
/// so the Assert is redone rather than that router left without data.
#[test]
fn assert_loser_receiving_a_join_goes_back_to_noinfo() {
    let mut net = lan1_forwarder(Some(Some(addr(0, 0))));
    let lan1 = ifc(1);
    assert_on_lan1(&mut net, addr(7, 1), sg_assert(1, 1));
    net.advance(Duration::from_millis(10));
    let key = (EntryKey::Sg(S, G), lan1.index);
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    // R2 (a neighbour on lan1) joins (S,G) toward R1 all the same.
    net.feed(
        1,
        Input::Packet(Packet {
            interface: lan1.clone(),
            source: addr(2, 1),
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: true,
            message: jp_msg(
                addr(1, 1),
                vec![JoinPruneGroup {
                    group: EncodedGroup::host(G),
                    joins: vec![sg_src(S)],
                    prunes: vec![],
                }],
            ),
        }),
    );
    net.advance(Duration::from_millis(10));
    assert!(
        net.tree(1)
            .asserts()
            .get(&key)
            .is_none_or(|a| a.state == fsm::AssertState::NoInfo),
        "{:?}",
        net.tree(1).asserts().get(&key)
    );
}

/// The Assert winner goes away: the loser forgets it and forwards again at
/// once instead of after Assert_Time (RFC 7761 section 4.6.1, Loser:
/// "Current Winner's GenID changes or NLT expires" -> NoInfo, A5). Once
/// by the winner's Neighbor Liveness Timer, once by a new Generation ID.
#[test]
fn assert_loser_forgets_a_winner_that_expires_or_restarts() {
    let mut net = lan1_forwarder(Some(Some(addr(0, 0))));
    let lan1 = ifc(1);
    let key = (EntryKey::Sg(S, G), lan1.index);
    let winner = addr(7, 1);
    let hello = |net: &mut Net, holdtime: u16, generation_id: u32| {
        net.feed(
            1,
            Input::Packet(Packet {
                interface: ifc(1),
                source: winner,
                destination: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: true,
                message: PimMessage::Hello(Hello {
                    holdtime: Some(holdtime),
                    generation_id: Some(generation_id),
                    ..Hello::default()
                }),
            }),
        );
    };
    let assert = |net: &mut Net| {
        assert_on_lan1(net, winner, sg_assert(1, 1));
        net.advance(Duration::from_millis(10));
    };
    let forwards = |net: &Net| {
        net.route(1, RouteKey::sg(S, G))
            .is_none_or(|r| r.oifs.contains_key(&ifc(1)))
    };
    // NLT: the winner's Hellos stop; 30 s later it is no neighbour.
    hello(&mut net, 30, 1);
    assert(&mut net);
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    assert!(!forwards(&net));
    net.advance(Duration::from_secs(29));
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    net.advance(Duration::from_secs(2));
    assert!(!net.tree(1).asserts().contains_key(&key), "NLT expired");
    assert!(forwards(&net));
    assert!(star_g_oif(&net, 1, &lan1));
    // GenID: the winner restarts (a Hello with a new Generation ID).
    hello(&mut net, 105, 1);
    assert(&mut net);
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    hello(&mut net, 105, 1);
    net.advance(Duration::from_millis(10));
    assert_eq!(
        net.tree(1).asserts()[&key].state,
        fsm::AssertState::Loser,
        "same Generation ID: still the winner"
    );
    hello(&mut net, 105, 2);
    net.advance(Duration::from_millis(10));
    assert!(!net.tree(1).asserts().contains_key(&key), "GenID changed");
    assert!(forwards(&net));
}

/// A router that lost an (S,G) Assert while its own metric was worse
/// stays the loser; one whose metric is better than the winner's (here:
/// S directly connected, same preference and metric, higher address)
/// leaves the Loser state (RFC 7761 section 4.6.1, "my metric becomes
/// better than the assert winner's metric": -> NoInfo, A5), forwards
/// again and wins the Assert on the next packet from the other forwarder.
#[test]
fn assert_loser_with_a_better_metric_asserts_again_and_wins() {
    // S directly connected on lan0: preference 1, metric 1 (Net::rpf).
    let mut net = lan1_forwarder(Some(None));
    let lan1 = ifc(1);
    let key = (EntryKey::Sg(S, G), lan1.index);
    let assert_from = |net: &mut Net, from: Ipv4Addr| {
        assert_on_lan1(net, from, sg_assert(1, 1));
        net.advance(Duration::from_millis(10));
    };
    // A better winner (higher address, equal route): R1 stays the loser.
    let higher = Ipv4Addr::new(10, 0, 1, 200);
    assert_from(&mut net, higher);
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Loser);
    assert!(!net
        .route(1, RouteKey::sg(S, G))
        .unwrap()
        .oifs
        .contains_key(&lan1));
    net.advance(Duration::from_secs(181));
    assert!(!net.tree(1).asserts().contains_key(&key));
    // A worse one (lower address than R1's 10.0.1.2): R1 takes it as the
    // winner at first (it held no (S,G) state, so no metric of its own),
    // then finds its own SPT metric better and leaves the Loser state.
    let lower = Ipv4Addr::new(10, 0, 1, 1);
    assert_from(&mut net, lower);
    assert!(!net.tree(1).asserts().contains_key(&key));
    assert!(net
        .route(1, RouteKey::sg(S, G))
        .unwrap()
        .oifs
        .contains_key(&lan1));
    // The other forwarder's next packet on lan1: R1 asserts and wins.
    let sent = net.tree(1).counters().asserts_sent;
    wrong_interface(&mut net, 1, &lan1);
    net.advance(Duration::from_millis(10));
    assert_eq!(net.tree(1).asserts()[&key].state, fsm::AssertState::Winner);
    assert_eq!(net.tree(1).counters().asserts_sent, sent + 1);
    assert!(net
        .route(1, RouteKey::sg(S, G))
        .unwrap()
        .oifs
        .contains_key(&lan1));
}

/// Hop by hop: a last-hop router's (*,G) join makes the intermediate router
/// join toward the RP in turn; the leave unwinds the chain. Also checks the
/// `join-state` and `route` events.
#[test]
fn scenario_join_propagates_hop_by_hop_to_rp() {
    // R0 = RP (lan0), R1 intermediate (lan0, lan1), R2 last hop (lan1,
    // receivers on lan2).
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1], &[1, 2]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(2, Ipv4Prefix::host(rp), 1, Some(addr(1, 1)));
    net.advance(Duration::from_secs(10));
    // Watch R1's events.
    let now = net.now();
    net.members(2, 2, SourceFilter::any_source());
    let mut r1_events = Vec::new();
    // Deliver R2's join to R1 by hand to see R1's actions.
    let (from, lan, dst, msg) = net.queue.remove(0);
    assert_eq!((from, lan, dst), (2, 1, ALL_PIM_ROUTERS));
    let mut out = Vec::new();
    net.routers[1].d.feed(
        now,
        Input::Packet(Packet {
            interface: ifc(1),
            source: addr(2, 1),
            destination: dst,
            ttl: 1,
            router_alert: true,
            message: msg,
        }),
        &mut out,
    );
    for a in &out {
        if let Action::Event(e) = a {
            r1_events.push((e.kind, e.payload.reason, e.payload.action));
        }
    }
    net.execute(1, out);
    net.deliver();
    assert!(r1_events.contains(&("join-state", Some("star-g"), Some("join"))));
    assert!(r1_events.contains(&("route", None, Some("add"))));
    assert_eq!(net.star(1).unwrap().up, UpState::Joined);
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
    let r1 = net.route(1, RouteKey::star_g(G)).unwrap();
    assert_eq!((r1.iif.clone(), r1.rpf_neighbor), (Some(ifc(0)), Some(rp)));
    assert_eq!(r1.oifs[&ifc(1)][&Origin::Pim], OifReason::PimJoin);
    // Leave: the prune travels up the chain.
    net.members(2, 2, SourceFilter::include([]));
    net.advance(Duration::from_millis(10));
    assert!(net.star(1).is_none());
    assert!(net.star(0).is_none());
    assert!(net.routers.iter().all(|r| r.mrib.is_empty()));
}

/// IGMPv3 EXCLUDE {S} at the last hop: the Join(*,G) and the
/// Prune(S,G,rpt) for S go in one message (4.5.7: RPTNotJoined -> Pruned
/// rides with the Join(*,G)); the RP keeps S off the shared tree there.
#[test]
fn exclude_member_prunes_source_off_shared_tree_in_the_join_message() {
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    let t0 = net.now();
    net.members(1, 1, SourceFilter::exclude([S]));
    net.advance(Duration::from_millis(10));
    let sent = net.sent_since(1, t0);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let g = &sent[0].groups[0];
    assert!(g.joins.iter().any(|s| s.wildcard && s.rpt && s.addr == rp));
    assert!(g.prunes.iter().any(|s| !s.wildcard && s.rpt && s.addr == S));
    assert_eq!(net.sg(1).unwrap().rpt_up, RptUpState::Pruned);
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    // The RP: (*,G) forwards onto lan0, (S,G) does not.
    assert!(star_g_oif(&net, 0, &ifc(0)));
    assert!(net.route(0, RouteKey::sg(S, G)).unwrap().oifs.is_empty());
    // Periodic refreshes keep both.
    net.advance(Duration::from_secs(300));
    assert_eq!(net.sg(0).unwrap().rpt_down[&1].state, RptDownState::Prune);
    // The member drops the exclusion: Join(S,G,rpt) undoes the prune.
    net.members(1, 1, SourceFilter::any_source());
    net.advance(Duration::from_millis(10));
    assert!(net.sg(0).is_none());
    assert!(net.route(0, RouteKey::sg(S, G)).is_none());
}

/// The Keepalive Timer (4.1.2) is refreshed by `Traffic` notices: the
/// first-hop DR keeps its (S,G) route while packets flow, and drops it
/// 210 s after they stop.
#[test]
fn keepalive_refreshed_by_traffic_notices() {
    let rp = addr(0, 0);
    let s1 = Ipv4Addr::new(10, 0, 1, 50);
    let mut net = Net::new(&[&[0], &[0, 1]], rp_at(rp));
    net.rpf(1, all_lans(), 0, None);
    net.rpf(1, Ipv4Prefix::new(s1, 24).unwrap(), 1, None);
    net.advance(Duration::from_secs(10));
    let notice = |first: bool| {
        let (interface, source, group) = (ifc(1), s1, G);
        Input::DataPlane(if first {
            DataPlaneNotice::NewSource {
                interface,
                source,
                group,
            }
        } else {
            DataPlaneNotice::Traffic {
                interface,
                source,
                group,
            }
        })
    };
    net.feed(1, notice(true));
    for _ in 0..10 {
        net.advance(Duration::from_secs(60));
        net.feed(1, notice(false));
    }
    assert!(
        net.route(1, RouteKey::sg(s1, G)).is_some(),
        "alive after 600 s of traffic"
    );
    let kat = net.tree(1).groups()[&G].sources[&s1].keepalive.unwrap();
    assert_eq!(kat, net.now() + tree::KEEPALIVE_PERIOD);
    net.advance(Duration::from_secs(209));
    assert!(net.route(1, RouteKey::sg(s1, G)).is_some());
    net.advance(Duration::from_secs(2));
    assert!(
        net.route(1, RouteKey::sg(s1, G)).is_none(),
        "gone 210 s after the last packet"
    );
}

mod hostile {
    //! Random inputs never panic, the entry count matches the tables and
    //! stays within the bound, and every PIM route belongs to an entry.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Jp {
            to_us: bool,
            group: u8,
            joins: Vec<(u8, bool, bool)>,
            prunes: Vec<(u8, bool, bool)>,
            holdtime: u16,
        },
        Assert {
            group: u8,
            source: u8,
            rpt: bool,
            pref: u32,
        },
        Register {
            group: u8,
            source: u8,
            null: bool,
            garbage: bool,
        },
        RegisterStop {
            group: u8,
            source: u8,
        },
        Members {
            lan: u8,
            group: u8,
            include: Option<Vec<u8>>,
        },
        Rpf {
            source: u8,
            lan: u8,
            via: Option<u8>,
        },
        Data {
            lan: u8,
            group: u8,
            source: u8,
            wrong: bool,
        },
        Advance(u16),
    }

    fn grp(g: u8) -> Ipv4Addr {
        if g == 255 {
            Ipv4Addr::new(10, 0, 0, 1) // not a group
        } else {
            Ipv4Addr::new(239, 0, 0, g % 8)
        }
    }

    fn src(s: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 0, s % 8)
    }

    fn op() -> impl Strategy<Value = Op> {
        let entry = || (any::<u8>(), any::<bool>(), any::<bool>());
        prop_oneof![
            4 => (
                any::<bool>(),
                any::<u8>(),
                proptest::collection::vec(entry(), 0..4),
                proptest::collection::vec(entry(), 0..4),
                prop_oneof![Just(210u16), Just(0), Just(0xffff), any::<u16>()],
            )
                .prop_map(|(to_us, group, joins, prunes, holdtime)| Op::Jp {
                    to_us,
                    group,
                    joins,
                    prunes,
                    holdtime
                }),
            1 => (any::<u8>(), any::<u8>(), any::<bool>(), any::<u32>()).prop_map(
                |(group, source, rpt, pref)| Op::Assert {
                    group,
                    source,
                    rpt,
                    pref
                }
            ),
            1 => (any::<u8>(), any::<u8>(), any::<bool>(), any::<bool>()).prop_map(
                |(group, source, null, garbage)| Op::Register {
                    group,
                    source,
                    null,
                    garbage
                }
            ),
            1 => (any::<u8>(), any::<u8>())
                .prop_map(|(group, source)| Op::RegisterStop { group, source }),
            2 => (
                0u8..3,
                any::<u8>(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3))
            )
                .prop_map(|(lan, group, include)| Op::Members {
                    lan,
                    group,
                    include
                }),
            1 => (any::<u8>(), 0u8..3, proptest::option::of(any::<u8>()))
                .prop_map(|(source, lan, via)| Op::Rpf { source, lan, via }),
            2 => (0u8..3, any::<u8>(), any::<u8>(), any::<bool>()).prop_map(
                |(lan, group, source, wrong)| Op::Data {
                    lan,
                    group,
                    source,
                    wrong
                }
            ),
            2 => any::<u16>().prop_map(Op::Advance),
        ]
    }

    fn check(net: &Net) {
        let t = net.tree(0);
        let actual: usize = t
            .groups()
            .values()
            .map(|g| usize::from(g.star.is_some()) + g.sources.len())
            .sum();
        assert_eq!(actual, t.entry_count());
        assert!(t.entry_count() <= 20);
        for key in t.routes().keys() {
            let g = &t.groups()[&key.group];
            match key.source {
                None => assert!(g.star.is_some()),
                Some(s) => assert!(g.sources.contains_key(&s)),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_inputs_keep_the_tree_consistent(ops in proptest::collection::vec(op(), 1..60)) {
            // R0 under test on lan0..lan2 (RP for 239.0.0.0/29 is R1), R1
            // a neighbour on lan0.
            let rp = addr(1, 0);
            let mut net = Net::new(&[&[0, 1, 2], &[0]], |r| TreeConfig {
                max_entries: 20,
                ..rp_at(addr(1, 0))(r)
            });
            net.rpf(0, all_lans(), 0, None);
            net.advance(Duration::from_secs(10));
            for op in ops {
                let pkt = |lan: u32, from: Ipv4Addr, dst: Ipv4Addr, message| {
                    Input::Packet(Packet {
                        interface: ifc(lan),
                        source: from,
                        destination: dst,
                        ttl: 1,
                        router_alert: true,
                        message,
                    })
                };
                let input = match op {
                    Op::Jp { to_us, group, joins, prunes, holdtime } => {
                        let e = |(s, w, r): (u8, bool, bool)| EncodedSource {
                            addr: if w { rp } else { src(s) },
                            mask_len: if s == 77 { 24 } else { 32 },
                            sparse: s != 78,
                            wildcard: w,
                            rpt: r,
                        };
                        let to = if to_us { addr(0, 0) } else { addr(1, 0) };
                        let from = addr(1, 0);
                        pkt(0, from, ALL_PIM_ROUTERS, PimMessage::JoinPrune(JoinPrune {
                            upstream_neighbor: to,
                            holdtime,
                            groups: vec![JoinPruneGroup {
                                group: EncodedGroup::host(grp(group)),
                                joins: joins.into_iter().map(e).collect(),
                                prunes: prunes.into_iter().map(e).collect(),
                            }],
                        }))
                    }
                    Op::Assert { group, source, rpt, pref } => pkt(
                        0,
                        addr(1, 0),
                        ALL_PIM_ROUTERS,
                        PimMessage::Assert(Assert {
                            group: grp(group),
                            source: if source % 3 == 0 { Ipv4Addr::UNSPECIFIED } else { src(source) },
                            rpt,
                            metric_preference: pref,
                            metric: u32::from(source),
                        }),
                    ),
                    Op::Register { group, source, null, garbage } => {
                        let mut r = Register::null(src(source), grp(group));
                        r.null_register = null;
                        if garbage {
                            r.packet.truncate(usize::from(source % 21));
                        }
                        pkt(0, addr(1, 0), addr(0, 0), PimMessage::Register(r))
                    }
                    Op::RegisterStop { group, source } => pkt(
                        0,
                        rp,
                        addr(0, 0),
                        PimMessage::RegisterStop { group: grp(group), source: src(source) },
                    ),
                    Op::Members { lan, group, include } => Input::LocalMembers {
                        interface: ifc(u32::from(lan)),
                        group: grp(group),
                        filter: match include {
                            None => SourceFilter::any_source(),
                            Some(v) => SourceFilter::include(v.into_iter().map(src)),
                        },
                    },
                    Op::Rpf { source, lan, via } => Input::Rpf(RpfChange {
                        prefix: Ipv4Prefix::host(src(source)),
                        route: Some(RpfRoute {
                            interface: ifc(u32::from(lan)),
                            neighbor: via.map(|v| Ipv4Addr::new(10, 0, lan, v % 4)),
                            metric: 1,
                            preference: 1,
                        }),
                    }),
                    Op::Data { lan, group, source, wrong } => {
                        let (interface, source, group) =
                            (ifc(u32::from(lan)), src(source), grp(group));
                        Input::DataPlane(if wrong {
                            DataPlaneNotice::WrongInterface { interface, source, group }
                        } else {
                            DataPlaneNotice::NewSource { interface, source, group }
                        })
                    }
                    Op::Advance(ms) => {
                        net.advance(Duration::from_millis(u64::from(ms) * 10));
                        check(&net);
                        continue;
                    }
                };
                net.feed(0, input);
                net.deliver();
                check(&net);
            }
            net.advance(Duration::from_secs(1000));
            check(&net);
        }
    }
}

/// The control plane feeds one host route per source and RP it resolves:
/// a host RPF change re-evaluates only the groups whose RP or source it
/// covers. The RP's host route arriving after the member starts the
/// (*,G) join; an unrelated host's change sends nothing; the RP's route
/// moving to another LAN moves the join (4.5.5 "RPF'(*,G) changes").
#[test]
fn host_rpf_changes_touch_only_their_groups() {
    // R1 is the last hop (LAN1 receivers); the RP (10.9.9.9, beyond the
    // LANs) is reached via R0 on LAN0 or R2 on LAN2.
    let rp = Ipv4Addr::new(10, 9, 9, 9);
    let mut net = Net::new(&[&[0], &[0, 1, 2], &[2]], rp_at(rp));
    net.advance(Duration::from_secs(10));
    net.members(1, 1, SourceFilter::any_source());
    net.deliver();
    assert_ne!(
        net.star(1).map(|s| s.up),
        Some(UpState::Joined),
        "no RPF yet"
    );
    let t0 = net.now();
    net.rpf(1, Ipv4Prefix::host(rp), 0, Some(addr(0, 0)));
    net.deliver();
    assert_eq!(net.star(1).unwrap().up, UpState::Joined);
    assert!(net
        .sent_since(1, t0)
        .iter()
        .any(|jp| jp.upstream_neighbor == addr(0, 0) && has_star_join(jp, rp)));
    assert_eq!(net.star(0).unwrap().down[&1].state, DownState::Join);
    // Another host's route: nothing re-evaluated, nothing sent.
    net.advance(Duration::from_secs(1));
    let t1 = net.now();
    net.rpf(
        1,
        Ipv4Prefix::host(Ipv4Addr::new(10, 8, 8, 8)),
        2,
        Some(addr(2, 2)),
    );
    net.advance(Duration::from_millis(10));
    assert!(
        net.sent_since(1, t1).is_empty(),
        "{:?}",
        net.sent_since(1, t1)
    );
    // The RP's route moves to LAN2: Prune to R0, Join to R2.
    let t2 = net.now();
    net.rpf(1, Ipv4Prefix::host(rp), 2, Some(addr(2, 2)));
    net.advance(Duration::from_millis(10));
    let sent = net.sent_since(1, t2);
    assert!(
        sent.iter()
            .any(|jp| jp.upstream_neighbor == addr(2, 2) && has_star_join(jp, rp)),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|jp| jp.upstream_neighbor == addr(0, 0) && has_star_prune(jp)),
        "{sent:?}"
    );
    assert_eq!(net.star(2).unwrap().down[&3].state, DownState::Join);
    assert_eq!(
        net.star(1).unwrap().upstream,
        Some(Upstream {
            ifindex: 3,
            neighbor: addr(2, 2)
        })
    );
}

fn sa(net: &mut Net, r: usize, active: bool) {
    net.feed(
        r,
        Input::SourceActive {
            source: S,
            group: G,
            active,
        },
    );
}

fn has_sg_join(jp: &JoinPrune, prune: bool) -> bool {
    jp.groups.iter().any(|g| {
        g.group.addr == G
            && if prune { &g.prunes } else { &g.joins }
                .iter()
                .any(|s| !s.wildcard && !s.rpt && s.addr == S)
    })
}

/// RFC 3618 section 3: an active SA at the RP joins toward S only while
/// the RP has receivers for G; the Join goes to RPF'(S,G) at once, the
/// route's iif is toward S; when the SA expires without traffic the
/// (S,G) is pruned and goes; traffic (the Keepalive Timer) outlives the SA
/// until the Keepalive period runs out.
#[test]
fn msdp_sa_at_the_rp_joins_toward_the_source_while_receivers_want_it() {
    // R0 = RP (lan0 toward R1 and S's domain; receivers on lan2), R1 =
    // the router toward S (lan1).
    let rp = addr(0, 0);
    let mut net = Net::new(&[&[0, 2], &[0, 1]], rp_at(rp));
    let s_net = Ipv4Prefix::new(S, 24).unwrap();
    net.rpf(0, s_net, 0, Some(addr(1, 0)));
    net.rpf(1, s_net, 1, None);
    net.rpf(1, all_lans(), 0, None);
    net.advance(Duration::from_secs(10));
    // An SA alone (no receivers): nothing joins.
    let t0 = net.now();
    sa(&mut net, 0, true);
    net.deliver();
    assert!(net.sg(0).is_none(), "no receivers, no (S,G)");
    assert!(net.sent_since(0, t0).is_empty());
    assert_eq!(net.tree(0).sa_sources().collect::<Vec<_>>(), vec![(S, G)]);
    // A receiver at the RP: (S,G) Join toward R1 at once.
    net.members(0, 2, SourceFilter::any_source());
    net.deliver();
    let sg = net.sg(0).expect("(S,G) at the RP");
    assert_eq!(sg.up, UpState::Joined);
    assert_eq!(
        sg.upstream,
        Some(Upstream {
            ifindex: 1,
            neighbor: addr(1, 0)
        })
    );
    assert!(net
        .sent_since(0, t0)
        .iter()
        .any(|jp| jp.upstream_neighbor == addr(1, 0) && has_sg_join(jp, false)));
    assert_eq!(net.sg(1).unwrap().down[&1].state, DownState::Join);
    let r = net.route(0, RouteKey::sg(S, G)).unwrap();
    assert_eq!(r.iif, Some(ifc(0)));
    assert_eq!(r.rpf_neighbor, Some(addr(1, 0)));
    assert!(r.oifs.contains_key(&ifc(2)));
    // Not a source of our domain: no SA originates for it.
    assert!(net.routers[0].d.protocol().rp_sources().is_empty());
    // Periodic Joins keep R1's state while the SA lasts.
    net.advance(Duration::from_secs(400));
    assert_eq!(net.sg(1).unwrap().down[&1].state, DownState::Join);
    // The SA expires, no traffic: Prune(S,G), state and route go.
    let t1 = net.now();
    sa(&mut net, 0, false);
    net.advance(Duration::from_millis(1));
    assert!(net.sent_since(0, t1).iter().any(|jp| has_sg_join(jp, true)));
    assert!(net.sg(0).is_none());
    assert!(net.route(0, RouteKey::sg(S, G)).is_none());
    assert!(net.sg(1).is_none_or(|sg| sg.down.is_empty()));
    // Again, with traffic on the SPT: the Keepalive Timer outlives the SA.
    sa(&mut net, 0, true);
    net.deliver();
    assert_eq!(net.sg(0).unwrap().up, UpState::Joined);
    net.feed(
        0,
        Input::DataPlane(DataPlaneNotice::Traffic {
            interface: ifc(0),
            source: S,
            group: G,
        }),
    );
    sa(&mut net, 0, false);
    net.advance(Duration::from_secs(100));
    assert_eq!(net.sg(0).unwrap().up, UpState::Joined, "traffic keeps it");
    net.advance(Duration::from_secs(120));
    assert!(net.sg(0).is_none(), "gone after the Keepalive period");
}

/// The RP's sources of its own domain (what MSDP originates SAs for): a
/// registered (S,G) while its Keepalive Timer runs; a directly connected
/// source where the RP is the DR; not at a router that is not the RP.
#[test]
fn rp_sources_are_registered_or_directly_connected_sources() {
    // R0 = RP (lan0, lan2 with a source), R1 = first-hop DR (lan0, lan1).
    let rp = addr(0, 0);
    let s1 = Ipv4Addr::new(10, 0, 1, 50);
    let s2 = Ipv4Addr::new(10, 0, 2, 60);
    let mut net = Net::new(&[&[0, 2], &[0, 1]], rp_at(rp));
    net.rpf(0, Ipv4Prefix::new(s1, 24).unwrap(), 0, Some(addr(1, 0)));
    net.rpf(0, Ipv4Prefix::new(s2, 24).unwrap(), 2, None);
    net.rpf(1, all_lans(), 0, None);
    net.rpf(1, Ipv4Prefix::new(s1, 24).unwrap(), 1, None);
    net.advance(Duration::from_secs(10));
    let mut reg = Register::null(s1, G);
    reg.null_register = false;
    net.queue.push((1, 0, rp, PimMessage::Register(reg)));
    net.deliver();
    assert_eq!(net.routers[0].d.protocol().rp_sources(), vec![(s1, G)]);
    // The first Register says so (a route may not change); once.
    assert!(net.routers[0].d.protocol_mut().take_rp_sources_changed());
    assert!(!net.routers[0].d.protocol_mut().take_rp_sources_changed());
    net.feed(
        0,
        Input::DataPlane(DataPlaneNotice::NewSource {
            interface: ifc(2),
            source: s2,
            group: G,
        }),
    );
    let mut got = net.routers[0].d.protocol().rp_sources();
    got.sort();
    assert_eq!(got, vec![(s1, G), (s2, G)]);
    assert!(net.routers[1].d.protocol().rp_sources().is_empty());
    // Registers stopped (no receivers): the Keepalive Timer at the RP
    // (Register_Suppression_Time * 3 + Register_Probe_Time = 185 s) and
    // the data's 210 s run out; nothing left to advertise.
    assert!(net.routers[0].d.protocol_mut().take_rp_sources_changed());
    net.advance(Duration::from_secs(215));
    assert!(net.routers[0].d.protocol().rp_sources().is_empty());
    assert!(net.routers[0].d.protocol_mut().take_rp_sources_changed());
}
