//! The kernel fast path: eligible rules are forwarded by a tc ingress
//! program, byte-exact with correct headers and counters; what it leaves
//! (IP options, unicast outputs) goes through the engines; switching it off
//! and on by reload loses nothing.

use mcr_tests::*;
use serde_json::Value;
use std::time::Duration;

/// `mcrctl stats` once the engines have counted `frames` frames (they
/// publish counters every 100 ms), or after 3 s.
fn stats_once_engines_saw(mcrd: &Mcrd, frames: u64) -> Value {
    let mut stats = Value::Null;
    wait_until(Duration::from_secs(3), || {
        stats = mcrd.ctl_json(&["stats"]);
        engine_frames(&stats) >= frames
    });
    stats
}

/// A Python helper: `send` writes raw frames on an interface, `recv` prints
/// `ready` once bound, then the first UDP frame to `group` as JSON (headers,
/// checksum verdicts).
const FRAMES_PY: &str = r#"
import json, socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def udp_sum(src, dst, udp):
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, len(udp))
    return csum(ph + udp)
def frame(src, dst, dport, payload, options=b""):
    udp = struct.pack("!HHHH", 4321, dport, 8 + len(payload), 0) + payload
    c = udp_sum(src, dst, udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ihl = 5 + len(options) // 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(udp), 7, 0, 9, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst)) + options
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    g = socket.inet_aton(dst)
    mac = bytes([1, 0, 0x5e, g[1] & 0x7f, g[2], g[3]])
    return mac + bytes.fromhex("020000000001") + b"\x08\x00" + ip + udp
mode, iface = sys.argv[1], sys.argv[2]
if mode == "send":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src, dst, dport, n = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    options = bytes.fromhex(sys.argv[7]) if len(sys.argv) > 7 else b""
    for i in range(n):
        s.send(frame(src, dst, dport, b"checksum-test-%04d" % i, options))
else:
    group = sys.argv[3]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((iface, 0))
    s.settimeout(5)
    print("ready")
    sys.stdout.flush()
    while True:
        f = s.recv(4000)
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or socket.inet_ntoa(ip[16:20]) != group:
            continue
        udp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
        src = socket.inet_ntoa(ip[12:16])
        print(json.dumps({
            "dst_mac": f[:6].hex(), "src_mac": f[6:12].hex(), "src": src,
            "ttl": ip[8], "ihl": ihl, "ip_checksum_ok": csum(ip[:ihl]) == 0,
            "udp_checksum": struct.unpack("!H", udp[6:8])[0],
            "udp_checksum_ok": udp_sum(src, group, udp) == 0,
            "sport": struct.unpack("!H", udp[0:2])[0], "dport": struct.unpack("!H", udp[2:4])[0],
            "payload": udp[8:].decode(),
        }))
        sys.stdout.flush()
        break
"#;

fn mac_of(ns: &Netns, iface: &str) -> String {
    ns.net_attr(iface, "address").replace(':', "")
}

/// Sends `n` raw frames from the generator side and returns what the sink
/// captured first (None when nothing arrived).
fn raw_roundtrip(
    t: &Topo,
    group_in: &str,
    port: u16,
    group_out: &str,
    options: &str,
) -> Option<Value> {
    let script = t.dir.file("frames.py", FRAMES_PY);
    let script = script.to_str().unwrap().to_string();
    let mut sink = t.sinks[0]
        .command(std::path::Path::new("python3"))
        .args([script.as_str(), "recv", &t.s(0), group_out])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    // Send only once the receiver's socket is bound.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        sink.stdout.take().expect("piped stdout"),
    ));
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let mut args = vec![
        "python3".to_string(),
        script.clone(),
        "send".into(),
        t.g(),
        "10.77.0.1".into(),
        group_in.into(),
        port.to_string(),
        "3".into(),
    ];
    if !options.is_empty() {
        args.push(options.into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = t.src.exec(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = lines
        .next()
        .and_then(Result::ok)
        .map(|l| serde_json::from_str(&l).unwrap());
    sink.wait().unwrap();
    frame
}

/// A config with one rule, "k": (239.1.1.1, 5000) on the input to `out`.
fn rule_k(t: &Topo, out: String) -> String {
    format!(
        "{{ rules: [ {} ] }}",
        rule("k", &t.i(), "239.1.1.1", 5000, &[out])
    )
}

#[test]
fn eligible_rule_is_forwarded_in_the_kernel_with_correct_headers() {
    let t = Topo::new(1);
    let cfg = rule_k(
        &t,
        format!(
            "{{ interface: \"{}\", group: \"239.2.2.200\", port: 6000, ttl: 7 }}",
            t.o(0)
        ),
    );
    let mut mcrd = t.mcrd(&cfg);
    let status = mcrd.ctl_json(&["status"]);
    assert_eq!(status["kernel_fast_path"]["enabled"], true, "{status:#}");
    assert_eq!(status["kernel_fast_path"]["rules"], 1, "{status:#}");
    assert_eq!(
        status["kernel_fast_path"]["interfaces"][0],
        t.i(),
        "{status:#}"
    );

    let l = t.listen(0, "239.2.2.200", 6000, &["--idle-timeout", "1.5"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "20000", "--count", "40000", "--size", "700"],
    );
    let got = l.finish();
    assert_exact(&got, 40_000);
    assert_eq!(got["total"]["ttl_min"], 7);
    assert_eq!(got["total"]["ttl_max"], 7);
    let stats = mcrd.ctl_json(&["stats"]);
    // The kernel did it: no frame reached an engine.
    assert_eq!(engine_frames(&stats), 0, "{stats:#}");
    let r = &stats["rules"][0];
    assert_eq!(r["packets"], 40_000, "{stats:#}");
    assert_eq!(r["bytes"], 40_000 * 700, "{stats:#}");
    assert_eq!(r["outputs"][0]["packets"], 40_000, "{stats:#}");
    assert_eq!(r["outputs"][0]["errors"], 0, "{stats:#}");

    // A datagram with a real UDP checksum leaves with both checksums right
    // and the output's MACs, source address and TTL.
    let f = raw_roundtrip(&t, "239.1.1.1", 5000, "239.2.2.200", "").expect("relayed frame");
    assert_eq!(f["dst_mac"], "01005e0202c8", "{f:#}");
    assert_eq!(f["src_mac"], mac_of(&t.relay, &t.o(0)), "{f:#}");
    assert_eq!(f["src"], "10.78.0.1", "{f:#}");
    assert_eq!(f["ttl"], 7, "{f:#}");
    assert_eq!(f["sport"], 4321, "{f:#}");
    assert_eq!(f["dport"], 6000, "{f:#}");
    assert_eq!(f["ip_checksum_ok"], true, "{f:#}");
    assert_eq!(f["udp_checksum_ok"], true, "{f:#}");
    assert_ne!(f["udp_checksum"], 0, "{f:#}");
    assert!(f["payload"].as_str().unwrap().starts_with("checksum-test-"));
    let (_, status) = mcrd.stop();
    assert!(status.success());
    assert_eq!(final_rule_packets(&mcrd, "k"), 40_003);
}

#[test]
fn ip_options_and_unicast_outputs_go_through_the_engines() {
    let t = Topo::new(1);
    let cfg = format!(
        "{{ rules: [ {}, {} ] }}",
        rule(
            "m",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.2", 6000)]
        ),
        rule(
            "u",
            &t.i(),
            "239.1.1.3",
            5000,
            &[output(&t.o(0), "10.78.0.2", 7000)]
        )
    );
    let mcrd = t.mcrd(&cfg);
    let status = mcrd.ctl_json(&["status"]);
    assert_eq!(status["kernel_fast_path"]["rules"], 1, "{status:#}");
    // Router-alert option (4 bytes): the engine relays it, without options.
    let f = raw_roundtrip(&t, "239.1.1.1", 5000, "239.2.2.2", "94040000").expect("relayed");
    assert_eq!(f["ihl"], 20, "{f:#}");
    assert_eq!(f["ip_checksum_ok"], true, "{f:#}");
    assert!(f["payload"].as_str().unwrap().starts_with("checksum-test-"));
    let stats = stats_once_engines_saw(&mcrd, 3);
    assert_eq!(engine_frames(&stats), 3, "{stats:#}");
    // The unicast rule stays with the engines.
    let l = t.listen(0, "10.78.0.2", 7000, &["--idle-timeout", "1.5"]);
    t.send("239.1.1.3", 5000, &["--rate", "10000", "--count", "5000"]);
    assert_exact(&l.finish(), 5000);
    let stats = stats_once_engines_saw(&mcrd, 5003);
    assert_eq!(engine_frames(&stats), 5003, "{stats:#}");
}

/// Reloads that move a rule between the kernel and the engines under
/// traffic: nothing is lost or sent twice (the program swap is the move;
/// frames the program forwards never reach the engines). Packets the engines
/// still had queued when the kernel took over may arrive after newer ones,
/// so order is not asserted.
#[test]
fn switching_the_fast_path_by_reload_loses_nothing() {
    let t = Topo::new(1);
    let on = t.one_rule("sw");
    let off = engines_only(&on);
    let mcrd = t.mcrd(&on);
    let cfg_path = t.dir.path("mcrd.json5");
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "2"]);
    let sender = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.1",
        5000,
        &["--rate", "20000", "--count", "80000"],
    );
    for i in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        std::fs::write(&cfg_path, if i % 2 == 0 { &off } else { &on }).unwrap();
        let r = mcrd.ctl_json(&["reload"]);
        assert_eq!(r["sections_changed"][0], "data_plane", "{r:#}");
        let s = mcrd.ctl_json(&["status"]);
        let fast = s["kernel_fast_path"]["rules"].as_u64().unwrap();
        assert_eq!(fast, if i % 2 == 0 { 0 } else { 1 }, "{s:#}");
    }
    let sent = sender.finish();
    assert_eq!(sent["sent"], 80_000);
    let got = l.finish();
    assert_eq!(total(&got, "lost"), 0, "{got:#}");
    assert_eq!(total(&got, "duplicates"), 0, "{got:#}");
    // Both paths carried part of it, and the rule's count is whole.
    let stats = mcrd.ctl_json(&["stats"]);
    let engines = engine_frames(&stats);
    assert!(engines > 0 && engines < 80_000, "{stats:#}");
    assert_eq!(stats["rules"][0]["packets"], 80_000, "{stats:#}");
    assert_eq!(total(&got, "corrupted"), 0, "{got:#}");
    assert_eq!(total(&got, "received"), 80_000, "{got:#}");
}

/// The table generation every engine runs (they all show the same once a
/// change has been taken; the fast path is applied before that).
fn table_generation(mcrd: &Mcrd) -> u64 {
    let cores = mcrd.ctl_json(&["cores"]);
    cores["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["table_generation"].as_u64().unwrap())
        .min()
        .unwrap()
}

/// An input interface deleted and created again under the same index (a
/// script re-creating a veth, a container restarted): the program attached
/// to the old interface went with it, and the fast path attaches to the new
/// one, so the kernel forwards again rather than the engines.
#[test]
fn fast_path_follows_an_input_interface_recreated_under_the_same_index() {
    let t = Topo::new(1);
    let cfg = rule_k(&t, output(&t.o(0), "239.2.2.200", 6000));
    let mut mcrd = t.mcrd(&cfg);
    let generation = table_generation(&mcrd);
    let index = t.relay.net_attr(&t.i(), "ifindex");
    // mcrd is stopped while the interface goes and comes back, so it finds
    // both link events queued and sees one change: an interface with the
    // same name and index as before, behind which its link is now defunct.
    mcrd.signal(libc::SIGSTOP);
    t.relay.ip(&["link", "del", &t.i()]);
    veth_indexed(
        &t.relay,
        &t.i(),
        "10.77.0.2/24",
        Some(&index),
        &t.src,
        &t.g(),
        "10.77.0.1/24",
    );
    mcrd.signal(libc::SIGCONT);
    assert_eq!(
        t.relay.net_attr(&t.i(), "ifindex"),
        index,
        "the interface must come back under the same index"
    );

    // Wait until a table built after the change runs, with the rule active
    // and on the fast path again.
    let back = wait_until(Duration::from_secs(5), || {
        table_generation(&mcrd) > generation
            && mcrd.ctl_json(&["list"])["rules"][0]["state"] == "active"
            && mcrd.ctl_json(&["status"])["kernel_fast_path"]["rules"] == 1
    });
    assert!(
        back,
        "rule not back on the fast path: {:#}",
        mcrd.ctl_json(&["status"])
    );

    let frames = engine_frames(&mcrd.ctl_json(&["stats"]));
    let l = t.listen(0, "239.2.2.200", 6000, &["--idle-timeout", "1.5"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "20000", "--count", "20000", "--size", "200"],
    );
    assert_exact(&l.finish(), 20_000);
    let stats = mcrd.ctl_json(&["stats"]);
    assert_eq!(
        engine_frames(&stats),
        frames,
        "the engines took the traffic: the program is not on the new interface. {stats:#}"
    );
    let (_, status) = mcrd.stop();
    assert!(status.success());
}
