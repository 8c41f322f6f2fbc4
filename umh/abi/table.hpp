// The iptables ABI: an ipt_replace checked as ip_tables' translate_table does, the table as
// the kernel keeps it, and the bytes GET_INFO / GET_ENTRIES return for it.
//
// Data flows one way: optval bytes -> parse_replace (every check of do_replace and
// translate_table, same errno) -> StoredTable (the kernel's copy) -> to_ir (the IR codegen
// reads). The StoredTable is what GET_ENTRIES answers from, so the reply is the caller's
// own entries as ip_tables would hand them back.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "abi/layout.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"

namespace bpfilter::abi
{

// The filter table: the only one this helper serves (iptable_filter's FILTER_VALID_HOOKS).
inline constexpr std::string_view filter_name = "filter";
inline constexpr uint32_t filter_valid_hooks = (1u << 1) | (1u << 2) | (1u << 3);

// A table as ip_tables keeps it once translate_table accepted it: the caller's entries with
// counters zeroed and comefrom as mark_source_chains leaves it; hook_entry and underflow
// hold 0xFFFFFFFF for hooks the table does not serve.
struct StoredTable {
	std::string name;
	uint32_t valid_hooks = 0;
	std::array<uint32_t, num_hooks> hook_entry{};
	std::array<uint32_t, num_hooks> underflow{};
	std::vector<uint8_t> entries;  // entries.size() is the table's size
	std::vector<uint32_t> offsets; // byte offset of each entry; size() is num_entries
	bool operator==(const StoredTable &) const = default;
};

// A StoredTable kept compressed (zstd) while it is in force: only GET_ENTRIES and a program
// compiled later (the IR built again) read its entries, and at 100k rules they are 15 to 20
// MiB of ipt_entry headers that differ in a few bytes each (Documentation/design.md,
// "Memory").
struct PackedTable {
	StoredTable meta; // entries empty
	size_t size = 0;  // of the entries
	std::vector<uint8_t> packed;
};
// Consumes the table's entries (freed before it returns).
Result<PackedTable> pack(StoredTable table);
Result<StoredTable> unpack(const PackedTable &table);

// IPT_SO_SET_REPLACE's argument once validated.
struct Replace {
	StoredTable table;
	uint32_t num_counters = 0;
	uint64_t counters_ptr = 0; // the caller's ipt_replace.counters, for the log only
};

// do_replace up to and including translate_table: every length, offset, hook, loop and
// extension check, in the kernel's order and with its errno (EINVAL, ENOMEM, ELOOP, ENOENT,
// EPROTOTYPE). The message names the entry (index and offset) and the check that failed.
Result<Replace> parse_replace(std::span<const uint8_t> optval);
// The same, the entries made of the request's own bytes (moved to its front) rather than a
// copy: at 100k rules a copy is 15 to 20 MiB of the helper's peak.
Result<Replace> parse_replace(std::vector<uint8_t> &&optval);

// __do_replace's checks against the table in place: num_counters that cannot be allocated
// (ENOMEM), a table other than filter (ENOENT), valid_hooks that differ (EINVAL), and
// num_counters that is not the current number of entries (EAGAIN).
Status check_replace(const Replace &repl, const StoredTable &current);

// The IR of a stored table: rules in blob order, jumps as rule indices, -m comment left
// out. A verdict the data plane cannot honour (NF_QUEUE) is EOPNOTSUPP.
Result<ir::Table> to_ir(const StoredTable &table);

// iptable_filter's initial table (ipt_alloc_initial_table with ACCEPT policies for INPUT,
// FORWARD and OUTPUT, then translate_table), and the entry bytes it is built from.
std::vector<uint8_t> initial_filter_entries();
StoredTable initial_filter_table();

// struct ipt_getinfo as get_info fills it: 84 bytes (size: of the entries).
std::vector<uint8_t> getinfo_reply(const StoredTable &table);
std::vector<uint8_t> getinfo_reply(const PackedTable &table);
std::vector<uint8_t> getinfo_reply(const StoredTable &table, size_t size);

// The entries as copy_entries_to_user writes them: each entry's header, the counters given
// (one per entry), each match and target header with the extension's name, NUL and
// revision, the data up to the extension's size and zeroes up to XT_ALIGN. Bytes the
// kernel leaves untouched in the caller's buffer (the name field after its NUL, space
// between an ERROR target and the next entry) are zero.
std::vector<uint8_t> entries_to_user(const StoredTable &table,
				     std::span<const ir::Counter> counters);
// The same, written to `out` (entries.size() bytes).
void entries_to_user(const StoredTable &table, std::span<const ir::Counter> counters,
		     std::span<uint8_t> out);

// IPT_SO_SET_ADD_COUNTERS's argument once xt_copy_counters accepted it.
struct CountersInfo {
	std::string name;
	std::vector<ir::Counter> counters;
};
Result<CountersInfo> parse_counters(std::span<const uint8_t> optval);

// struct xt_counters[] as the kernel writes them to ipt_replace.counters.
std::vector<uint8_t> counters_to_user(std::span<const ir::Counter> counters);

} // namespace bpfilter::abi
