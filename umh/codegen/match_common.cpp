// Pieces every matcher family uses: range tests and the hotdrop of a cut-off transport header.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen {

using namespace insn;

void emit_range(Emitter &em, int16_t field, uint32_t lo, uint32_t hi, uint32_t max, bool invert,
		Label &no_match)
{
	const bool empty = lo > hi;
	const bool full = lo == 0 && hi >= max;
	const auto k = [](uint32_t v) { return static_cast<int32_t>(v); };

	if (!invert) {
		if (empty) {
			em.jump(ja(), no_match);
			return;
		}
		if (full)
			return;
		em.emit(ldx(BPF_W, R1, layout::pkt, field));
		if (lo == hi) {
			em.jump(jmp32_imm(BPF_JNE, R1, k(lo)), no_match);
			return;
		}
		if (lo > 0)
			em.jump(jmp32_imm(BPF_JLT, R1, k(lo)), no_match);
		if (hi < max)
			em.jump(jmp32_imm(BPF_JGT, R1, k(hi)), no_match);
		return;
	}

	// Inverted: pass when the field is outside [lo, hi].
	if (empty)
		return;
	if (full) {
		em.jump(ja(), no_match);
		return;
	}
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (lo == hi) {
		em.jump(jmp32_imm(BPF_JEQ, R1, k(lo)), no_match);
	} else if (lo == 0) {
		em.jump(jmp32_imm(BPF_JLE, R1, k(hi)), no_match);
	} else if (hi >= max) {
		em.jump(jmp32_imm(BPF_JGE, R1, k(lo)), no_match);
	} else {
		Label outside(em);
		em.jump(jmp32_imm(BPF_JLT, R1, k(lo)), outside);
		em.jump(jmp32_imm(BPF_JLE, R1, k(hi)), no_match);
	}
}

void emit_need_l4(Emitter &em, uint32_t bytes)
{
	// skb_header_pointer() failed in the kernel: "asked to examine this packet, and we
	// can't. Hence, no choice but to drop."
	Label present(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, layout::pkt_off::l4len));
	em.jump(jmp32_imm(BPF_JGE, R1, static_cast<int32_t>(bytes)), present);
	em.emit(mov64(R0, layout::ret_drop));
	em.emit(exit());
}

} // namespace bpfilter::codegen
