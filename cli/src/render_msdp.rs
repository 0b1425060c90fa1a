//! Tables for the `mcrctl msdp ...` answers.

use mcr_controlplane::control::api::Reply;
use std::fmt::Write;

fn esc(s: &str) -> String {
    mcr_config::text::escape(s).into_owned()
}

/// Appends the rendering of an `msdp_*` answer to `out`.
pub fn render(out: &mut String, reply: &Reply) {
    match reply {
        Reply::MsdpPeers(p) => {
            if !p.running {
                out.push_str("MSDP is not running (msdp.enabled with a local_address)\n");
            }
            if let Some(e) = &p.listen_error {
                let _ = writeln!(out, "listen error: {}", esc(e));
            }
            let rows: Vec<Vec<String>> = p
                .peers
                .iter()
                .map(|e| {
                    let state = serde_json::to_value(e.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    vec![
                        e.address.to_string(),
                        state,
                        e.role.clone(),
                        e.uptime_secs
                            .map_or_else(|| "-".into(), |u| format!("{u}s")),
                        e.stats.sa_in.to_string(),
                        e.stats.sa_out.to_string(),
                        format!("{}/{}", e.sa_cached, e.sa_limit),
                        (e.stats.rpf_fail
                            + e.stats.filtered_in
                            + e.stats.limit_drops
                            + e.stats.cache_full_drops
                            + e.stats.invalid_source
                            + e.stats.invalid_group
                            + e.stats.invalid_rp)
                            .to_string(),
                        e.mesh_group.as_deref().map_or_else(|| "-".into(), esc),
                        e.last_error.as_deref().map_or_else(|| "-".into(), esc),
                        e.description.as_deref().map_or_else(|| "-".into(), esc),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &[
                    "PEER",
                    "STATE",
                    "ROLE",
                    "UPTIME",
                    "SA_IN",
                    "SA_OUT",
                    "CACHED/LIMIT",
                    "DROPPED_IN",
                    "MESH",
                    "LAST_ERROR",
                    "DESCRIPTION",
                ],
                &rows,
            ));
            let _ = writeln!(
                out,
                "SA cache: {}/{} entries, {} local sources",
                p.sa_cache_entries, p.sa_cache_limit, p.local_sources
            );
        }
        Reply::MsdpSaCache(c) => {
            let rows: Vec<Vec<String>> = c
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.source.to_string(),
                        e.group.to_string(),
                        e.origin_rp.to_string(),
                        e.learned_from.to_string(),
                        format!("{}s", e.uptime_secs),
                        format!("{}s", e.expires_in_secs),
                    ]
                })
                .collect();
            out.push_str(&crate::render::table(
                &[
                    "SOURCE",
                    "GROUP",
                    "ORIGIN_RP",
                    "LEARNED_FROM",
                    "UPTIME",
                    "EXPIRES",
                ],
                &rows,
            ));
            let _ = writeln!(out, "{} of {} entries", c.entries.len(), c.total);
        }
        _ => {}
    }
}
