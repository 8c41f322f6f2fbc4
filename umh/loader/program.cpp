// Loading a generated program: its maps created, map fds patched in, the verifier's word on
// refusal.
#include "loader/program.hpp"

#include "loader/conntrack.hpp"
#include "loader/map_btf.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/btf.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>

#include "codegen/layout.hpp"
#include "codegen/maps.hpp"
#include "ir/limit.hpp"

namespace bpfilter::loader
{

namespace maps = codegen::maps;

namespace
{
constexpr char counters_map_name[] = "bpfilter_cnt";
} // namespace

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

// The BTF that lets the kernel verify global functions on their own, and that carries the
// program's whole name (its main function's, which bpftool and kallsyms show): each
// function's prototype, int f(struct bpfilter_pkt *) (the main one: int f(struct xdp_md
// *)), and func_info naming the function at each start. Types are as small as the
// verifier needs: a struct's size is all it reads.
struct Btf {
	Fd fd;
	std::vector<bpf_func_info> func_info;
};

// The program's functions: codegen lists them when the kernel needs their BTF (global
// functions, callbacks); otherwise they are the main one and what calls reach (static).
std::vector<codegen::Function> functions_of(const codegen::Program &program)
{
	if (!program.functions.empty())
		return program.functions;
	std::set<size_t> starts = {0};
	const std::vector<bpf_insn> &insns = program.insns;
	for (size_t i = 0; i < insns.size(); i++) {
		const bool call = insns[i].code == (BPF_JMP | BPF_CALL) &&
				  insns[i].src_reg == BPF_PSEUDO_CALL;
		const bool func = insns[i].code == (BPF_LD | BPF_DW | BPF_IMM) &&
				  insns[i].src_reg == BPF_PSEUDO_FUNC;
		if (call || func)
			starts.insert(static_cast<size_t>(static_cast<long>(i) + insns[i].imm + 1));
	}
	std::vector<codegen::Function> out;
	out.reserve(starts.size());
	for (size_t at : starts)
		out.push_back({at, false});
	return out;
}

Result<Btf> make_btf(const codegen::Program &program, const std::string &main_name)
{
	struct btf *b = btf__new_empty();
	if (!b)
		return sys_error(errno, "loader: creating BTF");
	const int int_id = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
	const int pkt = btf__add_struct(b, "bpfilter_pkt", codegen::layout::pkt_off::size);
	const int pkt_ptr = btf__add_ptr(b, pkt);
	const int sub_proto = btf__add_func_proto(b, int_id);
	int err = btf__add_func_param(b, "pkt", pkt_ptr);
	const int ctx = btf__add_struct(b, "xdp_md", sizeof(xdp_md));
	const int ctx_ptr = btf__add_ptr(b, ctx);
	const int main_proto = btf__add_func_proto(b, int_id);
	if (!err)
		err = btf__add_func_param(b, "ctx", ctx_ptr);
	Btf out;
	const std::vector<codegen::Function> functions = functions_of(program);
	for (size_t k = 0; k < functions.size() && err >= 0; k++) {
		const codegen::Function &fn = functions[k];
		const std::string name = k == 0 ? main_name : "bpfilter_fn" + std::to_string(k);
		const int id = btf__add_func(
			b, name.c_str(), k == 0 || fn.global ? BTF_FUNC_GLOBAL : BTF_FUNC_STATIC,
			k == 0 ? main_proto : sub_proto);
		if (id < 0)
			err = id;
		out.func_info.push_back(
			{static_cast<uint32_t>(fn.insn), static_cast<uint32_t>(id)});
	}
	for (int id : {int_id, pkt, pkt_ptr, sub_proto, ctx, ctx_ptr, main_proto})
		if (id < 0)
			err = id;
	if (err >= 0)
		err = btf__load_into_kernel(b);
	if (err < 0) {
		btf__free(b);
		return sys_error(-err, "loader: loading the program's BTF");
	}
	out.fd = Fd(dup(btf__fd(b)));
	btf__free(b);
	if (!out.fd)
		return sys_error(errno, "loader: keeping the program's BTF");
	return out;
}

} // namespace

std::string_view program_name(codegen::Flavor flavor)
{
	switch (flavor) {
	case codegen::Flavor::Xdp:
		return "bpfilter_xdp_in";
	case codegen::Flavor::TcIngress:
		return "bpfilter_tc_in_";
	case codegen::Flavor::TcEgress:
		return "bpfilter_tc_out";
	}
	return "bpfilter";
}

std::string program_full_name(codegen::Flavor flavor, std::string_view table, uint64_t netns_ino,
			      bool offload)
{
	// The hook, then what it serves. tc ingress's hook is one character short of the
	// kernel's 15: the separator that follows completes it.
	std::string name = flavor == codegen::Flavor::TcIngress ? "bpfilter_tc_in"
								: std::string(program_name(flavor));
	name += '_';
	for (char c : table)
		name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
	name += flavor == codegen::Flavor::TcEgress ? "_OUTPUT"
		: offload			    ? "_INPUT_offload"
						    : "_INPUT_FORWARD";
	if (netns_ino)
		name += "_net" + std::to_string(netns_ino);
	return name;
}

bool is_our_program(std::string_view name, uint32_t prog_type)
{
	// Today's names, and the names of helpers before them (bpfilter_in, bpfilter_tc_in:
	// bpfilter_tc_out has not changed), whose programs a newer helper adopts.
	if (prog_type == BPF_PROG_TYPE_XDP)
		return name == "bpfilter_xdp_in" || name == "bpfilter_in";
	if (prog_type == BPF_PROG_TYPE_SCHED_CLS)
		return name == "bpfilter_tc_in_" || name == "bpfilter_tc_out" ||
		       name == "bpfilter_tc_in";
	return false;
}

// The Counters map's entries: the programs' blocks, the base's, the fingerprint.
constexpr uint32_t counters_entries(uint32_t num_counters)
{
	return 2 * maps::counter_blocks(num_counters) + 1;
}

Result<Fd> create_counters_map(uint32_t num_counters, uint32_t prog_ifindex)
{
	const uint32_t value_size = maps::counter_block_bytes(num_counters);
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_ifindex = prog_ifindex);
	// A map bound to a device takes no BTF (the kernel's offload map ops refuse it).
	MapBtf btf;
	if (!prog_ifindex) {
		auto made = counters_map_btf(value_size);
		if (!made)
			return made.error();
		btf = std::move(*made);
		btf.apply(opts);
	}
	const int fd =
		bpf_map_create(static_cast<bpf_map_type>(maps::counters_type), counters_map_name,
			       sizeof(uint32_t), value_size, counters_entries(num_counters), &opts);
	if (fd < 0)
		return sys_error(-fd, std::string("loader: creating map ") + counters_map_name);
	return Fd(fd);
}

namespace
{

Result<size_t> possible_cpus()
{
	const int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		return sys_error(-ncpus, "loader: counting CPUs");
	return static_cast<size_t>(ncpus);
}

// Writes one entry of a Counters map: values on CPU 0, zero elsewhere.
Status write_counters_entry(int fd, uint32_t key, uint32_t num_counters,
			    const std::vector<maps::CounterValue> &cpu0)
{
	auto ncpus = possible_cpus();
	if (!ncpus)
		return ncpus.error();
	const size_t per_block =
		maps::counter_block_bytes(num_counters) / sizeof(maps::CounterValue);
	std::vector<maps::CounterValue> values(per_block * *ncpus, maps::CounterValue{0, 0});
	std::copy_n(cpu0.begin(), std::min(cpu0.size(), per_block), values.begin());
	if (bpf_map_update_elem(fd, &key, values.data(), BPF_ANY) != 0)
		return sys_error(errno, "loader: writing counters entry " + std::to_string(key));
	return {};
}

} // namespace

Status set_counters_fingerprint(int counters_fd, uint32_t num_counters, uint64_t fingerprint)
{
	return write_counters_entry(counters_fd, counters_entries(num_counters) - 1, num_counters,
				    {maps::CounterValue{fingerprint, num_counters}});
}

Result<AdoptedCounters> adopted_counters(int prog_fd)
{
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
		return sys_error(errno, "loader: reading an adopted program's info");
	std::vector<uint32_t> ids(info.nr_map_ids);
	info = {};
	info.nr_map_ids = static_cast<uint32_t>(ids.size());
	info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
		return sys_error(errno, "loader: listing an adopted program's maps");
	ids.resize(std::min<size_t>(ids.size(), info.nr_map_ids));
	for (uint32_t id : ids) {
		Fd fd(bpf_map_get_fd_by_id(id));
		if (!fd)
			continue;
		struct bpf_map_info mi = {};
		uint32_t mlen = sizeof(mi);
		if (bpf_obj_get_info_by_fd(fd.get(), &mi, &mlen) != 0 ||
		    strcmp(mi.name, counters_map_name) != 0 || mi.type != maps::counters_type ||
		    mi.key_size != sizeof(uint32_t))
			continue;
		// Its rule count, from the fingerprint entry, must give the map's geometry:
		// a map of another layout (an older helper's) is not read.
		auto ncpus = possible_cpus();
		if (!ncpus)
			return ncpus.error();
		const uint32_t key = mi.max_entries - 1;
		std::vector<uint8_t> raw(static_cast<size_t>(mi.value_size) * *ncpus);
		if (mi.value_size < sizeof(maps::CounterValue) ||
		    bpf_map_lookup_elem(fd.get(), &key, raw.data()) != 0)
			break;
		maps::CounterValue fp;
		memcpy(&fp, raw.data(), sizeof(fp));
		if (fp.bytes > UINT32_MAX)
			break;
		const auto n = static_cast<uint32_t>(fp.bytes);
		if (mi.max_entries != counters_entries(n) ||
		    mi.value_size != maps::counter_block_bytes(n))
			break;
		return AdoptedCounters{std::move(fd), fp.packets, n};
	}
	return make_error(ENOENT, "no counters map with a fingerprint on the adopted program");
}

Result<std::vector<ir::Counter>> read_counters_map(int counters_fd, uint32_t num_counters)
{
	auto ncpus = possible_cpus();
	if (!ncpus)
		return ncpus.error();
	const size_t per_block =
		maps::counter_block_bytes(num_counters) / sizeof(maps::CounterValue);
	const uint32_t nblocks = maps::counter_blocks(num_counters);
	std::vector<maps::CounterValue> values(per_block * *ncpus);
	std::vector<ir::Counter> out(num_counters);
	// The programs' blocks, then the base's.
	for (uint32_t key = 0; key < 2 * nblocks; key++) {
		if (bpf_map_lookup_elem(counters_fd, &key, values.data()) != 0)
			return sys_error(errno,
					 "loader: reading counter block " + std::to_string(key));
		const uint32_t b = key % nblocks;
		for (size_t cpu = 0; cpu < *ncpus; cpu++) {
			for (size_t k = 0; k < per_block; k++) {
				const size_t rule = b * maps::counters_per_block + k;
				if (rule >= num_counters)
					break;
				out[rule].packets += values[cpu * per_block + k].packets;
				out[rule].bytes += values[cpu * per_block + k].bytes;
			}
		}
	}
	return out;
}

Status set_counters_base(int counters_fd, const std::vector<ir::Counter> &base)
{
	const auto n = static_cast<uint32_t>(base.size());
	const uint32_t nblocks = maps::counter_blocks(n);
	for (uint32_t b = 0; b < nblocks; b++) {
		std::vector<maps::CounterValue> block;
		for (size_t rule = static_cast<size_t>(b) * maps::counters_per_block;
		     rule < base.size() && block.size() < maps::counters_per_block; rule++)
			block.push_back({base[rule].packets, base[rule].bytes});
		BF_TRY(write_counters_entry(counters_fd, nblocks + b, n, block));
	}
	return {};
}

Result<Fd> create_connlimit_map()
{
	return create_map(maps::connlimit_type, "bpfilter_climit", sizeof(maps::ConnlimitKey),
			  sizeof(maps::ConnlimitList), maps::connlimit_max_entries,
			  BPF_F_NO_PREALLOC);
}

Result<Fd> create_limits_map(const ir::Table &table, uint32_t hz, uint64_t jiffies)
{
	if (table.limit_slots == 0 || table.limit_slots > (64u << 20) / sizeof(maps::LimitBucket))
		return make_error(EINVAL, "loader: " + std::to_string(table.limit_slots) +
						  " -m limit rules, outside what one map holds");
	const auto bytes = static_cast<uint32_t>(table.limit_slots * sizeof(maps::LimitBucket));
	auto m = create_map(maps::limits_type, "bpfilter_limit", sizeof(uint32_t), bytes, 1, 0);
	if (!m)
		return m.error();
	std::vector<maps::LimitBucket> buckets(table.limit_slots, maps::LimitBucket{});
	for (const ir::Rule &r : table.rules)
		for (const ir::Match &match : r.matches)
			if (auto *x = std::get_if<ir::LimitMatch>(&match);
			    x && x->slot < buckets.size())
				buckets[x->slot] = {jiffies,
						    ir::limit::params(x->avg, x->burst,
								      x->credit_cap, x->cost, hz)
							    .credit,
						    0};
	const uint32_t key = 0;
	if (bpf_map_update_elem(m->get(), &key, buckets.data(), BPF_ANY) != 0)
		return sys_error(errno, "loader: filling the -m limit buckets");
	return m;
}

// n keys of key_size bytes and their values, put in the map with one BPF_MAP_UPDATE_BATCH
// (5.6; a syscall per element cost about 2 us here, 40 ms for a 10k-rule service list's
// keys and probes). The kernel's batch takes no BPF_NOEXIST (6.1 allows only BPF_F_LOCK):
// the keys are distinct by construction (classify.cpp merges equal keys into one value).
Status fill_set_map(int fd, const void *keys, const void *values, uint32_t n, const char *what)
{
	uint32_t done = n;
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
	if (n == 0 || bpf_map_update_batch(fd, keys, values, &done, &opts) == 0)
		return {};
	return sys_error(errno, std::string("loader: filling ") + what + " (" +
					std::to_string(done) + " of " + std::to_string(n) +
					" keys)");
}

// A tuple set's map: a hash whose keys are key_words u32 words.
Result<Fd> create_tuple_set_map(const codegen::AddrSetData &set)
{
	const size_t words = set.key_words;
	const size_t n = set.keys.size() / words;
	if (set.keys.size() != words * n || set.values.size() != n * set.slots || set.slots == 0)
		return make_error(EINVAL, "loader: a tuple set's keys and values disagree");
	auto m = create_map(maps::addr_set_hash_type, "bpfilter_tset",
			    static_cast<uint32_t>(4 * words), 4 * set.slots,
			    static_cast<uint32_t>(std::max<size_t>(n, 1)), 0);
	if (!m)
		return m.error();
	BF_TRY(fill_set_map(m->get(), set.keys.data(), set.values.data(), static_cast<uint32_t>(n),
			    "a tuple set"));
	return m;
}

Result<Fd> create_addr_set_map(const codegen::AddrSetData &set)
{
	if (set.key_words)
		return create_tuple_set_map(set);
	const size_t n = set.keys.size() / 2;
	if (set.keys.size() != 2 * n || set.values.size() != n * set.slots || set.slots == 0)
		return make_error(EINVAL, "loader: an address set's keys and values disagree");
	const uint32_t value_size = 4 * set.slots;
	const auto entries = static_cast<uint32_t>(std::max<size_t>(n, 1));
	auto m = set.lpm ? create_map(maps::addr_set_lpm_type, "bpfilter_aset",
				      sizeof(maps::LocalAddrKey), value_size, entries,
				      BPF_F_NO_PREALLOC)
			 : create_map(maps::addr_set_hash_type, "bpfilter_aset", sizeof(uint32_t),
				      value_size, entries, 0);
	if (!m)
		return m.error();
	// The keys as the map takes them, one after the other.
	if (set.lpm) {
		std::vector<maps::LocalAddrKey> keys(n);
		for (size_t k = 0; k < n; k++)
			keys[k] = maps::LocalAddrKey{set.keys[2 * k + 1], set.keys[2 * k]};
		BF_TRY(fill_set_map(m->get(), keys.data(), set.values.data(),
				    static_cast<uint32_t>(n), "an address set"));
	} else {
		std::vector<uint32_t> keys(n);
		for (size_t k = 0; k < n; k++)
			keys[k] = set.keys[2 * k];
		BF_TRY(fill_set_map(m->get(), keys.data(), set.values.data(),
				    static_cast<uint32_t>(n), "an address set"));
	}
	return m;
}

Result<int> SetMaps::get(const codegen::AddrSetData &set)
{
	for (const Made &m : made_)
		if (*m.set == set)
			return m.fd.get();
	auto fd = create_addr_set_map(set);
	if (!fd)
		return fd.error();
	made_.push_back(Made{&set, std::move(*fd)});
	return made_.back().fd.get();
}

void SetMaps::forget(const codegen::Program &program)
{
	std::erase_if(made_, [&](const Made &m) {
		return std::any_of(program.addr_sets.begin(), program.addr_sets.end(),
				   [&](const codegen::AddrSetData &s) { return &s == m.set; });
	});
}

Result<Fd> create_icmp_global_map()
{
	return create_map(maps::icmp_global_type, "bpfilter_icmp", sizeof(uint32_t),
			  sizeof(maps::IcmpGlobalValue), 1, 0);
}

Result<Fd> create_icmp_peers_map()
{
	return create_map(maps::icmp_peers_type, "bpfilter_peer", sizeof(uint32_t),
			  sizeof(maps::IcmpPeerValue), maps::icmp_peers_max_entries, 0);
}

Result<LoadedProgram> load_program(const codegen::Program &program, int devices_fd,
				   int local_addrs_fd, const LoadOptions &options)
{
	if (program.insns.empty())
		return make_error(EINVAL, "loader: empty program");
	const std::string name =
		options.name.empty() ? std::string(program_name(program.flavor)) : options.name;

	Result<Fd> counters = make_error(EBADF, "");
	if (options.counters_fd >= 0) {
		// Shared with the table's other programs: a reference of our own.
		const int dup = fcntl(options.counters_fd, F_DUPFD_CLOEXEC, 0);
		if (dup < 0)
			return sys_error(errno, "loader: sharing the counters map");
		counters = Fd(dup);
	} else if (program.offload) {
		counters = create_offload_counters_map(program.num_counters, options.prog_ifindex);
	} else {
		counters = create_counters_map(program.num_counters, options.prog_ifindex);
	}
	if (!counters)
		return counters.error();
	Fd scratch;
	if (std::any_of(
		    program.map_refs.begin(), program.map_refs.end(),
		    [](const codegen::MapRef &r) { return r.slot == codegen::MapSlot::Scratch; })) {
		auto m = create_map(maps::scratch_type, "bpfilter_pkt", sizeof(uint32_t),
				    codegen::layout::pkt_off::size, 1, 0, options.prog_ifindex);
		if (!m)
			return m.error();
		scratch = std::move(*m);
	}

	// -m connlimit's work area: the prologue's, per CPU, in programs that count.
	Fd connlimit_tmp;
	if (std::any_of(program.map_refs.begin(), program.map_refs.end(),
			[](const codegen::MapRef &r) {
				return r.slot == codegen::MapSlot::ConnlimitTmp;
			})) {
		auto m = create_map(maps::connlimit_tmp_type, "bpfilter_cltmp", sizeof(uint32_t),
				    maps::connlimit_tmp_bytes(maps::connlimit_max_slots), 1, 0);
		if (!m)
			return m.error();
		connlimit_tmp = std::move(*m);
	}

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

	// -m u32's copy of the datagram: a value per CPU, made only for programs that read it.
	Fd u32_buf;
	if (std::any_of(
		    program.map_refs.begin(), program.map_refs.end(),
		    [](const codegen::MapRef &r) { return r.slot == codegen::MapSlot::U32Buf; })) {
		auto ncpus = possible_cpus();
		if (!ncpus)
			return ncpus.error();
		auto m = create_map(maps::u32_buf_type, "bpfilter_u32", sizeof(uint32_t),
				    maps::u32_buf_size, static_cast<uint32_t>(*ncpus), 0,
				    options.prog_ifindex);
		if (!m)
			return m.error();
		u32_buf = std::move(*m);
	}

	// REJECT's rate limits: the namespace's maps, or ours when there are none.
	Fd icmp_global, icmp_peers;
	for (const codegen::MapRef &ref : program.map_refs) {
		if (ref.slot == codegen::MapSlot::IcmpGlobal && options.icmp_global_fd < 0 &&
		    icmp_global.get() < 0) {
			auto m = create_icmp_global_map();
			if (!m)
				return m.error();
			icmp_global = std::move(*m);
		}
		if (ref.slot == codegen::MapSlot::IcmpPeers && options.icmp_peers_fd < 0 &&
		    icmp_peers.get() < 0) {
			auto m = create_icmp_peers_map();
			if (!m)
				return m.error();
			icmp_peers = std::move(*m);
		}
	}

	// Classified runs of address rules: a map each, the table's (shared with its other
	// programs) or made and filled for this program.
	std::vector<Fd> own_sets(program.addr_sets.size());
	std::vector<int> addr_sets(program.addr_sets.size(), -1);
	for (const codegen::MapRef &ref : program.map_refs) {
		if (ref.slot != codegen::MapSlot::AddrSet || ref.index >= addr_sets.size() ||
		    addr_sets[ref.index] >= 0)
			continue;
		const codegen::AddrSetData &set = program.addr_sets[ref.index];
		if (options.set_maps) {
			auto fd = options.set_maps->get(set);
			if (!fd)
				return fd.error();
			addr_sets[ref.index] = *fd;
			continue;
		}
		auto m = create_addr_set_map(set);
		if (!m)
			return m.error();
		own_sets[ref.index] = std::move(*m);
		addr_sets[ref.index] = own_sets[ref.index].get();
	}

	std::vector<bpf_insn> insns = program.insns;
	for (const codegen::MapRef &ref : program.map_refs) {
		int fd = -1;
		switch (ref.slot) {
		case codegen::MapSlot::Counters:
			fd = counters->get();
			break;
		case codegen::MapSlot::Devices:
			fd = devices_fd;
			break;
		case codegen::MapSlot::LocalAddrs:
			fd = local_addrs_fd;
			break;
		case codegen::MapSlot::Scratch:
			fd = scratch.get();
			break;
		case codegen::MapSlot::Frags:
			fd = frags.get();
			break;
		case codegen::MapSlot::CtOwn:
			fd = options.conntrack ? options.conntrack->own.get() : -1;
			break;
		case codegen::MapSlot::CtTcp:
			fd = options.conntrack ? options.conntrack->tcp.get() : -1;
			break;
		case codegen::MapSlot::IcmpGlobal:
			fd = options.icmp_global_fd >= 0 ? options.icmp_global_fd
							 : icmp_global.get();
			break;
		case codegen::MapSlot::IcmpPeers:
			fd = options.icmp_peers_fd >= 0 ? options.icmp_peers_fd : icmp_peers.get();
			break;
		case codegen::MapSlot::LogRing:
			fd = options.log_ring_fd;
			break;
		case codegen::MapSlot::LogLost:
			fd = options.log_lost_fd;
			break;
		case codegen::MapSlot::Hashlimit:
			fd = options.hashlimit_fd;
			break;
		case codegen::MapSlot::HashlimitCounts:
			fd = options.hashlimit_counts_fd;
			break;
		case codegen::MapSlot::AddrTypes:
			fd = options.addr_types_fd;
			break;
		case codegen::MapSlot::Limits:
			fd = options.limits_fd;
			break;
		case codegen::MapSlot::RecentEntries:
			fd = options.recent_entries_fd;
			break;
		case codegen::MapSlot::RecentHeads:
			fd = options.recent_heads_fd;
			break;
		case codegen::MapSlot::RecentTmp:
			fd = options.recent_tmp_fd;
			break;
		case codegen::MapSlot::U32Buf:
			fd = u32_buf.get();
			break;
		case codegen::MapSlot::AddrSet:
			fd = ref.index < addr_sets.size() ? addr_sets[ref.index] : -1;
			break;
		case codegen::MapSlot::Connlimit:
			fd = options.connlimit_fd;
			break;
		case codegen::MapSlot::ConnlimitTmp:
			fd = connlimit_tmp.get();
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

	// Kernel functions: their BTF ids, in vmlinux's BTF or the module's (fd_array[1]).
	std::array<int, 2> fd_array{-1, -1};
	for (const codegen::KfuncRef &ref : program.kfunc_refs) {
		if (!options.conntrack)
			return make_error(EINVAL,
					  "loader: the program calls nf_conntrack's functions "
					  "and none were found");
		if (ref.insn >= insns.size() || insns[ref.insn].code != (BPF_JMP | BPF_CALL) ||
		    insns[ref.insn].src_reg != BPF_PSEUDO_KFUNC_CALL)
			return make_error(EINVAL, "loader: a kfunc reference points at no call");
		insns[ref.insn].imm = options.conntrack->btf_id[static_cast<size_t>(ref.func)];
		if (options.conntrack->module_btf) {
			fd_array = {options.conntrack->module_btf.get(),
				    options.conntrack->module_btf.get()};
			insns[ref.insn].off = 1;
		}
	}

	const bool xdp = program.flavor == codegen::Flavor::Xdp;
	const bpf_prog_type type = xdp ? BPF_PROG_TYPE_XDP : BPF_PROG_TYPE_SCHED_CLS;
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = xdp ? BPF_XDP : static_cast<bpf_attach_type>(0),
		    .prog_ifindex = options.prog_ifindex);
	if (fd_array[0] >= 0)
		opts.fd_array = fd_array.data();
	// The main function's BTF name is the program's whole name; the kernel keeps its first
	// 15 characters as the program's.
	auto made = make_btf(program, name);
	if (!made)
		return made.error();
	Btf btf = std::move(*made);
	opts.prog_btf_fd = static_cast<uint32_t>(btf.fd.get());
	opts.func_info = btf.func_info.data();
	opts.func_info_cnt = static_cast<uint32_t>(btf.func_info.size());
	opts.func_info_rec_size = sizeof(bpf_func_info);
	const std::string short_name = name.substr(0, BPF_OBJ_NAME_LEN - 1);
	int fd = bpf_prog_load(type, short_name.c_str(), "GPL", insns.data(), insns.size(), &opts);
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
		fd = bpf_prog_load(type, short_name.c_str(), "GPL", insns.data(), insns.size(),
				   &opts);
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
	return LoadedProgram(Fd(fd), std::move(*counters), program.num_counters, program.offload);
}

Result<std::vector<ir::Counter>> LoadedProgram::counters() const
{
	if (offload_)
		return read_offload_counters(counters_.get(), num_counters_);
	return read_counters_map(counters_.get(), num_counters_);
}

Result<Fd> create_offload_counters_map(uint32_t num_counters, uint32_t ifindex)
{
	return create_map(maps::offload_counters_type, counters_map_name, sizeof(uint32_t),
			  maps::offload_counters_bytes(num_counters), 1, 0, ifindex);
}

Result<std::vector<ir::Counter>> read_offload_counters(int counters_fd, uint32_t num_counters)
{
	std::vector<maps::CounterValue> values(maps::offload_counters_bytes(num_counters) /
					       sizeof(maps::CounterValue));
	const uint32_t key = 0;
	if (bpf_map_lookup_elem(counters_fd, &key, values.data()) != 0)
		return sys_error(errno, "loader: reading an offloaded program's counters");
	std::vector<ir::Counter> out(num_counters);
	for (size_t k = 0; k < num_counters; k++)
		out[k] = {values[k].packets, values[k].bytes};
	return out;
}

bool offload_capable(int ifindex)
{
	// The device's driver allocates offloaded maps only if it runs BPF programs itself
	// (BPF_OFFLOAD_MAP_ALLOC, registered with bpf_offload_dev_netdev_register()).
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_ifindex = static_cast<uint32_t>(ifindex));
	const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bpfilter_probe", sizeof(uint32_t),
				      sizeof(uint64_t), 1, &opts);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

Result<LogMaps> create_log_maps()
{
	LogMaps m;
	auto ring = create_map(maps::log_ring_type, "bpfilter_log", 0, 0, maps::log_ring_bytes, 0);
	if (!ring)
		return ring.error();
	auto lost = create_map(maps::log_lost_type, "bpfilter_lost", sizeof(uint32_t),
			       sizeof(uint64_t), 1, 0);
	if (!lost)
		return lost.error();
	m.ring = std::move(*ring);
	m.lost = std::move(*lost);
	return m;
}

Result<uint64_t> LogMaps::lost_count() const
{
	const int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		return sys_error(-ncpus, "loader: counting CPUs");
	std::vector<uint64_t> values(static_cast<size_t>(ncpus));
	const uint32_t key = 0;
	if (bpf_map_lookup_elem(lost.get(), &key, values.data()) != 0)
		return sys_error(errno, "loader: reading the lost log lines");
	uint64_t sum = 0;
	for (uint64_t v : values)
		sum += v;
	return sum;
}

Result<Fd> create_devices_map()
{
	return create_map(maps::devices_type, "bpfilter_dev", sizeof(uint32_t),
			  sizeof(maps::DeviceValue), maps::devices_max_entries, 0);
}

Result<Fd> create_local_addrs_map()
{
	return create_map(maps::local_addrs_type, "bpfilter_local", sizeof(maps::LocalAddrKey),
			  sizeof(maps::LocalAddrValue), maps::local_addrs_max_entries,
			  BPF_F_NO_PREALLOC);
}

Result<Fd> create_addr_types_map()
{
	return create_map(maps::addr_types_type, "bpfilter_atype", sizeof(maps::LocalAddrKey),
			  sizeof(maps::AddrTypeValue), maps::addr_types_max_entries,
			  BPF_F_NO_PREALLOC);
}

Status sync_addr_types(int addr_types_fd, const std::vector<ir::AddrtypeRoute> &routes,
		       std::vector<ir::AddrtypeRoute> &held)
{
	const auto key_of = [](const ir::AddrtypeRoute &r) {
		return maps::LocalAddrKey{r.prefixlen, r.addr};
	};
	const auto same_key = [](const ir::AddrtypeRoute &a, const ir::AddrtypeRoute &b) {
		return a.addr == b.addr && a.prefixlen == b.prefixlen;
	};
	for (const ir::AddrtypeRoute &r : routes) {
		if (std::find(held.begin(), held.end(), r) != held.end())
			continue;
		maps::AddrTypeValue v{};
		v.type = r.type;
		v.has_dev = r.has_dev;
		std::memcpy(v.dev, r.dev.data(), sizeof(v.dev));
		const maps::LocalAddrKey key = key_of(r);
		if (bpf_map_update_elem(addr_types_fd, &key, &v, BPF_ANY) != 0)
			return sys_error(errno, "loader: adding a route for -m addrtype");
	}
	for (const ir::AddrtypeRoute &h : held) {
		if (std::any_of(routes.begin(), routes.end(),
				[&](const ir::AddrtypeRoute &r) { return same_key(r, h); }))
			continue;
		const maps::LocalAddrKey key = key_of(h);
		(void)bpf_map_delete_elem(addr_types_fd, &key);
	}
	held = routes;
	return {};
}

Status set_device(int devices_fd, uint32_t ifindex, const DeviceInfo &info)
{
	maps::DeviceValue v{};
	std::memcpy(v.name, info.name.data(), sizeof(v.name));
	std::memcpy(v.mac, info.mac.data(), sizeof(v.mac));
	v.l2len = info.l2len;
	v.flags = info.flags;
	if (bpf_map_update_elem(devices_fd, &ifindex, &v, BPF_ANY) != 0)
		return sys_error(errno, "loader: naming ifindex " + std::to_string(ifindex));
	return {};
}

Status delete_device(int devices_fd, uint32_t ifindex)
{
	if (bpf_map_delete_elem(devices_fd, &ifindex) != 0)
		return sys_error(errno, "loader: forgetting ifindex " + std::to_string(ifindex));
	return {};
}

Status add_local_addr(int local_addrs_fd, uint32_t addr_be, uint8_t prefixlen, uint8_t flags,
		      uint32_t prefsrc_be)
{
	if (prefixlen > 32)
		return make_error(EINVAL, "loader: an IPv4 prefix is at most 32 bits");
	const maps::LocalAddrKey key{prefixlen, addr_be};
	const maps::LocalAddrValue v{flags, {}, prefsrc_be};
	if (bpf_map_update_elem(local_addrs_fd, &key, &v, BPF_ANY) != 0)
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
