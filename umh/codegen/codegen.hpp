// Codegen: an IR table in, BPF instructions for one attach point (a flavor) out. A pure function of
// its input.
#pragma once

#include <linux/bpf.h>

#include <array>
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
	CtOwn,	    // LRU hash: ICMP and other flows the kernel's lookup cannot serve
	CtTcp,	    // array of one: nf_conntrack_proto_tcp.c's tcp_conntracks table
	IcmpGlobal, // array of one: REJECT's ICMP token bucket (icmp_global_allow())
	IcmpPeers,  // LRU hash: REJECT's ICMP tokens per destination (inet_peer_xrlim_allow())
	LogRing,    // ring buffer: -j LOG's records for the helper (one per namespace)
	LogLost,    // per-CPU array of one: LOG records lost to a full ring
	AddrTypes,  // LPM trie: the routes -m addrtype looks addresses up in (one per namespace)
	Limits,	    // array of one: -m limit's token buckets (maps::LimitBucket), one a slot
	Hashlimit,  // hash: -m hashlimit's entries of every htable (one per namespace)
	HashlimitCounts, // array of one: each htable's count of entries (one per namespace)
	RecentEntries,	 // hash: -m recent's entries of every list (one per namespace)
	RecentHeads,	 // array of one: each list's mask, ring size and LRU clock (per namespace)
	RecentTmp,	 // per-CPU array of one: a new entry, built before it is inserted
	U32Buf,		 // array, an entry per CPU: the datagram -m u32 reads (one per program)
	AddrSet,	 // LPM trie or hash: a classified run of address rules (MapRef::index:
			 // Program::addr_sets)
	Connlimit,	 // hash: -m connlimit's lists of connections (one per table)
	ConnlimitTmp,	 // per-CPU array of one: what the prologue worked out for each connlimit
};

// Kernel functions a program calls (kfuncs of nf_conntrack), resolved by the loader in the
// kernel's BTF (vmlinux, or the nf_conntrack module's).
enum class Kfunc : uint8_t { XdpCtLookup, SkbCtLookup, CtRelease, CtChangeTimeout };

struct KfuncRef {
	size_t insn = 0; // a BPF_CALL with src_reg BPF_PSEUDO_KFUNC_CALL
	Kfunc func = Kfunc::CtRelease;
	bool operator==(const KfuncRef &) const = default;
};

// Where struct nf_conn keeps what -m conntrack reads, from the running kernel's BTF
// (loader::conntrack_layout()). All zero: unknown, and a table that tracks connections
// does not compile.
struct CtLayout {
	int16_t status = 0;		// unsigned long status
	int16_t timeout = 0;		// u32 timeout (jiffies)
	int16_t tuple[2] = {};		// tuplehash[dir].tuple
	int16_t tcp_state = 0;		// proto.tcp.state
	int16_t tcp_seen_flags[2] = {}; // proto.tcp.seen[dir].flags
	int16_t tcp_last_dir = 0;	// proto.tcp.last_dir
	int16_t tcp_last_index = 0;	// proto.tcp.last_index
	int16_t mark = 0; // u32 mark (CONFIG_NF_CONNTRACK_MARK); 0: the kernel has none
	// The namespace's settings (net.netfilter.nf_conntrack_*).
	uint32_t icmp_timeout = 30;	// seconds
	uint32_t generic_timeout = 600; // seconds
	bool tcp_loose = true;		// pick up established connections mid-stream
	bool known() const { return status != 0; }
	bool operator==(const CtLayout &) const = default;
};

// Where the kernel keeps what -m owner reads, from the running kernel's BTF
// (loader::owner_layout()): the path skb->sk, skb_to_full_sk(), sk->sk_socket->file->f_cred
// and the namespaces owner_mt() compares. All zero: unknown, and a table with -m owner does
// not compile. Offsets in bytes.
struct OwnerLayout {
	int16_t skb_sk = 0;	  // struct sk_buff: sk
	int16_t skb_dev = 0;	  // struct sk_buff: dev
	int16_t dev_net = 0;	  // struct net_device: nd_net.net
	int16_t sk_state = 0;	  // struct sock_common: skc_state (u8)
	int16_t sk_net = 0;	  // struct sock_common: skc_net.net
	int16_t rsk_listener = 0; // struct request_sock: rsk_listener
	int16_t sk_socket = 0;	  // struct sock: sk_socket
	int16_t sock_file = 0;	  // struct socket: file
	int16_t file_cred = 0;	  // struct file: f_cred
	int16_t fsuid = 0;	  // struct cred: fsuid (kuid_t, u32)
	int16_t fsgid = 0;	  // struct cred: fsgid
	int16_t group_info = 0;	  // struct cred: group_info
	int16_t ngroups = 0;	  // struct group_info: ngroups (int)
	int16_t gid = 0;	  // struct group_info: gid[] (kgid_t, u32 each)
	bool known() const { return sk_socket != 0; }
	bool operator==(const OwnerLayout &) const = default;
};

struct MapRef {
	size_t insn = 0; // index of the first half of a BPF_LD_IMM64 with src_reg BPF_PSEUDO_MAP_FD
	MapSlot slot = MapSlot::Counters;
	uint32_t index = 0; // which one, for slots with one map per table object (AddrSet)
	bool operator==(const MapRef &) const = default;
};

// Hooks as bits: 1 << ir::Hook.
using HookSet = uint8_t;
inline constexpr HookSet hook_bit(ir::Hook h)
{
	return static_cast<HookSet>(1u << static_cast<unsigned>(h));
}
// Not a hook: with connection tracking on, nf_defrag reassembles every datagram before
// the filter table's hooks (PRE_ROUTING and LOCAL_OUT), so no hook sees a fragment.
inline constexpr HookSet hook_defrag = 0x80;

// Where a program runs, and so which chains it judges (Documentation/design.md says why):
// - Xdp: ingress of Ethernet devices that have no master and no upper device; INPUT for
//   packets delivered to this host, FORWARD for packets routed through it.
// - TcIngress: the same chains at tc's clsact ingress, for every other device that
//   receives IP (bridges, bonds, VLAN and macvlan devices, tun, WireGuard, tunnels).
// - TcEgress: OUTPUT, at tc's clsact egress of every device that is not enslaved, for
//   packets the host itself sends.
enum class Flavor : uint8_t { Xdp, TcIngress, TcEgress };
HookSet hooks_of(Flavor flavor);

// The namespace's sysctls that shape REJECT's replies, read when a table is set; the
// defaults are the kernel's.
struct ReplySysctls {
	uint32_t ip_default_ttl = 64;	   // net.ipv4.ip_default_ttl
	uint32_t icmp_ratelimit_ms = 1000; // net.ipv4.icmp_ratelimit
	uint32_t icmp_ratemask = 0x1818;   // net.ipv4.icmp_ratemask
	uint32_t icmp_msgs_per_sec = 1000; // net.ipv4.icmp_msgs_per_sec
	uint32_t icmp_msgs_burst = 50;	   // net.ipv4.icmp_msgs_burst
	// net.ipv4.icmp_errors_use_inbound_ifaddr: FORWARD's ICMP errors from the input
	// device's address (inet_select_addr()), which the data plane does not pick.
	uint32_t icmp_errors_use_inbound_ifaddr = 0;
	bool operator==(const ReplySysctls &) const = default;
};

struct Options {
	Flavor flavor = Flavor::Xdp;
	// Judge only what the flavor's chains would see (INPUT: delivered here; FORWARD:
	// routed through; OUTPUT: sent from here) and pass the rest untouched. Off, every
	// IPv4 packet is judged by the flavor's first chain (INPUT or OUTPUT): tests of rule
	// semantics alone turn it off.
	bool local_only = true;
	// For tables that track connections.
	CtLayout ct = {};
	// For tables with -m owner (OUTPUT).
	OwnerLayout owner = {};
	// How rules test packets (see Cond in matchers.hpp): with a jump per failed test
	// (fastest), with a jump for the first test and one for the rest (FirstBranch), or
	// with one jump per rule (verifies at any size, runs every test). Auto picks the
	// fastest the verifier should allow. The others are for tests.
	// Chunked: Branch, with INPUT cut into small chunks (Plan::chunks), for tests.
	enum class Tests : uint8_t { Auto, Branch, FirstBranch, Accumulate, Chunked };
	Tests tests = Tests::Auto;
	ReplySysctls replies = {};
	// The kernel's HZ (what jiffies count), for -m limit's credits; 0: unknown, and a
	// table with limit rules does not compile.
	uint32_t hz = 0;
	// -m recent: for each of the table's lists (ir::Table::recent_lists), its number in
	// the namespace's maps and the stamps mask its entries have there (a list that
	// outlives tables keeps the largest). Empty: list k is number k with the table's mask.
	struct RecentRef {
		uint32_t id = 0;
		uint32_t nstamps_mask = 31;
		bool operator==(const RecentRef &) const = default;
	};
	std::vector<RecentRef> recent = {};
	// -m hashlimit: for each of the table's htables (ir::Table::hashlimits), its number in
	// the namespace's maps and the entries it may hold (hashlimit::table_max() on this
	// machine). Empty: htable k is number k, its max as on a machine of more than 1 GiB.
	struct HashlimitRef {
		uint32_t id = 0;
		uint32_t max = 0;
		bool operator==(const HashlimitRef &) const = default;
	};
	std::vector<HashlimitRef> hashlimit = {};
	// The offload flavor of Xdp (Documentation/supported.md, "XDP offload"): INPUT
	// alone, for a NIC that runs the program itself (loaded with prog_ifindex). What
	// such a device takes: the parsed packet on the stack, the Counters map a plain
	// array bound to the device (Program::offload) counted into atomically, no other
	// map and no helper but bpf_map_lookup_elem. check_offload() says which tables fit.
	bool offload = false;
	std::array<uint8_t, 16> offload_ifname{}; // the device's name, for -i
	// Runs of at least this many address rules (-s or -d prefixes and a target, nothing
	// else) are looked up in one map instead of tested one by one (classify.hpp); 0:
	// never. Measured with tests/bench: up to about 32 /32 rules (64 of mixed lengths, an
	// LPM trie) the rules' own tests are as fast as the lookup.
	uint32_t classify_min = default_classify_min;
	static constexpr uint32_t default_classify_min = 32;
	// Protocol lanes (chain.cpp, emit_lanes()): a block of at least lane_min_block
	// consecutive plain rules is emitted once per protocol (TCP, UDP, ICMP, any other),
	// each copy holding only the rules that packets of that protocol can match, and the
	// packet's protocol picks the copy. Tables of more than lane_max_rules tested rules
	// get none (the copies cost instructions the verifier counts); 0: never.
	uint32_t lane_max_rules = default_lane_max_rules;
	uint32_t lane_min_block = default_lane_min_block;
	static constexpr uint32_t default_lane_max_rules = 4000;
	static constexpr uint32_t default_lane_min_block = 8;
};

// The contents of a MapSlot::AddrSet map, for the loader to fill (maps::addr_set_*).
struct AddrSetData {
	bool lpm = true;	      // an LPM trie; else a hash keyed by the masked address
	uint32_t slots = 1;	      // u32 words per value
	uint32_t rules = 0;	      // rules the map stands for (those not folded away)
	std::vector<uint32_t> keys;   // address (network order) and prefix length, in pairs;
				      // a tuple set's: key_words words a key
	uint32_t key_words = 0;	      // a tuple set (classify.hpp's TupleKey): a hash whose
				      // keys are this many u32 words; 0: an address set
	std::vector<uint32_t> values; // `slots` words per key
	bool operator==(const AddrSetData &) const = default;
};

// A function of the program, for the BTF the loader gives the kernel when some function
// is global (verified on its own, with its argument a pointer to the parsed packet) or a
// callback (-m recent's walk).
struct Function {
	size_t insn = 0; // first instruction
	bool global = false;
	bool operator==(const Function &) const = default;
};

struct Program {
	std::vector<bpf_insn> insns;
	std::vector<MapRef> map_refs;
	std::vector<KfuncRef> kfunc_refs;
	// Every function, the main one first, in instruction order; only filled in when one
	// of them is global.
	std::vector<Function> functions;
	uint32_t num_counters = 0; // entries of the Counters map: one per rule of the table
	Options::Tests tests = Options::Tests::Branch; // how rules test: Branch or Accumulate
	Flavor flavor = Flavor::Xdp;
	bool offload = false; // Options::offload: its Counters map is maps::offload_counters_*
	std::vector<AddrSetData> addr_sets; // MapSlot::AddrSet's maps, by MapRef::index
};

// Can every flavor run this table with its meaning kept? EOPNOTSUPP and the reason if not
// (jumps nested deeper than BPF calls allow, ...).
Status check(const ir::Table &table);

// Does a rule that INPUT or FORWARD can reach read or set the packet's mark (-m mark,
// -j MARK)? XDP has no skb->mark: such a table is judged at tc ingress on every device, and
// compile() refuses its Xdp flavor. sets_only: does such a rule set one (-j MARK)?
bool needs_skb_mark(const ir::Table &table, bool sets_only = false);

// The program of one flavor for the table.
Result<Program> compile(const ir::Table &table, const Options &options);

// Can the offload flavor (Options::offload) judge this table's INPUT as netfilter does?
// EOPNOTSUPP naming the first rule that INPUT reaches and a NIC cannot run, and why:
// connection tracking, -m limit, -m addrtype, --tcp-option, -j LOG, -j REJECT, more
// rules than max_offload_rules.
Status check_offload(const ir::Table &table);
inline constexpr uint32_t max_offload_rules = 8192;

} // namespace bpfilter::codegen
