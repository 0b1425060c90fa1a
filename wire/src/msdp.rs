//! MSDP TLVs (RFC 3618 section 12) and a framer for the TCP byte stream.
//!
//! Every MSDP message is a TLV: a 1-byte type, a 2-byte length that counts
//! the whole TLV including its 3-byte header, then the value (RFC 3618
//! 12.1). Known types:
//!
//! - Source-Active, type 1 (12.2.1): entry count, RP address, then `count`
//!   entries of 3 reserved bytes, Sprefix Len (always 32), group address,
//!   source address; optionally the first data packet of the source
//!   (encapsulated data) after the entries.
//! - KeepAlive, type 4 (12.2.2): length 3, no value.
//!
//! Other types (2 and 3, the SA-Request/Response of RFC 3618's predecessor,
//! and 5 on) are kept raw by [`Repr::parse`] and skipped by [`TlvFramer`]
//! (RFC 3618 section 13: silently discarded, the session is not reset).
//!
//! A TLV is at most [`MAX_TLV_LEN`] (9192) bytes (RFC 3618 section 12 and
//! 12.2.1; FRR's `PIM_MSDP_SA_TLV_MAX_SIZE` is the same). RFC 3618 section
//! 12 says a longer TLV SHOULD be accepted with its extra data ignored; over
//! a byte stream that would mean discarding up to 64 KiB of a hostile
//! peer's bytes, so [`TlvFramer`] treats it as a format error and the
//! session is reset (section 13), as mcr's MSDP issue asks.

use crate::{addr, be16, Error, Result};
use std::net::Ipv4Addr;

mod field {
    use crate::Field;
    pub const TYPE: usize = 0;
    pub const LENGTH: Field = 1..3;
    // Source-Active (RFC 3618 12.2.1).
    pub const SA_COUNT: usize = 3;
    pub const SA_RP: Field = 4..8;
    pub const SA_ENTRIES: usize = 8;
    // One SA entry, from the entry's start.
    pub const ENTRY_RESERVED: Field = 0..3;
    pub const ENTRY_SPREFIX_LEN: usize = 3;
    pub const ENTRY_GROUP: Field = 4..8;
    pub const ENTRY_SOURCE: Field = 8..12;
}

/// Length of the TLV header (type and length), in bytes (RFC 3618 12.1).
pub const HEADER_LEN: usize = 3;
/// Largest TLV an MSDP speaker sends or accepts, in bytes (RFC 3618
/// section 12: maximum TLV length 9192).
pub const MAX_TLV_LEN: usize = 9192;
/// Length of a Source-Active TLV without entries, in bytes (RFC 3618 12.2.1).
pub const SA_HEADER_LEN: usize = field::SA_ENTRIES;
/// Length of one Source-Active entry, in bytes (RFC 3618 12.2.1).
pub const SA_ENTRY_LEN: usize = 12;
/// Most entries one Source-Active TLV can carry: the Entry Count is 8 bits
/// (RFC 3618 12.2.1); 255 entries take 8 + 255 * 12 = 3068 bytes.
pub const SA_MAX_ENTRIES: usize = 255;

/// Source-Active (RFC 3618 12.2.1).
pub const TYPE_SOURCE_ACTIVE: u8 = 1;
/// Source-Active Request (obsolete; RFC 3618 12.2 lists it, not used).
pub const TYPE_SA_REQUEST: u8 = 2;
/// Source-Active Response (obsolete; RFC 3618 12.2 lists it, not used).
pub const TYPE_SA_RESPONSE: u8 = 3;
/// KeepAlive (RFC 3618 12.2.2).
pub const TYPE_KEEPALIVE: u8 = 4;

view! {
    /// A view over one MSDP TLV.
    ///
    /// `new_checked` guarantees the 3-byte header, a length field of at least
    /// 3 and at most 9192 that the buffer holds, and, for a Source-Active,
    /// the fixed part and that the entries fit the length. Bytes past the
    /// length field are ignored.
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] below 3 bytes or below the length field;
    /// [`Error::BadLength`] for a length field below 3 or above 9192, a
    /// Source-Active shorter than 8 bytes or a KeepAlive whose length is not
    /// 3; [`Error::BadCount`] for a Source-Active whose entry count does not
    /// fit its length (RFC 3618 12.2.1).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.length());
        if !(HEADER_LEN..=MAX_TLV_LEN).contains(&len) {
            return Err(Error::BadLength);
        }
        if b.len() < len {
            return Err(Error::Truncated);
        }
        match self.tlv_type() {
            TYPE_SOURCE_ACTIVE => {
                if len < SA_HEADER_LEN {
                    return Err(Error::BadLength);
                }
                if len < SA_HEADER_LEN + SA_ENTRY_LEN * usize::from(self.entry_count()) {
                    return Err(Error::BadCount);
                }
            }
            TYPE_KEEPALIVE if len != HEADER_LEN => return Err(Error::BadLength),
            _ => {}
        }
        Ok(())
    }

    /// The TLV type (e.g. [`TYPE_SOURCE_ACTIVE`]).
    #[inline]
    pub fn tlv_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The length field: the whole TLV in bytes, header included.
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The value: the bytes after the header up to the length field.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }

    /// Source-Active: the Entry Count (RFC 3618 12.2.1).
    #[inline]
    pub fn entry_count(&self) -> u8 {
        self.buffer.as_ref()[field::SA_COUNT]
    }

    /// Source-Active: the RP Address, the originating RP (RFC 3618 12.2.1).
    #[inline]
    pub fn rp_address(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::SA_RP.start)
    }

    fn entry(&self, i: usize) -> &[u8] {
        let at = SA_HEADER_LEN + i * SA_ENTRY_LEN;
        &self.buffer.as_ref()[at..at + SA_ENTRY_LEN]
    }

    /// Source-Active entry `i`: the three reserved bytes.
    #[inline]
    pub fn entry_reserved(&self, i: usize) -> [u8; 3] {
        let e = self.entry(i);
        [e[0], e[1], e[2]]
    }

    /// Source-Active entry `i`: Sprefix Len (MUST be 32, RFC 3618 12.2.1).
    #[inline]
    pub fn entry_sprefix_len(&self, i: usize) -> u8 {
        self.entry(i)[field::ENTRY_SPREFIX_LEN]
    }

    /// Source-Active entry `i`: the group address.
    #[inline]
    pub fn entry_group(&self, i: usize) -> Ipv4Addr {
        addr(self.entry(i), field::ENTRY_GROUP.start)
    }

    /// Source-Active entry `i`: the source address.
    #[inline]
    pub fn entry_source(&self, i: usize) -> Ipv4Addr {
        addr(self.entry(i), field::ENTRY_SOURCE.start)
    }

    /// Source-Active: the encapsulated data after the entries (empty when
    /// none).
    #[inline]
    pub fn encapsulated_data(&self) -> &[u8] {
        let start = SA_HEADER_LEN + SA_ENTRY_LEN * usize::from(self.entry_count());
        &self.buffer.as_ref()[start..usize::from(self.length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_tlv_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the length field (whole TLV, header included).
    #[inline]
    pub fn set_length(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// One (S,G) of a Source-Active (RFC 3618 12.2.1); Sprefix Len is always 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaEntry {
    /// Group address.
    pub group: Ipv4Addr,
    /// Source address (a /32).
    pub source: Ipv4Addr,
}

/// The meaning of one MSDP TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr {
    /// Source-Active (RFC 3618 12.2.1).
    SourceActive {
        /// The RP that originated the SA.
        rp: Ipv4Addr,
        /// The (S,G) entries, at most [`SA_MAX_ENTRIES`].
        entries: Vec<SaEntry>,
        /// Encapsulated data (the source's first packet), often empty.
        data: Vec<u8>,
    },
    /// KeepAlive (RFC 3618 12.2.2).
    KeepAlive,
    /// Any other type, kept raw.
    Unknown {
        /// The type.
        tlv_type: u8,
        /// The value (without header).
        value: Vec<u8>,
    },
}

impl Repr {
    /// Parses a checked view. [`Error::BadMask`] when an SA entry's Sprefix
    /// Len is not 32 (RFC 3618 12.2.1: "MUST be transmitted as 32"). The
    /// reserved bytes are ignored (emitted as zero).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(match p.tlv_type() {
            TYPE_SOURCE_ACTIVE => {
                let n = usize::from(p.entry_count());
                let mut entries = Vec::with_capacity(n);
                for i in 0..n {
                    if p.entry_sprefix_len(i) != 32 {
                        return Err(Error::BadMask);
                    }
                    entries.push(SaEntry {
                        group: p.entry_group(i),
                        source: p.entry_source(i),
                    });
                }
                Repr::SourceActive {
                    rp: p.rp_address(),
                    entries,
                    data: p.encapsulated_data().to_vec(),
                }
            }
            TYPE_KEEPALIVE => Repr::KeepAlive,
            t => Repr::Unknown {
                tlv_type: t,
                value: p.value().to_vec(),
            },
        })
    }

    /// The TLV's length in bytes, header included (the length field).
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::SourceActive { entries, data, .. } => {
                SA_HEADER_LEN + SA_ENTRY_LEN * entries.len() + data.len()
            }
            Repr::KeepAlive => HEADER_LEN,
            Repr::Unknown { value, .. } => HEADER_LEN + value.len(),
        }
    }

    /// Whether this `Repr` can be emitted: at most 9192 bytes and, for a
    /// Source-Active, at most 255 entries.
    pub fn is_emittable(&self) -> bool {
        let entries_ok = match self {
            Repr::SourceActive { entries, .. } => entries.len() <= SA_MAX_ENTRIES,
            _ => true,
        };
        entries_ok && self.buffer_len() <= MAX_TLV_LEN
    }

    /// Writes the TLV into `p`, which holds at least `buffer_len()` bytes.
    /// Panics when `!self.is_emittable()` (a caller bug: split SAs first).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        assert!(self.is_emittable(), "MSDP TLV too large to emit");
        let len = self.buffer_len();
        p.set_length(len as u16);
        let b = &mut p.buffer.as_mut()[..len];
        match self {
            Repr::SourceActive { rp, entries, data } => {
                b[field::TYPE] = TYPE_SOURCE_ACTIVE;
                b[field::SA_COUNT] = entries.len() as u8;
                b[field::SA_RP].copy_from_slice(&rp.octets());
                for (i, e) in entries.iter().enumerate() {
                    let at = SA_HEADER_LEN + i * SA_ENTRY_LEN;
                    let d = &mut b[at..at + SA_ENTRY_LEN];
                    d[field::ENTRY_RESERVED].fill(0);
                    d[field::ENTRY_SPREFIX_LEN] = 32;
                    d[field::ENTRY_GROUP].copy_from_slice(&e.group.octets());
                    d[field::ENTRY_SOURCE].copy_from_slice(&e.source.octets());
                }
                b[len - data.len()..].copy_from_slice(data);
            }
            Repr::KeepAlive => b[field::TYPE] = TYPE_KEEPALIVE,
            Repr::Unknown { tlv_type, value } => {
                b[field::TYPE] = *tlv_type;
                b[HEADER_LEN..].copy_from_slice(value);
            }
        }
    }

    /// Emits into a new vector of `buffer_len()` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]));
        v
    }
}

/// Why the byte stream of an MSDP session is not valid. Each is fatal to
/// the session (RFC 3618 section 13: "the session SHOULD be reset"):
/// the session is closed with the reason logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// A length field below the 3-byte header (e.g. 0).
    LengthBelowHeader {
        /// The TLV type.
        tlv_type: u8,
        /// The length field.
        length: u16,
    },
    /// A length field above 9192 (RFC 3618 section 12), e.g. 65535.
    LengthAboveMax {
        /// The TLV type.
        tlv_type: u8,
        /// The length field.
        length: u16,
    },
    /// A Source-Active whose entry count does not fit its length, or whose
    /// length is below its fixed 8 bytes (RFC 3618 12.2.1).
    BadEntryCount {
        /// The entry count field (0 when the length is below 8).
        count: u8,
        /// The length field.
        length: u16,
    },
    /// A KeepAlive whose length is not 3 (RFC 3618 12.2.2).
    BadKeepAliveLength {
        /// The length field.
        length: u16,
    },
    /// A Source-Active entry whose Sprefix Len is not 32 (RFC 3618 12.2.1).
    BadSprefixLen,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::LengthBelowHeader { tlv_type, length } => {
                write!(f, "TLV type {tlv_type} length {length} below 3")
            }
            FrameError::LengthAboveMax { tlv_type, length } => {
                write!(f, "TLV type {tlv_type} length {length} above 9192")
            }
            FrameError::BadEntryCount { count, length } => {
                write!(
                    f,
                    "Source-Active entry count {count} does not fit length {length}"
                )
            }
            FrameError::BadKeepAliveLength { length } => {
                write!(f, "KeepAlive length {length} is not 3")
            }
            FrameError::BadSprefixLen => f.write_str("Source-Active Sprefix Len is not 32"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Cuts an MSDP TCP byte stream into whole TLVs.
///
/// Feed it the bytes of each read, in order, whatever their sizes: a TLV
/// split across reads is held until complete, several TLVs in one read all
/// come out, TLVs of unknown type are skipped (counted in
/// [`TlvFramer::skipped`]). Its buffer never holds more than one TLV of at
/// most [`MAX_TLV_LEN`] bytes: a length field is checked as soon as the
/// 3 header bytes are in, before any value byte is stored. After the first
/// [`FrameError`] the stream is out of sync: the framer returns that error
/// for every later call and the session must be closed.
#[derive(Debug, Clone, Default)]
pub struct TlvFramer {
    buf: Vec<u8>,
    /// Total length of the TLV being assembled, once its header is in.
    need: Option<usize>,
    failed: Option<FrameError>,
    skipped: u64,
    framed: u64,
}

impl TlvFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes all of `chunk`, pushing every TLV it completes onto `out`
    /// (which is not cleared). On error, the TLVs completed before the bad
    /// one are in `out` and the rest of the chunk is discarded.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        out: &mut Vec<Repr>,
    ) -> core::result::Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        while !chunk.is_empty() {
            let want = self.need.unwrap_or(HEADER_LEN);
            let take = (want - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() < want {
                break;
            }
            if self.need.is_none() {
                let need = match self.check_header() {
                    Ok(n) => n,
                    Err(e) => return Err(self.fail(e)),
                };
                self.need = Some(need);
                if need > HEADER_LEN {
                    continue;
                }
            }
            // A whole TLV is in the buffer.
            let result = self.finish();
            self.buf.clear();
            self.need = None;
            match result {
                Ok(Some(r)) => {
                    self.framed += 1;
                    out.push(r)
                }
                Ok(None) => self.skipped += 1,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.failed = Some(e);
        self.buf = Vec::new();
        self.need = None;
        e
    }

    /// Checks the header in `buf` (3 bytes), giving the TLV's total length.
    fn check_header(&self) -> core::result::Result<usize, FrameError> {
        let tlv_type = self.buf[0];
        let length = be16(&self.buf, 1);
        let len = usize::from(length);
        if len < HEADER_LEN {
            return Err(FrameError::LengthBelowHeader { tlv_type, length });
        }
        if len > MAX_TLV_LEN {
            return Err(FrameError::LengthAboveMax { tlv_type, length });
        }
        match tlv_type {
            TYPE_SOURCE_ACTIVE if len < SA_HEADER_LEN => {
                Err(FrameError::BadEntryCount { count: 0, length })
            }
            TYPE_KEEPALIVE if len != HEADER_LEN => Err(FrameError::BadKeepAliveLength { length }),
            _ => Ok(len),
        }
    }

    /// Parses the whole TLV in `buf`; `None` for a skipped unknown type.
    fn finish(&self) -> core::result::Result<Option<Repr>, FrameError> {
        let p = Packet::new_unchecked(&self.buf[..]);
        match p.check_len() {
            Ok(()) => {}
            Err(Error::BadCount) => {
                return Err(FrameError::BadEntryCount {
                    count: p.entry_count(),
                    length: p.length(),
                })
            }
            // The header checks ran already; nothing else can fail here.
            Err(_) => {
                return Err(FrameError::LengthBelowHeader {
                    tlv_type: p.tlv_type(),
                    length: p.length(),
                })
            }
        }
        match p.tlv_type() {
            TYPE_SOURCE_ACTIVE | TYPE_KEEPALIVE => match Repr::parse(&p) {
                Ok(r) => Ok(Some(r)),
                Err(_) => Err(FrameError::BadSprefixLen),
            },
            _ => Ok(None),
        }
    }

    /// Bytes held for an incomplete TLV (at most [`MAX_TLV_LEN`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// TLVs of unknown type skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// TLVs framed and returned so far.
    pub fn framed(&self) -> u64 {
        self.framed
    }

    /// The error that stopped the stream, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.failed
    }
}
