//! End-to-end tests of the route data path: IGMP proxying (RFC 4605)
//! through the kernel's multicast forwarding cache, in real namespaces.
//!
//! Topology of the proxy test (one namespace each):
//!
//! ```text
//!   up (source 10.81.0.2) --u/ru-- mcrd --ra/ha-- host A (10.82.0.2)
//!                                        --rb/hb-- host B (10.83.0.2)
//! ```

use mcr_tests::*;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const PY: &str = "/usr/bin/python3";

/// Counts, on one interface (AF_PACKET, so joining is not needed), UDP
/// datagrams to a group with their TTLs (`udp` mode), or prints every
/// IGMP report's groups as it arrives (`igmp` mode).
const CAPTURE: &str = r#"
import socket, sys, json, time, struct
iface, mode, secs, group, ready = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((iface, 0x0800))
s.settimeout(0.2)
open(ready, 'w').close()
end = time.time() + secs
count, ttls = 0, set()
while time.time() < end:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 20:
        continue
    ihl = (data[0] & 15) * 4
    proto, dst, src = data[9], socket.inet_ntoa(data[16:20]), socket.inet_ntoa(data[12:16])
    if mode == 'udp' and proto == 17 and dst == group:
        count += 1
        ttls.add(data[8])
    if mode == 'igmp' and proto == 2 and len(data) >= ihl + 8:
        t = data[ihl]
        groups = []
        if t == 0x22:
            n = struct.unpack('!H', data[ihl+6:ihl+8])[0]
            o = ihl + 8
            for _ in range(n):
                if len(data) < o + 8:
                    break
                rtype, aux, nsrc = data[o], data[o+1], struct.unpack('!H', data[o+2:o+4])[0]
                srcs = [socket.inet_ntoa(data[o+8+4*k:o+12+4*k]) for k in range(nsrc) if len(data) >= o+12+4*k]
                groups.append([rtype, socket.inet_ntoa(data[o+4:o+8]), srcs])
                o += 8 + 4 * nsrc + 4 * aux
        elif t in (0x12, 0x16, 0x17):
            groups.append([t, socket.inet_ntoa(data[ihl+4:ihl+8])])
        print(json.dumps({'src': src, 'type': t, 'groups': groups}), flush=True)
if mode == 'udp':
    print(json.dumps({'count': count, 'ttls': sorted(ttls)}), flush=True)
"#;

/// The capture script running in a namespace.
struct Capture {
    child: Option<Child>,
    out: std::path::PathBuf,
}

impl Capture {
    fn start(
        ns: &Netns,
        dir: &TempDir,
        iface: &str,
        mode: &str,
        secs: f64,
        group: &str,
    ) -> Capture {
        let tag = unique_tag();
        let script = dir.file("capture.py", CAPTURE);
        let ready = dir.path(&format!("cap-ready-{tag}"));
        let out = dir.path(&format!("cap-{tag}.jsonl"));
        let child = ns
            .command(std::path::Path::new(PY))
            .arg(&script)
            .args([iface, mode, &secs.to_string(), group])
            .arg(&ready)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        assert!(
            wait_until(Duration::from_secs(10), || ready.exists()),
            "capture did not start"
        );
        Capture {
            child: Some(child),
            out,
        }
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for the script's end; its last line.
    fn finish(mut self) -> Value {
        let mut c = self.child.take().unwrap();
        let _ = c.wait();
        self.lines().pop().expect("capture summary")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A python process holding the namespace's mroute socket (MRT_INIT).
struct Holder {
    child: Option<Child>,
}

impl Holder {
    fn take(ns: &Netns) -> Holder {
        let script = "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_IGMP)\n\
             s.setsockopt(socket.IPPROTO_IP,200,1)\n\
             print('held',flush=True)\n\
             sys.stdin.read()\n";
        let mut child = ns
            .command(std::path::Path::new(PY))
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
        Holder { child: Some(child) }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.stdin.take().map(|mut s| s.flush());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct ProxyTopo {
    up: Netns,
    r: Netns,
    a: Netns,
    b: Netns,
    dir: TempDir,
}

impl ProxyTopo {
    fn new() -> ProxyTopo {
        let tag = unique_tag();
        let up = Netns::new(format!("rt-up-{tag}"));
        let r = Netns::new(format!("rt-r-{tag}"));
        let a = Netns::new(format!("rt-a-{tag}"));
        let b = Netns::new(format!("rt-b-{tag}"));
        veth(&r, "ru", "10.81.0.1/24", &up, "u", "10.81.0.2/24");
        veth(&r, "ra", "10.82.0.1/24", &a, "ha", "10.82.0.2/24");
        veth(&r, "rb", "10.83.0.1/24", &b, "hb", "10.83.0.2/24");
        for (ns, dev, gw) in [(&a, "ha", "10.82.0.1"), (&b, "hb", "10.83.0.1")] {
            ns.ip(&["route", "add", "default", "via", gw, "dev", dev]);
        }
        up.ip(&["route", "add", "default", "via", "10.81.0.1", "dev", "u"]);
        ProxyTopo {
            up,
            r,
            a,
            b,
            dir: TempDir::new(&format!("routes-{tag}")),
        }
    }

    fn config(&self) -> &'static str {
        r#"{
  igmp: { version: 3, query_interval: 20, query_response_interval: 2,
          robustness: 2, last_member_query_interval_ms: 200,
          proxy: { upstream: "ru", downstream: ["ra", "rb"] } },
  data_plane: { kernel_fast_path: false },
}"#
    }
}

fn mroutes(m: &Mcrd) -> Vec<Value> {
    m.ctl_json(&["mroute"])["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn route_of(m: &Mcrd, group: &str) -> Option<Value> {
    mroutes(m)
        .into_iter()
        .find(|r| r["group"] == group && r["source"].is_null())
}

#[test]
fn igmp_proxy_routes_through_the_kernel_mfc() {
    let t = ProxyTopo::new();
    let group = "239.81.1.1";
    let mut m = Mcrd::start(&t.r, &t.dir, t.config());
    let status = m.ctl_json(&["status"]);
    assert_eq!(status["mroute_socket"]["held"], true, "{status:#}");
    let fwd =
        t.r.exec(&["cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding"]);
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "1");

    // Host A joins; the upstream side must hear our report for the group.
    let upcap = Capture::start(&t.up, &t.dir, "u", "igmp", 60.0, group);
    let member = Member::join(&t.a, "10.82.0.2", group);
    assert!(
        wait_until(Duration::from_secs(15), || upcap.lines().iter().any(|l| {
            l["src"] == "10.81.0.1"
                && l["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|r| r[1] == group))
        })),
        "no report for {group} upstream: {:?}\n{}",
        upcap.lines(),
        m.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, group).is_some()),
        "no (*,G) route: {:?}",
        mroutes(&m)
    );
    let r = route_of(&m, group).unwrap();
    assert_eq!(r["origins"], serde_json::json!(["igmp"]), "{r:#}");
    assert_eq!(r["iif"], "ru", "{r:#}");
    assert_eq!(
        r["oifs"],
        serde_json::json!([{"interface": "ra", "reasons": ["igmp:local-members"]}]),
        "only A has members: {r:#}"
    );
    assert_eq!(r["installed"], "kernel", "{r:#}");

    // The upstream router's queries are answered (RFC 4605 section 4.2, the
    // host side upstream): an IGMPv2 general query gets an IGMPv2 report
    // (type 0x16) for the group, which nothing else would send.
    t.up.exec(&[
        PY,
        "-c",
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_IGMP)\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'u')\n\
         s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,1)\n\
         q=bytearray([0x11,10,0,0,0,0,0,0])\n\
         c=sum((q[i]<<8)|q[i+1] for i in range(0,8,2)); c=(c&0xffff)+(c>>16); c=~c&0xffff\n\
         q[2]=c>>8; q[3]=c&0xff\n\
         s.sendto(bytes(q),('224.0.0.1',0))\n",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || upcap.lines().iter().any(|l| {
            l["src"] == "10.81.0.1"
                && l["type"] == 0x16
                && l["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|r| r[1] == group))
        })),
        "the upstream query was not answered: {:?}",
        upcap.lines()
    );

    // Traffic upstream: A gets every routed packet at TTL 7 (sent at 8),
    // B nothing.
    let listener = Listener::start(
        &t.a,
        &t.dir,
        "ha",
        group,
        5001,
        &["--idle-timeout", "3", "--duration", "30"],
    );
    let bcap = Capture::start(&t.b, &t.dir, "hb", "udp", 8.0, group);
    let sent = generate(
        &t.up,
        "u",
        group,
        5001,
        &["--count", "300", "--rate", "200", "--ttl", "8"],
    );
    let got = listener.finish();
    let received = total(&got, "received");
    assert!(
        received >= 290,
        "A received {received} of 300: {got:#} {sent:#}\n{}",
        m.log_text()
    );
    assert_eq!(got["total"]["ttl_min"], 7, "TTL minus exactly one: {got:#}");
    assert_eq!(got["total"]["ttl_max"], 7, "{got:#}");
    let b = bcap.finish();
    assert_eq!(b["count"], 0, "B has no members: {b}");

    // The kernel lists the (S,G) entry made from the (*,G); the counters
    // mcrctl shows are the kernel's and match what A counted.
    let shown = t.r.ip(&["mroute", "show"]);
    assert!(
        shown.contains(&format!("(10.81.0.2,{group})")) && shown.contains("Iif: ru"),
        "{shown}"
    );
    assert!(shown.contains("Oifs: ra"), "{shown}");
    assert!(!shown.contains("rb"), "{shown}");
    let r = route_of(&m, group).unwrap();
    assert_eq!(r["sources"], serde_json::json!(["10.81.0.2"]), "{r:#}");
    let text = m.ctl(&["mroute"]).stdout;
    assert!(
        text.contains(&format!("(*,{group})"))
            && text.contains("ra(igmp:local-members)")
            && text.contains("kernel"),
        "{text}"
    );
    assert_eq!(r["packets"].as_u64(), Some(received), "{r:#} vs {got:#}");
    assert_eq!(r["wrong_if"], 0, "{r:#}");

    // A packet from A's side for the group arrives on ra, not the iif:
    // not forwarded (RPF), counted as wrong_if.
    let upcount = Capture::start(&t.up, &t.dir, "u", "udp", 4.0, group);
    generate(
        &t.a,
        "ha",
        group,
        5001,
        &["--count", "20", "--rate", "100", "--ttl", "8"],
    );
    let u = upcount.finish();
    assert_eq!(
        u["count"], 0,
        "RPF: traffic from a downstream host is not routed up: {u}"
    );

    // The leave stops the traffic and the route goes away.
    member.leave();
    let gone = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, group).is_none()),
        "route still there after the leave: {:?}",
        mroutes(&m)
    );
    eprintln!("route withdrawn {:?} after the leave", gone.elapsed());
    let shown = t.r.ip(&["mroute", "show"]);
    assert!(!shown.contains(group), "{shown}");
    let acap = Capture::start(&t.a, &t.dir, "ha", "udp", 4.0, group);
    generate(
        &t.up,
        "u",
        group,
        5001,
        &["--count", "100", "--rate", "200", "--ttl", "8"],
    );
    let after = acap.finish();
    assert_eq!(after["count"], 0, "traffic after the leave: {after}");

    // Stopping releases the socket.
    m.stop();
    let fwd =
        t.r.exec(&["cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding"]);
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "0");
    drop(t.b);
}

#[test]
fn mroute_socket_held_elsewhere_is_reported_not_fatal() {
    let t = ProxyTopo::new();
    let holder = Holder::take(&t.r);
    let mut m = Mcrd::start(&t.r, &t.dir, t.config());
    m.wait_log("another multicast router holds", Duration::from_secs(5));
    let status = m.ctl_json(&["status"]);
    assert_eq!(status["mroute_socket"]["held"], false, "{status:#}");
    assert!(
        status["mroute_socket"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("another multicast router"),
        "{status:#}"
    );
    let text = m.ctl(&["status"]).stdout;
    assert!(
        text.contains("mroute socket:") && text.contains("not held"),
        "{text}"
    );
    // The proxy still learns members; its route says why it is not forwarded.
    let member = Member::join(&t.a, "10.82.0.2", "239.81.2.2");
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, "239.81.2.2")
            .is_some()),
        "{:?}",
        mroutes(&m)
    );
    let r = route_of(&m, "239.81.2.2").unwrap();
    assert!(
        r["installed"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not installed: another multicast router"),
        "{r:#}"
    );
    assert_eq!(m.ctl(&["ping"]).code, 0);
    // The other router stops: mcrd takes the socket at its next try
    // (every 30 s) and installs the route.
    drop(holder);
    assert!(
        wait_until(Duration::from_secs(45), || {
            route_of(&m, "239.81.2.2").is_some_and(|r| r["installed"] == "kernel")
        }),
        "{:?}\n{}",
        mroutes(&m),
        m.log_text()
    );
    assert_eq!(m.ctl_json(&["status"])["mroute_socket"]["held"], true);
    assert_eq!(mc_forwarding(&t.r), "1");
    member.leave();
    drop(t.up);
}

fn mc_forwarding(ns: &Netns) -> String {
    let out = ns.exec(&["cat", "/proc/sys/net/ipv4/conf/all/mc_forwarding"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn proxy_reload_moves_downstream_and_removing_it_releases_the_socket() {
    let t = ProxyTopo::new();
    let group = "239.81.3.3";
    let only = |down: &str| {
        format!(
            "{{ igmp: {{ version: 3, last_member_query_interval_ms: 200, \
             proxy: {{ upstream: \"ru\", downstream: [\"{down}\"] }} }}, \
             data_plane: {{ kernel_fast_path: false }} }}"
        )
    };
    let m = Mcrd::start(&t.r, &t.dir, &only("ra"));
    let cfg = t.dir.path("mcrd.json5");
    let _a = Member::join(&t.a, "10.82.0.2", group);
    let _b = Member::join(&t.b, "10.83.0.2", group);
    let oifs = |m: &Mcrd| route_of(m, group).map(|r| r["oifs"].clone());
    let want = |i: &str| serde_json::json!([{"interface": i, "reasons": ["igmp:local-members"]}]);
    assert!(
        wait_until(Duration::from_secs(10), || oifs(&m) == Some(want("ra"))),
        "{:?}",
        mroutes(&m)
    );
    // Downstream moves to B: A's members go with IGMP on ra, B's arrive
    // (its host answers our startup query).
    write_file(&cfg, only("rb").as_bytes());
    assert_eq!(m.ctl(&["reload"]).code, 0);
    assert!(
        wait_until(Duration::from_secs(20), || oifs(&m) == Some(want("rb"))),
        "{:?}",
        mroutes(&m)
    );
    assert_eq!(mc_forwarding(&t.r), "1");
    // No proxy any more: routes withdrawn, socket released.
    write_file(
        &cfg,
        b"{ igmp: { querier_interfaces: [\"ra\"] }, data_plane: { kernel_fast_path: false } }",
    );
    assert_eq!(m.ctl(&["reload"]).code, 0);
    assert!(
        wait_until(Duration::from_secs(10), || mroutes(&m).is_empty()),
        "{:?}",
        mroutes(&m)
    );
    let status = m.ctl_json(&["status"]);
    assert!(status.get("mroute_socket").is_none(), "{status:#}");
    assert_eq!(mc_forwarding(&t.r), "0");
    drop(t.up);
}

/// A host that wants one source (IGMPv3 `INCLUDE {S}`): the upstream
/// report names the source, an `(S,G)` route is in the kernel before any
/// packet, S's traffic reaches the host and another source's does not;
/// `subscribe --events mroute` streams the route's arrival and removal.
#[test]
fn igmp_proxy_source_specific_member_gets_only_its_source() {
    let t = ProxyTopo::new();
    let group = "232.81.4.4";
    t.up.ip(&["addr", "add", "10.81.0.3/24", "dev", "u"]);
    let m = Mcrd::start(&t.r, &t.dir, t.config());
    let events = mcr_tests::frr::Subscriber::start(&m, "mroute");
    let upcap = Capture::start(&t.up, &t.dir, "u", "igmp", 60.0, group);
    let listener = Listener::start(
        &t.a,
        &t.dir,
        "ha",
        group,
        5002,
        &[
            "--source",
            "10.81.0.2",
            "--idle-timeout",
            "3",
            "--duration",
            "30",
        ],
    );
    // An INCLUDE (1), TO_IN (3) or ALLOW (5) record for the group naming
    // the source, upstream; never an any-source (EXCLUDE) one.
    let records = |c: &Capture| -> Vec<Value> {
        c.lines()
            .iter()
            .filter(|l| l["src"] == "10.81.0.1")
            .flat_map(|l| l["groups"].as_array().cloned().unwrap_or_default())
            .filter(|r| r[1] == group)
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(15), || records(&upcap).iter().any(
            |r| {
                [1, 3, 5].contains(&r[0].as_u64().unwrap_or(0))
                    && r[2] == serde_json::json!(["10.81.0.2"])
            }
        )),
        "no source-specific report upstream: {:?}",
        upcap.lines()
    );
    let sg = |m: &Mcrd| {
        mroutes(m)
            .into_iter()
            .find(|r| r["group"] == group && r["source"] == "10.81.0.2")
    };
    assert!(
        wait_until(Duration::from_secs(10), || sg(&m).is_some()),
        "{:?}",
        mroutes(&m)
    );
    assert!(
        route_of(&m, group).is_none(),
        "no (*,G) for an INCLUDE member"
    );
    assert!(
        records(&upcap)
            .iter()
            .all(|r| [1, 3, 5].contains(&r[0].as_u64().unwrap_or(0))),
        "only source-specific records upstream: {:?}",
        records(&upcap)
    );
    let shown = t.r.ip(&["mroute", "show"]);
    assert!(shown.contains(&format!("(10.81.0.2,{group})")), "{shown}");
    let added = events.wait_for(Duration::from_secs(5), |e| {
        e["event"] == "route" && e["change"] == "added" && e["group"] == group
    });
    let (_, added) = added.expect("route added event");
    assert_eq!(added["source"], "10.81.0.2", "{added}");
    assert_eq!(added["installed"], "kernel", "{added}");
    assert_eq!(added["oifs"], serde_json::json!(["ra"]), "{added}");

    // The other source: nothing reaches A.
    let acap = Capture::start(&t.a, &t.dir, "ha", "udp", 4.0, group);
    generate(
        &t.up,
        "10.81.0.3",
        group,
        5002,
        &["--count", "50", "--rate", "100", "--ttl", "8"],
    );
    let other = acap.finish();
    assert_eq!(
        other["count"], 0,
        "source 10.81.0.3 was not asked for: {other}"
    );
    // The wanted source: every packet, TTL - 1, counted by the kernel entry.
    generate(
        &t.up,
        "10.81.0.2",
        group,
        5002,
        &["--count", "200", "--rate", "200", "--ttl", "8"],
    );
    let got = listener.finish();
    assert_exact(&got, 200);
    assert_eq!(got["total"]["ttl_max"], 7, "{got:#}");
    let r = sg(&m).unwrap();
    assert_eq!(r["packets"], 200, "{r:#}");
    // The listener left: the route goes, with its event.
    assert!(
        wait_until(Duration::from_secs(10), || sg(&m).is_none()),
        "{:?}",
        mroutes(&m)
    );
    assert!(events
        .wait_for(Duration::from_secs(5), |e| {
            e["event"] == "route" && e["change"] == "removed" && e["group"] == group
        })
        .is_some());
    drop(t.b);
}

/// A relay rule and a route for the same traffic: the rule has precedence,
/// the route leaves the kernel, every packet arrives exactly once (with
/// the rule's TTL, not the route's TTL - 1); without the rule the route
/// forwards again.
#[test]
fn relay_rule_takes_precedence_over_a_route_and_nothing_is_forwarded_twice() {
    let t = ProxyTopo::new();
    let group = "239.81.5.5";
    let m = Mcrd::start(&t.r, &t.dir, t.config());
    let _member = Member::join(&t.a, "10.82.0.2", group);
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, group).is_some()),
        "{:?}",
        mroutes(&m)
    );
    let add = m.ctl(&[
        "add",
        "--input-interface",
        "ru",
        "--input-group",
        group,
        "--input-port",
        "5003",
        "--outputs",
        &format!("{group}:5003:ra:5"),
        "--name",
        "cam",
    ]);
    assert_eq!(add.code, 0, "{}{}", add.stdout, add.stderr);
    let r = route_of(&m, group).unwrap();
    assert_eq!(
        r["installed"],
        "not installed: relay rule 'cam' takes this traffic on ru (relay rules have precedence)",
        "{r:#}"
    );
    let run = |n: u64| {
        let l = Listener::start(
            &t.a,
            &t.dir,
            "ha",
            group,
            5003,
            &["--idle-timeout", "3", "--duration", "30"],
        );
        generate(
            &t.up,
            "u",
            group,
            5003,
            &["--count", &n.to_string(), "--rate", "200", "--ttl", "8"],
        );
        l.finish()
    };
    let relayed = run(200);
    assert_exact(&relayed, 200);
    assert_eq!(
        relayed["total"]["ttl_min"], 5,
        "the rule's TTL: {relayed:#}"
    );
    assert_eq!(relayed["total"]["ttl_max"], 5, "{relayed:#}");
    let shown = t.r.ip(&["mroute", "show"]);
    // At most the kernel's own unresolved entry (the packets it queued
    // waiting for us, never forwarded).
    assert!(
        shown
            .lines()
            .filter(|l| l.contains(group))
            .all(|l| l.contains("unresolved")),
        "no resolved kernel entry: {shown}"
    );
    // The rule goes: the route forwards again.
    assert_eq!(m.ctl(&["remove", "--name", "cam"]).code, 0);
    assert!(
        wait_until(Duration::from_secs(5), || route_of(&m, group)
            .is_some_and(|r| r["installed"] == "kernel")),
        "{:?}",
        mroutes(&m)
    );
    let routed = run(200);
    let n = total(&routed, "received");
    assert!(n >= 190, "{routed:#}");
    assert_eq!(
        routed["total"]["ttl_max"], 7,
        "the route's TTL - 1: {routed:#}"
    );
    assert_eq!(routed["total"]["duplicates"], 0, "{routed:#}");
    drop(t.b);
}

/// DESIGN.md: `MRT_INIT` needs only `CAP_NET_RAW`. mcrd as an unprivileged
/// user with that one capability holds the mroute socket and routes.
#[test]
fn mroute_socket_needs_only_cap_net_raw() {
    let t = ProxyTopo::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&t.dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+net_raw",
        "--ambient-caps=+net_raw",
    ];
    let mut m = Mcrd::spawn_as(&t.r, &t.dir, "nobody", t.config(), &wrapper, &[]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let uid = proc_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(2), Some("65534"), "{uid}");
    let caps = proc_status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap();
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("0000000000002000"),
        "CAP_NET_RAW only: {caps}"
    );
    let status = m.ctl_json(&["status"]);
    assert_eq!(
        status["mroute_socket"]["held"],
        true,
        "{status:#}\n{}",
        m.log_text()
    );
    assert_eq!(mc_forwarding(&t.r), "1");
    let group = "239.81.6.6";
    let _member = Member::join(&t.a, "10.82.0.2", group);
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, group).is_some()),
        "{:?}",
        mroutes(&m)
    );
    let l = Listener::start(
        &t.a,
        &t.dir,
        "ha",
        group,
        5004,
        &["--idle-timeout", "3", "--duration", "30"],
    );
    generate(
        &t.up,
        "u",
        group,
        5004,
        &["--count", "100", "--rate", "200", "--ttl", "8"],
    );
    let got = l.finish();
    assert!(total(&got, "received") >= 95, "{got:#}\n{}", m.log_text());
    assert_eq!(got["total"]["ttl_max"], 7, "{got:#}");
    drop(t.b);
}

/// A second mcrd in the namespace finds the mroute socket taken by the
/// first: it runs, says so, and the first keeps routing.
#[test]
fn second_mcrd_in_the_namespace_reports_the_socket_taken() {
    let t = ProxyTopo::new();
    let first = Mcrd::start(&t.r, &t.dir, t.config());
    assert_eq!(first.ctl_json(&["status"])["mroute_socket"]["held"], true);
    let mut second = Mcrd::spawn(&t.r, &t.dir, "second", t.config(), &[]);
    second.wait_log("mcrd ready", Duration::from_secs(10));
    second.wait_log("another multicast router holds", Duration::from_secs(5));
    let s = second.ctl_json(&["status"]);
    assert_eq!(s["mroute_socket"]["held"], false, "{s:#}");
    assert_eq!(first.ctl_json(&["status"])["mroute_socket"]["held"], true);
    assert_eq!(mc_forwarding(&t.r), "1");
    // The second stopping does not release the first's socket.
    second.stop();
    assert_eq!(mc_forwarding(&t.r), "1");
    assert_eq!(first.ctl_json(&["status"])["mroute_socket"]["held"], true);
    drop((t.up, t.a, t.b));
}

/// Sends UDP to `group` from `u` at 100 packets a second for `secs`.
fn spawn_sender(ns: &Netns, group: &str, secs: u32) -> Child {
    let code = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.81.0.2'))\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)\n\
         end = time.time() + {secs}\n\
         while time.time() < end:\n\
         \x20   s.sendto(b'x' * 64, ('{group}', 5001))\n\
         \x20   time.sleep(0.01)\n"
    );
    ns.command(std::path::Path::new(PY))
        .args(["-c", &code])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3")
}

/// Traffic flows before anyone wants it (the kernel holds the (S,G)
/// unresolved for 10 s and sends no second NOCACHE meanwhile); a member
/// joining 3 s later gets the traffic as soon as the `(*,G)` route
/// exists, not when the unresolved entry expires.
#[test]
fn a_member_joining_while_traffic_flows_gets_it_at_once() {
    let t = ProxyTopo::new();
    let group = "239.81.9.9";
    let m = Mcrd::start(&t.r, &t.dir, t.config());
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sender = Kill(spawn_sender(&t.up, group, 30));
    std::thread::sleep(Duration::from_secs(3));
    let nocache = |m: &Mcrd| m.ctl_json(&["mroute"])["counters"]["nocache"].as_u64();
    assert!(
        nocache(&m).is_some_and(|n| n >= 1),
        "no NOCACHE before the member: {:?}",
        m.ctl_json(&["mroute"])
    );
    let cap = Capture::start(&t.a, &t.dir, "ha", "udp", 4.0, group);
    let _member = Member::join(&t.a, "10.82.0.2", group);
    assert!(
        wait_until(Duration::from_secs(10), || route_of(&m, group).is_some()),
        "no (*,G) route: {:?}",
        mroutes(&m)
    );
    let appeared = Instant::now();
    let packets = |m: &Mcrd| route_of(m, group).and_then(|r| r["packets"].as_u64());
    assert!(
        wait_until(Duration::from_secs(2), || packets(&m)
            .is_some_and(|p| p > 0)),
        "no packet forwarded within 2 s of the route: {:?}\n{}",
        route_of(&m, group),
        m.log_text()
    );
    let took = appeared.elapsed();
    let got = cap.finish();
    assert!(
        got["count"].as_u64().is_some_and(|c| c >= 100),
        "host A got {got} (route after {took:?})"
    );
}
