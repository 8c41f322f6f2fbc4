// The matches and targets this helper knows, looked up the way x_tables finds extensions.
#include "abi/extensions.hpp"

#include <linux/in.h>
#include <linux/netfilter/xt_LOG.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_comment.h>
#include <linux/netfilter/xt_connlimit.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_dscp.h>
#include <linux/netfilter/xt_ecn.h>
#include <linux/netfilter/xt_esp.h>
#include <linux/netfilter/xt_hashlimit.h>
#include <linux/netfilter/xt_iprange.h>
#include <linux/netfilter/xt_length.h>
#include <linux/netfilter/xt_limit.h>
#include <linux/netfilter/xt_mac.h>
#include <linux/netfilter/xt_mark.h>
#include <linux/netfilter/xt_multiport.h>
#include <linux/netfilter/xt_owner.h>
#include <linux/netfilter/xt_pkttype.h>
#include <linux/netfilter/xt_recent.h>
#include <linux/netfilter/xt_state.h>
#include <linux/netfilter/xt_tcpudp.h>
#include <linux/netfilter/xt_u32.h>
#include <linux/netfilter_ipv4/ipt_REJECT.h>
#include <linux/netfilter_ipv4/ipt_ah.h>
#include <linux/netfilter_ipv4/ipt_ttl.h>

#include <linux/limits.h>

#include <algorithm>
#include <array>
#include <bit>
#include <string_view>

#include "abi/layout.hpp"

namespace bpfilter::abi
{
namespace
{

// In registration order, as the kernel's lists would hold them; the order does not change
// any answer because names within a family are unique per revision.
constexpr uint32_t reject_hooks = (1u << 1) | (1u << 2) | (1u << 3); // LOCAL_IN, FORWARD, LOCAL_OUT
constexpr uint32_t mac_hooks = (1u << 0) | (1u << 1) | (1u << 2); // PRE_ROUTING, LOCAL_IN, FORWARD
constexpr uint32_t owner_hooks = (1u << 3) | (1u << 4);		  // LOCAL_OUT, POST_ROUTING

constexpr std::array<Extension, 37> registry = {{
	{ExtKind::Target, ExtId::Standard, XT_STANDARD_TARGET, 0, false, sizeof(int), 0},
	{ExtKind::Target, ExtId::Error, XT_ERROR_TARGET, 0, false, XT_FUNCTION_MAXNAMELEN, 0},
	{ExtKind::Match, ExtId::Icmp, "icmp", 0, false, sizeof(struct ipt_icmp), IPPROTO_ICMP},
	{ExtKind::Match, ExtId::Tcp, "tcp", 0, false, sizeof(struct xt_tcp), IPPROTO_TCP},
	{ExtKind::Match, ExtId::Udp, "udp", 0, false, sizeof(struct xt_udp), IPPROTO_UDP},
	{ExtKind::Match, ExtId::Multiport, "multiport", 1, false, sizeof(struct xt_multiport_v1),
	 0},
	{ExtKind::Match, ExtId::Iprange, "iprange", 1, false, sizeof(struct xt_iprange_mtinfo), 0},
	{ExtKind::Match, ExtId::Comment, "comment", 0, true, sizeof(struct xt_comment_info), 0},
	{ExtKind::Match, ExtId::State, "state", 0, true, sizeof(struct xt_state_info), 0},
	{ExtKind::Match, ExtId::Conntrack, "conntrack", 1, true,
	 sizeof(struct xt_conntrack_mtinfo1), 0},
	{ExtKind::Match, ExtId::Conntrack, "conntrack", 2, true,
	 sizeof(struct xt_conntrack_mtinfo2), 0},
	{ExtKind::Match, ExtId::Conntrack, "conntrack", 3, true,
	 sizeof(struct xt_conntrack_mtinfo3), 0},
	{ExtKind::Target, ExtId::Reject, "REJECT", 0, false, sizeof(struct ipt_reject_info), 0,
	 "filter", reject_hooks},
	{ExtKind::Target, ExtId::Log, "LOG", 0, false, sizeof(struct xt_log_info), 0},
	// xt_addrtype registers both revisions for NFPROTO_IPV4 (6.1's addrtype_mt_reg).
	{ExtKind::Match, ExtId::Addrtype, "addrtype", 0, false, sizeof(struct xt_addrtype_info), 0},
	{ExtKind::Match, ExtId::Addrtype, "addrtype", 1, false, sizeof(struct xt_addrtype_info_v1),
	 0},
	{ExtKind::Match,
	 ExtId::Limit,
	 "limit",
	 0,
	 true,
	 sizeof(struct xt_rateinfo),
	 0,
	 {},
	 0,
	 offsetof(struct xt_rateinfo, prev)},
	// xt_mark: the match for any family, the target (revision 2) for IPv4, in any table
	// and hook; neither has a checkentry.
	{ExtKind::Match, ExtId::Mark, "mark", 1, true, sizeof(struct xt_mark_mtinfo1), 0},
	{ExtKind::Target, ExtId::MarkTarget, "MARK", 2, false, sizeof(struct xt_mark_tginfo2), 0},
	{ExtKind::Match, ExtId::Connmark, "connmark", 1, true, sizeof(struct xt_connmark_mtinfo1),
	 0},
	// The header matches, as 6.1 registers them for NFPROTO_IPV4 (pkttype: UNSPEC).
	{ExtKind::Match, ExtId::Length, "length", 0, false, sizeof(struct xt_length_info), 0},
	{ExtKind::Match, ExtId::Ttl, "ttl", 0, false, sizeof(struct ipt_ttl_info), 0},
	{ExtKind::Match, ExtId::Dscp, "dscp", 0, false, sizeof(struct xt_dscp_info), 0},
	{ExtKind::Match, ExtId::Tos, "tos", 1, false, sizeof(struct xt_tos_match_info), 0},
	{ExtKind::Match, ExtId::Ecn, "ecn", 0, false, sizeof(struct xt_ecn_info), 0},
	{ExtKind::Match, ExtId::Pkttype, "pkttype", 0, true, sizeof(struct xt_pkttype_info), 0},
	{ExtKind::Match, ExtId::Mac, "mac", 0, false, sizeof(struct xt_mac_info), 0, {}, mac_hooks},
	{ExtKind::Match, ExtId::Ah, "ah", 0, false, sizeof(struct ipt_ah), IPPROTO_AH},
	{ExtKind::Match, ExtId::Esp, "esp", 0, false, sizeof(struct xt_esp), IPPROTO_ESP},
	// xt_hashlimit: revisions 1, 2 and 3 for NFPROTO_IPV4 (6.1's hashlimit_mt_reg).
	{ExtKind::Match,
	 ExtId::Hashlimit,
	 "hashlimit",
	 1,
	 false,
	 sizeof(struct xt_hashlimit_mtinfo1),
	 0,
	 {},
	 0,
	 offsetof(struct xt_hashlimit_mtinfo1, hinfo)},
	{ExtKind::Match,
	 ExtId::Hashlimit,
	 "hashlimit",
	 2,
	 false,
	 sizeof(struct xt_hashlimit_mtinfo2),
	 0,
	 {},
	 0,
	 offsetof(struct xt_hashlimit_mtinfo2, hinfo)},
	{ExtKind::Match,
	 ExtId::Hashlimit,
	 "hashlimit",
	 3,
	 false,
	 sizeof(struct xt_hashlimit_mtinfo3),
	 0,
	 {},
	 0,
	 offsetof(struct xt_hashlimit_mtinfo3, hinfo)},
	// xt_recent registers both revisions for NFPROTO_IPV4 (6.1's recent_mt_reg).
	{ExtKind::Match, ExtId::Recent, "recent", 0, false, sizeof(struct xt_recent_mtinfo), 0},
	{ExtKind::Match, ExtId::Recent, "recent", 1, false, sizeof(struct xt_recent_mtinfo_v1), 0},
	// xt_owner: revision 1 for NFPROTO_IPV4, from OUTPUT (and POSTROUTING, not in filter).
	{ExtKind::Match,
	 ExtId::Owner,
	 "owner",
	 1,
	 false,
	 sizeof(struct xt_owner_match_info),
	 0,
	 {},
	 owner_hooks},
	// xt_u32: revision 0 for NFPROTO_UNSPEC, any table and hook.
	{ExtKind::Match, ExtId::U32, "u32", 0, true, sizeof(struct xt_u32), 0},
	// xt_connlimit: revision 1 for NFPROTO_IPV4; the kernel's pointer to its counting
	// data is not copied back (usersize).
	{ExtKind::Match,
	 ExtId::Connlimit,
	 "connlimit",
	 1,
	 false,
	 sizeof(struct xt_connlimit_info),
	 0,
	 {},
	 0,
	 offsetof(struct xt_connlimit_info, data)},
}};

static_assert(sizeof(struct xt_length_info) == 6 && sizeof(struct ipt_ttl_info) == 2);
static_assert(sizeof(struct xt_dscp_info) == 2 && sizeof(struct xt_tos_match_info) == 3);
static_assert(sizeof(struct xt_ecn_info) == 4 && sizeof(struct xt_pkttype_info) == 8);
static_assert(sizeof(struct xt_mac_info) == 12 && sizeof(struct ipt_ah) == 12 &&
	      sizeof(struct xt_esp) == 12);

static_assert(sizeof(struct xt_owner_match_info) == 20);
static_assert(sizeof(struct xt_connlimit_info) == 32 &&
	      offsetof(struct xt_connlimit_info, data) == 24);
static_assert(sizeof(struct xt_u32) == 1984 && sizeof(struct xt_u32_test) == 180);

static_assert(sizeof(struct xt_tcp) == 12 && sizeof(struct xt_udp) == 10);
static_assert(sizeof(struct ipt_icmp) == 4 && sizeof(struct xt_multiport_v1) == 48);
static_assert(sizeof(struct xt_iprange_mtinfo) == 68 && sizeof(struct xt_comment_info) == 256);
static_assert(sizeof(struct xt_state_info) == 4 && sizeof(struct ipt_reject_info) == 4);
static_assert(sizeof(struct xt_conntrack_mtinfo1) == 152 &&
	      sizeof(struct xt_conntrack_mtinfo2) == 156 &&
	      sizeof(struct xt_conntrack_mtinfo3) == 164);
static_assert(sizeof(struct xt_log_info) == 32);
static_assert(sizeof(struct xt_addrtype_info) == 12 && sizeof(struct xt_addrtype_info_v1) == 8);
static_assert(sizeof(struct xt_recent_mtinfo) == 212 && sizeof(struct xt_recent_mtinfo_v1) == 228);
static_assert(sizeof(struct xt_rateinfo) == 40 && offsetof(struct xt_rateinfo, prev) == 8);
static_assert(sizeof(struct xt_mark_mtinfo1) == 12 && sizeof(struct xt_mark_tginfo2) == 8 &&
	      sizeof(struct xt_connmark_mtinfo1) == 12);
static_assert(sizeof(struct xt_hashlimit_mtinfo1) == 56 &&
	      sizeof(struct xt_hashlimit_mtinfo2) == 304 &&
	      sizeof(struct xt_hashlimit_mtinfo3) == 312);

// One pass of xt_find_match/xt_find_target over one family's list.
Result<const Extension *> find_in(ExtKind kind, bool unspec, std::string_view name,
				  uint8_t revision)
{
	int err = ENOENT;
	for (const Extension &ext : registry) {
		if (ext.kind != kind || ext.unspec != unspec || ext.name != name)
			continue;
		if (ext.revision == revision)
			return &ext;
		err = EPROTOTYPE; // found something
	}
	return make_error(err, "");
}

// match_revfn / target_revfn over one family's list.
bool revfn(ExtKind kind, bool unspec, std::string_view name, uint8_t revision, int &best)
{
	bool have_rev = false;
	for (const Extension &ext : registry) {
		if (ext.kind != kind || ext.unspec != unspec || ext.name != name)
			continue;
		if (ext.revision > best)
			best = ext.revision;
		if (ext.revision == revision)
			have_rev = true;
	}
	return have_rev;
}

// recent_mt_check() up to the table lookup, in its order (the rest, a list's stamps and
// mask, is the data plane's: loader::RecentLists). Both revisions share these fields.
int check_recent(std::span<const uint8_t> data)
{
	constexpr uint8_t modes =
		XT_RECENT_SET | XT_RECENT_REMOVE | XT_RECENT_CHECK | XT_RECENT_UPDATE;
	const auto check_set = load<uint8_t>(data, offsetof(struct xt_recent_mtinfo, check_set));
	const auto seconds = load<uint32_t>(data, offsetof(struct xt_recent_mtinfo, seconds));
	const auto hit_count = load<uint32_t>(data, offsetof(struct xt_recent_mtinfo, hit_count));
	if (check_set & ~XT_RECENT_VALID_FLAGS) // "Unsupported userspace flags"
		return -EINVAL;
	if (std::popcount(static_cast<uint8_t>(check_set & modes)) != 1)
		return -EINVAL;
	if ((check_set & (XT_RECENT_SET | XT_RECENT_REMOVE)) &&
	    (seconds || hit_count || (check_set & XT_RECENT_MODIFIERS)))
		return -EINVAL;
	if ((check_set & XT_RECENT_REAP) && !seconds)
		return -EINVAL;
	if (hit_count >= 256) // "hitcount (%u) is larger than allowed maximum (%u)"
		return -EINVAL;
	// xt_check_proc_name()
	const auto name = data.subspan(offsetof(struct xt_recent_mtinfo, name), XT_RECENT_NAME_LEN);
	if (name[0] == 0)
		return -EINVAL;
	const auto nul = std::find(name.begin(), name.end(), uint8_t{0});
	if (nul == name.end())
		return -ENAMETOOLONG;
	const std::string_view n(reinterpret_cast<const char *>(name.data()),
				 static_cast<size_t>(nul - name.begin()));
	if (n == "." || n == ".." || n.find('/') != std::string_view::npos)
		return -EINVAL;
	return 0;
}

// owner_check(), its ids mapped by make_kuid()/make_kgid() in the network namespace's user
// namespace. The helper serves namespaces of its own user namespace, the initial one, where
// the mapping is the identity and only (u32)-1 is no id; a table for a namespace of another
// user namespace is refused by the loader (loader::check_owner_userns()).
int check_owner(std::span<const uint8_t> data)
{
	const auto match = load<uint8_t>(data, offsetof(struct xt_owner_match_info, match));
	if (match & ~XT_OWNER_MASK)
		return -EINVAL;
	constexpr uint32_t invalid_id = 0xffffffffu;
	const auto valid = [&](size_t min_off, size_t max_off) {
		const auto lo = load<uint32_t>(data, min_off);
		const auto hi = load<uint32_t>(data, max_off);
		return lo != invalid_id && hi != invalid_id && hi >= lo;
	};
	if ((match & XT_OWNER_UID) && !valid(offsetof(struct xt_owner_match_info, uid_min),
					     offsetof(struct xt_owner_match_info, uid_max)))
		return -EINVAL;
	if ((match & XT_OWNER_GID) && !valid(offsetof(struct xt_owner_match_info, gid_min),
					     offsetof(struct xt_owner_match_info, gid_max)))
		return -EINVAL;
	return 0;
}

int check_multiport(std::span<const uint8_t> data, uint16_t proto, uint8_t ip_invflags)
{
	const auto flags = load<uint8_t>(data, offsetof(struct xt_multiport_v1, flags));
	const auto count = load<uint8_t>(data, offsetof(struct xt_multiport_v1, count));
	const bool proto_ok = proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
			      proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP ||
			      proto == IPPROTO_DCCP;
	if (!proto_ok || (ip_invflags & XT_INV_PROTO) ||
	    !(flags == XT_MULTIPORT_SOURCE || flags == XT_MULTIPORT_DESTINATION ||
	      flags == XT_MULTIPORT_EITHER) ||
	    count > XT_MULTI_PORTS)
		return -EINVAL;
	// multiport_valid_ranges: a range flag needs a following plain port not below it.
	auto port = [&](unsigned i) {
		return load<uint16_t>(data, offsetof(struct xt_multiport_v1, ports) + 2 * i);
	};
	auto pflag = [&](unsigned i) {
		return load<uint8_t>(data, offsetof(struct xt_multiport_v1, pflags) + i);
	};
	for (unsigned i = 0; i < count; i++) {
		if (!pflag(i))
			continue;
		if (++i >= count)
			return -EINVAL;
		if (pflag(i))
			return -EINVAL;
		if (port(i - 1) > port(i))
			return -EINVAL;
	}
	return 0;
}

// u32_mt_checkentry(), in its order: the counts within their arrays, shifts below 32.
int check_u32(std::span<const uint8_t> data)
{
	using T = struct xt_u32_test;
	constexpr size_t max = XT_U32_MAXSIZE + 1;
	if (data[offsetof(struct xt_u32, ntests)] > max)
		return -EINVAL;
	for (size_t i = 0; i < data[offsetof(struct xt_u32, ntests)]; i++) {
		const size_t t = offsetof(struct xt_u32, tests) + i * sizeof(T);
		const uint8_t nnums = data[t + offsetof(T, nnums)];
		if (nnums > max || data[t + offsetof(T, nvalues)] > max)
			return -EINVAL;
		for (size_t j = 1; j < nnums; j++) {
			const size_t l = t + offsetof(T, location) +
					 j * sizeof(struct xt_u32_location_element);
			const uint8_t op =
				data[l + offsetof(struct xt_u32_location_element, nextop)];
			if ((op == XT_U32_LEFTSH || op == XT_U32_RIGHTSH) &&
			    load<uint32_t>(data, l + offsetof(struct xt_u32_location_element,
							      number)) >= 32)
				return -EINVAL;
		}
	}
	return 0;
}

// Why a match iptables users meet is missing on purpose, for the log line of a refusal.
std::string_view not_translated(ExtKind kind, std::string_view name)
{
	if (kind != ExtKind::Match)
		return {};
	if (name == "string")
		return " (not translated by bpfilter: -m string searches the whole reassembled "
		       "datagram, up to 65535 bytes, for a pattern of up to 128; the data plane "
		       "does "
		       "not hold later pieces' payload, and a search over every byte of a datagram "
		       "does not fit the verifier's limits on one program)";
	return {};
}

} // namespace

std::span<const Extension> registered_extensions()
{
	return registry;
}

Result<const Extension *> find_extension(ExtKind kind, std::span<const uint8_t> name_field,
					 uint8_t revision)
{
	if (field_unterminated(name_field, 0, ext_name_len))
		return make_error(EINVAL, "extension name is not NUL-terminated");
	const std::string_view name = field_name(name_field, 0, ext_name_len);
	// The IPv4 list first; when it has no exact hit the kernel searches the
	// family-independent list and returns that search's answer, so an EPROTOTYPE from
	// the first pass is lost. request_module and a retry would find nothing new.
	auto hit = find_in(kind, false, name, revision);
	if (hit.ok())
		return hit;
	hit = find_in(kind, true, name, revision);
	if (hit.ok())
		return hit;
	const char *what = kind == ExtKind::Match ? "match" : "target";
	if (hit.error().errnum == EPROTOTYPE)
		return make_error(EPROTOTYPE, std::string(what) + " \"" + std::string(name) +
						      "\" has no revision " +
						      std::to_string(revision));
	return make_error(ENOENT, std::string("no such ") + what + " \"" + std::string(name) +
					  "\" revision " + std::to_string(revision) +
					  std::string(not_translated(kind, name)));
}

int find_revision(ExtKind kind, std::string_view name, uint8_t revision)
{
	int best = -1;
	bool have_rev = revfn(kind, false, name, revision, best);
	if (!have_rev)
		have_rev = revfn(kind, true, name, revision, best);
	if (best == -1)
		return -ENOENT;
	return have_rev ? best : -EPROTONOSUPPORT;
}

int check_extension(const Extension &ext, std::span<const uint8_t> data, uint16_t proto,
		    uint8_t ip_invflags)
{
	switch (ext.id) {
	case ExtId::Tcp: // tcp_mt_check
		return (load<uint8_t>(data, offsetof(struct xt_tcp, invflags)) & ~XT_TCP_INV_MASK)
			       ? -EINVAL
			       : 0;
	case ExtId::Udp: // udp_mt_check
		return (load<uint8_t>(data, offsetof(struct xt_udp, invflags)) & ~XT_UDP_INV_MASK)
			       ? -EINVAL
			       : 0;
	case ExtId::Icmp: // icmp_checkentry
		return (load<uint8_t>(data, offsetof(struct ipt_icmp, invflags)) & ~IPT_ICMP_INV)
			       ? -EINVAL
			       : 0;
	case ExtId::Multiport:
		return check_multiport(data, proto, ip_invflags);
	case ExtId::Reject: { // reject_tg_check
		const auto with = load<uint32_t>(data, offsetof(struct ipt_reject_info, with));
		if (with == IPT_ICMP_ECHOREPLY) // "ECHOREPLY no longer supported."
			return -EINVAL;
		if (with == IPT_TCP_RESET && (proto != IPPROTO_TCP || (ip_invflags & XT_INV_PROTO)))
			return -EINVAL; // "TCP_RESET invalid for non-tcp"
		return 0;
	}
	case ExtId::Log: // log_tg_check
		if (data[offsetof(struct xt_log_info, level)] >= 8 ||
		    data[offsetof(struct xt_log_info, prefix) + 29] != 0)
			return -EINVAL;
		return 0;
	case ExtId::Addrtype: // revision 1's checkentry needs the hooks: check_addrtype_hooks()
		if (ext.revision == 1 &&
		    (load<uint32_t>(data, offsetof(struct xt_addrtype_info_v1, flags)) &
		     (XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT)) ==
			    (XT_ADDRTYPE_LIMIT_IFACE_IN | XT_ADDRTYPE_LIMIT_IFACE_OUT))
			return -EINVAL;
		return 0;
	case ExtId::Limit:
		// limit_mt_check: "Overflow, try lower". The rest of its test, whether
		// avg * burst overflows in credits, depends on the kernel's HZ: the data plane
		// makes it (loader::BpfDataplane::check).
		return load<uint32_t>(data, offsetof(struct xt_rateinfo, burst)) == 0 ? -ERANGE : 0;
	case ExtId::Ttl: // ttl_mt_check: "Unknown TTL match mode"
		return data[offsetof(struct ipt_ttl_info, mode)] > IPT_TTL_GT ? -EINVAL : 0;
	case ExtId::Dscp: // dscp_mt_check
		return data[offsetof(struct xt_dscp_info, dscp)] > XT_DSCP_MAX ? -EDOM : 0;
	case ExtId::Ecn: { // ecn_mt_check4
		const uint8_t op = data[offsetof(struct xt_ecn_info, operation)];
		if ((op & XT_ECN_OP_MATCH_MASK) ||
		    (data[offsetof(struct xt_ecn_info, invert)] & XT_ECN_OP_MATCH_MASK))
			return -EINVAL;
		if ((op & (XT_ECN_OP_MATCH_ECE | XT_ECN_OP_MATCH_CWR)) &&
		    (proto != IPPROTO_TCP || (ip_invflags & XT_INV_PROTO)))
			return -EINVAL; // "cannot match TCP bits for non-tcp packets"
		return 0;
	}
	case ExtId::Ah: // ah_mt_check
		return (data[offsetof(struct ipt_ah, invflags)] & ~IPT_AH_INV_MASK) ? -EINVAL : 0;
	case ExtId::Esp: // esp_mt_check
		return (data[offsetof(struct xt_esp, invflags)] & ~XT_ESP_INV_MASK) ? -EINVAL : 0;
	case ExtId::Hashlimit:
		return check_hashlimit(data, ext.revision).err;
	case ExtId::Recent:
		return check_recent(data);
	case ExtId::Owner:
		return check_owner(data);
	case ExtId::U32:
		return check_u32(data);
	case ExtId::Connlimit: // connlimit_mt_check only makes its counting data
	case ExtId::Length:    // no checkentry
	case ExtId::Tos:
	case ExtId::Pkttype:
	case ExtId::Mac:
	case ExtId::Iprange: // xt_iprange has no checkentry
	case ExtId::Mark:    // nor has xt_mark
	case ExtId::MarkTarget:
	case ExtId::Connmark: // connmark_mt_check only takes the conntrack reference (as state)
	case ExtId::State:
	case ExtId::Conntrack:
	case ExtId::Comment:
	case ExtId::Standard:
	case ExtId::Error:
		return 0;
	}
	return 0;
}

std::string_view check_addrtype_hooks(std::span<const uint8_t> data, uint32_t hook_mask)
{
	// addrtype_mt_checkentry_v1, in its order.
	constexpr uint32_t in_hooks = (1u << 0) | (1u << 1);  // PRE_ROUTING, LOCAL_IN
	constexpr uint32_t out_hooks = (1u << 3) | (1u << 4); // LOCAL_OUT, POST_ROUTING
	const auto flags = load<uint32_t>(data, offsetof(struct xt_addrtype_info_v1, flags));
	if ((flags & XT_ADDRTYPE_LIMIT_IFACE_IN) && (flags & XT_ADDRTYPE_LIMIT_IFACE_OUT))
		return "both incoming and outgoing interface limitation cannot be selected";
	if ((hook_mask & in_hooks) && (flags & XT_ADDRTYPE_LIMIT_IFACE_OUT))
		return "output interface limitation not valid in PREROUTING and INPUT";
	if ((hook_mask & out_hooks) && (flags & XT_ADDRTYPE_LIMIT_IFACE_IN))
		return "input interface limitation not valid in POSTROUTING and OUTPUT";
	return {};
}

HashlimitInfo hashlimit_info(std::span<const uint8_t> data, uint8_t revision)
{
	HashlimitInfo h;
	ir::hashlimit::Cfg &c = h.cfg;
	if (revision == 1) {
		using T = struct xt_hashlimit_mtinfo1;
		h.name = field_name(data, offsetof(T, name), sizeof(T::name));
		const size_t o = offsetof(T, cfg);
		c.mode = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, mode));
		c.avg = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, avg));
		c.burst = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, burst));
		c.size = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, size));
		c.max = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, max));
		c.gc_interval =
			load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, gc_interval));
		c.expire = load<uint32_t>(data, o + offsetof(struct hashlimit_cfg1, expire));
		c.srcmask = load<uint8_t>(data, o + offsetof(struct hashlimit_cfg1, srcmask));
		c.dstmask = load<uint8_t>(data, o + offsetof(struct hashlimit_cfg1, dstmask));
		c.size = std::min(c.size, ir::hashlimit::max_size);
		c.max = std::min(c.max, ir::hashlimit::max_size);
		return h;
	}
	// Revisions 2 and 3 share the name and the layout of cfg up to the masks, but for
	// revision 3's interval.
	using T = struct xt_hashlimit_mtinfo3;
	using C = struct hashlimit_cfg3;
	static_assert(offsetof(struct xt_hashlimit_mtinfo2, cfg) == offsetof(T, cfg) &&
		      offsetof(struct hashlimit_cfg2, expire) == offsetof(C, expire));
	h.name = field_name(data, offsetof(T, name), sizeof(T::name));
	const size_t o = offsetof(T, cfg);
	c.avg = load<uint64_t>(data, o + offsetof(C, avg));
	c.burst = load<uint64_t>(data, o + offsetof(C, burst));
	c.mode = load<uint32_t>(data, o + offsetof(C, mode));
	c.size = load<uint32_t>(data, o + offsetof(C, size));
	c.max = load<uint32_t>(data, o + offsetof(C, max));
	c.gc_interval = load<uint32_t>(data, o + offsetof(C, gc_interval));
	c.expire = load<uint32_t>(data, o + offsetof(C, expire));
	if (revision == 3) {
		c.interval = load<uint32_t>(data, o + offsetof(C, interval));
		c.srcmask = load<uint8_t>(data, o + offsetof(C, srcmask));
		c.dstmask = load<uint8_t>(data, o + offsetof(C, dstmask));
	} else {
		c.srcmask = load<uint8_t>(data, o + offsetof(struct hashlimit_cfg2, srcmask));
		c.dstmask = load<uint8_t>(data, o + offsetof(struct hashlimit_cfg2, dstmask));
	}
	// hashlimit_mt_check_common() truncates both ("size too large, truncated").
	c.size = std::min(c.size, ir::hashlimit::max_size);
	c.max = std::min(c.max, ir::hashlimit::max_size);
	return h;
}

Refusal check_hashlimit(std::span<const uint8_t> data, uint8_t revision)
{
	namespace hl = ir::hashlimit;
	const size_t name_len = revision == 1 ? IFNAMSIZ : NAME_MAX;
	// xt_check_proc_name()
	if (data[0] == 0)
		return {-EINVAL, "the name is empty"};
	if (field_unterminated(data, 0, name_len))
		return {-ENAMETOOLONG, "the name is not NUL-terminated"};
	const HashlimitInfo h = hashlimit_info(data, revision);
	if (h.name == "." || h.name == ".." || h.name.find('/') != std::string_view::npos)
		return {-EINVAL, "the name cannot be a file in /proc"};
	const hl::Cfg &c = h.cfg;
	if (c.gc_interval == 0 || c.expire == 0)
		return {-EINVAL, "gcinterval or expire is 0"};
	if (c.srcmask > 32 || c.dstmask > 32)
		return {-EINVAL, "a mask longer than 32 bits"};
	if (c.mode & ~hl::all_modes)
		return {-EINVAL, "Unknown mode mask, kernel too old?"};
	if (c.mode & hl::rate_match) {
		if (revision < 3)
			return {-EINVAL, "rate match needs revision 3"};
		if (c.avg == 0 || c.avg > UINT32_MAX)
			return {-ERANGE, "invalid rate"};
		if (c.interval == 0)
			return {-EINVAL, "invalid interval"};
	} else if (!(c.mode & hl::bytes) && c.burst == 0) {
		return {-ERANGE, "overflow, try lower"};
	}
	return {};
}

} // namespace bpfilter::abi
