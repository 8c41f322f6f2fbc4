// The ipt_ip part of a rule (-s -d -i -o -p -f and their inversions), as ip_packet_match() does it.
#include <linux/netfilter_ipv4/ip_tables.h>

#include <cstring>
#include <initializer_list>
#include <optional>
#include <utility>

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

bool has(HookSet hooks, ir::Hook h)
{
	return (hooks & hook_bit(h)) != 0;
}

// What the test comes to over several hooks: a constant only if it is the same one at each.
Fold combine(std::initializer_list<std::pair<bool, Fold>> per_hook)
{
	std::optional<Fold> all;
	for (auto [served, f] : per_hook) {
		if (!served)
			continue;
		if (f == Fold::Test || (all && *all != f))
			return Fold::Test;
		all = f;
	}
	return all.value_or(Fold::Always);
}

// A device name against the all-zero name of a hook that has no such device (the input
// device at LOCAL_OUT, the output device at LOCAL_IN): the outcome is known now.
Fold fold_no_iface(const ir::Iface &i, bool invert)
{
	bool differs = false;
	for (size_t k = 0; k < i.name.size(); k++)
		differs |= (i.name[k] & i.mask[k]) != 0;
	return constant(differs != invert);
}

Fold fold_iface(const ir::Iface &i, bool invert)
{
	// An all-zero mask compares equal to every device.
	if (all_zero(i.mask))
		return constant(invert);
	return Fold::Test;
}

Fold fold_iface_in(const ir::Iface &i, bool invert, HookSet hooks)
{
	return combine({{has(hooks, ir::Hook::LocalIn), fold_iface(i, invert)},
			{has(hooks, ir::Hook::Forward), fold_iface(i, invert)},
			{has(hooks, ir::Hook::LocalOut), fold_no_iface(i, invert)}});
}

Fold fold_iface_out(const ir::Iface &o, bool invert, HookSet hooks)
{
	return combine({{has(hooks, ir::Hook::LocalIn), fold_no_iface(o, invert)},
			{has(hooks, ir::Hook::Forward), fold_iface(o, invert)},
			{has(hooks, ir::Hook::LocalOut), fold_iface(o, invert)}});
}

Fold fold_proto(uint16_t proto, bool invert)
{
	if (proto == 0) // "any", even when inverted
		return Fold::Always;
	if (proto > 0xff) // struct ipt_ip's proto is 16 bits, iphdr's 8: never equal
		return constant(!invert);
	return Fold::Test;
}

// NF_INVF(invert, (flags & IPT_F_FRAG) && !isfrag) fails the rule.
Fold fold_frag(uint8_t flags, bool invert, HookSet hooks)
{
	// Without IPT_F_FRAG the test is false whatever the packet.
	if (!(flags & IPT_F_FRAG))
		return constant(invert);
	// LOCAL_IN sees reassembled datagrams, whose fragment offset is 0; we judge those at
	// fragment offset 0 only. FORWARD sees every fragment (without connection tracking),
	// and LOCAL_OUT those a raw socket sends piece by piece, so they test.
	if (hooks & hook_defrag)
		return constant(!invert);
	return combine({{has(hooks, ir::Hook::LocalIn), constant(!invert)},
			{has(hooks, ir::Hook::Forward), Fold::Test},
			{has(hooks, ir::Hook::LocalOut), Fold::Test}});
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

// ifname_compare_aligned(): (dev ^ name) & mask, 8 bytes at a time, against the name
// at pkt + `field`.
void emit_iface(Cond &c, int16_t field, const ir::Iface &i, bool invert)
{
	Emitter &em = c.em();
	if (c.mode() == Cond::Mode::Accumulate) {
		// R3 = the masked difference of both words.
		bool first = true;
		for (size_t k = 0; k < 2; k++) {
			const uint64_t mask = word(i.mask, k);
			if (!mask)
				continue;
			em.emit(ldx(BPF_DW, R1, layout::pkt, static_cast<int16_t>(field + 8 * k)));
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
		em.emit(ldx(BPF_DW, R1, layout::pkt, static_cast<int16_t>(field + 8 * k)));
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

Fold fold_ip(const ir::IpHeaderMatch &ip, HookSet hooks)
{
	const Fold parts[] = {
		fold_addr(ip.src, ip.src_mask, inv(ip, IPT_INV_SRCIP)),
		fold_addr(ip.dst, ip.dst_mask, inv(ip, IPT_INV_DSTIP)),
		fold_iface_in(ip.in, inv(ip, IPT_INV_VIA_IN), hooks),
		fold_iface_out(ip.out, inv(ip, IPT_INV_VIA_OUT), hooks),
		fold_proto(ip.proto, inv(ip, IPT_INV_PROTO)),
		fold_frag(ip.flags, inv(ip, IPT_INV_FRAG), hooks),
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

bool tests_in_iface(const ir::IpHeaderMatch &ip, HookSet hooks)
{
	return fold_ip(ip, hooks) == Fold::Test &&
	       fold_iface_in(ip.in, inv(ip, IPT_INV_VIA_IN), hooks) == Fold::Test;
}

bool tests_out_iface(const ir::IpHeaderMatch &ip, HookSet hooks)
{
	return fold_ip(ip, hooks) == Fold::Test &&
	       fold_iface_out(ip.out, inv(ip, IPT_INV_VIA_OUT), hooks) == Fold::Test;
}

void emit_ip(Cond &c, const ir::IpHeaderMatch &ip, HookSet hooks)
{
	// The caller has folded the rule: nothing here is constantly false. The order is
	// ip_packet_match()'s, though any order gives the same answer.
	emit_addr(c, off::saddr, ip.src, ip.src_mask, inv(ip, IPT_INV_SRCIP));
	emit_addr(c, off::daddr, ip.dst, ip.dst_mask, inv(ip, IPT_INV_DSTIP));
	if (fold_iface_in(ip.in, inv(ip, IPT_INV_VIA_IN), hooks) == Fold::Test)
		emit_iface(c, off::ifname, ip.in, inv(ip, IPT_INV_VIA_IN));
	if (fold_iface_out(ip.out, inv(ip, IPT_INV_VIA_OUT), hooks) == Fold::Test)
		emit_iface(c, off::out_ifname, ip.out, inv(ip, IPT_INV_VIA_OUT));
	if (fold_proto(ip.proto, inv(ip, IPT_INV_PROTO)) == Fold::Test) {
		c.em().emit(ldx(BPF_W, R1, layout::pkt, off::proto));
		c.eq32(R1, ip.proto, inv(ip, IPT_INV_PROTO));
	}
	if (fold_frag(ip.flags, inv(ip, IPT_INV_FRAG), hooks) == Fold::Test) {
		// Fails on a datagram's first piece or a whole one; inverted, on a later piece.
		c.em().emit(ldx(BPF_W, R1, layout::pkt, off::frag));
		c.em().emit(alu32_imm(BPF_AND, R1, 0x1fff));
		c.fail_if(R1, Cond::Val::Value32, !inv(ip, IPT_INV_FRAG));
	}
}

} // namespace bpfilter::codegen
