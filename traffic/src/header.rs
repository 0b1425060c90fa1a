//! The mcrgen payload header and filler (see the module docs of
//! [`crate`] for the wire format).
//!
//! Written in the style of smoltcp's `wire` module: [`Header`] is a zero-copy
//! view over a byte buffer with field accessors, [`HeaderRepr`] is the parsed,
//! owned representation with `parse`/`emit`.

/// "MCRG" in ASCII.
pub const MAGIC: u32 = 0x4D43_5247;
/// Length of the full header in bytes.
pub const HEADER_LEN: usize = 24;
/// Largest UDP payload over IPv4.
pub const MAX_PAYLOAD: usize = 65507;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const STREAM: Range<usize> = 4..8;
    pub const SEQ: Range<usize> = 8..16;
    pub const TIMESTAMP: Range<usize> = 16..24;
}

/// Why a buffer is not a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than [`HEADER_LEN`].
    Truncated,
    /// The first four bytes are not [`MAGIC`].
    BadMagic,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("payload shorter than the 24-byte mcrgen header"),
            Error::BadMagic => f.write_str("payload does not start with the MCRG magic"),
        }
    }
}

impl std::error::Error for Error {}

/// Zero-copy view of an mcrgen header at the start of a payload.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wrap a buffer without any check; accessors panic if it is shorter than
    /// [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wrap a buffer, checking its length and magic.
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        if h.magic() != MAGIC {
            return Err(Error::BadMagic);
        }
        Ok(h)
    }

    /// Check the buffer is long enough for the accessors.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Give back the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        u32::from_be_bytes(self.buffer.as_ref()[r].try_into().unwrap())
    }

    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        u64::from_be_bytes(self.buffer.as_ref()[r].try_into().unwrap())
    }

    pub fn magic(&self) -> u32 {
        self.u32_at(field::MAGIC)
    }

    pub fn stream_id(&self) -> u32 {
        self.u32_at(field::STREAM)
    }

    pub fn seq(&self) -> u64 {
        self.u64_at(field::SEQ)
    }

    /// Send time, CLOCK_REALTIME nanoseconds since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.u64_at(field::TIMESTAMP)
    }

    /// The bytes after the header.
    pub fn filler(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    pub fn set_magic(&mut self, v: u32) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_stream_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::STREAM].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_seq(&mut self, v: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_timestamp_ns(&mut self, v: u64) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&v.to_be_bytes());
    }
}

/// Parsed form of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRepr {
    pub stream_id: u32,
    pub seq: u64,
    pub timestamp_ns: u64,
}

impl HeaderRepr {
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<HeaderRepr, Error> {
        h.check_len()?;
        if h.magic() != MAGIC {
            return Err(Error::BadMagic);
        }
        Ok(HeaderRepr {
            stream_id: h.stream_id(),
            seq: h.seq(),
            timestamp_ns: h.timestamp_ns(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut Header<T>) {
        h.set_magic(MAGIC);
        h.set_stream_id(self.stream_id);
        h.set_seq(self.seq);
        h.set_timestamp_ns(self.timestamp_ns);
    }
}

/// `PATTERN[j] == j as u8`; long enough that any filler is one contiguous
/// slice of it, so [`fill`] is a memcpy and [`verify`] a memcmp.
static PATTERN: [u8; MAX_PAYLOAD + 256] = {
    let mut p = [0u8; MAX_PAYLOAD + 256];
    let mut j = 0;
    while j < p.len() {
        p[j] = j as u8;
        j += 1;
    }
    p
};

/// Per-packet filler seed: `seq as u8 + (stream as u8) * 101` (mod 256).
#[inline]
pub fn filler_seed(stream: u32, seq: u64) -> u8 {
    (seq as u8).wrapping_add((stream as u8).wrapping_mul(101))
}

/// Filler byte at offset `i` (from the start of the payload, `i >= 24`):
/// `(i + seed) mod 256`.
#[inline]
pub fn filler_byte(stream: u32, seq: u64, i: usize) -> u8 {
    (i as u8).wrapping_add(filler_seed(stream, seq))
}

#[inline]
fn expected_filler(len: usize, stream: u32, seq: u64) -> &'static [u8] {
    let s = filler_seed(stream, seq) as usize;
    &PATTERN[HEADER_LEN + s..len + s]
}

/// Write the header at the start of `buf`. If `buf` is shorter than
/// [`HEADER_LEN`], the header is truncated to `buf.len()` bytes.
#[inline]
pub fn encode(buf: &mut [u8], stream: u32, seq: u64, ts: u64) {
    if buf.len() >= HEADER_LEN {
        HeaderRepr {
            stream_id: stream,
            seq,
            timestamp_ns: ts,
        }
        .emit(&mut Header::new_unchecked(&mut buf[..HEADER_LEN]));
    } else {
        let mut full = [0u8; HEADER_LEN];
        encode(&mut full, stream, seq, ts);
        let n = buf.len();
        buf.copy_from_slice(&full[..n]);
    }
}

/// Write the filler into `buf[HEADER_LEN..]` (nothing for short buffers).
#[inline]
pub fn fill(buf: &mut [u8], stream: u32, seq: u64) {
    if buf.len() > HEADER_LEN {
        let n = buf.len();
        buf[HEADER_LEN..].copy_from_slice(expected_filler(n, stream, seq));
    }
}

/// Parse the header; `None` for payloads shorter than [`HEADER_LEN`] or
/// without the magic.
#[inline]
pub fn decode(buf: &[u8]) -> Option<HeaderRepr> {
    HeaderRepr::parse(&Header::new_unchecked(buf)).ok()
}

/// True if `buf` carries a valid header followed by the filler that header
/// implies. Payloads shorter than the header carry nothing checkable and
/// return true; full-length payloads without the magic return false.
#[inline]
pub fn verify(buf: &[u8]) -> bool {
    if buf.len() < HEADER_LEN {
        return true;
    }
    match decode(buf) {
        Some(r) => verify_filler(buf, r.stream_id, r.seq),
        None => false,
    }
}

/// Check only the filler, given an already decoded header.
#[inline]
pub fn verify_filler(buf: &[u8], stream: u32, seq: u64) -> bool {
    buf.len() <= HEADER_LEN || buf[HEADER_LEN..] == *expected_filler(buf.len(), stream, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut buf = vec![0u8; 100];
        encode(&mut buf, 7, 0x0102_0304_0506_0708, 42);
        fill(&mut buf, 7, 0x0102_0304_0506_0708);
        assert_eq!(&buf[..4], b"MCRG");
        assert_eq!(&buf[4..8], &[0, 0, 0, 7]);
        assert_eq!(&buf[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&buf[16..24], &[0, 0, 0, 0, 0, 0, 0, 42]);
        let r = decode(&buf).unwrap();
        assert_eq!(
            r,
            HeaderRepr {
                stream_id: 7,
                seq: 0x0102_0304_0506_0708,
                timestamp_ns: 42
            }
        );
        assert!(verify(&buf));
        for (i, b) in buf.iter().enumerate().skip(HEADER_LEN) {
            assert_eq!(*b, filler_byte(7, 0x0102_0304_0506_0708, i));
        }
        let h = Header::new_checked(&buf[..]).unwrap();
        assert_eq!(h.filler().len(), 76);
    }

    #[test]
    fn filler_formula() {
        // stream 3, seq 300: seed = 44 + 303 mod 256 = 91; byte 24 = 115.
        assert_eq!(filler_seed(3, 300), 91);
        assert_eq!(filler_byte(3, 300, 24), 115);
        assert_eq!(filler_byte(3, 300, 200), ((200 + 91) % 256) as u8);
    }

    #[test]
    fn corruption_detected() {
        let mut buf = vec![0u8; 64];
        encode(&mut buf, 1, 5, 0);
        fill(&mut buf, 1, 5);
        assert!(verify(&buf));
        buf[40] ^= 1;
        assert!(!verify(&buf));
        // A filler from another seq does not verify.
        fill(&mut buf, 1, 6);
        assert!(!verify(&buf));
        // Bad magic.
        fill(&mut buf, 1, 5);
        buf[0] = b'X';
        assert!(decode(&buf).is_none());
        assert!(!verify(&buf));
        assert_eq!(Header::new_checked(&buf[..]).unwrap_err(), Error::BadMagic);
    }

    #[test]
    fn short_payloads() {
        for n in 1..HEADER_LEN {
            let mut buf = vec![0u8; n];
            encode(&mut buf, 9, 1, 2);
            fill(&mut buf, 9, 1);
            assert_eq!(&buf[..n.min(4)], &b"MCRG"[..n.min(4)]);
            assert!(decode(&buf).is_none());
            assert!(verify(&buf));
        }
        let mut exact = vec![0u8; HEADER_LEN];
        encode(&mut exact, 9, 1, 2);
        fill(&mut exact, 9, 1);
        assert!(verify(&exact));
        assert_eq!(decode(&exact).unwrap().seq, 1);
        assert_eq!(
            Header::new_checked(&exact[..3]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn max_payload() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        encode(&mut buf, u32::MAX, u64::MAX, u64::MAX);
        fill(&mut buf, u32::MAX, u64::MAX);
        assert!(verify(&buf));
    }
}
