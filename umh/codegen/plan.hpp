// The shape of a table's program: which rules start subprograms, where each run of rules ends, how
// deep calls nest.
//
// ip_tables walks a flat rule list with a jump stack. We keep that shape: code is
// emitted as "runs", straight-line sequences of rules starting at a jump target (or the
// hook entry) and flowing on exactly as the kernel does until an unconditional verdict.
// Each jump or goto target becomes a BPF subprogram, so the kernel's jump stack becomes
// the BPF call stack: Jump = call and go on when it RETURNs, Goto = call and hand its
// answer to our own caller. A run that flows into another run's start hands over the
// same way as a goto (the stack is the same).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "codegen/classify.hpp"
#include "codegen/emitter.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// The verifier's limits: frames on the call stack (MAX_CALL_FRAMES) and functions in a
// program (BPF_MAX_SUBPROGS, the main one included).
inline constexpr unsigned max_call_frames = 8;
inline constexpr unsigned max_subprogs = 256;

// One built-in chain the program serves: its main run and policy, and, when its run is
// long, the chunks it is cut into (each a global function that the verifier checks on its
// own, so that its pending branches do not add up with the others'): the first rule of
// each. The main program calls them in turn. Empty: not cut.
struct HookRun {
	ir::Hook hook = ir::Hook::LocalIn;
	uint32_t entry = 0;	// the chain's first rule
	uint32_t underflow = 0; // its policy rule
	std::vector<uint32_t> chunks;
	size_t first_chunk = 0; // Plan::chunk_id() of chunks[0]
};

struct Plan {
	HookSet hookset = 0;	    // the hooks served, as bits (1 << hook)
	std::vector<HookRun> hooks; // in hook order
	// First rule of each subprogram; a SubprogId indexes this (ascending rule order).
	std::vector<uint32_t> subprogs;
	std::map<uint32_t, SubprogId> subprog_of;
	unsigned frames = 1;	  // deepest call chain, the main program included
	bool uses_ifname = false; // some reachable rule tests -i
	bool uses_ofname = false; // ... or -o
	// Some rule tests connection-tracking state: the prologue looks the packet up
	// (emit_ct_state()), and every hook sees whole datagrams, as conntrack's defrag makes
	// them (hook_defrag in hookset).
	bool uses_conntrack = false;
	bool logs = false; // some reachable rule is -j LOG
	// Some reachable rule is -j MARK: the tc programs give the skb the mark the chains
	// leave (layout::pkt_off::mark) with their verdict.
	bool sets_mark = false;
	// Some rule reads the link layer (-m pkttype, -m mac): the prologue fills
	// layout::pkt_off::pkttype and mac_*. Some rule tests TCP's ECN bits (-m ecn): th13.
	bool uses_l2 = false;
	bool uses_ecn_tcp = false;
	// Some rule is -m u32: the prologue copies the datagram into U32Buf (emit_u32_copy()).
	bool uses_u32 = false;
	// Some rule is -m owner and the program judges OUTPUT: the prologue finds the sending
	// socket (emit_owner()), with the kernel's layout (Options::owner).
	bool uses_owner = false;
	OwnerLayout owner = {};
	uint32_t hz = 0;			      // Options::hz, for -m limit
	std::vector<Options::RecentRef> recent;	      // Options::recent, one per table list
	std::vector<Options::HashlimitRef> hashlimit; // Options::hashlimit, one per htable
	// Runs (by first rule) that FORWARD or OUTPUT reaches: there netfilter judges each
	// fragment of a datagram on its own (FORWARD without connection tracking, OUTPUT
	// what a raw socket sends in pieces), so the port matches test the fragment offset.
	std::set<uint32_t> fragment_runs;
	std::vector<uint8_t> tcp_option_kinds; // what reachable rules' --tcp-option ask for, sorted
	uint64_t branch_tests = 0; // tests that jump to the next rule in Cond::Mode::Branch
	bool accumulate = false;   // rules test with Cond::Mode::Accumulate
	bool first_branch = false; // ... but for their first test, a jump
	// Blocks of plain rules are emitted in protocol lanes (Options::lane_max_rules), of
	// at least this many rules; 0: no lanes.
	uint32_t lane_min_block = 0;
	uint64_t tested_rules = 0; // rules with code of their own
	// Runs of address rules judged by one lookup (classify.hpp), and which starts at a rule.
	std::vector<AddrSet> addr_sets;
	std::map<uint32_t, size_t> addr_set_at;
	uint64_t classified_rules = 0; // rules of every AddrSet
	size_t num_chunks = 0;	       // over every hook
	SubprogId chunk_id(size_t k) const { return static_cast<SubprogId>(subprogs.size() + k); }
	// Hook k's run is a function of its own (a BPF jump reaches 32767 instructions, and
	// another hook's run may be longer): all hooks at tc, all but the first at XDP.
	bool inline_first = true;
	bool offload = false; // Options::offload: counters in a plain array, added atomically
	bool hook_is_fn(size_t k) const { return k > 0 || !inline_first; }
	SubprogId hook_fn_id(size_t k) const
	{
		return static_cast<SubprogId>(subprogs.size() + num_chunks + k);
	}
	// -m recent's callback for bpf_for_each_map_elem() (match_recent.cpp).
	SubprogId recent_walk_id() const { return hook_fn_id(hooks.size()); }
	// -m connlimit's prologue part (emit_connlimit_probe()), a function of its own so that
	// its length stays out of the prologue's jumps.
	SubprogId connlimit_probe_id() const { return recent_walk_id() + 1; }
};

// Is rule i's test known to pass for every packet at each of `hooks` (no matches, an
// all-wildcard ipt_ip)?
bool always_matches(const ir::Rule &rule, HookSet hooks);
// Does a run end after rule i (it always matches and never falls through)?
bool ends_run(const ir::Table &table, uint32_t i, HookSet hooks);
// Where a jump or goto from rule i really goes: nowhere new when it is to the next rule.
bool is_call(const ir::Table &table, uint32_t i);

// Branch-mode tests (tests_of() summed) above which Auto cuts INPUT into chunks (when
// the user chains are small) or tests a table's rules with FirstBranch, and rules above
// which with Accumulate. The verifier keeps a jump's other
// side pending while it explores the rest of the program and gives up at 8192 of them:
// Branch leaves about one pending per test of a rule, FirstBranch one per rule,
// Accumulate none. Branch runs about 3.5 times faster than Accumulate at 1000 rules,
// FirstBranch nearly as fast. Measured (tests/bench's rules of 4 tests, Linux 6.1 under
// make codegen-guest and 6.18): Branch verifies 3999 such rules and not 4999. When the
// kernel refuses a program all the same, the loader compiles it again with Accumulate
// (BpfDataplane::replace()).
inline constexpr uint64_t max_branch_tests = 16000;
inline constexpr uint64_t max_first_branch_rules = 7000;

// About what an AddrSet costs the verifier in Branch tests: its lookup and its targets.
uint64_t addr_set_tests(const AddrSet &set);

// Does the rule read or set the packet's mark (-m mark, -j MARK)?
bool uses_skb_mark(const ir::Rule &rule);

// The plan of the program that serves `hooks` (Options::flavor's: INPUT and FORWARD at
// ingress, OUTPUT at egress).
Result<Plan> make_plan(const ir::Table &table, const Options &options = {});

} // namespace bpfilter::codegen
