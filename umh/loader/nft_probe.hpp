// nf_tables' IPv4 tables in the current network namespace: rules made there with iptables-nft
// (Debian's default iptables) or nft filter beside bpfilter, which never sees them.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace bpfilter::loader
{

// "ip filter", "inet fw", ...: nf_tables' tables of family ip and inet, in the kernel's order.
// Empty, without asking, where nf_tables is a module not loaded (asking would load it).
Result<std::vector<std::string>> nft_ipv4_tables();

} // namespace bpfilter::loader
