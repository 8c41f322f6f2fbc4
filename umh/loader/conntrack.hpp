// What programs that track connections need from the running kernel: nf_conntrack's kfuncs and
// struct nf_conn's layout from its BTF, the namespace's conntrack settings, and the maps
// shared by every program of a namespace.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "loader/fd.hpp"

namespace bpfilter::loader
{

struct Conntrack {
	codegen::CtLayout layout;
	std::array<int32_t, 4> btf_id{}; // by codegen::Kfunc
	Fd module_btf;			 // nf_conntrack's BTF when it is a module; else none
	Fd own;				 // codegen::MapSlot::CtOwn
	Fd tcp;				 // codegen::MapSlot::CtTcp
};

// Find the kfuncs and struct nf_conn in the kernel's BTF (vmlinux, then the nf_conntrack
// module's), read the current namespace's net.netfilter.nf_conntrack_* settings and create
// the maps. ENOENT with a reason when the kernel has no such functions.
Result<std::unique_ptr<Conntrack>> open_conntrack();

// A ctnetlink socket that hears the kernel forget connections (NFNLGRP_CONNTRACK_DESTROY:
// timeouts, `conntrack -D`/`-F`, ...), non-blocking, in the current namespace.
Result<Fd> open_ct_events();
// Read every pending event and forget bpfilter's own entry (maps::CtOwnKey) of each ICMP
// query or other-protocol flow the kernel forgot: ours follow the kernel's.
Status forget_destroyed(int events_fd, int own_map_fd);

// Does some rule of the table test connection-tracking state?
bool tracks_connections(const ir::Table &table);

// The front door's way of turning connection tracking on in its namespace, where the
// module would call nf_ct_netns_get() as xt_conntrack's checkentry does: a rule in the
// kernel's own raw table (iptables-legacy, without bpfilter's preload) whose conntrack
// match takes that reference. It only counts: no target. `on` adds it unless it is there,
// off deletes it.
Status hold_conntrack(bool on);

} // namespace bpfilter::loader
