// -m recent's lists of one namespace, kept by the helper across tables (as xt_recent keeps
// a list while some rule names it).
#include "loader/recent.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "codegen/maps.hpp"
#include "ir/recent.hpp"
#include "loader/map_btf.hpp"
#include "loader/map_keys.hpp"

namespace bpfilter::loader
{

namespace maps = codegen::maps;

namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + std::strerror(err));
}

Result<Fd> make_map(bpf_map_type type, const char *name, uint32_t key, uint32_t value, uint32_t max,
		    uint32_t flags, const MapBtf *btf = nullptr)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
	if (btf)
		btf->apply(opts);
	const int fd = bpf_map_create(type, name, key, value, max, &opts);
	if (fd < 0)
		return sys_error(-fd, std::string("loader: creating map ") + name);
	return Fd(fd);
}

} // namespace

RecentLists::RecentLists(Fd entries, Fd heads, Fd tmp, maps::RecentHead *mem)
    : entries_(std::move(entries)), heads_(std::move(heads)), tmp_(std::move(tmp)), mem_(mem)
{
}

RecentLists::~RecentLists()
{
	munmap(mem_, heads_bytes);
}

Result<std::unique_ptr<RecentLists>> RecentLists::create()
{
	auto btf = recent_entries_map_btf();
	if (!btf)
		return btf.error();
	auto entries = make_map(BPF_MAP_TYPE_HASH, "bpfilter_recent", sizeof(maps::RecentKey),
				sizeof(maps::RecentEntry), maps::recent_max_entries,
				BPF_F_NO_PREALLOC, &*btf);
	if (!entries)
		return entries.error();
	auto heads = make_map(BPF_MAP_TYPE_ARRAY, "bpfilter_rheads", sizeof(uint32_t), heads_bytes,
			      1, BPF_F_MMAPABLE);
	if (!heads)
		return heads.error();
	// Mapped, so that the helper writes one list's head without racing the data
	// plane's clock of the others.
	void *mem = mmap(nullptr, heads_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, heads->get(), 0);
	if (mem == MAP_FAILED)
		return sys_error(errno, "loader: mapping -m recent's list heads");
	auto tmp = make_map(BPF_MAP_TYPE_PERCPU_ARRAY, "bpfilter_rtmp", sizeof(uint32_t),
			    sizeof(maps::RecentEntry), 1, 0);
	if (!tmp)
		return tmp.error();
	return std::unique_ptr<RecentLists>(new RecentLists(std::move(*entries), std::move(*heads),
							    std::move(*tmp),
							    static_cast<maps::RecentHead *>(mem)));
}

void RecentLists::write_head(const List &l, bool reset_seq)
{
	maps::RecentHead &h = mem_[l.id];
	if (reset_seq)
		__atomic_store_n(&h.seq, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&h.mask, l.mask, __ATOMIC_SEQ_CST);
	__atomic_store_n(&h.nstamps_mask, l.nstamps_mask, __ATOMIC_SEQ_CST);
}

Status RecentLists::flush(uint32_t id)
{
	for (const maps::RecentKey &k : map_keys<maps::RecentKey>(entries_.get()))
		if (k.list == id)
			bpf_map_delete_elem(entries_.get(), &k);
	return {};
}

Result<std::vector<codegen::Options::RecentRef>> RecentLists::prepare(const ir::Table &table)
{
	std::vector<codegen::Options::RecentRef> refs;
	std::set<uint32_t> used;
	for (const auto &[name, l] : lists_)
		used.insert(l.id);
	for (const ir::RecentList &want : table.recent_lists) {
		auto it = lists_.find(want.name);
		if (it == lists_.end()) {
			uint32_t id = 0;
			while (used.count(id))
				id++;
			if (id >= maps::recent_max_lists)
				return make_error(ENOMEM,
						  "-m recent: more than " +
							  std::to_string(maps::recent_max_lists) +
							  " lists in one namespace");
			used.insert(id);
			List l{id, want.mask, want.nstamps_mask};
			BF_TRY(flush(id));
			write_head(l, true);
			it = lists_.emplace(want.name, l).first;
		} else if (want.nstamps_mask > it->second.nstamps_mask) {
			// "if (nstamp_mask > t->nstamps_max_mask) recent_table_flush(t)"
			it->second.nstamps_mask = want.nstamps_mask;
			BF_TRY(flush(it->second.id));
			write_head(it->second, false);
		}
		refs.push_back({it->second.id, it->second.nstamps_mask});
	}
	return refs;
}

void RecentLists::retain(const std::vector<ir::RecentList> &lists)
{
	for (auto it = lists_.begin(); it != lists_.end();) {
		const bool named =
			std::any_of(lists.begin(), lists.end(),
				    [&](const ir::RecentList &l) { return l.name == it->first; });
		if (named) {
			++it;
			continue;
		}
		(void)flush(it->second.id);
		it = lists_.erase(it);
	}
}

std::vector<std::string> RecentLists::names() const
{
	std::vector<std::string> out;
	for (const auto &[name, l] : lists_)
		out.push_back(name);
	return out;
}

Result<std::string> RecentLists::show(std::string_view name) const
{
	auto it = lists_.find(name);
	if (it == lists_.end())
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	std::vector<std::pair<uint32_t, maps::RecentEntry>> found;
	auto value = std::make_unique<maps::RecentEntry>();
	for (const maps::RecentKey &k : map_keys<maps::RecentKey>(entries_.get())) {
		if (k.list != it->second.id)
			continue;
		if (bpf_map_lookup_elem(entries_.get(), &k, value.get()) == 0)
			found.emplace_back(k.addr, *value);
	}
	std::sort(found.begin(), found.end(),
		  [](const auto &a, const auto &b) { return a.second.seq < b.second.seq; });
	std::string out;
	for (const auto &[addr, v] : found) {
		ir::recent::Entry e;
		e.ttl = v.ttl;
		e.index = v.index;
		e.nstamps = v.nstamps;
		std::copy(std::begin(v.stamps), std::end(v.stamps), std::begin(e.stamps));
		out += ir::recent::proc_line(addr, e, it->second.nstamps_mask);
	}
	return out;
}

Status RecentLists::write(std::string_view name, std::string_view input, uint64_t jiffies)
{
	auto it = lists_.find(name);
	if (it == lists_.end())
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	const List &l = it->second;
	if (input.empty())
		return {};
	// sizeof("+b335:1d35:1e55:dead:c0de:1715:255.255.255.255"): the kernel reads no more.
	input = input.substr(0, 46);
	const char op = input[0];
	if (op == '/')
		return flush(l.id);
	if (op != '+' && op != '-')
		return make_error(EINVAL, "Need \"+ip\", \"-ip\" or \"/\"");
	std::string addr(input.substr(1));
	if (auto nl = addr.find('\n'); nl != std::string::npos) // in4_pton's delimiter
		addr.resize(nl);
	if (addr.find(':') != std::string::npos)
		return make_error(EAFNOSUPPORT, "bpfilter keeps IPv4 lists only");
	in_addr a{};
	if (inet_pton(AF_INET, addr.c_str(), &a) != 1)
		return make_error(EINVAL, "not an IPv4 address: " + addr);
	const maps::RecentKey key{l.id, a.s_addr};
	auto value = std::make_unique<maps::RecentEntry>();
	const bool exists = bpf_map_lookup_elem(entries_.get(), &key, value.get()) == 0;
	if (op == '-') {
		if (exists)
			bpf_map_delete_elem(entries_.get(), &key);
		return {};
	}
	const uint64_t seq = __atomic_add_fetch(&mem_[l.id].seq, 1, __ATOMIC_SEQ_CST);
	if (exists) { // recent_entry_update()
		value->index &= static_cast<uint8_t>(l.nstamps_mask);
		value->stamps[value->index++] = jiffies;
		if (value->index > value->nstamps)
			value->nstamps = value->index;
		value->seq = seq;
	} else { // recent_entry_init() with ttl 0
		std::vector<maps::RecentKey> mine;
		uint64_t oldest = UINT64_MAX;
		maps::RecentKey head{};
		for (const maps::RecentKey &k : map_keys<maps::RecentKey>(entries_.get())) {
			if (k.list != l.id)
				continue;
			mine.push_back(k);
			maps::RecentEntry v;
			if (bpf_map_lookup_elem(entries_.get(), &k, &v) == 0 && v.seq < oldest) {
				oldest = v.seq;
				head = k;
			}
		}
		if (mine.size() >= ir::recent::ip_list_tot)
			bpf_map_delete_elem(entries_.get(), &head);
		*value = maps::RecentEntry{};
		value->seq = seq;
		value->index = 1;
		value->nstamps = 1;
		value->stamps[0] = jiffies;
	}
	if (bpf_map_update_elem(entries_.get(), &key, value.get(), BPF_ANY) != 0)
		return sys_error(errno, "-m recent: writing an entry");
	return {};
}

} // namespace bpfilter::loader
