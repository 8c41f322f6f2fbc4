// The flavors: for each attach point, a prologue that parses the packet and decides which chain
// judges it (if any), then those chains' code (Documentation/design.md, "Hooks").
//
// What reaches the rules, and why:
// - Not IPv4 (by ethertype, or skb->protocol at tc): passed untouched. Only the IPv4
//   filter table is ours.
// - IPv4 that ip_rcv() drops (version != 4, ihl < 5, tot_len < ihl * 4, a packet shorter
//   than tot_len): passed untouched and uncounted; the stack drops it, as it would
//   before netfilter saw it.
// - Ingress (XDP, tc ingress), with Options::local_only: packets the stack delivers to
//   this host go to INPUT, packets it routes through go to FORWARD, the rest pass
//   untouched. Multicast and 255.255.255.255 are delivered locally; otherwise
//   bpf_fib_lookup() decides: NOT_FWDED is local, SUCCESS and NO_NEIGH are routed (its
//   ifindex is FORWARD's output device). When forwarding is off on the device the kernel
//   answers FWD_DISABLED before any lookup (bpf_ipv4_fib_lookup()), and the LocalAddrs
//   map (the namespace's local routing table) decides instead.
// - INPUT: fragments are followed to the datagram they make, judged on the first and
//   counted once when whole (emit_frags()); addresses input routing refuses are judged,
//   not counted (emit_martians()).
// - FORWARD: ip_forward() drops a packet with TTL <= 1 before the hook (the host answers
//   time exceeded, through OUTPUT), and one not sent to this host's MAC address; without
//   connection tracking every fragment is judged on its own.
// - Egress (tc egress): OUTPUT judges what the host itself sends: not what it forwards or
//   bridges (skb->ingress_ifindex is set), not what packet sockets send (netfilter never
//   sees it), not what an upper device (macvlan, VLAN) already judged on its way down.
//   Datagrams the host fragments after OUTPUT are followed as at INPUT.
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>

#include "codegen/chain.hpp"
#include "codegen/codegen.hpp"
#include "codegen/conntrack.hpp"
#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "codegen/matchers.hpp"
#include "codegen/plan.hpp"
#include "codegen/reject.hpp"
#include "ir/limit.hpp"

namespace bpfilter::codegen
{

using namespace insn;
namespace off = layout::pkt_off;
namespace dev = maps::device_off;

namespace
{

// Registers during the prologue.
constexpr Reg ctx = R6;	   // struct xdp_md * or struct __sk_buff *
constexpr Reg ihl = R7;	   // link-layer header length; then IP header length in bytes;
			   // later the transport header
constexpr Reg totlen = R8; // tot_len; later the option walk's index

constexpr int16_t fib_off(size_t field)
{
	return static_cast<int16_t>(layout::main_fib + field);
}

// A field of LOG's copy of the headers (maps::LogSnap) in the parsed packet.
constexpr int16_t snap_off(size_t field)
{
	return static_cast<int16_t>(off::log_base + field);
}
static_assert(off::log_base + sizeof(maps::LogSnap) <= off::reject_base);

// How the flavor's context gives what the prologue reads.
struct Ctx {
	Flavor flavor;
	int16_t data, data_end, ifindex; // offsets in the context
	int32_t load_bytes;		 // BPF_FUNC_xdp_load_bytes or _skb_load_bytes
	int32_t pass;			 // the action that lets a packet go on untouched
	bool tc() const { return flavor != Flavor::Xdp; }
	bool egress() const { return flavor == Flavor::TcEgress; }
};

Ctx context(Flavor flavor)
{
	if (flavor == Flavor::Xdp)
		return {flavor,
			offsetof(xdp_md, data),
			offsetof(xdp_md, data_end),
			offsetof(xdp_md, ingress_ifindex),
			BPF_FUNC_xdp_load_bytes,
			XDP_PASS};
	return {flavor,
		offsetof(__sk_buff, data),
		offsetof(__sk_buff, data_end),
		offsetof(__sk_buff, ifindex),
		BPF_FUNC_skb_load_bytes,
		layout::tc_accept};
}

// layout::pkt = this CPU's Scratch map value (see layout.hpp); R6 = ctx.
void emit_scratch(Emitter &em, Label &pass)
{
	em.emit(mov64(ctx, R1));
	em.emit(st(BPF_W, R10, layout::main_key, 0));
	em.ld_map(R1, MapSlot::Scratch);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), pass); // cannot happen: an array of one
	em.emit(mov64(layout::pkt, R0));
}

// R0 = the Devices entry of the ifindex in R1, or 0.
void emit_device_lookup(Emitter &em)
{
	em.emit(stx(BPF_W, R10, R1, layout::main_dev_key));
	em.ld_map(R1, MapSlot::Devices);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_dev_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
}

// The 16-byte name at R0 + dev::name into the parsed packet's `field`.
void emit_copy_name(Emitter &em, int16_t field)
{
	for (int16_t k = 0; k < 2; k++) {
		em.emit(ldx(BPF_DW, R1, R0, static_cast<int16_t>(dev::name + 8 * k)));
		em.emit(stx(BPF_DW, layout::pkt, R1, static_cast<int16_t>(field + 8 * k)));
	}
}

// To `differs` unless the frame's MAC address at `at` (0: destination, ETH_ALEN: source)
// equals the device's at R0 + dev::mac, or when the frame has no Ethernet header.
// Clobbers R1-R4.
void emit_mac_differs(Emitter &em, const Ctx &cx, int16_t at, Label &differs)
{
	em.emit(ldx(BPF_W, R2, ctx, cx.data));
	em.emit(ldx(BPF_W, R3, ctx, cx.data_end));
	em.emit(mov64(R4, R2));
	em.emit(alu64_imm(BPF_ADD, R4, ETH_HLEN));
	em.jump(jmp_reg(BPF_JGT, R4, R3), differs);
	em.emit(ldx(BPF_W, R1, R2, at));
	em.emit(ldx(BPF_W, R3, R0, dev::mac));
	em.jump(jmp_reg(BPF_JNE, R1, R3), differs);
	em.emit(ldx(BPF_H, R1, R2, static_cast<int16_t>(at + 4)));
	em.emit(ldx(BPF_H, R3, R0, dev::mac + 4));
	em.jump(jmp_reg(BPF_JNE, R1, R3), differs);
}

// tc: what every tc program checks before it looks at the packet; leaves `ihl` = the
// link-layer header's length and the device's name in the parsed packet.
void emit_tc_start(Emitter &em, const Ctx &cx, const Options &opts, bool logs, bool replies,
		   Label &pass)
{
	// IPv4 by skb->protocol (network order), on Ethernet and on L3 devices alike.
	em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, protocol)));
	em.jump(jmp32_imm(BPF_JNE, R1, __builtin_bswap16(ETH_P_IP)), pass);
	// A tag still on the packet: the VLAN device judges it, or the stack drops it
	// (VID 0 is priority tagging only: the packet is the device's own).
	Label untagged(em);
	em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, vlan_present)));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), untagged);
	em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, vlan_tci)));
	em.emit(alu32_imm(BPF_AND, R1, 0xfff));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), pass);
	untagged.bind();
	if (!cx.egress()) {
		// Another host's frame: ip_rcv() drops it, or an rx_handler (macvlan) hands it
		// to an upper device, whose own program judges it.
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		em.jump(jmp32_imm(BPF_JEQ, R1, 3), pass); // PACKET_OTHERHOST
	}
	Label own(em);
	if (cx.egress()) {
		em.emit(st(BPF_W, layout::pkt, off::own_pieces, 0));
		em.emit(st(BPF_W, layout::pkt, off::fr_doomed, 0));
		// REJECT's reply, redirected here by another hook (layout::reply_mark_magic):
		// this host's own packet, though it came in on a device. It leaves with the
		// mark netfilter's reply has (IP4_REPLY_MARK(), 0 without fwmark_reflect).
		Label not_reply(em);
		em.emit(st(BPF_W, layout::pkt, off::rj_reply, 0));
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, mark)));
		em.emit(mov64(R2, R1));
		em.emit(alu32_imm(BPF_AND, R2, static_cast<int32_t>(layout::reply_mark_mask)));
		em.jump(jmp32_imm(BPF_JNE, R2, static_cast<int32_t>(layout::reply_mark_magic)),
			not_reply);
		em.emit(ldx(BPF_W, R2, ctx, offsetof(__sk_buff, priority)));
		em.jump(jmp32_imm(BPF_JNE, R2, static_cast<int32_t>(layout::reply_priority_magic)),
			not_reply);
		em.emit(stx(BPF_W, layout::pkt, R1, off::rj_reply));
		em.emit(mov64(R2, 0));
		em.emit(stx(BPF_W, ctx, R2, offsetof(__sk_buff, mark)));
		em.emit(stx(BPF_W, ctx, R2, offsetof(__sk_buff, priority)));
		em.jump(ja(), own);
		not_reply.bind();
	}
	if (cx.egress() && opts.local_only) {
		// Forwarded or bridged: it came in on some device (FORWARD judged it there).
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, ingress_ifindex)));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), pass);
		// Sent by a packet socket: netfilter never sees it.
		Label not_packet(em);
		em.emit(ldx(BPF_DW, R1, ctx, offsetof(__sk_buff, sk)));
		em.jump(jmp_imm(BPF_JEQ, R1, 0), not_packet);
		em.emit(call_helper(BPF_FUNC_sk_fullsock));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), not_packet);
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, family)));
		em.jump(jmp32_imm(BPF_JEQ, R1, 17), pass); // AF_PACKET
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, type)));
		em.jump(jmp32_imm(BPF_JNE, R1, 3), not_packet); // SOCK_RAW
		em.emit(ldx(BPF_W, R1, R0, offsetof(bpf_sock, protocol)));
		em.jump(jmp32_imm(BPF_JNE, R1, 255), not_packet); // IPPROTO_RAW: IP_HDRINCL
		em.emit(st(BPF_W, layout::pkt, off::own_pieces, 1));
		not_packet.bind();
	}
	own.bind();
	// The mark the chains see (-m mark), which -j MARK changes: skb->mark as the hook gets it.
	em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, mark)));
	em.emit(stx(BPF_W, layout::pkt, R1, off::mark));

	// The headers in the linear part: at most Ethernet, 60 bytes of IP, 60 of TCP.
	constexpr int32_t headers = ETH_HLEN + 60 + 60;
	Label linear(em), small(em);
	em.emit(ldx(BPF_W, R2, ctx, offsetof(__sk_buff, len)));
	em.jump(jmp_imm(BPF_JLE, R2, headers), small);
	em.emit(mov64(R2, headers));
	small.bind();
	em.emit(ldx(BPF_W, R3, ctx, cx.data));
	em.emit(ldx(BPF_W, R4, ctx, cx.data_end));
	em.emit(alu64_reg(BPF_ADD, R3, R2));
	em.jump(jmp_reg(BPF_JLE, R3, R4), linear);
	em.emit(mov64(R1, ctx));
	em.emit(call_helper(BPF_FUNC_skb_pull_data));
	linear.bind();

	em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
	emit_device_lookup(em);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), pass); // not a device we know: not ours
	emit_copy_name(em, cx.egress() ? off::out_ifname : off::ifname);
	em.emit(ldx(BPF_B, ihl, R0, dev::l2len));
	if (logs)
		em.emit(stx(BPF_B, layout::pkt, ihl, snap_off(offsetof(maps::LogSnap, hh_len))));
	em.emit(ldx(BPF_B, R1, R0, dev::flags));
	em.emit(stx(BPF_W, layout::pkt, R1, off::dev_flags));
	if (!cx.egress()) {
		// Native XDP judged what this device received, but for the copies the host
		// loops back to itself (dev_loopback_xmit()), which only tc sees.
		Label not_xdp(em);
		em.emit(ldx(BPF_B, R1, R0, dev::flags));
		em.emit(alu32_imm(BPF_AND, R1, maps::device_xdp_judges));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), not_xdp);
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		if (replies) {
			// And for a packet XDP rejected: it left the verdict in the metadata
			// (layout::xdp_mark_magic), the reply is built here.
			em.jump(jmp32_imm(BPF_JEQ, R1, PACKET_LOOPBACK), not_xdp);
			em.emit(ldx(BPF_W, R2, ctx, offsetof(__sk_buff, data_meta)));
			em.emit(ldx(BPF_W, R3, ctx, offsetof(__sk_buff, data)));
			em.emit(mov64(R4, R2));
			em.emit(alu64_imm(BPF_ADD, R4, layout::xdp_mark_len));
			em.jump(jmp_reg(BPF_JGT, R4, R3), pass);
			em.emit(ldx(BPF_W, R1, R2, 0));
			em.jump(jmp32_imm(BPF_JNE, R1,
					  static_cast<int32_t>(layout::xdp_mark_magic)),
				pass);
			em.emit(ldx(BPF_W, R1, R2, 4));
			em.emit(stx(BPF_W, layout::pkt, R1, off::rj_mark));
			em.jump(ja(), not_xdp);
		} else {
			em.jump(jmp32_imm(BPF_JNE, R1, PACKET_LOOPBACK), pass);
		}
		not_xdp.bind();
		// dev_loopback_xmit() hands the IP datagram up without a link-layer header.
		Label not_looped(em);
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		em.jump(jmp32_imm(BPF_JNE, R1, PACKET_LOOPBACK), not_looped);
		em.emit(mov64(ihl, 0));
		not_looped.bind();
	}
	if (cx.egress() && opts.local_only) {
		// Sent by an upper device (macvlan) that judged it already: not our MAC. But
		// REJECT's reply, whose addresses are the reply's own.
		Label l3(em);
		em.jump(jmp_imm(BPF_JEQ, ihl, 0), l3);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::rj_reply));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), l3);
		emit_mac_differs(em, cx, ETH_ALEN, pass);
		l3.bind();
	}
	em.jump(jmp_imm(BPF_JGT, ihl, ETH_HLEN), pass); // bounds for the verifier
}

// Parse IPv4, store the packet's fields, prepare the FIB lookup. In: `ihl` = the
// link-layer header's length (XDP: Ethernet's, checked here).
void emit_parse_ip(Emitter &em, const Ctx &cx, const Options &opts, bool logs, Label &pass)
{
	if (logs && !cx.tc()) {
		em.emit(st(BPF_B, layout::pkt, snap_off(offsetof(maps::LogSnap, l2len)), ETH_HLEN));
		em.emit(st(BPF_B, layout::pkt, snap_off(offsetof(maps::LogSnap, hh_len)),
			   ETH_HLEN));
	}
	em.emit(ldx(BPF_W, R2, ctx, cx.data));
	em.emit(ldx(BPF_W, R3, ctx, cx.data_end));
	if (!cx.tc()) {
		em.emit(mov64(R4, R2));
		em.emit(alu64_imm(BPF_ADD, R4, ETH_HLEN + 20));
		em.jump(jmp_reg(BPF_JGT, R4, R3), pass);
		em.emit(ldx(BPF_H, R5, R2, offsetof(ethhdr, h_proto)));
		em.emit(be(R5, 16));
		em.jump(jmp32_imm(BPF_JNE, R5, ETH_P_IP), pass);
		em.emit(alu64_imm(BPF_ADD, R2, ETH_HLEN));
	} else {
		em.emit(alu64_reg(BPF_ADD, R2, ihl));
		em.emit(mov64(R4, R2));
		em.emit(alu64_imm(BPF_ADD, R4, 20));
		em.jump(jmp_reg(BPF_JGT, R4, R3), pass);
	}
	// From here R2 is the IP header.
	em.emit(ldx(BPF_B, R5, R2, 0));
	em.emit(mov64(R4, R5));
	em.emit(alu64_imm(BPF_RSH, R4, 4));
	em.jump(jmp_imm(BPF_JNE, R4, 4), pass); // version
	em.emit(alu64_imm(BPF_AND, R5, 0xf));
	em.jump(jmp_imm(BPF_JLT, R5, 5), pass); // ihl
	em.emit(alu64_imm(BPF_LSH, R5, 2));
	if (cx.tc())
		em.emit(mov64(R0, ihl)); // the link-layer length, for the length check below
	if (cx.tc() && logs)
		em.emit(stx(BPF_B, layout::pkt, ihl, snap_off(offsetof(maps::LogSnap, l2len))));
	if (cx.tc())
		em.emit(stx(BPF_W, layout::pkt, ihl, off::l3off));
	else if (!opts.offload) // the offload flavor's parsed packet ends before it
		em.emit(st(BPF_W, layout::pkt, off::l3off, ETH_HLEN));
	em.emit(mov64(ihl, R5));

	em.emit(ldx(BPF_H, totlen, R2, 2));
	em.emit(be(totlen, 16));
	em.emit(alu64_imm(BPF_AND, totlen, 0xffff)); // bounds for the verifier
	em.jump(jmp_reg(BPF_JLT, totlen, ihl), pass);
	if (!cx.tc()) {
		em.emit(mov64(R4, R2));
		em.emit(alu64_reg(BPF_ADD, R4, totlen));
		em.jump(jmp_reg(BPF_JGT, R4, R3), pass); // frame shorter than the datagram
	} else {
		// The skb may be longer than its linear part: its length is what counts.
		em.emit(ldx(BPF_W, R4, ctx, offsetof(__sk_buff, len)));
		em.emit(alu64_reg(BPF_SUB, R4, R0));
		em.jump(jmp_reg(BPF_JGT, totlen, R4), pass);
	}

	// frag = id << 16 | (MF | offset): the reassembly key's id, and where the piece goes.
	em.emit(ldx(BPF_W, R5, R2, 4));
	em.emit(be(R5, 32));
	em.emit(alu64_imm(BPF_AND, R5, static_cast<int32_t>(0xffff3fffu)));
	em.emit(stx(BPF_W, layout::pkt, R5, off::frag));
	em.emit(st(BPF_W, layout::pkt, off::count_inc, 1));

	em.emit(ldx(BPF_W, R1, R2, 12));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::saddr)));
	em.emit(be(R1, 32));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::saddr_h)));
	em.emit(ldx(BPF_W, R1, R2, 16));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::daddr)));
	em.emit(be(R1, 32));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::daddr_h)));
	em.emit(stx(BPF_W, layout::pkt, totlen, (off::tot_len)));
	em.emit(mov64(R1, totlen));
	em.emit(alu64_reg(BPF_SUB, R1, ihl));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::l4len)));
	em.emit(ldx(BPF_B, R1, R2, 9));
	em.emit(stx(BPF_W, layout::pkt, R1, (off::proto)));
	if (!opts.offload) { // FORWARD's, LOG's and the header matches', past the offload
			     // flavor's packet (layout::offload_pkt_size)
		em.emit(ldx(BPF_B, R1, R2, 8));
		em.emit(stx(BPF_W, layout::pkt, R1, (off::ttl)));
		em.emit(ldx(BPF_B, R1, R2, 1));
		em.emit(stx(BPF_W, layout::pkt, R1, (off::tos)));
		em.emit(stx(BPF_W, layout::pkt, totlen, (off::ip_len)));
		em.emit(st(BPF_W, layout::pkt, off::l4w0, 0));
		em.emit(st(BPF_W, layout::pkt, off::l4w4, 0));
	}
	for (int16_t f : {off::sport, off::dport, off::tcp_flags, off::icmp_type, off::icmp_code,
			  off::opt_hotdrop, off::tcp_doff})
		em.emit(st(BPF_W, layout::pkt, (f), 0));
	// The name a hook has no device for is the all-zero one (tc set its own already).
	for (int16_t k = 0; k < 2; k++) {
		if (!cx.tc() || cx.egress())
			em.emit(st(BPF_DW, layout::pkt, (off::ifname + 8 * k), 0));
		if (!cx.egress() && !opts.offload)
			em.emit(st(BPF_DW, layout::pkt, (off::out_ifname + 8 * k), 0));
	}

	if (opts.local_only && !cx.egress()) {
		for (int16_t k = 0; k < 8; k++)
			em.emit(st(BPF_DW, R10, static_cast<int16_t>(layout::main_fib + 8 * k), 0));
		em.emit(st(BPF_B, R10, fib_off(offsetof(bpf_fib_lookup, family)), 2)); // AF_INET
		em.emit(ldx(BPF_B, R1, R2, 9));
		em.emit(stx(BPF_B, R10, R1, fib_off(offsetof(bpf_fib_lookup, l4_protocol))));
		// tot_len stays 0: no MTU check, so that the answer always names the device
		// (FRAG_NEEDED comes before it; forwarding fragments the datagram or answers
		// "fragmentation needed" after FORWARD).
		em.emit(ldx(BPF_B, R1, R2, 1));
		em.emit(stx(BPF_B, R10, R1, fib_off(offsetof(bpf_fib_lookup, tos))));
		em.emit(ldx(BPF_W, R1, R2, 12));
		em.emit(stx(BPF_W, R10, R1, fib_off(offsetof(bpf_fib_lookup, ipv4_src))));
		em.emit(ldx(BPF_W, R1, R2, 16));
		em.emit(stx(BPF_W, R10, R1, fib_off(offsetof(bpf_fib_lookup, ipv4_dst))));
		em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
		em.emit(stx(BPF_W, R10, R1, fib_off(offsetof(bpf_fib_lookup, ifindex))));
	}

	// From here on `ihl` holds the transport header's address.
	em.emit(mov64(R1, R2));
	em.emit(alu64_reg(BPF_ADD, R1, ihl));
	em.emit(mov64(ihl, R1));
	// and R4 the bytes from there to tot_len.
	em.emit(ldx(BPF_W, R4, layout::pkt, (off::l4len)));
}

// -m hashlimit's ports, as hashlimit_init_dst() reads them: the transport bytes 0-3 (and an
// AH header's 4-7) as they are, of every piece: for a later fragment, which the kernel
// judges on its own (FORWARD without conntrack, a raw socket's pieces in OUTPUT), that is
// its payload, as xt_hashlimit reads it. In: R3 = data_end, R4 = l4len.
void emit_hashlimit_bytes(Emitter &em)
{
	Label done(em);
	for (int16_t at : {0, 4}) {
		em.jump(jmp_imm(BPF_JLT, R4, at + 4), done);
		em.emit(mov64(R5, ihl));
		em.emit(alu64_imm(BPF_ADD, R5, at + 4));
		em.jump(jmp_reg(BPF_JGT, R5, R3), done);
		em.emit(ldx(BPF_W, R5, ihl, at));
		em.emit(stx(BPF_W, layout::pkt, R5, at == 0 ? off::hl_ports : off::hl_ah));
	}
	done.bind();
}

// Ports, ICMP type and code, TCP flags and data offset, each where the datagram holds
// them; the matchers check l4len before they trust a field. In: R3 = data_end.
// header_fields: also l4w0 and l4w4 (not in the offload flavor's packet).
void emit_parse_l4(Emitter &em, bool header_fields = true)
{
	Label done(em);
	em.jump(jmp_imm(BPF_JLT, R4, 4), done);
	em.emit(mov64(R5, ihl));
	em.emit(alu64_imm(BPF_ADD, R5, 4));
	em.jump(jmp_reg(BPF_JGT, R5, R3), done);
	em.emit(ldx(BPF_H, R5, ihl, 0));
	em.emit(be(R5, 16));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::sport)));
	em.emit(ldx(BPF_H, R5, ihl, 2));
	em.emit(be(R5, 16));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::dport)));
	em.emit(ldx(BPF_B, R5, ihl, 0));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::icmp_type)));
	em.emit(ldx(BPF_B, R5, ihl, 1));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::icmp_code)));
	if (header_fields) {
		em.emit(ldx(BPF_W, R5, ihl, 0));
		em.emit(be(R5, 32));
		em.emit(stx(BPF_W, layout::pkt, R5, (off::l4w0)));
	}

	// Bytes 4-7 (-m ah's SPI).
	Label no_l4w4(em);
	em.jump(jmp_imm(BPF_JLT, R4, 8), done);
	if (!header_fields)
		em.jump(ja(), no_l4w4);
	em.emit(mov64(R5, ihl));
	em.emit(alu64_imm(BPF_ADD, R5, 8));
	em.jump(jmp_reg(BPF_JGT, R5, R3), done);
	em.emit(ldx(BPF_W, R5, ihl, 4));
	em.emit(be(R5, 32));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::l4w4)));
	no_l4w4.bind();

	em.jump(jmp_imm(BPF_JLT, R4, 20), done);
	em.emit(mov64(R5, ihl));
	em.emit(alu64_imm(BPF_ADD, R5, 20));
	em.jump(jmp_reg(BPF_JGT, R5, R3), done);
	em.emit(ldx(BPF_B, R5, ihl, 13));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::tcp_flags)));
	em.emit(ldx(BPF_B, R5, ihl, 12));
	em.emit(alu64_imm(BPF_RSH, R5, 4));
	em.emit(alu64_imm(BPF_LSH, R5, 2));
	em.emit(stx(BPF_W, layout::pkt, R5, (off::tcp_doff)));
}

// -m ecn's view of TCP (match_tcp()): byte 13 of 20 bytes at the transport header, of any
// piece, as the kernel reads it without looking at the fragment offset. In: R3 = data_end,
// R4 = l4len, `ihl` = the transport header. Clobbers R5.
void emit_th13(Emitter &em)
{
	Label done(em);
	em.emit(st(BPF_W, layout::pkt, off::th13, 0));
	em.jump(jmp_imm(BPF_JLT, R4, 20), done);
	em.emit(mov64(R5, ihl));
	em.emit(alu64_imm(BPF_ADD, R5, 20));
	em.jump(jmp_reg(BPF_JGT, R5, R3), done);
	em.emit(ldx(BPF_B, R5, ihl, 13));
	em.emit(alu32_imm(BPF_OR, R5, 0x100));
	em.emit(stx(BPF_W, layout::pkt, R5, off::th13));
	done.bind();
}

// -m pkttype and -m mac: skb->pkt_type as the hook sees it, and the Ethernet source
// address where mac_mt() finds one (an ARPHRD_ETHER device, a MAC header of ETH_HLEN).
// - XDP: eth_type_trans() on the frame: a multicast destination is BROADCAST when it is
//   the device's broadcast address (ff:ff:ff:ff:ff:ff on Ethernet; lo's is all zero, so
//   MULTICAST there), MULTICAST otherwise; else HOST when it is the device's own address,
//   OTHERHOST when not (ip_rcv() drops those).
// - tc ingress: skb->pkt_type; PACKET_LOOPBACK (the host's own broadcast or multicast,
//   looped back without a link-layer header) as pkttype_mt() reads it.
// - tc egress: OUTPUT sees what the host allocates, PACKET_HOST, and mac cannot be used.
// Clobbers R0-R5.
void emit_l2(Emitter &em, const Ctx &cx)
{
	constexpr int32_t host = 0, broadcast = 1, multicast = 2, otherhost = 3;
	em.emit(st(BPF_W, layout::pkt, off::mac_ok, 0));
	em.emit(st(BPF_DW, layout::pkt, off::mac_src, 0));
	em.emit(st(BPF_W, layout::pkt, off::pkttype, host));
	if (cx.egress())
		return;
	Label done(em), no_mac(em);
	if (cx.tc()) {
		Label not_looped(em);
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		em.emit(stx(BPF_W, layout::pkt, R1, off::pkttype));
		em.jump(jmp32_imm(BPF_JNE, R1, PACKET_LOOPBACK), not_looped);
		em.emit(st(BPF_W, layout::pkt, off::pkttype, broadcast));
		em.emit(ldx(BPF_W, R1, layout::pkt, off::daddr_h));
		em.emit(alu32_imm(BPF_RSH, R1, 28));
		em.jump(jmp32_imm(BPF_JNE, R1, 0xe), done); // no MAC header either
		em.emit(st(BPF_W, layout::pkt, off::pkttype, multicast));
		em.jump(ja(), done);
		not_looped.bind();
		em.emit(ldx(BPF_W, R1, layout::pkt, off::dev_flags));
		em.emit(alu32_imm(BPF_AND, R1, maps::device_ether));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), done);
		em.emit(ldx(BPF_W, R2, ctx, cx.data));
		em.emit(ldx(BPF_W, R3, ctx, cx.data_end));
		em.emit(mov64(R4, R2));
		em.emit(alu64_imm(BPF_ADD, R4, ETH_HLEN));
		em.jump(jmp_reg(BPF_JGT, R4, R3), done);
		em.emit(st(BPF_W, layout::pkt, off::mac_ok, 1));
		em.emit(ldx(BPF_W, R1, R2, ETH_ALEN));
		em.emit(stx(BPF_W, layout::pkt, R1, off::mac_src));
		em.emit(ldx(BPF_H, R1, R2, ETH_ALEN + 4));
		em.emit(stx(BPF_H, layout::pkt, R1, off::mac_src + 4));
		done.bind();
		return;
	}
	Label unicast(em), known(em);
	em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
	emit_device_lookup(em);
	em.emit(ldx(BPF_W, R2, ctx, cx.data));
	em.emit(ldx(BPF_W, R3, ctx, cx.data_end));
	em.emit(mov64(R4, R2));
	em.emit(alu64_imm(BPF_ADD, R4, ETH_HLEN));
	em.jump(jmp_reg(BPF_JGT, R4, R3), done); // the prologue passed such frames already
	// A device the loader has not named yet is taken for Ethernet.
	em.emit(mov64(R5, maps::device_ether));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), known);
	em.emit(ldx(BPF_B, R5, R0, dev::flags));
	em.emit(alu32_imm(BPF_AND, R5, maps::device_ether));
	known.bind();
	em.jump(jmp32_imm(BPF_JEQ, R5, 0), no_mac);
	em.emit(st(BPF_W, layout::pkt, off::mac_ok, 1));
	em.emit(ldx(BPF_W, R1, R2, ETH_ALEN));
	em.emit(stx(BPF_W, layout::pkt, R1, off::mac_src));
	em.emit(ldx(BPF_H, R1, R2, ETH_ALEN + 4));
	em.emit(stx(BPF_H, layout::pkt, R1, off::mac_src + 4));
	no_mac.bind();
	em.emit(ldx(BPF_B, R1, R2, 0));
	em.emit(alu32_imm(BPF_AND, R1, 1));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), unicast);
	em.emit(st(BPF_W, layout::pkt, off::pkttype, multicast));
	em.jump(jmp32_imm(BPF_JEQ, R5, 0), done); // lo: no broadcast address to meet
	em.emit(ldx(BPF_W, R1, R2, 0));
	em.jump(jmp32_imm(BPF_JNE, R1, -1), done);
	em.emit(ldx(BPF_H, R1, R2, 4));
	em.jump(jmp32_imm(BPF_JNE, R1, 0xffff), done);
	em.emit(st(BPF_W, layout::pkt, off::pkttype, broadcast));
	em.jump(ja(), done);
	unicast.bind();
	// A device not named yet: its address is unknown, and ip_rcv() would drop the frame
	// were it another host's, so it is taken for the device's own.
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(ldx(BPF_W, R1, R2, 0));
	em.emit(ldx(BPF_W, R4, R0, dev::mac));
	Label other(em);
	em.jump(jmp_reg(BPF_JNE, R1, R4), other);
	em.emit(ldx(BPF_H, R1, R2, 4));
	em.emit(ldx(BPF_H, R4, R0, dev::mac + 4));
	em.jump(jmp_reg(BPF_JEQ, R1, R4), done);
	other.bind();
	em.emit(st(BPF_W, layout::pkt, off::pkttype, otherhost));
	done.bind();
}

// Walk the TCP options exactly as tcp_find_option() does and mark each kind it looks at
// in opt_seen; a rule's --tcp-option then reads one byte. Only the kinds some rule asks
// about are cleared first: nothing reads the others. Marks opt_hotdrop where the kernel
// would drop (doff * 4 < 20, or options running past the datagram).
//
// The options are copied out of the packet first (bpf_xdp_load_bytes, bpf_skb_load_bytes) and the
// walk is branch-free but for its loop test: the verifier explores every iteration of a bounded
// loop, and data-dependent branches inside one multiply what it has to explore.
// In: R4 = l4len, `ihl` = the TCP header, R6 = ctx.
void emit_tcp_options(Emitter &em, const Ctx &cx, const std::vector<uint8_t> &kinds)
{
	for (uint8_t k : kinds)
		em.emit(st(BPF_B, layout::pkt, static_cast<int16_t>(off::opt_seen + k), 0));

	const Reg optlen = totlen, i = ihl;
	Label done(em);
	Label cut(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
	em.jump(jmp_imm(BPF_JNE, R1, 6), done);
	em.jump(jmp_imm(BPF_JLT, R4, 20), done); // the tcp match hotdrops before options
	em.emit(ldx(BPF_W, optlen, layout::pkt, off::tcp_doff));
	em.jump(jmp_imm(BPF_JLT, optlen, 20), cut);
	em.jump(jmp_reg(BPF_JGT, optlen, R4), cut);
	em.emit(alu64_imm(BPF_SUB, optlen, 20));
	// Not `== 0`: Linux 6.1 learns a lower bound only from `<`, and the helper's
	// length must be at least 1.
	em.jump(jmp_imm(BPF_JLT, optlen, 1), done);
	em.jump(jmp_imm(BPF_JGT, optlen, 40), done); // cannot be: doff is 4 bits

	// bpf_{xdp,skb}_load_bytes(ctx, offset of the options, opt_buf, optlen)
	em.emit(mov64(R2, ihl));
	em.emit(ldx(BPF_W, R1, ctx, cx.data));
	em.emit(alu64_reg(BPF_SUB, R2, R1));
	em.emit(alu64_imm(BPF_ADD, R2, 20));
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R3, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R3, off::opt_buf));
	em.emit(mov64(R4, optlen));
	em.emit(call_helper(cx.load_bytes));
	em.jump(jmp_imm(BPF_JNE, R0, 0), done);

	em.emit(mov64(i, 0));
	Label loop(em);
	loop.bind();
	em.jump(jmp_reg(BPF_JGE, i, optlen), done);
	em.jump(jmp_imm(BPF_JGT, i, 39), done); // a bound the verifier can see
	em.emit(mov64(R1, layout::pkt));
	em.emit(alu64_reg(BPF_ADD, R1, i));
	em.emit(ldx(BPF_B, R0, R1, off::opt_buf));     // kind = op[i]
	em.emit(ldx(BPF_B, R2, R1, off::opt_buf + 1)); // len = op[i + 1] (unused at the end)
	em.emit(mov64(R3, layout::pkt));
	em.emit(alu64_reg(BPF_ADD, R3, R0));
	em.emit(st(BPF_B, R3, off::opt_seen, 1)); // seen[kind] = 1

	// one = op[i] < 2 || i == optlen - 1, as 0 or 1
	em.emit(mov64(R3, R0));
	em.emit(alu64_imm(BPF_SUB, R3, 2));
	em.emit(alu64_imm(BPF_RSH, R3, 63));
	em.emit(mov64(R4, optlen));
	em.emit(alu64_imm(BPF_SUB, R4, 1));
	em.emit(alu64_reg(BPF_XOR, R4, i));
	em.emit(alu64_imm(BPF_SUB, R4, 1));
	em.emit(alu64_imm(BPF_RSH, R4, 63));
	em.emit(alu64_reg(BPF_OR, R3, R4));
	// step - 1 = one ? 0 : (len ?: 1) - 1, kept within [0, 255] so that the verifier
	// sees the walk advance.
	em.emit(mov64(R4, R2));
	em.emit(alu64_imm(BPF_SUB, R4, 1));
	em.emit(alu64_imm(BPF_RSH, R4, 63)); // len == 0
	em.emit(alu64_reg(BPF_ADD, R2, R4)); // len ?: 1
	em.emit(alu64_imm(BPF_SUB, R2, 1));
	em.emit(alu64_imm(BPF_SUB, R3, 1)); // one ? 0 : ~0
	em.emit(alu64_reg(BPF_AND, R2, R3));
	em.emit(alu64_imm(BPF_AND, R2, 0xff));
	em.emit(alu64_imm(BPF_ADD, R2, 1));
	em.emit(alu64_reg(BPF_ADD, i, R2));
	em.jump(ja(), loop);

	cut.bind();
	em.emit(st(BPF_W, layout::pkt, off::opt_hotdrop, 1));
}

// -j LOG: the headers a log line may print, copied into the parsed packet (maps::LogSnap),
// since the rules' code has no context to read the packet with. Ingress copies from the
// link-layer header (MAC=), egress from the IP header; at most log_snap_bytes, never past
// the datagram. In: LogSnap's l2len (the IP header's offset in the frame) and hh_len.
void emit_log_copy(Emitter &em, const Ctx &cx)
{
	using snap = maps::LogSnap;
	const auto at = [](size_t field) { return snap_off(field); };
	const Reg n = totlen;
	em.emit(ldx(BPF_B, R2, layout::pkt, at(offsetof(snap, l2len))));
	em.emit(ldx(BPF_W, n, layout::pkt, off::tot_len));
	if (cx.egress()) {
		em.emit(st(BPF_B, layout::pkt, at(offsetof(snap, l2len)), 0));
	} else {
		em.emit(alu64_reg(BPF_ADD, n, R2));
		em.emit(mov64(R2, 0));
	}
	Label fits(em), copied(em);
	em.jump(jmp_imm(BPF_JLE, n, maps::log_snap_bytes), fits);
	em.emit(mov64(n, maps::log_snap_bytes));
	fits.bind();
	em.jump(jmp_imm(BPF_JLT, n, 1), copied); // cannot be: an IP header at least
	em.emit(mov64(R1, ctx));
	em.emit(mov64(R3, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R3, at(offsetof(snap, bytes))));
	em.emit(mov64(R4, n));
	em.emit(call_helper(cx.load_bytes));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), copied);
	em.emit(mov64(n, 0));
	copied.bind();
	em.emit(stx(BPF_H, layout::pkt, n, at(offsetof(snap, caplen))));

	em.emit(st(BPF_B, layout::pkt, at(offsetof(snap, reassembled)), 0));
	em.emit(st(BPF_H, layout::pkt, at(offsetof(snap, vlan_tci)), 0));
	em.emit(st(BPF_H, layout::pkt, at(offsetof(snap, vlan_proto)), 0));
	em.emit(st(BPF_W, layout::pkt, at(offsetof(snap, mark)), 0));
	em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
	em.emit(stx(BPF_W, layout::pkt, R1,
		    at(cx.egress() ? offsetof(snap, out_ifindex) : offsetof(snap, in_ifindex))));
	em.emit(st(BPF_W, layout::pkt,
		   at(cx.egress() ? offsetof(snap, in_ifindex) : offsetof(snap, out_ifindex)), 0));
	em.emit(mov64(R5, cx.egress() ? 0 : maps::log_snap_ingress));
	if (!cx.egress()) {
		// dump_mac_header() decodes ARPHRD_ETHER: Ethernet's header length, not lo.
		Label other(em);
		em.emit(ldx(BPF_B, R1, layout::pkt, at(offsetof(snap, hh_len))));
		em.jump(jmp_imm(BPF_JNE, R1, ETH_HLEN), other);
		em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
		em.jump(jmp_imm(BPF_JEQ, R1, 1), other); // LOOPBACK_IFINDEX
		em.emit(alu64_imm(BPF_OR, R5, maps::log_snap_ether));
		other.bind();
	}
	if (cx.tc()) {
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, mark)));
		em.emit(stx(BPF_W, layout::pkt, R1, at(offsetof(snap, mark))));
	}
	if (cx.tc() && !cx.egress()) {
		// Only VID 0 comes this far (emit_tc_start()); nf_log_dump_vlan() prints it.
		Label untagged(em);
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, vlan_present)));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), untagged);
		em.emit(alu64_imm(BPF_OR, R5, maps::log_snap_vlan));
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, vlan_tci)));
		em.emit(stx(BPF_H, layout::pkt, R1, at(offsetof(snap, vlan_tci))));
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, vlan_proto)));
		em.emit(stx(BPF_H, layout::pkt, R1, at(offsetof(snap, vlan_proto))));
		untagged.bind();
	}
	em.emit(stx(BPF_B, layout::pkt, R5, at(offsetof(snap, flags))));
}

// -m u32: the IP datagram, from its header up to its total length (at most 65535 bytes),
// into this CPU's U32Buf value, for the rules' code, which has no context to read it with;
// off::u32_len says how much is there. bpf_*_load_bytes() reads XDP frags and an skb's
// pages as well. The prologue checked that the frame holds tot_len bytes from l3off.
void emit_u32_copy(Emitter &em, const Ctx &cx)
{
	Label done(em);
	em.emit(st(BPF_W, layout::pkt, off::u32_len, 0));
	em.emit(call_helper(BPF_FUNC_get_smp_processor_id));
	em.emit(stx(BPF_W, layout::pkt, R0, off::u32_key));
	em.ld_map(R1, MapSlot::U32Buf);
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::u32_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done); // a CPU the map has no entry for: nothing read
	em.emit(mov64(R3, R0));
	em.emit(ldx(BPF_W, R4, layout::pkt, off::tot_len));
	em.emit(alu64_imm(BPF_AND, R4, 0xffff)); // bounds for the verifier
	em.jump(jmp_imm(BPF_JLT, R4, 1), done);
	em.emit(stx(BPF_W, layout::pkt, R4, off::u32_len));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::l3off));
	em.emit(mov64(R1, ctx));
	em.emit(call_helper(cx.load_bytes));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(st(BPF_W, layout::pkt, off::u32_len, 0));
	done.bind();
}

// FORWARD: ip_decrease_ttl() on the copy -m u32 reads, as on the skb FORWARD's rules see:
// the TTL one less (pkt_off::ttl, already decreased) and the header checksum updated as
// the kernel updates it: the u16 as it lies in memory, `check += htons(0x0100)`, and one
// more when that reaches 0xffff (the helper runs on the host whose byte order BPF has).
void emit_u32_forward(Emitter &em)
{
	Label done(em), no_carry(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::u32_len));
	em.jump(jmp_imm(BPF_JLT, R1, 20), done); // nothing copied
	em.emit(call_helper(BPF_FUNC_get_smp_processor_id));
	em.emit(stx(BPF_W, layout::pkt, R0, off::u32_key));
	em.ld_map(R1, MapSlot::U32Buf);
	em.emit(mov64(R2, layout::pkt));
	em.emit(alu64_imm(BPF_ADD, R2, off::u32_key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::ttl));
	em.emit(stx(BPF_B, R0, R1, offsetof(iphdr, ttl)));
	em.emit(ldx(BPF_H, R1, R0, offsetof(iphdr, check)));
	em.emit(alu32_imm(BPF_ADD, R1,
			  std::endian::native == std::endian::little ? 0x0001 : 0x0100));
	em.jump(jmp32_imm(BPF_JLT, R1, 0xffff), no_carry);
	em.emit(alu32_imm(BPF_ADD, R1, 1));
	no_carry.bind();
	em.emit(stx(BPF_H, R0, R1, offsetof(iphdr, check)));
	done.bind();
}

// R0 = the LocalAddrs entry holding the address at pkt + `field`, or 0.
void emit_local_lookup(Emitter &em, int16_t field)
{
	em.emit(st(BPF_W, R10, layout::main_fib, 32));
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	em.emit(stx(BPF_W, R10, R1, layout::main_fib + 4));
	em.ld_map(R1, MapSlot::LocalAddrs);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_fib));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
}

// tc on an ipvlan device's lower device: to `pass` when the address at pkt + field is an
// ipvlan device's, whose own program judges the packet.
void emit_ipvlan_skip(Emitter &em, int16_t field, Label &pass)
{
	Label done(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::dev_flags));
	em.emit(alu32_imm(BPF_AND, R1, maps::device_ipvlan_lower));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), done);
	emit_local_lookup(em, field);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(ldx(BPF_B, R1, R0, 0));
	em.emit(alu32_imm(BPF_AND, R1, maps::ipvlan_addr));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), pass);
	done.bind();
}

// Which chain judges a packet that arrived here: INPUT (delivered to this host), FORWARD
// (routed through it, with its output device in pkt.oif) or none (`pass`); see the
// comment at the top.
void emit_classify(Emitter &em, Label &input, Label &forward, Label &pass)
{
	em.emit(ldx(BPF_W, R1, layout::pkt, (off::daddr_h)));
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_AND, R2, static_cast<int32_t>(0xf0000000u)));
	em.jump(jmp32_imm(BPF_JEQ, R2, static_cast<int32_t>(0xe0000000u)), input); // 224/4
	em.jump(jmp32_imm(BPF_JEQ, R1, -1), input); // 255.255.255.255

	em.emit(mov64(R1, ctx));
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, layout::main_fib));
	em.emit(mov64(R3, static_cast<int32_t>(sizeof(bpf_fib_lookup))));
	em.emit(mov64(R4, 0));
	em.emit(call_helper(BPF_FUNC_fib_lookup));
	em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_NOT_FWDED), input);
	Label routed(em);
	em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_SUCCESS), routed);
	em.jump(jmp_imm(BPF_JEQ, R0, BPF_FIB_LKUP_RET_NO_NEIGH), routed);
	// Dropped by the stack (BLACKHOLE, UNREACHABLE, PROHIBIT, ...): no chain's.
	em.jump(jmp_imm(BPF_JNE, R0, BPF_FIB_LKUP_RET_FWD_DISABLED), pass);

	// Forwarding is off on this device: local addresses are the only ones delivered.
	emit_local_lookup(em, off::daddr);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), pass);
	em.jump(ja(), input);

	routed.bind();
	em.emit(ldx(BPF_W, R1, R10, fib_off(offsetof(bpf_fib_lookup, ifindex))));
	em.emit(stx(BPF_W, layout::pkt, R1, off::oif));
	em.jump(ja(), forward);
}

// Input routing refuses these before INPUT (ip_route_input_slow(), ip_route_input_mc()):
// sources that are loopback, multicast, limited broadcast, zero (but to 0.0.0.0 or
// 255.255.255.255), or a local or broadcast address of the namespace; destinations in
// 127/8, and multicast groups no device has joined (224.0.0.1 every device has). They
// are judged but not counted: the verdict costs nothing where the stack drops the packet
// anyway, and stays in force where a setting we do not read (route_localnet,
// accept_local, multicast routing) lets it through. Packets on lo are the host's own and
// come routed.
constexpr int32_t multicast = static_cast<int32_t>(0xe0000000u); // 224/4

// R1 = the host-order address at pkt + field, R2 = its top four bits (`multicast`
// for 224/4); to `loopback` when it is in 127/8.
void emit_addr_class(Emitter &em, int16_t field, Label &loopback)
{
	em.emit(ldx(BPF_W, R1, layout::pkt, field));
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_RSH, R2, 24));
	em.jump(jmp32_imm(BPF_JEQ, R2, 127), loopback);
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_AND, R2, static_cast<int32_t>(0xf0000000u)));
}

// Sources input routing refuses (martian_source): to `dry`.
void emit_martian_sources(Emitter &em, Label &dry, Label &done)
{
	emit_addr_class(em, off::saddr_h, dry);
	em.jump(jmp32_imm(BPF_JEQ, R2, multicast), dry);
	em.jump(jmp32_imm(BPF_JEQ, R1, -1), dry);
	Label nonzero(em);
	em.jump(jmp32_imm(BPF_JNE, R1, 0), nonzero);
	em.emit(ldx(BPF_W, R2, layout::pkt, off::daddr_h));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0), done);
	em.jump(jmp32_imm(BPF_JEQ, R2, -1), done);
	em.jump(ja(), dry);
	nonzero.bind();
	emit_local_lookup(em, off::saddr);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), done);
	em.emit(ldx(BPF_B, R1, R0, 0));
	em.emit(alu32_imm(BPF_AND, R1, maps::martian_source));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), dry);
}

void emit_martians(Emitter &em, const Ctx &cx, Label &dry)
{
	Label done(em), check_dst(em);
	em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
	em.jump(jmp_imm(BPF_JEQ, R1, 1), done); // LOOPBACK_IFINDEX

	emit_martian_sources(em, dry, check_dst);

	check_dst.bind();
	emit_addr_class(em, off::daddr_h, dry);
	em.jump(jmp32_imm(BPF_JNE, R2, multicast), done);
	em.jump(jmp32_imm(BPF_JEQ, R1, static_cast<int32_t>(0xe0000001u)), done);
	emit_local_lookup(em, off::daddr); // the loader keeps joined groups there
	em.jump(jmp_imm(BPF_JEQ, R0, 0), dry);
	done.bind();
}

// The Frags key of the parsed packet's datagram at R10 + main_frag_key: addresses, IP id and
// protocol, as ip4_frag_match() tells queues apart. Clobbers R1, R2.
void emit_frag_key(Emitter &em)
{
	constexpr int16_t key = layout::main_frag_key;
	em.emit(ldx(BPF_W, R2, layout::pkt, off::saddr));
	em.emit(stx(BPF_W, R10, R2, key));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::daddr));
	em.emit(stx(BPF_W, R10, R2, key + 4));
	em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
	em.emit(alu32_imm(BPF_RSH, R1, 16));
	em.emit(alu32_imm(BPF_LSH, R1, 8));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::proto));
	em.emit(alu32_reg(BPF_OR, R1, R2));
	em.emit(stx(BPF_W, R10, R1, key + 8));
}

// Fragments. netfilter's INPUT sees a datagram once, reassembled (ip_local_deliver()
// defrags before NF_INET_LOCAL_IN), and never a datagram that does not come whole; XDP
// sees each piece. OUTPUT sees a datagram before ip_fragment() cuts it; tc egress sees
// the pieces. Both are followed here. The Frags map follows each datagram's pieces as ip_defrag()
// queues them, keyed the same way, and holds the first fragment's parsed packet:
// - the first fragment (offset 0) is judged as the datagram, with its headers, but not
//   counted: a DROP drops it, and without it the datagram never reassembles, so no
//   fragment slips past a rule its datagram would hit;
// - the piece that makes the datagram whole (by bytes received against the length the
//   last piece gave) is judged again on the first fragment's headers and counted with
//   the datagram's length, ihl + payload, as netfilter counts skb->len; its device is
//   the one -i (-o) sees, as in the kernel, where the reassembled skb takes the last
//   piece's;
// - every other piece passes untouched; at tc egress (`steal` set), one of a datagram whose
//   first piece OUTPUT dropped goes to `steal`: the kernel sends the pieces it cut after
//   the hook one by one and stops at the first that fails (ip_do_fragment()), so OUTPUT
//   drops that first piece quietly (layout::tc_stolen) to see the rest, and drops them
//   too, the last one judged and counted with the datagram.
// Left to the kernel and not followed here: overlapping or duplicated pieces (the kernel
// discards such a datagram; the byte sum here may then call it whole), pieces of one
// datagram racing on two CPUs, and the kernel's memory limits. Those can only move a
// counter, never a verdict.
void emit_frags(Emitter &em, const Ctx &cx, bool logs, Label &dry, Label &pass,
		Label *steal = nullptr)
{
	constexpr int16_t key = layout::main_frag_key;
	constexpr Reg entry = R7;
	Label whole(em), have(em), fresh(em), later(em), complete(em), last_seen(em),
		incomplete(em);

	em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
	em.emit(alu32_imm(BPF_AND, R1, 0x3fff));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), whole);

	// A piece: every judgment from here (dry or whole) is of a datagram whose bytes are not
	// all here; -m u32 reads none of them (its every read is out of bounds).
	em.emit(st(BPF_W, layout::pkt, off::u32_len, 0));
	emit_frag_key(em);

	em.ld_map(R1, MapSlot::Frags);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JNE, R0, 0), have);

	// A new datagram: this packet, with its reassembly state cleared, is the value.
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.emit(stx(BPF_DW, layout::pkt, R0, off::fr_time));
	em.emit(st(BPF_W, layout::pkt, off::fr_received, 0));
	em.emit(st(BPF_W, layout::pkt, off::fr_end, 0));
	em.emit(st(BPF_W, layout::pkt, off::fr_ihl, 0));
	em.emit(st(BPF_W, layout::pkt, off::fr_ecn, 0));
	em.ld_map(R1, MapSlot::Frags);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, key));
	em.emit(mov64(R3, layout::pkt));
	em.emit(mov64(R4, BPF_NOEXIST));
	em.emit(call_helper(BPF_FUNC_map_update_elem));
	em.ld_map(R1, MapSlot::Frags);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, key));
	em.emit(call_helper(BPF_FUNC_map_lookup_elem));
	em.jump(jmp_imm(BPF_JEQ, R0, 0), dry); // not followed: judged, never counted
	em.emit(mov64(entry, R0));
	em.jump(ja(), fresh);

	// A datagram the kernel would have given up on by now starts again.
	have.bind();
	em.emit(mov64(entry, R0));
	em.emit(call_helper(BPF_FUNC_ktime_get_ns));
	em.emit(ldx(BPF_DW, R1, entry, off::fr_time));
	em.emit(mov64(R2, R0));
	em.emit(alu64_reg(BPF_SUB, R2, R1));
	em.ld_imm64(R3, maps::frag_timeout_ns);
	em.jump(jmp_reg(BPF_JLE, R2, R3), fresh);
	em.emit(stx(BPF_DW, entry, R0, off::fr_time));
	em.emit(st(BPF_W, entry, off::fr_received, 0));
	em.emit(st(BPF_W, entry, off::fr_end, 0));
	em.emit(st(BPF_W, entry, off::fr_ihl, 0));
	em.emit(st(BPF_W, entry, off::fr_ecn, 0));
	em.emit(st(BPF_W, entry, off::fr_doomed, 0));

	fresh.bind();
	// ip4_frag_ecn(): this piece's ECN codepoint joins the others'.
	em.emit(ldx(BPF_W, R3, layout::pkt, off::tos));
	em.emit(alu32_imm(BPF_AND, R3, 3));
	em.emit(mov64(R5, 1));
	em.emit(alu64_reg(BPF_LSH, R5, R3));
	em.emit(atomic_or(BPF_W, entry, R5, off::fr_ecn));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::l4len)); // this piece's payload
	em.emit(atomic_add(BPF_W, entry, R2, off::fr_received));
	em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
	em.emit(mov64(R3, R1));
	em.emit(alu32_imm(BPF_AND, R3, 0x1fff));
	em.emit(alu32_imm(BPF_LSH, R3, 3));
	em.emit(alu32_reg(BPF_ADD, R3, R2));
	em.emit(mov64(R4, R1));
	em.emit(alu32_imm(BPF_AND, R4, 0x2000)); // IP_MF
	em.jump(jmp32_imm(BPF_JNE, R4, 0), last_seen);
	em.emit(stx(BPF_W, entry, R3, off::fr_end));
	last_seen.bind();
	em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), later);

	// The first fragment: its parsed packet becomes the value, state carried over.
	em.emit(ldx(BPF_DW, R1, entry, off::fr_time));
	em.emit(stx(BPF_DW, layout::pkt, R1, off::fr_time));
	em.emit(ldx(BPF_W, R1, entry, off::fr_received));
	em.emit(stx(BPF_W, layout::pkt, R1, off::fr_received));
	em.emit(ldx(BPF_W, R1, entry, off::fr_end));
	em.emit(stx(BPF_W, layout::pkt, R1, off::fr_end));
	em.emit(ldx(BPF_W, R1, entry, off::fr_ecn));
	em.emit(stx(BPF_W, layout::pkt, R1, off::fr_ecn));
	em.emit(ldx(BPF_W, R1, layout::pkt, off::tot_len));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::l4len));
	em.emit(alu32_reg(BPF_SUB, R1, R2));
	em.emit(stx(BPF_W, layout::pkt, R1, off::fr_ihl));
	em.ld_map(R1, MapSlot::Frags);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, key));
	em.emit(mov64(R3, layout::pkt));
	em.emit(mov64(R4, BPF_ANY));
	em.emit(call_helper(BPF_FUNC_map_update_elem));
	em.emit(ldx(BPF_W, R1, layout::pkt, off::fr_end));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), dry);
	em.emit(ldx(BPF_W, R2, layout::pkt, off::fr_received));
	em.jump(jmp32_reg(BPF_JNE, R1, R2), dry);
	em.jump(ja(), complete);

	// A later piece: whole only once the first fragment and the last piece are in.
	later.bind();
	em.emit(ldx(BPF_W, R1, entry, off::fr_ihl));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), incomplete);
	em.emit(ldx(BPF_W, R1, entry, off::fr_end));
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), incomplete);
	em.emit(ldx(BPF_W, R2, entry, off::fr_received));
	em.jump(jmp32_reg(BPF_JNE, R1, R2), incomplete);
	for (int16_t at = 0; at < off::size; at += 8) {
		// The devices are this piece's, as in the kernel.
		if ((at >= off::ifname && at < off::ifname + 16) ||
		    (at >= off::out_ifname && at < off::out_ifname + 16))
			continue;
		em.emit(ldx(BPF_DW, R1, entry, at));
		em.emit(stx(BPF_DW, layout::pkt, R1, at));
	}
	em.emit(st(BPF_W, layout::pkt, off::count_inc, 1));

	complete.bind();
	if (logs) {
		// The reassembled skb's device is the last piece's, as -i (-o) sees it.
		em.emit(st(BPF_B, layout::pkt, snap_off(offsetof(maps::LogSnap, reassembled)), 1));
		em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
		em.emit(stx(BPF_W, layout::pkt, R1,
			    snap_off(cx.egress() ? offsetof(maps::LogSnap, out_ifindex)
						 : offsetof(maps::LogSnap, in_ifindex))));
	}
	em.ld_map(R1, MapSlot::Frags);
	em.emit(mov64(R2, R10));
	em.emit(alu64_imm(BPF_ADD, R2, key));
	em.emit(call_helper(BPF_FUNC_map_delete_elem));
	// ip_frag_reasm(): iph->tos |= ip_frag_ecn_table[ecn]: CE when some piece was CE and
	// the others ECT; a not-ECT piece among ECN ones makes the kernel discard the datagram
	// (0xff), which then never reaches the hook (its counters may differ, see supported.md).
	Label ecn_kept(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::fr_ecn));
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_AND, R2, 0x9)); // IPFRAG_ECN_CE | IPFRAG_ECN_NOT_ECT
	em.jump(jmp32_imm(BPF_JNE, R2, 0x8), ecn_kept);
	em.emit(alu32_imm(BPF_AND, R1, 0x6)); // IPFRAG_ECN_ECT_0 | IPFRAG_ECN_ECT_1
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), ecn_kept);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::tos));
	em.emit(alu32_imm(BPF_OR, R1, 3)); // INET_ECN_CE
	em.emit(stx(BPF_W, layout::pkt, R1, off::tos));
	ecn_kept.bind();
	em.emit(ldx(BPF_W, R1, layout::pkt, off::fr_ihl));
	em.emit(ldx(BPF_W, R2, layout::pkt, off::fr_end));
	em.emit(alu32_reg(BPF_ADD, R1, R2));
	em.emit(stx(BPF_W, layout::pkt, R1, off::tot_len));
	em.emit(stx(BPF_W, layout::pkt, R1, off::ip_len)); // the reassembled header's
	// The transport header's bytes run to the reassembled end, as skb->len - dataoff does
	// for the kernel's trackers (udp_error() checks the UDP length against the whole
	// datagram) and REJECT's reply. A tiny first piece of TCP (fewer than the 20 bytes
	// the header needs) keeps its own length: its flags and data offset were never
	// parsed, and the tcp match must still drop it (Documentation/supported.md).
	Label not_tiny(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::proto));
	em.jump(jmp32_imm(BPF_JNE, R1, IPPROTO_TCP), not_tiny);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::l4len));
	em.jump(jmp32_imm(BPF_JLT, R1, 20), whole);
	not_tiny.bind();
	em.emit(ldx(BPF_W, R1, layout::pkt, off::fr_end));
	em.emit(stx(BPF_W, layout::pkt, R1, off::l4len));
	em.jump(ja(), whole);

	incomplete.bind();
	if (steal) {
		em.emit(ldx(BPF_W, R1, entry, off::fr_doomed));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), *steal);
	}
	em.jump(ja(), pass);
	whole.bind();
}

// Judged, not counted; a later fragment of such a datagram passes untouched. Then on to
// `judge`.
void emit_dry(Emitter &em, Label &pass, Label &judge)
{
	em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
	em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
	em.jump(jmp32_imm(BPF_JNE, R1, 0), pass);
	em.emit(st(BPF_W, layout::pkt, off::count_inc, 0));
	em.emit(st(BPF_W, layout::pkt, off::tot_len, 0));
	em.jump(ja(), judge);
}

// XDP: the ingress device's name, for -i; a device the loader has not named yet reads
// as the all-zero name.
void emit_xdp_ifname(Emitter &em, const Ctx &cx)
{
	Label unknown(em);
	em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
	emit_device_lookup(em);
	em.jump(jmp_imm(BPF_JEQ, R0, 0), unknown);
	emit_copy_name(em, off::ifname);
}

// FORWARD's part of the prologue: what ip_forward() drops before the hook, martian
// sources, the output device's name.
void emit_forward(Emitter &em, const Ctx &cx, const Plan &plan, const Options &opts, Label &pass,
		  Label &judge)
{
	Label dry(em), sources_ok(em), expired(em);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::ttl));
	em.jump(jmp_imm(BPF_JLE, R1, 1), expired); // too_many_hops: time exceeded, not FORWARD
	// ip_forward() decreases the TTL before the hook: -m ttl sees the new one.
	em.emit(alu32_imm(BPF_SUB, R1, 1));
	em.emit(stx(BPF_W, layout::pkt, R1, off::ttl));
	if (plan.uses_u32)
		emit_u32_forward(em);
	if (cx.tc()) {
		em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), pass); // not PACKET_HOST
	} else {
		// eth_type_trans(): a frame not sent to the device's own MAC address is
		// broadcast, multicast or another host's, and ip_forward() drops it.
		em.emit(ldx(BPF_W, R1, ctx, cx.ifindex));
		emit_device_lookup(em);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), pass);
		emit_mac_differs(em, cx, 0, pass);
		if (plan.uses_ifname)
			emit_copy_name(em, off::ifname);
	}
	if (plan.logs) {
		const int16_t flags = snap_off(offsetof(maps::LogSnap, flags));
		em.emit(ldx(BPF_B, R1, layout::pkt, flags));
		em.emit(alu32_imm(BPF_OR, R1, maps::log_snap_forward));
		em.emit(stx(BPF_B, layout::pkt, R1, flags));
		em.emit(ldx(BPF_W, R1, layout::pkt, off::oif));
		em.emit(stx(BPF_W, layout::pkt, R1,
			    snap_off(offsetof(maps::LogSnap, out_ifindex))));
	}
	emit_martian_sources(em, dry, sources_ok);
	em.jump(ja(), sources_ok);
	dry.bind();
	// A martian's later fragments: judged on their own as well, and never counted.
	em.emit(st(BPF_W, layout::pkt, off::count_inc, 0));
	em.emit(st(BPF_W, layout::pkt, off::tot_len, 0));
	sources_ok.bind();
	if (plan.uses_conntrack) {
		// Connection tracking reassembles what it forwards (nf_defrag_ipv4), as INPUT.
		Label whole(em), fdry(em);
		emit_frags(em, cx, plan.logs, fdry, pass);
		em.jump(ja(), whole);
		fdry.bind();
		em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
		em.emit(alu32_imm(BPF_AND, R1, 0x1fff));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), pass);
		em.emit(st(BPF_W, layout::pkt, off::count_inc, 0));
		em.emit(st(BPF_W, layout::pkt, off::tot_len, 0));
		whole.bind();
	}
	if (plan.uses_ofname) {
		Label unknown(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::oif));
		emit_device_lookup(em);
		em.jump(jmp_imm(BPF_JEQ, R0, 0), unknown);
		emit_copy_name(em, off::out_ifname);
	}
	em.jump(ja(), judge);
	expired.bind();
	if (plan.uses_conntrack)
		emit_ct_expired_note(em, ctx, opts.flavor, opts.ct);
	em.jump(ja(), pass);
}

// tc ingress: the host's own broadcast or multicast, looped back (dev_loopback_xmit(),
// in POSTROUTING): it exists only if OUTPUT let the original go, which tc egress judges
// later, so OUTPUT runs here first without counting (-o the device); then INPUT judges
// the copy (-i the device). It kept its output route, so input routing never looks at
// it: no martian checks. The copies of a datagram the host sent in pieces (a raw socket's
// own fragments) are reassembled before INPUT (ip_local_deliver()), as any others: on to
// `reassemble`, emit_frags().
void emit_looped(Emitter &em, const ir::Table &table, const Plan &plan, const CtLayout &ct,
		 Label &reassemble)
{
	size_t out = plan.hooks.size();
	for (size_t k = 0; k < plan.hooks.size(); k++)
		if (plan.hooks[k].hook == ir::Hook::LocalOut)
			out = k;
	if (out < plan.hooks.size()) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::tot_len));
		em.emit(stx(BPF_W, layout::pkt, R1, off::saved_len));
		em.emit(st(BPF_W, layout::pkt, off::count_inc, 0));
		em.emit(st(BPF_W, layout::pkt, off::tot_len, 0));
		for (int16_t k = 0; k < 2; k++) {
			em.emit(ldx(BPF_DW, R1, layout::pkt,
				    static_cast<int16_t>(off::ifname + 8 * k)));
			em.emit(stx(BPF_DW, layout::pkt, R1,
				    static_cast<int16_t>(off::out_ifname + 8 * k)));
			em.emit(st(BPF_DW, layout::pkt, static_cast<int16_t>(off::ifname + 8 * k),
				   0));
		}
		if (plan.uses_conntrack)
			emit_ct_state(em, ctx, Flavor::TcIngress, ct);
		if (plan.uses_conntrack && table.connlimit_slots)
			emit_connlimit_probe_call(em, ctx, plan.connlimit_probe_id());
		// OUTPUT judged the original, which the host allocated: PACKET_HOST.
		if (plan.uses_l2)
			em.emit(st(BPF_W, layout::pkt, off::pkttype, 0));
		em.emit(mov64(R1, layout::pkt));
		em.call(plan.hook_fn_id(out));
		// DROP or REJECT: the original is dropped (a broadcast or multicast one gets no
		// reply), and this copy never was.
		Label sent(em);
		em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_accept), sent);
		em.emit(mov64(R0, layout::tc_drop));
		em.emit(exit());
		sent.bind();
		if (plan.uses_l2) { // the copy is PACKET_LOOPBACK again (emit_l2())
			Label bcast(em);
			em.emit(st(BPF_W, layout::pkt, off::pkttype, 1));
			em.emit(ldx(BPF_W, R1, layout::pkt, off::daddr_h));
			em.emit(alu32_imm(BPF_RSH, R1, 28));
			em.jump(jmp32_imm(BPF_JNE, R1, 0xe), bcast);
			em.emit(st(BPF_W, layout::pkt, off::pkttype, 2));
			bcast.bind();
		}
		em.emit(st(BPF_W, layout::pkt, off::count_inc, 1));
		em.emit(ldx(BPF_W, R1, layout::pkt, off::saved_len));
		em.emit(stx(BPF_W, layout::pkt, R1, off::tot_len));
		for (int16_t k = 0; k < 2; k++) {
			em.emit(ldx(BPF_DW, R1, layout::pkt,
				    static_cast<int16_t>(off::out_ifname + 8 * k)));
			em.emit(stx(BPF_DW, layout::pkt, R1,
				    static_cast<int16_t>(off::ifname + 8 * k)));
			em.emit(st(BPF_DW, layout::pkt,
				   static_cast<int16_t>(off::out_ifname + 8 * k), 0));
		}
	}
	em.jump(ja(), reassemble);
}

// The offload flavor's prologue: the parsed packet on the stack, INPUT for every IPv4 packet
// the device receives (it forwards nothing), judged whole or by its first fragment. A NIC
// has no reassembly queue: a first fragment is judged on its headers and not counted (a DROP
// keeps the datagram from ever being whole), later ones pass. Sources input routing refuses
// whatever the routes (loopback, multicast, limited broadcast, 0.0.0.0) and 127/8
// destinations are judged and not counted, as on the host; the host's own addresses as
// sources are counted (the NIC does not know them). To `first` with R6 = ctx.
void emit_offload_prologue(Emitter &em, const Ctx &cx, const Options &opts, Label &pass,
			   Label &first)
{
	em.emit(mov64(ctx, R1));
	em.emit(mov64(layout::pkt, R10));
	em.emit(alu64_imm(BPF_ADD, layout::pkt, layout::offload_pkt));
	for (int16_t at = 0; at < layout::offload_pkt_size; at += 8)
		em.emit(st(BPF_DW, layout::pkt, at, 0));
	Options parse = opts;
	parse.local_only = false; // no route lookup to prepare (and its stack is the packet's)
	emit_parse_ip(em, cx, parse, false, pass);
	em.emit(ldx(BPF_W, R5, layout::pkt, off::frag));
	em.emit(alu32_imm(BPF_AND, R5, 0x1fff));
	em.jump(jmp32_imm(BPF_JNE, R5, 0), pass); // a later fragment
	emit_parse_l4(em, false);
	Label dry(em), counted(em);
	em.emit(ldx(BPF_W, R5, layout::pkt, off::frag));
	em.emit(alu32_imm(BPF_AND, R5, 0x2000)); // MF: the first of several
	em.jump(jmp32_imm(BPF_JNE, R5, 0), dry);
	em.emit(ldx(BPF_W, R1, layout::pkt, off::saddr_h));
	em.emit(mov64(R2, R1));
	em.emit(alu32_imm(BPF_RSH, R2, 24));
	em.jump(jmp32_imm(BPF_JEQ, R2, 127), dry);
	em.jump(jmp32_imm(BPF_JEQ, R1, 0), dry);
	em.jump(jmp32_imm(BPF_JEQ, R1, -1), dry); // 255.255.255.255
	em.emit(alu32_imm(BPF_RSH, R2, 4));
	em.jump(jmp32_imm(BPF_JEQ, R2, 0xe), dry); // 224/4
	em.emit(ldx(BPF_W, R1, layout::pkt, off::daddr_h));
	em.emit(alu32_imm(BPF_RSH, R1, 24));
	em.jump(jmp32_imm(BPF_JEQ, R1, 127), dry);
	em.jump(ja(), counted);
	dry.bind();
	em.emit(st(BPF_W, layout::pkt, off::count_inc, 0));
	em.emit(st(BPF_W, layout::pkt, off::tot_len, 0));
	counted.bind();
	// -i: the program is the device's own, its name a constant.
	for (int16_t k = 0; k < 16; k += 4) {
		int32_t word = 0;
		std::memcpy(&word, opts.offload_ifname.data() + k, 4);
		em.emit(st(BPF_W, layout::pkt, static_cast<int16_t>(off::ifname + k), word));
	}
	em.jump(ja(), first);
}

// To `reject` when R0 is a REJECT verdict (layout::ret_reject + with).
void emit_if_reject(Emitter &em, Label &reject)
{
	Label other(em);
	em.jump(jmp_imm(BPF_JLT, R0, layout::ret_reject), other);
	em.jump(jmp_imm(BPF_JLE, R0, layout::ret_reject_last), reject);
	other.bind();
}

// XDP: a hook function's verdict is the action, but REJECT's.
void emit_xdp_finish(Emitter &em, const Options &opts, ir::Hook hook, bool replies, bool tracks)
{
	if (!replies) {
		em.emit(exit());
		return;
	}
	Label reject(em), dropped(em);
	emit_if_reject(em, reject);
	em.emit(exit());
	reject.bind();
	emit_reject(em, opts.flavor, hook, opts.replies, tracks, dropped);
	dropped.bind();
	em.emit(mov64(R0, XDP_DROP));
	em.emit(exit());
}

// tc: the chains' verdict (layout::ret_*) as tc's action, and the mark -j MARK left.
void emit_tc_finish(Emitter &em, const Options &opts, ir::Hook hook, bool replies, bool tracks,
		    bool sets_mark)
{
	Label shot(em), reject(em);
	const bool egress = opts.flavor == Flavor::TcEgress;
	if (sets_mark) {
		em.emit(ldx(BPF_W, R1, layout::pkt, off::mark));
		em.emit(stx(BPF_W, ctx, R1, offsetof(__sk_buff, mark)));
	}
	if (egress) {
		// The piece that makes whole a datagram whose first piece was dropped: counted by
		// this judgment, dropped by the first (emit_frags()).
		em.emit(ldx(BPF_W, R1, layout::pkt, off::fr_doomed));
		em.jump(jmp32_imm(BPF_JNE, R1, 0), shot);
	}
	if (replies)
		emit_if_reject(em, reject);
	em.jump(jmp_imm(BPF_JEQ, R0, layout::ret_drop), shot);
	em.emit(mov64(R0, layout::tc_accept));
	em.emit(exit());
	if (replies) {
		reject.bind();
		emit_reject(em, opts.flavor, hook, opts.replies, tracks, shot);
	}
	shot.bind();
	if (egress) {
		// A piece of a datagram the kernel cut after OUTPUT (a raw socket's own pieces
		// are judged alone, unless conntrack reassembled them before the hook): dropped
		// quietly, and its datagram marked, so that ip_do_fragment() sends the other
		// pieces, which are dropped too and make the datagram counted when whole.
		Label alone(em), stolen(em);
		em.emit(ldx(BPF_W, R1, layout::pkt, off::frag));
		em.emit(alu32_imm(BPF_AND, R1, 0x3fff));
		em.jump(jmp32_imm(BPF_JEQ, R1, 0), alone);
		if (!tracks) {
			em.emit(ldx(BPF_W, R1, layout::pkt, off::own_pieces));
			em.jump(jmp32_imm(BPF_JNE, R1, 0), alone);
		}
		emit_frag_key(em);
		em.ld_map(R1, MapSlot::Frags);
		em.emit(mov64(R2, R10));
		em.emit(alu64_imm(BPF_ADD, R2, layout::main_frag_key));
		em.emit(call_helper(BPF_FUNC_map_lookup_elem));
		em.jump(jmp_imm(BPF_JEQ, R0, 0), stolen);
		em.emit(st(BPF_W, R0, off::fr_doomed, 1));
		stolen.bind();
		em.emit(mov64(R0, layout::tc_stolen));
		em.emit(exit());
		alone.bind();
	}
	em.emit(mov64(R0, layout::tc_drop));
	em.emit(exit());
}

} // namespace

Result<Program> compile(const ir::Table &table, const Options &options)
{
	auto plan = make_plan(table, options);
	if (!plan)
		return plan.error();
	if (plan->uses_conntrack && !options.ct.known())
		return make_error(EOPNOTSUPP, "codegen: the table tracks connections, and the "
					      "kernel's struct nf_conn is unknown (no BTF for "
					      "nf_conntrack?)");
	for (const ir::Rule &r : table.rules)
		for (const ir::Match &m : r.matches)
			if (auto *x = std::get_if<ir::LimitMatch>(&m);
			    x && x->slot >= table.limit_slots)
				return make_error(EINVAL,
						  "codegen: a -m limit match without a bucket");
	if (table.limit_slots && (options.hz == 0 || ir::limit::credits_per_jiffy(options.hz) == 0))
		return make_error(EOPNOTSUPP, "codegen: -m limit needs the kernel's HZ, which "
					      "is unknown");
	if (plan->uses_conntrack && !options.ct.mark &&
	    std::any_of(table.rules.begin(), table.rules.end(), [](const ir::Rule &r) {
		    return std::any_of(r.matches.begin(), r.matches.end(), [](const ir::Match &m) {
			    return std::holds_alternative<ir::ConnmarkMatch>(m);
		    });
	    }))
		return make_error(EOPNOTSUPP,
				  "codegen: -m connmark reads the conntrack entry's mark, "
				  "which this kernel does not keep "
				  "(CONFIG_NF_CONNTRACK_MARK)");
	if (options.flavor == Flavor::Xdp && needs_skb_mark(table))
		return make_error(EOPNOTSUPP,
				  "codegen: INPUT or FORWARD reads or sets the packet's "
				  "mark, which XDP cannot see: the table runs at tc "
				  "ingress");
	for (const ir::Rule &r : table.rules)
		for (const ir::Match &m : r.matches)
			if (auto *x = std::get_if<ir::HashlimitMatch>(&m);
			    x && x->table >= table.hashlimits.size())
				return make_error(
					EINVAL, "codegen: a -m hashlimit match without an htable");
	if (!table.hashlimits.empty() && options.hz == 0)
		return make_error(EOPNOTSUPP, "codegen: -m hashlimit needs the kernel's HZ, "
					      "which is unknown");
	if (plan->uses_owner && !options.owner.known())
		return make_error(EOPNOTSUPP, "codegen: -m owner reads the sending socket's file "
					      "credentials, and the kernel's struct sock, socket, "
					      "file and cred are unknown (no BTF?)");
	if (options.offload && options.flavor != Flavor::Xdp)
		return make_error(EINVAL, "codegen: only XDP programs are offloaded");
	if (options.offload)
		BF_TRY(check_offload(table));
	const Ctx cx = context(options.flavor);
	// Offloaded, INPUT replies to nothing (check_offload()); OUTPUT's REJECT is the host's.
	const bool replies = table_rejects(table) && !options.offload;

	Emitter em;
	{
		Label pass(em), l4_done(em), input(em), forward(em);
		std::map<ir::Hook, std::unique_ptr<Label>> judge;
		for (const HookRun &run : plan->hooks)
			judge[run.hook] = std::make_unique<Label>(em);
		Label &first = *judge.at(plan->hooks.front().hook);

		// tc ingress: a packet native XDP rejected (rj_mark) is answered and never goes on
		// to the stack, whatever the prologue finds.
		const bool marks = options.flavor == Flavor::TcIngress && replies;
		Label pass_unmarked(em), marked(em);
		if (options.offload) {
			emit_offload_prologue(em, cx, options, pass, first);
			goto prologue_done;
		}
		emit_scratch(em, marks ? pass_unmarked : pass);
		if (!cx.tc())
			em.emit(st(BPF_W, layout::pkt, off::mark, 0)); // no skb, no mark
		if (marks)
			em.emit(st(BPF_W, layout::pkt, off::rj_mark, 0));
		if (cx.tc())
			emit_tc_start(em, cx, options, plan->logs, replies, pass);
		emit_parse_ip(em, cx, options, plan->logs, pass);
		if (plan->uses_ecn_tcp)
			emit_th13(em);
		if (plan->uses_conntrack)
			emit_ct_parse_reset(em);
		if (!table.hashlimits.empty())
			emit_hashlimit_bytes(em);
		// A later fragment has no transport header: only its place in the datagram counts.
		em.emit(ldx(BPF_W, R5, layout::pkt, off::frag));
		em.emit(alu32_imm(BPF_AND, R5, 0x1fff));
		em.jump(jmp32_imm(BPF_JNE, R5, 0), l4_done);
		emit_parse_l4(em);
		if (plan->uses_conntrack)
			emit_ct_parse(em, ihl, R3, R4);
		if (!plan->tcp_option_kinds.empty())
			emit_tcp_options(em, cx, plan->tcp_option_kinds);
		l4_done.bind();
		if (plan->uses_l2)
			emit_l2(em, cx);
		if (plan->logs)
			emit_log_copy(em, cx);
		if (plan->uses_u32)
			emit_u32_copy(em, cx);
		if (marks) {
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rj_mark));
			em.jump(jmp32_imm(BPF_JNE, R1, 0), marked);
		}

		if (cx.egress()) {
			Label dry(em), stolen(em);
			if (plan->uses_owner)
				emit_owner(em, options.owner);
			if (options.local_only)
				emit_ipvlan_skip(em, off::saddr, pass);
			// A raw socket's own fragments: judged one by one, as netfilter does
			// (unless connection tracking reassembles them).
			if (!plan->uses_conntrack) {
				em.emit(ldx(BPF_W, R1, layout::pkt, off::own_pieces));
				em.jump(jmp32_imm(BPF_JNE, R1, 0), first);
			}
			emit_frags(em, cx, plan->logs, dry, pass, &stolen);
			em.jump(ja(), first);
			dry.bind();
			emit_dry(em, pass, first);
			stolen.bind();
			em.emit(mov64(R0, layout::tc_stolen));
			em.emit(exit());
		} else {
			Label dry(em), counted(em), looped(em), reassemble(em);
			if (options.local_only && cx.tc()) {
				em.emit(ldx(BPF_W, R1, ctx, offsetof(__sk_buff, pkt_type)));
				em.jump(jmp32_imm(BPF_JEQ, R1, PACKET_LOOPBACK), looped);
			}
			if (options.local_only && cx.tc())
				emit_ipvlan_skip(em, off::daddr, pass);
			if (options.local_only)
				emit_classify(em, input,
					      judge.count(ir::Hook::Forward) ? forward : pass,
					      pass);
			input.bind();
			if (options.local_only)
				emit_martians(em, cx, dry);
			reassemble.bind();
			emit_frags(em, cx, plan->logs, dry, pass);
			em.jump(ja(), counted);
			dry.bind();
			emit_dry(em, pass, counted);
			counted.bind();
			if (!cx.tc() && plan->uses_ifname)
				emit_xdp_ifname(em, cx);
			em.jump(ja(), first);
			if (looped.aimed_at()) {
				looped.bind();
				emit_looped(em, table, *plan, options.ct, reassemble);
			}
			if (judge.count(ir::Hook::Forward)) {
				forward.bind();
				emit_forward(em, cx, *plan, options, pass,
					     *judge.at(ir::Hook::Forward));
			}
		}
	prologue_done:
		pass.bind();
		if (marks) {
			Label shot(em);
			em.emit(ldx(BPF_W, R1, layout::pkt, off::rj_mark));
			em.jump(jmp32_imm(BPF_JEQ, R1, 0), pass_unmarked);
			em.jump(ja(), shot);
			marked.bind();
			// The mark is hook << 8 | with: the reply of that hook's REJECT.
			for (const HookRun &run : plan->hooks) {
				if (run.hook == ir::Hook::LocalOut)
					continue;
				Label other(em);
				em.emit(ldx(BPF_W, R0, layout::pkt, off::rj_mark));
				em.emit(alu32_imm(BPF_RSH, R0, 8));
				em.emit(alu32_imm(BPF_AND, R0, 0xff));
				em.jump(jmp32_imm(BPF_JNE, R0, static_cast<int32_t>(run.hook)),
					other);
				em.emit(ldx(BPF_W, R0, layout::pkt, off::rj_mark));
				em.emit(alu32_imm(BPF_AND, R0, 0xff));
				em.jump(jmp32_imm(BPF_JGT, R0,
						  layout::ret_reject_last - layout::ret_reject),
					shot);
				em.emit(alu64_imm(BPF_ADD, R0, layout::ret_reject));
				emit_reject(em, options.flavor, run.hook, options.replies,
					    plan->uses_conntrack, shot);
				other.bind();
			}
			shot.bind();
			em.emit(mov64(R0, layout::tc_drop));
			em.emit(exit());
		}
		pass_unmarked.bind();
		em.emit(mov64(R0, cx.pass));
		em.emit(exit());

		// The calls of the hooks' functions first, the run emitted inline last: every
		// jump from the prologue stays short.
		std::vector<size_t> order;
		for (size_t k = 0; k < plan->hooks.size(); k++)
			if (plan->hook_is_fn(k))
				order.push_back(k);
		for (size_t k = 0; k < plan->hooks.size(); k++)
			if (!plan->hook_is_fn(k))
				order.push_back(k);
		for (size_t k : order) {
			const HookRun &run = plan->hooks[k];
			judge.at(run.hook)->bind();
			if (plan->hook_is_fn(k)) {
				if (plan->uses_conntrack)
					emit_ct_state(em, ctx, options.flavor, options.ct);
				if (plan->uses_conntrack && table.connlimit_slots)
					emit_connlimit_probe_call(em, ctx,
								  plan->connlimit_probe_id());
				if (plan->uses_conntrack && cx.egress())
					emit_ct_reply(em);
				em.emit(mov64(R1, layout::pkt));
				em.call(plan->hook_fn_id(k));
				if (plan->uses_conntrack)
					emit_ct_confirm(em, ctx, options.flavor, options.ct);
				if (cx.tc())
					emit_tc_finish(em, options, run.hook, replies,
						       plan->uses_conntrack, plan->sets_mark);
				else
					emit_xdp_finish(em, options, run.hook, replies,
							plan->uses_conntrack);
				continue;
			}
			em.emit(ldx(BPF_W, layout::len, layout::pkt, off::tot_len));
			if (run.chunks.empty())
				emit_main_run(em, table, *plan, run);
			else
				emit_main_chunks(em, table, *plan, run);
		}
	}
	for (size_t k = 0; k < plan->hooks.size(); k++)
		if (plan->hook_is_fn(k) && em.called(plan->hook_fn_id(k)))
			emit_hook_fn(em, table, *plan, k);
	for (const HookRun &run : plan->hooks)
		for (size_t k = 0; k < run.chunks.size(); k++)
			if (em.called(plan->chunk_id(run.first_chunk + k)))
				emit_chunk(em, table, *plan, run, k);
	// Only the subprograms something calls: one called from dead code alone would be
	// unreachable, which the verifier refuses. Ascending order keeps the output stable.
	for (bool more = true; more;) {
		more = false;
		for (SubprogId id = 0; id < plan->subprogs.size(); id++) {
			if (em.called(id) && !em.started(id)) {
				emit_subprog(em, table, *plan, id);
				more = true;
			}
		}
	}
	if (em.called(plan->recent_walk_id()))
		emit_recent_walk(em, plan->recent_walk_id());
	if (em.called(plan->connlimit_probe_id()))
		emit_connlimit_probe(em, plan->connlimit_probe_id(), options.flavor, options.ct,
				     table, plan->hookset);
	auto program = std::move(em).finish(static_cast<uint32_t>(table.rules.size()));
	if (program) {
		program->tests = !plan->accumulate    ? Options::Tests::Branch
				 : plan->first_branch ? Options::Tests::FirstBranch
						      : Options::Tests::Accumulate;
		program->flavor = options.flavor;
		program->offload = options.offload;
		for (AddrSet &set : plan->addr_sets) // the plan's last use: at 100k rules, MiBs
			program->addr_sets.push_back(std::move(set.data));
	}
	return program;
}

} // namespace bpfilter::codegen
