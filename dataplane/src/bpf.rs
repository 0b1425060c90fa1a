//! Classic BPF filters for the capture sockets.
//!
//! The filter runs in the kernel on every frame the input interface sees, so
//! the engines only wake for datagrams some rule wants. It passes an Ethernet
//! frame when all hold:
//! - it was not sent by this host (`PACKET_OUTGOING` is rejected),
//! - it is IPv4 and UDP, and not a second-or-later fragment (those carry no
//!   UDP header; the first fragment is passed so the engine can count it),
//! - its destination (address, port) is one of the table's inputs on this
//!   interface.
//!
//! Past [`MAX_EXACT_PAIRS`] pairs the program would near the kernel's 4096
//! instruction limit, so it stops at the UDP test and the engine's table
//! lookup does the rest.

use crate::input::LinkKind;
use std::net::Ipv4Addr;

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

/// Pairs matched one by one in the kernel; beyond this the filter passes all
/// UDP and leaves the match to the engine.
pub const MAX_EXACT_PAIRS: usize = 700;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const LD_MEM: u16 = (libc::BPF_LD | libc::BPF_MEM) as u16;
const LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
const ST: u16 = libc::BPF_ST as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Index of the `ret 0` that follows the preamble.
const PREAMBLE_REJECT: u32 = 9;

/// `SKF_AD_OFF + SKF_AD_PKTTYPE`: the ancillary load of the packet type.
const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
const PACKET_OUTGOING: u32 = 4;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: `skb->protocol` (host order).
const PROTOCOL: u32 = (-0x1000i32) as u32;
const ACCEPT_LEN: u32 = 0x0004_0000;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A filter that passes nothing: for sockets that exist only to hold group
/// memberships and must never queue data.
pub fn drop_all() -> Vec<Insn> {
    vec![stmt(RET_K, 0)]
}

/// The capture filter for one interface's (group, port) pairs.
///
/// `link` says where the network header starts: after a 14-byte Ethernet
/// header, or at the first byte (`SOCK_DGRAM` sockets on interfaces without
/// a link-layer header, whose protocol is checked with the ancillary load
/// of `skb->protocol` instead of the EtherType).
///
/// A pair whose port is [`crate::table::ROUTE_PORT`] (0) is a route's
/// group: every IPv4 packet to it passes, whatever its protocol, port or
/// fragment offset (a route forwards the whole IP packet). Those groups
/// are tested in a prefix before the UDP program; past
/// [`MAX_ROUTE_GROUPS`] of them the prefix passes all IPv4 and the
/// engine's lookup does the rest.
pub fn capture_filter(pairs: &[(Ipv4Addr, u16)], link: LinkKind) -> Vec<Insn> {
    let routes: Vec<Ipv4Addr> = pairs
        .iter()
        .filter(|(_, p)| *p == crate::table::ROUTE_PORT)
        .map(|(g, _)| *g)
        .collect();
    if routes.is_empty() {
        return udp_filter(pairs, link);
    }
    let udp: Vec<(Ipv4Addr, u16)> = pairs
        .iter()
        .filter(|(_, p)| *p != crate::table::ROUTE_PORT)
        .copied()
        .collect();
    let mut prog = route_prefix(&routes, link);
    prog.extend(udp_filter(&udp, link));
    prog
}

/// Route groups tested one by one; beyond, all IPv4 passes to the engine.
pub const MAX_ROUTE_GROUPS: usize = 200;

/// Passes IPv4 to `groups` (not sent by this host); anything else falls
/// through to the instruction after the prefix.
fn route_prefix(groups: &[Ipv4Addr], link: LinkKind) -> Vec<Insn> {
    let l2 = link.header_len() as u32;
    const SKIP: u32 = u32::MAX;
    const MATCH: u32 = u32::MAX - 1;
    let mut q: Vec<Insn> = Vec::new();
    match link {
        LinkKind::Ethernet => q.push(stmt(LD_H_ABS, 12)),
        LinkKind::Ip => q.push(stmt(LD_W_ABS, PROTOCOL)),
    }
    q.push(jump(JEQ_K, 0x0800, 1, 0));
    q.push(stmt(JA, SKIP));
    if groups.len() <= MAX_ROUTE_GROUPS {
        q.push(stmt(LD_W_ABS, l2 + 16));
        for g in groups {
            q.push(jump(JEQ_K, u32::from(*g), 0, 1));
            q.push(stmt(JA, MATCH));
        }
        q.push(stmt(JA, SKIP));
    }
    let match_at = q.len() as u32;
    q.push(stmt(LD_W_ABS, PKTTYPE));
    q.push(jump(JEQ_K, PACKET_OUTGOING, 0, 1));
    q.push(stmt(RET_K, 0));
    q.push(stmt(RET_K, ACCEPT_LEN));
    let skip_at = q.len() as u32;
    for (at, i) in q.iter_mut().enumerate() {
        if i.code == JA {
            let target = match i.k {
                SKIP => skip_at,
                MATCH => match_at,
                _ => continue,
            };
            i.k = target - at as u32 - 1;
        }
    }
    q
}

/// The UDP part of [`capture_filter`].
fn udp_filter(pairs: &[(Ipv4Addr, u16)], link: LinkKind) -> Vec<Insn> {
    let l2 = link.header_len() as u32;
    // Jump targets are patched once the program's length is known.
    const REJECT: u32 = u32::MAX;
    const ACCEPT: u32 = u32::MAX - 1;
    let mut p: Vec<(Insn, Option<(u32, u32)>)> = Vec::new();
    let mut push = |i: Insn, targets: Option<(u32, u32)>| p.push((i, targets));
    // Relative targets: 0 = next instruction; REJECT/ACCEPT resolved later.
    push(stmt(LD_W_ABS, PKTTYPE), None);
    push(jump(JEQ_K, PACKET_OUTGOING, 0, 0), Some((REJECT, 0)));
    match link {
        LinkKind::Ethernet => push(stmt(LD_H_ABS, 12), None),
        LinkKind::Ip => push(stmt(LD_W_ABS, PROTOCOL), None),
    }
    push(jump(JEQ_K, 0x0800, 0, 0), Some((0, REJECT)));
    push(stmt(LD_B_ABS, l2 + 9), None);
    push(jump(JEQ_K, 17, 0, 0), Some((0, REJECT)));
    push(stmt(LD_H_ABS, l2 + 6), None);
    push(jump(JSET_K, 0x1fff, 0, 0), Some((REJECT, 0)));
    // The preamble's rejections land on this local `ret 0`, so their
    // 8-bit jump offsets stay small however long the program grows.
    push(stmt(JA, 1), None);
    push(stmt(RET_K, 0), None);
    let exact = !pairs.is_empty() && pairs.len() <= MAX_EXACT_PAIRS;
    if exact {
        // X = IP header length; A = UDP destination port, kept in M[0].
        push(stmt(LDX_MSH, l2), None);
        push(stmt(LD_H_IND, l2 + 2), None);
        push(stmt(ST, 0), None);
        push(stmt(LD_W_ABS, l2 + 16), None);
        for (group, port) in pairs {
            // if A == group { if M[0] == port { accept } else reload A }
            push(jump(JEQ_K, u32::from(*group), 0, 4), None);
            push(stmt(LD_MEM, 0), None);
            push(jump(JEQ_K, u32::from(*port), 0, 1), None);
            push(stmt(JA, 0), Some((ACCEPT, ACCEPT)));
            push(stmt(LD_W_ABS, l2 + 16), None);
        }
        push(stmt(RET_K, 0), None);
    } else if pairs.is_empty() {
        push(stmt(RET_K, 0), None);
    }
    let accept_at = p.len() as u32;
    // The local `ret 0` right after the preamble (see above).
    let reject_at = PREAMBLE_REJECT;
    let mut out: Vec<Insn> = Vec::with_capacity(p.len() + 2);
    for (at, (mut insn, targets)) in p.into_iter().enumerate() {
        let at = at as u32;
        let resolve = |t: u32| -> u32 {
            match t {
                REJECT => reject_at - at - 1,
                ACCEPT => accept_at - at - 1,
                rel => rel,
            }
        };
        if let Some((jt, jf)) = targets {
            if insn.code == JA {
                insn.k = resolve(jt);
            } else {
                // Conditional jumps to REJECT all sit in the preamble, a few
                // instructions before the local `ret 0`.
                insn.jt = u8::try_from(resolve(jt)).expect("preamble jump in range");
                insn.jf = u8::try_from(resolve(jf)).expect("preamble jump in range");
            }
        }
        out.push(insn);
    }
    debug_assert_eq!(out[PREAMBLE_REJECT as usize].code, RET_K);
    out.push(stmt(RET_K, ACCEPT_LEN));
    out
}

/// Checks a program the way the kernel's loader does (`bpf_check_classic`):
/// every jump lands inside the program and the last instruction returns.
pub fn validate(prog: &[Insn]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("program length {}", prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        let next = pc + 1;
        let targets: Vec<usize> = if i.code == JA {
            vec![next + i.k as usize]
        } else if i.code & 0x07 == libc::BPF_JMP as u16 {
            vec![next + usize::from(i.jt), next + usize::from(i.jf)]
        } else {
            vec![]
        };
        if let Some(t) = targets.iter().find(|t| **t >= prog.len()) {
            return Err(format!("jump at {pc} to {t} past the end ({})", prog.len()));
        }
    }
    if prog.last().map(|i| i.code) != Some(RET_K) {
        return Err("last instruction does not return".into());
    }
    Ok(())
}

/// Runs a program over a frame the way the kernel would (for the subset of
/// instructions [`capture_filter`] emits), with `pkttype` as the frame's
/// packet type. Returns the accept length; 0 means rejected.
#[cfg(test)]
pub(crate) fn interpret(prog: &[Insn], frame: &[u8], pkttype: u32) -> u32 {
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    let load = |off: usize, n: usize| -> Option<u32> {
        frame
            .get(off..off + n)
            .map(|b| b.iter().fold(0u32, |acc, v| (acc << 8) | u32::from(*v)))
    };
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS if i.k == PKTTYPE => a = pkttype,
            // The tests' frames are all IPv4.
            LD_W_ABS if i.k == PROTOCOL => a = 0x0800,
            LD_W_ABS => match load(i.k as usize, 4) {
                Some(v) => a = v,
                None => return 0,
            },
            LD_H_ABS => match load(i.k as usize, 2) {
                Some(v) => a = v,
                None => return 0,
            },
            LD_B_ABS => match load(i.k as usize, 1) {
                Some(v) => a = v,
                None => return 0,
            },
            LD_H_IND => match load(x as usize + i.k as usize, 2) {
                Some(v) => a = v,
                None => return 0,
            },
            LDX_MSH => match load(i.k as usize, 1) {
                Some(v) => x = (v & 0xf) * 4,
                None => return 0,
            },
            LD_MEM => a = mem[i.k as usize],
            ST => mem[i.k as usize] = a,
            JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
            JA => pc += i.k as usize,
            RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr_wire::{ethernet, ipv4, udp};

    fn frame(dst: Ipv4Addr, port: u16, fragment_offset: bool, proto: u8) -> Vec<u8> {
        let mut buf = vec![0u8; 14 + 20 + 8 + 4];
        ethernet::Repr {
            src_addr: mcr_wire::MacAddr([2, 0, 0, 0, 0, 1]),
            dst_addr: mcr_wire::MacAddr([1, 0, 0x5e, 0, 0, 1]),
            ethertype: ethernet::ETHERTYPE_IPV4,
        }
        .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        ipv4::Repr::new(Ipv4Addr::new(10, 0, 0, 1), dst, proto, 4, 12)
            .emit(&mut ipv4::Packet::new_unchecked(&mut buf[14..]));
        if fragment_offset {
            buf[14 + 6] = 0x00;
            buf[14 + 7] = 0x10;
        }
        udp::Repr {
            src_port: 1,
            dst_port: port,
            payload_len: 4,
        }
        .emit(&mut udp::Packet::new_unchecked(&mut buf[34..]), None);
        buf
    }

    #[test]
    fn passes_only_listed_pairs() {
        let g1 = Ipv4Addr::new(239, 1, 1, 1);
        let g2 = Ipv4Addr::new(239, 1, 1, 2);
        let prog = capture_filter(&[(g1, 5000), (g2, 6000)], LinkKind::Ethernet);
        assert!(interpret(&prog, &frame(g1, 5000, false, 17), 2) > 0);
        assert!(interpret(&prog, &frame(g2, 6000, false, 17), 2) > 0);
        assert_eq!(interpret(&prog, &frame(g1, 6000, false, 17), 2), 0);
        assert_eq!(interpret(&prog, &frame(g2, 5000, false, 17), 2), 0);
        assert_eq!(interpret(&prog, &frame(g1, 5000, false, 6), 2), 0);
    }

    #[test]
    fn route_groups_pass_any_protocol_and_fragments() {
        let g1 = Ipv4Addr::new(239, 1, 1, 1);
        let r = Ipv4Addr::new(239, 9, 9, 9);
        let prog = capture_filter(&[(g1, 5000), (r, 0)], LinkKind::Ethernet);
        assert!(validate(&prog).is_ok());
        for proto in [17, 6, 2, 103] {
            assert!(interpret(&prog, &frame(r, 1234, false, proto), 2) > 0);
            assert!(interpret(&prog, &frame(r, 1234, true, proto), 2) > 0);
        }
        assert_eq!(
            interpret(&prog, &frame(r, 1234, false, 17), PACKET_OUTGOING),
            0
        );
        // The relay rule's pair still passes, and only it.
        assert!(interpret(&prog, &frame(g1, 5000, false, 17), 2) > 0);
        assert_eq!(interpret(&prog, &frame(g1, 5001, false, 17), 2), 0);
        assert_eq!(interpret(&prog, &frame(g1, 5000, false, 6), 2), 0);
        // Past the bound every IPv4 packet reaches the engine.
        let many: Vec<(Ipv4Addr, u16)> = (0..=MAX_ROUTE_GROUPS as u32)
            .map(|i| (Ipv4Addr::from(0xef00_0000 + i), 0))
            .collect();
        let prog = capture_filter(&many, LinkKind::Ethernet);
        assert!(validate(&prog).is_ok());
        assert!(interpret(&prog, &frame(g1, 1, false, 6), 2) > 0);
    }

    #[test]
    fn rejects_own_frames_and_later_fragments() {
        let g = Ipv4Addr::new(239, 1, 1, 1);
        let prog = capture_filter(&[(g, 5000)], LinkKind::Ethernet);
        assert_eq!(
            interpret(&prog, &frame(g, 5000, false, 17), PACKET_OUTGOING),
            0
        );
        assert_eq!(interpret(&prog, &frame(g, 5000, true, 17), 2), 0);
    }

    #[test]
    fn many_pairs_fall_back_to_udp_only() {
        let pairs: Vec<_> = (0..(MAX_EXACT_PAIRS as u16 + 5))
            .map(|i| (Ipv4Addr::new(239, 9, (i >> 8) as u8, i as u8), 5000 + i))
            .collect();
        let prog = capture_filter(&pairs, LinkKind::Ethernet);
        assert!(prog.len() < 4096);
        let other = frame(Ipv4Addr::new(239, 200, 0, 1), 1, false, 17);
        assert!(interpret(&prog, &other, 0) > 0);
    }

    #[test]
    fn largest_exact_program_fits_and_reaches_last_pair() {
        let pairs: Vec<_> = (0..MAX_EXACT_PAIRS as u16)
            .map(|i| (Ipv4Addr::new(239, 9, (i >> 8) as u8, i as u8), 5000 + i))
            .collect();
        let prog = capture_filter(&pairs, LinkKind::Ethernet);
        assert!(prog.len() <= 4096, "{} instructions", prog.len());
        let (g, p) = *pairs.last().unwrap();
        assert!(interpret(&prog, &frame(g, p, false, 17), 0) > 0);
        assert_eq!(interpret(&prog, &frame(g, p + 1, false, 17), 0), 0);
    }

    #[test]
    fn every_size_is_a_valid_program_that_rejects_non_udp() {
        for n in [
            0usize,
            1,
            2,
            49,
            50,
            51,
            64,
            100,
            300,
            MAX_EXACT_PAIRS,
            MAX_EXACT_PAIRS + 1,
            5000,
        ] {
            let pairs: Vec<_> = (0..n)
                .map(|i| {
                    (
                        Ipv4Addr::new(239, 9, (i >> 8) as u8, i as u8),
                        5000 + i as u16,
                    )
                })
                .collect();
            let prog = capture_filter(&pairs, LinkKind::Ethernet);
            validate(&prog).unwrap_or_else(|e| panic!("{n} pairs: {e}"));
            let tcp = frame(Ipv4Addr::new(239, 9, 0, 0), 5000, false, 6);
            assert_eq!(interpret(&prog, &tcp, 0), 0, "{n} pairs: TCP passed");
            assert_eq!(interpret(&prog, &tcp, PACKET_OUTGOING), 0);
            if let Some((g, p)) = pairs.last() {
                assert!(
                    interpret(&prog, &frame(*g, *p, false, 17), 0) > 0,
                    "{n} pairs: last pair"
                );
                assert_eq!(
                    interpret(&prog, &frame(*g, *p, true, 17), 0),
                    0,
                    "{n} pairs: fragment"
                );
            }
        }
    }

    #[test]
    fn l3_links_are_read_at_the_network_header() {
        let g = Ipv4Addr::new(239, 1, 1, 1);
        let prog = capture_filter(&[(g, 5000)], LinkKind::Ip);
        validate(&prog).unwrap();
        let f = frame(g, 5000, false, 17);
        assert!(interpret(&prog, &f[14..], 0) > 0);
        assert_eq!(interpret(&prog, &frame(g, 5001, false, 17)[14..], 0), 0);
        // The Ethernet-offset program would read garbage there.
        let eth = capture_filter(&[(g, 5000)], LinkKind::Ethernet);
        assert_eq!(interpret(&eth, &f[14..], 0), 0);
    }

    #[test]
    fn empty_table_passes_nothing() {
        let prog = capture_filter(&[], LinkKind::Ethernet);
        let f = frame(Ipv4Addr::new(239, 1, 1, 1), 5000, false, 17);
        assert_eq!(interpret(&prog, &f, 0), 0);
    }
}
