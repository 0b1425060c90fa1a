//! A small eBPF assembler: just the instructions the fast-path programs
//! use, with labels resolved at the end.
//!
//! The programs are generated from the forwarding table at run time (every
//! constant — groups, ports, MACs, interface indexes — is an immediate), so
//! there is no compiler toolchain and no object file; what the kernel's
//! verifier receives is exactly what [`super::program`] emits.

use std::fmt;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x} r{} r{} {:+} {:#x}",
            self.code,
            self.regs & 0xf,
            self.regs >> 4,
            self.off,
            self.imm
        )
    }
}

/// A register. R0 return value, R1-R5 arguments (clobbered by calls),
/// R6-R9 callee-saved, R10 the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const FP: Reg = Reg(10);

/// Access sizes.
#[derive(Debug, Clone, Copy)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    DW = 0x18,
}

const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const K: u8 = 0x00;
const X: u8 = 0x08;

pub const OP_ADD: u8 = 0x00;
pub const OP_AND: u8 = 0x50;
pub const OP_RSH: u8 = 0x70;
pub const OP_XOR: u8 = 0xa0;
const OP_MOV: u8 = 0xb0;
const OP_END: u8 = 0xd0;
const TO_BE: u8 = 0x08;

const JA: u8 = 0x00;
pub const JEQ: u8 = 0x10;
pub const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// `BPF_PSEUDO_MAP_FD`: the 64-bit immediate load names a map by fd.
const PSEUDO_MAP_FD: u8 = 1;
const PSEUDO_CALL: u8 = 1;

/// A jump target, bound with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
    /// BPF-to-BPF calls: the target goes in `imm`.
    call_fixups: Vec<(usize, Label)>,
}

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst.0 | (src.0 << 4),
        off,
        imm,
    }
}

impl Asm {
    /// Instructions so far (tests).
    #[cfg(test)]
    fn insn_count(&self) -> usize {
        self.insns.len()
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn bind(&mut self, l: Label) {
        debug_assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.insns.len());
    }

    fn push(&mut self, i: Insn) {
        self.insns.push(i);
    }

    /// dst = src (64-bit).
    pub fn mov(&mut self, dst: Reg, src: Reg) {
        self.push(insn(ALU64 | OP_MOV | X, dst, src, 0, 0));
    }

    /// dst = (u32)src (zero-extended).
    pub fn mov32(&mut self, dst: Reg, src: Reg) {
        self.push(insn(ALU | OP_MOV | X, dst, src, 0, 0));
    }

    /// dst = (u32)(dst op imm), zero-extended.
    pub fn alu32_imm(&mut self, op: u8, dst: Reg, imm: i32) {
        self.push(insn(ALU | op | K, dst, R0, 0, imm));
    }

    /// dst = imm (32-bit move, zero-extended: a u32 constant stays
    /// positive).
    pub fn mov32_imm(&mut self, dst: Reg, imm: u32) {
        self.push(insn(ALU | OP_MOV | K, dst, R0, 0, imm as i32));
    }

    /// dst = imm sign-extended to 64 bits (offsets, negative numbers).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.push(insn(ALU64 | OP_MOV | K, dst, R0, 0, imm));
    }

    /// dst op= imm (64-bit).
    pub fn alu_imm(&mut self, op: u8, dst: Reg, imm: i32) {
        self.push(insn(ALU64 | op | K, dst, R0, 0, imm));
    }

    /// dst op= src (64-bit).
    pub fn alu_reg(&mut self, op: u8, dst: Reg, src: Reg) {
        self.push(insn(ALU64 | op | X, dst, src, 0, 0));
    }

    /// Converts the low `bits` of dst from host to network byte order (and,
    /// being a swap on little-endian hosts, back).
    pub fn to_be(&mut self, dst: Reg, bits: i32) {
        self.push(insn(ALU | OP_END | TO_BE, dst, R0, 0, bits));
    }

    /// dst = *(size *)(src + off)
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(insn(LDX | MEM | size as u8, dst, src, off, 0));
    }

    /// *(size *)(dst + off) = src
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(insn(STX | MEM | size as u8, dst, src, off, 0));
    }

    /// *(size *)(dst + off) = imm
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(insn(ST | MEM | size as u8, dst, R0, off, imm));
    }

    /// if (u32)dst op imm goto target. 32-bit compares: addresses with the
    /// top bit set must not be sign-extended.
    pub fn jmp32_imm(&mut self, op: u8, dst: Reg, imm: u32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(insn(JMP32 | op | K, dst, R0, 0, imm as i32));
    }

    /// if dst op src goto target (64-bit).
    pub fn jmp_reg(&mut self, op: u8, dst: Reg, src: Reg, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(insn(JMP | op | X, dst, src, 0, 0));
    }

    /// if dst op imm goto target (64-bit; for pointers against 0).
    pub fn jmp_imm(&mut self, op: u8, dst: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(insn(JMP | op | K, dst, R0, 0, imm));
    }

    pub fn ja(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(insn(JMP | JA, R0, R0, 0, 0));
    }

    pub fn call(&mut self, helper: i32) {
        self.push(insn(JMP | CALL, R0, R0, 0, helper));
    }

    /// A call of the subprogram starting at `target` (BPF-to-BPF call:
    /// R1-R5 are its arguments, R0 its result, R6-R9 survive it).
    pub fn call_local(&mut self, target: Label) {
        self.call_fixups.push((self.insns.len(), target));
        self.push(insn(JMP | CALL, R0, Reg(PSEUDO_CALL), 0, 0));
    }

    pub fn exit(&mut self) {
        self.push(insn(JMP | EXIT, R0, R0, 0, 0));
    }

    /// dst = the map behind `fd` (a two-slot instruction).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) {
        self.push(insn(
            LD | IMM | Size::DW as u8,
            dst,
            Reg(PSEUDO_MAP_FD),
            0,
            fd,
        ));
        self.push(insn(0, R0, R0, 0, 0));
    }

    /// The finished program, or why it cannot be encoded (an unbound label
    /// or a jump beyond the 16-bit offset range).
    pub fn finish(mut self) -> Result<Vec<Insn>, String> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].ok_or("jump to an unbound label")?;
            let rel = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(rel)
                .map_err(|_| format!("jump of {rel} instructions is out of range"))?;
        }
        for (at, label) in std::mem::take(&mut self.call_fixups) {
            let target = self.labels[label.0].ok_or("call of an unbound label")?;
            self.insns[at].imm = (target as i64 - at as i64 - 1) as i32;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_forward_and_backward() {
        let mut a = Asm::default();
        let top = a.label();
        let end = a.label();
        a.bind(top);
        a.mov_imm(R0, 0);
        a.jmp32_imm(JEQ, R0, 1, end);
        a.ja(top);
        a.bind(end);
        a.exit();
        let p = a.finish().unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].off, 1);
        assert_eq!(p[2].off, -3);
        assert_eq!(p[1].code, 0x16);
        assert_eq!(p[3].code, 0x95);
    }

    #[test]
    fn map_load_takes_two_slots() {
        let mut a = Asm::default();
        a.ld_map_fd(R1, 7);
        assert_eq!(a.insn_count(), 2);
        let p = a.finish().unwrap();
        assert_eq!(p[0].code, 0x18);
        assert_eq!(p[0].regs, 0x11);
        assert_eq!(p[0].imm, 7);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::default();
        let l = a.label();
        a.ja(l);
        assert!(a.finish().is_err());
    }
}
