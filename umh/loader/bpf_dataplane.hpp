// BpfDataplane: one network namespace's table as programs at XDP and tc on all its devices,
// swapped atomically.
#pragma once

#include <linux/if_link.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "loader/attach.hpp"
#include "loader/conntrack.hpp"
#include "loader/fd.hpp"
#include "loader/hashlimit.hpp"
#include "loader/log_ring.hpp"
#include "loader/program.hpp"
#include "loader/recent.hpp"
#include "loader/rtnl.hpp"
#include "service/dataplane.hpp"

namespace bpfilter::loader
{

// How programs are attached. Auto: the driver's native hook where it has one, generic
// (skb) XDP elsewhere. Offload: on the NIC itself, a program loaded for each device.
enum class XdpMode : uint8_t { Auto, Native, Generic, Offload };

Result<XdpMode> parse_xdp_mode(std::string_view name);
std::string_view to_string(XdpMode mode);

struct XdpOptions {
	XdpMode mode = XdpMode::Auto;
	// Watch rtnetlink for new interfaces and address changes. The front door does; in
	// the module's helper the module reports them (link_added, addrs_changed), because a
	// watcher's socket would keep the namespace alive.
	bool watch = true;
	// Filter loopback too (generic XDP), as netfilter's INPUT sees loopback traffic.
	bool loopback = true;
	// The caller restores the namespace's last table right after the first one (the
	// module does after restarting a helper). Then the first table is not attached where
	// an earlier helper's programs are found: they keep filtering until the restored
	// table replaces them, rather than the empty initial table in between.
	bool restore_follows = false;
	// How rules test packets (codegen::Options::Tests): Auto but for tests.
	codegen::Options::Tests tests = codegen::Options::Tests::Auto;
	// Turn connection tracking on in the namespace for tables that use it (hold_conntrack):
	// the front door does; under the module, the module takes the reference.
	bool hold_conntrack = false;
};

// Works on the network namespace the process is in when it is created and whenever one
// of its methods is called: the caller enters the namespace first.
//
// Every device of the namespace gets the programs its kind needs (Documentation/design.md,
// "Hooks"): XDP at ingress on Ethernet devices with no master and no upper device (and
// loopback), tc ingress on every other device that receives IP, tc egress on every device
// that is not enslaved to a bridge or bond; enslaved devices get none (their master is
// where the stack sees IP).
class BpfDataplane final : public service::Dataplane
{
public:
	// Creates the namespace's Devices and LocalAddrs maps and fills them, and adopts the
	// programs an earlier helper left attached (ours by name), so that the first replace
	// swaps them atomically.
	static Result<std::unique_ptr<BpfDataplane>> create(const XdpOptions &options);
	// Leaves the programs attached: they keep filtering while a restarted helper takes
	// over. detach_all() is the way to remove them.
	~BpfDataplane() override;

	Status check(const ir::Table &table) const override;
	Result<std::vector<ir::Counter>> replace(ir::Table table,
						 service::IrSource source) override;
	Result<std::vector<ir::Counter>> counters() const override;
	// Into the Counters map's base (program.hpp), where a restarted helper finds them.
	Status add_counters(const std::vector<ir::Counter> &add) override;

	// The descriptors to poll (the watcher's, and conntrack's events once a table tracks
	// connections), and what to do when one is readable.
	std::vector<int> event_fds() const;
	Status process_events(int fd);

	// The module's reports: an interface appeared, changed or was renamed (ifindex), an
	// IPv4 address changed.
	Status link_added(int ifindex);
	Status addrs_changed();

	// -m hashlimit's garbage collection (htable_gc()): called now and then, removes the
	// expired entries of every htable whose gcinterval has passed since its last run.
	Status hashlimit_gc();
	// The names of the htables in force.
	std::vector<std::string> htable_names() const;
	// /proc/net/ipt_hashlimit/NAME's text now (ENOENT: no htable of that name).
	Result<std::string> hashlimit_proc(const std::string &name) const;

	// Sockets join multicast groups without any event to say so: called now and then,
	// brings LocalAddrs up to date with the groups joined (see joined_groups()).
	Status refresh_groups();

	// -j LOG's records, once a table with LOG rules was loaded (null before).
	LogRing *log_ring() { return log_.get(); }
	const LogRing *log_ring() const { return log_.get(); }

	// Removes our programs from every device of the namespace (only where they are ours).
	Status detach_all();

	// What a device gets.
	struct Role {
		bool xdp = false, tc_in = false, tc_out = false;
		uint8_t l2len = 0; // link-layer header at tc (maps::DeviceValue)
		bool operator==(const Role &) const = default;
	};

private:
	// What is attached to a device: program fds owned by current_ or adopted_.
	struct Attached {
		uint32_t xdp_mode = 0; // XDP_FLAGS_DRV_MODE, _SKB_MODE or _HW_MODE
		int xdp_fd = -1;
		int tc_in_fd = -1;
		int tc_out_fd = -1;
	};
	// One table's programs: one per flavor shared by every device (loaded when some
	// device needs it), or per device when offloaded, and the counters they share.
	// The table's IR is not kept (it is as large as the table's blob, which the service
	// keeps): only what the generation reads after install(), and `source` to build the
	// IR again when a program must be compiled later (ir()).
	struct Generation {
		std::string name;			    // ir::Table::name
		uint32_t num_rules = 0;			    // one counter each
		std::vector<ir::HashlimitTable> hashlimits; // as replace() settled them
		std::vector<ir::RecentList> recent_lists;   // ir::Table::recent_lists
		service::IrSource source;
		const ir::Table *installing = nullptr; // the IR, while install() holds it
		// The IR: the one install() holds, else built again from `source` into `keep`.
		Result<const ir::Table *> ir(std::optional<ir::Table> &keep) const;
		codegen::ReplySysctls replies; // what REJECT's replies follow
		// INPUT or FORWARD reads or sets marks (codegen::needs_skb_mark()): tc ingress
		// judges every device, XDP none.
		bool skb_marks = false;
		Fd counters;
		uint64_t fingerprint = 0;      // of code: which table the counters count
		std::vector<ir::Counter> base; // what the map's base holds
		Fd limits; // -m limit's buckets: each table starts with full ones, as netfilter's
		Fd connlimit; // -m connlimit's lists: each table starts with none, as netfilter's
		std::vector<codegen::Options::RecentRef> recent; // its -m recent lists' numbers
		std::vector<codegen::Options::HashlimitRef> hashlimit; // its htables' numbers
		std::array<codegen::Program, 3> code;
		SetMaps set_maps; // code's sets' maps, shared by the programs
		std::array<std::optional<LoadedProgram>, 3> prog;
		std::map<int, LoadedProgram> offloaded;
		Status offloadable; // codegen::check_offload(table)
		std::set<int> told; // devices whose offload refusal was logged
		Result<std::vector<ir::Counter>> read_counters() const;
	};
	// One change to a device's attachments, and what it replaced: for rolling back.
	struct Change {
		int ifindex = 0;
		codegen::Flavor flavor = codegen::Flavor::Xdp;
		int old_fd = -1, new_fd = -1;
		uint32_t old_mode = 0, new_mode = 0;
	};

	BpfDataplane(const XdpOptions &options, Fd devices, Fd local_addrs);

	Result<std::optional<Role>> role_of(const rtnl::Link &link, bool skb_marks,
					    const std::vector<rtnl::Link> &links) const;
	Status sync_devices(const std::vector<rtnl::Link> &links);
	Status sync_local_routes();
	Status sync_local_routes(const std::vector<rtnl::Link> &links);
	Status sync_addr_types_map(const std::vector<rtnl::Link> &links, bool custom_rules);
	Status adopt(const std::vector<rtnl::Link> &links);
	LoadOptions load_options(const Generation &gen) const;
	Result<int> prog_fd(Generation &gen, codegen::Flavor flavor, const rtnl::Link &link);
	Result<int> offload_fd(Generation &gen, const rtnl::Link &link);
	// Does the device get the offloaded program? With --xdp-mode offload, an error when
	// it cannot; with auto, false and a log line saying why where the device could.
	Result<bool> offloads(const rtnl::Link &link, Generation &gen);
	Status attach_device(const rtnl::Link &link, Role role, Generation &gen, Attached &state,
			     std::vector<Change> &changes);
	Result<Attached> attach_xdp(const rtnl::Link &link, int fd, const Attached &old,
				    bool &upper_has_xdp, bool hw);
	Status attach_links(const std::vector<rtnl::Link> &links, Generation &gen,
			    std::map<int, Attached> &next, std::vector<Change> &changes);
	void roll_back(const std::vector<Change> &changes);
	static void carry_counters(const std::vector<Fd> &adopted, Generation &gen);
	Status set_xdp_judges(int ifindex, bool on);
	std::string link_name(int ifindex) const;

	XdpOptions options_;
	uint64_t netns_ino_ = 0; // the namespace's inode number, in the programs' names
	Fd devices_;
	Fd local_addrs_;
	// REJECT's ICMP rate limits, the namespace's as the kernel's are: made with the first
	// table that rejects, kept across tables.
	Fd icmp_global_, icmp_peers_;
	std::optional<rtnl::Watcher> watcher_;
	std::map<int, DeviceInfo> devices_held_; // what Devices holds
	// What LocalAddrs holds for a prefix (codegen::maps::LocalAddrValue).
	struct LocalEntry {
		uint8_t flags = 0;
		uint32_t prefsrc = 0;
		bool operator==(const LocalEntry &) const = default;
	};
	std::map<std::pair<uint32_t, uint8_t>, LocalEntry> routes_; // what LocalAddrs holds
	std::vector<uint32_t> groups_;				    // the joined groups among them
	// -m addrtype's routes (MapSlot::AddrTypes), kept with the local routes.
	Fd addr_types_;
	std::vector<ir::AddrtypeRoute> addr_types_held_;
	std::unique_ptr<Generation> current_;
	std::unique_ptr<LogRing> log_;	   // kept across tables: an old one's lines still come
	std::vector<Fd> adopted_;	   // programs of an earlier helper, still attached
	std::map<int, Attached> attached_; // ifindex -> what we attached there
	std::set<int> upper_xdp_;	   // devices where an upper device's XDP keeps ours off
	// Connection tracking: the kernel's side, and the maps every program of the
	// namespace shares (our own flows outlive a replace). Opened by the first table
	// that tracks connections.
	std::unique_ptr<Conntrack> conntrack_;
	bool holding_conntrack_ = false; // hold_conntrack(true) is in force
	Fd ct_events_;			 // open_ct_events(), with a watcher
	codegen::Options codegen_options(codegen::Flavor flavor, codegen::Options::Tests tests,
					 const Generation &gen) const;
	// -m recent's lists, the namespace's: made with the first table that names one.
	std::unique_ptr<RecentLists> recent_;

public:
	// /proc/net/xt_recent/NAME's counterparts (RecentLists::show, write); ENOENT when no
	// rule names the list.
	Result<std::string> recent_show(std::string_view name) const override;
	Status recent_write(std::string_view name, std::string_view input) override;
	std::vector<std::string> recent_names() const;

private:
	// The kernel's HZ, for -m limit: measured when a table first needs it.
	Result<uint32_t> kernel_hz() const;
	// The table installed as it is, its htables settled with their numbers (install() is
	// replace()'s body).
	Result<std::vector<ir::Counter>>
	install(ir::Table in, service::IrSource source,
		std::vector<codegen::Options::HashlimitRef> hashlimit);
	// xt_hashlimit's htables, the namespace's: made with the first table that names one.
	std::unique_ptr<Htables> htables_;
	mutable uint32_t hz_ = 0;
	mutable codegen::OwnerLayout owner_;  // -m owner's, read once (check())
	std::map<int, bool> offload_capable_; // by ifindex, probed once
};

} // namespace bpfilter::loader
