//! mcr's routing protocols (IGMP, PIM-SM, MSDP) and the Multicast RIB, with
//! no I/O: no sockets, no threads, no clock reads, no OS randomness.
//!
//! # How a protocol instance is shaped
//!
//! A protocol instance is a value implementing [`Protocol`]: its state (per
//! interface, per neighbour, per group...) plus one method,
//!
//! ```text
//! fn handle(&mut self, now: Timestamp, input: Input<M, T, C>, out: &mut Vec<Action<M, T, E>>)
//! ```
//!
//! Everything that happens to it is an [`Input`]: a parsed packet with its
//! interface and source address, a timer that fired, an interface or address
//! change, a configuration change, an RPF change, a local-membership change,
//! a data-plane notice, shutdown. Everything it wants done is an [`Action`]:
//! send a packet, join or leave a group on an interface, change the [`Mrib`],
//! emit an [`Event`], arm or cancel a timer. A timer firing is just another
//! input: the instance arms a timer by key ([`Action::ArmTimer`]) and later
//! receives [`Input::Timer`] with that key. Time ([`Timestamp`]) and
//! randomness ([`Rng`], seeded by the owner) are inputs too, so the same
//! inputs always give the same actions and a test can replay hours of
//! protocol time in milliseconds with a [`ManualClock`].
//!
//! Inside, each state machine is a `match (state, event)` whose rows cite
//! the RFC section they implement (RFC 2236 and 3376 for IGMP, RFC 4605 for
//! IGMP proxying, RFC 7761 for PIM-SM, RFC 3618 for MSDP). This shape is
//! learned from holo (protocol instances fed by messages, timers as
//! messages) and smoltcp (I/O-free protocol logic), written anew here.
//!
//! # How the control plane drives it
//!
//! The control plane owns the sockets, the clock and one [`Driver`] (the
//! instance plus its [`TimerSet`]) per protocol instance, and loops:
//!
//! 1. **Wait** for a socket, netlink, channel or control-socket event, with
//!    the poll timeout set to [`Driver::poll_timeout`] (the time to the next
//!    timer deadline; no timeout when no timer is armed).
//! 2. **Read the clock once** (`now`), then [`Driver::fire_due`] feeds every
//!    due timer as [`Input::Timer`], and [`Driver::feed`] feeds each input
//!    that arrived (packets parsed by the `wire` crate, interface and RPF
//!    changes, notices).
//! 3. **Execute the actions** in order: encode and send packets, join/leave
//!    on the socket, apply [`MribUpdate`]s to the [`Mrib`], publish events.
//!    Timer actions were already applied to the timer set by the driver.
//! 4. If the MRIB moved ([`Mrib::has_diff`]), take the [`MribDiff`] and
//!    recompile only those routes into the next forwarding table.
//!
//! # Example
//!
//! A protocol that announces itself every 10 s on each interface that comes
//! up, driven for one minute of manual-clock time:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//! use mcr_protocols::{Action, ActionOf, Driver, Input, InputOf, Interface, Protocol, Timestamp};
//!
//! #[derive(Debug, Default)]
//! struct Announcer;
//!
//! impl Protocol for Announcer {
//!     type Message = &'static str;
//!     type Timer = Interface; // one timer per interface
//!     type Config = ();
//!     type Event = ();
//!
//!     fn handle(&mut self, now: Timestamp, input: InputOf<Self>, out: &mut Vec<ActionOf<Self>>) {
//!         match input {
//!             Input::InterfaceUp(i) => out.push(Action::ArmTimer { key: i, at: now }),
//!             Input::InterfaceDown(i) => out.push(Action::CancelTimer { key: i }),
//!             Input::Timer(i) => {
//!                 out.push(Action::Send {
//!                     interface: i.clone(),
//!                     destination: Ipv4Addr::new(224, 0, 0, 13),
//!                     message: "hello",
//!                 });
//!                 out.push(Action::ArmTimer { key: i, at: now + Duration::from_secs(10) });
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let mut driver = Driver::new(Announcer, 1024);
//! let mut actions = Vec::new();
//! driver.feed(Timestamp::ZERO, Input::InterfaceUp(Interface::new(2, "eth0")), &mut actions);
//! let end = Timestamp::from_secs(60);
//! let mut sent = 0;
//! // The control plane's loop, with the clock jumping to each deadline.
//! while let Some(now) = driver.next_deadline().filter(|t| *t < end) {
//!     driver.fire_due(now, &mut actions);
//!     for action in actions.drain(..) {
//!         if let Action::Send { .. } = action {
//!             sent += 1; // the control plane would encode and send it here
//!         }
//!     }
//! }
//! assert_eq!(sent, 6); // at 0, 10, 20, 30, 40 and 50 s
//! ```
//!
//! # Modules
//!
//! * [`time`] - [`Timestamp`], [`Clock`], [`ManualClock`].
//! * [`timer`] - [`TimerSet`], deadline-ordered, keyed, bounded.
//! * [`rng`] - [`Rng`], seeded SplitMix64 with `uniform(Duration range)`.
//! * [`net`] - [`Interface`], [`IfAddr`], [`Ipv4Prefix`].
//! * [`io`] - [`Input`], [`Action`], [`Protocol`].
//! * [`driver`] - [`Driver`].
//! * [`igmp`] - [`igmp::Igmp`], the IGMP querier and membership (RFC 2236, RFC 3376).
//! * [`mrib`] - [`Mrib`], routes `(S,G)` / `(*,G)` merged from per-origin
//!   contributions, with diffs and local-member state.

#![warn(missing_docs)]

pub mod driver;
pub mod igmp;
pub mod io;
pub mod mrib;
pub mod msdp;
pub mod net;
pub mod pim;
pub mod rng;
pub mod time;
pub mod timer;

pub use driver::Driver;
pub use io::{
    Action, ActionOf, DataPlaneNotice, Event, EventCategory, Input, InputOf, Packet, Protocol,
    RpfChange, RpfRoute,
};
pub use mrib::{
    Change, Contribution, FilterMode, Mrib, MribDiff, MribError, MribLimits, MribUpdate, OifReason,
    Origin, Route, RouteKey, SourceFilter,
};
pub use net::{IfAddr, Interface, Ipv4Prefix};
pub use rng::Rng;
pub use time::{Clock, ManualClock, Timestamp};
pub use timer::{TimerSet, TimerSetFull};

/// Serialises a `BTreeMap` whose keys are not strings (e.g. [`Interface`])
/// as a list of `[key, value]` pairs, so it survives JSON.
pub(crate) mod serde_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K, V, S>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize,
        V: Serialize,
        S: Serializer,
    {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
