// -m icmp: type, code range, `any`, as icmp_match() in ip_tables.c.
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen {

using namespace insn;
namespace off = layout::pkt_off;

void emit_icmp(Emitter &em, const ir::IcmpMatch &m, Label &no_match)
{
	emit_need_l4(em, 8); // sizeof(struct icmphdr), fetched even for type `any`

	// (type == 0xff || (type matches && code in range)) ^ invert
	if (m.type == 0xff) {
		if (m.invert)
			em.jump(ja(), no_match);
		return;
	}
	if (!m.invert) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::icmp_type));
		em.jump(jmp32_imm(BPF_JNE, R1, m.type), no_match);
		emit_range(em, off::icmp_code, m.code_min, m.code_max, 0xff, false, no_match);
		return;
	}
	Label other_type(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::icmp_type));
	em.jump(jmp32_imm(BPF_JNE, R1, m.type), other_type);
	emit_range(em, off::icmp_code, m.code_min, m.code_max, 0xff, true, no_match);
}

} // namespace bpfilter::codegen
