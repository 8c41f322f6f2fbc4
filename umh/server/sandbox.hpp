// The helper's privileges: its name, the capabilities it keeps, no_new_privs and a seccomp
// allowlist, set once before it serves anything (Documentation/security.md).
#pragma once

#include <vector>

#include "common/result.hpp"

namespace bpfilter::server
{

struct SandboxOptions {
	// The front door reads its peers' /proc/PID/ns/* and runs iptables-legacy (connection
	// tracking on): it keeps CAP_SYS_PTRACE and CAP_NET_RAW and may spawn. The module's
	// helper needs none of that.
	bool front_door = false;
};

// Renames the task "bpfilter_umh" (the module executes it from a /proc/self/fd path, so
// ps would show the descriptor's number), drops every capability but those it uses (from
// the bounding, permitted, effective, inheritable and ambient sets), sets no_new_privs and
// installs the seccomp filter. An error leaves the helper as privileged as it started: the
// caller says so and goes on (Documentation/security.md).
Status enter_sandbox(const SandboxOptions &options);

// The capabilities kept, and the system calls allowed (x86-64 numbers), for the tests.
std::vector<int> kept_capabilities(const SandboxOptions &options);
std::vector<int> allowed_syscalls();
std::vector<int> allowed_syscalls(const SandboxOptions &options);

} // namespace bpfilter::server
