// One network namespace's iptables state, answering the six IPT_SO_* sockopts as ip_tables would.
//
// The service owns the stored filter table (what GET_ENTRIES answers from). The counts
// IPT_SO_SET_ADD_COUNTERS adds go to the data plane, which keeps them beside what its
// programs count (never in the entries they update) so that they survive a helper restart;
// a data plane that keeps none leaves them here, summed with its counts when read.
#include "service/table_service.hpp"

#include "bpfilter/msg.h"

#include <algorithm>
#include <string>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "common/log.hpp"

namespace bpfilter::service
{

struct TableService::State {
	bool installed = false; // init() succeeded: the filter table exists
	// As ip_tables keeps it, compressed; shared with the data plane's source of its IR
	// (ir_source()).
	std::shared_ptr<const abi::PackedTable> table = std::make_shared<abi::PackedTable>();
	std::vector<ir::Counter> added; // IPT_SO_SET_ADD_COUNTERS sums, one per entry
};

namespace
{

Reply fail(const Error &err, std::string_view what)
{
	log::warn(std::string(what) + ": " + err.message + " (" + std::to_string(err.errnum) + ")");
	return Reply{-err.errnum, {}};
}

Reply fail(int errnum)
{
	return Reply{-errnum, {}};
}

// Dataplane counters plus the ADD_COUNTERS sums, one per entry of the stored table.
Result<std::vector<ir::Counter>> current_counters(const Dataplane &dp,
						  const std::vector<ir::Counter> &added)
{
	auto counted = dp.counters();
	if (!counted.ok())
		return counted.error();
	if (counted->size() != added.size())
		return make_error(EIO, "the data plane has " + std::to_string(counted->size()) +
					       " counters for a table of " +
					       std::to_string(added.size()) + " entries");
	std::vector<ir::Counter> sum = std::move(*counted);
	for (size_t k = 0; k < sum.size(); k++) {
		sum[k].packets += added[k].packets;
		sum[k].bytes += added[k].bytes;
	}
	return sum;
}

// The IR of a stored table, built again when the data plane asks: it keeps no IR of its own.
IrSource ir_source(std::shared_ptr<const abi::PackedTable> table)
{
	return [table = std::move(table)]() -> Result<ir::Table> {
		auto stored = abi::unpack(*table);
		if (!stored)
			return stored.error();
		return abi::to_ir(*stored);
	};
}

// A table's entries packed once its IR is built, before the programs are compiled from it:
// at 100k rules the helper then never holds the entries, the IR and the classifier's
// sets at once.
Result<std::shared_ptr<const abi::PackedTable>> packed(abi::StoredTable table)
{
	auto p = abi::pack(std::move(table));
	if (!p)
		return p.error();
	return std::make_shared<const abi::PackedTable>(std::move(*p));
}

// The name a get passes in its first bytes, cut at len - 1 as the kernel does.
std::string name_in(std::span<const uint8_t> optval, size_t len)
{
	return std::string(abi::field_name(optval, 0, len - 1));
}

} // namespace

TableService::TableService(std::unique_ptr<Dataplane> dataplane)
    : dataplane_(std::move(dataplane)), state_(std::make_shared<State>())
{
}

Status TableService::init()
{
	abi::StoredTable initial = abi::initial_filter_table();
	auto ir = abi::to_ir(initial);
	if (!ir.ok())
		return ir.error();
	auto table = packed(std::move(initial));
	if (!table)
		return table.error();
	BF_TRY(dataplane_->check(*ir));
	auto old = dataplane_->replace(std::move(*ir), ir_source(*table));
	if (!old.ok())
		return old.error();
	state_->added.assign((*table)->meta.offsets.size(), ir::Counter{});
	state_->table = std::move(*table);
	state_->installed = true;
	return {};
}

Reply TableService::setsockopt(uint32_t optname, std::vector<uint8_t> &&optval)
{
	if (optname == IPT_SO_SET_REPLACE)
		return set_replace(std::move(optval));
	return setsockopt(optname, std::span<const uint8_t>(optval));
}

Reply TableService::set_replace(std::vector<uint8_t> &&optval)
{
	State &st = *state_;
	auto repl = abi::parse_replace(std::move(optval));
	if (!repl.ok())
		return fail(repl.error(), "IPT_SO_SET_REPLACE refused");
	if (!st.installed)
		return fail(make_error(ENOENT, "no table \"" + repl->table.name + "\""),
			    "IPT_SO_SET_REPLACE refused");
	if (auto s = abi::check_replace(*repl, st.table->meta); !s.ok()) {
		// EAGAIN is the ordinary answer to a concurrent update: iptables retries.
		if (s.error().errnum == EAGAIN)
			return fail(EAGAIN);
		return fail(s.error(), "IPT_SO_SET_REPLACE refused");
	}
	auto ir = abi::to_ir(repl->table);
	if (!ir.ok())
		return fail(ir.error(), "IPT_SO_SET_REPLACE refused");
	auto table = packed(std::move(repl->table));
	if (!table)
		return fail(table.error(), "IPT_SO_SET_REPLACE failed");
	if (auto s = dataplane_->check(*ir); !s.ok())
		return fail(s.error(), "IPT_SO_SET_REPLACE refused by the data plane");
	auto old = dataplane_->replace(std::move(*ir), ir_source(*table));
	if (!old.ok())
		return fail(old.error(), "IPT_SO_SET_REPLACE failed to install");
	// get_old_counters(): the old table's final counts, ADD_COUNTERS included.
	std::vector<ir::Counter> counters = std::move(*old);
	counters.resize(repl->num_counters);
	for (size_t k = 0; k < counters.size() && k < st.added.size(); k++) {
		counters[k].packets += st.added[k].packets;
		counters[k].bytes += st.added[k].bytes;
	}
	st.table = std::move(*table);
	st.added.assign(st.table->meta.offsets.size(), ir::Counter{});
	return Reply{0, abi::counters_to_user(counters)};
}

Reply TableService::setsockopt(uint32_t optname, std::span<const uint8_t> optval)
{
	State &st = *state_;
	switch (optname) {
	case IPT_SO_SET_REPLACE:
		return set_replace(std::vector<uint8_t>(optval.begin(), optval.end()));
	case IPT_SO_SET_ADD_COUNTERS: {
		auto info = abi::parse_counters(optval);
		if (!info.ok())
			return fail(info.error(), "IPT_SO_SET_ADD_COUNTERS refused");
		if (!st.installed || info->name != st.table->meta.name)
			return fail(make_error(ENOENT, "no table \"" + info->name + "\""),
				    "IPT_SO_SET_ADD_COUNTERS refused");
		if (info->counters.size() != st.table->meta.offsets.size())
			return fail(
				make_error(EINVAL,
					   std::to_string(info->counters.size()) +
						   " counters for a table of " +
						   std::to_string(st.table->meta.offsets.size()) +
						   " entries"),
				"IPT_SO_SET_ADD_COUNTERS refused");
		// Kept with the table's own counts where the data plane can (they then
		// survive a helper restart), else here.
		Status kept = dataplane_->add_counters(info->counters);
		if (kept)
			return Reply{0, {}};
		if (kept.error().errnum != EOPNOTSUPP)
			return fail(kept.error(), "IPT_SO_SET_ADD_COUNTERS failed");
		for (size_t k = 0; k < st.added.size(); k++) {
			st.added[k].packets += info->counters[k].packets;
			st.added[k].bytes += info->counters[k].bytes;
		}
		return Reply{0, {}};
	}
	case BPFILTER_SO_SET_RECENT: { // the front door's /proc/net/xt_recent/NAME write
		const auto nul = std::find(optval.begin(), optval.end(), uint8_t{0});
		if (nul == optval.end())
			return fail(EINVAL);
		const std::string_view name(reinterpret_cast<const char *>(optval.data()),
					    static_cast<size_t>(nul - optval.begin()));
		const std::string_view input(reinterpret_cast<const char *>(&*nul) + 1,
					     static_cast<size_t>(optval.end() - nul - 1));
		if (auto st = dataplane_->recent_write(name, input); !st)
			return fail(st.error(), "xt_recent/" + std::string(name));
		return Reply{0, {}};
	}
	default:
		// Outside the range ip_tables registers (set 64..65, get 64..67) no handler
		// exists and nf_sockopt answers ENOPROTOOPT; inside it, every optname is
		// handled above.
		return fail(ENOPROTOOPT);
	}
}

Reply TableService::getsockopt(uint32_t optname, uint32_t optlen, std::span<const uint8_t> optval)
{
	State &st = *state_;
	switch (optname) {
	case IPT_SO_GET_INFO: {
		if (optlen != abi::getinfo_size)
			return fail(EINVAL);
		if (optval.size() < abi::table_name_len)
			return fail(EFAULT);
		const std::string name = name_in(optval, abi::table_name_len);
		if (!st.installed || name != st.table->meta.name)
			return fail(ENOENT);
		return Reply{0, abi::getinfo_reply(*st.table)};
	}
	case IPT_SO_GET_ENTRIES: {
		if (optlen < abi::get_entries_size)
			return fail(EINVAL);
		if (optval.size() < abi::get_entries_size)
			return fail(EFAULT);
		const uint32_t size = abi::load<uint32_t>(optval, abi::get_entries_size_field);
		if (optlen != static_cast<uint64_t>(abi::get_entries_size) + size)
			return fail(EINVAL);
		const std::string name = name_in(optval, abi::table_name_len);
		if (!st.installed || name != st.table->meta.name)
			return fail(ENOENT);
		if (size != st.table->size)
			return fail(EAGAIN);
		auto counters = current_counters(*dataplane_, st.added);
		if (!counters.ok())
			return fail(counters.error(), "IPT_SO_GET_ENTRIES: reading counters");
		auto table = abi::unpack(*st.table);
		if (!table.ok())
			return fail(table.error(), "IPT_SO_GET_ENTRIES");
		// The kernel writes only entrytable[]; the header stays as the caller gave it.
		Reply reply{0, std::vector<uint8_t>(abi::get_entries_size + size)};
		std::copy(optval.begin(), optval.begin() + abi::get_entries_size,
			  reply.data.begin());
		abi::entries_to_user(*table, *counters,
				     std::span<uint8_t>(reply.data).subspan(abi::get_entries_size));
		return reply;
	}
	case IPT_SO_GET_REVISION_MATCH:
	case IPT_SO_GET_REVISION_TARGET: {
		if (optlen != abi::get_revision_size)
			return fail(EINVAL);
		if (optval.size() < abi::get_revision_size)
			return fail(EFAULT);
		const std::string name = name_in(optval, abi::ext_name_len);
		const auto kind = optname == IPT_SO_GET_REVISION_TARGET ? abi::ExtKind::Target
									: abi::ExtKind::Match;
		const int status = abi::find_revision(kind, name, optval[abi::ext_name_len]);
		if (status < 0)
			return Reply{status, {}};
		// The kernel writes nothing back and *optlen stays as it was.
		return Reply{status, std::vector<uint8_t>(optval.begin(),
							  optval.begin() + abi::get_revision_size)};
	}
	case BPFILTER_SO_GET_RECENT: { // the front door's /proc/net/xt_recent/NAME read
		const auto nul = std::find(optval.begin(), optval.end(), uint8_t{0});
		if (nul == optval.end())
			return fail(EINVAL);
		const std::string_view name(reinterpret_cast<const char *>(optval.data()),
					    static_cast<size_t>(nul - optval.begin()));
		auto text = dataplane_->recent_show(name);
		if (!text)
			return fail(text.error().errnum);
		if (text->size() > optlen)
			return fail(ENOSPC);
		return Reply{0, std::vector<uint8_t>(text->begin(), text->end())};
	}
	default:
		// Outside the range ip_tables registers (set 64..65, get 64..67) no handler
		// exists and nf_sockopt answers ENOPROTOOPT; inside it, every optname is
		// handled above.
		return fail(ENOPROTOOPT);
	}
}

} // namespace bpfilter::service
