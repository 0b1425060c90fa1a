//! The control socket and mcrctl against a real, forwarding mcrd.

use mcr_tests::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A raw protocol client: reads the hello, then one answer per request.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(path: &std::path::Path) -> Raw {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = Raw {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        let hello = r.line();
        assert_eq!(hello["hello"], "mcrd");
        assert_eq!(hello["protocol"], 1);
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

fn ping_latency(path: &std::path::Path) -> Duration {
    let t0 = Instant::now();
    let mut c = Raw::connect(path);
    let a = c.ask(r#"{"cmd":"ping"}"#);
    assert_eq!(a["ok"], true);
    t0.elapsed()
}

#[test]
fn every_command_round_trips_while_forwarding() {
    let t = Topo::new(2);
    // --save-dir: the test's directory is where `config save FILE` may write.
    let save_dir = t.dir.0.to_str().unwrap().to_string();
    let mut mcrd = Mcrd::spawn(
        &t.relay,
        &t.dir,
        "mcrd",
        &t.one_rule("a"),
        &["--save-dir", &save_dir],
    );
    mcrd.wait_log("mcrd ready", Duration::from_secs(10));
    let la = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "2"]);
    // Steady traffic on rule a for the whole test: it must lose nothing
    // while rules are added and removed around it.
    let gen = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", "10000"],
    );

    let st = mcrd.ctl_json(&["status"]);
    assert_eq!(st["pid"], mcrd.pid());
    assert_eq!(st["rules"]["active"], 1);
    assert_eq!(st["namespace"]["name"], t.relay.name.as_str());
    // Nothing asks for PIM here, and nothing runs it.
    assert_eq!(
        st["protocols"]["pim"],
        serde_json::json!({"configured": false, "running": false})
    );
    assert!(st["config_hash"].as_str().unwrap().len() == 16);
    let text = mcrd.ctl(&["status"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout
            .contains(&format!("namespace:      {}", t.relay.name)),
        "{}",
        text.stdout
    );

    assert_eq!(mcrd.ctl_json(&["ping"])["pong"], true);
    assert_eq!(mcrd.ctl(&["ping"]).stdout, "pong\n");
    assert_eq!(mcrd.ctl_json(&["version"])["protocol"], 1);
    assert!(mcrd.ctl(&["version"]).stdout.starts_with("mcrd "));

    let list = mcrd.ctl_json(&["list"]);
    assert_eq!(list["rules"][0]["id"], "a");
    assert_eq!(list["rules"][0]["origin"], "config");
    assert_eq!(list["rules"][0]["state"], "active");
    assert!(mcrd.ctl(&["list"]).stdout.contains("active"));

    // add: rule b forwards; remove: it stops.
    let add = mcrd.ctl(&[
        "add",
        "--input-interface",
        &t.i(),
        "--input-group",
        "239.1.1.2",
        "--input-port",
        "5000",
        "--outputs",
        &format!("239.3.3.3:7000:{}:5", t.o(1)),
        "--name",
        "b",
    ]);
    assert_eq!(add.code, 0, "{add:?}");
    assert_eq!(add.stdout, "added rule b\n");
    let list = mcrd.ctl_json(&["list"]);
    assert_eq!(list["rules"][1]["origin"], "runtime");
    assert_eq!(list["rules"][1]["state"], "active");
    let lb = t.listen(1, "239.3.3.3", 7000, &["--idle-timeout", "1"]);
    t.send("239.1.1.2", 5000, &["--rate", "2000", "--count", "1000"]);
    let got = lb.finish();
    assert_exact(&got, 1000);
    assert_eq!(got["total"]["ttl_max"], 5);

    let stats = mcrd.ctl_json(&["stats"]);
    let b = stats["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "b")
        .unwrap();
    assert_eq!(b["packets"], 1000);
    assert_eq!(b["outputs"][0]["packets"], 1000);
    assert!(mcrd.ctl(&["stats"]).stdout.contains("239.3.3.3:7000@"));
    // Rule a carries a steady 2000 pps: its current rates show it.
    let a = stats["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "a")
        .unwrap();
    assert!(a["pps"].as_f64().unwrap() > 500.0, "{a}");
    assert!(a["bps"].as_f64().unwrap() > 500.0 * 64.0 * 8.0, "{a}");
    assert!(a["outputs"][0]["pps"].as_f64().unwrap() > 500.0, "{a}");
    assert!(
        a["outputs"][0]["bps"].as_f64().unwrap() > 500.0 * 64.0 * 8.0,
        "{a}"
    );

    // The id as a plain argument; naming it twice is refused before asking.
    let both = mcrd.ctl(&["remove", "b", "--name", "b"]);
    assert_ne!(both.code, 0, "{both:?}");
    let rm = mcrd.ctl(&["remove", "b"]);
    assert_eq!(rm.code, 0, "{rm:?}");
    let lb = t.listen(1, "239.3.3.3", 7000, &["--duration", "1.5"]);
    t.send("239.1.1.2", 5000, &["--rate", "2000", "--count", "1000"]);
    assert_eq!(lb.finish()["packets"], 0, "removed rule still forwards");

    // --watch refreshes until interrupted.
    let mut watch = std::process::Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&mcrd.socket)
        .args(["stats", "--watch", "0.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("RULE").count() >= 2, "{text}");

    let cores = mcrd.ctl_json(&["cores"]);
    assert_eq!(
        cores["engines"].as_array().unwrap().len(),
        st["cores"].as_array().unwrap().len()
    );
    assert!(mcrd.ctl(&["workers"]).stdout.contains("ENGINE"));

    let show = mcrd.ctl(&["config", "show"]);
    assert_eq!(show.code, 0);
    assert!(show.stdout.contains("239.1.1.1"));
    let saved = t.dir.path("saved.json5");
    let save = mcrd.ctl_json(&["config", "save", saved.to_str().unwrap()]);
    assert_eq!(save["file"], saved.to_str().unwrap());
    let check = mcrd.ctl_json(&["config", "check", saved.to_str().unwrap()]);
    assert_eq!(check["valid"], true);
    assert_eq!(check["rules"], 1);
    let bad = t.dir.file("bad.json5", "{ rules: [ { nope: 1 } ] }");
    let out = mcrd.ctl(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("bad.json5:1:"), "{out:?}");

    assert_eq!(mcrd.ctl_json(&["log-level", "get"])["filter"], "debug");
    let set = mcrd.ctl_json(&["log-level", "set", "--target", "mcr_dataplane", "trace"]);
    assert!(set["filter"]
        .as_str()
        .unwrap()
        .contains("mcr_dataplane=trace"));
    assert_eq!(mcrd.ctl(&["log-level", "set", "mcr=loudest"]).code, 1);
    let loud = mcrd.ctl(&["log-level", "set", "loud"]);
    assert_eq!(loud.code, 1, "{loud:?}");
    assert!(loud.stderr.contains("unknown log level 'loud'"), "{loud:?}");
    // A target that is not a module path would be read as filter syntax.
    let bad = mcrd.ctl(&["log-level", "set", "--target", "bad target!", "info"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("not a module path"), "{bad:?}");

    gen.finish();
    assert_exact(&la.finish(), 10000);
}

#[test]
fn mcrctl_exit_codes_and_messages() {
    let dir = TempDir::new(&unique_tag());
    let missing = dir.path("nothing.sock");
    let out = mcrctl(&missing, &["status"]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr.trim(),
        format!("Error: {} does not exist", missing.display())
    );
    // A socket file nobody listens on.
    let dead = dir.path("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let out = mcrctl(&dead, &["status"]);
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "Error: No mcrd is listening on {} (is it running?)",
            dead.display()
        )
    );
    let out = mcrctl(&dead, &["no-such-command"]);
    assert_eq!(out.code, 2);
    let out = mcrctl(
        &dead,
        &[
            "add",
            "--input-interface",
            "a",
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "1",
            "--outputs",
            "bad",
        ],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let out = mcrctl(&dead, &["completions", "bash"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("mcrctl"));
}

#[test]
fn runtime_rule_errors_match_config_file_errors() {
    let t = Topo::new(1);
    let mcrd = t.mcrd(&t.one_rule("a"));
    let add = |args: &[&str]| {
        let mut full = vec![
            "add",
            "--input-interface",
            "x",
            "--input-group",
            "239.1.1.9",
        ];
        full.extend_from_slice(args);
        mcrd.ctl(&full)
    };
    let out = add(&["--input-port", "0", "--outputs", "239.1.1.2:5:y"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("port 0 is not allowed"), "{out:?}");
    let out = add(&["--input-port", "5", "--outputs", "239.1.1.2:5:y:0"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("outputs[0].ttl"), "{out:?}");
    // Same input as rule a.
    let out = mcrd.ctl(&[
        "add",
        "--input-interface",
        &t.i(),
        "--input-group",
        "239.1.1.1",
        "--input-port",
        "5000",
        "--outputs",
        "239.9.9.9:1:lo",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    // Duplicate name.
    let out = add(&[
        "--input-port",
        "5",
        "--outputs",
        "239.1.1.2:5:y",
        "--name",
        "a",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let out = mcrd.ctl(&["remove", "--rule-id", "nope"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no rule with id 'nope'"));
}

#[test]
fn many_clients_and_slow_ones_do_not_delay_anyone() {
    let t = Topo::new(1);
    let mcrd = t.mcrd(&t.one_rule("a"));
    let sock = mcrd.socket.clone();

    // A silent client and a slow-drip client stay connected throughout.
    let _silent = UnixStream::connect(&sock).unwrap();
    let drip_sock = sock.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let drip = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&drip_sock).unwrap();
        let msg = br#"{"cmd":"ping","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        for b in msg.iter().cycle() {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let worst = (0..20).map(|_| ping_latency(&sock)).max().unwrap();
    assert!(
        worst < Duration::from_millis(100),
        "ping took {worst:?} next to slow clients"
    );

    // 100 clients x 100 requests, all at once.
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(&sock);
                for j in 0..100 {
                    let (req, key) = match (i + j) % 3 {
                        0 => (format!(r#"{{"cmd":"ping","id":{j}}}"#), "pong"),
                        1 => (format!(r#"{{"cmd":"status","id":{j}}}"#), "pid"),
                        _ => (format!(r#"{{"cmd":"list","id":{j}}}"#), "rules"),
                    };
                    let a = c.ask(&req);
                    assert_eq!(a["ok"], true, "{a}");
                    assert_eq!(a["id"], j, "answers come in order");
                    assert!(!a["result"][key].is_null(), "{a}");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("client thread");
    }
    let worst = (0..20).map(|_| ping_latency(&sock)).max().unwrap();
    assert!(
        worst < Duration::from_millis(100),
        "ping took {worst:?} after the load"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drip.join().unwrap();
}

#[test]
fn garbage_and_oversized_requests_are_answered_and_survived() {
    let t = Topo::new(1);
    let mcrd = t.mcrd(&t.one_rule("a"));
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "2"]);
    let gen = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", "6000"],
    );
    let mut c = Raw::connect(&mcrd.socket);

    assert_eq!(c.ask("this is not json")["error"]["code"], "invalid_json");
    assert_eq!(c.ask("[1,2,3]")["error"]["code"], "invalid_request");
    assert_eq!(
        c.ask(r#"{"cmd":"self-destruct"}"#)["error"]["code"],
        "unknown_command"
    );
    assert_eq!(
        c.ask(r#"{"cmd":"add","rule":{"x":1}}"#)["error"]["code"],
        "invalid_arguments"
    );
    // A 2 MiB line: refused, and the same connection keeps working.
    let big = format!(r#"{{"cmd":"ping","pad":"{}"}}"#, "x".repeat(2 << 20));
    assert_eq!(c.ask(&big)["error"]["code"], "request_too_large");
    assert_eq!(c.ask(r#"{"cmd":"ping"}"#)["result"]["pong"], true);

    // Binary noise on its own connection.
    let mut noise = UnixStream::connect(&mcrd.socket).unwrap();
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let _ = noise.write_all(&bytes);
    let _ = noise.write_all(b"\n");
    noise
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let _ = noise.read(&mut sink);
    drop(noise);

    // A request followed at once by end-of-file is still answered.
    let mut oneshot = UnixStream::connect(&mcrd.socket).unwrap();
    oneshot.write_all(b"{\"cmd\":\"ping\"}\n").unwrap();
    oneshot.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    oneshot.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\"pong\":true"), "{answer:?}");

    // A client that closes in the middle of a request.
    let mut half = UnixStream::connect(&mcrd.socket).unwrap();
    half.write_all(br#"{"cmd":"sta"#).unwrap();
    drop(half);

    assert_eq!(c.ask(r#"{"cmd":"status"}"#)["ok"], true);
    assert!(ping_latency(&mcrd.socket) < Duration::from_millis(100));
    gen.finish();
    assert_exact(&l.finish(), 6000);
    assert!(!mcrd.log_text().contains("panicked"));
}

struct TempGroup(String);

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = run("groupdel", &[&self.0]);
    }
}

#[test]
fn socket_mode_group_and_permission_denied() {
    let t = Topo::new(1);
    let group = TempGroup(format!("mcrt{}", std::process::id() % 100000));
    let _ = run("groupdel", &[&group.0]);
    sh("groupadd", &[&group.0]);
    let mut m = Mcrd::spawn(
        &t.relay,
        &t.dir,
        "mcrd",
        &t.one_rule("a"),
        &["--control-socket-group", &group.0],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let meta = std::fs::metadata(&m.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let gid: u32 = sh("getent", &["group", &group.0])
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(meta.gid(), gid);
    // The test directory must be traversable by the unprivileged user.
    std::fs::set_permissions(&t.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();

    let as_user = |groups: &str| {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup"])
            .arg(if groups.is_empty() {
                "--clear-groups".to_string()
            } else {
                format!("--groups={groups}")
            })
            .arg(bin("mcrctl"))
            .arg("--socket")
            .arg(&m.socket)
            .arg("status")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = as_user("");
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "Error: Permission denied connecting to {}",
            m.socket.display()
        )
    );
    let (code, err) = as_user(&gid.to_string());
    assert_eq!(code, Some(0), "a group member is let in: {err}");
    m.stop();
}

#[test]
fn second_instance_is_refused_and_a_stale_socket_is_replaced() {
    let t = Topo::new(1);
    let cfg = t.one_rule("a");
    let mut first = t.mcrd(&cfg);
    let sock = first.socket.to_str().unwrap().to_string();
    let mut second = Mcrd::spawn(
        &t.relay,
        &t.dir,
        "second",
        &cfg,
        &["--control-socket-path", &sock],
    );
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(4));
    assert!(
        second
            .log_text()
            .contains(&format!("another mcrd is already serving {sock}")),
        "{}",
        second.log_text()
    );
    // The first one is unharmed.
    assert_eq!(first.ctl_json(&["ping"])["pong"], true);

    // SIGKILL leaves the socket file behind; the next mcrd replaces it.
    first.kill_hard();
    assert!(first.socket.exists());
    let mut third = Mcrd::spawn(
        &t.relay,
        &t.dir,
        "third",
        &cfg,
        &["--control-socket-path", &sock],
    );
    third.wait_log("mcrd ready", Duration::from_secs(10));
    assert!(third.log_text().contains("replacing stale control socket"));
    assert_eq!(third.ctl_json(&["status"])["pid"], third.pid());
    // A clean exit removes the socket file.
    let (_, status) = third.stop();
    assert!(status.success());
    assert!(!std::path::Path::new(&sock).exists());
}

#[test]
fn subscribe_streams_rule_and_interface_events() {
    let tag = unique_tag();
    let relay = Netns::new(format!("{tag}-rly"));
    let other = Netns::new(format!("{tag}-oth"));
    let dir = TempDir::new(&tag);
    let (i, o) = (format!("{tag}i"), format!("{tag}o"));
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "late",
            &i,
            "239.1.1.1",
            5000,
            &[output(&o, "239.2.2.2", 6000)]
        )
    );
    let mcrd = Mcrd::start(&relay, &dir, &cfg);
    let mut sub = std::process::Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&mcrd.socket)
        .args(["--json", "subscribe", "--events", "rules,interfaces"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        first["subscribed"],
        serde_json::json!(["rules", "interfaces"])
    );
    veth(&relay, &o, "10.78.0.1/24", &other, &format!("{tag}p"), "");
    veth(&relay, &i, "10.77.0.2/24", &other, &format!("{tag}q"), "");
    let mut seen_if = false;
    let mut active = false;
    while !(seen_if && active) {
        let line = lines.next().expect("event").unwrap();
        let e: Value = serde_json::from_str(&line).unwrap();
        assert!(e["time"].as_f64().is_some(), "{e}");
        if e["event"] == "interface_appeared" && e["interface"] == i.as_str() {
            seen_if = true;
        }
        if e["event"] == "rule" && e["id"] == "late" && e["state"] == "active" {
            active = true;
        }
    }
    let _ = sub.kill();
    let _ = sub.wait();
    // The guide's form is accepted; unknown categories are refused.
    let mut guide = std::process::Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&mcrd.socket)
        .args(["--json", "subscribe", "--events", "igmp,pim"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut glines = BufReader::new(guide.stdout.take().unwrap()).lines();
    let ans: Value = serde_json::from_str(&glines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ans["subscribed"], serde_json::json!(["igmp", "pim"]));
    let _ = guide.kill();
    let _ = guide.wait();
    let bad = mcrd.ctl(&["subscribe", "--events", "weather"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("unknown event category 'weather'"),
        "{bad:?}"
    );
    // A subscribed connection answers no further requests.
    let mut raw = Raw::connect(&mcrd.socket);
    assert_eq!(
        raw.ask(r#"{"cmd":"subscribe","events":["reload"]}"#)["ok"],
        true
    );
    assert_eq!(raw.ask(r#"{"cmd":"ping"}"#)["error"]["code"], "subscribed");
}
