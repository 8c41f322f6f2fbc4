// rtnetlink in the current network namespace: its interfaces, its local routes, and a watcher for
// their changes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader::rtnl
{

struct Link {
	int ifindex = 0;
	std::array<uint8_t, 16> name{}; // NUL padded, as the kernel's dev->name
	uint16_t type = 0;		// ARPHRD_*
	std::array<uint8_t, 6> mac{};	// IFLA_ADDRESS, where it is 6 bytes long
	int master = 0;			// IFLA_MASTER
	int lower = 0;			// IFLA_LINK (VLAN, macvlan: the lower device)
	bool lower_elsewhere = false;	// IFLA_LINK_NETNSID: the lower is in another namespace
	std::string kind;	// IFLA_INFO_KIND: "veth", "bridge", "vlan", ...; "" for NICs
	std::string slave_kind; // IFLA_INFO_SLAVE_KIND: what its master is ("bridge", ...)
	bool operator==(const Link &) const = default;
};

// A route of the local table (RT_TABLE_LOCAL) of type local or broadcast: an address the
// stack delivers to this host.
struct LocalRoute {
	uint32_t addr = 0; // network byte order
	uint8_t prefixlen = 32;
	bool local = true;    // RTN_LOCAL (an address of the host), else RTN_BROADCAST
	int oif = 0;	      // the device that holds the address
	uint32_t prefsrc = 0; // RTA_PREFSRC, network byte order; 0 for none
	bool operator==(const LocalRoute &) const = default;
	auto operator<=>(const LocalRoute &) const = default;
};

// An IPv4 route of the local or main table as fib_table_lookup() weighs it (-m addrtype).
struct Route {
	uint32_t addr = 0; // network byte order
	uint8_t prefixlen = 0;
	uint32_t table = 0; // RT_TABLE_*
	uint8_t type = 0;   // RTN_*
	uint8_t tos = 0;
	uint32_t flags = 0; // rtm_flags: RTNH_F_DEAD, RTNH_F_LINKDOWN of its next hop
	int oif = 0;	    // its first next hop's device, 0 for none
	bool operator==(const Route &) const = default;
};

Result<std::vector<Link>> dump_links();
// The local and main tables' IPv4 routes, each table in the kernel's order (a prefix's
// routes by TOS, then priority).
Result<std::vector<Route>> dump_routes();
Result<std::vector<LocalRoute>> dump_local_routes();
// Does the namespace have IPv4 policy routing rules beyond the three it starts with
// (local, main, default)? fib_validate_source() then checks sources in full.
Result<bool> has_custom_rules();
// Does some IPv4 policy routing rule select packets by their mark (ip rule ... fwmark)?
Result<bool> has_fwmark_rules();

// What a watcher saw. Resync: the kernel dropped notifications (socket overrun), so the
// reader must re-read everything.
struct Event {
	enum class Kind : uint8_t { LinkNew, LinkDel, LocalRoutesChanged, Resync };
	Kind kind = Kind::Resync;
	Link link; // LinkNew, LinkDel
};

// Notifications of link and IPv4 route changes in the namespace the watcher was opened
// in. Its socket keeps that namespace alive: only for the helper's own namespace.
class Watcher
{
public:
	static Result<Watcher> open();
	int fd() const { return fd_.get(); }
	// Every notification pending now (non-blocking).
	Result<std::vector<Event>> read();

private:
	explicit Watcher(Fd fd) : fd_(std::move(fd)) {}
	Fd fd_;
};

} // namespace bpfilter::loader::rtnl
