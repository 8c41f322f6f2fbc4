// Codegen: an IR table in, BPF instructions for one hook out. A pure function of its input.
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/result.hpp"
#include "ir/ir.hpp"

namespace bpfilter::codegen
{

// The maps a generated program uses. The loader creates them (layouts in maps.hpp)
// and writes their fds into the ld_imm64 instructions listed in Program::map_refs.
enum class MapSlot : uint8_t {
	Counters,   // per-CPU array, one {packets, bytes} a rule
	Ifnames,    // hash: ifindex -> the device's 16-byte name
	LocalAddrs, // LPM trie: this namespace's local and broadcast addresses
	Scratch,    // per-CPU array of one: the parsed packet (the loader makes one per program)
	Frags,	    // LRU hash: fragmented datagrams being reassembled (one per program)
};

struct MapRef {
	size_t insn = 0; // index of the first half of a BPF_LD_IMM64 with src_reg BPF_PSEUDO_MAP_FD
	MapSlot slot = MapSlot::Counters;
	bool operator==(const MapRef &) const = default;
};

struct Options {
	// Judge only packets the stack would deliver locally (what INPUT sees); forwarded
	// ones pass untouched. Tests of rule semantics alone may turn it off.
	bool local_only = true;
	// How rules test packets (see Cond in matchers.hpp): with a jump per failed test
	// (fastest), with a jump for the first test and one for the rest (FirstBranch), or
	// with one jump per rule (verifies at any size, runs every test). Auto picks the
	// fastest the verifier should allow. The others are for tests.
	// Chunked: Branch, with INPUT cut into small chunks (Plan::chunks), for tests.
	enum class Tests : uint8_t { Auto, Branch, FirstBranch, Accumulate, Chunked };
	Tests tests = Tests::Auto;
};

// A function of the program, for the BTF the loader gives the kernel when some function
// is global (verified on its own, with its argument a pointer to the parsed packet).
struct Function {
	size_t insn = 0; // first instruction
	bool global = false;
	bool operator==(const Function &) const = default;
};

struct Program {
	std::vector<bpf_insn> insns;
	std::vector<MapRef> map_refs;
	// Every function, the main one first, in instruction order; only filled in when one
	// of them is global.
	std::vector<Function> functions;
	uint32_t num_counters = 0; // entries of the Counters map: one per rule of the table
	Options::Tests tests = Options::Tests::Branch; // how rules test: Branch or Accumulate
};

// Can this table run at XDP with its meaning kept? EOPNOTSUPP and the reason if not (a
// FORWARD or OUTPUT chain that is not an empty ACCEPT policy, jumps nested deeper than
// BPF calls allow, ...).
Status check_xdp(const ir::Table &table);

// The XDP program for the table's INPUT chain.
Result<Program> compile_xdp(const ir::Table &table, const Options &options);

} // namespace bpfilter::codegen
