//! Ethernet, IPv4 and UDP against bytes captured from the Linux kernel.
//!
//! Captured with `tests/captures/udpq.sh`: a Python UDP socket in network
//! namespace `wcap-a` sends to 239.7.7.7:5001 over a veth whose transmit
//! checksum offload is off (`ethtool -K wcap-va tx off`), so the kernel
//! writes the real UDP checksum; the second datagram is sent with
//! `SO_NO_CHECK` (checksum 0). `tcpdump -w` on the peer end in `wcap-b`.

mod common;
use common::{build_frame, hex, parse_frame};
use mcr_wire::{checksum, ethernet, ipv4, udp, Error, MacAddr};
use std::net::Ipv4Addr;

/// 10.77.0.1:4000 -> 239.7.7.7:5001, TTL 4, DF, id 36964, payload
/// "mcr-wire udp checksum", UDP checksum 0xc13f (kernel-computed).
const UDP_CHECKSUM: &str = "01005e070707fa092cc59e23080045000031906440000411e5fb0a4d0001ef0707070fa01389001dc13f6d63722d776972652075647020636865636b73756d";
/// Same socket after SO_NO_CHECK: id 36965, payload "no checksum", UDP
/// checksum 0.
const UDP_NO_CHECKSUM: &str = "01005e070707fa092cc59e23080045000027906540000411e6040a4d0001ef0707070fa01389001300006e6f20636865636b73756d";

const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);

fn check(vector: &str, ident: u16, payload: &[u8], udp_checksum: u16) {
    let frame = hex(vector);
    let (eth, ip, ip_payload) = parse_frame(&frame);
    assert_eq!(
        eth,
        ethernet::Repr {
            dst_addr: MacAddr([0x01, 0x00, 0x5e, 0x07, 0x07, 0x07]),
            src_addr: MacAddr([0xfa, 0x09, 0x2c, 0xc5, 0x9e, 0x23]),
            ethertype: ethernet::ETHERTYPE_IPV4,
        }
    );
    assert_eq!(eth.dst_addr, MacAddr::from_ipv4_multicast(GROUP));
    assert_eq!(
        ip,
        ipv4::Repr {
            src_addr: SRC,
            dst_addr: GROUP,
            protocol: ipv4::PROTO_UDP,
            ttl: 4,
            tos: 0,
            ident,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            router_alert: false,
            payload_len: 8 + payload.len(),
        }
    );
    let u = udp::Packet::new_checked(ip_payload).unwrap();
    assert_eq!(u.checksum(), udp_checksum);
    assert!(u.verify_checksum(SRC, GROUP));
    let repr = udp::Repr::parse(&u, Some((SRC, GROUP))).unwrap();
    assert_eq!(
        repr,
        udp::Repr {
            src_port: 4000,
            dst_port: 5001,
            payload_len: payload.len()
        }
    );
    assert_eq!(u.payload(), payload);

    // Emit: the same bytes.
    let addrs = (udp_checksum != 0).then_some((SRC, GROUP));
    let built = build_frame(&eth, &ip, |b| {
        b[8..].copy_from_slice(payload);
        repr.emit(&mut udp::Packet::new_unchecked(b), addrs);
    });
    assert_eq!(built, frame);
}

#[test]
fn kernel_udp_with_checksum() {
    check(UDP_CHECKSUM, 36964, b"mcr-wire udp checksum", 0xc13f);
}

#[test]
fn kernel_udp_without_checksum() {
    check(UDP_NO_CHECKSUM, 36965, b"no checksum", 0);
}

#[test]
fn bad_checksums_rejected() {
    let mut frame = hex(UDP_CHECKSUM);
    frame[14 + 10] ^= 0x01; // IPv4 header checksum
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(ipv4::Repr::parse(&ip).unwrap_err(), Error::Checksum);

    let mut frame = hex(UDP_CHECKSUM);
    let last = frame.len() - 1;
    frame[last] ^= 0x01; // a payload byte
    let u = udp::Packet::new_checked(&frame[34..]).unwrap();
    assert_eq!(
        udp::Repr::parse(&u, Some((SRC, GROUP))).unwrap_err(),
        Error::Checksum
    );
    // Without addresses the checksum is not checked.
    assert!(udp::Repr::parse(&u, None).is_ok());
}

#[test]
fn short_and_wrong_lengths_rejected() {
    let frame = hex(UDP_CHECKSUM);
    assert_eq!(
        ethernet::Frame::new_checked(&frame[..13]).unwrap_err(),
        Error::Truncated
    );
    let ip = &frame[14..];
    assert_eq!(
        ipv4::Packet::new_checked(&ip[..19]).unwrap_err(),
        Error::Truncated
    );
    // Total length 49 past a 48-byte buffer.
    assert_eq!(
        ipv4::Packet::new_checked(&ip[..48]).unwrap_err(),
        Error::Truncated
    );
    let mut bad = ip.to_vec();
    bad[0] = 0x65;
    assert_eq!(
        ipv4::Packet::new_checked(&bad[..]).unwrap_err(),
        Error::BadVersion
    );
    bad[0] = 0x44;
    assert_eq!(
        ipv4::Packet::new_checked(&bad[..]).unwrap_err(),
        Error::BadHeaderLen
    );
    bad[0] = 0x45;
    bad[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(
        ipv4::Packet::new_checked(&bad[..]).unwrap_err(),
        Error::BadLength
    );
    // Padding past the total length is outside the payload.
    let mut padded = ip.to_vec();
    padded.extend_from_slice(&[0xee; 10]);
    assert_eq!(
        ipv4::Packet::new_checked(&padded[..])
            .unwrap()
            .payload()
            .len(),
        29
    );

    let u = &ip[20..];
    assert_eq!(
        udp::Packet::new_checked(&u[..7]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        udp::Packet::new_checked(&u[..28]).unwrap_err(),
        Error::Truncated
    );
    let mut bad = u.to_vec();
    bad[4..6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(
        udp::Packet::new_checked(&bad[..]).unwrap_err(),
        Error::BadLength
    );
}

#[test]
fn fragment_flags() {
    let frame = hex(UDP_CHECKSUM);
    let mut ip = frame[14..].to_vec();
    ip[6..8].copy_from_slice(&0x2000u16.to_be_bytes()); // MF
    let p = ipv4::Packet::new_checked(&ip[..]).unwrap();
    assert!(p.is_fragment() && p.more_frags() && !p.dont_frag());
    ip[6..8].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 16 units
    let p = ipv4::Packet::new_checked(&ip[..]).unwrap();
    assert!(p.is_fragment());
    assert_eq!(p.frag_offset(), 128);
}

#[test]
fn router_alert_and_malformed_options() {
    // The IGMPv2 report of the igmp tests: IHL 6 with Router Alert.
    let frame = common::hex("01005e02020266534cc8fa34080046c00020000040000102e8c50a4d0001ef020202940400001600f8faef020202");
    let p = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!(p.options(), &ipv4::ROUTER_ALERT);
    assert_eq!(p.router_alert(), Ok(true));
    let mut bad = frame[14..].to_vec();
    bad[21] = 9; // option length past the header
    bad[10..12].fill(0);
    let c = checksum::checksum(&bad[..24]);
    bad[10..12].copy_from_slice(&c.to_be_bytes());
    let p = ipv4::Packet::new_checked(&bad[..]).unwrap();
    assert_eq!(ipv4::Repr::parse(&p).unwrap_err(), Error::BadOption);
}
