//! UDP headers.

use super::WireError;

pub const HEADER_LEN: usize = 8;

/// A view over a UDP datagram. `new_checked` guarantees the length field
/// is consistent with the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    buf: &'a [u8],
}

impl<'a> Packet<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > buf.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buf: &buf[..len] })
    }

    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }

    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..]
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    pub fn parse(packet: &Packet<'_>) -> Repr {
        Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        }
    }

    /// Writes the header with a zero (absent) checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..6].copy_from_slice(&((HEADER_LEN + self.payload_len) as u16).to_be_bytes());
        buf[6..8].copy_from_slice(&[0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let repr = Repr {
            src_port: 4000,
            dst_port: 5001,
            payload_len: 3,
        };
        let mut buf = vec![0u8; 11];
        repr.emit(&mut buf);
        buf[8..].copy_from_slice(b"abc");
        let p = Packet::new_checked(&buf).unwrap();
        assert_eq!(Repr::parse(&p), repr);
        assert_eq!(p.payload(), b"abc");
    }

    #[test]
    fn length_field_checked() {
        let mut buf = [0u8; 8];
        buf[5] = 7;
        assert_eq!(Packet::new_checked(&buf).unwrap_err(), WireError::Malformed);
        buf[5] = 9;
        assert_eq!(Packet::new_checked(&buf).unwrap_err(), WireError::Truncated);
    }
}
