// Loading a generated program: its maps created, map fds patched in, the verifier's word on
// refusal.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

struct LoadOptions {
	std::string name = "bpfilter_in"; // what bpftool prog shows (at most 15 characters)
	uint32_t prog_ifindex = 0;	  // non-zero: load for hardware offload to this device
	bool explain = true; // on refusal, load again with the verifier's log to say why
};

// A program the kernel accepted, with the counters map it owns. The Ifnames and
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
	LoadedProgram(Fd prog, Fd counters, uint32_t n)
	    : prog_(std::move(prog)), counters_(std::move(counters)), num_counters_(n)
	{
	}

	Fd prog_;
	Fd counters_;
	uint32_t num_counters_ = 0;
};

// Create the Counters map, patch every map reference and load the program as XDP.
// ifnames_fd and local_addrs_fd may be -1 when the program does not use them. On a
// verifier refusal the Error's message ends with the tail of the verifier's log.
Result<LoadedProgram> load_program(const codegen::Program &program, int ifnames_fd,
				   int local_addrs_fd, const LoadOptions &options);

// The maps shared by every program of a network namespace (layouts in codegen/maps.hpp).
Result<Fd> create_ifnames_map();
Result<Fd> create_local_addrs_map();

// Keep them in step with the namespace's devices and local routes.
Status set_ifname(int ifnames_fd, uint32_t ifindex, const std::array<uint8_t, 16> &name);
Status delete_ifname(int ifnames_fd, uint32_t ifindex); // ENOENT when it was not there
Status add_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen);
Status delete_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen);

} // namespace bpfilter::loader
