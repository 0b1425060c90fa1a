//! IGMP router tests under a manual clock: no sleeping, hours of protocol
//! time in milliseconds.

use super::*;
use crate::{Clock, Driver, ManualClock, Mrib, MribLimits};

const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LOWER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S1: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const S2: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

fn ifc() -> Interface {
    Interface::new(2, "eth1")
}

/// The driver plus everything the control plane would do with its actions.
struct H {
    d: Driver<Igmp>,
    clock: ManualClock,
    sent: Vec<(Timestamp, Ipv4Addr, Repr)>,
    events: Vec<(Timestamp, &'static str, IgmpEvent)>,
    mrib: Mrib,
    /// When the group's MRIB entry was last removed.
    removed_at: Vec<(Timestamp, Ipv4Addr)>,
}

impl H {
    fn new(params: InterfaceParams) -> H {
        let mut h = H {
            d: Driver::new(Igmp::new(), 100_000),
            clock: ManualClock::new(Timestamp::ZERO),
            sent: Vec::new(),
            events: Vec::new(),
            mrib: Mrib::new(MribLimits::default()),
            removed_at: Vec::new(),
        };
        h.feed(Input::AddressAdded {
            interface: ifc(),
            address: IfAddr::new(OURS, 24).unwrap(),
        });
        h.configure(params);
        h
    }

    fn configure(&mut self, params: InterfaceParams) {
        let mut c = Config::default();
        c.interfaces.insert(ifc(), params);
        self.feed(Input::Config(c));
    }

    fn feed(&mut self, input: Input<Message, Timer, Config>) {
        let mut out = Vec::new();
        self.d.feed(self.clock.now(), input, &mut out);
        self.execute(out);
    }

    fn execute(&mut self, out: Vec<IgmpAction>) {
        let now = self.clock.now();
        for a in out {
            match a {
                Action::Send {
                    destination,
                    message: Message::Igmp(r),
                    ..
                } => self.sent.push((now, destination, r)),
                Action::Event(e) => self.events.push((now, e.kind, e.payload)),
                Action::Mrib(u) => {
                    if let MribUpdate::RemoveLocalMembers { group, .. } = &u {
                        self.removed_at.push((now, *group));
                    }
                    self.mrib.apply(u).unwrap();
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
    }

    /// Runs every timer up to and including `t`, then sets the clock to `t`.
    fn run_until(&mut self, t: Timestamp) {
        while let Some(at) = self.d.next_deadline().filter(|at| *at <= t) {
            self.clock.advance_to(at);
            let mut out = Vec::new();
            self.d.fire_due(at, &mut out);
            self.execute(out);
        }
        self.clock.advance_to(t);
    }

    fn run_for(&mut self, d: Duration) {
        let t = self.clock.now() + d;
        self.run_until(t);
    }

    fn rx(&mut self, src: Ipv4Addr, ra: bool, r: Repr) {
        let dst = match &r {
            Repr::ReportV3 { .. } => V3_REPORTS,
            _ => ALL_SYSTEMS,
        };
        self.rx_msg(src, dst, ra, Message::Igmp(r));
    }

    fn rx_msg(&mut self, src: Ipv4Addr, dst: Ipv4Addr, ra: bool, m: Message) {
        self.feed(Input::Packet(Packet {
            interface: ifc(),
            source: src,
            destination: dst,
            ttl: 1,
            router_alert: ra,
            message: m,
        }));
    }

    fn v3(&mut self, t: RecordType, group: Ipv4Addr, sources: &[Ipv4Addr]) {
        self.rx(
            HOST,
            true,
            Repr::ReportV3 {
                records: vec![GroupRecordRepr {
                    record_type: t,
                    group,
                    sources: sources.to_vec(),
                    aux_data: Vec::new(),
                }],
            },
        );
    }

    fn member(&self, g: Ipv4Addr) -> Option<SourceFilter> {
        self.mrib.local_members_on(&ifc(), g).cloned()
    }

    fn general_queries(&self) -> Vec<Timestamp> {
        self.sent
            .iter()
            .filter(|(_, d, _)| *d == ALL_SYSTEMS)
            .map(|(t, _, _)| *t)
            .collect()
    }

    fn counters(&self) -> Counters {
        self.d.protocol().counters(2).unwrap().clone()
    }
}

fn params() -> InterfaceParams {
    InterfaceParams::default()
}

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

#[test]
fn startup_queries_then_every_query_interval() {
    // RFC 3376 8.6/8.7: robustness 2 -> 2 startup queries QI/4 apart.
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(600));
    assert_eq!(
        h.general_queries(),
        vec![
            ms(0),
            ms(31_250),
            ms(156_250),
            ms(281_250),
            ms(406_250),
            ms(531_250)
        ]
    );
    let (_, _, q) = &h.sent[0];
    match q {
        Repr::QueryV3 {
            max_resp_code,
            qrv,
            qqic,
            group,
            sources,
            ..
        } => {
            assert_eq!((*max_resp_code, *qrv, *qqic), (100, 2, 125));
            assert!(group.is_unspecified() && sources.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.events[0].1, "querier-change");
    assert_eq!(h.counters().general_queries_sent, 6);
}

#[test]
fn v2_interface_sends_v2_queries() {
    let mut p = params();
    p.version = 2;
    let mut h = H::new(p);
    assert_eq!(
        h.sent[0].2,
        Repr::QueryV2 {
            max_resp_time: 100,
            group: Ipv4Addr::UNSPECIFIED
        }
    );
    h.run_for(Duration::from_secs(1));
}

#[test]
fn election_lowest_address_wins_and_handover_within_oqpi() {
    let mut h = H::new(params());
    let oqpi = params().other_querier_present_interval(); // 255 s
    assert_eq!(oqpi, Duration::from_secs(255));
    h.run_until(Timestamp::from_secs(1));
    // A lower-addressed querier appears at t=1 s and queries every 125 s
    // until t=500 s.
    let q = v3_query(&params(), Ipv4Addr::UNSPECIFIED, false, Vec::new());
    let mut t = 1;
    while t <= 500 {
        h.run_until(Timestamp::from_secs(t));
        h.rx(LOWER, true, q.clone());
        t += 125;
    }
    let last_heard = Timestamp::from_secs(t - 125); // 376 s
    h.run_until(Timestamp::from_secs(1000));
    let qs = h.general_queries();
    // Only our first startup query, then none while the other queried.
    assert_eq!(qs[0], ms(0));
    assert!(qs.iter().all(|q| *q == ms(0) || *q >= last_heard + oqpi));
    // We resumed exactly one OQPI after the last query heard, then every QI.
    assert_eq!(qs[1], last_heard + oqpi);
    assert_eq!(qs[2], last_heard + oqpi + Duration::from_secs(125));
    let kinds: Vec<_> = h
        .events
        .iter()
        .filter(|e| e.1 == "querier-change")
        .map(|e| (e.2.querier, e.2.us))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (Some(OURS), Some(true)),
            (Some(LOWER), Some(false)),
            (Some(OURS), Some(true))
        ]
    );
    // A higher-addressed querier does not silence us.
    let before = h.general_queries().len();
    h.rx(Ipv4Addr::new(10, 0, 0, 9), true, q);
    h.run_for(Duration::from_secs(130));
    assert!(h.general_queries().len() > before);
    let v = &h.d.protocol().interfaces(h.clock.now())[0];
    assert!(v.is_querier);
    assert_eq!(v.querier, Some(OURS));
}

#[test]
fn v2_leave_latency_is_last_member_query_time() {
    let mut p = params();
    p.version = 2;
    let mut h = H::new(p.clone());
    h.run_until(Timestamp::from_secs(10));
    h.rx(HOST, true, Repr::ReportV2 { group: G });
    assert_eq!(h.member(G), Some(SourceFilter::any_source()));
    assert!(h.events.iter().any(|e| e.1 == "join"));
    h.run_until(Timestamp::from_secs(20));
    h.rx(HOST, true, Repr::LeaveV2 { group: G });
    let t0 = Timestamp::from_secs(20);
    h.run_until(Timestamp::from_secs(40));
    // LMQC (2) group-specific queries LMQI (1 s) apart, to the group.
    let gq: Vec<_> = h
        .sent
        .iter()
        .filter(|(_, d, _)| *d == G)
        .map(|(t, _, r)| (*t, r.clone()))
        .collect();
    assert_eq!(
        gq,
        vec![
            (
                t0,
                Repr::QueryV2 {
                    max_resp_time: 10,
                    group: G
                }
            ),
            (
                t0 + Duration::from_secs(1),
                Repr::QueryV2 {
                    max_resp_time: 10,
                    group: G
                }
            ),
        ]
    );
    // Gone exactly LMQT = 2 s after the leave.
    assert_eq!(h.removed_at, vec![(t0 + p.last_member_query_time(), G)]);
    assert_eq!(h.member(G), None);
    let leave = h.events.iter().find(|e| e.1 == "leave").unwrap();
    assert_eq!(leave.2.reason, Some("leave"));
}

#[test]
fn report_after_group_query_keeps_the_member() {
    let mut h = H::new(params());
    h.rx(HOST, true, Repr::ReportV2 { group: G });
    h.rx(
        Ipv4Addr::new(10, 0, 0, 51),
        true,
        Repr::LeaveV2 { group: G },
    );
    h.run_for(Duration::from_millis(500));
    // Another member answers the group-specific query.
    h.rx(HOST, true, Repr::ReportV2 { group: G });
    h.run_for(Duration::from_secs(10));
    assert_eq!(h.member(G), Some(SourceFilter::any_source()));
    // The second query had the S flag off in v2 mode (v2 queries have none);
    // the member is still there after LMQT.
    assert!(h.removed_at.is_empty());
}

#[test]
fn member_expires_at_group_membership_interval() {
    let mut h = H::new(params());
    let gmi = params().group_membership_interval();
    assert_eq!(gmi, Duration::from_secs(260));
    h.run_until(Timestamp::from_secs(5));
    h.v3(RecordType::ModeIsExclude, G, &[]);
    assert_eq!(h.member(G), Some(SourceFilter::any_source()));
    // The host vanishes: no more reports.
    h.run_until(Timestamp::from_secs(5) + gmi - Duration::from_millis(1));
    assert!(h.member(G).is_some());
    h.run_until(Timestamp::from_secs(1000));
    assert_eq!(h.removed_at, vec![(Timestamp::from_secs(5) + gmi, G)]);
    let leave = h.events.iter().find(|e| e.1 == "leave").unwrap();
    assert_eq!(leave.2.reason, Some("expired"));
}

#[test]
fn include_sources_block_sends_group_and_source_query() {
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(1));
    h.v3(RecordType::ModeIsInclude, G, &[S1, S2]);
    assert_eq!(h.member(G), Some(SourceFilter::include([S1, S2])));
    h.run_until(Timestamp::from_secs(2));
    // RFC 3376 6.4.2: INCLUDE(A) + BLOCK(B) -> Q(G, A*B).
    h.v3(
        RecordType::BlockOldSources,
        G,
        &[S1, Ipv4Addr::new(10, 9, 9, 9)],
    );
    h.run_until(Timestamp::from_secs(10));
    let q: Vec<_> = h.sent.iter().filter(|(_, d, _)| *d == G).collect();
    assert_eq!(q.len(), 2, "LMQC queries: {q:?}");
    for (_, _, r) in &q {
        match r {
            Repr::QueryV3 {
                sources, s_flag, ..
            } => {
                assert_eq!(sources, &vec![S1]);
                assert!(!s_flag);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(q[1].0 - q[0].0, Duration::from_secs(1));
    // S1 gone after LMQT, S2 kept.
    assert_eq!(h.member(G), Some(SourceFilter::include([S2])));
    assert_eq!(h.counters().group_source_queries_sent, 2);
}

#[test]
fn exclude_to_in_sends_group_query_and_switches_to_include() {
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(1));
    h.v3(RecordType::ChangeToExclude, G, &[]);
    assert_eq!(h.member(G), Some(SourceFilter::any_source()));
    h.run_until(Timestamp::from_secs(3));
    // RFC 3376 6.4.2: EXCLUDE(X,Y) + TO_IN(A) -> EXCLUDE(X+A, Y-A);
    // (A)=GMI; Q(G, X-A); Q(G).
    h.v3(RecordType::ChangeToInclude, G, &[S1]);
    let t0 = Timestamp::from_secs(3);
    h.run_until(Timestamp::from_secs(20));
    let q: Vec<_> = h.sent.iter().filter(|(_, d, _)| *d == G).collect();
    assert_eq!(q.len(), 2);
    assert!(matches!(&q[0].2, Repr::QueryV3 { sources, .. } if sources.is_empty()));
    // After LMQT the group timer ran out with S1's timer running: INCLUDE {S1}
    // (RFC 3376 6.5).
    assert_eq!(h.member(G), Some(SourceFilter::include([S1])));
    let v = &h.d.protocol().groups(h.clock.now())[0];
    assert_eq!(v.mode, FilterMode::Include);
    let s1 = v.sources[0].timer_secs.unwrap();
    let expect = (t0 + params().group_membership_interval()) - h.clock.now();
    assert!(
        (s1 - expect.as_secs_f64()).abs() < 0.01,
        "{s1} vs {expect:?}"
    );
}

#[test]
fn exclude_mode_block_lowers_source_and_excludes_it() {
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(1));
    h.v3(RecordType::ModeIsExclude, G, &[]);
    // EXCLUDE({}, {}) + BLOCK(S1) -> EXCLUDE({S1}, {}) with S1 = group timer,
    // then Q(G,{S1}) lowers S1 to LMQT; when it runs out S1 is excluded.
    h.v3(RecordType::BlockOldSources, G, &[S1]);
    h.run_until(Timestamp::from_secs(10));
    assert_eq!(h.member(G), Some(SourceFilter::exclude([S1])));
}

#[test]
fn v1_and_v2_compatibility_modes() {
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(1));
    h.rx(HOST, true, Repr::ReportV2 { group: G });
    let v = &h.d.protocol().groups(h.clock.now())[0];
    assert_eq!(v.version, 2);
    // RFC 3376 7.3.2: in v2 mode BLOCK is ignored and TO_EX({S1}) is
    // TO_EX({}).
    h.v3(RecordType::BlockOldSources, G, &[S1]);
    h.v3(RecordType::ChangeToExclude, G, &[S1]);
    assert_eq!(h.member(G), Some(SourceFilter::any_source()));
    assert!(h.sent.iter().all(|(_, d, _)| *d != G));
    // A v1 report: v1 mode; a v2 leave is then ignored.
    h.rx(HOST, false, Repr::ReportV1 { group: G });
    assert_eq!(h.d.protocol().groups(h.clock.now())[0].version, 1);
    h.rx(HOST, true, Repr::LeaveV2 { group: G });
    h.run_for(Duration::from_secs(5));
    assert!(h.member(G).is_some(), "leave ignored in v1 mode");
    // Keep the group alive with v3 reports; the host-present timers run out
    // after OHPI (260 s) and the group goes back to v3.
    for _ in 0..4 {
        h.run_for(Duration::from_secs(100));
        h.v3(RecordType::ModeIsExclude, G, &[]);
    }
    assert_eq!(h.d.protocol().groups(h.clock.now())[0].version, 3);
    let changes: Vec<_> = h
        .events
        .iter()
        .filter(|e| e.1 == "compatibility-change")
        .map(|e| e.2.version)
        .collect();
    assert_eq!(changes, vec![Some(1), Some(3)]);
}

#[test]
fn non_querier_lowers_timers_on_group_specific_query() {
    let mut h = H::new(params());
    h.rx(HOST, true, Repr::ReportV2 { group: G });
    h.rx(
        LOWER,
        true,
        v3_query(&params(), Ipv4Addr::UNSPECIFIED, false, Vec::new()),
    );
    let t0 = h.clock.now();
    // The querier's group-specific query (S clear): RFC 3376 6.6.1.
    h.rx(
        LOWER,
        true,
        Repr::QueryV2 {
            max_resp_time: 10,
            group: G,
        },
    );
    h.run_for(Duration::from_secs(5));
    assert_eq!(
        h.removed_at,
        vec![(t0 + params().last_member_query_time(), G)]
    );
    // We sent no group queries: not our job.
    assert!(h.sent.iter().all(|(_, d, _)| *d != G));
}

#[test]
fn hostile_input_is_bounded_and_counted() {
    let mut p = params();
    p.max_groups = 1000;
    p.max_sources = 16;
    let mut h = H::new(p);
    // 10,000 groups from one host, one report each.
    for i in 0..10_000u32 {
        let g = Ipv4Addr::from(0xef01_0000 + i);
        h.rx(HOST, true, Repr::ReportV2 { group: g });
    }
    let c = h.counters();
    assert_eq!(h.d.protocol().groups(h.clock.now()).len(), 1000);
    assert_eq!(c.group_limit_dropped, 9000);
    assert_eq!(h.mrib.local_member_count(), 1000);
    // 100 sources in one group: 16 kept.
    let many: Vec<Ipv4Addr> = (0..100u32)
        .map(|i| Ipv4Addr::from(0x0a09_0000 + i))
        .collect();
    h.v3(
        RecordType::ModeIsInclude,
        Ipv4Addr::new(239, 1, 0, 0),
        &many,
    );
    assert_eq!(h.counters().source_limit_dropped, 84);
    // Invalid input by reason.
    h.v3(RecordType::ModeIsExclude, Ipv4Addr::new(10, 1, 1, 1), &[]);
    h.v3(RecordType::Unknown(9), Ipv4Addr::new(239, 9, 9, 9), &[]);
    h.rx(
        Ipv4Addr::new(192, 168, 1, 1),
        true,
        Repr::ReportV2 { group: G },
    );
    h.rx(
        HOST,
        false,
        Repr::ReportV3 {
            records: Vec::new(),
        },
    );
    h.rx(
        HOST,
        true,
        Repr::ReportV2 {
            group: Ipv4Addr::new(224, 0, 0, 251),
        },
    );
    h.rx_msg(HOST, G, true, Message::Invalid(Invalid::BadChecksum));
    h.rx_msg(HOST, G, true, Message::Invalid(Invalid::BadCount));
    let c = h.counters();
    assert_eq!(c.invalid.not_multicast, 1);
    assert_eq!(c.invalid.unknown_type, 1);
    assert_eq!(c.invalid.wrong_subnet, 1);
    assert_eq!(c.invalid.no_router_alert, 1);
    assert_eq!(c.invalid.bad_checksum, 1);
    assert_eq!(c.invalid.bad_count, 1);
    assert_eq!(c.link_local_ignored, 1);
    assert_eq!(c.invalid.total(), 6);
    // Everything expires: the tables empty themselves.
    h.run_for(Duration::from_secs(300));
    assert_eq!(h.mrib.local_member_count(), 0);
    assert!(h.d.timers().len() <= 2, "only the interface timers remain");
}

#[test]
fn reload_with_same_settings_keeps_members_and_sends_nothing() {
    let mut h = H::new(params());
    h.run_until(Timestamp::from_secs(40));
    h.v3(RecordType::ModeIsExclude, G, &[]);
    let sent = h.sent.len();
    h.configure(params());
    assert_eq!(h.sent.len(), sent, "no extra query");
    assert!(h.member(G).is_some());
    // Changed settings keep members too; a shorter QI applies at once.
    let mut p = params();
    p.query_interval = Duration::from_secs(20);
    h.configure(p);
    assert_eq!(h.sent.len(), sent);
    assert!(h.member(G).is_some());
    let next = h.d.protocol().interfaces(h.clock.now())[0]
        .next_query_secs
        .unwrap();
    assert!(next <= 20.0);
    // Removing the interface withdraws its members.
    h.feed(Input::Config(Config::default()));
    assert_eq!(h.member(G), None);
    assert!(!h.d.protocol().is_running());
    assert_eq!(h.d.timers().len(), 0);
}

#[test]
fn interface_down_and_up() {
    let mut h = H::new(params());
    h.v3(RecordType::ModeIsExclude, G, &[]);
    h.feed(Input::InterfaceDown(ifc()));
    assert_eq!(h.member(G), None);
    assert!(!h.d.protocol().is_running());
    let sent = h.sent.len();
    h.feed(Input::InterfaceUp(ifc()));
    assert!(h.d.protocol().is_running());
    assert_eq!(h.sent.len(), sent + 1, "startup query again");
}

#[test]
fn link_local_and_unconfigured_interfaces_are_ignored() {
    let mut h = H::new(params());
    h.feed(Input::Packet(Packet {
        interface: Interface::new(9, "other"),
        source: HOST,
        destination: G,
        ttl: 1,
        router_alert: true,
        message: Message::Igmp(Repr::ReportV2 { group: G }),
    }));
    assert_eq!(h.mrib.local_member_count(), 0);
    // 0.0.0.0 is accepted as source (RFC 3376 4.2.13).
    h.rx(Ipv4Addr::UNSPECIFIED, true, Repr::ReportV2 { group: G });
    assert!(h.member(G).is_some());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = (u8, u8, Vec<u8>)> {
        (0u8..9, 0u8..4, proptest::collection::vec(0u8..6, 0..4))
    }

    proptest! {
        /// Any sequence of reports, leaves, queries and time steps: no
        /// panic, the MRIB mirrors the groups, and the timer set holds at
        /// most one timer per group plus two per interface.
        #[test]
        fn any_input_keeps_the_invariants(
            steps in proptest::collection::vec((0u8..8, record(), 0u64..400_000, any::<bool>()), 1..60)
        ) {
            let mut p = params();
            p.version = 3;
            p.max_groups = 3;
            p.max_sources = 3;
            let mut h = H::new(p);
            for (kind, (rt, g, srcs), dt, ra) in steps {
                let group = Ipv4Addr::new(239, 0, 0, g);
                let sources: Vec<Ipv4Addr> = srcs.iter().map(|s| Ipv4Addr::new(10, 9, 0, *s)).collect();
                let from = if ra { HOST } else { LOWER };
                match kind {
                    0 => h.rx(from, ra, Repr::ReportV1 { group }),
                    1 => h.rx(from, ra, Repr::ReportV2 { group }),
                    2 => h.rx(from, ra, Repr::LeaveV2 { group }),
                    3 => h.rx(from, true, v3_query(&params(), group, ra, sources.clone())),
                    4 => h.rx(from, true, Repr::QueryV2 { max_resp_time: 10, group }),
                    _ => h.rx(from, ra, Repr::ReportV3 { records: vec![GroupRecordRepr {
                        record_type: RecordType::from(rt),
                        group,
                        sources,
                        aux_data: Vec::new(),
                    }] }),
                }
                h.run_for(Duration::from_millis(dt));
                let now = h.clock.now();
                let groups = h.d.protocol().groups(now);
                prop_assert!(groups.len() <= 3);
                prop_assert_eq!(groups.len(), h.mrib.local_member_count());
                for g in &groups {
                    prop_assert!(g.sources.len() <= 3);
                    let f = h.mrib.local_members_on(&ifc(), g.group).unwrap();
                    prop_assert_eq!(f.mode, g.mode);
                }
                prop_assert!(h.d.timers().len() <= groups.len() + 2);
            }
        }
    }
}

#[test]
fn non_querier_adopts_the_queriers_qrv_and_qqi() {
    let mut h = H::new(params());
    // The querier announces robustness 3 and QI 20 s.
    let mut qp = params();
    qp.robustness = 3;
    qp.query_interval = Duration::from_secs(20);
    h.rx(
        LOWER,
        true,
        v3_query(&qp, Ipv4Addr::UNSPECIFIED, false, Vec::new()),
    );
    let v = &h.d.protocol().interfaces(h.clock.now())[0];
    assert_eq!((v.robustness, v.query_interval_secs), (3, 20.0));
    // GMI is now 3 x 20 + 10 = 70 s.
    let t0 = h.clock.now();
    h.v3(RecordType::ModeIsExclude, G, &[]);
    // Keep the querier alive so we stay non-querier.
    for _ in 0..4 {
        h.run_for(Duration::from_secs(20));
        h.rx(
            LOWER,
            true,
            v3_query(&qp, Ipv4Addr::UNSPECIFIED, false, Vec::new()),
        );
    }
    assert_eq!(h.removed_at, vec![(t0 + Duration::from_secs(70), G)]);
    // When it goes quiet we query with our own settings again.
    h.run_for(Duration::from_secs(200));
    let v = &h.d.protocol().interfaces(h.clock.now())[0];
    assert!(v.is_querier);
    assert_eq!((v.robustness, v.query_interval_secs), (2, 125.0));
}
