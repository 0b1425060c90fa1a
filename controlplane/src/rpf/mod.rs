//! RPF providers: who answers "traffic from source S should arrive on which
//! interface, from which upstream neighbour, at what metric" for PIM
//! (RFC 7761 section 4.5: RPF'(S) and the RPF interface come from the
//! unicast routing table, here from a provider).
//!
//! `control_plane.rpf_provider` picks one:
//!
//! * `"disabled"`: [`Disabled`]: no RPF check (the seed system's default);
//!   every lookup answers "no route".
//! * `"static"`: [`StaticRpf`]: a longest-prefix table from
//!   `control_plane.static_rpf` plus `mcrctl pim add-rpf-route` entries.
//! * `"kernel"`: [`kernel::KernelRpf`]: the namespace's unicast FIB through
//!   rtnetlink (`RTM_GETROUTE` for a lookup, the `RTNLGRP_IPV4_ROUTE`
//!   multicast group for changes; no polling).
//! * an absolute socket path: [`external::ExternalRpf`]: a provider
//!   speaking JSON lines on a Unix socket (`docs/rpf-provider.md`).
//!
//! Every provider is non-blocking: the supervisor polls
//! [`RpfProvider::poll_fd`] with everything else and calls
//! [`RpfProvider::poll`]; changes come back as [`RpfNotice::Change`] and are
//! fed to PIM as [`mcr_protocols::Input::Rpf`].

pub mod external;
pub mod kernel;

use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::time::Instant;

use mcr_protocols::{Interface, Ipv4Prefix, RpfChange, RpfRoute};
use serde::{Deserialize, Serialize};

/// Metric preference (administrative distance) given to static RPF routes
/// (RFC 7761 section 4.6 `metric_preference`; 1 like a static route).
pub const STATIC_PREFERENCE: u32 = 1;
/// Metric preference of kernel routes (0: connected and kernel routes are
/// what the FIB forwards with).
pub const KERNEL_PREFERENCE: u32 = 0;
/// Metric preference of an external provider's answers (its own choice is
/// not carried by the seed protocol; 120 is what Babel and RIP use in FRR).
pub const EXTERNAL_PREFERENCE: u32 = 120;
/// Bound of the static table, routes.
pub const MAX_STATIC_ROUTES: usize = 65_536;

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Answered now: `None` means no route.
    Answer(Option<RpfRoute>),
    /// Asked (an external provider); the answer comes as
    /// [`RpfNotice::Answered`].
    Pending,
    /// The provider cannot answer now (external provider down), and why.
    Unavailable(String),
}

/// Something a provider tells the supervisor after [`RpfProvider::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpfNotice {
    /// The answer for a prefix changed: fed to PIM as `Input::Rpf` and
    /// published as a `rpf-change` event.
    Change(RpfChange),
    /// The answer to a [`Lookup::Pending`] query.
    Answered {
        /// The source asked about.
        source: Ipv4Addr,
        /// The answer, or why there is none.
        result: Result<Option<RpfRoute>, String>,
    },
    /// The provider's connection state changed (external provider).
    State(String),
}

/// A provider's state for `status` and `mcrctl pim query-rpf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpfProviderStatus {
    /// `disabled`, `static`, `kernel` or `external`.
    pub kind: String,
    /// The socket path of an external provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// `up` or `down` (an external provider not connected; `down` for the
    /// kernel provider when its netlink socket could not be opened).
    pub state: String,
    /// Why it is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times the external provider's connection was (re)established.
    pub connects: u64,
    /// Answers held in the cache.
    pub cached: usize,
}

/// An RPF provider. All methods return at once.
pub trait RpfProvider {
    /// `disabled`, `static`, `kernel` or `external`.
    fn kind(&self) -> &'static str;
    /// Looks up `source` at `now`.
    fn lookup(&mut self, now: Instant, source: Ipv4Addr) -> Lookup;
    /// The descriptor to poll and the events wanted, if any.
    fn poll_fd(&self) -> Option<(RawFd, i16)>;
    /// Reads what is ready, reconnects when due, expires queries; returns
    /// what changed.
    fn poll(&mut self, now: Instant) -> Vec<RpfNotice>;
    /// When [`poll`](RpfProvider::poll) must run next even without I/O
    /// (reconnect, query timeout).
    fn next_deadline(&self) -> Option<Instant>;
    /// State for `status`.
    fn status(&self) -> RpfProviderStatus;
}

/// `rpf_provider: "disabled"`.
#[derive(Debug, Default)]
pub struct Disabled;

impl RpfProvider for Disabled {
    fn kind(&self) -> &'static str {
        "disabled"
    }
    fn lookup(&mut self, _: Instant, _: Ipv4Addr) -> Lookup {
        Lookup::Answer(None)
    }
    fn poll_fd(&self) -> Option<(RawFd, i16)> {
        None
    }
    fn poll(&mut self, _: Instant) -> Vec<RpfNotice> {
        Vec::new()
    }
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn status(&self) -> RpfProviderStatus {
        RpfProviderStatus {
            kind: "disabled".into(),
            socket: None,
            state: "up".into(),
            error: None,
            connects: 0,
            cached: 0,
        }
    }
}

/// An interface by name as a protocol [`Interface`] (index 0 when this
/// namespace has no such interface: the answer still names it).
pub fn interface_by_name(name: &str) -> Interface {
    let index = nix::net::if_::if_nametoindex(name).unwrap_or(0);
    Interface::new(index, name)
}

/// One static RPF route (config `control_plane.static_rpf` or `mcrctl pim
/// add-rpf-route`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// Source prefix, CIDR (`"10.1.0.0/16"` on the wire).
    #[serde(with = "prefix_text")]
    pub source: Ipv4Prefix,
    /// Upstream interface name.
    pub interface: String,
    /// Upstream neighbour (`None`: directly connected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor: Option<Ipv4Addr>,
    /// Metric (unitless, lower is better).
    pub metric: u32,
    /// `config` or `runtime`.
    pub origin: String,
}

/// An [`Ipv4Prefix`] as CIDR text (`"10.1.0.0/16"`) in JSON.
mod prefix_text {
    use mcr_protocols::Ipv4Prefix;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Ipv4Prefix, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(p)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Prefix, D::Error> {
        let text = String::deserialize(d)?;
        super::external::parse_prefix(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("'{text}' is not an IPv4 prefix")))
    }
}

impl StaticRoute {
    fn route(&self) -> RpfRoute {
        RpfRoute {
            interface: interface_by_name(&self.interface),
            neighbor: self.neighbor,
            metric: self.metric,
            preference: STATIC_PREFERENCE,
        }
    }
}

/// `rpf_provider: "static"`: longest-prefix match over a table.
#[derive(Debug, Default)]
pub struct StaticRpf {
    routes: Vec<StaticRoute>,
    changes: Vec<RpfNotice>,
}

impl StaticRpf {
    /// The routes, sorted by prefix.
    pub fn routes(&self) -> &[StaticRoute] {
        &self.routes
    }

    /// The route for exactly `prefix`.
    pub fn get(&self, prefix: &Ipv4Prefix) -> Option<&StaticRoute> {
        self.routes.iter().find(|r| r.source == *prefix)
    }

    fn lpm(&self, source: Ipv4Addr) -> Option<&StaticRoute> {
        self.routes
            .iter()
            .filter(|r| r.source.contains(source))
            .max_by_key(|r| r.source.prefix_len())
    }

    fn changed(&mut self, prefix: Ipv4Prefix) {
        // The answer for the prefix's own address after the change.
        let route = self.lpm(prefix.addr()).map(StaticRoute::route);
        self.changes
            .push(RpfNotice::Change(RpfChange { prefix, route }));
    }

    /// Adds or replaces the route for `route.source`.
    ///
    /// # Errors
    /// The table is full.
    pub fn insert(&mut self, route: StaticRoute) -> Result<(), String> {
        let prefix = route.source;
        match self.routes.iter_mut().find(|r| r.source == prefix) {
            Some(r) if *r == route => return Ok(()),
            Some(r) => *r = route,
            None => {
                if self.routes.len() >= MAX_STATIC_ROUTES {
                    return Err(format!(
                        "the static RPF table is full ({MAX_STATIC_ROUTES} routes)"
                    ));
                }
                self.routes.push(route);
                self.routes.sort_by_key(|r| r.source);
            }
        }
        self.changed(prefix);
        Ok(())
    }

    /// Removes the route for `prefix`; whether there was one.
    pub fn remove(&mut self, prefix: &Ipv4Prefix) -> bool {
        let before = self.routes.len();
        self.routes.retain(|r| r.source != *prefix);
        let removed = self.routes.len() != before;
        if removed {
            self.changed(*prefix);
        }
        removed
    }

    /// Removes routes of `origin` (`None`: all); how many.
    pub fn clear(&mut self, origin: Option<&str>) -> usize {
        let gone: Vec<Ipv4Prefix> = self
            .routes
            .iter()
            .filter(|r| origin.is_none_or(|o| r.origin == o))
            .map(|r| r.source)
            .collect();
        for p in &gone {
            self.remove(p);
        }
        gone.len()
    }
}

impl RpfProvider for StaticRpf {
    fn kind(&self) -> &'static str {
        "static"
    }
    fn lookup(&mut self, _: Instant, source: Ipv4Addr) -> Lookup {
        Lookup::Answer(self.lpm(source).map(StaticRoute::route))
    }
    fn poll_fd(&self) -> Option<(RawFd, i16)> {
        None
    }
    fn poll(&mut self, _: Instant) -> Vec<RpfNotice> {
        std::mem::take(&mut self.changes)
    }
    fn next_deadline(&self) -> Option<Instant> {
        // Changes made by commands are reported on the next poll.
        (!self.changes.is_empty()).then(Instant::now)
    }
    fn status(&self) -> RpfProviderStatus {
        RpfProviderStatus {
            kind: "static".into(),
            socket: None,
            state: "up".into(),
            error: None,
            connects: 0,
            cached: self.routes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Ipv4Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn route(prefix: &str, ifname: &str, metric: u32) -> StaticRoute {
        StaticRoute {
            source: p(prefix),
            interface: ifname.into(),
            neighbor: Some("10.2.0.1".parse().unwrap()),
            metric,
            origin: "runtime".into(),
        }
    }

    #[test]
    fn static_table_is_longest_prefix_match_and_reports_changes() {
        let mut s = StaticRpf::default();
        let now = Instant::now();
        assert_eq!(
            s.lookup(now, "10.1.2.3".parse().unwrap()),
            Lookup::Answer(None)
        );
        s.insert(route("10.0.0.0/8", "a", 10)).unwrap();
        s.insert(route("10.1.0.0/16", "b", 20)).unwrap();
        let Lookup::Answer(Some(r)) = s.lookup(now, "10.1.2.3".parse().unwrap()) else {
            panic!()
        };
        assert_eq!(&*r.interface.name, "b");
        assert_eq!(r.metric, 20);
        let Lookup::Answer(Some(r)) = s.lookup(now, "10.2.2.3".parse().unwrap()) else {
            panic!()
        };
        assert_eq!(&*r.interface.name, "a");
        assert_eq!(s.poll(now).len(), 2);
        // Same route again: no change.
        s.insert(route("10.1.0.0/16", "b", 20)).unwrap();
        assert!(s.poll(now).is_empty());
        assert!(s.remove(&p("10.1.0.0/16")));
        let ch = s.poll(now);
        let RpfNotice::Change(c) = &ch[0] else {
            panic!()
        };
        assert_eq!(c.prefix, p("10.1.0.0/16"));
        assert_eq!(
            &*c.route.as_ref().unwrap().interface.name,
            "a",
            "falls back to /8"
        );
        assert_eq!(s.clear(None), 1);
        assert!(s.routes().is_empty());
    }
}
