//! PIM-SM Assert end to end (RFC 7761 section 4.6; issue #17 item 5): two
//! routers forwarding one source onto one LAN, mcrd and FRR pimd, elect
//! one forwarder and the receivers stop getting duplicates.
//!
//! Topology (LAN1 and LAN2 are Linux bridges in a hub namespace, snooping
//! off so every port sees every multicast packet):
//!
//! ```text
//!   S ------ LAN1 10.93.1.0/24 ------+---------------+
//!  .10                               | .1            | .2 (RP, DR)
//!                                   A mcrd          B FRR
//!                       (DR, prio 10) | a2            | b2
//!   R ------ LAN2 10.93.2.0/24 ------+---------------+------- D FRR .50
//!  .100 (IGMP)                                               |
//!                                          LAN3 10.93.3.0/24 +---- R2 .2
//! ```
//!
//! A and B are both directly connected to S, so their assert metrics are
//! equal (RPT bit clear, preference 0, metric 0: a connected route in
//! mcrd's kernel RPF provider and in FRR's zebra) and the higher LAN2
//! address wins (section 4.6.3). D reaches the RP through A and S through
//! B: its (*,G) Join goes to A, its (S,G) Join (after its SPT switch) to
//! B. A forwards onto LAN2 for D's (*,G) Join and for R (A is the DR
//! there, R joined with IGMP: `pim_include`); B forwards onto LAN2 for
//! D's (S,G) Join. Both forward, each sees the other's packets on an
//! outgoing interface (a WRONGVIF upcall from its kernel), and they
//! assert. The RP is B's LAN1 address: B is also the DR on LAN1, so the
//! source needs no Register.
//!
//! Three limits of FRR 8.4 shaped this (each seen in a run, `show ip pim
//! assert-internal` and the pimd debug log):
//! - it never asserts for an interface it forwards on for IGMP members
//!   alone (CouldAssert and AssertTrackingDesired stay false on its (S,G)
//!   channel): so the DR for R is mcrd, not FRR;
//! - as the Assert loser it keeps an interface that a (*,G) Join put into
//!   the (S,G) olist (no `lost_assert(S,G,rpt)`, section 4.1.6), and D
//!   sends no (S,G,rpt) Prune: so B forwards onto LAN2 for an (S,G) Join
//!   only (D's (*,G) Join goes to A);
//! - an RP whose first packet of a new source is another router's copy on
//!   a non-RPF interface (a WRVIFWHOLE upcall, A's copy on LAN2) makes its
//!   (S,G) with that interface as the incoming one and loops the stream
//!   back onto LAN1: so the source sends before any receiver joins, and B
//!   has its (S,G) from LAN1 first.

use mcr_tests::frr::*;
use mcr_tests::*;
use serde_json::Value;

use std::time::{Duration, Instant};

const GROUP: &str = "239.9.3.3";
const SOURCE: &str = "10.93.1.10";
const RP: &str = "10.93.1.2";

/// The namespaces and the bridges of the topology above.
struct Lan {
    tag: String,
    dir: TempDir,
    hub: Netns,
    s: Netns,
    a: Netns,
    b: Netns,
    r: Netns,
    d: Netns,
    w: Netns,
}

impl Lan {
    /// `a2`/`b2`: A's and B's addresses on LAN2 (the higher one wins).
    fn new(a2: &str, b2: &str) -> Lan {
        let tag = unique_tag();
        let ns = |x: &str| Netns::new(format!("{tag}-{x}"));
        let l = Lan {
            dir: TempDir::new(&tag),
            hub: ns("x"),
            s: ns("s"),
            a: ns("a"),
            b: ns("b"),
            r: ns("r"),
            d: ns("d"),
            w: ns("w"),
            tag,
        };
        for br in ["1", "2"] {
            let name = l.n(&format!("br{br}"));
            l.hub.ip(&[
                "link",
                "add",
                &name,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ]);
            l.hub.ip(&["link", "set", &name, "up"]);
        }
        l.port(&l.s, "1", "s1", "10.93.1.10/24");
        l.port(&l.a, "1", "a1", "10.93.1.1/24");
        l.port(&l.b, "1", "b1", "10.93.1.2/24");
        l.port(&l.a, "2", "a2", &format!("{a2}/24"));
        l.port(&l.b, "2", "b2", &format!("{b2}/24"));
        l.port(&l.r, "2", "r2", "10.93.2.100/24");
        l.port(&l.d, "2", "d2", "10.93.2.50/24");
        veth(
            &l.d,
            &l.n("d3"),
            "10.93.3.1/24",
            &l.w,
            &l.n("w3"),
            "10.93.3.2/24",
        );
        l.s.ip(&["route", "add", "default", "via", "10.93.1.2"]);
        l.r.ip(&["route", "add", "default", "via", a2]);
        l.w.ip(&["route", "add", "default", "via", "10.93.3.1"]);
        // D reaches S through B and the RP through A (prefixes: FRR's
        // nexthop tracking does not resolve through a default route).
        l.d.ip(&["route", "add", "10.93.1.0/24", "via", b2]);
        l.d.ip(&["route", "add", &format!("{RP}/32"), "via", a2]);
        l.a.ip(&["route", "add", "10.93.3.0/24", "via", "10.93.2.50"]);
        l.b.ip(&["route", "add", "10.93.3.0/24", "via", "10.93.2.50"]);
        l
    }

    /// An interface name: `{tag}{suffix}`.
    fn n(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.tag)
    }

    /// A veth from `ns` (named `{tag}{name}`, address `addr`) into bridge
    /// `br{br}` in the hub.
    fn port(&self, ns: &Netns, br: &str, name: &str, addr: &str) {
        let inner = self.n(name);
        let outer = self.n(&format!("p{name}"));
        veth(ns, &inner, addr, &self.hub, &outer, "");
        self.hub
            .ip(&["link", "set", &outer, "master", &self.n(&format!("br{br}"))]);
    }
}

/// The `(S,G)` entry of `mcrctl --json pim join-state`.
fn mcr_sg(m: &Mcrd) -> Option<Value> {
    m.ctl_json(&["pim", "join-state"])["entries"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == "sg" && e["source"] == SOURCE && e["group"] == GROUP)
        .cloned()
}

/// mcrd's Assert state of `(S,G)` on `iface`: the downstream row.
fn mcr_assert(m: &Mcrd, iface: &str) -> Option<Value> {
    mcr_sg(m)?["downstream"]
        .as_array()?
        .iter()
        .find(|d| d["interface"] == iface)
        .cloned()
}

/// FRR's `show ip pim assert` row of `(S,G)` on `iface`: (state, winner).
fn frr_assert(frr: &Frr, iface: &str) -> Option<(String, String)> {
    let text = frr.vtysh(&["show ip pim assert"]);
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // Interface Address Source Group State Winner Uptime Timer
        (w.len() >= 6 && w[0] == iface && w[2] == SOURCE && w[3] == GROUP)
            .then(|| (w[4].to_string(), w[5].to_string()))
    })
}

/// FRR's `show ip pim assert-winner-metric` row of `(S,G)` on `iface`:
/// (RPT bit, preference, metric, winner address), as printed.
fn frr_winner_metric(frr: &Frr, iface: &str) -> Option<(String, String, String, String)> {
    let text = frr.vtysh(&["show ip pim assert-winner-metric"]);
    text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        // Interface Address Source Group RPT Pref Metric Address
        (w.len() >= 8 && w[0] == iface && w[2] == SOURCE && w[3] == GROUP).then(|| {
            (
                w[4].to_string(),
                w[5].to_string(),
                w[6].to_string(),
                w[7].to_string(),
            )
        })
    })
}

/// Packets `iface` in `ns` sent during `window`.
fn tx_during(ns: &Netns, iface: &str, window: Duration) -> u64 {
    let a = tx_packets(ns, iface);
    std::thread::sleep(window);
    tx_packets(ns, iface) - a
}

/// One run: A's LAN2 address `a2`, B's `b2`; `mcrd_wins` says which is
/// higher.
fn assert_on_shared_lan(a2: &str, b2: &str, mcrd_wins: bool) {
    if !frr_available() {
        eprintln!("skipped: FRR pimd is not installed");
        return;
    }
    let started = Instant::now();
    let l = Lan::new(a2, b2);
    let n = |s: &str| l.n(s);
    // B: RP and DR on LAN1 (higher address).
    let b_conf = format!(
        "interface {b1}\n ip pim\n ip pim hello 5\n!\n\
         interface {b2}\n ip pim\n ip pim hello 5\n!\n",
        b1 = n("b1"),
        b2 = n("b2")
    );
    let b_dir = TempDir::new(&format!("{}b", l.tag));
    let b = Frr::start_with(&l.b, &b_dir, &n("b2"), &b_conf);
    frr_set_rp(&b, RP);
    // D: last hop for R2 on LAN3.
    let (_d_dir, d) = start_frr(&l.d, &format!("{}d", l.tag), &[n("d2")], Some(&n("d3")), RP);
    // D's Join/Prune Holdtime 17 s (3.5 x 5 s): FRR as the assert loser
    // stops forwarding when D's Join state there expires (see below).
    d.vtysh(&["configure terminal", "ip pim join-prune-interval 5"]);
    // A: mcrd, the DR on LAN2 (priority 10) with IGMP there for R.
    let a_cfg = format!(
        "{{ pim: {{ enabled: true, hello_period: 5, interfaces: [ {{ name: \"{a1}\" }}, {{ name: \"{a2}\", dr_priority: 10 }} ], \
           static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ] }}, \
           igmp: {{ querier_interfaces: [\"{a2}\"], version: 2 }}, \
           control_plane: {{ rpf_provider: \"kernel\" }} }}",
        a1 = n("a1"),
        a2 = n("a2")
    );
    let a = Mcrd::start(&l.a, &l.dir, &a_cfg);
    let a_nb = |iface: &str, addr: &str| {
        a.ctl_json(&["pim", "neighbors"])["neighbors"]
            .as_array()
            .is_some_and(|v| {
                v.iter()
                    .any(|x| x["interface"] == iface && x["address"] == addr)
            })
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            a_nb(&n("a1"), "10.93.1.2")
                && a_nb(&n("a2"), b2)
                && a_nb(&n("a2"), "10.93.2.50")
                && d.neighbors().contains_key(a2)
                && d.neighbors().contains_key(b2)
        }),
        "adjacencies: mcrd {}\nD {}",
        a.ctl_json(&["pim", "neighbors"]),
        d.vtysh(&["show ip pim neighbor"])
    );
    assert_eq!(b.dr(), a2, "A is the DR on LAN2");

    // The source first, no receiver yet: B (RP, DR on LAN1) makes its
    // (S,G) from S's packets on LAN1.
    let gen = Generator::spawn(
        &l.s,
        &n("s1"),
        GROUP,
        7100,
        &["--rate", "1000", "--count", "200000", "--ttl", "16"],
    );
    assert!(
        wait_until(Duration::from_secs(15), || frr_route(&b, SOURCE, GROUP)
            .is_some_and(|(iif, _)| iif == n("b1"))),
        "B's (S,G): {}",
        b.vtysh(&["show ip pim upstream", "show ip mroute"])
    );
    let before = tx_during(&l.a, &n("a2"), Duration::from_secs(1))
        + tx_during(&l.b, &n("b2"), Duration::from_secs(1));
    assert!(before < 20, "no receiver, yet LAN2 gets data: {before}");

    // The receivers join: D's (*,G) Join goes to A (A forwards onto LAN2,
    // also for R as the DR), D's (S,G) Join after its SPT switch to B (B
    // forwards onto LAN2).
    let t0 = Instant::now();
    let listen = |ns: &Netns, iface: &str| {
        Listener::start(
            ns,
            &l.dir,
            iface,
            GROUP,
            7100,
            &["--duration", "200", "--idle-timeout", "3"],
        )
    };
    // Memberships held for the whole test, whatever the listeners do (a
    // listener ends after 3 s without a packet).
    let _member_r = Member::join(&l.r, "10.93.2.100", GROUP);
    let _member_w = Member::join(&l.w, "10.93.3.2", GROUP);
    let whole_r = listen(&l.r, &n("r2"));
    let whole_w = listen(&l.w, &n("w3"));
    // The assert settles: mcrd and FRR agree on the winner of (S,G) on
    // LAN2.
    let (winner, loser) = if mcrd_wins { (a2, b2) } else { (b2, a2) };
    let mcr_state = if mcrd_wins { "winner" } else { "loser" };
    let agreed = || {
        let m = mcr_assert(&a, &n("a2"));
        let f = frr_assert(&b, &n("b2"));
        m.is_some_and(|m| m["assert"] == mcr_state && m["assert_winner"] == winner)
            && f.is_some_and(|(state, w)| {
                w == winner && state == if mcrd_wins { "LOSER" } else { "WINNER" }
            })
    };
    // Everything the routers say, for failure messages.
    let views = || {
        format!(
            "mcrd: {}\nA kernel:\n{}\nB:\n{}\nB kernel:\n{}\nD:\n{}",
            a.ctl_json(&["pim", "join-state"]),
            l.a.ip(&["-s", "mroute", "show"]),
            b.vtysh(&[
                "show ip pim assert",
                "show ip pim assert-internal",
                "show ip mroute",
                "show ip pim upstream",
                "show ip pim join",
            ]),
            l.b.ip(&["-s", "mroute", "show"]),
            d.vtysh(&["show ip pim rpf", "show ip pim upstream", "show ip mroute"]),
        )
    };
    let ok = wait_until(Duration::from_secs(60), agreed);
    let t_assert = t0.elapsed();
    assert!(ok, "no agreed assert after {t_assert:?}:\n{}", views());
    eprintln!("assert agreed {t_assert:?} after R joined (winner {winner}, loser {loser})");
    eprintln!("mcrd: {}", mcr_assert(&a, &n("a2")).unwrap());
    eprintln!("FRR B:\n{}", b.vtysh(&["show ip pim assert"]));
    // Both name the same winner with the same metric: RPT bit clear,
    // preference 0 and metric 0 (a connected source) on both sides.
    let m = mcr_assert(&a, &n("a2")).unwrap();
    assert_eq!(
        m["assert_metric"],
        serde_json::json!({"rpt": false, "preference": 0, "metric": 0}),
        "{m}"
    );
    assert!(m["assert_timer"].as_u64().is_some_and(|t| t > 100), "{m}");
    let f = frr_winner_metric(&b, &n("b2"));
    eprintln!("FRR winner metric: {f:?}");
    assert_eq!(
        f,
        Some(("no".into(), "0".into(), "0".into(), winner.to_string())),
        "{}",
        b.vtysh(&["show ip pim assert-winner-metric"])
    );
    let text = a.ctl(&["pim", "join-state"]).stdout;
    let want = format!("assert={mcr_state} winner={winner} metric=0/0 at=");
    assert!(text.contains(&want), "{want} in:\n{text}");
    let js = a.ctl_json(&["pim", "join-state"]);
    let tree = &js["counters"]["tree"];
    // The winner asserted; a loser that took the winner's Assert as
    // acceptable stays silent (section 4.6.1, NoInfo -> Loser).
    if mcrd_wins {
        assert!(tree["asserts_sent"].as_u64() > Some(0), "{js}");
    } else {
        assert!(tree["asserts_received"].as_u64() > Some(0), "{js}");
    }
    // The loser stops forwarding onto LAN2. mcrd as the loser takes LAN2
    // out of its route at once (lost_assert, section 4.1.6). FRR 8.4 as
    // the loser keeps an interface a Join put there until that Join state
    // expires (FRR issues #10595, #21980): D's Join moves to the winner
    // (RPF' follows the Assert, section 4.1.6) and its state at B runs out
    // after D's Holdtime, 17 s with `ip pim join-prune-interval 5`.
    let loser_ns = if mcrd_wins { &l.b } else { &l.a };
    let loser_if = if mcrd_wins { n("b2") } else { n("a2") };
    let t1 = Instant::now();
    let stopped = wait_until(Duration::from_secs(40), || {
        tx_during(loser_ns, &loser_if, Duration::from_millis(500)) < 5
    });
    let t_stop = t1.elapsed();
    assert!(
        stopped,
        "the loser still forwards {t_stop:?} after the assert:\n{}",
        views()
    );
    eprintln!("the loser stopped forwarding onto LAN2 {t_stop:?} after the assert agreed");
    let t_stop = t_assert + t_stop;
    // The last duplicates drain.
    std::thread::sleep(Duration::from_millis(500));

    // The settled window: exactly one of A and B forwards onto LAN2.
    let settled_r = Listener::start(&l.r, &l.dir, &n("r2"), GROUP, 7100, &["--duration", "6"]);
    let settled_w = Listener::start(&l.w, &l.dir, &n("w3"), GROUP, 7100, &["--duration", "6"]);
    let a_tx = tx_packets(&l.a, &n("a2"));
    let b_tx = tx_during(&l.b, &n("b2"), Duration::from_secs(5));
    let a_tx = tx_packets(&l.a, &n("a2")) - a_tx;
    eprintln!("LAN2 tx over 5 s: A {a_tx}, B {b_tx}");
    let (win_tx, lose_tx) = if mcrd_wins {
        (a_tx, b_tx)
    } else {
        (b_tx, a_tx)
    };
    assert!(
        win_tx > 4000,
        "the winner forwards: A {a_tx}, B {b_tx}\n{}",
        views()
    );
    // Hellos and Asserts only (no data) from the loser.
    assert!(
        lose_tx < 20,
        "the loser stopped: A {a_tx}, B {b_tx}\n{}",
        views()
    );
    let a_route = kernel_route(&l.a, SOURCE, GROUP);
    let a_mcr = mcr_route(&a, Some(SOURCE), GROUP);
    eprintln!("A kernel {a_route:?}, mcrd {a_mcr:?}");
    let has_lan2 =
        |r: &Option<(String, Vec<String>)>| r.as_ref().is_some_and(|(_, o)| o.contains(&n("a2")));
    assert_eq!(has_lan2(&a_route), mcrd_wins, "A's MFC: {a_route:?}");
    assert_eq!(has_lan2(&a_mcr), mcrd_wins, "A's MRIB: {a_mcr:?}");
    let b_route = frr_route(&b, SOURCE, GROUP);
    eprintln!("B {b_route:?}");
    let b_has = b_route.as_ref().is_some_and(|(_, o)| o.contains(&n("b2")));
    assert_eq!(b_has, !mcrd_wins, "B's mroute: {b_route:?}");
    // D's RPF'(S,G) is the winner (RPF' follows an Assert seen on the RPF
    // interface, section 4.1.6): when mcrd won, D moved its (S,G) Join
    // from B (its unicast next hop) to mcrd.
    let rpf = d.json("show ip pim rpf json");
    eprintln!("D RPF' (S,G): {}", rpf[GROUP][SOURCE]);
    assert_eq!(
        rpf[GROUP][SOURCE]["rpfAddress"],
        winner,
        "D's RPF'(S,G): {}",
        d.vtysh(&["show ip pim rpf"])
    );
    assert_eq!(rpf[GROUP][SOURCE]["ribNexthop"], b2, "{rpf}");

    let settled_r = settled_r.finish();
    let settled_w = settled_w.finish();
    for (who, s) in [("R", &settled_r), ("R2", &settled_w)] {
        let st = &s["streams"][0];
        eprintln!("{who} settled: {st}");
        assert_eq!(st["duplicates"], 0, "{who} duplicates once settled: {s}");
        assert_eq!(st["lost"], 0, "{who} loss once settled: {s}");
        assert!(st["received"].as_u64() >= Some(5000), "{who}: {s}");
    }
    if !mcrd_wins {
        // The winner dies (pimd killed, no goodbye; its kernel routes go
        // with its mroute socket). mcrd, the loser, forgets it when its
        // Neighbor Liveness Timer runs out (FRR's Hello Holdtime: 17 s
        // with `ip pim hello 5`), not after Assert_Time (180 s), and
        // forwards onto LAN2 again (section 4.6.1).
        kill_pid_file(&b.dir.join("pimd.pid"), libc::SIGKILL);
        let t2 = Instant::now();
        let back = wait_until(Duration::from_secs(40), || {
            tx_during(&l.a, &n("a2"), Duration::from_millis(500)) > 300
        });
        let t_back = t2.elapsed();
        assert!(
            back,
            "A does not forward {t_back:?} after the winner died: {}",
            a.ctl_json(&["pim", "join-state"])
        );
        eprintln!("A forwards onto LAN2 again {t_back:?} after the winner's pimd was killed");
        assert!(mcr_assert(&a, &n("a2")).is_none_or(|m| m["assert"].is_null()));
        let again = Listener::start(&l.r, &l.dir, &n("r2"), GROUP, 7100, &["--duration", "3"]);
        let again = again.finish();
        let st = &again["streams"][0];
        eprintln!("R after the takeover: {st}");
        assert_eq!(st["duplicates"], 0, "{again}");
        assert_eq!(st["lost"], 0, "{again}");
        assert!(st["received"].as_u64() >= Some(2500), "{again}");
    }
    // The stream stops; the whole-run listeners end 3 s later.
    drop(gen);
    let whole_r = whole_r.finish();
    let whole_w = whole_w.finish();
    for (who, s) in [("R", &whole_r), ("R2", &whole_w)] {
        let st = &s["streams"][0];
        eprintln!("{who} whole: {st}");
        // Duplicates only until the loser stopped: at 1 kpps, bounded by
        // the time that took.
        let bound = (t_stop.as_millis() as u64) + 1000;
        assert!(
            st["duplicates"].as_u64().is_some_and(|d| d <= bound),
            "{who} duplicates over {bound}: {s}"
        );
    }
    eprintln!("test wall time {:?}", started.elapsed());
}

/// mcrd has the higher LAN2 address: mcrd wins, FRR stops forwarding.
#[test]
fn assert_mcrd_wins_against_frr() {
    assert_on_shared_lan("10.93.2.20", "10.93.2.10", true);
}

/// FRR has the higher LAN2 address: FRR wins, mcrd takes LAN2 out of its
/// route.
#[test]
fn assert_frr_wins_against_mcrd() {
    assert_on_shared_lan("10.93.2.10", "10.93.2.20", false);
}
