// The header matches: -m length, ttl, tos, dscp, ecn, pkttype, mac, ah and esp, each as its
// match function in net/netfilter (xt_length.c, xt_hl.c, xt_dscp.c, xt_ecn.c, xt_pkttype.c,
// xt_mac.c, ipt_ah.c, xt_esp.c) reads the fields the prologue left in the parsed packet.
#include <cstring>

#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

constexpr uint8_t ecn_op_ip = 0x01, ecn_op_ece = 0x10, ecn_op_cwr = 0x20;

// A bool xor'ed with an int field (length_mt, pkttype_mt, mac_mt): 0 and 1 keep or flip
// the test, any other value makes the match pass whatever the packet.
bool always_passes(uint32_t invert)
{
	return invert > 1;
}

} // namespace

void emit_length(Cond &c, const ir::LengthMatch &m)
{
	if (always_passes(m.invert))
		return;
	c.range(off::ip_len, m.min, m.max, 0xffff, m.invert == 1);
}

void emit_ttl(Cond &c, const ir::TtlMatch &m)
{
	switch (m.mode) {
	case 0: // IPT_TTL_EQ
		c.range(off::ttl, m.ttl, m.ttl, 0xff, false);
		return;
	case 1: // IPT_TTL_NE
		c.range(off::ttl, m.ttl, m.ttl, 0xff, true);
		return;
	case 2: // IPT_TTL_LT
		if (m.ttl == 0)
			c.fail();
		else
			c.range(off::ttl, 0, m.ttl - 1u, 0xff, false);
		return;
	case 3: // IPT_TTL_GT
		if (m.ttl == 0xff)
			c.fail();
		else
			c.range(off::ttl, m.ttl + 1u, 0xff, 0xff, false);
		return;
	default: // ttl_mt() answers false; ttl_mt_check refuses such a mode
		c.fail();
	}
}

void emit_tos(Cond &c, const ir::TosMatch &m)
{
	if ((m.value & ~m.mask) || m.mask == 0) {
		// Known now: equal only when both are 0.
		const bool equal = m.mask == 0 && m.value == 0;
		if (equal == m.invert)
			c.fail();
		return;
	}
	c.em().emit(ldx(BPF_W, R1, layout::pkt, off::tos));
	if (m.mask != 0xff)
		c.em().emit(alu32_imm(BPF_AND, R1, m.mask));
	c.eq32(R1, m.value, m.invert);
}

void emit_ecn(Cond &c, const ir::EcnMatch &m)
{
	Emitter &em = c.em();
	if (m.operation & ecn_op_ip) {
		const bool inv = m.invert & ecn_op_ip;
		if (m.ip_ect > 3) { // never equal
			if (!inv)
				c.fail();
		} else {
			em.emit(ldx(BPF_W, R1, layout::pkt, off::tos));
			em.emit(alu32_imm(BPF_AND, R1, 3));
			c.eq32(R1, m.ip_ect, inv);
		}
	}
	if (!(m.operation & (ecn_op_ece | ecn_op_cwr)))
		return;
	// match_tcp(): false without 20 bytes of header; ECE (CWR) set, or clear if inverted.
	int32_t mask = 0x100, want = 0x100;
	if (m.operation & ecn_op_ece) {
		mask |= 0x40;
		want |= (m.invert & ecn_op_ece) ? 0 : 0x40;
	}
	if (m.operation & ecn_op_cwr) {
		mask |= 0x80;
		want |= (m.invert & ecn_op_cwr) ? 0 : 0x80;
	}
	em.emit(ldx(BPF_W, R1, layout::pkt, off::th13));
	em.emit(alu32_imm(BPF_AND, R1, mask));
	c.eq32(R1, static_cast<uint32_t>(want), false);
}

void emit_pkttype(Cond &c, const ir::PkttypeMatch &m)
{
	if (always_passes(m.invert))
		return;
	if (m.pkttype > 0xff) { // a u8 never equals it
		if (m.invert == 0)
			c.fail();
		return;
	}
	c.em().emit(ldx(BPF_W, R1, layout::pkt, off::pkttype));
	c.eq32(R1, m.pkttype, m.invert == 1);
}

void emit_mac(Cond &c, const ir::MacMatch &m)
{
	Emitter &em = c.em();
	// No Ethernet device or header: false, inverted or not.
	em.emit(ldx(BPF_W, R1, layout::pkt, off::mac_ok));
	c.eq32(R1, 1, false);
	if (always_passes(m.invert))
		return;
	uint64_t want = 0;
	std::memcpy(&want, m.src.data(), 6); // the same byte order as the load
	em.emit(ldx(BPF_DW, R1, layout::pkt, off::mac_src));
	em.ld_imm64(R2, want);
	em.emit(alu64_reg(BPF_XOR, R1, R2));
	c.fail_if(R1, Cond::Val::Value64, m.invert == 1);
}

void emit_spi(Cond &c, const ir::SpiMatch &m)
{
	c.no_fragment(false);
	c.need_l4(m.ah ? 12 : 8); // sizeof(struct ip_auth_hdr), sizeof(struct ip_esp_hdr)
	c.range(m.ah ? off::l4w4 : off::l4w0, m.min, m.max, 0xffffffffu, m.invert);
}

} // namespace bpfilter::codegen
