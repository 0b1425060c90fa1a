//! The Prometheus endpoint end to end: a relay forwarding two rules is
//! scraped from inside its namespace, the scrape is parsed with Python's
//! `prometheus_client.parser`, and every counter equals what
//! `mcrctl --json stats` reports; an invalid `metrics.listen` is a config
//! error naming the key; the endpoint keeps serving 100 concurrent scrapers
//! while two stalled connections stay open.

use mcr_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LISTEN: &str = "127.0.0.1:9469";

/// The Python with Debian's `python3-prometheus-client` (tests/run.sh
/// installs it), not a virtualenv's.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scrape.py")
}

/// Series key: name plus sorted labels.
type Key = (String, BTreeMap<String, String>);

/// One scrape from inside `ns`, parsed by prometheus_client.
fn scrape(ns: &Netns) -> (BTreeMap<String, String>, BTreeMap<Key, f64>) {
    let out = ns.exec(&[
        python(),
        script().to_str().unwrap(),
        &format!("http://{LISTEN}/metrics"),
    ]);
    assert!(
        out.status.success(),
        "scrape failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = v["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
        .collect();
    let mut samples = BTreeMap::new();
    for s in v["samples"].as_array().unwrap() {
        let labels = s[1]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        samples.insert(
            (s[0].as_str().unwrap().to_string(), labels),
            s[2].as_f64().unwrap(),
        );
    }
    (families, samples)
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Every counter `stats` and `status` report, as the series it must be.
fn expected(stats: &Value, status: &Value) -> BTreeMap<Key, u64> {
    let mut m = BTreeMap::new();
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    for r in stats["rules"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        m.insert(
            key("mcr_rule_packets_total", &[("rule", id)]),
            n(&r["packets"]),
        );
        m.insert(key("mcr_rule_bytes_total", &[("rule", id)]), n(&r["bytes"]));
        for o in r["outputs"].as_array().unwrap() {
            let out = o["output"].as_str().unwrap();
            let l = [("rule", id), ("output", out)];
            m.insert(key("mcr_output_packets_total", &l), n(&o["packets"]));
            m.insert(key("mcr_output_bytes_total", &l), n(&o["bytes"]));
            for (reason, field) in [("full", "full"), ("error", "errors")] {
                m.insert(
                    key(
                        "mcr_output_drops_total",
                        &[("rule", id), ("output", out), ("reason", reason)],
                    ),
                    n(&o[field]),
                );
            }
        }
    }
    for (reason, v) in stats["drops"].as_object().unwrap() {
        m.insert(key("mcr_drops_total", &[("reason", reason)]), n(v));
    }
    for e in stats["engines"].as_array().unwrap() {
        let engine = e["engine"].to_string();
        m.insert(
            key("mcr_engine_frames_total", &[("engine", &engine)]),
            n(&e["frames"]),
        );
        for (reason, v) in e["drops"].as_object().unwrap() {
            m.insert(
                key(
                    "mcr_engine_drops_total",
                    &[("engine", &engine), ("reason", reason)],
                ),
                n(v),
            );
        }
    }
    m.insert(key("mcr_reloads_total", &[]), n(&status["reloads"]));
    m.insert(
        key("mcr_events_dropped_total", &[]),
        n(&status["events_dropped"]),
    );
    m
}

fn metrics_config(rules: &[String]) -> String {
    format!(
        "{{ metrics: {{ listen: \"{LISTEN}\" }}, rules: [ {} ] }}",
        rules.join(", ")
    )
}

fn two_rules(t: &Topo) -> Vec<String> {
    vec![
        rule(
            "cam-a",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.2", 6000)],
        ),
        // A name that needs escaping in a label value.
        rule(
            "cam \\\"b\\\"",
            &t.i(),
            "239.1.1.2",
            5001,
            &[output(&t.o(1), "239.3.3.3", 6001)],
        ),
    ]
}

fn stats_and_status(m: &Mcrd) -> (Value, Value) {
    (m.ctl_json(&["stats"]), m.ctl_json(&["status"]))
}

#[test]
fn scrape_equals_stats_for_two_forwarding_rules() {
    let t = Topo::new(2);
    let mut m = t.mcrd(&metrics_config(&two_rules(&t)));
    m.wait_log(
        "metrics endpoint at http://127.0.0.1:9469/metrics",
        Duration::from_secs(5),
    );
    let (families, _) = scrape(&t.relay);
    for (name, ty) in [
        ("mcr_rule_packets", "counter"),
        ("mcr_rule_bytes", "counter"),
        ("mcr_output_packets", "counter"),
        ("mcr_output_bytes", "counter"),
        ("mcr_output_drops", "counter"),
        ("mcr_drops", "counter"),
        ("mcr_engine_frames", "counter"),
        ("mcr_engine_drops", "counter"),
        ("mcr_reloads", "counter"),
        ("mcr_events_dropped", "counter"),
        ("mcr_table_generation", "gauge"),
        ("mcr_kernel_fast_path_enabled", "gauge"),
        ("mcr_kernel_fast_path_rules", "gauge"),
        ("mcr_rules", "gauge"),
        ("mcr_control_clients", "gauge"),
        ("mcr_event_subscribers", "gauge"),
        ("mcr_protocol_configured", "gauge"),
        ("mcr_protocol_running", "gauge"),
        ("mcr_engine_table_generation", "gauge"),
        ("mcr_uptime_seconds", "gauge"),
    ] {
        assert_eq!(
            families.get(name).map(String::as_str),
            Some(ty),
            "family {name}: {families:?}"
        );
    }

    // Under traffic: a scrape lies between a stats taken one sampling
    // period before it and a stats taken after it.
    let a = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "2"]);
    let b = t.listen(1, "239.3.3.3", 6001, &["--idle-timeout", "2"]);
    let ga = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.1",
        5000,
        &["--rate", "500", "--count", "2000"],
    );
    let gb = Generator::spawn(
        &t.src,
        &t.g(),
        "239.1.1.2",
        5001,
        &["--rate", "300", "--count", "1200", "--size", "200"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = expected(&m.ctl_json(&["stats"]), &m.ctl_json(&["status"]));
    std::thread::sleep(Duration::from_millis(1300));
    let (_, during) = scrape(&t.relay);
    let after = expected(&m.ctl_json(&["stats"]), &m.ctl_json(&["status"]));
    let mut moving = 0;
    for (k, lo) in &before {
        let hi = after[k];
        let got = *during.get(k).unwrap_or_else(|| panic!("no series {k:?}"));
        assert!(
            *lo as f64 <= got && got <= hi as f64,
            "{k:?}: scrape {got} not within stats {lo}..={hi}"
        );
        if lo != &hi {
            moving += 1;
        }
    }
    assert!(moving >= 4, "traffic did not move the counters: {before:?}");
    ga.finish();
    gb.finish();
    assert_exact(&a.finish(), 2000);
    assert_exact(&b.finish(), 1200);

    // Traffic stopped: stats, scrape, stats agree exactly once the counters
    // have been still for more than one sampling period.
    let mut settled = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while settled.is_none() {
        assert!(Instant::now() < deadline, "counters never settled");
        let (s0, st0) = stats_and_status(&m);
        std::thread::sleep(Duration::from_millis(1500));
        let (_, scraped) = scrape(&t.relay);
        let (s1, st1) = stats_and_status(&m);
        let e0 = expected(&s0, &st0);
        let e1 = expected(&s1, &st1);
        if e0 == e1 {
            settled = Some((s1, e1, scraped));
        }
    }
    let (stats, want, got) = settled.unwrap();
    for (k, v) in &want {
        assert_eq!(
            got.get(k).copied(),
            Some(*v as f64),
            "{k:?}: scrape differs from mcrctl --json stats"
        );
    }
    // Every counter series of the scrape is one stats reports (no extra).
    for (k, v) in &got {
        if k.0.ends_with("_total") {
            assert_eq!(
                want.get(k).map(|w| *w as f64),
                Some(*v),
                "{k:?} not in stats"
            );
        }
    }
    let packets = |id: &str| {
        stats["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id}: {stats}"))["packets"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(packets("cam-a"), 2000);
    assert_eq!(packets("cam \"b\""), 1200);
    assert_eq!(
        got[&key("mcr_rule_bytes_total", &[("rule", "cam \"b\"")])],
        1200.0 * 200.0
    );
    assert_eq!(got[&key("mcr_rules", &[("state", "active")])], 2.0);
    let status = m.ctl_json(&["status"]);
    assert_eq!(
        got[&key("mcr_kernel_fast_path_rules", &[])],
        status["kernel_fast_path"]["rules"].as_u64().unwrap() as f64
    );
}

#[test]
fn invalid_listen_is_a_config_error_and_reload_moves_the_endpoint() {
    let t = Topo::new(1);
    let bad = "{\n  rules: [],\n  metrics: { listen: \"localhost:9469\" },\n}\n";
    let file = t.dir.file("bad.json5", bad);
    let out = run(
        bin("mcrd").to_str().unwrap(),
        &["check-config", file.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", file.display())) && stderr.contains("metrics.listen:"),
        "{stderr}"
    );
    // mcrd refuses to start with it.
    let mut m = Mcrd::spawn(&t.relay, &t.dir, "bad", bad, &[]);
    assert_eq!(m.wait_exit(Duration::from_secs(5)), Some(2));
    assert!(m.log_text().contains("metrics.listen"), "{}", m.log_text());
    // The flag is checked by the command line parser.
    let out = t.relay.exec(&[
        bin("mcrd").to_str().unwrap(),
        "supervisor",
        "--metrics-listen",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-listen"));

    // Off by default; a reload turns it on, moves it, refuses a bad one.
    let m = t.mcrd(&t.one_rule("r"));
    let cfg = t.dir.path("mcrd.json5");
    let curl = |port: u16| {
        t.relay.exec(&[
            python(),
            "-c",
            &format!("import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).status)"),
        ])
    };
    assert!(!curl(9469).status.success());
    let with = |listen: &str| {
        t.one_rule("r")
            .replacen('{', &format!("{{ metrics: {{ listen: \"{listen}\" }}, "), 1)
    };
    std::fs::write(&cfg, with("127.0.0.1:9469")).unwrap();
    let r = m.ctl_json(&["reload"]);
    assert_eq!(r["sections_changed"], serde_json::json!(["metrics"]), "{r}");
    assert!(curl(9469).status.success());
    std::fs::write(&cfg, with("127.0.0.1:9470")).unwrap();
    m.ctl_json(&["reload"]);
    assert!(curl(9470).status.success());
    assert!(!curl(9469).status.success());
    std::fs::write(&cfg, with("127.0.0.1:99999")).unwrap();
    let refused = m.ctl(&["reload"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("metrics.listen"), "{refused:?}");
    assert!(
        curl(9470).status.success(),
        "a refused reload keeps the endpoint"
    );
    let status = m.ctl_json(&["status"]);
    assert_eq!(status["last_reload"]["ok"], false);
    // The scrape says so too (after the next sampling tick).
    std::thread::sleep(Duration::from_millis(1300));
    let text = t.relay.exec(&[
        python(),
        "-c",
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9470/metrics', timeout=5).read().decode())",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\nmcr_last_reload_success 0\n"), "{text}");
    assert!(text.contains("\nmcr_reloads_total 2\n"), "{text}");
    // The flag wins over the file.
    drop(m);
    let mut m = Mcrd::spawn(
        &t.relay,
        &t.dir,
        "flag",
        &with("127.0.0.1:9470"),
        &["--metrics-listen", "127.0.0.1:9471"],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    assert!(curl(9471).status.success());
    assert!(!curl(9470).status.success());
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn survives_100_concurrent_scrapers_and_stalled_clients() {
    let t = Topo::new(1);
    // Enough rules that the answer (~0.5 MB) cannot all sit in socket
    // buffers of a client that never reads.
    let rules: Vec<String> = (0..1000)
        .map(|k| {
            rule(
                &format!("r{k}"),
                &t.i(),
                &format!("239.10.{}.{}", k / 250, k % 250 + 1),
                5000,
                &[output(&t.o(0), "239.2.2.2", 6000 + (k % 1000) as u16)],
            )
        })
        .collect();
    let m = t.mcrd(&engines_only(&metrics_config(&rules)));
    let (_, first) = scrape(&t.relay);
    assert_eq!(first[&key("mcr_rules", &[("state", "active")])], 1000.0);
    let rss0 = rss_kib(m.pid());
    for round in 0..2 {
        let out = t.relay.exec(&[
            python(),
            script().to_str().unwrap(),
            &format!("http://{LISTEN}/metrics"),
            "--storm",
            "100",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("round {round}: {v}");
        assert_eq!(v["ok"], 100, "{v}");
        // The stalled connections hold at most one worker each (until the
        // 5 s read or 10 s write deadline); the other workers serve the 100
        // long before those deadlines (typically in 0.2 s).
        assert!(v["max_secs"].as_f64().unwrap() < 3.0, "{v}");
    }
    let rss1 = rss_kib(m.pid());
    assert!(
        rss1 < rss0 + 64 * 1024,
        "memory grew from {rss0} KiB to {rss1} KiB"
    );
    // Still answering normally.
    let (_, last) = scrape(&t.relay);
    assert_eq!(last[&key("mcr_rules", &[("state", "active")])], 1000.0);
}
