// The service's view of the data plane: something that runs a table on packets and counts.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "ir/ir.hpp"

namespace bpfilter::service
{

// Builds a table's IR again from what the caller keeps of it (the stored blob), for a data
// plane that needs the IR after replace() returned: holding it for the table's whole life
// would double the helper's memory at 100k rules (Documentation/design.md, "Memory").
using IrSource = std::function<Result<ir::Table>()>;

// One network namespace's packet filter. The loader implements it with XDP programs;
// unit tests of the sockopt service use an in-memory one.
class Dataplane
{
public:
	virtual ~Dataplane() = default;

	// Refuse tables this data plane cannot run with their meaning intact (EOPNOTSUPP,
	// and a message saying which rule or chain and why). Nothing changes.
	virtual Status check(const ir::Table &table) const = 0;

	// Translate, load and attach `table` in place of the current one, atomically: every
	// packet is judged by the old table or the new one. On success returns the old
	// table's final counters, one per old rule (empty when there was none), read once no
	// packet can still reach the old program. On failure nothing changed.
	// The table is taken by value: at 100k rules a copy is tens of MiB of the helper's peak.
	// `source` gives the same table again (before this call's changes to it) for as long
	// as it is installed.
	virtual Result<std::vector<ir::Counter>> replace(ir::Table table, IrSource source) = 0;

	// What the installed table has counted so far, one per rule, summed over CPUs.
	virtual Result<std::vector<ir::Counter>> counters() const = 0;

	// IPT_SO_SET_ADD_COUNTERS: adds to the installed table's counters, one per rule, from
	// then on part of what counters() and replace() return. A data plane that keeps them
	// where a restarted helper finds them does; EOPNOTSUPP (the default): the caller
	// keeps them itself.
	virtual Status add_counters(const std::vector<ir::Counter> & /*add*/)
	{
		return make_error(EOPNOTSUPP, "the data plane keeps no added counters");
	}

	// -m recent's list `name`, as /proc/net/xt_recent/NAME reads, and one write to that
	// file ("+ADDR", "-ADDR", "/"). ENOENT: no rule names such a list.
	virtual Result<std::string> recent_show(std::string_view name) const
	{
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	}
	virtual Status recent_write(std::string_view name, std::string_view /*input*/)
	{
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	}
};

} // namespace bpfilter::service
