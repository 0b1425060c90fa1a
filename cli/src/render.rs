//! Human-readable renderings of control answers: aligned tables and
//! key/value blocks. `--json` bypasses all of this.

use mcr_config::{Input, Output};
use mcr_controlplane::compile::{Origin, RuleState};
use mcr_controlplane::control::api::{
    FastPathStatus, FilterMode, IgmpGroups, IgmpInterfaces, Mroutes, ProtocolState, Reply, Status,
};
use mcr_dataplane::Drops;
use serde_json::Value;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// Left-aligned columns, two spaces apart. Padding is written by hand:
/// `format!("{:<w$}")` panics for widths above 65,535, and a cell can be
/// that long (an old daemon's rule name, a long interface list).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(c);
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A value as text for a table cell, with anything a terminal would
/// interpret (ESC, bidi overrides, line separators) escaped: names and
/// interface names come from the daemon, which got them from files,
/// clients and the kernel.
fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => mcr_config::text::escape(s).into_owned(),
        other => other.to_string(),
    }
}

/// Escapes what could still reach the terminal raw in a rendered answer
/// (text not formatted through [`s`]); newlines are the output's own.
pub fn terminal_safe(text: &str) -> String {
    let bad = |c: char| c != '\n' && mcr_config::text::unsafe_char(c).is_some();
    text.chars()
        .map(|c| {
            if bad(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn endpoint(group: Ipv4Addr, port: u16, interface: &str) -> String {
    format!("{group}:{port}@{interface}")
}

fn input_text(i: &Input) -> String {
    let e = endpoint(i.group, i.port, &i.interface);
    match i.source {
        Some(src) => format!("{src}->{e}"),
        None => e,
    }
}

fn output_text(o: &Output) -> String {
    let mut e = endpoint(o.group, o.port, &o.interface);
    if let Some(ttl) = o.ttl {
        let _ = write!(e, " ttl {ttl}");
    }
    e
}

fn drops_line(d: &Drops) -> String {
    let Ok(Value::Object(m)) = serde_json::to_value(d) else {
        return "-".into();
    };
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" ")
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |v| v.to_string())
}

fn list_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// One event as a line: its time, kind, then its other fields (escaped
/// like every rendered value).
pub fn event_line(e: &Value) -> String {
    let mut out = format!(
        "{:.3} {}",
        e["time"].as_f64().unwrap_or(0.0),
        s(&e["event"])
    );
    if let Some(m) = e.as_object() {
        for (k, v) in m {
            if k != "time" && k != "event" {
                let _ = write!(out, " {k}={}", s(v));
            }
        }
    }
    terminal_safe(&out)
}

/// An answer as text for a terminal (tables, key/value blocks), with
/// anything that could drive the terminal escaped.
pub fn render(reply: &Reply) -> String {
    let out = render_raw(reply);
    if out
        .chars()
        .any(|c| c != '\n' && mcr_config::text::unsafe_char(c).is_some())
    {
        terminal_safe(&out)
    } else {
        out
    }
}

fn render_raw(reply: &Reply) -> String {
    let mut out = String::new();
    match reply {
        Reply::Pong(_) => out.push_str("pong\n"),
        Reply::Version(v) => {
            let _ = writeln!(out, "mcrd {} (protocol {})", v.version, v.protocol);
        }
        Reply::Status(r) => status(&mut out, r),
        Reply::List(l) => {
            let rows: Vec<Vec<String>> = l
                .rules
                .iter()
                .map(|rule| {
                    let outputs: Vec<String> = rule.outputs.iter().map(output_text).collect();
                    let state = match &rule.state {
                        Some(RuleState::Inactive { reason }) => format!("inactive: {reason}"),
                        Some(RuleState::Partial { waiting }) => {
                            format!("partial: {}", waiting.join(", "))
                        }
                        Some(RuleState::Active) => "active".into(),
                        None => "-".into(),
                    };
                    let origin = match rule.origin {
                        Origin::Config => "config",
                        Origin::Runtime => "runtime",
                    };
                    vec![
                        rule.id.clone(),
                        input_text(&rule.input),
                        outputs.join(", "),
                        origin.into(),
                        state,
                    ]
                })
                .collect();
            out.push_str(&table(
                &["ID", "INPUT", "OUTPUTS", "ORIGIN", "STATE"],
                &rows,
            ));
        }
        Reply::Added(a) => {
            let _ = writeln!(out, "added rule {}", a.id);
        }
        Reply::Removed(r) => {
            let _ = writeln!(out, "removed rule {}", r.removed);
        }
        Reply::Stats(r) => {
            let mut rows = Vec::new();
            for rule in &r.rules {
                rows.push(vec![
                    rule.id.clone(),
                    "(input)".into(),
                    rule.packets.to_string(),
                    rule.bytes.to_string(),
                    rate(rule.pps),
                    rate(rule.bps),
                    "".into(),
                ]);
                for o in &rule.outputs {
                    rows.push(vec![
                        "".into(),
                        o.output.clone(),
                        o.packets.to_string(),
                        o.bytes.to_string(),
                        rate(o.pps),
                        rate(o.bps),
                        format!("full={} errors={}", o.full, o.errors),
                    ]);
                }
            }
            out.push_str(&table(
                &[
                    "RULE", "OUTPUT", "PACKETS", "BYTES", "PPS", "BIT/S", "DROPS",
                ],
                &rows,
            ));
            let engines: Vec<Vec<String>> = r
                .engines
                .iter()
                .map(|e| {
                    vec![
                        e.engine.to_string(),
                        e.cpu.to_string(),
                        e.frames.to_string(),
                        rate(e.pps),
                        if e.batched_sends == 0 {
                            "-".to_string()
                        } else {
                            format!(
                                "{} sends, {:.1} each",
                                e.batched_sends,
                                e.batched_datagrams as f64 / e.batched_sends as f64
                            )
                        },
                        drops_line(&e.drops),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(
                &["ENGINE", "CPU", "FRAMES", "PPS", "BATCHED", "DROPS"],
                &engines,
            ));
        }
        Reply::Cores(c) => {
            let rows: Vec<Vec<String>> = c
                .engines
                .iter()
                .map(|e| {
                    vec![
                        e.engine.to_string(),
                        e.cpu.to_string(),
                        e.interfaces.join(","),
                        rate(e.pps),
                        e.frames.to_string(),
                        e.drops.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["ENGINE", "CPU", "INTERFACES", "PPS", "FRAMES", "DROPS"],
                &rows,
            ));
        }
        Reply::ConfigText(t) => {
            out.push_str(&t.json5);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Reply::ConfigChecked(c) => {
            let _ = writeln!(out, "{}: valid ({} rules)", c.file.display(), c.rules);
        }
        Reply::Subscribed(s) => {
            let cats: Vec<&str> = s.subscribed.iter().map(|c| c.into()).collect();
            eprintln!("subscribed to {}", cats.join(", "));
        }
        Reply::Saved(s) => {
            let _ = writeln!(out, "saved running state to {}", s.file.display());
        }
        Reply::LogFilter(f) => {
            let _ = writeln!(out, "{}", f.filter);
        }
        Reply::IgmpGroups(g) => igmp_groups(&mut out, g),
        Reply::IgmpInterfaces(i) => igmp_interfaces(&mut out, i),
        Reply::Mroutes(m) => mroutes(&mut out, m),
        Reply::IgmpToggled(t) => {
            let _ = writeln!(
                out,
                "IGMP {} on {} (runtime, until the next reload); running there: {}",
                if t.enabled { "enabled" } else { "disabled" },
                s(&Value::String(t.interface.clone())),
                if t.running { "yes" } else { "no" }
            );
        }
        Reply::Reload(r) => {
            let verb = if r.dry_run { "would apply" } else { "applied" };
            let _ = writeln!(out, "{verb} {}", r.file.display());
            let _ = writeln!(out, "added:     {}", list_or_dash(&r.added));
            let _ = writeln!(out, "removed:   {}", list_or_dash(&r.removed));
            let _ = writeln!(out, "changed:   {}", list_or_dash(&r.changed));
            let _ = writeln!(out, "unchanged: {}", r.unchanged);
            if !r.runtime_rules_removed.is_empty() {
                let _ = writeln!(
                    out,
                    "runtime rules removed (not in the file): {}",
                    list_or_dash(&r.runtime_rules_removed)
                );
            }
            if !r.sections_changed.is_empty() {
                let _ = writeln!(
                    out,
                    "sections changed: {}",
                    list_or_dash(&r.sections_changed)
                );
            }
            if let Some(us) = r.compile_swap_us {
                let _ = writeln!(out, "parse {} us, compile+swap {us} us", opt(&r.parse_us));
            }
            if let Some(n) = &r.note {
                let _ = writeln!(out, "note: {n}");
            }
        }
        Reply::PimNeighbors(_)
        | Reply::PimInterfaces(_)
        | Reply::PimExternalNeighbors(_)
        | Reply::PimRpfRoutes(_)
        | Reply::PimRpfAnswer(_)
        | Reply::PimJoinState(_)
        | Reply::PimRp(_) => crate::render_pim::render(&mut out, reply),
        Reply::MsdpPeers(_) | Reply::MsdpSaCache(_) => crate::render_msdp::render(&mut out, reply),
    }
    out
}

fn secs_or_dash(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

fn igmp_groups(out: &mut String, g: &IgmpGroups) {
    let rows: Vec<Vec<String>> = g
        .groups
        .iter()
        .map(|g| {
            let sources: Vec<String> = g
                .sources
                .iter()
                .map(|src| match src.timer_secs {
                    Some(t) => format!("{}({t:.1}s)", src.address),
                    None => format!("{}(excluded)", src.address),
                })
                .collect();
            let mode = match g.mode {
                FilterMode::Include => "include",
                FilterMode::Exclude => "exclude",
            };
            vec![
                s(&Value::String(g.interface.clone())),
                g.group.to_string(),
                mode.into(),
                if sources.is_empty() {
                    "-".into()
                } else {
                    sources.join(",")
                },
                secs_or_dash(g.group_timer_secs),
                format!("v{}", g.version),
                g.last_reporter.to_string(),
                format!("{:.0}", g.uptime_secs),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "INTERFACE",
            "GROUP",
            "MODE",
            "SOURCES(TIMER)",
            "GROUP-TIMER",
            "COMPAT",
            "LAST-REPORTER",
            "UPTIME",
        ],
        &rows,
    ));
}

fn igmp_interfaces(out: &mut String, r: &IgmpInterfaces) {
    let rows: Vec<Vec<String>> = r
        .interfaces
        .iter()
        .map(|i| {
            let c = &i.counters;
            let sent = c.general_queries_sent + c.group_queries_sent + c.group_source_queries_sent;
            let received = c.queries_received
                + c.v1_reports_received
                + c.v2_reports_received
                + c.v3_reports_received
                + c.leaves_received;
            vec![
                s(&Value::String(i.interface.clone())),
                i.address.map_or_else(|| "-".into(), |a| a.to_string()),
                i.querier.map_or_else(|| "-".into(), |a| a.to_string()),
                if i.is_querier { "yes" } else { "no" }.into(),
                format!("v{}", i.version),
                secs_or_dash(i.next_query_secs),
                secs_or_dash(i.other_querier_secs),
                i.groups.to_string(),
                sent.to_string(),
                received.to_string(),
                c.invalid.total().to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "INTERFACE",
            "ADDRESS",
            "QUERIER",
            "US",
            "VERSION",
            "NEXT-QUERY",
            "OTHER-QUERIER",
            "GROUPS",
            "SENT",
            "RECEIVED",
            "INVALID",
        ],
        &rows,
    ));
    for i in &r.interfaces {
        let c = &i.counters;
        let v = &c.invalid;
        let reasons: Vec<String> = [
            ("truncated", v.truncated),
            ("bad_checksum", v.bad_checksum),
            ("bad_length", v.bad_length),
            ("bad_count", v.bad_count),
            ("unknown_type", v.unknown_type),
            ("bad_ip_header", v.bad_ip_header),
            ("no_router_alert", v.no_router_alert),
            ("wrong_subnet", v.wrong_subnet),
            ("not_multicast", v.not_multicast),
            ("group_limit", c.group_limit_dropped),
            ("source_limit", c.source_limit_dropped),
            ("link_local", c.link_local_ignored),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
        if !reasons.is_empty() {
            let _ = writeln!(
                out,
                "{} ignored: {}",
                s(&Value::String(i.interface.clone())),
                reasons.join(" ")
            );
        }
    }
    for n in &r.not_running {
        let _ = writeln!(
            out,
            "{}: not running: {}",
            s(&Value::String(n.interface.clone())),
            s(&Value::String(n.reason.clone()))
        );
    }
    for rt in &r.runtime {
        let _ = writeln!(
            out,
            "{}: {} at run time (until the next reload)",
            s(&Value::String(rt.interface.clone())),
            if rt.enabled { "enabled" } else { "disabled" }
        );
    }
}

/// `12 s ago (at 1795997441)`: a Unix time as people read it, the raw
/// value kept for logs and scripts.
fn ago(unix_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match now.checked_sub(unix_secs) {
        Some(d) if d < 120 => format!("{d} s ago (at {unix_secs})"),
        Some(d) if d < 7200 => format!("{} min ago (at {unix_secs})", d / 60),
        Some(d) => format!("{} h ago (at {unix_secs})", d / 3600),
        None => format!("at {unix_secs}"),
    }
}

fn status(out: &mut String, r: &Status) {
    let ns = &r.namespace;
    let ns_text = match &ns.name {
        Some(n) => format!("{n} (net:[{}])", ns.inode),
        None => format!("net:[{}] (unnamed)", ns.inode),
    };
    let reload = match &r.last_reload {
        Some(l) => format!(
            "{} {} ({})",
            if l.ok { "ok" } else { "FAILED" },
            ago(l.time),
            l.message.lines().next().unwrap_or("")
        ),
        None => "never".into(),
    };
    let p = &r.protocols;
    let proto = |name: &str, s: &ProtocolState| match (s.configured, s.running) {
        (_, true) => format!("{name} running"),
        (true, false) => format!("{name} configured, not running"),
        (false, false) => format!("{name} off"),
    };
    let config = match &r.config_file {
        Some(f) => format!("{} (hash {})", f.display(), opt(&r.config_hash)),
        None => "-".into(),
    };
    let cores: Vec<String> = r.cores.iter().map(usize::to_string).collect();
    let rows = [
        ("version", r.version.clone()),
        ("pid", r.pid.to_string()),
        ("uptime", format!("{}s", r.uptime_secs)),
        ("config", config),
        ("control socket", r.control_socket.display().to_string()),
        ("namespace", ns_text),
        ("cores", format!("[{}]", cores.join(","))),
        (
            "rules",
            format!(
                "{} total: {} active, {} partial, {} inactive",
                r.rules.total, r.rules.active, r.rules.partial, r.rules.inactive
            ),
        ),
        (
            "relayed",
            format!("{} packets, {} bytes", r.packets, r.bytes),
        ),
        ("drops", r.drops.to_string()),
        ("kernel fast path", fast_path_text(&r.kernel_fast_path)),
        (
            "protocols",
            format!(
                "{}, {}, {}",
                proto("igmp", &p.igmp),
                proto("pim", &p.pim),
                proto("msdp", &p.msdp)
            ),
        ),
        ("last reload", reload),
    ];
    let rpf = r.rpf_provider.as_ref().map(|p| {
        let mut t = format!("{} {}", p.kind, p.state);
        if let Some(sock) = &p.socket {
            let _ = write!(t, " ({sock})");
        }
        if let Some(e) = &p.error {
            let _ = write!(t, ": {e}");
        }
        t
    });
    let mroute = r.mroute_socket.as_ref().map(|m| match &m.error {
        None => format!("held ({} vifs, {} MFC entries)", m.vifs, m.entries),
        Some(e) => format!("not held: {e}"),
    });
    let ring = r.receive_ring.map(|g| {
        format!(
            "{} sockets x {} slots, {:.1} MiB",
            g.sockets,
            g.slots,
            g.bytes as f64 / f64::from(1u32 << 20)
        )
    });
    let rows = rows
        .into_iter()
        .chain(ring.map(|t| ("receive ring", t)))
        .chain(rpf.map(|t| ("rpf provider", t)))
        .chain(mroute.map(|t| ("mroute socket", t)));
    for (k, v) in rows {
        let _ = writeln!(out, "{:<15} {v}", format!("{k}:"));
    }
}

/// `mcrctl mroute`: one row per route.
fn mroutes(out: &mut String, m: &Mroutes) {
    let rows: Vec<Vec<String>> = m
        .routes
        .iter()
        .map(|r| {
            let key = match r.source {
                Some(src) => format!("({src},{})", r.group),
                None => format!("(*,{})", r.group),
            };
            let origins: Vec<String> = r.origins.iter().map(|o| o.to_string()).collect();
            let oifs: Vec<String> = r
                .oifs
                .iter()
                .map(|o| format!("{}({})", o.interface, o.reasons.join(",")))
                .collect();
            vec![
                key,
                origins.join(","),
                r.iif.clone().unwrap_or_else(|| "-".into()),
                r.rpf_neighbor.map_or_else(|| "-".into(), |n| n.to_string()),
                if oifs.is_empty() {
                    "-".into()
                } else {
                    oifs.join(" ")
                },
                format!("{}s", r.uptime_secs),
                r.packets.to_string(),
                r.bytes.to_string(),
                r.installed.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ROUTE",
            "ORIGINS",
            "IIF",
            "RPF NBR",
            "OIFS",
            "UPTIME",
            "PACKETS",
            "BYTES",
            "INSTALLED",
        ],
        &rows,
    ));
    if let Some(sock) = &m.socket {
        if let Some(e) = &sock.error {
            let _ = writeln!(out, "mroute socket not held: {e}");
        }
    }
}

/// `on: 3 rules on eth0, eth1`, or `off` with the reason.
fn fast_path_text(f: &FastPathStatus) -> String {
    if f.enabled {
        let on = if f.interfaces.is_empty() {
            "none".to_string()
        } else {
            f.interfaces.join(", ")
        };
        format!("on: {} rules on {on}", f.rules)
    } else {
        match &f.error {
            Some(e) => format!("off: {e}"),
            None => "off".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    fn list_of(id: &str, interface: &str, state: serde_json::Value) -> Reply {
        let mut rule = serde_json::json!({
            "id": id, "name": null, "origin": "config",
            "input": {"interface": interface, "group": "239.1.1.1", "port": 5000},
            "outputs": [{"interface": "b", "group": "239.2.2.2", "port": 6000}],
        });
        if let (Some(m), serde_json::Value::Object(st)) = (rule.as_object_mut(), state) {
            m.extend(st);
        }
        Reply::List(serde_json::from_value(serde_json::json!({ "rules": [rule] })).unwrap())
    }

    #[test]
    fn huge_cells_do_not_panic() {
        let name = "n".repeat(70_000);
        let out = render(&list_of(&name, "a", serde_json::json!({"state": "active"})));
        assert!(out.contains(&name));
        let stats: crate::render::Reply = Reply::Stats(Box::new(
            serde_json::from_value(serde_json::json!({
                "rules": [{"id": name, "packets": 0, "bytes": 0, "pps": 0.0, "bps": 0.0,
                           "outputs": [{"output": "x", "packets": 0, "bytes": 0, "pps": 0.0,
                                        "bps": 0.0, "full": 0, "errors": 0}]}],
                "engines": [],
                "drops": Drops::default(),
            }))
            .unwrap(),
        ));
        assert!(render(&stats).contains(&name));
    }

    #[test]
    fn terminal_controls_are_escaped() {
        let out = render(&list_of(
            "a\u{1b}[2Jb",
            "e\u{202e}x",
            serde_json::json!({"state": "inactive", "reason": "interface 'q\u{1b}]0;t\u{7}' not found"}),
        ));
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}') && !out.contains('\u{7}'),
            "{out:?}"
        );
        assert!(out.contains("a\\u{1b}[2Jb"), "{out}");
        let line = event_line(
            &serde_json::json!({"event": "interface_appeared", "interface": "x\u{1b}y"}),
        );
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(rate(1500.0), "1.5k");
        assert_eq!(rate(2_500_000.0), "2.50M");
    }
}
