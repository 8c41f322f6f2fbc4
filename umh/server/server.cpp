// The helper's serving loops: the module's channel, and the front door's many untrusted clients.
#include "server/server.hpp"

// glibc's netinet/in.h before the kernel's headers, which then skip what it defines.
#include <netinet/in.h>

#include <fcntl.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "loader/fd.hpp"
#include "server/peer.hpp"
#include "server/rundir.hpp"
#include "server/wire.hpp"

namespace bpfilter::server
{
namespace
{

// Dispatcher::tick() about once a second, busy or idle.
constexpr int tick_ms = 1000;
class Ticker
{
public:
	void maybe(Dispatcher &dispatcher)
	{
		const auto now = std::chrono::steady_clock::now();
		if (now - last_ < std::chrono::milliseconds(tick_ms))
			return;
		last_ = now;
		dispatcher.tick();
	}

private:
	std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

ReadResult bad(int err, std::string why, bool can_reply)
{
	ReadResult r;
	r.kind = ReadResult::Kind::Bad;
	r.error = make_error(err, std::move(why));
	r.can_reply = can_reply;
	return r;
}

// The front door's bounds (Documentation/security.md): how many clients at once, how long
// one may make no progress, how much of a request is read from one client per round.
constexpr size_t max_clients = 64;
constexpr auto idle_timeout = std::chrono::seconds(5);
constexpr size_t read_quantum = 1 << 20;

using Clock = std::chrono::steady_clock;

// The requests a front-door client may send; the others are the module's (it alone knows
// when a namespace is gone, and detaches before it unloads).
bool client_op(uint16_t op)
{
	return op == BPFILTER_OP_HEALTH || op == BPFILTER_OP_SETSOCKOPT ||
	       op == BPFILTER_OP_GETSOCKOPT || op == BPFILTER_OP_HASHLIMIT_READ;
}

// A front-door connection, served without blocking: one request at a time (the next is
// not read before the reply to this one is written out), at most read_quantum bytes of it
// and one request per round, so that a client that sends half a request, stops reading
// its replies or streams requests holds up no one.
struct Client {
	loader::Fd fd;
	Peer peer;
	std::vector<uint8_t> in;
	size_t want = sizeof(bpfilter_request); // the header, then header and data
	bool have_header = false;
	std::vector<uint8_t> out; // the reply being written
	size_t out_done = 0;
	bool close_after_out = false; // a malformed request: answered, then closed
	Clock::time_point progress = Clock::now();

	bool writing() const { return out_done < out.size(); }
	bool idle() const { return in.empty() && !writing(); }

	// Writes what the socket takes. False when the connection is over.
	bool flush()
	{
		while (writing()) {
			ssize_t n = send(fd.get(), out.data() + out_done, out.size() - out_done,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return true;
			if (n <= 0)
				return false;
			out_done += static_cast<size_t>(n);
			progress = Clock::now();
		}
		out.clear();
		out_done = 0;
		return !close_after_out;
	}

	void queue_reply(uint32_t seq, const service::Reply &reply)
	{
		bpfilter_reply rep = {};
		rep.magic = BPFILTER_REPLY_MAGIC;
		rep.seq = seq;
		rep.status = reply.status;
		rep.data_len = static_cast<uint32_t>(reply.data.size());
		out.resize(sizeof(rep) + reply.data.size());
		memcpy(out.data(), &rep, sizeof(rep));
		if (!reply.data.empty())
			memcpy(out.data() + sizeof(rep), reply.data.data(), reply.data.size());
		out_done = 0;
	}

	// Reads at most read_quantum bytes and answers the request if that completes it.
	// False when the connection is over (closed, broken or malformed).
	bool feed(const std::function<service::Reply(const bpfilter_request &,
						     std::vector<uint8_t> &&)> &serve)
	{
		size_t got = in.size();
		if (got < want) {
			// Memory grows with what arrives, not with what a header announces.
			in.resize(got + std::min(want - got, read_quantum));
			ssize_t n;
			do
				n = recv(fd.get(), in.data() + got, in.size() - got, MSG_DONTWAIT);
			while (n < 0 && errno == EINTR);
			in.resize(got + static_cast<size_t>(std::max<ssize_t>(n, 0)));
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return true;
			if (n <= 0) {
				if (n < 0 || got)
					log::error("a front-door client went away half way through "
						   "a request");
				return false;
			}
			progress = Clock::now();
		}
		if (in.size() < want)
			return true;
		bpfilter_request hdr;
		memcpy(&hdr, in.data(), sizeof(hdr));
		if (!have_header) {
			ReadResult r = check_header(hdr);
			if (r.kind == ReadResult::Kind::Bad) {
				log::error("malformed request: " + r.error.message);
				if (!r.can_reply)
					return false;
				queue_reply(hdr.seq, service::Reply{-r.error.errnum, {}});
				close_after_out = true;
				return flush();
			}
			have_header = true;
			want = sizeof(hdr) + hdr.data_len;
			if (in.size() < want)
				return true;
		}
		// The request's bytes go to the service, which may make a table of them.
		in.erase(in.begin(), in.begin() + sizeof(hdr));
		in.resize(hdr.data_len);
		service::Reply reply = serve(hdr, std::move(in));
		in = std::vector<uint8_t>();
		want = sizeof(bpfilter_request);
		have_header = false;
		queue_reply(hdr.seq, reply);
		return flush();
	}
};

Result<struct sockaddr_un> socket_address(const std::string &path)
{
	struct sockaddr_un addr = {};
	addr.sun_family = AF_UNIX;
	if (path.empty() || path.size() >= sizeof(addr.sun_path))
		return make_error(ENAMETOOLONG,
				  "socket path \"" + path + "\" is empty or too long");
	memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	return addr;
}

// Refuses a path a live helper listens on, and removes a socket file left by one that
// died. Run before touching any interface: a second helper must not take over the
// programs of the first and then leave.
Status claim_path(const std::string &path)
{
	auto addr = socket_address(path);
	if (!addr)
		return addr.error();
	struct stat st;
	if (lstat(path.c_str(), &st) < 0)
		return {};
	if (!S_ISSOCK(st.st_mode))
		return make_error(EEXIST, path + " exists and is not a socket");
	loader::Fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (probe &&
	    connect(probe.get(), reinterpret_cast<struct sockaddr *>(&*addr), sizeof(*addr)) == 0)
		return make_error(EADDRINUSE, "another helper serves " + path);
	unlink(path.c_str());
	return {};
}

Result<loader::Fd> listen_on(const std::string &path)
{
	auto addr = socket_address(path);
	if (!addr)
		return addr.error();
	loader::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!fd)
		return make_error(errno, std::string("socket: ") + strerror(errno));
	// Only root may talk to the helper: the socket is created 0600. Non-blocking: each
	// round accepts until none is waiting.
	mode_t old = umask(0177);
	int err = bind(fd.get(), reinterpret_cast<struct sockaddr *>(&*addr), sizeof(*addr)) < 0
			  ? errno
			  : 0;
	umask(old);
	if (err)
		return make_error(err, "bind " + path + ": " + strerror(err));
	if (listen(fd.get(), 16) < 0)
		return make_error(errno, "listen " + path + ": " + strerror(errno));
	return fd;
}

} // namespace

ReadResult check_header(const bpfilter_request &hdr)
{
	int err = wire::check_request_header(hdr);
	if (err == -EBADMSG)
		return bad(EBADMSG, "bad magic in request header", false);
	if (err) {
		// The header is readable: the caller can still answer it before closing.
		std::string why =
			err == -E2BIG
				? "request data too large: " + std::to_string(hdr.data_len) +
					  " bytes"
				: "request protocol version " + std::to_string(hdr.version) +
					  ", expected " + std::to_string(BPFILTER_PROTO_VERSION);
		ReadResult b = bad(-err, std::move(why), true);
		b.req.hdr = hdr;
		return b;
	}
	ReadResult ok;
	ok.kind = ReadResult::Kind::Ok;
	return ok;
}

ReadResult read_request(int fd)
{
	ReadResult r;
	ssize_t n = wire::read_full(fd, &r.req.hdr, sizeof(r.req.hdr));
	if (n == 0) {
		r.kind = ReadResult::Kind::Eof;
		return r;
	}
	if (n < 0)
		return bad(static_cast<int>(-n),
			   std::string("reading a request: ") + strerror(static_cast<int>(-n)),
			   false);
	if (n < static_cast<ssize_t>(sizeof(r.req.hdr)))
		return bad(EBADMSG, "truncated request header", false);
	ReadResult checked = check_header(r.req.hdr);
	if (checked.kind == ReadResult::Kind::Bad)
		return checked;
	// Memory grows with what arrives, not with what the header announces: a stream that
	// promises 256 MB and ends is refused without 256 MB allocated first.
	constexpr size_t chunk = 1 << 20;
	while (r.req.data.size() < r.req.hdr.data_len) {
		const size_t got = r.req.data.size();
		const size_t want = std::min<size_t>(r.req.hdr.data_len - got, chunk);
		r.req.data.resize(got + want);
		n = wire::read_full(fd, r.req.data.data() + got, want);
		if (n < 0)
			return bad(static_cast<int>(-n),
				   std::string("reading request data: ") +
					   strerror(static_cast<int>(-n)),
				   false);
		if (n < static_cast<ssize_t>(want))
			return bad(EBADMSG, "truncated request data", false);
	}
	r.kind = ReadResult::Kind::Ok;
	return r;
}

Status write_reply(int fd, uint32_t seq, const service::Reply &reply)
{
	bpfilter_reply rep = {};
	rep.magic = BPFILTER_REPLY_MAGIC;
	rep.seq = seq;
	rep.status = reply.status;
	rep.data_len = static_cast<uint32_t>(reply.data.size());
	int err = wire::write_full(fd, &rep, sizeof(rep));
	if (!err && !reply.data.empty())
		err = wire::write_full(fd, reply.data.data(), reply.data.size());
	if (err)
		return make_error(-err, strerror(-err));
	return {};
}

std::function<void(const service::LogLine &)> kmsg_log_sink()
{
	auto fd = std::make_shared<loader::Fd>(open("/dev/kmsg", O_WRONLY | O_CLOEXEC));
	if (!*fd)
		log::error(std::string("opening /dev/kmsg for LOG's lines: ") + strerror(errno));
	return [fd](const service::LogLine &line) {
		if (!*fd)
			return;
		const std::string text = "<" + std::to_string(line.level) + ">" + line.text + "\n";
		// One write, one record. Lines over printk_devkmsg's rate limit the kernel
		// drops on its own: nothing to retry.
		(void)!write(fd->get(), text.data(), text.size());
	};
}

std::recursive_mutex &channel_write_lock()
{
	// One per process: there is one channel. Recursive: log::flush() hands lines to
	// channel_line_writer() with it held.
	static std::recursive_mutex lock;
	return lock;
}

std::function<void(const service::LogLine &)> channel_log_sink(int out_fd)
{
	return [out_fd](const service::LogLine &line) {
		const std::lock_guard<std::recursive_mutex> hold(channel_write_lock());
		bpfilter_log hdr = {};
		hdr.magic = BPFILTER_LOG_MAGIC;
		hdr.level = line.level;
		const size_t len = std::min<size_t>(line.text.size(), BPFILTER_LOG_MAX);
		hdr.len = static_cast<uint16_t>(len);
		std::vector<uint8_t> msg(sizeof(hdr) + len);
		memcpy(msg.data(), &hdr, sizeof(hdr));
		memcpy(msg.data() + sizeof(hdr), line.text.data(), len);
		// In one write(): the module takes a message whole or not at all.
		if (write(out_fd, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size()))
			log::error(std::string("handing a LOG line to the module: ") +
				   strerror(errno));
	};
}

log::Writer channel_line_writer(int out_fd)
{
	return [out_fd](int level, std::string_view text) {
		const std::lock_guard<std::recursive_mutex> hold(channel_write_lock());
		bpfilter_log hdr = {};
		hdr.magic = BPFILTER_LOG_MAGIC;
		hdr.level = static_cast<uint16_t>(level);
		const size_t len = std::min<size_t>(text.size(), BPFILTER_LOG_MAX);
		hdr.len = static_cast<uint16_t>(len);
		std::vector<uint8_t> msg(sizeof(hdr) + len);
		memcpy(msg.data(), &hdr, sizeof(hdr));
		memcpy(msg.data() + sizeof(hdr), text.data(), len);
		return write(out_fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size());
	};
}

namespace
{

// The module's channel with several requests in flight: one worker thread for each
// namespace while it has requests, so that requests about one namespace are served in the
// order they came and those about different namespaces at once (a large table loading in
// one does not hold up another). Replies go out whole, one at a time, in any order: the
// module matches them to requests by seq. Replies, the helper's queued log lines and LOG's
// lines go out one at a time, whole (channel_write_lock()).
class ChannelWorkers
{
public:
	ChannelWorkers(int out, Dispatcher &dispatcher) : out_(out), dispatcher_(dispatcher)
	{
		wake_ = loader::Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	}
	// The workers are detached: every one must be done with this and the dispatcher first.
	~ChannelWorkers() { wait_idle(); }
	ChannelWorkers(const ChannelWorkers &) = delete;
	ChannelWorkers &operator=(const ChannelWorkers &) = delete;

	// Readable when a worker has finished a request (its namespace's events may be read
	// again); -1 without one.
	int wake_fd() const { return wake_.get(); }
	void drain_wake()
	{
		uint64_t n;
		if (wake_)
			(void)!read(wake_.get(), &n, sizeof(n));
	}
	bool broken() const { return broken_.load(); }

	// Queues req on its namespace's lane, starting a worker for the lane if none runs.
	void submit(Request req)
	{
		const uint64_t key = req.hdr.netns_cookie;
		std::unique_lock<std::mutex> hold(mu_);
		Lane &lane = lanes_[key];
		lane.queue.push_back(std::move(req));
		if (lane.running)
			return;
		lane.running = true;
		workers_++;
		hold.unlock();
		try {
			std::thread([this, key] { run(key); }).detach();
		} catch (const std::system_error &e) {
			// No thread (a limit): served here, one at a time, as before threads.
			log::error(std::string("cannot start a worker thread, serving in line: ") +
				   e.what());
			run(key);
		}
	}

	// Waits until every queued request has been answered.
	void wait_idle()
	{
		std::unique_lock<std::mutex> hold(mu_);
		idle_.wait(hold, [this] { return workers_ == 0; });
	}

	// Writes a reply and the log lines queued so far, whole, between other replies.
	void reply(uint32_t seq, const service::Reply &reply)
	{
		const std::lock_guard<std::recursive_mutex> hold(channel_write_lock());
		Status st = write_reply(out_, seq, reply);
		if (!st) {
			log::error("writing a reply: " + st.error().message);
			broken_.store(true);
		}
		log::flush();
	}

	// The log lines queued so far (none owed a place after a reply).
	void flush_log()
	{
		const std::lock_guard<std::recursive_mutex> hold(channel_write_lock());
		log::flush();
	}

private:
	struct Lane {
		std::deque<Request> queue;
		bool running = false;
	};

	void run(uint64_t key)
	{
		for (;;) {
			Request req;
			{
				std::unique_lock<std::mutex> hold(mu_);
				auto it = lanes_.find(key);
				if (it->second.queue.empty()) {
					lanes_.erase(it);
					if (--workers_ == 0)
						idle_.notify_all();
					break;
				}
				req = std::move(it->second.queue.front());
				it->second.queue.pop_front();
			}
			service::Reply r = dispatcher_.handle(req.hdr, std::move(req.data));
			reply(req.hdr.seq, r);
			const uint64_t one = 1;
			if (wake_)
				(void)!write(wake_.get(), &one, sizeof(one));
		}
	}

	int out_;
	Dispatcher &dispatcher_;
	loader::Fd wake_;
	std::atomic<bool> broken_{false};
	std::mutex mu_; // lanes_, workers_
	std::condition_variable idle_;
	std::map<uint64_t, Lane> lanes_;
	size_t workers_ = 0;
};

} // namespace

int serve_channel(int in_fd, int out_fd, Dispatcher &dispatcher)
{
	Ticker ticker;
	ChannelWorkers workers(out_fd, dispatcher);
	for (;;) {
		// The LOG rings too (of namespaces no request holds): their lines go out
		// between replies.
		std::vector<int> events = dispatcher.event_fds();
		std::vector<struct pollfd> pfds{{in_fd, POLLIN, 0}, {workers.wake_fd(), POLLIN, 0}};
		for (int fd : events)
			pfds.push_back({fd, POLLIN, 0});
		const int n = poll(pfds.data(), pfds.size(), tick_ms);
		if (n < 0 && errno != EINTR) {
			log::error(std::string("poll: ") + strerror(errno));
			return 1;
		}
		ticker.maybe(dispatcher);
		if (workers.broken() || !dispatcher.healthy())
			return 1;
		if (n <= 0)
			continue;
		if (pfds[1].revents)
			workers.drain_wake();
		for (size_t i = 0; i < events.size(); i++)
			if (pfds[2 + i].revents)
				dispatcher.on_event(events[i]);
		workers.flush_log();
		if (!pfds[0].revents)
			continue;
		ReadResult r = read_request(in_fd);
		if (r.kind == ReadResult::Kind::Eof) {
			// The module closes the channel once it expects no more answers.
			workers.wait_idle();
			workers.flush_log();
			return 0;
		}
		if (r.kind == ReadResult::Kind::Bad) {
			// Answered if its header allows; the stream cannot be resynchronised.
			log::error("malformed request: " + r.error.message);
			// The requests before it are answered first, as they were read first.
			workers.wait_idle();
			if (r.can_reply)
				workers.reply(r.req.hdr.seq, service::Reply{-r.error.errnum, {}});
			return 1;
		}
		if (r.req.hdr.op == BPFILTER_OP_HEALTH) {
			workers.reply(r.req.hdr.seq, service::Reply{0, {}});
			continue;
		}
		workers.submit(std::move(r.req));
	}
}

namespace
{

// A request from a front-door client: only the kinds a client may send, about the namespace
// the client runs in, from one with CAP_NET_ADMIN there. What the client says of its
// namespace (netns_cookie, netns_fd) is not looked at.
service::Reply serve_client(const Peer &peer, bpfilter_request hdr, std::vector<uint8_t> &&data,
			    Dispatcher &dispatcher, const RunFiles &files)
{
	const std::string who = "front door, pid " + std::to_string(peer.pid) + ": ";
	if (!client_op(hdr.op)) {
		if (hdr.op <= BPFILTER_OP_LINK_STRAY) {
			log::warn(who + "request op " + std::to_string(hdr.op) +
				  " is the module's, not a client's: refused");
			return service::Reply{-EPERM, {}};
		}
		log::error(who + "unknown request op " + std::to_string(hdr.op));
		return service::Reply{-EOPNOTSUPP, {}};
	}
	if (hdr.op != BPFILTER_OP_HEALTH) {
		if (!peer.same_netns) {
			log::warn(who + peer.why +
				  ": the helper serves only its own; run iptables there (EXDEV)");
			return service::Reply{-EXDEV, {}};
		}
		if (!peer.net_admin) {
			log::warn(who + (peer.why.empty() ? "not allowed" : peer.why) + " (EPERM)");
			return service::Reply{-EPERM, {}};
		}
	}
	hdr.netns_fd = -1;
	hdr.netns_cookie = 0;
	// Who asked, for the log (Dispatcher names the caller by it).
	hdr.arg = static_cast<uint32_t>(peer.pid);
	// A new table is written out before it is handled (the service makes the table of
	// the request's bytes), and takes the saved one's place once it is in force.
	const bool replace = hdr.op == BPFILTER_OP_SETSOCKOPT && hdr.optname == IPT_SO_SET_REPLACE;
	Status staged = replace ? files.stage_table(data) : Status{};
	service::Reply reply = dispatcher.handle(hdr, std::move(data));
	if (!replace)
		return reply;
	if (reply.status != 0) {
		files.unstage_table();
		return reply;
	}
	if (staged)
		staged = files.commit_table();
	if (!staged)
		log::error("the new table is in force but could not be saved for a restart: " +
			   staged.error().message);
	return reply;
}

// Puts the saved table back in force, as the module does for a helper it restarts: its
// num_counters made the current table's (GET_INFO), then IPT_SO_SET_REPLACE.
Status restore_table(Dispatcher &dispatcher, std::vector<uint8_t> blob)
{
	if (blob.size() < sizeof(struct ipt_replace))
		return make_error(EINVAL, "the saved table is truncated");
	bpfilter_request req = {};
	req.magic = BPFILTER_REQ_MAGIC;
	req.version = BPFILTER_PROTO_VERSION;
	req.op = BPFILTER_OP_GETSOCKOPT;
	req.optname = IPT_SO_GET_INFO;
	req.optlen = sizeof(struct ipt_getinfo);
	req.netns_fd = -1;
	std::vector<uint8_t> info(sizeof(struct ipt_getinfo));
	memcpy(info.data(), blob.data(), XT_TABLE_MAXNAMELEN);
	info[XT_TABLE_MAXNAMELEN - 1] = 0;
	req.data_len = static_cast<uint32_t>(info.size());
	service::Reply r = dispatcher.handle(req, info);
	if (r.status < 0 || r.data.size() < sizeof(struct ipt_getinfo))
		return make_error(-r.status, "GET_INFO before restoring the saved table failed");
	struct ipt_getinfo gi;
	memcpy(&gi, r.data.data(), sizeof(gi));
	const uint32_t n = gi.num_entries;
	memcpy(blob.data() + offsetof(struct ipt_replace, num_counters), &n, sizeof(n));
	req.op = BPFILTER_OP_SETSOCKOPT;
	req.optname = IPT_SO_SET_REPLACE;
	req.optlen = static_cast<uint32_t>(blob.size());
	req.data_len = req.optlen;
	r = dispatcher.handle(req, std::move(blob));
	if (r.status < 0)
		return make_error(-r.status, std::string("the saved table was refused: ") +
						     strerror(-r.status));
	return {};
}

// The client that made no progress for the longest, to make room for a new one.
size_t stalest(const std::vector<Client> &clients)
{
	size_t k = 0;
	for (size_t i = 1; i < clients.size(); i++)
		if (clients[i].progress < clients[k].progress)
			k = i;
	return k;
}

} // namespace

int serve_listen(const ListenOptions &listen, DispatcherOptions options)
{
	const std::string &path = listen.path;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) {
		log::error(std::string("sigprocmask: ") + strerror(errno));
		return 1;
	}
	loader::Fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC));
	if (!sigfd) {
		log::error(std::string("signalfd: ") + strerror(errno));
		return 1;
	}
	loader::Fd own_netns(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
	if (!own_netns) {
		log::error(std::string("opening the helper's network namespace: ") +
			   strerror(errno));
		return 1;
	}
	auto files = RunFiles::open(current_netns_cookie());
	if (!files) {
		log::error(files.error().message);
		return 1;
	}
	if (Status st = files->lock(); !st) {
		log::error(st.error().message);
		return 1;
	}
	// Whichever way the helper leaves, the lock file goes with it.
	struct Unlock {
		RunFiles &files;
		~Unlock() { files.unlock(); }
	} unlock{*files};
	Status st = claim_path(path);
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	// The table in force when an earlier helper died, unless the user asks for a fresh
	// start: its programs keep filtering until the saved table replaces them.
	std::optional<std::vector<uint8_t>> saved;
	if (listen.fresh) {
		files->remove_table();
	} else {
		auto read = files->read_table();
		if (!read) {
			log::error(read.error().message + " (--fresh starts with an empty table)");
			return 1;
		}
		saved = std::move(*read);
	}
	options.xdp.restore_follows = saved.has_value();
	auto created = Dispatcher::create(options);
	if (!created) {
		log::error(created.error().message);
		return 1;
	}
	Dispatcher &dispatcher = **created;
	// Filter from the start, and only then open the door: a client that finds the
	// socket finds a helper ready to answer.
	st = dispatcher.serve_own_namespace();
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	if (saved) {
		st = restore_table(dispatcher, std::move(*saved));
		if (!st) {
			// The earlier helper's programs stay in force: better than none.
			log::error("restoring the table saved by an earlier helper: " +
				   st.error().message +
				   "; its programs stay attached (--fresh starts with an empty "
				   "table)");
			return 1;
		}
		log::info("restored the table an earlier helper had in force");
	}
	auto lfd = listen_on(path);
	if (!lfd) {
		log::error(lfd.error().message);
		(void)dispatcher.detach_own();
		files->remove_table();
		return 1;
	}
	log::info("listening on " + path);

	std::vector<Client> clients;
	size_t round = 0;
	int status = 0;
	Ticker ticker;
	for (;;) {
		std::vector<int> events = dispatcher.event_fds();
		std::vector<struct pollfd> pfds;
		pfds.push_back({sigfd.get(), POLLIN, 0});
		pfds.push_back({lfd->get(), POLLIN, 0});
		for (const auto &c : clients)
			pfds.push_back({c.fd.get(),
					static_cast<short>(c.writing() ? POLLOUT : POLLIN), 0});
		for (int fd : events)
			pfds.push_back({fd, POLLIN, 0});
		const int ready = poll(pfds.data(), pfds.size(), tick_ms);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			log::error(std::string("poll: ") + strerror(errno));
			status = 1;
			break;
		}
		ticker.maybe(dispatcher);
		if (pfds[0].revents) {
			struct signalfd_siginfo si;
			if (read(sigfd.get(), &si, sizeof(si)) > 0)
				log::info("signal " + std::to_string(si.ssi_signo) +
					  ": detaching and exiting");
			break;
		}
		// Watchers first: a new interface gets the program before the next table.
		for (size_t i = 0; i < events.size(); i++)
			if (pfds[2 + clients.size() + i].revents)
				dispatcher.on_event(events[i]);
		// Round robin: one step for each ready client, starting one further each round.
		const size_t n = clients.size();
		std::vector<bool> over(n, false);
		for (size_t k = 0; k < n && dispatcher.healthy(); k++) {
			const size_t i = (round + k) % n;
			if (!pfds[2 + i].revents)
				continue;
			Client &c = clients[i];
			const Peer &peer = c.peer;
			over[i] = !(c.writing() ? c.flush()
						: c.feed([&](const bpfilter_request &hdr,
							     std::vector<uint8_t> &&data) {
							  return serve_client(peer, hdr,
									      std::move(data),
									      dispatcher, *files);
						  }));
		}
		round++;
		const auto now = Clock::now();
		std::vector<Client> keep;
		keep.reserve(n);
		for (size_t i = 0; i < n; i++) {
			if (!over[i] && now - clients[i].progress > idle_timeout) {
				log::warn("front door: pid " + std::to_string(clients[i].peer.pid) +
					  (clients[i].idle() ? " sent nothing"
							     : " made no progress") +
					  " for 5 s: closed");
				over[i] = true;
			}
			if (!over[i])
				keep.push_back(std::move(clients[i]));
		}
		clients = std::move(keep);
		if (!dispatcher.healthy()) {
			status = 1;
			break;
		}
		if (!pfds[1].revents)
			continue;
		for (size_t k = 0; k < max_clients; k++) {
			loader::Fd c(accept4(lfd->get(), nullptr, nullptr,
					     SOCK_CLOEXEC | SOCK_NONBLOCK));
			if (!c)
				break;
			if (clients.size() >= max_clients) {
				const size_t old = stalest(clients);
				log::warn("front door: " + std::to_string(max_clients) +
					  " clients; closing the one quiet longest (pid " +
					  std::to_string(clients[old].peer.pid) + ")");
				clients.erase(clients.begin() + static_cast<ptrdiff_t>(old));
			}
			Client client;
			client.peer = identify_peer(c.get(), own_netns.get());
			client.fd = std::move(c);
			clients.push_back(std::move(client));
		}
	}
	clients.clear();
	unlink(path.c_str());
	st = dispatcher.detach_own();
	// Nothing in force any more: a later helper starts empty.
	files->remove_table();
	files->unlock();
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	return status;
}

} // namespace bpfilter::server
