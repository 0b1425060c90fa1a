//! Helpers for the end-to-end tests: network namespaces, veth pairs, a
//! running `mcrd`, and the traffic tools, all cleaned up on drop (also when
//! a test fails and unwinds).
//!
//! Every name is unique per test run (process id + counter), so tests run in
//! parallel, and every address used lies inside namespaces created here.

pub mod frr;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short prefix unique to this process and call, for namespace and
/// interface names (interface names must stay under 16 bytes).
pub fn unique_tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("m{:x}{}", std::process::id() % 0xfff, n)
}

/// Where cargo put the workspace binaries (next to the test executable's
/// `deps/` directory).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    out
}

/// Runs a command that must succeed.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ethtool -K IFACE FEATURE on|off ...` inside the namespace.
    pub fn set_features(&self, iface: &str, features: &[&str]) {
        let mut args = vec!["ethtool", "-K", iface];
        args.extend_from_slice(features);
        let out = self.exec(&args);
        assert!(
            out.status.success(),
            "ethtool -K {iface} {features:?}: {out:?}"
        );
    }

    /// `/sys/class/net/IFACE/ATTR` inside the namespace, trimmed.
    pub fn net_attr(&self, iface: &str, attr: &str) -> String {
        let out = self.exec(&["cat", &format!("/sys/class/net/{iface}/{attr}")]);
        assert!(out.status.success(), "{iface}/{attr}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
        assert!(out.status.success(), "sysctl {key}={value}: {:?}", out);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes its veth ends (and their peers).
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Creates a veth pair with one end in each namespace, addresses them
/// (`a_addr`/`b_addr` in CIDR form, or "" for none) and brings both up.
pub fn veth(a: &Netns, a_name: &str, a_addr: &str, b: &Netns, b_name: &str, b_addr: &str) {
    veth_indexed(a, a_name, a_addr, None, b, b_name, b_addr);
}

/// [`veth`], with `a_name` created under a given interface index.
pub fn veth_indexed(
    a: &Netns,
    a_name: &str,
    a_addr: &str,
    a_index: Option<&str>,
    b: &Netns,
    b_name: &str,
    b_addr: &str,
) {
    let mut add = vec!["link", "add", a_name];
    if let Some(i) = a_index {
        add.extend(["index", i]);
    }
    add.extend(["type", "veth", "peer", "name", b_name, "netns", &b.name]);
    a.ip(&add);
    for (ns, name, addr) in [(a, a_name, a_addr), (b, b_name, b_addr)] {
        if !addr.is_empty() {
            ns.ip(&["addr", "add", addr, "dev", name]);
        }
        ns.ip(&["link", "set", name, "up"]);
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mcr-test-{tag}"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running mcrd, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Mcrd {
    child: Option<Child>,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Mcrd {
    /// Starts `mcrd supervisor` inside `ns` with `config` and waits until
    /// it is ready (every engine runs the first table).
    pub fn start(ns: &Netns, dir: &TempDir, config: &str) -> Mcrd {
        let mut m = Mcrd::spawn(ns, dir, "mcrd", config, &[]);
        m.wait_log("mcrd ready", Duration::from_secs(10));
        m
    }

    /// Spawns `mcrd supervisor` with config file `<name>.json5`, log
    /// `<name>.log` and socket `<name>.sock` in `dir` (unless `extra` names
    /// another socket), without waiting.
    pub fn spawn(ns: &Netns, dir: &TempDir, name: &str, config: &str, extra: &[&str]) -> Mcrd {
        Mcrd::spawn_as(ns, dir, name, config, &[], extra)
    }

    /// Like [`spawn`](Self::spawn), with mcrd run through `wrapper` (e.g.
    /// `setpriv --reuid=...`) inside the namespace.
    pub fn spawn_as(
        ns: &Netns,
        dir: &TempDir,
        name: &str,
        config: &str,
        wrapper: &[&str],
        extra: &[&str],
    ) -> Mcrd {
        let cfg = dir.file(&format!("{name}.json5"), config);
        let log = dir.path(&format!("{name}.log"));
        let mut socket = dir.path(&format!("{name}.sock"));
        let mut cmd = match wrapper.split_first() {
            None => ns.command(&bin("mcrd")),
            Some((first, rest)) => {
                let mut c = ns.command(Path::new(first));
                c.args(rest).arg(bin("mcrd"));
                c
            }
        };
        cmd.args(["--log-level", "debug", "supervisor", "--config"])
            .arg(&cfg);
        if let Some(pos) = extra.iter().position(|a| *a == "--control-socket-path") {
            socket = PathBuf::from(extra[pos + 1]);
        } else {
            cmd.arg("--control-socket-path").arg(&socket);
        }
        let child = cmd
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn mcrd");
        Mcrd {
            child: Some(child),
            log,
            socket,
        }
    }

    /// Waits for mcrd to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("mcrd running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills mcrd with SIGKILL (no cleanup on its side).
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `mcrctl --socket <this mcrd's socket> ARGS` on the host.
    pub fn ctl(&self, args: &[&str]) -> Ctl {
        mcrctl(&self.socket, args)
    }

    /// `mcrctl --json ARGS` that must succeed; returns the parsed answer.
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.ctl(&full);
        assert_eq!(out.code, 0, "mcrctl {args:?}: {}{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("mcrctl {args:?} output {:?}: {e}", out.stdout))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log if not.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "mcrd exited ({st}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mcrd did not log {needle:?} within {timeout:?}:\n{}",
            self.log_text()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal to mcrd (the `ip netns exec` wrapper execs it, so the
    /// child's pid is mcrd's).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// SIGTERM and wait; returns how long the exit took and the exit status.
    pub fn stop(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("mcrd running");
        let t0 = Instant::now();
        // SAFETY: kill(2) with a pid we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = t0 + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return (t0.elapsed(), st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return (t0.elapsed(), child.wait().unwrap());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mcrd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let (_, _) = self.stop();
        }
        if std::thread::panicking() {
            eprintln!("--- mcrd log ---\n{}", self.log_text());
        }
    }
}

/// What an mcrctl run printed and returned.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn mcrctl(socket: &Path, args: &[&str]) -> Ctl {
    let out = Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run mcrctl");
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mcrgen` running in the background (e.g. steady traffic during a test).
pub struct Generator {
    child: Option<Child>,
}

impl Generator {
    pub fn spawn(ns: &Netns, iface: &str, group: &str, port: u16, args: &[&str]) -> Generator {
        let child = ns
            .command(&bin("mcrgen"))
            .args(["--json", "--interface", iface, "--group", group, "--port"])
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mcrgen");
        Generator { child: Some(child) }
    }

    /// Waits for the generator to finish; returns its summary.
    pub fn finish(mut self) -> Value {
        let child = self.child.take().unwrap();
        let out = child.wait_with_output().expect("mcrgen wait");
        assert!(out.status.success(), "mcrgen failed");
        serde_json::from_slice(&out.stdout).expect("mcrgen json")
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `mcrd listen` running in a namespace; `finish` collects its JSON summary.
pub struct Listener {
    child: Option<Child>,
    out: PathBuf,
}

impl Listener {
    /// Starts a listener and waits until it has joined. `extra` adds flags
    /// such as `--count`, `--duration`, `--idle-timeout`.
    pub fn start(
        ns: &Netns,
        dir: &TempDir,
        iface: &str,
        group: &str,
        port: u16,
        extra: &[&str],
    ) -> Listener {
        let tag = unique_tag();
        let ready = dir.path(&format!("ready-{tag}"));
        let out = dir.path(&format!("listen-{tag}.json"));
        let child = ns
            .command(&bin("mcrd"))
            .args([
                "listen",
                "--json",
                "--interface",
                iface,
                "--group",
                group,
                "--port",
            ])
            .arg(port.to_string())
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mcrd listen");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "listener did not become ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        Listener {
            child: Some(child),
            out,
        }
    }

    /// Waits for the listener to stop by itself and returns its summary.
    pub fn finish(mut self) -> Value {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("listener did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.out).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("listener output {text:?}: {e}"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `mcrgen` in a namespace to completion; returns its JSON summary.
pub fn generate(ns: &Netns, iface: &str, group: &str, port: u16, args: &[&str]) -> Value {
    let out = ns
        .command(&bin("mcrgen"))
        .args(["--json", "--interface", iface, "--group", group, "--port"])
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("spawn mcrgen");
    assert!(
        out.status.success(),
        "mcrgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mcrgen json")
}

/// The listener's totals, as plain numbers, for assertions.
pub fn total(summary: &Value, key: &str) -> u64 {
    summary["total"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no total.{key} in {summary}"))
}

/// Asserts a listener saw exactly `expected` packets, none lost,
/// duplicated, reordered or corrupted.
pub fn assert_exact(summary: &Value, expected: u64) {
    let t = &summary["total"];
    assert_eq!(
        total(summary, "received"),
        expected,
        "received: {summary:#}"
    );
    for k in ["lost", "duplicates", "reordered", "corrupted"] {
        assert_eq!(t[k].as_u64(), Some(0), "{k} must be 0: {summary:#}");
    }
}

pub fn write_file(path: &Path, contents: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
}

/// src --(g | i)-- relay --(o0 | s0)-- sink0, (o1 | s1) sink1, ...
///
/// Input link 10.77.0.0/24 (src .1, relay .2); output link k is
/// 10.78.k.0/24 (relay .1, sink .2). All inside namespaces made here.
pub struct Topo {
    pub tag: String,
    pub src: Netns,
    pub relay: Netns,
    pub sinks: Vec<Netns>,
    pub dir: TempDir,
}

impl Topo {
    pub fn new(outputs: usize) -> Topo {
        let tag = unique_tag();
        let src = Netns::new(format!("{tag}-src"));
        let relay = Netns::new(format!("{tag}-rly"));
        let sinks: Vec<Netns> = (0..outputs)
            .map(|k| Netns::new(format!("{tag}-snk{k}")))
            .collect();
        let t = Topo {
            dir: TempDir::new(&tag),
            tag,
            src,
            relay,
            sinks,
        };
        veth(
            &t.src,
            &t.g(),
            "10.77.0.1/24",
            &t.relay,
            &t.i(),
            "10.77.0.2/24",
        );
        for k in 0..outputs {
            veth(
                &t.relay,
                &t.o(k),
                &format!("10.78.{k}.1/24"),
                &t.sinks[k],
                &t.s(k),
                &format!("10.78.{k}.2/24"),
            );
        }
        t
    }
    /// The generator's interface (in src).
    pub fn g(&self) -> String {
        format!("{}g", self.tag)
    }
    /// The relay's input interface.
    pub fn i(&self) -> String {
        format!("{}i", self.tag)
    }
    /// The relay's k-th output interface.
    pub fn o(&self, k: usize) -> String {
        format!("{}o{k}", self.tag)
    }
    /// The k-th sink's interface.
    pub fn s(&self, k: usize) -> String {
        format!("{}s{k}", self.tag)
    }

    /// A config with one rule `name`: 239.1.1.1:5000 on the input to
    /// 239.2.2.2:6000 on the first output (the shape most tests need).
    pub fn one_rule(&self, name: &str) -> String {
        self.rule_from_input(name, &[output(&self.o(0), "239.2.2.2", 6000)])
    }

    /// A config with one rule `name` from 239.1.1.1:5000 on the input to
    /// `outputs` (see [`output`]).
    pub fn rule_from_input(&self, name: &str, outputs: &[String]) -> String {
        format!(
            "{{ rules: [ {} ] }}",
            rule(name, &self.i(), "239.1.1.1", 5000, outputs)
        )
    }

    /// A config with one rule `name`: 239.1.1.1:5000 on the input to
    /// 239.2.2.2:6000 on output 0 and 239.2.2.3:6001 on output 1 (needs a
    /// topology of two outputs).
    pub fn two_output_rule(&self, name: &str) -> String {
        self.rule_from_input(
            name,
            &[
                output(&self.o(0), "239.2.2.2", 6000),
                output(&self.o(1), "239.2.2.3", 6001),
            ],
        )
    }

    pub fn mcrd(&self, config: &str) -> Mcrd {
        Mcrd::start(&self.relay, &self.dir, config)
    }

    pub fn listen(&self, k: usize, group: &str, port: u16, extra: &[&str]) -> Listener {
        Listener::start(&self.sinks[k], &self.dir, &self.s(k), group, port, extra)
    }

    pub fn send(&self, group: &str, port: u16, args: &[&str]) -> Value {
        generate(&self.src, &self.g(), group, port, args)
    }
}

/// Frames the engines captured, summed (`mcrctl stats`).
pub fn engine_frames(stats: &Value) -> u64 {
    stats["engines"]
        .as_array()
        .expect("stats.engines")
        .iter()
        .map(|e| e["frames"].as_u64().expect("engine frames"))
        .sum()
}

/// The running mcrd put `rules` rules on the kernel fast path when `fast`,
/// none otherwise (a fast-path test that silently ran on the engines would
/// prove nothing).
pub fn assert_on_path(mcrd: &Mcrd, fast: bool, rules: u64) {
    let status = mcrd.ctl_json(&["status"]);
    let want = if fast { rules } else { 0 };
    assert_eq!(
        status["kernel_fast_path"]["rules"].as_u64(),
        Some(want),
        "{status:#}"
    );
}

/// Polls `done` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The same config with the kernel fast path off, so the engines forward
/// everything (tests of the engines' path).
pub fn engines_only(config: &str) -> String {
    let body = config
        .trim_start()
        .strip_prefix('{')
        .expect("a config object");
    format!("{{ data_plane: {{ kernel_fast_path: false }}, {body}")
}

/// `config` (a JSON5 object's text) forwarded by the engines only, each
/// capture socket reading through a receive ring of `slots` slots
/// (`data_plane.receive_ring`).
pub fn engines_with_ring(config: &str, slots: u32) -> String {
    let body = config
        .trim_start()
        .strip_prefix('{')
        .expect("a config object");
    format!("{{ data_plane: {{ kernel_fast_path: false, receive_ring: {slots} }}, {body}")
}

/// The config for one data path: `fast` = kernel fast path (the default).
pub fn with_path(config: &str, fast: bool) -> String {
    if fast {
        config.to_string()
    } else {
        engines_only(config)
    }
}

pub fn rule(name: &str, input_if: &str, group: &str, port: u16, outputs: &[String]) -> String {
    format!(
        "{{ name: \"{name}\", input: {{ interface: \"{input_if}\", group: \"{group}\", port: {port} }}, outputs: [{}] }}",
        outputs.join(", ")
    )
}

pub fn output(iface: &str, group: &str, port: u16) -> String {
    format!("{{ interface: \"{iface}\", group: \"{group}\", port: {port} }}")
}

/// A line of the mcrd log with `needle`, parsed as `key=value` pairs.
pub fn log_fields(log: &str, needle: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

pub fn final_rule_packets(mcrd: &Mcrd, rule: &str) -> u64 {
    let log = mcrd.log_text();
    log_fields(&log, "final counters")
        .into_iter()
        .find(|f| f.get("rule").map(String::as_str) == Some(rule))
        .and_then(|f| f.get("packets").and_then(|p| p.parse().ok()))
        .unwrap_or_else(|| panic!("no final counters for {rule} in:\n{log}"))
}

pub fn final_drop(mcrd: &Mcrd, reason: &str) -> u64 {
    let log = mcrd.log_text();
    log_fields(&log, "final drops")
        .into_iter()
        .next()
        .and_then(|f| f.get(reason).and_then(|p| p.parse().ok()))
        .unwrap_or_else(|| panic!("no final drops {reason} in:\n{log}"))
}

/// The seed system's config using every key of its schema: the copy kept
/// in the repository (`config/tests/fixtures/`), since `../shared/` is not
/// there on every checkout.
pub fn seed_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/seed-system.json5")
}

/// A host process in a namespace holding a multicast membership until it
/// leaves (its socket closed, so the kernel sends the IGMP leave) or is
/// dropped.
pub struct Member {
    child: Option<Child>,
}

impl Member {
    /// Joins `group` on the interface with address `ifaddr`, any source.
    pub fn join(ns: &Netns, ifaddr: &str, group: &str) -> Member {
        Member::join_sg(ns, ifaddr, group, None)
    }

    /// Joins `group` on `ifaddr` (any-source), or `(source, group)` when
    /// `source` is given (IP_ADD_SOURCE_MEMBERSHIP); returns once joined.
    pub fn join_sg(ns: &Netns, ifaddr: &str, group: &str, source: Option<&str>) -> Member {
        let membership = match source {
            None => format!(
                "s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton('{group}')+socket.inet_aton('{ifaddr}'))"
            ),
            // struct ip_mreq_source: multiaddr, interface, sourceaddr;
            // 39 is IP_ADD_SOURCE_MEMBERSHIP.
            Some(src) => format!(
                "s.setsockopt(socket.IPPROTO_IP,39,socket.inet_aton('{group}')+socket.inet_aton('{ifaddr}')+socket.inet_aton('{src}'))"
            ),
        };
        let script = format!(
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             {membership}\n\
             print('joined',flush=True)\n\
             sys.stdin.read()\n"
        );
        let mut child = ns
            .command(Path::new("/usr/bin/python3"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "joined");
        Member { child: Some(child) }
    }

    /// Leaves (ends the process, closing its socket) and waits for it.
    pub fn leave(mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
