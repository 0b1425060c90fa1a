//! IP-level group joins on input interfaces.
//!
//! Capturing at layer 2 sees whatever reaches the interface, but a switch
//! that snoops IGMP only sends a group to ports that asked for it. So for
//! every multicast input the relay also joins the group at IP level. The
//! kernel limits joins per socket (`igmp_max_memberships`), so joins are
//! spread over as many sockets per interface as needed.

use crate::socket::{MembershipSocket, UnicastSink, JOINS_PER_SOCKET};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One join: interface, group, and the source for a source-specific join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Join {
    pub ifindex: u32,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

#[derive(Default)]
struct InterfaceJoins {
    sockets: Vec<(MembershipSocket, usize)>,
    joined: BTreeMap<Join, usize>,
}

/// The joins currently held, by interface, and the sinks for unicast
/// inputs. Owned by the control plane.
#[derive(Default)]
pub struct Memberships {
    by_if: BTreeMap<u32, InterfaceJoins>,
    sinks: BTreeMap<SocketAddrV4, UnicastSink>,
}

impl Memberships {
    /// Makes the held joins equal `wanted` (non-multicast groups are
    /// ignored). Returns the joins that failed, with the error.
    pub fn apply(&mut self, wanted: &BTreeSet<Join>) -> Vec<(Join, std::io::Error)> {
        let wanted: BTreeSet<Join> = wanted
            .iter()
            .copied()
            .filter(|j| j.group.is_multicast())
            .collect();
        let mut failed = Vec::new();
        // Interfaces with no join left: closing the sockets leaves them all.
        self.by_if
            .retain(|ifindex, _| wanted.iter().any(|j| j.ifindex == *ifindex));
        for joins in self.by_if.values_mut() {
            let stale: Vec<Join> = joins
                .joined
                .keys()
                .filter(|j| !wanted.contains(j))
                .copied()
                .collect();
            for j in stale {
                if let Some(idx) = joins.joined.remove(&j) {
                    let (sock, count) = &mut joins.sockets[idx];
                    // The interface may be gone already; the join went with it.
                    let _ = sock.leave(j.group, j.source);
                    *count -= 1;
                }
            }
        }
        for j in wanted {
            let joins = self.by_if.entry(j.ifindex).or_default();
            if joins.joined.contains_key(&j) {
                continue;
            }
            let idx = match joins
                .sockets
                .iter()
                .position(|(_, n)| *n < JOINS_PER_SOCKET)
            {
                Some(i) => i,
                None => match MembershipSocket::open(j.ifindex) {
                    Ok(s) => {
                        joins.sockets.push((s, 0));
                        joins.sockets.len() - 1
                    }
                    Err(e) => {
                        failed.push((j, e));
                        continue;
                    }
                },
            };
            match joins.sockets[idx].0.join(j.group, j.source) {
                Ok(()) => {
                    joins.sockets[idx].1 += 1;
                    joins.joined.insert(j, idx);
                }
                Err(e) => failed.push((j, e)),
            }
        }
        failed
    }

    /// Adds one join to those held (nothing when it is held already or is
    /// not multicast): what [`apply`](Self::apply) does for a set that
    /// gained `j`, without comparing the other joins.
    pub fn join(&mut self, j: Join) -> std::io::Result<()> {
        if !j.group.is_multicast() {
            return Ok(());
        }
        let joins = self.by_if.entry(j.ifindex).or_default();
        if joins.joined.contains_key(&j) {
            return Ok(());
        }
        let idx = match joins
            .sockets
            .iter()
            .rposition(|(_, n)| *n < JOINS_PER_SOCKET)
        {
            Some(i) => i,
            None => {
                joins.sockets.push((MembershipSocket::open(j.ifindex)?, 0));
                joins.sockets.len() - 1
            }
        };
        joins.sockets[idx].0.join(j.group, j.source)?;
        joins.sockets[idx].1 += 1;
        joins.joined.insert(j, idx);
        Ok(())
    }

    /// Leaves one join (nothing when not held).
    pub fn leave(&mut self, j: Join) {
        let Some(joins) = self.by_if.get_mut(&j.ifindex) else {
            return;
        };
        if let Some(idx) = joins.joined.remove(&j) {
            let (sock, count) = &mut joins.sockets[idx];
            // The interface may be gone already; the join went with it.
            let _ = sock.leave(j.group, j.source);
            *count -= 1;
        }
        if joins.joined.is_empty() {
            self.by_if.remove(&j.ifindex);
        }
    }

    /// Holds a [`UnicastSink`] on each of `wanted` that is a local address
    /// with a free port (others are skipped: not ours, or an application
    /// listens there, which also stops the ICMP errors).
    pub fn apply_sinks(&mut self, wanted: &BTreeSet<SocketAddrV4>) {
        self.sinks.retain(|a, _| wanted.contains(a));
        for addr in wanted {
            if addr.ip().is_multicast() || self.sinks.contains_key(addr) {
                continue;
            }
            match UnicastSink::bind(*addr) {
                Ok(s) => {
                    self.sinks.insert(*addr, s);
                }
                Err(e) => tracing::debug!(%addr, error = %e, "no sink for unicast input"),
            }
        }
    }

    /// Leaves every group by closing the sockets, newest first, without one
    /// IP_DROP_MEMBERSHIP per group.
    ///
    /// Why the order: the kernel keeps an interface's groups in a list with
    /// the newest first and finds each group it drops by walking that list.
    /// Closing the socket that joined last drops groups from the head of
    /// the list, so each costs O(1); closing in descriptor order (as process
    /// exit does) starts at the tail and costs O(groups) each, O(groups²) in
    /// all (461 s for 100,000 groups).
    pub fn release_all(&mut self) {
        self.sinks.clear();
        for (_, mut joins) in std::mem::take(&mut self.by_if) {
            joins.joined.clear();
            while let Some(sock) = joins.sockets.pop() {
                drop(sock);
            }
        }
    }

    /// Drops every join on an interface that went away.
    pub fn forget_interface(&mut self, ifindex: u32) {
        self.by_if.remove(&ifindex);
    }

    pub fn count(&self) -> usize {
        self.by_if.values().map(|j| j.joined.len()).sum()
    }
}
