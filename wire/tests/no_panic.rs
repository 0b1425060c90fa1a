//! Property tests: for every format, arbitrary bytes never panic
//! `new_checked` + `Repr::parse` (nor the view's getters), and a Repr that
//! parses re-emits to bytes that parse to the same Repr.

use mcr_wire::{ethernet, igmp, ipv4, pim, udp};
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Bytes that start like a valid message of `ty`, so the body parsers are
/// reached more often than with uniform noise (the checksum is fixed up by
/// the caller when `fix` is set).
fn seeded(first: u8, max: usize) -> impl Strategy<Value = Vec<u8>> {
    bytes(max).prop_map(move |mut v| {
        if let Some(b) = v.first_mut() {
            *b = first;
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn ethernet_never_panics(data in bytes(40)) {
        if let Ok(f) = ethernet::Frame::new_checked(&data[..]) {
            let r = ethernet::Repr::parse(&f).unwrap();
            let _ = (f.payload(), f.src_addr(), f.dst_addr(), f.ethertype());
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut ethernet::Frame::new_unchecked(&mut out[..]));
            prop_assert_eq!(ethernet::Repr::parse(&ethernet::Frame::new_checked(&out[..]).unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn ipv4_never_panics(mut data in bytes(80), fix in any::<bool>()) {
        if fix && data.len() >= 20 {
            data[0] = 0x40 | (data[0] & 0x0f);
            let hl = usize::from(data[0] & 0x0f) * 4;
            if hl >= 20 && hl <= data.len() {
                data[10..12].fill(0);
                let c = mcr_wire::checksum::checksum(&data[..hl]);
                data[10..12].copy_from_slice(&c.to_be_bytes());
            }
        }
        if let Ok(p) = ipv4::Packet::new_checked(&data[..]) {
            let _ = (p.payload(), p.options(), p.router_alert(), p.is_fragment(), p.frag_offset(), p.src_addr());
            if let Ok(r) = ipv4::Repr::parse(&p) {
                prop_assert_eq!(p.payload().len(), r.payload_len);
                let mut out = vec![0u8; r.buffer_len() + r.payload_len];
                r.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
                prop_assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
            }
        }
    }

    #[test]
    fn udp_never_panics(data in bytes(40), src in any::<u32>(), dst in any::<u32>()) {
        let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
        if let Ok(p) = udp::Packet::new_checked(&data[..]) {
            let _ = (p.payload(), p.verify_checksum(src, dst));
            if let Ok(r) = udp::Repr::parse(&p, Some((src, dst))) {
                let mut out = vec![0u8; r.buffer_len() + r.payload_len];
                out[8..].copy_from_slice(p.payload());
                r.emit(&mut udp::Packet::new_unchecked(&mut out[..]), Some((src, dst)));
                prop_assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&out[..]).unwrap(), Some((src, dst))).unwrap(), r);
            }
        }
    }

    #[test]
    fn igmp_never_panics(
        mut data in prop_oneof![bytes(64), seeded(0x11, 64), seeded(0x22, 96)],
        fix in any::<bool>(),
    ) {
        if fix && data.len() >= 4 {
            igmp::Packet::new_unchecked(&mut data[..]).fill_checksum();
        }
        if let Ok(p) = igmp::Packet::new_checked(&data[..]) {
            let _ = (p.s_flag(), p.qrv(), p.qqic(), p.query_sources().count(), p.records().count());
            for r in p.records().flatten() {
                let _ = (r.sources().count(), r.aux_data(), r.group_addr());
            }
            if let Ok(r) = igmp::Repr::parse(&p) {
                let _ = (r.max_resp_time(), r.query_interval());
                let mut out = vec![0u8; r.buffer_len()];
                r.emit(&mut igmp::Packet::new_unchecked(&mut out[..]));
                prop_assert_eq!(igmp::Repr::parse(&igmp::Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
            }
        }
    }

    #[test]
    fn pim_never_panics(
        mut data in prop_oneof![bytes(64), seeded(0x20, 96), seeded(0x21, 32), seeded(0x22, 32), seeded(0x23, 96), seeded(0x25, 40)],
        fix in any::<bool>(),
    ) {
        if fix && data.len() >= 4 {
            pim::Packet::new_unchecked(&mut data[..]).fill_checksum();
        }
        if let Ok(p) = pim::Packet::new_checked(&data[..]) {
            let _ = (p.body(), p.verify_checksum());
            if let Ok(r) = pim::Repr::parse(&p) {
                let mut out = vec![0u8; r.buffer_len()];
                r.emit(&mut pim::Packet::new_unchecked(&mut out[..]));
                prop_assert_eq!(pim::Repr::parse(&pim::Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
            }
        }
    }
}
