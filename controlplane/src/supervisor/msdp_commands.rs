//! The MSDP control requests: `msdp_peers`, `msdp_sa_cache`,
//! `msdp_add_peer`, `msdp_remove_peer`.

use super::Supervisor;
use crate::control::api::{MsdpPeerEntry, MsdpPeers, MsdpSaCache, MsdpSaEntry};
use crate::control::{ErrorCode, Response};
use std::net::Ipv4Addr;

impl Supervisor {
    /// Every peer with its state and counters.
    pub(super) fn msdp_peers(&self) -> MsdpPeers {
        let rt = &self.msdp;
        let local = self.config.msdp.local_address;
        let mut peers = Vec::new();
        if let Some(m) = rt.instance() {
            for p in m.peers() {
                let (l, r) = rt.session_addrs(p.address).unwrap_or((None, None));
                peers.push(MsdpPeerEntry {
                    address: p.address,
                    description: p.config.description.clone(),
                    mesh_group: p.config.mesh_group.clone(),
                    default_peer: p.config.default_peer,
                    state: p.state,
                    role: if local.is_some_and(|a| a < p.address) {
                        "connect".into()
                    } else {
                        "listen".into()
                    },
                    uptime_secs: p.up_since.map(|t| rt.age_secs(t)),
                    local: l,
                    remote: r,
                    sa_cached: p.sa_count,
                    sa_limit: p.config.sa_limit,
                    stats: p.stats,
                    send_drops: rt.send_drops(p.address),
                    // A failing connect is newer news than how the last
                    // session ended.
                    last_error: rt
                        .connect_error(p.address)
                        .map(str::to_string)
                        .or_else(|| p.last_error.clone()),
                });
            }
        }
        let m = rt.instance();
        MsdpPeers {
            running: rt.running(),
            local_address: local,
            listening: rt.listening(),
            listen_error: rt.listen_error().map(str::to_string),
            peers,
            sa_cache_entries: m.map_or(0, |m| m.sa_cache_len()),
            sa_cache_limit: self.config.msdp.sa_cache_limit as usize,
            local_sources: m.map_or(0, |m| m.local_sources().count()),
            counters: m.map(|m| *m.counters()).unwrap_or_default(),
            sockets: rt.socket_counters(),
        }
    }

    /// The SA cache, optionally only one group's or one peer's entries.
    pub(super) fn msdp_sa_cache(
        &self,
        group: Option<Ipv4Addr>,
        peer: Option<Ipv4Addr>,
    ) -> MsdpSaCache {
        let rt = &self.msdp;
        let Some(m) = rt.instance() else {
            return MsdpSaCache {
                entries: Vec::new(),
                total: 0,
            };
        };
        let entries = m
            .sa_cache()
            .filter(|(k, v)| {
                group.is_none_or(|g| g == k.group) && peer.is_none_or(|p| p == v.learned_from)
            })
            .map(|(k, v)| MsdpSaEntry {
                source: k.source,
                group: k.group,
                origin_rp: k.rp,
                learned_from: v.learned_from,
                uptime_secs: rt.age_secs(v.created),
                expires_in_secs: rt.secs_until(v.expires),
            })
            .collect();
        MsdpSaCache {
            entries,
            total: m.sa_cache_len(),
        }
    }

    /// Adds a peer to the running `msdp` section (or changes the
    /// description, mesh group and default-peer flag of one), as if the
    /// file had it: `config_save` writes it, a reload goes back to the file.
    pub(super) fn msdp_add_peer(
        &mut self,
        address: Ipv4Addr,
        description: Option<String>,
        mesh_group: Option<String>,
        default_peer: bool,
    ) -> Response {
        let m = &self.config.msdp;
        if !m.enabled || m.local_address.is_none() {
            return Response::error(
                ErrorCode::Disabled,
                "MSDP is not running: set msdp.enabled: true and msdp.local_address in the config file and reload",
            );
        }
        if address.is_multicast()
            || address.is_unspecified()
            || address.is_broadcast()
            || address.is_loopback()
        {
            return Response::error(
                ErrorCode::InvalidArguments,
                format!("peer address {address} is not a unicast address"),
            );
        }
        if Some(address) == m.local_address {
            return Response::error(
                ErrorCode::InvalidArguments,
                format!("peer address {address} is this router's local_address; a router cannot peer with itself"),
            );
        }
        if mesh_group.as_deref().is_some_and(|g| g.trim().is_empty()) {
            return Response::error(
                ErrorCode::InvalidArguments,
                "mesh group name is empty; give a name or leave --mesh-group out",
            );
        }
        let peers = &mut self.config.msdp.peers;
        match peers.iter_mut().find(|p| p.address == address) {
            Some(p) => {
                // An existing peer: only what is given changes (its limits,
                // filters and session stay), so a repeated or mistyped
                // add-peer cannot strip settings it did not name.
                let before = (p.description.clone(), p.mesh_group.clone(), p.default_peer);
                if description.is_some() {
                    p.description = description;
                }
                if mesh_group.is_some() {
                    p.mesh_group = mesh_group;
                }
                p.default_peer |= default_peer;
                let after = (p.description.clone(), p.mesh_group.clone(), p.default_peer);
                if before == after {
                    tracing::info!(peer = %address, "MSDP peer already configured so: nothing changed");
                    return Response::ok(self.msdp_peers());
                }
                let shown = |d: &Option<String>| {
                    d.as_deref().map_or_else(
                        || "-".to_string(),
                        |d| mcr_config::text::escape(d).into_owned(),
                    )
                };
                tracing::info!(
                    peer = %address,
                    description = %format!("{} -> {}", shown(&before.0), shown(&after.0)),
                    mesh_group = %format!("{} -> {}", shown(&before.1), shown(&after.1)),
                    default_peer = %format!("{} -> {}", before.2, after.2),
                    "MSDP peer changed at run time"
                );
                self.config_edited = true;
                self.msdp.sync(&self.config.msdp);
                self.msdp_publish();
                return Response::ok(self.msdp_peers());
            }
            None => peers.push(mcr_config::MsdpPeer {
                address,
                description,
                mesh_group,
                default_peer,
                sa_limit: None,
                sa_filter_in: Vec::new(),
                sa_filter_out: Vec::new(),
            }),
        }
        self.config_edited = true;
        tracing::info!(peer = %address, "MSDP peer added at run time");
        self.msdp.sync(&self.config.msdp);
        self.msdp_publish();
        Response::ok(self.msdp_peers())
    }

    /// Removes a peer from the running `msdp` section; its session closes
    /// and the SAs learned from it leave the cache.
    pub(super) fn msdp_remove_peer(&mut self, address: Ipv4Addr) -> Response {
        let peers = &mut self.config.msdp.peers;
        let before = peers.len();
        peers.retain(|p| p.address != address);
        if peers.len() == before {
            return Response::error(
                ErrorCode::NotFound,
                format!("{address} is not an MSDP peer (see mcrctl msdp peers)"),
            );
        }
        self.config_edited = true;
        tracing::info!(peer = %address, "MSDP peer removed at run time");
        self.msdp.sync(&self.config.msdp);
        self.msdp_publish();
        Response::ok(self.msdp_peers())
    }
}
