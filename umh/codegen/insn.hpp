// BPF instruction builders: one constexpr function per instruction form, no macros.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

namespace bpfilter::codegen
{

enum Reg : uint8_t { R0 = 0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

namespace insn
{

constexpr bpf_insn make(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	bpf_insn i{};
	i.code = code;
	i.dst_reg = dst & 0xf;
	i.src_reg = src & 0xf;
	i.off = off;
	i.imm = imm;
	return i;
}

// ALU on all 64 bits, and on the low 32 (which zero-extends the result).
constexpr bpf_insn alu64_imm(uint8_t op, Reg dst, int32_t imm)
{
	return make(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn alu64_reg(uint8_t op, Reg dst, Reg src)
{
	return make(BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn alu32_imm(uint8_t op, Reg dst, int32_t imm)
{
	return make(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn alu32_reg(uint8_t op, Reg dst, Reg src)
{
	return make(BPF_ALU | op | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn mov64(Reg dst, Reg src)
{
	return alu64_reg(BPF_MOV, dst, src);
}
constexpr bpf_insn mov64(Reg dst, int32_t imm)
{
	return alu64_imm(BPF_MOV, dst, imm);
}
constexpr bpf_insn mov32(Reg dst, int32_t imm)
{
	return alu32_imm(BPF_MOV, dst, imm);
}

// Network to host order of the low `bits` of dst (a swap on this little-endian target).
constexpr bpf_insn be(Reg dst, int32_t bits)
{
	return make(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, bits);
}

// Memory: size is BPF_B, BPF_H, BPF_W or BPF_DW.
constexpr bpf_insn ldx(uint8_t size, Reg dst, Reg src, int16_t off)
{
	return make(BPF_LDX | BPF_MEM | size, dst, src, off, 0);
}
constexpr bpf_insn stx(uint8_t size, Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | BPF_MEM | size, dst, src, off, 0);
}
constexpr bpf_insn st(uint8_t size, Reg dst, int16_t off, int32_t imm)
{
	return make(BPF_ST | BPF_MEM | size, dst, 0, off, imm);
}

// Conditional jumps; `off` is relative to the next instruction. The Emitter fills it in
// from labels, so builders take 0 by default.
constexpr bpf_insn jmp_imm(uint8_t op, Reg dst, int32_t imm, int16_t off = 0)
{
	return make(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn jmp_reg(uint8_t op, Reg dst, Reg src, int16_t off = 0)
{
	return make(BPF_JMP | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn jmp32_imm(uint8_t op, Reg dst, int32_t imm, int16_t off = 0)
{
	return make(BPF_JMP32 | op | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn jmp32_reg(uint8_t op, Reg dst, Reg src, int16_t off = 0)
{
	return make(BPF_JMP32 | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn ja(int16_t off = 0)
{
	return make(BPF_JMP | BPF_JA, 0, 0, off, 0);
}

constexpr bpf_insn call_helper(int32_t func)
{
	return make(BPF_JMP | BPF_CALL, 0, 0, 0, func);
}
// A BPF-to-BPF call; imm is the callee's first instruction relative to the next one.
constexpr bpf_insn call_pseudo(int32_t rel = 0)
{
	return make(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, rel);
}
constexpr bpf_insn exit()
{
	return make(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// *(size *)(dst + off) += src, atomically (BPF_ATOMIC with BPF_ADD; BPF_W or BPF_DW).
constexpr bpf_insn atomic_add(uint8_t size, Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | size | BPF_ATOMIC, dst, src, off, BPF_ADD);
}

// *(size *)(dst + off) |= src, atomically (BPF_ATOMIC with BPF_OR).
constexpr bpf_insn atomic_or(uint8_t size, Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | size | BPF_ATOMIC, dst, src, off, BPF_OR);
}

// src = fetch_add((u64 *)(dst + off), src) (BPF_ATOMIC with BPF_ADD | BPF_FETCH).
constexpr bpf_insn atomic_fetch_add64(Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | BPF_DW | BPF_ATOMIC, dst, src, off, BPF_ADD | BPF_FETCH);
}
// src = xchg((u64 *)(dst + off), src) (BPF_ATOMIC with BPF_XCHG).
constexpr bpf_insn atomic_xchg64(Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | BPF_DW | BPF_ATOMIC, dst, src, off, BPF_XCHG);
}
// r0 = cmpxchg((u32 *)(dst + off), r0, src) (BPF_ATOMIC with BPF_CMPXCHG): stores src when
// the word equals w0; w0 gets the word as it was.
constexpr bpf_insn atomic_cmpxchg32(Reg dst, Reg src, int16_t off)
{
	return make(BPF_STX | BPF_W | BPF_ATOMIC, dst, src, off, BPF_CMPXCHG);
}

// The two halves of a 64-bit immediate load. src is BPF_PSEUDO_MAP_FD for a map.
constexpr bpf_insn ld_imm64_lo(Reg dst, uint8_t src, uint64_t value)
{
	return make(BPF_LD | BPF_DW | BPF_IMM, dst, src, 0,
		    static_cast<int32_t>(value & 0xffffffffu));
}
constexpr bpf_insn ld_imm64_hi(uint64_t value)
{
	return make(0, 0, 0, 0, static_cast<int32_t>(value >> 32));
}

} // namespace insn
} // namespace bpfilter::codegen
