//! UDP headers (RFC 768) with the IPv4 pseudo-header checksum.

use crate::{be16, checksum, ipv4, Error, Result};
use std::net::Ipv4Addr;

mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of a UDP header in bytes.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

view! {
    /// A view over a UDP datagram. `new_checked` guarantees the length field
    /// is at least 8 and fits the buffer; bytes past it are outside
    /// [`payload`](Self::payload).
    Packet
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// [`Error::Truncated`] if the buffer is shorter than 8 bytes or than
    /// the length field; [`Error::BadLength`] if the length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field says the datagram carries no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field; 0 means the sender computed none (RFC 768).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Whether the checksum verifies over the IPv4 pseudo-header, header and
    /// payload; a zero checksum (none sent) verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let data = &self.buffer.as_ref()[..usize::from(self.len())];
        let acc = checksum::pseudo_header(src, dst, ipv4::PROTO_UDP, u32::from(self.len()));
        checksum::fold(checksum::add(acc, data)) == 0xffff
    }

    /// Whether the checksum field holds only the pseudo-header sum the
    /// sender's kernel leaves for checksum offload (`CHECKSUM_PARTIAL`:
    /// the folded, uncomplemented sum of source, destination, protocol and
    /// length). Such a datagram never crossed a wire: its checksum is still
    /// to be computed by the sending device, so there is none to verify.
    pub fn checksum_is_offload_seed(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let seed = checksum::fold(checksum::pseudo_header(
            src,
            dst,
            ipv4::PROTO_UDP,
            u32::from(self.len()),
        ));
        self.checksum() == seed
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header up to the length field, borrowed for the
    /// buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the length field (header plus payload, bytes).
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field as is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header, the header and the
    /// payload as they stand (up to the length field) and writes it; a
    /// computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let acc = checksum::pseudo_header(src, dst, ipv4::PROTO_UDP, u32::from(len));
        let c = !checksum::fold(checksum::add(
            acc,
            &self.buffer.as_ref()[..usize::from(len)],
        ));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The bytes after the header up to the length field, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Length of the payload in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Reads and validates a datagram: everything `check_len` checks and,
    /// when `addrs` (IPv4 source, destination) is given and the checksum is
    /// not 0, the checksum ([`Error::Checksum`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        addrs: Option<(Ipv4Addr, Ipv4Addr)>,
    ) -> Result<Repr> {
        packet.check_len()?;
        if let Some((src, dst)) = addrs {
            if !packet.verify_checksum(src, dst) {
                return Err(Error::Checksum);
            }
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// The header length, 8 bytes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header. With `addrs` (IPv4 source, destination) the
    /// checksum is computed over the payload already in the buffer (write
    /// the payload first); without, the checksum is 0, "none" (RFC 768),
    /// and the buffer may hold the header alone (the payload sent from
    /// elsewhere, as the engine's transmit path does). The length field is
    /// `8 + payload_len` truncated to 16 bits. Panics if the buffer is
    /// shorter than 8 bytes, or than `8 + payload_len` when `addrs` is given.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        addrs: Option<(Ipv4Addr, Ipv4Addr)>,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + self.payload_len) as u16);
        match addrs {
            Some((src, dst)) => packet.fill_checksum(src, dst),
            None => packet.set_checksum(0),
        }
    }
}
