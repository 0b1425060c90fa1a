//! MSDP peer state machine and SA cache under a manual clock: no sleeping.

use super::*;
use crate::{Clock, ManualClock, TimerSet};

const LOW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
const FAR_RP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

/// The instance plus a timer set and a log, as the control plane would run it.
struct H {
    m: Msdp,
    timers: TimerSet<MsdpTimer>,
    clock: ManualClock,
    /// Every non-timer action with the time it was pushed.
    log: Vec<(Timestamp, MsdpAction)>,
}

fn cfg(local: Ipv4Addr, peers: &[Ipv4Addr]) -> Config {
    Config {
        local_address: local,
        peers: peers.iter().map(|p| (*p, PeerConfig::default())).collect(),
        ..Config::default()
    }
}

impl H {
    fn new(c: Config) -> H {
        let mut h = H {
            m: Msdp::new(),
            timers: TimerSet::with_capacity(200_000),
            clock: ManualClock::new(Timestamp::ZERO),
            log: Vec::new(),
        };
        h.feed(MsdpInput::Config(c));
        h
    }

    /// Feeds one input; returns the non-timer actions it produced.
    fn feed(&mut self, input: MsdpInput) -> Vec<MsdpAction> {
        let now = self.clock.now();
        let mut out = Vec::new();
        self.m.handle(now, input, &mut out);
        let mut rest = Vec::new();
        for a in out {
            match a {
                MsdpAction::ArmTimer { key, at } => {
                    self.timers.arm(key, at).unwrap();
                }
                MsdpAction::CancelTimer { key } => {
                    self.timers.cancel(&key);
                }
                other => {
                    self.log.push((now, other.clone()));
                    rest.push(other);
                }
            }
        }
        rest
    }

    /// Fires every timer due up to `t` (in deadline order), then sets the
    /// clock to `t`.
    fn run_until(&mut self, t: Timestamp) {
        while let Some((key, at)) = self.timers.pop_expired(t) {
            self.clock.advance_to(at);
            self.feed(MsdpInput::Timer(key));
        }
        self.clock.advance_to(t);
    }

    fn state(&self, p: Ipv4Addr) -> PeerState {
        self.m.peer(p).unwrap().state
    }

    fn up(&mut self, p: Ipv4Addr) {
        let active = self.m.config().local_address < p;
        self.feed(MsdpInput::TcpEstablished { peer: p, active });
        assert_eq!(self.state(p), PeerState::Established);
    }

    fn sa(
        &mut self,
        from: Ipv4Addr,
        rp: Ipv4Addr,
        entries: &[(Ipv4Addr, Ipv4Addr)],
    ) -> Vec<MsdpAction> {
        self.feed(MsdpInput::Tlv {
            peer: from,
            tlv: Repr::SourceActive {
                rp,
                entries: entries
                    .iter()
                    .map(|(source, group)| SaEntry {
                        source: *source,
                        group: *group,
                    })
                    .collect(),
                data: vec![],
            },
        })
    }

    fn count(&self, f: impl Fn(&MsdpAction) -> bool) -> usize {
        self.log.iter().filter(|(_, a)| f(a)).count()
    }
}

fn sent_sa_to(actions: &[MsdpAction]) -> Vec<Ipv4Addr> {
    actions
        .iter()
        .filter_map(|a| match a {
            MsdpAction::Send {
                peer,
                tlv: Repr::SourceActive { .. },
            } => Some(*peer),
            _ => None,
        })
        .collect()
}

fn t(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

// ----- peer FSM (RFC 3618 section 11) -----

#[test]
fn lower_address_connects() {
    // Section 5: the lower address does the active open (enable, then "own address lower").
    let h = H::new(cfg(LOW, &[A]));
    assert_eq!(h.state(A), PeerState::Connecting);
    assert_eq!(
        h.log[0].1,
        MsdpAction::Connect {
            peer: A,
            local: LOW,
            port: 639
        }
    );
    assert_eq!(h.timers.deadline(&MsdpTimer::ConnectRetry(A)), Some(t(30)));
}

#[test]
fn higher_address_listens() {
    // Section 5: the higher address listens (enable, then "own address higher").
    let h = H::new(cfg(A, &[LOW]));
    assert_eq!(h.state(LOW), PeerState::Listen);
    assert_eq!(h.log, vec![(t(0), MsdpAction::Listen { peer: LOW })]);
    assert!(h.timers.is_empty());
}

#[test]
fn connect_retry_every_30s() {
    // Section 11, ConnectRetry expired in Connecting: connect again, restart ConnectRetry.
    let mut h = H::new(cfg(LOW, &[A]));
    h.feed(MsdpInput::TcpConnectFailed { peer: A });
    assert_eq!(h.state(A), PeerState::Connecting);
    h.run_until(t(95));
    let connects: Vec<Timestamp> = h
        .log
        .iter()
        .filter(|(_, a)| matches!(a, MsdpAction::Connect { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(connects, vec![t(0), t(30), t(60), t(90)]);
}

#[test]
fn connecting_to_established() {
    // Section 11, TCP established in Connecting: cancel ConnectRetry, KeepAlive out, timers on.
    let mut h = H::new(cfg(LOW, &[A]));
    h.clock.advance(Duration::from_secs(5));
    let out = h.feed(MsdpInput::TcpEstablished {
        peer: A,
        active: true,
    });
    assert_eq!(
        out,
        vec![
            MsdpAction::Send {
                peer: A,
                tlv: Repr::KeepAlive
            },
            MsdpAction::Event(MsdpEvent::PeerUp { peer: A }),
        ]
    );
    assert_eq!(h.state(A), PeerState::Established);
    assert!(!h.timers.is_armed(&MsdpTimer::ConnectRetry(A)));
    assert_eq!(h.timers.deadline(&MsdpTimer::KeepAlive(A)), Some(t(65)));
    assert_eq!(h.timers.deadline(&MsdpTimer::Hold(A)), Some(t(80)));
    assert_eq!(h.m.peer(A).unwrap().up_since, Some(t(5)));
    assert_eq!(h.m.peer(A).unwrap().stats.established_count, 1);
}

#[test]
fn listen_to_established() {
    // Section 11, TCP established in Listen (passive open accepted).
    let mut h = H::new(cfg(A, &[LOW]));
    h.feed(MsdpInput::TcpEstablished {
        peer: LOW,
        active: false,
    });
    assert_eq!(h.state(LOW), PeerState::Established);
    assert!(h.timers.is_armed(&MsdpTimer::Hold(LOW)));
}

#[test]
fn wrong_side_and_second_connection_rejected() {
    // Section 5: the lower side connects, so a connection accepted from a
    // higher peer while we are Connecting is refused without leaving
    // Connecting; so is a second connection while Established.
    let mut h = H::new(cfg(LOW, &[A]));
    let out = h.feed(MsdpInput::TcpEstablished {
        peer: A,
        active: false,
    });
    assert_eq!(
        out,
        vec![MsdpAction::Reject {
            peer: A,
            reason: CloseReason::Unexpected
        }]
    );
    assert_eq!(h.state(A), PeerState::Connecting);
    h.up(A);
    let out = h.feed(MsdpInput::TcpEstablished {
        peer: A,
        active: true,
    });
    assert_eq!(
        out,
        vec![MsdpAction::Reject {
            peer: A,
            reason: CloseReason::Unexpected
        }]
    );
    assert_eq!(h.state(A), PeerState::Established);
}

#[test]
fn unknown_peer_connection_rejected() {
    let mut h = H::new(cfg(LOW, &[A]));
    let out = h.feed(MsdpInput::TcpEstablished {
        peer: C,
        active: false,
    });
    assert_eq!(
        out,
        vec![MsdpAction::Reject {
            peer: C,
            reason: CloseReason::UnknownPeer
        }]
    );
    assert_eq!(h.m.counters().unknown_peer_connections, 1);
}

#[test]
fn keepalive_every_interval_while_peer_talks() {
    // Section 11, KeepAlive expired: send a KeepAlive every keepalive_interval (60 s); the peer's
    // KeepAlives every 50 s keep the Hold timer (75 s) from expiring.
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    for k in 1..=6 {
        h.run_until(t(50 * k));
        h.feed(MsdpInput::Tlv {
            peer: A,
            tlv: Repr::KeepAlive,
        });
    }
    h.run_until(t(300));
    let kas: Vec<Timestamp> = h
        .log
        .iter()
        .filter(|(_, a)| {
            matches!(
                a,
                MsdpAction::Send {
                    tlv: Repr::KeepAlive,
                    ..
                }
            )
        })
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(kas, vec![t(0), t(60), t(120), t(180), t(240), t(300)]);
    assert_eq!(h.state(A), PeerState::Established);
    assert_eq!(h.m.peer(A).unwrap().stats.tlvs_in, 6);
}

#[test]
fn hold_expiry_closes_and_connect_retry_follows() {
    // Section 11, Hold expired: Hold (75 s) expires: close, PeerDown; the lower side waits
    // one ConnectRetry (30 s) and connects again.
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    h.run_until(t(74));
    assert_eq!(h.state(A), PeerState::Established);
    h.run_until(t(75));
    assert_eq!(h.state(A), PeerState::Connecting);
    assert!(h.log.contains(&(
        t(75),
        MsdpAction::Close {
            peer: A,
            reason: CloseReason::HoldTimerExpired
        }
    )));
    assert!(h.log.contains(&(
        t(75),
        MsdpAction::Event(MsdpEvent::PeerDown {
            peer: A,
            reason: "hold timer expired".into()
        })
    )));
    assert!(!h.timers.is_armed(&MsdpTimer::KeepAlive(A)));
    assert_eq!(
        h.m.peer(A).unwrap().last_error.as_deref(),
        Some("hold timer expired")
    );
    h.run_until(t(105));
    assert_eq!(h.log.last().unwrap().0, t(105));
    assert!(matches!(
        h.log.last().unwrap().1,
        MsdpAction::Connect { .. }
    ));
}

#[test]
fn hold_restarted_by_any_tlv() {
    // Section 11, TLV received: every TLV received restarts Hold.
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    h.run_until(t(70));
    h.sa(A, A, &[(S, G)]);
    h.run_until(t(144));
    assert_eq!(h.state(A), PeerState::Established);
    h.run_until(t(145));
    assert_eq!(h.state(A), PeerState::Connecting);
}

#[test]
fn format_error_closes_listen_side_listens_again() {
    // Section 11, TLV format error: a TLV format error closes the session with the reason.
    let mut h = H::new(cfg(A, &[LOW]));
    h.up(LOW);
    let error = FrameError::LengthAboveMax {
        tlv_type: 1,
        length: 65535,
    };
    let out = h.feed(MsdpInput::FormatError { peer: LOW, error });
    assert_eq!(
        out[0],
        MsdpAction::Close {
            peer: LOW,
            reason: CloseReason::FormatError(error)
        }
    );
    assert_eq!(h.state(LOW), PeerState::Listen);
    assert!(h.timers.is_empty());
}

#[test]
fn peer_close_goes_down_without_close_action() {
    let mut h = H::new(cfg(A, &[LOW]));
    h.up(LOW);
    let out = h.feed(MsdpInput::TcpClosed { peer: LOW });
    assert_eq!(
        out,
        vec![MsdpAction::Event(MsdpEvent::PeerDown {
            peer: LOW,
            reason: "closed by peer".into()
        })]
    );
    assert_eq!(h.state(LOW), PeerState::Listen);
}

#[test]
fn disable_and_reenable() {
    // Section 11, disable from Established: close, stop listening, Disabled; enable again.
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    let mut c = cfg(LOW, &[A]);
    c.peers.get_mut(&A).unwrap().enabled = false;
    let out = h.feed(MsdpInput::Config(c));
    assert_eq!(
        out[0],
        MsdpAction::Close {
            peer: A,
            reason: CloseReason::Disabled
        }
    );
    assert_eq!(h.state(A), PeerState::Disabled);
    assert!(h.timers.is_empty());
    // Stale timers and TLVs are ignored while Disabled.
    h.feed(MsdpInput::Timer(MsdpTimer::Hold(A)));
    h.feed(MsdpInput::Tlv {
        peer: A,
        tlv: Repr::KeepAlive,
    });
    assert_eq!(h.state(A), PeerState::Disabled);
    let out = h.feed(MsdpInput::Config(cfg(LOW, &[A])));
    assert!(matches!(out[0], MsdpAction::Connect { .. }));
    assert_eq!(h.state(A), PeerState::Connecting);
}

#[test]
fn tlv_before_established_ignored() {
    let mut h = H::new(cfg(LOW, &[A]));
    let out = h.sa(A, A, &[(S, G)]);
    assert!(out.is_empty());
    assert_eq!(h.m.peer(A).unwrap().stats.ignored, 1);
    assert_eq!(h.m.sa_cache_len(), 0);
}

#[test]
fn reload_unchanged_session_kept() {
    // Filters, limits, mesh group and description apply to the running
    // session: no close.
    let mut h = H::new(cfg(LOW, &[A, B]));
    h.up(A);
    let mut c = cfg(LOW, &[A, B]);
    let p = c.peers.get_mut(&A).unwrap();
    p.sa_limit = 5;
    p.description = Some("x".into());
    p.mesh_group = Some("m".into());
    let out = h.feed(MsdpInput::Config(c));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.state(A), PeerState::Established);
    assert_eq!(h.m.peer(A).unwrap().config.sa_limit, 5);
}

#[test]
fn local_address_change_restarts_sessions() {
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    // Our address becomes higher than A's: we now listen.
    let out = h.feed(MsdpInput::Config(cfg(B, &[A])));
    assert_eq!(
        out[0],
        MsdpAction::Close {
            peer: A,
            reason: CloseReason::LocalAddressChanged
        }
    );
    assert_eq!(h.state(A), PeerState::Listen);
}

#[test]
fn removed_peer_closed_and_its_sas_dropped() {
    let mut h = H::new(cfg(LOW, &[A, B]));
    h.up(A);
    h.sa(A, A, &[(S, G)]);
    assert_eq!(h.m.sa_cache_len(), 1);
    let out = h.feed(MsdpInput::Config(cfg(LOW, &[B])));
    assert_eq!(
        out[0],
        MsdpAction::Close {
            peer: A,
            reason: CloseReason::Removed
        }
    );
    assert!(h.m.peer(A).is_none());
    assert_eq!(h.m.sa_cache_len(), 0);
    assert!(h
        .timers
        .iter()
        .all(|(k, _)| !matches!(k, MsdpTimer::SaState(_))));
}

#[test]
fn shutdown_closes_every_session() {
    let mut h = H::new(cfg(LOW, &[A, B]));
    h.up(A);
    h.feed(MsdpInput::Shutdown);
    assert_eq!(h.state(A), PeerState::Disabled);
    assert_eq!(h.state(B), PeerState::Disabled);
    assert_eq!(
        h.count(|a| matches!(
            a,
            MsdpAction::Close {
                reason: CloseReason::Shutdown,
                ..
            }
        )),
        2
    );
}

// ----- SA cache, peer-RPF, flooding (RFC 3618 sections 5, 6, 10) -----

fn three_up(c: Config) -> H {
    let mut h = H::new(c);
    for p in [A, B, C] {
        h.up(p);
    }
    h
}

#[test]
fn sa_from_originating_rp_accepted_and_flooded() {
    // 10.1.3 rule 1: the peer is the originating RP.
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let out = h.sa(A, A, &[(S, G)]);
    assert_eq!(sent_sa_to(&out), vec![B, C]);
    let key = SaKey {
        source: S,
        group: G,
        rp: A,
    };
    assert!(out.contains(&MsdpAction::Event(MsdpEvent::SaAdded { key, peer: A })));
    let (k, info) = h.m.sa_cache().next().unwrap();
    assert_eq!(*k, key);
    assert_eq!(info.learned_from, A);
    assert_eq!(info.expires, t(360));
    assert_eq!(h.m.peer(A).unwrap().stats.sa_in, 1);
    assert_eq!(h.m.peer(B).unwrap().stats.sa_out, 1);
}

/// RFC 3618 section 12.2 fields no SA can carry: each entry is refused
/// (not cached, not flooded) and counted by reason; valid entries of the
/// same message still pass, and only they are flooded.
#[test]
fn sa_entries_with_impossible_addresses_are_rejected_and_counted() {
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&A).unwrap().mesh_group = Some("m".into());
    let mut h = three_up(c);
    let bad_sources = [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(239, 9, 9, 9),
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(0, 1, 2, 3),
    ];
    let bad_groups = [
        Ipv4Addr::new(10, 1, 1, 1),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 5),
        Ipv4Addr::new(224, 0, 0, 255),
    ];
    let mut entries: Vec<(Ipv4Addr, Ipv4Addr)> = bad_sources.iter().map(|s| (*s, G)).collect();
    entries.extend(bad_groups.iter().map(|g| (S, *g)));
    entries.push((S, G));
    entries.push((S, Ipv4Addr::new(224, 0, 1, 1))); // not link-local: valid
    let out = h.sa(A, A, &entries);
    let stats = h.m.peer(A).unwrap().stats;
    assert_eq!(stats.invalid_source, bad_sources.len() as u64);
    assert_eq!(stats.invalid_group, bad_groups.len() as u64);
    assert_eq!(stats.invalid_rp, 0);
    assert_eq!(stats.sa_in, entries.len() as u64);
    let cached: Vec<(Ipv4Addr, Ipv4Addr)> =
        h.m.sa_cache().map(|(k, _)| (k.source, k.group)).collect();
    assert_eq!(cached, vec![(S, Ipv4Addr::new(224, 0, 1, 1)), (S, G)]);
    let flooded: Vec<Vec<SaEntry>> = out
        .iter()
        .filter_map(|a| match a {
            MsdpAction::Send {
                tlv: Repr::SourceActive { entries, .. },
                ..
            } => Some(entries.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(flooded.len(), 2, "{out:?}");
    for f in flooded {
        assert_eq!(f.len(), 2, "only the valid entries: {f:?}");
    }

    // An RP that is no unicast address: the whole message goes, even from
    // a mesh-group peer (which skips the peer-RPF rules).
    for rp in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(239, 1, 1, 1),
        Ipv4Addr::LOCALHOST,
    ] {
        let out = h.sa(A, rp, &[(Ipv4Addr::new(192, 168, 1, 11), G), (S, G)]);
        assert!(sent_sa_to(&out).is_empty(), "{rp}: {out:?}");
    }
    assert_eq!(h.m.peer(A).unwrap().stats.invalid_rp, 8);
    assert_eq!(h.m.sa_cache_len(), 2);
    // Later, on the manual clock: still nothing of them cached.
    h.run_until(t(400));
    assert_eq!(h.m.sa_cache_len(), 0);
}

#[test]
fn sa_rpf_fail_rejected() {
    // 10.1.3: not the RP, no peer-RPF match, not mesh, not default, not only.
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let out = h.sa(A, FAR_RP, &[(S, G)]);
    assert!(out.is_empty());
    assert_eq!(h.m.sa_cache_len(), 0);
    assert_eq!(h.m.peer(A).unwrap().stats.rpf_fail, 1);
}

#[test]
fn sa_accepted_from_peer_rpf_neighbour_only() {
    // 10.1.3: the peer-RPF neighbour toward the RP (caller's lookup).
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    h.m.set_peer_rpf(Box::new(|rp| (rp == FAR_RP).then_some(B)));
    assert!(h.sa(A, FAR_RP, &[(S, G)]).is_empty());
    assert_eq!(h.m.peer(A).unwrap().stats.rpf_fail, 1);
    let out = h.sa(B, FAR_RP, &[(S, G)]);
    assert_eq!(sent_sa_to(&out), vec![A, C]);
    assert_eq!(h.m.sa_cache_len(), 1);
}

#[test]
fn sa_accepted_from_default_peer() {
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&C).unwrap().default_peer = true;
    let mut h = three_up(c);
    let out = h.sa(C, FAR_RP, &[(S, G)]);
    assert_eq!(sent_sa_to(&out), vec![A, B]);
    assert!(h.sa(B, FAR_RP, &[(S, G)]).is_empty());
    assert_eq!(h.m.peer(B).unwrap().stats.rpf_fail, 1);
}

#[test]
fn sa_accepted_from_only_peer() {
    let mut h = H::new(cfg(LOW, &[A]));
    h.up(A);
    h.sa(A, FAR_RP, &[(S, G)]);
    assert_eq!(h.m.sa_cache_len(), 1);
}

#[test]
fn sa_with_own_rp_dropped() {
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    assert!(h.sa(A, LOW, &[(S, G)]).is_empty());
    assert_eq!(h.m.counters().own_rp_drops, 1);
    assert_eq!(h.m.sa_cache_len(), 0);
}

#[test]
fn mesh_group_not_reflooded() {
    // Section 10.2: accepted from a mesh member whatever the RP; not sent to
    // members of the sender's mesh group, sent to the others.
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&A).unwrap().mesh_group = Some("m".into());
    c.peers.get_mut(&B).unwrap().mesh_group = Some("m".into());
    let mut h = three_up(c);
    let out = h.sa(A, FAR_RP, &[(S, G)]);
    assert_eq!(sent_sa_to(&out), vec![C]);
    // From outside the mesh: flooded into the mesh, to both members.
    let out = h.sa(C, C, &[(S, Ipv4Addr::new(239, 5, 5, 5))]);
    assert_eq!(sent_sa_to(&out), vec![A, B]);
}

#[test]
fn sa_cache_expiry_and_refresh() {
    // 5.3: the SA-State timer (360 s) is restarted by each re-advertisement.
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let s2 = Ipv4Addr::new(192, 168, 1, 11);
    h.sa(A, A, &[(S, G), (s2, G)]);
    // Keep KeepAlives flowing so the sessions stay up.
    for k in 1..=12 {
        h.run_until(t(60 * k));
        for p in [A, B, C] {
            h.feed(MsdpInput::Tlv {
                peer: p,
                tlv: Repr::KeepAlive,
            });
        }
        if k == 5 {
            h.sa(A, A, &[(S, G)]); // refresh one at 300 s
        }
    }
    // s2 expired at 360 s, S (refreshed at 300) lives until 660 s.
    let expired: Vec<(Timestamp, Ipv4Addr)> = h
        .log
        .iter()
        .filter_map(|(at, a)| match a {
            MsdpAction::Event(MsdpEvent::SaExpired { key }) => Some((*at, key.source)),
            _ => None,
        })
        .collect();
    assert_eq!(expired, vec![(t(360), s2), (t(660), S)]);
    assert_eq!(h.m.sa_cache_len(), 0);
    assert_eq!(h.m.peer(A).unwrap().sa_count, 0);
    // A stale SA-State timer changes nothing.
    h.feed(MsdpInput::Timer(MsdpTimer::SaState(SaKey {
        source: S,
        group: G,
        rp: A,
    })));
    assert_eq!(h.m.sa_cache_len(), 0);
}

#[test]
fn filters_in_and_out() {
    let deny = |grp: Ipv4Addr| SaFilter {
        rules: vec![FilterRule {
            source: Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 0).unwrap(),
            group: Ipv4Prefix::new(grp, 16).unwrap(),
            permit: false,
        }],
        default_permit: true,
    };
    let g9 = Ipv4Addr::new(239, 9, 0, 1);
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&A).unwrap().filter_in = deny(g9);
    c.peers.get_mut(&B).unwrap().filter_out = deny(G);
    let mut h = three_up(c);
    // Inbound: the 239.9/16 entry is neither cached nor forwarded.
    let out = h.sa(A, A, &[(S, g9)]);
    assert!(out.is_empty());
    assert_eq!(h.m.peer(A).unwrap().stats.filtered_in, 1);
    assert_eq!(h.m.sa_cache_len(), 0);
    // Outbound: B does not get G, C does.
    let out = h.sa(A, A, &[(S, G)]);
    assert_eq!(sent_sa_to(&out), vec![C]);
    assert_eq!(h.m.peer(B).unwrap().stats.filtered_out, 1);
    assert_eq!(h.m.sa_cache_len(), 1);
}

#[test]
fn per_peer_limit_counted() {
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&A).unwrap().sa_limit = 2;
    let mut h = three_up(c);
    let e: Vec<(Ipv4Addr, Ipv4Addr)> = (1..=5)
        .map(|i| (Ipv4Addr::new(192, 168, 1, i), G))
        .collect();
    let out = h.sa(A, A, &e);
    assert_eq!(h.m.sa_cache_len(), 2);
    assert_eq!(h.m.peer(A).unwrap().stats.limit_drops, 3);
    // Only the accepted two are forwarded.
    match &out
        .iter()
        .find(|a| matches!(a, MsdpAction::Send { .. }))
        .unwrap()
    {
        MsdpAction::Send {
            tlv: Repr::SourceActive { entries, .. },
            ..
        } => assert_eq!(entries.len(), 2),
        other => panic!("{other:?}"),
    }
    // Refreshing a cached entry at the limit still works.
    h.sa(A, A, &e[..1]);
    assert_eq!(h.m.peer(A).unwrap().stats.limit_drops, 3);
}

#[test]
fn global_limit_counted() {
    let mut c = cfg(LOW, &[A, B, C]);
    c.sa_cache_limit = 3;
    let mut h = three_up(c);
    let e: Vec<(Ipv4Addr, Ipv4Addr)> = (1..=2)
        .map(|i| (Ipv4Addr::new(192, 168, 1, i), G))
        .collect();
    h.sa(A, A, &e);
    let e: Vec<(Ipv4Addr, Ipv4Addr)> = (1..=2)
        .map(|i| (Ipv4Addr::new(192, 168, 2, i), G))
        .collect();
    h.sa(B, B, &e);
    assert_eq!(h.m.sa_cache_len(), 3);
    assert_eq!(h.m.counters().cache_full_drops, 1);
    assert_eq!(h.m.peer(B).unwrap().stats.cache_full_drops, 1);
}

#[test]
fn encapsulated_data_forwarded_with_whole_sa() {
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let out = h.feed(MsdpInput::Tlv {
        peer: A,
        tlv: Repr::SourceActive {
            rp: A,
            entries: vec![SaEntry {
                source: S,
                group: G,
            }],
            data: vec![0x45, 0, 0, 20],
        },
    });
    for a in out {
        if let MsdpAction::Send {
            tlv: Repr::SourceActive { data, .. },
            ..
        } = a
        {
            assert_eq!(data, vec![0x45, 0, 0, 20]);
        }
    }
}

#[test]
fn burst_of_100k_sas_bounded() {
    // A hostile peer sends 100,000 distinct SAs: the cache stops at the
    // peer's limit (10,000 by default), the rest are counted, timers and
    // forwarded entries stay bounded by what was accepted.
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let mut sent_entries = 0usize;
    let mut i: u32 = 0;
    while i < 100_000 {
        let entries: Vec<SaEntry> = (i..(i + 255).min(100_000))
            .map(|k| SaEntry {
                source: Ipv4Addr::from(0x0a00_0000 + k),
                group: G,
            })
            .collect();
        i += entries.len() as u32;
        let out = h.feed(MsdpInput::Tlv {
            peer: A,
            tlv: Repr::SourceActive {
                rp: A,
                entries,
                data: vec![],
            },
        });
        for a in &out {
            if let MsdpAction::Send {
                tlv: Repr::SourceActive { entries, .. },
                ..
            } = a
            {
                assert!(entries.len() <= 255);
                sent_entries += entries.len();
            }
        }
    }
    let st = h.m.peer(A).unwrap().stats;
    assert_eq!(st.sa_in, 100_000);
    assert_eq!(h.m.sa_cache_len(), DEFAULT_PEER_SA_LIMIT);
    assert_eq!(st.limit_drops, 100_000 - DEFAULT_PEER_SA_LIMIT as u64);
    assert_eq!(sent_entries, 2 * DEFAULT_PEER_SA_LIMIT);
    assert!(h.timers.len() <= DEFAULT_PEER_SA_LIMIT + 3 * 3);
    assert_eq!(h.state(A), PeerState::Established);
}

#[test]
fn local_sources_originated_and_readvertised() {
    // Section 5.1: new local sources are advertised at once with our RP
    // address, then all of them every SA-Advertisement period (60 s).
    let mut h = three_up(cfg(LOW, &[A, B, C]));
    let e1 = SaEntry {
        source: S,
        group: G,
    };
    let out = h.feed(MsdpInput::LocalSources(vec![e1]));
    assert_eq!(sent_sa_to(&out), vec![A, B, C]);
    assert!(out.contains(&MsdpAction::Send {
        peer: A,
        tlv: Repr::SourceActive {
            rp: LOW,
            entries: vec![e1],
            data: vec![]
        }
    }));
    // An unchanged set sends nothing new.
    assert!(sent_sa_to(&h.feed(MsdpInput::LocalSources(vec![e1]))).is_empty());
    let e2 = SaEntry {
        source: Ipv4Addr::new(192, 168, 1, 99),
        group: G,
    };
    let out = h.feed(MsdpInput::LocalSources(vec![e1, e2]));
    match &out[0] {
        MsdpAction::Send {
            tlv: Repr::SourceActive { entries, .. },
            ..
        } => assert_eq!(entries, &vec![e2]),
        other => panic!("{other:?}"),
    }
    h.log.clear();
    for p in [A, B, C] {
        h.feed(MsdpInput::Tlv {
            peer: p,
            tlv: Repr::KeepAlive,
        });
    }
    h.run_until(t(60));
    let full: Vec<Ipv4Addr> = h
        .log
        .iter()
        .filter_map(|(at, a)| match a {
            MsdpAction::Send {
                peer,
                tlv: Repr::SourceActive { entries, .. },
            } if *at == t(60) => {
                assert_eq!(entries.len(), 2);
                Some(*peer)
            }
            _ => None,
        })
        .collect();
    assert_eq!(full, vec![A, B, C]);
    assert_eq!(h.timers.deadline(&MsdpTimer::SaAdvertisement), Some(t(120)));
    // No sources: the timer stops.
    h.feed(MsdpInput::LocalSources(vec![]));
    assert!(!h.timers.is_armed(&MsdpTimer::SaAdvertisement));
    // Our own SA coming back is dropped.
    h.sa(A, LOW, &[(S, G)]);
    assert_eq!(h.m.counters().own_rp_drops, 1);
}

#[test]
fn new_peer_gets_cache_and_local_sources() {
    // Section 5.2 (SHOULD): a peer coming up is sent every cached SA and
    // every local source, except what it taught us and its own mesh's.
    let mut c = cfg(LOW, &[A, B, C]);
    c.peers.get_mut(&A).unwrap().mesh_group = Some("m".into());
    c.peers.get_mut(&C).unwrap().mesh_group = Some("m".into());
    let mut h = H::new(c);
    h.up(A);
    h.up(B);
    h.sa(A, FAR_RP, &[(S, G)]); // from mesh member A
    h.sa(B, B, &[(Ipv4Addr::new(192, 168, 7, 7), G)]); // from non-member B
    let local = SaEntry {
        source: Ipv4Addr::new(192, 168, 9, 9),
        group: G,
    };
    h.feed(MsdpInput::LocalSources(vec![local]));
    let out = h.feed(MsdpInput::TcpEstablished {
        peer: C,
        active: true,
    });
    let sas: Vec<(Ipv4Addr, Vec<SaEntry>)> = out
        .iter()
        .filter_map(|a| match a {
            MsdpAction::Send {
                peer: C,
                tlv: Repr::SourceActive { rp, entries, .. },
            } => Some((*rp, entries.clone())),
            _ => None,
        })
        .collect();
    // A's SA (same mesh as C) is not sent; ours and B's are (by RP).
    assert_eq!(
        sas,
        vec![
            (LOW, vec![local]),
            (
                B,
                vec![SaEntry {
                    source: Ipv4Addr::new(192, 168, 7, 7),
                    group: G
                }]
            ),
        ]
    );
}
