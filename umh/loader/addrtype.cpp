// What -m addrtype looks addresses up in: the routes inet_dev_addr_type() would find.
#include "loader/addrtype.hpp"

#include <endian.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <map>

namespace bpfilter::loader
{

std::vector<ir::AddrtypeRoute>
resolve_addrtype_routes(const std::vector<rtnl::Route> &routes,
			const std::vector<rtnl::Link> &links, bool merged,
			const std::function<bool(int)> &ignore_linkdown)
{
	// Each prefix's routes as the lookup meets them: the local table's, then main's,
	// each in the kernel's order (the dump's).
	std::map<std::pair<uint32_t, uint8_t>, std::vector<const rtnl::Route *>> by_prefix;
	for (int pass = 0; pass < 2; pass++)
		for (const rtnl::Route &r : routes) {
			if (r.table != (pass == 0 ? RT_TABLE_LOCAL : RT_TABLE_MAIN))
				continue;
			if (pass == 1 && !merged)
				continue;
			const uint32_t mask = r.prefixlen ? htobe32(~0u << (32 - r.prefixlen)) : 0;
			by_prefix[{r.addr & mask, r.prefixlen}].push_back(&r);
		}
	std::vector<ir::AddrtypeRoute> decided;
	for (const auto &[key, list] : by_prefix) {
		for (const rtnl::Route *r : list) {
			if (r->tos != 0) // flowi4_tos is 0
				continue;
			ir::AddrtypeRoute out;
			out.addr = key.first;
			out.prefixlen = key.second;
			if (r->type >= RTN_BLACKHOLE && r->type <= RTN_XRESOLVE) {
				// fib_props[type].error: the lookup fails, UNICAST stays.
				out.type = RTN_UNICAST;
				decided.push_back(out);
				break;
			}
			if (r->flags & RTNH_F_DEAD)
				continue;
			if ((r->flags & RTNH_F_LINKDOWN) && ignore_linkdown(r->oif))
				continue;
			out.type = r->type;
			for (const rtnl::Link &l : links)
				if (l.ifindex == r->oif && r->oif != 0) {
					out.has_dev = true;
					out.dev = l.name;
				}
			decided.push_back(out);
			break;
		}
	}
	// Keep what can change an answer.
	const auto covers = [](const ir::AddrtypeRoute &outer, const ir::AddrtypeRoute &inner) {
		if (outer.prefixlen >= inner.prefixlen)
			return false;
		const uint32_t mask = outer.prefixlen ? htobe32(~0u << (32 - outer.prefixlen)) : 0;
		return (inner.addr & mask) == outer.addr;
	};
	std::vector<ir::AddrtypeRoute> kept;
	for (const ir::AddrtypeRoute &r : decided)
		if (r.type != RTN_UNICAST)
			kept.push_back(r);
	const size_t typed = kept.size();
	for (const ir::AddrtypeRoute &r : decided) {
		if (r.type == RTN_UNICAST &&
		    std::any_of(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(typed),
				[&](const ir::AddrtypeRoute &t) { return covers(t, r); }))
			kept.push_back(r);
	}
	return kept;
}

} // namespace bpfilter::loader
