// Dispatcher: routes each request to its network namespace's TableService, entering that namespace
// for the request.
#include "server/dispatcher.hpp"

#include <algorithm>

#include <fcntl.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/log.hpp"
#include "loader/nft_probe.hpp"

namespace bpfilter::server
{
namespace
{

std::string cookie_str(uint64_t cookie)
{
	return "netns " + std::to_string(cookie);
}

// After a table is put in force: nf_tables' IPv4 tables filter beside it, unseen by bpfilter
// (iptables-nft is Debian's default iptables). Said once for each set of tables found.
void warn_nft_tables(uint64_t cookie, std::string &said)
{
	auto tables = loader::nft_ipv4_tables();
	if (!tables || tables->empty()) {
		said.clear();
		return;
	}
	std::string list;
	for (const std::string &t : *tables)
		list += (list.empty() ? "" : ", ") + t;
	if (list == said)
		return;
	said = list;
	log::warn(cookie_str(cookie) + ": nf_tables filters IPv4 here too (table " + list +
		  "): rules made with iptables-nft or nft are not seen by bpfilter and run "
		  "beside its table. `iptables -V` must say legacy: update-alternatives --set "
		  "iptables /usr/sbin/iptables-legacy");
}

// Returns the helper to its own namespace when a request is done, whatever happened.
class NetnsVisit
{
public:
	NetnsVisit(int own, std::atomic<bool> &healthy) : own_(own), healthy_(healthy) {}
	Status enter(int target)
	{
		if (setns(target, CLONE_NEWNET) < 0)
			return make_error(errno,
					  std::string("entering the caller's network namespace: ") +
						  strerror(errno));
		entered_ = true;
		return {};
	}
	~NetnsVisit()
	{
		if (entered_ && setns(own_, CLONE_NEWNET) < 0) {
			log::error(
				std::string("cannot return to the helper's network namespace: ") +
				strerror(errno));
			healthy_.store(false);
		}
	}

private:
	int own_;
	std::atomic<bool> &healthy_;
	bool entered_ = false;
};

service::Reply status_reply(int status)
{
	return service::Reply{status, {}};
}

// "pid P (COMM)" of the process that asked (req.arg: its pid in the helper's pid namespace,
// which the module and the front door fill in), for the log.
std::string caller(uint32_t pid)
{
	if (!pid)
		return "";
	std::string comm = "?";
	loader::Fd fd(
		open(("/proc/" + std::to_string(pid) + "/comm").c_str(), O_RDONLY | O_CLOEXEC));
	char buf[32];
	if (fd) {
		const ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
		if (n > 0)
			comm.assign(buf, static_cast<size_t>(n) - (buf[n - 1] == '\n' ? 1 : 0));
	}
	return "pid " + std::to_string(pid) + " (" + comm + ")";
}

service::Reply error_reply(const Error &e)
{
	log::error(e.message);
	return status_reply(-e.errnum);
}

} // namespace

uint64_t current_netns_cookie()
{
	loader::Fd s(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	if (!s || getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
		return 0;
	return cookie;
}

Dispatcher::Dispatcher(const DispatcherOptions &options, loader::Fd own_netns, uint64_t own_cookie)
    : options_(options), own_netns_(std::move(own_netns)), own_cookie_(own_cookie)
{
}

Dispatcher::~Dispatcher() = default;

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(const DispatcherOptions &options)
{
	loader::Fd own(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
	if (!own)
		return make_error(errno, std::string("opening the helper's network namespace: ") +
						 strerror(errno));
	return std::unique_ptr<Dispatcher>(
		new Dispatcher(options, std::move(own), current_netns_cookie()));
}

Dispatcher::NamespacePtr Dispatcher::find(uint64_t cookie) const
{
	const std::lock_guard<std::mutex> hold(map_mu_);
	auto it = namespaces_.find(cookie);
	return it == namespaces_.end() ? nullptr : it->second;
}

Result<Dispatcher::NamespacePtr> Dispatcher::create(uint64_t cookie,
						    std::unique_lock<std::mutex> &hold)
{
	// The watcher's socket would keep a namespace alive: only the helper's own gets one.
	loader::XdpOptions xdp = options_.xdp;
	xdp.watch = xdp.watch && cookie == own_cookie_;
	auto ns = std::make_shared<Namespace>();
	if (options_.make_dataplane) {
		ns->service = std::make_unique<service::TableService>(options_.make_dataplane());
	} else {
		auto dp = loader::BpfDataplane::create(xdp);
		if (!dp)
			return dp.error();
		ns->dataplane = dp->get();
		ns->service = std::make_unique<service::TableService>(std::move(*dp));
	}
	Status st = ns->service->init();
	if (!st)
		return make_error(st.error().errnum, "installing the initial table in " +
							     cookie_str(cookie) + ": " +
							     st.error().message);
	log::info("serving " + cookie_str(cookie) + " (XDP mode " +
		  std::string(loader::to_string(xdp.mode)) + ")");
	hold = std::unique_lock<std::mutex>(ns->mu);
	const std::lock_guard<std::mutex> map(map_mu_);
	namespaces_[cookie] = ns;
	return ns;
}

void Dispatcher::erase(uint64_t cookie)
{
	NamespacePtr ns;
	{
		const std::lock_guard<std::mutex> hold(map_mu_);
		auto it = namespaces_.find(cookie);
		if (it == namespaces_.end())
			return;
		ns = std::move(it->second);
		namespaces_.erase(it);
	}
	// Whoever holds the namespace's lock holds a reference too: the last one frees it.
}

std::vector<Dispatcher::Idle> Dispatcher::idle_namespaces() const
{
	std::vector<Idle> idle;
	const std::lock_guard<std::mutex> hold(map_mu_);
	for (const auto &[cookie, ns] : namespaces_) {
		std::unique_lock<std::mutex> lock(ns->mu, std::try_to_lock);
		if (lock.owns_lock())
			idle.push_back(Idle{cookie, ns, std::move(lock)});
	}
	return idle;
}

Status Dispatcher::serve_own_namespace()
{
	if (find(own_cookie_))
		return {};
	std::unique_lock<std::mutex> hold;
	auto ns = create(own_cookie_, hold);
	if (!ns)
		return ns.error();
	return {};
}

service::Reply Dispatcher::handle(const bpfilter_request &req, std::span<const uint8_t> data)
{
	return handle(req, std::vector<uint8_t>(data.begin(), data.end()));
}

service::Reply Dispatcher::handle(const bpfilter_request &req, std::vector<uint8_t> &&data)
{
	loader::Fd netns(req.netns_fd >= 0 ? req.netns_fd : -1);
	if (req.op == BPFILTER_OP_HEALTH)
		return status_reply(0);
	if (req.op == BPFILTER_OP_NETNS_GONE) {
		// The namespace is gone, and its devices with their programs: no descriptor
		// can name it any more, the cookie does.
		erase(req.netns_cookie);
		return status_reply(0);
	}

	uint64_t cookie = own_cookie_;
	if (!netns) {
		if (req.netns_cookie && own_cookie_ && req.netns_cookie != own_cookie_)
			return error_reply(make_error(
				EXDEV, "a caller in " + cookie_str(req.netns_cookie) +
					       " asked the helper, which serves only its own " +
					       cookie_str(own_cookie_) +
					       ": run iptables in the helper's network namespace"));
		return handle_in_netns(req, cookie, std::move(data));
	}

	NetnsVisit visit(own_netns_.get(), healthy_);
	Status st = visit.enter(netns.get());
	if (!st)
		return error_reply(st.error());
	cookie = current_netns_cookie();
	if (req.netns_cookie && cookie && cookie != req.netns_cookie)
		return error_reply(make_error(
			EINVAL, "request for " + cookie_str(req.netns_cookie) +
					" came with the descriptor of " + cookie_str(cookie)));
	return handle_in_netns(req, req.netns_cookie ? req.netns_cookie : cookie, std::move(data));
}

service::Reply Dispatcher::handle_in_netns(const bpfilter_request &req, uint64_t cookie,
					   std::vector<uint8_t> &&data)
{
	// Lines logged while serving name the namespace and who asked, rate-limited per
	// namespace.
	const bool sockopt = req.op == BPFILTER_OP_SETSOCKOPT || req.op == BPFILTER_OP_GETSOCKOPT;
	const std::string who = sockopt ? caller(req.arg) : "";
	log::Scope scope(cookie, cookie_str(cookie) + (who.empty() ? "" : ", " + who));
	// The namespace's state, held for the request (the serving loop reads its events
	// only while no request holds it). Declared in this order: unlocked, then let go.
	NamespacePtr found = find(cookie);
	std::unique_lock<std::mutex> hold;
	if (found)
		hold = std::unique_lock<std::mutex>(found->mu);
	Namespace *const existing = found.get();
	switch (req.op) {
	case BPFILTER_OP_SETSOCKOPT:
	case BPFILTER_OP_GETSOCKOPT: {
		if (!found) {
			auto made = create(cookie, hold);
			if (!made)
				return error_reply(made.error());
			found = *made;
		}
		Namespace *ns = found.get();
		if (req.op == BPFILTER_OP_SETSOCKOPT) {
			// The module copies only what ip_tables reads (the header and its
			// entries), which may be less than the caller's optlen, never more.
			if (req.optlen < data.size())
				return error_reply(make_error(
					EINVAL, "setsockopt request with optlen " +
							std::to_string(req.optlen) + " but " +
							std::to_string(data.size()) + " bytes"));
			service::Reply reply =
				ns->service->setsockopt(req.optname, std::move(data));
			if (reply.status == 0 && req.optname == IPT_SO_SET_REPLACE && ns->dataplane)
				warn_nft_tables(cookie, ns->nft_said);
			return reply;
		}
		return ns->service->getsockopt(req.optname, req.optlen, data);
	}
	case BPFILTER_OP_LINK_ADDED:
	case BPFILTER_OP_ADDRS_CHANGED: {
		// Without a table there is nothing to attach: the first request attaches
		// everywhere.
		if (!existing || !existing->dataplane)
			return status_reply(0);
		Status st = req.op == BPFILTER_OP_LINK_ADDED
				    ? existing->dataplane->link_added(static_cast<int>(req.arg))
				    : existing->dataplane->addrs_changed();
		return st ? status_reply(0) : error_reply(st.error());
	}
	case BPFILTER_OP_HASHLIMIT_READ: {
		if (!existing || !existing->dataplane)
			return status_reply(-ENOENT);
		auto text = existing->dataplane->hashlimit_proc(
			std::string(reinterpret_cast<const char *>(data.data()), data.size()));
		if (!text)
			return text.error().errnum == ENOENT ? status_reply(-ENOENT)
							     : error_reply(text.error());
		return service::Reply{0, std::vector<uint8_t>(text->begin(), text->end())};
	}
	case BPFILTER_OP_PROC_NAMES: {
		// The module's /proc files for this namespace: one per -m recent list and per
		// -m hashlimit htable the tables in force name.
		std::vector<uint8_t> names;
		auto add = [&](char kind, const std::string &name) {
			names.push_back(static_cast<uint8_t>(kind));
			names.insert(names.end(), name.begin(), name.end());
			names.push_back(0);
		};
		if (existing && existing->dataplane) {
			for (const auto &name : existing->dataplane->recent_names())
				add('r', name);
			for (const auto &name : existing->dataplane->htable_names())
				add('h', name);
		}
		return service::Reply{0, std::move(names)};
	}
	case BPFILTER_OP_LINK_STRAY: {
		// A device that brought another namespace's programs along into one that
		// keeps no table here.
		if (existing)
			return status_reply(0);
		Status st = loader::detach_stray(static_cast<int>(req.arg));
		return st ? status_reply(0) : error_reply(st.error());
	}
	case BPFILTER_OP_DETACH: {
		if (existing) {
			Status st =
				existing->dataplane ? existing->dataplane->detach_all() : Status{};
			erase(cookie);
			return st ? status_reply(0) : error_reply(st.error());
		}
		if (options_.make_dataplane)
			return status_reply(0);
		// Not served since a restart: an earlier helper's programs may still be
		// attached. A data plane adopts them on creation, and detaches them.
		loader::XdpOptions xdp = options_.xdp;
		xdp.watch = false;
		auto dp = loader::BpfDataplane::create(xdp);
		if (!dp)
			return error_reply(dp.error());
		Status st = (*dp)->detach_all();
		return st ? status_reply(0) : error_reply(st.error());
	}
	default:
		return error_reply(
			make_error(EOPNOTSUPP, "unknown request op " + std::to_string(req.op)));
	}
}

std::vector<int> Dispatcher::event_fds() const
{
	std::vector<int> fds;
	for (const Idle &idle : idle_namespaces()) {
		const Namespace &ns = *idle.ns;
		if (!ns.dataplane)
			continue;
		for (int fd : ns.dataplane->event_fds())
			fds.push_back(fd);
		if (ns.dataplane->log_ring())
			fds.push_back(ns.dataplane->log_ring()->fd());
	}
	return fds;
}

namespace
{

// nf_log_allowed(): a namespace other than the initial one logs only with
// net.netfilter.nf_log_all_netns on (a sysctl of the initial namespace, where the
// module's helper runs).
bool all_netns_log()
{
	char c = '0';
	FILE *f = fopen("/proc/sys/net/netfilter/nf_log_all_netns", "re");
	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = '0';
		fclose(f);
	}
	return c != '0';
}

} // namespace

// Every line the namespace's programs wrote, to the sink.
void Dispatcher::print_log(uint64_t cookie, Namespace &ns)
{
	const bool allowed = cookie == own_cookie_ || all_netns_log();
	const service::LogDialect dialect = service::kernel_log_dialect();
	auto n = ns.dataplane->log_ring()->drain([&](std::span<const uint8_t> record) {
		auto line = service::format_log(record, dialect);
		if (!line)
			log::error(line.error().message);
		else if (allowed && options_.log_sink)
			options_.log_sink(*line);
	});
	if (!n)
		log::error(n.error().message);
}

// Lines lost to a full ring: said where the lines go, once a tick at most.
void Dispatcher::report_lost_lines(uint64_t cookie, Namespace &ns)
{
	loader::LogRing *ring = ns.dataplane ? ns.dataplane->log_ring() : nullptr;
	if (!ring)
		return;
	print_log(cookie, ns); // what came with the lost ones, first
	auto lost = ring->newly_lost();
	if (!lost) {
		log::error(lost.error().message);
		return;
	}
	if (*lost == 0)
		return;
	const std::string what = "bpfilter: " + std::to_string(*lost) + " LOG lines lost in " +
				 cookie_str(cookie) + ": the ring buffer was full";
	log::warn(what);
	if (options_.log_sink)
		options_.log_sink(service::LogLine{4, what});
}

void Dispatcher::on_event(int fd)
{
	// A namespace a request holds now is skipped: its descriptors stay readable, and
	// event_fds() offers them again once it is idle.
	for (Idle &idle : idle_namespaces()) {
		const uint64_t cookie = idle.cookie;
		Namespace &ns = *idle.ns;
		if (!ns.dataplane)
			continue;
		if (ns.dataplane->log_ring() && ns.dataplane->log_ring()->fd() == fd) {
			print_log(cookie, ns);
			return;
		}
		const auto fds = ns.dataplane->event_fds();
		if (std::find(fds.begin(), fds.end(), fd) == fds.end())
			continue;
		Status st = ns.dataplane->process_events(fd);
		if (!st)
			log::error("following interface changes in " + cookie_str(cookie) + ": " +
				   st.error().message);
		return;
	}
}

void Dispatcher::tick()
{
	// Namespaces a request holds now get their turn at a later tick.
	for (Idle &idle : idle_namespaces()) {
		Namespace &ns = *idle.ns;
		report_lost_lines(idle.cookie, ns);
		if (!ns.dataplane)
			continue;
		if (Status st = ns.dataplane->hashlimit_gc(); !st)
			log::error("-m hashlimit's garbage collection in " +
				   cookie_str(idle.cookie) + ": " + st.error().message);
		if (idle.cookie != own_cookie_)
			continue;
		if (Status st = ns.dataplane->refresh_groups(); !st)
			log::error("following multicast groups: " + st.error().message);
	}
}

Status Dispatcher::detach_own()
{
	NamespacePtr ns = find(own_cookie_);
	if (!ns)
		return {};
	std::unique_lock<std::mutex> hold(ns->mu);
	Status st = ns->dataplane ? ns->dataplane->detach_all() : Status{};
	erase(own_cookie_);
	return st;
}

} // namespace bpfilter::server
