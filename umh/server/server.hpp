// The helper's serving loops: the module's channel, and the front door's many untrusted clients.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "bpfilter/msg.h"
#include "common/log.hpp"
#include "common/result.hpp"
#include "server/dispatcher.hpp"
#include "service/nf_log.hpp"
#include "service/table_service.hpp"

namespace bpfilter::server
{

struct Request {
	bpfilter_request hdr{};
	std::vector<uint8_t> data;
};

// One read: a request, the end of the stream (before any byte of a request), or a
// malformed request. A malformed one may still be answered (can_reply: its header was
// readable) before the connection is closed: the stream cannot be resynchronised.
struct ReadResult {
	enum class Kind : uint8_t { Ok, Eof, Bad };
	Kind kind = Kind::Bad;
	Request req;
	Error error;
	bool can_reply = false;
};

// Whether a request header can be served (magic, version, size): Ok or Bad.
ReadResult check_header(const bpfilter_request &hdr);
ReadResult read_request(int fd);
Status write_reply(int fd, uint32_t seq, const service::Reply &reply);

// Where -j LOG's lines go (DispatcherOptions::log_sink). The front door: /dev/kmsg, at the
// line's level (facility "user": the kernel keeps its own facility to itself; lines beyond
// printk_devkmsg's rate limit are dropped by the kernel). The module's channel: a
// struct bpfilter_log message, which the module printk()s.
std::function<void(const service::LogLine &)> kmsg_log_sink();
// The module's channel is written by several threads (a worker per namespace, the serving
// loop): every message on it (a reply, a log line) is written whole with this held.
std::recursive_mutex &channel_write_lock();
std::function<void(const service::LogLine &)> channel_log_sink(int out_fd);
// The helper's own lines through the module's channel (log::set_channel), as LOG's are.
log::Writer channel_line_writer(int out_fd);

// The kernel module's channel: requests on in_fd, replies on out_fd, until the stream
// ends (exit status 0) or breaks (1). The module owns namespace descriptors it sends.
int serve_channel(int in_fd, int out_fd, Dispatcher &dispatcher);

// The front door: a Unix stream socket at path (mode 0600) in the helper's network
// namespace, for many clients (Documentation/security.md: who may ask what, and the bounds
// that keep one client from holding up the others), until SIGINT or SIGTERM; then the
// programs are detached and the socket removed. One per network namespace (a lock in
// /run/bpfilter). Every table accepted is saved there too: a helper started after one
// that died puts it back in force, unless fresh.
struct ListenOptions {
	std::string path;
	bool fresh = false;
};
int serve_listen(const ListenOptions &listen, DispatcherOptions options);

} // namespace bpfilter::server
