// A stored iptables table turned into the IR: one rule per entry, in blob order.
#include <endian.h>
#include <linux/netfilter/xt_LOG.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_connlimit.h>
#include <linux/netfilter/xt_connmark.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_dscp.h>
#include <linux/netfilter/xt_ecn.h>
#include <linux/netfilter/xt_esp.h>
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

#include <algorithm>
#include <cstring>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "ir/recent.hpp"

namespace bpfilter::abi
{
namespace
{

ir::IpHeaderMatch ip_of(std::span<const uint8_t> b, uint32_t off)
{
	ir::IpHeaderMatch ip;
	ip.src = load<uint32_t>(b, off + ip_src);
	ip.dst = load<uint32_t>(b, off + ip_dst);
	ip.src_mask = load<uint32_t>(b, off + ip_smsk);
	ip.dst_mask = load<uint32_t>(b, off + ip_dmsk);
	std::memcpy(ip.in.name.data(), b.data() + off + ip_iniface, 16);
	std::memcpy(ip.in.mask.data(), b.data() + off + ip_iniface_mask, 16);
	std::memcpy(ip.out.name.data(), b.data() + off + ip_outiface, 16);
	std::memcpy(ip.out.mask.data(), b.data() + off + ip_outiface_mask, 16);
	ip.proto = load<uint16_t>(b, off + ip_proto);
	ip.flags = b[off + ip_flags] & IPT_F_FRAG; // IPT_F_GOTO becomes Target::Goto
	ip.invflags = b[off + ip_invflags];
	return ip;
}

ir::TcpMatch tcp_of(std::span<const uint8_t> d)
{
	ir::TcpMatch m;
	m.sport = {load<uint16_t>(d, offsetof(struct xt_tcp, spts)),
		   load<uint16_t>(d, offsetof(struct xt_tcp, spts) + 2)};
	m.dport = {load<uint16_t>(d, offsetof(struct xt_tcp, dpts)),
		   load<uint16_t>(d, offsetof(struct xt_tcp, dpts) + 2)};
	m.option = d[offsetof(struct xt_tcp, option)];
	m.flg_mask = d[offsetof(struct xt_tcp, flg_mask)];
	m.flg_cmp = d[offsetof(struct xt_tcp, flg_cmp)];
	m.invflags = d[offsetof(struct xt_tcp, invflags)];
	return m;
}

ir::UdpMatch udp_of(std::span<const uint8_t> d)
{
	ir::UdpMatch m;
	m.sport = {load<uint16_t>(d, offsetof(struct xt_udp, spts)),
		   load<uint16_t>(d, offsetof(struct xt_udp, spts) + 2)};
	m.dport = {load<uint16_t>(d, offsetof(struct xt_udp, dpts)),
		   load<uint16_t>(d, offsetof(struct xt_udp, dpts) + 2)};
	m.invflags = d[offsetof(struct xt_udp, invflags)];
	return m;
}

ir::IcmpMatch icmp_of(std::span<const uint8_t> d)
{
	ir::IcmpMatch m;
	m.type = d[offsetof(struct ipt_icmp, type)];
	m.code_min = d[offsetof(struct ipt_icmp, code)];
	m.code_max = d[offsetof(struct ipt_icmp, code) + 1];
	m.invert = d[offsetof(struct ipt_icmp, invflags)] & IPT_ICMP_INV;
	return m;
}

// ports_match_v1's reading of ports[] and pflags[]: a set pflag starts a range whose end
// is the next port (multiport_mt_check made sure it exists).
ir::MultiportMatch multiport_of(std::span<const uint8_t> d)
{
	ir::MultiportMatch m;
	switch (d[offsetof(struct xt_multiport_v1, flags)]) {
	case XT_MULTIPORT_SOURCE:
		m.dir = ir::MultiportMatch::Dir::Source;
		break;
	case XT_MULTIPORT_DESTINATION:
		m.dir = ir::MultiportMatch::Dir::Destination;
		break;
	default:
		m.dir = ir::MultiportMatch::Dir::Either;
		break;
	}
	const unsigned count = d[offsetof(struct xt_multiport_v1, count)];
	auto port = [&](unsigned i) {
		return load<uint16_t>(d, offsetof(struct xt_multiport_v1, ports) + 2 * i);
	};
	for (unsigned i = 0; i < count; i++) {
		const uint16_t s = port(i);
		if (d[offsetof(struct xt_multiport_v1, pflags) + i])
			m.ports.push_back({s, port(++i)});
		else
			m.ports.push_back({s, s});
	}
	m.invert = d[offsetof(struct xt_multiport_v1, invert)];
	return m;
}

ir::IprangeMatch iprange_of(std::span<const uint8_t> d)
{
	ir::IprangeMatch m;
	// Only these bits have a meaning in iprange_mt4; xt_iprange has no checkentry.
	m.flags = d[offsetof(struct xt_iprange_mtinfo, flags)] &
		  (IPRANGE_SRC | IPRANGE_DST | IPRANGE_SRC_INV | IPRANGE_DST_INV);
	m.src_min = be32toh(load<uint32_t>(d, offsetof(struct xt_iprange_mtinfo, src_min)));
	m.src_max = be32toh(load<uint32_t>(d, offsetof(struct xt_iprange_mtinfo, src_max)));
	m.dst_min = be32toh(load<uint32_t>(d, offsetof(struct xt_iprange_mtinfo, dst_min)));
	m.dst_max = be32toh(load<uint32_t>(d, offsetof(struct xt_iprange_mtinfo, dst_max)));
	return m;
}

// conntrack_mt's view of revisions 1 to 3: the fields up to match_flags/invert_flags sit
// at the same offsets in all three; the masks are 8 bits wide in revision 1; revision 3
// adds the upper ends of its port ranges.
ir::ConntrackMatch conntrack_of(std::span<const uint8_t> d, uint8_t revision)
{
	using info3 = struct xt_conntrack_mtinfo3;
	static_assert(offsetof(struct xt_conntrack_mtinfo1, match_flags) ==
		      offsetof(info3, match_flags));
	static_assert(offsetof(struct xt_conntrack_mtinfo2, state_mask) ==
		      offsetof(info3, state_mask));
	ir::ConntrackMatch m;
	auto addr = [&](size_t a, size_t k) {
		return ir::CtAddr{load<uint32_t>(d, a), load<uint32_t>(d, k)};
	};
	m.origsrc = addr(offsetof(info3, origsrc_addr), offsetof(info3, origsrc_mask));
	m.origdst = addr(offsetof(info3, origdst_addr), offsetof(info3, origdst_mask));
	m.replsrc = addr(offsetof(info3, replsrc_addr), offsetof(info3, replsrc_mask));
	m.repldst = addr(offsetof(info3, repldst_addr), offsetof(info3, repldst_mask));
	m.expires_min = load<uint32_t>(d, offsetof(info3, expires_min));
	m.expires_max = load<uint32_t>(d, offsetof(info3, expires_max));
	m.l4proto = load<uint16_t>(d, offsetof(info3, l4proto));
	m.match_flags = load<uint16_t>(d, offsetof(info3, match_flags));
	m.invert_flags = load<uint16_t>(d, offsetof(info3, invert_flags));
	if (revision == 1) {
		m.state_mask = d[offsetof(struct xt_conntrack_mtinfo1, state_mask)];
		m.status_mask = d[offsetof(struct xt_conntrack_mtinfo1, status_mask)];
	} else {
		m.state_mask = load<uint16_t>(d, offsetof(info3, state_mask));
		m.status_mask = load<uint16_t>(d, offsetof(info3, status_mask));
	}
	auto port = [&](size_t lo, size_t hi) -> ir::PortRange {
		if (revision == 3)
			return {load<uint16_t>(d, lo), load<uint16_t>(d, hi)};
		const uint16_t p = be16toh(load<uint16_t>(d, lo)); // compared as __be16
		return {p, p};
	};
	m.origsrc_port = port(offsetof(info3, origsrc_port), offsetof(info3, origsrc_port_high));
	m.origdst_port = port(offsetof(info3, origdst_port), offsetof(info3, origdst_port_high));
	m.replsrc_port = port(offsetof(info3, replsrc_port), offsetof(info3, replsrc_port_high));
	m.repldst_port = port(offsetof(info3, repldst_port), offsetof(info3, repldst_port_high));
	return m;
}

// state_mt as conntrack_mt with only a state test (see ir::ConntrackMatch).
ir::ConntrackMatch state_of(std::span<const uint8_t> d)
{
	const auto mask = load<uint32_t>(d, offsetof(struct xt_state_info, statemask));
	ir::ConntrackMatch m;
	m.match_flags = XT_CONNTRACK_STATE;
	m.state_mask = static_cast<uint16_t>(mask & (XT_STATE_UNTRACKED - 1));
	if (mask & XT_STATE_UNTRACKED)
		m.state_mask |= XT_CONNTRACK_STATE_UNTRACKED;
	return m;
}

// addrtype_mt_v0 xors the match with the whole u32 inversion and keeps the low bit of the
// result (ret is a bool and'ed with an int); _v1 takes --limit-iface-in before -out.
ir::AddrtypeMatch addrtype_of(std::span<const uint8_t> d, uint8_t revision)
{
	ir::AddrtypeMatch m;
	m.source = load<uint16_t>(d, offsetof(struct xt_addrtype_info, source));
	m.dest = load<uint16_t>(d, offsetof(struct xt_addrtype_info, dest));
	if (revision == 0) {
		m.invert_source =
			load<uint32_t>(d, offsetof(struct xt_addrtype_info, invert_source)) & 1;
		m.invert_dest =
			load<uint32_t>(d, offsetof(struct xt_addrtype_info, invert_dest)) & 1;
		return m;
	}
	const auto flags = load<uint32_t>(d, offsetof(struct xt_addrtype_info_v1, flags));
	m.invert_source = flags & XT_ADDRTYPE_INVERT_SOURCE;
	m.invert_dest = flags & XT_ADDRTYPE_INVERT_DEST;
	if (flags & XT_ADDRTYPE_LIMIT_IFACE_IN)
		m.dev = ir::AddrtypeMatch::Dev::In;
	else if (flags & XT_ADDRTYPE_LIMIT_IFACE_OUT)
		m.dev = ir::AddrtypeMatch::Dev::Out;
	return m;
}

// limit_mt_check keeps the caller's credit_cap and cost when cost is set.
ir::LimitMatch limit_of(std::span<const uint8_t> d, uint32_t slot)
{
	ir::LimitMatch m;
	m.avg = load<uint32_t>(d, offsetof(struct xt_rateinfo, avg));
	m.burst = load<uint32_t>(d, offsetof(struct xt_rateinfo, burst));
	m.credit_cap = load<uint32_t>(d, offsetof(struct xt_rateinfo, credit_cap));
	m.cost = load<uint32_t>(d, offsetof(struct xt_rateinfo, cost));
	m.slot = slot;
	return m;
}

// connlimit_mt() reads the IPv4 mask, the limit and the flags; its counting data is the rule's
// own (`slot`).
ir::ConnlimitMatch connlimit_of(std::span<const uint8_t> d, uint32_t slot)
{
	ir::ConnlimitMatch m;
	m.mask = load<uint32_t>(d, offsetof(struct xt_connlimit_info, mask));
	m.limit = load<uint32_t>(d, offsetof(struct xt_connlimit_info, limit));
	m.flags = load<uint32_t>(d, offsetof(struct xt_connlimit_info, flags));
	m.slot = slot;
	return m;
}

// mark_mt and connmark_mt read the same three fields (xt_mark_mtinfo1, xt_connmark_mtinfo1).
template <typename M> M mark_of(std::span<const uint8_t> d)
{
	static_assert(offsetof(struct xt_mark_mtinfo1, invert) ==
		      offsetof(struct xt_connmark_mtinfo1, invert));
	M m;
	m.mark = load<uint32_t>(d, offsetof(struct xt_mark_mtinfo1, mark));
	m.mask = load<uint32_t>(d, offsetof(struct xt_mark_mtinfo1, mask));
	m.invert = d[offsetof(struct xt_mark_mtinfo1, invert)];
	return m;
}

// The header matches (ir::LengthMatch and the rest), field by field as their match
// functions read them.
ir::Match header_match_of(ExtId id, std::span<const uint8_t> d)
{
	switch (id) {
	case ExtId::Length:
		return ir::LengthMatch{load<uint16_t>(d, offsetof(struct xt_length_info, min)),
				       load<uint16_t>(d, offsetof(struct xt_length_info, max)),
				       d[offsetof(struct xt_length_info, invert)]};
	case ExtId::Ttl:
		return ir::TtlMatch{d[offsetof(struct ipt_ttl_info, mode)],
				    d[offsetof(struct ipt_ttl_info, ttl)]};
	case ExtId::Dscp: // (tos >> XT_DSCP_SHIFT) == dscp
		return ir::TosMatch{0xfc,
				    static_cast<uint8_t>(d[offsetof(struct xt_dscp_info, dscp)]
							 << XT_DSCP_SHIFT),
				    d[offsetof(struct xt_dscp_info, invert)] != 0};
	case ExtId::Tos:
		return ir::TosMatch{d[offsetof(struct xt_tos_match_info, tos_mask)],
				    d[offsetof(struct xt_tos_match_info, tos_value)],
				    d[offsetof(struct xt_tos_match_info, invert)] != 0};
	case ExtId::Ecn:
		return ir::EcnMatch{d[offsetof(struct xt_ecn_info, operation)],
				    d[offsetof(struct xt_ecn_info, invert)],
				    d[offsetof(struct xt_ecn_info, ip_ect)]};
	case ExtId::Pkttype:
		return ir::PkttypeMatch{
			load<uint32_t>(d, offsetof(struct xt_pkttype_info, pkttype)),
			load<uint32_t>(d, offsetof(struct xt_pkttype_info, invert))};
	case ExtId::Mac: {
		ir::MacMatch m;
		std::memcpy(m.src.data(), d.data() + offsetof(struct xt_mac_info, srcaddr), 6);
		m.invert = load<uint32_t>(d, offsetof(struct xt_mac_info, invert));
		return m;
	}
	default: // Ah, Esp: the same layout
		static_assert(offsetof(struct ipt_ah, invflags) ==
			      offsetof(struct xt_esp, invflags));
		return ir::SpiMatch{load<uint32_t>(d, offsetof(struct xt_esp, spis)),
				    load<uint32_t>(d, offsetof(struct xt_esp, spis) + 4),
				    (d[offsetof(struct xt_esp, invflags)] & XT_ESP_INV_SPI) != 0,
				    id == ExtId::Ah};
	}
}

// -m u32: the tests and their counts as u32_match_it() walks them (check_u32() bounded them).
ir::U32Match u32_of(std::span<const uint8_t> d)
{
	using T = struct xt_u32_test;
	using L = struct xt_u32_location_element;
	using V = struct xt_u32_value_element;
	ir::U32Match m;
	m.invert = d[offsetof(struct xt_u32, invert)];
	const uint8_t ntests = d[offsetof(struct xt_u32, ntests)];
	for (size_t i = 0; i < ntests; i++) {
		const size_t t = offsetof(struct xt_u32, tests) + i * sizeof(T);
		ir::U32Match::Test test;
		// u32_match_it() reads location[0] even when nnums is 0.
		const size_t nnums = std::max<size_t>(d[t + offsetof(T, nnums)], 1);
		for (size_t j = 0; j < nnums; j++) {
			const size_t l = t + offsetof(T, location) + j * sizeof(L);
			test.locs.push_back({load<uint32_t>(d, l + offsetof(L, number)),
					     d[l + offsetof(L, nextop)]});
		}
		for (size_t j = 0; j < d[t + offsetof(T, nvalues)]; j++) {
			const size_t v = t + offsetof(T, value) + j * sizeof(V);
			test.values.push_back({load<uint32_t>(d, v + offsetof(V, min)),
					       load<uint32_t>(d, v + offsetof(V, max))});
		}
		m.tests.push_back(std::move(test));
	}
	return m;
}

// The rule's htable: the first rule of a name makes it (htable_create()); a later one of the
// same name must agree on rate matching (hashlimit_mt_check_common(): EINVAL).
Result<ir::HashlimitMatch> hashlimit_of(std::span<const uint8_t> d, uint8_t revision,
					ir::Table &out)
{
	const HashlimitInfo h = hashlimit_info(d, revision);
	ir::HashlimitMatch m;
	m.revision = revision;
	m.cfg = h.cfg;
	auto it = std::find_if(out.hashlimits.begin(), out.hashlimits.end(),
			       [&](const ir::HashlimitTable &t) { return t.name == h.name; });
	if (it == out.hashlimits.end()) {
		out.hashlimits.push_back({std::string(h.name), h.cfg, revision});
		it = out.hashlimits.end() - 1;
	} else if (((it->cfg.mode ^ h.cfg.mode) & ir::hashlimit::rate_match) != 0) {
		return make_error(
			EINVAL,
			"hashlimit match: htable \"" + it->name + "\" exists with rate matching " +
				((it->cfg.mode & ir::hashlimit::rate_match) ? "on" : "off"));
	}
	m.table = static_cast<uint32_t>(it - out.hashlimits.begin());
	return m;
}

// recent_mt_check_v0 gives revision 0 an all-ones mask. The rule's list: the first rule
// that names it makes it with its mask, and each one asks for its ring of stamps.
ir::RecentMatch recent_of(std::span<const uint8_t> d, uint8_t revision, ir::Table &table)
{
	ir::RecentMatch m;
	m.seconds = load<uint32_t>(d, offsetof(struct xt_recent_mtinfo_v1, seconds));
	m.hit_count = load<uint32_t>(d, offsetof(struct xt_recent_mtinfo_v1, hit_count));
	m.check_set = load<uint8_t>(d, offsetof(struct xt_recent_mtinfo_v1, check_set));
	m.invert = load<uint8_t>(d, offsetof(struct xt_recent_mtinfo_v1, invert)) != 0;
	m.side = load<uint8_t>(d, offsetof(struct xt_recent_mtinfo_v1, side));
	if (revision >= 1)
		m.mask = load<uint32_t>(d, offsetof(struct xt_recent_mtinfo_v1, mask));
	const auto *name = reinterpret_cast<const char *>(
		d.data() + offsetof(struct xt_recent_mtinfo_v1, name));
	m.name.assign(name, strnlen(name, XT_RECENT_NAME_LEN));
	const uint32_t want = ir::recent::nstamps_mask(m.hit_count);
	auto &lists = table.recent_lists;
	auto it = std::find_if(lists.begin(), lists.end(),
			       [&](const ir::RecentList &l) { return l.name == m.name; });
	if (it == lists.end()) {
		lists.push_back({m.name, m.mask, want});
		it = lists.end() - 1;
	} else if (want > it->nstamps_mask) {
		it->nstamps_mask = want;
	}
	m.list = static_cast<uint32_t>(it - lists.begin());
	return m;
}

ir::OwnerMatch owner_of(std::span<const uint8_t> d)
{
	ir::OwnerMatch m;
	m.uid_min = load<uint32_t>(d, offsetof(struct xt_owner_match_info, uid_min));
	m.uid_max = load<uint32_t>(d, offsetof(struct xt_owner_match_info, uid_max));
	m.gid_min = load<uint32_t>(d, offsetof(struct xt_owner_match_info, gid_min));
	m.gid_max = load<uint32_t>(d, offsetof(struct xt_owner_match_info, gid_max));
	m.match = d[offsetof(struct xt_owner_match_info, match)];
	m.invert = d[offsetof(struct xt_owner_match_info, invert)];
	return m;
}

Error rule_error(int errnum, uint32_t index, uint32_t off, const std::string &what)
{
	return make_error(errnum, "entry " + std::to_string(index) + " at offset " +
					  std::to_string(off) + ": " + what);
}

} // namespace

Result<ir::Table> to_ir(const StoredTable &table)
{
	const std::span<const uint8_t> b = table.entries;
	ir::Table out;
	if (!table.name.empty())
		out.name = table.name;
	out.valid_hooks = table.valid_hooks;
	auto index_of = [&](uint32_t off) -> std::optional<uint32_t> {
		auto it = std::lower_bound(table.offsets.begin(), table.offsets.end(), off);
		if (it == table.offsets.end() || *it != off)
			return std::nullopt;
		return static_cast<uint32_t>(it - table.offsets.begin());
	};
	for (uint32_t h = 0; h < num_hooks; h++) {
		if (!(table.valid_hooks & (1u << h)))
			continue;
		out.hook_entry[h] = index_of(table.hook_entry[h]);
		out.underflow[h] = index_of(table.underflow[h]);
	}
	out.rules.reserve(table.offsets.size());
	for (uint32_t k = 0; k < table.offsets.size(); k++) {
		const uint32_t off = table.offsets[k];
		ir::Rule rule;
		rule.offset = off;
		rule.ip = ip_of(b, off);
		const uint32_t target_offset = load<uint16_t>(b, off + entry_target_offset);
		for (uint32_t i = entry_size; i < target_offset;) {
			const uint32_t m = off + i;
			const uint16_t match_size = load<uint16_t>(b, m + ext_size);
			auto ext = find_extension(ExtKind::Match,
						  b.subspan(m + ext_name, ext_name_len),
						  b[m + ext_revision]);
			if (!ext.ok()) // parse_replace accepted it, so this is not reached
				return rule_error(ext.error().errnum, k, off, ext.error().message);
			const auto data =
				b.subspan(m + ext_header_size, match_size - ext_header_size);
			switch ((*ext)->id) {
			case ExtId::Tcp:
				rule.matches.emplace_back(tcp_of(data));
				break;
			case ExtId::Udp:
				rule.matches.emplace_back(udp_of(data));
				break;
			case ExtId::Icmp:
				rule.matches.emplace_back(icmp_of(data));
				break;
			case ExtId::Multiport:
				rule.matches.emplace_back(multiport_of(data));
				break;
			case ExtId::Iprange:
				rule.matches.emplace_back(iprange_of(data));
				break;
			case ExtId::State:
				rule.matches.emplace_back(state_of(data));
				break;
			case ExtId::Conntrack:
				rule.matches.emplace_back(conntrack_of(data, (*ext)->revision));
				break;
			case ExtId::Addrtype:
				rule.matches.emplace_back(addrtype_of(data, (*ext)->revision));
				break;
			case ExtId::Limit:
				rule.matches.emplace_back(limit_of(data, out.limit_slots++));
				break;
			case ExtId::Connlimit:
				rule.matches.emplace_back(
					connlimit_of(data, out.connlimit_slots++));
				break;
			case ExtId::Mark:
				rule.matches.emplace_back(mark_of<ir::MarkMatch>(data));
				break;
			case ExtId::Connmark:
				rule.matches.emplace_back(mark_of<ir::ConnmarkMatch>(data));
				break;
			case ExtId::Owner:
				rule.matches.emplace_back(owner_of(data));
				break;
			case ExtId::U32:
				rule.matches.emplace_back(u32_of(data));
				break;
			case ExtId::Length:
			case ExtId::Ttl:
			case ExtId::Tos:
			case ExtId::Dscp:
			case ExtId::Ecn:
			case ExtId::Pkttype:
			case ExtId::Mac:
			case ExtId::Ah:
			case ExtId::Esp:
				rule.matches.push_back(header_match_of((*ext)->id, data));
				break;
			case ExtId::Hashlimit: {
				auto hm = hashlimit_of(data, (*ext)->revision, out);
				if (!hm)
					return rule_error(EINVAL, k, off, hm.error().message);
				rule.matches.emplace_back(*hm);
				break;
			}
			case ExtId::Recent:
				rule.matches.emplace_back(recent_of(data, (*ext)->revision, out));
				break;
			default: // -m comment has no effect on packets
				break;
			}
			i += match_size;
		}
		const uint32_t t = off + target_offset;
		if (b[t + ext_name] != 0) {
			auto ext = find_extension(ExtKind::Target,
						  b.subspan(t + ext_name, ext_name_len),
						  b[t + ext_revision]);
			if (!ext.ok())
				return rule_error(ext.error().errnum, k, off, ext.error().message);
			const auto data = b.subspan(t + ext_header_size);
			switch ((*ext)->id) {
			case ExtId::Reject:
				rule.target.kind = ir::Target::Kind::Reject;
				rule.target.reject_with = load<uint32_t>(
					data, offsetof(struct ipt_reject_info, with));
				break;
			case ExtId::Log:
				rule.target.kind = ir::Target::Kind::Log;
				rule.target.log.level = data[offsetof(struct xt_log_info, level)];
				rule.target.log.flags =
					data[offsetof(struct xt_log_info, logflags)];
				std::memcpy(rule.target.log.prefix.data(),
					    data.data() + offsetof(struct xt_log_info, prefix),
					    rule.target.log.prefix.size());
				break;
			case ExtId::MarkTarget:
				rule.target.kind = ir::Target::Kind::Mark;
				rule.target.mark = load<uint32_t>(
					data, offsetof(struct xt_mark_tginfo2, mark));
				rule.target.mark_mask = load<uint32_t>(
					data, offsetof(struct xt_mark_tginfo2, mask));
				break;
			default: // ERROR: ipt_error drops
				rule.target.kind = ir::Target::Kind::Error;
				break;
			}
		} else {
			const auto verdict = load<int32_t>(b, t + ext_header_size);
			const bool go = b[off + ip_flags] & IPT_F_GOTO;
			if (verdict == verdict_accept) {
				rule.target.kind = ir::Target::Kind::Accept;
			} else if (verdict == verdict_drop) {
				rule.target.kind = ir::Target::Kind::Drop;
			} else if (verdict == verdict_return) {
				rule.target.kind = ir::Target::Kind::Return;
			} else if (verdict < 0) {
				return rule_error(
					EOPNOTSUPP, k, off,
					"verdict " + std::to_string(verdict) +
						" (NF_QUEUE) is not supported by bpfilter");
			} else if (auto to = index_of(static_cast<uint32_t>(verdict))) {
				const uint32_t next =
					off + load<uint16_t>(b, off + entry_next_offset);
				if (go)
					rule.target.kind = ir::Target::Kind::Goto,
					rule.target.to = *to;
				else if (static_cast<uint32_t>(verdict) == next)
					rule.target.kind = ir::Target::Kind::Continue;
				else
					rule.target.kind = ir::Target::Kind::Jump,
					rule.target.to = *to;
			} else {
				// A jump to no entry's start is refused by mark_source_chains on
				// every path it walks; it only survives in an entry that no
				// packet can reach (not a policy, not marked from any hook).
				// The kernel keeps such an entry and never runs its target.
				rule.target.kind = ir::Target::Kind::Drop;
			}
		}
		out.rules.push_back(std::move(rule));
	}
	return out;
}

} // namespace bpfilter::abi
