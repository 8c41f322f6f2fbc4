// The helper's serving loops: requests read whole from a stream, answered one at a time.
#include "server/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "common/log.hpp"
#include "loader/fd.hpp"
#include "server/wire.hpp"

namespace bpfilter::server
{
namespace
{

constexpr size_t max_clients = 64;
// A client that stops reading its reply must not stall everyone else for long.
constexpr int client_timeout_s = 5;

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

// Answers a request on out. False when the connection must close.
bool answer(bpfilter_request hdr, std::span<const uint8_t> data, int out, Dispatcher &dispatcher,
	    bool trust_fds)
{
	// A front-door client's descriptor numbers mean nothing in the helper.
	if (!trust_fds)
		hdr.netns_fd = -1;
	service::Reply reply = dispatcher.handle(hdr, data);
	Status st = write_reply(out, hdr.seq, reply);
	if (!st) {
		log::error("writing a reply: " + st.error().message);
		return false;
	}
	return true;
}

// Answers a malformed request if its header allows, before the connection closes.
void refuse(const ReadResult &r, int out)
{
	log::error("malformed request: " + r.error.message);
	if (r.can_reply)
		(void)write_reply(out, r.req.hdr.seq, service::Reply{-r.error.errnum, {}});
}

// Answers one request read from in, on out. False when the connection must close.
bool serve_one(int in, int out, Dispatcher &dispatcher, bool trust_fds, bool &eof)
{
	ReadResult r = read_request(in);
	eof = r.kind == ReadResult::Kind::Eof;
	if (eof)
		return false;
	if (r.kind == ReadResult::Kind::Bad) {
		refuse(r, out);
		return false;
	}
	return answer(r.req.hdr, r.req.data, out, dispatcher, trust_fds);
}

// A front-door connection, read without blocking: a client that sends half a request
// and waits holds up no one.
struct Client {
	loader::Fd fd;
	std::vector<uint8_t> buf;
	size_t want = sizeof(bpfilter_request); // the header, then header and data
	bool have_header = false;

	// Reads what has arrived and answers every complete request. False when the
	// connection is over (closed by the client, malformed, or a reply failed).
	bool feed(Dispatcher &dispatcher)
	{
		// Memory grows with what arrives, not with what a header announces.
		constexpr size_t chunk = 1 << 20;
		for (;;) {
			size_t got = buf.size();
			if (got < want) {
				buf.resize(got + std::min(want - got, chunk));
				ssize_t n = recv(fd.get(), buf.data() + got, buf.size() - got,
						 MSG_DONTWAIT);
				buf.resize(got + static_cast<size_t>(std::max<ssize_t>(n, 0)));
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					return true;
				if (n <= 0) {
					if (n < 0 || got)
						log::error("a front-door client went away half way "
							   "through a request");
					return false;
				}
				continue;
			}
			bpfilter_request hdr;
			memcpy(&hdr, buf.data(), sizeof(hdr));
			if (!have_header) {
				ReadResult r = check_header(hdr);
				if (r.kind == ReadResult::Kind::Bad) {
					refuse(r, fd.get());
					return false;
				}
				have_header = true;
				want = sizeof(hdr) + hdr.data_len;
				continue;
			}
			std::span<const uint8_t> data(buf.data() + sizeof(hdr), hdr.data_len);
			if (!answer(hdr, data, fd.get(), dispatcher, false))
				return false;
			buf.clear();
			want = sizeof(bpfilter_request);
			have_header = false;
		}
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

// One front-door helper per network namespace: two would take each other's programs
// over. An abstract Unix socket name is per namespace and goes away with its process.
Result<loader::Fd> lock_namespace()
{
	static constexpr char name[] = "\0bpfilter_umh.listen";
	struct sockaddr_un addr = {};
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, name, sizeof(name) - 1);
	loader::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd)
		return make_error(errno, std::string("socket: ") + strerror(errno));
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + sizeof(name) - 1;
	if (bind(fd.get(), reinterpret_cast<struct sockaddr *>(&addr), len) < 0)
		return make_error(
			errno,
			errno == EADDRINUSE
				? "another bpfilter_umh --listen serves this network namespace"
				: std::string("bind: ") + strerror(errno));
	return fd;
}

Result<loader::Fd> listen_on(const std::string &path)
{
	auto addr = socket_address(path);
	if (!addr)
		return addr.error();
	loader::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd)
		return make_error(errno, std::string("socket: ") + strerror(errno));
	// Only root may talk to the helper: the socket is created 0600.
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

std::function<void(const service::LogLine &)> channel_log_sink(int out_fd)
{
	return [out_fd](const service::LogLine &line) {
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

int serve_channel(int in_fd, int out_fd, Dispatcher &dispatcher)
{
	Ticker ticker;
	for (;;) {
		// The LOG rings too: their lines go out between requests.
		std::vector<int> events = dispatcher.event_fds();
		std::vector<struct pollfd> pfds{{in_fd, POLLIN, 0}};
		for (int fd : events)
			pfds.push_back({fd, POLLIN, 0});
		const int n = poll(pfds.data(), pfds.size(), tick_ms);
		if (n < 0 && errno != EINTR) {
			log::error(std::string("poll: ") + strerror(errno));
			return 1;
		}
		ticker.maybe(dispatcher);
		if (n <= 0)
			continue;
		for (size_t i = 0; i < events.size(); i++)
			if (pfds[1 + i].revents)
				dispatcher.on_event(events[i]);
		if (!pfds[0].revents)
			continue;
		bool eof = false;
		if (!serve_one(in_fd, out_fd, dispatcher, true, eof))
			return eof ? 0 : 1;
		if (!dispatcher.healthy())
			return 1;
	}
}

int serve_listen(const std::string &path, Dispatcher &dispatcher)
{
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
	auto lock = lock_namespace();
	if (!lock) {
		log::error(lock.error().message);
		return 1;
	}
	Status st = claim_path(path);
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	// Filter from the start, and only then open the door: a client that finds the
	// socket finds a helper ready to answer.
	st = dispatcher.serve_own_namespace();
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	auto lfd = listen_on(path);
	if (!lfd) {
		log::error(lfd.error().message);
		(void)dispatcher.detach_own();
		return 1;
	}
	log::info("listening on " + path);

	std::vector<Client> clients;
	int status = 0;
	Ticker ticker;
	for (;;) {
		std::vector<int> events = dispatcher.event_fds();
		std::vector<struct pollfd> pfds;
		pfds.push_back({sigfd.get(), POLLIN, 0});
		pfds.push_back({lfd->get(), POLLIN, 0});
		for (const auto &c : clients)
			pfds.push_back({c.fd.get(), POLLIN, 0});
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
		if (ready == 0)
			continue;
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
		std::vector<Client> keep;
		for (size_t i = 0; i < clients.size(); i++)
			if (!pfds[2 + i].revents || clients[i].feed(dispatcher))
				keep.push_back(std::move(clients[i]));
		clients = std::move(keep);
		if (!dispatcher.healthy()) {
			status = 1;
			break;
		}
		if (pfds[1].revents) {
			loader::Fd c(accept4(lfd->get(), nullptr, nullptr, SOCK_CLOEXEC));
			if (c && clients.size() < max_clients) {
				struct timeval tv = {client_timeout_s, 0};
				setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
				clients.push_back(Client{std::move(c), {}});
			} else if (c) {
				log::warn("too many front-door clients; refusing one");
			}
		}
	}
	clients.clear();
	unlink(path.c_str());
	st = dispatcher.detach_own();
	if (!st) {
		log::error(st.error().message);
		return 1;
	}
	return status;
}

} // namespace bpfilter::server
