// -m multiport (revision 1): ports and ranges, source, destination or either, as ports_match_v1().
#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

// Jump to `hit` when reg holds a port in r.
void emit_port_hit(Emitter &em, Reg reg, const ir::PortRange &r, Label &hit)
{
	if (r.lo > r.hi)
		return;
	if (r.lo == r.hi) {
		em.jump(jmp32_imm(BPF_JEQ, reg, r.lo), hit);
		return;
	}
	Label below(em);
	if (r.lo > 0)
		em.jump(jmp32_imm(BPF_JLT, reg, r.lo), below);
	if (r.hi < 0xffff)
		em.jump(jmp32_imm(BPF_JLE, reg, r.hi), hit);
	else
		em.jump(ja(), hit);
}

} // namespace

void emit_multiport(Cond &c, const ir::MultiportMatch &m)
{
	Emitter &em = c.em();
	Label &no_match = c.no_match();
	c.no_fragment(false);
	c.need_l4(4); // the two ports
	const bool src = m.dir == ir::MultiportMatch::Dir::Source ||
			 m.dir == ir::MultiportMatch::Dir::Either;
	const bool dst = m.dir == ir::MultiportMatch::Dir::Destination ||
			 m.dir == ir::MultiportMatch::Dir::Either;

	if (c.mode() == Cond::Mode::Accumulate) {
		// R3 = 1 when no range holds a port of the packet: the match is `invert`.
		em.emit(mov64(R3, 1));
		for (const ir::PortRange &r : m.ports) {
			for (int16_t field : {off::dport, off::sport}) {
				if ((field == off::dport && !dst) || (field == off::sport && !src))
					continue;
				c.out_of_range_bit(field, r.lo, r.hi, 0xffff, R2);
				em.emit(alu64_reg(BPF_AND, R3, R2));
			}
		}
		c.fail_if(R3, Cond::Val::Bit, m.invert);
		return;
	}

	Label done(em);
	{
		Label hit(em);
		em.emit(ldx(BPF_W, R2, layout::pkt, off::sport));
		em.emit(ldx(BPF_W, R3, layout::pkt, off::dport));
		// Every hit gives the same answer (true ^ invert), so the order of the tests
		// does not matter; the kernel tests dst before src for `either`.
		for (const ir::PortRange &r : m.ports) {
			if (dst)
				emit_port_hit(em, R3, r, hit);
			if (src)
				emit_port_hit(em, R2, r, hit);
		}
		// No hit: the match is `invert`.
		em.jump(ja(), m.invert ? done : no_match);
		hit.bind();
		if (m.invert)
			em.jump(ja(), no_match);
	}
}

} // namespace bpfilter::codegen
