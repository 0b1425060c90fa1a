//! The Internet checksum (RFC 1071), the one implementation every format
//! here (IPv4, UDP, IGMP, PIM) and the workspace's header builders use.

use std::net::Ipv4Addr;

/// Adds `data` as big-endian 16-bit words to the running sum `acc`, without
/// folding (an odd last byte counts as its high half, RFC 1071 4.1).
///
/// The sum is a `u64` so that any buffer up to 2^48 bytes adds without
/// overflow; [`fold`] reduces it to the 16-bit one's-complement sum.
#[inline]
pub fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum from [`add`] into 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the one's complement of its one's-complement
/// sum. Writing it into a zeroed checksum field makes [`verify`] hold.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(add(0, data))
}

/// Whether `data`, checksum field included, sums to all ones (RFC 1071:
/// the check is the checksum over the data with the field in place being 0).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(add(0, data)) == 0xffff
}

/// The running sum of the IPv4 pseudo-header of RFC 768 (UDP) and RFC 793:
/// source, destination, zero + protocol, and the upper-layer length in
/// bytes.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u64 {
    let mut acc = add(0, &src.octets());
    acc = add(acc, &dst.octets());
    acc += u64::from(protocol);
    acc + u64::from(length >> 16) + u64::from(length & 0xffff)
}

/// The checksum after fields whose running sum (from [`add`] or
/// [`pseudo_header`]) was `old` are replaced by fields summing to `new`,
/// without touching the rest of the data (RFC 1624, eqn. 3:
/// `HC' = ~(~HC + ~m + m')`). Only for a checksum that verified: an update
/// carries an error through, it never repairs one.
#[inline]
pub fn adjust(check: u16, old: u64, new: u64) -> u16 {
    !fold(u64::from(!check) + u64::from(!fold(old)) + u64::from(fold(new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: the sum of 00 01 f2 03 f4 f5 f6 f7
        // is ddf2, so the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0])
        );
    }

    #[test]
    fn verify_accepts_filled_checksum() {
        let mut data = [
            0x45u8, 0, 0, 20, 0, 0, 0x40, 0, 1, 17, 0, 0, 10, 0, 0, 1, 239, 1, 1, 1,
        ];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&data));
        data[0] ^= 1;
        assert!(!verify(&data));
    }

    #[test]
    fn adjust_matches_a_fresh_checksum() {
        let mut data = [1u8, 2, 3, 4, 5, 6, 7, 8, 0, 0];
        let c = checksum(&data);
        data[8..10].copy_from_slice(&c.to_be_bytes());
        let old = add(0, &data[0..4]);
        data[0..4].copy_from_slice(&[9, 9, 0xff, 0x10]);
        let new = add(0, &data[0..4]);
        let adjusted = adjust(c, old, new);
        data[8..10].copy_from_slice(&[0, 0]);
        assert_eq!(adjusted, checksum(&data));
    }
}
