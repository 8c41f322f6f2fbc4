// Reference evaluator: runs a packet through an IR table the way ipt_do_table does.
//
// It is the oracle the generated BPF code is checked against, so it follows the kernel
// (net/ipv4/netfilter/ip_tables.c and the xt_* match functions) line by line, not codegen.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "ir/ir.hpp"

namespace bpfilter::ir
{

// A packet as a netfilter hook sees it: the IP datagram from its header to tot_len, and
// the names of the devices it came in on and goes out of (all zero when there is none,
// as for the output device at LOCAL_IN).
struct PacketView {
	std::span<const uint8_t> ip;
	std::array<uint8_t, 16> in_ifname{};
	std::array<uint8_t, 16> out_ifname{};
};

struct EvalResult {
	bool accept = false;		     // NF_ACCEPT, else NF_DROP
	bool hotdrop = false;		     // a match dropped the packet as malformed
	std::vector<uint32_t> counted_rules; // rules whose counters went up, in order
};

// Traverse `table` from `hook`'s entry. The hook must be valid in the table.
EvalResult evaluate(const Table &table, Hook hook, const PacketView &packet);

} // namespace bpfilter::ir
