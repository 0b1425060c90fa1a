//! End-to-end: a route with more outgoing interfaces than the kernel's
//! multicast forwarding cache can hold (32 vifs) is forwarded by mcr's own
//! engines, to every oif, whole IP packets with TTL minus one, and never
//! by the kernel as well.
//!
//! Topology (one namespace each):
//!
//! ```text
//!   up (source 10.81.0.2) --u/ru-- mcrd --d0/h0-- receivers (10.91.0.2)
//!                                       ...
//!                                       --d39/h39-- receivers (10.91.39.2)
//! ```
//!
//! The IGMP proxy (upstream `ru`, 40 downstream interfaces) makes the
//! `(*,G)` route; one receiver process joins the group on each of the 40
//! interfaces and counts, per interface, what arrives (AF_PACKET).

use mcr_tests::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

const PY: &str = "/usr/bin/python3";
const OIFS: usize = 40;
const GROUP: &str = "239.91.1.1";

/// The packets the source sends and the receivers expect, built the same
/// way on both sides: seq even is UDP (port 5001, no checksum), seq odd
/// IP protocol 253 (a route forwards every protocol). `ttl` is the IP TTL.
const BUILD: &str = r#"
import socket, struct
def csum(b):
    s = sum((b[i] << 8) | b[i+1] for i in range(0, len(b), 2))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def build(seq, ttl, group):
    body = struct.pack('!I', seq) + bytes((seq + k) % 256 for k in range(100))
    proto = 17 if seq % 2 == 0 else 253
    if proto == 17:
        body = struct.pack('!HHHH', 4000, 5001, 8 + len(body), 0) + body
    h = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), (seq + 1) & 0xffff,
        0x4000, ttl, proto, 0, socket.inet_aton('10.81.0.2'), socket.inet_aton(group)))
    c = csum(bytes(h))
    h[10], h[11] = c >> 8, c & 0xff
    return bytes(h) + body
"#;

/// Sends `count` packets from seq `first` at `rate` per second with TTL
/// `ttl` on interface `u` (raw socket, the header is ours).
const SEND: &str = r#"
import sys, time
first, count, rate, ttl, group = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'u')
for seq in range(first, first + count):
    s.sendto(build(seq, ttl, group), (group, 0))
    time.sleep(1.0 / rate)
"#;

/// Joins the group on h0..h{n-1} (one socket each) and counts, per
/// interface, the packets to the group: how many, how many distinct seqs,
/// how many differ from the sent packet with TTL minus one, and the TTLs.
/// Reads commands on stdin: `mark` prints the counts since the last mark
/// as one JSON line and resets them; `leave K` drops the membership on hK.
const RECEIVE: &str = r#"
import sys, os, select, json
n, group = int(sys.argv[1]), sys.argv[2]
members, caps = {}, {}
for i in range(n):
    m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    m.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton('10.91.%d.2' % i))
    members[i] = m
    c = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    c.bind(('h%d' % i, 0x0800))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    c.setblocking(False)
    caps[c.fileno()] = (i, c)
def fresh():
    return {'n': [0] * n, 'seqs': [set() for _ in range(n)], 'bad': [0] * n, 'ttls': set()}
st = fresh()
print('ready', flush=True)
stdin = sys.stdin.fileno()
buf = b''
while True:
    r, _, _ = select.select([stdin] + list(caps), [], [], 0.5)
    for fd in r:
        if fd == stdin:
            data = os.read(stdin, 4096)
            if not data:
                sys.exit(0)
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                cmd = line.decode().split()
                if cmd and cmd[0] == 'mark':
                    print(json.dumps({'n': st['n'], 'uniq': [len(s) for s in st['seqs']],
                        'bad': st['bad'], 'ttls': sorted(st['ttls']),
                        'seqs': [sorted(s) for s in st['seqs']]}), flush=True)
                    st = fresh()
                elif cmd and cmd[0] == 'leave':
                    members.pop(int(cmd[1])).close()
            continue
        i, c = caps[fd]
        while True:
            try:
                data, addr = c.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING or len(data) < 20:
                continue
            if socket.inet_ntoa(data[16:20]) != group:
                continue
            proto = data[9]
            at = 20 + (8 if proto == 17 else 0)
            if proto not in (17, 253) or len(data) < at + 4:
                continue
            seq = int.from_bytes(data[at:at + 4], 'big')
            st['n'][i] += 1
            st['seqs'][i].add(seq)
            st['ttls'].add(data[8])
            if data != build(seq, data[8], group) or data[8] != 7:
                st['bad'][i] += 1
"#;

struct Receivers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Receivers {
    fn start(ns: &Netns, dir: &TempDir) -> Receivers {
        let script = dir.file("receive.py", &format!("{BUILD}{RECEIVE}"));
        let mut child = ns
            .command(std::path::Path::new(PY))
            .arg(&script)
            .args([&OIFS.to_string(), GROUP])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Receivers {
            child,
            stdin,
            stdout,
        }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The counts since the last mark.
    fn mark(&mut self) -> Value {
        self.command("mark");
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).expect("receiver counts")
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(ns: &Netns, dir: &TempDir, first: u32, count: u32, ttl: u8) {
    let script = dir.file("send.py", &format!("{BUILD}{SEND}"));
    let out = ns.exec(&[
        PY,
        script.to_str().unwrap(),
        &first.to_string(),
        &count.to_string(),
        "200",
        &ttl.to_string(),
        GROUP,
    ]);
    assert!(out.status.success(), "send: {out:?}");
}

fn route(m: &Mcrd) -> Option<Value> {
    m.ctl_json(&["mroute"])["routes"]
        .as_array()?
        .iter()
        .find(|r| r["group"] == GROUP && r["source"].is_null())
        .cloned()
}

fn oif_count(m: &Mcrd) -> usize {
    route(m).map_or(0, |r| r["oifs"].as_array().map_or(0, Vec::len))
}

fn ttl_expired(m: &Mcrd) -> u64 {
    m.ctl_json(&["stats"])["engines"].as_array().map_or(0, |e| {
        e.iter()
            .map(|x| x["drops"]["ttl_expired"].as_u64().unwrap_or(0))
            .sum()
    })
}

#[test]
fn a_route_with_40_oifs_is_forwarded_by_the_engines_to_all_40() {
    let tag = unique_tag();
    let up = Netns::new(format!("ro-up-{tag}"));
    let r = Netns::new(format!("ro-r-{tag}"));
    let h = Netns::new(format!("ro-h-{tag}"));
    let dir = TempDir::new(&format!("route-oifs-{tag}"));
    veth(&r, "ru", "10.81.0.1/24", &up, "u", "10.81.0.2/24");
    up.ip(&["route", "add", "default", "via", "10.81.0.1", "dev", "u"]);
    for i in 0..OIFS {
        veth(
            &r,
            &format!("d{i}"),
            &format!("10.91.{i}.1/24"),
            &h,
            &format!("h{i}"),
            &format!("10.91.{i}.2/24"),
        );
    }
    let downstream: Vec<String> = (0..OIFS).map(|i| format!("\"d{i}\"")).collect();
    let config = format!(
        r#"{{
  igmp: {{ version: 3, query_interval: 20, query_response_interval: 2,
          robustness: 2, last_member_query_interval_ms: 200,
          proxy: {{ upstream: "ru", downstream: [{}] }} }},
  data_plane: {{ kernel_fast_path: false }},
}}"#,
        downstream.join(", ")
    );
    let m = Mcrd::start(&r, &dir, &config);
    let mut rx = Receivers::start(&h, &dir);

    // Every interface's member makes the (*,G) route 40 oifs wide: past
    // the kernel's 32 vifs, so mcr's engines forward it.
    assert!(
        wait_until(Duration::from_secs(30), || oif_count(&m) == OIFS),
        "route not 40 oifs wide: {:?}\n{}",
        route(&m),
        m.log_text()
    );
    let rt = route(&m).unwrap();
    assert_eq!(rt["iif"], "ru", "{rt:#}");
    assert!(
        wait_until(Duration::from_secs(10), || route(&m)
            .is_some_and(|r| r["installed"] == "engines")),
        "not in the engines: {:?}",
        route(&m)
    );
    assert!(
        m.log_text().contains("forwarded by mcr's engines"),
        "{}",
        m.log_text()
    );
    let _ = rx.mark();

    // 200 packets (UDP and protocol 253), TTL 8: every interface gets
    // every one exactly once, byte for byte the sent packet with TTL 7.
    send(&up, &dir, 0, 200, 8);
    assert!(
        wait_until(Duration::from_secs(15), || route(&m)
            .is_some_and(|r| r["packets"].as_u64() == Some(200))),
        "route counters: {:?}",
        route(&m)
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.mark();
    for i in 0..OIFS {
        assert_eq!(got["n"][i], 200, "h{i}: {}", got["n"]);
        assert_eq!(got["uniq"][i], 200, "h{i}: {}", got["uniq"]);
        assert_eq!(got["bad"][i], 0, "h{i} bytes differ: {}", got["bad"]);
    }
    assert_eq!(got["ttls"], serde_json::json!([7]), "TTL minus exactly one");
    let rt = route(&m).unwrap();
    assert_eq!(rt["installed"], "engines", "{rt:#}");
    assert_eq!(rt["packets"], 200, "{rt:#}");
    assert!(rt["bytes"].as_u64().unwrap() > 200 * 100, "{rt:#}");
    // The kernel does not forward it too (each interface counted every
    // seq once, above): no MFC entry for the group. The iif is a vif (the
    // proxy's upstream), so the kernel may list its own queue of packets
    // waiting for an entry that never comes ("unresolved", expires after
    // 10 s, forwards nothing).
    assert_no_kernel_entry(&r);
    let text = m.ctl(&["mroute"]).stdout;
    assert!(text.contains("engines"), "{text}");

    // TTL 1: not forwarded anywhere, counted.
    let expired = ttl_expired(&m);
    send(&up, &dir, 10_000, 10, 1);
    assert!(
        wait_until(Duration::from_secs(10), || ttl_expired(&m) >= expired + 10),
        "ttl_expired: {}",
        ttl_expired(&m)
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.mark();
    assert!(
        got["n"].as_array().unwrap().iter().all(|n| *n == 0),
        "a TTL-1 packet was forwarded: {}",
        got["n"]
    );
    assert_eq!(route(&m).unwrap()["packets"], 200, "not counted as routed");

    // The member on h7 leaves: delivery stops there only.
    rx.command("leave 7");
    assert!(
        wait_until(Duration::from_secs(15), || oif_count(&m) == OIFS - 1),
        "d7 still an oif: {:?}",
        route(&m)
    );
    let _ = rx.mark();
    send(&up, &dir, 1000, 100, 8);
    assert!(
        wait_until(Duration::from_secs(15), || route(&m)
            .is_some_and(|r| r["packets"].as_u64() == Some(300))),
        "route counters: {:?}",
        route(&m)
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.mark();
    for i in 0..OIFS {
        let want = if i == 7 { 0 } else { 100 };
        assert_eq!(got["n"][i], want, "h{i}: {}", got["n"]);
        assert_eq!(got["uniq"][i], want, "h{i}: {}", got["uniq"]);
        assert_eq!(got["bad"][i], 0, "h{i}: {}", got["bad"]);
    }
    assert_no_kernel_entry(&r);
}

fn assert_no_kernel_entry(r: &Netns) {
    let shown = r.ip(&["mroute", "show"]);
    for line in shown.lines().filter(|l| l.contains(GROUP)) {
        assert!(
            line.contains("unresolved") && !line.contains("Oifs"),
            "kernel entry beside the engines: {shown}"
        );
    }
}

/// Joins the group on h0..h{n-1} with one UDP socket each (bound to the
/// interface, port 5001) and prints, once `count` datagrams arrived on
/// every interface or after `secs`, the per-interface counts as JSON. The
/// kernel drops a datagram whose UDP checksum fails (UdpInCsumErrors)
/// before any socket sees it, so a count is a count of valid checksums.
const RECEIVE_UDP: &str = r#"
import socket, sys, select, json, time
n, group, count, secs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
for name in ['all', 'default'] + ['h%d' % i for i in range(n)]:
    open('/proc/sys/net/ipv4/conf/%s/rp_filter' % name, 'w').write('0')
socks = {}
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ('h%d' % i).encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(('0.0.0.0', 5001))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton('10.91.%d.2' % i))
    s.setblocking(False)
    socks[s.fileno()] = (i, s)
got = [set() for _ in range(n)]
print('ready', flush=True)
end = time.time() + secs
while time.time() < end and min(len(g) for g in got) < count:
    r, _, _ = select.select(list(socks), [], [], 0.2)
    for fd in r:
        i, s = socks[fd]
        while True:
            try:
                data = s.recv(65535)
            except BlockingIOError:
                break
            if len(data) >= 4:
                got[i].add(int.from_bytes(data[:4], 'big'))
print(json.dumps([len(g) for g in got]), flush=True)
"#;

/// Sends `count` UDP datagrams to the group from a plain socket on `u`
/// (the kernel builds the headers; veth's tx checksum offload, on by
/// default, leaves the UDP checksum partial: TP_STATUS_CSUMNOTREADY).
const SEND_UDP: &str = r#"
import socket, sys, time
count, group = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.81.0.2'))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
for seq in range(count):
    s.sendto(seq.to_bytes(4, 'big') + bytes(96), (group, 5001))
    time.sleep(0.005)
"#;

/// A sender with checksum offload (a plain UDP socket on a veth) hands the
/// engines packets whose UDP checksum is only the pseudo-header seed: the
/// route completes it, so UDP sockets behind all 36 oifs (past the
/// kernel's 32 vifs) get every datagram.
#[test]
fn routed_datagrams_from_an_offloading_sender_leave_with_valid_checksums() {
    routed_from_an_offloading_sender(0);
}

/// The same through a receive ring (`data_plane.receive_ring`): routes
/// read, decrement and send from the ring's slots, and the ring says which
/// frames still carry the seed.
#[test]
fn routed_datagrams_read_from_a_receive_ring_leave_with_valid_checksums() {
    routed_from_an_offloading_sender(256);
}

fn routed_from_an_offloading_sender(ring: u32) {
    const N: usize = 36;
    const COUNT: usize = 300;
    let tag = unique_tag();
    let up = Netns::new(format!("rc-up-{tag}"));
    let r = Netns::new(format!("rc-r-{tag}"));
    let h = Netns::new(format!("rc-h-{tag}"));
    let dir = TempDir::new(&format!("route-csum-{tag}"));
    veth(&r, "ru", "10.81.0.1/24", &up, "u", "10.81.0.2/24");
    up.ip(&["route", "add", "default", "via", "10.81.0.1", "dev", "u"]);
    let offload = up.exec(&["ethtool", "-k", "u"]);
    let offload = String::from_utf8_lossy(&offload.stdout).to_string();
    assert!(
        offload.is_empty() || offload.contains("tx-checksumming: on"),
        "the sender's offload is off: the test would prove nothing\n{offload}"
    );
    for i in 0..N {
        veth(
            &r,
            &format!("d{i}"),
            &format!("10.91.{i}.1/24"),
            &h,
            &format!("h{i}"),
            &format!("10.91.{i}.2/24"),
        );
    }
    let downstream: Vec<String> = (0..N).map(|i| format!("\"d{i}\"")).collect();
    let config = format!(
        r#"{{
  igmp: {{ version: 3, query_interval: 20, query_response_interval: 2,
          robustness: 2, last_member_query_interval_ms: 200,
          proxy: {{ upstream: "ru", downstream: [{}] }} }},
  data_plane: {{ kernel_fast_path: false, receive_ring: {ring} }},
}}"#,
        downstream.join(", ")
    );
    let m = Mcrd::start(&r, &dir, &config);
    let script = dir.file("receive_udp.py", RECEIVE_UDP);
    let mut rx = h
        .command(std::path::Path::new(PY))
        .arg(&script)
        .args([&N.to_string(), GROUP, &COUNT.to_string(), "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stdout = BufReader::new(rx.stdout.take().unwrap());
    let rx = Kill(rx);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    assert!(
        wait_until(Duration::from_secs(30), || oif_count(&m) == N
            && route(&m).is_some_and(|r| r["installed"] == "engines")),
        "route not {N} oifs wide in the engines: {:?}\n{}",
        route(&m),
        m.log_text()
    );
    // What runs: the capture sockets of the route's input have rings.
    let status = m.ctl_json(&["status"]);
    match status["receive_ring"]["slots"].as_u64() {
        Some(slots) => assert!(ring > 0 && slots >= u64::from(ring), "{status:#}"),
        None => assert_eq!(ring, 0, "{status:#}"),
    }

    let script = dir.file("send_udp.py", SEND_UDP);
    let out = up.exec(&[PY, script.to_str().unwrap(), &COUNT.to_string(), GROUP]);
    assert!(out.status.success(), "send: {out:?}");
    line.clear();
    stdout.read_line(&mut line).unwrap();
    drop(rx);
    let got: Vec<usize> = serde_json::from_str(&line).expect("receiver counts");
    // The engines publish their counters periodically.
    assert!(
        wait_until(Duration::from_secs(10), || route(&m)
            .is_some_and(|r| r["packets"] == COUNT)),
        "route counters: {:?}",
        route(&m)
    );
    assert_eq!(got, vec![COUNT; N], "datagrams per interface");
}
