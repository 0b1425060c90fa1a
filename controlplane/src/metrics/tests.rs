use super::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A snapshot with `rules` rules of two outputs each; the first rule's id
/// needs escaping.
pub(crate) fn snapshot(rules: usize) -> Snapshot {
    let drops = json!({"no_rule": 1, "own_frame": 2, "malformed": 0, "truncated": 0,
        "fragment": 0, "no_buffer": 0, "capture_overflow": 0, "output_full": 3, "output_error": 0});
    let rule = |i: usize| {
        let id = if i == 0 {
            "cam \"one\" \\ back".to_string()
        } else {
            format!("rule-{i}")
        };
        let outputs: Vec<_> = (0..2)
            .map(|k| json!({"output": format!("239.2.{k}.1:6000@eth{k}"),
                "packets": 10 + i, "bytes": 1000 + i, "pps": 0.0, "bps": 0.0, "full": k, "errors": 0}))
            .collect();
        json!({"id": id, "packets": 10 + i, "bytes": 1000 + i, "pps": 0.0, "bps": 0.0,
            "outputs": outputs})
    };
    let stats = json!({
        "rules": (0..rules).map(rule).collect::<Vec<_>>(),
        "engines": [{"engine": 0, "cpu": 1, "frames": 77, "pps": 0.0, "drops": drops}],
        "drops": drops,
    });
    let status = json!({
        "version": "0.1.0", "pid": 1, "uptime_secs": 5, "config_file": null, "config_hash": null,
        "control_socket": "/run/mcr/mcrd.sock", "namespace": {"inode": 1, "name": null},
        "cores": [1], "rules": {"total": rules, "active": rules, "partial": 0, "inactive": 0},
        "packets": 0, "bytes": 0, "drops": 6,
        "protocols": {"igmp": {"configured": true, "running": false},
            "pim": {"configured": false, "running": false}, "msdp": {"configured": false, "running": false}},
        "kernel_fast_path": {"enabled": true, "rules": 1, "interfaces": ["eth0"], "error": null},
        "control_clients": 2, "events_dropped": 4,
        "last_reload": {"time": 1700000000, "ok": false, "message": "x"}, "reloads": 3,
    });
    Snapshot {
        status: serde_json::from_value(status).unwrap(),
        stats: serde_json::from_value(stats).unwrap(),
        table_generation: 9,
        engine_generations: vec![(0, 9)],
        event_subscribers: 1,
    }
}

#[test]
fn renders_every_family_with_escaped_labels() {
    let text = render(&Arc::new(snapshot(2)), Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let prom = render(&Arc::new(snapshot(2)), Format::Prometheus);
    assert!(!prom.contains("# EOF"), "{prom}");
    assert!(
        prom.contains("# TYPE mcr_rule_packets_total counter\n"),
        "{prom}"
    );
    assert!(
        prom.contains("# TYPE mcr_rule_bytes_total counter\n"),
        "{prom}"
    );
    for line in [
        "# TYPE mcr_rule_packets counter",
        r#"mcr_rule_packets_total{rule="cam \"one\" \\ back"} 10"#,
        r#"mcr_rule_packets_total{rule="rule-1"} 11"#,
        "# TYPE mcr_rule_bytes counter",
        "# UNIT mcr_rule_bytes bytes",
        r#"mcr_rule_bytes_total{rule="rule-1"} 1001"#,
        r#"mcr_output_packets_total{rule="rule-1",output="239.2.1.1:6000@eth1"} 11"#,
        r#"mcr_output_bytes_total{rule="rule-1",output="239.2.0.1:6000@eth0"} 1001"#,
        r#"mcr_output_drops_total{rule="rule-1",output="239.2.1.1:6000@eth1",reason="full"} 1"#,
        r#"mcr_drops_total{reason="own_frame"} 2"#,
        r#"mcr_engine_frames_total{engine="0"} 77"#,
        r#"mcr_engine_drops_total{engine="0",reason="output_full"} 3"#,
        r#"mcr_engine_cpu{engine="0"} 1"#,
        r#"mcr_engine_table_generation{engine="0"} 9"#,
        r#"mcr_rules{state="active"} 2"#,
        "mcr_table_generation 9",
        "mcr_kernel_fast_path_enabled 1",
        "mcr_kernel_fast_path_rules 1",
        r#"mcr_kernel_fast_path_interface{interface="eth0"} 1"#,
        "mcr_reloads_total 3",
        "mcr_last_reload_success 0",
        "mcr_last_reload_timestamp_seconds 1700000000",
        "mcr_control_clients 2",
        "mcr_event_subscribers 1",
        "mcr_events_dropped_total 4",
        r#"mcr_protocol_configured{protocol="igmp"} 1"#,
        r#"mcr_protocol_running{protocol="igmp"} 0"#,
        r#"mcr_build_info{version="0.1.0"} 1"#,
        "mcr_uptime_seconds 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
        // The samples are the same in both formats.
        if !line.starts_with('#') {
            assert!(
                prom.lines().any(|l| l == line),
                "no line {line:?} in:\n{prom}"
            );
        }
    }
}

#[test]
fn ten_thousand_rules_render_fast() {
    let s = Arc::new(snapshot(10_000));
    let t0 = Instant::now();
    let text = render(&s, Format::Prometheus);
    let took = t0.elapsed();
    // 10k rules x (2 + 2 outputs x 4) series.
    assert!(text.lines().count() > 100_000, "{}", text.lines().count());
    // Debug builds are slow; the benchmark (perf/metrics_scrape.sh) measures
    // the release build.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_metrics_and_refuses_the_rest() {
    let server =
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), ServerLimits::default()).unwrap();
    let addr = server.addr();
    let none = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(none.starts_with("HTTP/1.1 503"), "{none}");
    server.publish(snapshot(1));
    let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4"),
        "{ok}"
    );
    let om = get(
        addr,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    );
    assert!(
        om.contains("Content-Type: application/openmetrics-text"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
    let head = get(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(get(addr, "garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    drop(server);
    // The address is free again at once (a reload may rebind it).
    let again = MetricsServer::start(addr, ServerLimits::default()).unwrap();
    drop(again);
}

#[test]
fn silent_clients_do_not_stop_others() {
    let limits = ServerLimits {
        workers: 2,
        queue: 4,
        read_deadline: Duration::from_millis(500),
        write_deadline: Duration::from_millis(500),
    };
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), limits).unwrap();
    server.publish(snapshot(1));
    let addr = server.addr();
    // Two connections that never send: each holds a worker for at most the
    // read deadline.
    let _silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let t0 = Instant::now();
    let ok = get(addr, "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// docs/grafana-dashboard.json is valid JSON and queries only series the
/// endpoint serves.
#[test]
fn grafana_dashboard_uses_served_metrics() {
    let text = include_str!("../../../docs/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(text).unwrap();
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let served = render(&Arc::new(snapshot(1)), Format::Prometheus);
    let served: std::collections::BTreeSet<&str> = served
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("mcr_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        used.insert(name);
    }
    used.remove("mcr_");
    assert!(used.len() > 15, "{used:?}");
    for name in &used {
        assert!(
            served.contains(name.as_str()),
            "{name} is not served: {served:?}"
        );
    }
}
