// The helper's sandbox: its name, capabilities, no_new_privs and seccomp, checked in a child
// that enters it (the test process keeps its privileges).
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include <linux/netlink.h>

#include "server/sandbox.hpp"

namespace bpfilter
{
namespace
{

std::string status_field(const std::string &name)
{
	std::ifstream f("/proc/self/status");
	std::string line;
	while (std::getline(f, line))
		if (line.rfind(name + ":", 0) == 0)
			return line.substr(name.size() + 2);
	return "";
}

// The capability mask the sandbox should leave: its list, of those this process has.
std::string expected_caps;
uint64_t keep_mask;

std::string kept_mask()
{
	const uint64_t prm = std::stoull(status_field("CapPrm"), nullptr, 16);
	uint64_t keep = 0;
	for (int cap : server::kept_capabilities({}))
		keep |= 1ull << cap;
	keep_mask = keep;
	char buf[17];
	snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(keep & prm));
	return buf;
}

// Runs fn in a child that entered the sandbox; the child's exit status is fn's result
// (0: every expectation held, else the number of the one that failed).
int in_sandbox(int (*fn)())
{
	const pid_t pid = fork();
	if (pid == 0) {
		if (!server::enter_sandbox({}))
			_exit(100);
		_exit(fn());
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

TEST(Sandbox, NamePrivilegesAndFilter)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "needs root";
	// CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_RESOURCE, CAP_PERFMON, CAP_BPF where the test
	// has them all (the guest checks the exact mask).
	expected_caps = kept_mask();
	EXPECT_EQ(in_sandbox([] {
			  char name[16] = {};
			  prctl(PR_GET_NAME, name);
			  if (strcmp(name, "bpfilter_umh") != 0)
				  return 1;
			  if (status_field("CapEff") != expected_caps)
				  return 2;
			  if ((std::stoull(status_field("CapBnd"), nullptr, 16) & ~keep_mask) != 0)
				  return 3;
			  if (status_field("NoNewPrivs") != "1" || status_field("Seccomp") != "2")
				  return 4;
			  return 0;
		  }),
		  0);
}

// What the helper uses still works: netlink, BPF, /proc; what it never needs fails with
// EPERM (the SIGSYS handler's answer), without killing it.
TEST(Sandbox, AllowsWhatTheHelperUsesOnly)
{
	if (geteuid() != 0)
		GTEST_SKIP() << "needs root";
	EXPECT_EQ(in_sandbox([] {
			  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
			  if (nl < 0)
				  return 1;
			  close(nl);
			  union bpf_attr attr = {};
			  attr.map_type = BPF_MAP_TYPE_ARRAY;
			  attr.key_size = 4;
			  attr.value_size = 4;
			  attr.max_entries = 1;
			  const long map = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
			  if (map < 0)
				  return 2;
			  close(static_cast<int>(map));
			  std::ifstream comm("/proc/self/comm");
			  if (!comm)
				  return 3;
			  char *const argv[] = {const_cast<char *>("/bin/true"), nullptr};
			  if (execve("/bin/true", argv, nullptr) != -1 || errno != EPERM)
				  return 4;
			  if (syscall(SYS_ptrace, 0, 0, 0, 0) != -1 || errno != EPERM)
				  return 5;
			  if (fork() != -1 || errno != EPERM)
				  return 6;
			  // Threads (the module's helper serves namespaces on several), which
			  // inherit the filter and the capabilities.
			  std::string thread_caps;
			  std::thread t([&] {
				  thread_caps = status_field("CapEff");
				  if (fork() != -1 || errno != EPERM)
					  thread_caps = "fork";
			  });
			  t.join();
			  if (thread_caps != status_field("CapEff"))
				  return 7;
			  return 0;
		  }),
		  0);
}

} // namespace
} // namespace bpfilter
