// Reference evaluator: runs a packet through an IR table the way ipt_do_table does.
//
// It is the oracle the generated BPF code is checked against, so it follows the kernel
// (net/ipv4/netfilter/ip_tables.c and the xt_* match functions) line by line, not codegen.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "ir/connlimit.hpp"
#include "ir/ir.hpp"
#include "ir/limit.hpp"
#include "ir/recent.hpp"

namespace bpfilter::ir
{

// A packet as a netfilter hook sees it (at FORWARD, with the TTL ip_forward() decreased):
// the IP datagram from its header to tot_len, and
// the names of the devices it came in on and goes out of (all zero when there is none,
// as for the output device at LOCAL_IN).
struct PacketView {
	std::span<const uint8_t> ip;
	std::array<uint8_t, 16> in_ifname{};
	std::array<uint8_t, 16> out_ifname{};
	// What nf_ct_get(skb, &ctinfo) gives at the hook (see CtView).
	struct CtView {
		bool untracked = false; // no entry: IP_CT_UNTRACKED rather than INVALID
		bool has_ct = false;	// an entry, as below
		uint8_t ctinfo =
			0; // enum ip_conntrack_info (IP_CT_NEW, IP_CT_ESTABLISHED_REPLY...)
		uint32_t status = 0; // ct->status (IPS_*)
		uint8_t l4proto = 0;
		// The tuples, addresses in network order, ports (or ICMP id/type) in host order.
		uint32_t orig_src = 0, orig_dst = 0, repl_src = 0, repl_dst = 0;
		uint16_t orig_sport = 0, orig_dport = 0, repl_sport = 0, repl_dport = 0;
		uint32_t expires = 0; // nf_ct_expires(ct) / HZ
		uint32_t mark = 0;    // ct->mark (-m connmark)
	} ct;
	uint32_t mark = 0; // skb->mark as the hook gets the packet (-m mark, -j MARK)
	// The routes inet_dev_addr_type() looks up (-m addrtype), in any order.
	std::span<const AddrtypeRoute> addrtype_routes;
	// skb->pkt_type at the hook (PACKET_HOST, _BROADCAST, _MULTICAST, _LOOPBACK...).
	uint8_t pkt_type = 0;
	// The Ethernet header's source address, when the device is ARPHRD_ETHER and the skb
	// has a MAC header of ETH_HLEN bytes (-m mac); empty otherwise.
	std::optional<std::array<uint8_t, 6>> mac_source{};
	// The sending socket as owner_mt() finds it (-m owner): none (no skb->sk after
	// skb_to_full_sk(), no sk_socket, or another namespace's), a socket without a file (the
	// kernel's own control sockets), or a file with its credentials.
	struct OwnerView {
		enum class Kind : uint8_t { None, Socket, File } kind = Kind::None;
		uint32_t fsuid = 0, fsgid = 0;
		std::span<const uint32_t>
			groups; // group_info's gid[], sorted as the kernel keeps it
	} owner;
};

struct EvalResult {
	bool accept = false;		     // NF_ACCEPT, else NF_DROP
	bool hotdrop = false;		     // a match dropped the packet as malformed
	std::vector<uint32_t> counted_rules; // rules whose counters went up, in order
	// The REJECT rule that decided (its reply is sent), if one did.
	std::optional<uint32_t> rejected_by;
	std::vector<uint32_t> logged_by; // LOG rules that wrote a line, in order
	uint32_t mark = 0;		 // skb->mark when the table is done (-j MARK)
};

// What the stateful matches keep between packets, and the clock they read: -m limit's
// token buckets (by LimitMatch::slot) at `jiffies`, with the kernel's HZ.
struct EvalState {
	uint32_t hz = 250;
	uint64_t jiffies = 0;
	std::vector<limit::Bucket> limits;
	// -m hashlimit's htables (by HashlimitMatch::table): their entries, and how many they
	// hold at most (hashlimit::table_max() for a machine of `ram` bytes).
	struct Htable {
		std::map<hashlimit::Key, hashlimit::Entry> entries;
		uint32_t max = 0;
	};
	std::vector<Htable> hashlimits;
	uint64_t ram = 8ull << 30;
	std::vector<recent::List> recent; // -m recent's lists, by Table::recent_lists
	// The jiffies each list's matches read, where not `jiffies` (a program reads the
	// clock at each match, so a packet that straddles a tick sees two).
	std::vector<uint64_t> recent_jiffies;
	// -m connlimit's lists (by ConnlimitMatch::slot), the kernel's connection table they
	// are checked against, and the CPU the packet is judged on.
	std::vector<connlimit::Data> connlimits;
	connlimit::Conntrack conntrack;
	uint32_t cpu = 0;
};

// htable_gc() at state.jiffies: every htable's expired entries go.
void hashlimit_gc(EvalState &state);

// The state of a table just set at `jiffies` (limit_mt_check: every bucket full).
EvalState initial_state(const Table &table, uint32_t hz, uint64_t jiffies);

// Traverse `table` from `hook`'s entry. The hook must be valid in the table. `state` is
// read and updated; without one, the packet meets the table as just set (HZ 250).
EvalResult evaluate(const Table &table, Hook hook, const PacketView &packet);
EvalResult evaluate(const Table &table, Hook hook, const PacketView &packet, EvalState &state);

} // namespace bpfilter::ir
