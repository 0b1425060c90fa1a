//! PIM neighbours, DR election and RPF providers, end to end.
//!
//! FRR is the judge (Debian `frr`: zebra + pimd in a network namespace,
//! read with `vtysh --vty_socket DIR`): the FRR tests skip, saying so, only
//! where `/usr/lib/frr/pimd` is not installed (`tests/run.sh` installs it).
//! The others need nothing but `ip` and `python3`.

use mcr_tests::frr::*;
use mcr_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pim_config(iface: &str, prio: u32, extra: &str) -> String {
    format!(
        "{{ pim: {{ enabled: true, interfaces: [ {{ name: \"{iface}\", hello_period: 5, dr_priority: {prio} }} ] }}{extra} }}"
    )
}

fn mcrd_neighbors(m: &Mcrd) -> Vec<Value> {
    m.ctl_json(&["pim", "neighbors"])["neighbors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn mcrd_neighbor(m: &Mcrd, addr: &str) -> Option<Value> {
    mcrd_neighbors(m).into_iter().find(|n| n["address"] == addr)
}

fn mcrd_dr(m: &Mcrd) -> String {
    m.ctl_json(&["pim", "interfaces"])["interfaces"][0]["dr"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Two namespaces joined by a veth: mcrd at 10.66.0.2, FRR at 10.66.0.1.
struct Pair {
    tag: String,
    dir: TempDir,
    mcr: Netns,
    frr: Netns,
}

impl Pair {
    fn new() -> Pair {
        let tag = unique_tag();
        let mcr = Netns::new(format!("{tag}-m"));
        let frr = Netns::new(format!("{tag}-f"));
        let p = Pair {
            dir: TempDir::new(&tag),
            tag,
            mcr,
            frr,
        };
        veth(
            &p.mcr,
            &p.m(),
            "10.66.0.2/24",
            &p.frr,
            &p.f(),
            "10.66.0.1/24",
        );
        p
    }
    fn m(&self) -> String {
        format!("{}m", self.tag)
    }
    fn f(&self) -> String {
        format!("{}f", self.tag)
    }
}

#[test]
fn frr_adjacency_dr_election_generation_id_and_goodbye() {
    if !frr_available() {
        return;
    }
    let p = Pair::new();
    let frr = Frr::start(&p.frr, &p.dir, &p.f());
    // Case 1: mcrd priority 10, FRR 1: mcrd (10.66.0.2) is DR.
    let mut mcrd = Mcrd::start(&p.mcr, &p.dir, &pim_config(&p.m(), 10, ""));
    let t0 = Instant::now();
    let sub = Subscriber::start(&mcrd, "pim");
    assert!(
        wait_until(Duration::from_secs(10), || {
            frr.neighbors().contains_key("10.66.0.2") && mcrd_neighbor(&mcrd, "10.66.0.1").is_some()
        }),
        "adjacency not up within 2 hello periods (10 s): FRR sees {:?}, mcrd sees {:?}",
        frr.neighbors(),
        mcrd_neighbors(&mcrd)
    );
    eprintln!(
        "adjacency up both ways {:?} after mcrd was ready",
        t0.elapsed()
    );
    let status = mcrd.ctl_json(&["status"]);
    assert_eq!(status["protocols"]["pim"]["running"], true);
    let n = mcrd_neighbor(&mcrd, "10.66.0.1").unwrap();
    assert_eq!(n["learned_by"], "hello");
    assert_eq!(n["holdtime_secs"], 17, "FRR: 3.5 x 5 s");
    assert_eq!(n["dr_priority"], 1);
    let frr_gen = n["generation_id"].as_u64().unwrap();
    let ours = frr.neighbors()["10.66.0.2"].clone();
    assert_eq!(ours["holdTimeMax"], 17, "our Holdtime 3.5 x 5 s: {ours}");
    assert_eq!(ours["drPriority"], 10);
    let agree = |who: &str| {
        wait_until(Duration::from_secs(12), || {
            frr.dr() == who && mcrd_dr(&mcrd) == who
        })
    };
    assert!(
        agree("10.66.0.2"),
        "case 1: FRR says {}, mcrd says {}",
        frr.dr(),
        mcrd_dr(&mcrd)
    );
    // The GenID FRR shows for us is the one we send.
    let iface = mcrd.ctl_json(&["pim", "interfaces"])["interfaces"][0].clone();
    let frr_if = frr.json(&format!("show ip pim interface {} json", p.f()));
    eprintln!(
        "our GenID {}; FRR interface view: {}",
        iface["generation_id"],
        frr_if[&p.f()]["neighbors"]
    );

    // Case 2: mcrd priority 1 (reload: neighbours and GenID kept), FRR 10:
    // FRR (10.66.0.1) is DR.
    std::fs::write(p.dir.path("mcrd.json5"), pim_config(&p.m(), 1, "")).unwrap();
    let r = mcrd.ctl_json(&["reload"]);
    assert_eq!(r["sections_changed"], serde_json::json!(["pim"]));
    let after = mcrd.ctl_json(&["pim", "interfaces"])["interfaces"][0].clone();
    assert_eq!(
        after["generation_id"], iface["generation_id"],
        "reload kept our GenID"
    );
    assert_eq!(
        mcrd_neighbor(&mcrd, "10.66.0.1").unwrap()["generation_id"],
        frr_gen,
        "reload kept the neighbour"
    );
    frr.set_priority(10);
    assert!(
        agree("10.66.0.1"),
        "case 2: FRR says {}, mcrd says {}",
        frr.dr(),
        mcrd_dr(&mcrd)
    );

    // Case 3: equal priorities (1, 1): the higher address, mcrd's, wins.
    frr.set_priority(1);
    assert!(
        agree("10.66.0.2"),
        "case 3: FRR says {}, mcrd says {}",
        frr.dr(),
        mcrd_dr(&mcrd)
    );
    assert!(
        sub.wait_for(Duration::from_secs(1), |e| e["event"] == "dr-change")
            .is_some(),
        "dr-change events: {:?}",
        sub.all()
    );

    // FRR's pimd restarts (killed, no goodbye): a new Generation ID.
    frr.restart_pimd_hard();
    let restart = sub.wait_for(Duration::from_secs(15), |e| {
        e["event"] == "neighbor-restart" && e["neighbor"] == "10.66.0.1"
    });
    let (_, ev) = restart.unwrap_or_else(|| panic!("no neighbor-restart: {:?}", sub.all()));
    assert_eq!(ev["previous_generation_id"], frr_gen);
    let new_gen = mcrd_neighbor(&mcrd, "10.66.0.1").unwrap()["generation_id"].clone();
    assert_ne!(new_gen, frr_gen);
    assert_eq!(ev["generation_id"], new_gen);
    // It learns us again at once (our triggered Hello).
    assert!(wait_until(Duration::from_secs(10), || frr
        .neighbors()
        .contains_key("10.66.0.2")));

    // mcrd stops: Holdtime 0, FRR drops it at once (its holdtime is 17 s).
    let t = Instant::now();
    mcrd.stop();
    assert!(
        wait_until(Duration::from_secs(3), || !frr
            .neighbors()
            .contains_key("10.66.0.2")),
        "FRR still lists mcrd: {:?}",
        frr.neighbors()
    );
    eprintln!("FRR dropped mcrd {:?} after SIGTERM", t.elapsed());
}

#[test]
fn external_neighbors_injected_listed_elected_refused_and_kept_over_reload() {
    let p = Pair::new();
    let mcrd = Mcrd::start(&p.mcr, &p.dir, &pim_config(&p.m(), 1, ""));
    let m = p.m();
    // Alone: we are DR.
    assert!(wait_until(Duration::from_secs(3), || mcrd_dr(&mcrd) == "10.66.0.2"));
    let out = mcrd.ctl_json(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.9",
        "--interface",
        &m,
        "--priority",
        "200",
        "--tag",
        "babel",
    ]);
    assert_eq!(out["changed"], 1);
    // Valid at once: listed and DR without a Hello.
    let n = mcrd_neighbor(&mcrd, "10.66.0.9").expect("injected neighbour listed");
    assert_eq!(n["learned_by"], "injected");
    assert_eq!(n["expires_in_secs"], Value::Null, "never expires");
    assert_eq!(n["dr"], true);
    assert_eq!(n["tag"], "babel");
    assert_eq!(mcrd_dr(&mcrd), "10.66.0.9");
    let table = mcrd.ctl(&["pim", "neighbors"]);
    assert!(
        table.stdout.contains("injected") && table.stdout.contains("DR"),
        "{}",
        table.stdout
    );
    let ext = mcrd.ctl_json(&["pim", "external-neighbors"]);
    assert_eq!(ext["neighbors"][0]["address"], "10.66.0.9");
    assert_eq!(ext["neighbors"][0]["active"], true);
    // Not a PIM interface: refused.
    let bad = mcrd.ctl(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.8",
        "--interface",
        "lo",
    ]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not a PIM interface"), "{}", bad.stderr);
    // Our own address: refused.
    let own = mcrd.ctl(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.2",
        "--interface",
        &m,
    ]);
    assert_eq!(own.code, 1);
    assert!(own.stderr.contains("own addresses"), "{}", own.stderr);
    // A reload that changes our priority keeps it.
    std::fs::write(p.dir.path("mcrd.json5"), pim_config(&m, 250, "")).unwrap();
    mcrd.ctl_json(&["reload"]);
    assert!(
        mcrd_neighbor(&mcrd, "10.66.0.9").is_some(),
        "survived reload"
    );
    assert_eq!(mcrd_dr(&mcrd), "10.66.0.2", "our 250 beats its 200");
    // Remove.
    mcrd.ctl_json(&[
        "pim",
        "remove-neighbor",
        "--address",
        "10.66.0.9",
        "--interface",
        &m,
    ]);
    assert!(mcrd_neighbor(&mcrd, "10.66.0.9").is_none());
    mcrd.ctl_json(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.9",
        "--interface",
        &m,
    ]);
    mcrd.ctl_json(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.7",
        "--interface",
        &m,
    ]);
    let cleared = mcrd.ctl_json(&["pim", "clear-neighbors", "--interface", &m]);
    assert_eq!(cleared["changed"], 2);
    mcrd.ctl_json(&[
        "pim",
        "add-neighbor",
        "--address",
        "10.66.0.9",
        "--interface",
        &m,
    ]);
    // Disabled in the config: refused with a clear error, and no longer used.
    std::fs::write(
        p.dir.path("mcrd.json5"),
        pim_config(
            &m,
            1,
            ", control_plane: { external_neighbors_enabled: false }",
        ),
    )
    .unwrap();
    mcrd.ctl_json(&["reload"]);
    for args in [
        vec![
            "pim",
            "add-neighbor",
            "--address",
            "10.66.0.5",
            "--interface",
            &m,
        ],
        vec!["pim", "clear-neighbors"],
        vec![
            "pim",
            "remove-neighbor",
            "--address",
            "10.66.0.9",
            "--interface",
            &m,
        ],
    ] {
        let r = mcrd.ctl(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("external_neighbors_enabled"),
            "{}",
            r.stderr
        );
        let j = mcrd.ctl(&[&["--json"], args.as_slice()].concat());
        let v: Value = serde_json::from_str(&j.stdout).unwrap();
        assert_eq!(v["error"]["code"], "disabled");
    }
    assert!(
        mcrd_neighbor(&mcrd, "10.66.0.9").is_none(),
        "disabled: not used"
    );
    assert_eq!(mcrd_dr(&mcrd), "10.66.0.2");
}

/// A namespace with two upstream interfaces toward a peer namespace.
struct Upstreams {
    tag: String,
    dir: TempDir,
    relay: Netns,
    _peer: Netns,
}

impl Upstreams {
    fn new() -> Upstreams {
        let tag = unique_tag();
        let relay = Netns::new(format!("{tag}-r"));
        let peer = Netns::new(format!("{tag}-p"));
        veth(
            &relay,
            &format!("{tag}a"),
            "10.61.1.1/24",
            &peer,
            &format!("{tag}A"),
            "10.61.1.2/24",
        );
        veth(
            &relay,
            &format!("{tag}b"),
            "10.61.2.1/24",
            &peer,
            &format!("{tag}B"),
            "10.61.2.2/24",
        );
        Upstreams {
            dir: TempDir::new(&tag),
            tag,
            relay,
            _peer: peer,
        }
    }
    fn a(&self) -> String {
        format!("{}a", self.tag)
    }
    fn b(&self) -> String {
        format!("{}b", self.tag)
    }
}

#[test]
fn kernel_rpf_follows_route_replace_within_100_ms() {
    let u = Upstreams::new();
    u.relay.ip(&[
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        "10.61.1.2",
        "metric",
        "20",
    ]);
    let mcrd = Mcrd::start(
        &u.relay,
        &u.dir,
        "{ control_plane: { rpf_provider: 'kernel' } }",
    );
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.99.1.1"]);
    assert_eq!(q["provider"], "kernel");
    assert_eq!(q["interface"], u.a().as_str(), "{q}");
    assert_eq!(q["neighbor"], "10.61.1.2");
    assert_eq!(q["metric"], 20);
    // Directly connected: no neighbour.
    let c = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.61.2.7"]);
    assert_eq!(c["interface"], u.b().as_str());
    assert_eq!(c["neighbor"], Value::Null);
    let none = mcrd.ctl_json(&["pim", "query-rpf", "--source", "192.0.2.1"]);
    assert_eq!(none["found"], false);
    let sub = Subscriber::start(&mcrd, "pim");
    let mut worst = Duration::ZERO;
    for (via, dev) in [
        ("10.61.2.2", u.b()),
        ("10.61.1.2", u.a()),
        ("10.61.2.2", u.b()),
    ] {
        let t0 = Instant::now();
        u.relay.ip(&[
            "route",
            "replace",
            "10.99.0.0/16",
            "via",
            via,
            "metric",
            "20",
        ]);
        let ip_done = t0.elapsed();
        let (at, ev) = sub
            .wait_for(Duration::from_secs(2), |e| {
                e["event"] == "rpf-change"
                    && e["prefix"] == "10.99.0.0/16"
                    && e["interface"] == dev.as_str()
                    && e["neighbor"] == via
                    && e["metric"] == 20
            })
            .unwrap_or_else(|| panic!("no rpf-change to {dev}: {:?}", sub.all()));
        let took = at.duration_since(t0);
        eprintln!("rpf-change {ev} seen {took:?} after `ip route replace` started (ip itself took {ip_done:?})");
        worst = worst.max(took);
        sub.clear();
    }
    assert!(
        worst < Duration::from_millis(100),
        "kernel RPF change took {worst:?}"
    );
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.99.1.1"]);
    assert_eq!(q["interface"], u.b().as_str());
    // Route deleted: the prefix becomes unreachable.
    u.relay.ip(&["route", "del", "10.99.0.0/16"]);
    assert!(sub
        .wait_for(Duration::from_secs(2), |e| e["event"] == "rpf-change"
            && e["prefix"] == "10.99.0.0/16"
            && e["interface"].is_null())
        .is_some());
    // Static commands are refused with this provider.
    let r = mcrd.ctl(&[
        "pim",
        "add-rpf-route",
        "--source",
        "10.1.0.0/16",
        "--interface",
        "x",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("rpf_provider: \"static\""),
        "{}",
        r.stderr
    );
}

/// The reference provider (docs/examples/rpf-provider.py), killed on drop.
struct Provider {
    child: Option<Child>,
    socket: PathBuf,
    routes: PathBuf,
}

impl Provider {
    fn start(socket: &Path, routes: &Path) -> Provider {
        let _ = std::fs::remove_file(socket);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/rpf-provider.py");
        let child = Command::new("python3")
            .arg(script)
            .arg("--socket")
            .arg(socket)
            .arg("--routes")
            .arg(routes)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 rpf-provider.py");
        assert!(
            wait_until(Duration::from_secs(5), || socket.exists()),
            "provider socket"
        );
        Provider {
            child: Some(child),
            socket: socket.to_path_buf(),
            routes: routes.to_path_buf(),
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn restart(&mut self) {
        self.kill();
        *self = Provider::start(&self.socket.clone(), &self.routes.clone());
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.kill();
    }
}

fn routes_json(iface: &str, metric: u32) -> String {
    format!(
        r#"{{"routes":[{{"prefix":"10.1.0.0/16","upstream_interface":"{iface}","upstream_neighbor":"10.2.0.1","metric":{metric}}}]}}"#
    )
}

fn rpf_state(m: &Mcrd) -> Value {
    m.ctl_json(&["status"])["rpf_provider"].clone()
}

#[test]
fn external_rpf_provider_answers_pushes_and_survives_a_restart() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let ns = Netns::new(format!("{tag}-x"));
    let routes = dir.file("routes.json", &routes_json("veth-peer3", 100));
    let sock = dir.path("rpf.sock");
    let mut provider = Provider::start(&sock, &routes);
    let mcrd = Mcrd::start(
        &ns,
        &dir,
        &format!(
            "{{ control_plane: {{ rpf_provider: \"{}\" }} }}",
            sock.display()
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || rpf_state(&mcrd)["state"] == "up"),
        "{}",
        rpf_state(&mcrd)
    );
    // The seed system's request and answer shapes.
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.0.5"]);
    assert_eq!(q["provider"], "external");
    assert_eq!(q["interface"], "veth-peer3");
    assert_eq!(q["neighbor"], "10.2.0.1");
    assert_eq!(q["metric"], 100);
    let text = mcrd.ctl(&["pim", "query-rpf", "--source", "10.1.0.5"]);
    assert!(
        text.stdout
            .contains("via veth-peer3 neighbor 10.2.0.1 metric 100"),
        "{}",
        text.stdout
    );
    // A push for the prefix: event, cache updated.
    let sub = Subscriber::start(&mcrd, "pim");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&routes, routes_json("eth9", 50)).unwrap();
    sub.wait_for(Duration::from_secs(3), |e| {
        e["event"] == "rpf-change" && e["prefix"] == "10.1.0.0/16" && e["interface"] == "eth9"
    })
    .unwrap_or_else(|| panic!("no push seen: {:?}", sub.all()));
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.0.5"]);
    assert_eq!(q["interface"], "eth9");
    assert_eq!(q["metric"], 50);
    // Killed: status says down; the cache still answers.
    provider.kill();
    assert!(wait_until(Duration::from_secs(5), || rpf_state(&mcrd)
        ["state"]
        == "down"));
    assert!(sub
        .wait_for(Duration::from_secs(2), |e| e["event"] == "rpf-provider"
            && e["state"].as_str().unwrap_or("").starts_with("down"))
        .is_some());
    let status_text = mcrd.ctl(&["status"]).stdout;
    assert!(
        status_text.contains("rpf provider:   external down"),
        "{status_text}"
    );
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.0.5"]);
    assert_eq!(q["interface"], "eth9", "state kept while down");
    let miss = mcrd.ctl(&["--json", "pim", "query-rpf", "--source", "10.1.0.6"]);
    assert_eq!(miss.code, 1);
    assert!(miss.stdout.contains("unavailable"), "{miss:?}");
    // Restarted: mcrd reconnects (backoff at most 5 s) and asks again.
    std::fs::write(&routes, routes_json("eth7", 70)).unwrap();
    provider.restart();
    assert!(
        wait_until(Duration::from_secs(8), || rpf_state(&mcrd)["state"] == "up"),
        "{}",
        rpf_state(&mcrd)
    );
    assert_eq!(rpf_state(&mcrd)["connects"], 2);
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.9.9"]);
    assert_eq!(q["interface"], "eth7");
    assert_eq!(q["metric"], 70);
}

#[test]
fn static_rpf_table_from_file_and_cli() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let ns = Netns::new(format!("{tag}-s"));
    let cfg = "{ control_plane: { rpf_provider: 'static', static_rpf: [ { source: '10.1.0.0/16', interface: 'eth1', neighbor: '10.2.0.1', metric: 100 } ] } }";
    let mcrd = Mcrd::start(&ns, &dir, cfg);
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.2.3"]);
    assert_eq!(q["provider"], "static");
    assert_eq!(q["interface"], "eth1");
    assert_eq!(q["metric"], 100);
    let sub = Subscriber::start(&mcrd, "pim");
    let added = mcrd.ctl_json(&[
        "pim",
        "add-rpf-route",
        "--source",
        "10.1.2.0/24",
        "--interface",
        "eth2",
        "--neighbor",
        "10.3.0.1",
        "--metric",
        "5",
    ]);
    assert_eq!(added["routes"].as_array().unwrap().len(), 2);
    assert!(sub
        .wait_for(Duration::from_secs(2), |e| e["event"] == "rpf-change"
            && e["prefix"] == "10.1.2.0/24"
            && e["interface"] == "eth2")
        .is_some());
    let q = mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.2.3"]);
    assert_eq!(q["interface"], "eth2", "longest prefix wins");
    let list = mcrd.ctl(&["pim", "list-rpf-routes"]).stdout;
    assert!(
        list.contains("10.1.0.0/16") && list.contains("config"),
        "{list}"
    );
    assert!(
        list.contains("10.1.2.0/24") && list.contains("runtime"),
        "{list}"
    );
    let bad = mcrd.ctl(&[
        "pim",
        "add-rpf-route",
        "--source",
        "10.1.2.3/24",
        "--interface",
        "eth2",
    ]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("host bits zero"), "{}", bad.stderr);
    mcrd.ctl_json(&["pim", "remove-rpf-route", "--source", "10.1.2.0/24"]);
    assert_eq!(
        mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.2.3"])["interface"],
        "eth1"
    );
    let gone = mcrd.ctl(&["pim", "remove-rpf-route", "--source", "10.1.2.0/24"]);
    assert_eq!(gone.code, 1);
    let cleared = mcrd.ctl_json(&["pim", "clear-rpf-routes"]);
    assert_eq!(cleared["changed"], 1);
    assert_eq!(
        mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.2.3"])["found"],
        false
    );
    // A reload restores the file's table.
    mcrd.ctl_json(&["reload"]);
    assert_eq!(
        mcrd.ctl_json(&["pim", "query-rpf", "--source", "10.1.2.3"])["interface"],
        "eth1"
    );
}

/// Hostile PIM from a neighbour's namespace: raw IPv4 packets with forged
/// sources (IP_HDRINCL), sent by python3 (standard library only).
const HOSTILE_PY: &str = r#"
import socket, struct, sys, time
dev, kind = sys.argv[1], sys.argv[2]
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def pim(body, typ=0, ver=2, good=True):
    m = bytes([(ver << 4) | typ, 0, 0, 0]) + body
    c = csum(m) if good else 0x1234
    return m[:2] + struct.pack("!H", c) + m[4:]
def hello(hold, gen):
    return struct.pack("!HHH", 1, 2, hold) + struct.pack("!HHI", 19, 4, 1) + struct.pack("!HHI", 20, 4, gen)
def ip(src, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0xc0, 20 + len(payload), 0, 0, 1, 103, 0,
                    socket.inet_aton(src), socket.inet_aton("224.0.0.13"))
    return h + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
send = lambda src, p: s.sendto(ip(src, p), ("224.0.0.13", 0))
if kind == "malformed":
    send("10.80.0.9", pim(hello(105, 7)[:-2]))                               # truncated option
    send("10.80.0.9", pim(hello(105, 7), good=False))                        # bad checksum
    send("10.80.0.9", pim(hello(105, 7), ver=3))                             # wrong version
    send("10.80.0.9", pim(struct.pack("!HH", 1, 200) + b"\0\x69"))           # option length past the packet
    send("10.80.0.9", b"\x20")                                               # shorter than a header
    send("192.0.2.1", pim(hello(105, 7)))                                    # not on the subnet
else:
    n = int(kind)
    for i in range(n):
        a = 0x0A500000 + 256 + i
        send(socket.inet_ntoa(struct.pack("!I", a)), pim(hello(105, i)))
        if i % 200 == 199: time.sleep(0.02)
"#;

#[test]
fn hostile_pim_is_counted_bounded_and_forwarding_is_unaffected() {
    let t = Topo::new(1);
    // A /16 on the PIM link so 10,000 forged neighbours are all on-subnet.
    t.src.ip(&["addr", "add", "10.80.0.1/16", "dev", &t.g()]);
    t.relay.ip(&["addr", "add", "10.80.0.2/16", "dev", &t.i()]);
    let cfg = t.one_rule("fwd").replacen(
        "{",
        &format!(
            "{{ pim: {{ enabled: true, interfaces: [ {{ name: \"{}\" }} ] }},",
            t.i()
        ),
        1,
    );
    let mcrd = t.mcrd(&cfg);
    let script = t.dir.file("hostile.py", HOSTILE_PY);
    let run_py = |kind: &str| {
        let out = t
            .src
            .exec(&["python3", script.to_str().unwrap(), &t.g(), kind]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let counters = || mcrd.ctl_json(&["pim", "interfaces"])["interfaces"][0].clone();
    run_py("malformed");
    assert!(wait_until(Duration::from_secs(3), || counters()
        ["counters"]["wrong_subnet"]
        == 1));
    let c = counters()["counters"].clone();
    assert_eq!(
        c["truncated"], 3,
        "truncated option, option past the packet, short: {c}"
    );
    assert_eq!(c["bad_checksum"], 1, "{c}");
    assert_eq!(c["bad_version"], 1, "{c}");
    assert_eq!(counters()["neighbors"], 0);
    // 10,000 Hellos from distinct addresses: the table stops at its bound.
    run_py("10000");
    // A bound on a stall, not a speed test: on 2 busy cores beside the
    // other tests of this file the 10,000 Hellos took just over 10 s once.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let c = counters();
            c["neighbors"].as_u64().unwrap_or(0)
                + c["counters"]["neighbor_table_full"].as_u64().unwrap_or(0)
                >= 10_000
        }),
        "{}",
        counters()
    );
    let c = counters();
    eprintln!(
        "after the flood: {} neighbours, {} refused (table full)",
        c["neighbors"], c["counters"]["neighbor_table_full"]
    );
    assert_eq!(c["neighbors"], 1024, "bounded table");
    assert_eq!(c["counters"]["neighbor_table_full"], 10_000 - 1024);
    // Forwarding unaffected.
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "5000", "--count", "5000", "--size", "200"],
    );
    assert_exact(&l.finish(), 5000);
    assert_eq!(
        mcrd.ctl_json(&["status"])["protocols"]["pim"]["running"],
        true
    );
}
