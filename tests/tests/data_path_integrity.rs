//! Issue 14: what leaves mcr is what a correct relay would send, both data
//! paths judge input alike, and counters are facts about the wire.
//! Malformed and odd frames are built with scapy (`tests/py/frames.py`) and
//! injected with a raw socket; what the sink receives is captured with a
//! raw socket too, so checksums and lengths are seen as on the wire.

use mcr_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

const PY: &str = "/usr/bin/python3";

fn frames_py() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/py/frames.py").to_string()
}

/// A raw-socket capture of the UDP frames to (group, port) on a sink.
struct Sink {
    child: Child,
}

impl Sink {
    fn start(ns: &Netns, iface: &str, group: &str, port: u16, idle: f64) -> Sink {
        let mut child = ns
            .command(std::path::Path::new(PY))
            .args([
                frames_py().as_str(),
                "sink",
                iface,
                group,
                &port.to_string(),
                &idle.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Sink { child }
    }

    /// Every frame captured, once the sender is done (closing the sink's
    /// stdin) and the sink has been idle for its timeout.
    fn finish(mut self) -> Vec<Value> {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn count_kinds(frames: &[Value]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for f in frames {
        *m.entry(f["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// Waits until the engines' frame count stops moving, then `mcrctl stats`.
fn settled_stats(mcrd: &Mcrd) -> Value {
    let mut last = u64::MAX;
    let mut stats = Value::Null;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        stats = mcrd.ctl_json(&["stats"]);
        let now = engine_frames(&stats);
        if now == last {
            break;
        }
        last = now;
    }
    stats
}

fn set_mtu(ns: &Netns, iface: &str, mtu: &str) {
    ns.ip(&["link", "set", iface, "mtu", mtu]);
}

/// What one path did with the corpus: the frames the sink received and
/// the drop counters.
struct Outcome {
    received: Vec<Value>,
    drops: Value,
    rule_packets: u64,
    output_packets: u64,
}

/// The malformed-frame corpus (3 of each kind) through one path: the
/// kernel fast path, or the engines reading a receive queue (`ring` 0) or
/// a receive ring of `ring` slots.
fn run_corpus(fast: bool, ring: u32) -> Outcome {
    let t = Topo::new(1);
    // Room on every link for the frame past the engines' 9,216-byte
    // limit (and the output as large as the input, so the rule stays
    // eligible for the fast path).
    set_mtu(&t.src, &t.g(), "9600");
    set_mtu(&t.relay, &t.i(), "9600");
    set_mtu(&t.relay, &t.o(0), "9600");
    set_mtu(&t.sinks[0], &t.s(0), "9600");
    let cfg = if ring > 0 {
        engines_with_ring(&t.one_rule("k"), ring)
    } else {
        with_path(&t.one_rule("k"), fast)
    };
    let mcrd = t.mcrd(&cfg);
    assert_on_path(&mcrd, fast, 1);
    let status = mcrd.ctl_json(&["status"]);
    if ring > 0 {
        // One engine per CPU, each with its own socket and ring; slots
        // for this 9,600-byte MTU (9,696 bytes each, 6 to a 64 KiB block).
        let r = &status["receive_ring"];
        let sockets = r["sockets"].as_u64().unwrap_or(0);
        assert!(sockets >= 1, "{status:#}");
        assert_eq!(
            r["slots"].as_u64(),
            Some(ring.next_multiple_of(6) as u64),
            "{status:#}"
        );
        assert_eq!(
            r["bytes"].as_u64(),
            Some(sockets * (ring as u64).div_ceil(6) * 65536),
            "{status:#}"
        );
    } else {
        assert!(status.get("receive_ring").is_none(), "{status:#}");
    }
    let sink = Sink::start(&t.sinks[0], &t.s(0), "239.2.2.2", 6000, 2.5);
    let mac = t.src.net_attr(&t.g(), "address");
    let out = t.src.exec(&[
        PY,
        &frames_py(),
        "corpus",
        &t.g(),
        &mac,
        "239.1.1.1",
        "5000",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    let received = sink.finish();
    let stats = settled_stats(&mcrd);
    let r = &stats["rules"][0];
    Outcome {
        received,
        drops: stats["drops"].clone(),
        rule_packets: r["packets"].as_u64().unwrap(),
        output_packets: r["outputs"][0]["packets"].as_u64().unwrap(),
    }
}

fn check_outcome(o: &Outcome, path: &str) {
    let kinds = count_kinds(&o.received);
    let want: BTreeMap<String, u64> = [("valid", 3), ("csum0", 3), ("trailing", 3), ("vlan0", 3)]
        .into_iter()
        .chain([("options", 3)])
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    assert_eq!(kinds, want, "{path}: relayed kinds");
    for f in &o.received {
        assert_eq!(f["ip_checksum_ok"], true, "{path}: {f}");
        assert_eq!(f["udp_checksum_ok"], true, "{path}: {f}");
        // Nothing past the IP total length is copied onto the output.
        assert_eq!(
            f["frame_len"].as_u64().unwrap(),
            14 + f["ip_total_len"].as_u64().unwrap(),
            "{path}: {f}"
        );
        if f["kind"] == "csum0" {
            assert_eq!(f["udp_checksum"], 0, "{path}: {f}");
        } else {
            // A verified checksum is carried (updated by difference).
            assert_ne!(f["udp_checksum"], 0, "{path}: {f}");
        }
    }
    assert_eq!(o.rule_packets, 15, "{path}");
    assert_eq!(o.output_packets, 15, "{path}");
    let d = &o.drops;
    for (reason, n) in [
        ("udp_checksum", 3),
        ("ip_checksum", 3),
        ("udp_length", 9),
        ("truncated", 3),
        ("oversize", 3),
        ("ttl_zero", 3),
        ("martian_source", 12),
        ("vlan", 3),
        ("fragment", 3),
        ("not_for_host", 3),
        ("no_rule", 0),
        ("output_error", 0),
    ] {
        assert_eq!(d[reason], n, "{path}: drops.{reason}: {d:#}");
    }
}

/// The same corpus of malformed frames through each path: the same
/// datagrams relayed (count and payload hashes at the receiver, both
/// checksums right, nothing after the IP total length), the same drop
/// reasons counted.
#[test]
fn malformed_corpus_is_judged_alike_on_both_paths() {
    let fast = run_corpus(true, 0);
    check_outcome(&fast, "fast path");
    let engines = run_corpus(false, 0);
    check_outcome(&engines, "engines");
    let ring = run_corpus(false, 100);
    check_outcome(&ring, "engines, receive ring");
    let hashes = |o: &Outcome| {
        let mut v: Vec<String> = o
            .received
            .iter()
            .map(|f| f["payload_sha"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(hashes(&fast), hashes(&engines));
    assert_eq!(hashes(&ring), hashes(&engines));
    let strip = |d: &Value| {
        let mut d = d.clone();
        for k in ["capture_overflow", "no_buffer", "output_full"] {
            d.as_object_mut().unwrap().remove(k);
        }
        d
    };
    assert_eq!(strip(&fast.drops), strip(&engines.drops));
    assert_eq!(strip(&ring.drops), strip(&engines.drops));
}

/// Issue 14 item 1: frames tagged with a VLAN are not the parent
/// interface's input (the kernel moves the tag to metadata before tc and
/// packet sockets), with the veth's VLAN offload on and off; VLAN 0 is
/// untagged traffic.
fn vlan_frames_are_not_the_parents_input(fast: bool) {
    let t = Topo::new(1);
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "v",
            &t.i(),
            "239.1.1.2",
            5001,
            &[output(&t.o(0), "239.1.1.2", 5001)]
        )
    );
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    assert_on_path(&mcrd, fast, 1);
    let mac = t.src.net_attr(&t.g(), "address");
    let mut expected_vlan = 0;
    for offload in ["on", "off"] {
        // Not every kernel lets veth's VLAN offloads change; the tag is
        // moved to metadata in the receive path either way.
        let _ = t.src.exec(&["ethtool", "-K", &t.g(), "txvlan", offload]);
        let _ = t.relay.exec(&["ethtool", "-K", &t.i(), "rxvlan", offload]);
        // A feature change may bounce the link; let it settle.
        std::thread::sleep(Duration::from_secs(1));
        let sink = Sink::start(&t.sinks[0], &t.s(0), "239.1.1.2", 5001, 2.5);
        let out = t.src.exec(&[
            PY,
            &frames_py(),
            "vlan",
            &t.g(),
            &mac,
            "239.1.1.2",
            "5001",
            "10:4,20:4,0:2",
        ]);
        assert!(out.status.success(), "{out:?}");
        expected_vlan += 8;
        let got = sink.finish();
        // Only the priority-tagged (VLAN 0) frames are relayed.
        assert_eq!(got.len(), 2, "offload {offload}: {got:?}");
        assert!(got.iter().all(|f| f["kind"] == "vlan0"), "{got:?}");
        let stats = settled_stats(&mcrd);
        assert_eq!(stats["drops"]["vlan"], expected_vlan, "{stats:#}");
    }
    let stats = mcrd.ctl_json(&["stats"]);
    assert_eq!(stats["rules"][0]["packets"], 4, "{stats:#}");
    assert_eq!(stats["rules"][0]["outputs"][0]["packets"], 4, "{stats:#}");
}

#[test]
fn vlan_frames_are_not_the_parents_input_fast_path() {
    vlan_frames_are_not_the_parents_input(true);
}

#[test]
fn vlan_frames_are_not_the_parents_input_engines() {
    vlan_frames_are_not_the_parents_input(false);
}

/// A tun device held open by a Python process in `ns`.
struct Tun {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Tun {
    fn open(ns: &Netns, name: &str, decoy: bool) -> Tun {
        let mut args = vec![frames_py(), "tun".into(), name.into()];
        args.extend(["239.1.1.1".into(), "5000".into(), "20".into()]);
        if decoy {
            args.push("decoy".into());
        }
        let mut child = ns
            .command(std::path::Path::new(PY))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        Tun { child, lines }
    }

    fn send(&mut self) {
        writeln!(self.child.stdin.as_mut().unwrap(), "go").unwrap();
        assert_eq!(self.lines.next().unwrap().unwrap(), "sent");
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Issue 14 item 2: a tun device (no Ethernet header, ARPHRD_NONE) as an
/// input. Datagrams written into it are relayed, read at the network
/// header; a packet that would look like a datagram to the rule if read at
/// an Ethernet offset is not; the rule is never on the fast path (whatever
/// the setting), and nothing is counted that did not happen.
fn tun_input(fast: bool) {
    let t = Topo::new(1);
    let tun = format!("{}t", t.tag);
    let mut good = Tun::open(&t.relay, &tun, false);
    t.relay.ip(&["link", "set", &tun, "up"]);
    t.relay.ip(&["addr", "add", "10.90.0.1/24", "dev", &tun]);
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "t",
            &tun,
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.2", 6000)]
        )
    );
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    // Never on the fast path: the program reads Ethernet frames.
    assert_on_path(&mcrd, false, 1);
    let list = mcrd.ctl_json(&["list"]);
    let entry = &list["rules"][0];
    assert_eq!(entry["state"], "active", "{list:#}");
    assert_eq!(entry["path"], "engines", "{list:#}");
    if fast {
        assert!(
            entry["path_reason"]
                .as_str()
                .unwrap()
                .contains("no Ethernet header"),
            "{list:#}"
        );
    }

    let sink = Sink::start(&t.sinks[0], &t.s(0), "239.2.2.2", 6000, 1.5);
    good.send();
    let got = sink.finish();
    assert_eq!(got.len(), 20, "{got:?}");
    assert!(got.iter().all(|f| f["kind"] == "tun"), "{got:?}");
    assert!(got.iter().all(|f| f["udp_checksum_ok"] == true));
    drop(good);

    // The decoy: a tun with the same name again (the interface is
    // re-created), whose packets read at an Ethernet offset would match.
    let mut decoy = Tun::open(&t.relay, &tun, true);
    t.relay.ip(&["link", "set", &tun, "up"]);
    t.relay.ip(&["addr", "add", "10.90.0.1/24", "dev", &tun]);
    assert!(wait_until(Duration::from_secs(5), || {
        mcrd.ctl_json(&["list"])["rules"][0]["state"] == "active"
    }));
    std::thread::sleep(Duration::from_millis(500));
    let sink = Sink::start(&t.sinks[0], &t.s(0), "239.2.2.2", 6000, 1.5);
    decoy.send();
    let got = sink.finish();
    assert!(got.is_empty(), "decoy relayed: {got:?}");
    drop(decoy);

    // Control: the same re-creation and wait, then good datagrams. They must
    // arrive, so the decoy's silence above was the parser's doing, not a
    // capture that was not up yet.
    let mut again = Tun::open(&t.relay, &tun, false);
    t.relay.ip(&["link", "set", &tun, "up"]);
    t.relay.ip(&["addr", "add", "10.90.0.1/24", "dev", &tun]);
    assert!(wait_until(Duration::from_secs(5), || {
        mcrd.ctl_json(&["list"])["rules"][0]["state"] == "active"
    }));
    std::thread::sleep(Duration::from_millis(500));
    let sink = Sink::start(&t.sinks[0], &t.s(0), "239.2.2.2", 6000, 1.5);
    again.send();
    let got = sink.finish();
    assert_eq!(got.len(), 20, "after re-creation: {got:?}");
    let stats = settled_stats(&mcrd);
    let r = &stats["rules"][0];
    // Counters carry on across two re-creations and count nothing for the
    // decoy: 40, not 20 (reset), 60 (decoy counted) or anything else.
    assert_eq!(r["packets"], 40, "{stats:#}");
    assert_eq!(r["outputs"][0]["packets"], 40, "{stats:#}");
    assert_eq!(r["outputs"][0]["errors"], 0, "{stats:#}");
}

#[test]
fn tun_input_fast_path_setting() {
    tun_input(true);
}

#[test]
fn tun_input_engines() {
    tun_input(false);
}

/// Issue 14 item 4: `ttl: "decrement"` sends each datagram with its
/// input's TTL less one and stops at TTL 1 (counted `ttl_expired`), on
/// both paths; a directed-broadcast output (the output subnet's broadcast
/// address) is sent (SO_BROADCAST) instead of failing every send.
fn ttl_decrement_and_directed_broadcast(fast: bool) {
    let t = Topo::new(2);
    let cfg = format!(
        "{{ rules: [ {}, {} ] }}",
        rule(
            "dec",
            &t.i(),
            "239.1.1.1",
            5000,
            &[format!(
                "{{ interface: \"{}\", group: \"239.2.2.2\", port: 6000, ttl: \"decrement\" }}",
                t.o(0)
            )]
        ),
        rule(
            "bcast",
            &t.i(),
            "239.1.1.1",
            5001,
            &[output(&t.o(1), "10.78.1.255", 6001)]
        ),
    );
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    // The broadcast output is unicast-like: that rule is the engines'.
    assert_on_path(&mcrd, fast, 1);

    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--ttl", "9", "--count", "200", "--rate", "5000"],
    );
    let got = l.finish();
    assert_exact(&got, 200);
    assert_eq!(got["total"]["ttl_min"], 8, "{got:#}");
    assert_eq!(got["total"]["ttl_max"], 8, "{got:#}");

    let sink = Sink::start(&t.sinks[0], &t.s(0), "239.2.2.2", 6000, 1.0);
    t.send(
        "239.1.1.1",
        5000,
        &["--ttl", "1", "--count", "50", "--rate", "5000"],
    );
    assert!(sink.finish().is_empty());
    let stats = settled_stats(&mcrd);
    assert_eq!(stats["drops"]["ttl_expired"], 50, "{stats:#}");

    let sink = Sink::start(&t.sinks[1], &t.s(1), "10.78.1.255", 6001, 1.0);
    t.send("239.1.1.1", 5001, &["--count", "100", "--rate", "5000"]);
    let got = sink.finish();
    assert_eq!(got.len(), 100, "{got:?}");
    let stats = settled_stats(&mcrd);
    let b = stats["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "bcast")
        .unwrap()
        .clone();
    assert_eq!(b["outputs"][0]["packets"], 100, "{stats:#}");
    assert_eq!(b["outputs"][0]["errors"], 0, "{stats:#}");
}

#[test]
fn ttl_decrement_and_directed_broadcast_fast_path() {
    ttl_decrement_and_directed_broadcast(true);
}

#[test]
fn ttl_decrement_and_directed_broadcast_engines() {
    ttl_decrement_and_directed_broadcast(false);
}

/// Issue 14 item 4: a second mcrd in the same network namespace with a
/// rule on the same input interface says so (log and `status`), on both
/// paths; the first one is not affected.
fn second_instance_is_reported(fast: bool) {
    let t = Topo::new(1);
    let cfg = with_path(&t.one_rule("k"), fast);
    let first = t.mcrd(&cfg);
    let mut second = Mcrd::spawn(&t.relay, &t.dir, "second", &cfg, &[]);
    second.wait_log("mcrd ready", Duration::from_secs(10));
    let s = second.ctl_json(&["status"]);
    assert_eq!(s["shared_inputs"][0], t.i(), "{s:#}");
    assert!(
        second
            .log_text()
            .contains("another mcrd in this network namespace already relays input"),
        "{}",
        second.log_text()
    );
    let s = first.ctl_json(&["status"]);
    assert!(s.get("shared_inputs").is_none(), "{s:#}");
}

#[test]
fn second_instance_is_reported_fast_path() {
    second_instance_is_reported(true);
}

#[test]
fn second_instance_is_reported_engines() {
    second_instance_is_reported(false);
}

/// Issue 14 item 6: `mcrctl list` names each rule's data path (and why
/// not the fast path), a rule kept off the fast path is logged, a reload
/// that turns the fast path off is logged, and an output interface without
/// its IPv4 address yet waits for it instead of counting output errors.
#[test]
fn path_changes_are_told() {
    let t = Topo::new(2);
    t.relay.ip(&["addr", "flush", "dev", &t.o(1)]);
    let rules = [
        rule(
            "k",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.2", 6000)],
        ),
        rule(
            "u",
            &t.i(),
            "239.1.1.1",
            5001,
            &[output(&t.o(0), "10.78.0.2", 6001)],
        ),
        rule(
            "w",
            &t.i(),
            "239.1.1.1",
            5002,
            &[output(&t.o(1), "239.2.2.4", 6002)],
        ),
    ];
    let cfg = format!("{{ rules: [ {} ] }}", rules.join(", "));
    let mut mcrd = t.mcrd(&cfg);
    let entry = |m: &Mcrd, id: &str| {
        m.ctl_json(&["list"])["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    let k = entry(&mcrd, "k");
    assert_eq!(k["path"], "fast", "{k:#}");
    assert!(k.get("path_reason").is_none(), "{k:#}");
    let u = entry(&mcrd, "u");
    assert_eq!(u["path"], "engines", "{u:#}");
    assert!(
        u["path_reason"].as_str().unwrap().contains("unicast"),
        "{u:#}"
    );
    mcrd.wait_log("rule kept off the kernel fast path", Duration::from_secs(3));
    let logged = log_fields(&mcrd.log_text(), "rule kept off the kernel fast path");
    assert!(logged
        .iter()
        .any(|f| f.get("rule").map(String::as_str) == Some("u")));

    // No address on w's output yet: it waits, nothing is counted as an error.
    let w = entry(&mcrd, "w");
    assert_eq!(w["state"], "inactive", "{w:#}");
    assert!(
        w["reason"]
            .as_str()
            .unwrap()
            .contains("no IPv4 address yet"),
        "{w:#}"
    );
    t.send("239.1.1.1", 5002, &["--count", "20", "--rate", "2000"]);
    let stats = settled_stats(&mcrd);
    assert_eq!(stats["drops"]["output_error"], 0, "{stats:#}");
    t.relay.ip(&["addr", "add", "10.78.1.1/24", "dev", &t.o(1)]);
    assert!(wait_until(Duration::from_secs(5), || entry(&mcrd, "w")
        ["state"]
        == "active"));
    let l = t.listen(1, "239.2.2.4", 6002, &["--idle-timeout", "1.5"]);
    t.send("239.1.1.1", 5002, &["--count", "20", "--rate", "2000"]);
    assert_exact(&l.finish(), 20);

    // A reload that turns the fast path off says so.
    std::fs::write(t.dir.path("mcrd.json5"), engines_only(&cfg)).unwrap();
    let r = mcrd.ctl(&["reload"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    mcrd.wait_log(
        "kernel fast path off: the configuration turned it off",
        Duration::from_secs(3),
    );
    let k = entry(&mcrd, "k");
    assert_eq!(k["path"], "engines", "{k:#}");
    assert!(
        k["path_reason"]
            .as_str()
            .unwrap()
            .contains("kernel_fast_path: false"),
        "{k:#}"
    );
}
