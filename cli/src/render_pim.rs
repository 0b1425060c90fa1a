//! Tables for the `mcrctl pim ...` answers.

use mcr_controlplane::control::api::Reply;
use std::fmt::Write;

fn o<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

fn esc(s: &str) -> String {
    mcr_config::text::escape(s).into_owned()
}

/// Appends the rendering of a `pim_*` answer to `out`.
pub fn render(out: &mut String, reply: &Reply) {
    match reply {
        Reply::PimNeighbors(n) => {
            let rows: Vec<Vec<String>> = n
                .neighbors
                .iter()
                .map(|n| {
                    vec![
                        esc(&n.interface),
                        n.address.to_string(),
                        n.learned_by.clone(),
                        format!("{}s", n.uptime_secs),
                        n.expires_in_secs
                            .map_or_else(|| "never".into(), |e| format!("{e}s")),
                        o(&n.dr_priority),
                        n.generation_id
                            .map_or_else(|| "-".into(), |g| format!("{g:08x}")),
                        if n.dr { "DR" } else { "" }.into(),
                        n.tag.as_deref().map_or_else(|| "-".into(), esc),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &[
                    "INTERFACE",
                    "NEIGHBOR",
                    "LEARNED",
                    "UPTIME",
                    "EXPIRES",
                    "PRIORITY",
                    "GENID",
                    "DR",
                    "TAG",
                ],
                &rows,
            ));
        }
        Reply::PimInterfaces(p) => {
            let rows: Vec<Vec<String>> = p
                .interfaces
                .iter()
                .map(|i| {
                    vec![
                        esc(&i.name),
                        o(&i.address),
                        format!("{}{}", o(&i.dr), if i.is_dr { " (us)" } else { "" }),
                        i.dr_priority.to_string(),
                        format!("{}s/{}s", i.hello_period_secs, i.holdtime_secs),
                        i.next_hello_ms
                            .map_or_else(|| "-".into(), |m| format!("{:.1}s", m as f64 / 1000.0)),
                        format!("{:08x}", i.generation_id),
                        i.neighbors.to_string(),
                        format!("{}/{}", i.counters.hellos_sent, i.counters.hellos_received),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &[
                    "INTERFACE",
                    "ADDRESS",
                    "DR",
                    "PRIORITY",
                    "HELLO/HOLD",
                    "NEXT",
                    "GENID",
                    "NEIGHBORS",
                    "SENT/RCVD",
                ],
                &rows,
            ));
            for i in &p.interfaces {
                let c = &i.counters;
                let dropped = [
                    ("bad_checksum", c.bad_checksum),
                    ("truncated", c.truncated),
                    ("bad_version", c.bad_version),
                    ("bad_option", c.bad_option),
                    ("unknown_type", c.unknown_type),
                    ("wrong_subnet", c.wrong_subnet),
                    ("own", c.own),
                    ("unhandled_type", c.unhandled_type),
                    ("neighbor_table_full", c.neighbor_table_full),
                    ("unknown_options", c.unknown_options),
                ];
                let nz: Vec<String> = dropped
                    .iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if !nz.is_empty() {
                    let _ = writeln!(out, "{}: {}", esc(&i.name), nz.join(" "));
                }
            }
            if !p.waiting.is_empty() {
                let w: Vec<String> = p.waiting.iter().map(|w| esc(w)).collect();
                let _ = writeln!(out, "waiting (missing or down): {}", w.join(", "));
            }
        }
        Reply::PimExternalNeighbors(e) => {
            let rows: Vec<Vec<String>> = e
                .neighbors
                .iter()
                .map(|n| {
                    vec![
                        esc(&n.interface),
                        n.address.to_string(),
                        n.priority.map_or_else(|| "1".into(), |p| p.to_string()),
                        n.tag.as_deref().map_or_else(|| "-".into(), esc),
                        if n.active { "active" } else { "waiting" }.into(),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &["INTERFACE", "NEIGHBOR", "PRIORITY", "TAG", "STATE"],
                &rows,
            ));
        }
        Reply::PimRpfRoutes(r) => {
            let rows: Vec<Vec<String>> = r
                .routes
                .iter()
                .map(|r| {
                    vec![
                        r.source.to_string(),
                        esc(&r.interface),
                        o(&r.neighbor),
                        r.metric.to_string(),
                        r.origin.clone(),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &["SOURCE", "INTERFACE", "NEIGHBOR", "METRIC", "ORIGIN"],
                &rows,
            ));
        }
        Reply::PimRpfAnswer(a) => {
            if a.found {
                let _ = writeln!(
                    out,
                    "{} via {} neighbor {} metric {} preference {} (from {})",
                    a.source,
                    a.interface.as_deref().map_or_else(|| "-".into(), esc),
                    a.neighbor
                        .map_or_else(|| "connected".into(), |n| n.to_string()),
                    o(&a.metric),
                    o(&a.preference),
                    a.provider
                );
            } else {
                let _ = writeln!(out, "{}: no route (from {})", a.source, a.provider);
            }
        }
        Reply::PimJoinState(j) => render_join_state(out, j),
        Reply::PimRp(r) => {
            let _ = writeln!(
                out,
                "rp_address: {}{}",
                o(&r.rp_address),
                r.rp_address_origin
                    .as_deref()
                    .map_or_else(String::new, |o| format!(" ({o})"))
            );
            let rows: Vec<Vec<String>> = r
                .static_rp
                .iter()
                .map(|m| {
                    vec![
                        esc(&m.group),
                        m.rp.to_string(),
                        m.origin.clone(),
                        if m.local { "us" } else { "" }.into(),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &["GROUP", "RP", "ORIGIN", "LOCAL"],
                &rows,
            ));
            if let Some(g) = &r.group {
                let _ = writeln!(
                    out,
                    "{}: RP {}{}{}",
                    g.group,
                    o(&g.rp),
                    g.via
                        .as_deref()
                        .map_or_else(String::new, |v| format!(" via {}", esc(v))),
                    if g.local { " (this router)" } else { "" }
                );
            }
        }
        _ => {}
    }
}

fn secs(v: &Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s}s"))
}

fn render_join_state(out: &mut String, j: &mcr_controlplane::control::api::PimJoinState) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for e in &j.entries {
        let entry = match (e.kind.as_str(), e.source) {
            ("star-g", _) => format!("(*,{})", e.group),
            ("sg-rpt", Some(s)) => format!("({s},{},rpt)", e.group),
            (_, s) => format!("({},{})", o(&s), e.group),
        };
        let mut flags = Vec::new();
        if e.spt_bit == Some(true) {
            flags.push("spt".to_string());
        }
        if let Some(r) = e.register.as_deref().filter(|r| *r != "no-info") {
            flags.push(format!("reg={r}"));
        }
        if let Some(k) = e.keepalive {
            flags.push(format!("ka={k}s"));
        }
        let down: Vec<String> = e
            .downstream
            .iter()
            .map(|d| {
                let mut t = format!("{}:{}", esc(&d.interface), d.state);
                if let Some(x) = d.expiry {
                    let _ = write!(t, "/{x}s");
                }
                if let Some(p) = d.prune_pending {
                    let _ = write!(t, " pp={p}s");
                }
                if let Some(a) = &d.assert {
                    let _ = write!(t, " assert={a}");
                    if let Some(w) = d.assert_winner {
                        let _ = write!(t, " winner={w}");
                    }
                    if let Some(m) = &d.assert_metric {
                        let rpt = if m.rpt { ",rpt" } else { "" };
                        let _ = write!(t, " metric={}/{}{rpt}", m.preference, m.metric);
                    }
                    if let Some(x) = d.assert_timer {
                        let _ = write!(t, " at={x}s");
                    }
                }
                t
            })
            .collect();
        rows.push(vec![
            entry,
            o(&e.rp),
            e.upstream.clone(),
            e.rpf_interface.as_deref().map_or_else(|| "-".into(), esc),
            o(&e.rpf_neighbor),
            secs(&e.join_timer),
            if flags.is_empty() {
                "-".into()
            } else {
                flags.join(",")
            },
            if down.is_empty() {
                "-".into()
            } else {
                down.join(" ")
            },
        ]);
    }
    out.push_str(&crate::render::table(
        &[
            "ENTRY",
            "RP",
            "UPSTREAM",
            "RPF-IF",
            "RPF-NBR",
            "JT",
            "FLAGS",
            "DOWNSTREAM",
        ],
        &rows,
    ));
    let c = &j.counters;
    let t = &c.tree;
    let _ = writeln!(
        out,
        "entries {}/{}; J/P received {} sent {}; registers received {} bad {}; asserts received {} ignored {}",
        j.entry_count, j.max_entries, t.jp_received, t.jp_sent, t.registers_received,
        t.bad_registers, t.asserts_received, t.asserts_ignored
    );
    let dropped = [
        ("entries_dropped", t.entries_dropped),
        ("members_dropped", t.members_dropped),
        ("jp_own", t.jp_own),
        ("jp_not_neighbor", t.jp_not_neighbor),
        ("bad_group", t.bad_group),
        ("bad_source", t.bad_source),
        ("rp_mismatch", t.rp_mismatch),
        ("bad_checksum", c.malformed.bad_checksum),
        ("truncated", c.malformed.truncated),
        ("bad_version", c.malformed.bad_version),
        ("bad_option", c.malformed.bad_option),
        ("unknown_type", c.malformed.unknown_type),
        ("not_pim_interface", c.not_pim_interface),
        ("mrib_route_limit", c.mrib_route_limit),
        ("mrib_refused", c.mrib_refused),
        ("rpf_untracked", c.rpf_untracked),
        ("rpf_unavailable", c.rpf_unavailable),
        ("register_data_no_tunnel", c.register_data_no_tunnel),
        ("register_data_dropped", c.register_data_dropped),
        ("send_errors", c.send_errors),
    ];
    let nz: Vec<String> = dropped
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !nz.is_empty() {
        let _ = writeln!(out, "dropped: {}", nz.join(" "));
    }
}
