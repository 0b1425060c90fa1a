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
        _ => {}
    }
}
