//! The `pim_*` control commands.

use std::net::Ipv4Addr;
use std::time::Instant;

use mcr_config::Config;
use mcr_protocols::pim::holdtime_for;
use mcr_protocols::{RpfRoute, Timestamp};
use serde_json::Value;

use super::{Injected, PimRuntime, Provider, WaitingQuery, MAX_EXTERNAL_NEIGHBORS};
use crate::control::api::{
    PimExternalNeighborEntry, PimExternalNeighbors, PimInterfaceEntry, PimInterfaces,
    PimNeighborEntry, PimNeighbors, PimRpfAnswer, PimRpfRoutes,
};
use crate::control::{ErrorCode, Request, Response};
use crate::rpf::{external::parse_prefix, Lookup, StaticRoute};

/// An RP address must be a unicast address.
fn check_rp(a: Ipv4Addr) -> Result<(), String> {
    if a.is_multicast() || a.is_unspecified() || a.is_broadcast() || a.is_loopback() {
        return Err(format!("RP address {a} must be a unicast address"));
    }
    Ok(())
}

/// The answer to `pim_query_rpf`.
pub fn rpf_answer(source: Ipv4Addr, provider: &str, route: Option<&RpfRoute>) -> PimRpfAnswer {
    PimRpfAnswer {
        source,
        provider: provider.into(),
        found: route.is_some(),
        interface: route.map(|r| r.interface.name.to_string()),
        neighbor: route.and_then(|r| r.neighbor),
        metric: route.map(|r| r.metric),
        preference: route.map(|r| r.preference),
    }
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}

impl PimRuntime {
    /// `pim_query_rpf`: answered now, or `None` when the question went to an
    /// external provider (the answer comes from
    /// [`take_answers`](PimRuntime::take_answers)).
    pub fn query_rpf(
        &mut self,
        source: Ipv4Addr,
        client: u64,
        id: Option<Value>,
    ) -> Option<Response> {
        let kind = self.provider_kind();
        let Some(p) = self.provider.dyn_mut() else {
            let why = match &self.provider {
                Provider::Failed(e) => e.clone(),
                _ => "no RPF provider".into(),
            };
            return Some(Response::error(ErrorCode::Unavailable, why));
        };
        match p.lookup(Instant::now(), source) {
            Lookup::Answer(r) => Some(Response::ok(rpf_answer(source, kind, r.as_ref()))),
            Lookup::Unavailable(why) => Some(Response::error(ErrorCode::Unavailable, why)),
            Lookup::Pending => {
                if self.queries.len() >= super::MAX_WAITING_QUERIES {
                    return Some(Response::error(
                        ErrorCode::Busy,
                        "too many RPF queries waiting for the provider; try again",
                    ));
                }
                self.queries.push(WaitingQuery { client, id, source });
                None
            }
        }
    }

    /// Every `pim_*` command but `pim_query_rpf` waiting for a provider.
    pub fn request(&mut self, req: Request, config: &Config) -> Response {
        match req {
            Request::PimNeighbors => Response::ok(self.neighbors()),
            Request::PimInterfaces => Response::ok(self.interfaces()),
            Request::PimExternalNeighbors => Response::ok(self.external_list(0)),
            Request::PimAddNeighbor {
                interface,
                address,
                priority,
                tag,
            } => {
                if let Err(r) = self.check_external(config) {
                    return r;
                }
                if !config.pim.interfaces.iter().any(|i| i.name == interface) {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!(
                            "'{}' is not a PIM interface; add it to pim.interfaces first (PIM interfaces: {})",
                            mcr_config::text::escape(&interface),
                            config
                                .pim
                                .interfaces
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                if address.is_multicast()
                    || address.is_unspecified()
                    || address.is_broadcast()
                    || address.is_loopback()
                {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!("neighbour address {address} must be a unicast address"),
                    );
                }
                // Our own address would make us our own neighbour (and
                // possibly our own DR). Off-subnet addresses are allowed:
                // overlay and mesh links often carry /32 addresses.
                if self
                    .addrs
                    .values()
                    .any(|(_, list)| list.iter().any(|a| a.address == address))
                {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!("{address} is one of this router's own addresses, not a neighbour"),
                    );
                }
                if let Some(t) = &tag {
                    if t.len() > 128 || t.chars().any(char::is_control) {
                        return Response::error(
                            ErrorCode::InvalidArguments,
                            "tag must be at most 128 bytes of printable text",
                        );
                    }
                }
                let new = Injected {
                    interface: interface.clone(),
                    address,
                    priority,
                    tag,
                };
                let changed = match self
                    .injected
                    .iter_mut()
                    .find(|n| n.interface == interface && n.address == address)
                {
                    Some(n) if *n == new => 0,
                    Some(n) => {
                        *n = new;
                        1
                    }
                    None => {
                        if self.injected.len() >= MAX_EXTERNAL_NEIGHBORS {
                            return Response::error(
                                ErrorCode::Busy,
                                format!("{MAX_EXTERNAL_NEIGHBORS} neighbours are injected already; remove some first"),
                            );
                        }
                        self.injected.push(new);
                        1
                    }
                };
                tracing::info!(interface = %interface, neighbor = %address, "PIM neighbour injected");
                self.refresh_external();
                Response::ok(self.external_list(changed))
            }
            Request::PimRemoveNeighbor { interface, address } => {
                if let Err(r) = self.check_external(config) {
                    return r;
                }
                let before = self.injected.len();
                self.injected
                    .retain(|n| !(n.interface == interface && n.address == address));
                if self.injected.len() == before {
                    return Response::error(
                        ErrorCode::NotFound,
                        format!(
                            "no injected neighbour {address} on '{}'",
                            mcr_config::text::escape(&interface)
                        ),
                    );
                }
                self.refresh_external();
                Response::ok(self.external_list(1))
            }
            Request::PimClearNeighbors { interface } => {
                if let Err(r) = self.check_external(config) {
                    return r;
                }
                let before = self.injected.len();
                self.injected
                    .retain(|n| interface.as_ref().is_some_and(|i| *i != n.interface));
                let changed = before - self.injected.len();
                self.refresh_external();
                Response::ok(self.external_list(changed))
            }
            Request::PimListRpfRoutes => match &self.provider {
                Provider::Static(s) => Response::ok(PimRpfRoutes {
                    routes: s.routes().to_vec(),
                    changed: 0,
                }),
                _ => self.not_static(),
            },
            Request::PimAddRpfRoute {
                source,
                interface,
                neighbor,
                metric,
            } => {
                let Some(prefix) = parse_prefix(&source).filter(|p| {
                    p.addr().to_string() == source.split('/').next().unwrap_or_default()
                }) else {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!("'{}' is not a source prefix; write it in CIDR form with host bits zero, e.g. 10.1.0.0/16", mcr_config::text::escape(&source)),
                    );
                };
                if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!(
                            "'{}' is not an interface name",
                            mcr_config::text::escape(&interface)
                        ),
                    );
                }
                if let Some(n) = neighbor {
                    if n.is_multicast() || n.is_unspecified() || n.is_broadcast() {
                        return Response::error(
                            ErrorCode::InvalidArguments,
                            format!("neighbor {n} must be a unicast address"),
                        );
                    }
                }
                let Provider::Static(s) = &mut self.provider else {
                    return self.not_static();
                };
                if let Err(e) = s.insert(StaticRoute {
                    source: prefix,
                    interface,
                    neighbor,
                    metric: metric.unwrap_or(0),
                    origin: "runtime".into(),
                }) {
                    return Response::error(ErrorCode::Busy, e);
                }
                Response::ok(PimRpfRoutes {
                    routes: s.routes().to_vec(),
                    changed: 1,
                })
            }
            Request::PimRemoveRpfRoute { source } => {
                let Some(prefix) = parse_prefix(&source) else {
                    return Response::error(
                        ErrorCode::InvalidArguments,
                        format!(
                            "'{}' is not a source prefix",
                            mcr_config::text::escape(&source)
                        ),
                    );
                };
                let Provider::Static(s) = &mut self.provider else {
                    return self.not_static();
                };
                if !s.remove(&prefix) {
                    return Response::error(
                        ErrorCode::NotFound,
                        format!("no static RPF route for {prefix}"),
                    );
                }
                Response::ok(PimRpfRoutes {
                    routes: s.routes().to_vec(),
                    changed: 1,
                })
            }
            Request::PimClearRpfRoutes => {
                let Provider::Static(s) = &mut self.provider else {
                    return self.not_static();
                };
                let changed = s.clear(None);
                Response::ok(PimRpfRoutes {
                    routes: Vec::new(),
                    changed,
                })
            }
            Request::PimQueryRpf { source } => match self.query_rpf(source, 0, None) {
                Some(r) => r,
                None => Response::error(
                    ErrorCode::Unavailable,
                    "the question went to the RPF provider; ask again for the cached answer",
                ),
            },
            Request::PimJoinState => Response::ok(self.join_state()),
            Request::PimRp { group } => {
                if let Some(g) = group {
                    if !g.is_multicast() {
                        return Response::error(
                            ErrorCode::InvalidArguments,
                            format!("{g} is not a multicast group"),
                        );
                    }
                }
                Response::ok(self.rp_answer(config, group))
            }
            Request::PimSetStaticRp { group, rp } => {
                if !config.pim.enabled {
                    return pim_not_running();
                }
                let mapping = mcr_config::StaticRp {
                    group: group.trim().to_string(),
                    rp,
                };
                if let Err(e) = mapping.group_prefix() {
                    return Response::error(ErrorCode::InvalidArguments, e);
                }
                if let Err(e) = check_rp(rp) {
                    return Response::error(ErrorCode::InvalidArguments, e);
                }
                let range = mapping.group_prefix().ok();
                self.glue
                    .runtime_static_rp
                    .retain(|m| m.group_prefix().ok() != range);
                // The file's own mapping again: no runtime change left.
                if !config.pim.static_rp.contains(&mapping) {
                    self.glue.runtime_static_rp.push(mapping);
                }
                tracing::info!(group = %mcr_config::text::escape(&group), rp = %rp, "PIM static RP set at run time");
                self.resync_tree(config);
                Response::ok(self.rp_answer(config, None))
            }
            Request::PimSetRp { address, clear } => {
                if !config.pim.enabled {
                    return pim_not_running();
                }
                let want = match (address, clear) {
                    (Some(a), false) => {
                        if let Err(e) = check_rp(a) {
                            return Response::error(ErrorCode::InvalidArguments, e);
                        }
                        if !is_local_address(a) {
                            return Response::error(
                                ErrorCode::InvalidArguments,
                                format!(
                                    "{a} is not an address of any interface here: set-rp makes this router the RP, so its address must be ours (add it, e.g. on lo, first); to send groups to another router's RP use set-static-rp"
                                ),
                            );
                        }
                        Some(a)
                    }
                    (None, true) => None,
                    _ => {
                        return Response::error(
                            ErrorCode::InvalidArguments,
                            "give either 'address' or 'clear': true",
                        )
                    }
                };
                // Back to the file's own setting: no runtime change left.
                self.glue.runtime_rp_address = (config.pim.rp_address != want).then_some(want);
                match want {
                    Some(a) => tracing::info!(address = %a, "PIM RP address set at run time"),
                    None => tracing::info!("PIM RP address cleared at run time"),
                }
                self.resync_tree(config);
                Response::ok(self.rp_answer(config, None))
            }
            other => Response::error(
                ErrorCode::InvalidRequest,
                format!("{} is not a PIM command", other.name()),
            ),
        }
    }

    /// Feeds the tree configuration again after a runtime RP change.
    fn resync_tree(&mut self, config: &Config) {
        let Some(mut want) = self.last.clone() else {
            return;
        };
        want.tree = self.tree_config(config);
        if self.last.as_ref() != Some(&want) {
            self.feed(mcr_protocols::Input::Config(want.clone()));
            self.last = Some(want);
            self.glue.last_scan = None;
            self.track_rpf();
        }
    }

    fn not_static(&self) -> Response {
        Response::error(
            ErrorCode::Disabled,
            format!(
                "static RPF routes are used only with control_plane.rpf_provider: \"static\" (it is \"{}\")",
                self.provider_text
            ),
        )
    }

    fn check_external(&self, config: &Config) -> Result<(), Response> {
        if !config.control_plane.external_neighbors_enabled {
            return Err(Response::error(
                ErrorCode::Disabled,
                "external neighbours are disabled: set control_plane.external_neighbors_enabled: true in the config and reload",
            ));
        }
        Ok(())
    }

    fn external_list(&self, changed: usize) -> PimExternalNeighbors {
        let active = |n: &Injected| {
            self.external_enabled
                && self.last.as_ref().is_some_and(|l| {
                    l.interfaces
                        .iter()
                        .any(|c| *c.interface.name == *n.interface)
                })
        };
        PimExternalNeighbors {
            neighbors: self
                .injected
                .iter()
                .map(|n| PimExternalNeighborEntry {
                    interface: n.interface.clone(),
                    address: n.address,
                    priority: n.priority,
                    tag: n.tag.clone(),
                    active: active(n),
                })
                .collect(),
            changed,
        }
    }

    fn neighbors(&self) -> PimNeighbors {
        let now = self.now();
        let mut out = Vec::new();
        if let Some(d) = &self.driver {
            for ifc in d.protocol().interfaces().values() {
                for n in ifc.neighbors.values() {
                    out.push(PimNeighborEntry {
                        interface: ifc.config.interface.name.to_string(),
                        address: n.address,
                        learned_by: match n.learned_by() {
                            mcr_protocols::pim::LearnedBy::Hello => "hello",
                            mcr_protocols::pim::LearnedBy::Injected => "injected",
                            mcr_protocols::pim::LearnedBy::Both => "both",
                        }
                        .into(),
                        uptime_secs: secs(now - n.since),
                        expires_in_secs: n.expires.map(|e: Timestamp| {
                            let left = e - now;
                            left.as_secs() + u64::from(left.subsec_nanos() > 0)
                        }),
                        holdtime_secs: n.holdtime,
                        dr_priority: n.dr_priority(),
                        generation_id: n.generation_id,
                        dr: ifc.dr == Some(n.address),
                        tag: n.injected.as_ref().and_then(|i| i.tag.clone()),
                        secondary_addresses: n.secondary_addresses.clone(),
                    });
                }
            }
        }
        PimNeighbors { neighbors: out }
    }

    fn interfaces(&self) -> PimInterfaces {
        let now = self.now();
        let mut list = Vec::new();
        let mut not_pim = 0;
        if let Some(d) = &self.driver {
            not_pim = d.protocol().not_pim_interface();
            for ifc in d.protocol().interfaces().values() {
                list.push(PimInterfaceEntry {
                    name: ifc.config.interface.name.to_string(),
                    ifindex: ifc.config.interface.index,
                    address: ifc.primary(),
                    dr: ifc.dr,
                    is_dr: ifc.is_dr(),
                    dr_priority: ifc.config.dr_priority,
                    hello_period_secs: ifc.config.hello_period.as_secs(),
                    holdtime_secs: holdtime_for(ifc.config.hello_period),
                    next_hello_ms: d
                        .timers()
                        .remaining(
                            &mcr_protocols::pim::PimTimer::Hello(ifc.config.interface.index),
                            now,
                        )
                        .map(|r| r.as_millis() as u64),
                    generation_id: ifc.generation_id,
                    neighbors: ifc.neighbors.len(),
                    uptime_secs: secs(now - ifc.since),
                    counters: ifc.counters,
                });
            }
        }
        PimInterfaces {
            interfaces: list,
            waiting: self.waiting.clone(),
            not_pim_interface: not_pim,
            send_errors: self.send_errors,
        }
    }
}

/// The answer to a runtime PIM change while PIM is off: the change would
/// only be saved, never run.
fn pim_not_running() -> Response {
    Response::error(
        ErrorCode::Disabled,
        "PIM is not running: set pim.enabled: true in the config file and reload",
    )
}

/// Whether `a` is configured on an interface of this namespace (any, `lo`
/// included: RP addresses often live there).
fn is_local_address(a: std::net::Ipv4Addr) -> bool {
    nix::ifaddrs::getifaddrs().is_ok_and(|mut list| {
        list.any(|i| {
            i.address
                .and_then(|x| x.as_sockaddr_in().map(|x| x.ip()))
                .is_some_and(|ip| ip == a)
        })
    })
}
