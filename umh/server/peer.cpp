// Who is at the other end of a front-door connection: namespace and capability from the kernel.
#include "server/peer.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "loader/fd.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace bpfilter::server
{
namespace
{

constexpr int cap_net_admin = 12;

bool same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

// The first line of a /proc file that starts with key, after it.
std::optional<std::string> proc_field(const std::string &path, const char *key)
{
	FILE *f = fopen(path.c_str(), "re");
	if (!f)
		return std::nullopt;
	char line[256];
	std::optional<std::string> out;
	const size_t klen = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0) {
			out = std::string(line + klen);
			break;
		}
	fclose(f);
	return out;
}

// The pidfd and pid of the process that connected sock.
bool peer_pidfd(int sock, loader::Fd &pidfd, pid_t &pid)
{
	int fd = -1;
	socklen_t len = sizeof(fd);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 && fd >= 0) {
		pidfd = loader::Fd(fd);
		auto p = proc_field("/proc/self/fdinfo/" + std::to_string(fd), "Pid:");
		pid = p ? static_cast<pid_t>(strtol(p->c_str(), nullptr, 10)) : 0;
		return pid > 0;
	}
	struct ucred cred = {};
	len = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0)
		return false;
	pid = cred.pid;
	pidfd = loader::Fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
	return static_cast<bool>(pidfd);
}

// ns_capable(owner of net, cap) for a process in user namespace peer_user with effective
// capabilities capeff: the capability counts in the owner itself or an ancestor of it.
// (A namespace's creator also holds every capability in the namespaces it made; that rule
// is not followed here: such a caller is refused, never wrongly admitted.)
bool capable_over(int netns, int peer_user, uint64_t capeff)
{
	if (!(capeff & (1ULL << cap_net_admin)))
		return false;
	loader::Fd ns(ioctl(netns, NS_GET_USERNS));
	while (ns) {
		if (same_file(ns.get(), peer_user))
			return true;
		ns = loader::Fd(ioctl(ns.get(), NS_GET_PARENT));
	}
	return false;
}

} // namespace

Peer identify_peer(int sock, int own_netns)
{
	Peer p;
	loader::Fd pidfd;
	if (!peer_pidfd(sock, pidfd, p.pid)) {
		p.why = std::string("cannot identify the peer: ") + strerror(errno);
		return p;
	}
	const std::string proc = "/proc/" + std::to_string(p.pid);
	loader::Fd net(open((proc + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
	loader::Fd user(open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
	auto capeff = proc_field(proc + "/status", "CapEff:");
	// Everything above was read from the process the pidfd holds, if it is still alive:
	// a pid is only recycled once its process is gone.
	struct pollfd pfd = {pidfd.get(), POLLIN, 0};
	if (poll(&pfd, 1, 0) != 0 || !net || !user || !capeff) {
		p.why = "peer pid " + std::to_string(p.pid) + " is gone";
		return p;
	}
	p.same_netns = same_file(net.get(), own_netns);
	p.net_admin = p.same_netns &&
		      capable_over(own_netns, user.get(), strtoull(capeff->c_str(), nullptr, 16));
	if (!p.same_netns)
		p.why = "pid " + std::to_string(p.pid) + " runs in another network namespace";
	else if (!p.net_admin)
		p.why = "pid " + std::to_string(p.pid) + " lacks CAP_NET_ADMIN";
	return p;
}

} // namespace bpfilter::server
