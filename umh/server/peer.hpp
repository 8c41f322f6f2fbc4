// Who is at the other end of a front-door connection, as the kernel knows it: never what the
// client says about itself.
#pragma once

#include <sys/types.h>

#include <string>

namespace bpfilter::server
{

struct Peer {
	pid_t pid = 0;
	bool same_netns = false; // runs in the helper's network namespace
	bool net_admin = false;	 // has CAP_NET_ADMIN over it, as ns_capable() would say
	std::string why;	 // what was found wanting, for the log
};

// The process that connected sock: SO_PEERPIDFD where the kernel has it (6.5), else
// SO_PEERCRED's pid pinned with pidfd_open(). Its network namespace (/proc/PID/ns/net)
// is compared with own_netns (a descriptor of the helper's); its capability is CapEff of
// /proc/PID/status, counted only in the user namespace that owns own_netns or one of
// that namespace's ancestors. The process must still be alive after everything was read
// (its pidfd not yet readable), so that a recycled pid is never what was looked at.
Peer identify_peer(int sock, int own_netns);

} // namespace bpfilter::server
