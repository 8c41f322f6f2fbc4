// The header matches' ABI: revisions and sizes as 6.1 registers them, checkentry's errnos,
// the hooks -m mac is valid from, and the IR each one becomes.
#include <linux/if_packet.h>
#include <linux/netfilter/xt_dscp.h>
#include <linux/netfilter/xt_ecn.h>
#include <linux/netfilter/xt_esp.h>
#include <linux/netfilter/xt_length.h>
#include <linux/netfilter/xt_mac.h>
#include <linux/netfilter/xt_pkttype.h>
#include <linux/netfilter_ipv4/ipt_ah.h>
#include <linux/netfilter_ipv4/ipt_ttl.h>

#include <gtest/gtest.h>

#include "abi/extensions.hpp"
#include "abi/table.hpp"
#include "abi_builder.hpp"

namespace bpfilter
{
namespace
{

using test::Builder;
using test::Bytes;
using test::Ip;
using test::Rule;
using test::Target;

template <typename T> Bytes m(const char *name, uint8_t rev, const T &data)
{
	return test::match(name, rev, &data, sizeof(data));
}

int in_chain(const std::string &chain, Ip ip, Bytes match)
{
	Builder b;
	b.rule(chain, Rule{ip, {std::move(match)}, Target::accept()});
	auto r = abi::parse_replace(b.replace());
	return r.ok() ? 0 : r.error().errnum;
}

int with(Ip ip, Bytes match)
{
	return in_chain("INPUT", ip, std::move(match));
}

// The IR of INPUT's first rule.
ir::Match ir_of(Ip ip, Bytes match)
{
	Builder b;
	b.rule("INPUT", Rule{ip, {std::move(match)}, Target::accept()});
	auto r = abi::parse_replace(b.replace());
	EXPECT_TRUE(r.ok()) << r.error().message;
	auto t = abi::to_ir(r->table);
	EXPECT_TRUE(t.ok());
	EXPECT_EQ(t->rules.at(0).matches.size(), 1u);
	return t->rules.at(0).matches.at(0);
}

TEST(AbiHeader, Revisions)
{
	using abi::ExtKind;
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "length", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "ttl", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "dscp", 0), 0);
	// 6.1 has tos revision 1 only: iptables asks for 1, falls back to nothing else.
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "tos", 1), 1);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "tos", 0), -EPROTONOSUPPORT);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "ecn", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "pkttype", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "mac", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "ah", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "esp", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "u32", 0), 0);
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "u32", 1), -EPROTONOSUPPORT);
	// Not translated: missing, as on a kernel without it.
	EXPECT_EQ(abi::find_revision(ExtKind::Match, "string", 0), -ENOENT);
}

TEST(AbiHeader, ChecksAndErrnos)
{
	struct xt_length_info len = {10, 20, 0};
	EXPECT_EQ(with(Ip(), m("length", 0, len)), 0);
	struct ipt_ttl_info ttl = {IPT_TTL_GT, 5};
	EXPECT_EQ(with(Ip(), m("ttl", 0, ttl)), 0);
	ttl.mode = IPT_TTL_GT + 1; // "Unknown TTL match mode"
	EXPECT_EQ(with(Ip(), m("ttl", 0, ttl)), EINVAL);
	struct xt_dscp_info dscp = {0x3f, 0};
	EXPECT_EQ(with(Ip(), m("dscp", 0, dscp)), 0);
	dscp.dscp = 0x40;
	EXPECT_EQ(with(Ip(), m("dscp", 0, dscp)), EDOM);
	struct xt_tos_match_info tos = {0x3f, 0x10, 0};
	EXPECT_EQ(with(Ip(), m("tos", 1, tos)), 0);
	// Revision 0 is gone: IPv4's EPROTOTYPE is lost to the family-independent search.
	EXPECT_EQ(with(Ip(), m("tos", 0, tos)), ENOENT);

	struct xt_ecn_info ecn = {};
	ecn.operation = XT_ECN_OP_MATCH_IP;
	ecn.ip_ect = 2;
	EXPECT_EQ(with(Ip(), m("ecn", 0, ecn)), 0);
	ecn.operation = XT_ECN_OP_MATCH_CWR; // "cannot match TCP bits for non-tcp packets"
	EXPECT_EQ(with(Ip(), m("ecn", 0, ecn)), EINVAL);
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP), m("ecn", 0, ecn)), 0);
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP).inv(IPT_INV_PROTO), m("ecn", 0, ecn)), EINVAL);
	ecn.operation = 0x02; // in XT_ECN_OP_MATCH_MASK
	EXPECT_EQ(with(Ip().proto(IPPROTO_TCP), m("ecn", 0, ecn)), EINVAL);
	ecn.operation = XT_ECN_OP_MATCH_IP;
	ecn.invert = 0x80;
	EXPECT_EQ(with(Ip(), m("ecn", 0, ecn)), EINVAL);

	struct xt_pkttype_info pt = {PACKET_BROADCAST, 0};
	EXPECT_EQ(with(Ip(), m("pkttype", 0, pt)), 0);
	EXPECT_EQ(with(Ip(), m("pkttype", 1, pt)), EPROTOTYPE); // NFPROTO_UNSPEC

	struct xt_mac_info mac = {{0x42, 1, 2, 3, 4, 5}, 0};
	EXPECT_EQ(with(Ip(), m("mac", 0, mac)), 0);
	EXPECT_EQ(in_chain("FORWARD", Ip(), m("mac", 0, mac)), 0);
	// xt_check_match: "used from hooks OUTPUT, but only valid from PREROUTING/INPUT/FORWARD"
	EXPECT_EQ(in_chain("OUTPUT", Ip(), m("mac", 0, mac)), EINVAL);

	struct ipt_ah ah = {{0, 0xffffffff}, 0};
	EXPECT_EQ(with(Ip().proto(IPPROTO_AH), m("ah", 0, ah)), 0);
	EXPECT_EQ(with(Ip(), m("ah", 0, ah)), EINVAL); // -p ah
	ah.invflags = 0x02;
	EXPECT_EQ(with(Ip().proto(IPPROTO_AH), m("ah", 0, ah)), EINVAL);
	struct xt_esp esp = {{0, 32}, XT_ESP_INV_SPI};
	EXPECT_EQ(with(Ip().proto(IPPROTO_ESP), m("esp", 0, esp)), 0);
	EXPECT_EQ(with(Ip().proto(IPPROTO_AH), m("esp", 0, esp)), EINVAL);
	esp.invflags = 0x80;
	EXPECT_EQ(with(Ip().proto(IPPROTO_ESP), m("esp", 0, esp)), EINVAL);

	// A wrong size: EINVAL, as xt_check_match's "invalid size".
	uint8_t big[12] = {};
	EXPECT_EQ(with(Ip(), test::match("length", 0, big, sizeof(big))), EINVAL);
}

TEST(AbiHeader, Translation)
{
	EXPECT_EQ(
		std::get<ir::LengthMatch>(ir_of(Ip(), m("length", 0, xt_length_info{4, 65535, 1}))),
		(ir::LengthMatch{4, 65535, 1}));
	EXPECT_EQ(std::get<ir::TtlMatch>(ir_of(Ip(), m("ttl", 0, ipt_ttl_info{IPT_TTL_LT, 9}))),
		  (ir::TtlMatch{IPT_TTL_LT, 9}));
	EXPECT_EQ(std::get<ir::TosMatch>(ir_of(Ip(), m("dscp", 0, xt_dscp_info{0x2e, 1}))),
		  (ir::TosMatch{0xfc, 0xb8, true}));
	EXPECT_EQ(
		std::get<ir::TosMatch>(ir_of(Ip(), m("tos", 1, xt_tos_match_info{0x3f, 0x10, 0}))),
		(ir::TosMatch{0x3f, 0x10, false}));
	xt_ecn_info ecn = {};
	ecn.operation = XT_ECN_OP_MATCH_ECE | XT_ECN_OP_MATCH_IP;
	ecn.invert = XT_ECN_OP_MATCH_ECE;
	ecn.ip_ect = 2;
	EXPECT_EQ(std::get<ir::EcnMatch>(ir_of(Ip().proto(IPPROTO_TCP), m("ecn", 0, ecn))),
		  (ir::EcnMatch{0x11, 0x10, 2}));
	EXPECT_EQ(std::get<ir::PkttypeMatch>(ir_of(Ip(), m("pkttype", 0, xt_pkttype_info{2, 1}))),
		  (ir::PkttypeMatch{2, 1}));
	const ir::MacMatch mac = std::get<ir::MacMatch>(
		ir_of(Ip(), m("mac", 0, xt_mac_info{{0x42, 1, 2, 3, 4, 5}, 1})));
	EXPECT_EQ(mac.src, (std::array<uint8_t, 6>{0x42, 1, 2, 3, 4, 5}));
	EXPECT_EQ(mac.invert, 1u);
	EXPECT_EQ(std::get<ir::SpiMatch>(
			  ir_of(Ip().proto(IPPROTO_AH), m("ah", 0, ipt_ah{{5, 9}, 1}))),
		  (ir::SpiMatch{5, 9, true, true}));
	EXPECT_EQ(std::get<ir::SpiMatch>(
			  ir_of(Ip().proto(IPPROTO_ESP), m("esp", 0, xt_esp{{7, 7}, 0}))),
		  (ir::SpiMatch{7, 7, false, false}));
}

} // namespace
} // namespace bpfilter
