// Loading a generated program: its maps created, map fds patched in, the verifier's word on
// refusal.
#include "loader/program.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"

namespace bpfilter::loader
{

namespace maps = codegen::maps;

namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + std::strerror(err));
}

Result<Fd> create_map(uint32_t type, const char *name, uint32_t key_size, uint32_t value_size,
		      uint32_t max_entries, uint32_t flags, uint32_t ifindex = 0)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags, .map_ifindex = ifindex);
	const int fd = bpf_map_create(static_cast<bpf_map_type>(type), name, key_size, value_size,
				      max_entries, &opts);
	if (fd < 0)
		return sys_error(-fd, std::string("loader: creating map ") + name);
	return Fd(fd);
}

// The verifier's reason is at the end of its log.
std::string log_tail(const std::vector<char> &log)
{
	constexpr size_t keep = 1500;
	std::string s(log.data(), strnlen(log.data(), log.size()));
	while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
		s.pop_back();
	if (s.size() > keep)
		s = "..." + s.substr(s.size() - keep);
	return s;
}

} // namespace

Result<LoadedProgram> load_program(const codegen::Program &program, int ifnames_fd,
				   int local_addrs_fd, const LoadOptions &options)
{
	if (program.insns.empty())
		return make_error(EINVAL, "loader: empty program");

	auto counters =
		create_map(maps::counters_type, "bpfilter_cnt", sizeof(uint32_t),
			   maps::counter_block_bytes(program.num_counters),
			   maps::counter_blocks(program.num_counters), 0, options.prog_ifindex);
	if (!counters)
		return counters.error();
	auto scratch = create_map(maps::scratch_type, "bpfilter_pkt", sizeof(uint32_t),
				  codegen::layout::pkt_off::size, 1, 0, options.prog_ifindex);
	if (!scratch)
		return scratch.error();

	// Only programs that use it get one: an LRU hash takes its memory up front.
	Fd frags;
	for (const codegen::MapRef &ref : program.map_refs) {
		if (ref.slot != codegen::MapSlot::Frags || frags.get() >= 0)
			continue;
		auto m = create_map(maps::frags_type, "bpfilter_frag", sizeof(maps::FragKey),
				    codegen::layout::pkt_off::size, maps::frags_max_entries, 0,
				    options.prog_ifindex);
		if (!m)
			return m.error();
		frags = std::move(*m);
	}

	std::vector<bpf_insn> insns = program.insns;
	for (const codegen::MapRef &ref : program.map_refs) {
		int fd = -1;
		switch (ref.slot) {
		case codegen::MapSlot::Counters:
			fd = counters->get();
			break;
		case codegen::MapSlot::Ifnames:
			fd = ifnames_fd;
			break;
		case codegen::MapSlot::LocalAddrs:
			fd = local_addrs_fd;
			break;
		case codegen::MapSlot::Scratch:
			fd = scratch->get();
			break;
		case codegen::MapSlot::Frags:
			fd = frags.get();
			break;
		}
		if (fd < 0)
			return make_error(EINVAL,
					  "loader: the program needs a map it was not given");
		if (ref.insn + 1 >= insns.size() ||
		    insns[ref.insn].code != (BPF_LD | BPF_DW | BPF_IMM))
			return make_error(EINVAL, "loader: a map reference points at no ld_imm64");
		insns[ref.insn].imm = fd;
	}

	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_XDP,
		    .prog_ifindex = options.prog_ifindex);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, options.name.c_str(), "GPL", insns.data(),
			       insns.size(), &opts);
	if (fd < 0 && !options.explain)
		return sys_error(-fd, "loader: the kernel refused the program (" +
					      std::to_string(insns.size()) + " instructions)");
	if (fd < 0) {
		const int err = -fd;
		// Again with the log on, to say why. The first try runs without it because a
		// log of a large program costs time and memory.
		std::vector<char> log(8u << 20);
		opts.log_buf = log.data();
		opts.log_size = static_cast<uint32_t>(log.size());
		opts.log_level = 1;
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, options.name.c_str(), "GPL", insns.data(),
				   insns.size(), &opts);
		if (fd >= 0) {
			// Accepted on the second try (a transient failure such as EAGAIN).
		} else {
			return make_error(err, "loader: the kernel refused the program (" +
						       std::string(std::strerror(err)) + ", " +
						       std::to_string(insns.size()) +
						       " instructions): " + log_tail(log));
		}
	}
	// The program holds its own references to the maps: the scratch map's fd can go.
	return LoadedProgram(Fd(fd), std::move(*counters), program.num_counters);
}

Result<std::vector<ir::Counter>> LoadedProgram::counters() const
{
	const int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		return sys_error(-ncpus, "loader: counting CPUs");
	const size_t per_block =
		maps::counter_block_bytes(num_counters_) / sizeof(maps::CounterValue);
	std::vector<maps::CounterValue> values(per_block * static_cast<size_t>(ncpus));
	std::vector<ir::Counter> out(num_counters_);
	for (uint32_t b = 0; b < maps::counter_blocks(num_counters_); b++) {
		if (bpf_map_lookup_elem(counters_.get(), &b, values.data()) != 0)
			return sys_error(errno,
					 "loader: reading counter block " + std::to_string(b));
		for (size_t cpu = 0; cpu < static_cast<size_t>(ncpus); cpu++) {
			for (size_t k = 0; k < per_block; k++) {
				const size_t rule = b * maps::counters_per_block + k;
				if (rule >= num_counters_)
					break;
				out[rule].packets += values[cpu * per_block + k].packets;
				out[rule].bytes += values[cpu * per_block + k].bytes;
			}
		}
	}
	return out;
}

Result<Fd> create_ifnames_map()
{
	return create_map(maps::ifnames_type, "bpfilter_ifname", sizeof(uint32_t),
			  sizeof(maps::IfnameValue), maps::ifnames_max_entries, 0);
}

Result<Fd> create_local_addrs_map()
{
	return create_map(maps::local_addrs_type, "bpfilter_local", sizeof(maps::LocalAddrKey),
			  sizeof(maps::LocalAddrValue), maps::local_addrs_max_entries,
			  BPF_F_NO_PREALLOC);
}

Status set_ifname(int ifnames_fd, uint32_t ifindex, const std::array<uint8_t, 16> &name)
{
	maps::IfnameValue v;
	std::memcpy(v.name, name.data(), sizeof(v.name));
	if (bpf_map_update_elem(ifnames_fd, &ifindex, &v, BPF_ANY) != 0)
		return sys_error(errno, "loader: naming ifindex " + std::to_string(ifindex));
	return {};
}

Status delete_ifname(int ifnames_fd, uint32_t ifindex)
{
	if (bpf_map_delete_elem(ifnames_fd, &ifindex) != 0)
		return sys_error(errno, "loader: forgetting ifindex " + std::to_string(ifindex));
	return {};
}

Status add_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen)
{
	if (prefixlen > 32)
		return make_error(EINVAL, "loader: an IPv4 prefix is at most 32 bits");
	const maps::LocalAddrKey key{prefixlen, addr_be};
	const maps::LocalAddrValue one = 1;
	if (bpf_map_update_elem(local_addrs_fd, &key, &one, BPF_ANY) != 0)
		return sys_error(errno, "loader: adding a local address");
	return {};
}

Status delete_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen)
{
	const maps::LocalAddrKey key{prefixlen, addr_be};
	if (bpf_map_delete_elem(local_addrs_fd, &key) != 0)
		return sys_error(errno, "loader: removing a local address");
	return {};
}

} // namespace bpfilter::loader
