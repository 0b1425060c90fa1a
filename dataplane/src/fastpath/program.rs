//! The tc ingress programs of one input interface, generated from the
//! fast-path rules on it: a dispatcher, attached at tcx ingress, and one
//! program per (group, port) key, which the dispatcher tail-calls.
//!
//! The dispatcher ([`generate_dispatcher`]), per datagram:
//! 1. copies the first 42 bytes (Ethernet, IPv4 without options, UDP) to
//!    the stack and gives up (passes the frame on untouched) unless it is
//!    untagged, IPv4 without options, UDP, not a fragment, not sent by one
//!    of this host's interfaces, and valid input by the engines' definition;
//! 2. looks (group, port) up in a hash map, which gives the key's index in
//!    a program array, and verifies the UDP checksum of a datagram that has
//!    a key;
//! 3. tail-calls the key's program at that index.
//!
//! It does not depend on the rules, so the verifier walks the checksum
//! loop once per interface, not once per key, and an edit never reloads
//! it. A key's program ([`generate_key`]):
//! 1. copies the header again (a tail call keeps no stack), and checks the
//!    key (its index may have been reused since the lookup);
//! 2. finds the rule by source, with compares against immediates;
//! 3. for each output writes the new headers in one store (MACs, TTL,
//!    source and destination address and port; the IPv4 checksum computed
//!    over the new header, the UDP checksum updated by difference, so a
//!    checksum of 0 stays 0 and one the sender left to offload stays
//!    right) and sends a clone out of the output interface
//!    (`bpf_clone_redirect`);
//! 4. sends the frame itself out of the last output (`bpf_redirect`): no
//!    clone and no copy for a 1:1 rule. The input datagram is therefore
//!    not also delivered up the relay host's own stack.
//!
//! Counters live in a per-CPU array ([`super::VALUE_WORDS`] words per
//! slot: packets, payload bytes, errors): one slot per rule for its input,
//! one per output.

use super::asm::*;
use std::net::{Ipv4Addr, SocketAddrV4};

const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_STORE_BYTES: i32 = 9;
const HELPER_L4_CSUM: i32 = 11;
const HELPER_CLONE_REDIRECT: i32 = 13;
const HELPER_TAIL_CALL: i32 = 12;
const HELPER_REDIRECT: i32 = 23;
const HELPER_LOAD_BYTES: i32 = 26;
const HELPER_CSUM_DIFF: i32 = 28;

const F_PSEUDO_HDR: i32 = 1 << 4;
const F_MARK_MANGLED_0: i32 = 1 << 5;
/// `TCX_NEXT`: let whatever else is attached (and the stack) see the frame.
const TCX_NEXT: i32 = -1;
/// `TCX_REDIRECT`: the frame leaves where `bpf_redirect` said.
const TCX_REDIRECT: i32 = 7;
const JLT: u8 = 0xa0;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;

/// Stack layout (offsets from the frame pointer).
/// At 2 mod 4, so that the MAC and IPv4 address words are 4-byte aligned
/// (the verifier refuses misaligned stack loads).
const HDR: i16 = -50; // the original 42 header bytes
const KEY: i16 = -80; // map key
const RES: i16 = -88; // a clone's result

const HEADER_LEN: i32 = 42;
/// `__sk_buff.pkt_type`.
const SKB_PKT_TYPE: i16 = 4;
/// `__sk_buff.vlan_present`.
const SKB_VLAN_PRESENT: i16 = 20;
/// `__sk_buff.vlan_tci`.
const SKB_VLAN_TCI: i16 = 24;
/// Chunk the UDP checksum is summed in (a stack buffer of the subprogram).
const CSUM_CHUNK: i32 = 256;
const CSUM_BUF: i16 = -(CSUM_CHUNK as i16);
const OFF_SADDR: i32 = 26;
const OFF_DADDR: i32 = 30;
const OFF_TTL: i32 = 22;
const OFF_DPORT: i32 = 36;
const OFF_IP_CSUM: i32 = 24;
const OFF_UDP_CSUM: i32 = 40;

/// Rough instruction cost of one output, for sizing programs.
pub const INSNS_PER_OUTPUT: usize = 110;

/// One output: a clone with these headers, out of `ifindex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastOutput {
    pub ifindex: u32,
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dest: SocketAddrV4,
    pub ttl: u8,
    /// `ttl: "decrement"`: the input's TTL less one instead of `ttl`.
    pub ttl_decrement: bool,
    /// Counter slot.
    pub slot: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastRule {
    /// Counter slot of the rule's input.
    pub slot: u32,
    pub outputs: Vec<FastOutput>,
}

/// All rules of one (group, port) on the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastKey {
    pub group: Ipv4Addr,
    pub port: u16,
    pub any_source: Option<FastRule>,
    pub by_source: Vec<(Ipv4Addr, FastRule)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceProgram {
    pub ifindex: u32,
    /// Frames from these source MACs were sent by this host: not input.
    pub local_macs: Vec<[u8; 6]>,
    /// In (group, port) order.
    pub keys: Vec<std::sync::Arc<FastKey>>,
}

/// The value as the program loads it from packet memory (network order
/// bytes read as a native integer).
fn raw32(bytes: [u8; 4]) -> u32 {
    u32::from_ne_bytes(bytes)
}

fn raw16(bytes: [u8; 2]) -> u32 {
    u16::from_ne_bytes(bytes) as u32
}

/// A 32-bit value in the header: fixed by the table, or the input's own
/// (kept in a callee-saved register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Const(u32),
    Orig(Reg),
}

const ORIG_SADDR: Reg = R7;
/// The input's TTL, for `ttl: "decrement"` outputs (R8 is free once the
/// UDP checksum was checked).
const ORIG_TTL: Reg = R8;
/// Payload length of the datagram, for the byte counters.
const PAYLOAD_LEN: Reg = R9;

/// One's-complement sum of 32-bit words with end-around carry (what the
/// kernel's `csum_add` does), for checksum differences known in advance.
fn csum_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u32)
}

/// The UDP checksum fields one output changes, relative to what the frame
/// carries at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pseudo {
    saddr: Val,
    daddr: u32,
    dport: u32,
}

struct Gen {
    a: Asm,
    map_fd: i32,
    pass: Label,
}

impl Gen {
    /// bpf_l4_csum_replace(skb, 40, 0, diff in R4, flags): applies a
    /// checksum difference to the UDP checksum (0 stays 0; a checksum left
    /// to offload has only its pseudo-header part changed).
    fn l4_by_diff(&mut self, flags: i32) {
        self.a.mov(R1, R6);
        self.a.mov_imm(R2, OFF_UDP_CSUM);
        self.a.mov_imm(R3, 0);
        self.a.mov_imm(R5, flags | F_MARK_MANGLED_0);
        self.a.call(HELPER_L4_CSUM);
    }

    /// Updates the UDP checksum from `from` to `to`.
    fn udp_checksum(&mut self, from: &Pseudo, to: &Pseudo) {
        // Pseudo-header: source and destination address.
        let mut k = csum_add(!from.daddr, to.daddr);
        k = csum_add(k, to.saddr_const());
        match from.saddr {
            Val::Const(c) => {
                k = csum_add(k, !c);
                if k != 0 && k != u32::MAX {
                    self.a.mov32_imm(R4, k);
                    self.l4_by_diff(F_PSEUDO_HDR);
                }
            }
            Val::Orig(r) => {
                // R4 = fold64(~orig + k): one's-complement addition in a
                // 64-bit register, carries folded back twice.
                self.a.mov32(R4, r);
                self.a.alu32_imm(OP_XOR, R4, -1);
                self.a.mov32_imm(R2, k);
                self.a.alu_reg(OP_ADD, R4, R2);
                self.fold32(R4);
                self.l4_by_diff(F_PSEUDO_HDR);
            }
        }
        if from.dport != to.dport {
            let d = csum_add(!from.dport & 0xffff, to.dport);
            self.a.mov32_imm(R4, d);
            self.l4_by_diff(0);
        }
    }

    /// reg = (reg & 0xffffffff) + (reg >> 32), twice.
    fn fold32(&mut self, reg: Reg) {
        for _ in 0..2 {
            self.a.mov(R3, reg);
            self.a.alu_imm(OP_RSH, R3, 32);
            self.a.mov32(reg, reg);
            self.a.alu_reg(OP_ADD, reg, R3);
        }
    }

    /// Writes output `o`'s fields into the stack copy of the header and
    /// its IPv4 checksum (the input's TOS, id, flags and lengths stay).
    fn build_header(&mut self, o: &FastOutput) {
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&mcr_wire::MacAddr::from_ipv4_multicast(*o.dest.ip()).0);
        macs[6..].copy_from_slice(&o.src_mac);
        // HDR is 2 mod 4: the MACs go in as 2 + 4 + 4 + 2 bytes.
        self.a
            .store_imm(Size::H, FP, HDR, raw16([macs[0], macs[1]]) as i32);
        for i in 0..2 {
            let b = &macs[2 + 4 * i..6 + 4 * i];
            self.a.store_imm(
                Size::W,
                FP,
                HDR + 2 + 4 * i as i16,
                raw32([b[0], b[1], b[2], b[3]]) as i32,
            );
        }
        self.a
            .store_imm(Size::H, FP, HDR + 10, raw16([macs[10], macs[11]]) as i32);
        if o.ttl_decrement {
            // The input's TTL (in ORIG_TTL, above 1) less one, protocol 17.
            self.a.mov(R1, ORIG_TTL);
            self.a.alu_imm(OP_ADD, R1, -1);
            self.a.alu_imm(OP_ADD, R1, raw16([0, 17]) as i32);
            self.a.store(Size::H, FP, HDR + OFF_TTL as i16, R1);
        } else {
            self.a
                .store_imm(Size::H, FP, HDR + OFF_TTL as i16, raw16([o.ttl, 17]) as i32);
        }
        self.a.store_imm(Size::H, FP, HDR + OFF_IP_CSUM as i16, 0);
        self.a.store_imm(
            Size::W,
            FP,
            HDR + OFF_SADDR as i16,
            raw32(o.src.octets()) as i32,
        );
        self.a.store_imm(
            Size::W,
            FP,
            HDR + OFF_DADDR as i16,
            raw32(o.dest.ip().octets()) as i32,
        );
        self.a.store_imm(
            Size::H,
            FP,
            HDR + OFF_DPORT as i16,
            raw16(o.dest.port().to_be_bytes()) as i32,
        );
        // IPv4 header checksum over the ten 16-bit words.
        self.a.mov_imm(R4, 0);
        for w in 0..10i16 {
            self.a.load(Size::H, R2, FP, HDR + 14 + 2 * w);
            self.a.alu_reg(OP_ADD, R4, R2);
        }
        for _ in 0..2 {
            self.a.mov(R3, R4);
            self.a.alu_imm(OP_RSH, R3, 16);
            self.a.alu_imm(OP_AND, R4, 0xffff);
            self.a.alu_reg(OP_ADD, R4, R3);
        }
        self.a.alu_imm(OP_XOR, R4, 0xffff);
        self.a.store(Size::H, FP, HDR + OFF_IP_CSUM as i16, R4);
    }

    /// bpf_skb_store_bytes(skb, 0, HDR, 40): everything up to the UDP
    /// checksum, which the l4 helper keeps. No BPF_F_RECOMPUTE_CSUM: a
    /// receive checksum (CHECKSUM_COMPLETE) does not cover the MAC header
    /// at ingress, the new IPv4 header sums to the same as the old one
    /// (its checksum is right), and the UDP changes are balanced by the
    /// checksum field, whose pseudo-header part the l4 helper accounts for.
    fn store_header(&mut self) {
        self.a.mov(R1, R6);
        self.a.mov_imm(R2, 0);
        self.a.mov(R3, FP);
        self.a.alu_imm(OP_ADD, R3, HDR as i32);
        self.a.mov_imm(R4, OFF_UDP_CSUM);
        self.a.mov_imm(R5, 0);
        self.a.call(HELPER_STORE_BYTES);
    }

    /// r0 = &counters[slot], or jump to `skip` when the lookup fails.
    fn counter(&mut self, slot: u32, skip: Label) {
        self.a.store_imm(Size::W, FP, KEY, slot as i32);
        self.a.ld_map_fd(R1, self.map_fd);
        self.a.mov(R2, FP);
        self.a.alu_imm(OP_ADD, R2, KEY as i32);
        self.a.call(HELPER_MAP_LOOKUP);
        self.a.jmp_imm(JEQ, R0, 0, skip);
    }

    /// counters[word] += reg (or 1 when reg is None), r0 = the slot.
    fn bump(&mut self, word: i16, by: Option<Reg>) {
        self.a.load(Size::DW, R1, R0, word * 8);
        match by {
            Some(r) => self.a.alu_reg(OP_ADD, R1, r),
            None => self.a.alu_imm(OP_ADD, R1, 1),
        }
        self.a.store(Size::DW, R0, word * 8, R1);
    }

    /// Counts a sent packet on `slot`.
    fn count_sent(&mut self, slot: u32) {
        let done = self.a.label();
        self.counter(slot, done);
        self.bump(0, None);
        self.bump(1, Some(PAYLOAD_LEN));
        self.a.bind(done);
    }

    /// Every output but the last gets a clone; the last takes the frame
    /// itself (no clone, no copy, and the input is not also delivered up
    /// the relay's own stack).
    fn rule(&mut self, key: &FastKey, rule: &FastRule) {
        if rule.outputs.iter().any(|o| o.ttl_decrement) {
            // A datagram a decrementing output would not send (TTL 1) is
            // the engines' to count (ttl_expired).
            self.a.load(Size::B, ORIG_TTL, FP, HDR + OFF_TTL as i16);
            self.a.jmp_imm(JLT, ORIG_TTL, 2, self.pass);
        }
        self.count_sent(rule.slot);
        let mut at = Pseudo {
            saddr: Val::Orig(ORIG_SADDR),
            daddr: raw32(key.group.octets()),
            dport: raw16(key.port.to_be_bytes()),
        };
        let n = rule.outputs.len();
        for (i, o) in rule.outputs.iter().enumerate() {
            let next = Pseudo {
                saddr: Val::Const(raw32(o.src.octets())),
                daddr: raw32(o.dest.ip().octets()),
                dport: raw16(o.dest.port().to_be_bytes()),
            };
            self.udp_checksum(&at, &next);
            at = next;
            self.build_header(o);
            self.store_header();
            if i + 1 == n {
                self.a.mov32_imm(R1, o.ifindex);
                self.a.mov_imm(R2, 0);
                self.a.call(HELPER_REDIRECT);
                self.count_sent(o.slot);
                self.a.mov_imm(R0, TCX_REDIRECT);
                self.a.exit();
                return;
            }
            self.a.mov(R1, R6);
            self.a.mov32_imm(R2, o.ifindex);
            self.a.mov_imm(R3, 0);
            self.a.call(HELPER_CLONE_REDIRECT);
            self.a.store(Size::DW, FP, RES, R0);
            let skip = self.a.label();
            let failed = self.a.label();
            self.counter(o.slot, skip);
            self.a.load(Size::DW, R2, FP, RES);
            self.a.jmp_imm(JNE, R2, 0, failed);
            self.bump(0, None);
            self.bump(1, Some(PAYLOAD_LEN));
            self.a.ja(skip);
            self.a.bind(failed);
            self.bump(2, None);
            self.a.bind(skip);
        }
        self.a.ja(self.pass);
    }
}

impl Pseudo {
    fn saddr_const(&self) -> u32 {
        match self.saddr {
            Val::Const(c) => c,
            Val::Orig(_) => unreachable!("outputs have a fixed source"),
        }
    }
}

/// Key of the dispatcher's hash map: the datagram's destination address
/// and port as the frame carries them (network order), then two bytes of
/// zero padding.
pub const KEYS_MAP_KEY: u32 = 8;

/// The map key of (group, port), as the dispatcher builds it.
pub fn keys_map_key(group: Ipv4Addr, port: u16) -> [u8; 8] {
    let g = group.octets();
    let p = port.to_be_bytes();
    [g[0], g[1], g[2], g[3], p[0], p[1], 0, 0]
}

/// Where the dispatcher builds the hash map key (8-byte aligned).
const LOOKUP: i16 = -96;

/// Generates the dispatcher of one interface: the checks every datagram
/// must pass (the same whatever the rules), a lookup of (group, port) in
/// `keys_map` (a hash map: [`keys_map_key`] -> index), the UDP checksum for
/// a datagram with a key, then a tail call into `progs` (a program array)
/// at that index: the key's program ([`generate_key`]). No key, a failed
/// check or an empty index: the frame passes on to the engines.
///
/// It depends only on the interface's own MACs, so rules added and removed
/// never change it: they change one entry of each map. The checksum
/// subprogram has one call site, so the verifier walks it once.
pub fn generate_dispatcher(
    local_macs: &[[u8; 6]],
    keys_map: i32,
    progs: i32,
) -> Result<Vec<Insn>, String> {
    let mut a = Asm::default();
    let pass = a.label();
    let a = &mut a;
    a.mov(R6, R1);
    load_header(a, pass);
    // A VLAN-tagged frame belongs to the VLAN's interface, not this one
    // (VLAN 0 is a priority tag: untagged traffic). Like every frame the
    // program does not accept, it goes on to the engines, which count it.
    let untagged = a.label();
    a.load(Size::W, R1, R6, SKB_VLAN_PRESENT);
    a.jmp_imm(JEQ, R1, 0, untagged);
    a.load(Size::W, R1, R6, SKB_VLAN_TCI);
    a.alu_imm(OP_AND, R1, 0x0fff);
    a.jmp_imm(JNE, R1, 0, pass);
    a.bind(untagged);
    // Another host's destination MAC.
    a.load(Size::W, R1, R6, SKB_PKT_TYPE);
    a.jmp_imm(JEQ, R1, i32::from(crate::input::PACKET_OTHERHOST), pass);
    a.load(Size::H, R1, FP, HDR + 12);
    a.jmp32_imm(JNE, R1, raw16([0x08, 0x00]), pass);
    a.load(Size::B, R1, FP, HDR + 14);
    a.jmp32_imm(JNE, R1, 0x45, pass);
    a.load(Size::B, R1, FP, HDR + 23);
    a.jmp32_imm(JNE, R1, 17, pass);
    a.load(Size::H, R1, FP, HDR + 20);
    a.alu_imm(OP_AND, R1, raw16([0x3f, 0xff]) as i32);
    a.jmp_imm(JNE, R1, 0, pass);
    // A frame one of this host's interfaces sent goes on to the stack; the
    // engines drop and count it (own_frame).
    if !local_macs.is_empty() {
        a.load(Size::W, R1, FP, HDR + 6);
        a.load(Size::H, R2, FP, HDR + 10);
        for m in local_macs {
            let next = a.label();
            a.jmp32_imm(JNE, R1, raw32([m[0], m[1], m[2], m[3]]), next);
            a.jmp32_imm(JEQ, R2, raw16([m[4], m[5]]), pass);
            a.bind(next);
        }
    }
    accept_checks(a, pass);
    // The key: destination address and port, zero padding.
    a.load(Size::W, R1, FP, HDR + OFF_DADDR as i16);
    a.store(Size::W, FP, LOOKUP, R1);
    a.load(Size::H, R1, FP, HDR + OFF_DPORT as i16);
    a.store(Size::H, FP, LOOKUP + 4, R1);
    a.store_imm(Size::H, FP, LOOKUP + 6, 0);
    a.ld_map_fd(R1, keys_map);
    a.mov(R2, FP);
    a.alu_imm(OP_ADD, R2, LOOKUP as i32);
    a.call(HELPER_MAP_LOOKUP);
    a.jmp_imm(JEQ, R0, 0, pass);
    // R9 = the key's index (R6-R9 survive the subprogram call).
    a.load(Size::W, R9, R0, 0);
    // The UDP checksum is summed only for datagrams a key takes.
    let summed = a.label();
    let verify_udp = a.label();
    a.jmp_imm(JEQ, R8, 0, summed);
    a.mov(R1, R6);
    a.call_local(verify_udp);
    a.jmp_imm(JNE, R0, 0, pass);
    a.bind(summed);
    a.mov(R1, R6);
    a.ld_map_fd(R2, progs);
    a.mov32(R3, R9);
    a.call(HELPER_TAIL_CALL);
    // Only reached when the index holds no program (a key being removed).
    a.bind(pass);
    a.mov_imm(R0, TCX_NEXT);
    a.exit();
    a.bind(verify_udp);
    udp_checksum_subprogram(a);
    std::mem::take(a).finish()
}

/// R6 = the frame: copies its first 42 bytes to `HDR`, or passes.
fn load_header(a: &mut Asm, pass: Label) {
    a.mov(R1, R6);
    a.mov_imm(R2, 0);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, HDR as i32);
    a.mov_imm(R4, HEADER_LEN);
    a.call(HELPER_LOAD_BYTES);
    a.jmp_imm(JNE, R0, 0, pass);
}

/// Instructions of a key's program besides its rules (the header copy,
/// the key check, the source and length).
pub const KEY_BASE_INSNS: usize = 40;

/// Generates the program of one key, which the dispatcher tail-calls for a
/// datagram that passed every check, has this (group, port) and a valid
/// UDP checksum: it picks the rule by source, counts, and sends the
/// outputs.
///
/// It checks the key again: a key's index in the program array can be
/// reused by another key while a datagram that looked up the old one is
/// still on its way (that datagram then passes on to the engines).
pub fn generate_key(key: &FastKey, map_fd: i32) -> Result<Vec<Insn>, String> {
    let mut a = Asm::default();
    let pass = a.label();
    let mut g = Gen { a, map_fd, pass };
    let a = &mut g.a;
    a.mov(R6, R1);
    load_header(a, pass);
    a.load(Size::W, R1, FP, HDR + OFF_DADDR as i16);
    a.jmp32_imm(JNE, R1, raw32(key.group.octets()), pass);
    a.load(Size::H, R1, FP, HDR + OFF_DPORT as i16);
    a.jmp32_imm(JNE, R1, raw16(key.port.to_be_bytes()), pass);
    a.load(Size::W, ORIG_SADDR, FP, HDR + OFF_SADDR as i16);
    // The dispatcher checked the IP total length (at least 28) and that
    // the UDP length matches it.
    a.load(Size::H, PAYLOAD_LEN, FP, HDR + 16);
    a.to_be(PAYLOAD_LEN, 16);
    a.alu_imm(OP_ADD, PAYLOAD_LEN, -28);
    let rule_labels: Vec<Label> = key.by_source.iter().map(|_| a.label()).collect();
    for ((src, _), rl) in key.by_source.iter().zip(&rule_labels) {
        a.jmp32_imm(JEQ, ORIG_SADDR, raw32(src.octets()), *rl);
    }
    let any = a.label();
    match &key.any_source {
        Some(_) => a.ja(any),
        None => a.ja(pass),
    }
    for ((_, rule), rl) in key.by_source.iter().zip(&rule_labels) {
        g.a.bind(*rl);
        g.rule(key, rule);
    }
    g.a.bind(any);
    if let Some(rule) = &key.any_source {
        g.rule(key, rule);
    }
    g.a.bind(pass);
    g.a.mov_imm(R0, TCX_NEXT);
    g.a.exit();
    g.a.finish()
}

/// The checks of [`crate::input::check`] on the header copy, after the
/// preamble (IPv4 without options, UDP, not a fragment, untagged, for this
/// host, not our own frame): anything that fails goes on to the engines
/// (`pass`), which drop and count it by the same definition. On the way
/// through: `ORIG_SADDR` = the source, `PAYLOAD_LEN` = the UDP payload
/// length, and R8 = 1 when the UDP checksum must be summed (it is neither 0
/// nor the sender's offload seed).
fn accept_checks(a: &mut Asm, pass: Label) {
    // Longer than the engines take (oversize), shorter than its total
    // length (truncated), or longer (bytes after the datagram, which only
    // the engines trim): not ours to forward.
    a.load(Size::W, R1, R6, 0);
    a.jmp_imm(JGT, R1, crate::input::MAX_FRAME as i32, pass);
    a.load(Size::H, PAYLOAD_LEN, FP, HDR + 16);
    a.to_be(PAYLOAD_LEN, 16);
    a.jmp_imm(JLT, PAYLOAD_LEN, 28, pass);
    a.mov(R2, PAYLOAD_LEN);
    a.alu_imm(OP_ADD, R2, 14);
    a.jmp_reg(JNE, R1, R2, pass);
    // IPv4 header checksum: the ten words sum to all ones.
    a.mov_imm(R4, 0);
    for w in 0..10i16 {
        a.load(Size::H, R2, FP, HDR + 14 + 2 * w);
        a.alu_reg(OP_ADD, R4, R2);
    }
    fold16(a, R4);
    a.jmp_imm(JNE, R4, 0xffff, pass);
    // TTL 0.
    a.load(Size::B, R1, FP, HDR + OFF_TTL as i16);
    a.jmp_imm(JEQ, R1, 0, pass);
    // Martian sources: 0/8, 127/8, 224/4 and above (multicast, class E,
    // 255.255.255.255; the engines still take class E unicast).
    a.load(Size::W, ORIG_SADDR, FP, HDR + OFF_SADDR as i16);
    a.load(Size::B, R1, FP, HDR + OFF_SADDR as i16);
    a.jmp_imm(JEQ, R1, 0, pass);
    a.jmp_imm(JEQ, R1, 127, pass);
    a.jmp_imm(JGE, R1, 224, pass);
    // UDP length: exactly the IPv4 payload (shorter: the engines trim the
    // rest; longer or below 8: udp_length).
    a.load(Size::H, R1, FP, HDR + 38);
    a.to_be(R1, 16);
    a.mov(R2, PAYLOAD_LEN);
    a.alu_imm(OP_ADD, R2, -20);
    a.jmp_reg(JNE, R1, R2, pass);
    a.alu_imm(OP_ADD, PAYLOAD_LEN, -28);
    // UDP checksum: 0 (none) or the offload seed need no sum.
    a.mov_imm(R8, 0);
    let done = a.label();
    a.load(Size::H, R1, FP, HDR + OFF_UDP_CSUM as i16);
    a.jmp_imm(JEQ, R1, 0, done);
    // Seed = fold(source + destination + protocol + UDP length), all in
    // the byte order of the frame (the raw loads keep it).
    a.mov_imm(R1, 0);
    a.mov_imm(R2, 0);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, (HDR + OFF_SADDR as i16) as i32);
    a.mov_imm(R4, 8);
    a.mov_imm(R5, 0);
    a.call(HELPER_CSUM_DIFF);
    a.mov32(R4, R0);
    a.mov32_imm(R2, raw16([0, 17]));
    a.alu_reg(OP_ADD, R4, R2);
    a.load(Size::H, R2, FP, HDR + 38);
    a.alu_reg(OP_ADD, R4, R2);
    fold16(a, R4);
    a.load(Size::H, R1, FP, HDR + OFF_UDP_CSUM as i16);
    a.jmp_reg(JEQ, R1, R4, done);
    a.mov_imm(R8, 1);
    a.bind(done);
}

/// reg = the 16-bit one's-complement fold of a sum below 2^36.
fn fold16(a: &mut Asm, reg: Reg) {
    for _ in 0..3 {
        a.mov(R3, reg);
        a.alu_imm(OP_RSH, R3, 16);
        a.alu_imm(OP_AND, reg, 0xffff);
        a.alu_reg(OP_ADD, reg, R3);
    }
}

/// Subprogram: R1 = the frame (an untagged Ethernet/IPv4 frame whose UDP
/// length was checked against its IP total length). R0 = 0 when the UDP
/// checksum verifies over pseudo-header, header and payload, 1 otherwise.
/// Sums in [`CSUM_CHUNK`]-byte pieces copied to the stack (unrolled up to
/// the largest frame taken), with `bpf_csum_diff`.
fn udp_checksum_subprogram(a: &mut Asm) {
    let fail = a.label();
    let done = a.label();
    let tail = a.label();
    a.mov(R6, R1);
    // Addresses and UDP header (16 bytes from the source address).
    a.mov(R1, R6);
    a.mov_imm(R2, 26);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, CSUM_BUF as i32);
    a.mov_imm(R4, 16);
    a.call(HELPER_LOAD_BYTES);
    a.jmp_imm(JNE, R0, 0, fail);
    // Pseudo-header: addresses, protocol, UDP length (raw order).
    a.load(Size::H, R8, FP, CSUM_BUF + 12);
    a.mov(R1, FP);
    a.alu_imm(OP_ADD, R1, CSUM_BUF as i32);
    a.mov(R3, R1);
    a.mov_imm(R1, 0);
    a.mov_imm(R2, 0);
    a.mov_imm(R4, 8);
    a.mov_imm(R5, 0);
    a.call(HELPER_CSUM_DIFF);
    a.mov32(R7, R0);
    a.mov32_imm(R1, raw16([0, 17]));
    a.alu_reg(OP_ADD, R7, R1);
    a.alu_reg(OP_ADD, R7, R8);
    // R8 = bytes left (the UDP length), R9 = their offset in the frame.
    a.to_be(R8, 16);
    a.mov_imm(R9, 34);
    let chunks = crate::input::MAX_FRAME.div_ceil(CSUM_CHUNK as usize);
    for _ in 0..chunks {
        a.jmp_imm(JEQ, R8, 0, done);
        a.jmp_imm(JLT, R8, CSUM_CHUNK, tail);
        a.mov(R1, R6);
        a.mov(R2, R9);
        a.mov(R3, FP);
        a.alu_imm(OP_ADD, R3, CSUM_BUF as i32);
        a.mov_imm(R4, CSUM_CHUNK);
        a.call(HELPER_LOAD_BYTES);
        a.jmp_imm(JNE, R0, 0, fail);
        a.mov_imm(R1, 0);
        a.mov_imm(R2, 0);
        a.mov(R3, FP);
        a.alu_imm(OP_ADD, R3, CSUM_BUF as i32);
        a.mov_imm(R4, CSUM_CHUNK);
        a.mov32(R5, R7);
        a.call(HELPER_CSUM_DIFF);
        a.mov32(R7, R0);
        a.alu_imm(OP_ADD, R9, CSUM_CHUNK);
        a.alu_imm(OP_ADD, R8, -CSUM_CHUNK);
    }
    a.jmp_imm(JEQ, R8, 0, done);
    a.ja(fail);
    // The last piece, 1 to CSUM_CHUNK - 1 bytes, zero-padded to a
    // multiple of 4 (padding adds nothing to the sum).
    a.bind(tail);
    for i in 0..(CSUM_CHUNK / 8) as i16 {
        a.store_imm(Size::DW, FP, CSUM_BUF + 8 * i, 0);
    }
    a.mov(R1, R6);
    a.mov(R2, R9);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, CSUM_BUF as i32);
    a.mov(R4, R8);
    a.call(HELPER_LOAD_BYTES);
    a.jmp_imm(JNE, R0, 0, fail);
    a.mov_imm(R1, 0);
    a.mov_imm(R2, 0);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, CSUM_BUF as i32);
    a.mov(R4, R8);
    a.alu_imm(OP_ADD, R4, 3);
    a.alu_imm(OP_AND, R4, !3);
    // (Never true; tells the verifier the size fits the buffer.)
    a.jmp_imm(JGT, R4, CSUM_CHUNK, fail);
    a.mov32(R5, R7);
    a.call(HELPER_CSUM_DIFF);
    a.mov32(R7, R0);
    a.bind(done);
    fold16(a, R7);
    a.mov_imm(R0, 0);
    let ok = a.label();
    a.jmp_imm(JEQ, R7, 0xffff, ok);
    a.bind(fail);
    a.mov_imm(R0, 1);
    a.bind(ok);
    a.exit();
}

#[cfg(test)]
mod tests {
    use super::super::VALUE_WORDS;
    use super::*;

    fn output(ifindex: u32, group: [u8; 4], port: u16, slot: u32) -> FastOutput {
        FastOutput {
            ifindex,
            src_mac: [2, 0, 0, 0, 0, ifindex as u8],
            src: Ipv4Addr::new(10, 0, ifindex as u8, 1),
            dest: SocketAddrV4::new(Ipv4Addr::from(group), port),
            ttl: 3,
            ttl_decrement: ifindex == 3,
            slot,
        }
    }

    /// Any-source and source-specific rules, one and several outputs, local
    /// MACs: what the verifier must accept.
    fn plan() -> InterfaceProgram {
        InterfaceProgram {
            ifindex: 1,
            local_macs: vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
            keys: [
                FastKey {
                    group: Ipv4Addr::new(239, 1, 1, 1),
                    port: 5000,
                    any_source: Some(FastRule {
                        slot: 1,
                        outputs: vec![output(2, [239, 2, 2, 2], 6000, 2)],
                    }),
                    by_source: vec![(
                        Ipv4Addr::new(10, 0, 0, 200),
                        FastRule {
                            slot: 3,
                            outputs: (0..5)
                                .map(|k| output(2 + k, [239, 2, 2, 200 + k as u8], 6000, 4 + k))
                                .collect(),
                        },
                    )],
                },
                FastKey {
                    group: Ipv4Addr::new(239, 1, 1, 255),
                    port: 5000,
                    any_source: None,
                    by_source: vec![(
                        Ipv4Addr::new(10, 0, 0, 9),
                        FastRule {
                            slot: 9,
                            outputs: vec![output(3, [239, 1, 1, 255], 5000, 10)],
                        },
                    )],
                },
            ]
            .into_iter()
            .map(std::sync::Arc::new)
            .collect(),
        }
    }

    #[test]
    fn key_programs_stay_within_the_size_estimate() {
        for k in &plan().keys {
            let prog = generate_key(k, 5).unwrap();
            let rules = k.by_source.len() + k.any_source.is_some() as usize;
            let outputs: usize = k
                .by_source
                .iter()
                .map(|(_, r)| r)
                .chain(&k.any_source)
                .map(|r| r.outputs.len())
                .sum();
            let estimate = KEY_BASE_INSNS + super::super::plan::key_insns(rules, outputs);
            assert!(prog.len() < estimate, "{} >= {estimate}", prog.len());
            // Ends with `r0 = TCX_NEXT; exit`.
            assert_eq!(prog.last().unwrap().code, 0x95);
        }
    }

    /// The dispatcher does not depend on the keys: one tail call, one
    /// lookup, one call of the checksum subprogram.
    #[test]
    fn dispatcher_has_one_lookup_one_tail_call_one_checksum_call() {
        let prog = generate_dispatcher(&plan().local_macs, 5, 6).unwrap();
        let calls = |imm: i32, src: u8| {
            prog.iter()
                .filter(|i| i.code == 0x85 && i.imm == imm && i.regs >> 4 == src)
                .count()
        };
        assert_eq!(calls(HELPER_TAIL_CALL, 0), 1);
        assert_eq!(calls(HELPER_MAP_LOOKUP, 0), 1);
        assert_eq!(
            prog.iter()
                .filter(|i| i.code == 0x85 && i.regs >> 4 == 1)
                .count(),
            1
        );
        assert_eq!(
            keys_map_key(Ipv4Addr::new(239, 1, 2, 3), 5000),
            [239, 1, 2, 3, 0x13, 0x88, 0, 0]
        );
    }

    #[test]
    fn udp_checksum_difference_is_ones_complement() {
        // 0xffff_ffff + 1 wraps to 1 (end-around carry).
        assert_eq!(csum_add(u32::MAX, 1), 1);
        assert_eq!(csum_add(0x8000_0000, 0x8000_0000), 1);
        assert_eq!(csum_add(2, 3), 5);
    }

    /// The kernel's verifier accepts the dispatcher and every key's program,
    /// and walks few instructions for each: what bounds the cost of an edit
    /// (needs CAP_BPF; skipped without it).
    #[test]
    fn verifier_accepts_the_programs_quickly() {
        use super::super::sys;
        use std::os::fd::AsRawFd;
        let map = match sys::percpu_array(24, 16) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("skipped: cannot create a BPF map ({e})");
                return;
            }
        };
        let keys = sys::hash_map(KEYS_MAP_KEY, 4, 16).unwrap();
        let progs = sys::prog_array(16).unwrap();
        let d =
            generate_dispatcher(&plan().local_macs, keys.as_raw_fd(), progs.as_raw_fd()).unwrap();
        let (_fd, log) = sys::load_sched_cls_stats("mcr_test", &d).unwrap();
        let processed = |log: &str| -> usize {
            let at = log.find("processed ").expect(log) + "processed ".len();
            log[at..].split(' ').next().unwrap().parse().unwrap()
        };
        // One walk of the checksum subprogram (~1,200 instructions), not
        // one per key.
        assert!(processed(&log) < 3000, "{log}");
        for k in &plan().keys {
            let insns = generate_key(k, map.as_raw_fd()).unwrap();
            let (fd, log) = sys::load_sched_cls_stats("mcr_test", &insns).unwrap();
            assert!(processed(&log) < 4 * insns.len(), "{log}");
            sys::prog_array_set(&progs, 0, &fd).unwrap();
        }
    }

    /// A UDP datagram from `src` to `group`:`port` in an Ethernet frame,
    /// with valid checksums (the UDP one computed unless `udp_csum` says).
    fn frame(src: [u8; 4], group: [u8; 4], port: u16, ttl: u8, udp_csum: Option<u16>) -> Vec<u8> {
        let payload = [0x5au8; 100];
        let mut f = vec![0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, ttl, 17, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&group);
        let sum = |b: &[u8], init: u32| {
            let mut s = init;
            for c in b.chunks(2) {
                s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s
        };
        let c = !(sum(&ip, 0) as u16);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut udp = vec![0x12, 0x34];
        udp.extend_from_slice(&port.to_be_bytes());
        udp.extend_from_slice(&(total - 20).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&payload);
        let pseudo = sum(&src, 0) + sum(&group, 0) + 17 + u32::from(total - 20);
        let c = udp_csum.unwrap_or(!(sum(&udp, pseudo) as u16));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&udp);
        f
    }

    /// The dispatcher and a key's program run on real frames
    /// (`BPF_PROG_TEST_RUN`): a datagram of the key is sent (the key's
    /// counter counts it, its header is the output's, its checksums still
    /// verify), one of no key, one with a bad UDP checksum, and one whose
    /// key maps to another key's program (an index reused) pass on,
    /// uncounted. Needs CAP_BPF; skipped without it.
    #[test]
    fn dispatcher_tail_calls_the_key_program() {
        use super::super::sys;
        use std::os::fd::AsRawFd;
        let Ok(map) = sys::percpu_array(24, 16) else {
            eprintln!("skipped: cannot create a BPF map");
            return;
        };
        let keys = sys::hash_map(KEYS_MAP_KEY, 4, 16).unwrap();
        let progs = sys::prog_array(16).unwrap();
        let d = generate_dispatcher(&[], keys.as_raw_fd(), progs.as_raw_fd()).unwrap();
        let d = sys::load_sched_cls("mcr_test", &d).unwrap();
        let mut key = (*plan().keys[0]).clone();
        key.by_source.clear();
        let k =
            sys::load_sched_cls("mcr_test", &generate_key(&key, map.as_raw_fd()).unwrap()).unwrap();
        sys::prog_array_set(&progs, 3, &k).unwrap();
        drop(k); // the program array keeps it
        let idx = 3u32.to_ne_bytes();
        sys::map_set(&keys, &keys_map_key(key.group, key.port), &idx).unwrap();
        let counted = || {
            let cpus = sys::possible_cpus().unwrap();
            let mut ks = vec![0u32; 16];
            let mut buf = vec![0u64; 16 * VALUE_WORDS * cpus];
            let n = sys::lookup_batch(&map, &mut ks, &mut buf).unwrap();
            let slot = |s: u32| -> u64 {
                let at = ks[..n].iter().position(|k| *k == s).unwrap();
                buf[at * VALUE_WORDS * cpus..(at + 1) * VALUE_WORDS * cpus]
                    .chunks(VALUE_WORDS)
                    .map(|c| c[0])
                    .sum()
            };
            (slot(1), slot(2))
        };
        let pass = TCX_NEXT as u32;

        let (ret, out) =
            sys::test_run(&d, &frame([10, 0, 0, 5], [239, 1, 1, 1], 5000, 64, None)).unwrap();
        assert_eq!(ret, TCX_REDIRECT as u32);
        assert_eq!(counted(), (1, 1));
        // The output's header: 239.2.2.2:6000 from 10.0.2.1, TTL 3, and
        // checksums that still verify.
        assert_eq!(&out[0..6], &[0x01, 0x00, 0x5e, 2, 2, 2]);
        assert_eq!(&out[6..12], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(out[22], 3);
        assert_eq!(&out[26..34], &[10, 0, 2, 1, 239, 2, 2, 2]);
        assert_eq!(&out[36..38], &6000u16.to_be_bytes());
        let again = frame([10, 0, 2, 1], [239, 2, 2, 2], 6000, 3, None);
        assert_eq!(&out[24..26], &again[24..26], "IPv4 checksum");
        assert_eq!(&out[40..42], &again[40..42], "UDP checksum");

        let no_key = frame([10, 0, 0, 5], [239, 1, 1, 2], 5000, 64, None);
        assert_eq!(sys::test_run(&d, &no_key).unwrap().0, pass);
        let bad = frame([10, 0, 0, 5], [239, 1, 1, 1], 5000, 64, Some(0x1234));
        assert_eq!(sys::test_run(&d, &bad).unwrap().0, pass);
        sys::map_set(
            &keys,
            &keys_map_key(Ipv4Addr::new(239, 1, 1, 2), 5000),
            &idx,
        )
        .unwrap();
        assert_eq!(sys::test_run(&d, &no_key).unwrap().0, pass);
        assert_eq!(counted(), (1, 1));
        // An empty index: the tail call falls through, the frame passes.
        sys::map_delete(&progs, &idx).unwrap();
        let good = frame([10, 0, 0, 5], [239, 1, 1, 1], 5000, 64, None);
        assert_eq!(sys::test_run(&d, &good).unwrap().0, pass);
        assert_eq!(counted(), (1, 1));
    }

    /// Measurement: verifier statistics of the dispatcher and of key
    /// programs of 1 to 250 outputs (`cargo test -p mcr-dataplane --lib
    /// verifier_stats -- --ignored --nocapture`, as root).
    #[test]
    #[ignore]
    fn verifier_stats() {
        use super::super::sys;
        use std::os::fd::AsRawFd;
        let map = sys::percpu_array(24, 16384).unwrap();
        let keys = sys::hash_map(KEYS_MAP_KEY, 4, 16).unwrap();
        let progs = sys::prog_array(16).unwrap();
        let d =
            generate_dispatcher(&plan().local_macs, keys.as_raw_fd(), progs.as_raw_fd()).unwrap();
        let t = std::time::Instant::now();
        let (_fd, log) = sys::load_sched_cls_stats("mcr_test", &d).unwrap();
        eprintln!("dispatcher insns={} load={:?}\n{log}", d.len(), t.elapsed());
        for n in [1u32, 10, 100, 250] {
            let k = FastKey {
                group: Ipv4Addr::new(239, 1, 1, 1),
                port: 5000,
                any_source: Some(FastRule {
                    slot: 1,
                    outputs: (0..n)
                        .map(|i| output(2 + i % 100, [239, 2, 2, 2], 6000, 2 + i))
                        .collect(),
                }),
                by_source: Vec::new(),
            };
            let insns = generate_key(&k, map.as_raw_fd()).unwrap();
            let t = std::time::Instant::now();
            let (_fd, log) = sys::load_sched_cls_stats("mcr_test", &insns).unwrap();
            eprintln!(
                "key of {n} outputs: insns={} load={:?}\n{log}",
                insns.len(),
                t.elapsed()
            );
        }
        // A full interface at start: 1,024 one-output keys, each loaded
        // and put in the program array.
        let progs = sys::prog_array(1024).unwrap();
        let t = std::time::Instant::now();
        for i in 0..1024u32 {
            let k = FastKey {
                group: Ipv4Addr::from(0xef0a_0000 + i),
                port: 5000,
                any_source: Some(FastRule {
                    slot: 1,
                    outputs: vec![output(2, [239, 2, 2, 2], 6000, 2)],
                }),
                by_source: Vec::new(),
            };
            let insns = generate_key(&k, map.as_raw_fd()).unwrap();
            let fd = sys::load_sched_cls("mcr_test", &insns).unwrap();
            sys::prog_array_set(&progs, i, &fd).unwrap();
        }
        eprintln!("1,024 one-output keys loaded in {:?}", t.elapsed());
    }
}
