// -m limit (revision 0): limit_mt() of xt_limit.c on the rule's bucket in MapSlot::Limits,
// with the kernel's clock (bpf_jiffies64()) and its atomics (xchg, cmpxchg).
#include <cstddef>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "ir/limit.hpp"

namespace bpfilter::codegen
{

using namespace insn;

namespace
{

constexpr int16_t prev_off = offsetof(maps::LimitBucket, prev);
constexpr int16_t credit_off = offsetof(maps::LimitBucket, credit);
// Where a retry keeps credit_increase across its bpf_jiffies64() call: the frame's map key
// slot, which no lookup uses while a match runs.
constexpr int16_t increase_slot = layout::sub_key;
static_assert(layout::main_key == layout::sub_key);
// limit_mt() loops until its cmpxchg wins; the verifier wants a bound. Each lost race
// means another CPU took or refilled this bucket in between: after this many in a row the
// last answer stands (without its update).
constexpr int tries = 4;

int32_t k(uint32_t v)
{
	return static_cast<int32_t>(v);
}

} // namespace

void emit_limit(Cond &c, const ir::LimitMatch &m, uint32_t hz)
{
	Emitter &em = c.em();
	const ir::limit::Params p = ir::limit::params(m.avg, m.burst, m.credit_cap, m.cost, hz);
	const uint32_t cpj = ir::limit::credits_per_jiffy(hz);
	const uint32_t off = m.slot * static_cast<uint32_t>(sizeof(maps::LimitBucket));

	Label skip(em);
	c.skip_if_failed(skip);
	Label done(em); // R5: 1 when the match passes
	em.emit(call_helper(BPF_FUNC_jiffies64));
	em.ld_map_value(R1, MapSlot::Limits, off);
	{
		// A packet judged but not counted (count_inc 0: a martian, a first fragment
		// before its datagram is whole, OUTPUT's dry run of a looped-back copy) is one
		// netfilter's hook never sees, or sees later: the answer the bucket would give,
		// without taking from it (the run that counts takes).
		Label take(em);
		em.emit(ldx(BPF_W, R2, layout::pkt, layout::pkt_off::count_inc));
		em.jump(jmp32_imm(BPF_JNE, R2, 0), take);
		em.emit(ldx(BPF_DW, R3, R1, prev_off));
		em.emit(alu64_reg(BPF_SUB, R0, R3));
		em.emit(alu64_imm(BPF_MUL, R0, k(cpj)));
		em.emit(ldx(BPF_W, R2, R1, credit_off));
		em.emit(alu32_reg(BPF_ADD, R2, R0));
		{
			Label within(em);
			em.jump(jmp32_imm(BPF_JLE, R2, k(p.credit_cap)), within);
			em.emit(mov32(R2, k(p.credit_cap)));
		}
		em.emit(mov64(R5, 0));
		{
			Label poor(em);
			em.jump(jmp32_imm(BPF_JLT, R2, k(p.cost)), poor);
			em.emit(mov64(R5, 1));
		}
		em.jump(ja(), done);
		take.bind();
	}
	{
		// "fastpath if there is nothing to update": credit < cost && prev == jiffies.
		Label slow(em);
		em.emit(ldx(BPF_W, R2, R1, credit_off));
		em.jump(jmp32_imm(BPF_JGE, R2, k(p.cost)), slow);
		em.emit(ldx(BPF_DW, R3, R1, prev_off));
		em.emit(mov64(R5, 0));
		em.jump(jmp_reg(BPF_JEQ, R3, R0), done);
		slow.bind();
	}
	for (int i = 0; i < tries; i++) {
		if (i > 0) { // now = jiffies, again
			em.emit(call_helper(BPF_FUNC_jiffies64));
			em.ld_map_value(R1, MapSlot::Limits, off);
		}
		// credit_increase += (now - xchg(&priv->prev, now)) * CREDITS_PER_JIFFY, in u32.
		em.emit(mov64(R3, R0));
		em.emit(atomic_xchg64(R1, R3, prev_off));
		em.emit(alu64_reg(BPF_SUB, R0, R3));
		em.emit(alu64_imm(BPF_MUL, R0, k(cpj)));
		if (i == 0) {
			em.emit(mov32(R4, 0));
		} else {
			em.emit(ldx(BPF_W, R4, R10, increase_slot));
		}
		em.emit(alu32_reg(BPF_ADD, R4, R0));
		if (i + 1 < tries)
			em.emit(stx(BPF_W, R10, R4, increase_slot));
		// new_credit = min(old_credit + credit_increase, credit_cap), in u32.
		em.emit(ldx(BPF_W, R0, R1, credit_off));
		em.emit(mov32(R2, 0));
		em.emit(alu32_reg(BPF_ADD, R2, R0));
		em.emit(alu32_reg(BPF_ADD, R2, R4));
		{
			Label within(em);
			em.jump(jmp32_imm(BPF_JLE, R2, k(p.credit_cap)), within);
			em.emit(mov32(R2, k(p.credit_cap)));
		}
		em.emit(mov64(R5, 0));
		{
			Label poor(em);
			em.jump(jmp32_imm(BPF_JLT, R2, k(p.cost)), poor);
			em.emit(alu32_imm(BPF_SUB, R2, k(p.cost)));
			em.emit(mov64(R5, 1));
		}
		// cmpxchg(&priv->credit, old_credit, new_credit) == old_credit: done.
		em.emit(mov64(R3, R0));
		em.emit(atomic_cmpxchg32(R1, R2, credit_off));
		em.jump(jmp32_reg(BPF_JEQ, R0, R3), done);
	}
	done.bind();
	em.emit(alu64_imm(BPF_XOR, R5, 1));
	c.fail_if(R5, Cond::Val::Bit, false);
	skip.bind();
}

} // namespace bpfilter::codegen
