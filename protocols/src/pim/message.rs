//! PIM messages as the PIM instance sees them: a Hello with its options
//! decoded (RFC 7761 section 4.9.2), another message type (not handled yet),
//! or a message that failed to parse, with the reason (counted per
//! interface, never acted on).
//!
//! Parsing and encoding go through [`mcr_wire::pim`]; this module only maps
//! between the wire crate's [`Repr`](mcr_wire::pim::Repr) and these types.

use std::net::{IpAddr, Ipv4Addr};

use mcr_wire::pim::{self as wire, HelloOption};
use serde::Serialize;

/// LAN Prune Delay option values (RFC 7761 section 4.9.2, option 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LanPruneDelay {
    /// T bit: the sender can disable Join suppression.
    pub t_bit: bool,
    /// Propagation delay, milliseconds (15 bits).
    pub propagation_delay_ms: u16,
    /// Override interval, milliseconds.
    pub override_interval_ms: u16,
}

/// A decoded PIM Hello (RFC 7761 section 4.9.2). Options absent from the
/// message are `None`; unknown options are skipped (section 4.9.2: "unknown
/// options MUST be ignored") and only counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// Holdtime option (type 1), seconds: 0 = goodbye, 0xFFFF = never
    /// expires. `None` when absent (the receiver then uses
    /// Default_Hello_Holdtime, 105 s, section 4.11).
    pub holdtime: Option<u16>,
    /// DR Priority option (type 19). `None` when absent: then the DR
    /// election falls back to addresses only (section 4.3.2).
    pub dr_priority: Option<u32>,
    /// Generation ID option (type 20): a random value that changes when
    /// the sender restarts PIM on the interface (section 4.3.1).
    pub generation_id: Option<u32>,
    /// LAN Prune Delay option (type 2).
    pub lan_prune_delay: Option<LanPruneDelay>,
    /// Address List option (type 24): the sender's secondary IPv4
    /// addresses (IPv6 entries are dropped).
    pub secondary_addresses: Vec<Ipv4Addr>,
    /// How many options of unknown type the message carried (skipped).
    pub unknown_options: u32,
}

/// Why a received PIM message was not used. Each is a per-interface counter
/// (`mcrctl pim interfaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RxError {
    /// Shorter than the 4-byte header, or an option or field running past
    /// the end of the message (a truncated option, an option length past
    /// the packet).
    Truncated,
    /// The PIM checksum does not verify (RFC 7761 section 4.9).
    BadChecksum,
    /// PIM version other than 2.
    BadVersion,
    /// A known Hello option of the wrong size, or a bad encoded address.
    BadOption,
    /// A type the wire crate does not know.
    UnknownType,
}

/// One PIM message as received (or sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PimMessage {
    /// A Hello (RFC 7761 section 4.9.2).
    Hello(Hello),
    /// A Join/Prune (RFC 7761 section 4.9.5), as the wire crate decodes it.
    JoinPrune(JoinPrune),
    /// A Register (RFC 7761 section 4.9.3), unicast from a first-hop DR to
    /// the RP.
    Register(Register),
    /// A Register-Stop (RFC 7761 section 4.9.4), unicast from the RP to the
    /// DR that registered.
    RegisterStop {
        /// The group of the registered packets.
        group: Ipv4Addr,
        /// Their source.
        source: Ipv4Addr,
    },
    /// An Assert (RFC 7761 section 4.9.6).
    Assert(Assert),
    /// A valid message of another type (Register, Register-Stop, Assert):
    /// not handled by this module yet, counted.
    Other {
        /// The PIM message type (RFC 7761 section 4.9).
        msg_type: u8,
    },
    /// A message that failed to parse.
    Malformed(RxError),
}

impl PimMessage {
    /// Parses the PIM message `bytes` (the IP payload). Never panics.
    pub fn parse(bytes: &[u8]) -> PimMessage {
        let packet = wire::Packet::new_unchecked(bytes);
        match wire::Repr::parse(&packet) {
            Ok(wire::Repr::Hello { options }) => PimMessage::Hello(Hello::from_options(&options)),
            Ok(wire::Repr::JoinPrune {
                upstream_neighbor,
                holdtime,
                groups,
            }) => PimMessage::JoinPrune(JoinPrune {
                upstream_neighbor,
                holdtime,
                groups,
            }),
            Ok(wire::Repr::Register {
                border,
                null_register,
                packet,
            }) => PimMessage::Register(Register {
                border,
                null_register,
                packet,
            }),
            Ok(wire::Repr::RegisterStop { group, source }) => PimMessage::RegisterStop {
                group: group.addr,
                source,
            },
            Ok(wire::Repr::Assert {
                group,
                source,
                rpt,
                metric_preference,
                metric,
            }) => PimMessage::Assert(Assert {
                group: group.addr,
                source,
                rpt,
                metric_preference,
                metric,
            }),
            #[allow(unreachable_patterns)]
            Ok(_) => PimMessage::Other {
                msg_type: bytes.first().map_or(0, |b| b & 0x0f),
            },
            Err(e) => PimMessage::Malformed(match e {
                mcr_wire::Error::Truncated | mcr_wire::Error::BadCount => RxError::Truncated,
                mcr_wire::Error::Checksum => RxError::BadChecksum,
                mcr_wire::Error::BadVersion => RxError::BadVersion,
                mcr_wire::Error::Unrecognized => RxError::UnknownType,
                _ => RxError::BadOption,
            }),
        }
    }

    /// The message's bytes (checksum filled in); `None` for
    /// [`PimMessage::Other`] and [`PimMessage::Malformed`], which are never
    /// sent.
    pub fn encode(&self) -> Option<Vec<u8>> {
        match self {
            PimMessage::Hello(h) => {
                let repr = h.to_repr();
                let mut buf = vec![0u8; repr.buffer_len()];
                repr.emit(&mut wire::Packet::new_unchecked(&mut buf[..]));
                Some(buf)
            }
            PimMessage::JoinPrune(jp) => Some(emit(&jp.to_repr())),
            PimMessage::Register(r) => Some(emit(&wire::Repr::Register {
                border: r.border,
                null_register: r.null_register,
                packet: r.packet.clone(),
            })),
            PimMessage::RegisterStop { group, source } => Some(emit(&wire::Repr::RegisterStop {
                group: wire::EncodedGroup::host(*group),
                source: *source,
            })),
            PimMessage::Assert(a) => Some(emit(&wire::Repr::Assert {
                group: wire::EncodedGroup::host(a.group),
                source: a.source,
                rpt: a.rpt,
                metric_preference: a.metric_preference,
                metric: a.metric,
            })),
            _ => None,
        }
    }
}

fn emit(repr: &wire::Repr) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut wire::Packet::new_unchecked(&mut buf[..]));
    buf
}

/// A Register message (RFC 7761 section 4.9.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// B bit: sent by a border router.
    pub border: bool,
    /// N bit: a Null-Register (probe; the inner packet is only an IPv4
    /// header).
    pub null_register: bool,
    /// The encapsulated IPv4 packet.
    pub packet: Vec<u8>,
}

impl Register {
    /// The inner packet's (source, group), if it starts with a valid-looking
    /// IPv4 header (version 4, IHL >= 5, at least 20 bytes, multicast
    /// destination).
    pub fn inner_source_group(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let p = &self.packet;
        if p.len() < 20 || p[0] >> 4 != 4 || usize::from(p[0] & 0x0f) * 4 < 20 {
            return None;
        }
        let s = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let g = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        g.is_multicast().then_some((s, g))
    }

    /// A Null-Register for `(source, group)` (RFC 7761 section 4.4.1): the
    /// inner packet is a 20-byte IPv4 header with a valid checksum and no
    /// payload.
    pub fn null(source: Ipv4Addr, group: Ipv4Addr) -> Register {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[3] = 20;
        h[8] = 1; // TTL
        h[9] = 103; // protocol: PIM (any value is allowed)
        h[12..16].copy_from_slice(&source.octets());
        h[16..20].copy_from_slice(&group.octets());
        let mut sum: u32 = h
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        Register {
            border: false,
            null_register: true,
            packet: h.to_vec(),
        }
    }
}

/// An Assert message (RFC 7761 section 4.9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assert {
    /// The group.
    pub group: Ipv4Addr,
    /// The source; 0.0.0.0 for a (*,G) Assert.
    pub source: Ipv4Addr,
    /// RPT bit: the metric is toward the RP.
    pub rpt: bool,
    /// Metric preference (31 bits; 0x7fffffff is "infinite",
    /// AssertCancel).
    pub metric_preference: u32,
    /// Route metric.
    pub metric: u32,
}

/// A Join/Prune message (RFC 7761 section 4.9.5): sent to ALL-PIM-ROUTERS
/// on a LAN, meant for the router whose address is `upstream_neighbor`
/// (every other router on the LAN reads it too, for join suppression and
/// prune override, sections 4.5.5-4.5.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinPrune {
    /// The router the message is addressed to (its primary address on the
    /// LAN).
    pub upstream_neighbor: Ipv4Addr,
    /// How long the receiver keeps the join/prune state, seconds
    /// (section 4.9.5; 3.5 x t_periodic = 210 s by default).
    pub holdtime: u16,
    /// Per group, the joined and pruned sources (encoded-source flags W and
    /// R tell (*,G), (S,G) and (S,G,rpt) apart).
    pub groups: Vec<wire::JoinPruneGroup>,
}

impl JoinPrune {
    /// The wire form.
    pub fn to_repr(&self) -> wire::Repr {
        wire::Repr::JoinPrune {
            upstream_neighbor: self.upstream_neighbor,
            holdtime: self.holdtime,
            groups: self.groups.clone(),
        }
    }

    /// The encoded length in bytes (PIM header included).
    pub fn buffer_len(&self) -> usize {
        self.to_repr().buffer_len()
    }
}

impl Hello {
    /// Decodes the options of a Hello, in order; a repeated option keeps the
    /// first value.
    pub fn from_options(options: &[HelloOption]) -> Hello {
        let mut h = Hello::default();
        for o in options {
            match o {
                HelloOption::Holdtime(t) => {
                    h.holdtime.get_or_insert(*t);
                }
                HelloOption::DrPriority(p) => {
                    h.dr_priority.get_or_insert(*p);
                }
                HelloOption::GenerationId(g) => {
                    h.generation_id.get_or_insert(*g);
                }
                HelloOption::LanPruneDelay {
                    t_bit,
                    propagation_delay,
                    override_interval,
                } => {
                    h.lan_prune_delay.get_or_insert(LanPruneDelay {
                        t_bit: *t_bit,
                        propagation_delay_ms: *propagation_delay,
                        override_interval_ms: *override_interval,
                    });
                }
                HelloOption::AddressList(list) => {
                    h.secondary_addresses
                        .extend(list.iter().filter_map(|a| match a {
                            IpAddr::V4(v4) => Some(*v4),
                            IpAddr::V6(_) => None,
                        }));
                }
                HelloOption::Unknown { .. } => h.unknown_options += 1,
            }
        }
        h
    }

    /// The wire form, options in the order FRR and the RFC list them:
    /// Holdtime, LAN Prune Delay, DR Priority, Generation ID, Address List
    /// (only when there are secondary addresses).
    pub fn to_repr(&self) -> wire::Repr {
        let mut options = Vec::with_capacity(5);
        if let Some(t) = self.holdtime {
            options.push(HelloOption::Holdtime(t));
        }
        if let Some(d) = self.lan_prune_delay {
            options.push(HelloOption::LanPruneDelay {
                t_bit: d.t_bit,
                propagation_delay: d.propagation_delay_ms & 0x7fff,
                override_interval: d.override_interval_ms,
            });
        }
        if let Some(p) = self.dr_priority {
            options.push(HelloOption::DrPriority(p));
        }
        if let Some(g) = self.generation_id {
            options.push(HelloOption::GenerationId(g));
        }
        if !self.secondary_addresses.is_empty() {
            options.push(HelloOption::AddressList(
                self.secondary_addresses
                    .iter()
                    .map(|a| IpAddr::V4(*a))
                    .collect(),
            ));
        }
        wire::Repr::Hello { options }
    }
}
