// Loading a generated program: its maps created, map fds patched in, the verifier's word on
// refusal.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

class SetMaps;

struct LoadOptions {
	std::string name;	   // program_full_name(); empty: program_name() of the flavor
	uint32_t prog_ifindex = 0; // non-zero: load for hardware offload to this device
	bool explain = true;	   // on refusal, load again with the verifier's log to say why
	int counters_fd = -1;	   // the Counters map shared with the table's other programs; -1:
				   // the program gets one of its own
	const struct Conntrack *conntrack = nullptr; // for programs that track connections
	// REJECT's ICMP rate limits (MapSlot::IcmpGlobal, IcmpPeers), the namespace's; -1: the
	// program gets its own when it uses them.
	int icmp_global_fd = -1;
	int icmp_peers_fd = -1;
	int log_ring_fd = -1;  // the namespace's LogRing and LogLost, for -j LOG (LogMaps)
	int limits_fd = -1;    // the table's -m limit buckets (create_limits_map())
	int connlimit_fd = -1; // the table's -m connlimit lists (create_connlimit_map())
	int hashlimit_fd = -1; // the namespace's -m hashlimit maps (Htables)
	int hashlimit_counts_fd = -1;
	int log_lost_fd = -1;
	int addr_types_fd = -1;	    // the namespace's AddrTypes, for -m addrtype
	int recent_entries_fd = -1; // the namespace's -m recent maps (RecentLists)
	int recent_heads_fd = -1;
	int recent_tmp_fd = -1;
	SetMaps *set_maps = nullptr; // the table's set maps; null: the program makes its own
};

// Programs' names (Documentation/design.md, "Names"). The kernel keeps 15 characters of a
// program's name (BPF_OBJ_NAME_LEN): program_name() is those of each flavor, the hook it
// runs at: bpfilter_xdp_in, bpfilter_tc_in_, bpfilter_tc_out. The whole name, the
// program's main function's in its BTF, says what it serves, e.g.
// bpfilter_xdp_in_filter_INPUT_FORWARD_net4026531840: hook, table, chains (offloaded:
// INPUT_offload), and the network namespace by its inode number (as lsns and
// /proc/PID/ns/net show it; 0: left out). bpftool shows the whole name of a program whose
// name is 15 characters long.
std::string_view program_name(codegen::Flavor flavor);
std::string program_full_name(codegen::Flavor flavor, std::string_view table, uint64_t netns_ino,
			      bool offload = false);
// Is a program of this name and type (BPF_PROG_TYPE_*) one of ours, as this helper or an
// earlier one named them? How a restarted helper knows its predecessor's programs.
bool is_our_program(std::string_view name, uint32_t prog_type);

// A program the kernel accepted, with (a reference to) its counters map. The Devices and
// LocalAddrs maps belong to the caller and are shared between programs.
class LoadedProgram
{
public:
	int fd() const { return prog_.get(); }
	int counters_fd() const { return counters_.get(); }
	uint32_t num_counters() const { return num_counters_; }

	// One counter per rule, summed over every CPU.
	Result<std::vector<ir::Counter>> counters() const;

private:
	friend Result<LoadedProgram> load_program(const codegen::Program &, int, int,
						  const LoadOptions &);
	LoadedProgram(Fd prog, Fd counters, uint32_t n, bool offload)
	    : prog_(std::move(prog)), counters_(std::move(counters)), num_counters_(n),
	      offload_(offload)
	{
	}

	Fd prog_;
	Fd counters_;
	uint32_t num_counters_ = 0;
	bool offload_ = false; // counters in maps::offload_counters_type's layout
};

// The offload flavor's Counters map (maps::offload_counters_type), bound to the device
// `ifindex` (0: to none, for running the offload flavor's code on the host), and its
// counts.
Result<Fd> create_offload_counters_map(uint32_t num_counters, uint32_t ifindex);
Result<std::vector<ir::Counter>> read_offload_counters(int counters_fd, uint32_t num_counters);

// Does the device run BPF programs itself (it allocates a map bound to it)?
bool offload_capable(int ifindex);

// Create the Counters map (unless shared), patch every map reference and load the program
// as its flavor's type (XDP, or SCHED_CLS for tc). devices_fd and local_addrs_fd may be
// -1 when the program does not use them. On a verifier refusal the Error's message ends
// with the tail of the verifier's log.
Result<LoadedProgram> load_program(const codegen::Program &program, int devices_fd,
				   int local_addrs_fd, const LoadOptions &options);

// The Limits map of a table with -m limit rules (codegen/maps.hpp), its buckets as
// limit_mt_check() leaves them when the table is set at `jiffies`: full.
Result<Fd> create_limits_map(const ir::Table &table, uint32_t hz, uint64_t jiffies);

// The Connlimit map of a table with -m connlimit rules (codegen/maps.hpp), empty: every
// list starts anew when a table is set, as each rule's nf_conncount_data does.
Result<Fd> create_connlimit_map();

// The map of a classified run of address rules (MapSlot::AddrSet), filled.
Result<Fd> create_addr_set_map(const codegen::AddrSetData &set);

// A table's set maps (MapSlot::AddrSet), one per distinct set. The XDP and tc ingress
// programs both judge INPUT and FORWARD and mostly hold equal sets: one map, made and
// filled once, serves both (the programs hold their own references to it).
class SetMaps
{
public:
	// The map for `set`: one made for an equal set, or one made and filled now. `set` must
	// outlive this object's use of it, or be forgotten first.
	Result<int> get(const codegen::AddrSetData &set);
	// Drop what was made for `program`'s sets, before the program is replaced.
	void forget(const codegen::Program &program);

private:
	struct Made {
		const codegen::AddrSetData *set;
		Fd fd;
	};
	std::vector<Made> made_;
};

// A Counters map for a table of num_counters rules, to share between its programs.
//
// Beyond the blocks the programs count in, the map holds as many again that no program
// touches, the base: counts carried over from an earlier helper's programs for the same
// table, added to what the programs count (counters() reads both). Its last entry names
// the table (a fingerprint of its code, and its rule count, on CPU 0) so that a
// restarted helper knows whether an adopted map counted the table it is installing.
Result<Fd> create_counters_map(uint32_t num_counters, uint32_t prog_ifindex = 0);

// Marks a Counters map as counting the table with this fingerprint.
Status set_counters_fingerprint(int counters_fd, uint32_t num_counters, uint64_t fingerprint);

// The Counters map an adopted program counts in, if it is one this helper can read (with
// a fingerprint): its fd, and the fingerprint and rule count it was made for.
struct AdoptedCounters {
	Fd fd;
	uint64_t fingerprint = 0;
	uint32_t num_counters = 0;
};
Result<AdoptedCounters> adopted_counters(int prog_fd);

// Every count in a Counters map (programs' and base), one per rule, summed over CPUs.
Result<std::vector<ir::Counter>> read_counters_map(int counters_fd, uint32_t num_counters);

// Sets a Counters map's base to these counts (on CPU 0). No program writes the base, so
// this is safe while the map's programs run.
Status set_counters_base(int counters_fd, const std::vector<ir::Counter> &base);

// -j LOG's maps: the ring the programs write records to and the count of those lost
// (codegen/maps.hpp). One pair per network namespace, kept across tables, so that lines
// an old table wrote are still read after a replace.
struct LogMaps {
	Fd ring, lost;
	// Lines lost so far, summed over CPUs.
	Result<uint64_t> lost_count() const;
};
Result<LogMaps> create_log_maps();

// The maps shared by every program of a network namespace (layouts in codegen/maps.hpp).
Result<Fd> create_devices_map();
Result<Fd> create_local_addrs_map();
Result<Fd> create_icmp_global_map();
Result<Fd> create_icmp_peers_map();
Result<Fd> create_addr_types_map();

// What the programs know of a device (maps::DeviceValue).
struct DeviceInfo {
	std::array<uint8_t, 16> name{};
	std::array<uint8_t, 6> mac{};
	uint8_t l2len = 0;
	uint8_t flags = 0; // maps::device_xdp_judges
	bool operator==(const DeviceInfo &) const = default;
};

// Keep them in step with the namespace's devices and local routes.
Status set_device(int devices_fd, uint32_t ifindex, const DeviceInfo &info);
Status delete_device(int devices_fd, uint32_t ifindex); // ENOENT when it was not there
Status add_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen, uint8_t flags = 1,
		      uint32_t prefsrc_be = 0);
Status delete_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen);
// Make the AddrTypes map hold exactly `routes` (what it holds is `held`, kept in step):
// added and changed entries first, then the ones that went.
Status sync_addr_types(int addr_types_fd, const std::vector<ir::AddrtypeRoute> &routes,
		       std::vector<ir::AddrtypeRoute> &held);

} // namespace bpfilter::loader
