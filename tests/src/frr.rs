//! FRRouting as the judge: zebra + pimd in a test namespace, read with
//! `vtysh --vty_socket DIR`, and an `mcrctl subscribe` reader. Shared by
//! the PIM and MSDP end-to-end tests.

use crate::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// FRR's pimd.
pub const PIMD: &str = "/usr/lib/frr/pimd";
/// FRR's zebra.
pub const ZEBRA: &str = "/usr/lib/frr/zebra";

/// Whether FRR is installed; says SKIPPED when not.
pub fn frr_available() -> bool {
    let ok = Path::new(PIMD).exists()
        && Path::new(ZEBRA).exists()
        && Path::new("/usr/bin/vtysh").exists();
    if !ok {
        eprintln!("SKIPPED: FRR is not installed ({PIMD}); install the Debian package frr (tests/run.sh does) to run the FRR tests");
    }
    ok
}

/// zebra + pimd in a namespace, with their own state directory; both
/// killed on drop (also when the test fails).
pub struct Frr {
    /// Namespace the daemons run in.
    pub ns: String,
    /// State directory (configs, pid files, vty sockets, logs).
    pub dir: PathBuf,
    /// The interface `ip pim` is configured on.
    pub iface: String,
    tag: String,
    pimd_conf: String,
}

/// The pid in a pid file.
pub fn pid_of(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Signals the pid of a pid file, SIGKILL after 3 s, and removes the file.
pub fn kill_pid_file(file: &Path, sig: i32) {
    if let Some(pid) = pid_of(file) {
        unsafe { libc::kill(pid, sig) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(file);
    }
}

impl Frr {
    /// Starts zebra and pimd in `ns` with `ip pim` and `ip pim hello 5` on
    /// `iface`. The flags are those of the installed FRR (`pimd --help`):
    /// `-N` only prefixes the config and socket paths, so the daemons are
    /// started inside the namespace with `ip netns exec`; `--vty_socket`,
    /// `-z`, `-i` and `-f` keep every file in this test's directory. They
    /// run as the `frr` user (vtysh needs the `frrvty` group), so the
    /// directory is world-writable.
    pub fn start(ns: &Netns, dir: &TempDir, iface: &str) -> Frr {
        let conf = format!("interface {iface}\n ip pim\n ip pim hello 5\n!\n");
        Frr::start_with(ns, dir, iface, &conf)
    }

    /// Starts zebra and pimd in `ns` with `pimd_conf` as pimd's startup
    /// configuration (e.g. several `interface X / ip pim` stanzas,
    /// `ip pim rp A G/L`, `ip msdp peer ...` under `router pim`).
    /// `iface` is the interface the neighbour helpers read.
    pub fn start_with(ns: &Netns, dir: &TempDir, iface: &str, pimd_conf: &str) -> Frr {
        let tag = unique_tag();
        let d = dir.path("frr");
        std::fs::create_dir_all(&d).unwrap();
        sh("chmod", &["777", d.to_str().unwrap()]);
        let f = Frr {
            ns: ns.name.clone(),
            dir: d,
            iface: iface.to_string(),
            tag,
            pimd_conf: pimd_conf.to_string(),
        };
        std::fs::write(f.dir.join("zebra.conf"), "!\n").unwrap();
        f.write_pimd_conf();
        f.spawn("zebra");
        f.wait_vty("zebra");
        f.spawn("pimd");
        f.wait_vty("pimd");
        f
    }

    fn write_pimd_conf(&self) {
        std::fs::write(self.dir.join("pimd.conf"), &self.pimd_conf).unwrap();
        sh(
            "chmod",
            &["644", self.dir.join("pimd.conf").to_str().unwrap()],
        );
        sh(
            "chmod",
            &["644", self.dir.join("zebra.conf").to_str().unwrap()],
        );
    }

    fn spawn(&self, daemon: &str) {
        let d = &self.dir;
        let p = |n: &str| d.join(n).to_string_lossy().into_owned();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                &format!("/usr/lib/frr/{daemon}"),
                "-d",
                "-N",
            ])
            .arg(&self.tag)
            .arg("--vty_socket")
            .arg(d)
            .args(["-z", &p("zserv.api")])
            .args(["-i", &p(&format!("{daemon}.pid"))])
            .args(["-f", &p(&format!("{daemon}.conf"))])
            .args(["--log", &format!("file:{}", p(&format!("{daemon}.log")))])
            .output()
            .expect("start FRR");
        assert!(
            out.status.success(),
            "{daemon} failed to start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_vty(&self, daemon: &str) {
        let sock = self.dir.join(format!("{daemon}.vty"));
        assert!(
            wait_until(Duration::from_secs(10), || sock.exists()),
            "{daemon} vty socket did not appear"
        );
    }

    /// Runs vtysh commands against these daemons; their output.
    pub fn vtysh(&self, cmds: &[&str]) -> String {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        let out = c.output().expect("vtysh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One `... json` show command, parsed (Null when not JSON).
    pub fn json(&self, cmd: &str) -> Value {
        serde_json::from_str(&self.vtysh(&[cmd])).unwrap_or(Value::Null)
    }

    /// FRR's neighbours on the interface: address -> object.
    pub fn neighbors(&self) -> serde_json::Map<String, Value> {
        self.json("show ip pim neighbor json")[&self.iface]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// The DR FRR elected on its interface.
    pub fn dr(&self) -> String {
        let v = self.json(&format!("show ip pim interface {} json", self.iface));
        v[&self.iface]["drAddress"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Sets FRR's DR priority on its interface.
    pub fn set_priority(&self, prio: u32) {
        self.vtysh(&[
            "configure terminal",
            &format!("interface {}", self.iface),
            &format!("ip pim drpriority {prio}"),
        ]);
    }

    /// Kills pimd without a goodbye (SIGKILL) and starts it again: a new
    /// Generation ID on a neighbour that never left.
    pub fn restart_pimd_hard(&self) {
        kill_pid_file(&self.dir.join("pimd.pid"), libc::SIGKILL);
        let _ = std::fs::remove_file(self.dir.join("pimd.vty"));
        self.spawn("pimd");
        self.wait_vty("pimd");
    }

    /// Like [`restart_pimd_hard`](Self::restart_pimd_hard), with `rp` (for
    /// 239.0.0.0/8) set in the new pimd before its startup configuration
    /// turns PIM on on any interface: its first Hello, with the new
    /// Generation ID, then goes out when it already knows the RP, so a
    /// neighbour's triggered (*,G) Join cannot arrive before it (FRR drops a
    /// Join for a group without an RP, and the next periodic one is 60 s
    /// away).
    pub fn restart_pimd_hard_rp_first(&self, rp: &str) {
        std::fs::write(self.dir.join("pimd.conf"), "!\n").unwrap();
        self.restart_pimd_hard();
        frr_set_rp(self, rp);
        let mut cmds = vec!["configure terminal"];
        cmds.extend(
            self.pimd_conf
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && *l != "!"),
        );
        self.vtysh(&cmds);
        // Later restarts start from the whole configuration again.
        self.write_pimd_conf();
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        kill_pid_file(&self.dir.join("pimd.pid"), libc::SIGTERM);
        kill_pid_file(&self.dir.join("zebra.pid"), libc::SIGTERM);
        if std::thread::panicking() {
            for d in ["pimd", "zebra"] {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("{d}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- {d} log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// `mcrctl --json subscribe --events CATS` in the background; every event
/// with the instant it was read.
pub struct Subscriber {
    child: Child,
    events: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Subscriber {
    /// Subscribes to `events` (comma-separated categories).
    pub fn start(mcrd: &Mcrd, events: &str) -> Subscriber {
        let mut child = Command::new(bin("mcrctl"))
            .arg("--socket")
            .arg(&mcrd.socket)
            .args(["--json", "subscribe", "--events", events])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mcrctl subscribe");
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = true;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                if first {
                    first = false;
                    let _ = tx.send(());
                    continue;
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push((now, v));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("subscribe answered");
        Subscriber { child, events }
    }

    /// The first event (with when it was read) matching `f`, waiting up to `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|(_, v)| f(v)) {
                return Some(e.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Forgets the events read so far.
    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }

    /// Every event read so far.
    pub fn all(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets FRR's static RP for 239.0.0.0/8 once its interfaces have their
/// addresses (a startup-config `ip pim rp` is refused while FRR has no path
/// to the RP yet) and waits until `show ip pim rp-info` has it.
pub fn frr_set_rp(frr: &Frr, rp: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || {
            frr.vtysh(&["configure terminal", &format!("ip pim rp {rp} 239.0.0.0/8")]);
            frr.json("show ip pim rp-info json").get(rp).is_some()
        }),
        "FRR did not take RP {rp}: {}",
        frr.vtysh(&["show ip pim rp-info"])
    );
}

/// Starts FRR (zebra + pimd) in `ns` with `ip pim` on `ifaces` (and `ip
/// igmp` on `igmp`) and `rp` for 239.0.0.0/8; its state directory is
/// returned first, to be dropped after FRR stops.
pub fn start_frr(
    ns: &Netns,
    tag: &str,
    ifaces: &[String],
    igmp: Option<&str>,
    rp: &str,
) -> (TempDir, Frr) {
    let mut conf = String::new();
    for i in ifaces {
        conf.push_str(&format!("interface {i}\n ip pim\n ip pim hello 5\n!\n"));
    }
    if let Some(i) = igmp {
        conf.push_str(&format!("interface {i}\n ip pim\n ip igmp\n!\n"));
    }
    let dir = TempDir::new(tag);
    let frr = Frr::start_with(ns, &dir, &ifaces[0], &conf);
    frr_set_rp(&frr, rp);
    (dir, frr)
}

/// `(iif, sorted oifs)` of a route in `mcrctl --json mroute`.
pub fn mcr_route(m: &Mcrd, source: Option<&str>, group: &str) -> Option<(String, Vec<String>)> {
    let v = m.ctl_json(&["mroute"]);
    let r = v["routes"].as_array()?.iter().find(|r| {
        r["group"] == group
            && match source {
                Some(s) => r["source"] == s,
                None => r["source"].is_null(),
            }
    })?;
    let mut oifs: Vec<String> = r["oifs"]
        .as_array()?
        .iter()
        .filter_map(|o| o["interface"].as_str().map(String::from))
        .collect();
    oifs.sort();
    Some((r["iif"].as_str()?.to_string(), oifs))
}

/// `(iif, sorted oifs)` of FRR's `show ip mroute json` entry (`source` is
/// `*` for (*,G)).
pub fn frr_route(frr: &Frr, source: &str, group: &str) -> Option<(String, Vec<String>)> {
    let v = frr.json("show ip mroute json");
    let e = v.get(group)?.get(source)?;
    let mut oifs: Vec<String> = e
        .get("oil")
        .and_then(|o| o.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    oifs.sort();
    Some((e.get("iif")?.as_str()?.to_string(), oifs))
}

/// `(iif, sorted oifs)` of the kernel's `(source,group)` MFC entry in
/// `ip mroute show` inside `ns`.
pub fn kernel_route(ns: &Netns, source: &str, group: &str) -> Option<(String, Vec<String>)> {
    let text = ns.ip(&["mroute", "show"]);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("({source},{group})")))?;
    let iif = line.split("Iif: ").nth(1)?.split_whitespace().next()?;
    let mut oifs: Vec<String> = line
        .split("Oifs: ")
        .nth(1)
        .map(|o| {
            o.split_whitespace()
                .take_while(|w| !w.starts_with("State:"))
                .map(|w| w.split('(').next().unwrap_or(w).to_string())
                .collect()
        })
        .unwrap_or_default();
    oifs.sort();
    Some((iif.to_string(), oifs))
}

/// Packets sent by `iface` in `ns` so far.
pub fn tx_packets(ns: &Netns, iface: &str) -> u64 {
    ns.net_attr(iface, "statistics/tx_packets")
        .parse()
        .unwrap_or(0)
}

/// How long until `iface` in `ns` stops sending the stream (under 20
/// packets in 1 s, against 1000 while forwarding), waiting up to `limit`.
pub fn time_until_quiet(ns: &Netns, iface: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let a = tx_packets(ns, iface);
        std::thread::sleep(Duration::from_secs(1));
        if tx_packets(ns, iface) - a < 20 {
            return Some(t0.elapsed());
        }
    }
    None
}
