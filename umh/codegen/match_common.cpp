// Cond: the tests every matcher family is made of, as jumps or as an accumulated mismatch.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;

namespace
{

int32_t k(uint32_t v)
{
	return static_cast<int32_t>(v);
}

} // namespace

void Cond::or_acc(Reg r)
{
	if (acc_set_) {
		em_.emit(alu64_reg(BPF_OR, layout::acc, r));
	} else {
		em_.emit(mov64(layout::acc, r));
		acc_set_ = true;
	}
}

void Cond::fail_if(Reg r, Val kind, bool invert)
{
	if (branching()) {
		const bool wide = kind == Val::Value64;
		const uint8_t op = invert ? BPF_JEQ : BPF_JNE;
		em_.jump(wide ? jmp_imm(op, r, 0) : jmp32_imm(op, r, 0), no_match_);
		tested_ = true;
		return;
	}
	if (kind == Val::Value32 && !invert) {
		or_acc(r);
		return;
	}
	if (kind == Val::Value64) {
		// Keep it nonzero exactly when it was, below 2^63.
		em_.emit(mov64(R0, r));
		em_.emit(alu64_imm(BPF_RSH, R0, 1));
		em_.emit(alu64_imm(BPF_AND, r, 1));
		em_.emit(alu64_reg(BPF_OR, r, R0));
	}
	if (kind != Val::Bit) {
		// nonzero -> 1: the negation of a value below 2^63 has bit 63 set.
		em_.emit(alu64_imm(BPF_NEG, r, 0));
		em_.emit(alu64_imm(BPF_RSH, r, 63));
	}
	if (invert)
		em_.emit(alu64_imm(BPF_XOR, r, 1));
	or_acc(r);
	tested_ = true;
}

void Cond::eq32(Reg r, uint32_t want, bool invert)
{
	if (branching()) {
		em_.jump(jmp32_imm(invert ? BPF_JEQ : BPF_JNE, r, k(want)), no_match_);
		tested_ = true;
		return;
	}
	if (want)
		em_.emit(alu32_imm(BPF_XOR, r, k(want)));
	fail_if(r, Val::Value32, invert);
}

void Cond::fail()
{
	if (branching()) {
		em_.jump(ja(), no_match_);
		tested_ = true;
		return;
	}
	em_.emit(mov64(R1, 1));
	or_acc(R1);
	tested_ = true;
}

void Cond::out_of_range_bit(int16_t field, uint32_t lo, uint32_t hi, uint32_t max, Reg dst)
{
	if (lo > hi) {
		em_.emit(mov64(dst, 1));
		return;
	}
	if (lo == 0 && hi >= max) {
		em_.emit(mov64(dst, 0));
		return;
	}
	// (u32)(x - lo) > hi - lo, as the sign of (hi - lo) - (u32)(x - lo) in 64 bits.
	em_.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (lo)
		em_.emit(alu32_imm(BPF_SUB, R1, k(lo)));
	em_.emit(mov32(dst, k(hi - lo)));
	em_.emit(alu64_reg(BPF_SUB, dst, R1));
	em_.emit(alu64_imm(BPF_RSH, dst, 63));
}

void Cond::range(int16_t field, uint32_t lo, uint32_t hi, uint32_t max, bool invert)
{
	const bool empty = lo > hi;
	const bool full = lo == 0 && hi >= max;
	if (empty || full) {
		// Inside an empty range never, a full one always.
		if (empty != invert)
			fail();
		return;
	}
	if (lo == hi) {
		em_.emit(ldx(BPF_W, R1, layout::pkt, field));
		eq32(R1, lo, invert);
		return;
	}
	if (!branching()) {
		out_of_range_bit(field, lo, hi, max, R2);
		fail_if(R2, Val::Bit, invert);
		return;
	}
	tested_ = true;
	em_.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (!invert) {
		if (lo > 0)
			em_.jump(jmp32_imm(BPF_JLT, R1, k(lo)), no_match_);
		if (hi < max)
			em_.jump(jmp32_imm(BPF_JGT, R1, k(hi)), no_match_);
		return;
	}
	// Inverted: pass when the field is outside [lo, hi].
	if (lo == 0) {
		em_.jump(jmp32_imm(BPF_JLE, R1, k(hi)), no_match_);
	} else if (hi >= max) {
		em_.jump(jmp32_imm(BPF_JGE, R1, k(lo)), no_match_);
	} else {
		Label outside(em_);
		em_.jump(jmp32_imm(BPF_JLT, R1, k(lo)), outside);
		em_.jump(jmp32_imm(BPF_JLE, R1, k(hi)), no_match_);
	}
}

void Cond::hotdrop_if_bit(Reg r)
{
	if (mode_ == Mode::Accumulate && acc_set_) {
		// Only if every test so far passed: acc == 0.
		em_.emit(mov64(R2, layout::acc));
		em_.emit(alu64_imm(BPF_NEG, R2, 0));
		em_.emit(alu64_imm(BPF_RSH, R2, 63));
		em_.emit(alu64_imm(BPF_XOR, R2, 1));
		em_.emit(alu64_reg(BPF_AND, r, R2));
	}
	// The short way (drop) falls through, so the verifier finishes it at once.
	Label fine(em_);
	em_.jump(jmp_imm(BPF_JEQ, r, 0), fine);
	em_.emit(mov64(R0, layout::ret_drop));
	em_.emit(exit());
}

void Cond::need_l4(uint32_t bytes)
{
	// skb_header_pointer() failed in the kernel: "asked to examine this packet, and we
	// can't. Hence, no choice but to drop."
	em_.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::l4len));
	em_.emit(alu64_imm(BPF_SUB, R1, k(bytes)));
	em_.emit(alu64_imm(BPF_RSH, R1, 63)); // l4len < bytes
	hotdrop_if_bit(R1);
}

void Cond::hotdrop_if_field(int16_t field)
{
	em_.emit(ldx(BPF_W, R1, layout::pkt, field));
	hotdrop_if_bit(R1);
}

void Cond::no_fragment(bool hotdrop_at_one)
{
	if (!fragments_)
		return;
	if (hotdrop_at_one) {
		em_.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::frag));
		em_.emit(alu32_imm(BPF_AND, R1, 0x1fff));
		em_.emit(alu32_imm(BPF_XOR, R1, 1));
		em_.emit(alu64_imm(BPF_SUB, R1, 1));
		em_.emit(alu64_imm(BPF_RSH, R1, 63)); // offset == 1
		hotdrop_if_bit(R1);
	}
	em_.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::frag));
	em_.emit(alu32_imm(BPF_AND, R1, 0x1fff));
	fail_if(R1, Val::Value32, false);
}

void Cond::skip_if_failed(Label &skip)
{
	if (mode_ == Mode::Accumulate && acc_set_)
		em_.jump(jmp_imm(BPF_JNE, layout::acc, 0), skip);
}

void Cond::finish()
{
	if (mode_ == Mode::Accumulate && acc_set_)
		em_.jump(jmp_imm(BPF_JNE, layout::acc, 0), no_match_);
}

} // namespace bpfilter::codegen
