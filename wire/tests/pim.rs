//! PIMv2 against bytes captured from FRR.
//!
//! Captured with `tests/captures/pim.sh`: FRR 8.4.4 (`zebra` + `pimd` run
//! with `-N` inside namespaces) in `wcap-p1` (DR for host 10.78.1.1 on
//! wcap-p1a; 10.78.2.1 on the link to p2) and `wcap-p2` (10.78.2.2, the
//! static RP), `tcpdump -w` on p2's link. The host joining 239.5.5.5 makes
//! p1 send a (*,G) Join toward the RP, and its leave the Prune; the host
//! sending to 239.6.6.6 makes p1 Register the packet to the RP, which has
//! no receivers and answers Register-Stop. The Assert vector is built by
//! hand from RFC 7761 4.9.6 (the topology has no LAN with two forwarders).

mod common;
use common::{build_frame, hex, parse_frame};
use mcr_wire::pim::{self, EncodedGroup, EncodedSource, HelloOption, JoinPruneGroup, Repr};
use mcr_wire::{ethernet, ipv4, Error, MacAddr};
use std::net::{IpAddr, Ipv4Addr};

const P1_MAC: MacAddr = MacAddr([0x22, 0xf9, 0xcd, 0x25, 0x2c, 0xd3]);
const P2_MAC: MacAddr = MacAddr([0xb6, 0x72, 0x68, 0x45, 0xfd, 0x99]);
const P1: Ipv4Addr = Ipv4Addr::new(10, 78, 2, 1);
const P2: Ipv4Addr = Ipv4Addr::new(10, 78, 2, 2);
const P1_HOST_SIDE: Ipv4Addr = Ipv4Addr::new(10, 78, 1, 2);

/// p1's Hello on wcap-p1b: Holdtime 105 s, LAN Prune Delay 500 ms / 2500 ms,
/// DR Priority 1, Generation ID 0x12811468, Address List with p1's IPv6
/// link-local address (family 2).
const HELLO: &str = "01005e00000d22f9cd252cd3080045c0004c000700000167cc280a4e0201e000000d2000921f0001000200690002000401f409c400130004000000010014000412811468001800120200fe8000000000000020f9cdfffe252cd3";
/// p1's (*,239.5.5.5) Join toward the RP 10.78.2.2: upstream 10.78.2.2,
/// holdtime 210 s, one group, one joined source 10.78.2.2/32 with S, W, R.
const JOIN: &str = "01005e00000d22f9cd252cd3080045c00036000800000167cc3d0a4e0201e000000d2300c54001000a4e0202000100d201000020ef05050500010000010007200a4e0202";
/// p1's (*,239.5.5.5) Prune after the host left.
const PRUNE: &str = "01005e00000d22f9cd252cd3080045c00036000a00000167cc3b0a4e0201e000000d2300c54001000a4e0202000100d201000020ef05050500000001010007200a4e0202";
/// p1 (10.78.1.2) Registers the host's first UDP datagram to 239.6.6.6
/// with the RP. Checksum over the first 8 bytes only.
const REGISTER: &str = "b6726845fd9922f9cd252cd3080045c0004a00090000406761e50a4e01020a4e02022100deff000000004500002eb1a040000811c0c30a4e0101ef06060695251388001a00876d63722d7769726520636170747572652030";
/// The RP's Register-Stop for (10.78.1.1, 239.6.6.6).
const REGISTER_STOP: &str = "22f9cd252cd3b6726845fd99080045c00026000500004067620d0a4e02020a4e01022200db8301000020ef06060601000a4e0101";

/// Checks the captured frame parses to `expected` (IPv4 as FRR writes it:
/// TOS 0xc0, no DF, no Router Alert) and re-emits byte for byte.
fn check(
    vector: &str,
    eth: ethernet::Repr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    ident: u16,
    expected: &Repr,
) -> Vec<u8> {
    let frame = hex(vector);
    let (eth_repr, ip, payload) = parse_frame(&frame);
    assert_eq!(eth_repr, eth);
    assert_eq!(
        ip,
        ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ipv4::PROTO_PIM,
            ttl,
            tos: 0xc0,
            ident,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            router_alert: false,
            payload_len: expected.buffer_len(),
        }
    );
    let packet = pim::Packet::new_checked(payload).unwrap();
    assert_eq!(packet.version(), 2);
    assert!(packet.verify_checksum());
    let repr = Repr::parse(&packet).unwrap();
    assert_eq!(&repr, expected);
    let built = build_frame(&eth_repr, &ip, |b| {
        repr.emit(&mut pim::Packet::new_unchecked(b))
    });
    assert_eq!(built, frame, "emit differs from the captured bytes");
    payload.to_vec()
}

fn multicast_eth(src: MacAddr) -> ethernet::Repr {
    ethernet::Repr {
        src_addr: src,
        dst_addr: MacAddr::from_ipv4_multicast(pim::ALL_PIM_ROUTERS),
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
}

#[test]
fn frr_hello() {
    let expected = Repr::Hello {
        options: vec![
            HelloOption::Holdtime(105),
            HelloOption::LanPruneDelay {
                t_bit: false,
                propagation_delay: 500,
                override_interval: 2500,
            },
            HelloOption::DrPriority(1),
            HelloOption::GenerationId(0x1281_1468),
            HelloOption::AddressList(vec![IpAddr::V6(
                "fe80::20f9:cdff:fe25:2cd3".parse().unwrap(),
            )]),
        ],
    };
    let p = check(
        HELLO,
        multicast_eth(P1_MAC),
        P1,
        pim::ALL_PIM_ROUTERS,
        1,
        7,
        &expected,
    );
    let v = pim::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(
        (v.msg_type(), v.reserved(), v.checksum()),
        (pim::TYPE_HELLO, 0, 0x921f)
    );
}

fn star_g(join: bool) -> Repr {
    let rp = EncodedSource {
        addr: P2,
        mask_len: 32,
        sparse: true,
        wildcard: true,
        rpt: true,
    };
    Repr::JoinPrune {
        upstream_neighbor: P2,
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::host(Ipv4Addr::new(239, 5, 5, 5)),
            joins: if join { vec![rp] } else { vec![] },
            prunes: if join { vec![] } else { vec![rp] },
        }],
    }
}

#[test]
fn frr_join_and_prune() {
    let p = check(
        JOIN,
        multicast_eth(P1_MAC),
        P1,
        pim::ALL_PIM_ROUTERS,
        1,
        8,
        &star_g(true),
    );
    assert_eq!(pim::Packet::new_checked(&p[..]).unwrap().checksum(), 0xc540);
    check(
        PRUNE,
        multicast_eth(P1_MAC),
        P1,
        pim::ALL_PIM_ROUTERS,
        1,
        10,
        &star_g(false),
    );
}

#[test]
fn frr_register() {
    let frame = hex(REGISTER);
    let inner = frame[14 + 20 + 8..].to_vec();
    let expected = Repr::Register {
        border: false,
        null_register: false,
        packet: inner.clone(),
    };
    let eth = ethernet::Repr {
        src_addr: P1_MAC,
        dst_addr: P2_MAC,
        ethertype: ethernet::ETHERTYPE_IPV4,
    };
    let p = check(REGISTER, eth, P1_HOST_SIDE, P2, 64, 9, &expected);
    // The checksum covers the first 8 bytes only: changing the inner
    // packet keeps it valid.
    let mut changed = p.clone();
    *changed.last_mut().unwrap() ^= 0xff;
    assert!(Repr::parse(&pim::Packet::new_checked(&changed[..]).unwrap()).is_ok());
    // The inner packet is the host's UDP datagram.
    let ip = ipv4::Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(ip.src_addr(), Ipv4Addr::new(10, 78, 1, 1));
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(239, 6, 6, 6));
    assert_eq!(ip.protocol(), ipv4::PROTO_UDP);
}

#[test]
fn frr_register_stop() {
    let expected = Repr::RegisterStop {
        group: EncodedGroup::host(Ipv4Addr::new(239, 6, 6, 6)),
        source: Ipv4Addr::new(10, 78, 1, 1),
    };
    let eth = ethernet::Repr {
        src_addr: P2_MAC,
        dst_addr: P1_MAC,
        ethertype: ethernet::ETHERTYPE_IPV4,
    };
    check(REGISTER_STOP, eth, P2, P1_HOST_SIDE, 64, 5, &expected);
}

#[test]
fn assert_built_by_hand() {
    // RFC 7761 4.9.6 layout, hand-built (no capture): header 0x25, group
    // 239.5.5.5/32, source 10.78.1.1, R bit + preference 110, metric 20.
    let bytes = hex("2500 0000 0100 0020 ef050505 0100 0a4e0101 8000006e 00000014");
    let mut bytes = bytes;
    pim::Packet::new_unchecked(&mut bytes[..]).fill_checksum();
    let repr = Repr::parse(&pim::Packet::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(
        repr,
        Repr::Assert {
            group: EncodedGroup::host(Ipv4Addr::new(239, 5, 5, 5)),
            source: Ipv4Addr::new(10, 78, 1, 1),
            rpt: true,
            metric_preference: 110,
            metric: 20,
        }
    );
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut pim::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, bytes);
}

#[test]
fn unknown_hello_options_kept() {
    let repr = Repr::Hello {
        options: vec![
            HelloOption::Holdtime(0xffff),
            HelloOption::Unknown {
                kind: 65001,
                value: vec![0, 0, 0, 1],
            },
            HelloOption::AddressList(vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))]),
        ],
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut pim::Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        Repr::parse(&pim::Packet::new_checked(&out[..]).unwrap()).unwrap(),
        repr
    );
}

fn pim_of(vector: &str) -> Vec<u8> {
    hex(vector)[34..].to_vec()
}

fn reparse(mut b: Vec<u8>) -> Result<Repr, Error> {
    pim::Packet::new_unchecked(&mut b[..]).fill_checksum();
    Repr::parse(&pim::Packet::new_checked(&b[..])?)
}

#[test]
fn rejections_are_distinct() {
    // Bad checksum.
    let mut bad = pim_of(JOIN);
    bad[3] ^= 1;
    assert_eq!(
        Repr::parse(&pim::Packet::new_checked(&bad[..]).unwrap()).unwrap_err(),
        Error::Checksum
    );
    // Short buffer.
    assert_eq!(
        pim::Packet::new_checked(&pim_of(JOIN)[..3]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        reparse(pim_of(REGISTER_STOP)[..15].to_vec()).unwrap_err(),
        Error::Truncated
    );
    // Wrong length: a Holdtime option of 3 bytes.
    let mut bad = pim_of(HELLO);
    bad[7] = 3;
    assert_eq!(reparse(bad).unwrap_err(), Error::BadLength);
    // Over-long source count.
    let mut bad = pim_of(JOIN);
    bad[23] = 2; // two joined sources, one present
    assert_eq!(reparse(bad).unwrap_err(), Error::BadCount);
    let mut bad = pim_of(JOIN);
    bad[11] = 2; // two groups, one present
    assert_eq!(reparse(bad).unwrap_err(), Error::BadCount);
    // Version.
    let mut bad = pim_of(JOIN);
    bad[0] = 0x13;
    assert_eq!(reparse(bad).unwrap_err(), Error::BadVersion);
    // Type.
    let mut bad = pim_of(JOIN);
    bad[0] = 0x24; // Bootstrap: not handled here
    assert_eq!(reparse(bad).unwrap_err(), Error::Unrecognized);
    // Encoded addresses: family, encoding, mask.
    let mut bad = pim_of(JOIN);
    bad[4] = 2; // upstream neighbor family IPv6 where IPv4 is required
    assert_eq!(reparse(bad).unwrap_err(), Error::BadFamily);
    let mut bad = pim_of(JOIN);
    bad[15] = 1; // group encoding type
    assert_eq!(reparse(bad).unwrap_err(), Error::BadEncoding);
    let mut bad = pim_of(JOIN);
    bad[17] = 33; // group mask length
    assert_eq!(reparse(bad).unwrap_err(), Error::BadMask);
    let mut bad = pim_of(JOIN);
    bad[29] = 40; // source mask length
    assert_eq!(reparse(bad).unwrap_err(), Error::BadMask);
}
