// -m tcp and -m udp: ports, --tcp-flags, --tcp-option, as tcp_mt() and udp_mt() in xt_tcpudp.c.
#include <linux/netfilter/xt_tcpudp.h>

#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen {

using namespace insn;
namespace off = layout::pkt_off;

namespace {

void emit_ports(Emitter &em, int16_t field, const ir::PortRange &r, bool invert, Label &no_match)
{
	emit_range(em, field, r.lo, r.hi, 0xffff, invert, no_match);
}

} // namespace

void emit_tcp(Emitter &em, const ir::TcpMatch &m, Label &no_match)
{
	// The order is the kernel's: what comes before a hotdrop decides whether it happens.
	emit_need_l4(em, 20); // sizeof(struct tcphdr)
	emit_ports(em, off::sport, m.sport, m.invflags & XT_TCP_INV_SRCPT, no_match);
	emit_ports(em, off::dport, m.dport, m.invflags & XT_TCP_INV_DSTPT, no_match);

	// NF_INVF(XT_TCP_INV_FLAGS, (th[13] & flg_mask) == flg_cmp) must hold.
	const bool flags_inv = m.invflags & XT_TCP_INV_FLAGS;
	if (m.flg_mask == 0 || (m.flg_cmp & ~m.flg_mask)) {
		const bool equal = m.flg_mask == 0 && m.flg_cmp == 0;
		if (equal == flags_inv)
			em.jump(ja(), no_match);
	} else {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::tcp_flags));
		if (m.flg_mask != 0xff)
			em.emit(alu32_imm(BPF_AND, R1, m.flg_mask));
		em.jump(jmp32_imm(flags_inv ? BPF_JEQ : BPF_JNE, R1, m.flg_cmp), no_match);
	}

	if (m.option) {
		// doff * 4 < 20, or options running past the datagram: hotdrop. The prologue
		// walked the options as tcp_find_option() does and marked every kind it met.
		Label fine(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::opt_hotdrop));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), fine);
		em.emit(mov64(R0, layout::ret_drop));
		em.emit(exit());
		fine.bind();
		em.emit(ldx(BPF_B, R1, layout::pkt, static_cast<int16_t>(off::opt_seen + m.option)));
		em.jump(jmp32_imm((m.invflags & XT_TCP_INV_OPTION) ? BPF_JNE : BPF_JEQ, R1, 0),
			no_match);
	}
}

void emit_udp(Emitter &em, const ir::UdpMatch &m, Label &no_match)
{
	emit_need_l4(em, 8); // sizeof(struct udphdr)
	emit_ports(em, off::sport, m.sport, m.invflags & XT_UDP_INV_SRCPT, no_match);
	emit_ports(em, off::dport, m.dport, m.invflags & XT_UDP_INV_DSTPT, no_match);
}

} // namespace bpfilter::codegen
