//! IPv4 headers.

use super::WireError;
use std::net::Ipv4Addr;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_UDP: u8 = 17;

/// A view over an IPv4 packet. `new_checked` guarantees the header and the
/// total length both fit in the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks version, header length and total length against the buffer.
    /// Bytes past the total length (Ethernet padding) are ignored.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if buf[0] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(buf[0] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if header_len < MIN_HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if buf.len() < total_len {
            return Err(WireError::Truncated);
        }
        Ok(Packet {
            buf: &buf[..total_len],
        })
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buf[0] & 0x0f) * 4
    }

    pub fn total_len(&self) -> usize {
        self.buf.len()
    }

    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    /// More-fragments flag set or a non-zero fragment offset: this packet is
    /// a piece of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        u16::from_be_bytes([self.buf[6], self.buf[7]]) & 0x3fff != 0
    }

    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[12], self.buf[13], self.buf[14], self.buf[15])
    }

    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len()..]
    }

    /// The offset of the payload from the start of the view.
    pub fn payload_offset(&self) -> usize {
        self.header_len()
    }
}

/// The meaning of an IPv4 header (options are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub payload_len: usize,
    pub fragment: bool,
}

impl Repr {
    pub fn parse(packet: &Packet<'_>) -> Repr {
        Repr {
            src: packet.src(),
            dst: packet.dst(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            payload_len: packet.total_len() - packet.header_len(),
            fragment: packet.is_fragment(),
        }
    }

    /// Writes a 20-byte header with a valid checksum into `buf`. A fragment
    /// is emitted as the first piece (MF set, offset 0).
    pub fn emit(&self, buf: &mut [u8]) {
        let total = (MIN_HEADER_LEN + self.payload_len) as u16;
        buf[0] = 0x45;
        buf[1] = 0;
        buf[2..4].copy_from_slice(&total.to_be_bytes());
        buf[4..6].copy_from_slice(&0u16.to_be_bytes());
        let flags: u16 = if self.fragment { 0x2000 } else { 0x4000 };
        buf[6..8].copy_from_slice(&flags.to_be_bytes());
        buf[8] = self.ttl;
        buf[9] = self.protocol;
        buf[10..12].copy_from_slice(&[0, 0]);
        buf[12..16].copy_from_slice(&self.src.octets());
        buf[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum(&buf[..MIN_HEADER_LEN]);
        buf[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(fragment: bool) -> (Repr, Vec<u8>) {
        let repr = Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(239, 1, 1, 1),
            protocol: PROTO_UDP,
            ttl: 7,
            payload_len: 8,
            fragment,
        };
        let mut buf = vec![0u8; 28];
        repr.emit(&mut buf);
        (repr, buf)
    }

    #[test]
    fn round_trip_and_checksum() {
        let (repr, buf) = sample(false);
        let p = Packet::new_checked(&buf).unwrap();
        assert_eq!(Repr::parse(&p), repr);
        assert_eq!(checksum(&buf[..20]), 0, "checksum over a valid header is 0");
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn fragment_flag() {
        let (repr, buf) = sample(true);
        assert!(Packet::new_checked(&buf).unwrap().is_fragment());
        assert!(repr.fragment);
    }

    #[test]
    fn total_length_past_buffer_is_truncated() {
        let (_, buf) = sample(false);
        assert_eq!(
            Packet::new_checked(&buf[..27]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn padding_is_ignored() {
        let (_, mut buf) = sample(false);
        buf.extend_from_slice(&[0xee; 10]);
        assert_eq!(Packet::new_checked(&buf).unwrap().total_len(), 28);
    }

    #[test]
    fn bad_version_and_lengths_are_malformed() {
        let (_, mut buf) = sample(false);
        buf[0] = 0x65;
        assert_eq!(Packet::new_checked(&buf).unwrap_err(), WireError::Malformed);
        buf[0] = 0x44;
        assert_eq!(Packet::new_checked(&buf).unwrap_err(), WireError::Malformed);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(p) = Packet::new_checked(&data) {
                let r = Repr::parse(&p);
                proptest::prop_assert!(p.payload().len() == r.payload_len);
            }
        }
    }
}
