// Reference evaluator: runs a packet through an IR table the way ipt_do_table does.
//
// Each function names the kernel function it follows (net/ipv4/netfilter/ip_tables.c,
// net/netfilter/xt_tcpudp.c, xt_multiport.c, xt_iprange.c, xt_addrtype.c, and the header
// matches: xt_length.c, xt_hl.c, xt_dscp.c, xt_ecn.c, xt_pkttype.c, xt_mac.c, ipt_ah.c,
// xt_esp.c).
// skb_header_pointer's test is "offset + len <= skb->len", and skb->len at these hooks is
// the IP datagram, so reads past packet.ip.size() are the kernel's failed header reads
// (hotdrop where the match says so).
#include "ir/eval.hpp"

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace bpfilter::ir
{
namespace
{

// Values from the uapi headers, spelled here so the evaluator reads on its own.
constexpr uint8_t ipt_f_frag = 0x01;
constexpr uint8_t ipt_inv_via_in = 0x01, ipt_inv_via_out = 0x02, ipt_inv_srcip = 0x08,
		  ipt_inv_dstip = 0x10, ipt_inv_frag = 0x20, ipt_inv_proto = 0x40;
constexpr uint8_t tcp_inv_srcpt = 0x01, tcp_inv_dstpt = 0x02, tcp_inv_flags = 0x04,
		  tcp_inv_option = 0x08;
constexpr uint8_t udp_inv_srcpt = 0x01, udp_inv_dstpt = 0x02;
constexpr uint8_t iprange_src = 0x01, iprange_dst = 0x02, iprange_src_inv = 0x10,
		  iprange_dst_inv = 0x20;
constexpr uint16_t ip_offset_mask = 0x1fff;

// What ipt_do_table's xt_action_param carries for the matches.
struct Param {
	std::span<const uint8_t> skb; // the IP datagram: skb->data .. skb->len
	const PacketView::CtView *ct = nullptr;
	const PacketView *pkt = nullptr;
	uint16_t fragoff = 0;
	uint32_t thoff = 0;
	bool hotdrop = false;
	EvalState *state = nullptr;
	uint32_t mark = 0; // skb->mark, which -j MARK changes as the table runs
	Hook hook = Hook::LocalIn;
};

// skb_header_pointer(): the bytes, or nothing when the datagram is too short.
std::optional<std::span<const uint8_t>> header_pointer(const Param &par, uint32_t off, uint32_t len)
{
	if (static_cast<uint64_t>(off) + len > par.skb.size())
		return std::nullopt;
	return par.skb.subspan(off, len);
}

uint16_t be16(std::span<const uint8_t> b, size_t off)
{
	return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

uint32_t be32(std::span<const uint8_t> b, size_t off)
{
	return static_cast<uint32_t>(b[off]) << 24 | static_cast<uint32_t>(b[off + 1]) << 16 |
	       static_cast<uint32_t>(b[off + 2]) << 8 | b[off + 3];
}

// NF_INVF(ptr, flag, boolean)
bool invf(uint8_t invflags, uint8_t flag, bool boolean)
{
	return boolean ^ !!(invflags & flag);
}

// ifname_compare_aligned(): nonzero when a masked byte differs.
bool ifname_differs(const std::array<uint8_t, 16> &dev, const Iface &iface)
{
	uint8_t ret = 0;
	for (size_t i = 0; i < 16; i++)
		ret |= (dev[i] ^ iface.name[i]) & iface.mask[i];
	return ret != 0;
}

// ip_packet_match()
bool ip_packet_match(std::span<const uint8_t> ip, const PacketView &pkt, const IpHeaderMatch &info,
		     uint16_t isfrag)
{
	uint32_t saddr, daddr; // network byte order, as the rule stores them
	std::memcpy(&saddr, ip.data() + 12, 4);
	std::memcpy(&daddr, ip.data() + 16, 4);
	if (invf(info.invflags, ipt_inv_srcip, (saddr & info.src_mask) != info.src) ||
	    invf(info.invflags, ipt_inv_dstip, (daddr & info.dst_mask) != info.dst))
		return false;
	if (invf(info.invflags, ipt_inv_via_in, ifname_differs(pkt.in_ifname, info.in)))
		return false;
	if (invf(info.invflags, ipt_inv_via_out, ifname_differs(pkt.out_ifname, info.out)))
		return false;
	if (info.proto && invf(info.invflags, ipt_inv_proto, ip[9] != info.proto))
		return false;
	if (invf(info.invflags, ipt_inv_frag, (info.flags & ipt_f_frag) && !isfrag))
		return false;
	return true;
}

// port_match() in xt_tcpudp.c
bool port_match(PortRange r, uint16_t port, bool invert)
{
	return (port >= r.lo && port <= r.hi) ^ invert;
}

// tcp_find_option()
bool tcp_find_option(uint8_t option, Param &par, uint32_t optlen, bool invert)
{
	if (!optlen)
		return invert;
	auto op = header_pointer(par, par.thoff + 20, optlen);
	if (!op) {
		par.hotdrop = true;
		return false;
	}
	for (uint32_t i = 0; i < optlen;) {
		if ((*op)[i] == option)
			return !invert;
		if ((*op)[i] < 2 || i == optlen - 1)
			i++;
		else
			i += (*op)[i + 1] ? (*op)[i + 1] : 1;
	}
	return invert;
}

// tcp_mt()
bool tcp_mt(const TcpMatch &info, Param &par)
{
	if (par.fragoff != 0) {
		// Don't allow a fragment of TCP 8 bytes in.
		if (par.fragoff == 1)
			par.hotdrop = true;
		return false;
	}
	auto th = header_pointer(par, par.thoff, 20);
	if (!th) {
		par.hotdrop = true;
		return false;
	}
	if (!port_match(info.sport, be16(*th, 0), info.invflags & tcp_inv_srcpt))
		return false;
	if (!port_match(info.dport, be16(*th, 2), info.invflags & tcp_inv_dstpt))
		return false;
	if (!invf(info.invflags, tcp_inv_flags, ((*th)[13] & info.flg_mask) == info.flg_cmp))
		return false;
	if (info.option) {
		const uint32_t doff = (*th)[12] >> 4;
		if (doff * 4 < 20) {
			par.hotdrop = true;
			return false;
		}
		if (!tcp_find_option(info.option, par, doff * 4 - 20,
				     info.invflags & tcp_inv_option))
			return false;
	}
	return true;
}

// udp_mt()
bool udp_mt(const UdpMatch &info, Param &par)
{
	if (par.fragoff != 0)
		return false;
	auto uh = header_pointer(par, par.thoff, 8);
	if (!uh) {
		par.hotdrop = true;
		return false;
	}
	return port_match(info.sport, be16(*uh, 0), info.invflags & udp_inv_srcpt) &&
	       port_match(info.dport, be16(*uh, 2), info.invflags & udp_inv_dstpt);
}

// icmp_match() and icmp_type_code_match()
bool icmp_match(const IcmpMatch &info, Param &par)
{
	if (par.fragoff != 0)
		return false;
	auto ic = header_pointer(par, par.thoff, 8); // sizeof(struct icmphdr)
	if (!ic) {
		par.hotdrop = true;
		return false;
	}
	const uint8_t type = (*ic)[0], code = (*ic)[1];
	return ((info.type == 0xff) ||
		(type == info.type && code >= info.code_min && code <= info.code_max)) ^
	       info.invert;
}

// multiport_mt() and ports_match_v1()
bool multiport_mt(const MultiportMatch &info, Param &par)
{
	if (par.fragoff != 0)
		return false;
	auto pptr = header_pointer(par, par.thoff, 4);
	if (!pptr) {
		par.hotdrop = true;
		return false;
	}
	const uint16_t src = be16(*pptr, 0), dst = be16(*pptr, 2);
	for (const PortRange &r : info.ports) {
		const bool s = src >= r.lo && src <= r.hi;
		const bool d = dst >= r.lo && dst <= r.hi;
		switch (info.dir) {
		case MultiportMatch::Dir::Source:
			if (s)
				return true ^ info.invert;
			break;
		case MultiportMatch::Dir::Destination:
			if (d)
				return true ^ info.invert;
			break;
		case MultiportMatch::Dir::Either:
			if (d || s)
				return true ^ info.invert;
			break;
		}
	}
	return info.invert;
}

// iprange_mt4()
bool iprange_mt4(const IprangeMatch &info, const Param &par)
{
	const uint32_t saddr = be32(par.skb, 12), daddr = be32(par.skb, 16);
	if (info.flags & iprange_src) {
		bool m = saddr < info.src_min;
		m |= saddr > info.src_max;
		m ^= !!(info.flags & iprange_src_inv);
		if (m)
			return false;
	}
	if (info.flags & iprange_dst) {
		bool m = daddr < info.dst_min;
		m |= daddr > info.dst_max;
		m ^= !!(info.flags & iprange_dst_inv);
		if (m)
			return false;
	}
	return true;
}

// conntrack_mt() (xt_conntrack.c); -m state is one of these too (ir::ConntrackMatch).
bool conntrack_mt(const ConntrackMatch &info, const Param &par)
{
	constexpr uint16_t f_state = 1 << 0, f_proto = 1 << 1, f_origsrc = 1 << 2,
			   f_origdst = 1 << 3, f_replsrc = 1 << 4, f_repldst = 1 << 5,
			   f_status = 1 << 6, f_expires = 1 << 7, f_origsrc_port = 1 << 8,
			   f_origdst_port = 1 << 9, f_replsrc_port = 1 << 10,
			   f_repldst_port = 1 << 11, f_direction = 1 << 12;
	constexpr uint16_t st_invalid = 1 << 0, st_snat = 1 << 6, st_dnat = 1 << 7,
			   st_untracked = 1 << 8;
	constexpr uint32_t ips_src_nat = 1 << 4, ips_dst_nat = 1 << 5;
	constexpr uint8_t ip_ct_is_reply = 3;
	const PacketView::CtView &ct = *par.ct;
	const auto inv = [&](uint16_t flag) { return (info.invert_flags & flag) != 0; };
	const auto test = [&](uint16_t flag, bool matched) {
		return !(info.match_flags & flag) || (matched ^ inv(flag));
	};

	uint16_t statebit;
	if (ct.has_ct)
		statebit = static_cast<uint16_t>(1 << (ct.ctinfo % ip_ct_is_reply + 1));
	else if (ct.untracked)
		statebit = st_untracked;
	else
		statebit = st_invalid;
	if (info.match_flags & f_state) {
		if (ct.has_ct) {
			if (ct.status & ips_src_nat)
				statebit |= st_snat;
			if (ct.status & ips_dst_nat)
				statebit |= st_dnat;
		}
		if (!!(info.state_mask & statebit) ^ !inv(f_state))
			return false;
	}
	if (!ct.has_ct)
		return info.match_flags & f_state;
	const auto addr = [](uint32_t have, const CtAddr &want) {
		return ((have ^ want.addr) & want.mask) == 0;
	};
	const auto port = [](uint16_t have, const PortRange &want) {
		return have >= want.lo && have <= want.hi;
	};
	return test(f_direction, ct.ctinfo < ip_ct_is_reply) &&
	       test(f_origsrc, addr(ct.orig_src, info.origsrc)) &&
	       test(f_origdst, addr(ct.orig_dst, info.origdst)) &&
	       test(f_replsrc, addr(ct.repl_src, info.replsrc)) &&
	       test(f_repldst, addr(ct.repl_dst, info.repldst)) &&
	       test(f_proto, ct.l4proto == info.l4proto) &&
	       test(f_origsrc_port, port(ct.orig_sport, info.origsrc_port)) &&
	       test(f_origdst_port, port(ct.orig_dport, info.origdst_port)) &&
	       test(f_replsrc_port, port(ct.repl_sport, info.replsrc_port)) &&
	       test(f_repldst_port, port(ct.repl_dport, info.repldst_port)) &&
	       test(f_status, (info.status_mask & ct.status) != 0) &&
	       test(f_expires, ct.expires >= info.expires_min && ct.expires <= info.expires_max);
}

// __inet_dev_addr_type() (fib_frontend.c): the zero network and the limited broadcast are
// BROADCAST, 224/4 MULTICAST; else the longest route that covers the address, if any and
// (with a device) if its first next hop is on that device, gives the type; else UNICAST.
uint8_t inet_dev_addr_type(std::span<const AddrtypeRoute> routes,
			   const std::array<uint8_t, 16> *dev, uint32_t addr_be)
{
	constexpr uint8_t rtn_unicast = 1, rtn_broadcast = 3, rtn_multicast = 5;
	const uint32_t a = be32toh(addr_be);
	if ((a >> 24) == 0 || a == 0xffffffffu)
		return rtn_broadcast;
	if ((a & 0xf0000000u) == 0xe0000000u)
		return rtn_multicast;
	const AddrtypeRoute *best = nullptr;
	for (const AddrtypeRoute &r : routes) {
		const uint32_t net = be32toh(r.addr);
		const uint32_t mask = r.prefixlen ? ~0u << (32 - r.prefixlen) : 0;
		if (((a ^ net) & mask) == 0 && (!best || r.prefixlen > best->prefixlen))
			best = &r;
	}
	if (!best)
		return rtn_unicast;
	if (dev && (!best->has_dev || best->dev != *dev))
		return rtn_unicast;
	return best->type;
}

// addrtype_mt_v0() and addrtype_mt_v1()
bool addrtype_mt(const AddrtypeMatch &info, const Param &par)
{
	const PacketView &pkt = *par.pkt;
	const std::array<uint8_t, 16> *dev = nullptr;
	if (info.dev == AddrtypeMatch::Dev::In)
		dev = &pkt.in_ifname;
	else if (info.dev == AddrtypeMatch::Dev::Out)
		dev = &pkt.out_ifname;
	uint32_t saddr, daddr; // network byte order
	std::memcpy(&saddr, par.skb.data() + 12, 4);
	std::memcpy(&daddr, par.skb.data() + 16, 4);
	const auto match_type = [&](uint32_t addr, uint16_t mask) {
		return (mask & (1u << inet_dev_addr_type(pkt.addrtype_routes, dev, addr))) != 0;
	};
	if (info.source && !(match_type(saddr, info.source) ^ info.invert_source))
		return false;
	if (info.dest && !(match_type(daddr, info.dest) ^ info.invert_dest))
		return false;
	return true;
}

// limit_mt()
bool limit_mt(const LimitMatch &info, Param &par)
{
	EvalState &st = *par.state;
	if (info.slot >= st.limits.size())
		return false;
	const auto p = limit::params(info.avg, info.burst, info.credit_cap, info.cost, st.hz);
	return limit::take(st.limits[info.slot], p, st.jiffies, st.hz);
}

// mark_mt() (xt_mark.c)
bool mark_mt(const MarkMatch &info, const Param &par)
{
	return (((par.mark & info.mask) == info.mark) ^ info.invert) != 0;
}

// connmark_mt() (xt_connmark.c): no entry (INVALID, UNTRACKED) matches nothing.
bool connmark_mt(const ConnmarkMatch &info, const Param &par)
{
	if (!par.ct->has_ct)
		return false;
	return (((par.ct->mark & info.mask) == info.mark) ^ info.invert) != 0;
}

// A bool xor'ed with an int field, as length_mt, pkttype_mt and mac_mt return it.
bool xor_field(bool b, uint32_t invert)
{
	return (static_cast<uint32_t>(b) ^ invert) != 0;
}

// length_mt(): skb_ip_totlen()
bool length_mt(const LengthMatch &info, const Param &par)
{
	const uint32_t len = be16(par.skb, 2);
	return xor_field(len >= info.min && len <= info.max, info.invert);
}

// ttl_mt()
bool ttl_mt(const TtlMatch &info, const Param &par)
{
	const uint8_t ttl = par.skb[8];
	switch (info.mode) {
	case 0:
		return ttl == info.ttl;
	case 1:
		return ttl != info.ttl;
	case 2:
		return ttl < info.ttl;
	case 3:
		return ttl > info.ttl;
	}
	return false;
}

// tos_mt() and dscp_mt()
bool tos_mt(const TosMatch &info, const Param &par)
{
	return ((par.skb[1] & info.mask) == info.value) ^ info.invert;
}

// ecn_mt4(), match_ip() and match_tcp()
bool ecn_mt4(const EcnMatch &info, Param &par)
{
	constexpr uint8_t op_ip = 0x01, op_ece = 0x10, op_cwr = 0x20;
	if ((info.operation & op_ip) &&
	    !(((par.skb[1] & 3) == info.ip_ect) ^ !!(info.invert & op_ip)))
		return false;
	if (!(info.operation & (op_ece | op_cwr)))
		return true;
	auto th = header_pointer(par, par.thoff, 20);
	if (!th)
		return false;
	const uint8_t flags = (*th)[13];
	for (auto [op, bit] : {std::pair{op_ece, 0x40}, std::pair{op_cwr, 0x80}})
		if ((info.operation & op) && (!!(flags & bit) == !!(info.invert & op)))
			return false;
	return true;
}

// pkttype_mt(): a looped-back packet is multicast or broadcast by its address.
bool pkttype_mt(const PkttypeMatch &info, const Param &par)
{
	constexpr uint8_t packet_broadcast = 1, packet_multicast = 2, packet_loopback = 5;
	uint8_t type = par.pkt->pkt_type;
	if (type == packet_loopback)
		type = (par.skb[16] & 0xf0) == 0xe0 ? packet_multicast : packet_broadcast;
	return xor_field(type == info.pkttype, info.invert);
}

// mac_mt()
bool mac_mt(const MacMatch &info, const Param &par)
{
	if (!par.pkt->mac_source)
		return false;
	return xor_field(*par.pkt->mac_source == info.src, info.invert);
}

// ah_mt() and esp_mt(): spi_match()
bool spi_mt(const SpiMatch &info, Param &par)
{
	if (par.fragoff != 0)
		return false;
	auto h = header_pointer(par, par.thoff, info.ah ? 12 : 8);
	if (!h) {
		par.hotdrop = true;
		return false;
	}
	const uint32_t spi = be32(*h, info.ah ? 4 : 0);
	return (spi >= info.min && spi <= info.max) ^ info.invert;
}

// get_ct_or_tuple_from_skb(): the attached entry's original tuple, or nf_ct_get_tuplepr()'s
// (none for a later fragment or a transport header too short for the ports or the ICMP
// header) and the entry nf_conntrack_find_get() finds for it.
connlimit::Packet conncount_packet(const Param &par)
{
	constexpr uint32_t ips_assured = 4, ips_confirmed = 8;
	connlimit::Packet p;
	p.cpu = par.state->cpu;
	p.jiffies = static_cast<uint32_t>(par.state->jiffies);
	const PacketView::CtView &ct = *par.ct;
	if (ct.has_ct) {
		p.tuple = connlimit::Tuple{ct.orig_src, ct.orig_dst, ct.orig_sport, ct.orig_dport,
					   ct.l4proto};
		p.confirmed = (ct.status & ips_confirmed) != 0;
		p.assured = (ct.status & ips_assured) != 0;
		return p;
	}
	if (par.fragoff != 0)
		return p;
	connlimit::Tuple t;
	std::memcpy(&t.src, par.skb.data() + 12, 4);
	std::memcpy(&t.dst, par.skb.data() + 16, 4);
	t.proto = par.skb[9];
	switch (t.proto) {
	case 1:	   // ICMP
	case 58: { // ICMPv6's pkt_to_tuple reads the same 8 bytes
		auto h = header_pointer(par, par.thoff, 8);
		if (!h)
			return p;
		t.sport = be16(*h, 4);
		t.dport = static_cast<uint16_t>((*h)[0] << 8 | (*h)[1]);
		break;
	}
	case 6:	    // TCP
	case 17:    // UDP
	case 33:    // DCCP
	case 132:   // SCTP
	case 136: { // UDP-Lite
		auto h = header_pointer(par, par.thoff, 4);
		if (!h)
			return p;
		t.sport = be16(*h, 0);
		t.dport = be16(*h, 2);
		break;
	}
	default:
		break;
	}
	p.tuple = t;
	if (auto it = par.state->conntrack.find(t); it != par.state->conntrack.end()) {
		p.confirmed = true;
		p.assured = it->second.assured;
	}
	return p;
}

// connlimit_mt() for IPv4: the rule's lists (by slot), keyed by the masked address.
bool connlimit_mt(const ConnlimitMatch &info, Param &par)
{
	constexpr uint32_t xt_connlimit_invert = 1, xt_connlimit_daddr = 2;
	EvalState &st = *par.state;
	if (info.slot >= st.connlimits.size())
		st.connlimits.resize(info.slot + 1);
	uint32_t key;
	std::memcpy(&key, par.skb.data() + ((info.flags & xt_connlimit_daddr) ? 16 : 12), 4);
	key &= info.mask;
	const uint32_t n = connlimit::count(st.connlimits[info.slot], key, st.conntrack,
					    conncount_packet(par));
	const connlimit::Verdict v =
		connlimit::decide(n, info.limit, (info.flags & xt_connlimit_invert) != 0);
	par.hotdrop |= v.hotdrop;
	return v.match;
}

// recent_mt() for IPv4. OUTPUT's packets are taken to have a socket of the namespace, so
// only FORWARD adds one to the TTL ("use TTL as seen before forwarding").
bool recent_mt(const RecentMatch &info, Param &par)
{
	EvalState &st = *par.state;
	if (info.list >= st.recent.size())
		return false;
	uint32_t addr = 0; // as the header holds it (network order)
	std::memcpy(&addr, par.skb.data() + (info.side == 1 ? 16 : 12), 4);
	uint8_t ttl = par.skb[8];
	if (par.hook == Hook::Forward)
		ttl++;
	return recent::match(st.recent[info.list], addr, ttl, info.seconds, info.hit_count,
			     info.check_set, info.invert, st.hz,
			     info.list < st.recent_jiffies.size() ? st.recent_jiffies[info.list]
								  : st.jiffies);
}

// hashlimit_init_dst(): false where the kernel cannot read the ports (hotdrop).
bool hashlimit_key(const hashlimit::Cfg &h, const Param &par, hashlimit::Key &key)
{
	namespace hl = hashlimit;
	uint32_t saddr, daddr; // network byte order
	std::memcpy(&saddr, par.skb.data() + 12, 4);
	std::memcpy(&daddr, par.skb.data() + 16, 4);
	key = {};
	if (h.mode & hl::hash_dip)
		key.dst = daddr & hl::maskl_be(h.dstmask);
	if (h.mode & hl::hash_sip)
		key.src = saddr & hl::maskl_be(h.srcmask);
	if (!(h.mode & (hl::hash_dpt | hl::hash_spt)))
		return true;
	int poff; // proto_ports_offset()
	switch (par.skb[9]) {
	case 6:
	case 17:
	case 33:
	case 50:
	case 132:
	case 136: // TCP UDP DCCP ESP SCTP UDPLITE
		poff = 0;
		break;
	case 51: // AH
		poff = 4;
		break;
	default:
		poff = -1;
	}
	uint16_t ports[2] = {0, 0};
	if (poff >= 0) {
		auto p = header_pointer(par, par.thoff + static_cast<uint32_t>(poff), 4);
		if (!p)
			return false;
		std::memcpy(ports, p->data(), 4);
	}
	if (h.mode & hl::hash_spt)
		key.sport = ports[0];
	if (h.mode & hl::hash_dpt)
		key.dport = ports[1];
	return true;
}

// hashlimit_mt_common()
bool hashlimit_mt(const HashlimitMatch &info, Param &par, const Table &table)
{
	EvalState &st = *par.state;
	if (info.table >= table.hashlimits.size() || info.table >= st.hashlimits.size())
		return false;
	const hashlimit::Cfg &h = table.hashlimits[info.table].cfg;
	EvalState::Htable &ht = st.hashlimits[info.table];
	hashlimit::Key key;
	if (!hashlimit_key(h, par, key)) {
		par.hotdrop = true;
		return false;
	}
	auto it = ht.entries.find(key);
	if (it == ht.entries.end()) {
		if (ht.max && ht.entries.size() >= ht.max) { // "max count of %u reached"
			par.hotdrop = true;
			return false;
		}
		it = ht.entries.emplace(key, hashlimit::Entry{}).first;
		hashlimit::init(it->second, h, info.revision, st.jiffies, st.hz);
	} else {
		hashlimit::recalc(it->second, st.jiffies, h.mode, info.revision, st.hz);
	}
	it->second.expires = st.jiffies + hashlimit::msecs_to_jiffies(h.expire, st.hz);
	return hashlimit::decide(it->second, info.cfg.mode, static_cast<uint32_t>(par.skb.size()),
				 st.hz);
}

// owner_mt() (xt_owner.c), in its order.
bool owner_mt(const OwnerMatch &info, const Param &par)
{
	using Kind = PacketView::OwnerView::Kind;
	const PacketView::OwnerView &o = par.pkt->owner;
	constexpr uint8_t uid = 1, gid = 2, socket = 4, suppl = 8; // XT_OWNER_*
	if (o.kind == Kind::None)
		return (info.match ^ info.invert) == 0;
	if (info.match & info.invert & socket)
		return false;
	if (o.kind == Kind::Socket)
		return ((info.match ^ info.invert) & (uid | gid)) == 0;
	if (info.match & uid) {
		const bool in = o.fsuid >= info.uid_min && o.fsuid <= info.uid_max;
		if (in ^ !(info.invert & uid))
			return false;
	}
	if (info.match & gid) {
		bool in = o.fsgid >= info.gid_min && o.fsgid <= info.gid_max;
		if (!in && (info.match & suppl))
			for (uint32_t g : o.groups)
				if (g >= info.gid_min && g <= info.gid_max) {
					in = true;
					break;
				}
		if (in ^ !(info.invert & gid))
			return false;
	}
	return true;
}

// u32_match_it() and u32_mt(): skb->len is the datagram's length.
bool u32_mt(const U32Match &info, const Param &par)
{
	const uint64_t len = par.skb.size();
	const auto match_it = [&] {
		for (const U32Match::Test &t : info.tests) {
			uint32_t at = 0;
			uint32_t pos = t.locs.empty() ? 0 : t.locs[0].number;
			if (len < 4 || pos > len - 4)
				return false;
			uint32_t val = be32(par.skb, pos);
			for (size_t i = 1; i < t.locs.size(); i++) {
				const uint32_t number = t.locs[i].number;
				switch (t.locs[i].nextop) {
				case 0: // XT_U32_AND
					val &= number;
					break;
				case 1: // XT_U32_LEFTSH
					val <<= number;
					break;
				case 2: // XT_U32_RIGHTSH
					val >>= number;
					break;
				case 3: // XT_U32_AT
					if (static_cast<uint32_t>(at + val) < at)
						return false;
					at += val;
					pos = number;
					if (static_cast<uint32_t>(at + 4) < at || len < at + 4u ||
					    pos > len - at - 4)
						return false;
					val = be32(par.skb, static_cast<size_t>(at) + pos);
					break;
				default:
					break;
				}
			}
			if (std::none_of(t.values.begin(), t.values.end(),
					 [&](const U32Match::Range &r) {
						 return r.min <= val && val <= r.max;
					 }))
				return false;
		}
		return true;
	};
	return (match_it() ^ info.invert) != 0;
}

bool run_match(const Match &m, Param &par, const Table &table)
{
	if (auto *x = std::get_if<U32Match>(&m))
		return u32_mt(*x, par);
	if (auto *x = std::get_if<OwnerMatch>(&m))
		return owner_mt(*x, par);
	if (auto *x = std::get_if<MarkMatch>(&m))
		return mark_mt(*x, par);
	if (auto *x = std::get_if<ConnmarkMatch>(&m))
		return connmark_mt(*x, par);
	if (auto *x = std::get_if<LengthMatch>(&m))
		return length_mt(*x, par);
	if (auto *x = std::get_if<TtlMatch>(&m))
		return ttl_mt(*x, par);
	if (auto *x = std::get_if<TosMatch>(&m))
		return tos_mt(*x, par);
	if (auto *x = std::get_if<EcnMatch>(&m))
		return ecn_mt4(*x, par);
	if (auto *x = std::get_if<PkttypeMatch>(&m))
		return pkttype_mt(*x, par);
	if (auto *x = std::get_if<MacMatch>(&m))
		return mac_mt(*x, par);
	if (auto *x = std::get_if<SpiMatch>(&m))
		return spi_mt(*x, par);
	if (auto *x = std::get_if<HashlimitMatch>(&m))
		return hashlimit_mt(*x, par, table);
	if (auto *x = std::get_if<RecentMatch>(&m))
		return recent_mt(*x, par);
	if (auto *x = std::get_if<ConnlimitMatch>(&m))
		return connlimit_mt(*x, par);
	if (auto *x = std::get_if<AddrtypeMatch>(&m))
		return addrtype_mt(*x, par);
	if (auto *x = std::get_if<LimitMatch>(&m))
		return limit_mt(*x, par);
	if (auto *x = std::get_if<ConntrackMatch>(&m))
		return conntrack_mt(*x, par);
	if (auto *x = std::get_if<TcpMatch>(&m))
		return tcp_mt(*x, par);
	if (auto *x = std::get_if<UdpMatch>(&m))
		return udp_mt(*x, par);
	if (auto *x = std::get_if<IcmpMatch>(&m))
		return icmp_match(*x, par);
	if (auto *x = std::get_if<MultiportMatch>(&m))
		return multiport_mt(*x, par);
	return iprange_mt4(std::get<IprangeMatch>(m), par);
}

} // namespace

EvalState initial_state(const Table &table, uint32_t hz, uint64_t jiffies)
{
	EvalState st;
	st.hz = hz;
	st.jiffies = jiffies;
	st.limits.resize(table.limit_slots);
	for (const HashlimitTable &h : table.hashlimits)
		st.hashlimits.push_back({{}, hashlimit::table_max(h.cfg, st.ram)});
	for (const Rule &r : table.rules)
		for (const Match &m : r.matches)
			if (auto *x = std::get_if<LimitMatch>(&m); x && x->slot < st.limits.size())
				st.limits[x->slot] = {
					jiffies,
					limit::params(x->avg, x->burst, x->credit_cap, x->cost, hz)
						.credit};
	st.connlimits.resize(table.connlimit_slots);
	for (const RecentList &l : table.recent_lists) {
		recent::List list;
		list.mask = l.mask;
		list.nstamps_mask = l.nstamps_mask;
		st.recent.push_back(std::move(list));
	}
	return st;
}

void hashlimit_gc(EvalState &state)
{
	for (EvalState::Htable &ht : state.hashlimits)
		std::erase_if(ht.entries, [&](const auto &kv) {
			return hashlimit::expired(kv.second, state.jiffies);
		});
}

EvalResult evaluate(const Table &table, Hook hook, const PacketView &packet)
{
	EvalState st = initial_state(table, 250, 0);
	return evaluate(table, hook, packet, st);
}

EvalResult evaluate(const Table &table, Hook hook, const PacketView &packet, EvalState &state)
{
	EvalResult res;
	const auto h = static_cast<unsigned>(hook);
	// ip_rcv_core drops what is shorter than its own header before any hook runs.
	if (packet.ip.size() < 20 || (packet.ip[0] & 0x0f) * 4u < 20 ||
	    (packet.ip[0] & 0x0f) * 4u > packet.ip.size() || h >= num_hooks ||
	    !table.hook_entry[h] || !table.underflow[h])
		return res;

	Param par;
	par.skb = packet.ip;
	par.ct = &packet.ct;
	par.pkt = &packet;
	par.state = &state;
	par.mark = packet.mark;
	par.hook = hook;
	par.fragoff = be16(packet.ip, 6) & ip_offset_mask;
	par.thoff = (packet.ip[0] & 0x0f) * 4u;

	// The jump stack has one slot per ERROR entry (translate_table's stacksize).
	const size_t stacksize =
		std::count_if(table.rules.begin(), table.rules.end(),
			      [](const Rule &r) { return r.target.kind == Target::Kind::Error; });
	std::vector<uint32_t> jumpstack;
	jumpstack.reserve(stacksize);

	// A table from the parser has no loops (ELOOP) and no path off its end; a
	// hand-made IR that has either is cut short here and judged NF_DROP.
	uint64_t budget =
		(static_cast<uint64_t>(table.rules.size()) + 1) * (stacksize + 1) * 64 + 1024;

	uint32_t e = *table.hook_entry[h];
	bool verdict_accept = false; // verdict starts as NF_DROP
	do {
		if (e >= table.rules.size() || budget-- == 0)
			break;
		const Rule &rule = table.rules[e];
		bool matched = ip_packet_match(packet.ip, packet, rule.ip, par.fragoff);
		for (size_t i = 0; matched && i < rule.matches.size(); i++)
			matched = run_match(rule.matches[i], par, table);
		if (!matched) {
			e = e + 1;
			continue;
		}
		res.counted_rules.push_back(e);

		const Target &t = rule.target;
		switch (t.kind) {
		case Target::Kind::Accept:
			verdict_accept = true;
			goto out;
		case Target::Kind::Drop:
		case Target::Kind::Error: // ipt_error() returns NF_DROP
			verdict_accept = false;
			goto out;
		case Target::Kind::Reject: // reject_tg() sends its reply and returns NF_DROP
			res.rejected_by = e;
			verdict_accept = false;
			goto out;
		case Target::Kind::Log: // log_tg() returns XT_CONTINUE
			res.logged_by.push_back(e);
			e = e + 1;
			continue;
		case Target::Kind::Mark: // mark_tg() returns XT_CONTINUE
			par.mark = (par.mark & ~t.mark_mask) ^ t.mark;
			e = e + 1;
			continue;
		case Target::Kind::Return:
			if (jumpstack.empty()) {
				e = *table.underflow[h];
			} else {
				e = jumpstack.back() + 1;
				jumpstack.pop_back();
			}
			continue;
		case Target::Kind::Jump:
		case Target::Kind::Goto:
		case Target::Kind::Continue: {
			const uint32_t to = t.kind == Target::Kind::Continue ? e + 1 : t.to;
			if (to != e + 1 && t.kind == Target::Kind::Jump) {
				if (jumpstack.size() >= stacksize) {
					verdict_accept = false;
					goto out;
				}
				jumpstack.push_back(e);
			}
			e = to;
			continue;
		}
		}
	} while (!par.hotdrop);
out:
	res.hotdrop = par.hotdrop;
	res.mark = par.mark;
	res.accept = !par.hotdrop && verdict_accept;
	return res;
}

} // namespace bpfilter::ir
