//! MSDP (RFC 3618) end to end: sessions with FRR's pimd as the judge (mcrd
//! listening and connecting), an SA that FRR originates for a live local
//! source landing in mcrd's SA cache, reloads that keep (or reset) the TCP
//! session, and a hostile peer (a python3 script at a peer's address)
//! sending garbage, bad lengths, a half TLV and 100,000 SAs while FRR's
//! session stays Established, with filters and limits counted.
//!
//! The FRR tests skip, saying so, only where `/usr/lib/frr/pimd` is not
//! installed (`tests/run.sh` installs it).

use mcr_tests::frr::*;
use mcr_tests::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// mcrd's `msdp` section.
fn msdp_section(local: &str, ka: u32, hold: u32, peers: &[String], extra: &str) -> String {
    format!(
        "{{ msdp: {{ enabled: true, local_address: \"{local}\", keepalive_interval: {ka}, hold_time: {hold}, peers: [ {} ]{extra} }} }}",
        peers.join(", ")
    )
}

fn peer(address: &str, extra: &str) -> String {
    format!("{{ address: \"{address}\"{extra} }}")
}

fn mcrd_peer(m: &Mcrd, address: &str) -> Value {
    let v = m.ctl_json(&["msdp", "peers"]);
    v["peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["address"] == address).cloned())
        .unwrap_or(Value::Null)
}

fn mcrd_state(m: &Mcrd, address: &str) -> String {
    mcrd_peer(m, address)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn frr_state(f: &Frr, address: &str) -> String {
    f.json("show ip msdp peer json")[address]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn sa_cache(m: &Mcrd, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["msdp", "sa-cache"];
    a.extend_from_slice(args);
    m.ctl_json(&a)["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The local `addr:port` of the established TCP connection between
/// `local_ip` and `remote_ip` (one end on port 639), read with `ss -tn` in
/// `ns`.
fn tcp_local_port(ns: &Netns, local_ip: &str, remote_ip: &str) -> Option<u16> {
    let out = ns.exec(&["ss", "-tnH", "state", "established"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in text.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() < 4 {
            continue;
        }
        let (loc, rem) = (cols[cols.len() - 2], cols[cols.len() - 1]);
        let Some((lip, lport)) = loc.rsplit_once(':') else {
            continue;
        };
        let Some((rip, rport)) = rem.rsplit_once(':') else {
            continue;
        };
        if lip == local_ip && rip == remote_ip && (lport == "639" || rport == "639") {
            return lport.parse().ok();
        }
    }
    None
}

fn frr_msdp_conf(local: &str, peers: &[&str], extra: &str) -> String {
    // Timers before the peers: FRR applies them to peers created after.
    // FRR 8.4's first connect waits one connect-retry period: 1 s here.
    // Keepalive and hold equal (4 s): below mcrd's hold of 6 s and above
    // its keepalive of 1 s, whichever order FRR reads them in.
    let mut c = String::from("ip msdp timers 4 4 1\n");
    for p in peers {
        c.push_str(&format!("ip msdp peer {p} source {local}\n"));
    }
    c.push_str(extra);
    c.push_str("!\n");
    c
}

/// mcrd and FRR on one veth; `mcrd_addr`/`frr_addr` in 10.66.0.0/24.
struct Pair {
    tag: String,
    dir: TempDir,
    mcr: Netns,
    frr: Netns,
}

impl Pair {
    fn new(mcrd_addr: &str, frr_addr: &str) -> Pair {
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
            &format!("{mcrd_addr}/24"),
            &p.frr,
            &p.f(),
            &format!("{frr_addr}/24"),
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

fn wait_established(m: &Mcrd, f: &Frr, mcrd_addr: &str, frr_addr: &str, within: Duration) {
    let t0 = Instant::now();
    let ok = wait_until(within, || {
        mcrd_state(m, frr_addr) == "established" && frr_state(f, mcrd_addr) == "established"
    });
    assert!(
        ok,
        "not Established on both sides within {within:?}: mcrd sees {:?}, FRR sees {:?}; mcrd log:\n{}",
        mcrd_peer(m, frr_addr),
        f.json("show ip msdp peer json"),
        m.log_text()
    );
    eprintln!("Established on both sides after {:?}", t0.elapsed());
}

/// mcrd has the higher address and listens; FRR connects. Then FRR, an RP
/// with a live local source (a host on its LAN sending to 239.1.2.3),
/// originates an SA that lands in mcrd's SA cache with FRR as origin RP.
#[test]
fn frr_connects_to_listening_mcrd_and_its_sa_is_cached() {
    if !frr_available() {
        return;
    }
    let p = Pair::new("10.66.0.2", "10.66.0.1");
    // The source host on FRR's second interface.
    let src = Netns::new(format!("{}-s", p.tag));
    let lan_f = format!("{}l", p.tag);
    let lan_s = format!("{}s", p.tag);
    veth(
        &p.frr,
        &lan_f,
        "10.67.0.1/24",
        &src,
        &lan_s,
        "10.67.0.10/24",
    );
    src.ip(&["route", "add", "default", "via", "10.67.0.1"]);
    let m = Mcrd::start(
        &p.mcr,
        &p.dir,
        &msdp_section(
            "10.66.0.2",
            1,
            6,
            &[peer("10.66.0.1", ", description: \"frr\"")],
            "",
        ),
    );
    let sub = Subscriber::start(&m, "msdp");
    let conf = format!(
        "interface {}\n ip pim\n!\ninterface {lan_f}\n ip pim\n!\nip pim rp 10.66.0.1 239.0.0.0/8\n{}",
        p.f(),
        frr_msdp_conf("10.66.0.1", &["10.66.0.2"], "")
    );
    let frr = Frr::start_with(&p.frr, &p.dir, &p.f(), &conf);
    wait_established(&m, &frr, "10.66.0.2", "10.66.0.1", Duration::from_secs(10));
    let me = mcrd_peer(&m, "10.66.0.1");
    assert_eq!(me["role"], "listen", "{me}");
    assert_eq!(me["description"], "frr");
    // We accepted: our end is port 639.
    assert_eq!(
        tcp_local_port(&p.mcr, "10.66.0.2", "10.66.0.1"),
        Some(639),
        "ss in mcrd's namespace"
    );
    assert!(
        sub.wait_for(Duration::from_secs(5), |e| e["event"] == "peer-up"
            && e["peer"] == "10.66.0.1")
            .is_some(),
        "no peer-up event"
    );

    // A live source at FRR (the RP): FRR originates an SA for it.
    let _gen = Generator::spawn(
        &src,
        &lan_s,
        "239.1.2.3",
        5000,
        &["--rate", "20", "--duration", "60", "--ttl", "16"],
    );
    let found = wait_until(Duration::from_secs(30), || {
        sa_cache(&m, &[]).iter().any(|e| {
            e["source"] == "10.67.0.10"
                && e["group"] == "239.1.2.3"
                && e["origin_rp"] == "10.66.0.1"
                && e["learned_from"] == "10.66.0.1"
        })
    });
    assert!(
        found,
        "FRR's SA not in mcrd's cache: mcrd {:?}, FRR local SAs {}, FRR upstream {}",
        m.ctl_json(&["msdp", "sa-cache"]),
        frr.vtysh(&["show ip msdp sa"]),
        frr.vtysh(&["show ip pim upstream"])
    );
    // The filters of the command narrow it down; another group is empty.
    assert_eq!(sa_cache(&m, &["--group", "239.1.2.3"]).len(), 1);
    assert_eq!(sa_cache(&m, &["--peer", "10.66.0.1"]).len(), 1);
    assert!(sa_cache(&m, &["--group", "239.9.9.9"]).is_empty());
    let e = &sa_cache(&m, &["--group", "239.1.2.3"])[0];
    let exp = e["expires_in_secs"].as_u64().unwrap();
    assert!(exp > 300 && exp <= 360, "SA-State timer {exp} s");
    assert!(
        sub.wait_for(Duration::from_secs(5), |e| e["event"] == "sa-added"
            && e["source"] == "10.67.0.10")
            .is_some(),
        "no sa-added event"
    );
    let me = mcrd_peer(&m, "10.66.0.1");
    assert!(me["stats"]["sa_in"].as_u64().unwrap() >= 1, "{me}");
    // The table form names the peer and its state.
    let table = m.ctl(&["msdp", "peers"]).stdout;
    assert!(
        table.contains("10.66.0.1") && table.contains("established"),
        "{table}"
    );
}

/// mcrd has the lower address and connects, from an ephemeral port, to
/// FRR's port 639.
#[test]
fn mcrd_connects_to_listening_frr() {
    if !frr_available() {
        return;
    }
    let p = Pair::new("10.66.0.1", "10.66.0.2");
    let m = Mcrd::start(
        &p.mcr,
        &p.dir,
        &msdp_section("10.66.0.1", 1, 6, &[peer("10.66.0.2", "")], ""),
    );
    let frr = Frr::start_with(
        &p.frr,
        &p.dir,
        &p.f(),
        &frr_msdp_conf("10.66.0.2", &["10.66.0.1"], ""),
    );
    // mcrd retries every 30 s (ConnectRetry); FRR listens from its start,
    // and mcrd's first connect may have been refused before that.
    let t0 = Instant::now();
    let ok = wait_until(Duration::from_secs(40), || {
        mcrd_state(&m, "10.66.0.2") == "established"
            && frr_state(&frr, "10.66.0.1") == "established"
    });
    assert!(
        ok,
        "not established: {:?} / {:?}\n{}",
        mcrd_peer(&m, "10.66.0.2"),
        frr.json("show ip msdp peer json"),
        m.log_text()
    );
    eprintln!("established after {:?}", t0.elapsed());
    let me = mcrd_peer(&m, "10.66.0.2");
    assert_eq!(me["role"], "connect", "{me}");
    let port = tcp_local_port(&p.mcr, "10.66.0.1", "10.66.0.2").expect("ss shows the session");
    assert_ne!(port, 639, "the connecting side uses an ephemeral port");
    assert_eq!(me["local"], format!("10.66.0.1:{port}"));
    assert_eq!(me["remote"], "10.66.0.2:639");
}

/// The same, with FRR already listening when mcrd starts: Established
/// within 10 s (mcrd connects at once).
#[test]
fn mcrd_connects_within_10s_when_frr_listens() {
    if !frr_available() {
        return;
    }
    let p = Pair::new("10.66.0.1", "10.66.0.2");
    let frr = Frr::start_with(
        &p.frr,
        &p.dir,
        &p.f(),
        &frr_msdp_conf("10.66.0.2", &["10.66.0.1"], ""),
    );
    let m = Mcrd::start(
        &p.mcr,
        &p.dir,
        &msdp_section("10.66.0.1", 1, 6, &[peer("10.66.0.2", "")], ""),
    );
    wait_established(&m, &frr, "10.66.0.1", "10.66.0.2", Duration::from_secs(10));
}

/// A reload that leaves a peer's connection settings alone (a new
/// description, mesh group, another peer added) keeps its TCP session: the
/// same local port in `ss -tn`, no new establishment. A reload that changes
/// `local_address` resets it: a new session from the new address.
#[test]
fn reload_keeps_unchanged_sessions_and_resets_changed_ones() {
    if !frr_available() {
        return;
    }
    let p = Pair::new("10.66.0.1", "10.66.0.5");
    p.mcr.ip(&["addr", "add", "10.66.0.3/24", "dev", &p.m()]);
    let frr = Frr::start_with(
        &p.frr,
        &p.dir,
        &p.f(),
        &frr_msdp_conf("10.66.0.5", &["10.66.0.1", "10.66.0.3"], ""),
    );
    let cfg = p.dir.path("mcrd.json5");
    let m = Mcrd::start(
        &p.mcr,
        &p.dir,
        &msdp_section("10.66.0.1", 1, 6, &[peer("10.66.0.5", "")], ""),
    );
    wait_established(&m, &frr, "10.66.0.1", "10.66.0.5", Duration::from_secs(10));
    let port = tcp_local_port(&p.mcr, "10.66.0.1", "10.66.0.5").expect("session");
    let established = |m: &Mcrd| mcrd_peer(m, "10.66.0.5")["stats"]["established_count"].clone();
    assert_eq!(established(&m), 1);

    // Unchanged connection settings: description and mesh group change,
    // a peer is added.
    std::fs::write(
        &cfg,
        msdp_section(
            "10.66.0.1",
            1,
            6,
            &[
                peer("10.66.0.5", ", description: \"judge\", mesh_group: \"g\""),
                peer("10.66.0.9", ""),
            ],
            "",
        ),
    )
    .unwrap();
    let r = m.ctl_json(&["reload"]);
    assert_eq!(r["sections_changed"], serde_json::json!(["msdp"]), "{r}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(mcrd_state(&m, "10.66.0.5"), "established");
    assert_eq!(frr_state(&frr, "10.66.0.1"), "established");
    assert_eq!(
        tcp_local_port(&p.mcr, "10.66.0.1", "10.66.0.5"),
        Some(port),
        "the session's local port changed: it was reset"
    );
    assert_eq!(established(&m), 1);
    let me = mcrd_peer(&m, "10.66.0.5");
    assert_eq!(me["description"], "judge");
    assert_eq!(me["mesh_group"], "g");
    assert_eq!(mcrd_state(&m, "10.66.0.9"), "connecting");

    // config save writes the running section (with the peer added) back
    // to the config file.
    let out = m.ctl(&["config", "save"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let saved = mcr_config::parse_str(&text, "saved").expect("saved file parses");
    assert_eq!(saved.msdp.peers.len(), 2, "{text}");
    assert_eq!(saved.msdp.peers[0].description.as_deref(), Some("judge"));

    // A changed local_address resets the session: FRR sees the new peer.
    std::fs::write(
        &cfg,
        msdp_section("10.66.0.3", 1, 6, &[peer("10.66.0.5", "")], ""),
    )
    .unwrap();
    m.ctl_json(&["reload"]);
    let ok = wait_until(Duration::from_secs(40), || {
        frr_state(&frr, "10.66.0.3") == "established"
            && mcrd_state(&m, "10.66.0.5") == "established"
    });
    assert!(
        ok,
        "no new session from 10.66.0.3: {:?}\n{}",
        frr.json("show ip msdp peer json"),
        m.log_text()
    );
    let new_port = tcp_local_port(&p.mcr, "10.66.0.3", "10.66.0.5").expect("new session");
    assert!(tcp_local_port(&p.mcr, "10.66.0.1", "10.66.0.5").is_none());
    assert_ne!(new_port, 0);
    let me = mcrd_peer(&m, "10.66.0.5");
    assert_eq!(me["local"], format!("10.66.0.3:{new_port}"));
}

/// `mcrctl msdp add-peer` / `remove-peer` change the running peers; the
/// added peer comes up with FRR; removal closes it.
#[test]
fn add_and_remove_peer_at_run_time() {
    if !frr_available() {
        return;
    }
    let p = Pair::new("10.66.0.1", "10.66.0.2");
    let frr = Frr::start_with(
        &p.frr,
        &p.dir,
        &p.f(),
        &frr_msdp_conf("10.66.0.2", &["10.66.0.1"], ""),
    );
    let m = Mcrd::start(&p.mcr, &p.dir, &msdp_section("10.66.0.1", 1, 6, &[], ""));
    assert!(mcrd_peer(&m, "10.66.0.2").is_null());
    let v = m.ctl_json(&[
        "msdp",
        "add-peer",
        "--address",
        "10.66.0.2",
        "--description",
        "added",
        "--mesh-group",
        "mg",
        "--default-peer",
    ]);
    assert_eq!(v["peers"][0]["address"], "10.66.0.2", "{v}");
    wait_established(&m, &frr, "10.66.0.1", "10.66.0.2", Duration::from_secs(10));
    let me = mcrd_peer(&m, "10.66.0.2");
    assert_eq!(me["default_peer"], true);
    assert_eq!(me["mesh_group"], "mg");
    // Added again with only a new description: that changes, the mesh
    // group and flag stay, and the session is not reset.
    let up = me["uptime_secs"].as_u64();
    m.ctl_json(&[
        "msdp",
        "add-peer",
        "--address",
        "10.66.0.2",
        "--description",
        "renamed",
    ]);
    let me = mcrd_peer(&m, "10.66.0.2");
    assert_eq!(me["description"], "renamed", "{me}");
    assert_eq!(me["mesh_group"], "mg", "{me}");
    assert_eq!(me["default_peer"], true, "{me}");
    assert_eq!(me["state"], "established", "{me}");
    assert!(me["uptime_secs"].as_u64() >= up, "session reset: {me}");
    let v = m.ctl_json(&["msdp", "remove-peer", "--address", "10.66.0.2"]);
    assert_eq!(v["peers"], serde_json::json!([]));
    assert!(
        wait_until(Duration::from_secs(10), || frr_state(&frr, "10.66.0.1")
            != "established"),
        "FRR still established after remove-peer"
    );
    let out = m.ctl(&["msdp", "remove-peer", "--address", "10.66.0.2"]);
    assert_ne!(out.code, 0, "removing a peer twice must fail");
    assert!(out.stderr.contains("not an MSDP peer"), "{}", out.stderr);
}

/// A python3 MSDP "peer": connects from `local` to `peer`:639 and plays
/// one scenario; prints one JSON line.
const HOSTILE_PEER: &str = r#"
import json, socket, struct, sys, threading, time
mode, local, peer = sys.argv[1], sys.argv[2], sys.argv[3]
def conn():
    for _ in range(300):
        s = socket.socket()
        s.bind((local, 0))
        try:
            s.connect((peer, 639))
            return s
        except OSError:
            s.close()
            time.sleep(0.1)
    sys.exit("cannot connect")
def sa(rp, entries):
    b = struct.pack("!BHB4s", 1, 8 + 12 * len(entries), len(entries), socket.inet_aton(rp))
    for src, grp in entries:
        b += b"\x00\x00\x00\x20" + socket.inet_aton(grp) + socket.inet_aton(src)
    return b
def wait_closed(s, timeout):
    s.settimeout(timeout)
    t = time.time()
    try:
        while True:
            if not s.recv(65536):
                return time.time() - t
    except socket.timeout:
        return -1
    except OSError:
        return time.time() - t
KA = b"\x04\x00\x03"
s = conn()
if mode == "garbage":
    s.sendall(b"\xde\xad\xbe\xef" * 1024)
elif mode == "len0":
    s.sendall(KA + b"\x01\x00\x00")
elif mode == "len65535":
    s.sendall(KA + b"\x01\xff\xff" + b"\x00" * 64)
elif mode == "half":
    s.sendall(KA + b"\x01\x00\x20\x01\x0a")
elif mode == "feed":
    # Three SAs with RP = our address, then keepalives until killed.
    s.sendall(KA + sa(local, [("10.71.0.%d" % i, "239.5.5.5") for i in (1, 2, 3)]))
    threading.Thread(target=lambda: [s.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    print(json.dumps({"sent": 3}), flush=True)
    while True:
        time.sleep(1)
        s.sendall(KA)
elif mode == "nonsense":
    # One valid SA entry among entries no SA can carry (RFC 3618 12.2),
    # then a message whose RP is 0.0.0.0; keepalives until killed.
    bad = [("10.71.0.1", "239.5.5.5"), ("0.0.0.0", "239.5.5.5"),
           ("255.255.255.255", "239.5.5.5"), ("239.1.1.1", "239.5.5.5"),
           ("127.0.0.1", "239.5.5.5"), ("10.71.0.2", "10.1.1.1"),
           ("10.71.0.3", "224.0.0.13")]
    s.sendall(KA + sa(local, bad) + sa("0.0.0.0", [("10.71.0.4", "239.5.5.5"), ("10.71.0.5", "239.5.5.6")]))
    threading.Thread(target=lambda: [s.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    print(json.dumps({"sent": 9}), flush=True)
    while True:
        time.sleep(1)
        s.sendall(KA)
elif mode == "transit":
    # Three SAs originated by another RP (10.99.0.1), re-sent every second
    # (they also serve as keepalives).
    threading.Thread(target=lambda: [s.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    while True:
        s.sendall(sa("10.99.0.1", [("10.73.0.%d" % i, "239.6.6.6") for i in (1, 2, 3)]))
        time.sleep(1)
elif mode == "burst":
    # 100,000 SAs with RP = our address, 255 a TLV: the first 100 in the
    # filtered group 239.9.0.1, then 20 from 10.201.0.0/24 (passed on to
    # FRR), then the rest from 11.0.0.0/8, each source once.
    entries = []
    for i in range(100000):
        if i < 100:
            entries.append(("10.202.0.%d" % (i + 1), "239.9.0.1"))
        elif i < 120:
            entries.append(("10.201.0.%d" % (i - 99), "239.1.0.1"))
        else:
            entries.append((socket.inet_ntoa(struct.pack("!I", 0x0B000000 + i)), "239.1.0.1"))
    data = KA + b"".join(sa(local, entries[k:k + 255]) for k in range(0, len(entries), 255))
    # Drain what mcrd sends so its writes never block on us.
    threading.Thread(target=lambda: [s.recv(65536) for _ in iter(int, 1)], daemon=True).start()
    s.sendall(data)
    print(json.dumps({"sent": len(entries), "bytes": len(data)}), flush=True)
    while True:
        time.sleep(1)
        s.sendall(KA)
print(json.dumps({"closed_after": wait_closed(s, 30)}), flush=True)
"#;

/// A background python peer, killed on drop (also when a test fails).
struct PyPeer(Child);

impl PyPeer {
    fn spawn(ns: &Netns, script: &std::path::Path, args: &[&str]) -> PyPeer {
        PyPeer(
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "python3"])
                .arg(script)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hostile(ns: &Netns, script: &std::path::Path, mode: &str) -> Value {
    let out = ns.exec(&[
        "python3",
        script.to_str().unwrap(),
        mode,
        "10.66.0.1",
        "10.68.0.2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "hostile peer {mode}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A hostile peer (python at 10.66.0.1, mcrd listening at 10.68.0.2):
/// garbage, a TLV of length 0 and of 65535 each close its session with
/// the reason logged and shown; a half TLV then silence is closed by the
/// Hold timer; 100,000 SAs in a burst are filtered (239.9.0.0/16 denied
/// in), limited (`sa_limit: 5000`, the rest counted) with memory bounded,
/// and only what FRR's outbound filter lets through reaches FRR. FRR's
/// session (FRR at 10.68.0.1 connects to mcrd) stays Established
/// throughout.
#[test]
fn hostile_peer_is_closed_or_limited_while_frr_stays_established() {
    if !frr_available() {
        return;
    }
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let mcr = Netns::new(format!("{tag}-m"));
    let bad = Netns::new(format!("{tag}-p"));
    let frr_ns = Netns::new(format!("{tag}-f"));
    veth(
        &mcr,
        &format!("{tag}a"),
        "10.66.0.2/24",
        &bad,
        &format!("{tag}b"),
        "10.66.0.1/24",
    );
    veth(
        &mcr,
        &format!("{tag}c"),
        "10.68.0.2/24",
        &frr_ns,
        &format!("{tag}d"),
        "10.68.0.1/24",
    );
    frr_ns.ip(&["route", "add", "10.66.0.0/24", "via", "10.68.0.2"]);
    bad.ip(&["route", "add", "10.68.0.0/24", "via", "10.66.0.2"]);
    let frr = Frr::start_with(
        &frr_ns,
        &dir,
        &format!("{tag}d"),
        // FRR's peer-RPF check (RFC 3618 10.1.3) accepts the python
        // peer's SAs because its route toward their RP (10.66.0.1) goes
        // through mcrd's address 10.68.0.2, on a PIM interface.
        &format!(
            "interface {tag}d\n ip pim\n!\n{}",
            frr_msdp_conf("10.68.0.1", &["10.68.0.2"], "")
        ),
    );
    let m = Mcrd::start(
        &mcr,
        &dir,
        &msdp_section(
            "10.68.0.2",
            1,
            6,
            &[
                peer(
                    "10.66.0.1",
                    ", description: \"hostile\", sa_limit: 5000, sa_filter_in: [ { group: \"239.9.0.0/16\" } ]",
                ),
                peer(
                    "10.68.0.1",
                    ", sa_filter_out: [ { source: \"11.0.0.0/8\" } ]",
                ),
            ],
            ", sa_cache_limit: 8000",
        ),
    );
    wait_established(&m, &frr, "10.68.0.2", "10.68.0.1", Duration::from_secs(40));
    let script = dir.file("peer.py", HOSTILE_PEER);
    let sub = Subscriber::start(&m, "msdp");
    let frr_up = |m: &Mcrd| {
        assert_eq!(mcrd_state(m, "10.68.0.1"), "established");
        assert_eq!(frr_state(&frr, "10.68.0.2"), "established");
    };

    for (mode, reason) in [
        ("garbage", "above 9192"),
        ("len0", "below 3"),
        ("len65535", "above 9192"),
    ] {
        let r = hostile(&bad, &script, mode);
        let after = r["closed_after"].as_f64().unwrap();
        assert!((0.0..5.0).contains(&after), "{mode}: not closed: {r}");
        let me = mcrd_peer(&m, "10.66.0.1");
        let err = me["last_error"].as_str().unwrap_or("");
        assert!(err.contains(reason), "{mode}: last error {err:?}");
        assert!(m.log_text().contains(reason), "{mode}: reason not logged");
        frr_up(&m);
    }
    // Half a TLV then silence: the Hold timer (6 s) closes it.
    let r = hostile(&bad, &script, "half");
    let after = r["closed_after"].as_f64().unwrap();
    assert!((4.0..15.0).contains(&after), "half TLV: {r}");
    let me = mcrd_peer(&m, "10.66.0.1");
    assert_eq!(me["last_error"], "hold timer expired", "{me}");
    assert!(
        sub.wait_for(Duration::from_secs(5), |e| e["event"] == "peer-down"
            && e["peer"] == "10.66.0.1"
            && e["reason"] == "hold timer expired")
            .is_some(),
        "no peer-down event: {:?}",
        sub.all()
    );
    frr_up(&m);

    // The burst.
    let rss_before = rss_kib(m.pid());
    let _burst = PyPeer::spawn(&bad, &script, &["burst", "10.66.0.1", "10.68.0.2"]);
    let t0 = Instant::now();
    let done = wait_until(Duration::from_secs(60), || {
        let me = mcrd_peer(&m, "10.66.0.1");
        me["stats"]["sa_in"].as_u64() == Some(100_000)
    });
    let me = mcrd_peer(&m, "10.66.0.1");
    assert!(done, "burst not all read: {me}");
    eprintln!("100,000 SAs read in {:?}", t0.elapsed());
    let rss_after = rss_kib(m.pid());
    eprintln!("mcrd RSS {rss_before} KiB before, {rss_after} KiB after the burst");
    assert_eq!(me["state"], "established", "{me}");
    assert_eq!(me["stats"]["filtered_in"], 100, "{me}");
    assert_eq!(me["sa_cached"], 5000, "{me}");
    assert_eq!(me["stats"]["limit_drops"], 100_000 - 100 - 5000, "{me}");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // Filtered SAs are not cached.
    assert!(sa_cache(&m, &["--group", "239.9.0.1"]).is_empty());
    assert_eq!(sa_cache(&m, &["--peer", "10.66.0.1"]).len(), 5000);
    // FRR gets only the 20 SAs its outbound filter lets through.
    let frr_sas = |f: &Frr| -> Vec<(String, String)> {
        let v = f.json("show ip msdp sa json");
        let mut out = Vec::new();
        if let Some(groups) = v.as_object() {
            for (g, sources) in groups {
                if let Some(s) = sources.as_object() {
                    for src in s.keys() {
                        out.push((src.clone(), g.clone()));
                    }
                }
            }
        }
        out
    };
    assert!(
        wait_until(Duration::from_secs(20), || frr_sas(&frr).len() >= 20),
        "FRR has {:?}; FRR log {}; FRR peer {}; mcrd toward FRR {}",
        frr_sas(&frr),
        std::fs::read_to_string(frr.dir.join("pimd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("SA") || l.contains("sa"))
            .take(40)
            .collect::<Vec<_>>()
            .join("\n"),
        frr.json("show ip msdp peer json"),
        mcrd_peer(&m, "10.68.0.1")
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = frr_sas(&frr);
    assert_eq!(got.len(), 20, "FRR got {} SAs", got.len());
    assert!(
        got.iter()
            .all(|(s, g)| s.starts_with("10.201.0.") && g == "239.1.0.1"),
        "{got:?}"
    );
    let to_frr = mcrd_peer(&m, "10.68.0.1");
    assert_eq!(to_frr["stats"]["filtered_out"], 5000 - 20, "{to_frr}");
    frr_up(&m);
}

/// A mesh group of three mcrd (A 10.70.0.20, B .21, C .22, each peering
/// with the other two in mesh group `m`) fed by a python peer outside the
/// mesh (10.70.0.10, a peer of A only) on one bridge: A floods the SAs to B
/// and C, which cache them once each and do not re-flood them inside the
/// mesh (RFC 3618 section 10.2): per-peer `sa_in` counters show it.
#[test]
fn mesh_group_gets_each_sa_once_and_does_not_reflood() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let hub = Netns::new(format!("{tag}-h"));
    let br = format!("{tag}br");
    hub.ip(&["link", "add", &br, "type", "bridge"]);
    hub.ip(&["link", "set", &br, "up"]);
    let mut nss = Vec::new();
    for (i, name) in ["a", "b", "c", "p"].iter().enumerate() {
        let ns = Netns::new(format!("{tag}-{name}"));
        let addr = if *name == "p" {
            "10.70.0.10/24".to_string()
        } else {
            format!("10.70.0.{}/24", 20 + i)
        };
        let hub_end = format!("{tag}h{name}");
        veth(&ns, &format!("{tag}{name}"), &addr, &hub, &hub_end, "");
        hub.ip(&["link", "set", &hub_end, "master", &br]);
        nss.push(ns);
    }
    let mesh = |a: &str| peer(a, ", mesh_group: \"m\"");
    let a = Mcrd::spawn(
        &nss[0],
        &dir,
        "a",
        &msdp_section(
            "10.70.0.20",
            1,
            6,
            &[
                mesh("10.70.0.21"),
                mesh("10.70.0.22"),
                peer("10.70.0.10", ""),
            ],
            "",
        ),
        &[],
    );
    let b = Mcrd::spawn(
        &nss[1],
        &dir,
        "b",
        &msdp_section(
            "10.70.0.21",
            1,
            6,
            &[mesh("10.70.0.20"), mesh("10.70.0.22")],
            "",
        ),
        &[],
    );
    let c = Mcrd::spawn(
        &nss[2],
        &dir,
        "c",
        &msdp_section(
            "10.70.0.22",
            1,
            6,
            &[mesh("10.70.0.20"), mesh("10.70.0.21")],
            "",
        ),
        &[],
    );
    let (mut a, mut b, mut c) = (a, b, c);
    for m in [&mut a, &mut b, &mut c] {
        m.wait_log("mcrd ready", Duration::from_secs(10));
    }
    // ConnectRetry is 30 s: a connect refused before the other mcrd
    // listened is retried then.
    let all_up = wait_until(Duration::from_secs(45), || {
        mcrd_state(&a, "10.70.0.21") == "established"
            && mcrd_state(&a, "10.70.0.22") == "established"
            && mcrd_state(&b, "10.70.0.22") == "established"
    });
    assert!(
        all_up,
        "mesh not up: A {} B {}",
        a.ctl_json(&["msdp", "peers"]),
        b.ctl_json(&["msdp", "peers"])
    );
    let script = dir.file("peer.py", HOSTILE_PEER);
    let _feed = PyPeer::spawn(&nss[3], &script, &["feed", "10.70.0.10", "10.70.0.20"]);
    let cached = |m: &Mcrd| sa_cache(m, &["--group", "239.5.5.5"]).len();
    let ok = wait_until(Duration::from_secs(20), || {
        cached(&a) == 3 && cached(&b) == 3 && cached(&c) == 3
    });
    assert!(
        ok,
        "SAs not everywhere: A {} B {} C {}",
        cached(&a),
        cached(&b),
        cached(&c)
    );
    // Let any re-flooding happen before counting.
    std::thread::sleep(Duration::from_secs(3));
    let sa_in = |m: &Mcrd, p: &str| mcrd_peer(m, p)["stats"]["sa_in"].as_u64().unwrap();
    let sa_out = |m: &Mcrd, p: &str| mcrd_peer(m, p)["stats"]["sa_out"].as_u64().unwrap();
    assert_eq!(sa_in(&a, "10.70.0.10"), 3);
    assert_eq!(sa_out(&a, "10.70.0.21"), 3);
    assert_eq!(sa_out(&a, "10.70.0.22"), 3);
    assert_eq!(sa_out(&a, "10.70.0.10"), 0, "sent back to its sender");
    // Once each, from A; nothing re-flooded inside the mesh.
    assert_eq!(sa_in(&b, "10.70.0.20"), 3);
    assert_eq!(sa_in(&c, "10.70.0.20"), 3);
    assert_eq!(sa_in(&b, "10.70.0.22"), 0);
    assert_eq!(sa_in(&c, "10.70.0.21"), 0);
    assert_eq!(sa_in(&a, "10.70.0.21"), 0);
    assert_eq!(sa_in(&a, "10.70.0.22"), 0);
    for m in [&b, &c] {
        for e in sa_cache(m, &["--group", "239.5.5.5"]) {
            assert_eq!(e["origin_rp"], "10.70.0.10");
            assert_eq!(e["learned_from"], "10.70.0.20");
        }
    }
}

/// Port 639 is privileged. Started as root with `--user nobody` and MSDP in
/// the file, mcrd binds it before switching users: a peer with a lower
/// address connects and its SAs are cached while mcrd runs as nobody. A
/// daemon that started without MSDP and gets it by reload cannot bind it
/// any more: `mcrctl msdp peers` says so (`listening: false`, the error),
/// and so does the log.
#[test]
fn port_639_is_bound_before_privileges_drop_and_a_late_reload_says_why_not() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    sh("chmod", &["755", dir.0.to_str().unwrap()]);
    let m_ns = Netns::new(format!("{tag}-m"));
    let p_ns = Netns::new(format!("{tag}-p"));
    veth(
        &m_ns,
        &format!("{tag}m"),
        "10.72.0.2/24",
        &p_ns,
        &format!("{tag}p"),
        "10.72.0.1/24",
    );
    let section = msdp_section("10.72.0.2", 1, 6, &[peer("10.72.0.1", "")], "");
    let mut m = Mcrd::spawn(&m_ns, &dir, "early", &section, &["--user", "nobody"]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let uid = std::fs::read_to_string(format!("/proc/{}/status", m.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(uid, "65534", "mcrd should run as nobody");
    let v = m.ctl_json(&["msdp", "peers"]);
    assert_eq!(v["listening"], true, "{v}");
    let script = dir.file("peer.py", HOSTILE_PEER);
    let _feed = PyPeer::spawn(&p_ns, &script, &["feed", "10.72.0.1", "10.72.0.2"]);
    assert!(
        wait_until(Duration::from_secs(10), || sa_cache(
            &m,
            &["--peer", "10.72.0.1"]
        )
        .len()
            == 3),
        "{}",
        m.ctl_json(&["msdp", "peers"])
    );
    assert_eq!(mcrd_state(&m, "10.72.0.1"), "established");
    drop(m);

    // Started without MSDP, enabled by reload: no privilege left to bind.
    let mut late = Mcrd::spawn(&m_ns, &dir, "late", "{ }", &["--user", "nobody"]);
    late.wait_log("mcrd ready", Duration::from_secs(10));
    std::fs::write(dir.path("late.json5"), &section).unwrap();
    let r = late.ctl_json(&["reload"]);
    assert_eq!(r["sections_changed"], serde_json::json!(["msdp"]), "{r}");
    let v = late.ctl_json(&["msdp", "peers"]);
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["listening"], false, "{v}");
    let err = v["listen_error"].as_str().unwrap_or("");
    assert!(
        err.contains("Permission denied") && err.contains("CAP_NET_BIND_SERVICE"),
        "{err}"
    );
    assert!(late.log_text().contains("cannot listen on TCP 0.0.0.0:639"));
    let table = late.ctl(&["msdp", "peers"]).stdout;
    assert!(table.contains("listen error"), "{table}");
    let st = late.ctl_json(&["status"]);
    assert_eq!(st["protocols"]["msdp"]["running"], true, "{st}");
}

/// Peer-RPF (RFC 3618 10.1.3) from the unicast routes: with two peers, an
/// SA whose originating RP (10.99.0.1) is neither the peer nor reached
/// through it is refused (`rpf_fail`); once the route toward the RP goes
/// through that peer, the same SAs are accepted.
#[test]
fn peer_rpf_follows_the_route_toward_the_rp() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let m_ns = Netns::new(format!("{tag}-m"));
    let p_ns = Netns::new(format!("{tag}-p"));
    veth(
        &m_ns,
        &format!("{tag}m"),
        "10.66.0.2/24",
        &p_ns,
        &format!("{tag}p"),
        "10.66.0.1/24",
    );
    // 10.66.0.50 never answers: a second configured peer, so the
    // "only peer" rule does not apply.
    let m = Mcrd::start(
        &m_ns,
        &dir,
        &msdp_section(
            "10.66.0.2",
            1,
            6,
            &[peer("10.66.0.1", ""), peer("10.66.0.50", "")],
            "",
        ),
    );
    let script = dir.file("peer.py", HOSTILE_PEER);
    let _transit = PyPeer::spawn(&p_ns, &script, &["transit", "10.66.0.1", "10.66.0.2"]);
    let stats = |m: &Mcrd| mcrd_peer(m, "10.66.0.1")["stats"].clone();
    assert!(
        wait_until(Duration::from_secs(10), || stats(&m)["rpf_fail"].as_u64()
            >= Some(6)),
        "{}",
        mcrd_peer(&m, "10.66.0.1")
    );
    assert!(sa_cache(&m, &[]).is_empty());
    m_ns.ip(&["route", "add", "10.99.0.0/24", "via", "10.66.0.1"]);
    assert!(
        wait_until(Duration::from_secs(10), || sa_cache(
            &m,
            &["--group", "239.6.6.6"]
        )
        .len()
            == 3),
        "{}",
        mcrd_peer(&m, "10.66.0.1")
    );
    for e in sa_cache(&m, &[]) {
        assert_eq!(e["origin_rp"], "10.99.0.1");
        assert_eq!(e["learned_from"], "10.66.0.1");
    }
}

/// SA entries no SA can carry (RFC 3618 section 12.2: source 0.0.0.0,
/// 255.255.255.255, multicast or loopback; a unicast or link-local group;
/// an RP of 0.0.0.0) are neither cached nor kept; `mcrctl msdp peers`
/// counts them per reason, and the valid entry beside them is cached.
#[test]
fn nonsense_sa_entries_are_rejected_and_counted_per_reason() {
    let tag = unique_tag();
    let dir = TempDir::new(&tag);
    let m_ns = Netns::new(format!("{tag}-m"));
    let p_ns = Netns::new(format!("{tag}-p"));
    veth(
        &m_ns,
        &format!("{tag}m"),
        "10.74.0.2/24",
        &p_ns,
        &format!("{tag}p"),
        "10.74.0.1/24",
    );
    let m = Mcrd::start(
        &m_ns,
        &dir,
        &msdp_section("10.74.0.2", 1, 6, &[peer("10.74.0.1", "")], ""),
    );
    let script = dir.file("peer.py", HOSTILE_PEER);
    let _feed = PyPeer::spawn(&p_ns, &script, &["nonsense", "10.74.0.1", "10.74.0.2"]);
    assert!(
        wait_until(Duration::from_secs(15), || mcrd_peer(&m, "10.74.0.1")
            ["stats"]["sa_in"]
            == 9),
        "{}",
        m.ctl_json(&["msdp", "peers"])
    );
    let me = mcrd_peer(&m, "10.74.0.1");
    assert_eq!(me["state"], "established", "{me}");
    assert_eq!(me["stats"]["invalid_source"], 4, "{me}");
    assert_eq!(me["stats"]["invalid_group"], 2, "{me}");
    assert_eq!(me["stats"]["invalid_rp"], 2, "{me}");
    assert_eq!(me["sa_cached"], 1, "{me}");
    let cached = sa_cache(&m, &["--peer", "10.74.0.1"]);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0]["source"], "10.71.0.1", "{cached:?}");
}
