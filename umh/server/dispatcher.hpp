// Dispatcher: routes each request to its network namespace's TableService, entering that namespace
// for the request.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "bpfilter/msg.h"
#include "common/result.hpp"
#include "loader/bpf_dataplane.hpp"
#include "loader/fd.hpp"
#include "service/nf_log.hpp"
#include "service/table_service.hpp"

namespace bpfilter::server
{

struct DispatcherOptions {
	loader::XdpOptions xdp;
	// Where -j LOG's lines go: the kernel log, through the module or /dev/kmsg.
	std::function<void(const service::LogLine &)> log_sink;
	// Makes each namespace's data plane. Unset: a loader::BpfDataplane with `xdp`. Set
	// (the fuzz target's in-memory one): nothing is loaded or attached, and requests about
	// devices, addresses and LOG lines find nothing to act on.
	std::function<std::unique_ptr<service::Dataplane>()> make_dataplane;
};

// Requests about different namespaces may be handled on different threads at once; those
// about one namespace must come one at a time (serve_channel gives each namespace one
// worker). event_fds(), on_event() and tick() (the serving loop's thread) skip a namespace
// while a request about it is being handled, and never wait for one.
class Dispatcher
{
public:
	static Result<std::unique_ptr<Dispatcher>> create(const DispatcherOptions &options);
	~Dispatcher();

	// Answers one request. Owns req.netns_fd (when >= 0) and closes it. A request that
	// names no namespace (netns_fd -1) is about the helper's own.
	service::Reply handle(const bpfilter_request &req, std::span<const uint8_t> data);
	// The same, the request's bytes given up (a table is made of them, not of a copy).
	service::Reply handle(const bpfilter_request &req, std::vector<uint8_t> &&data);

	// Sets up the helper's own namespace now (its table and programs), rather than on
	// its first request: the front door filters from the start and fails early.
	Status serve_own_namespace();

	// Watchers' and LOG rings' descriptors to poll, and what to do when one is readable.
	std::vector<int> event_fds() const;
	void on_event(int fd);

	// Called about once a second while idle: what changes without an event (the
	// multicast groups joined in the helper's own namespace; others are looked at with
	// each request about them).
	void tick();

	// Detaches every program in the helper's own namespace (front door shutdown).
	Status detach_own();

	// False once the helper could not return to its own namespace: it must exit.
	bool healthy() const { return healthy_.load(); }

	uint64_t own_cookie() const { return own_cookie_; }

private:
	struct Namespace {
		// Held while a request about the namespace is handled, and by the serving
		// loop (try_lock only) while it reads the namespace's events.
		std::mutex mu;
		std::unique_ptr<service::TableService> service;
		// Owned by service; null when options.make_dataplane made the data plane.
		loader::BpfDataplane *dataplane = nullptr;
		std::string nft_said; // nf_tables' IPv4 tables last warned about
	};

	Dispatcher(const DispatcherOptions &options, loader::Fd own_netns, uint64_t own_cookie);
	using NamespacePtr = std::shared_ptr<Namespace>;
	NamespacePtr find(uint64_t cookie) const;
	// Makes the namespace's state; the caller holds its lock (`hold`) on return.
	Result<NamespacePtr> create(uint64_t cookie, std::unique_lock<std::mutex> &hold);
	// Forgets the namespace; its state goes once the last user lets go of it.
	void erase(uint64_t cookie);
	// The namespaces no request is being handled about, each locked (try_lock).
	struct Idle {
		uint64_t cookie;
		NamespacePtr ns;
		std::unique_lock<std::mutex> hold;
	};
	std::vector<Idle> idle_namespaces() const;
	service::Reply handle_in_netns(const bpfilter_request &req, uint64_t cookie,
				       std::vector<uint8_t> &&data);
	void print_log(uint64_t cookie, Namespace &ns);
	void report_lost_lines(uint64_t cookie, Namespace &ns);

	DispatcherOptions options_;
	loader::Fd own_netns_;
	uint64_t own_cookie_ = 0;
	// The map (not the namespaces in it, each its own mu's): map_mu_. Lock order: a
	// namespace's mu, then map_mu_; the serving loop takes mu only with try_lock.
	mutable std::mutex map_mu_;
	std::map<uint64_t, NamespacePtr> namespaces_;
	std::atomic<bool> healthy_{true};
};

// The cookie of the network namespace the calling thread is in (0 when the kernel has none).
uint64_t current_netns_cookie();

} // namespace bpfilter::server
