// Conventions every piece of generated code shares: verdict codes, registers, the parsed packet on
// the stack.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

#include "codegen/insn.hpp"

namespace bpfilter::codegen::layout
{

// What a chain's code leaves in R0 when it exits: a final verdict, or RETURN to the
// caller. The verdicts are the XDP action codes so that the XDP program can hand a
// callee's verdict straight back to the kernel; the tc programs translate them on the
// way out (tc_accept, tc_drop).
inline constexpr int32_t ret_return = 0; // XDP_ABORTED is never returned by the program
inline constexpr int32_t ret_drop = XDP_DROP;
inline constexpr int32_t ret_accept = XDP_PASS;
// A chunk of INPUT's rules (Plan::chunks) fell off its end: the main program calls the
// next chunk. Not an XDP action.
inline constexpr int32_t ret_next_chunk = 0x7f;
// REJECT: drop, and answer as ipt_REJECT's `with` (enum ipt_reject_with, ret_reject + with).
// The main program builds the reply (reject.cpp). Not an XDP action.
inline constexpr int32_t ret_reject = 0x20;
inline constexpr int32_t ret_reject_last = ret_reject + 8; // IPT_ICMP_ADMIN_PROHIBITED
// Native XDP does not send REJECT's reply itself (XDP_TX on veth loses it unless the peer
// runs XDP): it leaves the verdict in the packet's metadata, 8 bytes before the frame
// (bpf_xdp_adjust_meta()), xdp_mark_magic then hook << 8 | with, and passes the packet;
// the device's tc ingress program builds the reply and drops the packet. Only XDP writes
// an skb's metadata, so a packet cannot carry a mark it was not given.
inline constexpr uint32_t xdp_mark_magic = 0xbf4e3ec7;
inline constexpr int32_t xdp_mark_len = 8;
// REJECT's reply leaves with this in skb->mark (reply_mark_magic | reply_* bits) when tc
// redirects it out of a device: that device's tc egress program then judges it by OUTPUT as
// this host's own packet (netfilter sends it with ip_local_out()), though it came in on a
// device, and gives it the mark netfilter's reply has (IP4_REPLY_MARK(): 0). XDP's metadata
// carries the same bits (<< 16 in its second word) from native XDP to tc ingress.
inline constexpr uint32_t reply_mark_magic = 0xbf4e0000;
inline constexpr uint32_t reply_mark_mask = 0xffff0000;
// ... and with this in skb->priority: a packet is taken for a reply only when both say so.
// A user's -j MARK can give a forwarded packet any mark, but not this priority (ip_forward()
// sets it from the TOS, 0 to 6); a local program would need SO_MARK and SO_PRIORITY (with
// CAP_NET_ADMIN) set to both values. The egress program sets both back to netfilter's 0.
inline constexpr uint32_t reply_priority_magic = 0xbf4e3ec7;
// The rejected packet had a conntrack entry, which nf_ct_attach() gives the reply, RELATED in
// the other direction; reply_ct_reply: the packet was of the entry's reply direction. Bits
// 4-7: the entry's status & 0xf (IPS_EXPECTED, _SEEN_REPLY, _ASSURED, _CONFIRMED).
inline constexpr uint32_t reply_ct = 1, reply_ct_reply = 2;
// tc: TC_ACT_UNSPEC goes on to the next filter and then up the stack; TC_ACT_SHOT drops.
inline constexpr int32_t tc_accept = -1;
inline constexpr int32_t tc_drop = 2;
// TC_ACT_STOLEN: dropped as well, but the device's queue reports success. ip_do_fragment()
// stops sending a datagram's pieces at the first that fails; OUTPUT drops a piece of a
// datagram the kernel cuts after the hook this way, so the rest still come and the datagram
// is counted when whole, as netfilter counts it before the cut.
inline constexpr int32_t tc_stolen = 4;

// R9 points at the parsed packet in every frame: the main program sets it, and passes
// it to every subprogram in R1. Callee-saved, so it survives calls. The parsed packet
// is the value of a one-entry per-CPU array (MapSlot::Scratch), not stack memory:
// Linux 6.17+ tracks the liveness of stack slots in a way whose cost grows with the
// square of the rules that read them, while map values cost nothing of the kind. XDP
// does not nest on a CPU, so one value per CPU is enough.
inline constexpr Reg pkt = R9;
// Set at every frame's entry, callee-saved as well: the datagram's length, and the
// Counters block of the rule being emitted (re-read where a run crosses into another).
inline constexpr Reg len = R8;
inline constexpr Reg counters = R7;
// A rule's accumulated mismatch while its tests run (Cond::Mode::Accumulate).
inline constexpr Reg acc = R6;

// The parsed packet. Every field is written by the prologue before any rule runs.
namespace pkt_off
{
inline constexpr int16_t saddr = 0;	   // u32, as in the header (network order)
inline constexpr int16_t daddr = 4;	   // u32, network order
inline constexpr int16_t saddr_h = 8;	   // u32, host order (iprange)
inline constexpr int16_t daddr_h = 12;	   // u32, host order
inline constexpr int16_t tot_len = 16;	   // u32: the datagram's length, for byte counters
inline constexpr int16_t l4len = 20;	   // u32: bytes from the transport header to tot_len
inline constexpr int16_t proto = 24;	   // u32
inline constexpr int16_t sport = 28;	   // u32, host order; valid when l4len >= 4
inline constexpr int16_t dport = 32;	   // u32, host order; valid when l4len >= 4
inline constexpr int16_t tcp_flags = 36;   // u32: byte 13 of the TCP header; l4len >= 20
inline constexpr int16_t icmp_type = 40;   // u32; valid when l4len >= 4
inline constexpr int16_t icmp_code = 44;   // u32; valid when l4len >= 4
inline constexpr int16_t opt_hotdrop = 48; // u32: --tcp-option would drop (doff < 5, options cut)
inline constexpr int16_t tcp_doff = 52;	   // u32: TCP data offset in bytes; l4len >= 20
inline constexpr int16_t ifname = 56;	   // 16 bytes: the input device's name (-i)
inline constexpr int16_t count_inc = 72;   // u32: what a match adds to packet counters, 1 or 0
inline constexpr int16_t frag = 76;	   // u32: IP id << 16 | MF | fragment offset (8 bytes)
inline constexpr int16_t opt_buf = 80;	   // 48 bytes: a copy of the TCP options
inline constexpr int16_t opt_seen = 128;   // 256 bytes: [k] != 0 when the walk met kind k
// Reassembly state. Meaningful only in a Frags map value, which is a whole parsed packet:
// the first fragment's, once it has come.
inline constexpr int16_t fr_time = 384;	    // u64: when the first piece came (ktime ns)
inline constexpr int16_t fr_received = 392; // u32: payload bytes received
inline constexpr int16_t fr_end = 396;	    // u32: payload length, once the last piece came
inline constexpr int16_t fr_ihl = 400;	    // u32: first fragment's header length; 0 until then
// u32: the pieces' ECN codepoints, 1 << (tos & 3) each (ip4_frag_ecn()), or'ed together.
inline constexpr int16_t fr_ecn = 404;
inline constexpr int16_t out_ifname = 408; // 16 bytes: the output device's name (-o)
inline constexpr int16_t ttl = 424;	   // u32: the IP header's TTL
inline constexpr int16_t oif = 428;	   // u32: FORWARD: the output device's ifindex
// u32: OUTPUT: sent by a raw IP_HDRINCL socket, whose fragments netfilter judges one by one
// (the kernel fragments nothing it sends, so OUTPUT sees each piece as it was written).
inline constexpr int16_t own_pieces = 432;
inline constexpr int16_t dev_flags = 436; // u32, tc: the device's maps::DeviceValue::flags
inline constexpr int16_t saved_len = 440; // u32, tc ingress: tot_len while OUTPUT runs dry
// u32, tc egress, in a Frags map value: OUTPUT dropped the datagram's first piece (see
// tc_stolen); its other pieces are dropped too. 0 in every parsed packet the prologue makes.
inline constexpr int16_t fr_doomed = 444;
// The connection-tracking view (-m conntrack, -m state), written by emit_ct_state()
// before a chain runs: what nf_ct_get(skb, &ctinfo) would give there.
// u32: the state bit conntrack_mt computes (XT_CONNTRACK_STATE_BIT(ctinfo),
// XT_CONNTRACK_STATE_INVALID or _UNTRACKED), with _SNAT and _DNAT from the entry's status.
inline constexpr int16_t ct_statebit = 448;
inline constexpr int16_t ct_dir = 452;	    // u32: 1 for a reply (CTINFO2DIR), with an entry
inline constexpr int16_t ct_status = 456;   // u32: the entry's status (IPS_*)
inline constexpr int16_t ct_proto = 460;    // u32: the entry's layer-4 protocol
inline constexpr int16_t ct_orig_src = 464; // u32 each, network order: the tuples' addresses
inline constexpr int16_t ct_orig_dst = 468;
inline constexpr int16_t ct_repl_src = 472;
inline constexpr int16_t ct_repl_dst = 476;
inline constexpr int16_t ct_orig_sport = 480; // u32 each, host order: the tuples' ports
inline constexpr int16_t ct_orig_dport = 484; // (ICMP: the id, and type << 8 | code)
inline constexpr int16_t ct_repl_sport = 488;
inline constexpr int16_t ct_repl_dport = 492;
// u32: what the verdict does to bpfilter's own table of ICMP and other flows the kernel's
// lookup cannot serve (maps::CtOwnKey): ct_own_none, _new (create or refresh as the
// original direction), _reply (mark the reply seen, refresh).
inline constexpr int16_t ct_own_op = 496;
// LOG's copy of the headers it prints (maps::LogSnap): 512 up to 704.
inline constexpr int16_t log_base = 512;
// Reserved for REJECT's state: 704 up to 768.
inline constexpr int16_t reject_base = 704;
inline constexpr int16_t rj_with = 704;	 // u32: the rule's enum ipt_reject_with
inline constexpr int16_t rj_len = 708;	 // u32: the quote's length (ICMP)
inline constexpr int16_t rj_l2 = 712;	 // u32: the link-layer header's length
inline constexpr int16_t rj_saddr = 716; // u32, network order: the reply's source
// tc ingress: the route back to the sender (bpf_fib_lookup()). rj_oif: its device, 0 when
// the reply goes back out of the device the packet came in on; rj_nh: with rj_neigh, the
// next hop whose neighbour entry the kernel resolves (bpf_redirect_neigh()).
inline constexpr int16_t rj_oif = 720;
inline constexpr int16_t rj_neigh = 724;
inline constexpr int16_t rj_nh = 728; // network order
// tc ingress: the verdict native XDP left in the packet's metadata (xdp_mark_*): the reply
// is built here. 0 for every other packet.
inline constexpr int16_t rj_mark = 732;
// u32, tc ingress: the reply_* bits of the rejected packet's conntrack entry (reply_mark_magic).
inline constexpr int16_t rj_ct = 736;
// u32, tc egress: skb->mark of a REJECT's reply another hook redirected here
// (reply_mark_magic | bits), which OUTPUT judges; 0 for every other packet.
inline constexpr int16_t rj_reply = 740;
// What connection tracking reads of the transport header, taken while the packet is
// parsed, so that a reassembled datagram keeps its first fragment's (emit_ct_parse()).
inline constexpr int16_t ct_l4avail = 768; // u32: bytes of transport header, up to 8
inline constexpr int16_t ct_l4w1 = 772;	   // u32: its bytes 4-5, host order (UDP length, ICMP id)
// u32: an ICMP error's quoted datagram: ct_in_header (its IP header is there and it is not a
// later fragment), ct_in_4 and ct_in_8 (4 and 8 bytes of its transport header are there).
inline constexpr int16_t ct_in_ok = 776;
inline constexpr int16_t ct_in_saddr = 780; // u32 each, network order
inline constexpr int16_t ct_in_daddr = 784;
inline constexpr int16_t ct_in_proto = 788; // u32
inline constexpr int16_t ct_in_sport =
	792; // u32, host order: its bytes 0-1 (ICMP: type << 8 | code)
inline constexpr int16_t ct_in_dport = 796; // u32, host order: its bytes 2-3
inline constexpr int16_t ct_in_id = 800;    // u32, host order: its bytes 4-5 (ICMP id)
inline constexpr int16_t ct_own_key = 808;  // maps::CtOwnKey, 16 bytes (see ct_own_op)
// u32: skb->mark as the chains see it: read by the tc prologues (0 at XDP, which a table that
// reads or sets marks at ingress does not run on: needs_skb_mark()), changed by -j MARK,
// written back to the skb with the verdict (-m mark, -j MARK).
inline constexpr int16_t mark = 824;
// u32: the conntrack entry's mark (ct->mark, -m connmark), with the view emit_ct_state() writes
// (0 for bpfilter's own entries and for packets without one).
inline constexpr int16_t ct_mark = 828;
// The header matches' fields.
inline constexpr int16_t ip_len = 832; // u32: skb_ip_totlen(), the datagram's (-m length)
inline constexpr int16_t tos = 836;    // u32: the IP header's TOS byte (-m tos, dscp, ecn)
inline constexpr int16_t l4w4 = 840;   // u32, host order: transport bytes 4-7; l4len >= 8
// u32: 0x100 | TCP header byte 13 when 20 bytes of transport header are there, for any
// piece (-m ecn reads it without looking at the fragment offset); else 0. Only when
// Plan::uses_ecn_tcp.
inline constexpr int16_t th13 = 844;
// u32: skb->pkt_type as the hook sees it, PACKET_LOOPBACK already read as pkttype_mt()
// reads it. Only when Plan::uses_l2.
inline constexpr int16_t pkttype = 848;
// u32: 1 when the device is ARPHRD_ETHER and the packet has its Ethernet header (-m mac);
// mac_src: its source address, 6 bytes and 2 zero. Only when Plan::uses_l2.
inline constexpr int16_t mac_ok = 852;
inline constexpr int16_t mac_src = 856;
inline constexpr int16_t l4w0 = 864; // u32, host order: transport bytes 0-3; l4len >= 4
// -m hashlimit's work area (match_hashlimit.cpp): the key (maps::HashlimitKey, 16 bytes), the
// transport bytes 0-3 and an AH header's bytes 4-7 as they are (what proto_ports_offset()
// points the ports at; valid when l4len >= 4, >= 8), a hotdrop flag, the clock, the answer,
// and an entry being made or peeked at (maps::HashlimitValue).
inline constexpr int16_t hl_key = 868;
inline constexpr int16_t hl_ports = 884;
inline constexpr int16_t hl_ah = 888;
inline constexpr int16_t hl_drop = 892;
inline constexpr int16_t hl_now = 896; // u64: bpf_jiffies64()
inline constexpr int16_t hl_res = 904;
inline constexpr int16_t hl_val = 912;
// -m recent's working state across its helper calls (match_recent.cpp): the entry's key
// (maps::RecentKey) and a second one, jiffies, the TTL as recent_mt() takes it, the
// answer, and what a walk of the list found (entries, the least recently updated).
inline constexpr int16_t rc_key = 968;
inline constexpr int16_t rc_key2 = 976;
inline constexpr int16_t rc_now = 984;	     // u64
inline constexpr int16_t rc_time = 992;	     // u64: jiffies - seconds * HZ
inline constexpr int16_t rc_min_seq = 1000;  // u64
inline constexpr int16_t rc_ttl = 1008;	     // u32
inline constexpr int16_t rc_ret = 1012;	     // u32
inline constexpr int16_t rc_count = 1016;    // u32
inline constexpr int16_t rc_min_addr = 1020; // u32
// -m owner (match_owner.cpp): what emit_owner() found of the sending socket, the answer of the
// rule's owner match, and the state of a walk through the supplementary groups.
inline constexpr int16_t own_kind = 1024; // u32: owner_none, owner_socket, owner_file
inline constexpr int16_t own_uid = 1028;  // u32: f_cred->fsuid
inline constexpr int16_t own_gid = 1032;  // u32: f_cred->fsgid
inline constexpr int16_t own_res = 1036;  // u32: the match's answer
inline constexpr int16_t own_ptr = 1040;  // u64: the kernel object being read
inline constexpr int16_t own_net = 1048;  // u64: sock_net(sk); then the device's namespace
inline constexpr int16_t own_gi = 1056;	  // u64: f_cred->group_info
inline constexpr int16_t own_lo = 1064;	  // u32: the groups' binary search: first candidate
inline constexpr int16_t own_hi = 1068;	  // u32: one past the last
inline constexpr int16_t own_n = 1072;	  // u32: group_info->ngroups
inline constexpr int16_t own_g = 1076;	  // u32: a group read
// -m u32 (match_u32.cpp): the frame offset of the IP header (tc; XDP's is ETH_HLEN); how many
// bytes of the datagram the prologue copied into this CPU's U32Buf value (maps::u32_*), 0
// for a piece of a datagram the hook judges reassembled, whose bytes are not all there;
// the U32Buf key (this CPU), written before each lookup.
inline constexpr int16_t l3off = 1080;	 // u32
inline constexpr int16_t u32_len = 1084; // u32
inline constexpr int16_t u32_key = 1088; // u32
// u32: emit_owner() found a request socket (TCP_NEW_SYN_RECV) and read its listener's
// credentials, which -m owner takes (skb_to_full_sk()) and LOG's UID= does not (sk_fullsock()).
inline constexpr int16_t own_req = 1092;
// u32: -m connlimit counted 0 (connlimit_mt() hotdrops); u32: the count is above the limit.
inline constexpr int16_t cl_drop = 1096;
inline constexpr int16_t cl_res = 1100;
inline constexpr int16_t size = 1104;
} // namespace pkt_off

inline constexpr uint32_t ct_own_none = 0, ct_own_new = 1, ct_own_reply = 2;
inline constexpr uint32_t owner_none = 0, owner_socket = 1, owner_file = 2;
inline constexpr uint32_t ct_in_header = 1, ct_in_4 = 2, ct_in_8 = 4;

// Stack slots, relative to R10 of the frame that owns them.
inline constexpr int16_t main_key = -8;			    // a map key
inline constexpr int16_t main_fib = main_key - 64;	    // struct bpf_fib_lookup
inline constexpr int16_t main_frag_key = main_fib - 16;	    // maps::FragKey
inline constexpr int16_t main_dev_key = main_frag_key - 8;  // a Devices key
inline constexpr int16_t main_ct_tuple = main_dev_key - 16; // struct bpf_sock_tuple (ipv4)
inline constexpr int16_t main_ct_opts = main_ct_tuple - 16; // struct bpf_ct_opts, 12 bytes
inline constexpr int16_t sub_key = -8;			    // a subprogram's map key
// REJECT's reply being built (reject.cpp): 10 bytes of room, then the Ethernet header, the
// IP header (8-byte aligned) and the transport header, contiguous as they go out.
inline constexpr int16_t main_reply = main_ct_opts - 64;
inline constexpr int16_t main_reply_eth = main_reply + 10;
inline constexpr int16_t main_reply_ip = main_reply + 24;
inline constexpr int16_t main_reply_l4 = main_reply + 44;

// The offload flavor's parsed packet: on the main frame's stack (a NIC has no per-CPU
// map), pkt_off's fields below offload_pkt_size, just under main_key. Fields past it
// (the output device, reassembly, LOG, REJECT, connection tracking) are never read by
// what check_offload() lets through.
inline constexpr int16_t offload_pkt_size = 128;
inline constexpr int16_t offload_pkt = main_key - offload_pkt_size;
static_assert(pkt_off::opt_buf + 48 <= offload_pkt_size);

static_assert(sizeof(struct bpf_fib_lookup) == 64);

} // namespace bpfilter::codegen::layout
