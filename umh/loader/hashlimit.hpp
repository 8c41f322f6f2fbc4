// -m hashlimit's htables of one network namespace, as the data plane keeps them: every htable's
// entries in one hash map (made with the BTF that declares their bpf_spin_lock), each htable's
// count of entries, the number each name has, and their garbage collection (htable_gc()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "ir/hashlimit.hpp"
#include "ir/ir.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

// totalram_pages() << PAGE_SHIFT, as htable_create() sizes a table without a size.
uint64_t total_ram();

// An entry of an htable: key and entry.
struct HashlimitEntry {
	ir::hashlimit::Key key;
	ir::hashlimit::Entry entry;
};

// /proc/net/ipt_hashlimit/NAME as dl_seq_show() writes it at `jiffies`: a line per entry,
// "SECONDS SRC:SPORT->DST:DPORT CREDIT CREDIT_CAP COST", each entry recalculated first
// (rateinfo_recalc() with the htable's mode and revision) on a copy.
std::string hashlimit_proc_text(const std::vector<HashlimitEntry> &entries,
				const ir::HashlimitTable &t, uint64_t jiffies, uint32_t hz);

// The namespace's htables (MapSlot::Hashlimit and HashlimitCounts): an htable lives while
// some rule of the table in force names it, so that a replace that keeps a name keeps its
// entries and its configuration (the first rule that named it made it), as
// htable_find_get() does.
class Htables
{
public:
	static Result<std::unique_ptr<Htables>> create();
	~Htables();
	Htables(const Htables &) = delete;
	Htables &operator=(const Htables &) = delete;

	// htable_find_get() or htable_create() for each of a table's htables (in place): a
	// name the namespace has keeps its configuration, revision and entries; a new one gets
	// a free number, empty (ENOMEM past maps::hashlimit_max_tables). The names made are
	// added to `made`. The table's numbers and maxes for the code generator.
	Result<std::vector<codegen::Options::HashlimitRef>>
	prepare(std::vector<ir::HashlimitTable> &hts, std::vector<std::string> &made);
	// htable_put(): the htables not in `kept` (the table in force's) go, with their entries.
	void retain(const std::vector<ir::HashlimitTable> &kept);

	int map_fd() const { return map_.get(); }
	int counts_fd() const { return counts_.get(); }

	// The names of the htables in force, and one's configuration (null: no such name).
	std::vector<std::string> names() const;
	const ir::HashlimitTable *def(std::string_view name) const;
	// One htable's entries (ENOENT: no such name), in the map's order, and its count.
	Result<std::vector<HashlimitEntry>> entries(std::string_view name) const;
	// Several htables' entries in one walk of the map, by the position of their name.
	Result<std::vector<std::vector<HashlimitEntry>>>
	entries(const std::vector<std::string> &names) const;
	uint64_t count(std::string_view name) const;
	// /proc/net/ipt_hashlimit/NAME's text at `jiffies` (ENOENT: no such name).
	Result<std::string> proc(std::string_view name, uint64_t jiffies, uint32_t hz) const;
	// htable_selective_cleanup(ht, false) of every htable whose gcinterval has passed since
	// its last at `now_ms`, in one walk of the map: the expired entries go. Returns how many.
	Result<uint32_t> gc(int64_t now_ms, uint64_t jiffies);

private:
	struct Htable {
		uint32_t id = 0;
		uint32_t max = 0; // hashlimit::table_max() on this machine
		ir::HashlimitTable def;
		int64_t last_gc_ms = 0;
	};
	Htables(Fd map, Fd counts, uint64_t *mem);
	// Removes the entries of these numbers (and of none in force, when `strays`).
	void purge(const std::set<uint32_t> &ids, bool strays);
	const Htable *find(std::string_view name) const;

	Fd map_, counts_;
	uint64_t *mem_; // counts_, mapped: a u64 per number
	std::map<std::string, Htable, std::less<>> tables_;
};

} // namespace bpfilter::loader
