// REJECT's replies: the ICMP error or TCP reset ipt_REJECT sends, built in place of the rejected
// packet and sent along the route back to the sender (tc ingress), or back where it came from
// (generic XDP). tc ingress marks the reply (layout::reply_mark_magic) so that the output
// device's tc egress program judges it by OUTPUT, as ip_local_out() has netfilter's judged.
//
// What the kernel sends (net/ipv4/netfilter/nf_reject_ipv4.c, net/ipv4/icmp.c __icmp_send()):
// - ICMP (nf_send_unreach() -> icmp_send()): nothing for a later fragment, a packet not
//   sent to this host's MAC address (pkt_type), a broadcast or multicast destination, an
//   ICMP error or unknown type; the global token bucket and the per-peer tokens allow it.
//   IP: TOS (tos & 0x1e) | 0xc0, no DF, TTL ip_default_ttl, the source the packet's
//   destination; ICMP type 3 and the code, then the datagram from its IP header, at most
//   min(MTU, 576) - 28 bytes of it.
// - TCP reset (nf_send_reset()): nothing for a later fragment, a truncated TCP header, a
//   RST, a broadcast or multicast destination. IP: TOS 0, id 0, DF, TTL ip_default_ttl,
//   addresses swapped; TCP: ports swapped, doff 5, with ACK the acknowledged number as
//   sequence and RST alone, else sequence 0 and ACK of seq + SYN + FIN + payload.
// - FORWARD's ICMP error: from the route's preferred source (emit_route()), quoting the
//   datagram with the TTL ip_forward() decremented.
// Not done here (Documentation/supported.md): the transport checksum check before
// replying, echoed IP options, OUTPUT's replies to a raw socket's foreign source.
#include "codegen/reject.hpp"

#include <linux/icmp.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/pkt_cls.h>

#include <bit>
#include <cstddef>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;
namespace dev = maps::device_off;

namespace
{

constexpr Reg ctx = R6;
constexpr Reg pkt = layout::pkt;

// A 16-bit value as the bytes in network order read natively (what a BPF_H store writes).
constexpr int32_t net16(uint16_t v)
{
	return std::endian::native == std::endian::little ? __builtin_bswap16(v) : v;
}

constexpr int16_t eth = layout::main_reply_eth;
constexpr int16_t ip = layout::main_reply_ip;
constexpr int16_t l4 = layout::main_reply_l4;
constexpr int16_t misc = layout::main_reply; // 8 bytes of room

// ICMP's largest quote: 576 - the IP and ICMP headers.
constexpr int32_t max_quote = 576 - 28;

struct Site {
	Flavor flavor;
	ir::Hook hook;
	const ReplySysctls &sys;
	bool xdp() const { return flavor == Flavor::Xdp; }
	bool egress() const { return flavor == Flavor::TcEgress; }
	int16_t data() const { return xdp() ? offsetof(xdp_md, data) : offsetof(__sk_buff, data); }
	int16_t data_end() const
	{
		return xdp() ? offsetof(xdp_md, data_end) : offsetof(__sk_buff, data_end);
	}
	int16_t ifindex() const
	{
		return xdp() ? offsetof(xdp_md, ingress_ifindex) : offsetof(__sk_buff, ifindex);
	}
};

// R0 = the LocalAddrs entry of the address at pkt + field, or 0.
void emit_local_lookup(Emitter &em, int16_t field)
{
	em.emit(st(BPF_W, R10, layout::main_fib, 32));
	em.emit(ldx(BPF_W, R1, pkt, field));
	em.emit(stx(BPF_W, R10, R1, layout::main_fib + 4));
	em.ld_map(R1, MapSlot::LocalAddrs);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_fib));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
}

// R0 = ~fold(R0) & 0xffff, the checksum of a 32-bit one's complement sum. Clobbers R1.
void emit_fold(Emitter &em)
{
	for (int k = 0; k < 2; k++) {
		em.emit(mov64(R1, R0));
		em.emit(alu64_imm(BPF_RSH, R1, 16));
		em.emit(alu64_imm(BPF_AND, R0, 0xffff));
		em.emit(alu64_reg(BPF_ADD, R0, R1));
	}
	em.emit(alu64_imm(BPF_XOR, R0, 0xffff));
}

// r = a one's complement sum of 64 bits folded to 32. Clobbers tmp.
void emit_to32(Emitter &em, Reg r, Reg tmp)
{
	for (int k = 0; k < 2; k++) {
		em.emit(mov64(tmp, r));
		em.emit(alu64_imm(BPF_RSH, tmp, 32));
		em.emit(alu32_imm(BPF_ADD, r, 0)); // zero-extends: the low 32 bits
		em.emit(alu64_reg(BPF_ADD, r, tmp));
	}
}

// R0 = bpf_csum_diff(NULL, 0, R10 + at, len, seed in R5).
void emit_csum_stack(Emitter &em, int16_t at, int32_t len)
{
	em.emit(mov64(R1, 0));
	em.emit(mov64(R2, 0));
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, at));
	em.emit(mov64(R4, len));
	em.emit(call_helper(BPF_FUNC_csum_diff));
}

// The IP header's checksum, over the reply's header on the stack.
void emit_ip_csum(Emitter &em)
{
	em.emit(mov64(R5, 0));
	emit_csum_stack(em, ip, 20);
	emit_fold(em);
	em.emit(stx(BPF_H, R10, R0, ip + 10));
}

// Only the packets netfilter judges as they are: not those it never sees (judged here
// but not counted: martians, groups not joined), not a datagram it sees reassembled
// (judged here on its pieces), not a later fragment (icmp_send(), nf_reject_ip_tcphdr_get()).
// And never to a broadcast or multicast destination (RTCF_BROADCAST, RTCF_MULTICAST).
// Leaves the reply's source address in rj_saddr: the packet's destination (icmp_send()
// takes it at INPUT, RTCF_LOCAL), at OUTPUT our own address (below).
void emit_checks(Emitter &em, const Site &s, Label &drop)
{
	em.emit(ldx(BPF_W, R1, pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), drop);
	em.emit(ldx(BPF_W, R1, pkt, off::frag));
	if (s.hook == ir::Hook::Forward) {
		em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
	} else if (s.egress()) {
		// A raw socket's own pieces are judged one by one; the rest whole.
		Label whole(em), masked(em);
		em.emit(ldx(BPF_W, R2, pkt, off::own_pieces));
		em.jump(jmp32_imm(BPF_JEQ, R2, 0), whole);
		em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
		em.jump(ja(), masked);
		whole.bind();
		em.emit(alu32_imm(BPF_AND, R1, 0x3fff));
		masked.bind();
	} else {
		em.emit(alu32_imm(BPF_AND, R1, 0x3fff));
	}
	em.jump(jmp32_imm(BPF_JNE, R1, 0), drop);

	em.emit(ldx(BPF_W, R1, pkt, off::daddr_h));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), drop);
	em.jump(jmp32_imm(BPF_JEQ, R1, -1), drop);
	em.emit(alu32_imm(BPF_AND, R1, static_cast<int32_t>(0xf0000000u)));
	em.jump(jmp32_imm(BPF_JEQ, R1, static_cast<int32_t>(0xe0000000u)), drop);
	emit_local_lookup(em, off::daddr);
	em.emit(ldx(BPF_W, R1, pkt, off::daddr));
	em.emit(stx(BPF_W, pkt, R1, off::rj_saddr));
	Label not_local(em);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), not_local);
	em.emit(ldx(BPF_B, R1, R0, maps::local_addr_off::flags));
	em.emit(alu32_imm(BPF_AND, R1, maps::broadcast_addr));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), drop);
	if (!s.egress()) {
		not_local.bind();
		return;
	}
	// OUTPUT: the reply goes to the sender, this host. A raw socket's packet with a
	// foreign source would be routed away: not done here (Documentation/supported.md).
	// To one of our addresses (RTCF_LOCAL), icmp_send() replies from the destination;
	// else from the source ip_route_output_key_hash() gives a flow to the sender's
	// address: its local route's preferred source, or that address itself.
	Label local(em), has_prefsrc(em), done(em);
	em.jump(ja(), local);
	not_local.bind();
	emit_local_lookup(em, off::saddr);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), drop);
	em.emit(ldx(BPF_W, R1, R0, maps::local_addr_off::prefsrc));
	em.jump(jmp_imm(BPF_JNE, R1, 0), has_prefsrc);
	em.emit(ldx(BPF_W, R1, pkt, off::saddr));
	has_prefsrc.bind();
	em.emit(stx(BPF_W, pkt, R1, off::rj_saddr));
	em.jump(ja(), done);
	local.bind();
	emit_local_lookup(em, off::saddr);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), drop);
	done.bind();
}

// R1 = the original IP header in the packet, R2 = data_end, with `need` bytes of it
// checked; R3 = rj_l2. Clobbers R4.
void emit_ip_ptr(Emitter &em, const Site &s, int32_t need, Label &drop)
{
	em.emit(ldx(BPF_W, R1, ctx, s.data()));
	em.emit(ldx(BPF_W, R2, ctx, s.data_end()));
	em.emit(ldx(BPF_W, R3, pkt, off::rj_l2));
	em.jump(jmp_imm(BPF_JGT, R3, ETH_HLEN), drop);
	em.emit(alu64_reg(BPF_ADD, R1, R3));
	em.emit(mov64(R4, R1));
	em.emit(alu64_imm(BPF_ADD, R4, need));
	em.jump(jmp_reg(BPF_JGT, R4, R2), drop);
}

constexpr int16_t fib_off(size_t field)
{
	return static_cast<int16_t>(layout::main_fib + field);
}

// tc ingress: the route back to the sender, as netfilter routes the reply
// (nf_send_reset(): ip_route_me_harder(); icmp_send(): icmp_route_lookup()): the lookup
// flavor.cpp makes for FORWARD (bpf_fib_lookup(), no flags, no length) but from lo, from
// the reply's source to the packet's. SUCCESS: out of the route's device, to the MAC
// address the FIB gives; NO_NEIGH: the kernel resolves the next hop
// (bpf_redirect_neigh()). Where the kernel would find no route (unreachable, blackhole,
// prohibit, none at all) nothing is sent. Back out of the input device, to the frame's
// source, as before: when forwarding is off on lo (the FIB answers FWD_DISABLED before any
// lookup; lo's follows net.ipv4.ip_forward), for a sender that is this host (NOT_FWDED),
// and on a device without a link-layer header (a redirect to the next hop needs one).
// Leaves rj_oif (0: the input device), rj_neigh and rj_nh; the Ethernet header on the
// stack gets the FIB's addresses.
void emit_route(Emitter &em, const Site &s, bool icmp, Label &drop)
{
	// FORWARD's ICMP error takes its source from the route (see the top): the lookup is
	// needed even where the reply does not follow it.
	const bool source = icmp && s.hook == ir::Hook::Forward;
	em.emit(st(BPF_W, pkt, off::rj_oif, 0));
	em.emit(st(BPF_W, pkt, off::rj_neigh, 0));
	Label done(em), success(em), not_fwded(em), found(em);
	if (!source) {
		em.emit(ldx(BPF_W, R1, pkt, off::rj_l2));
		em.jump(jmp_imm(BPF_JNE, R1, ETH_HLEN), done);
	}
	for (int16_t k = 0; k < 8; k++)
		em.emit(st(BPF_DW, R10, static_cast<int16_t>(layout::main_fib + 8 * k), 0));
	em.emit(st(BPF_B, R10, fib_off(offsetof(bpf_fib_lookup, family)), 2)); // AF_INET
	em.emit(st(BPF_B, R10, fib_off(offsetof(bpf_fib_lookup, l4_protocol)),
		   icmp ? IPPROTO_ICMP : IPPROTO_TCP));
	if (icmp) {
		// icmp_send() routes with RT_TOS() of the packet's TOS; a reset goes with 0.
		emit_ip_ptr(em, s, 20, drop);
		em.emit(ldx(BPF_B, R3, R1, 1));
		em.emit(alu64_imm(BPF_AND, R3, 0x1e));
		em.emit(stx(BPF_B, R10, R3, fib_off(offsetof(bpf_fib_lookup, tos))));
	}
	if (!source) {
		em.emit(ldx(BPF_W, R1, pkt, off::rj_saddr));
		em.emit(stx(BPF_W, R10, R1, fib_off(offsetof(bpf_fib_lookup, ipv4_src))));
	}
	em.emit(ldx(BPF_W, R1, pkt, off::saddr));
	em.emit(stx(BPF_W, R10, R1, fib_off(offsetof(bpf_fib_lookup, ipv4_dst))));
	// From lo: the key of the kernel's output route lookup (flowi4_iif LOOPBACK_IFINDEX,
	// no output device), which policy routing rules see.
	em.emit(st(BPF_W, R10, fib_off(offsetof(bpf_fib_lookup, ifindex)), 1));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_fib));
	em.emit(mov64(R3, static_cast<int32_t>(sizeof(bpf_fib_lookup))));
	// BPF_FIB_LOOKUP_SRC: fib_result_prefsrc(), the source ip_route_output_key_hash()
	// gives a flow without one.
	em.emit(mov64(R4, source ? BPF_FIB_LOOKUP_SRC : 0));
	em.emit(call_helper(BPF_FUNC_fib_lookup));
	em.emit(mov64(R7, R0));
	if (!source) {
		em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_FWD_DISABLED), done);
		em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_NOT_FWDED), not_fwded);
	}
	em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_SUCCESS), found);
	em.jump(jmp_imm(BPF_JNE, R0, BPF_FIB_LKUP_RET_NO_NEIGH), drop);
	found.bind();
	if (source) {
		em.emit(ldx(BPF_W, R1, R10, fib_off(offsetof(bpf_fib_lookup, ipv4_src))));
		em.emit(stx(BPF_W, pkt, R1, off::rj_saddr));
		if (s.xdp()) {
			// XDP_TX sends it back out of the input device: the source is all it takes.
			done.bind();
			return;
		}
		em.emit(ldx(BPF_W, R1, pkt, off::rj_l2));
		em.jump(jmp_imm(BPF_JNE, R1, ETH_HLEN), done);
	}
	em.jump(jmp_imm(BPF_JEQ, R7, BPF_FIB_LKUP_RET_SUCCESS), success);
	em.emit(ldx(BPF_W, R1, R10, fib_off(offsetof(bpf_fib_lookup, ifindex))));
	em.emit(stx(BPF_W, pkt, R1, off::rj_oif));
	em.emit(st(BPF_W, pkt, off::rj_neigh, 1));
	em.emit(ldx(BPF_W, R1, R10, fib_off(offsetof(bpf_fib_lookup, ipv4_dst))));
	em.emit(stx(BPF_W, pkt, R1, off::rj_nh));
	em.jump(ja(), done);

	success.bind();
	em.emit(ldx(BPF_W, R1, R10, fib_off(offsetof(bpf_fib_lookup, ifindex))));
	em.emit(stx(BPF_W, pkt, R1, off::rj_oif));
	for (int16_t k = 0; k < ETH_ALEN; k += 2) {
		em.emit(ldx(BPF_H, R1, R10,
			    static_cast<int16_t>(fib_off(offsetof(bpf_fib_lookup, dmac)) + k)));
		em.emit(stx(BPF_H, R10, R1, static_cast<int16_t>(eth + k)));
		em.emit(ldx(BPF_H, R1, R10,
			    static_cast<int16_t>(fib_off(offsetof(bpf_fib_lookup, smac)) + k)));
		em.emit(stx(BPF_H, R10, R1, static_cast<int16_t>(eth + ETH_ALEN + k)));
	}
	em.jump(ja(), done);

	// A local or broadcast destination, or no route at all: only a sender that is this
	// host (a packet on lo) is answered, back through lo.
	if (not_fwded.aimed_at()) {
		not_fwded.bind();
		emit_local_lookup(em, off::saddr);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), drop);
	}
	done.bind();
}

// The reply's Ethernet header on the stack, and rj_l2: to the sender's MAC address from
// the device's at ingress; at egress, for lo's ingress (all zero). For ICMP at XDP, a frame
// not sent to the device's address (broadcast, multicast, another host's) gets nothing.
void emit_eth(Emitter &em, const Site &s, bool icmp, Label &drop)
{
	for (int16_t k = 0; k < 8; k++)
		em.emit(st(BPF_DW, R10, static_cast<int16_t>(layout::main_reply + 8 * k), 0));
	em.emit(st(BPF_H, R10, eth + 12, net16(ETH_P_IP)));
	if (s.xdp())
		em.emit(st(BPF_W, pkt, off::rj_l2, ETH_HLEN));
	em.emit(ldx(BPF_W, R1, ctx, s.ifindex()));
	em.emit(stx(BPF_W, R10, R1, layout::main_dev_key));
	em.ld_map(R1, MapSlot::Devices);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_dev_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), drop);
	if (!s.xdp()) {
		em.emit(ldx(BPF_B, R1, R0, dev::l2len));
		em.emit(stx(BPF_W, pkt, R1, off::rj_l2));
	}
	if (s.egress())
		return;
	Label l3(em);
	if (!s.xdp()) {
		em.emit(ldx(BPF_W, R1, pkt, off::rj_l2));
		em.jump(jmp_imm(BPF_JNE, R1, ETH_HLEN), l3);
	}
	em.emit(ldx(BPF_W, R2, ctx, s.data()));
	em.emit(ldx(BPF_W, R3, ctx, s.data_end()));
	em.emit(mov64(R4, R2));
	em.emit(alu64_imm(BPF_ADD, R4, ETH_HLEN));
	em.jump(jmp_reg(BPF_JGT, R4, R3), drop);
	if (icmp && s.xdp()) {
		// skb->pkt_type != PACKET_HOST: icmp_send() answers nothing.
		em.emit(ldx(BPF_W, R1, R2, 0));
		em.emit(ldx(BPF_W, R3, R0, dev::mac));
		em.jump(jmp_reg(BPF_JNE, R1, R3), drop);
		em.emit(ldx(BPF_H, R1, R2, 4));
		em.emit(ldx(BPF_H, R3, R0, dev::mac + 4));
		em.jump(jmp_reg(BPF_JNE, R1, R3), drop);
	}
	// Two bytes at a time: the header sits 2 bytes off an 8-byte boundary on the stack.
	for (int16_t k = 0; k < ETH_ALEN; k += 2) {
		em.emit(ldx(BPF_H, R1, R2, static_cast<int16_t>(ETH_ALEN + k)));
		em.emit(stx(BPF_H, R10, R1, static_cast<int16_t>(eth + k)));
		em.emit(ldx(BPF_H, R1, R0, static_cast<int16_t>(dev::mac + k)));
		em.emit(stx(BPF_H, R10, R1, static_cast<int16_t>(eth + ETH_ALEN + k)));
	}
	l3.bind();
	if (!s.xdp() || (icmp && s.hook == ir::Hook::Forward))
		emit_route(em, s, icmp, drop);
}

// icmpv4_global_allow() and icmpv4_xrlim_allow() for a destination unreachable: the
// namespace's token bucket (unless the packet came in on lo) and the sender's tokens
// (unless the reply leaves through lo, as OUTPUT's do).
void emit_rate_limit(Emitter &em, const Site &s, Label &drop)
{
	if (!(s.sys.icmp_ratemask & (1u << 3))) // ICMP_DEST_UNREACH not limited
		return;
	constexpr Reg global = R7, now = R8;
	Label allowed(em), credit_left(em);
	if (!s.egress()) {
		em.emit(ldx(BPF_W, R1, ctx, s.ifindex()));
		em.jump(jmp_imm(BPF_JEQ, R1, 1), allowed); // LOOPBACK_IFINDEX
	}
	em.emit(st(BPF_W, R10, layout::main_key, 0));
	em.ld_map(R1, MapSlot::IcmpGlobal);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), drop);
	em.emit(mov64(global, R0));
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.emit(mov64(now, R0));
	em.emit(ldx(BPF_DW, R1, global, offsetof(maps::IcmpGlobalValue, credit)));
	em.jump(jmp_imm(BPF_JSGT, R1, 0), credit_left);
	// icmp_global_allow(): credit for the time since the last refill, at most a second's.
	Label capped(em);
	em.emit(mov64(R3, now));
	em.emit(ldx(BPF_DW, R2, global, offsetof(maps::IcmpGlobalValue, stamp)));
	em.emit(alu64_reg(BPF_SUB, R3, R2));
	em.jump(jmp_imm(BPF_JLE, R3, 1'000'000'000), capped);
	em.emit(mov64(R3, 1'000'000'000));
	capped.bind();
	em.jump(jmp_imm(BPF_JLT, R3, 20'000'000), drop); // HZ / 50
	em.emit(alu64_imm(BPF_MUL, R3, static_cast<int32_t>(s.sys.icmp_msgs_per_sec)));
	em.emit(alu64_imm(BPF_DIV, R3, 1'000'000'000));
	em.jump(jmp_imm(BPF_JEQ, R3, 0), drop);
	em.emit(stx(BPF_DW, global, now, offsetof(maps::IcmpGlobalValue, stamp)));
	em.emit(alu64_reg(BPF_ADD, R1, R3));
	Label within(em);
	em.jump(jmp_imm(BPF_JSLE, R1, static_cast<int32_t>(s.sys.icmp_msgs_burst)), within);
	em.emit(mov64(R1, static_cast<int32_t>(s.sys.icmp_msgs_burst)));
	within.bind();
	em.emit(stx(BPF_DW, global, R1, offsetof(maps::IcmpGlobalValue, credit)));
	credit_left.bind();

	if (!s.egress()) {
		// inet_peer_xrlim_allow(): a new peer starts with a full burst.
		const uint64_t timeout = uint64_t{s.sys.icmp_ratelimit_ms} * 1'000'000;
		constexpr int16_t key = layout::main_key, value = layout::main_fib;
		Label have(em), refused(em), consume(em);
		em.emit(ldx(BPF_W, R1, pkt, off::saddr));
		em.emit(stx(BPF_W, R10, R1, key));
		em.ld_map(R1, MapSlot::IcmpPeers);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, key));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.jump(jmp_imm(BPF_JNE, R0, 0), have);
		em.emit(st(BPF_DW, R10, value, 0));
		em.ld_imm64(R1, 60'000'000'000ull);
		em.emit(mov64(R2, now));
		em.emit(alu64_reg(BPF_SUB, R2, R1));
		em.emit(stx(BPF_DW, R10, R2, value + 8));
		em.ld_map(R1, MapSlot::IcmpPeers);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, key));
		em.emit(mov64(R3, R10));
		em.emit(alu64_imm(BPF_ADD, R3, value));
		em.emit(mov64(R4, BPF_NOEXIST));
		em.emit(call_helper(BPF_FUNC_map_update_elem));
		em.ld_map(R1, MapSlot::IcmpPeers);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, key));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), consume); // no peer: allowed
		have.bind();
		em.emit(ldx(BPF_DW, R1, R0, offsetof(maps::IcmpPeerValue, tokens)));
		em.emit(ldx(BPF_DW, R2, R0, offsetof(maps::IcmpPeerValue, last)));
		em.emit(alu64_reg(BPF_ADD, R1, now));
		em.emit(alu64_reg(BPF_SUB, R1, R2));
		em.emit(stx(BPF_DW, R0, now, offsetof(maps::IcmpPeerValue, last)));
		Label under_cap(em);
		em.ld_imm64(R2, 6 * timeout); // XRLIM_BURST_FACTOR
		em.jump(jmp_reg(BPF_JLE, R1, R2), under_cap);
		em.emit(mov64(R1, R2));
		under_cap.bind();
		em.ld_imm64(R2, timeout);
		em.jump(jmp_reg(BPF_JLT, R1, R2), refused);
		em.emit(alu64_reg(BPF_SUB, R1, R2));
		em.emit(stx(BPF_DW, R0, R1, offsetof(maps::IcmpPeerValue, tokens)));
		em.jump(ja(), consume);
		refused.bind();
		em.emit(stx(BPF_DW, R0, R1, offsetof(maps::IcmpPeerValue, tokens)));
		em.jump(ja(), drop);
		consume.bind();
	}
	// icmp_global_consume(): 0, 1 or 2 credits.
	em.emit(call_helper(BPF_FUNC_get_prandom_u32));
	em.emit(alu64_imm(BPF_MOD, R0, 3));
	em.emit(alu64_imm(BPF_NEG, R0, 0));
	em.emit(atomic_add(BPF_DW, global, R0, offsetof(maps::IcmpGlobalValue, credit)));
	allowed.bind();
}

// The reply is on the stack (Ethernet from `eth`, then `l3` bytes from `ip`) and the
// packet has room for it where the datagram was: store it and send it.
void emit_send_tc(Emitter &em, const Site &s, int32_t l3, Label &drop)
{
	Label l2(em), stored(em);
	em.emit(ldx(BPF_W, R1, pkt, off::rj_l2));
	em.jump(jmp_imm(BPF_JNE, R1, 0), l2);
	if (s.egress()) {
		// lo takes frames: a device without a link-layer header gets one.
		em.emit(mov64(R1, ctx));
		em.emit(mov64(R2, ETH_HLEN));
		em.emit(mov64(R3, 0));
		em.emit(call_helper(BPF_FUNC_skb_change_head));
		em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
		em.jump(ja(), l2);
	} else {
		em.emit(mov64(R1, ctx));
		em.emit(mov64(R2, 0));
		em.emit(mov64(R3, R10));
		em.emit(alu64_imm(BPF_ADD, R3, ip));
		em.emit(mov64(R4, l3));
		em.emit(mov64(R5, 0));
		em.emit(call_helper(BPF_FUNC_skb_store_bytes));
		em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
		em.jump(ja(), stored);
	}
	l2.bind();
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, 0));
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, eth));
	em.emit(mov64(R4, ETH_HLEN + l3));
	em.emit(mov64(R5, 0));
	em.emit(call_helper(BPF_FUNC_skb_store_bytes));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	stored.bind();
	// The mark the output device's OUTPUT program knows the reply by
	// (layout::reply_mark_magic).
	em.emit(ldx(BPF_W, R1, pkt, off::rj_ct));
	em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(layout::reply_mark_magic)));
	em.emit(stx(BPF_W, ctx, R1, offsetof(__sk_buff, mark)));
	em.emit(mov64(R1, static_cast<int32_t>(layout::reply_priority_magic)));
	em.emit(stx(BPF_W, ctx, R1, offsetof(__sk_buff, priority)));
	if (s.egress()) {
		// To this host, as ip_local_out() sends netfilter's: routed out of lo
		// (LOOPBACK_IFINDEX) by bpf_redirect_neigh(), which gives it the output route
		// (delivered on it, as the kernel's own loopback traffic, where an skb redirected
		// to lo's ingress would be routed afresh) and does not mark it redirected (generic
		// XDP skips a redirected skb on lo's ingress). lo's OUTPUT judges it (-o lo), then
		// lo's INPUT (-i lo).
		em.emit(mov64(R1, 1));
		em.emit(mov64(R2, 0));
		em.emit(mov64(R3, 0));
		em.emit(mov64(R4, 0));
		em.emit(call_helper(BPF_FUNC_redirect_neigh));
		em.emit(exit());
		return;
	}
	// Where emit_route() sent it.
	Label routed(em), neigh(em);
	em.emit(ldx(BPF_W, R1, pkt, off::rj_oif));
	em.jump(jmp_imm(BPF_JNE, R1, 0), routed);
	em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, ifindex)));
	routed.bind();
	em.emit(ldx(BPF_W, R2, pkt, off::rj_neigh));
	em.jump(jmp_imm(BPF_JNE, R2, 0), neigh);
	em.emit(mov64(R2, 0));
	em.emit(call_helper(BPF_FUNC_redirect));
	em.emit(exit());
	neigh.bind();
	// struct bpf_redir_neigh: AF_INET and the next hop.
	constexpr int16_t nh = layout::main_fib;
	em.emit(st(BPF_DW, R10, nh, 2));
	em.emit(st(BPF_DW, R10, nh + 8, 0));
	em.emit(st(BPF_DW, R10, nh + 16, 0));
	em.emit(ldx(BPF_W, R2, pkt, off::rj_nh));
	em.emit(stx(BPF_W, R10, R2, nh + 4));
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, nh));
	em.emit(mov64(R3, static_cast<int32_t>(sizeof(bpf_redir_neigh))));
	em.emit(mov64(R4, 0));
	em.emit(call_helper(BPF_FUNC_redirect_neigh));
	em.emit(exit());
}

void emit_send_xdp(Emitter &em, int32_t l3, Label &drop)
{
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, 0));
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, eth));
	em.emit(mov64(R4, ETH_HLEN + l3));
	em.emit(call_helper(BPF_FUNC_xdp_store_bytes));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	em.emit(mov64(R0, XDP_TX));
	em.emit(exit());
}

// XDP: the frame becomes `len` bytes long (R1 = len on entry).
void emit_xdp_length(Emitter &em, const Site &s, Label &drop)
{
	em.emit(ldx(BPF_W, R2, ctx, s.data_end()));
	em.emit(ldx(BPF_W, R3, ctx, s.data()));
	em.emit(alu64_reg(BPF_SUB, R2, R3));
	em.emit(alu64_reg(BPF_SUB, R1, R2));
	em.emit(mov64(R2, R1));
	em.emit(mov64(R1, ctx));
	em.emit(call_helper(BPF_FUNC_xdp_adjust_tail));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
}

void emit_unreach(Emitter &em, const Site &s, Label &drop)
{
	emit_checks(em, s, drop);
	if (s.flavor == Flavor::TcIngress) {
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), drop); // not PACKET_HOST
	}
	emit_eth(em, s, true, drop);

	// No error about an ICMP error (or a type the kernel does not know).
	Label not_icmp(em);
	em.emit(ldx(BPF_W, R1, pkt, off::proto));
	em.jump(jmp_imm(BPF_JNE, R1, IPPROTO_ICMP), not_icmp);
	em.emit(ldx(BPF_W, R2, pkt, off::tot_len));
	em.emit(ldx(BPF_W, R1, pkt, off::l4len));
	em.emit(alu64_reg(BPF_SUB, R2, R1));
	em.emit(ldx(BPF_W, R1, pkt, off::rj_l2));
	em.emit(alu64_reg(BPF_ADD, R2, R1));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R3, R10));
	em.emit(alu64_imm(BPF_ADD, R3, misc));
	em.emit(mov64(R4, 1));
	em.emit(call_helper(s.xdp() ? BPF_FUNC_xdp_load_bytes : BPF_FUNC_skb_load_bytes));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	em.emit(ldx(BPF_B, R1, R10, misc));
	em.jump(jmp_imm(BPF_JGT, R1, 18), drop); // NR_ICMP_TYPES
	em.emit(mov64(R2, 0x1efe));		 // icmp_pointers[].error
	em.emit(alu64_reg(BPF_RSH, R2, R1));
	em.emit(alu64_imm(BPF_AND, R2, 1));
	em.jump(jmp_imm(BPF_JNE, R2, 0), drop);
	if (s.egress()) {
		// The kernel's own echo and timestamp replies (icmp_reply(), from the
		// namespace's unbound raw ICMP socket): netfilter's icmp_send() runs inside
		// their output path, where icmp_xmit_lock() is already held on this CPU, and
		// sends nothing.
		Label reply(em), not_kernels(em);
		em.jump(jmp_imm(BPF_JEQ, R1, ICMP_ECHOREPLY), reply);
		em.jump(jmp_imm(BPF_JNE, R1, ICMP_TIMESTAMPREPLY), not_kernels);
		reply.bind();
		em.emit(ldx(BPF_DW, R1, ctx, offsetof(__sk_buff, sk)));
		em.jump(jmp_imm(BPF_JEQ, R1, 0), not_kernels);
		em.emit(call_helper(BPF_FUNC_sk_fullsock));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), not_kernels);
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, type)));
		em.jump(jmp32_imm(BPF_JNE, R1, 3), not_kernels); // SOCK_RAW
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, protocol)));
		em.jump(jmp32_imm(BPF_JNE, R1, IPPROTO_ICMP), not_kernels);
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, src_ip4)));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), drop);
		not_kernels.bind();
	}
	not_icmp.bind();

	emit_rate_limit(em, s, drop);

	// The quote: the datagram from its IP header, up to min(MTU, 576) - 28 bytes. OUTPUT's
	// reply goes through lo (MTU 65536).
	constexpr Reg quote = R8;
	if (s.egress()) {
		em.emit(mov64(quote, max_quote));
	} else {
		Label small(em);
		em.emit(st(BPF_W, R10, misc, 0));
		em.emit(mov64(R1, ctx));
		if (s.xdp())
			em.emit(mov64(R2, 0)); // the context's device
		else
			em.emit(ldx(BPF_W, R2, pkt, off::rj_oif)); // the route's (0: the context's)
		em.emit(mov64(R3, R10));
		em.emit(alu64_imm(BPF_ADD, R3, misc));
		em.emit(mov64(R4, 0));
		em.emit(mov64(R5, 0));
		em.emit(call_helper(BPF_FUNC_check_mtu));
		em.emit(ldx(BPF_W, quote, R10, misc));
		em.jump(jmp_imm(BPF_JLE, quote, 576), small);
		em.emit(mov64(quote, 576));
		small.bind();
		em.emit(alu64_imm(BPF_SUB, quote, 28));
		em.jump(jmp_imm(BPF_JSLE, quote, 20), drop); // no room for the IP header
	}
	Label whole(em);
	em.emit(ldx(BPF_W, R1, pkt, off::tot_len));
	em.jump(jmp_reg(BPF_JGE, R1, quote), whole);
	em.emit(mov64(quote, R1));
	whole.bind();
	em.jump(jmp_imm(BPF_JGT, quote, max_quote), drop); // bounds for the verifier
	em.jump(jmp_imm(BPF_JLT, quote, 20), drop);
	em.emit(stx(BPF_W, pkt, quote, off::rj_len));
	if (!s.xdp()) {
		// The quote in the linear part, and the packet ours to write.
		em.emit(ldx(BPF_W, R2, pkt, off::rj_l2));
		em.emit(alu64_reg(BPF_ADD, R2, quote));
		em.emit(mov64(R1, ctx));
		em.emit(call_helper(BPF_FUNC_skb_pull_data));
		em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	}

	// IP header: id as ip_select_ident() would give a datagram without DF: not
	// predictable, here random.
	em.emit(call_helper(BPF_FUNC_get_prandom_u32));
	em.emit(stx(BPF_H, R10, R0, ip + 4));
	em.emit(st(BPF_B, R10, ip, 0x45));
	em.emit(mov64(R1, quote));
	em.emit(alu64_imm(BPF_ADD, R1, 28));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, ip + 2));
	em.emit(st(BPF_B, R10, ip + 8, static_cast<int32_t>(s.sys.ip_default_ttl & 0xff)));
	em.emit(st(BPF_B, R10, ip + 9, IPPROTO_ICMP));
	em.emit(ldx(BPF_W, R1, pkt, off::rj_saddr));
	em.emit(stx(BPF_W, R10, R1, ip + 12));
	em.emit(ldx(BPF_W, R1, pkt, off::saddr));
	em.emit(stx(BPF_W, R10, R1, ip + 16));
	// ICMP header: type, code as reject_tg() maps `with`, the rest zero.
	em.emit(st(BPF_B, R10, l4, 3)); // ICMP_DEST_UNREACH
	em.emit(ldx(BPF_W, R1, pkt, off::rj_with));
	for (auto [with, code] : {std::pair{IPT_ICMP_NET_PROHIBITED, 9},       // ICMP_NET_ANO
				  std::pair{IPT_ICMP_HOST_PROHIBITED, 10},     // ICMP_HOST_ANO
				  std::pair{IPT_ICMP_ADMIN_PROHIBITED, 13}}) { // ICMP_PKT_FILTERED
		Label other(em);
		em.jump(jmp_imm(BPF_JNE, R1, with), other);
		em.emit(mov64(R1, code));
		other.bind();
	}
	em.emit(stx(BPF_B, R10, R1, l4 + 1));

	// The quote's sum, 4 bytes at a time, then the 0-3 left (as csum_partial() pads
	// them); its TOS for ours.
	emit_ip_ptr(em, s, 20, drop);
	if (s.hook == ir::Hook::Forward) {
		// ip_forward() took one off the TTL before FORWARD (ip_decrease_ttl(), the
		// checksum adjusted as it does): the error quotes that datagram.
		Label no_carry(em);
		em.emit(ldx(BPF_B, R3, R1, 8));
		em.emit(alu32_imm(BPF_SUB, R3, 1));
		em.emit(stx(BPF_B, R1, R3, 8));
		em.emit(ldx(BPF_H, R3, R1, 10));
		em.emit(alu32_imm(BPF_ADD, R3, net16(0x0100)));
		em.jump(jmp32_imm(BPF_JLT, R3, 0xffff), no_carry);
		em.emit(alu32_imm(BPF_ADD, R3, 1));
		no_carry.bind();
		em.emit(stx(BPF_H, R1, R3, 10));
	}
	em.emit(ldx(BPF_B, R3, R1, 1));
	em.emit(alu64_imm(BPF_AND, R3, 0x1e)); // RT_TOS()
	em.emit(alu64_imm(BPF_OR, R3, 0xc0));  // IPTOS_PREC_INTERNETCONTROL
	em.emit(stx(BPF_B, R10, R3, ip + 1));
	constexpr Reg sum = R4, i = R5, words = R3, tmp = R7;
	em.emit(mov64(sum, 0));
	em.emit(mov64(i, 0));
	em.emit(mov64(words, quote));
	em.emit(alu64_imm(BPF_AND, words, -4));
	Label loop(em), tail(em), summed(em);
	loop.bind();
	em.jump(jmp_reg(BPF_JGE, i, words), tail);
	em.jump(jmp_imm(BPF_JGT, i, max_quote - 4), tail);
	em.emit(mov64(R0, R1));
	em.emit(alu64_reg(BPF_ADD, R0, i));
	em.emit(mov64(tmp, R0));
	em.emit(alu64_imm(BPF_ADD, tmp, 4));
	em.jump(jmp_reg(BPF_JGT, tmp, R2), drop);
	em.emit(ldx(BPF_W, tmp, R0, 0));
	em.emit(alu64_reg(BPF_ADD, sum, tmp));
	em.emit(alu64_imm(BPF_ADD, i, 4));
	em.jump(ja(), loop);
	tail.bind();
	// Here i == words, a multiple of 4 (Linux 6.1 loses the packet pointer when `words`
	// is added instead).
	em.emit(mov64(R0, R1));
	em.emit(alu64_reg(BPF_ADD, R0, i));
	em.emit(mov64(i, quote));
	em.emit(alu64_imm(BPF_AND, i, 3));
	for (int16_t k = 0; k < 3; k++) {
		em.jump(jmp_imm(BPF_JLE, i, k), summed);
		em.emit(mov64(tmp, R0));
		em.emit(alu64_imm(BPF_ADD, tmp, k + 1));
		em.jump(jmp_reg(BPF_JGT, tmp, R2), drop);
		em.emit(ldx(BPF_B, tmp, R0, k));
		const int shift = std::endian::native == std::endian::little ? 8 * k : 24 - 8 * k;
		if (shift)
			em.emit(alu64_imm(BPF_LSH, tmp, shift));
		em.emit(alu64_reg(BPF_ADD, sum, tmp));
	}
	summed.bind();
	emit_to32(em, sum, R0); // csum_diff()'s seed is 32 bits
	em.emit(mov64(R5, sum));
	emit_csum_stack(em, l4, 8);
	emit_fold(em);
	em.emit(stx(BPF_H, R10, R0, l4 + 2));
	emit_ip_csum(em);

	// The reply takes the packet's place: its headers before the quote, the rest cut.
	em.emit(ldx(BPF_W, quote, pkt, off::rj_len));
	if (s.xdp()) {
		em.emit(mov64(R1, ctx));
		em.emit(mov64(R2, -28));
		em.emit(call_helper(BPF_FUNC_xdp_adjust_head));
		em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
		em.emit(mov64(R1, quote));
		em.emit(alu64_imm(BPF_ADD, R1, ETH_HLEN + 28));
		emit_xdp_length(em, s, drop);
		emit_send_xdp(em, 28, drop);
		return;
	}
	em.emit(ldx(BPF_W, R2, pkt, off::rj_l2));
	em.emit(alu64_reg(BPF_ADD, R2, quote));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R3, 0));
	em.emit(call_helper(BPF_FUNC_skb_change_tail));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, 28));
	em.emit(mov64(R3, BPF_ADJ_ROOM_MAC));
	em.emit(mov64(R4, 0));
	em.emit(call_helper(BPF_FUNC_skb_adjust_room));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	emit_send_tc(em, s, 28, drop);
}

void emit_reset(Emitter &em, const Site &s, Label &drop)
{
	em.emit(ldx(BPF_W, R1, pkt, off::l4len));
	em.jump(jmp_imm(BPF_JLT, R1, 20), drop); // no whole TCP header
	em.emit(ldx(BPF_W, R1, pkt, off::tcp_flags));
	em.emit(alu32_imm(BPF_AND, R1, 0x04));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), drop); // no RST for a RST
	emit_checks(em, s, drop);
	emit_eth(em, s, false, drop);

	// nf_reject_iphdr_put()
	em.emit(st(BPF_B, R10, ip, 0x45));
	em.emit(st(BPF_H, R10, ip + 2, net16(40)));
	em.emit(st(BPF_H, R10, ip + 6, net16(0x4000))); // IP_DF
	em.emit(st(BPF_B, R10, ip + 8, static_cast<int32_t>(s.sys.ip_default_ttl & 0xff)));
	em.emit(st(BPF_B, R10, ip + 9, IPPROTO_TCP));
	em.emit(ldx(BPF_W, R1, pkt, off::daddr));
	em.emit(stx(BPF_W, R10, R1, ip + 12));
	em.emit(ldx(BPF_W, R1, pkt, off::saddr));
	em.emit(stx(BPF_W, R10, R1, ip + 16));

	// nf_reject_ip_tcphdr_put()
	em.emit(ldx(BPF_W, R1, pkt, off::dport));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, l4));
	em.emit(ldx(BPF_W, R1, pkt, off::sport));
	em.emit(be(R1, 16));
	em.emit(stx(BPF_H, R10, R1, l4 + 2));
	em.emit(st(BPF_B, R10, l4 + 12, 0x50)); // doff 5
	// The original TCP header's sequence and acknowledgement numbers.
	em.emit(ldx(BPF_W, R5, pkt, off::tot_len));
	em.emit(ldx(BPF_W, R4, pkt, off::l4len));
	em.emit(alu64_reg(BPF_SUB, R5, R4)); // ihl
	em.jump(jmp_imm(BPF_JGT, R5, 60), drop);
	emit_ip_ptr(em, s, 20, drop);
	em.emit(alu64_reg(BPF_ADD, R1, R5));
	em.emit(mov64(R4, R1));
	em.emit(alu64_imm(BPF_ADD, R4, 20));
	em.jump(jmp_reg(BPF_JGT, R4, R2), drop);
	em.emit(ldx(BPF_W, R3, pkt, off::tcp_flags));
	Label no_ack(em), flagged(em);
	em.emit(mov64(R4, R3));
	em.emit(alu64_imm(BPF_AND, R4, 0x10));
	em.jump(jmp_imm(BPF_JEQ, R4, 0), no_ack);
	em.emit(ldx(BPF_W, R4, R1, 8)); // seq = ack_seq
	em.emit(stx(BPF_W, R10, R4, l4 + 4));
	em.emit(st(BPF_B, R10, l4 + 13, 0x04)); // RST
	em.jump(ja(), flagged);
	no_ack.bind();
	// ack_seq = seq + SYN + FIN + the payload's length
	em.emit(ldx(BPF_W, R4, R1, 4));
	em.emit(be(R4, 32));
	em.emit(mov64(R0, R3));
	em.emit(alu64_imm(BPF_AND, R0, 1)); // FIN
	em.emit(alu32_reg(BPF_ADD, R4, R0));
	em.emit(mov64(R0, R3));
	em.emit(alu64_imm(BPF_RSH, R0, 1));
	em.emit(alu64_imm(BPF_AND, R0, 1)); // SYN
	em.emit(alu32_reg(BPF_ADD, R4, R0));
	em.emit(ldx(BPF_W, R0, pkt, off::l4len));
	em.emit(alu32_reg(BPF_ADD, R4, R0));
	em.emit(ldx(BPF_W, R0, pkt, off::tcp_doff));
	em.emit(alu32_reg(BPF_SUB, R4, R0));
	em.emit(be(R4, 32));
	em.emit(stx(BPF_W, R10, R4, l4 + 8));
	em.emit(st(BPF_B, R10, l4 + 13, 0x14)); // RST, ACK
	flagged.bind();

	emit_ip_csum(em);
	// The TCP checksum: the pseudo-header (addresses, protocol, length), then the header.
	em.emit(mov64(R5, 0));
	emit_csum_stack(em, ip + 12, 8);
	em.emit(alu64_imm(BPF_ADD, R0, net16(IPPROTO_TCP + 20)));
	emit_to32(em, R0, R1);
	em.emit(mov64(R5, R0));
	emit_csum_stack(em, l4, 20);
	emit_fold(em);
	em.emit(stx(BPF_H, R10, R0, l4 + 16));

	if (s.xdp()) {
		em.emit(mov64(R1, ETH_HLEN + 40));
		emit_xdp_length(em, s, drop);
		emit_send_xdp(em, 40, drop);
		return;
	}
	em.emit(ldx(BPF_W, R2, pkt, off::rj_l2));
	em.emit(alu64_imm(BPF_ADD, R2, 40));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R3, 0));
	em.emit(call_helper(BPF_FUNC_skb_change_tail));
	em.jump(jmp_imm(BPF_JNE, R0, 0), drop);
	emit_send_tc(em, s, 40, drop);
}

// Native XDP: leave the verdict to the device's tc ingress program (layout::xdp_mark_magic),
// which builds the reply and drops the packet. Where there is none (generic XDP: the
// Devices entry has no device_xdp_judges) or the driver keeps no metadata, the reply is
// built here and sent with XDP_TX (on veth that needs NAPI on the peer, which generic
// XDP's XDP_TX does not: it goes through the peer's stack).
void emit_xdp_mark(Emitter &em, const Site &s, Label &drop)
{
	Label build(em);
	em.emit(ldx(BPF_W, R1, pkt, off::count_inc));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), drop); // judged, not netfilter's: no reply
	em.emit(ldx(BPF_W, R1, ctx, s.ifindex()));
	em.emit(stx(BPF_W, R10, R1, layout::main_dev_key));
	em.ld_map(R1, MapSlot::Devices);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_dev_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), build);
	em.emit(ldx(BPF_B, R1, R0, dev::flags));
	em.emit(alu32_imm(BPF_AND, R1, maps::device_xdp_judges));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), build);
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, -layout::xdp_mark_len));
	em.emit(call_helper(BPF_FUNC_xdp_adjust_meta));
	em.jump(jmp_imm(BPF_JNE, R0, 0), build);
	em.emit(ldx(BPF_W, R2, ctx, offsetof(xdp_md, data_meta)));
	em.emit(ldx(BPF_W, R3, ctx, offsetof(xdp_md, data)));
	em.emit(mov64(R4, R2));
	em.emit(alu64_imm(BPF_ADD, R4, layout::xdp_mark_len));
	em.jump(jmp_reg(BPF_JGT, R4, R3), build);
	em.emit(st(BPF_W, R2, 0, static_cast<int32_t>(layout::xdp_mark_magic)));
	em.emit(ldx(BPF_W, R1, pkt, off::rj_ct));
	em.emit(alu32_imm(BPF_LSH, R1, 16));
	em.emit(ldx(BPF_W, R3, pkt, off::rj_with));
	em.emit(alu32_reg(BPF_OR, R1, R3));
	em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(s.hook) << 8));
	em.emit(stx(BPF_W, R2, R1, 4));
	em.emit(mov64(R0, XDP_PASS));
	em.emit(exit());
	build.bind();
}

// rj_ct: what nf_ct_attach() gives the reply of the packet's conntrack entry, if it has one
// (layout::reply_ct ..). At tc ingress after native XDP, the bits XDP left (rj_mark >> 16).
void emit_reply_ct(Emitter &em, const Site &s, bool tracks)
{
	em.emit(st(BPF_W, pkt, off::rj_ct, 0));
	if (!tracks)
		return;
	Label done(em), computed(em);
	if (s.flavor == Flavor::TcIngress) {
		em.emit(ldx(BPF_W, R1, pkt, off::rj_mark));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), computed);
		em.emit(alu32_imm(BPF_RSH, R1, 16));
		em.emit(stx(BPF_W, pkt, R1, off::rj_ct));
		em.jump(ja(), done);
		computed.bind();
	}
	// XT_CONNTRACK_STATE_BIT() of ESTABLISHED, RELATED, NEW: an entry.
	em.emit(ldx(BPF_W, R1, pkt, off::ct_statebit));
	em.emit(alu32_imm(BPF_AND, R1, 2 | 4 | 8));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), done);
	em.emit(ldx(BPF_W, R1, pkt, off::ct_status));
	em.emit(alu32_imm(BPF_AND, R1, 0xf));
	em.emit(alu32_imm(BPF_LSH, R1, 4));
	em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(layout::reply_ct)));
	Label original(em);
	em.emit(ldx(BPF_W, R2, pkt, off::ct_dir));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), original);
	em.emit(alu32_imm(BPF_OR, R1, static_cast<int32_t>(layout::reply_ct_reply)));
	original.bind();
	em.emit(stx(BPF_W, pkt, R1, off::rj_ct));
	done.bind();
}

} // namespace

bool rejects(uint32_t with)
{
	return with == IPT_TCP_RESET || rejects_icmp(with);
}

bool rejects_icmp(uint32_t with)
{
	switch (with) {
	case IPT_ICMP_NET_UNREACHABLE:
	case IPT_ICMP_HOST_UNREACHABLE:
	case IPT_ICMP_PROT_UNREACHABLE:
	case IPT_ICMP_PORT_UNREACHABLE:
	case IPT_ICMP_NET_PROHIBITED:
	case IPT_ICMP_HOST_PROHIBITED:
	case IPT_ICMP_ADMIN_PROHIBITED:
		return true;
	default:
		return false;
	}
}

bool table_rejects(const ir::Table &table)
{
	for (const ir::Rule &r : table.rules)
		if (r.target.kind == ir::Target::Kind::Reject && rejects(r.target.reject_with))
			return true;
	return false;
}

void emit_reject(Emitter &em, Flavor flavor, ir::Hook hook, const ReplySysctls &sysctls,
		 bool tracks, Label &drop)
{
	const Site s{flavor, hook, sysctls};
	em.emit(alu64_imm(BPF_SUB, R0, layout::ret_reject));
	em.emit(stx(BPF_W, pkt, R0, off::rj_with));
	emit_reply_ct(em, s, tracks);
	if (s.xdp())
		emit_xdp_mark(em, s, drop);
	em.emit(ldx(BPF_W, R0, pkt, off::rj_with));
	Label reset(em);
	em.jump(jmp_imm(BPF_JEQ, R0, IPT_TCP_RESET), reset);
	emit_unreach(em, s, drop);
	reset.bind();
	emit_reset(em, s, drop);
}

} // namespace bpfilter::codegen
