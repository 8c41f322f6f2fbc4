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
// tc: TC_ACT_UNSPEC goes on to the next filter and then up the stack; TC_ACT_SHOT drops.
inline constexpr int32_t tc_accept = -1;
inline constexpr int32_t tc_drop = 2;

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
inline constexpr int16_t out_ifname = 408;  // 16 bytes: the output device's name (-o)
inline constexpr int16_t ttl = 424;	    // u32: the IP header's TTL
inline constexpr int16_t oif = 428;	    // u32: FORWARD: the output device's ifindex
// u32: OUTPUT: sent by a raw IP_HDRINCL socket, whose fragments netfilter judges one by one
// (the kernel fragments nothing it sends, so OUTPUT sees each piece as it was written).
inline constexpr int16_t own_pieces = 432;
inline constexpr int16_t dev_flags = 436; // u32, tc: the device's maps::DeviceValue::flags
inline constexpr int16_t saved_len = 440; // u32, tc ingress: tot_len while OUTPUT runs dry
// Reserved for the connection-tracking view (-m conntrack, -m state): 448 up to 512.
inline constexpr int16_t ct_base = 448;
// LOG's copy of the headers it prints (maps::LogSnap): 512 up to 704.
inline constexpr int16_t log_base = 512;
// Reserved for REJECT's state: 704 up to 768.
inline constexpr int16_t reject_base = 704;
inline constexpr int16_t size = 768;
} // namespace pkt_off

// Stack slots, relative to R10 of the frame that owns them.
inline constexpr int16_t main_key = -8;			   // a map key
inline constexpr int16_t main_fib = main_key - 64;	   // struct bpf_fib_lookup
inline constexpr int16_t main_frag_key = main_fib - 16;	   // maps::FragKey
inline constexpr int16_t main_dev_key = main_frag_key - 8; // a Devices key
inline constexpr int16_t sub_key = -8;			   // a subprogram's map key

static_assert(sizeof(struct bpf_fib_lookup) == 64);

} // namespace bpfilter::codegen::layout
