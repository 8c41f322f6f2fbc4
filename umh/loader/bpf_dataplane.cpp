// BpfDataplane: one network namespace's table as XDP programs on all its interfaces, swapped
// atomically.
//
// Programs are attached through rtnetlink (bpf_xdp_attach), not BPF links: the device
// holds them, so they keep filtering when the helper dies, and a restarted helper finds
// and replaces them. Every replacement names the program it expects to replace
// (XDP_FLAGS_REPLACE), so it is atomic per interface and never clobbers someone else's.
#include "loader/bpf_dataplane.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/membarrier.h>
#include <linux/netfilter/xt_LOG.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "codegen/maps.hpp"
#include "codegen/reject.hpp"
#include "common/log.hpp"
#include "ir/limit.hpp"
#include "loader/addrtype.hpp"
#include "loader/hashlimit.hpp"
#include "loader/jiffies.hpp"
#include "loader/owner.hpp"

namespace bpfilter::loader
{
namespace
{

// The IPv4 multicast groups some device of the caller's network namespace has joined
// (network order), from /proc/net/igmp: the generated code counts multicast to these
// only (input routing drops the rest, ip_check_mc_rcu()). The kernel prints each group
// as the hex of its __be32, so the number read back is already in network order.
// Unreadable means none known: such packets are then judged but not counted.
std::vector<uint32_t> joined_groups()
{
	std::vector<uint32_t> groups;
	FILE *f = std::fopen("/proc/thread-self/net/igmp", "re");
	if (!f)
		return groups;
	char line[256];
	while (std::fgets(line, sizeof(line), f)) {
		unsigned int group = 0, users = 0;
		if (line[0] == '\t' && std::sscanf(line, " %8X %u", &group, &users) == 2)
			groups.push_back(static_cast<uint32_t>(group));
	}
	std::fclose(f);
	return groups;
}

std::string errstr(int err)
{
	return strerror(err < 0 ? -err : err);
}

std::string name_of(const std::array<uint8_t, 16> &name)
{
	return std::string(reinterpret_cast<const char *>(name.data()),
			   strnlen(reinterpret_cast<const char *>(name.data()), name.size()));
}

std::string_view mode_name(uint32_t mode)
{
	switch (mode) {
	case XDP_FLAGS_DRV_MODE:
		return "native";
	case XDP_FLAGS_SKB_MODE:
		return "generic";
	case XDP_FLAGS_HW_MODE:
		return "offload";
	default:
		return "unknown";
	}
}

// Once our program is off every interface, a packet may still be running through it on
// another CPU. XDP runs inside an RCU read-side section (NAPI or generic receive), and
// MEMBARRIER_CMD_GLOBAL waits for an RCU grace period: after it, no run of the old
// program is in flight and its counters are final.
void wait_for_readers()
{
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return;
	// nohz_full kernels refuse it. A run of an XDP program takes microseconds.
	log::warn(std::string("membarrier(MEMBARRIER_CMD_GLOBAL): ") + strerror(errno) +
		  "; waiting 100 ms for the old program's last runs instead");
	usleep(100 * 1000);
}

// Names a table by its programs' code (codegen is a pure function of the table) and rule
// count: FNV-1a over every flavor's instructions and the address sets' contents (which
// carry the addresses that instructions would otherwise hold).
uint64_t fingerprint_of(const std::array<codegen::Program, 3> &code, uint32_t rules)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const auto mix = [&h](const void *p, size_t len) {
		const auto *b = static_cast<const uint8_t *>(p);
		for (size_t i = 0; i < len; i++) {
			h ^= b[i];
			h *= 0x100000001b3ULL;
		}
	};
	mix(&rules, sizeof(rules));
	for (const auto &prog : code) {
		mix(prog.insns.data(), prog.insns.size() * sizeof(bpf_insn));
		for (const codegen::AddrSetData &set : prog.addr_sets) {
			mix(set.keys.data(), set.keys.size() * sizeof(uint32_t));
			mix(set.values.data(), set.values.size() * sizeof(uint32_t));
		}
	}
	return h;
}

using clock = std::chrono::steady_clock;

std::string ms_between(clock::time_point a, clock::time_point b)
{
	auto us = std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
	char buf[32];
	snprintf(buf, sizeof(buf), "%.2f ms", static_cast<double>(us) / 1000.0);
	return buf;
}

// Rules a program judges by address or tuple lookups (codegen/classify.hpp).
uint64_t classified_rules(const codegen::Program &p)
{
	uint64_t n = 0;
	for (const codegen::AddrSetData &set : p.addr_sets)
		n += set.rules;
	return n;
}

} // namespace

Result<XdpMode> parse_xdp_mode(std::string_view name)
{
	if (name == "auto")
		return XdpMode::Auto;
	if (name == "native" || name == "drv")
		return XdpMode::Native;
	if (name == "generic" || name == "skb")
		return XdpMode::Generic;
	if (name == "offload" || name == "hw")
		return XdpMode::Offload;
	return make_error(EINVAL, "unknown XDP mode \"" + std::string(name) +
					  "\" (auto, native, generic or offload)");
}

std::string_view to_string(XdpMode mode)
{
	switch (mode) {
	case XdpMode::Auto:
		return "auto";
	case XdpMode::Native:
		return "native";
	case XdpMode::Generic:
		return "generic";
	case XdpMode::Offload:
		return "offload";
	}
	return "unknown";
}

BpfDataplane::BpfDataplane(const XdpOptions &options, Fd devices, Fd local_addrs)
    : options_(options), devices_(std::move(devices)), local_addrs_(std::move(local_addrs))
{
}

BpfDataplane::~BpfDataplane()
{
	if (holding_conntrack_)
		(void)hold_conntrack(false);
}

Result<std::unique_ptr<BpfDataplane>> BpfDataplane::create(const XdpOptions &options)
{
	auto devices = create_devices_map();
	if (!devices)
		return devices.error();
	auto local = create_local_addrs_map();
	if (!local)
		return local.error();
	std::unique_ptr<BpfDataplane> dp(
		new BpfDataplane(options, std::move(*devices), std::move(*local)));
	struct stat ns = {};
	if (stat("/proc/thread-self/ns/net", &ns) == 0)
		dp->netns_ino_ = ns.st_ino;
	auto addr_types = create_addr_types_map();
	if (!addr_types)
		return addr_types.error();
	dp->addr_types_ = std::move(*addr_types);

	// Subscribe before the first dumps, so that no change falls between them.
	if (options.watch) {
		auto w = rtnl::Watcher::open();
		if (!w)
			return w.error();
		dp->watcher_.emplace(std::move(*w));
	}
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	BF_TRY(dp->sync_devices(*links));
	BF_TRY(dp->sync_local_routes(*links));
	BF_TRY(dp->adopt(*links));
	return dp;
}

namespace
{

// The link-layer header a device's IPv4 packets carry at tc, or: -1 for a device that
// never carries IPv4, -2 for a kind we do not know how to parse.
int l2len_of(uint16_t type)
{
	switch (type) {
	case ARPHRD_ETHER:
	case ARPHRD_LOOPBACK:
		return ETH_HLEN;
	case ARPHRD_NONE:   // tun, WireGuard
	case ARPHRD_TUNNEL: // ipip
	case ARPHRD_TUNNEL6:
	case ARPHRD_SIT:
	case ARPHRD_IPGRE:
	case ARPHRD_IP6GRE:
	case ARPHRD_PPP:
	case ARPHRD_RAWIP:
		return 0;
	case ARPHRD_NETLINK: // nlmon
	case ARPHRD_CAN:
	case ARPHRD_IEEE802154:
	case ARPHRD_6LOWPAN:
	case ARPHRD_VOID:
		return -1;
	default:
		return -2;
	}
}

bool enslaved(const rtnl::Link &link)
{
	return link.master && (link.slave_kind == "bridge" || link.slave_kind == "bond" ||
			       link.slave_kind == "team");
}

// Kinds of upper device that take some of their lower device's packets.
bool stacked_kind(const std::string &kind)
{
	return kind == "vlan" || kind == "macvlan" || kind == "macvtap" || kind == "ipvlan" ||
	       kind == "ipvtap";
}

} // namespace

Result<std::optional<BpfDataplane::Role>>
BpfDataplane::role_of(const rtnl::Link &link, bool skb_marks,
		      const std::vector<rtnl::Link> &links) const
{
	if (link.type == ARPHRD_LOOPBACK && !options_.loopback)
		return std::optional<Role>{};
	const int l2 = l2len_of(link.type);
	if (l2 == -1)
		return std::optional<Role>{};
	if (l2 == -2)
		return make_error(EOPNOTSUPP,
				  name_of(link.name) + " has link type " +
					  std::to_string(link.type) +
					  ", whose packets bpfilter cannot parse: it cannot be "
					  "filtered (remove it, or keep netfilter on this host)");
	Role role;
	role.l2len = static_cast<uint8_t>(l2);
	if (enslaved(link))
		return std::optional<Role>{role}; // the master sees IP, the port none
	role.tc_out = true;
	bool has_upper = false;
	for (const auto &l : links)
		has_upper |= l.lower == link.ifindex && !l.lower_elsewhere && stacked_kind(l.kind);
	// XDP where it keeps its meaning and is fast: NICs, veth and loopback as leaves; not
	// for a table whose INPUT or FORWARD reads or sets marks (XDP has no skb->mark).
	role.xdp = !skb_marks &&
		   (link.type == ARPHRD_LOOPBACK ||
		    (link.type == ARPHRD_ETHER &&
		     (link.kind.empty() || link.kind == "veth" || link.kind == "netdevsim") &&
		     !has_upper && !upper_xdp_.count(link.ifindex)));
	role.tc_in = !role.xdp;
	return std::optional<Role>{role};
}

std::string BpfDataplane::link_name(int ifindex) const
{
	auto it = devices_held_.find(ifindex);
	if (it == devices_held_.end())
		return "ifindex " + std::to_string(ifindex);
	return name_of(it->second.name);
}

Status BpfDataplane::sync_devices(const std::vector<rtnl::Link> &links)
{
	std::map<int, DeviceInfo> now;
	for (const auto &l : links) {
		DeviceInfo info;
		info.name = l.name;
		info.mac = l.mac;
		const int l2 = l2len_of(l.type);
		info.l2len = static_cast<uint8_t>(l2 > 0 ? l2 : 0);
		if (auto held = devices_held_.find(l.ifindex); held != devices_held_.end())
			info.flags = held->second.flags & codegen::maps::device_xdp_judges;
		if (l.type == ARPHRD_ETHER)
			info.flags |= codegen::maps::device_ether;
		for (const auto &u : links)
			if (u.lower == l.ifindex && !u.lower_elsewhere &&
			    (u.kind == "ipvlan" || u.kind == "ipvtap"))
				info.flags |= codegen::maps::device_ipvlan_lower;
		now[l.ifindex] = info;
	}
	for (const auto &[ifindex, info] : now) {
		auto it = devices_held_.find(ifindex);
		if (it != devices_held_.end() && it->second == info)
			continue;
		BF_TRY(set_device(devices_.get(), static_cast<uint32_t>(ifindex), info));
		devices_held_[ifindex] = info;
	}
	for (auto it = devices_held_.begin(); it != devices_held_.end();) {
		if (now.count(it->first)) {
			++it;
			continue;
		}
		(void)delete_device(devices_.get(), static_cast<uint32_t>(it->first));
		it = devices_held_.erase(it);
	}
	return {};
}

namespace
{

// The caller's namespace's sysctls that shape REJECT's replies; the kernel's defaults
// where one cannot be read.
codegen::ReplySysctls read_reply_sysctls()
{
	codegen::ReplySysctls s;
	const auto read = [](const char *name, uint32_t &value) {
		const std::string path = std::string("/proc/sys/net/ipv4/") + name;
		FILE *f = fopen(path.c_str(), "re");
		if (!f)
			return;
		long long v = 0;
		if (fscanf(f, "%lld", &v) == 1 && v >= 0 && v <= INT32_MAX)
			value = static_cast<uint32_t>(v);
		fclose(f);
	};
	read("ip_default_ttl", s.ip_default_ttl);
	read("icmp_ratelimit", s.icmp_ratelimit_ms);
	read("icmp_ratemask", s.icmp_ratemask);
	read("icmp_msgs_per_sec", s.icmp_msgs_per_sec);
	read("icmp_msgs_burst", s.icmp_msgs_burst);
	read("icmp_errors_use_inbound_ifaddr", s.icmp_errors_use_inbound_ifaddr);
	return s;
}

// Is rp_filter on anywhere in the caller's namespace (all, default or a device)? Then
// fib_validate_source() checks sources in full.
bool rp_filter_anywhere()
{
	DIR *d = opendir("/proc/sys/net/ipv4/conf");
	if (!d)
		return false;
	bool on = false;
	while (struct dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		const std::string path =
			std::string("/proc/sys/net/ipv4/conf/") + e->d_name + "/rp_filter";
		if (FILE *f = std::fopen(path.c_str(), "re")) {
			int v = 0;
			on |= std::fscanf(f, "%d", &v) == 1 && v != 0;
			std::fclose(f);
		}
	}
	closedir(d);
	return on;
}

} // namespace

namespace
{

// ip_ignore_linkdown(): net.ipv4.conf.{all,DEV}.ignore_routes_with_linkdown.
bool ignore_linkdown(const std::vector<rtnl::Link> &links, int ifindex)
{
	const auto on = [](const std::string &conf) {
		int v = 0;
		if (FILE *f = std::fopen(
			    ("/proc/sys/net/ipv4/conf/" + conf + "/ignore_routes_with_linkdown")
				    .c_str(),
			    "re")) {
			if (std::fscanf(f, "%d", &v) != 1)
				v = 0;
			std::fclose(f);
		}
		return v != 0;
	};
	if (on("all"))
		return true;
	for (const auto &l : links)
		if (l.ifindex == ifindex)
			return on(reinterpret_cast<const char *>(l.name.data()));
	return false;
}

} // namespace

// -m addrtype's routes. The kernel unmerges the local table from main when the first
// policy rule is added and never merges it back; a namespace that had rules and lost them
// all again is taken for merged (nothing tells the two apart).
Status BpfDataplane::sync_addr_types_map(const std::vector<rtnl::Link> &links, bool custom_rules)
{
	auto routes = rtnl::dump_routes();
	if (!routes)
		return routes.error();
	const auto resolved =
		resolve_addrtype_routes(*routes, links, !custom_rules, [&](int ifindex) {
			return ignore_linkdown(links, ifindex);
		});
	return sync_addr_types(addr_types_.get(), resolved, addr_types_held_);
}

Status BpfDataplane::sync_local_routes()
{
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	return sync_local_routes(*links);
}

Status BpfDataplane::sync_local_routes(const std::vector<rtnl::Link> &links)
{
	auto dumped = rtnl::dump_local_routes();
	if (!dumped)
		return dumped.error();
	auto custom = rtnl::has_custom_rules();
	if (!custom)
		return custom.error();
	// fib_validate_source(): with rp_filter off and no policy rules, only the host's own
	// addresses are martian sources; otherwise a source the local table routes to this
	// host or to a broadcast is.
	const bool full_check = *custom || rp_filter_anywhere();
	std::set<int> ipvlans;
	for (const auto &l : links)
		if (l.kind == "ipvlan" || l.kind == "ipvtap")
			ipvlans.insert(l.ifindex);
	std::map<std::pair<uint32_t, uint8_t>, LocalEntry> now;
	for (const auto &r : *dumped) {
		uint8_t v = codegen::maps::local_delivered;
		if (!r.local)
			v |= codegen::maps::broadcast_addr;
		if (full_check || (r.local && r.prefixlen == 32))
			v |= codegen::maps::martian_source;
		if (r.local && ipvlans.count(r.oif))
			v |= codegen::maps::ipvlan_addr;
		LocalEntry &e = now[{r.addr, r.prefixlen}];
		e.flags |= v;
		if (r.local && !e.prefsrc)
			e.prefsrc = r.prefsrc;
	}
	BF_TRY(sync_addr_types_map(links, *custom));
	groups_ = joined_groups();
	for (uint32_t group : groups_)
		now[{group, 32}].flags |= codegen::maps::local_delivered;
	// Add (or change) before removing: an address that moves is never missing in between.
	for (const auto &[key, e] : now) {
		auto it = routes_.find(key);
		if (it != routes_.end() && it->second == e)
			continue;
		BF_TRY(add_local_addr(local_addrs_.get(), key.first, key.second, e.flags,
				      e.prefsrc));
		routes_[key] = e;
	}
	for (auto it = routes_.begin(); it != routes_.end();) {
		if (now.count(it->first)) {
			++it;
			continue;
		}
		(void)delete_local_addr(local_addrs_.get(), it->first.first, it->first.second);
		it = routes_.erase(it);
	}
	return {};
}

Status BpfDataplane::adopt(const std::vector<rtnl::Link> &links)
{
	for (const auto &link : links) {
		Attached a;
		if (auto xdp = our_xdp(link.ifindex)) {
			a.xdp_mode = xdp->mode;
			a.xdp_fd = xdp->fd.get();
			adopted_.push_back(std::move(xdp->fd));
		}
		for (TcDir dir : {TcDir::Ingress, TcDir::Egress}) {
			const uint32_t id = tc_prog_id(link.ifindex, dir);
			Fd fd(id ? bpf_prog_get_fd_by_id(id) : -1);
			if (!fd || !is_ours(fd.get()))
				continue;
			(dir == TcDir::Ingress ? a.tc_in_fd : a.tc_out_fd) = fd.get();
			adopted_.push_back(std::move(fd));
		}
		if (a.xdp_fd >= 0 || a.tc_in_fd >= 0 || a.tc_out_fd >= 0) {
			log::info("adopting program id " +
				  std::to_string(prog_id(a.xdp_fd >= 0	   ? a.xdp_fd
							 : a.tc_in_fd >= 0 ? a.tc_in_fd
									   : a.tc_out_fd)) +
				  " (and the others) on " + name_of(link.name) +
				  " left by an earlier helper");
			attached_[link.ifindex] = a;
		}
	}
	return {};
}

codegen::Options BpfDataplane::codegen_options(codegen::Flavor flavor,
					       codegen::Options::Tests tests,
					       const Generation &gen) const
{
	codegen::Options o;
	o.flavor = flavor;
	o.tests = tests;
	// The second chance (a jump per rule) is the plainest code: no protocol lanes.
	if (tests == codegen::Options::Tests::Accumulate)
		o.lane_max_rules = 0;
	o.replies = gen.replies;
	o.recent = gen.recent;
	o.hashlimit = gen.hashlimit;
	o.hz = hz_;
	if (conntrack_)
		o.ct = conntrack_->layout;
	o.owner = owner_;
	return o;
}

LoadOptions BpfDataplane::load_options(const Generation &gen) const
{
	LoadOptions lo;
	lo.counters_fd = gen.counters.get();
	lo.conntrack = conntrack_.get();
	lo.icmp_global_fd = icmp_global_.get();
	lo.icmp_peers_fd = icmp_peers_.get();
	lo.limits_fd = gen.limits.get();
	lo.connlimit_fd = gen.connlimit.get();
	if (recent_) {
		lo.recent_entries_fd = recent_->entries_fd();
		lo.recent_heads_fd = recent_->heads_fd();
		lo.recent_tmp_fd = recent_->tmp_fd();
	}
	if (log_) {
		lo.log_ring_fd = log_->maps().ring.get();
		lo.log_lost_fd = log_->maps().lost.get();
	}
	lo.addr_types_fd = addr_types_.get();
	if (htables_) {
		lo.hashlimit_fd = htables_->map_fd();
		lo.hashlimit_counts_fd = htables_->counts_fd();
	}
	return lo;
}

Result<int> BpfDataplane::prog_fd(Generation &gen, codegen::Flavor flavor, const rtnl::Link &link)
{
	const auto k = static_cast<size_t>(flavor);
	(void)link;
	if (gen.prog[k])
		return gen.prog[k]->fd();
	// A faster form the kernel refuses has a second chance: no need to ask why.
	const bool second_chance = gen.code[k].tests != codegen::Options::Tests::Accumulate;
	LoadOptions lo = load_options(gen);
	lo.set_maps = &gen.set_maps;
	lo.explain = !second_chance;
	lo.name = program_full_name(flavor, gen.name, netns_ino_);
	auto p = load_program(gen.code[k], devices_.get(), local_addrs_.get(), lo);
	if (!p && second_chance) {
		log::info("the kernel refused the " + std::string(program_name(flavor)) +
			  " program with its faster tests (" +
			  std::to_string(gen.code[k].insns.size()) +
			  " instructions); compiling it with a jump per rule");
		std::optional<ir::Table> keep;
		auto table = gen.ir(keep);
		if (!table)
			return table.error();
		auto again = codegen::compile(
			**table, codegen_options(flavor, codegen::Options::Tests::Accumulate, gen));
		if (!again)
			return again.error();
		gen.set_maps.forget(gen.code[k]);
		gen.code[k] = std::move(*again);
		lo.explain = true;
		p = load_program(gen.code[k], devices_.get(), local_addrs_.get(), lo);
	}
	if (!p)
		return p.error();
	gen.prog[k].emplace(std::move(*p));
	// The maps are filled: the sets' keys and values (MiBs at 100k rules) are not needed
	// again while the table is in force (their sizes stay for the log), once no program
	// still to be loaded can share them (SetMaps compares sets in full).
	const auto pending = [&] {
		for (size_t j = 0; j < gen.code.size(); j++)
			if (!gen.prog[j] && !gen.code[j].addr_sets.empty())
				return true;
		return false;
	};
	if (!pending())
		for (size_t j = 0; j < gen.code.size(); j++)
			for (codegen::AddrSetData &set : gen.code[j].addr_sets) {
				set.keys = std::vector<uint32_t>();
				set.values = std::vector<uint32_t>();
			}
	return gen.prog[k]->fd();
}

namespace
{

// net.ipv4.conf.DEV.forwarding: does the device route what it receives? Unreadable: yes.
bool forwards(const rtnl::Link &link)
{
	const std::string path = "/proc/sys/net/ipv4/conf/" + name_of(link.name) + "/forwarding";
	FILE *f = std::fopen(path.c_str(), "re");
	if (!f)
		return true;
	int v = 1;
	if (std::fscanf(f, "%d", &v) != 1)
		v = 1;
	std::fclose(f);
	return v != 0;
}

} // namespace

Result<bool> BpfDataplane::offloads(const rtnl::Link &link, Generation &gen)
{
	if (link.type == ARPHRD_LOOPBACK || options_.mode == XdpMode::Native ||
	    options_.mode == XdpMode::Generic)
		return false;
	const std::string name = name_of(link.name);
	auto it = offload_capable_.find(link.ifindex);
	if (it == offload_capable_.end())
		it = offload_capable_.emplace(link.ifindex, offload_capable(link.ifindex)).first;
	if (!it->second) {
		if (options_.mode == XdpMode::Offload)
			return make_error(EOPNOTSUPP,
					  "offloading to " + name +
						  " failed: the device does not run BPF programs "
						  "itself (it allocates no map bound to it)");
		return false;
	}
	std::string why;
	if (!gen.offloadable)
		why = gen.offloadable.error().message;
	else if (forwards(link))
		why = "offload: " + name + " forwards (net.ipv4.conf." + name +
		      ".forwarding is on): telling routed packets from this host's needs the "
		      "FIB, which a NIC does not have";
	if (why.empty())
		return true;
	if (options_.mode == XdpMode::Offload)
		return make_error(EOPNOTSUPP, why);
	if (gen.told.insert(link.ifindex).second)
		log::info(name +
			  " can run XDP programs itself, and gets the native program: " + why);
	return false;
}

Result<int> BpfDataplane::offload_fd(Generation &gen, const rtnl::Link &link)
{
	if (auto it = gen.offloaded.find(link.ifindex); it != gen.offloaded.end())
		return it->second.fd();
	const auto t0 = clock::now();
	codegen::Options o = codegen_options(codegen::Flavor::Xdp, options_.tests, gen);
	o.offload = true;
	o.offload_ifname = link.name;
	std::optional<ir::Table> keep;
	auto table = gen.ir(keep);
	if (!table)
		return table.error();
	auto code = codegen::compile(**table, o);
	if (!code)
		return code.error();
	keep.reset();
	LoadOptions lo; // its own Counters map, bound to the device as the program is
	lo.prog_ifindex = static_cast<uint32_t>(link.ifindex);
	lo.name = program_full_name(codegen::Flavor::Xdp, gen.name, netns_ino_, true);
	auto p = load_program(*code, -1, -1, lo);
	if (!p)
		return make_error(p.error().errnum, "offloading to " + name_of(link.name) +
							    " failed (the device cannot run it): " +
							    p.error().message);
	log::info("offloaded the table's INPUT to " + name_of(link.name) + ": " +
		  std::to_string(code->insns.size()) + " instructions, " +
		  std::to_string(code->insns.size() * sizeof(bpf_insn)) +
		  " bytes, verified and translated by the device in " +
		  ms_between(t0, clock::now()));
	return gen.offloaded.emplace(link.ifindex, std::move(*p)).first->second.fd();
}

Result<BpfDataplane::Attached> BpfDataplane::attach_xdp(const rtnl::Link &link, int fd,
							const Attached &old, bool &upper_has_xdp,
							bool hw)
{
	const std::string name = name_of(link.name);
	upper_has_xdp = false;
	(void)take_kernel_message(); // only this attach's word counts
	if (old.xdp_fd >= 0 && (old.xdp_mode == XDP_FLAGS_HW_MODE) != hw) {
		// Offloaded to native or back: the two modes coexist on a device, so the new
		// one goes on before the old one comes off (both judge for that moment).
		Attached cleared = old;
		cleared.xdp_fd = -1;
		cleared.xdp_mode = 0;
		auto a = attach_xdp(link, fd, cleared, upper_has_xdp, hw);
		if (!a)
			return a.error();
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old.xdp_fd);
		int err = bpf_xdp_detach(link.ifindex, old.xdp_mode, &opts);
		if (err && err != -ENODEV) {
			LIBBPF_OPTS(bpf_xdp_attach_opts, back, .old_prog_fd = fd);
			(void)bpf_xdp_detach(link.ifindex, a->xdp_mode, &back);
			return make_error(-err, "detaching " +
							std::string(mode_name(old.xdp_mode)) +
							" XDP from " + name + ": " + errstr(err));
		}
		return a;
	}
	if (old.xdp_fd >= 0) {
		// Atomic on this device: the kernel swaps the program only if the one
		// attached is still the old one.
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old.xdp_fd);
		int err = bpf_xdp_attach(link.ifindex, fd, old.xdp_mode, &opts);
		if (!err) {
			Attached a = old;
			a.xdp_fd = fd;
			return a;
		}
		uint32_t id = 0;
		if (err != -EEXIST || bpf_xdp_query_id(link.ifindex, 0, &id))
			return make_error(-err, "replacing the XDP program on " + name + ": " +
							errstr(err));
		if (id && !is_ours_id(id))
			return make_error(EBUSY,
					  name + " runs XDP program " + describe_prog(id) +
						  " in place of bpfilter's: remove it first");
		log::warn("bpfilter's XDP program had been removed from or replaced on " + name +
			  "; attaching it again");
	}

	std::vector<uint32_t> modes;
	if (link.type == ARPHRD_LOOPBACK)
		modes = {XDP_FLAGS_SKB_MODE}; // no driver hook on loopback, in any mode
	else if (options_.mode == XdpMode::Native)
		modes = {XDP_FLAGS_DRV_MODE};
	else if (options_.mode == XdpMode::Generic)
		modes = {XDP_FLAGS_SKB_MODE};
	else if (hw)
		modes = {XDP_FLAGS_HW_MODE};
	else
		modes = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};

	int err = 0;
	for (uint32_t mode : modes) {
		err = bpf_xdp_attach(link.ifindex, fd, mode | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
		if (!err) {
			Attached a = old;
			a.xdp_mode = mode;
			a.xdp_fd = fd;
			return a;
		}
		if (err == -EBUSY || err == -EEXIST) {
			uint32_t id = 0;
			bpf_xdp_query_id(link.ifindex, 0, &id);
			if (!id) {
				// Nothing on the device itself: an upper device (a macvlan in
				// another namespace) has XDP, and the kernel keeps lowers off it.
				upper_has_xdp = true;
				return make_error(EBUSY, name + ": an upper device has XDP");
			}
			// A device that comes from another namespace brings that namespace's
			// program along: ours by name, replaced like an adopted one.
			LIBBPF_OPTS(bpf_xdp_query_opts, q);
			Fd theirs(bpf_prog_get_fd_by_id(id));
			if (theirs && is_ours(theirs.get()) &&
			    !bpf_xdp_query(link.ifindex, 0, &q) &&
			    q.attach_mode != XDP_ATTACHED_MULTI) {
				uint32_t cur =
					q.attach_mode == XDP_ATTACHED_DRV   ? XDP_FLAGS_DRV_MODE
					: q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE
									    : XDP_FLAGS_HW_MODE;
				LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = theirs.get());
				if (!bpf_xdp_attach(link.ifindex, fd, cur, &opts)) {
					log::info("replaced bpfilter's program " +
						  describe_prog(id) + " that " + name +
						  " brought from elsewhere");
					Attached a = old;
					a.xdp_mode = cur;
					a.xdp_fd = fd;
					return a;
				}
			}
			return make_error(EBUSY,
					  "XDP on " + name + ": the device runs program " +
						  describe_prog(id) +
						  ", which is not bpfilter's: remove it first");
		}
		if (err == -ENODEV)
			break;
		if (modes.size() > 1 && mode == XDP_FLAGS_DRV_MODE)
			log::info(name + ": no native XDP (" + errstr(err) +
				  "), using generic XDP");
	}
	const std::string said = take_kernel_message();
	return make_error(-err, "XDP on " + name + " in " + std::string(mode_name(modes.back())) +
					" mode: " + errstr(err) +
					(said.empty() ? "" : " (the kernel says: " + said + ")"));
}

Status BpfDataplane::attach_device(const rtnl::Link &link, Role role, Generation &gen,
				   Attached &state, std::vector<Change> &changes)
{
	using codegen::Flavor;
	const std::string name = name_of(link.name);
	const auto tc = [&](TcDir dir, bool want, int &cur) -> Status {
		const Flavor f = dir == TcDir::Ingress ? Flavor::TcIngress : Flavor::TcEgress;
		if (!want) {
			if (cur < 0)
				return {};
			if (auto st = tc_detach(link.ifindex, dir); !st)
				return make_error(st.error().errnum,
						  name + ": " + st.error().message);
			changes.push_back({link.ifindex, f, cur, -1});
			cur = -1;
			return {};
		}
		auto fd = prog_fd(gen, f, link);
		if (!fd)
			return fd.error();
		// Already there (attaching notifies, and we must not answer our own events).
		if (cur == *fd && tc_prog_id(link.ifindex, dir) == prog_id(*fd))
			return {};
		if (auto st = tc_attach(link.ifindex, dir, *fd); !st)
			return make_error(st.error().errnum, name + ": " + st.error().message);
		changes.push_back({link.ifindex, f, cur, *fd});
		cur = *fd;
		return {};
	};
	// Attach before detaching: a device that changes hooks is never unfiltered.
	BF_TRY(tc(TcDir::Egress, role.tc_out, state.tc_out_fd));
	if (role.xdp) {
		auto hw = offloads(link, gen);
		if (!hw)
			return hw.error();
		Result<int> fd = make_error(EINVAL, "");
		if (*hw) {
			fd = offload_fd(gen, link);
			if (!fd && options_.mode == XdpMode::Auto) {
				log::info(name + " gets the native program: " + fd.error().message);
				*hw = false;
			}
		}
		if (!*hw)
			fd = prog_fd(gen, Flavor::Xdp, link);
		if (!fd)
			return fd.error();
		uint32_t id = 0;
		bool upper_has_xdp = false;
		const uint32_t want_mode = *hw ? XDP_FLAGS_HW_MODE : 0;
		auto a = state.xdp_fd == *fd && !bpf_xdp_query_id(link.ifindex, want_mode, &id) &&
					 id == prog_id(*fd)
				 ? Result<Attached>(state)
				 : attach_xdp(link, *fd, state, upper_has_xdp, *hw);
		if (!a && upper_has_xdp) {
			log::info(name + ": an upper device runs XDP, so the kernel keeps XDP off "
					 "this one; filtering it at tc ingress");
			upper_xdp_.insert(link.ifindex);
			role.xdp = false;
			role.tc_in = true;
		} else if (!a) {
			return a.error();
		} else if (a->xdp_fd != state.xdp_fd || a->xdp_mode != state.xdp_mode || !id) {
			changes.push_back({link.ifindex, Flavor::Xdp, state.xdp_fd, a->xdp_fd,
					   state.xdp_mode, a->xdp_mode});
			state = *a;
		}
	}
	// Native XDP never sees what the host loops back to itself through the device (its
	// own broadcasts, multicast): tc ingress judges those, and only those, there.
	const bool native_xdp =
		role.xdp && state.xdp_fd >= 0 && state.xdp_mode != XDP_FLAGS_SKB_MODE;
	BF_TRY(set_xdp_judges(link.ifindex, native_xdp));
	BF_TRY(tc(TcDir::Ingress, role.tc_in || native_xdp, state.tc_in_fd));
	if (!role.xdp && state.xdp_fd >= 0) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = state.xdp_fd);
		int err = bpf_xdp_detach(link.ifindex, state.xdp_mode, &opts);
		if (err && err != -ENODEV && err != -EEXIST)
			return make_error(-err, "detaching XDP from " + name + ": " + errstr(err));
		changes.push_back({link.ifindex, Flavor::Xdp, state.xdp_fd, -1, state.xdp_mode, 0});
		state.xdp_fd = -1;
		state.xdp_mode = 0;
	}
	return {};
}

Status BpfDataplane::set_xdp_judges(int ifindex, bool on)
{
	auto it = devices_held_.find(ifindex);
	if (it == devices_held_.end())
		return {};
	DeviceInfo info = it->second;
	info.flags = static_cast<uint8_t>((info.flags & ~codegen::maps::device_xdp_judges) |
					  (on ? codegen::maps::device_xdp_judges : 0));
	if (info == it->second)
		return {};
	BF_TRY(set_device(devices_.get(), static_cast<uint32_t>(ifindex), info));
	it->second = info;
	return {};
}

void BpfDataplane::roll_back(const std::vector<Change> &changes)
{
	for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
		const Change &c = *it;
		int err = 0;
		if (c.flavor == codegen::Flavor::Xdp) {
			if (c.new_fd >= 0 && c.old_fd >= 0 && c.old_mode != c.new_mode) {
				// Between offloaded and native: the modes are two slots.
				LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = c.new_fd);
				err = bpf_xdp_attach(c.ifindex, c.old_fd,
						     c.old_mode | XDP_FLAGS_UPDATE_IF_NOEXIST,
						     nullptr);
				if (!err || err == -EEXIST || err == -EBUSY)
					err = bpf_xdp_detach(c.ifindex, c.new_mode, &opts);
			} else if (c.new_fd >= 0) {
				LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = c.new_fd);
				err = c.old_fd >= 0 ? bpf_xdp_attach(c.ifindex, c.old_fd,
								     c.old_mode, &opts)
						    : bpf_xdp_detach(c.ifindex, c.new_mode, &opts);
			} else if (c.old_fd >= 0) {
				err = bpf_xdp_attach(c.ifindex, c.old_fd,
						     c.old_mode | XDP_FLAGS_UPDATE_IF_NOEXIST,
						     nullptr);
			}
		} else {
			const TcDir dir = c.flavor == codegen::Flavor::TcIngress ? TcDir::Ingress
										 : TcDir::Egress;
			Status st = c.old_fd >= 0 ? tc_attach(c.ifindex, dir, c.old_fd)
						  : tc_detach(c.ifindex, dir);
			if (!st)
				err = -st.error().errnum;
		}
		if (err && err != -ENODEV)
			log::error("rolling back " + link_name(c.ifindex) +
				   " failed: " + errstr(err) + "; it runs the refused table there");
	}
}

Result<uint32_t> BpfDataplane::kernel_hz() const
{
	if (hz_ == 0) {
		auto hz = measure_hz();
		if (!hz)
			return hz.error();
		hz_ = *hz;
		log::info("loader: the kernel counts jiffies at " + std::to_string(hz_) + " Hz");
	}
	return hz_;
}

Result<std::string> BpfDataplane::recent_show(std::string_view name) const
{
	if (!recent_)
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	return recent_->show(name);
}

Status BpfDataplane::recent_write(std::string_view name, std::string_view input)
{
	if (!recent_)
		return make_error(ENOENT, "no -m recent list named " + std::string(name));
	auto now = read_jiffies();
	if (!now)
		return now.error();
	return recent_->write(name, input, *now);
}

std::vector<std::string> BpfDataplane::recent_names() const
{
	return recent_ ? recent_->names() : std::vector<std::string>{};
}

Status BpfDataplane::check(const ir::Table &table) const
{
	if (!table.recent_lists.empty()) {
		if (options_.mode == XdpMode::Offload)
			return make_error(EOPNOTSUPP, "-m recent cannot run offloaded to a NIC (it "
						      "reads the kernel's jiffies)");
		auto hz = kernel_hz();
		if (!hz)
			return make_error(EOPNOTSUPP, "-m recent: " + hz.error().message);
	}
	if (options_.mode == XdpMode::Offload)
		BF_TRY(codegen::check_offload(table));
	const bool owner =
		std::any_of(table.rules.begin(), table.rules.end(), [](const ir::Rule &r) {
			return std::any_of(r.matches.begin(), r.matches.end(),
					   [](const ir::Match &m) {
						   return std::holds_alternative<ir::OwnerMatch>(m);
					   });
		});
	// LOG --log-uid at OUTPUT reads the same objects; without their layout it prints no
	// UID=, as before (Documentation/supported.md, LOG), where -m owner is refused.
	const bool log_uid =
		std::any_of(table.rules.begin(), table.rules.end(), [](const ir::Rule &r) {
			return r.target.kind == ir::Target::Kind::Log &&
			       (r.target.log.flags & XT_LOG_UID);
		});
	if (owner)
		BF_TRY(check_owner_userns(table));
	if ((owner || log_uid) && !owner_.known()) {
		auto ly = owner_layout();
		if (ly)
			owner_ = *ly;
		else if (owner)
			return make_error(EOPNOTSUPP, "-m owner: " + ly.error().message);
		else
			log::warn("LOG --log-uid: OUTPUT's lines get no UID= GID=: " +
				  ly.error().message);
	}
	if (table.limit_slots) {
		if (options_.mode == XdpMode::Offload)
			return make_error(EOPNOTSUPP, "-m limit cannot run offloaded to a NIC (it "
						      "reads the kernel's jiffies)");
		auto hz = kernel_hz();
		if (!hz)
			return make_error(EOPNOTSUPP, "-m limit: " + hz.error().message);
		// limit_mt_check()'s overflow test, in credits of this HZ.
		for (size_t i = 0; i < table.rules.size(); i++)
			for (const ir::Match &m : table.rules[i].matches)
				if (auto *x = std::get_if<ir::LimitMatch>(&m);
				    x && ir::limit::overflows(x->avg, x->burst, *hz))
					return make_error(ERANGE,
							  "rule " + std::to_string(i) +
								  ": limit match: Overflow, try "
								  "lower: " +
								  std::to_string(x->avg) + "/" +
								  std::to_string(x->burst));
	}
	// tc ingress runs before the kernel routes the packet, netfilter's INPUT and FORWARD
	// after: a mark they set would steer policy routing that selects on marks.
	if (codegen::needs_skb_mark(table, true)) {
		auto fwmark = rtnl::has_fwmark_rules();
		if (!fwmark)
			return fwmark.error();
		if (*fwmark)
			return make_error(
				EOPNOTSUPP,
				"-j MARK in INPUT or FORWARD: the namespace has policy "
				"routing rules that select on the mark (ip rule ... fwmark); "
				"bpfilter sets the mark at tc ingress, before the kernel "
				"routes the packet, where netfilter sets it after, so the "
				"route would differ");
	}
	if (options_.mode == XdpMode::Offload && codegen::needs_skb_mark(table))
		return make_error(EOPNOTSUPP, "-m mark and -j MARK in INPUT or FORWARD cannot run "
					      "offloaded to a NIC (XDP has no skb->mark)");
	if (!table.hashlimits.empty()) {
		if (options_.mode == XdpMode::Offload)
			return make_error(EOPNOTSUPP, "-m hashlimit cannot run offloaded to a NIC "
						      "(it reads the kernel's jiffies)");
		auto hz = kernel_hz();
		if (!hz)
			return make_error(EOPNOTSUPP, "-m hashlimit: " + hz.error().message);
		// hashlimit_mt_check_common(): the rates in credits of this HZ, then the htable
		// of that name already in the namespace, which must agree on rate matching.
		for (size_t i = 0; i < table.rules.size(); i++)
			for (const ir::Match &m : table.rules[i].matches) {
				auto *x = std::get_if<ir::HashlimitMatch>(&m);
				if (!x)
					continue;
				const std::string &name = table.hashlimits.at(x->table).name;
				if (int err = ir::hashlimit::check_rate(x->cfg, x->revision, *hz))
					return make_error(
						-err, "rule " + std::to_string(i) +
							      ": hashlimit match: " +
							      (err == -EINVAL
								       ? "overflow, rate too high: "
								       : "overflow, try lower: ") +
							      std::to_string(x->cfg.avg) + "/" +
							      std::to_string(x->cfg.burst));
				const ir::HashlimitTable *live =
					htables_ ? htables_->def(name) : nullptr;
				if (live &&
				    ((live->cfg.mode ^ x->cfg.mode) & ir::hashlimit::rate_match))
					return make_error(EINVAL,
							  "rule " + std::to_string(i) +
								  ": hashlimit match: htable \"" +
								  name +
								  "\" exists with rate matching " +
								  ((live->cfg.mode &
								    ir::hashlimit::rate_match)
									   ? "on"
									   : "off"));
			}
	}
	return codegen::check(table);
}

Result<std::vector<ir::Counter>> BpfDataplane::replace(ir::Table table, service::IrSource source)
{
	BF_TRY(check(table));
	// The table's htables: those of names the namespace has keep their configuration
	// and entries; the others are made now, and go again if the table is refused.
	std::vector<codegen::Options::HashlimitRef> refs;
	std::vector<std::string> made;
	const auto forget_made = [&] {
		if (!made.empty())
			htables_->retain(current_ ? current_->hashlimits
						  : std::vector<ir::HashlimitTable>{});
	};
	if (!table.hashlimits.empty()) {
		if (!htables_) {
			auto h = Htables::create();
			if (!h)
				return h.error();
			htables_ = std::move(*h);
		}
		auto r = htables_->prepare(table.hashlimits, made);
		if (!r) {
			forget_made();
			return r.error();
		}
		refs = std::move(*r);
	}
	auto r = install(std::move(table), std::move(source), std::move(refs));
	if (!r) {
		forget_made();
		return r;
	}
	if (htables_) // the htables no rule names any more (htable_put())
		htables_->retain(current_->hashlimits);
	return r;
}

std::vector<std::string> BpfDataplane::htable_names() const
{
	return htables_ ? htables_->names() : std::vector<std::string>{};
}

Result<std::string> BpfDataplane::hashlimit_proc(const std::string &name) const
{
	if (!htables_)
		return make_error(ENOENT, "no htable \"" + name + "\"");
	auto jiffies = read_jiffies();
	if (!jiffies)
		return jiffies.error();
	return htables_->proc(name, *jiffies, hz_ ? hz_ : 250);
}

Status BpfDataplane::hashlimit_gc()
{
	if (!htables_ || htables_->names().empty())
		return {};
	const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
				    std::chrono::steady_clock::now().time_since_epoch())
				    .count();
	auto jiffies = read_jiffies();
	if (!jiffies)
		return jiffies.error();
	auto gone = htables_->gc(now_ms, *jiffies);
	if (!gone)
		return make_error(gone.error().errnum, "htables: " + gone.error().message);
	return {};
}

Status BpfDataplane::attach_links(const std::vector<rtnl::Link> &links, Generation &gen,
				  std::map<int, Attached> &next, std::vector<Change> &changes)
{
	for (const auto &link : links) {
		auto role = role_of(link, gen.skb_marks, links);
		if (!role)
			return role.error();
		Attached state;
		if (auto o = attached_.find(link.ifindex); o != attached_.end())
			state = o->second;
		const Role want = role->value_or(Role{});
		if (auto st = attach_device(link, want, gen, state, changes); !st) {
			if (st.error().errnum == ENODEV) // gone meanwhile
				continue;
			return st;
		}
		if (state.xdp_fd >= 0 || state.tc_in_fd >= 0 || state.tc_out_fd >= 0)
			next[link.ifindex] = state;
	}
	return {};
}

Result<std::vector<ir::Counter>>
BpfDataplane::install(ir::Table table, service::IrSource source,
		      std::vector<codegen::Options::HashlimitRef> hashlimit)
{
	const auto t_start = clock::now();
	auto gen = std::make_unique<Generation>();
	gen->name = table.name;
	gen->num_rules = static_cast<uint32_t>(table.rules.size());
	gen->hashlimits = table.hashlimits;
	gen->hashlimit = std::move(hashlimit);
	gen->recent_lists = table.recent_lists;
	gen->source = std::move(source);
	// The IR is freed once compiled; what loading needs of it later comes from `source`.
	struct Installing {
		Generation *gen;
		~Installing() { gen->installing = nullptr; }
	} installing{gen.get()};
	gen->installing = &table;
	const bool tracks = tracks_connections(table);
	const bool logs =
		std::any_of(table.rules.begin(), table.rules.end(), [](const ir::Rule &r) {
			return r.target.kind == ir::Target::Kind::Log;
		});
	gen->offloadable = codegen::check_offload(table);
	gen->replies = read_reply_sysctls();
	gen->skb_marks = codegen::needs_skb_mark(table);
	if (codegen::table_rejects(table) && icmp_global_.get() < 0) {
		auto global = create_icmp_global_map();
		if (!global)
			return global.error();
		auto peers = create_icmp_peers_map();
		if (!peers)
			return peers.error();
		icmp_global_ = std::move(*global);
		icmp_peers_ = std::move(*peers);
	}
	if (!conntrack_ && tracks) {
		auto ct = open_conntrack();
		if (!ct)
			return make_error(EOPNOTSUPP,
					  "connection tracking (-m conntrack, -m state) is not "
					  "available: " +
						  ct.error().message);
		conntrack_ = std::move(*ct);
		// Our own entries follow the kernel's when it forgets a flow. Only where we
		// watch the namespace (the front door): a socket would keep it alive.
		if (options_.watch) {
			auto events = open_ct_events();
			if (!events)
				return events.error();
			ct_events_ = std::move(*events);
		}
	}
	// recent_mt_check(): the lists the table names, made or kept. Lists made for a table
	// that then fails go again, as recent_mt_destroy() removes them in the kernel.
	struct RecentUndo {
		BpfDataplane &dp;
		bool armed = false;
		~RecentUndo()
		{
			if (armed && dp.recent_)
				dp.recent_->retain(dp.current_ ? dp.current_->recent_lists
							       : std::vector<ir::RecentList>{});
		}
	} recent_undo{*this};
	if (!table.recent_lists.empty()) {
		if (!recent_) {
			auto lists = RecentLists::create();
			if (!lists)
				return lists.error();
			recent_ = std::move(*lists);
		}
		auto refs = recent_->prepare(table);
		recent_undo.armed = true;
		if (!refs)
			return refs.error();
		gen->recent = std::move(*refs);
	}
	for (auto f :
	     {codegen::Flavor::Xdp, codegen::Flavor::TcIngress, codegen::Flavor::TcEgress}) {
		if (f == codegen::Flavor::Xdp && gen->skb_marks)
			continue; // no device runs it (role_of())
		auto code = codegen::compile(table, codegen_options(f, options_.tests, *gen));
		if (!code)
			return code.error();
		gen->code[static_cast<size_t>(f)] = std::move(*code);
	}
	const auto n = static_cast<uint32_t>(table.rules.size());
	auto counters = create_counters_map(n);
	if (!counters)
		return counters.error();
	gen->counters = std::move(*counters);
	gen->fingerprint = fingerprint_of(gen->code, n);
	BF_TRY(set_counters_fingerprint(gen->counters.get(), n, gen->fingerprint));
	if (table.limit_slots) {
		auto now = read_jiffies();
		if (!now)
			return now.error();
		auto limits = create_limits_map(table, hz_, *now);
		if (!limits)
			return limits.error();
		gen->limits = std::move(*limits);
	}
	if (table.connlimit_slots) {
		auto lists = create_connlimit_map();
		if (!lists)
			return lists.error();
		gen->connlimit = std::move(*lists);
	}
	// At 100k rules the IR is about a blob's size again: it goes before the programs
	// are loaded, their maps filled and the old table's counters read.
	gen->installing = nullptr;
	table = ir::Table{};
	if (logs && !log_) {
		auto ring = LogRing::create();
		if (!ring)
			return ring.error();
		log_ = std::move(*ring);
	}
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	// Load (and verify) what the devices need before touching any; offloaded programs
	// are loaded per device as they are attached.
	bool need[3] = {false, false, false};
	for (const auto &link : *links) {
		auto role = role_of(link, gen->skb_marks, *links);
		if (!role)
			return role.error();
		if (!*role)
			continue;
		need[0] |= (*role)->xdp && options_.mode != XdpMode::Offload;
		need[1] |= (*role)->tc_in || (*role)->xdp; // XDP devices: looped-back copies
		need[2] |= (*role)->tc_out;
	}
	for (auto f : {codegen::Flavor::Xdp, codegen::Flavor::TcIngress, codegen::Flavor::TcEgress})
		if (need[static_cast<size_t>(f)]) {
			auto fd = prog_fd(*gen, f, rtnl::Link{});
			if (!fd)
				return fd.error();
		}

	const auto t_loaded = clock::now();
	if (options_.restore_follows && !current_ && !adopted_.empty()) {
		log::info(
			"keeping the " + std::to_string(attached_.size()) +
			" programs of an earlier helper attached until its table is restored (on " +
			std::to_string(attached_.size()) + " devices)");
		current_ = std::move(gen);
		return std::vector<ir::Counter>{};
	}
	if (options_.hold_conntrack && tracks && !holding_conntrack_) {
		BF_TRY(hold_conntrack(true));
		holding_conntrack_ = true;
	}
	BF_TRY(sync_devices(*links));
	// Groups joined, rules and rp_filter changed since the last look: no event says so.
	BF_TRY(sync_local_routes(*links));

	std::vector<Change> changes;
	std::map<int, Attached> next;
	if (auto st = attach_links(*links, *gen, next, changes); !st) {
		roll_back(changes);
		return st.error();
	}

	std::unique_ptr<Generation> old = std::move(current_);
	std::vector<Fd> old_adopted = std::move(adopted_);
	current_ = std::move(gen);
	attached_ = std::move(next);
	adopted_.clear();
	if (holding_conntrack_ && !tracks) {
		if (auto st = hold_conntrack(false); !st)
			log::warn(st.error().message);
		holding_conntrack_ = false;
	}

	const auto t_attached = clock::now();
	wait_for_readers();
	recent_undo.armed = false;
	if (recent_) // the lists no rule names any more (recent_mt_destroy())
		recent_->retain(current_->recent_lists);
	if (!old_adopted.empty())
		carry_counters(old_adopted, *current_);
	const auto &xdp = current_->code[0];
	const auto form = xdp.tests;
	const auto chunks = std::count_if(xdp.functions.begin(), xdp.functions.end(),
					  [](const codegen::Function &fn) { return fn.global; });
	log::info("table of " + std::to_string(current_->num_rules) + " rules in force on " +
		  std::to_string(attached_.size()) + " devices (XDP " +
		  std::to_string(xdp.insns.size()) + " instructions, " +
		  (form == codegen::Options::Tests::Branch ? "a jump per test"
		   : form == codegen::Options::Tests::FirstBranch
			   ? "a jump per rule and its first test"
			   : "a jump per rule") +
		  (chunks ? ", chains in " + std::to_string(chunks) + " chunks" : std::string()) +
		  (xdp.addr_sets.empty()
			   ? std::string()
			   : ", " + std::to_string(classified_rules(xdp)) +
				     " rules classified in " +
				     std::to_string(xdp.addr_sets.size()) + " lookups") +
		  "): compiled and loaded in " + ms_between(t_start, t_loaded) + ", attached in " +
		  ms_between(t_loaded, t_attached) + ", old programs quiet after " +
		  ms_between(t_attached, clock::now()));
	if (!old)
		return std::vector<ir::Counter>{};
	auto counted = old->read_counters();
	if (!counted) {
		// The new table is in force already; report the loss, do not undo the swap.
		log::error("reading the old table's counters: " + counted.error().message);
		return std::vector<ir::Counter>(old->num_rules);
	}
	return counted;
}

// A restarted helper's first table replaces the programs it adopted. When they ran the
// same table (the module's replay, the front door's state file), their final counts become
// the new table's base: counters survive the restart. Only the shared map is carried (not
// per-device offloaded ones).
void BpfDataplane::carry_counters(const std::vector<Fd> &adopted, Generation &gen)
{
	const uint32_t n = gen.num_rules;
	for (const Fd &prog : adopted) {
		auto old = adopted_counters(prog.get());
		if (!old)
			continue;
		if (old->fingerprint != gen.fingerprint || old->num_counters != n) {
			log::info("the earlier helper's programs ran another table: its counters "
				  "start from zero");
			return;
		}
		auto counts = read_counters_map(old->fd.get(), n);
		Status st = counts ? set_counters_base(gen.counters.get(), *counts)
				   : Status(counts.error());
		if (!st) {
			log::error("carrying the earlier helper's counters: " + st.error().message);
			return;
		}
		gen.base = std::move(*counts);
		log::info("counters of " + std::to_string(n) +
			  " rules carried over from the earlier helper's programs");
		return;
	}
	log::info("no readable counters on the earlier helper's programs: counters start from "
		  "zero");
}

Result<const ir::Table *> BpfDataplane::Generation::ir(std::optional<ir::Table> &keep) const
{
	if (installing)
		return installing;
	if (!source)
		return make_error(EINVAL, "the table's IR cannot be built again: no source");
	auto table = source();
	if (!table)
		return make_error(table.error().errnum,
				  "building the table's IR again: " + table.error().message);
	if (table->rules.size() != num_rules)
		return make_error(EIO, "building the table's IR again: " +
					       std::to_string(table->rules.size()) +
					       " rules, not " + std::to_string(num_rules));
	table->hashlimits = hashlimits; // as replace() settled them
	keep = std::move(*table);
	return &*keep;
}

Result<std::vector<ir::Counter>> BpfDataplane::Generation::read_counters() const
{
	std::vector<ir::Counter> sum(num_rules);
	const auto add = [&](const LoadedProgram &p) -> Status {
		auto c = p.counters();
		if (!c)
			return c.error();
		for (size_t i = 0; i < sum.size() && i < c->size(); i++) {
			sum[i].packets += (*c)[i].packets;
			sum[i].bytes += (*c)[i].bytes;
		}
		return {};
	};
	// Every shared program counts in the same map (with the base).
	auto shared = read_counters_map(counters.get(), static_cast<uint32_t>(sum.size()));
	if (!shared)
		return shared.error();
	for (size_t i = 0; i < sum.size() && i < shared->size(); i++) {
		sum[i].packets += (*shared)[i].packets;
		sum[i].bytes += (*shared)[i].bytes;
	}
	// Each offloaded program in its device's.
	for (const auto &[ifindex, p] : offloaded)
		BF_TRY(add(p));
	return sum;
}

Result<std::vector<ir::Counter>> BpfDataplane::counters() const
{
	if (!current_)
		return std::vector<ir::Counter>{};
	return current_->read_counters();
}

Status BpfDataplane::add_counters(const std::vector<ir::Counter> &add)
{
	if (!current_ || add.size() != current_->num_rules)
		return make_error(
			EINVAL,
			"adding " + std::to_string(add.size()) + " counters to a table of " +
				std::to_string(current_ ? current_->num_rules : 0) + " rules");
	std::vector<ir::Counter> base = current_->base;
	base.resize(add.size());
	for (size_t k = 0; k < add.size(); k++) {
		base[k].packets += add[k].packets;
		base[k].bytes += add[k].bytes;
	}
	BF_TRY(set_counters_base(current_->counters.get(), base));
	current_->base = std::move(base);
	return {};
}

std::vector<int> BpfDataplane::event_fds() const
{
	std::vector<int> fds;
	if (watcher_)
		fds.push_back(watcher_->fd());
	if (ct_events_)
		fds.push_back(ct_events_.get());
	return fds;
}

Status BpfDataplane::link_added(int /*ifindex*/)
{
	// A full pass is as cheap as a lookup of one link and also catches renames, devices
	// enslaved or given an upper since, and links whose reports were lost.
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	BF_TRY(sync_devices(*links));
	if (!current_)
		return {}; // no table yet: the first replace attaches everywhere
	std::set<int> present;
	for (const auto &l : *links)
		present.insert(l.ifindex);
	for (auto it = upper_xdp_.begin(); it != upper_xdp_.end();)
		it = present.count(*it) ? std::next(it) : upper_xdp_.erase(it);
	Status first;
	for (const auto &link : *links) {
		auto role = role_of(link, current_->skb_marks, *links);
		if (!role) {
			log::error(role.error().message);
			if (first)
				first = role.error();
			continue;
		}
		Attached state;
		if (auto o = attached_.find(link.ifindex); o != attached_.end())
			state = o->second;
		std::vector<Change> changes;
		auto st = attach_device(link, role->value_or(Role{}), *current_, state, changes);
		if (!st && st.error().errnum != ENODEV) {
			roll_back(changes);
			log::error(name_of(link.name) +
				   " is NOT filtered as it should be: " + st.error().message);
			if (first)
				first = st.error();
			continue;
		}
		if (!changes.empty())
			log::info("device " + name_of(link.name) + " now filtered at" +
				  (state.xdp_fd >= 0 ? " XDP" : "") +
				  (state.tc_in_fd >= 0 ? " tc-ingress" : "") +
				  (state.tc_out_fd >= 0 ? " tc-egress" : "") +
				  (state.xdp_fd < 0 && state.tc_in_fd < 0 && state.tc_out_fd < 0
					   ? " nothing (its master is)"
					   : ""));
		if (state.xdp_fd >= 0 || state.tc_in_fd >= 0 || state.tc_out_fd >= 0)
			attached_[link.ifindex] = state;
		else
			attached_.erase(link.ifindex);
	}
	return first;
}

Status BpfDataplane::addrs_changed()
{
	return sync_local_routes();
}

Status BpfDataplane::refresh_groups()
{
	if (joined_groups() == groups_)
		return {};
	return sync_local_routes();
}

Status BpfDataplane::process_events(int fd)
{
	if (ct_events_ && fd == ct_events_.get())
		return forget_destroyed(fd, conntrack_->own.get());
	if (!watcher_)
		return {};
	auto events = watcher_->read();
	if (!events)
		return events.error();
	bool links = false, routes = false;
	for (const auto &ev : *events) {
		switch (ev.kind) {
		case rtnl::Event::Kind::LinkNew:
			// A rename changes the device names -m addrtype's routes carry.
			links = routes = true;
			break;
		case rtnl::Event::Kind::LinkDel:
			offload_capable_.erase(ev.link.ifindex);
			// The kernel dropped the device's programs with the device (or they left
			// with it for another namespace, whose bpfilter replaces them).
			attached_.erase(ev.link.ifindex);
			upper_xdp_.erase(ev.link.ifindex);
			links = true;
			break;
		case rtnl::Event::Kind::LocalRoutesChanged:
			routes = true;
			break;
		case rtnl::Event::Kind::Resync:
			links = routes = true;
			break;
		}
	}
	Status st;
	if (routes)
		st = sync_local_routes();
	if (links) {
		Status l = link_added(0);
		if (st)
			st = l;
	}
	return st;
}

Status BpfDataplane::detach_all()
{
	Status first;
	const auto note = [&](const std::string &msg, int err) {
		log::warn(msg);
		if (first)
			first = make_error(err, msg);
	};
	auto links = rtnl::dump_links();
	std::map<int, Attached> all = attached_;
	// Ours by name on devices we did not attach (brought from another namespace) too.
	if (links)
		for (const auto &l : *links)
			all.try_emplace(l.ifindex, Attached{});
	for (const auto &[ifindex, a] : all) {
		if (a.xdp_fd >= 0) {
			LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = a.xdp_fd);
			int err = bpf_xdp_detach(ifindex, a.xdp_mode, &opts);
			if (err && err != -ENODEV)
				note("detaching XDP from " + link_name(ifindex) + ": " +
					     errstr(err),
				     -err);
		} else if (auto xdp = our_xdp(ifindex)) {
			LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xdp->fd.get());
			(void)bpf_xdp_detach(ifindex, xdp->mode, &opts);
		}
		for (TcDir dir : {TcDir::Ingress, TcDir::Egress}) {
			const uint32_t tid = tc_prog_id(ifindex, dir);
			if (!tid || !is_ours_id(tid))
				continue;
			if (auto st = tc_detach(ifindex, dir); !st)
				note("detaching " + std::string(to_string(dir)) + " from " +
					     link_name(ifindex) + ": " + st.error().message,
				     st.error().errnum);
		}
	}
	attached_.clear();
	adopted_.clear();
	current_.reset();
	return first;
}

} // namespace bpfilter::loader
