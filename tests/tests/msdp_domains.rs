//! MSDP joined to the PIM trees end to end (RFC 3618 section 3 with RFC
//! 7761), FRR's pimd as the judge:
//!
//! - mcrd as RP and DR of a source LAN originates an SA for the source it
//!   learns, and FRR, its MSDP peer, caches it (`show ip msdp sa json`);
//! - the same for a source FRR, a first-hop DR, registers to mcrd;
//! - two PIM domains: FRR the RP (and DR) of a source in domain A, mcrd the
//!   RP and last hop of a receiver in domain B, PIM neighbours on the
//!   inter-domain link and MSDP peers; FRR's SA makes mcrd join (S,G) toward
//!   the source and a sequenced stream reaches the receiver, counted there.
//!
//! The tests skip, saying so, only where `/usr/lib/frr/pimd` is not
//! installed (`tests/run.sh` installs it).

use mcr_tests::frr::*;
use mcr_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// FRR's MSDP lines: timers first (FRR applies them to peers created
/// after; its first connect waits one connect-retry period, 1 s here).
fn frr_msdp(local: &str, peer: &str) -> String {
    format!("ip msdp timers 4 4 1\nip msdp peer {peer} source {local}\n")
}

fn msdp_peer_state(m: &Mcrd, peer: &str) -> String {
    m.ctl_json(&["msdp", "peers"])["peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["address"] == peer).cloned())
        .map_or(String::new(), |p| {
            p["state"].as_str().unwrap_or("").to_string()
        })
}

fn frr_msdp_state(f: &Frr, peer: &str) -> String {
    f.json("show ip msdp peer json")[peer]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_established(m: &Mcrd, f: &Frr, mcrd_addr: &str, frr_addr: &str) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            msdp_peer_state(m, frr_addr) == "established"
                && frr_msdp_state(f, mcrd_addr) == "established"
        }),
        "MSDP not Established: mcrd {}, FRR {}\nmcrd log:\n{}",
        m.ctl_json(&["msdp", "peers"]),
        f.json("show ip msdp peer json"),
        m.log_text()
    );
}

/// The entry of FRR's `show ip msdp sa json` for (S,G), if any.
fn frr_sa(frr: &Frr, source: &str, group: &str) -> Option<Value> {
    let v = frr.json("show ip msdp sa json");
    v.get(group).and_then(|g| g.get(source)).cloned()
}

/// The (S,G) route of `mcrctl mroute`, if any.
fn mroute_sg(m: &Mcrd, source: &str, group: &str) -> Option<Value> {
    m.ctl_json(&["mroute"])["routes"]
        .as_array()?
        .iter()
        .find(|r| r["source"] == source && r["group"] == group)
        .cloned()
}

/// mcrd is the RP for 239.0.0.0/8 and the DR of a LAN with a source host;
/// the source sends, mcrd learns (S,G) as a directly connected source and
/// originates an SA for it (RFC 3618 section 3) that lands in FRR's SA
/// cache with mcrd as origin RP. When the source stops, the SA is no longer
/// refreshed and leaves mcrd's local list.
#[test]
fn mcrd_rp_originates_an_sa_for_its_source_and_frr_caches_it() {
    if !frr_available() {
        eprintln!("skipped: FRR pimd is not installed");
        return;
    }
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let mcr = Netns::new(format!("{tag}-m"));
    let frr_ns = Netns::new(format!("{tag}-f"));
    let src = Netns::new(format!("{tag}-s"));
    let n = |s: &str| format!("{tag}{s}");
    veth(
        &mcr,
        &n("mf"),
        "10.86.0.2/24",
        &frr_ns,
        &n("fm"),
        "10.86.0.1/24",
    );
    veth(
        &mcr,
        &n("ms"),
        "10.87.0.1/24",
        &src,
        &n("s"),
        "10.87.0.10/24",
    );
    src.ip(&["route", "add", "default", "via", "10.87.0.1"]);
    frr_ns.ip(&["route", "add", "10.87.0.0/24", "via", "10.86.0.2"]);
    let cfg = format!(
        "{{ pim: {{ enabled: true, hello_period: 5, interfaces: [ {{ name: \"{mf}\" }}, {{ name: \"{ms}\" }} ], \
           rp_address: \"10.86.0.2\", static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"10.86.0.2\" }} ] }}, \
           control_plane: {{ rpf_provider: \"kernel\" }}, \
           msdp: {{ enabled: true, local_address: \"10.86.0.2\", keepalive_interval: 1, hold_time: 6, \
           peers: [ {{ address: \"10.86.0.1\" }} ] }} }}",
        mf = n("mf"),
        ms = n("ms")
    );
    let m = Mcrd::start(&mcr, &dir, &cfg);
    // FRR's peer-RPF check needs PIM on the interface toward the RP.
    let conf = format!(
        "interface {}\n ip pim\n ip pim hello 5\n!\n{}!\n",
        n("fm"),
        frr_msdp("10.86.0.1", "10.86.0.2")
    );
    let frr = Frr::start_with(&frr_ns, &dir, &n("fm"), &conf);
    wait_established(&m, &frr, "10.86.0.2", "10.86.0.1");

    let group = "239.5.6.7";
    let gen = Generator::spawn(
        &src,
        &n("s"),
        group,
        7200,
        &["--rate", "20", "--duration", "40", "--ttl", "16"],
    );
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || frr_sa(
            &frr,
            "10.87.0.10",
            group
        )
        .is_some()),
        "no SA at FRR: FRR {}\nmcrd local: {}\nmcrd join-state: {}\nmcrd mroute: {}",
        frr.vtysh(&["show ip msdp sa"]),
        m.ctl_json(&["msdp", "peers"]),
        m.ctl_json(&["pim", "join-state"]),
        m.ctl_json(&["mroute"])
    );
    eprintln!("SA at FRR {:?} after the source started", t0.elapsed());
    let sa = frr_sa(&frr, "10.87.0.10", group).unwrap();
    eprintln!("FRR SA: {sa}");
    assert_eq!(sa["rp"], "10.86.0.2", "origin RP: {sa}");
    assert_eq!(sa["local"], "no", "learned from mcrd: {sa}");
    // mcrd's side: the (S,G) at the RP (the data's Keepalive Timer) and the
    // SA counted as sent to FRR.
    let peers = m.ctl_json(&["msdp", "peers"]);
    assert_eq!(peers["local_sources"], 1, "{peers}");
    let p = &peers["peers"][0];
    assert!(p["stats"]["sa_out"].as_u64() >= Some(1), "{peers}");
    let js = m.ctl_json(&["pim", "join-state"]);
    assert!(
        js["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "sg"
                && e["source"] == "10.87.0.10"
                && e["keepalive"].as_u64().is_some()),
        "(S,G) at the RP: {js}"
    );
    // The group moved to FRR's RP at run time: not the RP any more, so no
    // SA to originate; moved back, the source (still sending) is
    // originated again. Neither change touches a route by itself.
    let local_sources = |m: &Mcrd| m.ctl_json(&["msdp", "peers"])["local_sources"].clone();
    let move_rp = |rp: &str| {
        let out = m.ctl(&["pim", "set-static-rp", "--group", "239.0.0.0/8", "--rp", rp]);
        assert_eq!(out.code, 0, "{out:?}");
    };
    move_rp("10.86.0.1");
    assert!(
        wait_until(Duration::from_secs(5), || local_sources(&m) == 0),
        "still originating as a former RP: {}",
        m.ctl_json(&["msdp", "peers"])
    );
    move_rp("10.86.0.2");
    assert!(
        wait_until(Duration::from_secs(5), || local_sources(&m) == 1),
        "not originating again as the RP: {}\n{}",
        m.ctl_json(&["msdp", "peers"]),
        m.ctl_json(&["pim", "join-state"])
    );
    drop(gen);
}

/// Two PIM domains joined by MSDP. Domain A: a source host on FRR's LAN,
/// FRR its DR and the RP. Domain B: mcrd the RP and last hop of a receiver
/// host joined by IGMP. FRR and mcrd are PIM neighbours on the link between
/// them and MSDP peers. FRR's SA reaches mcrd's cache; mcrd, the RP with a
/// local member, joins (S,G) toward the source (FRR shows the Join on the
/// link); a sequenced stream reaches the receiver, counted there with
/// nothing lost or duplicated; `mcrctl mroute` shows the (S,G) from PIM
/// with its iif toward FRR.
#[test]
fn two_pim_domains_joined_by_msdp_deliver_a_stream_end_to_end() {
    if !frr_available() {
        eprintln!("skipped: FRR pimd is not installed");
        return;
    }
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let src = Netns::new(format!("{tag}-s"));
    let frr_ns = Netns::new(format!("{tag}-f"));
    let mcr = Netns::new(format!("{tag}-m"));
    let rcv = Netns::new(format!("{tag}-v"));
    let n = |s: &str| format!("{tag}{s}");
    veth(
        &src,
        &n("s"),
        "10.89.0.10/24",
        &frr_ns,
        &n("fs"),
        "10.89.0.1/24",
    );
    veth(
        &frr_ns,
        &n("fm"),
        "10.90.0.1/24",
        &mcr,
        &n("mf"),
        "10.90.0.2/24",
    );
    veth(
        &mcr,
        &n("mv"),
        "10.91.0.1/24",
        &rcv,
        &n("v"),
        "10.91.0.10/24",
    );
    src.ip(&["route", "add", "default", "via", "10.89.0.1"]);
    frr_ns.ip(&["route", "add", "10.91.0.0/24", "via", "10.90.0.2"]);
    mcr.ip(&["route", "add", "10.89.0.0/24", "via", "10.90.0.1"]);
    rcv.ip(&["route", "add", "default", "via", "10.91.0.1"]);

    // Domain A: FRR, RP 10.90.0.1 for 239.0.0.0/8.
    let conf = format!(
        "interface {}\n ip pim\n ip pim hello 5\n!\ninterface {}\n ip pim\n ip pim hello 5\n!\n{}!\n",
        n("fm"),
        n("fs"),
        frr_msdp("10.90.0.1", "10.90.0.2")
    );
    let frr = Frr::start_with(&frr_ns, &dir, &n("fm"), &conf);
    frr_set_rp(&frr, "10.90.0.1");
    // Domain B: mcrd, RP 10.90.0.2 for 239.0.0.0/8, IGMP querier on the
    // receiver LAN.
    let cfg = format!(
        "{{ pim: {{ enabled: true, hello_period: 5, interfaces: [ {{ name: \"{mf}\" }}, {{ name: \"{mv}\" }} ], \
           rp_address: \"10.90.0.2\", static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"10.90.0.2\" }} ] }}, \
           igmp: {{ querier_interfaces: [\"{mv}\"], version: 2, query_interval: 5, query_response_interval: 2 }}, \
           control_plane: {{ rpf_provider: \"kernel\" }}, \
           msdp: {{ enabled: true, local_address: \"10.90.0.2\", keepalive_interval: 1, hold_time: 6, \
           peers: [ {{ address: \"10.90.0.1\", description: \"domain A\" }} ] }} }}",
        mf = n("mf"),
        mv = n("mv")
    );
    let m = Mcrd::start(&mcr, &dir, &cfg);
    assert!(
        wait_until(Duration::from_secs(15), || frr
            .neighbors()
            .contains_key("10.90.0.2")),
        "no PIM adjacency: FRR sees {:?}",
        frr.neighbors()
    );
    wait_established(&m, &frr, "10.90.0.2", "10.90.0.1");

    let group = "239.7.7.7";
    // The receiver joins first (mcrd's (*,G) from local members), then the
    // source starts: FRR originates the SA, mcrd joins toward S.
    let keep = Listener::start(&rcv, &dir, &n("v"), group, 7300, &["--duration", "90"]);
    let warm = Generator::spawn(
        &src,
        &n("s"),
        group,
        7300,
        &["--rate", "20", "--duration", "80", "--ttl", "16"],
    );
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || m
            .ctl_json(&["msdp", "sa-cache"])["entries"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["source"] == "10.89.0.10"
                && e["group"] == group
                && e["origin_rp"] == "10.90.0.1"))),
        "FRR's SA not in mcrd's cache: {}\nFRR: {}",
        m.ctl_json(&["msdp", "sa-cache"]),
        frr.vtysh(&["show ip msdp sa"])
    );
    eprintln!(
        "SA in mcrd's cache {:?} after the source started",
        t0.elapsed()
    );
    // The (S,G) Join from mcrd at FRR, on the inter-domain link.
    let frr_sg_join = |frr: &Frr| {
        frr.json("show ip pim join json")
            .get(n("fm"))
            .and_then(|i| i.get(group))
            .and_then(|g| g.get("10.89.0.10"))
            .cloned()
    };
    assert!(
        wait_until(Duration::from_secs(15), || frr_sg_join(&frr)
            .is_some_and(|j| j["channelJoinName"] == "JOIN")),
        "no (S,G) Join from mcrd at FRR: {}\nmcrd join-state: {}",
        frr.vtysh(&["show ip pim join"]),
        m.ctl_json(&["pim", "join-state"])
    );
    eprintln!(
        "(S,G) Join at FRR {:?} after the source started",
        t0.elapsed()
    );
    let js = m.ctl_json(&["pim", "join-state"]);
    let sg = js["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "sg" && e["source"] == "10.89.0.10")
        .cloned()
        .unwrap_or_else(|| panic!("no (S,G) at mcrd: {js}"));
    assert_eq!(sg["upstream"], "joined", "{sg}");
    assert_eq!(sg["rpf_neighbor"], "10.90.0.1", "{sg}");
    assert_eq!(sg["rpf_interface"], n("mf").as_str(), "{sg}");
    // The (S,G) route: from PIM, iif toward FRR, the receiver LAN out.
    assert!(
        wait_until(Duration::from_secs(10), || mroute_sg(
            &m,
            "10.89.0.10",
            group
        )
        .is_some_and(|r| r["iif"] == n("mf").as_str())),
        "{}",
        m.ctl_json(&["mroute"])
    );
    let r = mroute_sg(&m, "10.89.0.10", group).unwrap();
    eprintln!("mcrd route: {r}");
    assert!(
        r["origins"].as_array().unwrap().iter().any(|o| o == "pim"),
        "{r}"
    );
    assert_eq!(r["rpf_neighbor"], "10.90.0.1", "{r}");
    assert!(
        r["oifs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["interface"] == n("mv").as_str()),
        "{r}"
    );

    // A sequenced stream on another port, once the tree is up: every
    // packet at the receiver, once.
    let listener = Listener::start(
        &rcv,
        &dir,
        &n("v"),
        group,
        7301,
        &["--count", "1000", "--idle-timeout", "10"],
    );
    let sent = generate(
        &src,
        &n("s"),
        group,
        7301,
        &["--rate", "200", "--count", "1000", "--ttl", "16"],
    );
    eprintln!("sent: {sent}");
    let got = listener.finish();
    eprintln!("received: {got}");
    assert_exact(&got, 1000);
    let r = mroute_sg(&m, "10.89.0.10", group).unwrap();
    assert_eq!(r["installed"], "kernel", "{r}");
    assert!(r["packets"].as_u64() >= Some(1000), "{r}");
    drop(warm);
    drop(keep);
}

/// mcrd is the RP; FRR is the first-hop DR of a source and registers it to
/// mcrd (RFC 7761 4.4). The registered source is one of mcrd's own: mcrd
/// originates an SA for it (RFC 3618 section 3) that FRR, its MSDP peer,
/// caches with mcrd as origin RP.
#[test]
fn a_source_registered_to_mcrd_is_advertised_in_an_sa() {
    if !frr_available() {
        eprintln!("skipped: FRR pimd is not installed");
        return;
    }
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let src = Netns::new(format!("{tag}-s"));
    let frr_ns = Netns::new(format!("{tag}-f"));
    let mcr = Netns::new(format!("{tag}-m"));
    let n = |s: &str| format!("{tag}{s}");
    veth(
        &src,
        &n("s"),
        "10.93.0.10/24",
        &frr_ns,
        &n("fs"),
        "10.93.0.1/24",
    );
    veth(
        &frr_ns,
        &n("fm"),
        "10.94.0.1/24",
        &mcr,
        &n("mf"),
        "10.94.0.2/24",
    );
    src.ip(&["route", "add", "default", "via", "10.93.0.1"]);
    mcr.ip(&["route", "add", "10.93.0.0/24", "via", "10.94.0.1"]);
    let cfg = format!(
        "{{ pim: {{ enabled: true, hello_period: 5, interfaces: [ {{ name: \"{mf}\" }} ], \
           rp_address: \"10.94.0.2\", static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"10.94.0.2\" }} ] }}, \
           control_plane: {{ rpf_provider: \"kernel\" }}, \
           msdp: {{ enabled: true, local_address: \"10.94.0.2\", keepalive_interval: 1, hold_time: 6, \
           peers: [ {{ address: \"10.94.0.1\" }} ] }} }}",
        mf = n("mf")
    );
    let m = Mcrd::start(&mcr, &dir, &cfg);
    let conf = format!(
        "interface {}\n ip pim\n ip pim hello 5\n!\ninterface {}\n ip pim\n ip pim hello 5\n!\n{}!\n",
        n("fm"),
        n("fs"),
        frr_msdp("10.94.0.1", "10.94.0.2")
    );
    let frr = Frr::start_with(&frr_ns, &dir, &n("fm"), &conf);
    frr_set_rp(&frr, "10.94.0.2");
    assert!(
        wait_until(Duration::from_secs(15), || frr
            .neighbors()
            .contains_key("10.94.0.2")),
        "no PIM adjacency: FRR sees {:?}",
        frr.neighbors()
    );
    wait_established(&m, &frr, "10.94.0.2", "10.94.0.1");
    let group = "239.8.8.8";
    let _gen = Generator::spawn(
        &src,
        &n("s"),
        group,
        7400,
        &["--rate", "20", "--duration", "40", "--ttl", "16"],
    );
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || frr_sa(
            &frr,
            "10.93.0.10",
            group
        )
        .is_some()),
        "no SA at FRR: FRR {}\nFRR upstream {}\nmcrd peers: {}\nmcrd join-state: {}",
        frr.vtysh(&["show ip msdp sa"]),
        frr.vtysh(&["show ip pim upstream"]),
        m.ctl_json(&["msdp", "peers"]),
        m.ctl_json(&["pim", "join-state"])
    );
    eprintln!("SA at FRR {:?} after the source started", t0.elapsed());
    let sa = frr_sa(&frr, "10.93.0.10", group).unwrap();
    assert_eq!(sa["rp"], "10.94.0.2", "origin RP: {sa}");
    // mcrd learned the source from FRR's Registers.
    let js = m.ctl_json(&["pim", "join-state"]);
    assert!(
        js["counters"]["tree"]["registers_received"].as_u64() >= Some(1),
        "{js}"
    );
    assert_eq!(m.ctl_json(&["msdp", "peers"])["local_sources"], 1);
}
