// `bpfilter_umh --recent SOCKET NAME [+ADDR|-ADDR|/]`: one BPFILTER_SO_*_RECENT request to the
// helper serving this network namespace, as the preload library sends iptables' sockopts.
#include "server/recent_client.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "server/wire.hpp"

namespace bpfilter::server
{

namespace
{

constexpr uint32_t max_text = 16u << 20;

struct Closer {
	int fd;
	~Closer()
	{
		if (fd >= 0)
			close(fd);
	}
};

int fail(const char *what, int err)
{
	fprintf(stderr, "bpfilter_umh --recent: %s: %s\n", what, strerror(err));
	return 1;
}

} // namespace

int recent_command(const std::string &socket_path, const std::string &name,
		   const std::string *input)
{
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	if (socket_path.size() >= sizeof(addr.sun_path))
		return fail(socket_path.c_str(), ENAMETOOLONG);
	std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
	// The namespace the request is for: this process's, as a socket of it says.
	Closer inet{socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW)};
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	if (inet.fd < 0 || getsockopt(inet.fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
		return fail("reading this network namespace's cookie", errno);
	Closer conn{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
	if (conn.fd < 0 || connect(conn.fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) < 0)
		return fail(socket_path.c_str(), errno);

	std::vector<uint8_t> data(name.begin(), name.end());
	data.push_back(0);
	if (input)
		data.insert(data.end(), input->begin(), input->end());
	bpfilter_request req{};
	req.magic = BPFILTER_REQ_MAGIC;
	req.version = BPFILTER_PROTO_VERSION;
	req.op = input ? BPFILTER_OP_SETSOCKOPT : BPFILTER_OP_GETSOCKOPT;
	req.optname = input ? BPFILTER_SO_SET_RECENT : BPFILTER_SO_GET_RECENT;
	req.optlen = input ? static_cast<uint32_t>(data.size()) : max_text;
	req.data_len = static_cast<uint32_t>(data.size());
	req.netns_cookie = cookie;
	req.netns_fd = -1;
	req.seq = 1;
	int err = wire::write_full(conn.fd, &req, sizeof(req));
	if (!err)
		err = wire::write_full(conn.fd, data.data(), data.size());
	bpfilter_reply rep{};
	if (!err) {
		const ssize_t n = wire::read_full(conn.fd, &rep, sizeof(rep));
		err = n < 0				      ? static_cast<int>(n)
		      : n < static_cast<ssize_t>(sizeof(rep)) ? -ECONNRESET
							      : 0;
	}
	if (!err)
		err = wire::check_reply_header(rep, req.seq, max_text);
	std::vector<char> text(rep.data_len);
	if (!err && rep.data_len) {
		const ssize_t n = wire::read_full(conn.fd, text.data(), text.size());
		err = n < 0				      ? static_cast<int>(n)
		      : n < static_cast<ssize_t>(text.size()) ? -ECONNRESET
							      : 0;
	}
	if (err)
		return fail("talking to the helper", -err);
	if (rep.status < 0)
		return fail(("xt_recent/" + name).c_str(), -rep.status);
	fwrite(text.data(), 1, text.size(), stdout);
	return 0;
}

} // namespace bpfilter::server
