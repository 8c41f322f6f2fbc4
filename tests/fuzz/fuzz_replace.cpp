// Fuzz target: IPT_SO_SET_REPLACE's bytes through the parser, the validator and the translation
// to IR, with a round-trip property.
//
// The input is an optval as iptables passes it (struct ipt_replace and the entries). When
// parse_replace accepts it, the table is read back as GET_INFO and GET_ENTRIES answer it (with
// counters in every entry, as iptables-save reads them) and submitted again, as
// iptables-restore does with what it read. That second submission must be accepted, keep the
// hooks and entry offsets, read back byte for byte the same (counters aside: the kernel zeroes
// what a replace carries and GET_ENTRIES writes its own), and translate to the same IR (or
// be refused with the same errno). When the table is the filter table, the same round trip
// runs through the sockopt service (TableService) over the in-memory data plane of the unit
// tests: accepted, GET_INFO and GET_ENTRIES answered, re-submitted, read back identical.
#include <algorithm>
#include <cstring>
#include <memory>

#include "abi/table.hpp"
#include "fuzz_common.hpp"
#include "service/table_service.hpp"
#include "service_dataplane_double.hpp"

namespace bpfilter::fuzz
{
namespace
{

// A table as it survives GET_ENTRIES: what the kernel does not copy back (the bytes past an
// extension's usersize) cleared. -m limit's credit_cap and cost lie past it (usersize is
// offsetof(prev)): a caller that sets cost keeps its own, and the table read back has 0
// there, which limit_mt_check() then computes afresh. Netfilter's round trip changes them
// the same way, so they are not part of the property.
ir::Table as_read_back(ir::Table t)
{
	for (ir::Rule &r : t.rules)
		for (ir::Match &m : r.matches)
			if (auto *l = std::get_if<ir::LimitMatch>(&m))
				l->credit_cap = l->cost = 0;
	return t;
}

using Bytes = std::vector<uint8_t>;

// Counters a table might have counted: distinct per entry, so a misplaced one shows.
std::vector<ir::Counter> some_counters(size_t n)
{
	std::vector<ir::Counter> c(n);
	for (size_t k = 0; k < n; k++)
		c[k] = {0x0101010101010101ull * (k + 1), 0x1000 + k};
	return c;
}

// An ipt_replace as iptables builds it from GET_INFO's answer and the entries it read.
Bytes replace_from(std::span<const uint8_t> info, std::span<const uint8_t> entries,
		   uint32_t num_counters)
{
	Bytes b(abi::replace_size + entries.size(), 0);
	std::span<uint8_t> s = b;
	std::memcpy(b.data(), info.data(), abi::table_name_len);
	abi::store<uint32_t>(s, abi::replace_valid_hooks,
			     abi::load<uint32_t>(info, abi::getinfo_valid_hooks));
	abi::store<uint32_t>(s, abi::replace_num_entries,
			     abi::load<uint32_t>(info, abi::getinfo_num_entries));
	abi::store<uint32_t>(s, abi::replace_size_field,
			     abi::load<uint32_t>(info, abi::getinfo_size_field));
	for (uint32_t h = 0; h < abi::num_hooks; h++) {
		abi::store<uint32_t>(s, abi::replace_hook_entry + 4 * h,
				     abi::load<uint32_t>(info, abi::getinfo_hook_entry + 4 * h));
		abi::store<uint32_t>(s, abi::replace_underflow + 4 * h,
				     abi::load<uint32_t>(info, abi::getinfo_underflow + 4 * h));
	}
	abi::store<uint32_t>(s, abi::replace_num_counters, num_counters);
	std::copy(entries.begin(), entries.end(), b.begin() + abi::replace_size);
	return b;
}

// Where GET_ENTRIES puts entry k's counters, and that it put them there.
void check_counters_placed(const abi::StoredTable &t, std::span<const uint8_t> entries,
			   const std::vector<ir::Counter> &counters)
{
	for (size_t k = 0; k < t.offsets.size(); k++) {
		const uint32_t at = t.offsets[k] + abi::entry_counters;
		require(abi::load<uint64_t>(entries, at) == counters[k].packets &&
				abi::load<uint64_t>(entries, at + 8) == counters[k].bytes,
			"GET_ENTRIES: entry " + std::to_string(k) + "'s counters misplaced");
	}
}

// The round trip on the ABI functions themselves.
void abi_round_trip(const abi::Replace &first)
{
	const abi::StoredTable &t1 = first.table;
	require(t1.offsets.size() == 0 || t1.offsets.back() < t1.entries.size(),
		"an entry offset lies outside the table");
	const Bytes info = abi::getinfo_reply(t1);
	require(info.size() == abi::getinfo_size, "GET_INFO reply is not 84 bytes");
	require(abi::load<uint32_t>(info, abi::getinfo_size_field) == t1.entries.size() &&
			abi::load<uint32_t>(info, abi::getinfo_num_entries) == t1.offsets.size(),
		"GET_INFO: size or num_entries differ from the table");
	const auto counters = some_counters(t1.offsets.size());
	const Bytes counted = abi::entries_to_user(t1, counters);
	require(counted.size() == t1.entries.size(), "GET_ENTRIES: not the table's size");
	check_counters_placed(t1, counted, counters);
	const Bytes zero = abi::entries_to_user(t1, std::vector<ir::Counter>(t1.offsets.size()));

	// What iptables-restore sends after reading the table: accepted, the same table.
	auto second = abi::parse_replace(replace_from(info, counted, first.num_counters));
	if (!second.ok())
		finding("the table read back was refused: " + second.error().message + " (" +
			std::to_string(second.error().errnum) + ")");
	const abi::StoredTable &t2 = second->table;
	require(t2.name == t1.name && t2.valid_hooks == t1.valid_hooks &&
			t2.hook_entry == t1.hook_entry && t2.underflow == t1.underflow &&
			t2.offsets == t1.offsets,
		"the table read back has other hooks or entry offsets");
	require_same(abi::getinfo_reply(t2), info, "GET_INFO after the round trip");
	require_same(abi::entries_to_user(t2, std::vector<ir::Counter>(t2.offsets.size())), zero,
		     "GET_ENTRIES after the round trip");

	// The translation sees the same rules both times.
	auto ir1 = abi::to_ir(t1);
	auto ir2 = abi::to_ir(t2);
	require(ir1.ok() == ir2.ok(), "to_ir accepts one side of the round trip only");
	if (ir1.ok())
		require(as_read_back(*ir1) == as_read_back(*ir2),
			"to_ir: the table read back translates to another IR");
	else
		require(ir1.error().errnum == ir2.error().errnum,
			"to_ir: the round trip changes the errno");

	// A table read back is what the kernel stores: one more round trip is the identity.
	auto third = abi::parse_replace(replace_from(
		abi::getinfo_reply(t2), abi::entries_to_user(t2, counters), first.num_counters));
	require(third.ok() && third->table == t2, "a second round trip changes the stored table");
}

using service::Reply;
using service::TableService;

Reply get_info(TableService &svc)
{
	Bytes in(abi::getinfo_size, 0);
	std::memcpy(in.data(), abi::filter_name.data(), abi::filter_name.size());
	return svc.getsockopt(IPT_SO_GET_INFO, abi::getinfo_size, in);
}

Reply get_entries(TableService &svc, uint32_t size)
{
	Bytes in(abi::get_entries_size, 0);
	std::memcpy(in.data(), abi::filter_name.data(), abi::filter_name.size());
	abi::store<uint32_t>(in, abi::get_entries_size_field, size);
	return svc.getsockopt(IPT_SO_GET_ENTRIES, abi::get_entries_size + size, in);
}

// The same through the sockopt service, as iptables talks to it.
void service_round_trip(std::span<const uint8_t> optval)
{
	auto log = std::make_shared<test::DataplaneLog>();
	TableService svc(std::make_unique<test::RecordingDataplane>(log));
	require(svc.init().ok(), "the service refused its initial table");
	// iptables sends num_counters = the entries GET_INFO announced: 4 in a new table.
	Bytes first(optval.begin(), optval.end());
	abi::store<uint32_t>(first, abi::replace_num_counters, 4);
	const Reply r1 = svc.setsockopt(IPT_SO_SET_REPLACE, first);
	require(r1.status <= 0, "SET_REPLACE answered a positive status");
	if (r1.status != 0) {
		require(r1.data.empty(), "a refused SET_REPLACE returned counters");
		require(log->installed.size() == 1, "a refused SET_REPLACE reached the data plane");
		return;
	}
	require(r1.data.size() == 4 * abi::counters_size,
		"SET_REPLACE returned other than the old table's 4 counters");
	require(log->installed.size() == 2, "an accepted table was not installed once");

	const Reply info = get_info(svc);
	require(info.status == 0 && info.data.size() == abi::getinfo_size, "GET_INFO failed");
	const uint32_t size = abi::load<uint32_t>(info.data, abi::getinfo_size_field);
	const uint32_t num = abi::load<uint32_t>(info.data, abi::getinfo_num_entries);
	require(get_entries(svc, size + 8).status == -EAGAIN,
		"GET_ENTRIES with another size was not EAGAIN");
	const Reply entries = get_entries(svc, size);
	require(entries.status == 0 && entries.data.size() == abi::get_entries_size + size,
		"GET_ENTRIES failed or answered another size");
	const std::span<const uint8_t> blob = std::span<const uint8_t>(entries.data).subspan(40);

	const Reply r2 = svc.setsockopt(IPT_SO_SET_REPLACE, replace_from(info.data, blob, num));
	if (r2.status != 0)
		finding("the service refused the table it read back: " + std::to_string(r2.status));
	require(r2.data.size() == num * abi::counters_size,
		"the second SET_REPLACE returned other than one counter per entry");
	require(log->installed.size() == 3 &&
			as_read_back(log->installed[1]) == as_read_back(log->installed[2]),
		"the table read back was installed as another IR");
	require_same(get_info(svc).data, info.data, "service GET_INFO after the round trip");
	require_same(get_entries(svc, size).data, entries.data,
		     "service GET_ENTRIES after the round trip");
}

} // namespace
} // namespace bpfilter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	using namespace bpfilter;
	const std::span<const uint8_t> optval(data, size);
	auto repl = abi::parse_replace(optval);
	if (!repl.ok()) {
		fuzz::require(repl.error().errnum > 0, "parse_replace: an error without errno");
		return 0;
	}
	fuzz::abi_round_trip(*repl);
	if (repl->table.name == abi::filter_name &&
	    repl->table.valid_hooks == abi::filter_valid_hooks)
		fuzz::service_round_trip(optval);
	return 0;
}
