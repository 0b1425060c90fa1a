//! mcr packet formats: zero-copy views and `Repr`s, no I/O.
//!
//! Shaped like smoltcp's `wire` module. Each format has
//!
//! - a view (`Packet<T>`, Ethernet's is [`ethernet::Frame`]) over any
//!   `T: AsRef<[u8]>`, with its field ranges named in a private `field`
//!   module. `new_unchecked` wraps bytes as they are; `new_checked` first
//!   runs `check_len`, after which no getter can panic, whatever the bytes
//!   are. Setters exist only when `T: AsMut<[u8]>` too.
//! - a `Repr`, the meaning of a packet: `parse` validates what the view does
//!   not (checksums, header lengths, counts, field values) and `emit` writes
//!   the `Repr` back into a view of at least `buffer_len()` bytes, so a
//!   parsed packet re-emits byte for byte.
//!
//! Formats: [`ethernet`] (Ethernet II), [`ipv4`] (RFC 791), [`udp`]
//! (RFC 768), [`igmp`] (RFC 2236, RFC 3376) and [`pim`] (PIMv2, RFC 7761).
//! [`checksum`] is the one Internet checksum (RFC 1071) they all use.
//!
//! Nothing here allocates on the data path: the Ethernet, IPv4 and UDP views
//! and `Repr`s are plain borrows and `Copy` values, with `#[inline]`
//! accessors. The IGMP and PIM `Repr`s hold their lists in `Vec`s: they are
//! control-plane messages.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Defines a view (smoltcp's shape): a struct over a buffer `T` with the
/// constructors every view has, `new_unchecked`, `new_checked` (which runs
/// the view's own `check_len`) and `into_inner`.
macro_rules! view {
    ($(#[$attr:meta])* $view:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy)]
        pub struct $view<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $view<T> {
            /// Wraps a buffer without checks; getters may panic on a buffer
            /// shorter than they read.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> $view<T> {
                $view { buffer }
            }

            /// Wraps a buffer after `check_len`; no getter can panic
            /// afterwards.
            #[inline]
            pub fn new_checked(buffer: T) -> crate::Result<$view<T>> {
                let v = Self::new_unchecked(buffer);
                v.check_len()?;
                Ok(v)
            }

            /// Gives back the buffer.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub mod checksum;
pub mod ethernet;
pub mod igmp;
pub mod ipv4;
pub mod msdp;
pub mod pim;
pub mod udp;

pub use ethernet::MacAddr;

/// A field of a fixed-layout header: a byte range from the start of the view.
pub type Field = core::ops::Range<usize>;
/// The variable-length rest of a header, from a byte offset to the end.
pub type Rest = core::ops::RangeFrom<usize>;

/// Why bytes are not a valid packet of the format asked for.
///
/// Each variant is a distinct reason, so callers (the engine's drop
/// counters, the protocols' error counters) can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header, or shorter than a length
    /// field (IPv4 total length, UDP length, an option, a PIM address) says.
    Truncated,
    /// A checksum does not verify.
    Checksum,
    /// A length field contradicts the format: an IPv4 total length below its
    /// header length, a UDP length below 8, an IGMP message of 9 to 11 bytes
    /// (RFC 3376 7.1), a Hello option of the wrong size.
    BadLength,
    /// The IPv4 header length (IHL) is below 5 words (RFC 791).
    BadHeaderLen,
    /// The version field is not the one of the format (IPv4: 4; PIM: 2).
    BadVersion,
    /// A count (IGMPv3 sources or group records, PIM groups or sources)
    /// announces more entries than the packet holds (RFC 3376 4.1.8,
    /// 4.2.6; RFC 7761 4.9.5).
    BadCount,
    /// A type field names a message this crate does not know (IGMP type,
    /// PIM type).
    Unrecognized,
    /// A PIM encoded address has an address family other than IPv4 (1)
    /// (RFC 7761 4.9.1).
    BadFamily,
    /// A PIM encoded address has an encoding type other than native (0)
    /// (RFC 7761 4.9.1).
    BadEncoding,
    /// A PIM encoded group or source has a mask length above 32 (RFC 7761
    /// 4.9.1).
    BadMask,
    /// An IPv4 option is malformed: a length below 2 or past the header
    /// (RFC 791).
    BadOption,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Checksum => "bad checksum",
            Error::BadLength => "length field inconsistent with the format",
            Error::BadHeaderLen => "IPv4 header length below 20 bytes",
            Error::BadVersion => "wrong version",
            Error::BadCount => "count larger than the packet",
            Error::Unrecognized => "unrecognized message type",
            Error::BadFamily => "encoded address family is not IPv4",
            Error::BadEncoding => "encoded address encoding type is not native",
            Error::BadMask => "encoded address mask length above 32",
            Error::BadOption => "malformed IPv4 option",
        })
    }
}

impl std::error::Error for Error {}

/// The result of parsing: a value or why the bytes are not valid.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian u16 at `at`; callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian u32 at `at`; callers have checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads an IPv4 address at `at`; callers have checked the length.
#[inline]
pub(crate) fn addr(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}
