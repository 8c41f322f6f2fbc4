// XdpDataplane: one network namespace's table as XDP programs on all its interfaces, swapped
// atomically.
//
// Programs are attached through rtnetlink (bpf_xdp_attach), not BPF links: the device
// holds them, so they keep filtering when the helper dies, and a restarted helper finds
// and replaces them. Every replacement names the program it expects to replace
// (XDP_FLAGS_REPLACE), so it is atomic per interface and never clobbers someone else's.
#include "loader/xdp_dataplane.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_arp.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/log.hpp"

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

// Is the program with this id one of ours (by its name)?
bool is_ours(int prog_fd)
{
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return false;
	const std::string ours = LoadOptions{}.name;
	return strncmp(info.name, ours.c_str(), sizeof(info.name) - 1) == 0;
}

std::string describe_prog(uint32_t id)
{
	std::string what = "id " + std::to_string(id);
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return what;
	struct bpf_prog_info info = {};
	uint32_t len = sizeof(info);
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		what += std::string(" \"") + info.name + "\"";
	close(fd);
	return what;
}

using clock = std::chrono::steady_clock;

std::string ms_between(clock::time_point a, clock::time_point b)
{
	auto us = std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
	char buf[32];
	snprintf(buf, sizeof(buf), "%.2f ms", static_cast<double>(us) / 1000.0);
	return buf;
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

XdpDataplane::XdpDataplane(const XdpOptions &options, Fd ifnames, Fd local_addrs)
    : options_(options), ifnames_(std::move(ifnames)), local_addrs_(std::move(local_addrs))
{
}

XdpDataplane::~XdpDataplane() = default;

Result<std::unique_ptr<XdpDataplane>> XdpDataplane::create(const XdpOptions &options)
{
	auto ifnames = create_ifnames_map();
	if (!ifnames)
		return ifnames.error();
	auto local = create_local_addrs_map();
	if (!local)
		return local.error();
	std::unique_ptr<XdpDataplane> dp(
		new XdpDataplane(options, std::move(*ifnames), std::move(*local)));

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
	BF_TRY(dp->sync_names(*links));
	BF_TRY(dp->sync_local_routes());
	BF_TRY(dp->adopt(*links));
	return dp;
}

bool XdpDataplane::eligible(const rtnl::Link &link) const
{
	// The generated code parses an Ethernet header; loopback has an all-zero one.
	if (link.type == ARPHRD_ETHER)
		return true;
	return link.type == ARPHRD_LOOPBACK && options_.loopback;
}

std::string XdpDataplane::link_name(int ifindex) const
{
	auto it = names_.find(ifindex);
	if (it == names_.end())
		return "ifindex " + std::to_string(ifindex);
	return name_of(it->second);
}

Status XdpDataplane::sync_names(const std::vector<rtnl::Link> &links)
{
	std::map<int, std::array<uint8_t, 16>> now;
	for (const auto &l : links)
		now[l.ifindex] = l.name;
	for (const auto &[ifindex, name] : now) {
		auto it = names_.find(ifindex);
		if (it != names_.end() && it->second == name)
			continue;
		BF_TRY(set_ifname(ifnames_.get(), static_cast<uint32_t>(ifindex), name));
		names_[ifindex] = name;
	}
	for (auto it = names_.begin(); it != names_.end();) {
		if (now.count(it->first)) {
			++it;
			continue;
		}
		(void)delete_ifname(ifnames_.get(), static_cast<uint32_t>(it->first));
		it = names_.erase(it);
	}
	return {};
}

Status XdpDataplane::sync_local_routes()
{
	auto dumped = rtnl::dump_local_routes();
	if (!dumped)
		return dumped.error();
	std::set<rtnl::LocalRoute> now(dumped->begin(), dumped->end());
	groups_ = joined_groups();
	for (uint32_t group : groups_)
		now.insert(rtnl::LocalRoute{group, 32});
	// Add before removing: an address that moves is never missing in between.
	for (const auto &r : now) {
		if (routes_.count(r))
			continue;
		BF_TRY(add_local_addr(local_addrs_.get(), r.addr, r.prefixlen));
		routes_.insert(r);
	}
	for (auto it = routes_.begin(); it != routes_.end();) {
		if (now.count(*it)) {
			++it;
			continue;
		}
		(void)delete_local_addr(local_addrs_.get(), it->addr, it->prefixlen);
		it = routes_.erase(it);
	}
	return {};
}

Status XdpDataplane::adopt(const std::vector<rtnl::Link> &links)
{
	for (const auto &link : links) {
		if (!eligible(link))
			continue;
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		if (bpf_xdp_query(link.ifindex, 0, &q))
			continue;
		const std::pair<uint32_t, uint32_t> modes[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE},
							       {q.skb_prog_id, XDP_FLAGS_SKB_MODE},
							       {q.hw_prog_id, XDP_FLAGS_HW_MODE}};
		for (auto [id, mode] : modes) {
			if (!id)
				continue;
			Fd fd(bpf_prog_get_fd_by_id(id));
			if (!fd || !is_ours(fd.get()))
				continue;
			log::info("adopting program id " + std::to_string(id) + " on " +
				  name_of(link.name) + " (" + std::string(mode_name(mode)) +
				  ") left by an earlier helper");
			attached_[link.ifindex] = Attached{mode, fd.get()};
			adopted_[link.ifindex] = std::move(fd);
			break;
		}
	}
	return {};
}

Result<int> XdpDataplane::prog_fd_for(Generation &gen, const rtnl::Link &link)
{
	// Loopback has no driver to offload to: it runs the shared program in generic mode.
	if (options_.mode == XdpMode::Offload && link.type != ARPHRD_LOOPBACK) {
		auto it = gen.per_device.find(link.ifindex);
		if (it == gen.per_device.end()) {
			LoadOptions lo;
			lo.prog_ifindex = static_cast<uint32_t>(link.ifindex);
			auto p = load_program(gen.code, ifnames_.get(), local_addrs_.get(), lo);
			if (!p)
				return make_error(p.error().errnum,
						  "offloading to " + name_of(link.name) +
							  " failed (the device cannot run it): " +
							  p.error().message);
			it = gen.per_device.emplace(link.ifindex, std::move(*p)).first;
		}
		return it->second.fd();
	}
	if (!gen.shared) {
		auto p = load_program(gen.code, ifnames_.get(), local_addrs_.get(), LoadOptions{});
		if (!p)
			return p.error();
		gen.shared.emplace(std::move(*p));
	}
	return gen.shared->fd();
}

Result<XdpDataplane::Attached> XdpDataplane::attach(const rtnl::Link &link, Generation &gen,
						    const Attached *old)
{
	auto fd = prog_fd_for(gen, link);
	if (!fd)
		return fd.error();
	const std::string name = name_of(link.name);
	if (old) {
		// Atomic on this interface: the kernel swaps the program only if the one
		// attached is still `old`.
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old->prog_fd);
		int err = bpf_xdp_attach(link.ifindex, *fd, old->mode, &opts);
		if (!err)
			return Attached{old->mode, *fd};
		uint32_t id = 0;
		if (err != -EEXIST || bpf_xdp_query_id(link.ifindex, 0, &id))
			return make_error(-err, "replacing the XDP program on " + name + ": " +
							errstr(err));
		if (id)
			return make_error(EBUSY,
					  name + " runs XDP program " + describe_prog(id) +
						  " in place of bpfilter's: remove it first");
		// Someone detached ours: nothing filters there now, so attach afresh.
		log::warn("bpfilter's XDP program had been removed from " + name +
			  "; attaching it again");
	}

	std::vector<uint32_t> modes;
	if (link.type == ARPHRD_LOOPBACK)
		modes = {XDP_FLAGS_SKB_MODE}; // no driver hook on loopback, in any mode
	else if (options_.mode == XdpMode::Native)
		modes = {XDP_FLAGS_DRV_MODE};
	else if (options_.mode == XdpMode::Generic)
		modes = {XDP_FLAGS_SKB_MODE};
	else if (options_.mode == XdpMode::Offload)
		modes = {XDP_FLAGS_HW_MODE};
	else
		modes = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};

	int err = 0;
	for (uint32_t mode : modes) {
		err = bpf_xdp_attach(link.ifindex, *fd, mode | XDP_FLAGS_UPDATE_IF_NOEXIST,
				     nullptr);
		if (!err)
			return Attached{mode, *fd};
		if (err == -EBUSY || err == -EEXIST) {
			uint32_t id = 0;
			bpf_xdp_query_id(link.ifindex, 0, &id);
			// A device that comes from another namespace brings that namespace's
			// program along: ours by name, replaced like an adopted one.
			LIBBPF_OPTS(bpf_xdp_query_opts, q);
			Fd theirs(id ? bpf_prog_get_fd_by_id(id) : -1);
			if (theirs && is_ours(theirs.get()) &&
			    !bpf_xdp_query(link.ifindex, 0, &q) &&
			    q.attach_mode != XDP_ATTACHED_MULTI) {
				uint32_t cur =
					q.attach_mode == XDP_ATTACHED_DRV   ? XDP_FLAGS_DRV_MODE
					: q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE
									    : XDP_FLAGS_HW_MODE;
				LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = theirs.get());
				int e = bpf_xdp_attach(link.ifindex, *fd, cur, &opts);
				if (!e) {
					log::info("replaced bpfilter's program id " +
						  std::to_string(id) + " that " + name +
						  " brought from elsewhere");
					return Attached{cur, *fd};
				}
			}
			return make_error(EBUSY,
					  name + " already runs XDP program " + describe_prog(id) +
						  ", which is not bpfilter's: remove it first");
		}
		if (err == -ENODEV)
			break;
		if (modes.size() > 1 && mode == XDP_FLAGS_DRV_MODE)
			log::info(name + ": no native XDP (" + errstr(err) +
				  "), using generic XDP");
	}
	return make_error(-err, "attaching XDP to " + name + " in " +
					std::string(mode_name(modes.back())) +
					" mode: " + errstr(err));
}

void XdpDataplane::roll_back(const std::vector<std::pair<rtnl::Link, Attached>> &switched,
			     const std::map<int, Attached> &old)
{
	for (auto it = switched.rbegin(); it != switched.rend(); ++it) {
		const auto &[link, now] = *it;
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = now.prog_fd);
		auto o = old.find(link.ifindex);
		int err = o != old.end()
				  ? bpf_xdp_attach(link.ifindex, o->second.prog_fd, now.mode, &opts)
				  : bpf_xdp_detach(link.ifindex, now.mode, &opts);
		if (err && err != -ENODEV)
			log::error("rolling back " + name_of(link.name) +
				   " failed: " + errstr(err) + "; it runs the refused table");
	}
}

Status XdpDataplane::check(const ir::Table &table) const
{
	return codegen::check_xdp(table);
}

Result<std::vector<ir::Counter>> XdpDataplane::replace(const ir::Table &table)
{
	const auto t_start = clock::now();
	BF_TRY(check(table));
	auto code = codegen::compile_xdp(table, codegen::Options{.tests = options_.tests});
	if (!code)
		return code.error();
	auto gen = std::make_unique<Generation>();
	gen->code = std::move(*code);
	// Load (and verify) before touching any interface; offloaded programs are loaded
	// per device as they are attached.
	if (options_.mode != XdpMode::Offload) {
		// A Branch program the kernel refuses has a second chance: no need to ask why.
		const bool second_chance = gen->code.tests != codegen::Options::Tests::Accumulate;
		auto p = load_program(gen->code, ifnames_.get(), local_addrs_.get(),
				      LoadOptions{.explain = !second_chance});
		if (!p && second_chance) {
			// The faster form was too much for this kernel's verifier: the one it
			// takes at any size.
			log::info("the kernel refused the table with a jump per test (" +
				  std::to_string(gen->code.insns.size()) +
				  " instructions); compiling it with a jump per rule");
			auto again = codegen::compile_xdp(
				table,
				codegen::Options{.tests = codegen::Options::Tests::Accumulate});
			if (!again)
				return again.error();
			gen->code = std::move(*again);
			p = load_program(gen->code, ifnames_.get(), local_addrs_.get(),
					 LoadOptions{});
		}
		if (!p)
			return p.error();
		gen->shared.emplace(std::move(*p));
	}

	const auto t_loaded = clock::now();
	if (options_.restore_follows && !current_ && !adopted_.empty()) {
		log::info("keeping the " + std::to_string(adopted_.size()) +
			  " programs of an earlier helper attached until its table is restored");
		current_ = std::move(gen);
		return std::vector<ir::Counter>{};
	}
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	BF_TRY(sync_names(*links));
	// Groups joined since the last look: no event says when a socket joins.
	BF_TRY(refresh_groups());

	std::vector<std::pair<rtnl::Link, Attached>> switched;
	std::map<int, Attached> next;
	for (const auto &link : *links) {
		if (!eligible(link)) {
			if (link.type != ARPHRD_LOOPBACK && unfiltered_.insert(link.ifindex).second)
				log::warn(name_of(link.name) + " (link type " +
					  std::to_string(link.type) +
					  ") has no Ethernet header: its traffic is not filtered");
			continue;
		}
		auto o = attached_.find(link.ifindex);
		auto a = attach(link, *gen, o == attached_.end() ? nullptr : &o->second);
		if (!a) {
			if (a.error().errnum == ENODEV) // gone meanwhile
				continue;
			roll_back(switched, attached_);
			return a.error();
		}
		switched.emplace_back(link, *a);
		next[link.ifindex] = *a;
	}

	std::unique_ptr<Generation> old = std::move(current_);
	std::map<int, Fd> old_adopted = std::move(adopted_);
	current_ = std::move(gen);
	attached_ = std::move(next);
	adopted_.clear();

	const auto t_attached = clock::now();
	wait_for_readers();
	const auto form = current_->code.tests;
	const auto chunks =
		std::count_if(current_->code.functions.begin(), current_->code.functions.end(),
			      [](const codegen::Function &fn) { return fn.global; });
	log::info("table of " + std::to_string(table.rules.size()) + " rules in force on " +
		  std::to_string(attached_.size()) + " interfaces (" +
		  std::to_string(current_->code.insns.size()) + " instructions, " +
		  (form == codegen::Options::Tests::Branch ? "a jump per test"
		   : form == codegen::Options::Tests::FirstBranch
			   ? "a jump per rule and its first test"
			   : "a jump per rule") +
		  (chunks ? ", INPUT in " + std::to_string(chunks) + " chunks" : std::string()) +
		  "): compiled and loaded in " + ms_between(t_start, t_loaded) + ", attached in " +
		  ms_between(t_loaded, t_attached) + ", old program quiet after " +
		  ms_between(t_attached, clock::now()));
	if (!old)
		return std::vector<ir::Counter>{};
	auto counters = old->read_counters();
	if (!counters) {
		// The new table is in force already; report the loss, do not undo the swap.
		log::error("reading the old table's counters: " + counters.error().message);
		return std::vector<ir::Counter>(old->code.num_counters);
	}
	return counters;
}

Result<std::vector<ir::Counter>> XdpDataplane::Generation::read_counters() const
{
	std::vector<ir::Counter> sum(code.num_counters);
	auto add = [&](const LoadedProgram &p) -> Status {
		auto c = p.counters();
		if (!c)
			return c.error();
		for (size_t i = 0; i < sum.size() && i < c->size(); i++) {
			sum[i].packets += (*c)[i].packets;
			sum[i].bytes += (*c)[i].bytes;
		}
		return {};
	};
	if (shared)
		BF_TRY(add(*shared));
	for (const auto &[ifindex, p] : per_device)
		BF_TRY(add(p));
	return sum;
}

Result<std::vector<ir::Counter>> XdpDataplane::counters() const
{
	if (!current_)
		return std::vector<ir::Counter>{};
	return current_->read_counters();
}

int XdpDataplane::event_fd() const
{
	return watcher_ ? watcher_->fd() : -1;
}

Status XdpDataplane::attach_new_links(const std::vector<rtnl::Link> &links)
{
	if (!current_)
		return {}; // no table yet: the first replace attaches everywhere
	Status first;
	for (const auto &link : links) {
		if (!eligible(link) || attached_.count(link.ifindex))
			continue;
		auto a = attach(link, *current_, nullptr);
		if (a) {
			log::info("filtering new interface " + name_of(link.name) + " (" +
				  std::string(mode_name(a->mode)) + ")");
			attached_[link.ifindex] = *a;
			unfiltered_.erase(link.ifindex);
			continue;
		}
		if (a.error().errnum == ENODEV)
			continue;
		if (unfiltered_.insert(link.ifindex).second)
			log::error("new interface " + name_of(link.name) +
				   " is NOT filtered: " + a.error().message);
		if (first)
			first = a.error();
	}
	return first;
}

Status XdpDataplane::link_added(int /*ifindex*/)
{
	// A full pass is as cheap as a lookup of one link and also catches renames and links
	// whose reports were lost.
	auto links = rtnl::dump_links();
	if (!links)
		return links.error();
	BF_TRY(sync_names(*links));
	return attach_new_links(*links);
}

Status XdpDataplane::addrs_changed()
{
	return sync_local_routes();
}

Status XdpDataplane::refresh_groups()
{
	if (joined_groups() == groups_)
		return {};
	return sync_local_routes();
}

Status XdpDataplane::process_events()
{
	if (!watcher_)
		return {};
	auto events = watcher_->read();
	if (!events)
		return events.error();
	bool links = false, routes = false;
	for (const auto &ev : *events) {
		switch (ev.kind) {
		case rtnl::Event::Kind::LinkNew:
			links = true;
			break;
		case rtnl::Event::Kind::LinkDel:
			// The kernel dropped the device's program with the device.
			attached_.erase(ev.link.ifindex);
			adopted_.erase(ev.link.ifindex);
			unfiltered_.erase(ev.link.ifindex);
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

Status XdpDataplane::detach_all()
{
	Status first;
	for (const auto &[ifindex, a] : attached_) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = a.prog_fd);
		int err = bpf_xdp_detach(ifindex, a.mode, &opts);
		if (!err || err == -ENODEV)
			continue;
		std::string msg = "detaching from " + link_name(ifindex) + ": " + errstr(err);
		log::warn(msg);
		if (first)
			first = make_error(-err, msg);
	}
	attached_.clear();
	adopted_.clear();
	current_.reset();
	return first;
}

std::map<int, uint32_t> XdpDataplane::attachments() const
{
	std::map<int, uint32_t> out;
	for (const auto &[ifindex, a] : attached_)
		out[ifindex] = a.mode;
	return out;
}

} // namespace bpfilter::loader
