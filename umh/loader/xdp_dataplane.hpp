// XdpDataplane: one network namespace's table as XDP programs on all its interfaces, swapped
// atomically.
#pragma once

#include <linux/if_link.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "loader/fd.hpp"
#include "loader/program.hpp"
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
};

// Works on the network namespace the process is in when it is created and whenever one
// of its methods is called: the caller enters the namespace first.
class XdpDataplane final : public service::Dataplane
{
public:
	// Creates the namespace's Ifnames and LocalAddrs maps and fills them, and adopts the
	// programs an earlier helper left attached (ours by name), so that the first replace
	// swaps them atomically.
	static Result<std::unique_ptr<XdpDataplane>> create(const XdpOptions &options);
	// Leaves the programs attached: they keep filtering while a restarted helper takes
	// over. detach_all() is the way to remove them.
	~XdpDataplane() override;

	Status check(const ir::Table &table) const override;
	Result<std::vector<ir::Counter>> replace(const ir::Table &table) override;
	Result<std::vector<ir::Counter>> counters() const override;

	// The watcher's descriptor to poll (-1 without a watcher), and what to do when it is
	// readable.
	int event_fd() const;
	Status process_events();

	// The module's reports: an interface appeared or was renamed (ifindex), an IPv4
	// address changed.
	Status link_added(int ifindex);
	Status addrs_changed();

	// Sockets join multicast groups without any event to say so: called now and then,
	// brings LocalAddrs up to date with the groups joined (see joined_groups()).
	Status refresh_groups();

	// Removes our program from every interface (only where it is still ours).
	Status detach_all();

	// Interfaces our program is attached to, and how (XDP_FLAGS_*_MODE), for tests and logs.
	std::map<int, uint32_t> attachments() const;

private:
	struct Attached {
		uint32_t mode = 0; // XDP_FLAGS_DRV_MODE, _SKB_MODE or _HW_MODE
		int prog_fd = -1;  // owned by current_ or adopted_
	};
	// One table's loaded programs: one shared by every device, or one per device when
	// offloaded.
	struct Generation {
		std::optional<LoadedProgram> shared;
		std::map<int, LoadedProgram> per_device;
		codegen::Program code; // kept to load for devices that appear later (offload)
		Result<std::vector<ir::Counter>> read_counters() const;
	};

	XdpDataplane(const XdpOptions &options, Fd ifnames, Fd local_addrs);

	bool eligible(const rtnl::Link &link) const;
	Status sync_names(const std::vector<rtnl::Link> &links);
	Status sync_local_routes();
	Status adopt(const std::vector<rtnl::Link> &links);
	Status attach_new_links(const std::vector<rtnl::Link> &links);
	Result<Attached> attach(const rtnl::Link &link, Generation &gen, const Attached *old);
	Result<int> prog_fd_for(Generation &gen, const rtnl::Link &link);
	void roll_back(const std::vector<std::pair<rtnl::Link, Attached>> &switched,
		       const std::map<int, Attached> &old);
	std::string link_name(int ifindex) const;

	XdpOptions options_;
	Fd ifnames_;
	Fd local_addrs_;
	std::optional<rtnl::Watcher> watcher_;
	std::map<int, std::array<uint8_t, 16>> names_; // what Ifnames holds
	std::set<rtnl::LocalRoute> routes_;	       // what LocalAddrs holds
	std::vector<uint32_t> groups_;		       // the joined groups among them
	std::unique_ptr<Generation> current_;
	std::map<int, Fd> adopted_;	   // programs of an earlier helper, still attached
	std::map<int, Attached> attached_; // ifindex -> the program we attached there
	std::set<int> unfiltered_;	   // links we could not attach to (logged once)
};

} // namespace bpfilter::loader
