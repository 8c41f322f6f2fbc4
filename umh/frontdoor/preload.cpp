// LD_PRELOAD library: sends iptables' IPT_SO_* sockopts to bpfilter_umh over a Unix socket, passes
// every other call through.
//
// One more thing is redirected: /proc/net/ip_tables_names, from which iptables-save
// learns which tables exist. It lists the kernel's tables, which never see our requests;
// the caller is told of the table bpfilter serves, filter. And /proc/net/ipt_hashlimit/NAME,
// which xt_hashlimit would write: opened for reading, it gives the helper's text for the
// -m hashlimit htable NAME (BPFILTER_OP_HASHLIMIT_READ), or ENOENT as the kernel's would.
//
// The helper answers exactly as ip_tables would, so this file only moves bytes: it sends
// the caller's optval (for a get, the part the kernel reads as input), then applies the
// reply the way the kernel's sockopt path would (return value, errno, optval, *optlen,
// and for IPT_SO_SET_REPLACE the old counters written through ipt_replace.counters).
// glibc's netinet/in.h before the kernel's headers, which then skip what it defines.
#include <netinet/in.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "server/wire.hpp"

namespace
{

constexpr const char *default_socket = "/run/bpfilter.sock";

constexpr const char *tables_names_path = "/proc/net/ip_tables_names";
constexpr const char tables_names[] = "filter\n";

using getsockopt_fn = int (*)(int, int, int, void *, socklen_t *);
using setsockopt_fn = int (*)(int, int, int, const void *, socklen_t);
using fopen_fn = FILE *(*)(const char *, const char *);

getsockopt_fn real_getsockopt()
{
	static std::atomic<getsockopt_fn> fn{nullptr};
	getsockopt_fn f = fn.load(std::memory_order_acquire);
	if (!f) {
		f = reinterpret_cast<getsockopt_fn>(dlsym(RTLD_NEXT, "getsockopt"));
		fn.store(f, std::memory_order_release);
	}
	return f;
}

setsockopt_fn real_setsockopt()
{
	static std::atomic<setsockopt_fn> fn{nullptr};
	setsockopt_fn f = fn.load(std::memory_order_acquire);
	if (!f) {
		f = reinterpret_cast<setsockopt_fn>(dlsym(RTLD_NEXT, "setsockopt"));
		fn.store(f, std::memory_order_release);
	}
	return f;
}

fopen_fn real_fopen(const char *symbol, std::atomic<fopen_fn> &cache)
{
	fopen_fn f = cache.load(std::memory_order_acquire);
	if (!f) {
		f = reinterpret_cast<fopen_fn>(dlsym(RTLD_NEXT, symbol));
		cache.store(f, std::memory_order_release);
	}
	return f;
}

bool hashlimit_path(const char *path);
int hashlimit_fd(const char *path);

FILE *open_file(const char *symbol, std::atomic<fopen_fn> &cache, const char *path,
		const char *mode)
{
	if (path && strcmp(path, tables_names_path) == 0 && mode && mode[0] == 'r')
		return fmemopen(const_cast<char *>(tables_names), sizeof(tables_names) - 1, "r");
	if (hashlimit_path(path) && mode && mode[0] == 'r' && !strchr(mode, '+')) {
		const int fd = hashlimit_fd(path);
		return fd < 0 ? nullptr : fdopen(fd, "r");
	}
	fopen_fn real = real_fopen(symbol, cache);
	if (!real) {
		errno = ENOSYS;
		return nullptr;
	}
	return real(path, mode);
}

const char *socket_path()
{
	const char *p = getenv("BPFILTER_SOCKET");
	return p && *p ? p : default_socket;
}

// Only IPv4 sockets reach ip_tables' sockopts in the kernel; anything else is the kernel's.
bool is_ipv4_socket(int fd)
{
	int domain = 0;
	socklen_t len = sizeof(domain);
	if (real_getsockopt()(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return false;
	return domain == AF_INET;
}

bool ours_set(int level, int optname)
{
	return level == SOL_IP && optname >= IPT_SO_SET_REPLACE && optname <= IPT_SO_SET_MAX;
}

bool ours_get(int level, int optname)
{
	return level == SOL_IP && optname >= IPT_SO_GET_INFO && optname <= IPT_SO_GET_MAX;
}

// The leading part of a get's optval that ip_tables reads as input.
size_t get_input_size(int optname)
{
	switch (optname) {
	case IPT_SO_GET_INFO:
		return sizeof(struct ipt_getinfo);
	case IPT_SO_GET_ENTRIES:
		return sizeof(struct ipt_get_entries);
	default:
		return sizeof(struct xt_get_revision);
	}
}

uint64_t netns_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	if (real_getsockopt()(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
		return 0;
	return cookie;
}

// One line on stderr the first time the helper cannot be reached, so that the user sees
// why iptables failed without a line per sockopt.
void complain(const char *what, const char *path, int err)
{
	static std::atomic<bool> said{false};
	if (said.exchange(true))
		return;
	fprintf(stderr, "bpfilter: %s %s: %s\n", what, path, strerror(err));
}

struct Fd {
	int fd;
	~Fd()
	{
		if (fd >= 0)
			close(fd);
	}
};

// A reply: the sockopt's status and its data.
struct Answer {
	int status = 0;
	std::vector<uint8_t> data;
};

// Sends one request and reads its reply. Returns 0, or -errno for the caller when the
// helper cannot be reached or the exchange breaks (after saying so on stderr).
int exchange(int sockfd, uint16_t op, uint32_t optname, uint32_t optlen, const void *data,
	     uint32_t data_len, size_t max_reply, Answer &answer)
{
	static std::atomic<uint32_t> next_seq{1};
	const char *path = socket_path();

	struct sockaddr_un addr = {};
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		complain("socket path too long:", path, ENAMETOOLONG);
		return -ECONNREFUSED;
	}
	strcpy(addr.sun_path, path);

	Fd conn{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
	if (conn.fd < 0)
		return -errno;
	if (connect(conn.fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) < 0) {
		int err = errno;
		complain("the bpfilter helper is not reachable at", path, err);
		// A socket we may not open is the front door's way of saying "not root"; every
		// other failure means no helper is there.
		return err == EACCES ? -EPERM : -ECONNREFUSED;
	}

	bpfilter_request req = {};
	req.magic = BPFILTER_REQ_MAGIC;
	req.version = BPFILTER_PROTO_VERSION;
	req.op = op;
	req.optname = optname;
	req.optlen = optlen;
	req.data_len = data_len;
	req.netns_cookie = netns_cookie(sockfd);
	req.netns_fd = -1;
	req.seq = next_seq.fetch_add(1);

	int err = bpfilter::wire::write_full(conn.fd, &req, sizeof(req));
	if (!err && data_len)
		err = bpfilter::wire::write_full(conn.fd, data, data_len);
	bpfilter_reply rep = {};
	if (!err) {
		ssize_t n = bpfilter::wire::read_full(conn.fd, &rep, sizeof(rep));
		err = n < 0				      ? static_cast<int>(n)
		      : n < static_cast<ssize_t>(sizeof(rep)) ? -ECONNRESET
							      : 0;
	}
	if (!err)
		err = bpfilter::wire::check_reply_header(rep, req.seq, max_reply);
	if (!err) {
		answer.data.resize(rep.data_len);
		ssize_t n = bpfilter::wire::read_full(conn.fd, answer.data.data(), rep.data_len);
		err = n < 0				       ? static_cast<int>(n)
		      : n < static_cast<ssize_t>(rep.data_len) ? -ECONNRESET
							       : 0;
	}
	if (err) {
		complain("lost the bpfilter helper at", path, -err);
		return -ECONNRESET;
	}
	answer.status = rep.status;
	// The helper serves the namespace it runs in; say so rather than leave the user
	// with "Invalid cross-device link".
	if (answer.status == -EXDEV)
		complain("the bpfilter helper serves another network namespace than this one at",
			 path, EXDEV);
	return 0;
}

int fail(int err)
{
	errno = err;
	return -1;
}

int forward_set(int fd, int optname, const void *optval, socklen_t optlen)
{
	if (optlen > INT_MAX)
		return fail(EINVAL);
	if (!optval && optlen)
		return fail(EFAULT);
	Answer answer;
	int err = exchange(fd, BPFILTER_OP_SETSOCKOPT, optname, optlen, optval, optlen,
			   BPFILTER_MAX_DATA, answer);
	if (err)
		return fail(-err);
	if (answer.status < 0)
		return fail(-answer.status);
	// The new table is in place: like ip_tables, hand back the old counters, and do not
	// fail the call if they cannot be written.
	if (optname == IPT_SO_SET_REPLACE && !answer.data.empty() &&
	    optlen >= sizeof(struct ipt_replace)) {
		uintptr_t counters = 0; // ipt_replace.counters, read unaligned
		memcpy(&counters,
		       static_cast<const uint8_t *>(optval) +
			       offsetof(struct ipt_replace, counters),
		       sizeof(counters));
		auto *dst = reinterpret_cast<struct xt_counters *>(counters);
		if (dst)
			memcpy(dst, answer.data.data(), answer.data.size());
	}
	return answer.status;
}

int forward_get(int fd, int optname, void *optval, socklen_t *optlen)
{
	if (!optlen)
		return fail(EFAULT);
	if (*optlen > INT_MAX)
		return fail(EINVAL);
	uint32_t len = *optlen;
	uint32_t in_len = std::min<uint32_t>(len, get_input_size(optname));
	if (!optval && in_len)
		return fail(EFAULT);
	Answer answer;
	int err = exchange(fd, BPFILTER_OP_GETSOCKOPT, optname, len, optval, in_len, len, answer);
	if (err)
		return fail(-err);
	if (answer.status < 0)
		return fail(-answer.status);
	if (!answer.data.empty()) {
		memcpy(optval, answer.data.data(), answer.data.size());
		*optlen = static_cast<socklen_t>(answer.data.size());
	}
	// A revision query's status is the best revision; ip_getsockopt() turns every
	// non-negative answer of nf_getsockopt() into 0 for the caller.
	return 0;
}

constexpr const char hashlimit_dir[] = "/proc/net/ipt_hashlimit/";

bool hashlimit_path(const char *path)
{
	return path && strncmp(path, hashlimit_dir, sizeof(hashlimit_dir) - 1) == 0 &&
	       path[sizeof(hashlimit_dir) - 1] != 0;
}

// An fd open for reading on the htable's text (a memfd), or -1 with errno.
int hashlimit_fd(const char *path)
{
	const char *name = path + sizeof(hashlimit_dir) - 1;
	// A socket in the caller's namespace, for its cookie.
	Fd probe{socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
	if (probe.fd < 0)
		return -1;
	Answer answer;
	int err = exchange(probe.fd, BPFILTER_OP_HASHLIMIT_READ, 0, 0, name,
			   static_cast<uint32_t>(strlen(name)), BPFILTER_MAX_DATA, answer);
	if (err)
		return fail(-err);
	if (answer.status < 0)
		return fail(-answer.status);
	int fd = memfd_create("ipt_hashlimit", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!answer.data.empty() &&
	    bpfilter::wire::write_full(fd, answer.data.data(), answer.data.size()) != 0) {
		close(fd);
		return fail(EIO);
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

using open_fn = int (*)(const char *, int, ...);
using openat_fn = int (*)(int, const char *, int, ...);

template <typename F> F real_fn(const char *symbol, std::atomic<F> &cache)
{
	F f = cache.load(std::memory_order_acquire);
	if (!f) {
		f = reinterpret_cast<F>(dlsym(RTLD_NEXT, symbol));
		cache.store(f, std::memory_order_release);
	}
	return f;
}

mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int do_open(const char *symbol, std::atomic<open_fn> &cache, const char *path, int flags,
	    mode_t mode)
{
	if (hashlimit_path(path) && (flags & O_ACCMODE) == O_RDONLY)
		return hashlimit_fd(path);
	open_fn real = real_fn(symbol, cache);
	return real ? real(path, flags, mode) : fail(ENOSYS);
}

int do_openat(const char *symbol, std::atomic<openat_fn> &cache, int dirfd, const char *path,
	      int flags, mode_t mode)
{
	if (hashlimit_path(path) && (flags & O_ACCMODE) == O_RDONLY)
		return hashlimit_fd(path);
	openat_fn real = real_fn(symbol, cache);
	return real ? real(dirfd, path, flags, mode) : fail(ENOSYS);
}

} // namespace

extern "C" {

__attribute__((visibility("default"))) int open(const char *path, int flags, ...)
{
	static std::atomic<open_fn> cache{nullptr};
	va_list ap;
	va_start(ap, flags);
	const mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open("open", cache, path, flags, mode);
}

__attribute__((visibility("default"))) int open64(const char *path, int flags, ...)
{
	static std::atomic<open_fn> cache{nullptr};
	va_list ap;
	va_start(ap, flags);
	const mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open("open64", cache, path, flags, mode);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char *path, int flags, ...)
{
	static std::atomic<openat_fn> cache{nullptr};
	va_list ap;
	va_start(ap, flags);
	const mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat("openat", cache, dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path, int flags, ...)
{
	static std::atomic<openat_fn> cache{nullptr};
	va_list ap;
	va_start(ap, flags);
	const mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat("openat64", cache, dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int getsockopt(int fd, int level, int optname, void *optval,
						      socklen_t *optlen)
{
	getsockopt_fn real = real_getsockopt();
	if (!ours_get(level, optname) || !is_ipv4_socket(fd))
		return real ? real(fd, level, optname, optval, optlen) : fail(ENOSYS);
	int saved = errno;
	int ret = forward_get(fd, optname, optval, optlen);
	if (ret >= 0)
		errno = saved;
	return ret;
}

__attribute__((visibility("default"))) int setsockopt(int fd, int level, int optname,
						      const void *optval, socklen_t optlen)
{
	setsockopt_fn real = real_setsockopt();
	if (!ours_set(level, optname) || !is_ipv4_socket(fd))
		return real ? real(fd, level, optname, optval, optlen) : fail(ENOSYS);
	int saved = errno;
	int ret = forward_set(fd, optname, optval, optlen);
	if (ret >= 0)
		errno = saved;
	return ret;
}

__attribute__((visibility("default"))) FILE *fopen(const char *path, const char *mode)
{
	static std::atomic<fopen_fn> cache{nullptr};
	return open_file("fopen", cache, path, mode);
}

__attribute__((visibility("default"))) FILE *fopen64(const char *path, const char *mode)
{
	static std::atomic<fopen_fn> cache{nullptr};
	return open_file("fopen64", cache, path, mode);
}

} // extern "C"
