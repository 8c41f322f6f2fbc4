// -m icmp: type, code range, `any`, as icmp_match() in ip_tables.c.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

void emit_icmp(Cond &c, const ir::IcmpMatch &m)
{
	Emitter &em = c.em();
	c.no_fragment(false);
	c.need_l4(8); // sizeof(struct icmphdr), fetched even for type `any`

	// (type == 0xff || (type matches && code in range)) ^ invert
	if (m.type == 0xff) {
		if (m.invert)
			c.fail();
		return;
	}
	if (!m.invert) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::icmp_type));
		c.eq32(R1, m.type, false);
		c.range(off::icmp_code, m.code_min, m.code_max, 0xff, false);
		return;
	}
	if (c.mode() == Cond::Mode::Accumulate) {
		// R3 = 1 when the packet is not of this type and code: the inverted match passes.
		em.emit(ldx(BPF_W, R3, layout::pkt, off::icmp_type));
		em.emit(alu32_imm(BPF_XOR, R3, m.type));
		em.emit(alu64_imm(BPF_NEG, R3, 0));
		em.emit(alu64_imm(BPF_RSH, R3, 63));
		c.out_of_range_bit(off::icmp_code, m.code_min, m.code_max, 0xff, R2);
		em.emit(alu64_reg(BPF_OR, R3, R2));
		c.fail_if(R3, Cond::Val::Bit, true);
		return;
	}
	Label other_type(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::icmp_type));
	em.jump(jmp32_imm(BPF_JNE, R1, m.type), other_type);
	c.range(off::icmp_code, m.code_min, m.code_max, 0xff, true);
}

} // namespace bpfilter::codegen
