// The front door's files in /run/bpfilter: the instance lock and the table in force.
#include "server/rundir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bpfilter::server
{
namespace
{

Error sys_error(int err, const std::string &what)
{
	return make_error(err, what + ": " + strerror(err));
}

Status check_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return sys_error(errno, std::string("creating ") + dir);
	struct stat st;
	if (lstat(dir, &st) < 0)
		return sys_error(errno, std::string("checking ") + dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022))
		return make_error(EPERM,
				  std::string(dir) +
					  " is not a directory that only the helper's user "
					  "may write: refusing to keep the lock and table there");
	return {};
}

} // namespace

Result<RunFiles> RunFiles::open(uint64_t netns_cookie)
{
	BF_TRY(check_dir(run_dir));
	RunFiles f;
	const std::string id = std::to_string(netns_cookie);
	f.lock_path_ = std::string(run_dir) + "/listen-" + id + ".lock";
	f.table_path_ = std::string(run_dir) + "/table-" + id;
	return f;
}

Status RunFiles::lock()
{
	for (;;) {
		loader::Fd fd(::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				     0600));
		if (!fd)
			return sys_error(errno, "opening " + lock_path_);
		if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0)
			return errno == EWOULDBLOCK
				       ? make_error(EADDRINUSE, "another bpfilter_umh --listen "
								"serves this network namespace")
				       : sys_error(errno, "locking " + lock_path_);
		// A helper that exited cleanly unlinks the file it held: the lock taken must
		// be on the file that is there now.
		struct stat held, now;
		if (fstat(fd.get(), &held) == 0 && stat(lock_path_.c_str(), &now) == 0 &&
		    held.st_ino == now.st_ino && held.st_dev == now.st_dev) {
			lock_ = std::move(fd);
			return {};
		}
	}
}

void RunFiles::unlock()
{
	if (lock_)
		unlink(lock_path_.c_str());
	lock_.reset();
}

Result<std::optional<std::vector<uint8_t>>> RunFiles::read_table() const
{
	loader::Fd fd(::open(table_path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
	if (!fd) {
		if (errno == ENOENT)
			return std::optional<std::vector<uint8_t>>();
		return sys_error(errno, "opening " + table_path_);
	}
	std::vector<uint8_t> blob;
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = read(fd.get(), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sys_error(errno, "reading " + table_path_);
		if (n == 0)
			break;
		blob.insert(blob.end(), buf, buf + n);
	}
	return std::optional<std::vector<uint8_t>>(std::move(blob));
}

Status RunFiles::stage_table(std::span<const uint8_t> blob) const
{
	const std::string tmp = table_path_ + ".new";
	loader::Fd fd(
		::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
	if (!fd)
		return sys_error(errno, "creating " + tmp);
	size_t done = 0;
	while (done < blob.size()) {
		ssize_t n = write(fd.get(), blob.data() + done, blob.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sys_error(errno, "writing " + tmp);
		done += static_cast<size_t>(n);
	}
	return {};
}

Status RunFiles::commit_table() const
{
	const std::string tmp = table_path_ + ".new";
	if (rename(tmp.c_str(), table_path_.c_str()) < 0)
		return sys_error(errno, "renaming " + tmp);
	return {};
}

void RunFiles::unstage_table() const
{
	unlink((table_path_ + ".new").c_str());
}

void RunFiles::remove_table() const
{
	unlink(table_path_.c_str());
}

} // namespace bpfilter::server
