//! Never frozen, always stoppable: hostile or gone control clients, hostile
//! log filters, descriptor exhaustion, slow-drip memory, shutdown with many
//! groups (issue 12, items 8-12). Each attack runs while another client's
//! ping latency and the SIGTERM-to-exit time are measured.
//!
//! Limits are generous on purpose: CI is a loaded 2-core machine. The
//! figures measured when the tests were written are given next to each.

use mcr_tests::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests here measure latency and CPU time: run one at a time, so that
/// they measure the attack and not each other (two daemons starting 10,000
/// and 20,000 rules at once on a 2-core box double every figure).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One namespace with a veth pair `<tag>a` (inputs) / `<tag>b` (outputs).
struct Scale {
    ns: Netns,
    dir: TempDir,
    tag: String,
}

impl Scale {
    fn new() -> Scale {
        let tag = unique_tag();
        let ns = Netns::new(format!("{tag}-fz"));
        ns.ip(&[
            "link",
            "add",
            &format!("{tag}a"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("{tag}b"),
        ]);
        for end in ["a", "b"] {
            ns.ip(&["link", "set", &format!("{tag}{end}"), "up"]);
        }
        ns.ip(&["addr", "add", "10.79.0.1/24", "dev", &format!("{tag}b")]);
        // Room for many memberships per interface.
        ns.sysctl("net.ipv4.igmp_max_memberships", "100000");
        Scale {
            dir: TempDir::new(&tag),
            ns,
            tag,
        }
    }

    /// A config with `n` rules, each joining its own group on the input.
    fn config(&self, n: usize) -> String {
        let out = output(&format!("{}b", self.tag), "239.255.0.1", 6000);
        let rules: Vec<String> = (0..n)
            .map(|i| {
                let g = format!("239.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
                rule(
                    &format!("r{i}"),
                    &format!("{}a", self.tag),
                    &g,
                    5000,
                    std::slice::from_ref(&out),
                )
            })
            .collect();
        format!(
            "{{ data_plane: {{ kernel_fast_path: false }}, rules: [ {} ] }}",
            rules.join(",\n")
        )
    }

    fn start(&self, rules: usize, wrapper: &[&str]) -> Mcrd {
        let mut m = Mcrd::spawn_as(
            &self.ns,
            &self.dir,
            "mcrd",
            &self.config(rules),
            wrapper,
            &[],
        );
        m.wait_log("mcrd ready", Duration::from_secs(60));
        m
    }
}

/// A raw protocol client.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = Raw {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        assert_eq!(r.line()["hello"], "mcrd");
        r
    }

    fn line(&mut self) -> Value {
        let mut l = String::new();
        self.reader.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("answer {l:?}: {e}"))
    }

    fn ask(&mut self, req: &str) -> Value {
        self.writer.write_all(req.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
        self.line()
    }
}

/// Pings over one connection every 10 ms until `stop`; returns the worst
/// round trip and how many pings were answered.
fn ping_probe(path: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Duration, u32)> {
    std::thread::spawn(move || {
        let mut c = Raw::connect(&path);
        let mut worst = Duration::ZERO;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            let a = c.ask(r#"{"cmd":"ping"}"#);
            assert_eq!(a["ok"], true, "{a}");
            worst = worst.max(t0.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        (worst, n)
    })
}

/// Sends `count` copies of `req` without reading a single answer.
fn pipeline(path: &Path, req: &str, count: usize) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    let all = format!("{req}\n").repeat(count);
    s.write_all(all.as_bytes()).unwrap();
    s
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Item 8: 500 pipelined `stats` (10,000 rules) from clients that close at
/// once, and from one that stays but never reads: other clients' pings stay
/// fast and SIGTERM stops mcrd at once.
/// Another client waits at most for about one request of the hog's: one
/// `stats` answer at 10,000 rules (2 MB of JSON) costs ~190 ms CPU in a
/// debug build, 200-800 ms of wall time on the loaded 2-core box. So the
/// bound is relative: twice one `stats` measured just before, plus 250 ms.
/// Measured (load average ~7-10): one stats 250-400 ms, worst ping 310-830
/// ms, SIGTERM-to-exit 0.2-0.8 s. Before the fix the first burst froze the
/// control thread for ~45 s (release build) and SIGTERM waited as long.
#[test]
fn work_for_gone_clients_freezes_nothing() {
    let _serial = serial();
    let s = Scale::new();
    let mut mcrd = s.start(10_000, &[]);
    let sock = mcrd.socket.clone();
    // What one `stats` costs here and now: the most another client may
    // have to wait behind the hog's turn.
    let one_stats = {
        let mut c = Raw::connect(&sock);
        (0..3)
            .map(|_| {
                let t0 = Instant::now();
                assert_eq!(c.ask(r#"{"cmd":"stats"}"#)["ok"], true);
                t0.elapsed()
            })
            .max()
            .unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let probe = ping_probe(sock.clone(), stop.clone());
    for _ in 0..3 {
        drop(pipeline(&sock, r#"{"cmd":"stats"}"#, 500));
        std::thread::sleep(Duration::from_millis(300));
    }
    // A client that stays, pipelines and never reads its answers.
    let _hog = pipeline(&sock, r#"{"cmd":"stats"}"#, 500);
    // Interface events are still taken in while the hog waits.
    let dummy = format!("{}d", s.tag);
    let t0 = Instant::now();
    s.ns.ip(&[
        "link",
        "add",
        &dummy,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{dummy}p"),
    ]);
    let seen = wait_until(Duration::from_secs(5), || {
        mcrd.log_text()
            .contains(&format!("interface appeared interface={dummy}"))
    });
    let event_took = t0.elapsed();
    eprintln!("interface event logged after {event_took:?}");
    assert!(seen, "interface event not handled within 5 s");
    assert!(
        event_took < one_stats * 2 + Duration::from_millis(500),
        "interface event took {event_took:?}"
    );
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let (worst, n) = probe.join().unwrap();
    eprintln!("worst ping {worst:?} over {n} pings; one stats {one_stats:?}");
    assert!(n > 20, "only {n} pings answered");
    // Turns: a ping waits for at most the request being executed and one
    // turn of each busy client; here that is about one or two `stats`.
    let limit = one_stats * 2 + Duration::from_millis(250);
    assert!(
        worst < limit,
        "ping took {worst:?} (limit {limit:?}) while clients pipelined stats"
    );
    // SIGTERM while more work is queued.
    let _more = pipeline(&sock, r#"{"cmd":"stats"}"#, 500);
    let (took, status) = mcrd.stop();
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

/// Item 8, the other instance: 5,000 pipelined `reload`s from a client
/// that closes at once (11 s of frozen control thread before) run at most
/// once or twice: the rest are dropped with the connection.
#[test]
fn pipelined_reloads_of_a_gone_client_are_dropped() {
    let _serial = serial();
    let s = Scale::new();
    let mcrd = s.start(100, &[]);
    let before = mcrd.ctl_json(&["status"])["reloads"].as_u64().unwrap();
    let t0 = Instant::now();
    drop(pipeline(&mcrd.socket, r#"{"cmd":"reload"}"#, 5000));
    std::thread::sleep(Duration::from_millis(500));
    let mut c = Raw::connect(&mcrd.socket);
    assert_eq!(c.ask(r#"{"cmd":"ping"}"#)["ok"], true);
    let took = t0.elapsed();
    let status = mcrd.ctl_json(&["status"]);
    let ran = status["reloads"].as_u64().unwrap() - before;
    eprintln!("{ran} of 5000 reloads ran; ping answered after {took:?}");
    assert!(ran <= 2, "{ran} reloads of a gone client ran");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(mcrd.log_text().matches("configuration reloaded").count() <= 2);
}

/// Item 9: a field filter whose value is a regex (exponential to compile)
/// is refused at once, and the control thread keeps answering.
#[test]
fn hostile_log_filter_is_refused_quickly() {
    let _serial = serial();
    let s = Scale::new();
    let mcrd = s.start(1, &[]);
    let mut c = Raw::connect(&mcrd.socket);
    let hostile = format!("mcr[{{x=(a|b)*a{}}}]=debug", "(a|b)".repeat(19));
    let req = serde_json::json!({"cmd": "log_level_set", "level": hostile});
    let t0 = Instant::now();
    let a = c.ask(&req.to_string());
    let took = t0.elapsed();
    assert_eq!(a["ok"], false, "{a}");
    assert_eq!(a["error"]["code"], "invalid_arguments", "{a}");
    assert!(took < Duration::from_millis(500), "refusal took {took:?}");
    // Nor an enormous filter without braces.
    let long = vec!["mcr_dataplane=debug"; 5000].join(",");
    let a = c.ask(&serde_json::json!({"cmd": "log_level_set", "level": long}).to_string());
    assert_eq!(a["ok"], false, "{a}");
    // Plain filters still work.
    let a = c.ask(r#"{"cmd":"log_level_set","level":"mcr_dataplane=debug,info"}"#);
    assert_eq!(a["ok"], true, "{a}");
    let t0 = Instant::now();
    assert_eq!(c.ask(r#"{"cmd":"ping"}"#)["ok"], true);
    assert!(t0.elapsed() < Duration::from_millis(250));
}

/// Item 10: out of descriptors, accepting backs off (low CPU, few log
/// lines) and resumes when descriptors free up.
#[test]
fn out_of_descriptors_backs_off_and_recovers() {
    let _serial = serial();
    let s = Scale::new();
    let mcrd = s.start(1, &["prlimit", "--nofile=64"]);
    let pid = mcrd.pid();
    // Connect until the daemon stops answering with a hello.
    let mut held = Vec::new();
    let mut unanswered = Vec::new();
    for _ in 0..200 {
        let Ok(c) = UnixStream::connect(&mcrd.socket) else {
            break;
        };
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        match (&c).read(&mut b) {
            Ok(1) => held.push(c),
            _ => {
                unanswered.push(c);
                if unanswered.len() >= 5 {
                    break;
                }
            }
        }
    }
    assert!(!unanswered.is_empty(), "never ran out of descriptors");
    let ticks0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks(pid) - ticks0;
    eprintln!(
        "{ticks} ticks in 2 s out of fds; {} connections held",
        held.len()
    );
    // 2 s at 100 ticks/s would be 200 when spinning; measured: 0-2.
    assert!(
        ticks < 20,
        "mcrd used {ticks} ticks in 2 s while out of fds"
    );
    let log = mcrd.log_text();
    let warnings = log.matches("cannot accept control clients").count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} accept warnings:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    drop(held);
    drop(unanswered);
    let served = wait_until(Duration::from_secs(5), || mcrd.ctl(&["ping"]).code == 0);
    assert!(served, "no client served after descriptors freed up");
    assert!(mcrd.log_text().contains("accepting control clients again"));
}

/// Item 11: many clients each holding a large unfinished line pin no more
/// than the global budget (32 MiB): the largest holders are closed with an
/// error, and everyone else is still served.
#[test]
fn slow_drip_clients_share_one_budget() {
    let _serial = serial();
    let s = Scale::new();
    let mcrd = s.start(1, &[]);
    let pid = mcrd.pid();
    let rss0 = rss_kib(pid);
    let part = vec![b'x'; (1 << 20) - 16];
    let mut drips = Vec::new();
    for _ in 0..64 {
        let mut c = UnixStream::connect(&mcrd.socket).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        // Refused mid-write once over the budget: that is the point.
        let _ = c.write_all(&part);
        drips.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(pid).saturating_sub(rss0);
    eprintln!("rss grew {grown} KiB with 64 x 1 MiB partial lines");
    // The budget (32 MiB) plus read chunks and allocator slack.
    assert!(grown < 48 * 1024, "rss grew {grown} KiB");
    let mut closed_busy = 0;
    for c in &mut drips {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        if String::from_utf8_lossy(&buf).contains("\"busy\"") {
            closed_busy += 1;
        }
    }
    assert!(closed_busy >= 16, "only {closed_busy} clients refused");
    let t0 = Instant::now();
    assert_eq!(mcrd.ctl(&["ping"]).code, 0);
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// Item 12: SIGTERM with 20,000 input groups exits within 2 s, and the
/// socket is given up first, so a new mcrd started on the same path right
/// away comes up (before: 2.7 s at 10,000 and the restart exited 4).
#[test]
fn sigterm_with_many_groups_is_fast_and_frees_the_socket() {
    let _serial = serial();
    let s = Scale::new();
    let mut mcrd = s.start(20_000, &[]);
    let sock = mcrd.socket.clone();
    let t0 = Instant::now();
    mcrd.signal(libc::SIGTERM);
    let freed = wait_until(Duration::from_secs(2), || !sock.exists());
    assert!(freed, "socket still there after SIGTERM");
    // Restart on the same path while the first may still be stopping.
    let mut next = Mcrd::spawn(
        &s.ns,
        &s.dir,
        "next",
        &s.config(1),
        &["--control-socket-path", sock.to_str().unwrap()],
    );
    let status = mcrd.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    next.wait_log("mcrd ready", Duration::from_secs(20));
    assert_eq!(next.ctl(&["ping"]).code, 0);
    eprintln!("SIGTERM to exit with 20,000 groups: {took:?}");
    assert_eq!(status, Some(0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}
