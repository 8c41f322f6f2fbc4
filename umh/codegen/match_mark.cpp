// -m mark (xt_mark.c's mark_mt) on the packet's mark, -m connmark (xt_connmark.c's connmark_mt)
// on its conntrack entry's, as the prologue left them in the parsed packet.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

// ((mark & mask) == value) ^ invert, with the mark in `field`; invert is the caller's u8, so a
// value above 1 makes the answer true for every packet.
void emit_masked_eq(Cond &c, int16_t field, uint32_t value, uint32_t mask, uint8_t invert)
{
	if (invert > 1)
		return;
	Emitter &em = c.em();
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (mask != 0xffffffffu)
		em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(mask)));
	c.eq32(R1, value, invert != 0);
}

} // namespace

void emit_mark(Cond &c, const ir::MarkMatch &m)
{
	emit_masked_eq(c, off::mark, m.mark, m.mask, m.invert);
}

void emit_connmark(Cond &c, const ir::ConnmarkMatch &m)
{
	// nf_ct_get() gives no entry (INVALID: the state bit alone, without SNAT/DNAT bits):
	// no match, inverted or not.
	constexpr int32_t st_invalid = 1;
	Emitter &em = c.em();
	em.emit(ldx(BPF_W, R1, layout::pkt, off::ct_statebit));
	em.emit(alu32_imm(BPF_XOR, R1, st_invalid));
	c.fail_if(R1, Cond::Val::Value32, true);
	emit_masked_eq(c, off::ct_mark, m.mark, m.mask, m.invert);
}

} // namespace bpfilter::codegen
