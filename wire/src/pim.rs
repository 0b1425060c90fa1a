//! PIM version 2 messages (RFC 7761 4.9): the common header and checksum,
//! Hello with its options, Join/Prune, Register, Register-Stop and Assert.
//!
//! Encoded addresses (RFC 7761 4.9.1) are IPv4 native encoding only (family
//! 1, encoding 0), except in a Hello's Address List, which may also carry
//! IPv6 addresses (family 2): FRR lists its link-local IPv6 address there.

use crate::{addr, be16, be32, checksum, Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod field {
    use crate::{Field, Rest};
    pub const VER_TYPE: usize = 0;
    pub const RESERVED: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const BODY: Rest = 4..;
}

/// Length of the common header in bytes.
pub const HEADER_LEN: usize = field::BODY.start;
/// The PIM version this module reads and writes.
pub const VERSION: u8 = 2;
/// The ALL-PIM-ROUTERS group, 224.0.0.13 (RFC 7761 4.9).
pub const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);

/// Message type of Hello (RFC 7761 4.9).
pub const TYPE_HELLO: u8 = 0;
/// Message type of Register.
pub const TYPE_REGISTER: u8 = 1;
/// Message type of Register-Stop.
pub const TYPE_REGISTER_STOP: u8 = 2;
/// Message type of Join/Prune.
pub const TYPE_JOIN_PRUNE: u8 = 3;
/// Message type of Assert.
pub const TYPE_ASSERT: u8 = 5;

/// Address family of IPv4 in encoded addresses (IANA address family 1).
pub const FAMILY_IPV4: u8 = 1;
/// Address family of IPv6 in encoded addresses (IANA address family 2).
pub const FAMILY_IPV6: u8 = 2;
/// The native encoding type (RFC 7761 4.9.1).
const ENCODING_NATIVE: u8 = 0;

/// Length of an IPv4 Encoded-Unicast address in bytes.
pub const ENCODED_UNICAST_LEN: usize = 6;
/// Length of an IPv4 Encoded-Group or Encoded-Source address in bytes.
pub const ENCODED_GROUP_LEN: usize = 8;
/// Length of the Register flags word in bytes (RFC 7761 4.9.3).
pub const REGISTER_HEADER_LEN: usize = 4;

view! {
    /// A view over a PIM message: version, type, reserved byte, checksum, then
    /// the type-specific body.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] if the buffer is shorter than the 4-byte common
    /// header. Bodies are checked by [`Repr::parse`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The PIM version (2).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The message type (e.g. [`TYPE_HELLO`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// The reserved byte (0 when sent, ignored on receipt).
    #[inline]
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The bytes after the common header.
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY]
    }

    /// Whether the checksum verifies (RFC 7761 4.9): over the whole message,
    /// except that a Register's covers only its first 8 bytes (header and
    /// flags word). A Register checksummed over the whole message is
    /// accepted too, as the RFC asks for interoperability.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        if self.msg_type() == TYPE_REGISTER && b.len() >= HEADER_LEN + REGISTER_HEADER_LEN {
            checksum::verify(&b[..HEADER_LEN + REGISTER_HEADER_LEN]) || checksum::verify(b)
        } else {
            checksum::verify(b)
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version and the message type.
    #[inline]
    pub fn set_version_and_type(&mut self, version: u8, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    /// Sets the reserved byte.
    #[inline]
    pub fn set_reserved(&mut self, v: u8) {
        self.buffer.as_mut()[field::RESERVED] = v;
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// The bytes after the common header, writable.
    #[inline]
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY]
    }

    /// Computes the checksum as RFC 7761 4.9 says (a Register's over its
    /// first 8 bytes, any other message's over all of it) and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let covered = if self.msg_type() == TYPE_REGISTER {
            &b[..b.len().min(HEADER_LEN + REGISTER_HEADER_LEN)]
        } else {
            b
        };
        let c = checksum::checksum(covered);
        self.set_checksum(c);
    }
}

/// Reads the family and encoding bytes of an encoded address.
fn family_and_encoding(b: &[u8]) -> Result<u8> {
    let [family, encoding, ..] = *b else {
        return Err(Error::Truncated);
    };
    if encoding != ENCODING_NATIVE {
        return Err(Error::BadEncoding);
    }
    Ok(family)
}

/// Parses an IPv4 Encoded-Unicast address (RFC 7761 4.9.1) at the start of
/// `b`: [`Error::Truncated`], [`Error::BadFamily`] or [`Error::BadEncoding`].
pub fn parse_unicast(b: &[u8]) -> Result<Ipv4Addr> {
    if family_and_encoding(b)? != FAMILY_IPV4 {
        return Err(Error::BadFamily);
    }
    if b.len() < ENCODED_UNICAST_LEN {
        return Err(Error::Truncated);
    }
    Ok(addr(b, 2))
}

/// Parses an Encoded-Unicast address of family IPv4 or IPv6 and returns it
/// with its length in bytes (6 or 18).
pub fn parse_unicast_any(b: &[u8]) -> Result<(IpAddr, usize)> {
    match family_and_encoding(b)? {
        FAMILY_IPV4 => Ok((IpAddr::V4(parse_unicast(b)?), ENCODED_UNICAST_LEN)),
        FAMILY_IPV6 => {
            let a: [u8; 16] = b
                .get(2..18)
                .ok_or(Error::Truncated)?
                .try_into()
                .map_err(|_| Error::Truncated)?;
            Ok((IpAddr::V6(Ipv6Addr::from(a)), 18))
        }
        _ => Err(Error::BadFamily),
    }
}

/// Writes an IPv4 Encoded-Unicast address; returns its length (6).
pub fn emit_unicast(a: Ipv4Addr, b: &mut [u8]) -> usize {
    b[0] = FAMILY_IPV4;
    b[1] = ENCODING_NATIVE;
    b[2..6].copy_from_slice(&a.octets());
    ENCODED_UNICAST_LEN
}

fn emit_unicast_any(a: IpAddr, b: &mut [u8]) -> usize {
    match a {
        IpAddr::V4(a) => emit_unicast(a, b),
        IpAddr::V6(a) => {
            b[0] = FAMILY_IPV6;
            b[1] = ENCODING_NATIVE;
            b[2..18].copy_from_slice(&a.octets());
            18
        }
    }
}

fn unicast_any_len(a: &IpAddr) -> usize {
    match a {
        IpAddr::V4(_) => ENCODED_UNICAST_LEN,
        IpAddr::V6(_) => 18,
    }
}

/// Reads family, encoding, flags and mask length of an IPv4 Encoded-Group
/// or Encoded-Source address, checking each.
fn parse_masked(b: &[u8]) -> Result<(u8, u8, Ipv4Addr)> {
    if family_and_encoding(b)? != FAMILY_IPV4 {
        return Err(Error::BadFamily);
    }
    if b.len() < ENCODED_GROUP_LEN {
        return Err(Error::Truncated);
    }
    let (flags, mask_len) = (b[2], b[3]);
    if mask_len > 32 {
        return Err(Error::BadMask);
    }
    Ok((flags, mask_len, addr(b, 4)))
}

/// An IPv4 Encoded-Group address (RFC 7761 4.9.1): a group range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedGroup {
    /// The group address.
    pub addr: Ipv4Addr,
    /// The mask length in bits, 0 to 32 (32 for a single group).
    pub mask_len: u8,
    /// B bit: a bidirectional PIM group range.
    pub bidir: bool,
    /// Z bit: an admin-scope zone (RFC 5059).
    pub admin_scope: bool,
}

impl EncodedGroup {
    /// A single group (mask 32, no flags).
    pub fn host(addr: Ipv4Addr) -> EncodedGroup {
        EncodedGroup {
            addr,
            mask_len: 32,
            bidir: false,
            admin_scope: false,
        }
    }

    /// Parses one at the start of `b`: [`Error::Truncated`],
    /// [`Error::BadFamily`], [`Error::BadEncoding`] or [`Error::BadMask`].
    /// Reserved flag bits are ignored.
    pub fn parse(b: &[u8]) -> Result<EncodedGroup> {
        let (flags, mask_len, addr) = parse_masked(b)?;
        Ok(EncodedGroup {
            addr,
            mask_len,
            bidir: flags & 0x80 != 0,
            admin_scope: flags & 0x01 != 0,
        })
    }

    /// Writes it; returns its length (8).
    pub fn emit(&self, b: &mut [u8]) -> usize {
        b[0] = FAMILY_IPV4;
        b[1] = ENCODING_NATIVE;
        b[2] = (u8::from(self.bidir) << 7) | u8::from(self.admin_scope);
        b[3] = self.mask_len;
        b[4..8].copy_from_slice(&self.addr.octets());
        ENCODED_GROUP_LEN
    }
}

/// An IPv4 Encoded-Source address (RFC 7761 4.9.1) of a Join/Prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedSource {
    /// The source address (the RP's address for a (*,G) entry).
    pub addr: Ipv4Addr,
    /// The mask length in bits, 0 to 32 (32 in PIM-SM).
    pub mask_len: u8,
    /// S bit: sparse mode (always set in PIM-SM).
    pub sparse: bool,
    /// W bit: wildcard, the entry is (*,G).
    pub wildcard: bool,
    /// R bit: the entry is sent toward the RP, (*,G) or (S,G,rpt).
    pub rpt: bool,
}

impl EncodedSource {
    /// Parses one at the start of `b`: [`Error::Truncated`],
    /// [`Error::BadFamily`], [`Error::BadEncoding`] or [`Error::BadMask`].
    pub fn parse(b: &[u8]) -> Result<EncodedSource> {
        let (flags, mask_len, addr) = parse_masked(b)?;
        Ok(EncodedSource {
            addr,
            mask_len,
            sparse: flags & 0x04 != 0,
            wildcard: flags & 0x02 != 0,
            rpt: flags & 0x01 != 0,
        })
    }

    /// Writes it; returns its length (8).
    pub fn emit(&self, b: &mut [u8]) -> usize {
        b[0] = FAMILY_IPV4;
        b[1] = ENCODING_NATIVE;
        b[2] = (u8::from(self.sparse) << 2) | (u8::from(self.wildcard) << 1) | u8::from(self.rpt);
        b[3] = self.mask_len;
        b[4..8].copy_from_slice(&self.addr.octets());
        ENCODED_GROUP_LEN
    }
}

/// Hello option type of Holdtime (RFC 7761 4.9.2).
pub const OPT_HOLDTIME: u16 = 1;
/// Hello option type of LAN Prune Delay.
pub const OPT_LAN_PRUNE_DELAY: u16 = 2;
/// Hello option type of DR Priority.
pub const OPT_DR_PRIORITY: u16 = 19;
/// Hello option type of Generation ID.
pub const OPT_GENERATION_ID: u16 = 20;
/// Hello option type of Address List (RFC 7761 4.9.2, type 24).
pub const OPT_ADDRESS_LIST: u16 = 24;

/// One Hello option (RFC 7761 4.9.2), in the order it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloOption {
    /// Holdtime in seconds: how long to keep the neighbor; 0xffff never
    /// times out, 0 means the neighbor is going away.
    Holdtime(u16),
    /// LAN Prune Delay: the T bit (join suppression off), propagation delay
    /// in milliseconds (15 bits) and override interval in milliseconds.
    LanPruneDelay {
        /// T bit: the sender can disable join suppression.
        t_bit: bool,
        /// Propagation delay, milliseconds, 0 to 32767.
        propagation_delay: u16,
        /// Override interval, milliseconds.
        override_interval: u16,
    },
    /// DR Priority; higher wins the DR election.
    DrPriority(u32),
    /// Generation ID: a random number that changes when the neighbor
    /// restarts.
    GenerationId(u32),
    /// Address List: the neighbor's secondary addresses (IPv4 or IPv6).
    AddressList(Vec<IpAddr>),
    /// Any other option, kept as it came so it re-emits.
    Unknown {
        /// Option type.
        kind: u16,
        /// Option value.
        value: Vec<u8>,
    },
}

impl HelloOption {
    fn value_len(&self) -> usize {
        match self {
            HelloOption::Holdtime(_) => 2,
            HelloOption::LanPruneDelay { .. }
            | HelloOption::DrPriority(_)
            | HelloOption::GenerationId(_) => 4,
            HelloOption::AddressList(list) => list.iter().map(unicast_any_len).sum(),
            HelloOption::Unknown { value, .. } => value.len(),
        }
    }

    fn parse(kind: u16, v: &[u8]) -> Result<HelloOption> {
        let exact = |n: usize| {
            if v.len() == n {
                Ok(())
            } else {
                Err(Error::BadLength)
            }
        };
        Ok(match kind {
            OPT_HOLDTIME => {
                exact(2)?;
                HelloOption::Holdtime(be16(v, 0))
            }
            OPT_LAN_PRUNE_DELAY => {
                exact(4)?;
                let delay = be16(v, 0);
                HelloOption::LanPruneDelay {
                    t_bit: delay & 0x8000 != 0,
                    propagation_delay: delay & 0x7fff,
                    override_interval: be16(v, 2),
                }
            }
            OPT_DR_PRIORITY => {
                exact(4)?;
                HelloOption::DrPriority(be32(v, 0))
            }
            OPT_GENERATION_ID => {
                exact(4)?;
                HelloOption::GenerationId(be32(v, 0))
            }
            OPT_ADDRESS_LIST => {
                let mut list = Vec::new();
                let mut rest = v;
                while !rest.is_empty() {
                    let (a, n) = parse_unicast_any(rest)?;
                    list.push(a);
                    rest = &rest[n..];
                }
                HelloOption::AddressList(list)
            }
            kind => HelloOption::Unknown {
                kind,
                value: v.to_vec(),
            },
        })
    }

    fn emit(&self, b: &mut [u8]) -> usize {
        let kind = match self {
            HelloOption::Holdtime(_) => OPT_HOLDTIME,
            HelloOption::LanPruneDelay { .. } => OPT_LAN_PRUNE_DELAY,
            HelloOption::DrPriority(_) => OPT_DR_PRIORITY,
            HelloOption::GenerationId(_) => OPT_GENERATION_ID,
            HelloOption::AddressList(_) => OPT_ADDRESS_LIST,
            HelloOption::Unknown { kind, .. } => *kind,
        };
        let len = self.value_len();
        b[0..2].copy_from_slice(&kind.to_be_bytes());
        b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let v = &mut b[4..4 + len];
        match self {
            HelloOption::Holdtime(h) => v.copy_from_slice(&h.to_be_bytes()),
            HelloOption::LanPruneDelay {
                t_bit,
                propagation_delay,
                override_interval,
            } => {
                let d = (u16::from(*t_bit) << 15) | (propagation_delay & 0x7fff);
                v[0..2].copy_from_slice(&d.to_be_bytes());
                v[2..4].copy_from_slice(&override_interval.to_be_bytes());
            }
            HelloOption::DrPriority(x) | HelloOption::GenerationId(x) => {
                v.copy_from_slice(&x.to_be_bytes())
            }
            HelloOption::AddressList(list) => {
                let mut at = 0;
                for a in list {
                    at += emit_unicast_any(*a, &mut v[at..]);
                }
            }
            HelloOption::Unknown { value, .. } => v.copy_from_slice(value),
        }
        4 + len
    }
}

/// One group of a Join/Prune message (RFC 7761 4.9.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPruneGroup {
    /// The multicast group address (range).
    pub group: EncodedGroup,
    /// Joined sources, (S,G) or with W and R set (*,G).
    pub joins: Vec<EncodedSource>,
    /// Pruned sources.
    pub prunes: Vec<EncodedSource>,
}

impl JoinPruneGroup {
    fn buffer_len(&self) -> usize {
        ENCODED_GROUP_LEN + 4 + ENCODED_GROUP_LEN * (self.joins.len() + self.prunes.len())
    }
}

/// The meaning of a PIM message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr {
    /// Hello (RFC 7761 4.9.2): options in the order they came.
    Hello {
        /// The options.
        options: Vec<HelloOption>,
    },
    /// Register (RFC 7761 4.9.3), unicast from a DR to the RP.
    Register {
        /// B bit: sent by a PMBR (border router).
        border: bool,
        /// N bit: a Null-Register (probe; the inner packet is a dummy
        /// header).
        null_register: bool,
        /// The encapsulated multicast data packet (an IPv4 packet), as
        /// bytes.
        packet: Vec<u8>,
    },
    /// Register-Stop (RFC 7761 4.9.4), unicast from the RP to a DR.
    RegisterStop {
        /// The group of the registered packet.
        group: EncodedGroup,
        /// The source of the registered packet.
        source: Ipv4Addr,
    },
    /// Join/Prune (RFC 7761 4.9.5), to ALL-PIM-ROUTERS.
    JoinPrune {
        /// The upstream neighbor the message is meant for.
        upstream_neighbor: Ipv4Addr,
        /// Holdtime in seconds: how long to keep the join state.
        holdtime: u16,
        /// The groups.
        groups: Vec<JoinPruneGroup>,
    },
    /// Assert (RFC 7761 4.9.6), to ALL-PIM-ROUTERS.
    Assert {
        /// The group.
        group: EncodedGroup,
        /// The source (0.0.0.0 for a (*,G) assert).
        source: Ipv4Addr,
        /// R bit: RPT bit, the metric is toward the RP.
        rpt: bool,
        /// Metric preference of the route's protocol, 31 bits.
        metric_preference: u32,
        /// The route's metric.
        metric: u32,
    },
}

impl Repr {
    /// Reads and validates a message: at least the 4-byte header
    /// ([`Error::Truncated`]), version 2 ([`Error::BadVersion`]), the
    /// checksum ([`Error::Checksum`]), a known type ([`Error::Unrecognized`]),
    /// then the body: [`Error::Truncated`] for a field past the end,
    /// [`Error::BadCount`] when a Join/Prune's group or source counts exceed
    /// the packet, [`Error::BadLength`] for a known Hello option of the wrong
    /// size, and the encoded-address errors of [`EncodedGroup::parse`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::BadVersion);
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let body = packet.body();
        match packet.msg_type() {
            TYPE_HELLO => {
                let mut options = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(Error::Truncated);
                    }
                    let (kind, len) = (be16(rest, 0), usize::from(be16(rest, 2)));
                    let value = rest.get(4..4 + len).ok_or(Error::Truncated)?;
                    options.push(HelloOption::parse(kind, value)?);
                    rest = &rest[4 + len..];
                }
                Ok(Repr::Hello { options })
            }
            TYPE_REGISTER => {
                if body.len() < REGISTER_HEADER_LEN {
                    return Err(Error::Truncated);
                }
                let flags = be32(body, 0);
                Ok(Repr::Register {
                    border: flags & 0x8000_0000 != 0,
                    null_register: flags & 0x4000_0000 != 0,
                    packet: body[REGISTER_HEADER_LEN..].to_vec(),
                })
            }
            TYPE_REGISTER_STOP => {
                let group = EncodedGroup::parse(body)?;
                let source = parse_unicast(&body[ENCODED_GROUP_LEN..])?;
                Ok(Repr::RegisterStop { group, source })
            }
            TYPE_JOIN_PRUNE => {
                let upstream_neighbor = parse_unicast(body)?;
                let b = &body[ENCODED_UNICAST_LEN..];
                if b.len() < 4 {
                    return Err(Error::Truncated);
                }
                let num_groups = usize::from(b[1]);
                let holdtime = be16(b, 2);
                let mut rest = &b[4..];
                let mut groups = Vec::with_capacity(num_groups);
                for _ in 0..num_groups {
                    // A group needs its address and two counts: 12 bytes.
                    if rest.len() < ENCODED_GROUP_LEN + 4 {
                        return Err(Error::BadCount);
                    }
                    let group = EncodedGroup::parse(rest)?;
                    let joined = usize::from(be16(rest, ENCODED_GROUP_LEN));
                    let pruned = usize::from(be16(rest, ENCODED_GROUP_LEN + 2));
                    rest = &rest[ENCODED_GROUP_LEN + 4..];
                    if rest.len() < (joined + pruned) * ENCODED_GROUP_LEN {
                        return Err(Error::BadCount);
                    }
                    let mut sources = rest.chunks_exact(ENCODED_GROUP_LEN).take(joined + pruned);
                    let joins = sources
                        .by_ref()
                        .take(joined)
                        .map(EncodedSource::parse)
                        .collect::<Result<Vec<_>>>()?;
                    let prunes = sources
                        .map(EncodedSource::parse)
                        .collect::<Result<Vec<_>>>()?;
                    rest = &rest[(joined + pruned) * ENCODED_GROUP_LEN..];
                    groups.push(JoinPruneGroup {
                        group,
                        joins,
                        prunes,
                    });
                }
                Ok(Repr::JoinPrune {
                    upstream_neighbor,
                    holdtime,
                    groups,
                })
            }
            TYPE_ASSERT => {
                let group = EncodedGroup::parse(body)?;
                let source = parse_unicast(&body[ENCODED_GROUP_LEN..])?;
                let m = body
                    .get(ENCODED_GROUP_LEN + ENCODED_UNICAST_LEN..)
                    .ok_or(Error::Truncated)?;
                if m.len() < 8 {
                    return Err(Error::Truncated);
                }
                let pref = be32(m, 0);
                Ok(Repr::Assert {
                    group,
                    source,
                    rpt: pref & 0x8000_0000 != 0,
                    metric_preference: pref & 0x7fff_ffff,
                    metric: be32(m, 4),
                })
            }
            _ => Err(Error::Unrecognized),
        }
    }

    fn msg_type(&self) -> u8 {
        match self {
            Repr::Hello { .. } => TYPE_HELLO,
            Repr::Register { .. } => TYPE_REGISTER,
            Repr::RegisterStop { .. } => TYPE_REGISTER_STOP,
            Repr::JoinPrune { .. } => TYPE_JOIN_PRUNE,
            Repr::Assert { .. } => TYPE_ASSERT,
        }
    }

    /// The message length in bytes, common header included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::Hello { options } => options.iter().map(|o| 4 + o.value_len()).sum(),
                Repr::Register { packet, .. } => REGISTER_HEADER_LEN + packet.len(),
                Repr::RegisterStop { .. } => ENCODED_GROUP_LEN + ENCODED_UNICAST_LEN,
                Repr::JoinPrune { groups, .. } => {
                    ENCODED_UNICAST_LEN
                        + 4
                        + groups.iter().map(JoinPruneGroup::buffer_len).sum::<usize>()
                }
                Repr::Assert { .. } => ENCODED_GROUP_LEN + ENCODED_UNICAST_LEN + 8,
            }
    }

    /// Writes the message, checksum included, into a packet whose buffer is
    /// exactly [`buffer_len`](Self::buffer_len) bytes (the checksum covers
    /// the whole buffer, a Register's its first 8 bytes). Panics if the
    /// buffer is shorter. Counts are truncated to their field widths
    /// (Join/Prune: 255 groups, 65535 sources per list).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_version_and_type(VERSION, self.msg_type());
        packet.set_reserved(0);
        packet.set_checksum(0);
        let b = packet.body_mut();
        match self {
            Repr::Hello { options } => {
                let mut at = 0;
                for o in options {
                    at += o.emit(&mut b[at..]);
                }
            }
            Repr::Register {
                border,
                null_register,
                packet: inner,
            } => {
                let flags = (u32::from(*border) << 31) | (u32::from(*null_register) << 30);
                b[0..4].copy_from_slice(&flags.to_be_bytes());
                b[4..4 + inner.len()].copy_from_slice(inner);
            }
            Repr::RegisterStop { group, source } => {
                let at = group.emit(b);
                emit_unicast(*source, &mut b[at..]);
            }
            Repr::JoinPrune {
                upstream_neighbor,
                holdtime,
                groups,
            } => {
                let mut at = emit_unicast(*upstream_neighbor, b);
                b[at] = 0;
                b[at + 1] = groups.len() as u8;
                b[at + 2..at + 4].copy_from_slice(&holdtime.to_be_bytes());
                at += 4;
                for g in groups {
                    at += g.group.emit(&mut b[at..]);
                    b[at..at + 2].copy_from_slice(&(g.joins.len() as u16).to_be_bytes());
                    b[at + 2..at + 4].copy_from_slice(&(g.prunes.len() as u16).to_be_bytes());
                    at += 4;
                    for s in g.joins.iter().chain(&g.prunes) {
                        at += s.emit(&mut b[at..]);
                    }
                }
            }
            Repr::Assert {
                group,
                source,
                rpt,
                metric_preference,
                metric,
            } => {
                let mut at = group.emit(b);
                at += emit_unicast(*source, &mut b[at..]);
                let pref = (u32::from(*rpt) << 31) | (metric_preference & 0x7fff_ffff);
                b[at..at + 4].copy_from_slice(&pref.to_be_bytes());
                b[at + 4..at + 8].copy_from_slice(&metric.to_be_bytes());
            }
        }
        packet.fill_checksum();
    }
}
