//! IGMP against bytes captured from real senders.
//!
//! Linux kernel vectors: `tests/captures/igmp.sh`. Host namespace `wcap-a`
//! (10.77.0.1, MAC 66:53:4c:c8:fa:34) joins and leaves groups with Python
//! `IP_ADD_MEMBERSHIP` / `IP_ADD_SOURCE_MEMBERSHIP` / `IP_DROP_*` under
//! `net.ipv4.conf.wcap-va.force_igmp_version` 1, 2 and 3; namespace `wcap-b`
//! holds a Linux bridge (10.77.0.2, MAC 3e:36:41:b1:db:0d) that is the
//! querier (`mcast_querier 1`, `mcast_igmp_version` 3 then 2) and answers
//! leaves with group(-and-source)-specific queries; `tcpdump -w` on the
//! bridge port. The exponential-code query is from `tests/captures/udpq.sh`
//! (bridge query interval 200 s, response interval 20 s). The FRR query is
//! from `tests/captures/pim.sh` (FRR 8.4.4 pimd with `ip igmp` on
//! 10.78.1.2). The IGMPv1 query is built by hand from RFC 2236's layout:
//! neither Linux nor FRR sends one.

mod common;
use common::{build_frame, hex, parse_frame};
use mcr_wire::igmp::{self, GroupRecordRepr, RecordType, Repr};
use mcr_wire::{ethernet, ipv4, Error, MacAddr};
use std::net::Ipv4Addr;
use std::time::Duration;

const HOST_MAC: MacAddr = MacAddr([0x66, 0x53, 0x4c, 0xc8, 0xfa, 0x34]);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const BRIDGE_MAC: MacAddr = MacAddr([0x3e, 0x36, 0x41, 0xb1, 0xdb, 0x0d]);
const BRIDGE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
const V3_REPORTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

/// Kernel, force_igmp_version=1, join 239.1.1.1: v1 report.
const V1_REPORT: &str =
    "01005e01010166534cc8fa34080046c00020000040000102e9c70a4d0001ef010101940400001200fdfcef010101";
/// Kernel, force_igmp_version=2, join 239.2.2.2: v2 report.
const V2_REPORT: &str =
    "01005e02020266534cc8fa34080046c00020000040000102e8c50a4d0001ef020202940400001600f8faef020202";
/// Kernel, force_igmp_version=2, drop 239.2.2.2: leave to 224.0.0.2.
const V2_LEAVE: &str =
    "01005e00000266534cc8fa34080046c00020000040000102f9c70a4d0001e0000002940400001700f7faef020202";
/// Kernel, v3, join 239.3.3.3 (any source): CHANGE_TO_EXCLUDE {}.
const V3_TO_EX: &str = "01005e00001666534cc8fa34080046c00028000040000102f9ab0a4d0001e0000016940400002200e7f70000000104000000ef030303";
/// Kernel, v3, drop 239.3.3.3: CHANGE_TO_INCLUDE {}.
const V3_TO_IN: &str = "01005e00001666534cc8fa34080046c00028000040000102f9ab0a4d0001e0000016940400002200e8f70000000103000000ef030303";
/// Kernel, v3, source join (232.4.4.4, 10.77.0.9): ALLOW_NEW_SOURCES.
const V3_ALLOW: &str = "01005e00001666534cc8fa34080046c0002c000040000102f9a70a4d0001e0000016940400002200e29e0000000105000001e80404040a4d0009";
/// Kernel, v3, source drop (232.4.4.4, 10.77.0.9): BLOCK_OLD_SOURCES.
const V3_BLOCK: &str = "01005e00001666534cc8fa34080046c0002c000040000102f9a70a4d0001e0000016940400002200e19e0000000106000001e80404040a4d0009";
/// Kernel, v3, answer to a general query: MODE_IS_INCLUDE (232.5.5.5,
/// two sources) and MODE_IS_EXCLUDE (239.3.3.5).
const V3_IS_IN_IS_EX: &str = "01005e00001666534cc8fa34080046c00038000040000102f99b0a4d0001e0000016940400002200e73e0000000201000002e80505050a4d00070a4d000802000000ef030305";
/// Kernel, v3, leave 239.3.3.5 while a block for 232.5.5.5 is pending:
/// CHANGE_TO_INCLUDE and BLOCK_OLD_SOURCES in one report.
const V3_TO_IN_BLOCK: &str = "01005e00001666534cc8fa34080046c00034000040000102f99f0a4d0001e0000016940400002200eb940000000203000000ef03030506000001e80505050a4d0007";
/// Bridge querier, v2: general query, Max Resp Time 10 (tenths: 1 s).
const V2_QUERY: &str =
    "01005e0000013e3641b1db0d080046c00020000040000102f9c70a4d0002e000000194040000110aeef500000000";
/// Bridge querier, v2: group-specific query for 239.2.2.3 after a leave.
const V2_QUERY_GROUP: &str =
    "01005e0000013e3641b1db0d080046c00020000040000102f9c70a4d0002e000000194040000110afdefef020203";
/// Bridge querier, v3: general query, Max Resp Code 10 (1 s), QRV 2,
/// QQIC 3 s.
const V3_QUERY: &str = "01005e0000013e3641b1db0d080046c00024000040000102f9c30a4d0002e000000194040000110aecf20000000002030000";
/// Bridge querier, v3: group-specific query for 239.3.3.5.
const V3_QUERY_GROUP: &str = "01005e0303053e3641b1db0d080046c00024000040000102e7bc0a4d0002ef03030594040000110afae9ef03030502030000";
/// Bridge querier, v3: group-and-source-specific query for (232.5.5.5,
/// 10.77.0.8) after a BLOCK.
const V3_QUERY_GROUP_SOURCE: &str = "01005e0505053e3641b1db0d080046c00028000040000102ecb60a4d0002e805050594040000110af591e8050505020300010a4d0008";
/// Bridge querier with 200 s / 20 s intervals: Max Resp Code and QQIC are
/// both 0xc8. The bridge writes the plain value 200 where RFC 3376 4.1.1
/// wants the exponential form (0x89), so the RFC decoding of these bytes is
/// 3072 (tenths of a second, seconds): what any RFC receiver reads.
const V3_QUERY_EXP: &str = "01005e0000015a059e12b258080046c00024000040000102f9c30a4d0002e00000019404000011c8eb6f0000000002c80000";
/// FRR 8.4.4 pimd (`ip igmp`) on 10.78.1.2: general query, Max Resp Code
/// 100 (10 s), S flag, QRV 2, QQIC 125 s, IP id 35053.
const FRR_V3_QUERY: &str = "01005e000001d2fc65382623080046c0002488ed400001026fd50a4e0102e0000001940400001164e41e000000000a7d0000";

/// Parses a captured frame, checks the IPv4 header an IGMP sender writes
/// (TOS 0xc0, TTL 1, DF, Router Alert), the IGMP Repr, then rebuilds the
/// frame from the Reprs and compares byte for byte.
fn check(
    vector: &str,
    src_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    expected: &Repr,
) -> Vec<u8> {
    let frame = hex(vector);
    let (eth, ip, payload) = parse_frame(&frame);
    assert_eq!(eth.src_addr, src_mac);
    assert_eq!(eth.dst_addr, MacAddr::from_ipv4_multicast(dst));
    assert_eq!(
        ip,
        ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ipv4::PROTO_IGMP,
            ttl: 1,
            tos: 0xc0,
            ident,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            router_alert: true,
            payload_len: expected.buffer_len(),
        }
    );
    let packet = igmp::Packet::new_checked(payload).unwrap();
    assert!(packet.verify_checksum());
    let repr = Repr::parse(&packet).unwrap();
    assert_eq!(&repr, expected);
    let built = build_frame(&eth, &ip, |b| {
        repr.emit(&mut igmp::Packet::new_unchecked(b))
    });
    assert_eq!(built, frame, "emit differs from the captured bytes");
    payload.to_vec()
}

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn kernel_v1_report() {
    let p = check(
        V1_REPORT,
        HOST_MAC,
        HOST,
        a("239.1.1.1"),
        0,
        &Repr::ReportV1 {
            group: a("239.1.1.1"),
        },
    );
    let v = igmp::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(
        (v.msg_type(), v.max_resp_code(), v.checksum()),
        (0x12, 0, 0xfdfc)
    );
}

#[test]
fn kernel_v2_report_and_leave() {
    check(
        V2_REPORT,
        HOST_MAC,
        HOST,
        a("239.2.2.2"),
        0,
        &Repr::ReportV2 {
            group: a("239.2.2.2"),
        },
    );
    let p = check(
        V2_LEAVE,
        HOST_MAC,
        HOST,
        ALL_ROUTERS,
        0,
        &Repr::LeaveV2 {
            group: a("239.2.2.2"),
        },
    );
    let v = igmp::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(
        (v.msg_type(), v.checksum(), v.group_addr()),
        (0x17, 0xf7fa, a("239.2.2.2"))
    );
}

fn record(t: RecordType, group: &str, sources: &[&str]) -> GroupRecordRepr {
    GroupRecordRepr {
        record_type: t,
        group: a(group),
        sources: sources.iter().map(|s| a(s)).collect(),
        aux_data: vec![],
    }
}

#[test]
fn kernel_v3_reports_every_record_type() {
    let cases = [
        (
            V3_TO_EX,
            vec![record(RecordType::ChangeToExclude, "239.3.3.3", &[])],
        ),
        (
            V3_TO_IN,
            vec![record(RecordType::ChangeToInclude, "239.3.3.3", &[])],
        ),
        (
            V3_ALLOW,
            vec![record(
                RecordType::AllowNewSources,
                "232.4.4.4",
                &["10.77.0.9"],
            )],
        ),
        (
            V3_BLOCK,
            vec![record(
                RecordType::BlockOldSources,
                "232.4.4.4",
                &["10.77.0.9"],
            )],
        ),
        (
            V3_IS_IN_IS_EX,
            vec![
                record(
                    RecordType::ModeIsInclude,
                    "232.5.5.5",
                    &["10.77.0.7", "10.77.0.8"],
                ),
                record(RecordType::ModeIsExclude, "239.3.3.5", &[]),
            ],
        ),
        (
            V3_TO_IN_BLOCK,
            vec![
                record(RecordType::ChangeToInclude, "239.3.3.5", &[]),
                record(RecordType::BlockOldSources, "232.5.5.5", &["10.77.0.7"]),
            ],
        ),
    ];
    for (vector, records) in cases {
        let n = records.len();
        let p = check(
            vector,
            HOST_MAC,
            HOST,
            V3_REPORTS,
            0,
            &Repr::ReportV3 { records },
        );
        let v = igmp::Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.msg_type(), igmp::TYPE_REPORT_V3);
        assert_eq!(usize::from(v.num_records()), n);
        for r in v.records() {
            let r = r.unwrap();
            assert_eq!(r.aux_data_len(), 0);
            assert_eq!(usize::from(r.num_sources()), r.sources().count());
        }
    }
}

#[test]
fn bridge_v2_queries() {
    let general = Repr::QueryV2 {
        max_resp_time: 10,
        group: Ipv4Addr::UNSPECIFIED,
    };
    check(V2_QUERY, BRIDGE_MAC, BRIDGE, ALL_SYSTEMS, 0, &general);
    assert_eq!(general.max_resp_time(), Some(Duration::from_secs(1)));
    let specific = Repr::QueryV2 {
        max_resp_time: 10,
        group: a("239.2.2.3"),
    };
    // A group-specific query goes to 224.0.0.1 from the Linux bridge.
    check(
        V2_QUERY_GROUP,
        BRIDGE_MAC,
        BRIDGE,
        ALL_SYSTEMS,
        0,
        &specific,
    );
}

fn v3_query(code: u8, group: &str, qrv: u8, qqic: u8, sources: &[&str]) -> Repr {
    Repr::QueryV3 {
        max_resp_code: code,
        group: a(group),
        s_flag: false,
        qrv,
        qqic,
        sources: sources.iter().map(|s| a(s)).collect(),
    }
}

#[test]
fn bridge_v3_queries() {
    let general = v3_query(10, "0.0.0.0", 2, 3, &[]);
    let p = check(V3_QUERY, BRIDGE_MAC, BRIDGE, ALL_SYSTEMS, 0, &general);
    assert_eq!(general.max_resp_time(), Some(Duration::from_secs(1)));
    assert_eq!(general.query_interval(), Some(Duration::from_secs(3)));
    let v = igmp::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(
        (v.s_flag(), v.qrv(), v.qqic(), v.num_sources(), v.checksum()),
        (false, 2, 3, 0, 0xecf2)
    );

    check(
        V3_QUERY_GROUP,
        BRIDGE_MAC,
        BRIDGE,
        a("239.3.3.5"),
        0,
        &v3_query(10, "239.3.3.5", 2, 3, &[]),
    );
    let gs = v3_query(10, "232.5.5.5", 2, 3, &["10.77.0.8"]);
    let p = check(
        V3_QUERY_GROUP_SOURCE,
        BRIDGE_MAC,
        BRIDGE,
        a("232.5.5.5"),
        0,
        &gs,
    );
    let v = igmp::Packet::new_checked(&p[..]).unwrap();
    assert_eq!(v.query_sources().collect::<Vec<_>>(), vec![a("10.77.0.8")]);
}

#[test]
fn bridge_v3_query_exponential_codes() {
    let exp_mac = MacAddr([0x5a, 0x05, 0x9e, 0x12, 0xb2, 0x58]);
    let q = v3_query(0xc8, "0.0.0.0", 2, 0xc8, &[]);
    check(V3_QUERY_EXP, exp_mac, BRIDGE, ALL_SYSTEMS, 0, &q);
    assert_eq!(q.max_resp_time(), Some(Duration::from_millis(307_200)));
    assert_eq!(q.query_interval(), Some(Duration::from_secs(3072)));
    assert_eq!(igmp::decode_code(0xc8), 3072);
    assert_eq!(igmp::encode_code(200), 0x89);
}

#[test]
fn frr_v3_query() {
    let frr_mac = MacAddr([0xd2, 0xfc, 0x65, 0x38, 0x26, 0x23]);
    // FRR sets the S flag (byte 8 = 0x0a: S, QRV 2) even in a general query.
    let mut q = v3_query(100, "0.0.0.0", 2, 125, &[]);
    if let Repr::QueryV3 { s_flag, .. } = &mut q {
        *s_flag = true;
    }
    check(
        FRR_V3_QUERY,
        frr_mac,
        a("10.78.1.2"),
        ALL_SYSTEMS,
        35053,
        &q,
    );
    assert_eq!(q.max_resp_time(), Some(Duration::from_secs(10)));
    assert_eq!(q.query_interval(), Some(Duration::from_secs(125)));
}

#[test]
fn v1_query_built_by_hand() {
    // RFC 2236 2 / RFC 1112 appendix I layout: type 0x11, code 0, checksum,
    // group 0.0.0.0. Hand-built: no sender at hand emits IGMPv1 queries.
    let bytes = [0x11, 0x00, 0xee, 0xff, 0, 0, 0, 0];
    let repr = Repr::parse(&igmp::Packet::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(
        repr,
        Repr::QueryV1 {
            group: Ipv4Addr::UNSPECIFIED
        }
    );
    assert_eq!(repr.max_resp_time(), Some(Duration::from_secs(10)));
    let mut out = [0u8; 8];
    repr.emit(&mut igmp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, bytes);
}

#[test]
fn aux_data_and_unknown_record_types_kept() {
    let repr = Repr::ReportV3 {
        records: vec![GroupRecordRepr {
            record_type: RecordType::Unknown(9),
            group: a("239.9.9.9"),
            sources: vec![a("10.0.0.1")],
            aux_data: vec![1, 2, 3, 4, 5, 6, 7, 8],
        }],
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut igmp::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(buf[9], 2, "aux data length in 32-bit words");
    assert_eq!(
        Repr::parse(&igmp::Packet::new_checked(&buf[..]).unwrap()).unwrap(),
        repr
    );
}

/// The four distinct rejections the issue asks for, on captured bytes.
#[test]
fn rejections_are_distinct() {
    let report = hex(V3_IS_IN_IS_EX)[38..].to_vec();
    // Bad checksum.
    let mut bad = report.clone();
    bad[2] ^= 0xff;
    assert_eq!(
        Repr::parse(&igmp::Packet::new_unchecked(&bad[..])).unwrap_err(),
        Error::Checksum
    );
    // Short buffer.
    assert_eq!(
        igmp::Packet::new_checked(&report[..7]).unwrap_err(),
        Error::Truncated
    );
    // Wrong length: a 10-byte query (RFC 3376 7.1).
    let query = hex(V3_QUERY)[38..].to_vec();
    assert_eq!(
        igmp::Packet::new_checked(&query[..10]).unwrap_err(),
        Error::BadLength
    );
    // Over-long source count in a query.
    let mut bad = query.clone();
    bad[11] = 1;
    assert_eq!(
        igmp::Packet::new_checked(&bad[..]).unwrap_err(),
        Error::BadCount
    );
    // Over-long source count in a record (checksum fixed so only the count
    // is wrong).
    let mut bad = report.clone();
    bad[11] = 3; // first record claims 3 sources
    fix_checksum(&mut bad);
    assert_eq!(
        Repr::parse(&igmp::Packet::new_checked(&bad[..]).unwrap()).unwrap_err(),
        Error::BadCount
    );
    // Over-long record count.
    let mut bad = report;
    bad[7] = 3;
    fix_checksum(&mut bad);
    assert_eq!(
        Repr::parse(&igmp::Packet::new_checked(&bad[..]).unwrap()).unwrap_err(),
        Error::BadCount
    );
    // Unknown type.
    let mut bad = query;
    bad[0] = 0x30;
    fix_checksum(&mut bad);
    assert_eq!(
        Repr::parse(&igmp::Packet::new_checked(&bad[..]).unwrap()).unwrap_err(),
        Error::Unrecognized
    );
}

fn fix_checksum(b: &mut [u8]) {
    igmp::Packet::new_unchecked(b).fill_checksum();
}

#[test]
fn ethernet_header_of_captures() {
    let f = hex(V1_REPORT);
    let e = ethernet::Frame::new_checked(&f[..]).unwrap();
    assert_eq!(e.dst_addr().to_string(), "01:00:5e:01:01:01");
    assert_eq!(e.src_addr(), HOST_MAC);
    assert_eq!(e.ethertype(), 0x0800);
}
