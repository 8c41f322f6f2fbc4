// -m recent's lists of one network namespace: the maps the programs share
// (MapSlot::RecentEntries, RecentHeads, RecentTmp), which list number each name has, and
// /proc/net/xt_recent/NAME's reads and writes on them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/codegen.hpp"
#include "codegen/maps.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

class RecentLists
{
public:
	static Result<std::unique_ptr<RecentLists>> create();
	~RecentLists();
	RecentLists(const RecentLists &) = delete;
	RecentLists &operator=(const RecentLists &) = delete;

	// recent_mt_check() for each list `table` names: a list that exists keeps its mask
	// and entries, and is flushed when a rule asks for a larger ring of stamps; a new
	// one gets the first rule's mask. The table's list numbers for the code generator.
	Result<std::vector<codegen::Options::RecentRef>> prepare(const ir::Table &table);
	// recent_mt_destroy() of the lists no rule of the table in force names (`lists`, its
	// ir::Table::recent_lists): their entries go.
	void retain(const std::vector<ir::RecentList> &lists);

	int entries_fd() const { return entries_.get(); }
	int heads_fd() const { return heads_.get(); }
	int tmp_fd() const { return tmp_.get(); }

	// The names of the lists in force.
	std::vector<std::string> names() const;
	// recent_seq_show() over the list, in the kernel's format (ENOENT: no such list). The
	// kernel walks its hash buckets; the lines here are in LRU order, oldest first.
	Result<std::string> show(std::string_view name) const;
	// recent_mt_proc_write(): "+ADDR", "-ADDR" or "/" (EINVAL otherwise, as the kernel).
	// IPv6 addresses, which an IPv4 table never matches, are refused (EAFNOSUPPORT).
	Status write(std::string_view name, std::string_view input, uint64_t jiffies);

private:
	struct List {
		uint32_t id = 0;
		uint32_t mask = 0;
		uint32_t nstamps_mask = 31;
	};
	static constexpr size_t heads_bytes =
		sizeof(codegen::maps::RecentHead) * codegen::maps::recent_max_lists;
	RecentLists(Fd entries, Fd heads, Fd tmp, codegen::maps::RecentHead *mem);
	Status flush(uint32_t id);
	void write_head(const List &l, bool reset_seq);

	Fd entries_, heads_, tmp_;
	codegen::maps::RecentHead *mem_; // heads_, mapped
	std::map<std::string, List, std::less<>> lists_;
};

} // namespace bpfilter::loader
