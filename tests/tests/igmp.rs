//! End-to-end tests of the IGMP querier: real Linux hosts in namespaces
//! join and leave with the kernel's own IGMP stack, two mcrd elect one
//! querier on a bridge, and hostile IGMP is counted while a static rule
//! keeps forwarding.

use mcr_tests::*;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PY: &str = "/usr/bin/python3";

fn groups(m: &Mcrd) -> Vec<Value> {
    m.ctl_json(&["igmp", "groups"])["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find_group(m: &Mcrd, group: &str) -> Option<Value> {
    groups(m).into_iter().find(|g| g["group"] == group)
}

/// Polls until `f` holds; returns how long it took, or panics after
/// `limit`.
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if f() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn igmp_cfg(iface: &str, version: u8, extra: &str) -> String {
    format!(
        "{{ igmp: {{ querier_interfaces: [\"{iface}\"], version: {version}, query_interval: 5, \
         query_response_interval: 2, robustness: 2, last_member_query_interval_ms: 300 }}{extra} }}"
    )
}

/// LMQT of [`igmp_cfg`]: 2 x 300 ms.
const LMQT: Duration = Duration::from_millis(600);

struct Lan {
    router: Netns,
    host: Netns,
    dir: TempDir,
    r: String,
    h: String,
}

fn lan() -> Lan {
    let tag = unique_tag();
    let router = Netns::new(format!("{tag}-r"));
    let host = Netns::new(format!("{tag}-h"));
    let (r, h) = (format!("{tag}r"), format!("{tag}h"));
    veth(&router, &r, "10.80.0.1/24", &host, &h, "10.80.0.2/24");
    Lan {
        router,
        host,
        dir: TempDir::new(&tag),
        r,
        h,
    }
}

fn join_and_leave(force: u8, source: Option<&str>, group: &str) {
    let l = lan();
    l.host.sysctl(
        &format!("net.ipv4.conf.{}.force_igmp_version", l.h),
        &force.to_string(),
    );
    let m = Mcrd::start(&l.router, &l.dir, &igmp_cfg(&l.r, 3, ""));
    let st = m.ctl_json(&["status"]);
    assert_eq!(st["protocols"]["igmp"]["running"], true, "{st:#}");
    let ifs = m.ctl_json(&["igmp", "interfaces"]);
    assert_eq!(ifs["interfaces"][0]["is_querier"], true, "{ifs:#}");
    assert_eq!(ifs["interfaces"][0]["address"], "10.80.0.1");

    let member = Member::join_sg(&l.host, "10.80.0.2", group, source);
    let took = wait_for(Duration::from_secs(1), "group learned", || {
        find_group(&m, group).is_some()
    });
    eprintln!("v{force}: group {group} learned {took:?} after the join");
    let g = find_group(&m, group).unwrap();
    assert_eq!(g["interface"], l.r.as_str());
    assert_eq!(g["last_reporter"], "10.80.0.2");
    match source {
        None => {
            assert_eq!(g["mode"], "exclude", "{g:#}");
            assert_eq!(g["version"], force, "{g:#}");
        }
        Some(s) => {
            assert_eq!(g["mode"], "include", "{g:#}");
            assert_eq!(g["sources"][0]["address"], s, "{g:#}");
            assert!(g["sources"][0]["timer_secs"].as_f64().unwrap() > 10.0);
            assert_eq!(g["version"], 3);
        }
    }
    member.leave();
    let took = wait_for(LMQT + Duration::from_secs(3), "group gone", || {
        find_group(&m, group).is_none()
    });
    eprintln!("v{force}: group {group} gone {took:?} after the leave");
    assert!(
        took <= LMQT + Duration::from_millis(500),
        "leave took {took:?}, last member query time is {LMQT:?}"
    );
    let c = &m.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["counters"];
    let gq = c["group_queries_sent"].as_u64().unwrap()
        + c["group_source_queries_sent"].as_u64().unwrap();
    assert!(gq >= 1, "{c:#}");
    assert_eq!(c["invalid"]["wrong_subnet"], 0);
}

#[test]
fn v2_host_join_and_leave() {
    join_and_leave(2, None, "239.10.0.1");
}

#[test]
fn v3_host_any_source_join_and_leave() {
    join_and_leave(3, None, "239.10.0.2");
}

#[test]
fn v3_host_source_specific_join_and_leave() {
    join_and_leave(3, Some("10.99.0.7"), "232.10.0.3");
}

#[test]
fn runtime_enable_disable_and_reload() {
    let l = lan();
    let m = Mcrd::start(&l.router, &l.dir, "{ }");
    assert_eq!(
        m.ctl_json(&["status"])["protocols"]["igmp"]["running"],
        false
    );
    let t = m.ctl_json(&["igmp", "enable", "--interface", &l.r]);
    assert_eq!(t["running"], true, "{t:#}");
    let _member = Member::join_sg(&l.host, "10.80.0.2", "239.10.0.9", None);
    wait_for(Duration::from_secs(2), "group learned", || {
        find_group(&m, "239.10.0.9").is_some()
    });
    let ifs = m.ctl_json(&["igmp", "interfaces"]);
    assert_eq!(ifs["runtime"][0]["enabled"], true, "{ifs:#}");
    let text = m.ctl(&["igmp", "interfaces"]).stdout;
    assert!(text.contains("enabled at run time"), "{text}");
    // config save does not write the runtime change.
    let saved = m.ctl_json(&["config", "show"]);
    assert!(
        !saved["json5"].as_str().unwrap().contains(&l.r),
        "{saved:#}"
    );
    // Reload makes the file the truth again: IGMP stops.
    m.ctl_json(&["reload"]);
    assert!(groups(&m).is_empty());
    assert_eq!(
        m.ctl_json(&["status"])["protocols"]["igmp"]["running"],
        false
    );
    // Disable at run time on a configured interface.
    std::fs::write(l.dir.path("mcrd.json5"), igmp_cfg(&l.r, 3, "")).unwrap();
    m.ctl_json(&["reload"]);
    assert_eq!(
        m.ctl_json(&["status"])["protocols"]["igmp"]["running"],
        true
    );
    let t = m.ctl_json(&["igmp", "disable", "--interface", &l.r]);
    assert_eq!(t["running"], false);
    assert_eq!(
        m.ctl_json(&["status"])["protocols"]["igmp"]["running"],
        false
    );
    // A bad name is refused like the config check refuses it.
    let bad = m.ctl(&["igmp", "enable", "--interface", "a/b"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
}

/// Counts IGMP queries by source address on `iface` inside `ns` for
/// `secs` seconds (an AF_PACKET socket; prints `SRC COUNT` lines).
fn count_queries(ns: &Netns, iface: &str, secs: f64) -> std::collections::BTreeMap<String, u64> {
    let script = format!(
        "import socket,time,collections\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x0800))\n\
         s.bind(('{iface}',0))\n\
         s.settimeout(0.1)\n\
         c=collections.Counter()\n\
         end=time.time()+{secs}\n\
         while time.time()<end:\n\
         \x20try: b=s.recv(2048)\n\
         \x20except socket.timeout: continue\n\
         \x20if len(b)<24 or b[9]!=2: continue\n\
         \x20hl=(b[0]&15)*4\n\
         \x20if len(b)>hl and b[hl]==0x11: c[socket.inet_ntoa(b[12:16])]+=1\n\
         for k,v in c.items(): print(k,v)\n"
    );
    let out = ns.exec(&[PY, "-c", &script]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), p.next()?.parse().ok()?))
        })
        .collect()
}

/// Python printing `TIME SOURCE` for every IGMP query seen on `iface` for
/// `secs` seconds (kernel receive time, seconds).
fn query_log_script(iface: &str, secs: f64) -> String {
    format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x0800))\n\
         s.bind(('{iface}',0))\n\
         s.settimeout(0.1)\n\
         print('ready',flush=True)\n\
         end=time.time()+{secs}\n\
         while time.time()<end:\n\
         \x20try: b=s.recv(2048)\n\
         \x20except socket.timeout: continue\n\
         \x20t=time.time()\n\
         \x20if len(b)<24 or b[9]!=2: continue\n\
         \x20hl=(b[0]&15)*4\n\
         \x20if len(b)>hl and b[hl]==0x11: print('%.4f'%t,socket.inet_ntoa(b[12:16]),flush=True)\n"
    )
}

#[test]
fn two_queriers_elect_one_and_hand_over() {
    let tag = unique_tag();
    let r1 = Netns::new(format!("{tag}-r1"));
    let r2 = Netns::new(format!("{tag}-r2"));
    let sw = Netns::new(format!("{tag}-sw"));
    let dir = TempDir::new(&tag);
    sw.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    sw.ip(&["addr", "add", "10.81.0.9/24", "dev", "br0"]);
    sw.ip(&["link", "set", "br0", "up"]);
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    veth(&r1, &a, "10.81.0.1/24", &sw, &format!("{tag}pa"), "");
    veth(&r2, &b, "10.81.0.2/24", &sw, &format!("{tag}pb"), "");
    for p in [format!("{tag}pa"), format!("{tag}pb")] {
        sw.ip(&["link", "set", &p, "master", "br0"]);
    }
    // QI 2 s, QRI 1 s, robustness 1: OQPI = 1 x 2 + 1/2 = 2.5 s.
    let cfg = |i: &str| {
        format!(
            "{{ igmp: {{ querier_interfaces: [\"{i}\"], version: 3, query_interval: 2, \
             query_response_interval: 1, robustness: 1 }} }}"
        )
    };
    let mut m1 = Mcrd::spawn(&r1, &dir, "m1", &cfg(&a), &[]);
    m1.wait_log("mcrd ready", Duration::from_secs(10));
    let mut m2 = Mcrd::spawn(&r2, &dir, "m2", &cfg(&b), &[]);
    m2.wait_log("mcrd ready", Duration::from_secs(10));
    // Both sent a startup query; .2 heard .1's next one and stopped.
    wait_for(Duration::from_secs(5), "r2 yields", || {
        m2.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["is_querier"] == false
    });
    let seen = count_queries(&sw, "br0", 6.0);
    eprintln!("queries in 6 s: {seen:?}");
    assert!(seen.get("10.81.0.1").copied().unwrap_or(0) >= 2, "{seen:?}");
    assert_eq!(
        seen.get("10.81.0.2"),
        None,
        "only the lowest address queries"
    );
    let i2 = m2.ctl_json(&["igmp", "interfaces"]);
    assert_eq!(i2["interfaces"][0]["querier"], "10.81.0.1", "{i2:#}");
    assert_eq!(i2["interfaces"][0]["is_querier"], false);
    assert_eq!(
        i2["interfaces"][0]["other_querier_present_interval_secs"],
        2.5
    );
    // Stop the querier while a sniffer timestamps every query: r2 must
    // send its first query one OQPI after the last query of r1 (timed on
    // the wire, so a loaded machine's polling delays do not count).
    let mut sniffer = sw
        .command(std::path::Path::new(PY))
        .args(["-c", &query_log_script("br0", 8.0)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sniffer.stdout.take().unwrap());
    let mut ready = String::new();
    use std::io::BufRead;
    lines.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    // At least one query of r1 (QI 2 s) on record before it stops.
    std::thread::sleep(Duration::from_millis(2300));
    let (_, st) = m1.stop();
    assert!(st.success());
    let took = wait_for(Duration::from_secs(6), "r2 takes over", || {
        m2.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["is_querier"] == true
    });
    eprintln!("r2 says it is querier {took:?} after r1 stopped");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
    let _ = sniffer.wait();
    let log: Vec<(f64, String)> = rest
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.parse().ok()?, p.next()?.to_string()))
        })
        .collect();
    let last1 = log
        .iter()
        .filter(|(_, s)| s == "10.81.0.1")
        .map(|(t, _)| *t)
        .fold(f64::NAN, f64::max);
    let first2 = log
        .iter()
        .filter(|(t, s)| s == "10.81.0.2" && *t > last1)
        .map(|(t, _)| *t)
        .fold(f64::NAN, f64::min);
    let gap = first2 - last1;
    eprintln!("queries: {log:?}; handover {gap:.3} s after the last query of r1");
    assert!(
        (2.3..=3.0).contains(&gap),
        "r2 took over {gap:.3} s after r1's last query; OQPI is 2.5 s"
    );
    assert!(
        log.iter().all(|(t, s)| s != "10.81.0.2" || *t > last1),
        "r2 queried while r1 was querier: {log:?}"
    );
    let _ = &mut m2;
}

/// Python that sends crafted IGMP from `iface` (AF_PACKET, IPv4 header with
/// Router Alert built here); `BODY` decides what.
const INJECT: &str = r#"
import socket,struct,sys,time
iface,src=sys.argv[1],sys.argv[2]
s=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x0800))
def csum(b):
    if len(b)%2: b+=b'\0'
    t=sum(struct.unpack('!%dH'%(len(b)//2),b))
    while t>>16: t=(t&0xffff)+(t>>16)
    return (~t)&0xffff
def mac(dst):
    o=socket.inet_aton(dst)
    return bytes([1,0,0x5e,o[1]&0x7f,o[2],o[3]])
def send(dst,igmp,fix=True,ip_total=None):
    ra=b'\x94\x04\x00\x00'
    tot=24+len(igmp) if ip_total is None else ip_total
    h=struct.pack('!BBHHHBBH4s4s',0x46,0xc0,tot,0,0,1,2,0,socket.inet_aton(src),socket.inet_aton(dst))+ra
    h=h[:10]+struct.pack('!H',csum(h))+h[12:]
    s.sendto(h+igmp,(iface,0x0800,0,0,mac(dst)))
def msg(body):
    return body[:2]+struct.pack('!H',csum(body))+body[4:]
def v2(t,g):
    return msg(struct.pack('!BBH4s',t,0,0,socket.inet_aton(g)))
# truncated: 4 bytes of IGMP
send('239.5.5.5',v2(0x16,'239.5.5.5')[:4])
# bad checksum
b=bytearray(v2(0x16,'239.5.5.6')); b[2]^=0xff; send('239.5.5.6',bytes(b))
# unknown type 0x33
send('239.5.5.7',v2(0x33,'239.5.5.7'))
# v3 report announcing 5 records, carrying one
rec=struct.pack('!BBH4s',2,0,0,socket.inet_aton('239.5.5.8'))
send('224.0.0.22',msg(struct.pack('!BBHHH',0x22,0,0,0,5)+rec))
# 10,000 groups from one host
for i in range(10000):
    g='239.6.%d.%d'%(i//250,i%250+1)
    send(g,v2(0x16,g))
    if i%500==499: time.sleep(0.02)
print('sent')
"#;

#[test]
fn hostile_igmp_is_counted_and_forwarding_goes_on() {
    let t = Topo::new(1);
    // The rule forwards 239.1.1.1 from the input to the output o0; IGMP
    // runs on o0, where the attacker (the sink's namespace) is.
    let cfg = format!(
        "{{ rules: [ {} ], igmp: {{ querier_interfaces: [\"{}\"], version: 3 }} }}",
        rule(
            "fwd",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.2", 6000)]
        ),
        t.o(0)
    );
    let m = t.mcrd(&cfg);
    let out = t.sinks[0].exec(&[PY, "-c", INJECT, &t.s(0), "10.78.0.2"]);
    assert!(out.status.success(), "{out:?}");
    let counters = || m.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["counters"].clone();
    wait_for(Duration::from_secs(10), "flood processed", || {
        let c = counters();
        c["v2_reports_received"].as_u64().unwrap_or(0) >= 10_000
    });
    let c = counters();
    eprintln!("counters: {c:#}");
    let inv = &c["invalid"];
    assert!(inv["truncated"].as_u64().unwrap() >= 1, "{c:#}");
    assert!(inv["bad_checksum"].as_u64().unwrap() >= 1, "{c:#}");
    assert!(inv["unknown_type"].as_u64().unwrap() >= 1, "{c:#}");
    assert!(inv["bad_count"].as_u64().unwrap() >= 1, "{c:#}");
    let n = groups(&m)
        .iter()
        .filter(|g| g["group"].as_str().unwrap().starts_with("239.6."))
        .count() as u64;
    assert_eq!(n, 4096, "bounded at max_groups");
    assert_eq!(c["group_limit_dropped"].as_u64().unwrap(), 10_000 - 4096);
    let text = m.ctl(&["igmp", "interfaces"]).stdout;
    assert!(text.contains("group_limit=5904"), "{text}");
    // Still answering and forwarding.
    assert_eq!(m.ctl_json(&["ping"])["pong"], true);
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "5000", "--count", "5000", "--size", "200"],
    );
    assert_exact(&l.finish(), 5000);
    let _ = std::io::stderr().flush();
}

/// Packets the rule's outputs sent, summed (`mcrctl stats`).
fn output_packets(m: &Mcrd, rule: &str) -> u64 {
    let st = m.ctl_json(&["stats"]);
    st["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == rule)
        .flat_map(|r| r["outputs"].as_array().cloned().unwrap_or_default())
        .map(|o| o["packets"].as_u64().unwrap_or(0))
        .sum()
}

fn rule_packets(m: &Mcrd, rule: &str) -> u64 {
    let st = m.ctl_json(&["stats"]);
    st["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == rule)
        .map(|r| r["packets"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn output_follows_membership_at_10kpps() {
    output_follows_membership(true);
}

#[test]
fn output_follows_membership_at_10kpps_through_the_engines() {
    output_follows_membership(false);
}

fn output_follows_membership(fast: bool) {
    let t = Topo::new(1);
    let out = format!(
        "{{ interface: \"{}\", group: \"239.2.2.2\", port: 6000, when: \"members\" }}",
        t.o(0)
    );
    let cfg = format!(
        "{{ rules: [ {} ], igmp: {{ querier_interfaces: [\"{}\"], version: 3, query_interval: 5, \
         query_response_interval: 2, last_member_query_interval_ms: 100 }} }}",
        rule("follow", &t.i(), "239.1.1.1", 5000, &[out]),
        t.o(0)
    );
    // No IPv6 chatter (router solicitations, MLD) in the frame counters.
    t.relay
        .sysctl(&format!("net.ipv6.conf.{}.disable_ipv6", t.o(0)), "1");
    t.sinks[0].sysctl(&format!("net.ipv6.conf.{}.disable_ipv6", t.s(0)), "1");
    let m = t.mcrd(&with_path(&cfg, fast));
    let list = m.ctl_json(&["list"]);
    assert_eq!(list["rules"][0]["state"], "active", "{list:#}");
    // Interface counters: the relay's output (tx) and the sink (rx).
    let tx = |t: &Topo| -> u64 {
        t.relay
            .net_attr(&t.o(0), "statistics/tx_packets")
            .parse()
            .unwrap()
    };
    let rx = |t: &Topo| -> u64 {
        t.sinks[0]
            .net_attr(&t.s(0), "statistics/rx_packets")
            .parse()
            .unwrap()
    };
    // 10 kpps for 6 s.
    let g = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.1",
        5000,
        &["--rate", "10000", "--duration", "6", "--size", "200"],
    );
    // Before the join: the input is captured, nothing leaves.
    assert!(
        wait_until(Duration::from_secs(10), || rule_packets(&m, "follow")
            > 5000),
        "the input is captured"
    );
    assert_eq!(output_packets(&m, "follow"), 0);
    let (tx0, rx0) = (tx(&t), rx(&t));
    std::thread::sleep(Duration::from_millis(500));
    // At 10 kpps a forwarding output would show thousands here.
    assert!(tx(&t) - tx0 <= 5, "only IGMP queries leave the output");
    assert!(rx(&t) - rx0 <= 5, "only IGMP queries reach the sink");
    let tx_join = tx(&t);
    // A host joins (mcrd listen's IP_ADD_MEMBERSHIP sends the report) and
    // leaves 2 s later (its socket closes).
    let l = t.listen(0, "239.2.2.2", 6000, &["--duration", "2"]);
    let got = l.finish();
    let left = Instant::now();
    eprintln!("listener: {}", got["total"]);
    let received = total(&got, "received");
    assert!(received > 10_000, "{got}");
    assert_eq!(
        total(&got, "lost"),
        0,
        "a gapless stream from join to leave"
    );
    assert_eq!(total(&got, "duplicates"), 0);
    assert_eq!(total(&got, "reordered"), 0);
    let streams = got["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{got}");
    let (first, last) = (
        streams[0]["first_seq"].as_u64().unwrap(),
        streams[0]["last_seq"].as_u64().unwrap(),
    );
    // Joined mid-stream; every packet from the first to the last.
    assert!(first > 10_000, "{got}");
    assert_eq!(last - first + 1, received, "{got}");
    // After the leave: LMQT (0.2 s) plus one table swap, then nothing.
    std::thread::sleep(Duration::from_millis(700).saturating_sub(left.elapsed()));
    let (t1, r1) = (tx(&t), rx(&t));
    std::thread::sleep(Duration::from_millis(1000));
    let (t2, r2) = (tx(&t), rx(&t));
    assert!(
        t2 - t1 <= 5,
        "the output stopped after the leave ({})",
        t2 - t1
    );
    assert!(r2 - r1 <= 5, "nothing reaches the sink after the leave");
    let sent = t1 - tx_join;
    assert!(sent >= received, "{sent} sent, {received} received");
    eprintln!(
        "output sent {sent} frames (IGMP included), listener got {received}: {} after the listener closed",
        sent - received
    );
    assert!(g.finish()["sent"].as_u64().unwrap() >= 50_000);
}

#[test]
fn reload_keeps_members_and_sends_no_extra_query() {
    let l = lan();
    let cfg = igmp_cfg(&l.r, 3, "");
    let m = Mcrd::start(&l.router, &l.dir, &cfg);
    let _member = Member::join_sg(&l.host, "10.80.0.2", "239.10.0.5", None);
    wait_for(Duration::from_secs(1), "group learned", || {
        find_group(&m, "239.10.0.5").is_some()
    });
    let sent = |m: &Mcrd| {
        m.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["counters"]["general_queries_sent"]
            .as_u64()
            .unwrap()
    };
    // Wait out the startup queries (QI 5 s: the second is 1.25 s in).
    wait_for(Duration::from_secs(4), "startup queries sent", || {
        sent(&m) >= 2
    });
    let before = sent(&m);
    let up0 = find_group(&m, "239.10.0.5").unwrap()["uptime_secs"]
        .as_f64()
        .unwrap();
    // The same IGMP settings plus an unrelated change: members stay, no
    // query is sent because of the reload.
    std::fs::write(
        l.dir.path("mcrd.json5"),
        igmp_cfg(&l.r, 3, ", multicast_ttl: 3"),
    )
    .unwrap();
    let r = m.ctl_json(&["reload"]);
    assert_eq!(r["sections_changed"], serde_json::json!(["multicast_ttl"]));
    let g = find_group(&m, "239.10.0.5").expect("member kept");
    assert!(g["uptime_secs"].as_f64().unwrap() >= up0);
    assert_eq!(sent(&m), before, "no extra query");
    // Removing the interface from IGMP withdraws its members.
    std::fs::write(l.dir.path("mcrd.json5"), "{ }").unwrap();
    m.ctl_json(&["reload"]);
    assert!(groups(&m).is_empty());
}

#[test]
fn igmp_runs_with_only_cap_net_raw() {
    let user = format!("mcru{}", unique_tag());
    let _ = run("userdel", &[&user]);
    sh(
        "useradd",
        &[
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &user,
        ],
    );
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = run("userdel", &[&self.0]);
        }
    }
    let _del = Del(user.clone());
    let l = lan();
    let mut m = Mcrd::spawn(
        &l.router,
        &l.dir,
        "mcrd",
        &igmp_cfg(&l.r, 2, ""),
        &["--user", &user],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let caps = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        u64::from_str_radix(&eff, 16).unwrap(),
        1 << 13,
        "only CAP_NET_RAW"
    );
    assert_eq!(
        m.ctl_json(&["status"])["protocols"]["igmp"]["running"],
        true
    );
    let _member = Member::join_sg(&l.host, "10.80.0.2", "239.10.0.6", None);
    wait_for(Duration::from_secs(1), "group learned", || {
        find_group(&m, "239.10.0.6").is_some()
    });
    let c = &m.ctl_json(&["igmp", "interfaces"])["interfaces"][0]["counters"];
    assert!(c["general_queries_sent"].as_u64().unwrap() >= 1, "{c:#}");
}
