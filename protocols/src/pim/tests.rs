//! PIM neighbour and DR tests under a manual clock (no sleeping).

use super::*;
use crate::driver::Driver;
use crate::io::Packet;
use crate::time::ManualClock;
use crate::Clock;

const IF: u32 = 7;

fn ifc() -> Interface {
    Interface::new(IF, "eth0")
}

fn me() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 2)
}

fn cfg(period: u64, prio: u32) -> PimConfig {
    let mut i = PimInterfaceConfig::new(ifc());
    i.hello_period = Duration::from_secs(period);
    i.dr_priority = prio;
    PimConfig {
        interfaces: vec![i],
        ..PimConfig::default()
    }
}

struct T {
    d: Driver<Pim>,
    clock: ManualClock,
    out: Vec<ActionOf<Pim>>,
}

impl T {
    fn new(period: u64, prio: u32) -> T {
        let mut t = T {
            d: Driver::new(Pim::new(Rng::new(42)), 1 << 16),
            clock: ManualClock::new(Timestamp::from_secs(1000)),
            out: Vec::new(),
        };
        t.feed(Input::Config(cfg(period, prio)));
        t.feed(Input::AddressAdded {
            interface: ifc(),
            address: IfAddr::new(me(), 16).unwrap(),
        });
        t
    }
    fn now(&self) -> Timestamp {
        self.clock.now()
    }
    fn feed(&mut self, input: InputOf<Pim>) {
        let now = self.now();
        self.d.feed(now, input, &mut self.out);
    }
    /// Advances to `t`, firing due timers on the way in order.
    fn run_until(&mut self, t: Timestamp) {
        while let Some(d) = self.d.next_deadline() {
            if d > t {
                break;
            }
            self.clock.advance_to(d);
            let now = self.now();
            self.d.fire_due(now, &mut self.out);
        }
        self.clock.advance_to(t);
    }
    fn advance(&mut self, d: Duration) {
        let t = self.now() + d;
        self.run_until(t);
    }
    fn hello_from(&mut self, src: Ipv4Addr, h: Hello) {
        self.feed(Input::Packet(Packet {
            interface: ifc(),
            source: src,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: false,
            message: PimMessage::Hello(h),
        }));
    }
    fn raw_from(&mut self, src: Ipv4Addr, bytes: &[u8]) {
        self.feed(Input::Packet(Packet {
            interface: ifc(),
            source: src,
            destination: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: false,
            message: PimMessage::parse(bytes),
        }));
    }
    /// (time of each Hello sent so far, its holdtime); clears the output.
    fn sent(&mut self) -> Vec<u16> {
        let v = self
            .out
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    message: PimMessage::Hello(h),
                    destination,
                    ..
                } => {
                    assert_eq!(*destination, ALL_PIM_ROUTERS);
                    h.holdtime
                }
                _ => None,
            })
            .collect();
        v
    }
    fn events(&self) -> Vec<(&'static str, PimEvent)> {
        self.out
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some((e.kind, e.payload.clone())),
                _ => None,
            })
            .collect()
    }
    fn iface(&self) -> &PimIface {
        &self.d.protocol().interfaces()[&IF]
    }
    fn dr(&self) -> Option<Ipv4Addr> {
        self.iface().dr
    }
}

fn hello(hold: u16, prio: Option<u32>, gen: u32) -> Hello {
    Hello {
        holdtime: Some(hold),
        dr_priority: prio,
        generation_id: Some(gen),
        ..Hello::default()
    }
}

fn nb(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

#[test]
fn first_hello_within_triggered_delay_then_every_period() {
    for seed in 0..50 {
        let mut t = T {
            d: Driver::new(Pim::new(Rng::new(seed)), 64),
            clock: ManualClock::new(Timestamp::ZERO),
            out: Vec::new(),
        };
        t.feed(Input::Config(cfg(30, 1)));
        let first = t.d.next_deadline().unwrap();
        assert!(first <= Timestamp::from_secs(5), "seed {seed}: {first}");
        t.run_until(first);
        assert_eq!(t.sent(), vec![105], "holdtime 3.5 x 30 s");
        t.out.clear();
        // Exactly one Hello per period afterwards, on the period.
        for k in 1..=10u64 {
            t.run_until(first + Duration::from_secs(30 * k) - Duration::from_millis(1));
            assert!(t.sent().is_empty());
            t.run_until(first + Duration::from_secs(30 * k));
            assert_eq!(t.sent().len(), 1);
            t.out.clear();
        }
    }
}

#[test]
fn triggered_delays_are_spread_over_zero_to_five_seconds() {
    let mut firsts = Vec::new();
    for seed in 0..200 {
        let mut p = Pim::new(Rng::new(seed));
        let mut out = Vec::new();
        let mut d = Driver::new(Pim::new(Rng::new(seed)), 8);
        d.feed(Timestamp::ZERO, Input::Config(cfg(30, 1)), &mut out);
        firsts.push(d.next_deadline().unwrap().since_epoch());
        p.handle(Timestamp::ZERO, Input::Shutdown, &mut out);
    }
    let max = firsts.iter().max().unwrap();
    let min = firsts.iter().min().unwrap();
    assert!(*max <= TRIGGERED_HELLO_DELAY);
    assert!(*max > Duration::from_secs(4) && *min < Duration::from_secs(1));
}

#[test]
fn hello_carries_every_option_and_generation_id_is_per_start() {
    let mut t = T::new(5, 9);
    t.feed(Input::AddressAdded {
        interface: ifc(),
        address: IfAddr::new(Ipv4Addr::new(10, 9, 0, 1), 24).unwrap(),
    });
    t.advance(Duration::from_secs(6));
    let h = t
        .out
        .iter()
        .find_map(|a| match a {
            Action::Send {
                message: PimMessage::Hello(h),
                ..
            } => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(h.holdtime, Some(17), "3.5 x 5 s, rounded down");
    assert_eq!(h.dr_priority, Some(9));
    let gen = t.iface().generation_id;
    assert_eq!(h.generation_id, Some(gen));
    assert_eq!(
        h.lan_prune_delay,
        Some(LanPruneDelay {
            t_bit: false,
            propagation_delay_ms: 500,
            override_interval_ms: 2500
        })
    );
    assert_eq!(h.secondary_addresses, vec![Ipv4Addr::new(10, 9, 0, 1)]);
    // Encodes and parses back the same.
    let bytes = PimMessage::Hello(h.clone()).encode().unwrap();
    assert_eq!(PimMessage::parse(&bytes), PimMessage::Hello(h));
    // Restart (remove then add): a new Generation ID.
    t.feed(Input::Config(PimConfig::default()));
    t.feed(Input::Config(cfg(5, 9)));
    assert_ne!(t.iface().generation_id, gen);
}

#[test]
fn join_all_pim_routers_on_start_and_goodbye_on_stop() {
    let mut t = T::new(30, 1);
    assert!(t
        .out
        .iter()
        .any(|a| matches!(a, Action::Join { group, .. } if *group == ALL_PIM_ROUTERS)));
    t.out.clear();
    t.feed(Input::Shutdown);
    assert_eq!(t.sent(), vec![0], "Holdtime 0 on shutdown");
    assert!(t.out.iter().any(|a| matches!(a, Action::Leave { .. })));
    assert!(t.d.next_deadline().is_none(), "no timer left");
    // Interface down: goodbye too.
    let mut t = T::new(30, 1);
    t.out.clear();
    t.feed(Input::InterfaceDown(ifc()));
    assert_eq!(t.sent(), vec![0]);
}

#[test]
fn neighbor_expires_at_its_holdtime() {
    let mut t = T::new(30, 1);
    t.hello_from(nb(5), hello(35, Some(1), 1));
    assert!(t
        .events()
        .iter()
        .any(|(k, e)| *k == "neighbor-up" && e.neighbor == Some(nb(5))));
    t.out.clear();
    t.advance(Duration::from_secs(34));
    assert!(t.iface().neighbors.contains_key(&nb(5)));
    // A Hello restarts the timer.
    t.hello_from(nb(5), hello(35, Some(1), 1));
    t.advance(Duration::from_secs(34));
    assert!(t.iface().neighbors.contains_key(&nb(5)));
    t.advance(Duration::from_secs(1));
    assert!(!t.iface().neighbors.contains_key(&nb(5)));
    assert!(t
        .events()
        .iter()
        .any(|(k, e)| *k == "neighbor-down" && e.reason == Some("expired")));
    // 0xFFFF never expires.
    t.hello_from(nb(6), hello(HOLDTIME_INFINITE, Some(1), 1));
    t.advance(Duration::from_secs(100_000));
    assert!(t.iface().neighbors.contains_key(&nb(6)));
    // No Holdtime option: Default_Hello_Holdtime.
    t.hello_from(
        nb(8),
        Hello {
            holdtime: None,
            ..Hello::default()
        },
    );
    t.advance(Duration::from_secs(104));
    assert!(t.iface().neighbors.contains_key(&nb(8)));
    t.advance(Duration::from_secs(1));
    assert!(!t.iface().neighbors.contains_key(&nb(8)));
}

#[test]
fn goodbye_removes_at_once() {
    let mut t = T::new(30, 1);
    t.hello_from(nb(5), hello(105, Some(1), 1));
    t.out.clear();
    t.hello_from(nb(5), hello(0, Some(1), 1));
    assert!(t.iface().neighbors.is_empty());
    assert_eq!(t.events()[0].1.reason, Some("goodbye"));
    assert_eq!(t.iface().counters.goodbyes_received, 1);
    // A goodbye from a stranger does nothing.
    t.out.clear();
    t.hello_from(nb(9), hello(0, Some(1), 1));
    assert!(t.iface().neighbors.is_empty() && t.events().is_empty());
}

#[test]
fn new_generation_id_is_a_restart_and_triggers_a_hello() {
    let mut t = T::new(30, 1);
    t.advance(Duration::from_secs(6));
    t.hello_from(nb(5), hello(105, Some(1), 111));
    // Let the triggered Hello for the new neighbour go.
    t.advance(Duration::from_secs(6));
    t.out.clear();
    let before = t.d.next_deadline().unwrap();
    t.hello_from(nb(5), hello(105, Some(1), 222));
    let ev = t.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0, "neighbor-restart");
    assert_eq!(ev[0].1.generation_id, Some(222));
    assert_eq!(ev[0].1.previous_generation_id, Some(111));
    let trig = t.d.next_deadline().unwrap();
    assert!(trig <= t.now() + TRIGGERED_HELLO_DELAY && trig <= before);
    t.run_until(trig);
    assert_eq!(t.sent().len(), 1, "triggered Hello");
    // Same GenID again: nothing.
    t.out.clear();
    t.hello_from(nb(5), hello(105, Some(1), 222));
    assert!(t.events().is_empty());
}

#[test]
fn dr_election_priority_then_address() {
    // We: 10.0.0.2 priority 5.
    let mut t = T::new(30, 5);
    assert_eq!(t.dr(), Some(me()), "alone: we are DR");
    // Lower priority, higher address: we stay DR.
    t.hello_from(nb(9), hello(105, Some(1), 1));
    assert_eq!(t.dr(), Some(me()));
    // Higher priority wins.
    t.out.clear();
    t.hello_from(nb(1), hello(105, Some(10), 1));
    assert_eq!(t.dr(), Some(nb(1)));
    let ev = t.events();
    let dr = ev.iter().find(|(k, _)| *k == "dr-change").unwrap();
    assert_eq!(dr.1.dr, Some(nb(1)));
    assert_eq!(dr.1.previous_dr, Some(me()));
    // Equal priority: higher address wins.
    t.hello_from(nb(1), hello(0, Some(10), 1));
    t.hello_from(nb(3), hello(105, Some(5), 1));
    assert_eq!(t.dr(), Some(nb(3)), "10.0.0.3 > 10.0.0.2 at equal priority");
    t.hello_from(nb(3), hello(105, Some(4), 1));
    assert_eq!(t.dr(), Some(me()));
    // One neighbour omits DR Priority: highest address wins, whatever the
    // priorities.
    t.hello_from(
        nb(4),
        Hello {
            holdtime: Some(105),
            ..Hello::default()
        },
    );
    assert_eq!(t.dr(), Some(nb(9)), "address only: 10.0.0.9 highest");
    // It leaves: back to priorities.
    t.hello_from(nb(4), hello(0, None, 0));
    assert_eq!(t.dr(), Some(me()));
    // Our own priority changes by reload: applied in place, neighbours kept.
    let gen = t.iface().generation_id;
    t.feed(Input::Config(cfg(30, 0)));
    assert_eq!(t.iface().generation_id, gen);
    assert_eq!(t.iface().neighbors.len(), 2);
    assert_eq!(t.dr(), Some(nb(3)), "priority 4 beats our 0");
}

#[test]
fn reload_without_change_keeps_everything() {
    let mut t = T::new(30, 1);
    t.hello_from(nb(5), hello(105, Some(1), 1));
    let gen = t.iface().generation_id;
    t.out.clear();
    t.feed(Input::Config(cfg(30, 1)));
    assert!(t.out.is_empty(), "{:?}", t.out);
    assert_eq!(t.iface().generation_id, gen);
    assert_eq!(t.iface().neighbors.len(), 1);
}

#[test]
fn injected_neighbors() {
    let mut t = T::new(30, 1);
    let ext = |prio| ExternalNeighbor {
        ifindex: IF,
        address: nb(50),
        priority: prio,
        tag: Some("babel".into()),
    };
    let mut c = cfg(30, 1);
    c.external_neighbors = vec![ext(Some(100))];
    t.feed(Input::Config(c.clone()));
    // Valid at once for DR election; never expires.
    assert_eq!(t.dr(), Some(nb(50)));
    assert_eq!(
        t.iface().neighbors[&nb(50)].learned_by(),
        LearnedBy::Injected
    );
    t.advance(Duration::from_secs(10_000));
    assert!(t.iface().neighbors.contains_key(&nb(50)));
    // A Hello from it: now both; its Hello priority rules.
    t.hello_from(nb(50), hello(105, Some(0), 5));
    assert_eq!(t.iface().neighbors[&nb(50)].learned_by(), LearnedBy::Both);
    assert_eq!(t.dr(), Some(me()));
    // Its Hellos stop: it expires as Hello-learned but stays injected.
    t.advance(Duration::from_secs(106));
    assert_eq!(
        t.iface().neighbors[&nb(50)].learned_by(),
        LearnedBy::Injected
    );
    assert_eq!(t.dr(), Some(nb(50)));
    // Hellos again, then the injection is removed: stays, Hello-learned.
    t.hello_from(nb(50), hello(105, Some(0), 5));
    c.external_neighbors.clear();
    t.feed(Input::Config(c.clone()));
    assert_eq!(t.iface().neighbors[&nb(50)].learned_by(), LearnedBy::Hello);
    // Injected only, removed: gone.
    t.hello_from(nb(50), hello(0, Some(0), 5));
    c.external_neighbors = vec![ext(None)];
    t.feed(Input::Config(c.clone()));
    assert_eq!(t.iface().neighbors[&nb(50)].dr_priority(), Some(1));
    assert_eq!(t.dr(), Some(nb(50)), "priority 1 each, higher address");
    c.external_neighbors.clear();
    t.out.clear();
    t.feed(Input::Config(c));
    assert!(t.iface().neighbors.is_empty());
    assert_eq!(t.events()[0].1.reason, Some("removed"));
    // Injected before the interface runs: applied when it starts.
    let mut c = PimConfig {
        external_neighbors: vec![ext(Some(3))],
        ..PimConfig::default()
    };
    t.feed(Input::Config(c.clone()));
    assert!(t.d.protocol().interfaces().is_empty());
    c.interfaces = cfg(30, 1).interfaces;
    t.feed(Input::Config(c));
    assert!(t.iface().neighbors.contains_key(&nb(50)));
}

#[test]
fn hostile_input_is_counted_and_ignored() {
    let mut t = T::new(30, 1);
    // Off the subnet (10.0.0.0/16).
    t.hello_from(Ipv4Addr::new(192, 168, 1, 1), hello(105, Some(1), 1));
    // Our own Hello looped back.
    t.hello_from(me(), hello(105, Some(1), 1));
    let good = PimMessage::Hello(hello(105, Some(1), 1)).encode().unwrap();
    // Bad checksum.
    let mut bad = good.clone();
    bad[2] ^= 0xff;
    t.raw_from(nb(5), &bad);
    let fix = |mut b: Vec<u8>| {
        b[2..4].copy_from_slice(&[0, 0]);
        let ck = mcr_wire::checksum::checksum(&b);
        b[2..4].copy_from_slice(&ck.to_be_bytes());
        b
    };
    // Truncated option (cut in the middle of the last option), checksum
    // right.
    t.raw_from(nb(5), &fix(good[..good.len() - 2].to_vec()));
    // Option length past the packet (checksum right).
    let mut long = good.clone();
    long[6..8].copy_from_slice(&200u16.to_be_bytes());
    t.raw_from(nb(5), &fix(long));
    // Wrong version.
    let mut v3 = good.clone();
    v3[0] = 0x30;
    t.raw_from(nb(5), &v3);
    // Shorter than a header.
    t.raw_from(nb(5), &[0x20]);
    // Unknown option: skipped, the Hello is used.
    let mut with_unknown = hello(105, Some(1), 1);
    with_unknown.unknown_options = 0;
    let repr = mcr_wire::pim::Repr::Hello {
        options: vec![
            mcr_wire::pim::HelloOption::Holdtime(105),
            mcr_wire::pim::HelloOption::Unknown {
                kind: 65000,
                value: vec![1, 2, 3],
            },
        ],
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut mcr_wire::pim::Packet::new_unchecked(&mut buf[..]));
    t.raw_from(nb(6), &buf);
    let c = t.iface().counters;
    assert_eq!(c.wrong_subnet, 1);
    assert_eq!(c.own, 1);
    assert_eq!(c.bad_checksum, 1);
    assert_eq!(c.truncated, 3, "{c:?}");
    assert_eq!(c.bad_version, 1);
    assert_eq!(c.unknown_options, 1);
    assert_eq!(c.hellos_received, 1);
    assert_eq!(t.iface().neighbors.len(), 1);
    assert!(t.iface().neighbors.contains_key(&nb(6)));
}

#[test]
fn ten_thousand_hellos_from_distinct_addresses_hit_the_bound() {
    let mut t = T::new(30, 1);
    for i in 0..10_000u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 100, 0)) + i);
        t.hello_from(a, hello(105, Some(1), i));
        t.out.clear();
    }
    let c = t.iface().counters;
    assert_eq!(t.iface().neighbors.len(), DEFAULT_MAX_NEIGHBORS);
    assert_eq!(c.neighbor_table_full, 10_000 - DEFAULT_MAX_NEIGHBORS as u64);
    assert!(t.d.timers().len() <= DEFAULT_MAX_NEIGHBORS + 1);
    // They all expire.
    t.advance(Duration::from_secs(106));
    assert!(t.iface().neighbors.is_empty());
}

#[test]
fn address_change_triggers_a_hello_and_may_move_the_dr() {
    let mut t = T::new(30, 1);
    t.advance(Duration::from_secs(6));
    t.hello_from(nb(5), hello(105, Some(1), 1));
    t.advance(Duration::from_secs(6));
    assert_eq!(t.dr(), Some(nb(5)));
    t.out.clear();
    t.feed(Input::AddressRemoved {
        interface: ifc(),
        address: IfAddr::new(me(), 16).unwrap(),
    });
    t.feed(Input::AddressAdded {
        interface: ifc(),
        address: IfAddr::new(nb(200), 16).unwrap(),
    });
    assert_eq!(t.dr(), Some(nb(200)));
    let next = t.d.next_deadline().unwrap();
    assert!(next <= t.now() + TRIGGERED_HELLO_DELAY);
}

#[test]
fn ten_minutes_of_protocol_time_is_fast() {
    let start = std::time::Instant::now();
    let mut t = T::new(30, 1);
    for k in 0..20u8 {
        t.hello_from(nb(10 + k), hello(105, Some(1), 1));
    }
    for _ in 0..20 {
        t.advance(Duration::from_secs(30));
        for k in 0..20u8 {
            t.hello_from(nb(10 + k), hello(105, Some(1), 1));
        }
        t.out.clear();
    }
    assert_eq!(t.iface().neighbors.len(), 20);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn holdtime_is_three_and_a_half_periods() {
    assert_eq!(holdtime_for(Duration::from_secs(30)), 105);
    assert_eq!(holdtime_for(Duration::from_secs(5)), 17);
    assert_eq!(holdtime_for(Duration::from_secs(60_000)), 65534);
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = PimMessage::parse(&bytes);
    }
}
