// -m connlimit (revision 1): connlimit_mt() of xt_connlimit.c on the count the prologue
// worked out for the rule's match (emit_connlimit_probe()), whose new list of tuples the
// match stores in the table's Connlimit map when the rule reaches it, as
// nf_conncount_count_skb() changes the list only then. ir/connlimit.hpp is the same logic
// in C++.
#include <cstddef>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

void emit_connlimit(Cond &c, const ir::ConnlimitMatch &m)
{
	Emitter &em = c.em();
	const auto s = static_cast<int16_t>(sizeof(maps::ConnlimitHead) +
					    sizeof(maps::ConnlimitSlot) * m.slot);
	constexpr int16_t count = offsetof(maps::ConnlimitSlot, count);
	constexpr int16_t write = offsetof(maps::ConnlimitSlot, write);
	constexpr int16_t list = offsetof(maps::ConnlimitSlot, list);
	Label skip(em);
	c.skip_if_failed(skip);
	auto work = [&](Label &none) {
		em.emit(st(BPF_W, R10, layout::sub_key, 0));
		em.ld_map(R1, MapSlot::ConnlimitTmp);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, layout::sub_key));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), none);
	};
	Label answer(em), none(em), counted(em);
	work(none);
	// A packet judged but not counted (count_inc 0) changes nothing.
	em.emit(ldx(BPF_W, R1, layout::pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), answer);
	em.emit(ldx(BPF_W, R1, R0, static_cast<int16_t>(s + write)));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), answer);
	em.emit(mov64(R2, R0));
	em.emit(alu64_imm(BPF_ADD, R2, s));
	em.emit(mov64(R3, R0));
	em.emit(alu64_imm(BPF_ADD, R3, s + list));
	em.ld_map(R1, MapSlot::Connlimit);
	em.emit(mov64(R4, BPF_ANY));
	em.emit(call_helper(BPF_FUNC_map_update_elem));
	// A list that cannot be stored (the map full) is insert_tree()'s failed allocation:
	// count 0, a hotdrop.
	em.jump(jmp_imm(BPF_JNE, R0, 0), none);
	work(none);
	answer.bind();
	em.emit(ldx(BPF_W, R5, R0, static_cast<int16_t>(s + count)));
	em.jump(ja(), counted);
	none.bind();
	em.emit(mov64(R5, 0));
	counted.bind();
	// connections == 0: hotdrop.
	em.emit(mov64(R1, R5));
	em.emit(alu64_imm(BPF_NEG, R1, 0));
	em.emit(alu64_imm(BPF_RSH, R1, 63));
	em.emit(alu64_imm(BPF_XOR, R1, 1));
	em.emit(stx(BPF_W, layout::pkt, R1, off::cl_drop));
	em.emit(mov64(R1, 0));
	{
		Label le(em);
		em.jump(jmp32_imm(BPF_JLE, R5, static_cast<int32_t>(m.limit)), le);
		em.emit(mov64(R1, 1));
		le.bind();
	}
	em.emit(stx(BPF_W, layout::pkt, R1, off::cl_res));
	c.hotdrop_if_field(off::cl_drop);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::cl_res));
	// (connections > limit) ^ XT_CONNLIMIT_INVERT: the rule fails when that is 0.
	c.fail_if(R1, Cond::Val::Bit, (m.flags & 1) == 0);
	skip.bind();
}

} // namespace bpfilter::codegen
