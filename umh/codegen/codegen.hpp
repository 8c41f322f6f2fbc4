// Codegen: an IR table in, BPF instructions for one attach point (a flavor) out. A pure function of
// its input.
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
	Devices,    // hash: ifindex -> the device's name, MAC and link-layer header length
	LocalAddrs, // LPM trie: this namespace's local and broadcast addresses
	Scratch,    // per-CPU array of one: the parsed packet (the loader makes one per program)
	Frags,	    // LRU hash: fragmented datagrams being reassembled (one per program)
	LogRing,    // ring buffer: -j LOG's records for the helper (one per namespace)
	LogLost,    // per-CPU array of one: LOG records lost to a full ring
};

struct MapRef {
	size_t insn = 0; // index of the first half of a BPF_LD_IMM64 with src_reg BPF_PSEUDO_MAP_FD
	MapSlot slot = MapSlot::Counters;
	bool operator==(const MapRef &) const = default;
};

// Hooks as bits: 1 << ir::Hook.
using HookSet = uint8_t;
inline constexpr HookSet hook_bit(ir::Hook h)
{
	return static_cast<HookSet>(1u << static_cast<unsigned>(h));
}

// Where a program runs, and so which chains it judges (Documentation/design.md says why):
// - Xdp: ingress of Ethernet devices that have no master and no upper device; INPUT for
//   packets delivered to this host, FORWARD for packets routed through it.
// - TcIngress: the same chains at tc's clsact ingress, for every other device that
//   receives IP (bridges, bonds, VLAN and macvlan devices, tun, WireGuard, tunnels).
// - TcEgress: OUTPUT, at tc's clsact egress of every device that is not enslaved, for
//   packets the host itself sends.
enum class Flavor : uint8_t { Xdp, TcIngress, TcEgress };
HookSet hooks_of(Flavor flavor);

struct Options {
	Flavor flavor = Flavor::Xdp;
	// Judge only what the flavor's chains would see (INPUT: delivered here; FORWARD:
	// routed through; OUTPUT: sent from here) and pass the rest untouched. Off, every
	// IPv4 packet is judged by the flavor's first chain (INPUT or OUTPUT): tests of rule
	// semantics alone turn it off.
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
	Flavor flavor = Flavor::Xdp;
};

// Can every flavor run this table with its meaning kept? EOPNOTSUPP and the reason if not
// (jumps nested deeper than BPF calls allow, ...).
Status check(const ir::Table &table);

// The program of one flavor for the table.
Result<Program> compile(const ir::Table &table, const Options &options);

} // namespace bpfilter::codegen
