//! Human-readable renderings of control answers: aligned tables and
//! key/value blocks. `--json` bypasses all of this.

use serde_json::Value;
use std::fmt::Write;

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

fn rate(v: &Value) -> String {
    let x = v.as_f64().unwrap_or(0.0);
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn endpoint(v: &Value) -> String {
    let mut e = format!(
        "{}:{}@{}",
        s(&v["group"]),
        s(&v["port"]),
        s(&v["interface"])
    );
    if let Some(src) = v["source"].as_str() {
        e = format!("{src}->{e}");
    }
    if let Some(ttl) = v["ttl"].as_u64() {
        let _ = write!(e, " ttl {ttl}");
    }
    e
}

fn drops_line(d: &Value) -> String {
    let Some(m) = d.as_object() else {
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

/// The answer to `command` as text for a terminal.
pub fn render(command: &str, r: &Value) -> String {
    let out = render_raw(command, r);
    if out
        .chars()
        .any(|c| c != '\n' && mcr_config::text::unsafe_char(c).is_some())
    {
        terminal_safe(&out)
    } else {
        out
    }
}

fn render_raw(command: &str, r: &Value) -> String {
    let mut out = String::new();
    match command {
        "ping" => out.push_str("pong\n"),
        "version" => {
            let _ = writeln!(
                out,
                "mcrd {} (protocol {})",
                s(&r["version"]),
                s(&r["protocol"])
            );
        }
        "status" => {
            let ns = &r["namespace"];
            let ns_text = match ns["name"].as_str() {
                Some(n) => format!("{n} (net:[{}])", s(&ns["inode"])),
                None => format!("net:[{}] (unnamed)", s(&ns["inode"])),
            };
            let rules = &r["rules"];
            let reload = match r["last_reload"].as_object() {
                Some(l) => format!(
                    "{} at {} ({})",
                    if l["ok"] == Value::Bool(true) {
                        "ok"
                    } else {
                        "FAILED"
                    },
                    s(&l["time"]),
                    s(&l["message"]).lines().next().unwrap_or("")
                ),
                None => "never".into(),
            };
            let protos = &r["protocols"];
            let onoff = |v: &Value| if v == &Value::Bool(true) { "on" } else { "off" };
            let rows = [
                ("version", s(&r["version"])),
                ("pid", s(&r["pid"])),
                ("uptime", format!("{}s", s(&r["uptime_secs"]))),
                (
                    "config",
                    format!("{} (hash {})", s(&r["config_file"]), s(&r["config_hash"])),
                ),
                ("control socket", s(&r["control_socket"])),
                ("namespace", ns_text),
                ("cores", s(&r["cores"])),
                (
                    "rules",
                    format!(
                        "{} total: {} active, {} partial, {} inactive",
                        s(&rules["total"]),
                        s(&rules["active"]),
                        s(&rules["partial"]),
                        s(&rules["inactive"])
                    ),
                ),
                (
                    "relayed",
                    format!("{} packets, {} bytes", s(&r["packets"]), s(&r["bytes"])),
                ),
                ("drops", s(&r["drops"])),
                ("kernel fast path", fast_path_text(&r["kernel_fast_path"])),
                (
                    "protocols",
                    format!(
                        "igmp {}, pim {}, msdp {}",
                        onoff(&protos["igmp"]),
                        onoff(&protos["pim"]),
                        onoff(&protos["msdp"])
                    ),
                ),
                ("last reload", reload),
            ];
            for (k, v) in rows {
                let _ = writeln!(out, "{:<15} {v}", format!("{k}:"));
            }
        }
        "list" => {
            let rows: Vec<Vec<String>> = r["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|rule| {
                    let outputs: Vec<String> = rule["outputs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(endpoint)
                        .collect();
                    let state = match rule["state"].as_str() {
                        Some("inactive") => format!("inactive: {}", s(&rule["reason"])),
                        Some("partial") => format!("partial: {}", s(&rule["waiting"])),
                        Some(st) => st.to_string(),
                        None => "-".into(),
                    };
                    vec![
                        s(&rule["id"]),
                        endpoint(&rule["input"]),
                        outputs.join(", "),
                        s(&rule["origin"]),
                        state,
                    ]
                })
                .collect();
            out.push_str(&table(
                &["ID", "INPUT", "OUTPUTS", "ORIGIN", "STATE"],
                &rows,
            ));
        }
        "add" => {
            let _ = writeln!(out, "added rule {}", s(&r["id"]));
        }
        "remove" => {
            let _ = writeln!(out, "removed rule {}", s(&r["removed"]));
        }
        "stats" => {
            let mut rows = Vec::new();
            for rule in r["rules"].as_array().into_iter().flatten() {
                rows.push(vec![
                    s(&rule["id"]),
                    "(input)".into(),
                    s(&rule["packets"]),
                    s(&rule["bytes"]),
                    rate(&rule["pps"]),
                    rate(&rule["bps"]),
                    "".into(),
                ]);
                for o in rule["outputs"].as_array().into_iter().flatten() {
                    rows.push(vec![
                        "".into(),
                        s(&o["output"]),
                        s(&o["packets"]),
                        s(&o["bytes"]),
                        rate(&o["pps"]),
                        rate(&o["bps"]),
                        format!("full={} errors={}", s(&o["full"]), s(&o["errors"])),
                    ]);
                }
            }
            out.push_str(&table(
                &[
                    "RULE", "OUTPUT", "PACKETS", "BYTES", "PPS", "BIT/S", "DROPS",
                ],
                &rows,
            ));
            let engines: Vec<Vec<String>> = r["engines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        s(&e["engine"]),
                        s(&e["cpu"]),
                        s(&e["frames"]),
                        rate(&e["pps"]),
                        drops_line(&e["drops"]),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(
                &["ENGINE", "CPU", "FRAMES", "PPS", "DROPS"],
                &engines,
            ));
        }
        "cores" => {
            let rows: Vec<Vec<String>> = r["engines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let ifs: Vec<String> = e["interfaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(s)
                        .collect();
                    vec![
                        s(&e["engine"]),
                        s(&e["cpu"]),
                        ifs.join(","),
                        rate(&e["pps"]),
                        s(&e["frames"]),
                        s(&e["drops"]),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["ENGINE", "CPU", "INTERFACES", "PPS", "FRAMES", "DROPS"],
                &rows,
            ));
        }
        "config_show" => {
            out.push_str(r["json5"].as_str().unwrap_or(""));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        "config_check" => {
            let _ = writeln!(out, "{}: valid ({} rules)", s(&r["file"]), s(&r["rules"]));
        }
        "subscribe" => {
            let cats: Vec<String> = r["subscribed"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            eprintln!("subscribed to {}", cats.join(", "));
        }
        "config_save" => {
            let _ = writeln!(out, "saved running state to {}", s(&r["file"]));
        }
        "log_level" => {
            let _ = writeln!(out, "{}", s(&r["filter"]));
        }
        "reload" => {
            let list = |k: &str| {
                let v: Vec<String> = r[k].as_array().into_iter().flatten().map(s).collect();
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.join(", ")
                }
            };
            let verb = if r["dry_run"] == Value::Bool(true) {
                "would apply"
            } else {
                "applied"
            };
            let _ = writeln!(out, "{verb} {}", s(&r["file"]));
            let _ = writeln!(out, "added:     {}", list("added"));
            let _ = writeln!(out, "removed:   {}", list("removed"));
            let _ = writeln!(out, "changed:   {}", list("changed"));
            let _ = writeln!(out, "unchanged: {}", s(&r["unchanged"]));
            if r["runtime_rules_removed"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                let _ = writeln!(
                    out,
                    "runtime rules removed (not in the file): {}",
                    list("runtime_rules_removed")
                );
            }
            if r["sections_changed"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                let _ = writeln!(out, "sections changed: {}", list("sections_changed"));
            }
            if let Some(us) = r["compile_swap_us"].as_u64() {
                let _ = writeln!(out, "parse {} us, compile+swap {us} us", s(&r["parse_us"]));
            }
            if let Some(n) = r["note"].as_str() {
                let _ = writeln!(out, "note: {n}");
            }
        }
        _ => {
            let _ = writeln!(out, "{r:#}");
        }
    }
    out
}

/// `on: 3 rules on eth0, eth1`, or `off` with the reason.
fn fast_path_text(v: &Value) -> String {
    if v["enabled"] == Value::Bool(true) {
        let ifs: Vec<&str> = v["interfaces"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let on = if ifs.is_empty() {
            "none".to_string()
        } else {
            ifs.join(", ")
        };
        format!("on: {} rules on {on}", v["rules"])
    } else {
        match v["error"].as_str() {
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

    #[test]
    fn huge_cells_do_not_panic() {
        let name = "n".repeat(70_000);
        let r = serde_json::json!({"rules": [{"id": name, "input": {}, "outputs": [], "origin": "config"}]});
        let out = render("list", &r);
        assert!(out.contains(&name));
        let r = serde_json::json!({"rules": [{"id": name, "outputs": [{"output": "x"}]}], "engines": []});
        assert!(render("stats", &r).contains(&name));
    }

    #[test]
    fn terminal_controls_are_escaped() {
        let r = serde_json::json!({"rules": [{"id": "a\u{1b}[2Jb", "input": {"interface": "e\u{202e}x"}, "outputs": [], "origin": "config", "state": "inactive", "reason": "interface 'q\u{1b}]0;t\u{7}' not found"}]});
        let out = render("list", &r);
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
        assert_eq!(rate(&serde_json::json!(1500.0)), "1.5k");
        assert_eq!(rate(&serde_json::json!(2_500_000.0)), "2.50M");
    }
}
