// -m hashlimit's htables as the data plane keeps them: one hash map per name, made with the
// BTF that declares its entries' bpf_spin_lock, and their garbage collection (htable_gc()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "ir/hashlimit.hpp"
#include "ir/ir.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

// totalram_pages() << PAGE_SHIFT, as htable_create() sizes a table without a size.
uint64_t total_ram();

// An htable's map (codegen::maps::HashlimitKey -> HashlimitValue), holding
// hashlimit::table_max(cfg, total_ram()) entries.
Result<Fd> create_hashlimit_map(const ir::HashlimitTable &t);

// htable_selective_cleanup(ht, false) at `jiffies`: removes the expired entries; returns how
// many went.
Result<uint32_t> hashlimit_gc(int map_fd, uint64_t jiffies);

// Every entry of an htable, for tests and for reading: key and entry.
struct HashlimitEntry {
	ir::hashlimit::Key key;
	ir::hashlimit::Entry entry;
};
Result<std::vector<HashlimitEntry>> hashlimit_entries(int map_fd);

// /proc/net/ipt_hashlimit/NAME as dl_seq_show() writes it at `jiffies`: a line per entry,
// "SECONDS SRC:SPORT->DST:DPORT CREDIT CREDIT_CAP COST", each entry recalculated first
// (rateinfo_recalc() with the htable's mode and revision) on a copy.
std::string hashlimit_proc_text(const std::vector<HashlimitEntry> &entries,
				const ir::HashlimitTable &t, uint64_t jiffies, uint32_t hz);

} // namespace bpfilter::loader
