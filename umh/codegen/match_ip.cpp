// The ipt_ip part of a rule (-s -d -i -o -p -f and their inversions), as ip_packet_match() does it.
#include <linux/netfilter_ipv4/ip_tables.h>

#include <cstring>

#include "codegen/layout.hpp"
#include "codegen/matchers.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;

namespace
{

// A field whose test fails when `fails` (NF_INVF already applied) regardless of the packet.
Fold constant(bool fails)
{
	return fails ? Fold::Never : Fold::Always;
}

bool inv(const ir::IpHeaderMatch &ip, uint8_t flag)
{
	return (ip.invflags & flag) != 0;
}

// NF_INVF(invert, (addr & mask) != want).
Fold fold_addr(uint32_t want, uint32_t mask, bool invert)
{
	if (mask == 0)
		return constant((want != 0) != invert);
	if (want & ~mask) // bits outside the mask never compare equal
		return constant(!invert);
	return Fold::Test;
}

bool all_zero(const std::array<uint8_t, 16> &a)
{
	for (uint8_t b : a)
		if (b)
			return false;
	return true;
}

Fold fold_iface_in(const ir::Iface &i, bool invert)
{
	// An all-zero mask compares equal to every device.
	if (all_zero(i.mask))
		return constant(invert);
	return Fold::Test;
}

Fold fold_iface_out(const ir::Iface &o, bool invert)
{
	// At LOCAL_IN there is no output device: the kernel compares against the all-zero
	// name, so the outcome is known now.
	bool differs = false;
	for (size_t k = 0; k < o.name.size(); k++)
		differs |= (o.name[k] & o.mask[k]) != 0;
	return constant(differs != invert);
}

Fold fold_proto(uint16_t proto, bool invert)
{
	if (proto == 0) // "any", even when inverted
		return Fold::Always;
	if (proto > 0xff) // struct ipt_ip's proto is 16 bits, iphdr's 8: never equal
		return constant(!invert);
	return Fold::Test;
}

Fold fold_frag(uint8_t flags, bool invert)
{
	// netfilter's LOCAL_IN sees reassembled datagrams, whose fragment offset is 0, and
	// we only judge packets with offset 0: `(flags & IPT_F_FRAG) && !isfrag` is known.
	return constant(((flags & IPT_F_FRAG) != 0) != invert);
}

void emit_addr(Cond &c, int16_t field, uint32_t want, uint32_t mask, bool invert)
{
	if (fold_addr(want, mask, invert) != Fold::Test)
		return;
	Emitter &em = c.em();
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	if (mask != 0xffffffffu)
		em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(mask)));
	c.eq32(R1, want, invert);
}

uint64_t word(const std::array<uint8_t, 16> &a, size_t k)
{
	uint64_t w;
	std::memcpy(&w, a.data() + 8 * k, sizeof(w)); // the same byte order as a BPF load
	return w;
}

// ifname_compare_aligned(): (dev ^ name) & mask, 8 bytes at a time.
void emit_iface_in(Cond &c, const ir::Iface &i, bool invert)
{
	if (fold_iface_in(i, invert) != Fold::Test)
		return;
	Emitter &em = c.em();
	if (c.mode() == Cond::Mode::Accumulate) {
		// R3 = the masked difference of both words.
		bool first = true;
		for (size_t k = 0; k < 2; k++) {
			const uint64_t mask = word(i.mask, k);
			if (!mask)
				continue;
			em.emit(ldx(BPF_DW, R1, layout::pkt,
				    static_cast<int16_t>(off::ifname + 8 * k)));
			em.ld_imm64(R2, word(i.name, k));
			em.emit(alu64_reg(BPF_XOR, R1, R2));
			if (mask != ~uint64_t{0}) {
				em.ld_imm64(R2, mask);
				em.emit(alu64_reg(BPF_AND, R1, R2));
			}
			em.emit(first ? mov64(R3, R1) : alu64_reg(BPF_OR, R3, R1));
			first = false;
		}
		c.fail_if(R3, Cond::Val::Value64, invert);
		return;
	}
	Label differs(em);
	for (size_t k = 0; k < 2; k++) {
		const uint64_t mask = word(i.mask, k);
		if (!mask)
			continue;
		em.emit(ldx(BPF_DW, R1, layout::pkt, static_cast<int16_t>(off::ifname + 8 * k)));
		if (mask != ~uint64_t{0}) {
			em.ld_imm64(R2, mask);
			em.emit(alu64_reg(BPF_AND, R1, R2));
		}
		em.ld_imm64(R2, word(i.name, k) & mask);
		em.jump(jmp_reg(BPF_JNE, R1, R2), invert ? differs : c.no_match());
	}
	if (invert)
		em.jump(ja(), c.no_match()); // equal, but the rule wants a different device
}

} // namespace

Fold fold_ip(const ir::IpHeaderMatch &ip)
{
	const Fold parts[] = {
		fold_addr(ip.src, ip.src_mask, inv(ip, IPT_INV_SRCIP)),
		fold_addr(ip.dst, ip.dst_mask, inv(ip, IPT_INV_DSTIP)),
		fold_iface_in(ip.in, inv(ip, IPT_INV_VIA_IN)),
		fold_iface_out(ip.out, inv(ip, IPT_INV_VIA_OUT)),
		fold_proto(ip.proto, inv(ip, IPT_INV_PROTO)),
		fold_frag(ip.flags, inv(ip, IPT_INV_FRAG)),
	};
	Fold all = Fold::Always;
	for (Fold f : parts) {
		if (f == Fold::Never)
			return Fold::Never;
		if (f == Fold::Test)
			all = Fold::Test;
	}
	return all;
}

void emit_ip(Cond &c, const ir::IpHeaderMatch &ip)
{
	// The caller has folded the rule: nothing here is constantly false.
	emit_addr(c, off::saddr, ip.src, ip.src_mask, inv(ip, IPT_INV_SRCIP));
	emit_addr(c, off::daddr, ip.dst, ip.dst_mask, inv(ip, IPT_INV_DSTIP));
	emit_iface_in(c, ip.in, inv(ip, IPT_INV_VIA_IN));
	if (fold_proto(ip.proto, inv(ip, IPT_INV_PROTO)) == Fold::Test) {
		c.em().emit(ldx(BPF_W, R1, layout::pkt, off::proto));
		c.eq32(R1, ip.proto, inv(ip, IPT_INV_PROTO));
	}
}

} // namespace bpfilter::codegen
