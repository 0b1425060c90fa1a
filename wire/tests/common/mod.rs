//! Helpers shared by the captured-bytes tests.
#![allow(dead_code)]

use mcr_wire::{ethernet, ipv4};

/// Decodes a hex string (whitespace ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Parses an Ethernet frame carrying IPv4; returns both Reprs and the IPv4
/// payload.
pub fn parse_frame(frame: &[u8]) -> (ethernet::Repr, ipv4::Repr, &[u8]) {
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    let eth_repr = ethernet::Repr::parse(&eth).unwrap();
    assert_eq!(eth_repr.ethertype, ethernet::ETHERTYPE_IPV4);
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    let ip_repr = ipv4::Repr::parse(&ip).unwrap();
    (eth_repr, ip_repr, ip.payload())
}

/// Builds a frame from Reprs: Ethernet header, IPv4 header, then the
/// payload written by `payload` into exactly `ip.payload_len` bytes.
pub fn build_frame(
    eth: &ethernet::Repr,
    ip: &ipv4::Repr,
    payload: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    eth.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
    let ip_buf = &mut buf[eth.buffer_len()..];
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut ip_buf[..]));
    payload(&mut ip_buf[ip.buffer_len()..]);
    buf
}
