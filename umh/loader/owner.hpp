// What -m owner's programs need from the running kernel: where struct sk_buff, sock, socket,
// file and cred keep the fields owner_mt() reads (its BTF), and whether the namespace's
// user namespace maps ids as the helper's does.
#pragma once

#include "codegen/codegen.hpp"
#include "common/result.hpp"
#include "ir/ir.hpp"

namespace bpfilter::loader
{

// The offsets from /sys/kernel/btf/vmlinux. ENOENT with the field when one is missing.
Result<codegen::OwnerLayout> owner_layout();

// Does some rule of the table use -m owner?
bool uses_owner(const ir::Table &table);

// owner_check() maps the rule's ids with make_kuid(net->user_ns, ...) and requires that
// namespace to be the writer's. The helper translates ids as the identity, which is the
// mapping of its own (the initial) user namespace: a table with --uid-owner or --gid-owner
// for a network namespace owned by another user namespace is refused (EOPNOTSUPP).
Status check_owner_userns(const ir::Table &table);

} // namespace bpfilter::loader
