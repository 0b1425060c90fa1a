//! MSDP TLVs (RFC 3618 section 12) and the stream framer.
//!
//! The fixed bytes below are HAND-BUILT from RFC 3618 section 12's layout
//! (no FRR capture was available when these were written): each vector is
//! written out field by field with the RFC field it fills. Replace or add
//! FRR `msdpd` captures when they exist.

use mcr_wire::msdp::{self, FrameError, Packet, Repr, SaEntry, TlvFramer};
use mcr_wire::Error;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const RP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const G2: Ipv4Addr = Ipv4Addr::new(239, 2, 2, 2);
const S2: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 20);

/// Hand-built (RFC 3618 12.2.1): an SA from RP 10.0.0.1 with two entries.
#[rustfmt::skip]
const SA_TWO: [u8; 32] = [
    0x01,             // Type 1, Source-Active
    0x00, 0x20,       // Length 32 = 8 + 2 * 12
    0x02,             // Entry Count 2
    10, 0, 0, 1,      // RP Address
    0x00, 0x00, 0x00, // Reserved
    32,               // Sprefix Len
    239, 1, 1, 1,     // Group Address
    192, 168, 1, 10,  // Source Address
    0x00, 0x00, 0x00, // Reserved
    32,               // Sprefix Len
    239, 2, 2, 2,     // Group Address
    192, 168, 2, 20,  // Source Address
];

/// Hand-built (RFC 3618 12.2.1): an SA with one entry and 4 bytes of
/// encapsulated data.
#[rustfmt::skip]
const SA_DATA: [u8; 24] = [
    0x01, 0x00, 0x18, // Type 1, Length 24 = 8 + 12 + 4
    0x01,             // Entry Count 1
    10, 0, 0, 1,      // RP Address
    0, 0, 0, 32,      // Reserved, Sprefix Len 32
    239, 1, 1, 1,     // Group
    192, 168, 1, 10,  // Source
    0x45, 0x00, 0x00, 0x1c, // encapsulated data (start of an IPv4 header)
];

/// Hand-built (RFC 3618 12.2.2): KeepAlive.
const KEEPALIVE: [u8; 3] = [0x04, 0x00, 0x03];

/// Hand-built: a TLV of reserved type 9 with 2 value bytes.
const UNKNOWN: [u8; 5] = [0x09, 0x00, 0x05, 0xaa, 0xbb];

#[test]
fn sa_two_entries_fields() {
    let p = Packet::new_checked(&SA_TWO[..]).unwrap();
    assert_eq!(p.tlv_type(), msdp::TYPE_SOURCE_ACTIVE);
    assert_eq!(p.length(), 32);
    assert_eq!(p.entry_count(), 2);
    assert_eq!(p.rp_address(), RP);
    assert_eq!(p.entry_reserved(0), [0, 0, 0]);
    assert_eq!(p.entry_sprefix_len(0), 32);
    assert_eq!(p.entry_group(0), G1);
    assert_eq!(p.entry_source(0), S1);
    assert_eq!(p.entry_reserved(1), [0, 0, 0]);
    assert_eq!(p.entry_sprefix_len(1), 32);
    assert_eq!(p.entry_group(1), G2);
    assert_eq!(p.entry_source(1), S2);
    assert!(p.encapsulated_data().is_empty());
    let r = Repr::parse(&p).unwrap();
    assert_eq!(
        r,
        Repr::SourceActive {
            rp: RP,
            entries: vec![
                SaEntry {
                    group: G1,
                    source: S1
                },
                SaEntry {
                    group: G2,
                    source: S2
                }
            ],
            data: vec![],
        }
    );
    assert_eq!(r.buffer_len(), 32);
    assert_eq!(r.to_bytes(), SA_TWO);
}

#[test]
fn sa_with_encapsulated_data() {
    let p = Packet::new_checked(&SA_DATA[..]).unwrap();
    assert_eq!(p.length(), 24);
    assert_eq!(p.entry_count(), 1);
    assert_eq!(p.rp_address(), RP);
    assert_eq!(p.entry_group(0), G1);
    assert_eq!(p.entry_source(0), S1);
    assert_eq!(p.encapsulated_data(), &[0x45, 0x00, 0x00, 0x1c]);
    let r = Repr::parse(&p).unwrap();
    match &r {
        Repr::SourceActive { data, entries, .. } => {
            assert_eq!(data, &[0x45, 0x00, 0x00, 0x1c]);
            assert_eq!(entries.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.to_bytes(), SA_DATA);
}

#[test]
fn keepalive_fields_and_emit() {
    let p = Packet::new_checked(&KEEPALIVE[..]).unwrap();
    assert_eq!(p.tlv_type(), msdp::TYPE_KEEPALIVE);
    assert_eq!(p.length(), 3);
    assert!(p.value().is_empty());
    assert_eq!(Repr::parse(&p).unwrap(), Repr::KeepAlive);
    assert_eq!(Repr::KeepAlive.to_bytes(), KEEPALIVE);
}

#[test]
fn unknown_kept_raw() {
    let p = Packet::new_checked(&UNKNOWN[..]).unwrap();
    let r = Repr::parse(&p).unwrap();
    assert_eq!(
        r,
        Repr::Unknown {
            tlv_type: 9,
            value: vec![0xaa, 0xbb]
        }
    );
    assert_eq!(r.to_bytes(), UNKNOWN);
}

#[test]
fn view_errors_distinct() {
    assert_eq!(
        Packet::new_checked(&[1u8, 0][..]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        Packet::new_checked(&[1u8, 0, 2][..]).unwrap_err(),
        Error::BadLength
    );
    assert_eq!(
        Packet::new_checked(&[1u8, 0x23, 0xe9][..]).unwrap_err(),
        Error::BadLength
    );
    assert_eq!(
        Packet::new_checked(&SA_TWO[..31]).unwrap_err(),
        Error::Truncated
    );
    let mut bad = SA_TWO;
    bad[3] = 3; // three entries announced, two present
    assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::BadCount);
    assert_eq!(
        Packet::new_checked(&[4u8, 0, 4, 0][..]).unwrap_err(),
        Error::BadLength
    );
    let mut mask = SA_TWO;
    mask[11] = 24;
    assert_eq!(
        Repr::parse(&Packet::new_checked(&mask[..]).unwrap()).unwrap_err(),
        Error::BadMask
    );
}

fn frame_all(chunks: &[&[u8]]) -> (Vec<Repr>, Result<(), FrameError>, TlvFramer) {
    let mut f = TlvFramer::new();
    let mut out = Vec::new();
    let mut res = Ok(());
    for c in chunks {
        res = f.feed(c, &mut out);
        if res.is_err() {
            break;
        }
    }
    (out, res, f)
}

#[test]
fn framer_split_across_reads() {
    // Split inside the header, inside an entry, and at the boundary.
    for cut in 1..SA_TWO.len() {
        let (out, res, f) = frame_all(&[&SA_TWO[..cut], &SA_TWO[cut..]]);
        assert_eq!(res, Ok(()));
        assert_eq!(out.len(), 1, "cut at {cut}");
        assert_eq!(out[0].to_bytes(), SA_TWO);
        assert_eq!(f.buffered(), 0);
    }
    // One byte per read.
    let singles: Vec<&[u8]> = SA_DATA.chunks(1).collect();
    let (out, res, _) = frame_all(&singles);
    assert_eq!(res, Ok(()));
    assert_eq!(out[0].to_bytes(), SA_DATA);
}

#[test]
fn framer_several_in_one_read_and_unknown_skipped() {
    let mut all = Vec::new();
    all.extend_from_slice(&KEEPALIVE);
    all.extend_from_slice(&UNKNOWN);
    all.extend_from_slice(&SA_TWO);
    all.extend_from_slice(&KEEPALIVE);
    all.extend_from_slice(&SA_DATA[..10]); // half a TLV, then silence
    let (out, res, f) = frame_all(&[&all]);
    assert_eq!(res, Ok(()));
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], Repr::KeepAlive);
    assert_eq!(out[1].to_bytes(), SA_TWO);
    assert_eq!(out[2], Repr::KeepAlive);
    assert_eq!(f.skipped(), 1);
    assert_eq!(f.framed(), 3);
    assert_eq!(f.buffered(), 10);
}

#[test]
fn framer_length_zero() {
    let (out, res, f) = frame_all(&[&[0x01, 0x00, 0x00, 0xff]]);
    assert!(out.is_empty());
    let e = FrameError::LengthBelowHeader {
        tlv_type: 1,
        length: 0,
    };
    assert_eq!(res, Err(e));
    assert_eq!(f.error(), Some(e));
    assert_eq!(f.buffered(), 0);
}

#[test]
fn framer_length_65535_rejected_before_buffering() {
    let mut f = TlvFramer::new();
    let mut out = Vec::new();
    let e = FrameError::LengthAboveMax {
        tlv_type: 1,
        length: 65535,
    };
    assert_eq!(f.feed(&[0x01, 0xff, 0xff], &mut out), Err(e));
    assert_eq!(f.buffered(), 0);
    // Sticky: the stream is out of sync.
    assert_eq!(f.feed(&KEEPALIVE, &mut out), Err(e));
    assert!(out.is_empty());
    // 9193 is the first length refused; 9192 is accepted.
    let (_, res, _) = frame_all(&[&[0x09, 0x23, 0xe9]]);
    assert_eq!(
        res,
        Err(FrameError::LengthAboveMax {
            tlv_type: 9,
            length: 9193
        })
    );
    let mut max = vec![0u8; 9192];
    max[0] = 9;
    max[1] = 0x23;
    max[2] = 0xe8;
    let (_, res, f) = frame_all(&[&max]);
    assert_eq!(res, Ok(()));
    assert_eq!(f.skipped(), 1);
}

#[test]
fn framer_bad_entry_count() {
    let mut bad = SA_TWO;
    bad[3] = 3;
    let (_, res, _) = frame_all(&[&bad]);
    assert_eq!(
        res,
        Err(FrameError::BadEntryCount {
            count: 3,
            length: 32
        })
    );
    let (_, res, _) = frame_all(&[&[0x01, 0x00, 0x05, 0, 0]]);
    assert_eq!(
        res,
        Err(FrameError::BadEntryCount {
            count: 0,
            length: 5
        })
    );
}

#[test]
fn framer_bad_keepalive_and_sprefix() {
    let (_, res, _) = frame_all(&[&[0x04, 0x00, 0x04, 0]]);
    assert_eq!(res, Err(FrameError::BadKeepAliveLength { length: 4 }));
    let mut mask = SA_TWO;
    mask[11] = 24;
    let (out, res, _) = frame_all(&[&KEEPALIVE, &mask]);
    assert_eq!(out, vec![Repr::KeepAlive]);
    assert_eq!(res, Err(FrameError::BadSprefixLen));
}

#[test]
fn errors_are_distinct() {
    let all = [
        FrameError::LengthBelowHeader {
            tlv_type: 1,
            length: 0,
        },
        FrameError::LengthAboveMax {
            tlv_type: 1,
            length: 65535,
        },
        FrameError::BadEntryCount {
            count: 3,
            length: 32,
        },
        FrameError::BadKeepAliveLength { length: 4 },
        FrameError::BadSprefixLen,
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(std::mem::discriminant(a), std::mem::discriminant(b));
            assert_ne!(a.to_string(), b.to_string());
        }
    }
}

fn arb_repr() -> impl Strategy<Value = Repr> {
    let addr = any::<u32>().prop_map(Ipv4Addr::from);
    let entry = (addr.clone(), addr.clone()).prop_map(|(group, source)| SaEntry { group, source });
    prop_oneof![
        Just(Repr::KeepAlive),
        (
            addr,
            prop::collection::vec(entry, 0..40),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(rp, entries, data)| Repr::SourceActive { rp, entries, data }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_random_chunks_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..20000),
        sizes in prop::collection::vec(1usize..600, 1..64),
    ) {
        let mut f = TlvFramer::new();
        let mut out = Vec::new();
        let mut rest = &data[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            let _ = f.feed(&rest[..n], &mut out);
            prop_assert!(f.buffered() <= msdp::MAX_TLV_LEN);
            rest = &rest[n..];
            i += 1;
        }
        if let Ok(p) = Packet::new_checked(&data[..]) {
            if let Ok(r) = Repr::parse(&p) {
                let _ = r.to_bytes();
            }
        }
    }

    #[test]
    fn reframing_emitted_tlvs_gives_them_back(
        reprs in prop::collection::vec(arb_repr(), 0..30),
        sizes in prop::collection::vec(1usize..300, 1..16),
    ) {
        let stream: Vec<u8> = reprs.iter().flat_map(|r| r.to_bytes()).collect();
        let mut f = TlvFramer::new();
        let mut out = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            prop_assert_eq!(f.feed(&rest[..n], &mut out), Ok(()));
            rest = &rest[n..];
            i += 1;
        }
        prop_assert_eq!(out, reprs);
        prop_assert_eq!(f.buffered(), 0);
    }
}
