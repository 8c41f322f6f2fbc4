// -m tcp and -m udp: ports, --tcp-flags, --tcp-option, as tcp_mt() and udp_mt() in xt_tcpudp.c.
#include <linux/netfilter/xt_tcpudp.h>

#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

void emit_tcp(Cond &c, const ir::TcpMatch &m)
{
	// The order is the kernel's: what comes before a hotdrop decides whether it happens.
	c.no_fragment(true);
	c.need_l4(20); // sizeof(struct tcphdr)
	c.range(off::sport, m.sport.lo, m.sport.hi, 0xffff, m.invflags & XT_TCP_INV_SRCPT);
	c.range(off::dport, m.dport.lo, m.dport.hi, 0xffff, m.invflags & XT_TCP_INV_DSTPT);

	// NF_INVF(XT_TCP_INV_FLAGS, (th[13] & flg_mask) == flg_cmp) must hold.
	const bool flags_inv = m.invflags & XT_TCP_INV_FLAGS;
	if (m.flg_mask == 0 || (m.flg_cmp & ~m.flg_mask)) {
		const bool equal = m.flg_mask == 0 && m.flg_cmp == 0;
		if (equal == flags_inv)
			c.fail();
	} else {
		c.em().emit(ldx(BPF_W, R1, layout::pkt, off::tcp_flags));
		if (m.flg_mask != 0xff)
			c.em().emit(alu32_imm(BPF_AND, R1, m.flg_mask));
		c.eq32(R1, m.flg_cmp, flags_inv);
	}

	if (m.option) {
		// doff * 4 < 20, or options running past the datagram: hotdrop. The prologue
		// walked the options as tcp_find_option() does and marked every kind it met.
		c.hotdrop_if_field(off::opt_hotdrop);
		c.em().emit(ldx(BPF_B, R1, layout::pkt,
				static_cast<int16_t>(off::opt_seen + m.option)));
		// Fails when the kind was not seen (when it was, inverted).
		c.eq32(R1, 0, !(m.invflags & XT_TCP_INV_OPTION));
	}
}

void emit_udp(Cond &c, const ir::UdpMatch &m)
{
	c.no_fragment(false);
	c.need_l4(8); // sizeof(struct udphdr)
	c.range(off::sport, m.sport.lo, m.sport.hi, 0xffff, m.invflags & XT_UDP_INV_SRCPT);
	c.range(off::dport, m.dport.lo, m.dport.hi, 0xffff, m.invflags & XT_UDP_INV_DSTPT);
}

} // namespace bpfilter::codegen
