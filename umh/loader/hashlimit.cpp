// -m hashlimit's htables: the maps, their BTF, and their garbage collection.
#include "loader/hashlimit.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <sys/sysinfo.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "codegen/maps.hpp"
#include "loader/map_btf.hpp"

namespace bpfilter::loader
{

namespace
{

namespace maps = codegen::maps;

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + std::strerror(err));
}

// The BTF of the map's key and value: the verifier lets a program take an entry's
// bpf_spin_lock only where the value's type says where it is.
Result<MapBtf> map_btf()
{
	MapBtfBuilder b;
	const int u16 = b.u16();
	const int u32 = b.u32();
	const int u64 = b.u64();
	const int lock = b.add_struct("bpf_spin_lock", 4, {{"val", u32, 0}});
	using K = maps::HashlimitKey;
	const int key = b.add_struct("bpfilter_hashlimit_key", sizeof(K),
				     {{"src", u32, offsetof(K, src)},
				      {"dst", u32, offsetof(K, dst)},
				      {"sport", u16, offsetof(K, sport)},
				      {"dport", u16, offsetof(K, dport)}});
	const int val = b.add_struct("bpfilter_hashlimit_entry", sizeof(maps::HashlimitValue),
				     {{"lock", lock, 0},
				      {"pad", u32, 4},
				      {"expires", u64, 8},
				      {"prev", u64, 16},
				      {"w0", u64, 24},
				      {"w1", u64, 32},
				      {"w2", u64, 40},
				      {"w3", u64, 48}});
	return b.load(key, val, "hashlimit");
}

} // namespace

uint64_t total_ram()
{
	struct sysinfo si = {};
	if (sysinfo(&si) != 0)
		return 8ull << 30;
	return static_cast<uint64_t>(si.totalram) * si.mem_unit;
}

Result<Fd> create_hashlimit_map(const ir::HashlimitTable &t)
{
	auto btf = map_btf();
	if (!btf)
		return btf.error();
	const uint32_t max = ir::hashlimit::table_max(t.cfg, total_ram());
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	btf->apply(opts);
	const int fd =
		bpf_map_create(BPF_MAP_TYPE_HASH, "bpfilter_hlimit", sizeof(maps::HashlimitKey),
			       sizeof(maps::HashlimitValue), max, &opts);
	if (fd < 0)
		return sys_error(-fd, "loader: creating the htable \"" + t.name + "\" of " +
					      std::to_string(max) + " entries");
	return Fd(fd);
}

Result<std::vector<HashlimitEntry>> hashlimit_entries(int map_fd)
{
	std::vector<HashlimitEntry> out;
	maps::HashlimitKey key{}, next{};
	const void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
		maps::HashlimitValue v{};
		if (bpf_map_lookup_elem_flags(map_fd, &next, &v, BPF_F_LOCK) == 0) {
			HashlimitEntry e;
			e.key = {next.src, next.dst, next.sport, next.dport};
			e.entry.expires = v.expires;
			e.entry.prev = v.prev;
			for (int k = 0; k < 4; k++)
				e.entry.w[k] = v.w[k];
			out.push_back(e);
		}
		key = next;
		prev = &key;
	}
	return out;
}

std::string hashlimit_proc_text(const std::vector<HashlimitEntry> &entries,
				const ir::HashlimitTable &t, uint64_t jiffies, uint32_t hz)
{
	std::string out;
	for (const HashlimitEntry &x : entries) {
		ir::hashlimit::Entry e = x.entry;
		ir::hashlimit::recalc(e, jiffies, t.cfg.mode, t.revision, hz);
		const auto ip = [](uint32_t be) {
			const auto *b = reinterpret_cast<const uint8_t *>(&be);
			return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." +
			       std::to_string(b[2]) + "." + std::to_string(b[3]);
		};
		const auto secs =
			static_cast<int64_t>(e.expires - jiffies) / static_cast<int64_t>(hz);
		out += std::to_string(secs) + " " + ip(x.key.src) + ":" +
		       std::to_string(ntohs(x.key.sport)) + "->" + ip(x.key.dst) + ":" +
		       std::to_string(ntohs(x.key.dport)) + " " + std::to_string(e.w[0]) + " " +
		       std::to_string(e.w[1]) + " " + std::to_string(e.w[2]) + "\n";
	}
	return out;
}

Result<uint32_t> hashlimit_gc(int map_fd, uint64_t jiffies)
{
	auto entries = hashlimit_entries(map_fd);
	if (!entries)
		return entries.error();
	uint32_t gone = 0;
	for (const HashlimitEntry &e : *entries) {
		if (!ir::hashlimit::expired(e.entry, jiffies))
			continue;
		// Refreshed since it was read: keep it (the kernel's gc holds the table's lock,
		// so no packet refreshes an entry while it looks).
		maps::HashlimitKey k{e.key.src, e.key.dst, e.key.sport, e.key.dport};
		maps::HashlimitValue v{};
		if (bpf_map_lookup_elem_flags(map_fd, &k, &v, BPF_F_LOCK) != 0 ||
		    !ir::hashlimit::expired(ir::hashlimit::Entry{v.expires, v.prev, {}}, jiffies))
			continue;
		if (bpf_map_delete_elem(map_fd, &k) == 0)
			gone++;
	}
	return gone;
}

} // namespace bpfilter::loader
