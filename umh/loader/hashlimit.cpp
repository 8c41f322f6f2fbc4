// -m hashlimit's htables of a namespace: the maps, their BTF, the numbers of the names, and
// their garbage collection.
#include "loader/hashlimit.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "codegen/maps.hpp"
#include "loader/map_btf.hpp"
#include "loader/map_keys.hpp"

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
				     {{"table", u32, offsetof(K, table)},
				      {"src", u32, offsetof(K, src)},
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

constexpr size_t counts_bytes = sizeof(uint64_t) * maps::hashlimit_max_tables;

} // namespace

uint64_t total_ram()
{
	struct sysinfo si = {};
	if (sysinfo(&si) != 0)
		return 8ull << 30;
	return static_cast<uint64_t>(si.totalram) * si.mem_unit;
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

Htables::Htables(Fd map, Fd counts, uint64_t *mem)
    : map_(std::move(map)), counts_(std::move(counts)), mem_(mem)
{
}

Htables::~Htables()
{
	munmap(mem_, counts_bytes);
}

Result<std::unique_ptr<Htables>> Htables::create()
{
	auto btf = map_btf();
	if (!btf)
		return btf.error();
	// No prealloc: an entry takes memory when a packet makes it, as the kernel's
	// kmem_cache_alloc(); the map's buckets (16 bytes each) are allocated now.
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	btf->apply(opts);
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bpfilter_hlimit", sizeof(maps::HashlimitKey),
				sizeof(maps::HashlimitValue), maps::hashlimit_capacity, &opts);
	if (fd < 0)
		return sys_error(-fd, "loader: creating -m hashlimit's map of " +
					      std::to_string(maps::hashlimit_capacity) +
					      " entries");
	Fd map(fd);
	LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = BPF_F_MMAPABLE);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bpfilter_hlcount", sizeof(uint32_t), counts_bytes,
			    1, &copts);
	if (fd < 0)
		return sys_error(-fd, "loader: creating -m hashlimit's counts");
	Fd counts(fd);
	// Mapped, so that the garbage collection takes from a count atomically, as the
	// programs add to it.
	void *mem =
		mmap(nullptr, counts_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, counts.get(), 0);
	if (mem == MAP_FAILED)
		return sys_error(errno, "loader: mapping -m hashlimit's counts");
	return std::unique_ptr<Htables>(
		new Htables(std::move(map), std::move(counts), static_cast<uint64_t *>(mem)));
}

Result<std::vector<codegen::Options::HashlimitRef>>
Htables::prepare(std::vector<ir::HashlimitTable> &hts, std::vector<std::string> &made)
{
	std::vector<codegen::Options::HashlimitRef> refs;
	std::set<uint32_t> used, fresh;
	for (const auto &[name, h] : tables_)
		used.insert(h.id);
	uint32_t next = 0;
	for (ir::HashlimitTable &t : hts) {
		if (auto it = tables_.find(t.name); it != tables_.end()) {
			t = it->second.def;
			refs.push_back({it->second.id, it->second.max});
			continue;
		}
		while (used.count(next))
			next++;
		if (next >= maps::hashlimit_max_tables)
			return make_error(ENOMEM,
					  "loader: -m hashlimit: more than " +
						  std::to_string(maps::hashlimit_max_tables) +
						  " htables in the namespace");
		Htable h;
		h.id = next;
		h.max = ir::hashlimit::table_max(t.cfg, total_ram());
		h.def = t;
		used.insert(next);
		fresh.insert(next);
		__atomic_store_n(&mem_[next], 0, __ATOMIC_SEQ_CST);
		tables_[t.name] = h;
		made.push_back(t.name);
		refs.push_back({h.id, h.max});
	}
	// A number used before starts empty: what a program of a table gone in the meantime
	// may have left under it goes.
	if (!fresh.empty())
		purge(fresh, false);
	return refs;
}

void Htables::retain(const std::vector<ir::HashlimitTable> &kept)
{
	std::set<uint32_t> gone;
	std::erase_if(tables_, [&](const auto &kv) {
		const bool keep = std::any_of(kept.begin(), kept.end(),
					      [&](const auto &h) { return h.name == kv.first; });
		if (!keep)
			gone.insert(kv.second.id);
		return !keep;
	});
	if (!gone.empty())
		purge(gone, false);
}

void Htables::purge(const std::set<uint32_t> &ids, bool strays)
{
	std::set<uint32_t> live;
	if (strays)
		for (const auto &[name, h] : tables_)
			live.insert(h.id);
	for (const maps::HashlimitKey &k : map_keys<maps::HashlimitKey>(map_.get()))
		if (ids.count(k.table) || (strays && !live.count(k.table)))
			bpf_map_delete_elem(map_.get(), &k);
}

const Htables::Htable *Htables::find(std::string_view name) const
{
	auto it = tables_.find(name);
	return it == tables_.end() ? nullptr : &it->second;
}

const ir::HashlimitTable *Htables::def(std::string_view name) const
{
	const Htable *h = find(name);
	return h ? &h->def : nullptr;
}

std::vector<std::string> Htables::names() const
{
	std::vector<std::string> out;
	for (const auto &[name, h] : tables_)
		out.push_back(name);
	return out;
}

uint64_t Htables::count(std::string_view name) const
{
	const Htable *h = find(name);
	return h ? __atomic_load_n(&mem_[h->id], __ATOMIC_SEQ_CST) : 0;
}

Result<std::vector<HashlimitEntry>> Htables::entries(std::string_view name) const
{
	auto all = entries(std::vector<std::string>{std::string(name)});
	if (!all)
		return all.error();
	return std::move(all->front());
}

Result<std::vector<std::vector<HashlimitEntry>>>
Htables::entries(const std::vector<std::string> &names) const
{
	std::map<uint32_t, size_t> at; // number -> position in names
	for (size_t k = 0; k < names.size(); k++) {
		const Htable *h = find(names[k]);
		if (!h)
			return make_error(ENOENT, "no htable \"" + names[k] + "\"");
		at[h->id] = k;
	}
	std::vector<std::vector<HashlimitEntry>> out(names.size());
	for (const maps::HashlimitKey &k : map_keys<maps::HashlimitKey>(map_.get())) {
		auto it = at.find(k.table);
		if (it == at.end())
			continue;
		maps::HashlimitValue v{};
		if (bpf_map_lookup_elem_flags(map_.get(), &k, &v, BPF_F_LOCK) != 0)
			continue; // gone meanwhile
		HashlimitEntry e;
		e.key = {k.src, k.dst, k.sport, k.dport};
		e.entry.expires = v.expires;
		e.entry.prev = v.prev;
		for (int w = 0; w < 4; w++)
			e.entry.w[w] = v.w[w];
		out[it->second].push_back(e);
	}
	return out;
}

Result<std::string> Htables::proc(std::string_view name, uint64_t jiffies, uint32_t hz) const
{
	auto e = entries(name);
	if (!e)
		return e.error();
	return hashlimit_proc_text(*e, find(name)->def, jiffies, hz);
}

Result<uint32_t> Htables::gc(int64_t now_ms, uint64_t jiffies)
{
	std::set<uint32_t> due, live;
	for (auto &[name, h] : tables_) {
		live.insert(h.id);
		if (now_ms - h.last_gc_ms < static_cast<int64_t>(h.def.cfg.gc_interval))
			continue;
		h.last_gc_ms = now_ms;
		due.insert(h.id);
	}
	if (due.empty())
		return 0u;
	uint32_t gone = 0;
	for (const maps::HashlimitKey &k : map_keys<maps::HashlimitKey>(map_.get())) {
		if (!live.count(k.table)) { // a stray of a table gone (see prepare())
			bpf_map_delete_elem(map_.get(), &k);
			continue;
		}
		if (!due.count(k.table))
			continue;
		// Read under the entry's lock; one refreshed since is kept (the kernel's gc
		// holds the table's lock, so no packet refreshes an entry while it looks).
		maps::HashlimitValue v{};
		if (bpf_map_lookup_elem_flags(map_.get(), &k, &v, BPF_F_LOCK) != 0 ||
		    !ir::hashlimit::expired(ir::hashlimit::Entry{v.expires, v.prev, {}}, jiffies))
			continue;
		if (bpf_map_delete_elem(map_.get(), &k) == 0) {
			__atomic_fetch_sub(&mem_[k.table], 1, __ATOMIC_SEQ_CST);
			gone++;
		}
	}
	return gone;
}

} // namespace bpfilter::loader
