// The helper's privileges: its name, the capabilities it keeps, no_new_privs and a seccomp
// allowlist, set once before it serves anything.
#include "server/sandbox.hpp"

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace bpfilter::server
{
namespace
{

Error sys_error(const std::string &what)
{
	return make_error(errno, what + ": " + strerror(errno));
}

// A system call outside the list: the helper logs its number (fd 2 is /dev/kmsg under the
// module, stderr at the front door) and the call fails with EPERM, so that a path the list
// missed shows up as one line and an error, not as a dead helper.
void on_sigsys(int, siginfo_t *info, void *ctx)
{
	char msg[96];
	const int nr = info->si_syscall;
	int n = snprintf(
		msg, sizeof(msg),
		"<4>bpfilter: seccomp: system call %d is not on the helper's list (EPERM)\n", nr);
	if (n > 0)
		(void)!write(STDERR_FILENO, msg, static_cast<size_t>(n));
	auto *uc = static_cast<ucontext_t *>(ctx);
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
}

Status install_seccomp(const std::vector<int> &allowed)
{
	if (allowed.size() > 250)
		return make_error(E2BIG, "seccomp: too many system calls for one jump");
	std::vector<sock_filter> prog;
	auto stmt = [&](uint16_t code, uint32_t k) { prog.push_back(BPF_STMT(code, k)); };
	auto jump = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
		prog.push_back(BPF_JUMP(code, k, jt, jf));
	};
	stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	// Without clone on the list, threads only (the module's helper serves namespaces on
	// several): clone with CLONE_THREAD is allowed, any other (fork, a new process) goes
	// to the trap. clone3's flags are behind a pointer the filter cannot read: ENOSYS,
	// and glibc's pthread_create falls back to clone.
	if (std::find(allowed.begin(), allowed.end(), SYS_clone) == allowed.end()) {
		jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
		stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
		jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
		stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
		jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
		stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	}
	// x32 numbers (bit 30) are not x86-64's: to the trap, past the list.
	jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, static_cast<uint8_t>(allowed.size()), 0);
	for (size_t i = 0; i < allowed.size(); i++)
		jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(allowed[i]),
		     static_cast<uint8_t>(allowed.size() - i), 0);
	stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	struct sigaction sa = {};
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &sa, nullptr) < 0)
		return sys_error("seccomp: SIGSYS handler");
	sock_fprog fprog = {static_cast<unsigned short>(prog.size()), prog.data()};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
		return sys_error("seccomp: installing the filter");
	return {};
}

Status drop_capabilities(const std::vector<int> &keep)
{
	// The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
		if (std::find(keep.begin(), keep.end(), cap) != keep.end())
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return sys_error("dropping capability " + std::to_string(cap) +
					 " from the bounding set");
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return sys_error("clearing the ambient capabilities");
	__user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct now[_LINUX_CAPABILITY_U32S_3] = {};
	if (syscall(SYS_capget, &hdr, now) < 0)
		return sys_error("reading the capabilities");
	// Those of the list the helper has: one started without some keeps going without.
	__user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
	for (int cap : keep) {
		const uint32_t bit = 1u << (cap % 32);
		data[cap / 32].effective |= now[cap / 32].permitted & bit;
		data[cap / 32].permitted |= now[cap / 32].permitted & bit;
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return sys_error("setting the capabilities");
	return {};
}

} // namespace

std::vector<int> kept_capabilities(const SandboxOptions &options)
{
	// CAP_BPF, CAP_PERFMON: programs and maps; CAP_NET_ADMIN: XDP, tc and netlink;
	// CAP_SYS_ADMIN: setns() into the caller's namespace (the kernel asks for it in both
	// the target's user namespace and the helper's); CAP_SYS_RESOURCE: the memlock
	// limit, where libbpf still raises it.
	std::vector<int> caps = {CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN,
				 CAP_SYS_RESOURCE};
	// The front door also reads its peers' /proc/PID/ns/* (CAP_SYS_PTRACE for a peer of
	// another user or not dumpable) and runs iptables-legacy -t raw to keep connection
	// tracking on (which opens a raw socket: CAP_NET_RAW).
	if (options.front_door) {
		caps.push_back(CAP_SYS_PTRACE);
		caps.push_back(CAP_NET_RAW);
	}
	return caps;
}

std::vector<int> allowed_syscalls(const SandboxOptions &options)
{
	std::vector<int> calls = allowed_syscalls();
	// The front door's iptables-legacy (posix_spawn, exec, wait), what a new process calls
	// as it starts, and what iptables-legacy -w calls (measured with strace -f): the
	// child inherits the filter, without the SIGSYS handler, so a call off the list
	// kills it (the replace then fails with the exit status in the log).
	if (options.front_door)
		calls.insert(calls.end(),
			     {SYS_clone, SYS_clone3, SYS_vfork, SYS_execve, SYS_wait4, SYS_waitid,
			      SYS_arch_prctl, SYS_set_tid_address, SYS_alarm, SYS_setitimer});
	return calls;
}

std::vector<int> allowed_syscalls()
{
	// What the helper, glibc, libstdc++ and libbpf call while serving (measured with
	// strace over the host and guest lanes). Absent on purpose: execve and execveat,
	// clone and fork (but a thread: install_seccomp), ptrace, process_vm_*, module, mount,
	// keyring, io_uring, perf_event_open, unshare, setuid and friends, kexec, reboot.
	return {
		SYS_read,
		SYS_write,
		SYS_readv,
		SYS_writev,
		SYS_pread64,
		SYS_pwrite64,
		SYS_open,
		SYS_openat,
		SYS_close,
		SYS_close_range,
		SYS_lseek,
		SYS_fstat,
		SYS_stat,
		SYS_lstat,
		SYS_newfstatat,
		SYS_statx,
		SYS_fstatfs,
		SYS_statfs,
		SYS_access,
		SYS_faccessat,
		SYS_faccessat2,
		SYS_readlink,
		SYS_readlinkat,
		SYS_getdents64,
		SYS_fcntl,
		SYS_dup,
		SYS_dup2,
		SYS_dup3,
		SYS_pipe2,
		SYS_ioctl,
		SYS_flock,
		SYS_fsync,
		SYS_fdatasync,
		SYS_ftruncate,
		SYS_rename,
		SYS_renameat,
		SYS_renameat2,
		SYS_unlink,
		SYS_unlinkat,
		SYS_mkdir,
		SYS_mkdirat,
		SYS_fchmod,
		SYS_fchown,
		SYS_umask,
		SYS_getcwd,
		SYS_mmap,
		SYS_munmap,
		SYS_mprotect,
		SYS_mremap,
		SYS_madvise,
		SYS_brk,
		SYS_poll,
		SYS_ppoll,
		SYS_select,
		SYS_pselect6,
		SYS_epoll_create1,
		SYS_epoll_ctl,
		SYS_epoll_wait,
		SYS_epoll_pwait,
		SYS_signalfd4,
		SYS_eventfd2,
		SYS_timerfd_create,
		SYS_timerfd_settime,
		SYS_rt_sigaction,
		SYS_rt_sigprocmask,
		SYS_rt_sigreturn,
		SYS_sigaltstack,
		SYS_kill,
		SYS_tgkill,
		SYS_getpid,
		SYS_gettid,
		SYS_getppid,
		SYS_getuid,
		SYS_geteuid,
		SYS_getgid,
		SYS_getegid,
		SYS_getresuid,
		SYS_getresgid,
		SYS_getgroups,
		SYS_capget,
		SYS_prctl,
		SYS_socket,
		SYS_socketpair,
		SYS_bind,
		SYS_listen,
		SYS_accept4,
		SYS_connect,
		SYS_getsockname,
		SYS_getpeername,
		SYS_getsockopt,
		SYS_setsockopt,
		SYS_sendto,
		SYS_recvfrom,
		SYS_sendmsg,
		SYS_recvmsg,
		SYS_shutdown,
		SYS_bpf,
		SYS_setns,
		SYS_pidfd_open,
		SYS_clock_gettime,
		SYS_clock_getres,
		SYS_gettimeofday,
		SYS_clock_nanosleep,
		SYS_nanosleep,
		SYS_sched_yield,
		SYS_sched_getaffinity,
		SYS_getrandom,
		SYS_uname,
		SYS_sysinfo,
		SYS_getrlimit,
		SYS_setrlimit,
		SYS_prlimit64,
		SYS_getrusage,
		SYS_times,
		SYS_futex,
		SYS_set_robust_list,
		SYS_rseq,
		SYS_restart_syscall,
		SYS_exit,
		SYS_exit_group,
		SYS_membarrier,
	};
}

Status enter_sandbox(const SandboxOptions &options)
{
	if (prctl(PR_SET_NAME, "bpfilter_umh", 0, 0, 0) < 0)
		return sys_error("naming the task");
	// Not dumpable: only CAP_SYS_PTRACE in the initial user namespace may look inside
	// (pidfd_getfd(), /proc/PID/fd, mem), the channel's descriptor included.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return sys_error("making the helper not dumpable");
	BF_TRY(drop_capabilities(kept_capabilities(options)));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sys_error("setting no_new_privs");
	return install_seccomp(allowed_syscalls(options));
}

} // namespace bpfilter::server
