// Classification of address rules: a run of rules that each test one address prefix becomes one map
// lookup, whatever its length.
//
// A blocklist (`-s a.b.c.d/n -j DROP`, thousands of times) is tested one rule after the other
// by the sequential code, so a packet that no rule matches pays for every rule. Where a run
// of consecutive rules of one chain each test only -s (or only -d) against a prefix (no
// `!`, no other test, no match), the run is one lookup keyed by the packet's address:
//
// - The prefixes that contain an address form a chain, and the longest one of the set that
//   contains it, P, is what an LPM trie gives back. The rules that match the address are
//   exactly the rules whose prefix contains P (P's own and its ancestors'), so P's value can
//   list them: in rule order, up to and including the first whose target ends the walk
//   (ACCEPT, DROP, REJECT, RETURN, a goto). A jump, a rule without a target, LOG or MARK go
//   on to the next rule that matches, the next word of the value. The first word is the
//   rule ip_tables would pick, first match in order; a duplicate prefix is one key whose
//   list starts with its first rule.
// - When every prefix of the run has the same length, the prefixes are disjoint, and a
//   hash keyed by the masked address does the same with a cheaper lookup.
// - Each word names the rule (counted exactly as the sequential code counts it, in the
//   Counters map at its own index) and its target class: the targets of the run, one
//   block of code each, chosen by a few compares.
//
// Rules that are never first keep their counters at 0 as in netfilter; the entries blob,
// GET_ENTRIES and the counters are the same as without classification.
//
// Service lists (`-s a.b.c.d -p udp --dport P -j DROP`, kube-proxy's and per-host port
// rules) are the same idea on several fields: a run of consecutive rules that all test the
// same exact fields (the protocol, -s and/or -d with one prefix length for the whole run,
// --sport and/or --dport of -m tcp or -m udp, -i and -o names without `+`) is one hash
// keyed by the packet's fields
// masked as the rules mask them (a *tuple set*). A rule's port range of up to
// tuple_max_keys ports becomes that many keys. Keys are disjoint (a packet has one key), so
// a key's value lists the rules that have it, in rule order, as above. A packet whose
// ports the rules cannot read (a later fragment where the run sees them, a transport
// header cut short) is not looked up by its ports: a later fragment matches none of the
// run's rules, and where tcp_mt() or udp_mt() would hotdrop, a second key without the
// ports (the *probe*) says whether some rule of the run would have got that far.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "codegen/codegen.hpp"
#include "codegen/emitter.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// At most this many rules a packet may meet in one run (matched rules that go on, and the
// one that ends the walk), and this many different targets: where a run would need more,
// it ends before the rule that would, and the rules after it are tested as before.
inline constexpr uint32_t addr_set_max_slots = 4;
inline constexpr uint32_t addr_set_max_classes = 16;
// A rule whose port ranges cover more ports than this (sport ports x dport ports) ends a
// tuple set: its keys would outgrow the rule.
inline constexpr uint32_t tuple_max_keys = 64;
// A tuple key's first word: the protocol, and this bit in a probe's key.
inline constexpr uint32_t tuple_probe = 0x100;

// What a tuple set's key holds, u32 words in this order: the protocol (| tuple_probe), the
// source address and the destination address (network order, masked), the ports
// (sport << 16 | dport, host order, each 0 where the run does not test it), the input and
// the output device's names (16 bytes each, zero after the name).
struct TupleKey {
	bool proto = false;		   // some rule tests -p (then every rule does)
	int8_t src_len = -1, dst_len = -1; // the prefix length of -s (-d); -1: not tested
	bool sport = false, dport = false; // -m tcp/udp --sport (--dport)
	bool in = false, out = false;	   // -i (-o) an exact name (no `+`)
	bool operator==(const TupleKey &) const = default;
	bool ports() const { return sport || dport; }
	uint32_t words() const
	{
		return 1u + (src_len >= 0) + (dst_len >= 0) + (ports() ? 1u : 0u) + (in ? 4u : 0u) +
		       (out ? 4u : 0u);
	}
};
inline constexpr uint32_t tuple_max_words = 12;

// One classified run of rules [first, end) (rules folded away at the program's hooks
// included, never matched).
struct AddrSet {
	uint32_t first = 0, end = 0;
	bool dst = false;	       // keyed by the destination address (-d), else the source
	uint8_t hash_len = 32;	       // !data.lpm: the prefix length every rule has
	std::vector<uint32_t> classes; // a rule of each target class, by class number
	AddrSetData data;
	bool tuple = false; // a tuple set (data.key_words words a key), keyed as `key` says
	TupleKey key;
	bool tcp = false, udp = false; // tuple: some rule is -p tcp (udp) with ports
};

// The classified runs that start at rule i or later in the run that starts at `start` (a
// hook's entry or a subprogram's first rule; `starts` are every subprogram's), each of at
// least `min_rules` rules, at the program's `hooks`.
std::vector<AddrSet> find_addr_sets(const ir::Table &table,
				    const std::map<uint32_t, SubprogId> &starts, HookSet hooks,
				    uint32_t start, uint32_t min_rules);

// What ir::Target a rule's target comes to (a jump or goto to the next rule is a rule
// without a target), and whether it ends the walk of a run.
ir::Target effective_target(const ir::Table &table, uint32_t i);
bool ends_walk(const ir::Target &target);

} // namespace bpfilter::codegen
