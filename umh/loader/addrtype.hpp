// What -m addrtype looks addresses up in: the routes inet_dev_addr_type() would find,
// resolved from the namespace's routing tables.
#pragma once

#include <functional>
#include <vector>

#include "ir/ir.hpp"
#include "loader/rtnl.hpp"

namespace bpfilter::loader
{

// inet_dev_addr_type() looks in RT_TABLE_LOCAL with fib_table_lookup(). Until the namespace
// has had a policy routing rule (fib_has_custom_rules), the local table is an alias of
// main's trie (fib_new_table()), so main's routes are found too, a local one first where
// both have the prefix (fib_find_alias() orders a leaf's routes by table, then TOS, then
// priority). For each prefix the first route the lookup would take (TOS 0, not dead, a
// usable next hop) decides: a route whose lookup fails (blackhole, unreachable, prohibit,
// throw, nat, xresolve) gives UNICAST; none decides: the next shorter prefix does.
// Only what can change an answer is kept: a route that gives UNICAST matters only under a
// shorter one that gives something else (no route at all is UNICAST too).
// `merged`: main's routes count; `ignore_linkdown(ifindex)`: ip_ignore_linkdown().
std::vector<ir::AddrtypeRoute>
resolve_addrtype_routes(const std::vector<rtnl::Route> &routes,
			const std::vector<rtnl::Link> &links, bool merged,
			const std::function<bool(int)> &ignore_linkdown);

} // namespace bpfilter::loader
