//! IGMP messages: versions 1 and 2 (RFC 2236) and 3 (RFC 3376).
//!
//! One view, [`Packet`], covers every message: the first 8 bytes are common
//! (type, Max Resp Code, checksum, group address); an IGMPv3 query adds
//! flags, QQIC and a source list (RFC 3376 4.1), an IGMPv3 report replaces
//! the group address with a count of group records (RFC 3376 4.2). The
//! version of a query follows from its length and Max Resp Code (RFC 3376
//! 7.1): 8 bytes with code 0 is IGMPv1, 8 bytes with a code is IGMPv2, 12
//! bytes or more is IGMPv3.

use crate::{addr, be16, checksum, Error, Result};
use std::net::Ipv4Addr;
use std::time::Duration;

mod field {
    use crate::Field;
    pub const TYPE: usize = 0;
    pub const MAX_RESP_CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const GROUP: Field = 4..8;
    // IGMPv3 query (RFC 3376 4.1).
    pub const RESV_S_QRV: usize = 8;
    pub const QQIC: usize = 9;
    pub const NUM_SOURCES: Field = 10..12;
    pub const QUERY_SOURCES: usize = 12;
    // IGMPv3 report (RFC 3376 4.2).
    pub const NUM_RECORDS: Field = 6..8;
    pub const RECORDS: usize = 8;
    // Group record (RFC 3376 4.2.4), from the record's start.
    pub const RECORD_TYPE: usize = 0;
    pub const AUX_DATA_LEN: usize = 1;
    pub const RECORD_NUM_SOURCES: Field = 2..4;
    pub const RECORD_GROUP: Field = 4..8;
    pub const RECORD_SOURCES: usize = 8;
}

/// Length of an IGMPv1/v2 message and of the common header, in bytes.
pub const HEADER_LEN: usize = 8;
/// Length of an IGMPv3 query without sources, in bytes (RFC 3376 4.1).
pub const V3_QUERY_LEN: usize = field::QUERY_SOURCES;
/// Length of a group record without sources or auxiliary data, in bytes.
pub const RECORD_HEADER_LEN: usize = field::RECORD_SOURCES;

/// Membership Query, every version (RFC 3376 4.1, RFC 2236 2.1).
pub const TYPE_QUERY: u8 = 0x11;
/// Version 1 Membership Report (RFC 1112, RFC 3376 7.3.1).
pub const TYPE_REPORT_V1: u8 = 0x12;
/// Version 2 Membership Report (RFC 2236 2.1).
pub const TYPE_REPORT_V2: u8 = 0x16;
/// Version 2 Leave Group (RFC 2236 2.1).
pub const TYPE_LEAVE: u8 = 0x17;
/// Version 3 Membership Report (RFC 3376 4.2).
pub const TYPE_REPORT_V3: u8 = 0x22;

/// Decodes a Max Resp Code or QQIC (RFC 3376 4.1.1, 4.1.7): below 128 the
/// code is the value; from 128 on it is a floating-point number
/// `1 exp(3) mant(4)` with value `(mant | 0x10) << (exp + 3)`. Units are
/// the field's: tenths of a second for Max Resp Code, seconds for QQIC.
#[inline]
pub fn decode_code(code: u8) -> u32 {
    if code < 128 {
        u32::from(code)
    } else {
        let exp = u32::from((code >> 4) & 0x07);
        let mant = u32::from(code & 0x0f);
        (mant | 0x10) << (exp + 3)
    }
}

/// Encodes a value as a Max Resp Code or QQIC (RFC 3376 4.1.1, 4.1.7),
/// rounding down to a representable value; values above 31744 (the largest,
/// code 0xff) give 0xff.
#[inline]
pub fn encode_code(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    if value >= decode_code(0xff) {
        return 0xff;
    }
    // The exponent puts the mantissa with its implied top bit in 16..=31.
    let mut exp = 0u32;
    while (value >> (exp + 3)) > 31 {
        exp += 1;
    }
    let mant = (value >> (exp + 3)) & 0x0f;
    0x80 | ((exp as u8) << 4) | mant as u8
}

view! {
    /// A view over an IGMP message (the whole IPv4 payload).
    ///
    /// `new_checked` guarantees the 8 common bytes, rejects a query of 9 to 11
    /// bytes ([`Error::BadLength`], RFC 3376 7.1) and an IGMPv3 query whose
    /// source count exceeds the packet ([`Error::BadCount`]). The getters of
    /// IGMPv3 fields return 0 on a shorter message instead of panicking.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] below 8 bytes; for a query, [`Error::BadLength`]
    /// at 9 to 11 bytes and [`Error::BadCount`] when an IGMPv3 query's
    /// Number of Sources does not fit (RFC 3376 4.1.8). Group records of a
    /// report are checked as they are read ([`Packet::records`]).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.msg_type() == TYPE_QUERY && len > HEADER_LEN {
            if len < V3_QUERY_LEN {
                return Err(Error::BadLength);
            }
            if len < V3_QUERY_LEN + 4 * usize::from(self.num_sources()) {
                return Err(Error::BadCount);
            }
        }
        Ok(())
    }

    #[inline]
    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// The message type (e.g. [`TYPE_QUERY`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The Max Resp Code byte (unused, 0, in reports and IGMPv1 queries).
    #[inline]
    pub fn max_resp_code(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_RESP_CODE]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The group address (queries, v1/v2 reports, leaves; 0.0.0.0 in a
    /// general query). Meaningless in an IGMPv3 report.
    #[inline]
    pub fn group_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::GROUP.start)
    }

    /// IGMPv3 query: the S flag, "suppress router-side processing" (RFC 3376
    /// 4.1.5).
    #[inline]
    pub fn s_flag(&self) -> bool {
        self.byte(field::RESV_S_QRV) & 0x08 != 0
    }

    /// IGMPv3 query: the Querier's Robustness Variable, 0 to 7 (RFC 3376
    /// 4.1.6).
    #[inline]
    pub fn qrv(&self) -> u8 {
        self.byte(field::RESV_S_QRV) & 0x07
    }

    /// IGMPv3 query: the Querier's Query Interval Code (RFC 3376 4.1.7).
    #[inline]
    pub fn qqic(&self) -> u8 {
        self.byte(field::QQIC)
    }

    /// IGMPv3 query: the Number of Sources field.
    #[inline]
    pub fn num_sources(&self) -> u16 {
        u16::from_be_bytes([
            self.byte(field::NUM_SOURCES.start),
            self.byte(field::NUM_SOURCES.start + 1),
        ])
    }

    /// IGMPv3 query: the source addresses (at most Number of Sources, and
    /// only those present).
    pub fn query_sources(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let b = self.buffer.as_ref();
        b.get(field::QUERY_SOURCES..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .take(usize::from(self.num_sources()))
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
    }

    /// IGMPv3 report: the Number of Group Records field.
    #[inline]
    pub fn num_records(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NUM_RECORDS.start)
    }

    /// IGMPv3 report: the group records, each checked as it is reached; a
    /// record that does not fit is [`Error::BadCount`] and ends the walk.
    pub fn records(&self) -> Records<'_> {
        Records {
            rest: self.buffer.as_ref().get(field::RECORDS..).unwrap_or(&[]),
            left: self.num_records(),
        }
    }

    /// Whether the checksum verifies over the whole message (RFC 2236 2.3,
    /// RFC 3376 4.1.2).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the Max Resp Code byte.
    #[inline]
    pub fn set_max_resp_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::MAX_RESP_CODE] = v;
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the group address.
    #[inline]
    pub fn set_group_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::GROUP].copy_from_slice(&a.octets());
    }

    /// IGMPv3 query: sets the S flag and QRV (reserved bits 0).
    #[inline]
    pub fn set_s_flag_and_qrv(&mut self, s: bool, qrv: u8) {
        self.buffer.as_mut()[field::RESV_S_QRV] = (u8::from(s) << 3) | (qrv & 0x07);
    }

    /// IGMPv3 query: sets QQIC.
    #[inline]
    pub fn set_qqic(&mut self, v: u8) {
        self.buffer.as_mut()[field::QQIC] = v;
    }

    /// IGMPv3 query: sets Number of Sources.
    #[inline]
    pub fn set_num_sources(&mut self, v: u16) {
        self.buffer.as_mut()[field::NUM_SOURCES].copy_from_slice(&v.to_be_bytes());
    }

    /// IGMPv3 report: sets the reserved bytes 4..6 to 0 and Number of Group
    /// Records.
    #[inline]
    pub fn set_num_records(&mut self, v: u16) {
        let b = self.buffer.as_mut();
        b[4..6].fill(0);
        b[field::NUM_RECORDS].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes the checksum over the whole buffer and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// The group records of an IGMPv3 report, in order (see
/// [`Packet::records`]).
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<GroupRecord<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        match GroupRecord::new_checked(self.rest) {
            Ok(r) => {
                let len = r.record_len();
                let (this, rest) = self.rest.split_at(len);
                self.rest = rest;
                self.left -= 1;
                Some(Ok(GroupRecord::new_unchecked(this)))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}

view! {
    /// A view over one group record of an IGMPv3 report (RFC 3376 4.2.4):
    /// type, aux data length (32-bit words), number of sources, multicast
    /// address, sources, auxiliary data.
    GroupRecord
}

impl<T: AsRef<[u8]>> GroupRecord<T> {
    /// [`Error::BadCount`] if the buffer cannot hold the record header, or
    /// its sources and auxiliary data (RFC 3376 4.2.6: the record count or
    /// a source count is larger than the packet).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < RECORD_HEADER_LEN || len < self.record_len() {
            return Err(Error::BadCount);
        }
        Ok(())
    }

    /// The record's length in bytes as its counts say.
    #[inline]
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_LEN
            + 4 * usize::from(self.num_sources())
            + 4 * usize::from(self.aux_data_len())
    }

    /// The Record Type byte (see [`RecordType`]).
    #[inline]
    pub fn record_type(&self) -> u8 {
        self.buffer.as_ref()[field::RECORD_TYPE]
    }

    /// The Aux Data Len field, in 32-bit words (RFC 3376 4.2.6).
    #[inline]
    pub fn aux_data_len(&self) -> u8 {
        self.buffer.as_ref()[field::AUX_DATA_LEN]
    }

    /// The Number of Sources field.
    #[inline]
    pub fn num_sources(&self) -> u16 {
        be16(self.buffer.as_ref(), field::RECORD_NUM_SOURCES.start)
    }

    /// The Multicast Address field.
    #[inline]
    pub fn group_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::RECORD_GROUP.start)
    }

    /// The source addresses.
    pub fn sources(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.buffer.as_ref()[field::RECORD_SOURCES..]
            .chunks_exact(4)
            .take(usize::from(self.num_sources()))
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
    }

    /// The auxiliary data (RFC 3376 4.2.10).
    #[inline]
    pub fn aux_data(&self) -> &[u8] {
        let start = field::RECORD_SOURCES + 4 * usize::from(self.num_sources());
        &self.buffer.as_ref()[start..start + 4 * usize::from(self.aux_data_len())]
    }
}

/// The type of an IGMPv3 group record (RFC 3376 4.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// 1, MODE_IS_INCLUDE: current state, include the sources listed.
    ModeIsInclude,
    /// 2, MODE_IS_EXCLUDE: current state, exclude the sources listed.
    ModeIsExclude,
    /// 3, CHANGE_TO_INCLUDE_MODE: filter mode changed to include.
    ChangeToInclude,
    /// 4, CHANGE_TO_EXCLUDE_MODE: filter mode changed to exclude.
    ChangeToExclude,
    /// 5, ALLOW_NEW_SOURCES: sources added.
    AllowNewSources,
    /// 6, BLOCK_OLD_SOURCES: sources removed.
    BlockOldSources,
    /// Any other value. Kept rather than rejected: RFC 3376 4.2.12 says
    /// such records are ignored, not the whole report.
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(v: u8) -> RecordType {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(t: RecordType) -> u8 {
        match t {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Unknown(v) => v,
        }
    }
}

/// The meaning of one IGMPv3 group record (RFC 3376 4.2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecordRepr {
    /// The record type.
    pub record_type: RecordType,
    /// The multicast address the record is about.
    pub group: Ipv4Addr,
    /// The source addresses.
    pub sources: Vec<Ipv4Addr>,
    /// Auxiliary data, a multiple of 4 bytes (no auxiliary data is defined
    /// by RFC 3376; it is kept so a record re-emits as it came).
    pub aux_data: Vec<u8>,
}

impl GroupRecordRepr {
    /// The record's length in bytes.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        RECORD_HEADER_LEN + 4 * self.sources.len() + self.aux_data.len()
    }

    fn parse(r: &GroupRecord<&[u8]>) -> GroupRecordRepr {
        GroupRecordRepr {
            record_type: r.record_type().into(),
            group: r.group_addr(),
            sources: r.sources().collect(),
            aux_data: r.aux_data().to_vec(),
        }
    }

    fn emit(&self, b: &mut [u8]) -> usize {
        b[field::RECORD_TYPE] = self.record_type.into();
        b[field::AUX_DATA_LEN] = (self.aux_data.len() / 4) as u8;
        b[field::RECORD_NUM_SOURCES].copy_from_slice(&(self.sources.len() as u16).to_be_bytes());
        b[field::RECORD_GROUP].copy_from_slice(&self.group.octets());
        let mut at = field::RECORD_SOURCES;
        for s in &self.sources {
            b[at..at + 4].copy_from_slice(&s.octets());
            at += 4;
        }
        b[at..at + self.aux_data.len()].copy_from_slice(&self.aux_data);
        at + self.aux_data.len()
    }
}

/// The meaning of an IGMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr {
    /// IGMPv1 Membership Query: 8 bytes, Max Resp Code 0 (RFC 3376 7.1,
    /// RFC 2236 4). Group 0.0.0.0 is a general query.
    QueryV1 {
        /// Group address (0.0.0.0 for a general query).
        group: Ipv4Addr,
    },
    /// IGMPv2 Membership Query: 8 bytes, Max Resp Code non-zero (RFC 2236
    /// 2.2).
    QueryV2 {
        /// Max Response Time in tenths of a second (RFC 2236 2.2).
        max_resp_time: u8,
        /// Group address (0.0.0.0 for a general query).
        group: Ipv4Addr,
    },
    /// IGMPv3 Membership Query: 12 bytes or more (RFC 3376 4.1).
    QueryV3 {
        /// Max Resp Code, tenths of a second in the encoding of RFC 3376
        /// 4.1.1 (see [`Repr::max_resp_time`]).
        max_resp_code: u8,
        /// Group address: 0.0.0.0 for a general query, else a group- or
        /// group-and-source-specific query (RFC 3376 4.1.9).
        group: Ipv4Addr,
        /// S flag: suppress router-side processing (RFC 3376 4.1.5).
        s_flag: bool,
        /// Querier's Robustness Variable, 0 to 7 (RFC 3376 4.1.6).
        qrv: u8,
        /// Querier's Query Interval Code, seconds in the encoding of RFC
        /// 3376 4.1.7 (see [`Repr::query_interval`]).
        qqic: u8,
        /// Source addresses (RFC 3376 4.1.9).
        sources: Vec<Ipv4Addr>,
    },
    /// IGMPv1 Membership Report (RFC 3376 7.3.1).
    ReportV1 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 Membership Report (RFC 2236 2.1).
    ReportV2 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 Leave Group (RFC 2236 2.1), sent to 224.0.0.2.
    LeaveV2 {
        /// The group left.
        group: Ipv4Addr,
    },
    /// IGMPv3 Membership Report (RFC 3376 4.2), sent to 224.0.0.22.
    ReportV3 {
        /// The group records, in order.
        records: Vec<GroupRecordRepr>,
    },
}

impl Repr {
    /// Reads and validates a message: the length checks of
    /// [`Packet::check_len`], the checksum over the whole message
    /// ([`Error::Checksum`]), the message type ([`Error::Unrecognized`]) and,
    /// for an IGMPv3 report, every group record ([`Error::BadCount`] if the
    /// record count or a record's counts exceed the packet). Bytes past an
    /// IGMPv1/v2 message's 8 are ignored (RFC 2236 2.5).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let len = packet.buffer.as_ref().len();
        let group = packet.group_addr();
        match packet.msg_type() {
            TYPE_QUERY if len == HEADER_LEN && packet.max_resp_code() == 0 => {
                Ok(Repr::QueryV1 { group })
            }
            TYPE_QUERY if len == HEADER_LEN => Ok(Repr::QueryV2 {
                max_resp_time: packet.max_resp_code(),
                group,
            }),
            TYPE_QUERY => Ok(Repr::QueryV3 {
                max_resp_code: packet.max_resp_code(),
                group,
                s_flag: packet.s_flag(),
                qrv: packet.qrv(),
                qqic: packet.qqic(),
                sources: packet.query_sources().collect(),
            }),
            TYPE_REPORT_V1 => Ok(Repr::ReportV1 { group }),
            TYPE_REPORT_V2 => Ok(Repr::ReportV2 { group }),
            TYPE_LEAVE => Ok(Repr::LeaveV2 { group }),
            TYPE_REPORT_V3 => {
                let mut records =
                    Vec::with_capacity(usize::from(packet.num_records()).min(len / 8));
                for r in packet.records() {
                    records.push(GroupRecordRepr::parse(&r?));
                }
                Ok(Repr::ReportV3 { records })
            }
            _ => Err(Error::Unrecognized),
        }
    }

    /// The message length in bytes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::QueryV3 { sources, .. } => V3_QUERY_LEN + 4 * sources.len(),
            Repr::ReportV3 { records } => {
                field::RECORDS
                    + records
                        .iter()
                        .map(GroupRecordRepr::buffer_len)
                        .sum::<usize>()
            }
            _ => HEADER_LEN,
        }
    }

    /// For a query, the Max Response Time (RFC 2236 2.2, RFC 3376 4.1.1);
    /// `None` for reports and leaves. An IGMPv1 query gives 10 seconds
    /// (RFC 2236 4).
    pub fn max_resp_time(&self) -> Option<Duration> {
        match self {
            Repr::QueryV1 { .. } => Some(Duration::from_secs(10)),
            Repr::QueryV2 { max_resp_time, .. } => {
                Some(Duration::from_millis(100 * u64::from(*max_resp_time)))
            }
            Repr::QueryV3 { max_resp_code, .. } => Some(Duration::from_millis(
                100 * u64::from(decode_code(*max_resp_code)),
            )),
            _ => None,
        }
    }

    /// For an IGMPv3 query, the querier's query interval decoded from QQIC
    /// (RFC 3376 4.1.7); `None` otherwise.
    pub fn query_interval(&self) -> Option<Duration> {
        match self {
            Repr::QueryV3 { qqic, .. } => Some(Duration::from_secs(u64::from(decode_code(*qqic)))),
            _ => None,
        }
    }

    /// Writes the message, checksum included, into the first
    /// [`buffer_len`](Self::buffer_len) bytes of a packet whose buffer is
    /// exactly that long (the checksum covers the whole buffer). Panics if
    /// the buffer is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        let (ty, code, group) = match self {
            Repr::QueryV1 { group } => (TYPE_QUERY, 0, *group),
            Repr::QueryV2 {
                max_resp_time,
                group,
            } => (TYPE_QUERY, *max_resp_time, *group),
            Repr::QueryV3 {
                max_resp_code,
                group,
                ..
            } => (TYPE_QUERY, *max_resp_code, *group),
            Repr::ReportV1 { group } => (TYPE_REPORT_V1, 0, *group),
            Repr::ReportV2 { group } => (TYPE_REPORT_V2, 0, *group),
            Repr::LeaveV2 { group } => (TYPE_LEAVE, 0, *group),
            Repr::ReportV3 { .. } => (TYPE_REPORT_V3, 0, Ipv4Addr::UNSPECIFIED),
        };
        packet.set_msg_type(ty);
        packet.set_max_resp_code(code);
        packet.set_checksum(0);
        packet.set_group_addr(group);
        match self {
            Repr::QueryV3 {
                s_flag,
                qrv,
                qqic,
                sources,
                ..
            } => {
                packet.set_s_flag_and_qrv(*s_flag, *qrv);
                packet.set_qqic(*qqic);
                packet.set_num_sources(sources.len() as u16);
                let b = &mut packet.buffer.as_mut()[field::QUERY_SOURCES..];
                for (chunk, s) in b.chunks_exact_mut(4).zip(sources) {
                    chunk.copy_from_slice(&s.octets());
                }
            }
            Repr::ReportV3 { records } => {
                packet.set_num_records(records.len() as u16);
                let mut at = field::RECORDS;
                for r in records {
                    at += r.emit(&mut packet.buffer.as_mut()[at..]);
                }
            }
            _ => {}
        }
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc3376_4_1_1() {
        assert_eq!(decode_code(0), 0);
        assert_eq!(decode_code(127), 127);
        // 0x80: exp 0, mant 0 -> 16 << 3 = 128.
        assert_eq!(decode_code(0x80), 128);
        // 0xff: exp 7, mant 15 -> 31 << 10 = 31744.
        assert_eq!(decode_code(0xff), 31744);
        // 0xc8: exp 4, mant 8 -> 24 << 7 = 3072.
        assert_eq!(decode_code(0xc8), 3072);
        for code in 0..=255u8 {
            assert_eq!(encode_code(decode_code(code)), code, "code {code:#x}");
        }
        assert_eq!(encode_code(200), 0x89);
        assert_eq!(encode_code(1_000_000), 0xff);
        // Rounds down between representable values: 129 -> 128.
        assert_eq!(decode_code(encode_code(129)), 128);
    }
}
