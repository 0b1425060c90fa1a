//! The tc ingress program of one input interface, generated from the
//! fast-path rules on it.
//!
//! Per datagram the program:
//! 1. copies the first 42 bytes (Ethernet, IPv4 without options, UDP) to
//!    the stack and gives up (passes the frame on untouched) unless it is
//!    IPv4 without options, UDP, not a fragment, and not sent by one of this
//!    host's interfaces (counted);
//! 2. finds the rule by (group, port), then source, with a chain of
//!    compares against immediates;
//! 3. for each output rewrites the headers in place (MACs, source and
//!    destination address, TTL, destination port; the IPv4 and UDP
//!    checksums follow incrementally, so a checksum of 0 stays 0 and a
//!    checksum the sender left to offload stays right) and sends a clone
//!    out of the output interface (`bpf_clone_redirect`);
//! 4. puts the original headers back and passes the frame on, so local
//!    sockets see the input as if nothing had happened.
//!
//! Counters live in a per-CPU array ([`super::VALUE_WORDS`] words per
//! slot: packets, payload bytes, errors): one slot per rule for its input,
//! one per output; slot 0 counts frames sent by this host.

use super::asm::*;
use std::net::{Ipv4Addr, SocketAddrV4};

const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_STORE_BYTES: i32 = 9;
const HELPER_L3_CSUM: i32 = 10;
const HELPER_L4_CSUM: i32 = 11;
const HELPER_CLONE_REDIRECT: i32 = 13;
const HELPER_LOAD_BYTES: i32 = 26;

const F_RECOMPUTE_CSUM: i32 = 1;
const F_PSEUDO_HDR: i32 = 1 << 4;
const F_MARK_MANGLED_0: i32 = 1 << 5;
/// `TCX_NEXT`: let whatever else is attached (and the stack) see the frame.
const TCX_NEXT: i32 = -1;
const JLT: u8 = 0xa0;

/// Stack layout (offsets from the frame pointer).
/// At 2 mod 4, so that the MAC and IPv4 address words are 4-byte aligned
/// (the verifier refuses misaligned stack loads).
const HDR: i16 = -50; // the original 42 header bytes
const SCRATCH: i16 = -64; // 12 bytes of MACs
const VAL: i16 = -72; // a field value to store
const KEY: i16 = -80; // map key
const RES: i16 = -88; // a clone's result

const HEADER_LEN: i32 = 42;
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
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dest: SocketAddrV4,
    pub ttl: u8,
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
    pub keys: Vec<FastKey>,
}

/// The value as the program loads it from packet memory (network order
/// bytes read as a native integer).
fn raw32(bytes: [u8; 4]) -> u32 {
    u32::from_ne_bytes(bytes)
}

fn raw16(bytes: [u8; 2]) -> u32 {
    u16::from_ne_bytes(bytes) as u32
}

/// A header field's value: fixed by the table, or the input's own (kept in
/// a callee-saved register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Const(u32),
    Orig(Reg),
}

/// The rewritable header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    /// dst + src MAC; None = the input's.
    macs: Option<[u8; 12]>,
    saddr: Val,
    daddr: Val,
    ttl_proto: Val,
    dport: Val,
}

const ORIG_SADDR: Reg = R7;
const ORIG_TTL: Reg = R8;
/// Payload length of the datagram, for the byte counters.
const PAYLOAD_LEN: Reg = R9;

impl Fields {
    fn input(group: Ipv4Addr, port: u16) -> Fields {
        Fields {
            macs: None,
            saddr: Val::Orig(ORIG_SADDR),
            daddr: Val::Const(raw32(group.octets())),
            ttl_proto: Val::Orig(ORIG_TTL),
            dport: Val::Const(raw16(port.to_be_bytes())),
        }
    }

    fn output(o: &FastOutput) -> Fields {
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&o.dst_mac);
        macs[6..].copy_from_slice(&o.src_mac);
        Fields {
            macs: Some(macs),
            saddr: Val::Const(raw32(o.src.octets())),
            daddr: Val::Const(raw32(o.dest.ip().octets())),
            ttl_proto: Val::Const(raw16([o.ttl, 17])),
            dport: Val::Const(raw16(o.dest.port().to_be_bytes())),
        }
    }
}

struct Gen {
    a: Asm,
    map_fd: i32,
    pass: Label,
}

impl Gen {
    fn set(&mut self, r: Reg, v: Val) {
        match v {
            Val::Const(c) => self.a.mov32_imm(r, c),
            Val::Orig(src) => self.a.mov(r, src),
        }
    }

    fn store_val(&mut self, size: Size, v: Val) {
        match v {
            Val::Const(c) => self.a.store_imm(size, FP, VAL, c as i32),
            Val::Orig(src) => self.a.store(size, FP, VAL, src),
        }
    }

    /// bpf_skb_store_bytes(skb, off, fp + from, len, RECOMPUTE_CSUM)
    fn store_bytes(&mut self, off: i32, from: i16, len: i32) {
        self.a.mov(R1, R6);
        self.a.mov_imm(R2, off);
        self.a.mov(R3, FP);
        self.a.alu_imm(OP_ADD, R3, from as i32);
        self.a.mov_imm(R4, len);
        self.a.mov_imm(R5, F_RECOMPUTE_CSUM);
        self.a.call(HELPER_STORE_BYTES);
    }

    fn csum(&mut self, helper: i32, off: i32, from: Val, to: Val, flags: i32) {
        self.a.mov(R1, R6);
        self.a.mov_imm(R2, off);
        self.set(R3, from);
        self.set(R4, to);
        self.a.mov_imm(R5, flags);
        self.a.call(helper);
    }

    /// Rewrites one field, checksums first.
    fn field(&mut self, off: i32, size: Size, from: Val, to: Val, pseudo: bool, ip: bool) {
        if from == to {
            return;
        }
        let width = match size {
            Size::W => 4,
            _ => 2,
        };
        if ip {
            self.csum(HELPER_L3_CSUM, OFF_IP_CSUM, from, to, width);
        }
        if off != OFF_TTL {
            let flags = width | F_MARK_MANGLED_0 | if pseudo { F_PSEUDO_HDR } else { 0 };
            self.csum(HELPER_L4_CSUM, OFF_UDP_CSUM, from, to, flags);
        }
        self.store_val(size, to);
        self.store_bytes(off, VAL, width);
    }

    fn transition(&mut self, from: &Fields, to: &Fields) {
        if from.macs != to.macs {
            match to.macs {
                Some(m) => {
                    for i in 0..3 {
                        let w = raw32(m[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
                        self.a
                            .store_imm(Size::W, FP, SCRATCH + 4 * i as i16, w as i32);
                    }
                    self.store_bytes(0, SCRATCH, 12);
                }
                None => self.store_bytes(0, HDR, 12),
            }
        }
        self.field(OFF_SADDR, Size::W, from.saddr, to.saddr, true, true);
        self.field(OFF_DADDR, Size::W, from.daddr, to.daddr, true, true);
        self.field(OFF_TTL, Size::H, from.ttl_proto, to.ttl_proto, false, true);
        self.field(OFF_DPORT, Size::H, from.dport, to.dport, false, false);
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

    fn rule(&mut self, key: &FastKey, rule: &FastRule) {
        let done = self.a.label();
        self.counter(rule.slot, done);
        self.bump(0, None);
        self.bump(1, Some(PAYLOAD_LEN));
        self.a.bind(done);
        let input = Fields::input(key.group, key.port);
        let mut at = input;
        for o in &rule.outputs {
            let next = Fields::output(o);
            self.transition(&at, &next);
            at = next;
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
        self.transition(&at, &input);
        self.a.ja(self.pass);
    }
}

/// Generates the program of one interface.
pub fn generate(p: &InterfaceProgram, map_fd: i32) -> Result<Vec<Insn>, String> {
    build(p, map_fd)?.finish()
}

fn build(p: &InterfaceProgram, map_fd: i32) -> Result<Asm, String> {
    let mut a = Asm::default();
    let pass = a.label();
    let own = a.label();
    let mut g = Gen { a, map_fd, pass };
    let a = &mut g.a;
    a.mov(R6, R1);
    a.mov(R1, R6);
    a.mov_imm(R2, 0);
    a.mov(R3, FP);
    a.alu_imm(OP_ADD, R3, HDR as i32);
    a.mov_imm(R4, HEADER_LEN);
    a.call(HELPER_LOAD_BYTES);
    a.jmp_imm(JNE, R0, 0, pass);
    a.load(Size::H, R1, FP, HDR + 12);
    a.jmp32_imm(JNE, R1, raw16([0x08, 0x00]), pass);
    a.load(Size::B, R1, FP, HDR + 14);
    a.jmp32_imm(JNE, R1, 0x45, pass);
    a.load(Size::B, R1, FP, HDR + 23);
    a.jmp32_imm(JNE, R1, 17, pass);
    a.load(Size::H, R1, FP, HDR + 20);
    a.alu_imm(OP_AND, R1, raw16([0x3f, 0xff]) as i32);
    a.jmp_imm(JNE, R1, 0, pass);
    if !p.local_macs.is_empty() {
        a.load(Size::W, R1, FP, HDR + 6);
        a.load(Size::H, R2, FP, HDR + 10);
        for m in &p.local_macs {
            let next = a.label();
            a.jmp32_imm(JNE, R1, raw32([m[0], m[1], m[2], m[3]]), next);
            a.jmp32_imm(JEQ, R2, raw16([m[4], m[5]]), own);
            a.bind(next);
        }
    }
    a.load(Size::W, R2, FP, HDR + OFF_DADDR as i16);
    a.load(Size::H, R3, FP, HDR + OFF_DPORT as i16);
    let key_labels: Vec<Label> = p.keys.iter().map(|_| a.label()).collect();
    for (k, l) in p.keys.iter().zip(&key_labels) {
        let next = a.label();
        a.jmp32_imm(JNE, R2, raw32(k.group.octets()), next);
        a.jmp32_imm(JEQ, R3, raw16(k.port.to_be_bytes()), *l);
        a.bind(next);
    }
    a.ja(pass);
    for (k, l) in p.keys.iter().zip(&key_labels) {
        let a = &mut g.a;
        a.bind(*l);
        a.load(Size::W, ORIG_SADDR, FP, HDR + OFF_SADDR as i16);
        a.load(Size::H, ORIG_TTL, FP, HDR + OFF_TTL as i16);
        a.load(Size::H, PAYLOAD_LEN, FP, HDR + 16);
        a.to_be(PAYLOAD_LEN, 16);
        a.jmp_imm(JLT, PAYLOAD_LEN, 28, pass);
        // A frame shorter than its IP total length is left to the engines
        // (which count it truncated).
        a.load(Size::W, R1, R6, 0);
        a.mov(R2, PAYLOAD_LEN);
        a.alu_imm(OP_ADD, R2, 14);
        a.jmp_reg(JLT, R1, R2, pass);
        a.alu_imm(OP_ADD, PAYLOAD_LEN, -28);
        let rule_labels: Vec<Label> = k.by_source.iter().map(|_| a.label()).collect();
        for ((src, _), rl) in k.by_source.iter().zip(&rule_labels) {
            a.jmp32_imm(JEQ, ORIG_SADDR, raw32(src.octets()), *rl);
        }
        let any = a.label();
        match &k.any_source {
            Some(_) => a.ja(any),
            None => a.ja(pass),
        }
        for ((_, rule), rl) in k.by_source.iter().zip(&rule_labels) {
            g.a.bind(*rl);
            g.rule(k, rule);
        }
        g.a.bind(any);
        if let Some(rule) = &k.any_source {
            g.rule(k, rule);
        }
    }
    if !p.local_macs.is_empty() {
        g.a.bind(own);
        let skip = g.a.label();
        g.counter(0, skip);
        g.bump(0, None);
        g.a.bind(skip);
    }
    g.a.bind(pass);
    g.a.mov_imm(R0, TCX_NEXT);
    g.a.exit();
    Ok(g.a)
}
