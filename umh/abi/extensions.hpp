// The matches and targets this helper knows, looked up the way x_tables finds extensions.
//
// bpfilter answers as a kernel on which only these extensions are registered: ip_tables'
// built-ins (standard and ERROR targets, icmp), xt_tcpudp's tcp and udp, xt_multiport,
// xt_iprange, xt_comment, xt_state, xt_conntrack (revisions 1 to 3), ipt_REJECT, xt_LOG,
// xt_addrtype (revisions 0 and 1), xt_limit, xt_mark (mark, MARK), xt_connmark's match, and the
// header matches xt_length, xt_hl's ttl,
// xt_dscp's dscp and tos (revision 1), xt_ecn, xt_pkttype, xt_mac, ipt_ah and xt_esp;
// xt_hashlimit (revisions 1 to 3), xt_connlimit (revision 1).
// Anything else is missing, with the errno such a kernel gives.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "common/result.hpp"
#include "ir/hashlimit.hpp"

namespace bpfilter::abi
{

enum class ExtKind : uint8_t { Match, Target };

// Which extension it is, for the checks and the translation that follow a lookup.
enum class ExtId : uint8_t {
	Tcp,
	Udp,
	Icmp,
	Multiport,
	Iprange,
	Comment,
	State,
	Conntrack,
	Standard,
	Error,
	Reject,
	Log,
	Addrtype,
	Limit,
	Mark,
	MarkTarget,
	Connmark,
	Length,
	Ttl,
	Tos,
	Dscp,
	Ecn,
	Pkttype,
	Mac,
	Ah,
	Esp,
	Hashlimit,
	Recent,
	Owner,
	U32,
	Connlimit
};

struct Extension {
	ExtKind kind;
	ExtId id;
	std::string_view name;
	uint8_t revision;
	bool unspec;	// registered for NFPROTO_UNSPEC rather than NFPROTO_IPV4
	uint32_t size;	// matchsize / targetsize (before XT_ALIGN)
	uint16_t proto; // the protocol the rule must name (-p), 0 for any
	// xt_check_target's restrictions: the only table it is valid in (empty: any), and
	// the hooks it may be reached from (0: any).
	std::string_view table = {};
	uint32_t hooks = 0;
	// xt_match.usersize: the bytes of data GET_ENTRIES copies back (0: all of size); the
	// rest up to XT_ALIGN(size) reads as zeroes (kernel-private fields).
	uint32_t usersize = 0;
};

// Every extension registered, in registration order (`bpfilter_umh --list-extensions`).
std::span<const Extension> registered_extensions();

// xt_request_find_match / xt_request_find_target: EINVAL for a name without a NUL in its 29
// bytes, ENOENT when no such extension exists, EPROTOTYPE when the family-independent
// list has the name at another revision. `name_field` is the 29-byte name field.
Result<const Extension *> find_extension(ExtKind kind, std::span<const uint8_t> name_field,
					 uint8_t revision);

// xt_find_revision as IPT_SO_GET_REVISION_* answers it: the best revision known when the
// asked one exists, -EPROTONOSUPPORT when only others do, -ENOENT when none does.
int find_revision(ExtKind kind, std::string_view name, uint8_t revision);

// The extension's own checkentry (tcp_mt_check, udp_mt_check, icmp_checkentry,
// multiport_mt_check, reject_tg_check, log_tg_check): 0 or a negative errno. `data` is the
// extension's data, of XT_ALIGN(size) bytes; proto and invflags are the entry's ipt_ip
// fields. state_mt_check and conntrack_mt_check only take the namespace's conntrack
// reference, which the data plane takes when it loads such a table.
int check_extension(const Extension &ext, std::span<const uint8_t> data, uint16_t proto,
		    uint8_t ip_invflags);

// addrtype_mt_checkentry_v1's hook restrictions on --limit-iface-in/-out, for a revision 1
// match reached from the hooks in hook_mask (the entry's comefrom): empty when it passes,
// else the reason the kernel logs (the errno is EINVAL).
std::string_view check_addrtype_hooks(std::span<const uint8_t> data, uint32_t hook_mask);

// -m hashlimit's data (struct xt_hashlimit_mtinfo1, 2 or 3 by `revision`): its name and its
// configuration widened as cfg_copy() does.
struct HashlimitInfo {
	std::string_view name;
	ir::hashlimit::Cfg cfg;
};
HashlimitInfo hashlimit_info(std::span<const uint8_t> data, uint8_t revision);

// hashlimit_mt_check_v1/_v2/hashlimit_mt_check's tests that need neither HZ nor the
// namespace's htables, in their order: 0 and no reason, or -errno and why.
struct Refusal {
	int err = 0;
	std::string_view why;
};
Refusal check_hashlimit(std::span<const uint8_t> data, uint8_t revision);

} // namespace bpfilter::abi
